/* newaliases.c - newaliases / -bi: a relay client keeps no alias database,
 * so this checks the aliases file and reports the first error by line. */
#include "config.h"
#include "aliases.h"
#include "modes.h"

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
