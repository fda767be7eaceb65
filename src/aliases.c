/* aliases.c - /etc/aliases for a relay-only client (see aliases.h).
 *
 * Loading makes one pass over the text.  Each physical line is classified
 * (blank, comment, continuation, start of an entry); an entry's lines are
 * joined into one value buffer, with a mark per line so that a bad element
 * is reported on the line it is written on.  The value is cut into elements
 * at top-level commas and each element becomes one or more values.
 *
 * All strings live in one pool and all values in one array, so a 4 MiB file
 * of tiny entries costs a few large allocations, not millions of small ones.
 * Entries are sorted by name once at the end: lookups are binary searches
 * and duplicates are adjacent, so a 100k-entry file loads in O(n log n).
 */
#include "config.h"
#include "aliases.h"
#include "idn.h"
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum vkind {
	V_ADDR,     /* mailbox with a domain: final */
	V_NAME,     /* bare name: aliased again */
	V_LOCAL,    /* "\name": bare name, never aliased again */
	V_DISCARD,  /* /dev/null */
	V_SKIP,     /* |cmd, /file, :include: */
};

/* 16 bytes: "a,b,c," may be 4 MiB long and each value is two bytes there */
struct value {
	size_t text;            /* pool offset */
	unsigned line;
	unsigned char kind;     /* enum vkind */
	unsigned char why;      /* V_SKIP: index into unsupported[] */
};

struct entry {
	const char *name;   /* lower case; set once the pool stops moving */
	size_t name_off;
	size_t first, n;    /* its values: val[first .. first+n) */
	unsigned line;
};

struct aliases {
	char *file;
	char *pool;
	size_t pool_len, pool_cap;
	struct value *val;
	size_t nval, val_cap;
	struct entry *ent;
	size_t nent, ent_cap;
	const struct entry *dflt;  /* the "default" entry, or NULL */
};

/* Where each physical line starts inside the joined value. */
struct mark {
	size_t off;
	unsigned line;
};

struct loader {
	struct aliases *a;
	struct result *r;
	char *buf;              /* the current entry's value, lines joined */
	size_t len, cap;
	struct mark *mark;
	size_t nmark, mark_cap;
	int open;               /* an entry is being collected */
	unsigned line;          /* its first line */
};

/* ------------------------------------------------------------------ */
/* small helpers */

static int is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* ASCII only: names must not change meaning with the locale. */
static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static void trim(const char **p, size_t *n)
{
	while (*n && is_wsp((unsigned char)**p)) {
		++*p;
		--*n;
	}
	while (*n && is_wsp((unsigned char)(*p)[*n - 1]))
		--*n;
}

/* Grow the array *vp (elements of size sz, capacity *cap) to hold at least
 * want; doubling keeps the total copying linear however the file is shaped.
 * vp points to any object pointer: memcpy, not a cast, moves it, so no type
 * is accessed through another. */
static int grow(void *vp, size_t *cap, size_t want, size_t sz)
{
	size_t ncap = *cap ? *cap : 16;
	void *v, *nv;

	if (want <= *cap)
		return 0;
	while (ncap < want) {
		if (ncap > ((size_t)-1 / 2) / sz)
			return -1;
		ncap *= 2;
	}
	memcpy(&v, vp, sizeof v);
	nv = realloc(v, ncap * sz);
	if (!nv)
		return -1;
	memcpy(vp, &nv, sizeof nv);
	*cap = ncap;
	return 0;
}

/* A short printable excerpt of file bytes for a message: errors must stay
 * one readable line whatever the file holds. */
static const char *show(char *out, size_t cap, const char *p, size_t n)
{
	size_t max = cap > 4 ? cap - 4 : 0;

	if (n <= max || cap < 8) {
		result_sanitise(out, cap, p, n);
		return out;
	}
	result_sanitise(out, cap - 3, p, max);
	strcat(out, "...");
	return out;
}

/* ------------------------------------------------------------------ */
/* errors */

