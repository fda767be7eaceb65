/* relay.h - one account turned into everything a session needs: host, port,
 * TLS and AUTH parameters, EHLO name, and (fetched only when needed) the
 * secret.  Used by the direct send, --serverinfo and the queue runner. */
#ifndef PUSHMAIL_RELAY_H
#define PUSHMAIL_RELAY_H

#include "auth.h"
#include "cfg.h"
#include "result.h"
#include "smtp.h"
#include "tls.h"

/* Command-line overrides (--host, --port, ...); NULL members are unset. */
struct relay_overrides {
	const char *host, *port, *tls, *auth, *user, *timeout;
	const char *proxy_host, *proxy_port, *source, *ip_version, *protocol;
};

struct relay {
	const struct account *acct;
	struct smtp_params p;      /* points into this struct: never copy it */
	struct tls_params tp;
	struct tls_info ti;
	struct auth_params ap;
	char auth_used[AUTH_MECH_MAX];  /* the mechanism AUTH used, "" before */
	char *secret;
	char ehlo[256];
	struct conn_route route;   /* issue 16: proxy, source address, family */
	char *proxy_secret;
	char proxy_buf[300];       /* --proxy-host/--proxy-port as a proxy URL */
};

/* Fill rl from account a and the overrides.  No secret is fetched yet.
 * EX_USAGE for a bad --tls/--timeout value. */
int relay_init(struct relay *rl, const struct account *a,
	       const struct relay_overrides *o, struct result *r);

/* Fetch the secret when the account authenticates with a mechanism that
 * needs one, and enable AUTH in rl->p. */
int relay_auth(struct relay *rl, struct result *r);

/* Fetch the SOCKS5 proxy's password when proxy_user is set (from
 * proxy_password, proxy_password_command, proxy_password_file, ~/.netrc
 * for the proxy's host).  relay_auth does it too. */
int relay_proxy_secret(struct relay *rl, struct result *r);

/* One line saying how the relay is reached ("direct, ip_version any",
 * "SOCKS5 proxy socks5h://...", "unix socket ..., LMTP"). */
void relay_describe_path(const struct relay *rl, char *out, size_t cap);

void relay_free(struct relay *rl);

/* The host's fully qualified name, for EHLO and Message-IDs. */
void relay_default_ehlo(char *out, size_t cap);

#endif
