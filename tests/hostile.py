#!/usr/bin/env python3
"""hostile.py - the hostile-relay and hostile-input matrix (SECURITY.md, SPEC 3, 4, 7).

Each row of CASES runs pushmail once (a few rows run it twice) against a
ScriptedServer playing a hostile or broken relay, or feeds it hostile local
input, and asserts:

  - the exact exit status (a tuple only where a row says "refused or
    harmless" and names both outcomes);
  - what reached the wire: exact command lists, verbs that must never be
    sent (no MAIL after a failed STARTTLS, no AUTH in clear, ...), that no
    message content left pushmail when it must not (a marker line in every
    body is looked for in everything the server received and in pushmail's
    own -v transcript), and that no final dot / BDAT LAST followed a failure;
  - that stderr (and stdout, the -X transcript and the mail log where a row
    uses them) holds no raw control byte (ESC, BEL, NUL, ...) whatever the
    relay sent, and for the 8-bit rows no byte >= 0x80 either;
  - time and memory bounds where the row is about them (timeout = 2 for the
    stall rows: each run ends in under 10 s);
  - for the secret rows, that neither the password nor the token appears,
    raw or base64 at any alignment, in stderr (-v), stdout, the -X
    transcript, the log file, the queue files, or the argv/environment of a
    password_command child.

Expectations this file defines where the specs leave a choice:
  - Replies out of step (unsolicited extra replies, two replies to one
    command): bytes that are already waiting when pushmail is about to send
    a non-pipelined command, or that follow a 354, mean the replies are out
    of step.  Expected: EX_PROTOCOL and no message content on the wire.
    When the extra reply only shifts every later reply by one, the 250 that
    lands on DATA gives the same EX_PROTOCOL.
  - A multi-line 220 to STARTTLS with one code and nothing after it is a
    valid reply: the handshake goes on.
  - A single 100 MiB body line is delivered intact with peak RSS < 20 MiB;
    a single 100 MiB header line is EX_DATAERR (header block over 1 MiB)
    with nothing connected.
  - The phase timeout bounds the whole reply, not each of its lines: a
    relay that drips one continuation line every 1.5 s must not hold
    pushmail (timeout = 2) for longer than a few seconds.

Rows that need certificates (certs.py) are skipped without certtool.
HOSTILE_ONLY=substring (or a group name: 421, EOF, stall, starttls, replies,
desync, auth, input, args, config, secrets, perms) runs the matching rows only.
"""

import base64
import glob
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import taplib as t  # noqa: E402
from smtpserver import (ScriptedServer, close, delay, drop_after_data,  # noqa: E402
                        endless_continuation, endless_line, handler, raw, seq,
                        slow, stall)

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER = 0, 64, 65, 67
EX_UNAVAILABLE, EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM, EX_CONFIG = 69, 75, 76, 77, 78

RCPT = "rcpt@example.org"
USER = "user@example.com"
PASSWORD = "Pw-SeCrEt-4242"
TOKEN = "tok-SeCrEt-9999"
MARK = b"BODY-MARKER-7d1e"          # in every body: "did content reach the wire?"
MSG = (b"From: Sender <sender@example.com>\n"
       b"To: rcpt@example.org\n"
       b"Subject: hostile test\n"
       b"Date: Thu, 1 Jan 2026 00:00:00 +0000\n"
       b"Message-ID: <hostile@example.com>\n"
       b"\n"
       b"first line\n" + MARK + b"\n"
       b".dot line\n")
EHLO = b"EHLO client.example"
MAIL = b"MAIL FROM:<sender@example.com>"
RCPT_LINE = b"RCPT TO:<%s>" % RCPT.encode()
ENVELOPE = [MAIL, RCPT_LINE, b"DATA", b"QUIT"]


def streamed(cmds, srv, rec):
    """A piped message with queue = never is not seen before MAIL, so it is
    declared BODY=8BITMIME wherever the relay offers 8BITMIME (RFC 6152
    allows it for 7-bit content; pushmail(1))."""
    # what the server said, since some scripts write the EHLO reply themselves
    if rec is None or b"8BITMIME" not in b"".join(rec.replies):
        return cmds
    return [x + b" BODY=8BITMIME" if x == MAIL else x for x in cmds]
AFTER_EHLO = ("MAIL", "RCPT", "DATA", "BDAT", "AUTH")
NO_PIPE = ["SIZE 10485760", "8BITMIME", "ENHANCEDSTATUSCODES"]
ESC_2J = "\x1b[2J"
OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
STALL = 30          # longer than any run may take; cut short by srv.stop()


def S(**kw):
    return kw


def b64(x):
    return base64.b64encode(x.encode() if isinstance(x, str) else x)


def secret_forms(secret):
    """The secret raw, and the base64 of it at offsets 0, 1 and 2 within a
    longer string (only the base64 groups made of secret bytes alone, so the
    needle is found whatever precedes it, as in a PLAIN or XOAUTH2 blob)."""
    s = secret.encode()
    out = [s]
    for k in range(3):
        data = b"\0" * k + s
        enc = base64.b64encode(data)
        first = 0 if k == 0 else 1
        last = len(data) // 3
        out.append(enc[first * 4:last * 4])
    return out


NEEDLES = [(name, f) for name, sec in (("password", PASSWORD), ("token", TOKEN))
           for f in secret_forms(sec)]


def leaks(blob):
    return [f for _, f in NEEDLES if f in blob]


CTL_RE = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
HIGH_RE = re.compile(rb"[\x80-\xff]")


# --------------------------------------------------------------------------
# Per-run context: certificates, a private directory, paths for artefacts

class K:
    def __init__(self, C):
        self.C = C
        self.dir = tempfile.mkdtemp(prefix="case-", dir=t.tmpdir())
        self.xfile = os.path.join(self.dir, "transcript.txt")
        self.logfile = os.path.join(self.dir, "mail.log")
        self.qdir = os.path.join(self.dir, "queue")
        self.rec = os.path.join(self.dir, "child-record")
        self.box = {}

    def script(self, name, body, mode=0o700):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, mode)
        return path


def ev(v, k):
    return v(k) if callable(v) else v


# --------------------------------------------------------------------------
# Server-side helpers

def st_srv(**kw):
    """A STARTTLS server with the test CA's certificate."""
    def make(k):
        d = dict(ssl_context=k.C.context(k.C.good), tls="starttls")
        d.update(kw)
        return d
    make.tls = True
    return make


def im_srv(**kw):
    def make(k):
        d = dict(ssl_context=k.C.context(k.C.good), tls="implicit")
        d.update(kw)
        return d
    make.tls = True
    return make


_EVIL = []


def im_srv_evil():
    """Implicit TLS with a self-signed certificate whose subject holds ESC
    sequences (certtool cleans DNS names, not the CN)."""
    def make(k):
        if not _EVIL:
            _EVIL.append(k.C._leaf("evilcn", "evil" + ESC_2J + OSC52 + " cn",
                                   ["localhost"], ["127.0.0.1"], signer=None))
        return dict(ssl_context=k.C.context(_EVIL[0]), tls="implicit")
    make.tls = True
    return make


def trusted(**kw):
    d = dict(tls="starttls", tls_trust_file=lambda k: k.C.ca)
    d.update(kw)
    return d


def late_injection(payload):
    """STARTTLS: a clean 220, then plaintext bytes in a later segment, then
    the handshake (a man in the middle's timing)."""
    def fn(conn, line):
        conn.send(b"220 2.0.0 Ready to start TLS\r\n")
        conn.server.sleep(0.3)
        conn.send(payload)
        conn.start_tls("starttls")
        return raw(b"")
    return handler(fn)


def drip(n, gap, final=b"250 PIPELINING\r\n"):
    """A multi-line reply whose lines come `gap` seconds apart."""
    def fn(conn, line):
        conn.send(b"250-test.example\r\n")
        for i in range(n):
            if conn.server.sleep(gap):
                break
            conn.send(b"250-X-DRIP-%d\r\n" % i)
        return raw(final)
    return handler(fn)


def plain_ok(conn, line):
    return "235 2.7.0 Authentication successful"


def srv_login_ok(conn, line):
    step = conn.auth_step
    return ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"][step] if step < 2 else \
        "235 2.7.0 Authentication successful"


def oauth_fail(conn, line):
    if conn.auth_step == 0:
        return "334 " + b64('{"status":"invalid_token"}').decode()
    return "535 5.7.8 Username and Password not accepted"


