"""Running one measured command, and what it cost on each side.

The console side is the command bench/run starts (rsync or patchsync,
plus the --rsh wrapper it starts per server); the server side is every
command the wrapper ran (rsync --server, patchsync serve). bench/rsh.c
runs each server under a helper that the wrapper never waits for, so
the console's rusage holds none of the server's; the helper records the
server's own rusage in a file. bench/run is a subreaper: the helpers
end up as its children once their wrapper is gone, and it reaps them.
"""
import ctypes
import os
import shutil
import signal
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def set_subreaper():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0     # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans():
    """Collect the helpers the wrappers left to us."""
    while True:
        try:
            pid, _, _ = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.001)


def build_wrappers(ctx, bindir):
    """Compile bench/rsh.c into BINDIR/rsh and copy the counting relay;
    return their paths."""
    os.makedirs(bindir, exist_ok=True)
    rsh = os.path.join(bindir, "rsh")
    cc = os.environ.get("CC", "cc")
    p = subprocess.run([cc, "-O2", "-o", rsh, os.path.join(HERE, "rsh.c")],
                       capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError("cannot compile bench/rsh.c with %s: %s"
                           % (cc, p.stderr.strip()))
    count = os.path.join(bindir, "count-rsh")
    shutil.copy(os.path.join(HERE, "count_rsh.py"), count)
    os.chmod(count, 0o755)
    return rsh, count


class Side:
    """What one side of one run cost: CPU seconds (user + sys, every
    process of it), the peak RSS of its largest process (bytes), and
    how many processes (servers) it was."""

    def __init__(self, cpu=0.0, rss=0, n=0):
        self.cpu, self.rss, self.n = cpu, rss, n

    def add(self, other):
        """Both sides of two runs one after the other (fan-out with
        rsync): CPU adds up, peak memory does not."""
        return Side(self.cpu + other.cpu, max(self.rss, other.rss),
                    self.n + other.n)


class Run:
    """One measured run. SENT (patchsync --json only): bytes the console
    sent on its own links; SENT_ALL: bytes sent to every server, by the
    console or by a relay."""

    def __init__(self, ok, wall, wire, con, srv, err="", out=""):
        self.ok, self.wall, self.wire = ok, wall, wire
        self.con, self.srv = con, srv
        self.err, self.out = err, out
        self.sent = self.sent_all = None

    def then(self, other):
        """This run followed by OTHER, as one."""
        return Run(self.ok and other.ok, self.wall + other.wall,
                   None if self.wire is None or other.wire is None
                   else self.wire + other.wire,
                   self.con.add(other.con), self.srv.add(other.srv),
                   "; ".join(e for e in (self.err, other.err) if e))


def read_server_logs(d):
    """The servers' records written by bench/rsh.c into D: a Side, and
    the messages of servers that failed."""
    side, bad = Side(), []
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        try:
            with open(p) as f:
                wall, user, sys_, rss, code = f.read().split()
            side = side.add(Side(float(user) + float(sys_),
                                 int(rss) * 1024, 1))
            if int(code) != 0:
                bad.append("server exit %s" % code)
        except (OSError, ValueError):
            bad.append("server record %s unreadable" % name)
        os.unlink(p)
    return side, bad


def timed(ctx, argv, logdir, tag):
    """Run ARGV; return (exit code, wall s, console Side, server Side,
    stdout, stderr)."""
    ctx.vlog("$ " + " ".join(argv))
    op, ep, rp = (os.path.join(logdir, tag + ext)
                  for ext in (".out", ".err", ".rss"))
    srvdir = os.path.join(logdir, tag + ".srv")
    shutil.rmtree(srvdir, ignore_errors=True)
    os.makedirs(srvdir)
    env = dict(os.environ, BENCH_SERVER_LOG=srvdir)
    # Peak RSS from GNU time, which forks the command itself: a child
    # forked from this Python would count Python's pages in its own.
    # CPU from wait4 on GNU time (its children's and its own, which is
    # a millisecond): microseconds rather than time's hundredths.
    with open(op, "wb") as o, open(ep, "wb") as e:
        t0 = time.perf_counter()
        p = subprocess.Popen(["/usr/bin/time", "-o", rp, "-f", "%M"] + argv,
                             stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                             start_new_session=True, env=env)
        # A hang must not stop the benchmark: kill the whole group (the
        # servers the wrapper started are in it too) after --timeout.
        hung = []
        timer = threading.Timer(ctx.opt["timeout"], lambda: (
            hung.append(1), os.killpg(p.pid, signal.SIGKILL)))
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    reap_orphans()
    try:
        with open(rp) as f:
            rss = int(f.read().split()[-1]) * 1024
    except (OSError, ValueError, IndexError):
        rss = 0
    con = Side(ru.ru_utime + ru.ru_stime, rss, 1)
    srv, bad = read_server_logs(srvdir)
    os.rmdir(srvdir)
    with open(op, "rb") as f:
        out = f.read().decode(errors="replace")
    with open(ep, "rb") as f:
        err = f.read().decode(errors="replace")
    if hung:
        err += "\nkilled: still running after %g s (--timeout)" % \
            ctx.opt["timeout"]
    elif bad and p.returncode != 0:
        err += "\n" + "; ".join(bad)
    return p.returncode, wall, con, srv, out, err
