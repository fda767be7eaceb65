#!/usr/bin/env python3
"""sendmail.py - pushmail as a true drop-in /usr/sbin/sendmail (SPEC 1, 2, 4, 5).

Every test runs pushmail the way a real caller does (cron, PHP, git
send-email, mutt, sudo, mdadm, logwatch, apt-listchanges, symfony/mailer's
-bs, mailq, newaliases) against the scripted SMTP server, and asserts the
exit status, the envelope the server recorded and the exact message bytes.
Then: -bs sessions, aliases, -t header parsing, SMTPUTF8 / 8BITMIME / IDN,
the mail log, -X, secrets, --dry-run and contrib/pushmail.ini.

SENDMAIL_ONLY=substring runs the groups whose name contains it.
"""

import base64
import os
import re
import select
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer  # noqa: E402

EX_OK, EX_USAGE, EX_DATAERR = 0, 64, 65

MAILDOMAIN = "example.net"
DSN_EXTS = ["PIPELINING", "SIZE 10485760", "8BITMIME", "DSN", "ENHANCEDSTATUSCODES"]
NO_8BIT_EXTS = ["PIPELINING", "SIZE 10485760", "ENHANCEDSTATUSCODES"]
UTF8_EXTS = ["PIPELINING", "SIZE 10485760", "8BITMIME", "SMTPUTF8",
             "ENHANCEDSTATUSCODES"]

DATE_RE = re.compile(rb"^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} "
                     rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                     rb"\d{4} \d\d:\d\d:\d\d [+-]\d{4}$")
MSGID_RE = re.compile(rb"^Message-ID: <[^<>@\s]+@[A-Za-z0-9.-]+>$")
UNDISCLOSED = b"To: undisclosed-recipients:;"


# --------------------------------------------------------------------------
# Helpers

def sub_dir(name):
    """A fresh directory under the suite's private temporary directory."""
    path = os.path.join(t.tmpdir(), name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def write_file(name, data, mode=0o600):
    path = os.path.join(t.tmpdir(), name)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)
    return path


def read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def queue_env(name):
    """base_env with a queue directory of its own (created by pushmail,
    which insists on mode 0700)."""
    path = os.path.join(t.tmpdir(), name)
    shutil.rmtree(path, ignore_errors=True)
    return t.base_env(PUSHMAIL_QUEUE_DIR=path)


def queued_files(env):
    d = env["PUSHMAIL_QUEUE_DIR"]
    out = []
    for sub in ("new", "failed"):
        p = os.path.join(d, sub)
        if os.path.isdir(p):
            out += [os.path.join(sub, n) for n in os.listdir(p)]
    return out


def send(args, stdin, cfg=None, server=None, env=None, argv0=None, **kw):
    """Run pushmail (or argv0, a link to it) against a fresh ScriptedServer.
    Returns (result, server).  cfg: keys for write_config, or a path."""
    srv = ScriptedServer(**(server or {})).start()
    try:
        if not isinstance(cfg, str):
            cfg = t.write_config(port=srv.port, **(cfg or {}))
        argv = [argv0 or t.PUSHMAIL, "-C", cfg] + list(args)
        if "stdin_file" in kw:
            res = t.run(argv, env=env, **kw)
        else:
            res = t.run(argv, stdin=stdin, env=env, **kw)
    finally:
        srv.stop()
    return res, srv


def info(res, srv=None):
    out = res.describe()
    if srv is not None:
        for rec in srv.records:
            out.append("server commands: %s" % t.show(rec.commands, 1500))
        if srv.errors:
            out.append("server errors: %s" % srv.errors)
    return out


def done_txns(srv):
    return [x for r in srv.records for x in r.transactions if x.data_complete]


def strip_size(line):
    """A MAIL line without its SIZE= parameter (declared only for a
    regular-file stdin; these tests pipe)."""
    return re.sub(rb" SIZE=\d+", b"", line or b"")


def strip_streamed(line, want):
    """strip_size, and without BODY=8BITMIME when `want` has no BODY=: a piped
    message with queue = never is declared 8-bit wherever the relay offers it,
    since it cannot be scanned before MAIL (RFC 6152 allows that; section 5
    checks BODY= itself)."""
    line = strip_size(line)
    return line if b" BODY=" in want else line.replace(b" BODY=8BITMIME", b"")


def field_name(f):
    return f.split(b":", 1)[0].strip().lower()


def head_fields(msg):
    """(header fields, each with its continuation lines joined by CRLF,
    body) of a CRLF message."""
    i = msg.find(b"\r\n\r\n")
    head, body = (msg, b"") if i < 0 else (msg[:i], msg[i + 4:])
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields, body


def expect_ok(name, res, srv=None, stderr_empty=True):
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *info(res, srv))
    if stderr_empty:
        t.is_eq(res.err, b"", name + ": nothing on stderr")
    if srv is not None:
        t.is_eq(srv.errors, [], name + ": scripted server ran cleanly")


def check_envelope(name, srv, mail, rcpts):
    """One transaction whose MAIL line is `mail` (SIZE= aside) and whose
    RCPT lines are `rcpts` (addresses, or whole lines), in order."""
    txns = done_txns(srv)
    if not t.is_eq(len(txns), 1, name + ": exactly one message delivered",
                   "commands: %s" % [t.show(r.commands, 1500) for r in srv.records]):
        return None
    x = txns[0]
    t.is_eq(strip_streamed(x.mail, mail), mail, name + ": envelope sender (MAIL line)")
    t.is_eq([l for l, _ in x.rcpts], [b"RCPT TO:<%s>" % r if b"<" not in r else r
                                      for r in rcpts],
            name + ": envelope recipients (RCPT lines)")
    return x


def check_message(name, txn, sent, drop=(), added=()):
    """The delivered message: the input normalised to CRLF with the fields
    named in `drop` removed, every other field byte-identical and in order,
    then exactly the `added` fields (each a regex or exact bytes), then the
    body unchanged.  Also: DATA correctly dot-stuffed, no bare CR/LF."""
    if txn is None:
        return
    want_f, want_b = head_fields(t.normalise(sent))
    want_f = [f for f in want_f if field_name(f) not in drop]
    got_f, got_b = head_fields(txn.message)
    t.is_eq(got_f[:len(want_f)], want_f,
            name + ": header fields kept byte-identical, in order")
    extra = got_f[len(want_f):]
    ok = len(extra) == len(added) and all(
        (a.match(e) if hasattr(a, "match") else a == e) for a, e in zip(added, extra))
    t.ok(ok, name + ": added fields: %s" % (
        ", ".join(a.pattern[1:].split(b":")[0].decode() if hasattr(a, "match")
                  else a.decode("utf-8", "replace") for a in added) or "none"),
         "got:  %s" % t.show(extra), "want: %s" % t.show(
             [a.pattern if hasattr(a, "match") else a for a in added]))
    t.is_eq(got_b, want_b, name + ": body delivered as normalised")
    t.is_eq(txn.data_raw, t.dot_stuff(txn.message), name + ": DATA dot-stuffed")
    t.is_eq(t.bare_line_ends(txn.data_raw), [], name + ": no bare CR/LF in DATA")


# --------------------------------------------------------------------------
# 1. Real callers' command lines (SPEC 1)

CRONIE_MSG = (b"From: \"(Cron Daemon)\" <alice>\n"
              b"To: alice\n"
              b"Subject: Cron <alice@host1> /home/alice/bin/backup\n"
              b"MIME-Version: 1.0\n"
              b"Content-Type: text/plain; charset=UTF-8\n"
              b"Auto-Submitted: auto-generated\n"
              b"Precedence: bulk\n"
              b"X-Cron-Env: <SHELL=/bin/sh>\n"
              b"X-Cron-Env: <HOME=/home/alice>\n"
              b"X-Cron-Env: <LOGNAME=alice>\n"
              b"\n"
              b"backup: 3 files copied\n"
              b".\n"
              b"backup: done\n")

DEBIAN_CRON_MSG = (b"Subject: Cron <root@host1> test -x /usr/sbin/anacron || "
                   b"run-parts --report /etc/cron.daily\n"
                   b"MIME-Version: 1.0\n"
                   b"Content-Type: text/plain; charset=UTF-8\n"
                   b"Content-Transfer-Encoding: 8bit\n"
                   b"X-Cron-Env: <SHELL=/bin/sh>\n"
                   b"X-Cron-Env: <LOGNAME=root>\n"
                   b"\n"
                   b"/etc/cron.daily/logrotate:\n"
                   b"error: skipping \"/var/log/app.log\"\n")

# PHP's mail() writes To and Subject with LF, the script's additional
# headers with CRLF, then the body: mixed line endings are normal.
PHP_MSG = (b"To: customer@example.org\n"
           b"Subject: Your order #1042\n"
           b"X-PHP-Originating-Script: 33:order.php\n"
           b"From: Shop <shop@example.com>\r\n"
           b"Reply-To: support@example.com\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=UTF-8\r\n"
           b"\n"
           b"Thank you for your order.\r\n"
           b".\n"
           b"..\r\n"
           b"Shop team")                    # no final newline

GIT_MSG = (b"From: Dev Eloper <dev@example.com>\n"
           b"To: list@example.org\n"
           b"Cc: Maintainer <maint@example.org>\n"
           b"Subject: [PATCH v2 1/2] parser: accept folded headers\n"
           b"Date: Sun, 29 Nov 2026 18:04:05 +0100\n"
           b"Message-ID: <20261129170405.4242-1-dev@example.com>\n"
           b"X-Mailer: git-send-email 2.39.5\n"
           b"In-Reply-To: <cover.1764435845.git.dev@example.com>\n"
           b"References: <cover.1764435845.git.dev@example.com>\n"
           b"MIME-Version: 1.0\n"
           b"Content-Transfer-Encoding: 8bit\n"
           b"\n"
           b"Signed-off-by: Dev Eloper <dev@example.com>\n"
           b"---\n"
           b" .mailmap | 1 +\n"
           b"diff --git a/.mailmap b/.mailmap\n"
           b"--- a/.mailmap\n"
           b"+++ b/.mailmap\n"
           b"@@ -1 +1,2 @@\n"
           b" Dev <dev@example.com>\n"
           b"+.\n"
           b"-- \n"
           b"2.39.5\n")

