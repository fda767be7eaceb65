/* secret.c - password and token sources (see secret.h). */
#include "config.h"
#include "secret.h"
#include "trust.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "conn.h"

#define SECRET_MAX 16384        /* OAuth tokens run to a few KiB */
#define COMMAND_TIMEOUT_MS 60000

void secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* ---- running a helper program --------------------------------------------- */

struct collect {
	int fd;
	char *buf;
	size_t cap, len;
	int done;
};

/* Read what is there; keep at most cap-1 bytes, discard the rest. */
static void drain(struct collect *c)
{
	char tmp[4096];
	ssize_t n = read(c->fd, tmp, sizeof tmp);

	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN))
			c->done = 1;
		return;
	}
	size_t take = (size_t)n;
	if (take > c->cap - 1 - c->len)
		take = c->cap - 1 - c->len;
	memcpy(c->buf + c->len, tmp, take);
	c->len += take;
	c->buf[c->len] = '\0';
	explicit_bzero(tmp, sizeof tmp);
}

static void child(char *const argv[], int out, int err)
{
	int devnull = open("/dev/null", O_RDONLY);

	if (devnull >= 0)
		dup2(devnull, 0);
	dup2(out, 1);
	dup2(err, 2);
	execvp(argv[0], argv);
	dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
	_exit(127);
}

/* What is already in the pipe, without waiting (a bounded number of reads:
 * the buffers hold at most SECRET_MAX and errcap bytes anyway). */
static void drain_now(struct collect *c)
{
	int fl = fcntl(c->fd, F_GETFL);

	if (fl >= 0)
		fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
	for (int i = 0; i < 64 && !c->done; i++) {
		size_t before = c->len;
		drain(c);
		if (c->len == before)
			break;
	}
}

/* Wait for the command itself, not for its pipes to close: a helper that
 * leaves a background child (an agent, "sleep 30 &") holding stdout open
 * has still printed its answer and exited (issue 13).  The pipes are read
 * while it runs, so it cannot block on a full one, and once more, without
 * waiting, after it exited.  The exit is polled every 20 ms: no SIGCHLD
 * handler to install, and the helper runs once per delivery. */
