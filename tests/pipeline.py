#!/usr/bin/env python3
"""A queue run sends many transactions in one flight (issue 17) (TAP).

Ten messages are queued (queue = always against a closed port), then
`pushmail -q` sends them to a scripted server that offers PIPELINING and
CHUNKING: MAIL, RCPT and BDAT ... LAST of every message go out before any
reply is read.  For a failure at each of several positions of the window
(MAIL 550, RCPT 450, end of data 554, 421 at an end of data, the connection
dropped after k end-of-data replies) each message's fate is checked in the
queue and on the server: delivered exactly once, kept in failed/, or still
in new/ (with a try counted only when the relay said something about that
message).  No RSET goes between completed transactions.
"""

import os
import re
import shutil
import sys

# bench/delayproxy.py imports the standard library's queue, which
# tests/queue.py (this directory, first on sys.path) would shadow
_here = os.path.dirname(os.path.abspath(__file__))
_saved = sys.path[:]
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]
import queue as _stdlib_queue  # noqa: E402,F401
sys.path = _saved

sys.path.insert(0, os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(
    os.environ.get("TESTS_SRCDIR") or os.path.dirname(__file__))), "bench"))
from delayproxy import DelayProxy  # noqa: E402
from smtpserver import ScriptedServer, close, handler  # noqa: E402

N = 10
EXT = ["PIPELINING", "CHUNKING", "8BITMIME", "ENHANCEDSTATUSCODES"]


def subject(i):
    return "pipeline message %02d" % i


