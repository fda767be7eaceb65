#!/usr/bin/env python3
"""session.py - pushmail against the scripted SMTP server (plain TCP).

Each row of CASES runs pushmail once against a ScriptedServer playing a
script, then asserts the exact exit status, what the server recorded, and for
failures that stderr is one line naming the host with the server's code.
"""

import hashlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
from smtpserver import (ScriptedServer, close, delay, drop_after_data,  # noqa: E402
                        endless_continuation, endless_line, handler, raw,
                        slow, stall)

EX_OK, EX_USAGE, EX_NOUSER, EX_UNAVAILABLE = 0, 64, 67, 69
EX_TEMPFAIL, EX_PROTOCOL = 75, 76

RCPT = "rcpt@example.org"
MSG = (b"From: Sender <sender@example.com>\n"
       b"To: rcpt@example.org\n"
       b"Subject: session test\n"
       b"\n"
       b"Hello.\n"
       b".leading dot\n"
       b"..\n"
       b".\n"
       b"last line\n")
MAIL_RE = re.compile(rb"^MAIL FROM:<sender@example\.com>( SIZE=\d+)?( BODY=8BITMIME)?$")
BIG_MSG = MSG + b"".join(b"line %06d of a longer message\n" % i for i in range(4000))


# --------------------------------------------------------------------------
# Checks shared by the rows

def data_txns(rec):
    return [x for x in rec.transactions if x.data_complete] if rec else []


def check_message(name, rec, sent, added=(b"date", b"message-id")):
    """The one delivered message equals `sent` normalised, give or take the
    headers pushmail adds (each at most once and only when missing)."""
    done = data_txns(rec)
    if not t.is_eq(len(done), 1, name + ": exactly one message delivered"):
        return None
    txn = done[0]
    want_h, want_b = t.split_message(t.normalise(sent))
    got_h, got_b = t.split_message(txn.message)
    names = [h.split(b":", 1)[0].lower() for h in got_h]
    present = {h.split(b":", 1)[0].lower() for h in want_h}
    kept = [h for h in got_h
            if h.split(b":", 1)[0].lower() not in added
            or h.split(b":", 1)[0].lower() in present]
    t.is_eq(kept, want_h, name + ": header lines kept in order")
    for a in added:
        if a not in present:
            t.is_eq(names.count(a), 1, name + ": one %s header added" % a.decode())
    t.is_eq(got_b, want_b, name + ": body delivered as normalised")
    t.is_eq(t.bare_line_ends(txn.data_raw), [], name + ": no bare CR/LF in DATA")
    t.is_eq(txn.data_raw, t.dot_stuff(txn.message), name + ": DATA correctly dot-stuffed")
    return txn


def check_envelope(name, rec, rcpts):
    cmds = rec.commands if rec else []
    mails = [c for c in cmds if c.upper().startswith(b"MAIL ")]
    t.ok(len(mails) == 1 and MAIL_RE.match(mails[0]), name + ": MAIL FROM line",
         "got: %s" % t.show(mails))
    got = [c for c in cmds if c.upper().startswith(b"RCPT ")]
    t.is_eq(got, [b"RCPT TO:<%s>" % r.encode() for r in rcpts],
            name + ": RCPT TO lines")


def own_segment(rec, line):
    """True when `line` arrived alone in its recv() segment."""
    return rec is not None and (line + b"\r\n") in rec.segments


def ck_success(name, res, srv):
    rec = srv.record
    t.is_eq(rec.commands[:1] if rec else None, [b"EHLO client.example"],
            name + ": EHLO with the configured domain")
    check_envelope(name, rec, [RCPT])
    t.is_eq(rec.verbs()[-2:], ["DATA", "QUIT"], name + ": DATA then QUIT")
    check_message(name, rec, MSG)
    t.is_eq(rec.end, "quit", name + ": session ended with QUIT")


