"""taplib.py - a tiny TAP producer and helpers to run pushmail in tests.

    import taplib as t
    t.ok(cond, "name", "diagnostic shown on failure", ...)
    t.is_eq(got, want, "name")
    sys.exit(t.done())                  # prints the plan "1..N" at the end

    cfg = t.write_config(port=srv.port, partial_delivery="yes")
    r = t.run_pushmail(["-C", cfg, "rcpt@example.org"], stdin=b"...")
    r.rc, r.out, r.err, r.elapsed, r.maxrss_kb (sampled VmHWM), r.timed_out

Runs happen with HOME, XDG_CONFIG_HOME and XDG_STATE_HOME pointing into a
private temporary directory and PUSHMAIL_CONFIG unset, so the developer's own
configuration and queue are never touched.
"""

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PUSHMAIL = os.environ.get("PUSHMAIL") or os.path.join(HERE, "..", "src", "pushmail")
SRCDIR = os.environ.get("TESTS_SRCDIR") or HERE
RUN_TIMEOUT = 30.0

# Set by .ci/run's sanitizer stage: AddressSanitizer reserves terabytes of
# address space and keeps shadow memory, so memory limits and peak-RSS
# figures say nothing about pushmail there.  Memory checks are made (and
# must pass) in the ordinary build.
SANITIZED = bool(os.environ.get("PUSHMAIL_SANITIZED"))

# Keys every generated account gets unless a test overrides them (None
# removes one).  queue = never: the scripted-server suites assert the exit
# status of the delivery attempt itself (75 for temporary failures), which
# the default queue = on-failure would turn into "queued, exit 0".
CONFIG_DEFAULTS = {
    "queue": "never",
    "host": "127.0.0.1",
    "tls": "off",
    "auth": "off",
    "from": "sender@example.com",
    "domain": "client.example",
    "timeout": "3",
}

_n = 0
_failed = 0
_planned = None
_tmp = None


# --------------------------------------------------------------------------
# TAP

def _out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def diag(*lines):
    for msg in lines:
        for l in str(msg).splitlines() or [""]:
            _out("# " + l)


def plan(n):
    """Print the plan up front (optional: done() prints it otherwise)."""
    global _planned
    _planned = n
    _out("1..%d" % n)


def ok(cond, name, *diagnostics, todo=None):
    """One test.  todo (a reason) marks a known, reported defect: TAP's
    "# TODO" directive, shown but not counted as a failure."""
    global _n, _failed
    _n += 1
    name = str(name).replace("\n", " ").replace("#", "\\#")
    directive = " # TODO %s" % str(todo).replace("\n", " ") if todo else ""
    _out("%sok %d - %s%s" % ("" if cond else "not ", _n, name, directive))
    if not cond:
        if not todo:
            _failed += 1
        diag(*diagnostics)
    return bool(cond)


def is_eq(got, want, name, *diagnostics, todo=None):
    return ok(got == want, name, "got:  %s" % show(got), "want: %s" % show(want),
              *diagnostics, todo=todo)


def skip(name, reason):
    global _n
    _n += 1
    _out("ok %d - %s # SKIP %s" % (_n, name, reason))


def skip_all(reason):
    _out("1..0 # SKIP %s" % reason)
    sys.exit(0)


def done():
    """Print the plan (unless given up front); return the exit status."""
    if _planned is None:
        _out("1..%d" % _n)
    elif _planned != _n:
        diag("planned %d tests but ran %d" % (_planned, _n))
        return 1
    return 1 if _failed else 0


def show(x, limit=400):
    """A short printable form of bytes/str for diagnostics."""
    if isinstance(x, (bytes, bytearray)):
        s = repr(bytes(x[:limit]))
        return s + ("... (%d bytes)" % len(x) if len(x) > limit else "")
    s = repr(x)
    return s if len(s) <= limit else s[:limit] + "..."


# --------------------------------------------------------------------------
# Environment

def tmpdir():
    """The suite's private temporary directory (removed at exit unless
    PUSHMAIL_TEST_KEEP is set)."""
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix="pushmail-test-")
        for d in ("home", "xdg-config", "xdg-state", "xdg-cache"):
            os.mkdir(os.path.join(_tmp, d))
        if not os.environ.get("PUSHMAIL_TEST_KEEP"):
            atexit.register(shutil.rmtree, _tmp, True)
    return _tmp


