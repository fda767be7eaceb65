/* qstate.h - what the queue remembers about each account's relay between
 * runs and across processes: QUEUE/state/ACCOUNT, one "key value" per line.
 *
 * Every pushmail process of a user (senders, -q, the delivery service)
 * shares it: a change is a read-modify-write under an exclusive flock on
 * QUEUE/state/ACCOUNT.lock, and the file is replaced atomically (written in
 * state/, fsynced, renamed), so a reader never sees half of it and a crash
 * leaves the old state or the new one.  The state is advice (which relay to
 * try first, what -bp shows): a missing or damaged file reads as empty, and
 * failing to write it never fails a delivery.
 */
#ifndef PUSHMAIL_QSTATE_H
#define PUSHMAIL_QSTATE_H

#include <time.h>
#include "queue.h"

#define QSTATE_BUCKETS 72

struct qstate {
	time_t skip_until;       /* the relay failed: try others first until then */
	time_t last_success;     /* 0: never */
	time_t last_error_at;    /* 0: never */
	char last_error[256];    /* sanitised; "" when none */
	unsigned long skipped;   /* times the relay was passed over (failover) */
	unsigned long auth_failures;  /* consecutive refused logins */
	int auth_notified;       /* the admin was told about them */
	time_t serial_until;     /* the relay broke a pipelined window: one
				    transaction in flight at a time until then */
	/* rate_limit's window: messages sent per bucket of rate_width seconds
	 * (a 64th of the period), oldest first; see qstate_rate_take */
	long rate_width;
	size_t nbuckets;
	struct { long long idx; unsigned long n; } bucket[QSTATE_BUCKETS];
};

/* Whether name may become a file name under state/: 1 to 64 characters of
 * [A-Za-z0-9._+-], not starting with '.'. */
int qstate_name_ok(const char *name);

/* The state of account name (zeroed when none, unreadable or damaged).
 * Returns 0, or -1 for a name qstate_name_ok refuses. */
int qstate_read(struct queue *q, const char *name, struct qstate *out);

/* Lock, read, let fn change it, write back.  Returns 0, or -1 (errno set;
 * EINVAL for a bad name). */
int qstate_update(struct queue *q, const char *name,
		  void (*fn)(struct qstate *st, void *arg), void *arg);

/* Take one message from account's window of n per period at time now.
 * Returns 1 (taken, counted) or 0 when n messages already went in the last
 * period; *due is then the first time one may go.  Strict: no period-long
 * stretch of time ever holds more than n (the window is kept in buckets of
 * period/64, counted whole, so it may hold back up to a bucket too long). */
int qstate_rate_take(struct qstate *st, long n, long period, time_t now, time_t *due);

/* Locked read-modify-write operations (qstate_update); each returns 0 or
 * -1 (errno set; EINVAL for a bad name).
 * qstate_mark: the relay took a message (ok: last success, no skip, no
 * refused logins), or failed (why: last error; tried last for skip_for s).
 * qstate_count_skip: failover passed over it once more.
 * qstate_auth: a login was refused (or worked); *tell is set once, when
 * the refusals in a row reach limit.
 * qstate_take: qstate_rate_take at the current time; *taken, *due. */
int qstate_mark(struct queue *q, const char *name, int ok, const char *why,
		long skip_for);
int qstate_count_skip(struct queue *q, const char *name);
int qstate_auth(struct queue *q, const char *name, int refused, unsigned long limit,
		int *tell);
int qstate_take(struct queue *q, const char *name, long n, long period, int *taken,
		time_t *due);
/* qstate_serial: send one transaction at a time to the relay until `until`. */
int qstate_serial(struct queue *q, const char *name, time_t until);

/* Pure (de)serialisation, for tests.  qstate_parse never fails: unknown or
 * malformed lines are skipped.  qstate_format writes at most cap bytes and
 * returns the length (or -1 when it does not fit). */
void qstate_parse(const char *text, size_t len, struct qstate *out);
int qstate_format(const struct qstate *st, char *out, size_t cap);

#endif
