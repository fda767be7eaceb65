/* modes.h - what main() dispatches to: one function per mode of operation,
 * each filling the shared context and a struct result, none exiting. */
#ifndef PUSHMAIL_MODES_H
#define PUSHMAIL_MODES_H

#include "cfg.h"
#include "cli.h"
#include "queue.h"
#include "relay.h"
#include "result.h"

struct ctx {
	struct options o;
	struct config cfg;
	int cfg_found;                /* configuration files loaded */
	const struct account *acct;   /* the account in use, for the failure line */
	const char *host;             /* its relay */
	const char *queue_path;       /* the queue to use instead of the default */
	char cfg_error[600];          /* why the configuration was set aside, or "" */
	/* -bs: its messages go over one relay session (issue 17), kept here
	 * between them with the relay it was opened for */
	int keep_session;
	struct relay *kept_rl;
	struct smtp_session *kept_ss;
};

/* Close the session kept between -bs messages (QUIT), if any. */
void ctx_drop_session(struct ctx *c);

/* Load the configuration.  With `required`, having none is EX_CONFIG. */
int ctx_load_config(struct ctx *c, int required, struct result *r);
/* After ctx_load_config failed: a configuration the search found that is
 * broken or unreadable (EX_CONFIG) is set aside, its error kept in
 * cfg_error for the notice, and the message is kept as if there were none
 * (SPEC 6).  A file named with --config is not set aside.  0 or -1. */
int ctx_set_aside_config(struct ctx *c, struct result *r);
/* Open the queue (queue_dir, /var/spool/pushmail for root, or the user's). */
int ctx_open_queue(struct ctx *c, struct queue *q, struct result *r);
void ctx_overrides(const struct ctx *c, struct relay_overrides *ov);
/* Where the user's configuration file goes, for messages. */
void ctx_config_hint(char *out, size_t cap);

/* One message for the relay (submit.c): the message on infd, the envelope
 * sender (NULL: choose as SPEC 5 says), recipient arguments (address lists)
 * and -t.  Delivered, queued, or failed with r filled. */
struct submit_req {
	int infd;
	const char *from;
	char *const *rcpt;
	size_t nrcpt;
	int extract;
	unsigned long long size; /* bytes on infd when known (composed), or 0 */
	char *note;            /* optional: on success, "queued as ID" or "sent" */
	size_t notecap;
	/* The delivery service's pickup (pickup.c): spool under queue_id without
	 * trying the relay; `user` is the submitter, for the default sender. */
	int spool_only;
	const char *queue_id;
	const char *user;
};
int submit(struct ctx *c, const struct submit_req *req, struct result *r);

int mode_send(struct ctx *c, struct result *r);        /* submit.c */
int mode_bsmtp(struct ctx *c, struct result *r);       /* bsmtp.c */
int mode_serverinfo(struct ctx *c, struct result *r);  /* info.c */
int mode_mailq(struct ctx *c, struct result *r);       /* qcmd.c */
int mode_runq(struct ctx *c, struct result *r);
int mode_queue_delete(struct ctx *c, struct result *r);
int mode_queue_retry(struct ctx *c, struct result *r);
int mode_newaliases(struct ctx *c, struct result *r);  /* newaliases.c */
int mode_check(struct ctx *c, struct result *r);       /* check.c */
int mode_import(struct ctx *c, struct result *r);      /* newaliases.c */
int mode_daemon(struct ctx *c, struct result *r);      /* daemon.c */
int mode_setup_system(struct ctx *c, struct result *r); /* setup.c */
int mode_oauth2_login(struct ctx *c, struct result *r); /* oauth2_login.c */

#endif
