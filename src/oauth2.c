/* oauth2.c - OAuth2 client: presets, token endpoint, access tokens
 * (see oauth2.h). */
#include "config.h"
#include "oauth2.h"
#include "log.h"
#include "secret.h"
#include "tokens.h"
#include "trust.h"

#include "curl_dl.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BODY_MAX (64 * 1024)
#define TOKEN_MAX 8192
#define DEFAULT_TIMEOUT_S 30
#define DEFAULT_EXPIRES_S 3600

/* ---- configuration ------------------------------------------------------ */

static const struct {
	const char *name, *device_url, *token_url, *scope;
} presets[] = {
	{ "google", "https://oauth2.googleapis.com/device/code",
	  "https://oauth2.googleapis.com/token", "https://mail.google.com/" },
	/* offline_access: without it Microsoft issues no refresh token */
	{ "microsoft", "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
	  "https://login.microsoftonline.com/common/oauth2/v2.0/token",
	  "https://outlook.office.com/SMTP.Send offline_access" },
};

int oauth2_enabled(const struct account *a, const char *mech)
{
	const char *m = mech ? mech : cfg_str(a, K_AUTH);

	return cfg_str(a, K_OAUTH2_PROVIDER) && m &&
	       (strcasecmp(m, "xoauth2") == 0 || strcasecmp(m, "oauthbearer") == 0);
}

static int https_url(const char *key, const char *url, struct result *r)
{
	if (strncasecmp(url, "https://", 8) != 0 || !url[8])
		return result_fail(r, EX_CONFIG, "%s must be an https:// URL, not '%s'",
				   key, url);
	return 0;
}

static int need(const struct oauth2_conf *oc, const char *v, const char *key,
		struct result *r)
{
	if (v)
		return 0;
	return result_fail(r, EX_CONFIG, "account '%s': oauth2_provider = %s needs %s "
			   "(see pushmail.conf(5))", oc->account, oc->provider, key);
}

static int client_secret(struct oauth2_conf *oc, const struct account *a,
			 struct result *r)
{
	const char *s = cfg_str(a, K_OAUTH2_CLIENT_SECRET);

	if (s)
		return (oc->client_secret = strdup(s)) ? 0 :
			result_fail(r, EX_OSERR, "out of memory");
	/* The password sources are otherwise unused by an OAuth2 account:
	 * they may hold the client secret (password_command = pass show ...). */
	if (!cfg_str(a, K_PASSWORD) && !cfg_str(a, K_PASSWORD_COMMAND) &&
	    !cfg_str(a, K_PASSWORD_FILE))
		return 0;
	return secret_get(a, oc->token_url, oc->client_id, &oc->client_secret, r);
}

int oauth2_conf_init(struct oauth2_conf *oc, const struct account *a, int need_device,
		     struct result *r)
{
	memset(oc, 0, sizeof *oc);
	oc->account = a->name;
	oc->provider = cfg_str(a, K_OAUTH2_PROVIDER);
	if (!oc->provider)
		return result_fail(r, EX_CONFIG, "account '%s' has no oauth2_provider",
				   a->name);
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
		if (strcmp(oc->provider, presets[i].name) == 0) {
			oc->device_url = presets[i].device_url;
			oc->token_url = presets[i].token_url;
			oc->scope = presets[i].scope;
		}
	/* explicit keys win over a preset (a Microsoft tenant, a test endpoint) */
	if (cfg_str(a, K_OAUTH2_TOKEN_URL))
		oc->token_url = cfg_str(a, K_OAUTH2_TOKEN_URL);
	if (cfg_str(a, K_OAUTH2_DEVICE_URL))
		oc->device_url = cfg_str(a, K_OAUTH2_DEVICE_URL);
	if (cfg_str(a, K_OAUTH2_SCOPE))
		oc->scope = cfg_str(a, K_OAUTH2_SCOPE);
	oc->client_id = cfg_str(a, K_OAUTH2_CLIENT_ID);
	oc->trust_file = cfg_str(a, K_OAUTH2_TRUST_FILE);
	oc->timeout_s = cfg_long(a, K_TIMEOUT, DEFAULT_TIMEOUT_S);
	if (need(oc, oc->client_id, "oauth2_client_id", r) < 0 ||
	    need(oc, oc->token_url, "oauth2_token_url", r) < 0 ||
	    https_url("oauth2_token_url", oc->token_url, r) < 0)
		return -1;
	/* SPEC 7: the file that decides whom the token goes to is trusted
	 * like tls_trust_file */
	if (oc->trust_file && strcmp(oc->trust_file, "system") != 0 &&
	    trust_check_path("oauth2_trust_file", oc->trust_file, 0, r) < 0)
		return -1;
	if (need_device && (need(oc, oc->device_url, "oauth2_device_url", r) < 0 ||
			    need(oc, oc->scope, "oauth2_scope", r) < 0 ||
			    https_url("oauth2_device_url", oc->device_url, r) < 0))
		return -1;
	return client_secret(oc, a, r);
}

