/* cfg.c - account profiles from INI files (libinih), SPEC section 2.
 *
 * libinih does the tokenising, but it has habits that could silently change a
 * value: it splits lines longer than its buffer, cuts values at " ;", appends
 * indented lines to the previous value and truncates long section names.  So
 * we never let it read a file: cfg_load_* read the whole file, and our own
 * reader hands inih one checked line at a time.  The reader knows the line
 * number (Debian's inih handler has none), rejects what inih would mangle, and
 * opens sections itself; the handler re-scans the raw line where a cut value
 * would matter.
 */
#include "config.h"
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* FNM_CASEFOLD; autoconf's config.h normally sets it */
#endif
#include "cfg.h"
#include "trust.h"
#include "sbuf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define NAME_MAX_LEN 32   /* account names; inih silently truncates at 49 */
#define VARNAME_MAX 64
#define NFILES (sizeof ((struct config *)0)->files / sizeof (char *))

/* ---- the key table -------------------------------------------------- */

enum ktype {
	T_STR,          /* string, ~ and $VAR expanded */
	T_PATH,         /* same, documents intent */
	T_SECRET,       /* password: taken literally, never echoed */
	T_CMD,          /* password_command: literal, the shell expands it */
	T_BOOL, T_INT, T_DURATION, T_ENUM,
	T_NOTIFY,       /* dsn_notify: off | never | list of success,failure,delay */
	T_LIST,         /* from_match: comma list, repeats append */
	T_RATE,         /* rate_limit: N/DURATION, stored as N/SECONDS */
	T_ADDR,         /* source_address: a numeric IPv4 or IPv6 address */
	T_PROXY,        /* proxy: socks5://host:port or socks5h://host:port */
};

/* Where a key may appear. */
#define W_TOP 1u
#define W_DEF 2u
#define W_ACC 4u
#define W_ANY_ACC (W_DEF | W_ACC)

/* default_account is a top-level key that is not an account setting; it gets
 * the slot after the account keys so lookup and suggestions see it. */
#define K_DEFAULT_ACCOUNT K__COUNT

struct keydef {
	const char *name;
	enum ktype type;
	unsigned where;
	const char *const *values;   /* T_ENUM: NULL-terminated */
	long min, max;               /* T_INT, T_DURATION (seconds) */
};

static const char *const v_tls[] = { "starttls", "implicit", "off", NULL };
static const char *const v_auth[] = {
	"auto", "off", "plain", "login", "cram-md5", "scram-sha-1",
	"scram-sha-256", "scram-sha-1-plus", "scram-sha-256-plus", "xoauth2",
	"oauthbearer", "external", "gssapi", NULL };
static const char *const v_queue[] = { "on-failure", "always", "never", NULL };
static const char *const v_auto_off[] = { "auto", "off", NULL };
static const char *const v_auto_on_off[] = { "auto", "on", "off", NULL };
static const char *const v_dsn_return[] = { "headers", "full", NULL };
static const char *const v_facility[] = { "mail", "user", "daemon", "local0", "local1",
	"local2", "local3", "local4", "local5", "local6", "local7", NULL };
static const char *const v_oauth2_provider[] = { "google", "microsoft", "custom", NULL };
static const char *const v_ip_version[] = { "any", "4", "6", NULL };
static const char *const v_protocol[] = { "smtp", "lmtp", NULL };

