/* oauth2_login.c - pushmail --oauth2-login: the device authorization grant
 * (RFC 8628) that gives pushmail a refresh token of its own (issue 18). */
#include "config.h"
#include "modes.h"
#include "log.h"
#include "oauth2.h"
#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"

/* RFC 8628 3.1: ask for a device code and a user code. */
static int device_start(const struct oauth2_conf *oc, struct oauth2_device *d,
			struct result *r)
{
	char *form = NULL, *body = NULL, why[400];
	size_t len;
	long status;
	int rc;

	if (oauth2_form_add(&form, "client_id", oc->client_id) < 0 ||
	    oauth2_form_add(&form, "scope", oc->scope) < 0) {
		oauth2_form_free(form);
		return result_fail(r, EX_OSERR, "out of memory");
	}
	rc = oauth2_post(oc, oc->device_url, form, &body, &len, &status, r);
	oauth2_form_free(form);
	if (rc < 0)
		return -1;
	rc = oauth2_parse_device(body, len, status, d, why, sizeof why);
	free(body);
	if (rc < 0)
		return result_fail(r, status >= 500 ? EX_TEMPFAIL : EX_UNAVAILABLE,
				   "the device authorization endpoint %s refused: %s",
				   oc->device_url, why);
	return 0;
}

static void tell_user(const struct oauth2_conf *oc, const struct oauth2_device *d)
{
	printf("To let pushmail send mail for account '%s', open\n\n    %s\n\n"
	       "and enter the code\n\n    %s\n\n", oc->account, d->verification_uri,
	       d->user_code);
	if (d->verification_uri_complete)
		printf("(or open %s)\n", d->verification_uri_complete);
	printf("Waiting up to %ld minutes for the authorization...\n",
	       (d->expires_in + 59) / 60);
	fflush(stdout);
}

static int poll_once(const struct oauth2_conf *oc, const struct oauth2_device *d,
		     struct oauth2_tokens *t, char *why, size_t cap,
		     enum oauth2_verdict *v, struct result *r)
{
	char *form = NULL, *body = NULL;
	size_t len;
	long status;
	int rc;

	if (oauth2_form_add(&form, "grant_type", DEVICE_GRANT) < 0 ||
	    oauth2_form_add(&form, "device_code", d->device_code) < 0 ||
	    oauth2_form_add(&form, "client_id", oc->client_id) < 0 ||
	    (oc->client_secret &&
	     oauth2_form_add(&form, "client_secret", oc->client_secret) < 0)) {
		oauth2_form_free(form);
		return result_fail(r, EX_OSERR, "out of memory");
	}
	rc = oauth2_post(oc, oc->token_url, form, &body, &len, &status, r);
	oauth2_form_free(form);
	if (rc < 0)
		return -1;
	*v = oauth2_parse_token(body, len, status, (long long)time(NULL), t, why, cap);
	explicit_bzero(body, len);
	free(body);
	return 0;
}

static int poll_failed(enum oauth2_verdict v, const char *why, struct result *r)
{
	switch (v) {
	case O2_EXPIRED:
		return result_fail(r, EX_TEMPFAIL, "the code expired before it was "
				   "entered (%s); run the command again", why);
	case O2_DENIED:
		return result_fail(r, EX_NOPERM, "the authorization was declined (%s)", why);
	case O2_TEMP:
		return result_fail(r, EX_TEMPFAIL, "the token endpoint failed: %s", why);
	default:
		return result_fail(r, EX_CONFIG, "the token endpoint refused the login: %s; "
				   "check oauth2_client_id, oauth2_client_secret and "
				   "oauth2_scope", why);
	}
}

/* RFC 8628 3.4/3.5: poll every `interval` seconds, 5 s slower after each
 * slow_down, until the device code expires.  Bounded by expires_in. */
static int device_poll(const struct oauth2_conf *oc, const struct oauth2_device *d,
		       struct oauth2_tokens *t, struct result *r)
{
	time_t end = time(NULL) + d->expires_in;
	long interval = d->interval;
	enum oauth2_verdict v = O2_PENDING;
	char why[400] = "";

	for (int polls = 0; polls < 10000 && time(NULL) < end; polls++) {
		struct timespec ts = { interval, 0 };
		while (nanosleep(&ts, &ts) < 0)
			;
		if (poll_once(oc, d, t, why, sizeof why, &v, r) < 0)
			return -1;
		if (v == O2_OK)
			return 0;
		if (v == O2_SLOW_DOWN)
			interval += 5;
		else if (v != O2_PENDING)
			return poll_failed(v, why, r);
		log_info("oauth2: %s; next poll in %ld s", why, interval);
	}
	return poll_failed(O2_EXPIRED, why[0] ? why : "no answer in time", r);
}

static int login(const struct account *a, struct result *r)
{
	struct oauth2_conf oc;
	struct oauth2_device d = { 0 };
	struct oauth2_tokens t = { 0 };
	char path[4096];
	int lock = -1, rc = -1;

	if (oauth2_conf_init(&oc, a, 1, r) < 0)
		goto out;
	if (tokens_path(a, path, sizeof path, r) < 0 || device_start(&oc, &d, r) < 0)
		goto out;
	tell_user(&oc, &d);
	if (device_poll(&oc, &d, &t, r) < 0)
		goto out;
	if (!t.refresh_token) {
		result_fail(r, EX_UNAVAILABLE, "the provider issued no refresh token%s",
			    strcmp(oc.provider, "microsoft") == 0 ?
			    " (oauth2_scope needs offline_access)" : "");
		goto out;
	}
	if (tokens_lock(path, &lock, r) < 0 ||
	    tokens_store(path, oc.token_url, oc.client_id, &t, r) < 0)
		goto out;
	printf("Logged in: account '%s' keeps its tokens in %s\n", a->name, path);
	rc = 0;
out:
	tokens_unlock(lock);
	oauth2_tokens_free(&t);
	oauth2_device_free(&d);
	oauth2_conf_free(&oc);
	return rc;
}

int mode_oauth2_login(struct ctx *c, struct result *r)
{
	if (ctx_load_config(c, 1, r) < 0)
		return -1;
	c->acct = cfg_select(&c->cfg, c->o.account, NULL, r);
	if (!c->acct)
		return -1;
	/* a login the sends would not use helps nobody */
	if (!oauth2_enabled(c->acct, c->o.auth))
		return result_fail(r, EX_CONFIG, "account '%s' does not use OAuth2: set "
				   "auth = xoauth2 (or oauthbearer) and oauth2_provider "
				   "(see pushmail.conf(5))", c->acct->name);
	return login(c->acct, r);
}
