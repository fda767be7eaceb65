/* smtp_bdat.c - the message with BDAT (RFC 3030 CHUNKING), pipelined.
 *
 * No dot-stuffing and no end-of-data scan on the server: the body goes out in
 * chunks of up to BDAT_CHUNK normalised bytes.  With one recipient (or with
 * partial_delivery) everything rides in one flight: MAIL, RCPT, every BDAT
 * and the LAST one, then the replies are read in order.  A refused lone
 * recipient leaves the LAST chunk with no recipient, so nothing is delivered.
 * With several recipients and all-or-nothing delivery, the RCPT verdicts are
 * read before the first chunk: a LAST that reached the relay would deliver to
 * the accepted ones.
 */
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
	size_t chunks;     /* chunks sent before LAST: each gets a reply */
};

static int emit(struct bdat_sink *k, int last)
{
	struct smtp_session *s = k->s;
	char hdr[64];
	int n = snprintf(hdr, sizeof hdr, "BDAT %zu%s", k->len, last ? " LAST" : "");

	if (ss_send_line(s, hdr, (size_t)n, NULL) < 0)
		return -1;
	if (conn_write(s->c, k->buf, k->len, ss_tmo(s, T_BLOCK), s->r) < 0)
		return ss_conn_failed(s, PHASE_BDAT);
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

/* [RSET,] MAIL and every RCPT, already sent; read their replies.  After a
 * refusal the rest are still read, so the session stays in step (QUIT can
 * follow); only a lost connection leaves s->dead. */
static int read_envelope(struct smtp_session *s, const struct smtp_envelope *env,
			 int rset, struct rcpt_tally *t)
{
	struct result first;
	int failed = 0;

	result_clear(&first);
	if (rset && ss_expect(s, PHASE_RSET, T_MAIL, 2) < 0) {
		if (s->dead)
			return -1;
		failed = 1, first = *s->r;
	}
	if (ss_expect(s, PHASE_MAIL, T_MAIL, 2) < 0) {
		if (s->dead)
			return -1;
		if (!failed)
			failed = 1, first = *s->r;
	}
	for (size_t i = 0; i < env->nrcpt; i++) {
		if (ss_read_reply(s, PHASE_RCPT, T_RCPT) < 0)
			return -1;
		if (!failed)
			ss_tally_rcpt(s, t, env->rcpt[i]);
	}
	if (failed)
		*s->r = first;
	return failed ? -1 : 0;
}

/* Replies still owed for what was sent before we stopped: keeps the session
 * in step so that QUIT can end it properly. */
static void drain(struct smtp_session *s, size_t n)
{
	struct result keep = *s->r;

	if (ss_flush(s, PHASE_BDAT, T_BLOCK) == 0)
		for (size_t i = 0; i < n && !s->dead; i++)
			ss_read_reply(s, PHASE_BDAT, T_BLOCK);
	*s->r = keep;
}

int ss_bdat_ok(const struct smtp_session *s)
{
	unsigned both = CAP_CHUNKING | CAP_PIPELINING;

	/* LMTP's BDAT LAST has per-recipient replies too; DATA keeps one
	 * place that reads them */
	return (s->caps.flags & both) == both && !s->no_bdat && !s->p->lmtp;
}

/* RFC 5321 4.2.4: 500, 502 and 504 say "command not recognised / not
 * implemented".  As the reply to the first BDAT of a relay that offered
 * CHUNKING they mean it does not do BDAT after all (aiosmtpd with CHUNKING
 * added to its EHLO reply answers 500 and reads the chunk as command
 * lines).  Other refusals keep their meaning. */
static int not_recognised(const struct smtp_session *s)
{
	return s->rp.code == 500 || s->rp.code == 502 || s->rp.code == 504;
}

/* Replies and commands are out of step now (the relay may be reading our
 * chunk as commands): nothing more on this connection.  A refused recipient
 * says more than the BDAT refusal; otherwise the caller may try DATA. */
static int bdat_refused(struct smtp_session *s, const struct rcpt_tally *t)
{
	s->dead = 1;
	if (t && ss_check_tally(s, t) < 0)
		return -1;
	s->no_bdat = 1;
	result_reply(s->r, PHASE_BDAT, s->rp.code, s->rp.enh, s->rp.text);
	s->r->exitcode = EX_TEMPFAIL;   /* not delivered, and DATA may do */
	return -1;
}

/* One reply per chunk, then the verdict on the whole message. */
static int read_chunks(struct smtp_session *s, const struct bdat_sink *k,
		       const struct rcpt_tally *t, struct smtp_outcome *out)
{
	struct result first;
	int failed = 0;

	result_clear(&first);
	for (size_t i = 0; i < k->chunks; i++) {
		if (ss_read_reply(s, PHASE_BDAT, T_BLOCK) < 0)
			return -1;
		if (i == 0 && not_recognised(s))
			return bdat_refused(s, t);
		if (!failed && s->rp.code / 100 != 2) {
			failed = 1;
			result_reply(&first, PHASE_BDAT, s->rp.code, s->rp.enh, s->rp.text);
		}
	}
	if (ss_read_reply(s, PHASE_EOD, T_EOD) < 0)
		return -1;
	if (k->chunks == 0 && not_recognised(s))
		return bdat_refused(s, t);
	if (t && ss_check_tally(s, t) < 0)
		return -1;
	if (failed) {
		*s->r = first;
		return -1;
	}
	if (ss_check_reply(s, PHASE_EOD, 2) < 0)
		return -1;
	if (out) {
		out->bytes = k->bf.out_total;
		result_sanitise(out->final_reply, sizeof out->final_reply,
				s->rp.text, s->rp.textlen);
	}
	return 0;
}

/* The body, then LAST, all queued.  (QUIT waits for the verdict on LAST:
 * see smtp_transaction.) */
static int send_chunks(struct smtp_session *s, const struct smtp_message *msg,
		       struct bdat_sink *k)
{
	if (ss_for_each_block(msg, bdat_put, k, s->r) < 0)
		return -1;
	k->len += body_finish(&k->bf, k->buf + k->len);
	if (k->bf.nul && !s->binary) {
		/* No LAST goes out, so the relay discards what it got; the
		 * caller drains the replies still owed. */
		s->r->phase = PHASE_BDAT;
		return result_fail(s->r, EX_DATAERR, "the message contains NUL bytes, "
				   "which need BINARYMIME");
	}
	if (emit(k, 1) < 0)
		return -1;
	log_proto("->", "[message]", 9);
	return ss_flush(s, PHASE_BDAT, T_BLOCK);
}

/* The sending half of a one-flight transaction: [RSET,] MAIL, every RCPT,
 * the chunks and LAST, flushed; nothing is read.  On a NUL in a body that
 * is not BINARYMIME no LAST goes out (see send_chunks). */
static int send_one_flight(struct smtp_session *s, const struct smtp_envelope *env,
			   const struct smtp_message *msg, struct bdat_sink *k, int rset)
{
	if ((rset && ss_send_cmd(s, "RSET") < 0) || ss_send_mail(s, env) < 0)
		return -1;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (ss_send_rcpt(s, env, i) < 0)
			return -1;
	return send_chunks(s, msg, k);
}

int ss_bdat_transaction(struct smtp_session *s, const struct smtp_envelope *env,
			const struct smtp_message *msg, struct smtp_outcome *out)
{
	struct bdat_sink k = { .s = s };
	struct rcpt_tally t = { 0 };
	int one_flight = env->nrcpt == 1 || s->p->partial_delivery;
	int rset = s->dirty;
	int rc = -1;

	if (ss_in_step(s, PHASE_MAIL) < 0)
		return -1;
	k.buf = malloc(BDAT_CHUNK);
	if (!k.buf)
		return result_fail(s->r, EX_OSERR, "out of memory");
	body_init(&k.bf, 0);
	if (one_flight) {
		if (send_one_flight(s, env, msg, &k, rset) < 0) {
			if (!s->dead && s->r->exitcode == EX_DATAERR)
				drain(s, k.chunks + rset + 1 + env->nrcpt);
			goto out;
		}
	} else {
		if ((rset && ss_send_cmd(s, "RSET") < 0) || ss_send_mail(s, env) < 0)
			goto out;
		for (size_t i = 0; i < env->nrcpt; i++)
			if (ss_send_rcpt(s, env, i) < 0)
				goto out;
		if (ss_flush(s, PHASE_MAIL, T_MAIL) < 0 ||
		    read_envelope(s, env, rset, &t) < 0 || ss_check_tally(s, &t) < 0)
			goto out;
		if (send_chunks(s, msg, &k) < 0) {
			if (!s->dead && s->r->exitcode == EX_DATAERR)
				drain(s, k.chunks);
			goto out;
		}
	}
	if (one_flight && read_envelope(s, env, rset, &t) < 0) {
		if (!s->dead)
			drain(s, k.chunks + 1);   /* the chunks and LAST */
		goto out;
	}
	rc = read_chunks(s, &k, one_flight ? &t : NULL, out);
	if (out && rc == 0)
		out->accepted = s->accepted;
out:
	free(k.buf);
	return rc;
}

/* ---- a batch of transactions in one flight (issue 17) ---------------------
 *
 * RFC 2920 and 3030 let MAIL, RCPT and BDAT ... LAST of many transactions
 * travel back to back; the replies come back in order.  Every item is sent
 * first (no RSET: a transaction that ended with LAST, delivered or refused,
 * leaves the relay ready for the next MAIL), then the replies are read.  The
 * first lost connection or 421 leaves the rest SMTP_BATCH_LOST: they stay
 * queued, untouched.  Only one-flight items (one recipient, or partial
 * delivery) without NUL bytes are batched: anything else needs a reply
 * before its data. */

int smtp_batchable(const struct smtp_session *s, const struct smtp_envelope *env)
{
	int too_big = (s->caps.flags & CAP_SIZE) && s->caps.size_max &&
		      env->size > s->caps.size_max;   /* smtp_transaction refuses it */

	return ss_bdat_ok(s) && !s->dead && !s->quit_sent && !env->binary && !too_big &&
	       (env->nrcpt == 1 || s->p->partial_delivery);
}

static void batch_send(struct smtp_session *s, struct smtp_batch_item *it, size_t n,
		       struct bdat_sink *k, size_t *sent)
{
	for (*sent = 0; *sent < n && !s->dead; ++*sent) {
		struct smtp_batch_item *b = &it[*sent];

		s->r = &b->r;
		k[*sent] = (struct bdat_sink){ .s = s, .buf = k[0].buf };
		body_init(&k[*sent].bf, 0);
		s->transactions++;
		if (send_one_flight(s, b->env, b->msg, &k[*sent], s->dirty && *sent == 0) < 0)
			break;
	}
}

/* An item's outcome is final unless the relay just turned out not to take
 * BDAT: then smtp_batch sends what is left with DATA and tells it later. */
static void tell(struct smtp_session *s, void (*told)(void *, size_t), void *arg,
		 size_t i)
{
	if (told && !s->no_bdat)
		told(arg, i);
}

static void batch_read(struct smtp_session *s, struct smtp_batch_item *it, size_t sent,
		       struct bdat_sink *k, void (*told)(void *, size_t), void *arg)
{
	for (size_t i = 0; i < sent; i++, tell(s, told, arg, i - 1)) {
		struct smtp_batch_item *b = &it[i];
		struct rcpt_tally t = { 0 };

		s->r = &b->r;
		s->accepted = 0;
		if (s->dead) {
			b->state = SMTP_BATCH_LOST;
			continue;
		}
		if (read_envelope(s, b->env, s->dirty && i == 0, &t) < 0) {
			if (!s->dead)
				drain(s, k[i].chunks + 1);
			b->state = s->dead ? SMTP_BATCH_LOST : SMTP_BATCH_REFUSED;
			continue;
		}
		if (read_chunks(s, &k[i], &t, &b->out) == 0) {
			b->out.accepted = s->accepted;
			b->state = SMTP_BATCH_DONE;
		} else {
			b->state = s->dead ? SMTP_BATCH_LOST : SMTP_BATCH_REFUSED;
		}
	}
}

int ss_bdat_batch(struct smtp_session *s, struct smtp_batch_item *it, size_t n,
		  void (*told)(void *arg, size_t i), void *arg)
{
	struct bdat_sink *k = calloc(n ? n : 1, sizeof *k);
	char *buf = malloc(BDAT_CHUNK);
	size_t sent = 0;

	for (size_t i = 0; i < n; i++) {
		it[i].state = SMTP_BATCH_LOST;
		result_clear(&it[i].r);
		it[i].r.phase = PHASE_MAIL;
		result_fail(&it[i].r, EX_TEMPFAIL, "not sent: the connection failed "
			    "before this message's turn");
	}
	if (!k || !buf) {
		free(k);
		free(buf);
		return -1;
	}
	k[0].buf = buf;   /* chunks are sent as they fill: one buffer serves all */
	if (ss_in_step(s, PHASE_MAIL) == 0) {
		batch_send(s, it, n, k, &sent);
		if (sent < n && s->dead && sent > 0) {
			/* the relay closed while we were still sending (one that
			 * reads a chunk as commands gives up after a few): what it
			 * answered before that is still there to be read, and may
			 * say why (a BDAT it does not recognise) */
			s->dead = 0;
			batch_read(s, it, sent, k, told, arg);
			s->dead = 1;
		} else if (sent < n && !s->dead) {
			/* a local failure while sending item `sent` (a NUL byte,
			 * a read error) left its transaction open on the relay:
			 * the replies of the items before it are read, then the
			 * session ends; its own result says why */
			struct result why = it[sent].r;
			batch_read(s, it, sent, k, told, arg);
			s->dead = 1;
			it[sent].r = why;
			it[sent].state = SMTP_BATCH_REFUSED;
		} else {
			batch_read(s, it, sent, k, told, arg);
		}
		/* every transaction sent ended with LAST: none is left open */
		s->dirty = s->dead;
	}
	/* the items never sent (or sent when the connection broke) */
	for (size_t i = sent; i < n; i++)
		tell(s, told, arg, i);
	free(buf);
	free(k);
	return 0;
}
