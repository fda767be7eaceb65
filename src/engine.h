/* engine.h - the SMTP command pipeline: every command sent is recorded with
 * what its reply will mean, and replies are handed back in order, each with
 * its record (RFC 2920: a server answers pipelined commands in order).
 *
 * The record is a small tag, not a callback: the phase of the command (MAIL,
 * RCPT, BDAT, EOD, AUTH ...), which transaction it belongs to, and an
 * argument (the recipient's or chunk's index).  The producers above (EHLO,
 * AUTH, envelope, DATA, BDAT) send; the transaction layer (smtp.c) reads and
 * decides.  The engine knows nothing of messages, queues or the CLI.
 *
 * Writes are buffered: a command goes out when the buffer fills or when a
 * reply is wanted and none is already waiting in the read buffer, so a whole
 * window of transactions leaves in as few packets as the socket allows. */
#ifndef PUSHMAIL_ENGINE_H
#define PUSHMAIL_ENGINE_H

#include <stddef.h>
#include "smtp_io.h"

struct pending {
	unsigned char phase;   /* enum smtp_phase of the command */
	unsigned item;         /* the transaction it belongs to */
	unsigned arg;          /* recipient or chunk index, or 0 */
};

struct engine {
	struct sio io;
	struct pending *q;     /* ring of commands whose replies are owed */
	size_t head, len, cap;
};

/* Send one command line and record it.  -1 with io.r filled. */
int eng_send(struct engine *e, struct pending rec, const char *line, size_t n,
	     const char *shown);
__attribute__((format(printf, 3, 4)))
int eng_sendf(struct engine *e, struct pending rec, const char *fmt, ...);
/* Record a reply owed for something sent otherwise (BDAT's chunk line and
 * bytes, the end of DATA). */
int eng_owe(struct engine *e, struct pending rec);
/* The next reply into e->io.rp and the command it answers into *rec.
 * -1 with io.r filled (the connection is dead; *rec still says which
 * command's reply was being read). */
int eng_read(struct engine *e, struct pending *rec);
/* Replies still owed. */
size_t eng_owed(const struct engine *e);
/* The connection is gone: no reply will come for anything recorded. */
void eng_forget(struct engine *e);
void eng_free(struct engine *e);

/* One command and its reply, nothing else in flight (greeting, EHLO,
 * STARTTLS, AUTH steps): send, then read; -1 on a transport failure. */
int eng_ask(struct engine *e, enum smtp_phase phase, const char *line, size_t n,
	    const char *shown);

/* The timeout for the reply to a command of this phase. */
int eng_timeout(enum smtp_phase phase);

#endif
