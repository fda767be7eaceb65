/* socks.h - SOCKS5 client (RFC 1928) with username/password authentication
 * (RFC 1929), for reaching a relay through a proxy.
 *
 * The byte-level part is pure (builders fill a caller's buffer, parsers take
 * the bytes received so far) so that unit tests and the fuzzer can drive it
 * without a network; socks_handshake() runs it over a connected,
 * non-blocking socket under the caller's deadline.  After a successful
 * handshake the socket is a plain byte pipe to the relay: TLS then runs end
 * to end through it, verified against the relay's name.
 */
#ifndef PUSHMAIL_SOCKS_H
#define PUSHMAIL_SOCKS_H

#include <stddef.h>
#include "result.h"

#define SOCKS_MSG_MAX 515   /* the longest message either way (RFC 1929 request) */

/* Method negotiation: "VER NMETHODS METHODS".  With auth, offer
 * username/password (2) as well as none (0). */
size_t socks_hello(unsigned char *out, int with_auth);
/* The method the proxy chose: 0 or 2, SOCKS_NO_METHOD (0xFF, nothing we
 * offered), or -1 when the 2 bytes are not a SOCKS5 method reply. */
enum { SOCKS_NO_METHOD = 0xFF };
int socks_method(const unsigned char *in, size_t n);

/* RFC 1929 request; -1 when user or password is empty or over 255 bytes. */
int socks_auth_request(unsigned char *out, const char *user, const char *pass);
/* 0 accepted, 1 refused, -1 not a RFC 1929 reply (2 bytes). */
int socks_auth_status(const unsigned char *in, size_t n);

/* CONNECT request.  host is an IPv4/IPv6 literal (ATYP 1/4) or, when the
 * proxy resolves names (socks5h), a domain name of 1..255 bytes (ATYP 3).
 * Returns the length, or -1 (bad port, name too long). */
int socks_connect_request(unsigned char *out, const char *host, unsigned port);

/* The CONNECT reply: VER REP RSV ATYP BND.ADDR BND.PORT. */
struct socks_reply {
	int rep;                 /* REP: 0 succeeded, 1..8 RFC 1928 failures */
	char bound[262];         /* BND.ADDR as text, BND.PORT after ':' */
};
/* Parse the first n bytes received.  Returns 0 when complete (*used bytes
 * belong to the reply), 1 when more is needed (*used: the total length
 * needed so far, always > n), -1 when malformed. */
int socks_reply_parse(const unsigned char *in, size_t n, size_t *used,
		      struct socks_reply *out);

/* What a REP code means, and its exit status: 75 for failures retrying may
 * cure (general failure, unreachable, refused, TTL expired), 77 for "not
 * allowed by ruleset", 76 for codes a proxy should not send to CONNECT. */
const char *socks_rep_text(int rep);
int socks_rep_exit(int rep);

struct socks_params {
	const char *proxy;       /* "host:port" for messages */
	const char *host;        /* the relay as the proxy should reach it */
	unsigned port;
	const char *user, *pass; /* RFC 1929 credentials, or NULL */
	int rep;                 /* out: the CONNECT reply's REP, -1 when none came */
};

/* Run the exchange on fd (connected to the proxy) until deadline (conn.h's
 * monotonic ms).  0, or -1 with r filled: 77 authentication refused or
 * required, 76 a reply that is not SOCKS5, a REP code as socks_rep_exit, 75
 * a proxy that hangs up or does not answer in time. */
int socks_handshake(int fd, struct socks_params *sp, long long deadline,
		    struct result *r);

#endif
