#!/usr/bin/env python3
"""security.py - the findings of the hostile review of issue 13, one group
each, every one reproduced at the commit before its fix (SECURITY.md,
"Issue 13").

  idn       ESMTP parameter injection through IDN conversion: fullwidth
            characters that UTS #46 maps to '>', ' ', '=' ... in the domain
            of the sender or a recipient, from every source (-t headers,
            --read-envelope-from, -f, arguments, -bs MAIL/RCPT, alias
            values).  Refused before anything is sent: 64 for arguments, 65
            for headers and the aliases file, a 5xx reply in -bs.
  bs        -bs ends DATA only at <CRLF>.<CRLF>; a "." line ended by a bare
            LF (or CR) is data, so the smuggling sequences of smuggle.py
            give exactly one message with the smuggled text inside it.
  dump      the process is not dumpable and its core limit is 0 from the
            start, while the configured password is in memory and the
            message is still being read (before any secret is fetched).
  resolver  a resolver that never answers is bounded by the connect
            timeout (exit 75), using a private mount and network namespace
            whose resolv.conf points at a local UDP socket that swallows
            every query (skipped where unshare is not permitted).
  dedupe    80,000 -t recipients in --dry-run finish (a 60 s hang guard,
            not a speed assertion), first-seen order kept, duplicates
            (domain compared caselessly, local part exactly) dropped.
"""

import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer  # noqa: E402
import smuggle  # noqa: E402

EX_OK, EX_USAGE, EX_DATAERR, EX_TEMPFAIL = 0, 64, 65, 75

# U+FF1E FULLWIDTH GREATER-THAN, U+3000 IDEOGRAPHIC SPACE, U+FF1D FULLWIDTH
# EQUALS SIGN: UTS #46 without STD3 rules maps them to '>', ' ', '='.
HOSTILE = "bob@example.test\uff1e\u3000notify\uff1dsuccess"
HOSTILE_B = HOSTILE.encode()
# U+FF20 FULLWIDTH COMMERCIAL AT, U+FF0C FULLWIDTH COMMA: '@' and ','.
HOSTILE2 = "ceo@example.test\uff20evil.test\uff0cx"
BODY = b"Subject: x\n\nbody\n"


def wire_text(srv):
    return b"".join(b"".join(r.segments) for r in srv.records)


def send(args, stdin, keys=None, cfg_path=None, **server):
    srv = ScriptedServer(**server).start()
    try:
        cfg = cfg_path or t.write_config(port=srv.port, **(keys or {}))
        res = t.run_pushmail(["-C", cfg] + list(args), stdin=stdin)
    finally:
        srv.stop()
    return res, srv


def no_injection(name, res, srv, want):
    info = t.server_diag(res, srv)
    t.check_exit(name, res, want, info)
    wire = wire_text(srv)
    t.ok(b"MAIL" not in wire and b"RCPT" not in wire,
         name + ": no MAIL or RCPT reached the relay", "wire: %s" % t.show(wire))
    t.ok(b"notify=" not in wire.lower() and b"notify=" not in res.out.lower(),
         name + ": no injected parameter anywhere", "wire: %s" % t.show(wire),
         "stdout: %s" % t.show(res.out))