static const struct keydef keys[K__COUNT + 1] = {
	[K_HOST] = { "host", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_PORT] = { "port", T_INT, W_ANY_ACC, NULL, 1, 65535 },
	[K_TLS] = { "tls", T_ENUM, W_ANY_ACC, v_tls, 0, 0 },
	[K_TLS_TRUST_FILE] = { "tls_trust_file", T_PATH, W_ANY_ACC, NULL, 0, 0 },
	[K_TLS_FINGERPRINT] = { "tls_fingerprint", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_TLS_CERT_FILE] = { "tls_cert_file", T_PATH, W_ANY_ACC, NULL, 0, 0 },
	[K_TLS_KEY_FILE] = { "tls_key_file", T_PATH, W_ANY_ACC, NULL, 0, 0 },
	[K_TLS_PRIORITIES] = { "tls_priorities", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_TLS_HOST_OVERRIDE] = { "tls_host_override", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_AUTH] = { "auth", T_ENUM, W_ANY_ACC, v_auth, 0, 0 },
	[K_USER] = { "user", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_PASSWORD] = { "password", T_SECRET, W_ANY_ACC, NULL, 0, 0 },
	[K_PASSWORD_COMMAND] = { "password_command", T_CMD, W_ANY_ACC, NULL, 0, 0 },
	[K_PASSWORD_FILE] = { "password_file", T_PATH, W_ANY_ACC, NULL, 0, 0 },
	[K_FROM] = { "from", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_FROM_MATCH] = { "from_match", T_LIST, W_ANY_ACC, NULL, 0, 0 },
	[K_ALLOW_FROM_OVERRIDE] = { "allow_from_override", T_BOOL, W_ANY_ACC, NULL, 0, 0 },
	[K_DOMAIN] = { "domain", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_QUEUE] = { "queue", T_ENUM, W_ANY_ACC, v_queue, 0, 0 },
	/* the spool is shared by all accounts, so it is not per-account */
	[K_QUEUE_DIR] = { "queue_dir", T_PATH, W_TOP | W_DEF, NULL, 0, 0 },
	[K_QUEUE_LIFETIME] = { "queue_lifetime", T_DURATION, W_DEF, NULL, 1, 365L * 86400 },
	[K_QUEUE_RETRY] = { "queue_retry", T_DURATION, W_DEF, NULL, 1, 86400 },
	[K_QUEUE_RETRY_MAX] = { "queue_retry_max", T_DURATION, W_DEF, NULL, 1, 7L * 86400 },
	[K_PARTIAL_DELIVERY] = { "partial_delivery", T_BOOL, W_ANY_ACC, NULL, 0, 0 },
	[K_ALLOW_PLAINTEXT_AUTH] = { "allow_plaintext_auth", T_BOOL, W_ANY_ACC, NULL, 0, 0 },
	[K_DSN_NOTIFY] = { "dsn_notify", T_NOTIFY, W_ANY_ACC, NULL, 0, 0 },
	[K_DSN_RETURN] = { "dsn_return", T_ENUM, W_ANY_ACC, v_dsn_return, 0, 0 },
	[K_SET_DATE_HEADER] = { "set_date_header", T_ENUM, W_ANY_ACC, v_auto_off, 0, 0 },
	[K_SET_MSGID_HEADER] = { "set_msgid_header", T_ENUM, W_ANY_ACC, v_auto_off, 0, 0 },
	[K_SET_FROM_HEADER] = { "set_from_header", T_ENUM, W_ANY_ACC, v_auto_on_off, 0, 0 },
	[K_SET_TO_HEADER] = { "set_to_header", T_ENUM, W_ANY_ACC, v_auto_off, 0, 0 },
	[K_MAILDOMAIN] = { "maildomain", T_STR, W_ANY_ACC, NULL, 0, 0 },
	/* "syslog" and files, a comma list; a repeated key adds to it */
	[K_LOG] = { "log", T_LIST, W_ANY_ACC, NULL, 0, 0 },
	[K_LOG_FACILITY] = { "log_facility", T_ENUM, W_ANY_ACC, v_facility, 0, 0 },
	[K_TIMEOUT] = { "timeout", T_INT, W_ANY_ACC, NULL, 1, 3600 },
	[K_ALIASES] = { "aliases", T_PATH, W_ANY_ACC, NULL, 0, 0 },
	/* SPEC 9: who may set the envelope sender of dropped mail (root always) */
	[K_TRUSTED_USERS] = { "trusted_users", T_LIST, W_TOP | W_DEF, NULL, 0, 0 },
	/* who hears about failed queued mail instead of its sender (dsn.h) */
	[K_ADMIN_ADDRESS] = { "admin_address", T_STR, W_TOP | W_ANY_ACC, NULL, 0, 0 },
	/* other accounts' relays to try in order when this one fails (runq.c);
	 * an account named in its own list (through [defaults]) is skipped */
	[K_FALLBACK] = { "fallback", T_LIST, W_ANY_ACC, NULL, 0, 0 },
	/* a provider's sending quota, shared by every process (runq.c) */
	[K_RATE_LIMIT] = { "rate_limit", T_RATE, W_ANY_ACC, NULL, 1, 30L * 86400 },
	/* one warning notice for a message still queued after this long */
	[K_DELAY_WARNING] = { "delay_warning", T_DURATION, W_ANY_ACC, NULL, 1, 30L * 86400 },
	/* consecutive refused logins before the admin is told (runq.c) */
	[K_AUTH_FAILURES_NOTIFY] = { "auth_failures_notify", T_INT, W_ANY_ACC, NULL, 1, 1000 },
	/* OAuth2 (issue 18) */
	[K_OAUTH2_PROVIDER] = { "oauth2_provider", T_ENUM, W_ANY_ACC, v_oauth2_provider, 0, 0 },
	[K_OAUTH2_CLIENT_ID] = { "oauth2_client_id", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_OAUTH2_CLIENT_SECRET] = { "oauth2_client_secret", T_SECRET, W_ANY_ACC, NULL, 0, 0 },
	[K_OAUTH2_TOKEN_URL] = { "oauth2_token_url", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_OAUTH2_DEVICE_URL] = { "oauth2_device_url", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_OAUTH2_SCOPE] = { "oauth2_scope", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_OAUTH2_TRUST_FILE] = { "oauth2_trust_file", T_PATH, W_ANY_ACC, NULL, 0, 0 },
	/* transports (issue 16) */
	[K_SOURCE_ADDRESS] = { "source_address", T_ADDR, W_ANY_ACC, NULL, 0, 0 },
	[K_IP_VERSION] = { "ip_version", T_ENUM, W_ANY_ACC, v_ip_version, 0, 0 },
	[K_PROTOCOL] = { "protocol", T_ENUM, W_ANY_ACC, v_protocol, 0, 0 },
	[K_SOCKET] = { "socket", T_PATH, W_ANY_ACC, NULL, 0, 0 },
	[K_PROXY] = { "proxy", T_PROXY, W_ANY_ACC, NULL, 0, 0 },
	[K_PROXY_USER] = { "proxy_user", T_STR, W_ANY_ACC, NULL, 0, 0 },
	[K_PROXY_PASSWORD] = { "proxy_password", T_SECRET, W_ANY_ACC, NULL, 0, 0 },
	[K_PROXY_PASSWORD_COMMAND] = { "proxy_password_command", T_CMD, W_ANY_ACC,
				       NULL, 0, 0 },
	[K_PROXY_PASSWORD_FILE] = { "proxy_password_file", T_PATH, W_ANY_ACC, NULL,
				    0, 0 },
	[K_DEFAULT_ACCOUNT] = { "default_account", T_STR, W_TOP, NULL, 0, 0 },
};

static const char *const bool_yes[] = { "yes", "on", "true", "1", NULL };
static const char *const bool_no[] = { "no", "off", "false", "0", NULL };
static const char *const notify_words[] = { "success", "failure", "delay", NULL };

static const char *sysconfdir_override;

/* ---- small helpers -------------------------------------------------- */

/* SPEC 7: buffers that held secrets are wiped.  Any value or file buffer
 * may hold a password, so all of them are wiped before they are freed. */
static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static int find_word(const char *const *list, const char *w)
{
	for (int i = 0; list[i]; i++)
		if (strcasecmp(list[i], w) == 0)
			return i;
	return -1;
}

/* "a, b or c" from a NULL-terminated list, for "expected ..." messages. */
static void join_or(char *buf, size_t cap, const char *const *list)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; list[i] && o < cap; i++) {
		const char *sep = i == 0 ? "" : list[i + 1] ? ", " : " or ";

		o += (size_t)snprintf(buf + o, cap - o, "%s%s", sep, list[i]);
	}
}

/* A value as it may appear in a message: control characters replaced, long
 * values shortened. */
static const char *shown(char *buf, size_t cap, const char *v)
{
	size_t n = strlen(v);

	result_sanitise(buf, cap, v, n);
	if (n >= cap && cap > 4)
		memcpy(buf + cap - 4, "...", 4);
	return buf;
}

/* Optimal string alignment distance (Damerau-Levenshtein with adjacent
 * transpositions), for "did you mean" on misspelt keys. */
static int distance(const char *a0, const char *b0)
{
	char a[40], b[40];
	int d[40][40];
	int la = (int)strlen(a0), lb = (int)strlen(b0);

	if (la >= 40 || lb >= 40)
		return 99;
	for (int i = 0; i <= la; i++)
		a[i] = (char)tolower((unsigned char)a0[i]);
	for (int j = 0; j <= lb; j++)
		b[j] = (char)tolower((unsigned char)b0[j]);
	for (int i = 0; i <= la; i++)
		d[i][0] = i;
	for (int j = 0; j <= lb; j++)
		d[0][j] = j;
	for (int i = 1; i <= la; i++) {
		for (int j = 1; j <= lb; j++) {
			int v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);

			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

static int key_find(const char *name)
{
	for (int k = 0; k <= K_DEFAULT_ACCOUNT; k++)
		if (strcmp(keys[k].name, name) == 0)
			return k;
	return -1;
}

static const char *key_suggest(const char *name)
{
	const char *best = NULL;
	int bestd = 3;   /* suggest only within distance 2 */

	for (int k = 0; k <= K_DEFAULT_ACCOUNT; k++) {
		int d = distance(name, keys[k].name);

		if (d < bestd) {
			bestd = d;
			best = keys[k].name;
		}
	}
	return best;
}

const char *cfg_home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h && *h)
		return h;
	pw = getpwuid(getuid());
	return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
}

