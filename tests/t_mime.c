/* t_mime.c - the composer's encoders: base64 and quoted-printable across
 * every split of the input, the encoded size known in advance, RFC 2047
 * encoded-words, RFC 2231 parameters, folding at 78 columns. */
#include "config.h"
#include "mime.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define S(x) x, sizeof(x) - 1

enum codec { B64, QP };

struct enc_case {
	const char *name;
	enum codec codec;
	const char *in;
	size_t inlen;
	const char *want;
	size_t wantlen;
};

static const struct enc_case cases[] = {
	{ "b64 empty", B64, S(""), S("") },
	{ "b64 f", B64, S("f"), S("Zg==\r\n") },
	{ "b64 fo", B64, S("fo"), S("Zm8=\r\n") },
	{ "b64 foo", B64, S("foo"), S("Zm9v\r\n") },
	{ "b64 foobar", B64, S("foobar"), S("Zm9vYmFy\r\n") },
	{ "b64 binary", B64, S("\0\xff\x80\r\n"), S("AP+ADQo=\r\n") },
	{ "b64 57 bytes is one full line", B64,
	  S("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
	  S("YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh\r\n") },
	{ "b64 58 bytes is two lines", B64,
	  S("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"),
	  S("YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh\r\nYg==\r\n") },
	{ "qp empty", QP, S(""), S("") },
	{ "qp plain line", QP, S("abc\n"), S("abc\r\n") },
	{ "qp CRLF kept", QP, S("a\r\nb\r\n"), S("a\r\nb\r\n") },
	{ "qp no final newline", QP, S("abc"), S("abc=\r\n") },
	{ "qp equals", QP, S("a=b\n"), S("a=3Db\r\n") },
	{ "qp 8-bit", QP, S("caf\xc3\xa9\n"), S("caf=C3=A9\r\n") },
	{ "qp space before LF", QP, S("a \n"), S("a=20\r\n") },
	{ "qp tab before CRLF", QP, S("a\t\r\n"), S("a=09\r\n") },
	{ "qp space at end", QP, S("a "), S("a=20=\r\n") },
	{ "qp inner spaces", QP, S("a  b\n"), S("a  b\r\n") },
	{ "qp bare CR", QP, S("a\rb\n"), S("a=0Db\r\n") },
	{ "qp space then bare CR", QP, S("a \rb"), S("a =0Db=\r\n") },
	{ "qp CR at end", QP, S("a\r"), S("a=0D=\r\n") },
	{ "qp CR CR LF", QP, S("a\r\r\n"), S("a=0D\r\n") },
	{ "qp leading dot", QP, S(".\n.x\n"), S("=2E\r\n=2Ex\r\n") },
	{ "qp dot after a soft break", QP,
	  S("..........................................................................."
	    ".x\n"),
	  S("=2E........................................................................=\r\n"
	    "=2E..x\r\n") },
	{ "qp NUL and controls", QP, S("\0\x1b\x7f\n"), S("=00=1B=7F\r\n") },
	{ "qp soft break at 76", QP,
	  S("0123456789012345678901234567890123456789012345678901234567890123456789"
	    "012345678901234567890123456789\n"),
	  S("0123456789012345678901234567890123456789012345678901234567890123456789"
	    "01234=\r\n5678901234567890123456789\r\n") },
	{ "qp encoded unit not split by a soft break", QP,
	  S("012345678901234567890123456789012345678901234567890123456789012345678901"
	    "2\xc3\xa9\n"),
	  S("012345678901234567890123456789012345678901234567890123456789012345678901"
	    "2=\r\n=C3=A9\r\n") },
};

static char *encode(const struct enc_case *c, const size_t *cuts, size_t ncuts,
		    size_t *outlen)
{
	char *out = malloc(c->inlen * 6 + 64);
	size_t o = 0, prev = 0;
	struct mime_b64 e;
	struct mime_qp q;

	mime_b64_init(&e);
	mime_qp_init(&q);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : c->inlen;
		o += c->codec == B64 ? mime_b64_update(&e, c->in + prev, end - prev, out + o) :
				       mime_qp_update(&q, c->in + prev, end - prev, out + o);
		prev = end;
	}
	o += c->codec == B64 ? mime_b64_final(&e, out + o) : mime_qp_final(&q, out + o);
	*outlen = o;
	return out;
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n;
		char *out = encode(&cases[i], NULL, 0, &n);

		is_mem(out, n, cases[i].want, cases[i].wantlen, "%s", cases[i].name);
		free(out);
	}
}

static void test_splits(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct enc_case *c = &cases[i];
		size_t bad = 0, tries = 0;

		for (size_t a = 0; a <= c->inlen; a++)
			for (size_t b = a; b <= c->inlen; b++) {
				size_t cuts[2] = { a, b }, n;
				char *out = encode(c, cuts, 2, &n);

				tries++;
				bad += n != c->wantlen || memcmp(out, c->want, n) != 0;
				free(out);
			}
		ok(bad == 0, "%s: all %zu splits agree", c->name, tries);
	}
}