MUTT_MSG = (b"Date: Mon, 30 Nov 2026 09:15:00 +0100\n"
            b"From: A <a@x.example>\n"
            b"To: to+tag@example.org\n"
            b"Bcc: hidden@example.org\n"
            b"Subject: dsn\n"
            b"Message-ID: <mutt.1@x.example>\n"
            b"MIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=us-ascii\n"
            b"Content-Disposition: inline\n"
            b"\n"
            b"hello\n")
MUTT_ARGS = ["-oem", "-oi", "-B8BITMIME", "-f", "a@x.example", "-N", "failure,delay",
             "-R", "hdrs", "--", "to+tag@example.org", "hidden@example.org"]

SUDO_MSG = (b"To: root\n"
            b"From: root\n"
            b"Auto-Submitted: auto-generated\n"
            b"Subject: *** SECURITY information for host1 ***\n"
            b"\n"
            b"host1 : Nov 30 01:00:00 : mallory : user NOT in sudoers ; "
            b"TTY=pts/0 ; PWD=/home/mallory ; USER=root ; COMMAND=/bin/sh\n"
            b".\n"
            b".hidden\n")

MDADM_MSG = (b"From: mdadm monitoring <root>\n"
             b"To: root\n"
             b"Subject: Fail event on /dev/md0:host1\n"
             b"\n"
             b"This is an automatically generated mail message from mdadm\n"
             b"running on host1\n"
             b"\n"
             b"A Fail event had been detected on md device /dev/md0.\n"
             b".\n"
             b"Faithfully yours, etc.\n")

LOGWATCH_MSG = (b"To: root\n"
                b"From: Logwatch <root>\n"
                b"Subject: Logwatch for host1 (Linux)\n"
                b"Auto-Submitted: auto-generated\n"
                b"MIME-Version: 1.0\n"
                b"Content-Transfer-Encoding: 7bit\n"
                b"Content-Type: text/plain; charset=\"iso-8859-1\"\n"
                b"\n"
                b" ################### Logwatch 7.8 (01/22/23) ####################\n"
                b"        Processing Initiated: Mon Nov 30 06:25:01 2026\n"
                b".\n"
                b" ###################### Logwatch End #########################\n")

APT_MSG = (b"Auto-Submitted: auto-generated\n"
           b"Subject: apt-listchanges: news for host1\n"
           b"To: root\n"
           b"MIME-Version: 1.0\n"
           b"Content-Type: text/plain; charset=\"us-ascii\"\n"
           b"Content-Transfer-Encoding: 7bit\n"
           b"\n"
           b"openssl (3.0.15-1~deb12u1) bookworm; urgency=medium\n"
           b"\n"
           b"  * New upstream release.\n")

RECORDED = {}   # name -> (MAIL line, RCPT lines) for the final report


def qualified(msg, *names):
    """msg as pushmail sends it with maildomain: in the address fields of the
    header block, each bare local name in `names` gets @MAILDOMAIN (as
    <name> or as a whole value), nothing else changes."""
    head, sep, body = msg.partition(b"\n\n")
    out = []
    for line in head.split(b"\n"):
        fname = line.split(b":", 1)[0].lower()
        if fname in (b"from", b"to", b"cc", b"reply-to", b"sender"):
            for n in names:
                line = line.replace(b"<%s>" % n, b"<%s@%s>" % (n, MAILDOMAIN.encode()))
                line = re.sub(rb"(: |, )%s(?=[, ]|$)" % re.escape(n),
                              rb"\g<1>%s@%s" % (n, MAILDOMAIN.encode()), line)
        out.append(line)
    return b"\n".join(out) + sep + body


def remember(name, srv):
    txns = done_txns(srv)
    if txns:
        RECORDED[name] = (txns[0].mail, [l for l, _ in txns[0].rcpts])


def test_callers():
    md = {"maildomain": MAILDOMAIN}

    name = "cronie -FCronDaemon -i -odi -oem -oi -t -f alice"
    res, srv = send(["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "alice"],
                    CRONIE_MSG, md)
    expect_ok(name, res, srv)
    remember("cronie", srv)
    # cronie passes the crontab owner's login name: a bare sender must be
    # qualified like a bare recipient, or relays refuse MAIL FROM:<alice>.
    x = check_envelope(name, srv, b"MAIL FROM:<alice@example.net>",
                       [b"alice@example.net"])
    check_message(name, x, qualified(CRONIE_MSG, b"alice"), added=(DATE_RE, MSGID_RE))

    name = "Debian cron -FCronDaemon -i -B8BITMIME -oem root"
    res, srv = send(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
                    DEBIAN_CRON_MSG, md)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>",
                       [b"root@example.net"])
    check_message(name, x, DEBIAN_CRON_MSG,
                  added=(DATE_RE, MSGID_RE, b"From: CronDaemon <sender@example.com>",
                         UNDISCLOSED))

    name = "PHP -t -i (mixed line endings, no final newline)"
    res, srv = send(["-t", "-i"], PHP_MSG)
    expect_ok(name, res, srv)
    remember("PHP", srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>",
                       [b"customer@example.org"])
    check_message(name, x, PHP_MSG, added=(DATE_RE, MSGID_RE))

    name = "git send-email -i rcpt1 rcpt2"
    res, srv = send(["-i", "list@example.org", "maint@example.org"], GIT_MSG)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>",
                       [b"list@example.org", b"maint@example.org"])
    check_message(name, x, GIT_MSG)
    if x:
        t.is_eq(x.message, t.normalise(GIT_MSG),
                name + ": complete message byte-identical (nothing to add)")

    name = "mutt -oem -oi -B8BITMIME -f a -N failure,delay -R hdrs -- (DSN offered)"
    res, srv = send(MUTT_ARGS, MUTT_MSG, server={"extensions": DSN_EXTS})
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<a@x.example> RET=HDRS", [
        b"RCPT TO:<to+tag@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;to+2Btag@example.org",
        b"RCPT TO:<hidden@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;hidden@example.org"])
    check_message(name, x, MUTT_MSG, drop=(b"bcc",))

    name = "mutt ... -N failure,delay -R hdrs (DSN not offered)"
    res, srv = send(MUTT_ARGS, MUTT_MSG)
    expect_ok(name, res, srv, stderr_empty=False)
    err = res.err.strip()
    t.ok(err and b"\n" not in err and b"DSN" in err and b"warning" in err,
         name + ": one warning line about DSN on stderr", "stderr: %s" % t.show(res.err))
    x = check_envelope(name, srv, b"MAIL FROM:<a@x.example>",
                       [b"to+tag@example.org", b"hidden@example.org"])
    check_message(name, x, MUTT_MSG, drop=(b"bcc",))

    for tool, msg in (("sudo", SUDO_MSG), ("mdadm", MDADM_MSG),
                      ("logwatch", LOGWATCH_MSG)):
        name = "%s -t (lone '.' line in the body)" % tool
        res, srv = send(["-t"], msg, md)
        expect_ok(name, res, srv)
        x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>",
                           [b"root@example.net"])
        check_message(name, x, qualified(msg, b"root"), added=(DATE_RE, MSGID_RE))
        if x:
            t.ok(b"\r\n..\r\n" in x.data_raw and x.data_raw.endswith(b"\r\n.\r\n"),
                 name + ": the lone dot went out as '..', the message continued",
                 "data: %s" % t.show(x.data_raw))

    name = "apt-listchanges -oi -t"
    res, srv = send(["-oi", "-t"], APT_MSG, md)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"root@example.net"])
    check_message(name, x, qualified(APT_MSG, b"root"),
                  added=(DATE_RE, MSGID_RE, b"From: sender@example.com"))


def test_options():
    name = "unknown option -Z"
    res, srv = send(["-Z", "rcpt@example.org"], b"Subject: x\n\nbody\n")
    t.is_eq(res.rc, EX_USAGE, name + ": exit 64", *info(res, srv))
    t.ok(b"-Z" in res.err, name + ": stderr names -Z", "stderr: %s" % t.show(res.err))
    t.ok(re.search(rb"(?m)^usage: pushmail ", res.err), name + ": usage line on stderr",
         "stderr: %s" % t.show(res.err))
    t.is_eq(srv.accepted, 0, name + ": nothing connected")

    name = "-oXyz -Bfoo -m -n -G -U -h 5 -A c -O Foo=bar accepted"
    args = ["-oXyz", "-Bfoo", "-m", "-n", "-G", "-U", "-h", "5", "-A", "c", "-O",
            "Foo=bar", "rcpt@example.org"]
    msg = b"From: s@example.com\nTo: rcpt@example.org\nSubject: x\n\nbody\n"
    res, srv = send(args, msg)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"rcpt@example.org"])
    check_message(name, x, msg, added=(DATE_RE, MSGID_RE))
    # "5", "c" and "Foo=bar" are option arguments, not recipients (checked
    # above); with -v each ignored option is listed (SPEC 1).
    res, srv = send(["-v"] + args, msg)
    t.is_eq(res.rc, EX_OK, name + " with -v: exit 0", *info(res, srv))
    for opt in ("-oXyz", "-Bfoo", "-m", "-n", "-G", "-U", "-h", "-A", "-O"):
        t.ok(re.search(rb"ignor\w* option %s\b" % re.escape(opt.encode()), res.err),
             name + " with -v: %s listed as ignored" % opt,
             "stderr: %s" % t.show(res.err, 1200))


