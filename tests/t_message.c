/* t_message.c - header block: end detection, rewrite, -t, reading. */
#include "config.h"
#include "message.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOW 1700000000   /* Tue, 14 Nov 2023 22:13:20 UTC */
#define DATE "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"

/* ------------------------------------------------------------------ */
/* msg_head_end */

static const struct {
	const char *in;
	size_t len;   /* 0: strlen(in) */
	long want;    /* answer at eof */
} ends[] = {
	{ "", 0, 0 },
	{ "\n", 0, 1 },
	{ "\r\n", 0, 2 },
	{ "\r", 0, 1 },
	{ "\n\nbody", 0, 1 },
	{ "Subject: x\n\nbody", 0, 12 },
	{ "Subject: x\r\n\r\nbody\r\n", 0, 14 },
	{ "Subject: x\r\rbody", 0, 12 },
	{ "A: b\rB: c\r\rbody", 0, 11 },
	{ "A: b\r\n\rbody", 0, 7 },
	{ "X-Mixed: a\r\nY: b\nZ: c\r\n\r\nbody", 0, 25 },
	{ "Subject: x\n folded\n\tmore\n\nbody", 0, 26 },
	{ "Subject: x\r\n folded\r\n\r\nbody", 0, 23 },
	{ "A: b\r\n \r\n\r\nbody", 0, 11 },
	{ "Subject: x", 0, 10 },               /* only headers, no newline */
	{ "A: b\nB: c\n", 0, 10 },             /* only headers, no blank line */
	{ "A: b\nB: c\r", 0, 10 },
	{ "A:b\n\nbody", 0, 5 },
	{ "Subject : obs-syntax\n\nb", 0, 22 },
	{ "Subject\t: obs-syntax\n\nb", 0, 22 },
	{ "From foo@example.com Mon Jan  1 00:00:00 2024\nSubject: x\n\nb", 0, 0 },
	{ "From: a@b\n\nbody", 0, 11 },
	{ "Hello world\nthis is the body\n", 0, 0 },
	{ "Hello:world\n\nbody", 0, 13 },      /* looks like a header: is one */
	{ " leading space\nA: b\n\n", 0, 0 },
	{ "\tcontinuation of nothing\n", 0, 0 },
	{ ": empty name\n\n", 0, 0 },
	{ "A: b\nnot a header\nC: d\n\n", 0, 5 },
	{ "A: b\n\xc3\xa4: x\n\n", 0, 5 },
	{ "A: b\nX Y: z\n\n", 0, 5 },
	{ "A: b\n-\n\n", 0, 5 },
	{ "A: b\0c\n\nbody", 9, 8 },
	{ "A\0: b\n\n", 7, 0 },
	{ "Subject", 0, 0 },                  /* no colon before eof: body */
	{ "Subject  ", 0, 0 },
	{ "A: b\n\x01: c\n\n", 0, 5 },
};

static char *dup_exact(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	memcpy(p, s, n);
	return p;
}

/* Every prefix, as the reader would see it between two read()s, from an
 * exact-size heap copy so valgrind flags any look past the end. */
static void test_head_end(void)
{
	for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
		size_t len = ends[i].len ? ends[i].len : strlen(ends[i].in);
		char *full = dup_exact(ends[i].in, len);
		int consistent = 1, decided = 1;
		long got = msg_head_end(full, len, 1);

		for (size_t k = 0; k <= len; k++) {
			char *p = dup_exact(ends[i].in, k);
			long r0 = msg_head_end(p, k, 0);
			long r1 = msg_head_end(p, k, 1);

			if (r0 != -1 && r0 != ends[i].want) {
				consistent = 0;
				printf("#   prefix %zu: got %ld\n", k, r0);
			}
			decided &= r1 >= 0 && (size_t)r1 <= k;
			free(p);
		}
		is_int(got, ends[i].want, "head_end [%zu] at eof", i);
		ok(consistent, "head_end [%zu]: every split point agrees", i);
		ok(decided, "head_end [%zu]: eof always decides", i);
		free(full);
	}
}

/* A field name longer than a line can be is not one, so a huge first body
 * line without a colon never makes the reader wait for 1 MiB. */
