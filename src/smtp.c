/* smtp.c - transactions over an SMTP session (see smtp.h), the top layer.
 *
 * A window of transactions is sent through the engine (engine.h) and the
 * replies are read back in order, each applied to its own transaction by
 * one switch (apply): MAIL, RCPT, DATA, BDAT and the end of data of many
 * messages travel back to back (RFC 2920, RFC 3030), and every message gets
 * its own outcome.  A message waits for a reply before going on only where
 * the protocol says so: the 354 before DATA's body, the recipients' verdicts
 * before BDAT when all-or-nothing delivery has several recipients, and every
 * reply when the relay does not offer PIPELINING.
 *
 * Relays are not asked to RSET after a completed transaction (RFC 5321
 * 3.3): only after one that this side stopped before its end of data. */
#include "config.h"
#include "smtp.h"
#include "session.h"
#include "body.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* In flight at once, transactions and their bytes: what a lost connection
 * can cost in work sent again. */
#define WINDOW 50
#define WINDOW_BYTES (16u << 20)

/* One message's progress through the window. */
struct txn {
	struct smtp_batch_item *it;   /* env, msg in; state, r, out out */
	int sent, resolved;
	int failed;                   /* it->r holds a refusal of RSET or MAIL */
	int tallied;                  /* the recipients' verdict was taken */
	int bdat, binary;
	int chunk_failed;
	struct result chunk_r;        /* the first refused chunk */
	struct rcpt_tally t;          /* RCPT verdicts */
	struct rcpt_tally lt;         /* LMTP: verdicts after the data */
	const char **ok_rcpt;         /* LMTP: the accepted, in RCPT order */
	size_t nok;
	unsigned long long bytes;
	int counted;                  /* bytes are in the run's inflight_bytes */
	off_t start;                  /* where msg->fd stood (-1: a pipe) */
	int told;
};

struct run {
	struct smtp_session *s;
	struct txn *t;
	size_t n, next, inflight;
	unsigned long long inflight_bytes;
	int salvage;                  /* a write failed: what the relay said
					 before it closed may still be read */
	struct result conn_r;         /* the first transport failure */
	int retry;                    /* the DATA retry: outcomes are final */
	void (*told)(void *arg, size_t i);
	void *arg;
};

static int usable(const struct smtp_session *s)
{
	return !s->e.io.dead && !s->in_data && !s->quit_sent && !s->auth_failed;
}

/* ---- outcomes ---------------------------------------------------------------- */

static void tell(struct run *rn, struct txn *x)
{
	/* while the relay turns out not to take BDAT, outcomes wait: what
	 * was not delivered goes again with DATA (retry_with_data) */
	if (x->told || (rn->s->no_bdat && !rn->retry))
		return;
	x->told = 1;
	if (rn->told)
		rn->told(rn->arg, (size_t)(x - rn->t));
}

static void resolve(struct run *rn, struct txn *x, enum smtp_batch_state st)
{
	struct smtp_session *s = rn->s;

	if (x->resolved)
		return;
	x->resolved = 1;
	rn->inflight -= x->sent;
	if (x->counted)
		rn->inflight_bytes -= x->bytes;
	if (s->auth_failed) {
		/* RFC 4954 4: what followed a refused AUTH was taken from an
		 * unauthenticated client; never count it as sent */
		if (st == SMTP_BATCH_DONE)
			log_err("warning: %s refused AUTH yet accepted a message sent "
				"after it (it takes mail from unauthenticated clients); "
				"it is not counted as sent and may arrive twice",
				s->p->host ? s->p->host : "the relay");
		x->it->r = s->auth_r;
		st = SMTP_BATCH_LOST;
	}
	if (st != SMTP_BATCH_DONE && !x->it->r.exitcode)
		result_fail(&x->it->r, EX_SOFTWARE, "internal error: a message was not "
			    "sent and no reason was recorded");
	x->it->state = st;
	if (st == SMTP_BATCH_DONE) {
		x->it->out.accepted = s->p->lmtp ? x->lt.accepted : x->t.accepted;
		x->it->out.bytes = x->bytes;
	}
	tell(rn, x);
}

/* Put the message's first refusal, if any, in its result: it says more than
 * a lost connection (a 421 to RCPT, then the relay hangs up).  1 if there
 * was one. */
static int take_refusal(struct txn *x)
{
	if (x->failed)
		return 1;
	if (x->t.refused && !x->tallied) {
		x->it->r = x->t.worst;
		return 1;
	}
	if (x->lt.refused) {
		x->it->r = x->lt.worst;
		return 1;
	}
	if (x->chunk_failed) {
		x->it->r = x->chunk_r;
		return 1;
	}
	return 0;
}