# --------------------------------------------------------------------------
# Checks shared by rows (each: fn(name, res, srv, k))

def txns(srv):
    return [x for r in (srv.records if srv else []) for x in r.transactions]


def done(srv):
    return [x for x in txns(srv) if x.data_complete]


def ck_delivered_intact(want=MSG):
    def ck(name, res, srv, k):
        d = done(srv)
        if t.is_eq(len(d), 1, name + ": one message delivered"):
            t.is_eq(d[0].message, t.normalise(want), name + ": delivered intact")
    return ck


def ck_commands_within(allowed, forbidden_substrings=()):
    def ck(name, res, srv, k):
        cmds = srv.record.commands if srv.record else []
        bad = [c for c in cmds if c.split(b" ")[0].upper().decode("latin-1")
               not in allowed or any(s in c for s in forbidden_substrings)]
        t.is_eq(bad, [], name + ": only %s reached the server" % "/".join(allowed),
                "commands: %s" % t.show(cmds))
    return ck


def ck_not_pipelined_after_tls(name, res, srv, k):
    rec = srv.record
    for line in (MAIL, RCPT_LINE, b"DATA"):
        t.ok(line + b"\r\n" in rec.segments,
             name + ": %s on its own after TLS" % line.decode(),
             "segments: %s" % t.show(rec.segments))


def ck_pipelined_before_tls_only(name, res, srv, k):
    ck_not_pipelined_after_tls(name, res, srv, k)
    ck_delivered_intact()(name, res, srv, k)


def ck_files_clean(*which):
    """The -X transcript / log file exist and hold no control byte."""
    def ck(name, res, srv, k):
        for what in which:
            path = k.xfile if what == "transcript" else k.logfile
            data = read(path)
            t.ok(data, name + ": %s written" % what)
            t.is_eq(CTL_RE.findall(data), [], name + ": no control byte in the %s" % what,
                    "%s: %s" % (what, t.show(data)))
            t.is_eq(HIGH_RE.findall(data), [], name + ": no 8-bit byte in the %s" % what)
    return ck


def ck_all(*cks):
    def ck(name, res, srv, k):
        for c in cks:
            c(name, res, srv, k)
    return ck


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def ck_no_secret(*where):
    """Neither secret, raw or base64 at any alignment, in stderr, stdout and
    the artefacts named in `where`: transcript, log, child, queue."""
    def ck(name, res, srv, k):
        blobs = [("stderr", res.err), ("stdout", res.out)]
        if "transcript" in where:
            blobs.append(("-X transcript", read(k.xfile)))
        if "log" in where:
            blobs.append(("log file", read(k.logfile)))
        if "child" in where:
            blobs.append(("password_command record", read(k.rec)))
            env = read(k.rec + ".environ")
            t.ok(b"PATH=" in env, name + ": password_command recorded its environment")
            t.is_eq(leaks(env), [], name + ": no secret in password_command's environment")
        if "queue" in where:
            for p in sorted(glob.glob(os.path.join(k.qdir, "*", "*"))):
                blobs.append((os.path.relpath(p, k.qdir), read(p)))
        for what, blob in blobs:
            t.is_eq(leaks(blob), [], name + ": no secret in %s" % what,
                    "%s: %s" % (what, t.show(blob, 1500)))
        for what in where:
            if what == "transcript":
                t.ok(b"AUTH" in read(k.xfile), name + ": -X transcript shows AUTH",
                     "transcript: %s" % t.show(read(k.xfile)))
            if what == "log":
                t.ok(read(k.logfile), name + ": log file written")
    return ck


def ck_server_got_secret(kind):
    """The test would prove nothing if the secret never left pushmail: the
    server must have received it (base64 in an AUTH line)."""
    def ck(name, res, srv, k):
        got = b"\n".join(srv.record.commands) if srv.record else b""
        want = [f for n, f in NEEDLES if n == kind]
        t.ok(any(f in got for f in want[1:]),
             name + ": the server did receive the %s (base64)" % kind,
             "commands: %s" % t.show(got))
    return ck


def ck_child_record(name, res, srv, k):
    rec = read(k.rec)
    t.ok(b"self:" in rec and b"parent:" in rec and b"pushmail" in rec,
         name + ": password_command recorded its own and pushmail's argv",
         "record: %s" % t.show(rec, 1000))


def ck_queue_files(n):
    def ck(name, res, srv, k):
        files = glob.glob(os.path.join(k.qdir, "new", "*"))
        t.is_eq(len([f for f in files if f.endswith(".msg")]), n,
                name + ": %d message(s) in the queue" % n, "files: %s" % files)
        t.ok(any(f.endswith(".env") for f in files) == (n > 0),
             name + ": envelope file present")
    return ck


def ck_queue_then_flush(name, res, srv, k):
    """Queue the message (451 after AUTH), then list it and retry it with
    -v -X on a second connection; no secret anywhere at any step."""
    ck_queue_files(1)(name, res, srv, k)
    ck_no_secret("queue", "log")(name, res, srv, k)
    env = t.base_env(PUSHMAIL_QUEUE_DIR=k.qdir)
    lst = t.run_pushmail(["-C", k.cfg, "-bp"], env=env)
    t.is_eq(lst.rc, EX_OK, name + ": -bp lists the queue", *lst.describe())
    t.is_eq(leaks(lst.out + lst.err), [], name + ": no secret in the -bp listing")
    ids = [os.path.basename(p)[:-4] for p in glob.glob(os.path.join(k.qdir, "new", "*.env"))]
    run = t.run_pushmail(["-C", k.cfg, "--queue-retry", ids[0] if ids else "none",
                          "-v", "-X", k.xfile], env=env)
    srv.stop()
    t.is_eq(run.rc, EX_OK, name + ": --queue-retry delivers it", *run.describe())
    t.is_eq(leaks(run.out + run.err + read(k.xfile)), [],
            name + ": no secret in the retry's -v output or its transcript",
            "stderr: %s" % t.show(run.err, 1500))
    t.is_eq(CTL_RE.findall(run.err), [], name + ": no control byte in the retry's stderr")
    t.is_eq(len(done(srv)), 1, name + ": delivered once, by the retry")
    ck_server_got_secret("password")(name, res, srv, k)
    ck_queue_files(0)(name, res, srv, k)


def ck_big_line(name, res, srv, k):
    d = done(srv)
    if not t.is_eq(len(d), 1, name + ": one message delivered"):
        return
    msg = d[0].message
    want_len = len(BIG_HEAD.replace(b"\n", b"\r\n")) + BIG_LINE + 2
    t.is_eq(len(msg), want_len, name + ": delivered length")
    body = msg[len(BIG_HEAD.replace(b"\n", b"\r\n")):]
    t.ok(body[:-2].count(b"y") == BIG_LINE and body.endswith(b"\r\n"),
         name + ": the 100 MiB line arrived intact, with CRLF added")


def ck_headers_only(name, res, srv, k):
    d = done(srv)
    if not t.is_eq(len(d), 1, name + ": one message delivered"):
        return
    m = d[0].message
    lines = m.split(b"\r\n")
    t.is_eq(lines[:2], [b"To: rcpt@example.org", b"Subject: no final newline"],
            name + ": the header lines arrive as they were")
    t.ok(all(re.match(rb"^[A-Za-z-]+: ", l) for l in lines[:-1] if l) and m.endswith(b"\r\n"),
         name + ": every line is a header line (nothing glued on)", "message: %s" % t.show(m))
    t.is_eq(t.bare_line_ends(d[0].data_raw), [], name + ": no bare CR/LF")


def ck_empty(name, res, srv, k):
    d = done(srv)
    if not t.is_eq(len(d), 1, name + ": one message delivered"):
        return
    m = d[0].message
    heads = [l.split(b":")[0].lower() for l in m.split(b"\r\n") if b":" in l]
    t.ok(b"date" in heads and b"message-id" in heads and b"from" in heads,
         name + ": generated Date, Message-ID and From", "message: %s" % t.show(m))
    t.is_eq(t.bare_line_ends(d[0].data_raw), [], name + ": no bare CR/LF")
    t.ok(d[0].data_raw.endswith(b"\r\n.\r\n"), name + ": ends with CRLF.CRLF")


