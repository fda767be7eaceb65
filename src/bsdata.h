/* bsdata.h - the input side of -bs: a buffered line reader over a file
 * descriptor, and the DATA reader with its end-of-data rule (pure apart
 * from read(2), so it can be fuzzed over a memfd).
 *
 * Only <CRLF>.<CRLF> ends the data (RFC 5321 4.1.1.4): a "." line counts
 * only when the line before it ended in CRLF (or it is the first line) and
 * it ends in CRLF itself.  A "." line ended by a bare LF, or after a line
 * that ended in a bare LF, is data: taking "\n.\n" as the end let a body
 * carry a second, smuggled transaction (issue 13, the -bs side of
 * CVE-2023-51764).  Such a line stays "." and is dot-stuffed again on the
 * way to the relay. */
#ifndef PUSHMAIL_BSDATA_H
#define PUSHMAIL_BSDATA_H

#include <stddef.h>

struct bs_reader {
	int fd;
	size_t pos, len;
	int crlf;                    /* the last complete line ended in CRLF */
	unsigned long long total;    /* bytes read from fd so far */
	char buf[64 * 1024];
};

/* Up to cap-1 bytes (cap >= 2) of the next line, without its CRLF or LF,
 * NUL-terminated (the line itself may hold NULs: use *len).  *complete is
 * 0 when the line goes on past what was returned.  Returns -1 at end of
 * input. */
int bs_read_line(struct bs_reader *rd, char *out, size_t cap, size_t *len,
		 int *complete);

/* Bytes of input consumed so far (read and handed out as lines). */
unsigned long long bs_consumed(const struct bs_reader *rd);

/* The meaning of one piece of DATA input as bs_read_line returned it:
 * 1 when it is the end of data, else 0 with *skip the number of leading
 * bytes to drop (the dot of a dot-stuffed line, RFC 5321 4.5.2).
 * bol: the piece starts a line; crlf_before: the line before ended in CRLF
 * (or there was none); complete, crlf: the piece ends its line, in CRLF. */
int bs_data_line(const char *line, size_t len, int bol, int crlf_before,
		 int complete, int crlf, size_t *skip);

/* Read DATA lines up to the end of data, handing each line, un-stuffed and
 * ended by CRLF, to put (which may be called with n == 0).  Returns 0 at
 * the end of data, -1 when the input ended first. */
typedef void bs_sink(void *arg, const char *p, size_t n);
int bs_read_data(struct bs_reader *rd, bs_sink *put, void *arg);

#endif
