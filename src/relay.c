/* relay.c - from an account to session parameters (see relay.h). */
#include "config.h"
#include "relay.h"
#include "trust.h"
#include "secret.h"
#include "oauth2.h"
#include "conn.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
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

/* ip_version and source_address must agree: an IPv4 source cannot reach an
 * IPv6 relay (issue 16). */
/* --proxy-host etc. as msmtp takes them: the proxy resolves the relay's
 * name (socks5h), port 1080 unless --proxy-port, "" for no proxy. */
static int route_overrides(struct relay *rl, const struct relay_overrides *o,
			   struct result *r)
{
	static const char *const ipv[] = { "any", "4", "6" };
	unsigned char a[16];
	const char *ph = o->proxy_host;
	long pp = o->proxy_port ? atol(o->proxy_port) : 1080;
	int i;

	if (o->proxy_port && !ph)
		return result_fail(r, EX_USAGE, "--proxy-port needs --proxy-host");
	if (ph && (pp < 1 || pp > 65535 || strpbrk(ph, "/@[]: \t")))
		return result_fail(r, EX_USAGE, "--proxy-host takes a host name or IPv4 "
				   "address, --proxy-port 1 to 65535");
	if (ph) {
		snprintf(rl->proxy_buf, sizeof rl->proxy_buf, "socks5h://%s:%ld", ph, pp);
		rl->route.proxy = ph[0] ? rl->proxy_buf : NULL;
	}
	if (o->source) {
		if (inet_pton(strchr(o->source, ':') ? AF_INET6 : AF_INET, o->source, a) != 1)
			return result_fail(r, EX_USAGE, "--source-ip takes a numeric IPv4 "
					   "or IPv6 address");
		rl->route.source = o->source;
	}
	for (i = 0; o->ip_version && i < 3 && strcmp(o->ip_version, ipv[i]) != 0; i++)
		;
	if (i == 3)
		return result_fail(r, EX_USAGE, "--ip-version must be 4, 6 or any");
	if (o->ip_version)
		rl->route.family = i == 0 ? 0 : i == 1 ? 4 : 6;
	if (o->protocol && strcmp(o->protocol, "smtp") != 0 && strcmp(o->protocol, "lmtp") != 0)
		return result_fail(r, EX_USAGE, "--protocol must be smtp or lmtp");
	if (o->protocol)
		rl->p.lmtp = strcmp(o->protocol, "lmtp") == 0;
	return 0;
}

static int fill_route(struct relay *rl, const struct relay_overrides *o,
		      struct result *r)
{
	const struct account *a = rl->acct;
	const char *src = cfg_str(a, K_SOURCE_ADDRESS), *ipv = cfg_str(a, K_IP_VERSION);
	const struct setting *s = &a->s[K_SOURCE_ADDRESS];

