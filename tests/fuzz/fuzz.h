/* fuzz.h - shared bits of the libFuzzer targets.
 *
 * CHECK is the oracle's assert: a broken property is a crash, reported like
 * a sanitizer finding (through the sanitizer's report descriptor, which
 * survives libFuzzer's -close_fd_mask) with the expression and its place,
 * then abort() so libFuzzer saves the input. */
#ifndef PUSHMAIL_FUZZ_H
#define PUSHMAIL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sanitizer/common_interface_defs.h>

#define CHECK(x) do { if (!(x)) fuzz_check_failed(#x, __FILE__, __LINE__); } while (0)

__attribute__((noreturn, unused))
static void fuzz_check_failed(const char *what, const char *file, int line)
{
	char msg[512];

	snprintf(msg, sizeof msg, "SUMMARY: fuzz check failed: %s (%s:%d)",
		 what, file, line);
	__sanitizer_report_error_summary(msg);
	abort();
}

/* What result_sanitise promises for text that reaches a terminal: no C0
 * control, no DEL, and bytes >= 0x80 only as valid, shortest-form UTF-8
 * of a character that is neither C1 (U+0080..U+009F) nor a surrogate. */
__attribute__((unused))
static int fuzz_safe_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned cp, need;
		if (*p < 0x20 || *p == 0x7f)
			return 0;
		if (*p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf)
			cp = *p & 0x1f, need = 1;
		else if (*p >= 0xe0 && *p <= 0xef)
			cp = *p & 0x0f, need = 2;
		else if (*p >= 0xf0 && *p <= 0xf4)
			cp = *p & 0x07, need = 3;
		else
			return 0;
		p++;
		for (unsigned k = 0; k < need; k++, p++) {
			if ((*p & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (*p & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
			return 0;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An output buffer the oracle builds its expectation in; the caller makes
 * it big enough (buf_put does not check). */
struct buf {
	char *p;
	size_t n;
};

__attribute__((unused))
static void buf_put(struct buf *b, const char *s, size_t n)
{
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

#endif
