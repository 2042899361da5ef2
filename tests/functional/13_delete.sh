# --delete removes what the console does not have (and nothing of
# patchsync's); refused (exit 2) when the console directory is empty or
# missing; --max-delete N refuses (exit 3) before deleting anything.
. "$TOP_SRCDIR/tests/lib.sh"

mkdir src
mkfile src/keep.msu 1000 1
mkfile src/sub/keep2 10 2
expect_exit 0 "$PS" push src "$T/dst"
mkfile dst/extra1 10 3
mkfile dst/sub/extra2 10 4
mkfile dst/olddir/deep/extra3 10 5
mkfile dst/olddir/extra4 10 6

# Without --delete nothing goes.
expect_exit 0 "$PS" push src "$T/dst"
[ -e dst/extra1 ] || fail "removed without --delete"

# --max-delete 3 with 4 to delete: exit 3, nothing deleted.
expect_exit 3 "$PS" push src "$T/dst" --delete --max-delete 3
for f in extra1 sub/extra2 olddir/deep/extra3 olddir/extra4; do
    [ -e "dst/$f" ] || fail "--max-delete refused but $f is gone"
done
grep -q '^patchsync: ' "$T/err" || fail "no error line for --max-delete"

# An empty or missing console directory with --delete: exit 2, no change.
mkdir empty
expect_exit 2 "$PS" push empty "$T/dst" --delete
one_error_line
[ -e dst/keep.msu ] && [ -e dst/extra1 ] || fail "an empty console wiped the server"
mkdir -p onlydirs/a/b
expect_exit 2 "$PS" push onlydirs "$T/dst" --delete
[ -e dst/keep.msu ] || fail "a console of empty dirs wiped the server"
expect_exit 2 "$PS" push "$T/not-mounted" "$T/dst" --delete
one_error_line
[ -e dst/keep.msu ] && [ -e dst/extra1 ] || fail "a missing console wiped the server"

# -n --delete: lists, deletes nothing.
expect_exit 0 "$PS" push src "$T/dst" --delete -n
out_has extra1
[ -e dst/extra1 ] || fail "-n --delete deleted"

# --delete (max 4 is enough).
expect_exit 0 "$PS" push src "$T/dst" --delete --max-delete 4 --json
[ "$(json_get "$T/out" 'd["servers"][0]["files_deleted"]')" -ge 4 ] ||
    fail "files_deleted < 4"
for f in extra1 sub/extra2 olddir/deep/extra3 olddir/extra4; do
    [ ! -e "dst/$f" ] || fail "--delete left $f"
done
[ ! -e dst/olddir ] || fail "--delete left the extra directory"
[ -e dst/keep.msu ] && [ -e dst/sub/keep2 ] || fail "--delete removed a console file"
diff -r src dst >/dev/null || fail "trees differ after --delete"

# A file where the console has a directory, without --delete: one line
# that says so, nothing inside the directory tried (each of its files
# was an error line of its own), everything beside it sent.
mkdir -p src/newdir/inner
mkfile src/newdir/inner/x.msu 100 7
mkfile src/newdir/y.msu 100 8
mkfile src/beside.msu 100 9
printf 'a file\n' >dst/newdir
expect_exit 3 "$PS" push src "$T/dst"
one_error_line
err_has "1 files stand where the console has directories"
err_has "not replaced without --delete"
[ -f dst/newdir ] || fail "the server's file was replaced without --delete"
cmp -s src/beside.msu dst/beside.msu || fail "the file beside it was not sent"
expect_exit 0 "$PS" push src "$T/dst" --delete
diff -r src dst >/dev/null || fail "trees differ after --delete"
exit 0
