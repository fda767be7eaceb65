/* log.h - stderr messages, the -v / -X protocol transcript, and the mail log
 * (one line per message to syslog, facility mail, or to a file).
 *
 * Everything pushmail prints goes through here, so redaction (AUTH payloads
 * are passed in already replaced) and sanitising of server text happen in one
 * place.
 */
#ifndef PUSHMAIL_LOG_H
#define PUSHMAIL_LOG_H

#include <stddef.h>
#include "result.h"

extern int log_verbose;   /* -v: print the transcript on stderr */

/* "pushmail: " + message + "\n" on stderr. */
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like log_err, only with -v. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Transcript of one protocol line: dir is "->" (sent) or "<-" (received).
 * Goes to stderr with -v and to the -X file when one is open. */
void log_proto(const char *dir, const char *line, size_t len);

/* -X FILE: append the transcript to FILE (created 0600).  EX_CANTCREAT. */
int log_transcript_open(const char *path, struct result *r);
void log_transcript_close(void);

/* -L TAG: the syslog identity (default "pushmail"). */
void log_set_tag(const char *tag);

/* One delivery attempt, as a mail system logs it.  `where` is the account's
 * log key: a comma list of "syslog" and file paths (a leading "~/" is the
 * home directory), or NULL for no mail log. */
struct log_record {
	const char *account, *host;
	const char *tls;           /* the account's mode: off, starttls, implicit */
	const char *tls_version, *cipher; /* what the handshake chose, or NULL */
	const char *auth;          /* the mechanism that logged in, or NULL */
	const char *facility;      /* log_facility (syslog), NULL: mail */
	const char *from;
	size_t nrcpt;
	const char *rcpt;          /* the first recipient */
	unsigned long long size;
	const char *status;        /* "sent", "deferred", "failed", "queued" */
	const char *detail;        /* relay reply or failure, sanitised */
	const char *qid;           /* pushmail's queue id, or NULL */
	int exitcode;
};
void log_delivery(const char *where, const struct log_record *lr);

/* The syslog facility named by log_facility ("mail", "user", "daemon",
 * "local0".."local7"); -1 for another word.  NULL is LOG_MAIL. */
int log_facility_code(const char *name);

#endif
