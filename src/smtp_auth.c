/* smtp_auth.c - the SMTP AUTH exchange (RFC 4954): the AUTH line with the
 * initial response, the 334 loop, cancelling with "*", redaction.  The
 * mechanisms themselves live in auth.c. */
#include "config.h"
#include "session.h"
#include "auth.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- AUTH (RFC 4954) --------------------------------------------------------- */

/* The first line: "AUTH MECH" or, for client-first mechanisms, with the
 * initial response ("=" for an empty one) so no round trip is wasted. */
static int send_auth_line(struct smtp_session *s, struct auth_client *ac, const char *mech)
{
	char *resp = NULL, *line = NULL, shown[64];
	int rc = -1;

	snprintf(shown, sizeof shown, "AUTH %s [redacted]", mech);
	if (!auth_client_first(mech))
		return ss_send_cmd(s, "AUTH %s", mech);
	if (auth_step(ac, NULL, &resp, s->r) < 0)
		return -1;
	if (asprintf(&line, "AUTH %s %s", mech, *resp ? resp : "=") < 0) {
		line = NULL;
		result_fail(s->r, EX_OSERR, "out of memory");
	} else {
		rc = ss_send_line(s, line, strlen(line), shown);
		explicit_bzero(line, strlen(line));
	}
	free(line);
	auth_free_response(resp);
	return rc;
}

/* Answer one 334 challenge.  When the mechanism cannot go on, cancel with
 * "*" (RFC 4954 4), read the server's verdict and keep our own reason. */
static int answer_challenge(struct smtp_session *s, struct auth_client *ac)
{
	char *resp = NULL;
	struct result why;
	int rc;

	if (auth_step(ac, s->rp.text, &resp, s->r) == 0) {
		rc = ss_send_line(s, resp, strlen(resp), "[redacted]");
		auth_free_response(resp);
		return rc;
	}
	why = *s->r;
	if (ss_send_line(s, "*", 1, NULL) == 0 && ss_flush(s, PHASE_AUTH, T_EHLO) == 0)
		ss_read_reply(s, PHASE_AUTH, T_EHLO);
	*s->r = why;
	return -1;
}

static int auth_exchange(struct smtp_session *s, struct auth_client *ac, const char *mech)
{
	if (send_auth_line(s, ac, mech) < 0)
		return -1;
	for (;;) {
		if (ss_flush(s, PHASE_AUTH, T_EHLO) < 0 || ss_read_reply(s, PHASE_AUTH, T_EHLO) < 0)
			return -1;
		if (s->rp.code != 334)
			break;
		if (answer_challenge(s, ac) < 0)
			return -1;
	}
	if (s->rp.code / 100 == 2 && auth_complete(ac))
		return 0;
	if (s->rp.code / 100 == 2) {
		/* SCRAM: no server signature, so no proof the server knows the
		 * password.  Do not send mail on a login we cannot trust. */
		s->r->phase = PHASE_AUTH;
		return result_fail(s->r, EX_PROTOCOL, "%s: the server accepted the login "
				   "without finishing the mechanism (no server signature)",
				   mech);
	}
	ss_check_reply(s, PHASE_AUTH, 2);
	if (s->rp.code == 504) {
		size_t n = strlen(s->r->text);
		snprintf(s->r->text + n, sizeof s->r->text - n, " (the server offers %.200s)",
			 s->caps.auth);
	}
	return -1;
}

/* One AUTH exchange with mech.  *refused: the server refused an OAuth
 * token (an error challenge, or 535), so a fresh token may succeed. */
static int auth_once(struct smtp_session *s, const struct auth_params *ap,
		     const char *mech, int *refused)
{
	struct auth_client *ac = auth_start(mech, ap, s->r);
	int rc;

	*refused = 0;
	if (!ac)
		return -1;
	rc = auth_exchange(s, ac, mech);
	*refused = rc < 0 && s->r->phase == PHASE_AUTH &&
		   (auth_token_refused(ac) || s->r->code == 535);
	auth_end(ac);
	return rc;
}

/* Issue 18: the cached token may have been revoked before it expired; ask
 * the token endpoint for a new one and try once more.  Keeps the server's
 * refusal when no new token can be had for a reason that is not temporary
 * (it says more than "no login"). */
static int auth_retry(struct smtp_session *s, struct auth_params *ap, const char *mech)
{
	struct result refusal = *s->r;
	int refused;

	log_info("the server refused the access token; getting a fresh one");
	result_clear(s->r);
	if (ap->renew(ap->renew_arg, &ap->secret, s->r) < 0) {
		if (s->r->exitcode != EX_TEMPFAIL && s->r->exitcode != EX_NOPERM)
			*s->r = refusal;
		return -1;
	}
	return auth_once(s, ap, mech, &refused);
}

int ss_do_auth(struct smtp_session *s)
{
	struct auth_params ap = *s->p->auth;
	char mech[AUTH_MECH_MAX];
	int rc, refused;

	ap.tls = s->p->tls != SMTP_TLS_OFF;
	ap.tls_info = s->p->tls_info;
	if (ss_in_step(s, PHASE_AUTH) < 0)
		return -1;
	/* issue 16: a local socket (an LMTP delivery agent) usually wants no
	 * AUTH at all; with auth = auto it is done only when offered */
	if (s->p->host && s->p->host[0] == '/' && !s->caps.auth[0] &&
	    strcmp(ap.mech, "auto") == 0) {
		log_info("%s offers no AUTH: not authenticating", s->p->host);
		return 0;
	}
	if (auth_choose(s->caps.auth, &ap, mech, s->r) < 0)
		return -1;
	log_info("authenticating as %s with %s", ap.user ? ap.user : "", mech);
	rc = auth_once(s, &ap, mech, &refused);
	if (rc < 0 && refused && ap.renew)
		rc = auth_retry(s, &ap, mech);
	if (rc == 0 && s->p->auth_used)   /* the mail log names what was used */
		snprintf(s->p->auth_used, AUTH_MECH_MAX, "%s", mech);
	/* every AUTH line was flushed before its reply was read */
	conn_wipe_output(s->c);
	return rc;
}

