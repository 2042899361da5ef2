# history prune --older-than and [console] keep (applied by run-due)
# bound the task and event tables; task logs go with their tasks; tasks
# still running are never pruned.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends

mkdir pat dst
mkfile pat/KB1.msu 1000 1
console_conf a patches:pat
A="$PS -c a.conf"
if [ "$PS_BACKEND" = pg ]; then
    logdir=$PATCHSYNC_STATE_DIR/log
else
    logdir=$T/log
fi
expect_exit 0 $A server add dist "$T/dst"
expect_exit 0 $A push dist
expect_exit 0 $A push dist
id=$($A schedule add --server dist --cron @daily)
expect_exit 0 $A schedule run --wait "$id"
run_task=$(tr -d '\n' <"$T/out")
[ -f "$logdir/task-$run_task.log" ] || fail "no log for task $run_task"
expect_exit 0 $A push dist
[ "$(db_sql "SELECT count(*) FROM tasks")" = 4 ] || fail "4 tasks expected"

# The first three ended 100 days ago.
db_sql "UPDATE tasks SET created = created - 8640000, started = started - 8640000, ended = ended - 8640000 WHERE id <= $run_task"
expect_exit 2 $A history prune
one_error_line
expect_exit 2 $A history prune --older-than 0
one_error_line
expect_exit 2 $A history prune --older-than 90x
one_error_line
expect_exit 0 $A history prune --older-than 90d
out_has "3 tasks pruned"
[ "$(db_sql "SELECT count(*) FROM tasks")" = 1 ] || fail "tasks left"
[ "$(db_sql "SELECT count(*) FROM events WHERE task_id <= $run_task")" = 0 ] ||
    fail "events of pruned tasks left"
[ ! -e "$logdir/task-$run_task.log" ] || fail "the log of a pruned task is left"
expect_exit 0 $A history
out_has "end"
expect_exit 0 $A history prune --older-than 90d
out_has "0 tasks pruned"

# keep = 30d: run-due prunes what is older.
awk '/^\[console\]$/ { print; print "keep = 30d"; next } { print }' a.conf >k.conf
db_sql "UPDATE tasks SET ended = ended - 40 * 86400"
expect_exit 0 "$PS" -c k.conf schedule run-due
[ "$(db_sql "SELECT count(*) FROM tasks")" = 0 ] || fail "keep did not prune"
# A bad keep is a configuration error naming file, line and key.
awk '/^\[console\]$/ { print; print "keep = soon"; next } { print }' a.conf >bad.conf
expect_exit 2 "$PS" -c bad.conf schedule run-due
one_error_line
err_has "bad.conf:2"
err_has "keep"
echo ok
