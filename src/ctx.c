/* ctx.c - what every mode shares: the configuration, the queue, the
 * command-line overrides of an account's connection settings. */
#include "config.h"
#include "modes.h"

#include <stdio.h>
#include <stdlib.h>

void ctx_config_hint(char *out, size_t cap)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");

	if (xdg && *xdg)
		snprintf(out, cap, "%s/pushmail/config.ini", xdg);
	else
		snprintf(out, cap, "~/.config/pushmail/config.ini");
}

int ctx_load_config(struct ctx *c, int required, struct result *r)
{
	if (cfg_load(&c->cfg, c->o.config, &c->cfg_found, r) < 0)
		return -1;
	char hint[512];

	if (c->cfg_found == 0 && required) {
		ctx_config_hint(hint, sizeof hint);
		return result_fail(r, EX_CONFIG,
				   "no configuration found: create %s (or " SYSCONFDIR
				   "/pushmail.ini) with an account section naming your "
				   "relay's host; see pushmail.conf(5)", hint);
	}
	return c->cfg_found ? cfg_finish(&c->cfg, r) : 0;
}

int ctx_set_aside_config(struct ctx *c, struct result *r)
{
	if (c->o.config || r->exitcode != EX_CONFIG)
		return -1;
	result_describe(r, c->cfg_error, sizeof c->cfg_error);
	cfg_free(&c->cfg);
	c->cfg_found = 0;
	result_clear(r);
	return 0;
}

int ctx_open_queue(struct ctx *c, struct queue *q, struct result *r)
{
	char dir[4096];

	if (c->queue_path)
		return queue_open(q, c->queue_path, r);
	queue_default_dir(c->cfg_found ? cfg_str(&c->cfg.defaults, K_QUEUE_DIR) : NULL,
			  dir, sizeof dir);
	return queue_open(q, dir, r);
}

void ctx_overrides(const struct ctx *c, struct relay_overrides *ov)
{
	ov->host = c->o.host;
	ov->port = c->o.port;
	ov->tls = c->o.tls;
	ov->auth = c->o.auth;
	ov->user = c->o.user;
	ov->timeout = c->o.timeout;
	ov->proxy_host = c->o.proxy_host;
	ov->proxy_port = c->o.proxy_port;
	ov->source = c->o.source_ip;
	ov->ip_version = c->o.ip_version;
	ov->protocol = c->o.protocol;
}