def ck_pipelining(name, res, srv):
    rec = srv.record
    rc = [b"a@example.org", b"b@example.org", b"c@example.org"]
    want = b"".join(b"RCPT TO:<%s>\r\n" % r for r in rc) + b"DATA\r\n"
    i = rec.segment_with(b"MAIL FROM:")
    seg = rec.segments[i] if i >= 0 else b""
    t.ok(MAIL_RE.match(seg.split(b"\r\n", 1)[0]) and seg.endswith(b"\r\n" + want),
         name + ": MAIL, every RCPT and DATA in one segment", "segment: %s" % t.show(seg))
    t.is_eq(sum(1 for s in rec.segments if b"EHLO" in s and b"MAIL" in s), 0,
            name + ": EHLO waited for its reply")
    check_quit_after_eod(name, rec)
    check_message(name, rec, MSG)


def check_quit_after_eod(name, rec):
    """QUIT goes out only after the reply to the final dot (issue 14: Haraka
    answers a QUIT that came in the same write as the dot with 503 'pipelined
    after end of DATA').  The server replies to the dot only once it has read
    it, so a QUIT sent after that reply arrives in a later recv()."""
    j = rec.segment_with(b"QUIT\r\n") if rec else -1
    seg = rec.segments[j] if j >= 0 else b""
    before = b"".join(rec.segments[:j]) if j > 0 else b""
    t.ok(seg.startswith(b"QUIT\r\n") and before.endswith(b"\r\n.\r\n"),
         name + ": QUIT in its own segment after the final dot, not with it",
         "QUIT segment: %s" % t.show(seg[-200:]),
         "before it: %s" % t.show(before[-80:]))


def haraka_quit(conn, line):
    """Haraka's answer to a QUIT pipelined after the end of data."""
    if not conn.rec.segments[-1].startswith(b"QUIT"):
        return "503 5.5.0 Command pipelined after end of DATA"
    return None


def ck_quit_after_eod(name, res, srv):
    rec = srv.record
    check_quit_after_eod(name, rec)
    check_message(name, rec, MSG)
    t.is_eq(rec.verbs()[-1:], ["QUIT"], name + ": QUIT sent")


def ck_no_pipelining(name, res, srv):
    rec = srv.record
    for line in [b"RCPT TO:<a@example.org>", b"RCPT TO:<b@example.org>", b"DATA"]:
        t.ok(own_segment(rec, line), name + ": %s sent on its own" % line.decode(),
             "segments: %s" % t.show(rec.segments if rec else None))
    mail = [s for s in (rec.segments if rec else []) if s.startswith(b"MAIL FROM:")]
    t.ok(len(mail) == 1 and mail[0].count(b"\r\n") == 1,
         name + ": MAIL sent on its own", "segments: %s" % t.show(mail))
    check_message(name, rec, MSG)


def ck_helo(name, res, srv):
    rec = srv.record
    t.is_eq(rec.commands[:2], [b"EHLO client.example", b"HELO client.example"],
            name + ": EHLO refused, then HELO")
    mails = [c for c in rec.commands if c.startswith(b"MAIL")]
    t.is_eq(mails, [b"MAIL FROM:<sender@example.com>"],
            name + ": no ESMTP parameters after HELO")
    t.ok(own_segment(rec, b"RCPT TO:<%s>" % RCPT.encode()),
         name + ": no pipelining after HELO", "segments: %s" % t.show(rec.segments))
    check_message(name, rec, MSG)


def ck_partial(name, res, srv):
    rec = srv.record
    txn = check_message(name, rec, MSG)
    if txn:
        t.is_eq(txn.accepted, [b"RCPT TO:<a@example.org>"],
                name + ": delivered to the accepted recipient")
    t.ok(b"b@example.org" in res.err, name + ": refused recipient reported on stderr",
         "stderr: %s" % t.show(res.err))


def ck_refused_at_data(name, res, srv):
    """One RCPT refused, DATA got 354 anyway: no final dot may follow."""
    rec = srv.record
    txn = rec.transaction if rec else None
    raw_ = txn.data_raw if txn else None
    t.ok(raw_ is None or not raw_.endswith(b"\r\n.\r\n"),
         name + ": data not completed", "data_raw: %s" % t.show(raw_))


def ck_bare_code(name, res, srv):
    check_message(name, srv.record, MSG)