void oauth2_conf_free(struct oauth2_conf *oc)
{
	secret_free(oc->client_secret);
	oc->client_secret = NULL;
}

void oauth2_tokens_free(struct oauth2_tokens *t)
{
	secret_free(t->access_token);
	secret_free(t->refresh_token);
	memset(t, 0, sizeof *t);
}

void oauth2_device_free(struct oauth2_device *d)
{
	free(d->device_code);
	free(d->user_code);
	free(d->verification_uri);
	free(d->verification_uri_complete);
	memset(d, 0, sizeof *d);
}

/* ---- pure parsers ------------------------------------------------------- */

/* RFC 6750 2.1 b64token and friends: printable ASCII without spaces, so a
 * token can neither smuggle SASL fields (^A) nor break a line. */
static int token_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TOKEN_MAX)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static const char *jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void why_set(char *why, size_t cap, const char *what, const char *desc)
{
	char clean[300];

	result_sanitise(clean, sizeof clean, desc ? desc : "", desc ? strlen(desc) : 0);
	snprintf(why, cap, "%s%s%s", what, clean[0] ? ": " : "", clean);
}

static const struct {
	const char *error;
	enum oauth2_verdict v;
} error_codes[] = {
	{ "authorization_pending", O2_PENDING }, { "slow_down", O2_SLOW_DOWN },
	{ "expired_token", O2_EXPIRED }, { "access_denied", O2_DENIED },
	{ "invalid_grant", O2_INVALID_GRANT }, { "invalid_client", O2_CLIENT },
	{ "unauthorized_client", O2_CLIENT }, { "invalid_scope", O2_CLIENT },
	{ "unsupported_grant_type", O2_CLIENT }, { "invalid_request", O2_CLIENT },
	/* RFC 6749 5.2 has no 5xx codes, but providers send these with 503 */
	{ "temporarily_unavailable", O2_TEMP }, { "server_error", O2_TEMP },
};

static enum oauth2_verdict parse_error(json_t *o, long status, char *why, size_t cap)
{
	const char *err = o ? jstr(o, "error") : NULL;
	const char *desc = o ? jstr(o, "error_description") : NULL;
	char what[120];

	if (status >= 500 || !err || !*err) {
		snprintf(what, sizeof what, "the token endpoint answered HTTP %ld%s", status,
			 o ? "" : " without a JSON error");
		why_set(why, cap, what, err && *err ? err : desc);
		return O2_TEMP;
	}
	result_sanitise(what, sizeof what, err, strlen(err));
	why_set(why, cap, what, desc);
	for (size_t i = 0; i < sizeof error_codes / sizeof error_codes[0]; i++)
		if (strcmp(err, error_codes[i].error) == 0)
			return error_codes[i].v;
	return O2_CLIENT;
}

static enum oauth2_verdict parse_success(json_t *o, long long now,
					 struct oauth2_tokens *t, char *why, size_t cap)
{
	const char *at = jstr(o, "access_token"), *type = jstr(o, "token_type");
	const char *rt = jstr(o, "refresh_token");
	json_t *exp = json_object_get(o, "expires_in");
	long long e = DEFAULT_EXPIRES_S;

