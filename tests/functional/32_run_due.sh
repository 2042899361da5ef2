# schedule run-due: two at the same moment start one task, not two; a
# schedule whose slots passed while nothing ran runs once; another
# console's schedules are not run; next run moves past now.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends

mkdir pat dst
mkfile pat/a.msu 5000 1
console_conf a patches:pat
console_conf b patches:pat
A="$PS -c a.conf"
B="$PS -c b.conf"
expect_exit 0 $A server add dist "$T/dst"
# Every 4 hours, at a minute half an hour from now: no slot comes round
# while the test runs (a slot passing between two run-due would be a new
# one, rightly run), however slow the build (sanitizers).
h=$(( ($(date +%-H) + 1) % 4 ))
m=$(( ($(date +%-M) + 30) % 60 ))
cron="$m $h-23/4 * * *"
ida=$($A schedule add --server dist --cron "$cron")
idb=$($B schedule add --server dist --cron "$cron")

# Nothing is due yet.
expect_exit 0 $A schedule run-due --wait
[ ! -s "$T/out" ] || fail "run-due ran something not due"

# Pretend both schedules were due a day ago (six missed slots).
past=$(( $(date +%s) - 24 * 3600 ))
db_sql "UPDATE schedules SET next_run = $past"

# Two run-due of console-a at the same moment.
started=$(date +%s)
$A schedule run-due --wait >rd1 2>rde1 &
p1=$!
$A schedule run-due --wait >rd2 2>rde2 &
p2=$!
wait $p1 || fail "run-due 1 failed: $(cat rde1)"
wait $p2 || fail "run-due 2 failed: $(cat rde2)"
n=$(cat rd1 rd2 | wc -l)
[ "$n" = 1 ] || fail "expected one task from two run-due, got $n"
task=$(cat rd1 rd2)

expect_exit 0 $A task list --json
[ "$(json_get "$T/out" 'len(d["tasks"])')" = 1 ] || fail "more than one task"
[ "$(json_get "$T/out" 'd["tasks"][0]["kind"]')" = scheduled ] || fail "kind"
[ "$(json_get "$T/out" 'd["tasks"][0]["state"]')" = succeeded ] ||
    fail "scheduled task did not succeed: $(cat "$T/out")"
[ "$(json_get "$T/out" 'd["tasks"][0]["schedule"]')" = "$ida" ] || fail "schedule id"
cmp pat/a.msu dst/patches/a.msu || fail "scheduled push did not send"

# The missed slots ran once: the next run is after the moment run-due
# ran, and a second run-due now starts nothing.
next=$(db_sql "SELECT next_run FROM schedules WHERE id = $ida")
[ "$next" -gt "$started" ] || fail "next_run not moved past the run ($next <= $started)"
expect_exit 0 $A schedule run-due --wait
[ ! -s "$T/out" ] || fail "missed slots ran more than once"
# console-b's schedule is still due: it is console-b's to run.
expect_exit 0 $A schedule list --json
json_get "$T/out" '[s for s in d["schedules"] if s["id"]=='"$ida"'][0]["last_result"]' |
    grep -qx succeeded || fail "last result of the schedule"
json_get "$T/out" '[s for s in d["schedules"] if s["id"]=='"$idb"'][0]["last_run"]' |
    grep -qx None || fail "console-a ran console-b's schedule"
expect_exit 0 $B schedule run-due --wait
[ "$(wc -l <"$T/out")" = 1 ] || fail "console-b's run-due"

# History of the scheduled task: start ... end.
expect_exit 0 $A history --task "$task"
out_has "start"
out_has "end"
echo ok
