/* fuzz_address.c - addr_parse_list and addr_valid_mailbox.
 *
 * Oracles (address.h):
 *  - a parsed mailbox never holds CR, LF or NUL (it goes into RCPT TO:<...>),
 *    and neither does a display name;
 *  - the parser's output is its own fixed point: parsing "<m>" gives m back;
 *  - on failure nothing is appended and errno is EINVAL (no allocation fails
 *    here), and the message is set;
 *  - addr_valid_mailbox(s) for a non-empty s means "<s>" parses to exactly
 *    one mailbox that is valid as well;
 *  - addr_qualify_list on a list that parses gives a list that parses to as
 *    many mailboxes, each the original one or, for a local name, its local
 *    part at the new domain; it reports "unchanged" only without local names. */
#include "config.h"
#include "fuzz.h"
#include "address.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Parse "<s>" (len bytes); -1 on failure, else the number of mailboxes, the
 * first copied to *first (malloc'd). */
static long parse_angle(const char *s, size_t len, char **first)
{
	struct addrlist l = { 0 };
	char *buf = malloc(len + 2);
	long n = -1;

	CHECK(buf);
	buf[0] = '<';
	memcpy(buf + 1, s, len);
	buf[len + 1] = '>';
	if (addr_parse_list(buf, len + 2, &l, NULL, 0) == 0) {
		n = (long)l.n;
		*first = n ? strdup(l.v[0].mailbox) : NULL;
	}
	addrlist_free(&l);
	free(buf);
	return n;
}

static void check_parsed(const struct addr *a)
{
	char *again = NULL;
	size_t n = strlen(a->mailbox);

	CHECK(!strpbrk(a->mailbox, "\r\n"));
	CHECK(!a->display || !strpbrk(a->display, "\r\n"));
	CHECK(parse_angle(a->mailbox, n, &again) == 1);
	CHECK(strcmp(again, a->mailbox) == 0);
	free(again);
	CHECK(addr_domain(a->mailbox) == NULL ||
	      addr_domain(a->mailbox) > a->mailbox);
}

static void check_valid(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *m = NULL;

	CHECK(s);
	memcpy(s, data, size);
	s[size] = '\0';
	if (addr_valid_mailbox(s) && *s) {
		size_t n = strlen(s);

		CHECK(n <= 254 && !strpbrk(s, "\r\n"));
		CHECK(parse_angle(s, n, &m) == 1);
		CHECK(addr_valid_mailbox(m));
		free(m);
	}
	free(s);
}

/* The local part that gets the domain, or 0: a local name that stays
 * within the 254-byte path limit once qualified. */
static size_t qualified_len(const char *m, const char *const *locals)
{
	size_t k = addr_local_name(m, locals);

	return k && k + 1 + strlen("q.example") <= 254 ? k : 0;
}

static void check_qualify(const char *s, size_t size, const struct addrlist *orig)
{
	static const char *const locals[] = { "localhost", "vm", NULL };
	struct addrlist l = { 0 };
	char *out = NULL, want[1100];
	size_t n = 0, nlocal = 0;
	int rc = addr_qualify_list(s, size, "q.example", locals, &out, &n);

	for (size_t i = 1; i < orig->n; i++)
		nlocal += qualified_len(orig->v[i].mailbox, locals) != 0;
	CHECK(rc == (nlocal ? 1 : 0));
	if (rc != 1)
		return;
	CHECK(strlen(out) == n);
	CHECK(addr_parse_list(out, n, &l, NULL, 0) == 0);
	CHECK(l.n == orig->n - 1);
	for (size_t i = 0; i < l.n; i++) {
		const char *m = orig->v[i + 1].mailbox;
		size_t k = qualified_len(m, locals);

		snprintf(want, sizeof want, "%.*s%s", (int)(k ? k : strlen(m)), m,
			 k ? "@q.example" : "");
		CHECK(strcmp(l.v[i].mailbox, want) == 0);
	}
	addrlist_free(&l);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addrlist l = { 0 };
	char err[128];
	/* exact-size copy: the parser must not read past len */
	char *s = malloc(size ? size : 1);

	CHECK(s);
	memcpy(s, data, size);
	CHECK(addrlist_add(&l, "pre@existing", NULL) == 0);
	errno = 0;
	if (addr_parse_list(s, size, &l, err, sizeof err) == 0) {
		for (size_t i = 1; i < l.n; i++)
			check_parsed(&l.v[i]);
		check_qualify(s, size, &l);
	} else {
		CHECK(errno == EINVAL);
		CHECK(err[0] != '\0');
		CHECK(l.n == 1);
	}
	addrlist_free(&l);
	free(s);
	check_valid(data, size);
	return 0;
}
