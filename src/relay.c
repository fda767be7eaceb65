/* relay.c - from an account to session parameters (see relay.h). */
#include "config.h"
#include "relay.h"
#include "trust.h"
#include "secret.h"
#include "oauth2.h"
#include "conn.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define EHLO_LOOKUP_MS 5000

void relay_default_ehlo(char *out, size_t cap)
{
	struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *res = NULL;
	char host[256] = "localhost";
	int timed_out;

	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';
	/* bounded like every other lookup (issue 13): a resolver that hangs
	 * leaves the bare host name */
	if (conn_resolve(host, NULL, &hints, &res, EHLO_LOOKUP_MS, &timed_out) == 0 &&
	    res->ai_canonname && strchr(res->ai_canonname, '.'))
		snprintf(out, cap, "%s", res->ai_canonname);
	else
		snprintf(out, cap, "%s", host);
	if (res)
		freeaddrinfo(res);
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

static void fill_tls(struct relay *rl)
{
	const struct account *a = rl->acct;
	const char *over = cfg_str(a, K_TLS_HOST_OVERRIDE);

	rl->tp.host = over ? over : rl->p.host;
	rl->tp.trust_file = cfg_str(a, K_TLS_TRUST_FILE);
	rl->tp.fingerprint = cfg_str(a, K_TLS_FINGERPRINT);
	rl->tp.cert_file = cfg_str(a, K_TLS_CERT_FILE);
	rl->tp.key_file = cfg_str(a, K_TLS_KEY_FILE);
	rl->tp.priorities = cfg_str(a, K_TLS_PRIORITIES);
	rl->p.tlsp = &rl->tp;
	rl->p.tls_info = &rl->ti;
}

static const char *default_port(int tls)
{
	return tls == CFG_TLS_IMPLICIT ? "465" : tls == CFG_TLS_STARTTLS ? "587" : "25";
}

int relay_init(struct relay *rl, const struct account *a,
	       const struct relay_overrides *o, struct result *r)
{
	static const struct relay_overrides none;
	int tls = cfg_tls_mode(a);
	const char *mech;

	memset(rl, 0, sizeof *rl);
	o = o ? o : &none;
	rl->acct = a;
	rl->p.auth_used = rl->auth_used;
	if (o->tls && (tls = tls_word(o->tls)) < 0)
		return result_fail(r, EX_USAGE, "--tls must be starttls, implicit or off");
	if (o->timeout && (atol(o->timeout) <= 0 || atol(o->timeout) > 3600))
		return result_fail(r, EX_USAGE, "--timeout must be 1 to 3600 seconds");
	if (cfg_str(a, K_DOMAIN))
		snprintf(rl->ehlo, sizeof rl->ehlo, "%s", cfg_str(a, K_DOMAIN));
	else
		relay_default_ehlo(rl->ehlo, sizeof rl->ehlo);
	rl->p.account = a->name;
	rl->p.ehlo_name = rl->ehlo;
	rl->p.host = o->host ? o->host : cfg_str(a, K_HOST);
	rl->p.port = o->port ? o->port : o->tls && !cfg_str(a, K_PORT) ?
		     default_port(tls) : cfg_port(a);
	rl->p.tls = (enum smtp_tls)tls;
	rl->p.timeout_s = (int)(o->timeout ? atol(o->timeout) : cfg_long(a, K_TIMEOUT, 0));
	rl->p.partial_delivery = cfg_bool(a, K_PARTIAL_DELIVERY, 0);
	fill_tls(rl);
	mech = o->auth ? o->auth : cfg_str(a, K_AUTH);
	rl->ap.user = o->user ? o->user : cfg_str(a, K_USER);
	rl->ap.mech = mech ? mech : rl->ap.user ? "auto" : "off";
	rl->ap.host = rl->p.host;
	rl->ap.port = rl->p.port;
	rl->ap.allow_plaintext = cfg_bool(a, K_ALLOW_PLAINTEXT_AUTH, 0);
	return 0;
}

/* SPEC 7: the files that decide what is trusted must be the caller's or
 * root's (trust.h), checked before anything is sent. */
static int check_tls_files(const struct relay *rl, struct result *r)
{
	const struct tls_params *tp = &rl->tp;
	const char *key = tp->key_file ? tp->key_file : tp->cert_file;

	if (rl->p.tls == SMTP_TLS_OFF)
		return 0;
	if (tp->trust_file && strcmp(tp->trust_file, "system") != 0 &&
	    trust_check_path("tls_trust_file", tp->trust_file, 0, r) < 0)
		return -1;
	if (tp->cert_file && (trust_check_path("tls_cert_file", tp->cert_file, 0, r) < 0 ||
			      trust_check_path("tls_key_file", key, 0, r) < 0))
		return -1;
	return 0;
}

/* The server refused the token: it may have been revoked before it expired
 * (a changed password, a consent withdrawn), so ask for a new one. */
static int renew_token(void *arg, const char **secret, struct result *r)
{
	struct relay *rl = arg;
	char *fresh = NULL;

	if (oauth2_access_token(rl->acct, 1, &fresh, r) < 0)
		return -1;
	secret_free(rl->secret);
	rl->secret = fresh;
	rl->ap.secret = fresh;
	*secret = fresh;
	return 0;
}

int relay_auth(struct relay *rl, struct result *r)
{
	const char *mech = rl->ap.mech;

	if (check_tls_files(rl, r) < 0)
		return -1;
	if (strcmp(mech, "off") == 0 || rl->p.auth)
		return 0;
	/* Known before connecting: no secret goes over a clear connection. */
	if (rl->p.tls == SMTP_TLS_OFF && !rl->ap.allow_plaintext) {
		r->phase = PHASE_AUTH;
		return result_fail(r, EX_CONFIG, "refusing to authenticate over an "
				   "unencrypted connection; use tls = starttls or implicit "
				   "(allow_plaintext_auth = yes is for test relays only)");
	}
	/* OAuth2 accounts get their token from the cache or the token
	 * endpoint (issue 18); EXTERNAL uses the client certificate, GSSAPI
	 * the Kerberos ticket. */
	if (oauth2_enabled(rl->acct, mech)) {
		if (oauth2_access_token(rl->acct, 0, &rl->secret, r) < 0)
			return -1;
		rl->ap.renew = renew_token;
		rl->ap.renew_arg = rl;
	} else if (strcasecmp(mech, "external") != 0 && strcasecmp(mech, "gssapi") != 0 &&
		   secret_get(rl->acct, rl->p.host, rl->ap.user, &rl->secret, r) < 0) {
		return -1;
	}
	rl->ap.secret = rl->secret;
	rl->p.auth = &rl->ap;
	return 0;
}

void relay_free(struct relay *rl)
{
	secret_free(rl->secret);
	rl->secret = NULL;
	rl->ap.secret = NULL;
}
