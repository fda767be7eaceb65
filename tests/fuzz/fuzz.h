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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
