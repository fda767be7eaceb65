/* address.c - RFC 5322 address-list parser and RFC 5321 mailbox check (pure).
 *
 * A small lexer turns the input into atoms (dots included, so "John Q." and
 * "a.b" are one token each), quoted strings, domain literals and specials,
 * dropping CFWS on the way; a recursive-descent parser on top of it knows
 * the three shapes an element can take (RFC 5322 section 3.4):
 *   words '@' domain          addr-spec
 *   words '<' ... '>'         name-addr (words are the display name)
 *   words ':' ... ';'         group (flattened)
 * Every address is at most ADDR_MAX bytes, so the parser works in fixed
 * buffers and allocates only for the result.
 */
#include "config.h"
#include "address.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 5322 section 2.1.1: no line exceeds 998 bytes, so neither can one
 * address; anything longer is an attack or garbage. */
#define ADDR_MAX 998

/* RFC 5321 section 4.5.3.1.3: a path is at most 256 bytes with its <>. */
#define PATH_MAX_LEN 254

enum tok_type { T_END, T_ATOM, T_QSTR, T_DLIT, T_SPEC };

struct tok {
	enum tok_type type;
	const char *p;  /* raw bytes (T_QSTR/T_DLIT: between the delimiters) */
	size_t n;
	int c;          /* T_SPEC: the character */
	size_t start, end; /* raw offsets of the whole token, delimiters included */
};

/* Where an addr-spec sits in the raw input, for addr_qualify_list: the end
 * of its local part, and its domain's span (both 0 when it has none). */
struct span {
	size_t local_end, dom_start, dom_end;
};

struct abuf {
	char s[ADDR_MAX + 1];
	size_t n;
};

struct parser {
	const char *s;
	size_t len, pos;
	struct tok t;         /* lookahead, valid when have_tok */
	int have_tok;
	int in_group;
	size_t last_end;      /* raw end of the last consumed token */
	struct span cur;      /* the addr-spec being read */
	struct span *spans;   /* one per result entry, when wanted */
	size_t nspans;
	int want_spans;
	char *err;
	size_t errcap;
	struct addrlist res;  /* moved to the caller's list only on success */
};

/* A sequence of words read as a local part and as a display name at once;
 * which one it was is known only from the special that follows. */
struct words {
	struct abuf local;    /* decoded, concatenated */
	struct abuf display;  /* decoded, joined by single spaces */
	size_t n;
	int want_word;        /* obs-local-part state: next must be a word */
	int bad;              /* two words without a dot, or an empty word */
	int quoted;           /* a quoted string was among them */
};

/* ------------------------------------------------------------------ */
/* character classes */

static int is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* RFC 5322 section 3.2.3 specials, without '.' (dots live inside atoms). */
static int is_special(int c)
{
	return c != '\0' && strchr("()<>[]:;@\\,\"", c) != NULL;
}

/* atext, plus UTF-8 bytes (RFC 6532 section 3.2; SMTPUTF8 decides later). */
static int is_atext(int c)
{
	if (c >= 0x80)
		return 1;
	return c > 0x20 && c < 0x7f && c != '.' && !is_special(c);
}

static int is_atom_char(int c)
{
	return c == '.' || is_atext(c);
}

/* ------------------------------------------------------------------ */
/* errors */

__attribute__((format(printf, 2, 3)))
static int fail(struct parser *ps, const char *fmt, ...)
{
	va_list ap;

	if (ps->err && ps->errcap) {
		va_start(ap, fmt);
		vsnprintf(ps->err, ps->errcap, fmt, ap);
		va_end(ap);
	}
	errno = EINVAL;
	return -1;
}

static int fail_char(struct parser *ps, unsigned char c)
{
	if (c == '\0')
		return fail(ps, "NUL byte in address (at byte %zu)", ps->pos);
	if (c == '\r' || c == '\n')
		return fail(ps, "line break not followed by whitespace in address "
			    "(at byte %zu)", ps->pos);
	return fail(ps, "control character 0x%02x in address (at byte %zu)",
		    c, ps->pos);
}

