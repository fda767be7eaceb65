#!/usr/bin/env python3
"""TLS and SMTP AUTH interop with a real Postfix + Dovecot SASL (TAP).

Starts on 127.0.0.1 (tests/postfixlib.py):
  * certificates made with certtool: a CA and a server certificate for
    localhost + IP 127.0.0.1 (TestCerts);
  * a throwaway Postfix with a submission service (STARTTLS required,
    smtpd_tls_security_level = encrypt) and an smtps service (wrapper mode),
    both with SASL enabled and smtpd_client_restrictions =
    permit_sasl_authenticated, reject (mynetworks does not let 127.0.0.1
    submit there without AUTH), and smtpd_tls_auth_only = yes;
  * a throwaway Dovecot used only as Postfix's SASL server (DovecotAuth),
    its auth socket in the queue's private/auth, passwords stored {PLAIN} so
    that PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1 and SCRAM-SHA-256 all work.

Then runs the pushmail binary named by $PUSHMAIL: auth = auto over STARTTLS and
implicit TLS, every mechanism Dovecot offers explicitly, -PLUS variants (which
Dovecot 2.3 does not offer: exit 69 naming the offered list), a wrong password
(77), an unknown CA (69), tls = off with a password (78), no AUTH at all (the
relay refuses: 69), --serverinfo, and tls_fingerprint pinning.  Every case
asserts the exact exit status and what arrived in the Maildir (nothing, for the
failures; a final sentinel proves nothing arrived late).  No -v transcript may
contain the password, plainly or base64-encoded.

The --serverinfo output is printed once as '# ' diagnostics.

Skips (exit 0) when Postfix, Dovecot or certtool is missing or we are not root,
unless CI=true, where each is a failure.  PUSHMAIL_TEST_KEEP=1 keeps the temp
directory (it is always kept when a test fails).
"""

import base64
import os
import socket
import re
import shutil
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__)))
import postfixlib  # noqa: E402
import taplib as t  # noqa: E402

DOMAIN = "test.example"
RCPT = "user@" + DOMAIN
SENDER = "sender@" + DOMAIN
SASL_USER = "sasluser"
PASSWORD = "Tls-Interop.pw7Qx2"     # no ':' (passwd-file), no ' ;' (inih)
WRONG_PASSWORD = "Wrong-Secret.k4Zr9"
RUN_TIMEOUT = 60            # one pushmail run
DELIVERY_TIMEOUT = 30       # Postfix writing the Maildir file
LOG_TIMEOUT = 10            # postlogd writing a maillog line

# pushmail's auth = auto preference (pushmail.conf(5)); -PLUS needs binding.
AUTO_ORDER = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
              "SCRAM-SHA-1", "PLAIN", "LOGIN", "CRAM-MD5")
EXPLICIT = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256",
            "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS")


def bail(reason):
    lines = str(reason).splitlines() or [""]
    print("Bail out! " + lines[0], flush=True)
    t.diag(*lines[1:])
    sys.exit(1)


def secret_forms(user, password):
    """The password as it could leak: literally, base64 on its own (LOGIN),
    inside PLAIN's initial response (with and without authzid)."""
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    return [password, b64(password), b64("\0%s\0%s" % (user, password)),
            b64("%s\0%s\0%s" % (user, user, password))]