static int wait_child(pid_t pid, struct collect *o, struct collect *e, int timeout_ms)
{
	long long deadline = conn_now_ms() + timeout_ms;
	int status;
	pid_t w;

	while ((w = waitpid(pid, &status, WNOHANG)) == 0 ||
	       (w < 0 && errno == EINTR)) {
		struct pollfd p[2] = { { .fd = o->done ? -1 : o->fd, .events = POLLIN },
				       { .fd = e->done ? -1 : e->fd, .events = POLLIN } };
		long long left = deadline - conn_now_ms();
		if (left <= 0 || (poll(p, 2, left < 20 ? (int)left : 20) < 0 &&
				  errno != EINTR)) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		if (p[0].revents)
			drain(o);
		if (p[1].revents)
			drain(e);
	}
	if (w != pid && waitpid(pid, &status, 0) != pid)
		return 127;
	drain_now(o);
	drain_now(e);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int secret_run(char *const argv[], char *line, size_t cap, char *err,
	       size_t errcap, int timeout_ms, struct result *r)
{
	int po[2], pe[2], rc;
	char *big = malloc(SECRET_MAX);
	struct collect o = { .buf = big, .cap = SECRET_MAX };
	struct collect e = { .buf = err, .cap = errcap };
	pid_t pid;

	err[0] = line[0] = '\0';
	if (!big || pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		free(big);
		return result_fail(r, EX_OSERR, "pipe: %s", strerror(errno));
	}
	big[0] = '\0';
	pid = fork();
	if (pid == 0)
		child(argv, po[1], pe[1]);
	close(po[1]);
	close(pe[1]);
	o.fd = po[0];
	e.fd = pe[0];
	rc = pid < 0 ? -2 : wait_child(pid, &o, &e, timeout_ms);
	close(po[0]);
	close(pe[0]);
	big[strcspn(big, "\r\n")] = '\0';   /* the first line only */
	snprintf(line, cap, "%s", big);
	explicit_bzero(big, SECRET_MAX);
	free(big);
	if (rc == -2)
		return result_fail(r, EX_OSERR, "fork: %s", strerror(errno));
	if (rc == -1)
		return result_fail(r, EX_CONFIG, "%s: no answer within %d s", argv[0],
				   timeout_ms / 1000);
	return rc;
}

/* ---- command lines ------------------------------------------------------------- */

void secret_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

/* Characters that mean the command wants a shell: pipes, redirections,
 * expansions, globbing, command separators. */
static int needs_shell(const char *cmd)
{
	return strpbrk(cmd, "|&;<>()$`*?[]{}~#!\n") != NULL;
}

int secret_split(const char *cmd, char ***argvp)
{
	size_t n = 0, len = strlen(cmd);
	char **argv = calloc(len / 2 + 2, sizeof *argv);
	char *word = malloc(len + 1);
	const char *p = cmd;

	*argvp = NULL;
	if (!argv || !word || needs_shell(cmd))
		goto fail;
	while (*p) {
		size_t w = 0;
		int any = 0;
		while (*p == ' ' || *p == '\t')
			p++;
		while (*p && *p != ' ' && *p != '\t') {
			char q = *p;
			any = 1;
			if (q == '\'' || q == '"') {
				const char *end = strchr(p + 1, q);
				if (!end)
					goto fail;
				memcpy(word + w, p + 1, (size_t)(end - p - 1));
				w += (size_t)(end - p - 1);
				p = end + 1;
			} else if (q == '\\' && p[1]) {
				word[w++] = p[1];
				p += 2;
			} else {
				word[w++] = *p++;
			}
		}
		if (!any)
			break;
		word[w] = '\0';
		if (!(argv[n++] = strdup(word)))
			goto fail;
	}
	free(word);
	if (n == 0)
		goto fail_argv;
	*argvp = argv;
	return (int)n;
fail:
	free(word);
fail_argv:
	secret_argv_free(argv);
	return -1;
}

/* ---- sources ---------------------------------------------------------------- */

static int from_command(const char *cmd, int timeout_ms, char **out, struct result *r)
{
	char **argv = NULL, line[SECRET_MAX], err[1024];
	char *shell[] = { "/bin/sh", "-c", (char *)cmd, NULL };
	int rc;

	/* Without a shell when the command is plain words (nothing to expand). */
	rc = secret_split(cmd, &argv) > 0 ?
		secret_run(argv, line, sizeof line, err, sizeof err, timeout_ms, r) :
		secret_run(shell, line, sizeof line, err, sizeof err, timeout_ms, r);
	secret_argv_free(argv);
	if (rc < 0)
		return -1;
	err[strcspn(err, "\n")] = '\0';
	if (rc != 0) {
		explicit_bzero(line, sizeof line);
		return result_fail(r, EX_CONFIG, "password_command exited with status %d: %s",
				   rc, err[0] ? err : "(nothing on stderr)");
	}
	if (!line[0])
		return result_fail(r, EX_CONFIG, "password_command printed nothing%s%s",
				   err[0] ? ": " : "", err);
	*out = strdup(line);
	explicit_bzero(line, sizeof line);
	return *out ? 0 : result_fail(r, EX_OSERR, "out of memory");
}

/* Read a small private file whole (at most SECRET_MAX bytes). */
static char *read_private(const char *path, int must_be_private, struct result *r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	ssize_t n;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		result_fail(r, EX_NOINPUT, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* SPEC 7: the caller's or root's, writable by nobody else, private */
	if (must_be_private && trust_check("", path, &st, 1, r) < 0)
		goto out;
	buf = malloc(SECRET_MAX + 1);
	if (!buf)
		goto out;
	n = read(fd, buf, SECRET_MAX);
	buf[n > 0 ? n : 0] = '\0';
out:
	close(fd);
	return buf;
}

static int from_file(const char *path, char **out, struct result *r)
{
	char *buf;

	result_clear(r);
	buf = read_private(path, 1, r);
	if (!buf)
		return r->exitcode ? -1 :
			result_fail(r, EX_NOINPUT, "password_file %s: %s", path, strerror(errno));
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0]) {
		free(buf);
		return result_fail(r, EX_CONFIG, "password_file %s is empty", path);
	}
	*out = buf;
	return 0;
}

static const char *next_token(const char **pp, char *tok, size_t cap)
{
	const char *p = *pp;
	size_t n = 0;

	while (*p && isspace((unsigned char)*p))
		p++;
	if (!*p)
		return NULL;
	while (*p && !isspace((unsigned char)*p) && n + 1 < cap)
		tok[n++] = *p++;
	while (*p && !isspace((unsigned char)*p))
		p++;
	tok[n] = '\0';
	*pp = p;
	return tok;
}

char *secret_netrc_lookup(const char *text, const char *host, const char *user)
{
	char tok[1024], machine[1024] = "", login[1024] = "", pass[1024] = "";
	char *found = NULL;
	int in_entry = 0, is_default = 0;
	const char *p = text;

	for (;;) {
		const char *t = next_token(&p, tok, sizeof tok);
		int boundary = !t || !strcmp(t, "machine") || !strcmp(t, "default");
		if (boundary && in_entry && pass[0] &&
		    (is_default || strcasecmp(machine, host) == 0) &&
		    (!login[0] || !user || strcmp(login, user) == 0)) {
			found = strdup(pass);
			break;
		}
		if (!t)
			break;
		if (boundary) {
			in_entry = 1;
			is_default = !strcmp(t, "default");
			machine[0] = login[0] = pass[0] = '\0';
			if (!is_default && !next_token(&p, machine, sizeof machine))
				break;
		} else if (!strcmp(t, "login") && !next_token(&p, login, sizeof login)) {
			break;
		} else if (!strcmp(t, "password") && !next_token(&p, pass, sizeof pass)) {
			break;
		} else if (!strcmp(t, "macdef")) {
			/* a macro runs to the next empty line */
			const char *end = strstr(p, "\n\n");
			p = end ? end + 2 : p + strlen(p);
		}
	}
	explicit_bzero(pass, sizeof pass);
	explicit_bzero(tok, sizeof tok);
	return found;
}

