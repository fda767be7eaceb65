/* notice.h - telling a person about queued mail that failed for good (SPEC 6):
 * the queue runner calls notice_failed for each message it gives up on, and
 * the notice (dsn.h) is queued like any other message, with the null sender,
 * through the failed message's own account, so that it rides the queue's
 * retries and is never lost with the process.
 */
#ifndef PUSHMAIL_NOTICE_H
#define PUSHMAIL_NOTICE_H

#include "cfg.h"
#include "queue.h"
#include "result.h"

/* Queue a failure notice for locked entry e (already moved to failed/),
 * which account a gave up on for reason r (expired: r was a temporary
 * failure, and the message ran out of queue_lifetime).  None is queued for the null
 * sender (which every notice has), for a message that already had one, or
 * for an account with queue = never.  The notice goes to admin_address when
 * set, else to the envelope sender.  Returns 1 with the notice's queue id in
 * nid (QUEUE_ID_MAX bytes), 0 when no notice is due, -1 when one was due but
 * could not be queued (said on stderr; the failed message stays in failed/
 * with its reason either way). */
int notice_failed(struct queue *q, struct qentry *e, const struct account *a,
		  const struct result *r, int expired, char *nid);

/* Queue the one delay warning for locked entry e (in new/, just deferred
 * for reason r) once it has waited delay_warning (off by default); until
 * is when the queue gives up on it.  Same rules and returns as above. */
int notice_delayed(struct queue *q, struct qentry *e, const struct account *a,
		   const struct result *r, time_t until, char *nid);

/* Queue a plain-text notice to account a's admin_address (with <>, through
 * a): subject is one line, body CRLF-separated lines, both ours.  Returns 1 queued (nid
 * filled), 0 when no admin_address is set (said on stderr instead), -1 on
 * failure. */
int notice_admin(struct queue *q, const struct account *a, const char *subject,
		 const char *body, char *nid);

#endif
