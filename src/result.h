/* result.h - the outcome of an operation, and the one table that turns SMTP
 * replies and local failures into sysexits(3) statuses.
 *
 * Modules never exit: they return 0 on success or -1 on failure after filling a
 * caller-owned struct result.  main() prints result_describe() once and exits
 * with r.exitcode.  The mapping from (SMTP phase, reply code) to exit status
 * lives only in result.c (result_exit_for_reply), so SPEC section 3 has exactly
 * one implementation.
 */
#ifndef PUSHMAIL_RESULT_H
#define PUSHMAIL_RESULT_H

#include <stddef.h>
#include <sysexits.h>

/* The SMTP step a reply answered; the same code means different things in
 * different steps (550 to RCPT is "no such user", to MAIL it is "refused"). */
enum smtp_phase {
	PHASE_NONE = 0,
	PHASE_CONNECT,
	PHASE_GREETING,
	PHASE_EHLO,
	PHASE_HELO,
	PHASE_STARTTLS,
	PHASE_TLS,      /* the handshake (implicit TLS, or after STARTTLS) */
	PHASE_AUTH,
	PHASE_MAIL,
	PHASE_RCPT,
	PHASE_DATA,
	PHASE_BDAT,
	PHASE_EOD, /* the reply to the end of data (".", or BDAT LAST) */
	PHASE_RSET,
	PHASE_QUIT,
	PHASE__COUNT
};

#define RESULT_TEXT_MAX 512

struct result {
	int exitcode;             /* sysexits value; EX_OK when nothing failed */
	enum smtp_phase phase;    /* step that failed, PHASE_NONE for local failures */
	int code;                 /* SMTP reply code, 0 when none */
	char enh[16];             /* RFC 3463 enhanced status ("5.1.1"), "" when none */
	char arg[256];            /* what the failed command was about (a recipient), or "" */
	char text[RESULT_TEXT_MAX]; /* human text: server reply (sanitised) or local reason */
};

/* Reset to "nothing happened yet" (EX_OK, empty text). */
void result_clear(struct result *r);

/* Record a local failure: exit status and a printf-style reason.  Returns -1 so
 * callers can write `return result_fail(r, EX_CONFIG, "...")`. */
int result_fail(struct result *r, int exitcode, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record a server refusal: maps (phase, code) through the exit table, copies the
 * enhanced code and text (control characters replaced).  A 2xx or 3xx code
 * here is a reply the step did not expect: EX_PROTOCOL.  Returns -1. */
int result_reply(struct result *r, enum smtp_phase phase, int code,
		 const char *enh, const char *text);

/* The exit table itself (pure): the sysexits value for an SMTP reply `code`
 * with enhanced status `enh` ("5.1.1"; "" or NULL when the reply had none)
 * received in `phase`.  Returns EX_OK for 2xx/3xx. */
int result_exit_for_reply(enum smtp_phase phase, int code, const char *enh);

/* One line describing r for humans, e.g. "RCPT TO:<a@b>: 550 5.1.1 no such
 * user" or "connect: connection refused".  Writes at most cap bytes. */
void result_describe(const struct result *r, char *out, size_t cap);

/* The SMTP command name of a phase, for messages ("RCPT TO", "end of data"). */
const char *result_phase_name(enum smtp_phase phase);

/* The symbolic name of a sysexits value ("EX_TEMPFAIL"). */
const char *result_exit_name(int exitcode);

/* Copy `in` (len bytes) into out (cap bytes, NUL-terminated) for a terminal
 * or a log: valid UTF-8 is kept, LF becomes a space, and C0 controls, DEL, C1
 * controls (U+0080..U+009F) and invalid or overlong UTF-8 become "\xNN", so
 * that server text can never drive the terminal.  Escapes and characters are
 * never cut by truncation.  Returns the length written. */
size_t result_sanitise(char *out, size_t cap, const char *in, size_t len);

#endif
