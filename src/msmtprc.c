/* msmtprc.c - msmtp configuration -> pushmail INI (see msmtprc.h).
 *
 * Two passes.  The reader mirrors msmtp's conf.c: every account holds each
 * msmtp setting in a slot (its value, and whether the account or one of its
 * parents set it: msmtp's "mask"); a new account starts as a copy of the
 * defaults as they are at that line, and `account b : a` then copies only the
 * slots that a set, exactly like msmtp's override_account().  The writer then
 * walks one table, in pushmail's key order, saying how each slot becomes a
 * pushmail key or a "; msmtp:" comment.
 *
 * What is written must come back unchanged through pushmail's INI reader
 * (cfg.c, libinih): no control characters, at most CFG_LINE_MAX bytes a line,
 * '$' doubled and a leading '~' spelled out where pushmail would expand them
 * but msmtp did not, quotes where inih would strip blanks, and never a blank
 * followed by ';' in a value, which inih takes for the start of a comment.
 */
#include "config.h"
#include "msmtprc.h"
#include "sbuf.h"
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN 32   /* pushmail account names (cfg.c) */

/* ---- growable buffer ------------------------------------------------- */

static void buf_cat(struct sbuf *b, const struct sbuf *from)
{
	if (from->nomem)
		b->nomem = 1;
	else if (from->len)
		sbuf_add(b, from->s, from->len);
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Append one comment line.  The text is clipped to fit pushmail's line limit
 * and control characters are replaced, since pushmail refuses a file with
 * either, comments included. */
__attribute__((format(printf, 3, 0)))
static void vcomment(struct sbuf *b, const char *prefix, const char *fmt,
		     va_list ap)
{
	char text[CFG_LINE_MAX - 32];
	int n = vsnprintf(text, sizeof text, fmt, ap);

	if (n < 0)
		return;
	if ((size_t)n >= sizeof text)
		memcpy(text + sizeof text - 4, "...", 4);
	for (char *p = text; *p; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			*p = '?';
	sbuf_str(b, prefix);
	sbuf_str(b, text);
	sbuf_add(b, "\n", 1);
}

/* "; msmtp: ..." - a setting that did not carry over unchanged. */
__attribute__((format(printf, 2, 3)))
static void note(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vcomment(b, "; msmtp: ", fmt, ap);
	va_end(ap);
}

/* A plain comment. */
__attribute__((format(printf, 2, 3)))
static void remark(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vcomment(b, "; ", fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 3)))
static void warn(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vcomment(b, "; WARNING: ", fmt, ap);
	va_end(ap);
}

/* ---- name index (10k accounts must not be quadratic) ----------------- */

/* Open addressing; the keys are borrowed from the accounts. */
struct index {
	const char **key;
	size_t *val;
	size_t cap, n;
};

static size_t hash_str(const char *s)
{
	size_t h = 2166136261u;   /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static long index_get(const struct index *ix, const char *k)
{
	size_t m = ix->cap - 1;

	if (!ix->cap)
		return -1;
	for (size_t i = hash_str(k) & m; ix->key[i]; i = (i + 1) & m)
		if (strcmp(ix->key[i], k) == 0)
			return (long)ix->val[i];
	return -1;
}

static void index_place(const char **key, size_t *val, size_t cap,
			const char *k, size_t v)
{
	size_t i = hash_str(k) & (cap - 1);

	while (key[i])
		i = (i + 1) & (cap - 1);
	key[i] = k;
	val[i] = v;
}

/* Add k (not present yet).  Returns -1 on ENOMEM. */
static int index_put(struct index *ix, const char *k, size_t v)
{
	if (2 * (ix->n + 1) > ix->cap) {
		size_t cap = ix->cap ? 2 * ix->cap : 64;
		const char **key = calloc(cap, sizeof *key);
		size_t *val = calloc(cap, sizeof *val);

		if (!key || !val) {
			free(key);
			free(val);
			return -1;
		}
		for (size_t i = 0; i < ix->cap; i++)
			if (ix->key[i])
				index_place(key, val, cap, ix->key[i], ix->val[i]);
		free(ix->key);
		free(ix->val);
		ix->key = key;
		ix->val = val;
		ix->cap = cap;
	}
	index_place(ix->key, ix->val, ix->cap, k, v);
	ix->n++;
	return 0;
}

static void index_free(struct index *ix)
{
	free(ix->key);
	free(ix->val);
	memset(ix, 0, sizeof *ix);
}

/* ---- msmtp's settings --------------------------------------------------- */

enum slot {
	S_HOST, S_PORT, S_TIMEOUT, S_PROTOCOL, S_DOMAIN, S_AUTH, S_USER,
	S_PASSWORD, S_PASSWORDEVAL, S_NTLMDOMAIN, S_TLS, S_TLS_STARTTLS,
	S_TLS_TRUST_FILE, S_TLS_CRL_FILE, S_TLS_FINGERPRINT, S_TLS_KEY_FILE,
	S_TLS_CERT_FILE, S_TLS_CERTCHECK, S_TLS_PRIORITIES, S_TLS_HOST_OVERRIDE,
	S_TLS_MIN_DH_PRIME_BITS, S_TLS_FORCE_SSLV3, S_FROM,
	S_ALLOW_FROM_OVERRIDE, S_DSN_NOTIFY, S_DSN_RETURN, S_SET_FROM_HEADER,
	S_SET_DATE_HEADER, S_SET_MSGID_HEADER, S_REMOVE_BCC_HEADERS,
	S_UNDISCLOSED_RECIPIENTS, S_LOGFILE, S_LOGFILE_TIME_FORMAT, S_SYSLOG,
	S_ALIASES, S_AUTO_FROM, S_MAILDOMAIN, S_SOURCE_IP, S_PROXY_HOST,
	S_PROXY_PORT, S_SOCKET,
	S__COUNT
};

/* An accepted argument and the value stored for it; a NULL value is msmtp's
 * default (off / unset).  msmtp compares arguments case-sensitively, and
 * treats an empty argument as "on" wherever it accepts "on". */
struct word {
	const char *in, *out;
};
#define WORDS_END { NULL, NULL }

static const struct word w_on_off[] = {
	{ "", "on" }, { "on", "on" }, { "off", "off" }, WORDS_END };
/* tls_nocertcheck, tls_nostarttls (msmtp 1.2): no argument, mean "off" */
static const struct word w_flag_off[] = { { "", "off" }, WORDS_END };
static const struct word w_auth[] = {
	{ "", "on" }, { "on", "on" }, { "off", NULL },
	{ "plain", "plain" }, { "login", "login" }, { "cram-md5", "cram-md5" },
	{ "scram-sha-1", "scram-sha-1" }, { "scram-sha-256", "scram-sha-256" },
	{ "xoauth2", "xoauth2" }, { "oauthbearer", "oauthbearer" },
	{ "external", "external" }, { "gssapi", "gssapi" },
	{ "digest-md5", "digest-md5" }, { "ntlm", "ntlm" }, WORDS_END };
static const struct word w_protocol[] = {
	{ "smtp", NULL }, { "lmtp", "lmtp" }, WORDS_END };
static const struct word w_dsn_return[] = {
	{ "off", NULL }, { "headers", "headers" }, { "full", "full" }, WORDS_END };
static const struct word w_auto_on_off[] = {
	{ "", "on" }, { "auto", "auto" }, { "on", "on" }, { "off", "off" },
	WORDS_END };
static const struct word w_auto_off[] = {
	{ "", "auto" }, { "auto", "auto" }, { "off", "off" }, WORDS_END };
/* add_missing_{from,date}_header, kept by msmtp for old files */
static const struct word w_add_missing[] = {
	{ "", "auto" }, { "on", "auto" }, { "off", "off" }, WORDS_END };
/* keepbcc (msmtp 1.4) is the inverse of remove_bcc_headers */
static const struct word w_keepbcc[] = {
	{ "", "off" }, { "on", "off" }, { "off", "on" }, WORDS_END };
static const struct word w_syslog[] = {
	{ "", "LOG_USER" }, { "on", "LOG_USER" }, { "off", NULL },
	{ "LOG_USER", "LOG_USER" }, { "LOG_MAIL", "LOG_MAIL" },
	{ "LOG_LOCAL0", "LOG_LOCAL0" }, { "LOG_LOCAL1", "LOG_LOCAL1" },
	{ "LOG_LOCAL2", "LOG_LOCAL2" }, { "LOG_LOCAL3", "LOG_LOCAL3" },
	{ "LOG_LOCAL4", "LOG_LOCAL4" }, { "LOG_LOCAL5", "LOG_LOCAL5" },
	{ "LOG_LOCAL6", "LOG_LOCAL6" }, { "LOG_LOCAL7", "LOG_LOCAL7" },
	WORDS_END };

enum ckind {
	C_DEFAULTS, C_ACCOUNT, C_EVAL,
	C_TEXT,         /* any text; an empty argument unsets */
	C_KEEP,         /* any text; empty is a value (tls_trust_file: no CAs) */
	C_HOST,         /* text, required */
	C_WORDS,        /* one of a word list */
	C_PORT, C_TIMEOUT, C_NOTIFY, C_FINGERPRINT,
};

struct cmd {
	const char *name;
	enum ckind kind;
	enum slot slot;
	const struct word *words;
};

/* Every command msmtp 1.8 accepts, with its old aliases. */
static const struct cmd cmds[] = {
	{ "defaults", C_DEFAULTS, 0, NULL },
	{ "account", C_ACCOUNT, 0, NULL },
	{ "eval", C_EVAL, 0, NULL },
	{ "host", C_HOST, S_HOST, NULL },
	{ "port", C_PORT, S_PORT, NULL },
	{ "timeout", C_TIMEOUT, S_TIMEOUT, NULL },
	{ "connect_timeout", C_TIMEOUT, S_TIMEOUT, NULL },
	{ "protocol", C_WORDS, S_PROTOCOL, w_protocol },
	{ "domain", C_TEXT, S_DOMAIN, NULL },
	{ "auth", C_WORDS, S_AUTH, w_auth },
	{ "user", C_TEXT, S_USER, NULL },
	{ "password", C_TEXT, S_PASSWORD, NULL },
	{ "passwordeval", C_TEXT, S_PASSWORDEVAL, NULL },
	{ "ntlmdomain", C_TEXT, S_NTLMDOMAIN, NULL },
	{ "tls", C_WORDS, S_TLS, w_on_off },
	{ "tls_starttls", C_WORDS, S_TLS_STARTTLS, w_on_off },
	{ "tls_nostarttls", C_WORDS, S_TLS_STARTTLS, w_flag_off },
	{ "tls_trust_file", C_KEEP, S_TLS_TRUST_FILE, NULL },
	{ "tls_crl_file", C_TEXT, S_TLS_CRL_FILE, NULL },
	{ "tls_fingerprint", C_FINGERPRINT, S_TLS_FINGERPRINT, NULL },
	{ "tls_key_file", C_TEXT, S_TLS_KEY_FILE, NULL },
	{ "tls_cert_file", C_TEXT, S_TLS_CERT_FILE, NULL },
	{ "tls_certcheck", C_WORDS, S_TLS_CERTCHECK, w_on_off },
	{ "tls_nocertcheck", C_WORDS, S_TLS_CERTCHECK, w_flag_off },
	{ "tls_priorities", C_TEXT, S_TLS_PRIORITIES, NULL },
	{ "tls_host_override", C_TEXT, S_TLS_HOST_OVERRIDE, NULL },
	{ "tls_min_dh_prime_bits", C_TEXT, S_TLS_MIN_DH_PRIME_BITS, NULL },
	{ "tls_force_sslv3", C_WORDS, S_TLS_FORCE_SSLV3, w_on_off },
	{ "from", C_TEXT, S_FROM, NULL },
	{ "allow_from_override", C_WORDS, S_ALLOW_FROM_OVERRIDE, w_on_off },
	{ "dsn_notify", C_NOTIFY, S_DSN_NOTIFY, NULL },
	{ "dsn_return", C_WORDS, S_DSN_RETURN, w_dsn_return },
	{ "set_from_header", C_WORDS, S_SET_FROM_HEADER, w_auto_on_off },
	{ "add_missing_from_header", C_WORDS, S_SET_FROM_HEADER, w_add_missing },
	{ "set_date_header", C_WORDS, S_SET_DATE_HEADER, w_auto_off },
	{ "add_missing_date_header", C_WORDS, S_SET_DATE_HEADER, w_add_missing },
	{ "set_msgid_header", C_WORDS, S_SET_MSGID_HEADER, w_auto_off },
	{ "remove_bcc_headers", C_WORDS, S_REMOVE_BCC_HEADERS, w_on_off },
	{ "keepbcc", C_WORDS, S_REMOVE_BCC_HEADERS, w_keepbcc },
	{ "undisclosed_recipients", C_WORDS, S_UNDISCLOSED_RECIPIENTS, w_on_off },
	{ "logfile", C_TEXT, S_LOGFILE, NULL },
	{ "logfile_time_format", C_TEXT, S_LOGFILE_TIME_FORMAT, NULL },
	{ "syslog", C_WORDS, S_SYSLOG, w_syslog },
	{ "aliases", C_TEXT, S_ALIASES, NULL },
	{ "auto_from", C_WORDS, S_AUTO_FROM, w_on_off },
	{ "maildomain", C_TEXT, S_MAILDOMAIN, NULL },
	{ "source_ip", C_TEXT, S_SOURCE_IP, NULL },
	{ "proxy_host", C_TEXT, S_PROXY_HOST, NULL },
	{ "proxy_port", C_TEXT, S_PROXY_PORT, NULL },
	{ "socket", C_TEXT, S_SOCKET, NULL },
};

/* ---- converter state -------------------------------------------------- */

struct acct {
	char *name;                  /* as msmtp spells it */
	char *out;                   /* pushmail section name; NULL: none */
	char *parents;               /* "a, b" as resolved, or NULL */
	long line;                   /* of the account command */
	int skip;                    /* msmtp refuses it: not converted */
	int alias;                   /* `account default : x` that is just x */
	long parent;                 /* the only parent, or -1 */
	char *v[S__COUNT];           /* effective values; NULL: msmtp default */
	unsigned char set[S__COUNT]; /* set here or by a parent (msmtp's mask) */
	struct sbuf notes;            /* comments about this account's lines */
};

struct conv {
	struct acct defaults;
	struct acct *v;              /* accounts in file order */
	size_t n, cap;
	struct acct *cur;            /* where settings go; NULL before any */
	struct index byname;         /* msmtp name -> index (first definition) */
	struct index byout;          /* pushmail names in use */
	struct sbuf pre;              /* comments for the top of the output */
	struct sbuf out;              /* the account sections */
	const char *dflt;            /* default_account, or NULL */
	long line;
	int nomem;
	int has_password;
};

static int is(const char *v, const char *w)
{
	return v && strcmp(v, w) == 0;
}

static int blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Comments about the line being read go with its account; those about
 * top-level and defaults lines go to the top of the output. */
static struct sbuf *notes(struct conv *c)
{
	return c->cur && c->cur != &c->defaults ? &c->cur->notes : &c->pre;
}

static void set_slot(struct conv *c, struct acct *a, enum slot s,
		     const char *v)
{
	char *copy = NULL;

	if (v && !(copy = strdup(v))) {
		c->nomem = 1;
		return;
	}
	wipe_free(a->v[s]);
	a->v[s] = copy;
	a->set[s] = 1;
}

/* ---- reading: msmtp's argument rules ------------------------------------ */

/* msmtp's trim_string(): blanks off both ends, then one pair of enclosing
 * double quotes; there are no escapes.  out has room for n + 1 bytes. */
static void trim_arg(const char *s, size_t n, char *out)
{
	size_t b = 0, e = n;

	while (b < e && blank(s[b]))
		b++;
	while (e > b && blank(s[e - 1]))
		e--;
	if (e - b >= 2 && s[b] == '"' && s[e - 1] == '"') {
		b++;
		e--;
	}
	memcpy(out, s + b, e - b);
	out[e - b] = '\0';
}

/* msmtp's get_pos_int(): strtol base 0, so "0x24b" is 587 and "0587" is
 * octal; -1 unless 1..INT_MAX with nothing after it. */
static long pos_int(const char *s)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(s, &end, 0);
	if (end == s || *end || errno || x <= 0 || x > INT_MAX)
		return -1;
	return x;
}

static int word_find(const struct word *w, const char *arg, const char **v)
{
	for (; w->in; w++) {
		if (strcmp(w->in, arg) == 0) {
			*v = w->out;
			return 0;
		}
	}
	return -1;
}

/* RFC 3461 NOTIFY as msmtp checks it: "never", or a comma list (no blanks)
 * of distinct success, failure and delay. */
static int notify_ok(const char *v)
{
	static const char *const words[] = { "success", "failure", "delay" };
	unsigned seen = 0;

	if (strcmp(v, "never") == 0)
		return 1;
	for (;;) {
		size_t n = strcspn(v, ","), i;

		for (i = 0; i < 3; i++)
			if (strlen(words[i]) == n && memcmp(words[i], v, n) == 0)
				break;
		if (i == 3 || (seen & (1u << i)))
			return 0;
		seen |= 1u << i;
		if (!v[n])
			return 1;
		v += n + 1;
	}
}

static int hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
	       (ch >= 'A' && ch <= 'F');
}