def test_idn():
    name = "idn: -t --dry-run, the reported case"
    res = t.run_pushmail(["-C", t.write_config(port=t.closed_port()), "-t", "--dry-run"],
                         stdin=b"To: " + HOSTILE_B + b"\n" + BODY)
    t.check_exit(name, res, EX_DATAERR, res.describe())
    t.ok(b"RCPT" not in res.out and b"notify" not in res.out.lower(),
         name + ": no RCPT TO shown", "stdout: %s" % t.show(res.out))

    rows = [
        ("idn: -t recipient (header)", ["-t"], b"To: " + HOSTILE_B + b"\n" + BODY,
         EX_DATAERR),
        ("idn: -t Cc with fullwidth '@' and ','", ["-t"],
         b"To: ok@example.org\nCc: " + HOSTILE2.encode() + b"\n" + BODY, EX_DATAERR),
        ("idn: --read-envelope-from From header", ["--read-envelope-from", "-t"],
         b"From: " + HOSTILE_B + b"\nTo: ok@example.org\n" + BODY, EX_DATAERR),
        ("idn: -f sender", ["-f", HOSTILE, "ok@example.org"], BODY, EX_USAGE),
        ("idn: -f sender, fullwidth '@'", ["-f", HOSTILE2, "ok@example.org"], BODY,
         EX_USAGE),
        ("idn: recipient argument", [HOSTILE], BODY, EX_USAGE),
        ("idn: recipient argument in an address list",
         ["ok@example.org, \"Bob\" <%s>" % HOSTILE], BODY, EX_USAGE),
    ]
    for name, args, stdin, want in rows:
        res, srv = send(args, stdin, keys={"from": None})
        no_injection(name, res, srv, want)

    name = "idn: a good IDN still goes out as A-labels"
    res, srv = send(["bob@b\u00fccher.example"], BODY)
    t.check_exit(name, res, EX_OK, t.server_diag(res, srv))
    rc = srv.record.transactions[0].rcpts if srv.record and srv.record.transactions else []
    t.ok(any(b"xn--bcher-kva.example" in x[0] for x in rc),
         name + ": RCPT TO:<bob@xn--bcher-kva.example>", "rcpts: %s" % t.show(rc))

    name = "idn: alias value"
    apath = os.path.join(t.tmpdir(), "aliases-idn")
    with open(apath, "wb") as f:
        f.write(b"bob: " + HOSTILE_B + b"\n")
    res, srv = send(["bob"], BODY, keys={"aliases": apath})
    no_injection(name, res, srv, EX_DATAERR)

    name = "idn: -bs MAIL FROM and RCPT TO"
    session = (b"EHLO client.example\r\n"
               b"MAIL FROM:<" + HOSTILE2.encode() + b">\r\n"
               b"MAIL FROM:<app@example.com>\r\n"
               b"RCPT TO:<" + HOSTILE_B + b">\r\n"
               b"RCPT TO:<" + HOSTILE2.encode() + b">\r\n"
               b"DATA\r\n"
               b"QUIT\r\n")
    res, srv = send(["-bs"], session)
    codes = [ln[:3] for ln in res.out.split(b"\r\n") if ln[3:4] == b" "]
    t.is_eq(codes, [b"220", b"250", b"553", b"250", b"553", b"553", b"554", b"221"],
            name + ": 553 to the hostile MAIL and RCPTs, 554 to DATA",
            "stdout: %s" % t.show(res.out))
    no_injection(name, res, srv, EX_OK)


# --------------------------------------------------------------------------
# -bs smuggling

HEAD = (b"From: app@example.com\r\n"
        b"To: user@example.org\r\n"
        b"Subject: smuggling through -bs\r\n"
        b"Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n"
        b"Message-ID: <bs-smuggle@example.com>\r\n"
        b"\r\n")
SMUGGLED = (b"MAIL FROM:<ceo@example.com>\r\n"
            b"RCPT TO:<victim@example.org>\r\n"
            b"DATA\r\n"
            b"smuggled message\r\n")
SEQUENCES = smuggle.SEQUENCES   # the same odd end-of-line / dot sequences


def bs_session(body):
    return (b"EHLO client.example\r\nMAIL FROM:<app@example.com>\r\n"
            b"RCPT TO:<user@example.org>\r\nDATA\r\n" + body +
            b"\r\n.\r\nQUIT\r\n")