static int buf_add(struct parser *ps, struct abuf *b, const char *p, size_t n)
{
	if (n > ADDR_MAX - b->n)
		return fail(ps, "address longer than %d bytes", ADDR_MAX);
	memcpy(b->s + b->n, p, n);
	b->n += n;
	b->s[b->n] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* lexer */

/* At a CR or LF: RFC 5322 section 3.2.2 folding is a line break followed by
 * WSP; anything else would start a new header line (or an SMTP command,
 * "a@b\r\nRCPT TO:<x>"), so it is refused.  CRLF, LF and bare CR all count
 * as line breaks, as they do for the header block. */
static int skip_fold(struct parser *ps)
{
	size_t i = ps->pos;

	if (ps->s[i] == '\r' && i + 1 < ps->len && ps->s[i + 1] == '\n')
		i++;
	i++;
	if (i >= ps->len || !is_wsp((unsigned char)ps->s[i]))
		return fail_char(ps, (unsigned char)ps->s[ps->pos]);
	ps->pos = i;
	return 0;
}

/* Checks one byte inside a comment or quoted string: WSP and folds pass,
 * other controls do not.  Returns 1 when the byte was consumed here. */
static int inner_byte(struct parser *ps, unsigned char c)
{
	if (c == '\r' || c == '\n')
		return skip_fold(ps) < 0 ? -1 : 1;
	if (c == '\t')
		return 0;
	if (c < 0x20 || c == 0x7f)
		return fail_char(ps, c);
	return 0;
}

/* RFC 5322 section 3.2.1 quoted-pair: a backslash and one VCHAR or WSP. */
static int quoted_pair(struct parser *ps)
{
	unsigned char c;

	if (ps->pos + 1 >= ps->len)
		return fail(ps, "backslash at end of address");
	c = (unsigned char)ps->s[ps->pos + 1];
	if ((c < 0x20 && c != '\t') || c == 0x7f) {
		ps->pos++;
		return fail_char(ps, c);
	}
	ps->pos += 2;
	return 0;
}

/* Section 3.2.2: comments nest and may hold quoted-pairs. */
static int skip_comment(struct parser *ps)
{
	size_t start = ps->pos;
	int depth = 0;

	while (ps->pos < ps->len) {
		unsigned char c = (unsigned char)ps->s[ps->pos];
		int r;

		if (c == '\\') {
			if (quoted_pair(ps) < 0)
				return -1;
			continue;
		}
		if ((r = inner_byte(ps, c)) < 0)
			return -1;
		if (r)
			continue;
		if (c == '(')
			depth++;
		else if (c == ')' && --depth == 0) {
			ps->pos++;
			return 0;
		}
		ps->pos++;
	}
	ps->pos = start;
	return fail(ps, "unbalanced '(' in address (at byte %zu)", start);
}

static int skip_cfws(struct parser *ps)
{
	while (ps->pos < ps->len) {
		unsigned char c = (unsigned char)ps->s[ps->pos];

		if (is_wsp(c))
			ps->pos++;
		else if (c == '\r' || c == '\n') {
			if (skip_fold(ps) < 0)
				return -1;
		} else if (c == '(') {
			if (skip_comment(ps) < 0)
				return -1;
		} else
			break;
	}
	return 0;
}

/* Scans a quoted string or domain literal up to its closing delimiter. */
static int lex_delimited(struct parser *ps, struct tok *t, int close,
			 const char *what)
{
	size_t start = ps->pos;

	ps->pos++;
	t->p = ps->s + ps->pos;
	while (ps->pos < ps->len) {
		unsigned char c = (unsigned char)ps->s[ps->pos];
		int r;

		if (c == close) {
			t->n = (size_t)(ps->s + ps->pos - t->p);
			ps->pos++;
			return 0;
		}
		if (c == '\\' && close == '"') {
			if (quoted_pair(ps) < 0)
				return -1;
			continue;
		}
		if (close == ']' && (c == '[' || c == '\\'))
			return fail(ps, "'%c' inside domain literal", c);
		if ((r = inner_byte(ps, c)) < 0)
			return -1;
		if (!r)
			ps->pos++;
	}
	return fail(ps, "unterminated %s in address (at byte %zu)", what, start);
}

static int lex(struct parser *ps, struct tok *t)
{
	unsigned char c;

	if (skip_cfws(ps) < 0)
		return -1;
	memset(t, 0, sizeof *t);
	if (ps->pos >= ps->len) {
		t->type = T_END;
		return 0;
	}
	c = (unsigned char)ps->s[ps->pos];
	t->start = ps->pos;
	if (c == '"') {
		t->type = T_QSTR;
		return lex_delimited(ps, t, '"', "quoted string");
	}
	if (c == '[') {
		t->type = T_DLIT;
		return lex_delimited(ps, t, ']', "domain literal");
	}
	if (c == ')')
		return fail(ps, "unbalanced ')' in address (at byte %zu)", ps->pos);
	if (is_special(c)) {
		t->type = T_SPEC;
		t->c = c;
		t->p = ps->s + ps->pos++;
		t->n = 1;
		return 0;
	}
	if (!is_atom_char(c))
		return fail_char(ps, c);
	t->type = T_ATOM;
	t->p = ps->s + ps->pos;
	while (ps->pos < ps->len && is_atom_char((unsigned char)ps->s[ps->pos]))
		ps->pos++;
	t->n = (size_t)(ps->s + ps->pos - t->p);
	return 0;
}

static const struct tok *peek(struct parser *ps)
{
	if (!ps->have_tok) {
		if (lex(ps, &ps->t) < 0)
			return NULL;
		ps->t.end = ps->pos;
		ps->have_tok = 1;
	}
	return &ps->t;
}

static void consume(struct parser *ps)
{
	ps->last_end = ps->t.end;
	ps->have_tok = 0;
}

static int peek_spec(struct parser *ps, int c)
{
	const struct tok *t = peek(ps);

	return t && t->type == T_SPEC && t->c == c;
}

/* ------------------------------------------------------------------ */
/* words: local parts and display names */

/* Decoded content of a quoted string: quoted-pairs resolved, folds
 * unfolded (section 3.2.4: CRLF removed, the WSP after it kept). */
static int add_qstr(struct parser *ps, struct abuf *b, const struct tok *t)
{
	for (size_t i = 0; i < t->n; i++) {
		char c = t->p[i];

		if (c == '\r' || c == '\n')
			continue;
		if (c == '\\')
			c = t->p[++i];
		if (buf_add(ps, b, &c, 1) < 0)
			return -1;
	}
	return 0;
}

/* RFC 5322 section 4.4 obs-local-part: word *("." word), CFWS allowed
 * around the dots.  Tracks whether the words seen so far form one. */
static void track_dots(struct words *w, const struct tok *t)
{
	if (t->type == T_QSTR) {
		w->bad |= !w->want_word;
		w->want_word = 0;
		w->quoted = 1;
		return;
	}
	for (size_t i = 0; i < t->n; i++) {
		if (t->p[i] == '.') {
			w->bad |= w->want_word;
			w->want_word = 1;
		} else if (i == 0 || t->p[i - 1] == '.') {
			w->bad |= !w->want_word;
			w->want_word = 0;
		}
	}
}

static int read_words(struct parser *ps, struct words *w)
{
	const struct tok *t;

	memset(w, 0, sizeof *w);
	w->want_word = 1;
	while ((t = peek(ps)) && (t->type == T_ATOM || t->type == T_QSTR)) {
		if (w->n && buf_add(ps, &w->display, " ", 1) < 0)
			return -1;
		if (t->type == T_QSTR) {
			if (add_qstr(ps, &w->local, t) < 0 ||
			    add_qstr(ps, &w->display, t) < 0)
				return -1;
		} else if (buf_add(ps, &w->local, t->p, t->n) < 0 ||
			   buf_add(ps, &w->display, t->p, t->n) < 0)
			return -1;
		track_dots(w, t);
		w->n++;
		consume(ps);
	}
	return t ? 0 : -1;
}

static int local_ok(const struct words *w)
{
	return w->n && !w->bad && !w->want_word;
}

/* dot-atom (section 3.2.3): atext runs separated by single dots. */
static int is_dot_atom(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.' ? s[i + 1] == '.' : !is_atext(c))
			return 0;
	}
	return 1;
}

