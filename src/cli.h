/* cli.h - the command line: sendmail's options and pushmail's long options.
 *
 * Table-driven (cli.c): every letter sendmail callers pass is in a table with
 * its argument rule and what it does, including the ones accepted and ignored
 * (cron mail has been lost to tools that reject -oem or -B8BITMIME).
 */
#ifndef PUSHMAIL_CLI_H
#define PUSHMAIL_CLI_H

#include <stdio.h>
#include "result.h"

enum cli_mode {
	MODE_SEND = 0,     /* read a message from stdin and submit it */
	MODE_VERSION,
	MODE_HELP,
	MODE_QUEUE_LIST,   /* -bp, mailq */
	MODE_QUEUE_RUN,    /* -q[INTERVAL] */
	MODE_SMTP,         /* -bs */
	MODE_ALIASES,      /* -bi, newaliases */
	MODE_SERVERINFO,   /* --serverinfo */
	MODE_CHECK,        /* --check */
	MODE_QUEUE_DELETE, /* --queue-delete ID */
	MODE_QUEUE_RETRY,  /* --queue-retry ID */
	MODE_IMPORT,       /* --import-msmtprc [FILE] */
	MODE_DAEMON,       /* --daemon: the system delivery service */
	MODE_SETUP,        /* --setup-system */
	MODE_IGNORE,       /* -bh, -bH: Postfix accepts them and does nothing */
	MODE_OAUTH2_LOGIN, /* --oauth2-login: device authorization grant (issue 18) */
};

#define CLI_IGNORED_MAX 16

/* A repeatable option's values, in order (point into argv). */
struct cli_list {
	const char **v;
	int n;
};

struct options {
	enum cli_mode mode;
	const char *config;        /* -C, --config */
	const char *account;       /* -a, --account */
	const char *from;          /* -f, -r, --from: envelope sender */
	const char *full_name;     /* -F */
	const char *host, *port, *tls, *auth, *user, *timeout; /* --host ... overrides */
	const char *queue_interval; /* -qINTERVAL */
	const char *queue_id;      /* --queue-delete / --queue-retry / -qIID */
	const char *dsn_notify, *dsn_ret, *dsn_envid; /* -N, -R, -V */
	const char *body_type;     /* -B value */
	const char *log_tag;       /* -L */
	const char *transcript;    /* -X FILE */
	/* issue 16, msmtp's names: --proxy-host, --proxy-port, --source-ip,
	 * --protocol; --ip-version (msmtp's -4/-6 are not sendmail options) */
	const char *proxy_host, *proxy_port, *source_ip, *ip_version, *protocol;
	int extract;               /* -t */
	int verbose;               /* -v */
	int dry_run;               /* --dry-run */
	int read_envelope_from;    /* --read-envelope-from */
	int no_queue;              /* --no-queue */
	int queue_due;             /* --due: -q sends only what is due (timer, cron) */
	int verify;                /* -bv: report the recipients, send nothing */
	int bad_option;            /* parse failed on an unknown/incomplete option */
	char **rcpt;               /* recipient arguments (point into argv) */
	int nrcpt;
	/* composing a message (compose.h): --subject, --body, --body-file,
	 * --reply-to; --attach, --header, --cc, --bcc repeat */
	const char *subject, *body, *body_file, *reply_to;
	struct cli_list attach, headers, cc, bcc;
	const char *ignored[CLI_IGNORED_MAX]; /* accepted-and-ignored options, for -v */
	int nignored;
	char ignored_text[CLI_IGNORED_MAX][128]; /* storage for multi-word ones */
};

/* Parse argv (argv[0]'s basename selects mailq/newaliases).  Permutes like
 * GNU getopt: options may follow recipients until "--".  Returns 0, or -1 with
 * r filled (EX_USAGE: unknown option, missing argument, CR/LF in an argument).
 * `o` points into argv; argv must outlive it.  rcpt is malloc'd (cli_free). */
int cli_parse(int argc, char **argv, struct options *o, struct result *r);
void cli_free(struct options *o);

void cli_usage(FILE *f);
void cli_help(FILE *f);

#endif
