/* bsmtp.c - sendmail -bs: an SMTP submission session on standard input and
 * output (symfony/mailer and some MUAs speak it).  Each accepted message is
 * spooled to an unlinked temporary file and handed to submit(), and the
 * relay's verdict (or the queue's) becomes the reply to the final dot.
 * Strict limits: command lines of 1000 bytes, BSMTP_SIZE_MAX per message,
 * BSMTP_RCPT_MAX recipients.
 */
#include "config.h"
#include "address.h"
#include "bsdata.h"
#include "idn.h"
#include "log.h"
#include "modes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BSMTP_LINE_MAX 1000                  /* RFC 5321 4.5.3.1.6 text line */
#define BSMTP_SIZE_MAX (100ull * 1024 * 1024)
#define BSMTP_RCPT_MAX 1000
/* What the relay would be sent is checked here, so that the client hears
 * the refusal at once and not after DATA (issue 13). */
#define IDN_REFUSAL "the domain is not a valid internationalised name"

struct bsmtp {
	struct ctx *c;
	struct bs_reader in;
	int helo;
	char *from;                  /* NULL: no MAIL yet */
	char *rcpt[BSMTP_RCPT_MAX];
	size_t nrcpt;
	char host[256];
};

/* ---- output --------------------------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static void reply(struct bsmtp *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputs("\r\n", stdout);
	/* PIPELINING: replies to a group go out together, when the group is read */
	if (b->in.pos == b->in.len)
		fflush(stdout);
}

/* ---- transaction state -------------------------------------------------------------- */

static void reset(struct bsmtp *b)
{
	free(b->from);
	b->from = NULL;
	for (size_t i = 0; i < b->nrcpt; i++)
		free(b->rcpt[i]);
	b->nrcpt = 0;
}

/* "FROM:<addr> params" -> addr (malloc'd); NULL when malformed. */
static char *path_arg(const char *arg, const char *kw, const char **params)
{
	size_t kl = strlen(kw);
	const char *lt, *gt;
	char *a;

	if (strncasecmp(arg, kw, kl) != 0)
		return NULL;
	lt = arg + kl;
	while (*lt == ' ')
		lt++;
	gt = *lt == '<' ? strchr(lt, '>') : NULL;
	if (!gt)
		return NULL;
	a = strndup(lt + 1, (size_t)(gt - lt - 1));
	if (a && !addr_valid_mailbox(a)) {
		free(a);
		return NULL;
	}
	*params = gt + 1;
	return a;
}

static unsigned long long size_param(const char *params)
{
	const char *p = strcasestr(params, "SIZE=");

	return p ? strtoull(p + 5, NULL, 10) : 0;
}

