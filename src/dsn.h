/* dsn.h - delivery status notices (RFC 3464) for queued mail that failed
 * for good or is late (SPEC 6).
 *
 * dsn_build is pure: it takes the queued message's envelope, what went
 * wrong, and the message's header block, and returns the whole notice (a
 * header block and a multipart/report; report-type=delivery-status body,
 * CRLF line ends) ready to be queued with the null sender.  The original
 * message is returned as text/rfc822-headers only (RET=HDRS semantics):
 * the body may be large and is the sender's own anyway.  No I/O, no clock,
 * no randomness: everything variable comes in through struct dsn_report.
 */
#ifndef PUSHMAIL_DSN_H
#define PUSHMAIL_DSN_H

#include <stddef.h>
#include <time.h>
#include "queue.h"

enum dsn_action { DSN_FAILED, DSN_DELAYED };

struct dsn_report {
	enum dsn_action action;
	const char *to;             /* the notice's recipient (sender or admin) */
	const char *mta;            /* Reporting-MTA: our EHLO name */
	const char *domain;         /* right side of From: MAILER-DAEMON@ and of
				       the notice's Message-ID */
	const char *remote;         /* the relay's host name, or NULL (none reached) */
	const char *status;         /* RFC 3463 code for every recipient, "5.1.1" */
	const char *diag_rcpt;      /* the recipient the relay refused, or NULL when
				       the failure concerns them all */
	int code;                   /* the relay's reply code, 0 when none */
	const char *diagnostic;     /* the relay's reply text, or a local reason */
	const char *why;            /* one line for people ("gave up after 5 days") */
	time_t now;                 /* Date and Last-Attempt-Date */
	time_t until;               /* DSN_DELAYED: when pushmail gives up */
};

/* Largest header block quoted in a notice; a longer one is cut at a line
 * boundary (the notice says so). */
#define DSN_HEAD_MAX (64 * 1024)

/* Build the notice for message env (its id, created, from, recipients and
 * envid are used) whose header block is head[0..headlen) (any line ends;
 * anything after the first empty line is ignored).  Returns a malloc'd text
 * in *out (length *outlen), or -1 when memory ran out or a value that goes
 * into a header holds a line break or is empty (rep->to, mta, domain). */
int dsn_build(const struct qenv *env, const struct dsn_report *rep,
	      const char *head, size_t headlen, char **out, size_t *outlen);

/* The RFC 3463 status to report for a failure: enh when it is a well-formed
 * code of the right class, else from the reply code (5xx "5.0.0", 4xx
 * "4.0.0"), else fallback.  Writes at most cap bytes. */
void dsn_status(const char *enh, int code, const char *fallback, char *out,
		size_t cap);

#endif
