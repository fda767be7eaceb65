/* qid.h - the one spelling of a message id (SPEC 6, 9), shared by the queue
 * and the set-gid drop helper, which links nothing else of pushmail's:
 * YYYYMMDDTHHMMSS.uuuuuu.PID.xxxx (UTC, microseconds, pid, 16 random bits),
 * so ids sort by time and a dropped message keeps its id in the queue. */
#ifndef PUSHMAIL_QID_H
#define PUSHMAIL_QID_H

#include <stddef.h>

#define QID_MAX 48   /* with the NUL; the real ones are 34 bytes */

void qid_make(char *out, size_t cap);

#endif
