#!/usr/bin/env python3
"""oauth2_system.py - the delivery service with an OAuth2 account (issue 18).

Builds and installs this tree into a throwaway prefix with its own service
user and drop group (tests/system.py's build_install), runs
`pushmail --setup-system`, and writes a system configuration whose account
uses auth = xoauth2 with oauth2_provider = custom, pointing at a scripted
HTTPS token endpoint and a scripted SMTP relay (tests/oauth2.py's).  Then:

  * root runs `pushmail --oauth2-login`: the device grant's tokens land in
    the system spool's oauth2/ directory, owned by the service user, 0600;
  * the access token it got is inside the 60 s margin, so when `nobody`
    drops a message and the delivery service (running as the service user)
    sends it, the service refreshes the token itself, stores the rotated
    refresh token (still the service user's, 0600) and authenticates with
    the new access token.

Needs root, useradd and runuser; skips without them unless CI=true.
PUSHMAIL_TEST_KEEP=1 keeps the temp directory (kept anyway on failure).
"""

import json
import os
import pwd
import shutil
import signal
import stat
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import oauth2 as o  # noqa: E402
import system as sysmode  # noqa: E402
import taplib as t  # noqa: E402

RCPT = "rcpt@example.org"


def system_config(s, ca, ep, smtp_port):
    text = ("[relay]\nhost = 127.0.0.1\nport = %d\ntls = implicit\ntls_trust_file = %s\n"
            "auth = xoauth2\nuser = %s\noauth2_provider = custom\n"
            "oauth2_client_id = %s\noauth2_client_secret = %s\n"
            "oauth2_token_url = %s\noauth2_device_url = %s\noauth2_scope = mail\n"
            "oauth2_trust_file = %s\nmaildomain = test.example\ntimeout = 20\n"
            % (smtp_port, ca, o.USER, o.CLIENT_ID, o.CLIENT_SECRET, ep.url("/token"),
               ep.url("/device"), ca))
    os.makedirs(os.path.dirname(s.config), exist_ok=True)
    with open(s.config, "w") as f:
        f.write(text)
    os.chmod(s.config, 0o640)
    os.chown(s.config, 0, pwd.getpwnam(sysmode.SVC_USER).pw_gid)


def wait_delivered(srv, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if o.delivered(srv):
            return True
        time.sleep(0.1)
    return False


def run_cases(s, C, ca):
    svc = pwd.getpwnam(sysmode.SVC_USER).pw_uid
    ep = o.Endpoint(C, {"/device": [(200, dict(o.DEVICE))],
                        "/token": [o.token_err("authorization_pending"),
                                   o.token_ok(o.AT_OLD, o.RT1, expires_in=30),
                                   o.token_ok(o.AT_NEW, o.RT2)]})
    box = {}
    srv = o.bearer_server(C, {o.AT_NEW}, box)
    try:
        system_config(s, ca, ep, srv.port)
        name = "root --oauth2-login for the system account"
        r = s.as_root(["--oauth2-login"])
        t.check_exit(name, r, 0, r.describe())
        path = os.path.join(s.spool, "oauth2", "relay.json")
        st = os.stat(path) if os.path.exists(path) else None
        t.ok(st and st.st_uid == svc and stat.S_IMODE(st.st_mode) == 0o600,
             name + ": %s belongs to the service user, 0600" % path,
             st and "uid %d mode %o" % (st.st_uid, st.st_mode))
        name = "the delivery service refreshes the token and sends"
        r = s.as_user("nobody", [RCPT], sysmode.message("oauth2 via the service", to=RCPT))
        t.check_exit(name + ": nobody's drop", r, 0, r.describe())
        s.start_daemon()
        t.ok(wait_delivered(srv), name + ": delivered",
             s.log().decode(errors="replace")[-2000:])
        t.is_eq(box.get("tokens"), [o.AT_NEW], name + ": AUTH with the refreshed token")
        refreshes = [f for p, f, _ in ep.requests if f.get("grant_type") == "refresh_token"]
        t.is_eq([f.get("refresh_token") for f in refreshes], [o.RT1],
                name + ": one refresh with the stored refresh token")
        with open(path) as f:
            d = json.load(f)
        st = os.stat(path)
        t.is_eq((d.get("refresh_token"), st.st_uid, stat.S_IMODE(st.st_mode)),
                (o.RT2, svc, 0o600), name + ": rotated refresh token stored, still the "
                "service user's, 0600")
        log = s.log()
        t.ok(not any(x.encode() in log for x in (o.RT1, o.RT2, o.AT_OLD, o.AT_NEW,
                                                  o.CLIENT_SECRET)),
             name + ": no token in the service's log")
    finally:
        srv.stop()
        ep.stop()


def main():
    ci = os.environ.get("CI") == "true"
    for what, ok in (("useradd", shutil.which("useradd")), ("runuser", shutil.which("runuser")),
                     ("certtool", certs.get() is not None)):
        if not ok:
            if ci:
                sysmode.bail("%s not installed (required in CI)" % what)
            t.skip_all("%s not installed" % what)
    if os.geteuid() != 0:
        if ci:
            sysmode.bail("the OAuth2 system mode test must run as root in CI")
        t.skip_all("the service user and set-gid helper need root")
    C = certs.get()
    root = tempfile.mkdtemp(prefix="pushmail-oauth2-system-")
    os.chmod(root, 0o755)
    keep = bool(os.environ.get("PUSHMAIL_TEST_KEEP"))
    failed_before = t._failed
    s = None
    try:
        try:
            pm = sysmode.build_install(root)
        except Exception as e:
            keep = True
            sysmode.bail("cannot build and install (kept %s): %s" % (root, e))
        # the service user reads the CA (certs.get()'s directory is private)
        ca = os.path.join(root, "ca.pem")
        shutil.copy(C.ca, ca)
        os.chmod(ca, 0o644)
        s = sysmode.System(root, pm, None, None)
        setup = s.as_root(["--setup-system"])
        if setup.rc != 0:
            sysmode.bail("--setup-system failed: " + " ".join(setup.describe()))
        run_cases(s, C, ca)
    except Exception:
        t.ok(False, "a step raised", traceback.format_exc())
    finally:
        if s:
            s.stop_daemon(signal.SIGKILL)
        sysmode.remove_service_accounts()
        if t._failed > failed_before or keep:
            t.diag("kept %s" % root)
            if s:
                t.diag("--- daemon log ---", s.log().decode(errors="replace")[-3000:])
        else:
            shutil.rmtree(root, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
