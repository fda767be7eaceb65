#!/usr/bin/env python3
"""chunking.py - pushmail's CHUNKING path (RFC 3030 BDAT, pipelined per
RFC 2920) against the scripted SMTP server.

SPEC 4: when the relay offers CHUNKING (and PIPELINING) the body goes with
BDAT, without dot-stuffing, so that MAIL, RCPT, BDAT ... LAST and QUIT take
a single round trip.  src/smtp_bdat.c: with one recipient (or with
partial_delivery) everything rides in one flight; with several recipients
and all-or-nothing delivery the RCPT verdicts are read before the first
chunk.  Chunks are at most 1 MiB.

Each row of CASES runs pushmail once against a ScriptedServer and asserts
the exact exit status, one line on stderr naming the host and the server's
code for failures, and what the server recorded: the commands, the BDAT
chunks [(size, last)], the message, and, through handlers that hold a reply
back, whether the client waited for a reply before sending more:

  hold    the MAIL reply is held until the client's bytes end with QUIT
          (bounded): the client sent everything without waiting
  quiet   the reply to the last RCPT is held for a moment while watching
          for anything more: the client waited for the RCPT verdicts

The queue runner (pushmail -q over one CHUNKING connection) and the DATA
fallback (CHUNKING without PIPELINING) follow the table.
"""

import hashlib
import os
import re
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
from smtpserver import (ScriptedServer, close, drop_after_data,  # noqa: E402
                        handler, not_recognised, seq, stall)

EX_OK, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE = 0, 65, 67, 69
EX_TEMPFAIL, EX_PROTOCOL = 75, 76

CHUNK_MAX = 1 << 20
EXT = ["PIPELINING", "CHUNKING", "SIZE 10485760", "8BITMIME",
       "ENHANCEDSTATUSCODES"]
EXT_BIG = ["PIPELINING", "CHUNKING", "SIZE 104857600", "8BITMIME",
           "ENHANCEDSTATUSCODES"]

RCPT = "rcpt@example.org"
A, B = "a@example.org", "b@example.org"

# Every header pushmail might add is present, so the message must arrive
# byte for byte as normalised (SPEC 5: CRLF, no dot-stuffing with BDAT).
HEAD = (b"From: Sender <sender@example.com>\n"
        b"To: rcpt@example.org\n"
        b"Subject: chunking test\n"
        b"Date: Thu, 1 Jan 2026 00:00:00 +0000\n"
        b"Message-ID: <chunking@example.com>\n"
        b"\n")
BODY = (b"Hello.\n"
        b".leading dot\n"
        b"..\n"
        b".\n"
        b"bare CR line\r"
        b"CRLF line\r\n"
        b"\r\n.\r\n"
        b"after a CRLF.CRLF\n"
        b"last line\n")
MSG = HEAD + BODY


def mixed_body(size, seed=0):
    """A body of about `size` bytes: lines of varying length ending in LF,
    CRLF or bare CR, some starting with '.', so that line ends straddle the
    64 KiB read blocks and the 1 MiB chunks at many different offsets."""
    ends = [b"\n", b"\r\n", b"\r", b"\n", b"\r\n"]
    out, n, i = [], 0, seed
    while n < size:
        lead = b"." if i % 7 == 0 else (b".." if i % 11 == 0 else b"")
        line = lead + b"%07d " % i + b"m" * (i * 37 % 131) + ends[i % len(ends)]
        out.append(line)
        n += len(line)
        i += 1
    return b"".join(out)


MID_MSG = HEAD + mixed_body(2600 * 1024)          # three chunks
NUL_MSG = HEAD + b"text with a NUL \0 byte\nmore\n"
NUL_MID_MSG = HEAD + b"NUL first \0 here\n" + mixed_body(2600 * 1024, 3)
EIGHT_MSG = HEAD.replace(b"Subject: chunking test",
                         b"Subject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=") + \
    "Grüße aus Köln\n".encode("utf-8")


def msg_file(name, data):
    path = os.path.join(t.tmpdir(), name)
    with open(path, "wb") as f:
        f.write(data)
    return path


# --------------------------------------------------------------------------
# Handlers that watch the client while a reply is held back

def _pump(conn, until, secs):
    """Read whatever the client sends, without replying, until until(buf)
    or secs pass.  True when until() held."""
    end = time.monotonic() + secs
    for _ in range(1000000):
        if until(conn.buf):
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([conn.sock], [], [], left)
        if ready:
            conn.recv()          # records a segment; EOF ends the connection
    return False


def _last_chunk_in(buf):
    """True when buf holds a whole 'BDAT n LAST' chunk."""
    m = None
    for m in re.finditer(rb"BDAT (\d+) LAST\r\n", buf):
        pass
    return m is not None and len(buf) >= m.end() + int(m.group(1))


def hold(then=None, secs=3.0):
    """MAIL action: hold the reply until the client's bytes hold the whole
    LAST chunk (or secs pass), note what had arrived, then perform `then`."""
    def fn(conn, line):
        t0 = time.monotonic()
        got = _pump(conn, lambda b: _last_chunk_in(bytes(b)), secs)
        buf = bytes(conn.buf)
        conn.rec.events.append(("hold", got, re.search(rb"BDAT \d+ LAST\r\n", buf)
                                is not None, len(buf), time.monotonic() - t0))
        return then
    return handler(fn)


def quiet(then=None, secs=0.4):
    """RCPT action for the last RCPT: hold the reply for secs while watching
    for anything more from the client, note it, then perform `then`."""
    def fn(conn, line):
        _pump(conn, lambda b: len(b) > 0, secs)
        conn.rec.events.append(("quiet", bytes(conn.buf[:300])))
        return then
    return handler(fn)


def events(rec, kind):
    return [e for e in (rec.events if rec else []) if isinstance(e, tuple) and e[0] == kind]


# --------------------------------------------------------------------------
# Checks

BDAT_RE = re.compile(rb"^BDAT (\d+)( LAST)?$")


def data_txns(rec):
    return [x for x in rec.transactions if x.data_complete] if rec else []


def bdat_commands(rec):
    return [c for c in (rec.commands if rec else []) if c.upper().startswith(b"BDAT")]


