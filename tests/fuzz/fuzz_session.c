/* fuzz_session.c - a whole smtp_session against a fuzzed server.
 *
 * Modelled on curl-fuzzer: the input is everything the server says.  It is
 * written into one end of a socketpair up front and that end is shut down
 * for writing, so the client reads the script and then EOF, never a wait.
 * The client's own output (well under a KiB per session) fits the socket
 * buffer, so its writes never block either; it is read back afterwards and
 * checked.  The input is capped (MAX_SCRIPT) below the socket buffer.
 *
 * Byte 0 of the input picks the session shape:
 *   bit 0      partial_delivery
 *   bits 1-2   number of recipients (0 and 1: one, 2, 3)
 *   bit 3      AUTH (mechanism "auto", allow_plaintext_auth)
 *   bit 4      the message holds a NUL byte (env.binary: BDAT only)
 *   bit 5      null sender (MAIL FROM:<>)
 *   bit 6      the message holds 8-bit text (env.eightbit)
 *   bit 7      DSN parameters (NOTIFY, RET, ENVID)
 * Oracles:
 *  - -1 always comes with a filled result, 0 with EX_OK, and 0 means every
 *    recipient was accepted unless partial delivery is on;
 *  - the result's text is safe for a terminal (SPEC 7: server text is
 *    sanitised), as is the final reply;
 *  - everything the client wrote is CRLF lines (no bare CR or LF; the
 *    fixed messages have none either, so this holds for BDAT too);
 *  - the message body goes out only after a 354 or with CHUNKING, a NUL
 *    message never after DATA, and it is delivered only with BINARYMIME. */
#include "config.h"
#include "fuzz.h"
#include "smtp.h"
#include "conn.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SCRIPT (64 * 1024)
#define MARKER "X-Fuzz-Body-Marker"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static const char head_plain[] =
	"From: a@example.org\r\nTo: b@example.org\r\nSubject: fuzz\r\n\r\n"
	"body line\r\n.starts with a dot\r\n" MARKER "\r\n";
static const char head_nul[] =
	"From: a@example.org\r\nSubject: fuzz\r\n\r\n" MARKER "\r\nnul:\0:\r\n";
static const char head_8bit[] =
	"From: a@example.org\r\nSubject: fuzz\r\n\r\n" MARKER "\r\ncaf\xc3\xa9\r\n";

/* What reaches the terminal: result_sanitise's promise (fuzz.h). */
static int printable(const char *s)
{
	return fuzz_safe_text(s);
}

/* The server script holds `word` (any case). */
static int said(const uint8_t *p, size_t n, const char *word)
{
	size_t w = strlen(word);

	for (size_t i = 0; i + w <= n; i++)
		if (strncasecmp((const char *)p + i, word, w) == 0)
			return 1;
	return 0;
}

/* A line of the server script starts with "354". */
static int said_354(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 3 <= n; i++)
		if ((i == 0 || p[i - 1] == '\n') && memcmp(p + i, "354", 3) == 0)
			return 1;
	return 0;
}

static void check_wire(const char *w, size_t n, int allowed_body, int nul_msg)
{
	for (size_t i = 0; i < n; i++) {
		if (w[i] == '\r')
			CHECK(i + 1 < n && w[i + 1] == '\n');
		if (w[i] == '\n')
			CHECK(i > 0 && w[i - 1] == '\r');
	}
	if (memmem(w, n, MARKER, strlen(MARKER)))
		CHECK(allowed_body);
	if (nul_msg)   /* a NUL message never goes after DATA */
		CHECK(!memmem(w, n, "\r\n.\r\n", 5) && !memmem(w, n, "DATA\r\n", 6));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const rcpts[] = {
		"r1@example.org", "r2@example.net", "\"r 3\"@[192.0.2.1]",
	};
	static char wire[256 * 1024];
	struct auth_params ap = {
		.mech = "auto", .user = "fuzzuser", .secret = "fuzz secret",
		.host = "mx.example.org", .port = "25", .allow_plaintext = 1,
	};
	struct smtp_params p = {
		.account = "fuzz", .host = "mx.example.org", .port = "25",
		.ehlo_name = "client.example.org", .tls = SMTP_TLS_OFF,
		.timeout_s = 1,
	};
	struct smtp_envelope env = { .from = "a@example.org", .rcpt = rcpts };
	struct smtp_message msg = { .fd = -1 };
	struct smtp_outcome out;
	struct result r;
	struct conn *c;
	size_t wlen = 0, nwritten = 0;
	int sv[2], rc, nul_msg;

	if (size < 1 || size - 1 > MAX_SCRIPT)
		return 0;
	p.partial_delivery = data[0] & 1;
	env.nrcpt = (data[0] >> 1 & 3) ? (data[0] >> 1 & 3) : 1;
	p.auth = (data[0] & 8) ? &ap : NULL;
	nul_msg = (data[0] & 16) != 0;
	env.binary = nul_msg;
	env.eightbit = !nul_msg && (data[0] & 64);
	if (nul_msg) {
		msg.head = head_nul;
		msg.headlen = sizeof head_nul - 1;
	} else if (env.eightbit) {
		msg.head = head_8bit;
		msg.headlen = sizeof head_8bit - 1;
	} else {
		msg.head = head_plain;
		msg.headlen = sizeof head_plain - 1;
	}
	if (data[0] & 32)
		env.from = "";
	if (data[0] & 128) {
		env.dsn_notify = "FAILURE,DELAY";
		env.dsn_ret = "HDRS";
		env.dsn_envid = "id+1=x y";
	}
	env.size = msg.headlen;
	data++;
	size--;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	while (nwritten < size) {
		ssize_t n = send(sv[1], data + nwritten, size - nwritten,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		CHECK(n > 0);   /* MAX_SCRIPT fits the socket buffer */
		nwritten += (size_t)n;
	}
	CHECK(shutdown(sv[1], SHUT_WR) == 0);

	c = conn_from_fd(sv[0]);
	CHECK(c);
	memset(&out, 0, sizeof out);
	result_clear(&r);
	rc = smtp_session(c, &p, &env, &msg, &out, &r);
	conn_close(c);   /* also closes sv[0]: the reads below end at EOF */

	for (;;) {
		ssize_t n = recv(sv[1], wire + wlen, sizeof wire - wlen, MSG_DONTWAIT);
		if (n <= 0)
			break;
		wlen += (size_t)n;
	}
	close(sv[1]);

	if (rc == 0) {
		CHECK(r.exitcode == EX_OK);
		CHECK(out.accepted >= 1 && out.accepted <= env.nrcpt);
		CHECK(p.partial_delivery || out.accepted == env.nrcpt);
		CHECK(!nul_msg || (said(data, size, "BINARYMIME") &&
				   said(data, size, "CHUNKING")));
		CHECK(printable(out.final_reply));
	} else {
		/* a reason, or the reply code (a bare "554" has no text) */
		CHECK(rc == -1 && r.exitcode != EX_OK && (r.text[0] || r.code));
	}
	CHECK(printable(r.text));
	check_wire(wire, wlen, said_354(data, size) || said(data, size, "CHUNKING"),
		   nul_msg);
	return 0;
}