def test_option_forms():
    msg = b"To: a@example.org\nSubject: forms\n\nbody\n"

    name = "-ti grouped, -fADDR attached, -FNAME attached, options after recipients"
    res, srv = send(["-ti", "-fx@example.com", "-FName Here", "extra@example.org",
                     "-r", "y@example.com"], msg)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<y@example.com>",
                       [b"extra@example.org", b"a@example.org"])
    check_message(name, x, msg, added=(DATE_RE, MSGID_RE, b"From: Name Here <y@example.com>"))

    name = "-f '<>' (null sender)"
    res, srv = send(["-f", "<>", "a@example.org"], msg)
    expect_ok(name, res, srv)
    check_envelope(name, srv, b"MAIL FROM:<>", [b"a@example.org"])

    name = "-bm -N never -V envid (DSN offered)"
    res, srv = send(["-bm", "-N", "never", "-V", "id+1=x", "a@example.org"], msg,
                    server={"extensions": DSN_EXTS})
    expect_ok(name, res, srv)
    check_envelope(name, srv, b"MAIL FROM:<sender@example.com> ENVID=id+2B1+3Dx",
                   [b"RCPT TO:<a@example.org> NOTIFY=NEVER ORCPT=rfc822;a@example.org"])

    name = "recipient argument holding an address list"
    res, srv = send(["\"Doe, J.\" <j@example.org>, k@example.org (K)", "l@example.org"], msg)
    expect_ok(name, res, srv)
    check_envelope(name, srv, b"MAIL FROM:<sender@example.com>",
                   [b"j@example.org", b"k@example.org", b"l@example.org"])

    name = "no recipients and no -t"
    res, srv = send(["-oi"], msg)
    t.is_eq(res.rc, EX_USAGE, name + ": exit 64", *info(res, srv))
    t.is_eq(srv.accepted, 0, name + ": nothing connected")

    name = "script: echo text | sendmail root (no header block)"
    body = b"hello world\nsecond line\n"
    res, srv = send(["root"], body, {"maildomain": MAILDOMAIN})
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"root@example.net"])
    if x:
        f, b = head_fields(x.message)
        t.is_eq(b, t.normalise(body), name + ": the text is the body")
        t.is_eq([field_name(v) for v in f], [b"date", b"message-id", b"from", b"to"],
                name + ": Date, Message-ID, From, To added")

    name = "empty standard input"
    res, srv = send(["root"], b"", {"maildomain": MAILDOMAIN})
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"root@example.net"])
    if x:
        f, b = head_fields(x.message)
        t.ok(b == b"" and len(f) == 4, name + ": generated header, empty body",
             "message: %s" % t.show(x.message))


def queue_config(port):
    keys = dict(t.CONFIG_DEFAULTS, queue="on-failure", port=str(port))
    return t.write_config(text="[defaults]\nqueue_retry = 1s\n\n[test]\n" + "".join(
        "%s = %s\n" % kv for kv in keys.items()))


def make_links():
    d = sub_dir("links")
    for n in ("sendmail", "mailq", "newaliases"):
        os.symlink(os.path.abspath(t.PUSHMAIL), os.path.join(d, n))
    return d


ALIASES_TEXT = (b"# /etc/aliases for the sendmail suite\n"
                b"postmaster: root\n"
                b"root: admin, \\root,\n"
                b"\t# a comment line inside an entry does not end it\n"
                b"\n"
                b"  ops-team\n"
                b"admin: Alice Admin <alice@example.org>, \"bob smith\"@example.org\n"
                b"ops-team: carol@example.net (Carol), \\dave, ops-team\n"
                b"loop-a: loop-b\n"
                b"loop-b: loop-a, eve@example.org\n"
                b"pipe: \"|/usr/bin/procmail -m\", frank@example.org\n"
                b"onlypipe: |/usr/local/bin/archive\n"
                b"default: catchall@example.org\n")
ALIASES_COUNT = 9


def test_links():
    links = make_links()
    env = queue_env("q-links")
    msg = b"From: s@example.com\nTo: rcpt@example.org\nSubject: link\n\nbody\n"

    name = "argv[0] = sendmail"
    res, srv = send(["-t", "-i"], msg, env=env, argv0=os.path.join(links, "sendmail"))
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"rcpt@example.org"])
    check_message(name, x, msg, added=(DATE_RE, MSGID_RE))

    name = "argv[0] = mailq, empty queue"
    cfg = queue_config(t.closed_port())
    res = t.run([os.path.join(links, "mailq"), "-C", cfg], env=env)
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *res.describe())
    t.ok(b"empty" in res.out.lower(), name + ": says the queue is empty",
         "stdout: %s" % t.show(res.out))

    name = "argv[0] = mailq, one deferred message"
    res = t.run([os.path.join(links, "sendmail"), "-C", cfg, "-f", "q@example.com",
                 "to1@example.org", "to2@example.org"], stdin=msg, env=env)
    t.is_eq(res.rc, EX_OK, name + ": relay down, message queued, exit 0", *res.describe())
    ids = [n for n in queued_files(env) if n.startswith("new/")]
    t.ok(len(ids) >= 1, name + ": a file in new/", "queue: %s" % queued_files(env))
    res = t.run([os.path.join(links, "mailq"), "-C", cfg], env=env)
    t.is_eq(res.rc, EX_OK, name + ": mailq exit 0", *res.describe())
    qid = None
    for line in res.out.splitlines():
        if line[:1].isdigit():
            qid = line.split()[0]
    t.ok(qid is not None and any(qid.decode() in n for n in ids),
         name + ": lists the queued message's id", "stdout: %s" % t.show(res.out),
         "queue: %s" % ids)
    for s in (b"<q@example.com>", b"<to1@example.org>", b"<to2@example.org>"):
        t.ok(s in res.out, name + ": lists %s" % s.decode(), "stdout: %s" % t.show(res.out))
    t.ok(b"refused" in res.out.lower() or b"connect" in res.out.lower(),
         name + ": shows the last error", "stdout: %s" % t.show(res.out))

    name = "argv[0] = sendmail -q (the relay is back)"
    time.sleep(1.2)          # -q honours the back-off: queue_retry = 1s
    srv = ScriptedServer().start()
    try:
        cfg = queue_config(srv.port)
        res = t.run([os.path.join(links, "sendmail"), "-C", cfg, "-q"], env=env)
    finally:
        srv.stop()
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *info(res, srv))
    x = check_envelope(name, srv, b"MAIL FROM:<q@example.com>",
                       [b"to1@example.org", b"to2@example.org"])
    check_message(name, x, msg, added=(DATE_RE, MSGID_RE))
    res = t.run([os.path.join(links, "mailq"), "-C", cfg], env=env)
    t.ok(res.rc == 0 and b"empty" in res.out.lower(), name + ": mailq: queue empty again",
         *res.describe())

    name = "argv[0] = newaliases, good file"
    apath = write_file("aliases-links", ALIASES_TEXT, 0o644)
    cfg = t.write_config(port=1, aliases=apath)
    res = t.run([os.path.join(links, "newaliases"), "-C", cfg], env=env)
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *res.describe())
    t.ok(apath.encode() in res.out and re.search(rb"\b%d aliases\b" % ALIASES_COUNT, res.out),
         name + ": names the file and counts %d aliases" % ALIASES_COUNT,
         "stdout: %s" % t.show(res.out))

    name = "argv[0] = newaliases, bad line"
    bad = write_file("aliases-bad", b"root: admin@example.org\n# fine\n\n"
                     b"this line has no colon\n", 0o644)
    cfg = t.write_config(port=1, aliases=bad)
    res = t.run([os.path.join(links, "newaliases"), "-C", cfg], env=env)
    t.is_eq(res.rc, EX_DATAERR, name + ": exit 65", *res.describe())
    t.ok(("%s:4:" % bad).encode() in res.err, name + ": stderr names FILE:4",
         "stderr: %s" % t.show(res.err))


# --------------------------------------------------------------------------
# 2. -bs sessions

def parse_replies(out):
    """Server output -> list of replies, each a list of lines (bytes)."""
    replies, cur = [], []
    for line in out.split(b"\r\n"):
        if not line:
            continue
        cur.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            replies.append(cur)
            cur = []
    if cur:
        replies.append(cur)
    return replies


def codes(replies):
    return [r[-1][:3].decode("latin-1") for r in replies]


def bs(session, cfg=None, server=None, connections=1, **kw):
    server = dict(server or {})
    server.setdefault("connections", connections)
    res, srv = send(["-bs"], session, cfg, server, **kw)
    return res, srv, parse_replies(res.out)


BS_MSG = (b"From: App <app@example.com>\r\n"
          b"To: user@example.org\r\n"
          b"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
          b"Message-ID: <bs.1@example.com>\r\n"
          b"Subject: -bs\r\n"
          b"\r\n"
          b".leading dot\r\n"
          b"..\r\n"
          b".\r\n"
          b"x.\r\n"
          b"end\r\n")


def stuffed(msg):
    return t.dot_stuff(t.normalise(msg))