def check_chunks(name, rec, txn):
    """BDAT command lines well formed, in step with the chunks the server
    read, each at most 1 MiB, only the final one LAST, adding up to the
    message."""
    cmds = bdat_commands(rec)
    parsed = [BDAT_RE.match(c) for c in cmds]
    t.ok(cmds and all(parsed), name + ": BDAT command lines are 'BDAT n [LAST]'",
         "got: %s" % t.show(cmds))
    sizes = [(int(m.group(1)), m.group(2) is not None) for m in parsed if m]
    t.is_eq(sizes, txn.bdat_chunks, name + ": BDAT sizes match the chunks read")
    ch = txn.bdat_chunks
    t.ok(ch and ch[-1][1] and not any(last for _, last in ch[:-1]),
         name + ": LAST on the final chunk only", "chunks: %s" % t.show(ch))
    t.ok(all(0 < n <= CHUNK_MAX for n, last in ch if not last) and
         all(n <= CHUNK_MAX for n, _ in ch),
         name + ": every chunk <= 1 MiB (non-LAST chunks not empty)",
         "chunks: %s" % t.show(ch))
    t.is_eq(sum(n for n, _ in ch), len(txn.message or b""),
            name + ": chunk sizes add up to the message")
    # a size that did not match its bytes would make the server read body
    # text as commands
    known = {"EHLO", "MAIL", "RCPT", "BDAT", "RSET", "QUIT"}
    t.is_eq([c[:60] for c, v in zip(rec.commands, rec.verbs()) if v not in known],
            [], name + ": nothing but SMTP commands outside the chunks")


def check_delivered(name, rec, sent, rcpts=(RCPT,)):
    """Exactly one message, delivered with BDAT to rcpts, equal to `sent`
    normalised to CRLF with no dot-stuffing."""
    done = data_txns(rec)
    if not t.is_eq(len(done), 1, name + ": exactly one message delivered"):
        return None
    txn = done[0]
    want = t.normalise(sent)
    t.ok(txn.message == want, name + ": message arrives normalised, not dot-stuffed",
         "got %d bytes: %s" % (len(txn.message), t.show(txn.message[-300:])),
         "want %d bytes: %s" % (len(want), t.show(want[-300:])))
    t.is_eq(t.bare_line_ends(txn.message[:1 << 20]), [],
            name + ": no bare CR or LF")
    t.is_eq(txn.accepted, [b"RCPT TO:<%s>" % r.encode() for r in rcpts],
            name + ": delivered to the accepted recipients")
    t.ok(b"DATA" not in rec.commands, name + ": no DATA command",
         "commands: %s" % t.show(rec.commands))
    check_chunks(name, rec, txn)
    return txn


def check_hold(name, rec):
    ev = events(rec, "hold")
    t.ok(ev and ev[0][1] and ev[0][2],
         name + ": one flight: MAIL, RCPT, every BDAT and LAST sent before "
         "any reply was read",
         "hold events (saw QUIT, saw LAST, bytes, seconds): %s" % t.show(ev),
         "commands: %s" % t.show(rec.commands if rec else None))


def check_quit(name, rec, what="session ends with QUIT"):
    """The client's last bytes were QUIT (the server may not have got to
    answer it: after reading the verdict it wanted, the client may close
    while the server still works through the pipelined commands)."""
    t.ok(rec.received.endswith(b"QUIT\r\n"), name + ": " + what,
         "last bytes received: %s" % t.show(rec.received[-80:]),
         "commands: %s" % t.show([x[:40] for x in rec.commands]),
         "server end: %s" % rec.end)


def check_quiet(name, rec):
    ev = events(rec, "quiet")
    t.ok(ev and ev[-1][1] == b"",
         name + ": nothing sent after the RCPTs until their replies were read",
         "sent meanwhile: %s" % t.show(ev[-1][1] if ev else None))


# per-case checks (name, res, srv)

def ck_msg(sent, rcpts=(RCPT,)):
    def ck(name, res, srv):
        check_delivered(name, srv.record, sent, rcpts)
    return ck


def ck_flight_order(name, res, srv):
    """One recipient: the order on the wire is MAIL RCPT BDAT... QUIT, and
    the commands and chunks share few segments (not a write per line)."""
    rec = srv.record
    v = rec.verbs()
    t.is_eq(v[:3], ["EHLO", "MAIL", "RCPT"], name + ": EHLO, MAIL, RCPT")
    t.ok(v[3:-1] and all(x == "BDAT" for x in v[3:-1]) and v[-1] == "QUIT",
         name + ": then only BDAT chunks and QUIT", "verbs: %s" % v)
    i = rec.segment_with(b"MAIL FROM:")
    seg = rec.segments[i] if i >= 0 else b""
    t.ok(re.search(rb"\r\nRCPT TO:<rcpt@example\.org>\r\nBDAT \d+", seg) is not None,
         name + ": MAIL, RCPT and the first BDAT in one segment",
         "segment: %s" % t.show(seg[:300]))
    check_quit_after_last(name, rec)


def check_quit_after_last(name, rec):
    """QUIT waits for the reply to LAST (issue 14: Haraka answers a QUIT
    pipelined after the end of data with 503).  The server answers LAST only
    after reading the chunk, so a QUIT sent after that reply comes in a
    later recv() than the chunk's last byte."""
    j = rec.segment_with(b"QUIT\r\n") if rec else -1
    seg = rec.segments[j] if j >= 0 else b""
    before = b"".join(rec.segments[:j]) if j > 0 else b""
    t.ok(seg.startswith(b"QUIT\r\n") and _last_chunk_in(before),
         name + ": QUIT in its own segment after the LAST chunk, not with it",
         "QUIT segment: %s" % t.show(seg[-120:]), "before it: %s" % t.show(before[-80:]))


def ck_empty_body(name, res, srv):
    rec = srv.record
    txn = check_delivered(name, rec, HEAD)
    if txn:
        t.ok(txn.message.endswith(b"\r\n\r\n"), name + ": header block ends the message")


def ck_empty_input(name, res, srv):
    rec = srv.record
    done = data_txns(rec)
    if not t.is_eq(len(done), 1, name + ": one message delivered"):
        return
    txn = done[0]
    t.ok(txn.message.endswith(b"\r\n") and b"\r\n\r\n" in txn.message,
         name + ": generated header block, ends with CRLF", t.show(txn.message))
    t.is_eq(t.bare_line_ends(txn.message), [], name + ": no bare CR or LF")
    check_chunks(name, rec, txn)


def ck_eight(todo=None):
    def ck(name, res, srv):
        rec = srv.record
        txn = check_delivered(name, rec, EIGHT_MSG)
        mail = txn.mail if txn else b""
        t.ok(mail is not None and mail.endswith(b" BODY=8BITMIME"),
             name + ": MAIL declares BODY=8BITMIME (SPEC 4)", "MAIL: %s" % t.show(mail),
             todo=todo)
    return ck


def ck_no_body_param(name, res, srv):
    txn = data_txns(srv.record)
    mail = txn[0].mail if txn else None
    t.ok(mail is not None and b" BODY=" not in mail,
         name + ": MAIL declares no BODY= for a 7-bit message known in advance",
         "MAIL: %s" % t.show(mail))


