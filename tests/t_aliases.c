/* t_aliases.c - unit tests for src/aliases.c (TAP). */
#include "config.h"
#include "tap.h"
#include "aliases.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* ------------------------------------------------------------------ */
/* helpers */

struct skips {
	int n;
	struct aliases_skipped last;
};

static void on_skip(void *arg, const struct aliases_skipped *s)
{
	struct skips *k = arg;

	k->n++;
	k->last = *s;
}

/* Expand name and render the outcome as one string: "a@b, c" on success,
 * "" when nothing was appended, "ERR <exit>: <text>" on failure. */
static char *expand_to(const struct aliases *a, const char *name,
		       struct skips *k, char *buf, size_t cap)
{
	struct addrlist out = { 0 };
	struct result r;
	size_t o = 0;

	result_clear(&r);
	buf[0] = '\0';
	if (aliases_expand(a, name, &out, on_skip, k, &r) < 0) {
		snprintf(buf, cap, "ERR %d: %s", r.exitcode, r.text);
		addrlist_free(&out);
		return buf;
	}
	for (size_t i = 0; i < out.n && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "",
				      out.v[i].mailbox);
	addrlist_free(&out);
	return buf;
}

static struct aliases *load(const char *text, struct result *r)
{
	struct aliases *a = NULL;

