/* message.h - the message header block: find it, parse it, rewrite it.
 *
 * Only the header block is ever held in memory (at most MSG_HEAD_MAX bytes);
 * the body streams from the input descriptor afterwards.  msg_head_end and
 * msg_head_process are pure (fuzzable); msg_read_head is the only I/O.
 */
#ifndef PUSHMAIL_MESSAGE_H
#define PUSHMAIL_MESSAGE_H

#include <stddef.h>
#include <time.h>
#include <sys/types.h>
#include "address.h"
#include "result.h"

#define MSG_HEAD_MAX (1024 * 1024)   /* SPEC 5: a larger header block is EX_DATAERR */

enum hdr_policy { HDR_AUTO = 0, HDR_ON, HDR_OFF };

struct msg_opts {
	int extract;            /* -t: collect recipients from To/Cc/Bcc (or first Resent- block) */
	const char *env_from;   /* envelope sender: generated From's address, Message-ID domain */
	const char *full_name;  /* -F: display name of a generated From, may be NULL */
	const char *domain;     /* Message-ID domain when env_from has none; may be NULL */
	enum hdr_policy set_date, set_msgid, set_from, set_to;
	time_t now;             /* clock for Date (tests pass a fixed value) */
	const char *maildomain; /* qualifies local names in From, To, Cc, Reply-To,
				 * Sender (and their Resent- forms); NULL: none */
	const char *const *local_domains; /* this host's names (addr_local_name) */
};

struct msg_head {
	char *text;             /* rewritten header block including the blank separator
				 * line; line endings as in the input for kept lines, "\n"
				 * for added ones (the body filter normalises both) */
	size_t len;
	struct addrlist rcpts;  /* -t recipients, in header order */
	char *from_mailbox;     /* first mailbox of From: (or of the first Resent-From:
				 * when a Resent- block exists), NULL when none */
	int has_8bit;           /* a byte >= 0x80 in the kept header block */
};

/* Where the header block ends in buf[0..len).  Header lines are "name:" (printable
 * name, no space) and their WSP continuations; the block ends after the first
 * empty line (LF, CRLF or CR line endings), or at the first line that is neither
 * (which then starts the body).  Returns the offset of the first body byte, or
 * -1 when more input is needed to decide (only when !eof). */
long msg_head_end(const char *buf, size_t len, int eof);

/* Parse the header block in[0..len) (as delimited by msg_head_end) and build
 * out: drop Bcc/Resent-Bcc, add Date/Message-ID/From/To per the policies, collect
 * recipients.  Returns 0, or -1 with r filled (EX_DATAERR for an unparsable
 * address header with -t, EX_OSERR for memory or getrandom failure).  out is
 * owned by the caller and released with msg_head_free; out->text is also
 * NUL-terminated (after len bytes).
 * With maildomain, a local name in an address header ("root", "root@localhost",
 * see addr_qualify_list) is qualified in place, the rest of the field kept
 * byte for byte; a line the rewrite makes longer than 78 characters is
 * folded after a comma.  -t recipients are collected as written.
 * Policies: HDR_ON equals HDR_AUTO (add when missing) except for From, where
 * it replaces every existing From with the generated one.  A From is generated
 * only when env_from is a non-empty valid mailbox (addr_valid_mailbox). */
int msg_head_process(const char *in, size_t len, const struct msg_opts *o,
		     struct msg_head *out, struct result *r);

void msg_head_free(struct msg_head *h);

/* Read from fd until the header block is complete.  On success *buf (malloc'd,
 * caller frees) holds *len bytes: the header block (*headlen bytes) followed by
 * whatever body bytes were read with it.  A header block over MSG_HEAD_MAX is
 * EX_DATAERR; a read error EX_IOERR. */
int msg_read_head(int fd, char **buf, size_t *len, size_t *headlen,
		  struct result *r);

/* RFC 5322 date for t in local time ("Mon, 30 Nov 2026 01:02:03 +0100"). */
void msg_format_date(time_t t, char *out, size_t cap);

#endif