	rl->route.source = src;
	rl->route.family = ipv && strcmp(ipv, "any") != 0 ? atoi(ipv) : 0;
	rl->route.proxy = cfg_str(a, K_PROXY);
	rl->route.proxy_user = cfg_str(a, K_PROXY_USER);
	rl->p.route = &rl->route;
	rl->p.lmtp = cfg_str(a, K_PROTOCOL) && strcmp(cfg_str(a, K_PROTOCOL), "lmtp") == 0;
	if (route_overrides(rl, o, r) < 0)
		return -1;
	src = rl->route.source;
	if (src && rl->route.family && (strchr(src, ':') != NULL) != (rl->route.family == 6)) {
		if (src != cfg_str(a, K_SOURCE_ADDRESS) || o->ip_version)
			return result_fail(r, EX_USAGE, "source address %s is not an IPv%d "
					   "address (--source-ip, --ip-version)", src,
					   rl->route.family);
		return result_fail(r, EX_CONFIG, "%s:%d: source_address %s is not an "
				   "IPv%d address, but ip_version = %d", s->file, s->line,
				   src, rl->route.family, rl->route.family);
	}
	return 0;
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
	/* --host /path is a unix socket like host = /path: no TLS by default */
	if (!o->tls && !cfg_str(a, K_TLS) && o->host && o->host[0] == '/')
		tls = CFG_TLS_OFF;
	if (o->timeout && (atol(o->timeout) <= 0 || atol(o->timeout) > 3600))
		return result_fail(r, EX_USAGE, "--timeout must be 1 to 3600 seconds");
	if (cfg_str(a, K_DOMAIN))
		snprintf(rl->ehlo, sizeof rl->ehlo, "%s", cfg_str(a, K_DOMAIN));
	else
		relay_default_ehlo(rl->ehlo, sizeof rl->ehlo);
	rl->p.account = a->name;
	rl->p.ehlo_name = rl->ehlo;
	rl->p.host = o->host ? o->host : cfg_host(a);
	rl->p.port = o->port ? o->port : o->tls && !cfg_str(a, K_PORT) ?
		     default_port(tls) : cfg_port(a);
	rl->p.tls = (enum smtp_tls)tls;
	rl->p.timeout_s = (int)(o->timeout ? atol(o->timeout) : cfg_long(a, K_TIMEOUT, 0));
	rl->p.partial_delivery = cfg_bool(a, K_PARTIAL_DELIVERY, 0);
	fill_tls(rl);
	if (fill_route(rl, o, r) < 0)
		return -1;
	mech = o->auth ? o->auth : cfg_str(a, K_AUTH);
	rl->ap.user = o->user ? o->user : cfg_str(a, K_USER);
	rl->ap.mech = mech ? mech : rl->ap.user ? "auto" : "off";
	rl->ap.host = rl->p.host;
	rl->ap.port = rl->p.port;
	/* a unix socket does not cross the network: nobody on the way to
	 * read a password (issue 16) */
	rl->ap.allow_plaintext = cfg_bool(a, K_ALLOW_PLAINTEXT_AUTH,
					  rl->p.host && rl->p.host[0] == '/');
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

int relay_proxy_secret(struct relay *rl, struct result *r)
{
	char host[256];
	const char *p = rl->route.proxy, *hp = p ? strstr(p, "://") : NULL;
	size_t n;

	if (!hp || !rl->route.proxy_user || rl->proxy_secret)
		return 0;
	hp += 3;
	n = strcspn(hp, "]");
	if (*hp == '[')
		hp++, n--;
	else
		n = (size_t)(strrchr(hp, ':') - hp);
	snprintf(host, sizeof host, "%.*s", (int)n, hp);
	if (secret_get_proxy(rl->acct, host, rl->route.proxy_user, &rl->proxy_secret,
			     r) < 0)
		return -1;
	rl->route.proxy_pass = rl->proxy_secret;
	return 0;
}

void relay_describe_path(const struct relay *rl, char *out, size_t cap)
{
	const struct conn_route *rt = &rl->route;
	const char *proto = rl->p.lmtp ? "LMTP" : "SMTP";

	if (rl->p.host && rl->p.host[0] == '/') {
		snprintf(out, cap, "%s over unix socket %s", proto, rl->p.host);
		return;
	}
	snprintf(out, cap, "%s%s%s%s, ip_version %s%s%s%s%s", proto,
		 rt->proxy ? " through SOCKS5 proxy " : ", direct",
		 rt->proxy ? rt->proxy : "",
		 rt->proxy && rt->proxy_user ? " (username/password)" : "",
		 rt->family == 4 ? "4" : rt->family == 6 ? "6" : "any",
		 rt->proxy && strncmp(rt->proxy, "socks5h", 7) == 0 ?
		 " (the proxy resolves the name)" : "",
		 rt->source ? ", source_address " : "", rt->source ? rt->source : "",
		 rt->family == 0 && !rt->proxy ? ", Happy Eyeballs" : "");
}

int relay_auth(struct relay *rl, struct result *r)
{
	const char *mech = rl->ap.mech;

	if (check_tls_files(rl, r) < 0 || relay_proxy_secret(rl, r) < 0)
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
	secret_free(rl->proxy_secret);
	rl->proxy_secret = NULL;
	rl->route.proxy_pass = NULL;
	rl->ap.secret = NULL;
}
