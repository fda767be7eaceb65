#!/usr/bin/env python3
"""pushmail against a real Exim and a real Dovecot submission service (TAP).

Starts on 127.0.0.1 (tests/serverslib.py, certificates from TestCerts):
  * Exim 4 (Debian's exim4-daemon-light, fetched with `apt-get download`
    into PUSHMAIL_DEB_CACHE, default /var/cache/pushmail-test, once, and
    unpacked into the temp dir): a plain port (no STARTTLS, no AUTH, relay
    from 127.0.0.1), a STARTTLS port and an implicit-TLS port (AUTH PLAIN
    after TLS, RCPT only when authenticated); delivers to a Maildir;
  * Dovecot submission (dovecot-submissiond): a STARTTLS and an implicit-TLS
    listener, AUTH PLAIN, relaying to smtp-sink, which dumps every message.

For each server and port:
  1. one message, queue = never, -v: exit 0, delivered exactly once with its
     body (Exim: its Maildir and mainlog "Completed"; Dovecot: smtp-sink's
     dump), and on the AUTH ports AUTH PLAIN went out in the same flight as
     MAIL (no reply read between them in the -v transcript);
  2. (AUTH ports) a wrong password: exit 77, the 535 on stderr, nothing
     delivered; what the server answered to the MAIL that followed the
     refused AUTH is printed as a diagnostic, and the warning "refused AUTH
     yet accepted" must appear exactly when the server took the message;
     Exim also gets a fourth port, implicit TLS with AUTH PLAIN, whose
     RCPT ACL takes 127.0.0.1 without AUTH: there it takes the message
     behind the refused AUTH, and pushmail must still exit 77 with the
     warning;
  3. (STARTTLS port) ten messages queued (queue = always against a closed
     port, own PUSHMAIL_QUEUE_DIR, QUEUE/state removed afterwards), then
     `pushmail -q`: exit 0, all ten delivered exactly once, over one
     connection (the server's log), queue empty, and no server process
     crashed.  Dovecot 2.3.19 submission dies on an assertion
     (pending_rcpt_cmds == 0) when MAIL/RCPT of the next transaction arrive
     before it answered the previous end of data (BDAT LAST or DATA's dot
     alike; a lone MAIL there gets "503 5.5.0 MAIL already given"), so
     pushmail sends one transaction at a time to a relay that offers BURL.
No -v transcript may contain the password.  At the end no message of a
refused case may have arrived.

Skips (exit 0) when not root or a needed piece is missing (certtool,
dovecot, dovecot-submissiond, smtp-sink, dpkg-deb, unshare, the Exim
packages or a library they need), unless CI=true, where each is a failure.
PUSHMAIL_TEST_KEEP=1 keeps the temp directory (kept too when a test fails).
"""

import base64
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__)))
import postfixlib  # noqa: E402
import serverslib  # noqa: E402
import taplib as t  # noqa: E402

DOMAIN = "test.example"
RCPT = "user@" + DOMAIN
SENDER = "sender@" + DOMAIN
SASL_USER = "sasluser"
PASSWORD = "Servers-Interop.pw3Kd8"     # no ':' (passwd-file), no ' ;' (inih)
WRONG_PASSWORD = "Wrong-Secret.z8Tq1"
DEB_CACHE = os.environ.get("PUSHMAIL_DEB_CACHE", "/var/cache/pushmail-test")
RUN_TIMEOUT = 60            # one pushmail run
DELIVERY_TIMEOUT = 20       # a message reaching the Maildir / smtp-sink
LOG_TIMEOUT = 10            # a log line showing up
SETTLE = 0.5                # after the expected count: nothing more may come
N_QUEUED = 10

TLS = {"plain": "off", "smtps": "implicit", "submission": "starttls",
       "smtps-open": "implicit"}
LABEL = {"plain": "plain port, no AUTH", "smtps": "465-style implicit TLS + AUTH PLAIN",
         "submission": "587-style STARTTLS + AUTH PLAIN",
         "smtps-open": "implicit TLS + AUTH PLAIN, open to 127.0.0.1"}


def bail(reason):
    lines = str(reason).splitlines() or [""]
    print("Bail out! " + lines[0], flush=True)
    t.diag(*lines[1:])
    sys.exit(1)


def missing(what):
    """A needed piece is missing: skip, or fail under CI=true."""
    if os.environ.get("CI") == "true":
        bail("%s (required in CI)" % what)
    t.skip_all(what)


