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

        env_cfg = t.base_env(PUSHMAIL_CONFIG=cfg)
        res = case("PUSHMAIL_CONFIG is used", ["--dry-run", RCPT], EX_OK, env=env_cfg,
                   out=[b"MAIL FROM:<sender@example.com>"])
    finally:
        srv.stop()
    t.is_eq(srv.errors, [], "scripted server ran cleanly")
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
