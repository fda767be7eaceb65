/* newaliases.c - the configuration helpers that write nothing to the relay:
 * newaliases / -bi (a relay client keeps no alias database, so this checks
 * the aliases file and reports the first error by line) and
 * --import-msmtprc (an msmtp configuration converted to pushmail's INI). */
#include "config.h"
#include "aliases.h"
#include "modes.h"
#include "msmtprc.h"

#include <stdio.h>

#define ALIASES_DEFAULT "/etc/aliases"

int mode_newaliases(struct ctx *c, struct result *r)
{
	const struct account *a = NULL;
	const char *path = NULL;
	size_t n = 0;

	if (ctx_load_config(c, 0, r) < 0)
		return -1;
	if (c->cfg_found) {
		struct result ignored;
		result_clear(&ignored);
		a = cfg_select(&c->cfg, c->o.account, NULL, &ignored);
		path = a ? cfg_str(a, K_ALIASES) : cfg_str(&c->cfg.defaults, K_ALIASES);
	}
	if (!path)
		path = ALIASES_DEFAULT;
	if (aliases_check(path, &n, r) < 0)
		return -1;
	printf("%s: %zu aliases, no errors\n", path, n);
	return 0;
}

/* --import-msmtprc [FILE]: the INI on standard output, to review and save. */
int mode_import(struct ctx *c, struct result *r)
{
	if (c->o.nrcpt > 1)
		return result_fail(r, EX_USAGE, "--import-msmtprc takes at most one file");
	if (msmtprc_convert_file(c->o.nrcpt ? c->o.rcpt[0] : NULL, stdout, r) < 0)
		return -1;
	return fflush(stdout) == 0 ? 0 : result_fail(r, EX_IOERR, "writing the output failed");
}
