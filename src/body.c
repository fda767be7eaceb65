/* body.c - streaming CRLF normaliser and dot-stuffer (see body.h).
 *
 * The common case is a long run of ordinary bytes ended by LF.  We find line
 * ends with memchr (vectorised in glibc) and copy whole line segments with
 * memcpy, so the cost per byte is a few instructions and there is no branch per
 * byte.  The position of the next CR is remembered for the whole block: Unix
 * input has none, so one memchr per block answers "any bare CR?" for all lines.
 */
#include "config.h"
#include "body.h"

#include <stdint.h>
#include <string.h>

void body_init(struct body_filter *bf, int dotstuff)
{
	memset(bf, 0, sizeof *bf);
	bf->dotstuff = dotstuff;
	bf->at_bol = 1;
}

/* Any byte >= 0x80?  Eight bytes at a time; only used until the first hit. */
static int has_high_bit(const char *p, size_t n)
{
	const uint64_t mask = 0x8080808080808080ull;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w & mask)
			return 1;
	}
	for (; i < n; i++)
		if ((unsigned char)p[i] & 0x80)
			return 1;
	return 0;
}

static void scan_flags(struct body_filter *bf, const char *in, size_t n)
{
	if (!bf->nul && memchr(in, '\0', n))
		bf->nul = 1;
	if (!bf->eight && has_high_bit(in, n))
		bf->eight = 1;
}

size_t body_feed(struct body_filter *bf, const char *in, size_t inlen, char *out)
{
	const char *p = in, *end = in + inlen;
	const char *cr = NULL;   /* next CR at or after p, or end; NULL = not looked */
	char *o = out;

	if (inlen == 0)
		return 0;
	bf->any = 1;
	scan_flags(bf, in, inlen);
	/* A CR that ended the previous block was already written as CRLF; an LF
	 * starting this block is its partner, not a second line end. */
	if (bf->after_cr && *p == '\n')
		p++;
	bf->after_cr = 0;

	while (p < end) {
		if (bf->at_bol && bf->dotstuff && *p == '.')
			*o++ = '.';   /* RFC 5321 4.5.2 transparency */
		if (!cr || cr < p) {
			cr = memchr(p, '\r', (size_t)(end - p));
			if (!cr)
				cr = end;
		}
		const char *nl = memchr(p, '\n', (size_t)((cr < end ? cr : end) - p));
		const char *q = nl ? nl : cr;

		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		if (q == end) {
			if (q > p)
				bf->at_bol = 0;
			break;
		}
		*o++ = '\r';
		*o++ = '\n';
		bf->at_bol = 1;
		p = q + 1;
		if (*q == '\r') {
			if (p == end)
				bf->after_cr = 1;   /* the LF may start the next block */
			else if (*p == '\n')
				p++;
		}
	}
	bf->out_total += (unsigned long long)(o - out);
	return (size_t)(o - out);
}

size_t body_finish(struct body_filter *bf, char *out)
{
	char *o = out;

	/* RFC 5321 4.1.1.4: the data must end with CRLF before the final dot. */
	if (bf->any && !bf->at_bol) {
		*o++ = '\r';
		*o++ = '\n';
	}
	if (bf->dotstuff) {
		memcpy(o, ".\r\n", 3);
		o += 3;
	}
	bf->at_bol = 1;
	bf->out_total += (unsigned long long)(o - out);
	return (size_t)(o - out);
}

/* ---- scanning ahead ------------------------------------------------------ */

void body_scan_init(struct body_scan *z)
{
	memset(z, 0, sizeof *z);
	z->last = -1;
}

/* Every line end becomes CRLF: a lone LF and a lone CR each gain one byte,
 * a CRLF stays as it is.  A CR at the end of a block is judged when the
 * next block (or the end) shows whether an LF follows it. */
void body_scan_feed(struct body_scan *z, const char *in, size_t n)
{
	const char *p, *end = in + n;

	if (n == 0)
		return;
	if (!z->nul && memchr(in, '\0', n))
		z->nul = 1;
	if (!z->eightbit && has_high_bit(in, n))
		z->eightbit = 1;
	z->raw += n;
	z->wire += n;
	if (z->last == '\r' && in[0] != '\n')
		z->wire++;   /* the CR that ended the previous block was lone */
	for (p = in; (p = memchr(p, '\n', (size_t)(end - p))); p++)
		if ((p > in ? p[-1] : z->last) != '\r')
			z->wire++;
	for (p = in; (p = memchr(p, '\r', (size_t)(end - p))); p++)
		if (p + 1 < end && p[1] != '\n')
			z->wire++;
	z->last = (unsigned char)end[-1];
}

unsigned long long body_scan_wire(const struct body_scan *z)
{
	if (z->last == '\r')
		return z->wire + 1;   /* a final lone CR becomes CRLF */
	if (z->last >= 0 && z->last != '\n')
		return z->wire + 2;   /* body_finish adds the missing CRLF */
	return z->wire;
}
