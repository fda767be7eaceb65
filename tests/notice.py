#!/usr/bin/env python3
"""notice.py - nothing silent: delivery status notices for queued mail that
fails for good (SPEC 6, issue 15), then relays that fail over.

Sections, in order:

  dsn       a queue run that gives up on a message (5xx to RCPT, to MAIL,
            after the data; too old) queues an RFC 3464 notice with the null
            sender, through the same account, and sends it in the same run:
            parsed with Python's email package.  Never for <>, never for a
            notice, at most one per message (--queue-retry of the failed one),
            none for queue = never, admin_address; a notice that cannot go
            now waits in the queue like any message.
  postfix   interop: a recipient Postfix refuses with 550, queued, then -q:
            the notice arrives in the sender's Maildir with the original
            Subject and Action: failed (skipped without Postfix or root,
            unless CI=true).

Every case has its own queue directory (tests/queue.py's Spool) and scripted
server (tests/smtpserver.py).
"""

import email
import email.policy
import importlib.util
import os
import shutil
import sys
import tempfile
import traceback

HERE = os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import postfixlib  # noqa: E402
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer  # noqa: E402

# tests/queue.py's helpers (Spool, config, message); loaded under another
# name, since "queue" is a standard module.
_spec = importlib.util.spec_from_file_location("queue_tests", os.path.join(HERE, "queue.py"))
qt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qt)

EX_OK, EX_NOUSER, EX_UNAVAILABLE, EX_TEMPFAIL = 0, 67, 69, 75
SENDER = "sender@example.com"
RCPT = "rcpt@example.org"
NOTICE_RE = qt.re.compile(rb"delivery status notice to <([^>]*)> queued as (\S+)")


def transactions(srv):
    return [x for r in srv.records for x in r.transactions]


def queued(spool, token, **keys):
    """Submit a message against a closed port: it waits in new/."""
    res = spool.run([RCPT], qt.cfg1(t.closed_port(), **keys), stdin=qt.message(token))
    qid = qt.QUEUED_RE.search(res.err)
    t.ok(res.rc == EX_OK and qid, "%s: queued" % token, *res.describe())
    return qid.group(1).decode() if qid else None


def parse_notice(raw):
    """(message, {part content type: part}, [per-recipient field dicts])."""
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    parts = {}
    fields = []
    if m.is_multipart():
        for p in m.get_payload():
            parts[p.get_content_type()] = p
        ds = parts.get("message/delivery-status")
        if ds is not None:
            # compat32 parses the status groups into message objects
            fields = [dict(g.items()) for g in ds.get_payload()[1:]]
    return m, parts, fields


def check_notice(name, raw, want_to, subject, action="failed", status=None,
                 diag=None, rcpt=RCPT):
    """The notice is an RFC 3464 report about the message with `subject`."""
    m, parts, fields = parse_notice(raw)
    t.is_eq(m.get_content_type(), "multipart/report", name + ": multipart/report")
    t.is_eq(m.get_param("report-type"), "delivery-status",
            name + ": report-type=delivery-status")
    t.ok(("<%s>" % want_to) in (m["To"] or ""), name + ": To <%s>" % want_to,
         "To: %r" % m["To"])
    t.is_eq(m["Auto-Submitted"], "auto-replied", name + ": Auto-Submitted: auto-replied")
    t.is_eq(sorted(parts), ["message/delivery-status", "text/plain",
                            "text/rfc822-headers"], name + ": the three parts")
    heads = parts.get("text/rfc822-headers")
    orig = email.message_from_string(heads.get_payload()) if heads else None
    t.is_eq(orig and orig["Subject"], subject, name + ": original Subject in the "
            "text/rfc822-headers part")
    t.ok(heads is not None and b"line 0 of" not in raw, name + ": headers only, "
         "no body (RET=HDRS)")
    f = fields[0] if fields else {}
    t.is_eq(f.get("Final-Recipient"), "rfc822; " + rcpt, name + ": Final-Recipient")
    t.is_eq(f.get("Action"), action, name + ": Action: " + action)
    if status:
        t.is_eq(f.get("Status"), status, name + ": Status " + status)
    if diag:
        t.ok(diag in (f.get("Diagnostic-Code") or ""), name + ": Diagnostic-Code has "
             "%r" % diag, "fields: %r" % f)
    return m, f


