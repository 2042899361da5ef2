# Relays (SPEC 14): servers reached through another server. The console
# pushes the relay, which passes the update on from its fresh copy: the
# console's link carries it once; every server has its own result in
# --json, report, status and history. Chains; cycles and credentials
# refused; a relay that dies mid-way leaves the servers behind it with
# old-or-new files, reported failed; a relay that is not allowed to relay,
# hostile relays and hostile consoles change nothing they should not.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local
EVIL=$TOP_SRCDIR/tests/evilpeer.py
command -v timeout >/dev/null || skip "no timeout(1)"

mkdir pat relay d1 d2 d3 r2 e1 e2
mkfile pat/KB1.msu 40000 1
mkfile pat/sub/KB2.cab 3000 2
mkfile pat/defs.bin 300000 3
console_conf a patches:pat
A="$PS -c a.conf"

# The relay's program logs its command line; the servers behind it run
# $T/down, which the mid-way test swaps for one that kills the relay.
cat >relaywrap <<EOF
#!/bin/sh
echo \$\$ >"$T/relay.pid"
echo "\$*" >>"$T/relay.args"
exec "$PS" "\$@"
EOF
printf '#!/bin/sh\nexec "%s" "$@"\n' "$PS" >down
chmod +x relaywrap down
expect_exit 0 $A server add relay "localhost:$T/relay" --rsh "$RSH" \
    --remote-path "$T/relaywrap"
for i in 1 2 3; do
    expect_exit 0 $A server add "d$i" "localhost:$T/d$i" --via relay \
        --rsh "$RSH" --remote-path "$T/down"
done

# ---- the rules ----
expect_exit 2 $A server add loop "$T/x" --via loop
one_error_line
err_has "its own relay"
expect_exit 2 $A server add x "$T/x" --via nosuch
one_error_line
err_has "unknown relay nosuch"
expect_exit 2 $A server edit relay --via d1
one_error_line
err_has "cycle"
echo key >key
chmod 600 key
expect_exit 2 $A server add k "h.example:/srv" --via relay --identity key
one_error_line
err_has "own account"
expect_exit 2 $A server remove relay
one_error_line
err_has "relay of d1"
expect_exit 2 $A server check d1
one_error_line
err_has "through relay relay"
expect_exit 0 $A server list --json
[ "$(json_get "$T/out" '[s["via"] for s in d["servers"] if s["name"]=="d2"][0]')" = relay ] ||
    fail "server list --json: via"
expect_exit 0 $A server show d3
out_has "via: relay"

# ---- a push: the relay passes it on ----
expect_exit 0 $A push d1 d2 d3 --json
cp "$T/out" push1.json
python3 - push1.json <<'PY' || fail "push --json through a relay (see above)"
import json, sys
d = {s["server"]: s for s in json.load(open(sys.argv[1]))["servers"]}
assert sorted(d) == ["d1", "d2", "d3", "relay"], sorted(d)
assert d["relay"]["via"] is None and d["relay"]["status"] == "ok", d
for n in ("d1", "d2", "d3"):
    assert d[n]["via"] == "relay" and d[n]["status"] == "ok", d[n]
    assert d[n]["files_transferred"] == 3, d[n]
    # The relay sent each of them the whole update ...
    assert d[n]["bytes_sent"] > 300000, d[n]
# ... and the console's link carried it once.
assert 300000 < d["relay"]["bytes_sent"] < 450000, d["relay"]
PY
for n in relay d1 d2 d3; do
    same_tree pat "$n/patches"
    no_litter "$n"
done
grep -q -- '--relay' relay.args || fail "the relay was not started with --relay"
# Nothing to do the second time, at every server.
expect_exit 0 $A push d1 d2 d3 --json
[ "$(json_get "$T/out" 'sum(s["files_transferred"] for s in d["servers"])')" = 0 ] ||
    fail "a second push transferred files"

