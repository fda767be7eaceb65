/* t_address.c - RFC 5322 address-list parser and RFC 5321 mailbox check. */
#include "config.h"
#include "address.h"
#include "tap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Parsed lists are flattened to "mailbox{display}|mailbox|..." so one string
 * states the whole expected result, display names included. */
static void flatten(const struct addrlist *l, size_t from, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = from; i < l->n && o < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s%s%s%s",
				      i > from ? "|" : "", l->v[i].mailbox,
				      l->v[i].display ? "{" : "",
				      l->v[i].display ? l->v[i].display : "",
				      l->v[i].display ? "}" : "");
}

/* Parses from an exact-size heap copy, so valgrind reports any read past
 * len (the parser must never rely on a terminating NUL). */
static int parse_exact(const char *in, size_t len, struct addrlist *l,
		       char *err, size_t errcap)
{
	char *copy = malloc(len ? len : 1);
	int rc, saved;

	memcpy(copy, in, len);
	rc = addr_parse_list(copy, len, l, err, errcap);
	saved = errno;
	free(copy);
	errno = saved;
	return rc;
}

static const struct {
	const char *in;
	const char *want;
} good[] = {
	/* addr-spec and name-addr (RFC 5322 section 3.4) */
	{ "a@b.example", "a@b.example" },
	{ "  a@b.example  ", "a@b.example" },
	{ "<a@b.example>", "a@b.example" },
	{ "A B <a@b>", "a@b{A B}" },
	{ "\"A. B\" <a@b.example> (comment), c@d", "a@b.example{A. B}|c@d" },
	{ "John Q. Public <jqp@example.com>", "jqp@example.com{John Q. Public}" },
	{ "\"Joe \\\"Q\\\" \\\\Public\" <j@x>", "j@x{Joe \"Q\" \\Public}" },
	{ "\"\" <a@b>", "a@b" },
	/* comments, nested, with quoted-pairs, anywhere CFWS may be */
	{ "a@b (c)", "a@b" },
	{ "(x) a (y) @ (z) b (w)", "a@b" },
	{ "a@b (outer (inner (deep)) \\) still \\( comment)", "a@b" },
	{ "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
	  "pete@silly.test{Pete}" },
	{ "a(c)@b", "a@b" },
	/* quoted local parts: quotes kept only when needed (RFC 5321 4.1.2) */
	{ "\"john\"@x", "john@x" },
	{ "\"john doe\"@x", "\"john doe\"@x" },
	{ "\"john.doe\"@x", "john.doe@x" },
	{ "\"a\\\"b\"@x", "\"a\\\"b\"@x" },
	{ "\"a\\\\b\"@x", "\"a\\\\b\"@x" },
	{ "\"a\\b\"@x", "ab@x" },
	{ "\"a..b\"@x", "\"a..b\"@x" },
	{ "\"@\"@x", "\"@\"@x" },
	{ "\"\"@x", "\"\"@x" },
	{ "john.\"doe\"@x", "john.doe@x" },
	{ "john . doe @ example . com", "john.doe@example.com" },
	{ "\"john doe\"", "\"john doe\"" },
	/* domain literals */
	{ "a@[1.2.3.4]", "a@[1.2.3.4]" },
	{ "<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]" },
	/* groups (section 3.4): flattened; empty groups give nothing */
	{ "undisclosed-recipients:;", "" },
	{ "undisclosed-recipients: ;", "" },
	{ "undisclosed-recipients:", "" },
	{ "Team: e@f, \"G\" <g@h>;, i@j", "e@f|g@h{G}|i@j" },
	{ "A: a@b;, B: c@d;", "a@b|c@d" },
	{ "\"The Team\" (c): x@y ;", "x@y" },
	/* obs-route in angle-addr (section 4.4) */
	{ "<@a,@b:user@c>", "user@c" },
	{ "Name <@a.example:user@c>", "user@c{Name}" },
	{ "<@a, ,@b : user@c>", "user@c" },
	/* folding whitespace */
	{ "A\r\n B <a@b>,\r\n\tc@d", "a@b{A B}|c@d" },
	{ "A\n B <a@b>,\n c@d", "a@b{A B}|c@d" },
	{ "\"a\r\n b\" <x@y>", "x@y{a b}" },
	{ "a@b (x\r\n y)", "a@b" },
	/* empty elements (section 4.4 obs-addr-list) */
	{ "a@b, ,c@d,", "a@b|c@d" },
	{ ",,,", "" },
	{ "", "" },
	{ "   ", "" },
	/* bare names (cron), null path */
	{ "root", "root" },
	{ "root, admin", "root|admin" },
	{ "<root>", "root" },
	{ "<>", "" },
	{ "Nobody <>", "{Nobody}" },
	/* UTF-8 passes through */
	{ "J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc" "cher.example>",
	  "j\xc3\xb6rg@b\xc3\xbc" "cher.example{J\xc3\xb6rg}" },
	/* atext specials are fine unquoted */
	{ "a+tag!#$%&'*/=?^_`{|}~-@x", "a+tag!#$%&'*/=?^_`{|}~-@x" },
};