	result_clear(r);
	if (aliases_load_string(&a, text, strlen(text), NULL, r) < 0)
		return NULL;
	return a;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* expansion table: text, recipient, expected outcome, skipped entries */

static const struct {
	const char *text, *name, *want;
	int skipped;
} exp_cases[] = {
	/* syntax */
	{ "root: a@b.example\n", "root", "a@b.example", 0 },
	{ "Root: a@b\n", "ROOT", "a@b", 0 },
	{ "root: a@b\n", "rOOt", "a@b", 0 },
	{ "root: a@b,\n  c@d,\n\te@f\n", "root", "a@b, c@d, e@f", 0 },
	{ "root: a@b,\n# a comment\n  c@d\n", "root", "a@b, c@d", 0 },
	{ "root: a@b,\n    # indented comment\n  c@d\n", "root", "a@b, c@d", 0 },
	{ "root: a@b,\n\n   \n  c@d\n", "root", "a@b, c@d", 0 },
	{ "# header\n\nroot: a@b\n# trailer\n", "root", "a@b", 0 },
	{ "root: \"Admin, Team\" <a@b>, c@d\n", "root", "a@b, c@d", 0 },
	{ "root: <a@b>, Name <c@d>\n", "root", "a@b, c@d", 0 },
	{ "root: a@b (the admin, really), c@d\n", "root", "a@b, c@d", 0 },
	{ "root: a@b,\n", "root", "a@b", 0 },
	{ "root: ,a@b,, c@d ,\n", "root", "a@b, c@d", 0 },
	{ "x: a@b\r\nroot: x,\r\n c@d\r\n", "root", "a@b, c@d", 0 },
	{ "root:\ta@b,\tc@d\t\n", "root", "a@b, c@d", 0 },
	{ "root:a@b\n", "root", "a@b", 0 },
	{ "root : a@b\n", "root", "a@b", 0 },
	{ "root: a@b", "root", "a@b", 0 },
	{ "root: \"john doe\"@x.example\n", "root", "\"john doe\"@x.example", 0 },
	{ "root: a@b,\n  \"Split\n  Name\" <c@d>\n", "root", "a@b, c@d", 0 },
	{ "first.last: a@b\n", "First.Last", "a@b", 0 },
	/* deduplication: local part exact, domain case-insensitive */
	{ "root: a@b, a@B, A@b\n", "root", "a@b, A@b", 0 },
	{ "root: admin, a@b\nadmin: a@b, c@d\n", "root", "a@b, c@d", 0 },
	/* names without an entry stay bare; addresses are never expanded */
	{ "root: bob\n", "root", "bob", 0 },
	{ "root: a@b\n", "nobody", "nobody", 0 },
	{ "root: a@b\n", "root@host", "root@host", 0 },
	/* recursion */
	{ "a: b\nb: c\nc: z@z\n", "a", "z@z", 0 },
	{ "c: z@z\nb: c, y@y\na: b, x@x\n", "a", "z@z, y@y, x@x", 0 },
	{ "a: b, c\nb: d\nc: d\nd: x@y\n", "a", "x@y", 0 },
	/* "\name" is final */
	{ "root: \\root, a@b\n", "root", "root, a@b", 0 },
	{ "default: d@d\nroot: \\bob\n", "root", "bob", 0 },
	{ "bob: b@b\nroot: \\bob\n", "root", "bob", 0 },
	/* self-reference and cycles close on the bare name */
	{ "root: root, x@y\n", "root", "root, x@y", 0 },
	{ "root: x@y, root\n", "root", "x@y, root", 0 },
	{ "a: b\nb: a\n", "a", "a", 0 },
	{ "a: b\nb: a\n", "b", "b", 0 },
	{ "a: b, a1@x\nb: c\nc: a, c1@x\n", "a", "a, c1@x, a1@x", 0 },
	{ "root: root, \\root\n", "root", "root", 0 },
	/* default: catch-all */
	{ "default: catch@x\nroot: r@x\n", "nobody", "catch@x", 0 },
	{ "default: catch@x\nroot: r@x\n", "root", "r@x", 0 },
	{ "default: catch@x\nroot: bob\n", "root", "catch@x", 0 },
	{ "default: admin\n", "nobody", "admin", 0 },
	{ "default: admin\nadmin: a@x\n", "nobody", "a@x", 0 },
	{ "default: foo\n", "foo", "foo", 0 },
	{ "default: bob\n", "default", "bob", 0 },
	{ "DEFAULT: c@x\n", "someone", "c@x", 0 },
	{ "default: c@x\n", "x@y", "x@y", 0 },
	/* /dev/null discards */
	{ "devnull: /dev/null\n", "devnull", "", 0 },
	{ "x: \"/dev/null\", a@b\n", "x", "a@b", 0 },
	/* entries a relay client cannot honour */
	{ "root: |/usr/bin/procmail, a@b\n", "root", "a@b", 1 },
	{ "root: \"|/usr/bin/x -a b, c\", a@b\n", "root", "a@b", 1 },
	{ "root: :include:/etc/list, a@b\n", "root", "a@b", 1 },
	{ "root: \":INCLUDE: /etc/list\", a@b\n", "root", "a@b", 1 },
	{ "root: /var/log/root.mail, a@b\n", "root", "a@b", 1 },
	{ "root: |a, /b, :include:/c, a@b\n", "root", "a@b", 3 },
	{ "a: b, c\nb: d\nc: d\nd: |cmd, x@y\n", "a", "x@y", 1 },
	{ "root: \"/x\"@y.example\n", "root", "/x@y.example", 0 },
	{ "root: |/usr/bin/procmail\n", "root",
	  "ERR 65: aliases: alias 'root' leaves no address to deliver to "
	  "(commands, files and :include: are skipped)", 1 },
	{ "root: /dev/null, |cmd\n", "root",
	  "ERR 65: aliases: alias 'root' leaves no address to deliver to "
	  "(commands, files and :include: are skipped)", 1 },
};

static void test_expand_table(void)
{
	char buf[4096];

	for (size_t i = 0; i < sizeof exp_cases / sizeof exp_cases[0]; i++) {
		struct skips k = { 0 };
		struct result r;
		struct aliases *a = load(exp_cases[i].text, &r);

		if (!ok(a != NULL, "expand %zu: loads", i)) {
			printf("#   %s\n", r.text);
			continue;
		}
		is_str(expand_to(a, exp_cases[i].name, &k, buf, sizeof buf),
		       exp_cases[i].want, "expand %zu: %s", i, exp_cases[i].name);
		if (exp_cases[i].skipped || k.n)
			is_int(k.n, exp_cases[i].skipped, "expand %zu: skipped", i);
		aliases_free(a);
	}
}

/* ------------------------------------------------------------------ */
/* load errors: every one names the line */

static const struct {
	const char *text;
	size_t len;         /* 0: strlen(text) */
	const char *want;   /* the whole message */
} err_cases[] = {
	{ "root a@b\n", 0, "aliases:1: missing ':' after the alias name in "
	  "'root a@b'" },
	{ "x: a@b\n\nfoo bar\n", 0, "aliases:3: missing ':' after the alias "
	  "name in 'foo bar'" },
	{ ": a@b\n", 0, "aliases:1: empty alias name before ':'" },
	{ "   : a@b\n", 0, "aliases:1: continuation line (starting with "
	  "whitespace) without an alias before it" },
	{ "# c\n\n  a@b\n", 0, "aliases:3: continuation line (starting with "
	  "whitespace) without an alias before it" },
	{ "root: a@b\nROOT: c@d\n", 0, "aliases:2: duplicate alias 'root' "
	  "(first defined at line 1)" },
	{ "a: x@x\nb: x@x\nc: x@x\nb: y@y\na: z@z\n", 0, "aliases:4: duplicate "
	  "alias 'b' (first defined at line 2)" },
	{ "root:\n", 0, "aliases:1: alias 'root' has no value" },
	{ "x: a@b\nroot: ,,\n  ,\n", 0, "aliases:2: alias 'root' has no value" },
	{ "root: a@b c@d\n", 0, "aliases:1: alias 'root': bad address "
	  "'a@b c@d': invalid domain \"b c\" in address" },
	{ "root: a@b,\r\n  c@d,\r\n  x y z\r\n", 0, "aliases:3: alias 'root': "
	  "bad address 'x y z': \"x y z\" is not an address (no @ and no <...>)" },
	{ "root@x: a@b\n", 0, "aliases:1: alias name 'root@x' has a domain; "
	  "only local names are aliased" },
	{ "foo bar: a@b\n", 0, "aliases:1: 'foo bar' is not a valid alias name" },
	{ "root: <>\n", 0, "aliases:1: alias 'root': '<>' is not a valid "
	  "recipient" },
	{ "root: \\\n", 0, "aliases:1: alias 'root': '\\' is not a valid "
	  "local name" },
	{ "root: \\a b\n", 0, "aliases:1: alias 'root': '\\a b' is not a valid "
	  "local name" },
	{ "root: \"open\n", 0, "aliases:1: alias 'root': bad address "
	  "'\"open': unterminated quoted string in address (at byte 0)" },
	{ "root: a@b\0c\n", 12, "aliases:1: NUL byte (not a text file?)" },
	{ "a: b@c\n# ok\nroot: a@b\n\0\n", 24, "aliases:4: NUL byte (not a "
	  "text file?)" },
	{ "root: a\001b@c\n", 0, "aliases:1: control character 0x01" },
	{ "root: a@b\rc@d\n", 0, "aliases:1: control character 0x0d" },
	{ "x: y@z\n\033[31m: a@b\n", 0, "aliases:2: control character 0x1b" },
};

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
		struct aliases *a = (struct aliases *)1;
		size_t len = err_cases[i].len ? err_cases[i].len :
			     strlen(err_cases[i].text);
		struct result r;
		int rc;

