/* auth.c - SASL mechanisms for SMTP AUTH (see auth.h). */
#include "config.h"
#include "auth.h"

#include <ctype.h>
#include <gsasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bound on challenge/response rounds: SCRAM needs 3, nothing sane needs 10. */
#define AUTH_ROUNDS_MAX 10

enum kind { K_GSASL, K_XOAUTH2, K_OAUTHBEARER };

struct auth_client {
	enum kind kind;
	char mech[AUTH_MECH_MAX];
	int rounds;
	int complete;      /* libgsasl said GSASL_OK: nothing more to answer */
	const struct auth_params *ap;
	Gsasl *ctx;
	Gsasl_session *sctx;
};

/* Strongest first (issue 4); plaintext-equivalent ones last. */
static const char *const auto_order[] = {
	"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1",
	"PLAIN", "LOGIN", "CRAM-MD5",
};

/* Every mechanism pushmail will use, and who implements it. */
static const struct {
	const char *name;
	enum kind kind;
	int client_first;   /* sends a response before any challenge */
} mechs[] = {
	{ "SCRAM-SHA-256-PLUS", K_GSASL, 1 }, { "SCRAM-SHA-1-PLUS", K_GSASL, 1 },
	{ "SCRAM-SHA-256", K_GSASL, 1 }, { "SCRAM-SHA-1", K_GSASL, 1 },
	{ "PLAIN", K_GSASL, 1 }, { "LOGIN", K_GSASL, 0 }, { "CRAM-MD5", K_GSASL, 0 },
	{ "EXTERNAL", K_GSASL, 1 }, { "GSSAPI", K_GSASL, 1 },
	{ "XOAUTH2", K_XOAUTH2, 1 }, { "OAUTHBEARER", K_OAUTHBEARER, 1 },
};

static int find_mech(const char *name)
{
	for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++)
		if (strcasecmp(mechs[i].name, name) == 0)
			return (int)i;
	return -1;
}

int auth_client_first(const char *mech)
{
	int i = find_mech(mech);

	return i >= 0 && mechs[i].client_first;
}

/* Is `word` one of the space-separated words of `list`? */
static int offered_has(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; *p;) {
		while (*p == ' ')
			p++;
		size_t w = strcspn(p, " ");
		if (w == n && strncasecmp(p, word, n) == 0)
			return 1;
		p += w;
	}
	return 0;
}

static int locally_supported(const char *mech)
{
	Gsasl *ctx;
	int ok;
	int i = find_mech(mech);

	if (i < 0)
		return 0;
	if (mechs[i].kind != K_GSASL)
		return 1;
	if (gsasl_init(&ctx) != GSASL_OK)
		return 0;
	ok = gsasl_client_support_p(ctx, mechs[i].name);
	gsasl_done(ctx);
	return ok;
}

static int has_binding(const struct auth_params *ap)
{
	return ap->tls_info && ap->tls_info->cblen > 0;
}

/* PLAIN and LOGIN put the password itself on the wire. */
static int sends_password(const char *mech)
{
	return strcmp(mech, "PLAIN") == 0 || strcmp(mech, "LOGIN") == 0;
}

static int choose_auto(const char *offered, const struct auth_params *ap,
		       char out[AUTH_MECH_MAX], struct result *r)
{
	for (size_t i = 0; i < sizeof auto_order / sizeof auto_order[0]; i++) {
		const char *m = auto_order[i];
		if (strstr(m, "-PLUS") && !has_binding(ap))
			continue;
		/* SPEC 4: auto never picks a plaintext mechanism without TLS,
		 * allow_plaintext_auth or not; auth = plain says so explicitly. */
		if (!ap->tls && sends_password(m))
			continue;
		if (offered_has(offered, m) && locally_supported(m)) {
			snprintf(out, AUTH_MECH_MAX, "%s", m);
			return 0;
		}
	}
	return result_fail(r, EX_UNAVAILABLE,
			   "no usable authentication mechanism: the server offers '%s'; "
			   "pushmail's automatic choice uses SCRAM, PLAIN, LOGIN or CRAM-MD5 "
			   "(PLAIN and LOGIN only over TLS; set auth = plain, login, xoauth2, "
			   "oauthbearer, external or gssapi explicitly)", offered);
}

