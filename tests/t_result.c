/* t_result.c - the SPEC section 3 exit table, row by row. */
#include "config.h"
#include "result.h"
#include "tap.h"

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
	is_str(r.text, "5.1.1 no?[31m such?user", "server text sanitised");
	snprintf(r.arg, sizeof r.arg, "x@y");
	result_describe(&r, line, sizeof line);
	is_str(line, "RCPT TO:<x@y>: 550 5.1.1 no?[31m such?user", "describe with argument");

	result_fail(&r, EX_TEMPFAIL, "timed out");
	r.phase = PHASE_GREETING;
	result_describe(&r, line, sizeof line);
	is_str(line, "greeting: timed out", "describe local failure with phase");

	char buf[8];
	is_int(result_sanitise(buf, sizeof buf, "abcdefghij", 10), 7, "sanitise truncates");
	is_str(buf, "abcdefg", "sanitise NUL-terminates");
	is_str(result_exit_name(EX_TEMPFAIL), "EX_TEMPFAIL", "exit names");
	return tap_done();
}