/* SIZE= is declared before the attachment is read: the formula must give
 * exactly what the encoder writes. */
static void test_b64_size(void)
{
	unsigned char in[700];
	char *out = malloc(MIME_B64_OUT_MAX(sizeof in) + 16);
	size_t bad = 0;

	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof in; n++) {
		struct mime_b64 e;
		size_t o;

		mime_b64_init(&e);
		o = mime_b64_update(&e, in, n, out);
		o += mime_b64_final(&e, out + o);
		bad += o != mime_b64_size(n);
	}
	ok(bad == 0, "base64 size formula matches the encoder for 0..700 bytes");
	is_int((long long)mime_b64_size(1ULL << 30), 1469330920LL,
	       "base64 size of 1 GiB");
	free(out);
}

struct seven_case {
	const char *name;
	const char *in;
	size_t len;
	int want;
};

static void test_7bit(void)
{
	static char longline[1001];
	const struct seven_case sc[] = {
		{ "ASCII lines", S("hello\nworld\r\n"), 1 },
		{ "tab", S("a\tb\n"), 1 },
		{ "8-bit", S("gr\xc3\xbc\xc3\x9f\n"), 0 },
		{ "bare CR", S("a\rb\n"), 0 },
		{ "NUL", S("a\0b\n"), 0 },
		{ "escape", S("\x1b[0m\n"), 0 },
		{ "DEL", S("\x7f\n"), 0 },
		{ "998 octets", longline, 998, 1 },
		{ "999 octets", longline, 999, 0 },
	};

	memset(longline, 'x', sizeof longline);
	for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++)
		is_int(mime_text_is_7bit(sc[i].in, sc[i].len), sc[i].want,
		       "7bit: %s", sc[i].name);
}

