# bench/run --quick runs every default scenario with both tools at 1/50
# scale, and every result is verified identical to the console. A
# benchmark never fails on a time: only exit status, the table, the
# byte-for-byte checks and that both sides were measured matter here.
. "$TOP_SRCDIR/tests/lib.sh"

command -v rsync >/dev/null || skip "rsync is not installed"
[ -x /usr/bin/time ] || skip "GNU time (/usr/bin/time) is not installed"
command -v python3 >/dev/null || skip "python3 is not installed"

TMPDIR=$T
export TMPDIR
start=$(date +%s)
expect_exit 0 env PATCHSYNC="$PS" "$TOP_SRCDIR/bench/run" --quick --runs 1 \
    --json "$T/bench.json"
took=$(($(date +%s) - start))

scenarios="initial patch-tuesday definitions scattered definitions-text noop
    fan-out report"
for s in $scenarios; do
	grep -q "^$s  " "$T/out" || { cat "$T/out"; fail "no row for $s"; }
done
if grep -q FAILED "$T/out"; then
	cat "$T/out"
	fail "a tool failed or left a server different from the console"
fi
out_has "RESULT: every run of both tools verified identical to the console"
out_has "wall ratio  fsync wall  vs fsync"
# Each side of each tool was measured: the console and one server process
# per server (8 in fan-out, through the --rsh wrapper), with CPU time and
# memory.
python3 - "$T/bench.json" $scenarios <<'EOF'
import json
import sys

doc = json.load(open(sys.argv[1]))
got = [s["scenario"] for s in doc["scenarios"]]
if got != sys.argv[2:]:
    sys.exit("scenarios in --json: %s" % got)
for s in doc["scenarios"]:
    for tool, t in s["tools"].items():
        want = 8 if s["scenario"] == "fan-out" else 1
        for side in ("console", "server"):
            if not t["ok"] or not t[side]["peak_rss_bytes"] > 0 or \
                    not t[side]["cpu_s"] > 0:
                sys.exit("%s %s: %s not measured: %s"
                         % (s["scenario"], tool, side, t))
        if t["server"]["processes"] != want:
            sys.exit("%s %s: %s server processes, want %d" % (
                s["scenario"], tool, t["server"]["processes"], want))
    if s["ratios"]["cpu"] is None or s["ratios"]["rss"] is None:
        sys.exit("%s: no CPU or RSS ratio" % s["scenario"])
    # rsync --fsync (checked above like the others) runs exactly where
    # files are written on the server, when this rsync has the option.
    writes = s["scenario"] not in ("noop", "report")
    if ("rsync-fsync" in s["tools"]) != (writes and doc["rsync_fsync"]):
        sys.exit("%s: rsync --fsync runs: %s" % (s["scenario"],
                                                 list(s["tools"])))
    if ("rsync-fsync" in s["tools"]) != \
            (s["ratios"]["wall_vs_fsync"] is not None):
        sys.exit("%s: wall_vs_fsync %s" % (s["scenario"], s["ratios"]))
EOF
# For the log only: the time is the benchmark's business, not a test's.
echo "bench/run --quick took $took s"
# Nothing of the benchmark's temporary directory is left behind.
[ -z "$(ls -d "$T"/psbench.* 2>/dev/null)" ] || fail "bench/run left its temp dir"
echo ok
