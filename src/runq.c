/* runq.c - queue delivery (see runq.h). */
#include "config.h"
#include "oauth2.h"
#include "runq.h"
#include "log.h"
#include "notice.h"
#include "qstate.h"

#include <errno.h>

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
	/* A refused login is the account's trouble, not the message's: it
	 * waits for the password to be fixed (counted; after
	 * auth_failures_notify refusals in a row the admin is told once).
	 * So does an OAuth2 login to renew (issue 18): it waits for
	 * `pushmail --oauth2-login`. */
	if (r->phase == PHASE_AUTH || oauth2_needs_login(r))
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

/* One transaction for e over ss; bare names get the maildomain of the
 * message's own account a.  0 sent (out filled), -1 with r filled. */
static int transact(struct qentry *e, struct smtp_session *ss,
		    const struct account *a, struct smtp_outcome *out, struct result *r)
{
	struct smtp_envelope env = { .from = e->env.from, .nrcpt = e->env.nrcpt,
				     .size = e->env.wire, .eightbit = e->env.eightbit,
				     .dsn_notify = e->env.notify, .dsn_ret = e->env.ret,
				     .dsn_envid = e->env.envid, .binary = e->env.nul };
	struct smtp_message msg = { .fd = e->msgfd };
	char **rcpt = envelope_rcpts(&e->env, a);
	int rc;

	if (!rcpt)
		return result_fail(r, EX_OSERR, "out of memory");
	env.rcpt = (const char *const *)rcpt;
	env.from = rcpt[e->env.nrcpt];
	lseek(e->msgfd, 0, SEEK_SET);
	rc = bare_name(rcpt, e->env.nrcpt + 1, a, r) < 0 ? -1 :
	     smtp_transaction(ss, &env, &msg, 0, out, r);
	for (size_t i = 0; i <= e->env.nrcpt; i++)
		free(rcpt[i]);
	free(rcpt);
	return rc;
}

