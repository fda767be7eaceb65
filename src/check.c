/* check.c - pushmail --check: load the configuration, resolve, connect, do
 * TLS and AUTH, and report each step with the exact failure and a hint.
 * Sends no mail; exits as a send would have. */
#include "config.h"
#include "modes.h"
#include "queue.h"
#include "smtp.h"
#include "oauth2.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

static void step(const char *what, const char *detail)
{
	printf("  ok    %-16s %s\n", what, detail);
}

/* What a newcomer should try, by failure. */
static const char *hint(const struct relay *rl, const struct result *r)
{
	const char *host = rl->p.host ? rl->p.host : "";

	if (r->phase == PHASE_AUTH && r->code == 535 && strcasestr(host, "gmail"))
		return "Gmail needs an app password or OAuth2 (auth = xoauth2, "
		       "oauth2_provider = google, then pushmail --oauth2-login); see "
		       "pushmail.conf(5)";
	if (r->phase == PHASE_AUTH && r->code == 535 &&
	    (strcasestr(host, "office365") || strcasestr(host, "outlook")))
		return "Microsoft 365 needs SMTP AUTH enabled for the mailbox, and "
		       "OAuth2 (auth = xoauth2, oauth2_provider = microsoft, then "
		       "pushmail --oauth2-login); see pushmail.conf(5)";
	if (oauth2_needs_login(r))
		return NULL;   /* the text names the command that logs in */
	if (r->exitcode == EX_NOPERM && oauth2_enabled(rl->acct, rl->ap.mech))
		return "check user; the provider refused the token";
	if (r->exitcode == EX_NOPERM)
		return "check user and the password (or password_command)";
	if (r->exitcode == EX_NOHOST)
		return "check the host name";
	if (strstr(r->text, "NOT trusted") || strstr(r->text, "pin mismatch"))
		return "set tls_trust_file to the relay's CA, or pin it with tls_fingerprint "
		       "(pushmail --serverinfo shows the hashes)";
	if (strstr(r->text, "does not offer STARTTLS"))
		return "a port that starts with TLS (465) needs tls = implicit";
	if (strstr(r->text, "is this port speaking TLS"))
		return "port 587 uses tls = starttls, port 465 tls = implicit";
	/* issue 16 */
	if (strstr(r->text, "SOCKS5 proxy"))
		return "check proxy (socks5://host:port, or socks5h:// to let the proxy "
		       "resolve the relay), proxy_user and the proxy's password; -v "
		       "shows the path";
	if (strstr(r->text, "source_address"))
		return "source_address must be an address of this host (ip addr)";
	if (strstr(r->text, "unix socket"))
		return "is the delivery agent running, and may you open its socket?";
	if (strstr(r->text, "cannot connect"))
		return "wrong port or a firewall? submission is 587 (STARTTLS) or 465 "
		       "(implicit TLS); port 25 is often blocked";
	if (strstr(r->text, "unencrypted"))
		return "use tls = starttls or tls = implicit";
	return NULL;
}

static int fail(const struct relay *rl, const char *what, struct result *r)
{
	char line[RESULT_TEXT_MAX + 400];
	const char *h = hint(rl, r);

	result_describe(r, line, sizeof line);
	printf("  FAIL  %-16s %s\n", what, line);
	if (h)
		printf("        hint: %s\n", h);
	return -1;
}

static int resolve(const struct relay *rl, struct result *r)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	const struct conn_route *rt = &rl->route;
	char list[512] = "", addr[NI_MAXHOST];
	size_t o = 0;
	int timed_out, rc;

	/* issue 16: nothing to resolve for a unix socket, nor for the relay
	 * when the proxy resolves its name (socks5h) */
	if (rl->p.host[0] == '/') {
		step("resolve", "nothing to resolve: a unix socket");
		return 0;
	}
	if (rt->proxy && strncmp(rt->proxy, "socks5h:", 8) == 0) {
		step("resolve", "left to the SOCKS5 proxy (socks5h)");
		return 0;
	}
	hints.ai_family = rt->family == 4 ? AF_INET : rt->family == 6 ? AF_INET6 :
			  AF_UNSPEC;
	rc = conn_resolve(rl->p.host, rl->p.port, &hints, &res,
			  (rl->p.timeout_s > 0 ? rl->p.timeout_s : 60) * 1000, &timed_out);
	if (rc != 0) {
		r->phase = PHASE_CONNECT;
		result_fail(r, rc == EAI_NONAME ? EX_NOHOST : EX_TEMPFAIL,
			    "host '%s' not found: %s", rl->p.host, gai_strerror(rc));
		return fail(rl, "resolve", r);
	}
	for (ai = res; ai && o + 64 < sizeof list; ai = ai->ai_next)
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0,
				NI_NUMERICHOST) == 0)
			o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "",
					      addr);
	freeaddrinfo(res);
	step("resolve", list);
	return 0;
}

/* Which step a failure belongs to, for the report. */
static const char *step_of(enum smtp_phase ph)
{
	switch (ph) {
	case PHASE_CONNECT: return "connect";
	case PHASE_TLS: case PHASE_STARTTLS: return "TLS";
	case PHASE_AUTH: return "authenticate";
	default: return "SMTP";
	}
}

