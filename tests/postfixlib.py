"""Throwaway Postfix (and smtp-sink) instances for interop tests and benchmarks.

Python 3 standard library only.  Everything listens on 127.0.0.1 (or ::1 when
asked) on ephemeral ports, and every wait is bounded in time.

    with PostfixInstance(tmpdir) as pf:
        ... send to 127.0.0.1:pf.port, rcpt user@test.example ...
        msgs = pf.wait_for_maildir(1, timeout=30)

What a private Postfix 3.7 needs on Debian 12 (learnt the hard way; keep these
notes next to the code that depends on them):

  * Starting master(8) requires root.  The daemons then drop to mail_owner
    ("postfix") and the virtual(8) agent to virtual_uid_maps.
  * `postfix -c DIR` works for root with any DIR; only the set-gid programs
    (postdrop, postqueue) insist that DIR is listed in alternate_config_directories
    of the *default* main.cf, which does not exist here ("No configuration").
    So we never call postqueue/sendmail, only postfix/postconf/postsuper.
  * config_directory must be root-owned and not group/world writable, as must
    main.cf and master.cf (postfix check warns, some daemons refuse).
  * queue_directory must be root-owned 0755.  `postfix start` runs
    `postfix-script check-fatal`, which runs `post-install create-missing` and so
    creates incoming/, active/, maildrop/, public/, private/, pid/ ... with the
    right owners (that is what `postfix set-permissions` would do too).  We only
    create the top directory.
  * data_directory must be owned by mail_owner (postfix), mode 0700.
  * Every path component down to the queue, data and mail directories must be
    searchable by the postfix user and the virtual uid: tempfile.mkdtemp() makes
    0700 directories, so the instance root is chmod'ed 0755.
  * Debian's stock master.cf has chroot = y for most services and relies on the
    init script (/usr/lib/postfix/configure-instance.sh) to populate the chroot
    with etc/services, resolv.conf and friends; `postfix start` does not.  We
    write our own master.cf with chroot = n everywhere.
  * Debian compiles in command_directory=/usr/sbin,
    daemon_directory=/usr/lib/postfix/sbin, shlib_directory=/usr/lib/postfix
    and meta_directory=/etc/postfix (postfix-files, dynamicmaps.cf).  We take
    them from `postconf -d` and write them into main.cf so the file is
    self-describing; meta_directory must stay /etc/postfix or the dynamic map
    table is not found.
  * maillog_file (Postfix >= 3.4) needs a "postlog unix-dgram ... postlogd"
    service in master.cf (postfix-script refuses to start otherwise) and the
    file's directory in maillog_file_prefixes (default only /var, /dev/stdout).
  * virtual(8) refuses uids below virtual_minimum_uid (default 100); the postfix
    user is usually below that, so we use "nobody" (65534) for the Maildirs.
  * Maps: texthash: needs no postmap(1) run; the file is read as root when the
    daemon opens its maps, but keep it world-readable anyway.
  * local_header_rewrite_clients is emptied so cleanup(8) neither rewrites
    header addresses nor adds missing Date/Message-ID/From for 127.0.0.1: the
    headers we find in the Maildir are the ones the client sent.
  * smtpd_forbid_bare_newline = reject (exclusions emptied because they
    default to $mynetworks) makes Postfix refuse any bare LF on the wire
    ("550 5.5.2 Error: bare <LF> received"): an SMTP-smuggling regression
    turns into a failed delivery.  Careful: since 3.7.10 "yes" only means
    "normalize", which accepts bare LF inside the data; see
    _bare_newline_reject().
  * default_transport/relay_transport = error: bounces and double bounces
    never try DNS or the network.
  * `postfix stop` waits up to 5 s for master, then kill -9's its process group;
    `postfix abort` and a SIGKILL of pid/master.pid are our fallbacks.

Extending (later issues): pass `main_cf={...}` for extra parameters and add
services with `add_inet_service()` before entering the context, e.g.

    pf = PostfixInstance(tmp, main_cf={"smtpd_tls_cert_file": crt, ...})
    pf.add_inet_service("submission", options={
        "smtpd_tls_security_level": "encrypt",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": "private/auth"})       # dovecot's auth socket
    pf.add_inet_service("smtps", options={"smtpd_tls_wrappermode": "yes", ...})
    with pf: pf.ports["submission"], pf.ports["smtps"]

A Dovecot auth server would be a sibling context manager (its own
base_dir/config in the temp dir, passwd-file userdb, an auth listener placed in
the Postfix queue's private/ directory owned by postfix) started before Postfix.
"""

