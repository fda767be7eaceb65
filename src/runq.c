/* runq.c - queue delivery (see runq.h). */
#include "config.h"
#include "runq.h"
#include "log.h"

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
 * recipients, size, relay reply, queue id, exit status).  With the session
 * (ss, may be NULL) it names the TLS version, cipher and AUTH mechanism that
 * were actually used. */
static void log_try(const struct account *a, const struct smtp_session *ss,
		    const struct qentry *e, const char *status, const char *detail,
		    int exitcode)
{
	const struct smtp_params *p = ss ? smtp_params_of(ss) : NULL;
	struct log_record lr = {
		.account = a ? a->name : NULL, .host = a ? cfg_host(a) : NULL,
		.tls = a ? tls_names[cfg_tls_mode(a) % 3] : NULL,
		.tls_version = p && p->tls_info ? p->tls_info->version : NULL,
		.cipher = p && p->tls_info ? p->tls_info->cipher : NULL,
		.auth = p ? p->auth_used : NULL,
		.facility = a ? cfg_str(a, K_LOG_FACILITY) : NULL,
		.from = e->env.from, .nrcpt = e->env.nrcpt,
		.rcpt = e->env.nrcpt ? e->env.rcpt[0] : NULL, .size = e->env.size,
		.status = status, .detail = detail, .qid = e->env.id,
		.exitcode = exitcode,
	};

	log_delivery(a ? cfg_str(a, K_LOG) : NULL, &lr);
}

/* The outcome r for entry e, tried on session ss (NULL: none).  counted:
 * r is this message's own try (not a session failure that stopped the run
 * before the message was tried), so it counts in tries. */
static enum runq_outcome record(struct queue *q, struct qentry *e,
				const struct account *a, const struct smtp_session *ss,
				const struct runq_policy *pol, const struct result *r,
				int counted)
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
		log_try(a, ss, e, "deferred", why, r->exitcode);
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
	log_try(a, ss, e, "failed", e->env.error, r->exitcode);
	return RUNQ_FAILED;
}

enum runq_outcome runq_record(struct queue *q, struct qentry *e,
			      const struct runq_policy *pol, const struct result *r)
{
	return record(q, e, NULL, NULL, pol, r, 1);
}

enum runq_outcome runq_record_for(struct queue *q, struct qentry *e,
				  const struct account *a,
				  const struct runq_policy *pol, const struct result *r)
{
	return record(q, e, a, NULL, pol, r, 1);
}

/* Bare local names (cron's "root") get the account's maildomain now, since
 * the message may have been queued before any account existed; the sender
 * is v[nrcpt].  Without maildomain a bare name stays bare and the message
 * waits (see bare_name). */
