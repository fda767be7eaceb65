/* smtp.c - one SMTP submission session (see smtp.h).
 *
 * Shaped like curl's lib/smtp.c: each protocol step is a small function that
 * queues its command(s) and one that checks the reply.  Commands go through
 * ss_send_line(), the only place that writes a command, which refuses CR, LF
 * and NUL so that no value can inject a second command (SPEC 4).  AUTH lives
 * in smtp_auth.c, BDAT in smtp_bdat.c; session.h is what they share.
 */
#include "config.h"
#include "session.h"
#include "auth.h"
#include "body.h"
#include "log.h"
#include "progress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ss_tmo(const struct smtp_session *s, int secs)
{
	if (s->p->timeout_s > 0 && s->p->timeout_s < secs)
		secs = s->p->timeout_s;
	return secs * 1000;
}

/* Mark a transport failure: it happened during `phase`, nothing more goes out. */
int ss_conn_failed(struct smtp_session *s, enum smtp_phase phase)
{
	s->dead = 1;
	s->r->phase = phase;
	return -1;
}

/* Queue one line.  The one gate for everything that reaches the wire as a
 * command or response: a CR, LF or NUL in any value would start a new
 * command (SPEC 4).  `shown` replaces the line in the -v transcript (AUTH
 * payloads are never shown); NULL shows the line itself. */
int ss_send_line(struct smtp_session *s, const char *line, size_t n, const char *shown)
{
	if (memchr(line, '\r', n) || memchr(line, '\n', n) || memchr(line, '\0', n))
		return result_fail(s->r, EX_USAGE,
				   "refusing to send a command containing CR, LF or NUL");
	log_proto("->", shown ? shown : line, shown ? strlen(shown) : n);
	if (conn_write(s->c, line, n, ss_tmo(s, T_BLOCK), s->r) < 0 ||
	    conn_write(s->c, "\r\n", 2, ss_tmo(s, T_BLOCK), s->r) < 0)
		return ss_conn_failed(s, PHASE_NONE);
	return 0;
}

__attribute__((format(printf, 2, 3)))
int ss_send_cmd(struct smtp_session *s, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf)
		return result_fail(s->r, EX_USAGE, "SMTP command too long");
	return ss_send_line(s, buf, (size_t)n, NULL);
}

int ss_flush(struct smtp_session *s, enum smtp_phase phase, int secs)
{
	if (conn_flush(s->c, ss_tmo(s, secs), s->r) < 0)
		return ss_conn_failed(s, phase);
	return 0;
}

/* Read one complete reply into s->rp.  -1: transport or syntax failure. */
int ss_read_reply(struct smtp_session *s, enum smtp_phase phase, int secs)
{
	const char *why = NULL;
	long long deadline = conn_now_ms() + ss_tmo(s, secs);
	size_t len;

	reply_init(&s->rp);
	for (;;) {
		/* One deadline for the whole reply, not per line: a relay that
		 * drips continuation lines cannot stretch the phase timeout. */
		long long left = deadline - conn_now_ms();
		if (conn_getline(s->c, s->line, sizeof s->line, &len,
				 left > 0 ? (int)left : 0, s->r) < 0)
			return ss_conn_failed(s, phase);
		log_proto("<-", s->line, len);
		switch (reply_feed(&s->rp, s->line, len, &why)) {
		case REPLY_MORE:
			continue;
		case REPLY_DONE:
			return 0;
		case REPLY_BAD:
			s->dead = 1;
			s->r->phase = phase;
			return result_fail(s->r, EX_PROTOCOL,
					   "malformed reply to %s: %s",
					   result_phase_name(phase), why);
		}
	}
}

