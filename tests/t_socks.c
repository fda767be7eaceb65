/* t_socks.c - SOCKS5 request builders and reply parsers (RFC 1928, 1929). */
#include "config.h"
#include "socks.h"
#include "tap.h"

#include <string.h>

#define B(...) (const unsigned char[]){ __VA_ARGS__ }
/* is_mem on bytes */
#define is_bytes(got, n, want, wn, ...) \
	is_mem((const char *)(got), n, (const char *)(want), wn, __VA_ARGS__)

/* CONNECT replies: bytes, parse status, bytes needed/used, REP, BND text. */
static const struct {
	const char *name;
	const unsigned char *in;
	size_t n;
	int status;
	size_t used;
	int rep;
	const char *bound;
} replies[] = {
	{ "IPv4 success", B(5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38), 10, 0, 10, 0,
	  "127.0.0.1:1080" },
	{ "IPv6 success", B(5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
			    0, 25), 22, 0, 22, 0, "::1:25" },
	{ "name bound", B(5, 0, 0, 3, 4, 'p', 'r', 'o', 'x', 0, 80), 11, 0, 11, 0,
	  "prox:80" },
	{ "name with control bytes is sanitised", B(5, 0, 0, 3, 2, 1, 'x', 0, 1), 9, 0,
	  9, 0, "\\x01x:1" },
	{ "refused", B(5, 5, 0, 1, 0, 0, 0, 0, 0, 0), 10, 0, 10, 5, "0.0.0.0:0" },
	{ "trailing relay bytes are not the reply's", B(5, 0, 0, 1, 1, 2, 3, 4, 0, 1, '2',
							'2', '0'), 13, 0, 10, 0, "1.2.3.4:1" },
	{ "empty", B(0), 0, 1, 5, 0, "" },
	{ "short header", B(5, 0, 0), 3, 1, 5, 0, "" },
	{ "IPv4 cut", B(5, 0, 0, 1, 127, 0), 6, 1, 10, 0, "" },
	{ "name cut", B(5, 0, 0, 3, 10, 'a'), 6, 1, 17, 0, "" },
	{ "IPv6 cut", B(5, 0, 0, 4, 0, 0), 6, 1, 22, 0, "" },
	{ "SOCKS4 reply", B(0, 90, 0, 0, 0, 0, 0, 0), 8, -1, 0, 0, "" },
	{ "HTTP proxy", B('H', 'T', 'T', 'P', '/'), 5, -1, 0, 0, "" },
	{ "version 4 first byte", B(4), 1, -1, 0, 0, "" },
	{ "reserved byte set", B(5, 0, 1, 1, 0, 0, 0, 0, 0, 0), 10, -1, 0, 0, "" },
	{ "unknown address type", B(5, 0, 0, 2, 0, 0, 0, 0, 0, 0), 10, -1, 0, 0, "" },
	{ "empty name", B(5, 0, 0, 3, 0, 0, 0), 7, -1, 0, 0, "" },
};

static void test_replies(void)
{
	for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
		struct socks_reply rep = { .rep = -1 };
		size_t used = 0;
		int st = socks_reply_parse(replies[i].in, replies[i].n, &used, &rep);

		is_int(st, replies[i].status, "reply %s: status", replies[i].name);
		if (st >= 0)
			is_int(used, replies[i].used, "reply %s: length", replies[i].name);
		if (st == 0) {
			is_int(rep.rep, replies[i].rep, "reply %s: REP", replies[i].name);
			is_str(rep.bound, replies[i].bound, "reply %s: BND", replies[i].name);
		}
	}
}

static void test_requests(void)
{
	unsigned char b[SOCKS_MSG_MAX];
	char big[300];
	int n;

	is_int(socks_hello(b, 0), 3, "hello without auth: 3 bytes");
	is_bytes(b, 3, B(5, 1, 0), 3, "hello without auth offers method 0 only");
	is_int(socks_hello(b, 1), 4, "hello with auth: 4 bytes");
	is_bytes(b, 4, B(5, 2, 0, 2), 4, "hello with auth offers 0 and 2");
	is_int(socks_method(B(5, 0), 2), 0, "method none");
	is_int(socks_method(B(5, 2), 2), 2, "method username/password");
	is_int(socks_method(B(5, 0xFF), 2), SOCKS_NO_METHOD, "no acceptable method");
	is_int(socks_method(B(5, 1), 2), -1, "GSSAPI was not offered");
	is_int(socks_method(B(4, 0), 2), -1, "not SOCKS5");

	n = socks_connect_request(b, "192.0.2.1", 587);
	is_bytes(b, (size_t)n, B(5, 1, 0, 1, 192, 0, 2, 1, 2, 0x4B), 10, "CONNECT IPv4");
	n = socks_connect_request(b, "::1", 25);
	is_int(n, 22, "CONNECT IPv6: 22 bytes");
	is_int(b[3], 4, "CONNECT IPv6: ATYP 4");
	n = socks_connect_request(b, "mx.example", 465);
	is_bytes(b, (size_t)n, B(5, 1, 0, 3, 10, 'm', 'x', '.', 'e', 'x', 'a', 'm', 'p', 'l',
			       'e', 1, 0xD1), 17, "CONNECT name (socks5h)");
	memset(big, 'a', 256);
	big[256] = '\0';
	is_int(socks_connect_request(b, big, 25), -1, "name of 256 bytes refused");
	is_int(socks_connect_request(b, "x", 0), -1, "port 0 refused");

	n = socks_auth_request(b, "usr", "pw");
	is_bytes(b, (size_t)n, B(1, 3, 'u', 's', 'r', 2, 'p', 'w'), 8, "RFC 1929 request");
	is_int(socks_auth_request(b, "", "pw"), -1, "empty user refused");
	is_int(socks_auth_request(b, "u", big), -1, "password of 256 bytes refused");
	is_int(socks_auth_status(B(1, 0), 2), 0, "auth accepted");
	is_int(socks_auth_status(B(1, 1), 2), 1, "auth refused");
	is_int(socks_auth_status(B(3, 0), 2), -1, "auth reply of another version");
}

static void test_exit_codes(void)
{
	static const int want[] = { 0, 75, 77, 75, 75, 75, 75, 76, 76, 76 };

	for (int rep = 0; rep < 10; rep++)
		is_int(socks_rep_exit(rep), want[rep], "REP %d (%s) exits %d", rep,
		       socks_rep_text(rep), want[rep]);
}

int main(void)
{
	test_replies();
	test_requests();
	test_exit_codes();
	return tap_done();
}
