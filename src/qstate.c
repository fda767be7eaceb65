/* qstate.c - per-account relay state in the queue directory (see qstate.h). */
#include "config.h"
#include "qstate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_MAGIC "pushmail-state 1"
#define STATE_MAX 8192

int qstate_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > 64 || name[0] == '.')
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789._+-") == n;
}

static void set_num(struct qstate *st, const char *key, const char *v)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *end || end == v || n < 0)
		return;
	if (!strcmp(key, "skip_until"))
		st->skip_until = (time_t)n;
	else if (!strcmp(key, "last_success"))
		st->last_success = (time_t)n;
	else if (!strcmp(key, "last_error_at"))
		st->last_error_at = (time_t)n;
	else if (!strcmp(key, "skipped"))
		st->skipped = (unsigned long)n;
	else if (!strcmp(key, "rate_width"))
		st->rate_width = (long)n;
	else if (!strcmp(key, "auth_failures"))
		st->auth_failures = (unsigned long)n;
	else if (!strcmp(key, "auth_notified"))
		st->auth_notified = n != 0;
	else if (!strcmp(key, "serial_until"))
		st->serial_until = (time_t)n;
}

/* "bucket IDX N", in increasing IDX order */
static void add_bucket(struct qstate *st, const char *v)
{
	long long idx;
	unsigned long n;
	int len = 0;

	if (sscanf(v, "%lld %lu%n", &idx, &n, &len) != 2 || v[len] || idx < 0 ||
	    st->nbuckets == QSTATE_BUCKETS ||
	    (st->nbuckets && st->bucket[st->nbuckets - 1].idx >= idx))
		return;
	st->bucket[st->nbuckets].idx = idx;
	st->bucket[st->nbuckets++].n = n;
}

void qstate_parse(const char *text, size_t len, struct qstate *out)
{
	char line[512];
	const char *p = text, *end = text + len;

	memset(out, 0, sizeof *out);
	if (len < sizeof STATE_MAGIC || memcmp(text, STATE_MAGIC "\n", sizeof STATE_MAGIC))
		return;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		char *sp;
		if (n < sizeof line) {
			memcpy(line, p, n);
			line[n] = '\0';
			if ((sp = strchr(line, ' '))) {
				*sp++ = '\0';
				if (!strcmp(line, "last_error"))
					snprintf(out->last_error, sizeof out->last_error, "%s", sp);
				else if (!strcmp(line, "bucket"))
					add_bucket(out, sp);
				else
					set_num(out, line, sp);
			}
		}
		p = nl ? nl + 1 : end;
	}
	for (char *c = out->last_error; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
}