/* RFC 5321 section 4.1.2: a local part SHOULD be sent unquoted whenever it
 * can be, and quoted (with '"' and '\' escaped) only when it must be. */
static int put_local(struct parser *ps, struct abuf *out, const struct abuf *l)
{
	if (is_dot_atom(l->s, l->n))
		return buf_add(ps, out, l->s, l->n);
	if (buf_add(ps, out, "\"", 1) < 0)
		return -1;
	for (size_t i = 0; i < l->n; i++) {
		if ((l->s[i] == '"' || l->s[i] == '\\') &&
		    buf_add(ps, out, "\\", 1) < 0)
			return -1;
		if (buf_add(ps, out, l->s + i, 1) < 0)
			return -1;
	}
	return buf_add(ps, out, "\"", 1);
}

/* ------------------------------------------------------------------ */
/* domains and addr-specs */

/* A domain literal is kept as written, minus folding whitespace. */
static int put_literal(struct parser *ps, struct abuf *out, const struct tok *t)
{
	size_t before = out->n;

	if (buf_add(ps, out, "[", 1) < 0)
		return -1;
	for (size_t i = 0; i < t->n; i++)
		if (!is_wsp((unsigned char)t->p[i]) && t->p[i] != '\r' &&
		    t->p[i] != '\n' && buf_add(ps, out, t->p + i, 1) < 0)
			return -1;
	if (out->n == before + 1)
		return fail(ps, "empty domain literal in address");
	return buf_add(ps, out, "]", 1);
}

