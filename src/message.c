/* message.c - the header block: find its end, parse it, rewrite it.
 *
 * Kept header fields are copied byte for byte (never re-folded or
 * re-encoded), so a DKIM signature made before submission still verifies,
 * except that with maildomain an address field naming a local user ("root",
 * "root@localhost") gets the domain in place: mail from cron is not signed,
 * and providers refuse unqualified addresses;
 * unfolding happens only inside the address parser.  Added fields go at the
 * end of the block with "\n" line endings; the body filter turns every line
 * ending into CRLF afterwards.
 */
#include "config.h"
#include "message.h"
#include "sbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/random.h>

#define READ_BLOCK (64 * 1024)

/* RFC 5322 section 2.1.1: a line holds at most 998 bytes, so a longer run of
 * field-name characters is not a field name; deciding early keeps a huge
 * colon-less first body line from being read as a header block. */
#define NAME_MAX_LEN 998

/* msg_head_end may answer "need more" only while the undecided point is
 * within a field name plus WSP (2 * 998 bytes) of the end of the buffer, or
 * inside a line already known to be a header; so a buffer this far past
 * MSG_HEAD_MAX that still has no answer holds an oversized block. */
#define HEAD_SLACK 4096

/* -F names are cut here (on a UTF-8 boundary) so a generated From stays far
 * below the 998-byte line limit. */
#define FULLNAME_MAX 256

/* ------------------------------------------------------------------ */
/* lines */

static int is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* RFC 5322 section 2.2: field-name is printable US-ASCII except ':';
 * section 4.5 (obs-optional) allows WSP before the colon.  Returns 1 for a
 * header line (*colon: offset just past ':'), 0 for not one, -1 when the
 * bytes so far cannot tell (only when !eof). */
static int header_line(const char *p, size_t n, int eof, size_t *colon)
{
	size_t i = 0, j;

	while (i < n && p[i] > 32 && p[i] < 127 && p[i] != ':')
		if (++i > NAME_MAX_LEN)
			return 0;
	if (i == 0)
		return 0;
	for (j = i; j < n && is_wsp(p[j]); j++)
		if (j - i > NAME_MAX_LEN)
			return 0;
	if (j == n)
		return eof ? 0 : -1;
	if (p[j] != ':')
		return 0;
	*colon = j + 1;
	return 1;
}

/* Offset of the next line after the one at p; LF, CRLF and bare CR all end
 * a line.  *eol gets the offset of the terminator.  -1: need more input. */
static long line_next(const char *p, size_t n, int eof, size_t *eol)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			*eol = i;
			return (long)i + 1;
		}
		if (p[i] != '\r')
			continue;
		*eol = i;
		if (i + 1 < n)
			return (long)i + (p[i + 1] == '\n' ? 2 : 1);
		return eof ? (long)i + 1 : -1;  /* a LF may still follow */
	}
	*eol = n;
	return eof ? (long)n : -1;
}

long msg_head_end(const char *buf, size_t len, int eof)
{
	size_t pos = 0, colon, eol;
	long next;

	for (;;) {
		const char *p = buf + pos;
		size_t n = len - pos;

		if (n == 0)
			return eof ? (long)pos : -1;
		if (p[0] == '\n' || p[0] == '\r') {   /* the blank separator */
			next = line_next(p, n, eof, &eol);
			return next < 0 ? -1 : (long)pos + next;
		}
		if (is_wsp(p[0])) {
			if (pos == 0)   /* a continuation of nothing: body */
				return 0;
		} else {
			/* An mbox "From " line fails here too: no colon. */
			int h = header_line(p, n, eof, &colon);

			if (h <= 0)
				return h < 0 ? -1 : (long)pos;
		}
		next = line_next(p, n, eof, &eol);
		if (next < 0)
			return -1;
		pos += (size_t)next;
	}
}

/* ------------------------------------------------------------------ */
/* fields */

enum fkind { F_HEADER, F_OTHER, F_SEP };

struct field {
	enum fkind kind;
	size_t start, end;      /* raw bytes, line endings included */
	size_t name_len;        /* without WSP before ':' */
	size_t vstart, vend;    /* value: after ':' to the last line ending */
};

