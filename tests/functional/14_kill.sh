# kill -9 of the console, then of the server role, in the middle of a
# slow (--bwlimit) transfer over --rsh: the server file is the old
# version, never a partial one; the next push finishes the job and leaves
# no temporaries; a killed server makes the console exit 4 with one line.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local
SIZE=33554432   # 32 MiB at 4 MiB/s: 8 s if left alone

sum() { sha256sum "$1" | cut -d' ' -f1; }
# The pids of processes whose command line contains "serve --stdio $1".
serve_pids() {
    for p in /proc/[0-9]*; do
        { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF "serve --stdio $1" &&
            echo "${p#/proc/}"
    done
    return 0
}
# Wait (at most 30 s) until a temporary shows the push is writing.
wait_writing() {
    i=0
    until [ -n "$(find "$1" -name '.psync-tmp.*' 2>/dev/null | head -1)" ]; do
        i=$((i + 1))
        [ $i -lt 300 ] || fail "the push never started writing"
        sleep 0.1
    done
}
wait_gone() {   # wait_gone PID...: up to 10 s
    i=0
    while [ $i -lt 100 ]; do
        alive=0
        for p; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    fail "processes $* still running"
}

mkdir src
head -c $SIZE /dev/urandom >src/big.msu
mkfile src/small 100 1
expect_exit 0 "$PS" push src "$T/dst"
old=$(sum dst/big.msu)
head -c $SIZE /dev/urandom >src/big.msu
new=$(sum src/big.msu)

# 1. The console is killed.
"$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS" -W \
    --bwlimit 4M >out1 2>err1 &
pid=$!
wait_writing dst
sp=$(serve_pids "$T/dst")
[ -n "$sp" ] || fail "no serve process found"
kill -9 $pid
wait $pid 2>/dev/null || true
wait_gone $sp
got=$(sum dst/big.msu)
[ "$got" = "$old" ] || fail "after kill -9 of the console the server file is not the old version"
[ "$(find dst -type f -name big.msu -print)" = dst/big.msu ] ||
    fail "file vanished"
expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS"
[ "$(sum dst/big.msu)" = "$new" ] || fail "the next push did not finish the job"
no_litter "$T/dst"
diff -r src dst >/dev/null || fail "trees differ after the next push"

# 2. The server role is killed: the console exits 4 with one line.
head -c $SIZE /dev/urandom >src/big.msu
new2=$(sum src/big.msu)
"$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS" -W \
    --bwlimit 4M >"$T/out" 2>"$T/err" &
pid=$!
wait_writing dst
sp=$(serve_pids "$T/dst")
[ -n "$sp" ] || fail "no serve process found"
kill -9 $sp 2>/dev/null || true
set +e
wait $pid
rc=$?
set -e
[ $rc = 4 ] || { cat "$T/err" >&2; fail "console exit $rc after the server was killed (want 4)"; }
# One line of patchsync's own (the remote shell may add its "Killed").
[ "$(grep -c '^patchsync: ' "$T/err")" = 1 ] || { cat "$T/err" >&2; fail "expected one patchsync line"; }
grep -v '^patchsync: ' "$T/err" | grep -qv 'Killed' && { cat "$T/err" >&2; fail "unexpected stderr"; }
[ "$(sum dst/big.msu)" = "$new" ] || fail "after kill -9 of the server the file is not the old version"
expect_exit 0 "$PS" push src "$T/dst"
[ "$(sum dst/big.msu)" = "$new2" ] || fail "the push after the kill did not finish"
no_litter "$T/dst"

# 3. The same, locally (the server role in a child over a socketpair).
head -c $SIZE /dev/urandom >src/big.msu
"$PS" push src "$T/dst" --bwlimit 4M >out3 2>err3 &
pid=$!
wait_writing dst
sp=$(serve_pids "$T/dst")
kill -9 $pid
wait $pid 2>/dev/null || true
[ -z "$sp" ] || wait_gone $sp
[ "$(sum dst/big.msu)" = "$new2" ] || fail "local: after kill -9 the file is not the old version"
expect_exit 0 "$PS" push src "$T/dst"
cmp -s src/big.msu dst/big.msu || fail "local: the next push did not finish"
no_litter "$T/dst"
exit 0
