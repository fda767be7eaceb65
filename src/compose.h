/* compose.h - one-off mail from the shell (issue 19): a message built from
 * --subject, --body, --attach, --cc, --bcc, --header and --reply-to.
 *
 * The composed message comes out of a Unix socket, written by a child
 * process, so that the rest of pushmail (submit: head rewrite,
 * Date/Message-ID/From, queue, SMTP) reads it exactly as it reads standard
 * input.  Attachments are
 * opened and typed (libmagic) before anything else happens, and streamed in
 * blocks through the base64 encoder: memory stays flat whatever their size,
 * and the size of the whole message is known before it is written (SIZE=).
 */
#ifndef PUSHMAIL_COMPOSE_H
#define PUSHMAIL_COMPOSE_H

#include <sys/types.h>
#include "cli.h"
#include "result.h"

struct compose {
	int fd;                    /* read end: the message; -1 once closed */
	pid_t pid;                 /* the writer, 0 when none */
	unsigned long long size;   /* bytes the writer produces, exactly */
	char **rcpt;               /* recipient arguments, then --cc, then --bcc
				    * (address lists; point into argv) */
	size_t nrcpt;
};

/* 1 when any composing option was given. */
int compose_wanted(const struct options *o);

/* Check the options, read the body text, open and type the attachments,
 * and start the writer.  -1 with r filled: EX_USAGE (a bad --header, an
 * address list that does not parse), EX_NOINPUT (an attachment or
 * --body-file that is missing, unreadable or not a regular file, named in
 * the message), EX_DATAERR (body text over COMPOSE_BODY_MAX), EX_OSERR.
 * Nothing has been written anywhere then. */
int compose_start(const struct options *o, struct compose *cm, struct result *r);

/* Close the read end and reap the writer.  rc is the outcome of reading
 * the message (0 or -1) and is returned.  A writer that failed half-way
 * (an attachment cut short) makes the reader fail with EX_IOERR before any
 * end of data or queue entry (see start_writer); r then says so. */
int compose_finish(struct compose *cm, int rc, struct result *r);

#define COMPOSE_BODY_MAX (64u << 20)   /* body text is held in memory */

#endif
