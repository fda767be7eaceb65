/* t_msmtprc.c - unit tests for msmtprc.c: tables of msmtprc files shaped like
 * real ones, each converted, loaded back with cfg_load_string + cfg_finish,
 * and checked setting by setting against what msmtp 1.8 itself uses for that
 * file (the expected values were cross-checked with `msmtp --pretend`).
 * Then the comments that must (or must never) appear, hostile input, and
 * the file search of msmtprc_convert_file. */
#include "config.h"
#include "cfg.h"
#include "msmtprc.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HOME "/home/tester"

/* Convert len bytes of rc; returns the output (caller frees) or NULL. */
static char *convert(const char *rc, size_t len, struct result *r)
{
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);

	result_clear(r);
	if (!m)
		return NULL;
	if (msmtprc_convert(rc, len, "test.msmtprc", m, r) < 0) {
		fclose(m);
		free(out);
		return NULL;
	}
	fclose(m);
	return out;
}

/* Load converted text into c the way pushmail loads a file. */
static int load(struct config *c, const char *ini, struct result *r)
{
	memset(c, 0, sizeof *c);
	result_clear(r);
	if (cfg_load_string(c, ini, "converted.ini", r) < 0)
		return -1;
	return cfg_finish(c, r);
}

static const struct account *find(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].name, name) == 0)
			return &c->v[i];
	return NULL;
}

/* ---- real-world-shaped files -------------------------------------------- */

struct want {
	const char *account;
	enum cfg_key key;
	const char *value;       /* NULL: must be unset */
};

struct fixture {
	const char *name, *rc;
	size_t accounts;         /* sections pushmail must see */
	const char *dflt;        /* default_account, or NULL */
	struct want w[20];
	const char *has[8];      /* text the output must contain */
	const char *hasnot[4];   /* text it must not contain */
};

