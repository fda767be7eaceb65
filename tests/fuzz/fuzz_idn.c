/* fuzz_idn.c - idn_envelope_address: the last change an address undergoes
 * before MAIL FROM / RCPT TO (issue 13: UTS #46 mapped fullwidth '>' and
 * friends into "RCPT TO:<b@x> NOTIFY=...>").
 *
 * Oracles (idn.h):
 *  - an accepted result passes addr_valid_mailbox and is not empty unless
 *    the input was;
 *  - its domain holds none of " <>=,;\r\n" (nor NUL: it is a C string of
 *    its length), and neither does an unquoted local part, except '='
 *    (VERP and SRS addresses, "bounce+u=example.org@..."), which inside
 *    the angle brackets is only a character;
 *  - the input was a valid mailbox (nothing invalid is let through);
 *  - a domain that was converted is ASCII, and converting the result again
 *    gives the same result (A-labels are a fixed point);
 *  - idn_valid_envelope agrees. */
#include "config.h"
#include "fuzz.h"
#include "address.h"
#include "idn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int has_any(const char *s, const char *set)
{
	return strpbrk(s, set) != NULL;
}

static int ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1), *out, *again;
	const char *dom;

	CHECK(in);
	memcpy(in, data, size);
	in[size] = '\0';   /* an embedded NUL ends the address, as in argv */
	out = idn_envelope_address(in);
	CHECK(idn_valid_envelope(in) == (out != NULL));
	if (out) {
		CHECK(addr_valid_mailbox(in));
		CHECK(addr_valid_mailbox(out));
		CHECK(*out || !*in);
		dom = addr_domain(out);
		CHECK(!dom || !has_any(dom, " <>=,;\r\n"));
		if (out[0] != '"')
			CHECK(!has_any(out, " <>,;\r\n"));
		if (dom && ascii(dom) && strcmp(out, in) != 0) {
			again = idn_envelope_address(out);
			CHECK(again && strcmp(again, out) == 0);
			free(again);
		}
	}
	free(out);
	free(in);
	return 0;
}
