/* t_body.c - the streaming normaliser: line endings, dot-stuffing, final CRLF,
 * and the same output for every way of splitting the input into blocks. */
#include "config.h"
#include "body.h"
#include "tap.h"

#include <stdlib.h>

struct body_case {
	const char *name;
	const char *in;
	size_t inlen;          /* 0: strlen(in) */
	int dotstuff;
	const char *want;
	size_t wantlen;
};

#define S(x) x, sizeof(x) - 1

static const struct body_case cases[] = {
	{ "empty, DATA", S(""), 1, S(".\r\n") },
	{ "empty, BDAT", S(""), 0, S("") },
	{ "LF lines", S("a\nb\n"), 1, S("a\r\nb\r\n.\r\n") },
	{ "CRLF kept", S("a\r\nb\r\n"), 1, S("a\r\nb\r\n.\r\n") },
	{ "bare CR", S("a\rb\r"), 1, S("a\r\nb\r\n.\r\n") },
	{ "CR CR LF is two lines", S("a\r\r\nb"), 1, S("a\r\n\r\nb\r\n.\r\n") },
	{ "LF CR is two lines", S("a\n\rb"), 1, S("a\r\n\r\nb\r\n.\r\n") },
	{ "no final newline", S("abc"), 1, S("abc\r\n.\r\n") },
	{ "no final newline, BDAT", S("abc"), 0, S("abc\r\n") },
	{ "lone dot", S(".\n"), 1, S("..\r\n.\r\n") },
	{ "double dot", S("..\n"), 1, S("...\r\n.\r\n") },
	{ "dot line in middle", S("a\n.\nb\n"), 1, S("a\r\n..\r\nb\r\n.\r\n") },
	{ "dot not stuffed for BDAT", S("a\n.\nb\n"), 0, S("a\r\n.\r\nb\r\n") },
	{ "dot mid-line untouched", S("a.b\n"), 1, S("a.b\r\n.\r\n") },
	{ "smuggle LF.LF", S("x\n.\ny"), 1, S("x\r\n..\r\ny\r\n.\r\n") },
	{ "smuggle LF.CR", S("x\n.\ry"), 1, S("x\r\n..\r\ny\r\n.\r\n") },
	{ "smuggle CR.LF", S("x\r.\ny"), 1, S("x\r\n..\r\ny\r\n.\r\n") },
	{ "smuggle CR.CR", S("x\r.\ry"), 1, S("x\r\n..\r\ny\r\n.\r\n") },
	{ "smuggle LF.CRLF", S("x\n.\r\ny"), 1, S("x\r\n..\r\ny\r\n.\r\n") },
	{ "smuggle CR.CRLF", S("x\r.\r\ny"), 1, S("x\r\n..\r\ny\r\n.\r\n") },
	{ "smuggle CRLF.LF", S("x\r\n.\ny"), 1, S("x\r\n..\r\ny\r\n.\r\n") },
	{ "smuggle CRLF.CR", S("x\r\n.\ry"), 1, S("x\r\n..\r\ny\r\n.\r\n") },
	{ "smuggle CRLF.CRCRLF", S("x\r\n.\r\r\ny"), 1, S("x\r\n..\r\n\r\ny\r\n.\r\n") },
	{ "dot at very start", S(".x"), 1, S("..x\r\n.\r\n") },
	{ "only newline", S("\n"), 1, S("\r\n.\r\n") },
	{ "only CR", S("\r"), 1, S("\r\n.\r\n") },
	{ "NUL passes through", S("a\0b\n"), 1, S("a\0b\r\n.\r\n") },
	{ "8-bit passes through", S("caf\xc3\xa9\n"), 1, S("caf\xc3\xa9\r\n.\r\n") },
};

/* Run `in` through the filter split at the given points (sorted, may be
 * empty) and return the malloc'd output. */
static char *run(const struct body_case *c, size_t inlen, const size_t *cuts,
		 size_t ncuts, size_t *outlen, struct body_filter *bf)
{
	char *out = malloc(BODY_OUT_MAX(inlen) * 2 + 16);
	size_t o = 0, prev = 0;

	body_init(bf, c->dotstuff);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : inlen;
		o += body_feed(bf, c->in + prev, end - prev, out + o);
		prev = end;
	}
	o += body_finish(bf, out + o);
	*outlen = o;
	return out;
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct body_case *c = &cases[i];
		struct body_filter bf;
		size_t outlen, wl = c->wantlen;
		char *out = run(c, c->inlen, NULL, 0, &outlen, &bf);

		is_mem(out, outlen, c->want, wl, "%s", c->name);
		free(out);
	}
}

/* Every single split point and every pair of split points must give the
 * same bytes as the unsplit input: the state survives block boundaries. */