	if (!at || !token_ok(at)) {
		why_set(why, cap, "the token endpoint's answer has no usable access_token",
			NULL);
		return O2_TEMP;
	}
	if (!type || strcasecmp(type, "bearer") != 0) {
		why_set(why, cap, "the token endpoint issued a token that is not a Bearer "
			"token", type);
		return O2_TEMP;
	}
	if (rt && !token_ok(rt)) {
		why_set(why, cap, "the token endpoint's refresh_token is not printable", NULL);
		return O2_TEMP;
	}
	/* some endpoints send expires_in as a string ("3599") */
	if (json_is_integer(exp))
		e = json_integer_value(exp);
	else if (json_is_string(exp))
		e = strtoll(json_string_value(exp), NULL, 10);
	if (e <= 0 || e > 366LL * 86400)
		e = DEFAULT_EXPIRES_S;
	t->access_token = strdup(at);
	t->refresh_token = rt ? strdup(rt) : NULL;
	t->expires_at = now + e;
	if (!t->access_token || (rt && !t->refresh_token)) {
		oauth2_tokens_free(t);
		why_set(why, cap, "out of memory", NULL);
		return O2_TEMP;
	}
	return O2_OK;
}

static json_t *load_object(const char *body, size_t len)
{
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);

	if (o && !json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

enum oauth2_verdict oauth2_parse_token(const char *body, size_t len, long status,
				       long long now, struct oauth2_tokens *t,
				       char *why, size_t cap)
{
	json_t *o = load_object(body, len);
	enum oauth2_verdict v;

	memset(t, 0, sizeof *t);
	why[0] = '\0';
	if (status == 200 && o)
		v = parse_success(o, now, t, why, cap);
	else if (status == 200)
		why_set(why, cap, "the token endpoint's answer is not a JSON object", NULL),
			v = O2_TEMP;
	else
		v = parse_error(o, status, why, cap);
	json_decref(o);
	return v;
}

static int dup_field(json_t *o, const char *key, const char *alt, char **out)
{
	const char *v = jstr(o, key);

	if (!v && alt)
		v = jstr(o, alt);
	*out = v ? strdup(v) : NULL;
	return *out ? 0 : -1;
}

/* Shown to the user: short, printable, no spaces. */
static int printable(const char *s, size_t max)
{
	return s && strlen(s) <= max && token_ok(s);
}

int oauth2_parse_device(const char *body, size_t len, long status,
			struct oauth2_device *d, char *why, size_t cap)
{
	json_t *o = load_object(body, len), *iv, *ex;
	int rc = -1;

	memset(d, 0, sizeof *d);
	why[0] = '\0';
	if (status != 200) {
		parse_error(o, status, why, cap);
		goto out;
	}
	if (!o) {
		why_set(why, cap, "the device endpoint's answer is not a JSON object", NULL);
		goto out;
	}
	if (dup_field(o, "device_code", NULL, &d->device_code) < 0 ||
	    dup_field(o, "user_code", NULL, &d->user_code) < 0 ||
	    dup_field(o, "verification_uri", "verification_url", &d->verification_uri) < 0 ||
	    !printable(d->user_code, 64) || !printable(d->verification_uri, 512) ||
	    strncasecmp(d->verification_uri, "https://", 8) != 0 ||
	    !token_ok(d->device_code)) {
		why_set(why, cap, "the device endpoint's answer lacks device_code, "
			"user_code or an https verification_uri", NULL);
		goto out;
	}
	dup_field(o, "verification_uri_complete", NULL, &d->verification_uri_complete);
	if (d->verification_uri_complete && !printable(d->verification_uri_complete, 600)) {
		free(d->verification_uri_complete);
		d->verification_uri_complete = NULL;
	}
	iv = json_object_get(o, "interval");
	ex = json_object_get(o, "expires_in");
	d->interval = json_is_integer(iv) ? (long)json_integer_value(iv) : 5;
	d->expires_in = json_is_integer(ex) ? (long)json_integer_value(ex) : 0;
	if (d->interval < 1 || d->interval > 60)
		d->interval = 5;
	if (d->expires_in <= 0 || d->expires_in > 3600)
		d->expires_in = 900;   /* RFC 8628 requires it; be bounded anyway */
	rc = 0;
out:
	if (rc < 0)
		oauth2_device_free(d);
	json_decref(o);
	return rc;
}

/* ---- HTTP --------------------------------------------------------------- */

struct sink {
	char *buf;
	size_t len;
	int over;
};

static size_t sink_write(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t add = size * n;
	char *nb;

	if (s->len + add > BODY_MAX) {
		s->over = 1;
		return 0;
	}
	nb = realloc(s->buf, s->len + add + 1);
	if (!nb)
		return 0;
	memcpy(nb + s->len, p, add);
	s->buf = nb;
	s->len += add;
	s->buf[s->len] = '\0';
	return add;
}

/* application/x-www-form-urlencoded value: RFC 3986's unreserved
 * characters as they are, every other byte %XX (as curl_easy_escape). */
static char *form_escape(const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(3 * strlen(v) + 1), *o = out;

	for (; out && *v; v++) {
		unsigned char ch = (unsigned char)*v;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch)) {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	if (out)
		*o = '\0';
	return out;
}

int oauth2_form_add(char **f, const char *name, const char *value)
{
	char *enc = form_escape(value), *nf = NULL;
	int n;

	if (!enc)
		return -1;
	n = asprintf(&nf, "%s%s%s=%s", *f ? *f : "", *f ? "&" : "", name, enc);
	explicit_bzero(enc, strlen(enc));
	free(enc);
	if (n < 0)
		return -1;
	oauth2_form_free(*f);
	*f = nf;
	return 0;
}

void oauth2_form_free(char *f)
{
	secret_free(f);
}

static int curl_setup(const struct curl_api *cu, CURL *c, const struct oauth2_conf *oc,
		      const char *url, const char *form, struct sink *s,
		      struct curl_slist *hdr)
{
	long t = oc->timeout_s > 0 ? oc->timeout_s : DEFAULT_TIMEOUT_S;
	int bad = 0;

	bad |= cu->easy_setopt(c, CURLOPT_URL, url) != CURLE_OK;
	/* https only, and no redirect may lead elsewhere with the secrets */
	bad |= cu->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (oc->trust_file && strcmp(oc->trust_file, "system") != 0)
		bad |= cu->easy_setopt(c, CURLOPT_CAINFO, oc->trust_file) != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_TIMEOUT, t) != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_CONNECTTIMEOUT, t) != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_USERAGENT, "pushmail/" PACKAGE_VERSION) != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_HTTPHEADER, hdr) != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_POSTFIELDS, form) != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write) != CURLE_OK;
	bad |= cu->easy_setopt(c, CURLOPT_WRITEDATA, s) != CURLE_OK;
	return bad ? -1 : 0;
}

