/* mime.h - MIME encoders for composing a message (pure, no I/O).
 *
 * Streaming base64 (RFC 2045 section 6.8) and quoted-printable (section 6.7)
 * encoders that give the same output however the input is split into
 * blocks; header fields folded at 78 columns (RFC 5322 section 2.2.3) with
 * RFC 2047 encoded-words for text that is not plain ASCII; RFC 2231
 * parameters for non-ASCII or long file names.  Every line ends in CRLF.
 */
#ifndef PUSHMAIL_MIME_H
#define PUSHMAIL_MIME_H

#include <stddef.h>
#include "address.h"
#include "sbuf.h"

#define MIME_LINE_SOFT 78    /* RFC 5322 2.1.1: SHOULD */
#define MIME_LINE_HARD 998   /* RFC 5322 2.1.1: MUST */

/* ---- base64: 76-character lines ---- */

struct mime_b64 {
	unsigned char carry[3];    /* input bytes not yet making a group of 3 */
	size_t ncarry;
	size_t col;                /* characters on the current output line */
};

/* Enough output room for one update of n input bytes, or for final (n = 0). */
#define MIME_B64_OUT_MAX(n) ((size_t)(n) * 2 + 16)

void mime_b64_init(struct mime_b64 *e);
/* Encode n bytes into out (MIME_B64_OUT_MAX(n) bytes); returns bytes written. */
size_t mime_b64_update(struct mime_b64 *e, const void *in, size_t n, char *out);
/* Flush the last group with padding and end the last line with CRLF. */
size_t mime_b64_final(struct mime_b64 *e, char *out);
/* Exact encoded size of n input bytes, CRLFs included (0 for 0). */
unsigned long long mime_b64_size(unsigned long long n);

/* ---- quoted-printable, text mode ---- */

/* CRLF and bare LF are line breaks (CRLF out); a bare CR is "=0D"; a space
 * or tab before a line break or at the end is encoded; a "." starting a line
 * is "=2E" (no dot-stuffing surprises); lines are at most 76 characters with
 * "=" soft breaks.  A last line without a line break ends in a soft break. */
struct mime_qp {
	size_t col;
	int pend_ws;               /* a space or tab not yet written, or 0 */
	int pend_cr;               /* a CR not yet known to start a CRLF */
};

#define MIME_QP_OUT_MAX(n) ((size_t)(n) * 6 + 32)

void mime_qp_init(struct mime_qp *q);
size_t mime_qp_update(struct mime_qp *q, const void *in, size_t n, char *out);
size_t mime_qp_final(struct mime_qp *q, char *out);

/* 1 when text can go as 7bit (RFC 2045 2.7): only printable ASCII, tab and
 * line breaks (LF or CRLF, no bare CR), no line over 998 octets.  0 when it
 * needs quoted-printable (8-bit bytes, controls, NUL, bare CR, long lines). */
int mime_text_is_7bit(const char *s, size_t n);

/* 1 when s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms,
 * surrogates, or values past U+10FFFF). */
int mime_utf8_valid(const char *s, size_t n);

/* ---- header fields ---- */

/* Where a header line is being built: b gets the text, col is the column. */
struct mime_fold {
	struct sbuf *b;
	size_t col;
};

/* "Name: value\r\n", value unstructured (RFC 5322 3.2.5), folded at white
 * space to 78 columns.  A value with bytes outside printable ASCII and tab,
 * with "=?", or with a word that cannot fit in 998 columns, is written as
 * RFC 2047 B encoded-words (UTF-8), never splitting a UTF-8 character. */
void mime_header_text(struct sbuf *b, const char *name, const char *value);

/* "Name: a, "Display" <b>, =?UTF-8?B?...?= <c>\r\n": an address list with
 * display names quoted when they hold specials and encoded (RFC 2047
 * section 5 (3)) when they are not ASCII. */
void mime_header_addrs(struct sbuf *b, const char *name, const struct addrlist *l);

/* Append ";" and the parameter attr=value after the current token, folding
 * before it when needed.  Plain ASCII that fits is a quoted-string;
 * otherwise RFC 2231 extended notation (utf-8'') split into numbered
 * sections of at most 78 columns on character boundaries. */
void mime_param(struct mime_fold *f, const char *attr, const char *value);

/* Append a token, preceded by the white space ws (may be ""); when it would
 * pass 78 columns and ws is not empty, a CRLF goes before ws (a fold). */
void mime_fold_put(struct mime_fold *f, const char *ws, const char *tok, size_t n);

#endif
