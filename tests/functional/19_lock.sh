# Two pushes to one ROOT at once: the second waits (saying so) and both
# succeed; with --no-wait the second exits 4 at once.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir src src2
head -c 8388608 /dev/urandom >src/big.msu
mkfile src2/other 1000 1
# The first push holds the lock for about 4 s (8 MiB at 2 MiB/s).
"$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS" --bwlimit 2M >out1 2>err1 &
pid=$!
i=0
while [ ! -e dst/.patchsync/lock ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5

start=$(date +%s)
expect_exit 4 "$PS" push src2 "$T/dst" --no-wait
end=$(date +%s)
[ $((end - start)) -le 2 ] || fail "--no-wait took $((end - start)) s"
one_error_line
grep -qi 'lock' "$T/err" || fail "--no-wait error does not say locked"
[ ! -e dst/other ] || fail "--no-wait push wrote"

expect_exit 0 "$PS" push src2 "$T/dst"
grep -qiE 'wait|lock' "$T/err" || { cat "$T/err" >&2; fail "the second push did not say it waited"; }
# The first push had put its file in place before the second got the lock
# (its process may still be exiting: only the server's lock counts).
cmp -s src/big.msu dst/big.msu || fail "the second push did not wait for the first"
wait $pid || { cat err1 >&2; fail "the first push failed"; }
cmp -s src/big.msu dst/big.msu || fail "first push result wrong"
cmp -s src2/other dst/other || fail "second push result wrong"
exit 0
