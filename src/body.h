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

/* What a message is, learnt without sending it (the queue while spooling,
 * a direct send from a regular file): its size on the wire -- exactly what
 * body_feed and body_finish produce without dot-stuffing, which is the sum of
 * the BDAT chunks and RFC 1870's SIZE for DATA too -- and whether it has
 * 8-bit or NUL bytes.  Feed it any split of the input. */
struct body_scan {
	unsigned long long raw;   /* input bytes */
	unsigned long long wire;  /* CRLF-normalised bytes, final CRLF not counted */
	int last;                 /* last input byte, -1 before any */
	int eightbit, nul;
};

void body_scan_init(struct body_scan *z);
void body_scan_feed(struct body_scan *z, const char *in, size_t n);
/* The wire size of everything fed so far, as if the input ended here. */
unsigned long long body_scan_wire(const struct body_scan *z);

#endif
