/* runq.c - queue delivery (see runq.h). */
#include "config.h"
#include "runq.h"
#include "log.h"
#include "notice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIFETIME_DEFAULT (5L * 86400)
#define RETRY_MIN_DEFAULT 60L
#define RETRY_MAX_DEFAULT 3600L

void runq_policy_of(const struct account *a, struct runq_policy *pol)
{
	pol->retry_min = a ? cfg_long(a, K_QUEUE_RETRY, RETRY_MIN_DEFAULT) : RETRY_MIN_DEFAULT;
	pol->retry_max = a ? cfg_long(a, K_QUEUE_RETRY_MAX, RETRY_MAX_DEFAULT) :
		RETRY_MAX_DEFAULT;
	pol->lifetime = a ? cfg_long(a, K_QUEUE_LIFETIME, LIFETIME_DEFAULT) :
		LIFETIME_DEFAULT;
}

int runq_is_temporary(const struct result *r)
{
	/* TLS trouble (STARTTLS no longer offered, a certificate that expired
	 * or is not trusted, a failed handshake) says nothing final about the
	 * message: it is a relay misconfiguration or someone in the middle
	 * stripping STARTTLS or presenting their own certificate, and either
	 * must not make mail undeliverable.  Postfix defers such mail too.
	 * (A direct send still exits with the TLS failure's own status.) */
	if (r->phase == PHASE_STARTTLS || r->phase == PHASE_TLS)
		return 1;
	switch (r->exitcode) {
	case EX_TEMPFAIL:
		return 1;
	/* Local trouble with no verdict from the relay (a password command that
	 * failed, a missing trust file, memory): fixable without the message
	 * changing, so it waits for the fix instead of failing for good. */
	case EX_CONFIG: case EX_NOINPUT: case EX_OSERR: case EX_SOFTWARE:
	case EX_CANTCREAT: case EX_IOERR:
		return 1;
	default:
		/* the relay's permanent verdict (5xx, untrusted certificate,
		 * refused login) or an unusable message */
		return 0;
	}
}

/* "5 days", "12 hours", "30 minutes", "45 seconds" */
static void human_duration(long s, char *out, size_t cap)
{
	static const struct { long unit; const char *name; } units[] = {
		{ 86400, "day" }, { 3600, "hour" }, { 60, "minute" }, { 1, "second" },
	};

	for (size_t i = 0; i < 4; i++)
		if (s >= units[i].unit || i == 3) {
			long n = s / units[i].unit;
			snprintf(out, cap, "%ld %s%s", n, units[i].name, n == 1 ? "" : "s");
			return;
		}
}

static const char *const tls_names[] = { "off", "starttls", "implicit" };

/* The mail log line for one try (SPEC/issue: account, host, tls, auth, from,
 * recipients, size, relay reply, queue id, exit status). */
static void log_try(const struct account *a, const struct qentry *e,
		    const char *status, const char *detail, int exitcode)
{
	struct log_record lr = {
		.account = a ? a->name : NULL, .host = a ? cfg_str(a, K_HOST) : NULL,
		.tls = a ? tls_names[cfg_tls_mode(a) % 3] : NULL,
		.auth = a ? (cfg_str(a, K_AUTH) ? cfg_str(a, K_AUTH) :
			     cfg_str(a, K_USER) ? "auto" : "off") : NULL,
		.from = e->env.from, .nrcpt = e->env.nrcpt,
		.rcpt = e->env.nrcpt ? e->env.rcpt[0] : NULL, .size = e->env.size,
		.status = status, .detail = detail, .qid = e->env.id,
		.exitcode = exitcode,
	};

	log_delivery(a ? cfg_str(a, K_LOG) : NULL, &lr);
}

/* The outcome r for entry e.  counted: r is this message's own try (not a
 * session failure that stopped the run before the message was tried), so
 * it counts in tries. */
