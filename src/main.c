/* main.c - orchestration only: parse the command line, load the account,
 * read the header block, build the envelope, submit, and exit once with the
 * status of the one struct result that everything below fills in. */
#include "config.h"
#include "address.h"
#include "cfg.h"
#include "cli.h"
#include "log.h"
#include "message.h"
#include "result.h"
#include "secret.h"
#include "smtp.h"

#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Everything one submission needs; freed by job_free. */
struct job {
	struct options o;
	struct config cfg;
	const struct account *acct;
	char *raw;             /* header block + body bytes read with it */
	size_t rawlen, headlen;
	struct msg_head head;
	char *msgbuf;          /* rewritten head + those body bytes */
	size_t msglen;
	char *from;            /* envelope sender */
	struct addrlist rcpts;
	char ehlo[256];
	struct auth_params auth;
	char *secret;          /* password or token; wiped by job_free */
};

static void job_free(struct job *j)
{
	cli_free(&j->o);
	cfg_free(&j->cfg);
	msg_head_free(&j->head);
	addrlist_free(&j->rcpts);
	free(j->raw);
	free(j->msgbuf);
	free(j->from);
	secret_free(j->secret);
}

/* The modes whose issues have not landed yet say so plainly. */
static int unsupported_mode(enum cli_mode m, struct result *r)
{
	static const char *const what[] = {
		[MODE_QUEUE_LIST] = "listing the queue (-bp, mailq)",
		[MODE_QUEUE_RUN] = "running the queue (-q)",
		[MODE_SMTP] = "SMTP on standard input (-bs)",
		[MODE_ALIASES] = "checking the aliases file (-bi, newaliases)",
		[MODE_CHECK] = "--check",
	};
	return result_fail(r, EX_USAGE, "%s is not supported yet", what[m]);
}

static int load_config(struct job *j, struct result *r)
{
	int found = 0;

	if (cfg_load(&j->cfg, j->o.config, &found, r) < 0)
		return -1;
	/* --dry-run shows what would be sent even before a relay is set up. */
	if (found == 0 && j->o.dry_run &&
	    cfg_load_string(&j->cfg, "[dry-run]\nhost = localhost\n",
			    "(built-in)", r) < 0)
		return -1;
	if (found == 0 && !j->o.dry_run)
		return result_fail(r, EX_CONFIG,
				   "no configuration found: create ~/.config/pushmail/config.ini "
				   "(or " SYSCONFDIR "/pushmail.ini) with an account section "
				   "naming your relay's host; see pushmail.conf(5)");
	return cfg_finish(&j->cfg, r);
}

/* The host's fully qualified name for EHLO when `domain` is not set. */
static void default_ehlo(char *out, size_t cap)
{
	struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *res = NULL;
	char host[256] = "localhost";

	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';
	if (getaddrinfo(host, NULL, &hints, &res) == 0 && res->ai_canonname &&
	    strchr(res->ai_canonname, '.'))
		snprintf(out, cap, "%s", res->ai_canonname);
	else
		snprintf(out, cap, "%s", host);
	if (res)
		freeaddrinfo(res);
}

/* Envelope sender, SPEC 5/issue: -f > --read-envelope-from > account from >
 * login@ehlo-name.  "<>" is the null sender. */
static int choose_from(struct job *j, const char *header_from, struct result *r)
{
	const char *f = j->o.from;
	char buf[512];

	if (!f && j->o.read_envelope_from)
		f = header_from;
	if (!f)
		f = cfg_str(j->acct, K_FROM);
	if (!f) {
		struct passwd *pw = getpwuid(getuid());
		snprintf(buf, sizeof buf, "%s@%s", pw ? pw->pw_name : "root", j->ehlo);
		f = buf;
	}
	if (strcmp(f, "<>") == 0)
		f = "";
	if (!addr_valid_mailbox(f))
		return result_fail(r, EX_USAGE, "invalid sender address '%s'", f);
	j->from = strdup(f);
	return j->from ? 0 : result_fail(r, EX_OSERR, "out of memory");
}

static int add_rcpt(struct job *j, const char *mbox, struct result *r)
{
	const char *md = cfg_str(j->acct, K_MAILDOMAIN);
	char buf[600];

	if (!strchr(mbox, '@') && md) {   /* cron's "root" -> root@maildomain */
		snprintf(buf, sizeof buf, "%s@%s", mbox, md);
		mbox = buf;
	}
	if (!addr_valid_mailbox(mbox) || !*mbox)
		return result_fail(r, EX_USAGE, "invalid recipient address '%s'", mbox);
	if (addrlist_contains(&j->rcpts, mbox))
		return 0;   /* each recipient once */
	return addrlist_add(&j->rcpts, mbox, NULL) < 0 ?
		result_fail(r, EX_OSERR, "out of memory") : 0;
}

