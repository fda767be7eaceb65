/* smtp_bdat.c - the message with BDAT (RFC 3030 CHUNKING), pipelined.
 *
 * No dot-stuffing and no end-of-data scan on the server: the body goes out
 * in chunks of up to BDAT_CHUNK normalised bytes, each chunk's reply owed
 * (PHASE_BDAT), the LAST one's reply being the verdict on the message
 * (PHASE_EOD).  Nothing here waits for a reply: the transaction layer
 * decides when the chunks may follow the envelope. */
#include "config.h"
#include "session.h"
#include "body.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BDAT_CHUNK (1024 * 1024)

struct bdat_sink {
	struct smtp_session *s;
	struct body_filter bf;
	char *buf;
	size_t len;
	unsigned item;
	unsigned chunks;   /* chunks sent before LAST: each gets a reply */
};

static int emit(struct bdat_sink *k, int last)
{
	struct pending rec = { last ? PHASE_EOD : PHASE_BDAT, k->item, k->chunks };
	char hdr[64];
	int n = snprintf(hdr, sizeof hdr, "BDAT %zu%s", k->len, last ? " LAST" : "");

	if (eng_send(&k->s->e, rec, hdr, (size_t)n, NULL) < 0 ||
	    sio_write(&k->s->e.io, k->buf, k->len, PHASE_BDAT) < 0)
		return -1;
	k->len = 0;
	k->chunks += !last;
	return 0;
}

static int bdat_put(void *ctx, const char *p, size_t n)
{
	struct bdat_sink *k = ctx;

	if (BDAT_CHUNK - k->len < BODY_OUT_MAX(n) && emit(k, 0) < 0)
		return -1;
	k->len += body_feed(&k->bf, p, n, k->buf + k->len);
	return 0;
}

int ss_bdat_ok(const struct smtp_session *s)
{
	unsigned both = CAP_CHUNKING | CAP_PIPELINING;

	/* LMTP's BDAT LAST has per-recipient replies too; DATA keeps one
	 * place that reads them */
	return (s->caps.flags & both) == both && !s->no_bdat && !s->p->lmtp;
}

static int send_chunks(struct bdat_sink *k, const struct smtp_message *msg, int binary)
{
	struct result *r = k->s->e.io.r;

	if (ss_for_each_block(msg, bdat_put, k, r) < 0)
		return -1;
	k->len += body_finish(&k->bf, k->buf + k->len);
	if (k->bf.nul && !binary) {
		/* No LAST goes out, so the relay discards what it got. */
		r->phase = PHASE_BDAT;
		return result_fail(r, EX_DATAERR, "the message contains NUL bytes, "
				   "which need BINARYMIME");
	}
	if (emit(k, 1) < 0)
		return -1;
	log_proto("->", "[message]", 9);
	return 0;
}

int ss_send_bdat(struct smtp_session *s, const struct smtp_message *msg, unsigned item,
		 int binary, unsigned long long *bytes)
{
	struct bdat_sink k = { .s = s, .item = item };
	int rc;

	if (!s->bdat_buf && !(s->bdat_buf = malloc(BDAT_CHUNK)))
		return result_fail(s->e.io.r, EX_OSERR, "out of memory");
	k.buf = s->bdat_buf;
	body_init(&k.bf, 0);
	rc = send_chunks(&k, msg, binary);
	*bytes = k.bf.out_total;
	return rc;
}