/* What was sent but not answered is lost (not delivered, as far as anyone
 * can tell); what was never sent is lost too, untouched. */
static void finish(struct run *rn)
{
	for (size_t i = 0; i < rn->n; i++) {
		struct txn *x = &rn->t[i];

		if (x->resolved)
			continue;
		if (x->sent && take_refusal(x)) {
			resolve(rn, x, SMTP_BATCH_REFUSED);
			continue;
		}
		if (x->sent && rn->conn_r.exitcode) {
			x->it->r = rn->conn_r;
		} else if (!x->sent || !x->it->r.exitcode) {
			result_clear(&x->it->r);
			x->it->r.phase = PHASE_MAIL;
			result_fail(&x->it->r, EX_TEMPFAIL, x->sent ? "the connection "
				    "failed before the relay's verdict" : "not sent: the "
				    "connection failed before this message's turn");
		}
		resolve(rn, x, SMTP_BATCH_LOST);
	}
}

/* ---- applying replies -------------------------------------------------------- */

static int not_recognised(const struct reply *rp)
{
	/* RFC 5321 4.2.4: "command not recognised / not implemented".  As the
	 * reply to the first BDAT of a relay that offered CHUNKING they mean it
	 * does not do BDAT after all (aiosmtpd with CHUNKING added to its EHLO
	 * reply answers 500 and reads the chunk as command lines). */
	return rp->code == 500 || rp->code == 502 || rp->code == 504;
}

static void refuse(struct txn *x, enum smtp_phase phase, const struct reply *rp)
{
	if (x->failed)
		return;
	x->failed = 1;
	result_reply(&x->it->r, phase, rp->code, rp->enh, rp->text);
}

/* The recipients' verdict, taken once: -1 refused (it->r set). */
static int tally_once(struct run *rn, struct txn *x)
{
	if (x->tallied)
		return 0;
	x->tallied = 1;
	return ss_tally_verdict(&x->t, rn->s->p->partial_delivery, &x->it->r);
}

/* The relay does not take BDAT after all: out of step now (it may read our
 * chunk as commands), so the connection ends; the message may go again
 * with DATA on a new one (EX_TEMPFAIL: not delivered).  A refused
 * recipient says more than the BDAT refusal. */
static void bdat_refused(struct run *rn, struct txn *x)
{
	struct smtp_session *s = rn->s;
	const struct reply *rp = &s->e.io.rp;

	s->e.io.dead = 1;
	if (tally_once(rn, x) < 0) {
		resolve(rn, x, SMTP_BATCH_REFUSED);
		return;
	}
	s->no_bdat = 1;
	result_reply(&x->it->r, PHASE_BDAT, rp->code, rp->enh, rp->text);
	x->it->r.exitcode = EX_TEMPFAIL;
	x->failed = 1;
}

static void data_reply(struct run *rn, struct txn *x)
{
	struct smtp_session *s = rn->s;
	const struct reply *rp = &s->e.io.rp;

	s->in_data = rp->code == 354;
	if (x->failed || tally_once(rn, x) < 0) {
		resolve(rn, x, SMTP_BATCH_REFUSED);
	} else if (rp->code >= 400) {
		result_reply(&x->it->r, PHASE_DATA, rp->code, rp->enh, rp->text);
		resolve(rn, x, SMTP_BATCH_REFUSED);
	} else if (rp->code != 354) {
		x->it->r.phase = PHASE_DATA;
		result_fail(&x->it->r, EX_PROTOCOL, "unexpected reply %d to DATA", rp->code);
		resolve(rn, x, SMTP_BATCH_REFUSED);
	}
}

static void chunk_reply(struct run *rn, struct txn *x, unsigned k)
{
	const struct reply *rp = &rn->s->e.io.rp;

	if (x->failed)
		return;
	if (k == 0 && not_recognised(rp)) {
		bdat_refused(rn, x);
		return;
	}
	if (!x->chunk_failed && rp->code / 100 != 2) {
		x->chunk_failed = 1;
		result_reply(&x->chunk_r, PHASE_BDAT, rp->code, rp->enh, rp->text);
	}
}

static void done(struct run *rn, struct txn *x)
{
	const struct reply *rp = &rn->s->e.io.rp;

	result_sanitise(x->it->out.final_reply, sizeof x->it->out.final_reply, rp->text,
			rp->textlen);
	resolve(rn, x, SMTP_BATCH_DONE);
}

/* RFC 2033 4.2: after the data an LMTP server answers once per accepted
 * recipient, in RCPT order; judged like refused RCPTs. */
