/* t_result.c - the SPEC section 3 exit table, row by row. */
#include "config.h"
#include "result.h"
#include "tap.h"

#include <string.h>

static const struct {
	enum smtp_phase phase;
	int code;
	const char *enh;   /* RFC 3463 code as parsed from the reply, or NULL */
	int want;
} rows[] = {
	{ PHASE_EOD, 250, NULL, EX_OK },
	{ PHASE_DATA, 354, NULL, EX_OK },
	{ PHASE_GREETING, 421, NULL, EX_TEMPFAIL },
	{ PHASE_GREETING, 554, NULL, EX_UNAVAILABLE },
	{ PHASE_MAIL, 451, NULL, EX_TEMPFAIL },
	{ PHASE_MAIL, 552, NULL, EX_UNAVAILABLE },
	{ PHASE_MAIL, 530, NULL, EX_NOPERM },
	{ PHASE_RCPT, 550, NULL, EX_NOUSER },
	{ PHASE_RCPT, 551, NULL, EX_NOUSER },
	{ PHASE_RCPT, 553, NULL, EX_NOUSER },
	{ PHASE_RCPT, 554, NULL, EX_UNAVAILABLE },
	{ PHASE_RCPT, 452, NULL, EX_TEMPFAIL },
	{ PHASE_RCPT, 450, NULL, EX_TEMPFAIL },
	{ PHASE_EOD, 451, NULL, EX_TEMPFAIL },
	{ PHASE_EOD, 554, NULL, EX_UNAVAILABLE },
	{ PHASE_STARTTLS, 454, NULL, EX_TEMPFAIL },
	{ PHASE_AUTH, 454, NULL, EX_TEMPFAIL },
	{ PHASE_AUTH, 432, NULL, EX_TEMPFAIL },
	{ PHASE_AUTH, 535, NULL, EX_NOPERM },
	{ PHASE_AUTH, 534, NULL, EX_NOPERM },
	{ PHASE_AUTH, 530, NULL, EX_NOPERM },
	{ PHASE_AUTH, 538, NULL, EX_NOPERM },
	{ PHASE_AUTH, 504, NULL, EX_UNAVAILABLE },
	{ PHASE_EHLO, 421, NULL, EX_TEMPFAIL },
	/* recipient refusals by enhanced status (RFC 3463 X.1.x addressing,
	 * X.2.4 mailing-list expansion), whatever the basic 5xx code:
	 * OpenSMTPD answers an unknown recipient with 524 5.2.4 */
	{ PHASE_RCPT, 524, "5.2.4", EX_NOUSER },
	{ PHASE_RCPT, 554, "5.1.1", EX_NOUSER },
	{ PHASE_RCPT, 554, "5.1.10", EX_NOUSER },
	{ PHASE_RCPT, 501, "5.1.3", EX_NOUSER },
	{ PHASE_RCPT, 550, "5.7.1", EX_NOUSER },    /* the basic code still decides */
	{ PHASE_RCPT, 554, "5.7.1", EX_UNAVAILABLE },
	{ PHASE_RCPT, 554, "5.2.2", EX_UNAVAILABLE },  /* mailbox full: not "no user" */
	{ PHASE_RCPT, 554, "5.1.8", EX_UNAVAILABLE },  /* the sender's address, not his */
	{ PHASE_RCPT, 554, "5.1.7", EX_UNAVAILABLE },
	{ PHASE_RCPT, 450, "4.1.1", EX_TEMPFAIL },  /* temporary stays temporary */
	{ PHASE_RCPT, 452, "4.2.4", EX_TEMPFAIL },
	{ PHASE_MAIL, 553, "5.1.8", EX_UNAVAILABLE },  /* only RCPT names a recipient */
	{ PHASE_EOD, 554, "5.1.1", EX_UNAVAILABLE },
	{ PHASE_NONE, 199, NULL, EX_PROTOCOL },
	{ PHASE_NONE, 600, NULL, EX_PROTOCOL },
};

/* result_sanitise: UTF-8 shown as is, everything a terminal could obey
 * escaped, nothing cut in the middle. */