static char **envelope_rcpts(const struct qenv *qe, const struct account *a)
{
	const char *md = a ? cfg_str(a, K_MAILDOMAIN) : NULL;
	char **v = calloc(qe->nrcpt + 2, sizeof *v);

	if (!v)
		return NULL;
	for (size_t i = 0; i <= qe->nrcpt; i++) {
		const char *m = i < qe->nrcpt ? qe->rcpt[i] : qe->from;
		int n = *m && !strchr(m, '@') && md ? asprintf(&v[i], "%s@%s", m, md) :
			((v[i] = strdup(m)) ? 0 : -1);
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

/* A relay would refuse (or misroute) MAIL FROM:<root>: a configuration
 * problem, temporary (SPEC 6), so the message waits for maildomain. */
static int bare_name(char *const *v, size_t n, const struct account *a,
		     struct result *r)
{
	for (size_t i = 0; i < n; i++)
		if (*v[i] && !strchr(v[i], '@'))
			return result_fail(r, EX_CONFIG, "<%s> has no domain and account "
					   "'%s' has no maildomain: set 'maildomain = "
					   "your.domain' (see pushmail.conf(5))", v[i],
					   a ? a->name : "");
	return 0;
}

enum runq_outcome runq_attempt(struct queue *q, struct qentry *e,
			       struct smtp_session *ss, const struct account *a,
			       const struct runq_policy *pol, struct result *r)
{
	struct smtp_envelope env = { .from = e->env.from, .nrcpt = e->env.nrcpt,
				     .size = e->env.wire, .eightbit = e->env.eightbit,
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
	env.from = rcpt[e->env.nrcpt];
	lseek(e->msgfd, 0, SEEK_SET);
	rc = bare_name(rcpt, e->env.nrcpt + 1, a, r) < 0 ? -1 :
	     smtp_transaction(ss, &env, &msg, 0, &out, r);
	for (size_t i = 0; i <= e->env.nrcpt; i++)
		free(rcpt[i]);
	free(rcpt);
	if (rc == 0) {
		log_try(a, ss, e, "sent", out.final_reply, 0);
		queue_done(q, e);
		return RUNQ_DELIVERED;
	}
	return record(q, e, a, ss, pol, r, 1);
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

#define LINGER_ROUNDS 100   /* bound: then the session closes anyway */

/* One newly due message of account a over the open session. */
static void linger_one(struct queue *q, const struct account *a,
		       struct smtp_session *ss,
		       const struct runq_policy *pol, const char *id,
		       struct runq_stats *st)
{
	struct qentry e;
	struct result r;
	enum runq_outcome oc;

	result_clear(&r);
	if (queue_lock(q, id, 0, &e, &r) != 0)
		return;
	oc = runq_attempt(q, &e, ss, a, pol, &r);
	report(&e, oc, &r);
	count(st, oc, &r);
	queue_release(&e);
}

/* SPEC 9: a burst (cron at the hour, a script's loop) goes over one session:
 * while new mail keeps coming within the linger time, send this account's
 * due messages on the session that is still open. */
static void linger(struct queue *q, const struct runq_opts *o, const struct account *a,
		   struct smtp_session *ss, const struct runq_policy *pol,
		   struct runq_stats *st)
{
	size_t mine = 1;

	/* mail for other accounts ends the lingering: the next run sends it */
	for (int round = 0; round < LINGER_ROUNDS && mine && smtp_usable(ss) &&
	     !(o->stop && o->stop()) && o->linger(o->linger_arg) > 0; round++) {
		struct qenv *list;
		struct result r;
		size_t n;
		time_t now = time(NULL);
		int gone;

		if (queue_list(q, 0, &list, &n, &r) < 0)
			return;
		mine = 0;
		for (size_t i = 0; i < n && smtp_usable(ss); i++)
			if (wanted(o, &list[i], now) && route(o->cfg, &list[i], &gone) == a) {
				linger_one(q, a, ss, pol, list[i].id, st);
				mine++;
			}
		queue_list_free(list, n);
	}
}

/* One account's messages over one connection.  A connection broken by a
 * message's transaction is reopened for the next message; but once opening
 * fails (refused, timed out, no greeting or 421, TLS, AUTH), the relay is
 * down for this run: every other message of the account gets the same
 * outcome without a try of its own (a relay that accepts and never greets
 * would otherwise cost a full timeout per message).  Like Postfix, such
 * messages do not count the try they did not get. */
static int run_group(struct queue *q, const struct runq_opts *o, struct group *g,
		     const struct qenv *list, struct runq_stats *st, struct result *r_run)
{
	struct smtp_session *ss = NULL;
	struct runq_policy pol;
	struct relay rl;
	struct result r, open_r;
	int relay_ok, down = 0;
	size_t untried = 0;

	runq_policy_of(g->acct, &pol);
	result_clear(&open_r);
	relay_ok = relay_init(&rl, g->acct, o->ov, &open_r) == 0;
	if (!relay_ok && open_r.exitcode == EX_USAGE) {
		*r_run = open_r;   /* a bad override: the queue stays as it is */
		return -1;
	}
	for (size_t k = 0; k < g->n && !(o->stop && o->stop()); k++) {
		struct qentry e;
		enum runq_outcome oc;

		result_clear(&r);
		if (queue_lock(q, list[g->idx[k]].id, 0, &e, &r) != 0) {
			st->busy++;
			continue;
		}
		if (!ss && !down && relay_ok && relay_auth(&rl, &open_r) == 0)
			ss = smtp_open(&rl.p, &open_r);
		if (!ss) {
			oc = record(q, &e, g->acct, NULL, &pol, &open_r, !down);
			if (!down || oc != RUNQ_DEFERRED)
				report(&e, oc, &open_r);
			untried += down && oc == RUNQ_DEFERRED;
			down = 1;
			count(st, oc, &open_r);
		} else {
			oc = runq_attempt(q, &e, ss, g->acct, &pol, &r);
			report(&e, oc, &r);
			if (!smtp_usable(ss)) {
				smtp_close(ss);
				ss = NULL;
			}
			count(st, oc, &r);
		}
		queue_release(&e);
	}
	if (untried)
		log_err("account '%s': %zu more message%s deferred without a try, "
			"after that failure", g->acct->name, untried,
			untried == 1 ? "" : "s");
	if (ss && o->linger)
		linger(q, o, g->acct, ss, &pol, st);
	smtp_close(ss);
	relay_free(&rl);
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