# ---- report: against the console's files, not the relay's copy ----
mkfile pat/KB3.msu 5000 4
rm d2/patches/sub/KB2.cab
expect_exit 1 $A report d1 d2 --format json
cp "$T/out" report.json
python3 - report.json <<'PY' || fail "report --format json through a relay (see above)"
import json, sys
doc = json.load(open(sys.argv[1]))
d = {s["server"]: s for s in doc["servers"]}
assert sorted(d) == ["d1", "d2", "relay"], sorted(d)
files = lambda n: sorted((f["path"], f["state"]) for f in d[n]["files"])
assert files("relay") == [("KB3.msu", "missing")], files("relay")
assert files("d1") == [("KB3.msu", "missing")], files("d1")
assert files("d2") == [("KB3.msu", "missing"), ("sub/KB2.cab", "missing")], \
    files("d2")
assert d["d2"]["via"] == "relay" and d["d2"]["status"] == "out-of-date"
row = [f for f in d["d2"]["files"] if f["path"] == "KB3.msu"][0]
assert row["console"]["size"] == 5000 and row["server"] is None, row
assert doc["summary"]["missing"] == 4, doc["summary"]
PY
expect_exit 1 $A report d2
grep -qx 'd2: 2 missing, 0 out-of-date' "$T/out" || { cat "$T/out" >&2; fail "report text for d2"; }
out_has "missing     patches/sub/KB2.cab"
# A dry run through the relay changes nothing, there or behind it.
expect_exit 0 $A push d2 -n --json
[ "$(json_get "$T/out" '[s["status"] for s in d["servers"] if s["server"]=="d2"][0]')" = ok ] ||
    fail "dry run through the relay"
[ ! -e d2/patches/KB3.msu ] && [ ! -e relay/patches/KB3.msu ] ||
    fail "the dry run changed something"

# ---- a chain: relay <- r2 <- e1 (remote), e2 (local to r2) ----
expect_exit 0 $A server add r2 "localhost:$T/r2" --via relay --rsh "$RSH" \
    --remote-path "$PS"
expect_exit 0 $A server add e1 "localhost:$T/e1" --via r2 --rsh "$RSH" \
    --remote-path "$PS"
expect_exit 0 $A server add e2 "$T/e2" --via r2
expect_exit 2 $A server edit relay --via e2
err_has "cycle"
expect_exit 0 $A push e1 e2 --json
python3 - "$T/out" <<'PY' || fail "push through two relays (see above)"
import json, sys
d = {s["server"]: s for s in json.load(open(sys.argv[1]))["servers"]}
assert sorted(d) == ["e1", "e2", "r2", "relay"], sorted(d)
assert all(s["status"] == "ok" for s in d.values()), d
assert d["e1"]["via"] == "r2" and d["r2"]["via"] == "relay", d
PY
for n in relay r2 e1 e2; do same_tree pat "$n/patches"; done

# ---- status and history: every server, with its own outcome ----
expect_exit 0 $A push --all
for n in relay d1 d2 d3 r2 e1 e2; do same_tree pat "$n/patches"; done
expect_exit 0 $A status --json
st() { json_get "$T/out" "[s for s in d['servers'] if s['server']=='$1'][0]['$2']"; }
for n in d1 d2 d3 e1 e2 r2 relay; do
    [ "$(st $n state)" = current ] || fail "status: $n is $(st $n state)"
done
[ "$(st e1 via)" = r2 ] || fail "status --json: via"
expect_exit 0 $A history --server e2
grep -q 'server *e2 via r2: ok' "$T/out" || { cat "$T/out" >&2; fail "history --server e2"; }
grep -q 'server *d3 via relay: ok' "$T/out" || { cat "$T/out" >&2; fail "history: d3's own result"; }

# ---- a relay that is not allowed to relay (a forced command) ----
cat >forced <<EOF
#!/bin/sh
# What an administrator's command= without --relay amounts to.
args=\$(echo "\$*" | sed 's/ --relay//')
exec "$PS" \$args
EOF
chmod +x forced
expect_exit 0 $A server edit relay --remote-path "$T/forced"
mkfile pat/KB4.msu 2000 5
expect_exit 4 $A push d1 --json
python3 - "$T/out" <<'PY' || fail "push through a relay without --relay (see above)"
import json, sys
d = {s["server"]: s for s in json.load(open(sys.argv[1]))["servers"]}
assert d["relay"]["status"] == "ok", d["relay"]
assert d["d1"]["status"] == "failed" and "--relay" in d["d1"]["error"], d["d1"]
PY
err_has "d1"
[ ! -e d1/patches/KB4.msu ] || fail "passed on without --relay"
expect_exit 0 $A server edit relay --remote-path "$T/relaywrap"

