/* conn.h - the transport: sockets, deadlines, buffered reader and writer.
 *
 * The session code talks to a struct conn and never learns whether TLS is on:
 * reads and writes go through a small ops table (plain socket today, GnuTLS
 * once STARTTLS/implicit TLS land), and that table is the only place where
 * plain and TLS differ.  Every wait is bounded by a deadline (poll on a
 * non-blocking descriptor).  Output is buffered: nothing is written until the
 * buffer fills or conn_flush is called, so a pipelined group of commands or a
 * body block goes out in one large write.
 */
#ifndef PUSHMAIL_CONN_H
#define PUSHMAIL_CONN_H

#include <stddef.h>
#include <sys/types.h>
#include "result.h"

#define CONN_WBUF (256 * 1024)   /* write buffer: body blocks go out this large */
#define CONN_RBUF (16 * 1024)

struct conn;

/* Low-level byte mover under a conn.  read/write return bytes moved, 0 on EOF
 * (read), or -1 with errno (EAGAIN means "wait for want_read/want_write"). */
struct conn_ops {
	ssize_t (*read)(void *ctx, void *buf, size_t len);
	ssize_t (*write)(void *ctx, const void *buf, size_t len);
	int (*direction)(void *ctx);    /* after EAGAIN: 1 wait to write, 0 to read,
					 * NULL: the obvious one (TLS may differ) */
	size_t (*pending)(void *ctx);   /* bytes decoded but not yet read, or NULL */
	void (*close)(void *ctx);       /* say goodbye and free ctx; may be NULL */
};

/* getaddrinfo(3) bounded by timeout_ms (through getaddrinfo_a(3)).  Returns
 * its result: 0 with *res to freeaddrinfo, or an EAI_ code; EAI_AGAIN with
 * *timed_out set when the resolver did not answer in time. */
struct addrinfo;
int conn_resolve(const char *host, const char *port, const struct addrinfo *hints,
		 struct addrinfo **res, int timeout_ms, int *timed_out);

/* Connect to every address getaddrinfo gives for host:port, in order, within
 * one overall deadline of timeout_ms that the lookup counts against too (not
 * one timeout per address).  Failures:
 * EX_NOHOST (name does not resolve), EX_TEMPFAIL (EAI_AGAIN, refused,
 * unreachable, timeout).  *out is owned by the caller (conn_close). */
int conn_connect(struct conn **out, const char *host, const char *port,
		 int timeout_ms, struct result *r);

/* How to reach the relay (issue 16).  A zeroed struct (or NULL) is the
 * direct path: every address of the name, either family. */
struct conn_route {
	const char *source;      /* numeric local address bound before connecting */
	int family;              /* 0 any, 4 or 6: which addresses are tried */
	const char *proxy;       /* "socks5://host:port" (pushmail resolves the
				  * relay's name) or "socks5h://host:port" (the
				  * proxy does), or NULL */
	const char *proxy_user, *proxy_pass;  /* RFC 1929, or NULL */
};

/* conn_connect along route rt.  A host that is an absolute path is a
 * unix-domain socket (port and route unused).  The addresses of a name are
 * tried with Happy Eyeballs (RFC 8305): the next attempt starts
 * CONN_HE_DELAY_MS after the previous one unless that one has connected,
 * attempts already started go on, the first to connect wins; one overall
 * deadline for lookup, attempts and the SOCKS5 exchange.  Besides
 * conn_connect's failures: EX_CONFIG (bad proxy, source address that cannot
 * be bound), socks_handshake's (socks.h). */
#define CONN_HE_DELAY_MS 250
int conn_open(struct conn **out, const char *host, const char *port,
	      const struct conn_route *rt, int timeout_ms, struct result *r);

/* The path the connection took, for --serverinfo and -v: "127.0.0.1 port
 * 25 (IPv4) from 127.0.0.2", "unix socket /run/lmtp", "... through SOCKS5
 * proxy ...".  "" for conn_from_fd connections.  Valid until conn_close. */
const char *conn_path(const struct conn *c);

/* Wrap an already-connected descriptor (tests, fuzzing, -bs).  Takes ownership. */
struct conn *conn_from_fd(int fd);

/* Replace the byte mover (used by TLS after the handshake). ctx is owned by ops. */
void conn_set_ops(struct conn *c, const struct conn_ops *ops, void *ctx);
int conn_fd(const struct conn *c);

/* Queue bytes for writing; writes out only when the buffer is full.  Returns 0
 * or -1 (r filled: EX_TEMPFAIL on a broken connection or timeout). */
int conn_write(struct conn *c, const void *buf, size_t len, int timeout_ms,
	       struct result *r);

/* Space left in the write buffer and a pointer to it, so the body filter can
 * produce its output in place (no copy); conn_commit(c, n) then accounts n. */
char *conn_wspace(struct conn *c, size_t *room);
void conn_commit(struct conn *c, size_t n);
/* Zero the unused part of the write buffer: what was flushed from it (the
 * AUTH lines, which carry the password or a password equivalent). */
void conn_wipe_output(struct conn *c);

/* Write everything buffered, waiting at most timeout_ms. */
int conn_flush(struct conn *c, int timeout_ms, struct result *r);

/* Read one line (up to LF; the CR before it and the LF are stripped) into buf
 * of cap bytes.  A line longer than cap-1 bytes is EX_PROTOCOL (the rest is
 * not read into memory).  EOF or timeout is EX_TEMPFAIL.  *len gets the line's
 * length; buf is NUL-terminated (the line itself may contain NULs). */
int conn_getline(struct conn *c, char *buf, size_t cap, size_t *len,
		 int timeout_ms, struct result *r);

/* Bytes already received but not yet consumed (the STARTTLS injection check). */
size_t conn_unread(const struct conn *c);

/* 1 when anything from the peer is waiting: in our buffer, in the TLS
 * layer, or (plain connections) on the socket, checked without waiting. */
int conn_pending(struct conn *c);

/* Totals for transcripts and benchmarks. */
unsigned long long conn_bytes_out(const struct conn *c);

void conn_close(struct conn *c);

/* Monotonic milliseconds, and a bounded wait for fd (POLLIN or POLLOUT) until
 * the monotonic `deadline`: 1 ready, 0 timed out, -1 error.  Shared with the
 * TLS handshake so every wait in pushmail has the same shape. */
long long conn_now_ms(void);
int conn_wait_fd(int fd, int for_write, long long deadline);

#endif
