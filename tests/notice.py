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
from smtpserver import DEFAULT_EXTENSIONS, ScriptedServer  # noqa: E402

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
# failover

FAILOVER_RE = qt.re.compile(rb"relay 'primary' \(127\.0\.0\.1:(\d+)\) failed: "
                            rb"([^\n]*); trying 'backup' \(127\.0\.0\.1:(\d+)\)")


def fo_config(pport, bport, log=None, **primary):
    """Accounts primary (fallback = backup) and backup, each its own relay;
    primary is the default.  log: a mail log file for both."""
    keys = dict(primary, port=pport, fallback="backup")
    backup = {"port": bport}
    if log:
        keys["log"] = backup["log"] = log
    return qt.config({"primary": keys, "backup": backup},
                     top={"default_account": "primary"})


def fo_queue(spool, token, n=1, clean=True):
    """n messages queued for account primary while its relay is down (no
    fallback yet: the submission's own failover is failover_submit's)."""
    cfg = qt.config({"primary": {"port": t.closed_port()}, "backup": {}},
                    top={"default_account": "primary"})
    ids = []
    for i in range(n):
        slug = qt.re.sub(r"\W+", "-", token)      # X-Token: one word
        res = spool.run([RCPT], cfg, stdin=qt.message("%s-%d" % (slug, i)))
        m = qt.QUEUED_RE.search(res.err)
        if m:
            ids.append(m.group(1).decode())
    t.is_eq(len(ids), n, "%s: %d queued for primary" % (token, n))
    # the submission's own failed try is remembered (see failover_memory);
    # start each case from a clean slate
    if clean:
        shutil.rmtree(os.path.join(spool.dir, "state"), ignore_errors=True)
    return ids


def state_of(spool, account):
    try:
        with open(os.path.join(spool.dir, "state", account)) as f:
            lines = f.read().split("\n")
    except OSError:
        return {}
    return dict(l.split(" ", 1) for l in lines[1:] if " " in l)


FO_CASES = [
    dict(name="refuses the connection", primary=None, why=b"connect"),
    dict(name="times out", primary={"GREETING": qt.stall(30)}, cfg={"timeout": 2},
         why=b"timed out"),
    dict(name="421 greeting", primary={"GREETING": "421 4.3.2 shutting down"},
         why=b"421 4.3.2"),
    dict(name="451 to MAIL", primary={"MAIL": "451 4.3.0 local problem"},
         why=b"451 4.3.0", per_message=True),
    dict(name="452 to RCPT", primary={"RCPT": "452 4.2.2 mailbox full"},
         why=b"452 4.2.2", per_message=True),
]


