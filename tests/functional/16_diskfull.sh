# Disk full on the server (a 2 MiB tmpfs as ROOT): exit 3, the old files
# intact, no temporaries left. The console's cache on a full disk: the
# push goes on, with a warning. Needs root and mount.
. "$TOP_SRCDIR/tests/lib.sh"

is_root || skip "needs root to mount a tmpfs"
mkdir dst
mount -t tmpfs -o size=2m tmpfs "$T/dst" 2>/dev/null || skip "cannot mount a tmpfs"
mkdir cachefs dbfs
mount -t tmpfs -o size=64k tmpfs "$T/cachefs" 2>/dev/null || skip "cannot mount a tmpfs"
mount -t tmpfs -o size=1m tmpfs "$T/dbfs" 2>/dev/null || skip "cannot mount a tmpfs"
trap 'for m in dst cachefs dbfs; do umount "$T/$m" 2>/dev/null || umount -l "$T/$m" 2>/dev/null; done; cleanup' EXIT

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

# The console's cache directory on a full disk: the scan goes on in
# memory, the push succeeds with one warning, and the old cache stays as
# it was (it failed every push with "cannot write its manifest").
XDG_CACHE_HOME=$T/cachefs
expect_exit 0 "$PS" push src "$T/dst2"
old=$(find cachefs/patchsync -maxdepth 1 -name '*.psm')
[ -n "$old" ] && cp "$old" old-cache || fail "no console cache written"
head -c 1000000 /dev/zero >cachefs/fill 2>/dev/null || true
mkfile src/c.msu 1000 6
i=0
while [ $i -lt 200 ]; do
    echo "$i" >"src/n$i.xml"
    i=$((i + 1))
done
expect_exit 0 "$PS" push src "$T/dst2"
one_error_line
err_has "warning: src: the scan's cache is not saved: No space left on device"
diff -r -x .patchsync src dst2 >/dev/null || fail "push with a full cache disk: trees differ"
cmp -s old-cache "$old" || fail "the old cache changed"
[ "$(find cachefs/patchsync -maxdepth 1 -type f ! -name pruned | wc -l)" = 1 ] ||
    fail "a temporary was left in the cache directory"
expect_exit 0 "$PS" report src "$T/dst2"

# The state database on a full disk: SQLite cannot make its shared-memory
# file and says "disk I/O error", which reads as a damaged database; the
# line says the disk is full.
printf '[console]\ndatabase = %s/dbfs/state.db\n[component patches]\npath = %s/src\n' \
    "$T" "$T" >db.conf
expect_exit 0 "$PS" -c db.conf server add d1 "$T/dst3"
expect_exit 0 "$PS" -c db.conf status
head -c 2000000 /dev/zero >dbfs/fill 2>/dev/null || true
expect_exit 2 "$PS" -c db.conf status
one_error_line
err_has "state.db: cannot read the database header: No space left on device"
exit 0