import contextlib
import os
import pwd
import grp
import shutil
import signal
import re
import socket
import subprocess
import time

__all__ = ["PostfixInstance", "PostfixError", "SmtpSink", "DovecotAuth", "TestCerts",
           "find_dovecot", "find_certtool", "free_port",
           "wait_for_port", "find_postfix", "find_smtp_sink"]


class PostfixError(RuntimeError):
    """Postfix could not be configured, started or observed."""


def find_postfix():
    """Path of the postfix(1) command, or None when Postfix is not installed."""
    for p in ("/usr/sbin/postfix", shutil.which("postfix")):
        if p and os.access(p, os.X_OK):
            return p
    return None


def find_smtp_sink():
    """Path of smtp-sink(1): /usr/sbin on Debian, daemon_directory elsewhere."""
    for p in ("/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink",
              "/usr/libexec/postfix/smtp-sink", shutil.which("smtp-sink")):
        if p and os.access(p, os.X_OK):
            return p
    return None


def free_port(host="127.0.0.1"):
    """An ephemeral port that was free a moment ago (bind to 0, then release).

    There is an unavoidable race with other processes; the window is small.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=30.0, banner=True):
    """Wait until host:port accepts a connection (and sends a 220 greeting
    when banner is true).  Returns the greeting line; raises TimeoutError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(max(0.1, min(5.0, deadline - time.monotonic())))
                s.connect((host, port))
                if not banner:
                    return b""
                line = s.makefile("rb").readline(4096)
                if line.startswith(b"220"):
                    with contextlib.suppress(OSError):
                        s.sendall(b"QUIT\r\n")
                    return line
                last = "greeting %r" % line
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise TimeoutError("%s:%d not ready after %.0fs (%s)" % (host, port, timeout, last))


def _run(argv, timeout, check=True, env=None):
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise PostfixError("%s: timed out after %ss: %s"
                           % (" ".join(argv), timeout, (e.output or b"").decode("utf-8", "replace")))
    out = p.stdout.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise PostfixError("%s: exit %d:\n%s" % (" ".join(argv), p.returncode, out))
    return p.returncode, out


def _postconf_defaults(names):
    _, out = _run(["postconf", "-d"] + list(names), timeout=30)
    vals = {}
    for line in out.splitlines():
        k, sep, v = line.partition(" = ")
        if sep:
            vals[k.strip()] = v.strip()
    return vals


def _bare_newline_reject():
    """The smtpd_forbid_bare_newline value that rejects every bare LF.

    Postfix 3.7.9/3.8.4 added "yes" (= reject); 3.7.10/3.8.5/3.6.14/3.5.24
    and 3.9 redefined "yes" as "normalize" (only <LF>.<CR><LF> is refused,
    other bare LFs are accepted as line ends) and added "reject".  We want
    reject: pushmail must never put a bare LF on the wire."""
    v = _postconf_defaults(["mail_version"]).get("mail_version", "0")
    try:
        major, minor, patch = (list(map(int, v.split(".")[:3])) + [0, 0])[:3]
    except ValueError:
        return None
    first = {(3, 5): 24, (3, 6): 14, (3, 7): 10, (3, 8): 5}
    if (major, minor) >= (3, 9) or patch >= first.get((major, minor), 10**6):
        return "reject"
    return "yes"