static void test_head_end_long(void)
{
	size_t n = 5000;
	char *s = malloc(n);

	memset(s, 'x', n);
	is_int(msg_head_end(s, n, 0), 0, "5000-byte colon-less line is body");
	is_int(msg_head_end(s, 998, 0), -1, "998 name bytes: undecided");
	memcpy(s, "A: ", 3);
	is_int(msg_head_end(s, n, 0), -1, "5000-byte header line: need more");
	free(s);
}

/* ------------------------------------------------------------------ */
/* msg_head_process */

struct pcase {
	const char *name;
	const char *flags;      /* t: -t; D M F T: set_* auto; f: set_from on */
	const char *in;
	size_t len;             /* 0: strlen(in) */
	const char *want;       /* rewritten block, NULL: not checked */
	const char *rcpts;      /* "a|b|c" */
	const char *from;       /* from_mailbox */
	int exitcode;           /* EX_OK: success expected */
	const char *why;        /* substring of the error */
	const char *env_from;   /* NULL: "me@example.org" */
	const char *full_name;
};

static const struct pcase pcases[] = {
	{ "pass-through", "", "Subject: x\nTo: a@b\n\n", 0,
	  "Subject: x\nTo: a@b\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "DKIM bytes kept", "DMFT",
	  "DKIM-Signature: v=1; a=rsa-sha256;\r\n\td=x; b=abc\r\n def\r\n"
	  "Subject:   spaced  \r\nFrom:a@b\r\nTo:c@d\r\nDate: x\r\n"
	  "Message-ID: <1@x>\r\n\r\n", 0,
	  "DKIM-Signature: v=1; a=rsa-sha256;\r\n\td=x; b=abc\r\n def\r\n"
	  "Subject:   spaced  \r\nFrom:a@b\r\nTo:c@d\r\nDate: x\r\n"
	  "Message-ID: <1@x>\r\n\r\n", "", "a@b", EX_OK, NULL, NULL, NULL },
	{ "Bcc removed", "", "To: a@b\nBcc: c@d\nSubject: s\n\n", 0,
	  "To: a@b\nSubject: s\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "folded Bcc removed", "",
	  "To: a@b\nBcc: c@d,\n e@f,\r\n\tg@h\nSubject: s\n\n", 0,
	  "To: a@b\nSubject: s\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "bcc/BCC :/Resent-Bcc removed", "",
	  "bcc: a@b\nX: 1\nBCC : c@d\nResent-Bcc: e@f\n  g@h\nX-Bcc: kept\n\n", 0,
	  "X: 1\nX-Bcc: kept\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "last field Bcc, no blank line", "", "To: a@b\nBcc: c@d", 0,
	  "To: a@b\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "-t To/Cc/Bcc/groups", "t",
	  "To: A <a@b>, c@d\nCc: Team: e@f, \"G\" <g@h>;\nBcc: i@j\nSubject: s\n\n", 0,
	  "To: A <a@b>, c@d\nCc: Team: e@f, \"G\" <g@h>;\nSubject: s\n\n",
	  "a@b|c@d|e@f|g@h|i@j", NULL, EX_OK, NULL, NULL, NULL },
	{ "-t folded To", "t", "To: a@b,\r\n c@d\r\nCC: (x) e@f\r\n\r\n", 0,
	  NULL, "a@b|c@d|e@f", NULL, EX_OK, NULL, NULL, NULL },
	{ "-t duplicates", "t", "To: a@b, A@B\nCc: a@B\nBcc: a@b\n\n", 0,
	  "To: a@b, A@B\nCc: a@B\n\n", "a@b|A@B", NULL, EX_OK, NULL, NULL, NULL },
	{ "-t undisclosed + Bcc", "tT", "To: undisclosed-recipients:;\nBcc: a@b\n\n", 0,
	  "To: undisclosed-recipients:;\n\n", "a@b", NULL, EX_OK, NULL, NULL, NULL },
	{ "-t without any", "t", "Subject: s\n\n", 0,
	  "Subject: s\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "no -t: no recipients", "", "To: a@b\n\n", 0,
	  NULL, "", NULL, EX_OK, NULL, NULL, NULL },
	{ "-t Resent block", "t",
	  "Resent-From: r@x\nResent-To: new@x\nResent-Bcc: hidden@x\n"
	  "Resent-Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
	  "From: o@x\nTo: old@x\nBcc: oldbcc@x\n\n", 0,
	  "Resent-From: r@x\nResent-To: new@x\n"
	  "Resent-Date: Mon, 1 Jan 2024 00:00:00 +0000\nFrom: o@x\nTo: old@x\n\n",
	  "new@x|hidden@x", "r@x", EX_OK, NULL, NULL, NULL },
	{ "-t first Resent block only", "t",
	  "Resent-To: first@x\nResent-Cc: c1@x\nReceived: by x\n"
	  "Resent-To: second@x\nTo: old@x\n\n", 0,
	  NULL, "first@x|c1@x", NULL, EX_OK, NULL, NULL, NULL },
	{ "-t topmost Resent block lacks destinations", "t",
	  "Resent-From: r@x\nReceived: by x\nResent-To: older@x\nTo: o@x\n\n", 0,
	  NULL, "", "r@x", EX_OK, NULL, NULL, NULL },
	{ "-t Resent without destinations uses To", "t",
	  "Resent-From: r@x\nFrom: f@x\nTo: o@x\n\n", 0,
	  NULL, "o@x", "r@x", EX_OK, NULL, NULL, NULL },
	{ "-t syntax error names the header", "t", "Subject: s\ncc: <a@b\n\n", 0,
	  NULL, NULL, NULL, EX_DATAERR, "cc: header: unbalanced '<'", NULL, NULL },
	{ "-t <> refused", "t", "To: a@b, <>\n\n", 0,
	  NULL, NULL, NULL, EX_DATAERR, "To: header: <> is not a recipient", NULL, NULL },
	{ "-t NUL in To", "t", "To: a@b\0c\n\n", 11,
	  NULL, NULL, NULL, EX_DATAERR, "NUL", NULL, NULL },
	{ "-t bad Resent-To only counts in use", "t",
	  "Resent-To: n@x\nTo: <broken\n\n", 0,
	  NULL, "n@x", NULL, EX_OK, NULL, NULL, NULL },
	{ "Date added", "D", "Subject: x\n\n", 0,
	  "Subject: x\n" DATE "\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "Date kept", "D", "date: whenever\n\n", 0,
	  "date: whenever\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "From added", "F", "Subject: x\n\n", 0,
	  "Subject: x\nFrom: me@example.org\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "From kept", "F", "FROM: other@x\n\n", 0,
	  "FROM: other@x\n\n", "", "other@x", EX_OK, NULL, NULL, NULL },
	{ "From on replaces", "f", "From: other@x\nSubject: s\n\n", 0,
	  "Subject: s\nFrom: me@example.org\n\n", "", "other@x", EX_OK, NULL, NULL, NULL },
	{ "From off", "", "Subject: s\n\n", 0,
	  "Subject: s\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "-F plain", "F", "", 0,
	  "From: John Doe <me@example.org>\n\n", "", NULL, EX_OK, NULL, NULL, "John Doe" },
	{ "-F specials quoted", "F", "", 0,
	  "From: \"Doe, John Q.\" <me@example.org>\n\n", "", NULL, EX_OK, NULL, NULL,
	  "Doe, John Q." },
	{ "-F quote and backslash escaped", "F", "", 0,
	  "From: \"a \\\"b\\\" c\\\\\" <me@example.org>\n\n", "", NULL, EX_OK, NULL,
	  NULL, "a \"b\" c\\" },
	{ "-F UTF-8 encoded", "F", "", 0,
	  "From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <me@example.org>\n\n", "", NULL,
	  EX_OK, NULL, NULL, "J\xc3\xb6rg M\xc3\xbcller" },
	{ "-F CR/LF injection", "F", "", 0,
	  "From: \"Evil Bcc: x@y\" <me@example.org>\n\n", "", NULL, EX_OK, NULL,
	  NULL, "Evil\r\nBcc: x@y" },
	{ "-F LF only injection", "F", "", 0,
	  "From: Evil To <me@example.org>\n\n", "", NULL, EX_OK, NULL,
	  NULL, "\n Evil\n\nTo\r" },
	{ "-F blank", "F", "", 0,
	  "From: me@example.org\n\n", "", NULL, EX_OK, NULL, NULL, " \r\n " },
	{ "no From for null sender", "F", "", 0,
	  "\n", "", NULL, EX_OK, NULL, "", "X" },
	{ "no From for invalid sender", "F", "", 0,
	  "\n", "", NULL, EX_OK, NULL, "a@b\r\nRCPT TO:<x@y>", "X" },
	{ "To added for Bcc-only", "T", "Subject: s\nBcc: x@y\n\n", 0,
	  "Subject: s\nTo: undisclosed-recipients:;\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "To not added with Cc", "T", "Cc: a@b\n\n", 0,
	  "Cc: a@b\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "To added despite Resent-To", "T", "Resent-To: a@b\n\n", 0,
	  "Resent-To: a@b\nTo: undisclosed-recipients:;\n\n", "", NULL, EX_OK, NULL,
	  NULL, NULL },
	{ "only headers, no newline", "D", "Subject: x", 0,
	  "Subject: x\n" DATE "\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "only headers, no blank line", "", "Subject: x\r\n", 0,
	  "Subject: x\r\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "no headers at all", "DFT", "", 0,
	  DATE "From: me@example.org\nTo: undisclosed-recipients:;\n\n", "", NULL,
	  EX_OK, NULL, NULL, NULL },
	{ "blank line only", "D", "\r\n", 0,
	  DATE "\r\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "CRLF kept, added before separator", "D", "Subject: x\r\nTo: a@b\r\n\r\n", 0,
	  "Subject: x\r\nTo: a@b\r\n" DATE "\r\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "bare CR then dropped field", "", "A: b\rBcc: c\r\n\n", 0,
	  "A: b\r\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "bare CR at end", "", "A: b\r", 0,
	  "A: b\r\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "bare CR separator kept", "D", "A: b\r\r", 0,
	  "A: b\r" DATE "\r", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "opaque line kept", "", "A: b\njunk line\n\n", 0,
	  "A: b\njunk line\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "unparsable From: no from_mailbox", "", "From: <broken\n\n", 0,
	  "From: <broken\n\n", "", NULL, EX_OK, NULL, NULL, NULL },
	{ "From group takes first member", "", "From: G: a@b, c@d;\n\n", 0,
	  NULL, "", "a@b", EX_OK, NULL, NULL, NULL },
};

