/* sbuf.h - a growable byte string with a sticky out-of-memory flag: callers
 * append freely and check `nomem` once.  Any buffer may hold a password, so
 * growing copies (realloc could leave a stale copy behind) and freeing wipes. */
#ifndef PUSHMAIL_SBUF_H
#define PUSHMAIL_SBUF_H

#include <stddef.h>

struct sbuf {
	char *s;          /* NUL-terminated once anything was added */
	size_t len, cap;
	int nomem;
};

void sbuf_free(struct sbuf *b);
void sbuf_add(struct sbuf *b, const char *s, size_t n);
void sbuf_str(struct sbuf *b, const char *s);

/* Take the string out of b ("" when empty, NULL after ENOMEM); b is left
 * empty.  The caller frees the result. */
char *sbuf_take(struct sbuf *b);

/* Append all of fd, at most max bytes in total.  Returns 0, -1 on a read
 * error (errno set), -2 when the input is larger than max, -3 on ENOMEM. */
int sbuf_read_fd(struct sbuf *b, int fd, size_t max);

/* Write all n bytes of p to fd (retrying short writes and EINTR).  Returns
 * 0, or -1 with errno set (0 written counts as EIO). */
int fd_write_all(int fd, const char *p, size_t n);

#endif