static const struct fixture fixtures[] = {
	{ "Gmail, app password",
	  "# ~/.msmtprc\n"
	  "defaults\n"
	  "auth           on\n"
	  "tls            on\n"
	  "tls_trust_file /etc/ssl/certs/ca-certificates.crt\n"
	  "logfile        ~/.msmtp.log\n"
	  "\n"
	  "# Gmail\n"
	  "account        gmail\n"
	  "host           smtp.gmail.com\n"
	  "port           587\n"
	  "from           jane.doe@gmail.com\n"
	  "user           jane.doe@gmail.com\n"
	  "password       abcd efgh ijkl mnop\n"
	  "\n"
	  "account default : gmail\n",
	  1, "gmail",
	  { { "gmail", K_HOST, "smtp.gmail.com" },
	    { "gmail", K_PORT, "587" },
	    { "gmail", K_TLS, "starttls" },
	    { "gmail", K_AUTH, "auto" },
	    { "gmail", K_USER, "jane.doe@gmail.com" },
	    { "gmail", K_PASSWORD, "abcd efgh ijkl mnop" },
	    { "gmail", K_FROM, "jane.doe@gmail.com" },
	    { "gmail", K_TLS_TRUST_FILE, "/etc/ssl/certs/ca-certificates.crt" },
	    { "gmail", K_LOG, HOME "/.msmtp.log" } },
	  { "; pushmail configuration converted from test.msmtprc",
	    "chmod 600", "is account 'gmail'" },
	  { "unencrypted" } },

	{ "Gmail, OAuth2 with passwordeval",
	  "account gmail-oauth\n"
	  "host smtp.gmail.com\n"
	  "port 465\n"
	  "tls on\n"
	  "tls_starttls off\n"
	  "auth oauthbearer\n"
	  "user jane.doe@gmail.com\n"
	  "from jane.doe@gmail.com\n"
	  "passwordeval \"oauth2-helper --provider google --user jane.doe@gmail.com\"\n",
	  1, NULL,
	  { { "gmail-oauth", K_TLS, "implicit" },
	    { "gmail-oauth", K_PORT, "465" },
	    { "gmail-oauth", K_AUTH, "oauthbearer" },
	    { "gmail-oauth", K_PASSWORD_COMMAND,
	      "oauth2-helper --provider google --user jane.doe@gmail.com" },
	    { "gmail-oauth", K_PASSWORD, NULL } },
	  { NULL }, { "chmod 600" } },

	{ "Microsoft 365, XOAUTH2",
	  "defaults\n"
	  "tls on\n"
	  "tls_starttls on\n"
	  "account office365\n"
	  "host smtp.office365.com\n"
	  "port 587\n"
	  "auth xoauth2\n"
	  "user john@contoso.com\n"
	  "from john@contoso.com\n"
	  "passwordeval \"mutt_oauth2.py ~/.john.tokens\"\n",
	  1, NULL,
	  { { "office365", K_TLS, "starttls" },
	    { "office365", K_PORT, "587" },
	    { "office365", K_AUTH, "xoauth2" },
	    /* the shell expands '~' when it runs the command, not pushmail */
	    { "office365", K_PASSWORD_COMMAND, "mutt_oauth2.py ~/.john.tokens" } },
	  { NULL }, { NULL } },

	{ "Fastmail, implicit TLS; TLS without a port",
	  "account fastmail\n"
	  "host smtp.fastmail.com\n"
	  "port 465\n"
	  "tls on\n"
	  "tls_starttls off\n"
	  "auth on\n"
	  "user me@fastmail.com\n"
	  "password \"p@ss w0rd;x\"\n"
	  "from me@fastmail.com\n"
	  "account smtps\n"
	  "host mail.isp.example\n"
	  "tls on\n"
	  "tls_nostarttls\n"
	  "account isp\n"
	  "host mail.isp.example\n"
	  "tls\n"
	  "auth\n"
	  "user 12345\n",
	  3, NULL,
	  { { "fastmail", K_TLS, "implicit" },
	    { "fastmail", K_PORT, "465" },
	    { "fastmail", K_PASSWORD, "p@ss w0rd;x" },
	    { "smtps", K_TLS, "implicit" },
	    { "smtps", K_PORT, "465" },
	    /* msmtp's default port is 25 even with STARTTLS; pushmail's is 587 */
	    { "isp", K_PORT, "25" },
	    { "isp", K_TLS, "starttls" },
	    { "isp", K_AUTH, "auto" } },
	  { NULL }, { NULL } },

	{ "local relay without TLS",
	  "account lan\n"
	  "host 192.168.1.1\n"
	  "from root@router.lan\n"
	  "account relay\n"
	  "host relay.lan\n"
	  "port 2525\n"
	  "tls off\n"
	  "auth plain\n"
	  "user backup\n"
	  "password s3cret\n",
	  2, NULL,
	  { { "lan", K_TLS, "off" },
	    { "lan", K_PORT, "25" },
	    { "lan", K_AUTH, "off" },
	    { "relay", K_TLS, "off" },
	    { "relay", K_PORT, "2525" },
	    { "relay", K_AUTH, "plain" },
	    { "relay", K_ALLOW_PLAINTEXT_AUTH, NULL } },
	  { "; WARNING: msmtp sent this account's mail unencrypted (no 'tls on'",
	    "; WARNING: msmtp sent this account's mail unencrypted (tls off)",
	    "allow_plaintext_auth = yes (trusted networks only)" },
	  { "; msmtp: the password" } },

	{ "inheritance: parents, several parents, defaults in between",
	  "defaults\n"
	  "port 587\n"
	  "tls on\n"
	  "account common\n"
	  "auth on\n"
	  "user shared@example.com\n"
	  "passwordeval pass show common\n"
	  "account work : common\n"
	  "host smtp.work.example\n"
	  "from me@work.example\n"
	  "account personal\n"
	  "host smtp.home.example\n"
	  "from me@home.example\n"
	  "auth plain\n"
	  "user me\n"
	  "password hunter2\n"
	  "defaults\n"
	  "port 2525\n"
	  "account both : work, personal\n"
	  "from both@example.com\n"
	  "account later : work\n"
	  "account broken : nosuch\n"
	  "host b.example\n",
	  5, NULL,
	  { { "work", K_HOST, "smtp.work.example" },
	    { "work", K_PORT, "587" },
	    { "work", K_USER, "shared@example.com" },
	    { "work", K_PASSWORD_COMMAND, "pass show common" },
	    { "work", K_AUTH, "auto" },
	    { "personal", K_PASSWORD_COMMAND, NULL },
	    { "both", K_HOST, "smtp.home.example" },
	    { "both", K_PORT, "2525" },
	    { "both", K_AUTH, "plain" },
	    { "both", K_USER, "me" },
	    { "both", K_PASSWORD, "hunter2" },
	    { "both", K_PASSWORD_COMMAND, "pass show common" },
	    { "both", K_FROM, "both@example.com" },
	    /* the parent's port came from the defaults of its time: not copied */
	    { "later", K_PORT, "2525" },
	    { "later", K_FROM, "me@work.example" },
	    { "broken", K_TLS, "starttls" } },
	  { "account 'common' (line 4) has no host",
	    "; msmtp account 'both', line 19, inherits from work, personal",
	    "account 'nosuch' to inherit from is not defined" },
	  { "[common]" } },

	{ "account default with settings of its own",
	  "account work\n"
	  "host smtp.work.example\n"
	  "tls on\n"
	  "account default : work\n"
	  "from other@example.com\n",
	  2, "default",
	  { { "default", K_HOST, "smtp.work.example" },
	    { "default", K_FROM, "other@example.com" },
	    { "work", K_FROM, NULL } },
	  { NULL }, { NULL } },

	{ "defaults with logfile and syslog",
	  "defaults\n"
	  "syslog LOG_MAIL\n"
	  "timeout 30\n"
	  "account a\nhost a.example\n"
	  "account b\nhost b.example\nlogfile ~/b.log\n"
	  "account c\nhost c.example\nsyslog off\n"
	  "account d\nhost d.example\nsyslog LOG_LOCAL3\n"
	  "account e\nhost e.example\nsyslog\ntimeout off\n",
	  5, NULL,
	  { { "a", K_LOG, "syslog" },
	    { "a", K_LOG_FACILITY, "mail" },
	    { "a", K_TIMEOUT, "30" },
	    { "b", K_LOG, HOME "/b.log,syslog" },
	    { "b", K_LOG_FACILITY, "mail" },
	    { "c", K_LOG, NULL },
	    { "d", K_LOG, "syslog" },
	    { "d", K_LOG_FACILITY, "local3" },
	    { "e", K_LOG, "syslog" },
	    { "e", K_LOG_FACILITY, "user" },
	    { "e", K_TIMEOUT, NULL } },
	  { NULL },
	  { "pushmail writes one log" } },

	{ "quoting edge cases",
	  "account q\n"
	  "host \"smtp.example.com\"\n"
	  "user \"  padded user  \"\n"
	  "password \"  lead and trail  \"\n"
	  "from \"x\"@example.com\n"
	  "domain \"host;name\"\n"
	  "maildomain dollar$HOME.example\n"
	  "tls_cert_file ~/certs/me.pem\n"
	  "tls_key_file ~certs/key.pem\n"
	  "aliases \"~/my aliases\"\n"
	  "tls_host_override \"\\\"quoted\\\"\"\n"
	  "account q2\n"
	  "host h2\n"
	  "user ;semicolon\n"
	  "password \"secret ;cut here\"\n"
	  "passwordeval gpg -d pw.gpg ; true\n"
	  "from ~/not-an-address\n"
	  "tls_priorities \"NORMAL ;x\"\n"
	  "account q3\n"
	  "host h3\n"
	  "password \"quoted\\\\back\"slash\"\n"
	  "account q4\n"
	  "host h4\n"
	  "password keyring\n",
	  4, NULL,
	  { { "q", K_HOST, "smtp.example.com" },
	    { "q", K_USER, "  padded user  " },
	    { "q", K_PASSWORD, "  lead and trail  " },
	    { "q", K_FROM, "\"x\"@example.com" },
	    { "q", K_DOMAIN, "host;name" },
	    { "q", K_MAILDOMAIN, "dollar$HOME.example" },
	    { "q", K_TLS_CERT_FILE, HOME "/certs/me.pem" },
	    { "q", K_TLS_KEY_FILE, HOME "certs/key.pem" },
	    { "q", K_ALIASES, HOME "/my aliases" },
	    { "q", K_TLS_HOST_OVERRIDE, "\\\"quoted\\\"" },
	    { "q2", K_USER, ";semicolon" },
	    { "q2", K_PASSWORD, NULL },
	    { "q2", K_PASSWORD_COMMAND, NULL },
	    { "q2", K_FROM, NULL },
	    { "q2", K_TLS_PRIORITIES, NULL },
	    { "q3", K_PASSWORD, "quoted\\\\back\"slash" },
	    { "q4", K_PASSWORD, NULL } },
	  { "the password was not converted: it contains a blank followed by ';'",
	    "passwordeval was not converted",
	    "from = ~/not-an-address not converted",
	    "tls_priorities = NORMAL ;x not converted",
	    "reads this word as \"ask the key ring\"" },
	  { "cut here", "gpg -d" } },

	{ "settings pushmail lacks are commented",
	  "account u\n"
	  "host u.example\n"
	  "source_ip 10.0.0.1\n"
	  "proxy_host 127.0.0.1\n"
	  "proxy_port 9050\n"
	  "frobnicate on\n"
	  "protocol lmtp\n"
	  "tls on\n"
	  "tls_certcheck off\n"
	  "tls_fingerprint 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33\n"
	  "remove_bcc_headers off\n"
	  "auth ntlm\n"
	  "ntlmdomain CORP\n"
	  "auto_from on\n"
	  "maildomain example.org\n"
	  "undisclosed_recipients on\n"
	  "dsn_notify failure,delay\n"
	  "dsn_return headers\n"
	  "set_from_header on\n"
	  "set_date_header off\n"
	  "set_msgid_header off\n"
	  "allow_from_override off\n"
	  "timeout 7200\n"
	  "from *@example.org\n"
	  "eval echo password 42\n",
	  1, NULL,
	  { { "u", K_AUTH, "auto" },
	    { "u", K_TLS_FINGERPRINT, NULL },
	    { "u", K_MAILDOMAIN, "example.org" },
	    { "u", K_SET_TO_HEADER, "auto" },
	    { "u", K_DSN_NOTIFY, "failure,delay" },
	    { "u", K_DSN_RETURN, "headers" },
	    { "u", K_SET_FROM_HEADER, "on" },
	    { "u", K_SET_DATE_HEADER, "off" },
	    { "u", K_SET_MSGID_HEADER, "off" },
	    { "u", K_ALLOW_FROM_OVERRIDE, "no" },
	    { "u", K_TIMEOUT, "3600" },
	    { "u", K_FROM, NULL },
	    { "u", K_FROM_MATCH, "*@example.org" },
	    /* issue 16: these have equivalents now */
	    { "u", K_SOURCE_ADDRESS, "10.0.0.1" },
	    { "u", K_PROXY, "socks5h://127.0.0.1:9050" },
	    { "u", K_PROTOCOL, "lmtp" } },
	  { "; msmtp: frobnicate on (no equivalent)",
	    "tls_certcheck off: pushmail always verifies",
	    "is SHA-1; pushmail pins SHA-256 only",
	    "auth ntlm is unsupported",
	    "remove_bcc_headers off: msmtp kept Bcc headers",
	    "eval ... (no equivalent" },
	  { "password 42" } },

	{ "LMTP over a unix socket, no host (issue 16)",
	  "account lmtp\n"
	  "socket /run/dovecot/lmtp\n"
	  "protocol lmtp\n"
	  "from me@example.org\n",
	  1, NULL,
	  { { "lmtp", K_SOCKET, "/run/dovecot/lmtp" },
	    { "lmtp", K_PROTOCOL, "lmtp" },
	    { "lmtp", K_HOST, NULL } },
	  { "[lmtp]" },
	  { "has no host" } },

	{ "SHA-256 pin, account names pushmail refuses",
	  "account my account!\nhost a.example\ntls on\n"
	  "tls_fingerprint 9f:86:d0:81:88:4c:7d:65:9a:2f:ea:a0:c5:5a:d0:15:a3:bf:4f:1b:2b:0b:82:2c:d1:5d:6c:15:b0:f0:0a:08\n"
	  "account my_account_\nhost b.example\n"
	  "account defaults\nhost c.example\n"
	  "account a-very-long-account-name-that-pushmail-cuts\nhost d.example\n"
	  "account dup\nhost e.example\n"
	  "account dup\nhost f.example\n",
	  5, NULL,
	  { { "my_account_", K_HOST, "a.example" },
	    { "my_account_", K_TLS_FINGERPRINT, "sha256:9F:86:D0:81:88:4C:7D:65:"
	      "9A:2F:EA:A0:C5:5A:D0:15:A3:BF:4F:1B:2B:0B:82:2C:D1:5D:6C:15:B0:"
	      "F0:0A:08" },
	    { "my_account_-2", K_HOST, "b.example" },
	    { "defaults-2", K_HOST, "c.example" },
	    { "a-very-long-account-name-that-pu", K_HOST, "d.example" },
	    { "dup", K_HOST, "e.example" } },
	  { "renamed: pushmail account names",
	    "account 'dup' skipped: it was already defined at line 11" },
	  { "f.example" } },

	{ "settings before any account form the account 'default'",
	  "host relay.example\n"
	  "from me@example.com\n"
	  "port 0x24b\n",
	  1, "default",
	  { { "default", K_HOST, "relay.example" },
	    { "default", K_PORT, "587" },
	    { "default", K_FROM, "me@example.com" } },
	  { NULL }, { NULL } },

	{ "values msmtp refuses",
	  "account v\nhost v.example\n"
	  "port 70000\n"
	  "tls maybe\n"
	  "auth PLAIN\n"
	  "dsn_notify failure, delay\n"
	  "tls_fingerprint 12:34\n",
	  1, NULL,
	  { { "v", K_PORT, "25" },
	    { "v", K_TLS, "off" },
	    { "v", K_AUTH, "off" },
	    { "v", K_DSN_NOTIFY, NULL },
	    { "v", K_TLS_FINGERPRINT, NULL } },
	  { "msmtp refuses 'port 70000'", "msmtp refuses 'tls maybe'",
	    "msmtp refuses 'auth PLAIN'", "msmtp refuses 'tls_fingerprint 12:34'" },
	  { NULL } },
};

