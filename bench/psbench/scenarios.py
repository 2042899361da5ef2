"""What each scenario runs, for both tools, and how the results are
checked. Every tool run is measured (measure.timed) and then verified
(verify.verify) against the console tree."""
import json
import os
import re
import shutil
import subprocess
import time

from . import measure
from .measure import Run
from .util import has_option, tail
from .verify import verify, walk_files

TOOLS = ("rsync", "patchsync")
# rsync --fsync: for scenarios that write files on the server, the same
# rsync with every written file made durable, as patchsync always does.
FSYNC = "rsync-fsync"
MAX_JOBS = 64                   # push -j at most
COMPONENT = "tree"              # of the relay runs' configuration


class Bench:
    def __init__(self, ctx, work):
        self.ctx = ctx
        self.work = work
        self.rsh, self.count_rsh = measure.build_wrappers(
            ctx, os.path.join(work, "bin"))
        self.logdir = os.path.join(work, "log")
        os.makedirs(self.logdir, exist_ok=True)
        self.warnings = []
        self.commands = {}
        self.fsync = has_option(["rsync"], "--fsync")
        if not self.fsync:
            self.warn("this rsync has no --fsync option: no rsync --fsync "
                      "runs (fsync wall: -)")

    def warn(self, msg):
        """A warning: logged now, and printed under the table."""
        self.ctx.log("warning: " + msg)
        self.warnings.append(msg)

    def write_tools(self):
        """The tools of a scenario that writes files on the server."""
        return TOOLS + ((FSYNC,) if self.fsync else ())

    # server copies: OLD -> DST, with hard links for files no tool
    # should ever touch (both tools write new files beside, then rename)
    def prep(self, old, dst, real=(), link=True, fresh=False):
        if old is not None and os.path.isdir(dst) and not fresh:
            self.reset(old, dst)        # left by an earlier run (--dir)
            return
        shutil.rmtree(dst, ignore_errors=True)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if old is None:
            os.makedirs(dst)
            return
        self.ctx.sh(["cp", "-al" if link else "-a", old, dst])
        for p in real:
            q = os.path.join(dst, p)
            if os.path.exists(q):
                os.unlink(q)
                self.ctx.sh(["cp", "-a", os.path.join(old, p), q])

    def settle(self):
        """After the resets: write back what they dirtied (sync(2)), so
        that no measured run waits behind the disk writing the reset's
        bytes (a durable tool's fsync would, a page-cache copy not)."""
        os.sync()

    def reset(self, old, dst):
        if old is None:
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst)
        else:
            self.ctx.sh(["rsync", "-a", "--delete", "--exclude=/.patchsync/",
                         old + "/", dst + "/"])

    def rsync_push(self, src, dst, tag, fsync=False):
        argv = ["rsync", "-a", "--delete", "--stats"] + (
            ["--fsync"] if fsync else []) + [
            "-e", self.rsh, src + "/", "bench:" + dst + "/"]
        rc, wall, con, srv, out, err = measure.timed(self.ctx, argv,
                                                     self.logdir, tag)
        wire = stats_bytes(out)
        if rc != 0 or wire is None:
            return Run(False, wall, wire, con, srv,
                       "rsync exit %d: %s" % (rc, tail(err)), out), argv
        return Run(True, wall, wire, con, srv, out=out), argv

    def ps_push(self, src, dsts, tag):
        ps = self.ctx.ps
        argv = [ps, "push", src] + ["bench:" + d for d in dsts] + [
            "--rsh", self.rsh, "--remote-path", ps, "--delete", "--json"]
        if len(dsts) > 1:
            argv += ["-j", str(len(dsts))]
        return self.ps_run(argv, tag, len(dsts)), argv

    def ps_relay_push(self, conf, names, tag):
        """Push the servers NAMES of configuration CONF (relay_conf),
        which are behind its relay: the console pushes the relay, the
        relay passes the update on. The relay is a server too."""
        argv = [self.ctx.ps, "-c", conf, "push"] + names + [
            "--delete", "--json"]
        if len(names) > 1:
            argv += ["-j", str(min(len(names), MAX_JOBS))]
        return self.ps_run(argv, tag, len(names) + 1), argv

    def ps_run(self, argv, tag, nserv):
        """Run patchsync push ARGV (with --json), which must reach NSERV
        servers, each one server process (a relay's servers are started
        by the relay, under RSH too: they are server processes of this
        run). Wire bytes: of the console's own links."""
        rc, wall, con, srv, out, err = measure.timed(self.ctx, argv,
                                                     self.logdir, tag)
        if rc != 0:
            return Run(False, wall, None, con, srv, "patchsync exit %d: %s"
                       % (rc, tail(err)), out)
        try:
            wire, sent, sent_all, bad = push_json(out, nserv)
        except (ValueError, KeyError, TypeError) as e:
            return Run(False, wall, None, con, srv,
                       "patchsync --json unreadable (%s): %s"
                       % (e, tail(out)), out)
        if not bad and srv.n != nserv:
            bad = ["%d server records, expected %d" % (srv.n, nserv)]
        run = Run(not bad, wall, wire, con, srv, "; ".join(bad), out)
        run.sent, run.sent_all = sent, sent_all
        return run

    def relay_conf(self, src, cdir, relay, behind):
        """A console configuration and state database in CDIR (made
        anew): one component, SRC; server "relay" at RELAY and servers
        s0, s1, ... at BEHIND, reached through it; all over RSH with
        this patchsync. Returns (its path, None) or (None, why not)."""
        shutil.rmtree(cdir, ignore_errors=True)
        os.makedirs(cdir)
        conf = os.path.join(cdir, "bench.conf")
        with open(conf, "w") as f:
            f.write("[console]\nname = bench\ndatabase = %s\n\n"
                    "[component %s]\npath = %s\n" % (
                        os.path.join(cdir, "state.db"), COMPONENT, src))
        ps = self.ctx.ps
        servers = [("relay", relay, [])] + [
            ("s%d" % k, d, ["--via", "relay"]) for k, d in enumerate(behind)]
        for name, root, via in servers:
            argv = [ps, "-c", conf, "server", "add", name, "bench:" + root,
                    "--rsh", self.rsh, "--remote-path", ps] + via
            self.ctx.vlog("+ " + " ".join(argv))
            try:
                p = subprocess.run(argv, capture_output=True, text=True,
                                   stdin=subprocess.DEVNULL)
            except OSError as e:
                return None, "server add %s: %s" % (name, e)
            if p.returncode != 0:
                return None, "server add %s: exit %d: %s" % (
                    name, p.returncode, tail(p.stderr))
        return conf, None

    def check(self, run, tool, scen, src, dsts, known=None, since=None):
        if not run.ok:
            return run
        for d in dsts:
            why = verify(src, d, known, since)
            if isinstance(why, list):
                for w in why:
                    msg = "%s %s: %s" % (scen, tool, w)
                    if msg not in self.warnings:
                        self.warnings.append(msg)
            elif why:
                run.ok = False
                run.err = "server %s differs from the console: %s" % (
                    d, why)
                break
        return run


