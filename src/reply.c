/* reply.c - SMTP reply parser and EHLO capability parser (see reply.h). */
#include "config.h"
#include "reply.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void reply_init(struct reply *rp)
{
	rp->code = 0;
	rp->enh[0] = '\0';
	rp->nlines = 0;
	rp->textlen = 0;
	rp->text[0] = '\0';
}

static int digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Keep as much text as fits; a long reply is still valid, only shortened. */
static void append_text(struct reply *rp, const char *s, size_t n)
{
	size_t room;

	if (rp->nlines > 0 && rp->textlen + 1 < sizeof rp->text)
		rp->text[rp->textlen++] = '\n';
	room = sizeof rp->text - 1 - rp->textlen;
	if (n > room)
		n = room;
	memcpy(rp->text + rp->textlen, s, n);
	rp->textlen += n;
	rp->text[rp->textlen] = '\0';
}

enum reply_status reply_feed(struct reply *rp, const char *line, size_t len,
			     const char **why)
{
	int code;
	char sep;

	if (len > REPLY_LINE_MAX)
		return *why = "reply line too long", REPLY_BAD;
	if (len < 3 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]))
		return *why = "reply does not start with a 3-digit code", REPLY_BAD;
	if (line[0] < '2' || line[0] > '5')
		return *why = "reply code outside 2xx-5xx", REPLY_BAD;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	sep = len > 3 ? line[3] : ' ';
	if (sep != ' ' && sep != '-')
		return *why = "reply code not followed by space or '-'", REPLY_BAD;
	if (rp->nlines > 0 && code != rp->code)
		return *why = "multi-line reply changes its code", REPLY_BAD;
	if (rp->nlines >= REPLY_LINES_MAX)
		return *why = "too many reply lines", REPLY_BAD;

	rp->code = code;
	append_text(rp, line + (len > 3 ? 4 : 3), len > 3 ? len - 4 : 0);
	if (rp->nlines == 0 && len > 4)
		reply_parse_enh(line + 4, len - 4, code, rp->enh);
	rp->nlines++;
	return sep == '-' ? REPLY_MORE : REPLY_DONE;
}

/* RFC 3463: class.subject.detail where class matches the reply's first digit,
 * subject and detail are 1-3 digits. */
size_t reply_parse_enh(const char *text, size_t len, int code, char *enh)
{
	size_t i = 0, parts = 0, ndig;

	enh[0] = '\0';
	if (len < 5 || text[0] != '0' + code / 100 || text[1] != '.')
		return 0;
	if (text[0] != '2' && text[0] != '4' && text[0] != '5')
		return 0;
	i = 2;
	for (parts = 1; parts < 3; parts++) {
		for (ndig = 0; i < len && digit(text[i]) && ndig < 4; i++)
			ndig++;
		if (ndig == 0 || ndig > 3)
			return 0;
		if (parts == 1) {
			if (i >= len || text[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && text[i] != ' ')
		return 0;
	memcpy(enh, text, i);
	enh[i] = '\0';
	return i < len ? i + 1 : i;
}

static const struct {
	const char *kw;
	unsigned flag;
} cap_table[] = {
	{ "PIPELINING", CAP_PIPELINING },
	{ "SIZE", CAP_SIZE },
	{ "8BITMIME", CAP_8BITMIME },
	{ "STARTTLS", CAP_STARTTLS },
	{ "AUTH", CAP_AUTH },
	{ "CHUNKING", CAP_CHUNKING },
	{ "BINARYMIME", CAP_BINARYMIME },
	{ "SMTPUTF8", CAP_SMTPUTF8 },
	{ "DSN", CAP_DSN },
	{ "ENHANCEDSTATUSCODES", CAP_ENHANCEDSTATUSCODES },
	{ "BURL", CAP_BURL },
};

static void caps_add_auth(struct caps *c, const char *p, size_t n)
{
	size_t i = 0, have = strlen(c->auth);

	while (i < n) {
		while (i < n && p[i] == ' ')
			i++;
		size_t s = i;
		while (i < n && p[i] != ' ')
			i++;
		size_t wl = i - s;
		if (wl == 0 || have + wl + 2 > sizeof c->auth)
			continue;   /* cannot happen: the list fits in the reply text */
		if (have)
			c->auth[have++] = ' ';
		/* mechanism names are [A-Z0-9-_] (RFC 4422 3.1): nothing else,
		 * so the list is safe to print */
		for (size_t k = 0; k < wl; k++) {
			unsigned char ch = (unsigned char)toupper((unsigned char)p[s + k]);
			c->auth[have + k] = isalnum(ch) || ch == '-' || ch == '_' ? (char)ch : '?';
		}
		have += wl;
		c->auth[have] = '\0';
	}
}

static void caps_line(struct caps *c, const char *p, size_t n)
{
	size_t kw = 0;

	while (kw < n && p[kw] != ' ' && p[kw] != '=')
		kw++;
	for (size_t i = 0; i < sizeof cap_table / sizeof cap_table[0]; i++) {
		if (kw < n && p[kw] == '=')
			break;   /* "AUTH=..." legacy form, below */
		if (strlen(cap_table[i].kw) != kw ||
		    strncasecmp(p, cap_table[i].kw, kw) != 0)
			continue;
		c->flags |= cap_table[i].flag;
		const char *arg = p + kw + (kw < n);
		size_t alen = kw < n ? n - kw - 1 : 0;
		if (cap_table[i].flag == CAP_SIZE && alen > 0 && alen < 20) {
			char tmp[24];
			memcpy(tmp, arg, alen);
			tmp[alen] = '\0';
			c->size_max = strtoull(tmp, NULL, 10);
		} else if (cap_table[i].flag == CAP_AUTH) {
			caps_add_auth(c, arg, alen);
		}
	}
	/* Old servers announce "AUTH=LOGIN PLAIN" (pre-RFC 4954 syntax). */
	if (kw == 4 && kw < n && p[kw] == '=' && strncasecmp(p, "AUTH", 4) == 0) {
		c->flags |= CAP_AUTH;
		caps_add_auth(c, p + 5, n - 5);
	}
}

void caps_parse(struct caps *c, const struct reply *rp)
{
	const char *p = rp->text, *end = rp->text + rp->textlen;
	int first = 1;

	memset(c, 0, sizeof *c);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		if (!first)   /* the first line is the server's greeting text */
			caps_line(c, p, (size_t)(e - p));
		first = 0;
		p = nl ? nl + 1 : end;
	}
}