static void step_tls(const struct relay *rl)
{
	char buf[1200];

	snprintf(buf, sizeof buf, "%s, %s, valid until %s", rl->ti.version,
		 rl->ti.subject, ctime(&rl->ti.not_after));
	buf[strcspn(buf, "\n")] = '\0';
	step("TLS", buf);
}

/* smtp_open does connect, greeting, EHLO, TLS and AUTH in one go; when it
 * fails, the steps before the failing one still ran and are shown, so the
 * report says how far it got (a refused password after a good TLS). */
static void steps_before(const struct relay *rl, enum smtp_phase ph)
{
	int starttls = rl->p.tls == SMTP_TLS_STARTTLS;
	int tls_done = rl->ti.version[0] != '\0' && ph != PHASE_TLS && ph != PHASE_STARTTLS;
	int greeted = ph == PHASE_AUTH || (starttls && (ph == PHASE_STARTTLS || ph == PHASE_TLS ||
						       (tls_done && ph <= PHASE_HELO)));

	if (greeted || (tls_done && ph == PHASE_AUTH))
		step("connect", "greeting and EHLO");
	if (tls_done)
		step_tls(rl);
}

/* Not a failure (mail with full addresses goes), but cron's "root" would
 * wait in the queue: say so before anyone relies on it. */
static void check_maildomain(const struct account *a)
{
	if (cfg_str(a, K_MAILDOMAIN)) {
		step("maildomain", cfg_str(a, K_MAILDOMAIN));
		return;
	}
	printf("  warn  %-16s not set: mail to or from a local name (cron's root, "
	       "user@localhost)\n        waits in the queue until 'maildomain = "
	       "your.domain' is set\n", "maildomain");
}

/* Mail that has waited over an hour means something is stuck (a relay
 * down, a timer that does not run): say so, whatever the relay says now.
 * Only a warning; the exit status is the relay's. */
static void check_queue(struct ctx *c)
{
	struct queue q;
	struct qenv *v;
	struct result r;
	size_t n, old = 0;
	time_t now = time(NULL), oldest = now;
	const char *why = "";

	result_clear(&r);
	if (ctx_open_queue(c, &q, &r) < 0)
		return;
	if (queue_list(&q, 0, &v, &n, &r) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (now - v[i].created <= 3600)
				continue;
			old++;
			if (v[i].created <= oldest) {
				oldest = v[i].created;
				why = v[i].error;
			}
		}
		if (old)
			printf("  WARN  %-16s %zu message(s) waiting over an hour (the oldest "
			       "for %ld h%s%s); see mailq\n", "queue", old,
			       (long)(now - oldest) / 3600, why[0] ? ", last error: " : "",
			       why);
		queue_list_free(v, n);
	}
	queue_close(&q);
}

int mode_check(struct ctx *c, struct result *r)
{
	struct relay_overrides ov;
	struct smtp_session *ss;
	struct relay rl = { 0 };
	char buf[1200];
	int oauth;

	printf("pushmail --check\n");
	if (ctx_load_config(c, 1, r) < 0 ||
	    !(c->acct = cfg_select(&c->cfg, c->o.account, NULL, r)))
		return fail(&rl, "configuration", r);
	ctx_overrides(c, &ov);
	if (relay_init(&rl, c->acct, &ov, r) < 0)
		return fail(&rl, "configuration", r);
	c->host = rl.p.host;
	snprintf(buf, sizeof buf, "account '%s': %s port %s, tls = %s, auth = %s",
		 c->acct->name, rl.p.host, rl.p.port,
		 rl.p.tls == SMTP_TLS_OFF ? "off" :
		 rl.p.tls == SMTP_TLS_IMPLICIT ? "implicit" : "starttls", rl.ap.mech);
	step("configuration", buf);
	relay_describe_path(&rl, buf, sizeof buf);
	step("path", buf);
	check_maildomain(c->acct);
	check_queue(c);
	if (resolve(&rl, r) < 0)
		return -1;
	oauth = oauth2_enabled(c->acct, rl.ap.mech);
	if (relay_auth(&rl, r) < 0) {
		fail(&rl, oauth ? "oauth2 token" : "password", r);
		relay_free(&rl);
		return -1;
	}
	/* after relay_auth: a token it just refreshed is what is shown */
	if (oauth && oauth2_describe(c->acct, buf, sizeof buf) == 0)
		step("oauth2 token", buf);
	ss = smtp_open(&rl.p, r);
	if (!ss) {
		steps_before(&rl, r->phase);
		fail(&rl, step_of(r->phase), r);
		relay_free(&rl);
		return -1;
	}
	snprintf(buf, sizeof buf, "%s: greeting and %s", smtp_path(ss),
		 rl.p.lmtp ? "LHLO" : "EHLO");
	step("connect", buf);
	if (rl.p.tls != SMTP_TLS_OFF)
		step_tls(&rl);
	if (rl.p.auth) {
		snprintf(buf, sizeof buf, "%s with %s", rl.ap.user ? rl.ap.user : "",
			 rl.auth_used[0] ? rl.auth_used : "?");
		step("authenticate", buf);
	}
	smtp_close(ss);
	relay_free(&rl);
	printf("everything works; nothing was sent\n");
	return 0;
}