# master.cf rows every instance needs.  chroot = n throughout (see above).
# (service, type, private, unpriv, chroot, wakeup, maxproc, command)
_BASE_SERVICES = [
    ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
    ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
    ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
    ("tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr"),
    ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
    ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
    ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
    ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
    ("proxywrite", "unix", "-", "-", "n", "-", "1", "proxymap"),
    ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
    ("error", "unix", "-", "-", "n", "-", "-", "error"),
    ("retry", "unix", "-", "-", "n", "-", "-", "error"),
    ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
    ("local", "unix", "-", "n", "n", "-", "-", "local"),
    ("virtual", "unix", "-", "n", "n", "-", "-", "virtual"),
    ("lmtp", "unix", "-", "-", "n", "-", "-", "lmtp"),
    ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
    ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
    # Required whenever maillog_file is set; postfix-script checks for it.
    ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
]


class PostfixInstance:
    """A private Postfix under `tmpdir`, started on enter, stopped on exit.

    tmpdir      directory owned by the caller (it is chmod'ed 0755); nothing in
                it is removed, so logs and Maildirs survive for diagnosis.
    host        listen address, "127.0.0.1" or "::1".
    domain      the virtual mailbox domain.
    users       local parts that get a Maildir (others: 550 5.1.1 unknown).
    main_cf     extra/overriding main.cf parameters {name: value}.
    smtp_options  -o overrides for the plain smtpd service {name: value}.
    start_timeout bound for `postfix start` plus the port becoming ready.

    After enter: .port (plain SMTP), .ports {service key: port}, .maillog,
    .config_dir, .queue_dir, .mail_base.
    """

    def __init__(self, tmpdir, host="127.0.0.1", domain="test.example",
                 users=("user",), main_cf=None, smtp_options=None,
                 start_timeout=60.0):
        self.root = os.path.abspath(tmpdir)
        self.host = host
        self.domain = domain
        self.users = list(users)
        self.extra_main = dict(main_cf or {})
        self.start_timeout = start_timeout
        self.config_dir = os.path.join(self.root, "etc")
        self.queue_dir = os.path.join(self.root, "queue")
        self.data_dir = os.path.join(self.root, "data")
        self.mail_base = os.path.join(self.root, "mail")
        self.log_dir = os.path.join(self.root, "log")
        self.maillog = os.path.join(self.log_dir, "maillog")
        self.ports = {}
        self._services = []          # (key, master.cf text)
        self._extra_services = []    # raw master.cf text for non-inet services
        self._seen = {}              # user -> number of files already returned
        self._banner = {}            # service key -> wait for a 220 greeting
        self._running = False
        self.add_inet_service("smtp", options=smtp_options)

    # -- configuration ---------------------------------------------------------

    def add_inet_service(self, key, command="smtpd", options=None, port=None,
                         private="n", unpriv="-", maxproc="-", banner=None):
        """Add an smtpd-like inet service on its own free port (before start).

        options become "-o name=value" lines; the port is in self.ports[key].
        banner: whether start() waits for a 220 greeting on the port (default:
        yes, except with smtpd_tls_wrappermode=yes, where the server says
        nothing before the TLS handshake, so a connection is enough).
        """
        if self._running:
            raise PostfixError("add services before starting Postfix")
        port = port or free_port(self.host)
        self.ports[key] = port
        if banner is None:
            banner = str((options or {}).get("smtpd_tls_wrappermode", "no")).lower() != "yes"
        self._banner[key] = bool(banner)
        addr = "[%s]:%d" % (self.host, port) if ":" in self.host else "%s:%d" % (self.host, port)
        lines = ["%-20s inet %s %s n - %s %s" % (addr, private, unpriv, maxproc, command),
                 "  -o syslog_name=postfix/%s" % key]
        for k, v in (options or {}).items():
            lines.append("  -o %s=%s" % (k, v))
        self._services.append((key, "\n".join(lines)))
        return port

    def add_master_cf(self, text):
        """Append raw master.cf text (e.g. a pipe(8) transport)."""
        self._extra_services.append(text.rstrip("\n"))

    @property
    def port(self):
        return self.ports["smtp"]

    def _ids(self):
        try:
            pw = pwd.getpwnam("postfix")
        except KeyError:
            raise PostfixError("no 'postfix' user (is the postfix package installed?)")
        try:
            nb = pwd.getpwnam("nobody")
            vuid, vgid = nb.pw_uid, nb.pw_gid
        except KeyError:
            vuid, vgid = 65534, 65534
        return pw.pw_uid, pw.pw_gid, vuid, vgid

    def _main_cf(self, vuid, vgid):
        d = _postconf_defaults(["command_directory", "daemon_directory",
                                "shlib_directory", "meta_directory",
                                "mail_owner", "setgid_group"])
        vmailbox = os.path.join(self.config_dir, "vmailbox")
        p = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "command_directory": d.get("command_directory", "/usr/sbin"),
            "daemon_directory": d.get("daemon_directory", "/usr/lib/postfix/sbin"),
            "shlib_directory": d.get("shlib_directory", "/usr/lib/postfix"),
            "meta_directory": d.get("meta_directory", "/etc/postfix"),
            "mail_owner": d.get("mail_owner", "postfix"),
            "setgid_group": d.get("setgid_group", "postdrop"),
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.log_dir,
            "myhostname": "pushmail-test.localdomain",
            "mydomain": "localdomain",
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": self.host,
            "inet_protocols": "ipv6" if ":" in self.host else "ipv4",
            "mynetworks": "127.0.0.0/8 [::1]/128",
            "relay_domains": "",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "local_header_rewrite_clients": "",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_base": self.mail_base,
            "virtual_mailbox_maps": "texthash:" + vmailbox,
            "virtual_uid_maps": "static:%d" % vuid,
            "virtual_gid_maps": "static:%d" % vgid,
            "virtual_minimum_uid": str(min(vuid, 100)),
            "virtual_mailbox_limit": "0",
            "message_size_limit": str(200 * 1024 * 1024),
            "default_transport": "error:test instance: no outbound mail",
            "relay_transport": "error:test instance: no outbound mail",
            "smtp_dns_support_level": "disabled",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "smtpd_banner": "$myhostname ESMTP pushmail test instance",
            "smtpd_error_sleep_time": "0",
            "in_flow_delay": "0",
            "smtpd_forbid_bare_newline": _bare_newline_reject(),
            "smtpd_forbid_bare_newline_exclusions": "",
            "smtpd_forbid_unauth_pipelining": "yes",
            "biff": "no",
            "notify_classes": "",
            "delay_warning_time": "0",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        # Parameters this Postfix does not know would only draw warnings.
        optional = ("smtpd_forbid_bare_newline", "smtpd_forbid_bare_newline_exclusions",
                    "smtpd_forbid_unauth_pipelining")
        known = set(_postconf_defaults(optional))
        for k in optional:
            if k not in known or p[k] is None:
                p.pop(k, None)
        p.update(self.extra_main)
        lines = ["# written by tests/postfixlib.py; throwaway instance"]
        lines += ["%s = %s" % (k, v) for k, v in p.items()]
        with open(vmailbox, "w") as f:
            for u in self.users:
                # Trailing "/" = Maildir, relative to virtual_mailbox_base.
                f.write("%s@%s %s/%s/\n" % (u, self.domain, self.domain, u))
        os.chmod(vmailbox, 0o644)
        return "\n".join(lines) + "\n"

    def _master_cf(self):
        rows = ["# written by tests/postfixlib.py; chroot = n everywhere"]
        rows += [text for _, text in self._services]
        rows += ["%-10s %-10s %s %s %s %s %s %s" % r for r in _BASE_SERVICES]
        rows += self._extra_services
        return "\n".join(rows) + "\n"

    def _write_config(self):
        puid, pgid, vuid, vgid = self._ids()
        os.chmod(self.root, 0o755)
        # Every ancestor must be searchable by postfix and the virtual uid.
        d = self.root
        while d != "/":
            d = os.path.dirname(d)
            if not os.stat(d).st_mode & 0o001:
                raise PostfixError("%s is not searchable by others; postfix "
                                   "cannot reach %s" % (d, self.root))
        for path, uid, gid, mode in (
                (self.config_dir, 0, 0, 0o755),
                (self.queue_dir, 0, 0, 0o755),
                (self.data_dir, puid, pgid, 0o700),
                (self.log_dir, 0, 0, 0o755),
                (self.mail_base, vuid, vgid, 0o755)):
            os.makedirs(path, exist_ok=True)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        for name, text in (("main.cf", self._main_cf(vuid, vgid)),
                           ("master.cf", self._master_cf())):
            path = os.path.join(self.config_dir, name)
            with open(path, "w") as f:
                f.write(text)
            os.chown(path, 0, 0)
            os.chmod(path, 0o644)

    # -- control ---------------------------------------------------------------

    def postfix(self, *args, timeout=60, check=True):
        """Run `postfix -c CONFIG_DIR args...`; returns (status, output)."""
        return _run([find_postfix() or "postfix", "-c", self.config_dir] + list(args),
                    timeout=timeout, check=check)

    def postconf(self, *args, timeout=30):
        return _run(["postconf", "-c", self.config_dir] + list(args), timeout=timeout)[1]

    def start(self):
        if os.geteuid() != 0:
            raise PostfixError("starting Postfix needs root")
        if not find_postfix():
            raise PostfixError("postfix is not installed")
        self._write_config()
        deadline = time.monotonic() + self.start_timeout
        try:
            # check: creates missing queue dirs, reports config errors early.
            self.postfix("check", timeout=self.start_timeout)
            self.postfix("start", timeout=max(1.0, deadline - time.monotonic()))
            self._running = True
            for key, port in self.ports.items():
                wait_for_port(self.host, port, max(1.0, deadline - time.monotonic()),
                              banner=self._banner.get(key, True))
        except (PostfixError, TimeoutError) as e:
            self.stop()
            raise PostfixError("%s\n--- maillog tail ---\n%s" % (e, self.log_tail()))
        return self

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        """Stop master: `postfix stop` (waits <= 5 s itself), then abort, then
        SIGKILL its process group.  Safe to call more than once."""
        if self.master_pid() is None:
            self._running = False
            return
        for cmd in ("stop", "abort"):
            with contextlib.suppress(PostfixError):
                self.postfix(cmd, timeout=20, check=False)
            if self._wait_master_gone(5.0):
                break
        pid = self.master_pid()
        if pid:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            self._wait_master_gone(5.0)
        self._running = False

    def _wait_master_gone(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.master_pid() is None:
                return True
            time.sleep(0.1)
        return self.master_pid() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- observation -----------------------------------------------------------

    def log_tail(self, n=40):
        try:
            with open(self.maillog, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError as e:
            return "(no maillog: %s)" % e

    def session_ends(self):
        """(smtpd 'disconnect from' lines of sessions that sent MAIL, lines
        that say a session did not end cleanly after its message: lost
        connection after the data or QUIT, improper command pipelining).
        Sessions refused before MAIL (an untrusted certificate) may well
        end without QUIT, and a TLS ClientHello sent to a STARTTLS port (a
        test of tls = implicit on the wrong port) is "pipelining after
        CONNECT": neither is a session that sent a message."""
        try:
            with open(self.maillog, "rb") as f:
                log = f.read()
        except OSError:
            return [], [b"(no maillog)"]
        disc = re.findall(rb"smtpd\[\d+\]: disconnect from [^\n]* mail=[^\n]*", log)
        bad = re.findall(rb"[^\n]*(?:lost connection after (?:END-OF-MESSAGE|DATA|BDAT|"
                         rb"QUIT|RSET)|improper command pipelining after (?!CONNECT))[^\n]*", log)
        return disc, bad

    def maildir(self, user="user"):
        return os.path.join(self.mail_base, self.domain, user)

    def queue_count(self):
        """Messages still in Postfix's queues (incoming, active, deferred...)."""
        n = 0
        for q in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.queue_dir, q)):
                n += len(files)
        return n

    def _new_files(self, user):
        new = os.path.join(self.maildir(user), "new")
        try:
            names = os.listdir(new)
        except FileNotFoundError:
            return []
        paths = [os.path.join(new, n) for n in names]
        return sorted(paths, key=lambda p: (os.stat(p).st_mtime_ns, p))

    def wait_for_maildir(self, n, timeout=30.0, user="user", settle=0.3):
        """Wait until at least n new messages are in user's Maildir/new and
        return the bytes of all of them (oldest first).  The files are then
        moved to cur/ (kept for diagnosis) so that the next call only sees
        later deliveries.  settle: extra wait to catch surplus deliveries.
        Raises TimeoutError (with the maillog tail) when fewer arrive."""
        deadline = time.monotonic() + timeout
        while True:
            files = self._new_files(user)
            if len(files) >= n:
                break
            if time.monotonic() >= deadline:
                raise TimeoutError("%d of %d message(s) in %s after %.0fs\n"
                                   "--- maillog tail ---\n%s"
                                   % (len(files), n, self.maildir(user), timeout,
                                      self.log_tail()))
            time.sleep(0.05)
        if settle:
            time.sleep(settle)
            files = self._new_files(user)
        out = []
        cur = os.path.join(self.maildir(user), "cur")
        for p in files:
            with open(p, "rb") as f:
                out.append(f.read())
            with contextlib.suppress(OSError):
                os.rename(p, os.path.join(cur, os.path.basename(p) + ":2,S"))
        return out

    def drain_maildir(self, user="user"):
        """Return (and move to cur/) whatever is in user's Maildir/new now."""
        return self.wait_for_maildir(0, timeout=0, user=user, settle=0)


