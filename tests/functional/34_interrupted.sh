# A task whose process died is shown as interrupted, never running
# forever; a queued task (waiting for a download) can be canceled.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends

mkdir pat dst
mkfile pat/a.msu 1000 1
console_conf a patches:pat
A="$PS -c a.conf"
expect_exit 0 $A server add dist "$T/dst"
id=$($A schedule add --server dist --cron '0 3 * * *')

task_field() {  # task_field ID FIELD
    $A task list --json >tl
    json_get tl '[t["'"$2"'"] for t in d["tasks"] if t["id"]=='"$1"'][0]'
}
wait_state() {  # wait_state ID STATE: up to 10 s
    i=0
    while [ "$(task_field "$1" state)" != "$2" ]; do
        i=$((i + 1))
        [ $i -lt 100 ] || fail "task $1 not $2 but $(task_field "$1" state)"
        sleep 0.1
    done
}

# Hold the download lock so the task stays queued.
$A download -C patches -- sleep 60 &
dl=$!
sleep 0.5
task=$($A schedule run "$id")
wait_state "$task" queued
i=0
until $A history --task "$task" | grep -q "waiting for the download of patches"; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "no queued event"; sleep 0.1
done
pid=$(task_field "$task" pid)
kill -9 "$pid"
wait_state "$task" interrupted
expect_exit 0 $A history --task "$task"
out_has "interrupted"
expect_exit 0 $A schedule list
out_has "interrupted"

# Cancel a queued task: it ends 'canceled', promptly.
task=$($A schedule run "$id")
wait_state "$task" queued
expect_exit 0 $A task cancel "$task"
out_has "canceled"
[ "$(task_field "$task" state)" = canceled ] || fail "not canceled"
expect_exit 2 $A task cancel "$task"
one_error_line
err_has "already ended"
expect_exit 2 $A task cancel 999
one_error_line

kill "$dl"
wait "$dl" 2>/dev/null || true
echo ok
