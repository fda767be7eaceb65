/* t_config.c - unit tests for cfg.c (SPEC section 2): tables of INI texts
 * with the value, the account or the error (exit status, "file:line: ...")
 * each must produce; then the file-level rules (permissions, search order,
 * size and byte checks) on temporary files. */
#include "config.h"
#include "cfg.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACC(body) "[a]\nhost = h\n" body "\n"

static char tmpdir[] = "/tmp/t_config-XXXXXX";

/* Load text as "t.ini" and finish; returns 0 or -1 with r filled. */
static int load(struct config *c, const char *text, struct result *r)
{
	memset(c, 0, sizeof *c);
	result_clear(r);
	if (cfg_load_string(c, text, "t.ini", r) < 0)
		return -1;
	return cfg_finish(c, r);
}

static void diag_result(const struct result *r)
{
	printf("#   exit %d (%s), text: %s\n", r->exitcode,
	       result_exit_name(r->exitcode), r->text);
}

/* Checks that r holds the failure wanted: exit status and message text. */
static void want_failure(int rc, const struct result *r, int want_exit,
			 const char *want, const char *notwant, const char *name)
{
	if (!ok(rc == -1 && r->exitcode == want_exit, "%s: fails with %s", name,
		result_exit_name(want_exit)))
		diag_result(r);
	if (!ok(strstr(r->text, want) && !(notwant && strstr(r->text, notwant)),
		"%s: message", name))
		printf("#   got \"%s\"\n#   want \"%s\"%s%s\n", r->text, want,
		       notwant ? " without " : "", notwant ? notwant : "");
}

/* ---- good values ---------------------------------------------------- */

static const struct {
	const char *name, *ini, *account;
	enum cfg_key key;
	const char *want;
} good[] = {
	{ "inherits timeout", "[defaults]\ntimeout = 60\n[w]\nhost = h\n", "w", K_TIMEOUT, "60" },
	{ "account overrides default", "[defaults]\ntimeout = 60\n[w]\nhost = h\ntimeout = 5\n", "w", K_TIMEOUT, "5" },
	{ "host from defaults", "[defaults]\nhost = relay\n[w]\nport = 25\n", "w", K_HOST, "relay" },
	{ "top-level queue_dir is a default", "queue_dir = /q\n[w]\nhost = h\n", "w", K_QUEUE_DIR, "/q" },
	{ "colon separator", "[w]\nhost: h2\n", "w", K_HOST, "h2" },
	{ "CRLF lines", "[w]\r\nhost = h3\r\n", "w", K_HOST, "h3" },
	{ "UTF-8 BOM", "\xef\xbb\xbf[w]\nhost = h4\n", "w", K_HOST, "h4" },
	{ "no final newline", "[w]\nhost = h5", "w", K_HOST, "h5" },
	{ "comments and blanks", "; c\n# c\n\n[w] ; c\n  ; indented comment\nhost = h\n", "w", K_HOST, "h" },
	{ "port", ACC("port = 2525"), "a", K_PORT, "2525" },
	{ "port 1", ACC("port = 1"), "a", K_PORT, "1" },
	{ "port 65535", ACC("port = 65535"), "a", K_PORT, "65535" },
	{ "port leading zero normalised", ACC("port = 0465"), "a", K_PORT, "465" },
	{ "port with comment", ACC("port = 587 ; submission"), "a", K_PORT, "587" },
	{ "timeout 3600", ACC("timeout = 3600"), "a", K_TIMEOUT, "3600" },
	{ "tls case-insensitive", ACC("tls = STARTTLS"), "a", K_TLS, "starttls" },
	{ "tls implicit", ACC("tls = implicit"), "a", K_TLS, "implicit" },
	{ "auth scram-sha-256-plus", ACC("auth = scram-sha-256-plus"), "a", K_AUTH, "scram-sha-256-plus" },
	{ "auth gssapi", ACC("auth = gssapi"), "a", K_AUTH, "gssapi" },
	{ "queue on-failure", ACC("queue = on-failure"), "a", K_QUEUE, "on-failure" },
	{ "set_from_header on", ACC("set_from_header = on"), "a", K_SET_FROM_HEADER, "on" },
	{ "dsn_return full", ACC("dsn_return = full"), "a", K_DSN_RETURN, "full" },
	{ "dsn_notify list", ACC("dsn_notify = Failure , delay"), "a", K_DSN_NOTIFY, "failure,delay" },
	{ "dsn_notify never", ACC("dsn_notify = never"), "a", K_DSN_NOTIFY, "never" },
	{ "dsn_notify off", ACC("dsn_notify = OFF"), "a", K_DSN_NOTIFY, "off" },
	{ "bool yes", ACC("partial_delivery = yes"), "a", K_PARTIAL_DELIVERY, "yes" },
	{ "bool on", ACC("partial_delivery = on"), "a", K_PARTIAL_DELIVERY, "yes" },
	{ "bool TRUE", ACC("partial_delivery = TRUE"), "a", K_PARTIAL_DELIVERY, "yes" },
	{ "bool 1", ACC("partial_delivery = 1"), "a", K_PARTIAL_DELIVERY, "yes" },
	{ "bool off", ACC("allow_plaintext_auth = off"), "a", K_ALLOW_PLAINTEXT_AUTH, "no" },
	{ "bool false", ACC("allow_plaintext_auth = false"), "a", K_ALLOW_PLAINTEXT_AUTH, "no" },
	{ "bool 0", ACC("allow_plaintext_auth = 0"), "a", K_ALLOW_PLAINTEXT_AUTH, "no" },
	{ "from_match list", ACC("from_match = *@a.com , b+*@c.org"), "a", K_FROM_MATCH, "*@a.com,b+*@c.org" },
	{ "from_match repeats append", ACC("from_match = *@a.com\nfrom_match = *@b.com"), "a", K_FROM_MATCH, "*@a.com,*@b.com" },
	{ "quoted value", ACC("user = \"me@x.org\""), "a", K_USER, "me@x.org" },
	{ "quoted keeps spaces", ACC("user = \"  me  \""), "a", K_USER, "  me  " },
	{ "quoted password with ;", ACC("password = \"se;cret\""), "a", K_PASSWORD, "se;cret" },
	{ "quoted escapes", ACC("password = \"a\\\"b\\\\c\\d\""), "a", K_PASSWORD, "a\"b\\c\\d" },
	{ "quoted, comment after", ACC("from = \"me@x.org\" ; mine"), "a", K_FROM, "me@x.org" },
	{ "unquoted ; without space", ACC("password = abc;def"), "a", K_PASSWORD, "abc;def" },
	{ "password taken literally", ACC("password = pa$word${X}~"), "a", K_PASSWORD, "pa$word${X}~" },
	{ "password_command literal", ACC("password_command = pass show $USER"), "a", K_PASSWORD_COMMAND, "pass show $USER" },
	{ "ordinary comment cut", ACC("from = me@x.org ; my address"), "a", K_FROM, "me@x.org" },
	{ "~ expanded", ACC("log = ~/log"), "a", K_LOG, "/home/tester/log" },
	{ "bare ~", ACC("tls_trust_file = ~"), "a", K_TLS_TRUST_FILE, "/home/tester" },
	{ "~user untouched", ACC("tls_cert_file = ~bob/c.pem"), "a", K_TLS_CERT_FILE, "~bob/c.pem" },
	{ "$VAR", ACC("aliases = $PMTEST_DIR/aliases"), "a", K_ALIASES, "/srv/pm/aliases" },
	{ "${VAR}", ACC("tls_key_file = ${PMTEST_DIR}x.key"), "a", K_TLS_KEY_FILE, "/srv/pmx.key" },
	{ "$$ is a dollar", ACC("user = a$$HOME"), "a", K_USER, "a$HOME" },
	{ "lone $", ACC("user = a$ b$-"), "a", K_USER, "a$ b$-" },
	{ "quoted value is expanded too", ACC("log = \"$PMTEST_DIR/l og\""), "a", K_LOG, "/srv/pm/l og" },
	{ "line at the limit", NULL, "a", K_TLS_PRIORITIES, NULL },   /* built in main */
};