class Harness:
    def __init__(self, pf, certs, pushmail):
        self.pf, self.certs, self.pushmail = pf, certs, pushmail
        self.env = t.base_env()
        self.sub = pf.ports["submission"]
        self.smtps = pf.ports["smtps"]
        self.offered = None         # AUTH mechanisms after TLS, from --serverinfo
        self.spki_pin = None        # "sha256:..." public key hash from --serverinfo
        self.cert_pin = None
        self.n = 0

    def cfg(self, port, **keys):
        """An account file (0600: it holds a password) for `port`."""
        settings = {"host": "127.0.0.1", "port": str(port), "tls": "starttls",
                    "tls_trust_file": self.certs.ca, "auth": "auto",
                    "user": SASL_USER, "password": PASSWORD, "from": SENDER,
                    "timeout": "20", "queue": "never", "domain": "client.example"}
        settings.update(keys)
        text = "[interop]\n" + "".join("%s = %s\n" % (k, v) for k, v in settings.items()
                                       if v is not None)
        path = t.write_config(text=text)
        st = os.stat(path)
        assert st.st_mode & 0o077 == 0, "config file must be 0600"
        return path

    def message(self, name):
        self.n += 1
        marker = "pushmail-tls-interop-%d" % self.n
        msg = ("From: Sender <%s>\nTo: %s\nSubject: %s (%s)\n"
               "Date: Mon, 30 Nov 2026 00:00:00 +0000\nMessage-ID: <%s@test.example>\n"
               "\n%s\nbody line\n" % (SENDER, RCPT, marker, name, marker, marker))
        return marker, msg.encode()

    def run(self, cfg, args, msg=b""):
        return t.run([self.pushmail, "-C", cfg] + list(args), stdin=msg, env=self.env,
                     timeout=RUN_TIMEOUT)

    def no_secret(self, name, r, password=PASSWORD):
        err = r.err.decode("utf-8", "replace") + r.out.decode("utf-8", "replace")
        leaked = [s for s in secret_forms(SASL_USER, password) if s in err]
        t.ok(not leaked, "%s: -v transcript does not contain the password" % name,
             "found: %r" % leaked)

    def queue_id(self, r):
        m = re.search(r"queued as ([0-9A-Za-z]+)", r.err.decode("utf-8", "replace"))
        return m.group(1) if m else None

    def sasl_method_logged(self, qid):
        """sasl_method of queue id `qid` from the maillog (bounded wait)."""
        pat = re.compile(r"%s: client=\S+, sasl_method=([A-Z0-9-]+), sasl_username=(\S+)"
                         % re.escape(qid))
        deadline = time.monotonic() + LOG_TIMEOUT
        while True:
            try:
                with open(self.pf.maillog, "rb") as f:
                    m = pat.search(f.read().decode("utf-8", "replace"))
            except OSError:
                m = None
            if m or time.monotonic() > deadline:
                return (m.group(1), m.group(2)) if m else None
            time.sleep(0.1)

    def deliver(self, name, cfg, want_mech=None, verbose=True):
        """Run pushmail (with -v); expect exit 0, one message in the Maildir
        that came in over TLS with AUTH (ESMTPSA), and want_mech both in
        pushmail's transcript and in Postfix's log.  Returns the Result."""
        marker, msg = self.message(name)
        r = self.run(cfg, (["-v"] if verbose else []) + [RCPT], msg)
        t.is_eq(r.rc, 0, "%s: exit 0" % name, *r.describe())
        if verbose:
            self.no_secret(name, r)
        if want_mech:
            m = re.search(r"authenticating as \S+ with ([A-Z0-9-]+)",
                          r.err.decode("utf-8", "replace"))
            t.is_eq(m.group(1) if m else None, want_mech,
                    "%s: pushmail chose %s" % (name, want_mech), *r.describe())
            qid = self.queue_id(r)
            got = self.sasl_method_logged(qid) if qid else None
            t.is_eq(got, (want_mech, SASL_USER),
                    "%s: Postfix logged sasl_method=%s for %s" % (name, want_mech, SASL_USER),
                    "queue id %s" % qid, self.pf.log_tail(8))
        try:
            got = self.pf.wait_for_maildir(1, DELIVERY_TIMEOUT)
        except TimeoutError as e:
            t.ok(False, "%s: delivered to the Maildir" % name, str(e))
            return r
        ok = (len(got) == 1 and marker.encode() in got[0]
              and b"Return-Path: <%s>" % SENDER.encode() in got[0])
        t.ok(ok, "%s: exactly this message in the Maildir" % name,
             "%d message(s): %r" % (len(got), [g[:400] for g in got]))
        if got:
            # Postfix's Received says ESMTPSA for TLS + AUTH (RFC 3848).
            t.ok(re.search(rb"with ESMTPSA id ", got[0]) is not None,
                 "%s: Received header says ESMTPSA (TLS and AUTH)" % name,
                 got[0][:600].decode("utf-8", "replace"))
        return r

    def refuse(self, name, cfg, want_rc, want_text=(), args=(), verbose=True,
               password=PASSWORD, no_auth_sent=False):
        """Run pushmail; expect exit want_rc, each of want_text in stderr, and
        nothing in the Maildir or Postfix's queue."""
        marker, msg = self.message(name)
        r = self.run(cfg, (["-v"] if verbose else []) + list(args) + [RCPT], msg)
        t.is_eq(r.rc, want_rc, "%s: exit %d" % (name, want_rc), *r.describe())
        err = r.err.decode("utf-8", "replace")
        for w in want_text:
            t.ok(w in err, "%s: stderr mentions %r" % (name, w), *r.describe())
        if verbose:
            self.no_secret(name, r, password)
        if no_auth_sent:
            t.ok("-> AUTH" not in err, "%s: no AUTH command was sent" % name,
                 *r.describe())
        # The failures all happen before DATA: Postfix has nothing to deliver.
        got = self.pf.drain_maildir()
        t.ok(not got and self.pf.queue_count() == 0,
             "%s: nothing delivered or queued by Postfix" % name,
             "Maildir: %r, queue: %d" % ([g[:200] for g in got], self.pf.queue_count()))
        return r