def setup(name, n=N, pad=0):
    """n queued messages; pad: bytes of body filler (over 1 MiB, BDAT
    sends a chunk before the LAST one)."""
    d = os.path.join(t.tmpdir(), name)
    os.makedirs(d)
    env = t.base_env(PUSHMAIL_QUEUE_DIR=os.path.join(d, "queue"))
    down = t.write_config(text="[a]\nhost = 127.0.0.1\nport = %d\ntls = off\nauth = off\n"
                          "queue = always\nfrom = s@test.example\n" % t.closed_port())
    filler = b"x" * 76 + b"\n"
    for i in range(n):
        body = ("Subject: %s\n\nbody %d\n" % (subject(i), i)).encode()
        res = t.run_pushmail(["-C", down, "r%d@test.example" % i],
                             stdin=body + filler * (pad // len(filler)), env=env)
        if res.rc != 0:
            t.diag(*res.describe())
    return d, env


def envs(d, where):
    out = {}
    sub = os.path.join(d, "queue", where)
    for n in sorted(os.listdir(sub)) if os.path.isdir(sub) else []:
        if n.endswith(".env"):
            with open(os.path.join(sub, n), encoding="utf-8", errors="replace") as f:
                text = f.read()
            rcpt = re.search(r"^rcpt (\S+)", text, re.M).group(1)
            tries = int(re.search(r"^tries (\d+)", text, re.M).group(1))
            out[int(rcpt[1:rcpt.index("@")])] = tries
    return out


def delivered(srv):
    """The test messages delivered (delivery status notices left out)."""
    got = []
    for m in srv.messages():
        mm = re.search(rb"Subject: pipeline message (\d+)", m)
        if mm and not re.search(rb"^Content-Type: multipart/report", m, re.M):
            got.append(int(mm.group(1)))
    return got


def flush(name, rules, proxy_stats=None, n=N, pad=0, ext=EXT):
    """-q through bench/delayproxy.py (5 ms each way): it counts the client's
    flights (sends after having read something from the server)."""
    d, env = setup(name, n, pad)
    srv = ScriptedServer(rules=rules, extensions=ext, connections=1, lifetime=60)
    res = run_q(srv, env, proxy_stats)
    return res, srv, envs(d, "new"), envs(d, "failed")


def run_q(srv, env, proxy_stats=None):
    """pushmail -q for account a against srv, through the delay proxy."""
    with srv:
        px = DelayProxy(srv.port, 0.005).start()
        try:
            cfg = t.write_config(text="[a]\nhost = 127.0.0.1\nport = %d\ntls = off\n"
                                 "auth = off\nfrom = s@test.example\ntimeout = 10\n"
                                 % px.port)
            res = t.run_pushmail(["-C", cfg, "-q"], env=env)
            if proxy_stats is not None:
                proxy_stats.update(px.stats())
        finally:
            px.stop()
        srv.stop()
    return res


def common(name, res, srv, max_rset=0):
    """One connection; RSET only after a failed transaction (max_rset)."""
    t.is_eq(len(srv.records), 1, name + ": one connection")
    cmds = [c for rec in srv.records for c in rec.commands]
    n = sum(1 for c in cmds if c.upper().startswith(b"RSET"))
    t.ok(n <= max_rset, name + ": no RSET after a completed transaction (%d RSET)" % n,
         t.show(b" | ".join(cmds)))


def case_all_good():
    name = "ten messages, no failure"
    st = {}
    res, srv, new, failed = flush("good", None, st)
    t.check_exit(name, res, 0, res.describe())
    t.is_eq(sorted(delivered(srv)), list(range(N)), name + ": all delivered once")
    t.is_eq((new, failed), ({}, {}), name + ": queue empty")
    common(name, res, srv)
    # EHLO, the ten transactions in one flight, QUIT: one message at a time
    # needs ten flights for the transactions alone (12 in all before)
    t.ok(st.get("flights", 99) <= 4, name + ": the ten transactions in one flight "
         "(client flights, EHLO and QUIT included: %s)" % st.get("flights"), st)


def case_many():
    # more messages than the window holds (50 transactions in flight): the
    # window slides, replies of the first let the next ones go
    n = 60
    name = "%d messages, no failure" % n
    st = {}
    res, srv, new, failed = flush("many", None, st, n=n)
    t.check_exit(name, res, 0, res.describe())
    t.is_eq(sorted(delivered(srv)), list(range(n)), name + ": all delivered once")
    t.is_eq((new, failed), ({}, {}), name + ": queue empty")
    common(name, res, srv)
    # (the window slides: messages 50.. go out as replies come in, so the
    # flights after the first round trip are not waits; one at a time would
    # be 60 flights)
    t.ok(st.get("flights", 99) <= 12, name + ": a few flights (%s)" % st.get("flights"),
         st)


def case_data_path():
    # no CHUNKING: each message waits for its 354, and the next message's
    # MAIL, RCPT and DATA ride with the previous one's final dot
    name = "ten messages with DATA"
    st = {}
    res, srv, new, failed = flush("data", None, st, ext=["PIPELINING", "8BITMIME"])
    t.check_exit(name, res, 0, res.describe())
    t.is_eq(sorted(delivered(srv)), list(range(N)), name + ": all delivered once")
    t.is_eq((new, failed), ({}, {}), name + ": queue empty")
    common(name, res, srv)
    t.ok(st.get("flights", 99) <= N + 3, name + ": one flight per message (%s)"
         % st.get("flights"), st)


def case_chunk_refused(j):
    name = "BDAT chunk 554 at position %d" % j
    rules = {"BDAT": [None] * j + ["554 5.3.4 chunk refused"] + [None]}
    res, srv, new, failed = flush("chunk%d" % j, rules, pad=(1 << 20) + 4096)
    t.is_eq(sorted(i for i in delivered(srv) if i != j), [i for i in range(N) if i != j],
            name + ": the others delivered")
    t.is_eq(list(failed), [j], name + ": that one in failed/")
    t.is_eq(new, {}, name + ": nothing left in new/")
    common(name, res, srv)


def case_fallback(j):
    """An account with a fallback relay is batched on its first relay too;
    what that relay defers (451 to MAIL at position j) goes to the backup."""
    name = "fallback account, MAIL 451 at position %d" % j
    d, env = setup("fallback%d" % j)
    # queueing tried a closed port, so the queue remembers the first relay as
    # failing and would try the backup first: the relay is back now
    shutil.rmtree(os.path.join(d, "queue", "state"), ignore_errors=True)
    prim = ScriptedServer(rules={"MAIL": [None] * j + ["451 4.3.0 try later"] + [None]},
                          extensions=EXT, connections=1, lifetime=60)
    back = ScriptedServer(extensions=EXT, connections=1, lifetime=60)
    with prim, back:
        px = DelayProxy(prim.port, 0.005).start()
        st = {}
        try:
            cfg = t.write_config(text="[a]\nhost = 127.0.0.1\nport = %d\ntls = off\n"
                                 "auth = off\nfrom = s@test.example\ntimeout = 10\n"
                                 "fallback = b\n[b]\nhost = 127.0.0.1\nport = %d\n"
                                 "tls = off\nauth = off\nfrom = s@test.example\n"
                                 "timeout = 10\n" % (px.port, back.port))
            res = t.run_pushmail(["-C", cfg, "-q", "-v"], env=env)
            st.update(px.stats())
        finally:
            px.stop()
        prim.stop()
        back.stop()
    t.check_exit(name, res, 0, res.describe())
    t.is_eq(sorted(delivered(prim)), [i for i in range(N) if i != j],
            name + ": the others delivered by the first relay")
    t.is_eq(delivered(back), [j], name + ": that one by the backup")
    t.is_eq((envs(d, "new"), envs(d, "failed")), ({}, {}), name + ": queue empty")
    t.ok(st.get("flights", 99) <= 4, name + ": the window in one flight (%s)"
         % st.get("flights"), st)
    t.ok(b"trying the next relay" in res.err, name + ": -v says it went on",
         *res.describe())


def case_serial_after_drop():
    """A relay that drops the connection with several transactions in flight
    (as Dovecot 2.3.19's submission does when a MAIL comes before its reply to
    the previous end of data) gets one transaction at a time from then on."""
    name = "after a dropped window"
    d, env = setup("serial")
    srv = ScriptedServer(rules={"EOD": [None, None, close()]}, extensions=EXT,
                         connections=1, lifetime=60)
    res = run_q(srv, env)
    t.check_exit(name, res, 75, res.describe())
    t.ok(b"one message at a time" in res.err, name + ": stderr says what comes next",
         res.describe())
    with open(os.path.join(d, "queue", "state", "a"), encoding="utf-8") as f:
        t.ok(re.search(r"^serial_until \d+$", f.read(), re.M),
             name + ": the queue remembers it")
    sent_before = delivered(srv)
    name = "the next run, one transaction at a time"
    st = {}
    srv = ScriptedServer(extensions=EXT, connections=1, lifetime=60)
    res = run_q(srv, env, st)
    t.check_exit(name, res, 0, res.describe())
    got = sorted(sent_before + delivered(srv))
    t.ok(set(got) == set(range(N)) and len(got) <= N + 1,
         name + ": everything delivered (the one whose reply was lost at most "
         "twice)", got)
    rec = srv.record
    order = [c[:4] for c in rec.commands]
    t.ok(st.get("flights", 0) >= len(delivered(srv)),
         name + ": a flight per message (%s flights)" % st.get("flights"), st)
    t.is_eq(order.count(b"MAIL"), len(delivered(srv)), name + ": one MAIL per message",
            order)


def case_burl():
    """Dovecot's submission (the relay that offers BURL) gets no MAIL before
    its reply to the previous end of data."""
    name = "relay offering BURL"
    st = {}
    res, srv, new, failed = flush("burl", None, st, ext=EXT + ["BURL imap"])
    t.check_exit(name, res, 0, res.describe())
    t.is_eq(sorted(delivered(srv)), list(range(N)), name + ": all delivered once")
    t.ok(st.get("flights", 0) >= N, name + ": one transaction at a time (%s flights)"
         % st.get("flights"), st)
    segs = srv.record.segments
    t.ok(all(s.count(b"MAIL FROM") <= 1 for s in segs),
         name + ": never two MAILs in one segment", t.show(segs))


def case_mail_refused(j):
    name = "MAIL 550 at position %d" % j
    rules = {"MAIL": [None] * j + ["550 5.7.1 sender refused"] + [None]}
    res, srv, new, failed = flush("mail%d" % j, rules)
    t.is_eq(sorted(delivered(srv)), [i for i in range(N) if i != j],
            name + ": the others delivered")
    t.is_eq(list(failed), [j], name + ": that one in failed/")
    t.is_eq(new, {}, name + ": nothing left in new/")
    common(name, res, srv, max_rset=1)


def case_rcpt_deferred(j):
    name = "RCPT 450 at position %d" % j
    rules = {"RCPT": [None] * j + ["450 4.2.1 try later"] + [None]}
    res, srv, new, failed = flush("rcpt%d" % j, rules)
    t.is_eq(sorted(delivered(srv)), [i for i in range(N) if i != j],
            name + ": the others delivered")
    t.is_eq(new, {j: 2}, name + ": that one deferred in new/, one more try counted")
    t.is_eq(failed, {}, name + ": nothing failed")
    t.check_exit(name, res, 75, res.describe())
    common(name, res, srv, max_rset=1)


def case_eod_refused(j):
    name = "end of data 554 at position %d" % j
    rules = {"EOD": [None] * j + ["554 5.7.1 content refused"] + [None]}
    res, srv, new, failed = flush("eod%d" % j, rules)
    t.is_eq(sorted(delivered(srv)), [i for i in range(N) if i != j],
            name + ": the others delivered")
    t.is_eq(list(failed), [j], name + ": that one in failed/")
    t.is_eq(new, {}, name + ": nothing left in new/")


def case_421(j):
    name = "421 at end of data %d" % j
    rules = {"EOD": [None] * j + ["421 4.3.2 shutting down", close()]}
    res, srv, new, failed = flush("421-%d" % j, rules)
    got = sorted(delivered(srv))
    t.is_eq(got, list(range(j)), name + ": those before it delivered")
    t.is_eq(sorted(new), list(range(j, N)), name + ": it and the rest stay in new/")
    # every message starts with one try (the queue = always attempt)
    t.ok(all(v == 1 for i, v in new.items() if i > j),
         name + ": no try counted for those the relay never answered", new)
    t.is_eq(failed, {}, name + ": nothing failed")


def case_drop(k):
    name = "connection dropped after %d end-of-data replies" % k
    rules = {"EOD": [None] * k + [close()]}
    res, srv, new, failed = flush("drop%d" % k, rules)
    t.is_eq(sorted(delivered(srv))[:k], list(range(k)),
            name + ": the first %d delivered" % k)
    t.is_eq(sorted(new), list(range(k, N)), name + ": the rest stay in new/")
    t.ok(all(v == 1 for v in new.values()), name + ": untouched (no try counted)", new)
    t.is_eq(failed, {}, name + ": nothing failed")


def main():
    t.require_pushmail()
    case_all_good()
    case_many()
    case_data_path()
    case_serial_after_drop()
    case_burl()
    # a failure at every position of the ten-transaction window
    for j in range(N):
        case_mail_refused(j)
        case_rcpt_deferred(j)
        case_eod_refused(j)
        case_421(j)
        case_drop(j)
    for j in (0, 5, 9):
        case_chunk_refused(j)
        case_fallback(j)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
