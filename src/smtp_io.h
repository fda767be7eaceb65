/* smtp_io.h - the SMTP session's primitives, the bottom layer of the engine:
 * send one command line (the one gate that refuses CR, LF and NUL), write
 * message bytes, flush, read one complete reply, and the RFC 5321 timeouts.
 * It knows nothing of commands' meanings, transactions or queues; the
 * command queue above it (engine.h) does the pairing of replies. */
#ifndef PUSHMAIL_SMTP_IO_H
#define PUSHMAIL_SMTP_IO_H

#include <stddef.h>
#include "conn.h"
#include "reply.h"
#include "result.h"

/* RFC 5321 4.5.3.2 timeouts, in seconds, capped by the account's `timeout`. */
enum { T_CONNECT = 60, T_GREETING = 300, T_EHLO = 300, T_MAIL = 300,
       T_RCPT = 300, T_DATA = 120, T_BLOCK = 180, T_EOD = 600, T_QUIT = 10 };

struct sio {
	struct conn *c;
	struct result *r;    /* where a failure is written */
	int timeout_cap;     /* seconds capping every timeout; 0: RFC values */
	int dead;            /* the connection is unusable: send nothing more */
	struct reply rp;     /* the last reply read */
	char line[REPLY_LINE_MAX + 1];
};

/* secs, capped by timeout_cap, in milliseconds. */
int sio_tmo(const struct sio *io, int secs);
/* A transport failure during `phase`: nothing more goes out.  -1. */
int sio_failed(struct sio *io, enum smtp_phase phase);
/* Queue one command line; `shown` replaces it in the -v transcript (AUTH
 * payloads), NULL shows the line.  Refuses CR, LF and NUL (SPEC 4). */
int sio_send_line(struct sio *io, const char *line, size_t n, const char *shown);
/* Message bytes (BDAT chunks, the DATA tail), not commands. */
int sio_write(struct sio *io, const void *p, size_t n, enum smtp_phase phase);
/* Room for at least `need` bytes in the write buffer (flushing first when
 * short), for the body filter to write into; sio_commit accounts them. */
char *sio_room(struct sio *io, size_t need, size_t *room);
void sio_commit(struct sio *io, size_t n);
int sio_flush(struct sio *io, enum smtp_phase phase, int secs);
/* Read one complete reply into io->rp.  -1: transport failure or a
 * malformed reply (the connection is then dead). */
int sio_read_reply(struct sio *io, enum smtp_phase phase, int secs);
/* The reply's first digit must be `want`; else -1 with io->r filled. */
int sio_check(struct sio *io, enum smtp_phase phase, int want);
/* With no reply owed, nothing may be waiting from the server: a 421 is
 * taken as the server closing, anything else as replies out of step. */
int sio_in_step(struct sio *io, enum smtp_phase phase);

#endif