def test_bs():
    for seq in SEQUENCES:
        name = "bs: %r then a smuggled transaction" % seq
        body = HEAD + b"before" + seq + SMUGGLED + b"after"
        res, srv = send(["-bs"], bs_session(body), connections=3)
        info = t.server_diag(res, srv)
        t.check_exit(name, res, EX_OK, info)
        codes = [ln[:3] for ln in res.out.split(b"\r\n") if ln[3:4] == b" "]
        t.is_eq(codes, [b"220", b"250", b"250", b"250", b"354", b"250", b"221"],
                name + ": one transaction in the -bs session",
                "stdout: %s" % t.show(res.out))
        txns = [x for r in srv.records for x in r.transactions]
        t.is_eq([x.mail.split(b" ")[0] for x in txns], [b"MAIL"],
                name + ": exactly one message reached the relay", *info)
        if not txns:
            continue
        x = txns[0]
        t.ok(x.mail.startswith(b"MAIL FROM:<app@example.com>"), name + ": its sender",
             "MAIL: %s" % t.show(x.mail))
        t.is_eq([r[0] for r in x.rcpts], [b"RCPT TO:<user@example.org>"],
                name + ": its only recipient")
        t.ok(x.data_complete, name + ": its data complete")
        data = x.data_raw or b""
        t.is_eq(t.bare_line_ends(data), [], name + ": no bare CR or LF on the wire",
                "data: %s" % t.show(data))
        t.ok(data.find(b"\r\n.\r\n") == len(data) - 5,
             name + ": CRLF.CRLF only at the very end", "data: %s" % t.show(data))
        msg = x.message or b""
        t.ok(b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
             b"smuggled message\r\nafter\r\n" in msg,
             name + ": the smuggled text is data of the one message",
             "message: %s" % t.show(msg))

    name = "bs: a lone '.' line ended by LF is kept as data"
    body = HEAD + b"one\n.\ntwo\r\n..three"
    res, srv = send(["-bs"], bs_session(body), connections=3)
    txns = [x for r in srv.records for x in r.transactions]
    t.check_exit(name, res, EX_OK, t.server_diag(res, srv))
    if t.is_eq(len(txns), 1, name + ": one message"):
        t.is_eq(txns[0].message, HEAD + b"one\r\n.\r\ntwo\r\n.three\r\n",
                name + ": '.' kept, '..three' un-stuffed")
        t.ok(b"\r\n..\r\ntwo" in (txns[0].data_raw or b""),
             name + ": the '.' line is dot-stuffed on the wire",
             "data: %s" % t.show(txns[0].data_raw))


# --------------------------------------------------------------------------
# core dumps

def proc_owner(pid):
    """Owner of /proc/PID/status: root for a process that is not dumpable
    (proc(5); the /proc/PID directory itself keeps the real owner)."""
    try:
        return os.stat("/proc/%d/status" % pid).st_uid
    except OSError:
        return None


def reading_stdin(pid):
    """The process is blocked in read(0, ...) (syscall 0 on x86-64, 63 on
    arm64/riscv): it has its configuration and waits for the message."""
    try:
        with open("/proc/%d/syscall" % pid) as f:
            fields = f.read().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] in ("0", "63") and int(fields[1], 16) == 0


def core_limit(pid):
    try:
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max core file size"):
                    return line.split()[4:6]
    except OSError:
        pass
    return None


def test_dump():
    name = "dump: not dumpable while the configured password is held"
    # As root, /proc/PID of any process is owned by root; run pushmail as
    # nobody so that root ownership means "not dumpable" (proc(5)).
    root = os.geteuid() == 0
    uid = 65534 if root else os.geteuid()
    if root and not shutil.which("setpriv"):
        t.skip(name, "running as root without setpriv")
        return
    d = os.path.join(t.tmpdir(), "dump")
    os.mkdir(d)
    os.chmod(t.tmpdir(), 0o755)
    cfg = os.path.join(d, "config.ini")
    with open(cfg, "w") as f:
        f.write("[test]\nhost = 127.0.0.1\nport = %d\ntls = off\nauth = plain\n"
                "allow_plaintext_auth = yes\nuser = u\npassword = dump-secret-7\n"
                "queue = never\nfrom = a@example.com\ndomain = c.example\n"
                "timeout = 3\n" % t.closed_port())
    os.chmod(cfg, 0o600)
    if root:
        os.chown(d, uid, uid)
        os.chown(cfg, uid, uid)
    argv = [t.PUSHMAIL, "-C", cfg, "rcpt@example.org"]
    if root:
        argv = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid,
                "--clear-groups", "--"] + argv
    env = t.base_env(HOME=d, XDG_CONFIG_HOME=d, XDG_STATE_HOME=d, XDG_CACHE_HOME=d,
                     PUSHMAIL_QUEUE_DIR=os.path.join(d, "q"))
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 10
        waiting = False
        while time.monotonic() < deadline and p.poll() is None:
            if os.readlink("/proc/%d/exe" % p.pid) == os.path.realpath(t.PUSHMAIL) \
                    and reading_stdin(p.pid):
                waiting = True
                break
            time.sleep(0.01)
        owner, limit = proc_owner(p.pid), core_limit(p.pid)
        t.ok(waiting, name + ": pushmail is reading the message",
             "exit %s" % p.poll())
        t.is_eq(owner, 0, name + ": /proc/PID/status owned by root (PR_SET_DUMPABLE 0)",
                "running as uid %d" % uid)
        t.is_eq(limit, ["0", "0"], name + ": core file size limit 0")
    finally:
        p.kill()
        out, err = p.communicate(timeout=10)
    t.ok(b"dump-secret-7" not in out + err, name + ": password not printed")