static void opts_from(const struct pcase *c, struct msg_opts *o)
{
	const char *f = c->flags;

	memset(o, 0, sizeof *o);
	o->extract = strchr(f, 't') != NULL;
	o->env_from = c->env_from ? c->env_from : "me@example.org";
	o->full_name = c->full_name;
	o->set_date = strchr(f, 'D') ? HDR_AUTO : HDR_OFF;
	o->set_msgid = strchr(f, 'M') ? HDR_AUTO : HDR_OFF;
	o->set_from = strchr(f, 'f') ? HDR_ON : strchr(f, 'F') ? HDR_AUTO : HDR_OFF;
	o->set_to = strchr(f, 'T') ? HDR_AUTO : HDR_OFF;
	o->now = NOW;
}

static void flatten(const struct addrlist *l, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < l->n && o < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "|" : "",
				      l->v[i].mailbox);
}

static void check_pcase(size_t i, const struct pcase *c)
{
	size_t len = c->len ? c->len : strlen(c->in);
	char *in = dup_exact(c->in, len);
	struct msg_opts o;
	struct msg_head h;
	struct result r;
	char rc_list[1024];
	int rc;

	result_clear(&r);
	opts_from(c, &o);
	rc = msg_head_process(in, len, &o, &h, &r);
	if (c->exitcode != EX_OK) {
		ok(rc == -1 && r.exitcode == c->exitcode &&
		   strstr(r.text, c->why) != NULL && h.text == NULL,
		   "process [%zu] %s: %s", i, c->name, result_exit_name(c->exitcode));
		if (!strstr(r.text, c->why))
			printf("#   got \"%s\"\n", r.text);
		free(in);
		return;
	}
	flatten(&h.rcpts, rc_list, sizeof rc_list);
	ok(rc == 0, "process [%zu] %s: succeeds", i, c->name);
	if (c->want)
		is_mem(h.text ? h.text : "", h.len, c->want,
		       strlen(c->want),
		       "process [%zu] %s: text", i, c->name);
	if (c->rcpts && *c->rcpts)
		is_str(rc_list, c->rcpts, "process [%zu] %s: recipients", i, c->name);
	else if (c->rcpts)
		is_int(h.rcpts.n, 0, "process [%zu] %s: no recipients", i, c->name);
	is_str(h.from_mailbox, c->from, "process [%zu] %s: from_mailbox", i, c->name);
	msg_head_free(&h);
	free(in);
}

