# Two consoles (two config files) share one database: every console sees
# every schedule with its owner; only the owner edits or runs one; any
# console deletes. Bad cron expressions and unknown servers: exit 2, one
# line.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends

mkdir pat dst
echo x >pat/a
console_conf a patches:pat engines:pat
console_conf b patches:pat engines:pat
A="$PS -c a.conf"
B="$PS -c b.conf"

expect_exit 0 $A server add dist "$T/dst"
expect_exit 0 $A schedule add --server dist -C patches --cron '30 2 * * mon-fri'
ida=$(cat "$T/out")
expect_exit 0 $B schedule add --server dist --cron @daily
idb=$(cat "$T/out")
[ "$ida" != "$idb" ] || fail "same schedule id twice"

# Visibility: both consoles list both, with their owners.
for X in "$A" "$B"; do
    expect_exit 0 $X schedule list
    out_has "console-a"
    out_has "console-b"
    out_has "30 2 * * mon-fri"
    out_has "@daily"
    expect_exit 0 $X schedule list --json
    [ "$(json_get "$T/out" 'sorted(s["owner"] for s in d["schedules"])')" = \
        "['console-a', 'console-b']" ] || fail "schedule list --json owners"
done
json_get "$T/out" '[s for s in d["schedules"] if s["id"]=='"$ida"'][0]["components"]' |
    grep -qx patches || fail "components not stored"

# Edit and run: only the owner.
expect_exit 2 $B schedule edit "$ida" --cron @hourly
one_error_line
err_has "belongs to console console-a"
expect_exit 2 $B schedule run "$ida"
one_error_line
err_has "belongs to console console-a"
expect_exit 0 $A schedule edit "$ida" --cron @hourly -C engines
expect_exit 0 $A schedule list --json
json_get "$T/out" '[s for s in d["schedules"] if s["id"]=='"$ida"'][0]["cron"]' |
    grep -qx @hourly || fail "edit did not change the cron"

# Delete: any console.
expect_exit 0 $B schedule delete "$ida"
expect_exit 0 $A schedule list
grep -q "@hourly" "$T/out" && fail "deleted schedule still listed"
expect_exit 2 $A schedule delete "$ida"
one_error_line
err_has "unknown schedule $ida"

# Bad input: exit 2 and one clear line.
for cron in '61 * * * *' '* * *' '0 0 30 2 *' '@often' '*/0 * * * *' ''; do
    expect_exit 2 $A schedule add --server dist --cron "$cron"
    one_error_line
    err_has "cron"
done
expect_exit 2 $A schedule add --server nosuch --cron @daily
one_error_line
err_has "unknown server nosuch"
expect_exit 2 $A schedule add --server dist --cron @daily -C nosuch
one_error_line
err_has "unknown component 'nosuch'"
expect_exit 2 $A schedule add --cron @daily
one_error_line
expect_exit 2 $A schedule edit 999 --cron @daily
one_error_line
expect_exit 2 $A schedule edit abc --cron @daily
one_error_line
expect_exit 2 $A schedule run 999
one_error_line
echo ok
