#!/usr/bin/env python3
"""auth.py - pushmail's SMTP AUTH against the scripted server (SPEC 2, 3, 4, 7).

The server side of every mechanism is written here in Python and checks
what pushmail sends: PLAIN and LOGIN compare the decoded credentials,
CRAM-MD5 recomputes the HMAC, SCRAM-SHA-1/256 (RFC 5802/7677) verify the
client proof and send a server signature, the -PLUS variants check the
channel binding against the server's own view of the TLS connection
(tls-unique on TLS 1.2; tls-exporter on TLS 1.3 through OpenSSL's
SSL_export_keying_material, reached with ctypes), OAUTHBEARER (RFC 7628)
and XOAUTH2 compare the exact client message.

Each row runs pushmail once (implicit TLS with the test CA unless the row
says otherwise) and asserts the exact exit status, the exact commands the
server recorded, what the server-side check concluded, and that no secret
reaches stderr.
"""

import base64
import ctypes
import hashlib
import hmac
import os
import re
import ssl
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer, handler  # noqa: E402

EX_OK, EX_NOINPUT, EX_UNAVAILABLE = 0, 66, 69
EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM, EX_CONFIG = 75, 76, 77, 78

RCPT = "rcpt@example.org"
USER = "user@example.com"
PASSWORD = "Auth-Pw-5e1d8b"
TOKEN = "ya29.Token-0123456789abcdefXYZ"
MSG = (b"From: Sender <sender@example.com>\n"
       b"To: rcpt@example.org\n"
       b"Subject: AUTH test\n"
       b"Date: Thu, 1 Jan 2026 00:00:00 +0000\n"
       b"Message-ID: <auth-test@example.com>\n"
       b"\n"
       b"Authenticated hello.\n")

EHLO = b"EHLO client.example"
ENVELOPE = [b"MAIL FROM:<sender@example.com>", b"RCPT TO:<%s>" % RCPT.encode(),
            b"DATA", b"QUIT"]
# Special characters for the password sources: spaces, ';', '#', quotes,
# '=', backslash and UTF-8.  SP_FILE also has " ;", which no INI value may hold.
SP_FILE = "p a;s#s\"w'o=rd ;\\ü€"
SP_QUOTED_INI = '"q u;o#t\\"e\'d\\\\=ü€"'
SP_QUOTED = "q u;o#t\"e'd\\=ü€"
SP_PLAIN_INI = "un;quo#ted'\"=ü€"


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data)


def unb64(data):
    try:
        return base64.b64decode(data, validate=True)
    except (ValueError, TypeError):
        return None


def plain_blob(password, user=USER):
    return b"\0" + user.encode() + b"\0" + password.encode("utf-8")


# --------------------------------------------------------------------------
# Server-side mechanisms.  Each factory returns (AUTH action, verdict box):
# the box records what the Python server concluded, for the checks.

class Box(dict):
    pass


def ok_reply():
    return "235 2.7.0 Authentication successful"


BAD = "535 5.7.8 Authentication credentials invalid"


def srv_plain(password, box, user=USER):
    def fn(conn, line):
        if conn.auth_step == 0 and not conn.auth_ir:
            return "334 "
        data = line.split(b" ", 2)[2] if conn.auth_step == 0 else line
        got = unb64(data)
        box["got"] = got
        box["verified"] = got == plain_blob(password, user)
        return ok_reply() if box["verified"] else BAD
    return handler(fn), box


def srv_login(password, box):
    def fn(conn, line):
        step = conn.auth_step + (1 if conn.auth_ir else 0)
        if step == 0:
            return "334 VXNlcm5hbWU6"
        if step == 1:
            box["user"] = unb64(line if conn.auth_step else line.split(b" ", 2)[2])
            return "334 UGFzc3dvcmQ6"
        box["password"] = unb64(line)
        box["verified"] = (box["user"] == USER.encode() and
                           box["password"] == password.encode("utf-8"))
        return ok_reply() if box["verified"] else BAD
    return handler(fn), box


CRAM_CHALLENGE = b"<1896.697170952@test.example>"


def srv_cram(password, box):
    def fn(conn, line):
        if conn.auth_step == 0:
            return "334 " + b64(CRAM_CHALLENGE).decode()
        got = unb64(line) or b""
        user, _, digest = got.rpartition(b" ")
        want = hmac.new(password.encode(), CRAM_CHALLENGE, hashlib.md5).hexdigest()
        box["got"] = got
        box["verified"] = user == USER.encode() and digest == want.encode()
        return ok_reply() if box["verified"] else BAD
    return handler(fn), box


# SCRAM (RFC 5802, RFC 7677), channel binding (RFC 5929, RFC 9266)

SCRAM_HASH = {"SCRAM-SHA-1": hashlib.sha1, "SCRAM-SHA-256": hashlib.sha256}
SALT = b"pushmail-salt-16"
ITERATIONS = 4096

_libssl = None


