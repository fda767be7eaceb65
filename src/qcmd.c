/* qcmd.c - the queue's commands: mailq (-bp), -q and -qINTERVAL,
 * --queue-delete and --queue-retry. */
#include "config.h"
#include "log.h"
#include "modes.h"
#include "pickup.h"
#include "qstate.h"
#include "runq.h"
#include "sysmode.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* "90" seconds, "15m", "2h", "1d" -> seconds; -1 when malformed. */
static long parse_interval(const char *s)
{
	char *end;
	long n = strtol(s, &end, 10);

	if (end == s || n <= 0 || n > 100000000L)
		return -1;
	switch (*end) {
	case '\0': case 's': break;
	case 'm': n *= 60; break;
	case 'h': n *= 3600; break;
	case 'd': n *= 86400; break;
	default: return -1;
	}
	return *end && end[1] ? -1 : n;
}

static void human_age(long secs, char *out, size_t cap)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(out, cap, "%lds", secs);
	else if (secs < 7200)
		snprintf(out, cap, "%ldm", secs / 60);
	else if (secs < 172800)
		snprintf(out, cap, "%ldh", secs / 3600);
	else
		snprintf(out, cap, "%ldd", secs / 86400);
}

static void human_size(unsigned long long n, char *out, size_t cap)
{
	if (n < 10240)
		snprintf(out, cap, "%llu", n);
	else if (n < 10ull << 20)
		snprintf(out, cap, "%lluK", n >> 10);
	else
		snprintf(out, cap, "%lluM", n >> 20);
}

static void print_entry(const struct qenv *e, time_t now, int failed)
{
	char age[24], size[24], next[32];

	human_age(now - e->created, age, sizeof age);
	human_size(e->size, size, sizeof size);
	if (failed)
		snprintf(next, sizeof next, "failed");
	else if (e->next_try <= now)
		snprintf(next, sizeof next, "now");
	else {
		char d[24];
		human_age(e->next_try - now, d, sizeof d);
		snprintf(next, sizeof next, "in %s", d);
	}
	printf("%-38s %5s %6s %5d  %-8s %s\n", e->id, age, size, e->tries, next,
	       e->account[0] ? e->account : "(none)");
	printf("    from <%s> to", e->from);
	for (size_t i = 0; i < e->nrcpt; i++)
		printf(" <%s>%s", e->rcpt[i], i + 1 < e->nrcpt ? "," : "");
	printf("\n");
	if (e->error[0])
		printf("    last error: %s\n", e->error);
}

/* The system spool: what waits in the drop directory (SPEC 9). */
static void print_drops(const struct queue *q)
{
	size_t ready = 0, rejected = 0;
	struct result r;
	int fd;

	if (strcmp(q->dir, SYS_SPOOL) != 0)
		return;
	result_clear(&r);
	if ((fd = pickup_open(&r)) < 0)
		return;
	pickup_count(fd, &ready, &rejected);
	close(fd);
	if (ready)
		printf("%zu message(s) waiting in %s for the delivery service "
		       "(pushmail --daemon, or pushmail -q as root)\n", ready, SYS_DROP);
	if (rejected)
		printf("%zu unusable drop file(s) kept as %s/x.* (see the log)\n",
		       rejected, SYS_DROP);
}

/* A user's queue has no service behind it: say so when mail is getting old. */
static void warn_stale(const struct qenv *v, size_t n, time_t now)
{
	size_t old = 0;

	for (size_t i = 0; i < n; i++)
		old += now - v[i].created > 3600;
	if (old && geteuid() != 0)
		printf("note: %zu message(s) have waited over an hour; nothing flushes "
		       "this queue but 'pushmail -q' (set up the user timer or cron "
		       "line from the README)\n", old);
}

static void print_damaged(const char *name, void *arg)
{
	char safe[2 * QUEUE_ID_MAX];

	result_sanitise(safe, sizeof safe, name, strlen(name));
	printf("damaged: %s/%s: not a queue envelope pushmail can read; it is not "
	       "sent (see it, then remove it with --queue-delete or by hand)\n",
	       (const char *)arg, safe);
}

