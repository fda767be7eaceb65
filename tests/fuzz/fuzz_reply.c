/* fuzz_reply.c - reply_feed, reply_parse_enh and caps_parse on server bytes.
 *
 * The input is what a server sends: lines split on LF (a CR before it is
 * dropped, as conn_getline does).  Every complete reply is checked against
 * the contract in reply.h and, when it is a 2xx, run through caps_parse as
 * if it answered EHLO. */
#include "config.h"
#include "fuzz.h"
#include "reply.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "c.s.d": class = first digit of the code, 1-3 digits after each dot. */
static void check_enh(const char *enh, int code)
{
	size_t n = strlen(enh), i = 2, parts;

	CHECK(n < 16);
	if (n == 0)
		return;
	CHECK(enh[0] == '0' + code / 100 && enh[1] == '.');
	for (parts = 0; parts < 2; parts++) {
		size_t d = 0;

		while (i < n && digit(enh[i]))
			i++, d++;
		CHECK(d >= 1 && d <= 3);
		if (parts == 0)
			CHECK(enh[i++] == '.');
	}
	CHECK(i == n);
}

static void check_caps(const struct reply *rp)
{
	struct caps c;
	size_t n;

	caps_parse(&c, rp);
	n = strnlen(c.auth, sizeof c.auth);
	CHECK(n < sizeof c.auth);
	/* words of upper case, single spaces, none at either end */
	CHECK(n == 0 || (c.auth[0] != ' ' && c.auth[n - 1] != ' '));
	CHECK(!strstr(c.auth, "  "));
	/* printable: the list is quoted in error messages (SPEC 7) */
	for (size_t i = 0; i < n; i++)
		CHECK(!(c.auth[i] >= 'a' && c.auth[i] <= 'z') &&
		      c.auth[i] >= ' ' && c.auth[i] < 0x7f);
	CHECK(!c.size_max || (c.flags & CAP_SIZE));
	CHECK(!n || (c.flags & CAP_AUTH));
}

static void check_done(const struct reply *rp)
{
	CHECK(rp->code >= 200 && rp->code <= 599);
	CHECK(rp->nlines >= 1 && rp->nlines <= REPLY_LINES_MAX);
	CHECK(rp->textlen < sizeof rp->text && rp->text[rp->textlen] == '\0');
	check_enh(rp->enh, rp->code);
	if (rp->code / 100 == 2)
		check_caps(rp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct reply rp;   /* 16 KiB: not on the stack per call */
	const char *p = (const char *)data, *end = p + size, *why;
	char enh[16];

	reply_init(&rp);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);

		if (len && p[len - 1] == '\r')
			len--;
		/* exact-size copy: a read past the line is an ASan report */
		char *line = malloc(len ? len : 1);
		CHECK(line);
		memcpy(line, p, len);
		why = NULL;
		switch (reply_feed(&rp, line, len, &why)) {
		case REPLY_MORE:
			CHECK(rp.nlines < REPLY_LINES_MAX + 1);
			break;
		case REPLY_DONE:
			check_done(&rp);
			reply_init(&rp);
			break;
		case REPLY_BAD:
			CHECK(why && *why);
			reply_init(&rp);
			break;
		default:
			abort();
		}
		if (len >= 3) {
			int code = (line[0] - '0') * 100 + 50;
			size_t n = reply_parse_enh(line + 3, len - 3, code, enh);
			CHECK(n <= len - 3);
			if (n) {
				check_enh(enh, code);
				CHECK(memcmp(enh, line + 3, strlen(enh)) == 0);
			}
		}
		free(line);
		p = nl ? nl + 1 : end;
	}
	return 0;
}
