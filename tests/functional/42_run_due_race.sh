# Two run-due of one console at the same moment, 50 times over, never
# start one schedule twice; another console deleting a schedule while its
# task runs leaves the task to finish and keeps its history (SPEC 6).
. "$TOP_SRCDIR/tests/lib.sh"
state_backends

mkdir pat dst
mkfile pat/KB1.msu 2000 1
console_conf a patches:pat
console_conf b patches:pat
A="$PS -c a.conf"
B="$PS -c b.conf"
expect_exit 0 $A server add dist "$T/dst"
id=$($A schedule add --server dist --cron '0 0 1 1 *')

round=0
while [ $round -lt 50 ]; do
    round=$((round + 1))
    db_sql "UPDATE schedules SET next_run = 1000 WHERE id = $id"
    $A schedule run-due >r1 2>e1 &
    p1=$!
    $A schedule run-due >r2 2>e2 &
    p2=$!
    wait $p1 || fail "round $round: run-due 1: $(cat e1)"
    wait $p2 || fail "round $round: run-due 2: $(cat e2)"
    n=$(cat r1 r2 | wc -l)
    [ "$n" = 1 ] || fail "round $round: $n tasks started for one due schedule"
done
[ "$(db_sql "SELECT count(*) FROM tasks WHERE schedule_id = $id")" = 50 ] ||
    fail "not one task per round"

# Wait (bounded) for the workers to end.
tries=0
while [ "$(db_sql "SELECT count(*) FROM tasks WHERE state IN ('queued', 'running')")" != 0 ]; do
    tries=$((tries + 1))
    [ $tries -lt 600 ] || fail "workers still running"
    sleep 0.1
done
[ "$(db_sql "SELECT count(*) FROM tasks WHERE state <> 'succeeded'")" = 0 ] ||
    fail "a scheduled task failed: $(db_sql "SELECT id, state FROM tasks WHERE state <> 'succeeded'")"

# Deleted by another console while its task runs: a download holds the
# component, so the task waits queued until it is released.
$A download -C patches -- sh -c ": >'$T/held'; while [ ! -e '$T/release' ] && [ -d '$T' ]; do sleep 0.1; done" &
dl=$!
tries=0
until [ -e held ]; do
    tries=$((tries + 1))
    [ $tries -lt 300 ] || fail "the download did not take its lock"
    sleep 0.1
done
task=$($A schedule run "$id")
tries=0
until $A history --task "$task" | grep -q queued; do
    tries=$((tries + 1))
    [ $tries -lt 300 ] || fail "the task did not queue behind the download"
    sleep 0.1
done
expect_exit 0 $B schedule delete "$id"
: >release
wait $dl || fail "download"
tries=0
until [ "$(db_sql "SELECT state FROM tasks WHERE id = $task")" = succeeded ]; do
    tries=$((tries + 1))
    [ $tries -lt 300 ] || fail "task $task: $(db_sql "SELECT state FROM tasks WHERE id = $task")"
    sleep 0.1
done
[ "$(db_sql "SELECT count(*) FROM schedules")" = 0 ] || fail "schedule not deleted"
expect_exit 0 $A history --task "$task"
out_has "end"
out_has "succeeded"
expect_exit 0 $A task list --json
[ "$(json_get "$T/out" "[t for t in d['tasks'] if t['id']==$task][0]['schedule']")" = None ] ||
    fail "the task still names the deleted schedule"
echo ok
