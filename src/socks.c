/* socks.c - SOCKS5 client (see socks.h).
 *
 * RFC 1928: method negotiation, then CONNECT; RFC 1929: the
 * username/password sub-negotiation.  Every reply is parsed by a pure
 * function from the bytes read so far; the I/O loop only reads exactly as
 * many bytes as the parser says it needs, so nothing of the relay's greeting
 * is swallowed with the proxy's reply.
 */
#include "config.h"
#include "socks.h"
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { VER = 5, M_NONE = 0, M_USERPASS = 2, CMD_CONNECT = 1,
       ATYP_V4 = 1, ATYP_NAME = 3, ATYP_V6 = 4 };

size_t socks_hello(unsigned char *out, int with_auth)
{
	out[0] = VER;
	out[1] = with_auth ? 2 : 1;
	out[2] = M_NONE;
	out[3] = M_USERPASS;
	return with_auth ? 4 : 3;
}

int socks_method(const unsigned char *in, size_t n)
{
	if (n != 2 || in[0] != VER)
		return -1;
	if (in[1] == M_NONE || in[1] == M_USERPASS || in[1] == SOCKS_NO_METHOD)
		return in[1];
	return -1;   /* a method we did not offer */
}

int socks_auth_request(unsigned char *out, const char *user, const char *pass)
{
	size_t ul = strlen(user), pl = strlen(pass);

	if (ul == 0 || ul > 255 || pl == 0 || pl > 255)
		return -1;
	out[0] = 1;   /* RFC 1929 sub-negotiation version */
	out[1] = (unsigned char)ul;
	memcpy(out + 2, user, ul);
	out[2 + ul] = (unsigned char)pl;
	memcpy(out + 3 + ul, pass, pl);
	return (int)(3 + ul + pl);
}

int socks_auth_status(const unsigned char *in, size_t n)
{
	/* RFC 1929 says VER 1; some proxies answer 5 here, which costs
	 * nothing to accept. */
	if (n != 2 || (in[0] != 1 && in[0] != VER))
		return -1;
	return in[1] == 0 ? 0 : 1;
}

int socks_connect_request(unsigned char *out, const char *host, unsigned port)
{
	size_t n = 4, hl = strlen(host);

	if (port == 0 || port > 65535 || hl == 0)
		return -1;
	out[0] = VER;
	out[1] = CMD_CONNECT;
	out[2] = 0;
	if (inet_pton(AF_INET, host, out + 4) == 1) {
		out[3] = ATYP_V4;
		n += 4;
	} else if (inet_pton(AF_INET6, host, out + 4) == 1) {
		out[3] = ATYP_V6;
		n += 16;
	} else {
		if (hl > 255)
			return -1;
		out[3] = ATYP_NAME;
		out[4] = (unsigned char)hl;
		memcpy(out + 5, host, hl);
		n += 1 + hl;
	}
	out[n++] = (unsigned char)(port >> 8);
	out[n++] = (unsigned char)port;
	return (int)n;
}

/* BND.ADDR as printable text (a name is sanitised: it comes from the proxy). */
static void bound_text(const unsigned char *in, size_t alen, int atyp,
		       unsigned port, struct socks_reply *out)
{
	char a[256];

	if (atyp == ATYP_V4)
		inet_ntop(AF_INET, in, a, sizeof a);
	else if (atyp == ATYP_V6)
		inet_ntop(AF_INET6, in, a, sizeof a);
	else
		result_sanitise(a, sizeof a, (const char *)in, alen);
	snprintf(out->bound, sizeof out->bound, "%s:%u", a, port);
}

int socks_reply_parse(const unsigned char *in, size_t n, size_t *used,
		      struct socks_reply *out)
{
	size_t alen, need;

	if (n < 5) {
		*used = 5;   /* up to the first byte of BND.ADDR (a name's length) */
		return n >= 1 && in[0] != VER ? -1 : 1;
	}
	if (in[0] != VER || in[2] != 0)
		return -1;
	switch (in[3]) {
	case ATYP_V4:
		alen = 4;
		break;
	case ATYP_V6:
		alen = 16;
		break;
	case ATYP_NAME:
		alen = in[4];
		if (alen == 0)
			return -1;
		break;
	default:
		return -1;
	}
	need = 4 + (in[3] == ATYP_NAME) + alen + 2;
	if (n < need) {
		*used = need;
		return 1;
	}
	*used = need;
	out->rep = in[1];
	bound_text(in + 4 + (in[3] == ATYP_NAME), alen, in[3],
		   (unsigned)in[need - 2] << 8 | in[need - 1], out);
	return 0;
}

static const char *const rep_texts[] = {
	"succeeded", "general SOCKS server failure",
	"connection not allowed by ruleset", "network unreachable",
	"host unreachable", "connection refused", "TTL expired",
	"command not supported", "address type not supported",
};

const char *socks_rep_text(int rep)
{
	if (rep >= 0 && rep < (int)(sizeof rep_texts / sizeof rep_texts[0]))
		return rep_texts[rep];
	return "unknown reply code";
}

int socks_rep_exit(int rep)
{
	switch (rep) {
	case 0:
		return EX_OK;
	case 1: case 3: case 4: case 5: case 6:
		return EX_TEMPFAIL;
	case 2:
		return EX_NOPERM;
	default:
		return EX_PROTOCOL;   /* 7, 8: we only send CONNECT with valid types */
	}
}

