# A PostgreSQL restart in the middle of a push: the task's bookkeeping
# fails with one clear line, the push itself goes on and every file
# arrives; the task's end is recorded once the server is back.
. "$TOP_SRCDIR/tests/lib.sh"
PS_BACKEND=pg
state_backends

mkdir pat dst
for i in 1 2 3 4; do mkfile "pat/KB$i.msu" 400000 "$i"; done
console_conf a patches:pat
A="$PS -c a.conf"
expect_exit 0 $A server add dist "$T/dst"

# About 6 s at 256 KiB/s: time to restart the server under it.
$A push dist --bwlimit 256K >push.out 2>push.err &
pid=$!
tries=0
until [ "$(db_sql "SELECT count(*) FROM tasks WHERE state = 'running'" 2>/dev/null)" = 1 ]; do
    tries=$((tries + 1))
    [ $tries -lt 300 ] || fail "the push did not start"
    sleep 0.05
done
sh "$TOP_SRCDIR/tests/pg-cluster" restart "$PG_DIR" || fail "cannot restart PostgreSQL"
set +e
wait $pid
rc=$?
set -e
[ "$rc" = 0 ] || fail "the push failed (exit $rc): $(cat push.err)"
same_tree pat dst/patches
n=$(wc -l <push.err)
[ "$n" = 1 ] || fail "expected one line on stderr, got $n: $(cat push.err)"
grep -q '^patchsync: task [0-9]*: cannot record it in the state database' push.err ||
    fail "the line does not say what failed: $(cat push.err)"
# The end reached the database on a new connection.
[ "$(db_sql "SELECT state FROM tasks")" = succeeded ] ||
    fail "task state: $(db_sql "SELECT state FROM tasks")"
echo ok