static void test_process(void)
{
	for (size_t i = 0; i < sizeof pcases / sizeof pcases[0]; i++)
		check_pcase(i, &pcases[i]);
}

static int process(const char *in, const struct msg_opts *o, struct msg_head *h)
{
	struct result r;

	result_clear(&r);
	return msg_head_process(in, strlen(in), o, h, &r);
}

static int is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return 0;
	return 1;
}

/* Message-ID: <YYYYMMDDHHMMSS.RANDOMHEX@domain>, domain from the sender,
 * else the configured domain, else localhost. */
static void test_msgid(void)
{
	static const struct {
		const char *env_from, *domain, *want;
	} c[] = {
		{ "me@mail.example.org", "cfg.example", "mail.example.org" },
		{ "root", "cfg.example", "cfg.example" },
		{ NULL, "cfg.example", "cfg.example" },
		{ "me@[192.0.2.1]", NULL, "[192.0.2.1]" },
		{ "root", NULL, "localhost" },
		{ "root", "bad domain>", "localhost" },
		{ "me@b\xc3\xbc" "cher.example", "x.example", "x.example" },
	};
	struct msg_opts o = { .set_date = HDR_OFF, .set_from = HDR_OFF,
			      .set_to = HDR_OFF, .set_msgid = HDR_AUTO, .now = NOW };
	struct msg_head h, h2;
	char want[128], *id;

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		o.env_from = c[i].env_from;
		o.domain = c[i].domain;
		process("", &o, &h);
		snprintf(want, sizeof want, "@%s>\n\n", c[i].want);
		id = h.text ? strstr(h.text, "<20231114221320.") : NULL;
		ok(id && strncmp(h.text, "Message-ID: <", 13) == 0 &&
		   is_hex(id + 16, 16) && strcmp(id + 32, want) == 0 && !h.has_8bit,
		   "Message-ID [%zu] @%s", i, c[i].want);
		if (h.text && !(id && strcmp(id + 32, want) == 0))
			printf("#   got \"%s\"\n", h.text);
		msg_head_free(&h);
	}
	o.env_from = "me@x";
	process("", &o, &h);
	process("", &o, &h2);
	ok(h.text && h2.text && strcmp(h.text, h2.text) != 0,
	   "two Message-IDs differ");
	msg_head_free(&h);
	msg_head_free(&h2);
	process("message-id: <kept@x>\n\n", &o, &h);
	is_str(h.text, "message-id: <kept@x>\n\n", "Message-ID kept");
	msg_head_free(&h);
}

