#!/usr/bin/env python3
"""Interop with a real Postfix (TAP).

Starts a throwaway Postfix (tests/postfixlib.py) on 127.0.0.1, sends with the
pushmail binary named by $PUSHMAIL over plain SMTP (tls = off, auth = off), and
compares what Postfix's virtual(8) agent wrote into the Maildir with what went
in.  Postfix stores LF line endings and prepends Return-Path, X-Original-To,
Delivered-To and Received; those trace headers are checked separately (envelope
sender and recipient) and stripped before comparing the rest byte for byte.

The instance runs with smtpd_forbid_bare_newline = yes, so any bare LF that
reaches the wire makes Postfix refuse the message (SMTP smuggling defence), and
smtpd_forbid_unauth_pipelining = yes, so RFC 2920 violations disconnect.

Skips (exit 0) when Postfix is not installed or we are not root, unless
CI=true, where both are failures.  Set PUSHMAIL_KEEP_TMP=1 to keep the temp
directory (it is always kept when a test fails).
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import traceback

sys.path.insert(0, os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__)))
import postfixlib  # noqa: E402

DOMAIN = "test.example"
USERS = ("user", "to", "cc", "bcc", "bcc2")
RUN_TIMEOUT = 120          # seconds for one pushmail run (the 5 MiB one included)
DELIVERY_TIMEOUT = 30      # seconds for Postfix to write the Maildir file

# --- minimal TAP --------------------------------------------------------------

class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name), flush=True)
        if not cond:
            self.failed += 1
            if diag:
                self.diag(diag)
        return cond

    def is_(self, got, want, name):
        return self.ok(got == want, name, "got:  %r\nwant: %r" % (got, want))

    def diag(self, text):
        for line in str(text).splitlines() or [""]:
            print("# " + line, flush=True)

    def done(self):
        print("1..%d" % self.n, flush=True)
        return 1 if self.failed else 0


def skip_all(reason):
    print("1..0 # SKIP " + reason)
    sys.exit(0)


def bail(reason):
    print("Bail out! " + reason.splitlines()[0] if reason else "Bail out!")
    for line in reason.splitlines()[1:]:
        print("# " + line)
    sys.exit(1)

# --- message helpers ------------------------------------------------------------

TRACE_HEADERS = (b"return-path", b"x-original-to", b"delivered-to", b"received")


def split_trace(delivered):
    """(trace headers {name: [values]}, rest) of a delivered message."""
    lines = delivered.split(b"\n")
    trace, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line[:1] in (b" ", b"\t") and trace:
            trace[-1] += b"\n" + line
        elif b":" in line and line.split(b":", 1)[0].strip().lower() in TRACE_HEADERS:
            trace.append(line)
        else:
            break
        i += 1
    d = {}
    for t in trace:
        name, _, value = t.partition(b":")
        d.setdefault(name.strip().lower().decode(), []).append(value.strip())
    return d, b"\n".join(lines[i:])


def stored_form(msg):
    """What Postfix stores for `msg` after pushmail's normalisation: every
    line ending (CRLF, bare LF, bare CR) becomes LF, final newline added."""
    out = msg.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not out.endswith(b"\n"):
        out += b"\n"
    return out


def first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            break
    else:
        i = n
    return "lengths %d vs %d, first difference at byte %d:\n got:  %r\n want: %r" % (
        len(a), len(b), i, a[max(0, i - 40):i + 40], b[max(0, i - 40):i + 40])


def headers_of(msg):
    """Unfolded header lines (bytes) of an LF message."""
    head = msg.split(b"\n\n", 1)[0]
    out = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += b"\n" + line
        elif line:
            out.append(line)
    return out


def std_headers(to="user@" + DOMAIN, extra=b""):
    return (b"From: Sender <sender@test.example>\n"
            b"To: " + to.encode() + b"\n"
            b"Subject: pushmail interop\n"
            b"Date: Mon, 30 Nov 2026 00:00:00 +0000\n"
            b"Message-ID: <interop.%d@test.example>\n" % random.randrange(10**9)
            + extra)


def big_body(size):
    """Deterministic text of 76-character lines (bare LF), with some dot lines."""
    rnd = random.Random(1870)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-"
    chunks, total, n = [], 0, 0
    while total < size:
        n += 1
        if n % 997 == 0:
            line = b".\n"
        elif n % 101 == 0:
            line = b"." + bytes(rnd.choice(alphabet) for _ in range(40)) + b"\n"
        else:
            line = bytes(rnd.choice(alphabet) for _ in range(76)) + b"\n"
        chunks.append(line)
        total += len(line)
    return b"".join(chunks)[:size - 1] + b"\n"

# --- the harness ----------------------------------------------------------------

class Harness:
    def __init__(self, tap, pf, tmp, pushmail):
        self.tap, self.pf, self.tmp, self.pushmail = tap, pf, tmp, pushmail
        self.env = dict(os.environ)
        for k in ("PUSHMAIL_CONFIG",):
            self.env.pop(k, None)
        # Keep pushmail's queue/log/config lookups inside the temp dir.
        home = os.path.join(tmp, "home")
        os.makedirs(home, exist_ok=True)
        self.env.update(HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                        XDG_STATE_HOME=os.path.join(home, ".local", "state"),
                        LC_ALL="C")
        self.queue_new = os.path.join(home, ".local", "state", "pushmail", "queue", "new")
        self.cfg = self.write_cfg("pushmail.ini", pf.port)
        self.cfg_norelay = self.write_cfg("norelay.ini", pf.ports["norelay"])

    def write_cfg(self, name, port):
        path = os.path.join(self.tmp, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("[pf]\nhost = 127.0.0.1\nport = %d\ntls = off\nauth = off\n"
                    "from = sender@test.example\n" % port)
        os.chmod(path, 0o600)
        return path

    def run(self, args, msg, cfg=None):
        argv = [self.pushmail, "-C", cfg or self.cfg] + list(args)
        try:
            p = subprocess.run(argv, input=msg, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=self.env, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None, b"", b"timed out after %ds" % RUN_TIMEOUT
        return p.returncode, p.stdout, p.stderr

    def run_ok(self, name, args, msg):
        rc, out, err = self.run(args, msg)
        self.tap.ok(rc == 0, "%s: pushmail exits 0" % name,
                    "exit %r\nstderr: %s" % (rc, err.decode("utf-8", "replace")))
        queued = os.listdir(self.queue_new) if os.path.isdir(self.queue_new) else []
        self.tap.ok(not queued, "%s: nothing left in pushmail's queue" % name,
                    "queued: %r\nstderr: %s" % (queued, err.decode("utf-8", "replace")))
        return rc == 0

    def fetch(self, name, user="user", n=1):
        try:
            return self.pf.wait_for_maildir(n, DELIVERY_TIMEOUT, user=user)
        except TimeoutError as e:
            self.tap.ok(False, "%s: delivered to %s@%s" % (name, user, DOMAIN), str(e))
            return None

    def check_delivery(self, name, got, want, user="user", sender="sender@test.example"):
        """One delivered message `got` against expected stored content `want`."""
        trace, rest = split_trace(got)
        self.tap.is_(trace.get("return-path"), [b"<" + sender.encode() + b">"],
                     "%s: envelope sender (Return-Path)" % name)
        self.tap.is_(trace.get("delivered-to"), [("%s@%s" % (user, DOMAIN)).encode()],
                     "%s: envelope recipient (Delivered-To)" % name)
        self.tap.ok(rest == want, "%s: headers and body arrive intact" % name,
                    first_difference(rest, want))


def case_small(h):
    name = "small message"
    msg = std_headers() + b"\nHello from pushmail.\r\n8-bit: gr\xc3\xbc\xc3\x9fe\r\n"
    if h.run_ok(name, ["user@" + DOMAIN], msg):
        got = h.fetch(name)
        if got is not None:
            h.tap.is_(len(got), 1, "%s: exactly one copy" % name)
            h.check_delivery(name, got[0], stored_form(msg))


def case_envelope_from(h):
    name = "-f sets the envelope sender"
    msg = std_headers() + b"\nbody\n"
    if h.run_ok(name, ["-f", "other@test.example", "user@" + DOMAIN], msg):
        got = h.fetch(name)
        if got is not None:
            h.check_delivery(name, got[0], stored_form(msg), sender="other@test.example")


def case_dots_and_line_ends(h):
    name = "dot lines, bare CR, CRLF/LF mix"
    body = (b".\n"                   # a lone dot is data, never the end (-i standing)
            b"..\r\n"
            b".leading dot\n"
            b"crlf line\r\n"
            b"bare\rcr\n"            # bare CR -> line break
            b"\r\n.\r\n"             # CRLF.CRLF in the middle: still data
            b"\n.\n"                 # LF.LF (smuggling form)
            b"\r\n.\n"
            b"\n.\r\n"
            b"cr cr lf\r\r\n"
            b". \n"
            b"no final newline")
    msg = std_headers() + b"\n" + body
    if h.run_ok(name, ["user@" + DOMAIN], msg):
        got = h.fetch(name)
        if got is not None:
            h.tap.is_(len(got), 1, "%s: one message, not split" % name)
            h.check_delivery(name, got[0], stored_form(msg))


def case_t_flag(h):
    name = "-t with To/Cc/Bcc"
    msg = (b"From: Sender <sender@test.example>\n"
           b"To: To Person <to@test.example>\n"
           b"Cc: cc@test.example\n"
           b"Bcc: bcc@test.example,\n"
           b"\t\"Hidden Two\" <bcc2@test.example>\n"
           b"Subject: -t test\n"
           b"Date: Mon, 30 Nov 2026 00:00:00 +0000\n"
           b"Message-ID: <t-flag@test.example>\n"
           b"\n"
           b"Bcc: this body line is not a header\n")
    want = stored_form(msg.replace(
        b"Bcc: bcc@test.example,\n\t\"Hidden Two\" <bcc2@test.example>\n", b""))
    # SPEC 1: recipients from the headers are added to the command line ones.
    if h.run_ok(name, ["-t", "-i", "user@" + DOMAIN], msg):
        for user in ("to", "cc", "bcc", "bcc2", "user"):
            got = h.fetch("%s (%s)" % (name, user), user=user)
            if got is None:
                continue
            h.tap.is_(len(got), 1, "%s: %s gets exactly one copy" % (name, user))
            h.tap.ok(not any(l.lower().startswith(b"bcc:") for l in headers_of(got[0])),
                     "%s: no Bcc header in %s's copy" % (name, user))
            h.check_delivery("%s (%s)" % (name, user), got[0], want, user=user)


def case_missing_headers(h):
    name = "cron-style call, headers added"
    # Debian cron: -FCronDaemon -i -B8BITMIME -oem root (no -t, no From/Date/Message-ID)
    body = b"\n/etc/cron.daily/logrotate:\nerror: something\n"
    msg = b"To: user@test.example\nSubject: Cron <root@host> run-parts\n" + body
    if h.run_ok(name, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "user@" + DOMAIN], msg):
        got = h.fetch(name)
        if got is None:
            return
        _, rest = split_trace(got[0])
        hdrs = headers_of(rest)
        names = [l.split(b":", 1)[0].lower() for l in hdrs]
        for hn in (b"date", b"message-id", b"from"):
            h.tap.is_(names.count(hn), 1, "%s: one %s header" % (name, hn.decode()))
        frm = [l for l in hdrs if l.lower().startswith(b"from:")]
        h.tap.ok(frm and b"CronDaemon" in frm[0] and b"sender@test.example" in frm[0],
                 "%s: From uses -F name and the account address" % name, repr(frm))
        h.tap.ok(b"To: user@test.example" in hdrs
                 and b"Subject: Cron <root@host> run-parts" in hdrs,
                 "%s: original headers kept" % name, repr(hdrs))
        h.tap.ok(rest.endswith(stored_form(body)), "%s: body intact" % name,
                 first_difference(rest[-len(body):], stored_form(body)))


def case_5mib(h):
    name = "5 MiB message"
    msg = std_headers() + b"\n" + big_body(5 * 1024 * 1024)
    if h.run_ok(name, ["user@" + DOMAIN], msg):
        got = h.fetch(name)
        if got is not None:
            h.tap.is_(len(got), 1, "%s: exactly one copy" % name)
            h.check_delivery(name, got[0], stored_form(msg))


def expect_refusal(h, name, args, want_rc, want_enh, cfg=None):
    msg = std_headers() + b"\nshould not be delivered\n"
    rc, _, err = h.run(args, msg, cfg)
    err_s = err.decode("utf-8", "replace")
    h.tap.is_(rc, want_rc, "%s: exit %d" % (name, want_rc))
    h.tap.ok(want_enh in err_s, "%s: stderr reports the server's %s" % (name, want_enh),
             "stderr: " + err_s)


def case_refusals(h):
    # SPEC 3: 550/551/553 to RCPT -> 67 EX_NOUSER; other 5xx -> 69 EX_UNAVAILABLE.
    # Postfix: "550 5.1.1 <nouser@test.example>: Recipient address rejected:
    #           User unknown in virtual mailbox table"
    expect_refusal(h, "unknown user (RCPT 550 5.1.1)", ["nouser@" + DOMAIN], 67, "5.1.1")
    # The "norelay" port does not trust 127.0.0.1:
    # "554 5.7.1 <x@elsewhere.example>: Relay access denied"
    expect_refusal(h, "relay denied (RCPT 554 5.7.1)", ["x@elsewhere.example"], 69,
                   "5.7.1", cfg=h.cfg_norelay)
    # partial_delivery = no (default): one refused recipient stops the message.
    expect_refusal(h, "one of two recipients refused",
                   ["user@" + DOMAIN, "nouser@" + DOMAIN], 67, "5.1.1")
    # None of the above may have been queued by Postfix: the next message
    # must be the only one to arrive.
    name = "after refusals"
    msg = std_headers() + b"\nsentinel\n"
    if h.run_ok(name, ["user@" + DOMAIN], msg):
        got = h.fetch(name)
        if got is not None:
            h.tap.ok(len(got) == 1 and got[0].endswith(b"\nsentinel\n"),
                     "refused messages were not delivered",
                     "%d message(s): %r" % (len(got), [g[-60:] for g in got]))


CASES = [case_small, case_envelope_from, case_dots_and_line_ends, case_t_flag,
         case_missing_headers, case_5mib, case_refusals]


def main():
    ci = os.environ.get("CI") == "true"
    if not postfixlib.find_postfix():
        if ci:
            bail("postfix not installed (required in CI)")
        skip_all("postfix not installed")
    if os.geteuid() != 0:
        if ci:
            bail("the Postfix interop test must run as root in CI")
        skip_all("starting Postfix needs root")
    pushmail = os.environ.get("PUSHMAIL") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "src", "pushmail")
    pushmail = os.path.abspath(pushmail)
    if not os.access(pushmail, os.X_OK):
        bail("no pushmail binary at %s (set PUSHMAIL)" % pushmail)

    tap = Tap()
    tmp = tempfile.mkdtemp(prefix="pushmail-postfix-")
    os.chmod(tmp, 0o755)   # the postfix and nobody users must reach tmp/postfix
    keep = bool(os.environ.get("PUSHMAIL_KEEP_TMP"))
    pf = postfixlib.PostfixInstance(os.path.join(tmp, "postfix"), users=USERS)
    pf.add_inet_service("norelay", options={
        "smtpd_relay_restrictions": "reject_unauth_destination"})
    try:
        os.makedirs(pf.root, exist_ok=True)
        try:
            pf.start()
        except postfixlib.PostfixError as e:
            keep = True
            bail("cannot start Postfix (kept %s): %s" % (tmp, e))
        tap.diag("Postfix on 127.0.0.1:%d (norelay :%d), files in %s"
                 % (pf.port, pf.ports["norelay"], tmp))
        h = Harness(tap, pf, tmp, pushmail)
        for case in CASES:
            try:
                case(h)
            except Exception:
                tap.ok(False, "%s raised" % case.__name__, traceback.format_exc())
        leftover = pf.queue_count()
        tap.is_(leftover, 0, "Postfix queue empty at the end")
    finally:
        pf.stop()
        if tap.failed or keep:
            tap.diag("kept %s (maillog: %s)" % (tmp, pf.maillog))
            if tap.failed:
                tap.diag("--- maillog tail ---\n" + pf.log_tail(30))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
