/* t_oauth2.c - the pure parts of the OAuth2 client (issue 18): token and
 * device endpoint answers (RFC 6749 5.1/5.2, RFC 8628 3.2/3.5), the token
 * cache file's text, account names as file names. */
#include "config.h"
#include "oauth2.h"
#include "tokens.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define NOW 1000000LL

static const struct {
	const char *name;
	long status;
	const char *body;
	enum oauth2_verdict want;
	const char *access, *refresh;   /* O2_OK: expected tokens (NULL: none) */
	long long expires_at;
	const char *why;                /* substring of the reason, or NULL */
} tokens[] = {
	{ "success with rotation", 200,
	  "{\"access_token\":\"AT-1\",\"token_type\":\"Bearer\",\"expires_in\":3599,"
	  "\"refresh_token\":\"RT-2\",\"scope\":\"mail\"}",
	  O2_OK, "AT-1", "RT-2", NOW + 3599, NULL },
	{ "success without refresh token", 200,
	  "{\"access_token\":\"AT-1\",\"token_type\":\"bearer\",\"expires_in\":60}",
	  O2_OK, "AT-1", NULL, NOW + 60, NULL },
	{ "expires_in as a string", 200,
	  "{\"access_token\":\"AT\",\"token_type\":\"Bearer\",\"expires_in\":\"120\"}",
	  O2_OK, "AT", NULL, NOW + 120, NULL },
	{ "expires_in missing: one hour", 200,
	  "{\"access_token\":\"AT\",\"token_type\":\"Bearer\"}",
	  O2_OK, "AT", NULL, NOW + 3600, NULL },
	{ "expires_in negative: one hour", 200,
	  "{\"access_token\":\"AT\",\"token_type\":\"Bearer\",\"expires_in\":-5}",
	  O2_OK, "AT", NULL, NOW + 3600, NULL },
	{ "not a Bearer token", 200,
	  "{\"access_token\":\"AT\",\"token_type\":\"mac\"}", O2_TEMP, NULL, NULL, 0,
	  "not a Bearer" },
	{ "no access token", 200, "{\"token_type\":\"Bearer\"}", O2_TEMP, NULL, NULL, 0,
	  "access_token" },
	{ "^A in the access token (SASL field smuggling)", 200,
	  "{\"access_token\":\"AT\\u0001auth=x\",\"token_type\":\"Bearer\"}",
	  O2_TEMP, NULL, NULL, 0, "access_token" },
	{ "space in the refresh token", 200,
	  "{\"access_token\":\"AT\",\"token_type\":\"Bearer\",\"refresh_token\":\"a b\"}",
	  O2_TEMP, NULL, NULL, 0, "refresh_token" },
	{ "not JSON", 200, "<html>hi</html>", O2_TEMP, NULL, NULL, 0, "JSON" },
	{ "a JSON array", 200, "[1,2]", O2_TEMP, NULL, NULL, 0, "JSON" },
	{ "duplicate keys", 200,
	  "{\"access_token\":\"A\",\"access_token\":\"B\",\"token_type\":\"Bearer\"}",
	  O2_TEMP, NULL, NULL, 0, NULL },
	{ "authorization_pending", 400, "{\"error\":\"authorization_pending\"}",
	  O2_PENDING, NULL, NULL, 0, "authorization_pending" },
	{ "slow_down", 400, "{\"error\":\"slow_down\"}", O2_SLOW_DOWN, NULL, NULL, 0, NULL },
	{ "expired_token", 400, "{\"error\":\"expired_token\"}", O2_EXPIRED, NULL, NULL, 0,
	  NULL },
	{ "access_denied", 400, "{\"error\":\"access_denied\"}", O2_DENIED, NULL, NULL, 0,
	  NULL },
	{ "invalid_grant with description", 400,
	  "{\"error\":\"invalid_grant\",\"error_description\":\"Token has been "
	  "expired or revoked.\"}", O2_INVALID_GRANT, NULL, NULL, 0,
	  "invalid_grant: Token has been expired or revoked." },
	{ "invalid_client (401)", 401, "{\"error\":\"invalid_client\"}", O2_CLIENT,
	  NULL, NULL, 0, "invalid_client" },
	{ "unknown error code", 400, "{\"error\":\"weird\"}", O2_CLIENT, NULL, NULL, 0,
	  "weird" },
	{ "description with an escape sequence", 400,
	  "{\"error\":\"invalid_grant\",\"error_description\":\"\\u001b[31mred\"}",
	  O2_INVALID_GRANT, NULL, NULL, 0, "\\x1b[31mred" },
	{ "503 with HTML", 503, "<html>down</html>", O2_TEMP, NULL, NULL, 0, "HTTP 503" },
	{ "400 without JSON", 400, "bad", O2_TEMP, NULL, NULL, 0, "HTTP 400" },
	/* found by fuzz_oauth2: an empty reason */
	{ "empty error code", 400, "{\"error\":\"\"}", O2_TEMP, NULL, NULL, 0, "HTTP 400" },
	{ "temporarily_unavailable", 400, "{\"error\":\"temporarily_unavailable\"}",
	  O2_TEMP, NULL, NULL, 0, NULL },
};