/* msmtp's fingerprint syntax: SHA256, SHA1 or MD5 as colon-separated hex
 * pairs; stored in capitals, as msmtp --serverinfo prints them. */
static int fingerprint(const char *v, char *out)
{
	size_t n = strlen(v), bytes = (n + 1) / 3;

	if (n != 95 && n != 59 && n != 47)
		return -1;
	for (size_t i = 0; i < bytes; i++)
		if (!hex(v[3 * i]) || !hex(v[3 * i + 1]) ||
		    (i + 1 < bytes && v[3 * i + 2] != ':'))
			return -1;
	for (size_t i = 0; i <= n; i++)
		out[i] = (v[i] >= 'a' && v[i] <= 'f') ? (char)(v[i] - 32) : v[i];
	return 0;
}

/* The value to store for arg (*v; NULL means msmtp's default), with val as
 * scratch space of MSMTPRC_LINE_MAX + 1 bytes.  -1: msmtp refuses arg. */
static int check_arg(const struct cmd *d, const char *arg, char *val,
		     const char **v)
{
	long x;

	*v = arg;
	switch (d->kind) {
	case C_TEXT:
		if (!*arg)
			*v = NULL;
		return 0;
	case C_HOST:
		return *arg ? 0 : -1;
	case C_WORDS:
		return word_find(d->words, arg, v);
	case C_PORT:
	case C_TIMEOUT:
		if (d->kind == C_TIMEOUT && strcmp(arg, "off") == 0) {
			*v = NULL;
			return 0;
		}
		x = pos_int(arg);
		if (x < 1 || (d->kind == C_PORT && x > 65535))
			return -1;
		snprintf(val, MSMTPRC_LINE_MAX + 1, "%ld", x);
		*v = val;
		return 0;
	case C_NOTIFY:
		if (strcmp(arg, "off") == 0)
			*v = NULL;
		return strcmp(arg, "off") == 0 || notify_ok(arg) ? 0 : -1;
	case C_FINGERPRINT:
		if (!*arg) {
			*v = NULL;
			return 0;
		}
		*v = val;
		return fingerprint(arg, val);
	default:
		return 0;
	}
}