/* "5m ago" / "never" */
static void ago(time_t when, time_t now, char *out, size_t cap)
{
	char d[24];

	if (!when) {
		snprintf(out, cap, "never");
		return;
	}
	human_age(now - when, d, sizeof d);
	snprintf(out, cap, "%s ago", d);
}

/* One line per configured account: is its relay working?  From the state
 * the queue runs keep (qstate.h), so it shows what cron and the timer saw. */
static void print_health(const struct ctx *c, struct queue *q, time_t now)
{
	for (size_t i = 0; c->cfg_found && i < c->cfg.n; i++) {
		const struct account *a = &c->cfg.v[i];
		char ok[32], bad[32], skip[64] = "";
		struct qstate st;

		if (qstate_read(q, a->name, &st) < 0)
			continue;
		ago(st.last_success, now, ok, sizeof ok);
		ago(st.last_error_at, now, bad, sizeof bad);
		if (st.skip_until > now) {
			char d[24];
			human_age(st.skip_until - now, d, sizeof d);
			snprintf(skip, sizeof skip, ", tried last for %s more", d);
		}
		printf("account '%s': last success %s; last error %s%s%s; relay skipped "
		       "%lu time%s%s\n", a->name, ok, bad, st.last_error[0] ? ": " : "",
		       st.last_error, st.skipped, st.skipped == 1 ? "" : "s", skip);
	}
}

int mode_mailq(struct ctx *c, struct result *r)
{
	struct queue q;
	struct qenv *v[2];
	size_t n[2];
	time_t now = time(NULL);

	if (ctx_load_config(c, 0, r) < 0 || ctx_open_queue(c, &q, r) < 0)
		return -1;
	if (queue_list(&q, 0, &v[0], &n[0], r) < 0 ||
	    queue_list(&q, 1, &v[1], &n[1], r) < 0) {
		queue_close(&q);
		return -1;
	}
	if (n[0] + n[1] == 0)
		printf("Mail queue is empty (%s)\n", q.dir);
	else
		printf("%-38s %5s %6s %5s  %-8s %s\n", "ID", "AGE", "SIZE", "TRIES",
		       "NEXT", "ACCOUNT");
	for (int f = 0; f < 2; f++)
		for (size_t i = 0; i < n[f]; i++)
			print_entry(&v[f][i], now, f);
	queue_damaged(&q, 0, print_damaged, "new");
	queue_damaged(&q, 1, print_damaged, "failed");
	if (n[0] + n[1])
		printf("%zu queued, %zu failed in %s\n", n[0], n[1], q.dir);
	print_drops(&q);
	warn_stale(v[0], n[0], now);
	print_health(c, &q, now);
	queue_list_free(v[0], n[0]);
	queue_list_free(v[1], n[1]);
	queue_close(&q);
	return 0;
}

/* One queue run.  -1 only when the run itself could not happen (r says
 * why); what became of the messages is in st. */
static int flush_once(struct ctx *c, struct queue *q, const char *only_id, int force,
		      struct runq_stats *st, struct result *r)
{
	struct relay_overrides ov;
	struct runq_opts o = { .cfg = &c->cfg, .ov = &ov, .only_id = only_id,
			       .force = force || only_id != NULL };
	int dropfd = pickup_before_run(c, q), rc;

	ctx_overrides(c, &ov);
	rc = runq_flush(q, &o, st, r);
	if (dropfd >= 0)
		close(dropfd);
	q->holdfd = -1;
	if (rc < 0)
		return -1;
	if (st->unroutable)
		log_err("%zu queued message(s) match no account; add one (see "
			"pushmail.conf(5)) or delete them with --queue-delete", st->unroutable);
	log_info("queue run: %zu delivered, %zu deferred, %zu failed, %zu in use",
		 st->delivered, st->deferred, st->failed, st->busy);
	return 0;
}

/* The exit status of a one-shot run (pushmail(1) EXIT STATUS): 0 when
 * nothing failed and nothing is left waiting, else the first permanent
 * failure's status, else EX_TEMPFAIL.  The summary line is the failure
 * line main() prints; after a clean run it is printed here when `loud`
 * (a person typed -q) and only with -v otherwise (the timer, cron). */