# --- cases ----------------------------------------------------------------------

def case_serverinfo(h):
    name = "--serverinfo (submission)"
    r = h.run(h.cfg(h.sub), ["--serverinfo"])
    t.is_eq(r.rc, 0, "%s: exit 0" % name, *r.describe())
    out = r.out.decode("utf-8", "replace")
    t.diag("--- pushmail --serverinfo against Postfix submission (STARTTLS) ---", out,
           "--- end of --serverinfo ---")
    m = re.search(r"^\s*sha256 \(public key\):\s+(\S+)\s*$", out, re.M)
    got = m.group(1) if m else None
    norm = lambda s: s.lower().replace("sha256:", "").replace(":", "") if s else s
    t.is_eq(norm(got), h.certs.spki_sha256,
            "%s: 'sha256 (public key):' line is certtool's SPKI hash" % name, out)
    h.spki_pin = got
    m = re.search(r"^\s*sha256 \(certificate\):\s+(\S+)\s*$", out, re.M)
    got = m.group(1) if m else None
    t.is_eq(norm(got), h.certs.cert_sha256,
            "%s: 'sha256 (certificate):' line is certtool's fingerprint" % name)
    h.cert_pin = got
    before, _, after = out.partition("capabilities after TLS:")
    auth_after = re.search(r"^\s*AUTH[ =](.*)$", after, re.M)
    t.ok(auth_after is not None, "%s: capabilities after TLS include AUTH" % name, out)
    t.ok(re.search(r"^\s*AUTH\b", before, re.M) is None and "STARTTLS" in before,
         "%s: before TLS STARTTLS but no AUTH (smtpd_tls_auth_only)" % name, out)
    t.ok(re.search(r"^\s*verification:\s+trusted", out, re.M) is not None,
         "%s: certificate verified with tls_trust_file" % name, out)
    if auth_after:
        h.offered = auth_after.group(1).upper().split()
        t.diag("Dovecot (via Postfix) offers: AUTH %s" % " ".join(h.offered))


def offered(h):
    return h.offered or []


def case_auto_starttls(h):
    want = next((m for m in AUTO_ORDER if m in offered(h) and not m.endswith("-PLUS")),
                None)
    t.diag("auth = auto should choose %s" % want)
    h.deliver("auto, tls = starttls, port %d" % h.sub, h.cfg(h.sub), want_mech=want)


def case_auto_implicit(h):
    want = next((m for m in AUTO_ORDER if m in offered(h) and not m.endswith("-PLUS")),
                None)
    h.deliver("auto, tls = implicit, port %d" % h.smtps,
              h.cfg(h.smtps, tls="implicit"), want_mech=want)