static void lmtp_reply(struct run *rn, struct txn *x, unsigned j)
{
	const struct reply *rp = &rn->s->e.io.rp;

	ss_tally(&x->lt, rp, x->ok_rcpt[j]);
	if (rp->code / 100 == 2)
		result_sanitise(x->it->out.final_reply, sizeof x->it->out.final_reply,
				rp->text, rp->textlen);
	if (j + 1 < x->nok)
		return;
	if (x->lt.refused && x->lt.accepted)
		log_err("LMTP: %zu of %zu recipient(s) got the message; refused after "
			"the data: %s", x->lt.accepted, x->nok, x->lt.list);
	if (ss_tally_verdict(&x->lt, rn->s->p->partial_delivery, &x->it->r) < 0) {
		x->lt.refused = 0;   /* it->r is the verdict */
		resolve(rn, x, SMTP_BATCH_REFUSED);
		return;
	}
	resolve(rn, x, SMTP_BATCH_DONE);
}

/* The end of data's reply (DATA's dot, or BDAT LAST after `chunks`). */
static void eod_reply(struct run *rn, struct txn *x, unsigned arg)
{
	const struct reply *rp = &rn->s->e.io.rp;

	if (rn->s->p->lmtp) {
		lmtp_reply(rn, x, arg);
		return;
	}
	if (x->failed) {
		resolve(rn, x, SMTP_BATCH_REFUSED);
		return;
	}
	if (x->bdat && arg == 0 && not_recognised(rp)) {
		bdat_refused(rn, x);
		return;
	}
	if (tally_once(rn, x) < 0 || take_refusal(x)) {
		resolve(rn, x, SMTP_BATCH_REFUSED);
	} else if (rp->code / 100 != 2) {
		result_reply(&x->it->r, PHASE_EOD, rp->code, rp->enh, rp->text);
		resolve(rn, x, SMTP_BATCH_REFUSED);
	} else {
		done(rn, x);
	}
}

static void apply_to(struct run *rn, struct txn *x, const struct pending *rec)
{
	const struct reply *rp = &rn->s->e.io.rp;

	switch (rec->phase) {
	case PHASE_RSET:
	case PHASE_MAIL:
		if (rp->code / 100 != 2)
			refuse(x, (enum smtp_phase)rec->phase, rp);
		break;
	case PHASE_RCPT:
		if (x->failed)
			break;
		ss_tally(&x->t, rp, x->it->env->rcpt[rec->arg]);
		if (rp->code / 100 == 2 && x->ok_rcpt)
			x->ok_rcpt[x->nok++] = x->it->env->rcpt[rec->arg];
		break;
	case PHASE_DATA: data_reply(rn, x); break;
	case PHASE_BDAT: chunk_reply(rn, x, rec->arg); break;
	case PHASE_EOD: eod_reply(rn, x, rec->arg); break;
	default: break;
	}
}

/* RFC 5321 3.8: 421 is the relay closing; nothing more will come.  The
 * message it answered is refused (for now); the rest in flight are lost. */
static void closing(struct run *rn, struct txn *x, const struct pending *rec)
{
	const struct reply *rp = &rn->s->e.io.rp;

	rn->s->e.io.dead = 1;
	result_reply(&rn->conn_r, (enum smtp_phase)rec->phase, rp->code, rp->enh, rp->text);
	if (x && !x->resolved) {
		if (!take_refusal(x))
			refuse(x, (enum smtp_phase)rec->phase, rp);
		resolve(rn, x, SMTP_BATCH_REFUSED);
	}
}

/* One reply, to the command rec says. */
static void apply(struct run *rn, const struct pending *rec)
{
	struct smtp_session *s = rn->s;
	struct txn *x = NULL;

	if (rec->phase == PHASE_AUTH) {
		ss_auth_verdict(s);
	} else {
		x = &rn->t[rec->item];
		if (!x->resolved)
			apply_to(rn, x, rec);
	}
	if (s->e.io.rp.code == 421 && !s->e.io.dead)
		closing(rn, x, rec);
}

/* Read and apply one reply.  -1: the connection failed (or the relay
 * closed); what is unanswered is settled by finish(). */
static int read_one(struct run *rn)
{
	struct smtp_session *s = rn->s;
	struct result err, *keep = s->e.io.r;
	struct pending rec;
	int rc;

	if (s->e.io.dead && !rn->salvage)
		return -1;
	result_clear(&err);
	s->e.io.r = &err;
	rc = eng_read(&s->e, &rec);
	s->e.io.r = keep;
	if (rc < 0) {
		/* a relay that drops the connection with several transactions
		 * in flight may not take transactions pipelined behind an end
		 * of data (Dovecot 2.3.19's submission dies on an assertion):
		 * the caller may send one at a time from now on */
		s->window_broke |= rn->inflight > 1;
		s->e.io.dead = 1;
		eng_forget(&s->e);
		if (!rn->conn_r.exitcode)
			rn->conn_r = err;
		return -1;
	}
	apply(rn, &rec);
	return 0;
}