static char *from_netrc(const char *host, const char *user, struct result *r)
{
	const char *home = getenv("HOME");
	char path[4096];
	char *text, *pw = NULL;

	if (home && geteuid() == getuid()) {
		snprintf(path, sizeof path, "%s/.netrc", home);
		text = read_private(path, 1, r);
		if (text) {
			pw = secret_netrc_lookup(text, host, user);
			secret_free(text);
		}
		if (pw || r->exitcode)
			return pw;
	}
	text = read_private(SYSCONFDIR "/netrc", 0, r);
	if (text) {
		pw = secret_netrc_lookup(text, host, user);
		secret_free(text);
	}
	return pw;
}

static int from_keyring(const char *host, const char *user, char **out,
			struct result *r)
{
	char *argv[] = { "secret-tool", "lookup", "host", (char *)host, "service",
			 "smtp", "user", (char *)(user ? user : ""), NULL };
	char line[SECRET_MAX], err[1024];
	int rc = secret_run(argv, line, sizeof line, err, sizeof err,
			    COMMAND_TIMEOUT_MS, r);

	if (rc < 0)
		return -1;
	if (rc != 0 || !line[0])
		return result_fail(r, EX_CONFIG, "password = keyring: secret-tool found no "
				   "password for host %s user %s%s%s", host, user ? user : "",
				   err[0] ? ": " : "", err);
	*out = strdup(line);
	explicit_bzero(line, sizeof line);
	return *out ? 0 : result_fail(r, EX_OSERR, "out of memory");
}

static int from_tty(const char *host, const char *user, char **out, struct result *r)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	struct termios old, quiet;
	char buf[1024];
	ssize_t n;

	if (fd < 0 || tcgetattr(fd, &old) < 0) {
		if (fd >= 0)
			close(fd);
		return result_fail(r, EX_CONFIG, "no password for %s at %s: set password, "
				   "password_command or password_file, or add it to ~/.netrc",
				   user ? user : "", host);
	}
	dprintf(fd, "Password for %s at %s: ", user ? user : "", host);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(fd, TCSAFLUSH, &quiet);
	n = read(fd, buf, sizeof buf - 1);
	tcsetattr(fd, TCSAFLUSH, &old);
	dprintf(fd, "\n");
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*out = buf[0] ? strdup(buf) : NULL;
	explicit_bzero(buf, sizeof buf);
	return *out ? 0 : result_fail(r, EX_CONFIG, "no password entered");
}

/* Which keys hold a secret: the relay's or the proxy's. */
struct secret_keys {
	enum cfg_key pw, cmd, file;
	int prompt;
};

static int get_secret(const struct account *a, const struct secret_keys *k,
		      const char *host, const char *user, char **out, struct result *r)
{
	const char *pw = cfg_str(a, k->pw);
	const char *cmd = cfg_str(a, k->cmd);
	const char *file = cfg_str(a, k->file);
	long t = cfg_long(a, K_TIMEOUT, 0);

	*out = NULL;
	/* No core file may hold the secret (SPEC 7); pushmail is short-lived,
	 * so this stays off for the rest of the run. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (pw && strcmp(pw, "keyring") == 0)
		return from_keyring(host, user, out, r);
	if (pw)
		return (*out = strdup(pw)) ? 0 : result_fail(r, EX_OSERR, "out of memory");
	if (cmd)
		return from_command(cmd, t > 0 ? (int)t * 1000 : COMMAND_TIMEOUT_MS, out, r);
	if (file)
		return from_file(file, out, r);
	result_clear(r);
	*out = from_netrc(host, user, r);
	if (*out)
		return 0;
	if (r->exitcode)
		return -1;
	if (!k->prompt)
		return result_fail(r, EX_CONFIG, "no password for proxy_user %s at proxy "
				   "%s: set proxy_password, proxy_password_command or "
				   "proxy_password_file", user, host);
	return from_tty(host, user, out, r);
}

int secret_get(const struct account *a, const char *host, const char *user,
	       char **out, struct result *r)
{
	static const struct secret_keys k = { K_PASSWORD, K_PASSWORD_COMMAND,
					      K_PASSWORD_FILE, 1 };

	return get_secret(a, &k, host, user, out, r);
}

int secret_get_proxy(const struct account *a, const char *host, const char *user,
		     char **out, struct result *r)
{
	static const struct secret_keys k = { K_PROXY_PASSWORD, K_PROXY_PASSWORD_COMMAND,
					      K_PROXY_PASSWORD_FILE, 0 };

	return get_secret(a, &k, host, user, out, r);
}
