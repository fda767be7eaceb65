/* fuzz_auth.c - SASL client steps against fuzzed challenges, base64, and
 * the OAuth message builders.
 *
 * Input: byte 0 selects the mechanism (table below; the last entries are
 * the base64 and OAuth-message modes); the rest, split at LF, are the
 * server's 334 challenges (base64 text), one per round, as smtp.c feeds
 * them.  SCRAM's are given raw and encoded here, and the first one gets
 * "r=" and the client's nonce in front, so that the fuzzer reaches what a
 * real server controls (salt, iteration count, signature).  Oracles: a step that succeeds gives a response that can go on the
 * wire (base64 alphabet, "*" or ""); a failed step fills the result and
 * gives nothing; base64 round-trips; the OAuth messages carry exactly their
 * own ^A-separated fields whatever the user name and token hold. */
#include "config.h"
#include "fuzz.h"
#include "auth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 12   /* more than auth.c's own bound, to reach it */

static const char *const mechs[] = {
	"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256",
	"SCRAM-SHA-256-PLUS", "XOAUTH2", "OAUTHBEARER",
};
#define NMECHS (sizeof mechs / sizeof mechs[0])

static void check_response(const char *out)
{
	CHECK(out);
	if (strcmp(out, "*") == 0)
		return;
	for (const char *p = out; *p; p++)
		CHECK((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '+' || *p == '/' ||
		      *p == '=');
}

/* Next LF-separated piece as a NUL-terminated string. */
static char *piece(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = (size_t)((nl ? nl : end) - *p);
	char *s = malloc(n + 1);

	CHECK(s);
	memcpy(s, *p, n);
	s[n] = '\0';
	*p = nl ? nl + 1 : end;
	return s;
}

/* The "r=..." of SCRAM's client-first message (base64 b64). */
static void client_nonce(const char *b64, char *nonce, size_t cap)
{
	unsigned char *dec = NULL;
	size_t len = 0;
	const char *r;

	if (auth_b64_decode(b64, &dec, &len) == 0 && dec) {
		char *s = malloc(len + 1);
		CHECK(s);
		memcpy(s, dec, len);
		s[len] = '\0';
		if ((r = strstr(s, ",r=")))
			snprintf(nonce, cap, "%.*s", (int)strcspn(r + 1, ","), r + 1);
		free(s);
	}
	free(dec);
}

/* base64(prefix + raw); frees raw. */
static char *scram_challenge(char *raw, const char *prefix)
{
	size_t n = strlen(prefix), m = strlen(raw);
	char *text = malloc(n + m + 1), *b64 = NULL;

	CHECK(text);
	memcpy(text, prefix, n);
	memcpy(text + n, raw, m + 1);
	CHECK(auth_b64_encode((unsigned char *)text, n + m, &b64) == 0);
	free(text);
	free(raw);
	return b64;
}

static void run_mech(const char *mech, const char *p, const char *end)
{
	static struct tls_info ti = {
		.cb = "0123456789abcdef0123456789abcdef", .cblen = 32,
		.cbtype = "tls-exporter",
	};
	struct auth_params ap = {
		.mech = mech, .user = "fuzzuser", .secret = "fuzz secret",
		.host = "mx.example.org", .port = "587", .tls = 1,
		.tls_info = &ti,
	};
	struct result r;
	struct auth_client *ac;
	char *out = NULL, nonce[256] = "";
	int rc = 0, scram = strncmp(mech, "SCRAM-", 6) == 0;

	result_clear(&r);
	ac = auth_start(mech, &ap, &r);
	if (!ac) {
		CHECK(r.exitcode != EX_OK);
		return;
	}
	if (auth_client_first(mech)) {
		rc = auth_step(ac, NULL, &out, &r);
		if (rc == 0) {
			check_response(out);
			if (scram)
				client_nonce(out, nonce, sizeof nonce);
		}
		auth_free_response(out);
	}
	for (int i = 0; i < ROUNDS && rc == 0 && p < end; i++) {
		char *challenge = piece(&p, end);

		if (scram)
			challenge = scram_challenge(challenge, i == 0 ? nonce : "");

		out = NULL;
		rc = auth_step(ac, challenge, &out, &r);
		if (rc == 0)
			check_response(out);
		else
			CHECK(out == NULL && r.exitcode != EX_OK && r.text[0]);
		auth_free_response(out);
		free(challenge);
	}
	auth_end(ac);
}

static void run_b64(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *enc = NULL, *enc2 = NULL;
	unsigned char *dec = NULL, *dec2 = NULL;
	size_t len = 0, len2 = 0;

	CHECK(s);
	memcpy(s, data, size);
	s[size] = '\0';
	/* raw bytes -> base64 -> the same bytes */
	CHECK(auth_b64_encode(data, size, &enc) == 0);
	check_response(enc);
	CHECK(auth_b64_decode(enc, &dec, &len) == 0);
	CHECK(len == size && (size == 0 || memcmp(dec, data, size) == 0));
	free(dec);
	dec = NULL;
	/* text -> bytes -> text -> the same bytes */
	if (auth_b64_decode(s, &dec, &len) == 0) {
		CHECK(auth_b64_encode(dec, len, &enc2) == 0);
		CHECK(auth_b64_decode(enc2, &dec2, &len2) == 0);
		CHECK(len2 == len && (len == 0 || memcmp(dec, dec2, len) == 0));
	}
	free(enc);
	free(enc2);
	free(dec);
	free(dec2);
	free(s);
}

static size_t count(const char *s, size_t n, char c)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += s[i] == c;
	return k;
}

static void run_oauth(const char *p, const char *end)
{
	char *user = piece(&p, end), *host = piece(&p, end), *token = piece(&p, end);
	char *msg = NULL;
	size_t len = 0;

	if (auth_xoauth2_message(user, token, &msg, &len) == 0) {
		CHECK(len == strlen(msg) && strncmp(msg, "user=", 5) == 0);
		CHECK(count(msg, len, '\001') == 3);
	}
	free(msg);
	msg = NULL;
	if (auth_oauthbearer_message(user, host, "587", token, &msg, &len) == 0) {
		char *gs2_end = strchr(msg, '\001');
		CHECK(len == strlen(msg) && strncmp(msg, "n,a=", 4) == 0);
		CHECK(count(msg, len, '\001') == 5);
		/* the authzid ends at the one ',' before the first ^A */
		CHECK(gs2_end && gs2_end[-1] == ',' &&
		      count(msg + 4, (size_t)(gs2_end - msg) - 5, ',') == 0);
	}
	free(msg);
	free(user);
	free(host);
	free(token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	unsigned sel;

	if (size < 1)
		return 0;
	sel = data[0] % (NMECHS + 2);
	if (sel < NMECHS)
		run_mech(mechs[sel], p, end);
	else if (sel == NMECHS)
		run_b64(data + 1, size - 1);
	else
		run_oauth(p, end);
	return 0;
}
