/* tokens.c - the OAuth2 token cache file (see tokens.h). */
#include "config.h"
#include "tokens.h"
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_MAX (64 * 1024)
#define LOCK_WAIT_MS 30000
#define NAME_MAX_LEN 64

int tokens_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > NAME_MAX_LEN || name[0] == '.')
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789._-") == n;
}

/* Root and the delivery service share the system spool's state. */
static int system_side(void)
{
	struct passwd *pw;

	if (geteuid() == 0)
		return 1;
	pw = getpwnam(SYSTEM_USER);
	return pw && pw->pw_uid == geteuid();
}

static int state_dir(const struct account *a, char *out, size_t cap, struct result *r)
{
	const char *env = getenv("PUSHMAIL_QUEUE_DIR"), *xdg = getenv("XDG_STATE_HOME");
	const char *home;
	int n;

	/* The spool as its users find it: root's queue (queue.c
	 * queue_default_dir, which honours PUSHMAIL_QUEUE_DIR) and the
	 * delivery service's (daemon.c: queue_dir, else SPOOLDIR). */
	if (system_side()) {
		const char *spool = env && *env && geteuid() == 0 && !cfg_running_setid() ?
				    env : cfg_str(a, K_QUEUE_DIR) ? cfg_str(a, K_QUEUE_DIR) :
				    SPOOLDIR;
		n = snprintf(out, cap, "%s/oauth2", spool);
	} else if (xdg && xdg[0] == '/' && getuid() == geteuid()) {
		n = snprintf(out, cap, "%s/pushmail/oauth2", xdg);
	} else if ((home = cfg_home_dir())) {
		n = snprintf(out, cap, "%s/.local/state/pushmail/oauth2", home);
	} else {
		return result_fail(r, EX_CONFIG, "no home directory for the OAuth2 tokens");
	}
	return n < 0 || (size_t)n >= cap ?
		result_fail(r, EX_CONFIG, "the OAuth2 token directory's name is too long") : 0;
}

int tokens_path(const struct account *a, char *out, size_t cap, struct result *r)
{
	char dir[PATH_MAX];
	int n;

	if (!tokens_name_ok(a->name))
		return result_fail(r, EX_CONFIG, "account name '%s' cannot name a token file: "
				   "OAuth2 accounts use letters, digits, '.', '_' and '-' "
				   "(not first), at most %d", a->name, NAME_MAX_LEN);
	if (state_dir(a, dir, sizeof dir, r) < 0)
		return -1;
	n = snprintf(out, cap, "%s/%s.json", dir, a->name);
	return n < 0 || (size_t)n >= cap ?
		result_fail(r, EX_CONFIG, "the OAuth2 token file's name is too long") : 0;
}

/* ---- directory, owner, lock ---------------------------------------------- */

/* The system spool's owner, who must be able to read what root stores. */
static void spool_owner(const char *dir, uid_t *uid, gid_t *gid)
{
	char parent[PATH_MAX];
	struct stat st;
	char *slash;

	*uid = geteuid();
	*gid = getegid();
	snprintf(parent, sizeof parent, "%s", dir);
	slash = strrchr(parent, '/');
	if (!system_side() || !slash || slash == parent)
		return;
	*slash = '\0';
	if (stat(parent, &st) == 0) {
		*uid = st.st_uid;
		*gid = st.st_gid;
	}
}

/* mkdir -p, 0700 for what we create; the last level given to the owner. */
static int make_dir(const char *dir, struct result *r)
{
	char buf[PATH_MAX];
	uid_t uid;
	gid_t gid;

	snprintf(buf, sizeof buf, "%s", dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return result_fail(r, EX_CANTCREAT, "cannot create %s: %s", buf,
					   strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return result_fail(r, EX_CANTCREAT, "cannot create %s: %s", buf, strerror(errno));
	spool_owner(buf, &uid, &gid);
	if (geteuid() == 0 && uid != 0)
		(void)!chown(buf, uid, gid);
	return 0;
}

static void dir_of(const char *path, char *out, size_t cap)
{
	char *slash;

	snprintf(out, cap, "%s", path);
	slash = strrchr(out, '/');
	if (slash && slash != out)
		*slash = '\0';
}

int tokens_lock(const char *path, int *fd, struct result *r)
{
	char dir[PATH_MAX], lock[PATH_MAX + 8];
	struct timespec tick = { 0, 100 * 1000 * 1000 };
	uid_t uid;
	gid_t gid;

	*fd = -1;
	dir_of(path, dir, sizeof dir);
	if (make_dir(dir, r) < 0)
		return -1;
	snprintf(lock, sizeof lock, "%s.lock", path);
	*fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*fd < 0)
		return result_fail(r, EX_CANTCREAT, "cannot open %s: %s", lock, strerror(errno));
	/* root's lock file must not shut the delivery service out */
	spool_owner(dir, &uid, &gid);
	if (geteuid() == 0 && uid != 0)
		(void)!fchown(*fd, uid, gid);
	for (int waited = 0; flock(*fd, LOCK_EX | LOCK_NB) < 0; waited += 100) {
		if (errno != EWOULDBLOCK || waited >= LOCK_WAIT_MS) {
			close(*fd);
			*fd = -1;
			return result_fail(r, EX_TEMPFAIL, "%s is locked by another pushmail",
					   lock);
		}
		nanosleep(&tick, NULL);
	}
	return 0;
}

void tokens_unlock(int fd)
{
	if (fd >= 0)
		close(fd);   /* releases the flock */
}

/* ---- the file's text ---------------------------------------------------- */

static int same(json_t *o, const char *key, const char *want)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) && want && strcmp(json_string_value(v), want) == 0;
}

