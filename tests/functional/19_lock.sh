# Two pushes to one destination at once: the second waits (saying so) and
# both succeed; with --no-wait the second exits 4 at once. A directory
# push locks the destination itself (nothing of patchsync's inside it); a
# ROOT that holds components is locked in ROOT/.patchsync/lock.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

# wait_for CMD...: poll (at most 20 s) until CMD succeeds.
wait_for() {
    i=0
    until "$@"; do
        i=$((i + 1))
        [ $i -lt 200 ] || fail "timed out waiting for: $*"
        sleep 0.1
    done
}
writing() { [ -n "$(find "$1" -name '.psync-tmp.*' 2>/dev/null | head -1)" ]; }

mkdir src src2 dst
head -c 4194304 /dev/urandom >src/big.msu
mkfile src2/other 1000 1
# The first push holds the lock for about 2 s (4 MiB at 2 MiB/s).
"$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS" --bwlimit 2M >out1 2>err1 &
pid=$!
wait_for writing dst

expect_exit 4 "$PS" push src2 "$T/dst" --no-wait
one_error_line
grep -qi 'lock' "$T/err" || fail "--no-wait error does not say locked"
[ ! -e dst/other ] || fail "--no-wait push wrote"

expect_exit 0 "$PS" push src2 "$T/dst"
grep -qiE 'wait|lock' "$T/err" || { cat "$T/err" >&2; fail "the second push did not say it waited"; }
# The first push had put its file in place before the second got the lock.
cmp -s src/big.msu dst/big.msu || fail "the second push did not wait for the first"
wait $pid || { cat err1 >&2; fail "the first push failed"; }
cmp -s src2/other dst/other || fail "second push result wrong"
[ ! -e dst/.patchsync ] || fail "a directory push left .patchsync in its destination"

# Components: the lock is ROOT/.patchsync/lock; a report reading waits
# for a push (and says so), the push for nothing else.
mkdir root
console_conf c patches:src
"$PS" -c c.conf push "localhost:$T/root" --rsh "$RSH" --remote-path "$PS" --bwlimit 2M >out2 2>err2 &
pid=$!
wait_for writing root/patches
[ -f root/.patchsync/lock ] || fail "no ROOT/.patchsync/lock for a component push"
expect_exit 4 "$PS" -c c.conf push "$T/root" --no-wait
grep -qi 'locked' "$T/err" || fail "component --no-wait error does not say locked"
wait $pid || { cat err2 >&2; fail "the component push failed"; }
same_tree src root/patches
exit 0
