/* smtp_data.c - the message itself: read block by block (the head held in
 * memory, then the rest of the file descriptor; the body is never held
 * whole), and DATA's body and final dot through the streaming filter. */
#include "config.h"
#include "session.h"
#include "body.h"
#include "log.h"
#include "progress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes the message will have, for the progress line; 0 when unknown. */
static unsigned long long message_size(const struct smtp_message *m)
{
	struct stat st;
	off_t pos;

	if (m->size)
		return m->size;
	if (m->fd < 0)
		return m->headlen;
	pos = lseek(m->fd, 0, SEEK_CUR);
	if (fstat(m->fd, &st) < 0 || !S_ISREG(st.st_mode) || pos < 0 || st.st_size < pos)
		return 0;
	return m->headlen + (unsigned long long)(st.st_size - pos);
}

static int each_block(const struct smtp_message *m,
		      int (*fn)(void *ctx, const char *p, size_t n), void *ctx,
		      struct result *r)
{
	static char block[BODY_BLOCK];
	size_t off;

	for (off = 0; off < m->headlen; off += BODY_BLOCK) {
		size_t n = m->headlen - off < BODY_BLOCK ? m->headlen - off : BODY_BLOCK;
		if (fn(ctx, m->head + off, n) < 0)
			return -1;
		progress_add(n);
	}
	while (m->fd >= 0) {
		ssize_t n = read(m->fd, block, sizeof block);
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r->phase = PHASE_DATA;
			return result_fail(r, EX_IOERR, "reading the message: %s",
					   strerror(errno));
		}
		if (fn(ctx, block, (size_t)n) < 0)
			return -1;
		progress_add((unsigned long long)n);
	}
	return 0;
}

int ss_for_each_block(const struct smtp_message *m,
		      int (*fn)(void *ctx, const char *p, size_t n), void *ctx,
		      struct result *r)
{
	int rc;

	progress_start(message_size(m));
	rc = each_block(m, fn, ctx, r);
	progress_end();
	return rc;
}

struct body_sink {
	struct sio *io;
	struct body_filter bf;
};

/* Run n input bytes through the filter straight into the write buffer. */
static int body_to_conn(void *ctx, const char *p, size_t n)
{
	struct body_sink *k = ctx;
	size_t room;
	char *out = sio_room(k->io, BODY_OUT_MAX(n), &room);

	if (!out)
		return -1;
	sio_commit(k->io, body_feed(&k->bf, p, n, out));
	return 0;
}

int ss_send_data(struct smtp_session *s, const struct smtp_message *m, unsigned item,
		 size_t eods, unsigned long long *bytes)
{
	struct sio *io = &s->e.io;
	struct body_sink k = { .io = io };
	char tail[16];

	body_init(&k.bf, 1);
	if (ss_for_each_block(m, body_to_conn, &k, io->r) < 0)
		return -1;
	if (k.bf.nul) {
		/* Stop before the final dot: the relay discards the transaction. */
		io->r->phase = PHASE_DATA;
		return result_fail(io->r, EX_DATAERR,
				   "the message contains NUL bytes, which SMTP DATA cannot carry");
	}
	if (sio_write(io, tail, body_finish(&k.bf, tail), PHASE_DATA) < 0)
		return -1;
	s->in_data = 0;
	log_proto("->", "[message]", 9);
	*bytes = k.bf.out_total;
	for (size_t i = 0; i < eods; i++)
		if (eng_owe(&s->e, (struct pending){ PHASE_EOD, item, (unsigned)i }) < 0)
			return -1;
	return 0;
}