def failover_paths():
    for c in FO_CASES:
        name = "failover: first relay " + c["name"]
        spool = qt.Spool(name)
        ids = fo_queue(spool, name, 2)
        log = os.path.join(spool.dir + "-maillog")
        psrv = ScriptedServer(rules=c["primary"], connections=4, lifetime=60).start() \
            if c["primary"] is not None else None
        with ScriptedServer(connections=2) as bsrv:
            pport = psrv.port if psrv else t.closed_port()
            res = spool.run(["-q", "-v"], fo_config(pport, bsrv.port, log,
                                                    **c.get("cfg", {})))
        if psrv:
            psrv.stop()
        info = res.describe()
        t.is_eq(res.rc, EX_OK, name + ": -q exits 0", *info)
        got = qt.token_counts(bsrv)
        t.is_eq(sorted(got.values()), [1, 1],
                name + ": the backup relay took both messages once", *info)
        t.is_eq(spool.ids() + spool.ids("failed"), [], name + ": queue empty")
        if c.get("per_message"):
            mails = [l for r in psrv.records for l in r.commands if l.startswith(b"MAIL")]
            t.is_eq(len(mails), 2, name + ": each message was tried on the primary "
                    "first", *info)
            t.ok(res.err.count(b"trying the next relay") == 2,
                 name + ": -v says each went on to the next relay", *info)
        else:
            m = FAILOVER_RE.search(res.err)
            t.ok(m and c["why"] in m.group(2), name + ": stderr names both relays "
                 "and the failure (%s)" % c["why"].decode(), *info)
            t.is_eq(res.err.count(b"failed:"), 1, name + ": said once for the run", *info)
            st = state_of(spool, "primary")
            t.ok(int(st.get("skip_until", "0")) > qt.time.time(), name + ": the "
                 "primary is remembered as failed (state/primary)", "state: %r" % st)
        t.ok(res.err.count(b"delivered through 'backup'") == 2,
             name + ": -v says which relay took each message", *info)
        try:
            with open(log, "rb") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        sent = [l for l in lines if b"status=sent" in l]
        t.ok(len(sent) == 2 and all(b"account=backup host=127.0.0.1" in l for l in sent),
             name + ": the mail log names the relay that took each message",
             *[l.decode("utf-8", "replace") for l in lines])
        if name.endswith("refuses the connection"):
            t.diag("--- failover lines of one run (stderr of -q -v, mail log) ---",
                   *[l.decode("utf-8", "replace") for l in res.err.splitlines()
                     if b"relay" in l or b"through" in l or b"queue run" in l],
                   *[l.decode("utf-8", "replace") for l in sent])


def failover_permanent():
    name = "failover: permanent 5xx is not retried elsewhere"
    spool = qt.Spool(name)
    ids = fo_queue(spool, name)
    with ScriptedServer(rules={"RCPT": ["550 5.1.1 no such user", None]},
                        connections=3) as psrv, ScriptedServer(connections=2) as bsrv:
        res = spool.run(["-q"], fo_config(psrv.port, bsrv.port))
    t.is_eq(res.rc, EX_NOUSER, name + ": -q exits 67", *res.describe())
    t.is_eq(len(bsrv.records), 0, name + ": the backup relay was never contacted")
    t.is_eq(spool.ids("failed"), ids, name + ": in failed/")
    t.is_eq(len(transactions(psrv)), 2, name + ": message, then its notice, both "
            "through the primary")
    t.ok(b"trying" not in res.err, name + ": no failover mentioned", *res.describe())

    name = "failover: 5xx from the backup after the primary failed"
    spool = qt.Spool(name)
    ids = fo_queue(spool, name)
    with ScriptedServer(rules={"RCPT": ["554 5.7.1 relay refused", None]},
                        connections=3) as bsrv:
        res = spool.run(["-q"], fo_config(t.closed_port(), bsrv.port))
    t.is_eq(res.rc, EX_UNAVAILABLE, name + ": -q exits 69", *res.describe())
    t.is_eq(spool.ids("failed"), ids, name + ": in failed/ (the backup's verdict)")


def failover_all_down():
    name = "failover: every relay down"
    spool = qt.Spool(name)
    ids = fo_queue(spool, name, 3)
    res = spool.run(["-q"], fo_config(t.closed_port(), t.closed_port()))
    info = res.describe()
    t.is_eq(res.rc, EX_TEMPFAIL, name + ": -q exits 75", *info)
    t.is_eq(sorted(spool.ids()), sorted(ids), name + ": all still queued")
    tries = [(spool.env_of(i) or {}).get("tries") for i in sorted(ids)]
    t.is_eq(tries, [2, 1, 1], name + ": only the first message counted a try "
            "(the others had none)", *info)
    t.ok(b"2 more messages deferred without a try" in res.err,
         name + ": the others deferred without a try", *info)
    t.ok(FAILOVER_RE.search(res.err), name + ": the primary's failure said once", *info)


