# Many servers at once (SPEC 14): -j is capped at 64; a push to 50
# servers where one is throttled (its bwlimit) and two are dead (one never
# answers, one refuses) finishes every healthy server at full speed,
# fails the dead ones alone (exit 4, each with its own reason, recorded
# as unreachable) and completes the slow one; with 200 configured
# servers the console's descriptors and threads stay bounded by -j.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir pat
mkfile pat/KB1.msu 300000 1
mkfile pat/sub/KB2.cab 2000 2
console_conf a patches:pat
A="$PS -c a.conf"

# -j: 1 to 64, on the command line and in the configuration.
expect_exit 2 $A push "$T/x" -j 65
one_error_line
err_has "--jobs must be from 1 to 64"
expect_exit 2 $A push "$T/x" -j 0
one_error_line
err_has "--jobs must be from 1 to 64"
sed 's/^name = .*/&\njobs = 65/' a.conf >j.conf
expect_exit 2 "$PS" -c j.conf push "$T/x"
one_error_line
err_has "jobs"

# A server that never answers (its program sleeps), and one whose remote
# shell cannot connect. exec: the test's remote shell leaves no process.
printf '#!/bin/sh\nexec sleep 60\n' >hang
printf '#!/bin/sh\necho "ssh: connect to host dead.example port 22: Connection refused" >&2\nexit 255\n' >refuse
chmod +x hang refuse
expect_exit 0 $A server add a-dead localhost:/srv --rsh "$RSH" \
    --remote-path "exec $T/hang" --timeout 3
expect_exit 0 $A server add a-refuse dead.example:/srv --rsh "$T/refuse"
# Throttled to 100 KB/s: at least 3 s for its 300 KB.
mkdir slow
expect_exit 0 $A server add a-slow "localhost:$T/slow" --rsh "$RSH" \
    --remote-path "$PS" --bwlimit 100K
i=1
while [ $i -le 47 ]; do
    n=$(printf 'd%02d' $i)
    mkdir "$n"
    if [ $((i % 2)) = 0 ]; then
        expect_exit 0 $A server add "$n" "$T/$n"
    else
        expect_exit 0 $A server add "$n" "localhost:$T/$n" --rsh "$RSH" \
            --remote-path "$PS"
    fi
    i=$((i + 1))
done

expect_exit 4 $A push --all -j 8 --json
[ "$(grep -c '^patchsync: ' "$T/err")" = 2 ] || { cat "$T/err" >&2; fail "want one line per dead server"; }
err_has "patchsync: a-dead: timed out"
err_has "patchsync: a-refuse: "
cp "$T/out" push.json
python3 - push.json <<'PY' || fail "push --json (see above)"
import json, sys
d = {s["server"]: s for s in json.load(open(sys.argv[1]))["servers"]}
assert len(d) == 50, len(d)
for n in ("a-dead", "a-refuse"):
    assert d[n]["status"] == "failed" and d[n]["error"], d[n]
healthy = [s for n, s in d.items() if n.startswith("d")]
assert all(s["status"] == "ok" and s["error"] is None for s in healthy), healthy
slow = d["a-slow"]
assert slow["status"] == "ok", slow
# The throttle held, and no healthy server waited for the slow one.
assert slow["seconds"] >= 2.5, slow
worst = max(s["seconds"] for s in healthy)
assert worst < slow["seconds"], (worst, slow["seconds"])
PY
for n in slow d??; do
    same_tree pat "$n/patches"
done
[ ! -e /srv/patches ] || fail "something reached /srv"
expect_exit 0 $A status --json
st() { json_get "$T/out" "[s for s in d['servers'] if s['server']=='$1'][0]['$2']"; }
[ "$(st a-dead state)" = unreachable ] || fail "a-dead is not unreachable"
[ "$(st a-refuse state)" = unreachable ] || fail "a-refuse is not unreachable"
[ "$(st a-slow state)" = current ] || fail "a-slow is not current"
[ "$(st d47 state)" = current ] || fail "d47 is not current"

# 200 configured servers (most added in one statement: server add costs a
# process each): descriptors and threads of the console stay bounded by
# -j, sampled while it runs.
rm -rf d?? slow
expect_exit 0 $A server remove a-dead
expect_exit 0 $A server remove a-refuse
expect_exit 0 $A server remove a-slow
db_sql "DELETE FROM outcomes; DELETE FROM servers;"
python3 - "$T" <<'PY' >fleet.sql
import sys
t = sys.argv[1]
print("INSERT INTO servers (name, url, created) VALUES " + ",".join(
    "('f%03d', '%s/f%03d', 0)" % (i, t, i) for i in range(1, 201)) + ";")
PY
db_sql "$(cat fleet.sql)"
i=1
while [ $i -le 200 ]; do mkdir "$(printf 'f%03d' $i)"; i=$((i + 1)); done
cat >sample.py <<'PY'
import os, subprocess, sys
# Run the command; sample its descriptors and threads until it ends.
p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
fds = threads = 0
while p.poll() is None:
    try:
        n = len(os.listdir("/proc/%d/fd" % p.pid))
        with open("/proc/%d/status" % p.pid) as f:
            th = [int(l.split()[1]) for l in f if l.startswith("Threads:")]
    except OSError:
        continue
    fds, threads = max(fds, n), max(threads, th[0] if th else 0)
    try:
        p.wait(0.01)
    except subprocess.TimeoutExpired:
        pass
with open(sys.argv[1], "w") as f:
    f.write("%d %d\n" % (fds, threads))
sys.exit(p.returncode)
PY
expect_exit 0 python3 sample.py peak $A push --all -j 4
read -r fds threads <peak
echo "200 servers, -j 4: at most $fds descriptors, $threads threads"
# Per session: its connection, keepalive, two workers, a reader.
[ "$fds" -gt 4 ] && [ "$threads" -gt 4 ] || fail "sampling saw nothing ($fds, $threads)"
[ "$fds" -le 32 ] || fail "$fds descriptors open for -j 4"
[ "$threads" -le 32 ] || fail "$threads threads for -j 4"
for d in f001 f100 f200; do same_tree pat "$d/patches"; done
exit 0
