#!/usr/bin/env python3
"""compose.py - one-off mail from the shell (issue 19): pushmail composes the
message from --subject, --body, --attach, --cc, --bcc, --header, --reply-to.

Three groups of cases:
- --dry-run: the composed message is parsed with Python's email package
  (structure, encodings, headers folded at 78, no line over 998);
- the scripted SMTP server: SIZE= known in advance, a large attachment with
  memory flat, bad input (exit 66 / 64 and nothing reached the server);
- Postfix (tests/postfixlib.py, root only, as in tests/postfix.py): what
  arrived in the Maildir round-trips exactly (non-ASCII Subject, long and
  8-bit body lines, a random binary attachment, a text attachment with a
  non-ASCII name, PNG/PDF/text types found by libmagic, Bcc not in headers).
"""

import email
import email.policy
import os
import pty
import re
import shutil
import struct
import sys
import tempfile
import traceback
import zlib

sys.path.insert(0, os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer  # noqa: E402

EX_OK, EX_USAGE, EX_NOINPUT = 0, 64, 66
RCPT = "rcpt@example.org"
SUBJECT = "Grüße aus Köln — ünïcödé subject that is long enough to need folding twice over"
LONG_LINE = "x" * 2000
BODY = "Hello,\n8-bit: grüße, naïve café\n" + LONG_LINE + "\n.leading dot\nlast line\n"


# --- test files -------------------------------------------------------------------

def png_bytes():
    """A valid 1x1 RGBA PNG."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00\xff")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def pdf_bytes():
    """A tiny valid PDF (one empty page)."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>"]
    out, offs = b"%PDF-1.4\n", []
    for i, o in enumerate(objs, 1):
        offs.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offs)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


class Files:
    def __init__(self):
        self.dir = os.path.join(t.tmpdir(), "files")
        os.makedirs(self.dir, exist_ok=True)
        # random bytes after a fixed start no magic number begins with (a
        # random "MZ" or "\x7fELF" would make libmagic say something else)
        self.binary = b"\x00\xfe\x01\xfd" + os.urandom(300000 - 4)
        self.text = "Zeile 1: äöü\nline 2\n".encode()
        self.png, self.pdf = png_bytes(), pdf_bytes()
        self.paths = {}
        for key, name, data in (("binary", "random.bin", self.binary),
                                ("text", "übersicht résumé.txt", self.text),
                                ("png", "pixel.png", self.png),
                                ("pdf", "doc.pdf", self.pdf)):
            self.paths[key] = self.write(name, data)

    def write(self, name, data):
        p = os.path.join(self.dir, name)
        with open(p, "wb") as f:
            f.write(data)
        return p


# --- helpers --------------------------------------------------------------------------

def dry_run(args, stdin=b"", **kw):
    cfg = t.write_config(port=t.closed_port())
    return t.run_pushmail(["-C", cfg, "--dry-run"] + args, stdin=stdin, **kw)


def dry_message(out):
    """(envelope lines, message bytes) of --dry-run output."""
    env, _, data = out.partition(b"DATA\n")
    if data.endswith(b".\r\n"):
        data = data[:-3]
    lines = data.split(b"\r\n")
    # un-stuffed, and with LF line endings as a mail store keeps it
    data = b"\n".join(l[1:] if l.startswith(b".") else l for l in lines)
    return env.decode(errors="replace").splitlines(), data


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def head_of(raw):
    return re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]


def check_lines(name, raw, trace_ok=False):
    """No line over 998; header lines of the whole message (every part) at
    most 78, except trace fields the relay added."""
    lines = re.split(rb"\r?\n", raw)
    t.ok(max(len(l) for l in lines) <= 998, name + ": no line over 998 octets",
         "longest: %d" % max(len(l) for l in lines))
    long_head = []
    in_head, cur = True, None
    for l in lines:
        if in_head:
            if l == b"":
                in_head = False
                continue
            if l[:1] not in (b" ", b"\t"):
                cur = l.split(b":", 1)[0].lower()
            if len(l) > 78 and not (trace_ok and cur in (b"received", b"return-path",
                                                         b"delivered-to", b"x-original-to")):
                long_head.append(l)
        elif l.startswith(b"--=_pushmail_"):
            in_head = True
    t.ok(not long_head, name + ": header lines fold at 78", *[t.show(l) for l in long_head])


