/* log.c - stderr messages and the -v transcript. */
#include "config.h"
#include "log.h"
#include "result.h"

#include <stdarg.h>
#include <stdio.h>

int log_verbose;

static void vlog(const char *fmt, va_list ap)
{
	char buf[2048];

	vsnprintf(buf, sizeof buf, fmt, ap);
	fprintf(stderr, "pushmail: %s\n", buf);
}

void log_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void log_proto(const char *dir, const char *line, size_t len)
{
	char clean[1024];

	if (!log_verbose)
		return;
	result_sanitise(clean, sizeof clean, line, len);
	fprintf(stderr, "%s %s%s\n", dir, clean, len >= sizeof clean ? "..." : "");
}
