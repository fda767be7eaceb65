/* session.h - internals of an SMTP session shared by smtp.c (core, DATA),
 * smtp_auth.c (AUTH) and smtp_bdat.c (CHUNKING).  Not for other modules:
 * they use smtp.h. */
#ifndef PUSHMAIL_SESSION_H
#define PUSHMAIL_SESSION_H

#include "conn.h"
#include "reply.h"
#include "result.h"
#include "smtp.h"

/* RFC 5321 4.5.3.2 timeouts, in seconds, capped by the account's `timeout`. */
enum { T_CONNECT = 60, T_GREETING = 300, T_EHLO = 300, T_MAIL = 300,
       T_RCPT = 300, T_DATA = 120, T_BLOCK = 180, T_EOD = 600, T_QUIT = 10 };

#define BODY_BLOCK (64 * 1024)

struct smtp_session {
	struct conn *c;
	const struct smtp_params *p;
	struct result *r;
	struct caps caps;
	int dead;          /* the connection is unusable: send nothing more */
	int in_data;       /* a 354 was received and the data is unfinished */
	size_t accepted;   /* recipients accepted in this transaction */
	int quit_sent;     /* QUIT went out (after the last end of data's reply) */
	int transactions;  /* MAIL transactions started on this connection */
	int dirty;         /* a transaction may still be open on the relay (the
			      last one failed): RSET before the next MAIL.  A
			      completed one needs none (RFC 5321 3.3) */
	int own_conn;      /* smtp_close closes c */
	int dsn_warned;    /* said once that the relay ignores DSN requests */
	int binary;        /* this transaction declared BODY=BINARYMIME */
	int no_bdat;       /* the relay offered CHUNKING but refused BDAT as not
			      recognised: DATA for the rest of the session */
	const char **lmtp_rcpt;   /* LMTP: the accepted recipients, in order, each
				     owed a reply after the data (RFC 2033 4.2) */
	size_t lmtp_n;
	struct reply rp;
	char line[REPLY_LINE_MAX + 1];
};

/* Recipients' verdicts: the first permanent refusal wins over the first
 * temporary one, since retrying cannot fix a permanent one. */
struct rcpt_tally {
	size_t accepted, refused;
	struct result worst;
	char list[1024];   /* "<a>: 550 ...; <b>: ..." for the partial-delivery note */
	enum smtp_phase phase;  /* of the verdicts: PHASE_NONE means RCPT */
};

int ss_tmo(const struct smtp_session *s, int secs);
int ss_conn_failed(struct smtp_session *s, enum smtp_phase phase);
int ss_send_line(struct smtp_session *s, const char *line, size_t n, const char *shown);
__attribute__((format(printf, 2, 3)))
int ss_send_cmd(struct smtp_session *s, const char *fmt, ...);
int ss_flush(struct smtp_session *s, enum smtp_phase phase, int secs);
int ss_read_reply(struct smtp_session *s, enum smtp_phase phase, int secs);
int ss_check_reply(struct smtp_session *s, enum smtp_phase phase, int want);
/* Before a new command group: nothing may be waiting from the server (a 421
 * is taken as the server closing, anything else as replies out of step). */
int ss_in_step(struct smtp_session *s, enum smtp_phase phase);
int ss_expect(struct smtp_session *s, enum smtp_phase phase, int secs, int want);
void ss_tally_rcpt(struct smtp_session *s, struct rcpt_tally *t, const char *rcpt);
/* All-or-nothing unless partial_delivery: -1 with the worst refusal in s->r,
 * or 0 (noting the refused ones on one stderr line when some were). */
int ss_check_tally(struct smtp_session *s, const struct rcpt_tally *t);
int ss_for_each_block(const struct smtp_message *m,
		      int (*fn)(void *ctx, const char *p, size_t n), void *ctx,
		      struct result *r);
int ss_do_auth(struct smtp_session *s);
int ss_send_mail(struct smtp_session *s, const struct smtp_envelope *env);
int ss_send_rcpt(struct smtp_session *s, const struct smtp_envelope *env, size_t i);
/* BDAT (RFC 3030) goes pipelined only, and not after the relay refused it. */
int ss_bdat_ok(const struct smtp_session *s);
/* -1 with s->no_bdat newly set when the relay did not recognise BDAT (500,
 * 502, 504): the connection is then out of step (s->dead) and the caller may
 * send the message again with DATA on a new one. */
int ss_bdat_transaction(struct smtp_session *s, const struct smtp_envelope *env,
			const struct smtp_message *msg, struct smtp_outcome *out);
/* smtp_batch's BDAT engine (smtp_bdat.c). */
int ss_bdat_batch(struct smtp_session *s, struct smtp_batch_item *it, size_t n,
		  void (*told)(void *arg, size_t i), void *arg);

#endif
