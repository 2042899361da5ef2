# The manifest caches (console and server side) are read as streams and
# rewritten only when the tree changed: a no-op push leaves both files
# as they were; a change replaces them, and the next push is a no-op
# again. A damaged or foreign cache is ignored (everything is hashed
# again), never trusted.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir -p src/a src/b
i=0
while [ $i -lt 300 ]; do
    printf 'file %d\n' $i >src/a/f$i
    printf 'other %d\n' $i >src/b/g$i
    i=$((i + 1))
done
mkfile src/big 300000 3
# Entries stamped within a second of a walk are not trusted as cache
# entries (they could still change unseen): let the tree age.
sleep 2

push() {
    expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" \
        --remote-path "$PS" --delete
}
# "inode mtime" of every cache file, sorted.
caches() {
    find "$XDG_CACHE_HOME/patchsync" -name '*.psm' -exec stat -c '%n %i %Y.%y' {} + | sort
}

push
sleep 2     # and the server's copies too
push
[ "$(find "$XDG_CACHE_HOME/patchsync" -name '*.psm' | wc -l)" = 2 ] ||
    fail "expected one console and one server cache: $(caches)"
before=$(caches)
push
[ "$(caches)" = "$before" ] || fail "a no-op push rewrote a cache:
$before
---
$(caches)"
find "$XDG_CACHE_HOME/patchsync" -name '*.psm.*' | grep . &&
    fail "a temporary was left beside the caches"

# One file changed: both caches are replaced, and say so next time.
printf 'changed\n' >src/a/f17
touch -d '2020-01-01' src/a/f17
push
cmp -s src/a/f17 dst/a/f17 || fail "f17 not sent"
[ "$(caches)" != "$before" ] || fail "the caches were not updated"
expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" \
    --remote-path "$PS" --delete --json
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 0 ] ||
    fail "the push after the change sent files again"

# A damaged console cache: ignored, the tree is hashed again, nothing
# wrong is sent or kept.
for f in $(find "$XDG_CACHE_HOME/patchsync" -name '*.psm'); do
    python3 - "$f" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
d[len(d) // 2] ^= 0xff
open(p, "wb").write(d)
PY
done
printf 'changed again\n' >src/b/g5
touch -d '2020-01-01' src/b/g5
push
cmp -s src/b/g5 dst/b/g5 || fail "g5 not sent with a damaged cache"
diff -r src dst >/dev/null || fail "trees differ after a push with damaged caches"
expect_exit 0 "$PS" report src "localhost:$T/dst" --rsh "$RSH" \
    --remote-path "$PS"
grep -q 'missing\|outdated' "$T/out" && fail "report after the repair: $(cat "$T/out")"

# A file changed on the server behind its cache, with its size kept and
# its time put back: the cache entry no longer matches the file's
# identity (ctime), so it is hashed again and reported.
printf 'swapped\n' >dst/a/f1
touch -d '2020-01-01' dst/a/f1
expect_exit 1 "$PS" report src "localhost:$T/dst" --rsh "$RSH" \
    --remote-path "$PS"
grep -q 'out-of-date a/f1' "$T/out" ||
    fail "a file changed on the server behind the cache was not seen: $(cat "$T/out")"

# Caches of directories that are gone are pruned: a manifest not used for
# 90 days and a writer's temporary left for a day go, from the console's
# cache directory and the server's (the account's, for a directory
# push); a cache in use stays however old its time (using it marks it),
# and so do a fresh temporary and files that are not caches.
C=$XDG_CACHE_HOME/patchsync
for d in "$C" "$C/dest"; do
    : >"$d/0123456789abcdef.psm"
    : >"$d/fedcba9876543210.psm.999.0"
    : >"$d/1111111111111111.psm.998.0"
    : >"$d/notes.txt"
    touch -d '100 days ago' "$d/0123456789abcdef.psm" "$d/notes.txt"
    touch -d '2 days ago' "$d/fedcba9876543210.psm.999.0"
done
used=$(find "$C" "$C/dest" -maxdepth 1 -name '*.psm' ! -name 0123456789abcdef.psm)
[ "$(echo "$used" | wc -l)" = 2 ] || fail "expected a console and a server cache: $used"
touch -d '100 days ago' $used
# (Pruning is once a day: the first push of this test did it.)
[ -f "$C/pruned" ] && [ -f "$C/dest/pruned" ] || fail "no prune stamps"
touch -d '2 days ago' "$C/pruned" "$C/dest/pruned"
push
for d in "$C" "$C/dest"; do
    [ ! -e "$d/0123456789abcdef.psm" ] || fail "$d: an old cache stayed"
    [ ! -e "$d/fedcba9876543210.psm.999.0" ] || fail "$d: an old temporary stayed"
    [ -e "$d/1111111111111111.psm.998.0" ] || fail "$d: a fresh temporary went"
    [ -e "$d/notes.txt" ] || fail "$d: a file that is not a cache went"
done
# Not again within the day.
: >"$C/2222222222222222.psm"
touch -d '100 days ago' "$C/2222222222222222.psm"
push
[ -e "$C/2222222222222222.psm" ] || fail "pruned twice in a day"
for f in $used; do
    [ -e "$f" ] || fail "a cache in use was pruned: $f"
    [ $(($(date +%s) - $(stat -c %Y "$f"))) -lt 86400 ] ||
        fail "a cache in use was not marked: $f"
done
