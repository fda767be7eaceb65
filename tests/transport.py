#!/usr/bin/env python3
"""transport.py - reaching the relay (issue 16): source_address, ip_version
with Happy Eyeballs (RFC 8305), LMTP (RFC 2033) over TCP and unix sockets,
SOCKS5 proxies (RFC 1928, RFC 1929 username/password).

Everything talks to 127.0.0.1/::1 only.
  * Happy Eyeballs: a host name put in a throwaway /etc/hosts (bind-mounted
    in a private mount namespace, `unshare -m`) resolves to ::1 first, then
    127.0.0.1.  On [::1]:P sits a listener whose accept queue is full, so a
    connection there never answers (the kernel drops the SYNs, like a broken
    IPv6 route); on 127.0.0.1:P the scripted server.  pushmail must start
    the IPv4 attempt while the IPv6 one is still pending (-v shows both), and
    deliver.
  * source_address: the scripted server records the peer (127.0.0.2), and
    Postfix logs "connect from localhost[127.0.0.2]".
  * LMTP: the scripted server answering LHLO and one reply per recipient
    after the data; Dovecot LMTP (dovecot-lmtpd) on a unix socket delivering
    to a throwaway Maildir.
  * SOCKS5: danted (dante-server) in front of the test Postfix: with
    `socksmethod: none` over STARTTLS and implicit TLS, and with
    `socksmethod: username` (RFC 1929 against a system user that the test
    makes with useradd/chpasswd and removes with userdel); a scripted SOCKS5
    server in Python checks the exact bytes of the exchange (method offer,
    RFC 1929 request, CONNECT request) and plays every failure reply.

Parts whose package (unshare, Postfix, Dovecot, danted, certtool) is missing
or that need root are skipped unless CI=true, where they fail.
"""

import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402
from smtpserver import ScriptedServer, raw  # noqa: E402

EX_OK, EX_NOUSER, EX_UNAVAILABLE, EX_TEMPFAIL = 0, 67, 69, 75
EX_PROTOCOL, EX_NOPERM, EX_CONFIG = 76, 77, 78
CI = os.environ.get("CI") == "true"
RCPT = "rcpt@example.org"
MSG = b"From: sender@example.com\nTo: rcpt@example.org\nSubject: transport\n\nHello.\n"


def missing(what):
    """A prerequisite is missing: skip here, fail in CI."""
    if CI:
        t.ok(False, "prerequisite: %s" % what)
    else:
        t.skip("prerequisite", what)


def delivered(srv):
    rec = srv.record if srv.records else None
    return [x for x in rec.transactions if x.data_complete] if rec else []


# --------------------------------------------------------------------------
# A. configuration values: EX_CONFIG naming the key's line

BAD_VALUES = [
    ("proxy", "socks4://127.0.0.1:1080"),
    ("proxy", "socks5://127.0.0.1"),
    ("proxy", "http://127.0.0.1:3128"),
    ("source_address", "127.0.0.300"),
    ("source_address", "localhost"),
    ("ip_version", "5"),
    ("protocol", "esmtp"),
]


def part_config():
    for key, value in BAD_VALUES:
        cfg = t.write_config(port=25, **{key: value})
        res = t.run_pushmail(["-C", cfg, RCPT], stdin=MSG, env=t.base_env())
        name = "%s = %s" % (key, value)
        t.is_eq(res.rc, EX_CONFIG, name + ": exit 78", *res.describe())
        # the key is the last line written (after CONFIG_DEFAULTS and port)
        line = len(open(cfg).read().splitlines())
        t.ok(re.search(r"config-\d+\.ini:%d: bad value .*'%s' \(expected" % (line, key),
                       res.err.decode("latin-1")),
             name + ": the message names the file, line %d, the key and what "
             "it takes" % line,
             *res.describe())
    # the address families must agree
    with ScriptedServer() as srv:
        cfg = t.write_config(port=srv.port, source_address="::1", ip_version="4")
        res = t.run_pushmail(["-C", cfg, RCPT], stdin=MSG, env=t.base_env())
    t.is_eq(res.rc, EX_CONFIG, "source_address ::1 with ip_version 4: exit 78",
            *res.describe())
    t.ok(b"ip_version" in res.err and b"source_address" in res.err,
         "source_address ::1 with ip_version 4: says why", *res.describe())
    t.is_eq(len(srv.records), 0, "source_address ::1 with ip_version 4: nothing connected")


# --------------------------------------------------------------------------
# B. source_address, ip_version and Happy Eyeballs

def part_source():
    with ScriptedServer() as srv:
        cfg = t.write_config(port=srv.port, source_address="127.0.0.2")
        res = t.run_pushmail(["-C", cfg, RCPT], stdin=MSG, env=t.base_env())
        srv.wait()
    t.is_eq(res.rc, EX_OK, "source_address 127.0.0.2: exit 0", *t.server_diag(res, srv))
    t.is_eq(srv.record.peer if srv.records else None, "127.0.0.2",
            "source_address 127.0.0.2: the relay saw the connection from 127.0.0.2")
    t.is_eq(len(delivered(srv)), 1, "source_address 127.0.0.2: delivered")
    # an address this host does not have: bind fails before any packet leaves
    with ScriptedServer() as srv:
        cfg = t.write_config(port=srv.port, source_address="192.0.2.10")
        res = t.run_pushmail(["-C", cfg, RCPT], stdin=MSG, env=t.base_env())
    t.is_eq(res.rc, EX_CONFIG, "source_address 192.0.2.10 (not ours): exit 78",
            *res.describe())
    t.ok(b"192.0.2.10" in res.err and b"bind" in res.err,
         "source_address 192.0.2.10: says it cannot bind", *res.describe())