int oauth2_post(const struct oauth2_conf *oc, const char *url, const char *form,
		char **body, size_t *len, long *status, struct result *r)
{
	const struct curl_api *cu = curl_api(r);
	struct sink s = { 0 };
	struct curl_slist *hdr = NULL;
	CURL *c;
	CURLcode rc;
	int ret = -1;

	*body = NULL;
	*len = 0;
	*status = 0;
	if (!cu)
		return -1;
	if (cu->global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c = cu->easy_init()))
		return result_fail(r, EX_OSERR, "libcurl cannot start");
	hdr = cu->slist_append(hdr, "Accept: application/json");
	if (!hdr || curl_setup(cu, c, oc, url, form, &s, hdr) < 0) {
		result_fail(r, EX_SOFTWARE, "libcurl refuses the request options");
		goto out;
	}
	log_info("oauth2: POST %s", url);
	rc = cu->easy_perform(c);
	/* whatever went wrong, the relay said nothing about the message:
	 * temporary, so queued mail waits (runq_is_temporary) */
	if (rc != CURLE_OK) {
		result_fail(r, EX_TEMPFAIL, "%s: %s", url, s.over ?
			    "the answer is larger than 64 KiB" : cu->easy_strerror(rc));
		goto out;
	}
	cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	*body = s.buf ? s.buf : strdup("");
	*len = s.len;
	s.buf = NULL;
	ret = *body ? 0 : result_fail(r, EX_OSERR, "out of memory");
