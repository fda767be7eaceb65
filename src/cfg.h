/* cfg.h - account profiles from INI files (libinih), SPEC section 2.
 *
 * Every key is described once, in the key table of cfg.c (name, type,
 * allowed values, where it may appear).  An account is an array of settings
 * indexed by enum cfg_key; [defaults] fills whatever an account leaves unset.
 * Errors name file:line and key and suggest the nearest known key.
 */
#ifndef PUSHMAIL_CFG_H
#define PUSHMAIL_CFG_H

#include <stddef.h>
#include "result.h"

enum cfg_key {
	K_HOST, K_PORT, K_TLS, K_TLS_TRUST_FILE, K_TLS_FINGERPRINT, K_TLS_CERT_FILE,
	K_TLS_KEY_FILE, K_TLS_PRIORITIES, K_TLS_HOST_OVERRIDE,
	K_AUTH, K_USER, K_PASSWORD, K_PASSWORD_COMMAND, K_PASSWORD_FILE,
	K_FROM, K_FROM_MATCH, K_ALLOW_FROM_OVERRIDE, K_DOMAIN,
	K_QUEUE, K_QUEUE_DIR, K_QUEUE_LIFETIME, K_QUEUE_RETRY, K_QUEUE_RETRY_MAX,
	K_PARTIAL_DELIVERY, K_ALLOW_PLAINTEXT_AUTH,
	K_DSN_NOTIFY, K_DSN_RETURN,
	K_SET_DATE_HEADER, K_SET_MSGID_HEADER, K_SET_FROM_HEADER, K_SET_TO_HEADER,
	K_MAILDOMAIN, K_LOG, K_TIMEOUT, K_ALIASES, K_LOG_FACILITY,
	K_TRUSTED_USERS,
	K_ADMIN_ADDRESS,
	K_FALLBACK,
	K_RATE_LIMIT,
	K_DELAY_WARNING, K_AUTH_FAILURES_NOTIFY,
	/* OAuth2 (issue 18) */
	K_OAUTH2_PROVIDER, K_OAUTH2_CLIENT_ID, K_OAUTH2_CLIENT_SECRET,
	K_OAUTH2_TOKEN_URL, K_OAUTH2_DEVICE_URL, K_OAUTH2_SCOPE, K_OAUTH2_TRUST_FILE,
	/* transports (issue 16) */
	K_SOURCE_ADDRESS, K_IP_VERSION, K_PROTOCOL, K_SOCKET, K_PROXY,
	K_PROXY_USER, K_PROXY_PASSWORD, K_PROXY_PASSWORD_COMMAND,
	K_PROXY_PASSWORD_FILE,
	K__COUNT
};

struct setting {
	char *value;        /* expanded, unquoted value; NULL when unset */
	const char *file;   /* where it was set (points into struct config's file list) */
	int line;
};

struct account {
	char *name;
	const char *file;
	int line;                     /* line of the [name] header */
	struct setting s[K__COUNT];
};

struct config {
	struct account *v;            /* accounts in file order ([defaults] excluded) */
	size_t n;
	struct account defaults;      /* the [defaults] section (name "defaults") */
	char *default_account;        /* top-level default_account, or NULL */
	const char *default_account_file; /* where it was set (into files[]) */
	int default_account_line;
	char *files[4];               /* paths loaded, owned; settings point at these */
	size_t nfiles;
	int sys_denied;               /* the system file exists but this user may not read it */
};

/* A struct config must be zeroed (`struct config c = {0};`) before the first
 * load; cfg_free leaves it zeroed again.  Top-level queue_dir is stored as a
 * [defaults] setting (c->defaults.s[K_QUEUE_DIR]). */

/* Limits: a longer line or a larger file is an error, never truncated. */
#define CFG_LINE_MAX 1024             /* bytes per line, without the line end */
#define CFG_FILE_MAX (1024 * 1024)    /* bytes per file */