/* Every owed reply, up to the first failure. */
static int barrier(struct run *rn)
{
	while (eng_owed(&rn->s->e) > 0)
		if (read_one(rn) < 0)
			return -1;
	return 0;
}

static void count_bytes(struct run *rn, struct txn *x)
{
	if (x->resolved || x->counted)
		return;
	x->counted = 1;
	rn->inflight_bytes += x->bytes;
}

/* ---- sending ------------------------------------------------------------------- */

/* Sending x failed: a transport failure (what came back before may still
 * be read), or a local one (x is refused; the relay may have an open
 * transaction, so RSET before the next). */
static int send_failed(struct run *rn, struct txn *x)
{
	struct smtp_session *s = rn->s;

	if (s->e.io.dead) {
		rn->salvage = 1;
		if (!rn->conn_r.exitcode)
			rn->conn_r = x->it->r;
		return -1;
	}
	s->dirty = 1;
	resolve(rn, x, SMTP_BATCH_REFUSED);
	return -1;
}

/* RFC 1870: refuse before sending anything when the server already said
 * the message is too big for it. */
static int check_size(struct smtp_session *s, const struct smtp_envelope *env,
		      struct result *r)
{
	if (!(s->caps.flags & CAP_SIZE) || s->caps.size_max == 0 ||
	    env->size <= s->caps.size_max)
		return 0;
	r->phase = PHASE_MAIL;
	return result_fail(r, EX_UNAVAILABLE,
			   "message of %llu bytes exceeds the server's limit of %llu bytes",
			   env->size, s->caps.size_max);
}

/* Without PIPELINING every command waits for its reply (RFC 2920). */
static int step(struct run *rn, struct txn *x)
{
	if (rn->s->caps.flags & CAP_PIPELINING)
		return 0;
	if (barrier(rn) < 0)
		return -1;
	return x->resolved || x->failed ? -1 : 0;
}

/* [RSET,] MAIL and every RCPT. */
static int send_envelope(struct run *rn, struct txn *x, unsigned i)
{
	struct smtp_session *s = rn->s;
	const struct smtp_envelope *env = x->it->env;
	int pipe = (s->caps.flags & CAP_PIPELINING) != 0;

	if (s->dirty) {
		s->dirty = 0;
		if (eng_send(&s->e, (struct pending){ PHASE_RSET, i, 0 }, "RSET", 4, NULL) < 0)
			return send_failed(rn, x);
		if (step(rn, x) < 0)
			return -1;
	}
	if (ss_send_mail(s, env, i, x->binary) < 0)
		return send_failed(rn, x);
	if (step(rn, x) < 0)
		return -1;
	for (size_t j = 0; j < env->nrcpt; j++) {
		if (!pipe && sio_in_step(&s->e.io, PHASE_RCPT) < 0)
			return send_failed(rn, x);
		if (ss_send_rcpt(s, env, j, i) < 0)
			return send_failed(rn, x);
		if (!pipe && barrier(rn) < 0)
			return -1;
	}
	return 0;
}

/* A refusal found before the data: the transaction may be open. */
static void stopped(struct run *rn, struct txn *x)
{
	rn->s->dirty = 1;
	resolve(rn, x, SMTP_BATCH_REFUSED);
}

static void send_data(struct run *rn, struct txn *x, unsigned i)
{
	struct smtp_session *s = rn->s;
	struct result *r = &x->it->r;

	if (!(s->caps.flags & CAP_PIPELINING) && tally_once(rn, x) < 0) {
		stopped(rn, x);
		return;
	}
	if ((!(s->caps.flags & CAP_PIPELINING) && sio_in_step(&s->e.io, PHASE_DATA) < 0) ||
	    eng_send(&s->e, (struct pending){ PHASE_DATA, i, 0 }, "DATA", 4, NULL) < 0) {
		send_failed(rn, x);
		return;
	}
	if (barrier(rn) < 0 || x->resolved) {
		if (x->resolved && !s->in_data)
			s->dirty = 1;
		return;
	}
	if (s->auth_failed) {
		/* 354 after a refused AUTH: the body never goes; closing the
		 * connection in the middle of DATA discards the transaction */
		resolve(rn, x, SMTP_BATCH_LOST);
		return;
	}
	/* After 354 the relay says nothing until the final dot.  Anything
	 * already waiting means its replies and our commands are out of step
	 * (a stray or forged reply): sending the message now could deliver it
	 * on a misread verdict, so stop here. */
	s->e.io.r = r;
	if (conn_pending(s->e.io.c)) {
		sio_failed(&s->e.io, PHASE_DATA);
		result_fail(r, EX_PROTOCOL, "the server sent more than one reply to DATA; "
			    "its replies are out of step, so the message was not sent");
		resolve(rn, x, SMTP_BATCH_LOST);
		return;
	}
	if (ss_send_data(s, x->it->msg, i, s->p->lmtp ? x->nok : 1, &x->bytes) < 0) {
		if (!s->e.io.dead)
			resolve(rn, x, SMTP_BATCH_REFUSED);   /* in_data: closes */
		else
			send_failed(rn, x);
		return;
	}
	count_bytes(rn, x);
	if (!(s->caps.flags & CAP_PIPELINING))
		barrier(rn);
}

