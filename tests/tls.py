#!/usr/bin/env python3
"""tls.py - pushmail's TLS against the scripted SMTP server (SPEC 2, 3, 4, 7).

Certificates come from certs.py (certtool, made at run time).  Each row of
CASES runs pushmail once against a ScriptedServer speaking STARTTLS or
implicit TLS, then asserts the exact exit status, the exact commands the
server recorded (nothing but EHLO/STARTTLS in clear, nothing at all after a
refused certificate), whether the message arrived, and what stderr says.

Rows give `server` and `cfg` as functions of the Certs object, so the
certificates are made once, when the suite runs.
"""

import base64
import os
import re
import ssl
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import taplib as t  # noqa: E402
from smtpserver import (ScriptedServer, close, handler, raw, seq,  # noqa: E402
                        stall)

warnings.simplefilter("ignore", DeprecationWarning)   # ssl.TLSVersion.TLSv1_1

EX_OK, EX_NOINPUT, EX_UNAVAILABLE = 0, 66, 69
EX_TEMPFAIL, EX_PROTOCOL, EX_CONFIG = 75, 76, 78

RCPT = "rcpt@example.org"
# Every header pushmail might add is present: the message must arrive exactly
# as normalised.
MSG = (b"From: Sender <sender@example.com>\n"
       b"To: rcpt@example.org\n"
       b"Subject: TLS test\n"
       b"Date: Thu, 1 Jan 2026 00:00:00 +0000\n"
       b"Message-ID: <tls-test@example.com>\n"
       b"\n"
       b"Hello over TLS.\n"
       b".dot line\n")
PASSWORD = "Tls-Pw-7f3a9c!"
USER = "user@example.com"

EHLO = b"EHLO client.example"
MAIL = b"MAIL FROM:<sender@example.com>"
ENVELOPE = [MAIL, b"RCPT TO:<%s>" % RCPT.encode(), b"DATA", b"QUIT"]
STARTTLS_OK = [EHLO, b"STARTTLS", EHLO] + ENVELOPE


def streamed(cmds, srv, rec):
    """A piped message with queue = never is not seen before MAIL, so it is
    declared BODY=8BITMIME wherever the relay offers 8BITMIME (RFC 6152
    allows it for 7-bit content; pushmail(1))."""
    if srv is None or "8BITMIME" not in srv.extensions_now(bool(rec and rec.tls)):
        return cmds
    return [x + b" BODY=8BITMIME" if x == MAIL else x for x in cmds]
IMPLICIT_OK = [EHLO] + ENVELOPE
CLEAR_VERBS = ("MAIL", "RCPT", "DATA", "AUTH", "BDAT")


def S(**kw):
    return kw


def fp(hexdigest, colons=True, upper=True, prefix="sha256:"):
    h = hexdigest.upper() if upper else hexdigest.lower()
    if colons:
        h = ":".join(h[i:i + 2] for i in range(0, len(h), 2))
    return prefix + h


def pretty_fp(hexdigest):
    """The form pushmail prints: sha256:AB:CD:..."""
    return fp(hexdigest, True, True)


# --------------------------------------------------------------------------
# Server-side helpers (handlers see the live connection)

class Box(dict):
    """What a case's handlers observed, for its check function."""


def record_peer(box):
    """MAIL handler: note the client certificate the TLS server saw."""
    def fn(conn, line):
        box["peer"] = conn.sock.getpeercert() if conn.tls_active else None
        return None
    return handler(fn)


def late_injection(conn, line):
    """STARTTLS: a clean 220, then plaintext "injected" bytes in a later
    segment, then the handshake (a MITM's timing)."""
    conn.send(b"220 2.0.0 Ready to start TLS\r\n")
    conn.server.sleep(0.3)
    conn.send(b"250-injected\r\n250 AUTH PLAIN\r\n")
    conn.start_tls("starttls")
    return raw(b"")


def sni_context(C, pair, box, **kw):
    ctx = C.context(pair, **kw)

    def cb(sock, name, ctx_):
        box.setdefault("sni", []).append(name)
        return None
    ctx.sni_callback = cb
    return ctx


def tls11_context(C):
    ctx = C.context(C.good)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


# --------------------------------------------------------------------------
# Checks

def done_txns(rec):
    return [x for x in rec.transactions if x.data_complete] if rec else []


def ck_delivered(name, res, srv, C, box):
    done = done_txns(srv.record)
    if t.is_eq(len(done), 1, name + ": exactly one message delivered"):
        t.is_eq(done[0].message, t.normalise(MSG), name + ": message arrived intact")


