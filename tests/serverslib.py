"""serverslib.py - a throwaway Exim and a throwaway Dovecot submission
service for interop tests (tests/interop_servers.py) and bench/servers.

Python 3 standard library plus tests/postfixlib.py (free_port,
wait_for_port, SmtpSink, TestCerts, DovecotAuth._user).  Everything listens
on 127.0.0.1 on ports from free_port(), lives in a directory the caller
owns, and every wait is bounded in time.  Needs root.

    exim = start_checked(lambda: Exim(tmp, certs, "user", "pw", cache,
                                      maildir=True), "exim")
    exim.ports["plain" | "submission" | "smtps"], exim.delivered(),
    exim.maildir_messages(), exim.connections(port); exim.stop()

    sink = start_checked(lambda: Sink(tmp), "smtp-sink")
    dov = start_checked(lambda: DovecotSubmission(tmp, certs, sink, "user", "pw"),
                        "dovecot")
    dov.ports["submission" | "smtps"], sink.messages(), dov.sessions(port)

Exim: Debian's exim4-daemon-light conflicts with Postfix, so it is never
installed: `apt-get download` of exim4-daemon-light, exim4-base and
exim4-config into a cache directory (once), `dpkg-deb -x` into the
caller's directory, run from there (see Exim).  Its shared libraries
(libidn12, libgnutls-dane0, libnsl2, libdb5.3, libpcre2-8-0, ...) must be
installed; Exim.unpack() names the missing ones.

Dovecot submission: dovecot-core and dovecot-submissiond
(/usr/lib/dovecot/submission), relaying to smtp-sink (postfix).
"""

import contextlib
import glob
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import time

import postfixlib

START_TIMEOUT = 30               # seconds for a daemon to listen
EXIM_DEBS = ("exim4-daemon-light", "exim4-base", "exim4-config")
DOVECOT_SUBMISSION = "/usr/lib/dovecot/submission"

__all__ = ["SetupError", "MissingPiece", "Exim", "DovecotSubmission", "Sink", "start_checked",
           "foreign_ports", "exim_debs", "wait_until", "stop_proc", "version", "sh",
           "read", "tail", "apt_env", "START_TIMEOUT", "EXIM_DEBS", "DOVECOT_SUBMISSION"]


class SetupError(RuntimeError):
    pass


class MissingPiece(SetupError):
    """Something to install is missing (the Exim packages cannot be fetched,
    a shared library Exim needs is not there): a test skips on it."""


def sh(argv, timeout=300, env=None, cwd=None):
    """Run a set-up command; SetupError with its output when it fails."""
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=cwd)
    except (subprocess.SubprocessError, OSError) as e:
        raise SetupError("%s: %s" % (" ".join(argv), e))
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise SetupError("%s: exit %d\n%s" % (" ".join(argv), p.returncode, out[-2000:]))
    return out


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def tail(path, n=30):
    return "\n".join(read(path).splitlines()[-n:]) or "(empty: %s)" % path


