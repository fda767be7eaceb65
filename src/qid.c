/* qid.c - see qid.h.  libc only. */
#include "config.h"
#include "qid.h"

#include <stdio.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

void qid_make(char *out, size_t cap)
{
	struct timeval tv;
	struct tm tm;
	unsigned short rnd = 0;
	char stamp[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
	if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
		rnd = (unsigned short)tv.tv_usec;
	snprintf(out, cap, "%s.%06ld.%d.%04x", stamp, (long)tv.tv_usec,
		 (int)getpid(), rnd);
}
