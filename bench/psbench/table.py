"""From measured runs to the table's rows and the JSON document."""
from .util import MiB, human, median

TARGETS = {
    "initial": "wall <= 1.0",
    "patch-tuesday": "wall <= 0.8",
    "definitions": "wire <= 1.0, wall <= 1.0",
    "scattered": "wire <= 0.1, wall <= 1.0",
    "definitions-text": "wire <= 0.5, wall <= 1.0",
    "noop": "wall <= 0.5",
    "noop-1m": "RSS < 128 MiB each side, wall < 1.0",
    "fan-out": "wall <= 0.35 (vs 8 rsyncs)",
    "fan-out-64": "console CPU <= 3 x one server's",
    "report": "<= 1 s, wall <= 0.5",
}

FSYNC = "rsync-fsync"            # as scenarios.FSYNC

COLS = ["scenario",
        "rsync wall", "patchsync wall", "wall ratio",
        "fsync wall", "vs fsync",
        "rsync wire", "patchsync wire", "wire ratio",
        "rsync CPU", "patchsync CPU", "CPU ratio",
        "rsync RSS", "patchsync RSS", "RSS ratio",
        "target", "met?"]
LEFT = ("scenario", "target")
LEGEND = ("wall: median wall seconds; wire: bytes both ways; CPU: user+sys "
          "seconds, console+server (every process of each side; median); "
          "RSS: peak resident memory of the largest process, "
          "console/server MiB (max over runs); ratio: patchsync / rsync "
          "(CPU: both sides together; RSS: the larger side)",
          "fsync wall: median wall seconds of rsync --fsync (every file "
          "it writes made durable, as patchsync does); vs fsync: "
          "patchsync wall / fsync wall; \"-\": the scenario writes no "
          "file on the server (or this rsync has no --fsync)")

# fan-out-growth: patchsync alone, to 1, 8 and 64 servers, directly and
# through one relay.
GROWTH_COLS = ["servers", "mode", "wall", "console CPU", "per server",
               "console sent", "all sent", "server CPU", "CPU vs N=1",
               "sent vs N=1"]
GROWTH_LEFT = ("mode",)
GROWTH_LEGEND = ("fan-out-growth, patchsync only (median of the runs): "
                 "console CPU: user+sys seconds of the console's process "
                 "tree, per server: divided by the servers (the relay not "
                 "counted); console sent: bytes the console sent on its "
                 "own links (direct: to every server; relay: to the "
                 "relay); all sent: bytes sent to every server, relay "
                 "included, by the console or the relay; server CPU: "
                 "every server process, the relay and those it started; "
                 "vs N=1: against the same mode with one server")


def aggregate(runs):
    """One tool's measured runs of a scenario as one set of numbers, or
    None when a run failed."""
    if not runs or not all(r.ok for r in runs):
        return None
    wires = [r.wire for r in runs]
    return dict(wall=median([r.wall for r in runs]),
                wire=None if None in wires else median(wires),
                con_cpu=median([r.con.cpu for r in runs]),
                srv_cpu=median([r.srv.cpu for r in runs]),
                con_rss=max(r.con.rss for r in runs),
                srv_rss=max(r.srv.rss for r in runs),
                servers=runs[0].srv.n)


def ratio(a, b):
    return a / b if a is not None and b else None


def met(scen, r, p, x, extra):
    """Is the scenario's target met? None when it cannot be told."""
    w, y = x["wall"], x["wire"]
    if scen == "fan-out-64":
        k = (extra or {}).get("patchsync") or {}
        return None if k.get("console_cpu_ratio") is None else \
            k["console_cpu_ratio"] <= 3.0
    if w is None:
        return None
    if scen == "initial":
        return w <= 1.0
    if scen == "patch-tuesday":
        return w <= 0.8
    if scen == "definitions":
        return w <= 1.0 and y is not None and y <= 1.0
    if scen == "scattered":
        return w <= 1.0 and y is not None and y <= 0.1
    if scen == "definitions-text":
        return w <= 1.0 and y is not None and y <= 0.5
    if scen == "noop":
        return w <= 0.5
    if scen == "noop-1m":
        return w < 1.0 and p["con_rss"] < 128 * MiB and \
            p["srv_rss"] < 128 * MiB
    if scen == "fan-out":
        return w <= 0.35
    if scen == "report":
        return w <= 0.5 and p["wall"] <= 1.0
    return None


