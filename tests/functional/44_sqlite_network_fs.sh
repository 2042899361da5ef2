# A SQLite state database on NFS or CIFS/SMB is refused in one line that
# points to PostgreSQL, before anything is created. The filesystem type
# comes from statfs; PATCHSYNC_TEST_FSTYPE (test only) stands in for its
# answer on the same code path.
. "$TOP_SRCDIR/tests/lib.sh"

mkdir pat dst
mkfile pat/KB1.msu 1000 1
cat >a.conf <<EOF
[console]
name = console-a
database = $T/st/state.db
[component patches]
path = $T/pat
EOF
A="$PS -c a.conf"

for fs in 6969 ff534d42 fe534d42 517b; do
    PATCHSYNC_TEST_FSTYPE=$fs expect_exit 2 $A server add dist "$T/dst"
    one_error_line
    err_has "refusing a SQLite state database on"
    err_has "postgresql://"
    [ ! -e st ] || fail "something was created on a network filesystem ($fs)"
done
PATCHSYNC_TEST_FSTYPE=6969 expect_exit 2 $A server add dist "$T/dst"
err_has "NFS"
PATCHSYNC_TEST_FSTYPE=ff534d42 expect_exit 2 $A server add dist "$T/dst"
err_has "CIFS/SMB"

# A local filesystem (ext4's type) is fine; the real statfs too.
PATCHSYNC_TEST_FSTYPE=ef53 expect_exit 0 $A server add dist "$T/dst"
expect_exit 0 $A server list
out_has dist
# An existing database is refused too, for reading as for writing.
PATCHSYNC_TEST_FSTYPE=6969 expect_exit 2 $A server list
one_error_line
PATCHSYNC_TEST_FSTYPE=6969 expect_exit 2 $A schedule run-due
one_error_line
# A push by URL never needs the database: it goes on, with a warning.
PATCHSYNC_TEST_FSTYPE=6969 expect_exit 0 $A push "$T/dst"
cmp pat/KB1.msu dst/patches/KB1.msu || fail "push by URL"
echo ok