def test_bs():
    name = "-bs pipelined session in one write"
    session = (b"EHLO client.example\r\nMAIL FROM:<app@example.com>\r\n"
               b"RCPT TO:<user@example.org>\r\nDATA\r\n" + stuffed(BS_MSG) + b"QUIT\r\n")
    res, srv, rp = bs(session)
    expect_ok(name, res, srv)
    t.is_eq(codes(rp), ["220", "250", "250", "250", "354", "250", "221"],
            name + ": replies in order", "stdout: %s" % t.show(res.out))
    t.ok(len(rp) > 1 and any(l[4:].upper().startswith(b"PIPELINING") for l in rp[1]),
         name + ": EHLO offers PIPELINING", "stdout: %s" % t.show(res.out))
    x = check_envelope(name, srv, b"MAIL FROM:<app@example.com>", [b"user@example.org"])
    check_message(name, x, BS_MSG)
    if x:
        t.is_eq(x.message, t.normalise(BS_MSG), name + ": dot-unstuffed message relayed intact")

    name = "-bs RSET and two messages"
    msg2 = BS_MSG.replace(b"Subject: -bs", b"Subject: second").replace(b"bs.1@", b"bs.2@")
    session = (b"EHLO client.example\r\n"
               b"MAIL FROM:<dropped@example.com>\r\nRCPT TO:<dropped@example.org>\r\n"
               b"RSET\r\nDATA\r\n"
               b"MAIL FROM:<app@example.com>\r\nRCPT TO:<user@example.org>\r\nDATA\r\n"
               + stuffed(BS_MSG) +
               b"MAIL FROM:<app2@example.com>\r\nRCPT TO:<user2@example.org>\r\n"
               b"RCPT TO:<user3@example.org>\r\nDATA\r\n" + stuffed(msg2) + b"QUIT\r\n")
    res, srv, rp = bs(session, connections=2)
    expect_ok(name, res, srv)
    # issue 17: the messages of a -bs session share one relay session
    t.is_eq(len(srv.records), 1, name + ": one connection to the relay for both",
            *info(res, srv))
    t.is_eq(srv.records[0].verbs()[-1:] if srv.records else None, ["QUIT"],
            name + ": the relay session ends with QUIT")
    t.is_eq(codes(rp), ["220", "250", "250", "250", "250", "503", "250", "250", "354",
                        "250", "250", "250", "250", "354", "250", "221"],
            name + ": replies in order (DATA after RSET: 503)",
            "stdout: %s" % t.show(res.out, 1500))
    txns = done_txns(srv)
    t.is_eq([(strip_size(x.mail), [l for l, _ in x.rcpts]) for x in txns],
            [(b"MAIL FROM:<app@example.com>", [b"RCPT TO:<user@example.org>"]),
             (b"MAIL FROM:<app2@example.com>", [b"RCPT TO:<user2@example.org>",
                                                b"RCPT TO:<user3@example.org>"])],
            name + ": two messages relayed, the RSET transaction nowhere")
    t.is_eq([x.message for x in txns], [t.normalise(BS_MSG), t.normalise(msg2)],
            name + ": both messages intact")

    name = "-bs three messages through the queue (queue = on-failure)"
    one = (b"MAIL FROM:<app@example.com>\r\nRCPT TO:<user@example.org>\r\nDATA\r\n"
           + stuffed(BS_MSG))
    qenv = t.base_env(PUSHMAIL_QUEUE_DIR=os.path.join(t.tmpdir(), "bs-queue"))
    res, srv, rp = bs(b"EHLO c\r\n" + one * 3 + b"QUIT\r\n", connections=3,
                      cfg={"queue": "on-failure"}, env=qenv)
    expect_ok(name, res, srv)
    t.is_eq(codes(rp), ["220", "250"] + ["250", "250", "354", "250"] * 3 + ["221"],
            name + ": replies", "stdout: %s" % t.show(res.out))
    t.is_eq(len(done_txns(srv)), 3, name + ": three relayed")
    t.is_eq(len(srv.records), 1, name + ": over one connection", *info(res, srv))

    name = "-bs SIZE= over the limit"
    session = (b"EHLO c\r\nMAIL FROM:<a@example.com> SIZE=104857601\r\n"
               b"MAIL FROM:<a@example.com> SIZE=2000\r\nRSET\r\nQUIT\r\n")
    res, srv, rp = bs(session)
    expect_ok(name, res, srv)
    t.is_eq(codes(rp), ["220", "250", "552", "250", "250", "221"],
            name + ": 552 for SIZE over the announced limit, 250 under it",
            "stdout: %s" % t.show(res.out))
    t.ok(len(rp) > 1 and any(l[4:] == b"SIZE 104857600" for l in rp[1]),
         name + ": EHLO announces the limit", "stdout: %s" % t.show(res.out))

    name = "-bs bad sequences"
    session = (b"MAIL FROM:<a@example.com>\r\n"          # before EHLO
               b"EHLO c\r\n"
               b"RCPT TO:<b@example.org>\r\n"            # before MAIL
               b"DATA\r\n"                               # before MAIL
               b"MAIL FROM:<a@example.com>\r\n"
               b"DATA\r\n"                               # before RCPT
               b"MAIL FROM:<a@example.com>\r\n"          # nested
               b"QUIT\r\n")
    res, srv, rp = bs(session)
    expect_ok(name, res, srv)
    c = codes(rp)
    t.is_eq(c[:6] + c[7:], ["220", "503", "250", "503", "503", "250", "503", "221"],
            name + ": 503 for MAIL before EHLO, RCPT/DATA before MAIL, nested MAIL",
            "stdout: %s" % t.show(res.out))
    # RFC 5321 3.3 allows 503 or 554 for DATA without an accepted RCPT
    t.ok(c[6:7] in (["503"], ["554"]), name + ": DATA before RCPT refused (503/554)",
         "stdout: %s" % t.show(res.out))
    t.is_eq(srv.accepted, 0, name + ": the relay was never contacted")

    session = (b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\n"
               b"DATA\r\n" + stuffed(BS_MSG) + b"QUIT\r\n")
    for code, rule, first in (("550 at RCPT", {"RCPT": "550 5.1.1 <b@example.org>: no such user"}, b"550"),
                              ("451 at RCPT", {"RCPT": "451 4.3.0 try again later"}, b"451"),
                              ("554 after the dot", {"EOD": "554 5.7.1 spam"}, b"5"),
                              ("421 greeting", {"GREETING": "421 4.3.2 shutting down"}, b"4")):
        name = "-bs relay %s" % code
        res, srv, rp = bs(session, server={"rules": rule})
        expect_ok(name, res, srv)
        c = codes(rp)
        t.is_eq(c[:5] + c[6:], ["220", "250", "250", "250", "354", "221"],
                name + ": session replies", "stdout: %s" % t.show(res.out))
        dot = rp[5][-1] if len(rp) > 5 else b""
        t.ok(dot.startswith(first), name + ": reply to the final dot starts with %s"
             % first.decode(), "reply: %s" % t.show(dot))
        # RFC 5321 4.2.2/3.8: 421 means "closing the channel"; a session that
        # goes on must not say it about the relay's trouble.
        t.ok(not dot.startswith(b"421") or len(rp) == 6,
             name + ": no 421 in a session that continues", "stdout: %s" % t.show(res.out))

    name = "-bs relay down (connection refused)"
    cfg = t.write_config(port=t.closed_port())
    res, srv, rp = bs(session, cfg=cfg)
    expect_ok(name, res, srv)
    t.ok(len(rp) > 5 and rp[5][-1][:1] == b"4", name + ": 4xx to the final dot",
         "stdout: %s" % t.show(res.out))

    name = "-bs null sender and a bare recipient"
    session = (b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<root>\r\nDATA\r\n"
               + stuffed(BS_MSG) + b"QUIT\r\n")
    res, srv, rp = bs(session, cfg={"maildomain": MAILDOMAIN})
    expect_ok(name, res, srv)
    t.is_eq(codes(rp), ["220", "250", "250", "250", "354", "250", "221"],
            name + ": replies", "stdout: %s" % t.show(res.out))
    check_envelope(name, srv, b"MAIL FROM:<>", [b"root@example.net"])

    name = "-bs unknown command, long line, QUIT"
    session = (b"EHLO c\r\nFROB x\r\nNOOP " + b"x" * 1000 + b"\r\n"
               b"NOOP " + b"y" * 5000 + b"RSET\r\n"
               b"NOOP\r\nQUIT\r\nNOOP\r\n")
    res, srv, rp = bs(session)
    expect_ok(name, res, srv)
    t.is_eq(codes(rp), ["220", "250", "500", "500", "500", "250", "221"],
            name + ": 500, 500 (1005 bytes), 500 (5009 bytes, once), 250, 221, "
            "nothing after QUIT", "stdout: %s" % t.show(res.out))

    name = "-bs command line of 1000 bytes (998 + CRLF)"
    res, srv, rp = bs(b"EHLO c\r\nNOOP " + b"z" * 993 + b"\r\nQUIT\r\n")
    t.is_eq(codes(rp), ["220", "250", "250", "221"], name + ": accepted",
            "stdout: %s" % t.show(res.out))

    name = "-bs input ends without QUIT"
    res, srv, rp = bs(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\n"
                      b"DATA\r\nSubject: cut\r\n\r\nno dot\r\n")
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *info(res, srv))
    t.is_eq(len(done_txns(srv)), 0, name + ": an unfinished message is not relayed")

    test_bs_long_line()
    test_bs_lockstep()


def test_bs_long_line():
    """An 8190-byte data line whose CR is the last byte of the 64 KiB input
    block and whose LF is the first byte of the next one (stdin is a file, so
    the block boundaries are fixed)."""
    name = "-bs data line split between CR and LF"
    head = (b"EHLO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<user@example.org>\r\n"
            b"DATA\r\n")
    msg_head = (b"From: app@example.com\r\nTo: user@example.org\r\n"
                b"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <long@example.com>\r\n"
                b"Subject: long line\r\n\r\n")
    start = 65536 - 8191               # the long line's first byte
    fill, used = [], len(head) + len(msg_head)
    while start - used > 100:
        fill.append(b"f" * 70 + b"\r\n")
        used += 72
    fill.append(b"g" * (start - used - 2) + b"\r\n")
    body = b"".join(fill) + b"L" * 8190 + b"\r\nafter the long line\r\n"
    session = head + msg_head + body + b".\r\nQUIT\r\n"
    assert session.index(b"L" * 8190) + 8190 == 65535
    path = write_file("bs-long.txt", session)
    res, srv, rp = bs(None, stdin_file=path)
    expect_ok(name, res, srv)
    txns = done_txns(srv)
    got = txns[0].message if txns else b""
    want = msg_head + body
    t.ok(got == want, name + ": message relayed intact (no blank line inserted)",
         "near the split: %s" % t.show(got[got.find(b"LLLL") + 8180:][:40]),
         "want:           %s" % t.show(want[want.find(b"LLLL") + 8180:][:40]))


