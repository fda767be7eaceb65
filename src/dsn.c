/* dsn.c - RFC 3464 delivery status notices (see dsn.h). */
#include "config.h"
#include "dsn.h"
#include "message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value that becomes part of a header line: one line, not empty. */
static int one_line(const char *s)
{
	return s && *s && !strpbrk(s, "\r\n");
}

/* Length of the header block: up to (not including) the first empty line,
 * or all of it when there is none. */
static size_t head_length(const char *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || h[i - 1] == '\n') {
			if (h[i] == '\n' || (h[i] == '\r' && (i + 1 == n || h[i + 1] == '\n')))
				return i;
		}
	}
	return n;
}

/* The header block with CRLF line ends and no NUL bytes, cut at a line
 * boundary after DSN_HEAD_MAX bytes.  *cut says whether it was cut. */
static char *quote_head(const char *h, size_t n, size_t *outlen, int *cut)
{
	char *o = malloc(DSN_HEAD_MAX + 3);
	size_t k = 0, line = 0;

	*cut = 0;
	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char ch = h[i];
		if (ch == '\r' && i + 1 < n && h[i + 1] == '\n')
			continue;
		if (k + 2 > DSN_HEAD_MAX) {
			*cut = 1;
			k = line;      /* drop the partial line */
			break;
		}
		if (ch == '\r' || ch == '\n') {
			o[k++] = '\r';
			o[k++] = '\n';
			line = k;
		} else {
			o[k++] = ch ? ch : ' ';
		}
	}
	if (k > line) {            /* a last line without its end */
		o[k++] = '\r';
		o[k++] = '\n';
	}
	*outlen = k;
	return o;
}

/* A boundary that occurs nowhere in the quoted headers (RFC 2046 5.1.1);
 * everything else in the notice is ours. */
static void make_boundary(const struct qenv *env, const char *q, size_t qn,
			  char *out, size_t cap)
{
	for (unsigned n = 0; n < 1000; n++) {
		snprintf(out, cap, "=_pushmail_dsn_%s_%u", env->id, n);
		if (!memmem(q, qn, out, strlen(out)))
			return;
	}
}

void dsn_status(const char *enh, int code, const char *fallback, char *out,
		size_t cap)
{
	int a, b, c, len = 0;

	if (enh && sscanf(enh, "%1d.%3d.%3d%n", &a, &b, &c, &len) == 3 &&
	    !enh[len] && (a == 4 || a == 5) && (!code || code / 100 == a)) {
		snprintf(out, cap, "%s", enh);
		return;
	}
	if (code >= 400 && code < 600)
		snprintf(out, cap, "%d.0.0", code / 100);
	else
		snprintf(out, cap, "%s", fallback);
}

static void put_human(FILE *f, const struct qenv *env, const struct dsn_report *rep)
{
	char until[64];

	fprintf(f, "This is pushmail on %s.\r\n\r\n", rep->mta);
	if (rep->action == DSN_DELAYED) {
		msg_format_date(rep->until, until, sizeof until);
		fprintf(f, "This is a warning only; you do not need to send your message "
			"again.\r\nIt has not been delivered yet to the recipients below. "
			"pushmail keeps\r\ntrying until %s.\r\n", until);
	} else {
		fprintf(f, "Your message could not be delivered to the recipients below, "
			"and pushmail\r\nhas stopped trying. The reason is below; the "
			"message's headers are\r\nattached.\r\n");
	}
	fprintf(f, "\r\nQueue id: %s\r\nReason: %s\r\n\r\n", env->id, rep->why);
	for (size_t i = 0; i < env->nrcpt; i++)
		fprintf(f, "  <%s>\r\n", env->rcpt[i]);
}