def ck_8bit_headers(name, res, srv, k):
    d = done(srv)
    if t.is_eq(len(d), 1, name + ": one message delivered"):
        t.ok(BAD_UTF8_SUBJECT.rstrip(b"\n") in d[0].message,
             name + ": invalid UTF-8 header bytes unchanged",
             "message: %s" % t.show(d[0].message))
        t.ok(d[0].mail.endswith(b" BODY=8BITMIME"),
             name + ": BODY=8BITMIME declared", "MAIL: %s" % t.show(d[0].mail))


def ck_t_header_cr(name, res, srv, k):
    got = [c for c in srv.record.commands if c.startswith(b"RCPT")]
    t.is_eq(got, [b"RCPT TO:<victim@example.org>"],
            name + ": only the header's recipient; the CR did not smuggle a command")


def ck_one_auth_password(name, res, srv, k):
    sent = [c for c in srv.record.commands if c == b64(PASSWORD)]
    t.ok(len(sent) <= 1, name + ": the password went out at most once",
         "commands: %s" % t.show(srv.record.commands))


def ck_no_bdat_last(name, res, srv, k):
    cmds = srv.record.commands if srv.record else []
    t.is_eq([c for c in cmds if c.upper().startswith(b"BDAT") and c.upper().endswith(b"LAST")],
            [], name + ": no BDAT LAST")


# --------------------------------------------------------------------------
# Inputs

BIG_HEAD = (b"From: sender@example.com\nTo: rcpt@example.org\nSubject: one line\n"
            b"Date: Thu, 1 Jan 2026 00:00:00 +0000\nMessage-ID: <big@example.com>\n\n")
BIG_LINE = 100 << 20
BAD_UTF8_SUBJECT = b"Subject: caf\xc3\xa9 \xff\xfe \xc3\x28 \xed\xa0\x80 \xf8\x88\x80\x80\x80\n"


def big_line_input():
    return BIG_HEAD + b"y" * BIG_LINE