static size_t b64dec(const char *in, size_t n, unsigned char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned v = 0;
	size_t o = 0;
	int bits = 0;

	for (size_t i = 0; i < n && in[i] != '='; i++) {
		v = v << 6 | (unsigned)(strchr(tab, in[i]) - tab);
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(v >> bits);
		}
	}
	return o;
}

/* A long UTF-8 name: RFC 2047 words of at most 75 characters, on lines
 * of at most 78, whole characters in each, decoding to the name. */
static void test_long_name(void)
{
	struct msg_opts o = { .set_date = HDR_OFF, .set_msgid = HDR_OFF,
			      .set_from = HDR_AUTO, .set_to = HDR_OFF,
			      .env_from = "me@x", .now = NOW };
	char name[401];
	unsigned char dec[512];
	size_t dn = 0, words = 0, maxline = 0, maxword = 0;
	int whole = 1;
	struct msg_head h;
	const char *p;

	for (size_t i = 0; i < 200; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	name[400] = '\0';
	o.full_name = name;
	process("", &o, &h);
	for (p = h.text; p && (p = strstr(p, "=?UTF-8?B?")); words++) {
		const char *e = strstr(p + 10, "?=");
		size_t k = b64dec(p + 10, (size_t)(e - p - 10), dec + dn);

		whole &= k % 2 == 0;   /* every character is 2 bytes */
		dn += k;
		if ((size_t)(e + 2 - p) > maxword)
			maxword = (size_t)(e + 2 - p);
		p = e + 2;
	}
	for (p = h.text; p && *p; ) {
		size_t l = strcspn(p, "\n");

		if (l > maxline)
			maxline = l;
		p += l + (p[l] != '\0');
	}
	/* FULLNAME_MAX cuts the 400 bytes to 256 (128 characters) */
	ok(words > 1 && maxword <= 75 && maxline <= 78 && whole,
	   "long -F name: %zu words, longest %zu, line %zu", words, maxword, maxline);
	ok(dn == 256 && memcmp(dec, name, dn) == 0, "long -F name decodes (%zu bytes)", dn);
	ok(h.text && strstr(h.text, "?= <me@x>\n\n") != NULL, "address after the words");
	msg_head_free(&h);
}

static void test_flags(void)
{
	struct msg_opts o = { .set_date = HDR_OFF, .set_msgid = HDR_OFF,
			      .set_from = HDR_OFF, .set_to = HDR_OFF, .now = NOW };
	struct msg_head h;

	{
		struct result r;
		int rc;

		result_clear(&r);
		rc = msg_head_process("X: a\0b\n\n", 8, &o, &h, &r);
		is_mem(h.text, h.len, "X: a\0b\n\n", 8, "NUL kept (rc %d)", rc);
		ok(!h.has_8bit, "NUL sets no flag");
		msg_head_free(&h);
	}
	process("Subject: \xc3\xa4\n\n", &o, &h);
	ok(h.has_8bit, "8-bit header flagged");
	msg_head_free(&h);
	process("Subject: a\nBcc: \xc3\xa4@x\n\n", &o, &h);
	ok(!h.has_8bit, "8-bit only in a removed Bcc: not flagged");
	msg_head_free(&h);
	o.set_from = HDR_AUTO;
	o.env_from = "me@x";
	o.full_name = "J\xc3\xb6rg";
	process("", &o, &h);
	ok(!h.has_8bit, "generated encoded From is 7-bit");
	msg_head_free(&h);
}

/* The date is formatted in local time with English names and a numeric
 * offset, whatever TZ holds. */
static void test_date(void)
{
	static const struct {
		const char *tz;
		time_t t;
		const char *want;
	} c[] = {
		{ "UTC0", 0, "Thu, 1 Jan 1970 00:00:00 +0000" },
		{ "UTC0", NOW, "Tue, 14 Nov 2023 22:13:20 +0000" },
		{ "CET-1", NOW, "Tue, 14 Nov 2023 23:13:20 +0100" },
		{ "EST5", NOW, "Tue, 14 Nov 2023 17:13:20 -0500" },
		{ "NST3:30", NOW, "Tue, 14 Nov 2023 18:43:20 -0330" },
		{ "IST-5:30", NOW, "Wed, 15 Nov 2023 03:43:20 +0530" },
		{ "UTC0", 951782400, "Tue, 29 Feb 2000 00:00:00 +0000" },
	};
	char buf[64];

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		setenv("TZ", c[i].tz, 1);
		tzset();
		msg_format_date(c[i].t, buf, sizeof buf);
		is_str(buf, c[i].want, "date in %s", c[i].tz);
	}
	setenv("TZ", "UTC0", 1);
	tzset();
	msg_format_date(NOW, buf, 8);
	is_int(strlen(buf), 7, "date truncated to cap");
}

