# A server directory on a filesystem without permission bits (FAT here,
# through FUSE; a CIFS share without Unix extensions refuses modes the
# same way): every file failed "cannot change mode" and nothing was ever
# delivered. The files now go, without a mode, and the console is told
# once per session in one warning line; a bundle applied there too.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local
is_root || skip "needs root to mount a filesystem image"
[ -c /dev/fuse ] || skip "no /dev/fuse"
command -v fusefat >/dev/null && command -v mkfs.vfat >/dev/null ||
    skip "fusefat and dosfstools needed"

MNT=$T/mnt
mkdir "$MNT"
truncate -s 16M "$T/fat.img"
mkfs.vfat "$T/fat.img" >/dev/null 2>&1 || skip "mkfs.vfat failed"
fusefat -o rw+ "$T/fat.img" "$MNT" >/dev/null 2>&1 || skip "cannot mount with fusefat here"
umount_it() { umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true; }
trap 'umount_it; cleanup' EXIT
chmod 600 "$MNT" 2>/dev/null && skip "this FAT keeps modes after all"

mkdir -p src/sub
mkfile src/a.msu 3000 1
mkfile src/sub/b.xml 100 2
expect_exit 0 "$PS" push src "$MNT/dist"
one_error_line
err_has "does not keep permission bits"
cmp -s src/a.msu "$MNT/dist/a.msu" || fail "a.msu not delivered"
cmp -s src/sub/b.xml "$MNT/dist/sub/b.xml" || fail "sub/b.xml not delivered"
# A changed file, over a remote shell.
mkfile src/a.msu 3000 3
expect_exit 0 "$PS" push src "localhost:$MNT/dist" --rsh "$RSH" --remote-path "$PS"
one_error_line
err_has "localhost:$MNT/dist"
cmp -s src/a.msu "$MNT/dist/a.msu" || fail "changed a.msu not delivered"
expect_exit 0 "$PS" report src "$MNT/dist"
out_has "current"

# A bundle applied there.
mkdir "$MNT/b"
expect_exit 0 "$PS" manifest build "$MNT/b" -o b.psm
expect_exit 0 "$PS" bundle create src --against b.psm -o u.psb
expect_exit 0 "$PS" bundle apply u.psb "$MNT/b"
err_has "does not keep permission bits"
cmp -s src/sub/b.xml "$MNT/b/sub/b.xml" || fail "bundle not applied"
