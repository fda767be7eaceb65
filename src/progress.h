/* progress.h - one line on a terminal while a message goes out (issue 19).
 *
 * Only a person at a terminal sees it: mode_send enables it when standard
 * error is a terminal (and not with -v, --dry-run); -bs, the queue runners
 * and the delivery service never do.  Nothing is drawn during the first
 * second, so quick sends print nothing; the line updates in place (bytes of
 * total, rate, time left) and is cleared when the body has gone out.
 */
#ifndef PUSHMAIL_PROGRESS_H
#define PUSHMAIL_PROGRESS_H

/* Turn the display on for this process; the first second counts from here. */
void progress_enable(void);

/* A message body starts: total bytes, 0 when unknown. */
void progress_start(unsigned long long total);
/* n more bytes handed to the connection. */
void progress_add(unsigned long long n);
/* The body is out (or the send failed): clear the line if one was drawn. */
void progress_end(void);

/* The line for done of total bytes after secs seconds (pure, for tests):
 * "12.0 MiB of 40.0 MiB (30%), 4.0 MiB/s, 0:07 left". */
void progress_format(char *out, unsigned cap, unsigned long long done,
		     unsigned long long total, double secs);

#endif
