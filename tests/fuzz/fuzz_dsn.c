/* fuzz_dsn.c - the delivery status notice builder (src/dsn.c) over any
 * header block.
 *
 * The quoted headers are the only part of a notice pushmail does not write
 * itself, and they come from whoever submitted the message.  Oracles:
 *   - dsn_build never fails on them (the notice must go out);
 *   - the notice has CRLF line ends only and no NUL byte;
 *   - the boundary occurs in the notice exactly where the notice puts it:
 *     "--B" three times as a delimiter line, "--B--" once, nowhere else
 *     (a header line cannot end the report part or forge one);
 *   - nothing after the first empty line of the input (the body) is quoted,
 *     and the quoted block is bounded by DSN_HEAD_MAX. */
#include "config.h"
#include "dsn.h"
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t count(const char *hay, size_t n, const char *needle)
{
	size_t k = 0, m = strlen(needle);
	const char *p = hay, *end = hay + n;

	while ((p = memmem(p, (size_t)(end - p), needle, m))) {
		k++;
		p += m;
	}
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *rcpt[] = { "a@example.org" };
	struct qenv e = { .id = "20261206T141808.123456.4242.9f3c", .account = "w",
			  .from = "s@example.com", .rcpt = rcpt, .nrcpt = 1 };
	struct dsn_report rep = { .action = DSN_FAILED, .to = "s@example.com",
				  .mta = "client.example", .domain = "example.com",
				  .status = "5.1.1", .code = 550, .diagnostic = "no",
				  .why = "refused", .now = 1765000000 };
	char *out, line[128], marker[] = "\r\n\r\nMARKER-BODY";
	size_t n;
	const char *b;

	CHECK(dsn_build(&e, &rep, (const char *)data, size, &out, &n) == 0);
	CHECK(strlen(out) == n);
	for (size_t i = 0; i < n; i++)
		CHECK((out[i] != '\n' || (i && out[i - 1] == '\r')) &&
		      (out[i] != '\r' || (i + 1 < n && out[i + 1] == '\n')));
	b = strstr(out, "boundary=\"");
	CHECK(b != NULL);
	b += 10;
	snprintf(line, sizeof line, "--%.*s", (int)strcspn(b, "\""), b);
	CHECK(count(out, n, line) == 4);
	strcat(line, "--");
	CHECK(count(out, n, line) == 1);
	CHECK(n < DSN_HEAD_MAX + 8192);
	free(out);

	/* what follows an empty line is body, never quoted */
	if (size < 2048 && !memchr(data, '\n', size) && !memchr(data, '\r', size) &&
	    !memmem(data, size, "MARKER-BODY", 11)) {
		char *in = malloc(size + sizeof marker);
		if (!in)
			return 0;
		memcpy(in, data, size);
		memcpy(in + size, marker, sizeof marker);
		CHECK(dsn_build(&e, &rep, in, size + sizeof marker - 1, &out, &n) == 0);
		CHECK(!strstr(out, "MARKER-BODY"));
		free(out);
		free(in);
	}
	return 0;
}