/* After '@': obs-domain, atoms and dots with optional CFWS between them,
 * or a domain literal. */
static int read_domain(struct parser *ps, struct abuf *out)
{
	const struct tok *t = peek(ps);
	struct words w;

	if (!t)
		return -1;
	if (t->type == T_DLIT) {
		consume(ps);
		return put_literal(ps, out, t);
	}
	if (t->type == T_QSTR)
		return fail(ps, "invalid domain (quoted string) in address");
	if (t->type != T_ATOM)
		return fail(ps, "'@' without domain in address");
	if (read_words(ps, &w) < 0)
		return -1;
	if (!local_ok(&w) || w.quoted || !is_dot_atom(w.local.s, w.local.n))
		return fail(ps, "invalid domain \"%s\" in address", w.display.s);
	return buf_add(ps, out, w.local.s, w.local.n);
}

/* words already read; an optional "@domain" follows. */
static int finish_spec(struct parser *ps, const struct words *w,
		       struct abuf *mbox)
{
	if (!local_ok(w))
		return fail(ps, "invalid local part \"%s\" in address "
			    "(spaces or dots need quotes)", w->display.s);
	if (put_local(ps, mbox, &w->local) < 0)
		return -1;
	ps->cur.local_end = ps->last_end;
	if (!peek_spec(ps, '@'))
		return ps->have_tok ? 0 : -1;
	consume(ps);
	if (buf_add(ps, mbox, "@", 1) < 0 || !peek(ps))
		return -1;
	ps->cur.dom_start = ps->t.start;
	if (read_domain(ps, mbox) < 0)
		return -1;
	ps->cur.dom_end = ps->last_end;
	return 0;
}

/* RFC 5322 section 4.4 obs-route: "@a,@b:" before the addr-spec; it is
 * obsolete routing information that RFC 5321 section C says to ignore. */
static int skip_route(struct parser *ps)
{
	struct abuf dummy = { .n = 0 };

	while (peek_spec(ps, '@') || peek_spec(ps, ',')) {
		int at = ps->t.c == '@';

		consume(ps);
		dummy.n = 0;
		if (at && read_domain(ps, &dummy) < 0)
			return -1;
	}
	if (!ps->have_tok)
		return -1;
	if (!peek_spec(ps, ':'))
		return fail(ps, "invalid source route in <...>");
	consume(ps);
	return 0;
}

/* After '<': "<>" (the null path), or [route] addr-spec '>'. */
static int read_angle(struct parser *ps, struct abuf *mbox)
{
	const struct tok *t;
	struct words w;

	if (peek_spec(ps, '>')) {
		consume(ps);
		return 0;
	}
	if (peek_spec(ps, '@') && skip_route(ps) < 0)
		return -1;
	if (!ps->have_tok && !peek(ps))
		return -1;
	if (read_words(ps, &w) < 0)
		return -1;
	if (!w.n)
		return ps->t.type == T_END ?
			fail(ps, "unbalanced '<' in address") :
			fail(ps, "missing local part in <...>");
	if (finish_spec(ps, &w, mbox) < 0 || !(t = peek(ps)))
		return -1;
	if (t->type == T_END)
		return fail(ps, "unbalanced '<' in address");
	if (t->type != T_SPEC || t->c != '>')
		return fail(ps, "unexpected text inside <...> (at byte %zu)",
			    (size_t)(t->p - ps->s));
	consume(ps);
	return 0;
}

/* ------------------------------------------------------------------ */
/* list */