/* ---- reading: accounts -------------------------------------------------- */

static struct acct *new_account(struct conv *c, const char *name)
{
	struct acct *a;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		struct acct *v = realloc(c->v, cap * sizeof *v);

		if (!v) {
			c->nomem = 1;
			return NULL;
		}
		c->v = v;
		c->cap = cap;
	}
	a = &c->v[c->n];
	memset(a, 0, sizeof *a);
	a->parent = -1;
	a->line = c->line;
	if (!(a->name = strdup(name))) {
		c->nomem = 1;
		return NULL;
	}
	c->n++;
	c->cur = a;
	/* msmtp: "The current default values are filled in." */
	for (int s = 0; s < S__COUNT; s++)
		if (c->defaults.v[s] && !(a->v[s] = strdup(c->defaults.v[s])))
			c->nomem = 1;
	return a;
}

/* Copy what parent p set - not what it got from the defaults of its time,
 * which is what msmtp's override_account() does too. */
static void inherit(struct conv *c, struct acct *a, const struct acct *p)
{
	for (int s = 0; s < S__COUNT; s++)
		if (p->set[s])
			set_slot(c, a, (enum slot)s, p->v[s]);
}

/* One name of `account x : a, b`; returns the number of parents resolved. */
static size_t add_parent(struct conv *c, struct acct *a, const char *name,
			 size_t count, struct sbuf *list)
{
	long p = index_get(&c->byname, name);

	if (!*name) {
		note(&a->notes, "line %ld: empty name in the accounts to inherit "
		     "from (msmtp refuses this)", c->line);
		return count;
	}
	if (p < 0) {
		note(&a->notes, "line %ld: account '%s' to inherit from is not "
		     "defined before this line (msmtp refuses this); ignored",
		     c->line, name);
		return count;
	}
	inherit(c, a, &c->v[p]);
	a->parent = count == 0 ? p : -1;
	sbuf_str(list, count ? ", " : "");
	sbuf_str(list, name);
	return count + 1;
}

