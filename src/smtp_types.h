/* smtp_types.h - what a caller hands an SMTP session: the relay's
 * parameters, the envelope and the message, and what comes back.  Shared by
 * the transaction API (smtp.h) and the producers below it (session.h), so
 * that no lower file needs the API's header. */
#ifndef PUSHMAIL_SMTP_TYPES_H
#define PUSHMAIL_SMTP_TYPES_H

#include <stddef.h>
#include "conn.h"
#include "result.h"
#include "tls.h"
#include "auth.h"

enum smtp_tls { SMTP_TLS_OFF = 0, SMTP_TLS_STARTTLS, SMTP_TLS_IMPLICIT };

struct smtp_params {
	const char *account;     /* for messages only */
	const char *host;
	const char *port;
	const char *ehlo_name;   /* EHLO argument */
	enum smtp_tls tls;
	const struct tls_params *tlsp;  /* with tls != SMTP_TLS_OFF */
	struct tls_info *tls_info;      /* filled after the handshake; may be NULL */
	const struct auth_params *auth; /* NULL: no AUTH */
	char *auth_used;         /* AUTH_MECH_MAX bytes: gets the mechanism that
				  * logged in ("" before); may be NULL */
	int timeout_s;           /* caps every RFC 5321 phase timeout; 0 = RFC values */
	int partial_delivery;    /* 1: deliver to accepted recipients when some are refused */
	const struct conn_route *route; /* proxy, source address, family; NULL: direct */
	int lmtp;                /* RFC 2033: LHLO, one reply per recipient after the data */
	int pipeline_auth;       /* send PLAIN or EXTERNAL AUTH in one flight with the
				  * first message (RFC 4954 4); see smtp_open */
	int serial;              /* one transaction in flight at a time: the relay
				  * broke a pipelined window before (runq) */
};

enum { SMTP_8BIT_UNKNOWN = 2 };

struct smtp_envelope {
	const char *from;            /* "" for the null sender */
	const char *const *rcpt;
	size_t nrcpt;
	unsigned long long size;     /* SIZE=: the message with CRLF line ends and
					no dot-stuffing (RFC 1870), 0 when unknown */
	int eightbit;                /* 1: the message has 8-bit bytes, so
					BODY=8BITMIME; SMTP_8BIT_UNKNOWN: a stream
					not seen before MAIL, BODY=8BITMIME where
					offered (RFC 6152 allows it for 7-bit) */
	int binary;                  /* NUL bytes or -BBINARYMIME: needs BINARYMIME
					and CHUNKING (RFC 3030), else EX_DATAERR */
	const char *dsn_notify;      /* RFC 3461 NOTIFY value ("FAILURE,DELAY",
					"NEVER"), or NULL */
	const char *dsn_ret;         /* "FULL" or "HDRS", or NULL */
	const char *dsn_envid;       /* ENVID (sent xtext-encoded), or NULL */
};

/* The message: an in-memory header block followed by the rest of fd. */
struct smtp_message {
	const char *head;
	size_t headlen;
	int fd;                      /* -1 when there is no more input */
	unsigned long long size;     /* head + fd bytes when known (progress), or 0 */
};

struct smtp_outcome {
	size_t accepted;             /* recipients the relay accepted */
	char final_reply[RESULT_TEXT_MAX]; /* text of the 2xx to the end of data */
	unsigned long long bytes;    /* message bytes sent after normalisation */
};

#endif