class Blackhole:
    """A listener on [::1]:port whose accept queue is full: connections to it
    hang in SYN-SENT (the kernel drops their SYNs) until the client gives up."""

    def __init__(self, port, host="::1", family=socket.AF_INET6):
        self.port = port
        self.lsock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET6:
            self.lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(0)
        port = self.port = self.lsock.getsockname()[1]
        self.filler = socket.socket(family, socket.SOCK_STREAM)
        self.filler.settimeout(2)
        self.filler.connect((host, port))    # fills the queue (never accepted)
        probe = socket.socket(family, socket.SOCK_STREAM)
        probe.setblocking(False)
        try:
            probe.connect((host, port))
        except BlockingIOError:
            pass
        _, w, _ = select.select([], [probe], [], 0.5)
        self.works = not w          # the probe must still be pending
        probe.close()

    def close(self):
        self.filler.close()
        self.lsock.close()


def in_namespace(hosts_text, args, env):
    """Run pushmail with /etc/hosts replaced, in a private mount namespace."""
    path = os.path.join(t.tmpdir(), "hosts")
    with open(path, "w") as f:
        f.write(hosts_text)
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return t.run(["unshare", "-m", "sh", "-c", script, path, t.PUSHMAIL] + args,
                 stdin=MSG, env=env, timeout=40)


def namespaces_work():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10)
    return r.returncode == 0


HOSTS = "::1 he.test\n127.0.0.1 he.test\n"


def part_happy_eyeballs():
    if not namespaces_work():
        missing("root and unshare -m for a throwaway /etc/hosts")
        return
    bh = Blackhole(0)
    if not bh.works:
        bh.close()
        missing("a full accept queue on ::1 that leaves connections pending")
        return
    try:
        he_run(bh, bh.lsock.getsockname()[1])
    finally:
        bh.close()


def he_interleave(port):
    """RFC 8305 4: two IPv6 addresses before the IPv4 one are tried IPv6,
    IPv4, IPv6, so two dead IPv6 addresses cost one attempt delay."""
    hosts = "::1 he.test\n::1 he2.test he.test\n127.0.0.1 he.test\n"
    with ScriptedServer(port=port) as srv:
        cfg = t.write_config(port=port, host="he.test", timeout="4")
        res = in_namespace(hosts, ["-v", "-C", cfg, RCPT], t.base_env())
        srv.wait()
    err = res.err.decode("latin-1")
    t.is_eq(res.rc, EX_OK, "Happy Eyeballs, ::1 ::1 127.0.0.1: exit 0",
            *t.server_diag(res, srv))
    t.is_eq(re.findall(r"trying (\S+)", err)[:2], ["::1", "127.0.0.1"],
            "Happy Eyeballs, ::1 ::1 127.0.0.1: families interleaved "
            "(IPv4 second, not third)", *res.describe())


def socks_next_address():
    """socks5:// (pushmail resolves): when the proxy says the first address
    is unreachable or refused, the next goes in a new request."""
    hosts = "::1 two.test\n127.0.0.1 two.test\n"
    with ScriptedServer() as srv:
        with Socks5Proxy(srv.port, rep=[5, 0]) as px:
            cfg = t.write_config(port=srv.port, host="two.test",
                                 proxy="socks5://127.0.0.1:%d" % px.port)
            res = in_namespace(hosts, ["-v", "-C", cfg, RCPT], t.base_env())
            srv.wait()
    info = t.server_diag(res, srv) + ["proxy requests %s" % px.requests]
    t.is_eq(res.rc, EX_OK, "socks5, first address refused by the proxy: exit 0", *info)
    t.is_eq(px.requests, [(1, 4, "::1", srv.port), (1, 1, "127.0.0.1", srv.port)],
            "socks5, first address refused: the next address in a new request", *info)
    t.is_eq(len(delivered(srv)), 1, "socks5, first address refused: delivered", *info)
    with ScriptedServer() as srv:
        with Socks5Proxy(srv.port, rep=[2]) as px:
            cfg = t.write_config(port=srv.port, host="two.test",
                                 proxy="socks5://127.0.0.1:%d" % px.port)
            res = in_namespace(hosts, ["-C", cfg, RCPT], t.base_env())
    t.is_eq(res.rc, EX_NOPERM, "socks5, not allowed by ruleset: exit 77",
            *res.describe())
    t.is_eq(len(px.requests), 1, "socks5, not allowed by ruleset: no second request",
            "requests %s" % px.requests)


def he_run(bh, port):
    socks_next_address()
    he_interleave(port)
    def server():
        return ScriptedServer(port=port)
    for name, keys, want, must, must_not in [
        ("Happy Eyeballs (ip_version any)", {}, EX_OK,
         [r"trying ::1\n", r"trying 127\.0\.0\.1 \(the attempts before it have not "
          r"answered yet and go on\)", r"connected to 127\.0\.0\.1 port %d \(IPv4\)" % port],
         []),
        ("ip_version = 4", {"ip_version": "4"}, EX_OK,
         [r"connected to 127\.0\.0\.1 port %d \(IPv4\)" % port], [r"trying ::1"]),
        ("ip_version = 6", {"ip_version": "6"}, EX_TEMPFAIL,
         [r"trying ::1", r"cannot connect to he\.test port %d: Connection timed out" % port],
         [r"trying 127"]),
    ]:
        with server() as srv:
            cfg = t.write_config(port=port, host="he.test", timeout="4", **keys)
            res = in_namespace(HOSTS, ["-v", "-C", cfg, RCPT], t.base_env())
            if want == EX_OK:
                srv.wait()
        err = res.err.decode("latin-1")
        t.is_eq(res.rc, want, name + ": exit %d" % want, *t.server_diag(res, srv))
        if not keys:
            t.is_eq(re.findall(r"trying (\S+)", err), ["::1", "127.0.0.1"],
                    name + ": ::1, then 127.0.0.1 while ::1 is still pending",
                    *res.describe())
        t.is_eq(len(delivered(srv)), 1 if want == EX_OK else 0,
                name + ": %s" % ("delivered" if want == EX_OK else "nothing delivered"))
        for m in must:
            t.ok(re.search(m, err), name + ": -v shows /%s/" % m, *res.describe())
        for m in must_not:
            t.ok(not re.search(m, err), name + ": -v does not show /%s/" % m,
                 *res.describe())