__attribute__((format(printf, 3, 4)))
static int lfail(struct loader *l, unsigned line, const char *fmt, ...)
{
	char msg[RESULT_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return result_fail(l->r, EX_DATAERR, "%s:%u: %s", l->a->file, line, msg);
}

static int oom(struct result *r)
{
	return result_fail(r, EX_OSERR, "out of memory");
}

/* ------------------------------------------------------------------ */
/* the table under construction */

/* Copy n bytes into the pool, NUL-terminated, lowered when asked.
 * Returns the offset, or (size_t)-1 without memory. */
static size_t pool_add(struct aliases *a, const char *p, size_t n, int low)
{
	size_t off = a->pool_len;

	if (grow(&a->pool, &a->pool_cap, a->pool_len + n + 1, 1) < 0)
		return (size_t)-1;
	for (size_t i = 0; i < n; i++)
		a->pool[off + i] = low ? (char)lower((unsigned char)p[i]) : p[i];
	a->pool[off + n] = '\0';
	a->pool_len += n + 1;
	return off;
}

static int add_value(struct loader *l, enum vkind kind, const char *p,
		     size_t n, unsigned line, unsigned why)
{
	struct aliases *a = l->a;
	struct value *v;
	size_t off;

	if (grow(&a->val, &a->val_cap, a->nval + 1, sizeof *a->val) < 0 ||
	    (off = pool_add(a, p, n, 0)) == (size_t)-1)
		return oom(l->r);
	v = &a->val[a->nval++];
	v->text = off;
	v->line = line;
	v->kind = (unsigned char)kind;
	v->why = (unsigned char)why;
	return 0;
}

/* ------------------------------------------------------------------ */
/* values */

/* Entries a relay client cannot honour.  sendmail and Postfix accept them
 * bare or inside a quoted string ("|cmd with args"). */
static const struct {
	const char *prefix;
	const char *why;
} unsupported[] = {
	{ "|", "a relay client does not run commands" },
	{ ":include:", "a relay client does not read :include: files" },
	{ "/", "a relay client does not write files" },
};

/* The inside of an element that is exactly one quoted string, or the
 * element itself. */
static void unquote(const char **p, size_t *n)
{
	size_t i;

	if (*n < 2 || (*p)[0] != '"')
		return;
	for (i = 1; i < *n && (*p)[i] != '"'; i++)
		if ((*p)[i] == '\\')
			i++;
	if (i == *n - 1) {
		++*p;
		*n -= 2;
	}
}

/* Classify |cmd, /file, :include: and /dev/null.  Returns 1 when the
 * element is one of them (*kind and *why set), 0 otherwise. */
static int special(const char *p, size_t n, enum vkind *kind, unsigned *why)
{
	unquote(&p, &n);
	if (n == 9 && memcmp(p, "/dev/null", 9) == 0) {
		*kind = V_DISCARD;
		return 1;
	}
	for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
		size_t k = strlen(unsupported[i].prefix);

		if (n >= k && strncasecmp(p, unsupported[i].prefix, k) == 0) {
			*kind = V_SKIP;
			*why = (unsigned)i;
			return 1;
		}
	}
	return 0;
}

/* "\name": sendmail's way to deliver to the mailbox without aliasing again
 * (root: \root, admin@x).  The backslash is not RFC 5322, so it is taken
 * off before the rest is checked like any other mailbox. */
static int add_escaped(struct loader *l, const char *p, size_t n,
		       unsigned line, const char *alias)
{
	char mbox[1000], ex[80];

	if (n - 1 >= sizeof mbox)
		return lfail(l, line, "alias '%s': address too long", alias);
	memcpy(mbox, p + 1, n - 1);
	mbox[n - 1] = '\0';
	if (!*mbox || !idn_valid_envelope(mbox))
		return lfail(l, line, "alias '%s': '%s' is not a valid local "
			     "name", alias, show(ex, sizeof ex, p, n));
	return add_value(l, addr_domain(mbox) ? V_ADDR : V_LOCAL, mbox,
			 n - 1, line, 0);
}