def push_json(out, nserv):
    """From patchsync push --json OUT, which must list NSERV servers:
    (wire bytes both ways and bytes sent on the console's own links,
    bytes sent to every server, a list of what went wrong)."""
    doc = json.loads(out)
    wire, sent, sent_all, bad = 0, 0, 0, []
    for s in doc["servers"]:
        if s.get("status") != "ok":
            bad.append("%s: %s" % (s.get("url"), s.get("error")))
        sent_all += int(s["bytes_sent"])
        if s.get("via") is None:
            sent += int(s["bytes_sent"])
            wire += int(s["bytes_sent"]) + int(s["bytes_received"])
    if len(doc["servers"]) != nserv:
        bad.append("%d servers in --json, expected %d"
                   % (len(doc["servers"]), nserv))
    return wire, sent, sent_all, bad


def stats_bytes(out):
    s = re.search(r"Total bytes sent: ([\d,]+)", out)
    r = re.search(r"Total bytes received: ([\d,]+)", out)
    if not s or not r:
        return None
    return int(s.group(1).replace(",", "")) + int(r.group(1).replace(",", ""))


def known_links(old, changed):
    """(dev, ino) -> path of the files of OLD that hold the console's
    bytes (all but CHANGED): server copies made with cp -al share them."""
    known = {}
    for p, st in walk_files(old).items():
        if p not in changed:
            known[(st.st_dev, st.st_ino)] = p
    return known