static void test_good(void)
{
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char big[CFG_LINE_MAX + 64], want[CFG_LINE_MAX];
		const char *ini = good[i].ini, *w = good[i].want;
		const struct account *a;
		struct config c;
		struct result r;

		if (!ini) {   /* a line of exactly CFG_LINE_MAX bytes */
			size_t n = CFG_LINE_MAX - strlen("tls_priorities = ");

			memset(want, 'N', n);
			want[n] = '\0';
			snprintf(big, sizeof big, ACC("tls_priorities = %s"), want);
			ini = big;
			w = want;
		}
		if (!ok(load(&c, ini, &r) == 0, "good: %s: loads", good[i].name))
			diag_result(&r);
		a = cfg_select(&c, good[i].account, NULL, &r);
		is_str(cfg_str(a, good[i].key), w, "good: %s: %s", good[i].name,
		       cfg_key_name(good[i].key));
		cfg_free(&c);
	}
}

/* ---- errors ------------------------------------------------------------ */

static const struct {
	const char *name, *ini, *want, *notwant;
} bad[] = {
	{ "tls", ACC("tls = maybe"), "t.ini:3: bad value 'maybe' for 'tls' (expected starttls, implicit or off)", NULL },
	{ "port 0", ACC("port = 0"), "t.ini:3: bad value '0' for 'port' (expected a number from 1 to 65535)", NULL },
	{ "port 65536", ACC("port = 65536"), "bad value '65536' for 'port'", NULL },
	{ "port negative", ACC("port = -1"), "bad value '-1' for 'port'", NULL },
	{ "port junk", ACC("port = 25x"), "bad value '25x' for 'port'", NULL },
	{ "port huge", ACC("port = 99999999999999999999999"), "bad value '99999999999999999999999' for 'port'", NULL },
	{ "timeout 0", ACC("timeout = 0"), "(expected a number from 1 to 3600)", NULL },
	{ "timeout 3601", ACC("timeout = 3601"), "bad value '3601' for 'timeout'", NULL },
	{ "bool", ACC("partial_delivery = maybe"), "bad value 'maybe' for 'partial_delivery' (expected yes, no, on, off, true, false, 1 or 0)", NULL },
	{ "auth", ACC("auth = cram-md6"), "bad value 'cram-md6' for 'auth' (expected auto, off, plain,", NULL },
	{ "queue", ACC("queue = sometimes"), "(expected on-failure, always or never)", NULL },
	{ "set_from_header", ACC("set_from_header = yes"), "(expected auto, on or off)", NULL },
	{ "set_date_header", ACC("set_date_header = on"), "bad value 'on' for 'set_date_header' (expected auto or off)", NULL },
	{ "set_msgid_header", ACC("set_msgid_header = always"), "for 'set_msgid_header' (expected auto or off)", NULL },
	{ "set_to_header", ACC("set_to_header = on"), "for 'set_to_header' (expected auto or off)", NULL },
	{ "dsn_return", ACC("dsn_return = hdrs"), "(expected headers or full)", NULL },
	{ "dsn_notify never+", ACC("dsn_notify = never,success"), "bad value 'never,success' for 'dsn_notify'", NULL },
	{ "dsn_notify duplicate", ACC("dsn_notify = success,success"), "for 'dsn_notify'", NULL },
	{ "dsn_notify trailing comma", ACC("dsn_notify = failure,"), "for 'dsn_notify'", NULL },
	{ "dsn_notify word", ACC("dsn_notify = always"), "for 'dsn_notify'", NULL },
	{ "from_match empty item", ACC("from_match = *@a.com,,*@b.com"), "t.ini:3: bad value '*@a.com,,*@b.com' for 'from_match'", NULL },
	{ "queue_lifetime unit", "[defaults]\nqueue_lifetime = 5w\n", "t.ini:2: bad value '5w' for 'queue_lifetime'", NULL },
	{ "queue_lifetime 0", "[defaults]\nqueue_lifetime = 0\n", "for 'queue_lifetime'", NULL },
	{ "queue_lifetime 366d", "[defaults]\nqueue_lifetime = 366d\n", "for 'queue_lifetime'", NULL },
	{ "queue_lifetime d", "[defaults]\nqueue_lifetime = d\n", "for 'queue_lifetime'", NULL },
	{ "queue_lifetime 5dd", "[defaults]\nqueue_lifetime = 5dd\n", "for 'queue_lifetime'", NULL },
	{ "empty value", ACC("user ="), "t.ini:3: empty value for 'user'", NULL },
	{ "empty quoted value", ACC("user = \"\""), "t.ini:3: empty value for 'user'", NULL },
	{ "unclosed quote", ACC("user = \"abc"), "t.ini:3: quoted value of 'user' has no closing quote", NULL },
	{ "lone quote", ACC("user = \""), "quoted value of 'user' has no closing quote", NULL },
	{ "text after quote", ACC("user = \"a\"b"), "t.ini:3: text after the closing quote of 'user'", NULL },
	{ "unset $VAR", ACC("log = $NOPE_PM/x"), "t.ini:3: $NOPE_PM is not set (used in 'log')", NULL },
	{ "unset ${VAR}", ACC("log = ${NOPE_PM}"), "t.ini:3: $NOPE_PM is not set", NULL },
	{ "unterminated ${", ACC("log = ${PMTEST_DIR"), "t.ini:3: bad or unterminated ${...} in the value of 'log'", NULL },
	{ "unknown key tsl", ACC("tsl = off"), "t.ini:3: unknown key 'tsl' in [a]; did you mean 'tls'?", NULL },
	{ "unknown key transposed", ACC("passwrod = x"), "unknown key 'passwrod' in [a]; did you mean 'password'?", NULL },
	{ "unknown key, one edit", ACC("time_out = 5"), "did you mean 'timeout'?", NULL },
	{ "unknown key, two edits", ACC("tls_prioritys = x"), "did you mean 'tls_priorities'?", NULL },
	{ "unknown key, three edits", ACC("tlx_prioritys = x"), "unknown key 'tlx_prioritys' in [a]", "did you mean" },
	{ "unknown key, no hint", ACC("frobnicate = 1"), "t.ini:3: unknown key 'frobnicate' in [a]", "did you mean" },
	{ "unknown key in defaults", "[defaults]\nhots = x\n", "t.ini:2: unknown key 'hots' in [defaults]; did you mean 'host'?", NULL },
	{ "unknown key at top level", "default_acount = a\n", "t.ini:1: unknown key 'default_acount' at top level; did you mean 'default_account'?", NULL },
	{ "account key at top level", "host = h\n", "t.ini:1: key 'host' is not allowed at top level (only in [defaults] or an account section)", NULL },
	{ "queue_lifetime in account", ACC("queue_lifetime = 5d"), "t.ini:3: key 'queue_lifetime' is not allowed in [a] (only in [defaults])", NULL },
	{ "queue_dir in account", ACC("queue_dir = /q"), "key 'queue_dir' is not allowed in [a] (only at top level or in [defaults])", NULL },
	{ "default_account in defaults", "[defaults]\ndefault_account = a\n", "t.ini:2: key 'default_account' is not allowed in [defaults] (only at top level)", NULL },
	{ "repeated key", ACC("host = i"), "t.ini:3: key 'host' given twice (first at t.ini:2)", NULL },
	{ "repeated default_account", "default_account = a\ndefault_account = b\n", "t.ini:2: key 'default_account' given twice (first at t.ini:1)", NULL },
	{ "queue_dir top and defaults", "queue_dir = /a\n[defaults]\nqueue_dir = /b\n", "t.ini:3: key 'queue_dir' given twice (first at t.ini:1)", NULL },
	{ "repeated section", "[a]\nhost = h\n[b]\nhost = h\n[a]\n", "t.ini:5: section [a] given twice (first at t.ini:1)", NULL },
	{ "repeated defaults", "[defaults]\n[defaults]\n", "t.ini:2: section [defaults] given twice (first at t.ini:1)", NULL },
	{ "section name with space", "[wo rk]\n", "t.ini:1: bad section name 'wo rk'", NULL },
	{ "section name with slash", "[a/b]\n", "bad section name 'a/b' (letters, digits, '-', '_' and '.' only)", NULL },
	{ "empty section name", "[]\n", "t.ini:1: bad section name (1 to 32 characters)", NULL },
	{ "long section name", "[abcdefghijklmnopqrstuvwxyz0123456]\n", "t.ini:1: bad section name (1 to 32", NULL },
	{ "section without ]", "[a]\nhost = h\n[work\n", "t.ini:3: syntax error: section header without ']'", NULL },
	{ "text after section", "[a] junk\n", "t.ini:1: syntax error: text after the section header", NULL },
	{ "key without =", ACC("just some words"), "t.ini:3: syntax error: expected 'key = value'", NULL },
	{ "empty key", ACC("= value"), "t.ini:3: unknown key '' in [a]", NULL },
	{ "continuation line", ACC("from_match = *@a.com, *@b.com\n  *@c.com"), "t.ini:4: indented line (continuation lines are not supported", NULL },
	{ "indented key", ACC("  port = 25"), "t.ini:3: indented line", NULL },
	{ "password with ' ;'", ACC("password = abc ;def"), "t.ini:3: ' ;' starts a comment, so the value of 'password' would be cut short", NULL },
	{ "password with comment", ACC("password = abc ; old one"), "use password_file/password_command", NULL },
	{ "password tab ;", ACC("password = abc\t;def"), "t.ini:3: ' ;' starts a comment", NULL },
	{ "quoted ' ;'", ACC("from = \"a ;b@x\""), "t.ini:3: ' ;' starts a comment, so the value of 'from' would be cut short", NULL },
	{ "quoted password ' ;'", ACC("password = \"a ;b\""), "the value of 'password' would be cut short", NULL },
	{ "no host", "[defaults]\nport = 25\n[a]\nport = 26\n", "t.ini:3: account 'a' has no host", NULL },
	{ "default_account unknown", "default_account = zz\n[a]\nhost = h\n", "t.ini:1: default_account 'zz' names no account (accounts: a)", NULL },
	{ "rate_limit without a period", ACC("rate_limit = 100"), "t.ini:3: bad value '100' for 'rate_limit'", NULL },
	{ "rate_limit zero", ACC("rate_limit = 0/1h"), "a count and a period such as 100/1h", NULL },
	{ "rate_limit bad period", ACC("rate_limit = 5/1y"), "a count and a period such as 100/1h", NULL },
	{ "fallback unknown", "[a]\nhost = h\nfallback = b, zz\n[b]\nhost = h2\n", "t.ini:3: fallback 'zz' names no account (accounts: a, b)", NULL },
	{ "control character", "\x01\x02junk\n", "t.ini:1: control character 0x01", NULL },
	{ "escape sequence", ACC("user = a\x1b[2Jb"), "t.ini:3: control character 0x1b", NULL },
	{ "carriage return", "[a]\r\nhost = h\rx\n", "t.ini:2: carriage return inside a line", NULL },
	{ "binary junk", "[a]\nhost = h\n\xff\xfe\x80garbage\x7f\n", "t.ini:3: control character 0x7f", NULL },
	{ "long line", NULL, "t.ini:3: line too long (1100 bytes; the limit is 1024)", NULL },
	{ "long comment", NULL, "t.ini:2: line too long (1025 bytes; the limit is 1024)", NULL },
};

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char big[1200];
		const char *ini = bad[i].ini;
		struct config c;
		struct result r;
		int rc;

		if (!ini && strcmp(bad[i].name, "long line") == 0) {
			/* line 3: "password = " and 1089 bytes: 1100 in all */
			snprintf(big, sizeof big, "[a]\nhost = h\npassword = %0*d\n"
				 "port = 25\n", 1089, 7);
			ini = big;
		} else if (!ini) {
			/* line 2: ";" and 1024 bytes */
			snprintf(big, sizeof big, "[a]\n;%0*d\nhost = h\n", 1024, 7);
			ini = big;
		}
		rc = load(&c, ini, &r);
		want_failure(rc, &r, EX_CONFIG, bad[i].want, bad[i].notwant, bad[i].name);
		cfg_free(&c);
	}
}

