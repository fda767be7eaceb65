/* fuzz_cfg.c - the INI loader: cfg_load_string, cfg_finish, cfg_select and
 * the typed accessors, cfg_free.
 *
 * The input is split at NUL bytes into up to three "files" loaded in order,
 * as the system and user files are (later files override earlier ones).
 * Oracles: a failure fills the result with a message; a loaded value never
 * holds CR or LF (values end up in SMTP commands and headers); every account
 * can be selected by its own name; cfg_free leaves the struct zeroed. */
#include "config.h"
#include "fuzz.h"
#include "cfg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* "~" and $VAR expansion get something fixed to expand to */
	setenv("HOME", "/home/fuzz", 1);
	setenv("FUZZ", "value", 1);
	unsetenv("PUSHMAIL_CONFIG");
	return 0;
}

static void check_value(const char *v)
{
	CHECK(!v || !strpbrk(v, "\r\n"));
}

static void check_account(const struct config *c, const struct account *a)
{
	struct result r;

	CHECK(a->name && *a->name);
	result_clear(&r);
	CHECK(cfg_select(c, a->name, NULL, &r) != NULL);
	for (int k = 0; k < K__COUNT; k++) {
		check_value(cfg_str(a, (enum cfg_key)k));
		(void)cfg_bool(a, (enum cfg_key)k, -1);
		(void)cfg_long(a, (enum cfg_key)k, -1);
		CHECK(strcmp(cfg_key_name((enum cfg_key)k), "?") != 0);
	}
	/* a relay is a host, or a unix socket (issue 16) */
	CHECK(cfg_str(a, K_HOST) != NULL || cfg_str(a, K_SOCKET) != NULL);
	CHECK(cfg_port(a) && *cfg_port(a));
	int mode = cfg_tls_mode(a);
	CHECK(mode >= CFG_TLS_OFF && mode <= CFG_TLS_IMPLICIT);
	(void)cfg_from_matches(a, "user+tag@example.org");
	(void)cfg_from_matches(a, "USER@EXAMPLE.ORG");
	(void)cfg_from_matches(a, "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "system.ini", "user.ini", "third.ini" };
	static const struct config zero;   /* padding zeroed too */
	struct config c;
	struct result r;
	const char *p = (const char *)data, *end = p + size;
	int failed = 0;

	memset(&c, 0, sizeof c);
	result_clear(&r);
	for (size_t f = 0; f < 3 && p <= end && !failed; f++) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		size_t n = (size_t)((nul ? nul : end) - p);
		char *text = malloc(n + 1);

		CHECK(text);
		memcpy(text, p, n);
		text[n] = '\0';
		if (cfg_load_string(&c, text, names[f], &r) < 0) {
			CHECK(r.exitcode != EX_OK && r.text[0]);
			failed = 1;
		}
		free(text);
		if (!nul)
			break;
		p = nul + 1;
	}
	if (!failed) {
		if (cfg_finish(&c, &r) == 0) {
			for (size_t i = 0; i < c.n; i++)
				check_account(&c, &c.v[i]);
			check_value(c.default_account);
			result_clear(&r);
			const struct account *a = cfg_select(&c, NULL,
							     "someone@example.org", &r);
			CHECK(a || (r.exitcode != EX_OK && r.text[0]));
		} else {
			CHECK(r.exitcode != EX_OK && r.text[0]);
		}
	}
	cfg_free(&c);
	CHECK(memcmp(&c, &zero, sizeof c) == 0);
	return 0;
}