/* ------------------------------------------------------------------ */
/* msg_read_head */

/* A child writes data into a pipe (in chunks, with a pause, when asked);
 * returns the read end. */
static int feed(const char *data, size_t n, size_t chunk, pid_t *pid)
{
	int fds[2];

	*pid = -1;
	if (pipe(fds) < 0)
		return -1;
	fflush(stdout);   /* or the child's copy of the buffer prints twice */
	*pid = fork();
	if (*pid == 0) {
		close(fds[0]);
		for (size_t off = 0; off < n; ) {
			size_t k = chunk && n - off > chunk ? chunk : n - off;
			ssize_t w = write(fds[1], data + off, k);

			if (w <= 0)
				_exit(1);
			off += (size_t)w;
			if (chunk)
				usleep(20000);
		}
		_exit(0);
	}
	close(fds[1]);
	return fds[0];
}

static int read_via_pipe(const char *data, size_t n, size_t chunk, char **buf,
			 size_t *len, size_t *hl, struct result *r)
{
	pid_t pid = -1;
	int fd = feed(data, n, chunk, &pid), rc;

	result_clear(r);
	rc = msg_read_head(fd, buf, len, hl, r);
	close(fd);   /* a writer still going gets EPIPE */
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return rc;
}

/* A header block of exactly n bytes (blank line included), then a body. */
static char *make_head(size_t n, size_t *total)
{
	const char *body = "body\n";
	char *s = malloc(n + 6);
	size_t off = 0;

	while (n - off > 81) {
		memcpy(s + off, "X-Pad: ", 7);
		memset(s + off + 7, 'p', 72);
		s[off + 79] = '\n';
		off += 80;
	}
	memcpy(s + off, "X: ", 3);
	memset(s + off + 3, 'q', n - off - 5);
	s[n - 2] = '\n';
	s[n - 1] = '\n';
	memcpy(s + n, body, 6);
	*total = n + 5;
	return s;
}