out:
	if (s.buf)
		explicit_bzero(s.buf, s.len);
	free(s.buf);
	cu->slist_free_all(hdr);
	cu->easy_cleanup(c);
	return ret;
}

/* ---- access tokens ------------------------------------------------------ */

static int state_is_default_file(const char *file)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = cfg_home_dir();
	char p[4096];

	if (!file || strcmp(file, SYSCONFDIR "/pushmail.ini") == 0)
		return 1;
	if (xdg && *xdg)
		snprintf(p, sizeof p, "%s/pushmail/config.ini", xdg);
	else
		snprintf(p, sizeof p, "%s/.config/pushmail/config.ini", home ? home : "");
	return strcmp(file, p) == 0;
}

void oauth2_login_hint(const struct account *a, char *out, size_t cap)
{
	/* a command to paste: a path with anything unusual is single-quoted
	 * (a ' in it would need more than that: such a path is shown as is) */
	const char *f = a->file;
	int plain = f && strspn(f, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				"0123456789/._+-") == strlen(f);
	int quote = !plain && f && !strchr(f, '\'');

	if (state_is_default_file(f))
		snprintf(out, cap, "pushmail --oauth2-login -a %s", a->name);
	else
		snprintf(out, cap, "pushmail -C %s%s%s --oauth2-login -a %s", quote ? "'" : "",
			 f, quote ? "'" : "", a->name);
}

int oauth2_needs_login(const struct result *r)
{
	return r->exitcode == EX_NOPERM && r->phase == PHASE_AUTH && r->code == 0;
}

static int login_needed(const struct account *a, const char *why, int again,
			struct result *r)
{
	char hint[700];

	oauth2_login_hint(a, hint, sizeof hint);
	result_fail(r, EX_NOPERM, "%s; log in%s with: %s", why, again ? " again" : "", hint);
	r->phase = PHASE_AUTH;
	return -1;
}

static int verdict_fail(const struct account *a, enum oauth2_verdict v, const char *why,
			struct result *r)
{
	char msg[RESULT_TEXT_MAX];

	switch (v) {
	case O2_INVALID_GRANT:
		snprintf(msg, sizeof msg, "the token endpoint refused the refresh token of "
			 "account '%s' (%.300s)", a->name, why);
		return login_needed(a, msg, 1, r);
	case O2_CLIENT:
		return result_fail(r, EX_CONFIG, "the token endpoint refused account '%s''s "
				   "client (%s); check oauth2_client_id, oauth2_client_secret "
				   "and oauth2_scope", a->name, why);
	default:
		return result_fail(r, EX_TEMPFAIL, "no access token for account '%s' (%s)",
				   a->name, why);
	}
}

/* grant_type=refresh_token (RFC 6749 6); the answer goes into t, keeping
 * the old refresh token when the endpoint does not rotate it. */
static int refresh(const struct account *a, const struct oauth2_conf *oc,
		   struct oauth2_tokens *t, struct result *r)
{
	struct oauth2_tokens nt;
	char *form = NULL, *body = NULL, why[RESULT_TEXT_MAX];
	size_t len;
	long status;
	enum oauth2_verdict v;

