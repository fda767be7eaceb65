/* pickup.h - the delivery service's intake (SPEC 9).  Every file in the drop
 * directory is hostile input (drop.h says what a good one looks like); one
 * that passes becomes a queued message of the submitter, whose identity is
 * the file's owner, never anything the file says. */
#ifndef PUSHMAIL_PICKUP_H
#define PUSHMAIL_PICKUP_H

#include <stddef.h>
#include "result.h"

struct ctx;
struct queue;

struct pickup_stats {
	size_t queued;     /* now in the queue */
	size_t rejected;   /* malformed: renamed x.ID, kept for the administrator */
	size_t waiting;    /* left for a later run (a local, temporary problem) */
};

/* Open the drop directory (O_DIRECTORY); -1 with r filled when it cannot be. */
int pickup_open(struct result *r);

/* Queue every ready drop file ("m.ID") into q under its own id, with c's
 * configuration (the system's; c->cfg_found must be set), then remove it.
 * Sets q->holdfd to dropfd.  Returns 0; per-file outcomes are logged and
 * counted in st. */
int pickup_run(struct ctx *c, struct queue *q, int dropfd, struct pickup_stats *st);

/* Remove "t.*" files older than a day (a helper killed half-way). */
void pickup_sweep(int dropfd);

/* Count ready and rejected drop files, for -bp. */
void pickup_count(int dropfd, size_t *ready, size_t *rejected);

/* Before a queue run on the system spool (root's -q, the service): pick up
 * the drop directory first.  Returns its descriptor, which must stay open
 * for the run and be closed after it, or -1 when q is not the system spool,
 * there is no configuration, or no drop directory. */
int pickup_before_run(struct ctx *c, struct queue *q);

#endif
