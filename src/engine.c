/* engine.c - the SMTP command pipeline (see engine.h). */
#include "config.h"
#include "engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 5321 4.5.3.2: how long each reply may take. */
int eng_timeout(enum smtp_phase phase)
{
	switch (phase) {
	case PHASE_GREETING: return T_GREETING;
	case PHASE_MAIL: case PHASE_RSET: return T_MAIL;
	case PHASE_RCPT: return T_RCPT;
	case PHASE_DATA: return T_DATA;
	case PHASE_BDAT: return T_BLOCK;
	case PHASE_EOD: return T_EOD;
	case PHASE_QUIT: return T_QUIT;
	default: return T_EHLO;
	}
}

int eng_owe(struct engine *e, struct pending rec)
{
	if (e->len == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 64;
		struct pending *q = malloc(cap * sizeof *q);

		if (!q)
			return result_fail(e->io.r, EX_OSERR, "out of memory");
		for (size_t i = 0; i < e->len; i++)
			q[i] = e->q[(e->head + i) % e->cap];
		free(e->q);
		e->q = q;
		e->cap = cap;
		e->head = 0;
	}
	e->q[(e->head + e->len++) % e->cap] = rec;
	return 0;
}

int eng_send(struct engine *e, struct pending rec, const char *line, size_t n,
	     const char *shown)
{
	if (e->io.dead)
		return sio_failed(&e->io, rec.phase);
	if (sio_send_line(&e->io, line, n, shown) < 0) {
		if (e->io.dead)
			e->io.r->phase = rec.phase;
		return -1;
	}
	return eng_owe(e, rec);
}

int eng_sendf(struct engine *e, struct pending rec, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf)
		return result_fail(e->io.r, EX_USAGE, "SMTP command too long");
	return eng_send(e, rec, buf, (size_t)n, NULL);
}

/* Flush only when nothing is waiting to be read: what is already here
 * answers commands sent earlier, and the commands queued since can still
 * be joined by more before they leave. */
int eng_read(struct engine *e, struct pending *rec)
{
	enum smtp_phase phase;

	if (e->len == 0)
		return result_fail(e->io.r, EX_SOFTWARE, "internal error: a reply was "
				   "read for no command");
	*rec = e->q[e->head];
	phase = (enum smtp_phase)rec->phase;
	if (!e->io.dead && conn_unread(e->io.c) == 0 &&
	    sio_flush(&e->io, phase, T_BLOCK) < 0)
		return -1;
	e->head = (e->head + 1) % e->cap;
	e->len--;
	return sio_read_reply(&e->io, phase, eng_timeout(phase));
}

size_t eng_owed(const struct engine *e)
{
	return e->len;
}

void eng_forget(struct engine *e)
{
	e->head = e->len = 0;
}

void eng_free(struct engine *e)
{
	free(e->q);
	e->q = NULL;
	e->head = e->len = e->cap = 0;
}

int eng_ask(struct engine *e, enum smtp_phase phase, const char *line, size_t n,
	    const char *shown)
{
	struct pending rec = { .phase = (unsigned char)phase };

	if (eng_send(e, rec, line, n, shown) < 0)
		return -1;
	return eng_read(e, &rec);
}