int ss_in_step(struct smtp_session *s, enum smtp_phase phase)
{
	if (!conn_pending(s->c))
		return 0;
	/* Every reply we asked for has been read, yet more is waiting.  A 421
	 * is the server closing (a timeout on its side); anything else means
	 * its replies and our commands are out of step, and the next reply we
	 * read would be taken for the wrong command. */
	if (ss_read_reply(s, phase, 2) == 0 && s->rp.code == 421) {
		s->dead = 1;
		return result_reply(s->r, phase, s->rp.code, s->rp.enh, s->rp.text);
	}
	s->dead = 1;
	s->r->phase = phase;
	return result_fail(s->r, EX_PROTOCOL, "the server sent a reply that no command "
			   "asked for; its replies are out of step, so nothing more is sent");
}

/* The reply's first digit must be `want` (2, or 3 for DATA's 354). */
int ss_check_reply(struct smtp_session *s, enum smtp_phase phase, int want)
{
	if (s->rp.code / 100 == want)
		return 0;
	return result_reply(s->r, phase, s->rp.code, s->rp.enh, s->rp.text);
}

int ss_expect(struct smtp_session *s, enum smtp_phase phase, int secs, int want)
{
	if (ss_read_reply(s, phase, secs) < 0)
		return -1;
	return ss_check_reply(s, phase, want);
}

/* ---- steps ---------------------------------------------------------------- */

static int do_greeting(struct smtp_session *s)
{
	return ss_expect(s, PHASE_GREETING, T_GREETING, 2);
}

/* Handshake on the current connection.  A failed handshake leaves the stream
 * in an unknown state, so nothing more is sent on it (not even QUIT). */
static int start_tls(struct smtp_session *s, enum smtp_phase phase)
{
	const struct tls_info *ti = s->p->tls_info;

	if (tls_start(s->c, s->p->tlsp, ss_tmo(s, T_EHLO), s->p->tls_info, s->r) == 0) {
		log_info("TLS: %s", ti ? ti->desc : "");
		if (ti && ti->pin_matched)
			log_info("TLS: tls_fingerprint matched the server's %s",
				 ti->pin_matched);
		return 0;
	}
	s->r->phase = phase;
	s->dead = 1;
	return -1;
}

/* EHLO; HELO only when EHLO is refused with 5xx (RFC 5321 4.1.4, 3.2). */
static int do_ehlo(struct smtp_session *s)
{
	memset(&s->caps, 0, sizeof s->caps);
	/* RFC 2033 4.1: LMTP has LHLO in place of EHLO, and no HELO */
	if (ss_in_step(s, PHASE_EHLO) < 0 ||
	    ss_send_cmd(s, "%s %s", s->p->lmtp ? "LHLO" : "EHLO", s->p->ehlo_name) < 0 ||
	    ss_flush(s, PHASE_EHLO, T_EHLO) < 0 ||
	    ss_read_reply(s, PHASE_EHLO, T_EHLO) < 0)
		return -1;
	if (s->rp.code / 100 == 2) {
		caps_parse(&s->caps, &s->rp);
		return 0;
	}
	if (s->rp.code / 100 != 5 || s->p->lmtp)
		return ss_check_reply(s, PHASE_EHLO, 2);
	log_info("EHLO refused, trying HELO");
	if (ss_send_cmd(s, "HELO %s", s->p->ehlo_name) < 0 ||
	    ss_flush(s, PHASE_HELO, T_EHLO) < 0)
		return -1;
	return ss_expect(s, PHASE_HELO, T_EHLO, 2);
}

/* RFC 3207.  Nothing but EHLO and STARTTLS ever goes out in clear: when the
 * server does not offer it we stop (STARTTLS stripping).  Bytes that arrive
 * with the 220 were sent before the handshake by someone who is not the TLS
 * peer (CVE-2011-0411 class): refuse them.  Then forget every capability and
 * ask again (RFC 3207 4.2). */
