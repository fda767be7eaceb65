/* t_reply.c - reply parser and EHLO capability parser. */
#include "config.h"
#include "reply.h"
#include "tap.h"

#include <stdlib.h>

/* A reply as lines separated by '|'; want: final status, code, enh, text. */
static const struct {
	const char *name;
	const char *lines;
	int status;
	int code;
	const char *enh;
	const char *text;
} cases[] = {
	{ "simple", "250 ok", REPLY_DONE, 250, "", "ok" },
	{ "bare code", "250", REPLY_DONE, 250, "", "" },
	{ "code and space", "250 ", REPLY_DONE, 250, "", "" },
	{ "enhanced", "550 5.1.1 no such user", REPLY_DONE, 550, "5.1.1", "5.1.1 no such user" },
	{ "enhanced class mismatch ignored", "550 2.1.1 odd", REPLY_DONE, 550, "", "2.1.1 odd" },
	{ "enhanced 3-digit parts", "451 4.123.456 busy", REPLY_DONE, 451, "4.123.456", "4.123.456 busy" },
	{ "not enhanced: 4 digits", "451 4.1234.5 x", REPLY_DONE, 451, "", "4.1234.5 x" },
	{ "multi-line", "250-a|250-b|250 c", REPLY_DONE, 250, "", "a\nb\nc" },
	{ "multi-line bare continuation", "250-|250 x", REPLY_DONE, 250, "", "\nx" },
	{ "mismatched codes", "250-a|251 b", REPLY_BAD, 0, "", "" },
	{ "code 1xx", "199 x", REPLY_BAD, 0, "", "" },
	{ "code 6xx", "600 x", REPLY_BAD, 0, "", "" },
	{ "letters", "2x0 x", REPLY_BAD, 0, "", "" },
	{ "two digits", "25", REPLY_BAD, 0, "", "" },
	{ "empty line", "", REPLY_BAD, 0, "", "" },
	{ "bad separator", "250:ok", REPLY_BAD, 0, "", "" },
	{ "garbage", "hello there", REPLY_BAD, 0, "", "" },
	{ "leading space", " 250 ok", REPLY_BAD, 0, "", "" },
};

static int feed_all(struct reply *rp, const char *lines, const char **why)
{
	char *copy = strdup(lines), *save = NULL, *line;
	int st = REPLY_BAD;

	reply_init(rp);
	if (*lines == '\0') {
		free(copy);
		return reply_feed(rp, "", 0, why);
	}
	for (line = strtok_r(copy, "|", &save); line; line = strtok_r(NULL, "|", &save)) {
		st = reply_feed(rp, line, strlen(line), why);
		if (st != REPLY_MORE)
			break;
	}
	free(copy);
	return st;
}

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct reply rp;
		const char *why = NULL;
		int st;

		/* "250-|250 x": strtok would drop the empty text; feed by hand */
		if (strcmp(cases[i].name, "multi-line bare continuation") == 0) {
			reply_init(&rp);
			reply_feed(&rp, "250-", 4, &why);
			st = reply_feed(&rp, "250 x", 5, &why);
		} else {
			st = feed_all(&rp, cases[i].lines, &why);
		}
		is_int(st, cases[i].status, "%s: status", cases[i].name);
		if (cases[i].status != REPLY_DONE) {
			ok(why && *why, "%s: has a reason (%s)", cases[i].name, why ? why : "");
			continue;
		}
		is_int(rp.code, cases[i].code, "%s: code", cases[i].name);
		is_str(rp.enh, cases[i].enh, "%s: enhanced code", cases[i].name);
		is_str(rp.text, cases[i].text, "%s: text", cases[i].name);
	}
}