def ck_multi_ok(name, res, srv):
    rec = srv.record
    check_quiet(name, rec)
    v = rec.verbs()
    t.is_eq(v[:4], ["EHLO", "MAIL", "RCPT", "RCPT"], name + ": MAIL and both RCPTs first")
    i = rec.segment_with(b"MAIL FROM:")
    seg = rec.segments[i] if i >= 0 else b""
    t.ok(seg.endswith(b"RCPT TO:<%s>\r\nRCPT TO:<%s>\r\n" % (A.encode(), B.encode())),
         name + ": MAIL and the RCPTs pipelined in one segment, nothing after",
         "segment: %s" % t.show(seg))
    check_delivered(name, rec, MSG, rcpts=(A, B))


def ck_no_bdat(name, res, srv):
    rec = srv.record
    t.is_eq(bdat_commands(rec), [], name + ": no BDAT at all")
    t.ok(not any(x.bdat_chunks for x in rec.transactions),
         name + ": no chunk read by the server")


def ck_partial(name, res, srv):
    rec = srv.record
    check_delivered(name, rec, MSG, rcpts=(A,))
    t.ok(B.encode() in res.err and b"550" in res.err,
         name + ": the refused recipient reported on stderr",
         "stderr: %s" % t.show(res.err))


def ck_rcpt_not_bdat(name, res, srv):
    """The lone recipient was refused; the relay then refused LAST with 554
    'no valid recipients': pushmail must report the RCPT refusal."""
    rec = srv.record
    txn = rec.transaction
    t.ok(txn is not None and txn.eod_code == 554 and txn.bdat_chunks and
         txn.bdat_chunks[-1][1],
         name + ": server got LAST and answered 554",
         "txn: %s" % t.show(txn and (txn.bdat_chunks[-3:], txn.eod_code)))
    t.ok(b"RCPT" in res.err and b"554" not in res.err,
         name + ": stderr reports the RCPT refusal, not the 554 to BDAT",
         "stderr: %s" % t.show(res.err))


def ck_bdat_failure(name, res, srv):
    t.ok(b"BDAT" in res.err, name + ": stderr names BDAT",
         "stderr: %s" % t.show(res.err))


def ck_dropped(name, res, srv):
    rec = srv.record
    t.ok(rec.transactions and rec.transactions[-1].message is not None and
         len(rec.transactions[-1].message) >= 1000,
         name + ": server read chunk bytes before dropping")


def ck_nul(name, res, srv):
    rec = srv.record
    t.is_eq([c for c in bdat_commands(rec) if c.upper().endswith(b"LAST")], [],
            name + ": no BDAT ... LAST reached the server",
            "commands: %s" % t.show(rec.commands if rec else None))
    t.ok(b"NUL" in res.err, name + ": stderr says why (NUL)", "stderr: %s" % t.show(res.err))


def ck_nul_quit(name, res, srv):
    """SPEC 4: 'On any failure after the greeting, send QUIT (or RSET then
    QUIT) before closing.'  Unlike DATA, BDAT leaves the session at command
    level between chunks, so nothing stops a QUIT here."""
    ck_nul(name, res, srv)
    check_quit(name, srv.record, "session ends with QUIT (SPEC 4)")


# --------------------------------------------------------------------------
# The large message

BIG_LINES = 0


def big_message_file():
    global BIG_LINES
    path = os.path.join(t.tmpdir(), "chunking-big.eml")
    if os.path.exists(path):
        return path
    BIG_LINES = t.write_big_message(path, HEAD)
    return path


def ck_big(name, res, srv):
    rec = srv.record
    with open(big_message_file(), "rb") as f:
        want = t.normalise(f.read())
    done = data_txns(rec)
    if not t.is_eq(len(done), 1, name + ": one message delivered"):
        return
    txn = done[0]
    t.ok_intact(name, txn.message, want)
    t.ok(len(txn.bdat_chunks) >= 20, name + ": in >= 20 chunks (%d)" % len(txn.bdat_chunks))
    check_chunks(name, rec, txn)
    t.ok(len(rec.segments) * 100 < BIG_LINES,
         name + ": few segments (%d for %d lines)" % (len(rec.segments), BIG_LINES))
    t.ok_size_param(name, txn.mail, len(want))


# --------------------------------------------------------------------------
# The table

def S(**kw):
    kw.setdefault("extensions", EXT)
    return kw


NOT_550 = "550 5.1.1 <b@example.org>: no such user"