static int do_starttls(struct smtp_session *s)
{
	if (!(s->caps.flags & CAP_STARTTLS)) {
		s->r->phase = PHASE_STARTTLS;
		return result_fail(s->r, EX_UNAVAILABLE,
				   "the server does not offer STARTTLS; refusing to "
				   "continue without TLS (tls = starttls)");
	}
	if (ss_send_cmd(s, "STARTTLS") < 0 || ss_flush(s, PHASE_STARTTLS, T_EHLO) < 0 ||
	    ss_expect(s, PHASE_STARTTLS, T_EHLO, 2) < 0)
		return -1;
	if (conn_unread(s->c) > 0) {
		s->dead = 1;
		s->r->phase = PHASE_STARTTLS;
		return result_fail(s->r, EX_PROTOCOL,
				   "the server sent %zu bytes after its STARTTLS reply, "
				   "before the TLS handshake (response injection); aborting",
				   conn_unread(s->c));
	}
	if (start_tls(s, PHASE_TLS) < 0)
		return -1;
	return do_ehlo(s);
}

/* RFC 1870: refuse before sending anything when the server already said the
 * message is too big for it. */
static int check_size(struct smtp_session *s, const struct smtp_envelope *env)
{
	if (!(s->caps.flags & CAP_SIZE) || s->caps.size_max == 0 ||
	    env->size <= s->caps.size_max)
		return 0;
	s->r->phase = PHASE_MAIL;
	return result_fail(s->r, EX_UNAVAILABLE,
			   "message of %llu bytes exceeds the server's limit of %llu bytes",
			   env->size, s->caps.size_max);
}


void ss_tally_rcpt(struct smtp_session *s, struct rcpt_tally *t, const char *rcpt)
{
	struct result one;
	size_t n = strlen(t->list);

	if (s->rp.code / 100 == 2) {
		t->accepted++;
		if (s->p->lmtp && t->phase == PHASE_NONE && s->lmtp_rcpt)
			s->lmtp_rcpt[s->lmtp_n++] = rcpt;
		return;
	}
	t->refused++;
	result_clear(&one);
	result_reply(&one, t->phase ? t->phase : PHASE_RCPT, s->rp.code, s->rp.enh,
		     s->rp.text);
	snprintf(one.arg, sizeof one.arg, "%s", rcpt);
	if (t->refused == 1 || (t->worst.code / 100 == 4 && one.code / 100 == 5))
		t->worst = one;
	snprintf(t->list + n, sizeof t->list - n, "%s<%.200s>: %d %.200s", n ? "; " : "",
		 rcpt, one.code, one.text);
}

int ss_check_tally(struct smtp_session *s, const struct rcpt_tally *t)
{
	if (t->refused && (t->accepted == 0 || !s->p->partial_delivery)) {
		*s->r = t->worst;
		return -1;
	}
	if (t->refused)
		log_err("partial delivery: %zu recipient(s) refused: %s", t->refused,
			t->list);
	s->accepted = t->accepted;
	return 0;
}

/* All-or-nothing by default: one refused recipient stops the message, since a
 * sender who is told "failed" would otherwise resend to those who got it. */
static int finish_envelope(struct smtp_session *s, struct rcpt_tally *t, int pipe)
{
	if (pipe) {
		if (ss_read_reply(s, PHASE_DATA, T_DATA) < 0) {
			/* e.g. 421 to a RCPT, then the relay hangs up: its words
			 * say more than "connection lost" */
			if (t->refused)
				*s->r = t->worst;
			return -1;
		}
		s->in_data = s->rp.code == 354;
	}
	if (ss_check_tally(s, t) < 0)
		return -1;
	if (!pipe) {
		if (ss_in_step(s, PHASE_DATA) < 0 ||
		    ss_send_cmd(s, "DATA") < 0 || ss_flush(s, PHASE_DATA, T_DATA) < 0 ||
		    ss_read_reply(s, PHASE_DATA, T_DATA) < 0)
			return -1;
		s->in_data = s->rp.code == 354;
	}
	if (s->rp.code >= 400)
		return ss_check_reply(s, PHASE_DATA, 3);
	if (s->rp.code != 354) {
		s->r->phase = PHASE_DATA;
		return result_fail(s->r, EX_PROTOCOL, "unexpected reply %d to DATA",
				   s->rp.code);
	}
	s->accepted = t->accepted;
	return 0;
}