static void test_tokens(void)
{
	for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
		struct oauth2_tokens t;
		char why[400];
		enum oauth2_verdict v = oauth2_parse_token(tokens[i].body,
							   strlen(tokens[i].body),
							   tokens[i].status, NOW, &t,
							   why, sizeof why);
		is_int(v, tokens[i].want, "token: %s", tokens[i].name);
		if (v == O2_OK) {
			is_str(t.access_token, tokens[i].access, "token: %s: access token",
			       tokens[i].name);
			is_str(t.refresh_token, tokens[i].refresh, "token: %s: refresh token",
			       tokens[i].name);
			is_int(t.expires_at, tokens[i].expires_at, "token: %s: expiry",
			       tokens[i].name);
		} else {
			ok(!t.access_token && !t.refresh_token, "token: %s: nothing kept",
			   tokens[i].name);
		}
		if (tokens[i].why)
			ok(strstr(why, tokens[i].why) != NULL, "token: %s: reason '%s'",
			   tokens[i].name, why);
		oauth2_tokens_free(&t);
	}
}

static const struct {
	const char *name;
	long status;
	const char *body;
	int rc;
	const char *uri, *user_code;
	long interval, expires_in;
} devices[] = {
	{ "RFC 8628 answer", 200,
	  "{\"device_code\":\"DC\",\"user_code\":\"WDJB-MJHT\",\"verification_uri\":"
	  "\"https://example.com/device\",\"verification_uri_complete\":"
	  "\"https://example.com/device?user_code=WDJB-MJHT\",\"expires_in\":1800,"
	  "\"interval\":2}", 0, "https://example.com/device", "WDJB-MJHT", 2, 1800 },
	{ "Google's verification_url, no interval", 200,
	  "{\"device_code\":\"DC\",\"user_code\":\"ABC\",\"verification_url\":"
	  "\"https://www.google.com/device\",\"expires_in\":600}", 0,
	  "https://www.google.com/device", "ABC", 5, 600 },
	{ "http verification URI refused", 200,
	  "{\"device_code\":\"DC\",\"user_code\":\"ABC\",\"verification_uri\":"
	  "\"http://evil.example/\",\"expires_in\":600}", -1, NULL, NULL, 0, 0 },
	{ "escape sequence in the user code", 200,
	  "{\"device_code\":\"DC\",\"user_code\":\"\\u001b[2J\",\"verification_uri\":"
	  "\"https://example.com/\",\"expires_in\":600}", -1, NULL, NULL, 0, 0 },
	{ "no device code", 200,
	  "{\"user_code\":\"ABC\",\"verification_uri\":\"https://example.com/\"}", -1,
	  NULL, NULL, 0, 0 },
	{ "absurd interval and expiry bounded", 200,
	  "{\"device_code\":\"DC\",\"user_code\":\"ABC\",\"verification_uri\":"
	  "\"https://example.com/\",\"expires_in\":99999999,\"interval\":0}", 0,
	  "https://example.com/", "ABC", 5, 900 },
	{ "error answer", 400, "{\"error\":\"invalid_client\"}", -1, NULL, NULL, 0, 0 },
};

static void test_devices(void)
{
	for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
		struct oauth2_device d;
		char why[400];
		int rc = oauth2_parse_device(devices[i].body, strlen(devices[i].body),
					     devices[i].status, &d, why, sizeof why);
		is_int(rc, devices[i].rc, "device: %s", devices[i].name);
		if (rc == 0) {
			is_str(d.verification_uri, devices[i].uri, "device: %s: uri",
			       devices[i].name);
			is_str(d.user_code, devices[i].user_code, "device: %s: user code",
			       devices[i].name);
			is_int(d.interval, devices[i].interval, "device: %s: interval",
			       devices[i].name);
			is_int(d.expires_in, devices[i].expires_in, "device: %s: expiry",
			       devices[i].name);
		} else {
			ok(why[0] != '\0', "device: %s: a reason", devices[i].name);
		}
		oauth2_device_free(&d);
	}
}

static void test_cache_text(void)
{
	struct oauth2_tokens t = { .access_token = "AT", .refresh_token = "RT",
				   .expires_at = 1234 }, back;
	char *text = tokens_encode("https://t.example/token", "cid", &t);

	ok(text != NULL, "cache: encoded");
	is_int(tokens_decode(text, strlen(text), "https://t.example/token", "cid", &back), 1,
	       "cache: decodes for the same client");
	is_str(back.access_token, "AT", "cache: access token back");
	is_str(back.refresh_token, "RT", "cache: refresh token back");
	is_int(back.expires_at, 1234, "cache: expiry back");
	oauth2_tokens_free(&back);
	is_int(tokens_decode(text, strlen(text), "https://other.example/token", "cid", &back),
	       0, "cache: another token endpoint is not ours");
	is_int(tokens_decode(text, strlen(text), "https://t.example/token", "other", &back),
	       0, "cache: another client id is not ours");
	is_int(tokens_decode("{}", 2, "u", "c", &back), -1, "cache: no refresh token");
	is_int(tokens_decode("garbage", 7, "u", "c", &back), -1, "cache: not JSON");
	oauth2_form_free(text);
}