def ck_dropped_mid_data(name, res, srv):
    txn = srv.record.transaction if srv.record else None
    t.ok(txn is not None and txn.data_raw is not None and len(txn.data_raw) >= 1000,
         name + ": server received data before dropping")


def ck_after_dot(name, res, srv):
    t.is_eq(len(data_txns(srv.record)), 1, name + ": server received the whole message")


def ck_tflag(name, res, srv, extra=()):
    rec = srv.record
    got = sorted(c for c in rec.commands if c.startswith(b"RCPT"))
    want = sorted(b"RCPT TO:<%s>" % a for a in
                  [b"to@example.org", b"cc@example.org", b"bcc@example.org"] + list(extra))
    t.is_eq(got, want, name + ": envelope from To, Cc and Bcc")
    txn = check_message(name, rec, T_MSG.replace(b"Bcc: Hidden <bcc@example.org>\n", b""))
    if txn:
        t.ok(b"bcc@example.org" not in txn.message, name + ": Bcc address not in the message")


def ck_tflag_extra(name, res, srv):
    ck_tflag(name, res, srv, extra=[b"extra@example.org"])


T_MSG = (b"From: sender@example.com\n"
         b"To: To Person <to@example.org>\n"
         b"Cc: \"Cc, Person\" <cc@example.org>\n"
         b"Bcc: Hidden <bcc@example.org>\n"
         b"Subject: -t test\n"
         b"\n"
         b"body\n")


# --------------------------------------------------------------------------
# The large message

BIG_LINES = 0


def msg_file(data):
    path = os.path.join(t.tmpdir(), "msg-%d.eml" % len(data))
    with open(path, "wb") as f:
        f.write(data)
    return path


def big_message_file():
    global BIG_LINES
    path = os.path.join(t.tmpdir(), "big.eml")
    head = (b"From: sender@example.com\r\nTo: rcpt@example.org\r\n"
            b"Subject: large\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n"
            b"Message-ID: <big@example.com>\r\n\r\n")
    BIG_LINES = t.write_big_message(path, head)
    return path


def ck_big(name, res, srv):
    rec = srv.record
    path = os.path.join(t.tmpdir(), "big.eml")
    with open(path, "rb") as f:
        want = t.normalise(f.read())
    done = data_txns(rec)
    if not t.is_eq(len(done), 1, name + ": one message delivered"):
        return
    txn = done[0]
    t.ok_intact(name, txn.message, want)
    t.is_eq(t.bare_line_ends(txn.data_raw[:1 << 20]), [], name + ": no bare CR/LF")
    t.ok(txn.data_segments * 100 < BIG_LINES,
         name + ": few DATA segments (%d for %d lines)" % (txn.data_segments, BIG_LINES))
    t.ok_size_param(name, txn.mail, len(want))


# --------------------------------------------------------------------------
# The table

def S(**kw):
    return kw


