/* trust.h - whether a file may steer pushmail (SPEC 2, 7; ssh's rule).
 *
 * A configuration file runs commands and names files; a password file,
 * an aliases file, a TLS trust, certificate or key file and a mail log
 * change what pushmail sends, to whom, or what it trusts.  Whoever can
 * change such a file can act as the user who runs pushmail, so each must
 * belong to that user or to root and be writable by nobody else; one that
 * holds a secret is readable by nobody else either, except the system
 * configuration of system mode (root:SYSTEM_USER 0640).
 */
#ifndef PUSHMAIL_TRUST_H
#define PUSHMAIL_TRUST_H

#include <sys/stat.h>
#include "result.h"

/* what: the key naming the file ("password_file"), or "" for a
 * configuration file itself; st: fstat of the opened file (or stat of the
 * path, for files a library opens).  Returns 0, or -1 with r filled
 * (EX_CONFIG naming the file and the fix). */
int trust_check(const char *what, const char *path, const struct stat *st,
		int secret, struct result *r);

/* The same for a path (stat, following links as the library will).  A path
 * that does not exist passes: the caller's own open reports that. */
int trust_check_path(const char *what, const char *path, int secret,
		     struct result *r);

#endif
