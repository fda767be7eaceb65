/* t_dsn.c - the RFC 3464 notice builder (src/dsn.c), without a queue. */
#include "config.h"
#include "dsn.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static char *rcpts[] = { "a@example.org", "b@example.org" };

static struct qenv env_of(void)
{
	struct qenv e;

	memset(&e, 0, sizeof e);
	snprintf(e.id, sizeof e.id, "20261206T141808.123456.4242.9f3c");
	e.account = "work";
	e.from = "sender@example.com";
	e.rcpt = rcpts;
	e.nrcpt = 2;
	e.created = 1765000000;
	return e;
}

static struct dsn_report rcpt_refused(void)
{
	struct dsn_report r = {
		.action = DSN_FAILED, .to = "sender@example.com", .mta = "client.example",
		.domain = "example.com", .remote = "smtp.example.net", .status = "5.1.1",
		.diag_rcpt = "b@example.org", .code = 550,
		.diagnostic = "5.1.1 <b@example.org>: no such user",
		.why = "RCPT TO:<b@example.org>: 550 5.1.1 no such user",
		.now = 1765003600,
	};
	return r;
}

static const char HEAD[] =
	"From: Sender <sender@example.com>\n"
	"To: a@example.org, b@example.org\n"
	"Subject: the quarterly report\n"
	"X-Folded: one\n\ttwo\n"
	"\n"
	"SECRET BODY LINE\n";

/* Whether s[0..n) has a line ending other than CRLF. */
static int bare_line_end(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) ||
		    (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n')))
			return 1;
	return 0;
}

static int has(const char *text, const char *needle)
{
	return strstr(text, needle) != NULL;
}

static void test_failed(void)
{
	struct qenv e = env_of();
	struct dsn_report rep = rcpt_refused();
	char *out;
	size_t n;

	is_int(dsn_build(&e, &rep, HEAD, sizeof HEAD - 1, &out, &n), 0, "failed: built");
	if (!out)
		return;
	is_int((long long)strlen(out), (long long)n, "failed: length matches, no NUL");
	ok(!bare_line_end(out, n), "failed: CRLF line ends only");
	ok(has(out, "\r\nFrom: Mail Delivery System <MAILER-DAEMON@example.com>\r\n"),
	   "failed: From MAILER-DAEMON@domain");
	ok(has(out, "\r\nTo: <sender@example.com>\r\n"), "failed: To the sender");
	ok(has(out, "\r\nSubject: Undelivered Mail Returned to Sender\r\n"),
	   "failed: Postfix's subject");
	ok(has(out, "\r\nAuto-Submitted: auto-replied\r\n"), "failed: Auto-Submitted");
	ok(has(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	       "\tboundary=\"=_pushmail_dsn_20261206T141808.123456.4242.9f3c_0\"\r\n"),
	   "failed: multipart/report with its boundary");
	ok(has(out, "Content-Type: message/delivery-status\r\n\r\n"
	       "Reporting-MTA: dns; client.example\r\n"), "failed: Reporting-MTA");
	ok(has(out, "Final-Recipient: rfc822; b@example.org\r\nAction: failed\r\n"
	       "Status: 5.1.1\r\nRemote-MTA: dns; smtp.example.net\r\n"
	       "Diagnostic-Code: smtp; 550 5.1.1 <b@example.org>: no such user\r\n"),
	   "failed: the refused recipient with the relay's reply");
	ok(has(out, "Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\n"
	       "Status: 5.1.1\r\n") &&
	   has(out, "Diagnostic-Code: X-Pushmail; not sent, because the relay refused "
	       "<b@example.org>\r\n"), "failed: the other recipient, not sent either");
	ok(has(out, "Content-Type: text/rfc822-headers\r\n\r\n"
	       "From: Sender <sender@example.com>\r\nTo: a@example.org, b@example.org\r\n"
	       "Subject: the quarterly report\r\nX-Folded: one\r\n\ttwo\r\n\r\n--"),
	   "failed: the original header block, folding kept, CRLF");
	ok(!has(out, "SECRET BODY LINE"), "failed: the body is not returned (RET=HDRS)");
	ok(has(out, "\r\n--=_pushmail_dsn_20261206T141808.123456.4242.9f3c_0--\r\n"),
	   "failed: closing boundary");
	ok(!has(out, "Original-Envelope-Id"), "failed: no ENVID, no Original-Envelope-Id");
	free(out);
}