/* MAIL, every RCPT and DATA: in one write when PIPELINING is offered
 * (RFC 2920 3.1: DATA may end a pipelined group), else one at a time. */
static int do_envelope(struct smtp_session *s, const struct smtp_envelope *env)
{
	int pipe = (s->caps.flags & CAP_PIPELINING) != 0;
	struct rcpt_tally t = { 0 };
	int rset = s->dirty;
	size_t i;

	if (ss_in_step(s, PHASE_MAIL) < 0)
		return -1;
	if (s->p->lmtp) {
		free(s->lmtp_rcpt);
		s->lmtp_n = 0;
		s->lmtp_rcpt = calloc(env->nrcpt ? env->nrcpt : 1, sizeof *s->lmtp_rcpt);
		if (!s->lmtp_rcpt)
			return result_fail(s->r, EX_OSERR, "out of memory");
	}
	/* A fresh transaction state for every message after the first on this
	 * connection, whatever became of the one before. */
	if (rset && (ss_send_cmd(s, "RSET") < 0 ||
		     (!pipe && (ss_flush(s, PHASE_RSET, T_MAIL) < 0 ||
				ss_expect(s, PHASE_RSET, T_MAIL, 2) < 0))))
		return -1;
	if (ss_send_mail(s, env) < 0)
		return -1;
	if (!pipe && (ss_flush(s, PHASE_MAIL, T_MAIL) < 0 ||
		      ss_expect(s, PHASE_MAIL, T_MAIL, 2) < 0))
		return -1;
	for (i = 0; i < env->nrcpt; i++) {
		if ((!pipe && ss_in_step(s, PHASE_RCPT) < 0) || ss_send_rcpt(s, env, i) < 0)
			return -1;
		if (!pipe && (ss_flush(s, PHASE_RCPT, T_RCPT) < 0 ||
			      ss_read_reply(s, PHASE_RCPT, T_RCPT) < 0))
			return -1;
		if (!pipe)
			ss_tally_rcpt(s, &t, env->rcpt[i]);
	}
	if (pipe) {
		if (ss_send_cmd(s, "DATA") < 0 || ss_flush(s, PHASE_MAIL, T_MAIL) < 0)
			return -1;
		if (rset && ss_expect(s, PHASE_RSET, T_MAIL, 2) < 0) {
			s->dead = 1;   /* replies would be out of step */
			return -1;
		}
		if (ss_expect(s, PHASE_MAIL, T_MAIL, 2) < 0) {
			/* still read the rest so that DATA's verdict is known */
			struct result mail = *s->r;
			for (i = 0; i < env->nrcpt && !s->dead; i++)
				ss_read_reply(s, PHASE_RCPT, T_RCPT);
			if (!s->dead && ss_read_reply(s, PHASE_DATA, T_DATA) == 0 &&
			    s->rp.code == 354)
				s->in_data = 1;
			*s->r = mail;
			return -1;
		}
		for (i = 0; i < env->nrcpt; i++) {
			if (ss_read_reply(s, PHASE_RCPT, T_RCPT) < 0)
				return -1;
			ss_tally_rcpt(s, &t, env->rcpt[i]);
		}
	}
	return finish_envelope(s, &t, pipe);
}

/* ---- the message ------------------------------------------------------------ */

/* Run n input bytes through the filter straight into the write buffer. */
static int put_body(struct smtp_session *s, struct body_filter *bf, const char *in,
		    size_t n)
{
	size_t room;
	char *out = conn_wspace(s->c, &room);

	if (room < BODY_OUT_MAX(n)) {
		if (ss_flush(s, PHASE_DATA, T_BLOCK) < 0)
			return -1;
		out = conn_wspace(s->c, &room);
	}
	conn_commit(s->c, body_feed(bf, in, n, out));
	return 0;
}