def ck_starttls_clean(name, res, srv, C, box):
    rec = srv.record
    t.is_eq(rec.tls, "starttls", name + ": the server saw STARTTLS")
    t.ok(rec.tls_version in ("TLSv1.2", "TLSv1.3"), name + ": TLS 1.2 or newer",
         "tls_version: %s" % rec.tls_version)
    t.is_eq(rec.pre_tls_buffer, b"", name + ": nothing pipelined after STARTTLS")
    t.ok(b"STARTTLS\r\n" in rec.segments, name + ": STARTTLS sent on its own",
         "segments: %s" % t.show(rec.segments))
    ck_delivered(name, res, srv, C, box)


def ck_implicit(name, res, srv, C, box):
    t.is_eq(srv.record.tls, "implicit", name + ": the server saw implicit TLS")
    ck_delivered(name, res, srv, C, box)


def ck_version(want):
    def ck(name, res, srv, C, box):
        t.is_eq(srv.record.tls_version, want, name + ": negotiated %s" % want)
        ck_delivered(name, res, srv, C, box)
    return ck


def ck_sni(want):
    def ck(name, res, srv, C, box):
        t.is_eq(box.get("sni"), want, name + ": SNI sent: %r" % (want,))
        if srv.record and done_txns(srv.record):
            ck_delivered(name, res, srv, C, box)
    return ck


def ck_pin_verbose(which):
    def ck(name, res, srv, C, box):
        want = b"TLS: tls_fingerprint matched the server's " + which.encode()
        t.ok(want in res.err, name + ": -v says the %s pin matched" % which,
             "stderr: %s" % t.show(res.err[-600:]))
        ck_delivered(name, res, srv, C, box)
    return ck


def ck_pin_mismatch(name, res, srv, C, box):
    cert, spki = certs.der_sha256(C.selfsigned[0]), certs.spki_sha256(C.selfsigned[0])
    for what, h in (("certificate", cert), ("public key", spki)):
        t.ok(pretty_fp(h).encode() in res.err,
             name + ": stderr shows the server's %s hash" % what,
             "stderr: %s" % t.show(res.err), "want: %s" % pretty_fp(h))


def ck_client_cert(name, res, srv, C, box):
    peer = box.get("peer") or {}
    subject = dict(x[0] for x in peer.get("subject", ()))
    t.is_eq(subject.get("commonName"), "pushmail test client",
            name + ": the server received pushmail's client certificate",
            "peer: %s" % t.show(peer))
    ck_delivered(name, res, srv, C, box)


def ck_no_client_cert(name, res, srv, C, box):
    t.is_eq(box.get("peer", "unset"), None, name + ": no client certificate presented")
    ck_delivered(name, res, srv, C, box)


def ck_pipelined_after_tls(name, res, srv, C, box):
    rec = srv.record
    i = rec.segment_with(b"MAIL FROM:")
    seg = rec.segments[i] if i >= 0 else b""
    want = MAIL + b"\r\nRCPT TO:<%s>\r\nDATA\r\n" % RCPT.encode()
    t.is_eq(seg, want, name + ": MAIL, RCPT and DATA in one write (PIPELINING after TLS)")
    ck_delivered(name, res, srv, C, box)


def ck_not_pipelined_after_tls(name, res, srv, C, box):
    rec = srv.record
    for line in (MAIL, b"RCPT TO:<%s>" % RCPT.encode(), b"DATA"):
        t.ok(line + b"\r\n" in rec.segments,
             name + ": %s on its own (PIPELINING only before TLS)" % line.decode(),
             "segments: %s" % t.show(rec.segments))
    ck_delivered(name, res, srv, C, box)


def ck_size_declared(name, res, srv, C, box):
    cmds = srv.record.commands
    t.ok(len(cmds) == 7 and cmds[:3] == [EHLO, b"STARTTLS", EHLO]
         and re.match(rb"^MAIL FROM:<sender@example\.com> SIZE=\d+$", cmds[3])
         and cmds[4:] == ENVELOPE[1:], name + ": MAIL with SIZE= after TLS",
         "commands: %s" % t.show(cmds))
    ck_delivered(name, res, srv, C, box)


def ck_injection_not_obeyed(name, res, srv, C, box):
    rec = srv.record
    t.ok(b"AUTH PLAIN" not in res.err and b"[redacted]" not in res.err,
         name + ": no AUTH attempted", "stderr: %s" % t.show(res.err))
    t.is_eq([c for c in rec.commands if c.split(b" ")[0].upper() in
             (b"MAIL", b"AUTH", b"RCPT")], [], name + ": no MAIL/AUTH/RCPT reached the server")


