#!/usr/bin/env python3
"""A TCP proxy that adds a fixed one-way delay to every chunk, both ways.

Used by bench/run to count SMTP round trips (SPEC 8); Python 3 standard
library only, loopback only.

    with DelayProxy(upstream_port, delay=0.050) as px:
        ... connect clients to 127.0.0.1:px.port ...
        px.reset(); run one client; st = px.stats()

Model: whatever the proxy reads from one side at time t is written to the
other side at t + delay, in order (a pure latency; no bandwidth limit, no
reordering, chunks are not merged).  The client's TCP handshake with the proxy
and the proxy's with the server are local and immediate, so a connection's
first round trip is "connect + greeting": the greeting arrives one one-way
delay (half an RTT) after connect() returns.  A client that waits for every
reply therefore needs (n + 0.5) RTT of wall time for n request/response
exchanges after the greeting (see bench/README).

Flights: a client->server flight starts when the client sends data for the
first time on a connection, or sends after the proxy has delivered server
data to it since its previous send.  The flag is set just before the server
data is written to the client, so a reply can never be missed; a client that
sends something unprompted while a reply is being delivered could at worst be
counted one flight too many.

Standalone (runs for at most an hour):
    delayproxy.py LISTEN_PORT UPSTREAM_PORT [ONE_WAY_MS]
"""

import contextlib
import queue
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
IO_TIMEOUT = 300.0     # no single recv/send may block longer than this
CHUNK = 65536


class _Conn:
    def __init__(self, proxy, client):
        self.proxy = proxy
        self.client = client
        self.upstream = None
        self.lock = threading.Lock()
        self.flights = 0
        self.sent_yet = False          # client has sent data on this connection
        self.got_reply = False         # server data delivered since last client send
        self.c2s_bytes = 0
        self.s2c_bytes = 0
        self.t_accept = time.monotonic()
        self.t_close = None
        self._done = 0

    def start(self):
        try:
            self.upstream = socket.create_connection(self.proxy.upstream, timeout=10)
        except OSError:
            self.client.close()
            return
        for s in (self.client, self.upstream):
            s.settimeout(IO_TIMEOUT)
            with contextlib.suppress(OSError):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for src, dst, up in ((self.client, self.upstream, True),
                             (self.upstream, self.client, False)):
            q = queue.Queue()
            threading.Thread(target=self._reader, args=(src, q, up), daemon=True).start()
            threading.Thread(target=self._writer, args=(dst, q, up), daemon=True).start()

    def _reader(self, src, q, up):
        delay = self.proxy.delay
        while True:
            try:
                data = src.recv(CHUNK)
            except OSError:
                data = b""
            due = time.monotonic() + delay
            if not data:
                q.put((due, None))
                return
            if up:
                with self.lock:
                    if not self.sent_yet or self.got_reply:
                        self.flights += 1
                    self.sent_yet = True
                    self.got_reply = False
                    self.c2s_bytes += len(data)
            else:
                with self.lock:
                    self.s2c_bytes += len(data)
            q.put((due, data))

    def _writer(self, dst, q, up):
        broken = False
        while True:
            try:
                due, data = q.get(timeout=IO_TIMEOUT)
            except queue.Empty:
                data = None
                due = 0
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if data is None:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                break
            if broken:
                continue           # keep draining so the reader never blocks
            if not up:
                with self.lock:
                    self.got_reply = True
            try:
                dst.sendall(data)
            except OSError:
                broken = True
        with self.lock:
            self._done += 1
            last = self._done == 2
        if last:
            self.t_close = time.monotonic()
            for s in (self.client, self.upstream):
                with contextlib.suppress(OSError):
                    s.close()


class DelayProxy:
    """Listen on 127.0.0.1:port (ephemeral unless given), forward each
    connection to 127.0.0.1:upstream_port, delaying each chunk by `delay`
    seconds in each direction."""

    def __init__(self, upstream_port, delay=0.050, port=0):
        self.upstream = (HOST, upstream_port)
        self.delay = float(delay)
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((HOST, port))
        self._lsock.listen(64)
        self.port = self._lsock.getsockname()[1]
        self._conns = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def _accept_loop(self):
        self._lsock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                c, _ = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn = _Conn(self, c)
            with self._lock:
                self._conns.append(conn)
            conn.start()

    def start(self):
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        with contextlib.suppress(OSError):
            self._lsock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def reset(self):
        """Forget connections seen so far (call before each measured run)."""
        with self._lock:
            self._conns = []

    def stats(self, settle=2.0):
        """Totals over the connections since reset(): connections, flights,
        bytes each way.  Waits up to `settle` seconds for them to close."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            with self._lock:
                if all(c.t_close is not None for c in self._conns):
                    break
            time.sleep(0.01)
        with self._lock:
            conns = list(self._conns)
        return {"connections": len(conns),
                "flights": sum(c.flights for c in conns),
                "c2s_bytes": sum(c.c2s_bytes for c in conns),
                "s2c_bytes": sum(c.s2c_bytes for c in conns)}


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 64
    delay = (float(argv[3]) if len(argv) == 4 else 50.0) / 1000.0
    with DelayProxy(int(argv[2]), delay, port=int(argv[1])) as px:
        print("127.0.0.1:%d -> 127.0.0.1:%s, one-way delay %.0f ms (Ctrl-C stops)"
              % (px.port, argv[2], delay * 1000), flush=True)
        printed = set()
        end = time.monotonic() + 3600      # a manual tool, but bounded: 1 hour
        try:
            while time.monotonic() < end:
                time.sleep(0.5)
                with px._lock:
                    done = [c for c in px._conns if c.t_close is not None and id(c) not in printed]
                for c in done:
                    printed.add(id(c))
                    print("connection: %.3f s, %d client flights, %d bytes up, %d down"
                          % (c.t_close - c.t_accept, c.flights, c.c2s_bytes, c.s2c_bytes),
                          flush=True)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
