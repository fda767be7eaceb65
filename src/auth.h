/* auth.h - SMTP AUTH mechanisms (RFC 4954): choice and client steps.
 *
 * libgsasl drives PLAIN, LOGIN, CRAM-MD5, SCRAM-* (with channel binding for
 * -PLUS), EXTERNAL and GSSAPI; XOAUTH2 and OAUTHBEARER (RFC 7628), which
 * Debian's libgsasl lacks, are written here.  The SMTP framing (334 loop,
 * AUTH line, redaction) belongs to smtp.c; this module only turns challenges
 * into responses, both base64.
 */
#ifndef PUSHMAIL_AUTH_H
#define PUSHMAIL_AUTH_H

#include <stddef.h>
#include "result.h"
#include "tls.h"

#define AUTH_MECH_MAX 32

struct auth_params {
	const char *mech;          /* "auto" or a mechanism as in the config */
	const char *user;
	const char *secret;        /* password or OAuth token */
	const char *host;          /* relay name (OAUTHBEARER, GSSAPI) */
	const char *port;
	int tls;                   /* the connection is encrypted */
	int allow_plaintext;       /* allow_plaintext_auth = yes */
	const struct tls_info *tls_info; /* channel binding source, or NULL */
	/* OAuth2 accounts (issue 18): after the server refused the token, get a
	 * fresh one into *secret (valid until the next call or the owner's
	 * cleanup).  NULL when the token cannot be renewed.  0, or -1 with r. */
	int (*renew)(void *arg, const char **secret, struct result *r);
	void *renew_arg;
};

/* Pick the mechanism: offered is the server's list (upper case, spaces).
 * auto: SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS (when channel binding is known),
 * SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, LOGIN, CRAM-MD5.  An explicit mechanism
 * the server does not offer is EX_UNAVAILABLE naming what it does offer.
 * Without TLS nothing is chosen unless allow_plaintext (SPEC 7).
 * Writes the upper-case name into out.  Returns 0 or -1 with r filled. */
int auth_choose(const char *offered, const struct auth_params *ap,
		char out[AUTH_MECH_MAX], struct result *r);

struct auth_client;

/* Start mech.  Returns NULL with r filled (EX_SOFTWARE/EX_CONFIG). */
struct auth_client *auth_start(const char *mech, const struct auth_params *ap,
			       struct result *r);

/* Whether the mechanism sends a response before any challenge (so it can
 * ride on the AUTH command, RFC 4954 4). */
int auth_client_first(const char *mech);

/* One step: challenge is the base64 text of a 334 reply (NULL for the initial
 * response).  *out gets a malloc'd base64 response ("" for an empty one);
 * the caller wipes and frees it with auth_free_response.  Returns 0, or -1
 * with r filled.  A challenge that is not valid base64 is answered with "*"
 * (cancel, RFC 4954 4). */
int auth_step(struct auth_client *ac, const char *challenge, char **out,
	      struct result *r);

/* The mechanism has finished on our side (for SCRAM: the server's signature
 * was checked).  A 235 before that is not a login we can trust. */
int auth_complete(const struct auth_client *ac);

/* The server answered the bearer token with an error challenge (RFC 7628
 * 3.2.2): the token was refused, whatever the final reply says. */
int auth_token_refused(const struct auth_client *ac);

void auth_free_response(char *resp);
void auth_end(struct auth_client *ac);

/* Pure helpers (unit tests, fuzzing). */
int auth_b64_encode(const unsigned char *in, size_t len, char **out);
int auth_b64_decode(const char *in, unsigned char **out, size_t *len);
/* XOAUTH2 / OAUTHBEARER initial client responses (raw, not base64). */
int auth_xoauth2_message(const char *user, const char *token, char **out, size_t *len);
int auth_oauthbearer_message(const char *user, const char *host, const char *port,
			     const char *token, char **out, size_t *len);

#endif