static enum runq_outcome record(struct queue *q, struct qentry *e,
				const struct account *a, const struct runq_policy *pol,
				const struct result *r, int counted)
{
	char why[RESULT_TEXT_MAX + 300];
	struct result ignored;
	time_t now = time(NULL);

	result_clear(&ignored);
	result_describe(r, why, sizeof why);
	e->env.tries += counted;
	if (runq_is_temporary(r) && now - e->env.created < pol->lifetime) {
		qenv_set_error(&e->env, why);
		e->env.next_try = now + queue_backoff(e->env.tries, pol->retry_min,
						      pol->retry_max);
		queue_update(q, e, &ignored);
		log_try(a, e, "deferred", why, r->exitcode);
		return RUNQ_DEFERRED;
	}
	if (runq_is_temporary(r)) {
		char expired[RESULT_TEXT_MAX + 400], d[40];
		human_duration(pol->lifetime, d, sizeof d);
		snprintf(expired, sizeof expired, "gave up after %s in the queue: %s", d, why);
		queue_to_failed(q, e, expired, &ignored);
	} else {
		queue_to_failed(q, e, why, &ignored);
	}
	log_try(a, e, "failed", e->env.error, r->exitcode);
	return RUNQ_FAILED;
}

enum runq_outcome runq_record(struct queue *q, struct qentry *e,
			      const struct runq_policy *pol, const struct result *r)
{
	return record(q, e, NULL, pol, r, 1);
}

enum runq_outcome runq_record_for(struct queue *q, struct qentry *e,
				  const struct account *a,
				  const struct runq_policy *pol, const struct result *r)
{
	return record(q, e, a, pol, r, 1);
}

/* Bare local names (cron's "root") get the account's maildomain now, since
 * the message may have been queued before any account existed. */
static char **envelope_rcpts(const struct qenv *qe, const struct account *a)
{
	const char *md = a ? cfg_str(a, K_MAILDOMAIN) : NULL;
	char **v = calloc(qe->nrcpt + 1, sizeof *v);

	if (!v)
		return NULL;
	for (size_t i = 0; i < qe->nrcpt; i++) {
		int n = !strchr(qe->rcpt[i], '@') && md ?
			asprintf(&v[i], "%s@%s", qe->rcpt[i], md) :
			((v[i] = strdup(qe->rcpt[i])) ? 0 : -1);
		if (n < 0) {
			v[i] = NULL;
			for (size_t k = 0; k < i; k++)
				free(v[k]);
			free(v);
			return NULL;
		}
	}
	return v;
}

enum runq_outcome runq_attempt(struct queue *q, struct qentry *e,
			       struct smtp_session *ss, const struct account *a,
			       const struct runq_policy *pol, struct result *r)
{
	struct smtp_envelope env = { .from = e->env.from, .nrcpt = e->env.nrcpt,
				     .size = e->env.size, .eightbit = e->env.eightbit,
				     .dsn_notify = e->env.notify, .dsn_ret = e->env.ret,
				     .dsn_envid = e->env.envid, .binary = e->env.nul };
	struct smtp_message msg = { .fd = e->msgfd };
	struct smtp_outcome out = { 0 };
	char **rcpt = envelope_rcpts(&e->env, a);
	int rc;

	if (!rcpt) {
		result_fail(r, EX_OSERR, "out of memory");
		return runq_record_for(q, e, a, pol, r);
	}
	env.rcpt = (const char *const *)rcpt;
	lseek(e->msgfd, 0, SEEK_SET);
	rc = smtp_transaction(ss, &env, &msg, 0, &out, r);
	for (size_t i = 0; i < e->env.nrcpt; i++)
		free(rcpt[i]);
	free(rcpt);
	if (rc == 0) {
		log_try(a, e, "sent", out.final_reply, 0);
		queue_done(q, e);
		return RUNQ_DELIVERED;
	}
	return runq_record_for(q, e, a, pol, r);
}

/* ---- queue runs ------------------------------------------------------------ */

struct group {
	const struct account *acct;
	size_t *idx;       /* entries of the listing that belong here */
	size_t n;
};

/* SPEC 6: a queued message keeps its account; only one queued before any
 * account existed (account "") is routed by the usual choice, now.  NULL
 * when there is none; *gone when its own account has been removed. */
static const struct account *route(const struct config *cfg, const struct qenv *e,
				   int *gone)
{
	const struct account *a;
	struct result ignored;

	*gone = 0;
	result_clear(&ignored);
	if (!cfg || cfg->n == 0)
		return NULL;
	if (!e->account[0])
		return cfg_select(cfg, NULL, e->from, &ignored);
	a = cfg_select(cfg, e->account, NULL, &ignored);
	*gone = a == NULL;
	return a;
}