static void check_wants(const struct fixture *f, const struct config *c)
{
	for (size_t i = 0; i < sizeof f->w / sizeof f->w[0] && f->w[i].account; i++) {
		const struct want *w = &f->w[i];
		const struct account *a = find(c, w->account);

		if (!a) {
			ok(0, "%s: account %s exists", f->name, w->account);
			continue;
		}
		is_str(cfg_str(a, w->key), w->value, "%s: [%s] %s", f->name,
		       w->account, cfg_key_name(w->key));
	}
}

static void check_text(const struct fixture *f, const char *out)
{
	for (size_t i = 0; i < sizeof f->has / sizeof f->has[0] && f->has[i]; i++)
		if (!ok(strstr(out, f->has[i]) != NULL, "%s: says \"%.40s\"",
			f->name, f->has[i]))
			printf("# output:\n%s", out);
	for (size_t i = 0; i < sizeof f->hasnot / sizeof f->hasnot[0] && f->hasnot[i];
	     i++)
		ok(strstr(out, f->hasnot[i]) == NULL, "%s: never says \"%s\"",
		   f->name, f->hasnot[i]);
}

static void test_fixture(const struct fixture *f)
{
	struct result r;
	struct config c;
	char *out = convert(f->rc, strlen(f->rc), &r);

	if (!ok(out != NULL, "%s: converts", f->name)) {
		printf("#   %s\n", r.text);
		return;
	}
	if (!ok(load(&c, out, &r) == 0, "%s: output loads in pushmail", f->name)) {
		printf("#   %s\n# output:\n%s", r.text, out);
		cfg_free(&c);
		free(out);
		return;
	}
	is_int(c.n, f->accounts, "%s: %zu accounts", f->name, f->accounts);
	is_str(c.default_account, f->dflt, "%s: default_account", f->name);
	check_wants(f, &c);
	check_text(f, out);
	cfg_free(&c);
	free(out);
}