		result_clear(&r);
		rc = aliases_load_string(&a, err_cases[i].text, len, NULL, &r);
		ok(rc == -1 && a == NULL && r.exitcode == EX_DATAERR,
		   "error %zu: refused with EX_DATAERR", i);
		is_str(r.text, err_cases[i].want, "error %zu: message", i);
	}
}

/* ------------------------------------------------------------------ */
/* the skip report */

static void test_skip_report(void)
{
	const char *text = "# x\nroot: a@b,\n  |/usr/bin/procmail -a x\n";
	struct skips k = { 0 };
	struct result r;
	struct aliases *a = NULL;
	char buf[256];

	result_clear(&r);
	if (!ok(aliases_load_string(&a, text, strlen(text), "/etc/aliases",
				    &r) == 0, "skip report: loads"))
		return;
	is_str(expand_to(a, "ROOT", &k, buf, sizeof buf), "a@b",
	       "skip report: the address remains");
	is_int(k.n, 1, "skip report: called once");
	is_str(k.last.file, "/etc/aliases", "skip report: file");
	is_int(k.last.line, 3, "skip report: line of the entry");
	is_str(k.last.alias, "root", "skip report: alias");
	is_str(k.last.entry, "|/usr/bin/procmail -a x", "skip report: entry");
	is_str(k.last.why, "a relay client does not run commands",
	       "skip report: why");
	aliases_free(a);
}