/* Its account is gone: the message waits, with the reason where -bp shows
 * it.  No try is counted (there was none); the periodic runners look again
 * after the longest default back-off, so that a timer does not repeat the
 * notice every few minutes (a -q by hand always looks). */
static void note_orphan(struct queue *q, const struct qenv *le, struct runq_stats *st)
{
	char why[sizeof le->error];
	struct qentry e;
	struct result r;

	result_clear(&r);
	if (queue_lock(q, le->id, 0, &e, &r) != 0) {
		st->busy++;
		return;
	}
	snprintf(why, sizeof why, "account '%.200s' is no longer configured; the message "
		 "waits for it (or use --queue-delete)", e.env.account);
	qenv_set_error(&e.env, why);
	e.env.next_try = time(NULL) + RETRY_MAX_DEFAULT;
	queue_update(q, &e, &r);
	log_err("%s: waits: %s", e.env.id, why);
	st->orphaned++;
	queue_release(&e);
}

static int wanted(const struct runq_opts *o, const struct qenv *e, time_t now)
{
	if (o->only_id && strcmp(o->only_id, e->id) != 0)
		return 0;
	return o->force || o->only_id || e->next_try <= now;
}

static void report(const struct qentry *e, enum runq_outcome oc, const struct result *r)
{
	char why[RESULT_TEXT_MAX + 300];

	if (oc == RUNQ_DELIVERED) {
		log_info("%s: delivered", e->env.id);
		return;
	}
	result_describe(r, why, sizeof why);
	log_err("%s: %s: %s", e->env.id, oc == RUNQ_DEFERRED ?
		"deferred" : "failed, moved to failed/", why);
}

static void count(struct runq_stats *st, enum runq_outcome oc, const struct result *r)
{
	if (oc == RUNQ_DELIVERED) {
		st->delivered++;
	} else if (oc == RUNQ_DEFERRED) {
		st->deferred++;
	} else {
		st->failed++;
		/* a message that ran out of queue lifetime failed for good,
		 * whatever its last (temporary) try said */
		if (!st->fail_exit)
			st->fail_exit = runq_is_temporary(r) ? EX_UNAVAILABLE : r->exitcode;
	}
}

/* One account's run: its relay, the session, and what came of it. */
struct run {
	struct queue *q;
	const struct runq_opts *o;
	const struct account *acct;
	struct runq_policy pol;
	struct relay rl;
	int relay_ok, down;
	struct smtp_session *ss;
	struct result open_r;      /* why the session could not be opened */
	struct runq_stats *st;
	size_t untried;
	char (*notices)[QUEUE_ID_MAX];   /* notices queued during the run */
	size_t nnotices, cap;
};

/* A message given up on: queue its notice, to go out in this run. */
static void give_notice(struct run *rn, struct qentry *e, const struct result *r)
{
	char nid[QUEUE_ID_MAX];

	if (notice_failed(rn->q, e, rn->acct, r, runq_is_temporary(r), nid) != 1)
		return;
	rn->st->notices++;
	if (rn->nnotices == rn->cap) {
		size_t cap = rn->cap ? 2 * rn->cap : 8;
		void *v = realloc(rn->notices, cap * sizeof *rn->notices);
		if (!v)
			return;    /* it waits in the queue for the next run */
		rn->notices = v;
		rn->cap = cap;
	}
	memcpy(rn->notices[rn->nnotices++], nid, QUEUE_ID_MAX);
}

/* Deliver message id (a notice of this run when is_notice: not counted in
 * the run's figures, which are about the mail people sent). */
static void run_one(struct run *rn, const char *id, int is_notice)
{
	struct runq_stats *st = rn->st, ignored = { 0 };
	struct qentry e;
	struct result r;
	enum runq_outcome oc;
	const struct result *why = &r;

	result_clear(&r);
	if (queue_lock(rn->q, id, 0, &e, &r) != 0) {
		st->busy += !is_notice;
		return;
	}
	if (!rn->ss && !rn->down && rn->relay_ok && relay_auth(&rn->rl, &rn->open_r) == 0)
		rn->ss = smtp_open(&rn->rl.p, &rn->open_r);
	if (!rn->ss) {
		why = &rn->open_r;
		oc = record(rn->q, &e, rn->acct, &rn->pol, why, !rn->down);
		if (!rn->down || oc != RUNQ_DEFERRED)
			report(&e, oc, why);
		rn->untried += rn->down && oc == RUNQ_DEFERRED;
		rn->down = 1;
	} else {
		oc = runq_attempt(rn->q, &e, rn->ss, rn->acct, &rn->pol, &r);
		report(&e, oc, &r);
		if (!smtp_usable(rn->ss)) {
			smtp_close(rn->ss);
			rn->ss = NULL;
		}
	}
	count(is_notice ? &ignored : st, oc, why);
	if (oc == RUNQ_FAILED)
		give_notice(rn, &e, why);
	queue_release(&e);
}

