/* fuzz_aliases.c - aliases_load_string and aliases_expand.
 *
 * The input is an aliases file.  When it loads, a few fixed names are
 * expanded, and every name it seems to define (the text before ':' on a
 * line, when that is a valid local part; up to 32).  Oracles (aliases.h):
 * failure fills the result and leaves *out NULL or the list unchanged; an
 * expansion holds no duplicates, no empty mailbox and no CR/LF; skipped
 * entries carry no control characters but TAB. */
#include "config.h"
#include "fuzz.h"
#include "aliases.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAMES_MAX 32

static void on_skip(void *arg, const struct aliases_skipped *s)
{
	CHECK(s->file && s->alias && s->entry && s->why);
	for (const char *p = s->entry; *p; p++)   /* tabs are whitespace there */
		CHECK(((unsigned char)*p >= 0x20 || *p == '\t') && *p != 0x7f);
	++*(size_t *)arg;
}

/* The same mailbox twice (local part exact, domain case-insensitive)? */
static int same(const char *a, const char *b)
{
	const char *da = addr_domain(a), *db = addr_domain(b);
	size_t la = da ? (size_t)(da - a) : strlen(a);
	size_t lb = db ? (size_t)(db - b) : strlen(b);

	return la == lb && memcmp(a, b, la) == 0 && !da == !db &&
	       (!da || strcasecmp(da, db) == 0);
}

static void expand(const struct aliases *a, const char *name)
{
	struct addrlist l = { 0 };
	struct result r;
	size_t skipped = 0;

	CHECK(addrlist_add(&l, "sentinel@example.org", NULL) == 0);
	result_clear(&r);
	if (aliases_expand(a, name, &l, on_skip, &skipped, &r) == 0) {
		for (size_t i = 1; i < l.n; i++) {
			const char *m = l.v[i].mailbox;
			CHECK(*m && !strpbrk(m, "\r\n"));
			for (size_t j = 1; j < i; j++)
				CHECK(!same(m, l.v[j].mailbox));
		}
	} else {
		CHECK(r.exitcode != EX_OK && r.text[0]);
		CHECK(l.n == 1);
	}
	addrlist_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const fixed[] = { "root", "postmaster", "default",
					     "nobody", "a1" };
	struct aliases *a = (struct aliases *)1;
	struct result r;
	/* exact-size copy: the loader must not read past len */
	char *text = malloc(size ? size : 1);
	const char *p, *end;
	size_t nnames = 0;

	CHECK(text);
	memcpy(text, data, size);
	result_clear(&r);
	if (aliases_load_string(&a, text, size, "fuzz", &r) < 0) {
		CHECK(a == NULL && r.exitcode != EX_OK && r.text[0]);
		free(text);
		return 0;
	}
	CHECK(a);
	free(text);   /* the table must not point into the text */
	(void)aliases_count(a);
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		expand(a, fixed[i]);
	for (p = (const char *)data, end = p + size; p < end && nnames < NAMES_MAX;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		const char *colon = memchr(p, ':', (size_t)(e - p));

		if (colon && colon > p) {
			char name[128];
			size_t n = (size_t)(colon - p);

			if (n < sizeof name && !memchr(p, '\0', n)) {
				memcpy(name, p, n);
				name[n] = '\0';
				/* what main passes: a valid local part; other
				 * strings come back unchanged, by contract */
				if (addr_valid_mailbox(name) && !strchr(name, '@')) {
					expand(a, name);
					nnames++;
				}
			}
		}
		p = nl ? nl + 1 : end;
	}
	aliases_free(a);
	return 0;
}