/* ---- hostile input ---------------------------------------------------------- */

static void test_nul_and_no_newline(void)
{
	static const char rc[] = "account n\nhost ok.example\nuser a\0b\n"
				 "password x\0y\naccount e\nhost end.example";
	struct result r;
	struct config c;
	char *out = convert(rc, sizeof rc - 1, &r);

	ok(out && load(&c, out, &r) == 0, "NUL bytes: converts and loads");
	if (!out)
		return;
	is_str(cfg_str(find(&c, "n"), K_USER), NULL, "NUL bytes: line skipped, not cut");
	is_str(cfg_str(find(&c, "n"), K_PASSWORD), NULL, "NUL bytes: password skipped");
	ok(strstr(out, "line 3 holds a NUL byte") && strstr(out, "line 4 holds"),
	   "NUL bytes: both lines are named");
	is_str(cfg_str(find(&c, "e"), K_HOST), "end.example",
	       "no newline at the end: last line read");
	cfg_free(&c);
	free(out);
}

static void test_long_line(void)
{
	size_t n = 100 * 1024;
	char *rc = malloc(n + 64), *out;
	struct result r;
	struct config c;

	if (!rc)
		return;
	strcpy(rc, "account l\nhost long.example\npassword ");
	memset(rc + strlen(rc), 'x', n);
	strcpy(rc + strlen("account l\nhost long.example\npassword ") + n,
	       "\nfrom a@b.example\n");
	out = convert(rc, strlen(rc), &r);
	ok(out && load(&c, out, &r) == 0, "100 KB line: converts and loads");
	if (out) {
		is_str(cfg_str(find(&c, "l"), K_PASSWORD), NULL,
		       "100 KB line: not cut into a password");
		is_str(cfg_str(find(&c, "l"), K_FROM), "a@b.example",
		       "100 KB line: the next line is read");
		ok(strstr(out, "line 3 is longer than 499 bytes") &&
		   !strstr(out, "xxxxxxxx"), "100 KB line: named, not echoed");
		cfg_free(&c);
	}
	free(out);
	free(rc);
}