/* BDAT: in one flight with the envelope when one recipient (or partial
 * delivery) cannot make a LAST deliver to fewer than meant; otherwise the
 * RCPT verdicts come first. */
static void send_bdat(struct run *rn, struct txn *x, unsigned i)
{
	struct smtp_session *s = rn->s;
	const struct smtp_envelope *env = x->it->env;

	if (env->nrcpt != 1 && !s->p->partial_delivery) {
		if (barrier(rn) < 0 || x->resolved)
			return;
		if (x->failed || s->auth_failed || tally_once(rn, x) < 0) {
			stopped(rn, x);
			return;
		}
	}
	if (ss_send_bdat(s, x->it->msg, i, x->binary, &x->bytes) < 0)
		send_failed(rn, x);
	count_bytes(rn, x);
}

static void send_txn(struct run *rn, size_t i)
{
	struct smtp_session *s = rn->s;
	struct txn *x = &rn->t[i];
	const struct smtp_envelope *env = x->it->env;

	x->sent = 1;
	x->lt.phase = PHASE_EOD;
	rn->inflight++;
	s->transactions++;
	s->e.io.r = &x->it->r;
	x->start = x->it->msg->fd >= 0 ? lseek(x->it->msg->fd, 0, SEEK_CUR) : 0;
	if (check_size(s, env, &x->it->r) < 0) {
		resolve(rn, x, SMTP_BATCH_REFUSED);
		return;
	}
	if (eng_owed(&s->e) == 0 && sio_in_step(&s->e.io, PHASE_MAIL) < 0) {
		if (!rn->conn_r.exitcode)
			rn->conn_r = x->it->r;
		resolve(rn, x, SMTP_BATCH_LOST);
		return;
	}
	x->bdat = ss_bdat_ok(s);
	x->binary = env->binary && (s->caps.flags & CAP_BINARYMIME) && x->bdat;
	if (s->p->lmtp && !(x->ok_rcpt = calloc(env->nrcpt ? env->nrcpt : 1,
						 sizeof *x->ok_rcpt))) {
		result_fail(&x->it->r, EX_OSERR, "out of memory");
		resolve(rn, x, SMTP_BATCH_REFUSED);
		return;
	}
	if (send_envelope(rn, x, (unsigned)i) < 0) {
		if (!x->resolved && !s->e.io.dead && x->failed)
			stopped(rn, x);   /* lock-step RSET or MAIL refusal */
		return;
	}
	if (x->bdat)
		send_bdat(rn, x, (unsigned)i);
	else
		send_data(rn, x, (unsigned)i);
}

/* While a pipelined AUTH's verdict is owed, one message rides with it:
 * were the AUTH refused by a relay that takes mail from anyone on the
 * network, at most that one would have gone out unauthenticated. */
static int window_full(const struct run *rn)
{
	return rn->inflight >= WINDOW || rn->inflight_bytes >= WINDOW_BYTES ||
	       ((rn->s->auth_owed || rn->s->serial) && rn->inflight > 0);
}

/* Once full, the window is drained to half before more is sent: the next
 * transactions then leave together, not one write per reply read. */
static int window_low(const struct run *rn)
{
	return rn->inflight <= WINDOW / 2 && rn->inflight_bytes <= WINDOW_BYTES / 2 &&
	       !rn->s->auth_owed && !(rn->s->serial && rn->inflight > 0);
}

static void run(struct run *rn)
{
	struct smtp_session *s = rn->s;
	int draining = 0;

	while (rn->next < rn->n && usable(s)) {
		if (window_full(rn))
			draining = 1;
		if (draining && !window_low(rn)) {
			if (read_one(rn) < 0)
				break;
			continue;
		}
		draining = 0;
		if (!rn->t[rn->next].resolved)
			send_txn(rn, rn->next);
		rn->next++;
	}
	while (eng_owed(&s->e) > 0 && read_one(rn) == 0)
		;
	if (s->e.io.dead)
		eng_forget(&s->e);
	finish(rn);
}