static int collect_rcpts(struct job *j, struct result *r)
{
	char err[256];

	for (int i = 0; i < j->o.nrcpt; i++) {
		struct addrlist l = { 0 };
		const char *a = j->o.rcpt[i];
		if (addr_parse_list(a, strlen(a), &l, err, sizeof err) < 0) {
			addrlist_free(&l);
			return result_fail(r, EX_USAGE, "bad recipient '%s': %s", a, err);
		}
		for (size_t k = 0; k < l.n; k++)
			if (add_rcpt(j, l.v[k].mailbox, r) < 0) {
				addrlist_free(&l);
				return -1;
			}
		addrlist_free(&l);
	}
	for (size_t k = 0; k < j->head.rcpts.n; k++)
		if (add_rcpt(j, j->head.rcpts.v[k].mailbox, r) < 0)
			return -1;
	if (j->rcpts.n == 0)
		return result_fail(r, EX_USAGE, "no recipients%s",
				   j->o.extract ? " (none in To, Cc or Bcc either)" :
				   " given (use -t to take them from the headers)");
	return 0;
}

static enum hdr_policy policy(const struct account *a, enum cfg_key k)
{
	const char *v = cfg_str(a, k);

	if (!v || strcmp(v, "auto") == 0)
		return HDR_AUTO;
	return strcmp(v, "on") == 0 ? HDR_ON : HDR_OFF;
}

/* Read the header block, pick the account (which may depend on the From
 * header), then rewrite the block for that account. */
static int prepare_message(struct job *j, struct result *r)
{
	struct msg_opts mo = { .extract = j->o.extract, .now = time(NULL),
			       .set_date = HDR_OFF, .set_msgid = HDR_OFF,
			       .set_from = HDR_OFF, .set_to = HDR_OFF };
	struct msg_head probe = { 0 };
	const char *sel;

	if (msg_read_head(0, &j->raw, &j->rawlen, &j->headlen, r) < 0)
		return -1;
	if (msg_head_process(j->raw, j->headlen, &mo, &probe, r) < 0)
		return -1;
	sel = j->o.from ? j->o.from :
	      j->o.read_envelope_from ? probe.from_mailbox : NULL;
	j->acct = cfg_select(&j->cfg, j->o.account, sel, r);
	if (j->acct && cfg_str(j->acct, K_DOMAIN))
		snprintf(j->ehlo, sizeof j->ehlo, "%s", cfg_str(j->acct, K_DOMAIN));
	else if (j->acct)
		default_ehlo(j->ehlo, sizeof j->ehlo);
	if (!j->acct || choose_from(j, probe.from_mailbox, r) < 0) {
		msg_head_free(&probe);
		return -1;
	}
	msg_head_free(&probe);
	mo.env_from = j->from;
	mo.full_name = j->o.full_name;
	mo.domain = cfg_str(j->acct, K_DOMAIN) ? cfg_str(j->acct, K_DOMAIN) : j->ehlo;
	mo.set_date = policy(j->acct, K_SET_DATE_HEADER);
	mo.set_msgid = policy(j->acct, K_SET_MSGID_HEADER);
	mo.set_from = policy(j->acct, K_SET_FROM_HEADER);
	mo.set_to = policy(j->acct, K_SET_TO_HEADER);
	return msg_head_process(j->raw, j->headlen, &mo, &j->head, r);
}

/* Rewritten head followed by the body bytes already read with it. */
static int build_msgbuf(struct job *j, struct result *r)
{
	size_t rest = j->rawlen - j->headlen;

	j->msglen = j->head.len + rest;
	j->msgbuf = malloc(j->msglen + 1);
	if (!j->msgbuf)
		return result_fail(r, EX_OSERR, "out of memory");
	memcpy(j->msgbuf, j->head.text, j->head.len);
	memcpy(j->msgbuf + j->head.len, j->raw + j->headlen, rest);
	return 0;
}

/* SIZE= estimate: known only when stdin is a regular file. */
static unsigned long long size_estimate(const struct job *j)
{
	struct stat st;
	off_t pos = lseek(0, 0, SEEK_CUR);

	if (fstat(0, &st) < 0 || !S_ISREG(st.st_mode) || pos < 0 || st.st_size < pos)
		return 0;
	return j->msglen + (unsigned long long)(st.st_size - pos);
}

