/* trust.c - see trust.h. */
#include "config.h"
#include "trust.h"

#include <errno.h>
#include <string.h>
#include <grp.h>
#include <unistd.h>

/* The delivery service's group: the system file may be readable by it. */
static int service_group(gid_t gid)
{
	struct group *gr = getgrnam(SYSTEM_USER);

	return gr && gr->gr_gid == gid;
}

int trust_check(const char *what, const char *path, const struct stat *st,
		int secret, struct result *r)
{
	const char *sp = *what ? " " : "";

	if (st->st_uid != geteuid() && st->st_uid != 0)
		return result_fail(r, EX_CONFIG, "%s%s%s: owned by uid %u, neither you "
				   "(uid %u) nor root; refusing it, since its owner "
				   "could make pushmail act as you", what, sp, path,
				   (unsigned)st->st_uid, (unsigned)geteuid());
	if (st->st_mode & 022)
		return result_fail(r, EX_CONFIG, "%s%s%s: writable by group or others "
				   "(mode %04o); chmod go-w %s", what, sp, path,
				   (unsigned)(st->st_mode & 07777), path);
	if (!secret || !(st->st_mode & 077))
		return 0;
	if (st->st_uid == 0 && !(st->st_mode & 007) && service_group(st->st_gid))
		return 0;
	return result_fail(r, EX_CONFIG, "%s%s%s: holds a password but is readable by "
			   "group/others (mode %04o); chmod 600 %s", what, sp, path,
			   (unsigned)(st->st_mode & 07777), path);
}

int trust_check_path(const char *what, const char *path, int secret,
		     struct result *r)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : result_fail(r, EX_NOINPUT, "%s: %s", what,
							  strerror(errno));
	return trust_check(what, path, &st, secret, r);
}
