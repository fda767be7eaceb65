/* smtp_hello.c - the start of a session: the greeting, EHLO (LHLO for LMTP,
 * HELO when EHLO is refused), STARTTLS and the TLS handshake.  Each is one
 * command and its reply; nothing else is in flight. */
#include "config.h"
#include "session.h"
#include "log.h"
#include "tls.h"

#include <stdio.h>
#include <string.h>

int ss_greeting(struct smtp_session *s)
{
	struct sio *io = &s->e.io;

	if (sio_read_reply(io, PHASE_GREETING, T_GREETING) < 0)
		return -1;
	return sio_check(io, PHASE_GREETING, 2);
}

/* A failed handshake leaves the stream in an unknown state, so nothing more
 * is sent on it (not even QUIT). */
int ss_tls_handshake(struct smtp_session *s, enum smtp_phase phase)
{
	const struct tls_info *ti = s->p->tls_info;
	struct sio *io = &s->e.io;

	if (tls_start(io->c, s->p->tlsp, sio_tmo(io, T_EHLO), s->p->tls_info, io->r) == 0) {
		log_info("TLS: %s", ti ? ti->desc : "");
		if (ti && ti->pin_matched)
			log_info("TLS: tls_fingerprint matched the server's %s",
				 ti->pin_matched);
		return 0;
	}
	return sio_failed(io, phase);
}

static int ask(struct smtp_session *s, enum smtp_phase phase, const char *verb)
{
	char line[2048];
	int n = snprintf(line, sizeof line, "%s %s", verb, s->p->ehlo_name);

	if (n < 0 || (size_t)n >= sizeof line)
		return result_fail(s->e.io.r, EX_USAGE, "SMTP command too long");
	return eng_ask(&s->e, phase, line, (size_t)n, NULL);
}

/* EHLO; HELO only when EHLO is refused with 5xx (RFC 5321 4.1.4, 3.2). */
int ss_ehlo(struct smtp_session *s)
{
	struct sio *io = &s->e.io;

	memset(&s->caps, 0, sizeof s->caps);
	/* RFC 2033 4.1: LMTP has LHLO in place of EHLO, and no HELO */
	if (sio_in_step(io, PHASE_EHLO) < 0 ||
	    ask(s, PHASE_EHLO, s->p->lmtp ? "LHLO" : "EHLO") < 0)
		return -1;
	if (io->rp.code / 100 == 2) {
		caps_parse(&s->caps, &io->rp);
		return 0;
	}
	if (io->rp.code / 100 != 5 || s->p->lmtp)
		return sio_check(io, PHASE_EHLO, 2);
	log_info("EHLO refused, trying HELO");
	if (ask(s, PHASE_HELO, "HELO") < 0)
		return -1;
	return sio_check(io, PHASE_HELO, 2);
}

/* RFC 3207.  Nothing but EHLO and STARTTLS ever goes out in clear: when the
 * server does not offer it we stop (STARTTLS stripping).  Bytes that arrive
 * with the 220 were sent before the handshake by someone who is not the TLS
 * peer (CVE-2011-0411 class): refuse them.  Then forget every capability and
 * ask again (RFC 3207 4.2). */
int ss_starttls(struct smtp_session *s)
{
	struct sio *io = &s->e.io;

	if (!(s->caps.flags & CAP_STARTTLS)) {
		io->r->phase = PHASE_STARTTLS;
		return result_fail(io->r, EX_UNAVAILABLE,
				   "the server does not offer STARTTLS; refusing to "
				   "continue without TLS (tls = starttls)");
	}
	if (eng_ask(&s->e, PHASE_STARTTLS, "STARTTLS", 8, NULL) < 0 ||
	    sio_check(io, PHASE_STARTTLS, 2) < 0)
		return -1;
	if (conn_unread(io->c) > 0) {
		sio_failed(io, PHASE_STARTTLS);
		return result_fail(io->r, EX_PROTOCOL,
				   "the server sent %zu bytes after its STARTTLS reply, "
				   "before the TLS handshake (response injection); aborting",
				   conn_unread(io->c));
	}
	if (ss_tls_handshake(s, PHASE_TLS) < 0)
		return -1;
	return ss_ehlo(s);
}