/* 10k accounts, each inheriting from the one before: must stay linear. */
static void test_many_accounts(void)
{
	struct buf { char *s; size_t n; } b = { NULL, 0 };
	FILE *m = open_memstream(&b.s, &b.n);
	size_t sections = 0;
	struct result r;
	clock_t t0;
	char *out;

	if (!m)
		return;
	fprintf(m, "account a0\nhost h0.example\ntls on\n");
	for (int i = 1; i < 10000; i++)
		fprintf(m, "account a%d : a%d\nfrom u%d@example.com\n", i, i - 1, i);
	fclose(m);
	t0 = clock();
	out = convert(b.s, b.n, &r);
	ok(out != NULL, "10k accounts: converts");
	ok(clock() - t0 < 60 * CLOCKS_PER_SEC, "10k accounts: in reasonable time");
	for (const char *p = out; p && (p = strstr(p, "\n[a")); p++)
		sections++;
	is_int(sections, 10000, "10k accounts: 10000 sections");
	ok(out && strstr(out, "[a9999]\n; msmtp account 'a9999', line 20000, "
			 "inherits from a9998\nhost = h0.example\nport = 25\n"
			 "tls = starttls\n"), "10k accounts: the last inherits all");
	free(out);
	free(b.s);
}

/* Random lines built from msmtp's words and awkward bytes: every result must
 * load in pushmail.  A deterministic generator keeps failures reproducible. */