def body_text(part):
    return part.get_content()


def check_full(name, raw, f, trace_ok=False):
    """The composed message with every kind of part, parsed by Python."""
    m = parse(raw)
    t.is_eq(str(m["subject"]), SUBJECT, name + ": non-ASCII Subject round-trips")
    t.ok(m.get("bcc") is None and b"bcc@" not in head_of(raw).lower(),
         name + ": Bcc not in the headers")
    t.is_eq(m.get_content_type(), "multipart/mixed", name + ": multipart/mixed")
    parts = list(m.iter_parts())
    t.is_eq(len(parts), 5, name + ": text and four attachments")
    if len(parts) != 5:
        return
    t.is_eq(parts[0].get_content_type(), "text/plain", name + ": text part first")
    t.is_eq(parts[0]["content-transfer-encoding"], "quoted-printable",
            name + ": 8-bit text with long lines is quoted-printable")
    t.is_eq(body_text(parts[0]), BODY, name + ": body text round-trips exactly")
    want = [("random.bin", "application/octet-stream", f.binary),
            ("übersicht résumé.txt", "text/plain", f.text),
            ("pixel.png", "image/png", f.png),
            ("doc.pdf", "application/pdf", f.pdf)]
    for p, (fname, ctype, data) in zip(parts[1:], want):
        t.is_eq(p.get_filename(), fname, name + ": file name %r" % fname)
        t.is_eq(p.get_content_type(), ctype, name + ": %s found for %s" % (ctype, fname))
        t.is_eq(p["content-transfer-encoding"], "base64", name + ": %s in base64" % fname)
        t.ok(p.get_payload(decode=True) == data,
             name + ": %s round-trips byte for byte (%d bytes)" % (fname, len(data)))
    t.is_eq(parts[2].get_content_charset(), "utf-8", name + ": text attachment charset")
    check_lines(name, raw, trace_ok)


def full_args(f, rcpt, cc, bcc):
    return ["--subject", SUBJECT, "--body", BODY, "--cc", cc, "--bcc", bcc,
            "-F", "Jörg Müller",
            "--attach", f.paths["binary"], "--attach", f.paths["text"],
            "--attach", f.paths["png"], "--attach", f.paths["pdf"], rcpt]


# --- dry-run cases ----------------------------------------------------------------------

def case_dry_full(f):
    name = "dry-run, all kinds of parts"
    r = dry_run(full_args(f, "Bob <bob@example.org>", "Zoë <cc@example.org>",
                          "bcc@example.org"))
    t.is_eq(r.rc, EX_OK, name + ": exit 0", *r.describe())
    env, raw = dry_message(r.out)
    t.is_eq(env[1:], ["RCPT TO:<bob@example.org>", "RCPT TO:<cc@example.org>",
                      "RCPT TO:<bcc@example.org>"], name + ": --cc and --bcc are recipients")
    check_full(name, raw, f)
    m = parse(raw)
    t.is_eq(str(m["cc"]), "Zoë <cc@example.org>", name + ": Cc display name (RFC 2047)")
    t.is_eq(str(m["from"]), "Jörg Müller <sender@example.com>",
            name + ": From from the account, -F name encoded")
    t.ok(m["date"] is not None and m["message-id"] is not None,
         name + ": Date and Message-ID added")
    t.ok(all(b < 128 for b in raw), name + ": the message is 7-bit clean")


