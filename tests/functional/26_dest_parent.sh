# A destination whose parent does not exist (an unmounted share, a typo)
# is never created with its parents: exit 4 naming the missing parent,
# nothing written; a report lists such a server as unreachable. The last
# component alone is made, as rsync does.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir src mnt
mkfile src/a.msu 1000 1
expect_exit 4 "$PS" push src "$T/mnt/dist1/patches"
one_error_line
err_has "mnt/dist1"
err_has "no such directory"
[ ! -e mnt/dist1 ] || fail "the missing parent was created"
# The same over a remote shell, and a typo like ssh//host/path (a local
# relative path whose parents do not exist).
expect_exit 4 "$PS" push src "localhost:$T/mnt/dist1/patches" --rsh "$RSH" --remote-path "$PS"
one_error_line
[ ! -e mnt/dist1 ] || fail "the missing parent was created remotely"
expect_exit 4 "$PS" push src "ssh//host/srv/patches"
one_error_line
[ ! -e ssh ] || fail "a typo became a directory"
# The last component is made when its parent exists.
expect_exit 0 "$PS" push src "$T/mnt/patches"
same_tree src mnt/patches
# A report: unreachable, exit 4, not "everything missing".
expect_exit 4 "$PS" report src "$T/mnt/dist1/patches"
out_has "unreachable"
one_error_line
# Components: ROOT is the parent of ROOT/patches, so it must exist.
console_conf c patches:src
expect_exit 4 "$PS" -c c.conf push "$T/mnt/dist2"
one_error_line
err_has "mnt/dist2"
[ ! -e mnt/dist2 ] || fail "a missing ROOT was created"
expect_exit 4 "$PS" -c c.conf report "$T/mnt/dist2"
out_has "unreachable"
mkdir mnt/dist2
expect_exit 0 "$PS" -c c.conf push "$T/mnt/dist2"
same_tree src mnt/dist2/patches
# A dry run into a destination still to be made: fine, and makes nothing.
expect_exit 0 "$PS" push src "$T/mnt/later" -n
out_has ">f+++++++++ a.msu"
[ ! -e mnt/later ] || fail "a dry run created the destination"
exit 0
