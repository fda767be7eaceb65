/* smtp_io.c - the SMTP session's primitives (see smtp_io.h). */
#include "config.h"
#include "smtp_io.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

int sio_tmo(const struct sio *io, int secs)
{
	if (io->timeout_cap > 0 && io->timeout_cap < secs)
		secs = io->timeout_cap;
	return secs * 1000;
}

int sio_failed(struct sio *io, enum smtp_phase phase)
{
	io->dead = 1;
	io->r->phase = phase;
	return -1;
}

/* The one gate for everything that reaches the wire as a command: a CR, LF
 * or NUL in any value would start a new command (SPEC 4). */
int sio_send_line(struct sio *io, const char *line, size_t n, const char *shown)
{
	if (memchr(line, '\r', n) || memchr(line, '\n', n) || memchr(line, '\0', n))
		return result_fail(io->r, EX_USAGE,
				   "refusing to send a command containing CR, LF or NUL");
	log_proto("->", shown ? shown : line, shown ? strlen(shown) : n);
	if (conn_write(io->c, line, n, sio_tmo(io, T_BLOCK), io->r) < 0 ||
	    conn_write(io->c, "\r\n", 2, sio_tmo(io, T_BLOCK), io->r) < 0)
		return sio_failed(io, PHASE_NONE);
	return 0;
}

int sio_write(struct sio *io, const void *p, size_t n, enum smtp_phase phase)
{
	if (conn_write(io->c, p, n, sio_tmo(io, T_BLOCK), io->r) < 0)
		return sio_failed(io, phase);
	return 0;
}

int sio_flush(struct sio *io, enum smtp_phase phase, int secs)
{
	if (conn_flush(io->c, sio_tmo(io, secs), io->r) < 0)
		return sio_failed(io, phase);
	return 0;
}

char *sio_room(struct sio *io, size_t need, size_t *room)
{
	char *out = conn_wspace(io->c, room);

	if (*room >= need)
		return out;
	if (sio_flush(io, PHASE_DATA, T_BLOCK) < 0)
		return NULL;
	return conn_wspace(io->c, room);
}

void sio_commit(struct sio *io, size_t n)
{
	conn_commit(io->c, n);
}

int sio_read_reply(struct sio *io, enum smtp_phase phase, int secs)
{
	const char *why = NULL;
	long long deadline = conn_now_ms() + sio_tmo(io, secs);
	size_t len;

	reply_init(&io->rp);
	for (;;) {
		/* One deadline for the whole reply, not per line: a relay that
		 * drips continuation lines cannot stretch the phase timeout. */
		long long left = deadline - conn_now_ms();
		if (conn_getline(io->c, io->line, sizeof io->line, &len,
				 left > 0 ? (int)left : 0, io->r) < 0)
			return sio_failed(io, phase);
		log_proto("<-", io->line, len);
		switch (reply_feed(&io->rp, io->line, len, &why)) {
		case REPLY_MORE:
			continue;
		case REPLY_DONE:
			return 0;
		case REPLY_BAD:
			sio_failed(io, phase);
			return result_fail(io->r, EX_PROTOCOL, "malformed reply to %s: %s",
					   result_phase_name(phase), why);
		}
	}
}

int sio_check(struct sio *io, enum smtp_phase phase, int want)
{
	if (io->rp.code / 100 == want)
		return 0;
	return result_reply(io->r, phase, io->rp.code, io->rp.enh, io->rp.text);
}

int sio_in_step(struct sio *io, enum smtp_phase phase)
{
	if (!conn_pending(io->c))
		return 0;
	/* Every reply we asked for has been read, yet more is waiting.  A 421
	 * is the server closing (a timeout on its side); anything else means
	 * its replies and our commands are out of step, and the next reply we
	 * read would be taken for the wrong command. */
	if (sio_read_reply(io, phase, 2) == 0 && io->rp.code == 421) {
		io->dead = 1;
		return result_reply(io->r, phase, io->rp.code, io->rp.enh, io->rp.text);
	}
	sio_failed(io, phase);
	return result_fail(io->r, EX_PROTOCOL, "the server sent a reply that no command "
			   "asked for; its replies are out of step, so nothing more is sent");
}
