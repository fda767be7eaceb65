/* conn.c - sockets, deadlines, buffered line reader and writer (see conn.h).
 *
 * All descriptors are non-blocking; every wait is a poll() bounded by the
 * caller's deadline, so no server can hold pushmail longer than the phase
 * timeout.  The ops table is the one place where plain and TLS differ.
 */
#include "config.h"
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	const struct conn_ops *ops;
	void *ctx;
	size_t rpos, rlen;
	char rbuf[CONN_RBUF];
	size_t wlen;
	char *wbuf;
	unsigned long long out_total;
};

/* ---- plain socket byte mover ------------------------------------------- */

static ssize_t plain_read(void *ctx, void *buf, size_t len)
{
	return read(*(int *)ctx, buf, len);
}

static ssize_t plain_write(void *ctx, const void *buf, size_t len)
{
	/* MSG_NOSIGNAL: a peer that went away is an error return, not SIGPIPE. */
	ssize_t n = send(*(int *)ctx, buf, len, MSG_NOSIGNAL);
	if (n < 0 && errno == ENOTSOCK)
		n = write(*(int *)ctx, buf, len);
	return n;
}

static const struct conn_ops plain_ops = {
	.read = plain_read,
	.write = plain_write,
};

/* ---- deadlines ------------------------------------------------------------ */

