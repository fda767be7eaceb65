/* fuzz_socks.c - the SOCKS5 reply parsers (socks.h) on proxy bytes.
 *
 * The input is what a proxy sends.  socks_reply_parse is fed the input the
 * way socks_handshake reads it: first 5 bytes, then exactly as many more as
 * it asks for, never more; the contract checked is that the length it asks
 * for only grows, that a complete reply never claims more than it was given,
 * and that BND.ADDR comes out as printable text.  The 2-byte method and
 * RFC 1929 replies go through their parsers too. */
#include "config.h"
#include "fuzz.h"
#include "socks.h"

#include <stdint.h>
#include <string.h>

static void check_printable(const char *s)
{
	for (; *s; s++)
		CHECK((unsigned char)*s >= 0x20 && (unsigned char)*s != 0x7f);
}

/* Feed the reply as the handshake does: have grows to what is asked. */
static void feed_like_handshake(const uint8_t *data, size_t size)
{
	struct socks_reply rep;
	size_t have = 0, want = 5, last = 0;
	int rc;

	while ((rc = socks_reply_parse(data, have, &want, &rep)) == 1) {
		CHECK(want > have && want >= last && want <= 4 + 1 + 255 + 2);
		last = want;
		if (want > size)
			return;            /* the proxy would have to send more */
		have = want;
	}
	if (rc == 0) {
		CHECK(want <= have);
		CHECK(rep.rep >= 0 && rep.rep <= 255);
		check_printable(rep.bound);
		CHECK(socks_rep_text(rep.rep) != NULL);
		CHECK(rep.rep == 0 ? socks_rep_exit(rep.rep) == 0 :
		      socks_rep_exit(rep.rep) != 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks_reply rep;
	size_t used = 0;
	int rc;

	feed_like_handshake(data, size);
	/* all at once, as if the proxy's bytes and the relay's came together */
	rc = socks_reply_parse(data, size, &used, &rep);
	CHECK(rc >= -1 && rc <= 1);
	if (rc == 0)
		CHECK(used <= size);
	if (rc == 1)
		CHECK(used > size);
	if (size >= 2) {
		int m = socks_method(data, 2), a = socks_auth_status(data, 2);
		CHECK(m == -1 || m == 0 || m == 2 || m == SOCKS_NO_METHOD);
		CHECK(a >= -1 && a <= 1);
	}
	return 0;
}
