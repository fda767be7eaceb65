#!/usr/bin/env python3
"""smtpserver.py - a scripted SMTP server for pushmail's tests.

As a module:

    from smtpserver import ScriptedServer, raw, close, stall
    with ScriptedServer(rules={'RCPT': ['250 ok', '550 5.1.1 no such user'],
                               'EOD': ['451 4.3.0 try later']}) as srv:
        run_client(srv.port)
        srv.wait()                      # all connections handled (or srv.stop())
    rec = srv.record                    # first connection's ConnRecord

As a program (for shell tests and benchmarks):

    python3 smtpserver.py --script FILE.json --port 0 --record OUT.json
    -> prints the port on the first line of stdout, serves, writes OUT.json

The script
----------
By default the server is a well-behaved ESMTP server (see DEFAULTS).  `rules`
maps a verb to a SEQUENCE of actions: the first occurrence of the verb in a
connection gets the first action, the second the second, and the last one
repeats.  None in a sequence means "the default reply".  Verbs: GREETING,
EHLO, HELO, MAIL, RCPT, DATA, EOD (the reply to the end-of-data dot, and to
BDAT ... LAST), BDAT (non-LAST chunks), RSET, NOOP, QUIT, STARTTLS, AUTH
(also answers the client's lines after a 334), VRFY, UNKNOWN.  `rules` may also
be a list of such dicts, one per connection (the last repeats).

An action is one of:
  "250 text"            a reply; "\\n" separates the lines of a multi-line reply
  b"raw bytes"          sent exactly as given (malformed replies and the like)
  raw(b)                the same, spelled out
  slow(b, delay)        b sent one byte per write, `delay` seconds apart
  close()               close the connection without a reply
  stall(s, then=None)   stop reading and replying for s seconds (cut short when
                        the server is stopped), then do `then`, or close
  delay(s, then)        the same as stall(s, then), for slow-but-valid replies
  endless_line(limit)   an unterminated reply line of `limit` bytes, then close
  endless_continuation(limit, final=False)
                        `limit` lines "250-...", then close (or a final "250 end")
  drop_after_data(k, reply='354 ...')
                        as the DATA (or BDAT) reply: accept, read k bytes of
                        content, then close without a reply
  not_recognised(reply='500 ...')
                        as the BDAT (or EOD) action: a server that offers
                        CHUNKING but does not know BDAT (aiosmtpd): `reply` to
                        the BDAT line, then the chunk is read as command lines
  seq(a, b, ...)        several actions in a row (e.g. raw(...) then close())
  handler(fn)           computed at run time: fn(conn, line) returns one of the
                        actions above (or None for the default reply).  `line`
                        is the command line being answered (None for the
                        GREETING); `conn` is the connection: conn.state is a
                        dict private to the connection for fn's own use,
                        conn.rec its ConnRecord, conn.sock the (TLS) socket
                        (e.g. conn.sock.get_channel_binding("tls-unique")),
                        conn.tls_active, and for AUTH conn.auth_mech (bytes,
                        upper case), conn.auth_ir (the AUTH line carried an
                        initial response) and conn.auth_step (0 for the AUTH
                        line, then 1, 2, ... for the client's lines after a
                        334).  fn may also write itself with conn.send(bytes)
                        and start TLS with conn.start_tls("starttls").  Not
                        available in JSON scripts.

In a JSON script the same actions are written as: "250 text", {"raw": "..."}
(latin-1), {"slow": "...", "delay": 0.01}, {"close": true},
{"stall": 5, "then": ACTION}, {"delay": 1, "then": ACTION},
{"endless_line": 1048576}, {"endless_continuation": 100000, "final": false},
{"drop_after_data": 1000}, {"not_recognised": "500 ..."}, {"seq": [ACTION, ...]},
null.  A script file is
{"rules": {...} or [{...}, ...], "extensions": [...], "connections": N,
"hostname": "...", "tls": "starttls"|"implicit"}.

What is recorded (per connection, ConnRecord)
---------------------------------------------
commands      every line read in command mode, exactly as received minus a
              final CRLF (a bare LF ending is kept, so it shows)
segments      every chunk that recv() returned, in order (concatenated they are
              everything the client sent); TLS: decrypted chunks
replies       every chunk the server sent
transactions  one per MAIL: mail, rcpts [(line, code)], data_raw (bytes after
              354 up to and including the final ".\\r\\n", before un-stuffing),
              data_complete, message (un-stuffed, or the BDAT chunks joined),
              data_segments (recv() calls that carried DATA/BDAT content),
              bdat_chunks [(size, last)], eod_code
end           why the connection ended: "quit", "client closed",
              "server closed: ...", "timeout", "error: ..."
tls           None, "starttls" or "implicit"; tls_version; pre_tls_buffer
              (bytes the client sent after STARTTLS before the handshake)

ScriptedServer.to_json()/write_json(path) give the same with bytes as latin-1.

Every socket operation has a timeout (io_timeout), every loop a bound (bytes,
lines, lifetime), and only 127.0.0.1 is ever bound.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

try:
    import ssl
except ImportError:  # pragma: no cover - Debian's python3 always has it
    ssl = None

HOST = "127.0.0.1"
RECV_SIZE = 256 * 1024
MAX_COMMAND_LINE = 64 * 1024
MAX_SLOW_BYTES = 64 * 1024

DEFAULT_EXTENSIONS = ["PIPELINING", "SIZE 10485760", "8BITMIME",
                      "ENHANCEDSTATUSCODES"]

DEFAULTS = {
    "GREETING": "220 {host} ESMTP scripted test server",
    "EHLO": "250 {host}",          # really built from the extension list
    "HELO": "250 {host}",
    "LHLO": "250 {host}",          # LMTP: answered by the EHLO rule
    "MAIL": "250 2.1.0 Ok",
    "RCPT": "250 2.1.5 Ok",
    "DATA": "354 End data with <CR><LF>.<CR><LF>",
    "EOD": "250 2.0.0 Ok: queued as ABC",
    "BDAT": "250 2.0.0 {n} octets received",
    "RSET": "250 2.0.0 Ok",
    "NOOP": "250 2.0.0 Ok",
    "QUIT": "221 2.0.0 Bye",
    "STARTTLS": "220 2.0.0 Ready to start TLS",
    "AUTH": "235 2.7.0 Authentication successful",
    "VRFY": "252 2.0.0 Cannot VRFY user",
    "UNKNOWN": "500 5.5.2 Error: command not recognized",
}


# --------------------------------------------------------------------------
# Actions

class _ServerClose(Exception):
    """The script closes the connection (reason in args[0])."""


class _ClientGone(Exception):
    """EOF or reset from the client."""


def _code_of(data):
    if len(data) >= 3 and data[:3].isdigit():
        return int(data[:3])
    return None


class Action:
    def run(self, conn):
        raise NotImplementedError

    def to_json(self):
        raise NotImplementedError


class Reply(Action):
    def __init__(self, text):
        self.text = text

    def bytes_for(self, conn, **kw):
        text = self.text.replace("{host}", conn.server.hostname)
        for k, v in kw.items():
            text = text.replace("{%s}" % k, str(v))
        lines = text.split("\n")
        return "".join(l + "\r\n" for l in lines).encode("latin-1")

    def run(self, conn, **kw):
        data = self.bytes_for(conn, **kw)
        conn.send(data)
        return _code_of(data)

    def to_json(self):
        return self.text


class Raw(Action):
    def __init__(self, data):
        self.data = bytes(data)

    def run(self, conn, **kw):
        conn.send(self.data)
        return _code_of(self.data)

    def to_json(self):
        return {"raw": self.data.decode("latin-1")}


class Slow(Action):
    def __init__(self, data, delay=0.01):
        self.data = bytes(data)[:MAX_SLOW_BYTES]
        self.delay = min(float(delay), 1.0)

    def run(self, conn, **kw):
        for i in range(len(self.data)):
            conn.send(self.data[i:i + 1])
            if conn.server.sleep(self.delay):
                break
        return _code_of(self.data)

    def to_json(self):
        return {"slow": self.data.decode("latin-1"), "delay": self.delay}


class Close(Action):
    def run(self, conn, **kw):
        raise _ServerClose("close")

    def to_json(self):
        return {"close": True}


class Stall(Action):
    def __init__(self, seconds=30.0, then=None, name="stall"):
        self.seconds = min(float(seconds), 120.0)
        self.then = _action(then) if then is not None else None
        self.name = name

    def run(self, conn, **kw):
        conn.rec.events.append("%s %.3gs" % (self.name, self.seconds))
        conn.server.sleep(self.seconds)
        if self.then is None:
            raise _ServerClose("after %s" % self.name)
        return self.then.run(conn, **kw)

    def to_json(self):
        d = {self.name: self.seconds}
        if self.then is not None:
            d["then"] = self.then.to_json()
        return d


class EndlessLine(Action):
    def __init__(self, limit=1 << 20, prefix=b"250 "):
        self.limit = min(int(limit), 64 << 20)
        self.prefix = bytes(prefix)

    def run(self, conn, **kw):
        conn.send(self.prefix)
        sent, chunk = len(self.prefix), b"x" * 16384
        while sent < self.limit:
            n = min(len(chunk), self.limit - sent)
            conn.send(chunk[:n])
            sent += n
        raise _ServerClose("after endless line of %d bytes" % sent)

    def to_json(self):
        return {"endless_line": self.limit}


class EndlessContinuation(Action):
    def __init__(self, limit=100000, final=False, code=250):
        self.limit = min(int(limit), 10000000)
        self.final = bool(final)
        self.code = int(code)

    def run(self, conn, **kw):
        batch = []
        for i in range(self.limit):
            batch.append(b"%d-continuation line %d\r\n" % (self.code, i))
            if len(batch) >= 1000:
                conn.send(b"".join(batch))
                batch = []
        if batch:
            conn.send(b"".join(batch))
        if self.final:
            data = b"%d end\r\n" % self.code
            conn.send(data)
            return self.code
        raise _ServerClose("after %d continuation lines" % self.limit)

    def to_json(self):
        return {"endless_continuation": self.limit, "final": self.final}


class DropAfterData(Action):
    """Meaningful as the DATA or BDAT action; elsewhere it just closes."""

    def __init__(self, k, reply="354 End data with <CR><LF>.<CR><LF>"):
        self.k = int(k)
        self.reply = reply

    def run(self, conn, **kw):
        raise _ServerClose("drop_after_data outside DATA/BDAT")

    def to_json(self):
        return {"drop_after_data": self.k, "reply": self.reply}


class NotRecognised(Action):
    """Meaningful as the BDAT or EOD action; elsewhere just the reply."""

    def __init__(self, reply='500 Error: command "BDAT" not recognized'):
        self.reply = Reply(reply)

    def run(self, conn, **kw):
        return self.reply.run(conn, **kw)

    def to_json(self):
        return {"not_recognised": self.reply.text}


class Seq(Action):
    def __init__(self, *actions):
        self.actions = [_action(a) for a in actions]

    def run(self, conn, **kw):
        # The reply's code is that of the first action that sent one (a reply
        # split over several writes carries its code in the first part).
        code = None
        for a in self.actions:
            c = a.run(conn, **kw)
            if code is None:
                code = c
        return code

    def to_json(self):
        return {"seq": [a.to_json() for a in self.actions]}


class Handler(Action):
    def __init__(self, fn):
        self.fn = fn

    def run(self, conn, **kw):
        action = _action(self.fn(conn, conn.line))
        if action is None:
            action = conn.fallback or Reply("451 4.3.0 handler gave no reply")
        return action.run(conn, **kw)

    def to_json(self):
        return {"handler": getattr(self.fn, "__name__", "?")}


def raw(data):
    return Raw(data)


def slow(data, delay=0.01):
    return Slow(data, delay)


def close():
    return Close()


def stall(seconds=30.0, then=None):
    return Stall(seconds, then)


def delay(seconds, then):
    return Stall(seconds, then, name="delay")


def endless_line(limit=1 << 20):
    return EndlessLine(limit)


def endless_continuation(limit=100000, final=False):
    return EndlessContinuation(limit, final)


def drop_after_data(k, reply="354 End data with <CR><LF>.<CR><LF>"):
    return DropAfterData(k, reply)


def not_recognised(reply='500 Error: command "BDAT" not recognized'):
    return NotRecognised(reply)


def seq(*actions):
    return Seq(*actions)


def handler(fn):
    return Handler(fn)


def _action(x):
    """Normalise a Python or JSON action description into an Action (or None)."""
    if x is None or isinstance(x, Action):
        return x
    if isinstance(x, str):
        return Reply(x)
    if isinstance(x, (bytes, bytearray)):
        return Raw(x)
    if isinstance(x, dict):
        if "raw" in x:
            return Raw(x["raw"].encode("latin-1"))
        if "slow" in x:
            return Slow(x["slow"].encode("latin-1"), x.get("delay", 0.01))
        if "close" in x:
            return Close()
        if "stall" in x:
            return Stall(x["stall"], x.get("then"))
        if "delay" in x:
            return Stall(x["delay"], x.get("then"), name="delay")
        if "endless_line" in x:
            return EndlessLine(x["endless_line"])
        if "endless_continuation" in x:
            return EndlessContinuation(x["endless_continuation"],
                                       x.get("final", False))
        if "drop_after_data" in x:
            return DropAfterData(x["drop_after_data"],
                                 x.get("reply", DEFAULTS["DATA"]))
        if "not_recognised" in x:
            return NotRecognised(x["not_recognised"])
        if "seq" in x:
            return Seq(*x["seq"])
    raise ValueError("unknown action: %r" % (x,))


def _rules(d):
    out = {}
    for verb, v in (d or {}).items():
        if not isinstance(v, (list, tuple)):
            v = [v]
        out[verb.upper()] = [_action(a) for a in v]
    return out


# --------------------------------------------------------------------------
# Recording

class Transaction:
    def __init__(self, mail):
        self.mail = mail
        self.rcpts = []             # (line, code)
        self.data_raw = None        # bytes after 354 incl. ".\r\n" (DATA only)
        self.data_complete = False
        self.message = None         # un-stuffed DATA, or BDAT chunks joined
        self.data_segments = 0
        self.bdat_chunks = []       # (size, last)
        self.eod_code = None

    @property
    def accepted(self):
        return [l for l, c in self.rcpts if c is not None and c // 100 == 2]


class ConnRecord:
    def __init__(self, index):
        self.index = index
        self.commands = []
        self.segments = []
        self.replies = []
        self.transactions = []
        self.events = []
        self.end = None
        self.tls = None
        self.tls_version = None
        self.pre_tls_buffer = b""
        self.peer = None            # the client's address (source_address tests)
        self.started = time.monotonic()
        self.duration = None

    @property
    def received(self):
        return b"".join(self.segments)

    @property
    def transaction(self):
        return self.transactions[-1] if self.transactions else None

    def segment_with(self, needle):
        """Index of the first segment that contains needle (bytes), or -1."""
        for i, s in enumerate(self.segments):
            if needle in s:
                return i
        return -1

    def verbs(self):
        return [c.split(b" ", 1)[0].split(b":", 1)[0].upper().decode("latin-1")
                for c in self.commands]


def un_dot_stuff(data):
    """DATA bytes (without the final ".\\r\\n") -> message: drop one leading
    dot from each CRLF-delimited line.  Bare CR/LF are left alone."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