def push_scenario(b, scen, src, old, nserv, real, known, runs,
                  tools=TOOLS):
    """TOOLS push SRC to NSERV server copies made from OLD (None:
    empty). rsync (and rsync --fsync) runs once per server, one after
    the other. Returns {tool: [Run, ...]}: the measured runs, or the one
    that failed."""
    ctx = b.ctx
    sdir = os.path.join(b.work, "srv", scen)
    dst = {t: [os.path.join(sdir, "%s%d" % (t, k)) for k in range(nserv)]
           for t in tools}
    for t in dst:
        for d in dst[t]:
            b.prep(old, d, real)
    res = {t: [] for t in tools}
    dead = {t: False for t in tools}
    for rep in range(runs + 1):                 # run 0 is the warm-up
        for t in tools:
            if dead[t]:
                continue
            for d in dst[t]:
                b.reset(old, d)
            b.settle()
            tag = "%s-%s-%d" % (scen, t, rep)
            if t != "patchsync":
                run = None
                for k, d in enumerate(dst[t]):
                    part, argv = b.rsync_push(src, d, "%s.%d" % (tag, k),
                                              fsync=t == FSYNC)
                    run = part if run is None else run.then(part)
                    if not part.ok:
                        break
                if nserv > 1:
                    argv = ["for each of the %d servers:" % nserv] + argv
            else:
                run, argv = b.ps_push(src, dst[t], tag)
            b.commands.setdefault(scen, {})[t] = argv
            run = b.check(run, t, scen, src, dst[t], known)
            ctx.vlog("%s %s run %d: %s %.3f s" % (
                scen, t, rep, "ok" if run.ok else "FAILED: " + run.err,
                run.wall))
            if not run.ok:
                dead[t] = True
                res[t] = [run]
                ctx.log("%s: %s FAILED: %s" % (scen, t, run.err))
                for d in dst[t]:        # leave no half-state behind
                    b.prep(old, d, real, fresh=True)
            elif rep > 0:
                res[t].append(run)
    return res


def noop_scenario(b, scen, src, runs, since_check=False):
    """Push SRC to a server copy that already equals it. The server
    copies are real copies (not links) made with cp -a: same bytes, same
    mtimes. Nothing should change, and nothing may. SINCE_CHECK: read
    back only the server files whose inode changed during the run (for a
    million files; the others were checked by their metadata)."""
    sdir = os.path.join(b.work, "srv", scen)
    res = {t: [] for t in TOOLS}
    dst = {t: os.path.join(sdir, t + "0") for t in res}
    for d in dst.values():
        b.prep(src, d, link=False)
    for rep in range(runs + 1):
        for t in TOOLS:
            if res[t] and not res[t][-1].ok:
                continue
            b.reset(src, dst[t])
            # ctime is kept at the kernel's tick: allow a second.
            since = time.time_ns() - 10**9 if since_check else None
            tag = "%s-%s-%d" % (scen, t, rep)
            if t == "rsync":
                run, argv = b.rsync_push(src, dst[t], tag)
            else:
                run, argv = b.ps_push(src, [dst[t]], tag)
            b.commands.setdefault(scen, {})[t] = argv
            run = b.check(run, t, scen, src, [dst[t]], since=since)
            if not run.ok:
                b.ctx.log("%s: %s FAILED: %s" % (scen, t, run.err))
                res[t] = [run]
                b.prep(src, dst[t], link=False, fresh=True)
            elif rep > 0:
                res[t].append(run)
    return res


def report_once(b, t, src, dst, want, tag, rsh):
    """One listing by tool T; returns a Run (wire: None)."""
    ps = b.ctx.ps
    if t == "rsync":
        argv = ["rsync", "-an", "--delete", "-i", "--stats", "-e", rsh,
                src + "/", "bench:" + dst + "/"]
    else:
        argv = [ps, "report", src, "bench:" + dst, "--rsh", rsh,
                "--remote-path", ps, "--format", "json"]
    rc, wall, con, srv, out, err = measure.timed(b.ctx, argv, b.logdir, tag)
    got = set()
    if t == "rsync":
        for line in out.splitlines():
            m = re.match(r"^[<>]f\S{9,10} (.*)$", line)
            if m:
                got.add(m.group(1))
        ok, why = rc == 0, "rsync exit %d: %s" % (rc, tail(err))
    else:
        ok, why = rc == 1, "patchsync exit %d (want 1): %s" % (rc, tail(err))
        if ok:
            try:
                for s in json.loads(out)["servers"]:
                    for f in s["files"]:
                        got.add(f["path"] if f["state"] == "missing"
                                else "%s (%s)" % (f["path"], f["state"]))
            except (ValueError, KeyError, TypeError) as e:
                ok, why = False, "report json unreadable: %s: %s" % (
                    e, tail(out))
    if ok and got != want:
        extra, lack = sorted(got - want), sorted(want - got)
        ok, why = False, "listing wrong: %d not expected (%s), %d " \
            "missing (%s)" % (len(extra), extra[:1], len(lack), lack[:1])
    return Run(ok, wall, None, con, srv, "" if ok else why), argv