def summarize(scen, res, one=None):
    """The row of scenario SCEN and its JSON object. RES: {tool: runs}
    (rsync-fsync too when the scenario writes files); ONE (fan-out-64):
    {tool: runs} of the one-server push."""
    agg = {t: aggregate(res[t]) for t in res}
    r, p = agg["rsync"], agg["patchsync"]
    x = dict(wall=None, wire=None, cpu=None, rss=None, wall_vs_fsync=None)
    if p and agg.get(FSYNC):
        x["wall_vs_fsync"] = ratio(p["wall"], agg[FSYNC]["wall"])
    if r and p:
        x["wall"] = ratio(p["wall"], r["wall"])
        x["wire"] = ratio(p["wire"], r["wire"])
        x["cpu"] = ratio(p["con_cpu"] + p["srv_cpu"],
                         r["con_cpu"] + r["srv_cpu"])
        x["rss"] = ratio(max(p["con_rss"], p["srv_rss"]),
                         max(r["con_rss"], r["srv_rss"]))
    extra = None
    if one is not None:
        extra = {}
        for t in ("rsync", "patchsync"):
            a, o = agg[t], aggregate(one[t])
            extra[t] = None if a is None or o is None else dict(
                servers=a["servers"],
                console_cpu=a["con_cpu"],
                console_cpu_per_server=a["con_cpu"] / max(1, a["servers"]),
                one_server_console_cpu=o["con_cpu"],
                console_cpu_ratio=ratio(a["con_cpu"], o["con_cpu"]))
    ok = met(scen, r, p, x, extra)
    row = {"scenario": scen, "target": TARGETS[scen],
           "met?": "-" if ok is None else ("yes" if ok else "no")}
    for t in ("rsync", "patchsync"):
        a = agg[t]
        row[t + " wall"] = "FAILED" if a is None else "%.3f s" % a["wall"]
        row[t + " wire"] = "FAILED" if a is None else human(a["wire"])
        row[t + " CPU"] = "FAILED" if a is None else "%.2f+%.2f s" % (
            a["con_cpu"], a["srv_cpu"])
        row[t + " RSS"] = "FAILED" if a is None else "%.1f/%.1f MiB" % (
            a["con_rss"] / MiB, a["srv_rss"] / MiB)
    for k in ("wall", "wire", "CPU", "RSS"):
        v = x[k.lower()]
        row[k + " ratio"] = "-" if v is None else "%.2f" % v
    f = agg.get(FSYNC)
    row["fsync wall"] = "-" if FSYNC not in agg else \
        "FAILED" if f is None else "%.3f s" % f["wall"]
    row["vs fsync"] = "-" if x["wall_vs_fsync"] is None else \
        "%.2f" % x["wall_vs_fsync"]
    doc = {"scenario": scen, "target": TARGETS[scen], "met": ok,
           "ratios": x, "extra": extra, "tools": {}}
    for t in agg:
        a = agg[t]
        doc["tools"][t] = {
            "ok": a is not None,
            "error": None if a is not None else next(
                (q.err for q in res[t] if q.err), "no run"),
            "wall_s": a and a["wall"],
            "wire_bytes": a and a["wire"],
            "console": a and {"cpu_s": a["con_cpu"],
                              "peak_rss_bytes": a["con_rss"]},
            "server": a and {"cpu_s": a["srv_cpu"],
                             "peak_rss_bytes": a["srv_rss"],
                             "processes": a["servers"]},
            "runs": [{"ok": q.ok, "wall_s": q.wall, "wire_bytes": q.wire,
                      "console": {"cpu_s": q.con.cpu,
                                  "peak_rss_bytes": q.con.rss},
                      "server": {"cpu_s": q.srv.cpu,
                                 "peak_rss_bytes": q.srv.rss,
                                 "processes": q.srv.n}}
                     for q in res[t]],
        }
    return row, doc, agg