/* ---- the exchange ------------------------------------------------------- */

static int io_fail(const struct socks_params *sp, int timed_out, struct result *r)
{
	r->phase = PHASE_CONNECT;
	if (timed_out)
		return result_fail(r, EX_TEMPFAIL, "SOCKS5 proxy %s did not answer in "
				   "time", sp->proxy);
	return result_fail(r, EX_TEMPFAIL, "SOCKS5 proxy %s: connection lost: %s",
			   sp->proxy, errno ? strerror(errno) : "closed by the proxy");
}

static int send_all(int fd, const unsigned char *p, size_t n, long long deadline,
		    const struct socks_params *sp, struct result *r)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			int ok = conn_wait_fd(fd, 1, deadline);
			if (ok > 0)
				continue;
			return io_fail(sp, ok == 0, r);
		}
		return io_fail(sp, 0, r);
	}
	return 0;
}

/* Read until `have` reaches `want` bytes (never beyond: what follows the
 * reply is the relay's, read later by the session). */
static int recv_to(int fd, unsigned char *buf, size_t *have, size_t want,
		   long long deadline, const struct socks_params *sp, struct result *r)
{
	while (*have < want) {
		ssize_t n = recv(fd, buf + *have, want - *have, 0);
		if (n > 0) {
			*have += (size_t)n;
			continue;
		}
		if (n == 0) {
			errno = 0;
			return io_fail(sp, 0, r);
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			int ok = conn_wait_fd(fd, 0, deadline);
			if (ok > 0)
				continue;
			return io_fail(sp, ok == 0, r);
		}
		return io_fail(sp, 0, r);
	}
	return 0;
}

static int bad_reply(const struct socks_params *sp, const char *what, struct result *r)
{
	r->phase = PHASE_CONNECT;
	return result_fail(r, EX_PROTOCOL, "%s is not a SOCKS5 proxy: malformed "
			   "reply to %s", sp->proxy, what);
}

static int negotiate(int fd, const struct socks_params *sp, long long deadline,
		     struct result *r)
{
	unsigned char buf[SOCKS_MSG_MAX];
	size_t have = 0;
	int with_auth = sp->user != NULL, m, n;

	if (send_all(fd, buf, socks_hello(buf, with_auth), deadline, sp, r) < 0 ||
	    recv_to(fd, buf, &have, 2, deadline, sp, r) < 0)
		return -1;
	m = socks_method(buf, 2);
	if (m < 0 || (m == M_USERPASS && !with_auth))
		return bad_reply(sp, "the method offer", r);
	r->phase = PHASE_CONNECT;
	if (m == SOCKS_NO_METHOD)
		return result_fail(r, EX_NOPERM, "SOCKS5 proxy %s accepts none of the "
				   "offered methods (%s)", sp->proxy, with_auth ?
				   "none, username/password" : "none; set proxy_user "
				   "and a proxy password if it needs authentication");
	if (m == M_NONE)
		return 0;
	n = socks_auth_request(buf, sp->user, sp->pass ? sp->pass : "");
	if (n < 0)
		return result_fail(r, EX_CONFIG, "proxy_user and the proxy password "
				   "must be 1 to 255 bytes (RFC 1929)");
	have = 0;
	m = send_all(fd, buf, (size_t)n, deadline, sp, r) < 0 ||
	    recv_to(fd, buf, &have, 2, deadline, sp, r) < 0 ? -2 :
	    socks_auth_status(buf, 2);
	explicit_bzero(buf, sizeof buf);
	if (m == -2)
		return -1;
	if (m < 0)
		return bad_reply(sp, "the username/password", r);
	if (m == 1)
		return result_fail(r, EX_NOPERM, "SOCKS5 proxy %s refused the username "
				   "'%s' and its password", sp->proxy, sp->user);
	return 0;
}

int socks_handshake(int fd, struct socks_params *sp, long long deadline,
		    struct result *r)
{
	unsigned char buf[SOCKS_MSG_MAX];
	struct socks_reply rep;
	size_t have = 0, want = 5;
	int n, rc;

	sp->rep = -1;
	if (negotiate(fd, sp, deadline, r) < 0)
		return -1;
	n = socks_connect_request(buf, sp->host, sp->port);
	if (n < 0) {
		r->phase = PHASE_CONNECT;
		return result_fail(r, EX_CONFIG, "host name too long for SOCKS5");
	}
	if (send_all(fd, buf, (size_t)n, deadline, sp, r) < 0)
		return -1;
	while ((rc = socks_reply_parse(buf, have, &want, &rep)) == 1)
		if (recv_to(fd, buf, &have, want, deadline, sp, r) < 0)
			return -1;
	if (rc < 0)
		return bad_reply(sp, "CONNECT", r);
	sp->rep = rep.rep;
	if (rep.rep == 0)
		return 0;
	r->phase = PHASE_CONNECT;
	return result_fail(r, socks_rep_exit(rep.rep), "SOCKS5 proxy %s could not "
			   "reach %s port %u: %s (reply %d)", sp->proxy, sp->host,
			   sp->port, socks_rep_text(rep.rep), rep.rep);
}