static const struct {
	const char *in;
	size_t len;          /* 0: strlen(in) */
	const char *why;     /* substring of the error */
} bad[] = {
	{ "\"a@b", 0, "unterminated quoted string" },
	{ "a@b (x", 0, "unbalanced '('" },
	{ "a@b (x (y)", 0, "unbalanced '('" },
	{ "a@b)", 0, "unbalanced ')'" },
	{ "<a@b", 0, "unbalanced '<'" },
	{ "A <a@b, c@d", 0, "unexpected" },
	{ "a@b>", 0, "unbalanced '>'" },
	{ "<<a@b>>", 0, "missing local part" },
	{ "a@", 0, "'@' without domain" },
	{ "a@ , b@c", 0, "'@' without domain" },
	{ "<a@>", 0, "'@' without domain" },
	{ "@b", 0, "missing local part" },
	{ "a@b@c", 0, "unexpected '@'" },
	{ "a@\"b\"", 0, "invalid domain" },
	{ "a@b..c", 0, "invalid domain" },
	{ "a@b.", 0, "invalid domain" },
	{ "a..b@c", 0, "invalid local part" },
	{ ".a@c", 0, "invalid local part" },
	{ "john doe@x", 0, "invalid local part" },
	{ "John Smith", 0, "not an address" },
	{ "a@b\r\nRCPT TO:<x>", 0, "line break" },
	{ "a@b\nRCPT TO:<x>", 0, "line break" },
	{ "a@b\r", 0, "line break" },
	{ "\"a\rb\"@c", 0, "line break" },
	{ "a\x01" "b@c", 0, "control character 0x01" },
	{ "a@b\x7f", 0, "control character 0x7f" },
	{ "\"a\x1b[2J\"@c", 0, "control character 0x1b" },
	{ "a\0b@c", 4, "NUL byte" },
	{ "\"a\0\"@c", 6, "NUL byte" },
	{ "(a\0)b@c", 7, "NUL byte" },
	{ "a@b; c@d", 0, "';' outside a group" },
	{ "A: B: c@d;;", 0, "group inside a group" },
	{ ": a@b;", 0, "group without a name" },
	{ "<@a:@b>", 0, "missing local part" },
	{ "<@a;user@c>", 0, "invalid source route" },
	{ "a\\@b@c", 0, "unexpected '\\'" },
	{ "A <a@b> c", 0, "unexpected 'c'" },
	{ "<a@b> <c@d>", 0, "second '<'" },
	{ "a@[1.2[3]", 0, "inside domain literal" },
	{ "a@[1.2.3.4", 0, "unterminated domain literal" },
	{ "a@[ ]", 0, "empty domain literal" },
	{ "\"a\\", 0, "backslash at end" },
	{ "a@b]", 0, "unexpected ']'" },
};

