# A server directory on a filesystem that keeps times to the second (ext4
# with 128-byte inodes here; FAT keeps 2 s, exFAT 10 ms, CIFS 100 ns):
# the console's nanoseconds are cut off there, and a push found every
# file's time changed again at every push (metadata sent for ever, -i
# listing every file). Times now compare as the receiver's filesystem
# keeps them: the second push has nothing to do; a real change of time
# still goes.
. "$TOP_SRCDIR/tests/lib.sh"
is_root || skip "needs root to mount a filesystem image"
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 needed"

MNT=$T/mnt
mkdir "$MNT"
truncate -s 16M "$T/fs.img"
mkfs.ext4 -q -F -I 128 "$T/fs.img" >/dev/null 2>&1 || skip "mkfs.ext4 -I 128 failed"
mount -o loop "$T/fs.img" "$MNT" 2>/dev/null || skip "cannot mount a loop device here"
umount_it() { umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true; }
trap 'umount_it; cleanup' EXIT

mkdir -p src/sub
mkfile src/a.msu 3000 1
mkfile src/sub/b.xml 100 2
touch -d '2024-05-06 07:08:09.123456789' src/a.msu src/sub/b.xml src/sub
expect_exit 0 "$PS" push src "$MNT/dist"
[ "$(stat -c %y "$MNT/dist/a.msu")" != "$(stat -c %y src/a.msu)" ] ||
    skip "this filesystem keeps nanoseconds after all"
expect_exit 0 "$PS" push src "$MNT/dist" -i --stats
grep -q '^[.>]' "$T/out" && { cat "$T/out" >&2; fail "the second push changed something"; }
out_has "0 metadata only"
# A time that really changed is still set.
touch -d '2024-05-06 07:08:19.5' src/a.msu
expect_exit 0 "$PS" push src "$MNT/dist" -i
out_has "a.msu"
[ "$(stat -c %Y "$MNT/dist/a.msu")" = "$(stat -c %Y src/a.msu)" ] || fail "time not set"
cmp -s src/a.msu "$MNT/dist/a.msu" || fail "content differs"