def _jsonable(x):
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).decode("latin-1")
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (Transaction, ConnRecord)):
        d = {k: _jsonable(v) for k, v in vars(x).items() if k != "started"}
        if isinstance(x, Transaction):
            d["accepted"] = _jsonable(x.accepted)
        return d
    return x


# --------------------------------------------------------------------------
# One connection

class _Conn:
    def __init__(self, server, sock, rec, rules):
        self.server = server
        self.sock = sock
        self.rec = rec
        self.rules = rules
        self.counters = {}
        self.buf = bytearray()
        self.greeted = False        # EHLO/HELO accepted
        self.refusing = False       # 554 greeting: only QUIT is served
        self.txn = None
        self.auth_pending = False   # last AUTH reply was 334
        self.tls_active = False
        self.state = {}             # for handler() functions
        self.line = None            # the command line being answered
        self.fallback = None        # the default reply for that line
        self.auth_mech, self.auth_step, self.auth_ir = b"", 0, False

    # -- I/O
    def send(self, data):
        if not data:
            return
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise
        except OSError as e:
            raise _ClientGone("send: %s" % e)
        self.rec.replies.append(bytes(data))

    def recv(self):
        data = self.recv_raw()
        self.buf += data
        return len(data)

    def recv_raw(self):
        """One recv(), recorded as a segment; EOF raises _ClientGone."""
        if self.server.expired():
            raise _ServerClose("server lifetime over")
        try:
            data = self.sock.recv(RECV_SIZE)
        except socket.timeout:
            raise
        except OSError as e:
            raise _ClientGone("recv: %s" % e)
        if not data:
            raise _ClientGone("client closed")
        self.rec.segments.append(data)
        return data

    def readline(self):
        scanned = 0
        while True:
            i = self.buf.find(b"\n", scanned)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                if line.endswith(b"\r\n"):
                    return line[:-2]
                return line          # bare LF kept so that it shows
            scanned = len(self.buf)
            if scanned > MAX_COMMAND_LINE:
                self.send(b"500 5.5.2 Error: line too long\r\n")
                raise _ServerClose("command line too long")
            self.recv()

    # -- script
    def pick(self, verb):
        seq_ = self.rules.get(verb)
        n = self.counters.get(verb, 0)
        self.counters[verb] = n + 1
        if not seq_:
            return None
        return seq_[min(n, len(seq_) - 1)]

    def perform(self, action, **kw):
        return action.run(self, **kw)

    def default(self, verb, **kw):
        return Reply(DEFAULTS[verb])

    # -- session
    def serve(self):
        srv = self.server
        if srv.tls == "implicit":
            self.start_tls("implicit")
        self.fallback = Reply(DEFAULTS["GREETING"])
        action = self.pick("GREETING") or self.fallback
        code = self.perform(action)
        if code is not None and code // 100 == 4:
            raise _ServerClose("after %d greeting" % code)
        if code is not None and code // 100 == 5:
            self.refusing = True      # RFC 5321 3.1: wait for QUIT
        for _ in range(100000):
            if self.auth_pending:
                line = self.readline()
                self.rec.commands.append(line)
                self.line = line
                self.do_auth(line, continuation=True)
                continue
            line = self.readline()
            self.rec.commands.append(line)
            self.line = line
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
            verb = verb.decode("latin-1").strip()
            if self.refusing and verb != "QUIT":
                self.send(b"503 5.5.1 Error: no service\r\n")
                continue
            handler = getattr(self, "do_" + verb.lower(), None)
            if verb not in DEFAULTS or handler is None:
                handler = self.do_unknown
                verb = "UNKNOWN"
            if handler(line) == "quit":
                raise _ServerClose("quit")
        raise _ServerClose("command limit")

    def simple(self, verb, fallback=None, **kw):
        self.fallback = fallback or Reply(DEFAULTS[verb])
        action = self.pick(verb) or self.fallback
        return self.perform(action, **kw)

    def do_unknown(self, line):
        self.simple("UNKNOWN")

    def do_noop(self, line):
        self.simple("NOOP")

    def do_vrfy(self, line):
        self.simple("VRFY")

    def do_rset(self, line):
        code = self.simple("RSET")
        if code is not None and code // 100 == 2:
            self.txn = None

    def do_quit(self, line):
        self.simple("QUIT")
        return "quit"

    def ehlo_reply(self, arg):
        exts = self.server.extensions_now(self.tls_active)
        lines = ["250%s%s Hello %s" % ("-" if exts else " ",
                                        self.server.hostname, arg)]
        for i, e in enumerate(exts):
            lines.append("250%s%s" % (" " if i == len(exts) - 1 else "-", e))
        return Reply("\n".join(lines))

    def do_ehlo(self, line):
        arg = line[5:].decode("latin-1")
        code = self.simple("EHLO", self.ehlo_reply(arg))
        if code is not None and code // 100 == 2:
            self.greeted, self.txn = True, None

    def do_lhlo(self, line):
        """LMTP (RFC 2033): LHLO is answered like EHLO, by the EHLO rule."""
        return self.do_ehlo(line)

    def do_helo(self, line):
        code = self.simple("HELO")
        if code is not None and code // 100 == 2:
            self.greeted, self.txn = True, None

    def do_mail(self, line):
        fallback = None
        if not self.greeted:
            fallback = Reply("503 5.5.1 Error: send HELO/EHLO first")
        elif self.txn is not None:
            fallback = Reply("503 5.5.1 Error: nested MAIL command")
        code = self.simple("MAIL", fallback)
        if code is not None and code // 100 == 2:
            self.txn = Transaction(line)
            self.rec.transactions.append(self.txn)

    def do_rcpt(self, line):
        fallback = None
        if self.txn is None:
            fallback = Reply("503 5.5.1 Error: need MAIL command")
        code = self.simple("RCPT", fallback)
        if self.txn is not None:
            self.txn.rcpts.append((line, code))

    def need_rcpt(self):
        if self.txn is None:
            return Reply("503 5.5.1 Error: need RCPT command")
        if not self.txn.accepted:
            return Reply("554 5.5.1 Error: no valid recipients")
        return None

    def do_data(self, line):
        self.fallback = self.need_rcpt() or Reply(DEFAULTS["DATA"])
        action = self.pick("DATA") or self.fallback
        txn = self.txn or Transaction(None)   # a scripted 354 without MAIL
        if isinstance(action, DropAfterData):
            self.perform(_action(action.reply))
            self.read_data(txn, drop_after=action.k)
            raise _ServerClose("dropped after %d bytes of DATA" % action.k)
        code = self.perform(action)
        if code != 354:
            return
        if txn is not self.txn:
            self.rec.transactions.append(txn)
        self.read_data(txn)
        self.end_of_data(txn)

    def read_data(self, txn, drop_after=None):
        limit = self.server.max_data
        data = bytearray(self.buf)
        self.buf = bytearray()
        txn.data_segments = 1 if data else 0
        scanned = 0
        while True:
            end = -1
            if data.startswith(b".\r\n"):
                end = 3
            else:
                i = data.find(b"\r\n.\r\n", max(0, scanned - 4))
                if i >= 0:
                    end = i + 5
            scanned = len(data)
            if drop_after is not None and len(data) >= drop_after:
                txn.data_raw = bytes(data)
                return
            if end >= 0:
                self.buf = data[end:]
                txn.data_raw = bytes(data[:end])
                txn.data_complete = True
                txn.message = un_dot_stuff(txn.data_raw[:-3])
                if drop_after is not None:
                    raise _ServerClose("dropped after the final dot")
                return
            if len(data) > limit:
                txn.data_raw = bytes(data)
                self.send(b"552 5.3.4 Error: message too large for the test server\r\n")
                raise _ServerClose("DATA over max_data")
            try:
                chunk = self.recv_raw()
            except (_ClientGone, socket.timeout):
                txn.data_raw = bytes(data)
                raise
            txn.data_segments += 1
            data += chunk

    def end_of_data(self, txn):
        self.fallback = Reply(DEFAULTS["EOD"])
        action = self.pick("EOD") or self.fallback
        txn.eod_code = self.perform(action)
        if self.txn is txn:
            self.txn = None

    def do_bdat(self, line):
        parts = line.split()
        if len(parts) not in (2, 3) or not parts[1].isdigit() or (
                len(parts) == 3 and parts[2].upper() != b"LAST"):
            self.send(b"501 5.5.4 Syntax: BDAT size [LAST]\r\n")
            return
        size, last = int(parts[1]), len(parts) == 3
        verb = "EOD" if last else "BDAT"
        action = self.pick(verb)
        refuse = self.need_rcpt()
        txn = self.txn or Transaction(None)
        if isinstance(action, DropAfterData):
            self.read_chunk(txn, min(size, action.k))
            raise _ServerClose("dropped after %d bytes of BDAT" % action.k)
        if isinstance(action, NotRecognised):
            self.perform(action)   # the chunk stays, to be read as commands
            return
        if size > self.server.max_data:
            self.send(b"552 5.3.4 Error: chunk too large for the test server\r\n")
            raise _ServerClose("BDAT over max_data")
        self.read_chunk(txn, size)
        txn.bdat_chunks.append((size, last))
        self.fallback = refuse or Reply(DEFAULTS[verb])
        if action is None:
            action = self.fallback
        code = self.perform(action, n=size)
        if last:
            txn.eod_code = code
            txn.data_complete = code is not None and code // 100 == 2
            if self.txn is txn:
                self.txn = None

    def read_chunk(self, txn, size):
        got = bytearray(self.buf[:size])
        del self.buf[:size]
        if got:
            txn.data_segments += 1
        while len(got) < size:
            self.recv()
            txn.data_segments += 1
            take = size - len(got)
            got += self.buf[:take]
            del self.buf[:take]
        txn.message = (txn.message or b"") + bytes(got)

    def do_auth(self, line, continuation=False):
        if not continuation:
            self.auth_step = 0
            parts = line.split()
            self.auth_mech = parts[1].upper() if len(parts) > 1 else b""
            self.auth_ir = len(parts) > 2
        else:
            self.auth_step += 1
        self.fallback = self.default_auth(line, continuation)
        action = self.pick("AUTH") or self.fallback
        code = self.perform(action)
        self.auth_pending = code == 334

    def default_auth(self, line, continuation):
        if continuation and line == b"*":
            return Reply("501 5.7.0 Authentication aborted")
        mech, step = self.auth_mech, self.auth_step
        if mech == b"PLAIN":
            if self.auth_ir or step >= 1:
                return Reply(DEFAULTS["AUTH"])
            return Reply("334 ")
        if mech == b"LOGIN":
            n = step + (1 if self.auth_ir else 0)
            if n == 0:
                return Reply("334 VXNlcm5hbWU6")
            if n == 1:
                return Reply("334 UGFzc3dvcmQ6")
            return Reply(DEFAULTS["AUTH"])
        return Reply("504 5.5.4 Unrecognized authentication type")

    def do_starttls(self, line):
        if self.tls_active or self.server.ssl_context is None:
            fallback = Reply("454 4.7.0 TLS not available")
        else:
            fallback = None
        code = self.simple("STARTTLS", fallback)
        if code == 220 and self.server.ssl_context is not None \
                and not self.tls_active:
            self.start_tls("starttls")

    def start_tls(self, mode):
        # RFC 3207 section 6: anything the client pipelined after STARTTLS
        # is discarded; keep it in the record so tests can see it.
        self.rec.pre_tls_buffer = bytes(self.buf)
        self.buf = bytearray()
        try:
            self.sock = self.server.ssl_context.wrap_socket(
                self.sock, server_side=True)
        except (OSError, ValueError) as e:
            raise _ServerClose("TLS handshake failed: %s" % e)
        self.tls_active = True
        self.rec.tls = mode
        self.rec.tls_version = self.sock.version()
        self.greeted, self.txn = False, None