static const char *const pieces[] = {
	"account ", "defaults", "host ", "port ", "tls ", "tls_starttls ", "auth ",
	"user ", "password ", "passwordeval ", "from ", "logfile ", "syslog ",
	"tls_trust_file ", "tls_fingerprint ", "domain ", "timeout ", "eval ",
	"dsn_notify ", "maildomain ", "aliases ", "tls_cert_file ", " : ", ", ",
	"on", "off", "\"", "\\", " ;", ";", "$", "${X}", "~", "~/", "#", "*", "%U",
	"\t", " ", "\r", "\0", "\xc3\xa9", "[x]", "=", "default", "a", "b", "465",
	"0x1", "system", "-", "LOG_MAIL", "never", "failure,delay",
};

static unsigned long rng_state = 12345;

static unsigned rnd(unsigned n)
{
	rng_state = rng_state * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)(rng_state >> 33) % n;
}

static void test_random(void)
{
	size_t npieces = sizeof pieces / sizeof pieces[0];
	int failures = 0;

	for (int iter = 0; iter < 300; iter++) {
		char rc[4096];
		size_t len = 0;
		struct result r;
		struct config c;
		char *out;

		for (int line = 0; line < 30; line++) {
			for (int k = 1 + (int)rnd(4); k > 0; k--) {
				const char *p = pieces[rnd((unsigned)npieces)];
				size_t pl = *p ? strlen(p) : 1;   /* "\0" is one NUL */

				memcpy(rc + len, p, pl);
				len += pl;
			}
			rc[len++] = '\n';
		}
		out = convert(rc, len, &r);
		if (!out || load(&c, out, &r) < 0) {
			if (!failures++)
				printf("#   iteration %d: %s\n# output:\n%s", iter,
				       r.text, out ? out : "(none)");
		} else {
			cfg_free(&c);
		}
		free(out);
	}
	is_int(failures, 0, "300 random files: all convert and load");
}

