/* t_drop.c - the drop file head (drop.h): what the service accepts from the
 * set-gid helper's file, and the writer the caller uses. */
#include "config.h"
#include "drop.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static int parse(const char *s, struct drop_head *h, char *err, size_t cap)
{
	return drop_parse(s, strlen(s), h, err, cap);
}

static const struct {
	const char *name, *in, *want_err;   /* want_err NULL: accepted */
} cases[] = {
	{ "minimal", "pushmail-drop 1\nrcpt a@b\n\nSubject: x\n", NULL },
	{ "every field", "pushmail-drop 1\nrcpt a@b, \"C D\" <c@d>\nrcpt root\n"
	  "extract 1\nfrom x@y\nname Cron Daemon\nnotify failure,delay\nret hdrs\n"
	  "envid abc\n\nbody", NULL },
	{ "-t alone", "pushmail-drop 1\nextract 1\n\n", NULL },
	{ "wrong magic", "pushmail-drop 2\nrcpt a@b\n\n", "not a drop file" },
	{ "no magic", "rcpt a@b\n\n", "not a drop file" },
	{ "unknown key", "pushmail-drop 1\nhost evil.example\n\n", "bad head line" },
	{ "key without value", "pushmail-drop 1\nrcpt\n\n", "bad head line" },
	{ "repeated from", "pushmail-drop 1\nfrom a@b\nfrom c@d\n\n", "repeated from" },
	{ "repeated extract", "pushmail-drop 1\nextract 1\nextract 1\n\n", "extract" },
	{ "extract 2", "pushmail-drop 1\nextract 2\n\n", "extract" },
	{ "CR in a value", "pushmail-drop 1\nrcpt a@b\rRCPT TO:<x>\n\n", "control byte" },
	{ "tab in a value", "pushmail-drop 1\nname a\tb\n\n", "control byte" },
	{ "DEL in a value", "pushmail-drop 1\nname a\x7f\n\n", "control byte" },
};

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct drop_head h;
		char err[200];
		int rc = parse(cases[i].in, &h, err, sizeof err);

		if (!cases[i].want_err) {
			ok(rc == 0, "%s: accepted", cases[i].name);
			if (rc != 0)
				printf("#   error: %s\n", err);
		} else {
			ok(rc == -1 && strstr(err, cases[i].want_err), "%s: refused (%s)",
			   cases[i].name, cases[i].want_err);
			if (rc != -1 || !strstr(err, cases[i].want_err))
				printf("#   rc %d, error: %s\n", rc, err);
		}
		drop_head_free(&h);
	}
}

static void test_fields(void)
{
	static const char in[] = "pushmail-drop 1\nrcpt a@b\nrcpt root\nextract 1\n"
				 "from x@y\nname Cron Daemon\n\nSubject: s\n\nbody\n";
	struct drop_head h;
	char err[200];

	ok(parse(in, &h, err, sizeof err) == 0, "fields: parsed");
	is_int((int)h.nrcpt, 2, "fields: two recipient arguments");
	is_str(h.rcpt[1], "root", "fields: second argument");
	is_int(h.extract, 1, "fields: -t");
	is_str(h.from, "x@y", "fields: -f");
	is_str(h.name, "Cron Daemon", "fields: -F with a space");
	ok(h.notify == NULL && h.ret == NULL && h.envid == NULL, "fields: absent DSN");
	is_str(in + h.len, "Subject: s\n\nbody\n", "fields: the message starts after the head");
	drop_head_free(&h);
}

static void test_limits(void)
{
	static const char nul[] = "pushmail-drop 1\nrcpt a\0b\n\nx";
	struct drop_head h;
	char err[200];
	size_t n = DROP_HEAD_MAX + 100, len;
	char *big = malloc(n + 1), *out;

	ok(drop_parse(nul, sizeof nul - 1, &h, err, sizeof err) == -1 &&
	   strstr(err, "control byte"), "NUL in a value: refused");
	/* incomplete heads: need more, until the limit */
	is_int(parse("pushmail-drop 1\nrcpt a@b\n", &h, err, sizeof err), 1,
	       "no empty line yet: incomplete");
	memset(big, 'x', n);
	big[n] = '\0';
	memcpy(big, "pushmail-drop 1\nname ", 21);
	is_int(drop_parse(big, n, &h, err, sizeof err), -1, "head over the limit: refused");
	/* a line over DROP_LINE_MAX */
	memset(big, 'y', n);
	memcpy(big, "pushmail-drop 1\nname ", 21);
	memcpy(big + 21 + DROP_LINE_MAX, "\n\n", 2);
	ok(drop_parse(big, 21 + DROP_LINE_MAX + 2, &h, err, sizeof err) == -1 &&
	   strstr(err, "too long"), "overlong head line: refused");
	/* too many recipients */
	{
		size_t o = (size_t)sprintf(big, "pushmail-drop 1\n");
		for (int i = 0; i <= DROP_RCPT_MAX; i++)
			o += (size_t)sprintf(big + o, "rcpt a%d@b\n", i);
		big[o++] = '\n';
		ok(o < n && drop_parse(big, o, &h, err, sizeof err) == -1 &&
		   strstr(err, "too many"), "%d recipient lines: refused", DROP_RCPT_MAX + 1);
	}
	free(big);
	/* the writer refuses what the parser would */
	{
		char *rc[] = { "a@b\r\nRCPT TO:<x>" };
		struct drop_head w = { .rcpt = rc, .nrcpt = 1 };
		ok(drop_format(&w, &len) == NULL, "writer refuses CR/LF in a value");
	}
	{
		char *rc[] = { "a@b", "\"X Y\" <x@y>" };
		struct drop_head w = { .rcpt = rc, .nrcpt = 2, .extract = 1, .from = "f@g",
				       .name = "Cron Daemon" };
		out = drop_format(&w, &len);
		ok(out && parse(out, &h, err, sizeof err) == 0 && h.len == len &&
		   h.nrcpt == 2 && strcmp(h.rcpt[1], "\"X Y\" <x@y>") == 0 && h.extract &&
		   strcmp(h.from, "f@g") == 0, "format then parse round-trips");
		drop_head_free(&h);
		free(out);
	}
}

static void test_names(void)
{
	static const struct { const char *name; int ok; } names[] = {
		{ "m.20261206T142827.719696.28786.c547", 1 },
		{ "t.20261206T142827.719696.28786.c547", 0 },
		{ "x.20261206T142827.719696.28786.c547", 0 },
		{ "m.", 0 }, { "m..hidden", 0 }, { "m.../etc", 0 }, { "m.ABC", 0 },
		{ "m.20261206T142827 719696", 0 },
		{ "m.1234567890123456789012345678901234567890123456789", 0 },
	};
	char id[DROP_ID_MAX];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		is_int(drop_ready_name(names[i].name, id), names[i].ok, "name '%s'",
		       names[i].name);
}

int main(void)
{
	test_cases();
	test_fields();
	test_limits();
	test_names();
	return tap_done();
}
