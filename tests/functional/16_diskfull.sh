# Disk full on the server (a 2 MiB tmpfs as ROOT): exit 3, the old files
# intact, no temporaries left. Needs root and mount.
. "$TOP_SRCDIR/tests/lib.sh"

is_root || skip "needs root to mount a tmpfs"
mkdir dst
mount -t tmpfs -o size=2m tmpfs "$T/dst" 2>/dev/null || skip "cannot mount a tmpfs"
trap 'umount "$T/dst" 2>/dev/null || umount -l "$T/dst" 2>/dev/null; cleanup' EXIT

mkdir src
mkfile src/a.msu 600000 1
mkfile src/b.msu 300000 2
expect_exit 0 "$PS" push src "$T/dst"
cp -p dst/a.msu old-a; cp -p dst/b.msu old-b

# New versions of both, plus more than the disk holds.
mkfile src/a.msu 600000 3
mkfile src/b.msu 300000 4
mkfile src/huge.cab 3000000 5
expect_exit 3 "$PS" push src "$T/dst" --json
grep -q '^patchsync: ' "$T/err" || fail "no error line for a full disk"
[ "$(json_get "$T/out" 'd["servers"][0]["status"]')" = failed ] || fail "status not failed"
for f in a b; do
    cmp -s "old-$f" "dst/$f.msu" || cmp -s "src/$f.msu" "dst/$f.msu" ||
        fail "$f.msu is neither the old nor the new version"
done
[ ! -e dst/huge.cab ] || fail "a partial huge.cab is visible"
n=$(find dst -path dst/.patchsync -prune -o -name '.psync*' -print | wc -l)
[ "$n" -eq 0 ] || { find dst >&2; fail "temporaries left after a full disk"; }
# The free space is back: what fits can still be pushed.
rm src/huge.cab
expect_exit 0 "$PS" push src "$T/dst"
diff -r -x .patchsync src dst >/dev/null || fail "push after the full disk: trees differ"
exit 0