/* ------------------------------------------------------------------ */
/* API edges */

static void test_api(void)
{
	struct addrlist out = { 0 };
	struct result r;
	struct aliases *a = load("root: a@b, c@d\nloop: |x\n", &r);

	ok(a != NULL, "api: loads");
	is_int(aliases_count(a), 2, "api: two entries");
	is_int(aliases_count(NULL), 0, "api: count of NULL");
	addrlist_add(&out, "first@x", NULL);
	is_int(aliases_expand(a, "root", &out, NULL, NULL, &r), 0,
	       "api: expand without a callback");
	is_int(out.n, 3, "api: appended after what was there");
	is_str(out.v[0].mailbox, "first@x", "api: earlier contents kept");
	is_str(out.v[2].mailbox, "c@d", "api: in order");
	ok(out.v[1].display == NULL, "api: no display name");
	is_int(aliases_expand(a, "loop", &out, NULL, NULL, &r), -1,
	       "api: failing expansion");
	is_int(out.n, 3, "api: out unchanged on failure");
	is_int(aliases_expand(a, "", &out, NULL, NULL, &r), -1,
	       "api: empty recipient refused");
	is_int(r.exitcode, EX_USAGE, "api: empty recipient is EX_USAGE");
	is_int(aliases_expand(NULL, "root", &out, NULL, NULL, &r), 0,
	       "api: no table: recipient passes through");
	is_str(out.v[3].mailbox, "root", "api: passed through unchanged");
	addrlist_free(&out);
	aliases_free(a);
	aliases_free(NULL);
	ok(1, "api: aliases_free(NULL)");

	a = load("", &r);
	ok(a != NULL && aliases_count(a) == 0, "api: empty text is an empty table");
	is_int(aliases_expand(a, "root", &out, NULL, NULL, &r), 0,
	       "api: empty table expands");
	is_str(out.n ? out.v[0].mailbox : NULL, "root", "api: to the bare name");
	addrlist_free(&out);
	aliases_free(a);
}

/* ------------------------------------------------------------------ */
/* depth limit */

static char *chain(size_t n, const char *end)
{
	size_t cap = n * 32 + 64, o = 0;
	char *s = malloc(cap);

	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "a%zu: a%zu\n", i, i + 1);
	snprintf(s + o, cap - o, "a%zu: %s\n", n, end);
	return s;
}

static void test_depth(void)
{
	char buf[512];
	struct result r;
	struct skips k = { 0 };
	char *t;
	struct aliases *a;

	/* a0 .. a19: twenty nested entries are allowed */
	t = chain(19, "end@x");
	a = load(t, &r);
	is_str(a ? expand_to(a, "a0", &k, buf, sizeof buf) : r.text, "end@x",
	       "depth: 20 nested aliases expand");
	aliases_free(a);
	free(t);

	t = chain(20, "end@x");
	a = load(t, &r);
	is_str(a ? expand_to(a, "a0", &k, buf, sizeof buf) : r.text,
	       "ERR 65: aliases: alias 'a0': nested more than 20 deep at 'a20' "
	       "(alias loop?)", "depth: 21 nested aliases refused");
	is_str(a ? expand_to(a, "a1", &k, buf, sizeof buf) : r.text, "end@x",
	       "depth: counted from the recipient, not the file");
	aliases_free(a);
	free(t);
}

/* ------------------------------------------------------------------ */
/* hostile input */

