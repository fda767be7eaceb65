/* mime.c - MIME encoders for composing a message (see mime.h). */
#include "config.h"
#include "mime.h"

#include <stdio.h>
#include <string.h>

static const char b64tab[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hexdig[] = "0123456789ABCDEF";

/* ------------------------------------------------------------------ */
/* base64 */

#define B64_LINE 76   /* RFC 2045 6.8: at most 76 characters a line */

void mime_b64_init(struct mime_b64 *e)
{
	memset(e, 0, sizeof *e);
}

static size_t b64_char(struct mime_b64 *e, char ch, char *out)
{
	size_t o = 0;

	out[o++] = ch;
	if (++e->col == B64_LINE) {
		out[o++] = '\r';
		out[o++] = '\n';
		e->col = 0;
	}
	return o;
}

static size_t b64_group(struct mime_b64 *e, const unsigned char *g, size_t n, char *out)
{
	unsigned v = (unsigned)g[0] << 16 | (n > 1 ? (unsigned)g[1] << 8 : 0) |
		     (n > 2 ? g[2] : 0);
	size_t o = 0;

	o += b64_char(e, b64tab[v >> 18 & 63], out + o);
	o += b64_char(e, b64tab[v >> 12 & 63], out + o);
	o += b64_char(e, n > 1 ? b64tab[v >> 6 & 63] : '=', out + o);
	o += b64_char(e, n > 2 ? b64tab[v & 63] : '=', out + o);
	return o;
}

size_t mime_b64_update(struct mime_b64 *e, const void *in, size_t n, char *out)
{
	const unsigned char *p = in;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		e->carry[e->ncarry++] = p[i];
		if (e->ncarry == 3) {
			o += b64_group(e, e->carry, 3, out + o);
			e->ncarry = 0;
		}
	}
	return o;
}

size_t mime_b64_final(struct mime_b64 *e, char *out)
{
	size_t o = 0;

	if (e->ncarry)
		o += b64_group(e, e->carry, e->ncarry, out);
	e->ncarry = 0;
	if (e->col) {
		out[o++] = '\r';
		out[o++] = '\n';
		e->col = 0;
	}
	return o;
}

unsigned long long mime_b64_size(unsigned long long n)
{
	unsigned long long chars = (n + 2) / 3 * 4;

	return chars + (chars + B64_LINE - 1) / B64_LINE * 2;
}

/* ------------------------------------------------------------------ */
/* quoted-printable */

#define QP_LINE 76    /* RFC 2045 6.7 (5): at most 76 characters a line */

void mime_qp_init(struct mime_qp *q)
{
	memset(q, 0, sizeof *q);
}

/* One encoded unit (a character or "=XX"), with a soft break first when the
 * line would pass 75 characters plus the "=". */
static size_t qp_put(struct mime_qp *q, const char *tok, size_t n, char *out)
{
	size_t o = 0;

	if (q->col + n > QP_LINE - 1) {
		memcpy(out, "=\r\n", 3);
		o = 3;
		q->col = 0;
	}
	memcpy(out + o, tok, n);
	q->col += n;
	return o + n;
}

static size_t qp_hex(struct mime_qp *q, unsigned char c, char *out)
{
	char t[3] = { '=', hexdig[c >> 4], hexdig[c & 15] };

	return qp_put(q, t, 3, out);
}

/* A pending space or tab: literal when text follows it on the line,
 * encoded when a line break or the end follows (RFC 2045 6.7 (3)). */
static size_t qp_flush_ws(struct mime_qp *q, int encode, char *out)
{
	char c = (char)q->pend_ws;

	if (!q->pend_ws)
		return 0;
	q->pend_ws = 0;
	return encode ? qp_hex(q, (unsigned char)c, out) : qp_put(q, &c, 1, out);
}

static size_t qp_break(struct mime_qp *q, char *out)
{
	size_t o = qp_flush_ws(q, 1, out);

	memcpy(out + o, "\r\n", 2);
	q->col = 0;
	return o + 2;
}