/* ---- every key of the table is reachable and stores what it should ---- */

static const struct {
	const char *in, *out;
} samples[K__COUNT] = {
	[K_HOST] = { "mx", "mx" }, [K_PORT] = { "25", "25" },
	[K_TLS] = { "off", "off" }, [K_TLS_TRUST_FILE] = { "system", "system" },
	[K_TLS_FINGERPRINT] = { "sha256:AB", "sha256:AB" },
	[K_TLS_CERT_FILE] = { "/c", "/c" }, [K_TLS_KEY_FILE] = { "/k", "/k" },
	[K_TLS_PRIORITIES] = { "NORMAL", "NORMAL" },
	[K_TLS_HOST_OVERRIDE] = { "h.example", "h.example" },
	[K_AUTH] = { "plain", "plain" }, [K_USER] = { "u", "u" },
	[K_PASSWORD] = { "pw", "pw" }, [K_PASSWORD_COMMAND] = { "cat /p", "cat /p" },
	[K_PASSWORD_FILE] = { "/p", "/p" }, [K_FROM] = { "a@b", "a@b" },
	[K_FROM_MATCH] = { "*@b", "*@b" }, [K_ALLOW_FROM_OVERRIDE] = { "on", "yes" },
	[K_DOMAIN] = { "me.example", "me.example" }, [K_QUEUE] = { "always", "always" },
	[K_QUEUE_DIR] = { "/q", "/q" }, [K_QUEUE_LIFETIME] = { "12h", "12h" },
	[K_QUEUE_RETRY] = { "2m", "2m" }, [K_QUEUE_RETRY_MAX] = { "2h", "2h" },
	[K_PARTIAL_DELIVERY] = { "no", "no" }, [K_ALLOW_PLAINTEXT_AUTH] = { "yes", "yes" },
	[K_DSN_NOTIFY] = { "delay", "delay" }, [K_DSN_RETURN] = { "headers", "headers" },
	[K_SET_DATE_HEADER] = { "off", "off" }, [K_SET_MSGID_HEADER] = { "auto", "auto" },
	[K_SET_FROM_HEADER] = { "off", "off" }, [K_SET_TO_HEADER] = { "off", "off" },
	[K_MAILDOMAIN] = { "b", "b" }, [K_LOG] = { "syslog, /var/log/x", "syslog,/var/log/x" },
	[K_TIMEOUT] = { "9", "9" }, [K_ALIASES] = { "/etc/aliases", "/etc/aliases" },
	[K_TRUSTED_USERS] = { "alice, bob", "alice,bob" },
	[K_LOG_FACILITY] = { "local3", "local3" },
	[K_ADMIN_ADDRESS] = { "root@b", "root@b" },
	[K_FALLBACK] = { "a", "a" },
	[K_RATE_LIMIT] = { "100/1h", "100/3600" },
	[K_DELAY_WARNING] = { "4h", "4h" }, [K_AUTH_FAILURES_NOTIFY] = { "5", "5" },
	/* OAuth2 (issue 18) */
	[K_OAUTH2_PROVIDER] = { "google", "google" },
	[K_OAUTH2_CLIENT_ID] = { "cid.apps", "cid.apps" },
	[K_OAUTH2_CLIENT_SECRET] = { "s$ec;ret", "s$ec;ret" },
	[K_OAUTH2_TOKEN_URL] = { "https://t.example/token", "https://t.example/token" },
	[K_OAUTH2_DEVICE_URL] = { "https://t.example/dev", "https://t.example/dev" },
	[K_OAUTH2_SCOPE] = { "a b", "a b" },
	[K_OAUTH2_TRUST_FILE] = { "/ca.pem", "/ca.pem" },
	/* transports (issue 16) */
	[K_SOURCE_ADDRESS] = { "2001:DB8:0::1", "2001:db8::1" },
	[K_IP_VERSION] = { "6", "6" }, [K_PROTOCOL] = { "LMTP", "lmtp" },
	[K_SOCKET] = { "/run/lmtp", "/run/lmtp" },
	[K_PROXY] = { "SOCKS5H://[::1]:1080", "socks5h://[::1]:1080" },
	[K_PROXY_USER] = { "pu", "pu" }, [K_PROXY_PASSWORD] = { "p$w", "p$w" },
	[K_PROXY_PASSWORD_COMMAND] = { "cat /pp", "cat /pp" },
	[K_PROXY_PASSWORD_FILE] = { "/pp", "/pp" },
};

