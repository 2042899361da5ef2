# task cancel of a running push: it stops at once, leaves no temporary
# files, and is recorded 'canceled'. A download waits for a push that is
# reading the component.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends

mkdir pat dst
head -c 16777216 /dev/urandom >pat/big.msu
console_conf a patches:pat
A="$PS -c a.conf"
expect_exit 0 $A server add dist "$T/dst"

running_task() {    # the id of the one running task, waiting up to 10 s
    i=0
    while :; do
        $A task list --json >tl
        id=$(json_get tl '([t["id"] for t in d["tasks"] if t["state"]=="running"] or [""])[0]')
        [ -n "$id" ] && { echo "$id"; return; }
        i=$((i + 1)); [ $i -lt 100 ] || fail "no running task"; sleep 0.1
    done
}

# 16 MiB at 2 MiB/s: 8 s if left alone.
$A push dist -W --bwlimit 2M >push.out 2>push.err &
pp=$!
task=$(running_task)
sleep 1
# A download of the same component waits for the push that reads it.
$A download -C patches -- touch dl.done 2>dl.err &
dl=$!
sleep 1
[ ! -e dl.done ] || fail "download ran while a push was reading"
start=$(date +%s)
expect_exit 0 $A task cancel "$task"
out_has "canceled"
set +e
wait "$pp"
rc=$?
set -e
end=$(date +%s)
[ $((end - start)) -le 3 ] || fail "cancel took $((end - start)) s"
[ "$rc" != 0 ] || fail "canceled push exited 0"
wait "$dl" || fail "download failed after the push ended"
[ -e dl.done ] || fail "download did not run"
grep -q "waiting for pushes reading patches" dl.err || fail "download did not say why it waited"
n=$(find dst -name '.psync*' -not -path 'dst/.patchsync*' | wc -l)
[ "$n" = 0 ] || { find dst >&2; fail "temporaries left"; }
[ ! -e dst/patches/big.msu ] || cmp -s pat/big.msu dst/patches/big.msu ||
    fail "a partial file is visible"
$A task list --json >tl
[ "$(json_get tl '[t["state"] for t in d["tasks"] if t["id"]=='"$task"'][0]')" = canceled ] ||
    fail "task not recorded canceled"
# A cancel is a cancel, not a network failure, here and in the history.
grep -qi 'peer closed' push.err && { cat push.err >&2; fail "cancel shown as a closed connection"; }
$A history --task "$task" >hist
grep -qi 'peer closed' hist && { cat hist >&2; fail "history shows the cancel as a closed connection"; }
grep -q 'canceled' hist || { cat hist >&2; fail "history does not say canceled"; }
[ "$(json_get tl '[t["kind"] for t in d["tasks"] if t["id"]=='"$task"'][0]')" = manual ] ||
    fail "a manual push is not a manual task"
echo ok
