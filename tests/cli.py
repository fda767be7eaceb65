#!/usr/bin/env python3
"""cli.py - command line and configuration outcomes (SPEC 1, 2, 3).

Flip the two feature switches below when the features land; the cases that
depend on them change their expectation accordingly.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer  # noqa: E402

# True once STARTTLS is implemented: tls = starttls against a server that does
# not offer STARTTLS must then refuse to send (69) instead of 78.
TLS_SUPPORTED = True
# True once the local queue exists: with no configuration at all the message
# is queued (exit 0, notice on stderr) instead of 78.
QUEUE_WITHOUT_CONFIG = True

EX_OK, EX_USAGE, EX_NOINPUT, EX_UNAVAILABLE, EX_CONFIG = 0, 64, 66, 69, 78
MSG = b"From: sender@example.com\nTo: rcpt@example.org\nSubject: cli\n\nbody\n"
RCPT = "rcpt@example.org"


def case(name, args, want, stdin=MSG, env=None, out=None, err=None,
         err_lines=None, no_connect=None):
    """Run pushmail; assert the exit status and optional stdout/stderr
    substrings (lists of bytes)."""
    before = no_connect.accepted if no_connect is not None else 0
    res = t.run_pushmail(args, stdin=stdin, env=env)
    if no_connect is not None:
        time.sleep(0.1)   # let the server thread accept a connection, if any
    t.is_eq(res.rc, want, name + ": exit %d" % want, *res.describe())
    for s in out or []:
        t.ok(s in res.out, name + ": stdout has %s" % t.show(s), "stdout: %s" % t.show(res.out))
    for s in err or []:
        t.ok(s in res.err, name + ": stderr has %s" % t.show(s), "stderr: %s" % t.show(res.err))
    if err_lines is not None:
        n = len(res.err.strip().splitlines())
        t.is_eq(n, err_lines, name + ": %d line(s) on stderr" % err_lines,
                "stderr: %s" % t.show(res.err))
    if no_connect is not None:
        t.is_eq(no_connect.accepted - before, 0, name + ": nothing connected to the server")
    return res


def rcpt_lines(out):
    return [l for l in out.splitlines() if l.startswith(b"RCPT TO:")]


def in_fresh_dir(fn):
    """Run fn() with a new empty working directory; return (result, files)."""
    d = os.path.join(t.tmpdir(), "cwd-%d" % len(os.listdir(t.tmpdir())))
    os.makedirs(d)
    old = os.getcwd()
    os.chdir(d)
    try:
        res = fn()
    finally:
        os.chdir(old)
    return res, sorted(os.listdir(d))


def verp_and_transcript(srv, cfg):
    dry = ["-C", cfg, "--dry-run"]
    for word in ("-XV", "-XV+=", "-XV-="):
        res, files = in_fresh_dir(lambda: case(
            "%s (Postfix VERP) accepted" % word, dry + ["-v", word, RCPT], EX_OK,
            out=[b"RCPT TO:<rcpt@example.org>"], err=[word.encode()]))
        t.is_eq(files, [], "%s: no file created in the working directory" % word)
        t.is_eq(rcpt_lines(res.out), [b"RCPT TO:<rcpt@example.org>"],
                "%s: the only recipient is the argument" % word)
    res, files = in_fresh_dir(lambda: case(
        "-X V (separate word) is VERP too", dry + ["-X", "V", RCPT], EX_OK))
    t.is_eq(files, [], "-X V: no file created")
    path = os.path.join(t.tmpdir(), "transcript.txt")
    case("-X FILE keeps the transcript", ["-C", cfg, "-X", path, RCPT], EX_OK)
    with open(path, "rb") as f:
        text = f.read()
    t.ok(b"-> MAIL FROM:<sender@example.com>" in text,
         "-X FILE: the transcript has the MAIL command", "file: %s" % t.show(text))
    path2 = os.path.join(t.tmpdir(), "Vtranscript")
    case("-XFILE attached (not V..) is a transcript", ["-C", cfg, "-X" + path2, RCPT],
         EX_OK)
    t.ok(os.path.exists(path2), "-X/path/Vtranscript: the file is written")


def o_words(srv, cfg):
    dry = ["-C", cfg, "--dry-run"]
    for args, name in ((["-o", "x", "value"], "-o x value"),
                       (["-o", "Q", "/var/spool"], "-o Q /var/spool"),
                       (["-o", "em"], "-o em"),
                       (["-o", "DeliveryMode=b"], "-o DeliveryMode=b"),
                       (["-o", "i"], "-o i")):
        res = case(name + ": no recipient from the option", dry + args + [RCPT], EX_OK)
        t.is_eq(rcpt_lines(res.out), [b"RCPT TO:<rcpt@example.org>"],
                name + ": RCPT only for the real recipient", "stdout: %s" % t.show(res.out))
        res = case(name + " after the recipient", dry + [RCPT] + args, EX_OK)
        t.is_eq(rcpt_lines(res.out), [b"RCPT TO:<rcpt@example.org>"],
                name + " after the recipient: RCPT only for it")
    res = case("-o i root: a boolean option takes no value", dry + ["-o", "i", "root"],
               EX_OK)
    t.ok(any(b"root" in l for l in rcpt_lines(res.out)),
         "-o i root: root stays a recipient", "stdout: %s" % t.show(res.out))
    case("-o at the end needs an argument", ["-C", cfg, RCPT, "-o"], EX_USAGE,
         no_connect=srv)


def queue_flags(srv):
    spool = os.path.join(t.tmpdir(), "cli-queue")
    env = t.base_env(PUSHMAIL_QUEUE_DIR=spool)
    dead = t.write_config(port=t.closed_port(), queue="always")
    res = case("queued for -qI", ["-C", dead, RCPT], EX_OK, env=env, err=[b"queued as"])
    qid = res.err.split(b"queued as ")[1].split()[0].decode() if b"queued as " in res.err \
        else "none"
    live = t.write_config(port=srv.port, queue="always")
    before = len(srv.records)
    case("-qIID delivers that message now", ["-C", live, "-qI" + qid], EX_OK, env=env,
         stdin=b"")
    time.sleep(0.1)
    got = [x.message for rec in srv.records[before:] for x in rec.transactions]
    t.ok(any(m and b"Subject: cli" in m for m in got), "-qIID: the relay got the message")
    t.ok(not os.listdir(os.path.join(spool, "new")), "-qIID: the queue is empty after")
    case("-qI without an id", ["-C", live, "-qI"], EX_USAGE, env=env, stdin=b"",
         err=[b"-qI"], no_connect=srv)
    case("-qRsite is refused (no ETRN)", ["-C", live, "-qRexample.org"], EX_USAGE,
         env=env, stdin=b"", err=[b"ETRN"], err_lines=1, no_connect=srv)


def mode_letters(srv, cfg):
    aliases = os.path.join(t.tmpdir(), "cli-aliases")
    with open(aliases, "w") as f:
        f.write("root: admin@example.org\npostmaster: root\n")
    acfg = t.write_config(port=srv.port, aliases=aliases, maildomain="example.net")
    case("-I is newaliases", ["-C", acfg, "-I"], EX_OK, stdin=b"", no_connect=srv)
    case("-bi checks the aliases", ["-C", acfg, "-bi"], EX_OK, stdin=b"", no_connect=srv)
    res = case("-bv reports recipients after aliases", ["-C", acfg, "-bv", "postmaster",
                                                         "bob", "c@example.org"], EX_OK,
               stdin=b"", no_connect=srv)
    for want in (b"admin@example.org", b"bob@example.net", b"c@example.org"):
        t.ok(want in res.out, "-bv: stdout names %s" % t.show(want),
             "stdout: %s" % t.show(res.out))
    case("-bv needs recipients", ["-C", acfg, "-bv"], EX_USAGE, stdin=b"",
         no_connect=srv)
    for letter in ("-bh", "-bH"):
        res = case(letter + " is accepted and ignored", ["-C", cfg, "-v", letter], EX_OK,
                   stdin=MSG, no_connect=srv, err=[letter.encode()])
        t.is_eq(res.out, b"", letter + ": nothing on stdout")


def help_lists_modes():
    res = case("--help lists the modes", ["--help"], EX_OK)
    for w in (b"-q", b"-bp", b"-bs", b"--queue-retry", b"--queue-delete", b"--check",
              b"--serverinfo", b"-bi", b"-bv"):
        t.ok(w in res.out, "--help mentions %s" % w.decode(), "stdout: %s" % t.show(res.out))


def check_keeps_every_step():
    """--check prints every step that ran, also when a later one fails."""
    import certs
    C = certs.get()
    if C is None:
        t.skip("--check steps", "certtool or Python ssl not available")
        return
    exts = ["PIPELINING", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN"]
    for name, rules, want_rc in (("AUTH refused", {"AUTH": "535 5.7.8 bad credentials"}, 77),
                                 ("all good", {}, EX_OK)):
        srv = ScriptedServer(rules=rules, ssl_context=C.context(C.good), tls="starttls",
                             extensions=["PIPELINING", "STARTTLS"],
                             tls_extensions=exts).start()
        try:
            cfgp = t.write_config(port=srv.port, tls="starttls", tls_trust_file=C.ca,
                                  auth="plain", user="me@example.com", password="secret1")
            res = case("--check, " + name, ["-C", cfgp, "--check"], want_rc, stdin=b"")
        finally:
            srv.stop()
        for w in (b"ok    configuration", b"ok    resolve", b"ok    connect", b"ok    TLS"):
            t.ok(w in res.out, "--check, %s: says %s" % (name, t.show(w)),
                 "stdout: %s" % t.show(res.out))
        want = b"ok    authenticate" if want_rc == EX_OK else b"FAIL  authenticate"
        t.ok(want in res.out, "--check, %s: says %s" % (name, t.show(want)),
             "stdout: %s" % t.show(res.out))
        t.ok(b"TLS1." in res.out, "--check, %s: the TLS line has the version" % name)
        if want_rc == EX_OK:
            t.ok(b"me@example.com with PLAIN" in res.out,
                 "--check, %s: names the mechanism used" % name)
        t.ok(b"secret1" not in res.out + res.err, "--check, %s: no password shown" % name)


def options_that_misroute(srv, cfg):
    verp_and_transcript(srv, cfg)
    o_words(srv, cfg)
    queue_flags(srv)
    mode_letters(srv, cfg)
    help_lists_modes()
    check_keeps_every_step()


def main():
    t.require_pushmail()
    srv = ScriptedServer(connections=100, lifetime=120).start()
    try:
        cfg = t.write_config(port=srv.port)

        res = case("--version", ["--version"], EX_OK, out=[b"pushmail "])
        t.ok(res.out.startswith(b"pushmail "), "--version: starts with 'pushmail '",
             "stdout: %s" % t.show(res.out))
        case("--help", ["--help"], EX_OK, out=[b"pushmail"])

        dry = ["-C", cfg, "--dry-run"]
        case("-oem -odi -B8BITMIME -oXyz accepted",
             dry + ["-oem", "-odi", "-B8BITMIME", "-oXyz", RCPT], EX_OK,
             out=[b"RCPT TO:<rcpt@example.org>"])
        case("-oi -i -odb -m accepted",
             dry + ["-oi", "-i", "-odb", "-m", RCPT], EX_OK)
        case("cronie: -FCronDaemon -i -odi -oem -oi -t -f user",
             dry + ["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t",
                    "-f", "cron@example.com"], EX_OK,
             out=[b"MAIL FROM:<cron@example.com>", b"RCPT TO:<rcpt@example.org>"])
        case("Debian cron: -FCronDaemon -i -B8BITMIME -oem rcpt",
             dry + ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", RCPT], EX_OK)
        case("mutt: -oem -oi -B8BITMIME -f a -N n -R r -- rcpt",
             dry + ["-oem", "-oi", "-B8BITMIME", "-f", "mutt@example.com",
                    "-N", "never", "-R", "hdrs", "--", RCPT], EX_OK,
             out=[b"MAIL FROM:<mutt@example.com>"])
        case("git send-email: -i rcpt", dry + ["-i", RCPT], EX_OK)
        case("PHP / sudo: -t -i", dry + ["-t", "-i"], EX_OK,
             out=[b"RCPT TO:<rcpt@example.org>"])
        case("ignored letters -G -n -U", dry + ["-G", "-n", "-U", RCPT], EX_OK)
        case("-f <> is the null sender", dry + ["-f", "<>", RCPT], EX_OK,
             out=[b"MAIL FROM:<>"])
        case("unknown long option", ["-C", cfg, "--no-such-option", RCPT], EX_USAGE,
             err=[b"no-such-option"], no_connect=srv)

        case("no recipients", ["-C", cfg], EX_USAGE, err_lines=1, no_connect=srv)
        case("no recipients with -t and no To/Cc/Bcc", ["-C", cfg, "-t"], EX_USAGE,
             stdin=b"From: sender@example.com\nSubject: x\n\nbody\n",
             err_lines=1, no_connect=srv)
        case("CR/LF in a recipient", ["-C", cfg, "a@example.org\r\nRSET"], EX_USAGE,
             err_lines=1, no_connect=srv)

        missing = os.path.join(t.tmpdir(), "no-such-config.ini")
        case("missing config file with -C", ["-C", missing, RCPT], EX_NOINPUT,
             err=[b"no-such-config.ini"], err_lines=1)

        tls_cfg = t.write_config(port=srv.port, tls="starttls")
        if TLS_SUPPORTED:
            case("tls = starttls, STARTTLS not offered", ["-C", tls_cfg, RCPT],
                 EX_UNAVAILABLE, err=[b"STARTTLS"], err_lines=1)
        else:
            case("tls = starttls not yet supported", ["-C", tls_cfg, RCPT], EX_CONFIG,
                 err=[b"not yet supported"], err_lines=1, no_connect=srv)

        bad_key = t.write_config(port=srv.port, hots="x")
        case("unknown config key", ["-C", bad_key, RCPT], EX_CONFIG,
             err=[b"hots"], err_lines=None, no_connect=srv)

        empty = os.path.join(t.tmpdir(), "empty-home")
        os.makedirs(empty, exist_ok=True)
        env = t.base_env(HOME=empty, XDG_CONFIG_HOME=empty, PUSHMAIL_CONFIG=None)
        if QUEUE_WITHOUT_CONFIG:
            case("no configuration at all: queued", [RCPT], EX_OK, env=env,
                 err=[b"queue"], no_connect=srv)
        else:
            case("no configuration at all", [RCPT], EX_CONFIG, env=env,
                 err_lines=1, no_connect=srv)

        options_that_misroute(srv, cfg)

        env_cfg = t.base_env(PUSHMAIL_CONFIG=cfg)
        res = case("PUSHMAIL_CONFIG is used", ["--dry-run", RCPT], EX_OK, env=env_cfg,
                   out=[b"MAIL FROM:<sender@example.com>"])
    finally:
        srv.stop()
    t.is_eq(srv.errors, [], "scripted server ran cleanly")
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