static void test_good(void)
{
	char out[4096], err[256];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct addrlist l = { 0 };
		int rc = parse_exact(good[i].in, strlen(good[i].in), &l,
				     err, sizeof err);

		if (rc < 0)
			printf("# error: %s\n", err);
		flatten(&l, 0, out, sizeof out);
		ok(rc == 0 && strcmp(out, good[i].want) == 0,
		   "parse [%zu] %s", i, good[i].want);
		if (rc == 0 && strcmp(out, good[i].want) != 0)
			printf("#   got \"%s\"\n", out);
		addrlist_free(&l);
	}
}

/* A failed parse appends nothing: the list keeps what it held before. */
static void test_bad(void)
{
	char err[256];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct addrlist l = { 0 };
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].in);
		int rc;

		addrlist_add(&l, "keep@x", NULL);
		errno = 0;
		rc = parse_exact(bad[i].in, len, &l, err, sizeof err);
		ok(rc == -1 && l.n == 1 && errno == EINVAL &&
		   strstr(err, bad[i].why) != NULL,
		   "reject [%zu] (%s)", i, bad[i].why);
		if (rc == -1 && !strstr(err, bad[i].why))
			printf("#   got error \"%s\"\n", err);
		addrlist_free(&l);
	}
}

static char *repeat(const char *unit, size_t n, const char *tail)
{
	size_t ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(ul * n + tl + 1);

	for (size_t i = 0; i < n; i++)
		memcpy(s + i * ul, unit, ul);
	memcpy(s + ul * n, tail, tl + 1);
	return s;
}

static void test_hostile(void)
{
	struct addrlist l = { 0 };
	char err[256];
	char *s;
	int rc;

	s = repeat("a", 10240, "@b.example");
	rc = addr_parse_list(s, strlen(s), &l, err, sizeof err);
	ok(rc == -1 && strstr(err, "998") && l.n == 0, "10 KiB local part refused");
	free(s);

	s = repeat("x", 10240, " <a@b>");
	rc = addr_parse_list(s, strlen(s), &l, err, sizeof err);
	ok(rc == -1 && strstr(err, "998") && l.n == 0, "10 KiB display name refused");
	free(s);

	s = repeat("a", 990, "@b.example");   /* 1000 bytes */
	rc = addr_parse_list(s, strlen(s), &l, err, sizeof err);
	ok(rc == -1 && l.n == 0, "1000-byte address refused");
	free(s);

	s = repeat("a", 986, "@b.example");   /* 996 bytes: within the limit */
	rc = addr_parse_list(s, strlen(s), &l, err, sizeof err);
	ok(rc == 0 && l.n == 1 && strlen(l.v[0].mailbox) == 996,
	   "996-byte address parsed");
	addrlist_free(&l);
	free(s);

	s = repeat(",", 1000, "");
	rc = addr_parse_list(s, strlen(s), &l, err, sizeof err);
	ok(rc == 0 && l.n == 0, "1000 commas: no addresses, no crash");
	free(s);

	s = repeat("a@b,", 1000, "c@d");
	rc = addr_parse_list(s, strlen(s), &l, err, sizeof err);
	ok(rc == 0 && l.n == 1001, "1001 addresses parsed");
	addrlist_free(&l);
	free(s);

	s = repeat("(", 5000, "");
	rc = addr_parse_list(s, strlen(s), &l, err, sizeof err);
	ok(rc == -1 && strstr(err, "unbalanced '('"), "5000 open comments refused");
	free(s);

	s = malloc(4000 + 3 + 4000 + 1);
	memset(s, '(', 4000);
	memcpy(s + 4000, "a@b", 3);
	memset(s + 4003, ')', 4000);
	s[8003] = '\0';
	rc = addr_parse_list(s, 8003, &l, err, sizeof err);
	ok(rc == 0 && l.n == 0, "4000-deep comment is only a comment");
	free(s);

	/* errcap 0 and NULL err must be safe */
	ok(addr_parse_list("<a@b", 4, &l, NULL, 0) == -1 && l.n == 0,
	   "NULL err buffer");
	/* the length bounds the input: bytes past it are not read */
	ok(addr_parse_list("a@b, junk\r\nX", 3, &l, err, sizeof err) == 0 &&
	   l.n == 1, "len bounds the input");
	is_mem(l.n ? l.v[0].mailbox : "", l.n ? strlen(l.v[0].mailbox) : 0,
	       "a@b", 3, "only the first len bytes were parsed");
	addrlist_free(&l);
}