def case_explicit(h):
    if not h.offered:
        t.ok(False, "explicit mechanisms: no AUTH list from --serverinfo")
        return
    for mech in EXPLICIT:
        name = "auth = %s" % mech.lower()
        if mech in h.offered:
            h.deliver(name, h.cfg(h.sub, auth=mech.lower()), want_mech=mech)
        elif mech.endswith("-PLUS"):
            # Dovecot 2.3 offers no channel-binding mechanisms; pushmail must
            # refuse before trying and name what the relay offers.
            h.refuse(name + " (not offered)", h.cfg(h.sub, auth=mech.lower()), 69,
                         want_text=("AUTH %s" % mech, " ".join(h.offered)),
                         no_auth_sent=True)
        else:
            t.skip(name, "Dovecot does not offer %s" % mech)


def case_explicit_implicit_tls(h):
    # One mechanism over the smtps port too (SCRAM needs several round trips).
    mech = "SCRAM-SHA-1" if "SCRAM-SHA-1" in offered(h) else "PLAIN"
    h.deliver("auth = %s, tls = implicit" % mech.lower(),
              h.cfg(h.smtps, tls="implicit", auth=mech.lower()), want_mech=mech)


def case_wrong_password(h):
    for port, tls in ((h.sub, "starttls"), (h.smtps, "implicit")):
        h.refuse("wrong password, tls = %s" % tls,
                 h.cfg(port, tls=tls, password=WRONG_PASSWORD), 77,
                 want_text=("535", "5.7.8"), password=WRONG_PASSWORD)


def case_unknown_ca(h):
    # The system trust store does not know our CA.
    h.refuse("tls_trust_file unset (system store), STARTTLS",
             h.cfg(h.sub, tls_trust_file=None), 69, want_text=("certificate",),
             no_auth_sent=True)
    h.refuse("tls_trust_file unset (system store), implicit TLS",
             h.cfg(h.smtps, tls="implicit", tls_trust_file=None), 69,
             want_text=("certificate",), no_auth_sent=True)


def case_plaintext_auth(h):
    # pushmail must refuse to authenticate in clear (allow_plaintext_auth = no).
    # The plain smtpd port offers no AUTH at all, the submission port offers
    # none before STARTTLS: either way the password must not be sent.
    for port, label in ((h.sub, "submission"), (h.pf.port, "plain smtpd")):
        h.refuse("tls = off with a password (%s port)" % label,
                 h.cfg(port, tls="off"), 78, want_text=("unencrypted",),
                 no_auth_sent=True)


def case_no_auth(h):
    # mynetworks does not let 127.0.0.1 submit without AUTH on these ports:
    # "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied".
    h.refuse("auth = off on the submission port (relay refuses)",
             h.cfg(h.sub, auth="off", user=None, password=None), 69,
             want_text=("5.7.1",))


def case_fingerprint(h):
    if not h.spki_pin:
        t.ok(False, "tls_fingerprint: no public key hash from --serverinfo")
        return
    # The pin replaces the CA check: no tls_trust_file, system store.
    r = h.deliver("tls_fingerprint = SPKI hash from --serverinfo, no tls_trust_file",
                  h.cfg(h.sub, tls_trust_file=None, tls_fingerprint=h.spki_pin))
    t.ok(b"public key" in r.err,
         "SPKI pin: -v says the public key matched", *r.describe())
    if h.cert_pin:
        h.deliver("tls_fingerprint = certificate hash, implicit TLS, no tls_trust_file",
                  h.cfg(h.smtps, tls="implicit", tls_trust_file=None,
                        tls_fingerprint=h.cert_pin))
    # A pin that does not match (last byte changed) is refused.
    bad = h.spki_pin[:-2] + ("00" if h.spki_pin[-2:] != "00" else "11")
    h.refuse("tls_fingerprint mismatch", h.cfg(h.sub, tls_trust_file=None,
                                               tls_fingerprint=bad), 69,
             want_text=("pin",), no_auth_sent=True)


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def case_check(h):
    """pushmail --check (issue 9): every step or the exact failure with a hint;
    never a message."""
    rows = [
        ("all good", h.cfg(h.sub), 0, [b"ok    authenticate", b"nothing was sent"], []),
        ("wrong password", h.cfg(h.sub, password=WRONG_PASSWORD), 77,
         [b"FAIL  authenticate", b"535", b"hint: check user"], [b"ok    authenticate"]),
        ("untrusted certificate", h.cfg(h.sub, tls_trust_file=None), 69,
         [b"FAIL  TLS", b"NOT trusted", b"hint: set tls_trust_file"], []),
        ("wrong port (implicit TLS on the STARTTLS port)",
         h.cfg(h.sub, tls="implicit"), None, [b"FAIL", b"hint:"], []),
        ("wrong port (nothing listening)", h.cfg(closed_port()), 75,
         [b"FAIL  connect", b"hint: wrong port"], []),
        ("unresolvable host", h.cfg(h.sub, host="no-such-host.invalid"), 68,
         [b"FAIL  resolve", b"hint: check the host name"], []),
    ]
    for name, cfg, want_rc, want, unwanted in rows:
        name = "--check: " + name
        r = h.run(cfg, ["--check"])
        if want_rc is None:
            t.ok(r.rc in (75, 76, 69), name + ": exit status of a TLS failure",
                 *r.describe())
        else:
            t.is_eq(r.rc, want_rc, name + ": exit status", *r.describe())
        for w in want:
            t.ok(w in r.out, name + ": says %s" % t.show(w), "stdout: %s" % t.show(r.out))
        for w in unwanted:
            t.ok(w not in r.out, name + ": does not say %s" % t.show(w))
        h.no_secret(name, r)


