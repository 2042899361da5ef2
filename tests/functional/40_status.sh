# status: one row per configured server from what push and report
# recorded (current, behind, failed, unreachable, never synced), as text,
# JSON and node_exporter textfile metrics written atomically with -o.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends

mkdir pat d1 d2 d3
mkfile pat/KB1.msu 3000 1
mkfile pat/KB2.msu 2000 2
console_conf a patches:pat
A="$PS -c a.conf"
expect_exit 0 $A server add good "$T/d1"
expect_exit 0 $A server add lagging "$T/d2"
expect_exit 0 $A server add down "localhost:/srv" --rsh false
expect_exit 0 $A server add fresh "$T/d3"
expect_exit 0 $A server add mirror "$T/d3" --download-source

expect_exit 0 $A push good
expect_exit 1 $A report lagging
expect_exit 4 $A push down
expect_exit 0 $A push "$T/d3"	# by URL: not fresh's outcome

expect_exit 0 $A status
out_has "SERVER"
grep -q '^good  *current ' "$T/out" || fail "good: $(cat "$T/out")"
grep -q '^lagging  *behind ' "$T/out" || fail "lagging: $(cat "$T/out")"
grep -q '^down  *unreachable ' "$T/out" || fail "down: $(cat "$T/out")"
grep -q '^fresh  *never synced ' "$T/out" || fail "fresh: $(cat "$T/out")"

expect_exit 0 $A status --json
st() { json_get "$T/out" "[s for s in d['servers'] if s['server']=='$1'][0]['$2']"; }
[ "$(st good state)" = current ] || fail "json state"
[ "$(st good files_behind)" = 0 ] || fail "json files_behind good"
[ "$(st good bytes_sent)" -gt 5000 ] || fail "json bytes_sent"
[ "$(st good last_good_push)" != None ] || fail "json last_good_push"
[ "$(st lagging files_behind)" = 2 ] || fail "json files_behind lagging"
[ "$(st lagging report_rows)" = 2 ] || fail "json report_rows"
[ "$(st down state)" = unreachable ] || fail "json unreachable"
[ "$(st down last_error)" != None ] || fail "json last_error"
[ "$(st fresh state)" = "never synced" ] || fail "json never synced"
expect_exit 0 $A status --format json
expect_exit 2 $A status --format xml
one_error_line
expect_exit 2 $A status --json --format html
one_error_line

# A push brings lagging up to date; bytes add up over pushes.
expect_exit 0 $A push lagging
mkfile pat/KB3.msu 1500 3
expect_exit 0 $A push good
expect_exit 0 $A status --json
[ "$(st lagging state)" = current ] || fail "lagging after push"
[ "$(st good bytes_sent)" -gt "$(st good bytes_sent_last_push)" ] ||
    fail "bytes_sent is not a total"

# Prometheus: node_exporter's textfile format, written atomically.
mkdir prom
expect_exit 0 $A status --format prometheus -o prom/patchsync.prom
[ ! -s "$T/out" ] || fail "-o also printed"
[ "$(ls -A prom)" = patchsync.prom ] || fail "temporary left: $(ls -A prom)"
p=prom/patchsync.prom
grep -qx 'patchsync_server_up{server="down"} 0' $p || fail "up down: $(cat $p)"
grep -qx 'patchsync_server_up{server="good"} 1' $p || fail "up good"
grep -qx 'patchsync_files_behind{server="good"} 0' $p || fail "files_behind"
grep -qx '# TYPE patchsync_bytes_sent_total counter' $p || fail "counter type"
grep -q '^patchsync_last_success_timestamp_seconds{server="good"} 1[0-9]' $p ||
    fail "last success"
grep -qx 'patchsync_server_state{server="fresh"} 0' $p || fail "state fresh"
grep -q 'server="mirror"' $p && fail "a download source in the metrics"
# Every sample line: a known metric, a server label at most, a number.
grep -v '^#' $p | grep -Ev '^patchsync_[a-z_]+(\{server="[A-Za-z0-9._-]+"\})? -?[0-9.e+]+$' &&
    fail "malformed sample"
if command -v promtool >/dev/null 2>&1; then
    promtool check metrics <$p || fail "promtool"
fi
# Replacing it keeps readers safe: a new inode, never a half file.
ino=$(stat -c %i $p)
expect_exit 0 $A status --format prometheus -o prom/patchsync.prom
[ "$(stat -c %i $p)" != "$ino" ] || fail "not replaced by rename"
expect_exit 2 $A status -o "$T/nodir/x.prom"
one_error_line
echo ok