/* Find and load the configuration in SPEC search order: `path` when given
 * (--config), else $PUSHMAIL_CONFIG (ignored when set-id), else the system file
 * SYSCONFDIR/pushmail.ini followed by the user file
 * $XDG_CONFIG_HOME/pushmail/config.ini (user accounts replace system accounts of
 * the same name).  *found is set to the number of files loaded (0: none exist,
 * which is not an error here).  Returns 0, or -1 with r filled (EX_CONFIG, or
 * EX_NOINPUT when an explicitly named file is missing/unreadable). */
int cfg_load(struct config *c, const char *path, int *found, struct result *r);

/* Load one file / one string into c (the string form is for tests; `name`
 * appears in messages as the file name).  Same return convention. */
int cfg_load_file(struct config *c, const char *path, struct result *r);
int cfg_load_string(struct config *c, const char *text, const char *name,
		    struct result *r);

/* Apply [defaults] to every account and validate: required keys, value syntax,
 * default_account naming an existing account.  Call once after loading. */
int cfg_finish(struct config *c, struct result *r);

/* SPEC 2 account choice: `name` (--account) if given; else the first account
 * whose from/from_match matches env_from (may be NULL); else default_account;
 * else the only account; else EX_CONFIG.  Returns NULL with r filled. */
const struct account *cfg_select(const struct config *c, const char *name,
				 const char *env_from, struct result *r);

/* Typed access to a finished account.  cfg_str returns NULL when unset; the
 * string lives until cfg_free.  Values are stored normalised: booleans as
 * "yes"/"no", enums in their canonical spelling, numbers in decimal,
 * from_match and dsn_notify as comma lists without spaces.  cfg_bool and
 * cfg_long return dflt when the key is unset; cfg_long gives queue_lifetime
 * in seconds. */
const char *cfg_str(const struct account *a, enum cfg_key k);
int cfg_bool(const struct account *a, enum cfg_key k, int dflt);
long cfg_long(const struct account *a, enum cfg_key k, long dflt);

/* rate_limit = N/PERIOD: 1 with *n messages per *period seconds, 0 when
 * the account has no limit. */
int cfg_rate(const struct account *a, long *n, long *period);

/* 1 when pattern list `from_match` or `from` of a matches addr (case-insensitive
 * globs; user+tag@dom also tried as user@dom). */
int cfg_from_matches(const struct account *a, const char *addr);

/* Name of a key ("tls_trust_file"); "?" when k is out of range. */
const char *cfg_key_name(enum cfg_key k);

/* Derived defaults (not stored by cfg_finish, computed here so there is one
 * rule).  cfg_port: the explicit port, else "465" for tls = implicit, "25" for
 * tls = off, "587" otherwise.  cfg_tls_mode: the tls key, else CFG_TLS_IMPLICIT
 * when the port is 465, else CFG_TLS_STARTTLS. */
enum { CFG_TLS_OFF = 0, CFG_TLS_STARTTLS = 1, CFG_TLS_IMPLICIT = 2 };
const char *cfg_port(const struct account *a);
int cfg_tls_mode(const struct account *a);

/* The unix-domain socket the account delivers to (`socket`, or a `host`
 * that is an absolute path), or NULL for TCP. */
const char *cfg_socket(const struct account *a);
/* Where the account delivers, for messages: the socket, else host. */
const char *cfg_host(const struct account *a);

/* Tests only: look for the system file in `dir` instead of SYSCONFDIR
 * (NULL restores SYSCONFDIR).  The pointer is kept, not copied. */
void cfg_set_sysconfdir(const char *dir);

void cfg_free(struct config *c);

/* Whether the file behind st (fstat of the open file) may be trusted as the
 * caller's configuration or a file it names: owned by the caller or root,
 * writable by nobody else, and, when it holds a secret, readable by nobody
 * else (except root:SYSTEM_USER 0640 for the system file).  0, or -1 with r
 * filled (EX_CONFIG naming the file and the fix). */
struct stat;
int cfg_check_file(const char *file, const struct stat *st, int secret,
		   struct result *r);

/* The user's home ($HOME, else the password database), or NULL. */
const char *cfg_home_dir(void);
/* Running set-user-ID or set-group-ID: environment overrides are ignored. */
int cfg_running_setid(void);

#endif