static int run_verdict(const struct runq_stats *st, int loud, struct result *r)
{
	size_t waiting = st->deferred + st->unroutable + st->orphaned;

	if (st->failed || waiting) {
		result_clear(r);
		return result_fail(r, st->failed ? st->fail_exit : EX_TEMPFAIL,
				   "queue run: %zu sent, %zu deferred, %zu failed",
				   st->delivered, waiting, st->failed);
	}
	if (loud && st->delivered)
		log_err("queue run: %zu sent, 0 deferred, 0 failed", st->delivered);
	return 0;
}

int mode_runq(struct ctx *c, struct result *r)
{
	struct runq_stats st;
	long every = 0;
	struct queue q;
	int rc;

	if (c->o.queue_interval && (every = parse_interval(c->o.queue_interval)) < 0)
		return result_fail(r, EX_USAGE, "bad queue interval '-q%s' (use e.g. "
				   "-q30s, -q15m, -q1h)", c->o.queue_interval);
	if (ctx_load_config(c, 1, r) < 0 || ctx_open_queue(c, &q, r) < 0)
		return -1;
	if (!every) {
		/* -q: everything now, back-off ignored, as sendmail -q and
		 * postqueue -f; -q --due: only what is due (timer, cron) */
		rc = flush_once(c, &q, NULL, !c->o.queue_due, &st, r);
		if (rc == 0)
			rc = run_verdict(&st, !c->o.queue_due, r);
		queue_close(&q);
		return rc;
	}
	/* -qINTERVAL runs in the foreground until killed (systemd, cron
	 * @reboot), honouring back-off; it stops only when a run cannot
	 * happen at all. */
	do {
		rc = flush_once(c, &q, NULL, 0, &st, r);
		sleep((unsigned)every);
	} while (rc == 0);
	queue_close(&q);
	return rc;
}

/* Lock ID wherever it is: new/ first, then failed/. */
static int lock_any(struct queue *q, const char *id, struct qentry *e,
		    struct result *r)
{
	int rc = queue_lock(q, id, 0, e, r);

	if (rc == 1)
		rc = queue_lock(q, id, 1, e, r);
	if (rc == 1)
		return result_fail(r, EX_NOINPUT, "no queued message %s (or it is being "
				   "delivered right now)", id);
	return rc;
}

int mode_queue_delete(struct ctx *c, struct result *r)
{
	struct queue q;
	int rc;

	if (!queue_id_valid(c->o.queue_id))
		return result_fail(r, EX_USAGE, "bad queue id '%.60s' (see mailq)",
				   c->o.queue_id);
	if (ctx_load_config(c, 0, r) < 0 || ctx_open_queue(c, &q, r) < 0)
		return -1;
	/* Not queue_lock: a damaged entry must be removable too. */
	rc = queue_remove(&q, c->o.queue_id, r);
	if (rc == 1)
		rc = result_fail(r, EX_NOINPUT, "no queued message %s (or it is being "
				 "delivered right now)", c->o.queue_id);
	if (rc == 0)
		printf("deleted %s\n", c->o.queue_id);
	queue_close(&q);
	return rc;
}

int mode_queue_retry(struct ctx *c, struct result *r)
{
	struct runq_stats st;
	struct queue q;
	struct qentry e;
	int rc;

	if (!queue_id_valid(c->o.queue_id))
		return result_fail(r, EX_USAGE, "bad queue id '%.60s' (see mailq)",
				   c->o.queue_id);
	if (ctx_load_config(c, 1, r) < 0 || ctx_open_queue(c, &q, r) < 0)
		return -1;
	rc = lock_any(&q, c->o.queue_id, &e, r);
	if (rc == 0 && e.where == 1)
		rc = queue_revive(&q, &e, r);
	if (rc == 0)
		queue_release(&e);
	if (rc == 0 && (rc = flush_once(c, &q, c->o.queue_id, 1, &st, r)) == 0)
		rc = run_verdict(&st, 0, r);
	queue_close(&q);
	return rc;
}
