/* tokens.h - an account's OAuth2 token cache file (issue 18).
 *
 * Where: $XDG_STATE_HOME/pushmail/oauth2/ACCOUNT.json (~/.local/state/...)
 * for a user; for root and the delivery service's user, the system spool's
 * oauth2/ directory (PUSHMAIL_QUEUE_DIR for root, else queue_dir, else
 * SPOOLDIR),
 * owned by the spool's owner.  The file is JSON, mode 0600, replaced
 * atomically (temporary file, fsync, rename, fsync of the directory); it
 * records the token endpoint and client id it belongs to, so a changed
 * configuration is not fed a stranger's refresh token.
 */
#ifndef PUSHMAIL_TOKENS_H
#define PUSHMAIL_TOKENS_H

#include <stddef.h>
#include "cfg.h"
#include "oauth2.h"
#include "result.h"

/* Account names become file names: letters, digits, '.', '_', '-', not
 * starting with '.', at most 64 bytes.  1 when name is one. */
int tokens_name_ok(const char *name);

/* The cache file of account a into out.  0, or -1 with r filled
 * (EX_CONFIG: a name that cannot be a file name, no home directory). */
int tokens_path(const struct account *a, char *out, size_t cap, struct result *r);

/* Take the account's lock (PATH.lock, flock) so that two pushmail processes
 * do not both spend a rotating refresh token; waits at most 30 s.  Creates
 * the directory.  *fd is the lock; tokens_unlock releases it. */
int tokens_lock(const char *path, int *fd, struct result *r);
void tokens_unlock(int fd);

/* Pure: decode the file's text.  1 with t filled when it belongs to
 * token_url and client_id, 0 when it belongs to another client, -1 when
 * it is not a token file. */
int tokens_decode(const char *text, size_t len, const char *token_url,
		  const char *client_id, struct oauth2_tokens *t);
/* Pure: the file's text (malloc'd; wipe and free with oauth2_form_free). */
char *tokens_encode(const char *token_url, const char *client_id,
		    const struct oauth2_tokens *t);

/* Read the file: 1 with t filled, 0 when there is none (or it belongs to
 * another client: *other set), -1 with r filled (EX_CONFIG for a file
 * others may read or that is not ours, EX_IOERR). */
int tokens_load(const char *path, const char *token_url, const char *client_id,
		struct oauth2_tokens *t, int *other, struct result *r);
/* Replace the file atomically (0600; given to the spool owner when it is
 * the system's).  0, or -1 with r filled (EX_CANTCREAT/EX_IOERR). */
int tokens_store(const char *path, const char *token_url, const char *client_id,
		 const struct oauth2_tokens *t, struct result *r);

#endif