def huge_header():
    line = b"X-Filler: " + b"f" * 990 + b"\n"
    return (b"To: rcpt@example.org\n" + line * ((1 << 20) // len(line) + 8) +
            b"\n" + MARK + b"\n")


def near_limit_header():
    line = b"X-Filler: " + b"f" * 990 + b"\n"
    return MSG.replace(b"\n\n", b"\n" + line * ((1 << 20) // len(line) - 8) + b"\n", 1)


def long_header_line():
    return b"To: rcpt@example.org\nX-Long: " + b"z" * (2 << 20) + b"\n\n" + MARK + b"\n"


BIG_BODY = MSG + b"".join(b"line %07d of a big body that the relay stops reading\n" % i
                          for i in range(600000))


def with_body(extra):
    return MSG + extra


# --------------------------------------------------------------------------
# The table

def stage_rows():
    """421, connection closed, and stalls at every stage (table-driven)."""
    stages = [
        # (label, verb, verbs that must not follow, content may have been sent)
        ("greeting", "GREETING", ("EHLO",) + AFTER_EHLO, False),
        ("EHLO", "EHLO", AFTER_EHLO, False),
        ("MAIL", "MAIL", (), False),
        ("RCPT", "RCPT", (), False),
        ("DATA", "DATA", (), False),
        ("end of data", "EOD", (), True),
    ]
    rows = []
    for label, verb, forbid, sent in stages:
        r421 = "421 4.3.2 %s: shutting down" % label
        common = dict(forbid=forbid, no_content=not sent, not_completed=not sent,
                      delivered=None if sent else 0)
        rows.append(dict(name="421 at %s" % label, group="421",
                         server=S(rules={verb: seq(r421, close())}), exit=EX_TEMPFAIL,
                         err=["421", "4.3.2"], **common))
        rows.append(dict(name="EOF at %s" % label, group="EOF",
                         server=S(rules={verb: close()}), exit=EX_TEMPFAIL, **common))
        rows.append(dict(name="stall at %s (timeout = 2)" % label, group="stall",
                         server=S(rules={verb: stall(STALL)}), cfg={"timeout": "2"},
                         exit=EX_TEMPFAIL, max_time=10, min_time=1.5, **common))
    return rows


def auth_cfg(mech="plain", **kw):
    """AUTH without TLS for the rows about the AUTH exchange itself."""
    d = dict(auth=mech, user=USER, password=PASSWORD, allow_plaintext_auth="yes")
    d.update(kw)
    return d


AUTH_SRV = ["PIPELINING", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2"]

CASES = stage_rows() + [
    # ---- more stages: STARTTLS and AUTH, mid-reply, slow drip, stopped reader
    dict(name="421 to STARTTLS", group="421",
         server=S(extensions=["PIPELINING", "STARTTLS"],
                  rules={"STARTTLS": seq("421 4.3.2 bye", close())}),
         cfg=dict(tls="starttls"), exit=EX_TEMPFAIL, err=["421"],
         commands=[EHLO, b"STARTTLS"]),
    dict(name="421 to AUTH", group="421",
         server=S(extensions=AUTH_SRV, rules={"AUTH": seq("421 4.3.2 bye", close())}),
         cfg=auth_cfg(), exit=EX_TEMPFAIL, err=["421"], forbid=("MAIL",)),
    dict(name="EOF at STARTTLS", group="EOF",
         server=S(extensions=["PIPELINING", "STARTTLS"], rules={"STARTTLS": close()}),
         cfg=dict(tls="starttls"), exit=EX_TEMPFAIL, commands=[EHLO, b"STARTTLS"]),
    dict(name="EOF at AUTH", group="EOF", server=S(extensions=AUTH_SRV,
                                                   rules={"AUTH": close()}),
         cfg=auth_cfg(), exit=EX_TEMPFAIL, forbid=("MAIL",)),
    dict(name="EOF in the middle of a multi-line reply", group="EOF",
         server=S(rules={"EHLO": seq(raw(b"250-test.example\r\n250-PIPEL"), close())}),
         exit=EX_TEMPFAIL, forbid=AFTER_EHLO),
    dict(name="stall at STARTTLS (timeout = 2)", group="stall",
         server=S(extensions=["PIPELINING", "STARTTLS"], rules={"STARTTLS": stall(STALL)}),
         cfg=dict(tls="starttls", timeout="2"), exit=EX_TEMPFAIL, max_time=10,
         commands=[EHLO, b"STARTTLS"]),
    dict(name="stall after 334 (timeout = 2)", group="stall",
         server=S(extensions=AUTH_SRV, rules={"AUTH": ["334 VXNlcm5hbWU6", stall(STALL)]}),
         cfg=auth_cfg("login", timeout="2"), exit=EX_TEMPFAIL, max_time=10,
         forbid=("MAIL",)),
    dict(name="stall in the middle of a reply line (timeout = 2)", group="stall",
         server=S(rules={"EHLO": seq(raw(b"250-test.example\r\n250-PIPE"), stall(STALL))}),
         cfg={"timeout": "2"}, exit=EX_TEMPFAIL, max_time=10, forbid=AFTER_EHLO),
    dict(name="reply dripped one line per 1.5 s (timeout = 2)", group="stall",
         server=S(rules={"EHLO": drip(5, 1.5)}), cfg={"timeout": "2"},
         exit=EX_TEMPFAIL, max_time=5, forbid=AFTER_EHLO, no_content=True,
         why="the phase deadline must bound the whole reply, not each line"),
    dict(name="relay stops reading during DATA (timeout = 2)", group="stall",
         server=S(rules={"DATA": seq("354 go ahead", stall(STALL))}),
         cfg={"timeout": "2"}, stdin=BIG_BODY, exit=EX_TEMPFAIL, max_time=10,
         not_completed=True, delivered=0),
    dict(name="connection dropped mid-data", group="EOF",
         server=S(rules={"DATA": drop_after_data(2000)}), stdin=BIG_BODY,
         exit=EX_TEMPFAIL, not_completed=True, delivered=0),

    dict(name="421 to RCPT, no PIPELINING", group="421",
         server=S(extensions=NO_PIPE, rules={"RCPT": seq("421 4.3.2 bye", close())}),
         exit=EX_TEMPFAIL, err=["421", "4.3.2"], forbid=("DATA",), no_content=True),
    dict(name="421 to BDAT LAST (CHUNKING)", group="421",
         server=S(extensions=["PIPELINING", "CHUNKING"],
                  rules={"EOD": seq("421 4.3.2 bye", close())}),
         exit=EX_TEMPFAIL, err=["421"]),
    dict(name="EOF at BDAT LAST (CHUNKING)", group="EOF",
         server=S(extensions=["PIPELINING", "CHUNKING"], rules={"EOD": close()}),
         exit=EX_TEMPFAIL),
    dict(name="stall at BDAT LAST (CHUNKING, timeout = 2)", group="stall",
         server=S(extensions=["PIPELINING", "CHUNKING"], rules={"EOD": stall(STALL)}),
         cfg={"timeout": "2"}, exit=EX_TEMPFAIL, max_time=10),
    dict(name="greeting dripped one byte per 0.5 s (timeout = 2)", group="stall",
         server=S(rules={"GREETING": slow(b"220 " + b"x" * 40 + b"\r\n", 0.5)}),
         cfg={"timeout": "2"}, exit=EX_TEMPFAIL, max_time=5, forbid=AFTER_EHLO),

    # ---- STARTTLS stripping and response injection
    dict(name="STARTTLS not offered", group="starttls",
         server=S(extensions=["PIPELINING", "AUTH PLAIN"]),
         cfg=dict(tls="starttls", auth="plain", user=USER, password=PASSWORD),
         exit=EX_UNAVAILABLE, err=["STARTTLS"], commands=[EHLO, b"QUIT"]),
    dict(name="STARTTLS only in the EHLO greeting line, not a keyword", group="starttls",
         server=S(rules={"EHLO": raw(b"250-test.example STARTTLS\r\n250 AUTH PLAIN\r\n")}),
         cfg=dict(tls="starttls", auth="plain", user=USER, password=PASSWORD),
         exit=EX_UNAVAILABLE, commands=[EHLO, b"QUIT"]),
    dict(name="STARTTLS refused with 502", group="starttls",
         server=S(extensions=["PIPELINING", "STARTTLS", "AUTH PLAIN"],
                  rules={"STARTTLS": "502 5.5.1 not today"}),
         cfg=dict(tls="starttls", auth="plain", user=USER, password=PASSWORD),
         exit=EX_UNAVAILABLE, err=["502"], commands=[EHLO, b"STARTTLS", b"QUIT"]),
    dict(name="STARTTLS refused with 454", group="starttls",
         server=S(extensions=["PIPELINING", "STARTTLS", "AUTH PLAIN"],
                  rules={"STARTTLS": "454 4.7.0 TLS not available"}),
         cfg=dict(tls="starttls", auth="plain", user=USER, password=PASSWORD),
         exit=EX_TEMPFAIL, err=["454"], commands=[EHLO, b"STARTTLS", b"QUIT"]),
    dict(name="AUTH without TLS and without allow_plaintext_auth", group="starttls",
         server=S(extensions=["PIPELINING", "AUTH PLAIN"]),
         cfg=dict(tls="off", auth="plain", user=USER, password=PASSWORD),
         exit=EX_CONFIG, no_connect=True),
    dict(name="injection: 220 and replies in one segment", group="starttls",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"], rules={
             "STARTTLS": raw(b"220 ready\r\n250-injected\r\n250 AUTH PLAIN\r\n")}),
         cfg=trusted(auth="plain", user=USER, password=PASSWORD), exit=EX_PROTOCOL,
         err=["STARTTLS"], commands=[EHLO, b"STARTTLS"]),
    dict(name="injection: replies in a later segment, before the handshake",
         group="starttls",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"], rules={
             "STARTTLS": late_injection(b"250-injected\r\n250 AUTH PLAIN\r\n")}),
         cfg=trusted(auth="plain", user=USER, password=PASSWORD), exit=EX_PROTOCOL,
         commands=[EHLO, b"STARTTLS"]),
    dict(name="injection: bytes without CRLF after the 220", group="starttls",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"],
                       rules={"STARTTLS": raw(b"220 ready\r\n250 X")}),
         cfg=trusted(), exit=EX_PROTOCOL, commands=[EHLO, b"STARTTLS"]),
    dict(name="injection: bytes without CRLF, later segment", group="starttls",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"],
                       rules={"STARTTLS": late_injection(b"2")}),
         cfg=trusted(), exit=EX_PROTOCOL, commands=[EHLO, b"STARTTLS"]),
    dict(name="multi-line 220 to STARTTLS, nothing after it: valid", group="starttls",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"], rules={
             "STARTTLS": raw(b"220-ready\r\n220-250 AUTH PLAIN\r\n220 go ahead\r\n")}),
         cfg=trusted(), exit=EX_OK,
         commands=[EHLO, b"STARTTLS", EHLO] + ENVELOPE, check=ck_delivered_intact()),
    dict(name="multi-line 220 with extra lines after it", group="starttls",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"], rules={
             "STARTTLS": raw(b"220-ready\r\n220 go ahead\r\n250 AUTH PLAIN\r\n")}),
         cfg=trusted(auth="plain", user=USER, password=PASSWORD), exit=EX_PROTOCOL,
         commands=[EHLO, b"STARTTLS"]),
    dict(name="220 whose continuation changes code (250)", group="starttls",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"], rules={
             "STARTTLS": raw(b"220-ready\r\n250 AUTH PLAIN\r\n")}),
         cfg=trusted(), exit=EX_PROTOCOL, commands=[EHLO, b"STARTTLS"]),
    dict(name="STARTTLS offered again after TLS: not sent twice", group="starttls",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"],
                       tls_extensions=["PIPELINING", "STARTTLS"]),
         cfg=trusted(), exit=EX_OK, commands=[EHLO, b"STARTTLS", EHLO] + ENVELOPE,
         check=ck_delivered_intact()),
    dict(name="AUTH offered only after TLS", group="starttls",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"],
                       tls_extensions=["PIPELINING", "AUTH PLAIN"],
                       rules={"AUTH": handler(plain_ok)}),
         cfg=trusted(auth="auto", user=USER, password=PASSWORD), exit=EX_OK,
         commands=[EHLO, b"STARTTLS", EHLO,
                   b"AUTH PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD))] + ENVELOPE),
    dict(name="AUTH offered only before TLS: not used", group="starttls",
         server=st_srv(extensions=["PIPELINING", "AUTH PLAIN", "STARTTLS"],
                       tls_extensions=["PIPELINING"]),
         cfg=trusted(auth="plain", user=USER, password=PASSWORD), exit=EX_UNAVAILABLE,
         commands=[EHLO, b"STARTTLS", EHLO, b"QUIT"]),
    dict(name="PIPELINING offered only before TLS", group="starttls",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"],
                       tls_extensions=["ENHANCEDSTATUSCODES"]),
         cfg=trusted(), exit=EX_OK, commands=[EHLO, b"STARTTLS", EHLO] + ENVELOPE,
         check=ck_pipelined_before_tls_only),

    # ---- replies: size, framing, garbage
    dict(name="reply line of exactly 4096 bytes", group="replies",
         server=S(rules={"EHLO": raw(b"250-" + b"x" * 4092 + b"\r\n250 PIPELINING\r\n")}),
         exit=EX_OK, commands=[EHLO] + ENVELOPE, check=ck_delivered_intact()),
    dict(name="reply line of 4096 bytes, its CR and LF in separate segments",
         group="replies",
         server=S(rules={"EHLO": seq(raw(b"250-" + b"x" * 4092 + b"\r"),
                                     delay(0.3, raw(b"\n250 PIPELINING\r\n")))}),
         exit=EX_OK, commands=[EHLO] + ENVELOPE, check=ck_delivered_intact(),
         why="4096 bytes without CRLF is the documented limit"),
    dict(name="reply line of 4097 bytes", group="replies",
         server=S(rules={"EHLO": raw(b"250-" + b"x" * 4093 + b"\r\n250 PIPELINING\r\n")}),
         exit=EX_PROTOCOL, commands=[EHLO]),
    dict(name="reply of 128 lines", group="replies",
         server=S(extensions=["X-%d" % i for i in range(126)] + ["PIPELINING"]),
         exit=EX_OK, commands=[EHLO] + ENVELOPE),
    dict(name="reply of 129 lines", group="replies",
         server=S(extensions=["X-%d" % i for i in range(127)] + ["PIPELINING"]),
         exit=EX_PROTOCOL, commands=[EHLO]),
    dict(name="endless reply line (64 MiB)", group="replies",
         server=S(rules={"GREETING": endless_line(64 << 20)}), exit=EX_PROTOCOL,
         max_time=10, maxrss_kb=20 * 1024, commands=[]),
    dict(name="endless continuation lines", group="replies",
         server=S(rules={"EHLO": endless_continuation(500000)}), exit=EX_PROTOCOL,
         max_time=10, maxrss_kb=20 * 1024, commands=[EHLO]),
    dict(name="NUL bytes in reply text (-v)", group="replies",
         server=S(rules={"GREETING": raw(b"220 test\x00.example \x00ESMTP\r\n"),
                         "EHLO": raw(b"250-test.example\x00hi\r\n250-PIPELINING\r\n"
                                     b"250 X-\x00NUL\r\n")}),
         args=["-v", RCPT], exit=EX_OK, commands=[EHLO] + ENVELOPE,
         check=ck_delivered_intact()),
    dict(name="NUL byte inside the reply code", group="replies",
         server=S(rules={"MAIL": raw(b"2\x0050 ok\r\n")}), exit=EX_PROTOCOL,
         no_content=True),
    dict(name="8-bit garbage in a 451 to MAIL", group="replies",
         server=S(rules={"MAIL": raw(b"451 4.3.0 \xff\xfe\x9b2J\xc3\x28 \x80\x81\x9d\r\n")}),
         args=["-v", RCPT], exit=EX_TEMPFAIL, err=["451"], no_8bit=True,
         no_content=True),
    dict(name="ESC [ 2 J in a 550 to RCPT (-v, -X, log)", group="replies",
         server=S(rules={"RCPT": "550 5.1.1 " + ESC_2J + "no such user" + OSC52}),
         cfg=dict(log=lambda k: k.logfile), args=lambda k: ["-v", "-X", k.xfile, RCPT],
         exit=EX_NOUSER, err=["550", "5.1.1"], no_content=True, not_completed=True,
         no_8bit=True, check=ck_files_clean("transcript", "log")),
    dict(name="OSC 52 clipboard write in a 554 greeting", group="replies",
         server=S(rules={"GREETING": "554 5.7.1 " + OSC52 + " go away"}),
         exit=EX_UNAVAILABLE, err=["554"], forbid=AFTER_EHLO, no_8bit=True),
    dict(name="escapes in the success reply (-v, log)", group="replies",
         server=S(rules={"EOD": "250 2.0.0 Ok " + OSC52 + ESC_2J + " queued as X"}),
         cfg=dict(log=lambda k: k.logfile), args=["-v", RCPT], exit=EX_OK,
         check=ck_all(ck_delivered_intact(), ck_files_clean("log"))),
    dict(name="escapes in a refused recipient, partial_delivery", group="replies",
         server=S(rules={"RCPT": ["250 ok", "550 5.1.1 " + ESC_2J + "gone" + OSC52]}),
         cfg=dict(partial_delivery="yes"), args=[RCPT, "b@example.org"], exit=EX_OK,
         stderr_ok=True, no_8bit=True),
    dict(name="escapes in the AUTH keyword list (explicit mechanism)", group="replies",
         server=S(extensions=["PIPELINING", "AUTH PLAIN " + ESC_2J + OSC52]),
         cfg=auth_cfg("cram-md5"), exit=EX_UNAVAILABLE, commands=[EHLO, b"QUIT"],
         why="auth.c auth_choose quotes the server's list unsanitised"),
    dict(name="escapes in the AUTH keyword list (auth = auto)", group="replies",
         server=S(extensions=["PIPELINING", "AUTH X-" + ESC_2J + OSC52]),
         cfg=auth_cfg("auto"), exit=EX_UNAVAILABLE, commands=[EHLO, b"QUIT"]),
    dict(name="escapes in the AUTH keyword list, then 504", group="replies",
         server=S(extensions=["PIPELINING", "AUTH PLAIN " + OSC52],
                  rules={"AUTH": "504 5.5.4 unrecognized"}),
         # PLAIN's AUTH rides with MAIL, RCPT and DATA (RFC 4954 4); after
         # the refusal the 354 is answered by closing: no content
         cfg=auth_cfg("plain"), exit=EX_UNAVAILABLE, no_content=True, not_completed=True),
    dict(name="escapes in the AUTH keyword list (--check)", group="replies",
         server=S(extensions=["PIPELINING", "AUTH PLAIN " + ESC_2J + OSC52]),
         cfg=auth_cfg("cram-md5"), args=["--check"], exit=EX_UNAVAILABLE,
         stdout_ok=True, forbid=AFTER_EHLO),
    dict(name="escapes in --serverinfo output", group="replies",
         server=S(rules={"GREETING": "220 test " + OSC52 + " ESMTP",
                         "EHLO": raw(b"250-test\x1b[2J\r\n250 X-\x1b]52;c;eA==\x07\r\n")}),
         args=["--serverinfo"], exit=EX_OK, stdout_ok=True,
         commands=[EHLO, b"QUIT"]),
    dict(name="escapes in the certificate subject (--serverinfo)", group="replies",
         server=im_srv_evil(),
         cfg=dict(tls="implicit", tls_trust_file=lambda k: k.C.ca),
         args=["--serverinfo"], exit=EX_OK, stdout_ok=True, commands=[EHLO, b"QUIT"],
         check=lambda n, r, s, k: t.ok(b"CN=evil" in r.out, n + ": subject shown",
                                       "stdout: %s" % t.show(r.out, 2000))),
    dict(name="replies split one byte per segment", group="replies",
         server=S(rules={
             "GREETING": slow(b"220-test.example\r\n220 ready\r\n", 0.001),
             "EHLO": slow(b"250-test.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n", 0.001),
             "MAIL": slow(b"250 2.1.0 ok\r\n", 0.001),
             "RCPT": slow(b"250 2.1.5 ok\r\n", 0.001),
             "DATA": slow(b"354 go\r\n", 0.001),
             "EOD": slow(b"250 2.0.0 queued\r\n", 0.001)}),
         exit=EX_OK, commands=[EHLO] + ENVELOPE, check=ck_delivered_intact()),
    dict(name="replies split one byte per segment, no PIPELINING", group="replies",
         server=S(extensions=NO_PIPE, rules={
             "MAIL": slow(b"250-2.1.0 ok\r\n250 2.1.0 really\r\n", 0.001),
             "RCPT": slow(b"250 2.1.5 ok\r\n", 0.001),
             "DATA": slow(b"354 go\r\n", 0.001)}),
         exit=EX_OK, commands=[EHLO] + ENVELOPE, check=ck_delivered_intact()),

    # ---- replies out of step
    dict(name="extra '250 hi' with the greeting, before EHLO", group="desync",
         server=S(rules={"GREETING": raw(b"220 test.example ESMTP\r\n250 hi\r\n")}),
         args=["-v", RCPT], exit=EX_PROTOCOL, no_content=True, not_completed=True),
    dict(name="extra '250 hi' after the greeting, in a later segment", group="desync",
         server=S(rules={"GREETING": seq(raw(b"220 test.example ESMTP\r\n"),
                                         delay(0.2, raw(b"250 hi\r\n")))}),
         args=["-v", RCPT], exit=EX_PROTOCOL, no_content=True, not_completed=True),
    dict(name="two replies to MAIL (no PIPELINING)", group="desync",
         server=S(extensions=NO_PIPE, rules={"MAIL": raw(b"250 ok\r\n250 ok\r\n")}),
         args=["-v", RCPT], exit=EX_PROTOCOL, no_content=True, not_completed=True),
    dict(name="two replies to RCPT, the second a 354 (no PIPELINING)", group="desync",
         server=S(extensions=NO_PIPE, rules={"RCPT": raw(b"250 ok\r\n354 go ahead\r\n")}),
         args=["-v", RCPT], exit=EX_PROTOCOL, no_content=True, not_completed=True,
         why="smtp.c sends DATA and the message on a stale 354"),
    dict(name="replies for the whole pipelined group at once, then more", group="desync",
         server=S(rules={"MAIL": raw(b"250 ok\r\n250 ok\r\n354 go\r\n550 5.1.1 extra\r\n"),
                         "RCPT": "550 5.1.1 no such user",
                         "DATA": "554 5.5.1 no valid recipients"}),
         args=["-v", RCPT], exit=EX_PROTOCOL, no_content=True, not_completed=True,
         why="bytes after a 354 mean the replies are out of step"),
    dict(name="354 followed by a premature 250, the relay then refuses", group="desync",
         server=S(rules={"DATA": raw(b"354 go\r\n250 2.0.0 queued\r\n"),
                         "EOD": "554 5.7.1 message refused"}),
         args=["-v", RCPT], exit=EX_PROTOCOL, no_content=True, not_completed=True,
         why="a success read before the data was sent must not count"),

    dict(name="550 to RCPT, 354 to DATA: no content", group="desync",
         server=S(rules={"RCPT": "550 5.1.1 no such user", "DATA": "354 go ahead"}),
         exit=EX_NOUSER, no_content=True, not_completed=True),
    dict(name="550 to RCPT, no PIPELINING: no DATA", group="desync",
         server=S(extensions=NO_PIPE, rules={"RCPT": "550 5.1.1 no such user"}),
         exit=EX_NOUSER, commands=[EHLO, MAIL, RCPT_LINE, b"QUIT"]),
    dict(name="354 in reply to RCPT", group="desync",
         server=S(rules={"RCPT": "354 go ahead"}), exit=EX_PROTOCOL, no_content=True,
         not_completed=True),
    dict(name="334 in reply to MAIL", group="desync",
         server=S(extensions=NO_PIPE, rules={"MAIL": "334 VXNlcm5hbWU6"}),
         exit=EX_PROTOCOL, no_content=True, forbid=("RCPT", "DATA")),
    dict(name="235 in reply to DATA", group="desync",
         server=S(rules={"DATA": "235 2.7.0 ok"}), exit=EX_PROTOCOL, no_content=True,
         not_completed=True),

    # ---- AUTH: 334 floods and bad challenges
    dict(name="endless 334 challenges (XOAUTH2)", group="auth",
         server=S(extensions=AUTH_SRV, rules={"AUTH": "334 "}),
         cfg=auth_cfg("xoauth2", password=TOKEN), exit=EX_PROTOCOL, max_time=10,
         max_auth_lines=11, forbid=("MAIL",)),
    dict(name="endless 334 challenges (LOGIN)", group="auth",
         server=S(extensions=AUTH_SRV, rules={"AUTH": "334 UGFzc3dvcmQ6"}),
         cfg=auth_cfg("login"), exit=EX_PROTOCOL, max_time=10, max_auth_lines=11,
         forbid=("MAIL",), check=ck_one_auth_password),
    dict(name="endless multi-line 334", group="auth",
         server=S(extensions=AUTH_SRV, rules={"AUTH": raw(b"334-x\r\n" * 200 + b"334 \r\n")}),
         cfg=auth_cfg("login"), exit=EX_PROTOCOL, max_time=10, forbid=("MAIL",)),
    dict(name="invalid base64 challenge (CRAM-MD5) answered '*'", group="auth",
         server=S(extensions=AUTH_SRV, rules={"AUTH": ["334 !!not base64!!",
                                                       "501 5.7.0 aborted"]}),
         cfg=auth_cfg("cram-md5"), exit=EX_PROTOCOL,
         commands=[EHLO, b"AUTH CRAM-MD5", b"*", b"QUIT"]),
    dict(name="invalid base64 challenge with escapes (LOGIN), then 235", group="auth",
         server=S(extensions=AUTH_SRV, rules={"AUTH": ["334 " + ESC_2J + "%%%",
                                                       "235 2.7.0 ok"]}),
         cfg=auth_cfg("login"), args=["-v", RCPT], exit=EX_PROTOCOL,
         commands=[EHLO, b"AUTH LOGIN", b"*", b"QUIT"]),

    # ---- hostile local input
    dict(name="header block over 1 MiB", group="input", server=S(),
         stdin=huge_header(), exit=EX_DATAERR, no_connect=True),
    dict(name="one header line of 2 MiB", group="input", server=S(),
         stdin=long_header_line(), exit=EX_DATAERR, no_connect=True),
    dict(name="header block just under 1 MiB", group="input", server=S(),
         stdin=near_limit_header(), exit=EX_OK,
         check=ck_delivered_intact(near_limit_header())),
    dict(name="a single 100 MiB body line, streamed", group="input",
         server=S(io_timeout=30, max_data=128 << 20), cfg={"timeout": "30"},
         stdin=lambda k: big_line_input(), exit=EX_OK, max_time=60, maxrss_kb=20 * 1024,
         check=ck_big_line),
    dict(name="a single 100 MiB header line", group="input", server=S(),
         stdin=lambda k: b"X-Long: " + b"h" * BIG_LINE, exit=EX_DATAERR,
         no_connect=True, max_time=20, maxrss_kb=20 * 1024),
    dict(name="escape sequence in -f", group="input", server=S(),
         args=["-f", ESC_2J + OSC52 + "@example.org", RCPT], exit=EX_USAGE,
         no_connect=True),
    dict(name="escape sequence in a recipient", group="input", server=S(),
         args=["a" + ESC_2J + "@example.org"], exit=EX_USAGE, no_connect=True),
    dict(name="NUL bytes in the body", group="input", server=S(),
         stdin=with_body(b"nul \x00 here\n"), exit=EX_DATAERR, not_completed=True,
         err=["NUL"]),
    dict(name="NUL bytes in the body, no PIPELINING", group="input",
         server=S(extensions=NO_PIPE),
         stdin=with_body(b"nul \x00 here\n"), exit=EX_DATAERR, not_completed=True),
    dict(name="NUL bytes in the body, CHUNKING", group="input",
         server=S(extensions=["PIPELINING", "CHUNKING", "8BITMIME"]),
         stdin=with_body(b"nul \x00 here\n"), exit=EX_DATAERR, not_completed=True,
         check=ck_no_bdat_last),
    dict(name="NUL byte in a header", group="input", server=S(),
         stdin=b"To: rcpt@example.org\nSubject: a\x00b\n\n" + MARK + b"\n",
         exit=EX_DATAERR, not_completed=True),
    dict(name="invalid UTF-8 in headers passes unchanged", group="input", server=S(),
         stdin=MSG.replace(b"Subject: hostile test\n", BAD_UTF8_SUBJECT), exit=EX_OK,
         check=ck_8bit_headers),
    dict(name="message that is only headers, no final newline", group="input",
         server=S(), stdin=b"To: rcpt@example.org\nSubject: no final newline",
         exit=EX_OK, check=ck_headers_only),
    dict(name="empty message", group="input", server=S(), stdin=b"", exit=EX_OK,
         check=ck_empty),
    dict(name="-t: CR in a To header does not smuggle a command", group="input",
         server=S(), args=["-t"],
         stdin=b"To: victim@example.org\rRCPT TO:<evil@example.net>\nSubject: x\n\nbody\n",
         exit=EX_OK, check=ck_t_header_cr),
] + [
    dict(name="line break in %s" % label, group="args", server=S(), args=a,
         exit=EX_USAGE, no_connect=True)
    for label, a in [
        ("-f", ["-f", "a@example.com\r\nRCPT TO:<evil@example.net>", RCPT]),
        ("-r", ["-r", "a@example.com\nRSET", RCPT]),
        ("--from", ["--from", "a@example.com\rRSET", RCPT]),
        ("a recipient (CRLF)", [RCPT + "\r\nRSET"]),
        ("a recipient (bare CR)", ["ok@example.org", RCPT + "\rDATA"]),
        ("a recipient list", ["a@example.org,\nb@example.org"]),
        ("-F", ["-F", "Evil\r\nBcc: victim@example.org", RCPT]),
        ("-V", ["-V", "envid\r\nRSET", RCPT]),
        ("-N", ["-N", "failure\r\nRSET", RCPT]),
        ("-R", ["-R", "hdrs\nRSET", RCPT]),
        ("--host", ["--host", "127.0.0.1\r\nevil", RCPT]),
        ("--user", ["--user", USER + "\r\nRSET", RCPT]),
        ("--account", ["--account", "test\n", RCPT]),
    ]
] + [
    # ---- CR/LF in configuration values that reach the wire
    dict(name="CR in the config file's domain", group="config",
         server=S(), cfg_text=lambda k, port: base_cfg(port, domain="client\rRSET"),
         exit=EX_CONFIG, no_connect=True),
    dict(name="CR in the config file's from", group="config",
         server=S(), cfg_text=lambda k, port: base_cfg(port, **{"from": "a@example.com\rRSET"}),
         exit=EX_CONFIG, no_connect=True),
    dict(name="CR in the config file's user", group="config",
         server=S(extensions=AUTH_SRV),
         cfg_text=lambda k, port: base_cfg(port, user="u\rRSET", password=PASSWORD,
                                           auth="plain", allow_plaintext_auth="yes"),
         exit=EX_CONFIG, no_connect=True),
    dict(name="CRLF in domain through $VAR", group="config", server=S(),
         env={"PM_HOSTILE": "client.example\r\nRSET"}, cfg=dict(domain="${PM_HOSTILE}"),
         exit=(EX_CONFIG, EX_USAGE), check=ck_commands_within(("QUIT",)),
         why="refused (78) or harmless: nothing but QUIT on the wire"),
    dict(name="CRLF in from through $VAR", group="config", server=S(),
         env={"PM_HOSTILE": "a@example.com\r\nRSET"}, cfg={"from": "${PM_HOSTILE}"},
         exit=(EX_CONFIG, EX_USAGE), no_connect=True),
    dict(name="CRLF in user through $VAR (PLAIN: base64 only)", group="config",
         server=S(extensions=AUTH_SRV),
         env={"PM_HOSTILE": "u\r\nRSET"}, cfg=auth_cfg("plain", user="${PM_HOSTILE}"),
         exit=(EX_CONFIG, EX_OK),
         check=ck_commands_within(("EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"),
                                  (b"RSET",))),
    dict(name="CRLF in user through $VAR (XOAUTH2)", group="config",
         server=S(extensions=AUTH_SRV),
         env={"PM_HOSTILE": "u\r\nRSET"},
         cfg=auth_cfg("xoauth2", user="${PM_HOSTILE}", password=TOKEN),
         exit=EX_CONFIG, check=ck_commands_within(("EHLO", "QUIT"))),

    # ---- secrets
    dict(name="secrets: PLAIN over STARTTLS, -v -X log", group="secrets",
         server=st_srv(extensions=["PIPELINING", "STARTTLS"],
                       tls_extensions=["PIPELINING", "AUTH PLAIN LOGIN"],
                       rules={"AUTH": handler(plain_ok)}),
         cfg=trusted(auth="plain", user=USER, password=PASSWORD,
                     log=lambda k: k.logfile),
         args=lambda k: ["-v", "-X", k.xfile, RCPT], exit=EX_OK,
         check=ck_all(ck_server_got_secret("password"),
                      ck_no_secret("transcript", "log"))),
    dict(name="secrets: LOGIN, -v -X log", group="secrets",
         server=S(extensions=AUTH_SRV, rules={"AUTH": handler(srv_login_ok)}),
         cfg=auth_cfg("login", log=lambda k: k.logfile),
         args=lambda k: ["-v", "-X", k.xfile, RCPT], exit=EX_OK,
         check=ck_all(ck_server_got_secret("password"),
                      ck_no_secret("transcript", "log"))),
    dict(name="secrets: XOAUTH2 token over implicit TLS, -v -X log", group="secrets",
         server=im_srv(extensions=["PIPELINING", "AUTH XOAUTH2"],
                       rules={"AUTH": handler(plain_ok)}),
         cfg=dict(tls="implicit", tls_trust_file=lambda k: k.C.ca, auth="xoauth2",
                  user=USER, password=TOKEN, log=lambda k: k.logfile),
         args=lambda k: ["-v", "-X", k.xfile, RCPT], exit=EX_OK,
         check=ck_all(ck_server_got_secret("token"), ck_no_secret("transcript", "log"))),
    dict(name="secrets: OAUTHBEARER refused, -v -X log", group="secrets",
         server=S(extensions=["PIPELINING", "AUTH OAUTHBEARER"],
                  rules={"AUTH": handler(oauth_fail)}),
         cfg=auth_cfg("oauthbearer", password=TOKEN, log=lambda k: k.logfile),
         args=lambda k: ["-v", "-X", k.xfile, RCPT], exit=EX_NOPERM, forbid=("MAIL",),
         check=ck_all(ck_server_got_secret("token"), ck_no_secret("transcript", "log"))),
    dict(name="secrets: password_command child argv and environment", group="secrets",
         server=S(extensions=AUTH_SRV, rules={"AUTH": handler(plain_ok)}),
         cfg=auth_cfg("plain", password=None, password_command=lambda k: recorder(k)),
         args=lambda k: ["-v", "-X", k.xfile, RCPT], exit=EX_OK,
         check=ck_all(ck_server_got_secret("password"), ck_child_record,
                      ck_no_secret("transcript", "child"))),
    dict(name="secrets: password_command through /bin/sh -c", group="secrets",
         server=S(extensions=AUTH_SRV, rules={"AUTH": handler(plain_ok)}),
         cfg=auth_cfg("plain", password=None,
                      password_command=lambda k: recorder(k) + " | cat"),
         args=lambda k: ["-v", RCPT], exit=EX_OK,
         check=ck_all(ck_server_got_secret("password"), ck_child_record,
                      ck_no_secret("child"))),
    dict(name="secrets: queued after a 451 that follows AUTH", group="secrets",
         server=S(extensions=AUTH_SRV, connections=2,
                  rules=[{"AUTH": handler(plain_ok), "MAIL": "451 4.3.0 try later"},
                         {"AUTH": handler(plain_ok)}]),
         cfg=auth_cfg("plain", queue="on-failure", log=lambda k: k.logfile),
         queue=True, keep_server=True, args=["-v", RCPT], exit=EX_OK, stderr_ok=True,
         check=ck_queue_then_flush),
    dict(name="secrets: a password with ' ;' is refused without quoting it",
         group="secrets", server=S(),
         cfg_text=lambda k, port: base_cfg(port, password=PASSWORD + " ;x", auth="plain",
                                           user=USER, allow_plaintext_auth="yes"),
         exit=EX_CONFIG, no_connect=True, check=ck_no_secret()),
    dict(name="secrets: an unterminated quoted password is refused without quoting it",
         group="secrets", server=S(),
         cfg_text=lambda k, port: base_cfg(port, password='"' + PASSWORD, auth="plain",
                                           user=USER, allow_plaintext_auth="yes"),
         exit=EX_CONFIG, no_connect=True, check=ck_no_secret()),
    dict(name="secrets: an overlong password line is refused without quoting it",
         group="secrets", server=S(),
         cfg_text=lambda k, port: base_cfg(port, password=PASSWORD * 80, auth="plain",
                                           user=USER, allow_plaintext_auth="yes"),
         exit=EX_CONFIG, no_connect=True, check=ck_no_secret()),

    # ---- permissions of a config file holding a password (pushmail.conf(5))
    dict(name="password file 0640 root:root", group="perms", server=S(),
         cfg=auth_cfg(), perms=dict(mode=0o640), exit=EX_CONFIG, no_connect=True,
         err=["0640"]),
    dict(name="password file 0604", group="perms", server=S(),
         cfg=auth_cfg(), perms=dict(mode=0o604), exit=EX_CONFIG, no_connect=True),
    dict(name="password file 0600 owned by another user", group="perms", server=S(),
         cfg=auth_cfg(), perms=dict(mode=0o600, uid=65534), exit=EX_CONFIG,
         no_connect=True),
    # the old set-gid design's exception is gone (SPEC 9: the drop helper)
    dict(name="password file 0640 root:mail (no longer an exception)", group="perms",
         server=S(), cfg=auth_cfg(), perms=dict(mode=0o640, group="mail"),
         exit=EX_CONFIG, no_connect=True, err=["0640"]),
    dict(name="symlink to a private password file", group="perms",
         server=S(extensions=AUTH_SRV, rules={"AUTH": handler(plain_ok)}),
         cfg=auth_cfg(), perms=dict(mode=0o600, link=True), exit=EX_OK),
    dict(name="symlink to a group-readable password file", group="perms", server=S(),
         cfg=auth_cfg(), perms=dict(mode=0o640, link=True), exit=EX_CONFIG,
         no_connect=True),
    dict(name="symlink to a private password file owned by another user", group="perms",
         server=S(), cfg=auth_cfg(), perms=dict(mode=0o600, uid=65534, link=True),
         exit=EX_CONFIG, no_connect=True),
    dict(name="group-readable file without a password", group="perms",
         server=S(extensions=AUTH_SRV, rules={"AUTH": handler(plain_ok)}),
         cfg=auth_cfg(password=None, password_file=lambda k: private_pw(k)),
         perms=dict(mode=0o644), exit=EX_OK),
]