CASES = [
    # --- one recipient: one flight
    dict(name="one recipient: one flight", server=S(rules={"MAIL": hold()}),
         exit=EX_OK, hold=True, check=[ck_msg(MSG), ck_flight_order]),
    dict(name="three chunks in one flight", server=S(rules={"MAIL": hold()}),
         stdin=MID_MSG, exit=EX_OK, hold=True, check=[ck_msg(MID_MSG)]),
    dict(name="three chunks from a regular file", server=S(rules={"MAIL": hold()}),
         stdin_file=lambda: msg_file("chunking-mid.eml", MID_MSG), exit=EX_OK,
         hold=True, check=[ck_msg(MID_MSG)]),
    dict(name="no final newline", server=S(), stdin=MSG.rstrip(b"\n") + b"\nend",
         exit=EX_OK, check=[ck_msg(MSG.rstrip(b"\n") + b"\nend")]),
    dict(name="ends with a bare CR", server=S(), stdin=MSG + b"cr at the end\r",
         exit=EX_OK, check=[ck_msg(MSG + b"cr at the end\r")]),
    dict(name="empty body", server=S(), stdin=HEAD, exit=EX_OK, check=[ck_empty_body]),
    dict(name="empty input", server=S(), stdin=b"", exit=EX_OK, check=[ck_empty_input]),
    dict(name="8-bit body, spooled first (queue = on-failure)", server=S(),
         stdin=EIGHT_MSG, queue_dir="queue-8bit", exit=EX_OK, check=[ck_eight()]),
    # the body of a stream cannot be scanned before MAIL: BODY=8BITMIME is
    # declared whenever the relay offers it (RFC 6152 allows it for 7-bit)
    dict(name="8-bit body, streamed (queue = never)", server=S(), stdin=EIGHT_MSG,
         exit=EX_OK, check=[ck_eight()]),
    dict(name="8-bit body, from a regular file (queue = never)", server=S(),
         stdin_file=lambda: msg_file("chunking-8bit.eml", EIGHT_MSG),
         exit=EX_OK, check=[ck_eight()]),
    dict(name="7-bit body, from a regular file (queue = never): no BODY=", server=S(),
         stdin_file=lambda: msg_file("chunking-7bit.eml", MSG),
         exit=EX_OK, check=[ck_msg(MSG), ck_no_body_param]),
    dict(name="partial_delivery, one of two refused: one flight",
         server=S(rules={"MAIL": hold(), "RCPT": ["250 2.1.5 Ok", NOT_550]}),
         cfg={"partial_delivery": "yes"}, args=[A, B], exit=EX_OK, hold=True,
         stderr_ok=True, check=[ck_partial]),
    dict(name="partial_delivery, both refused",
         server=S(rules={"RCPT": NOT_550}), cfg={"partial_delivery": "yes"},
         args=[A, B], exit=EX_NOUSER, err=["550", "5.1.1"], delivered=False,
         quit=True),

    # --- several recipients: RCPT verdicts first
    dict(name="two recipients: RCPT replies read before BDAT",
         server=S(rules={"RCPT": [None, quiet()]}), args=[A, B], exit=EX_OK,
         check=[ck_multi_ok]),
    dict(name="two recipients, second 550",
         server=S(rules={"RCPT": [None, quiet(NOT_550)]}), args=[A, B],
         exit=EX_NOUSER, err=["550", "5.1.1"], delivered=False, quit=True,
         quiet=True, check=[ck_no_bdat]),
    dict(name="two recipients, second 451",
         server=S(rules={"RCPT": [None, quiet("451 4.3.0 try later")]}),
         args=[A, B], exit=EX_TEMPFAIL, err=["451", "4.3.0"], delivered=False,
         quit=True, quiet=True, check=[ck_no_bdat]),
    dict(name="two recipients, 451 then 550: the permanent one wins",
         server=S(rules={"RCPT": ["451 4.3.0 try later", quiet(NOT_550)]}),
         args=[A, B], exit=EX_NOUSER, err=["550"], delivered=False, quit=True,
         quiet=True, check=[ck_no_bdat]),
    dict(name="two recipients, MAIL 552",
         server=S(rules={"MAIL": "552 5.3.4 too big"}),
         args=[A, B], exit=EX_UNAVAILABLE, err=["552", "5.3.4"], delivered=False,
         quit=True, check=[ck_no_bdat]),

    # --- failures in one flight
    dict(name="MAIL 552, one flight",
         server=S(rules={"MAIL": hold("552 5.3.4 message too big")}),
         exit=EX_UNAVAILABLE, err=["552", "5.3.4"], delivered=False, quit=True,
         hold=True),
    dict(name="MAIL 451, one flight",
         server=S(rules={"MAIL": hold("451 4.7.1 greylisted")}),
         exit=EX_TEMPFAIL, err=["451", "4.7.1"], delivered=False, quit=True, hold=True),
    dict(name="MAIL 552, three chunks in one flight",
         server=S(rules={"MAIL": hold("552 5.3.4 message too big")}), stdin=MID_MSG,
         exit=EX_UNAVAILABLE, err=["552", "5.3.4"], delivered=False, quit=True,
         hold=True),
    dict(name="lone RCPT 550, LAST refused 554 (no valid recipients)",
         server=S(rules={"MAIL": hold(), "RCPT": NOT_550}), exit=EX_NOUSER,
         err=["550", "5.1.1"], delivered=False, quit=True, hold=True,
         check=[ck_rcpt_not_bdat]),
    dict(name="lone RCPT 550, three chunks",
         server=S(rules={"RCPT": NOT_550}), stdin=MID_MSG, exit=EX_NOUSER,
         err=["550", "5.1.1"], delivered=False, quit=True, check=[ck_rcpt_not_bdat]),
    dict(name="lone RCPT 451",
         server=S(rules={"RCPT": "451 4.3.0 try later"}), exit=EX_TEMPFAIL,
         err=["451", "4.3.0"], delivered=False, quit=True, check=[ck_rcpt_not_bdat]),
    dict(name="LAST answered 554", server=S(rules={"EOD": "554 5.7.1 spam refused"}),
         exit=EX_UNAVAILABLE, err=["554", "5.7.1"], quit=True),
    dict(name="LAST answered 451", server=S(rules={"EOD": "451 4.3.0 queue trouble"}),
         exit=EX_TEMPFAIL, err=["451", "4.3.0"], quit=True),
    dict(name="LAST answered 554 after three chunks",
         server=S(rules={"EOD": "554 5.7.1 spam refused"}), stdin=MID_MSG,
         exit=EX_UNAVAILABLE, err=["554", "5.7.1"], quit=True),
    dict(name="first chunk answered 552",
         server=S(rules={"BDAT": ["552 5.3.4 chunk refused", "503 5.5.1 after error"],
                         "EOD": "503 5.5.1 Error: earlier BDAT failed"}),
         stdin=MID_MSG, exit=EX_UNAVAILABLE, err=["552", "5.3.4"], quit=True,
         check=[ck_bdat_failure]),
    dict(name="first chunk answered 552, LAST accepted: still failed (RFC 3030 2)",
         server=S(rules={"BDAT": "552 5.3.4 chunk refused"}), stdin=MID_MSG,
         exit=EX_UNAVAILABLE, err=["552", "5.3.4"], quit=True, check=[ck_bdat_failure]),
    dict(name="second chunk answered 451",
         server=S(rules={"BDAT": ["250 2.0.0 ok", "451 4.3.0 disk full"],
                         "EOD": "451 4.3.0 disk full"}),
         stdin=MID_MSG, exit=EX_TEMPFAIL, err=["451", "4.3.0"], quit=True,
         check=[ck_bdat_failure]),
    # a reply of the wrong class (3xx where only 2xx means success) is not a
    # success: SPEC 3, inconsistent server reply -> 76, and never exit 0
    dict(name="RCPT answered 354 (wrong class)", server=S(rules={"RCPT": "354 huh"}),
         exit=EX_PROTOCOL, err=["354"], delivered=False, quit=True),
    dict(name="LAST answered 354 (wrong class)", server=S(rules={"EOD": "354 huh"}),
         exit=EX_PROTOCOL, err=["354"], delivered=False, quit=True),
    dict(name="first chunk answered 354 (wrong class)",
         server=S(rules={"BDAT": "354 huh", "EOD": "503 5.5.1 Error: earlier BDAT failed"}),
         stdin=MID_MSG, exit=EX_PROTOCOL, err=["354"], quit=True,
         check=[ck_bdat_failure]),
    dict(name="MAIL answered 354 (wrong class), one flight",
         server=S(rules={"MAIL": "354 huh"}), exit=EX_PROTOCOL, err=["354"],
         delivered=False),
    dict(name="connection dropped mid-chunks",
         server=S(rules={"BDAT": drop_after_data(1000)}), stdin=MID_MSG,
         exit=EX_TEMPFAIL, delivered=False, check=[ck_dropped]),
    dict(name="connection dropped inside the LAST chunk",
         server=S(rules={"EOD": drop_after_data(100)}), exit=EX_TEMPFAIL,
         delivered=False),
    dict(name="connection closed instead of the LAST reply",
         server=S(rules={"EOD": close()}), exit=EX_TEMPFAIL),
    dict(name="LAST reply stalls (timeout = 2)",
         server=S(rules={"EOD": stall(30)}), cfg={"timeout": "2"},
         exit=EX_TEMPFAIL, max_time=10),
    dict(name="NUL byte in the body", server=S(), stdin=NUL_MSG, exit=EX_DATAERR,
         delivered=False, check=[ck_nul_quit]),
    dict(name="NUL byte in a three-chunk body", server=S(), stdin=NUL_MID_MSG,
         exit=EX_DATAERR, delivered=False, check=[ck_nul_quit]),
    dict(name="SIZE limit below the message size",
         server=S(extensions=["PIPELINING", "CHUNKING", "SIZE 1000"]),
         stdin_file=lambda: msg_file("chunking-mid.eml", MID_MSG),
         exit=EX_UNAVAILABLE, err=["1000"], delivered=False, no_mail=True),

    # --- 20 MiB
    dict(name="20 MiB message",
         server=S(extensions=EXT_BIG, io_timeout=20,
                  rules={"MAIL": hold(secs=25)}),
         cfg={"timeout": "20"}, stdin_file=big_message_file, exit=EX_OK,
         hold=True, check=[ck_big], max_time=40, maxrss_kb=16 * 1024,
         data_limit=16 << 20),
]