static size_t qp_byte(struct mime_qp *q, unsigned char c, char *out)
{
	size_t o = 0;

	if (q->pend_cr) {
		q->pend_cr = 0;
		if (c == '\n')
			return qp_break(q, out);
		o += qp_flush_ws(q, 0, out + o);
		o += qp_hex(q, '\r', out + o);
	}
	if (c == '\r') {
		q->pend_cr = 1;
		return o;
	}
	if (c == '\n')
		return o + qp_break(q, out + o);
	o += qp_flush_ws(q, 0, out + o);
	if (c == ' ' || c == '\t') {
		q->pend_ws = c;
		return o;
	}
	/* a "." first on a line (or after a soft break) is encoded: nothing in
	 * the body then looks like an SMTP end of data, whatever a relay does */
	if (c < 33 || c > 126 || c == '=' ||
	    (c == '.' && (q->col == 0 || q->col + 1 > QP_LINE - 1)))
		return o + qp_hex(q, c, out + o);
	return o + qp_put(q, (const char *)&c, 1, out + o);
}

size_t mime_qp_update(struct mime_qp *q, const void *in, size_t n, char *out)
{
	const unsigned char *p = in;
	size_t o = 0;

	for (size_t i = 0; i < n; i++)
		o += qp_byte(q, p[i], out + o);
	return o;
}

size_t mime_qp_final(struct mime_qp *q, char *out)
{
	size_t o = 0;

	if (q->pend_cr) {
		q->pend_cr = 0;
		o += qp_flush_ws(q, 0, out + o);
		o += qp_hex(q, '\r', out + o);
	}
	o += qp_flush_ws(q, 1, out + o);
	if (q->col) {   /* no final line break: a soft one keeps it so */
		memcpy(out + o, "=\r\n", 3);
		o += 3;
		q->col = 0;
	}
	return o;
}

int mime_text_is_7bit(const char *s, size_t n)
{
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		if (c == '\n') {
			line = 0;
			continue;
		}
		if ((c < 32 && c != '\t') || c > 126 || ++line > MIME_LINE_HARD)
			return 0;
	}
	return 1;
}

/* RFC 3629: well-formed UTF-8 (no overlong forms, surrogates or values
 * past U+10FFFF). */