# --------------------------------------------------------------------------
# resolver

SWALLOW = r'''
import os, socket, subprocess, sys
if subprocess.call(["ip", "link", "set", "lo", "up"]) != 0:
    sys.exit(99)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))           # queries arrive and are never answered
if subprocess.call(["mount", "--bind", sys.argv[1], "/etc/resolv.conf"]) != 0:
    sys.exit(99)
p = subprocess.Popen(sys.argv[2:])
sys.exit(p.wait())
'''


def test_resolver():
    name = "resolver: a lookup that never ends is bounded by the connect timeout"
    unshare = shutil.which("unshare")
    ip = shutil.which("ip") or os.path.exists("/usr/sbin/ip")
    if not unshare or not ip:
        t.skip(name, "needs unshare(1) and ip(8)")
        return
    probe = t.run([unshare, "-rmn", "true"], timeout=10)
    if probe.rc != 0:
        t.skip(name, "unshare -rmn not permitted here: %s" % t.show(probe.err))
        return
    d = t.tmpdir()
    rconf = os.path.join(d, "resolv.conf")
    with open(rconf, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:30 attempts:5\n")
    helper = os.path.join(d, "swallow.py")
    with open(helper, "w") as f:
        f.write(SWALLOW)
    cfg = t.write_config(port=25, host="relay.never-answers.test", timeout="3")
    env = t.base_env(PATH="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))
    res = t.run([unshare, "-rmn", sys.executable, helper, rconf, t.PUSHMAIL, "-C", cfg,
                 "rcpt@example.org"], stdin=BODY, env=env, timeout=30)
    if res.rc == 99:
        t.skip(name, "could not set up the namespace: %s" % t.show(res.err))
        return
    t.ok(not res.timed_out, name + ": ends within 30 s (timeout = 3)", *res.describe())
    t.check_exit(name, res, EX_TEMPFAIL, res.describe())
    t.ok(b"relay.never-answers.test" in res.err, name + ": stderr names the host",
         "stderr: %s" % t.show(res.err))


# --------------------------------------------------------------------------
# de-duplication

def test_dedupe():
    name = "dedupe: 80,000 -t recipients in --dry-run"
    n = 80000
    addrs = ["%x@e.t" % i for i in range(n)]
    # duplicates: the domain compared caselessly, the local part exactly
    dups = ["%x@E.T" % i for i in range(0, n, 97)]
    distinct = ["%X@e.t" % i for i in range(10, 16)]   # "A@e.t" is not "a@e.t"
    head = []
    for k, chunk in enumerate(range(0, n, 20000)):
        part = addrs[chunk:chunk + 20000]
        lines = [", ".join(part[i:i + 40]) for i in range(0, len(part), 40)]
        head.append(("To: " if k % 2 == 0 else "Cc: ").encode() + b",\n ".join(
            x.encode() for x in lines))
    head.append(b"Bcc: " + ", ".join(dups + distinct).encode())
    msg = b"\n".join(head) + b"\nSubject: many\n\nx\n"
    res = t.run_pushmail(["-C", t.write_config(port=t.closed_port()), "-t",
                          "--dry-run"], stdin=msg, timeout=60)
    t.ok(not res.timed_out, name + ": finished within the 60 s guard", *res.describe()[:1])
    t.check_exit(name, res, EX_OK, res.describe()[:1] + ["stderr: %s" % t.show(res.err)])
    got = re.findall(rb"^RCPT TO:<([^>]*)>", res.out, re.M)
    want = [a.encode() for a in addrs + distinct]
    t.is_eq(len(got), len(want), name + ": %d distinct recipients" % len(want))
    t.ok(got == want, name + ": first-seen order, duplicates dropped",
         "first difference at %s" % next((i for i, (a, b) in enumerate(zip(got, want))
                                          if a != b), None))


def main():
    t.require_pushmail()
    groups = sys.argv[1:] or ["idn", "bs", "dump", "resolver", "dedupe"]
    for g in groups:
        globals()["test_" + g]()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
