#!/usr/bin/env python3
"""oauth2.py - OAuth2 without helper scripts (issue 18).

pushmail talks to a scripted HTTPS token endpoint (http.server + ssl with
the tests' own CA, so libcurl's certificate verification is real) and to
the scripted SMTP server, which checks the XOAUTH2/OAUTHBEARER message and
accepts only the tokens a case names.  Covered: the cached access token
used while valid (60 s margin), refresh with the stored refresh token, a
rotated refresh token stored atomically (0600), AUTH retried once with a
fresh token after 535 / an error challenge, a revoked refresh token
(invalid_grant) -> 77 with the login command while a queued message waits,
a token endpoint that is down -> temporary (queued, exit 0), an endpoint
whose certificate is not trusted, the device authorization grant
(authorization_pending, slow_down, expired_token, access_denied), and no
token on stderr with -v.
"""

import base64
import contextlib
import http.server
import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import postfixlib  # noqa: E402
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer, handler  # noqa: E402

EX_OK, EX_UNAVAILABLE, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 0, 69, 75, 77, 78
USER = "user@example.com"
RCPT = "rcpt@example.org"
CLIENT_ID = "client-123.apps.example"
CLIENT_SECRET = "Client-Secret-9f8e7d"
RT1, RT2 = "1//Refresh-Token-One-aaaa", "1//Refresh-Token-Two-bbbb"
AT_OLD, AT_NEW = "ya29.Old-Access-Token-1111", "ya29.New-Access-Token-2222"
MSG = (b"From: Sender <sender@example.com>\nTo: rcpt@example.org\n"
       b"Subject: oauth2 test\nMessage-ID: <oauth2@example.com>\n\nHello.\n")
OAUTH_ERROR = b'{"status":"invalid_token","schemes":"bearer","scope":"mail"}'

ENV = None


def b64(b):
    return base64.b64encode(b).decode()


# ---- the token endpoint --------------------------------------------------

