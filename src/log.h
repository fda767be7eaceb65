/* log.h - stderr messages and the -v protocol transcript.
 *
 * Everything pushmail prints goes through here, so redaction (AUTH payloads)
 * and sanitising of server text happen in one place.
 */
#ifndef PUSHMAIL_LOG_H
#define PUSHMAIL_LOG_H

#include <stddef.h>

extern int log_verbose;   /* -v: print the transcript on stderr */

/* "pushmail: " + message + "\n" on stderr. */
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like log_err, only with -v. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Transcript of one protocol line: dir is "->" (sent) or "<-" (received). */
void log_proto(const char *dir, const char *line, size_t len);

#endif
