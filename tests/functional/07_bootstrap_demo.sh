# The demo that `./bootstrap demo` runs works with no set-up: a push, a
# delta push with statistics, and the File Status Report.
. "$TOP_SRCDIR/tests/lib.sh"

TMPDIR=$T
export TMPDIR
expect_exit 0 env PATCHSYNC="$PS" sh "$TOP_SRCDIR/contrib/demo.sh"
out_has "files transferred"
out_has ">f+++++++++ patches/windows11/KB5034441.msu"
out_has "definitions/scan-definitions.bin"
grep -q 'missing     patches/windows10/KB5030000.msu' "$T/out" \
    || { cat "$T/out"; fail "report lacks the removed file"; }
out_has "(exit status 1"
# The second push sent the 64 MiB definitions file as a delta.
python3 - "$T/out" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1]) if "files transferred" in l]
assert len(lines) == 2, lines
lit = int(re.search(r"literal (\d+) bytes", lines[1]).group(1))
assert lit < 8 << 20, "delta push sent %d literal bytes of a 64 MiB file" % lit
PY
# Apart from the file removed on purpose, the server equals the console.
d=$(ls -d "$T"/patchsync-demo.*)
diff -r "$d/console/definitions" "$d/server/definitions" >/dev/null || fail "definitions differ"
[ "$(diff -r "$d/console/patches" "$d/server/patches" | grep -c .)" -eq 1 ] || fail "patches differ"
echo ok