static void test_delayed_envid(void)
{
	struct qenv e = env_of();
	struct dsn_report rep = rcpt_refused();
	char *out;
	size_t n;

	rep.action = DSN_DELAYED;
	rep.status = "4.4.1";
	rep.diag_rcpt = NULL;
	rep.code = 0;
	rep.remote = NULL;
	rep.diagnostic = "connect: connection refused";
	rep.until = e.created + 5 * 86400;
	e.envid = "ENV123";
	is_int(dsn_build(&e, &rep, HEAD, sizeof HEAD - 1, &out, &n), 0, "delayed: built");
	if (!out)
		return;
	ok(has(out, "Subject: Delayed Mail (still being retried)\r\n"), "delayed: subject");
	ok(has(out, "Original-Envelope-Id: ENV123\r\n"), "delayed: Original-Envelope-Id");
	ok(has(out, "Final-Recipient: rfc822; a@example.org\r\nAction: delayed\r\n"
	       "Status: 4.4.1\r\nDiagnostic-Code: X-Pushmail; connect: connection "
	       "refused\r\n") && has(out, "Will-Retry-Until: "),
	   "delayed: Action delayed, local diagnostic, Will-Retry-Until");
	ok(!has(out, "Remote-MTA"), "delayed: no Remote-MTA when none was reached");
	ok(has(out, "This is a warning only"), "delayed: says it is a warning");
	free(out);
}

static void test_hostile_head(void)
{
	static const char h[] = "Subject: =_pushmail_dsn_20261206T141808.123456.4242.9f3c_0"
		"\rX-Nul: a\0b\r\nX-Last: no line end";
	struct qenv e = env_of();
	struct dsn_report rep = rcpt_refused();
	char *out;
	size_t n;

	is_int(dsn_build(&e, &rep, h, sizeof h - 1, &out, &n), 0, "hostile: built");
	if (!out)
		return;
	ok(has(out, "boundary=\"=_pushmail_dsn_20261206T141808.123456.4242.9f3c_1\""),
	   "hostile: a boundary that the headers do not contain");
	ok(!bare_line_end(out, n) && strlen(out) == n, "hostile: bare CR and NUL gone");
	ok(has(out, "X-Nul: a b\r\nX-Last: no line end\r\n"), "hostile: lines kept");
	free(out);
}

static void test_long_head(void)
{
	size_t n = DSN_HEAD_MAX * 2, outn;
	char *h = malloc(n), *out;
	struct qenv e = env_of();
	struct dsn_report rep = rcpt_refused();

	if (!h)
		return;
	for (size_t i = 0; i < n; i++)
		h[i] = i % 100 == 99 ? '\n' : 'x';
	is_int(dsn_build(&e, &rep, h, n, &out, &outn), 0, "long: built");
	free(h);
	if (!out)
		return;
	ok(outn < DSN_HEAD_MAX + 4096, "long: the quoted block is bounded (%zu)", outn);
	ok(has(out, "Undelivered Message Headers (cut short)"), "long: says it was cut");
	ok(has(out, "xxx\r\n\r\n--=_pushmail"), "long: cut at a line boundary");
	free(out);
}

static void test_refusals(void)
{
	struct qenv e = env_of();
	struct dsn_report rep = rcpt_refused();
	char *out = (char *)1;
	size_t n;

	rep.to = "x@y\r\nBcc: victim@example.org";
	is_int(dsn_build(&e, &rep, HEAD, 10, &out, &n), -1, "refused: line break in To");
	ok(out == NULL, "refused: nothing returned");
	rep = rcpt_refused();
	rep.to = "";
	is_int(dsn_build(&e, &rep, HEAD, 10, &out, &n), -1, "refused: empty recipient");
	rep = rcpt_refused();
	rep.diagnostic = "550 a\nb";
	is_int(dsn_build(&e, &rep, HEAD, 10, &out, &n), -1, "refused: line break in "
	       "the diagnostic");
}

static void test_status(void)
{
	static const struct { const char *enh; int code; const char *want; } rows[] = {
		{ "5.1.1", 550, "5.1.1" }, { "", 550, "5.0.0" }, { NULL, 451, "4.0.0" },
		{ "4.7.1", 550, "5.0.0" }, { "5.1.1x", 550, "5.0.0" },
		{ "2.0.0", 0, "4.4.7" }, { NULL, 0, "4.4.7" }, { "4.4.1", 0, "4.4.1" },
		{ "5.1234.1", 550, "5.0.0" },
	};
	char out[16];

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		dsn_status(rows[i].enh, rows[i].code, "4.4.7", out, sizeof out);
		is_str(out, rows[i].want, "status: enh %s code %d", rows[i].enh ?
		       rows[i].enh : "(none)", rows[i].code);
	}
}

int main(void)
{
	test_failed();
	test_delayed_envid();
	test_hostile_head();
	test_long_head();
	test_refusals();
	test_status();
	return tap_done();
}