# ---- a relay run by a forced command with --relay ----
# sshd sets SSH_ORIGINAL_COMMAND; the console's account may then do no
# more than the forced command: no local path, remote shell or remote
# program it names is used by the relay.
mkdir fr
cat >forcedrelay <<EOF
#!/bin/sh
SSH_ORIGINAL_COMMAND="patchsync serve --stdio --relay $T/fr"
export SSH_ORIGINAL_COMMAND
exec "$PS" "\$@"
EOF
printf '#!/bin/sh\ntouch "%s/pwned"\n' "$T" >pwner
chmod +x forcedrelay pwner
expect_exit 0 $A server add fr "localhost:$T/fr" --rsh "$RSH" \
    --remote-path "$T/forcedrelay"
expect_exit 0 $A server add fl "$T/fl" --via fr
expect_exit 0 $A server add fs "localhost:$T/fs" --via fr \
    --rsh "sh -c 'touch $T/pwned' --"
expect_exit 0 $A server add fp "localhost:$T/fp" --via fr \
    --remote-path "$T/pwner"
for n in fl fs fp; do
    expect_exit 4 $A push "$n" --json
    err_has "forced command"
    python3 - "$T/out" "$n" <<'PY' || fail "a forced relay passed $n on (see above)"
import json, sys
d = {s["server"]: s for s in json.load(open(sys.argv[1]))["servers"]}
assert d["fr"]["status"] == "ok", d["fr"]
assert d[sys.argv[2]]["status"] == "failed", d[sys.argv[2]]
PY
done
[ ! -e fl ] && [ ! -e pwned ] || fail "a forced relay acted for the console"
for n in fl fs fp fr; do expect_exit 0 $A server remove "$n"; done

# ---- the relay dies mid-way ----
# One session at a time: d1 is done, then d2's start kills the relay.
cat >down <<EOF
#!/bin/sh
n=\$(cat "$T/started" 2>/dev/null || echo 0)
n=\$((n + 1))
echo \$n >"$T/started"
[ "\$n" = 2 ] && kill -9 "\$(cat "$T/relay.pid")"
exec "$PS" "\$@"
EOF
mkfile pat/KB1.msu 40000 6		# changed
mkfile pat/KB5.msu 7000 7		# new
for n in d2 d3; do cp -a "$n/patches" "$n.old"; done
set +e
timeout 60 $A push d1 d2 d3 -j 1 --json >"$T/out" 2>"$T/err"
rc=$?
set -e
[ $rc = 4 ] || { cat "$T/err" >&2; fail "push through a dying relay: exit $rc (want 4)"; }
err_has "patchsync: relay: "
err_has "not reached"
python3 - "$T/out" <<'PY' || fail "results of a dying relay (see above)"
import json, sys
d = {s["server"]: s for s in json.load(open(sys.argv[1]))["servers"]}
assert d["relay"]["status"] == "failed", d["relay"]
assert d["d1"]["status"] == "ok", d["d1"]
for n in ("d2", "d3"):
    assert d[n]["status"] == "failed", d[n]
    assert "not reached: its relay relay failed" in d[n]["error"], d[n]
PY
same_tree pat d1/patches
# Old or new, file by file, and no temporary once their sessions ended.
for n in d2 d3; do
    python3 - pat "$n.old" "$n/patches" <<'PY' || fail "$n holds a file that is neither old nor new"
import os, sys
new, old, got = sys.argv[1:4]
for dp, _, fs in os.walk(got):
    for f in fs:
        rel = os.path.relpath(os.path.join(dp, f), got)
        data = open(os.path.join(got, rel), "rb").read()
        ok = [p for p in (new, old) if os.path.exists(os.path.join(p, rel))
              and open(os.path.join(p, rel), "rb").read() == data]
        assert ok, rel
PY
done
i=0
until [ -z "$(find d1 d2 d3 -name '.psync*')" ]; do
    i=$((i + 1))
    [ $i -le 100 ] || fail "temporaries left behind the dead relay"
    sleep 0.1