def ck_verbose_redacted(name, res, srv, C, box):
    blob = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
    t.ok(PASSWORD.encode() not in res.err + res.out, name + ": password not in the output")
    t.ok(blob not in res.err, name + ": PLAIN response not in the output")
    t.ok(base64.b64encode(PASSWORD.encode()) not in res.err,
         name + ": base64 password not in the output")
    t.ok(b"-> AUTH PLAIN [redacted]" in res.err, name + ": AUTH line shown redacted",
         "stderr: %s" % t.show(res.err))
    t.is_eq(srv.record.commands[:4],
            [EHLO, b"STARTTLS", EHLO, b"AUTH PLAIN " + blob],
            name + ": the server got the real AUTH line, after TLS")
    ck_delivered(name, res, srv, C, box)


# --serverinfo

def info_lines(out):
    """label -> value for the "  label:   value" lines of --serverinfo."""
    d = {}
    for l in out.decode("utf-8", "replace").splitlines():
        m = re.match(r"^  ([a-z0-9 ()]+):\s+(.*)$", l)
        if m:
            d.setdefault(m.group(1).strip(), m.group(2).strip())
    return d


def ck_serverinfo(pair_of, verdict, until=None, starttls=True):
    def ck(name, res, srv, C, box):
        pair = pair_of(C)
        info = info_lines(res.out)
        out = res.out.decode("utf-8", "replace")
        t.is_eq(info.get("sha256 (certificate)"), pretty_fp(certs.der_sha256(pair[0])),
                name + ": certificate hash matches Python's own computation")
        spki = certs.spki_sha256(pair[0])
        t.is_eq(certs.certtool_pubkey_sha256(pair[0]), spki,
                name + ": (test self-check) SPKI hash agrees with certtool")
        t.is_eq(info.get("sha256 (public key)"), pretty_fp(spki),
                name + ": public key hash matches certtool's")
        t.ok(re.search(verdict, info.get("verification", "")),
             name + ": verdict matches /%s/" % verdict,
             "verification: %s" % info.get("verification"))
        t.ok("subject" in info and "CN=localhost" in info["subject"],
             name + ": subject shown", "info: %s" % t.show(info))
        t.ok("issuer" in info and ("CN=pushmail test CA" in info["issuer"]
                                   or "CN=localhost" in info["issuer"]),
             name + ": issuer shown", "info: %s" % t.show(info))
        t.is_eq(info.get("names"), "localhost, 127.0.0.1", name + ": names (SANs) shown")
        if until:
            t.is_eq(info.get("valid until"), until, name + ": expiry date shown")
        t.ok(re.search(r"^TLS: TLS1\.[23]$", out, re.M), name + ": TLS version shown",
             "stdout: %s" % t.show(res.out))
        t.ok("ESMTP scripted test server" in out, name + ": greeting shown")
        rec = srv.record
        if starttls:
            before = out.split("capabilities before TLS:", 1)[-1].split("TLS:", 1)[0]
            after = out.split("capabilities after TLS:", 1)[-1]
            t.ok("STARTTLS" in before and "PIPELINING" in before,
                 name + ": capabilities before TLS shown", "stdout: %s" % t.show(res.out))
            t.ok("capabilities after TLS:" in out and "AUTH PLAIN" in after
                 and "STARTTLS" not in after,
                 name + ": capabilities after TLS shown", "stdout: %s" % t.show(res.out))
            want = [EHLO, b"STARTTLS", EHLO, b"QUIT"]
        else:
            want = [EHLO, b"QUIT"]
        t.is_eq(rec.commands, want, name + ": no mail sent, QUIT at the end")
        t.is_eq(rec.transactions, [], name + ": no transaction")
    return ck


# A certificate whose names carry terminal escapes (issue 13): ESC[2J clears
# the screen, ESC]0;...BEL sets the window title.  certtool refuses such
# names, so Python's `cryptography` makes it (the row is skipped without).
ESCAPES = "\x1b[2J\x1b]0;owned\x07"