static void test_utf8(void)
{
	const struct seven_case uc[] = {
		{ "ASCII", S("plain"), 1 },
		{ "two, three and four bytes", S("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), 1 },
		{ "Latin-1", S("caf\xe9"), 0 },
		{ "overlong slash", S("\xc0\xaf"), 0 },
		{ "overlong three bytes", S("\xe0\x80\xaf"), 0 },
		{ "surrogate", S("\xed\xa0\x80"), 0 },
		{ "past U+10FFFF", S("\xf4\x90\x80\x80"), 0 },
		{ "cut short", S("\xe2\x82"), 0 },
		{ "lone continuation", S("\x80"), 0 },
	};

	for (size_t i = 0; i < sizeof uc / sizeof uc[0]; i++)
		is_int(mime_utf8_valid(uc[i].in, uc[i].len), uc[i].want, "utf-8: %s", uc[i].name);
}

/* ---- headers ---- */

static int lines_within(const char *s, size_t limit)
{
	size_t col = 0;

	for (; *s; s++) {
		if (*s == '\r' && s[1] == '\n') {
			col = 0;
			s++;
			continue;
		}
		if (*s == '\r' || *s == '\n' || ++col > limit)
			return 0;
	}
	return 1;
}

static int b64val(char ch)
{
	const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = ch ? strchr(t, ch) : NULL;

	return p ? (int)(p - t) : -1;
}

/* The value of a field written with encoded-words only: unfold, take every
 * =?UTF-8?B?...?= in order, decode and join (white space between words is
 * not part of the text, RFC 2047 section 6.2). */
static char *decode_words(const char *field)
{
	char *out = calloc(1, strlen(field) + 1);
	size_t o = 0;
	const char *p = field;

	while ((p = strstr(p, "=?UTF-8?B?"))) {
		unsigned v = 0;
		int bits = 0;

		for (p += 10; *p && *p != '?'; p++) {
			int d = b64val(*p);
			if (d < 0)
				continue;
			v = v << 6 | (unsigned)d;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				out[o++] = (char)(v >> bits & 0xff);
			}
		}
	}
	return out;
}

static char *unfold(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	for (; *s; s++) {
		if (*s == '\r' && s[1] == '\n') {
			s++;
			continue;
		}
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

static void text_case(const char *name, const char *value, const char *want)
{
	struct sbuf b = { 0 };

	mime_header_text(&b, name, value);
	if (want)
		is_str(b.s, want, "header %s: %s", name, value);
	ok(lines_within(b.s, 78), "header %s (%zu bytes): lines within 78 columns",
	   name, strlen(value));
	sbuf_free(&b);
}

static void test_header_text(void)
{
	char longascii[400], utf[400], *u, *d;
	struct sbuf b = { 0 };

	text_case("Subject", "hello world", "Subject: hello world\r\n");
	text_case("Subject", "  padded\t value  ", "Subject: padded\t value\r\n");
	text_case("Subject", "Gr\xc3\xbc\xc3\x9f""e", "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n");
	text_case("Subject", "looks =?like?= a word",
		  "Subject: =?UTF-8?B?bG9va3MgPT9saWtlPz0gYSB3b3Jk?=\r\n");
	for (size_t i = 0; i < sizeof longascii - 1; i++)
		longascii[i] = i % 7 == 5 ? ' ' : 'a' + (char)(i % 26);
	longascii[sizeof longascii - 1] = '\0';
	mime_header_text(&b, "Subject", longascii);
	u = unfold(b.s);
	ok(lines_within(b.s, 78) && strncmp(u, "Subject: ", 9) == 0 &&
	   strcmp(u + 9, longascii) == 0, "long ASCII subject folds, unfolds to itself");
	free(u);
	sbuf_free(&b);
	/* 399 bytes of two-byte characters: split only between characters */
	for (size_t i = 0; i + 2 < sizeof utf; i += 2)
		memcpy(utf + i, "\xc3\xa9", 2);
	utf[sizeof utf - 2] = '\0';
	mime_header_text(&b, "Subject", utf);
	d = decode_words(b.s);
	ok(lines_within(b.s, 78), "long UTF-8 subject: lines within 78 columns");
	is_str(d, utf, "long UTF-8 subject decodes to itself");
	ok(strstr(b.s, "?=\r\n =?UTF-8?B?") != NULL, "encoded-words on folded lines");
	{
		int good = 1;
		for (const char *p = b.s; (p = strstr(p, "=?UTF-8?B?")); p++) {
			const char *e = strstr(p, "?=");
			good &= e && e - p + 2 <= 75;
			/* each word decodes to whole characters */
			char *one = decode_words(p), *end = one + strlen(one);
			size_t wl = (size_t)(strstr(p + 10, "?=") - p);
			char w[100];
			memcpy(w, p, wl + 2);
			w[wl + 2] = '\0';
			free(one);
			one = decode_words(w);
			end = one + strlen(one);
			good &= end == one || (end[-1] & 0xc0) != 0xc0;
			good &= (one[0] & 0xc0) != 0x80;
			free(one);
		}
		ok(good, "each encoded-word at most 75 characters, whole characters");
	}
	free(d);
	sbuf_free(&b);
	/* an unbreakable 1200-character token cannot stay under 998 */
	{
		char tok[1201];
		memset(tok, 'z', 1200);
		tok[1200] = '\0';
		mime_header_text(&b, "X-Long", tok);
		d = decode_words(b.s);
		ok(lines_within(b.s, 78), "1200-byte word: encoded, lines within 78");
		is_str(d, tok, "1200-byte word decodes to itself");
		free(d);
		sbuf_free(&b);
	}
}

static void test_addrs(void)
{
	struct addrlist l = { 0 };
	struct sbuf b = { 0 };

	addrlist_add(&l, "a@example.org", NULL);
	addrlist_add(&l, "b@example.org", "Bob Smith");
	addrlist_add(&l, "c@example.org", "Smith, Carol");
	addrlist_add(&l, "d@example.org", "J\xc3\xb6rg");
	mime_header_addrs(&b, "To", &l);
	is_str(b.s, "To: a@example.org, Bob Smith <b@example.org>, \"Smith, Carol\" <c@example.org>,\r\n"
	       " =?UTF-8?B?SsO2cmc=?= <d@example.org>\r\n",
	       "address list: plain, atoms, quoted, encoded; folded at 78");
	ok(lines_within(b.s, 78), "address list: lines within 78 columns");
	sbuf_free(&b);
	addrlist_free(&l);
}

static void param_case(const char *value, const char *want)
{
	struct sbuf b = { 0 };
	struct mime_fold f = { .b = &b };

	sbuf_str(&b, "Content-Disposition: attachment");
	f.col = b.len;
	mime_param(&f, "filename", value);
	sbuf_add(&b, "\r\n", 2);
	if (want)
		is_str(b.s, want, "param %s", value);
	ok(lines_within(b.s, 78), "param (%zu bytes): lines within 78", strlen(value));
	sbuf_free(&b);
}

static void test_params(void)
{
	char longname[300];

	param_case("a b.txt", "Content-Disposition: attachment; filename=\"a b.txt\"\r\n");
	param_case("q\"uote.txt", "Content-Disposition: attachment;"
		   " filename=\"q\\\"uote.txt\"\r\n");
	param_case("r\xc3\xa9sum\xc3\xa9.pdf", "Content-Disposition: attachment;"
		   " filename*0*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n");
	for (size_t i = 0; i + 2 < sizeof longname; i += 2)
		memcpy(longname + i, "\xc3\xa9", 2);
	longname[sizeof longname - 2] = '\0';
	param_case(longname, NULL);
	{
		struct sbuf b = { 0 };
		struct mime_fold f = { .b = &b };
		sbuf_str(&b, "X: y");
		f.col = b.len;
		mime_param(&f, "filename", longname);
		ok(strstr(b.s, ";\r\n filename*1*=%C3%A9") != NULL,
		   "long name: numbered sections, cut between characters");
		sbuf_free(&b);
	}
}

int main(void)
{
	test_table();
	test_splits();
	test_b64_size();
	test_7bit();
	test_utf8();
	test_header_text();
	test_addrs();
	test_params();
	return tap_done();
}
