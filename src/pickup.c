/* pickup.c - drop files into the queue (see pickup.h, drop.h).  Modelled on
 * Postfix's pickup(8): trust nothing in the file, take the sender's uid from
 * the file's owner, keep whatever cannot be used. */
#include "config.h"
#include "drop.h"
#include "log.h"
#include "modes.h"
#include "pickup.h"
#include "queue.h"
#include "sysmode.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STALE_TMP (24 * 3600)

int pickup_open(struct result *r)
{
	int fd = open(SYS_DROP, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return result_fail(r, errno == ENOENT ? EX_CONFIG : EX_CANTCREAT,
				   "cannot open %s: %s%s", SYS_DROP, strerror(errno),
				   errno == ENOENT ? " (run pushmail --setup-system)" : "");
	return fd;
}

/* One file being picked up. */
struct drop {
	char id[DROP_ID_MAX];
	char name[DROP_ID_MAX + 2];
	int fd;
	struct stat st;
	struct drop_head h;
	char user[64];
};

/* Root always; otherwise the names in trusted_users. */
static int trusted(const struct ctx *c, const struct drop *d)
{
	const char *list = cfg_str(&c->cfg.defaults, K_TRUSTED_USERS);
	size_t n = strlen(d->user);

	if (d->st.st_uid == 0)
		return 1;
	for (const char *p = list; p && *p; p += strcspn(p, ","), p += *p == ',') {
		if (strncmp(p, d->user, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return 1;
	}
	return 0;
}

/* The kernel's word for who sent it.  A uid with no name still gets an
 * address that cannot belong to anybody else. */
static void identify(struct drop *d)
{
	struct passwd *pw = getpwuid(d->st.st_uid);

	if (pw && pw->pw_name[0] && strlen(pw->pw_name) < sizeof d->user &&
	    strspn(pw->pw_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789._-") == strlen(pw->pw_name))
		snprintf(d->user, sizeof d->user, "%s", pw->pw_name);
	else
		snprintf(d->user, sizeof d->user, "uid-%u", (unsigned)d->st.st_uid);
}

/* The checks that need no parsing: what the helper makes, and nothing else. */
static const char *check_file(const struct drop *d)
{
	if (!S_ISREG(d->st.st_mode))
		return "not a regular file";
	if (d->st.st_nlink != 1)
		return "has other links";
	if ((d->st.st_mode & 07777) != 0604)
		return "wrong mode";
	if ((unsigned long long)d->st.st_size > DROP_FILE_MAX)
		return "too large";
	return NULL;
}

static const char *read_head(struct drop *d, char *err, size_t cap)
{
	char *buf = malloc(DROP_HEAD_MAX);
	ssize_t n;
	int rc;

	if (!buf)
		return "out of memory";
	n = pread(d->fd, buf, DROP_HEAD_MAX, 0);
	rc = n < 0 ? -1 : drop_parse(buf, (size_t)n, &d->h, err, cap);
	free(buf);
	if (n < 0)
		return strerror(errno);
	if (rc == 1)
		return "no end of the head";
	return rc < 0 ? err : NULL;
}

/* Keep a file that cannot be used where the administrator finds it. */
static void reject(int dropfd, struct drop *d, const char *why, struct pickup_stats *st)
{
	char bad[DROP_ID_MAX + 2];

	snprintf(bad, sizeof bad, "x.%s", d->id);
	renameat(dropfd, d->name, dropfd, bad);
	fsync(dropfd);
	log_err("drop %s from %s: %s; kept as %s/%s", d->id, d->user, why, SYS_DROP, bad);
	st->rejected++;
}

static int temporary(int code)
{
	return code == EX_TEMPFAIL || code == EX_CANTCREAT || code == EX_OSERR ||
	       code == EX_IOERR || code == EX_CONFIG || code == EX_SOFTWARE;
}

/* Spool d into q as its user's message. */
static int enqueue(struct ctx *c, struct queue *q, struct drop *d, struct result *r)
{
	struct ctx sub = { 0 };
	struct submit_req req = {
		.infd = d->fd, .rcpt = d->h.rcpt, .nrcpt = d->h.nrcpt,
		.extract = d->h.extract, .spool_only = 1, .queue_id = d->id,
		.user = d->user,
	};

	if (d->h.from && trusted(c, d))
		req.from = d->h.from;
	else if (d->h.from)
		log_info("drop %s: -f from %s ignored (not in trusted_users)", d->id, d->user);
	sub.cfg = c->cfg;            /* shared, not freed through sub */
	sub.cfg_found = c->cfg_found;
	sub.queue_path = q->dir;
	sub.o.full_name = d->h.name;
	sub.o.dsn_notify = d->h.notify;
	sub.o.dsn_ret = d->h.ret;
	sub.o.dsn_envid = d->h.envid;
	if (lseek(d->fd, (off_t)d->h.len, SEEK_SET) < 0)
		return result_fail(r, EX_IOERR, "%s", strerror(errno));
	return submit(&sub, &req, r);
}

static void pickup_one(struct ctx *c, struct queue *q, int dropfd, struct drop *d,
		       struct pickup_stats *st)
{
	struct result r;
	const char *why;
	char err[200];

	result_clear(&r);
	identify(d);
	if ((why = check_file(d)) || (why = read_head(d, err, sizeof err))) {
		reject(dropfd, d, why, st);
		return;
	}
	if (!queue_exists(q, d->id) && enqueue(c, q, d, &r) < 0) {
		char text[RESULT_TEXT_MAX + 300];
		result_describe(&r, text, sizeof text);
		if (!temporary(r.exitcode)) {
			reject(dropfd, d, text, st);
			return;
		}
		log_err("drop %s from %s: %s; will try again", d->id, d->user, text);
		st->waiting++;
		return;
	}
	/* queued (now or by an interrupted earlier pickup): the drop file goes,
	 * which is what commits the queue entry (queue_held) */
	unlinkat(dropfd, d->name, 0);
	fsync(dropfd);
	log_info("drop %s from %s queued", d->id, d->user);
	st->queued++;
}

/* Lock the file (another pickup may be at it) and make sure it is still
 * the one in the directory. */
static int take(int dropfd, struct drop *d)
{
	d->fd = openat(dropfd, d->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
		       O_CLOEXEC);
	if (d->fd < 0)
		return -1;
	if (flock(d->fd, LOCK_EX | LOCK_NB) < 0 || fstat(d->fd, &d->st) < 0 ||
	    d->st.st_nlink == 0) {
		close(d->fd);
		return -1;
	}
	return 0;
}

/* fn(dropfd, name, arg) for every name in the drop directory, once. */
static void each_entry(int dropfd, void (*fn)(int, const char *, void *), void *arg)
{
	int fd = dup(dropfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(dir);   /* a dup shares the offset of the last listing */
	while ((de = readdir(dir)))
		fn(dropfd, de->d_name, arg);
	closedir(dir);
}

struct run {
	struct ctx *c;
	struct queue *q;
	struct pickup_stats *st;
};

static void run_one(int dropfd, const char *name, void *arg)
{
	struct run *ru = arg;
	struct drop d = { .fd = -1 };

	if (!drop_ready_name(name, d.id))
		return;
	snprintf(d.name, sizeof d.name, "m.%s", d.id);
	if (take(dropfd, &d) < 0)
		return;
	pickup_one(ru->c, ru->q, dropfd, &d, ru->st);
	drop_head_free(&d.h);
	close(d.fd);
}

int pickup_run(struct ctx *c, struct queue *q, int dropfd, struct pickup_stats *st)
{
	struct run ru = { c, q, st };

	memset(st, 0, sizeof *st);
	q->holdfd = dropfd;
	each_entry(dropfd, run_one, &ru);
	return 0;
}

static void sweep_one(int dropfd, const char *name, void *arg)
{
	struct stat st;

	(void)arg;
	if (strncmp(name, "t.", 2) == 0 &&
	    fstatat(dropfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    time(NULL) - st.st_mtime > STALE_TMP)
		unlinkat(dropfd, name, 0);
}

void pickup_sweep(int dropfd)
{
	each_entry(dropfd, sweep_one, NULL);
}

struct counts {
	size_t ready, rejected;
};

static void count_one(int dropfd, const char *name, void *arg)
{
	struct counts *n = arg;

	(void)dropfd;
	n->ready += strncmp(name, "m.", 2) == 0;
	n->rejected += strncmp(name, "x.", 2) == 0;
}

void pickup_count(int dropfd, size_t *ready, size_t *rejected)
{
	struct counts n = { 0, 0 };

	each_entry(dropfd, count_one, &n);
	*ready = n.ready;
	*rejected = n.rejected;
}

int pickup_before_run(struct ctx *c, struct queue *q)
{
	struct pickup_stats st;
	struct result r;
	int fd;

	if (!c->cfg_found || strcmp(q->dir, SYS_SPOOL) != 0)
		return -1;
	result_clear(&r);
	if ((fd = pickup_open(&r)) < 0)
		return -1;
	pickup_run(c, q, fd, &st);
	if (st.queued || st.rejected || st.waiting)
		log_info("drop directory: %zu queued, %zu rejected, %zu waiting",
			 st.queued, st.rejected, st.waiting);
	return fd;
}