def secret_forms(password):
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    return [password, b64(password), b64("\0%s\0%s" % (SASL_USER, password))]


wait_until = serverslib.wait_until


class Server:
    """What the cases need of a server: its name, ports, the messages it
    delivered (bytes, with the client's body), connections to a port,
    whether it accepted a message (by marker; known by the time it has
    answered the end of data), its panic/assertion lines, a log tail."""

    def __init__(self, name, modes, ports, messages, connections, accepted, panics,
                 logtail):
        self.name, self.modes, self.ports = name, modes, ports
        self.messages, self.connections, self.logtail = messages, connections, logtail
        self.accepted, self.panics = accepted, panics


class Harness:
    def __init__(self, pushmail, certs, tmp):
        self.pushmail, self.certs, self.tmp = pushmail, certs, tmp
        self.env = t.base_env()
        self.n = 0
        self.refused_markers = []     # messages that must never arrive
        self.behaviour = {}           # (server, mode) -> replies after a refused AUTH

    def cfg(self, port, mode, account="interop", **keys):
        settings = {"host": "127.0.0.1", "port": str(port), "tls": TLS[mode],
                    "tls_trust_file": self.certs.ca,
                    "auth": "off" if mode == "plain" else "plain",
                    "user": None if mode == "plain" else SASL_USER,
                    "password": None if mode == "plain" else PASSWORD,
                    "from": SENDER, "timeout": "20", "queue": "never",
                    "domain": "client.example"}
        settings.update(keys)
        text = "[%s]\n" % account + "".join("%s = %s\n" % (k, v) for k, v in settings.items()
                                            if v is not None)
        return t.write_config(text=text)

    def message(self, name):
        self.n += 1
        marker = "pushmail-servers-interop-%d" % self.n
        msg = ("From: Sender <%s>\nTo: %s\nSubject: %s (%s)\n"
               "Date: Mon, 30 Nov 2026 00:00:00 +0000\nMessage-ID: <%s@test.example>\n"
               "\n%s\nbody line two\n" % (SENDER, RCPT, marker, name, marker, marker))
        return marker, msg.encode()

    def run(self, cfg, args, msg=b"", env=None):
        return t.run([self.pushmail, "-C", cfg] + list(args), stdin=msg,
                     env=env or self.env, timeout=RUN_TIMEOUT)

    def no_secret(self, name, r, password=PASSWORD):
        text = r.err.decode("utf-8", "replace") + r.out.decode("utf-8", "replace")
        leaked = [s for s in secret_forms(password) if s in text]
        t.ok(not leaked, "%s: -v transcript does not contain the password" % name,
             "found: %r" % leaked)


def copies(srv, marker):
    """The delivered messages that carry `marker` in their body."""
    pat = re.compile(rb"^" + re.escape(marker.encode()) + rb"\r?$", re.M)
    return [m for m in srv.messages() if pat.search(m)]


def wait_copies(srv, marker, n=1):
    """Wait (bounded) for n copies of `marker`, then a moment more, so a
    duplicate shows; the copies found."""
    wait_until(lambda: len(copies(srv, marker)) >= n, DELIVERY_TIMEOUT)
    time.sleep(SETTLE)
    return copies(srv, marker)


def one_flight(err):
    """(True, "") when the -v transcript has `-> AUTH PLAIN [redacted]`
    followed by `-> MAIL` with no `<-` line between them; else (False, why)."""
    lines = [line.strip() for line in err.splitlines()]
    at = [i for i, line in enumerate(lines) if re.search(r"-> AUTH PLAIN \[redacted\]", line)]
    if len(at) != 1:
        return False, "%d `-> AUTH PLAIN [redacted]` lines" % len(at)
    for line in lines[at[0] + 1:]:
        if "<-" in line.split(" ", 3)[:3] or line.startswith("<-") or " <- " in line:
            return False, "a reply was read before MAIL went out: %r" % line
        if re.search(r"-> MAIL FROM:", line, re.I):
            return True, ""
    return False, "no `-> MAIL` after AUTH"


def replies_after_535(err):
    """The reply lines pushmail read after the 535 (what the server did
    with the transaction pipelined behind the refused AUTH)."""
    lines = err.splitlines()
    at = next((i for i, line in enumerate(lines) if "<- 535" in line), None)
    if at is None:
        return []
    return [line.strip() for line in lines[at + 1:] if "<- " in line][:6]