def tls_exporter(sock):
    """RFC 9266 tls-exporter of a server-side TLS 1.3 SSLSocket, through
    OpenSSL (Python's ssl module has no export_keying_material).  The SSL*
    sits right after PyObject_HEAD and the socket weakref in CPython's
    PySSLSocket; the pointer is trusted only when OpenSSL agrees about the
    version and the side.  None when unavailable."""
    global _libssl
    try:
        if _libssl is None:
            lib = ctypes.CDLL("libssl.so.3")
            lib.SSL_export_keying_material.argtypes = [
                ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
            lib.SSL_get_version.argtypes = [ctypes.c_void_p]
            lib.SSL_get_version.restype = ctypes.c_char_p
            lib.SSL_is_server.argtypes = [ctypes.c_void_p]
            _libssl = lib
        if not ssl.OPENSSL_VERSION.startswith("OpenSSL 3."):
            return None
        obj = sock._sslobj
        ptr = ctypes.c_void_p.from_address(
            id(obj) + 3 * ctypes.sizeof(ctypes.c_void_p)).value
        if not ptr or _libssl.SSL_get_version(ptr) != sock.version().encode() \
                or _libssl.SSL_is_server(ptr) != 1:
            return None
        label = b"EXPORTER-Channel-Binding"
        out = ctypes.create_string_buffer(32)
        if _libssl.SSL_export_keying_material(ptr, out, 32, label, len(label),
                                              None, 0, 1) != 1:
            return None
        return out.raw
    except (OSError, AttributeError, ValueError):
        return None


def channel_binding(sock, cbname):
    if cbname == "tls-unique":
        return sock.get_channel_binding("tls-unique")
    if cbname == "tls-exporter":
        return tls_exporter(sock)
    return None


def scram_keys(mech, password):
    h = SCRAM_HASH[mech.replace("-PLUS", "")]
    salted = hashlib.pbkdf2_hmac(h().name, password.encode("utf-8"), SALT, ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", h).digest()
    server_key = hmac.new(salted, b"Server Key", h).digest()
    return h, client_key, server_key


def parse_attrs(s):
    out = {}
    for part in s.split(b","):
        if len(part) >= 2 and part[1:2] == b"=":
            out.setdefault(part[:1].decode(), part[2:])
    return out


def srv_scram(password, box, bad_signature=False, skip_final=False):
    """Server side of SCRAM-SHA-1/-256[-PLUS].  box gets: gs2 (the gs2
    header), cbname, cbind_ok, proof_ok, client_final_reply (what the client
    said to our server-final message)."""
    def fn(conn, line):
        st = conn.state
        mech = conn.auth_mech.decode()
        if conn.auth_step == 0:
            st.clear()
            if not conn.auth_ir:
                st["phase"] = "first"
                return "334 "
            data = line.split(b" ", 2)[2]
        else:
            data = line
        if st.get("phase") in (None, "first"):
            cf = unb64(data)
            box["client_first"] = cf
            if cf is None or cf.count(b",") < 3:
                return "501 5.5.2 bad client-first"
            i = cf.index(b",", cf.index(b",") + 1)
            gs2, bare = cf[:i + 1], cf[i + 1:]
            box["gs2"] = gs2
            flag = gs2.split(b",")[0]
            box["cbname"] = flag[2:].decode() if flag.startswith(b"p=") else None
            attrs = parse_attrs(bare)
            box["username"] = attrs.get("n")
            nonce = attrs.get("r", b"") + b"ServerNonce3rvR"
            sf = b"r=" + nonce + b",s=" + b64(SALT) + b",i=%d" % ITERATIONS
            st.update(phase="final", gs2=gs2, bare=bare, sf=sf, nonce=nonce)
            return "334 " + b64(sf).decode()
        if st["phase"] == "final":
            cfin = unb64(data)
            box["client_final"] = cfin
            if cfin is None or b",p=" not in cfin:
                return "501 5.5.2 bad client-final"
            without_proof, proof = cfin.rsplit(b",p=", 1)
            attrs = parse_attrs(without_proof)
            cb = b""
            if box["cbname"]:
                cb = channel_binding(conn.sock, box["cbname"]) or b"<unavailable>"
                box["server_cb"] = cb
            box["cbind_ok"] = attrs.get("c") == b64(st["gs2"] + cb)
            box["nonce_ok"] = attrs.get("r") == st["nonce"]
            h, client_key, server_key = scram_keys(mech, password)
            auth_msg = st["bare"] + b"," + st["sf"] + b"," + without_proof
            sig = hmac.new(h(client_key).digest(), auth_msg, h).digest()
            want_proof = bytes(a ^ b for a, b in zip(client_key, sig))
            box["proof_ok"] = unb64(proof) == want_proof
            box["username_ok"] = box.get("username") == USER.encode()
            if not (box["cbind_ok"] and box["nonce_ok"] and box["proof_ok"]
                    and box["username_ok"]):
                return BAD
            server_sig = hmac.new(server_key, auth_msg, h).digest()
            if bad_signature:
                server_sig = bytes([server_sig[0] ^ 1]) + server_sig[1:]
            if skip_final:
                st["phase"] = "done"
                return ok_reply()
            st["phase"] = "verify"
            return "334 " + b64(b"v=" + b64(server_sig)).decode()
        if st["phase"] == "verify":
            box["client_final_reply"] = line
            st["phase"] = "done"
            return ok_reply() if line == b"" else "501 5.7.0 Authentication aborted"
        return "503 5.5.1 unexpected"
    return handler(fn), box


OAUTH_ERROR = b'{"status":"invalid_token","schemes":"bearer","scope":"mail"}'


def srv_bearer(want, box, fail=False):
    """XOAUTH2 / OAUTHBEARER: the initial response must be `want` (a
    function of the connection's port) exactly; with fail, answer with the
    error challenge, record the client's reply, then 535."""
    def fn(conn, line):
        if conn.auth_step == 0:
            if not conn.auth_ir:
                box["no_ir"] = True
                return "334 "
            got = unb64(line.split(b" ", 2)[2])
            box["got"] = got
            box["verified"] = got == want(conn.server.port)
            if fail or not box["verified"]:
                return "334 " + b64(OAUTH_ERROR).decode()
            return ok_reply()
        box["error_reply"] = line
        return "535 5.7.8 Username and Password not accepted"
    return handler(fn), box


def srv_external(box):
    def fn(conn, line):
        box["peer"] = conn.sock.getpeercert() if conn.tls_active else None
        box["line"] = line
        return ok_reply() if box["peer"] else BAD
    return handler(fn), box


def xoauth2_msg(user=USER, token=TOKEN):
    return lambda port: ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode()


def oauthbearer_msg(authz=USER, token=TOKEN):
    return lambda port: ("n,a=%s,\x01host=127.0.0.1\x01port=%d\x01auth=Bearer %s\x01\x01"
                         % (authz, port, token)).encode()


# --------------------------------------------------------------------------
# Checks

def done_txns(rec):
    return [x for x in rec.transactions if x.data_complete] if rec else []


def auth_lines(rec):
    """The AUTH command and every line the client sent inside the exchange
    (everything between AUTH and the next MAIL/QUIT)."""
    out, inside = [], False
    for c in rec.commands if rec else []:
        verb = c.split(b" ")[0].upper()
        if verb == b"AUTH":
            inside = True
        elif verb in (b"MAIL", b"QUIT", b"EHLO", b"RSET"):
            inside = False
        if inside:
            out.append(c)
    return out


def ck_box(**want):
    """Compare what the server-side mechanism concluded."""
    def ck(name, res, srv, box):
        for k, v in want.items():
            t.is_eq(box.get(k), v, name + ": server-side %s" % k,
                    "box: %s" % t.show(dict(box)))
    return ck


def ck_all(*checks):
    def ck(name, res, srv, box):
        for c in checks:
            c(name, res, srv, box)
    return ck


def ck_plus(cbname):
    def ck(name, res, srv, box):
        cb = box.get("server_cb")
        t.ok(cb and cb != b"<unavailable>" and len(cb) >= 12,
             name + ": server computed its %s binding" % cbname, "cb: %s" % t.show(cb))
        t.is_eq(box.get("gs2"), b"p=%s,," % cbname.encode(), name + ": gs2 header")
        cfin = box.get("client_final") or b""
        want = b"c=" + b64(b"p=%s,," % cbname.encode() + (cb or b""))
        t.ok(cfin.startswith(want + b","),
             name + ": c= is base64('p=%s,,' + binding)" % cbname,
             "client-final: %s" % t.show(cfin), "want prefix: %s" % t.show(want))
    return ck


def ck_secrets_hidden(secrets):
    """Neither the secret (raw or base64) nor any line the client sent
    during AUTH appears in stdout/stderr."""
    def ck(name, res, srv, box):
        out = res.err + res.out
        leaks = []
        for s in secrets:
            s = s.encode("utf-8") if isinstance(s, str) else s
            for form in (s, b64(s)):
                if form in out:
                    leaks.append(form)
        for line in auth_lines(srv.record):
            parts = line.split(b" ", 2)
            if parts[0].upper() == b"AUTH":
                payload = parts[2] if len(parts) > 2 else b""
            else:
                payload = line
            if len(payload) >= 4 and payload in out:
                leaks.append(payload)
        t.is_eq(leaks, [], name + ": no secret and no AUTH payload in the -v output",
                "stderr: %s" % t.show(res.err, 2000))
        t.ok(re.search(rb"-> AUTH [A-Z0-9-]+( \[redacted\])?\n", res.err),
             name + ": AUTH line shown (redacted)", "stderr: %s" % t.show(res.err, 2000))
    return ck


# --------------------------------------------------------------------------
# The table

def S(**kw):
    return kw


def mkserver(mechs, action=None, tls="implicit", extensions=None, rules=None,
             **kw):
    """Server kwargs as a function of (Certs, Box): AUTH mechs offered after
    TLS, `action` a function (box) -> (AUTH action, box)."""
    ctx_fn = kw.pop("ctx_fn", None)

    def make(C, box):
        ctx = ctx_fn(C) if ctx_fn else C.context(C.good)
        r = dict(rules or {})
        if action is not None:
            r["AUTH"] = action(box)[0]
        exts = ["PIPELINING", "SIZE 10485760", "ENHANCEDSTATUSCODES"]
        if mechs is not None:
            exts.append("AUTH " + mechs)
        args = dict(rules=r, extensions=exts)
        if tls == "implicit":
            args.update(ssl_context=ctx, tls="implicit")
        elif tls == "starttls":
            args.update(ssl_context=ctx, tls="starttls",
                        extensions=(extensions or ["PIPELINING"]) + ["STARTTLS"],
                        tls_extensions=exts)
        elif extensions is not None:
            args["extensions"] = extensions
        args.update(kw)
        return args
    return make


def tls12(C):
    return C.context(C.good, max_version=ssl.TLSVersion.TLSv1_2)


def cfg(**kw):
    base = dict(tls="implicit", tls_trust_file=lambda C: C.ca, user=USER,
                password=PASSWORD)
    base.update(kw)
    return base


def ok_cmds(*auth):
    return [EHLO] + [a if isinstance(a, bytes) else a for a in auth] + ENVELOPE


def plain_line(password=PASSWORD, user=USER):
    return b"AUTH PLAIN " + b64(plain_blob(password, user))


# PLAIN's AUTH goes in one flight with the message (RFC 4954 4).  This
# server takes MAIL from anyone and answers DATA with 354: after a refused
# AUTH the client closes there, so the body never goes out.
AFTER_AUTH = [b"MAIL FROM:<sender@example.com>", b"RCPT TO:<%s>" % RCPT.encode(), b"DATA"]


def refused(code, exit_, text):
    return dict(name="%d to AUTH" % code,
                server=mkserver("PLAIN", rules={"AUTH": "%d %s" % (code, text)}),
                cfg=cfg(auth="plain"), exit=exit_, err=[str(code)],
                commands=[EHLO, plain_line()] + AFTER_AUTH, delivered=False)


CASES = [
    # ---- each mechanism's exact exchange
    dict(name="PLAIN", server=mkserver("PLAIN LOGIN", lambda b: srv_plain(PASSWORD, b)),
         cfg=cfg(auth="plain"), exit=EX_OK, commands=ok_cmds(plain_line()),
         check=ck_box(verified=True)),
    dict(name="LOGIN", server=mkserver("LOGIN", lambda b: srv_login(PASSWORD, b)),
         cfg=cfg(auth="login"), exit=EX_OK,
         commands=ok_cmds(b"AUTH LOGIN", b64(USER), b64(PASSWORD)),
         check=ck_box(verified=True)),
    dict(name="CRAM-MD5", server=mkserver("CRAM-MD5", lambda b: srv_cram(PASSWORD, b)),
         cfg=cfg(auth="cram-md5"), exit=EX_OK,
         commands=ok_cmds(b"AUTH CRAM-MD5", b64(USER.encode() + b" " + hmac.new(
             PASSWORD.encode(), CRAM_CHALLENGE, hashlib.md5).hexdigest().encode())),
         check=ck_box(verified=True)),
    dict(name="CRAM-MD5 with a wrong password is refused",
         server=mkserver("CRAM-MD5", lambda b: srv_cram("not-the-password", b)),
         cfg=cfg(auth="cram-md5"), exit=EX_NOPERM, err=["535"],
         check=ck_box(verified=False)),
    dict(name="SCRAM-SHA-256",
         server=mkserver("SCRAM-SHA-256", lambda b: srv_scram(PASSWORD, b)),
         cfg=cfg(auth="scram-sha-256"), exit=EX_OK, auth_count=3,
         check=ck_box(proof_ok=True, cbind_ok=True, nonce_ok=True, username_ok=True,
                      client_final_reply=b"")),
    dict(name="SCRAM-SHA-1",
         server=mkserver("SCRAM-SHA-1", lambda b: srv_scram(PASSWORD, b)),
         cfg=cfg(auth="scram-sha-1"), exit=EX_OK, auth_count=3,
         check=ck_box(proof_ok=True, cbind_ok=True, nonce_ok=True, username_ok=True,
                      client_final_reply=b"")),
    dict(name="SCRAM-SHA-256 with a wrong password is refused",
         server=mkserver("SCRAM-SHA-256", lambda b: srv_scram("other-password", b)),
         cfg=cfg(auth="scram-sha-256"), exit=EX_NOPERM, err=["535"],
         check=ck_box(proof_ok=False)),
    dict(name="SCRAM-SHA-256: wrong server signature",
         server=mkserver("SCRAM-SHA-256",
                         lambda b: srv_scram(PASSWORD, b, bad_signature=True)),
         cfg=cfg(auth="scram-sha-256"), exit="nonzero", delivered=False, no_mail=True,
         check=ck_all(ck_box(proof_ok=True),
                      lambda n, r, s, b: t.is_eq(b.get("client_final_reply"), b"*",
                                                 n + ": client cancels with '*'"))),
    dict(name="SCRAM-SHA-1: wrong server signature",
         server=mkserver("SCRAM-SHA-1",
                         lambda b: srv_scram(PASSWORD, b, bad_signature=True)),
         cfg=cfg(auth="scram-sha-1"), exit="nonzero", delivered=False, no_mail=True),
    dict(name="SCRAM-SHA-256: 235 without the server's signature",
         server=mkserver("SCRAM-SHA-256",
                         lambda b: srv_scram(PASSWORD, b, skip_final=True)),
         cfg=cfg(auth="scram-sha-256"), exit="nonzero", delivered=False, no_mail=True),
    dict(name="SCRAM-SHA-256 over TLS, server without -PLUS: gs2 flag 'y'",
         server=mkserver("SCRAM-SHA-256", lambda b: srv_scram(PASSWORD, b)),
         cfg=cfg(auth="auto"), exit=EX_OK,
         check=lambda n, r, s, b: t.is_eq(
             b.get("gs2"), b"y,,", n + ": RFC 5802 6: a client that supports channel "
             "binding must not send 'n' when the server offers no -PLUS",
             todo="reported: pushmail sends 'n,,' (Debian's libgsasl 2.2 fails on 'y')")),
    # ---- channel binding
    dict(name="SCRAM-SHA-256-PLUS, TLS 1.2 (tls-unique), auto",
         server=mkserver("SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN",
                         lambda b: srv_scram(PASSWORD, b), ctx_fn=tls12),
         cfg=cfg(auth="auto"), exit=EX_OK, auth_count=3, mech="SCRAM-SHA-256-PLUS",
         check=ck_all(ck_box(proof_ok=True, cbind_ok=True, cbname="tls-unique"),
                      ck_plus("tls-unique"))),
    dict(name="SCRAM-SHA-1-PLUS, TLS 1.2 (tls-unique), explicit",
         server=mkserver("SCRAM-SHA-1-PLUS SCRAM-SHA-1",
                         lambda b: srv_scram(PASSWORD, b), ctx_fn=tls12),
         cfg=cfg(auth="scram-sha-1-plus"), exit=EX_OK, auth_count=3,
         mech="SCRAM-SHA-1-PLUS",
         check=ck_all(ck_box(proof_ok=True, cbind_ok=True), ck_plus("tls-unique"))),
    dict(name="SCRAM-SHA-256-PLUS, TLS 1.3 (tls-exporter), auto",
         server=mkserver("SCRAM-SHA-256-PLUS SCRAM-SHA-256",
                         lambda b: srv_scram(PASSWORD, b)),
         cfg=cfg(auth="auto"), exit=EX_OK, auth_count=3, mech="SCRAM-SHA-256-PLUS",
         needs_exporter=True,
         check=ck_all(ck_box(proof_ok=True, cbind_ok=True, cbname="tls-exporter"),
                      ck_plus("tls-exporter"))),
    dict(name="SCRAM-SHA-256-PLUS over STARTTLS, TLS 1.2",
         server=mkserver("SCRAM-SHA-256-PLUS", lambda b: srv_scram(PASSWORD, b),
                         tls="starttls"),
         cfg=cfg(auth="scram-sha-256-plus", tls="starttls",
                 tls_priorities="NORMAL:-VERS-TLS1.3"),
         exit=EX_OK, auth_count=3, mech="SCRAM-SHA-256-PLUS", prefix=[b"STARTTLS", EHLO],
         check=ck_all(ck_box(proof_ok=True, cbind_ok=True), ck_plus("tls-unique"))),
    dict(name="-PLUS without TLS (allow_plaintext_auth) is a config error",
         server=mkserver("SCRAM-SHA-256-PLUS", tls=None),
         cfg=cfg(auth="scram-sha-256-plus", tls="off", allow_plaintext_auth="yes"),
         exit=EX_CONFIG, err=["binding"], commands=[EHLO, b"QUIT"]),
    # ---- OAuth
    dict(name="XOAUTH2", server=mkserver("XOAUTH2 PLAIN",
                                         lambda b: srv_bearer(xoauth2_msg(), b)),
         cfg=cfg(auth="xoauth2", password=TOKEN), exit=EX_OK,
         commands=ok_cmds(b"AUTH XOAUTH2 " + b64(xoauth2_msg()(0))),
         check=ck_box(verified=True)),
    dict(name="XOAUTH2 error challenge: empty reply, then 535",
         server=mkserver("XOAUTH2", lambda b: srv_bearer(xoauth2_msg(), b, fail=True)),
         cfg=cfg(auth="xoauth2", password=TOKEN), exit=EX_NOPERM, err=["535"],
         commands=[EHLO, b"AUTH XOAUTH2 " + b64(xoauth2_msg()(0)), b"", b"QUIT"],
         check=ck_box(verified=True, error_reply=b"")),
    dict(name="OAUTHBEARER",
         server=mkserver("OAUTHBEARER", lambda b: srv_bearer(oauthbearer_msg(), b)),
         cfg=cfg(auth="oauthbearer", password=TOKEN), exit=EX_OK, auth_count=1,
         check=ck_box(verified=True)),
    dict(name="OAUTHBEARER error challenge: 'AQ==', then 535",
         server=mkserver("OAUTHBEARER",
                         lambda b: srv_bearer(oauthbearer_msg(), b, fail=True)),
         cfg=cfg(auth="oauthbearer", password=TOKEN), exit=EX_NOPERM, err=["535"],
         auth_count=2, check=ck_box(verified=True, error_reply=b"AQ==")),
    dict(name="OAUTHBEARER: ',' and '=' in the user are escaped",
         server=mkserver("OAUTHBEARER", lambda b: srv_bearer(
             oauthbearer_msg(authz="a=2Cb=3Dc@example.com"), b)),
         cfg=cfg(auth="oauthbearer", password=TOKEN, user="a,b=c@example.com"),
         exit=EX_OK, check=ck_box(verified=True)),
    dict(name="EXTERNAL with the client certificate",
         server=mkserver("EXTERNAL PLAIN", lambda b: srv_external(b),
                         ctx_fn=lambda C: C.context(C.good, client_ca=C.client_ca)),
         cfg=cfg(auth="external", password=None,
                 tls_cert_file=lambda C: C.client[0], tls_key_file=lambda C: C.client[1]),
         exit=EX_OK, commands=ok_cmds(b"AUTH EXTERNAL ="),
         check=lambda n, r, s, b: t.ok(b.get("peer"), n + ": server saw the certificate")),
    # ---- reply mapping
    refused(535, EX_NOPERM, "5.7.8 Authentication credentials invalid"),
    refused(534, EX_NOPERM, "5.7.9 Authentication mechanism is too weak"),
    refused(530, EX_NOPERM, "5.7.0 Authentication required"),
    refused(538, EX_NOPERM, "5.7.11 Encryption required for requested mechanism"),
    refused(454, EX_TEMPFAIL, "4.7.0 Temporary authentication failure"),
    refused(432, EX_TEMPFAIL, "4.7.12 A password transition is needed"),
    dict(name="504 to AUTH names what the server offers",
         server=mkserver("PLAIN LOGIN CRAM-MD5",
                         rules={"AUTH": "504 5.5.4 Unrecognized authentication type"}),
         cfg=cfg(auth="plain"), exit=EX_UNAVAILABLE,
         err=["504", "the server offers", "PLAIN LOGIN CRAM-MD5"],
         commands=[EHLO, plain_line()] + AFTER_AUTH, delivered=False),
    # ---- TLS and AUTH
    dict(name="no AUTH without TLS (auth = plain)",
         server=mkserver("PLAIN LOGIN", tls=None), cfg=cfg(auth="plain", tls="off"),
         exit=EX_CONFIG, err=["unencrypted"], commands=None),   # refused before connecting
    dict(name="no AUTH without TLS (auth = auto)",
         server=mkserver("CRAM-MD5 SCRAM-SHA-256 PLAIN", tls=None),
         cfg=cfg(auth="auto", tls="off"), exit=EX_CONFIG, err=["unencrypted"],
         commands=None),   # refused before connecting
    dict(name="allow_plaintext_auth = yes permits AUTH PLAIN in clear",
         server=mkserver("PLAIN", lambda b: srv_plain(PASSWORD, b), tls=None),
         cfg=cfg(auth="plain", tls="off", allow_plaintext_auth="yes"), exit=EX_OK,
         commands=ok_cmds(plain_line()), check=ck_box(verified=True)),
    dict(name="allow_plaintext_auth, auto: CRAM-MD5 rather than PLAIN/LOGIN in clear",
         server=mkserver("PLAIN LOGIN CRAM-MD5", lambda b: srv_cram(PASSWORD, b),
                         tls=None),
         cfg=cfg(auth="auto", tls="off", allow_plaintext_auth="yes"), exit=EX_OK,
         mech="CRAM-MD5", check=ck_box(verified=True)),
    dict(name="allow_plaintext_auth, auto: never PLAIN/LOGIN in clear",
         server=mkserver("PLAIN LOGIN", tls=None),
         cfg=cfg(auth="auto", tls="off", allow_plaintext_auth="yes"),
         exit=EX_UNAVAILABLE, commands=[EHLO, b"QUIT"]),
    dict(name="STARTTLS first, AUTH only after it",
         server=mkserver("PLAIN", lambda b: srv_plain(PASSWORD, b), tls="starttls",
                         extensions=["PIPELINING", "AUTH PLAIN LOGIN"]),
         cfg=cfg(auth="auto", tls="starttls"), exit=EX_OK,
         commands=[EHLO, b"STARTTLS", EHLO, plain_line()] + ENVELOPE,
         check=ck_box(verified=True)),
    # ---- choice
    dict(name="mechanism not offered",
         server=mkserver("PLAIN LOGIN"), cfg=cfg(auth="cram-md5"), exit=EX_UNAVAILABLE,
         err=["CRAM-MD5", "PLAIN LOGIN"], commands=[EHLO, b"QUIT"]),
    dict(name="no AUTH offered at all",
         server=mkserver(None), cfg=cfg(auth="auto"), exit=EX_UNAVAILABLE,
         err=["AUTH"], commands=[EHLO, b"QUIT"]),
    dict(name="auto: only OAuth offered",
         server=mkserver("XOAUTH2 OAUTHBEARER"), cfg=cfg(auth="auto"),
         exit=EX_UNAVAILABLE, err=["XOAUTH2 OAUTHBEARER"], commands=[EHLO, b"QUIT"]),
    dict(name="auto: SCRAM-SHA-256 over PLAIN and LOGIN",
         server=mkserver("PLAIN LOGIN SCRAM-SHA-256", lambda b: srv_scram(PASSWORD, b)),
         cfg=cfg(auth="auto"), exit=EX_OK, mech="SCRAM-SHA-256", auth_count=3,
         check=ck_box(proof_ok=True)),
    dict(name="auto: SCRAM-SHA-256 over SCRAM-SHA-1",
         server=mkserver("SCRAM-SHA-1 SCRAM-SHA-256", lambda b: srv_scram(PASSWORD, b)),
         cfg=cfg(auth="auto"), exit=EX_OK, mech="SCRAM-SHA-256",
         check=ck_box(proof_ok=True)),
    dict(name="auto: SCRAM-SHA-1-PLUS over SCRAM-SHA-256 (TLS 1.2)",
         server=mkserver("SCRAM-SHA-256 SCRAM-SHA-1-PLUS", lambda b: srv_scram(PASSWORD, b),
                         ctx_fn=tls12),
         cfg=cfg(auth="auto"), exit=EX_OK, mech="SCRAM-SHA-1-PLUS",
         check=ck_box(proof_ok=True, cbind_ok=True)),
    dict(name="auto: PLAIN when only LOGIN and PLAIN",
         server=mkserver("LOGIN PLAIN", lambda b: srv_plain(PASSWORD, b)),
         cfg=cfg(auth="auto"), exit=EX_OK, commands=ok_cmds(plain_line()),
         check=ck_box(verified=True)),
    dict(name="auto: LOGIN over CRAM-MD5",
         server=mkserver("CRAM-MD5 LOGIN", lambda b: srv_login(PASSWORD, b)),
         cfg=cfg(auth="auto"), exit=EX_OK,
         commands=ok_cmds(b"AUTH LOGIN", b64(USER), b64(PASSWORD)),
         check=ck_box(verified=True)),
    # ---- hostile servers
    dict(name="endless 334 challenges are cut off",
         server=mkserver("XOAUTH2", rules={"AUTH": "334 "}),
         cfg=cfg(auth="xoauth2", password=TOKEN), exit=EX_PROTOCOL, max_time=10,
         max_auth_lines=11, err=["AUTH"]),
    dict(name="challenge after PLAIN's initial response: '*', no second password",
         server=mkserver("PLAIN", rules={"AUTH": "334 " + b64("more?").decode()}),
         cfg=cfg(auth="plain"), exit=EX_PROTOCOL, max_time=10, err=["PLAIN"],
         commands_upto=([EHLO, plain_line()] + AFTER_AUTH, 2), delivered=False),
    dict(name="challenge after CRAM-MD5 finished: '*'",
         server=mkserver("CRAM-MD5", rules={"AUTH": "334 " + b64(CRAM_CHALLENGE).decode()}),
         cfg=cfg(auth="cram-md5"), exit=EX_PROTOCOL, max_time=10, max_auth_lines=3,
         delivered=False, no_mail=True),
    dict(name="invalid base64 challenge answered '*'",
         server=mkserver("LOGIN", rules={"AUTH": ["334 ***not-base64***",
                                                  "501 5.7.0 Authentication aborted"]}),
         cfg=cfg(auth="login"), exit=EX_PROTOCOL, err=["base64"],
         commands=[EHLO, b"AUTH LOGIN", b"*", b"QUIT"]),
    dict(name="invalid base64 challenge, server then says 235: still not delivered",
         server=mkserver("LOGIN", rules={"AUTH": ["334 ***not-base64***", "235 2.7.0 ok"]}),
         cfg=cfg(auth="login"), exit=EX_PROTOCOL, delivered=False, no_mail=True,
         commands=[EHLO, b"AUTH LOGIN", b"*", b"QUIT"]),
    # issue 13: the mechanism list was cut at 256 bytes
    dict(name="PLAIN after 300 bytes of other mechanism names",
         server=mkserver(" ".join("X-MECH-%04d" % i for i in range(28)) + " PLAIN"),
         cfg=cfg(auth="plain"), exit=EX_OK, commands=ok_cmds(plain_line())),
    dict(name="auto: SCRAM-SHA-256 at the end of a 4000-byte AUTH line",
         server=mkserver(" ".join("X-MECH-%04d" % i for i in range(330))
                         + " SCRAM-SHA-256", lambda b: srv_scram(PASSWORD, b)),
         cfg=cfg(auth="auto"), exit=EX_OK),
    # ---- password sources
    dict(name="password_file with spaces, ';', '#', quotes, UTF-8",
         server=mkserver("PLAIN", lambda b: srv_plain(SP_FILE, b)),
         cfg=cfg(auth="plain", password=None,
                 password_file=lambda C: secret_file("pw-special", SP_FILE + "\nsecond\n")),
         exit=EX_OK, commands=ok_cmds(plain_line(SP_FILE)), check=ck_box(verified=True)),
    dict(name="quoted password value with escapes",
         server=mkserver("PLAIN", lambda b: srv_plain(SP_QUOTED, b)),
         cfg=cfg(auth="plain", password=SP_QUOTED_INI), exit=EX_OK,
         commands=ok_cmds(plain_line(SP_QUOTED)), check=ck_box(verified=True)),
    dict(name="unquoted password value with ';', '#', quotes",
         server=mkserver("PLAIN", lambda b: srv_plain(SP_PLAIN_INI, b)),
         cfg=cfg(auth="plain", password=SP_PLAIN_INI), exit=EX_OK,
         commands=ok_cmds(plain_line(SP_PLAIN_INI)), check=ck_box(verified=True)),
    dict(name="password value with ' ;' is refused", server=mkserver("PLAIN"),
         cfg=cfg(auth="plain", password="abc ;def"), exit=EX_CONFIG, no_connect=True),
    dict(name="password_command: first line of its output",
         server=mkserver("PLAIN", lambda b: srv_plain("cmd-secret-42", b)),
         cfg=cfg(auth="plain", password=None, password_command=lambda C: script(
             "pw-ok", "printf 'cmd-secret-42\\nsecond line\\n'")),
         exit=EX_OK, commands=ok_cmds(plain_line("cmd-secret-42")),
         check=ck_box(verified=True)),
    dict(name="password_command through the shell",
         server=mkserver("PLAIN", lambda b: srv_plain("piped-secret", b)),
         cfg=cfg(auth="plain", password=None,
                 password_command="echo piped-secret | cat"),
         exit=EX_OK, commands=ok_cmds(plain_line("piped-secret")),
         check=ck_box(verified=True)),
    # issue 13: the first line and the command's own exit are enough; a
    # background child holding the pipes open must not make it time out
    dict(name="password_command leaving a background child",
         server=mkserver("PLAIN", lambda b: srv_plain("bg-secret", b)),
         cfg=cfg(auth="plain", password=None, password_command=lambda C: script(
             "pw-bg", "echo bg-secret; echo note >&2; sleep 30 &")),
         exit=EX_OK, commands=ok_cmds(plain_line("bg-secret")),
         check=ck_box(verified=True)),
    dict(name="password_command leaving a background child, then failing",
         server=mkserver("PLAIN"),
         cfg=cfg(auth="plain", password=None, password_command=lambda C: script(
             "pw-bg-fail", "echo 'vault is locked' >&2; sleep 30 & exit 4")),
         exit=EX_CONFIG, err=["4", "vault is locked"], no_connect=True),
    dict(name="password_command exits 3", server=mkserver("PLAIN"),
         cfg=cfg(auth="plain", password=None, password_command=lambda C: script(
             "pw-fail", "echo 'vault is locked' >&2; echo partial; exit 3")),
         exit=EX_CONFIG, err=["3", "vault is locked"], no_connect=True),
    dict(name="password_command prints nothing", server=mkserver("PLAIN"),
         cfg=cfg(auth="plain", password=None,
                 password_command=lambda C: script("pw-empty", "exit 0")),
         exit=EX_CONFIG, no_connect=True),
    dict(name="password_file mode 0644 refused", server=mkserver("PLAIN"),
         cfg=cfg(auth="plain", password=None,
                 password_file=lambda C: secret_file("pw-0644", "x\n", 0o644)),
         exit=EX_CONFIG, err=["0644"], no_connect=True),
    dict(name="password_file missing", server=mkserver("PLAIN"),
         cfg=cfg(auth="plain", password=None,
                 password_file=lambda C: os.path.join(t.tmpdir(), "no-such-pw")),
         exit=EX_NOINPUT, err=["no-such-pw"], no_connect=True),
    dict(name="~/.netrc entry for the relay",
         server=mkserver("PLAIN", lambda b: srv_plain("netrc-secret", b)),
         cfg=cfg(auth="plain", password=None), exit=EX_OK,
         netrc=("machine 127.0.0.1 login %s password netrc-secret\n" % USER, 0o600),
         commands=ok_cmds(plain_line("netrc-secret")), check=ck_box(verified=True)),
    dict(name="~/.netrc readable by others refused", server=mkserver("PLAIN"),
         cfg=cfg(auth="plain", password=None), exit=EX_CONFIG, no_connect=True,
         netrc=("machine 127.0.0.1 login %s password netrc-secret\n" % USER, 0o644)),
    dict(name="no password anywhere, no terminal", server=mkserver("PLAIN"),
         cfg=cfg(auth="plain", password=None), exit=EX_CONFIG, err=["password"],
         no_connect=True),
    # ---- -v never shows a secret
    dict(name="-v: PLAIN", server=mkserver("PLAIN"), cfg=cfg(auth="plain"),
         args=["-v", RCPT], exit=EX_OK,
         check=ck_secrets_hidden([PASSWORD, plain_blob(PASSWORD)])),
    dict(name="-v: LOGIN", server=mkserver("LOGIN"), cfg=cfg(auth="login"),
         args=["-v", RCPT], exit=EX_OK, check=ck_secrets_hidden([PASSWORD])),
    dict(name="-v: SCRAM-SHA-256",
         server=mkserver("SCRAM-SHA-256", lambda b: srv_scram(PASSWORD, b)),
         cfg=cfg(auth="scram-sha-256"), args=["-v", RCPT], exit=EX_OK,
         check=ck_secrets_hidden([PASSWORD])),
    dict(name="-v: XOAUTH2", server=mkserver("XOAUTH2",
                                             lambda b: srv_bearer(xoauth2_msg(), b)),
         cfg=cfg(auth="xoauth2", password=TOKEN), args=["-v", RCPT], exit=EX_OK,
         check=ck_secrets_hidden([TOKEN, xoauth2_msg()(0)])),
    dict(name="-v: OAUTHBEARER refused", server=mkserver(
        "OAUTHBEARER", lambda b: srv_bearer(oauthbearer_msg(), b, fail=True)),
         cfg=cfg(auth="oauthbearer", password=TOKEN), args=["-v", RCPT],
         exit=EX_NOPERM, check=ck_secrets_hidden([TOKEN])),
    dict(name="-v: password_command secret", server=mkserver("PLAIN"),
         cfg=cfg(auth="plain", password=None, password_command=lambda C: script(
             "pw-v", "echo cmd-secret-verbose")),
         args=["-v", RCPT], exit=EX_OK,
         check=ck_secrets_hidden(["cmd-secret-verbose", plain_blob("cmd-secret-verbose")])),
]


def secret_file(name, text, mode=0o600):
    path = os.path.join(t.tmpdir(), name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def script(name, body):
    path = os.path.join(t.tmpdir(), name + ".sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return path


# --------------------------------------------------------------------------

def run_case(c, C):
    name = c["name"]
    box = Box()
    srv = ScriptedServer(**c["server"](C, box)).start()
    netrc = os.path.join(t.tmpdir(), "home", ".netrc")
    try:
        keys = {}
        for k, v in c["cfg"].items():
            keys[k] = v(C) if callable(v) else v
        cfgfile = t.write_config(port=srv.port, **keys)
        if c.get("netrc"):
            text, mode = c["netrc"]
            with open(netrc, "w") as f:
                f.write(text)
            os.chmod(netrc, mode)
        res = t.run_pushmail(["-C", cfgfile] + c.get("args", [RCPT]), stdin=MSG,
                             new_session=True)
    finally:
        srv.stop()
        if os.path.exists(netrc):
            os.unlink(netrc)
    rec = srv.record
    info = t.server_diag(res, srv, 1000)
    t.check_exit(name, res, c["exit"], info)
    t.is_eq(srv.errors, [], name + ": scripted server ran cleanly")
    verbose = "-v" in c.get("args", [])
    if c["exit"] == EX_OK and not verbose:
        t.is_eq(res.err, b"", name + ": nothing on stderr")
    if c["exit"] != EX_OK and not verbose:
        err = res.err.strip()
        t.ok(err and b"\n" not in err, name + ": one line on stderr",
             "stderr: %s" % t.show(res.err))
        if c.get("err"):
            t.ok(all(w.encode() in err for w in c["err"]),
                 name + ": stderr says " + "/".join(c["err"]),
                 "stderr: %s" % t.show(res.err))
    if c["exit"] != EX_OK or c.get("delivered") is False:
        t.is_eq(len(done_txns(rec)), 0, name + ": no message delivered")
    elif c["exit"] == EX_OK:
        done = done_txns(rec)
        t.ok(len(done) == 1 and done[0].message == t.normalise(MSG),
             name + ": message delivered intact")
    if "commands" in c:
        t.is_eq(rec.commands if rec else None, c["commands"],
                name + ": exactly these commands reached the server", *info)
    if "commands_upto" in c:
        # the client closes while pipelined commands are on the way: the
        # server reads some of them, in order, at least `least` of them
        got, want, least = rec.commands if rec else [], *c["commands_upto"]
        t.ok(len(got) >= least and got == want[:len(got)],
             name + ": these commands, in order, reached the server (%d of %d)"
             % (len(got), len(want)), *info)
    cmds = rec.commands if rec else []
    prefix = [EHLO] + c.get("prefix", [])
    if "mech" in c:
        auth = [x for x in cmds if x.startswith(b"AUTH ")]
        t.ok(len(auth) == 1 and auth[0].split(b" ")[1] == c["mech"].encode(),
             name + ": AUTH %s chosen" % c["mech"], "AUTH lines: %s" % t.show(auth))
    if "auth_count" in c:
        got = auth_lines(rec)
        t.is_eq(len(got), c["auth_count"],
                name + ": %d lines in the AUTH exchange" % c["auth_count"],
                "auth lines: %s" % t.show(got))
        t.is_eq(cmds[:len(prefix)], prefix, name + ": AUTH follows %s" %
                b", ".join(prefix).decode())
        if c["exit"] == EX_OK:
            t.is_eq(cmds[len(prefix) + len(got):], ENVELOPE,
                    name + ": then MAIL, RCPT, DATA, QUIT")
    if c.get("no_mail"):
        t.is_eq([x for x in cmds if x.split(b" ")[0].split(b":")[0].upper()
                 in (b"MAIL", b"RCPT", b"DATA")], [], name + ": no MAIL/RCPT/DATA sent")
    if c.get("no_connect"):
        t.is_eq(srv.accepted, 0, name + ": server never connected to")
    if "max_auth_lines" in c:
        got = auth_lines(rec)
        t.ok(0 < len(got) <= c["max_auth_lines"],
             name + ": at most %d lines in the AUTH exchange (got %d)" % (
                 c["max_auth_lines"], len(got)))
    if "max_time" in c:
        t.ok(res.elapsed < c["max_time"],
             name + ": finished in %.1fs (< %ss)" % (res.elapsed, c["max_time"]))
    if c.get("check"):
        c["check"](name, res, srv, box)


def main():
    t.require_pushmail()
    C = certs.get()
    if C is None:
        t.skip_all("certtool (gnutls-bin) or Python ssl not available")
    only = os.environ.get("AUTH_ONLY")
    for c in CASES:
        if only and only not in c["name"]:
            continue
        if c.get("needs_exporter") and not exporter_works(C):
            t.skip(c["name"], "cannot compute tls-exporter with this Python/OpenSSL")
            continue
        run_case(c, C)
    return t.done()


def exporter_works(C):
    """Self-test of tls_exporter() on a loopback TLS 1.3 pair."""
    import socket
    import threading
    got = {}
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(5)

    def serve():
        try:
            s, _ = ls.accept()
            s.settimeout(5)
            ss = C.context(C.good).wrap_socket(s, server_side=True)
            got["ekm"] = tls_exporter(ss)
            ss.recv(1)
            ss.close()
        except (OSError, ssl.SSLError):
            pass
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        cc = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cc.load_verify_locations(C.ca)
        cs = cc.wrap_socket(socket.create_connection(("127.0.0.1", ls.getsockname()[1]),
                                                     timeout=5),
                            server_hostname="localhost")
        cs.sendall(b"x")
        cs.close()
    except (OSError, ssl.SSLError):
        pass
    th.join(5)
    ls.close()
    ekm = got.get("ekm")
    return bool(ekm) and len(ekm) == 32 and ekm != b"\0" * 32


if __name__ == "__main__":
    sys.exit(main())