static void test_every_key(void)
{
	int bad_keys = 0;

	for (int k = 0; k < K__COUNT; k++) {
		char ini[256];
		struct config c;
		struct result r;

		/* [defaults] accepts every key, so inheritance is covered too */
		snprintf(ini, sizeof ini, "[defaults]\n%s = %s\n[a]\n%s",
			 cfg_key_name(k), samples[k].in, k == K_HOST ? "" : "host = h\n");
		if (load(&c, ini, &r) < 0 || !cfg_str(&c.v[0], k) ||
		    strcmp(cfg_str(&c.v[0], k), samples[k].out) != 0) {
			printf("#   key %s: %s\n", cfg_key_name(k), r.text);
			bad_keys++;
		}
		cfg_free(&c);
	}
	is_int(bad_keys, 0, "every key loads from [defaults] and is inherited");
	is_str(cfg_key_name(K__COUNT), "?", "cfg_key_name out of range");
}

/* ---- selection ---------------------------------------------------------- */

static const char sel_ini[] =
	"default_account = home\n"
	"[work]\nhost = w\nfrom = me@work.example\n"
	"[home]\nhost = h\nfrom_match = *@home.example, *@family.example\n"
	"[list]\nhost = l\nfrom_match = lists-*@example.org\nfrom_match = bob@x.org\n";

