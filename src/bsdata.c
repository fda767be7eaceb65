/* bsdata.c - -bs line and DATA reader (see bsdata.h). */
#include "config.h"
#include "bsdata.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int fill(struct bs_reader *rd)
{
	ssize_t n;

	if (rd->pos > 0) {
		memmove(rd->buf, rd->buf + rd->pos, rd->len - rd->pos);
		rd->len -= rd->pos;
		rd->pos = 0;
	}
	do
		n = read(rd->fd, rd->buf + rd->len, sizeof rd->buf - rd->len);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		rd->len += (size_t)n;
		rd->total += (unsigned long long)n;
	}
	return n > 0 ? 1 : 0;
}

unsigned long long bs_consumed(const struct bs_reader *rd)
{
	return rd->total - (rd->len - rd->pos);
}

int bs_read_line(struct bs_reader *rd, char *out, size_t cap, size_t *len, int *complete)
{
	for (;;) {
		char *nl = memchr(rd->buf + rd->pos, '\n', rd->len - rd->pos);
		size_t avail = rd->len - rd->pos;
		size_t n = nl ? (size_t)(nl - (rd->buf + rd->pos)) : avail;

		if (nl || avail >= cap - 1 || avail == sizeof rd->buf) {
			if (n > cap - 1)
				n = cap - 1;
			/* A partial line never ends in CR: it may be half of a CRLF
			 * whose LF has not arrived, which must not become a line. */
			if (!nl && n > 1 && rd->buf[rd->pos + n - 1] == '\r')
				n--;
			memcpy(out, rd->buf + rd->pos, n);
			*complete = nl && rd->buf + rd->pos + n == nl;
			rd->pos += n + (size_t)*complete;
			rd->crlf = *complete && n > 0 && out[n - 1] == '\r';
			n -= (size_t)rd->crlf;
			out[n] = '\0';
			*len = n;
			return 0;
		}
		if (!fill(rd)) {
			if (avail == 0)
				return -1;
			memcpy(out, rd->buf + rd->pos, n);
			out[n] = '\0';
			*len = n;
			*complete = 1;
			rd->crlf = 0;   /* the input ended, not the line */
			rd->pos = rd->len;
			return 0;
		}
	}
}

int bs_data_line(const char *line, size_t len, int bol, int crlf_before,
		 int complete, int crlf, size_t *skip)
{
	*skip = 0;
	if (!bol || len == 0 || line[0] != '.')
		return 0;
	if (len == 1 && complete && crlf && crlf_before)
		return 1;
	/* "." alone that is not the end stays "."; ".x" loses its dot */
	*skip = len > 1 || !complete;
	return 0;
}

int bs_read_data(struct bs_reader *rd, bs_sink *put, void *arg)
{
	static char line[8192];
	int bol = 1, crlf_before = 1, complete;
	size_t len, skip;

	for (;;) {
		if (bs_read_line(rd, line, sizeof line, &len, &complete) < 0)
			return -1;
		if (bs_data_line(line, len, bol, crlf_before, complete, rd->crlf, &skip))
			return 0;
		put(arg, line + skip, len - skip);
		if (complete) {
			put(arg, "\r\n", 2);
			crlf_before = rd->crlf;
		}
		bol = complete;
	}
}