def notice_txn(name, srv, n_before=1):
    """The notice's transaction: the one after the original's."""
    xs = transactions(srv)
    t.is_eq(len(xs), n_before + 1, name + ": one more transaction, the notice")
    return xs[n_before] if len(xs) > n_before else None


# --------------------------------------------------------------------------
# dsn

FINAL_CASES = [
    dict(name="550 to RCPT", rules={"RCPT": ["550 5.1.1 no such user", None]},
         exit=EX_NOUSER, status="5.1.1", diag="smtp; 550 5.1.1 no such user"),
    dict(name="553 to MAIL", rules={"MAIL": ["553 5.7.1 sender refused", None]},
         before=0, exit=EX_UNAVAILABLE, status="5.7.1", diag="smtp; 553 5.7.1 sender refused"),
    dict(name="554 after data", rules={"EOD": ["554 5.7.1 looks like spam", None]},
         exit=EX_UNAVAILABLE, status="5.7.1", diag="smtp; 554 5.7.1 looks like spam"),
    dict(name="550 without enhanced code", rules={"RCPT": ["550 nope", None]},
         exit=EX_NOUSER, status="5.0.0", diag="smtp; 550 nope"),
]


def dsn_final():
    for c in FINAL_CASES:
        name = "final: " + c["name"]
        spool = qt.Spool(name)
        qid = queued(spool, name)
        with ScriptedServer(rules=c["rules"], connections=3) as srv:
            res = spool.run(["-q"], qt.cfg1(srv.port))
        info = res.describe()
        t.is_eq(res.rc, c["exit"], name + ": -q exits %d" % c["exit"], *info)
        m = NOTICE_RE.search(res.err)
        t.ok(m and m.group(1) == SENDER.encode(), name + ": stderr says a notice to "
             "the sender is queued", *info)
        x = notice_txn(name, srv, c.get("before", 1))
        if x:
            t.ok(x.mail.startswith(b"MAIL FROM:<>"), name + ": notice sent with the "
                 "null sender", "MAIL: %r" % x.mail)
            t.is_eq([l for l, _ in x.rcpts], [b"RCPT TO:<%s>" % SENDER.encode()],
                    name + ": to the envelope sender")
            t.is_eq(x.eod_code, 250, name + ": relay took the notice")
            check_notice(name, x.message or b"", SENDER, "queue test " + name,
                         status=c["status"], diag=c["diag"])
        t.is_eq(len(srv.records), 1, name + ": over the same connection")
        t.is_eq(spool.ids(), [], name + ": new/ empty (the notice went)")
        t.is_eq(spool.ids("failed"), [qid], name + ": the message is in failed/")
        e = spool.env_of(qid, "failed") or {}
        t.is_eq(e.get("notice"), "1", name + ": its envelope records the notice")
        t.is_eq(spool.problems(), [], name + ": queue intact")


def dsn_null_sender():
    name = "never for <>"
    spool = qt.Spool(name)
    res = spool.run(["-f", "<>", RCPT], qt.cfg1(t.closed_port()), stdin=qt.message(name))
    qid = qt.QUEUED_RE.search(res.err)
    t.ok(res.rc == EX_OK and qid, name + ": queued", *res.describe())
    with ScriptedServer(rules={"RCPT": "550 5.1.1 no such user"}, connections=3) as srv:
        res = spool.run(["-q"], qt.cfg1(srv.port))
    t.is_eq(res.rc, EX_NOUSER, name + ": -q exits 67", *res.describe())
    t.ok(b"notice" not in res.err, name + ": no notice mentioned", *res.describe())
    t.is_eq(len(transactions(srv)), 1, name + ": nothing but the message went out")
    t.is_eq(spool.ids(), [], name + ": new/ empty")
    t.is_eq(len(spool.ids("failed")), 1, name + ": only the message in failed/")


def dsn_notice_refused():
    """The notice itself is refused: it fails without a notice of its own."""
    name = "never for a notice"
    spool = qt.Spool(name)
    qid = queued(spool, name)
    with ScriptedServer(rules={"RCPT": "550 5.1.1 no such user"}, connections=3) as srv:
        res = spool.run(["-q"], qt.cfg1(srv.port))
    xs = transactions(srv)
    t.is_eq([x.mail.split(b" ")[1] for x in xs], [b"FROM:<%s>" % SENDER.encode(),
                                                  b"FROM:<>"],
            name + ": the message, then its notice; no notice about the notice",
            *res.describe())
    failed = spool.ids("failed")
    t.is_eq(len(failed), 2, name + ": both in failed/ (kept, shown by mailq)")
    notices = [i for i in failed if i != qid]
    e = spool.env_of(notices[0], "failed") if notices else {}
    t.ok(e and e.get("from") == "" and e.get("notice") == "4",
         name + ": the failed notice has <> and is marked a notice", "env: %r" % e)
    t.is_eq(len(NOTICE_RE.findall(res.err)), 1, name + ": one notice queued",
            *res.describe())