/* Addresses go through the RFC 5322 parser, so "A B" <a@b>, <a@b> and
 * comments work; what comes out must also be fit for RCPT TO. */
static int add_addresses(struct loader *l, const char *p, size_t n,
			 unsigned line, const char *alias)
{
	struct addrlist al = { 0 };
	char err[256], ex[80];
	int rc = -1;

	if (addr_parse_list(p, n, &al, err, sizeof err) < 0) {
		if (errno == ENOMEM)
			return oom(l->r);
		return lfail(l, line, "alias '%s': bad address '%s': %s", alias,
			     show(ex, sizeof ex, p, n), err);
	}
	for (size_t i = 0; i < al.n; i++) {
		const char *m = al.v[i].mailbox;

		/* fit for RCPT TO once its domain is in A-labels (issue 13) */
		if (!*m || !idn_valid_envelope(m)) {
			lfail(l, line, "alias '%s': '%s' is not a valid "
			      "recipient", alias, show(ex, sizeof ex, p, n));
			goto out;
		}
		if (add_value(l, addr_domain(m) ? V_ADDR : V_NAME, m,
			      strlen(m), line, 0) < 0)
			goto out;
	}
	rc = 0;
out:
	addrlist_free(&al);
	return rc;
}

static int add_element(struct loader *l, const char *p, size_t n,
		       unsigned line, const char *alias)
{
	enum vkind kind;
	unsigned why = 0;

	trim(&p, &n);
	if (n == 0)
		return 0;   /* "a, , b" and trailing commas, as sendmail */
	if (special(p, n, &kind, &why))
		return add_value(l, kind, p, n, line, why);
	if (p[0] == '\\')
		return add_escaped(l, p, n, line, alias);
	return add_addresses(l, p, n, line, alias);
}

/* Length of the element starting at s: up to the first comma outside
 * quotes, comments and <...>.  Unbalanced input runs to the end and the
 * address parser then says what is wrong. */
static size_t element_len(const char *s, size_t len)
{
	int quote = 0, paren = 0, angle = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '\\' && (quote || paren)) {
			i++;
			continue;
		}
		if (quote) {
			quote = c != '"';
		} else if (paren) {
			paren += (c == '(') - (c == ')');
		} else if (c == '"') {
			quote = 1;
		} else if (c == '(') {
			paren = 1;
		} else if (c == '<') {
			angle = 1;
		} else if (c == '>') {
			angle = 0;
		} else if (c == ',' && !angle) {
			break;
		}
	}
	return i < len ? i : len;
}

/* ------------------------------------------------------------------ */
/* entries */

/* Cut the joined value into elements; *mi walks the line marks forward, so
 * the whole entry costs one pass however many lines it spans. */
static int finish_entry(struct loader *l)
{
	struct aliases *a = l->a;
	struct entry *e = &a->ent[a->nent - 1];
	size_t pos = 0, mi = 0;
	char alias[80];

	/* a copy: adding values moves the pool */
	show(alias, sizeof alias, a->pool + e->name_off,
	     strlen(a->pool + e->name_off));

	l->open = 0;
	e->first = a->nval;
	while (pos <= l->len) {
		size_t n, start = pos;

		/* the element's line is where its first character is */
		while (start < l->len && is_wsp((unsigned char)l->buf[start]))
			start++;
		n = element_len(l->buf + start, l->len - start);
		while (mi + 1 < l->nmark && l->mark[mi + 1].off <= start)
			mi++;
		if (add_element(l, l->buf + start, n, l->mark[mi].line,
				alias) < 0)
			return -1;
		pos = start + n + 1;
	}
	e->n = a->nval - e->first;
	if (e->n == 0)
		return lfail(l, e->line, "alias '%s' has no value", alias);
	return 0;
}

