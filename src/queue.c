/* queue.c - the crash-safe local spool (see queue.h). */
#include "config.h"
#include "sbuf.h"
#include "queue.h"
#include "qid.h"
#include "body.h"
#include "cfg.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define SPOOL_BLOCK (64 * 1024)
#define ENV_MAX (1024 * 1024)      /* an envelope file is never larger */
#define ENV_MAGIC "pushmail-queue 1"

/* ---- directories ------------------------------------------------------------ */

void queue_default_dir(const char *queue_dir, char *out, size_t cap)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	const char *env = getenv("PUSHMAIL_QUEUE_DIR");

	/* Like PUSHMAIL_CONFIG: an environment override, never when set-id. */
	if (env && *env && !cfg_running_setid())
		snprintf(out, cap, "%s", env);
	else if (queue_dir)
		snprintf(out, cap, "%s", queue_dir);
	else if (geteuid() == 0)
		snprintf(out, cap, "%s", SPOOLDIR);
	else if (xdg && xdg[0] == '/' && getuid() == geteuid())
		snprintf(out, cap, "%s/pushmail/queue", xdg);
	else if ((home = cfg_home_dir()))
		snprintf(out, cap, "%s/.local/state/pushmail/queue", home);
	else
		out[0] = '\0';   /* never a shared directory such as /tmp (SPEC 6) */
}

/* The delivery service's user owns the system spool (SPEC 9); root works in
 * it too, and gives what it creates there to that user. */
static int service_uid(uid_t uid)
{
	struct passwd *pw = getpwnam(SYSTEM_USER);

	return pw && pw->pw_uid == uid;
}

static void adopt(const struct queue *q, int fd)
{
	if (geteuid() == 0 && q->uid != 0 && fd >= 0)
		(void)!fchown(fd, q->uid, q->gid);
}

/* mkdir -p: the queue directory itself 0700, parents we create 0755 (a
 * private parent such as /usr/local/var would lock callers out of the
 * system spool's drop directory below it). */
static int make_path(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof buf)
		return errno = ENAMETOOLONG, -1;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* Another user's directory, or one others may write to, could be used to
 * read or replace queued mail: refuse it. */
static int check_owner(int fd, const char *path, struct result *r)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return result_fail(r, EX_CANTCREAT, "queue %s: %s", path, strerror(errno));
	if (st.st_uid != geteuid() && !(geteuid() == 0 && service_uid(st.st_uid)))
		return result_fail(r, EX_CANTCREAT, "queue directory %s belongs to uid %u, "
				   "not to uid %u; refusing to use it", path,
				   (unsigned)st.st_uid, (unsigned)geteuid());
	/* search permission (the system spool's 0711, for the drop directory
	 * below it) lets nobody read or change the queue */
	if (st.st_mode & 066)
		return result_fail(r, EX_CANTCREAT, "queue directory %s has mode %04o; "
				   "it must be private (chmod 700)", path,
				   (unsigned)(st.st_mode & 07777));
	return 0;
}