def test_bs_lockstep():
    """A client that waits for each reply (symfony/mailer does): every
    reply must be flushed before pushmail reads on."""
    name = "-bs lock-step client"
    srv = ScriptedServer().start()
    cfg = t.write_config(port=srv.port)
    p = subprocess.Popen([t.PUSHMAIL, "-C", cfg, "-bs"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=t.base_env())
    buf = bytearray()
    got = []

    def reply(limit=5.0):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            m = re.search(rb"(?:^|\r\n)(\d{3}) [^\r\n]*\r\n", bytes(buf))
            if m:
                code, rest = m.group(1), bytes(buf[m.end():])
                del buf[:]
                buf.extend(rest)
                return code.decode()
            r, _, _ = select.select([p.stdout], [], [], 0.1)
            if r:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf.extend(chunk)
        return None

    try:
        got.append(reply())
        for line in (b"EHLO c\r\n", b"MAIL FROM:<app@example.com>\r\n",
                     b"RCPT TO:<user@example.org>\r\n", b"DATA\r\n",
                     stuffed(BS_MSG), b"QUIT\r\n"):
            p.stdin.write(line)
            p.stdin.flush()
            got.append(reply())
        p.stdin.close()
        rc = p.wait(10)
    except (OSError, subprocess.TimeoutExpired) as e:
        got.append("error: %s" % e)
        p.kill()
        rc = p.wait()
    finally:
        srv.stop()
        for f in (p.stdout, p.stderr):
            f.close()
    t.is_eq(got, ["220", "250", "250", "250", "354", "250", "221"],
            name + ": each reply arrives before the next command")
    t.is_eq(rc, EX_OK, name + ": exit 0")
    t.is_eq([x.message for x in done_txns(srv)], [t.normalise(BS_MSG)],
            name + ": message relayed")


# --------------------------------------------------------------------------
# 3. Aliases

def test_aliases():
    apath = write_file("aliases", ALIASES_TEXT, 0o644)
    cfg_keys = {"aliases": apath, "maildomain": MAILDOMAIN}
    msg = b"From: s@example.com\nSubject: aliases\n\nbody\n"

    name = "aliases: recursion, \\name, self-reference, continuation, comments"
    res, srv = send(["postmaster"], msg, cfg_keys)
    expect_ok(name, res, srv)
    check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [
        b"alice@example.org", b"\"bob smith\"@example.org", b"root@example.net",
        b"carol@example.net", b"dave@example.net", b"ops-team@example.net"])

    name = "aliases: a loop ends where it closes"
    res, srv = send(["loop-a"], msg, cfg_keys)
    expect_ok(name, res, srv)
    check_envelope(name, srv, b"MAIL FROM:<sender@example.com>",
                   [b"loop-a@example.net", b"eve@example.org"])

    name = "aliases: default catch-all, full addresses untouched, duplicates once"
    res, srv = send(["nobody", "x@elsewhere.example", "ALICE@example.org",
                     "alice@EXAMPLE.ORG", "admin"], msg, cfg_keys)
    expect_ok(name, res, srv)
    check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [
        b"catchall@example.org", b"x@elsewhere.example", b"ALICE@example.org",
        b"alice@EXAMPLE.ORG", b"\"bob smith\"@example.org"])

    name = "aliases: |command skipped with a warning"
    res, srv = send(["pipe"], msg, cfg_keys)
    expect_ok(name, res, srv, stderr_empty=False)
    err = res.err.strip()
    t.ok(err and b"\n" not in err and b"warning" in err and b"procmail" in err and
         ("%s:11" % apath).encode() in err,
         name + ": one warning naming FILE:11 and the command",
         "stderr: %s" % t.show(res.err))
    check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"frank@example.org"])

    name = "aliases: an alias that is only a command"
    res, srv = send(["onlypipe"], msg, cfg_keys)
    t.is_eq(res.rc, EX_DATAERR, name + ": exit 65 (mail would vanish)", *info(res, srv))
    t.is_eq(len(done_txns(srv)), 0, name + ": nothing delivered")

    name = "aliases: bare names in To with -t"
    tmsg = b"From: s@example.com\nTo: loop-b, Someone <x@elsewhere.example>\nSubject: t\n\nb\n"
    res, srv = send(["-t"], tmsg, cfg_keys)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [
        b"loop-b@example.net", b"eve@example.org", b"x@elsewhere.example"])
    # the header names the alias, qualified; its expansion stays private
    check_message(name, x, qualified(tmsg, b"loop-b"), added=(DATE_RE, MSGID_RE))

    name = "no aliases key: bare name qualified with maildomain"
    res, srv = send(["postmaster"], msg, {"maildomain": MAILDOMAIN})
    expect_ok(name, res, srv)
    check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"postmaster@example.net"])


# --------------------------------------------------------------------------
# 4. Headers with -t

MESSY = (b"Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\n"
         b"Date:   Thu, 1 Jan 2026 00:00:00 +0000 (UTC)\n"
         b"Message-ID:\n"
         b" <odd.id.123@Example.COM>\n"
         b"From: \"Sender, The\" <sender@example.com> (the sender)\n"
         b"To: \"Doe, John\" <john@example.org>, (lead comment) plain@example.org,\n"
         b" Team: m1@example.org, \"M. Two\" <m2@example.org>;,\n"
         b"\t\"first last\"@example.org\n"
         b"Reply-To: reply@example.net\n"
         b"X-To: not-a-rcpt@example.net\n"
         b"cc: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.org>, <angle@example.org> (trailing),\n"
         b"  \"quoted \\\"name\\\" (not a comment)\" <q@example.org>\n"
         b"Subject: messy, with To: fake@example.net inside\n"
         b"Cc: lower@example.org, \"Long Name\n"
         b" Folded\" <folded@example.org>, John <john@example.org>\n"
         b"Bcc: b1@example.org, Bcc Two <b2@example.org>,\n"
         b" Hidden: h1@example.org;, b3@example.org (Bcc three), plain@EXAMPLE.ORG\n"
         b"BCC: undisclosed-recipients:;\n"
         b"\n"
         b"To: body@example.net is not a header\n")
MESSY_RCPTS = [b"john@example.org", b"plain@example.org", b"m1@example.org",
               b"m2@example.org", b"\"first last\"@example.org", b"joerg@example.org",
               b"angle@example.org", b"q@example.org", b"lower@example.org",
               b"folded@example.org", b"b1@example.org", b"b2@example.org",
               b"h1@example.org", b"b3@example.org"]

RESENT = (b"Resent-From: fwd@example.com\n"
          b"Resent-To: r1@example.org, Group: r2@example.org;\n"
          b"Resent-Bcc: rb@example.org\n"
          b"Resent-Date: Fri, 2 Jan 2026 00:00:00 +0000\n"
          b"Resent-Message-ID: <r@example.com>\n"
          b"Received: from mx.example.org by mbox.example.org; Thu, 1 Jan 2026 12:00:00 +0000\n"
          b"Resent-From: older@example.com\n"
          b"Resent-To: older-rcpt@example.org\n"
          b"Resent-Bcc: older-bcc@example.org\n"
          b"Resent-Date: Thu, 1 Jan 2026 11:00:00 +0000\n"
          b"Received: from a.example.com by mx.example.org; Thu, 1 Jan 2026 10:00:00 +0000\n"
          b"From: orig@example.com\n"
          b"To: orig-to@example.org\n"
          b"Bcc: orig-bcc@example.org\n"
          b"Date: Thu, 1 Jan 2026 00:00:00 +0000\n"
          b"Message-ID: <o@example.com>\n"
          b"Subject: resent\n"
          b"\n"
          b"body\n")
# Two resend blocks with no trace field between them: RFC 5322 3.6.6 gives
# each block exactly one Resent-Date and one Resent-From, so a second
# Resent-From starts the older block.
RESENT_ADJACENT = RESENT.replace(
    b"Received: from mx.example.org by mbox.example.org; Thu, 1 Jan 2026 12:00:00 +0000\n", b"")


def test_headers():
    name = "-t messy header: 14 addresses"
    res, srv = send(["-t"], MESSY)
    expect_ok(name, res, srv)
    txns = done_txns(srv)
    got = [l for l, _ in txns[0].rcpts] if txns else []
    want = [b"RCPT TO:<%s>" % a for a in MESSY_RCPTS]
    t.is_eq(sorted(got), sorted(want), name + ": every address exactly once")
    t.is_eq(len(got), 14, name + ": 14 RCPT commands")
    check_message(name, txns[0] if txns else None, MESSY, drop=(b"bcc",))
    if txns:
        for s in (b"b1@example.org", b"h1@example.org", b"Hidden:", b"Bcc Two"):
            t.ok(s not in txns[0].message, name + ": %s not in the delivered message"
                 % s.decode())
        t.ok(txns[0].message.startswith(t.normalise(MESSY).split(b"Bcc:")[0]),
             name + ": Date and folded Message-ID kept byte-identical")

    for name, msg in (("-t with Resent- blocks", RESENT),
                      ("-t with two adjacent Resent- blocks", RESENT_ADJACENT)):
        res, srv = send(["-t"], msg)
        expect_ok(name, res, srv)
        x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>",
                           [b"r1@example.org", b"r2@example.org", b"rb@example.org"])
        check_message(name, x, msg, drop=(b"bcc", b"resent-bcc"))

    name = "-t, missing Date, Message-ID and From added"
    msg = b"To: a@example.org\nSubject: bare\n\nbody\n"
    res, srv = send(["-t"], msg)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"a@example.org"])
    check_message(name, x, msg, added=(DATE_RE, MSGID_RE, b"From: sender@example.com"))

    name = "-t -F 'Cron Daemon, Jr.' generated From quoted"
    res, srv = send(["-t", "-F", "Cron Daemon, Jr."], msg)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"a@example.org"])
    check_message(name, x, msg, added=(DATE_RE, MSGID_RE,
                                       b"From: \"Cron Daemon, Jr.\" <sender@example.com>"))

    name = "-t with Bcc only"
    msg = b"From: s@example.com\nBcc: h@example.org\nSubject: bcc only\n\nb\n"
    res, srv = send(["-t"], msg)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"h@example.org"])
    check_message(name, x, msg, drop=(b"bcc",), added=(DATE_RE, MSGID_RE, UNDISCLOSED))

    name = "-F with a non-ASCII name"
    msg = b"To: a@example.org\nSubject: s\n\nb\n"
    res, srv = send(["-t", "-F", "J\u00f6rg M\u00fcller"], msg)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"a@example.org"])
    check_message(name, x, msg, added=(
        DATE_RE, MSGID_RE, b"From: =?UTF-8?B?%s?= <sender@example.com>"
        % base64.b64encode("J\u00f6rg M\u00fcller".encode())))

    name = "-t with an unparsable To"
    res, srv = send(["-t"], b"To: <broken@\nSubject: x\n\nb\n")
    t.is_eq(res.rc, EX_DATAERR, name + ": exit 65", *info(res, srv))
    t.is_eq(srv.accepted, 0, name + ": nothing connected")