def hostile_pair(C):
    cert = os.path.join(C.dir, "hostile.pem")
    key = os.path.join(C.dir, "hostile.key")
    if os.path.exists(cert):
        return cert, key
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cn" + ESCAPES),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "org" + ESCAPES)])
    now = datetime.datetime.now(datetime.timezone.utc)
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(k.public_key()).serial_number(7)
           .not_valid_before(now - datetime.timedelta(days=1))
           .not_valid_after(now + datetime.timedelta(days=30))
           .add_extension(x509.SubjectAlternativeName(
               [x509.DNSName("evil" + ESCAPES + ".example"),
                x509.DNSName("localhost")]), critical=False)
           .sign(k, hashes.SHA256()))
    with open(cert, "wb") as f:
        f.write(crt.public_bytes(serialization.Encoding.PEM))
    with open(key, "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    return cert, key


def have_cryptography():
    try:
        import cryptography.x509  # noqa: F401
        return True
    except ImportError:
        return False


def hostile_srv(C, box):
    return S(ssl_context=C.context(hostile_pair(C)), tls="implicit",
             rules={"GREETING": raw(b"220 greeting" + ESCAPES.encode() + b"\r\n")},
             extensions=["PIPELINING", "X-CAP" + ESCAPES])


def ck_no_escapes(name, res, srv, C, box):
    for what, blob in (("stdout", res.out), ("stderr", res.err)):
        bad = sorted({b for b in blob if b < 0x20 and b not in (0x0a,) or b == 0x7f})
        t.is_eq(bad, [], name + ": no control byte (ESC, BEL, ...) in " + what,
                "%s: %s" % (what, t.show(blob)))
    names = info_lines(res.out).get("names", "")
    # result_sanitise writes a control byte as \xNN (valid UTF-8 stays)
    t.ok(names.startswith("evil\\x1b[2J\\x1b]0;owned\\x07.example"),
         name + ": the hostile SAN is shown with its control bytes escaped",
         "names: %s" % names)
    for label in ("subject", "issuer"):
        t.ok("\\x1b[2J" in info_lines(res.out).get(label, ""),
             name + ": the %s is shown, sanitised" % label, "stdout: %s" % t.show(res.out))


# --------------------------------------------------------------------------
# The table.  server/cfg: functions of the Certs object (C) and a Box.

def starttls_srv(pair_name, **kw):
    return lambda C, box: S(ssl_context=C.context(getattr(C, pair_name)),
                            tls="starttls", **kw)


def implicit_srv(pair_name, **kw):
    return lambda C, box: S(ssl_context=C.context(getattr(C, pair_name)),
                            tls="implicit", **kw)


def trusted(**kw):
    return lambda C: dict(tls="starttls", tls_trust_file=C.ca, **kw)


def pinned(hash_of, **kw):
    return lambda C: dict(tls="starttls", tls_fingerprint=hash_of(C), **kw)


AUTH_EXT = ["PIPELINING", "SIZE 10485760", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN"]

CASES = [
    # ---- good chains
    dict(name="STARTTLS, good chain", server=starttls_srv("good"), cfg=trusted(),
         exit=EX_OK, commands=STARTTLS_OK, check=ck_starttls_clean),
    dict(name="implicit TLS, good chain", server=implicit_srv("good"),
         cfg=lambda C: dict(tls="implicit", tls_trust_file=C.ca), exit=EX_OK,
         commands=IMPLICIT_OK, check=ck_implicit),
    dict(name="STARTTLS, TLS 1.2-only server",
         server=lambda C, box: S(ssl_context=C.context(
             C.good, max_version=ssl.TLSVersion.TLSv1_2), tls="starttls"),
         cfg=trusted(), exit=EX_OK, commands=STARTTLS_OK, check=ck_version("TLSv1.2")),
    dict(name="tls_priorities limits to TLS 1.2", server=starttls_srv("good"),
         cfg=trusted(tls_priorities="NORMAL:-VERS-TLS1.3"), exit=EX_OK,
         commands=STARTTLS_OK, check=ck_version("TLSv1.2")),
    dict(name="host name: DNS SAN and SNI (host = localhost)",
         server=lambda C, box: S(ssl_context=sni_context(C, C.good, box), tls="starttls"),
         cfg=trusted(host="localhost"), exit=EX_OK, commands=STARTTLS_OK,
         check=ck_sni(["localhost"])),
    dict(name="IP address host: IP SAN, no SNI",
         server=lambda C, box: S(ssl_context=sni_context(C, C.good, box), tls="starttls"),
         cfg=trusted(), exit=EX_OK, commands=STARTTLS_OK, check=ck_sni([None])),
    dict(name="tls = off with a STARTTLS server: nothing encrypted",
         server=starttls_srv("good"), cfg=lambda C: dict(tls="off"), exit=EX_OK,
         commands=IMPLICIT_OK, check=ck_delivered),
    # ---- refused certificates: nothing after STARTTLS, no QUIT in clear
    dict(name="unknown CA (system store)", server=starttls_srv("good"),
         cfg=lambda C: dict(tls="starttls"), exit=EX_UNAVAILABLE,
         err=["issuer is unknown"], commands=[EHLO, b"STARTTLS"]),
    dict(name="unknown CA (trust file of another CA)", server=starttls_srv("good"),
         cfg=lambda C: dict(tls="starttls", tls_trust_file=C.client_ca),
         exit=EX_UNAVAILABLE, err=["issuer is unknown"], commands=[EHLO, b"STARTTLS"]),
    dict(name="unknown CA, implicit TLS", server=implicit_srv("good"),
         cfg=lambda C: dict(tls="implicit"), exit=EX_UNAVAILABLE,
         err=["issuer is unknown"], commands=[]),
    dict(name="self-signed, not pinned", server=starttls_srv("selfsigned"),
         cfg=trusted(), exit=EX_UNAVAILABLE, err=["NOT trusted"],
         commands=[EHLO, b"STARTTLS"]),
    dict(name="name mismatch (cert for wrong.example)", server=starttls_srv("wrong"),
         cfg=trusted(), exit=EX_UNAVAILABLE, err=["does not match"],
         commands=[EHLO, b"STARTTLS"]),
    dict(name="name mismatch by DNS name (host = localhost)", server=starttls_srv("wrong"),
         cfg=trusted(host="localhost"), exit=EX_UNAVAILABLE, err=["does not match"],
         commands=[EHLO, b"STARTTLS"]),
    dict(name="tls_host_override = wrong.example accepts that cert",
         server=lambda C, box: S(ssl_context=sni_context(C, C.wrong, box), tls="starttls"),
         cfg=trusted(tls_host_override="wrong.example"), exit=EX_OK,
         commands=STARTTLS_OK, check=ck_sni(["wrong.example"])),
    dict(name="tls_host_override naming another host refuses a good cert",
         server=starttls_srv("good"), cfg=trusted(tls_host_override="wrong.example"),
         exit=EX_UNAVAILABLE, err=["does not match"], commands=[EHLO, b"STARTTLS"]),
    dict(name="expired certificate", server=starttls_srv("expired"), cfg=trusted(),
         exit=EX_UNAVAILABLE, err=["expired"], commands=[EHLO, b"STARTTLS"]),
    dict(name="TLS 1.1-only server (floor is 1.2, even if priorities ask)",
         server=lambda C, box: S(ssl_context=tls11_context(C), tls="implicit"),
         cfg=lambda C: dict(tls="implicit", tls_trust_file=C.ca,
                            tls_priorities="NORMAL:+VERS-TLS1.1:+VERS-TLS1.0"),
         exit=EX_UNAVAILABLE, commands=[]),
    # ---- pins
    dict(name="pin: certificate hash, colons, upper case", server=starttls_srv("selfsigned"),
         cfg=pinned(lambda C: fp(certs.der_sha256(C.selfsigned[0]))), args=["-v", RCPT],
         exit=EX_OK, commands=STARTTLS_OK, check=ck_pin_verbose("certificate")),
    dict(name="pin: certificate hash, no colons, lower case",
         server=starttls_srv("selfsigned"),
         cfg=pinned(lambda C: fp(certs.der_sha256(C.selfsigned[0]), False, False)),
         args=["-v", RCPT], exit=EX_OK, commands=STARTTLS_OK,
         check=ck_pin_verbose("certificate")),
    dict(name="pin: public key hash, colons", server=starttls_srv("selfsigned"),
         cfg=pinned(lambda C: fp(certs.spki_sha256(C.selfsigned[0]))), args=["-v", RCPT],
         exit=EX_OK, commands=STARTTLS_OK, check=ck_pin_verbose("public key")),
    dict(name="pin: public key hash, no colons, SHA256: prefix",
         server=implicit_srv("selfsigned"),
         cfg=lambda C: dict(tls="implicit", tls_fingerprint=fp(
             certs.spki_sha256(C.selfsigned[0]), False, True, "SHA256:")),
         args=["-v", RCPT], exit=EX_OK, commands=IMPLICIT_OK,
         check=ck_pin_verbose("public key")),
    dict(name="pin: replaces the chain check for a CA-signed cert too",
         server=starttls_srv("good"),
         cfg=pinned(lambda C: fp(certs.spki_sha256(C.good[0]))), exit=EX_OK,
         commands=STARTTLS_OK, check=ck_delivered),
    dict(name="pin mismatch", server=starttls_srv("selfsigned"),
         cfg=pinned(lambda C: fp(certs.spki_sha256(C.good[0]))), exit=EX_UNAVAILABLE,
         err=["pin mismatch"], commands=[EHLO, b"STARTTLS"], check=ck_pin_mismatch),
    dict(name="pin matches an expired certificate", server=starttls_srv("expired"),
         cfg=pinned(lambda C: fp(certs.der_sha256(C.expired[0]))), exit=EX_UNAVAILABLE,
         err=["expired"], commands=[EHLO, b"STARTTLS"]),
    dict(name="pin (public key) matches an expired certificate",
         server=starttls_srv("expired"),
         cfg=pinned(lambda C: fp(certs.spki_sha256(C.expired[0]))), exit=EX_UNAVAILABLE,
         err=["expired"], commands=[EHLO, b"STARTTLS"]),
    dict(name="malformed pin (31 bytes)", server=starttls_srv("selfsigned"),
         cfg=pinned(lambda C: fp(certs.der_sha256(C.selfsigned[0])[:-2])),
         exit=EX_CONFIG, err=["tls_fingerprint"], no_mail=True),
    # ---- STARTTLS offered or not, refused, injected
    dict(name="STARTTLS not offered", server=lambda C, box: S(),
         cfg=lambda C: dict(tls="starttls", user=USER, password=PASSWORD),
         exit=EX_UNAVAILABLE, err=["STARTTLS"], commands=[EHLO, b"QUIT"]),
    dict(name="454 to STARTTLS",
         server=starttls_srv("good", rules={"STARTTLS": "454 4.7.0 TLS not available"}),
         cfg=trusted(), exit=EX_TEMPFAIL, err=["454", "4.7.0"],
         commands=[EHLO, b"STARTTLS", b"QUIT"]),
    dict(name="554 to STARTTLS",
         server=starttls_srv("good", rules={"STARTTLS": "554 5.7.3 no TLS for you"}),
         cfg=trusted(), exit=EX_UNAVAILABLE, err=["554", "5.7.3"],
         commands=[EHLO, b"STARTTLS", b"QUIT"]),
    dict(name="injection: 220 and more replies in one write",
         server=starttls_srv("good", extensions=AUTH_EXT + ["STARTTLS"], rules={
             "STARTTLS": raw(b"220 ready\r\n250-injected\r\n250 AUTH PLAIN\r\n")}),
         cfg=trusted(auth="plain", user=USER, password=PASSWORD), exit=EX_PROTOCOL,
         err=["STARTTLS"], commands=[EHLO, b"STARTTLS"], check=ck_injection_not_obeyed),
    dict(name="injection: 220, then plaintext replies in a later segment",
         server=starttls_srv("good", extensions=AUTH_EXT + ["STARTTLS"],
                             rules={"STARTTLS": handler(late_injection)}),
         cfg=trusted(auth="plain", user=USER, password=PASSWORD), exit="nonzero",
         commands=[EHLO, b"STARTTLS"], check=ck_injection_not_obeyed),
    dict(name="220 to STARTTLS, then the connection closes",
         server=starttls_srv("good", rules={"STARTTLS": seq("220 go ahead", close())}),
         cfg=trusted(), exit=EX_TEMPFAIL, commands=[EHLO, b"STARTTLS"]),
    dict(name="220 to STARTTLS, then no handshake (timeout = 2)",
         server=starttls_srv("good", rules={"STARTTLS": seq("220 go ahead", stall(20))}),
         cfg=trusted(timeout="2"), exit=EX_TEMPFAIL, commands=[EHLO, b"STARTTLS"],
         max_time=10),
    # ---- capabilities across TLS
    dict(name="PIPELINING offered only after TLS",
         server=starttls_srv("good", extensions=["STARTTLS"],
                             tls_extensions=["PIPELINING", "SIZE 10485760",
                                             "ENHANCEDSTATUSCODES"]),
         cfg=trusted(), exit=EX_OK, commands=STARTTLS_OK, check=ck_pipelined_after_tls),
    dict(name="PIPELINING offered only before TLS",
         server=starttls_srv("good", extensions=["PIPELINING", "STARTTLS"],
                             tls_extensions=["ENHANCEDSTATUSCODES"]),
         cfg=trusted(), exit=EX_OK, commands=STARTTLS_OK,
         check=ck_not_pipelined_after_tls),
    dict(name="AUTH offered only before TLS: forgotten after",
         server=starttls_srv("good", extensions=["PIPELINING", "AUTH PLAIN", "STARTTLS"],
                             tls_extensions=["PIPELINING"]),
         cfg=trusted(auth="auto", user=USER, password=PASSWORD), exit=EX_UNAVAILABLE,
         err=["AUTH"], commands=[EHLO, b"STARTTLS", EHLO, b"QUIT"]),
    dict(name="SIZE limit only before TLS: forgotten after",
         server=starttls_srv("good", extensions=["SIZE 100", "STARTTLS"],
                             tls_extensions=["SIZE 10485760"]),
         cfg=trusted(), stdin_file=True, exit=EX_OK, check=ck_size_declared),
    dict(name="SIZE limit only after TLS: refused before MAIL",
         server=starttls_srv("good", extensions=["SIZE 10485760", "STARTTLS"],
                             tls_extensions=["SIZE 100"]),
         cfg=trusted(), stdin_file=True, exit=EX_UNAVAILABLE, err=["100"],
         commands=[EHLO, b"STARTTLS", EHLO, b"QUIT"]),
    # ---- the port does not speak TLS
    dict(name="plaintext server on an implicit-TLS port", server=lambda C, box: S(),
         cfg=lambda C: dict(tls="implicit", tls_trust_file=C.ca), exit=EX_PROTOCOL,
         err=["speaking TLS"], no_mail=True),
    # ---- client certificates
    dict(name="client certificate presented (server requires one)",
         server=lambda C, box: S(ssl_context=C.context(
             C.good, client_ca=C.client_ca, require_client=True), tls="starttls",
             rules={"MAIL": record_peer(box)}),
         cfg=trusted(tls_cert_file=lambda C: C.client[0], tls_key_file=lambda C: C.client[1]),
         exit=EX_OK, commands=STARTTLS_OK, check=ck_client_cert),
    dict(name="client certificate and key in one file",
         server=lambda C, box: S(ssl_context=C.context(
             C.good, client_ca=C.client_ca, require_client=True), tls="implicit",
             rules={"MAIL": record_peer(box)}),
         cfg=lambda C: dict(tls="implicit", tls_trust_file=C.ca,
                            tls_cert_file=combined_pem(C)),
         exit=EX_OK, commands=IMPLICIT_OK, check=ck_client_cert),
    dict(name="no client certificate configured: none presented",
         server=lambda C, box: S(ssl_context=C.context(
             C.good, client_ca=C.client_ca, require_client=False), tls="starttls",
             rules={"MAIL": record_peer(box)}),
         cfg=trusted(), exit=EX_OK, commands=STARTTLS_OK, check=ck_no_client_cert),
    dict(name="server requires a client certificate, none configured",
         server=lambda C, box: S(ssl_context=C.context(
             C.good, client_ca=C.client_ca, require_client=True), tls="implicit"),
         cfg=lambda C: dict(tls="implicit", tls_trust_file=C.ca), exit="nonzero",
         no_mail=True, delivered=False, stderr_lines=None),
    # ---- local configuration errors
    dict(name="bad tls_priorities", server=starttls_srv("good"),
         cfg=trusted(tls_priorities="NORMAL:+NO-SUCH-THING"), exit=EX_CONFIG,
         err=["tls_priorities"], no_mail=True),
    dict(name="tls_priorities leaving nothing above the TLS 1.2 floor",
         server=starttls_srv("good"),
         cfg=trusted(tls_priorities="NORMAL:-VERS-ALL:+VERS-TLS1.1"), exit=EX_CONFIG,
         err=["tls_priorities"], no_mail=True),
    dict(name="missing tls_trust_file", server=starttls_srv("good"),
         cfg=lambda C: dict(tls="starttls", tls_trust_file=os.path.join(
             t.tmpdir(), "no-such-ca.pem")), exit=EX_NOINPUT, err=["no-such-ca.pem"],
         no_mail=True),
    dict(name="missing tls_cert_file", server=starttls_srv("good"),
         cfg=trusted(tls_cert_file=os.path.join(t.tmpdir(), "no-such-cert.pem"),
                     tls_key_file=lambda C: C.client[1]),
         exit=EX_NOINPUT, err=["no-such-cert.pem"], no_mail=True),
    # ---- --serverinfo
    dict(name="--serverinfo, STARTTLS, trusted",
         server=starttls_srv("good", extensions=["PIPELINING", "STARTTLS"],
                             tls_extensions=["PIPELINING", "AUTH PLAIN"]),
         cfg=trusted(), args=["--serverinfo"], exit=EX_OK, stdout_ok=True,
         check=ck_serverinfo(lambda C: C.good, r"^trusted")),
    dict(name="--serverinfo, untrusted self-signed",
         server=starttls_srv("selfsigned", extensions=["PIPELINING", "STARTTLS"],
                             tls_extensions=["PIPELINING", "AUTH PLAIN"]),
         cfg=trusted(), args=["--serverinfo"], exit=EX_OK, stdout_ok=True,
         check=ck_serverinfo(lambda C: C.selfsigned, r"NOT trusted")),
    dict(name="--serverinfo, expired, implicit TLS", server=implicit_srv("expired"),
         cfg=lambda C: dict(tls="implicit", tls_trust_file=C.ca),
         args=["--serverinfo"], exit=EX_OK, stdout_ok=True,
         check=ck_serverinfo(lambda C: C.expired, r"expired",
                             until="2020-12-31 00:00:00 UTC", starttls=False)),
    dict(name="--serverinfo, pin mismatch reported",
         server=starttls_srv("selfsigned", extensions=["PIPELINING", "STARTTLS"],
                             tls_extensions=["PIPELINING", "AUTH PLAIN"]),
         cfg=pinned(lambda C: fp(certs.spki_sha256(C.good[0]))), args=["--serverinfo"],
         exit=EX_OK, stdout_ok=True,
         check=ck_serverinfo(lambda C: C.selfsigned, r"pin mismatch")),
    dict(name="--serverinfo, certificate names with terminal escapes",
         server=hostile_srv, needs=have_cryptography,
         cfg=lambda C: dict(tls="implicit", tls_trust_file=C.ca),
         args=["--serverinfo"], exit=EX_OK, stdout_ok=True, check=ck_no_escapes),
    # ---- secrets in -v
    dict(name="-v transcript with AUTH PLAIN over STARTTLS",
         server=starttls_srv("good", extensions=AUTH_EXT + ["STARTTLS"]),
         cfg=trusted(auth="plain", user=USER, password=PASSWORD), args=["-v", RCPT],
         exit=EX_OK, check=ck_verbose_redacted),
]


def combined_pem(C):
    path = os.path.join(C.dir, "client-combined.pem")
    if not os.path.exists(path):
        with open(path, "wb") as out:
            for p in (C.client[0], C.client[1]):
                with open(p, "rb") as f:
                    out.write(f.read())
    return path


# --------------------------------------------------------------------------

def resolve_cfg(c, C):
    cfg = c["cfg"](C) if c.get("cfg") else {}
    return {k: (v(C) if callable(v) else v) for k, v in cfg.items()}


def run_case(c, C):
    name = c["name"]
    if c.get("needs") and not c["needs"]():
        t.skip(name, "needs Python's cryptography module")
        return
    box = Box()
    srv = ScriptedServer(**c["server"](C, box)).start()
    try:
        cfg = t.write_config(port=srv.port, **resolve_cfg(c, C))
        kw = {"new_session": True}
        if c.get("stdin_file"):
            path = os.path.join(t.tmpdir(), "tls-msg.eml")
            with open(path, "wb") as f:
                f.write(MSG)
            kw["stdin_file"] = path
        else:
            kw["stdin"] = MSG
        res = t.run_pushmail(["-C", cfg] + c.get("args", [RCPT]), **kw)
    finally:
        srv.stop()
    rec = srv.record
    info = t.server_diag(res, srv)
    t.check_exit(name, res, c["exit"], info)
    t.is_eq(srv.errors, [], name + ": scripted server ran cleanly")
    verbose = "-v" in c.get("args", [])
    if c["exit"] == EX_OK and not verbose:
        t.is_eq(res.err, b"", name + ": nothing on stderr")
    if c["exit"] == EX_OK and not c.get("stdout_ok"):
        t.is_eq(res.out, b"", name + ": nothing on stdout")
    if c["exit"] != EX_OK:
        err = res.err.strip()
        t.ok(err and b"\n" not in err, name + ": one line on stderr",
             "stderr: %s" % t.show(res.err))
        want = [s.encode() for s in c.get("err", [])]
        if want:
            t.ok(all(w in err for w in want),
                 name + ": stderr says " + "/".join(c["err"]),
                 "stderr: %s" % t.show(res.err))
        t.ok(b"127.0.0.1" in err or b"localhost" in err, name + ": stderr names the host",
             "stderr: %s" % t.show(res.err))
    if "commands" in c:
        t.is_eq(rec.commands if rec else None, streamed(c["commands"], srv, rec),
                name + ": exactly these commands reached the server", *info)
    if c.get("no_mail") and rec:
        t.is_eq([x for x in rec.commands if x.split(b" ")[0].split(b":")[0].upper()
                 .decode("latin-1") in CLEAR_VERBS], [],
                name + ": no MAIL/RCPT/DATA/AUTH sent")
    if c["exit"] != EX_OK or c.get("delivered") is False:
        t.is_eq(len(done_txns(rec)), 0, name + ": no message delivered")
    if "max_time" in c:
        t.ok(res.elapsed < c["max_time"],
             name + ": finished in %.1fs (< %ss)" % (res.elapsed, c["max_time"]))
    if c.get("check"):
        if rec is None:
            t.ok(False, name + ": server was connected to", *info)
        else:
            c["check"](name, res, srv, C, box)


def main():
    t.require_pushmail()
    C = certs.get()
    if C is None:
        t.skip_all("certtool (gnutls-bin) or Python ssl not available")
    only = os.environ.get("TLS_ONLY")
    for c in CASES:
        if only and only not in c["name"]:
            continue
        run_case(c, C)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
