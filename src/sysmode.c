/* sysmode.c - a caller's side of system mode (see sysmode.h, drop.h). */
#include "config.h"
#include "sbuf.h"
#include "drop.h"
#include "log.h"
#include "modes.h"
#include "sysmode.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int sysmode_available(void)
{
	struct stat st;

	/* the helper decides; a missing drop directory is its exit 75 */
	return stat(DROP_HELPER, &st) == 0 && S_ISREG(st.st_mode) &&
	       (st.st_mode & S_ISGID) && st.st_uid == 0;
}

int sysmode_drop_setid(void)
{
	gid_t g = getgid();
	uid_t u = getuid();

	if (getegid() != g && setresgid(g, g, g) < 0)
		return -1;
	if (geteuid() != u && setresuid(u, u, u) < 0)
		return -1;
	return getegid() == g && geteuid() == u ? 0 : -1;
}

/* The head for this submission: recipient arguments as given, -t, and the
 * options the service may honour (it decides whether -f is). */
static char *make_head(const struct ctx *c, const struct submit_req *req, size_t *len)
{
	struct drop_head h = {
		.rcpt = (char **)req->rcpt, .nrcpt = req->nrcpt,
		.extract = req->extract, .from = (char *)req->from,
		.name = (char *)c->o.full_name, .notify = (char *)c->o.dsn_notify,
		.ret = (char *)c->o.dsn_ret, .envid = (char *)c->o.dsn_envid,
	};

	return drop_format(&h, len);
}

/* head, then everything left on infd.  -1: the helper went away (its exit
 * status says why); -2: our input failed. */
static int feed(int out, const char *head, size_t headlen, int infd)
{
	char buf[64 * 1024];
	ssize_t n;

	if (fd_write_all(out, head, headlen) < 0)
		return -1;
	for (;;) {
		n = read(infd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -2;
		if (n == 0)
			return 0;
		if (fd_write_all(out, buf, (size_t)n) < 0)
			return -1;
	}
}

static pid_t spawn(int in, int out, int err)
{
	char *const argv[] = { "pushmail-drop", NULL };
	char *const envp[] = { NULL };
	pid_t pid = fork();

	if (pid == 0) {
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(71);
		execve(DROP_HELPER, argv, envp);
		_exit(errno == ENOENT ? 75 : 71);
	}
	return pid;
}

/* The helper's one line (its id on stdout, its reason on stderr). */
static void read_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;

	while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

static int helper_status(int status, int fed, const char *why, struct result *r)
{
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE;

	if (fed == -2)
		return result_fail(r, EX_IOERR, "cannot read the message: %s",
				   strerror(errno));
	if (code == 0 && fed == 0)
		return 0;
	if (code == 0)
		code = EX_SOFTWARE;
	return result_fail(r, code, "the message could not be handed to the system's "
			   "delivery service: %s; nothing was kept",
			   *why ? why : "the drop helper failed");
}

int sysmode_drop(struct ctx *c, const struct submit_req *req, struct result *r)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int status = 0, fed;
	size_t headlen;
	char *head = make_head(c, req, &headlen);
	char id[DROP_ID_MAX + 2], why[512];
	pid_t pid;

	if (!head)
		return result_fail(r, EX_USAGE, "an argument is too long or holds a "
				   "control character");
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    pipe2(err, O_CLOEXEC) < 0 || (pid = spawn(in[0], out[1], err[1])) < 0) {
		result_fail(r, EX_OSERR, "cannot start " DROP_HELPER ": %s", strerror(errno));
		goto fail;
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	/* the helper writes its line only at the end, so nothing blocks here */
	fed = feed(in[1], head, headlen, req->infd);
	/* Our input failed half-way (a composed message cut short): the
	 * helper must not take end of file for the end of a complete message.
	 * Killed, it leaves a t.* file that pickup_sweep removes, as after a
	 * crash. */
	if (fed == -2)
		kill(pid, SIGKILL);
	close(in[1]);
	read_line(out[0], id, sizeof id);
	read_line(err[0], why, sizeof why);
	close(out[0]);
	close(err[0]);
	free(head);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (helper_status(status, fed, why, r) < 0)
		return -1;
	if (req->note)
		snprintf(req->note, req->notecap, "queued as %s", id);
	log_info("handed to the system's delivery service as %s", id);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	free(head);
	return -1;
}