/* Bytes the message will have, for the progress line; 0 when unknown. */
static unsigned long long message_size(const struct smtp_message *m)
{
	struct stat st;
	off_t pos;

	if (m->size)
		return m->size;
	if (m->fd < 0)
		return m->headlen;
	pos = lseek(m->fd, 0, SEEK_CUR);
	if (fstat(m->fd, &st) < 0 || !S_ISREG(st.st_mode) || pos < 0 || st.st_size < pos)
		return 0;
	return m->headlen + (unsigned long long)(st.st_size - pos);
}

static int each_block(const struct smtp_message *m,
		      int (*fn)(void *ctx, const char *p, size_t n), void *ctx,
		      struct result *r)
{
	static char block[BODY_BLOCK];
	size_t off;

	for (off = 0; off < m->headlen; off += BODY_BLOCK) {
		size_t n = m->headlen - off < BODY_BLOCK ? m->headlen - off : BODY_BLOCK;
		if (fn(ctx, m->head + off, n) < 0)
			return -1;
		progress_add(n);
	}
	while (m->fd >= 0) {
		ssize_t n = read(m->fd, block, sizeof block);
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r->phase = PHASE_DATA;
			return result_fail(r, EX_IOERR, "reading the message: %s",
					   strerror(errno));
		}
		if (fn(ctx, block, (size_t)n) < 0)
			return -1;
		progress_add((unsigned long long)n);
	}
	return 0;
}

/* Hand the message to fn block by block: the in-memory head, then the rest
 * of fd.  The body is never held in memory. */
int ss_for_each_block(const struct smtp_message *m,
			  int (*fn)(void *ctx, const char *p, size_t n), void *ctx,
			  struct result *r)
{
	int rc;

	progress_start(message_size(m));
	rc = each_block(m, fn, ctx, r);
	progress_end();
	return rc;
}

struct body_sink {
	struct smtp_session *s;
	struct body_filter bf;
};

static int body_to_conn(void *ctx, const char *p, size_t n)
{
	struct body_sink *k = ctx;

	return put_body(k->s, &k->bf, p, n);
}

/* RFC 2033 4.2: after the data an LMTP server answers once per accepted
 * recipient, in RCPT order.  Each is that recipient's delivery; the
 * outcome is then judged like refused RCPTs: all-or-nothing unless
 * partial_delivery (with a note naming who did not get it). */
static int lmtp_verdicts(struct smtp_session *s, struct smtp_outcome *out)
{
	struct rcpt_tally t = { .phase = PHASE_EOD };

	for (size_t i = 0; i < s->lmtp_n; i++) {
		if (ss_read_reply(s, PHASE_EOD, T_EOD) < 0) {
			if (t.refused)
				*s->r = t.worst;
			return -1;
		}
		ss_tally_rcpt(s, &t, s->lmtp_rcpt[i]);
		if (s->rp.code / 100 == 2 && out)
			result_sanitise(out->final_reply, sizeof out->final_reply,
					s->rp.text, s->rp.textlen);
	}
	if (out)
		out->accepted = t.accepted;
	if (t.refused && t.accepted)
		log_err("LMTP: %zu of %zu recipient(s) got the message; refused after "
			"the data: %s", t.accepted, s->lmtp_n, t.list);
	return ss_check_tally(s, &t);
}

/* DATA content and the final dot.  QUIT is not in the same write: it waits
 * for the reply to the dot (smtp_transaction), see there. */
static int do_data(struct smtp_session *s, const struct smtp_message *m,
		   struct smtp_outcome *out)
{
	struct body_sink k = { .s = s };
	struct body_filter *bfp = &k.bf;
	char tail[16];

	/* After 354 the relay says nothing until the final dot.  Anything
	 * already waiting means its replies and our commands are out of step
	 * (a stray or forged reply): sending the message now could deliver it
	 * on a misread verdict, so stop here. */
	if (conn_pending(s->c)) {
		s->dead = 1;
		s->r->phase = PHASE_DATA;
		return result_fail(s->r, EX_PROTOCOL, "the server sent more than one "
				   "reply to DATA; its replies are out of step, so the "
				   "message was not sent");
	}