static void tls_params_from(const struct account *a, const char *host,
			    struct tls_params *tp)
{
	const char *over = cfg_str(a, K_TLS_HOST_OVERRIDE);

	tp->host = over ? over : host;
	tp->trust_file = cfg_str(a, K_TLS_TRUST_FILE);
	tp->fingerprint = cfg_str(a, K_TLS_FINGERPRINT);
	tp->cert_file = cfg_str(a, K_TLS_CERT_FILE);
	tp->key_file = cfg_str(a, K_TLS_KEY_FILE);
	tp->priorities = cfg_str(a, K_TLS_PRIORITIES);
}

/* --tls=WORD as cfg_tls_mode() numbers it, or -1. */
static int tls_word(const char *v)
{
	static const char *const words[] = { "off", "starttls", "implicit" };

	for (int i = 0; i < 3; i++)
		if (strcmp(v, words[i]) == 0)
			return i;
	return -1;
}

/* AUTH: `auth` (default auto when `user` is set, else off); the secret is
 * fetched only when a mechanism will need it. */
static int fill_auth(struct job *j, struct smtp_params *p, struct result *r)
{
	const char *mech = j->o.auth ? j->o.auth : cfg_str(j->acct, K_AUTH);
	const char *user = j->o.user ? j->o.user : cfg_str(j->acct, K_USER);

	if (!mech)
		mech = user ? "auto" : "off";
	if (strcmp(mech, "off") == 0)
		return 0;
	j->auth.mech = mech;
	j->auth.user = user;
	j->auth.host = p->host;
	j->auth.port = p->port;
	j->auth.allow_plaintext = cfg_bool(j->acct, K_ALLOW_PLAINTEXT_AUTH, 0);
	if (strcasecmp(mech, "external") != 0 && strcasecmp(mech, "gssapi") != 0 &&
	    !j->secret && secret_get(j->acct, p->host, user, &j->secret, r) < 0)
		return -1;
	j->auth.secret = j->secret;
	p->auth = &j->auth;
	return 0;
}

/* Connection settings: the account's, overridden by --host, --port, ... */
static int fill_params(struct job *j, struct smtp_params *p, struct tls_params *tp,
		       struct tls_info *ti, struct result *r)
{
	int tls = cfg_tls_mode(j->acct);

	if (j->o.tls && (tls = tls_word(j->o.tls)) < 0)
		return result_fail(r, EX_USAGE, "--tls must be starttls, implicit or off");
	p->account = j->acct->name;
	p->ehlo_name = j->ehlo;
	p->host = j->o.host ? j->o.host : cfg_str(j->acct, K_HOST);
	p->port = j->o.port ? j->o.port : cfg_str(j->acct, K_PORT) ?
		  cfg_str(j->acct, K_PORT) : tls == 2 ? "465" : tls == 1 ? "587" : "25";
	p->tls = (enum smtp_tls)tls;
	p->timeout_s = (int)(j->o.timeout ? atol(j->o.timeout) :
			     cfg_long(j->acct, K_TIMEOUT, 0));
	p->partial_delivery = cfg_bool(j->acct, K_PARTIAL_DELIVERY, 0);
	tls_params_from(j->acct, p->host, tp);
	p->tlsp = tp;
	p->tls_info = ti;
	return 0;
}

static int submit(struct job *j, struct result *r)
{
	const char **rcpt = calloc(j->rcpts.n, sizeof *rcpt);
	struct smtp_params p = { 0 };
	struct smtp_envelope env = { .from = j->from, .nrcpt = j->rcpts.n };
	struct smtp_message m = { .head = j->msgbuf, .headlen = j->msglen, .fd = 0 };
	struct smtp_outcome out = { 0 };
	struct tls_params tp;
	struct tls_info ti;
	int rc;

	if (!rcpt)
		return result_fail(r, EX_OSERR, "out of memory");
	for (size_t i = 0; i < j->rcpts.n; i++)
		rcpt[i] = j->rcpts.v[i].mailbox;
	env.rcpt = rcpt;
	env.size = size_estimate(j);
	if (fill_params(j, &p, &tp, &ti, r) < 0)
		rc = -1;
	else if (j->o.dry_run)
		rc = smtp_dry_run(stdout, &env, &m, r);
	else if ((rc = fill_auth(j, &p, r)) == 0)
		rc = smtp_send(&p, &env, &m, &out, r);
	if (rc == 0 && !j->o.dry_run)
		log_info("delivered to %zu recipient(s) via %s: %s", out.accepted,
			 p.host, out.final_reply);
	free(rcpt);
	return rc;
}