static const struct {
	const char *name, *ini, *account, *from, *want, *err;
} sel[] = {
	{ "--account", sel_ini, "work", NULL, "work", NULL },
	{ "--account beats from", sel_ini, "list", "me@work.example", "list", NULL },
	{ "--account unknown", sel_ini, "nope", NULL, NULL, "no account 'nope' (accounts: work, home, list)" },
	{ "from exact", sel_ini, NULL, "me@work.example", "work", NULL },
	{ "from case-insensitive", sel_ini, NULL, "ME@Work.EXAMPLE", "work", NULL },
	{ "from plus-address", sel_ini, NULL, "me+tag@work.example", "work", NULL },
	{ "from_match glob", sel_ini, NULL, "kid@family.example", "home", NULL },
	{ "from_match glob case", sel_ini, NULL, "Lists-X@Example.ORG", "list", NULL },
	{ "from_match prefix glob", sel_ini, NULL, "lists-x@example.org", "list", NULL },
	{ "second from_match line", sel_ini, NULL, "bob@x.org", "list", NULL },
	{ "plus-address on glob", sel_ini, NULL, "bob+news@x.org", "list", NULL },
	{ "no match: default_account", sel_ini, NULL, "other@else.example", "home", NULL },
	{ "no sender: default_account", sel_ini, NULL, NULL, "home", NULL },
	{ "no plus confusion", sel_ini, NULL, "bo+b@x.org", "home", NULL },
	{ "only account", "[x]\nhost = h\n", NULL, "zz@zz", "x", NULL },
	{ "ambiguous", "[x]\nhost = h\n[y]\nhost = h\n", NULL, "zz@zz", NULL,
	  "cannot choose an account (accounts: x, y)" },
	{ "no accounts", "", NULL, NULL, NULL, "no accounts configured" },
	{ "only comments", "; nothing\n# here\n", NULL, "a@b", NULL, "no accounts configured" },
};

