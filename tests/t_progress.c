/* t_progress.c - the text of the progress line (issue 19). */
#include "config.h"
#include "progress.h"
#include "tap.h"

struct pcase {
	unsigned long long done, total;
	double secs;
	const char *want;
};

static const struct pcase cases[] = {
	{ 0, 0, 0, "0 B sent, 0 B/s" },
	{ 512, 0, 1, "512 B sent, 512 B/s" },
	{ 12ULL << 20, 40ULL << 20, 3, "12.0 MiB of 40.0 MiB (30%), 4.0 MiB/s, 0:07 left" },
	{ 1ULL << 20, 1ULL << 30, 1, "1.0 MiB of 1.0 GiB (0%), 1.0 MiB/s, 17:03 left" },
	{ 40ULL << 20, 40ULL << 20, 8, "40.0 MiB of 40.0 MiB (100%), 5.0 MiB/s" },
	{ 2048, 1000, 1, "2.0 KiB of 1000 B (100%), 2.0 KiB/s" },   /* estimate short */
};

int main(void)
{
	char out[128];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		progress_format(out, sizeof out, cases[i].done, cases[i].total, cases[i].secs);
		is_str(out, cases[i].want, "progress line %zu", i);
	}
	progress_format(out, 16, 12ULL << 20, 40ULL << 20, 3);
	ok(out[15] == '\0', "a short buffer is cut, not overrun");
	return tap_done();
}
