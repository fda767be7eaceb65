/* smtp.h - one SMTP submission session (RFC 5321 with PIPELINING, SIZE).
 *
 * smtp_send connects, reads the greeting, says EHLO (HELO when EHLO gets a
 * 5xx), sends MAIL/RCPT/DATA (in one write when PIPELINING is offered), streams
 * the message through the body filter, sends QUIT once the end of data is
 * answered (without waiting for the 221) and maps the outcome into a struct
 * result.  It uses the transport (conn.h)
 * and never touches sockets or TLS itself.
 */
#ifndef PUSHMAIL_SMTP_H
#define PUSHMAIL_SMTP_H

#include <stddef.h>
#include <stdio.h>
#include "smtp_types.h"

/* Returns 0 when the relay accepted the message (with partial delivery,
 * possibly for fewer recipients: refused ones are reported on stderr), or -1
 * with r filled.  out may be NULL. */
int smtp_send(const struct smtp_params *p, const struct smtp_envelope *env,
	      const struct smtp_message *msg, struct smtp_outcome *out,
	      struct result *r);

/* A session that carries several messages (the queue runner): smtp_open
 * connects and does greeting, EHLO, TLS and AUTH; each smtp_transaction sends
 * one message (RSET before every one after the first; with last set, QUIT
 * follows the reply to its end of data at once); smtp_close says QUIT if it
 * has not gone out and closes.  After a failed transaction smtp_usable tells
 * whether another can follow on the same connection.  A relay that offers
 * CHUNKING but does not recognise BDAT gets the message again with DATA on a
 * new connection (smtp_open sessions, and only when msg->fd can be read
 * again from where it stood), and DATA for the rest of the session.
 * NULL/-1 with r filled. */
struct smtp_session;
struct smtp_session *smtp_open(const struct smtp_params *p, struct result *r);
struct smtp_session *smtp_open_conn(struct conn *c, const struct smtp_params *p,
				    struct result *r);
int smtp_transaction(struct smtp_session *s, const struct smtp_envelope *env,
		     const struct smtp_message *msg, int last,
		     struct smtp_outcome *out, struct result *r);
int smtp_usable(const struct smtp_session *s);
/* Usable, and the relay has said nothing since (a session kept idle between
 * messages: a 421 or a close from the relay shows as something waiting). */
int smtp_fresh(const struct smtp_session *s);
/* The connection was lost while several transactions were in flight: the
 * caller may send to this relay one at a time (smtp_params.serial). */
int smtp_window_broke(const struct smtp_session *s);

/* Many transactions in one flight (RFC 2920 + RFC 3030): every item's MAIL,
 * RCPT and BDAT ... LAST go out back to back, then the replies are read in
 * order.  Only for items smtp_batchable accepts (the relay offers PIPELINING
 * and CHUNKING and took BDAT so far; one recipient or partial_delivery; no
 * BINARYMIME).  Each item ends DONE (its end of data was accepted: out is
 * filled), REFUSED (r says why, 4xx or 5xx, for that message alone) or
 * LOST (the connection failed or the relay closed before its verdict: not
 * delivered, as far as anyone can tell; r says why).  Returns 0, or -1
 * when out of memory (every item LOST). */
enum smtp_batch_state { SMTP_BATCH_LOST = 0, SMTP_BATCH_DONE, SMTP_BATCH_REFUSED };
struct smtp_batch_item {
	const struct smtp_envelope *env;
	const struct smtp_message *msg;
	enum smtp_batch_state state;
	struct result r;
	struct smtp_outcome out;
};
int smtp_batchable(const struct smtp_session *s, const struct smtp_envelope *env);
/* told(arg, i) is called once for every item, as soon as its outcome is
 * known (so that the queue records it at once: a crash then re-sends at
 * most the messages whose verdicts were still on the way, RFC 1047). */
int smtp_batch(struct smtp_session *s, struct smtp_batch_item *it, size_t n,
	       void (*told)(void *arg, size_t i), void *arg);
/* The parameters the session was opened with (its tls_info and auth_used
 * are filled by then), for the mail log. */
const struct smtp_params *smtp_params_of(const struct smtp_session *s);
void smtp_close(struct smtp_session *s);
/* conn_path() of the session's connection (for --check). */
const char *smtp_path(const struct smtp_session *s);

/* The session on an existing connection (tests and fuzzing use a socketpair). */
int smtp_session(struct conn *c, const struct smtp_params *p,
		 const struct smtp_envelope *env, const struct smtp_message *msg,
		 struct smtp_outcome *out, struct result *r);

/* --serverinfo: what a session learns before MAIL, without sending mail. */
struct smtp_probe {
	char greeting[1024];
	char ehlo_before[4096];      /* EHLO (or HELO) reply text, '\n' between lines */
	char ehlo_after[4096];       /* the same after STARTTLS; "" when no STARTTLS */
	int tls;                     /* TLS was established */
	char path[1024];             /* conn_path(): how the relay was reached */
};

/* Connect, greet, EHLO, STARTTLS (or implicit TLS) and EHLO again, then QUIT.
 * The certificate is reported, not enforced (p->tlsp->report_only should be
 * set).  Returns 0 or -1 with r filled. */
int smtp_probe(const struct smtp_params *p, struct smtp_probe *out,
	       struct result *r);

/* --dry-run: print "MAIL FROM:<..>", "RCPT TO:<..>" lines, "DATA", then the
 * exact bytes that would follow DATA (dot-stuffed, ending ".\r\n") to f.
 * Nothing is connected to.  Returns 0 or -1 with r filled. */
int smtp_dry_run(FILE *f, const struct smtp_envelope *env,
		 const struct smtp_message *msg, struct result *r);

#endif