static void test_select(void)
{
	for (size_t i = 0; i < sizeof sel / sizeof sel[0]; i++) {
		const struct account *a;
		struct config c;
		struct result r;

		if (!ok(load(&c, sel[i].ini, &r) == 0, "select: %s: loads", sel[i].name))
			diag_result(&r);
		a = cfg_select(&c, sel[i].account, sel[i].from, &r);
		if (sel[i].want)
			is_str(a ? a->name : NULL, sel[i].want, "select: %s", sel[i].name);
		else
			want_failure(a ? 0 : -1, &r, EX_CONFIG, sel[i].err, NULL,
				     sel[i].name);
		cfg_free(&c);
	}
}

/* ---- derived port / TLS mode and typed access ---------------------------- */

static const struct {
	const char *body, *port;
	int mode;
} derived[] = {
	{ "", "587", CFG_TLS_STARTTLS },
	{ "tls = starttls", "587", CFG_TLS_STARTTLS },
	{ "tls = implicit", "465", CFG_TLS_IMPLICIT },
	{ "tls = off", "25", CFG_TLS_OFF },
	{ "port = 465", "465", CFG_TLS_IMPLICIT },
	{ "port = 2525", "2525", CFG_TLS_STARTTLS },
	{ "port = 465\ntls = starttls", "465", CFG_TLS_STARTTLS },
	{ "port = 25\ntls = off", "25", CFG_TLS_OFF },
};

static const struct {
	const char *in;
	long secs;
} lifetimes[] = {
	{ "5d", 432000 }, { "12h", 43200 }, { "30m", 1800 }, { "3600", 3600 },
	{ "90s", 90 }, { "365d", 31536000 },
};

static void test_typed(void)
{
	char ini[256];
	struct config c;
	struct result r;

	for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++) {
		snprintf(ini, sizeof ini, "[a]\nhost = h\n%s\n", derived[i].body);
		load(&c, ini, &r);
		is_str(cfg_port(&c.v[0]), derived[i].port, "cfg_port, case %zu", i);
		is_int(cfg_tls_mode(&c.v[0]), derived[i].mode, "cfg_tls_mode, case %zu", i);
		cfg_free(&c);
	}
	for (size_t i = 0; i < sizeof lifetimes / sizeof lifetimes[0]; i++) {
		snprintf(ini, sizeof ini, "[defaults]\nqueue_lifetime = %s\n[a]\nhost = h\n",
			 lifetimes[i].in);
		load(&c, ini, &r);
		is_str(cfg_str(&c.defaults, K_QUEUE_LIFETIME), lifetimes[i].in,
		       "queue_lifetime %s stored as given", lifetimes[i].in);
		is_int(cfg_long(&c.v[0], K_QUEUE_LIFETIME, -1), lifetimes[i].secs,
		       "queue_lifetime %s in seconds (inherited)", lifetimes[i].in);
		cfg_free(&c);
	}
	load(&c, "[defaults]\ntimeout = 42\n\n[a]\nhost = h\npartial_delivery = on\n", &r);
	is_int(cfg_long(&c.v[0], K_TIMEOUT, -1), 42, "cfg_long timeout");
	is_int(cfg_long(&c.v[0], K_PORT, -1), -1, "cfg_long default when unset");
	is_int(cfg_bool(&c.v[0], K_PARTIAL_DELIVERY, 0), 1, "cfg_bool on");
	is_int(cfg_bool(&c.v[0], K_ALLOW_PLAINTEXT_AUTH, 7), 7, "cfg_bool default when unset");
	ok(cfg_str(&c.v[0], K_USER) == NULL, "cfg_str unset is NULL");
	is_int(c.v[0].s[K_TIMEOUT].line, 2, "inherited setting keeps its [defaults] line");
	is_str(c.v[0].s[K_TIMEOUT].file, "t.ini", "inherited setting keeps its file");
	is_int(c.v[0].line, 4, "account remembers its header line");
	cfg_free(&c);
}