class SmtpSink:
    """Postfix's smtp-sink(1) on a free port; killed on exit.

    smtp-sink has no size limit and announces PIPELINING, 8BITMIME, DSN,
    ENHANCEDSTATUSCODES (and XCLIENT/XFORWARD) unless told otherwise; options
    in `args` are passed before the address (e.g. ["-c"] for counters).
    As root it insists on -u USER to drop privileges after binding.
    """

    def __init__(self, host="127.0.0.1", port=None, args=(), backlog=100,
                 log_path=None, start_timeout=15.0):
        self.host, self.port = host, port or free_port(host)
        self.args, self.backlog = list(args), backlog
        self.log_path, self.start_timeout = log_path, start_timeout
        self.proc = None
        self._log = None

    def __enter__(self):
        sink = find_smtp_sink()
        if not sink:
            raise PostfixError("smtp-sink not found")
        argv = [sink]
        if os.geteuid() == 0:
            argv += ["-u", "postfix"]
        addr = "[%s]:%d" % (self.host, self.port) if ":" in self.host else "%s:%d" % (self.host, self.port)
        argv += self.args + [addr, str(self.backlog)]
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(self.host, self.port, self.start_timeout)
        except TimeoutError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        return False


# --- TLS certificates and a Dovecot SASL server for the TLS/AUTH interop test ---