static char *big_line(size_t n, int distinct)
{
	size_t cap = n * 32 + 64, o = 0;
	char *s = malloc(cap);

	o += (size_t)snprintf(s, cap, "big: ");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "u%zu@example.org, ",
				      distinct ? i : 7);
	snprintf(s + o, cap - o, "\n");
	return s;
}

static void test_hostile(void)
{
	struct addrlist out = { 0 };
	struct result r;
	struct aliases *a;
	size_t n = 60000;
	char *t;

	/* a ~1 MB line of distinct addresses */
	t = big_line(n, 1);
	ok(strlen(t) > 1000000, "hostile: line of %zu bytes", strlen(t));
	a = load(t, &r);
	ok(a != NULL, "hostile: 1 MB line loads");
	is_int(a ? aliases_expand(a, "big", &out, NULL, NULL, &r) : -1, 0,
	       "hostile: 1 MB line expands");
	is_int(out.n, n, "hostile: every address once");
	is_str(out.n == n ? out.v[n - 1].mailbox : NULL, "u59999@example.org",
	       "hostile: order kept");
	addrlist_free(&out);
	aliases_free(a);
	free(t);

	/* the same address 60k times: deduplication must not be quadratic */
	t = big_line(n, 0);
	a = load(t, &r);
	is_int(a ? aliases_expand(a, "big", &out, NULL, NULL, &r) : -1, 0,
	       "hostile: repeated address expands");
	is_int(out.n, 1, "hostile: repeated address kept once");
	addrlist_free(&out);
	aliases_free(a);

	/* 1 MB without a colon: one short error line */
	memset(t, 'x', strlen(t) - 1);
	a = load(t, &r);
	ok(a == NULL && strncmp(r.text, "aliases:1: missing ':'", 22) == 0 &&
	   strlen(r.text) < 200, "hostile: 1 MB line without ':' (%zu bytes)",
	   strlen(r.text));
	/* 1 MB single address */
	memcpy(t, "big: ", 5);
	a = load(t, &r);
	ok(a == NULL && strstr(r.text, "longer than 998 bytes") &&
	   strlen(r.text) < 300, "hostile: 1 MB address refused: %s", r.text);
	free(t);

	/* a 1 MB name */
	t = malloc(1000010);
	memset(t, 'n', 1000000);
	strcpy(t + 1000000, ": a@b\n");
	a = load(t, &r);
	ok(a == NULL && strstr(r.text, "alias name longer than"),
	   "hostile: 1 MB name refused: %s", r.text);
	free(t);

	/* over the size limit, without reading a byte of it */
	result_clear(&r);
	a = (struct aliases *)1;
	is_int(aliases_load_string(&a, "", ALIASES_FILE_MAX + 1, "big", &r), -1,
	       "hostile: text over 4 MiB refused");
	ok(a == NULL && r.exitcode == EX_DATAERR, "hostile: as EX_DATAERR");
}

static double time_chain(size_t n, struct aliases **keep)
{
	struct result r;
	char *t = chain(n - 1, "end@x");
	double t0 = now();
	struct aliases *a = load(t, &r);
	double dt = now() - t0;

	free(t);
	if (keep)
		*keep = a;
	else
		aliases_free(a);
	return a ? dt : 1e9;
}