def failover_memory():
    name = "failover: skip memory across runs"
    spool = qt.Spool(name)
    fo_queue(spool, name + " a")
    with ScriptedServer(connections=2) as bsrv:
        r1 = spool.run(["-q"], fo_config(t.closed_port(), bsrv.port))
    t.is_eq((r1.rc, len(qt.delivered(bsrv))), (EX_OK, 1),
            name + ": run 1: primary down, the backup took it", *r1.describe())
    fo_queue(spool, name + " b", clean=False)
    with ScriptedServer(connections=2) as psrv, ScriptedServer(connections=2) as bsrv:
        r2 = spool.run(["-q", "-v"], fo_config(psrv.port, bsrv.port))
    t.is_eq(r2.rc, EX_OK, name + ": run 2 exits 0", *r2.describe())
    t.is_eq(len(psrv.records), 0, name + ": run 2: the primary (up again) is "
            "skipped for a while: not contacted", *r2.describe())
    t.is_eq(len(qt.delivered(bsrv)), 1, name + ": run 2: the backup took it")
    st = state_of(spool, "primary")
    t.is_eq(st.get("skipped"), "1", name + ": state/primary counts the skip",
            "state: %r" % st)
    fo_queue(spool, name + " c", clean=False)
    # the skip window has passed (written into the state as if 10 minutes went by)
    p = os.path.join(spool.dir, "state", "primary")
    with open(p) as f:
        text = f.read()
    with open(p, "w") as f:
        f.write(qt.re.sub(r"(?m)^skip_until \d+$", "skip_until 1000", text))
    with ScriptedServer(connections=2) as psrv, ScriptedServer(connections=2) as bsrv:
        r3 = spool.run(["-q"], fo_config(psrv.port, bsrv.port))
    t.is_eq((r3.rc, len(qt.delivered(psrv)), len(bsrv.records)), (EX_OK, 1, 0),
            name + ": run 3: after the window the primary is tried first again",
            *r3.describe())
    st = state_of(spool, "primary")
    t.ok(st.get("skip_until") == "0" and int(st.get("last_success", "0")) > 0,
         name + ": state/primary: success recorded, no skip", "state: %r" % st)


def failover_odd_name():
    """An account name that cannot be a file name ("..", which the
    configuration allows) gets no state file: nothing is written outside
    the queue, and the queue still works."""
    name = "state: account named .."
    spool = qt.Spool(name)
    cfg = qt.config({"..": {"port": t.closed_port()}})
    spool.run([RCPT], cfg, stdin=qt.message("dotdot"))
    before = sorted(os.listdir(os.path.dirname(spool.dir)))
    res = spool.run(["-q"], cfg)
    t.is_eq(res.rc, EX_TEMPFAIL, name + ": -q exits 75", *res.describe())
    t.is_eq(sorted(os.listdir(os.path.dirname(spool.dir))), before,
            name + ": nothing new next to the queue")
    state = os.path.join(spool.dir, "state")
    t.is_eq(os.listdir(state) if os.path.isdir(state) else [], [],
            name + ": no state file")


def failover_submit():
    """The submitting process's own try fails over too."""
    name = "failover: at submission"
    spool = qt.Spool(name)
    with ScriptedServer(connections=2) as bsrv:
        res = spool.run(["-v", RCPT], fo_config(t.closed_port(), bsrv.port),
                        stdin=qt.message("submit-fo"))
    t.is_eq(res.rc, EX_OK, name + ": exit 0", *res.describe())
    t.is_eq(len(qt.delivered(bsrv)), 1, name + ": the backup relay took it")
    t.is_eq(spool.ids() + spool.ids("failed"), [], name + ": nothing left queued")
    t.ok(qt.re.search(rb"relay 'primary' \(127\.0\.0\.1\): connect: [^\n]*; trying "
                      rb"its fallback relays\n", res.err) and
         b"delivered through 'backup'" in res.err,
         name + ": stderr names the relays", *res.describe())

    name = "failover: at submission, the backup refuses"
    spool = qt.Spool(name)
    with ScriptedServer(rules={"RCPT": "550 5.1.1 no such user"}, connections=2) as bsrv:
        res = spool.run([RCPT], fo_config(t.closed_port(), bsrv.port),
                        stdin=qt.message("submit-fo-550"))
    t.is_eq(res.rc, EX_NOUSER, name + ": exit 67 (the submitter is told)",
            *res.describe())
    t.is_eq(len(spool.ids("failed")), 1, name + ": kept in failed/")
    t.is_eq(len(transactions(bsrv)), 1, name + ": no notice mailed as well")
    t.is_eq(spool.ids(), [], name + ": nothing in new/")


