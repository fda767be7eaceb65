/* smtp_auth.c - the SMTP AUTH exchange (RFC 4954): the AUTH line with the
 * initial response, the 334 loop, cancelling with "*", redaction, and the
 * pipelined AUTH of one-step mechanisms (RFC 4954 4).  The mechanisms
 * themselves live in auth.c. */
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
	struct pending rec = { .phase = PHASE_AUTH };
	char *resp = NULL, *line = NULL, shown[64];
	int rc = -1;

	snprintf(shown, sizeof shown, "AUTH %s [redacted]", mech);
	if (!auth_client_first(mech))
		return eng_sendf(&s->e, rec, "AUTH %s", mech);
	if (auth_step(ac, NULL, &resp, s->e.io.r) < 0)
		return -1;
	if (asprintf(&line, "AUTH %s %s", mech, *resp ? resp : "=") < 0) {
		line = NULL;
		result_fail(s->e.io.r, EX_OSERR, "out of memory");
	} else {
		rc = eng_send(&s->e, rec, line, strlen(line), shown);
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
	struct pending rec = { .phase = PHASE_AUTH };
	struct sio *io = &s->e.io;
	char *resp = NULL;
	struct result why;
	int rc;

	if (auth_step(ac, io->rp.text, &resp, io->r) == 0) {
		rc = eng_send(&s->e, rec, resp, strlen(resp), "[redacted]");
		auth_free_response(resp);
		return rc;
	}
	why = *io->r;
	if (eng_send(&s->e, rec, "*", 1, NULL) == 0)
		eng_read(&s->e, &rec);
	*io->r = why;
	return -1;
}

/* The final reply in io->rp: 2xx (or refused, with r filled; a 504 names
 * what the server does offer). */
static int auth_refused(struct smtp_session *s)
{
	struct sio *io = &s->e.io;
	size_t n;

	sio_check(io, PHASE_AUTH, 2);
	if (io->rp.code == 504) {
		n = strlen(io->r->text);
		snprintf(io->r->text + n, sizeof io->r->text - n, " (the server offers %.200s)",
			 s->caps.auth);
	}
	return -1;
}

static int auth_exchange(struct smtp_session *s, struct auth_client *ac, const char *mech)
{
	struct sio *io = &s->e.io;
	struct pending rec;

	if (send_auth_line(s, ac, mech) < 0)
		return -1;
	for (;;) {
		if (eng_read(&s->e, &rec) < 0)
			return -1;
		if (io->rp.code != 334)
			break;
		if (answer_challenge(s, ac) < 0)
			return -1;
	}
	if (io->rp.code / 100 == 2 && auth_complete(ac))
		return 0;
	if (io->rp.code / 100 == 2) {
		/* SCRAM: no server signature, so no proof the server knows the
		 * password.  Do not send mail on a login we cannot trust. */
		io->r->phase = PHASE_AUTH;
		return result_fail(io->r, EX_PROTOCOL, "%s: the server accepted the login "
				   "without finishing the mechanism (no server signature)",
				   mech);
	}
	return auth_refused(s);
}

/* One AUTH exchange with mech.  *refused: the server refused an OAuth
 * token (an error challenge, or 535), so a fresh token may succeed. */
static int auth_once(struct smtp_session *s, const struct auth_params *ap,
		     const char *mech, int *refused)
{
	struct result *r = s->e.io.r;
	struct auth_client *ac = auth_start(mech, ap, r);
	int rc;

	*refused = 0;
	if (!ac)
		return -1;
	rc = auth_exchange(s, ac, mech);
	*refused = rc < 0 && r->phase == PHASE_AUTH &&
		   (auth_token_refused(ac) || r->code == 535);
	auth_end(ac);
	return rc;
}

/* Issue 18: the cached token may have been revoked before it expired; ask
 * the token endpoint for a new one and try once more.  Keeps the server's
 * refusal when no new token can be had for a reason that is not temporary
 * (it says more than "no login"). */
static int auth_retry(struct smtp_session *s, struct auth_params *ap, const char *mech)
{
	struct result *r = s->e.io.r;
	struct result refusal = *r;
	int refused;

	log_info("the server refused the access token; getting a fresh one");
	result_clear(r);
	if (ap->renew(ap->renew_arg, &ap->secret, r) < 0) {
		if (r->exitcode != EX_TEMPFAIL && r->exitcode != EX_NOPERM)
			*r = refusal;
		return -1;
	}
	return auth_once(s, ap, mech, &refused);
}

