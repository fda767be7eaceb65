/* t_qstate.c - the per-account relay state file (src/qstate.c): which names
 * may become file names, and the text form read back. */
#include "config.h"
#include "qstate.h"
#include "tap.h"

#include <string.h>

static const struct { const char *name; int ok; } names[] = {
	{ "work", 1 }, { "a.b-c_d+e", 1 }, { "A9", 1 },
	{ "", 0 }, { ".", 0 }, { "..", 0 }, { ".hidden", 0 }, { "a/b", 0 },
	{ "../x", 0 }, { "a b", 0 }, { "a\nb", 0 }, { "\xc3\xa9", 0 },
	{ "x.lock/..", 0 },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1 },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
};

/* 3 per 640 s: buckets of 10 s. */
static void test_rate(void)
{
	struct qstate st, back;
	char text[8192];
	time_t due = 0;
	int n;

	memset(&st, 0, sizeof st);
	ok(qstate_rate_take(&st, 3, 640, 1000, &due) &&
	   qstate_rate_take(&st, 3, 640, 1001, &due) &&
	   qstate_rate_take(&st, 3, 640, 1015, &due), "rate: three go");
	is_int(qstate_rate_take(&st, 3, 640, 1016, &due), 0, "rate: the fourth waits");
	is_int(due, 1650, "rate: due when the oldest bucket leaves the window");
	n = qstate_format(&st, text, sizeof text);
	qstate_parse(text, n > 0 ? (size_t)n : 0, &back);
	ok(back.rate_width == 10 && back.nbuckets == 2 && back.bucket[0].n == 2 &&
	   back.bucket[1].idx == 101, "rate: the window reads back");
	is_int(qstate_rate_take(&back, 3, 640, 1649, &due), 0, "rate: still full at 1649");
	is_int(qstate_rate_take(&back, 3, 640, 1650, &due), 1, "rate: goes at 1650");
	is_int(qstate_rate_take(&back, 3, 640, 1651, &due), 1, "rate: and another");
	is_int(qstate_rate_take(&back, 3, 640, 1652, &due), 0, "rate: full again");
	is_int(due, 1660, "rate: next due after the 1015 bucket");
	ok(qstate_rate_take(&back, 3, 3600, 1653, &due), "rate: a new limit, a new window");
	for (int i = 0; i < 1000; i++)
		qstate_rate_take(&st, 1000000, 86400, 5000 + 97L * i, &due);
	ok(st.nbuckets <= QSTATE_BUCKETS && st.nbuckets >= 60,
	   "rate: a day's window stays within %d buckets (%zu)", QSTATE_BUCKETS,
	   st.nbuckets);
	ok(qstate_format(&st, text, sizeof text) > 0, "rate: a full window fits the file");
}

int main(void)
{
	struct qstate a = { .skip_until = 1765000600, .last_success = 1765000000,
			    .last_error_at = 1765000500, .skipped = 3,
			    .serial_until = 1765604800 }, b;
	char text[1024];
	int n;

	ok(!qstate_name_ok(NULL), "name: NULL refused");
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		is_int(qstate_name_ok(names[i].name), names[i].ok, "name %zu (%zu bytes) %s",
		       i, strlen(names[i].name), names[i].ok ? "taken" : "refused");

	snprintf(a.last_error, sizeof a.last_error, "connect: refused\nskip_until 9");
	n = qstate_format(&a, text, sizeof text);
	ok(n > 0 && (size_t)n == strlen(text), "format: length returned");
	ok(strstr(text, "\nlast_error connect: refused skip_until 9\n") != NULL,
	   "format: a line break in the error cannot forge a field");
	qstate_parse(text, (size_t)n, &b);
	ok(b.skip_until == a.skip_until && b.last_success == a.last_success &&
	   b.last_error_at == a.last_error_at && b.skipped == a.skipped,
	   "parse: numbers read back");
	is_str(b.last_error, "connect: refused skip_until 9", "parse: error read back");
	is_int(b.serial_until, a.serial_until, "parse: serial_until read back");
	is_int(qstate_format(&a, text, 20), -1, "format: too small a buffer is -1");

	qstate_parse("junk\nskip_until 5\n", 18, &b);
	is_int(b.skip_until, 0, "parse: no magic line, empty state");
	static const char bad[] = "pushmail-state 1\nskip_until -5\nskipped x\nlast_success 7";
	qstate_parse(bad, sizeof bad - 1, &b);
	ok(b.skip_until == 0 && b.skipped == 0 && b.last_success == 7,
	   "parse: bad numbers skipped, a last line without newline read");
	test_rate();
	return tap_done();
}
