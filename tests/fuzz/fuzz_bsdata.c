/* fuzz_bsdata.c - the -bs DATA reader (bsdata.h) over arbitrary input.
 *
 * Oracles:
 *  - only <CRLF>.<CRLF> ends the data: with the input seen as following the
 *    DATA command's CRLF, bs_read_data returns 0 exactly when "\r\n.\r\n"
 *    occurs in "\r\n" + input, and then it has consumed the input up to the
 *    end of its first occurrence, not a byte more or less (so what follows
 *    is read as commands, and nothing before it is);
 *  - otherwise it returns -1 having consumed everything;
 *  - what it hands on is no longer than the input plus a CRLF per line
 *    (it may hold a "." line: that is data, dot-stuffed again on the wire). */
#define _GNU_SOURCE
#include "config.h"
#include "fuzz.h"
#include "bsdata.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct out {
	size_t len, cap;
	char *buf;
};

static void put(void *arg, const char *p, size_t n)
{
	struct out *o = arg;

	if (n == 0)
		return;
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2 + 64;
		o->buf = realloc(o->buf, o->cap);
		CHECK(o->buf);
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static size_t lines(const uint8_t *d, size_t n)
{
	size_t k = 1;

	for (size_t i = 0; i < n; i++)
		k += d[i] == '\n';
	return k + n / 8000;   /* long lines are handed on in pieces */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct bs_reader rd;
	struct out o = { 0 };
	uint8_t *pre = malloc(size + 2);
	const uint8_t *end;
	int fd = memfd_create("bsdata", MFD_CLOEXEC), rc;

	CHECK(pre && fd >= 0);
	CHECK(write(fd, data, size) == (ssize_t)size);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	memset(&rd, 0, sizeof rd);
	rd.fd = fd;
	rc = bs_read_data(&rd, put, &o);

	pre[0] = '\r';
	pre[1] = '\n';
	memcpy(pre + 2, data, size);
	end = memmem(pre, size + 2, "\r\n.\r\n", 5);
	if (end) {
		CHECK(rc == 0);
		CHECK(bs_consumed(&rd) == (unsigned long long)(end - pre + 5 - 2));
	} else {
		CHECK(rc == -1);
		CHECK(bs_consumed(&rd) == size);
	}
	CHECK(o.len <= size + 2 * lines(data, size));
	close(fd);
	free(o.buf);
	free(pre);
	return 0;
}