# --------------------------------------------------------------------------
# The server

class ScriptedServer:
    """A scripted SMTP server on 127.0.0.1 in a background thread.

    rules         dict verb -> action or list of actions, or a list of such
                  dicts (one per connection, the last repeats)
    extensions    EHLO keywords (default DEFAULT_EXTENSIONS, plus STARTTLS
                  when tls == "starttls")
    tls_extensions  EHLO keywords once TLS is on (default: extensions minus
                  STARTTLS)
    connections   how many connections to serve, one after another
    ssl_context   an ssl.SSLContext for the server side; tls is "starttls"
                  or "implicit"
    io_timeout    timeout of every socket read/write
    lifetime      the whole server's bound, seconds
    max_data      bound on one DATA/BDAT, bytes
    """

    def __init__(self, rules=None, extensions=None, connections=1,
                 hostname="test.example", ssl_context=None, tls=None,
                 tls_extensions=None, io_timeout=10.0, lifetime=90.0,
                 max_data=64 << 20, port=0, accept_timeout=None):
        if isinstance(rules, (list, tuple)):
            self.rules = [_rules(r) for r in rules] or [{}]
        else:
            self.rules = [_rules(rules)]
        if tls not in (None, "starttls", "implicit"):
            raise ValueError("tls must be None, 'starttls' or 'implicit'")
        if tls and ssl_context is None:
            raise ValueError("tls needs an ssl_context")
        self.ssl_context = ssl_context
        self.tls = tls
        if extensions is None:
            extensions = list(DEFAULT_EXTENSIONS)
            if tls == "starttls":
                extensions.append("STARTTLS")
        self.extensions = list(extensions)
        self.tls_extensions = (list(tls_extensions) if tls_extensions is not None
                               else [e for e in self.extensions
                                     if e.upper() != "STARTTLS"])
        self.connections = int(connections)
        self.hostname = hostname
        self.io_timeout = float(io_timeout)
        self.lifetime = float(lifetime)
        self.accept_timeout = accept_timeout
        self.max_data = int(max_data)
        self.records = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = None
        self._deadline = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, int(port)))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]

    # -- helpers used by connections
    def extensions_now(self, tls_active):
        return self.tls_extensions if tls_active else self.extensions

    def sleep(self, seconds):
        """Sleep, cut short by stop() or the lifetime; True when cut short."""
        seconds = max(0.0, min(seconds, self._deadline - time.monotonic()))
        return self._stop.wait(seconds)

    def expired(self):
        return time.monotonic() > self._deadline

    # -- lifecycle
    def start(self):
        self._deadline = time.monotonic() + self.lifetime
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="smtpserver:%d" % self.port)
        self._thread.start()
        return self

    def _accept(self):
        end = self._deadline
        if self.accept_timeout is not None:
            end = min(end, time.monotonic() + self.accept_timeout)
        while True:
            stopping = self._stop.is_set() or time.monotonic() > end
            if stopping:
                self.sock.settimeout(0.001)   # drain one already-queued client
            try:
                return self.sock.accept()[0]
            except socket.timeout:
                if stopping:
                    return None

    def _run(self):
        try:
            for i in range(self.connections):
                s = self._accept()
                if s is None:
                    break
                rec = ConnRecord(i)
                self.records.append(rec)
                self._serve(s, rec, self.rules[min(i, len(self.rules) - 1)])
        except Exception as e:  # keep the thread's failure visible to tests
            self.errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def _serve(self, s, rec, rules):
        s.settimeout(self.io_timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rec.peer = s.getpeername()[0]
        conn = _Conn(self, s, rec, rules)
        try:
            conn.serve()
        except _ServerClose as e:
            rec.end = "quit" if e.args[0] == "quit" else "server closed: %s" % e.args[0]
        except _ClientGone as e:
            rec.end = "client closed" if "client closed" in str(e) else str(e)
        except socket.timeout:
            rec.end = "timeout"
        except Exception as e:
            rec.end = "error: %s: %s" % (type(e).__name__, e)
            self.errors.append(rec.end)
        finally:
            rec.duration = time.monotonic() - rec.started
            try:
                conn.sock.close()
            except OSError:
                pass

    def wait(self, timeout=20.0):
        """Wait until every connection has been served; True when done."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def stop(self, timeout=20.0):
        """Stop accepting (one already-queued connection is still served),
        cut stalls short, and wait for the thread."""
        self._stop.set()
        return self.wait(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- results
    @property
    def record(self):
        return self.records[0] if self.records else None

    @property
    def accepted(self):
        return len(self.records)

    def messages(self):
        return [t.message for r in self.records for t in r.transactions
                if t.data_complete]

    def to_json(self):
        return {"port": self.port, "errors": self.errors,
                "connections": _jsonable(self.records)}

    def write_json(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=1)
            f.write("\n")


# --------------------------------------------------------------------------
# TLS helpers (certtool from gnutls-bin)

def make_cert(directory, cn="localhost"):
    """Create a self-signed key and certificate for cn / 127.0.0.1 in
    directory; returns (certfile, keyfile)."""
    key = os.path.join(directory, "key.pem")
    cert = os.path.join(directory, "cert.pem")
    tmpl = os.path.join(directory, "cert.tmpl")
    with open(tmpl, "w") as f:
        f.write('cn = "%s"\ndns_name = "%s"\nip_address = "127.0.0.1"\n'
                "expiration_days = 30\ntls_www_server\nsigning_key\n"
                "encryption_key\nca\ncert_signing_key\n" % (cn, cn))
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa",
                    "--outfile", key], check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key,
                    "--template", tmpl, "--outfile", cert], check=True,
                   timeout=30, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return cert, key


def server_context(certfile, keyfile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


# --------------------------------------------------------------------------
# Command line

def main(argv=None):
    ap = argparse.ArgumentParser(description="scripted SMTP server (127.0.0.1)")
    ap.add_argument("--script", help="JSON script file")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--record", help="write the recording here (JSON)")
    ap.add_argument("--connections", type=int)
    ap.add_argument("--lifetime", type=float, default=300.0)
    ap.add_argument("--io-timeout", type=float, default=30.0)
    ap.add_argument("--tls", choices=["starttls", "implicit"])
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    a = ap.parse_args(argv)

    script = {}
    if a.script:
        with open(a.script, encoding="utf-8") as f:
            script = json.load(f)
    tls = a.tls or script.get("tls")
    ctx = None
    if tls:
        if not (a.tls_cert and a.tls_key):
            ap.error("--tls needs --tls-cert and --tls-key")
        ctx = server_context(a.tls_cert, a.tls_key)
    srv = ScriptedServer(
        rules=script.get("rules"), extensions=script.get("extensions"),
        tls_extensions=script.get("tls_extensions"),
        connections=a.connections or script.get("connections", 1),
        hostname=script.get("hostname", "test.example"),
        ssl_context=ctx, tls=tls, io_timeout=a.io_timeout,
        lifetime=a.lifetime, port=a.port)

    def on_signal(signum, frame):
        srv._stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(srv.port, flush=True)
    srv.start()
    while not srv.wait(0.2):
        pass
    if a.record:
        srv.write_json(a.record)
    return 1 if srv.errors else 0


if __name__ == "__main__":
    sys.exit(main())