static int open_sub(struct queue *q, const char *name, struct result *r)
{
	int fd;

	if (mkdirat(q->dfd, name, 0700) < 0 && errno != EEXIST)
		return result_fail(r, EX_CANTCREAT, "queue %s/%s: %s", q->dir, name,
				   strerror(errno));
	fd = openat(q->dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return result_fail(r, EX_CANTCREAT, "queue %s/%s: %s", q->dir, name,
				   strerror(errno));
	return fd;
}

/* What a crash left half-written in tmp/ (never announced as queued) goes
 * once it is old enough that no living process can still be writing it. */
#define TMP_STALE (36 * 3600)

static void sweep_tmp(struct queue *q)
{
	int fd = dup(q->tmp);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	time_t now = time(NULL);
	struct dirent *de;
	struct stat st;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' &&
		    fstatat(q->tmp, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && now - st.st_mtime > TMP_STALE)
			unlinkat(q->tmp, de->d_name, 0);
	closedir(d);
}

int queue_open(struct queue *q, const char *dir, struct result *r)
{
	struct stat st;

	memset(q, 0, sizeof *q);
	q->dfd = q->tmp = q->new = q->failed = q->holdfd = -1;
	if (!dir[0])
		return result_fail(r, EX_CANTCREAT, "no home directory for the queue "
				   "(HOME is unset and the password database has none); "
				   "set queue_dir, or use the system's delivery service");
	if (make_path(dir) < 0)
		return result_fail(r, EX_CANTCREAT, "cannot create queue directory %s: %s",
				   dir, strerror(errno));
	q->dir = strdup(dir);
	q->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!q->dir || q->dfd < 0) {
		result_fail(r, EX_CANTCREAT, "queue %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (fstat(q->dfd, &st) == 0) {
		q->uid = st.st_uid;
		q->gid = st.st_gid;
	}
	if (check_owner(q->dfd, dir, r) < 0 ||
	    (q->tmp = open_sub(q, "tmp", r)) < 0 ||
	    (q->new = open_sub(q, "new", r)) < 0 ||
	    (q->failed = open_sub(q, "failed", r)) < 0)
		goto fail;
	sweep_tmp(q);
	return 0;
fail:
	queue_close(q);
	return -1;
}

void queue_close(struct queue *q)
{
	int *fds[] = { &q->dfd, &q->tmp, &q->new, &q->failed };

	for (size_t i = 0; i < 4; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	free(q->dir);
	q->dir = NULL;
}

/* ---- ids ---------------------------------------------------------------------- */

/* strspn bounded to [min, max] characters of set: the end of the run, or
 * NULL when it is shorter or longer. */
static const char *run_of(const char *p, const char *set, size_t min, size_t max)
{
	size_t n = strspn(p, set);

	return n >= min && n <= max ? p + n : NULL;
}

/* Exactly what make_id writes: YYYYMMDDTHHMMSS.uuuuuu.PID.xxxx.  An id
 * becomes a file name under new/ or failed/, so anything else (a '/', "..",
 * a NUL-less overlong string from a crafted envelope or the command line) is
 * refused wherever an id comes in. */
int queue_id_valid(const char *id)
{
	static const char dig[] = "0123456789", hex[] = "0123456789abcdef";
	const char *p = id;

	if (!p || !(p = run_of(p, dig, 8, 8)) || *p++ != 'T' ||
	    !(p = run_of(p, dig, 6, 6)) || *p++ != '.' ||
	    !(p = run_of(p, dig, 6, 6)) || *p++ != '.' ||
	    !(p = run_of(p, dig, 1, 10)) || *p++ != '.' ||
	    !(p = run_of(p, hex, 4, 4)))
		return 0;
	return *p == '\0';
}

/* ---- envelope files ----------------------------------------------------------- */

void qenv_free(struct qenv *e)
{
	free(e->account);
	free(e->from);
	free(e->notify);
	free(e->ret);
	free(e->envid);
	for (size_t i = 0; i < e->nrcpt; i++)
		free(e->rcpt[i]);
	free(e->rcpt);
	memset(e, 0, sizeof *e);
}

/* A control byte in a value: a line break would forge a field, and the
 * values end up on a terminal (mailq).  Never written, never accepted. */
static int has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return 0;
}

static int has_break(const char *s)
{
	return has_ctl(s, strlen(s));
}

void qenv_set_error(struct qenv *e, const char *why)
{
	snprintf(e->error, sizeof e->error, "%s", why);
	for (char *p = e->error; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

char *qenv_format(const struct qenv *e)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	/* One value per line, printable: see has_ctl. */
	if (has_break(e->account ? e->account : "") || has_break(e->from ? e->from : "") ||
	    has_break(e->error) || (e->notify && has_break(e->notify)) ||
	    (e->ret && has_break(e->ret)) || (e->envid && has_break(e->envid)))
		return NULL;
	for (size_t i = 0; i < e->nrcpt; i++)
		if (has_break(e->rcpt[i]))
			return NULL;
	f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f, "%s\nid %s\naccount %s\nfrom %s\n", ENV_MAGIC, e->id,
		e->account ? e->account : "", e->from ? e->from : "");
	for (size_t i = 0; i < e->nrcpt; i++)
		fprintf(f, "rcpt %s\n", e->rcpt[i]);
	fprintf(f, "created %lld\nnext %lld\ntries %d\nsize %llu\neightbit %d\nnul %d\n"
		"error %s\n", (long long)e->created, (long long)e->next_try, e->tries,
		e->size, e->eightbit, e->nul, e->error);
	if (e->notify)
		fprintf(f, "notify %s\n", e->notify);
	if (e->ret)
		fprintf(f, "ret %s\n", e->ret);
	if (e->envid)
		fprintf(f, "envid %s\n", e->envid);
	if (e->wire)
		fprintf(f, "wire %llu\n", e->wire);
	if (e->notice)
		fprintf(f, "notice %d\n", e->notice);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -1;
}

static int add_rcpt(struct qenv *e, const char *v)
{
	char **n = realloc(e->rcpt, (e->nrcpt + 1) * sizeof *n);

	if (!n)
		return -1;
	e->rcpt = n;
	return (e->rcpt[e->nrcpt] = strdup(v)) ? (e->nrcpt++, 0) : -1;
}

static int parse_line(struct qenv *e, const char *key, const char *v)
{
	char *end;

	/* Only a well-formed id is accepted; the loaders then replace it with
	 * the one the file name gives (the name is the identity). */
	if (!strcmp(key, "id"))
		return queue_id_valid(v) ? (snprintf(e->id, sizeof e->id, "%s", v), 0) : -1;
	if (!strcmp(key, "account"))
		return set_str(&e->account, v);
	if (!strcmp(key, "from"))
		return set_str(&e->from, v);
	if (!strcmp(key, "rcpt"))
		return *v ? add_rcpt(e, v) : -1;
	if (!strcmp(key, "notify"))
		return set_str(&e->notify, v);
	if (!strcmp(key, "ret"))
		return set_str(&e->ret, v);
	if (!strcmp(key, "envid"))
		return set_str(&e->envid, v);
	if (!strcmp(key, "error"))
		return snprintf(e->error, sizeof e->error, "%s", v), 0;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno || *end || end == v || n < 0)
		return -1;
	if (!strcmp(key, "created"))
		e->created = (time_t)n;
	else if (!strcmp(key, "next"))
		e->next_try = (time_t)n;
	else if (!strcmp(key, "tries"))
		e->tries = n > 1000000 ? 1000000 : (int)n;
	else if (!strcmp(key, "size"))
		e->size = (unsigned long long)n;
	else if (!strcmp(key, "wire"))
		e->wire = (unsigned long long)n;
	else if (!strcmp(key, "eightbit"))
		e->eightbit = n != 0;
	else if (!strcmp(key, "nul"))
		e->nul = n != 0;
	else if (!strcmp(key, "notice"))
		e->notice = (int)(n & (QN_FAILED | QN_DELAYED | QN_IS_NOTICE));
	/* unknown keys: written by a newer pushmail; ignore */
	return 0;
}