def dsn_at_most_one():
    name = "at most one"
    spool = qt.Spool(name)
    qid = queued(spool, name)
    rules = {"RCPT": ["550 5.1.1 no such user", None]}
    with ScriptedServer(rules=rules, connections=3) as srv:
        spool.run(["-q"], qt.cfg1(srv.port))
    t.is_eq(len(transactions(srv)), 2, name + ": first failure: message and notice")
    with ScriptedServer(rules=rules, connections=3) as srv:
        res = spool.run(["--queue-retry", qid or "x"], qt.cfg1(srv.port))
    t.is_eq(res.rc, EX_NOUSER, name + ": retried, refused again", *res.describe())
    t.is_eq(len(transactions(srv)), 1, name + ": no second notice")
    t.ok(b"notice" not in res.err, name + ": none mentioned", *res.describe())


def dsn_queue_never():
    name = "queue = never"
    spool = qt.Spool(name)
    queued(spool, name)
    with ScriptedServer(rules={"RCPT": ["550 5.1.1 no such user", None]},
                        connections=3) as srv:
        res = spool.run(["-q"], qt.cfg1(srv.port, queue="never"))
    t.is_eq(res.rc, EX_NOUSER, name + ": -q exits 67", *res.describe())
    t.is_eq(len(transactions(srv)), 1, name + ": no notice sent")
    t.is_eq(spool.ids(), [], name + ": none queued")


def dsn_admin():
    name = "admin_address"
    spool = qt.Spool(name)
    queued(spool, name)
    with ScriptedServer(rules={"RCPT": ["550 5.1.1 no such user", None]},
                        connections=3) as srv:
        res = spool.run(["-q"], qt.cfg1(srv.port, admin_address="postmaster@example.net"))
    x = notice_txn(name, srv)
    if x:
        t.is_eq([l for l, _ in x.rcpts], [b"RCPT TO:<postmaster@example.net>"],
                name + ": to admin_address, not the sender", *res.describe())
        check_notice(name, x.message or b"", "postmaster@example.net",
                     "queue test " + name)


def set_created(spool, qid, when):
    p = spool.path("new", qid + ".env")
    with open(p) as f:
        text = f.read()
    text = qt.re.sub(r"(?m)^created \d+$", "created %d" % when, text)
    with open(p, "w") as f:
        f.write(text)


def dsn_expired():
    """Too old: a last temporary failure still ends in a notice, Action:
    failed with that failure's status."""
    name = "expired after 451"
    spool = qt.Spool(name)
    qid = queued(spool, name)
    if qid:
        set_created(spool, qid, 1000000000)
    with ScriptedServer(rules={"RCPT": ["451 4.3.0 try later", None]},
                        connections=3) as srv:
        res = spool.run(["-q"], qt.cfg1(srv.port, {"queue_lifetime": "1h"}))
    t.is_eq(res.rc, EX_UNAVAILABLE, name + ": -q exits 69 (gave up)", *res.describe())
    x = notice_txn(name, srv)
    if x:
        m, f = check_notice(name, x.message or b"", SENDER, "queue test " + name,
                            status="4.3.0", diag="smtp; 451 4.3.0 try later")
        _, parts, _ = parse_notice(x.message or b"")
        text = parts["text/plain"].get_payload() if "text/plain" in parts else ""
        t.ok("gave up after 1 hour" in text, name + ": the human part says why",
             "text: %r" % text)

    name = "expired while the relay is down"
    spool = qt.Spool(name)
    qid = queued(spool, name)
    if qid:
        set_created(spool, qid, 1000000000)
    res = spool.run(["-q"], qt.cfg1(t.closed_port(), {"queue_lifetime": "1h"}))
    t.is_eq(res.rc, EX_UNAVAILABLE, name + ": -q exits 69", *res.describe())
    t.is_eq(spool.ids("failed"), [qid], name + ": message in failed/")
    waiting = spool.ids()
    e = spool.env_of(waiting[0]) if len(waiting) == 1 else {}
    t.ok(e and e.get("from") == "" and e.get("rcpt") == [SENDER],
         name + ": the notice waits in new/ (<> to the sender)", "new/: %r" % waiting)
    with ScriptedServer(connections=2) as srv:
        res = spool.run(["-q"], qt.cfg1(srv.port))
    t.is_eq(res.rc, EX_OK, name + ": next -q exits 0", *res.describe())
    xs = transactions(srv)
    if t.is_eq(len(xs), 1, name + ": the notice went out later"):
        check_notice(name, xs[0].message or b"", SENDER, "queue test " + name,
                     status="4.4.7", diag="X-Pushmail; gave up after 1 hour")
    t.is_eq(spool.ids(), [], name + ": new/ empty afterwards")