int qstate_format(const struct qstate *st, char *out, size_t cap)
{
	char err[sizeof st->last_error];
	int n;

	snprintf(err, sizeof err, "%s", st->last_error);
	for (char *c = err; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	n = snprintf(out, cap, "%s\nskip_until %lld\nlast_success %lld\n"
		     "last_error_at %lld\nskipped %lu\nauth_failures %lu\n"
		     "auth_notified %d\nlast_error %s\n", STATE_MAGIC,
		     (long long)st->skip_until, (long long)st->last_success,
		     (long long)st->last_error_at, st->skipped, st->auth_failures,
		     st->auth_notified, err);
	for (size_t i = 0; n >= 0 && (size_t)n < cap && i < st->nbuckets; i++) {
		int k = snprintf(out + n, cap - (size_t)n, "bucket %lld %lu\n",
				 st->bucket[i].idx, st->bucket[i].n);
		n = k < 0 ? -1 : n + k;
	}
	if (n >= 0 && (size_t)n < cap && st->serial_until) {
		int k = snprintf(out + n, cap - (size_t)n, "serial_until %lld\n",
				 (long long)st->serial_until);
		n = k < 0 ? -1 : n + k;
	}
	if (n >= 0 && (size_t)n < cap && st->rate_width) {
		int k = snprintf(out + n, cap - (size_t)n, "rate_width %ld\n", st->rate_width);
		n = k < 0 ? -1 : n + k;
	}
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

int qstate_rate_take(struct qstate *st, long n, long period, time_t now, time_t *due)
{
	long w = (period + 63) / 64;
	long long lo = ((long long)now - period) / w, cur = (long long)now / w;
	unsigned long sum = 0;
	size_t k = 0;

	if (st->rate_width != w) {      /* a new limit: a new window */
		st->rate_width = w;
		st->nbuckets = 0;
	}
	/* a bucket counts while any of it lies within the last period */
	while (k < st->nbuckets && st->bucket[k].idx < lo)
		k++;
	memmove(st->bucket, st->bucket + k, (st->nbuckets - k) * sizeof st->bucket[0]);
	st->nbuckets -= k;
	for (k = 0; k < st->nbuckets; k++)
		sum += st->bucket[k].n;
	if (sum < (unsigned long)n) {
		if (st->nbuckets && st->bucket[st->nbuckets - 1].idx >= cur) {
			st->bucket[st->nbuckets - 1].n++;
		} else if (st->nbuckets < QSTATE_BUCKETS) {
			st->bucket[st->nbuckets].idx = cur;
			st->bucket[st->nbuckets++].n = 1;
		}
		return 1;
	}
	/* full: a message may go once enough of the oldest buckets left it */
	*due = now + period;
	for (k = 0; k < st->nbuckets; k++) {
		sum -= st->bucket[k].n;
		if (sum < (unsigned long)n) {
			*due = (time_t)((st->bucket[k].idx + 1) * w + period);
			break;
		}
	}
	return 0;
}

/* QUEUE/state, created on first use (mode 0700, like the queue). */
static int state_dir(struct queue *q)
{
	int fd;

	if (mkdirat(q->dfd, "state", 0700) < 0 && errno != EEXIST)
		return -1;
	fd = openat(q->dfd, "state", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && geteuid() == 0 && q->uid != 0)
		(void)!fchown(fd, q->uid, q->gid);
	return fd;
}

static void read_at(int dir, const char *name, struct qstate *out)
{
	char buf[STATE_MAX];
	int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf, 0) : -1;

	if (fd >= 0)
		close(fd);
	qstate_parse(buf, n > 0 ? (size_t)n : 0, out);
}

int qstate_read(struct queue *q, const char *name, struct qstate *out)
{
	int dir;

	memset(out, 0, sizeof *out);
	if (!qstate_name_ok(name))
		return errno = EINVAL, -1;
	/* reading creates nothing (mailq) */
	dir = openat(q->dfd, "state", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0)
		return 0;
	read_at(dir, name, out);
	close(dir);
	return 0;
}

/* Write st as dir/name through dir/name.new. */
static int write_at(const struct queue *q, int dir, const char *name,
		    const struct qstate *st)
{
	char buf[STATE_MAX], tmp[96];
	int n = qstate_format(st, buf, sizeof buf), fd, rc = -1;

	snprintf(tmp, sizeof tmp, "%s.new", name);
	if (n < 0)
		return errno = EOVERFLOW, -1;
	fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (geteuid() == 0 && q->uid != 0)
		(void)!fchown(fd, q->uid, q->gid);
	if (write(fd, buf, (size_t)n) == n && fsync(fd) == 0 &&
	    renameat(dir, tmp, dir, name) == 0)
		rc = 0;
	close(fd);
	if (rc < 0)
		unlinkat(dir, tmp, 0);
	return rc;
}

int qstate_update(struct queue *q, const char *name,
		  void (*fn)(struct qstate *st, void *arg), void *arg)
{
	char lockn[96];
	struct qstate st;
	int dir, lock, rc = -1;

	if (!qstate_name_ok(name))
		return errno = EINVAL, -1;
	if ((dir = state_dir(q)) < 0)
		return -1;
	snprintf(lockn, sizeof lockn, "%s.lock", name);
	lock = openat(dir, lockn, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lock >= 0 && geteuid() == 0 && q->uid != 0)
		(void)!fchown(lock, q->uid, q->gid);
	if (lock >= 0 && flock(lock, LOCK_EX) == 0) {
		read_at(dir, name, &st);
		fn(&st, arg);
		rc = write_at(q, dir, name, &st);
	}
	if (lock >= 0)
		close(lock);
	close(dir);
	return rc;
}

/* ---- operations --------------------------------------------------------------- */

struct mark {
	int ok;
	time_t now;
	const char *why;
	long skip_for;
};

static void apply_mark(struct qstate *st, void *arg)
{
	const struct mark *m = arg;

	if (m->ok) {
		st->last_success = m->now;
		st->skip_until = 0;
		st->auth_failures = 0;   /* it logged in (or needs no login) */
		st->auth_notified = 0;
		return;
	}
	st->skip_until = m->now + m->skip_for;
	st->last_error_at = m->now;
	snprintf(st->last_error, sizeof st->last_error, "%s", m->why ? m->why : "");
}

int qstate_mark(struct queue *q, const char *name, int ok, const char *why,
		long skip_for)
{
	struct mark m = { .ok = ok, .now = time(NULL), .why = why, .skip_for = skip_for };

	return qstate_update(q, name, apply_mark, &m);
}

static void apply_skip(struct qstate *st, void *arg)
{
	(void)arg;
	st->skipped++;
}

int qstate_count_skip(struct queue *q, const char *name)
{
	return qstate_update(q, name, apply_skip, NULL);
}

struct auth_count {
	int refused;
	unsigned long limit;
	int tell;
};

static void apply_auth(struct qstate *st, void *arg)
{
	struct auth_count *c = arg;

	if (!c->refused) {
		st->auth_failures = 0;
		st->auth_notified = 0;
		return;
	}
	st->auth_failures++;
	c->tell = st->auth_failures >= c->limit && !st->auth_notified;
	st->auth_notified |= c->tell;
}

int qstate_auth(struct queue *q, const char *name, int refused, unsigned long limit,
		int *tell)
{
	struct auth_count c = { .refused = refused, .limit = limit };
	int rc = qstate_update(q, name, apply_auth, &c);

	*tell = rc == 0 && c.tell;
	return rc;
}

static void apply_serial(struct qstate *st, void *arg)
{
	st->serial_until = *(const time_t *)arg;
}

int qstate_serial(struct queue *q, const char *name, time_t until)
{
	return qstate_update(q, name, apply_serial, &until);
}

struct take {
	long n, period;
	time_t now, due;
	int taken;
};

static void apply_take(struct qstate *st, void *arg)
{
	struct take *t = arg;

	t->taken = qstate_rate_take(st, t->n, t->period, t->now, &t->due);
}

int qstate_take(struct queue *q, const char *name, long n, long period, int *taken,
		time_t *due)
{
	struct take t = { .n = n, .period = period, .now = time(NULL), .taken = 1 };
	int rc = qstate_update(q, name, apply_take, &t);

	*taken = t.taken;
	*due = t.due;
	return rc;
}
