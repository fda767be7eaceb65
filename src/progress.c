/* progress.c - a progress line on a terminal (see progress.h). */
#include "config.h"
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUIET_SECS 1.0     /* a send quicker than this shows nothing */
#define REDRAW_SECS 0.2    /* at most five redraws a second */

static struct {
	int on;
	double t0;                 /* when the command started */
	double tbody;              /* when this body started */
	double last;               /* last redraw, 0 when nothing is drawn */
	unsigned long long total, done;
} pg;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_enable(void)
{
	pg.on = 1;
	pg.t0 = now();
}

void progress_start(unsigned long long total)
{
	pg.total = total;
	pg.done = 0;
	pg.tbody = now();
	pg.last = 0;
}

static void human(char *out, unsigned cap, double v)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void progress_format(char *out, unsigned cap, unsigned long long done,
		     unsigned long long total, double secs)
{
	char d[32], t[32], rate[32];
	double r = secs > 0 ? (double)done / secs : 0;
	int o;

	human(d, sizeof d, (double)done);
	human(rate, sizeof rate, r);
	if (!total) {
		snprintf(out, cap, "%s sent, %s/s", d, rate);
		return;
	}
	human(t, sizeof t, (double)total);
	o = snprintf(out, cap, "%s of %s (%llu%%), %s/s", d, t,
		     done >= total ? 100ULL : done * 100 / total, rate);
	if (r > 0 && done < total && o > 0 && (unsigned)o < cap) {
		unsigned long long left = (unsigned long long)((double)(total - done) / r + 0.5);
		snprintf(out + o, cap - (unsigned)o, ", %llu:%02llu left", left / 60, left % 60);
	}
}

static void draw(const char *s)
{
	/* \r and erase-to-end-of-line: the line is redrawn in place */
	if (write(2, s, strlen(s)) < 0)
		pg.on = 0;
}

void progress_add(unsigned long long n)
{
	char line[160], text[128];
	double t;

	pg.done += n;
	if (!pg.on)
		return;
	t = now();
	if (t - pg.t0 < QUIET_SECS || (pg.last && t - pg.last < REDRAW_SECS))
		return;
	pg.last = t;
	progress_format(text, sizeof text, pg.done, pg.total, t - pg.tbody);
	snprintf(line, sizeof line, "\rpushmail: %s\033[K", text);
	draw(line);
}

void progress_end(void)
{
	if (pg.on && pg.last)
		draw("\r\033[K");
	pg.last = 0;
}