def dsn_direct_failure():
    """A failure the submitter hears about (exit status) is not also
    reported by mail: SMTP's rule for a refusal within the session."""
    name = "direct send refused"
    spool = qt.Spool(name)
    with ScriptedServer(rules={"RCPT": ["550 5.1.1 no such user", None]},
                        connections=3) as srv:
        res = spool.run([RCPT], qt.cfg1(srv.port), stdin=qt.message(name))
    t.is_eq(res.rc, EX_NOUSER, name + ": exit 67", *res.describe())
    t.is_eq(len(transactions(srv)), 1, name + ": no notice")


DSN = [dsn_final, dsn_null_sender, dsn_notice_refused, dsn_at_most_one,
       dsn_queue_never, dsn_admin, dsn_expired, dsn_direct_failure]


# --------------------------------------------------------------------------
# postfix

def postfix_notice():
    ci = os.environ.get("CI") == "true"
    if not postfixlib.find_postfix() or os.geteuid() != 0:
        why = "postfix not installed" if not postfixlib.find_postfix() else "needs root"
        if ci:
            t.ok(False, "postfix interop: " + why + " (required in CI)")
        else:
            t.skip("postfix interop", why)
        return
    tmp = tempfile.mkdtemp(prefix="pushmail-notice-")
    os.chmod(tmp, 0o755)
    pf = postfixlib.PostfixInstance(tmp, users=("user", "sender"))
    failed_before = t._failed
    try:
        pf.start()
        postfix_cases(pf)
    except Exception:
        t.ok(False, "postfix interop raised", traceback.format_exc())
    finally:
        pf.stop()
        if t._failed > failed_before or os.environ.get("PUSHMAIL_TEST_KEEP"):
            t.diag("kept %s" % tmp, pf.log_tail(30))
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def postfix_cases(pf):
    name = "postfix"
    sender = "sender@" + pf.domain
    spool = qt.Spool(name)
    cfg_down = qt.cfg1(t.closed_port(), **{"from": sender})
    res = spool.run(["nobody@" + pf.domain], cfg_down, stdin=qt.message(name))
    t.ok(res.rc == EX_OK and qt.QUEUED_RE.search(res.err), name + ": queued",
         *res.describe())
    res = spool.run(["-f", "<>", "nobody@" + pf.domain], cfg_down,
                    stdin=qt.message(name + " null"))
    t.ok(res.rc == EX_OK, name + ": a <> message queued too", *res.describe())
    res = spool.run(["-q", "-v"], qt.cfg1(pf.port, **{"from": sender}))
    t.is_eq(res.rc, EX_NOUSER, name + ": -q exits 67 (550 5.1.1 from Postfix)",
            *res.describe())
    got = pf.wait_for_maildir(1, user="sender", timeout=30, settle=1.0)
    t.is_eq(len(got), 1, name + ": exactly one notice in the sender's Maildir "
            "(none for the <> message)")
    if not got:
        return
    raw = got[0]
    t.diag("--- the notice as it arrived ---", raw.decode("utf-8", "replace"))
    m, f = check_notice(name, raw, sender, "queue test " + name,
                        status="5.1.1", diag="550 5.1.1", rcpt="nobody@" + pf.domain)
    t.is_eq(m["Return-Path"], "<>", name + ": Return-Path <> (null sender)")
    t.is_eq(spool.ids(), [], name + ": pushmail's new/ empty")
    t.is_eq(len(spool.ids("failed")), 2, name + ": both messages in failed/")


def main():
    for case in DSN + [postfix_notice]:
        try:
            case()
        except Exception:
            t.ok(False, "%s raised" % case.__name__, traceback.format_exc())
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