# --------------------------------------------------------------------------
# C. LMTP (RFC 2033) against the scripted server: LHLO, and one reply per
#    accepted recipient after the data

R1, R2 = "one@example.org", "two@example.org"
LMTP_CASES = [
    # name, rules, extra keys, exit, delivered-by-server, stderr must match
    ("LMTP: both delivered", {"EOD": raw(
        b"250 2.0.0 <one@example.org> Saved\r\n"
        b"250 2.0.0 <two@example.org> Saved\r\n")}, {}, EX_OK, None),
    ("LMTP: one refused after the data", {"EOD": raw(
        b"250 2.0.0 <one@example.org> Saved\r\n"
        b"452 4.2.2 <two@example.org> Mailbox is full\r\n")}, {}, EX_TEMPFAIL,
     r"452 4\.2\.2 <two@example\.org> Mailbox is full"),
    ("LMTP: one refused after the data, partial_delivery", {"EOD": raw(
        b"250 2.0.0 <one@example.org> Saved\r\n"
        b"452 4.2.2 <two@example.org> Mailbox is full\r\n")},
     {"partial_delivery": "yes"}, EX_OK, r"1 of 2 recipient.*<two@example\.org>: 452"),
    ("LMTP: both refused after the data", {"EOD": raw(
        b"550 5.1.1 <one@example.org> gone\r\n"
        b"452 4.2.2 <two@example.org> Mailbox is full\r\n")},
     {"partial_delivery": "yes"}, EX_UNAVAILABLE, r"550 5\.1\.1 <one@example\.org> gone"),
    # a recipient refused at RCPT is owed no reply after the data: a client
    # that waited for two would time out (75) instead of finishing
    ("LMTP: one refused at RCPT, partial_delivery", {"RCPT": ["250 2.1.5 ok",
                                                          "550 5.1.1 no such user"]},
     {"partial_delivery": "yes"}, EX_OK, r"<two@example\.org>: 550"),
]


def part_lmtp_scripted():
    for name, rules, keys, want, err_re in LMTP_CASES:
        with ScriptedServer(rules=rules) as srv:
            cfg = t.write_config(port=srv.port, protocol="lmtp", timeout="5", **keys)
            res = t.run_pushmail(["-C", cfg, R1, R2], stdin=MSG, env=t.base_env())
            srv.wait()
        rec = srv.record if srv.records else None
        cmds = rec.commands if rec else []
        t.is_eq(res.rc, want, name + ": exit %d" % want, *t.server_diag(res, srv))
        t.ok(cmds and cmds[0].startswith(b"LHLO ") and
             not any(c.startswith((b"EHLO", b"HELO")) for c in cmds),
             name + ": LHLO, never EHLO or HELO", "commands: %s" % t.show(cmds))
        t.ok(b"BDAT" not in b" ".join(cmds), name + ": DATA, not BDAT")
        if err_re:
            t.ok(re.search(err_re, res.err.decode("latin-1")),
                 name + ": stderr shows /%s/" % err_re, *res.describe())
        t.ok(rec is not None and rec.end == "quit", name + ": QUIT after the replies",
             "end: %s" % (rec.end if rec else None))


# --------------------------------------------------------------------------
# D. Dovecot LMTP on a unix socket, delivering to a throwaway Maildir

def part_lmtp_dovecot():
    try:
        import postfixlib
    except ImportError as e:
        missing("tests/postfixlib.py: %s" % e)
        return
    lmtp = shutil.which("dovecot") and os.path.exists("/usr/lib/dovecot/lmtp")
    if os.geteuid() != 0 or not lmtp:
        missing("root and Dovecot LMTP (dovecot-lmtpd)")
        return
    os.chmod(t.tmpdir(), 0o711)   # Dovecot's users reach their files below it
    tmp = os.path.join(t.tmpdir(), "lmtp")
    os.makedirs(tmp)
    os.chmod(tmp, 0o711)
    sock = os.path.join(tmp, "lmtp.sock")
    dv = DovecotLmtp(postfixlib, tmp, sock, ["alice"])
    try:
        dv.start()
    except postfixlib.PostfixError as e:
        t.ok(False, "Dovecot LMTP starts", *str(e).splitlines())
        return
    try:
        lmtp_dovecot_cases(dv, sock)
    finally:
        dv.stop()