/* ---- sessions ------------------------------------------------------------------- */

/* Politeness on failure (SPEC 4): QUIT when the session can still take a
 * command.  In the middle of DATA a QUIT would be message text, so just close. */
static void quit_quietly(struct smtp_session *s)
{
	struct result ignored, *keep = s->e.io.r;

	if (s->e.io.dead || s->in_data || s->quit_sent)
		return;
	s->quit_sent = 1;
	result_clear(&ignored);
	s->e.io.r = &ignored;
	if (sio_send_line(&s->e.io, "QUIT", 4, NULL) == 0)
		sio_flush(&s->e.io, PHASE_QUIT, T_QUIT);
	s->e.io.r = keep;
}

/* Greeting, EHLO, TLS and AUTH: everything before the first MAIL. */
static int session_start(struct smtp_session *s)
{
	const struct smtp_params *p = s->p;

	if (p->tls == SMTP_TLS_IMPLICIT && ss_tls_handshake(s, PHASE_TLS) < 0)
		return -1;
	if (ss_greeting(s) < 0 || ss_ehlo(s) < 0)
		return -1;
	if (p->tls == SMTP_TLS_STARTTLS && ss_starttls(s) < 0)
		return -1;
	/* Dovecot's submission (the one relay that offers BURL) dies when a
	 * MAIL arrives before its reply to the previous end of data (2.3.19:
	 * "assertion failed: (conn->state.pending_rcpt_cmds == 0)") */
	s->serial = p->serial || (s->caps.flags & CAP_BURL);
	if (s->serial && !p->serial)
		log_info("%s offers BURL (Dovecot submission): one transaction at a time",
			 p->host ? p->host : "the relay");
	return p->auth && ss_do_auth(s) < 0 ? -1 : 0;
}

static struct smtp_session *session_new(struct conn *c, const struct smtp_params *p,
					struct result *r)
{
	struct smtp_session *s = calloc(1, sizeof *s);

	if (!s) {
		result_fail(r, EX_OSERR, "out of memory");
		return NULL;
	}
	s->e.io.c = c;
	s->e.io.r = r;
	s->e.io.timeout_cap = p->timeout_s;
	s->p = p;
	return s;
}

static void session_free(struct smtp_session *s)
{
	eng_free(&s->e);
	free(s->bdat_buf);
	free(s);
}

struct smtp_session *smtp_open_conn(struct conn *c, const struct smtp_params *p,
				    struct result *r)
{
	struct smtp_session *s = session_new(c, p, r);

	if (s && session_start(s) < 0) {
		quit_quietly(s);
		session_free(s);
		return NULL;
	}
	return s;
}

static int connect_ms(const struct smtp_params *p)
{
	return (p->timeout_s > 0 && p->timeout_s < T_CONNECT ? p->timeout_s : T_CONNECT) *
	       1000;
}

struct smtp_session *smtp_open(const struct smtp_params *p, struct result *r)
{
	struct smtp_session *ss;
	struct conn *c;

	if (conn_open(&c, p->host, p->port, p->route, connect_ms(p), r) < 0)
		return NULL;
	ss = smtp_open_conn(c, p, r);
	if (!ss) {
		conn_close(c);
		return NULL;
	}
	ss->own_conn = 1;
	return ss;
}

/* A new connection in place of one that is out of step: greeting, EHLO,
 * TLS and AUTH again.  What the session learnt (no_bdat) stays. */
static int reconnect(struct smtp_session *s, struct result *r)
{
	conn_close(s->e.io.c);
	s->e.io.c = NULL;
	s->e.io.r = r;
	eng_forget(&s->e);
	if (conn_open(&s->e.io.c, s->p->host, s->p->port, s->p->route, connect_ms(s->p),
		      r) < 0) {
		s->e.io.dead = 1;
		return -1;
	}
	s->e.io.dead = s->in_data = s->quit_sent = s->dirty = 0;
	s->auth_owed = s->auth_failed = 0;
	s->transactions = 0;
	return session_start(s);
}

/* The relay offered CHUNKING, then did not recognise BDAT: what was not
 * told yet goes again with DATA on a new connection, the old one being out
 * of step.  That needs each message again from where it stood: a queued
 * message or a regular file can be read again; a pipe whose bytes went out
 * in BDAT chunks cannot, so that one is a temporary failure. */