/* The field at pos with its continuation lines.  The block was cut by
 * msg_head_end, but anything is handled: a line that is not a header is
 * kept as an opaque F_OTHER line, and a blank line ends the fields. */
static int next_field(const char *in, size_t len, size_t pos, struct field *f)
{
	const char *p = in + pos;
	size_t colon = 0, eol;

	if (pos >= len)
		return 0;
	memset(f, 0, sizeof *f);
	f->start = pos;
	if (p[0] == '\n' || p[0] == '\r') {
		f->kind = F_SEP;
		f->end = len;
		return 1;
	}
	f->kind = F_OTHER;
	if (!is_wsp(p[0]) && header_line(p, len - pos, 1, &colon) == 1) {
		f->kind = F_HEADER;
		while (p[f->name_len] > 32 && p[f->name_len] != ':')
			f->name_len++;   /* header_line saw ':' after the name */
		f->vstart = pos + colon;
	}
	f->end = pos + (size_t)line_next(p, len - pos, 1, &eol);
	f->vend = pos + eol;
	while (f->kind == F_HEADER && f->end < len && is_wsp(in[f->end])) {
		size_t at = f->end;

		f->end = at + (size_t)line_next(in + at, len - at, 1, &eol);
		f->vend = at + eol;
	}
	return 1;
}

static int name_is(const char *in, const struct field *f, const char *name)
{
	size_t n = strlen(name);

	return f->kind == F_HEADER && f->name_len == n &&
	       strncasecmp(in + f->start, name, n) == 0;
}

static int is_resent(const char *in, const struct field *f)
{
	return f->kind == F_HEADER && f->name_len > 7 &&
	       strncasecmp(in + f->start, "Resent-", 7) == 0;
}

static int is_dest(const char *in, const struct field *f, const char *prefix)
{
	static const char *const dest[] = { "To", "Cc", "Bcc" };
	char name[16];

	for (size_t i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "%s%s", prefix, dest[i]);
		if (name_is(in, f, name))
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* what the block holds */

struct scan {
	int date, msgid, from, to_cc;
	int resent_dest;        /* some Resent-To/Cc/Bcc exists */
	size_t rs_lo, rs_hi;    /* the topmost contiguous Resent- block */
	struct field from_f, rfrom_f;
	int have_from, have_rfrom;
};

/* RFC 5322 section 3.6.6: each resend prepends a block of Resent- fields,
 * so the topmost contiguous run is the latest one, the one that -t obeys. */
static void scan_block(const char *in, size_t len, struct scan *sc)
{
	struct field f;
	int in_rs = 0, rs_done = 0, seen_date = 0, seen_from = 0;

	memset(sc, 0, sizeof *sc);
	for (size_t pos = 0; next_field(in, len, pos, &f) && f.kind != F_SEP;
	     pos = f.end) {
		int rs = is_resent(in, &f);
		int rdate = rs && name_is(in, &f, "Resent-Date");
		int rfrom = rs && name_is(in, &f, "Resent-From");

		/* RFC 5322 3.6.6: a block has one Resent-Date and one Resent-From;
		 * a second one starts the next (older) block. */
		if (in_rs && ((rdate && seen_date) || (rfrom && seen_from))) {
			in_rs = 0;
			rs_done = 1;
		}
		seen_date |= rdate;
		seen_from |= rfrom;
		if (rs && !rs_done && !in_rs) {
			in_rs = 1;
			sc->rs_lo = f.start;
		}
		if (in_rs && !rs) {
			in_rs = 0;
			rs_done = 1;
		}
		if (in_rs)
			sc->rs_hi = f.end;
		if (in_rs && !sc->have_rfrom && name_is(in, &f, "Resent-From")) {
			sc->rfrom_f = f;
			sc->have_rfrom = 1;
		}
		if (!sc->have_from && name_is(in, &f, "From")) {
			sc->from_f = f;
			sc->have_from = 1;
		}
		sc->date |= name_is(in, &f, "Date");
		sc->msgid |= name_is(in, &f, "Message-ID");
		sc->to_cc |= name_is(in, &f, "To") || name_is(in, &f, "Cc");
		sc->resent_dest |= is_dest(in, &f, "Resent-");
	}
	sc->from = sc->have_from;
}

/* ------------------------------------------------------------------ */
/* output buffer */

/* A kept line may end in a bare CR.  Appending a chunk that starts with LF
 * right after it would fuse the two into one CRLF and swallow a line end
 * (the blank separator, and with it the boundary between header and body),
 * so the CR is first completed to CRLF: the same line end once the body
 * filter has normalised it. */
static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (n && s[0] == '\n' && b->len && b->s[b->len - 1] == '\r')
		sbuf_add(b, "\n", 1);
	sbuf_add(b, s, n);
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Every added line starts on a fresh line: a kept block may end without a
 * line ending when the input ended inside its last header. */
static void sb_end_line(struct sbuf *b)
{
	if (b->len && b->s[b->len - 1] != '\n' && b->s[b->len - 1] != '\r')
		sbuf_add(b, "\n", 1);
}

/* ------------------------------------------------------------------ */
/* recipients (-t) and the From mailbox */

static int collect(const char *in, const struct field *f, struct msg_head *out,
		   struct result *r)
{
	struct addrlist l = { 0 };
	char err[256];
	int rc = 0;

	if (addr_parse_list(in + f->vstart, f->vend - f->vstart, &l, err,
			    sizeof err) < 0) {
		if (errno == ENOMEM)
			return result_fail(r, EX_OSERR, "out of memory");
		return result_fail(r, EX_DATAERR, "%.*s: header: %s",
				   (int)f->name_len, in + f->start, err);
	}
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		const struct addr *a = &l.v[i];

		if (a->mailbox[0] == '\0')
			rc = result_fail(r, EX_DATAERR, "%.*s: header: <> is not "
					 "a recipient", (int)f->name_len,
					 in + f->start);
		else if (!addrlist_contains(&out->rcpts, a->mailbox) &&
			 addrlist_add(&out->rcpts, a->mailbox, a->display) < 0)
			rc = result_fail(r, EX_OSERR, "out of memory");
	}
	addrlist_free(&l);
	return rc;
}

