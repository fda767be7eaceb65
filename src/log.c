/* log.c - stderr, transcripts and the mail log (see log.h). */
#include "config.h"
#include "log.h"
#include "cfg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int log_verbose;
static FILE *transcript;
static const char *tag = "pushmail";

__attribute__((format(printf, 1, 0)))
static void vlog(const char *fmt, va_list ap)
{
	char buf[2048], clean[4 * sizeof buf];
	int n = vsnprintf(buf, sizeof buf, fmt, ap);

	/* Whatever went into the message (addresses, server text, file names),
	 * no control character reaches the terminal; UTF-8 stays readable. */
	if (n < 0)
		n = 0;
	result_sanitise(clean, sizeof clean, buf,
			(size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
	fprintf(stderr, "pushmail: %s\n", clean);
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

	if (!log_verbose && !transcript)
		return;
	result_sanitise(clean, sizeof clean, line, len);
	if (log_verbose)
		fprintf(stderr, "%s %s%s\n", dir, clean, len >= sizeof clean ? "..." : "");
	if (transcript)
		fprintf(transcript, "%s %s%s\n", dir, clean, len >= sizeof clean ? "..." : "");
}

int log_transcript_open(const char *path, struct result *r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0 || !(transcript = fdopen(fd, "a"))) {
		if (fd >= 0)
			close(fd);
		return result_fail(r, EX_CANTCREAT, "transcript file %s: %s", path,
				   strerror(errno));
	}
	return 0;
}

void log_transcript_close(void)
{
	if (transcript)
		fclose(transcript);
	transcript = NULL;
}

void log_set_tag(const char *t)
{
	if (t && *t)
		tag = t;
}

static void format_record(const struct log_record *lr, char *out, size_t cap)
{
	char detail[600];

	result_sanitise(detail, sizeof detail, lr->detail ? lr->detail : "",
			lr->detail ? strlen(lr->detail) : 0);
	snprintf(out, cap, "account=%s host=%s tls=%s tls_version=%s cipher=%s auth=%s "
		 "from=<%s> to=<%s>%s%zu size=%llu status=%s exit=%d%s%s relay=\"%s\"",
		 lr->account ? lr->account : "-", lr->host ? lr->host : "-",
		 lr->tls ? lr->tls : "-", lr->tls_version && *lr->tls_version ?
		 lr->tls_version : "-", lr->cipher && *lr->cipher ? lr->cipher : "-",
		 lr->auth && *lr->auth ? lr->auth : "-",
		 lr->from ? lr->from : "", lr->rcpt ? lr->rcpt : "",
		 " nrcpt=", lr->nrcpt, lr->size, lr->status, lr->exitcode,
		 lr->qid ? " queue_id=" : "", lr->qid ? lr->qid : "", detail);
}

/* A mail log that cannot be written must not stop the mail: say so once. */
static void to_file(const char *path, const char *line)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	char stamp[40], buf[2048];
	struct tm tm;
	time_t now = time(NULL);
	int n;

	if (fd < 0) {
		log_err("warning: cannot write the log %s: %s", path, strerror(errno));
		return;
	}
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S%z", localtime_r(&now, &tm));
	n = snprintf(buf, sizeof buf, "%s %s[%d]: %s\n", stamp, tag, (int)getpid(), line);
	if (n > 0 && write(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1) < 0)
		log_err("warning: cannot write the log %s: %s", path, strerror(errno));
	close(fd);
}

static const struct {
	const char *name;
	int code;
} facilities[] = {
	{ "mail", LOG_MAIL }, { "user", LOG_USER }, { "daemon", LOG_DAEMON },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

int log_facility_code(const char *name)
{
	if (!name)
		return LOG_MAIL;
	for (size_t i = 0; i < sizeof facilities / sizeof facilities[0]; i++)
		if (strcmp(name, facilities[i].name) == 0)
			return facilities[i].code;
	return -1;
}

/* One destination of the log key: "syslog", or a file ("~/" is home; the
 * configuration expands only a value's first "~", not a later item's). */
static void log_to(const char *item, size_t n, const char *line, int facility,
		   int exitcode)
{
	char path[4096];
	const char *home = cfg_home_dir();

	if (n == 6 && strncmp(item, "syslog", 6) == 0) {
		openlog(tag, LOG_PID, facility);
		syslog(exitcode ? LOG_WARNING : LOG_INFO, "%s", line);
		closelog();
		return;
	}
	if (n >= 2 && item[0] == '~' && item[1] == '/' && home)
		snprintf(path, sizeof path, "%s%.*s", home, (int)n - 1, item + 1);
	else
		snprintf(path, sizeof path, "%.*s", (int)n, item);
	to_file(path, line);
}

void log_delivery(const char *where, const struct log_record *lr)
{
	char line[1600];
	int facility = log_facility_code(lr->facility);

	if (!where)
		return;
	format_record(lr, line, sizeof line);
	for (const char *p = where; *p;) {
		size_t n = strcspn(p, ","), s = 0, e = n;

		while (s < e && (p[s] == ' ' || p[s] == '\t'))
			s++;
		while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
			e--;
		if (e > s)
			log_to(p + s, e - s, line, facility < 0 ? LOG_MAIL : facility,
			       lr->exitcode);
		p += n + (p[n] == ',');
	}
}
