#!/usr/bin/env python3
"""smuggle.py - SMTP smuggling inputs (CVE-2023-51764/5/6) and dot-stuffing.

Every odd end-of-line / dot sequence is put in a message body, in the middle
(followed by a smuggled SMTP transaction) and at the very end of the input.
Each message goes once to the scripted server and once through --dry-run.
Expected on the wire (SPEC 5): CRLF, bare LF and bare CR each become CRLF;
lines starting with "." get another "."; a missing final newline is added;
the data ends with the only "\\r\\n.\\r\\n".
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer  # noqa: E402

RCPT = "rcpt@example.org"
# Every header pushmail might add is present, so the message must arrive
# byte for byte as normalised.
HEAD = (b"From: sender@example.com\n"
        b"To: rcpt@example.org\n"
        b"Subject: smuggling\n"
        b"Date: Thu, 1 Jan 2026 00:00:00 +0000\n"
        b"Message-ID: <smuggle@example.com>\n"
        b"\n")
SMUGGLED = (b"MAIL FROM:<evil@example.net>\r\n"
            b"RCPT TO:<victim@example.org>\r\n"
            b"DATA\r\n"
            b"smuggled message\r\n")

SEQUENCES = [b"\n.\n", b"\n.\r", b"\r.\n", b"\r.\r", b"\n.\r\n", b"\r.\r\n",
             b"\r\n.\n", b"\r\n.\r", b"\r\n.\r\r\n"]


def inputs():
    for s in SEQUENCES:
        yield "%r in the middle" % s, HEAD + b"before" + s + SMUGGLED + b"after\n"
        yield "%r at the end" % s, HEAD + b"before" + s
    yield "lone '.' and '..' lines", HEAD + b".\n..\nx\n.\r\n..\r\n.x\n"
    yield "body starting with '.'", HEAD + b".\r\nafter\r\n"
    yield "no final newline", HEAD + b"line one\nlast line without newline"
    yield "final '.' without newline", HEAD + b"text\n."
    yield "bare CR at end of input", HEAD + b"text\r"
    yield "empty body", HEAD
    yield "CR CR LF LF", HEAD + b"a\r\r\n\nb\n"


def check_data(name, data, msg):
    """The bytes that follow DATA: no bare CR/LF, CRLF.CRLF only at the end,
    and un-stuffing gives the normalised input back."""
    t.is_eq(t.bare_line_ends(data), [], name + ": no bare CR or LF", "data: %s" % t.show(data))
    end = data.find(b"\r\n.\r\n")
    t.ok(data.endswith(b"\r\n.\r\n") and end == len(data) - 5,
         name + ": CRLF.CRLF only at the very end", "data: %s" % t.show(data))
    want = t.dot_stuff(t.normalise(msg))
    t.is_eq(data, want, name + ": exactly the normalised, dot-stuffed input")


DRY_LINE = re.compile(rb"^(MAIL FROM:<[^>]*>[^\r\n]*|RCPT TO:<[^>]*>[^\r\n]*)$")


def parse_dry_run(out):
    """stdout of --dry-run -> (command lines before DATA, bytes after DATA)."""
    cmds = []
    pos = 0
    while pos < len(out):
        nl = out.find(b"\n", pos)
        if nl < 0:
            return cmds, None
        line = out[pos:nl].rstrip(b"\r")
        pos = nl + 1
        if line == b"DATA":
            return cmds, out[pos:]
        cmds.append(line)
    return cmds, None


def via_server(name, msg):
    with ScriptedServer() as srv:
        cfg = t.write_config(port=srv.port)
        res = t.run_pushmail(["-C", cfg, RCPT], stdin=msg)
        srv.stop()
    rec = srv.record
    t.is_eq(res.rc, 0, name + ": delivered (exit 0)", *res.describe())
    cmds = rec.commands if rec else []
    t.is_eq([c.split(b" ", 1)[0].split(b":")[0] for c in cmds],
            [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"QUIT"],
            name + ": exactly one transaction on the wire", "commands: %s" % t.show(cmds))
    txns = [x for x in rec.transactions if x.data_complete] if rec else []
    if t.is_eq(len(txns), 1, name + ": server received one complete DATA"):
        check_data(name, txns[0].data_raw, msg)
        return txns[0].data_raw
    return None


def via_dry_run(name, msg, server_data):
    with ScriptedServer() as srv:
        cfg = t.write_config(port=srv.port)
        res = t.run_pushmail(["-C", cfg, "--dry-run", RCPT], stdin=msg)
        srv.stop()
    t.is_eq(res.rc, 0, name + ": --dry-run exit 0", *res.describe())
    t.is_eq(srv.accepted, 0, name + ": --dry-run connects to nothing")
    cmds, data = parse_dry_run(res.out)
    t.ok(len(cmds) == 2 and all(DRY_LINE.match(c) for c in cmds)
         and cmds[0].startswith(b"MAIL FROM:<sender@example.com>")
         and cmds[1] == b"RCPT TO:<%s>" % RCPT.encode(),
         name + ": --dry-run shows MAIL FROM and RCPT TO", "stdout: %s" % t.show(res.out))
    if t.ok(data is not None, name + ": --dry-run shows DATA", "stdout: %s" % t.show(res.out)):
        check_data(name + " (dry-run)", data, msg)
        if server_data is not None:
            t.is_eq(data, server_data, name + ": --dry-run bytes equal what the server got")


def main():
    t.require_pushmail()
    for name, msg in inputs():
        data = via_server(name, msg)
        via_dry_run(name, msg, data)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
