"""bench/run — patchsync against rsync 3.x on the scenarios of SPEC 11.

  bench/run [--quick] [--runs N] [--only SCENARIO[,SCENARIO...]]
            [--seed S] [--dir DIR] [--keep] [--timeout S] [--markdown]
            [--json FILE] [-v]

Scenarios (default): initial patch-tuesday definitions scattered
definitions-text noop fan-out report. Only with --only: noop-1m (a
million files; about 4 GiB of data and two copies of it), fan-out-64
(patch-tuesday to 64 servers, and to one for comparison) and
fan-out-growth (patchsync alone: patch-tuesday to 1, 8 and 64 servers,
directly and through one relay; a table of its own).

Data is made deterministically from the seed under a temporary
directory (removed at the end unless --keep; --dir DIR uses DIR and
reuses data already made there with the same settings). --quick scales
every data set down 50 times. Each tool runs once untimed to warm up,
then N times (default 3); the server copies are reset before every run,
and every run is checked: the server tree must equal the console tree
byte for byte, with nothing extra. Both tools talk to their server role
through the same local --rsh wrapper (bench/rsh.c: a pipe to a second
process, as over ssh). Where a scenario writes files on the server,
rsync --fsync runs too, the same way (when this rsync has --fsync).
Prints one table: median wall time, bytes on the wire, CPU seconds of
the console side and of the server side, peak RSS of each side,
patchsync/rsync ratios, and the wall of rsync --fsync with patchsync's
against it (--markdown: as Markdown; --json FILE: every number, and
every run, as JSON, "-" for stdout).

fan-out-growth pushes with patchsync only: `push SRC bench:D1 ... -j N`
(direct), and `-c CONF push s0 ... -j N` (relay: a configuration and
state database under WORK/fan-out-growth with a server "relay" and N
servers behind it, `server add --via relay`; the relay's own servers
run under the --rsh wrapper too and count as server processes). Its
table, after the main one: per number of servers and mode, wall,
console CPU (and per server), bytes the console sent on its own links
(direct: to every server; relay: to the relay), bytes sent to all
servers, server CPU, and console CPU and bytes sent against the same
mode with one server (--json: "fan_out_growth").

Exit 0 when every run of both tools succeeded and verified, 1 when one
failed (the table is still printed), 2 on a usage error. A run still
going after --timeout seconds (default 600, 8 with --quick) is killed
and counts as failed. Binary: $PATCHSYNC, else build/src/patchsync next
to this script. Needs rsync, GNU time (/usr/bin/time) and a C compiler.
"""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys

from psbench import data, measure, scenarios, table
from psbench.util import PROG, Ctx, human, version

SCENARIOS = ["initial", "patch-tuesday", "definitions", "scattered",
             "definitions-text", "noop", "fan-out", "report"]
OPT_IN = ["noop-1m", "fan-out-64", "fan-out-growth"]
FANOUT = 8
FANOUT_BIG = 64
GROWTH = (1, 8, 64)             # servers of fan-out-growth


def usage(msg=None):
    """--help: the whole text on stdout; a usage error: the message and
    the synopsis on stderr, exit 2."""
    if msg is None:
        print(__doc__.strip())
        sys.exit(0)
    print("%s: %s" % (PROG, msg), file=sys.stderr)
    print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    o = dict(quick=False, runs=None, only=list(SCENARIOS), seed=1, dir=None,
             keep=False, markdown=False, verbose=False, timeout=None,
             json=None)
    known = SCENARIOS + OPT_IN
    i = 0
    while i < len(argv):
        a = argv[i]

        def val():
            if i + 1 >= len(argv):
                usage("%s needs a value" % a)
            return argv[i + 1]
        if a == "--quick":
            o["quick"] = True
        elif a == "--runs":
            v = val()
            i += 1
            if not v.isdigit() or int(v) < 1:
                usage("--runs wants a number >= 1, not '%s'" % v)
            o["runs"] = int(v)
        elif a == "--only":
            v = val()
            i += 1
            names = [s for s in v.split(",") if s]
            for s in names:
                if s not in known:
                    usage("unknown scenario '%s' (known: %s)"
                          % (s, " ".join(known)))
            if not names:
                usage("--only wants a scenario name")
            o["only"] = [s for s in known if s in names]
        elif a == "--seed":
            v = val()
            i += 1
            if not v.isdigit():
                usage("--seed wants a number, not '%s'" % v)
            o["seed"] = int(v)
        elif a == "--timeout":
            v = val()
            i += 1
            if not v.isdigit() or int(v) < 1:
                usage("--timeout wants seconds >= 1, not '%s'" % v)
            o["timeout"] = int(v)
        elif a == "--dir":
            o["dir"] = val()
            i += 1
        elif a == "--json":
            o["json"] = val()
            i += 1
        elif a == "--keep":
            o["keep"] = True
        elif a == "--markdown":
            o["markdown"] = True
        elif a in ("-v", "--verbose"):
            o["verbose"] = True
        elif a in ("-h", "--help"):
            usage()
        else:
            usage("unknown option: %s" % a)
        i += 1
    if o["timeout"] is None:
        o["timeout"] = 8 if o["quick"] else 600
    if o["runs"] is None:
        o["runs"] = 1 if o["quick"] else 3
    return o