CASES = [
    dict(name="success", server=S(), exit=EX_OK, check=ck_success),
    dict(name="pipelining: one segment, QUIT after the dot's reply", server=S(),
         args=["a@example.org", "b@example.org", "c@example.org"], exit=EX_OK,
         check=ck_pipelining),
    dict(name="no PIPELINING: one command per reply",
         server=S(extensions=["SIZE 10485760", "8BITMIME", "ENHANCEDSTATUSCODES"]),
         args=["a@example.org", "b@example.org"], exit=EX_OK, check=ck_no_pipelining),
    dict(name="EHLO 502, HELO fallback",
         server=S(rules={"EHLO": "502 5.5.2 Error: command not recognized"}),
         exit=EX_OK, check=ck_helo),
    dict(name="EHLO 550 and HELO 550",
         server=S(rules={"EHLO": "550 5.7.1 go away", "HELO": "550 5.7.1 go away"}),
         exit=EX_UNAVAILABLE, err=["550"], quit=True, delivered=False),
    dict(name="replies split one byte per write",
         server=S(rules={"GREETING": slow(b"220-test.example ESMTP\r\n220 ready\r\n", 0.002),
                         "EHLO": slow(b"250-test.example\r\n250-PIPELINING\r\n"
                                      b"250 ENHANCEDSTATUSCODES\r\n", 0.002),
                         "EOD": slow(b"250 2.0.0 Ok: queued\r\n", 0.002)}),
         exit=EX_OK, check=ck_bare_code),
    dict(name="bare code without text", server=S(rules={"RCPT": raw(b"250\r\n")}),
         exit=EX_OK, check=ck_bare_code),
    dict(name="greeting 421", server=S(rules={"GREETING": "421 4.3.2 shutting down"}),
         exit=EX_TEMPFAIL, err=["421", "4.3.2"], delivered=False),
    dict(name="greeting 554", server=S(rules={"GREETING": "554 5.7.1 no service"}),
         exit=EX_UNAVAILABLE, err=["554", "5.7.1"], delivered=False, no_mail=True),
    dict(name="garbage greeting",
         server=S(rules={"GREETING": raw(b"HELLO THERE\r\n")}),
         exit=EX_PROTOCOL, delivered=False, no_mail=True),
    dict(name="connection closed instead of the greeting",
         server=S(rules={"GREETING": close()}), exit=EX_TEMPFAIL, delivered=False),
    dict(name="silent server (timeout = 2)", server=S(rules={"GREETING": stall(30)}),
         cfg={"timeout": "2"}, exit=EX_TEMPFAIL, delivered=False, max_time=10),
    dict(name="mismatched multi-line codes",
         server=S(rules={"EHLO": raw(b"250-test.example\r\n251 PIPELINING\r\n")}),
         exit=EX_PROTOCOL, delivered=False, no_mail=True),
    dict(name="mismatched multi-line greeting",
         server=S(rules={"GREETING": raw(b"220-test.example\r\n250 ESMTP\r\n")}),
         exit=EX_PROTOCOL, delivered=False, no_mail=True),
    dict(name="endless reply line",
         server=S(rules={"GREETING": endless_line(64 << 20)}),
         exit=EX_PROTOCOL, delivered=False, max_time=10, maxrss_kb=16 * 1024,
         data_limit=16 << 20),
    dict(name="endless continuation lines",
         server=S(rules={"EHLO": endless_continuation(200000)}),
         exit=EX_PROTOCOL, delivered=False, max_time=10, maxrss_kb=16 * 1024,
         data_limit=16 << 20, no_mail=True),
    dict(name="100000 continuation lines with a final line",
         server=S(rules={"EHLO": endless_continuation(100000, final=True)}),
         exit=EX_PROTOCOL, delivered=False, max_time=10, no_mail=True),
    dict(name="reply line of 5000 bytes",
         server=S(rules={"EHLO": raw(b"250 " + b"y" * 4996 + b"\r\n")}),
         exit=EX_PROTOCOL, delivered=False, no_mail=True),
    dict(name="invalid code 600", server=S(rules={"MAIL": "600 what"}),
         exit=EX_PROTOCOL, delivered=False),
    dict(name="invalid code 199", server=S(rules={"RCPT": "199 what"}),
         exit=EX_PROTOCOL, delivered=False),
    dict(name="invalid code 2x0", server=S(rules={"GREETING": "2x0 hello"}),
         exit=EX_PROTOCOL, delivered=False, no_mail=True),
    dict(name="550 to RCPT",
         server=S(rules={"RCPT": "550 5.1.1 <rcpt@example.org>: no such user"}),
         exit=EX_NOUSER, err=["550", "5.1.1"], quit=True, delivered=False),
    dict(name="553 to RCPT",
         server=S(rules={"RCPT": "553 5.1.3 bad address syntax"}),
         exit=EX_NOUSER, err=["553", "5.1.3"], quit=True, delivered=False),
    # OpenSMTPD's unknown recipient: the basic code says little, the
    # enhanced status (X.2.4, like X.1.x) says "no such recipient"
    dict(name="524 5.2.4 to RCPT (OpenSMTPD)",
         server=S(rules={"RCPT": "524 5.2.4 Invalid recipient"}),
         exit=EX_NOUSER, err=["524", "5.2.4"], quit=True, delivered=False),
    dict(name="451 to RCPT",
         server=S(rules={"RCPT": "451 4.3.0 try again later"}),
         exit=EX_TEMPFAIL, err=["451", "4.3.0"], quit=True, delivered=False),
    dict(name="550 to RCPT but 354 to DATA",
         server=S(rules={"RCPT": "550 5.1.1 no such user", "DATA": "354 go ahead"}),
         exit=EX_NOUSER, err=["550"], delivered=False, check=ck_refused_at_data),
    dict(name="one of two recipients refused",
         server=S(rules={"RCPT": ["250 2.1.5 Ok", "550 5.1.1 no such user"]}),
         args=["a@example.org", "b@example.org"], exit=EX_NOUSER,
         err=["550", "5.1.1"], delivered=False, check=ck_refused_at_data),
    dict(name="one of two refused, partial_delivery = yes",
         server=S(rules={"RCPT": ["250 2.1.5 Ok", "550 5.1.1 no such user"]}),
         cfg={"partial_delivery": "yes"}, args=["a@example.org", "b@example.org"],
         exit=EX_OK, check=ck_partial, stderr_ok=True),
    dict(name="552 to MAIL",
         server=S(rules={"MAIL": "552 5.3.4 message too big"}),
         exit=EX_UNAVAILABLE, err=["552", "5.3.4"], quit=True, delivered=False),
    dict(name="451 to MAIL", server=S(rules={"MAIL": "451 4.7.1 greylisted"}),
         exit=EX_TEMPFAIL, err=["451", "4.7.1"], quit=True, delivered=False),
    dict(name="451 after data",
         server=S(rules={"EOD": "451 4.3.0 queue trouble"}),
         exit=EX_TEMPFAIL, err=["451", "4.3.0"], quit=True),
    dict(name="554 after data",
         server=S(rules={"EOD": "554 5.7.1 spam refused"}),
         exit=EX_UNAVAILABLE, err=["554", "5.7.1"], quit=True),
    dict(name="connection dropped mid-data",
         server=S(rules={"DATA": drop_after_data(1000)}), stdin=BIG_MSG,
         exit=EX_TEMPFAIL, delivered=False, check=ck_dropped_mid_data),
    dict(name="connection dropped right after the dot",
         server=S(rules={"EOD": close()}), exit=EX_TEMPFAIL, check=ck_after_dot),
    dict(name="final reply stalls (timeout = 2)",
         server=S(rules={"EOD": stall(30)}), cfg={"timeout": "2"},
         exit=EX_TEMPFAIL, max_time=10, check=ck_after_dot),
    dict(name="QUIT after the end-of-data reply (Haraka)",
         server=S(rules={"QUIT": handler(haraka_quit)}), exit=EX_OK,
         check=ck_quit_after_eod),
    dict(name="221 to QUIT comes late", server=S(rules={"QUIT": delay(2, "221 2.0.0 Bye")}),
         exit=EX_OK, check=ck_quit_after_eod),
    dict(name="QUIT answered by closing", server=S(rules={"QUIT": close()}),
         exit=EX_OK, check=ck_quit_after_eod),
    dict(name="slow but valid final reply",
         server=S(rules={"EOD": delay(1, "250 2.0.0 Ok")}), exit=EX_OK,
         check=ck_bare_code),
    dict(name="connection refused", server=None, exit=EX_TEMPFAIL),
    dict(name="CRLF in a recipient", server=S(),
         args=["rcpt@example.org\r\nRSET"], exit=EX_USAGE, no_connect=True),
    dict(name="LF in a recipient", server=S(),
         args=["ok@example.org", "rcpt@example.org\nDATA"], exit=EX_USAGE,
         no_connect=True),
    dict(name="CR in -f", server=S(),
         args=["-f", "x@example.org\rRCPT TO:<evil@example.net>", RCPT],
         exit=EX_USAGE, no_connect=True),
    dict(name="-t with To/Cc/Bcc", server=S(), args=["-t"], stdin=T_MSG,
         exit=EX_OK, check=ck_tflag),
    dict(name="-t plus a command-line recipient", server=S(),
         args=["-t", "extra@example.org"], stdin=T_MSG, exit=EX_OK,
         check=ck_tflag_extra),
    dict(name="SIZE limit below the message size",
         server=S(extensions=["PIPELINING", "SIZE 1000", "ENHANCEDSTATUSCODES"]),
         stdin_file=lambda: msg_file(BIG_MSG), exit=EX_UNAVAILABLE, err=["1000"],
         quit=True, delivered=False, no_mail=True),
    dict(name="large message (20 MiB)",
         server=S(io_timeout=20, extensions=["PIPELINING", "SIZE 104857600", "8BITMIME",
                                             "ENHANCEDSTATUSCODES"]),
         cfg={"timeout": "20"},   # the Python server may lag behind a loaded CPU
         stdin_file=big_message_file, exit=EX_OK, check=ck_big, max_time=60,
         maxrss_kb=16 * 1024, data_limit=16 << 20),
]


