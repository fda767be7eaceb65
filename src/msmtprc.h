/* msmtprc.h - convert an msmtp configuration (msmtprc) into pushmail's INI
 * format, for `pushmail --import-msmtprc [FILE]`.
 *
 * Pure converter: it reads text and writes text.  It never runs msmtp's
 * `eval` or `passwordeval` commands and never touches the network.
 *
 * The input is read the way msmtp 1.8 reads it (one command per line, the
 * argument stripped of blanks and of one pair of enclosing double quotes,
 * `defaults` setting what *later* accounts start from, `account b : a`
 * copying what a set).  pushmail's only inheritance is one [defaults] for
 * every account, so the output resolves all of that and writes each account
 * with every setting it had in msmtp, including msmtp defaults that differ
 * from pushmail's (tls off, port 25, auth off).
 *
 * Anything that does not carry over unchanged becomes a comment starting
 * with "; msmtp:" in the output; a value is never silently cut or altered.
 * Passwords are copied into the output but never into a comment.  The
 * output always loads with cfg_load_string()/cfg_finish().
 */
#ifndef PUSHMAIL_MSMTPRC_H
#define PUSHMAIL_MSMTPRC_H

#include <stddef.h>
#include <stdio.h>
#include "result.h"

/* Lines longer than this are refused by msmtp (its 501-byte fgets buffer);
 * the converter skips them with a comment. */
#define MSMTPRC_LINE_MAX 499

/* msmtprc_convert_file reads at most this much. */
#define MSMTPRC_FILE_MAX (16 * 1024 * 1024)

/* Convert `len` bytes of msmtprc `text` (need not be NUL-terminated; NUL
 * bytes, a missing final newline and overlong lines are tolerated) and
 * write pushmail INI to `out`.  `name` (may be NULL) is the source named in
 * the output's header comment.  The output is built in memory and written
 * with one fwrite, so on failure nothing has been written, except for a
 * partial write when `out` itself fails.  The output may hold passwords:
 * the caller creates the file private (0600).
 * Returns 0, or -1 with r filled: EX_OSERR (out of memory), EX_IOERR (writing
 * to out failed).  Lines that cannot be converted are not errors. */
int msmtprc_convert(const char *text, size_t len, const char *name, FILE *out,
		    struct result *r);

/* Read the msmtprc at `path` and convert it as above.  A NULL path means
 * msmtp's user file: $HOME/.msmtprc when it exists, else
 * $XDG_CONFIG_HOME/msmtp/config (default ~/.config/msmtp/config).
 * Returns 0, or -1 with r filled: EX_NOINPUT (missing, unreadable or not a
 * regular file), EX_DATAERR (larger than MSMTPRC_FILE_MAX), EX_IOERR,
 * EX_OSERR. */
int msmtprc_convert_file(const char *path, FILE *out, struct result *r);

#endif