static void test_splits(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct body_case *c = &cases[i];
		size_t wl = c->wantlen, bad = 0, tries = 0;

		for (size_t a = 0; a <= c->inlen; a++)
			for (size_t b = a; b <= c->inlen; b++) {
				size_t cuts[2] = { a, b }, outlen;
				struct body_filter bf;
				char *out = run(c, c->inlen, cuts, 2, &outlen, &bf);
				tries++;
				if (outlen != wl || memcmp(out, c->want, wl) != 0)
					bad++;
				free(out);
			}
		ok(bad == 0, "%s: all %zu splits agree", c->name, tries);
	}
}

static void test_flags(void)
{
	struct body_filter bf;
	char out[64];

	body_init(&bf, 1);
	body_feed(&bf, "plain\n", 6, out);
	ok(!bf.nul && !bf.eight, "plain text sets no flags");
	body_feed(&bf, "\xe9\n", 2, out);
	ok(bf.eight && !bf.nul, "8-bit byte noticed");
	body_feed(&bf, "a\0", 2, out);
	ok(bf.nul, "NUL noticed");
}

/* Invariants on a large pseudo-random input with every line-ending kind:
 * no bare CR or LF, no CRLF.CRLF before the end, and the output length the
 * filter reports matches. */
static void test_random(void)
{
	size_t n = 1 << 20, o = 0, bare = 0, early_end = 0;
	char *in = malloc(n), *out = malloc(BODY_OUT_MAX(n) + 8);
	const char alphabet[] = "ab.\r\n\n\n.x";
	unsigned s = 12345;
	struct body_filter bf;

	for (size_t i = 0; i < n; i++) {
		s = s * 1103515245u + 12345u;
		in[i] = alphabet[(s >> 16) % (sizeof alphabet - 1)];
	}
	body_init(&bf, 1);
	for (size_t off = 0, step = 1; off < n; off += step, step = step * 3 % 4093 + 1) {
		size_t len = off + step > n ? n - off : step;
		o += body_feed(&bf, in + off, len, out + o);
	}
	o += body_finish(&bf, out + o);
	for (size_t i = 0; i < o; i++) {
		if (out[i] == '\r' && (i + 1 >= o || out[i + 1] != '\n'))
			bare++;
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			bare++;
		if (i + 5 <= o - 5 && memcmp(out + i, "\r\n.\r\n", 5) == 0)
			early_end++;
	}
	is_int(bare, 0, "1 MiB random input: no bare CR or LF");
	is_int(early_end, 0, "1 MiB random input: CRLF.CRLF only at the end");
	ok(o >= 5 && memcmp(out + o - 5, "\r\n.\r\n", 5) == 0, "ends with CRLF.CRLF");
	is_int(bf.out_total, o, "out_total counts every byte");
	free(in);
	free(out);
}

/* The scan's wire size is what the BDAT filter produces, for every case of
 * the table and every split into three blocks; and on the random input. */
static unsigned long long scan_split(const char *in, size_t n, size_t a, size_t b)
{
	struct body_scan z;

	body_scan_init(&z);
	body_scan_feed(&z, in, a);
	body_scan_feed(&z, in + a, b - a);
	body_scan_feed(&z, in + b, n - b);
	return body_scan_wire(&z);
}

static void test_scan(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct body_case c = cases[i];
		struct body_filter bf;
		size_t outlen, bad = 0;
		char *out;

		c.dotstuff = 0;
		out = run(&c, c.inlen, NULL, 0, &outlen, &bf);
		for (size_t a = 0; a <= c.inlen; a++)
			for (size_t b = a; b <= c.inlen; b++)
				bad += scan_split(c.in, c.inlen, a, b) != outlen;
		ok(bad == 0, "%s: scanned wire size %zu for every split", c.name, outlen);
		free(out);
	}

	size_t n = 1 << 20, o = 0;
	char *in = malloc(n), *out = malloc(BODY_OUT_MAX(n) + 8);
	const char alphabet[] = "ab\r\n\n\r\r\n\xe9";
	unsigned s = 777;
	struct body_filter bf;
	struct body_scan z;

	for (size_t i = 0; i < n; i++) {
		s = s * 1103515245u + 12345u;
		in[i] = alphabet[(s >> 16) % (sizeof alphabet - 1)];
	}
	body_init(&bf, 0);
	body_scan_init(&z);
	for (size_t off = 0, step = 1; off < n; off += step, step = step * 5 % 4091 + 1) {
		size_t len = off + step > n ? n - off : step;
		o += body_feed(&bf, in + off, len, out + o);
		body_scan_feed(&z, in + off, len);
	}
	o += body_finish(&bf, out + o);
	is_int(body_scan_wire(&z), o, "1 MiB random input: scanned wire size = BDAT bytes");
	is_int(z.raw, n, "raw size counted");
	ok(z.eightbit && !z.nul, "8-bit noticed, no NUL");
	free(in);
	free(out);
}

int main(void)
{
	test_table();
	test_splits();
	test_flags();
	test_random();
	test_scan();
	return tap_done();
}