long long conn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int conn_wait_fd(int fd, int for_write, long long deadline)
{
	short events = for_write ? POLLOUT : POLLIN;

	for (;;) {
		long long left = deadline - conn_now_ms();
		struct pollfd pfd = { .fd = fd, .events = events };
		int n;

		if (left <= 0)
			return 0;
		n = poll(&pfd, 1, left > 1000000000 ? 1000000000 : (int)left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- construction -------------------------------------------------------- */

struct conn *conn_from_fd(int fd)
{
	struct conn *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->wbuf = malloc(CONN_WBUF);
	if (!c->wbuf) {
		free(c);
		return NULL;
	}
	set_nonblock(fd);
	c->fd = fd;
	c->ops = &plain_ops;
	c->ctx = &c->fd;
	return c;
}

void conn_set_ops(struct conn *c, const struct conn_ops *ops, void *ctx)
{
	c->ops = ops;
	c->ctx = ctx;
}

int conn_fd(const struct conn *c)
{
	return c->fd;
}

/* Try one address within `wait_ms`.  Returns the connected fd or -1 (errno). */
static int try_connect(const struct addrinfo *ai, long long deadline)
{
	int fd, err;
	socklen_t len = sizeof err;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS)
		goto fail;
	switch (conn_wait_fd(fd, 1, deadline)) {
	case 0:
		errno = ETIMEDOUT;
		goto fail;
	case -1:
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		goto fail;
	if (err == 0)
		return fd;
	errno = err;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/* One lookup handed to glibc's resolver thread.  It owns copies of what it
 * points to, because on a timeout the thread may still be using them: then
 * it is left behind (a few hundred bytes, once per run) rather than freed
 * under the thread's feet. */
struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	char *host, *port;
};

static void lookup_free(struct lookup *lk)
{
	free(lk->host);
	free(lk->port);
	free(lk);
}

/* Wait for lk until deadline; 0 when it is over (finished or failed). */
static int lookup_wait(struct lookup *lk, long long deadline)
{
	const struct gaicb *list[1] = { &lk->cb };

	while (gai_error(&lk->cb) == EAI_INPROGRESS) {
		long long left = deadline - conn_now_ms();
		struct timespec ts = { left / 1000, (left % 1000) * 1000000 };
		if (left <= 0)
			return gai_cancel(&lk->cb) == EAI_CANCELED ? 0 : -1;
		gai_suspend(list, 1, &ts);
	}
	return 0;
}

int conn_resolve(const char *host, const char *port, const struct addrinfo *hints,
		 struct addrinfo **res, int timeout_ms, int *timed_out)
{
	struct lookup *lk = calloc(1, sizeof *lk);
	struct gaicb *list[1];
	int rc;

	*res = NULL;
	*timed_out = 0;
	if (!lk || !(lk->host = strdup(host)) || (port && !(lk->port = strdup(port)))) {
		if (lk)
			lookup_free(lk);
		return EAI_MEMORY;
	}
	lk->hints = *hints;
	lk->cb.ar_name = lk->host;
	lk->cb.ar_service = lk->port;
	lk->cb.ar_request = &lk->hints;
	list[0] = &lk->cb;
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (rc != 0) {
		lookup_free(lk);
		return rc;
	}
	if (lookup_wait(lk, conn_now_ms() + timeout_ms) < 0) {
		*timed_out = 1;   /* still running: lk stays with the thread */
		return EAI_AGAIN;
	}
	rc = gai_error(&lk->cb);
	if (rc == EAI_CANCELED) {
		*timed_out = 1;
		rc = EAI_AGAIN;
	}
	if (rc == 0)
		*res = lk->cb.ar_result;
	else if (lk->cb.ar_result)
		freeaddrinfo(lk->cb.ar_result);
	lookup_free(lk);
	return rc;
}

/* The lookup counts against the connect deadline (issue 13): a resolver
 * that never answers is a timeout like a server that never answers. */
static int resolve(const char *host, const char *port, struct addrinfo **res,
		   long long deadline, struct result *r)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	long long left = deadline - conn_now_ms();
	int timed_out, rc = conn_resolve(host, port, &hints, res,
					 left > 0 ? (int)left : 0, &timed_out);

	if (rc == 0)
		return 0;
	r->phase = PHASE_CONNECT;
	if (timed_out)
		return result_fail(r, EX_TEMPFAIL, "cannot resolve '%s': no answer from "
				   "the resolver within the connect timeout", host);
	if (rc == EAI_NONAME || rc == EAI_NODATA)
		return result_fail(r, EX_NOHOST, "host '%s' not found: %s", host,
				   gai_strerror(rc));
	if (rc == EAI_SERVICE)
		return result_fail(r, EX_CONFIG, "bad port '%s': %s", port,
				   gai_strerror(rc));
	if (rc == EAI_SYSTEM)
		return result_fail(r, EX_TEMPFAIL, "cannot resolve '%s': %s", host,
				   strerror(errno));
	return result_fail(r, EX_TEMPFAIL, "cannot resolve '%s': %s", host,
			   gai_strerror(rc));
}

int conn_connect(struct conn **out, const char *host, const char *port,
		 int timeout_ms, struct result *r)
{
	struct addrinfo *res, *ai;
	long long start = conn_now_ms(), deadline = start + timeout_ms;
	int fd = -1, err = 0, left = 0;

	*out = NULL;
	if (resolve(host, port, &res, deadline, r) < 0)
		return -1;
	for (ai = res; ai; ai = ai->ai_next)
		left++;
	/* One overall deadline: each address gets an equal share of what is
	 * left, so a black-holed IPv6 address cannot eat the whole budget. */
	for (ai = res; ai && fd < 0; ai = ai->ai_next, left--) {
		long long now = conn_now_ms();
		fd = try_connect(ai, now + (deadline - now) / left);
		if (fd < 0)
			err = errno;
	}
	freeaddrinfo(res);
	r->phase = PHASE_CONNECT;
	if (fd < 0)
		return result_fail(r, EX_TEMPFAIL, "cannot connect to %s port %s: %s",
				   host, port, strerror(err));
	*out = conn_from_fd(fd);
	if (!*out) {
		close(fd);
		return result_fail(r, EX_OSERR, "out of memory");
	}
	return 0;
}

/* ---- writing -------------------------------------------------------------- */

/* Which way to wait after EAGAIN: TLS may need to write while reading. */
static int wants_write(const struct conn *c, int dflt)
{
	return c->ops->direction ? c->ops->direction(c->ctx) : dflt;
}

static int io_fail(struct result *r, int timed_out, const char *what)
{
	if (timed_out)
		return result_fail(r, EX_TEMPFAIL, "timed out %s", what);
	return result_fail(r, EX_TEMPFAIL, "connection lost %s: %s", what,
			   errno ? strerror(errno) : "closed by the server");
}

static int write_all(struct conn *c, const char *p, size_t len, long long deadline,
		     struct result *r)
{
	while (len > 0) {
		ssize_t n = c->ops->write(c->ctx, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			c->out_total += (unsigned long long)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int w = conn_wait_fd(c->fd, wants_write(c, 1), deadline);
			if (w > 0)
				continue;
			return io_fail(r, w == 0, "while sending");
		}
		if (n == 0)
			errno = 0;
		return io_fail(r, 0, "while sending");
	}
	return 0;
}

int conn_flush(struct conn *c, int timeout_ms, struct result *r)
{
	int rc = write_all(c, c->wbuf, c->wlen, conn_now_ms() + timeout_ms, r);

	c->wlen = 0;
	return rc;
}

int conn_write(struct conn *c, const void *buf, size_t len, int timeout_ms,
	       struct result *r)
{
	if (c->wlen + len > CONN_WBUF && conn_flush(c, timeout_ms, r) < 0)
		return -1;
	if (len >= CONN_WBUF)
		return write_all(c, buf, len, conn_now_ms() + timeout_ms, r);
	memcpy(c->wbuf + c->wlen, buf, len);
	c->wlen += len;
	return 0;
}

void conn_wipe_output(struct conn *c)
{
	explicit_bzero(c->wbuf + c->wlen, CONN_WBUF - c->wlen);
}

char *conn_wspace(struct conn *c, size_t *room)
{
	*room = CONN_WBUF - c->wlen;
	return c->wbuf + c->wlen;
}

void conn_commit(struct conn *c, size_t n)
{
	c->wlen += n;
}

/* ---- reading -------------------------------------------------------------- */

/* Read more into rbuf.  Returns 1 got data, or -1 with r filled. */
static int fill(struct conn *c, long long deadline, struct result *r)
{
	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	for (;;) {
		ssize_t n = c->ops->read(c->ctx, c->rbuf + c->rlen,
					 sizeof c->rbuf - c->rlen);
		if (n > 0) {
			c->rlen += (size_t)n;
			return 1;
		}
		if (n == 0) {
			errno = 0;
			return io_fail(r, 0, "while waiting for a reply");
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return io_fail(r, 0, "while waiting for a reply");
		int w = conn_wait_fd(c->fd, wants_write(c, 0), deadline);
		if (w <= 0)
			return io_fail(r, w == 0, "waiting for a reply");
	}
}

int conn_getline(struct conn *c, char *buf, size_t cap, size_t *len,
		 int timeout_ms, struct result *r)
{
	long long deadline = conn_now_ms() + timeout_ms;

	for (;;) {
		char *start = c->rbuf + c->rpos;
		size_t avail = c->rlen - c->rpos;
		char *nl = memchr(start, '\n', avail);

		if (nl) {
			size_t n = (size_t)(nl - start);
			if (n > 0 && start[n - 1] == '\r')
				n--;
			if (n >= cap)
				break;
			memcpy(buf, start, n);
			buf[n] = '\0';
			*len = n;
			c->rpos += (size_t)(nl - start) + 1;
			return 0;
		}
		/* No line end yet: a line that cannot fit is refused now, before
		 * reading more of it, so an endless line costs bounded memory.
		 * (A full line's CR may be here while its LF is still coming.) */
		if (avail > cap || (avail == cap && start[avail - 1] != '\r') ||
		    avail >= sizeof c->rbuf)
			break;
		if (fill(c, deadline, r) < 0)
			return -1;
	}
	return result_fail(r, EX_PROTOCOL, "reply line longer than %zu bytes",
			   cap - 1);
}

size_t conn_unread(const struct conn *c)
{
	return c->rlen - c->rpos;
}

int conn_pending(struct conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	if (conn_unread(c) > 0)
		return 1;
	/* TLS: only what the TLS layer already decoded counts; the socket may
	 * hold records that are not data (TLS 1.3 session tickets). */
	if (c->ops->pending)
		return c->ops->pending(c->ctx) > 0;
	return poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

unsigned long long conn_bytes_out(const struct conn *c)
{
	return c->out_total;
}

void conn_close(struct conn *c)
{
	if (!c)
		return;
	if (c->ops->close)
		c->ops->close(c->ctx);
	/* Half-close first so a QUIT still in flight is not turned into a RST
	 * by unread data on our side. */
	shutdown(c->fd, SHUT_WR);
	close(c->fd);
	free(c->wbuf);
	free(c);
}
