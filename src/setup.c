/* setup.c - pushmail --setup-system (SPEC 9): the user, the groups, the
 * spool and the modes that system mode needs.  Root only, idempotent: every
 * step looks first and says what it did ("created", "fixed") or that it was
 * already right ("ok").  Debian's postinst runs it.
 *
 *   user SYSTEM_USER, group SYSTEM_USER   the delivery service
 *   group DROP_GROUP                       may create files in the drop directory
 *   SPOOLDIR          SYSTEM_USER:SYSTEM_USER 0711
 *   SPOOLDIR/drop     SYSTEM_USER:DROP_GROUP  01770
 *   SPOOLDIR/{tmp,new,failed}  SYSTEM_USER:SYSTEM_USER 0700 (and their files)
 *   SYSCONFDIR/pushmail.ini    root:SYSTEM_USER 0640 (when it exists)
 *   DROP_HELPER       root:DROP_GROUP 02755
 */
#include "config.h"
#include "log.h"
#include "modes.h"
#include "sysmode.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct ids {
	uid_t uid;       /* SYSTEM_USER */
	gid_t gid;       /* its group */
	gid_t drop_gid;  /* DROP_GROUP */
};

/* groupadd/useradd from passwd (essential in Debian), with a fixed argv and
 * an empty environment: nothing of the caller's reaches them. */
static int run(char *const argv[], struct result *r)
{
	char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execve(argv[0], argv, envp);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return result_fail(r, EX_OSERR, "cannot run %s: %s", argv[0], strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return result_fail(r, EX_OSERR, "%s %s failed (status %d)", argv[0],
				   argv[1], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

static const char *tool(const char *name, char *buf, size_t cap)
{
	snprintf(buf, cap, "/usr/sbin/%s", name);
	if (access(buf, X_OK) != 0)
		snprintf(buf, cap, "/sbin/%s", name);
	return buf;
}

static int ensure_group(const char *name, gid_t *gid, struct result *r)
{
	struct group *gr = getgrnam(name);
	char path[64];

	if (!gr) {
		char *const argv[] = { (char *)tool("groupadd", path, sizeof path),
				       "--system", (char *)name, NULL };
		if (run(argv, r) < 0 || !(gr = getgrnam(name)))
			return r->exitcode ? -1 : result_fail(r, EX_OSERR, "group %s "
							      "was not created", name);
		printf("created group %s (gid %u)\n", name, (unsigned)gr->gr_gid);
	} else {
		printf("ok      group %s (gid %u)\n", name, (unsigned)gr->gr_gid);
	}
	*gid = gr->gr_gid;
	return 0;
}

static int ensure_user(struct ids *id, struct result *r)
{
	struct passwd *pw = getpwnam(SYSTEM_USER);
	char path[64];

	if (!pw) {
		char *const argv[] = { (char *)tool("useradd", path, sizeof path),
				       "--system", "--gid", SYSTEM_USER, "--no-create-home",
				       "--home-dir", SYS_SPOOL, "--shell", "/usr/sbin/nologin",
				       "--comment", "pushmail delivery service", SYSTEM_USER,
				       NULL };
		if (run(argv, r) < 0 || !(pw = getpwnam(SYSTEM_USER)))
			return r->exitcode ? -1 : result_fail(r, EX_OSERR, "user %s was "
							      "not created", SYSTEM_USER);
		printf("created user  %s (uid %u)\n", SYSTEM_USER, (unsigned)pw->pw_uid);
	} else {
		printf("ok      user  %s (uid %u)\n", SYSTEM_USER, (unsigned)pw->pw_uid);
	}
	id->uid = pw->pw_uid;
	return 0;
}

/* Owner, group and mode of an existing path (never through a symlink). */
static int ensure_mode(const char *path, uid_t uid, gid_t gid, mode_t mode,
		       struct result *r)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return result_fail(r, EX_OSERR, "%s: %s", path, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return result_fail(r, EX_CONFIG, "%s is a symbolic link; refusing it", path);
	if (st.st_uid == uid && st.st_gid == gid && (st.st_mode & 07777) == mode) {
		printf("ok      %04o %s\n", (unsigned)mode, path);
		return 0;
	}
	if (lchown(path, uid, gid) < 0 || chmod(path, mode) < 0)
		return result_fail(r, EX_OSERR, "%s: %s", path, strerror(errno));
	printf("fixed   %04o %s\n", (unsigned)mode, path);
	return 0;
}

static int ensure_dir(const char *path, uid_t uid, gid_t gid, mode_t mode,
		      struct result *r)
{
	if (mkdir(path, 0700) == 0)
		printf("created %s\n", path);
	else if (errno != EEXIST)
		return result_fail(r, EX_CANTCREAT, "cannot create %s: %s", path,
				   strerror(errno));
	return ensure_mode(path, uid, gid, mode, r);
}

/* mkdir -p of the spool's parents (localstatedir/spool), root's 0755. */
static int ensure_parents(const char *path, struct result *r)
{
	char buf[4096];

	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return result_fail(r, EX_CANTCREAT, "cannot create %s: %s", buf,
					   strerror(errno));
		*p = '/';
	}
	return 0;
}

/* Mail queued by root before the service existed becomes the service's. */
static int adopt_files(const char *dir, const struct ids *id)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' &&
		    fchownat(dirfd(d), de->d_name, id->uid, id->gid, AT_SYMLINK_NOFOLLOW) == 0)
			n++;
	closedir(d);
	return n;
}

static int setup_spool(const struct ids *id, struct result *r)
{
	static const char *const subs[] = { "tmp", "new", "failed" };
	char path[4096];

	if (ensure_parents(SYS_SPOOL, r) < 0 ||
	    ensure_dir(SYS_SPOOL, id->uid, id->gid, 0711, r) < 0 ||
	    ensure_dir(SYS_DROP, id->uid, id->drop_gid, 01770, r) < 0)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", SYS_SPOOL, subs[i]);
		if (ensure_dir(path, id->uid, id->gid, 0700, r) < 0)
			return -1;
		int n = adopt_files(path, id);
		if (n)
			printf("        %d file(s) in %s belong to %s\n", n, path, SYSTEM_USER);
	}
	return 0;
}

static int setup_files(const struct ids *id, struct result *r)
{
	struct stat st;

	if (lstat(SYS_CONFIG, &st) == 0) {
		if (ensure_mode(SYS_CONFIG, 0, id->gid, 0640, r) < 0)
			return -1;
	} else {
		printf("note    %s does not exist yet: create it (root:%s, mode 0640, "
		       "see pushmail.conf(5)); mail waits in the spool until then\n",
		       SYS_CONFIG, SYSTEM_USER);
	}
	if (lstat(DROP_HELPER, &st) < 0)
		return result_fail(r, EX_CONFIG, "%s is not installed (make install)",
				   DROP_HELPER);
	return ensure_mode(DROP_HELPER, 0, id->drop_gid, 02755, r);
}

int mode_setup_system(struct ctx *c, struct result *r)
{
	struct ids id;

	(void)c;
	if (geteuid() != 0)
		return result_fail(r, EX_NOPERM, "--setup-system must be run as root");
	if (ensure_group(SYSTEM_USER, &id.gid, r) < 0 ||
	    ensure_group(DROP_GROUP, &id.drop_gid, r) < 0 ||
	    ensure_user(&id, r) < 0 || setup_spool(&id, r) < 0 ||
	    setup_files(&id, r) < 0)
		return -1;
	printf("system mode is set up: start the delivery service (systemctl enable "
	       "--now pushmail, or pushmail --daemon)\n");
	return 0;
}