class Endpoint:
    """HTTPS on 127.0.0.1: `script` maps a path to a list of (status, body)
    answers, the last one repeating; every request is recorded as
    (path, form dict, monotonic time)."""

    def __init__(self, C, script, pair=None):
        self.script = {k: list(v) for k, v in script.items()}
        self.requests = []
        ep = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(n).decode(),
                                             keep_blank_values=True)
                form = {k: v[0] for k, v in form.items()}
                ep.requests.append((self.path, form, time.monotonic()))
                answers = ep.script.get(self.path) or [(404, {"error": "nope"})]
                ans = answers.pop(0) if len(answers) > 1 else answers[0]
                status, body = ans[0], ans[1]
                if len(ans) > 3:
                    time.sleep(ans[3])   # a slow endpoint
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in (ans[2] if len(ans) > 2 else {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = C.context(pair or C.good)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.th = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.th.start()

    def url(self, path):
        return "https://localhost:%d%s" % (self.port, path)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def token_ok(access, refresh=None, expires_in=3600):
    body = {"access_token": access, "token_type": "Bearer", "expires_in": expires_in}
    if refresh:
        body["refresh_token"] = refresh
    return (200, body)


def token_err(code, desc=None, status=400):
    body = {"error": code}
    if desc:
        body["error_description"] = desc
    return (status, body)


# ---- the SMTP side ---------------------------------------------------------

def bearer_server(C, valid, box, connections=1):
    """AUTH XOAUTH2/OAUTHBEARER accepting the tokens in `valid`; the tokens
    presented go to box["tokens"], the messages to box["msgs"]."""
    def fn(conn, line):
        if conn.auth_step == 0:
            msg = base64.b64decode(line.split(b" ", 2)[2])
            box.setdefault("msgs", []).append(msg)
            m = re.search(rb"\x01auth=Bearer ([^\x01]*)\x01\x01$", msg)
            tok = m.group(1).decode() if m else None
            box.setdefault("tokens", []).append(tok)
            if tok in valid:
                return "235 2.7.0 Authentication successful"
            return "334 " + b64(OAUTH_ERROR)
        return "535 5.7.8 Username and Password not accepted"
    return ScriptedServer(rules={"AUTH": handler(fn)}, ssl_context=C.context(C.good),
                          tls="implicit", connections=connections,
                          extensions=["PIPELINING", "ENHANCEDSTATUSCODES",
                                      "AUTH XOAUTH2 OAUTHBEARER"]).start()


# ---- files ---------------------------------------------------------------

def cache_path(account="test"):
    if os.geteuid() == 0:   # root: the system spool's state
        return os.path.join(ENV["PUSHMAIL_QUEUE_DIR"], "oauth2", account + ".json")
    return os.path.join(ENV["XDG_STATE_HOME"], "pushmail", "oauth2", account + ".json")


def write_cache(token_url, access=AT_OLD, refresh=RT1, expires_at=None, mode=0o600,
                client_id=CLIENT_ID):
    p = cache_path()
    d = os.path.dirname(p)
    for sub in (os.path.dirname(d), d):   # private, as pushmail makes them
        os.makedirs(sub, mode=0o700, exist_ok=True)
        os.chmod(sub, 0o700)
    d = {"version": 1, "token_url": token_url, "client_id": client_id,
         "refresh_token": refresh}
    if access:
        d["access_token"] = access
        d["expires_at"] = int(time.time() + 3600) if expires_at is None else expires_at
    with open(p, "w") as f:
        json.dump(d, f)
    os.chmod(p, mode)


def read_cache():
    try:
        with open(cache_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def clear_state():
    p = cache_path()
    if os.path.exists(p):
        os.unlink(p)
    qd = ENV["PUSHMAIL_QUEUE_DIR"]
    for sub in ("new", "failed", "tmp"):
        d = os.path.join(qd, sub)
        if os.path.isdir(d):
            for n in os.listdir(d):
                f = os.path.join(d, n)
                if os.path.isfile(f):
                    os.unlink(f)


def queued_count():
    qd = os.path.join(ENV["PUSHMAIL_QUEUE_DIR"], "new")
    if not os.path.isdir(qd):
        return 0
    return len([n for n in os.listdir(qd) if n.endswith(".env")])


def config(C, ep, port, mech="xoauth2", **kw):
    keys = dict(tls="implicit", tls_trust_file=C.ca, auth=mech, user=USER,
                oauth2_provider="custom", oauth2_client_id=CLIENT_ID,
                oauth2_client_secret=CLIENT_SECRET,
                oauth2_token_url=ep.url("/token") if ep else "https://localhost:1/token",
                oauth2_device_url=ep.url("/device") if ep else "https://localhost:1/device",
                oauth2_scope="https://mail.example/ offline_access",
                oauth2_trust_file=C.ca)
    keys.update(kw)
    return t.write_config(port=port, **keys)


def run(cfg, *args, stdin=MSG):
    return t.run_pushmail(["-C", cfg] + list(args), stdin=stdin, env=ENV,
                          new_session=True)


def no_secrets(name, res):
    out = res.err + res.out
    leaked = [s for s in (RT1, RT2, AT_OLD, AT_NEW, CLIENT_SECRET) if s.encode() in out]
    t.is_eq(leaked, [], name + ": no token or client secret on stdout/stderr")


def delivered(srv):
    return sum(1 for r in srv.records for x in r.transactions if x.data_raw)


# ---- cases: tokens on send -------------------------------------------------

def case_cached_token_used(C):
    name = "cached access token used while valid"
    clear_state()
    ep = Endpoint(C, {"/token": [token_ok(AT_NEW)]})
    box = {}
    srv = bearer_server(C, {AT_OLD}, box)
    try:
        write_cache(ep.url("/token"), expires_at=int(time.time()) + 600)
        res = run(config(C, ep, srv.port), RCPT)
    finally:
        srv.stop()
        ep.stop()
    t.check_exit(name, res, EX_OK, t.server_diag(res, srv))
    t.is_eq(box.get("tokens"), [AT_OLD], name + ": the cached token went to AUTH")
    t.is_eq(box["msgs"][0], ("user=%s\x01auth=Bearer %s\x01\x01" % (USER, AT_OLD)).encode(),
            name + ": exact XOAUTH2 message")
    t.is_eq(len(ep.requests), 0, name + ": the token endpoint was not asked")
    t.is_eq(delivered(srv), 1, name + ": delivered")


def case_refresh(C, name, expires_at, rotate, mech="xoauth2", verbose=False):
    clear_state()
    ep = Endpoint(C, {"/token": [token_ok(AT_NEW, RT2 if rotate else None)]})
    box = {}
    srv = bearer_server(C, {AT_NEW}, box)
    try:
        write_cache(ep.url("/token"), expires_at=expires_at)
        xfile = os.path.join(t.tmpdir(), "transcript")
        args = (["-v", "-X", xfile] if verbose else []) + [RCPT]
        res = run(config(C, ep, srv.port, mech=mech), *args)
    finally:
        srv.stop()
        ep.stop()
    t.check_exit(name, res, EX_OK, t.server_diag(res, srv))
    t.is_eq(box.get("tokens"), [AT_NEW], name + ": the refreshed token went to AUTH")
    reqs = [r[1] for r in ep.requests]
    t.is_eq(reqs, [{"grant_type": "refresh_token", "refresh_token": RT1,
                    "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}],
            name + ": one refresh_token grant with the stored refresh token")
    c = read_cache() or {}
    t.is_eq((c.get("access_token"), c.get("refresh_token")),
            (AT_NEW, RT2 if rotate else RT1),
            name + ": the cache holds the new access token and the %s refresh token"
            % ("rotated" if rotate else "same"))
    t.ok(abs(c.get("expires_at", 0) - (time.time() + 3600)) < 120,
         name + ": expiry stored", "cache: %r" % c)
    st = os.stat(cache_path())
    t.is_eq(stat.S_IMODE(st.st_mode), 0o600, name + ": cache file is 0600")
    leftovers = [n for n in os.listdir(os.path.dirname(cache_path())) if ".tmp." in n]
    t.is_eq(leftovers, [], name + ": no temporary file left")
    t.is_eq(delivered(srv), 1, name + ": delivered")
    if mech == "oauthbearer":
        t.ok(box["msgs"][0].startswith(b"n,a=user@example.com,\x01host=127.0.0.1\x01"),
             name + ": OAUTHBEARER gs2 header and host", t.show(box["msgs"][0]))
    no_secrets(name, res)
    if verbose:
        with open(xfile, "rb") as f:
            x = f.read()
        leaked = [s for s in (RT1, RT2, AT_OLD, AT_NEW, CLIENT_SECRET) if s.encode() in x]
        t.ok(b"AUTH XOAUTH2 [redacted]" in res.err and not leaked,
             name + ": -v and -X show AUTH redacted, no token", t.show(x))


def case_concurrent_refresh(C):
    """Two sends at once with an expired token and a single-use refresh
    token: the second waits for the first's refresh (the account's lock)
    and uses what it stored instead of spending RT1 again."""
    name = "two sends at once: one refresh, both delivered"
    clear_state()
    ep = Endpoint(C, {"/token": [(200, {"access_token": AT_NEW, "token_type": "Bearer",
                                        "expires_in": 3600, "refresh_token": RT2}, {}, 1.5),
                                 token_err("invalid_grant", "refresh token already used")]})
    box = {}
    srv = bearer_server(C, {AT_NEW}, box, connections=2)
    cfg = config(C, ep, srv.port, queue="never")
    try:
        write_cache(ep.url("/token"), expires_at=int(time.time()) - 10)
        procs = []
        for i in range(2):
            th = threading.Thread(target=lambda: procs.append(run(cfg, RCPT)))
            th.start()
            procs.append(th)
        for th in [p for p in procs if isinstance(p, threading.Thread)]:
            th.join(60)
    finally:
        srv.stop()
        ep.stop()
    results = [p for p in procs if not isinstance(p, threading.Thread)]
    t.is_eq(sorted(r.rc for r in results), [EX_OK, EX_OK], name + ": both exit 0",
            *[t.show(r.err) for r in results])
    t.is_eq(len(ep.requests), 1, name + ": one refresh")
    t.is_eq(delivered(srv), 2, name + ": both delivered")
    t.is_eq((read_cache() or {}).get("refresh_token"), RT2, name + ": RT2 stored")


def case_client_secret(C, name, want_secret, **cfgkw):
    """Where the client secret comes from: oauth2_client_secret, else the
    password sources, else none (a public client)."""
    clear_state()
    ep = Endpoint(C, {"/token": [token_ok(AT_NEW)]})
    box = {}
    srv = bearer_server(C, {AT_NEW}, box)
    try:
        write_cache(ep.url("/token"), expires_at=int(time.time()) - 10)
        res = run(config(C, ep, srv.port, queue="never", **cfgkw), RCPT)
    finally:
        srv.stop()
        ep.stop()
    t.check_exit(name, res, EX_OK, res.describe())
    forms = [r[1] for r in ep.requests]
    t.is_eq([f.get("client_secret") for f in forms], [want_secret],
            name + ": client_secret sent")
    t.is_eq(box.get("tokens"), [AT_NEW], name + ": AUTH with the token, not the secret")


def case_auth_retry(C, name, valid, want_exit, want_tokens, want_requests):
    clear_state()
    ep = Endpoint(C, {"/token": [token_ok(AT_NEW)]})
    box = {}
    srv = bearer_server(C, valid, box)
    try:
        write_cache(ep.url("/token"), expires_at=int(time.time()) + 600)
        res = run(config(C, ep, srv.port, queue="never"), RCPT)
    finally:
        srv.stop()
        ep.stop()
    t.check_exit(name, res, want_exit, t.server_diag(res, srv))
    t.is_eq(box.get("tokens"), want_tokens, name + ": tokens presented to AUTH")
    t.is_eq(len(ep.requests), want_requests, name + ": token endpoint requests")
    auths = [c for c in srv.record.commands if c.startswith(b"AUTH ")]
    t.is_eq(len(auths), len(want_tokens), name + ": AUTH commands")
    t.is_eq(delivered(srv), 1 if want_exit == EX_OK else 0, name + ": delivered or not")
    no_secrets(name, res)


def case_revoked(C, queue):
    name = "revoked refresh token (invalid_grant), queue = %s" % queue
    clear_state()
    ep = Endpoint(C, {"/token": [token_err("invalid_grant", "Token has been expired "
                                           "or revoked.")]})
    box = {}
    srv = bearer_server(C, {AT_NEW}, box, connections=1)
    try:
        write_cache(ep.url("/token"), expires_at=int(time.time()) - 10)
        cfg = config(C, ep, srv.port, queue=queue)
        res = run(cfg, RCPT)
        q = run(cfg, "-q") if queue == "on-failure" else None
    finally:
        srv.stop()
        ep.stop()
    t.check_exit(name, res, EX_NOPERM, t.server_diag(res, srv))
    hint = ("log in again with: pushmail -C %s --oauth2-login -a test" % cfg).encode()
    t.ok(hint in res.err, name + ": stderr has the command to log in again",
         t.show(res.err))
    t.ok(b"invalid_grant" in res.err, name + ": stderr says invalid_grant")
    t.is_eq(srv.accepted, 0, name + ": the relay was not contacted")
    t.is_eq(read_cache().get("refresh_token"), RT1, name + ": the cache is kept")
    if queue == "on-failure":
        t.ok(b"queued as" in res.err, name + ": the message is queued", t.show(res.err))
        t.is_eq(queued_count(), 1, name + ": the message waits in the queue")
        t.is_eq(q.rc, EX_TEMPFAIL, name + ": -q: deferred (75)", t.show(q.err))
        t.ok(b"--oauth2-login -a test" in q.err, name + ": -q names the login command")
        t.is_eq(queued_count(), 1, name + ": after -q the message still waits",
                t.show(q.err))
    else:
        t.is_eq(queued_count(), 0, name + ": nothing queued")
    no_secrets(name, res)


def case_endpoint_down(C, queue):
    name = "token endpoint down, queue = %s" % queue
    clear_state()
    port = t.closed_port()
    ep_url = "https://127.0.0.1:%d/token" % port
    box = {}
    srv = bearer_server(C, {AT_NEW}, box)
    try:
        write_cache(ep_url, expires_at=int(time.time()) - 10)
        cfg = config(C, None, srv.port, queue=queue, oauth2_token_url=ep_url)
        res = run(cfg, RCPT)
    finally:
        srv.stop()
    if queue == "never":
        t.check_exit(name, res, EX_TEMPFAIL, res.describe())
        t.is_eq(queued_count(), 0, name + ": nothing queued")
    else:
        t.check_exit(name, res, EX_OK, res.describe())
        t.ok(b"queued as" in res.err, name + ": the queued notice", t.show(res.err))
        t.is_eq(queued_count(), 1, name + ": the message waits in the queue")
    t.is_eq(srv.accepted, 0, name + ": the relay was not contacted")
    want = ("no access token for account 'test': the token endpoint %s: " % ep_url).encode()
    t.ok(want in res.err, name + ": says which endpoint failed", t.show(res.err))


def send_expired(C, ep):
    """One message (queue = never) with the cached token expired, so that
    pushmail asks ep's /token first; the relay takes AT_NEW.  Stops both."""
    srv = bearer_server(C, {AT_NEW}, {})
    try:
        write_cache(ep.url("/token"), expires_at=int(time.time()) - 10)
        res = run(config(C, ep, srv.port, queue="never"), RCPT)
    finally:
        srv.stop()
        ep.stop()
    return res, srv


def case_endpoint_answer(C, name, answer, want_exit, want_err):
    """The token endpoint answers, but not with a token."""
    clear_state()
    ep = Endpoint(C, {"/token": [answer], "/elsewhere": [token_ok(AT_NEW)]})
    res, srv = send_expired(C, ep)
    t.check_exit(name, res, want_exit, res.describe())
    t.is_eq([r[0] for r in ep.requests], ["/token"], name + ": only /token was asked")
    t.ok(want_err.encode() in res.err, name + ": stderr says '%s'" % want_err,
         t.show(res.err))
    t.is_eq(srv.accepted, 0, name + ": the relay was not contacted")
    t.is_eq((read_cache() or {}).get("refresh_token"), RT1, name + ": cache kept")


def case_untrusted_endpoint(C):
    name = "token endpoint with an untrusted certificate"
    clear_state()
    ep = Endpoint(C, {"/token": [token_ok(AT_NEW)]}, pair=C.selfsigned)
    res, srv = send_expired(C, ep)
    t.check_exit(name, res, EX_TEMPFAIL, res.describe())
    t.is_eq(len(ep.requests), 0, name + ": no request got through")
    t.is_eq(read_cache().get("access_token"), AT_OLD, name + ": cache unchanged")


def case_simple_fail(C, name, setup, want_exit, want_err, **cfgkw):
    clear_state()
    ep = Endpoint(C, {"/token": [token_ok(AT_NEW)]})
    box = {}
    srv = bearer_server(C, {AT_NEW}, box)
    try:
        setup(ep)
        res = run(config(C, ep, srv.port, queue="never", **cfgkw), RCPT)
    finally:
        srv.stop()
        ep.stop()
    t.check_exit(name, res, want_exit, res.describe())
    t.ok(want_err.encode() in res.err, name + ": stderr says '%s'" % want_err,
         t.show(res.err))
    t.is_eq(len(ep.requests), 0, name + ": the token endpoint was not asked")
    t.is_eq(srv.accepted, 0, name + ": the relay was not contacted")


def case_check(C, name, setup, want_exit, want_out, refreshed):
    clear_state()
    ep = Endpoint(C, {"/token": [token_ok(AT_NEW, RT2)]})
    box = {}
    srv = bearer_server(C, {AT_OLD, AT_NEW}, box)
    try:
        setup(ep)
        cfg = config(C, ep, srv.port)
        res = run(cfg, "--check", stdin=b"")
    finally:
        srv.stop()
        ep.stop()
    t.check_exit(name, res, want_exit, res.describe())
    for w in want_out:
        t.ok(w.encode() in res.out, name + ": stdout says '%s'" % w, t.show(res.out))
    t.is_eq(len(ep.requests), 1 if refreshed else 0, name + ": token endpoint requests")
    t.is_eq(delivered(srv), 0, name + ": nothing sent")
    no_secrets(name, res)


def case_hint_quoted(C):
    name = "login command with a configuration path holding a space"
    clear_state()
    d = os.path.join(t.tmpdir(), "my configs")
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "mail.ini")
    shutil.copy(config(C, None, 25, queue="never"), cfg)
    os.chmod(cfg, 0o600)
    res = run(cfg, RCPT)
    t.check_exit(name, res, EX_NOPERM, res.describe())
    t.ok(("log in with: pushmail -C '%s' --oauth2-login -a test" % cfg).encode() in res.err,
         name + ": the path is quoted", t.show(res.err))


def case_bad_name(C):
    name = "account name that cannot be a file name"
    clear_state()
    cfg = t.write_config(port=25, account=".hidden", tls="implicit", auth="xoauth2",
                         user=USER, oauth2_provider="google", oauth2_client_id=CLIENT_ID)
    res = run(cfg, "--oauth2-login", stdin=b"")
    t.check_exit(name, res, EX_CONFIG, res.describe())
    t.ok(b"cannot name a token file" in res.err, name + ": says why", t.show(res.err))
    t.ok(not os.path.exists(os.path.join(os.path.dirname(cache_path()), ".hidden.json")),
         name + ": no file made")


# ---- cases: the device login -----------------------------------------------

DEVICE = {"device_code": "Device-Code-xyz", "user_code": "WDJB-MJHT",
          "verification_uri": "https://example.com/device",
          "expires_in": 60, "interval": 1}


def case_login(C, name, answers, want_exit, want_err=None, want_polls=None,
               device=None):
    clear_state()
    ep = Endpoint(C, {"/device": [(200, device or DEVICE)], "/token": answers})
    try:
        cfg = config(C, ep, 25)
        res = run(cfg, "--oauth2-login", "-a", "test", stdin=b"")
    finally:
        ep.stop()
    t.check_exit(name, res, want_exit, res.describe())
    dev = [r for r in ep.requests if r[0] == "/device"]
    polls = [r for r in ep.requests if r[0] == "/token"]
    t.is_eq([r[1] for r in dev], [{"client_id": CLIENT_ID,
                                   "scope": "https://mail.example/ offline_access"}],
            name + ": one device authorization request")
    t.ok(all(p[1] == {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                      "device_code": "Device-Code-xyz", "client_id": CLIENT_ID,
                      "client_secret": CLIENT_SECRET} for p in polls),
         name + ": every poll is the device_code grant", t.show(polls))
    if want_polls is not None:
        t.is_eq(len(polls), want_polls, name + ": number of polls")
    t.ok(b"https://example.com/device" in res.out and b"WDJB-MJHT" in res.out,
         name + ": the verification URL and the user code are shown", t.show(res.out))
    if want_err:
        t.ok(want_err.encode() in res.err, name + ": stderr says '%s'" % want_err,
             t.show(res.err))
    return res, polls


def case_login_ok(C):
    name = "device login: pending, slow_down, then tokens"
    res, polls = case_login(C, name, [token_err("authorization_pending"),
                                      token_err("slow_down"),
                                      token_ok(AT_NEW, RT2)], EX_OK, want_polls=3)
    c = read_cache() or {}
    t.is_eq((c.get("refresh_token"), c.get("access_token"), c.get("client_id")),
            (RT2, AT_NEW, CLIENT_ID), name + ": tokens stored for this client")
    t.is_eq(stat.S_IMODE(os.stat(cache_path()).st_mode), 0o600, name + ": 0600")
    if len(polls) == 3:
        # RFC 8628 3.5: after slow_down the interval grows by 5 s (1 -> 6);
        # a lower bound only, so no timing can make this flaky
        gap = polls[2][2] - polls[1][2]
        t.ok(gap >= 5.5, name + ": slow_down adds 5 s to the interval "
             "(gap %.1f s)" % gap)
    no_secrets(name, res)


def case_root_system_spool(C):
    """Root logs in for the delivery service: the tokens go to the system
    spool's oauth2/ and belong to the spool's owner (here nobody)."""
    global ENV
    name = "root: tokens in the spool's oauth2/, owned by the spool's owner"
    if os.geteuid() != 0:
        t.skip(name, "needs root")
        return
    saved = ENV
    spool = os.path.join(t.tmpdir(), "system-spool")
    os.makedirs(spool, mode=0o700, exist_ok=True)
    nobody = 65534
    os.chown(spool, nobody, nobody)
    ENV = dict(saved, PUSHMAIL_QUEUE_DIR=spool)
    try:
        # expires_in 30: inside the 60 s margin, so the send refreshes and
        # rewrites the file, which must stay the spool owner's
        res, _ = case_login(C, name + ": login", [token_ok(AT_OLD, RT1, expires_in=30)],
                            EX_OK, want_polls=1)
        p = cache_path()
        st, dst = os.stat(p), os.stat(os.path.dirname(p))
        t.is_eq((st.st_uid, stat.S_IMODE(st.st_mode)), (nobody, 0o600),
                name + ": file owned by the spool owner, 0600")
        t.is_eq((dst.st_uid, stat.S_IMODE(dst.st_mode)), (nobody, 0o700),
                name + ": oauth2/ owned by the spool owner, 0700")
        lst = os.stat(p + ".lock")
        t.is_eq((lst.st_uid, stat.S_IMODE(lst.st_mode)), (nobody, 0o600),
                name + ": the lock file too (the service must be able to open it)")
        ep = Endpoint(C, {"/token": [token_ok(AT_NEW, RT2)]})
        box = {}
        srv = bearer_server(C, {AT_NEW}, box)
        try:
            with open(p) as f:
                d = json.load(f)
            d["token_url"] = ep.url("/token")   # this endpoint now
            with open(p, "w") as f:
                json.dump(d, f)
            res = run(config(C, ep, srv.port, queue="never"), RCPT)
        finally:
            srv.stop()
            ep.stop()
        t.check_exit(name + ": send", res, EX_OK, res.describe())
        st = os.stat(p)
        t.is_eq((st.st_uid, stat.S_IMODE(st.st_mode), read_cache().get("refresh_token")),
                (nobody, 0o600, RT2), name + ": rewritten file still the spool owner's")
    finally:
        ENV = saved


def case_user_state(C):
    """A user (not root): the tokens go to $XDG_STATE_HOME/pushmail/oauth2/,
    the user's, 0600 in a 0700 directory.  (Run as `nobody` when the suite
    runs as root; as another user every case above already uses that path.)"""
    name = "a user's tokens in $XDG_STATE_HOME/pushmail/oauth2"
    if os.geteuid() != 0 or not shutil.which("runuser"):
        t.skip(name, "needs root and runuser to act as another user")
        return
    nobody = 65534
    base = tempfile.mkdtemp(prefix="pushmail-oauth2-user-")
    os.chmod(base, 0o755)
    home, xdg = os.path.join(base, "home"), os.path.join(base, "state")
    for d in (home, xdg):
        os.mkdir(d, 0o700)
        os.chown(d, nobody, nobody)
    ca = os.path.join(base, "ca.pem")
    shutil.copy(C.ca, ca)
    os.chmod(ca, 0o644)
    ep = Endpoint(C, {"/device": [(200, DEVICE)],
                      "/token": [token_ok(AT_OLD, RT1, expires_in=30),
                                 token_ok(AT_NEW, RT2)]})
    box = {}
    srv = bearer_server(C, {AT_NEW}, box)
    try:
        cfg = os.path.join(base, "config.ini")
        with open(cfg, "w") as f:
            f.write("[test]\nhost = 127.0.0.1\nport = %d\ntls = implicit\n"
                    "tls_trust_file = %s\nauth = xoauth2\nuser = %s\nqueue = never\n"
                    "oauth2_provider = custom\noauth2_client_id = %s\n"
                    "oauth2_token_url = %s\noauth2_device_url = %s\noauth2_scope = s\n"
                    "oauth2_trust_file = %s\nfrom = sender@example.com\n"
                    % (srv.port, ca, USER, CLIENT_ID, ep.url("/token"),
                       ep.url("/device"), ca))
        os.chown(cfg, nobody, nobody)
        os.chmod(cfg, 0o600)

        def as_nobody(args, stdin=b""):
            return t.run(["runuser", "-u", "nobody", "--", "env", "-i", "HOME=" + home,
                          "XDG_STATE_HOME=" + xdg, "PATH=/usr/bin:/bin", t.PUSHMAIL,
                          "-C", cfg] + args, stdin=stdin,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        r = as_nobody(["--oauth2-login"])
        t.check_exit(name + ": login", r, EX_OK, r.describe())
        p = os.path.join(xdg, "pushmail", "oauth2", "test.json")
        st = os.stat(p) if os.path.exists(p) else None
        dst = os.stat(os.path.dirname(p)) if st else None
        t.ok(st and (st.st_uid, stat.S_IMODE(st.st_mode)) == (nobody, 0o600) and
             (dst.st_uid, stat.S_IMODE(dst.st_mode)) == (nobody, 0o700),
             name + ": the user's file 0600 in a 0700 directory",
             st and "file uid %d %o, dir uid %d %o" % (st.st_uid, st.st_mode,
                                                       dst.st_uid, dst.st_mode))
        r = as_nobody([RCPT], MSG)
        t.check_exit(name + ": send with a refreshed token", r, EX_OK, r.describe())
        t.is_eq(box.get("tokens"), [AT_NEW], name + ": AUTH with the refreshed token")
        with open(p) as f:
            t.is_eq(json.load(f).get("refresh_token"), RT2, name + ": rotated token stored")
    finally:
        srv.stop()
        ep.stop()
        shutil.rmtree(base, True)


# ---- the real chain: pushmail -> Postfix -> Dovecot -> introspection --------

MOCK_VERSION = "8.2.3"      # oauth2-mock-server, pinned
CHAIN_USER = "user@test.example"
CHAIN_RCPT = "user@test.example"
SEED_RT = "seed-refresh-token-0001"


def mock_prefix():
    """An npm prefix with oauth2-mock-server: $PUSHMAIL_OAUTH2_MOCK_DIR (made
    by contrib/install-deps), else installed now into the test's directory.
    None when neither works."""
    pre = os.environ.get("PUSHMAIL_OAUTH2_MOCK_DIR") or "/usr/local/lib/pushmail-test"
    if pre and os.path.isdir(os.path.join(pre, "node_modules", "oauth2-mock-server")):
        return pre
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        return None
    pre = os.path.join(t.tmpdir(), "npm")
    try:
        r = subprocess.run([npm, "install", "--prefix", pre, "--no-audit", "--no-fund",
                            "--loglevel=error", "oauth2-mock-server@" + MOCK_VERSION],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        t.diag("npm install failed: " + r.stderr.decode(errors="replace")[-500:])
        return None
    return pre


class Mock:
    """tests/oauth2mock.mjs run from the npm prefix (so its imports resolve)."""

    def __init__(self, prefix, tc):
        self.ca = tc.ca
        script = os.path.join(prefix, "oauth2mock.mjs")
        shutil.copy(os.path.join(t.SRCDIR, "oauth2mock.mjs"), script)
        self.out = open(os.path.join(prefix, "mock.log"), "w+b")
        self.proc = subprocess.Popen(["node", script, tc.cert, tc.key, CHAIN_USER, SEED_RT],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.out, start_new_session=True)
        line = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not line:
            line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("oauth2mock did not start: " + self.log())
        self.port = json.loads(line)["port"]

    def url(self, path):
        return "https://localhost:%d%s" % (self.port, path)

    def _ctx(self):
        return ssl.create_default_context(cafile=self.ca)

    def stats(self):
        with urllib.request.urlopen(self.url("/stats"), context=self._ctx(), timeout=10) as r:
            return json.load(r)

    def revoke(self, token):
        data = urllib.parse.urlencode({"token": token}).encode()
        with urllib.request.urlopen(self.url("/revoke"), data=data, context=self._ctx(),
                                    timeout=10) as r:
            r.read()

    def log(self):
        self.out.seek(0)
        return self.out.read().decode(errors="replace")[-2000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.out.close()


class DovecotOAuth2(postfixlib.DovecotAuth):
    """DovecotAuth with Dovecot 2.3's oauth2 passdb instead of passwd-file:
    XOAUTH2 and OAUTHBEARER tokens checked by RFC 7662 introspection (POST)."""

    def __init__(self, tmpdir, socket_path, introspection_url, ca):
        super().__init__(tmpdir, socket_path, {}, mechanisms=("xoauth2", "oauthbearer"))
        self.oauth2_conf = os.path.join(self.root, "oauth2.conf.ext")
        self.introspection_url, self.ca = introspection_url, ca

    def _config(self):
        text = super()._config()
        start = text.index("passdb {")
        end = text.index("}", start) + 1
        return (text[:start] + "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 "
                "oauthbearer\n  args = %s\n}" % self.oauth2_conf + text[end:])

    def start(self):
        os.makedirs(self.root, exist_ok=True)
        with open(self.oauth2_conf, "w") as f:
            f.write("introspection_mode = post\nintrospection_url = %s\n"
                    "username_attribute = username\nactive_attribute = active\n"
                    "active_value = true\ntls_ca_cert_file = %s\n"
                    % (self.introspection_url, self.ca))
        os.chmod(self.oauth2_conf, 0o644)
        return super().start()


class Chain:
    def __init__(self, pf, mock, tc):
        self.pf, self.mock, self.tc = pf, mock, tc

    def config(self, mech="xoauth2", **kw):
        keys = dict(port=self.pf.ports["submission"], tls="starttls",
                    tls_trust_file=self.tc.ca, auth=mech, user=CHAIN_USER,
                    oauth2_provider="custom", oauth2_client_id=CLIENT_ID,
                    oauth2_token_url=self.mock.url("/token"),
                    oauth2_trust_file=self.tc.ca, queue="never", timeout="20")
        keys.update(kw)
        return t.write_config(**keys)

    def send(self, name, cfg, subject):
        msg = ("From: sender@example.com\nTo: %s\nSubject: %s\n\nhello\n"
               % (CHAIN_RCPT, subject)).encode()
        return t.run_pushmail(["-C", cfg, CHAIN_RCPT], stdin=msg, env=ENV,
                              new_session=True)

    def arrived(self, subject):
        got = self.pf.wait_for_maildir(1, timeout=30)
        return any(subject.encode() in m for m in got)


def chain_cases(h):
    mock = h.mock
    clear_state()
    write_cache(mock.url("/token"), access=None, refresh=SEED_RT)

    name = "chain: XOAUTH2 with a refreshed token, checked by introspection"
    before = mock.stats()
    r = h.send(name, h.config(), "chain-1")
    t.check_exit(name, r, EX_OK, r.describe() + ["mock: " + mock.log(),
                 "dovecot: " + h.dv.log_tail(), "postfix: " + h.pf.log_tail()])
    t.ok(h.arrived("chain-1"), name + ": delivered through Postfix")
    after = mock.stats()
    t.is_eq(after["refreshes"] - before["refreshes"], 1, name + ": one refresh")
    t.ok(after["active"] > before["active"], name + ": Dovecot introspected the token")
    rt = (read_cache() or {}).get("refresh_token")
    t.ok(rt and rt != SEED_RT, name + ": the rotated refresh token is stored")

    name = "chain: OAUTHBEARER with the cached token"
    before = mock.stats()
    r = h.send(name, h.config(mech="oauthbearer"), "chain-2")
    t.check_exit(name, r, EX_OK, r.describe() + ["dovecot: " + h.dv.log_tail()])
    t.ok(h.arrived("chain-2"), name + ": delivered")
    after = mock.stats()
    t.is_eq(after["refreshes"], before["refreshes"], name + ": no refresh")

    name = "chain: access token revoked early: refreshed, AUTH retried"
    mock.revoke(read_cache()["access_token"])
    before = mock.stats()
    r = h.send(name, h.config(), "chain-3")
    t.check_exit(name, r, EX_OK, r.describe() + ["dovecot: " + h.dv.log_tail()])
    t.ok(h.arrived("chain-3"), name + ": delivered")
    after = mock.stats()
    t.is_eq(after["refreshes"] - before["refreshes"], 1, name + ": one refresh")
    t.ok(after["introspections"] - before["introspections"] >= 2,
         name + ": both tokens introspected")

    name = "chain: refresh token revoked: 77 with the login command"
    c = read_cache()
    mock.revoke(c["refresh_token"])
    c["expires_at"] = int(time.time()) - 10
    with open(cache_path(), "w") as f:
        json.dump(c, f)
    cfg = h.config()
    r = h.send(name, cfg, "chain-4")
    t.check_exit(name, r, EX_NOPERM, r.describe())
    t.ok(("--oauth2-login -a test").encode() in r.err, name + ": the login command",
         t.show(r.err))
    t.is_eq(h.pf.drain_maildir(), [], name + ": nothing delivered")
    t.is_eq(h.pf.queue_count(), 0, name + ": Postfix's queue is empty")


def case_chain():
    ci = os.environ.get("CI") == "true"
    name = "chain pushmail -> Postfix -> Dovecot oauth2 passdb -> introspection"
    missing = None
    if os.geteuid() != 0:
        missing = "needs root (Postfix, Dovecot)"
    elif not postfixlib.find_postfix() or not postfixlib.find_dovecot():
        missing = "postfix or dovecot-core not installed"
    prefix = None if missing else mock_prefix()
    if not missing and not prefix:
        missing = "node/npm or oauth2-mock-server not available"
    if missing:
        if ci and os.geteuid() == 0:
            t.ok(False, name + ": " + missing + " (required in CI)")
        else:
            t.skip(name, missing)
        return
    tmp = tempfile.mkdtemp(prefix="pushmail-oauth2-chain-")
    os.chmod(tmp, 0o755)
    mock = pf = dv = None
    failed_before = t._failed
    try:
        tc = postfixlib.TestCerts(os.path.join(tmp, "certs"))
        mock = Mock(prefix, tc)
        sasl = {"smtpd_sasl_auth_enable": "yes",
                "smtpd_client_restrictions": "permit_sasl_authenticated,reject",
                "smtpd_relay_restrictions": "permit_sasl_authenticated,reject"}
        pf = postfixlib.PostfixInstance(tmp, main_cf={
            "smtpd_tls_cert_file": tc.cert, "smtpd_tls_key_file": tc.key,
            "smtpd_sasl_type": "dovecot", "smtpd_sasl_path": "private/auth",
            "smtpd_tls_auth_only": "yes"})
        pf.add_inet_service("submission", options=dict(
            smtpd_tls_security_level="encrypt", **sasl))
        pf.start()
        dv = DovecotOAuth2(tmp, os.path.join(pf.queue_dir, "private", "auth"),
                           mock.url("/introspect"), tc.ca).start()
        h = Chain(pf, mock, tc)
        h.dv = dv
        chain_cases(h)
    except Exception:
        t.ok(False, name + " raised", traceback.format_exc(),
             *(["mock: " + mock.log()] if mock else []))
    finally:
        for x in (dv, pf, mock):
            if x:
                with contextlib.suppress(Exception):
                    x.stop()
        if t._failed > failed_before or os.environ.get("PUSHMAIL_TEST_KEEP"):
            t.diag("kept " + tmp)
        else:
            shutil.rmtree(tmp, True)


# ---- main ------------------------------------------------------------------

def check_not_linked():
    """libcurl is opened when OAuth2 needs it, not linked (src/curl_dl.h):
    every other run is spared its start-up."""
    p = subprocess.run(["readelf", "-d", t.PUSHMAIL], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    needed = re.findall(rb"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout)
    t.ok(needed and not any(n.startswith(b"libcurl") for n in needed),
         "pushmail does not link libcurl (NEEDED: %s)" % b" ".join(needed).decode())


def main():
    global ENV
    t.require_pushmail()
    check_not_linked()
    C = certs.get()
    if C is None:
        if os.environ.get("CI") == "true":
            print("Bail out! certtool missing (required in CI)")
            return 1
        t.skip_all("certtool (gnutls-bin) not installed")
    ENV = t.base_env()
    now = int(time.time())

    case_cached_token_used(C)
    case_refresh(C, "expired access token refreshed", now - 10, rotate=False)
    case_refresh(C, "access token within the 60 s margin refreshed", now + 30,
                 rotate=False)
    case_refresh(C, "rotated refresh token stored", now - 10, rotate=True)
    case_refresh(C, "OAUTHBEARER with a refreshed token", now - 10, rotate=False,
                 mech="oauthbearer")
    case_refresh(C, "-v: refresh without tokens on stderr", now - 10, rotate=True,
                 verbose=True)
    case_concurrent_refresh(C)
    case_client_secret(C, "client secret from password_command", "Cmd-Secret-42",
                       oauth2_client_secret=None, password_command="echo Cmd-Secret-42")
    case_client_secret(C, "public client: no client secret", None,
                       oauth2_client_secret=None)
    case_auth_retry(C, "server refuses the cached token: refreshed, AUTH retried once",
                    {AT_NEW}, EX_OK, [AT_OLD, AT_NEW], 1)
    case_auth_retry(C, "server refuses the fresh token too: no third try",
                    set(), EX_NOPERM, [AT_OLD, AT_NEW], 1)
    case_revoked(C, "never")
    case_revoked(C, "on-failure")
    case_endpoint_down(C, "never")
    case_endpoint_down(C, "on-failure")
    case_untrusted_endpoint(C)
    case_endpoint_answer(C, "token endpoint answer over 64 KiB: temporary",
                         (200, b"{" + b" " * 70000 + b"}"), EX_TEMPFAIL,
                         "larger than 64 KiB")
    case_endpoint_answer(C, "token endpoint 503: temporary", (503, b"<html>busy</html>"),
                         EX_TEMPFAIL, "HTTP 503")
    case_endpoint_answer(C, "invalid_client: a configuration error",
                         token_err("invalid_client", status=401), EX_CONFIG,
                         "check oauth2_client_id")
    case_endpoint_answer(C, "a redirect is not followed",
                         (307, b"", {"Location": "/elsewhere"}), EX_TEMPFAIL,
                         "HTTP 307")
    case_simple_fail(C, "no login yet: 77 with the login command", lambda ep: None,
                     EX_NOPERM, "no OAuth2 login yet; log in with: pushmail -C ")
    case_simple_fail(C, "cache of another client id: log in again",
                     lambda ep: write_cache(ep.url("/token"), client_id="other"),
                     EX_NOPERM, "--oauth2-login -a test")
    case_simple_fail(C, "cache readable by others refused",
                     lambda ep: write_cache(ep.url("/token"), mode=0o644),
                     EX_CONFIG, "mode 0644")
    case_simple_fail(C, "http token endpoint refused",
                     lambda ep: None, EX_CONFIG, "must be an https:// URL",
                     oauth2_token_url="http://127.0.0.1:1/token")

    case_check(C, "--check: cached token and its expiry",
               lambda ep: write_cache(ep.url("/token"), expires_at=now + 7200),
               EX_OK, ["ok    oauth2 token", cache_path(), "access token valid until "
                       + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now + 7200)),
                       "ok    authenticate"], refreshed=False)
    case_check(C, "--check: expired token refreshed",
               lambda ep: write_cache(ep.url("/token"), expires_at=now - 7200),
               EX_OK, ["ok    oauth2 token", "access token valid until"], refreshed=True)
    case_check(C, "--check: no login", lambda ep: None, EX_NOPERM,
               ["FAIL  oauth2 token", "--oauth2-login -a test"], refreshed=False)
    case_bad_name(C)
    case_hint_quoted(C)
    name = "--oauth2-login for an account with auth = plain"
    r = run(t.write_config(port=25, tls="implicit", auth="plain", user=USER,
                           oauth2_provider="google", oauth2_client_id=CLIENT_ID),
            "--oauth2-login", stdin=b"")
    t.check_exit(name, r, EX_CONFIG, r.describe())
    t.ok(b"does not use OAuth2" in r.err, name + ": says why", t.show(r.err))

    case_login_ok(C)
    case_root_system_spool(C)
    case_user_state(C)
    case_chain()
    case_login(C, "device login: access_denied",
               [token_err("authorization_pending"), token_err("access_denied")],
               EX_NOPERM, "declined", want_polls=2)
    t.is_eq(read_cache(), None, "device login: access_denied: nothing stored")
    case_login(C, "device login: expired_token", [token_err("expired_token")],
               EX_TEMPFAIL, "expired", want_polls=1)
    case_login(C, "device login: no refresh token issued", [token_ok(AT_NEW)],
               EX_UNAVAILABLE, "no refresh token", want_polls=1)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