def growth_aggregate(runs):
    """aggregate(), and the medians of the console's bytes sent on its
    own links and of the bytes sent to every server."""
    a = aggregate(runs)
    if a is not None:
        a["sent"] = median([r.sent for r in runs])
        a["sent_all"] = median([r.sent_all for r in runs])
    return a


def growth_summary(res, counts):
    """The rows of the fan-out-growth table and their JSON objects. RES:
    {(servers, mode): runs}; ratios against the same mode's first
    count (one server)."""
    agg = {k: growth_aggregate(v) for k, v in res.items()}
    rows, docs = [], []
    for (n, mode), a in agg.items():
        base = agg.get((counts[0], mode))
        x = dict(cpu=None, sent=None)
        if a and base:
            x["cpu"] = ratio(a["con_cpu"], base["con_cpu"])
            x["sent"] = ratio(a["sent"], base["sent"])
        rows.append(growth_row(n, mode, a, x))
        docs.append(growth_doc(n, mode, a, x, res[(n, mode)]))
    return rows, docs


def growth_row(n, mode, a, x):
    row = {"servers": str(n), "mode": mode}
    for c in GROWTH_COLS[2:]:
        row[c] = "FAILED"
    if a is not None:
        row.update({
            "wall": "%.3f s" % a["wall"],
            "console CPU": "%.3f s" % a["con_cpu"],
            "per server": "%.4f s" % (a["con_cpu"] / n),
            "console sent": human(a["sent"]),
            "all sent": human(a["sent_all"]),
            "server CPU": "%.2f s" % a["srv_cpu"],
            "CPU vs N=1": "-" if x["cpu"] is None else "%.2f" % x["cpu"],
            "sent vs N=1": "-" if x["sent"] is None else "%.2f" % x["sent"],
        })
    return row


def growth_doc(n, mode, a, x, runs):
    return {
        "servers": n, "mode": mode, "ok": a is not None,
        "error": None if a is not None else next(
            (q.err for q in runs if q.err), "no run"),
        "wall_s": a and a["wall"],
        "console": a and {"cpu_s": a["con_cpu"],
                          "cpu_per_server_s": a["con_cpu"] / n,
                          "bytes_sent": a["sent"],
                          "peak_rss_bytes": a["con_rss"]},
        "bytes_sent_all_servers": a and a["sent_all"],
        "server": a and {"cpu_s": a["srv_cpu"],
                         "peak_rss_bytes": a["srv_rss"],
                         "processes": a["servers"]},
        "console_cpu_ratio": x["cpu"], "console_sent_ratio": x["sent"],
        "runs": [{"ok": q.ok, "wall_s": q.wall,
                  "console": {"cpu_s": q.con.cpu, "bytes_sent": q.sent,
                              "peak_rss_bytes": q.con.rss},
                  "bytes_sent_all_servers": q.sent_all,
                  "server": {"cpu_s": q.srv.cpu,
                             "peak_rss_bytes": q.srv.rss,
                             "processes": q.srv.n}}
                 for q in runs],
    }


def print_table(rows, markdown, cols=COLS, left=LEFT):
    if markdown:
        print("| " + " | ".join(cols) + " |")
        print("|" + "|".join("---" if c in left else "--:"
                             for c in cols) + "|")
        for r in rows:
            print("| " + " | ".join(r[c] for c in cols) + " |")
        return
    w = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in cols}

    def line(vals):
        return "  ".join(v.ljust(w[c]) if c in left else v.rjust(w[c])
                         for c, v in zip(cols, vals)).rstrip()
    print(line(cols))
    print(line(["-" * w[c] for c in cols]))
    for r in rows:
        print(line([r[c] for c in cols]))