int auth_choose(const char *offered, const struct auth_params *ap,
		char out[AUTH_MECH_MAX], struct result *r)
{
	r->phase = PHASE_AUTH;
	if (!ap->tls && !ap->allow_plaintext)
		return result_fail(r, EX_CONFIG,
				   "refusing to authenticate over an unencrypted connection; "
				   "use tls = starttls or implicit (allow_plaintext_auth = yes "
				   "is for test relays only)");
	if (!offered || !*offered)
		return result_fail(r, EX_UNAVAILABLE,
				   "the server does not offer authentication (no AUTH in EHLO)");
	if (strcasecmp(ap->mech, "auto") == 0)
		return choose_auto(offered, ap, out, r);
	if (find_mech(ap->mech) < 0)
		return result_fail(r, EX_CONFIG, "unknown mechanism auth = %s", ap->mech);
	snprintf(out, AUTH_MECH_MAX, "%s", mechs[find_mech(ap->mech)].name);
	if (!offered_has(offered, out))
		return result_fail(r, EX_UNAVAILABLE,
				   "the server does not offer AUTH %s; it offers %s", out,
				   offered);
	if (strstr(out, "-PLUS") && !has_binding(ap))
		return result_fail(r, EX_CONFIG, "auth = %s needs TLS channel binding, "
				   "which this connection does not have", ap->mech);
	if (!locally_supported(out))
		return result_fail(r, EX_CONFIG, "this libgsasl cannot do %s", out);
	return 0;
}

/* ---- base64 ---------------------------------------------------------------- */

int auth_b64_encode(const unsigned char *in, size_t len, char **out)
{
	size_t olen;

	if (len == 0)
		return (*out = strdup("")) ? 0 : -1;
	return gsasl_base64_to((const char *)in, len, out, &olen) == GSASL_OK ? 0 : -1;
}

int auth_b64_decode(const char *in, unsigned char **out, size_t *len)
{
	char *o = NULL;

	*out = NULL;
	*len = 0;
	if (gsasl_base64_from(in, strlen(in), &o, len) != GSASL_OK)
		return -1;
	*out = (unsigned char *)o;
	return 0;
}

/* ---- OAuth bearer messages ------------------------------------------------- */

static int has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* Google/Microsoft XOAUTH2: "user=U^Aauth=Bearer T^A^A". */
int auth_xoauth2_message(const char *user, const char *token, char **out, size_t *len)
{
	int n;

	*out = NULL;
	if (has_ctl(user) || has_ctl(token))
		return -1;   /* ^A is the field separator: no smuggled fields */
	n = asprintf(out, "user=%s\001auth=Bearer %s\001\001", user, token);
	if (n < 0)
		return *out = NULL, -1;
	*len = (size_t)n;
	return 0;
}

/* RFC 7628 3.1: gs2 header with authzid, then key/value pairs.  In the
 * authzid ',' and '=' are escaped as =2C and =3D (RFC 5801). */
int auth_oauthbearer_message(const char *user, const char *host, const char *port,
			     const char *token, char **out, size_t *len)
{
	char authz[512];
	size_t o = 0;
	int n;

	*out = NULL;
	if (has_ctl(user) || has_ctl(token) || has_ctl(host) || (port && has_ctl(port)))
		return -1;
	for (const char *p = user; *p && o + 4 < sizeof authz; p++) {
		if (*p == ',' || *p == '=') {
			o += (size_t)snprintf(authz + o, sizeof authz - o, "=%s",
					      *p == ',' ? "2C" : "3D");
		} else {
			authz[o++] = *p;
		}
	}
	authz[o] = '\0';
	n = asprintf(out, "n,a=%s,\001host=%s\001port=%s\001auth=Bearer %s\001\001",
		     authz, host, port ? port : "587", token);
	if (n < 0)
		return *out = NULL, -1;
	*len = (size_t)n;
	return 0;
}

/* ---- the client ------------------------------------------------------------- */

