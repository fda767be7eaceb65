/* drop.c - the drop file head (see drop.h): a pure parser and its writer. */
#include "config.h"
#include "drop.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { F_RCPT, F_EXTRACT, F_FROM, F_NAME, F_NOTIFY, F_RET, F_ENVID, F__COUNT };

static const char *const fields[F__COUNT] = {
	"rcpt", "extract", "from", "name", "notify", "ret", "envid",
};

static char **slot(struct drop_head *h, int f)
{
	switch (f) {
	case F_FROM: return &h->from;
	case F_NAME: return &h->name;
	case F_NOTIFY: return &h->notify;
	case F_RET: return &h->ret;
	case F_ENVID: return &h->envid;
	}
	return NULL;
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -1;
}

/* Values are text: no control bytes at all (tab included), any other byte. */
static int clean(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int add_rcpt(struct drop_head *h, char *v)
{
	char **nv = realloc(h->rcpt, (h->nrcpt + 1) * sizeof *nv);

	if (!nv)
		return -1;
	h->rcpt = nv;
	h->rcpt[h->nrcpt++] = v;
	return 0;
}

/* One "key value" line (without its LF). */
static int field(struct drop_head *h, const char *s, size_t n, char *err, size_t cap)
{
	const char *sp = memchr(s, ' ', n);
	size_t klen = sp ? (size_t)(sp - s) : n;
	char *v, **dst;
	int f;

	for (f = 0; f < F__COUNT; f++)
		if (strlen(fields[f]) == klen && memcmp(s, fields[f], klen) == 0)
			break;
	if (f == F__COUNT || !sp)
		return fail(err, cap, "bad head line '%.*s'", (int)(klen < 40 ? klen : 40), s);
	if (!(v = strndup(sp + 1, n - klen - 1)))
		return fail(err, cap, "out of memory");
	if (f == F_EXTRACT) {
		int ok = strcmp(v, "1") == 0 && !h->extract;
		free(v);
		h->extract = 1;
		return ok ? 0 : fail(err, cap, "bad or repeated extract line");
	}
	if (f == F_RCPT) {
		if (h->nrcpt >= DROP_RCPT_MAX || add_rcpt(h, v) < 0) {
			free(v);
			return fail(err, cap, "too many recipients");
		}
		return 0;
	}
	dst = slot(h, f);
	if (*dst) {
		free(v);
		return fail(err, cap, "repeated %s line", fields[f]);
	}
	*dst = v;
	return 0;
}

static int parse_lines(const char *buf, size_t end, struct drop_head *h, char *err,
		       size_t cap)
{
	size_t pos = 0, n;
	const char *lf;

	for (int first = 1; pos < end; first = 0, pos += n + 1) {
		lf = memchr(buf + pos, '\n', end - pos);
		n = (size_t)(lf - (buf + pos));
		if (n > DROP_LINE_MAX)
			return fail(err, cap, "head line too long");
		if (!clean(buf + pos, n))
			return fail(err, cap, "control byte in the head");
		if (first) {
			if (n != strlen(DROP_MAGIC) || memcmp(buf, DROP_MAGIC, n) != 0)
				return fail(err, cap, "not a drop file");
		} else if (field(h, buf + pos, n, err, cap) < 0) {
			return -1;
		}
	}
	return 0;
}

int drop_parse(const char *buf, size_t len, struct drop_head *h, char *err,
	       size_t errcap)
{
	const char *end = NULL;
	size_t lim = len < DROP_HEAD_MAX ? len : DROP_HEAD_MAX;

	memset(h, 0, sizeof *h);
	err[0] = '\0';
	/* the head ends at the first "\n\n" */
	for (size_t i = 0; i + 1 < lim; i++)
		if (buf[i] == '\n' && buf[i + 1] == '\n') {
			end = buf + i + 1;
			break;
		}
	if (!end) {
		if (len < DROP_HEAD_MAX)
			return 1;
		return fail(err, errcap, "head larger than %d bytes", DROP_HEAD_MAX);
	}
	if (parse_lines(buf, (size_t)(end - buf), h, err, errcap) < 0) {
		drop_head_free(h);
		return -1;
	}
	h->len = (size_t)(end - buf) + 1;
	return 0;
}

static int put(char **out, size_t *len, size_t *cap, const char *k, const char *v)
{
	size_t need = strlen(k) + 1 + strlen(v) + 1;

	if (!clean(v, strlen(v)) || strlen(v) > DROP_LINE_MAX - 16)
		return -1;
	if (*len + need + 2 > *cap) {
		size_t nc = (*len + need + 2) * 2;
		char *n = realloc(*out, nc);
		if (!n)
			return -1;
		*out = n;
		*cap = nc;
	}
	*len += (size_t)sprintf(*out + *len, "%s%s%s\n", k, *k ? " " : "", v);
	return 0;
}

char *drop_format(const struct drop_head *h, size_t *len)
{
	const char *vals[F__COUNT] = { NULL, h->extract ? "1" : NULL, h->from,
				       h->name, h->notify, h->ret, h->envid };
	char *out = NULL;
	size_t cap = 0;
	int rc;

	*len = 0;
	rc = put(&out, len, &cap, "", DROP_MAGIC);
	for (size_t i = 0; rc == 0 && i < h->nrcpt; i++)
		rc = put(&out, len, &cap, "rcpt", h->rcpt[i]);
	for (int f = F_EXTRACT; rc == 0 && f < F__COUNT; f++)
		if (vals[f])
			rc = put(&out, len, &cap, fields[f], vals[f]);
	if (rc < 0 || h->nrcpt > DROP_RCPT_MAX || *len + 1 >= DROP_HEAD_MAX) {
		free(out);
		return NULL;
	}
	out[(*len)++] = '\n';
	out[*len] = '\0';
	return out;
}

void drop_head_free(struct drop_head *h)
{
	for (size_t i = 0; i < h->nrcpt; i++)
		free(h->rcpt[i]);
	free(h->rcpt);
	free(h->from);
	free(h->name);
	free(h->notify);
	free(h->ret);
	free(h->envid);
	memset(h, 0, sizeof *h);
}

int drop_ready_name(const char *name, char id[DROP_ID_MAX])
{
	size_t n;

	if (strncmp(name, "m.", 2) != 0)
		return 0;
	name += 2;
	n = strlen(name);
	if (n == 0 || n >= DROP_ID_MAX || name[0] == '.' ||
	    strspn(name, "0123456789abcdefT.") != n)
		return 0;
	memcpy(id, name, n + 1);
	return 1;
}