static const struct {
	const char *s;
	int valid;
} mbox[] = {
	{ "", 1 },
	{ "a@b.example", 1 },
	{ "root", 1 },
	{ "first.last+tag@sub.example.com", 1 },
	{ "\"john doe\"@x", 1 },
	{ "\"a\\\"b\"@x", 1 },
	{ "a@[192.0.2.1]", 1 },
	{ "a@[IPv6:2001:db8::1]", 1 },
	{ "j\xc3\xb6rg@b\xc3\xbc" "cher.example", 1 },
	{ "a b@c", 0 },
	{ "a@b c", 0 },
	{ "<a@b>", 0 },
	{ "a@b>", 0 },
	{ "a@b> SIZE=1", 0 },
	{ "a@b\r\nRCPT TO:<x@y>", 0 },
	{ "a@b\nDATA", 0 },
	{ "a@b\r", 0 },
	{ "\"a\r\nb\"@c", 0 },
	{ "\"a\tb\"@c", 0 },
	{ "\"a\\\r\"@c", 0 },
	{ "a\tb@c", 0 },
	{ "\"unterminated@c", 0 },
	{ "\"a\"b@c", 0 },
	{ "a@", 0 },
	{ "@b", 0 },
	{ "a@b@c", 0 },
	{ "a..b@c", 0 },
	{ ".a@c", 0 },
	{ "a.@c", 0 },
	{ "a@b..c", 0 },
	{ "a@.b", 0 },
	{ "a@b.", 0 },
	{ "a@[]", 0 },
	{ "a@[1.2.3.4", 0 },
	{ "a@[1 2]", 0 },
	{ "a@[1]x", 0 },
	{ "a(b)@c", 0 },
	{ "a,b@c", 0 },
	{ "a:b@c", 0 },
	{ "a\x7f@c", 0 },
};

static void test_valid(void)
{
	char *s;

	for (size_t i = 0; i < sizeof mbox / sizeof mbox[0]; i++)
		is_int(addr_valid_mailbox(mbox[i].s), mbox[i].valid,
		       "valid_mailbox [%zu] %d", i, mbox[i].valid);

	s = repeat("a", 242, "@example.com");   /* 254 bytes */
	ok(addr_valid_mailbox(s), "254-byte mailbox valid");
	free(s);
	s = repeat("a", 243, "@example.com");   /* 255 bytes */
	ok(!addr_valid_mailbox(s), "255-byte mailbox refused");
	free(s);
}

static void test_helpers(void)
{
	struct addrlist l = { 0 };

	is_str(addr_domain("a@b"), "b", "domain of a@b");
	is_str(addr_domain("\"x@y\"@z"), "z", "domain skips quoted @");
	is_str(addr_domain("\"x\\\"@y\"@z"), "z", "domain skips escaped quote");
	ok(addr_domain("root") == NULL, "no domain for root");
	ok(addr_domain("\"a@b\"") == NULL, "no domain when @ is quoted");
	is_str(addr_domain("a@[1.2.3.4]"), "[1.2.3.4]", "literal domain");

	addrlist_add(&l, "User@Example.COM", "U");
	addrlist_add(&l, "root", NULL);
	ok(addrlist_contains(&l, "User@example.com"), "domain compared caselessly");
	ok(!addrlist_contains(&l, "user@example.com"), "local part case kept");
	ok(addrlist_contains(&l, "root"), "bare name found");
	ok(!addrlist_contains(&l, "root@x"), "bare name differs from qualified");
	ok(!addrlist_contains(&l, "User"), "qualified differs from bare");
	is_str(l.v[0].display, "U", "display copied");
	ok(l.v[1].display == NULL, "NULL display kept NULL");
	addrlist_free(&l);
	ok(l.n == 0 && l.v == NULL, "free resets the list");

	/* Every mailbox the parser yields for a good address passes the
	 * RFC 5321 gate (the two must agree on what is sendable). */
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct addrlist m = { 0 };
		int all = 1;

		addr_parse_list(good[i].in, strlen(good[i].in), &m, NULL, 0);
		for (size_t j = 0; j < m.n; j++)
			all &= addr_valid_mailbox(m.v[j].mailbox);
		ok(all, "parser output [%zu] passes addr_valid_mailbox", i);
		addrlist_free(&m);
	}
}