/* Two loads: the later file overrides [defaults] keys, replaces same-named
 * accounts, and a repeat across files is not an error. */
static void test_two_strings(void)
{
	struct config c = { 0 };
	struct result r;

	result_clear(&r);
	cfg_load_string(&c, "default_account = s\n[defaults]\ntimeout = 1\nqueue_dir = /q\n"
			"[s]\nhost = sys\nport = 2525\n[t]\nhost = t\n", "sys.ini", &r);
	cfg_load_string(&c, "default_account = s\n[defaults]\ntimeout = 2\n[s]\nhost = usr\n",
			"user.ini", &r);
	if (!ok(cfg_finish(&c, &r) == 0, "two files: finish"))
		diag_result(&r);
	is_int(c.n, 2, "two files: accounts s and t");
	is_str(cfg_str(&c.v[0], K_HOST), "usr", "two files: user account replaces system one");
	ok(cfg_str(&c.v[0], K_PORT) == NULL, "two files: replaced account keeps nothing");
	is_str(cfg_str(&c.v[0], K_TIMEOUT), "2", "two files: user [defaults] overrides");
	is_str(c.v[0].s[K_TIMEOUT].file, "user.ini", "two files: setting names its file");
	is_str(cfg_str(&c.v[1], K_QUEUE_DIR), "/q", "two files: system default survives");
	is_str(c.default_account_file, "user.ini", "two files: default_account from user file");
	cfg_free(&c);
}

/* ---- files ------------------------------------------------------------------ */

