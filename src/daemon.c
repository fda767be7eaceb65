/* daemon.c - pushmail --daemon, the system delivery service (SPEC 9).
 *
 * Runs as SYSTEM_USER (started as root, it becomes that user before doing
 * anything else), the only process that holds the relay's credentials.  It
 * waits on inotify for files in the drop directory, picks them up into the
 * system queue (pickup.c) and delivers what is due with the queue rules of
 * SPEC 6 (runq.c).  No polling: it sleeps until a drop arrives, a signal
 * comes, or the next queued message is due.
 *
 * After a delivery it keeps the relay session open for LINGER_MS, and what
 * is dropped meanwhile goes over the same session: a burst (cron at the
 * hour, a script's loop) costs one connection, not one per message.
 *
 * SIGTERM and SIGINT are blocked and read from a signalfd, so they never
 * interrupt an SMTP exchange: the queue run checks for them between
 * messages, finishes the one in flight and the service exits.  SIGHUP only
 * wakes it (the configuration is read again before every round anyway).
 */
#include "config.h"
#include "log.h"
#include "modes.h"
#include "pickup.h"
#include "runq.h"
#include "sysmode.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MAX 3600        /* seconds: wake at least hourly (lifetimes, sweeps) */
#define CONFIG_RETRY 60      /* seconds between tries of a missing/broken config */
#define BURST_MS 200         /* a burst of drops is gathered into one round */
#define LINGER_MS 3000       /* a session stays open this long for more mail */

struct service {
	int ifd, sfd, dropfd;
	sigset_t sigs;
	char last_error[RESULT_TEXT_MAX + 300];
	struct stat cfg_st;          /* the configuration as last loaded */
};

/* Has the configuration file changed since it was loaded? */
static int config_changed(const struct service *sv)
{
	struct stat st;

	if (stat(SYS_CONFIG, &st) < 0)
		return 1;
	return st.st_ino != sv->cfg_st.st_ino || st.st_size != sv->cfg_st.st_size ||
	       st.st_mtim.tv_sec != sv->cfg_st.st_mtim.tv_sec ||
	       st.st_mtim.tv_nsec != sv->cfg_st.st_mtim.tv_nsec;
}

static int become_service_user(struct result *r)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;   /* started as the service user (systemd User=) or a test */
	if (!(pw = getpwnam(SYSTEM_USER)))
		return result_fail(r, EX_CONFIG, "no user '%s': run pushmail "
				   "--setup-system as root first", SYSTEM_USER);
	if (setgroups(0, NULL) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0 || geteuid() == 0)
		return result_fail(r, EX_OSERR, "cannot become user '%s': %s",
				   SYSTEM_USER, strerror(errno));
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	return 0;
}