/* The machine-readable part: per-message fields, then per recipient. */
static void put_status(FILE *f, const struct qenv *env, const struct dsn_report *rep)
{
	char date[64], arrival[64];

	msg_format_date(rep->now, date, sizeof date);
	msg_format_date(env->created, arrival, sizeof arrival);
	fprintf(f, "Reporting-MTA: dns; %s\r\n", rep->mta);
	if (env->envid && one_line(env->envid))
		fprintf(f, "Original-Envelope-Id: %s\r\n", env->envid);
	fprintf(f, "X-Pushmail-Queue-ID: %s\r\nArrival-Date: %s\r\n", env->id, arrival);
	for (size_t i = 0; i < env->nrcpt; i++) {
		int this = !rep->diag_rcpt || strcmp(rep->diag_rcpt, env->rcpt[i]) == 0;
		fprintf(f, "\r\nFinal-Recipient: rfc822; %s\r\nAction: %s\r\nStatus: %s\r\n",
			env->rcpt[i], rep->action == DSN_DELAYED ? "delayed" : "failed",
			rep->status);
		if (rep->remote && one_line(rep->remote))
			fprintf(f, "Remote-MTA: dns; %s\r\n", rep->remote);
		if (this && rep->code)
			fprintf(f, "Diagnostic-Code: smtp; %d %.900s\r\n", rep->code,
				rep->diagnostic);
		else if (this)
			fprintf(f, "Diagnostic-Code: X-Pushmail; %.900s\r\n", rep->diagnostic);
		else
			fprintf(f, "Diagnostic-Code: X-Pushmail; not sent, because the "
				"relay refused <%.400s>\r\n", rep->diag_rcpt);
		fprintf(f, "Last-Attempt-Date: %s\r\n", date);
		if (rep->action == DSN_DELAYED) {
			msg_format_date(rep->until, date, sizeof date);
			fprintf(f, "Will-Retry-Until: %s\r\n", date);
			msg_format_date(rep->now, date, sizeof date);
		}
	}
}

static void put_head(FILE *f, const struct qenv *env, const struct dsn_report *rep,
		     const char *boundary)
{
	char date[64];

	msg_format_date(rep->now, date, sizeof date);
	fprintf(f, "Date: %s\r\nFrom: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
		"To: <%s>\r\nSubject: %s\r\nMessage-ID: <%s.dsn%s@%s>\r\n"
		/* RFC 3834: no vacation reply or other automatic answer to this */
		"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/report; report-type=delivery-status;\r\n"
		"\tboundary=\"%s\"\r\n\r\n"
		"This is a MIME-encapsulated message.\r\n\r\n", date, rep->domain,
		rep->to, rep->action == DSN_DELAYED ? "Delayed Mail (still being retried)" :
		"Undelivered Mail Returned to Sender", env->id,
		rep->action == DSN_DELAYED ? ".delay" : "", rep->domain, boundary);
}

int dsn_build(const struct qenv *env, const struct dsn_report *rep,
	      const char *head, size_t headlen, char **out, size_t *outlen)
{
	char boundary[QUEUE_ID_MAX + 40], *q, *buf = NULL;
	size_t qn, len = 0;
	int cut;
	FILE *f;

	*out = NULL;
	*outlen = 0;
	if (!one_line(rep->to) || !one_line(rep->mta) || !one_line(rep->domain) ||
	    !one_line(rep->status) || !rep->why || strpbrk(rep->why, "\r\n") ||
	    !rep->diagnostic || strpbrk(rep->diagnostic, "\r\n"))
		return -1;
	q = quote_head(head, head_length(head, headlen), &qn, &cut);
	if (!q)
		return -1;
	make_boundary(env, q, qn, boundary, sizeof boundary);
	f = open_memstream(&buf, &len);
	if (!f) {
		free(q);
		return -1;
	}
	put_head(f, env, rep, boundary);
	fprintf(f, "--%s\r\nContent-Description: Notification\r\n"
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	put_human(f, env, rep);
	fprintf(f, "\r\n--%s\r\nContent-Description: Delivery report\r\n"
		"Content-Type: message/delivery-status\r\n\r\n", boundary);
	put_status(f, env, rep);
	fprintf(f, "\r\n--%s\r\nContent-Description: Undelivered Message Headers%s\r\n"
		"Content-Type: text/rfc822-headers\r\n\r\n", boundary,
		cut ? " (cut short)" : "");
	fwrite(q, 1, qn, f);
	fprintf(f, "\r\n--%s--\r\n", boundary);
	free(q);
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = len;
	return 0;
}