static void inherit_list(struct conv *c, struct acct *a, char *s)
{
	char name[MSMTPRC_LINE_MAX + 1];
	struct sbuf list = { 0 };
	size_t count = 0;

	for (;;) {
		char *comma = strchr(s, ',');

		if (comma)
			*comma = '\0';
		trim_arg(s, strlen(s), name);
		count = add_parent(c, a, name, count, &list);
		if (!comma)
			break;
		s = comma + 1;
	}
	if (list.nomem)
		c->nomem = 1;
	else if (list.len && !(a->parents = strdup(list.s)))
		c->nomem = 1;
	sbuf_free(&list);
}

/* `account NAME` or `account NAME : PARENT[, ...]` (arg is writable). */
static void cmd_account(struct conv *c, char *arg)
{
	char name[MSMTPRC_LINE_MAX + 1], *colon = strchr(arg, ':');
	struct acct *a;
	long first;

	if (colon)
		*colon = '\0';
	if (colon)
		trim_arg(arg, strlen(arg), name);
	else
		memcpy(name, arg, strlen(arg) + 1);
	first = index_get(&c->byname, name);
	if (!(a = new_account(c, name)))
		return;
	if (colon)
		inherit_list(c, a, colon + 1);
	if (!*name || strchr(name, ',')) {
		note(&a->notes, "line %ld: account '%s' skipped: msmtp refuses "
		     "an empty account name or one with a comma", c->line, name);
		a->skip = 1;
	} else if (first >= 0) {
		note(&a->notes, "line %ld: account '%s' skipped: it was already "
		     "defined at line %ld, which msmtp refuses", c->line, name,
		     c->v[first].line);
		a->skip = 1;
	} else if (index_put(&c->byname, a->name, c->n - 1) < 0) {
		c->nomem = 1;
	}
}

/* msmtp 1.2 compatibility: settings before any `account` or `defaults`
 * line form an account named "default". */
static struct acct *scope(struct conv *c)
{
	if (!c->cur) {
		char name[] = "default";

		cmd_account(c, name);
	}
	return c->cur;
}

static void cmd_setting(struct conv *c, const struct cmd *d, const char *arg)
{
	char val[MSMTPRC_LINE_MAX + 1];
	struct acct *a = scope(c);
	const char *v;

	if (!a)
		return;
	if (check_arg(d, arg, val, &v) < 0)
		note(notes(c), "line %ld: msmtp refuses '%s %s'; ignored", c->line,
		     d->name, arg);
	else
		set_slot(c, a, d->slot, v);
	explicit_bzero(val, sizeof val);
}

/* ---- reading: lines ------------------------------------------------------ */

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static int has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return 1;
	}
	return 0;
}

/* A command msmtp does not have (or that pushmail cannot follow).  The line
 * is quoted so the user sees what was dropped - unless it looks like a
 * misspelt password. */
static void unknown(struct conv *c, const char *cmd, const char *line, size_t n)
{
	while (n && blank(line[n - 1]))
		n--;
	if (strstr(cmd, "pass") || strstr(cmd, "PASS") || strstr(cmd, "Pass"))
		note(notes(c), "line %ld: %s ... (no equivalent; argument not "
		     "shown)", c->line, cmd);
	else
		note(notes(c), "%.*s (no equivalent)", (int)n, line);
}

static void dispatch(struct conv *c, const char *cmd, char *arg,
		     const char *line, size_t n)
{
	const struct cmd *d = find_cmd(cmd);

	if (!d) {
		unknown(c, cmd, line, n);
	} else if (d->kind == C_ACCOUNT) {
		cmd_account(c, arg);
	} else if (d->kind == C_DEFAULTS) {
		if (*arg)
			note(notes(c), "line %ld: msmtp refuses an argument to "
			     "defaults; ignored", c->line);
		c->cur = &c->defaults;
	} else if (d->kind == C_EVAL) {
		note(notes(c), "line %ld: eval ... (no equivalent: pushmail runs "
		     "no commands while reading its configuration; write the "
		     "setting itself, or use password_command for a password)",
		     c->line);
	} else {
		cmd_setting(c, d, arg);
	}
}

static void read_line(struct conv *c, const char *s, size_t n)
{
	char cmd[MSMTPRC_LINE_MAX + 1], arg[MSMTPRC_LINE_MAX + 1];
	size_t i = 0, k;

	while (i < n && blank(s[i]))
		i++;
	if (i == n || s[i] == '#')
		return;   /* msmtp: blank line or comment */
	if (n > MSMTPRC_LINE_MAX) {
		note(notes(c), "line %ld is longer than %d bytes, which msmtp "
		     "refuses; skipped", c->line, MSMTPRC_LINE_MAX);
		return;
	}
	/* pushmail cannot hold control characters in any value, and msmtp
	 * would cut the line at a NUL: never guess which part was meant */
	if (has_control(s, n)) {
		note(notes(c), "line %ld holds a NUL byte or control character; "
		     "skipped", c->line);
		return;
	}
	for (k = i; k < n && !blank(s[k]); k++)
		;
	memcpy(cmd, s + i, k - i);
	cmd[k - i] = '\0';
	trim_arg(s + k, n - k, arg);
	dispatch(c, cmd, arg, s + i, n - i);
	explicit_bzero(arg, sizeof arg);
}

static void read_text(struct conv *c, const char *text, size_t len)
{
	size_t pos = 0;

	while (pos < len && !c->nomem) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;

		pos += n + (nl != NULL);
		c->line++;
		if (n && s[n - 1] == '\r')
			n--;   /* CRLF files */
		read_line(c, s, n);
	}
}

/* ---- writing values ------------------------------------------------- */

enum vkind {
	V_TEXT,      /* pushmail expands '~' and '$' in it; msmtp did not */
	V_PATH,      /* msmtp replaced a leading '~' with $HOME */
	V_LITERAL,   /* password, password_command: taken as written */
};

/* inih ends a value at a blank followed by ';', quoted or not (cfg.c refuses
 * the quoted case), so such a value cannot be written at all. */
