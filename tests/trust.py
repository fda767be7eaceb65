#!/usr/bin/env python3
"""Files that steer pushmail must be the caller's or root's (TAP).

SPEC 2/7 and issue 13: a configuration file, and every file it names
(password_file, aliases, tls_trust_file, tls_cert_file/tls_key_file), must
belong to the user running pushmail or to root and be writable by nobody
else; secrets must be private.  Each row makes one such file wrong (owned by
another uid, group-writable, world-writable, readable secret) and asserts
exit 78, a message naming the file and the fix, and that nothing reached the
scripted server.  Rows with a right file show the check does not refuse
what it should accept.  Then the reproduction of the finding itself: root
with HOME pointing at another user's home does not load that user's file or
run its password_command.

Ownership rows need root (chown); they are skipped otherwise.
"""

import os
import sys

sys.path.insert(0, os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer  # noqa: E402

OTHER_UID = 65534
MSG = b"Subject: trust\n\nbody\n"


def make(path, text, mode, uid=None):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    if uid is not None:
        os.chown(path, uid, -1)
    return path


def run_with(cfg_text, rcpt="rcpt@test.example"):
    srv = ScriptedServer(connections=1, lifetime=30, accept_timeout=3)
    with srv:
        cfg = t.write_config(text=cfg_text.replace("PORT", str(srv.port)))
        env = t.base_env()
        res = t.run_pushmail(["-C", cfg, "--no-queue", rcpt],
                             stdin=MSG, env=env)
        srv.stop()
    return res, srv, cfg


BASE = ("[a]\nhost = 127.0.0.1\nport = PORT\ntls = off\nauth = off\n"
        "from = s@test.example\nmaildomain = test.example\n")


def rows(d):
    """(name, config text, the wrong file's path or None, want exit)."""
    pw = os.path.join(d, "pw")
    al = os.path.join(d, "aliases")
    ca = os.path.join(d, "ca.pem")
    key = os.path.join(d, "key.pem")
    plain_auth = ("[a]\nhost = 127.0.0.1\nport = PORT\ntls = off\nauth = plain\n"
                  "allow_plaintext_auth = yes\nuser = u\nfrom = s@test.example\n")
    return [
        ("password_file owned by another user", plain_auth + "password_file = %s\n" % pw,
         lambda: make(pw, "secret\n", 0o600, OTHER_UID), pw, 78, True),
        ("password_file readable by group", plain_auth + "password_file = %s\n" % pw,
         lambda: make(pw, "secret\n", 0o640), pw, 78, False),
        ("password_file group-writable", plain_auth + "password_file = %s\n" % pw,
         lambda: make(pw, "secret\n", 0o620), pw, 78, False),
        ("aliases owned by another user", BASE + "aliases = %s\n" % al,
         lambda: make(al, "rcpt: evil@test.example\n", 0o644, OTHER_UID), al, 78, True),
        ("aliases world-writable", BASE + "aliases = %s\n" % al,
         lambda: make(al, "rcpt: evil@test.example\n", 0o646), al, 78, False),
        ("aliases root/caller-owned 0644 is fine", BASE + "aliases = %s\n" % al,
         lambda: make(al, "other: x@test.example\n", 0o644), None, 0, False),
        ("tls_trust_file writable by others",
         BASE.replace("tls = off", "tls = starttls") + "tls_trust_file = %s\n" % ca,
         lambda: make(ca, "-----BEGIN CERTIFICATE-----\n", 0o666), ca, 78, False),
        ("tls_trust_file owned by another user",
         BASE.replace("tls = off", "tls = starttls") + "tls_trust_file = %s\n" % ca,
         lambda: make(ca, "-----BEGIN CERTIFICATE-----\n", 0o644, OTHER_UID), ca, 78, True),
        ("tls_key_file writable by group",
         BASE.replace("tls = off", "tls = starttls") + "tls_cert_file = %s\n"
         "tls_key_file = %s\n" % (ca, key),
         lambda: (make(ca, "x\n", 0o644), make(key, "k\n", 0o660)), key, 78, False),
    ]


def main():
    t.require_pushmail()
    root = os.geteuid() == 0
    d = t.tmpdir()
    os.chmod(d, 0o755)
    for name, cfg, prepare, bad, want, needs_root in rows(d):
        if needs_root and not root:
            t.skip(name, "needs root (chown)")
            continue
        prepare()
        # aliases apply to bare names only
        res, srv, _ = run_with(cfg, "rcpt" if "aliases" in cfg else "rcpt@test.example")
        t.check_exit(name, res, want, res.describe())
        if bad:
            err = res.err.decode(errors="replace")
            t.ok(bad in err and ("chmod" in err or "neither you" in err),
                 name + ": the message names the file and the fix", *res.describe())
            t.is_eq(len(srv.records), 0, name + ": nothing reached the server")
        for p in (os.path.join(d, n) for n in ("pw", "aliases", "ca.pem", "key.pem")):
            if os.path.exists(p):
                os.unlink(p)

    # the finding: root with HOME=/home/mallory
    if not root:
        t.skip("root does not run another user's password_command", "needs root")
        return t.done()
    home = os.path.join(d, "mallory")
    cdir = os.path.join(home, ".config", "pushmail")
    os.makedirs(cdir)
    marker = os.path.join(d, "ran-as-root")
    cfg = make(os.path.join(cdir, "config.ini"),
               "[m]\nhost = 127.0.0.1\nport = 9\ntls = off\nauth = plain\n"
               "allow_plaintext_auth = yes\nuser = m\n"
               "password_command = touch %s\n" % marker, 0o666, OTHER_UID)
    for p in (home, os.path.join(home, ".config"), cdir):
        os.chown(p, OTHER_UID, -1)
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "PUSHMAIL_QUEUE_DIR":
           os.path.join(d, "queue")}
    res = t.run([t.PUSHMAIL, "rcpt@test.example"], stdin=MSG, env=env)
    t.ok(not os.path.exists(marker),
         "root with HOME at another user's home: that user's password_command "
         "did not run", *res.describe())
    t.check_exit("the message is kept (configuration set aside)", res, 0, res.describe())
    t.ok(cfg.encode() in res.err and b"neither you" in res.err,
         "the notice names the file and why it was refused", *res.describe())
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