int cfg_running_setid(void)
{
	return getuid() != geteuid() || getgid() != getegid();
}

/* ---- parser state --------------------------------------------------- */

struct parse {
	struct config *c;
	struct result *r;
	const char *file;          /* c->files[i]: name for messages and settings */
	const char *buf;
	size_t len, pos;
	int lineno;
	const char *raw;           /* current line, without BOM and line end */
	size_t rawlen;
	struct account *cur;       /* section being read; NULL at top level */
	int defaults_line;         /* line of [defaults] in this file, 0 if none */
	int has_password;
	int failed;
};

/* Record "FILE:LINE: message" once; returns -1. */
__attribute__((format(printf, 2, 3)))
static int perr(struct parse *p, const char *fmt, ...)
{
	char msg[RESULT_TEXT_MAX];
	va_list ap;

	if (p->failed)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	p->failed = 1;
	return result_fail(p->r, EX_CONFIG, "%s:%d: %s", p->file, p->lineno, msg);
}

static int oom(struct parse *p)
{
	p->failed = 1;
	return result_fail(p->r, EX_OSERR, "%s:%d: out of memory", p->file,
			   p->lineno);
}

static const char *section_label(const struct parse *p, char *buf, size_t cap)
{
	if (!p->cur)
		return "at top level";
	snprintf(buf, cap, "in [%s]", p->cur->name);
	return buf;
}

static unsigned where_now(const struct parse *p)
{
	if (!p->cur)
		return W_TOP;
	return p->cur == &p->c->defaults ? W_DEF : W_ACC;
}

static const char *where_text(unsigned w)
{
	switch (w) {
	case W_TOP:
		return "only at top level";
	case W_DEF:
		return "only in [defaults]";
	case W_TOP | W_DEF:
		return "only at top level or in [defaults]";
	default:
		return "only in [defaults] or an account section";
	}
}

/* ---- values: quotes, expansion, per-type checks ---------------------- */

/* Position of the closing quote of a quoted raw value starting at v[0] == '"',
 * honouring \" and \\; `end` when there is none. */
static const char *closing_quote(const char *v, const char *end)
{
	for (const char *s = v + 1; s < end; s++) {
		if (*s == '\\' && s + 1 < end && (s[1] == '"' || s[1] == '\\'))
			s++;
		else if (*s == '"')
			return s;
	}
	return end;
}

static int unquote(struct parse *p, int k, const char *v, char **out)
{
	size_t n = strlen(v), i, j = 0;
	char *o;

	if (v[0] != '"') {
		*out = strdup(v);
		return *out ? 0 : oom(p);
	}
	o = malloc(n);
	if (!o)
		return oom(p);
	for (i = 1; i < n && v[i] != '"'; i++) {
		if (v[i] == '\\' && (v[i + 1] == '"' || v[i + 1] == '\\'))
			i++;
		o[j++] = v[i];
	}
	o[j] = '\0';
	if (i != n - 1 || n < 2) {
		wipe_free(o);
		return perr(p, i >= n ? "quoted value of '%s' has no closing quote"
				      : "text after the closing quote of '%s'",
			    keys[k].name);
	}
	*out = o;
	return 0;
}

/* Expand one $NAME, ${NAME} or $$ at *sp; advances *sp.  A '$' not followed
 * by a name stays literal. */
static int expand_var(struct parse *p, int k, const char **sp, struct sbuf *b)
{
	const char *s = *sp + 1, *name, *val;
	char var[VARNAME_MAX + 1];
	int braced = *s == '{';
	size_t n;

	if (*s == '$' || !(braced || isalpha((unsigned char)*s) || *s == '_')) {
		sbuf_add(b, "$", 1);
		*sp = *s == '$' ? s + 1 : s;
		return 0;
	}
	name = s + braced;
	for (n = 0; isalnum((unsigned char)name[n]) || name[n] == '_'; n++)
		;
	if (braced && (name[n] != '}' || n == 0))
		return perr(p, "bad or unterminated ${...} in the value of '%s'",
			    keys[k].name);
	if (n > VARNAME_MAX)
		return perr(p, "variable name too long in the value of '%s'",
			    keys[k].name);
	memcpy(var, name, n);
	var[n] = '\0';
	val = getenv(var);
	if (!val)
		return perr(p, "$%s is not set (used in '%s')", var, keys[k].name);
	sbuf_str(b, val);
	*sp = name + n + braced;
	return 0;
}

/* SPEC 2: "~" and "$VAR"/"${VAR}" are expanded in values; "$$" is a '$'. */
static int expand(struct parse *p, int k, const char *v, char **out)
{
	struct sbuf b = { 0 };
	const char *s = v;
	int rc = -1;

	if (s[0] == '~' && (s[1] == '/' || s[1] == '\0')) {
		const char *home = cfg_home_dir();

		if (!home) {
			perr(p, "cannot expand '~' in '%s': HOME is not set",
			     keys[k].name);
			goto out;
		}
		sbuf_str(&b, home);
		s++;
	}
	while (*s) {
		size_t lit = strcspn(s, "$");

		sbuf_add(&b, s, lit);
		s += lit;
		if (*s && expand_var(p, k, &s, &b) < 0)
			goto out;
	}
	*out = sbuf_take(&b);
	rc = *out ? 0 : oom(p);
out:
	sbuf_free(&b);
	return rc;
}

static int bad_value(struct parse *p, int k, const char *v, const char *expected)
{
	char sv[64];

	return perr(p, "bad value '%s' for '%s' (expected %s)",
		    shown(sv, sizeof sv, v), keys[k].name, expected);
}