static int add_text(struct loader *l, const char *p, size_t n, unsigned line)
{
	if (grow(&l->buf, &l->cap, l->len + n + 2, 1) < 0 ||
	    grow(&l->mark, &l->mark_cap, l->nmark + 1, sizeof *l->mark) < 0)
		return oom(l->r);
	/* Lines join with a space, as folding does in headers. */
	if (l->nmark)
		l->buf[l->len++] = ' ';
	l->mark[l->nmark].off = l->len;
	l->mark[l->nmark++].line = line;
	memcpy(l->buf + l->len, p, n);
	l->len += n;
	return 0;
}

/* A name is a local part: a dot-atom, or a quoted string (without ':'). */
static int check_name(struct loader *l, const char *p, size_t n,
		      unsigned line)
{
	char name[1000], ex[80];

	if (n == 0)
		return lfail(l, line, "empty alias name before ':'");
	if (n >= sizeof name)
		return lfail(l, line, "alias name longer than %zu bytes",
			     sizeof name - 1);
	memcpy(name, p, n);
	name[n] = '\0';
	if (addr_domain(name))
		return lfail(l, line, "alias name '%s' has a domain; only local "
			     "names are aliased", show(ex, sizeof ex, p, n));
	if (!addr_valid_mailbox(name))
		return lfail(l, line, "'%s' is not a valid alias name",
			     show(ex, sizeof ex, p, n));
	return 0;
}

static int start_entry(struct loader *l, const char *p, size_t n,
		       unsigned line)
{
	struct aliases *a = l->a;
	const char *colon = memchr(p, ':', n);
	const char *name = p;
	size_t nn, off;
	char ex[80];

	if (!colon)
		return lfail(l, line, "missing ':' after the alias name in '%s'",
			     show(ex, sizeof ex, p, n));
	nn = (size_t)(colon - p);
	trim(&name, &nn);
	if (check_name(l, name, nn, line) < 0)
		return -1;
	if (grow(&a->ent, &a->ent_cap, a->nent + 1, sizeof *a->ent) < 0 ||
	    (off = pool_add(a, name, nn, 1)) == (size_t)-1)
		return oom(l->r);
	memset(&a->ent[a->nent], 0, sizeof a->ent[0]);
	a->ent[a->nent].name_off = off;
	a->ent[a->nent++].line = line;
	l->open = 1;
	l->line = line;
	l->len = l->nmark = 0;
	return add_text(l, colon + 1, n - (size_t)(colon + 1 - p), line);
}

/* NUL means a binary file; other control characters would end up in error
 * messages or on the wire.  Tabs are whitespace. */
static int check_bytes(struct loader *l, const char *p, size_t n,
		       unsigned line)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\0')
			return lfail(l, line, "NUL byte (not a text file?)");
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return lfail(l, line, "control character 0x%02x", c);
	}
	return 0;
}

static int one_line(struct loader *l, const char *p, size_t n, unsigned line)
{
	size_t i = 0;

	if (n && p[n - 1] == '\r')
		n--;   /* CRLF files */
	if (memchr(p, '\0', n))
		return check_bytes(l, p, n, line);
	while (i < n && is_wsp((unsigned char)p[i]))
		i++;
	/* Postfix: blank and comment lines are skipped and do not end the
	 * entry being continued. */
	if (i == n || p[i] == '#')
		return 0;
	if (check_bytes(l, p, n, line) < 0)
		return -1;
	if (i > 0) {
		if (!l->open)
			return lfail(l, line, "continuation line (starting "
				     "with whitespace) without an alias before it");
		return add_text(l, p + i, n - i, line);
	}
	if (l->open && finish_entry(l) < 0)
		return -1;
	return start_entry(l, p, n, line);
}

static int parse_lines(struct loader *l, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	unsigned line = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (one_line(l, p, n, ++line) < 0)
			return -1;
		p += n + 1;
	}
	return l->open ? finish_entry(l) : 0;
}

/* ------------------------------------------------------------------ */
/* sorting, duplicates, lookup */