/* The rule the hash index must keep (RFC 5321 2.4), written pairwise. */
static int naive_same(const char *a, const char *b)
{
	const char *da = addr_domain(a), *db = addr_domain(b);
	size_t la = da ? (size_t)(da - a) : strlen(a), lb = db ? (size_t)(db - b) : strlen(b);

	return la == lb && memcmp(a, b, la) == 0 && !da == !db &&
	       (!da || strcasecmp(da, db) == 0);
}

/* "keep the first of each" over in[0..n) both ways; 1 when they agree. */
static int dedupe_agrees(const char *const *in, size_t n, struct addrlist *l)
{
	size_t k = 0;
	int same = 1;

	for (size_t i = 0; i < n; i++)
		if (!addrlist_contains(l, in[i]))
			addrlist_add(l, in[i], NULL);
	for (size_t i = 0; i < n && same; i++) {
		int seen = 0;
		for (size_t j = 0; j < i && !seen; j++)
			seen = naive_same(in[j], in[i]);
		if (!seen)
			same = k < l->n && strcmp(l->v[k++].mailbox, in[i]) == 0;
	}
	return same && k == l->n;
}

static void test_dedupe(void)
{
	static const char *const tricky[] = {
		"a@example.com", "A@example.com", "a@EXAMPLE.com", "a@example.COM",
		"root", "ROOT", "root@example.com", "root", "\"a@b\"@x.example",
		"\"a@b\"@X.EXAMPLE", "\"a@B\"@x.example", "a@[192.0.2.1]",
		"a@[192.0.2.1]", "j\xc3\xb6" "e@example.com", "J\xc3\xb6" "e@example.com",
		"j\xc3\xb6" "e@Example.com", "b@x", "b@X", "b@x.", "a@example.com",
	};
	static char buf[3000][32];
	const char *many[3000];
	struct addrlist l = { 0 };

	ok(dedupe_agrees(tricky, sizeof tricky / sizeof tricky[0], &l),
	   "dedupe: first of each kept, in order; domain caseless, local part exact");
	is_int(l.n, 12, "dedupe: 12 distinct among the tricky ones");
	addrlist_free(&l);

	/* enough entries for the index to grow several times, with repeats
	 * that differ only in the case of the domain or of the local part */
	for (size_t i = 0; i < 3000; i++) {
		unsigned v = (unsigned)(i * 7919u % 1200u);
		snprintf(buf[i], sizeof buf[i], i % 3 ? "u%u@D%u.example" : "U%u@d%u.EXAMPLE",
			 v, v % 17);
		many[i] = buf[i];
	}
	ok(dedupe_agrees(many, 3000, &l), "dedupe: 3000 entries agree with a pairwise search");

	/* shrinking (alias expansion's rollback) must not leave stale slots */
	addrlist_truncate(&l, 5);
	is_int(l.n, 5, "truncate: 5 left");
	addrlist_add(&l, "new@example.com", NULL);
	addrlist_add(&l, "new2@example.com", NULL);
	ok(addrlist_contains(&l, "NEW@x") == 0 && addrlist_contains(&l, "new@EXAMPLE.com") &&
	   addrlist_contains(&l, "new2@example.com"),
	   "truncate then add: the new entries are found, nothing else is");
	ok(!addrlist_contains(&l, many[2999]) || naive_same(many[2999], l.v[0].mailbox) ||
	   naive_same(many[2999], l.v[1].mailbox) || naive_same(many[2999], l.v[2].mailbox) ||
	   naive_same(many[2999], l.v[3].mailbox) || naive_same(many[2999], l.v[4].mailbox),
	   "truncate: a dropped entry is no longer found");
	addrlist_free(&l);
	ok(l.slot == NULL && l.nslots == 0, "free drops the index");

	/* 100,000 distinct and 100,000 repeats: counted, not timed */
	for (unsigned i = 0; i < 200000; i++) {
		char m[40];
		snprintf(m, sizeof m, "x%u@%s.example", i % 100000, i < 100000 ? "a" : "A");
		if (!addrlist_contains(&l, m))
			addrlist_add(&l, m, NULL);
	}
	is_int(l.n, 100000, "dedupe: 200,000 with 100,000 repeats leave 100,000");
	ok(l.n == 100000 && strcmp(l.v[99999].mailbox, "x99999@a.example") == 0,
	   "dedupe: first-seen order at scale");
	addrlist_free(&l);
}