FAILOVER = [failover_paths, failover_permanent, failover_all_down, failover_memory,
            failover_odd_name, failover_submit]


# --------------------------------------------------------------------------
# health: -bp, --check

HEALTH_RE = qt.re.compile(rb"(?m)^account '([^']*)': last success ([^;]*); last error "
                          rb"([^;]*); relay skipped (\d+) times?(.*)$")


def health(res):
    """{account: (last success, last error, skipped, rest)} from -bp."""
    return {m.group(1).decode(): tuple(x.decode() for x in m.groups()[1:])
            for m in HEALTH_RE.finditer(res.out)}


def health_lines():
    name = "health: -bp"
    spool = qt.Spool(name)
    cfg_down = qt.cfg1(t.closed_port())
    res = spool.run(["-bp"], cfg_down)
    t.is_eq(health(res), {"test": ("never", "never", "0", "")},
            name + ": an account with no history", *res.describe())
    spool.run([RCPT], cfg_down, stdin=qt.message("health"))
    res = spool.run(["-bp"], cfg_down)
    h = health(res).get("test", ())
    t.ok(len(h) == 4 and h[0] == "never" and qt.re.match(r"\d+s ago: connect: ", h[1])
         and "tried last for" in h[3],
         name + ": a submission that could not connect: last error, skipped for a while",
         *res.describe())
    t.ok(res.out.rstrip().endswith(b"%s" % res.out.rstrip().split(b"\n")[-1]) and
         res.out.rstrip().split(b"\n")[-1].startswith(b"account 'test'"),
         name + ": the health lines end the listing", *res.describe())
    with ScriptedServer(connections=2) as srv:
        cfg = qt.cfg1(srv.port)
        spool.run(["-q"], cfg)
        res = spool.run(["-bp"], cfg)
    h = health(res).get("test", ())
    t.ok(len(h) == 4 and qt.re.match(r"\d+s ago$", h[0]) and h[3] == "",
         name + ": after -q delivered: last success, no longer skipped", *res.describe())

    name = "health: failover counts"
    spool = qt.Spool(name)
    fo_queue(spool, name)
    with ScriptedServer(connections=2) as bsrv:
        cfg = fo_config(t.closed_port(), bsrv.port)
        spool.run(["-q"], cfg)
        fo_queue(spool, name + " b", clean=False)
        spool.run(["-q"], cfg)
        res = spool.run(["-bp"], cfg)
    h = health(res)
    t.ok(h.get("primary", ("",))[0] == "never" and h["primary"][2] == "1" and
         "connect" in h["primary"][1] and "tried last for" in h["primary"][3],
         name + ": primary: never, its error, skipped once, still tried last",
         *res.describe())
    t.ok(qt.re.match(r"\d+s ago$", h.get("backup", ("",))[0]) and h["backup"][2] == "0",
         name + ": backup: a recent success", *res.describe())


def health_check():
    name = "health: --check"
    spool = qt.Spool(name)
    qid = queued(spool, "check")
    with ScriptedServer(connections=2) as srv:
        cfg = qt.cfg1(srv.port)
        r1 = spool.run(["--check"], cfg)
        if qid:
            set_created(spool, qid, int(qt.time.time()) - 3 * 3600 - 60)
        r2 = spool.run(["--check"], cfg)
    t.ok(r1.rc == EX_OK and b"WARN" not in r1.out, name + ": a fresh message: no warning",
         *r1.describe())
    t.is_eq(r2.rc, EX_OK, name + ": exit status is the relay's (0)", *r2.describe())
    t.ok(qt.re.search(rb"WARN +queue +1 message\(s\) waiting over an hour \(the oldest "
                      rb"for 3 h, last error: connect: ", r2.out),
         name + ": warns about the message waiting for 3 hours", *r2.describe())


