"""Helpers shared by the benchmark's modules, and the run's settings."""
import re
import subprocess
import sys
import time

KiB, MiB = 1 << 10, 1 << 20
PROG = "bench/run"


class Ctx:
    """What every part of one benchmark run needs: the options, the data
    scale, the patchsync binary, the clock for the log."""

    def __init__(self, opt, ps):
        self.opt = opt
        self.scale = 1 / 50 if opt["quick"] else 1.0
        self.ps = ps
        self.t0 = time.time()

    def log(self, msg):
        print("[%6.1fs] %s" % (time.time() - self.t0, msg), file=sys.stderr,
              flush=True)

    def vlog(self, msg):
        if self.opt["verbose"]:
            self.log(msg)

    def sh(self, argv, **kw):
        """Run a helper command (not measured); fail loudly."""
        self.vlog("+ " + " ".join(argv))
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, **kw)


def human(n):
    if n is None:
        return "n/a"
    for unit, k in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", KiB)):
        if n >= k:
            return "%.1f %s" % (n / k, unit)
    return "%d B" % n


def median(xs):
    xs = sorted(xs)
    k = len(xs)
    return (xs[(k - 1) // 2] + xs[k // 2]) / 2


def tail(s, n=300):
    s = " ".join(s.strip().splitlines()[-3:])
    return s[-n:] if s else "(no message)"


def has_option(argv, option):
    """Does ARGV's --help text name OPTION (a long option, "--fsync")?"""
    try:
        out = subprocess.run(argv + ["--help"], capture_output=True,
                             text=True, stdin=subprocess.DEVNULL,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return re.search(r"(^|[\s,])%s(?![\w-])" % re.escape(option), out,
                     re.M) is not None


def version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=10).stdout
        return out.splitlines()[0].strip() if out.strip() else "?"
    except (OSError, subprocess.SubprocessError):
        return "not runnable"