def have_pushmail():
    return os.access(PUSHMAIL, os.X_OK)


def require_pushmail():
    if not have_pushmail():
        skip_all("pushmail binary not found at %s" % PUSHMAIL)


def base_env(**overrides):
    env = dict(os.environ)
    env.pop("PUSHMAIL_CONFIG", None)
    t = tmpdir()
    env.update(HOME=os.path.join(t, "home"),
               XDG_CONFIG_HOME=os.path.join(t, "xdg-config"),
               XDG_STATE_HOME=os.path.join(t, "xdg-state"),
               XDG_CACHE_HOME=os.path.join(t, "xdg-cache"),
               # root's queue is /var/spool/pushmail: keep tests out of it
               PUSHMAIL_QUEUE_DIR=os.path.join(t, "queue"),
               LC_ALL="C", TZ="UTC")
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


_cfg_count = 0


def write_config(port=None, account="test", text=None, **keys):
    """Write a configuration file (mode 0600) and return its path.

    With text, the file holds exactly that.  Otherwise it has one account
    [account] with CONFIG_DEFAULTS, port, and keys (a value of None removes a
    default key).  Keys are written in a stable order."""
    global _cfg_count
    _cfg_count += 1
    path = os.path.join(tmpdir(), "config-%d.ini" % _cfg_count)
    if text is None:
        settings = dict(CONFIG_DEFAULTS)
        if port is not None:
            settings["port"] = str(port)
        settings.update(keys)
        lines = ["[%s]" % account]
        lines += ["%s = %s" % (k, v) for k, v in settings.items() if v is not None]
        text = "\n".join(lines) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def closed_port():
    """A 127.0.0.1 port that nothing listens on (bound, then released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# Running pushmail

class Result:
    def __init__(self, rc, out, err, elapsed, maxrss_kb, timed_out):
        self.rc, self.out, self.err = rc, out, err
        self.elapsed, self.maxrss_kb, self.timed_out = elapsed, maxrss_kb, timed_out

    def describe(self):
        return ["exit %s after %.2fs, maxrss %d KiB%s" % (
                    self.rc, self.elapsed, self.maxrss_kb,
                    " (killed: timeout)" if self.timed_out else ""),
                "stdout: %s" % show(self.out), "stderr: %s" % show(self.err)]


def _drain(f, sink):
    try:
        while True:
            b = f.read(65536)
            if not b:
                break
            sink.append(b)
    except (OSError, ValueError):
        pass


def _feed(f, data):
    try:
        view = memoryview(data)
        for i in range(0, len(view), 1 << 20):
            f.write(view[i:i + (1 << 20)])
    except (BrokenPipeError, OSError, ValueError):
        pass
    finally:
        try:
            f.close()
        except OSError:
            pass


def _hwm_kb(pid, exe):
    """VmHWM of pid once it runs `exe`, else 0.  (wait4's ru_maxrss cannot be
    used: it includes the memory of the forked Python before exec.)"""
    try:
        if os.readlink("/proc/%d/exe" % pid) != exe:
            return 0
        with open("/proc/%d/status" % pid, "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def ok_intact(name, got, want):
    """The delivered message equals want (hashes shown on failure)."""
    import hashlib
    return ok(got == want, name + ": delivered intact (%d bytes)" % len(want),
              "got %d bytes sha256 %s, want sha256 %s" % (
                  len(got), hashlib.sha256(got).hexdigest()[:16],
                  hashlib.sha256(want).hexdigest()[:16]))


def ok_size_param(name, mail, want_len):
    """MAIL declared SIZE= close to the message size (stdin a regular file)."""
    import re
    m = re.search(rb" SIZE=(\d+)", mail or b"")
    size = int(m.group(1)) if m else 0
    return ok(m and 0.95 * want_len <= size <= 1.1 * want_len + 4096,
              name + ": SIZE= declared for a regular-file stdin",
              "MAIL: %s, message %d bytes" % (show(mail), want_len))


def server_diag(res, srv, limit=400):
    """Diagnostics for a run against a ScriptedServer."""
    rec = srv.record
    info = res.describe()
    if rec:
        info += ["server commands: %s" % show(rec.commands, limit),
                 "server end: %s" % rec.end]
    if srv.errors:
        info += ["server errors: %s" % srv.errors]
    return info


def check_exit(name, res, want, info):
    """want is an exit status, or "nonzero"."""
    if want == "nonzero":
        return ok(res.rc not in (0, None) and not res.timed_out,
                  name + ": exit status non-zero (got %s)" % res.rc, *info)
    return is_eq(res.rc, want, name + ": exit status", *info)


def write_big_message(path, head, mib=20):
    """Write head then about `mib` MiB of body to path: 76-byte lines, every
    third ending in CRLF and the rest in bare LF, every hundredth starting
    with '.'.  Returns the number of body lines."""
    block = []
    for i in range(1000):
        lead = b"." if i % 100 == 0 else b""
        end = b"\r\n" if i % 3 == 0 else b"\n"
        block.append(lead + b"%04d " % i + b"x" * 72 + end)
    block = b"".join(block)
    reps = (mib << 20) // len(block) + 1
    with open(path, "wb") as f:
        f.write(head)
        for _ in range(reps):
            f.write(block)
    return reps * 1000


def run(argv, stdin=b"", stdin_file=None, env=None, timeout=RUN_TIMEOUT,
        data_limit=None, new_session=False):
    """Run argv with stdin bytes (or an open file / path as stdin_file).

    Returns a Result.  maxrss_kb is the peak resident size (VmHWM) sampled
    every few milliseconds while the program runs, so a short final spike can
    be missed.  data_limit (bytes) runs the program under prlimit --data, so a
    program that holds more than that in memory fails outright.  new_session
    runs it in a new session without a controlling terminal (so /dev/tty
    cannot be opened, as under cron)."""
    if env is None:
        env = base_env()
    exe = os.path.realpath(shutil.which(argv[0]) or argv[0])
    if SANITIZED:
        data_limit = None
    if data_limit is not None:
        argv = ["prlimit", "--data=%d" % data_limit, "--"] + list(argv)
    fin = None
    if stdin_file is not None:
        fin = open(stdin_file, "rb") if isinstance(stdin_file, str) else stdin_file
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=fin if fin is not None else subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         start_new_session=new_session)
    out, err = [], []
    threads = [threading.Thread(target=_drain, args=(p.stdout, out), daemon=True),
               threading.Thread(target=_drain, args=(p.stderr, err), daemon=True)]
    if fin is None:
        threads.append(threading.Thread(target=_feed, args=(p.stdin, stdin),
                                        daemon=True))
    for th in threads:
        th.start()
    timed_out = False
    status, ru = None, None
    deadline = t0 + timeout
    hwm = 0
    while True:
        hwm = max(hwm, _hwm_kb(p.pid, exe))
        pid, st, usage = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            status, ru = st, usage
            break
        if time.monotonic() > deadline:
            timed_out = True
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(0.002)
    elapsed = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    for th in threads:
        th.join(5)
    if fin is not None and isinstance(stdin_file, str):
        fin.close()
    for f in (p.stdout, p.stderr):
        try:
            f.close()
        except OSError:
            pass
    return Result(p.returncode, b"".join(out), b"".join(err), elapsed,
                  hwm, timed_out)


def run_pushmail(args, **kw):
    return run([PUSHMAIL] + list(args), **kw)


# --------------------------------------------------------------------------
# Message helpers

def normalise(data):
    """SPEC 5: CRLF, bare LF and bare CR each become CRLF; a missing final
    line ending is added (an empty input stays empty)."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def dot_stuff(data):
    """The DATA form of a normalised message: stuffed, with ".\\r\\n" added."""
    lines = data.split(b"\r\n")
    body = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)
    return body + b".\r\n"


def split_message(msg):
    """(header lines, body) of a CRLF message; header lines unfolded are not
    needed by these tests, so they are returned as-is."""
    i = msg.find(b"\r\n\r\n")
    if i < 0:
        return msg.split(b"\r\n"), b""
    return msg[:i].split(b"\r\n"), msg[i + 4:]


def bare_line_ends(data):
    """Offsets of CR not followed by LF and of LF not preceded by CR."""
    bad = []
    i = data.find(b"\r")
    while i >= 0:
        if data[i + 1:i + 2] != b"\n":
            bad.append(i)
        i = data.find(b"\r", i + 1)
    i = data.find(b"\n")
    while i >= 0:
        if i == 0 or data[i - 1:i] != b"\r":
            bad.append(i)
        i = data.find(b"\n", i + 1)
    return sorted(bad)
