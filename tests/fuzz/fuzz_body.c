/* fuzz_body.c - the streaming normaliser against a one-shot reference.
 *
 * Input: byte 0: bit 0 dot-stuffing (DATA) or not (BDAT), bits 4-7 the
 * number n of split points; the next n bytes are the lengths of the first
 * n blocks (the last block takes the rest); then the body.  Each block goes
 * to body_feed in a buffer of exactly BODY_OUT_MAX(len) bytes, so writing
 * past the promised bound is an ASan report.
 * Oracles: the output equals the reference normalisation (CRLF, bare LF and
 * bare CR each become CRLF; lines starting with '.' get another '.'; a
 * missing final CRLF is added; ".\r\n" ends DATA); independently, every CR
 * is followed by LF and every LF preceded by CR, and "\r\n.\r\n" occurs only
 * as the terminator; un-stuffing gives the normalised input back; the nul,
 * eight and out_total counters agree; body_scan, fed the same blocks, gives
 * the normalised size (SIZE=) and the same flags. */
#include "config.h"
#include "fuzz.h"
#include "body.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Normalise only (no stuffing, no terminator): the text a reader of the
 * message sees. */
static void normalise(const char *in, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\r' || in[i] == '\n') {
			if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
				i++;
			buf_put(out, "\r\n", 2);
		} else {
			buf_put(out, in + i, 1);
		}
	}
	if (n && in[n - 1] != '\r' && in[n - 1] != '\n')
		buf_put(out, "\r\n", 2);
}

/* The reference: normalise, then stuff and terminate line by line. */
static void reference(const struct buf *norm, int dotstuff, struct buf *out)
{
	int bol = 1;

	for (size_t i = 0; i < norm->n; i++) {
		if (bol && dotstuff && norm->p[i] == '.')
			buf_put(out, ".", 1);
		buf_put(out, norm->p + i, 1);
		bol = norm->p[i] == '\n';
	}
	if (dotstuff)
		buf_put(out, ".\r\n", 3);
}

static void check_shape(const struct buf *o, int dotstuff)
{
	size_t end = o->n;

	for (size_t i = 0; i < o->n; i++) {
		if (o->p[i] == '\r')
			CHECK(i + 1 < o->n && o->p[i + 1] == '\n');
		if (o->p[i] == '\n')
			CHECK(i > 0 && o->p[i - 1] == '\r');
	}
	if (!dotstuff)
		return;
	CHECK(o->n >= 3 && memcmp(o->p + o->n - 3, ".\r\n", 3) == 0);
	end = o->n - 3;
	CHECK(end == 0 || (end >= 2 && o->p[end - 1] == '\n'));
	/* no end of data before the end: a line holding just "." */
	for (size_t i = 0; i + 3 <= end; i++)
		if ((i == 0 || o->p[i - 1] == '\n') && o->p[i] == '.')
			CHECK(o->p[i + 1] == '.');
}

/* Undo the stuffing and the terminator: must give the normalised input. */
static void check_unstuff(const struct buf *o, const struct buf *norm)
{
	size_t end = o->n - 3, j = 0;
	int bol = 1;

	for (size_t i = 0; i < end; i++) {
		if (bol && o->p[i] == '.')
			i++;   /* check_shape saw the second dot */
		CHECK(j < norm->n && o->p[i] == norm->p[j]);
		bol = o->p[i] == '\n';
		j++;
	}
	CHECK(j == norm->n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct body_filter bf;
	struct body_scan z;
	struct buf got = { 0 }, norm = { 0 }, want = { 0 };
	size_t nsplit, pos, cap;
	const char *in;
	int dotstuff, nul = 0, eight = 0;
	char *tail;

	if (size < 1)
		return 0;
	dotstuff = data[0] & 1;
	nsplit = data[0] >> 4;
	if (size < 1 + nsplit)
		return 0;
	in = (const char *)data + 1 + nsplit;
	size -= 1 + nsplit;
	cap = 2 * size + 16;
	got.p = malloc(cap);
	norm.p = malloc(cap);
	want.p = malloc(cap);
	CHECK(got.p && norm.p && want.p);

	body_init(&bf, dotstuff);
	body_scan_init(&z);
	pos = 0;
	for (size_t s = 0; s <= nsplit; s++) {
		size_t n = s < nsplit ? data[1 + s] : size - pos;
		char *block, *out;

		if (n > size - pos)
			n = size - pos;
		block = malloc(n ? n : 1);
		out = malloc(BODY_OUT_MAX(n));
		CHECK(block && out);
		memcpy(block, in + pos, n);
		body_scan_feed(&z, block, n);
		size_t m = body_feed(&bf, block, n, out);
		CHECK(m <= BODY_OUT_MAX(n));
		buf_put(&got, out, m);
		free(out);
		free(block);
		pos += n;
	}
	tail = malloc(8);
	CHECK(tail);
	size_t m = body_finish(&bf, tail);
	CHECK(m <= 8);
	buf_put(&got, tail, m);
	free(tail);

	for (size_t i = 0; i < size; i++) {
		nul |= in[i] == '\0';
		eight |= (unsigned char)in[i] >= 0x80;
	}
	CHECK(!!bf.nul == nul && !!bf.eight == eight);
	CHECK(bf.out_total == got.n);

	normalise(in, size, &norm);
	CHECK(body_scan_wire(&z) == norm.n && z.raw == size);
	CHECK(z.nul == nul && z.eightbit == eight);
	reference(&norm, dotstuff, &want);
	CHECK(got.n == want.n && memcmp(got.p, want.p, got.n) == 0);
	check_shape(&got, dotstuff);
	if (dotstuff)
		check_unstuff(&got, &norm);
	else
		CHECK(got.n == norm.n);

	free(got.p);
	free(norm.p);
	free(want.p);
	return 0;
}
