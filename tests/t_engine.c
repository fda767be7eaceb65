/* t_engine.c - the SMTP command pipeline (engine.c) over a socketpair: every
 * reply comes back with the record of the command it answers, in order,
 * however many are in flight; what cannot go out is never recorded; a
 * malformed reply, a closed connection and a read with nothing owed fail
 * with the right status and phase. */
#include "config.h"
#include "tap.h"
#include "engine.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N 200   /* more than the ring's first size (64): it grows in flight */

struct pair {
	struct engine e;
	struct result r;
	int peer;
};

static void open_pair(struct pair *p)
{
	int sv[2];

	memset(p, 0, sizeof *p);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		exit(99);
	}
	p->e.io.c = conn_from_fd(sv[0]);
	p->e.io.r = &p->r;
	p->e.io.timeout_cap = 2;   /* every wait bounded */
	p->peer = sv[1];
}

static void close_pair(struct pair *p)
{
	conn_close(p->e.io.c);
	eng_free(&p->e);
	close(p->peer);
}

static void peer_says(struct pair *p, const char *s)
{
	size_t n = strlen(s);

	if (write(p->peer, s, n) != (ssize_t)n) {
		perror("write");
		exit(99);
	}
}

/* What the client wrote, read from the peer's end (bounded). */
static size_t peer_reads(struct pair *p, char *buf, size_t cap)
{
	size_t got = 0;
	ssize_t n;

	while (got < cap - 1 && (n = recv(p->peer, buf + got, cap - 1 - got,
					  MSG_DONTWAIT)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	return got;
}

static void test_many_in_flight(void)
{
	static char wire[64 * 1024], replies[16 * 1024];
	struct pair p;
	struct pending rec;
	size_t off = 0;
	int in_order = 1, sent_ok = 1;

	open_pair(&p);
	for (unsigned i = 0; i < N; i++) {
		struct pending r = { i % 2 ? PHASE_RCPT : PHASE_MAIL, i, i * 7 };
		sent_ok &= eng_sendf(&p.e, r, "RCPT TO:<u%u@example.org>", i) == 0;
		off += (size_t)snprintf(replies + off, sizeof replies - off,
					i % 10 ? "250 ok %u\r\n" : "250-ok\r\n250 ok %u\r\n", i);
	}
	ok(sent_ok, "%d commands queued", N);
	is_int(eng_owed(&p.e), N, "all %d owed", N);
	peer_says(&p, replies);
	for (unsigned i = 0; i < N; i++) {
		char want[32];

		snprintf(want, sizeof want, "ok %u", i);
		if (eng_read(&p.e, &rec) < 0 || rec.item != i || rec.arg != i * 7 ||
		    rec.phase != (i % 2 ? PHASE_RCPT : PHASE_MAIL) || p.e.io.rp.code != 250 ||
		    !strstr(p.e.io.rp.text, want)) {
			in_order = 0;
			printf("# reply %u: item %u arg %u code %d text %s\n", i, rec.item,
			       rec.arg, p.e.io.rp.code, p.e.io.rp.text);
			break;
		}
	}
	ok(in_order, "each reply (multi-line ones too) paired with its own record");
	is_int(eng_owed(&p.e), 0, "nothing owed after the last reply");
	peer_reads(&p, wire, sizeof wire);
	ok(strncmp(wire, "RCPT TO:<u0@example.org>\r\nRCPT TO:<u1@example.org>\r\n", 52) == 0 &&
	   strstr(wire, "RCPT TO:<u199@example.org>\r\n") != NULL,
	   "the commands went out in order");
	result_clear(&p.r);
	ok(eng_read(&p.e, &rec) < 0 && p.r.exitcode == EX_SOFTWARE,
	   "a read with nothing owed is an internal error, not a wait");
	close_pair(&p);
}

static void test_gate(void)
{
	struct pair p;
	struct pending r = { PHASE_MAIL, 0, 0 };

	open_pair(&p);
	ok(eng_send(&p.e, r, "MAIL FROM:<a@b>\r\nRSET", 22, NULL) < 0 &&
	   p.r.exitcode == EX_USAGE, "a line with CR LF is refused");
	ok(eng_send(&p.e, r, "MAIL\0x", 6, NULL) < 0, "a line with NUL is refused");
	is_int(eng_owed(&p.e), 0, "and nothing was recorded for them");
	close_pair(&p);
}

static void test_failures(void)
{
	struct pair p;
	struct pending rec;
	struct pending r = { PHASE_RCPT, 3, 1 };

	open_pair(&p);
	eng_send(&p.e, r, "RCPT TO:<a@b>", 13, NULL);
	peer_says(&p, "25O oops\r\n");
	result_clear(&p.r);
	ok(eng_read(&p.e, &rec) < 0 && p.r.exitcode == EX_PROTOCOL && p.e.io.dead,
	   "a malformed reply: EX_PROTOCOL, the connection is dead");
	is_int(p.r.phase, PHASE_RCPT, "... in the phase of the command it answered");
	is_int(rec.item, 3, "... and the record says which");
	close_pair(&p);

	open_pair(&p);
	r.phase = PHASE_EOD;
	eng_send(&p.e, r, "BDAT 0 LAST", 11, NULL);
	shutdown(p.peer, SHUT_WR);
	result_clear(&p.r);
	ok(eng_read(&p.e, &rec) < 0 && p.r.exitcode == EX_TEMPFAIL,
	   "the relay closes: EX_TEMPFAIL");
	is_int(p.r.phase, PHASE_EOD, "... in the end-of-data phase");
	eng_forget(&p.e);
	is_int(eng_owed(&p.e), 0, "forgotten: nothing owed");
	close_pair(&p);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_many_in_flight();
	test_gate();
	test_failures();
	return tap_done();
}