int mime_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;

	for (size_t i = 0; i < n;) {
		unsigned c = s[i], len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 :
			     c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		unsigned v;

		if (!len || i + len > n)
			return 0;
		v = len == 1 ? c : c & (0x3f >> (len - 1));
		for (unsigned k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			v = v << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
		    (len == 4 && (v < 0x10000 || v > 0x10ffff)))
			return 0;
		i += len;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* header fields */

void mime_fold_put(struct mime_fold *f, const char *ws, const char *tok, size_t n)
{
	size_t wl = strlen(ws);

	if (wl && f->col + wl + n > MIME_LINE_SOFT) {
		sbuf_add(f->b, "\r\n", 2);
		f->col = 0;
	}
	sbuf_add(f->b, ws, wl);
	sbuf_add(f->b, tok, n);
	f->col += wl + n;
}

static void fold_start(struct mime_fold *f, struct sbuf *b, const char *name)
{
	f->b = b;
	sbuf_str(b, name);
	sbuf_add(b, ":", 1);
	f->col = strlen(name) + 1;
}

static void fold_end(struct mime_fold *f)
{
	sbuf_add(f->b, "\r\n", 2);
	f->col = 0;
}

/* Bytes that can be cut at k without splitting a UTF-8 character. */
static size_t utf8_cut(const char *s, size_t k)
{
	size_t c = k;

	while (c && ((unsigned char)s[c] & 0xc0) == 0x80)
		c--;
	return c ? c : k;   /* not UTF-8 after all: cut anywhere */
}

static size_t b64_plain(const unsigned char *in, size_t n, char *out)
{
	struct mime_b64 e;
	size_t o;

	mime_b64_init(&e);
	o = mime_b64_update(&e, in, n, out);
	if (e.ncarry)   /* the padded last group, without a line break */
		o += b64_group(&e, e.carry, e.ncarry, out + o);
	return o;
}

/* RFC 2047 B encoded-words for s[0..n), separated by spaces (folds).
 * A word is at most 75 characters (section 2) and is sized to fit the
 * line it lands on. */
static void put_words(struct mime_fold *f, const char *s, size_t n, int sep)
{
	char word[96];

	for (size_t i = 0; i < n;) {
		size_t avail = MIME_LINE_SOFT - (f->col < MIME_LINE_SOFT ? f->col : MIME_LINE_SOFT);
		size_t room, k, w;

		avail -= avail && sep ? 1 : 0;
		if (avail < 16 && sep)
			avail = MIME_LINE_SOFT - 1;   /* it goes on the next line */
		if (avail > 75)
			avail = 75;
		room = avail < 16 ? 3 : (avail - 12) / 4 * 3;
		k = n - i <= room ? n - i : utf8_cut(s + i, room);
		w = (size_t)snprintf(word, sizeof word, "=?UTF-8?B?");
		w += b64_plain((const unsigned char *)s + i, k, word + w);
		memcpy(word + w, "?=", 2);
		mime_fold_put(f, sep ? " " : "", word, w + 2);
		sep = 1;
		i += k;
	}
}

/* Encoded-words are needed for bytes outside printable ASCII and tab, for
 * "=?" (it would be read as an encoded-word), and when white space and the
 * word after it would not fit on a folded line of 998. */
static int text_needs_words(const char *v, size_t namelen)
{
	if (strstr(v, "=?"))
		return 1;
	for (const char *p = v; *p;) {
		size_t ws = strspn(p, " \t"), word = strcspn(p + ws, " \t");

		for (size_t i = 0; i < ws + word; i++) {
			unsigned char c = (unsigned char)p[i];
			if ((c < 32 && c != '\t') || c > 126)
				return 1;
		}
		if (ws + word + namelen + 2 > MIME_LINE_HARD)
			return 1;
		p += ws + word;
	}
	return 0;
}

/* ASCII words with the white space before each kept as it is, so that
 * unfolding (removing the CRLFs) gives the value back.  White space before
 * the first word and after the last is not part of the value. */
static void put_ascii(struct mime_fold *f, const char *v)
{
	char ws[MIME_LINE_HARD + 1] = " ";
	const char *p = v + strspn(v, " \t");

	while (*p) {
		size_t tl = strcspn(p, " \t"), wl;

		mime_fold_put(f, ws, p, tl);
		p += tl;
		wl = strspn(p, " \t");
		if (wl > MIME_LINE_HARD)   /* text_needs_words keeps runs shorter */
			wl = MIME_LINE_HARD;
		memcpy(ws, p, wl);
		ws[wl] = '\0';
		p += strspn(p, " \t");
	}
}

void mime_header_text(struct sbuf *b, const char *name, const char *value)
{
	struct mime_fold f;

	size_t n;

	/* white space around the value is not part of it (as in put_ascii) */
	value += strspn(value, " \t");
	for (n = strlen(value); n && (value[n - 1] == ' ' || value[n - 1] == '\t'); n--)
		;
	fold_start(&f, b, name);
	if (text_needs_words(value, strlen(name)))
		put_words(&f, value, n, 1);
	else
		put_ascii(&f, value);
	fold_end(&f);
}

/* RFC 5322 3.2.3: atext plus the spaces of a phrase; anything else in a
 * display name needs a quoted-string. */
static int phrase_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-/=?^_`{|}~ ", *s)))
			return 0;
	return 1;
}

static int ascii_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || (unsigned char)*s > 126)
			return 0;
	return 1;
}

static void put_display(struct mime_fold *f, const char *d, int sep)
{
	struct sbuf q = { 0 };

	if (!ascii_printable(d) || strstr(d, "=?")) {
		put_words(f, d, strlen(d), sep);
		return;
	}
	if (phrase_ok(d)) {
		put_ascii(f, d);   /* atoms: may fold between them */
		return;
	}
	sbuf_add(&q, "\"", 1);
	for (const char *p = d; *p; p++) {
		if (*p == '"' || *p == '\\')
			sbuf_add(&q, "\\", 1);
		sbuf_add(&q, p, 1);
	}
	sbuf_add(&q, "\"", 1);
	if (!q.nomem)
		mime_fold_put(f, sep ? " " : "", q.s, q.len);
	sbuf_free(&q);
}

void mime_header_addrs(struct sbuf *b, const char *name, const struct addrlist *l)
{
	struct mime_fold f;
	char tok[1100];

	fold_start(&f, b, name);
	for (size_t i = 0; i < l->n; i++) {
		const struct addr *a = &l->v[i];
		const char *comma = i + 1 < l->n ? "," : "";
		int has_display = a->display && *a->display;
		int n;

		if (has_display) {
			put_display(&f, a->display, 1);
			n = snprintf(tok, sizeof tok, "<%s>%s", a->mailbox, comma);
		} else {
			n = snprintf(tok, sizeof tok, "%s%s", a->mailbox, comma);
		}
		if (n > 0 && (size_t)n < sizeof tok)
			mime_fold_put(&f, " ", tok, (size_t)n);
	}
	fold_end(&f);
}

/* RFC 2231 section 7: attribute-char, percent-encoded otherwise. */
static int attr_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$&+-.^_`|~", c));
}