HEALTH = [health_lines, health_check]


# --------------------------------------------------------------------------
# rate_limit

def rate_queue_run():
    name = "rate_limit: queue run"
    spool = qt.Spool(name)
    for i in range(5):
        queued(spool, "rate-%d" % i)
    with ScriptedServer(connections=3) as srv:
        cfg = qt.cfg1(srv.port, rate_limit="2/1h")
        t0 = int(qt.time.time())
        r1 = spool.run(["-q"], cfg)
        r2 = spool.run(["-q"], cfg)
    info = r1.describe()
    t.is_eq(r1.rc, EX_TEMPFAIL, name + ": -q exits 75 (some wait)", *info)
    t.ok(b"queue run: 2 sent, 3 deferred, 0 failed" in r1.err, name + ": two sent, "
         "three kept", *info)
    t.ok(b"rate_limit reached; 3 messages held back" in r1.err,
         name + ": says the quota held three back", *info)
    t.is_eq(len(qt.delivered(srv)), 2, name + ": the relay got two, not more", *r2.describe())
    envs = [spool.env_of(i) or {} for i in spool.ids()]
    t.ok(len(envs) == 3 and all(e.get("tries") == 1 and "rate_limit" in e.get("error", "")
                                and t0 + 3500 <= e.get("next", 0) <= t0 + 3700
                                for e in envs),
         name + ": held ones: no try counted, reason recorded, due in about an hour",
         "envs: %r" % envs)
    t.is_eq(r2.rc, EX_TEMPFAIL, name + ": a second -q (another process) exits 75",
            *r2.describe())
    t.ok(b"0 sent, 3 deferred" in r2.err, name + ": and sends nothing: the window is "
         "the queue's, not the process's", *r2.describe())


def rate_direct():
    for mode in ("on-failure", "never"):
        name = "rate_limit: direct send over the limit (queue = %s)" % mode
        spool = qt.Spool(name)
        with ScriptedServer(connections=3) as srv:
            cfg = qt.cfg1(srv.port, rate_limit="1/1d", queue=mode)
            r1 = spool.run([RCPT], cfg, stdin=qt.message("direct-1"))
            r2 = spool.run([RCPT], cfg, stdin=qt.message("direct-2"))
        t.is_eq((r1.rc, r2.rc), (EX_OK, EX_OK), name + ": both exit 0",
                *(r1.describe() + r2.describe()))
        t.is_eq(len(qt.delivered(srv)), 1, name + ": one went")
        t.ok(qt.re.search(rb"queued as \S+ \(rate_limit of account 'test' \(1 per "
                          rb"86400 s\) reached; held until ", r2.err),
             name + ": the second is queued with a notice, not refused", *r2.describe())
        t.is_eq(len(spool.ids()), 1, name + ": it waits in new/")


RATE = [rate_queue_run, rate_direct]


# --------------------------------------------------------------------------
# delay_warning, auth_failures_notify