/* Informational: an unparsable From leaves from_mailbox NULL. */
static int first_mailbox(const char *in, const struct field *f, char **out)
{
	struct addrlist l = { 0 };
	int rc = 0;

	if (addr_parse_list(in + f->vstart, f->vend - f->vstart, &l, NULL, 0) < 0)
		return errno == ENOMEM ? -1 : 0;
	if (l.n && !(*out = strdup(l.v[0].mailbox)))
		rc = -1;
	addrlist_free(&l);
	return rc;
}

/* ------------------------------------------------------------------ */
/* generated fields */

static const char *const days[7] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char *const months[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* RFC 5322 section 3.3, with English names whatever the locale says. */
void msg_format_date(time_t t, char *out, size_t cap)
{
	struct tm tm;
	long off, aoff;

	if (!localtime_r(&t, &tm) && !gmtime_r(&t, &tm)) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	off = tm.tm_gmtoff / 60;
	aoff = off < 0 ? -off : off;
	snprintf(out, cap, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
		 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 off < 0 ? '-' : '+', aoff / 60 % 100, aoff % 60);
}

/* A Message-ID right side must be a plain ASCII dot-atom or literal, or the
 * header would be malformed (RFC 5322 section 3.6.4). */
static int msgid_domain_ok(const char *d)
{
	size_t n;

	if (!d || !*d || (n = strlen(d)) > 253)
		return 0;
	if (d[0] == '[') {
		for (size_t i = 1; i + 1 < n; i++)
			if (d[i] <= ' ' || (unsigned char)d[i] >= 0x7f ||
			    strchr("[]\\", d[i]))
				return 0;
		return n > 2 && d[n - 1] == ']';
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)d[i] >= 0x7f || d[i] <= ' ' ||
		    strchr("()<>[]:;@\\,\"", d[i]))
			return 0;
	return d[0] != '.' && d[n - 1] != '.' && !strstr(d, "..");
}