static int comment_cut(const char *s)
{
	for (size_t i = 1; s[i]; i++)
		if (s[i] == ';' && blank(s[i - 1]))
			return 1;
	return 0;
}

/* inih strips blanks around a value and cfg.c unquotes a leading '"'; a
 * leading ';' follows the blank after '=' and would start a comment. */
static int needs_quotes(const char *s)
{
	size_t n = strlen(s);

	return blank(s[0]) || s[0] == '"' || s[0] == ';' || blank(s[n - 1]);
}

/* The pushmail spelling of v in o, or the reason there is none. */
static const char *encode(const char *key, const char *v, enum vkind k,
			  struct sbuf *o)
{
	struct sbuf t = { 0 };
	const char *why = NULL;

	if (!*v)
		return "it is empty";   /* pushmail refuses empty values */
	if (k == V_TEXT && v[0] == '~' && (v[1] == '/' || !v[1]))
		return "it starts with '~', which pushmail would replace with "
		       "your home directory";
	if (k == V_PATH && v[0] == '~' && v[1] != '/' && v[1]) {
		sbuf_str(&t, "${HOME}");   /* msmtp: "~x" is $HOME then "x" */
		v++;
	}
	for (; *v; v++)
		sbuf_add(&t, k != V_LITERAL && *v == '$' ? "$$" : v,
			k != V_LITERAL && *v == '$' ? 2 : 1);
	if (t.nomem) {
		o->nomem = 1;
	} else if (comment_cut(t.s)) {
		why = "it contains a blank followed by ';', where pushmail's "
		      "INI format starts a comment";
	} else if (needs_quotes(t.s)) {
		sbuf_add(o, "\"", 1);
		for (const char *s = t.s; *s; s++)
			sbuf_add(o, *s == '"' ? "\\\"" : *s == '\\' ? "\\\\" : s,
				*s == '"' || *s == '\\' ? 2 : 1);
		sbuf_add(o, "\"", 1);
	} else {
		sbuf_str(o, t.s);
	}
	if (!why && strlen(key) + 3 + o->len > CFG_LINE_MAX)
		why = "the line would be longer than pushmail accepts";
	sbuf_free(&t);
	return why;
}

static void put_line(struct conv *c, const char *key, const struct sbuf *val)
{
	sbuf_str(&c->out, key);
	sbuf_add(&c->out, " = ", 3);
	buf_cat(&c->out, val);
	sbuf_add(&c->out, "\n", 1);
}

static void put(struct conv *c, const char *key, const char *v, enum vkind k)
{
	struct sbuf o = { 0 };
	const char *why = encode(key, v, k, &o);

	if (why)
		note(&c->out, "%s = %s not converted: %s", key, v, why);
	else
		put_line(c, key, &o);
	if (o.nomem)
		c->nomem = 1;
	sbuf_free(&o);
}

/* ---- writing accounts: one row per pushmail key ---------------------- */

struct row;
typedef void emit_fn(struct conv *c, const struct acct *a, const struct row *m);

struct row {
	const char *key;   /* pushmail key */
	enum slot slot;
	enum vkind kind;
	emit_fn *fn;       /* NULL: write the value when it is set */
};

static int tls_mode(const struct acct *a)
{
	if (!is(a->v[S_TLS], "on"))
		return CFG_TLS_OFF;
	return is(a->v[S_TLS_STARTTLS], "off") ? CFG_TLS_IMPLICIT
					       : CFG_TLS_STARTTLS;
}

/* '%' followed by one of `letters`: msmtp substitutions (1.8.16). */
static int has_subst(const char *v, const char *letters)
{
	for (const char *p = strchr(v, '%'); p; p = strchr(p + 1, '%'))
		if (p[1] && strchr(letters, p[1]))
			return 1;
	return 0;
}

static void em_copy(struct conv *c, const struct acct *a, const struct row *m)
{
	if (a->v[m->slot])
		put(c, m->key, a->v[m->slot], m->kind);
}

/* Always written: msmtp's default is 25 even with STARTTLS, pushmail's 587. */
static void em_port(struct conv *c, const struct acct *a, const struct row *m)
{
	const char *p = a->v[S_PORT];

	if (!p)
		p = tls_mode(a) == CFG_TLS_IMPLICIT ? "465" : "25";
	put(c, m->key, p, V_TEXT);
}

/* Always written: msmtp's default is tls off, pushmail's starttls. */
static void em_tls(struct conv *c, const struct acct *a, const struct row *m)
{
	static const char *const mode[] = {
		[CFG_TLS_OFF] = "off", [CFG_TLS_STARTTLS] = "starttls",
		[CFG_TLS_IMPLICIT] = "implicit" };
	int t = tls_mode(a);

	if (t == CFG_TLS_OFF)
		warn(&c->out, "msmtp sent this account's mail unencrypted (%s), "
		     "and so will pushmail: use tls = starttls or implicit if "
		     "the relay offers TLS", a->v[S_TLS] ? "tls off"
		     : "no 'tls on', and msmtp's default is off");
	put(c, m->key, mode[t], V_TEXT);
}

static void em_trust(struct conv *c, const struct acct *a, const struct row *m)
{
	const char *v = a->v[S_TLS_TRUST_FILE];

	if (!v)
		return;   /* msmtp's default, "system", is pushmail's too */
	if (!*v) {
		note(&c->out, "tls_trust_file is empty (msmtp trusted no CA); "
		     "pushmail uses the system trust store%s",
		     a->v[S_TLS_FINGERPRINT] ? " unless tls_fingerprint pins the "
		     "relay" : "");
		return;
	}
	put(c, m->key, v, V_PATH);
}

static void em_fingerprint(struct conv *c, const struct acct *a,
			   const struct row *m)
{
	const char *v = a->v[S_TLS_FINGERPRINT];
	char pin[sizeof "sha256:" + 95];

	if (!v)
		return;
	if (strlen(v) != 95) {
		note(&c->out, "tls_fingerprint %s is %s; pushmail pins SHA-256 "
		     "only: get it with pushmail --serverinfo and set "
		     "tls_fingerprint = sha256:...", v,
		     strlen(v) == 59 ? "SHA-1" : "MD5");
		return;
	}
	snprintf(pin, sizeof pin, "sha256:%s", v);
	put(c, m->key, pin, V_TEXT);
}

static void em_certcheck(struct conv *c, const struct acct *a,
			 const struct row *m)
{
	if (is(a->v[S_TLS_CERTCHECK], "off"))
		note(&c->out, "tls_certcheck off: pushmail always verifies the "
		     "relay's certificate; use tls_fingerprint to pin one that "
		     "does not verify");
}