static int entry_cmp(const void *x, const void *y)
{
	const struct entry *a = x, *b = y;
	int c = strcmp(a->name, b->name);

	if (c)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

/* sendmail only warns about a duplicate and uses one of them; which one
 * depends on the database.  An error with both lines is kinder. */
static int check_duplicates(struct loader *l)
{
	const struct aliases *a = l->a;
	const struct entry *dup = NULL;
	char ex[80];

	for (size_t i = 1; i < a->nent; i++)
		if (strcmp(a->ent[i - 1].name, a->ent[i].name) == 0 &&
		    (!dup || a->ent[i].line < dup[1].line))
			dup = &a->ent[i - 1];
	if (!dup)
		return 0;
	return lfail(l, dup[1].line, "duplicate alias '%s' (first defined at "
		     "line %u)", show(ex, sizeof ex, dup[1].name,
				      strlen(dup[1].name)), dup[0].line);
}

/* Compare a caller's name (any case) with a stored, lowered one. */
static int name_cmp(const char *key, const char *name)
{
	const unsigned char *k = (const unsigned char *)key;
	const unsigned char *s = (const unsigned char *)name;

	while (*k && lower(*k) == *s) {
		k++;
		s++;
	}
	return lower(*k) - *s;
}

static const struct entry *lookup(const struct aliases *a, const char *key)
{
	size_t lo = 0, hi = a->nent;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(key, a->ent[mid].name);

		if (c == 0)
			return &a->ent[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int finalise(struct loader *l)
{
	struct aliases *a = l->a;

	for (size_t i = 0; i < a->nent; i++)
		a->ent[i].name = a->pool + a->ent[i].name_off;
	if (a->nent)
		qsort(a->ent, a->nent, sizeof *a->ent, entry_cmp);
	if (check_duplicates(l) < 0)
		return -1;
	a->dflt = lookup(a, "default");
	return 0;
}

/* ------------------------------------------------------------------ */
/* loading */

int aliases_load_string(struct aliases **out, const char *text, size_t len,
			const char *name, struct result *r)
{
	struct loader l = { .r = r };
	int rc = -1;

	*out = NULL;
	if (!name)
		name = "aliases";
	if (len > ALIASES_FILE_MAX)
		return result_fail(r, EX_DATAERR, "%s: larger than %u bytes",
				   name, ALIASES_FILE_MAX);
	l.a = calloc(1, sizeof *l.a);
	if (!l.a || !(l.a->file = strdup(name))) {
		oom(r);
		goto out;
	}
	if (parse_lines(&l, text, len) < 0 || finalise(&l) < 0)
		goto out;
	*out = l.a;
	l.a = NULL;
	rc = 0;
out:
	aliases_free(l.a);
	free(l.buf);
	free(l.mark);
	return rc;
}

/* Read all of fd into *buf, refusing more than ALIASES_FILE_MAX bytes (the
 * file may grow after fstat). */
static int read_all(int fd, const char *path, char **buf, size_t *len,
		    struct result *r)
{
	size_t cap = 0;
	ssize_t n;

	*buf = NULL;
	*len = 0;
	for (;;) {
		if (grow(buf, &cap, *len + 65536, 1) < 0)
			return oom(r);
		n = read(fd, *buf + *len, cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return result_fail(r, EX_IOERR, "cannot read %s: %s",
					   path, strerror(errno));
		if (n == 0)
			return 0;
		*len += (size_t)n;
		if (*len > ALIASES_FILE_MAX)
			return result_fail(r, EX_DATAERR, "%s: larger than %u "
					   "bytes", path, ALIASES_FILE_MAX);
	}
}

int aliases_load_file(struct aliases **out, const char *path,
		      struct result *r)
{
	struct stat st;
	char *buf = NULL;
	size_t len;
	int fd, rc = -1;

	*out = NULL;
	/* O_NONBLOCK: a FIFO in place of the file must not hang us */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return result_fail(r, EX_NOINPUT, "cannot open %s: %s", path,
				   strerror(errno));
	if (fstat(fd, &st) < 0) {
		result_fail(r, EX_NOINPUT, "cannot stat %s: %s", path,
			    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		result_fail(r, EX_NOINPUT, "%s: not a regular file", path);
		goto out;
	}
	/* whoever can change it chooses where mail goes (SPEC 7) */
	if (trust_check("aliases", path, &st, 0, r) < 0)
		goto out;
	if (st.st_size > (off_t)ALIASES_FILE_MAX) {
		result_fail(r, EX_DATAERR, "%s: larger than %u bytes", path,
			    ALIASES_FILE_MAX);
		goto out;
	}
	if (read_all(fd, path, &buf, &len, r) < 0)
		goto out;
	rc = aliases_load_string(out, buf, len, path, r);
out:
	free(buf);
	close(fd);
	return rc;
}

size_t aliases_count(const struct aliases *a)
{
	return a ? a->nent : 0;
}

int aliases_check(const char *path, size_t *count, struct result *r)
{
	struct aliases *a;

	if (aliases_load_file(&a, path, r) < 0)
		return -1;
	if (count)
		*count = a->nent;
	aliases_free(a);
	return 0;
}

void aliases_free(struct aliases *a)
{
	if (!a)
		return;
	free(a->file);
	free(a->pool);
	free(a->val);
	free(a->ent);
	free(a);
}

/* ------------------------------------------------------------------ */
/* expansion */

enum { UNSEEN, ACTIVE, DONE };

struct expander {
	const struct aliases *a;
	unsigned char *state;   /* per entry */
	const char **got;       /* results in order, duplicates included */
	size_t ngot, got_cap;
	size_t nskip;
	aliases_skip_fn *skip;
	void *arg;
	const char *top;
	struct result *r;
};

static int emit(struct expander *x, const char *mbox)
{
	if (grow(&x->got, &x->got_cap, x->ngot + 1, sizeof *x->got) < 0)
		return oom(x->r);
	x->got[x->ngot++] = mbox;
	return 0;
}

static void report_skip(struct expander *x, const struct entry *e,
			const struct value *v)
{
	struct aliases_skipped s = {
		.file = x->a->file, .line = v->line, .alias = e->name,
		.entry = x->a->pool + v->text, .why = unsupported[v->why].why,
	};

	x->nskip++;
	if (x->skip)
		x->skip(x->arg, &s);
}

static int expand_name(struct expander *x, const char *name, int depth,
		       int in_default);

static int expand_entry(struct expander *x, const struct entry *e,
			int depth, int in_default)
{
	const struct aliases *a = x->a;
	char top[80], at[80];

	if (depth > ALIASES_DEPTH_MAX)
		return result_fail(x->r, EX_DATAERR, "%s: alias '%s': nested "
				   "more than %d deep at '%s' (alias loop?)",
				   a->file,
				   show(top, sizeof top, x->top, strlen(x->top)),
				   ALIASES_DEPTH_MAX,
				   show(at, sizeof at, e->name, strlen(e->name)));
	x->state[e - a->ent] = ACTIVE;
	for (size_t i = e->first; i < e->first + e->n; i++) {
		const struct value *v = &a->val[i];
		const char *t = a->pool + v->text;
		int rc = 0;

		if (v->kind == V_ADDR || v->kind == V_LOCAL)
			rc = emit(x, t);
		else if (v->kind == V_NAME)
			rc = expand_name(x, t, depth + 1, in_default);
		else if (v->kind == V_SKIP)
			report_skip(x, e, v);
		if (rc < 0)
			return -1;
	}
	x->state[e - a->ent] = DONE;
	return 0;
}

/* An entry already ACTIVE closes a loop: deliver to the bare name, as
 * sendmail and Postfix deliver "root: root, x@y" to root's mailbox.  One
 * already DONE has put its results in the list already. */
static int expand_name(struct expander *x, const char *name, int depth,
		       int in_default)
{
	const struct entry *e = lookup(x->a, name);

	if (!e && !in_default)
		e = x->a->dflt;
	if (!e)
		return emit(x, name);
	if (x->state[e - x->a->ent] == ACTIVE)
		return emit(x, name);
	if (x->state[e - x->a->ent] == DONE)
		return 0;
	return expand_entry(x, e, depth, in_default || e == x->a->dflt);
}

struct sortkey {
	const char *s;
	size_t local;       /* length of the local part */
	const char *domain; /* NULL for a bare name */
	size_t idx;
};

/* RFC 5321 section 2.4: local parts are exact, domains case-insensitive. */
static int same_order(const struct sortkey *a, const struct sortkey *b)
{
	size_t n = a->local < b->local ? a->local : b->local;
	int c = memcmp(a->s, b->s, n);

	if (c == 0 && a->local != b->local)
		c = a->local < b->local ? -1 : 1;
	if (c == 0 && !a->domain != !b->domain)
		c = a->domain ? 1 : -1;
	if (c == 0 && a->domain)
		c = strcasecmp(a->domain, b->domain);
	return c;
}

/* Ties keep first-seen order, so the first occurrence survives. */
static int key_cmp(const void *x, const void *y)
{
	const struct sortkey *a = x, *b = y;
	int c = same_order(a, b);

	return c ? c : (a->idx < b->idx ? -1 : a->idx > b->idx);
}

/* Drop later duplicates from x->got in O(n log n): an alias may expand to
 * 100k addresses, where a pairwise search would take minutes. */
static int dedup(struct expander *x)
{
	struct sortkey *k;
	size_t n = 0;

	if (x->ngot < 2)
		return 0;
	k = calloc(x->ngot, sizeof *k);
	if (!k)
		return oom(x->r);
	for (size_t i = 0; i < x->ngot; i++) {
		const char *d = addr_domain(x->got[i]);

		k[i].s = x->got[i];
		k[i].local = d ? (size_t)(d - 1 - x->got[i]) : strlen(x->got[i]);
		k[i].domain = d;
		k[i].idx = i;
	}
	qsort(k, x->ngot, sizeof *k, key_cmp);
	for (size_t i = 1; i < x->ngot; i++)
		if (same_order(&k[i - 1], &k[i]) == 0)
			x->got[k[i].idx] = NULL;
	free(k);
	for (size_t i = 0; i < x->ngot; i++)
		if (x->got[i])
			x->got[n++] = x->got[i];
	x->ngot = n;
	return 0;
}

/* All or nothing: on failure out is as the caller left it. */
static int append_all(struct expander *x, struct addrlist *out)
{
	size_t n0 = out->n;

	for (size_t i = 0; i < x->ngot; i++) {
		if (addrlist_add(out, x->got[i], NULL) == 0)
			continue;
		addrlist_truncate(out, n0);
		return oom(x->r);
	}
	return 0;
}

int aliases_expand(const struct aliases *a, const char *local,
		   struct addrlist *out, aliases_skip_fn *skip, void *arg,
		   struct result *r)
{
	struct expander x = { .a = a, .skip = skip, .arg = arg, .top = local,
			      .r = r };
	char ex[80];
	int rc = -1;

	if (!*local)
		return result_fail(r, EX_USAGE, "empty recipient name");
	if (!a || addr_domain(local))
		return addrlist_add(out, local, NULL) < 0 ? oom(r) : 0;
	x.state = calloc(a->nent ? a->nent : 1, 1);
	if (!x.state)
		return oom(r);
	if (expand_name(&x, local, 1, 0) < 0 || dedup(&x) < 0)
		goto out;
	/* A cron job mailing root whose alias is only "|procmail" would lose
	 * every message without a trace; say so instead. */
	if (x.ngot == 0 && x.nskip > 0) {
		result_fail(r, EX_DATAERR, "%s: alias '%s' leaves no address "
			    "to deliver to (commands, files and :include: are "
			    "skipped)", a->file,
			    show(ex, sizeof ex, local, strlen(local)));
		goto out;
	}
	rc = append_all(&x, out);
out:
	free(x.state);
	free(x.got);
	return rc;
}