def base_cfg(port, **kw):
    d = dict(t.CONFIG_DEFAULTS)
    d["port"] = str(port)
    d.update(kw)
    return "[test]\n" + "".join("%s = %s\n" % (a, b) for a, b in d.items() if b is not None)


def recorder(k):
    """A password_command that records its own argv and environment and its
    parent's argv, then prints the password."""
    return k.script("pwcmd.sh", (
        'rec=%s\n'
        '{ printf "self: "; tr "\\0" " " < /proc/$$/cmdline; echo\n'
        '  printf "parent: "; tr "\\0" " " < /proc/$PPID/cmdline; echo\n'
        '  pp=$(awk "/^PPid:/ {print \\$2}" /proc/$PPID/status)\n'
        '  printf "grandparent: "; tr "\\0" " " < /proc/$pp/cmdline; echo\n'
        '} >> "$rec"\n'
        'tr "\\0" "\\n" < /proc/$$/environ >> "$rec.environ"\n'
        "printf '%%s\\n' '%s'\n") % (k.rec, PASSWORD))


def private_pw(k):
    path = os.path.join(k.dir, "pw")
    with open(path, "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(path, 0o600)
    return path


# --------------------------------------------------------------------------

def apply_perms(path, perms, k):
    """Give the config file the row's mode/owner; with link, return a
    symlink to it (the symlink itself is lrwxrwxrwx)."""
    os.chmod(path, perms.get("mode", 0o600))
    uid = perms.get("uid", -1)
    gid = -1
    if perms.get("group"):
        import grp
        gid = grp.getgrnam(perms["group"]).gr_gid
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)
    if perms.get("link"):
        link = os.path.join(k.dir, "config-link.ini")
        os.symlink(path, link)
        return link
    return path