def case_dry_single(f):
    name = "dry-run, text only"
    r = dry_run(["--subject", "plain", "--body", "line one\nline two", RCPT])
    t.is_eq(r.rc, EX_OK, name + ": exit 0", *r.describe())
    _, raw = dry_message(r.out)
    m = parse(raw)
    t.is_eq(m.get_content_type(), "text/plain", name + ": a single text part")
    t.is_eq(m["content-transfer-encoding"], "7bit", name + ": short ASCII lines are 7bit")
    t.is_eq(m.get_content(), "line one\nline two\n", name + ": body (final newline added)")
    t.is_eq(str(m["to"]), RCPT, name + ": To from the recipient argument")
    t.is_eq(m["mime-version"], "1.0", name + ": MIME-Version")


def case_dry_stdin_body(f):
    name = "dry-run, body from a non-terminal stdin"
    r = dry_run(["--subject", "s", RCPT], stdin="from stdin: ça va\n".encode())
    _, raw = dry_message(r.out)
    m = parse(raw)
    t.is_eq(r.rc, EX_OK, name + ": exit 0", *r.describe())
    t.is_eq(m.get_content(), "from stdin: ça va\n", name + ": stdin is the body")
    t.is_eq(m["content-transfer-encoding"], "quoted-printable",
            name + ": 8-bit text is quoted-printable")
    r = dry_run(["--body", "-", RCPT], stdin=b"dash\n")
    t.is_eq(parse(dry_message(r.out)[1]).get_content(), "dash\n", "--body - reads stdin")
    bf = f.write("body.txt", b"from a file\n")
    r = dry_run(["--body-file", bf, RCPT])
    t.is_eq(parse(dry_message(r.out)[1]).get_content(), "from a file\n",
            "--body-file FILE is the body")


def case_dry_charset(f):
    name = "body text that is not UTF-8"
    bf = f.write("latin1.txt", "Grüße aus Köln, café\n".encode("latin-1"))
    r = dry_run(["--body-file", bf, RCPT])
    m = parse(dry_message(r.out)[1])
    t.is_eq(r.rc, EX_OK, name + ": exit 0", *r.describe())
    t.is_eq(m.get_content_charset(), "iso-8859-1", name + ": charset found by libmagic")
    t.is_eq(m.get_content(), "Grüße aus Köln, café\n", name + ": decodes to the text")
    r = dry_run(["--body", "plain ascii", RCPT])
    t.is_eq(parse(dry_message(r.out)[1]).get_content_charset(), "utf-8",
            "ASCII body text: charset utf-8")


def case_dry_tty(f):
    name = "terminal stdin means an empty body"
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "rb", buffering=0) as tty:
            r = dry_run(["--subject", "tty", RCPT], stdin_file=tty, timeout=20)
    finally:
        os.close(master)
    t.ok(not r.timed_out, name + ": no wait for input", *r.describe())
    t.is_eq(r.rc, EX_OK, name + ": exit 0", *r.describe())
    m = parse(dry_message(r.out)[1])
    t.is_eq(m.get_content(), "", name + ": empty body")


def case_dry_closed_stdin(f):
    name = "closed stdin means an empty body"
    cfg = t.write_config(port=t.closed_port())
    r = t.run(["sh", "-c", 'exec "$0" "$@" <&-', t.PUSHMAIL, "-C", cfg, "--dry-run",
               "--subject", "closed", RCPT], timeout=20)
    t.is_eq(r.rc, EX_OK, name + ": exit 0", *r.describe())
    t.is_eq(parse(dry_message(r.out)[1]).get_content(), "", name + ": empty body")
    # the attachment opened first takes fd 0: it must not become the body
    r = t.run(["sh", "-c", 'exec "$0" "$@" <&-', t.PUSHMAIL, "-C", cfg, "--dry-run",
               "--attach", f.paths["pdf"], RCPT], timeout=20)
    parts = list(parse(dry_message(r.out)[1]).iter_parts())
    t.ok(r.rc == EX_OK and len(parts) == 1 and parts[0].get_content_type() == "application/pdf",
         name + ", with an attachment: only the attachment", *r.describe())