/* Header values with local names qualified, everything else byte for byte. */
static const char *const locals[] = { "localhost", "vm", "vm.example.lan", NULL };

static const struct {
	const char *in, *want;   /* want NULL: left unchanged */
} qual[] = {
	{ "root", "root@example.net" },
	{ "root (Cron Daemon)", "root@example.net (Cron Daemon)" },
	{ "Cron Daemon <root>", "Cron Daemon <root@example.net>" },
	{ "\"Cron, Daemon\" <root> (comment)", "\"Cron, Daemon\" <root@example.net> (comment)" },
	{ " root, a@example.org,\r\n\tbob (x)", " root@example.net, a@example.org,\r\n\tbob@example.net (x)" },
	{ "root@localhost", "root@example.net" },
	{ "Root <root@LOCALHOST>", "Root <root@example.net>" },
	{ "root@vm (me)", "root@example.net (me)" },
	{ "root@vm.example.lan", "root@example.net" },
	{ "root @ localhost", "root @ example.net" },
	{ "\"john doe\"", "\"john doe\"@example.net" },
	{ "Team: root, a@b.example;", "Team: root@example.net, a@b.example;" },
	{ "a@example.org", NULL },
	{ "A <a@example.org>, b@vm.example.com", NULL },
	{ "undisclosed-recipients:;", NULL },
	{ "<>", NULL },
	{ "root@[127.0.0.1]", NULL },
	{ "bad <<", NULL },
	{ "", NULL },
};

static void test_qualify(void)
{
	for (size_t i = 0; i < sizeof qual / sizeof qual[0]; i++) {
		char *out = NULL;
		size_t n = 0;
		int rc = addr_qualify_list(qual[i].in, strlen(qual[i].in), "example.net",
					   locals, &out, &n);

		is_int(rc, qual[i].want ? 1 : 0, "qualify %s: %s", qual[i].in,
		       qual[i].want ? "changed" : "unchanged");
		if (qual[i].want)
			is_str(out ? out : "", qual[i].want, "qualify %s", qual[i].in);
		if (out)
			is_int(n, strlen(out), "qualify %s: length", qual[i].in);
		free(out);
	}
	{
		char longname[260], *out = NULL;
		size_t n;

		memset(longname, 'a', 250);
		longname[250] = '\0';
		is_int(addr_qualify_list(longname, 250, "example.net", locals, &out, &n), 0,
		       "qualify: a name too long to qualify within 254 bytes is left alone");
		free(out);
	}
	is_int(addr_local_name("root", locals), 4, "local: bare");
	is_int(addr_local_name("root@VM", locals), 4, "local: host name");
	is_int(addr_local_name("root@example.org", locals), 0, "local: other domain");
	is_int(addr_local_name("", locals), 0, "local: null sender");
	is_int(addr_local_name("@vm", locals), 0, "local: no local part");
	is_int(addr_local_name("root", NULL), 4, "local: no list");
}

int main(void)
{
	test_dedupe();
	test_qualify();
	test_good();
	test_bad();
	test_hostile();
	test_valid();
	test_helpers();
	return tap_done();
}
