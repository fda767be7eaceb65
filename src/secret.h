/* secret.h - where a password or OAuth token comes from (issue 4, SPEC 7).
 *
 * In order: `password` (or "keyring": libsecret's secret-tool), then
 * `password_command`, `password_file`, ~/.netrc and SYSCONFDIR/netrc, and
 * last an interactive prompt on /dev/tty when there is one.  A secret is
 * never put in a child's argv, never logged, and is wiped when freed; core
 * dumps are disabled while one is held.
 */
#ifndef PUSHMAIL_SECRET_H
#define PUSHMAIL_SECRET_H

#include <stddef.h>
#include "cfg.h"
#include "result.h"

/* Fetch the secret for user@host of account a.  *out is malloc'd; release it
 * with secret_free.  Returns 0, or -1 with r filled (EX_CONFIG when a source
 * fails or none has it; EX_NOINPUT when password_file is unreadable). */
int secret_get(const struct account *a, const char *host, const char *user,
	       char **out, struct result *r);

/* The same for the SOCKS5 proxy (issue 16): proxy_password (or
 * "keyring"), proxy_password_command, proxy_password_file, then ~/.netrc for
 * the proxy's host; no prompt. */
int secret_get_proxy(const struct account *a, const char *host, const char *user,
		     char **out, struct result *r);

void secret_free(char *s);

/* Run argv (no shell) with stdin from /dev/null, collect the first line of
 * stdout (at most cap-1 bytes) and up to 1 KiB of stderr, within timeout_ms.
 * Returns the exit status (0..255), or -1 with r filled (spawn failure,
 * timeout).  Used for password_command and secret-tool. */
int secret_run(char *const argv[], char *line, size_t cap, char *err,
	       size_t errcap, int timeout_ms, struct result *r);

/* Split a command line into words like the shell would for simple cases
 * (whitespace, '...' and "..." quoting, backslash escapes).  Returns the
 * number of words (malloc'd argv, NULL-terminated; free with secret_argv_free)
 * or -1 when the command needs a real shell (|, &, ;, <, >, $, `, *, ?, ...). */
int secret_split(const char *cmd, char ***argv);
void secret_argv_free(char **argv);

/* Pure .netrc lookup in text: the password of the first "machine host" entry
 * whose login is user (or has no login), else of "default".  Returns a
 * malloc'd string or NULL. */
char *secret_netrc_lookup(const char *text, const char *host, const char *user);

#endif
