/* result.c - struct result and the single SMTP reply -> sysexits table. */
#include "config.h"
#include "result.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const phase_names[PHASE__COUNT] = {
	[PHASE_NONE] = "",
	[PHASE_CONNECT] = "connect",
	[PHASE_GREETING] = "greeting",
	[PHASE_EHLO] = "EHLO",
	[PHASE_HELO] = "HELO",
	[PHASE_STARTTLS] = "STARTTLS",
	[PHASE_TLS] = "TLS handshake",
	[PHASE_AUTH] = "AUTH",
	[PHASE_MAIL] = "MAIL FROM",
	[PHASE_RCPT] = "RCPT TO",
	[PHASE_DATA] = "DATA",
	[PHASE_BDAT] = "BDAT",
	[PHASE_EOD] = "end of data",
	[PHASE_RSET] = "RSET",
	[PHASE_QUIT] = "QUIT",
};

/* SPEC section 3.  Special cases first, keyed by phase, reply code and
 * enhanced status; the first row that matches wins.  Then the reply class
 * decides: 4xx is temporary everywhere, 5xx is a permanent refusal.
 * code: an exact reply code, or 5 for any 5xx.  enh: NULL for any; else the
 * enhanced status must equal it, or start with it when it ends in '.'. */
static const struct {
	enum smtp_phase phase;
	int code;
	const char *enh;
	int exitcode;
} exit_table[] = {
	{ PHASE_RCPT, 550, NULL, EX_NOUSER },    /* mailbox unavailable */
	{ PHASE_RCPT, 551, NULL, EX_NOUSER },    /* user not local */
	{ PHASE_RCPT, 553, NULL, EX_NOUSER },    /* mailbox name not allowed */
	{ PHASE_RCPT, 530, NULL, EX_NOPERM },
	/* RFC 3463 X.1.x (addressing) and X.2.4 (mailing list expansion) say
	 * "no such recipient" whatever the basic code: OpenSMTPD answers an
	 * unknown recipient with 524 5.2.4.  X.1.7 and X.1.8 are about the
	 * sender's address (Postfix checks it at RCPT time), not the recipient. */
	{ PHASE_RCPT, 5, "5.1.7", EX_UNAVAILABLE },
	{ PHASE_RCPT, 5, "5.1.8", EX_UNAVAILABLE },
	{ PHASE_RCPT, 5, "5.1.", EX_NOUSER },
	{ PHASE_RCPT, 5, "5.2.4", EX_NOUSER },
	{ PHASE_AUTH, 530, NULL, EX_NOPERM },    /* RFC 4954: authentication required */
	{ PHASE_AUTH, 534, NULL, EX_NOPERM },    /* mechanism too weak */
	{ PHASE_AUTH, 535, NULL, EX_NOPERM },    /* credentials invalid */
	{ PHASE_AUTH, 538, NULL, EX_NOPERM },    /* encryption required */
	{ PHASE_MAIL, 530, NULL, EX_NOPERM },    /* relay wants AUTH first */
	{ PHASE_AUTH, 432, NULL, EX_TEMPFAIL },  /* password transition needed */
};

static int enh_matches(const char *want, const char *enh)
{
	size_t n;

	if (!want)
		return 1;
	if (!enh)
		return 0;
	n = strlen(want);
	return want[n - 1] == '.' ? strncmp(enh, want, n) == 0 : strcmp(enh, want) == 0;
}

static int code_matches(int want, int code)
{
	return want < 10 ? code / 100 == want : code == want;
}

int result_exit_for_reply(enum smtp_phase phase, int code, const char *enh)
{
	for (size_t i = 0; i < sizeof exit_table / sizeof exit_table[0]; i++)
		if (exit_table[i].phase == phase && code_matches(exit_table[i].code, code) &&
		    enh_matches(exit_table[i].enh, enh))
			return exit_table[i].exitcode;
	if (code >= 200 && code < 400)
		return EX_OK;
	if (code >= 400 && code < 500)
		return EX_TEMPFAIL;
	if (code >= 500 && code < 600)
		return EX_UNAVAILABLE;
	return EX_PROTOCOL;
}

