# Read-only commands create nothing (SPEC 10.8): without a state database
# they act on an empty one, lookups say "no state database at PATH", and
# an ordinary account pushes and reports by URL without creating one.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends

mkdir pat dst
mkfile pat/KB1.msu 3000 1
# SQLite: a file in a directory that does not exist yet.
[ "$PS_BACKEND" = pg ] || PS_DB=$T/st/state.db
cat >a.conf <<EOF
[console]
name = console-a
database = $PS_DB
[component patches]
path = $T/pat
EOF
A="$PS -c a.conf"

# created: is there a database now? (SQLite: the file or its directory;
# PostgreSQL: any table in the database.)
created() {
    if [ "$PS_BACKEND" = pg ]; then
        [ "$(db_sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" != 0 ]
    else
        [ -e "$T/st" ]
    fi
}

for cmd in "server list" "schedule list" "task list" "history" "status" \
    "schedule run-due" "history prune --older-than 1d"; do
    # shellcheck disable=SC2086
    expect_exit 0 $A $cmd
    [ ! -s "$T/err" ] || fail "$cmd: $(cat "$T/err")"
    [ ! -s "$T/out" ] || fail "$cmd printed: $(cat "$T/out")"
    if created; then fail "$cmd created the state database"; fi
done
expect_exit 0 $A server list --json
[ "$(json_get "$T/out" 'd["servers"]')" = "[]" ] || fail "server list --json"
expect_exit 0 $A schedule list --json
[ "$(json_get "$T/out" 'd["schedules"]')" = "[]" ] || fail "schedule list --json"
expect_exit 0 $A task list --json
[ "$(json_get "$T/out" 'd["tasks"]')" = "[]" ] || fail "task list --json"
expect_exit 0 $A history --json
[ "$(json_get "$T/out" 'd["events"]')" = "[]" ] || fail "history --json"
expect_exit 0 $A status --json
[ "$(json_get "$T/out" 'd["servers"]')" = "[]" ] || fail "status --json"

# Lookups that need a database say so, in one line.
for cmd in "server show dist" "server check dist" "server remove dist" \
    "schedule edit 1 --cron @daily" "schedule delete 1" "schedule run 1" \
    "task cancel 1" "history --task 1"; do
    # shellcheck disable=SC2086
    expect_exit 2 $A $cmd
    one_error_line
    err_has "no state database at"
done
expect_exit 2 $A push dist
one_error_line
err_has "no state database at"
if created; then fail "a lookup created the state database"; fi

# Push and report by URL: done, nothing recorded, nothing created.
expect_exit 0 $A push "$T/dst"
cmp pat/KB1.msu dst/patches/KB1.msu || fail "push by URL"
expect_exit 0 $A report "$T/dst"
if created; then fail "push or report by URL created the state database"; fi

# An ordinary account: a configured database it may not create.
if is_root && command -v setpriv >/dev/null 2>&1; then
    mkdir -p nb/pat nb/dst locked
    mkfile nb/pat/KB2.msu 2000 2
    chmod 755 locked
    cat >nb.conf <<EOF
[console]
name = console-nb
database = $T/locked/sub/state.db
[component patches]
path = $T/nb/pat
EOF
    chown -R 65534:65534 nb
    chmod 644 nb.conf
    expect_exit 0 as_nobody "$PS" -c "$T/nb.conf" push "$T/nb/dst"
    [ ! -s "$T/err" ] || fail "push as nobody: $(cat "$T/err")"
    cmp nb/pat/KB2.msu nb/dst/patches/KB2.msu || fail "push as nobody"
    expect_exit 0 as_nobody "$PS" -c "$T/nb.conf" report "$T/nb/dst"
    expect_exit 0 as_nobody "$PS" -c "$T/nb.conf" server list
    expect_exit 0 as_nobody "$PS" -c "$T/nb.conf" status
    [ ! -e locked/sub ] || fail "an ordinary account's command created a database"
    # Without any configuration file: SRC_DIR URL.
    expect_exit 0 as_nobody "$PS" push "$T/nb/pat" "$T/nb/dst2"
    cmp nb/pat/KB2.msu nb/dst2/KB2.msu || fail "push SRC URL as nobody"
fi

# Storing commands do create it.
expect_exit 0 $A server add dist "$T/dst"
created || fail "server add did not create the state database"
echo ok