static void test_limits(void)
{
	struct reply rp;
	const char *why;
	char *big = malloc(REPLY_LINE_MAX + 10);
	int st = REPLY_MORE;
	size_t n;

	memset(big, 'x', REPLY_LINE_MAX + 10);
	memcpy(big, "250 ", 4);
	reply_init(&rp);
	is_int(reply_feed(&rp, big, REPLY_LINE_MAX, &why), REPLY_DONE, "line at the limit accepted");
	reply_init(&rp);
	is_int(reply_feed(&rp, big, REPLY_LINE_MAX + 1, &why), REPLY_BAD, "line over the limit refused");

	reply_init(&rp);
	for (n = 0; n < 1000 && st == REPLY_MORE; n++)
		st = reply_feed(&rp, "250-more", 8, &why);
	is_int(st, REPLY_BAD, "endless continuation refused");
	is_int(n, REPLY_LINES_MAX + 1, "after exactly REPLY_LINES_MAX lines");

	/* Long but valid replies are truncated, not overflowed. */
	memcpy(big, "250-", 4);
	reply_init(&rp);
	for (n = 0; n < 10; n++)
		reply_feed(&rp, big, 4000, &why);
	ok(rp.textlen < sizeof rp.text, "text truncated within its buffer");
	free(big);
}

static void test_caps(void)
{
	struct reply rp;
	struct caps c;
	const char *why;
	const char *lines[] = {
		"250-mx.example Hello", "250-PIPELINING", "250-SIZE 10240000",
		"250-8bitmime", "250-AUTH PLAIN login SCRAM-SHA-256", "250-AUTH=LOGIN",
		"250-STARTTLS", "250-ENHANCEDSTATUSCODES", "250-CHUNKING",
		"250-SMTPUTF8", "250-X-UNKNOWN foo", "250 DSN",
	};

	reply_init(&rp);
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
		reply_feed(&rp, lines[i], strlen(lines[i]), &why);
	caps_parse(&c, &rp);
	ok(c.flags & CAP_PIPELINING, "PIPELINING");
	ok(c.flags & CAP_SIZE, "SIZE");
	is_int(c.size_max, 10240000, "SIZE value");
	ok(c.flags & CAP_8BITMIME, "8BITMIME case-insensitive");
	ok(c.flags & CAP_STARTTLS, "STARTTLS");
	ok(c.flags & CAP_CHUNKING, "CHUNKING");
	ok(c.flags & CAP_SMTPUTF8, "SMTPUTF8");
	ok(c.flags & CAP_DSN, "DSN");
	ok(c.flags & CAP_ENHANCEDSTATUSCODES, "ENHANCEDSTATUSCODES");
	ok(!(c.flags & CAP_BINARYMIME), "BINARYMIME absent");
	is_str(c.auth, "PLAIN LOGIN SCRAM-SHA-256 LOGIN", "AUTH mechanisms upper-cased, legacy form too");

	/* The greeting line is not a capability. */
	reply_init(&rp);
	reply_feed(&rp, "250-PIPELINING", 14, &why);
	reply_feed(&rp, "250 SIZE", 8, &why);
	caps_parse(&c, &rp);
	ok(!(c.flags & CAP_PIPELINING), "first line is the greeting, not a keyword");
	ok(c.flags & CAP_SIZE, "SIZE without a value");
	is_int(c.size_max, 0, "SIZE without a value means no limit");

	/* Issue 13: the list was cut at 256 bytes, so a PLAIN after 300 bytes
	 * of other names was "not offered".  Only the line limit bounds it. */
	for (size_t total = 300; total <= REPLY_LINE_MAX; total += REPLY_LINE_MAX - 300) {
		char line[REPLY_LINE_MAX + 1];
		size_t o = (size_t)snprintf(line, sizeof line, "250 AUTH");
		for (int k = 0; o + 30 < total; k++)
			o += (size_t)snprintf(line + o, sizeof line - o, " X-MECHANISM-%04d", k);
		o += (size_t)snprintf(line + o, sizeof line - o, " PLAIN");
		reply_init(&rp);
		reply_feed(&rp, "250-mx.example", 14, &why);
		ok(reply_feed(&rp, line, o, &why) == REPLY_DONE, "%zu-byte AUTH line accepted", o);
		caps_parse(&c, &rp);
		is_int(strlen(c.auth), o - 9, "%zu-byte AUTH line kept whole", o);
		ok(o >= 9 && strcmp(c.auth + strlen(c.auth) - 6, " PLAIN") == 0,
		   "%zu-byte AUTH line: PLAIN at its end is seen", o);
	}
}

int main(void)
{
	test_cases();
	test_limits();
	test_caps();
	return tap_done();
}
