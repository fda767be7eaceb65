/* fuzz_mime.c - the composer's encoders (issue 19) against their decoders.
 *
 * Input: byte 0: bits 0-1 pick the encoder (0 quoted-printable, 1 base64,
 * 2 header text, 3 RFC 2231 parameter), bits 4-7 the number n of split
 * points; the next n bytes are the lengths of the first n blocks; then the
 * data.  Each block goes to the streaming encoder in a buffer of exactly
 * MIME_*_OUT_MAX(len) bytes, so writing past the promised bound is an ASan
 * report.
 * Oracles: decoding gives the input back (quoted-printable: with every line
 * break as CRLF); every line ends in CRLF and stays within 76 characters
 * (encoders) or 78 (headers, parameters; 998 for an ASCII word that cannot
 * be folded); the output is printable ASCII; no quoted-printable line ends
 * in white space or starts with "."; the base64 size formula is exact. */
#include "config.h"
#include "fuzz.h"
#include "mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Lines end in CRLF, within max characters, printable ASCII or tab. */
static void check_lines(const char *s, size_t n, size_t max)
{
	size_t col = 0;

	CHECK(n == 0 || (n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n'));
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r') {
			CHECK(i + 1 < n && s[i + 1] == '\n');
			i++;
			col = 0;
			continue;
		}
		CHECK((c >= 32 && c < 127) || c == '\t');
		CHECK(++col <= max);
	}
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void qp_decode(const struct buf *e, struct buf *out)
{
	for (size_t i = 0; i < e->n; i++) {
		if (e->p[i] == '=' && e->p[i + 1] == '\r') {
			i += 2;        /* soft break */
		} else if (e->p[i] == '=') {
			CHECK(i + 2 < e->n);
			int h = hexval(e->p[i + 1]), l = hexval(e->p[i + 2]);
			char c;
			CHECK(h >= 0 && l >= 0);
			c = (char)(h << 4 | l);
			buf_put(out, &c, 1);
			i += 2;
		} else {
			buf_put(out, e->p + i, 1);
		}
	}
}

/* What quoted-printable text mode keeps: CRLF and bare LF are line breaks
 * (CRLF); a bare CR is data. */
static void qp_expect(const uint8_t *in, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\n' && !(i > 0 && in[i - 1] == '\r'))
			buf_put(out, "\r\n", 2);
		else
			buf_put(out, (const char *)in + i, 1);
	}
}

static void qp_shape(const struct buf *e)
{
	for (size_t i = 0; i < e->n; i++) {
		if (e->p[i] != '\r')
			continue;
		CHECK(i == 0 || (e->p[i - 1] != ' ' && e->p[i - 1] != '\t'));
		CHECK(i + 2 >= e->n || e->p[i + 2] != '.');
	}
	CHECK(e->n == 0 || e->p[0] != '.');
}

static int b64val(char c)
{
	const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(t, c) : NULL;

	return p ? (int)(p - t) : -1;
}

static void b64_decode(const char *s, size_t n, struct buf *out)
{
	unsigned v = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		int d = b64val(s[i]);
		if (d < 0)
			continue;   /* CRLF, padding */
		v = v << 6 | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			char c;
			bits -= 8;
			c = (char)(v >> bits & 0xff);
			buf_put(out, &c, 1);
		}
	}
}

static void encode(int qp, const uint8_t *data, size_t size, const size_t *cuts,
		   size_t ncuts, struct buf *e)
{
	struct mime_qp q;
	struct mime_b64 b;
	size_t prev = 0;

	mime_qp_init(&q);
	mime_b64_init(&b);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : size, len = end - prev;
		size_t cap = qp ? MIME_QP_OUT_MAX(len) : MIME_B64_OUT_MAX(len);
		char *blk = malloc(cap ? cap : 1);

		len = qp ? mime_qp_update(&q, data + prev, len, blk) :
			   mime_b64_update(&b, data + prev, len, blk);
		CHECK(len <= cap);
		buf_put(e, blk, len);
		free(blk);
		prev = end;
	}
	{
		size_t cap = qp ? MIME_QP_OUT_MAX(0) : MIME_B64_OUT_MAX(0);
		char *blk = malloc(cap);
		size_t len = qp ? mime_qp_final(&q, blk) : mime_b64_final(&b, blk);
		CHECK(len <= cap);
		buf_put(e, blk, len);
		free(blk);
	}
}

static void fuzz_codec(int qp, const uint8_t *data, size_t size, const size_t *cuts,
		       size_t ncuts)
{
	struct buf e = { malloc(size * 6 + 64), 0 };
	struct buf d = { malloc(size * 2 + 16), 0 };
	struct buf want = { malloc(size * 2 + 16), 0 };

	encode(qp, data, size, cuts, ncuts, &e);
	check_lines(e.p, e.n, 76);
	if (qp) {
		qp_shape(&e);
		qp_decode(&e, &d);
		qp_expect(data, size, &want);
	} else {
		CHECK(e.n == mime_b64_size(size));
		b64_decode(e.p, e.n, &d);
		buf_put(&want, (const char *)data, size);
	}
	CHECK(d.n == want.n && memcmp(d.p, want.p, d.n) == 0);
	free(e.p);
	free(d.p);
	free(want.p);
}

