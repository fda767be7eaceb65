/* fuzz_oauth2.c - what a token endpoint sends back (issue 18): the token
 * and device authorization answers and the token cache file's text.
 *
 * The first byte picks the parser and (for the endpoints) the HTTP status;
 * the rest is the body.  Oracles (oauth2.h, tokens.h):
 *  - O2_OK comes with an access token that is printable ASCII without
 *    spaces (no ^A for the SASL message, no CR/LF), 1..8192 bytes, and a
 *    refresh token, when there is one, of the same kind; every other
 *    verdict leaves no token behind;
 *  - the reason is a printable C string (server text sanitised);
 *  - a parsed device answer has an https verification URI and a printable
 *    user code, and a bounded interval and expiry;
 *  - a decoded cache file re-encodes and decodes to the same tokens. */
#include "config.h"
#include "fuzz.h"
#include "oauth2.h"
#include "tokens.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int token_like(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 8192)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void fuzz_token(const char *body, size_t len, long status)
{
	struct oauth2_tokens t;
	char why[400];
	enum oauth2_verdict v = oauth2_parse_token(body, len, status, 1000, &t, why,
						   sizeof why);

	CHECK(printable(why));
	if (v == O2_OK) {
		CHECK(token_like(t.access_token));
		CHECK(!t.refresh_token || token_like(t.refresh_token));
		CHECK(t.expires_at > 1000);
	} else {
		CHECK(!t.access_token && !t.refresh_token);
	}
	oauth2_tokens_free(&t);
}

static void fuzz_device(const char *body, size_t len, long status)
{
	struct oauth2_device d;
	char why[400];

	if (oauth2_parse_device(body, len, status, &d, why, sizeof why) == 0) {
		CHECK(strncasecmp(d.verification_uri, "https://", 8) == 0);
		CHECK(token_like(d.user_code) && token_like(d.verification_uri));
		CHECK(token_like(d.device_code));
		CHECK(d.interval >= 1 && d.interval <= 60);
		CHECK(d.expires_in >= 1 && d.expires_in <= 3600);
	} else {
		CHECK(!d.device_code && printable(why) && why[0]);
	}
	oauth2_device_free(&d);
}

static void fuzz_cache(const char *text, size_t len)
{
	struct oauth2_tokens t, back;
	char *again;

	if (tokens_decode(text, len, "https://t.example/token", "cid", &t) != 1)
		return;
	CHECK(t.refresh_token);
	again = tokens_encode("https://t.example/token", "cid", &t);
	CHECK(again);
	CHECK(tokens_decode(again, strlen(again), "https://t.example/token", "cid",
			    &back) == 1);
	CHECK(strcmp(back.refresh_token, t.refresh_token) == 0);
	CHECK(!t.access_token == !back.access_token);
	CHECK(!t.access_token || (strcmp(back.access_token, t.access_token) == 0 &&
				  back.expires_at == t.expires_at));
	oauth2_tokens_free(&back);
	oauth2_tokens_free(&t);
	oauth2_form_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 200, 400, 401, 500, 503, 302 };
	const char *body = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;
	long status;

	if (size == 0)
		return 0;
	status = statuses[(data[0] >> 2) % (sizeof statuses / sizeof statuses[0])];
	switch (data[0] & 3) {
	case 0: case 3: fuzz_token(body, len, status); break;
	case 1: fuzz_device(body, len, status); break;
	case 2: fuzz_cache(body, len); break;
	}
	return 0;
}
