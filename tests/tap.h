/* tap.h - a minimal TAP producer for the unit tests (header-only).
 *
 *   ok(cond, "name %d", i);   is_int(got, want, "name");   is_str(got, want, "name");
 *   is_mem(got, gotlen, want, wantlen, "name");   return tap_done();
 *
 * The plan is printed at the end ("1..N"), so tables can grow freely.  A
 * failing check prints what was expected and what came out as TAP comments.
 */
#ifndef PUSHMAIL_TAP_H
#define PUSHMAIL_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3)))
static int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	tap_n++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		tap_failed++;
	return cond;
}

__attribute__((unused))
static void tap_diag_mem(const char *label, const char *p, size_t n)
{
	printf("#   %s (%zu bytes): \"", label, n);
	for (size_t i = 0; i < n && i < 400; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '\r') printf("\\r");
		else if (ch == '\n') printf("\\n");
		else if (ch == '"' || ch == '\\') printf("\\%c", ch);
		else if (ch < 32 || ch >= 127) printf("\\x%02x", ch);
		else putchar(ch);
	}
	printf("%s\"\n", n > 400 ? "..." : "");
}

#define is_int(got, want, ...) do { long long g_ = (got), w_ = (want); \
	if (!ok(g_ == w_, __VA_ARGS__)) printf("#   got %lld, want %lld\n", g_, w_); } while (0)

#define is_str(got, want, ...) do { const char *g_ = (got), *w_ = (want); \
	int eq_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
	if (!ok(eq_, __VA_ARGS__)) printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); } while (0)

#define is_mem(got, gotlen, want, wantlen, ...) do { \
	const char *g_ = (got), *w_ = (want); size_t gl_ = (gotlen), wl_ = (wantlen); \
	if (!ok(gl_ == wl_ && memcmp(g_, w_, gl_) == 0, __VA_ARGS__)) { \
		tap_diag_mem("got", g_, gl_); tap_diag_mem("want", w_, wl_); } } while (0)

__attribute__((unused))
static int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