static int push(struct parser *ps, const struct abuf *mbox, const char *disp)
{
	struct span *v = ps->spans;

	if (ps->want_spans && !(v = realloc(ps->spans, (ps->nspans + 1) * sizeof *v)))
		goto nomem;
	ps->spans = v;
	if (addrlist_add(&ps->res, mbox->s, disp) < 0)
		goto nomem;
	if (ps->want_spans)
		ps->spans[ps->nspans++] = ps->cur;
	return 0;
nomem:
	fail(ps, "out of memory");
	errno = ENOMEM;
	return -1;
}

/* An element ends at ',', ';' (group end) or the end of the input. */
static int expect_end(struct parser *ps, const char *after)
{
	const struct tok *t = peek(ps);

	if (!t)
		return -1;
	if (t->type == T_END || (t->type == T_SPEC && (t->c == ',' || t->c == ';')))
		return 0;
	if (t->type == T_SPEC && t->c == '>')
		return fail(ps, "unbalanced '>' in address");
	if (t->type == T_SPEC && t->c == '<')
		return fail(ps, "second '<' in one address");
	return fail(ps, "unexpected '%.*s' after %s (at byte %zu)",
		    (int)(t->n > 20 ? 20 : t->n), t->p, after,
		    (size_t)(t->p - ps->s));
}

static int start_group(struct parser *ps, const struct words *w)
{
	if (ps->in_group)
		return fail(ps, "group inside a group in address");
	if (!w->n)
		return fail(ps, "group without a name in address");
	consume(ps);
	ps->in_group = 1;
	return 0;
}

static int read_element(struct parser *ps)
{
	struct abuf mbox = { .n = 0 };
	struct words w;
	const struct tok *t;

	mbox.s[0] = '\0';
	memset(&ps->cur, 0, sizeof ps->cur);
	if (read_words(ps, &w) < 0 || !(t = peek(ps)))
		return -1;
	if (t->type == T_SPEC && t->c == ':')
		return start_group(ps, &w);
	if (t->type == T_SPEC && t->c == '<') {
		consume(ps);
		if (read_angle(ps, &mbox) < 0 || expect_end(ps, "'>'") < 0)
			return -1;
		return push(ps, &mbox, w.n && w.display.n ? w.display.s : NULL);
	}
	if (!w.n) {
		if (t->type == T_SPEC && t->c == '>')
			return fail(ps, "unbalanced '>' in address");
		if (t->type == T_SPEC && t->c == '@')
			return fail(ps, "missing local part before '@'");
		return fail(ps, "unexpected '%.*s' in address (at byte %zu)",
			    (int)t->n, t->p, (size_t)(t->p - ps->s));
	}
	if (!local_ok(&w) && !(t->type == T_SPEC && t->c == '@'))
		return fail(ps, "\"%s\" is not an address (no @ and no <...>)",
			    w.display.s);
	if (finish_spec(ps, &w, &mbox) < 0 || expect_end(ps, "address") < 0)
		return -1;
	return push(ps, &mbox, NULL);
}

static int read_list(struct parser *ps)
{
	const struct tok *t;

	while ((t = peek(ps)) && t->type != T_END) {
		if (t->type == T_SPEC && t->c == ',') {
			consume(ps);  /* empty elements: section 4.4 obs-addr-list */
		} else if (t->type == T_SPEC && t->c == ';') {
			if (!ps->in_group)
				return fail(ps, "';' outside a group in address "
					    "(separate addresses with ',')");
			consume(ps);
			ps->in_group = 0;
		} else if (read_element(ps) < 0)
			return -1;
	}
	/* A group left open at the end ("undisclosed-recipients:") is
	 * tolerated: the intent is plain and nothing is lost. */
	return t ? 0 : -1;
}

static int move_all(struct addrlist *dst, struct addrlist *src)
{
	if (dst->cap - dst->n < src->n) {
		size_t cap = dst->n + src->n;
		struct addr *v = realloc(dst->v, cap * sizeof *v);

		if (!v)
			return -1;
		dst->v = v;
		dst->cap = cap;
	}
	if (src->n)
		memcpy(dst->v + dst->n, src->v, src->n * sizeof *src->v);
	dst->n += src->n;
	free(src->v);
	free(src->slot);
	memset(src, 0, sizeof *src);
	return 0;
}

