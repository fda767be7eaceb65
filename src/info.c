/* info.c - pushmail --serverinfo: greeting, capabilities, TLS and the
 * certificate (with both pins), without sending mail. */
#include "config.h"
#include "modes.h"
#include "smtp.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void print_lines(const char *label, const char *text)
{
	printf("%s\n", label);
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char clean[1024];
		result_sanitise(clean, sizeof clean, p, n);
		printf("  %s\n", clean);
		p += n + (nl != NULL);
	}
}

static void print_time(const char *label, time_t t)
{
	char buf[64];
	struct tm tm;

	strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
	printf("  %-22s %s\n", label, buf);
}

static void print_tls(const struct tls_info *ti)
{
	printf("TLS: %s\n  %s\n", ti->version, ti->desc);
	printf("certificate:\n  %-22s %s\n  %-22s %s\n", "subject:", ti->subject,
	       "issuer:", ti->issuer);
	print_time("valid from:", ti->not_before);
	print_time("valid until:", ti->not_after);
	printf("  %-22s %s\n", "names:", ti->sans);
	printf("  %-22s %s\n", "sha256 (certificate):", ti->cert_sha256);
	printf("  %-22s %s\n", "sha256 (public key):", ti->spki_sha256);
	printf("  %-22s %s\n", "verification:", ti->verdict);
	printf("To pin this server, set tls_fingerprint to the public key hash (it "
	       "survives renewals that keep the key).\n");
}

static const char *tls_name(enum smtp_tls t)
{
	return t == SMTP_TLS_OFF ? "off" : t == SMTP_TLS_IMPLICIT ? "implicit" : "starttls";
}

int mode_serverinfo(struct ctx *c, struct result *r)
{
	struct relay_overrides ov;
	struct smtp_probe pr;
	struct relay rl;
	char path[1024];
	int rc;

	if (ctx_load_config(c, 1, r) < 0 ||
	    !(c->acct = cfg_select(&c->cfg, c->o.account, NULL, r)))
		return -1;
	ctx_overrides(c, &ov);
	if (relay_init(&rl, c->acct, &ov, r) < 0)
		return -1;
	c->host = rl.p.host;
	rl.tp.report_only = 1;   /* show the certificate whatever it is */
	rc = relay_proxy_secret(&rl, r) < 0 ? -1 : smtp_probe(&rl.p, &pr, r);
	relay_free(&rl);
	if (rc < 0)
		return -1;
	printf("account %s: %s port %s (tls = %s)\n", c->acct->name, rl.p.host,
	       rl.p.port, tls_name(rl.p.tls));
	/* issue 16: which way the relay was reached */
	relay_describe_path(&rl, path, sizeof path);
	printf("path: %s\n  connected to %s\n", path, pr.path);
	print_lines("greeting:", pr.greeting);
	print_lines(rl.p.tls == SMTP_TLS_STARTTLS ? "capabilities before TLS:" :
		    "capabilities:", pr.ehlo_before);
	if (pr.tls)
		print_tls(&rl.ti);
	if (pr.ehlo_after[0])
		print_lines("capabilities after TLS:", pr.ehlo_after);
	return 0;
}