/* ---- msmtprc_convert_file ------------------------------------------------------ */

static char tmpdir[] = "/tmp/t_msmtprc-XXXXXX";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static char *convert_path(const char *path, struct result *r)
{
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);

	result_clear(r);
	if (msmtprc_convert_file(path, m, r) < 0) {
		fclose(m);
		free(out);
		return NULL;
	}
	fclose(m);
	return out;
}

static void test_files(void)
{
	char rc[256], xdg[256], cfgdir[256], cfgfile[256];
	struct result r;
	char *out;

	if (!mkdtemp(tmpdir)) {
		ok(0, "mkdtemp");
		return;
	}
	setenv("HOME", tmpdir, 1);
	unsetenv("XDG_CONFIG_HOME");
	snprintf(rc, sizeof rc, "%s/.msmtprc", tmpdir);
	snprintf(xdg, sizeof xdg, "%s/.config", tmpdir);
	snprintf(cfgdir, sizeof cfgdir, "%s/.config/msmtp", tmpdir);
	snprintf(cfgfile, sizeof cfgfile, "%s/.config/msmtp/config", tmpdir);

	out = convert_path(NULL, &r);
	ok(!out && r.exitcode == EX_NOINPUT, "no msmtp file: EX_NOINPUT");
	free(out);

	mkdir(xdg, 0700);
	mkdir(cfgdir, 0700);
	write_file(cfgfile, "account x\nhost xdg.example\n");
	out = convert_path(NULL, &r);
	ok(out && strstr(out, "host = xdg.example") && strstr(out, cfgfile),
	   "default path: ~/.config/msmtp/config, named in the header");
	free(out);

	write_file(rc, "account h\nhost home.example\n");
	out = convert_path(NULL, &r);
	ok(out && strstr(out, "host = home.example"), "default path: ~/.msmtprc first");
	free(out);

	out = convert_path(cfgfile, &r);
	ok(out && strstr(out, "host = xdg.example"), "explicit path");
	free(out);

	out = convert_path("/nonexistent/msmtprc", &r);
	ok(!out && r.exitcode == EX_NOINPUT && strstr(r.text, "/nonexistent/msmtprc"),
	   "missing explicit file: EX_NOINPUT naming it");
	free(out);

	out = convert_path(tmpdir, &r);
	ok(!out && r.exitcode == EX_NOINPUT, "a directory: EX_NOINPUT");
	free(out);

	unlink(rc);
	unlink(cfgfile);
	rmdir(cfgdir);
	rmdir(xdg);
	rmdir(tmpdir);
	setenv("HOME", HOME, 1);
}

static void test_write_error(void)
{
	FILE *f = fopen("/dev/full", "w");
	struct result r;

	if (!f) {
		ok(1, "# SKIP no /dev/full");
		return;
	}
	result_clear(&r);
	ok(msmtprc_convert("account a\nhost h\n", 17, "x", f, &r) < 0 &&
	   r.exitcode == EX_IOERR, "write error: EX_IOERR");
	fclose(f);
}

int main(void)
{
	setenv("HOME", HOME, 1);
	unsetenv("X");
	for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++)
		test_fixture(&fixtures[i]);
	test_nul_and_no_newline();
	test_long_line();
	test_many_accounts();
	test_random();
	test_files();
	test_write_error();
	return tap_done();
}