static char *dup_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) && json_string_length(v) > 0 ?
		strdup(json_string_value(v)) : NULL;
}

int tokens_decode(const char *text, size_t len, const char *token_url,
		  const char *client_id, struct oauth2_tokens *t)
{
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL), *exp;
	int rc = -1;

	memset(t, 0, sizeof *t);
	if (!json_is_object(o) || !json_is_string(json_object_get(o, "refresh_token")))
		goto out;
	rc = 0;
	if (!same(o, "token_url", token_url) || !same(o, "client_id", client_id))
		goto out;
	t->refresh_token = dup_str(o, "refresh_token");
	t->access_token = dup_str(o, "access_token");
	exp = json_object_get(o, "expires_at");
	t->expires_at = json_is_integer(exp) ? json_integer_value(exp) : 0;
	rc = t->refresh_token ? 1 : -1;
	if (rc < 0)
		oauth2_tokens_free(t);
out:
	json_decref(o);
	return rc;
}

char *tokens_encode(const char *token_url, const char *client_id,
		    const struct oauth2_tokens *t)
{
	json_t *o = json_object();
	char *text = NULL;
	int bad = !o;

	bad = bad || json_object_set_new(o, "version", json_integer(1)) < 0;
	bad = bad || json_object_set_new(o, "token_url", json_string(token_url)) < 0;
	bad = bad || json_object_set_new(o, "client_id", json_string(client_id)) < 0;
	bad = bad || json_object_set_new(o, "refresh_token",
					 json_string(t->refresh_token)) < 0;
	if (t->access_token) {
		bad = bad || json_object_set_new(o, "access_token",
						 json_string(t->access_token)) < 0;
		bad = bad || json_object_set_new(o, "expires_at",
						 json_integer(t->expires_at)) < 0;
	}
	if (!bad)
		text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	/* jansson keeps copies of the tokens in the object: wipe them */
	if (o) {
		json_t *v = json_object_get(o, "refresh_token");
		if (json_is_string(v))
			explicit_bzero((char *)json_string_value(v), json_string_length(v));
		v = json_object_get(o, "access_token");
		if (json_is_string(v))
			explicit_bzero((char *)json_string_value(v), json_string_length(v));
	}
	json_decref(o);
	return text;
}

/* ---- reading and writing ------------------------------------------------ */

static int check_file(const char *path, const struct stat *st, struct result *r)
{
	if (!S_ISREG(st->st_mode))
		return result_fail(r, EX_CONFIG, "%s is not a regular file", path);
	if (st->st_uid != geteuid() && geteuid() != 0)
		return result_fail(r, EX_CONFIG, "%s belongs to uid %u, not to uid %u; "
				   "refusing to use it", path, (unsigned)st->st_uid,
				   (unsigned)geteuid());
	if (st->st_mode & 077)
		return result_fail(r, EX_CONFIG, "%s has mode %04o: others may read the "
				   "OAuth2 tokens; run chmod 600 %s and log in again", path,
				   (unsigned)(st->st_mode & 07777), path);
	return 0;
}

static int read_all(int fd, const char *path, char **text, size_t *len,
		    struct result *r)
{
	char *buf = malloc(FILE_MAX + 1);
	size_t n = 0;
	ssize_t got;

	if (!buf)
		return result_fail(r, EX_OSERR, "out of memory");
	while (n < FILE_MAX && (got = read(fd, buf + n, FILE_MAX - n)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			secret_free(buf);
			return result_fail(r, EX_IOERR, "%s: %s", path, strerror(errno));
		}
		n += (size_t)got;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

int tokens_load(const char *path, const char *token_url, const char *client_id,
		struct oauth2_tokens *t, int *other, struct result *r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY), rc;
	struct stat st;
	char *text = NULL;
	size_t len = 0;

	memset(t, 0, sizeof *t);
	*other = 0;
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return result_fail(r, EX_CONFIG, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || check_file(path, &st, r) < 0 ||
	    read_all(fd, path, &text, &len, r) < 0) {
		if (!r->exitcode)
			result_fail(r, EX_IOERR, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	rc = tokens_decode(text, len, token_url, client_id, t);
	secret_free(text);
	if (rc < 0)
		return result_fail(r, EX_CONFIG, "%s is not a pushmail token file; remove it "
				   "and log in again", path);
	*other = rc == 0;
	return rc;
}

static int write_all(int fd, const char *text, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, text, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

static void sync_dir(const char *path)
{
	char dir[PATH_MAX];
	int fd;

	dir_of(path, dir, sizeof dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int tokens_store(const char *path, const char *token_url, const char *client_id,
		 const struct oauth2_tokens *t, struct result *r)
{
	char tmp[PATH_MAX + 32], dir[PATH_MAX];
	char *text = tokens_encode(token_url, client_id, t);
	uid_t uid;
	gid_t gid;
	int fd, ok;

	if (!text)
		return result_fail(r, EX_SOFTWARE, "cannot encode the token file");
	dir_of(path, dir, sizeof dir);
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		secret_free(text);
		return result_fail(r, EX_CANTCREAT, "cannot create %s: %s", tmp, strerror(errno));
	}
	spool_owner(dir, &uid, &gid);
	if (geteuid() == 0 && uid != 0)
		(void)!fchown(fd, uid, gid);
	ok = write_all(fd, text, strlen(text)) == 0 && write_all(fd, "\n", 1) == 0 &&
	     fsync(fd) == 0;
	ok = (close(fd) == 0) && ok;
	secret_free(text);
	if (!ok || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return result_fail(r, EX_IOERR, "cannot write %s: %s", path, strerror(e));
	}
	sync_dir(path);
	return 0;
}