/* Always written: msmtp's default is off even with a user, pushmail's auto. */
static void em_auth(struct conv *c, const struct acct *a, const struct row *m)
{
	const char *v = a->v[S_AUTH];

	if (!v) {
		if (a->v[S_USER] || a->v[S_PASSWORD] || a->v[S_PASSWORDEVAL])
			note(&c->out, "no 'auth on', so msmtp did not authenticate "
			     "and neither will pushmail: set auth = auto to use "
			     "the user and password below");
		put(c, m->key, "off", V_TEXT);
		return;
	}
	if (is(v, "on")) {
		v = "auto";
	} else if (is(v, "digest-md5") || is(v, "ntlm")) {
		note(&c->out, "auth %s is unsupported by pushmail; auto chooses "
		     "the strongest mechanism the relay offers", v);
		v = "auto";
	}
	put(c, m->key, v, V_TEXT);
	if (tls_mode(a) == CFG_TLS_OFF)
		note(&c->out, "msmtp authenticated without TLS here; pushmail "
		     "refuses to unless allow_plaintext_auth = yes (trusted "
		     "networks only)");
}

/* A secret is never echoed in a comment, and never written cut short. */
static void em_secret(struct conv *c, const struct acct *a, const struct row *m)
{
	const char *v = a->v[m->slot], *why;
	struct sbuf o = { 0 };

	if (!v)
		return;
	if (m->slot == S_PASSWORD && strcmp(v, "keyring") == 0)
		why = "pushmail reads this word as \"ask the key ring\"";
	else
		why = encode(m->key, v, V_LITERAL, &o);
	if (!why) {
		put_line(c, m->key, &o);
		c->has_password |= m->slot == S_PASSWORD;
	} else if (m->slot == S_PASSWORD) {
		note(&c->out, "the password was not converted: %s. Move it to a "
		     "file only you can read and set password_file to that file",
		     why);
	} else {
		note(&c->out, "passwordeval was not converted: %s. Put the "
		     "command in a script and set password_command to the "
		     "script", why);
	}
	if (o.nomem)
		c->nomem = 1;
	sbuf_free(&o);
}

static void em_from(struct conv *c, const struct acct *a, const struct row *m)
{
	const char *v = a->v[S_FROM];

	if (!v)
		return;
	if (has_subst(v, "UHCM")) {
		note(&c->out, "from %s uses msmtp's %%U/%%H/%%C/%%M substitution, "
		     "which pushmail does not have: write the address", v);
	} else if (!strpbrk(v, "*?[")) {
		put(c, m->key, v, V_TEXT);
	} else if (strchr(v, ',')) {
		note(&c->out, "from %s is a pattern with a comma, which "
		     "from_match would split: write it as several patterns", v);
	} else {
		/* msmtp 1.8.16: a pattern only selects the account */
		put(c, "from_match", v, V_TEXT);
	}
}

static void em_yes_no(struct conv *c, const struct acct *a, const struct row *m)
{
	if (a->v[m->slot])
		put(c, m->key, is(a->v[m->slot], "on") ? "yes" : "no", V_TEXT);
}

static void em_domain(struct conv *c, const struct acct *a, const struct row *m)
{
	const char *v = a->v[S_DOMAIN];

	if (v && has_subst(v, "HCM"))
		note(&c->out, "domain %s uses msmtp's substitution; pushmail's "
		     "default (this host's fully qualified name) applies", v);
	else
		em_copy(c, a, m);
}

static void em_undisclosed(struct conv *c, const struct acct *a,
			   const struct row *m)
{
	if (!is(a->v[S_UNDISCLOSED_RECIPIENTS], "on"))
		return;
	note(&c->out, "undisclosed_recipients on: msmtp replaced To and Cc; "
	     "pushmail adds \"To: undisclosed-recipients:;\" only when a "
	     "message has neither");
	put(c, m->key, "auto", V_TEXT);
}

static void em_bcc(struct conv *c, const struct acct *a, const struct row *m)
{
	const char *v = a->v[S_REMOVE_BCC_HEADERS];

	if (is(v, "off"))
		note(&c->out, "remove_bcc_headers off: msmtp kept Bcc headers; "
		     "pushmail always removes them");
	else if (v)
		note(&c->out, "remove_bcc_headers on (pushmail always removes "
		     "Bcc headers)");
}

static void em_auto_from(struct conv *c, const struct acct *a,
			 const struct row *m)
{
	if (is(a->v[S_AUTO_FROM], "on"))
		note(&c->out, "auto_from on (no equivalent): set from to the "
		     "address msmtp made, your user name @ %s",
		     a->v[S_MAILDOMAIN] ? a->v[S_MAILDOMAIN] : "(no domain)");
}

/* log: the file and syslog, as msmtp had them (a repeated log key adds to
 * the list), and the syslog facility (msmtp's LOG_LOCAL3 is local3). */