static const struct {
	const char *name;
	int ok;
} names[] = {
	{ "work", 1 }, { "my.account_2-x", 1 }, { "", 0 }, { ".hidden", 0 },
	{ "..", 0 }, { "a/b", 0 }, { "../../etc/passwd", 0 }, { "a b", 0 },
	{ "a\nb", 0 }, { "Grüße", 0 },
	{ "0123456789012345678901234567890123456789012345678901234567890123", 1 },
	{ "01234567890123456789012345678901234567890123456789012345678901234", 0 },
};

static void test_names(void)
{
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		is_int(tokens_name_ok(names[i].name), names[i].ok, "name #%zu", i);
}

/* Presets and the oauth2_* keys over them (oauth2_conf_init). */
static const struct {
	const char *name, *keys;
	int rc;
	const char *token_url, *device_url, *scope, *why;
} confs[] = {
	{ "google preset", "oauth2_provider = google\noauth2_client_id = c\n", 0,
	  "https://oauth2.googleapis.com/token", "https://oauth2.googleapis.com/device/code",
	  "https://mail.google.com/", NULL },
	{ "microsoft preset", "oauth2_provider = microsoft\noauth2_client_id = c\n", 0,
	  "https://login.microsoftonline.com/common/oauth2/v2.0/token",
	  "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
	  "https://outlook.office.com/SMTP.Send offline_access", NULL },
	{ "microsoft tenant overrides the preset",
	  "oauth2_provider = microsoft\noauth2_client_id = c\noauth2_token_url = "
	  "https://login.microsoftonline.com/T/oauth2/v2.0/token\n", 0,
	  "https://login.microsoftonline.com/T/oauth2/v2.0/token",
	  "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
	  "https://outlook.office.com/SMTP.Send offline_access", NULL },
	{ "custom without oauth2_token_url", "oauth2_provider = custom\n"
	  "oauth2_client_id = c\n", -1, NULL, NULL, NULL, "needs oauth2_token_url" },
	{ "custom without oauth2_device_url (login)", "oauth2_provider = custom\n"
	  "oauth2_client_id = c\noauth2_token_url = https://t/\noauth2_scope = s\n", -1,
	  NULL, NULL, NULL, "needs oauth2_device_url" },
	{ "no client id", "oauth2_provider = google\n", -1, NULL, NULL, NULL,
	  "needs oauth2_client_id" },
	{ "http token URL", "oauth2_provider = custom\noauth2_client_id = c\n"
	  "oauth2_token_url = http://t.example/token\n", -1, NULL, NULL, NULL,
	  "must be an https:// URL" },
};

static void test_conf(void)
{
	for (size_t i = 0; i < sizeof confs / sizeof confs[0]; i++) {
		struct config c = { 0 };
		struct oauth2_conf oc;
		struct result r;
		char ini[600];
		int rc;

		result_clear(&r);
		snprintf(ini, sizeof ini, "[a]\nhost = h\nauth = xoauth2\nuser = u\n%s",
			 confs[i].keys);
		if (cfg_load_string(&c, ini, "t.ini", &r) < 0 || cfg_finish(&c, &r) < 0) {
			ok(0, "conf: %s: loads (%s)", confs[i].name, r.text);
			cfg_free(&c);
			continue;
		}
		rc = oauth2_conf_init(&oc, &c.v[0], 1, &r);
		is_int(rc, confs[i].rc, "conf: %s", confs[i].name);
		if (rc == 0) {
			is_str(oc.token_url, confs[i].token_url, "conf: %s: token URL",
			       confs[i].name);
			is_str(oc.device_url, confs[i].device_url, "conf: %s: device URL",
			       confs[i].name);
			is_str(oc.scope, confs[i].scope, "conf: %s: scope", confs[i].name);
			ok(oc.client_secret == NULL, "conf: %s: public client", confs[i].name);
			ok(oauth2_enabled(&c.v[0], NULL), "conf: %s: enabled", confs[i].name);
			ok(!oauth2_enabled(&c.v[0], "plain"), "conf: %s: not with --auth=plain",
			   confs[i].name);
		} else {
			is_int(r.exitcode, EX_CONFIG, "conf: %s: EX_CONFIG", confs[i].name);
			ok(strstr(r.text, confs[i].why) != NULL, "conf: %s: says '%s' (%s)",
			   confs[i].name, confs[i].why, r.text);
		}
		oauth2_conf_free(&oc);
		cfg_free(&c);
	}
}

static void test_form(void)
{
	char *f = NULL;

	ok(oauth2_form_add(&f, "grant_type", "refresh_token") == 0 &&
	   oauth2_form_add(&f, "refresh_token", "1//a+b=c&d e") == 0,
	   "form: built");
	is_str(f, "grant_type=refresh_token&refresh_token=1%2F%2Fa%2Bb%3Dc%26d%20e",
	       "form: values URL-encoded");
	oauth2_form_free(f);
}

int main(void)
{
	test_tokens();
	test_devices();
	test_cache_text();
	test_names();
	test_conf();
	test_form();
	return tap_done();
}