# --------------------------------------------------------------------------
# 5. SMTPUTF8, 8BITMIME, IDN

def test_eai():
    msg = "From: J\u00f6rg <j\u00f6rg@example.com>\nTo: Jos\u00e9 <jos\u00e9@example.org>\n" \
          "Subject: UTF-8\n\nhallo\n".encode()

    name = "SMTPUTF8 offered, non-ASCII local parts"
    res, srv = send(["-t", "-f", "j\u00f6rg@example.com"], msg,
                    server={"extensions": UTF8_EXTS})
    expect_ok(name, res, srv)
    txns = done_txns(srv)
    mail = txns[0].mail if txns else b""
    t.ok(re.match(rb"^MAIL FROM:<j\xc3\xb6rg@example\.com>( SIZE=\d+)?( BODY=8BITMIME)?"
                  rb" SMTPUTF8$", mail), name + ": MAIL FROM:<j\u00f6rg@...> ... SMTPUTF8",
         "MAIL: %s" % t.show(mail))
    t.is_eq([l for l, _ in txns[0].rcpts] if txns else [],
            [b"RCPT TO:<jos\xc3\xa9@example.org>"], name + ": UTF-8 RCPT sent as is")
    check_message(name, txns[0] if txns else None, msg, added=(DATE_RE, MSGID_RE))

    name = "-v shows UTF-8 as it went on the wire, server controls escaped"
    res, srv = send(["-v", "-t", "-f", "j\u00f6rg@example.com"], msg,
                    server={"extensions": UTF8_EXTS,
                            "rules": {"DATA": "354 go \x1b[31mahead\x9b"}})
    expect_ok(name, res, srv, stderr_empty=False)
    t.ok(b"-> RCPT TO:<jos\xc3\xa9@example.org>" in res.err,
         name + ": -v shows RCPT TO:<jos\u00e9@example.org> in UTF-8",
         "stderr: %s" % t.show(res.err, 2000))
    t.ok(b"\x1b" not in res.err and b"\\x1b[31mahead" in res.err,
         name + ": the server's ESC is shown as \\x1b", "stderr: %s" % t.show(res.err, 2000))
    t.ok(b"\x9b" not in res.err and b"\\x9b" in res.err,
         name + ": the server's C1 CSI is escaped", "stderr: %s" % t.show(res.err, 2000))

    name = "SMTPUTF8 not offered, non-ASCII local part"
    res, srv = send(["-t"], msg, server={"extensions": ["PIPELINING", "8BITMIME"]})
    t.is_eq(res.rc, EX_DATAERR, name + ": exit 65", *info(res, srv))
    t.ok(b"jos\xc3\xa9@example.org" in res.err and b"SMTPUTF8" in res.err,
         name + ": stderr names the address and SMTPUTF8", "stderr: %s" % t.show(res.err))
    t.is_eq(srv.record.verbs() if srv.record else None, ["EHLO", "QUIT"],
            name + ": nothing but EHLO and QUIT")

    name = "IDN domain with an ASCII local part"
    msg2 = b"From: s@example.com\nTo: x@example.org\nSubject: idn\n\nb\n"
    res, srv = send(["-f", "info@m\u00fcller.example", "user@b\u00fccher.example",
                     "User@\u0411\u0423\u041a\u0412\u042b.example"], msg2,
                    server={"extensions": NO_8BIT_EXTS})
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<info@xn--mller-kva.example>", [
        b"user@xn--bcher-kva.example", b"User@xn--90acx9a4b.example"])
    if x:
        t.ok(b"SMTPUTF8" not in x.mail, name + ": no SMTPUTF8 needed")

    body8 = ("From: s@example.com\nTo: a@example.org\nSubject: 8bit body\n"
             "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
             "Content-Transfer-Encoding: 8bit\n\nGr\u00fc\u00dfe aus K\u00f6ln\n").encode()

    name = "8-bit body, queue path (queue = on-failure), 8BITMIME offered"
    env = queue_env("q-8bit")
    res, srv = send(["a@example.org"], body8, {"queue": "on-failure"}, env=env)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<sender@example.com> BODY=8BITMIME",
                       [b"a@example.org"])
    check_message(name, x, body8, added=(DATE_RE, MSGID_RE))
    t.is_eq(queued_files(env), [], name + ": nothing left in the queue")

    name = "8-bit body, queue path, 8BITMIME not offered"
    env = queue_env("q-8bit-no")
    res, srv = send(["a@example.org"], body8, {"queue": "on-failure"}, env=env,
                    server={"extensions": NO_8BIT_EXTS})
    t.is_eq(res.rc, EX_OK, name + ": exit 0 (sent as it is)", *info(res, srv))
    check_envelope(name, srv, b"MAIL FROM:<sender@example.com>", [b"a@example.org"])

    # SPEC 4: BODY=8BITMIME only for 8-bit bytes actually seen.  A regular
    # file is read ahead; a pipe with queue = never cannot be (below).
    name = "ASCII message from a regular file: no BODY= parameter"
    path = os.path.join(t.tmpdir(), "ascii.eml")
    with open(path, "wb") as f:
        f.write(msg2)
    res, srv = send(["a@example.org"], None, stdin_file=path)
    expect_ok(name, res, srv)
    txns = done_txns(srv)
    t.is_eq(strip_size(txns[0].mail) if txns else None, b"MAIL FROM:<sender@example.com>",
            name + ": MAIL line")

    name = "8-bit header, queue = never"
    msg3 = "From: s@example.com\nTo: a@example.org\nSubject: Gr\u00fc\u00dfe\n\nb\n".encode()
    res, srv = send(["a@example.org"], msg3)
    expect_ok(name, res, srv)
    check_envelope(name, srv, b"MAIL FROM:<sender@example.com> BODY=8BITMIME",
                   [b"a@example.org"])

    # A streamed body (queue = never, a pipe) is not known before MAIL: it is
    # declared BODY=8BITMIME wherever offered, which RFC 6152 allows for
    # 7-bit content too (issue 14: the 8-bit body used to go undeclared).
    # -B8BITMIME plays no part: Debian cron passes it for every message.
    name = "8-bit body only, queue = never, -B8BITMIME"
    res, srv = send(["-B8BITMIME", "a@example.org"], body8)
    expect_ok(name, res, srv)
    txns = done_txns(srv)
    t.is_eq(strip_size(txns[0].mail) if txns else None,
            b"MAIL FROM:<sender@example.com> BODY=8BITMIME",
            name + ": BODY=8BITMIME for a body not seen before MAIL (pushmail(1))")

    name = "ASCII message streamed, queue = never: BODY=8BITMIME (RFC 6152)"
    res, srv = send(["a@example.org"], msg2)
    expect_ok(name, res, srv)
    txns = done_txns(srv)
    t.is_eq(strip_size(txns[0].mail) if txns else None,
            b"MAIL FROM:<sender@example.com> BODY=8BITMIME", name + ": MAIL line")

    name = "ASCII message streamed, 8BITMIME not offered: no BODY="
    res, srv = send(["a@example.org"], msg2, server={"extensions": NO_8BIT_EXTS})
    expect_ok(name, res, srv)
    txns = done_txns(srv)
    t.is_eq(strip_size(txns[0].mail) if txns else None,
            b"MAIL FROM:<sender@example.com>", name + ": MAIL line")
    t.is_eq(res.err, b"", name + ": no notice about 8-bit content it may not have")


# --------------------------------------------------------------------------
# 6. Mail log, -X transcript, secrets

PASSWORD = b"S3cr3t-Pw"
AUTH_USER = b"me@example.com"


def secret_forms(pw, user):
    """The password, and every base64 string that any encoding of data
    holding it must contain (for each of the three alignments), plus the
    AUTH PLAIN initial response."""
    forms = {pw, base64.b64encode(pw), base64.b64encode(b"\0" + user + b"\0" + pw)}
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + pw + b"\0\0\0")
        core = enc[4 if k else 0:]
        core = core[:len(core) - 8]
        if len(core) >= 4:
            forms.add(core)
    return forms


def no_secret(name, where, data):
    hits = [f for f in secret_forms(PASSWORD, AUTH_USER) if f in data]
    t.ok(not hits, name + ": no password or base64 form in %s" % where,
         "found: %s" % t.show(hits), "in: %s" % t.show(data, 2000))