static int set_binding(struct auth_client *ac, struct result *r)
{
	const struct tls_info *ti = ac->ap->tls_info;
	char *b64 = NULL;
	int exporter;

	if (!strstr(ac->mech, "-PLUS"))
		return 0;
	if (!ti || ti->cblen == 0 || auth_b64_encode(ti->cb, ti->cblen, &b64) < 0)
		return result_fail(r, EX_SOFTWARE, "no TLS channel binding for %s", ac->mech);
	exporter = strcmp(ti->cbtype, "tls-exporter") == 0;
	gsasl_property_set(ac->sctx, exporter ? GSASL_CB_TLS_EXPORTER :
			   GSASL_CB_TLS_UNIQUE, b64);
	free(b64);
	return 0;
}

static int start_gsasl(struct auth_client *ac, struct result *r)
{
	const struct auth_params *ap = ac->ap;
	int rc = gsasl_init(&ac->ctx);

	if (rc != GSASL_OK)
		return result_fail(r, EX_SOFTWARE, "libgsasl: %s", gsasl_strerror(rc));
	rc = gsasl_client_start(ac->ctx, ac->mech, &ac->sctx);
	if (rc != GSASL_OK)
		return result_fail(r, EX_CONFIG, "libgsasl cannot start %s: %s", ac->mech,
				   gsasl_strerror(rc));
	if (ap->user)
		gsasl_property_set(ac->sctx, GSASL_AUTHID, ap->user);
	if (ap->secret)
		gsasl_property_set(ac->sctx, GSASL_PASSWORD, ap->secret);
	gsasl_property_set(ac->sctx, GSASL_SERVICE, "smtp");
	if (ap->host)
		gsasl_property_set(ac->sctx, GSASL_HOSTNAME, ap->host);
	return set_binding(ac, r);
}

struct auth_client *auth_start(const char *mech, const struct auth_params *ap,
			       struct result *r)
{
	struct auth_client *ac = calloc(1, sizeof *ac);
	int i = find_mech(mech);

	if (!ac) {
		result_fail(r, EX_OSERR, "out of memory");
		return NULL;
	}
	if (i < 0) {
		result_fail(r, EX_CONFIG, "unknown mechanism %s", mech);
		free(ac);
		return NULL;
	}
	ac->kind = mechs[i].kind;
	ac->ap = ap;
	snprintf(ac->mech, sizeof ac->mech, "%s", mechs[i].name);
	if (ac->kind == K_GSASL && start_gsasl(ac, r) < 0) {
		auth_end(ac);
		return NULL;
	}
	return ac;
}

/* Our own mechanisms: the first step sends the bearer message; any challenge
 * after it is the server's error report (RFC 7628 3.2.2), answered with the
 * dummy response the protocol asks for so the server can send its 535. */
static int oauth_step(struct auth_client *ac, const char *challenge, char **out,
		      struct result *r)
{
	const struct auth_params *ap = ac->ap;
	char *msg = NULL;
	size_t len = 0;
	int rc;

	if (challenge)
		return (*out = strdup(ac->kind == K_OAUTHBEARER ? "AQ==" : "")) ? 0 :
			result_fail(r, EX_OSERR, "out of memory");
	if (!ap->user || !ap->secret)
		return result_fail(r, EX_CONFIG, "%s needs user and a token", ac->mech);
	rc = ac->kind == K_XOAUTH2 ?
		auth_xoauth2_message(ap->user, ap->secret, &msg, &len) :
		auth_oauthbearer_message(ap->user, ap->host, ap->port, ap->secret,
					 &msg, &len);
	if (rc < 0)
		return result_fail(r, EX_CONFIG, "user or token contains control characters");
	rc = auth_b64_encode((unsigned char *)msg, len, out);
	explicit_bzero(msg, len);
	free(msg);
	return rc < 0 ? result_fail(r, EX_OSERR, "out of memory") : 0;
}

/* SCRAM's server-first message names the PBKDF2 iteration count; a hostile
 * server could ask for 2^31 and keep the client computing for half an hour
 * (found by fuzzing).  Real servers use 4096 to 600000. */
#define SCRAM_ITERATIONS_MAX 1000000UL