# --- cases ------------------------------------------------------------------------

def case_single(h, srv, mode, extra=None):
    name = "%s %s: one message" % (srv.name, LABEL[mode])
    marker, msg = h.message(name)
    r = h.run(h.cfg(srv.ports[mode], mode), ["-v", RCPT], msg)
    t.is_eq(r.rc, 0, "%s: exit 0" % name, *r.describe())
    got = wait_copies(srv, marker)
    t.is_eq(len(got), 1, "%s: delivered exactly once" % name, *r.describe())
    t.ok(len(got) == 1 and b"\nbody line two" in got[0].replace(b"\r\n", b"\n")
         and b"Subject: %s" % marker.encode() in got[0],
         "%s: headers and body arrived" % name, t.show(got[0] if got else b"", 1200))
    err = r.err.decode("utf-8", "replace")
    if mode != "plain":
        flight, why = one_flight(err)
        t.ok(flight, "%s: AUTH PLAIN went in the same flight as MAIL" % name, why,
             *r.describe())
        h.no_secret(name, r)
    else:
        t.ok("-> AUTH" not in err, "%s: no AUTH sent" % name, *r.describe())
    if extra:
        extra(name, marker, mode)


def case_wrong_password(h, srv, mode):
    name = "%s %s: wrong password" % (srv.name, LABEL[mode])
    marker, msg = h.message(name)
    h.refused_markers.append(marker)
    r = h.run(h.cfg(srv.ports[mode], mode, password=WRONG_PASSWORD), ["-v", RCPT], msg)
    err = r.err.decode("utf-8", "replace")
    t.is_eq(r.rc, 77, "%s: exit 77" % name, *r.describe())
    t.ok("535" in err, "%s: the 535 on stderr" % name, *r.describe())
    h.no_secret(name, r, WRONG_PASSWORD)
    after = replies_after_535(err)
    h.behaviour[(srv.name, mode)] = after
    t.diag("%s: after the refused AUTH the server answered: %s"
           % (name, " | ".join(after) or "(nothing)"))
    # Both servers have decided by the time they answered the end of data
    # (pushmail has exited): no wait here; a late arrival is caught at the
    # end, after later messages got through (run_cases).
    took = srv.accepted(marker)
    warned = "refused AUTH yet accepted" in err
    # pushmail's rule (RFC 4954 4): never 0; the warning exactly when the
    # server took the message sent behind the refused AUTH
    t.is_eq(warned, took, "%s: warning \"refused AUTH yet accepted\" exactly when "
            "the server took the message" % name, *r.describe())
    t.ok(not took, "%s: nothing accepted (%s refuses unauthenticated mail there)"
         % (name, srv.name), *r.describe())


def case_open_relay(h, srv, exim, mode="smtps-open"):
    """Exim open to 127.0.0.1 on this port: after the 535 it takes MAIL,
    RCPT and the data from the now unauthenticated client."""
    name = "%s %s: wrong password" % (srv.name, LABEL[mode])
    marker, msg = h.message(name)
    r = h.run(h.cfg(srv.ports[mode], mode, password=WRONG_PASSWORD), ["-v", RCPT], msg)
    err = r.err.decode("utf-8", "replace")
    t.is_eq(r.rc, 77, "%s: exit 77, never 0" % name, *r.describe())
    t.ok("535" in err and "refused AUTH yet accepted" in err,
         "%s: the 535 and the warning \"refused AUTH yet accepted\" on stderr" % name,
         *r.describe())
    h.no_secret(name, r, WRONG_PASSWORD)
    after = replies_after_535(err)
    h.behaviour[(srv.name, mode)] = after
    t.diag("%s: after the refused AUTH the server answered: %s"
           % (name, " | ".join(after) or "(nothing)"))
    # what Exim did (the case the warning is about): accepted it without
    # AUTH (P=esmtps, no A=) and delivered it
    got = wait_copies(srv, marker)
    line = re.search(r"^.* <= .* id=%s@test\.example\b.*$" % re.escape(marker),
                     serverslib.read(exim.mainlog), re.M)
    t.ok(len(got) == 1 and line and " P=esmtps " in line.group(0) and " A=" not in
         line.group(0), "%s: Exim took it unauthenticated and delivered it once" % name,
         line.group(0) if line else "no <= line", "%d copies" % len(got))