static void test_read_small(void)
{
	static const struct {
		const char *in;
		size_t chunk;
		size_t headlen;
	} c[] = {
		{ "", 0, 0 },
		{ "Subject: x\n\nbody\n", 0, 12 },
		{ "Subject: x\r", 0, 11 },
		{ "Subject: x\r\n\r\nbody", 11, 14 },   /* CR and LF in two reads */
		{ "Subject: x\r\r\nbody", 12, 13 },
		{ "Hello\n", 0, 0 },
		{ "A: b\n c\n", 1, 8 },
	};
	struct result r;
	char *buf;
	size_t len, hl;

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		size_t n = strlen(c[i].in);
		int rc = read_via_pipe(c[i].in, n, c[i].chunk, &buf, &len, &hl, &r);

		ok(rc == 0 && buf && hl == c[i].headlen && len <= n &&
		   memcmp(buf, c[i].in, len) == 0,
		   "read_head [%zu]: head %zu of %zu", i, hl, len);
		free(buf);
	}
}

static void test_read_limits(void)
{
	struct result r;
	char *buf, *s;
	size_t len, hl, total;
	int rc;

	s = make_head(MSG_HEAD_MAX + 1, &total);
	is_int(msg_head_end(s, total, 1), MSG_HEAD_MAX + 1, "oversized test block");
	rc = read_via_pipe(s, total, 0, &buf, &len, &hl, &r);
	ok(rc == -1 && r.exitcode == EX_DATAERR && buf == NULL &&
	   strcmp(r.text, "header block exceeds 1 MiB") == 0,
	   "1 MiB + 1 header block: EX_DATAERR (%s)", r.text);
	free(s);

	s = make_head(MSG_HEAD_MAX, &total);
	rc = read_via_pipe(s, total, 0, &buf, &len, &hl, &r);
	ok(rc == 0 && hl == MSG_HEAD_MAX && len >= hl && len <= total,
	   "1 MiB header block accepted");
	free(buf);
	free(s);

	/* headers that never end: refused without reading all 3 MiB */
	total = 3 * 1024 * 1024;
	s = malloc(total);
	for (size_t off = 0; off < total; off += 16)
		memcpy(s + off, "X-Loop: xxxxxxx\n", 16);
	rc = read_via_pipe(s, total, 0, &buf, &len, &hl, &r);
	ok(rc == -1 && r.exitcode == EX_DATAERR, "endless header block: EX_DATAERR");
	free(s);

	{
		int fd = open("/", O_RDONLY | O_DIRECTORY);

		result_clear(&r);
		rc = msg_read_head(fd, &buf, &len, &hl, &r);
		ok(rc == -1 && r.exitcode == EX_IOERR && buf == NULL,
		   "read error: EX_IOERR (%s)", r.text);
		close(fd);
	}
}

/* The body is never read whole: reading stops in the block that holds the
 * end of the header, and the descriptor sits right after it. */