def main(argv):
    opt = parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    ps = os.path.abspath(os.environ.get(
        "PATCHSYNC", os.path.join(here, "..", "build", "src", "patchsync")))
    for tool in ("rsync", "/usr/bin/time"):
        if shutil.which(tool) is None:
            print("%s: %s is needed" % (PROG, tool), file=sys.stderr)
            return 2
    ctx = Ctx(opt, ps)
    if not (os.path.isfile(ps) and os.access(ps, os.X_OK)):
        ctx.log("no patchsync binary at %s: its cells will say FAILED" % ps)
    if not measure.set_subreaper():
        print("%s: cannot become a subreaper (prctl): the server side "
              "cannot be measured apart" % PROG, file=sys.stderr)
        return 2
    if opt["dir"]:
        work = os.path.abspath(opt["dir"])
        os.makedirs(work, exist_ok=True)
        keep = True
    else:
        work = subprocess.run(
            ["mktemp", "-d", os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                          "psbench.XXXXXX")],
            check=True, capture_output=True, text=True).stdout.strip()
        keep = opt["keep"]
    # Neither tool reads the machine's own configuration or caches.
    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    for k, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"),
                   ("XDG_STATE_HOME", "state"), ("XDG_DATA_HOME", "data")):
        os.environ[k] = os.path.join(home, sub)
    os.environ.pop("PATCHSYNC_CONFIG", None)
    os.environ["TMPDIR"] = os.path.join(work, "tmp")
    os.makedirs(os.environ["TMPDIR"], exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    try:
        return run_all(ctx, work)
    except RuntimeError as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 2
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            ctx.log("kept %s" % work)


def run_scenario(b, scen, metas, runs):
    """Run SCEN with both tools (and rsync --fsync when SCEN writes
    files on the server); returns ({tool: runs}, one-line description,
    {tool: runs} of the one-server push or None)."""
    one = None
    writers = b.write_tools()
    if scen in ("initial", "patch-tuesday", "fan-out", "fan-out-64"):
        d, m = metas["tree"]
        src, old = os.path.join(d, "tree"), os.path.join(d, "tree-old")
        if scen == "initial":
            res = scenarios.push_scenario(b, scen, src, None, 1, (), None,
                                          runs, writers)
            return res, "%d files, %s, into an empty server" % (
                m["files"], human(m["bytes"])), None
        # The untouched files of the server copies are hard links into
        # tree-old, and hold the same bytes as the console's.
        known = scenarios.known_links(old, set(m["new"]) |
                                      set(m["modified"]))
        n = {"fan-out": FANOUT, "fan-out-64": FANOUT_BIG}.get(scen, 1)
        res = scenarios.push_scenario(b, scen, src, old, n, m["modified"],
                                      known, runs, writers)
        if scen == "fan-out-64":
            one = scenarios.push_scenario(b, scen + "-one", src, old, 1,
                                          m["modified"], known, runs)
        return res, "%d files, %s; server lacks %d new, %d modified%s" % (
            m["files"], human(m["bytes"]), len(m["new"]),
            len(m["modified"]), "; %d servers" % n if n > 1 else ""), one
    if scen in ("definitions", "scattered", "definitions-text"):
        name = {"definitions-text": "text"}.get(scen, scen)
        d, m = metas[name]
        res = scenarios.push_scenario(b, scen, os.path.join(d, "new"),
                                      os.path.join(d, "old"), 1, [], None,
                                      runs, writers)
        how = {"definitions": "1% changed in scattered places",
               "scattered": "%d edits of 100 bytes in place" % m.get(
                   "edits", 0),
               "definitions-text": "1%% of %d records edited" % m.get(
                   "records", 0)}[scen]
        return res, "one file, %s, %s" % (human(m["bytes"]), how), None
    if scen in ("noop", "noop-1m"):
        d, m = metas["small" if scen == "noop" else "million"]
        res = scenarios.noop_scenario(b, scen, os.path.join(d, "small"),
                                      runs, since_check=scen == "noop-1m")
        return res, "%d files, %s, nothing changed" % (
            m["files"], human(m["bytes"])), None
    d, m = metas["small"]
    res = scenarios.report_scenario(b, os.path.join(d, "small"),
                                    os.path.join(d, "small-server"),
                                    m["missing"], runs)
    return res, "%d files, %d missing on the server" % (
        m["files"], len(m["missing"])), None


def run_growth(b, metas, runs):
    """fan-out-growth: patchsync alone, to 1, 8 and 64 servers, directly
    and through a relay. Returns (its table's rows, its JSON object,
    lines for under the tables, whether a run failed)."""
    d, m = metas["tree"]
    src, old = os.path.join(d, "tree"), os.path.join(d, "tree-old")
    known = scenarios.known_links(old, set(m["new"]) | set(m["modified"]))
    res = scenarios.growth_scenario(b, src, old, m["modified"], known,
                                    GROWTH, runs)
    rows, docs = table.growth_summary(res, GROWTH)
    desc = "%d files, %s; server lacks %d new, %d modified; to %s " \
        "servers, directly and through one relay" % (
            m["files"], human(m["bytes"]), len(m["new"]),
            len(m["modified"]), ", ".join(str(n) for n in GROWTH))
    info, failed = ["%-16s %s" % (scenarios.GROWTH, desc)], False
    for doc in docs:
        if not doc["ok"]:
            failed = True
            info.append("%s: patchsync, %d server(s), %s: FAILED: %s" % (
                scenarios.GROWTH, doc["servers"], doc["mode"],
                doc["error"]))
    return rows, {"description": desc, "rows": docs}, info, failed


def run_all(ctx, work):
    opt = ctx.opt
    b = scenarios.Bench(ctx, work)
    rows, docs, info, failed = [], [], [], False
    growth = grows = None
    metas = {}
    for name, (_, users) in data.DATASETS.items():
        if set(users) & set(opt["only"]):
            metas[name] = data.dataset(ctx, work, name)
    for scen in opt["only"]:
        ctx.log("scenario %s ..." % scen)
        if scen == scenarios.GROWTH:
            grows, growth, more, bad = run_growth(b, metas, opt["runs"])
            info += more
            failed = failed or bad
            ctx.log("scenario %s done" % scen)
            continue
        res, desc, one = run_scenario(b, scen, metas, opt["runs"])
        row, doc, agg = table.summarize(scen, res, one)
        doc["description"] = desc
        rows.append(row)
        docs.append(doc)
        for r, what in ((res, ""), (one, " (one server)")):
            for t in r or {}:
                if table.aggregate(r[t]) is not None:
                    continue
                failed = True
                errs = [q.err for q in r[t] if q.err] or ["no run"]
                info.append("%s: %s%s FAILED: %s" % (scen, t, what,
                                                     errs[0]))
        line = "%-16s %s" % (scen, desc)
        for t, k in sorted((doc["extra"] or {}).items()):
            if k:
                line += ("; %s console CPU %.3f s for %d servers (%.4f s "
                         "each), one server %.3f s: ratio %.2f" % (
                             t, k["console_cpu"], k["servers"],
                             k["console_cpu_per_server"],
                             k["one_server_console_cpu"],
                             k["console_cpu_ratio"] or 0))
        info.append(line)
        ctx.log("scenario %s done" % scen)

    # With --json -, stdout is the JSON document's: the rest goes to stderr.
    with contextlib.redirect_stdout(sys.stderr if opt["json"] == "-"
                                    else sys.stdout):
        print_results(ctx, b, rows, grows, info)
    if opt["json"]:
        doc = {"quick": opt["quick"], "runs": opt["runs"],
               "seed": opt["seed"], "cpus": os.cpu_count(),
               "rsync": version(["rsync", "--version"]),
               "patchsync": version([ctx.ps, "--version"]),
               "rsync_fsync": b.fsync,
               "ok": not failed, "warnings": b.warnings, "scenarios": docs}
        if growth is not None:
            doc["fan_out_growth"] = growth
        text = json.dumps(doc, indent=1) + "\n"
        if opt["json"] == "-":
            sys.stdout.write(text)
        else:
            with open(opt["json"], "w") as f:
                f.write(text)
    if failed:
        print("RESULT: FAILED (see above)",
              file=sys.stderr if opt["json"] == "-" else sys.stdout)
        return 1
    print("RESULT: every run of both tools verified identical to the "
          "console", file=sys.stderr if opt["json"] == "-" else sys.stdout)
    return 0


def print_results(ctx, b, rows, grows, info):
    """The table of the scenarios (ROWS) with its legend, then that of
    fan-out-growth (GROWS, or None), then INFO and the warnings."""
    opt = ctx.opt
    md = opt["markdown"]
    print("patchsync bench: %s, %d run(s) + 1 warm-up per tool, median "
          "wall, %d CPUs, page cache warm" % (
              "--quick (1/50 scale)" if opt["quick"] else "full scale",
              opt["runs"], os.cpu_count() or 0))
    print("rsync: %s; patchsync: %s (%s)" % (
        version(["rsync", "--version"]), version([ctx.ps, "--version"]),
        ctx.ps))
    bullet = "- " if md else ""
    if rows:
        table.print_table(rows, md)
        print()
        for line in table.LEGEND:
            print(bullet + line)
    if grows:
        print()
        table.print_table(grows, md, table.GROWTH_COLS, table.GROWTH_LEFT)
        print()
        print(bullet + table.GROWTH_LEGEND)
    for line in (i for i in info if "FAILED" not in i):
        print(bullet + line)
    for w in b.warnings:
        print(bullet + "warning: " + w)
    for line in (i for i in info if "FAILED" in i):
        print(bullet + line)
    if opt["verbose"]:
        for scen, c in b.commands.items():
            for t, argv in c.items():
                print("%s %s: %s" % (scen, t, " ".join(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