static void print_lines(const char *label, const char *text)
{
	printf("%s\n", label);
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char clean[1024];
		result_sanitise(clean, sizeof clean, p, n);
		printf("  %s\n", clean);
		p += n + (nl != NULL);
	}
}

static void print_time(const char *label, time_t t)
{
	char buf[64];
	struct tm tm;

	strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
	printf("  %-22s %s\n", label, buf);
}

static void print_tls(const struct tls_info *ti)
{
	printf("TLS: %s\n  %s\n", ti->version, ti->desc);
	printf("certificate:\n  %-22s %s\n  %-22s %s\n", "subject:", ti->subject,
	       "issuer:", ti->issuer);
	print_time("valid from:", ti->not_before);
	print_time("valid until:", ti->not_after);
	printf("  %-22s %s\n", "names:", ti->sans);
	printf("  %-22s %s\n", "sha256 (certificate):", ti->cert_sha256);
	printf("  %-22s %s\n", "sha256 (public key):", ti->spki_sha256);
	printf("  %-22s %s\n", "verification:", ti->verdict);
	printf("To pin this server, set tls_fingerprint to the public key hash (it "
	       "survives renewals that keep the key).\n");
}

/* --serverinfo: greeting, capabilities, TLS and certificate; sends no mail. */
static int run_serverinfo(struct job *j, struct result *r)
{
	struct smtp_params p = { 0 };
	struct tls_params tp;
	struct tls_info ti;
	struct smtp_probe pr;

	if (load_config(j, r) < 0 ||
	    !(j->acct = cfg_select(&j->cfg, j->o.account, NULL, r)))
		return -1;
	if (cfg_str(j->acct, K_DOMAIN))
		snprintf(j->ehlo, sizeof j->ehlo, "%s", cfg_str(j->acct, K_DOMAIN));
	else
		default_ehlo(j->ehlo, sizeof j->ehlo);
	if (fill_params(j, &p, &tp, &ti, r) < 0)
		return -1;
	tp.report_only = 1;
	if (smtp_probe(&p, &pr, r) < 0)
		return -1;
	printf("account %s: %s port %s (tls = %s)\n", j->acct->name, p.host, p.port,
	       p.tls == SMTP_TLS_OFF ? "off" : p.tls == SMTP_TLS_IMPLICIT ?
	       "implicit" : "starttls");
	print_lines("greeting:", pr.greeting);
	print_lines(p.tls == SMTP_TLS_STARTTLS ? "capabilities before TLS:" :
		    "capabilities:", pr.ehlo_before);
	if (pr.tls)
		print_tls(&ti);
	if (pr.ehlo_after[0])
		print_lines("capabilities after TLS:", pr.ehlo_after);
	return 0;
}

static int run_send(struct job *j, struct result *r)
{
	if (load_config(j, r) < 0 || prepare_message(j, r) < 0 ||
	    collect_rcpts(j, r) < 0 || build_msgbuf(j, r) < 0)
		return -1;
	return submit(j, r);
}

static void report(const struct job *j, const struct result *r)
{
	char line[RESULT_TEXT_MAX + 400];

	result_describe(r, line, sizeof line);
	if (j->acct && r->phase != PHASE_NONE)
		log_err("account '%s' (%s): %s", j->acct->name,
			j->o.host ? j->o.host : cfg_str(j->acct, K_HOST), line);
	else
		log_err("%s", line);
	if (j->o.bad_option)
		cli_usage(stderr);
}

int main(int argc, char **argv)
{
	struct job j = { 0 };
	struct result r;
	int rc = 0;

	result_clear(&r);
	signal(SIGPIPE, SIG_IGN);
	if (cli_parse(argc, argv, &j.o, &r) < 0) {
		rc = -1;
	} else if (j.o.mode == MODE_VERSION) {
		printf("pushmail " PACKAGE_VERSION "\n");
	} else if (j.o.mode == MODE_HELP) {
		cli_help(stdout);
	} else if (j.o.mode == MODE_SERVERINFO) {
		log_verbose = j.o.verbose;
		rc = run_serverinfo(&j, &r);
	} else if (j.o.mode != MODE_SEND) {
		rc = unsupported_mode(j.o.mode, &r);
	} else {
		log_verbose = j.o.verbose;
		for (int i = 0; i < j.o.nignored; i++)
			log_info("ignoring option %s", j.o.ignored[i]);
		rc = run_send(&j, &r);
	}
	if (rc < 0)
		report(&j, &r);
	job_free(&j);
	return rc < 0 ? r.exitcode : EX_OK;
}
