/* body.h - streaming message normaliser (pure, no I/O).
 *
 * Turns any mix of CRLF, bare LF and bare CR into CRLF (SMTP smuggling defence,
 * CVE-2023-51764..6: no bare CR or LF ever reaches the wire), dot-stuffs lines
 * that start with '.' when the body goes after DATA, and finishes with a CRLF
 * when the input lacked one (plus ".\r\n" for DATA).  Its state survives any
 * split of the input into blocks, so the caller can feed whatever read() gave.
 * Works on blocks with memchr, not a branch per byte.
 */
#ifndef PUSHMAIL_BODY_H
#define PUSHMAIL_BODY_H

#include <stddef.h>

struct body_filter {
	int dotstuff;        /* 1: DATA (stuff dots, end with "."), 0: BDAT */
	int at_bol;          /* next output byte starts a line */
	int after_cr;        /* last input byte was CR (already emitted as CRLF);
			      * a following LF belongs to it */
	int any;             /* any input seen */
	unsigned long long nul;   /* NUL bytes seen */
	unsigned long long eight; /* bytes >= 0x80 seen */
	unsigned long long out_total; /* bytes produced so far */
};

/* Output space body_feed() may need for inlen input bytes. */
#define BODY_OUT_MAX(inlen) (2 * (inlen) + 8)

void body_init(struct body_filter *bf, int dotstuff);

/* Normalise in[0..inlen) into out (room for BODY_OUT_MAX(inlen) bytes).
 * Returns the number of bytes written. */
size_t body_feed(struct body_filter *bf, const char *in, size_t inlen, char *out);

/* End of input: write the final CRLF if the last line lacked one and, with
 * dotstuff, the ".\r\n" terminator.  out needs 8 bytes.  Returns bytes written. */
size_t body_finish(struct body_filter *bf, char *out);

#endif