def delay_warning():
    for keys, age, want in (({"delay_warning": "4h"}, 5 * 3600, True),
                            ({}, 5 * 3600, False),
                            ({"delay_warning": "4h"}, 60, False)):
        name = "delay_warning %s, message %d min old" % (keys.get("delay_warning", "unset"),
                                                        age // 60)
        spool = qt.Spool(name)
        qid = queued(spool, name)
        if qid:
            set_created(spool, qid, int(qt.time.time()) - age)
        rules = {"MAIL": ["451 4.7.1 greylisted", None]}
        with ScriptedServer(rules=rules, connections=2) as srv:
            res = spool.run(["-q"], qt.cfg1(srv.port, **keys))
        t.is_eq(res.rc, EX_TEMPFAIL, name + ": -q exits 75", *res.describe())
        xs = transactions(srv)
        t.is_eq(len(xs), 1 if want else 0, name + (": one warning sent" if want else
                                                   ": no warning"), *res.describe())
        t.is_eq(spool.ids(), [qid], name + ": the message still waits")
        if not want or not xs:
            continue
        t.ok(xs[0].mail.startswith(b"MAIL FROM:<>"), name + ": with <>")
        m, f = check_notice(name, xs[0].message or b"", SENDER, "queue test " + name,
                            action="delayed", status="4.7.1",
                            diag="smtp; 451 4.7.1 greylisted")
        t.is_eq(m["Subject"], "Delayed Mail (still being retried)", name + ": subject")
        t.ok("Will-Retry-Until" in f, name + ": Will-Retry-Until", "fields: %r" % f)
        t.is_eq((spool.env_of(qid) or {}).get("notice"), "2", name + ": recorded")
        with ScriptedServer(rules=rules, connections=2) as srv:
            res = spool.run(["-q"], qt.cfg1(srv.port, **keys))
        t.is_eq(len(transactions(srv)), 0, name + ": one warning only", *res.describe())


AUTH_EXT = DEFAULT_EXTENSIONS + ["AUTH PLAIN"]


def auth_failures():
    name = "auth_failures_notify"
    spool = qt.Spool(name)
    keys = dict(auth="plain", user="u", password="secret", allow_plaintext_auth="yes",
                admin_address="postmaster@example.net", auth_failures_notify=3)
    qid = queued(spool, name)
    outs = []
    for i in range(4):
        with ScriptedServer(rules={"AUTH": "535 5.7.8 credentials invalid"},
                            extensions=AUTH_EXT, connections=2) as srv:
            outs.append(spool.run(["-q"], qt.cfg1(srv.port, **keys)))
    info = [x for r in outs for x in r.describe()]
    t.is_eq([r.rc for r in outs], [EX_TEMPFAIL] * 4, name + ": a refused login keeps "
            "mail queued (75), run after run", *info)
    e = spool.env_of(qid) if qid else {}
    t.ok(e and e.get("tries") == 5 and "535 5.7.8" in e.get("error", ""),
         name + ": the message waits, tries counted, reason recorded", "env: %r" % e)
    told = [bool(qt.re.search(rb"account 'test': notice to <postmaster@example.net> "
                              rb"queued as", r.err)) for r in outs]
    t.is_eq(told, [False, False, True, False], name + ": the admin is told once, "
            "at the third refusal in a row", *info)
    admin = [i for i in spool.ids() if i != qid]
    if t.is_eq(len(admin), 1, name + ": the notice waits with the mail"):
        ne = spool.env_of(admin[0]) or {}
        body = spool.read(admin[0])
        t.ok(ne.get("from") == "" and ne.get("rcpt") == ["postmaster@example.net"] and
             b"account 'test' cannot log in to 127.0.0.1" in body and
             b"535 5.7.8 credentials invalid" in body,
             name + ": <> to admin_address, naming the account and the reply",
             "env %r body %s" % (ne, t.show(body)))
    with ScriptedServer(extensions=AUTH_EXT, connections=2) as srv:
        res = spool.run(["-q"], qt.cfg1(srv.port, **keys))
    t.is_eq((res.rc, len(qt.delivered(srv))), (EX_OK, 2), name + ": once the login "
            "works, the mail and the notice go", *res.describe())
    st = state_of(spool, "test")
    t.ok(st.get("auth_failures") == "0" and st.get("auth_notified") == "0",
         name + ": the count starts again", "state: %r" % st)


LATE = [delay_warning, auth_failures]


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
    for case in DSN + FAILOVER + HEALTH + RATE + LATE + [postfix_notice]:
        try:
            case()
        except Exception:
            t.ok(False, "%s raised" % case.__name__, traceback.format_exc())
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
