/* dropper.c - pushmail-drop, the set-gid helper of system mode (SPEC 9).
 *
 * Installed mode 2755, group DROP_GROUP, by pushmail --setup-system.  The
 * group may write SPOOLDIR/drop and nothing else; this program is the only
 * code that ever runs with it, so it is kept small enough to read at once:
 * it takes no options, reads no environment variable and no configuration,
 * and copies its standard input into a new file in the compiled-in drop
 * directory (the layout and the protocol are in drop.h).  pushmail writes the
 * head and the message into its standard input; the delivery service parses
 * the result as hostile input.  It prints the message id on standard output.
 *
 * Exit: 0 once the file and the directory are fsynced; 65 when the input is
 * over DROP_FILE_MAX; 73 when the file cannot be written (disk full, quota);
 * 74 when standard input cannot be read; 75 when the drop directory is
 * missing or not writable (run pushmail --setup-system); 64 with arguments.
 * A failure removes what was written.
 */
#include "config.h"
#include "drop.h"
#include "qid.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define DROP_DIR SPOOLDIR "/drop"

/* sysexits.h values, spelled out: this program links nothing of pushmail's
 * but qid.c, and includes only drop.h's constants. */
enum { OK = 0, USAGE = 64, DATAERR = 65, CANTCREAT = 73, IOERR = 74, TEMPFAIL = 75 };

static int dirfd_ = -1;
static char tmpname[DROP_ID_MAX + 2];

static int die(int code, const char *what, int err)
{
	if (dirfd_ >= 0 && tmpname[0])
		unlinkat(dirfd_, tmpname, 0);
	if (err)
		fprintf(stderr, "%s: %s\n", what, strerror(err));
	else
		fprintf(stderr, "%s\n", what);
	exit(code);
}

/* A set-id program must not start with fd 0, 1 or 2 closed: the drop file
 * would become the caller's standard error. */
static void sane_fds(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			_exit(IOERR);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die(CANTCREAT, "cannot write the message", w < 0 ? errno : EIO);
		p += w;
		n -= (size_t)w;
	}
}

static void copy_stdin(int fd)
{
	static char buf[64 * 1024];
	unsigned long long total = 0;
	ssize_t n;

	for (;;) {
		n = read(0, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(IOERR, "cannot read standard input", errno);
		if (n == 0)
			return;
		total += (unsigned long long)n;
		if (total > DROP_FILE_MAX)
			die(DATAERR, "message larger than the system's limit of 256 MiB", 0);
		write_all(fd, buf, (size_t)n);
	}
}

int main(int argc, char **argv)
{
	struct rlimit no_core = { 0, 0 };
	char id[DROP_ID_MAX], final[DROP_ID_MAX + 2];
	int fd;

	(void)argv;
	sane_fds();
	umask(077);
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* the caller's RLIMIT_FSIZE must give an error, not kill us half-way */
	signal(SIGXFSZ, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1)
		die(USAGE, "takes no arguments (pushmail runs it)", 0);
	dirfd_ = open(DROP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd_ < 0)
		die(TEMPFAIL, "cannot open " DROP_DIR " (run pushmail --setup-system as root)",
		    errno);
	qid_make(id, sizeof id);
	snprintf(tmpname, sizeof tmpname, "t.%s", id);
	snprintf(final, sizeof final, "m.%s", id);
	fd = openat(dirfd_, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		tmpname[0] = '\0';
		die(errno == EACCES || errno == EPERM ? TEMPFAIL : CANTCREAT,
		    "cannot create a file in " DROP_DIR, errno);
	}
	copy_stdin(fd);
	/* 0604: see drop.h.  The mode and the data are made durable together. */
	if (fchmod(fd, 0604) < 0 || fsync(fd) < 0 || close(fd) < 0)
		die(CANTCREAT, "cannot write the message", errno);
	if (renameat(dirfd_, tmpname, dirfd_, final) < 0)
		die(CANTCREAT, "cannot commit the message", errno);
	tmpname[0] = '\0';
	if (fsync(dirfd_) < 0) {
		unlinkat(dirfd_, final, 0);
		die(CANTCREAT, "cannot commit the message", errno);
	}
	printf("%s\n", id);
	fflush(stdout);
	return OK;
}