static const struct {
	int code;
	const char *name;
} exit_names[] = {
	{ EX_OK, "EX_OK" }, { EX_USAGE, "EX_USAGE" }, { EX_DATAERR, "EX_DATAERR" },
	{ EX_NOINPUT, "EX_NOINPUT" }, { EX_NOUSER, "EX_NOUSER" },
	{ EX_NOHOST, "EX_NOHOST" }, { EX_UNAVAILABLE, "EX_UNAVAILABLE" },
	{ EX_SOFTWARE, "EX_SOFTWARE" }, { EX_OSERR, "EX_OSERR" },
	{ EX_OSFILE, "EX_OSFILE" }, { EX_CANTCREAT, "EX_CANTCREAT" },
	{ EX_IOERR, "EX_IOERR" }, { EX_TEMPFAIL, "EX_TEMPFAIL" },
	{ EX_PROTOCOL, "EX_PROTOCOL" }, { EX_NOPERM, "EX_NOPERM" },
	{ EX_CONFIG, "EX_CONFIG" },
};

const char *result_exit_name(int exitcode)
{
	for (size_t i = 0; i < sizeof exit_names / sizeof exit_names[0]; i++)
		if (exit_names[i].code == exitcode)
			return exit_names[i].name;
	return "EX_UNKNOWN";
}

const char *result_phase_name(enum smtp_phase phase)
{
	if ((int)phase < 0 || phase >= PHASE__COUNT)
		return "?";
	return phase_names[phase];
}

void result_clear(struct result *r)
{
	memset(r, 0, sizeof *r);
	r->exitcode = EX_OK;
}

/* Length of the valid UTF-8 sequence at p that is safe to print, or 0: RFC
 * 3629 forms only (no overlong forms, no surrogates, nothing past U+10FFFF),
 * and not a C1 control (U+0080..U+009F, which terminals may obey). */
static size_t utf8_printable(const unsigned char *p, size_t n)
{
	static const unsigned min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t k = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 :
		   p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
	unsigned cp;

	if (k == 0 || n < k)
		return 0;
	cp = p[0] & (0x7fu >> k);
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 0;
	return k;
}

/* Text from servers, files and the command line, made safe for a terminal
 * and a log: valid UTF-8 stays readable (a "-v" transcript shows the
 * SMTPUTF8 address that went on the wire), while C0 and C1 controls, DEL and
 * bytes that are not valid UTF-8 become "\xNN", so no escape sequence gets
 * through.  A unit is never cut: what does not fit is dropped whole. */
size_t result_sanitise(char *out, size_t cap, const char *in, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;

	if (cap == 0)
		return 0;
	for (size_t i = 0; i < len;) {
		size_t k = p[i] >= 0x80 ? utf8_printable(p + i, len - i) : 0;

		if (k) {
			if (o + k >= cap)
				break;
			memcpy(out + o, p + i, k);
			o += k;
			i += k;
		} else if (p[i] == '\n' || (p[i] >= 0x20 && p[i] < 0x7f)) {
			if (o + 1 >= cap)
				break;
			out[o++] = p[i] == '\n' ? ' ' : (char)p[i];  /* one line */
			i++;
		} else {
			if (o + 4 >= cap)
				break;
			snprintf(out + o, 5, "\\x%02x", p[i++]);
			o += 4;
		}
	}
	out[o] = '\0';
	return o;
}

void result_describe(const struct result *r, char *out, size_t cap)
{
	const char *ph = result_phase_name(r->phase);
	const char *sep = *ph ? ": " : "";

	if (r->code && r->arg[0])
		snprintf(out, cap, "%s:<%s>: %d %s", ph, r->arg, r->code, r->text);
	else if (r->code)
		snprintf(out, cap, "%s%s%d %s", ph, sep, r->code, r->text);
	else
		snprintf(out, cap, "%s%s%s", ph, sep, r->text);
}

int result_fail(struct result *r, int exitcode, const char *fmt, ...)
{
	va_list ap;

	r->exitcode = exitcode;
	r->code = 0;
	r->arg[0] = '\0';
	r->enh[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof r->text, fmt, ap);
	va_end(ap);
	/* Reasons quote addresses, capability lists, file contents: no control
	 * character from any of them may reach a terminal. */
	for (char *p = r->text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -1;
}

int result_reply(struct result *r, enum smtp_phase phase, int code,
		 const char *enh, const char *text)
{
	r->exitcode = result_exit_for_reply(phase, code, enh);
	/* Only called for a reply that is not the success the step needs: a
	 * 2xx/3xx there (354 to RCPT, 250 where 354 belongs) is out of protocol,
	 * never a success. */
	if (r->exitcode == EX_OK)
		r->exitcode = EX_PROTOCOL;
	r->phase = phase;
	r->code = code;
	r->arg[0] = '\0';
	snprintf(r->enh, sizeof r->enh, "%s", enh ? enh : "");
	result_sanitise(r->text, sizeof r->text, text ? text : "",
			text ? strlen(text) : 0);
	return -1;
}
