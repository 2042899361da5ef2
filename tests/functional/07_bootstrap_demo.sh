# The demo that `./bootstrap demo` runs works with no set-up and shows a
# manifest and a diff.
. "$TOP_SRCDIR/tests/lib.sh"

TMPDIR=$T
export TMPDIR
expect_exit 0 env PATCHSYNC="$PS" sh "$TOP_SRCDIR/contrib/demo.sh"
out_has "patchsync manifest show"
out_has "windows10/KB5031356.msu"
grep -q '^missing     windows10/KB5031358.msu$\|^out-of-date windows10/KB5031358.msu$' "$T/out" \
    || { cat "$T/out"; fail "demo diff lacks the replaced update"; }
out_has "extra       windows10/KB5034441.msu"
out_has "(exit status 1"
[ ! -s "$T/err" ] || { cat "$T/err"; fail "demo wrote to stderr"; }
echo ok