static void cmd_mail(struct bsmtp *b, const char *arg)
{
	const char *params = "";
	char *from;

	if (!b->helo)
		{ reply(b, "503 5.5.1 Send EHLO first"); return; }
	if (b->from)
		{ reply(b, "503 5.5.1 Nested MAIL command"); return; }
	if (!(from = path_arg(arg, "FROM:", &params)))
		{ reply(b, "501 5.1.7 Bad sender address syntax"); return; }
	if (!idn_valid_envelope(from)) {
		free(from);
		reply(b, "553 5.1.7 Bad sender address: %s", IDN_REFUSAL);
		return;
	}
	if (size_param(params) > BSMTP_SIZE_MAX) {
		free(from);
		reply(b, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	b->from = from;
	reply(b, "250 2.1.0 Ok");
}

static void cmd_rcpt(struct bsmtp *b, const char *arg)
{
	const char *params = "";
	char *to;

	if (!b->from)
		{ reply(b, "503 5.5.1 Need MAIL command"); return; }
	if (b->nrcpt >= BSMTP_RCPT_MAX)
		{ reply(b, "452 4.5.3 Too many recipients"); return; }
	if (!(to = path_arg(arg, "TO:", &params)) || !*to) {
		free(to);
		reply(b, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	if (!idn_valid_envelope(to)) {
		free(to);
		reply(b, "553 5.1.3 Bad recipient address: %s", IDN_REFUSAL);
		return;
	}
	b->rcpt[b->nrcpt++] = to;
	reply(b, "250 2.1.5 Ok");
}

/* ---- DATA ------------------------------------------------------------------------- */

static int open_spool(void)
{
	const char *t = getenv("TMPDIR");
	char path[4096];
	int fd = open(t && *t ? t : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	snprintf(path, sizeof path, "%s/pushmail-bs.XXXXXX", t && *t ? t : "/tmp");
	fd = mkstemp(path);
	if (fd >= 0)
		unlink(path);
	return fd;
}

struct spool {
	int fd, err;
	size_t len;
	char buf[64 * 1024];
};

static void spool_put(struct spool *sp, const char *p, size_t n)
{
	while (n > 0 && !sp->err) {
		size_t k = sizeof sp->buf - sp->len < n ? sizeof sp->buf - sp->len : n;
		memcpy(sp->buf + sp->len, p, k);
		sp->len += k;
		p += k;
		n -= k;
		if (sp->len == sizeof sp->buf) {
			sp->err = write(sp->fd, sp->buf, sp->len) != (ssize_t)sp->len;
			sp->len = 0;
		}
	}
}

/* DATA into the spool; past BSMTP_SIZE_MAX the rest is read and dropped. */
struct data_sink {
	struct spool *sp;
	unsigned long long total;
};

static void to_spool(void *arg, const char *p, size_t n)
{
	struct data_sink *ds = arg;

	ds->total += n;
	if (ds->total <= BSMTP_SIZE_MAX)
		spool_put(ds->sp, p, n);
}

/* Returns 0, 1 when the message was too big (read to its end anyway), or -1
 * when the input ended first.  The end of data is <CRLF>.<CRLF> only
 * (bsdata.h). */
static int read_data(struct bsmtp *b, struct spool *sp)
{
	struct data_sink ds = { .sp = sp };

	if (bs_read_data(&b->in, to_spool, &ds) < 0)
		return -1;
	if (sp->len && !sp->err)
		sp->err = write(sp->fd, sp->buf, sp->len) != (ssize_t)sp->len;
	return ds.total > BSMTP_SIZE_MAX;
}

/* The relay's verdict (or the local one) as the reply to the final dot. */
static void verdict(struct bsmtp *b, int rc, const struct result *r, const char *note)
{
	if (rc == 0) {
		reply(b, "250 2.0.0 Ok: %s", note[0] ? note : "sent");
		return;
	}
	/* 421 would tell our client we are closing; we are not: say 451. */
	if (r->code == 421) {
		reply(b, "451 4.3.0 %s", r->text);
		return;
	}
	if (r->code >= 400 && r->code < 600) {
		reply(b, "%d %s", r->code, r->text);
		return;
	}
	switch (r->exitcode) {
	case EX_NOUSER: reply(b, "550 5.1.1 %s", r->text); break;
	case EX_DATAERR: reply(b, "554 5.6.0 %s", r->text); break;
	case EX_USAGE: reply(b, "501 5.5.4 %s", r->text); break;
	case EX_UNAVAILABLE: reply(b, "554 5.0.0 %s", r->text); break;
	default: reply(b, "451 4.3.0 %s", r->text); break;
	}
}

static void submit_spooled(struct bsmtp *b, int fd)
{
	struct submit_req req = { .infd = fd, .from = *b->from ? b->from : "<>",
				  .rcpt = b->rcpt, .nrcpt = b->nrcpt };
	char note[256] = "";
	struct result r;
	int rc;

	req.note = note;
	req.notecap = sizeof note;
	result_clear(&r);
	lseek(fd, 0, SEEK_SET);
	rc = submit(b->c, &req, &r);
	verdict(b, rc, &r, note);
}

/* Returns -1 when the input ended in the middle of the data. */
static int cmd_data(struct bsmtp *b)
{
	struct spool *sp;
	int rc;

	if (!b->from) {
		reply(b, "503 5.5.1 Need MAIL command");
		return 0;
	}
	if (!b->nrcpt) {
		reply(b, "554 5.5.1 No valid recipients");
		return 0;
	}
	sp = calloc(1, sizeof *sp);
	if (!sp || (sp->fd = open_spool()) < 0) {
		free(sp);
		reply(b, "451 4.3.0 Cannot store the message");
		return 0;
	}
	reply(b, "354 End data with <CR><LF>.<CR><LF>");
	fflush(stdout);
	rc = read_data(b, sp);
	if (rc == 1)
		reply(b, "552 5.3.4 Message size exceeds fixed limit");
	else if (rc == 0 && sp->err)
		reply(b, "451 4.3.0 Cannot store the message");
	else if (rc == 0)
		submit_spooled(b, sp->fd);
	close(sp->fd);
	free(sp);
	reset(b);
	return rc < 0 ? -1 : 0;
}

/* ---- the session ------------------------------------------------------------------ */

static void cmd_ehlo(struct bsmtp *b, const char *arg, int extended)
{
	if (!*arg) {
		reply(b, "501 5.5.4 Syntax: %s hostname", extended ? "EHLO" : "HELO");
		return;
	}
	reset(b);
	b->helo = 1;
	if (!extended) {
		reply(b, "250 %s", b->host);
		return;
	}
	reply(b, "250-%s", b->host);
	reply(b, "250-PIPELINING");
	reply(b, "250-SIZE %llu", BSMTP_SIZE_MAX);
	reply(b, "250-8BITMIME");
	reply(b, "250 ENHANCEDSTATUSCODES");
}

/* One command line; returns 1 after QUIT, -1 when the input ended in DATA. */
static int dispatch(struct bsmtp *b, char *line)
{
	char *arg = line + strcspn(line, " ");

	if (*arg)
		*arg++ = '\0';
	if (!strcasecmp(line, "EHLO") || !strcasecmp(line, "HELO"))
		cmd_ehlo(b, arg, !strcasecmp(line, "EHLO"));
	else if (!strcasecmp(line, "MAIL"))
		cmd_mail(b, arg);
	else if (!strcasecmp(line, "RCPT"))
		cmd_rcpt(b, arg);
	else if (!strcasecmp(line, "DATA"))
		return cmd_data(b);
	else if (!strcasecmp(line, "RSET")) {
		reset(b);
		reply(b, "250 2.0.0 Ok");
	}
	else if (!strcasecmp(line, "NOOP"))
		reply(b, "250 2.0.0 Ok");
	else if (!strcasecmp(line, "VRFY"))
		reply(b, "252 2.5.2 Cannot VRFY; send mail and see");
	else if (!strcasecmp(line, "QUIT")) {
		reply(b, "221 2.0.0 Bye");
		return 1;
	} else
		reply(b, "500 5.5.2 Command not recognised");
	return 0;
}

int mode_bsmtp(struct ctx *c, struct result *r)
{
	struct bsmtp *b = calloc(1, sizeof *b);
	char line[BSMTP_LINE_MAX + 2];
	size_t len;
	int complete, rc = 0;

	if (!b)
		return result_fail(r, EX_OSERR, "out of memory");
	b->c = c;
	b->in.fd = 0;
	relay_default_ehlo(b->host, sizeof b->host);
	if (ctx_load_config(c, 0, r) < 0 && ctx_set_aside_config(c, r) < 0) {
		reply(b, "421 4.3.5 pushmail configuration error");
		fflush(stdout);
		free(b);
		return -1;
	}
	c->keep_session = 1;   /* the messages share one relay session */
	reply(b, "220 %s pushmail ESMTP", b->host);
	fflush(stdout);
	while (rc == 0 && bs_read_line(&b->in, line, sizeof line, &len, &complete) == 0) {
		if (!complete) {
			while (!complete && bs_read_line(&b->in, line, sizeof line, &len,
						      &complete) == 0)
				;
			reply(b, "500 5.5.2 Line too long");
			continue;
		}
		if (memchr(line, '\0', len)) {
			reply(b, "500 5.5.2 NUL in command");
			continue;
		}
		rc = dispatch(b, line);
	}
	fflush(stdout);
	ctx_drop_session(c);
	reset(b);
	free(b);
	return 0;
}