def run_case(c, C):
    name = c["name"]
    server = c.get("server")
    if getattr(server, "tls", False) and C is None:
        t.skip(name, "certtool (gnutls-bin) or Python ssl not available")
        return
    if c.get("perms", {}).get("group") and not group_exists(c["perms"]["group"]):
        t.skip(name, "no '%s' group" % c["perms"]["group"])
        return
    k = K(C)
    srv = ScriptedServer(**ev(server, k)).start()
    try:
        if c.get("cfg_text"):
            cfg = t.write_config(text=c["cfg_text"](k, srv.port))
        else:
            cfg = t.write_config(port=srv.port, **{a: ev(b, k) for a, b in
                                                   c.get("cfg", {}).items()})
        if c.get("perms"):
            cfg = apply_perms(cfg, c["perms"], k)
        k.cfg = cfg
        env = t.base_env(**c.get("env", {}))
        if c.get("queue"):
            env["PUSHMAIL_QUEUE_DIR"] = k.qdir
        res = t.run_pushmail(["-C", cfg] + ev(c.get("args", [RCPT]), k),
                             stdin=ev(c.get("stdin", MSG), k), env=env,
                             new_session=True)
        if not c.get("keep_server"):
            srv.stop()      # every connection handled: the records are complete
        check_case(c, res, srv, k)
    finally:
        srv.stop()
        if c.get("perms"):
            shutil.rmtree(k.dir, True)


