/* runq.h - delivering queued messages: one attempt, and whole queue runs
 * (pushmail -q) grouped by account over one connection per account. */
#ifndef PUSHMAIL_RUNQ_H
#define PUSHMAIL_RUNQ_H

#include "cfg.h"
#include "queue.h"
#include "relay.h"
#include "result.h"
#include "smtp.h"

/* Retry and expiry, in seconds (SPEC 6: 1 min doubling to 1 h, 5 days). */
struct runq_policy {
	long retry_min, retry_max, lifetime;
};

void runq_policy_of(const struct account *a, struct runq_policy *pol);

enum runq_outcome { RUNQ_DELIVERED, RUNQ_DEFERRED, RUNQ_FAILED };

/* A temporary failure (4xx, lost connection, timeout, any STARTTLS or TLS
 * handshake/certificate failure) or a local one that a fix can cure
 * (configuration, password source, memory) keeps a message in
 * new/ for another try; the relay's permanent verdicts and unusable messages
 * move it to failed/ with the reason (kept, never dropped). */
int runq_is_temporary(const struct result *r);

/* Send locked entry e on open session ss for account a.  The queue is
 * updated for the outcome; r says why when it is not RUNQ_DELIVERED. */
enum runq_outcome runq_attempt(struct queue *q, struct qentry *e,
			       struct smtp_session *ss, const struct account *a,
			       const struct runq_policy *pol, struct result *r);

/* Record a failure that happened before a transaction (connect, TLS, AUTH). */
enum runq_outcome runq_record(struct queue *q, struct qentry *e,
			      const struct runq_policy *pol, const struct result *r);
/* The same, naming the account for the mail log (NULL: none). */
enum runq_outcome runq_record_for(struct queue *q, struct qentry *e,
				  const struct account *a,
				  const struct runq_policy *pol, const struct result *r);

/* Remember in the queue's state (qstate.h) how account a's relay did: it
 * took a message (r NULL), or could not be reached or used (r says why;
 * queue runs then try it after its fallbacks for a while).  -bp shows it. */
void runq_note_relay(struct queue *q, const struct account *a, const struct result *r);

/* rate_limit (pushmail.conf(5)): take one message from account a's window,
 * kept in the queue's state and shared by every process.  1: it may go
 * now (counted); 0: the window is full, *due says when one may go. */
int runq_rate_take(struct queue *q, const struct account *a, time_t *due);

/* Keep locked entry e queued until due, without counting a try, because
 * account a's rate_limit is reached; r says so (EX_TEMPFAIL). */
enum runq_outcome runq_hold(struct queue *q, struct qentry *e, const struct account *a,
			    time_t due, struct result *r);

struct runq_opts {
	const struct config *cfg;
	const struct relay_overrides *ov;
	/* Ignore next_try: the one-shot -q (like sendmail -q, postqueue -f),
	 * --queue-retry, -q with an ID.  0: only what is due, with back-off
	 * honoured (-qINTERVAL, -q --due from the timer, a delivery service,
	 * the flush after a successful send). */
	int force;
	const char *only_id;       /* one message (a queue id, else EX_USAGE) */
	const char *only_account;  /* one account (after a successful send) */
	int (*stop)(void);         /* optional: 1 = stop after the message in flight */
	int no_failure_notice;     /* the submitter hears of a failure itself */
	/* Optional (the delivery service): after an account's messages, while
	 * its session is usable, linger(linger_arg) may wait a few seconds for
	 * new mail and queue it; it returns how many messages it queued, and
	 * the due ones of this account go over the same session. */
	size_t (*linger)(void *linger_arg);
	void *linger_arg;
};

struct runq_stats {
	size_t delivered, deferred, failed, busy;
	size_t unroutable;         /* queued with no account, and none matches */
	size_t orphaned;           /* their account is no longer configured:
				    * they wait (reason recorded), never sent
				    * through another account's relay */
	size_t notices;            /* delivery status notices queued */
	int fail_exit;             /* the first permanent failure's exit status
				    * (EX_UNAVAILABLE for "gave up"), 0 if none */
};

/* Deliver what is due.  Returns 0 (per-message outcomes are in the queue and
 * in st; each failure is reported on stderr), or -1 with r filled when the
 * run itself could not happen. */
int runq_flush(struct queue *q, const struct runq_opts *o, struct runq_stats *st,
	       struct result *r);

#endif
