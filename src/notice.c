/* notice.c - queueing delivery status notices (see notice.h). */
#include "config.h"
#include "notice.h"
#include "address.h"
#include "dsn.h"
#include "log.h"
#include "message.h"
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Who hears about it: admin_address when set (also the one place where
 * mail of system users without a mailbox of their own can be read), else
 * the envelope sender. */
static const char *notice_to(const struct account *a, const struct qenv *env)
{
	const char *admin = cfg_str(a, K_ADMIN_ADDRESS);

	if (admin && *admin && addr_valid_mailbox(admin) && strchr(admin, '@'))
		return admin;
	if (admin && *admin)
		log_err("warning: account '%s': admin_address '%.200s' is not a mail "
			"address; the notice goes to the sender", a->name, admin);
	return env->from;
}

static int wanted(const struct account *a, const struct qenv *env, int bit)
{
	const char *mode = cfg_str(a, K_QUEUE);

	/* RFC 3461 / RFC 5321 6.2: never a notice about a notice or about mail
	 * from the null sender, so two systems cannot bounce mail forever; no
	 * warning about a message that already failed. */
	if (!env->from[0] || (env->notice & (bit | QN_FAILED | QN_IS_NOTICE)))
		return 0;
	return !(mode && strcmp(mode, "never") == 0);
}

/* The header block of the queued message (the .msg starts with it). */
static char *read_head(int fd, size_t *len)
{
	char *buf = malloc(DSN_HEAD_MAX + 1);
	ssize_t n;

	if (!buf)
		return NULL;
	n = pread(fd, buf, DSN_HEAD_MAX, 0);
	*len = n > 0 ? (size_t)n : 0;
	return buf;
}

/* The relay refused one recipient: that one, as the envelope names it. */
static const char *refused_rcpt(const struct qenv *env, const struct result *r)
{
	if (r->phase != PHASE_RCPT || !r->arg[0])
		return NULL;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (strcmp(env->rcpt[i], r->arg) == 0)
			return env->rcpt[i];
	return NULL;
}

static void fill_report(struct dsn_report *rep, const struct account *a,
			const struct qentry *e, const struct result *r, const char *dflt,
			char *mta, size_t mtacap, char *status, size_t stcap)
{
	const char *md = cfg_str(a, K_MAILDOMAIN), *from = cfg_str(a, K_FROM);
	const char *at = from ? strrchr(from, '@') : NULL;

	if (cfg_str(a, K_DOMAIN))
		snprintf(mta, mtacap, "%s", cfg_str(a, K_DOMAIN));
	else
		relay_default_ehlo(mta, mtacap);
	dsn_status(r->enh, r->code, dflt, status, stcap);
	rep->action = DSN_FAILED;
	rep->to = notice_to(a, &e->env);
	rep->mta = mta;
	rep->domain = md ? md : at && at[1] ? at + 1 : mta;
	rep->remote = r->code ? cfg_str(a, K_HOST) : NULL;
	rep->status = status;
	rep->diag_rcpt = refused_rcpt(&e->env, r);
	rep->code = r->code;
	rep->diagnostic = r->code ? r->text : e->env.error;
	rep->why = e->env.error;
	rep->now = time(NULL);
}

/* Spool text as a new message from <> to `to` through account a. */
static int spool_notice(struct queue *q, const struct account *a, const char *to,
			const char *text, size_t len, char *nid, struct result *r)
{
	char *rcpt[1] = { (char *)to };
	struct qenv ne = { .account = a->name, .from = "", .rcpt = rcpt, .nrcpt = 1,
			   .notice = QN_IS_NOTICE };
	struct qentry n;

	if (queue_add(q, &ne, text, len, -1, &n, r) < 0)
		return -1;
	snprintf(nid, QUEUE_ID_MAX, "%s", n.env.id);
	queue_release(&n);
	return 0;
}

/* Build and queue the notice about e; bit (QN_FAILED, QN_DELAYED) is
 * recorded in e's envelope first. */