def find_certtool():
    """Path of GnuTLS certtool(1) (package gnutls-bin), or None."""
    for p in ("/usr/bin/certtool", shutil.which("certtool")):
        if p and os.access(p, os.X_OK):
            return p
    return None


def find_dovecot():
    """Path of dovecot(8) (package dovecot-core), or None."""
    for p in ("/usr/sbin/dovecot", shutil.which("dovecot")):
        if p and os.access(p, os.X_OK):
            return p
    return None


class TestCerts:
    """A throwaway CA and a server certificate it signed, made with certtool.

    .ca          CA certificate (PEM), for pushmail's tls_trust_file
    .cert .key   server certificate and key for DNS localhost + IP 127.0.0.1
    .spki_sha256 / .cert_sha256  lower-case hex SHA-256 of the server's
                 SubjectPublicKeyInfo / DER certificate (certtool's view)

    ECDSA P-256 keys: generation takes milliseconds.  The files are left in
    `directory` (0644, key 0600: smtpd reads it as root before dropping
    privileges)."""

    def __init__(self, directory, server_names=("localhost",), server_ips=("127.0.0.1",),
                 days=30):
        self.dir = os.path.abspath(directory)
        self.certtool = find_certtool()
        if not self.certtool:
            raise PostfixError("certtool not found (package gnutls-bin)")
        os.makedirs(self.dir, exist_ok=True)
        ca_key = self._key("ca")
        self.ca = self._cert("ca", ca_key, ['cn = "pushmail interop test CA"', "ca",
                                            "cert_signing_key", "crl_signing_key",
                                            "serial = 1", "expiration_days = %d" % days])
        self.key = self._key("server")
        lines = ['cn = "%s"' % (server_names[0] if server_names else server_ips[0]),
                 "tls_www_server", "signing_key", "encryption_key", "serial = 2",
                 "expiration_days = %d" % days]
        lines += ['dns_name = "%s"' % n for n in server_names]
        lines += ['ip_address = "%s"' % a for a in server_ips]
        self.cert = self._cert("server", self.key, lines, signer=(self.ca, ca_key))
        info = self._tool("--certificate-info", "--infile", self.cert)
        self.spki_sha256 = self._after(info, "Public Key ID:")
        self.cert_sha256 = self._after(info, "Fingerprint:")
        if not self.spki_sha256 or not self.cert_sha256:
            raise PostfixError("no SHA-256 fingerprints in certtool's output:\n" + info)

    def _tool(self, *args):
        return _run([self.certtool] + list(args), timeout=30)[1]

    def _key(self, name):
        path = os.path.join(self.dir, name + ".key")
        self._tool("--generate-privkey", "--key-type=ecdsa", "--outfile", path)
        os.chmod(path, 0o600)
        return path

    def _cert(self, name, key, template, signer=None):
        tmpl = os.path.join(self.dir, name + ".tmpl")
        with open(tmpl, "w") as f:
            f.write("\n".join(template) + "\n")
        path = os.path.join(self.dir, name + ".pem")
        if signer:
            self._tool("--generate-certificate", "--load-privkey", key,
                       "--load-ca-certificate", signer[0], "--load-ca-privkey", signer[1],
                       "--template", tmpl, "--outfile", path)
        else:
            self._tool("--generate-self-signed", "--load-privkey", key,
                       "--template", tmpl, "--outfile", path)
        os.chmod(path, 0o644)
        return path

    @staticmethod
    def _after(info, label):
        """The sha256:HEX value in the few lines under `label`."""
        lines = info.splitlines()
        for i, line in enumerate(lines):
            if line.strip() == label:
                for m in lines[i + 1:i + 4]:
                    m = m.strip()
                    if m.startswith("sha256:"):
                        return m[7:].lower()
        return None