def test_logging():
    name = "log = FILE"
    log = os.path.join(sub_dir("log"), "mail.log")
    msg = b"From: s@example.com\nTo: a@example.org\nSubject: log\n\n" + b"line\n" * 50
    res, srv = send(["a@example.org", "b@example.org"], msg, {"log": log})
    expect_ok(name, res, srv)
    lines = read_file(log).splitlines()
    t.is_eq(len(lines), 1, name + ": one line", "log: %s" % t.show(read_file(log)))
    line = lines[0] if lines else b""
    for s in (b"account=test", b"host=127.0.0.1", b"from=<sender@example.com>",
              b"to=<a@example.org>", b"status=sent", b"exit=0", b"Ok: queued as ABC"):
        t.ok(s in line, name + ": has %s" % s.decode(), "line: %s" % t.show(line))
    m = re.search(rb"\bsize=(\d+)", line)
    size = len(done_txns(srv)[0].message) if done_txns(srv) else 0
    t.ok(m and size and 0.8 * size <= int(m.group(1)) <= 1.2 * size + 200,
         name + ": size= is the message size (%d bytes)" % size, "line: %s" % t.show(line))
    res, srv = send(["c@example.org"], msg, {"log": log})
    t.is_eq(len(read_file(log).splitlines()), 2, name + ": a second message appends a line")

    name = "log = FILE, -L tag, refused recipient"
    res, srv = send(["-L", "cronmail", "a@example.org"], msg, {"log": log},
                    server={"rules": {"RCPT": "550 5.1.1 <a@example.org>: no such user"}})
    t.is_eq(res.rc, 67, name + ": exit 67", *info(res, srv))
    lines = read_file(log).splitlines()
    line = lines[-1] if len(lines) == 3 else b""
    for s in (b"cronmail[", b"status=failed", b"exit=67", b"5.1.1", b"no such user"):
        t.ok(s in line, name + ": third line has %s" % s.decode(),
             "log: %s" % t.show(read_file(log), 1500))

    name = "-X FILE"
    xfile = os.path.join(sub_dir("xfile"), "transcript")
    res, srv = send(["-X", xfile, "a@example.org"], msg)
    expect_ok(name, res, srv)
    tr = read_file(xfile)
    for s in (b"EHLO client.example", b"MAIL FROM:<sender@example.com>",
              b"RCPT TO:<a@example.org>", b"250 2.0.0 Ok: queued as ABC"):
        t.ok(s in tr, name + ": transcript has %s" % s.decode(), "file: %s" % t.show(tr))

    for mech, exts in (("plain", ["PIPELINING", "AUTH PLAIN LOGIN", "8BITMIME"]),
                       ("login", ["PIPELINING", "AUTH LOGIN", "8BITMIME"])):
        name = "AUTH %s: secrets stay out of -v, the log and -X" % mech.upper()
        d = sub_dir("auth-" + mech)
        log, xfile = os.path.join(d, "log"), os.path.join(d, "x")
        keys = {"auth": mech, "user": AUTH_USER.decode(), "password": PASSWORD.decode(),
                "allow_plaintext_auth": "yes", "log": log}
        res, srv = send(["-v", "-X", xfile, "a@example.org"], msg, keys,
                        server={"extensions": exts})
        t.is_eq(res.rc, EX_OK, name + ": exit 0", *info(res, srv))
        sent = b"\n".join(srv.record.commands) if srv.record else b""
        t.ok(any(f in sent for f in secret_forms(PASSWORD, AUTH_USER)),
             name + ": (the password did go to the server)", "sent: %s" % t.show(sent))
        t.ok(b"AUTH" in res.err and b"MAIL FROM" in res.err, name + ": -v shows the session")
        no_secret(name, "stderr", res.err)
        no_secret(name, "the log", read_file(log))
        no_secret(name, "the -X file", read_file(xfile))
        t.ok(b"AUTH" in read_file(xfile), name + ": -X file has the AUTH exchange")

    name = "AUTH PLAIN refused (535): secrets stay out"
    d = sub_dir("auth-refused")
    log, xfile = os.path.join(d, "log"), os.path.join(d, "x")
    keys = {"auth": "plain", "user": AUTH_USER.decode(), "password": PASSWORD.decode(),
            "allow_plaintext_auth": "yes", "log": log}
    res, srv = send(["-v", "-X", xfile, "a@example.org"], msg, keys,
                    server={"extensions": ["PIPELINING", "AUTH PLAIN"],
                            "rules": {"AUTH": "535 5.7.8 Error: authentication failed"}})
    t.is_eq(res.rc, 77, name + ": exit 77", *info(res, srv))
    no_secret(name, "stderr", res.err)
    no_secret(name, "the log", read_file(log))
    no_secret(name, "the -X file", read_file(xfile))


def log_line(path, idx=-1):
    lines = read_file(path).splitlines()
    return lines[idx] if lines else b""


def test_log_details():
    """The mail log names what was used (AUTH mechanism, TLS version and
    cipher), can go to several places, and takes a syslog facility."""
    msg = b"From: s@example.com\nTo: a@example.org\nSubject: log\n\nbody\n"
    d = sub_dir("log-details")
    keys = {"user": AUTH_USER.decode(), "password": PASSWORD.decode(),
            "allow_plaintext_auth": "yes", "auth": None}
    exts = ["PIPELINING", "AUTH LOGIN PLAIN", "8BITMIME"]
    for mode, env in (("never", None), ("on-failure", queue_env("q-log-details"))):
        name = "log: auth = login logs LOGIN (queue = %s)" % mode
        log = os.path.join(d, "mech-" + mode)
        res, srv = send(["a@example.org"], msg, dict(keys, log=log, queue=mode, auth="login"),
                        server={"extensions": exts}, env=env)
        expect_ok(name, res, srv)
        line = log_line(log)
        t.ok(b"auth=LOGIN " in line, name + ": auth=LOGIN", "line: %s" % t.show(line))
        t.ok(b"tls=off tls_version=- cipher=-" in line, name + ": no TLS",
             "line: %s" % t.show(line))

    import certs
    C = certs.get()
    if C is None:
        t.skip("log: TLS version and cipher", "certtool or Python ssl not available")
    else:
        for mode, env in (("never", None), ("on-failure", queue_env("q-log-tls"))):
            name = "log: auth = auto, TLS version and cipher (queue = %s)" % mode
            log = os.path.join(d, "tls-" + mode)
            res, srv = send(["a@example.org"], msg,
                            dict(keys, log=log, queue=mode, tls="implicit",
                                 tls_trust_file=C.ca, allow_plaintext_auth=None),
                            server={"extensions": exts, "ssl_context": C.context(C.good),
                                    "tls": "implicit"}, env=env)
            expect_ok(name, res, srv)
            line = log_line(log)
            t.ok(re.search(rb"tls=implicit tls_version=TLS1\.[23] cipher=[A-Z0-9-]+ "
                           rb"auth=PLAIN ", line) and b"auth=auto" not in line,
                 name + ": tls_version, cipher and mechanism logged", "line: %s" % t.show(line))

    name = "log: syslog and a file at once"
    log = os.path.join(d, "both")
    res, srv = send(["a@example.org"], msg, {"log": "syslog, " + log})
    expect_ok(name, res, srv)
    t.ok(b"status=sent" in log_line(log), name + ": the file has the line",
         "log: %s" % t.show(read_file(log)))

    name = "log: two files, the second with ~/"
    home = sub_dir("log-home")
    env = t.base_env(HOME=home)
    log = os.path.join(d, "first")
    res, srv = send(["a@example.org"], msg, {"log": "%s, ~/second.log" % log}, env=env)
    expect_ok(name, res, srv)
    t.ok(b"status=sent" in log_line(log), name + ": first file")
    t.ok(b"status=sent" in log_line(os.path.join(home, "second.log")),
         name + ": ~/second.log in HOME")

    name = "log: repeated log keys add up"
    srv = ScriptedServer().start()
    la, lb = os.path.join(d, "rep-a"), os.path.join(d, "rep-b")
    text = ("[test]\n" + "".join("%s = %s\n" % kv for kv in dict(
        t.CONFIG_DEFAULTS, port=str(srv.port)).items()) +
        "log = %s\nlog = %s\nlog_facility = local3\n" % (la, lb))
    res = t.run([t.PUSHMAIL, "-C", t.write_config(text=text), "a@example.org"], stdin=msg)
    srv.stop()
    expect_ok(name, res, srv)
    t.ok(b"status=sent" in log_line(la) and b"status=sent" in log_line(lb),
         name + ": both files have the line")

    name = "log_facility: a bad value is a configuration error"
    res, srv = send(["a@example.org"], msg, {"log": "syslog", "log_facility": "kern"})
    t.is_eq(res.rc, 78, name + ": exit 78", *info(res, srv))
    t.ok(b"log_facility" in res.err and b"local7" in res.err,
         name + ": names the key and the values", "stderr: %s" % t.show(res.err))


# --------------------------------------------------------------------------
# 7. --dry-run

DRY_MSG = (b"From: s@example.com\n"
           b"To: a@example.org\n"
           b"Bcc: hidden@example.org\n"
           b"Date: Mon, 30 Nov 2026 10:00:00 +0000\n"
           b"Message-ID: <dry@example.com>\n"
           b"Subject: dry\r\n"
           b"\n"
           b".dot\r"
           b".\n"
           b"last")


def test_dry_run():
    name = "--dry-run -t"
    res, srv = send(["--dry-run", "-t", "extra@example.org"], DRY_MSG)
    time.sleep(0.1)
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *info(res, srv))
    t.is_eq(srv.accepted, 0, name + ": nothing connected")
    want_msg = t.normalise(DRY_MSG).replace(b"Bcc: hidden@example.org\r\n", b"")
    want = (b"MAIL FROM:<sender@example.com>\nRCPT TO:<extra@example.org>\n"
            b"RCPT TO:<a@example.org>\nRCPT TO:<hidden@example.org>\nDATA\n"
            + t.dot_stuff(want_msg))
    t.is_eq(res.out, want, name + ": envelope, DATA and the exact bytes")

    name = "--dry-run without any configuration"
    res = t.run_pushmail(["--dry-run", "-f", "me@example.com", "a@example.org"],
                         stdin=DRY_MSG)
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *res.describe())
    t.ok(res.out.startswith(b"MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\n"
                            b"DATA\n"),
         name + ": envelope from the command line only (no -t)",
         "stdout: %s" % t.show(res.out))
    t.ok(res.out.endswith(b"\r\nlast\r\n.\r\n"), name + ": ends with the message and .CRLF",
         "stdout: %s" % t.show(res.out[-60:]))


# --------------------------------------------------------------------------
# contrib/pushmail.ini

def contrib_ini():
    for base in (t.SRCDIR, t.HERE):
        p = os.path.join(base, "..", "contrib", "pushmail.ini")
        if os.path.exists(p):
            return p
    return None


