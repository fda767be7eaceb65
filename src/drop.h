/* drop.h - the drop directory (SPEC 9): how a caller that may not read the
 * system configuration hands its message to the delivery service.
 *
 * SPOOLDIR/drop belongs to SYSTEM_USER, group DROP_GROUP, mode 01770.  The
 * set-gid helper (dropper.c, group DROP_GROUP) creates "t.ID" there with
 * O_EXCL (the file's owner is the caller: the kernel's word for who sent it),
 * copies its standard input, fsyncs, sets mode 0604 and renames the file to
 * "m.ID", then fsyncs the directory; only then does it exit 0.  Mode 0604
 * means: the owner may write, the drop group (every other helper) may not
 * read, and the service, which is neither the owner nor in the group, reads it
 * as "other"; nobody else can reach the directory.  ID has the shape of a
 * queue id, and the service queues the message under that same id, which is
 * what makes a pickup interrupted at any instant safe to repeat.
 *
 * A drop file is a head of "key value" lines ended by an empty line, then the
 * message exactly as the caller gave it:
 *
 *   pushmail-drop 1
 *   rcpt ARGUMENT        a recipient argument as given (an address list)
 *   extract 1            -t
 *   from ADDRESS         -f (honoured for trusted users only)
 *   name TEXT            -F
 *   notify N / ret R / envid V     -N, -R, -V
 *
 * Everything in it is the caller's: the service parses it as hostile input.
 */
#ifndef PUSHMAIL_DROP_H
#define PUSHMAIL_DROP_H

#include <stddef.h>

#define DROP_MAGIC "pushmail-drop 1"
#define DROP_HEAD_MAX (64 * 1024)             /* the whole head */
#define DROP_LINE_MAX 4096                    /* one head line */
#define DROP_RCPT_MAX 1000                    /* rcpt lines */
#define DROP_FILE_MAX (256ull * 1024 * 1024)  /* head and message */
#define DROP_ID_MAX 48                        /* = QUEUE_ID_MAX */

struct drop_head {
	char **rcpt;
	size_t nrcpt;
	int extract;
	char *from, *name, *notify, *ret, *envid;   /* NULL when absent */
	size_t len;          /* bytes of the head, empty line included */
};

/* Parse the head at the start of buf[0..len).  Returns 0 and fills h (free
 * with drop_head_free), 1 when buf ends before the empty line (and len is
 * below DROP_HEAD_MAX), or -1 with a reason in err for anything malformed:
 * wrong magic, unknown or repeated key, control bytes, overlong line, too
 * many recipients, a head over DROP_HEAD_MAX. */
int drop_parse(const char *buf, size_t len, struct drop_head *h, char *err,
	       size_t errcap);

/* The head for h, malloc'd, NUL-terminated, length in *len; NULL when out
 * of memory or a value holds a byte the parser would refuse. */
char *drop_format(const struct drop_head *h, size_t *len);

void drop_head_free(struct drop_head *h);

/* 1 when name is "m.ID" with ID of the queue's shape (digits, 'T', '.',
 * hex), at most DROP_ID_MAX-1 bytes; the ID is copied to id. */
int drop_ready_name(const char *name, char id[DROP_ID_MAX]);

#endif
