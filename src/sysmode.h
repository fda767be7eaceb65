/* sysmode.h - system mode as seen by a caller (SPEC 9): where the system
 * spool is, whether this caller hands its message to the drop directory, and
 * the hand-over itself. */
#ifndef PUSHMAIL_SYSMODE_H
#define PUSHMAIL_SYSMODE_H

#include <stddef.h>
#include "result.h"

struct ctx;
struct submit_req;

/* The configure-time paths and names (pushmail --setup-system makes them). */
#define SYS_SPOOL SPOOLDIR
#define SYS_DROP SPOOLDIR "/drop"
#define SYS_CONFIG SYSCONFDIR "/pushmail.ini"

/* 1 when the drop helper is installed set-gid (root-owned): system mode is
 * set up on this machine.  (A missing drop directory is then the helper's
 * exit 75 with the reason, not a silent fallback.) */
int sysmode_available(void);

/* Hand the message on req->infd (and the envelope arguments of req and
 * c->o) to the delivery service through the set-gid helper.  Exit statuses
 * of the helper become r's (73 disk full, 75 spool missing, ...).  On
 * success the id goes into req->note when the caller asked for one. */
int sysmode_drop(struct ctx *c, const struct submit_req *req, struct result *r);

/* Leave set-id privilege for good (SPEC 9: pushmail itself is never set-id;
 * a binary installed that way by the old documentation runs as its caller).
 * Returns 0, or -1 when the kernel refused (the caller must stop). */
int sysmode_drop_setid(void);

#endif