	body_init(&k.bf, 1);
	if (ss_for_each_block(m, body_to_conn, &k, s->r) < 0)
		return -1;
	if (bfp->nul) {
		/* Stop before the final dot: the relay discards the transaction. */
		s->r->phase = PHASE_DATA;
		return result_fail(s->r, EX_DATAERR,
				   "the message contains NUL bytes, which SMTP DATA cannot carry");
	}
	if (conn_write(s->c, tail, body_finish(bfp, tail), ss_tmo(s, T_BLOCK), s->r) < 0)
		return ss_conn_failed(s, PHASE_DATA);
	s->in_data = 0;
	log_proto("->", "[message]", 9);
	if (ss_flush(s, PHASE_EOD, T_BLOCK) < 0 ||
	    (s->p->lmtp ? lmtp_verdicts(s, out) : ss_expect(s, PHASE_EOD, T_EOD, 2)) < 0)
		return -1;
	if (out) {
		out->bytes = bfp->out_total;
		if (!s->p->lmtp)
			result_sanitise(out->final_reply, sizeof out->final_reply,
					s->rp.text, s->rp.textlen);
	}
	return 0;
}

/* Politeness on failure (SPEC 4): QUIT when the session can still take a
 * command.  In the middle of DATA a QUIT would be message text, so just close. */
static void quit_quietly(struct smtp_session *s)
{
	struct result ignored;

	if (s->dead || s->in_data || s->quit_sent)
		return;
	s->quit_sent = 1;
	ignored = *s->r;
	if (ss_send_cmd(s, "QUIT") == 0)
		ss_flush(s, PHASE_QUIT, T_QUIT);
	*s->r = ignored;
}

/* Greeting, EHLO, TLS and AUTH on c: everything before the first MAIL. */
static int session_start(struct smtp_session *s)
{
	const struct smtp_params *p = s->p;

	if (p->tls == SMTP_TLS_IMPLICIT && start_tls(s, PHASE_TLS) < 0)
		return -1;
	if (do_greeting(s) < 0 || do_ehlo(s) < 0)
		return -1;
	if (p->tls == SMTP_TLS_STARTTLS && do_starttls(s) < 0)
		return -1;
	return p->auth ? ss_do_auth(s) : 0;
}

struct smtp_session *smtp_open_conn(struct conn *c, const struct smtp_params *p,
				    struct result *r)
{
	struct smtp_session *s = calloc(1, sizeof *s);