done
expect_exit 0 $A status --json
[ "$(st d2 state)" = unreachable ] || fail "status: d2 after the relay died"
[ "$(st d1 state)" = current ] || fail "status: d1 after the relay died"
# The next push finishes the job.
printf '#!/bin/sh\nexec "%s" "$@"\n' "$PS" >down
expect_exit 0 $A push d1 d2 d3
for n in d1 d2 d3; do same_tree pat "$n/patches"; done

# ---- a console file that cannot be read: no --delete through a relay ----
# (The relay's copy lacks it; the console never deletes what it could
# not read, so it passes no --delete on either.) Root reads anything:
# this part runs as nobody, with its own console.
if is_root; then
    mkdir -p n/pat n/relay n/d1
    mkfile n/pat/a.msu 1000 1
    mkfile n/pat/secret.cab 1000 2
    printf '[console]\nname = n\ndatabase = %s/n/state.db\n[component patches]\npath = %s/n/pat\n' \
        "$T" "$T" >n/n.conf
    chown -R nobody n
    PSN=$(public_copy "$PS")
    N="env XDG_CACHE_HOME=$T/n/cache $PSN -c $T/n/n.conf"
    expect_exit 0 as_nobody $N server add relay "localhost:$T/n/relay" \
        --rsh "$(public_copy "$RSH")" --remote-path "$PSN"
    expect_exit 0 as_nobody $N server add d1 "$T/n/d1" --via relay
    expect_exit 0 as_nobody $N push d1
    # The relay lost its copy; d1 still has one.
    rm n/relay/patches/secret.cab
    chmod 000 n/pat/secret.cab
    mkfile n/pat/new.msu 500 3
    chown nobody n/pat/new.msu
    set +e
    as_nobody $N push d1 --delete --json >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ $rc = 3 ] || { cat "$T/err" >&2; fail "push --delete with an unreadable file through a relay: exit $rc (want 3)"; }
    err_has "pat/secret.cab"
    err_has "--delete is not passed on through relay"
    [ "$(json_get "$T/out" '[s["status"] for s in d["servers"] if s["server"]=="d1"][0]')" = failed ] ||
        fail "d1 is not reported failed"
    [ -f n/d1/patches/secret.cab ] ||
        fail "the copy of the unreadable file behind the relay was deleted"
fi

# ---- hostile relays: the console believes nothing out of bounds ----
mkdir evilroot
for mode in relayrange relaytwice relaynone relaybadrow relayflood; do
    expect_exit 0 $A server add "evil-$mode" "evil:$T/evilroot" --rsh "$RSH" \
        --remote-path "python3 $EVIL server $mode"
    expect_exit 0 $A server add "behind-$mode" "$T/nowhere" --via "evil-$mode"
    set +e
    timeout 30 $A report "behind-$mode" --format json >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ $rc = 4 ] || { cat "$T/err" >&2; fail "hostile relay $mode: exit $rc (want 4)"; }
    err_has "broke the protocol"
    [ $mode != relayflood ] ||
        err_has "more rows of behind-relayflood than the console has files"
    [ "$(json_get "$T/out" "[s['status'] for s in d['servers'] if s['server']=='evil-$mode'][0]")" = unreachable ] ||
        fail "hostile relay $mode: the relay is not unreachable"
    # (relaytwice gave a result first: it stands, as any result does.)
    [ $mode = relaytwice ] ||
        [ "$(json_get "$T/out" "[s['status'] for s in d['servers'] if s['server']=='behind-$mode'][0]")" = unreachable ] ||
        fail "hostile relay $mode: the server behind it is not unreachable"
done
[ ! -e nowhere ] || fail "a hostile relay made something"

# ---- hostile consoles against serve: no relay beyond what is allowed ----
mkdir -p box/root
for c in "relaynorelay:$T/pwned" relaystale: relayahead:; do
    set +e
    timeout 20 python3 "$EVIL" console "$PS" "$T/box/root" "$c" 00 >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ $rc = 0 ] || { cat "$T/out" "$T/err" >&2; fail "hostile console '$c' (exit $rc)"; }
done
[ ! -e pwned ] || fail "a console made a server without --relay run a command"
exit 0