static void em_log(struct conv *c, const struct acct *a, const struct row *m)
{
	const char *file = a->v[S_LOGFILE], *facility = a->v[S_SYSLOG];
	char fac[16];

	if (is(file, "-")) {
		note(&c->out, "logfile - (standard output) has no equivalent");
		file = NULL;
	}
	if (file && strchr(file, ',')) {
		note(&c->out, "logfile %s not converted: a comma separates pushmail's "
		     "log destinations", file);
		file = NULL;
	}
	if (file)
		put(c, m->key, file, V_PATH);
	if (!facility)
		return;
	put(c, m->key, "syslog", V_TEXT);
	snprintf(fac, sizeof fac, "%s", facility + (strncmp(facility, "LOG_", 4) ? 0 : 4));
	for (char *p = fac; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	put(c, "log_facility", fac, V_TEXT);
}

static void em_timeout(struct conv *c, const struct acct *a,
		       const struct row *m)
{
	const char *v = a->v[S_TIMEOUT];

	if (v && strtol(v, NULL, 10) > 3600) {
		note(&c->out, "timeout %s is above pushmail's maximum; 3600 is "
		     "used", v);
		v = "3600";
	}
	if (v)
		put(c, m->key, v, V_TEXT);
}

static void em_protocol(struct conv *c, const struct acct *a,
			const struct row *m)
{
	if (is(a->v[S_PROTOCOL], "lmtp"))
		put(c, m->key, "lmtp", V_TEXT);
}

/* msmtp's proxy is SOCKS5 and hands the proxy the relay's name (socks5h);
 * its port defaults to 1080. */
static void em_proxy(struct conv *c, const struct acct *a, const struct row *m)
{
	const char *h = a->v[S_PROXY_HOST], *p = a->v[S_PROXY_PORT];
	char url[600];

	if (!h || !*h)
		return;
	snprintf(url, sizeof url, strchr(h, ':') ? "socks5h://[%s]:%s" :
		 "socks5h://%s:%s", h, p && *p ? p : "1080");
	put(c, m->key, url, V_TEXT);
}

static const struct {
	enum slot slot;
	const char *name, *why;
} no_equiv[] = {
	{ S_NTLMDOMAIN, "ntlmdomain", "pushmail has no ntlm" },
	{ S_TLS_CRL_FILE, "tls_crl_file", NULL },
	{ S_TLS_MIN_DH_PRIME_BITS, "tls_min_dh_prime_bits", "see tls_priorities" },
	{ S_TLS_FORCE_SSLV3, "tls_force_sslv3", "pushmail requires TLS 1.2 or later" },
	{ S_LOGFILE_TIME_FORMAT, "logfile_time_format", NULL },
};

static void em_no_equiv(struct conv *c, const struct acct *a,
			const struct row *m)
{
	for (size_t i = 0; i < sizeof no_equiv / sizeof no_equiv[0]; i++) {
		const char *v = a->v[no_equiv[i].slot];

		if (v && !is(v, "off"))
			note(&c->out, "%s %s (no equivalent%s%s)", no_equiv[i].name,
			     v, no_equiv[i].why ? ": " : "",
			     no_equiv[i].why ? no_equiv[i].why : "");
	}
}

/* pushmail's keys in the order of its manual, and where each comes from. */
static const struct row rows[] = {
	{ "host", S_HOST, V_TEXT, NULL },
	{ "port", S_PORT, V_TEXT, em_port },
	{ "tls", S_TLS, V_TEXT, em_tls },
	{ "tls_trust_file", S_TLS_TRUST_FILE, V_PATH, em_trust },
	{ "tls_fingerprint", S_TLS_FINGERPRINT, V_TEXT, em_fingerprint },
	{ NULL, S_TLS_CERTCHECK, V_TEXT, em_certcheck },
	{ "tls_cert_file", S_TLS_CERT_FILE, V_PATH, NULL },
	{ "tls_key_file", S_TLS_KEY_FILE, V_PATH, NULL },
	{ "tls_priorities", S_TLS_PRIORITIES, V_TEXT, NULL },
	{ "tls_host_override", S_TLS_HOST_OVERRIDE, V_TEXT, NULL },
	{ "auth", S_AUTH, V_TEXT, em_auth },
	{ "user", S_USER, V_TEXT, NULL },
	{ "password", S_PASSWORD, V_LITERAL, em_secret },
	{ "password_command", S_PASSWORDEVAL, V_LITERAL, em_secret },
	{ "from", S_FROM, V_TEXT, em_from },
	{ "allow_from_override", S_ALLOW_FROM_OVERRIDE, V_TEXT, em_yes_no },
	{ "domain", S_DOMAIN, V_TEXT, em_domain },
	{ "dsn_notify", S_DSN_NOTIFY, V_TEXT, NULL },
	{ "dsn_return", S_DSN_RETURN, V_TEXT, NULL },
	{ "set_date_header", S_SET_DATE_HEADER, V_TEXT, NULL },
	{ "set_msgid_header", S_SET_MSGID_HEADER, V_TEXT, NULL },
	{ "set_from_header", S_SET_FROM_HEADER, V_TEXT, NULL },
	{ "set_to_header", S_UNDISCLOSED_RECIPIENTS, V_TEXT, em_undisclosed },
	{ NULL, S_REMOVE_BCC_HEADERS, V_TEXT, em_bcc },
	{ "maildomain", S_MAILDOMAIN, V_TEXT, NULL },
	{ NULL, S_AUTO_FROM, V_TEXT, em_auto_from },
	{ "log", S_LOGFILE, V_PATH, em_log },
	{ "timeout", S_TIMEOUT, V_TEXT, em_timeout },
	{ "aliases", S_ALIASES, V_PATH, NULL },
	{ "protocol", S_PROTOCOL, V_TEXT, em_protocol },
	{ "socket", S_SOCKET, V_PATH, NULL },
	{ "source_address", S_SOURCE_IP, V_TEXT, NULL },
	{ "proxy", S_PROXY_HOST, V_TEXT, em_proxy },
	{ NULL, S_SOCKET, V_TEXT, em_no_equiv },
};

/* ---- writing: names, default account, sections --------------------------- */

static int name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
}

static int name_taken(const struct conv *c, const char *name)
{
	return strcmp(name, "defaults") == 0 || index_get(&c->byout, name) >= 0;
}

/* pushmail's section names are letters, digits, '-', '_' and '.', at most
 * 32 of them, unique, and never "defaults".  Collisions get "-2".."-9",
 * then a number derived from the account's position, so that 10k clashing
 * names stay linear. */
static void assign_name(struct conv *c, struct acct *a, size_t idx)
{
	char base[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1];
	size_t n = 0;
	unsigned long k = 1;

	for (const char *s = a->name; *s && n < NAME_MAX_LEN; s++)
		base[n++] = name_char(*s) ? *s : '_';
	base[n] = '\0';
	memcpy(name, base, n + 1);
	while (name_taken(c, name)) {
		char suffix[24];
		int len;

		k = k < 9 ? k + 1 : k == 9 ? idx + 10 : k + 1;
		len = snprintf(suffix, sizeof suffix, "-%lu", k);
		snprintf(name, sizeof name, "%.*s%s", NAME_MAX_LEN - len, base,
			 suffix);
	}
	if (!(a->out = strdup(name)) || index_put(&c->byout, a->out, idx) < 0)
		c->nomem = 1;
}

static int same_settings(const struct acct *a, const struct acct *b)
{
	for (int s = 0; s < S__COUNT; s++)
		if (a->v[s] ? !b->v[s] || strcmp(a->v[s], b->v[s]) : !!b->v[s])
			return 0;
	return 1;
}

/* msmtp uses the account named "default".  `account default : work` with
 * nothing of its own is just work, so default_account names work. */
static void choose_default(struct conv *c)
{
	long d = index_get(&c->byname, "default");
	struct acct *a;

	if (d < 0 || !(a = &c->v[d])->out)
		return;
	if (a->parent >= 0 && c->v[a->parent].out && !a->notes.len &&
	    same_settings(a, &c->v[a->parent])) {
		a->alias = 1;
		c->dflt = c->v[a->parent].out;
	} else {
		c->dflt = a->out;
	}
}

/* An account becomes a section only with a host (or, issue 16, a socket)
 * pushmail can read back, since cfg_finish refuses an account without. */
static int convertible(struct conv *c, struct acct *a)
{
	struct sbuf o = { 0 };
	const char *why;

	if (a->skip || (!a->v[S_HOST] && !a->v[S_SOCKET]))
		return 0;
	if (!a->v[S_HOST])
		return 1;
	why = encode("host", a->v[S_HOST], V_TEXT, &o);
	if (why)
		note(&a->notes, "account '%s' skipped: its host %s cannot be "
		     "written: %s", a->name, a->v[S_HOST], why);
	if (o.nomem)
		c->nomem = 1;
	sbuf_free(&o);
	return !why;
}

static void prepare(struct conv *c)
{
	for (size_t i = 0; i < c->n && !c->nomem; i++)
		if (convertible(c, &c->v[i]))
			assign_name(c, &c->v[i], i);
	choose_default(c);
}