/* Decimal digits only (no sign, no spaces), within [min, max]. */
static int parse_num(const char *v, long min, long max, long *out)
{
	long n = 0;

	if (!*v)
		return -1;
	for (; *v; v++) {
		if (!isdigit((unsigned char)*v) || n > max)
			return -1;
		n = n * 10 + (*v - '0');
	}
	if (n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

/* "3600", "30m", "12h", "5d" (also "90s") -> seconds. */
static int parse_duration(const char *v, long max, long *out)
{
	static const struct { char suffix; long mult; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	char num[16];
	size_t n = strlen(v);
	long mult = 1, x;

	if (n == 0 || n >= sizeof num)
		return -1;
	memcpy(num, v, n + 1);
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (tolower((unsigned char)num[n - 1]) == units[i].suffix) {
			mult = units[i].mult;
			num[--n] = '\0';
			break;
		}
	}
	if (parse_num(num, 1, max / mult, &x) < 0)
		return -1;
	*out = x * mult;
	return 0;
}

/* Split a comma list into trimmed items; calls fn for each.  An empty item
 * is an error (-1), so "a,,b" and a trailing comma are refused. */
static int each_item(const char *v, int (*fn)(void *, const char *, size_t),
		     void *arg)
{
	for (;;) {
		size_t n = strcspn(v, ","), s = 0, e = n;

		while (s < e && isspace((unsigned char)v[s]))
			s++;
		while (e > s && isspace((unsigned char)v[e - 1]))
			e--;
		if (e == s || fn(arg, v + s, e - s) < 0)
			return -1;
		if (!v[n])
			return 0;
		v += n + 1;
	}
}

static int list_item(void *arg, const char *s, size_t n)
{
	struct sbuf *b = arg;

	if (b->len)
		sbuf_add(b, ",", 1);
	sbuf_add(b, s, n);
	return 0;
}

struct notify {
	struct sbuf b;
	unsigned seen;
};

static int notify_item(void *arg, const char *s, size_t n)
{
	struct notify *nt = arg;
	char w[16];
	int i;

	if (n >= sizeof w)
		return -1;
	memcpy(w, s, n);
	w[n] = '\0';
	i = find_word(notify_words, w);
	if (i < 0 || nt->seen & (1u << i))
		return -1;
	nt->seen |= 1u << i;
	return list_item(&nt->b, notify_words[i], strlen(notify_words[i]));
}

/* RFC 3461 NOTIFY: NEVER alone, or any of SUCCESS, FAILURE, DELAY; "off"
 * means no NOTIFY parameter at all. */
static int norm_notify(const char *v, char **out)
{
	struct notify nt = { { 0 }, 0 };

	if (strcasecmp(v, "off") == 0 || strcasecmp(v, "never") == 0) {
		*out = strdup(strcasecmp(v, "off") == 0 ? "off" : "never");
		return 0;
	}
	if (each_item(v, notify_item, &nt) < 0) {
		sbuf_free(&nt.b);
		return -1;
	}
	*out = sbuf_take(&nt.b);
	return 0;
}

static int norm_list(const char *v, char **out)
{
	struct sbuf b = { 0 };

	if (each_item(v, list_item, &b) < 0) {
		sbuf_free(&b);
		return -1;
	}
	*out = sbuf_take(&b);
	return 0;
}

/* "100/1h" -> "100/3600". */
static int norm_rate(const char *v, long max, char **out)
{
	const char *slash = strchr(v, '/');
	char num[16], buf[48];
	long n, per;

	*out = NULL;
	if (!slash || (size_t)(slash - v) >= sizeof num)
		return -1;
	memcpy(num, v, (size_t)(slash - v));
	num[slash - v] = '\0';
	if (parse_num(num, 1, 1000000L, &n) < 0 || parse_duration(slash + 1, max, &per) < 0)
		return -1;
	snprintf(buf, sizeof buf, "%ld/%ld", n, per);
	*out = strdup(buf);
	return *out ? 0 : -1;
}

/* source_address: what inet_pton takes, stored as inet_ntop prints it. */
static int norm_addr(const char *v, char **out)
{
	unsigned char a[sizeof(struct in6_addr)];
	char buf[INET6_ADDRSTRLEN];
	int af = strchr(v, ':') ? AF_INET6 : AF_INET;

	if (inet_pton(af, v, a) != 1 || !inet_ntop(af, a, buf, sizeof buf))
		return -1;
	*out = strdup(buf);
	return 0;
}

/* proxy: only SOCKS5 (RFC 1928) is spoken; socks5h lets the proxy resolve
 * the relay's name.  The port is required: there is no usual one. */
static int norm_proxy(const char *v, char **out)
{
	const char *hp = NULL, *port;
	long n;

	if (strncasecmp(v, "socks5://", 9) == 0)
		hp = v + 9;
	else if (strncasecmp(v, "socks5h://", 10) == 0)
		hp = v + 10;
	if (!hp || !*hp)
		return -1;
	if (*hp == '[') {
		const char *e = strchr(hp, ']');
		if (!e || e == hp + 1 || e[1] != ':')
			return -1;
		port = e + 2;
	} else {
		port = strrchr(hp, ':');
		if (!port || port == hp || memchr(hp, ':', (size_t)(port - hp)))
			return -1;
		port++;
	}
	if (strcspn(hp, "/@?# \t") < strlen(hp) || parse_num(port, 1, 65535, &n) < 0)
		return -1;
	*out = strdup(v);
	if (*out)
		for (char *s = *out; *s != ':'; s++)
			*s = (char)tolower((unsigned char)*s);
	return 0;
}

static int norm_fail(char *expected, size_t cap, const char *text)
{
	snprintf(expected, cap, "%s", text);
	return -1;
}

/* The stored form of v for key k in *out (NULL on ENOMEM).  Returns -1 when
 * v is not valid; `expected` then says what would be. */
static int normalise(int k, const char *v, char **out, char *expected,
		     size_t cap)
{
	const struct keydef *kd = &keys[k];
	char num[24];
	long n;
	int i;

	switch (kd->type) {
	case T_BOOL:
		if (find_word(bool_yes, v) < 0 && find_word(bool_no, v) < 0)
			return norm_fail(expected, cap,
					 "yes, no, on, off, true, false, 1 or 0");
		*out = strdup(find_word(bool_yes, v) >= 0 ? "yes" : "no");
		return 0;
	case T_INT:
		if (parse_num(v, kd->min, kd->max, &n) < 0) {
			snprintf(expected, cap, "a number from %ld to %ld",
				 kd->min, kd->max);
			return -1;
		}
		snprintf(num, sizeof num, "%ld", n);
		*out = strdup(num);
		return 0;
	case T_DURATION:
		if (parse_duration(v, kd->max, &n) < 0)
			return norm_fail(expected, cap, "a duration such as 3600, "
					 "30m, 12h or 5d, at most 365d");
		*out = strdup(v);
		return 0;
	case T_ENUM:
		if ((i = find_word(kd->values, v)) < 0) {
			join_or(expected, cap, kd->values);
			return -1;
		}
		*out = strdup(kd->values[i]);
		return 0;
	case T_NOTIFY:
		if (norm_notify(v, out) < 0)
			return norm_fail(expected, cap, "off, never, or a list of "
					 "success, failure and delay");
		return 0;
	case T_RATE:
		if (norm_rate(v, kd->max, out) < 0)
			return norm_fail(expected, cap, "a count and a period such as "
					 "100/1h or 2000/1d (at most 1000000 per 30d)");
		return 0;
	case T_ADDR:
		if (norm_addr(v, out) < 0)
			return norm_fail(expected, cap, "a numeric IPv4 or IPv6 "
					 "address such as 192.0.2.10 or 2001:db8::10");
		return 0;
	case T_PROXY:
		if (norm_proxy(v, out) < 0)
			return norm_fail(expected, cap, "socks5://host:port or "
					 "socks5h://host:port ([v6addr] for IPv6)");
		return 0;
	case T_LIST:
		if (norm_list(v, out) < 0)
			return norm_fail(expected, cap, "comma-separated patterns "
					 "such as *@example.com");
		return 0;
	default:
		*out = strdup(v);
		return 0;
	}
}

/* Check v (owned, freed here) against the key's type; *out gets the stored
 * form. */
static int check_value(struct parse *p, int k, char *v, char **out)
{
	char expected[256], *norm = NULL;
	int rc = 0;

	if (normalise(k, v, &norm, expected, sizeof expected) < 0)
		rc = bad_value(p, k, v, expected);
	else if (!norm)
		rc = oom(p);
	else
		*out = norm;
	wipe_free(v);
	return rc;
}

/* inih's value -> stored value: unquote, refuse empty, expand, check. */
static int parse_value(struct parse *p, int k, const char *value, char **out)
{
	char *v = NULL, *x = NULL;
	int rc = -1;

	if (unquote(p, k, value, &v) < 0)
		goto out;
	if (!*v) {
		perr(p, "empty value for '%s'", keys[k].name);
		goto out;
	}
	/* A secret is taken literally: a '$' in a password must not become
	 * someone's environment.  password_command goes to the shell, which
	 * expands it itself. */
	if (keys[k].type == T_SECRET || keys[k].type == T_CMD) {
		x = v;
		v = NULL;
	} else if (expand(p, k, v, &x) < 0) {
		goto out;
	}
	rc = check_value(p, k, x, out);
out:
	wipe_free(v);
	return rc;
}

/* The '=' or ':' that ends the key on the current raw line (inih accepts
 * both), or the end of the line.  The raw line is not NUL-terminated. */
static const char *raw_separator(const struct parse *p)
{
	const char *s = p->raw, *end = p->raw + p->rawlen;

	while (s < end && *s != '=' && *s != ':')
		s++;
	return s;
}

/* inih ends a value at whitespace followed by ';' (an inline comment).  That
 * is fine for "port = 587 ; submission", but a password or a quoted value
 * cut there would silently become another value, so look at the raw line:
 * for a password any " ;" is refused; for a quoted value, one before the
 * closing quote. */
static int check_comment_cut(struct parse *p, int k)
{
	const char *end = p->raw + p->rawlen;
	const char *v = raw_separator(p), *stop = end;

	if (v >= end)
		return 0;
	for (v++; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	if (v < end && *v == '"')
		stop = closing_quote(v, end);
	else if (k != K_PASSWORD && k != K_OAUTH2_CLIENT_SECRET && k != K_PROXY_PASSWORD)
		return 0;
	for (const char *s = v + 1; s < stop; s++)
		if (*s == ';' && (s[-1] == ' ' || s[-1] == '\t'))
			return perr(p, "' ;' starts a comment, so the value of '%s' "
				    "would be cut short; write ';' without a space "
				    "before it, or use password_file/password_command",
				    keys[k].name);
	return 0;
}

/* ---- sections --------------------------------------------------------- */

static struct account *account_find(const struct config *c, const char *name,
				    size_t len)
{
	for (size_t i = 0; i < c->n; i++)
		if (strlen(c->v[i].name) == len && memcmp(c->v[i].name, name, len) == 0)
			return &c->v[i];
	return NULL;
}

static void account_clear(struct account *a)
{
	for (int k = 0; k < K__COUNT; k++) {
		wipe_free(a->s[k].value);
		a->s[k].value = NULL;
	}
}

static int open_defaults(struct parse *p)
{
	if (p->defaults_line)
		return perr(p, "section [defaults] given twice (first at %s:%d)",
			    p->file, p->defaults_line);
	p->defaults_line = p->lineno;
	p->c->defaults.file = p->file;
	p->c->defaults.line = p->lineno;
	p->cur = &p->c->defaults;
	return 0;
}

/* An account section; one from an earlier file (the system file) is
 * replaced as a whole by a later file (the user file). */
static int open_account(struct parse *p, const char *name, size_t len)
{
	struct config *c = p->c;
	struct account *a = account_find(c, name, len);

	if (a && a->file == p->file)
		return perr(p, "section [%s] given twice (first at %s:%d)",
			    a->name, a->file, a->line);
	if (a) {
		account_clear(a);
	} else {
		char *nm = strndup(name, len);
		struct account *v = nm ? realloc(c->v, (c->n + 1) * sizeof *v) : NULL;

		if (!v) {
			free(nm);
			return oom(p);
		}
		c->v = v;
		a = &c->v[c->n++];
		memset(a, 0, sizeof *a);
		a->name = nm;
	}
	a->file = p->file;
	a->line = p->lineno;
	p->cur = a;
	return 0;
}

/* "[name]" lines are handled here rather than left to inih, which would
 * accept "[work] junk" and silently truncate long names. */
static int section_line(struct parse *p, const char *s, size_t n)
{
	size_t e, i;

	if (n == 0 || s[0] != '[')
		return 0;
	e = 1 + strcspn(s + 1, "]");
	if (e >= n)
		return perr(p, "syntax error: section header without ']'");
	for (i = e + 1; i < n && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	if (i < n && s[i] != ';' && s[i] != '#')
		return perr(p, "syntax error: text after the section header");
	if (e == 1 || e - 1 > NAME_MAX_LEN)
		return perr(p, "bad section name (1 to %d characters)", NAME_MAX_LEN);
	for (i = 1; i < e; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
			return perr(p, "bad section name '%.*s' (letters, digits, "
				    "'-', '_' and '.' only)", (int)(e - 1), s + 1);
	if (e - 1 == 8 && memcmp(s + 1, "defaults", 8) == 0)
		return open_defaults(p);
	return open_account(p, s + 1, e - 1);
}

/* ---- the inih reader and handler --------------------------------------- */

/* Refuse what inih would mangle or what has no business in a text file. */
static int check_line(struct parse *p, const char *s, size_t n, int num)
{
	/* inih's buffer holds the line, "\n" and NUL; never let it split one */
	size_t limit = num > 2 ? (size_t)num - 2 : 0;

	if (limit > CFG_LINE_MAX)
		limit = CFG_LINE_MAX;
	if (n > limit)
		return perr(p, "line too long (%zu bytes; the limit is %zu) - use "
			    "password_file/password_command or a shorter path",
			    n, limit);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\0')
			return perr(p, "NUL byte in line");
		if (ch == '\r')
			return perr(p, "carriage return inside a line");
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return perr(p, "control character 0x%02x in line", ch);
	}
	/* inih would append an indented line to the previous value (or parse
	 * it as a new key): either way not what the writer saw.  Indented
	 * comments are harmless. */
	if (n && (s[0] == ' ' || s[0] == '\t')) {
		size_t i = strspn(s, " \t");

		if (i < n && s[i] != ';' && s[i] != '#')
			return perr(p, "indented line (continuation lines are not "
				    "supported; start keys at the beginning of the line)");
	}
	return 0;
}

static char *reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	const char *line, *nl;
	size_t n;

	if (p->failed || p->pos >= p->len)
		return NULL;
	line = p->buf + p->pos;
	nl = memchr(line, '\n', p->len - p->pos);
	n = nl ? (size_t)(nl - line) : p->len - p->pos;
	p->pos += n + (nl != NULL);
	p->lineno++;
	if (p->lineno == 1 && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;            /* UTF-8 byte order mark */
		n -= 3;
	}
	if (n && line[n - 1] == '\r')
		n--;                  /* CRLF files are fine */
	if (check_line(p, line, n, num) < 0)
		return NULL;
	p->raw = line;
	p->rawlen = n;
	if (section_line(p, line, n) < 0)
		return NULL;
	memcpy(str, line, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

/* Where key k goes.  Top-level queue_dir is a [defaults] setting. */
static struct setting *slot(struct parse *p, int k)
{
	struct account *a = p->cur ? p->cur : &p->c->defaults;

	return &a->s[k];
}

/* Store v (owned) in a setting.  A list key repeated in one file appends; any
 * other repeat in one file is an error; a later file overrides. */
static int store(struct parse *p, int k, char **value, const char **file,
		 int *line, char *v)
{
	if (*value && *file == p->file && keys[k].type == T_LIST) {
		struct sbuf b = { 0 };

		sbuf_str(&b, *value);
		sbuf_add(&b, ",", 1);
		sbuf_str(&b, v);
		wipe_free(v);
		if (!(v = sbuf_take(&b)))
			return oom(p);
	} else if (*value && *file == p->file) {
		wipe_free(v);
		return perr(p, "key '%s' given twice (first at %s:%d)",
			    keys[k].name, *file, *line);
	}
	wipe_free(*value);
	*value = v;
	*file = p->file;
	*line = p->lineno;
	return 0;
}

static int unknown_key(struct parse *p, const char *name)
{
	const char *hint = key_suggest(name);
	char sv[64], lb[64];
	const char *where = section_label(p, lb, sizeof lb);

	shown(sv, sizeof sv, name);
	if (hint)
		return perr(p, "unknown key '%s' %s; did you mean '%s'?", sv, where,
			    hint);
	return perr(p, "unknown key '%s' %s", sv, where);
}

static int handle(struct parse *p, const char *section, const char *name,
		  const char *value)
{
	char *v = NULL, lb[64];
	struct setting *s;
	int k;

	/* the reader opened the section; inih must agree */
	if (strcmp(section, p->cur ? p->cur->name : "") != 0)
		return perr(p, "internal error: section '%s' out of step", section);
	k = key_find(name);
	if (k < 0)
		return unknown_key(p, name);
	if (!(keys[k].where & where_now(p)))
		return perr(p, "key '%s' is not allowed %s (%s)", keys[k].name,
			    section_label(p, lb, sizeof lb),
			    where_text(keys[k].where));
	if (check_comment_cut(p, k) < 0 || parse_value(p, k, value, &v) < 0)
		return -1;
	if (k == K_PASSWORD || k == K_OAUTH2_CLIENT_SECRET || k == K_PROXY_PASSWORD)
		p->has_password = 1;
	if (k == K_DEFAULT_ACCOUNT)
		return store(p, k, &p->c->default_account,
			     &p->c->default_account_file,
			     &p->c->default_account_line, v);
	s = slot(p, k);
	return store(p, k, &s->value, &s->file, &s->line, v);
}

static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
	return handle(user, section, name, value) == 0;
}

/* Set inih's run-time knobs (Debian's libinih exposes them as globals; this
 * file is the only user of inih in the program):
 *  - ini_max_line: the line buffer (a VLA on inih's stack, or the heap one)
 *    is this many bytes; CFG_LINE_MAX plus "\r\n\0".  Longer lines never
 *    reach inih: the reader refuses them.
 *  - ini_allow_multiline off: indented lines must not be glued to a value
 *    (the reader refuses them anyway).
 *  - ini_stop_on_first_error: the first error is the one reported, and its
 *    line is the reader's current line.
 *  - comment prefixes and inline comments as the reader and
 *    check_comment_cut assume. */
static void inih_setup(void)
{
	ini_max_line = CFG_LINE_MAX + 3;
	ini_allow_multiline = 0;
	ini_stop_on_first_error = 1;
	ini_allow_no_value = 0;
	ini_allow_inline_comments = 1;
	ini_start_comment_prefixes = (char *)";#";
	ini_inline_comment_prefixes = (char *)";";
}

/* inih refused line `line` (with ini_stop_on_first_error, the reader's
 * current line); say what is wrong with it when we can tell. */
static int syntax_error(struct parse *p, int line)
{
	int current = line == p->lineno && p->raw;

	p->lineno = line;
	if (current && raw_separator(p) == p->raw + p->rawlen)
		return perr(p, "syntax error: expected 'key = value'");
	return perr(p, "syntax error");
}

/* ---- loading ------------------------------------------------------------ */

int cfg_check_file(const char *file, const struct stat *st, int secret,
		   struct result *r)
{
	return trust_check("", file, st, secret, r);
}

static int load_buffer(struct config *c, const char *buf, size_t len,
		       const char *name, const struct stat *st, struct result *r)
{
	struct parse p = { .c = c, .r = r, .buf = buf, .len = len };
	int rc;

	if (len > CFG_FILE_MAX)
		return result_fail(r, EX_CONFIG, "%s: too large (%zu bytes; the "
				   "limit is %d)", name, len, CFG_FILE_MAX);
	if (c->nfiles >= NFILES)
		return result_fail(r, EX_CONFIG, "%s: too many configuration files",
				   name);
	if (!c->defaults.name && !(c->defaults.name = strdup("defaults")))
		return result_fail(r, EX_OSERR, "out of memory");
	if (!(c->files[c->nfiles] = strdup(name)))
		return result_fail(r, EX_OSERR, "out of memory");
	p.file = c->files[c->nfiles++];
	inih_setup();
	rc = ini_parse_stream(reader, &p, handler, &p);
	if (p.failed)
		return -1;
	if (rc > 0)
		return syntax_error(&p, rc);
	if (rc < 0)
		return result_fail(r, EX_OSERR, "%s: out of memory", name);
	if (st)
		return cfg_check_file(name, st, p.has_password, r);
	return 0;
}

int cfg_load_string(struct config *c, const char *text, const char *name,
		    struct result *r)
{
	return load_buffer(c, text, strlen(text), name, NULL, r);
}

/* Read all of fd, at most CFG_FILE_MAX bytes. */
static int read_all(int fd, const char *path, struct sbuf *b, struct result *r)
{
	switch (sbuf_read_fd(b, fd, CFG_FILE_MAX)) {
	case 0:
		return 0;
	case -1:
		return result_fail(r, EX_CONFIG, "cannot read %s: %s", path, strerror(errno));
	case -2:
		return result_fail(r, EX_CONFIG, "%s: too large (the limit is %d bytes)",
				   path, CFG_FILE_MAX);
	default:
		return result_fail(r, EX_OSERR, "out of memory");
	}
}

enum { L_OPTIONAL = 1, L_REAL_OWNER = 2, L_SYSTEM = 4 };

/* Open, check and load one file.  L_OPTIONAL: a missing file is skipped.
 * L_REAL_OWNER: set-id run and a file the caller chose (--config, or via
 * $HOME/$XDG_CONFIG_HOME): it must belong to the real user, or a user could
 * make a privileged pushmail parse (and quote in error messages) files only
 * the privileged group can read, such as other users' mailboxes. */
static int load_path(struct config *c, const char *path, int flags, int *found,
		     struct result *r)
{
	struct sbuf b = { 0 };
	struct stat st;
	int fd, rc = -1;

	/* O_NONBLOCK: opening a FIFO must not hang; regular files ignore it */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if ((flags & L_OPTIONAL) && (errno == ENOENT || errno == ENOTDIR))
			return 0;
		/* SPEC 9: the system file is the delivery service's; a caller that
		 * may not read it sends through the drop directory */
		if ((flags & L_SYSTEM) && errno == EACCES && geteuid() != 0) {
			c->sys_denied = 1;
			return 0;
		}
		return result_fail(r, flags & L_OPTIONAL ? EX_CONFIG : EX_NOINPUT,
				   "cannot open %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		result_fail(r, EX_CONFIG, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		result_fail(r, EX_CONFIG, "%s: not a regular file", path);
		goto out;
	}
	if ((flags & L_REAL_OWNER) && st.st_uid != getuid()) {
		result_fail(r, EX_CONFIG, "%s: not owned by you (uid %u); ignored "
			    "by a set-id pushmail", path, (unsigned)getuid());
		goto out;
	}
	if ((off_t)CFG_FILE_MAX < st.st_size) {
		result_fail(r, EX_CONFIG, "%s: too large (%lld bytes; the limit "
			    "is %d)", path, (long long)st.st_size, CFG_FILE_MAX);
		goto out;
	}
	if (read_all(fd, path, &b, r) < 0)
		goto out;
	rc = load_buffer(c, b.s ? b.s : "", b.len, path, &st, r);
	if (rc == 0)
		++*found;
out:
	sbuf_free(&b);
	close(fd);
	return rc;
}

int cfg_load_file(struct config *c, const char *path, struct result *r)
{
	int found = 0;

	return load_path(c, path, 0, &found, r);
}

void cfg_set_sysconfdir(const char *dir)
{
	sysconfdir_override = dir;
}

/* $XDG_CONFIG_HOME/pushmail/config.ini, or ~/.config/pushmail/config.ini.
 * The XDG base directory spec says to ignore a relative XDG_CONFIG_HOME. */
static int user_path(char *buf, size_t cap, struct result *r)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = cfg_home_dir();
	int n;

	buf[0] = '\0';
	if (xdg && xdg[0] == '/')
		n = snprintf(buf, cap, "%s/pushmail/config.ini", xdg);
	else if (home)
		n = snprintf(buf, cap, "%s/.config/pushmail/config.ini", home);
	else
		return 0;   /* no home: no user file */
	if (n < 0 || (size_t)n >= cap)
		return result_fail(r, EX_CONFIG, "path of the user configuration "
				   "file is too long");
	return 0;
}

int cfg_load(struct config *c, const char *path, int *found, struct result *r)
{
	const char *env = getenv("PUSHMAIL_CONFIG");
	const char *dir = sysconfdir_override ? sysconfdir_override : SYSCONFDIR;
	char sys[4096], user[4096];
	int setid = cfg_running_setid();

	*found = 0;
	if (path)
		return load_path(c, path, setid ? L_REAL_OWNER : 0, found, r);
	/* a set-id pushmail must not read files named by the caller */
	if (env && *env && !setid)
		return load_path(c, env, 0, found, r);
	if ((size_t)snprintf(sys, sizeof sys, "%s/pushmail.ini", dir) >= sizeof sys)
		return result_fail(r, EX_CONFIG, "SYSCONFDIR is too long");
	if (load_path(c, sys, L_OPTIONAL | L_SYSTEM, found, r) < 0 ||
	    user_path(user, sizeof user, r) < 0)
		return -1;
	if (!user[0])
		return 0;
	return load_path(c, user, L_OPTIONAL | (setid ? L_REAL_OWNER : 0), found, r);
}

/* ---- after loading -------------------------------------------------------- */

/* "a, b, c" (or "none") for messages. */
static void account_names(const struct config *c, char *buf, size_t cap)
{
	size_t o = 0;

	snprintf(buf, cap, "none");
	for (size_t i = 0; i < c->n && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "",
				      c->v[i].name);
}

static int inherit(struct account *a, const struct account *d)
{
	for (int k = 0; k < K__COUNT; k++) {
		if (a->s[k].value || !d->s[k].value)
			continue;
		if (!(a->s[k].value = strdup(d->s[k].value)))
			return -1;
		a->s[k].file = d->s[k].file;
		a->s[k].line = d->s[k].line;
	}
	return 0;
}

/* fallback names accounts (itself is skipped where it is used). */
static int check_fallbacks(const struct config *c, struct result *r)
{
	char names[256];

	for (size_t i = 0; i < c->n; i++) {
		const struct setting *s = &c->v[i].s[K_FALLBACK];
		const char *p = s->value;
		while (p && *p) {
			size_t n = strcspn(p, ",");
			const struct account *f = account_find(c, p, n);
			if (!f) {
				account_names(c, names, sizeof names);
				return result_fail(r, EX_CONFIG, "%s:%d: fallback '%.*s' "
						   "names no account (accounts: %s)", s->file,
						   s->line, (int)(n > 64 ? 64 : n), p, names);
			}
			p += n + (p[n] == ',');
		}
	}
	return 0;
}

int cfg_finish(struct config *c, struct result *r)
{
	char names[256];

	for (size_t i = 0; i < c->n; i++) {
		struct account *a = &c->v[i];

		if (inherit(a, &c->defaults) < 0)
			return result_fail(r, EX_OSERR, "out of memory");
		if (!a->s[K_HOST].value && !a->s[K_SOCKET].value)
			return result_fail(r, EX_CONFIG, "%s:%d: account '%s' has "
					   "no host (nor socket)", a->file, a->line, a->name);
	}
	if (check_fallbacks(c, r) < 0)
		return -1;
	if (c->default_account &&
	    !account_find(c, c->default_account, strlen(c->default_account))) {
		account_names(c, names, sizeof names);
		return result_fail(r, EX_CONFIG, "%s:%d: default_account '%s' "
				   "names no account (accounts: %s)",
				   c->default_account_file, c->default_account_line,
				   c->default_account, names);
	}
	return 0;
}

static int from_matches1(const struct account *a, const char *addr)
{
	const char *from = a->s[K_FROM].value, *list = a->s[K_FROM_MATCH].value;
	char pat[CFG_LINE_MAX + 1];

	if (from && strcasecmp(from, addr) == 0)
		return 1;
	while (list && *list) {
		size_t n = strcspn(list, ",");

		if (n < sizeof pat) {
			memcpy(pat, list, n);
			pat[n] = '\0';
			if (fnmatch(pat, addr, FNM_CASEFOLD) == 0)
				return 1;
		}
		list += n + (list[n] == ',');
	}
	return 0;
}

int cfg_from_matches(const struct account *a, const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;
	const char *plus = at ? memchr(addr, '+', (size_t)(at - addr)) : NULL;
	char bare[512];

	if (!addr || !*addr)
		return 0;
	if (from_matches1(a, addr))
		return 1;
	/* user+tag@dom is user@dom for choosing an account */
	if (!plus || (size_t)(plus - addr) + strlen(at) >= sizeof bare)
		return 0;
	snprintf(bare, sizeof bare, "%.*s%s", (int)(plus - addr), addr, at);
	return from_matches1(a, bare);
}

const struct account *cfg_select(const struct config *c, const char *name,
				 const char *env_from, struct result *r)
{
	const struct account *a;
	char names[256];

	account_names(c, names, sizeof names);
	if (name) {
		if ((a = account_find(c, name, strlen(name))))
			return a;
		result_fail(r, EX_CONFIG, "no account '%s' (accounts: %s)", name,
			    names);
		return NULL;
	}
	for (size_t i = 0; env_from && i < c->n; i++)
		if (cfg_from_matches(&c->v[i], env_from))
			return &c->v[i];
	if (c->default_account &&
	    (a = account_find(c, c->default_account, strlen(c->default_account))))
		return a;
	if (c->n == 1)
		return &c->v[0];
	if (c->n == 0)
		result_fail(r, EX_CONFIG, "no accounts configured");
	else
		result_fail(r, EX_CONFIG, "cannot choose an account (accounts: %s): "
			    "set default_account, from_match, or use --account",
			    names);
	return NULL;
}

/* ---- typed access --------------------------------------------------------- */

const char *cfg_str(const struct account *a, enum cfg_key k)
{
	if (!a || (int)k < 0 || k >= K__COUNT)
		return NULL;
	return a->s[k].value;
}

int cfg_bool(const struct account *a, enum cfg_key k, int dflt)
{
	const char *v = cfg_str(a, k);

	if (!v)
		return dflt;
	if (find_word(bool_yes, v) >= 0)
		return 1;
	return find_word(bool_no, v) >= 0 ? 0 : dflt;
}

long cfg_long(const struct account *a, enum cfg_key k, long dflt)
{
	const char *v = cfg_str(a, k);
	long n;

	if (!v)
		return dflt;
	if (keys[k].type == T_DURATION)
		return parse_duration(v, keys[k].max, &n) == 0 ? n : dflt;
	return parse_num(v, 0, 999999999L, &n) == 0 ? n : dflt;
}

int cfg_rate(const struct account *a, long *n, long *period)
{
	const char *v = cfg_str(a, K_RATE_LIMIT);

	return v && sscanf(v, "%ld/%ld", n, period) == 2 && *n > 0 && *period > 0;
}

const char *cfg_key_name(enum cfg_key k)
{
	if ((int)k < 0 || k >= K__COUNT)
		return "?";
	return keys[k].name;
}

const char *cfg_socket(const struct account *a)
{
	const char *host = cfg_str(a, K_HOST), *sock = cfg_str(a, K_SOCKET);

	if (sock)
		return sock;
	return host && host[0] == '/' ? host : NULL;
}

const char *cfg_host(const struct account *a)
{
	return cfg_socket(a) ? cfg_socket(a) : cfg_str(a, K_HOST);
}

int cfg_tls_mode(const struct account *a)
{
	const char *tls = cfg_str(a, K_TLS);

	if (tls)
		return strcmp(tls, "off") == 0 ? CFG_TLS_OFF :
		       strcmp(tls, "implicit") == 0 ? CFG_TLS_IMPLICIT :
		       CFG_TLS_STARTTLS;
	/* a local socket has no one in the middle to protect against */
	if (cfg_socket(a))
		return CFG_TLS_OFF;
	/* SPEC 2: port 465 implies implicit TLS (RFC 8314) */
	return cfg_long(a, K_PORT, 0) == 465 ? CFG_TLS_IMPLICIT : CFG_TLS_STARTTLS;
}

const char *cfg_port(const struct account *a)
{
	const char *port = cfg_str(a, K_PORT), *tls = cfg_str(a, K_TLS);

	if (port)
		return port;
	if (tls && strcmp(tls, "implicit") == 0)
		return "465";
	if (tls && strcmp(tls, "off") == 0)
		return "25";
	return "587";
}

void cfg_free(struct config *c)
{
	for (size_t i = 0; i < c->n; i++) {
		account_clear(&c->v[i]);
		free(c->v[i].name);
	}
	free(c->v);
	account_clear(&c->defaults);
	free(c->defaults.name);
	free(c->default_account);
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i]);
	memset(c, 0, sizeof *c);
}