static int scram_iterations_ok(const char *challenge, struct result *r)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	int ok = 1;

	if (auth_b64_decode(challenge, &raw, &len) < 0)
		return 1;   /* libgsasl answers undecodable challenges itself */
	for (size_t i = 0; i + 2 < len; i++) {
		if ((i == 0 || raw[i - 1] == ',') && raw[i] == 'i' && raw[i + 1] == '=') {
			unsigned long n = 0;
			for (size_t k = i + 2; k < len && raw[k] >= '0' && raw[k] <= '9' &&
			     n <= SCRAM_ITERATIONS_MAX; k++)
				n = n * 10 + (raw[k] - '0');
			ok = n <= SCRAM_ITERATIONS_MAX;
			break;
		}
	}
	free(raw);
	if (!ok)
		return result_fail(r, EX_PROTOCOL, "the server asks for more than %lu "
				   "SCRAM iterations; refusing", SCRAM_ITERATIONS_MAX), 0;
	return 1;
}

int auth_step(struct auth_client *ac, const char *challenge, char **out,
	      struct result *r)
{
	int rc;

	*out = NULL;
	r->phase = PHASE_AUTH;
	if (++ac->rounds > AUTH_ROUNDS_MAX)
		return result_fail(r, EX_PROTOCOL, "too many AUTH challenges (%d)",
				   AUTH_ROUNDS_MAX);
	if (ac->kind != K_GSASL)
		return oauth_step(ac, challenge, out, r);
	/* A challenge after the mechanism finished (e.g. after PLAIN's initial
	 * response) is not answered with the credentials again: the caller
	 * cancels with "*" (RFC 4954 4). */
	if (ac->complete)
		return result_fail(r, EX_PROTOCOL, "%s: the server sent another challenge "
				   "after the mechanism finished", ac->mech);
	if (challenge && !strncmp(ac->mech, "SCRAM-", 6) && !scram_iterations_ok(challenge, r))
		return -1;
	rc = gsasl_step64(ac->sctx, challenge ? challenge : "", out);
	if (rc == GSASL_OK || rc == GSASL_NEEDS_MORE) {
		ac->complete = rc == GSASL_OK;
		return 0;
	}
	free(*out);
	*out = NULL;
	/* An undecodable challenge is a malformed server reply (SPEC 3: 76);
	 * failing here makes the caller cancel with "*" (RFC 4954 4), read the
	 * server's verdict and keep this reason. */
	if (rc == GSASL_BASE64_ERROR)
		return result_fail(r, EX_PROTOCOL, "%s: the server's challenge is not "
				   "valid base64", ac->mech);
	return result_fail(r, EX_PROTOCOL, "%s: %s (the server's answer is not "
			   "what the mechanism expects)", ac->mech, gsasl_strerror(rc));
}

int auth_complete(const struct auth_client *ac)
{
	/* OAuth bearer mechanisms are done once the token went out. */
	return ac->kind == K_GSASL ? ac->complete : ac->rounds > 0;
}

int auth_token_refused(const struct auth_client *ac)
{
	return ac->kind != K_GSASL && ac->rounds > 1;
}

void auth_free_response(char *resp)
{
	if (!resp)
		return;
	explicit_bzero(resp, strlen(resp));
	free(resp);
}

/* libgsasl keeps its own copies of the password and of SCRAM's salted
 * password (as good as the password for this server) until the session is
 * finished, and frees them without wiping: wipe them in place, then drop
 * them (SPEC 7).  The mechanism's private state is out of reach. */
static void wipe_properties(Gsasl_session *sctx)
{
	static const Gsasl_property secret[] = { GSASL_PASSWORD,
						  GSASL_SCRAM_SALTED_PASSWORD };

	for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++) {
		char *v = (char *)gsasl_property_fast(sctx, secret[i]);
		if (v)
			explicit_bzero(v, strlen(v));
		gsasl_property_set(sctx, secret[i], NULL);
	}
}

void auth_end(struct auth_client *ac)
{
	if (!ac)
		return;
	if (ac->sctx) {
		wipe_properties(ac->sctx);
		gsasl_finish(ac->sctx);
	}
	if (ac->ctx)
		gsasl_done(ac->ctx);
	free(ac);
}