static void retry_with_data(struct run *rn)
{
	struct smtp_session *s = rn->s;
	struct txn *first = NULL;

	for (size_t i = 0; i < rn->n && !first; i++)
		if (!rn->t[i].told)
			first = &rn->t[i];
	if (!first)
		return;
	if (first->start < 0 || !s->own_conn) {
		size_t n = strlen(first->it->r.text);
		snprintf(first->it->r.text + n, sizeof first->it->r.text - n,
			 " (the relay offers CHUNKING but does not take BDAT; the message "
			 "%s, so it could not be sent again with DATA: not delivered)",
			 first->start < 0 ? "was read from a pipe" :
			 "came on a connection of the caller's");
		return;
	}
	log_info("%s offers CHUNKING but does not take BDAT: sending with DATA on a "
		 "new connection", s->p->host);
	if (reconnect(s, &first->it->r) < 0)
		return;
	struct run again = { .s = s, .t = rn->t, .n = rn->n, .retry = 1,
			     .told = rn->told, .arg = rn->arg };
	for (size_t i = 0; i < rn->n; i++) {
		struct txn *x = &rn->t[i];
		if (x->told)
			continue;
		if (x->it->msg->fd >= 0 && lseek(x->it->msg->fd, x->start, SEEK_SET) < 0) {
			x->it->r.phase = PHASE_DATA;
			result_fail(&x->it->r, EX_IOERR, "reading the message again: %s",
				    strerror(errno));
			x->it->state = SMTP_BATCH_REFUSED;
			x->sent = x->resolved = 1;   /* told below */
			continue;
		}
		free(x->ok_rcpt);
		*x = (struct txn){ .it = x->it };
		result_clear(&x->it->r);
	}
	run(&again);
}

static void run_txns(struct smtp_session *s, struct txn *t, size_t n,
		     void (*told)(void *, size_t), void *arg)
{
	struct run rn = { .s = s, .t = t, .n = n, .told = told, .arg = arg };
	int no_bdat_before = s->no_bdat;

	run(&rn);
	if (s->no_bdat && !no_bdat_before)
		retry_with_data(&rn);
	for (size_t i = 0; i < n; i++) {
		struct txn *x = &t[i];
		if (!x->told && told)
			told(arg, i);
		x->told = 1;
		free(x->ok_rcpt);
		x->ok_rcpt = NULL;
	}
}

int smtp_transaction(struct smtp_session *s, const struct smtp_envelope *env,
		     const struct smtp_message *msg, int last,
		     struct smtp_outcome *out, struct result *r)
{
	struct smtp_batch_item it = { .env = env, .msg = msg };
	struct txn t = { .it = &it };

	if (!usable(s)) {
		r->phase = PHASE_MAIL;
		return result_fail(r, EX_TEMPFAIL, "the connection can take no more messages");
	}
	result_clear(&it.r);
	run_txns(s, &t, 1, NULL, NULL);
	s->e.io.r = r;
	/* QUIT only after the verdict on the end of data, never in the same
	 * write: Haraka answers a QUIT pipelined after the dot with 503
	 * "pipelined after end of DATA".  It costs no round trip, since the
	 * 221 is not waited for. */
	if (last)
		quit_quietly(s);
	if (it.state == SMTP_BATCH_DONE) {
		if (out)
			*out = it.out;
		return 0;
	}
	*r = it.r;
	return -1;
}

int smtp_batchable(const struct smtp_session *s, const struct smtp_envelope *env)
{
	int too_big = (s->caps.flags & CAP_SIZE) && s->caps.size_max &&
		      env->size > s->caps.size_max;   /* the one-by-one path says why */

	return usable(s) && !too_big;
}

int smtp_batch(struct smtp_session *s, struct smtp_batch_item *it, size_t n,
	       void (*told)(void *arg, size_t i), void *arg)
{
	struct txn *t = calloc(n ? n : 1, sizeof *t);

	if (!t)
		return -1;
	for (size_t i = 0; i < n; i++) {
		t[i].it = &it[i];
		result_clear(&it[i].r);
		memset(&it[i].out, 0, sizeof it[i].out);
	}
	run_txns(s, t, n, told, arg);
	free(t);
	return 0;
}

const struct smtp_params *smtp_params_of(const struct smtp_session *s)
{
	return s->p;
}

int smtp_usable(const struct smtp_session *s)
{
	return usable(s);
}

int smtp_window_broke(const struct smtp_session *s)
{
	return s->window_broke;
}

int smtp_fresh(const struct smtp_session *s)
{
	return usable(s) && eng_owed(&s->e) == 0 && !conn_pending(s->e.io.c);
}