def run_case(c):
    name = c["name"]
    srv = ScriptedServer(**c["server"]).start()
    try:
        keys = dict(c.get("cfg", {}))
        kw = {"data_limit": c.get("data_limit")}
        if c.get("queue_dir"):
            keys["queue"] = "on-failure"
            kw["env"] = t.base_env(PUSHMAIL_QUEUE_DIR=os.path.join(t.tmpdir(),
                                                                   c["queue_dir"]))
        cfg = t.write_config(port=srv.port, **keys)
        if c.get("stdin_file"):
            kw["stdin_file"] = c["stdin_file"]()
        else:
            kw["stdin"] = c.get("stdin", MSG)
        res = t.run_pushmail(["-C", cfg] + c.get("args", [RCPT]), **kw)
    finally:
        srv.stop()
    rec = srv.record
    info = res.describe()
    if rec:
        info += ["server commands: %s" % t.show([x[:60] for x in rec.commands]),
                 "server end: %s" % rec.end]
    if srv.errors:
        info += ["server errors: %s" % srv.errors]

    t.is_eq(res.rc, c["exit"], name + ": exit status", *info)
    t.is_eq(srv.errors, [], name + ": scripted server ran cleanly")
    if rec is None:
        t.ok(False, name + ": server was connected to", *info)
        return
    if c["exit"] == EX_OK and not c.get("stderr_ok"):
        t.is_eq(res.err, b"", name + ": nothing on stderr")
    if c["exit"] != EX_OK:
        err = res.err.strip()
        t.ok(err and b"\n" not in err, name + ": one line on stderr",
             "stderr: %s" % t.show(res.err), todo=c.get("one_line_todo"))
        want = [b"127.0.0.1"] + [s.encode() for s in c.get("err", [])]
        t.ok(all(w in err for w in want),
             name + ": stderr names the host%s" % (
                 " and " + "/".join(c["err"]) if c.get("err") else ""),
             "stderr: %s" % t.show(res.err), "want: %s" % t.show(want))
    if "max_time" in c:
        t.ok(res.elapsed < c["max_time"],
             name + ": finished in %.1fs (< %ss)" % (res.elapsed, c["max_time"]))
    if "maxrss_kb" in c:
        t.ok(t.SANITIZED or res.maxrss_kb < c["maxrss_kb"],
             name + ": memory bounded (maxrss %d KiB)" % res.maxrss_kb)
    if c.get("hold"):
        check_hold(name, rec)
    if c.get("delivered") is False:
        t.is_eq(len(data_txns(rec)), 0, name + ": nothing delivered")
    if c.get("no_mail"):
        t.is_eq([x for x in rec.commands if x.upper().startswith(b"MAIL")], [],
                name + ": no MAIL command sent")
    if c.get("quit"):
        check_quit(name, rec)
    if c.get("quiet"):
        check_quiet(name, rec)
    for ck in c.get("check", []):
        ck(name, res, srv)


# --------------------------------------------------------------------------
# CHUNKING without PIPELINING: DATA