def case_sentinel(h):
    # Nothing refused above may turn up late: the next message is the only one.
    h.deliver("sentinel after the refusals", h.cfg(h.sub), verbose=False)


def case_pipelined_auth_refused(h):
    """AUTH PLAIN rides with the message (RFC 4954 4).  With a wrong password
    at a relay that takes mail from 127.0.0.1 without AUTH, Postfix refuses
    the login and then accepts the transaction that followed it: pushmail
    must not count that message as sent (77, a warning), and with a queue
    the message stays queued."""
    name = "wrong password, relay open to its network (pipelined AUTH)"
    port = h.pf.ports["smtps-open"]
    marker, msg = h.message(name)
    r = h.run(h.cfg(port, tls="implicit", auth="plain", password=WRONG_PASSWORD),
              ["-v", RCPT], msg)
    t.is_eq(r.rc, 77, "%s: exit 77, never 0" % name, *r.describe())
    err = r.err.decode("utf-8", "replace")
    t.ok("535" in err and "refused AUTH yet accepted" in err,
         "%s: the refusal and the warning on stderr" % name, *r.describe())
    h.no_secret(name, r, WRONG_PASSWORD)
    try:
        got = h.pf.wait_for_maildir(1, DELIVERY_TIMEOUT)
    except TimeoutError:
        got = []
    # what Postfix did (the case the warning is about): it delivered it as
    # from an unauthenticated client (ESMTPS, not ESMTPSA)
    t.ok(len(got) == 1 and marker.encode() in got[0] and
         re.search(rb"with ESMTPS id ", got[0]) is not None,
         "%s: Postfix took it without AUTH (ESMTPS)" % name,
         "%d message(s): %r" % (len(got), [g[:400] for g in got]))
    h.pf.drain_maildir()

    name = "wrong password, relay open to its network, queue = on-failure"
    spool = tempfile.mkdtemp(prefix="pm-spool-", dir=h.tmp)
    marker, msg = h.message(name)
    r = t.run([h.pushmail, "-C", h.cfg(port, tls="implicit", auth="plain",
                                       password=WRONG_PASSWORD, queue="on-failure")]
              + [RCPT], stdin=msg, env=dict(h.env, PUSHMAIL_QUEUE_DIR=spool),
              timeout=RUN_TIMEOUT)
    kept = [n for n in os.listdir(os.path.join(spool, "new")) if n.endswith(".env")] \
        if os.path.isdir(os.path.join(spool, "new")) else []
    t.is_eq(len(kept), 1, "%s: the message stays queued" % name, *r.describe())
    try:
        h.pf.wait_for_maildir(1, DELIVERY_TIMEOUT)
    except TimeoutError:
        pass
    h.pf.drain_maildir()


CASES = [case_serverinfo, case_auto_starttls, case_auto_implicit, case_explicit,
         case_explicit_implicit_tls, case_wrong_password, case_unknown_ca,
         case_plaintext_auth, case_no_auth, case_fingerprint, case_check,
         case_pipelined_auth_refused, case_sentinel]