def queue_envs(qdir, sub):
    d = os.path.join(qdir, sub)
    return sorted(n for n in os.listdir(d) if n.endswith(".env")) if os.path.isdir(d) else []


def case_flush(h, srv, mode="submission"):
    name = "%s %s: pushmail -q with %d queued" % (srv.name, LABEL[mode], N_QUEUED)
    qdir = tempfile.mkdtemp(prefix="queue-", dir=h.tmp)
    env = dict(h.env, PUSHMAIL_QUEUE_DIR=qdir)
    down = h.cfg(t.closed_port(), mode, queue="always")
    markers = []
    for i in range(N_QUEUED):
        marker, msg = h.message("%s #%d" % (name, i))
        markers.append(marker)
        r = h.run(down, [RCPT], msg, env=env)
        if r.rc != 0:
            t.diag("queueing #%d:" % i, *r.describe())
    t.is_eq(len(queue_envs(qdir, "new")), N_QUEUED, "%s: %d messages queued"
            % (name, N_QUEUED))
    # the closed port's failure is remembered per relay; -q must not wait
    shutil.rmtree(os.path.join(qdir, "state"), ignore_errors=True)
    port = srv.ports[mode]
    before, panics = srv.connections(port), len(srv.panics())
    r = h.run(h.cfg(port, mode), ["-v", "-q"], env=env)
    crashed = srv.panics()[panics:]
    # Dovecot 2.3.19's submission dies on an assertion when a MAIL comes
    # before its reply to the previous end of data; pushmail sends one
    # transaction at a time to a relay that offers BURL (Dovecot), so
    # nothing may crash
    t.is_eq(crashed, [], "%s: the server did not crash" % name)
    t.is_eq(r.rc, 0, "%s: exit 0" % name, *r.describe())
    h.no_secret(name, r)
    wait_until(lambda: all(copies(srv, m) for m in markers), DELIVERY_TIMEOUT)
    time.sleep(SETTLE)
    counts = [len(copies(srv, m)) for m in markers]
    t.is_eq(counts, [1] * N_QUEUED, "%s: each delivered exactly once" % name, *r.describe())
    wait_until(lambda: srv.connections(port) > before, LOG_TIMEOUT)
    time.sleep(SETTLE)
    t.is_eq(srv.connections(port) - before, 1, "%s: over one connection (server log)"
            % name, srv.logtail())
    t.is_eq((queue_envs(qdir, "new"), queue_envs(qdir, "failed")), ([], []),
            "%s: queue empty" % name)


def exim_completed(exim):
    """Case 1's extra check for Exim: its mainlog says the message (by
    Message-ID) was received, authenticated on the AUTH ports, and Completed."""
    def check(name, marker, mode):
        def find():
            log = serverslib.read(exim.mainlog)
            m = re.search(r"^\S+ \S+ (\S+) <= .* id=%s@test\.example\b.*$"
                          % re.escape(marker), log, re.M)
            return m and re.search(r"^\S+ \S+ %s Completed" % re.escape(m.group(1)), log,
                                   re.M) and m
        m = wait_until(find, LOG_TIMEOUT)
        t.ok(m, "%s: Exim's mainlog: received and Completed" % name, exim.problems())
        if m and mode != "plain":
            t.ok(" A=plain_server:%s " % SASL_USER in m.group(0),
                 "%s: Exim logged the AUTH PLAIN login" % name, m.group(0))
    return check


# --- servers ----------------------------------------------------------------------

def start_servers(stack, tmp, certs):
    exim = serverslib.start_checked(lambda: serverslib.Exim(
        tmp, certs, SASL_USER, PASSWORD, DEB_CACHE, maildir=True, note=t.diag,
        open_smtps=True), "exim", note=t.diag)
    stack.callback(exim.stop)
    sink = serverslib.start_checked(lambda: serverslib.Sink(tmp), "smtp-sink", note=t.diag)
    stack.callback(sink.stop)
    dov = serverslib.start_checked(lambda: serverslib.DovecotSubmission(
        tmp, certs, sink, SASL_USER, PASSWORD), "dovecot", note=t.diag)
    stack.callback(dov.stop)
    t.diag("Exim %s (%s): plain :%d, submission :%d, smtps :%d, smtps-open :%d; Dovecot %s: "
           "submission :%d, submissions :%d, relay smtp-sink :%d; files in %s"
           % (exim.version, exim.deb, exim.ports["plain"], exim.ports["submission"],
              exim.ports["smtps"], exim.ports["smtps-open"], dov.version, dov.ports["submission"], dov.ports["smtps"],
              sink.port, tmp))
    exim_srv = Server("Exim", ("plain", "smtps", "submission"), exim.ports,
                      exim.maildir_messages, exim.connections,
                      lambda marker: exim.received(marker + "@test.example"), exim.panics,
                      exim.problems)
    dov_srv = Server("Dovecot", ("smtps", "submission"), dov.ports, sink.messages,
                     dov.sessions, None, dov.panics, dov.problems)
    # Dovecot relays before it answers the end of data: what it accepted is
    # at smtp-sink by then
    dov_srv.accepted = lambda marker: bool(copies(dov_srv, marker))
    return exim, dov, exim_srv, dov_srv