static void test_read_stops(void)
{
	static const char *heads[] = {
		"From: a@b\nSubject: big\n\n",
		"No headers, body starts at once\n",
	};
	size_t body = 10 * 1024 * 1024;
	char *blk = malloc(64 * 1024);
	struct result r;

	memset(blk, 'z', 64 * 1024);
	for (size_t i = 0; i < 2; i++) {
		FILE *f = tmpfile();
		int fd = fileno(f);
		char *buf;
		size_t len, hl, n = strlen(heads[i]);
		int rc;

		fputs(heads[i], f);
		for (size_t off = 0; off < body; off += 64 * 1024)
			fwrite(blk, 1, 64 * 1024, f);
		fflush(f);
		lseek(fd, 0, SEEK_SET);
		result_clear(&r);
		rc = msg_read_head(fd, &buf, &len, &hl, &r);
		ok(rc == 0 && hl == (i ? 0 : n) && len >= hl && len <= 128 * 1024 &&
		   (off_t)len == lseek(fd, 0, SEEK_CUR),
		   "stops early [%zu]: read %zu of %zu bytes", i, len, body + n);
		free(buf);
		fclose(f);
	}
	free(blk);
}

/* maildomain: local names in address fields qualified in place. */
static const struct {
	const char *in, *want;
} qcases[] = {
	{ "From: root (Cron Daemon)\nTo: root\nSubject: x\n\n",
	  "From: root@example.net (Cron Daemon)\nTo: root@example.net\nSubject: x\n\n" },
	{ "From: a@example.org\r\nTo: A <a@example.org>\r\n\r\n",
	  "From: a@example.org\r\nTo: A <a@example.org>\r\n\r\n" },
	{ "Reply-To: Ops <ops>\nSender: root@localhost\nCc: bob, c@example.org\n"
	  "Subject: root\nX-Other: root\n\n",
	  "Reply-To: Ops <ops@example.net>\nSender: root@example.net\n"
	  "Cc: bob@example.net, c@example.org\nSubject: root\nX-Other: root\n\n" },
	{ "Resent-To: root\nResent-From: root@vm\nTo: x@example.org\n\n",
	  "Resent-To: root@example.net\nResent-From: root@example.net\nTo: x@example.org\n\n" },
	{ "To: bad <<\n\n", "To: bad <<\n\n" },
	{ "To: aaaaaaaaaaaa, bbbbbbbbbbbb, cccccccccccc, dddddddddddd, eeeeeeeeeeee\n\n",
	  "To: aaaaaaaaaaaa@example.net, bbbbbbbbbbbb@example.net,\n"
	  " cccccccccccc@example.net, dddddddddddd@example.net, eeeeeeeeeeee@example.net\n\n" },
	{ "To: aaaaaaaaaaaa, bbbbbbbbbbbb, cccccccccccc, dddddddddddd, eeeeeeeeeeee, f\n\n",
	  "To: aaaaaaaaaaaa@example.net, bbbbbbbbbbbb@example.net,\n"
	  " cccccccccccc@example.net, dddddddddddd@example.net, eeeeeeeeeeee@example.net,\n"
	  " f@example.net\n\n" },
	{ "To: \"x, y\" <root>, \"a b\" (c, d) <bob>\n\n",
	  "To: \"x, y\" <root@example.net>, \"a b\" (c, d) <bob@example.net>\n\n" },
};

static void test_qualify(void)
{
	static const char *const locals[] = { "localhost", "vm", NULL };

	for (size_t i = 0; i < sizeof qcases / sizeof qcases[0]; i++) {
		struct msg_opts o = { .set_date = HDR_OFF, .set_msgid = HDR_OFF,
				      .set_from = HDR_OFF, .set_to = HDR_OFF,
				      .maildomain = "example.net", .local_domains = locals };
		struct msg_head h;

		is_int(process(qcases[i].in, &o, &h), 0, "qualify %zu: processed", i);
		is_str(h.text ? h.text : "", qcases[i].want, "qualify %zu", i);
		msg_head_free(&h);
	}
}

int main(void)
{
	test_qualify();
	signal(SIGPIPE, SIG_IGN);
	setenv("TZ", "UTC0", 1);
	tzset();
	test_head_end();
	test_head_end_long();
	test_process();
	test_msgid();
	test_long_name();
	test_flags();
	test_date();
	test_read_small();
	test_read_limits();
	test_read_stops();
	return tap_done();
}