def main():
    ci = os.environ.get("CI") == "true"
    for what, found in (("postfix", postfixlib.find_postfix()),
                        ("dovecot (dovecot-core)", postfixlib.find_dovecot()),
                        ("certtool (gnutls-bin)", postfixlib.find_certtool())):
        if not found:
            if ci:
                bail("%s not installed (required in CI)" % what)
            t.skip_all("%s not installed" % what)
    if os.geteuid() != 0:
        if ci:
            bail("the Postfix TLS interop test must run as root in CI")
        t.skip_all("starting Postfix and Dovecot needs root")
    pushmail = os.path.abspath(t.PUSHMAIL)
    if not os.access(pushmail, os.X_OK):
        bail("no pushmail binary at %s (set PUSHMAIL)" % pushmail)

    # Not taplib's 0700 tmpdir: postfix, dovecot and nobody must reach it.
    tmp = tempfile.mkdtemp(prefix="pushmail-postfix-tls-")
    os.chmod(tmp, 0o755)
    keep = bool(os.environ.get("PUSHMAIL_TEST_KEEP"))
    failed_before = t._failed
    pf = dv = None
    try:
        try:
            certs = postfixlib.TestCerts(os.path.join(tmp, "certs"))
        except postfixlib.PostfixError as e:
            keep = True
            bail("cannot make certificates (kept %s): %s" % (tmp, e))
        sasl = {"smtpd_sasl_auth_enable": "yes",
                "smtpd_client_restrictions": "permit_sasl_authenticated,reject",
                "smtpd_relay_restrictions": "permit_sasl_authenticated,reject"}
        pf = postfixlib.PostfixInstance(tmp, main_cf={
            "smtpd_tls_cert_file": certs.cert,
            "smtpd_tls_key_file": certs.key,
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": "private/auth",
            "smtpd_tls_auth_only": "yes",
            "smtpd_tls_loglevel": "1",
        })
        pf.add_inet_service("submission", options=dict(
            smtpd_tls_security_level="encrypt", **sasl))
        pf.add_inet_service("smtps", options=dict(
            smtpd_tls_wrappermode="yes", smtpd_tls_security_level="encrypt", **sasl))
        # issue 17: a relay that offers AUTH yet takes mail from its network
        # without it (permit_mynetworks), where a pipelined AUTH that fails
        # is followed by a transaction the relay accepts
        pf.add_inet_service("smtps-open", options=dict(
            smtpd_tls_wrappermode="yes", smtpd_tls_security_level="encrypt",
            smtpd_sasl_auth_enable="yes", smtpd_client_restrictions="",
            smtpd_relay_restrictions="permit_mynetworks,permit_sasl_authenticated,reject"))
        try:
            pf.start()     # `postfix check` creates QUEUE/private for the socket
            dv = postfixlib.DovecotAuth(
                tmp, os.path.join(pf.queue_dir, "private", "auth"),
                {SASL_USER: PASSWORD}).start()
        except postfixlib.PostfixError as e:
            keep = True
            bail("cannot start Postfix/Dovecot (kept %s): %s" % (tmp, e))
        t.diag("Postfix submission 127.0.0.1:%d, smtps :%d, plain :%d; Dovecot "
               "auth_mechanisms = %s; files in %s"
               % (pf.ports["submission"], pf.ports["smtps"], pf.port,
                  " ".join(dv.mechanisms), tmp))
        h = Harness(pf, certs, pushmail)
        h.tmp = tmp
        for case in CASES:
            try:
                case(h)
            except Exception:
                t.ok(False, "%s raised" % case.__name__, traceback.format_exc())
        t.is_eq(pf.queue_count(), 0, "Postfix queue empty at the end")
        postfixlib.check_sessions_closed(pf, t)
    finally:
        if dv:
            dv.stop()
        if pf:
            pf.stop()
        failed = t._failed > failed_before
        if failed or keep:
            t.diag("kept %s" % tmp)
            if failed and pf:
                t.diag("--- maillog tail ---", pf.log_tail(30))
            if failed and dv:
                t.diag("--- dovecot log tail ---", dv.log_tail(20))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
