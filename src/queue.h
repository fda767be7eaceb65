/* queue.h - the local spool (SPEC 6): nothing a caller handed over is lost.
 *
 * Layout: DIR/tmp, DIR/new, DIR/failed.  A message is two files: ID.msg (the
 * rewritten header block and the raw body, exactly as they will be sent) and
 * ID.env (envelope and delivery state, one "key value" per line, never a
 * shell string).  Both are written in tmp/, fsynced, and renamed into new/,
 * .env last, then new/ is fsynced: a message is queued exactly when
 * new/ID.env exists.  Whoever works on a message holds an exclusive flock on
 * its .env; a holder that finds the file unlinked (st_nlink == 0) after
 * locking lost the race and leaves it alone.  Ids sort by time.
 */
#ifndef PUSHMAIL_QUEUE_H
#define PUSHMAIL_QUEUE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include "result.h"

#define QUEUE_ID_MAX 48

struct queue {
	char *dir;
	int dfd, tmp, new, failed;   /* directory descriptors */
	uid_t uid;                   /* the queue directory's owner (and group) */
	gid_t gid;
	int holdfd;                  /* the drop directory, when a pickup set it: an
					entry whose drop file is there is not
					committed yet (not owned; -1 if none) */
};

/* The envelope and delivery state of one message. */
struct qenv {
	char id[QUEUE_ID_MAX];
	char *account;         /* "" when queued before any account existed */
	char *from;            /* envelope sender, "" for <> */
	char **rcpt;
	size_t nrcpt;
	time_t created, next_try;
	int tries;
	unsigned long long size;   /* bytes in ID.msg */
	unsigned long long wire;   /* the same with every line end CRLF, as sent
				      (SIZE=); 0 when spooled by an older pushmail */
	int eightbit, nul;     /* what the body holds (found while spooling) */
	char error[512];       /* the last failure, sanitised, "" if none */
	char *notify, *ret, *envid;  /* DSN requests (RFC 3461), or NULL */
	int notice;            /* QN_* bits: notices about it, or it is one */
};

/* struct qenv.notice: at most one notice of each kind per message, recorded
 * before the notice is queued (a crash in between loses the notice, never
 * sends two); a notice is itself marked, and has the null sender. */
#define QN_FAILED 1            /* the failure notice was queued */
#define QN_DELAYED 2           /* the delay warning was queued */
#define QN_IS_NOTICE 4         /* this message is a notice */

/* A message being worked on: its envelope, its open message file (at offset
 * 0) and the locked .env descriptor. */
struct qentry {
	struct qenv env;
	int msgfd;
	int lockfd;
	int where;             /* 0: new/, 1: failed/ */
};

/* The queue directory: $PUSHMAIL_QUEUE_DIR (ignored when set-id), else
 * queue_dir when given, else /var/spool/pushmail for root, else
 * $XDG_STATE_HOME/pushmail/queue (~/.local/state/pushmail/queue). */
void queue_default_dir(const char *queue_dir, char *out, size_t cap);

/* Open (creating with mode 0700 where missing) the queue at dir.  A directory
 * owned by someone else or open to group/others is refused.  EX_CANTCREAT. */
int queue_open(struct queue *q, const char *dir, struct result *r);
void queue_close(struct queue *q);

/* Spool head[0..headlen) followed by everything left on infd; env's id,
 * created, size, wire, eightbit and nul are filled in.  On success e holds the
 * locked entry.  A full disk or any write error removes what was written and
 * is EX_CANTCREAT (nothing kept); a read error on infd is EX_IOERR. */
int queue_add(struct queue *q, const struct qenv *env, const char *head,
	      size_t headlen, int infd, struct qentry *e, struct result *r);

/* Whether id has the one shape the queue gives ids
 * (YYYYMMDDTHHMMSS.uuuuuu.PID.xxxx).  Every id that comes from outside (the
 * command line, a directory listing, an envelope file) is checked with it
 * before it names a file; the file name, never the envelope's id line, is a
 * message's identity. */
int queue_id_valid(const char *id);

/* Lock message id (in new/, or failed/ when from_failed).  Returns 0 locked,
 * 1 when someone else holds it or it is gone, -1 with r filled (EX_USAGE for
 * a malformed id, EX_SOFTWARE for a damaged entry).  e->env.id is id. */
int queue_lock(struct queue *q, const char *id, int from_failed,
	       struct qentry *e, struct result *r);

/* 1 when message id is in new/ or failed/. */
int queue_exists(const struct queue *q, const char *id);

/* Remove message id from new/ or failed/ under its lock, even when its
 * envelope is damaged.  0 removed, 1 busy or not there, -1 with r filled. */
int queue_remove(struct queue *q, const char *id, struct result *r);

/* Write e->env back (atomically) after a try; then release with
 * queue_release.  Returns 0 or -1 (EX_CANTCREAT). */
int queue_update(struct queue *q, struct qentry *e, struct result *r);

/* Delivered: remove both files. */
int queue_done(struct queue *q, struct qentry *e);

/* Move to failed/ with reason kept in the envelope. */
int queue_to_failed(struct queue *q, struct qentry *e, const char *reason,
		    struct result *r);

/* Move a failed/ entry back to new/ (due now). */
int queue_revive(struct queue *q, struct qentry *e, struct result *r);

void queue_release(struct qentry *e);

/* Every envelope in new/ (or failed/), sorted by id.  *v is malloc'd; free
 * with queue_list_free.  Entries whose name is not ID.env with a queue id,
 * and unreadable or damaged envelopes, are skipped. */
int queue_list(struct queue *q, int failed, struct qenv **v, size_t *n,
	       struct result *r);
void queue_list_free(struct qenv *v, size_t n);

/* The *.env names in new/ (or failed/) that queue_list skips (a name that
 * is not a queue id, an unreadable or damaged envelope), so that mailq can
 * show them: fn (may be NULL) is called with each name, which may hold any
 * byte but '/' and NUL.  Returns how many. */
size_t queue_damaged(struct queue *q, int failed,
		     void (*fn)(const char *name, void *arg), void *arg);

/* Retry delay after `tries` failed tries: min doubled each time, capped. */
time_t queue_backoff(int tries, long min_s, long max_s);

/* Pure envelope (de)serialisation, for tests and fuzzing.  qenv_parse
 * refuses (-1, out zeroed) a missing magic line, a line over 4 KiB, a
 * control byte anywhere but the line ends, a malformed number or id, and an
 * envelope without id, account, from or recipient; unknown keys are
 * ignored.  qenv_format returns a malloc'd text, or NULL when a value holds
 * a control byte (or memory ran out); what it writes qenv_parse reads back
 * as the same envelope (tests/fuzz/fuzz_qenv.c checks both ways). */
int qenv_parse(const char *text, size_t len, struct qenv *out);
char *qenv_format(const struct qenv *e);
void qenv_free(struct qenv *e);
/* Set e->error to why, truncated, control bytes replaced by spaces. */
void qenv_set_error(struct qenv *e, const char *why);

#endif
