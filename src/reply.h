/* reply.h - SMTP reply parser (RFC 5321 section 4.2), pure and incremental.
 *
 * The transport hands over one line at a time (without its CRLF); the parser
 * validates it and says whether the reply is complete.  Every rule that makes
 * a reply malformed lives here: three digits with the first in 2..5, a space
 * or '-' (or nothing) after them, the same code on every line, a bound on line
 * length and on line count.  A bare code ("250") is valid.
 */
#ifndef PUSHMAIL_REPLY_H
#define PUSHMAIL_REPLY_H

#include <stddef.h>

#define REPLY_LINE_MAX 4096   /* bytes per line, without CRLF */
#define REPLY_LINES_MAX 128   /* lines per reply */
#define REPLY_TEXT_MAX 16384  /* text kept (all lines, '\n'-joined) */

struct reply {
	int code;                 /* 200..599 once complete */
	char enh[16];             /* enhanced status code of the first line, or "" */
	size_t nlines;
	size_t textlen;
	char text[REPLY_TEXT_MAX]; /* text after "NNN-"/"NNN ", lines joined by '\n';
				    * longer replies are truncated here, not rejected */
};

enum reply_status {
	REPLY_MORE = 0,   /* line accepted, reply continues */
	REPLY_DONE = 1,   /* line accepted, reply complete */
	REPLY_BAD = -1,   /* malformed: the reason is in *why */
};

/* Start a new reply. */
void reply_init(struct reply *rp);

/* Feed one line (no CR/LF; may contain any bytes).  On REPLY_BAD, *why points
 * to a static string describing the fault. */
enum reply_status reply_feed(struct reply *rp, const char *line, size_t len,
			     const char **why);

/* Parse an RFC 3463 enhanced status code at the start of text ("2.1.0 ok").
 * Copies it into enh (cap >= 16) and returns the number of bytes consumed
 * including one following space, or 0 when there is none. */
size_t reply_parse_enh(const char *text, size_t len, int code, char *enh);

/* EHLO capabilities (RFC 5321 section 4.1.1.1 and the extensions we use). */
enum {
	CAP_PIPELINING = 1u << 0,
	CAP_SIZE = 1u << 1,
	CAP_8BITMIME = 1u << 2,
	CAP_STARTTLS = 1u << 3,
	CAP_AUTH = 1u << 4,
	CAP_CHUNKING = 1u << 5,
	CAP_BINARYMIME = 1u << 6,
	CAP_SMTPUTF8 = 1u << 7,
	CAP_DSN = 1u << 8,
	CAP_ENHANCEDSTATUSCODES = 1u << 9,
	CAP_BURL = 1u << 10,     /* RFC 4468: in practice Dovecot's submission */
};

/* Room for every AUTH mechanism a reply can name: the whole reply text.  A
 * fixed 256 bytes once hid a PLAIN listed after 300 bytes of others (issue
 * 13); now only the reply's line and text limits bound the list. */
#define CAPS_AUTH_MAX (REPLY_TEXT_MAX + 1)

struct caps {
	unsigned flags;
	unsigned long long size_max;   /* SIZE limit, 0 = none declared */
	char auth[CAPS_AUTH_MAX];      /* space-separated upper-case mechanisms */
};

/* Fill caps from a complete 250 reply to EHLO (first line is the greeting
 * line and is skipped).  Unknown keywords are ignored.  Pure; never fails. */
void caps_parse(struct caps *c, const struct reply *rp);

#endif