class DovecotAuth:
    """A throwaway Dovecot that only serves SASL to Postfix (smtpd_sasl_type =
    dovecot): no IMAP/POP listeners, no SSL, one auth unix_listener at
    `socket_path` (normally QUEUE_DIR/private/auth, owned by postfix, 0660),
    a passwd-file passdb of {PLAIN} passwords (plaintext lets Dovecot derive
    what every mechanism needs: PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1/256).

        with DovecotAuth(tmp, pf.queue_dir + "/private/auth", {"u": "pw"}) as dv:
            dv.mechanisms    # what Dovecot's auth service is configured to offer

    Runs `dovecot -F -c FILE` as a child (its own session) and stops it by
    pid: SIGTERM, then SIGKILL of its process group.  Everything else
    (base_dir, state_dir, logs) lives under tmpdir/dovecot.

    Notes for Dovecot 2.3.19 (Debian 12):
      * default_login_user / default_internal_user must name existing users;
        dovecot-core creates dovenull and dovecot (we fall back to nobody).
      * A passdb alone is not enough ("No userdbs specified"): a static
        userdb is added; Postfix never asks for it.
      * auth_failure_delay = 0 keeps the wrong-password case fast.
      * The auth process opens the passwd-file as default_internal_user
        (dovecot), not root: the file is chowned to that user, mode 0600.
    """

    MECHANISMS = ("plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256")

    def __init__(self, tmpdir, socket_path, users, mechanisms=MECHANISMS,
                 socket_owner="postfix", socket_group="postfix", start_timeout=30.0):
        self.root = os.path.join(os.path.abspath(tmpdir), "dovecot")
        self.socket_path = socket_path
        self.users = dict(users)
        self.mechanisms = list(mechanisms)
        self.socket_owner, self.socket_group = socket_owner, socket_group
        self.start_timeout = start_timeout
        self.conf = os.path.join(self.root, "dovecot.conf")
        self.base_dir = os.path.join(self.root, "run")
        self.state_dir = os.path.join(self.root, "state")
        self.log = os.path.join(self.root, "dovecot.log")
        self.passwd = os.path.join(self.root, "passwd")
        self.proc = None
        self._out = None

    @staticmethod
    def _user(*names):
        for n in names:
            try:
                return pwd.getpwnam(n).pw_name
            except KeyError:
                continue
        return "nobody"

    def _config(self):
        login_user = self._user("dovenull", "nobody")
        internal_user = self._user("dovecot", "nobody")
        nb = pwd.getpwnam("nobody")
        return "\n".join([
            "# written by tests/postfixlib.py: SASL for a throwaway Postfix only",
            "base_dir = %s" % self.base_dir,
            "state_dir = %s" % self.state_dir,
            "log_path = %s" % self.log,
            "info_log_path = %s" % self.log,
            "debug_log_path = %s" % self.log,
            "protocols =",
            "listen = 127.0.0.1",
            "ssl = no",
            "disable_plaintext_auth = no",
            "default_login_user = %s" % login_user,
            "default_internal_user = %s" % internal_user,
            "auth_mechanisms = %s" % " ".join(self.mechanisms),
            "auth_failure_delay = 0",
            "auth_verbose = yes",
            "passdb {",
            "  driver = passwd-file",
            "  args = scheme=PLAIN username_format=%%u %s" % self.passwd,
            "}",
            "userdb {",
            "  driver = static",
            "  args = uid=%d gid=%d home=/nonexistent" % (nb.pw_uid, nb.pw_gid),
            "}",
            "service auth {",
            "  unix_listener %s {" % self.socket_path,
            "    mode = 0660",
            "    user = %s" % self.socket_owner,
            "    group = %s" % self.socket_group,
            "  }",
            "}",
            "",
        ])

    def start(self):
        dovecot = find_dovecot()
        if not dovecot:
            raise PostfixError("dovecot is not installed (package dovecot-core)")
        for d in (self.root, self.base_dir, self.state_dir):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.root, 0o755)
        with open(self.passwd, "w") as f:
            for u, pw in self.users.items():
                if ":" in u + pw or "\n" in u + pw:
                    raise PostfixError("':' or newline in a passwd-file entry")
                f.write("%s:{PLAIN}%s\n" % (u, pw))
        # The auth process reads it as default_internal_user.
        internal = pwd.getpwnam(self._user("dovecot", "nobody"))
        os.chown(self.passwd, internal.pw_uid, internal.pw_gid)
        os.chmod(self.passwd, 0o600)
        with open(self.conf, "w") as f:
            f.write(self._config())
        os.chmod(self.conf, 0o644)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self._out = open(os.path.join(self.root, "dovecot.out"), "wb")
        self.proc = subprocess.Popen([dovecot, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while not self._socket_ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = ("exited with %s" % self.proc.returncode
                       if self.proc.poll() is not None
                       else "no socket after %.0fs" % self.start_timeout)
                self.stop()
                raise PostfixError("dovecot %s\n--- dovecot log ---\n%s"
                                   % (why, self.log_tail()))
            time.sleep(0.05)
        return self

    def _socket_ready(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(2)
            s.connect(self.socket_path)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stop(self):
        """SIGTERM the master (it stops its children), then SIGKILL the group."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
        if self._out is not None:
            self._out.close()
            self._out = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def log_tail(self, n=30):
        text = []
        for p in (os.path.join(self.root, "dovecot.out"), self.log):
            try:
                with open(p, "rb") as f:
                    text += f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                pass
        return "\n".join(text[-n:]) or "(no dovecot output)"


def check_sessions_closed(pf, t):
    """TAP checks (t: taplib): every smtpd session that sent MAIL ended with
    QUIT, which pushmail sends after the end-of-data reply, not with it
    (issue 14), and none was lost after its data or pipelined improperly."""
    disc, bad = pf.session_ends()
    t.ok(disc and all(b" quit=1" in d for d in disc),
         "every smtpd session with MAIL ended with QUIT (%d sessions)" % len(disc),
         "without quit=1: %s" % t.show([d for d in disc if b" quit=1" not in d][:5]))
    t.is_eq(bad[:5], [], "no lost connection or improper pipelining in the maillog")