def case_dry_headers(f):
    name = "dry-run, --header, --reply-to, forced type"
    r = dry_run(["--header", "X-Ticket: 1234", "--header", "X-Note: ärger",
                 "--reply-to", "Team Ä <team@example.org>",
                 "--attach", f.paths["text"] + ":application/x-custom", "--body", "b",
                 "-t", RCPT])
    t.is_eq(r.rc, EX_OK, name + ": exit 0", *r.describe())
    m = parse(dry_message(r.out)[1])
    t.is_eq(m["x-ticket"], "1234", name + ": ASCII header as given")
    t.is_eq(str(m["x-note"]), "ärger", name + ": non-ASCII header encoded (RFC 2047)")
    t.is_eq(str(m["reply-to"]), "Team Ä <team@example.org>", name + ": Reply-To")
    parts = list(m.iter_parts())
    t.ok(len(parts) == 2 and parts[1].get_content_type() == "application/x-custom",
         name + ": FILE:type/subtype forces the type")
    t.ok(len(parts) == 2 and parts[1].get_filename() == "übersicht résumé.txt",
         name + ": forced type keeps the file name")


def case_dry_empty_body_attachment(f):
    name = "dry-run, attachment and no body"
    r = dry_run(["--attach", f.paths["png"], RCPT])
    t.is_eq(r.rc, EX_OK, name + ": exit 0", *r.describe())
    m = parse(dry_message(r.out)[1])
    parts = list(m.iter_parts())
    t.ok(len(parts) == 1 and parts[0].get_content_type() == "image/png",
         name + ": only the attachment part")


def case_usage(f):
    for args, what in ((["--subject", "a\nb"], "--subject with a line break"),
                       (["--header", "X-A: a\nb"], "--header with a line break"),
                       (["--header", "no colon here"], "--header without a colon"),
                       (["--header", "Content-Type: text/html"], "--header Content-Type"),
                       (["--cc", "not <an address"], "--cc that does not parse")):
        r = dry_run(args + ["--body", "x", RCPT])
        t.is_eq(r.rc, EX_USAGE, what + ": EX_USAGE", *r.describe())
    r = dry_run(["--body", "multi\nline\r\nbody", RCPT])
    t.is_eq(r.rc, EX_OK, "--body may span lines", *r.describe())
    r = dry_run(["--body=a\nb", RCPT])
    t.is_eq(r.rc, EX_OK, "--body=TEXT may span lines", *r.describe())
    r = dry_run(["--body", "x", "--body-file", "/etc/hostname", RCPT])
    t.is_eq(r.rc, EX_USAGE, "--body with --body-file: EX_USAGE", *r.describe())
    for mode in (["-bs"], ["-q"], ["-bp"], ["--check"]):
        r = dry_run(mode + ["--subject", "s"])
        t.is_eq(r.rc, EX_USAGE, "%s with --subject: EX_USAGE" % mode[0], *r.describe())
    r = dry_run(["-f", "--body", "x\ny"])
    t.is_eq(r.rc, EX_USAGE, "a line break in -f's value, after the word --body, is refused",
            *r.describe())


# --- scripted server -----------------------------------------------------------------

def run_server(args, srv_kw=None, cfg_keys=None, **kw):
    srv = ScriptedServer(**(srv_kw or {})).start()
    try:
        cfg = t.write_config(port=srv.port, **(cfg_keys or {}))
        res = t.run_pushmail(["-C", cfg] + args, **kw)
    finally:
        srv.stop()
    return res, srv