int qenv_parse(const char *text, size_t len, struct qenv *out)
{
	const char *p = text, *end = text + len;
	char line[4096];
	int first = 1;

	memset(out, 0, sizeof *out);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		if (n >= sizeof line || has_ctl(p, n))
			goto bad;
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl ? nl + 1 : end;
		if (first) {
			if (strcmp(line, ENV_MAGIC) != 0)
				goto bad;
			first = 0;
			continue;
		}
		char *sp = strchr(line, ' ');
		if (!sp)
			goto bad;
		*sp = '\0';
		if (parse_line(out, line, sp + 1) < 0)
			goto bad;
	}
	if (first || !out->id[0] || !out->from || !out->account || out->nrcpt == 0)
		goto bad;
	return 0;
bad:
	qenv_free(out);
	return -1;
}

/* ---- file helpers ---------------------------------------------------------------- */

/* Write an envelope into tmp/NAME, fsynced; returns the open fd or -1. */
static int write_env_tmp(struct queue *q, const struct qenv *e, const char *name)
{
	char *text = qenv_format(e);
	int fd;

	if (!text)
		return -1;
	fd = openat(q->tmp, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	adopt(q, fd);
	if (fd >= 0 && (fd_write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0)) {
		int err = errno;
		close(fd);
		unlinkat(q->tmp, name, 0);
		errno = err;
		fd = -1;
	}
	free(text);
	return fd;
}

static char *read_small(int fd, size_t *len)
{
	char *buf = malloc(ENV_MAX);
	ssize_t n;

	if (!buf)
		return NULL;
	n = pread(fd, buf, ENV_MAX, 0);
	if (n < 0 || n >= ENV_MAX) {
		free(buf);
		return NULL;
	}
	*len = (size_t)n;
	return buf;
}


/* ID.ext, a name inside one of the queue's directories (always used with
 * openat and its descriptor); -1 (EINVAL) for anything but a queue id. */
static int name_of(char *out, size_t cap, const char *id, const char *ext)
{
	if (!queue_id_valid(id))
		return errno = EINVAL, -1;
	snprintf(out, cap, "%s.%s", id, ext);
	return 0;
}

/* ---- spooling ---------------------------------------------------------------------- */

/* Copy head + the rest of infd into fd, noting the size on the wire (for
 * SIZE=) and 8-bit and NUL bytes. */
static int spool_body(int fd, const char *head, size_t headlen, int infd,
		      struct qenv *e, struct result *r)
{
	static char block[SPOOL_BLOCK];
	struct body_scan z;
	ssize_t n;

	body_scan_init(&z);
	if (fd_write_all(fd, head, headlen) < 0)
		return result_fail(r, EX_CANTCREAT, "writing the queue: %s", strerror(errno));
	body_scan_feed(&z, head, headlen);
	while (infd >= 0 && (n = read(infd, block, sizeof block)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return result_fail(r, EX_IOERR, "reading the message: %s",
					   strerror(errno));
		body_scan_feed(&z, block, (size_t)n);
		if (fd_write_all(fd, block, (size_t)n) < 0)
			return result_fail(r, EX_CANTCREAT, "writing the queue: %s",
					   strerror(errno));
	}
	if (fsync(fd) < 0)
		return result_fail(r, EX_CANTCREAT, "writing the queue: %s", strerror(errno));
	e->size = z.raw;
	e->wire = body_scan_wire(&z);
	e->eightbit = z.eightbit;
	e->nul = z.nul;
	return 0;
}

static int copy_env(struct qenv *dst, const struct qenv *src)
{
	memset(dst, 0, sizeof *dst);
	*dst = *src;
	dst->account = dst->from = dst->notify = dst->ret = dst->envid = NULL;
	dst->rcpt = NULL;
	dst->nrcpt = 0;
	if (set_str(&dst->account, src->account ? src->account : "") < 0 ||
	    set_str(&dst->from, src->from ? src->from : "") < 0 ||
	    (src->notify && set_str(&dst->notify, src->notify) < 0) ||
	    (src->ret && set_str(&dst->ret, src->ret) < 0) ||
	    (src->envid && set_str(&dst->envid, src->envid) < 0))
		return -1;
	for (size_t i = 0; i < src->nrcpt; i++)
		if (add_rcpt(dst, src->rcpt[i]) < 0)
			return -1;
	return 0;
}

int queue_add(struct queue *q, const struct qenv *env, const char *head,
	      size_t headlen, int infd, struct qentry *e, struct result *r)
{
	char msg[QUEUE_ID_MAX + 8], envn[QUEUE_ID_MAX + 8];

	memset(e, 0, sizeof *e);
	e->msgfd = e->lockfd = -1;
	if (copy_env(&e->env, env) < 0)
		return result_fail(r, EX_OSERR, "out of memory");
	if (env->id[0])   /* the drop directory's id (pickup.c) */
		snprintf(e->env.id, sizeof e->env.id, "%s", env->id);
	else
		qid_make(e->env.id, sizeof e->env.id);
	e->env.created = time(NULL);
	e->env.next_try = e->env.created;
	if (name_of(msg, sizeof msg, e->env.id, "msg") < 0 ||
	    name_of(envn, sizeof envn, e->env.id, "env") < 0) {
		queue_release(e);
		return result_fail(r, EX_SOFTWARE, "made a bad queue id %s", e->env.id);
	}
	e->msgfd = openat(q->tmp, msg, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	adopt(q, e->msgfd);
	if (e->msgfd < 0) {
		result_fail(r, EX_CANTCREAT, "cannot queue the message in %s: %s; "
			    "nothing was kept", q->dir, strerror(errno));
		goto fail;
	}
	if (spool_body(e->msgfd, head, headlen, infd, &e->env, r) < 0)
		goto fail;
	/* Lock before the envelope becomes visible in new/, so no flusher can
	 * take the message while this process is still sending it. */
	e->lockfd = write_env_tmp(q, &e->env, envn);
	if (e->lockfd < 0 || flock(e->lockfd, LOCK_EX) < 0 ||
	    renameat(q->tmp, msg, q->new, msg) < 0 ||
	    renameat(q->tmp, envn, q->new, envn) < 0 || fsync(q->new) < 0) {
		result_fail(r, EX_CANTCREAT, "cannot queue the message in %s: %s; "
			    "nothing was kept", q->dir, strerror(errno));
		unlinkat(q->new, msg, 0);
		goto fail;
	}
	lseek(e->msgfd, 0, SEEK_SET);
	return 0;
fail:
	if (r->exitcode == EX_CANTCREAT && !strstr(r->text, "nothing was kept")) {
		size_t n = strlen(r->text);
		snprintf(r->text + n, sizeof r->text - n, "; nothing was kept");
	}
	unlinkat(q->tmp, msg, 0);
	unlinkat(q->tmp, envn, 0);
	queue_release(e);
	return -1;
}

/* ---- working on queued messages ---------------------------------------------------- */

void queue_release(struct qentry *e)
{
	if (e->msgfd >= 0)
		close(e->msgfd);
	if (e->lockfd >= 0)
		close(e->lockfd);   /* drops the flock */
	e->msgfd = e->lockfd = -1;
	qenv_free(&e->env);
}

/* A message whose drop file is still there is not committed yet: the pickup
 * that queued it was interrupted, and the next one finishes (see drop.h). */
static int queue_held(const struct queue *q, const char *id)
{
	char name[QUEUE_ID_MAX + 8];

	snprintf(name, sizeof name, "m.%s", id);
	return q->holdfd >= 0 && faccessat(q->holdfd, name, F_OK, AT_EACCESS) == 0;
}

int queue_exists(const struct queue *q, const char *id)
{
	char envn[QUEUE_ID_MAX + 8];

	if (name_of(envn, sizeof envn, id, "env") < 0)
		return 0;
	return faccessat(q->new, envn, F_OK, AT_EACCESS) == 0 ||
	       faccessat(q->failed, envn, F_OK, AT_EACCESS) == 0;
}

/* Open and lock DIR/ID.env; e->env holds nothing but the id.  0 locked,
 * 1 busy or gone, -1 for a bad id (EX_USAGE). */
static int lock_env(struct queue *q, const char *id, int from_failed,
		    struct qentry *e, struct result *r)
{
	char envn[QUEUE_ID_MAX + 8];
	struct stat st;

	memset(e, 0, sizeof *e);
	e->msgfd = e->lockfd = -1;
	e->where = from_failed;
	if (name_of(envn, sizeof envn, id, "env") < 0)
		return result_fail(r, EX_USAGE, "bad queue id '%.60s' (ids look like "
				   "20261206T141808.123456.4242.9f3c; see mailq)", id);
	if (queue_held(q, id))
		return 1;
	e->lockfd = openat(from_failed ? q->failed : q->new, envn,
			   O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (e->lockfd < 0)
		return 1;
	/* Busy, or unlinked/replaced by its holder after we opened it. */
	if (flock(e->lockfd, LOCK_EX | LOCK_NB) < 0 || fstat(e->lockfd, &st) < 0 ||
	    st.st_nlink == 0 || !S_ISREG(st.st_mode)) {
		queue_release(e);
		return 1;
	}
	snprintf(e->env.id, sizeof e->env.id, "%s", id);
	return 0;
}

int queue_lock(struct queue *q, const char *id, int from_failed,
	       struct qentry *e, struct result *r)
{
	char msg[QUEUE_ID_MAX + 8];
	char *text;
	size_t len;
	int rc = lock_env(q, id, from_failed, e, r);

	if (rc != 0)
		return rc;
	name_of(msg, sizeof msg, id, "msg");
	text = read_small(e->lockfd, &len);
	if (!text || qenv_parse(text, len, &e->env) < 0 ||
	    (e->msgfd = openat(from_failed ? q->failed : q->new, msg,
			       O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		free(text);
		queue_release(e);
		return result_fail(r, EX_SOFTWARE, "queue entry %s is damaged", id);
	}
	free(text);
	/* The file name is the message's identity, whatever the id line says
	 * (a renamed or crafted envelope must not name another file). */
	snprintf(e->env.id, sizeof e->env.id, "%s", id);
	return 0;
}

int queue_remove(struct queue *q, const char *id, struct result *r)
{
	struct qentry e;
	int rc = lock_env(q, id, 0, &e, r);

	if (rc == 1)
		rc = lock_env(q, id, 1, &e, r);
	if (rc != 0)
		return rc;
	rc = queue_done(q, &e) < 0 ?
		result_fail(r, EX_CANTCREAT, "cannot remove queue entry %s: %s", id,
			    strerror(errno)) : 0;
	queue_release(&e);
	return rc;
}

/* Replace DIR/ID.env with e->env, written in tmp/ first. */
static int rewrite_env(struct queue *q, struct qentry *e, int dir)
{
	char envn[QUEUE_ID_MAX + 16], tmpn[QUEUE_ID_MAX + 16];
	int fd;

	if (name_of(envn, sizeof envn, e->env.id, "env") < 0 ||
	    name_of(tmpn, sizeof tmpn, e->env.id, "env.new") < 0)
		return -1;
	fd = write_env_tmp(q, &e->env, tmpn);
	if (fd < 0)
		return -1;
	close(fd);
	if (renameat(q->tmp, tmpn, dir, envn) < 0 || fsync(dir) < 0) {
		unlinkat(q->tmp, tmpn, 0);
		return -1;
	}
	return 0;
}

int queue_update(struct queue *q, struct qentry *e, struct result *r)
{
	if (rewrite_env(q, e, e->where ? q->failed : q->new) < 0)
		return result_fail(r, EX_CANTCREAT, "cannot update queue entry %s: %s",
				   e->env.id, strerror(errno));
	return 0;
}

int queue_done(struct queue *q, struct qentry *e)
{
	char msg[QUEUE_ID_MAX + 8], envn[QUEUE_ID_MAX + 8];
	int dir = e->where ? q->failed : q->new;

	if (name_of(msg, sizeof msg, e->env.id, "msg") < 0 ||
	    name_of(envn, sizeof envn, e->env.id, "env") < 0)
		return -1;
	/* The envelope first: without it the message is no longer queued. */
	if (unlinkat(dir, envn, 0) < 0)
		return -1;
	unlinkat(dir, msg, 0);
	fsync(dir);
	return 0;
}

/* Move between new/ and failed/: link the message, write the envelope in the
 * target, then remove the source.  A crash leaves the message in one place
 * or (briefly) in both; never in neither. */
static int move_entry(struct queue *q, struct qentry *e, int to_failed)
{
	char msg[QUEUE_ID_MAX + 8], envn[QUEUE_ID_MAX + 8];
	int from = to_failed ? q->new : q->failed, to = to_failed ? q->failed : q->new;

	if (name_of(msg, sizeof msg, e->env.id, "msg") < 0 ||
	    name_of(envn, sizeof envn, e->env.id, "env") < 0)
		return -1;
	if (linkat(from, msg, to, msg, 0) < 0 && errno != EEXIST)
		return -1;
	if (rewrite_env(q, e, to) < 0)
		return -1;
	unlinkat(from, envn, 0);
	unlinkat(from, msg, 0);
	fsync(from);
	e->where = to_failed;
	return 0;
}

int queue_to_failed(struct queue *q, struct qentry *e, const char *reason,
		    struct result *r)
{
	qenv_set_error(&e->env, reason);
	if (move_entry(q, e, 1) < 0)
		return result_fail(r, EX_CANTCREAT, "cannot move %s to failed/: %s",
				   e->env.id, strerror(errno));
	return 0;
}

int queue_revive(struct queue *q, struct qentry *e, struct result *r)
{
	e->env.next_try = time(NULL);
	if (move_entry(q, e, 0) < 0)
		return result_fail(r, EX_CANTCREAT, "cannot move %s back to new/: %s",
				   e->env.id, strerror(errno));
	return 0;
}

/* ---- listing -------------------------------------------------------------------------- */

static int cmp_env(const void *a, const void *b)
{
	return strcmp(((const struct qenv *)a)->id, ((const struct qenv *)b)->id);
}

/* NAME is "ID.env" with ID a queue id; the id comes from the name. */
static int load_one(int dir, const char *name, struct qenv *out)
{
	char id[QUEUE_ID_MAX];
	size_t len = strlen(name);
	char *text;
	int fd, rc;

	if (len < 5 || len - 4 >= sizeof id || strcmp(name + len - 4, ".env") != 0)
		return -1;
	memcpy(id, name, len - 4);
	id[len - 4] = '\0';
	if (!queue_id_valid(id) ||
	    (fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return -1;
	text = read_small(fd, &len);
	close(fd);
	rc = text ? qenv_parse(text, len, out) : -1;
	free(text);
	if (rc == 0)
		snprintf(out->id, sizeof out->id, "%s", id);
	return rc;
}

int queue_list(struct queue *q, int failed, struct qenv **v, size_t *n,
	       struct result *r)
{
	int fd = dup(failed ? q->failed : q->new);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t cap = 0;

	*v = NULL;
	*n = 0;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return result_fail(r, EX_CANTCREAT, "queue %s: %s", q->dir, strerror(errno));
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".env") != 0)
			continue;
		if (*n == cap) {
			struct qenv *nv = realloc(*v, (cap = cap ? 2 * cap : 16) * sizeof *nv);
			if (!nv)
				break;
			*v = nv;
		}
		if (load_one(dirfd(d), de->d_name, &(*v)[*n]) == 0)
			(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(*v, *n, sizeof **v, cmp_env);
	return 0;
}

size_t queue_damaged(struct queue *q, int failed,
		     void (*fn)(const char *name, void *arg), void *arg)
{
	int fd = dup(failed ? q->failed : q->new);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	struct qenv e;
	size_t n = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".env") != 0)
			continue;
		if (load_one(dirfd(d), de->d_name, &e) == 0) {
			qenv_free(&e);
			continue;
		}
		n++;
		if (fn)
			fn(de->d_name, arg);
	}
	closedir(d);
	return n;
}

void queue_list_free(struct qenv *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		qenv_free(&v[i]);
	free(v);
}

time_t queue_backoff(int tries, long min_s, long max_s)
{
	long d = min_s > 0 ? min_s : 60;

	for (int i = 1; i < tries && d < max_s; i++)
		d *= 2;
	return d > max_s ? max_s : d;
}