def prerequisites():
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            bail("the Exim/Dovecot interop test must run as root in CI")
        t.skip_all("starting Exim and Dovecot needs root")
    need = [("certtool (gnutls-bin)", postfixlib.find_certtool()),
            ("dovecot (dovecot-core)", postfixlib.find_dovecot()),
            ("dovecot-submissiond", os.access(serverslib.DOVECOT_SUBMISSION, os.X_OK)),
            ("smtp-sink (postfix)", postfixlib.find_smtp_sink()),
            ("apt-get", shutil.which("apt-get")), ("dpkg-deb", shutil.which("dpkg-deb")),
            ("ldd", shutil.which("ldd")), ("unshare (util-linux)", shutil.which("unshare"))]
    for what, found in need:
        if not found:
            missing("%s not installed" % what)
    try:
        serverslib.exim_debs(DEB_CACHE, note=t.diag)
    except serverslib.SetupError as e:
        missing("the Exim packages: %s" % e)
    pushmail = os.path.abspath(t.PUSHMAIL)
    if not os.access(pushmail, os.X_OK):
        bail("no pushmail binary at %s (set PUSHMAIL)" % pushmail)
    return pushmail


def run_cases(h, exim_srv, dov_srv, exim):
    for srv in (exim_srv, dov_srv):
        cases = [(case_single, (srv, m, exim_completed(exim) if srv is exim_srv else None))
                 for m in srv.modes]
        cases += [(case_wrong_password, (srv, m)) for m in srv.modes if m != "plain"]
        if srv is exim_srv:
            cases += [(case_open_relay, (srv, exim))]
        cases += [(case_flush, (srv,))]
        for case, args in cases:
            try:
                case(h, *args)
            except Exception:
                t.ok(False, "%s %s raised" % (case.__name__, srv.name),
                     traceback.format_exc())
    late = [m for srv in (exim_srv, dov_srv) for m in h.refused_markers if copies(srv, m)]
    t.is_eq(late, [], "no message of a refused case arrived later")
    for (name, mode), after in sorted(h.behaviour.items()):
        t.diag("after a refused pipelined AUTH, %s %s answered: %s"
               % (name, mode, " | ".join(after) or "(nothing)"))


def main():
    pushmail = prerequisites()
    # Not taplib's 0700 tmpdir: exim (mail), dovecot and nobody must reach it.
    tmp = tempfile.mkdtemp(prefix="pushmail-servers-")
    os.chmod(tmp, 0o755)
    keep = bool(os.environ.get("PUSHMAIL_TEST_KEEP"))
    failed_before = t._failed
    exim = dov = None
    try:
        with contextlib.ExitStack() as stack:
            try:
                certs = postfixlib.TestCerts(os.path.join(tmp, "certs"))
                exim, dov, exim_srv, dov_srv = start_servers(stack, tmp, certs)
            except serverslib.MissingPiece as e:
                stack.close()
                shutil.rmtree(tmp, ignore_errors=True)
                missing(str(e))
            except (serverslib.SetupError, postfixlib.PostfixError, OSError,
                    TimeoutError) as e:
                keep = True
                bail("cannot start Exim/Dovecot (kept %s): %s" % (tmp, e))
            h = Harness(pushmail, certs, tmp)
            run_cases(h, exim_srv, dov_srv, exim)
            failed = t._failed > failed_before
            if failed:
                t.diag("--- Exim mainlog ---", serverslib.tail(exim.mainlog, 40),
                       "--- Dovecot log ---", serverslib.tail(dov.log, 40))
    finally:
        failed = t._failed > failed_before
        if failed or keep:
            t.diag("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
