/* main.c - orchestration only: parse the command line, run the mode, and exit
 * once with the status of the one struct result that everything below fills. */
#include "config.h"
#include "cli.h"
#include "compose.h"
#include "log.h"
#include "modes.h"
#include "result.h"
#include "sysmode.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

static int run(struct ctx *c, struct result *r)
{
	log_verbose = c->o.verbose;
	log_set_tag(c->o.log_tag);
	if (c->o.transcript && log_transcript_open(c->o.transcript, r) < 0)
		return -1;
	for (int i = 0; i < c->o.nignored; i++)
		log_info("ignoring option %s", c->o.ignored[i]);
	/* Composing options make a message to send: silently dropping them in
	 * another mode (-bs, -q, --check...) would lose what the user wrote. */
	if (compose_wanted(&c->o) && c->o.mode != MODE_SEND && c->o.mode != MODE_HELP &&
	    c->o.mode != MODE_VERSION)
		return result_fail(r, EX_USAGE, "--subject, --body, --attach and the other "
				   "composing options only go with sending a message");
	switch (c->o.mode) {
	case MODE_VERSION:
		printf("pushmail " PACKAGE_VERSION "\n");
		return 0;
	case MODE_HELP:
		cli_help(stdout);
		return 0;
	case MODE_SEND: return mode_send(c, r);
	case MODE_SERVERINFO: return mode_serverinfo(c, r);
	case MODE_QUEUE_LIST: return mode_mailq(c, r);
	case MODE_QUEUE_RUN: return mode_runq(c, r);
	case MODE_QUEUE_DELETE: return mode_queue_delete(c, r);
	case MODE_QUEUE_RETRY: return mode_queue_retry(c, r);
	case MODE_ALIASES: return mode_newaliases(c, r);
	case MODE_SMTP: return mode_bsmtp(c, r);
	case MODE_CHECK: return mode_check(c, r);
	case MODE_IMPORT: return mode_import(c, r);
	case MODE_DAEMON: return mode_daemon(c, r);
	case MODE_SETUP: return mode_setup_system(c, r);
	case MODE_IGNORE: return 0;
	case MODE_OAUTH2_LOGIN: return mode_oauth2_login(c, r);
	}
	return result_fail(r, EX_SOFTWARE, "unknown mode %d", (int)c->o.mode);
}

static void report(const struct ctx *c, const struct result *r)
{
	char line[RESULT_TEXT_MAX + 400];

	result_describe(r, line, sizeof line);
	if (c->acct && r->phase != PHASE_NONE)
		log_err("account '%s' (%s): %s", c->acct->name, c->host ? c->host : "?",
			line);
	else
		log_err("%s", line);
	if (c->o.bad_option)
		cli_usage(stderr);
}

/* SPEC 7: no core file may hold a secret.  A configured `password =` is in
 * memory from the moment the configuration is read, long before any secret
 * is fetched, so this comes before anything else: not dumpable (which also
 * keeps other processes of the same user out of /proc/PID/mem), and a core
 * size limit of 0, soft and hard, as a second lock (fs.suid_dumpable = 2
 * still dumps non-dumpable processes) that children inherit.  Failures are
 * ignored: there is nothing better to do. */
static void no_core_dumps(void)
{
	struct rlimit none = { 0, 0 };

	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	setrlimit(RLIMIT_CORE, &none);
}

int main(int argc, char **argv)
{
	struct ctx c = { 0 };
	struct result r;
	int rc;

	no_core_dumps();
	result_clear(&r);
	/* SPEC 9: pushmail is never set-id; the drop helper is.  A binary left
	 * set-gid by an old installation runs as its caller, so no option,
	 * file or variable of the caller's is ever used with raised privilege. */
	if (sysmode_drop_setid() < 0) {
		fputs("pushmail: cannot give up set-id privilege\n", stderr);
		return EX_OSERR;
	}
	signal(SIGPIPE, SIG_IGN);
	rc = cli_parse(argc, argv, &c.o, &r);
	if (rc == 0)
		rc = run(&c, &r);
	if (rc < 0)
		report(&c, &r);
	log_transcript_close();
	cli_free(&c.o);
	cfg_free(&c.cfg);
	return rc < 0 ? r.exitcode : EX_OK;
}