static const struct {
	const char *in;
	size_t cap;
	const char *want;
	const char *name;
} san[] = {
	{ "RCPT TO:<j\xc3\xb6s\xc3\xa9@example.test>", 64,
	  "RCPT TO:<j\xc3\xb6s\xc3\xa9@example.test>", "2-byte UTF-8 kept" },
	{ "\xe2\x82\xac \xf0\x9f\x93\xa7 \xe4\xb8\xad", 64,
	  "\xe2\x82\xac \xf0\x9f\x93\xa7 \xe4\xb8\xad", "3- and 4-byte UTF-8 kept" },
	{ "a\x1b[2Jb", 64, "a\\x1b[2Jb", "ESC escaped" },
	{ "a\rb\x7f\x01", 64, "a\\x0db\\x7f\\x01", "CR, DEL, C0 escaped" },
	{ "line one\nline two", 64, "line one line two", "LF becomes a space" },
	{ "x\xc2\x9b" "31m", 64, "x\\xc2\\x9b31m", "C1 CSI (U+009B) escaped" },
	{ "x\xc2\x85y", 64, "x\\xc2\\x85y", "C1 NEL escaped" },
	{ "\xc2\xa0", 64, "\xc2\xa0", "U+00A0 (first after C1) kept" },
	{ "\x9b", 64, "\\x9b", "lone 8-bit CSI byte escaped" },
	{ "\xc0\xaf", 64, "\\xc0\\xaf", "overlong '/' escaped" },
	{ "\xe0\x80\xaf", 64, "\\xe0\\x80\\xaf", "3-byte overlong escaped" },
	{ "\xed\xa0\x80", 64, "\\xed\\xa0\\x80", "surrogate escaped" },
	{ "\xf4\x90\x80\x80", 64, "\\xf4\\x90\\x80\\x80", "beyond U+10FFFF escaped" },
	{ "\xc3", 64, "\\xc3", "truncated sequence escaped" },
	{ "\xc3(", 64, "\\xc3(", "bad continuation escaped" },
	{ "ab\xc3\xb6", 4, "ab", "a character is never cut" },
	{ "ab\x1b", 6, "ab", "an escape is never cut" },
	{ "ab\x1b", 7, "ab\\x1b", "an escape that fits" },
};

static void sanitise_table(void)
{
	char buf[128];

	for (size_t i = 0; i < sizeof san / sizeof san[0]; i++) {
		size_t n = result_sanitise(buf, san[i].cap, san[i].in, strlen(san[i].in));
		is_str(buf, san[i].want, "sanitise: %s", san[i].name);
		is_int(n, strlen(san[i].want), "sanitise: %s: length", san[i].name);
	}
}

int main(void)
{
	struct result r;
	char line[1024];

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		is_int(result_exit_for_reply(rows[i].phase, rows[i].code, rows[i].enh),
		       rows[i].want, "%s %d %s -> %s", result_phase_name(rows[i].phase),
		       rows[i].code, rows[i].enh ? rows[i].enh : "",
		       result_exit_name(rows[i].want));

	result_clear(&r);
	is_int(r.exitcode, EX_OK, "cleared result is EX_OK");
	is_int(result_fail(&r, EX_CONFIG, "bad %s", "thing"), -1, "result_fail returns -1");
	is_str(r.text, "bad thing", "result_fail formats its text");

	result_reply(&r, PHASE_RCPT, 524, "5.2.4", "5.2.4 unknown");
	is_int(r.exitcode, EX_NOUSER, "result_reply maps by enhanced status too");
	result_reply(&r, PHASE_RCPT, 550, "5.1.1", "5.1.1 no\x1b[31m such\tuser");
	is_int(r.exitcode, EX_NOUSER, "result_reply maps through the table");
	is_str(r.text, "5.1.1 no\\x1b[31m such\\x09user", "server text sanitised");
	snprintf(r.arg, sizeof r.arg, "x@y");
	result_describe(&r, line, sizeof line);
	is_str(line, "RCPT TO:<x@y>: 550 5.1.1 no\\x1b[31m such\\x09user",
	       "describe with argument");

	result_fail(&r, EX_TEMPFAIL, "timed out");
	r.phase = PHASE_GREETING;
	result_describe(&r, line, sizeof line);
	is_str(line, "greeting: timed out", "describe local failure with phase");

	char buf[8];
	is_int(result_sanitise(buf, sizeof buf, "abcdefghij", 10), 7, "sanitise truncates");
	is_str(buf, "abcdefg", "sanitise NUL-terminates");
	is_str(result_exit_name(EX_TEMPFAIL), "EX_TEMPFAIL", "exit names");
	sanitise_table();
	return tap_done();
}