def stop_proc(proc, timeout=10):
    """SIGTERM a daemon we started, then SIGKILL its process group."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def _listen_inodes(port):
    """Socket inodes of every TCP socket listening on `port` on 127.0.0.1
    or a wildcard address (IPv4 and IPv6)."""
    out = []
    for table, addrs in (("/proc/net/tcp", ("0100007F", "00000000")),
                         ("/proc/net/tcp6", ("0" * 32, "0" * 24 + "0100007F",
                                             "0000000000000000FFFF00000100007F"))):
        for line in read(table).splitlines()[1:]:
            f = line.split()
            if len(f) > 9 and f[3] == "0A":
                addr, _, hexport = f[1].partition(":")
                if int(hexport, 16) == port and addr in addrs:
                    out.append(f[9])
    return out


def _own_sockets(pid):
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/%d/fd" % pid):
            with contextlib.suppress(OSError):
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    return inodes


def foreign_ports(pid, ports):
    """Ports of `pid` where it is not the one and only listener.  Ports come
    from free_port() (bind to 0, release): a test suite running at the same
    time can take the same port, and with SO_REUSEPORT on both sides the
    kernel then spreads connections over two servers without any error."""
    own = _own_sockets(pid)
    return [p for p in ports
            if len(_listen_inodes(p)) != 1 or _listen_inodes(p)[0] not in own]


def start_checked(make, what, attempts=3, note=None):
    """make() a server and start() it, retrying on fresh ports (bounded)
    while another process listens on one of its ports too; note(text), when
    given, hears about each retry."""
    for _ in range(attempts):
        srv = make()
        srv.start()
        bad = foreign_ports(srv.proc.pid, srv.ports.values())
        if not bad:
            return srv
        srv.stop()
        if note:
            note("%s: port %s is not ours alone (another process listens there too); "
                 "retrying on other ports" % (what, ", ".join(map(str, bad))))
    raise SetupError("%s: no ports of its own after %d attempts" % (what, attempts))


def stop_daemon(d):
    """Stop d.proc and close d.out (its output file), when there are."""
    stop_proc(d.proc)
    d.proc = None
    if getattr(d, "out", None):
        d.out.close()
        d.out = None


def wait_until(cond, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def apt_env():
    return dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def version(argv, pattern):
    """First group of `pattern` in the output of argv, or "?"."""
    try:
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=30).stdout.decode("utf-8",
                                                                                 "replace")
    except (subprocess.SubprocessError, OSError):
        return "?"
    m = re.search(pattern, out)
    return m.group(1) if m else "?"


# --- Exim --------------------------------------------------------------------------------

def exim_debs(cache, note=None, fetch=True):
    """Paths of the three .debs in the directory `cache`; `apt-get download`
    when one is missing (after `apt-get update` if the first try fails;
    never when fetch is false).  Delete the directory to fetch newer ones."""
    os.makedirs(cache, exist_ok=True)

    def found():
        got = {}
        for name in EXIM_DEBS:
            hits = sorted(glob.glob(os.path.join(cache, name + "_*.deb")))
            if hits:
                got[name] = hits[-1]
        return got

    got = found()
    if len(got) < len(EXIM_DEBS):
        if not fetch:
            raise MissingPiece("no %s in %s" % (" ".join(EXIM_DEBS), cache))
        if note:
            note("fetching %s into %s (apt-get download)" % (" ".join(EXIM_DEBS), cache))
        argv = ["apt-get", "download"] + list(EXIM_DEBS)
        try:
            sh(argv, env=apt_env(), cwd=cache)
        except SetupError:
            try:
                sh(["apt-get", "update"], env=apt_env())
                sh(argv, env=apt_env(), cwd=cache)
            except SetupError as e:
                raise MissingPiece(str(e))
        got = found()
    if len(got) < len(EXIM_DEBS):
        raise MissingPiece("apt-get download left no %s in %s"
                         % (", ".join(set(EXIM_DEBS) - set(got)), cache))
    return [got[n] for n in EXIM_DEBS]


class Exim:
    """A private Exim: the Debian binary unpacked under DIR/root, run as root
    with -C DIR/exim.conf -bdf (foreground), three ports on 127.0.0.1.

    Debian compiles the user "Debian-exim" into the binary and exim exits at
    once when it does not exist ("failed to find uid for user name").  That
    user is made by exim4-base's postinst, which is never run here.  When
    the host lacks it, exim runs in a private mount namespace (unshare -m)
    in which copies of /etc/passwd and /etc/group, bind-mounted over the
    originals, add "Debian-exim" as an alias of uid/gid `mail`; the host's
    files are not touched.  exim_user/exim_group in the configuration are
    then `mail`.

    -C as root is trusted (TRUSTED_CONFIG_LIST only restricts other
    callers); Debian sets no ALT_CONFIG_PREFIX.  deliver_drop_privilege
    keeps exim from re-exec'ing itself (with the compiled-in path) to
    deliver: the delivery to :blackhole: or to DIR/Maildir (owned by the
    exim user) needs no privilege.

    user/password: the one AUTH PLAIN login; cache: where the .debs are
    kept (exim_debs); maildir: deliver every recipient to DIR/Maildir
    instead of :blackhole:; note(text): progress messages (the download);
    open_smtps: a fourth port, "smtps-open", implicit TLS with AUTH PLAIN
    offered, whose RCPT ACL also takes 127.0.0.1 unauthenticated (a relay
    open to its network, where a refused AUTH is followed by a transaction
    Exim accepts)."""

    def __init__(self, tmp, certs, user, password, cache, maildir=False, note=None,
                 open_smtps=False):
        self.dir = os.path.join(tmp, "exim")
        self.root = os.path.join(self.dir, "root")
        self.conf = os.path.join(self.dir, "exim.conf")
        self.spool = os.path.join(self.dir, "spool")
        self.logdir = os.path.join(self.dir, "log")
        self.mainlog = os.path.join(self.logdir, "mainlog")
        self.pidfile = os.path.join(self.dir, "exim.pid")
        self.maildir = os.path.join(self.dir, "Maildir") if maildir else None
        self.certs, self.user, self.password = certs, user, password
        self.cache, self.note = cache, note
        self.modes = ("plain", "submission", "smtps") + (("smtps-open",) if open_smtps else ())
        self.ports = {m: postfixlib.free_port() for m in self.modes}
        self.proc = None
        self.version = "?"

    def unpack(self):
        os.makedirs(self.root, exist_ok=True)
        debs = exim_debs(self.cache, self.note)
        self.deb = os.path.basename(debs[0]).rsplit(".", 1)[0]     # name_version_arch
        for deb in debs:
            sh(["dpkg-deb", "-x", deb, self.root], timeout=120)
        self.exim = os.path.join(self.root, "usr", "sbin", "exim4")
        if not os.access(self.exim, os.X_OK):
            raise SetupError("no usr/sbin/exim4 in the unpacked packages")
        os.chmod(self.exim, 0o755)      # the .deb has it set-uid root; not needed here
        # its dependencies are not installed with it: name what is missing
        missing = sorted(set(re.findall(r"^\s*(\S+) => not found", sh(["ldd", self.exim]),
                                        re.M)))
        if missing:
            raise MissingPiece("exim4 needs shared libraries that are not installed: %s "
                             "(Debian: libidn12 libgnutls-dane0 libnsl2 libdb5.3 "
                             "libpcre2-8-0 libcrypt1)" % " ".join(missing))

    def _users(self):
        """(exim_user, argv prefix): run directly when Debian-exim exists,
        else in a mount namespace where it is an alias of mail."""
        try:
            pwd.getpwnam("Debian-exim")
            grp.getgrnam("Debian-exim")
            return "Debian-exim", []
        except KeyError:
            pass
        mail = pwd.getpwnam("mail")
        etc = os.path.join(self.dir, "etc")
        os.makedirs(etc, exist_ok=True)
        pw, gr = os.path.join(etc, "passwd"), os.path.join(etc, "group")
        with open(pw, "w") as f:
            f.write(read("/etc/passwd").rstrip("\n") + "\nDebian-exim:x:%d:%d:exim alias "
                    "(bench/servers):/nonexistent:/usr/sbin/nologin\n" % (mail.pw_uid, mail.pw_gid))
        with open(gr, "w") as f:
            f.write(read("/etc/group").rstrip("\n") + "\nDebian-exim:x:%d:\n" % mail.pw_gid)
        for p in (pw, gr):
            os.chmod(p, 0o644)
        return "mail", ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group '
                        '&& shift 2 && exec "$@"', "sh", pw, gr]

    def _config(self, user):
        p = self.ports
        return "\n".join([
            "# written by tests/serverslib.py: a throwaway Exim, everything to %s"
            % (self.maildir or ":blackhole:"),
            "exim_path = %s" % self.exim,
            "exim_user = %s" % user,
            "exim_group = %s" % user,
            "primary_hostname = exim.test.example",
            "qualify_domain = test.example",
            "local_interfaces = 127.0.0.1",
            "tls_on_connect_ports = %s" % " : ".join(str(p[m]) for m in self.modes
                                                      if m.startswith("smtps")),
            "spool_directory = %s" % self.spool,
            "log_file_path = %s/%%slog" % self.logdir,
            "log_selector = +tls_cipher +smtp_connection +incoming_port +incoming_interface "
            "+received_recipients",
            "keep_environment =",
            "host_lookup =",
            "rfc1413_hosts =",
            "deliver_drop_privilege = true",
            "message_size_limit = 200M",
            "timezone = UTC",
            # STARTTLS on the submission port only, so the plain port is plain;
            # AUTH only on a TLS session (the authenticator's condition below).
            "tls_advertise_hosts = ${if eq{$received_port}{%d}{*}{}}" % p["submission"],
            "tls_certificate = %s" % self.cert,
            "tls_privatekey = %s" % self.key,
            "pipelining_advertise_hosts = *",
            "chunking_advertise_hosts = *",
            "acl_smtp_rcpt = acl_check_rcpt",
            "",
            "begin acl",
            "acl_check_rcpt:",
        ] + ["  accept condition = ${if eq{$received_port}{%d}}\n         hosts = 127.0.0.1"
             % p[m] for m in ("plain", "smtps-open") if m in p] + [
            "  accept authenticated = *",
            "  deny   message = relay not permitted",
            "",
            "begin routers",
        ] + self._delivery(user) + [
            "begin authenticators",
            "plain_server:",
            "  driver = plaintext",
            "  public_name = PLAIN",
            "  server_prompts = :",
            "  server_condition = ${if and{{eq{$auth2}{%s}}{eq{$auth3}{%s}}}}"
            % (self.user, self.password),
            "  server_set_id = $auth2",
            "  server_advertise_condition = ${if def:tls_in_cipher}",
            "",
        ])

    def _delivery(self, user):
        """Routers and transports: everything to :blackhole:, or to the
        Maildir as the exim user (deliver_drop_privilege: no other uid)."""
        if not self.maildir:
            return ["blackhole:", "  driver = redirect", "  data = :blackhole:", "",
                    "begin transports", ""]
        return ["maildir:", "  driver = accept", "  transport = maildir_file", "",
                "begin transports",
                "maildir_file:",
                "  driver = appendfile",
                "  directory = %s" % self.maildir,
                "  maildir_format",
                "  create_directory",
                "  delivery_date_add",
                "  envelope_to_add",
                "  return_path_add",
                "  user = %s" % user,
                "  group = %s" % user,
                "  mode = 0600",
                ""]

    def start(self):
        self.unpack()
        user, prefix = self._users()
        u = pwd.getpwnam(user)
        if self.maildir:
            os.makedirs(self.maildir, exist_ok=True)
        for d in (self.spool, self.logdir) + ((self.maildir,) if self.maildir else ()):
            os.makedirs(d, exist_ok=True)
            os.chown(d, u.pw_uid, u.pw_gid)
            os.chmod(d, 0o750)
        # the TLS credentials, readable by the exim user (the receiving
        # process may have given up root when it reads them)
        self.cert, self.key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        shutil.copyfile(self.certs.cert, self.cert)
        shutil.copyfile(self.certs.key, self.key)
        for path, mode in ((self.cert, 0o644), (self.key, 0o600)):
            os.chown(path, u.pw_uid, u.pw_gid)
            os.chmod(path, mode)
        with open(self.conf, "w") as f:
            f.write(self._config(user))
        os.chmod(self.conf, 0o644)          # exim: owned by root, not writable by others
        self.version = version(prefix + [self.exim, "-C", self.conf, "-bV"],
                                 r"Exim version (\S+)")
        ports = ":".join(str(self.ports[m]) for m in self.modes)
        argv = prefix + [self.exim, "-C", self.conf, "-bdf", "-oX", ports, "-oP", self.pidfile]
        self.out = open(os.path.join(self.dir, "exim.out"), "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            for m in ("plain", "submission"):
                postfixlib.wait_for_port("127.0.0.1", self.ports[m], START_TIMEOUT)
            for m in self.modes[2:]:
                postfixlib.wait_for_port("127.0.0.1", self.ports[m], START_TIMEOUT,
                                         banner=False)
        except TimeoutError as e:
            self.stop()
            raise SetupError("exim did not start: %s\n--- exim.out ---\n%s\n--- mainlog ---\n%s"
                             "\n--- paniclog ---\n%s"
                             % (e, tail(os.path.join(self.dir, "exim.out")), tail(self.mainlog),
                                tail(os.path.join(self.logdir, "paniclog"))))
        return self

    def stop(self):
        stop_daemon(self)

    def delivered(self):
        """Messages Exim has finished with (mainlog "Completed" lines)."""
        return len(re.findall(r" Completed", read(self.mainlog)))

    def maildir_messages(self):
        """The messages in the Maildir (new/ and cur/), as bytes."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.maildir or "/nonexistent", "*", "*"))):
            if os.path.basename(os.path.dirname(path)) in ("new", "cur"):
                with contextlib.suppress(OSError), open(path, "rb") as f:
                    out.append(f.read())
        return out

    def connections(self, port):
        """Connections to `port` so far (mainlog "SMTP connection from" with
        the I=[127.0.0.1]:PORT of +incoming_interface)."""
        return len(re.findall(r"SMTP connection from .* I=\[127\.0\.0\.1\]:%d "
                              r"\(TCP/IP connection count" % port, read(self.mainlog)))

    def received(self, message_id):
        """Whether the mainlog has a "<=" (message accepted) line for the
        Message-ID: written before Exim answers the end of data."""
        return re.search(r"^\S+ \S+ \S+ <= .* id=%s\b" % re.escape(message_id),
                         read(self.mainlog), re.M) is not None

    def panics(self):
        """Lines in the paniclog."""
        return read(os.path.join(self.logdir, "paniclog")).splitlines()

    def problems(self):
        return tail(self.mainlog, 8) + "\n" + tail(os.path.join(self.logdir, "paniclog"), 8)


