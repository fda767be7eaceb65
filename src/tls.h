/* tls.h - GnuTLS client sessions on top of a struct conn (SPEC 4 and 7).
 *
 * Verified by default: the system trust store (or tls_trust_file), the host
 * name checked by the handshake itself, SNI, TLS 1.2 at least.  A pin
 * (tls_fingerprint) replaces the chain check but not the validity dates.
 * After tls_start the conn's byte mover is the TLS session, so the SMTP code
 * above never knows whether TLS is on.
 */
#ifndef PUSHMAIL_TLS_H
#define PUSHMAIL_TLS_H

#include <stddef.h>
#include <time.h>
#include "conn.h"
#include "result.h"

struct tls_params {
	const char *host;          /* name to verify and send as SNI */
	const char *trust_file;    /* PEM CA file; NULL or "system": system store */
	const char *fingerprint;   /* "sha256:AB:CD:..." pin of cert or SPKI, or NULL */
	const char *cert_file;     /* client certificate (PEM), or NULL */
	const char *key_file;      /* its key (PEM); defaults to cert_file */
	const char *priorities;    /* GnuTLS priority string, or NULL */
	int report_only;           /* --serverinfo: finish the handshake whatever the
				    * certificate, and put the verdict in info->verdict */
};

/* What the handshake established (for -v, --serverinfo and SASL). */
struct tls_info {
	char version[16];          /* "TLS1.3" */
	char cipher[48];           /* "AES-256-GCM", for the mail log */
	char desc[160];            /* gnutls_session_get_desc() */
	char subject[512], issuer[512];
	char sans[1024];           /* comma-separated DNS/IP SANs */
	time_t not_before, not_after;
	char cert_sha256[112];     /* "sha256:AB:..." of the DER certificate */
	char spki_sha256[112];     /* "sha256:AB:..." of the SubjectPublicKeyInfo */
	const char *pin_matched;   /* "certificate", "public key" or NULL */
	char verdict[RESULT_TEXT_MAX];         /* report_only: "trusted" or why not */
	unsigned char cb[64];      /* channel binding: tls-exporter (TLS 1.3) or tls-unique */
	size_t cblen;
	const char *cbtype;        /* "tls-exporter" or "tls-unique" */
};

/* Handshake on c within timeout_ms and switch c to the TLS session.
 * Failures: EX_CONFIG (bad priority string or fingerprint syntax), EX_NOINPUT
 * (trust/cert/key file unreadable), EX_UNAVAILABLE (certificate not trusted,
 * name mismatch, expired, pin mismatch, handshake refused), EX_TEMPFAIL
 * (timeout, connection lost).  info may be NULL. */
int tls_start(struct conn *c, const struct tls_params *tp, int timeout_ms,
	      struct tls_info *info, struct result *r);

/* Check a fingerprint string's syntax ("sha256:" + 32 hex pairs, colons
 * optional).  Returns 0 and fills out[32], or -1. Pure. */
int tls_parse_fingerprint(const char *s, unsigned char out[32]);

#endif