def report_scenario(b, src, srv_tree, missing, runs):
    # Nothing writes to a server in this scenario (patchsync may keep its
    # cache in .patchsync/, which rsync's listing leaves out): both tools
    # ask the data set's own server tree.
    want = set(missing)
    res = {t: [] for t in TOOLS}
    for rep in range(runs + 1):
        for t in TOOLS:
            if res[t] and not res[t][-1].ok:
                continue
            run, argv = report_once(b, t, src, srv_tree, want,
                                    "report-%s-%d" % (t, rep), b.rsh)
            b.commands.setdefault("report", {})[t] = argv
            if not run.ok:
                b.ctx.log("report: %s FAILED: %s" % (t, run.err))
                res[t] = [run]
            elif rep > 0:
                res[t].append(run)
    # Wire bytes: one more, untimed, run through a counting relay, the
    # same way for both tools (report --format json has no byte counts).
    cf = os.path.join(b.logdir, "report.count")
    os.environ["BENCH_COUNT_FILE"] = cf
    for t in TOOLS:
        if not res[t] or not res[t][-1].ok:
            continue
        run, _ = report_once(b, t, src, srv_tree, want,
                             "report-%s-count" % t, b.count_rsh)
        try:
            with open(cf) as f:
                wire = sum(int(x) for x in f.read().split())
            os.unlink(cf)
        except (OSError, ValueError):
            wire = None
        for r in res[t]:
            r.wire = wire if run.ok else None
    return res


GROWTH = "fan-out-growth"
MODES = ("direct", "relay")


def growth_copies(b, old, real, nmax):
    """The server copies of fan-out-growth, made from OLD: {"direct":
    [copy, ...], "relay": [the relay's copy, copy behind it, ...]}, and
    the server roots behind the relay (a configuration's servers hold
    the component in ROOT/COMPONENT)."""
    sdir = os.path.join(b.work, "srv", GROWTH)
    behind = [os.path.join(sdir, "behind%d" % k) for k in range(nmax)]
    copies = {
        "direct": [os.path.join(sdir, "direct%d" % k) for k in range(nmax)],
        "relay": [os.path.join(r, COMPONENT) for r in
                  [os.path.join(sdir, "relay")] + behind]}
    for d in copies["direct"] + copies["relay"]:
        b.prep(old, d, real)
    return copies, behind


def growth_once(b, mode, n, src, old, copies, conf, tag):
    """One push of fan-out-growth to N servers in MODE; returns the Run,
    the command and the server copies it wrote."""
    if mode == "direct":
        dsts = copies["direct"][:n]
        for d in dsts:
            b.reset(old, d)
        b.settle()
        run, argv = b.ps_push(src, dsts, tag)
    else:
        dsts = copies["relay"][:n + 1]
        for d in dsts:
            b.reset(old, d)
        b.settle()
        run, argv = b.ps_relay_push(conf, ["s%d" % k for k in range(n)],
                                    tag)
    return run, argv, dsts


def growth_scenario(b, src, old, real, known, counts, runs):
    """patchsync pushes SRC to N server copies made from OLD, for each N
    in COUNTS: directly (-j N, at most 64), and through one relay with
    the N servers behind it. Returns {(n, mode): [Run, ...]}: the
    measured runs, or the one that failed."""
    copies, behind = growth_copies(b, old, real, max(counts))
    conf, why = b.relay_conf(src, os.path.join(b.work, GROWTH),
                             os.path.dirname(copies["relay"][0]), behind)
    res = {}
    for n in counts:
        for mode in MODES:
            res[(n, mode)] = [] if conf or mode == "direct" else [
                Run(False, 0.0, None, measure.Side(), measure.Side(), why)]
        for rep in range(runs + 1):             # run 0 is the warm-up
            for mode in MODES:
                if res[(n, mode)] and not res[(n, mode)][-1].ok:
                    continue
                tag = "%s-%d-%s-%d" % (GROWTH, n, mode, rep)
                run, argv, dsts = growth_once(b, mode, n, src, old, copies,
                                              conf, tag)
                b.commands.setdefault("%s-%d" % (GROWTH, n), {})[mode] = argv
                run = b.check(run, "patchsync", GROWTH, src, dsts, known)
                b.ctx.vlog("%s %d %s run %d: %s %.3f s" % (
                    GROWTH, n, mode, rep,
                    "ok" if run.ok else "FAILED: " + run.err, run.wall))
                if not run.ok:
                    b.ctx.log("%s: %d servers, %s: FAILED: %s" % (
                        GROWTH, n, mode, run.err))
                    res[(n, mode)] = [run]
                    for d in dsts:      # leave no half-state behind
                        b.prep(old, d, real, fresh=True)
                elif rep > 0:
                    res[(n, mode)].append(run)
    return res