/* RFC 4954 4: AUTH with an initial response may be pipelined with what
 * follows when the mechanism ends in one exchange, with no challenge and
 * no security layer.  PLAIN and EXTERNAL do; XOAUTH2 and OAUTHBEARER do
 * only when the token is good (a refused one gets a 334 error challenge,
 * which the pipelined MAIL would answer), and an OAuth account retries
 * with a fresh token; SCRAM, LOGIN and CRAM-MD5 need challenges. */
static int one_step(const struct auth_params *ap, const char *mech)
{
	return !ap->renew && (strcmp(mech, "PLAIN") == 0 || strcmp(mech, "EXTERNAL") == 0);
}

static int auth_pipelined(struct smtp_session *s, const struct auth_params *ap,
			  const char *mech)
{
	struct auth_client *ac = auth_start(mech, ap, s->e.io.r);
	int rc;

	if (!ac)
		return -1;
	rc = send_auth_line(s, ac, mech);
	/* PLAIN and EXTERNAL are finished on our side once the initial
	 * response is made: the server's 235 is the whole verdict */
	if (rc == 0 && !auth_complete(ac))
		rc = result_fail(s->e.io.r, EX_SOFTWARE, "%s did not finish in one step",
				 mech);
	auth_end(ac);
	if (rc < 0)
		return -1;
	snprintf(s->auth_mech, sizeof s->auth_mech, "%s", mech);
	s->auth_owed = 1;
	return 1;
}

int ss_auth_verdict(struct smtp_session *s)
{
	struct sio *io = &s->e.io;
	struct result *keep = io->r;

	s->auth_owed = 0;
	/* the AUTH line went out before this reply came: wipe it */
	conn_wipe_output(io->c);
	if (io->rp.code / 100 == 2) {
		if (s->p->auth_used)
			snprintf(s->p->auth_used, AUTH_MECH_MAX, "%s", s->auth_mech);
		return 0;
	}
	s->auth_failed = 1;
	result_clear(&s->auth_r);
	io->r = &s->auth_r;
	if (io->rp.code == 334) {
		/* a challenge after a one-step mechanism: the server took the
		 * pipelined MAIL for the answer, and every reply after this one
		 * is out of step with our commands, so the connection ends */
		sio_failed(io, PHASE_AUTH);
		result_fail(io->r, EX_PROTOCOL, "%s: the server asked for more after the "
			    "initial response; its replies are out of step with the "
			    "commands that followed AUTH, so nothing more is sent",
			    s->auth_mech);
	} else {
		auth_refused(s);
	}
	io->r = keep;
	return -1;
}

int ss_do_auth(struct smtp_session *s)
{
	struct auth_params ap = *s->p->auth;
	struct sio *io = &s->e.io;
	char mech[AUTH_MECH_MAX];
	int rc, refused;

	ap.tls = s->p->tls != SMTP_TLS_OFF;
	ap.tls_info = s->p->tls_info;
	if (sio_in_step(io, PHASE_AUTH) < 0)
		return -1;
	/* issue 16: a local socket (an LMTP delivery agent) usually wants no
	 * AUTH at all; with auth = auto it is done only when offered */
	if (s->p->host && s->p->host[0] == '/' && !s->caps.auth[0] &&
	    strcmp(ap.mech, "auto") == 0) {
		log_info("%s offers no AUTH: not authenticating", s->p->host);
		return 0;
	}
	if (auth_choose(s->caps.auth, &ap, mech, io->r) < 0)
		return -1;
	log_info("authenticating as %s with %s", ap.user ? ap.user : "", mech);
	if (s->p->pipeline_auth && (s->caps.flags & CAP_PIPELINING) && one_step(&ap, mech))
		return auth_pipelined(s, &ap, mech);
	rc = auth_once(s, &ap, mech, &refused);
	if (rc < 0 && refused && ap.renew)
		rc = auth_retry(s, &ap, mech);
	if (rc == 0 && s->p->auth_used)   /* the mail log names what was used */
		snprintf(s->p->auth_used, AUTH_MECH_MAX, "%s", mech);
	/* every AUTH line was flushed before its reply was read */
	conn_wipe_output(io->c);
	return rc;
}
