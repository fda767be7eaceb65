/* aliases.h - /etc/aliases for a relay-only client.
 *
 * The file is read the way sendmail and Postfix read it:
 *
 *   # comment
 *   name: value, value, ...
 *   	value, ...            (a line starting with SP/TAB continues the entry)
 *
 * Names are local parts compared case-insensitively (ASCII).  Blank lines and
 * lines whose first non-blank character is '#' are ignored and do not end an
 * entry (Postfix rules).  A value is
 *   - an address, in any RFC 5322 form ("A B" <a@b>, a@b (c), <a@b>);
 *   - a bare name ("root", "admin"), itself subject to aliasing;
 *   - "\name": a bare name delivered as is, never aliased again (sendmail);
 *   - "/dev/null": the message is discarded for this entry;
 *   - "|command", "/file", ":include:/path" (also inside "..."): a relay
 *     client cannot honour them, so they are skipped and reported, never run
 *     or read.
 * Errors name the place: "FILE:LINE: reason".  A line without ':', an empty
 * or malformed name, an entry without a value, a malformed address and a
 * name defined twice (both line numbers given) are errors, so newaliases
 * catches what sendmail would only warn about.
 *
 * Pure apart from aliases_load_file() and aliases_check(), which read a file.
 */
#ifndef PUSHMAIL_ALIASES_H
#define PUSHMAIL_ALIASES_H

#include <stddef.h>

#include "address.h"
#include "result.h"

#define ALIASES_FILE_MAX (4u << 20)  /* bytes; larger is EX_DATAERR */
#define ALIASES_DEPTH_MAX 20         /* nested aliases in one expansion */

/* A loaded, immutable aliases table.  Opaque. */
struct aliases;

/* An entry aliases_expand() skipped.  All pointers belong to the table and
 * stay valid until aliases_free().  alias and entry hold no ASCII control
 * characters but may hold bytes >= 0x80 (UTF-8): sanitise before printing. */
struct aliases_skipped {
	const char *file;   /* the name given when loading */
	unsigned line;      /* where the entry is written */
	const char *alias;  /* the alias whose value holds it (lower case) */
	const char *entry;  /* as written: "|/usr/bin/procmail", "/var/log/x" */
	const char *why;    /* "a relay client does not run commands", ... */
};

typedef void aliases_skip_fn(void *arg, const struct aliases_skipped *s);

/* Parse len bytes of aliases text; name is used in messages (NULL:
 * "aliases").  On success *out is a new table for aliases_free().
 * Returns 0, or -1 with r filled and *out NULL:
 *   EX_DATAERR  syntax error or duplicate ("FILE:LINE: ..."), or len over
 *               ALIASES_FILE_MAX;
 *   EX_OSERR    out of memory. */
int aliases_load_string(struct aliases **out, const char *text, size_t len,
			const char *name, struct result *r);

/* aliases_load_string() on the contents of path.  Additional failures:
 *   EX_NOINPUT  path missing, unreadable or not a regular file;
 *   EX_DATAERR  larger than ALIASES_FILE_MAX;
 *   EX_IOERR    read error. */
int aliases_load_file(struct aliases **out, const char *path,
		      struct result *r);

/* Number of entries (names) in the table. */
size_t aliases_count(const struct aliases *a);

/* newaliases: load path, then discard it.  Returns 0 with the number of
 * entries in *count (count may be NULL), or -1 with the first error in r. */
int aliases_check(const char *path, size_t *count, struct result *r);

/* Expand one recipient and append the result to out (which is not searched:
 * duplicates with its earlier contents are the caller's business).
 *
 * A recipient with a domain, or any recipient when a is NULL, is appended
 * unchanged.  Otherwise it is looked up; a name without an entry uses the
 * "default" entry when there is one, except inside default's own expansion;
 * a name with neither is appended as the bare name (the caller qualifies it
 * with maildomain).  Expansion is recursive, and each entry is expanded at
 * most once per call:
 *   - a name met again while its own expansion is in progress (root: root,
 *     x@y; or a cycle a: b, b: a) is delivered as the bare name where the
 *     loop closes, as sendmail and Postfix deliver a self-reference to the
 *     local mailbox: root -> root, x@y; a -> a; b -> b;
 *   - a name met again after its expansion finished adds nothing new;
 *   - more than ALIASES_DEPTH_MAX nested entries is EX_DATAERR.
 * Results are deduplicated (local part exact, domain case-insensitive), in
 * first-seen order, display names dropped.  Skipped entries (|cmd, /file,
 * :include:) are reported to skip (may be NULL) as they are met, even when
 * the call fails later.
 *
 * Returns 0, possibly having appended nothing when every branch ends in
 * /dev/null (the message is discarded for this recipient).  Returns -1 with
 * r filled and out unchanged:
 *   EX_USAGE    local is empty;
 *   EX_DATAERR  nesting too deep, or nothing is left to deliver to and at
 *               least one entry was skipped (the mail would vanish
 *               silently, e.g. root: |procmail);
 *   EX_OSERR    out of memory. */
int aliases_expand(const struct aliases *a, const char *local,
		   struct addrlist *out, aliases_skip_fn *skip, void *arg,
		   struct result *r);

/* Free a table; NULL is fine. */
void aliases_free(struct aliases *a);

#endif