static int queue_dsn(struct queue *q, struct qentry *e, const struct account *a,
		     struct dsn_report *rep, int bit, char *nid)
{
	struct result qr;
	char *head, *text = NULL;
	size_t headlen, len;
	int rc = -1;

	result_clear(&qr);
	head = read_head(e->msgfd, &headlen);
	if (!head || dsn_build(&e->env, rep, head, headlen, &text, &len) < 0) {
		log_err("%s: cannot build the delivery status notice (out of memory?)",
			e->env.id);
		goto out;
	}
	/* Recorded first: at most one notice per message, even across a crash
	 * or a --queue-retry of the failed message. */
	e->env.notice |= bit;
	if (queue_update(q, e, &qr) < 0 ||
	    spool_notice(q, a, rep->to, text, len, nid, &qr) < 0) {
		log_err("%s: no delivery status notice: %s", e->env.id, qr.text);
		goto out;
	}
	log_err("%s: %s to <%s> queued as %s", e->env.id, bit == QN_DELAYED ?
		"delay warning" : "delivery status notice", rep->to, nid);
	rc = 1;
out:
	free(head);
	free(text);
	return rc;
}

int notice_failed(struct queue *q, struct qentry *e, const struct account *a,
		  const struct result *r, int expired, char *nid)
{
	struct dsn_report rep;
	char mta[256], status[16];

	if (!a || !wanted(a, &e->env, QN_FAILED))
		return 0;
	fill_report(&rep, a, e, r, expired ? "4.4.7" : "5.0.0", mta, sizeof mta,
		    status, sizeof status);
	return queue_dsn(q, e, a, &rep, QN_FAILED, nid);
}

int notice_delayed(struct queue *q, struct qentry *e, const struct account *a,
		   const struct result *r, time_t until, char *nid)
{
	struct dsn_report rep;
	char mta[256], status[16];
	long after = cfg_long(a, K_DELAY_WARNING, 0);

	if (!a || after <= 0 || time(NULL) - e->env.created < after ||
	    !wanted(a, &e->env, QN_DELAYED))
		return 0;
	fill_report(&rep, a, e, r, "4.0.0", mta, sizeof mta, status, sizeof status);
	rep.action = DSN_DELAYED;
	rep.until = until;
	return queue_dsn(q, e, a, &rep, QN_DELAYED, nid);
}

int notice_admin(struct queue *q, const struct account *a, const char *subject,
		 const char *body, char *nid)
{
	const char *admin = cfg_str(a, K_ADMIN_ADDRESS);
	char mta[256], date[64], *text = NULL;
	struct result qr;
	size_t len = 0;
	FILE *f;
	int rc;

	if (!admin || !*admin || !addr_valid_mailbox(admin) || !strchr(admin, '@')) {
		log_err("account '%s': %s (no admin_address to tell)", a->name, subject);
		return 0;
	}
	if (cfg_str(a, K_DOMAIN))
		snprintf(mta, sizeof mta, "%s", cfg_str(a, K_DOMAIN));
	else
		relay_default_ehlo(mta, sizeof mta);
	msg_format_date(time(NULL), date, sizeof date);
	if (!(f = open_memstream(&text, &len)))
		return -1;
	fprintf(f, "Date: %s\r\nFrom: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
		"To: <%s>\r\nSubject: pushmail: %s\r\nAuto-Submitted: auto-generated\r\n"
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
		"This is pushmail on %s.\r\n\r\n%s\r\n", date, mta, admin, subject, mta,
		body);
	if (fclose(f) != 0 || !text) {
		free(text);
		return -1;
	}
	result_clear(&qr);
	rc = spool_notice(q, a, admin, text, len, nid, &qr) < 0 ? -1 : 1;
	if (rc < 0)
		log_err("account '%s': no notice to %s: %s", a->name, admin, qr.text);
	else
		log_err("account '%s': notice to <%s> queued as %s", a->name, admin, nid);
	free(text);
	return rc;
}
