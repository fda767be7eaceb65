/* conn.c - sockets, deadlines, buffered line reader and writer (see conn.h).
 *
 * All descriptors are non-blocking; every wait is a poll() bounded by the
 * caller's deadline, so no server can hold pushmail longer than the phase
 * timeout.  The ops table is the one place where plain and TLS differ.
 */
#include "config.h"
#include "conn.h"
#include "log.h"
#include "socks.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
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
	char path[1024];       /* conn_path() */
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
static int resolve(const char *host, const char *port, int family,
		   struct addrinfo **res, long long deadline, struct result *r)
{
	struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM };
	long long left = deadline - conn_now_ms();
	int timed_out, rc = conn_resolve(host, port, &hints, res,
					 left > 0 ? (int)left : 0, &timed_out);

	if (rc == 0)
		return 0;
	r->phase = PHASE_CONNECT;
	if (timed_out)
		return result_fail(r, EX_TEMPFAIL, "cannot resolve '%s': no answer from "
				   "the resolver within the connect timeout", host);
	if (rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_ADDRFAMILY)
		return result_fail(r, EX_NOHOST, "host '%s' not found%s: %s", host,
				   family == AF_INET ? " (ip_version = 4)" :
				   family == AF_INET6 ? " (ip_version = 6)" : "",
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

/* ---- Happy Eyeballs (RFC 8305) ------------------------------------------- */

#define HE_MAX 16   /* attempts in flight at once; more wait their turn */

struct he {
	struct pollfd pfd[HE_MAX];
	const struct addrinfo *ai[HE_MAX];
	int n;
	int err;                     /* errno of the last failed attempt */
	const struct sockaddr *src;  /* bind to this first, or NULL */
	socklen_t srclen;
};

/* Numeric text of an address, for messages. */
static void addr_text(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap)
{
	if (getnameinfo(sa, len, buf, (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(buf, cap, "?");
}

static void he_drop(struct he *h, int i)
{
	close(h->pfd[i].fd);
	h->n--;
	h->pfd[i] = h->pfd[h->n];
	h->ai[i] = h->ai[h->n];
}

/* Start one attempt.  Returns the fd when it connected at once, -1 when it
 * is in flight or failed (h->err). */
static int he_start(struct he *h, const struct addrinfo *ai)
{
	char a[INET6_ADDRSTRLEN];
	int fd;

	addr_text(ai->ai_addr, ai->ai_addrlen, a, sizeof a);
	log_info("trying %s%s", a, h->n ? " (the attempts before it have not "
		 "answered yet and go on)" : "");
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0) {
		h->err = errno;
		return -1;
	}
	if (h->src && bind(fd, h->src, h->srclen) < 0)
		goto fail;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS)
		goto fail;
	h->pfd[h->n].fd = fd;
	h->pfd[h->n].events = POLLOUT;
	h->ai[h->n++] = ai;
	return -1;
fail:
	h->err = errno;
	close(fd);
	return -1;
}

/* Wait until `until` for an attempt to finish.  Returns a connected fd, or
 * -1 (none connected yet; finished failures are removed). */
static int he_wait(struct he *h, long long until)
{
	long long left = until - conn_now_ms();
	int n;

	if (h->n == 0)
		return -1;
	n = poll(h->pfd, (nfds_t)h->n, left > 0 ? (int)(left > 1000000 ? 1000000 : left) : 0);
	for (int i = h->n - 1; n > 0 && i >= 0; i--) {
		int err = 0, fd = h->pfd[i].fd;
		socklen_t len = sizeof err;

		if (!h->pfd[i].revents)
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err == 0) {
			h->n--;                       /* keep fd: the winner */
			h->pfd[i] = h->pfd[h->n];
			h->ai[i] = h->ai[h->n];
			return fd;
		}
		h->err = err;
		he_drop(h, i);
	}
	return -1;
}

/* The attempts in order, each CONN_HE_DELAY_MS after the one before unless
 * that one failed first (then at once); the first to connect wins and the
 * rest are closed.  Returns the fd or -1 (errno: the last failure, or
 * ETIMEDOUT). */
static int he_connect(struct he *h, const struct addrinfo *list, long long deadline)
{
	const struct addrinfo *next = list;
	long long next_at = 0;
	int fd = -1;

	h->err = ETIMEDOUT;
	while (fd < 0 && conn_now_ms() < deadline && (next || h->n > 0)) {
		long long now = conn_now_ms();
		int before = h->n;

		if (next && (h->n == 0 || now >= next_at) && h->n < HE_MAX) {
			fd = he_start(h, next);
			next = next->ai_next;
			next_at = now + CONN_HE_DELAY_MS;
			continue;
		}
		fd = he_wait(h, next && h->n < HE_MAX && next_at < deadline ? next_at
								  : deadline);
		if (h->n < before)
			next_at = 0;   /* one failed: the next need not wait */
	}
	while (h->n > 0)
		he_drop(h, h->n - 1);
	if (fd < 0 && conn_now_ms() >= deadline)
		h->err = ETIMEDOUT;
	errno = h->err;
	return fd;
}

/* RFC 8305 4: alternate the address families, starting with the one
 * getaddrinfo put first, so that several addresses of a broken family cost
 * one attempt delay, not one each.  The list is relinked in place; its head
 * stays first, so freeaddrinfo(head) still frees every node. */
static void he_interleave(struct addrinfo *head)
{
	struct addrinfo *same = NULL, **st = &same, *other = NULL, **ot = &other;
	struct addrinfo *ai, *next, *tail = head;
	int fam = head->ai_family;

	for (ai = head->ai_next; ai; ai = next) {
		next = ai->ai_next;
		ai->ai_next = NULL;
		if (ai->ai_family == fam) {
			*st = ai;
			st = &ai->ai_next;
		} else {
			*ot = ai;
			ot = &ai->ai_next;
		}
	}
	/* head, other[0], same[0], other[1], same[1], ... */
	while (same || other) {
		struct addrinfo **from = other ? &other : &same;

		tail->ai_next = *from;
		tail = *from;
		*from = tail->ai_next;
		if (from == &other && same) {
			tail->ai_next = same;
			tail = same;
			same = same->ai_next;
		}
	}
	tail->ai_next = NULL;
}

/* ---- paths to the relay ----------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static int fail_config(struct result *r, const char *fmt, ...)
{
	char msg[RESULT_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->phase = PHASE_CONNECT;
	return result_fail(r, EX_CONFIG, "%s", msg);
}

/* source_address as a sockaddr (port 0); its family. */
static int source_addr(const char *src, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, src, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		*len = sizeof *s4;
		return AF_INET;
	}
	if (inet_pton(AF_INET6, src, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		*len = sizeof *s6;
		return AF_INET6;
	}
	return -1;
}

static const char *family_name(int af)
{
	return af == AF_INET ? "IPv4" : af == AF_INET6 ? "IPv6" : "?";
}

/* Connect to host:port directly (Happy Eyeballs over its addresses). */
static int tcp_connect(const char *host, const char *port, const struct conn_route *rt,
		       long long deadline, int *fd_out, char *path, size_t cap,
		       struct result *r)
{
	struct sockaddr_storage src, peer, local;
	socklen_t srclen = 0, plen = sizeof peer, llen = sizeof local;
	struct he h = { .n = 0 };
	struct addrinfo *res;
	int family = rt->family == 4 ? AF_INET : rt->family == 6 ? AF_INET6 : AF_UNSPEC;
	char pa[INET6_ADDRSTRLEN], la[INET6_ADDRSTRLEN];
	int fd, err;

	if (rt->source) {
		int sf = source_addr(rt->source, &src, &srclen);
		if (sf < 0)
			return fail_config(r, "bad source_address '%s'", rt->source);
		if (family != AF_UNSPEC && family != sf)
			return fail_config(r, "source_address %s is not an %s address "
					   "(ip_version)", rt->source, family_name(family));
		family = sf;   /* only addresses it can reach */
		h.src = (struct sockaddr *)&src;
		h.srclen = srclen;
	}
	if (resolve(host, port, family, &res, deadline, r) < 0)
		return -1;
	he_interleave(res);
	fd = he_connect(&h, res, deadline);
	err = errno;
	freeaddrinfo(res);
	r->phase = PHASE_CONNECT;
	if (fd < 0 && rt->source && err == EADDRNOTAVAIL)
		return fail_config(r, "cannot bind to source_address %s: %s", rt->source,
				   strerror(err));
	if (fd < 0)
		return result_fail(r, EX_TEMPFAIL, "cannot connect to %s port %s: %s",
				   host, port, strerror(err));
	getpeername(fd, (struct sockaddr *)&peer, &plen);
	getsockname(fd, (struct sockaddr *)&local, &llen);
	addr_text((struct sockaddr *)&peer, plen, pa, sizeof pa);
	addr_text((struct sockaddr *)&local, llen, la, sizeof la);
	snprintf(path, cap, "%s port %s (%s) from %s%s", pa, port,
		 family_name(peer.ss_family), la, rt->source ? " (source_address)" : "");
	*fd_out = fd;
	return 0;
}

static int unix_connect(const char *path, long long deadline, int *fd_out,
			struct result *r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, err = 0, w;
	socklen_t len = sizeof err;

	r->phase = PHASE_CONNECT;
	if (strlen(path) >= sizeof sun.sun_path)
		return fail_config(r, "socket path too long: %s", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return result_fail(r, EX_OSERR, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		err = errno;
		if (err == EINPROGRESS || err == EAGAIN) {
			w = conn_wait_fd(fd, 1, deadline);
			err = w == 0 ? ETIMEDOUT : w < 0 ? errno : 0;
			if (w > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
		}
	}
	if (err) {
		close(fd);
		return result_fail(r, EX_TEMPFAIL, "cannot connect to unix socket %s: %s",
				   path, strerror(err));
	}
	*fd_out = fd;
	return 0;
}

/* "socks5h://host:port" into its parts (cfg.c validated it). */
static int proxy_parts(const char *proxy, char *host, size_t cap, char *port,
		       size_t pcap, int *remote_dns)
{
	const char *hp = strstr(proxy, "://"), *colon;
	size_t n;

	if (!hp)
		return -1;
	*remote_dns = hp - proxy == 7;   /* "socks5h" */
	hp += 3;
	colon = strrchr(hp, ':');
	if (!colon)
		return -1;
	n = (size_t)(colon - hp);
	if (*hp == '[' && n >= 2 && hp[n - 1] == ']') {
		hp++;
		n -= 2;
	}
	if (n == 0 || n >= cap || strlen(colon + 1) >= pcap)
		return -1;
	memcpy(host, hp, n);
	host[n] = '\0';
	snprintf(port, pcap, "%s", colon + 1);
	return 0;
}

#define PROXY_TARGETS 8   /* relay addresses tried through the proxy */

/* The relay's addresses as the proxy should be told them: the name itself
 * with socks5h, else what our resolver gives (ip_version applies, families
 * interleaved as for a direct connection).  Returns how many. */
static int proxy_targets(const char *host, const char *port, const struct conn_route *rt,
			 int remote_dns, char out[][INET6_ADDRSTRLEN + 256],
			 long long deadline, struct result *r)
{
	int family = rt->family == 4 ? AF_INET : rt->family == 6 ? AF_INET6 : AF_UNSPEC;
	struct addrinfo *res, *ai;
	int n = 0;

	if (remote_dns) {
		snprintf(out[0], INET6_ADDRSTRLEN + 256, "%s", host);
		return 1;
	}
	if (resolve(host, port, family, &res, deadline, r) < 0)
		return -1;
	he_interleave(res);
	for (ai = res; ai && n < PROXY_TARGETS; ai = ai->ai_next)
		addr_text(ai->ai_addr, ai->ai_addrlen, out[n++], INET6_ADDRSTRLEN + 256);
	freeaddrinfo(res);
	return n;
}

/* One CONNECT through a new connection to the proxy.  0 with *fd_out, or
 * -1 with r filled and sp->rep the proxy's REP (-1 when it gave none). */
static int proxy_once(const char *ph, const char *pp, struct socks_params *sp,
		      const struct conn_route *rt, long long deadline, int *fd_out,
		      struct result *r)
{
	struct conn_route direct = { .source = rt->source };
	char leg[300];
	int fd;

	sp->rep = -1;
	/* ip_version is about the relay; the proxy is reached however it can
	 * be (source_address still applies: it is this host's side). */
	if (tcp_connect(ph, pp, &direct, deadline, &fd, leg, sizeof leg, r) < 0) {
		size_t n = strlen(r->text);
		snprintf(r->text + n, sizeof r->text - n, " (the SOCKS5 proxy)");
		return -1;
	}
	if (socks_handshake(fd, sp, deadline, r) < 0) {
		close(fd);
		return -1;
	}
	*fd_out = fd;
	return 0;
}

/* REP codes another address of the relay may not get: unreachable,
 * refused, TTL expired (RFC 1928 6). */
static int rep_try_next(int rep)
{
	return rep == 3 || rep == 4 || rep == 5 || rep == 6;
}

static int proxy_connect(const char *host, const char *port, const struct conn_route *rt,
			 long long deadline, int *fd_out, char *path, size_t cap,
			 struct result *r)
{
	char ph[256], pp[8], leg[300], targets[PROXY_TARGETS][INET6_ADDRSTRLEN + 256];
	struct socks_params sp = { .user = rt->proxy_user, .pass = rt->proxy_pass };
	int remote_dns, n, i;

	if (proxy_parts(rt->proxy, ph, sizeof ph, pp, sizeof pp, &remote_dns) < 0)
		return fail_config(r, "bad proxy '%s'", rt->proxy);
	n = proxy_targets(host, port, rt, remote_dns, targets, deadline, r);
	if (n < 0)
		return -1;
	snprintf(leg, sizeof leg, "%s port %s", ph, pp);
	sp.proxy = leg;
	sp.port = (unsigned)atoi(port);
	for (i = 0; i < n; i++) {
		sp.host = targets[i];
		if (proxy_once(ph, pp, &sp, rt, deadline, fd_out, r) == 0)
			break;
		if (!rep_try_next(sp.rep) || i + 1 == n || conn_now_ms() >= deadline)
			return -1;
		log_info("%s; trying %s", r->text, targets[i + 1]);
	}
	log_info("SOCKS5 proxy %s connected us to %s port %s", leg, sp.host, port);
	snprintf(path, cap, "%s port %s through SOCKS5 proxy %s%s%s%s", sp.host, port,
		 leg, remote_dns ? " (the proxy resolves the name)" : "",
		 rt->proxy_user ? " as " : "", rt->proxy_user ? rt->proxy_user : "");
	return 0;
}

int conn_open(struct conn **out, const char *host, const char *port,
	      const struct conn_route *rt, int timeout_ms, struct result *r)
{
	static const struct conn_route direct;
	long long deadline = conn_now_ms() + timeout_ms;
	char path[1024];
	int fd = -1, rc;

	*out = NULL;
	rt = rt ? rt : &direct;
	if (host[0] == '/') {
		rc = unix_connect(host, deadline, &fd, r);
		snprintf(path, sizeof path, "unix socket %s", host);
	} else if (rt->proxy) {
		rc = proxy_connect(host, port, rt, deadline, &fd, path, sizeof path, r);
	} else {
		rc = tcp_connect(host, port, rt, deadline, &fd, path, sizeof path, r);
	}
	if (rc < 0)
		return -1;
	log_info("connected to %s", path);
	*out = conn_from_fd(fd);
	if (!*out) {
		close(fd);
		return result_fail(r, EX_OSERR, "out of memory");
	}
	snprintf((*out)->path, sizeof (*out)->path, "%s", path);
	return 0;
}

int conn_connect(struct conn **out, const char *host, const char *port,
		 int timeout_ms, struct result *r)
{
	return conn_open(out, host, port, NULL, timeout_ms, r);
}

const char *conn_path(const struct conn *c)
{
	return c->path;
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