static void write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	/* O_TRUNC keeps the inode, so the mode is set explicitly every time */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) < 0) {
		printf("Bail out! cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(fd);
}

static void write_str(const char *path, const char *s, mode_t mode)
{
	write_file(path, s, strlen(s), mode);
}

static int load_file(struct config *c, const char *path, struct result *r)
{
	memset(c, 0, sizeof *c);
	result_clear(r);
	return cfg_load_file(c, path, r);
}

static void test_permissions(void)
{
	static const char pw[] = "[a]\nhost = h\npassword = secret\n";
	char path[128], want[512];
	struct config c;
	struct result r;
	struct group *mail = getgrnam("mail");

	snprintf(path, sizeof path, "%s/pw.ini", tmpdir);
	write_str(path, pw, 0600);
	if (!ok(load_file(&c, path, &r) == 0, "mode 0600 with password loads"))
		diag_result(&r);
	cfg_free(&c);

	write_str(path, pw, 0644);
	snprintf(want, sizeof want, "%s: holds a password but is readable by "
		 "group/others (mode 0644); chmod 600 %s", path, path);
	want_failure(load_file(&c, path, &r), &r, EX_CONFIG, want, NULL,
		     "mode 0644 with password");
	cfg_free(&c);

	write_str(path, "[a]\nhost = h\n", 0644);
	ok(load_file(&c, path, &r) == 0, "mode 0644 without password loads");
	cfg_free(&c);

	write_str(path, "[a]\nhost = h\n", 0664);
	snprintf(want, sizeof want, "%s: writable by group or others (mode 0664); "
		 "chmod go-w %s", path, path);
	want_failure(load_file(&c, path, &r), &r, EX_CONFIG, want, NULL,
		     "group-writable file without password");
	cfg_free(&c);
	write_str(path, "[a]\nhost = h\n", 0602);
	want_failure(load_file(&c, path, &r), &r, EX_CONFIG, "writable by group or others",
		     NULL, "world-writable file");
	cfg_free(&c);

	if (geteuid() != 0)
		return;   /* the ownership cases need chown */
	/* issue 13: root must not run another user's password_command */
	write_str(path, "[a]\nhost = h\npassword_command = id\n", 0600);
	if (chown(path, 12345, (gid_t)-1) == 0) {
		want_failure(load_file(&c, path, &r), &r, EX_CONFIG,
			     "owned by uid 12345, neither you (uid 0) nor root", NULL,
			     "file owned by someone else, no password");
		cfg_free(&c);
	}
	write_str(path, pw, 0600);
	if (chown(path, 12345, (gid_t)-1) == 0) {
		want_failure(load_file(&c, path, &r), &r, EX_CONFIG,
			     "owned by uid 12345", NULL,
			     "password file owned by someone else");
		cfg_free(&c);
	}
	/* the old set-gid design's root:mail 0640 is no longer trusted */
	write_str(path, pw, 0640);
	if (mail && chown(path, 0, mail->gr_gid) == 0) {
		want_failure(load_file(&c, path, &r), &r, EX_CONFIG, "(mode 0640)",
			     NULL, "root:mail 0640 with password");
		cfg_free(&c);
	}
	if (chown(path, 0, 0) == 0) {
		want_failure(load_file(&c, path, &r), &r, EX_CONFIG, "(mode 0640)",
			     NULL, "root:root 0640 with password");
		cfg_free(&c);
	}
	write_str(path, "[a]\nhost = h\n", 0644);
	if (chown(path, 0, 0) == 0) {
		ok(load_file(&c, path, &r) == 0, "root-owned 0644 without password loads");
		cfg_free(&c);
	}
}

static void test_file_bytes(void)
{
	char path[128], want[512];
	struct config c;
	struct result r;
	size_t big = 2 * 1024 * 1024;
	char *junk = malloc(big);

	snprintf(path, sizeof path, "%s/nul.ini", tmpdir);
	write_file(path, "[a]\nhost = h\0x\n", 15, 0600);
	snprintf(want, sizeof want, "%s:2: NUL byte in line", path);
	want_failure(load_file(&c, path, &r), &r, EX_CONFIG, want, NULL, "NUL byte");
	cfg_free(&c);

	memset(junk, '\n', big);
	snprintf(path, sizeof path, "%s/big.ini", tmpdir);
	write_file(path, junk, big, 0600);
	want_failure(load_file(&c, path, &r), &r, EX_CONFIG,
		     "too large (2097152 bytes; the limit is 1048576)", NULL, "2 MiB file");
	cfg_free(&c);
	free(junk);

	snprintf(path, sizeof path, "%s/empty.ini", tmpdir);
	write_file(path, "", 0, 0600);
	ok(load_file(&c, path, &r) == 0 && c.n == 0 && c.nfiles == 1, "empty file loads");
	cfg_free(&c);

	want_failure(load_file(&c, tmpdir, &r), &r, EX_CONFIG, "not a regular file",
		     NULL, "directory");
	cfg_free(&c);
	want_failure(load_file(&c, "/nonexistent/pm.ini", &r), &r, EX_NOINPUT,
		     "cannot open /nonexistent/pm.ini: No such file or directory",
		     NULL, "cfg_load_file missing");
	cfg_free(&c);
}

/* Search order with a test system directory and XDG_CONFIG_HOME. */
static void test_search(void)
{
	char sys[64], xdg[64], file[128], env[128];
	struct config c = { 0 };
	struct result r;
	int found = -1;

	snprintf(sys, sizeof sys, "%s/etc", tmpdir);
	snprintf(xdg, sizeof xdg, "%s/xdg", tmpdir);
	mkdir(sys, 0700);
	mkdir(xdg, 0700);
	snprintf(file, sizeof file, "%s/pushmail", xdg);
	mkdir(file, 0700);
	cfg_set_sysconfdir(sys);
	setenv("XDG_CONFIG_HOME", xdg, 1);
	unsetenv("PUSHMAIL_CONFIG");

	result_clear(&r);
	ok(cfg_load(&c, NULL, &found, &r) == 0 && found == 0, "no files: found 0, no error");
	cfg_free(&c);

	snprintf(file, sizeof file, "%s/pushmail.ini", sys);
	write_str(file, "[shared]\nhost = sys\nport = 2525\n[sysonly]\nhost = so\n"
		  "[defaults]\ntimeout = 10\n", 0644);
	ok(cfg_load(&c, NULL, &found, &r) == 0 && found == 1 && c.n == 2,
	   "system file alone: found 1");
	cfg_free(&c);

	snprintf(file, sizeof file, "%s/pushmail/config.ini", xdg);
	write_str(file, "[shared]\nhost = usr\n[defaults]\ntimeout = 20\n", 0600);
	if (!ok(cfg_load(&c, NULL, &found, &r) == 0 && cfg_finish(&c, &r) == 0 &&
		found == 2, "system and user file: found 2"))
		diag_result(&r);
	is_str(cfg_str(cfg_select(&c, "shared", NULL, &r), K_HOST), "usr",
	       "user account replaces system account");
	ok(cfg_str(cfg_select(&c, "shared", NULL, &r), K_PORT) == NULL,
	   "replaced account inherits nothing from the system account");
	is_str(cfg_str(cfg_select(&c, "sysonly", NULL, &r), K_TIMEOUT), "20",
	   "user [defaults] overrides system [defaults]");
	cfg_free(&c);

	snprintf(env, sizeof env, "%s/pushmail.ini", sys);
	setenv("PUSHMAIL_CONFIG", env, 1);
	ok(cfg_load(&c, NULL, &found, &r) == 0 && found == 1 && c.n == 2 &&
	   strcmp(c.files[0], env) == 0, "$PUSHMAIL_CONFIG honoured (and alone)");
	cfg_free(&c);

	ok(cfg_load(&c, file, &found, &r) == 0 && found == 1 &&
	   strcmp(c.files[0], file) == 0, "explicit path beats $PUSHMAIL_CONFIG");
	cfg_free(&c);

	setenv("PUSHMAIL_CONFIG", "/nonexistent/env.ini", 1);
	want_failure(cfg_load(&c, NULL, &found, &r), &r, EX_NOINPUT,
		     "cannot open /nonexistent/env.ini", NULL, "missing $PUSHMAIL_CONFIG");
	cfg_free(&c);
	unsetenv("PUSHMAIL_CONFIG");

	want_failure(cfg_load(&c, "/nonexistent/x.ini", &found, &r), &r, EX_NOINPUT,
		     "cannot open /nonexistent/x.ini: No such file", NULL,
		     "explicit missing file");
	cfg_free(&c);
	cfg_set_sysconfdir(NULL);
	unsetenv("XDG_CONFIG_HOME");
}

static void cleanup(void)
{
	char cmd[300];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
}

int main(void)
{
	setenv("HOME", "/home/tester", 1);
	setenv("PMTEST_DIR", "/srv/pm", 1);
	unsetenv("NOPE_PM");
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_good();
	test_bad();
	test_every_key();
	test_select();
	test_typed();
	test_two_strings();
	test_permissions();
	test_file_bytes();
	test_search();
	cleanup();
	return tap_done();
}
