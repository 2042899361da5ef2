# Ctrl-C (SIGINT to the whole process group, the local server child too)
# or SIGTERM ends a push with exit 130 after every temporary it made on
# the server is removed: no later push needed; the server keeps the old
# version of every file.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local
command -v setsid >/dev/null || skip "no setsid(1)"

sum() { sha256sum "$1" | cut -d' ' -f1; }
writing() { [ -n "$(find "$1" -name '.psync-tmp.*' 2>/dev/null | head -1)" ]; }
wait_writing() {
    i=0
    until writing "$1"; do
        i=$((i + 1))
        [ $i -lt 300 ] || fail "the push never started writing"
        sleep 0.1
    done
}
# The process group leader's pid is the group id.
start_push() {
    setsid "$PS" push src "$@" -W --bwlimit 2M >"$T/out" 2>"$T/err" &
    pid=$!
}
finish() {
    set +e
    wait $pid
    rc=$?
    set -e
    [ $rc = 130 ] || { cat "$T/err" >&2; fail "$1: exit $rc, want 130"; }
}

mkdir src
mkfile src/big.msu 16777216 1
mkfile src/b.cab 100000 2
expect_exit 0 "$PS" push src "$T/dst"
old=$(sum dst/big.msu)
mkfile src/big.msu 16777216 3

# Ctrl-C on a local push: the console and its server child both get it.
start_push "$T/dst"
wait_writing dst
kill -INT -- -$pid
finish "SIGINT to the process group"
no_litter "$T/dst"
[ "$(sum dst/big.msu)" = "$old" ] || fail "the old version is gone after Ctrl-C"
grep -q 'psync-tmp' "$T/err" && fail "stderr mentions temporaries"

# SIGTERM to the console alone (as `task cancel` or systemd do).
start_push "$T/dst"
wait_writing dst
kill -TERM $pid
finish "SIGTERM"
no_litter "$T/dst"
[ "$(sum dst/big.msu)" = "$old" ] || fail "the old version is gone after SIGTERM"

# Over a remote shell: the server side cleans up when the console goes.
start_push "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS"
wait_writing dst
kill -INT -- -$pid
finish "SIGINT over --rsh"
i=0
while writing dst && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
no_litter "$T/dst"
[ "$(sum dst/big.msu)" = "$old" ] || fail "the old version is gone after Ctrl-C over --rsh"

# And the next push just works.
expect_exit 0 "$PS" push src "$T/dst"
cmp -s src/big.msu dst/big.msu || fail "the next push did not finish"
exit 0
