# Symlinks on the server: ROOT/sub -> a directory outside ROOT,
# ROOT/file.msu -> a file outside. A push (with --delete, too) changes
# nothing outside ROOT; a report does not read outside ROOT either.
. "$TOP_SRCDIR/tests/lib.sh"

snap() { (cd "$T/outside" && find . -print0 | sort -z | xargs -0 stat -c '%n %s %a %Y' && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

mkdir -p outside/dir dst
mkfile outside/dir/secret.txt 100 1
mkfile outside/dir/x.msu 100 2
mkfile outside/file 50 3
snap >before

mkdir -p src/sub
mkfile src/sub/x.msu 5000 4
mkfile src/file.msu 6000 5
mkfile src/plain 10 6
ln -s "$T/outside/dir" dst/sub
ln -s "$T/outside/file" dst/file.msu

set +e
"$PS" push src "$T/dst" --delete >"$T/out" 2>"$T/err"
rc=$?
set -e
snap >after
diff before after >&2 || fail "push changed something outside ROOT"
case $rc in
0|3) ;;
*) cat "$T/err" >&2; fail "push exit $rc (want 3 for a refusal, or 0)";;
esac
cmp -s src/plain dst/plain || fail "the other files were not pushed"
# file.msu: either the symlink was replaced by the file itself, or refused.
if [ -L dst/file.msu ]; then
    [ $rc = 3 ] || fail "file.msu still a symlink but exit 0"
else
    cmp -s src/file.msu dst/file.msu || fail "file.msu replaced but wrong"
fi
# sub: a symlinked directory is refused (exit 3) or replaced by a real one.
if [ -L dst/sub ]; then
    [ $rc = 3 ] || fail "sub still a symlink to outside but exit 0"
    grep -q '^patchsync: .*sub' "$T/err" || { cat "$T/err" >&2; fail "the refusal does not name sub"; }
else
    cmp -s src/sub/x.msu dst/sub/x.msu || fail "sub replaced but wrong"
fi

# A report must not read outside ROOT: outside/dir/secret.txt is not a
# server file (neither extra nor current).
ln -sfn "$T/outside/dir" dst/sub2
mkdir -p src/sub2; cp -p outside/dir/x.msu src/sub2/x.msu
set +e
"$PS" report src "$T/dst" --extra --format json >"$T/out" 2>"$T/err"
set -e
python3 - "$T/out" <<'PY' || fail "report read files through a symlink outside ROOT"
import json, sys
d = json.load(open(sys.argv[1]))
for s in d["servers"]:
    for f in s["files"]:
        assert "secret" not in f["path"], f
        if f["path"] == "sub2/x.msu":
            assert f["state"] == "missing", f
PY
snap >after
diff before after >&2 || fail "report changed something outside ROOT"

# ROOT itself may be a symlink (an admin's choice); the tree lands there.
ln -s "$T/realroot" linkroot; mkdir realroot
rm -rf src/sub src/sub2
expect_exit 0 "$PS" push src "$T/linkroot"
cmp -s src/plain realroot/plain || fail "a symlinked ROOT was not followed"
exit 0