static void emit_account(struct conv *c, const struct acct *a)
{
	sbuf_add(&c->out, "\n", 1);
	if (a->alias) {
		note(&c->out, "account 'default' (line %ld) is account '%s': "
		     "default_account names it", a->line, a->parents);
	} else if (!a->skip && !a->v[S_HOST] && !a->v[S_SOCKET]) {
		note(&c->out, "account '%s' (line %ld) has no host, so it is not "
		     "an account here; accounts that inherit from it include "
		     "its settings", a->name, a->line);
	}
	if (!a->out || a->alias) {
		buf_cat(&c->out, &a->notes);
		return;
	}
	sbuf_str(&c->out, "[");
	sbuf_str(&c->out, a->out);
	sbuf_str(&c->out, "]\n");
	remark(&c->out, "msmtp account '%s', line %ld%s%s", a->name, a->line,
	       a->parents ? ", inherits from " : "",
	       a->parents ? a->parents : "");
	if (strcmp(a->name, a->out) != 0)
		note(&c->out, "renamed: pushmail account names are letters, "
		     "digits, '-', '_' and '.', at most %d, and unique",
		     NAME_MAX_LEN);
	buf_cat(&c->out, &a->notes);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		(rows[i].fn ? rows[i].fn : em_copy)(c, a, &rows[i]);
}

static void emit_header(const struct conv *c, const char *name,
			struct sbuf *doc)
{
	struct sbuf top = { 0 };

	remark(&top, "pushmail configuration converted from %s by pushmail "
	       "--import-msmtprc", name);
	sbuf_str(&top,
		"; msmtp's defaults and account inheritance have no exact\n"
		"; pushmail equivalent, so every account below lists all of its\n"
		"; settings, msmtp's defaults included.  Lines starting with\n"
		"; \"; msmtp:\" or \"; WARNING:\" are settings that did not carry\n"
		"; over unchanged: read them before using this file.\n");
	if (c->has_password)
		sbuf_str(&top, "; It holds a password: keep it private (chmod "
			"600), or pushmail refuses it.\n");
	buf_cat(doc, &top);
	sbuf_free(&top);
}

static void emit(struct conv *c, const char *name, struct sbuf *doc)
{
	size_t converted = 0;

	for (size_t i = 0; i < c->n; i++) {
		emit_account(c, &c->v[i]);
		converted += c->v[i].out && !c->v[i].alias;
	}
	if (!converted)
		note(&c->pre, "no account with a host was found");
	emit_header(c, name ? name : "(unnamed input)", doc);
	if (c->pre.len)
		sbuf_add(doc, "\n", 1);
	buf_cat(doc, &c->pre);
	if (c->dflt) {
		sbuf_str(doc, "\ndefault_account = ");
		sbuf_str(doc, c->dflt);
		sbuf_add(doc, "\n", 1);
	}
	buf_cat(doc, &c->out);
}

/* ---- the API ---------------------------------------------------------- */

static void acct_free(struct acct *a)
{
	for (int s = 0; s < S__COUNT; s++)
		wipe_free(a->v[s]);
	free(a->name);
	free(a->out);
	free(a->parents);
	sbuf_free(&a->notes);
}

static int conv_nomem(const struct conv *c)
{
	if (c->nomem || c->pre.nomem || c->out.nomem)
		return 1;
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].notes.nomem)
			return 1;
	return 0;
}

static void conv_free(struct conv *c)
{
	for (size_t i = 0; i < c->n; i++)
		acct_free(&c->v[i]);
	free(c->v);
	acct_free(&c->defaults);
	index_free(&c->byname);
	index_free(&c->byout);
	sbuf_free(&c->pre);
	sbuf_free(&c->out);
}

int msmtprc_convert(const char *text, size_t len, const char *name, FILE *out,
		    struct result *r)
{
	struct conv c;
	struct sbuf doc = { 0 };
	int rc = -1;

	memset(&c, 0, sizeof c);
	read_text(&c, text, len);
	if (!c.nomem)
		prepare(&c);
	if (!conv_nomem(&c))
		emit(&c, name, &doc);
	if (conv_nomem(&c) || doc.nomem) {
		result_fail(r, EX_OSERR, "out of memory");
		goto out;
	}
	if (fwrite(doc.s, 1, doc.len, out) != doc.len || fflush(out) != 0) {
		result_fail(r, EX_IOERR, "cannot write the converted "
			    "configuration: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	sbuf_free(&doc);
	conv_free(&c);
	return rc;
}


/* msmtp's user file: ~/.msmtprc first, then the XDG location (a relative
 * XDG_CONFIG_HOME is ignored, as the XDG spec says). */
static int default_path(char *buf, size_t cap, struct result *r)
{
	const char *home = cfg_home_dir(), *xdg = getenv("XDG_CONFIG_HOME");
	struct stat st;
	int n;

	if (!home)
		return result_fail(r, EX_NOINPUT, "cannot find msmtp's "
				   "configuration: HOME is not set");
	n = snprintf(buf, cap, "%s/.msmtprc", home);
	if (n > 0 && (size_t)n < cap && stat(buf, &st) == 0)
		return 0;
	if (xdg && xdg[0] == '/')
		n = snprintf(buf, cap, "%s/msmtp/config", xdg);
	else
		n = snprintf(buf, cap, "%s/.config/msmtp/config", home);
	if (n < 0 || (size_t)n >= cap)
		return result_fail(r, EX_NOINPUT, "path of msmtp's configuration "
				   "is too long");
	if (stat(buf, &st) != 0)
		return result_fail(r, EX_NOINPUT, "no msmtp configuration: "
				   "neither %s/.msmtprc nor %s exists", home, buf);
	return 0;
}

static int read_fd(int fd, const char *path, struct sbuf *b, struct result *r)
{
	switch (sbuf_read_fd(b, fd, MSMTPRC_FILE_MAX)) {
	case 0:
		return 0;
	case -1:
		return result_fail(r, EX_IOERR, "cannot read %s: %s", path, strerror(errno));
	case -2:
		return result_fail(r, EX_DATAERR, "%s: larger than %d bytes; not an msmtp "
				   "configuration", path, MSMTPRC_FILE_MAX);
	default:
		return result_fail(r, EX_OSERR, "out of memory");
	}
}

int msmtprc_convert_file(const char *path, FILE *out, struct result *r)
{
	char dflt[4096];
	struct sbuf b = { 0 };
	struct stat st;
	int fd, rc = -1;

	if (!path && default_path(dflt, sizeof dflt, r) < 0)
		return -1;
	if (!path)
		path = dflt;
	/* O_NONBLOCK: a FIFO must not hang us; regular files ignore it */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return result_fail(r, EX_NOINPUT, "cannot open %s: %s", path,
				   strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		result_fail(r, EX_NOINPUT, "%s: not a regular file", path);
		goto out;
	}
	if (read_fd(fd, path, &b, r) < 0)
		goto out;
	rc = msmtprc_convert(b.s ? b.s : "", b.len, path, out, r);
out:
	sbuf_free(&b);
	close(fd);
	return rc;
}