# --- Dovecot submission ------------------------------------------------------------------

class DovecotSubmission:
    """A private Dovecot with protocols = submission: a STARTTLS listener and
    an implicit-TLS one (ssl = yes), AUTH PLAIN against a passwd-file of one
    {PLAIN} user, relaying to `sink` (a Sink: smtp-sink on 127.0.0.1).  Run
    like tests/postfixlib.py DovecotAuth: `dovecot -F -c FILE`, its own
    base_dir, state_dir and log.  user/password: the one login."""

    def __init__(self, tmp, certs, sink, user, password):
        self.dir = os.path.join(tmp, "dovecot-submission")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.passwd = os.path.join(self.dir, "passwd")
        self.home = os.path.join(self.dir, "home")
        self.certs, self.sink, self.relay_port = certs, sink, sink.port
        self.user, self.password = user, password
        self.ports = {m: postfixlib.free_port() for m in ("submission", "smtps")}
        self.proc = None
        self.version = version([postfixlib.find_dovecot(), "--version"], r"(\S+)")

    def _config(self):
        user = postfixlib.DovecotAuth._user
        nb = pwd.getpwnam("nobody")
        return "\n".join([
            "# written by tests/serverslib.py: Dovecot submission relaying to smtp-sink",
            "base_dir = %s" % os.path.join(self.dir, "run"),
            "state_dir = %s" % os.path.join(self.dir, "state"),
            "log_path = %s" % self.log,
            "info_log_path = %s" % self.log,
            "protocols = submission",
            "listen = 127.0.0.1",
            "hostname = dovecot.test.example",
            "default_login_user = %s" % user("dovenull", "nobody"),
            "default_internal_user = %s" % user("dovecot", "nobody"),
            "ssl = yes",
            "ssl_cert = <%s" % self.certs.cert,
            "ssl_key = <%s" % self.certs.key,
            "disable_plaintext_auth = yes",
            "auth_mechanisms = plain",
            "auth_failure_delay = 0",
            "auth_verbose = yes",
            # lport: which listener a session came in on (sessions())
            "login_log_format_elements = user=<%u> method=%m rip=%r lip=%l "
            "lport=%{lport} mpid=%e %c session=<%{session}>",
            "mail_location = maildir:~/Maildir",
            "submission_relay_host = 127.0.0.1",
            "submission_relay_port = %d" % self.relay_port,
            "submission_relay_ssl = no",
            "passdb {",
            "  driver = passwd-file",
            "  args = scheme=PLAIN username_format=%%u %s" % self.passwd,
            "}",
            "userdb {",
            "  driver = static",
            "  args = uid=%d gid=%d home=%s" % (nb.pw_uid, nb.pw_gid, self.home),
            "}",
            "service submission-login {",
            "  inet_listener submission {",
            "    port = %d" % self.ports["submission"],
            "  }",
            "  inet_listener submissions {",
            "    port = %d" % self.ports["smtps"],
            "    ssl = yes",
            "  }",
            "}",
            "",
        ])

    def start(self):
        for d in (self.dir, os.path.join(self.dir, "run"), os.path.join(self.dir, "state"),
                  self.home):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.dir, 0o755)
        nb = pwd.getpwnam("nobody")
        os.chown(self.home, nb.pw_uid, nb.pw_gid)
        with open(self.passwd, "w") as f:
            f.write("%s:{PLAIN}%s\n" % (self.user, self.password))
        internal = pwd.getpwnam(postfixlib.DovecotAuth._user("dovecot", "nobody"))
        os.chown(self.passwd, internal.pw_uid, internal.pw_gid)
        os.chmod(self.passwd, 0o600)
        with open(self.conf, "w") as f:
            f.write(self._config())
        self.out = open(os.path.join(self.dir, "dovecot.out"), "wb")
        self.proc = subprocess.Popen([postfixlib.find_dovecot(), "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            postfixlib.wait_for_port("127.0.0.1", self.ports["submission"], START_TIMEOUT)
            postfixlib.wait_for_port("127.0.0.1", self.ports["smtps"], START_TIMEOUT,
                                     banner=False)
        except TimeoutError as e:
            self.stop()
            raise SetupError("dovecot did not start: %s\n%s\n%s"
                             % (e, tail(os.path.join(self.dir, "dovecot.out")), tail(self.log)))
        return self

    def stop(self):
        stop_daemon(self)

    def delivered(self):
        """Messages the relay received (Dovecot relays before it answers)."""
        return self.sink.delivered()

    def panics(self):
        """Dovecot's "Panic:" lines (a process hit an assertion)."""
        return [line for line in read(self.log).splitlines() if ": Panic: " in line]

    def sessions(self, port):
        """Client connections to `port` that submission-login finished with
        (a "Login:" or a "Disconnected" line naming local port `port`)."""
        return len(re.findall(r"submission-login: Info: (?:Login|Disconnected)\b.*"
                              r"lip=127\.0\.0\.1, .*lport=%d\b" % port, read(self.log)))

    def problems(self):
        return tail(self.log, 8) + "\n" + tail(self.sink.log, 8)


class Sink:
    """smtp-sink for Dovecot's relay: each transaction dumped to a file
    (-d), so arrivals are counted by the files."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "sink")
        os.makedirs(self.dir, exist_ok=True)
        pf = pwd.getpwnam("postfix")
        os.chown(self.dir, pf.pw_uid, pf.pw_gid)
        self.log = os.path.join(tmp, "smtp-sink.log")
        self.sink = postfixlib.SmtpSink(args=["-a", "-d", os.path.join(self.dir, "msg."),
                                              "-t", "300"], log_path=self.log)
        self.port = self.sink.port
        self.ports = {"relay": self.port}
        self.proc = None

    def start(self):
        self.sink.__enter__()
        self.proc = self.sink.proc
        return self

    def stop(self):
        self.sink.__exit__(None, None, None)

    def delivered(self):
        return len(glob.glob(os.path.join(self.dir, "msg.*")))

    def messages(self):
        """The dump files (smtp-sink's headers, then the message), as bytes."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.dir, "msg.*"))):
            with contextlib.suppress(OSError), open(path, "rb") as f:
                out.append(f.read())
        return out


