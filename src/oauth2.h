/* oauth2.h - OAuth2 bearer tokens for XOAUTH2/OAUTHBEARER without helper
 * scripts (issue 18).
 *
 * An account with `oauth2_provider` gets its access token here instead of
 * from the password sources: the cached one while it is valid (60 s margin),
 * else a new one from the token endpoint with the stored refresh token
 * (RFC 6749 6), whose rotated successor is stored again (tokens.h).  The
 * refresh token comes from `pushmail --oauth2-login`, the device
 * authorization grant (RFC 8628, oauth2_login.c).
 *
 * HTTP is libcurl (GnuTLS), JSON is jansson; the endpoints must be https and
 * their certificates are always verified (system store or oauth2_trust_file).
 * No token is ever logged or put in argv.
 */
#ifndef PUSHMAIL_OAUTH2_H
#define PUSHMAIL_OAUTH2_H

#include <stddef.h>
#include <stdio.h>
#include "cfg.h"
#include "result.h"

/* Seconds before expiry at which a cached access token counts as expired:
 * it must survive the connection, STARTTLS and the AUTH exchange. */
#define OAUTH2_MARGIN_S 60

/* An account's endpoints: the provider preset with the oauth2_* keys over it. */
struct oauth2_conf {
	const char *account;
	const char *provider;
	const char *token_url, *device_url, *scope, *client_id, *trust_file;
	char *client_secret;    /* malloc'd, or NULL for a public client */
	long timeout_s;
};

/* 1 when the account takes its token from here (oauth2_provider is set and
 * auth is xoauth2 or oauthbearer, or mech overrides auth). */
int oauth2_enabled(const struct account *a, const char *mech);

/* Fill oc for account a.  The client secret is oauth2_client_secret, else
 * whatever password source the account has (password, password_command,
 * password_file); none is a public client.  need_device: the login also
 * needs the device endpoint.  0, or -1 with r filled (EX_CONFIG). */
int oauth2_conf_init(struct oauth2_conf *oc, const struct account *a, int need_device,
		     struct result *r);
void oauth2_conf_free(struct oauth2_conf *oc);

struct oauth2_tokens {
	char *access_token;     /* malloc'd or NULL */
	char *refresh_token;    /* malloc'd or NULL */
	long long expires_at;   /* Unix time the access token expires, 0 unknown */
};
/* Wipes and frees the strings; t is zeroed. */
void oauth2_tokens_free(struct oauth2_tokens *t);

/* What a token endpoint answer means (RFC 6749 5.1/5.2, RFC 8628 3.5). */
enum oauth2_verdict {
	O2_OK,              /* t filled */
	O2_PENDING,         /* authorization_pending: poll again */
	O2_SLOW_DOWN,       /* slow_down: poll again, 5 s slower */
	O2_EXPIRED,         /* expired_token: the device code expired */
	O2_DENIED,          /* access_denied: the user said no */
	O2_INVALID_GRANT,   /* the refresh token (or code) is revoked or expired */
	O2_CLIENT,          /* invalid_client, invalid_scope, ...: configuration */
	O2_TEMP,            /* 5xx, garbage, a token we cannot use: try later */
};

/* Pure: parse a token endpoint response (body of len bytes, HTTP status)
 * received at `now`.  O2_OK fills t (access_token required and printable,
 * token_type Bearer, expires_in optional (3600), refresh_token optional).
 * why gets a sanitised reason for every other verdict. */
enum oauth2_verdict oauth2_parse_token(const char *body, size_t len, long status,
				       long long now, struct oauth2_tokens *t,
				       char *why, size_t cap);

/* RFC 8628 3.2 device authorization response. */
struct oauth2_device {
	char *device_code, *user_code, *verification_uri, *verification_uri_complete;
	long expires_in, interval;
};
/* Pure: parse it (Google's verification_url accepted; interval defaults to
 * 5 s).  0, or -1 with why filled. */
int oauth2_parse_device(const char *body, size_t len, long status,
			struct oauth2_device *d, char *why, size_t cap);
void oauth2_device_free(struct oauth2_device *d);

/* POST the form to url (https only, certificate verified).  *body is
 * malloc'd (NUL-terminated, at most 64 KiB).  0 with *status set, or -1
 * with r filled (EX_TEMPFAIL: the endpoint could not be reached). */
int oauth2_post(const struct oauth2_conf *oc, const char *url, const char *form,
		char **body, size_t *len, long *status, struct result *r);

/* Append "&name=value" (value URL-encoded) to the malloc'd form *f.  0/-1. */
int oauth2_form_add(char **f, const char *name, const char *value);
/* Free a form that held secrets, wiping it. */
void oauth2_form_free(char *f);

/* The access token for account a: the cached one unless force or it expires
 * within OAUTH2_MARGIN_S, else a refreshed one (stored).  *token is
 * malloc'd (free with secret_free).  Errors: EX_NOPERM in PHASE_AUTH with
 * the login command when there is no login or the refresh token was
 * refused; EX_TEMPFAIL when the endpoint is down; EX_CONFIG otherwise. */
int oauth2_access_token(const struct account *a, int force, char **token,
			struct result *r);

/* The command that logs account a in again ("pushmail --oauth2-login -a NAME",
 * with -C FILE when the account is not in a file pushmail finds itself). */
void oauth2_login_hint(const struct account *a, char *out, size_t cap);

/* For --check: where account a's tokens are and until when the cached
 * access token is usable ("PATH; access token valid until 2026-12-06
 * 16:04:50 UTC (59 min)").  0, or -1 when there is no stored login. */
int oauth2_describe(const struct account *a, char *out, size_t cap);

/* Whether r is "log in again" (EX_NOPERM with no relay verdict): the queue
 * keeps the message waiting for the login. */
int oauth2_needs_login(const struct result *r);

#endif