def DovecotLmtp(postfixlib, tmp, sock, users):
    """DovecotAuth re-configured: no auth listener for Postfix, an LMTP unix
    listener at sock, users (uid nobody) with Maildirs under tmp."""
    import pwd

    class _Lmtp(postfixlib.DovecotAuth):
        def _config(self):
            nb = pwd.getpwnam("nobody")
            self.mailroot = os.path.join(self.root, "mail")
            return "\n".join([
                "# written by tests/transport.py: LMTP delivery only",
                "base_dir = %s" % self.base_dir,
                "state_dir = %s" % self.state_dir,
                "log_path = %s" % self.log,
                "info_log_path = %s" % self.log,
                "protocols = lmtp",
                "ssl = no",
                "listen = 127.0.0.1",
                "default_login_user = %s" % self._user("dovenull", "nobody"),
                "default_internal_user = %s" % self._user("dovecot", "nobody"),
                "postmaster_address = postmaster@test.example",
                "mail_location = maildir:%s/%%n/Maildir" % self.mailroot,
                "first_valid_uid = %d" % nb.pw_uid,
                "passdb {",
                "  driver = static",
                "  args = nopassword=y",
                "}",
                "userdb {",
                "  driver = passwd-file",
                "  args = username_format=%%n %s" % self.passwd,
                "}",
                "service lmtp {",
                "  unix_listener %s {" % self.socket_path,
                "    mode = 0666",
                "  }",
                "}",
                "",
            ])

        def start(self):
            nb = pwd.getpwnam("nobody")
            os.makedirs(self.root, exist_ok=True)
            mailroot = os.path.join(self.root, "mail")
            os.makedirs(mailroot, exist_ok=True)
            os.chown(mailroot, nb.pw_uid, nb.pw_gid)
            # userdb lines: user:password:uid:gid:gecos:home:shell
            self.users = {}
            res = super().start()
            return res

    dv = _Lmtp(tmp, sock, {}, socket_owner="root", socket_group="root")
    nb = pwd.getpwnam("nobody")
    dv.userdb_lines = ["%s::%d:%d::%s::" % (u, nb.pw_uid, nb.pw_gid,
                                          os.path.join(dv.root, "mail", u))
                       for u in users]
    orig_start = dv.start

    def start():
        os.makedirs(dv.root, exist_ok=True)
        res = None
        # the passwd file is written by DovecotAuth.start from self.users;
        # write ours after it, before dovecot reads it (it reads at lookup)
        res = orig_start()
        with open(dv.passwd, "w") as f:
            f.write("\n".join(dv.userdb_lines) + "\n")
        return res
    dv.start = start
    return dv


def maildir_files(dv, user):
    new = os.path.join(dv.root, "mail", user, "Maildir", "new")
    try:
        return [os.path.join(new, f) for f in sorted(os.listdir(new))]
    except OSError:
        return []


def lmtp_dovecot_cases(dv, sock):
    good, bad = "alice@test.example", "nobody-here@test.example"
    # host = /path: protocol lmtp, tls defaults to off for a unix socket
    cfg = t.write_config(host=sock, protocol="lmtp", tls=None, timeout="10")
    res = t.run_pushmail(["-C", cfg, good], stdin=MSG, env=t.base_env())
    t.is_eq(res.rc, EX_OK, "Dovecot LMTP (host = socket path): exit 0", *res.describe(),
            *dv.log_tail().splitlines())
    files = maildir_files(dv, "alice")
    t.is_eq(len(files), 1, "Dovecot LMTP: one message in alice's Maildir")
    if files:
        body = open(files[0], "rb").read()
        t.ok(b"Subject: transport" in body and b"Hello." in body,
             "Dovecot LMTP: the message arrived whole", t.show(body))
    # one accepted, one refused (unknown user, at RCPT): all or nothing by default
    cfg = t.write_config(host=None, socket=sock, protocol="lmtp", tls=None, timeout="10")
    res = t.run_pushmail(["-C", cfg, good, bad], stdin=MSG, env=t.base_env())
    t.is_eq(res.rc, EX_NOUSER, "Dovecot LMTP, one unknown recipient: exit 67",
            *res.describe())
    t.is_eq(len(maildir_files(dv, "alice")), 1,
            "Dovecot LMTP, one unknown recipient: nothing more delivered")
    cfg = t.write_config(host=None, socket=sock, protocol="lmtp", tls=None, timeout="10",
                         partial_delivery="yes")
    res = t.run_pushmail(["-C", cfg, good, bad], stdin=MSG, env=t.base_env())
    t.is_eq(res.rc, EX_OK, "Dovecot LMTP, one unknown recipient, partial_delivery: exit 0",
            *res.describe())
    t.ok(b"nobody-here@test.example" in res.err,
         "Dovecot LMTP, partial_delivery: stderr names the refused recipient",
         *res.describe())
    t.is_eq(len(maildir_files(dv, "alice")), 2,
            "Dovecot LMTP, partial_delivery: alice got it")
    # user and password set, auth = auto: Dovecot's LMTP offers no AUTH, so
    # none is tried (and no TLS or allow_plaintext_auth is needed)
    cfg = t.write_config(host=sock, protocol="lmtp", tls=None, auth=None, timeout="10",
                         user="alice", password="not-needed")
    res = t.run_pushmail(["-v", "-C", cfg, good], stdin=MSG, env=t.base_env())
    t.is_eq(res.rc, EX_OK, "Dovecot LMTP with user set, no AUTH offered: exit 0",
            *res.describe())
    t.ok(b"offers no AUTH" in res.err and b"-> AUTH" not in res.err,
         "Dovecot LMTP with user set: AUTH is not attempted", *res.describe())
    t.is_eq(len(maildir_files(dv, "alice")), 3, "Dovecot LMTP with user set: delivered")
    # --host /path on the command line: a socket too, tls off by default
    cfg = t.write_config(host="127.0.0.1", port="587", protocol="lmtp", tls=None,
                         timeout="10")
    res = t.run_pushmail(["-C", cfg, "--host", sock, good], stdin=MSG, env=t.base_env())
    t.is_eq(res.rc, EX_OK, "--host socket path: exit 0 (no TLS asked of the socket)",
            *res.describe())
    t.is_eq(len(maildir_files(dv, "alice")), 4, "--host socket path: delivered")
    # a socket nobody listens on
    cfg = t.write_config(host=sock + ".none", protocol="lmtp", tls=None)
    res = t.run_pushmail(["-C", cfg, good], stdin=MSG, env=t.base_env())
    t.is_eq(res.rc, EX_TEMPFAIL, "unix socket nobody listens on: exit 75", *res.describe())


# --------------------------------------------------------------------------
# E. SOCKS5 against a scripted proxy: the exact bytes of the exchange, RFC 1929
#    authentication, and every failure reply