enum runq_outcome runq_attempt(struct queue *q, struct qentry *e,
			       struct smtp_session *ss, const struct account *a,
			       const struct runq_policy *pol, struct result *r)
{
	struct smtp_outcome out = { 0 };

	if (transact(e, ss, a, &out, r) == 0) {
		log_try(a, ss, e, "sent", out.final_reply, 0);
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

/* A relay a message may go through: its own account's, then the accounts
 * its fallback key names, in order. */
#define RUNQ_HOPS_MAX 8
#define SKIP_FOR 600L    /* a relay that failed is tried last for 10 minutes */
#define SERIAL_FOR (7 * 86400L)   /* one that broke a window: one at a time */

struct hop {
	const struct account *acct;
	struct relay rl;
	int relay_ok;
	int skipped;               /* failed in an earlier run: tried last */
	int down;                  /* could not be opened in this run */
	int sent;                  /* took a message in this run */
	size_t held;               /* messages its rate_limit held back */
	time_t due;                /* when its rate_limit lets the next one go */
	unsigned long auth_failures;  /* refused logins in a row, before this run */
	struct smtp_session *ss;
	struct result open_r;      /* why it could not be opened */
};

/* One account's run: its relays, the sessions, and what came of it. */
struct run {
	struct queue *q;
	const struct runq_opts *o;
	const struct account *acct;
	struct runq_policy pol;
	struct hop hops[RUNQ_HOPS_MAX];
	size_t nhops;
	size_t order[RUNQ_HOPS_MAX];   /* hops in the order they are tried */
	struct runq_stats *st;
	size_t untried;
	int open_failed;           /* batching() failed to open the relay for the
				      message at hand: that is its try */
	char (*notices)[QUEUE_ID_MAX];   /* notices queued during the run */
	size_t nnotices, cap;
	/* batching with fallback relays: the messages the first relay deferred
	 * or lost, for run_one to take through the rest */
	struct again {
		char id[QUEUE_ID_MAX];
		struct result r;   /* what the first relay said */
	} *again;
	size_t nagain;
	const struct result *first_try;   /* run_one: the message had its try at
					     the first relay; this is what it
					     said, and the others come next */
};

static void add_notice(struct run *rn, const char *nid);

/* A message given up on (or late): queue its notice, to go out in this run. */
static void give_notice(struct run *rn, struct qentry *e, const struct result *r,
			enum runq_outcome oc)
{
	char nid[QUEUE_ID_MAX];

	if (oc == RUNQ_FAILED && !rn->o->no_failure_notice &&
	    notice_failed(rn->q, e, rn->acct, r, runq_is_temporary(r), nid) == 1)
		add_notice(rn, nid);
	if (oc == RUNQ_DEFERRED &&
	    notice_delayed(rn->q, e, rn->acct, r, e->env.created + rn->pol.lifetime,
			   nid) == 1)
		add_notice(rn, nid);
}

static void add_notice(struct run *rn, const char *nid)
{
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

/* ---- relay state (qstate.h): skip memory, health -------------------------- */

static void mark(struct queue *q, const struct account *a, int ok, const char *why)
{
	if (qstate_mark(q, a->name, ok, why, SKIP_FOR) < 0 && errno != EINVAL)
		log_info("account '%s': cannot record the relay's state: %s",
			 a->name, strerror(errno));
}

void runq_note_relay(struct queue *q, const struct account *a, const struct result *r)
{
	char why[RESULT_TEXT_MAX + 300] = "";
	struct qstate st;

	/* A burst of sends that all work need not rewrite the file each time
	 * (-bp shows minutes, not seconds). */
	if (!r && qstate_read(q, a->name, &st) == 0 && !st.skip_until &&
	    !st.auth_failures && time(NULL) - st.last_success < 60)
		return;
	if (r)
		result_describe(r, why, sizeof why);
	mark(q, a, r == NULL, why);
}

/* ---- relays of a run ------------------------------------------------------- */

static int add_hop(struct run *rn, const struct account *a,
		   const struct relay_overrides *ov, time_t now, struct result *r_run)
{
	struct hop *h = &rn->hops[rn->nhops];
	struct qstate qs;

	for (size_t i = 0; i < rn->nhops; i++)
		if (rn->hops[i].acct == a)
			return 0;          /* each relay once */
	if (rn->nhops == RUNQ_HOPS_MAX) {
		log_err("account '%s': more than %d relays; '%s' is not tried",
			rn->acct->name, RUNQ_HOPS_MAX, a->name);
		return 0;
	}
	memset(h, 0, sizeof *h);
	h->acct = a;
	result_clear(&h->open_r);
	h->relay_ok = relay_init(&h->rl, a, ov, &h->open_r) == 0;
	if (!h->relay_ok && h->open_r.exitcode == EX_USAGE) {
		*r_run = h->open_r;   /* a bad override: the queue stays as it is */
		relay_free(&h->rl);
		return -1;
	}
	h->skipped = qstate_read(rn->q, a->name, &qs) == 0 && qs.skip_until > now;
	h->auth_failures = qs.auth_failures;
	h->rl.p.serial = qs.serial_until > now;
	rn->nhops++;
	return 0;
}

/* The message's own relay, then its fallbacks (command-line overrides such
 * as --host apply to the account's own relay only).  Relays that failed in
 * an earlier run go last; when all did, the configured order stands. */
static int plan_hops(struct run *rn, const struct config *cfg, struct result *r_run)
{
	static const struct relay_overrides none;
	const char *p = cfg_str(rn->acct, K_FALLBACK);
	time_t now = time(NULL);
	size_t k = 0;

	if (add_hop(rn, rn->acct, rn->o->ov, now, r_run) < 0)
		return -1;
	while (p && *p) {
		size_t n = strcspn(p, ",");
		char name[128];
		const struct account *f;
		struct result ignored;
		snprintf(name, sizeof name, "%.*s", (int)(n < 127 ? n : 127), p);
		p += n + (p[n] == ',');
		result_clear(&ignored);
		f = cfg ? cfg_select(cfg, name, NULL, &ignored) : NULL;
		if (f && add_hop(rn, f, &none, now, r_run) < 0)
			return -1;
	}
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < rn->nhops; i++)
			if (rn->hops[i].skipped == pass)
				rn->order[k++] = i;
	return 0;
}

static const char *hop_name(const struct hop *h, char *buf, size_t cap)
{
	snprintf(buf, cap, "'%s' (%s:%s)", h->acct->name, h->rl.p.host ? h->rl.p.host :
		 "?", h->rl.p.port ? h->rl.p.port : "?");
	return buf;
}

/* The next hop after position pos that is not down, or NULL. */
static const struct hop *next_up(const struct run *rn, size_t pos)
{
	for (size_t k = pos + 1; k < rn->nhops; k++)
		if (!rn->hops[rn->order[k]].down)
			return &rn->hops[rn->order[k]];
	return NULL;
}

/* Refused logins in a row, per account, across runs and processes: after
 * auth_failures_notify of them (default 3) the admin gets one notice naming
 * the account and the relay's reply, not one per message or per run. */
static void note_auth(struct run *rn, struct hop *h, int refused)
{
	unsigned long limit = (unsigned long)cfg_long(h->acct, K_AUTH_FAILURES_NOTIFY, 3);
	char subject[200], body[RESULT_TEXT_MAX + 600], why[RESULT_TEXT_MAX + 300];
	char nid[QUEUE_ID_MAX];
	int tell = 0;

	if (qstate_auth(rn->q, h->acct->name, refused, limit, &tell) < 0 || !tell)
		return;
	result_describe(&h->open_r, why, sizeof why);
	snprintf(subject, sizeof subject, "account '%s' cannot log in to %s",
		 h->acct->name, h->rl.p.host ? h->rl.p.host : "its relay");
	snprintf(body, sizeof body, "The relay refused the login of account '%s' %lu "
		 "times in a row.\r\nIts reply: %s\r\n\r\nMail for the account waits "
		 "in the queue (see mailq).\r\nFix user and password (or "
		 "password_command), then run 'pushmail -q'.\r\nThis notice is sent "
		 "once until a login succeeds again.", h->acct->name, limit, why);
	if (notice_admin(rn->q, h->acct, subject, body, nid) == 1)
		add_notice(rn, nid);
}

/* Open h's session; on failure it is down for the run and remembered. */
static int open_hop(struct run *rn, struct hop *h, size_t pos)
{
	char why[RESULT_TEXT_MAX + 300], a[200], b[200];
	const struct hop *nx;

	if (h->ss)
		return 0;
	if (h->relay_ok && relay_auth(&h->rl, &h->open_r) == 0)
		h->ss = smtp_open(&h->rl.p, &h->open_r);
	if (h->ss) {
		if (h->auth_failures)
			note_auth(rn, h, 0);
		return 0;
	}
	h->down = 1;
	result_describe(&h->open_r, why, sizeof why);
	mark(rn->q, h->acct, 0, why);
	if (h->open_r.phase == PHASE_AUTH && h->open_r.code)
		note_auth(rn, h, 1);
	if ((nx = next_up(rn, pos)))
		log_err("relay %s failed: %s; trying %s", hop_name(h, a, sizeof a), why,
			hop_name(nx, b, sizeof b));
	return -1;
}

/* ---- rate_limit ---------------------------------------------------------------- */

int runq_rate_take(struct queue *q, const struct account *a, time_t *due)
{
	long n, period;
	int taken = 1;

	if (!cfg_rate(a, &n, &period))
		return 1;
	/* The window is the queue's, shared by every process of the user; when
	 * it cannot be kept (an account name that is no file name, a write
	 * error) the message goes: a quota is the provider's to enforce. */
	if (qstate_take(q, a->name, n, period, &taken, due) < 0) {
		log_err("warning: account '%s': cannot keep the rate_limit window: %s",
			a->name, strerror(errno));
		return 1;
	}
	return taken;
}

enum runq_outcome runq_hold(struct queue *q, struct qentry *e, const struct account *a,
			    time_t due, struct result *r)
{
	struct result ignored;
	long n = 0, per = 0;
	char at[64];
	struct tm tm;

	cfg_rate(a, &n, &per);
	localtime_r(&due, &tm);
	strftime(at, sizeof at, "%Y-%m-%d %H:%M:%S", &tm);
	result_fail(r, EX_TEMPFAIL, "rate_limit of account '%s' (%ld per %ld s) reached; "
		    "held until %s", a->name, n, per, at);
	qenv_set_error(&e->env, r->text);
	e->env.next_try = due;
	result_clear(&ignored);
	queue_update(q, e, &ignored);
	log_try(a, NULL, e, "deferred", r->text, EX_TEMPFAIL);
	return RUNQ_DEFERRED;
}

/* ---- one message ------------------------------------------------------------- */

/* Deliver e through the first relay that takes it.  A temporary failure
 * (the relay cannot be reached, or says 4xx) moves on to the next relay;
 * a permanent refusal (5xx to MAIL, RCPT or the data) is the message's
 * verdict and is not tried elsewhere.  *last: what the last try said. */
static enum runq_outcome try_hops(struct run *rn, struct qentry *e, struct result *last,
				  int *tried)
{
	struct smtp_outcome out;
	char who[200];

	for (size_t k = 0; k < rn->nhops; k++) {
		struct hop *h = &rn->hops[rn->order[k]];
		if (h->down || (k == 0 && rn->first_try))
			continue;
		if (h->held && h->due > time(NULL)) {
			h->held++;          /* still full: no need to look again */
			continue;
		}
		if (!runq_rate_take(rn->q, h->acct, &h->due)) {
			h->held++;
			continue;
		}
		*tried = 1;
		if (open_hop(rn, h, k) < 0) {
			*last = h->open_r;
			continue;
		}
		memset(&out, 0, sizeof out);
		result_clear(last);
		if (transact(e, h->ss, rn->acct, &out, last) == 0) {
			log_try(h->acct, h->ss, e, "sent", out.final_reply, 0);
			log_info("%s: delivered through %s", e->env.id,
				 hop_name(h, who, sizeof who));
			queue_done(rn->q, e);
			h->sent = 1;
			return RUNQ_DELIVERED;
		}
		if (!smtp_usable(h->ss)) {
			smtp_close(h->ss);
			h->ss = NULL;
		}
		if (!runq_is_temporary(last))
			break;
		if (next_up(rn, k))
			log_info("%s: relay %s deferred it (%s %d); trying the next relay",
				 e->env.id, hop_name(h, who, sizeof who),
				 result_phase_name(last->phase), last->code);
	}
	return RUNQ_DEFERRED;   /* not decided yet: see run_one */
}

/* The hop whose quota frees first, among those holding messages back. */
static const struct hop *first_free(const struct run *rn)
{
	const struct hop *best = NULL;

	for (size_t i = 0; i < rn->nhops; i++)
		if (rn->hops[i].held && !rn->hops[i].down &&
		    (!best || rn->hops[i].due < best->due))
			best = &rn->hops[i];
	return best;
}

static time_t held_until(const struct run *rn)
{
	const struct hop *h = first_free(rn);

	return h ? h->due : 0;
}

static const struct account *held_acct(const struct run *rn)
{
	const struct hop *h = first_free(rn);

	return h ? h->acct : rn->acct;
}

/* Deliver message id (a notice of this run when is_notice: not counted in
 * the run's figures, which are about the mail people sent).  Once every
 * relay is down, the account's other messages are deferred without a try
 * of their own (a relay that accepts and never greets would otherwise cost
 * a full timeout per message); like Postfix, they do not count a try. */
static void run_one(struct run *rn, const char *id, int is_notice)
{
	struct runq_stats *st = rn->st, ignored = { 0 };
	struct qentry e;
	struct result r;
	enum runq_outcome oc;
	int tried = 0;

	result_clear(&r);
	if (queue_lock(rn->q, id, 0, &e, &r) != 0) {
		st->busy += !is_notice;
		return;
	}
	oc = try_hops(rn, &e, &r, &tried);
	if (oc != RUNQ_DELIVERED && !tried && rn->first_try) {
		tried = 1;   /* its try at the first relay, in the batch */
		r = *rn->first_try;
	}
	if (oc != RUNQ_DELIVERED && !tried && rn->open_failed) {
		tried = 1;   /* batching() tried to open the relay for this one */
		r = rn->hops[rn->order[0]].open_r;
	}
	rn->open_failed = 0;
	if (oc == RUNQ_DELIVERED) {
		report(&e, oc, &r);
	} else if (!tried && held_until(rn)) {
		/* every relay it may use is at its quota: due when one frees */
		oc = runq_hold(rn->q, &e, held_acct(rn), held_until(rn), &r);
	} else {
		if (!tried)   /* every relay down: the first one's reason */
			r = rn->hops[rn->order[0]].open_r;
		oc = record(rn->q, &e, rn->acct, NULL, &rn->pol, &r, tried);
		if (tried || oc != RUNQ_DEFERRED)
			report(&e, oc, &r);
		rn->untried += !tried && oc == RUNQ_DEFERRED;
	}
	count(is_notice ? &ignored : st, oc, &r);
	if (oc != RUNQ_DELIVERED && !is_notice)
		give_notice(rn, &e, &r, oc);
	queue_release(&e);
}

static int stopping(const struct runq_opts *o)
{
	return o->stop && o->stop();
}

static void end_run(struct run *rn)
{
	for (size_t i = 0; i < rn->nhops; i++) {
		struct hop *h = &rn->hops[i];
		if (h->held)
			log_err("account '%s': rate_limit reached; %zu message%s held "
				"back for later", h->acct->name, h->held,
				h->held == 1 ? "" : "s");
		if (h->sent)
			mark(rn->q, h->acct, 1, NULL);
		else if (h->skipped && !h->ss && !h->down)
			qstate_count_skip(rn->q, h->acct->name);
		smtp_close(h->ss);
		relay_free(&h->rl);
	}
	free(rn->notices);
	free(rn->again);
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

/* ---- many messages in one flight (issue 17) ---------------------------------- */

/* Messages locked and handed to one smtp_batch: the engine's window
 * (smtp.c: 50 transactions, 16 MiB in flight) slides over them. */
#define BATCH_MAX 200
#define BATCH_BYTES (256ull << 20)

struct slot {
	struct qentry e;
	char **rcpt;                  /* recipients, then the sender */
	struct smtp_envelope env;
	struct smtp_message msg;
};

static void slot_free(struct slot *sl)
{
	for (size_t i = 0; sl->rcpt && i <= sl->e.env.nrcpt; i++)
		free(sl->rcpt[i]);
	free(sl->rcpt);
	sl->rcpt = NULL;
	queue_release(&sl->e);
}

/* The envelope runq_attempt would send; -1 when the message cannot go in a
 * batch (out of memory, a bare name: the one-by-one path says why). */
static int slot_prepare(struct slot *sl, const struct account *a)
{
	const struct qenv *qe = &sl->e.env;
	struct result ignored;

	result_clear(&ignored);
	if (!(sl->rcpt = envelope_rcpts(qe, a)) ||
	    bare_name(sl->rcpt, qe->nrcpt + 1, a, &ignored) < 0)
		return -1;
	sl->env = (struct smtp_envelope){
		.from = sl->rcpt[qe->nrcpt], .rcpt = (const char *const *)sl->rcpt,
		.nrcpt = qe->nrcpt, .size = qe->wire, .eightbit = qe->eightbit,
		.dsn_notify = qe->notify, .dsn_ret = qe->ret, .dsn_envid = qe->envid,
		.binary = qe->nul };
	sl->msg = (struct smtp_message){ .fd = sl->e.msgfd };
	return lseek(sl->e.msgfd, 0, SEEK_SET) < 0 ? -1 : 0;
}

/* A lost item was not this message's fault: no try is counted. */
static enum runq_outcome slot_record(struct run *rn, struct slot *sl,
				     struct smtp_session *ss,
				     const struct smtp_batch_item *it)
{
	if (it->state == SMTP_BATCH_DONE) {
		log_try(rn->acct, ss, &sl->e, "sent", it->out.final_reply, 0);
		queue_done(rn->q, &sl->e);
		return RUNQ_DELIVERED;
	}
	return record(rn->q, &sl->e, rn->acct, ss, &rn->pol, &it->r,
		      it->state == SMTP_BATCH_REFUSED);
}

struct window {
	struct run *rn;
	struct slot *sl;
	struct smtp_batch_item *it;
};

/* The relay batching goes through: the first in the account's order. */
static struct hop *batch_hop(struct run *rn)
{
	return &rn->hops[rn->order[0]];
}

/* With fallback relays, a message the first relay only deferred (4xx) or
 * lost is not recorded: run_one takes it through the others, as it would
 * have without batching. */
static int for_failover(struct run *rn, const struct smtp_batch_item *it)
{
	return rn->nhops > 1 && rn->again && it->state != SMTP_BATCH_DONE &&
	       runq_is_temporary(&it->r);
}

/* smtp_batch tells each item as soon as its verdict is in: recorded at
 * once, so a crash re-sends only what was still on the way. */
static void window_told(void *arg, size_t i)
{
	struct window *w = arg;
	struct run *rn = w->rn;
	struct hop *h = batch_hop(rn);
	enum runq_outcome oc;
	char who[200];

	if (for_failover(rn, &w->it[i])) {
		log_info("%s: relay %s deferred it (%s %d); trying the next relay",
			 w->sl[i].e.env.id, hop_name(h, who, sizeof who),
			 result_phase_name(w->it[i].r.phase), w->it[i].r.code);
		snprintf(rn->again[rn->nagain].id, QUEUE_ID_MAX, "%s", w->sl[i].e.env.id);
		rn->again[rn->nagain++].r = w->it[i].r;
		slot_free(&w->sl[i]);
		return;
	}
	if (rn->nhops > 1 && w->it[i].state == SMTP_BATCH_DONE)
		log_info("%s: delivered through %s", w->sl[i].e.env.id,
			 hop_name(h, who, sizeof who));
	oc = slot_record(rn, &w->sl[i], h->ss, &w->it[i]);
	report(&w->sl[i].e, oc, &w->it[i].r);
	count(rn->st, oc, &w->it[i].r);
	if (oc == RUNQ_DELIVERED)
		h->sent = 1;
	else
		give_notice(rn, &w->sl[i].e, &w->it[i].r, oc);
	slot_free(&w->sl[i]);
}

/* The account's messages go in one window over its first relay's session,
 * from g->idx[*k] on; *k ends at the first one left for run_one (not
 * batchable, or the rate_limit window is full: run_one holds it). */
static void run_window(struct run *rn, const struct group *g, const struct qenv *list,
		       size_t *k)
{
	struct hop *h = batch_hop(rn);
	struct slot *sl = calloc(BATCH_MAX, sizeof *sl);
	struct smtp_batch_item *it = calloc(BATCH_MAX, sizeof *it);
	unsigned long long bytes = 0;
	time_t due;
	size_t m = 0;

	while (sl && it && *k < g->n && m < BATCH_MAX && bytes < BATCH_BYTES) {
		struct result r;

		result_clear(&r);
		if (queue_lock(rn->q, list[g->idx[*k]].id, 0, &sl[m].e, &r) != 0) {
			rn->st->busy++;
			++*k;
			continue;
		}
		if (slot_prepare(&sl[m], rn->acct) < 0 || !smtp_batchable(h->ss, &sl[m].env) ||
		    !runq_rate_take(rn->q, h->acct, &due)) {
			slot_free(&sl[m]);
			break;
		}
		it[m].env = &sl[m].env;
		it[m].msg = &sl[m].msg;
		bytes += sl[m].env.size;
		m++;
		++*k;
	}
	if (m) {
		struct window w = { rn, sl, it };
		if (smtp_batch(h->ss, it, m, window_told, &w) < 0)
			for (size_t i = 0; i < m; i++)   /* out of memory: all lost */
				window_told(&w, i);
	}
	free(sl);
	free(it);
}

/* The relay dropped the connection with several transactions in flight:
 * some relays cannot take a MAIL before their reply to the previous end of
 * data (Dovecot 2.3.19's submission dies on it, having delivered the
 * message whose reply never comes).  Lest every run end the same way, the
 * relay gets one transaction at a time for a week. */
static void serialise(struct run *rn, struct hop *h)
{
	char who[200];

	if (h->rl.p.serial)
		return;
	h->rl.p.serial = 1;
	log_err("relay %s closed the connection with several messages in flight; "
		"sending it one message at a time for %ld days",
		hop_name(h, who, sizeof who), SERIAL_FOR / 86400);
	if (qstate_serial(rn->q, h->acct->name, time(NULL) + SERIAL_FOR) < 0 &&
	    errno != EINVAL)
		log_info("account '%s': cannot record the relay's state: %s",
			 h->acct->name, strerror(errno));
}

/* Batch from *k when the account's first relay opens.  A relay that cannot
 * be opened counts as the try of the message at hand, which run_one then
 * records (or fails over) as it would have. */
static int batching(struct run *rn, const struct group *g, const struct qenv *list,
		    size_t *k)
{
	struct hop *h = batch_hop(rn);
	size_t k0 = *k;

	if (h->down)
		return 0;
	if (!h->ss) {
		if (h->held && h->due > time(NULL))
			return 0;           /* at its quota: run_one holds them */
		if (open_hop(rn, h, 0) < 0) {
			rn->open_failed = 1;   /* the next message's try */
			return 0;
		}
	}
	if (!smtp_usable(h->ss))
		return 0;
	free(rn->again);
	rn->nagain = 0;
	rn->again = rn->nhops > 1 ? calloc(BATCH_MAX, sizeof *rn->again) : NULL;
	run_window(rn, g, list, k);
	if (smtp_window_broke(h->ss))
		serialise(rn, h);
	if (!smtp_usable(h->ss)) {
		smtp_close(h->ss);
		h->ss = NULL;
	}
	for (size_t i = 0; i < rn->nagain && !stopping(rn->o); i++) {
		rn->first_try = &rn->again[i].r;
		run_one(rn, rn->again[i].id, 0);
	}
	rn->first_try = NULL;
	return *k != k0;
}

/* One account's messages, over one connection per relay: a connection
 * broken by a message's transaction is reopened for the next message, a
 * relay that cannot be opened is down for the rest of the run.  The
 * notices about messages given up on go last, the same way. */
static int run_group(struct queue *q, const struct runq_opts *o, struct group *g,
		     const struct qenv *list, struct runq_stats *st, struct result *r_run)
{
	struct run rn = { .q = q, .o = o, .acct = g->acct, .st = st };

	runq_policy_of(g->acct, &rn.pol);
	if (plan_hops(&rn, o->cfg, r_run) < 0) {
		end_run(&rn);
		return -1;
	}
	for (size_t k = 0; k < g->n && !stopping(o); k++) {
		if (batching(&rn, g, list, &k)) {
			k--;   /* the loop's k++ */
			continue;
		}
		run_one(&rn, list[g->idx[k]].id, 0);
	}
	for (size_t k = 0; k < rn.nnotices && !stopping(o); k++)
		run_one(&rn, rn.notices[k], 1);
	/* the delivery service: a burst goes over the same session */
	if (o->linger && rn.nhops == 1 && rn.hops[0].ss && !stopping(o))
		linger(q, o, g->acct, rn.hops[0].ss, &rn.pol, st);
	if (rn.untried)
		log_err("account '%s': %zu more message%s deferred without a try, "
			"after that failure", g->acct->name, rn.untried,
			rn.untried == 1 ? "" : "s");
	end_run(&rn);
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