static int stopping(const struct runq_opts *o)
{
	return o->stop && o->stop();
}

/* One account's messages over one connection.  A connection broken by a
 * message's transaction is reopened for the next message; but once opening
 * fails (refused, timed out, no greeting or 421, TLS, AUTH), the relay is
 * down for this run: every other message of the account gets the same
 * outcome without a try of its own (a relay that accepts and never greets
 * would otherwise cost a full timeout per message).  Like Postfix, such
 * messages do not count the try they did not get.  The notices about
 * messages given up on go last, over the same connection. */
static int run_group(struct queue *q, const struct runq_opts *o, struct group *g,
		     const struct qenv *list, struct runq_stats *st, struct result *r_run)
{
	struct run rn = { .q = q, .o = o, .acct = g->acct, .st = st };

	runq_policy_of(g->acct, &rn.pol);
	result_clear(&rn.open_r);
	rn.relay_ok = relay_init(&rn.rl, g->acct, o->ov, &rn.open_r) == 0;
	if (!rn.relay_ok && rn.open_r.exitcode == EX_USAGE) {
		*r_run = rn.open_r;   /* a bad override: the queue stays as it is */
		return -1;
	}
	for (size_t k = 0; k < g->n && !stopping(o); k++)
		run_one(&rn, list[g->idx[k]].id, 0);
	for (size_t k = 0; k < rn.nnotices && !stopping(o); k++)
		run_one(&rn, rn.notices[k], 1);
	if (rn.untried)
		log_err("account '%s': %zu more message%s deferred without a try, "
			"after that failure", g->acct->name, rn.untried,
			rn.untried == 1 ? "" : "s");
	free(rn.notices);
	smtp_close(rn.ss);
	relay_free(&rn.rl);
	return 0;
}

static struct group *group_of(struct group *gs, size_t *ng, const struct account *a,
			      size_t max)
{
	for (size_t i = 0; i < *ng; i++)
		if (gs[i].acct == a)
			return &gs[i];
	gs[*ng].acct = a;
	gs[*ng].idx = calloc(max, sizeof *gs[*ng].idx);
	gs[*ng].n = 0;
	return gs[*ng].idx ? &gs[(*ng)++] : NULL;
}

int runq_flush(struct queue *q, const struct runq_opts *o, struct runq_stats *st,
	       struct result *r)
{
	struct qenv *list;
	struct group *gs;
	size_t n, ng = 0;
	time_t now = time(NULL);

	memset(st, 0, sizeof *st);
	if (o->only_id && !queue_id_valid(o->only_id))
		return result_fail(r, EX_USAGE, "bad queue id '%.60s' (see mailq)",
				   o->only_id);
	if (queue_list(q, 0, &list, &n, r) < 0)
		return -1;
	gs = calloc(n + 1, sizeof *gs);
	if (!gs) {
		queue_list_free(list, n);
		return result_fail(r, EX_OSERR, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const struct account *a;
		struct group *g;
		int gone;
		if (!wanted(o, &list[i], now))
			continue;
		a = route(o->cfg, &list[i], &gone);
		if (gone && !o->only_account)
			note_orphan(q, &list[i], st);
		if (!a || (o->only_account && strcmp(a->name, o->only_account) != 0)) {
			st->unroutable += !a && !gone;
			continue;
		}
		if ((g = group_of(gs, &ng, a, n)))
			g->idx[g->n++] = i;
	}
	int rc = 0;

	for (size_t i = 0; i < ng; i++) {
		if (rc == 0 && run_group(q, o, &gs[i], list, st, r) < 0)
			rc = -1;
		free(gs[i].idx);
	}
	free(gs);
	queue_list_free(list, n);
	return rc;
}
