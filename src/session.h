/* session.h - an SMTP session as the producers (smtp_hello.c, smtp_auth.c,
 * smtp_env.c, smtp_data.c, smtp_bdat.c) and the transaction layer (smtp.c)
 * share it.  Not for other modules: they use smtp.h.
 *
 * Layers, each using only those below it:
 *   smtp.c        transactions: open, send messages in a window, close
 *   smtp_*.c      producers: greeting/EHLO/STARTTLS, AUTH, MAIL/RCPT,
 *                 DATA and BDAT, each turning its part of the protocol
 *                 into commands for the engine
 *   engine.c      the command pipeline: records, replies in order
 *   smtp_io.c     primitives: the command gate, flush, one reply
 *   conn.c/tls.c  bytes, deadlines, TLS */
#ifndef PUSHMAIL_SESSION_H
#define PUSHMAIL_SESSION_H

#include "engine.h"
#include "smtp_types.h"

#define BODY_BLOCK (64 * 1024)

struct smtp_session {
	struct engine e;   /* e.io.r: where failures go at the moment */
	const struct smtp_params *p;
	struct caps caps;
	int in_data;       /* a 354 was received and the data is unfinished */
	int quit_sent;     /* QUIT went out */
	int transactions;  /* MAIL transactions started on this connection */
	int dirty;         /* a transaction may still be open on the relay (the
			      last one failed): RSET before the next MAIL.  A
			      completed one needs none (RFC 5321 3.3) */
	int own_conn;      /* smtp_close closes the connection */
	int dsn_warned;    /* said once that the relay ignores DSN requests */
	int no_bdat;       /* the relay offered CHUNKING but refused BDAT as not
			      recognised: DATA for the rest of the session */
	int auth_owed;     /* AUTH went out pipelined; its verdict is owed */
	int auth_failed;   /* ... and it was a refusal: auth_r says why */
	struct result auth_r;
	char auth_mech[AUTH_MECH_MAX];
	char *bdat_buf;    /* BDAT's chunk buffer, kept for the session */
	int serial;        /* no MAIL before the previous end of data's reply */
	int window_broke;  /* the connection was lost with several
			      transactions in flight */
};

/* Recipients' verdicts: the first permanent refusal wins over the first
 * temporary one, since retrying cannot fix a permanent one. */
struct rcpt_tally {
	size_t accepted, refused;
	struct result worst;
	char list[1024];   /* "<a>: 550 ...; <b>: ..." for the partial-delivery note */
	enum smtp_phase phase;  /* of the verdicts: PHASE_NONE means RCPT */
};

/* smtp_hello.c: greeting, EHLO (HELO when EHLO gets a 5xx), STARTTLS and
 * the TLS handshake, one at a time. */
int ss_greeting(struct smtp_session *s);
int ss_ehlo(struct smtp_session *s);
int ss_starttls(struct smtp_session *s);
int ss_tls_handshake(struct smtp_session *s, enum smtp_phase phase);

/* smtp_auth.c: the whole AUTH exchange, or (ss_auth_pipelined) only the
 * AUTH line of a one-step mechanism, its verdict left owed to the reader
 * of the first transaction (RFC 4954 4).  1: sent pipelined, 0: done. */
int ss_do_auth(struct smtp_session *s);
/* The verdict on a pipelined AUTH (the reply in s->e.io.rp): 0 logged in,
 * -1 with s->auth_r filled. */
int ss_auth_verdict(struct smtp_session *s);

/* smtp_env.c: MAIL FROM and RCPT TO with their parameters; tallies. */
int ss_send_mail(struct smtp_session *s, const struct smtp_envelope *env,
		 unsigned item, int binary);
int ss_send_rcpt(struct smtp_session *s, const struct smtp_envelope *env, size_t i,
		 unsigned item);
void ss_tally(struct rcpt_tally *t, const struct reply *rp, const char *rcpt);
/* All-or-nothing unless partial: -1 with the worst refusal in *r, or 0
 * (noting the refused ones on one stderr line when some were). */
int ss_tally_verdict(const struct rcpt_tally *t, int partial, struct result *r);

/* smtp_data.c: the message block by block, and DATA's body and dot. */
int ss_for_each_block(const struct smtp_message *m,
		      int (*fn)(void *ctx, const char *p, size_t n), void *ctx,
		      struct result *r);
/* The body after a 354 and the final dot, its reply(ies) recorded as
 * PHASE_EOD for `item` (LMTP: `eods` of them, arg = 0..eods-1).  *bytes
 * gets the normalised size.  -1: a NUL byte (EX_DATAERR, no dot sent) or
 * a transport or read failure. */
int ss_send_data(struct smtp_session *s, const struct smtp_message *m, unsigned item,
		 size_t eods, unsigned long long *bytes);

/* smtp_bdat.c: BDAT (RFC 3030) goes pipelined only, and not after the relay
 * refused it, nor over LMTP. */
int ss_bdat_ok(const struct smtp_session *s);
/* The message in chunks and LAST, each recorded for `item` (chunks as
 * PHASE_BDAT with arg = index, LAST as PHASE_EOD with arg = the number of
 * chunks before it).  *bytes as for ss_send_data.  -1: NUL bytes in a
 * message that is not BINARYMIME (no LAST goes out), a read or transport
 * failure. */
int ss_send_bdat(struct smtp_session *s, const struct smtp_message *m, unsigned item,
		 int binary, unsigned long long *bytes);

#endif