static void test_scale(void)
{
	struct skips k = { 0 };
	struct aliases *a = NULL;
	char buf[256];
	double t10k = 1e9, t100k = 1e9;

	/* best of a few runs: the first one pays for page faults */
	for (int i = 0; i < 3; i++) {
		double t = time_chain(10000, NULL);

		t10k = t < t10k ? t : t10k;
	}
	for (int i = 0; i < 2; i++) {
		double t;

		aliases_free(a);
		t = time_chain(100000, &a);
		t100k = t < t100k ? t : t100k;
	}
	ok(a != NULL && aliases_count(a) == 100000, "scale: 100k-entry chain loads");
	ok(RUNNING_ON_VALGRIND || t10k < 1.0, "scale: 10k entries in %.3f s%s",
	   t10k, RUNNING_ON_VALGRIND ? " # SKIP timing under valgrind" : "");
	/* 10x the entries: linear is ~10x (a little more once the pool leaves
	 * the cache), quadratic 100x.  A ratio survives valgrind and load. */
	ok(t100k < 40 * t10k + 0.05, "scale: 10x entries took %.1fx the time",
	   t100k / (t10k > 0 ? t10k : 1e-9));
	is_str(a ? expand_to(a, "a0", &k, buf, sizeof buf) : "",
	       "ERR 65: aliases: alias 'a0': nested more than 20 deep at 'a20' "
	       "(alias loop?)", "scale: head of the chain is too deep");
	is_str(a ? expand_to(a, "A99990", &k, buf, sizeof buf) : "", "end@x",
	       "scale: tail of the chain expands (case-insensitive)");
	is_str(a ? expand_to(a, "a100000", &k, buf, sizeof buf) : "",
	       "a100000", "scale: a name past the end stays bare");
	aliases_free(a);
}

/* ------------------------------------------------------------------ */
/* files */

static char *temp_file(const char *text, size_t len)
{
	char *path = strdup("/tmp/t_aliases.XXXXXX");
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
		free(path);
		return NULL;
	}
	close(fd);
	return path;
}

static void test_files(void)
{
	const char *text = "# /etc/aliases\r\nmailer-daemon: postmaster\r\n"
		"postmaster: root\r\nroot: admin@example.org\r\n";
	char buf[256], want[512];
	struct skips k = { 0 };
	struct result r;
	struct aliases *a = NULL;
	size_t count = 0;
	char *path = temp_file(text, strlen(text));

	ok(path != NULL, "file: created");
	if (!path)
		return;
	result_clear(&r);
	is_int(aliases_load_file(&a, path, &r), 0, "file: loads");
	is_int(aliases_count(a), 3, "file: three entries");
	is_str(a ? expand_to(a, "MAILER-DAEMON", &k, buf, sizeof buf) : "",
	       "admin@example.org", "file: expands through two aliases");
	aliases_free(a);
	is_int(aliases_check(path, &count, &r), 0, "file: newaliases check");
	is_int(count, 3, "file: newaliases counts entries");
	unlink(path);
	free(path);

	path = temp_file("a: b@c\nbroken\n", 14);
	is_int(aliases_check(path, NULL, &r), -1, "file: check finds the error");
	snprintf(want, sizeof want, "%s:2: missing ':' after the alias name in "
		 "'broken'", path ? path : "");
	is_str(r.text, want, "file: error names the file and line");
	if (path) {
		/* grown past the limit: refused from its size alone */
		ok(truncate(path, ALIASES_FILE_MAX + 1) == 0, "file: grown");
		a = (struct aliases *)1;
		is_int(aliases_load_file(&a, path, &r), -1, "file: over 4 MiB");
		ok(a == NULL && r.exitcode == EX_DATAERR, "file: as EX_DATAERR");
		ok(truncate(path, ALIASES_FILE_MAX) == 0, "file: shrunk");
		ok(aliases_load_file(&a, path, &r) == -1 &&
		   r.exitcode == EX_DATAERR && strstr(r.text, ":2: missing"),
		   "file: exactly 4 MiB is read (and parsed)");
		unlink(path);
	}
	free(path);

	result_clear(&r);
	a = (struct aliases *)1;
	is_int(aliases_load_file(&a, "/nonexistent/aliases", &r), -1,
	       "file: missing");
	ok(a == NULL && r.exitcode == EX_NOINPUT, "file: missing is EX_NOINPUT");
	is_str(r.text, "cannot open /nonexistent/aliases: No such file or "
	       "directory", "file: missing message");
	is_int(aliases_check("/tmp", NULL, &r), -1, "file: a directory");
	is_int(r.exitcode, EX_NOINPUT, "file: a directory is EX_NOINPUT");
}

int main(void)
{
	test_expand_table();
	test_errors();
	test_skip_report();
	test_api();
	test_depth();
	test_hostile();
	test_scale();
	test_files();
	return tap_done();
}