def case_size_and_memory(f):
    name = "24 MiB attachment"
    path = f.write("big.bin", os.urandom(24 << 20))
    res, srv = run_server(["--subject", "big", "--body", "see attachment", "--attach", path, RCPT],
                          srv_kw=dict(extensions=["PIPELINING", "SIZE 100000000", "8BITMIME"],
                                      max_data=64 << 20, io_timeout=30),
                          cfg_keys={"timeout": "30"}, data_limit=16 << 20, timeout=120)
    info = t.server_diag(res, srv)
    t.is_eq(res.rc, EX_OK, name + ": exit 0 with the data segment limited to 16 MiB", *info)
    msgs = srv.messages()
    if not t.is_eq(len(msgs), 1, name + ": delivered", *info):
        return
    mail = srv.record.transactions[0].mail
    m = re.search(rb" SIZE=(\d+)", mail)
    t.is_eq(int(m.group(1)) if m else None, len(msgs[0]),
            name + ": SIZE= is the exact size, known in advance")
    parts = list(parse(msgs[0]).iter_parts())
    with open(path, "rb") as fh:
        t.ok(len(parts) == 2 and parts[1].get_payload(decode=True) == fh.read(),
             name + ": round-trips byte for byte")
    os.unlink(path)


def case_unreadable_as_nobody():
    """Root reads any file: the unreadable case runs as nobody (--dry-run, no
    configuration: the attachment is checked before any is looked for)."""
    name = "attachment unreadable (as nobody)"
    if not shutil.which("runuser"):
        t.skip(name, "no runuser")
        return
    d = tempfile.mkdtemp(prefix="pushmail-compose-")
    try:
        os.chmod(d, 0o755)
        path = os.path.join(d, "secret.bin")
        with open(path, "wb") as fh:
            fh.write(b"secret")
        os.chmod(path, 0o600)
        r = t.run(["runuser", "-u", "nobody", "--", "env", "-i", "HOME=" + d,
                   "PATH=/usr/bin:/bin", t.PUSHMAIL, "--dry-run", "--subject", "s",
                   "--attach", path, RCPT], timeout=20)
        t.is_eq(r.rc, EX_NOINPUT, name + ": EX_NOINPUT", *r.describe())
        t.ok(path.encode() in r.err and b"ermission denied" in r.err,
             name + ": the message names the file and why", *r.describe())
        t.is_eq(r.out, b"", name + ": nothing printed (nothing composed)")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def case_bad_input(f):
    d = os.path.join(t.tmpdir(), "bad")
    os.makedirs(d, exist_ok=True)
    fifo = os.path.join(d, "fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    unreadable = f.write("secret.bin", b"x")
    os.chmod(unreadable, 0)
    cases = [("missing", os.path.join(d, "nope.pdf")), ("a directory", d), ("a FIFO", fifo)]
    if os.geteuid() != 0:
        cases.append(("unreadable", unreadable))
    else:
        case_unreadable_as_nobody()
    qdir = os.path.join(t.tmpdir(), "badq")
    for what, path in cases:
        for queue in ("never", "always"):
            env = t.base_env(PUSHMAIL_QUEUE_DIR=qdir)
            res, srv = run_server(["--subject", "s", "--body", "b", "--attach", f.paths["png"],
                                   "--attach", path, RCPT], cfg_keys={"queue": queue},
                                  env=env, timeout=20)
            name = "attachment %s (queue = %s)" % (what, queue)
            info = t.server_diag(res, srv)
            t.is_eq(res.rc, EX_NOINPUT, name + ": EX_NOINPUT", *info)
            t.ok(path.encode() in res.err, name + ": the message names the file", *info)
            t.ok(srv.record is None, name + ": nothing reached the server", *info)
            queued = [x for _, _, fs in os.walk(qdir) for x in fs]
            t.ok(not queued, name + ": nothing queued", "queue: %r" % queued)
    res, srv = run_server(["--body-file", os.path.join(d, "nope.txt"), RCPT])
    t.is_eq(res.rc, EX_NOINPUT, "missing --body-file: EX_NOINPUT", *t.server_diag(res, srv))
    t.ok(srv.record is None, "missing --body-file: nothing reached the server")


def case_size_limit(f):
    name = "attachment over the relay's SIZE limit"
    res, srv = run_server(["--subject", "s", "--attach", f.paths["binary"], RCPT],
                          srv_kw=dict(extensions=["PIPELINING", "SIZE 100000"]))
    info = t.server_diag(res, srv)
    t.is_eq(res.rc, 69, name + ": EX_UNAVAILABLE", *info)
    t.ok(srv.record is not None and not any(c.startswith((b"MAIL", b"DATA"))
                                            for c in srv.record.commands),
         name + ": refused before MAIL (the size is known in advance)", *info)


def case_short_read(f):
    """A file that turns out shorter than its size (truncated while being
    sent; a sysfs attribute says 4096 bytes and holds a few) must not go out
    as a message cut short: no end of data, nothing queued."""
    path = "/sys/kernel/profiling"
    try:
        st = os.stat(path)
        with open(path, "rb") as fh:
            short = len(fh.read()) < st.st_size
    except OSError:
        short = False
    if not short:
        t.skip("attachment shorter than its size", "no %s to stand for one" % path)
        return
    qdir = os.path.join(t.tmpdir(), "shortq")
    for queue in ("never", "always"):
        name = "attachment shorter than its size (queue = %s)" % queue
        res, srv = run_server(["--subject", "s", "--body", "b", "--attach", path, RCPT],
                              cfg_keys={"queue": queue},
                              env=t.base_env(PUSHMAIL_QUEUE_DIR=qdir), timeout=20)
        info = t.server_diag(res, srv)
        t.is_eq(res.rc, 74, name + ": EX_IOERR", *info)
        t.ok(path.encode() in res.err, name + ": the message names the file", *info)
        t.is_eq(srv.messages(), [], name + ": no message reached its end of data", *info)
        queued = [x for _, _, fs in os.walk(qdir) for x in fs]
        t.ok(not queued, name + ": nothing queued", "queue: %r" % queued)


def run_tty_stderr(argv, env, timeout=60):
    """Run argv with stderr on a pseudo-terminal; returns (rc, what the
    terminal received)."""
    import select
    import subprocess
    import time
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=slave, env=env)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:   # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    try:
        rc = p.wait(max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    os.close(master)
    return rc, out


def case_progress(f):
    """The relay holds the DATA reply for 1.5 s, so the send takes over a
    second: a terminal gets the progress line, cleared at the end; a pipe
    never does."""
    from smtpserver import delay
    path = f.write("progress.bin", os.urandom(3 << 20))
    srv_kw = dict(rules={"DATA": delay(1.5, "354 go ahead")},
                  extensions=["PIPELINING", "SIZE 100000000", "8BITMIME"])
    args = ["--subject", "p", "--attach", path, RCPT]
    srv = ScriptedServer(**srv_kw).start()
    try:
        cfg = t.write_config(port=srv.port, timeout="20")
        rc, tty = run_tty_stderr([t.PUSHMAIL, "-C", cfg] + args, t.base_env())
    finally:
        srv.stop()
    name = "progress on a terminal"
    t.is_eq(rc, EX_OK, name + ": exit 0", t.show(tty))
    t.is_eq(len(srv.messages()), 1, name + ": delivered")
    t.ok(re.search(rb"\rpushmail: [0-9.]+ [KMG]?i?B of 4\.[0-9] MiB \(\d+%\), [^\r]*/s",
                   tty) is not None, name + ": bytes of total and rate, redrawn in place",
         t.show(tty))
    t.ok(tty.endswith(b"\r\x1b[K"), name + ": the line is cleared at the end", t.show(tty))
    res, srv = run_server(args, srv_kw=srv_kw, cfg_keys={"timeout": "20"}, timeout=60)
    t.is_eq(res.rc, EX_OK, "progress, stderr not a terminal: exit 0", *t.server_diag(res, srv))
    t.is_eq(res.err, b"", "progress, stderr not a terminal: nothing on stderr")
    srv = ScriptedServer(**srv_kw).start()
    try:
        cfg = t.write_config(port=srv.port, timeout="20")
        rc, tty = run_tty_stderr([t.PUSHMAIL, "-C", cfg, "-v"] + args, t.base_env())
    finally:
        srv.stop()
    t.ok(rc == EX_OK and b"\x1b[K" not in tty and b"DATA" in tty,
         "progress: not with -v (the conversation is shown instead)", t.show(tty[-300:]))


def case_bcc_wire(f):
    name = "Bcc over SMTP"
    res, srv = run_server(["--subject", "s", "--body", "b", "--bcc", "hidden@example.org",
                           "--cc", "c@example.org", RCPT])
    info = t.server_diag(res, srv)
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *info)
    msgs = srv.messages()
    rcpts = [x[0] for x in srv.record.transactions[0].rcpts] if msgs else []
    t.ok(b"RCPT TO:<hidden@example.org>" in rcpts, name + ": Bcc is a recipient", *info)
    t.ok(msgs and b"hidden@" not in msgs[0], name + ": Bcc appears nowhere in the message")


