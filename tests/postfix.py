#!/usr/bin/env python3
"""Interop with a real Postfix (TAP).

Starts a throwaway Postfix (tests/postfixlib.py) on 127.0.0.1, sends with the
pushmail binary named by $PUSHMAIL over plain SMTP (tls = off, auth = off), and
compares what Postfix's virtual(8) agent wrote into the Maildir with what went
in.  Postfix stores LF line endings and prepends Return-Path, X-Original-To,
Delivered-To and Received; those trace headers are checked separately (envelope
sender and recipient) and stripped before comparing the rest byte for byte.

The instance runs with smtpd_forbid_bare_newline = reject, so any bare LF that
reaches the wire makes Postfix refuse the message (SMTP smuggling defence), and
smtpd_forbid_unauth_pipelining = yes, so RFC 2920 violations disconnect.

Skips (exit 0) when Postfix is not installed or we are not root, unless
CI=true, where both are failures.  Set PUSHMAIL_TEST_KEEP=1 to keep the temp
directories (it is always kept when a test fails).
"""

import itertools
import os
import random
import shutil
import sys
import tempfile
import traceback

sys.path.insert(0, os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__)))
import postfixlib  # noqa: E402
import taplib as t  # noqa: E402

DOMAIN = "test.example"
USERS = ("user", "to", "cc", "bcc", "bcc2")
RUN_TIMEOUT = 120          # seconds for one pushmail run (the 5 MiB one included)
DELIVERY_TIMEOUT = 30      # seconds for Postfix to write the Maildir file
TIME = "/usr/bin/time"     # GNU time, for peak RSS (package "time")

def bail(reason):
    """Abort the whole script: the automake TAP driver records an ERROR."""
    lines = str(reason).splitlines() or [""]
    print("Bail out! " + lines[0], flush=True)
    t.diag(*lines[1:])
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


_msgno = itertools.count(1)