def test_data_fallback():
    name = "CHUNKING without PIPELINING"
    with ScriptedServer(extensions=["CHUNKING", "SIZE 10485760", "8BITMIME",
                                    "ENHANCEDSTATUSCODES"]) as srv:
        cfg = t.write_config(port=srv.port)
        res = t.run_pushmail(["-C", cfg, RCPT], stdin=MSG)
    rec = srv.record
    t.is_eq(res.rc, EX_OK, name + ": exit status", *res.describe())
    v = rec.verbs() if rec else []
    t.is_eq(v, ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"], name + ": DATA, not BDAT")
    done = data_txns(rec)
    if t.is_eq(len(done), 1, name + ": one message delivered"):
        txn = done[0]
        t.is_eq(txn.message, t.normalise(MSG), name + ": message intact")
        t.is_eq(txn.data_raw, t.dot_stuff(t.normalise(MSG)), name + ": dot-stuffed DATA")


# --------------------------------------------------------------------------
# The queue runner over CHUNKING

Q_MSGS = [HEAD.replace(b"chunking test", b"queued one") + b"first queued\n.dot\n",
          HEAD.replace(b"chunking test", b"queued two") + b"second queued\n" +
          mixed_body(1200 * 1024, 5)]


def queue_config(port):
    return t.write_config(text=(
        "[defaults]\nqueue_retry = 1\n\n[test]\nhost = 127.0.0.1\nport = %d\n"
        "tls = off\nauth = off\nfrom = sender@example.com\ndomain = client.example\n"
        "timeout = 5\nqueue = on-failure\n" % port))


def test_queue_runner():
    name = "queue runner"
    env = t.base_env(PUSHMAIL_QUEUE_DIR=os.path.join(t.tmpdir(), "queue-chunking"))
    with ScriptedServer(extensions=EXT, connections=2,
                        rules={"MAIL": "451 4.7.1 greylisted"}) as first:
        cfg1 = queue_config(first.port)
        runs = [t.run_pushmail(["-C", cfg1, RCPT], stdin=m, env=env) for m in Q_MSGS]
        sent_at = time.monotonic()
        first.wait(5)
    for i, r in enumerate(runs):
        t.is_eq(r.rc, EX_OK, name + ": message %d queued after 451 at MAIL" % (i + 1),
                *r.describe())
        t.ok(r.err.strip() != b"", name + ": message %d: notice on stderr" % (i + 1))
    t.is_eq([len(bdat_commands(rec)) > 0 and not data_txns(rec) for rec in first.records],
            [True, True], name + ": first server: chunks sent, nothing delivered")
    # queue_retry = 1: the first retry is due one second after the failure
    time.sleep(max(0.0, sent_at + 2.1 - time.monotonic()))
    with ScriptedServer(extensions=EXT, connections=2, accept_timeout=3) as srv:
        cfg2 = queue_config(srv.port)
        res = t.run_pushmail(["-C", cfg2, "-q"], env=env)
    rec = srv.record
    info = res.describe() + ["commands: %s" % t.show(
        [x[:60] for x in rec.commands] if rec else None)]
    t.is_eq(res.rc, EX_OK, name + ": pushmail -q exit status", *info)
    t.is_eq(srv.accepted, 1, name + ": one connection for both messages", *info)
    if rec is None:
        return
    v = rec.verbs()
    # issue 17: no RSET after a completed transaction
    t.ok(v[:1] == ["EHLO"] and v[-1:] == ["QUIT"] and v.count("MAIL") == 2 and
         v.count("RSET") == 0,
         name + ": EHLO, MAIL RCPT BDAT, MAIL RCPT BDAT, QUIT (no RSET)", "verbs: %s" % v)
    done = data_txns(rec)
    t.is_eq(len(done), 2, name + ": both delivered", *info)
    got = sorted(x.message for x in done)
    want = sorted(t.normalise(m) for m in Q_MSGS)
    t.ok(got == want, name + ": both messages intact",
         "got sizes %s, want %s" % ([len(g) for g in got], [len(w) for w in want]))
    t.ok(all(x.bdat_chunks and all(n <= CHUNK_MAX for n, _ in x.bdat_chunks) and
             sum(n for n, _ in x.bdat_chunks) == len(x.message) for x in done),
         name + ": chunks <= 1 MiB adding up to each message")
    t.is_eq(res.err, b"pushmail: queue run: 2 sent, 0 deferred, 0 failed\n",
            name + ": only -q's summary on stderr")
    lst = t.run_pushmail(["-C", cfg2, "-bp"], env=env)
    t.ok(b"empty" in lst.out, name + ": queue empty afterwards", *lst.describe())


def test_queue_mixed():
    """Four queued messages of one account, one connection: a lone refused
    recipient (550: failed/), two recipients (all-or-nothing, so the RCPT
    verdicts are read before the chunks), LAST answered 451 (deferred), and
    a plain one.  Every reply must stay in step across RSET."""
    name = "queue runner, mixed verdicts"
    env = t.base_env(PUSHMAIL_QUEUE_DIR=os.path.join(t.tmpdir(), "queue-mixed"))
    msgs = [(["refuse@example.org"], HEAD + b"to be refused\n"),
            ([A, B], HEAD + b"two recipients\n" + mixed_body(1500 * 1024, 9)),
            ([RCPT], HEAD + b"defer me\n"),
            ([RCPT], HEAD + b"plain\n.dot\n")]
    with ScriptedServer(extensions=EXT, connections=len(msgs),
                        rules={"MAIL": "451 4.7.1 greylisted"}) as first:
        cfg1 = queue_config(first.port)
        runs = [t.run_pushmail(["-C", cfg1] + r, stdin=m, env=env) for r, m in msgs]
        sent_at = time.monotonic()
    t.is_eq([r.rc for r in runs], [EX_OK] * len(msgs), name + ": all queued",
            *[x for r in runs for x in r.describe()])
    time.sleep(max(0.0, sent_at + 2.1 - time.monotonic()))

    def rcpt(conn, line):
        return NOT_550 if b"refuse@" in line else None

    def eod(conn, line):
        txn = conn.txn
        if txn is not None and txn.message and b"defer me" in txn.message:
            return "451 4.3.0 deferred"
        return None

    with ScriptedServer(extensions=EXT, connections=2, accept_timeout=3,
                        rules={"RCPT": handler(rcpt), "EOD": handler(eod)}) as srv:
        cfg2 = queue_config(srv.port)
        res = t.run_pushmail(["-C", cfg2, "-q"], env=env)
    rec = srv.record
    info = res.describe() + ["commands: %s" % t.show(
        [x[:60] for x in rec.commands] if rec else None), "end: %s" % (rec and rec.end)]
    t.is_eq(srv.errors, [], name + ": scripted server ran cleanly")
    t.is_eq(srv.accepted, 1, name + ": one connection", *info)
    if rec is None:
        return
    v = rec.verbs()
    # the four messages, then the refused one's delivery status notice
    # (tests/notice.py) over the same connection
    # issue 17: the refused one went in a batch and ended with BDAT LAST, so
    # no transaction is left open and no RSET is needed at all
    t.is_eq((v.count("MAIL"), v.count("RSET"), v[-1:]), (5, 0, ["QUIT"]),
            name + ": four MAILs and the notice's, no RSET, QUIT", "verbs: %s" % v)
    t.ok(rec.received.endswith(b"QUIT\r\n"), name + ": QUIT last")
    notices = [x for x in data_txns(rec) if x.mail.startswith(b"MAIL FROM:<>")]
    t.ok(len(notices) == 1 and b"multipart/report" in (notices[0].message or b""),
         name + ": one notice, last", "MAILs: %s" % [x.mail[:40] for x in rec.transactions])
    done = sorted(x.message for x in data_txns(rec) if x not in notices)
    want = sorted(t.normalise(m) for r, m in msgs if b"refuse" not in m and b"defer" not in m)
    t.ok(done == want, name + ": the two good messages delivered intact",
         "delivered sizes %s, want %s" % ([len(x) for x in done], [len(x) for x in want]),
         *info)
    two = [x for x in rec.transactions if len(x.rcpts) == 2]
    t.ok(two and len(two[0].accepted) == 2 and two[0].data_complete,
         name + ": the two-recipient message went to both")
    lst = t.run_pushmail(["-C", cfg2, "-bp"], env=env)
    t.ok(b"1 queued, 1 failed" in lst.out, name + ": one deferred, one failed",
         *lst.describe())
    t.ok(b"refuse@example.org" in res.err and b"550" in res.err,
         name + ": the refusal reported", "stderr: %s" % t.show(res.err))


def test_binarymime():
    """SPEC 3: NUL bytes are unusable (65) 'when the relay lacks BINARYMIME';
    with BINARYMIME and CHUNKING offered they can go (RFC 3030 BODY=BINARYMIME)."""
    name = "NUL bytes with BINARYMIME offered"
    why = None
    with ScriptedServer(extensions=EXT + ["BINARYMIME"]) as srv:
        cfg = t.write_config(port=srv.port)
        res = t.run_pushmail(["-C", cfg, "-BBINARYMIME", RCPT], stdin=NUL_MSG)
    rec = srv.record
    t.is_eq(res.rc, EX_OK, name + ": delivered", *res.describe(), todo=why)
    mails = [x for x in (rec.commands if rec else []) if x.startswith(b"MAIL")]
    t.ok(mails and mails[0].endswith(b" BODY=BINARYMIME"),
         name + ": MAIL declares BODY=BINARYMIME", "MAIL: %s" % t.show(mails), todo=why)
    t.ok(any(b"\0" in (x.message or b"") for x in data_txns(rec)),
         name + ": the NUL byte arrives", todo=why)


# --------------------------------------------------------------------------
# SIZE= is the size on the wire (issue 14)

def lines_body(n, end):
    return b"".join(b"line %05d of a body with various line ends" % i + end
                    for i in range(n))


SIZE_BODIES = [("LF", lines_body(20000, b"\n")),
               ("CRLF", lines_body(20000, b"\r\n")),
               ("mixed", mixed_body(300 * 1024, 4) + b"no final newline")]


def size_declared(mail):
    m = re.search(rb" SIZE=(\d+)", mail or b"")
    return int(m.group(1)) if m else None


def run_size(name, data, server, queued, from_file):
    """One message; returns (res, srv)."""
    with ScriptedServer(**server) as srv:
        keys, kw = {}, {}
        if queued:
            keys["queue"] = "on-failure"
            kw["env"] = t.base_env(PUSHMAIL_QUEUE_DIR=os.path.join(
                t.tmpdir(), "queue-size-" + re.sub(r"\W", "-", name)))
        cfg = t.write_config(port=srv.port, **keys)
        if from_file:
            kw["stdin_file"] = msg_file("size-%s.eml" % re.sub(r"\W", "-", name), data)
        else:
            kw["stdin"] = data
        res = t.run_pushmail(["-C", cfg, RCPT], **kw)
    return res, srv


def test_size_exact():
    """RFC 1870: SIZE= is the message as it goes on the wire, CRLF line ends
    included (not the raw input: a 20,000-line LF file was declared 760146
    and sent as BDAT 780152).  With BDAT that is the sum of the chunks."""
    for label, body in SIZE_BODIES:
        msg = HEAD + body
        want = len(t.normalise(msg))
        for queued, from_file, how in ((True, False, "queued"),
                                       (False, True, "queue = never, file stdin")):
            name = "SIZE= for %s input, %s" % (label, how)
            res, srv = run_size(name, msg, S(), queued, from_file)
            rec = srv.record
            done = data_txns(rec)
            t.is_eq(res.rc, EX_OK, name + ": exit status", *res.describe())
            if not t.is_eq(len(done), 1, name + ": delivered"):
                continue
            txn = done[0]
            sent = sum(n for n, _ in txn.bdat_chunks)
            t.is_eq((size_declared(txn.mail), sent), (want, want),
                    name + ": SIZE= equals the bytes sent with BDAT",
                    "MAIL: %s" % t.show(txn.mail))
    # DATA (no CHUNKING): the normalised size, without the dot-stuffing
    msg = HEAD + SIZE_BODIES[2][1]
    name = "SIZE= with DATA, mixed input, queue = never, file stdin"
    res, srv = run_size(name, msg, dict(extensions=EXT[:1] + EXT[2:]), False, True)
    done = data_txns(srv.record)
    t.is_eq(res.rc, EX_OK, name + ": exit status", *res.describe())
    if t.is_eq(len(done), 1, name + ": delivered"):
        t.is_eq(size_declared(done[0].mail), len(done[0].message),
                name + ": SIZE= is the message without dot-stuffing",
                "MAIL: %s" % t.show(done[0].mail))
    # a stream whose size is unknown declares none
    name = "SIZE= for a piped stream, queue = never"
    res, srv = run_size(name, msg, S(), False, False)
    done = data_txns(srv.record)
    t.is_eq(res.rc, EX_OK, name + ": exit status", *res.describe())
    t.ok(done and size_declared(done[0].mail) is None, name + ": no SIZE= declared",
         "MAIL: %s" % t.show(done[0].mail if done else None))


def test_size_early_refusal():
    """The relay's limit lies between the raw size and the wire size: the
    message is refused before MAIL (SPEC 4), a permanent failure (SPEC 3:
    69), whether it was queued first or not."""
    msg = HEAD + SIZE_BODIES[0][1]
    raw, wire = len(msg), len(t.normalise(msg))
    limit = (raw + wire) // 2
    ext = ["PIPELINING", "CHUNKING", "SIZE %d" % limit, "ENHANCEDSTATUSCODES"]
    for queued, from_file, how in ((True, False, "queued"),
                                   (False, True, "queue = never, file stdin")):
        name = "SIZE limit between raw (%d) and wire (%d) size, %s" % (raw, wire, how)
        res, srv = run_size(name, msg, S(extensions=ext), queued, from_file)
        rec = srv.record
        t.is_eq(res.rc, EX_UNAVAILABLE, name + ": exit status", *res.describe())
        t.ok(b"%d" % limit in res.err, name + ": stderr names the limit",
             "stderr: %s" % t.show(res.err))
        t.is_eq([x for x in (rec.commands if rec else []) if x.startswith(b"MAIL")], [],
                name + ": no MAIL sent")


# --------------------------------------------------------------------------
# A relay that offers CHUNKING but refuses BDAT (issue 14)

# aiosmtpd with CHUNKING in its EHLO reply: 500 to BDAT, the chunk read as
# command lines (500 each), and after five unknown commands 502 and close.
AIOSMTPD = {"BDAT": not_recognised(), "EOD": not_recognised(),
            "UNKNOWN": ['500 Error: command "X" not recognized'] * 4 +
                       [seq("502 5.5.1 Too many unrecognized commands, goodbye.",
                            close())]}


def bdat_refused_case(name, rules, data, queued, from_file, exit_, connections=2):
    with ScriptedServer(extensions=EXT, rules=[rules, {}], connections=connections,
                        accept_timeout=5) as srv:
        keys, kw = {}, {}
        if queued:
            keys["queue"] = "on-failure"
            kw["env"] = t.base_env(PUSHMAIL_QUEUE_DIR=os.path.join(
                t.tmpdir(), "queue-bdat-" + re.sub(r"\W", "-", name)))
        cfg = t.write_config(port=srv.port, **keys)
        if from_file:
            kw["stdin_file"] = msg_file("bdat-%s.eml" % re.sub(r"\W", "-", name), data)
        else:
            kw["stdin"] = data
        res = t.run_pushmail(["-C", cfg, RCPT], **kw)
        srv.stop()
    info = res.describe() + ["connection %d: %s, end %s" % (
        i, t.show([x[:50] for x in r.commands]), r.end) for i, r in enumerate(srv.records)]
    t.is_eq(res.rc, exit_, name + ": exit status", *info)
    t.is_eq(srv.errors, [], name + ": scripted server ran cleanly")
    first = srv.record
    t.ok(first is not None and bdat_commands(first) and b"DATA" not in first.commands,
         name + ": BDAT tried first, no DATA on that connection", *info)
    return res, srv, info


def check_data_again(name, srv, data, info):
    """The second connection carries the message with DATA: dot-stuffed,
    intact, and no BDAT."""
    if not t.is_eq(srv.accepted, 2, name + ": a new connection for DATA", *info):
        return
    rec = srv.records[1]
    done = data_txns(rec)
    t.is_eq(bdat_commands(rec), [], name + ": no BDAT on the new connection")
    if t.is_eq(len(done), 1, name + ": delivered once, with DATA", *info):
        want = t.normalise(data)
        t.ok_intact(name, done[0].message, want)
        t.is_eq(done[0].data_raw, t.dot_stuff(want), name + ": DATA dot-stuffed")


def test_bdat_refused():
    for queued, from_file, how in ((False, True, "queue = never, file stdin"),
                                   (True, False, "queued")):
        name = "BDAT not recognised (aiosmtpd), %s" % how
        res, srv, info = bdat_refused_case(name, AIOSMTPD, MSG, queued, from_file, EX_OK)
        check_data_again(name, srv, MSG, info)
        t.is_eq(res.err, b"", name + ": nothing on stderr")
    # a stream that went out in BDAT chunks cannot be read again
    name = "BDAT not recognised (aiosmtpd), queue = never, piped stream"
    res, srv, info = bdat_refused_case(name, AIOSMTPD, MSG, False, False, EX_TEMPFAIL,
                                       connections=1)
    err = res.err.strip()
    t.ok(err and b"\n" not in err and b"BDAT" in err and b"500" in err and
         b"127.0.0.1" in err, name + ": one line on stderr naming the host, BDAT, 500",
         "stderr: %s" % t.show(res.err))
    t.is_eq(len(data_txns(srv.record)), 0, name + ": nothing delivered")
    # a relay that reads the chunks but will not take them: 502 / 504 (RFC
    # 5321 "not implemented"), three chunks
    for code in (502, 504):
        name = "BDAT answered %d on every chunk, queued" % code
        refuse = "%d 5.5.1 BDAT not implemented" % code
        res, srv, info = bdat_refused_case(name, {"BDAT": refuse, "EOD": refuse},
                                           MID_MSG, True, False, EX_OK)
        check_data_again(name, srv, MID_MSG, info)


def test_bdat_refused_queue_run():
    """Several queued messages: after the first refusal the session sends
    DATA for all of them (RSET between), on one new connection."""
    name = "queue run, BDAT not recognised"
    env = t.base_env(PUSHMAIL_QUEUE_DIR=os.path.join(t.tmpdir(), "queue-bdat-run"))
    msgs = [HEAD.replace(b"chunking test", b"run %d" % i) + b"message %d\n.dot\n" % i
            for i in range(3)]
    with ScriptedServer(extensions=EXT, connections=len(msgs),
                        rules={"MAIL": "451 4.7.1 greylisted"}) as first:
        cfg1 = queue_config(first.port)
        runs = [t.run_pushmail(["-C", cfg1, RCPT], stdin=m, env=env) for m in msgs]
        sent_at = time.monotonic()
    t.is_eq([r.rc for r in runs], [EX_OK] * len(msgs), name + ": all queued",
            *[x for r in runs for x in r.describe()])
    time.sleep(max(0.0, sent_at + 2.1 - time.monotonic()))
    with ScriptedServer(extensions=EXT, connections=3, accept_timeout=3,
                        rules=[AIOSMTPD, {}]) as srv:
        cfg2 = queue_config(srv.port)
        res = t.run_pushmail(["-C", cfg2, "-q"], env=env)
    info = res.describe() + ["connection %d: %s" % (i, t.show([x[:40] for x in r.commands]))
                             for i, r in enumerate(srv.records)]
    t.is_eq(res.rc, EX_OK, name + ": pushmail -q exit status", *info)
    t.is_eq(srv.accepted, 2, name + ": two connections: BDAT refused, then DATA", *info)
    if srv.accepted < 2:
        return
    t.is_eq(len(bdat_commands(srv.records[0])), 1, name + ": one BDAT, on the first")
    v = srv.records[1].verbs()
    t.is_eq((v.count("MAIL"), v.count("DATA"), v.count("RSET"), v.count("BDAT")),
            (3, 3, 0, 0), name + ": then MAIL/RCPT/DATA for each, no RSET, no BDAT",
            "verbs: %s" % v)
    got = sorted(x.message for x in data_txns(srv.records[1]))
    t.ok(got == sorted(t.normalise(m) for m in msgs), name + ": all three delivered intact")
    lst = t.run_pushmail(["-C", cfg2, "-bp"], env=env)
    t.ok(b"empty" in lst.out, name + ": queue empty afterwards", *lst.describe())


def main():
    t.require_pushmail()
    only = os.environ.get("CHUNKING_ONLY")
    t0 = time.monotonic()
    for c in CASES:
        if only and only not in c["name"]:
            continue
        run_case(c)
    if not only or only in "CHUNKING without PIPELINING":
        test_data_fallback()
    if not only or only in "queue runner":
        test_queue_runner()
    if not only or only in "queue runner, mixed verdicts":
        test_queue_mixed()
    if not only or only in "NUL bytes with BINARYMIME offered":
        test_binarymime()
    if not only or only in "BDAT refused":
        test_bdat_refused()
    if not only or only in "queue run, BDAT not recognised":
        test_bdat_refused_queue_run()
    if not only or only in "SIZE= exact":
        test_size_exact()
    if not only or only in "SIZE early refusal":
        test_size_early_refusal()
    t.diag("chunking.py ran in %.1fs" % (time.monotonic() - t0))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