# --------------------------------------------------------------------------

def run_case(c):
    name = c["name"]
    srv = ScriptedServer(**c["server"]) if c.get("server") is not None else None
    if srv:
        srv.start()
    try:
        port = srv.port if srv else t.closed_port()
        cfg = t.write_config(port=port, **c.get("cfg", {}))
        kw = {"data_limit": c.get("data_limit")}
        if c.get("stdin_file"):
            kw["stdin_file"] = c["stdin_file"]()
        else:
            kw["stdin"] = c.get("stdin", MSG)
        res = t.run_pushmail(["-C", cfg] + c.get("args", [RCPT]), **kw)
    finally:
        if srv:
            srv.stop()
    rec = srv.record if srv else None
    info = res.describe()
    if rec:
        info += ["server commands: %s" % t.show(rec.commands),
                 "server end: %s" % rec.end]
    if srv and srv.errors:
        info += ["server errors: %s" % srv.errors]

    t.is_eq(res.rc, c["exit"], name + ": exit status", *info)
    if srv:
        t.is_eq(srv.errors, [], name + ": scripted server ran cleanly")
    if c["exit"] == EX_OK and not c.get("stderr_ok"):
        t.is_eq(res.err, b"", name + ": nothing on stderr")
    if c["exit"] != EX_OK:
        err = res.err.strip()
        t.ok(err and b"\n" not in err, name + ": one line on stderr",
             "stderr: %s" % t.show(res.err))
        want = [b"127.0.0.1"] + [s.encode() for s in c.get("err", [])]
        if c["exit"] != EX_USAGE:
            t.ok(all(w in err for w in want),
                 name + ": stderr names the host%s" % (
                     " and " + "/".join(c["err"]) if c.get("err") else ""),
                 "stderr: %s" % t.show(res.err), "want: %s" % t.show(want))
    if "max_time" in c:
        t.ok(res.elapsed < c["max_time"],
             name + ": finished in %.1fs (< %ss)" % (res.elapsed, c["max_time"]))
    if "maxrss_kb" in c:
        t.ok(t.SANITIZED or res.maxrss_kb < c["maxrss_kb"],
             name + ": memory bounded (maxrss %d KiB)" % res.maxrss_kb)
    if c.get("no_connect"):
        t.is_eq(srv.accepted, 0, name + ": server never connected to")
    if c.get("delivered") is False and srv:
        t.is_eq(len(data_txns(rec)), 0, name + ": no complete message reached the server")
    if c.get("no_mail") and rec:
        t.is_eq([x for x in rec.commands if x.upper().startswith(b"MAIL")], [],
                name + ": no MAIL command sent")
    if c.get("quit") and rec:
        t.is_eq(rec.verbs()[-1:], ["QUIT"], name + ": QUIT sent before closing",
                "commands: %s" % t.show(rec.commands))
    if c.get("check"):
        if srv and rec is None:
            t.ok(False, name + ": server was connected to", *info)
        else:
            c["check"](name, res, srv)


def main():
    t.require_pushmail()
    only = os.environ.get("SESSION_ONLY")
    for c in CASES:
        if only and only not in c["name"]:
            continue
        run_case(c)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
