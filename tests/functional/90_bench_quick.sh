# bench/run --quick runs every scenario of SPEC section 11 with both tools
# at 1/50 scale, and every result is verified identical to the console.
# A benchmark never fails on a time: only exit status, the table, and the
# byte-for-byte checks matter here.
. "$TOP_SRCDIR/tests/lib.sh"

command -v rsync >/dev/null || skip "rsync is not installed"
[ -x /usr/bin/time ] || skip "GNU time (/usr/bin/time) is not installed"
command -v python3 >/dev/null || skip "python3 is not installed"

TMPDIR=$T
export TMPDIR
start=$(date +%s)
expect_exit 0 env PATCHSYNC="$PS" "$TOP_SRCDIR/bench/run" --quick --runs 1
took=$(($(date +%s) - start))

for s in initial patch-tuesday definitions definitions-text noop fan-out \
    report; do
	grep -q "^$s  " "$T/out" || { cat "$T/out"; fail "no row for $s"; }
done
if grep -q FAILED "$T/out"; then
	cat "$T/out"
	fail "a tool failed or left a server different from the console"
fi
out_has "RESULT: every run of both tools verified identical to the console"
[ "$took" -lt 60 ] || fail "bench/run --quick took $took s (limit 60)"
# Nothing of the benchmark's temporary directory is left behind.
[ -z "$(ls -d "$T"/psbench.* 2>/dev/null)" ] || fail "bench/run left its temp dir"
echo ok