int addr_parse_list(const char *s, size_t len, struct addrlist *out,
		    char *err, size_t errcap)
{
	struct parser ps = { .s = s, .len = len, .err = err, .errcap = errcap };

	if (err && errcap)
		err[0] = '\0';
	if (read_list(&ps) < 0) {
		addrlist_free(&ps.res);
		return -1;
	}
	if (move_all(out, &ps.res) < 0) {
		addrlist_free(&ps.res);
		fail(&ps, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* lists */

int addrlist_add(struct addrlist *l, const char *mailbox, const char *display)
{
	struct addr a = { NULL, NULL };

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		struct addr *v = realloc(l->v, cap * sizeof *v);

		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	a.mailbox = strdup(mailbox);
	if (display)
		a.display = strdup(display);
	if (!a.mailbox || (display && !a.display)) {
		free(a.mailbox);
		free(a.display);
		return -1;
	}
	l->v[l->n++] = a;
	return 0;
}

/* RFC 5321 section 2.4: the local part is case-sensitive, the domain not. */
static int same_mailbox(const char *a, const char *b)
{
	const char *da = addr_domain(a), *db = addr_domain(b);
	size_t la = da ? (size_t)(da - a) : strlen(a);
	size_t lb = db ? (size_t)(db - b) : strlen(b);

	if (la != lb || memcmp(a, b, la) != 0 || !da != !db)
		return 0;
	return !da || strcasecmp(da, db) == 0;
}

/* FNV-1a over what same_mailbox compares: the local part as it is, the
 * domain folded to lower case. */
static size_t mailbox_hash(const char *m)
{
	const char *d = addr_domain(m);
	size_t h = (size_t)14695981039346656037ull;

	for (const char *p = m; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (d && p >= d && c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * (size_t)1099511628211ull;
	}
	return h;
}

static void index_drop(struct addrlist *l)
{
	free(l->slot);
	l->slot = NULL;
	l->nslots = l->indexed = 0;
}

/* Slot of mailbox in the index: the one holding it, or the empty one where
 * it would go.  Slots hold entry number + 1; 0 is empty. */
static size_t index_find(const struct addrlist *l, const char *mailbox)
{
	size_t mask = l->nslots - 1, i = mailbox_hash(mailbox) & mask;

	while (l->slot[i] && !same_mailbox(l->v[l->slot[i] - 1].mailbox, mailbox))
		i = (i + 1) & mask;
	return i;
}

/* Bring the index up to v[0..n): grown to keep it at most half full, and
 * rebuilt when the list shrank behind its back.  -1 without memory. */
static int index_update(struct addrlist *l)
{
	if (l->indexed > l->n)
		index_drop(l);
	if (2 * (l->n + 1) > l->nslots) {
		size_t want = 16;
		while (want < 2 * (l->n + 1))
			want *= 2;
		size_t *slot = calloc(want, sizeof *slot);
		if (!slot)
			return -1;
		free(l->slot);
		l->slot = slot;
		l->nslots = want;
		l->indexed = 0;
	}
	for (; l->indexed < l->n; l->indexed++) {
		size_t i = index_find(l, l->v[l->indexed].mailbox);
		if (!l->slot[i])   /* the first of equal entries is the one found */
			l->slot[i] = l->indexed + 1;
	}
	return 0;
}

int addrlist_contains(struct addrlist *l, const char *mailbox)
{
	if (index_update(l) < 0) {
		index_drop(l);
		for (size_t i = 0; i < l->n; i++)
			if (same_mailbox(l->v[i].mailbox, mailbox))
				return 1;
		return 0;
	}
	return l->slot[index_find(l, mailbox)] != 0;
}

void addrlist_truncate(struct addrlist *l, size_t n)
{
	while (l->n > n) {
		l->n--;
		free(l->v[l->n].mailbox);
		free(l->v[l->n].display);
	}
	index_drop(l);
}

void addrlist_free(struct addrlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].mailbox);
		free(l->v[i].display);
	}
	free(l->v);
	free(l->slot);
	memset(l, 0, sizeof *l);
}

const char *addr_domain(const char *mailbox)
{
	const char *at = NULL;
	int quoted = 0;

	for (const char *p = mailbox; *p; p++) {
		if (quoted && *p == '\\' && p[1])
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == '@' && !quoted)
			at = p;
	}
	return at ? at + 1 : NULL;
}

/* ------------------------------------------------------------------ */
/* local names and their qualification */