# --- Postfix ------------------------------------------------------------------------------

def postfix_cases(f):
    import postfixlib
    ci = os.environ.get("CI") == "true"
    if not postfixlib.find_postfix() or os.geteuid() != 0:
        why = "postfix not installed" if not postfixlib.find_postfix() else "needs root"
        if ci:
            t.ok(False, "Postfix interop: " + why)
        else:
            t.skip("Postfix interop", why)
        return
    tmp = tempfile.mkdtemp(prefix="pushmail-compose-")
    os.chmod(tmp, 0o755)
    pf = postfixlib.PostfixInstance(tmp, users=("user", "cc", "bcc"))
    failed_before = t._failed
    try:
        pf.start()
        cfg = t.write_config(text="[pf]\nhost = 127.0.0.1\nport = %d\ntls = off\n"
                             "auth = off\nfrom = sender@test.example\n" % pf.port)
        r = t.run_pushmail(["-C", cfg] + full_args(f, "User <user@test.example>",
                                                   "cc@test.example", "bcc@test.example"),
                           timeout=120)
        t.is_eq(r.rc, EX_OK, "Postfix: exit 0", *r.describe())
        for user in ("user", "cc", "bcc"):
            try:
                got = pf.wait_for_maildir(1, 30, user=user)
            except TimeoutError as e:
                t.ok(False, "Postfix: delivered to %s" % user, str(e))
                continue
            got = got[0] if isinstance(got, list) else got
            if user == "user":
                check_full("Postfix", got, f, trace_ok=True)
            else:
                t.ok(parse(got)["subject"] == SUBJECT, "Postfix: %s got the message" % user)
        t.is_eq(pf.queue_count(), 0, "Postfix queue empty at the end")
    except postfixlib.PostfixError as e:
        t.ok(False, "Postfix could not start: %s" % e)
    finally:
        pf.stop()
        if t._failed > failed_before:
            t.diag("kept %s" % tmp, pf.log_tail(30))
        else:
            shutil.rmtree(tmp, ignore_errors=True)


CASES = [case_dry_full, case_dry_single, case_dry_stdin_body, case_dry_tty, case_dry_charset, case_dry_closed_stdin, case_dry_headers,
         case_dry_empty_body_attachment, case_usage, case_bcc_wire, case_bad_input, case_short_read, case_size_limit,
         case_size_and_memory, case_progress, postfix_cases]


def main():
    t.require_pushmail()
    f = Files()
    for case in CASES:
        try:
            case(f)
        except Exception:
            t.ok(False, "%s raised" % case.__name__, traceback.format_exc())
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