def std_headers(to="user@" + DOMAIN, extra=b""):
    return (b"From: Sender <sender@test.example>\n"
            b"To: " + to.encode() + b"\n"
            b"Subject: pushmail interop\n"
            b"Date: Mon, 30 Nov 2026 00:00:00 +0000\n"
            b"Message-ID: <interop.%d@test.example>\n" % next(_msgno)
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
    def __init__(self, pf, pushmail):
        self.pf, self.pushmail = pf, pushmail
        # taplib.base_env keeps HOME/XDG_* (pushmail's config search, queue and
        # log) inside taplib's private temporary directory.
        self.env = t.base_env()
        self.queue_new = os.path.join(self.env["XDG_STATE_HOME"], "pushmail", "queue", "new")
        self.cfg = self.write_cfg(pf.port)
        self.cfg_norelay = self.write_cfg(pf.ports["norelay"])
        self.small_rss = None      # KiB, peak RSS of the small-message run

    @staticmethod
    def write_cfg(port):
        return t.write_config(text="[pf]\nhost = 127.0.0.1\nport = %d\ntls = off\n"
                              "auth = off\nfrom = sender@test.example\n" % port)

    def run(self, args, msg, cfg=None, measure=False):
        """Run pushmail; with measure, r.peak_kb is its peak RSS or None.

        taplib's r.maxrss_kb cannot be used for that: the child's ru_maxrss
        starts from this Python process's high-water mark (the exec inherits
        it from the vfork'ed mm), so GNU time(1), which fork()s, measures."""
        argv = [self.pushmail, "-C", cfg or self.cfg] + list(args)
        rss_file = None
        if measure and os.access(TIME, os.X_OK):
            rss_file = os.path.join(t.tmpdir(), "rss")
            argv = [TIME, "-f", "%M", "-o", rss_file] + argv
        r = t.run(argv, stdin=msg, env=self.env, timeout=RUN_TIMEOUT)
        r.peak_kb = None
        if rss_file:
            try:
                with open(rss_file) as f:
                    r.peak_kb = int(f.read().split()[-1])
            except (OSError, ValueError, IndexError):
                pass
        return r

    def run_ok(self, name, args, msg, measure=False):
        r = self.run(args, msg, measure=measure)
        t.ok(r.rc == 0, "%s: pushmail exits 0" % name, *r.describe())
        queued = os.listdir(self.queue_new) if os.path.isdir(self.queue_new) else []
        t.ok(not queued, "%s: nothing left in pushmail's queue" % name,
             "queued: %r" % queued, *r.describe())
        return r if r.rc == 0 else None

    def fetch(self, name, user="user", n=1):
        try:
            return self.pf.wait_for_maildir(n, DELIVERY_TIMEOUT, user=user)
        except TimeoutError as e:
            t.ok(False, "%s: delivered to %s@%s" % (name, user, DOMAIN), str(e))
            return None

    def check_delivery(self, name, got, want, user="user", sender="sender@test.example"):
        """One delivered message `got` against expected stored content `want`."""
        trace, rest = split_trace(got)
        t.is_eq(trace.get("return-path"), [b"<" + sender.encode() + b">"],
                "%s: envelope sender (Return-Path)" % name)
        t.is_eq(trace.get("delivered-to"), [("%s@%s" % (user, DOMAIN)).encode()],
                "%s: envelope recipient (Delivered-To)" % name)
        t.ok(rest == want, "%s: headers and body arrive intact" % name,
             first_difference(rest, want))


def case_small(h):
    name = "small message"
    msg = std_headers() + b"\nHello from pushmail.\r\n8-bit: gr\xc3\xbc\xc3\x9fe\r\n"
    r = h.run_ok(name, ["user@" + DOMAIN], msg, measure=True)
    if r:
        h.small_rss = r.peak_kb
        got = h.fetch(name)
        if got is not None:
            t.is_eq(len(got), 1, "%s: exactly one copy" % name)
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
            t.is_eq(len(got), 1, "%s: one message, not split" % name)
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
            t.is_eq(len(got), 1, "%s: %s gets exactly one copy" % (name, user))
            t.ok(not any(l.lower().startswith(b"bcc:") for l in headers_of(got[0])),
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
            t.is_eq(names.count(hn), 1, "%s: one %s header" % (name, hn.decode()))
        frm = [l for l in hdrs if l.lower().startswith(b"from:")]
        t.ok(frm and b"CronDaemon" in frm[0] and b"sender@test.example" in frm[0],
             "%s: From uses -F name and the account address" % name, repr(frm))
        t.ok(b"To: user@test.example" in hdrs
             and b"Subject: Cron <root@host> run-parts" in hdrs,
             "%s: original headers kept" % name, repr(hdrs))
        t.ok(rest.endswith(stored_form(body)), "%s: body intact" % name,
             first_difference(rest[-len(body):], stored_form(body)))


def case_cron_maildomain(h):
    """Debian cron's and cronie's command lines with maildomain and no `from`:
    Postfix receives a qualified envelope and qualified address headers."""
    import pwd
    me = pwd.getpwuid(os.getuid()).pw_name
    cfg = t.write_config(text="[pf]\nhost = 127.0.0.1\nport = %d\ntls = off\n"
                         "auth = off\nmaildomain = %s\n" % (h.pf.port, DOMAIN))
    rows = [
        ("Debian cron line, maildomain", ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "user"],
         b"From: root (Cron Daemon)\nTo: user\nSubject: Cron <root@host1> daily\n"
         b"Content-Type: text/plain; charset=UTF-8\n\ndone\n",
         "%s@%s" % (me, DOMAIN),
         [b"From: root@test.example (Cron Daemon)", b"To: user@test.example"]),
        ("cronie line, maildomain", ["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t",
                                     "-f", "user"],
         b"From: \"(Cron Daemon)\" <user>\nTo: user\nCc: Copy <cc@localhost>\n"
         b"Subject: Cron <user@host1> job\n\noutput\n",
         "user@" + DOMAIN,
         [b"From: \"(Cron Daemon)\" <user@test.example>", b"To: user@test.example",
          b"Cc: Copy <cc@test.example>"]),
    ]
    for name, args, msg, sender, want_hdrs in rows:
        r = h.run(args, msg, cfg)
        t.ok(r.rc == 0, "%s: pushmail exits 0" % name, *r.describe())
        got = h.fetch(name) if r.rc == 0 else None
        if got is None:
            continue
        trace, rest = split_trace(got[0])
        t.is_eq(trace.get("return-path"), [b"<" + sender.encode() + b">"],
                "%s: qualified envelope sender (Return-Path)" % name)
        t.is_eq(trace.get("delivered-to"), [b"user@" + DOMAIN.encode()],
                "%s: qualified envelope recipient (Delivered-To)" % name)
        hdrs = headers_of(rest)
        for w in want_hdrs:
            t.ok(w in hdrs, "%s: header %s" % (name, w.decode()), repr(hdrs))
        if name.startswith("cronie"):
            cc = h.fetch(name + " (cc)", user="cc")
            t.ok(cc is not None, "%s: cc@localhost went to cc@%s" % (name, DOMAIN))


def case_5mib(h):
    name = "5 MiB message"
    msg = std_headers() + b"\n" + big_body(5 * 1024 * 1024)
    r = h.run_ok(name, ["user@" + DOMAIN], msg, measure=True)
    if not r:
        return
    # SPEC 5: the body is never held in memory.  Compared with the small
    # message's run, peak RSS may not grow by half the message size.
    if h.small_rss is not None and r.peak_kb is not None:
        grow = r.peak_kb - h.small_rss
        t.ok(grow < 2560, "%s: memory flat (peak RSS +%d KiB over the small run)"
             % (name, grow), "small run %d KiB, 5 MiB run %d KiB" % (h.small_rss, r.peak_kb))
    else:
        t.skip("%s: memory flat" % name, "no %s to measure peak RSS" % TIME)
    got = h.fetch(name)
    if got is not None:
        t.is_eq(len(got), 1, "%s: exactly one copy" % name)
        h.check_delivery(name, got[0], stored_form(msg))


def expect_refusal(h, name, args, want_rc, want_enh, cfg=None):
    msg = std_headers() + b"\nshould not be delivered\n"
    r = h.run(args, msg, cfg)
    t.is_eq(r.rc, want_rc, "%s: exit %d" % (name, want_rc), *r.describe())
    t.ok(want_enh in r.err.decode("utf-8", "replace"),
         "%s: stderr reports the server's %s" % (name, want_enh), *r.describe())


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
            t.ok(len(got) == 1 and got[0].endswith(b"\nsentinel\n"),
                 "refused messages were not delivered",
                 "%d message(s): %r" % (len(got), [g[-60:] for g in got]))


CASES = [case_small, case_envelope_from, case_dots_and_line_ends, case_t_flag,
         case_missing_headers, case_cron_maildomain, case_5mib, case_refusals]


def main():
    ci = os.environ.get("CI") == "true"
    if not postfixlib.find_postfix():
        if ci:
            bail("postfix not installed (required in CI)")
        t.skip_all("postfix not installed")
    if os.geteuid() != 0:
        if ci:
            bail("the Postfix interop test must run as root in CI")
        t.skip_all("starting Postfix needs root")
    pushmail = os.path.abspath(t.PUSHMAIL)
    if not os.access(pushmail, os.X_OK):
        bail("no pushmail binary at %s (set PUSHMAIL)" % pushmail)

    # Not taplib's tmpdir: that one is 0700, and the postfix and nobody users
    # must reach the queue and Maildirs.
    tmp = tempfile.mkdtemp(prefix="pushmail-postfix-")
    os.chmod(tmp, 0o755)
    keep = bool(os.environ.get("PUSHMAIL_TEST_KEEP"))
    pf = postfixlib.PostfixInstance(tmp, users=USERS)
    # A second smtpd that does not trust 127.0.0.1, for "Relay access denied".
    pf.add_inet_service("norelay", options={
        "smtpd_relay_restrictions": "reject_unauth_destination"})
    failed_before = t._failed
    try:
        try:
            pf.start()
        except postfixlib.PostfixError as e:
            keep = True
            bail("cannot start Postfix (kept %s): %s" % (tmp, e))
        t.diag("Postfix on 127.0.0.1:%d (norelay :%d), files in %s"
               % (pf.port, pf.ports["norelay"], tmp))
        h = Harness(pf, pushmail)
        for case in CASES:
            try:
                case(h)
            except Exception:
                t.ok(False, "%s raised" % case.__name__, traceback.format_exc())
        t.is_eq(pf.queue_count(), 0, "Postfix queue empty at the end")
        postfixlib.check_sessions_closed(pf, t)
    finally:
        pf.stop()
        failed = t._failed > failed_before
        if failed or keep:
            t.diag("kept %s (maillog: %s)" % (tmp, pf.maillog))
            if failed:
                t.diag("--- maillog tail ---", pf.log_tail(30))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
