/* sbuf.c - growable, self-wiping byte strings (see sbuf.h). */
#include "config.h"
#include "sbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sbuf_free(struct sbuf *b)
{
	if (b->s)
		explicit_bzero(b->s, b->cap);
	free(b->s);
	memset(b, 0, sizeof *b);
}

void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->nomem)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *t;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(t = malloc(cap))) {
			b->nomem = 1;
			return;
		}
		if (b->s) {
			memcpy(t, b->s, b->len);
			explicit_bzero(b->s, b->cap);
			free(b->s);
		}
		b->s = t;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void sbuf_str(struct sbuf *b, const char *s)
{
	sbuf_add(b, s, strlen(s));
}

char *sbuf_take(struct sbuf *b)
{
	char *s = b->nomem ? NULL : b->s;

	if (!s && !b->nomem)
		s = strdup("");
	if (b->nomem)
		sbuf_free(b);
	memset(b, 0, sizeof *b);
	return s;
}

int sbuf_read_fd(struct sbuf *b, int fd, size_t max)
{
	char chunk[65536];
	ssize_t n;
	int rc = 0;

	while ((n = read(fd, chunk, sizeof chunk)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -1;
			break;
		}
		if (b->len + (size_t)n > max) {
			rc = -2;
			break;
		}
		sbuf_add(b, chunk, (size_t)n);
		if (b->nomem) {
			rc = -3;
			break;
		}
	}
	explicit_bzero(chunk, sizeof chunk);
	return rc;
}

int fd_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