	if (oauth2_form_add(&form, "grant_type", "refresh_token") < 0 ||
	    oauth2_form_add(&form, "refresh_token", t->refresh_token) < 0 ||
	    oauth2_form_add(&form, "client_id", oc->client_id) < 0 ||
	    (oc->client_secret &&
	     oauth2_form_add(&form, "client_secret", oc->client_secret) < 0)) {
		oauth2_form_free(form);
		return result_fail(r, EX_OSERR, "out of memory");
	}
	log_info("oauth2: refreshing the access token of account '%s'", a->name);
	if (oauth2_post(oc, oc->token_url, form, &body, &len, &status, r) < 0) {
		oauth2_form_free(form);
		snprintf(why, sizeof why, "%s", r->text);   /* not r->text into itself */
		return result_fail(r, r->exitcode, "no access token for account '%s': "
				   "the token endpoint %s", a->name, why);
	}
	oauth2_form_free(form);
	v = oauth2_parse_token(body, len, status, (long long)time(NULL), &nt, why, sizeof why);
	explicit_bzero(body, len);
	free(body);
	if (v != O2_OK)
		return verdict_fail(a, v, why, r);
	if (!nt.refresh_token) {
		nt.refresh_token = t->refresh_token;
		t->refresh_token = NULL;
	}
	oauth2_tokens_free(t);
	*t = nt;
	return 0;
}

static int fresh_enough(const struct oauth2_tokens *t)
{
	return t->access_token && t->expires_at - OAUTH2_MARGIN_S > (long long)time(NULL);
}

static int from_cache(const struct account *a, const struct oauth2_conf *oc,
		      const char *path, int force, char **token, struct result *r)
{
	struct oauth2_tokens t = { 0 };
	int other = 0, rc;

	rc = tokens_load(path, oc->token_url, oc->client_id, &t, &other, r);
	if (rc < 0)
		return -1;
	if (rc == 0 || !t.refresh_token) {
		oauth2_tokens_free(&t);
		return login_needed(a, other ? "the stored OAuth2 login is for another "
				    "token endpoint or client id" : "the account has no OAuth2 "
				    "login yet", !!other, r);
	}
	if (force || !fresh_enough(&t)) {
		if (refresh(a, oc, &t, r) < 0 ||
		    tokens_store(path, oc->token_url, oc->client_id, &t, r) < 0) {
			oauth2_tokens_free(&t);
			return -1;
		}
	} else {
		log_info("oauth2: using the cached access token of account '%s'", a->name);
	}
	*token = t.access_token;
	t.access_token = NULL;
	oauth2_tokens_free(&t);
	return 0;
}

int oauth2_describe(const struct account *a, char *out, size_t cap)
{
	struct oauth2_conf oc;
	struct oauth2_tokens t = { 0 };
	struct result r;
	char path[4096], when[64] = "";
	time_t exp;
	struct tm tm;
	int other = 0, rc = -1;

	result_clear(&r);
	if (oauth2_conf_init(&oc, a, 0, &r) < 0 || tokens_path(a, path, sizeof path, &r) < 0 ||
	    tokens_load(path, oc.token_url, oc.client_id, &t, &other, &r) <= 0)
		goto out;
	exp = (time_t)t.expires_at;
	if (t.access_token && gmtime_r(&exp, &tm))
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (when[0] && fresh_enough(&t))
		snprintf(out, cap, "%s; access token valid until %s (%lld min)", path, when,
			 (t.expires_at - (long long)time(NULL)) / 60);
	else
		snprintf(out, cap, "%s; refresh token stored, no valid access token", path);
	rc = 0;
out:
	oauth2_tokens_free(&t);
	oauth2_conf_free(&oc);
	return rc;
}

int oauth2_access_token(const struct account *a, int force, char **token,
			struct result *r)
{
	struct oauth2_conf oc;
	char path[4096];
	int lock = -1, rc = -1;

	*token = NULL;
	if (oauth2_conf_init(&oc, a, 0, r) < 0)
		goto out;
	if (tokens_path(a, path, sizeof path, r) < 0 || tokens_lock(path, &lock, r) < 0)
		goto out;
	rc = from_cache(a, &oc, path, force, token, r);
out:
	tokens_unlock(lock);
	oauth2_conf_free(&oc);
	if (rc < 0 && r->phase == PHASE_NONE)
		r->phase = PHASE_AUTH;
	return rc;
}