static void param_quoted(struct mime_fold *f, const char *attr, const char *v)
{
	struct sbuf q = { 0 };

	sbuf_str(&q, attr);
	sbuf_add(&q, "=\"", 2);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			sbuf_add(&q, "\\", 1);
		sbuf_add(&q, v, 1);
	}
	sbuf_add(&q, "\"", 1);
	if (!q.nomem)
		mime_fold_put(f, " ", q.s, q.len);
	sbuf_free(&q);
}

/* attr*0*=utf-8''...; attr*1*=...: each section on a line of its own when
 * needed, cut between characters (some readers decode section by section). */
static void param_2231(struct mime_fold *f, const char *attr, const char *v)
{
	char tok[MIME_LINE_SOFT + 16];
	size_t len = strlen(v), i = 0;
	unsigned sec = 0;

	while (i < len || sec == 0) {
		int o = snprintf(tok, sizeof tok, "%s*%u*=%s", attr, sec,
				 sec ? "" : "utf-8''");
		size_t limit = MIME_LINE_SOFT - 2;   /* leading space and ";" */
		size_t start = i;

		while (i < len) {
			size_t k = 1, need;

			/* the whole character (at most 4 bytes; more continuation
			 * bytes are not UTF-8) goes in one section */
			while (i + k < len && k < 4 && ((unsigned char)v[i + k] & 0xc0) == 0x80)
				k++;
			need = 0;
			for (size_t j = 0; j < k; j++)
				need += attr_char((unsigned char)v[i + j]) ? 1 : 3;
			if ((size_t)o + need > limit && i > start)
				break;
			for (size_t j = 0; j < k; j++) {
				unsigned char c = (unsigned char)v[i + j];
				if (attr_char(c)) {
					tok[o++] = (char)c;
				} else {
					tok[o++] = '%';
					tok[o++] = hexdig[c >> 4];
					tok[o++] = hexdig[c & 15];
				}
			}
			i += k;
			if ((size_t)o + 12 > sizeof tok)
				break;
		}
		if (sec)
			sbuf_add(f->b, ";", 1), f->col++;
		mime_fold_put(f, " ", tok, (size_t)o);
		sec++;
	}
}

void mime_param(struct mime_fold *f, const char *attr, const char *value)
{
	size_t need = 1 + strlen(attr) + 3 + strlen(value) + 1;

	sbuf_add(f->b, ";", 1);
	f->col++;
	for (const char *p = value; *p; p++)
		need += *p == '"' || *p == '\\';
	if (ascii_printable(value) && need <= MIME_LINE_SOFT - 1)
		param_quoted(f, attr, value);
	else
		param_2231(f, attr, value);
}