static const char *msgid_domain(const struct msg_opts *o)
{
	const char *d = o->env_from ? addr_domain(o->env_from) : NULL;

	if (msgid_domain_ok(d))
		return d;
	if (msgid_domain_ok(o->domain))
		return o->domain;
	return "localhost";
}

static int add_msgid(struct sbuf *b, const struct msg_opts *o,
		     struct result *r)
{
	unsigned char rnd[8];
	char hex[2 * sizeof rnd + 1];
	struct tm tm;
	time_t t = o->now;
	ssize_t n;

	do
		n = getrandom(rnd, sizeof rnd, 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof rnd)
		return result_fail(r, EX_OSERR, "getrandom: %s",
				   n < 0 ? strerror(errno) : "short read");
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	if (!gmtime_r(&t, &tm)) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	sb_printf(b, "Message-ID: <%04d%02d%02d%02d%02d%02d.%s@%s>\n",
		  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		  tm.tm_min, tm.tm_sec, hex, msgid_domain(o));
	return 0;
}

static size_t utf8_cut(const char *s, size_t n)
{
	while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/* -F comes from the command line: CR, LF and other controls would start a
 * new header line, so they become spaces; runs of spaces collapse and the
 * name is trimmed.  Never fails. */
static size_t clean_name(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	if (!in)
		in = "";
	for (; *in && n + 1 < cap; in++) {
		unsigned char c = (unsigned char)*in;

		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (c == ' ' && (n == 0 || out[n - 1] == ' '))
			continue;
		out[n++] = (char)c;
	}
	if (((unsigned char)*in & 0xc0) == 0x80) {   /* cut inside a character */
		while (n && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
			n--;
		if (n)
			n--;
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	return n;
}

static void base64(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

/* RFC 2047 section 2: an encoded-word is at most 75 characters, so at most
 * 45 bytes (60 base64 characters) go in each; section 5 forbids splitting
 * a character between words.  Words are separated by folding whitespace. */
static void put_encoded(struct sbuf *b, const char *name, size_t n)
{
	char enc[64];

	for (size_t i = 0; i < n;) {
		size_t k = n - i > 45 ? utf8_cut(name + i, 45) : n - i;

		if (k == 0)
			k = n - i > 45 ? 45 : n - i;
		base64((const unsigned char *)name + i, k, enc);
		sb_printf(b, "%s=?UTF-8?B?%s?=", i ? "\n " : "", enc);
		i += k;
	}
}

/* RFC 5322 section 3.2.4: a phrase with specials must be a quoted-string. */
static void put_quoted(struct sbuf *b, const char *name)
{
	sb_add(b, "\"", 1);
	for (; *name; name++) {
		if (*name == '"' || *name == '\\')
			sb_add(b, "\\", 1);
		sb_add(b, name, 1);
	}
	sb_add(b, "\"", 1);
}

static void add_from(struct sbuf *b, const struct msg_opts *o)
{
	char name[FULLNAME_MAX + 1];
	size_t n = clean_name(o->full_name, name, sizeof name);
	int eight = 0, special = 0;

	for (size_t i = 0; i < n; i++) {
		eight |= (unsigned char)name[i] >= 0x80;
		special |= strchr("()<>[]:;@\\,.\"", name[i]) != NULL;
	}
	sb_add(b, "From: ", 6);
	if (n == 0) {
		sb_printf(b, "%s\n", o->env_from);
		return;
	}
	if (eight)
		put_encoded(b, name, n);
	else if (special)
		put_quoted(b, name);
	else
		sb_add(b, name, n);
	sb_printf(b, " <%s>\n", o->env_from);
}

/* A From can be generated only from a sendable, non-null envelope sender. */
static int can_make_from(const struct msg_opts *o)
{
	return o->env_from && *o->env_from && addr_valid_mailbox(o->env_from);
}

static int add_missing(struct sbuf *b, const struct msg_opts *o,
		       const struct scan *sc, struct result *r)
{
	char date[64];

	sb_end_line(b);
	if (o->set_date != HDR_OFF && !sc->date) {
		msg_format_date(o->now, date, sizeof date);
		sb_printf(b, "Date: %s\n", date);
	}
	if (o->set_msgid != HDR_OFF && !sc->msgid && add_msgid(b, o, r) < 0)
		return -1;
	if (can_make_from(o) && (o->set_from == HDR_ON ||
				 (o->set_from == HDR_AUTO && !sc->from)))
		add_from(b, o);
	/* Bcc-only mail still needs a destination field for many MUAs;
	 * RFC 5322 section 3.6.3 names this very form. */
	if (o->set_to != HDR_OFF && !sc->to_cc)
		sb_add(b, "To: undisclosed-recipients:;\n", 29);
	return 0;
}

/* ------------------------------------------------------------------ */
/* the rewrite */

static int wanted_rcpt(const char *in, const struct field *f,
		       const struct scan *sc)
{
	if (!sc->resent_dest)
		return is_dest(in, f, "");
	return f->start >= sc->rs_lo && f->end <= sc->rs_hi &&
	       is_dest(in, f, "Resent-");
}

/* Address fields whose local names get maildomain (RFC 5322 3.6.2, 3.6.3,
 * 3.6.6).  Bcc is dropped anyway. */
static int is_addr_field(const char *in, const struct field *f)
{
	static const char *const names[] = { "From", "Sender", "Reply-To", "To", "Cc" };
	char name[24];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(name, sizeof name, "Resent-%s", names[i]);
		if (name_is(in, f, names[i]) || (i != 2 && name_is(in, f, name)))
			return 1;
	}
	return 0;
}

/* RFC 5322 2.1.1: lines SHOULD stay within 78 characters.  A line the rewrite
 * pushed past that is folded at the last ", " outside quoted strings and
 * comments that keeps it short enough (the space stays as the fold's WSP). */
static void put_folded(struct sbuf *b, const char *v, size_t n, size_t col)
{
	size_t line = 0, cut = 0;
	int quoted = 0, depth = 0;

	for (size_t i = 0; i < n; i++) {
		char c = v[i];

		if (c == '\n') {
			col = 0;
			cut = 0;
		} else if (c == '\\' && (quoted || depth) && i + 1 < n) {
			i++;
			col++;
		} else if (c == '"' && !depth) {
			quoted = !quoted;
		} else if (c == '(' && !quoted) {
			depth++;
		} else if (c == ')' && !quoted && depth) {
			depth--;
		} else if (c == ' ' && !quoted && !depth && i && v[i - 1] == ',') {
			cut = i;
		}
		if (++col > 78 && cut > line) {
			sb_add(b, v + line, cut - line);
			sb_add(b, "\n", 1);
			col = i - cut + 1;
			line = cut;
			cut = 0;
		}
	}
	sb_add(b, v + line, n - line);
}

/* Copies field f, qualifying its local names when it is an address field.
 * An unparsable value is copied as it is (-t reports it when it matters). */
static int copy_field(const char *in, const struct field *f, const struct msg_opts *o,
		      struct sbuf *b, struct result *r)
{
	char *v = NULL;
	size_t n = 0;
	int rc = 0;

	if (o->maildomain && is_addr_field(in, f))
		rc = addr_qualify_list(in + f->vstart, f->vend - f->vstart, o->maildomain,
				       o->local_domains, &v, &n);
	if (rc < 0)
		return result_fail(r, EX_OSERR, "out of memory");
	if (rc == 0) {
		sb_add(b, in + f->start, f->end - f->start);
		return 0;
	}
	sb_add(b, in + f->start, f->vstart - f->start);
	put_folded(b, v, n, f->vstart - f->start);
	sb_add(b, in + f->vend, f->end - f->vend);
	free(v);
	return 0;
}

/* Copies the kept fields, collects -t recipients.  Returns the offset of
 * the blank separator line, len when there is none, or -1. */
static long copy_fields(const char *in, size_t len, const struct msg_opts *o,
			const struct scan *sc, struct sbuf *b,
			struct msg_head *out, struct result *r)
{
	int replace_from = o->set_from == HDR_ON && can_make_from(o);
	struct field f;
	size_t pos;

	for (pos = 0; next_field(in, len, pos, &f); pos = f.end) {
		if (f.kind == F_SEP)
			return (long)f.start;
		if (o->extract && wanted_rcpt(in, &f, sc) &&
		    collect(in, &f, out, r) < 0)
			return -1;
		if (name_is(in, &f, "Bcc") || name_is(in, &f, "Resent-Bcc") ||
		    (replace_from && name_is(in, &f, "From")))
			continue;
		if (copy_field(in, &f, o, b, r) < 0)
			return -1;
	}
	return (long)len;
}

static int set_from_mailbox(const char *in, const struct scan *sc,
			    struct msg_head *out, struct result *r)
{
	const struct field *f = sc->have_rfrom ? &sc->rfrom_f :
				sc->have_from ? &sc->from_f : NULL;

	if (f && first_mailbox(in, f, &out->from_mailbox) < 0)
		return result_fail(r, EX_OSERR, "out of memory");
	return 0;
}

int msg_head_process(const char *in, size_t len, const struct msg_opts *o,
		     struct msg_head *out, struct result *r)
{
	struct sbuf b = { 0 };
	struct scan sc;
	long sep;

	memset(out, 0, sizeof *out);
	scan_block(in, len, &sc);
	sep = copy_fields(in, len, o, &sc, &b, out, r);
	if (sep < 0 || add_missing(&b, o, &sc, r) < 0 ||
	    set_from_mailbox(in, &sc, out, r) < 0)
		goto fail;
	/* Exactly one blank separator: the input's own bytes, or "\n". */
	if ((size_t)sep < len)
		sb_add(&b, in + sep, len - (size_t)sep);
	else
		sb_add(&b, "\n", 1);
	if (b.nomem) {
		result_fail(r, EX_OSERR, "out of memory");
		goto fail;
	}
	out->len = b.len;
	out->text = sbuf_take(&b);   /* NUL-terminated for callers that print it */
	if (!out->text) {
		result_fail(r, EX_OSERR, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < out->len; i++)
		out->has_8bit |= (unsigned char)out->text[i] >= 0x80;
	return 0;
fail:
	sbuf_free(&b);
	msg_head_free(out);
	return -1;
}

void msg_head_free(struct msg_head *h)
{
	free(h->text);
	free(h->from_mailbox);
	addrlist_free(&h->rcpts);
	memset(h, 0, sizeof *h);
}

/* ------------------------------------------------------------------ */
/* reading */

static int grow(char **buf, size_t *cap, size_t want)
{
	size_t ncap = *cap ? *cap : READ_BLOCK;
	char *p;

	while (ncap < want)
		ncap *= 2;
	if (ncap == *cap)
		return 0;
	if (!(p = realloc(*buf, ncap)))
		return -1;
	*buf = p;
	*cap = ncap;
	return 0;
}

int msg_read_head(int fd, char **bufp, size_t *lenp, size_t *headlen,
		  struct result *r)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int eof = 0;
	long end;

	*bufp = NULL;
	*lenp = *headlen = 0;
	while ((end = msg_head_end(buf ? buf : "", len, eof)) < 0) {
		ssize_t n;

		if (len > MSG_HEAD_MAX + HEAD_SLACK)
			goto too_big;
		if (grow(&buf, &cap, len + READ_BLOCK) < 0) {
			result_fail(r, EX_OSERR, "out of memory");
			goto fail;
		}
		do
			n = read(fd, buf + len, READ_BLOCK);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			result_fail(r, EX_IOERR, "reading the message: %s",
				    strerror(errno));
			goto fail;
		}
		eof = n == 0;
		len += (size_t)n;
	}
	if ((size_t)end > MSG_HEAD_MAX)
		goto too_big;
	*bufp = buf;
	*lenp = len;
	*headlen = (size_t)end;
	return 0;
too_big:
	result_fail(r, EX_DATAERR, "header block exceeds 1 MiB");
fail:
	free(buf);
	return -1;
}