def test_contrib():
    src = contrib_ini()
    if src is None:
        t.skip("contrib/pushmail.ini", "not found")
        return
    text = read_file(src)
    shipped = write_file("contrib-shipped.ini", text)
    # ";key = value" lines (a semicolon directly followed by text) are the
    # settings meant to be switched on; all of them at once must load.
    everything = write_file("contrib-all.ini",
                            re.sub(rb"(?m)^;(?=\S)", b"", text))
    msg = b"Subject: contrib\n\nb\n"

    name = "contrib/pushmail.ini as shipped"
    res = t.run_pushmail(["-C", shipped, "--dry-run", "a@example.net"], stdin=msg)
    t.is_eq(res.rc, EX_OK, name + ": loads (--dry-run exit 0)", *res.describe())
    t.ok(b"pushmail.conf(5)" in text and b"password =" not in text.replace(b"#", b"")
         .replace(b";", b""), name + ": points to pushmail.conf(5), no literal password")

    accounts = re.findall(rb"(?m)^;?\[([A-Za-z0-9._-]+)\]", text)
    t.ok(set(accounts) >= {b"defaults", b"local", b"gmail", b"gmail-oauth", b"m365",
                           b"fastmail", b"ses"}, name + ": has the example accounts",
         "accounts: %s" % accounts)
    for acct in accounts:
        if acct == b"defaults":
            continue
        a = acct.decode()
        res = t.run_pushmail(["-C", everything, "-a", a, "--dry-run", "a@example.net"],
                             stdin=msg)
        t.is_eq(res.rc, EX_OK, name + ", all settings on: [%s] loads" % a, *res.describe())
    for frm, acct in ((b"me@gmail.com", b"gmail"), (b"x@contoso.com", b"m365"),
                      (b"root@host1.example.com", b"local")):
        res = t.run_pushmail(["-C", everything, "-f", frm.decode(), "--dry-run", "root"],
                             stdin=msg)
        t.ok(res.rc == 0, name + ": -f %s selects a configured account" % frm.decode(),
             *res.describe())
    for key in (b"host = smtp.gmail.com", b"auth = xoauth2", b"host = smtp.office365.com",
                b"host = smtp.fastmail.com", b"port = 465", b"amazonaws.com",
                b"password_command", b"from_match", b"maildomain", b"timeout",
                b"aliases", b"log", b"tls = off"):
        t.ok(key in text, name + ": mentions %s" % key.decode())


# --------------------------------------------------------------------------

# --------------------------------------------------------------------------
# Cron mail that real providers accept: maildomain qualifies local names in
# the envelope and in the address headers; without it the mail waits.

DEB_CRON_FULL = (b"From: root (Cron Daemon)\n"
                 b"To: root\n"
                 b"Subject: Cron <root@host1> run-parts --report /etc/cron.daily\n"
                 b"MIME-Version: 1.0\n"
                 b"Content-Type: text/plain; charset=UTF-8\n"
                 b"Content-Transfer-Encoding: 8bit\n"
                 b"X-Cron-Env: <SHELL=/bin/sh>\n"
                 b"X-Cron-Env: <LOGNAME=root>\n"
                 b"\n"
                 b"/etc/cron.daily/logrotate: done\n")
CRONIE_ROOT = (b"From: \"(Cron Daemon)\" <root>\n"
               b"To: root\n"
               b"Subject: Cron <root@host1> /usr/local/bin/job\n"
               b"Auto-Submitted: auto-generated\n"
               b"\n"
               b"job output\n")
DEB_CRON_ARGS = ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]
CRONIE_ARGS = ["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"]


def login_name():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name.encode()


def host_names():
    import socket
    short = socket.gethostname()
    try:
        fqdn = socket.getaddrinfo(short, None, flags=socket.AI_CANONNAME)[0][3] or short
    except OSError:
        fqdn = short
    return short, fqdn


def test_cron_mail():
    md = {"maildomain": MAILDOMAIN, "from": None}
    me = login_name()

    name = "Debian cron line, no from key, maildomain"
    res, srv = send(DEB_CRON_ARGS, DEB_CRON_FULL, md)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<%s@example.net>" % me, [b"root@example.net"])
    check_message(name, x, qualified(DEB_CRON_FULL, b"root"), added=(DATE_RE, MSGID_RE))
    if x:
        t.ok(b"From: root@example.net (Cron Daemon)\r\n" in x.message and
             b"To: root@example.net\r\n" in x.message,
             name + ": From keeps its comment, To qualified", "msg: %s" % t.show(x.message))

    name = "cronie line (-t -f root), maildomain"
    res, srv = send(CRONIE_ARGS, CRONIE_ROOT, md)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<root@example.net>", [b"root@example.net"])
    check_message(name, x, qualified(CRONIE_ROOT, b"root"), added=(DATE_RE, MSGID_RE))
    if x:
        t.ok(b'From: "(Cron Daemon)" <root@example.net>\r\n' in x.message,
             name + ": display name kept, address qualified")

    name = "qualified addresses are never rewritten"
    msg = (b"From: Ops Team <ops@example.org> (night shift)\n"
           b"To: a@example.org,\n \"B, Person\" <b@example.com>\n"
           b"Cc: group: c@example.org;\nReply-To: r@example.org\n"
           b"Sender: s@example.org\nSubject: root\n\nbody root\n")
    res, srv = send(["-t"], msg, md)
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<%s@example.net>" % me,
                       [b"a@example.org", b"b@example.com", b"c@example.org"])
    check_message(name, x, msg, added=(DATE_RE, MSGID_RE))

    aliases = write_file("cron-aliases", b"admin: boss@example.org\nops: admin, root\n")
    short, fqdn = host_names()
    name = "user@localhost and user@%s go through aliases" % short
    msg = b"From: root@localhost\nTo: admin@localhost\nCc: ops@%s\nSubject: a\n\nb\n" % (
        short.encode())
    res, srv = send(["-t", "-f", "root@%s" % fqdn], msg, dict(md, aliases=aliases))
    expect_ok(name, res, srv)
    x = check_envelope(name, srv, b"MAIL FROM:<root@example.net>",
                       [b"boss@example.org", b"root@example.net"])
    if x:
        f, _ = head_fields(x.message)
        t.is_eq(f[:3], [b"From: root@example.net", b"To: admin@example.net",
                        b"Cc: ops@example.net"],
                name + ": header addresses qualified (aliases not exposed)")

    name = "no maildomain: Debian cron mail is queued with a notice"
    env = queue_env("q-no-maildomain")
    keys = {"from": None, "queue": "on-failure"}
    res, srv = send(DEB_CRON_ARGS, DEB_CRON_FULL, keys, env=env)
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *info(res, srv))
    t.ok(b"queued as" in res.err and b"maildomain" in res.err,
         name + ": the notice names maildomain", "stderr: %s" % t.show(res.err))
    t.is_eq(len(srv.records), 0, name + ": nothing connected to the relay")
    t.is_eq(len([f for f in queued_files(env) if f.startswith("new/")]), 2,
            name + ": the message waits in new/")
    m = re.search(rb"queued as (\S+)", res.err)
    qid = m.group(1).decode() if m else "none"

    name = "no maildomain: the queue run keeps waiting"
    srv = ScriptedServer().start()
    cfg_no = t.write_config(port=srv.port, **{"from": None, "queue": "on-failure"})
    res = t.run([t.PUSHMAIL, "-C", cfg_no, "-qI" + qid], env=env)
    srv.stop()
    t.is_eq([r.transactions for r in srv.records if r.transactions], [],
            name + ": no MAIL command", *res.describe())
    t.is_eq(len([f for f in queued_files(env) if f.startswith("new/")]), 2,
            name + ": still queued")
    t.ok(b"maildomain" in res.err, name + ": says maildomain", "stderr: %s" % t.show(res.err))

    name = "maildomain set later: -q sends it qualified"
    srv = ScriptedServer().start()
    cfg_md = t.write_config(port=srv.port, **{"from": None, "queue": "on-failure",
                                              "maildomain": MAILDOMAIN})
    res = t.run([t.PUSHMAIL, "-C", cfg_md, "-qI" + qid], env=env)
    srv.stop()
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *res.describe())
    check_envelope(name, srv, b"MAIL FROM:<%s@example.net>" % me, [b"root@example.net"])
    t.is_eq(queued_files(env), [], name + ": the queue is empty")

    name = "no maildomain, queue = never: configuration error"
    res, srv = send(DEB_CRON_ARGS, DEB_CRON_FULL, {"from": None})
    t.is_eq(res.rc, 78, name + ": exit 78", *info(res, srv))
    t.ok(b"maildomain" in res.err, name + ": names maildomain")
    t.is_eq(len(srv.records), 0, name + ": nothing connected to the relay")

    name = "--check reports a missing maildomain"
    res, srv = send(["--check"], b"", {"from": None})
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *info(res, srv))
    t.ok(b"maildomain" in res.out, name + ": says maildomain", "stdout: %s" % t.show(res.out))
    res, srv = send(["--check"], b"", md)
    t.ok(b"maildomain" not in res.out or b"ok    maildomain" in res.out,
         name + ": no warning when it is set", "stdout: %s" % t.show(res.out))


GROUPS = [("callers", test_callers), ("cron-mail", test_cron_mail), ("options", test_options),
          ("option-forms", test_option_forms), ("links", test_links),
          ("bs", test_bs), ("aliases", test_aliases), ("headers", test_headers),
          ("eai", test_eai), ("logging", test_logging),
          ("log-details", test_log_details), ("dry-run", test_dry_run),
          ("contrib", test_contrib)]


def main():
    t.require_pushmail()
    only = os.environ.get("SENDMAIL_ONLY")
    t0 = time.monotonic()
    for gname, fn in GROUPS:
        if only and only not in gname:
            continue
        fn()
    for k, (mail, rcpts) in sorted(RECORDED.items()):
        t.diag("%s envelope: %s %s" % (k, mail.decode("utf-8", "replace"),
                                       b" ".join(rcpts).decode("utf-8", "replace")))
    t.diag("elapsed %.1fs" % (time.monotonic() - t0))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