void smtp_close(struct smtp_session *s)
{
	struct result ignored;

	if (!s)
		return;
	result_clear(&ignored);
	s->e.io.r = &ignored;
	quit_quietly(s);
	if (s->own_conn)
		conn_close(s->e.io.c);
	session_free(s);
}

const char *smtp_path(const struct smtp_session *s)
{
	return conn_path(s->e.io.c);
}

/* One message on a freshly opened session (NULL: the open failed). */
static int one_message(struct smtp_session *ss, const struct smtp_envelope *env,
		       const struct smtp_message *msg, struct smtp_outcome *out,
		       struct result *r)
{
	int rc;

	if (!ss)
		return -1;
	rc = smtp_transaction(ss, env, msg, 1, out, r);
	smtp_close(ss);
	return rc;
}

int smtp_session(struct conn *c, const struct smtp_params *p,
		 const struct smtp_envelope *env, const struct smtp_message *msg,
		 struct smtp_outcome *out, struct result *r)
{
	return one_message(smtp_open_conn(c, p, r), env, msg, out, r);
}

int smtp_send(const struct smtp_params *p, const struct smtp_envelope *env,
	      const struct smtp_message *msg, struct smtp_outcome *out,
	      struct result *r)
{
	return one_message(smtp_open(p, r), env, msg, out, r);
}

/* ---- --serverinfo ----------------------------------------------------------------- */

static void copy_reply(const struct reply *rp, char *out, size_t cap)
{
	size_t n = rp->textlen < cap - 1 ? rp->textlen : cap - 1;

	memcpy(out, rp->text, n);
	out[n] = '\0';
}

static int probe_steps(struct smtp_session *s, struct smtp_probe *out)
{
	const struct smtp_params *p = s->p;

	if (p->tls == SMTP_TLS_IMPLICIT && ss_tls_handshake(s, PHASE_TLS) < 0)
		return -1;
	out->tls = p->tls == SMTP_TLS_IMPLICIT;
	if (ss_greeting(s) < 0)
		return -1;
	copy_reply(&s->e.io.rp, out->greeting, sizeof out->greeting);
	if (ss_ehlo(s) < 0)
		return -1;
	copy_reply(&s->e.io.rp, out->ehlo_before, sizeof out->ehlo_before);
	if (p->tls == SMTP_TLS_STARTTLS) {
		if (ss_starttls(s) < 0)
			return -1;
		out->tls = 1;
		copy_reply(&s->e.io.rp, out->ehlo_after, sizeof out->ehlo_after);
	}
	return 0;
}

int smtp_probe(const struct smtp_params *p, struct smtp_probe *out,
	       struct result *r)
{
	struct smtp_session *s = session_new(NULL, p, r);
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (!s)
		return -1;
	if (conn_open(&s->e.io.c, p->host, p->port, p->route,
		      sio_tmo(&s->e.io, T_CONNECT), r) == 0) {
		snprintf(out->path, sizeof out->path, "%s", conn_path(s->e.io.c));
		rc = probe_steps(s, out);
		quit_quietly(s);
		conn_close(s->e.io.c);
	}
	session_free(s);
	return rc;
}

/* ---- --dry-run ---------------------------------------------------------------- */

/* --dry-run: the same envelope lines and the exact bytes that would follow
 * DATA, produced by the same filter, written to f. */
struct dry_sink {
	FILE *f;
	struct body_filter bf;
	char out[BODY_OUT_MAX(BODY_BLOCK)];
};

static int body_to_file(void *ctx, const char *p, size_t n)
{
	struct dry_sink *k = ctx;
	size_t m = body_feed(&k->bf, p, n, k->out);

	return fwrite(k->out, 1, m, k->f) == m ? 0 : -1;
}

int smtp_dry_run(FILE *f, const struct smtp_envelope *env,
		 const struct smtp_message *msg, struct result *r)
{
	struct dry_sink *k = malloc(sizeof *k);
	int rc = -1;

	if (!k)
		return result_fail(r, EX_OSERR, "out of memory");
	k->f = f;
	body_init(&k->bf, 1);
	fprintf(f, "MAIL FROM:<%s>\n", env->from);
	for (size_t i = 0; i < env->nrcpt; i++)
		fprintf(f, "RCPT TO:<%s>\n", env->rcpt[i]);
	fprintf(f, "DATA\n");
	if (ss_for_each_block(msg, body_to_file, k, r) < 0)
		goto out;
	fwrite(k->out, 1, body_finish(&k->bf, k->out), f);
	if (fflush(f) != 0 || ferror(f)) {
		result_fail(r, EX_IOERR, "writing to standard output failed");
		goto out;
	}
	rc = 0;
out:
	free(k);
	return rc;
}