class Socks5Proxy:
    """A scripted SOCKS5 server on 127.0.0.1 (one client at a time, at most
    `connections`).  It records the client's method offer, RFC 1929 request
    and CONNECT request, answers as told, and on success connects to
    127.0.0.1:relay_port (whatever the request named: names are mapped
    here, as a proxy that resolves them would) and relays bytes both ways.

    auth      None: method 0 (no authentication); (user, password): method 2
              and that pair is the only one accepted
    rep       the REP code of the CONNECT reply (0 succeeds), or a list of
              them, one per connection (the last repeats)
    garbage   bytes sent instead of the method reply (not a SOCKS5 proxy)"""

    def __init__(self, relay_port, auth=None, rep=0, garbage=None, connections=4):
        self.relay_port, self.auth, self.rep, self.garbage = relay_port, auth, rep, garbage
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = connections
        self.offers, self.auths, self.requests, self.errors = [], [], [], []
        self.relayed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)
        self.sock.close()

    def _run(self):
        served, end = 0, time.monotonic() + 60
        while served < self.connections and not self._stop.is_set() \
                and time.monotonic() < end:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            served += 1
            c.settimeout(10)
            try:
                self._serve(c)
            except Exception as e:   # recorded, shown by the failing check
                self.errors.append("%s: %s" % (type(e).__name__, e))
            finally:
                c.close()

    @staticmethod
    def _read(c, n):
        b = b""
        while len(b) < n:
            chunk = c.recv(n - len(b))
            if not chunk:
                raise EOFError("client closed")
            b += chunk
        return b

    def _serve(self, c):
        head = self._read(c, 2)
        offer = head + self._read(c, head[1])
        self.offers.append(offer)
        if self.garbage is not None:
            c.sendall(self.garbage)
            return
        if self.auth is None:
            c.sendall(b"\x05\x00" if 0 in offer[2:] else b"\x05\xff")
        elif 2 not in offer[2:]:
            c.sendall(b"\x05\xff")
            return
        else:
            c.sendall(b"\x05\x02")
            ver, ulen = self._read(c, 2)
            user = self._read(c, ulen)
            plen = self._read(c, 1)[0]
            pw = self._read(c, plen)
            self.auths.append(bytes([ver, ulen]) + user + bytes([plen]) + pw)
            good = (user.decode(), pw.decode()) == tuple(self.auth)
            c.sendall(b"\x01\x00" if good else b"\x01\x01")
            if not good:
                return
        req = self._read(c, 4)
        atyp = req[3]
        if atyp == 1:
            addr = socket.inet_ntop(socket.AF_INET, self._read(c, 4))
        elif atyp == 4:
            addr = socket.inet_ntop(socket.AF_INET6, self._read(c, 16))
        else:
            addr = self._read(c, self._read(c, 1)[0]).decode()
        port = struct.unpack("!H", self._read(c, 2))[0]
        self.requests.append((req[1], atyp, addr, port))
        reps = self.rep if isinstance(self.rep, list) else [self.rep]
        rep = reps[min(len(self.requests), len(reps)) - 1]
        if rep != 0:
            c.sendall(bytes([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]))
            return
        up = socket.create_connection(("127.0.0.1", self.relay_port), timeout=10)
        c.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", 4242))
        self._relay(c, up)

    def _relay(self, a, b):
        end = time.monotonic() + 30
        try:
            while time.monotonic() < end and not self._stop.is_set():
                r, _, _ = select.select([a, b], [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
                    self.relayed += len(data)
        finally:
            b.close()


def socks_case(name, want, proxy_kw, keys, args=(RCPT,), check=None):
    with ScriptedServer() as srv:
        with Socks5Proxy(srv.port, **proxy_kw) as px:
            keys = dict(keys)
            keys.setdefault("proxy", "socks5://127.0.0.1:%d" % px.port)
            cfg = t.write_config(port=srv.port, **keys)
            res = t.run_pushmail(["-C", cfg] + list(args), stdin=MSG, env=t.base_env())
            if want == EX_OK:
                srv.wait()
    info = t.server_diag(res, srv) + ["proxy: offers %s auths %s requests %s errors %s"
                                      % (px.offers, px.auths, px.requests, px.errors)]
    t.is_eq(res.rc, want, name + ": exit %d" % want, *info)
    t.is_eq(len(delivered(srv)), 1 if want == EX_OK else 0,
            name + (": delivered through the proxy" if want == EX_OK
                    else ": nothing reached the relay"), *info)
    if check:
        check(name, srv, px, res, info)
    return res


def part_socks_scripted():
    def exact(offer, auth=None, req=None):
        def check(name, srv, px, res, info):
            t.is_eq(px.offers[:1], [offer], name + ": method offer %r" % offer, *info)
            if auth is not None:
                t.is_eq(px.auths[:1], [auth], name + ": RFC 1929 request", *info)
            if req is not None:
                t.is_eq(px.requests[:1], [req], name + ": CONNECT request", *info)
        return check

    pw_file = os.path.join(t.tmpdir(), "proxy-pw")
    with open(pw_file, "w") as f:
        f.write("px-Secret.9\n")
    os.chmod(pw_file, 0o600)
    # no authentication; the relay's IPv4 address is sent (ATYP 1)
    socks_case("socks5, no auth", EX_OK, {}, {},
               check=lambda n, srv, px, res, info: exact(
                   b"\x05\x01\x00", None, (1, 1, "127.0.0.1", srv.port))(
                   n, srv, px, res, info))
    # socks5h: the name goes to the proxy (ATYP 3); pushmail never resolves
    # it (relay.invalid has no address anywhere)
    with ScriptedServer() as srv:
        with Socks5Proxy(srv.port) as px:
            cfg = t.write_config(port=srv.port, host="relay.invalid",
                                 proxy="socks5h://127.0.0.1:%d" % px.port)
            res = t.run_pushmail(["-C", cfg, RCPT], stdin=MSG, env=t.base_env())
            srv.wait()
    info = t.server_diag(res, srv) + ["proxy requests %s" % px.requests]
    t.is_eq(res.rc, EX_OK, "socks5h: exit 0", *info)
    t.is_eq(px.requests[:1], [(1, 3, "relay.invalid", srv.port)],
            "socks5h: the CONNECT request carries the name (ATYP 3)", *info)
    t.is_eq(len(delivered(srv)), 1, "socks5h: delivered through the proxy")
    # RFC 1929 with each secret source
    auth = ("px-user", "px-Secret.9")
    want_auth = b"\x01\x07px-user\x0bpx-Secret.9"
    for src, keys in (("proxy_password", {"proxy_password": auth[1]}),
                      ("proxy_password_file", {"proxy_password_file": pw_file}),
                      ("proxy_password_command", {"proxy_password_command":
                                                  "cat %s" % pw_file})):
        keys = dict(keys, proxy_user=auth[0])
        socks_case("socks5 auth, " + src, EX_OK, {"auth": auth}, keys,
                   check=exact(b"\x05\x02\x00\x02", want_auth))
    # failures
    socks_case("socks5 auth, wrong password", EX_NOPERM, {"auth": auth},
               {"proxy_user": auth[0], "proxy_password": "wrong-one"})
    res = socks_case("socks5 auth required, no proxy_user", EX_NOPERM, {"auth": auth}, {})
    t.ok(b"proxy_user" in res.err, "socks5 auth required: the message says proxy_user",
         *res.describe())
    for rep, want in ((1, EX_TEMPFAIL), (2, EX_NOPERM), (4, EX_TEMPFAIL),
                      (5, EX_TEMPFAIL), (7, EX_PROTOCOL)):
        res = socks_case("socks5 REP %d" % rep, want, {"rep": rep}, {})
        t.ok(b"SOCKS5 proxy" in res.err and (b"(reply %d)" % rep) in res.err,
             "socks5 REP %d: the message names the proxy and the reply" % rep,
             *res.describe())
    socks_case("not a SOCKS5 proxy (HTTP reply)", EX_PROTOCOL,
               {"garbage": b"HTTP/1.1 400 Bad Request\r\n\r\n"}, {})
    # the proxy hangs up after the method offer
    socks_case("proxy hangs up", EX_TEMPFAIL, {"garbage": b""}, {})
    # nothing listens at the proxy's port
    with ScriptedServer() as srv:
        cfg = t.write_config(port=srv.port, proxy="socks5://127.0.0.1:%d" % t.closed_port())
        res = t.run_pushmail(["-C", cfg, RCPT], stdin=MSG, env=t.base_env())
    t.is_eq(res.rc, EX_TEMPFAIL, "proxy not listening: exit 75", *res.describe())
    t.ok(b"SOCKS5 proxy" in res.err, "proxy not listening: says it was the proxy",
         *res.describe())
    # --check says which step failed and what to look at
    with ScriptedServer() as srv:
        with Socks5Proxy(srv.port, rep=5) as px:
            cfg = t.write_config(port=srv.port, proxy="socks5://127.0.0.1:%d" % px.port)
            res = t.run_pushmail(["-C", cfg, "--check"], env=t.base_env())
    out = res.out.decode("latin-1")
    t.is_eq(res.rc, EX_TEMPFAIL, "--check, proxy refuses: exit 75", *res.describe())
    t.ok(re.search(r"FAIL +connect .*SOCKS5 proxy 127\.0\.0\.1 port %d could not reach "
                   r"127\.0\.0\.1 port %d: connection refused \(reply 5\)"
                   % (px.port, srv.port), out) and "hint: check proxy" in out,
         "--check, proxy refuses: the failing step, the proxy's reply and a hint",
         *res.describe())


# --------------------------------------------------------------------------
# F. danted in front of a real Postfix: TLS end to end through the tunnel,
#    verified against the relay's name; source_address in Postfix's log

class Danted:
    """danted (dante-server) on 127.0.0.1:port with socksmethod `method`
    (none, or username: RFC 1929 checked against the system's users), its
    own throwaway configuration and log; stopped by its pid."""

    def __init__(self, root, method="none"):
        self.root = os.path.join(root, "danted-" + method)
        os.makedirs(self.root)
        root = self.root
        self.method = method
        self.port = t.closed_port()
        self.conf = os.path.join(root, "danted.conf")
        self.log = os.path.join(root, "danted.log")
        self.pidfile = os.path.join(root, "danted.pid")
        self.proc = None

    def __enter__(self):
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "logoutput: %s" % self.log,
                "internal: 127.0.0.1 port = %d" % self.port,
                "external: 127.0.0.1",
                "socksmethod: %s" % self.method,
                "clientmethod: none",
                "user.privileged: root",
                "user.unprivileged: nobody",
                "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }",
                "socks pass {",
                "  from: 127.0.0.0/8 to: 0.0.0.0/0",
                "  command: connect",
                "  log: connect disconnect error",
                "}",
                ""]))
        self.out = open(os.path.join(self.root, "danted.out"), "wb")
        self.proc = subprocess.Popen([shutil.which("danted") or "/usr/sbin/danted",
                                      "-f", self.conf, "-p", self.pidfile, "-N", "1"],
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + 20
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("danted did not start:\n" + self.log_text())

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.out.close()

    def log_text(self):
        text = ""
        for p in (os.path.join(self.root, "danted.out"), self.log):
            try:
                text += open(p, errors="replace").read()
            except OSError:
                pass
        return text


def part_postfix():
    try:
        import postfixlib
    except ImportError as e:
        missing("tests/postfixlib.py: %s" % e)
        return
    need = [("postfix", postfixlib.find_postfix()), ("certtool", postfixlib.find_certtool()),
            ("danted (dante-server)", shutil.which("danted") or
             os.path.exists("/usr/sbin/danted"))]
    lacking = [n for n, found in need if not found]
    if lacking or os.geteuid() != 0:
        missing("root and %s" % ", ".join(n for n, _ in need))
        return
    import tempfile
    tmp = tempfile.mkdtemp(prefix="pushmail-transport-")
    os.chmod(tmp, 0o755)
    pf = None
    try:
        # the certificate names localhost only: the proxy is 127.0.0.1, so a
        # client that verified the proxy's name would fail
        certs = postfixlib.TestCerts(os.path.join(tmp, "certs"), server_ips=())
        pf = postfixlib.PostfixInstance(tmp, main_cf={
            "smtpd_tls_cert_file": certs.cert, "smtpd_tls_key_file": certs.key})
        pf.add_inet_service("submission", options=dict(smtpd_tls_security_level="encrypt"))
        pf.add_inet_service("smtps", options=dict(smtpd_tls_wrappermode="yes",
                                                  smtpd_tls_security_level="encrypt"))
        pf.start()
        with Danted(tmp) as dd:
            postfix_cases(pf, certs, dd)
        danted_username(pf, certs, tmp)
    except Exception as e:
        import traceback
        t.ok(False, "Postfix/danted part raised", traceback.format_exc())
    finally:
        if pf:
            pf.stop()
        if t._failed:
            t.diag("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


SOCKS_USER, SOCKS_PASS = "pmsocks%d" % os.getpid(), "Px-Pass.42"


def danted_username(pf, certs, tmp):
    """danted's username method (RFC 1929) checks a system user's password:
    one is made for the test with useradd/chpasswd and removed after."""
    if not (shutil.which("useradd") and shutil.which("chpasswd")):
        missing("useradd and chpasswd for danted's username method")
        return
    r = subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", SOCKS_USER],
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        t.ok(False, "useradd %s" % SOCKS_USER, r.stderr.decode(errors="replace"))
        return
    try:
        subprocess.run(["chpasswd"], input=("%s:%s\n" % (SOCKS_USER, SOCKS_PASS)).encode(),
                       check=True, capture_output=True, timeout=30)
        pwfile = os.path.join(tmp, "socks-pw")
        with open(pwfile, "w") as f:
            f.write(SOCKS_PASS + "\n")
        os.chmod(pwfile, 0o600)
        with Danted(tmp, method="username") as dd:
            proxy_h = "socks5h://127.0.0.1:%d" % dd.port
            tls = {"tls_trust_file": certs.ca, "port": pf.ports["submission"],
                   "tls": "starttls", "proxy": proxy_h}
            postfix_case(pf, "danted username method, STARTTLS", EX_OK, dict(
                tls, proxy_user=SOCKS_USER, proxy_password_file=pwfile), dd)
            postfix_case(pf, "danted username method, wrong password", EX_NOPERM, dict(
                tls, proxy_user=SOCKS_USER, proxy_password="not-" + SOCKS_PASS), dd)
            postfix_case(pf, "danted username method, no proxy_user", EX_NOPERM, tls, dd)
    finally:
        subprocess.run(["userdel", SOCKS_USER], capture_output=True, timeout=30)


def postfix_case(pf, name, want, keys, dd=None, n=1):
    keys = dict({"host": "localhost", "timeout": "20"}, **keys)
    cfg = t.write_config(**keys)
    res = t.run_pushmail(["-C", cfg, "user@test.example"], stdin=MSG, env=t.base_env())
    info = res.describe() + ["--- maillog ---", pf.log_tail(15)]
    if dd:
        info += ["--- danted ---", dd.log_text()[-1500:]]
    t.is_eq(res.rc, want, name + ": exit %d" % want, *info)
    if want == EX_OK:
        try:
            got = pf.wait_for_maildir(n, timeout=30)
        except TimeoutError as e:
            got = []
            info.append(str(e))
        t.ok(got and b"Subject: transport" in got[-1], name + ": in the Maildir", *info)
    return res


def postfix_cases(pf, certs, dd):
    tls = {"tls_trust_file": certs.ca}
    proxy_h = "socks5h://127.0.0.1:%d" % dd.port
    proxy = "socks5://127.0.0.1:%d" % dd.port
    res = postfix_case(pf, "danted socks5h, STARTTLS", EX_OK, dict(
        tls, port=pf.ports["submission"], tls="starttls", proxy=proxy_h), dd)
    log = dd.log_text()
    t.ok(re.search(r"pass\(1\): tcp/connect \[: 127\.0\.0\.1\.\d+ .*127\.0\.0\.1\.%d"
                   % pf.ports["submission"], log),
         "danted socks5h, STARTTLS: danted logged the connection to the submission port",
         log[-1500:])
    postfix_case(pf, "danted socks5, implicit TLS", EX_OK, dict(
        tls, port=pf.ports["smtps"], tls="implicit", proxy=proxy), dd)
    # a port nobody listens on behind the proxy: danted's REP is a failure
    postfix_case(pf, "danted, relay port closed", EX_TEMPFAIL, dict(
        port=t.closed_port(), tls="off", proxy=proxy_h), dd)
    # source_address: Postfix logs where the connection came from
    before = open(pf.maillog, "rb").read()
    postfix_case(pf, "source_address 127.0.0.2 to Postfix", EX_OK, dict(
        host="127.0.0.1", port=pf.port, tls="off", source_address="127.0.0.2"))
    new = open(pf.maillog, "rb").read()[len(before):]
    t.ok(re.search(rb"connect from [^\s\[]*\[127\.0\.0\.2\]", new),
         "source_address 127.0.0.2: Postfix logs the connection from 127.0.0.2",
         new[-1500:].decode("utf-8", "replace"))


# --------------------------------------------------------------------------
# G. --serverinfo and --check say which path was taken

def part_reports():
    with ScriptedServer(connections=2) as srv:
        with Socks5Proxy(srv.port, auth=("px-user", "px-Secret.9")) as px:
            cfg = t.write_config(port=srv.port, proxy="socks5://127.0.0.1:%d" % px.port,
                                 proxy_user="px-user", proxy_password="px-Secret.9")
            info = t.run_pushmail(["-C", cfg, "--serverinfo"], env=t.base_env())
            chk = t.run_pushmail(["-C", cfg, "--check"], env=t.base_env())
    for name, res in (("--serverinfo", info), ("--check", chk)):
        out = res.out.decode("latin-1")
        t.is_eq(res.rc, EX_OK, name + " through a proxy: exit 0", *res.describe())
        t.ok(re.search(r"SMTP through SOCKS5 proxy socks5://127\.0\.0\.1:%d "
                       r"\(username/password\)" % px.port, out),
             name + " through a proxy: names the proxy and its authentication",
             *res.describe())
        t.ok(re.search(r"127\.0\.0\.1 port %d through SOCKS5 proxy 127\.0\.0\.1 "
                       r"port %d as px-user" % (srv.port, px.port), out),
             name + " through a proxy: the connection went through it", *res.describe())
        t.ok(b"px-Secret" not in res.out + res.err,
             name + " through a proxy: the proxy password is not shown")
    with ScriptedServer(connections=2) as srv:
        cfg = t.write_config(port=srv.port, source_address="127.0.0.2", ip_version="4",
                             protocol="lmtp")
        info = t.run_pushmail(["-C", cfg, "--serverinfo"], env=t.base_env())
        chk = t.run_pushmail(["-C", cfg, "--check"], env=t.base_env())
    for name, res in (("--serverinfo", info), ("--check", chk)):
        out = res.out.decode("latin-1")
        t.is_eq(res.rc, EX_OK, name + " LMTP from 127.0.0.2: exit 0", *res.describe())
        t.ok(re.search(r"LMTP, direct, ip_version 4, source_address 127\.0\.0\.2", out),
             name + " LMTP from 127.0.0.2: protocol, family and source address",
             *res.describe())
        t.ok(re.search(r"127\.0\.0\.1 port %d \(IPv4\) from 127\.0\.0\.2 "
                       r"\(source_address\)" % srv.port, out),
             name + " LMTP from 127.0.0.2: the connection's addresses", *res.describe())
    t.ok(len(srv.records) == 2 and
         all(r.commands[:1] and r.commands[0].startswith(b"LHLO") for r in srv.records),
         "--serverinfo and --check say LHLO to an LMTP server",
         t.show([r.commands[:1] for r in srv.records]))


# --------------------------------------------------------------------------
# H. msmtp's long options: --proxy-host/--proxy-port, --source-ip,
#    --protocol, and --ip-version

def part_options():
    with ScriptedServer() as srv:
        with Socks5Proxy(srv.port) as px:
            cfg = t.write_config(port=srv.port, host="relay.invalid", protocol="smtp")
            res = t.run_pushmail(["-C", cfg, "--proxy-host", "127.0.0.1", "--proxy-port",
                                  str(px.port), "--source-ip", "127.0.0.2", RCPT],
                                 stdin=MSG, env=t.base_env())
            srv.wait()
    info = t.server_diag(res, srv) + ["proxy requests %s" % px.requests]
    t.is_eq(res.rc, EX_OK, "--proxy-host/--proxy-port/--source-ip: exit 0", *info)
    t.is_eq(px.requests[:1], [(1, 3, "relay.invalid", srv.port)],
            "--proxy-host: the proxy resolves the name, as with msmtp", *info)
    t.is_eq(len(delivered(srv)), 1, "--proxy-host: delivered through the proxy", *info)
    with ScriptedServer(rules={"EOD": raw(b"250 2.0.0 <rcpt@example.org> Saved\r\n")}) as srv:
        cfg = t.write_config(port=srv.port)
        res = t.run_pushmail(["-C", cfg, "--protocol", "lmtp", "--source-ip", "127.0.0.2",
                              RCPT], stdin=MSG, env=t.base_env())
        srv.wait()
    t.is_eq(res.rc, EX_OK, "--protocol lmtp --source-ip: exit 0", *t.server_diag(res, srv))
    t.ok(srv.records and srv.record.commands[0].startswith(b"LHLO")
         and srv.record.peer == "127.0.0.2",
         "--protocol lmtp --source-ip 127.0.0.2: LHLO from 127.0.0.2",
         *t.server_diag(res, srv))
    for args, why in ((["--ip-version", "5"], b"--ip-version must be 4, 6 or any"),
                      (["--proxy-port", "1080"], b"--proxy-port needs --proxy-host"),
                      (["--source-ip", "localhost"], b"--source-ip takes a numeric"),
                      (["--protocol", "esmtp"], b"--protocol must be smtp or lmtp"),
                      (["--proxy-host", "a:b"], b"--proxy-host takes a host name"),
                      (["--source-ip", "::1", "--ip-version", "4"],
                       b"source address ::1 is not an IPv4 address")):
        with ScriptedServer() as srv:
            cfg = t.write_config(port=srv.port)
            res = t.run_pushmail(["-C", cfg] + args + [RCPT], stdin=MSG, env=t.base_env())
        t.is_eq(res.rc, 64, "%s: exit 64" % " ".join(args), *res.describe())
        t.ok(why in res.err, "%s: says %s" % (" ".join(args), why.decode()),
             *res.describe())
        t.is_eq(len(srv.records), 0, "%s: nothing connected" % " ".join(args))


def main():
    t.require_pushmail()
    part_config()
    part_source()
    part_happy_eyeballs()
    part_lmtp_scripted()
    part_lmtp_dovecot()
    part_socks_scripted()
    part_reports()
    part_options()
    part_postfix()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