static int setup(struct service *sv, struct result *r)
{
	sigemptyset(&sv->sigs);
	sigaddset(&sv->sigs, SIGTERM);
	sigaddset(&sv->sigs, SIGINT);
	sigaddset(&sv->sigs, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &sv->sigs, NULL) < 0 ||
	    (sv->sfd = signalfd(-1, &sv->sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		return result_fail(r, EX_OSERR, "signalfd: %s", strerror(errno));
	if ((sv->dropfd = pickup_open(r)) < 0)
		return -1;
	sv->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (sv->ifd < 0 || inotify_add_watch(sv->ifd, SYS_DROP, IN_MOVED_TO) < 0)
		return result_fail(r, EX_OSERR, "inotify on %s: %s", SYS_DROP,
				   strerror(errno));
	return 0;
}

/* Between messages of a queue run: has SIGTERM/SIGINT come? */
static int stop_requested(void)
{
	sigset_t p;

	return sigpending(&p) == 0 &&
	       (sigismember(&p, SIGTERM) == 1 || sigismember(&p, SIGINT) == 1);
}

/* The system configuration, read again every round: an edit takes effect
 * without a restart, and a broken one only delays (messages stay where
 * they are).  Each new problem is logged once. */
static int load_config(struct ctx *c, struct service *sv)
{
	struct result r;
	char text[sizeof sv->last_error];

	cfg_free(&c->cfg);
	c->cfg_found = 0;
	result_clear(&r);
	if (stat(SYS_CONFIG, &sv->cfg_st) < 0)
		memset(&sv->cfg_st, 0, sizeof sv->cfg_st);
	if (cfg_load_file(&c->cfg, SYS_CONFIG, &r) == 0 && cfg_finish(&c->cfg, &r) == 0) {
		c->cfg_found = 1;
		sv->last_error[0] = '\0';
		return 0;
	}
	result_describe(&r, text, sizeof text);
	if (strcmp(text, sv->last_error) != 0)
		log_err("%s; mail waits until it is fixed", text);
	snprintf(sv->last_error, sizeof sv->last_error, "%s", text);
	cfg_free(&c->cfg);
	return -1;
}

/* When the earliest queued message is due (now + WAIT_MAX at the latest). */
static time_t next_due(struct queue *q)
{
	struct qenv *v;
	size_t n;
	struct result r;
	time_t now = time(NULL), due = now + WAIT_MAX;

	if (queue_list(q, 0, &v, &n, &r) < 0)
		return now + CONFIG_RETRY;
	for (size_t i = 0; i < n; i++)
		if (v[i].next_try < due)
			due = v[i].next_try;
	queue_list_free(v, n);
	return due;
}

static void drain(int fd);

struct linger_ctx {
	struct ctx *c;
	struct service *sv;
	struct queue *q;
};

/* runq's linger hook: wait a little for new drops while a session is open,
 * and queue them; a signal ends the wait (the main loop reads it). */
static size_t linger_wait(void *arg)
{
	struct linger_ctx *lc = arg;
	struct pollfd p[2] = { { lc->sv->ifd, POLLIN, 0 }, { lc->sv->sfd, POLLIN, 0 } };
	struct pickup_stats ps;

	if (poll(p, 2, LINGER_MS) <= 0 || (p[1].revents & POLLIN) ||
	    !(p[0].revents & POLLIN))
		return 0;
	/* an edited configuration ends the session: the next round reads it
	 * (and picks these drops up under it) */
	if (config_changed(lc->sv))
		return 0;
	poll(NULL, 0, 50);   /* let the rest of a burst land */
	drain(lc->sv->ifd);
	pickup_run(lc->c, lc->q, lc->sv->dropfd, &ps);
	return ps.queued;
}

/* One round: pick up, deliver what is due; returns when to wake next. */
static time_t round_once(struct ctx *c, struct service *sv)
{
	struct runq_opts o = { .stop = stop_requested, .linger = linger_wait };
	struct relay_overrides ov = { 0 };
	struct pickup_stats ps;
	struct runq_stats st;
	struct queue q;
	struct result r;
	struct linger_ctx lc = { c, sv, &q };
	time_t due;

	result_clear(&r);
	if (load_config(c, sv) < 0)
		return time(NULL) + CONFIG_RETRY;
	c->queue_path = cfg_str(&c->cfg.defaults, K_QUEUE_DIR) ?
			cfg_str(&c->cfg.defaults, K_QUEUE_DIR) : SYS_SPOOL;
	if (ctx_open_queue(c, &q, &r) < 0) {
		log_err("%s", r.text);
		return time(NULL) + CONFIG_RETRY;
	}
	pickup_sweep(sv->dropfd);
	pickup_run(c, &q, sv->dropfd, &ps);
	o.cfg = &c->cfg;
	o.ov = &ov;
	o.linger_arg = &lc;
	if (runq_flush(&q, &o, &st, &r) < 0)
		log_err("queue run: %s", r.text);
	due = next_due(&q);
	queue_close(&q);
	return due;
}

static void drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof buf) > 0)
		;
}

/* Sleep until a drop, a signal or `due`.  Returns 1 when told to stop. */
static int wait_for_work(struct service *sv, time_t due)
{
	struct pollfd p[2] = { { sv->ifd, POLLIN, 0 }, { sv->sfd, POLLIN, 0 } };
	struct signalfd_siginfo si;
	time_t now = time(NULL);
	long ms = due > now ? (long)(due - now) * 1000 : 0;

	if (ms > WAIT_MAX * 1000L)
		ms = WAIT_MAX * 1000L;
	if (poll(p, 2, (int)ms) < 0 && errno != EINTR)
		return 1;
	while (read(sv->sfd, &si, sizeof si) == (ssize_t)sizeof si)
		if (si.ssi_signo != SIGHUP)
			return 1;
	if (p[0].revents & POLLIN) {
		/* a burst (cron at the hour, a script's loop) goes in one round */
		poll(NULL, 0, BURST_MS);
		drain(sv->ifd);
	}
	return 0;
}

int mode_daemon(struct ctx *c, struct result *r)
{
	struct service sv = { .ifd = -1, .sfd = -1, .dropfd = -1 };
	int rc = -1;

	if (become_service_user(r) < 0 || setup(&sv, r) < 0)
		goto out;
	log_err("delivery service started as %s (drop %s)", SYSTEM_USER, SYS_DROP);
	while (!wait_for_work(&sv, round_once(c, &sv)))
		;
	log_err("delivery service stopped");
	rc = 0;
out:
	if (sv.ifd >= 0)
		close(sv.ifd);
	if (sv.sfd >= 0)
		close(sv.sfd);
	if (sv.dropfd >= 0)
		close(sv.dropfd);
	return rc;
}