/* Header text: what an argument can hold (no NUL, CR or LF). */
static char *arg_of(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	size_t o = 0;

	for (size_t i = 0; i < size; i++)
		if (data[i] && data[i] != '\r' && data[i] != '\n')
			s[o++] = (char)data[i];
	s[o] = '\0';
	return s;
}

static void fuzz_header(const uint8_t *data, size_t size)
{
	char *v = arg_of(data, size);
	struct sbuf b = { 0 };
	int words;

	mime_header_text(&b, "Subject", v);
	CHECK(!b.nomem && strncmp(b.s, "Subject:", 8) == 0);
	words = strstr(b.s, "=?UTF-8?B?") != NULL;
	/* an ASCII word too long to fold may pass 78, never 998 */
	check_lines(b.s, b.len, words ? 78 : 998);
	if (words) {
		struct buf d = { malloc(b.len + 1), 0 };
		size_t n = strlen(v);
		const char *p = b.s;

		while ((p = strstr(p, "=?UTF-8?B?"))) {
			const char *end = strstr(p + 10, "?=");
			CHECK(end && end - p + 2 <= 75);
			b64_decode(p + 10, (size_t)(end - p - 10), &d);
			p = end + 2;
		}
		/* the value trimmed of surrounding white space */
		while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		p = v + strspn(v, " \t");
		CHECK(d.n == n - (size_t)(p - v) && memcmp(d.p, p, d.n) == 0);
		free(d.p);
	} else {
		/* unfolding (CRLFs out) gives the value, trimmed, back */
		struct buf u = { malloc(b.len + 1), 0 }, want = { malloc(size + 16), 0 };
		const char *p = v + strspn(v, " \t");
		size_t n = strlen(p);

		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		for (size_t i = 0; i < b.len; i++)
			if (!(b.s[i] == '\r' && b.s[i + 1] == '\n') &&
			    !(b.s[i] == '\n' && i && b.s[i - 1] == '\r'))
				buf_put(&u, b.s + i, 1);
		buf_put(&want, n ? "Subject: " : "Subject:", n ? 9 : 8);
		buf_put(&want, p, n);
		CHECK(u.n == want.n && memcmp(u.p, want.p, u.n) == 0);
		free(u.p);
		free(want.p);
	}
	sbuf_free(&b);
	free(v);
}

/* filename="..." or filename*N*=utf-8''%XX...: decoded back to the value. */
static void fuzz_param(const uint8_t *data, size_t size)
{
	char *v = arg_of(data, size);
	struct sbuf b = { 0 };
	struct mime_fold f = { .b = &b };
	struct buf d = { malloc(size * 3 + 16), 0 };

	sbuf_str(&b, "Content-Disposition: attachment");
	f.col = b.len;
	mime_param(&f, "filename", v);
	sbuf_add(&b, "\r\n", 2);
	CHECK(!b.nomem);
	check_lines(b.s, b.len, 78);
	if (strstr(b.s, "filename=\"")) {
		const char *p = strstr(b.s, "filename=\"") + 10;
		for (; *p != '"'; p++) {
			if (*p == '\\')
				p++;
			CHECK(*p);
			buf_put(&d, p, 1);
		}
	} else {
		const char *p = b.s;
		while ((p = strstr(p, "filename*"))) {
			p = strchr(p, '=') + 1;
			if (strncmp(p, "utf-8''", 7) == 0)
				p += 7;
			for (; *p && *p != ';' && *p != '\r'; p++) {
				char c = *p;
				if (c == '%') {
					CHECK(hexval(p[1]) >= 0 && hexval(p[2]) >= 0);
					c = (char)(hexval(p[1]) << 4 | hexval(p[2]));
					p += 2;
				}
				buf_put(&d, &c, 1);
			}
		}
	}
	CHECK(d.n == strlen(v) && memcmp(d.p, v, d.n) == 0);
	free(d.p);
	sbuf_free(&b);
	free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t ncuts, cuts[16], pos = 0;

	if (size < 1)
		return 0;
	ncuts = data[0] >> 4;
	if (size < 1 + ncuts)
		return 0;
	for (size_t k = 0; k < ncuts; k++) {
		pos += data[1 + k];
		cuts[k] = pos;
	}
	{
		int mode = data[0] & 3;
		const uint8_t *body = data + 1 + ncuts;
		size_t blen = size - 1 - ncuts;

		for (size_t k = 0; k < ncuts; k++)
			if (cuts[k] > blen)
				cuts[k] = blen;
		/* under the sanitizers only: it reads every byte it judges */
		(void)mime_utf8_valid((const char *)body, blen);
		if (mode <= 1)
			fuzz_codec(mode == 0, body, blen, cuts, ncuts);
		else if (mode == 2)
			fuzz_header(body, blen);
		else
			fuzz_param(body, blen);
	}
	return 0;
}