def group_exists(g):
    import grp
    try:
        grp.getgrnam(g)
        return True
    except KeyError:
        return False


def check_case(c, res, srv, k):
    name = c["name"]
    rec = srv.record
    info = res.describe()
    if rec:
        info += ["server commands: %s" % t.show(rec.commands, 1200),
                 "server end: %s" % rec.end]
    if srv.errors:
        info += ["server errors: %s" % srv.errors]
    if c.get("why"):
        info.append("why: %s" % c["why"])

    want = c["exit"]
    if isinstance(want, tuple):
        t.ok(res.rc in want, name + ": exit status one of %s (got %s)" % (want, res.rc),
             *info)
    else:
        t.is_eq(res.rc, want, name + ": exit status", *info)
    t.ok(not res.timed_out, name + ": pushmail finished by itself")
    t.is_eq(srv.errors, [], name + ": scripted server ran cleanly")

    # stderr/stdout: no raw control byte whatever the relay sent
    for what, blob in (("stderr", res.err), ("stdout", res.out)):
        t.is_eq(CTL_RE.findall(blob), [], name + ": no control byte on %s" % what,
                "%s: %s" % (what, t.show(blob, 1500)), *info)
    if c.get("no_8bit"):
        t.is_eq(HIGH_RE.findall(res.err), [], name + ": no 8-bit byte on stderr",
                "stderr: %s" % t.show(res.err))
    verbose = "-v" in ev(c.get("args", []), k) or "--serverinfo" in ev(c.get("args", []), k)
    if want == EX_OK and not verbose and not c.get("stderr_ok"):
        t.is_eq(res.err, b"", name + ": nothing on stderr")
    if want == EX_OK and not c.get("stdout_ok"):
        t.is_eq(res.out, b"", name + ": nothing on stdout")
    if want != EX_OK and not isinstance(want, tuple) and not verbose:
        err = res.err.strip()
        t.ok(err and b"\n" not in err, name + ": one line on stderr",
             "stderr: %s" % t.show(res.err))
    for w in c.get("err", []):
        t.ok(w.encode() in res.err, name + ": stderr says %s" % w,
             "stderr: %s" % t.show(res.err))

    cmds = rec.commands if rec else []
    verbs = [x.split(b" ")[0].split(b":")[0].upper().decode("latin-1") for x in cmds]
    if "commands" in c:
        t.is_eq(cmds, streamed(c["commands"], srv, rec),
                name + ": exactly these commands reached the server", *info)
    if c.get("forbid"):
        bad = [x for x, v in zip(cmds, verbs) if v in c["forbid"]]
        t.is_eq(bad, [], name + ": none of %s reached the server" % "/".join(c["forbid"]),
                *info)
    if c.get("no_connect"):
        t.is_eq(srv.accepted, 0, name + ": the server was never connected to", *info)
    if c.get("no_content"):
        wire = b"".join(r.received + r.pre_tls_buffer for r in srv.records)
        t.ok(MARK not in wire, name + ": no message content reached the server",
             "received: %s" % t.show(wire[-600:]), *info)
        t.ok(b"-> [message]" not in res.err,
             name + ": pushmail's own transcript shows no message sent",
             "stderr: %s" % t.show(res.err[-800:]))
    if c.get("not_completed"):
        bad = [x.data_raw[-40:] for x in txns(srv)
               if x.data_complete or (x.data_raw or b"").endswith(b"\r\n.\r\n")]
        t.is_eq(bad, [], name + ": no final dot / BDAT LAST after the failure", *info)
    if c.get("delivered") is not None:
        t.is_eq(len(done(srv)), c["delivered"],
                name + ": %d message(s) delivered" % c["delivered"], *info)
    if "max_time" in c:
        t.ok(res.elapsed < c["max_time"],
             name + ": finished in %.1fs (< %ss)" % (res.elapsed, c["max_time"]), *info)
    if "min_time" in c:
        t.ok(res.elapsed >= c["min_time"],
             name + ": (the stall was waited for: %.1fs)" % res.elapsed)
    if "maxrss_kb" in c:
        t.ok(t.SANITIZED or 0 < res.maxrss_kb < c["maxrss_kb"],
             name + ": memory bounded (peak RSS %d KiB < %d KiB)" % (
                 res.maxrss_kb, c["maxrss_kb"]))
    if "max_auth_lines" in c:
        n = sum(1 for x in cmds if x.upper().startswith(b"AUTH")) + \
            sum(1 for x, v in zip(cmds, verbs) if v not in (
                "EHLO", "HELO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT", "RSET"))
        t.ok(0 < n <= c["max_auth_lines"],
             name + ": at most %d lines in the AUTH exchange (got %d)" % (
                 c["max_auth_lines"], n))
    if c.get("check"):
        if rec is None and want == EX_OK:
            t.ok(False, name + ": server was connected to", *info)
        else:
            c["check"](name, res, srv, k)


def main():
    t.require_pushmail()
    C = certs.get()
    only = os.environ.get("HOSTILE_ONLY")
    for c in CASES:
        if only and only not in c["name"] and only != c.get("group"):
            continue
        run_case(c, C)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