	if (!s) {
		result_fail(r, EX_OSERR, "out of memory");
		return NULL;
	}
	s->c = c;
	s->p = p;
	s->r = r;
	if (session_start(s) < 0) {
		quit_quietly(s);
		free(s);
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

static int data_transaction(struct smtp_session *s, const struct smtp_envelope *env,
			    const struct smtp_message *msg, struct smtp_outcome *out)
{
	if (do_envelope(s, env) < 0)
		return -1;
	if (out)
		out->accepted = s->accepted;
	return do_data(s, msg, out);
}

/* A new connection in place of one that is out of step: greeting, EHLO,
 * TLS and AUTH again.  What the session learnt (no_bdat) stays. */
static int reconnect(struct smtp_session *s)
{
	conn_close(s->c);
	s->c = NULL;
	s->dead = 1;
	if (conn_open(&s->c, s->p->host, s->p->port, s->p->route, connect_ms(s->p),
		      s->r) < 0)
		return -1;
	s->dead = s->in_data = s->quit_sent = s->dirty = 0;
	s->transactions = 0;
	return session_start(s);
}

/* The relay offered CHUNKING, then did not recognise BDAT (smtp_bdat.c):
 * the message goes again with DATA on a new connection, the old one being
 * out of step.  That needs the message again from `start`: a queued message
 * or a regular file can be read again; a pipe whose bytes went out in BDAT
 * chunks cannot, so that one is a temporary failure (not delivered). */
static int data_again(struct smtp_session *s, const struct smtp_envelope *env,
		      const struct smtp_message *msg, struct smtp_outcome *out,
		      off_t start)
{
	size_t n = strlen(s->r->text);

	if (start < 0 || !s->own_conn) {
		snprintf(s->r->text + n, sizeof s->r->text - n, " (the relay offers CHUNKING "
			 "but does not take BDAT; the message %s, so it could not be "
			 "sent again with DATA: not delivered)", start < 0 ?
			 "was read from a pipe" : "came on a connection of the caller's");
		return -1;
	}
	log_info("%s offers CHUNKING but does not take BDAT: sending with DATA on a "
		 "new connection", s->p->host);
	if (reconnect(s) < 0)
		return -1;
	if (msg->fd >= 0 && lseek(msg->fd, start, SEEK_SET) < 0) {
		s->r->phase = PHASE_DATA;
		return result_fail(s->r, EX_IOERR, "reading the message again: %s",
				   strerror(errno));
	}
	return data_transaction(s, env, msg, out);
}

static int one_transaction(struct smtp_session *s, const struct smtp_envelope *env,
			   const struct smtp_message *msg, struct smtp_outcome *out)
{
	off_t start;

	/* RFC 3030 BDAT, pipelined (RFC 2920): no dot-stuffing, fewer round trips */
	if (!ss_bdat_ok(s))
		return data_transaction(s, env, msg, out);
	start = msg->fd >= 0 ? lseek(msg->fd, 0, SEEK_CUR) : 0;
	if (ss_bdat_transaction(s, env, msg, out) == 0)
		return 0;
	return s->no_bdat ? data_again(s, env, msg, out, start) : -1;
}

int smtp_transaction(struct smtp_session *ss, const struct smtp_envelope *env,
		     const struct smtp_message *msg, int last,
		     struct smtp_outcome *out, struct result *r)
{
	struct smtp_session *s = ss;
	int rc;

	s->r = r;
	if (s->dead || s->in_data || s->quit_sent) {
		r->phase = PHASE_MAIL;
		return result_fail(r, EX_TEMPFAIL, "the connection can take no more messages");
	}
	s->accepted = 0;
	if (check_size(s, env) < 0)
		return -1;
	s->transactions++;
	rc = one_transaction(s, env, msg, out);
	s->dirty = rc != 0;   /* a failed one may have left a transaction open */
	/* QUIT only after the verdict on the end of data, never in the same
	 * write: Haraka answers a QUIT pipelined after the dot with 503
	 * "pipelined after end of DATA".  It costs no round trip, since the
	 * 221 is not waited for. */
	if (last)
		quit_quietly(s);
	return rc;
}

/* it[i..n) not DONE and not told yet, one at a time with DATA. */
static void data_each(struct smtp_session *s, struct smtp_batch_item *it, size_t i,
		      size_t n, const unsigned char *told)
{
	for (; i < n && !s->dead; i++) {
		struct smtp_batch_item *b = &it[i];

		if (b->state == SMTP_BATCH_DONE || told[i])
			continue;
		result_clear(&b->r);
		s->r = &b->r;
		if (b->msg->fd >= 0 && lseek(b->msg->fd, 0, SEEK_SET) < 0) {
			b->r.phase = PHASE_DATA;
			result_fail(&b->r, EX_IOERR, "reading the message again: %s",
				    strerror(errno));
			b->state = SMTP_BATCH_REFUSED;
			continue;
		}
		s->transactions++;
		if (data_transaction(s, b->env, b->msg, &b->out) == 0) {
			b->state = SMTP_BATCH_DONE;
			s->dirty = 0;
		} else {
			b->state = s->dead ? SMTP_BATCH_LOST : SMTP_BATCH_REFUSED;
			s->dirty = 1;
		}
	}
}

/* Each item is told exactly once. */
struct teller {
	void (*told)(void *, size_t);
	void *arg;
	unsigned char *done;
};

static void tell_once(void *arg, size_t i)
{
	struct teller *t = arg;

	if (!t->done[i] && t->told)
		t->told(t->arg, i);
	t->done[i] = 1;
}

/* A relay that offers CHUNKING but did not recognise BDAT (the batch's
 * first chunk was refused, s->no_bdat now set): what was not told yet goes
 * again with DATA on a new connection, one message at a time, as
 * one_transaction does for a single message.  The messages are queue files,
 * read again from the start. */
static void batch_with_data(struct smtp_session *s, struct smtp_batch_item *it, size_t n,
			    struct teller *t)
{
	size_t i = 0;

	while (i < n && t->done[i])
		i++;
	if (i < n && s->own_conn) {
		s->r = &it[i].r;
		log_info("%s offers CHUNKING but does not take BDAT: sending with DATA "
			 "on a new connection", s->p->host);
		if (reconnect(s) == 0)
			data_each(s, it, i, n, t->done);
	}
	for (; i < n; i++)
		tell_once(t, i);
}

int smtp_batch(struct smtp_session *ss, struct smtp_batch_item *it, size_t n,
	       void (*told)(void *arg, size_t i), void *arg)
{
	struct teller t = { told, arg, calloc(n ? n : 1, 1) };
	int rc;

	if (!t.done)
		return -1;
	rc = ss_bdat_batch(ss, it, n, tell_once, &t);
	if (ss->no_bdat)
		batch_with_data(ss, it, n, &t);
	free(t.done);
	return rc;
}

const struct smtp_params *smtp_params_of(const struct smtp_session *ss)
{
	return ss->p;
}

int smtp_usable(const struct smtp_session *ss)
{
	const struct smtp_session *s = ss;

	return !s->dead && !s->in_data && !s->quit_sent;
}

void smtp_close(struct smtp_session *ss)
{
	struct smtp_session *s = ss;
	struct result ignored;

	if (!s)
		return;
	s->r = &ignored;
	result_clear(&ignored);
	quit_quietly(s);
	if (s->own_conn)
		conn_close(s->c);
	free(s->lmtp_rcpt);
	free(s);
}

const char *smtp_path(const struct smtp_session *s)
{
	return conn_path(s->c);
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

static void copy_reply(const struct reply *rp, char *out, size_t cap)
{
	size_t n = rp->textlen < cap - 1 ? rp->textlen : cap - 1;

	memcpy(out, rp->text, n);
	out[n] = '\0';
}

int smtp_probe(const struct smtp_params *p, struct smtp_probe *out,
	       struct result *r)
{
	struct smtp_session *s = calloc(1, sizeof *s);
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (!s)
		return result_fail(r, EX_OSERR, "out of memory");
	s->p = p;
	s->r = r;
	s->dead = 1;   /* until connected: nothing to say QUIT on */
	if (conn_open(&s->c, p->host, p->port, p->route, ss_tmo(s, T_CONNECT), r) < 0)
		goto out;
	snprintf(out->path, sizeof out->path, "%s", conn_path(s->c));
	s->dead = 0;
	if (p->tls == SMTP_TLS_IMPLICIT && start_tls(s, PHASE_TLS) < 0)
		goto out;
	out->tls = p->tls == SMTP_TLS_IMPLICIT;
	if (do_greeting(s) < 0)
		goto out;
	copy_reply(&s->rp, out->greeting, sizeof out->greeting);
	if (do_ehlo(s) < 0)
		goto out;
	copy_reply(&s->rp, out->ehlo_before, sizeof out->ehlo_before);
	if (p->tls == SMTP_TLS_STARTTLS) {
		if (do_starttls(s) < 0)
			goto out;
		out->tls = 1;
		copy_reply(&s->rp, out->ehlo_after, sizeof out->ehlo_after);
	}
	rc = 0;
out:
	quit_quietly(s);
	conn_close(s->c);
	free(s);
	return rc;
}
