# Run now: `schedule run` prints the task id and returns at once; the
# task runs in a detached process; --wait returns its exit status;
# history --follow streams its events until it ends.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends

mkdir pat dst
mkfile pat/a.msu 300000 1
mkfile pat/sub/b.cab 1000 2
console_conf a patches:pat
A="$PS -c a.conf"
expect_exit 0 $A server add dist "$T/dst"
id=$($A schedule add --server dist --cron '0 3 * * *')

expect_exit 0 $A schedule run "$id"
task=$(cat "$T/out")
case $task in ''|*[!0-9]*) fail "schedule run printed '$task', not a task id" ;; esac
# --follow returns when the task ends, and shows every stage.
expect_exit 0 $A history --task "$task" --follow
out_has "start"
out_has "progress"
out_has "end"
out_has "succeeded"
same_tree pat dst/patches
expect_exit 0 $A task list --json
[ "$(json_get "$T/out" '[t["state"] for t in d["tasks"] if t["id"]=='"$task"'][0]')" = succeeded ] ||
    fail "task state"
[ "$(json_get "$T/out" '[t["kind"] for t in d["tasks"] if t["id"]=='"$task"'][0]')" = run-now ] ||
    fail "task kind"

# --wait: the exit status of the push (a component directory that is
# gone makes it fail).
mkfile pat/c.msu 100 3
expect_exit 0 $A schedule run --wait "$id"
cmp pat/c.msu dst/patches/c.msu || fail "--wait returned before the push"
mv pat pat.away
set +e
$A schedule run --wait "$id" >out 2>err
rc=$?
set -e
[ "$rc" != 0 ] || fail "--wait returned 0 for a failed push"
mv pat.away pat
t2=$(cat out)
expect_exit 0 $A task list --json
[ "$(json_get "$T/out" '[t["state"] for t in d["tasks"] if t["id"]=='"$t2"'][0]')" = failed ] ||
    fail "failed task not shown failed"

# JSON history: one document; limit keeps the newest.
expect_exit 0 $A history --json --task "$task"
json_get "$T/out" '[e["kind"] for e in d["events"]][0]' | grep -qx start ||
    fail "history --json starts with start"
expect_exit 0 $A history --limit 1 --task "$task"
[ "$(wc -l <"$T/out")" = 1 ] || fail "--limit 1"
out_has "end"
expect_exit 0 $A history --limit 0 --task "$task"
[ "$(wc -l <"$T/out")" -gt 1 ] || fail "--limit 0 is not all"
expect_exit 2 $A history --limit -1
one_error_line
err_has "--limit needs a number of events (0: all)"
expect_exit 0 $A history --server dist
out_has "task $task"
expect_exit 2 $A history --task 999
one_error_line
echo ok
