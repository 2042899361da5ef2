# A console file that cannot be read: push sends everything else, names
# the file by its console path and exits 3, and never deletes the
# server's copy of it (--delete); report calls no server current (status
# incomplete, exit 3), naming the file.
. "$TOP_SRCDIR/tests/lib.sh"
is_root || skip "needs root to run as nobody"

mkdir -p src/sub dst
mkfile src/a.msu 1000 1
mkfile src/secret.cab 1000 2
mkfile src/sub/b.msu 1000 3
chmod 755 src src/sub dst
chmod 644 src/a.msu src/sub/b.msu
chown -R nobody dst
# First a complete copy on the server.
as_nobody "$PS" push src "$T/dst" >/dev/null 2>&1 || true
cp -p src/secret.cab dst/secret.cab
chown nobody dst/secret.cab
chmod 000 src/secret.cab

set +e
as_nobody env XDG_CACHE_HOME="$T/cache-n" "$PS" report src "$T/dst" --format json >"$T/out" 2>"$T/err"
rc=$?
set -e
[ $rc = 3 ] || { cat "$T/err" >&2; fail "report with an unreadable console file: exit $rc, want 3"; }
err_has "src/secret.cab"
[ "$(json_get "$T/out" 'd["servers"][0]["status"]')" = incomplete ] || fail "status is not incomplete"
[ "$(json_get "$T/out" 'd["summary"]["current"]')" = 0 ] || fail "summary counts a current server"
mkfile src/new.msu 500 4
chmod 644 src/new.msu

set +e
as_nobody env XDG_CACHE_HOME="$T/cache-n" "$PS" push src "$T/dst" --delete >"$T/out" 2>"$T/err"
rc=$?
set -e
[ $rc = 3 ] || { cat "$T/err" >&2; fail "push with an unreadable console file: exit $rc, want 3"; }
err_has "src/secret.cab"
cmp -s src/new.msu dst/new.msu || fail "the other files were not pushed"
[ -e dst/secret.cab ] || fail "--delete removed the server copy of an unreadable console file"
# The unreadable file is the only line of patchsync's.
[ "$(grep -c '^patchsync: ' "$T/err")" = 1 ] || { cat "$T/err" >&2; fail "more than one error line"; }

# An unreadable directory: nothing below it is deleted on the server.
chmod 644 src/secret.cab
chmod 000 src/sub
set +e
as_nobody env XDG_CACHE_HOME="$T/cache-n" "$PS" push src "$T/dst" --delete >"$T/out" 2>"$T/err"
rc=$?
set -e
chmod 755 src/sub
[ $rc = 3 ] || { cat "$T/err" >&2; fail "push with an unreadable directory: exit $rc, want 3"; }
[ -e dst/sub/b.msu ] || fail "--delete removed files under an unreadable console directory"
err_has "src/sub"
exit 0
