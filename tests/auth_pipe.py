#!/usr/bin/env python3
"""AUTH pipelined with the message (RFC 4954 section 4, issue 17) (TAP).

A one-off send with AUTH PLAIN (or EXTERNAL) puts the AUTH line with its
initial response, MAIL, RCPT and BDAT ... LAST in one flight.  These cases
check, against the scripted server:
  - the flight: AUTH and the whole transaction in one segment, delivered;
  - a refused AUTH at a relay that takes mail from unauthenticated clients
    (it accepts MAIL, RCPT and the data after the 535): the message never
    counts as sent (exit 77, never 0), a warning says it may arrive twice,
    and with a queue it stays queued;
  - a refused AUTH at a relay that refuses unauthenticated MAIL (530):
    exit 77, nothing delivered, no warning;
  - DATA instead of BDAT: after a refused AUTH the 354 is answered by
    closing the connection, never by the body;
  - a 334 to PLAIN's initial response (the server took MAIL for the
    answer): out of step, exit 76, nothing delivered;
  - where AUTH is not pipelined: LOGIN (it needs challenges), a relay
    without PIPELINING, and queue runs (-q): a refused AUTH there would let
    every retry deliver again.
"""

import base64
import os
import sys

sys.path.insert(0, os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer, handler  # noqa: E402

EX_OK, EX_PROTOCOL, EX_NOPERM = 0, 76, 77
USER, PASSWORD = "user@example.com", "Pipe-Pw-7c21"
RCPT = "rcpt@example.org"
MSG = b"From: sender@example.com\nTo: rcpt@example.org\nSubject: pipelined AUTH\n\nhello\n"
BAD = "535 5.7.8 Authentication credentials invalid"
CHUNKING = ["PIPELINING", "CHUNKING", "8BITMIME", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN"]
DATA_ONLY = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN"]
NO_PIPE = ["8BITMIME", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN"]


def plain_ok(conn, line):
    """PLAIN with the right password is 235; anything else 535.  LOGIN's
    two challenges are asked for, then judged the same way."""
    if conn.auth_mech == b"LOGIN":
        if conn.auth_step == 0:
            return "334 VXNlcm5hbWU6"
        if conn.auth_step == 1:
            return "334 UGFzc3dvcmQ6"
        ok = base64.b64decode(line) == PASSWORD.encode()
        return "235 2.7.0 ok" if ok else BAD
    blob = base64.b64decode(line.split(b" ", 2)[2])
    ok = blob == b"\0" + USER.encode() + b"\0" + PASSWORD.encode()
    return "235 2.7.0 ok" if ok else BAD


def config(port, password=PASSWORD, **keys):
    base = dict(auth="plain", user=USER, password=password,
                allow_plaintext_auth="yes")
    base.update(keys)
    return t.write_config(port, **base)


def send(name, ext, rules=None, password=PASSWORD, args=(), env=None, **keys):
    r = {"AUTH": handler(plain_ok)}
    r.update(rules or {})
    srv = ScriptedServer(rules=r, extensions=ext, connections=1, lifetime=30)
    with srv:
        cfg = config(srv.port, password, **keys)
        res = t.run_pushmail(["-C", cfg, "-v"] + list(args) + [RCPT], stdin=MSG,
                             env=env)
        srv.stop()
    t.ok(PASSWORD.encode() not in res.err and
         base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
         not in res.err, name + ": no secret on stderr")
    return res, srv


def auth_segment(rec):
    return rec.segment_with(b"AUTH ")


def one_flight(name, ext, verbs, last):
    """The message is delivered once, AUTH and `verbs` in one segment that
    ends with `last`."""
    res, srv = send(name, ext)
    t.check_exit(name, res, EX_OK, res.describe())
    rec = srv.record
    i = auth_segment(rec)
    seg = rec.segments[i] if i >= 0 else b""
    t.ok(all(v in seg for v in verbs) and last in seg,
         name + ": AUTH, %s in one segment" % b", ".join(verbs).decode(),
         t.show(rec.segments))
    t.is_eq(len(srv.messages()), 1, name + ": delivered once")


def case_flight():
    one_flight("PLAIN with CHUNKING", CHUNKING, [b"MAIL FROM:", b"RCPT TO:", b"BDAT "],
               b" LAST\r\n")
    one_flight("PLAIN with DATA", DATA_ONLY, [b"MAIL FROM:", b"RCPT TO:"], b"DATA\r\n")


def case_permissive_relay():
    # The relay refuses the login, then takes MAIL, RCPT and BDAT LAST from
    # the unauthenticated client (a relay open to its network, as Postfix is
    # with permit_mynetworks)
    name = "535 to AUTH, the relay accepts the message anyway"
    res, srv = send(name, CHUNKING, password="wrong")
    t.check_exit(name, res, EX_NOPERM, res.describe())
    t.ok(b"535" in res.err, name + ": stderr gives the AUTH refusal", res.err)
    t.ok(b"refused AUTH yet accepted" in res.err and b"twice" in res.err,
         name + ": a warning that it may arrive twice", res.err)
    t.is_eq(len(srv.messages()), 1, name + ": the relay did take one (the case warned of)")

    # with the queue (on-failure): mail of an account that cannot log in
    # waits in new/ for the fix
    name = "535 to AUTH, accepted anyway, queue = on-failure"
    d = os.path.join(t.tmpdir(), "permissive-queue")
    env = t.base_env(PUSHMAIL_QUEUE_DIR=d)
    res, srv = send(name, CHUNKING, password="wrong", env=env, queue="on-failure")
    t.ok(b"535" in res.err, name + ": the AUTH refusal is reported", res.describe())
    kept = [n for n in os.listdir(os.path.join(d, "new"))
            if n.endswith(".env")] if os.path.isdir(os.path.join(d, "new")) else []
    t.is_eq(len(kept), 1, name + ": still queued in new/, not counted as sent",
            res.describe())


def case_strict_relay():
    name = "535 to AUTH, the relay refuses unauthenticated MAIL"
    res, srv = send(name, CHUNKING, password="wrong",
                    rules={"MAIL": "530 5.7.0 Authentication required",
                           "RCPT": "503 5.5.1 need MAIL",
                           "EOD": "503 5.5.1 need RCPT"})
    t.check_exit(name, res, EX_NOPERM, res.describe())
    t.is_eq(srv.messages(), [], name + ": nothing delivered")
    t.ok(b"twice" not in res.err, name + ": no warning", res.err)


def case_data_body_withheld():
    name = "535 to AUTH, DATA answered 354"
    res, srv = send(name, DATA_ONLY, password="wrong")
    t.check_exit(name, res, EX_NOPERM, res.describe())
    rec = srv.record
    t.is_eq(srv.messages(), [], name + ": nothing delivered")
    t.ok(b"Subject: pipelined AUTH" not in rec.received,
         name + ": the body never went out", t.show(rec.received))
    t.is_eq(rec.verbs()[-1], "DATA", name + ": the connection ends after DATA's 354",
            rec.verbs())


def case_challenge():
    name = "334 to PLAIN's initial response"
    res, srv = send(name, CHUNKING, rules={"AUTH": "334 bW9yZT8="})
    t.check_exit(name, res, EX_PROTOCOL, res.describe())
    t.ok(b"PLAIN" in res.err and b"out of step" in res.err,
         name + ": stderr says why", res.err)
    t.is_eq(srv.messages(), [], name + ": nothing delivered")


def alone(name, rec):
    i = auth_segment(rec)
    seg = rec.segments[i] if i >= 0 else b""
    t.ok(i >= 0 and b"MAIL FROM:" not in seg,
         name + ": AUTH waits for its verdict before MAIL", t.show(rec.segments))


def case_not_pipelined():
    name = "LOGIN"
    res, srv = send(name, CHUNKING, auth="login")
    t.check_exit(name, res, EX_OK, res.describe())
    alone(name, srv.record)

    name = "PLAIN, relay without PIPELINING"
    res, srv = send(name, NO_PIPE)
    t.check_exit(name, res, EX_OK, res.describe())
    alone(name, srv.record)
    t.is_eq(len(srv.messages()), 1, name + ": delivered once")

    name = "535 to AUTH, relay without PIPELINING"
    res, srv = send(name, NO_PIPE, password="wrong")
    t.check_exit(name, res, EX_NOPERM, res.describe())
    t.is_eq(srv.record.verbs(), ["EHLO", "AUTH", "QUIT"], name + ": nothing after AUTH")


def case_queue_run():
    name = "queue run (-q)"
    d = os.path.join(t.tmpdir(), "qrun")
    env = t.base_env(PUSHMAIL_QUEUE_DIR=d)
    down = config(t.closed_port(), queue="always")
    res = t.run_pushmail(["-C", down, RCPT], stdin=MSG, env=env)
    t.check_exit(name + ": queued", res, EX_OK, res.describe())
    srv = ScriptedServer(rules={"AUTH": handler(plain_ok)}, extensions=CHUNKING,
                         connections=1, lifetime=30)
    with srv:
        res = t.run_pushmail(["-C", config(srv.port), "-q"], env=env)
        srv.stop()
    t.check_exit(name, res, EX_OK, res.describe())
    alone(name, srv.record)
    t.is_eq(len(srv.messages()), 1, name + ": delivered once")


def main():
    t.require_pushmail()
    case_flight()
    case_permissive_relay()
    case_strict_relay()
    case_data_body_withheld()
    case_challenge()
    case_not_pipelined()
    case_queue_run()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