size_t addr_local_name(const char *mailbox, const char *const *local_domains)
{
	const char *d = addr_domain(mailbox);

	if (!*mailbox || (d && d == mailbox + 1))
		return 0;
	if (!d)
		return strlen(mailbox);
	for (size_t i = 0; local_domains && local_domains[i]; i++)
		if (*local_domains[i] && strcasecmp(d, local_domains[i]) == 0)
			return (size_t)(d - 1 - mailbox);
	return 0;
}

/* A local name that addr_qualify_list rewrites: one that is still a valid
 * path length (RFC 5321 4.5.3.1.3) once qualified; a longer one is no
 * address a relay would take either way, and is left as it is. */
static int qualifiable(const char *mailbox, const char *const *local_domains,
		       size_t dlen)
{
	size_t n = addr_local_name(mailbox, local_domains);

	return n && n + 1 + dlen <= PATH_MAX_LEN;
}

int addr_qualify_list(const char *s, size_t len, const char *domain,
		      const char *const *local_domains, char **out, size_t *outlen)
{
	struct parser ps = { .s = s, .len = len, .want_spans = 1 };
	size_t dlen = strlen(domain), cap = len + 1, o = 0, from = 0;
	char *buf = NULL;
	int changed = 0;

	*out = NULL;
	*outlen = 0;
	if (read_list(&ps) < 0) {   /* unparsable: left as it is */
		int rc = errno == ENOMEM ? -1 : 0;
		addrlist_free(&ps.res);
		free(ps.spans);
		return rc;
	}
	for (size_t i = 0; i < ps.nspans; i++)
		if (qualifiable(ps.res.v[i].mailbox, local_domains, dlen))
			cap += dlen + 1;
	if (!(buf = malloc(cap)))
		goto out;
	for (size_t i = 0; i < ps.nspans; i++) {
		const struct span *sp = &ps.spans[i];
		size_t at = sp->dom_end ? sp->dom_start : sp->local_end;

		if (!qualifiable(ps.res.v[i].mailbox, local_domains, dlen) || at < from)
			continue;
		memcpy(buf + o, s + from, at - from);   /* up to the edit, as it was */
		o += at - from;
		if (!sp->dom_end)
			buf[o++] = '@';
		memcpy(buf + o, domain, dlen);
		o += dlen;
		from = sp->dom_end ? sp->dom_end : sp->local_end;
		changed = 1;
	}
	memcpy(buf + o, s + from, len - from);
	o += len - from;
	buf[o] = '\0';
out:
	addrlist_free(&ps.res);
	free(ps.spans);
	if (!buf)
		return -1;
	if (!changed) {
		free(buf);
		return 0;
	}
	*out = buf;
	*outlen = o;
	return 1;
}

/* ------------------------------------------------------------------ */
/* RFC 5321 mailbox validation: the last gate before MAIL FROM / RCPT TO */

/* RFC 5321 section 4.1.2 Quoted-string with qtextSMTP and
 * quoted-pairSMTP (%d92 %d32-126), UTF-8 allowed per RFC 6531.
 * Returns the length including both quotes, or 0 when invalid. */
static size_t smtp_qstring(const char *s)
{
	size_t i = 1;

	for (; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"')
			return i + 1;
		if (c == '\\') {
			c = (unsigned char)s[++i];
			if (c < 0x20 || c > 0x7e)
				return 0;
		} else if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 0;
}

/* RFC 5321 section 4.1.3 address-literal, loosely: printable dtext. */
static int smtp_literal(const char *s)
{
	size_t n = strlen(s);

	if (n < 3 || s[0] != '[' || s[n - 1] != ']')
		return 0;
	for (size_t i = 1; i + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c > 0x7e || c == '[' || c == ']' || c == '\\')
			return 0;
	}
	return 1;
}

int addr_valid_mailbox(const char *s)
{
	size_t len = strlen(s), local;

	if (len == 0)
		return 1;
	if (len > PATH_MAX_LEN)
		return 0;
	if (s[0] == '"') {
		local = smtp_qstring(s);
		if (!local)
			return 0;
	} else {
		local = strcspn(s, "@");
		if (!is_dot_atom(s, local))
			return 0;
	}
	if (s[local] == '\0')
		return 1;
	if (s[local] != '@')
		return 0;
	s += local + 1;
	if (s[0] == '[')
		return smtp_literal(s);
	return is_dot_atom(s, strlen(s));
}
