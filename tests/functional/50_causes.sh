# Errors keep their cause (SPEC 9: what failed and why): a server file
# that cannot be created names the path and the system's reason, a
# refused symlink says so, a COPY past the end of the old version says
# exactly that, and a refresh's errors name the source.
. "$TOP_SRCDIR/tests/lib.sh"
EVIL=$TOP_SRCDIR/tests/evilpeer.py

mkdir -p src/sub outside
mkfile src/a.msu 100 1
mkfile src/sub/new.msu 100 2
mkfile src/link/x.msu 100 3

# A directory the serving account may not write into (as nobody).
if is_root; then
    mkdir -p dst/sub
    chown nobody dst
    chmod 755 dst/sub src src/sub src/link
    chmod 644 src/a.msu src/sub/new.msu src/link/x.msu
    set +e
    as_nobody env XDG_CACHE_HOME="$T/c" "$PS" push src "$T/dst" >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ $rc = 3 ] || { cat "$T/err" >&2; fail "push into an unwritable directory: exit $rc, want 3"; }
    err_has "sub/new.msu"
    err_has "Permission denied"
    cmp -s src/a.msu dst/a.msu || fail "the other file did not arrive"
    rm -rf dst
fi

# A symlink on the server where the console has a directory.
mkdir dst
ln -s "$T/outside" dst/link
expect_exit 3 "$PS" push src "$T/dst"
err_has "link"
grep -qi "symlink" "$T/err" || { cat "$T/err" >&2; fail "the refusal does not say symlink"; }
[ -z "$(ls outside)" ] || fail "something was written through the symlink"

# A hostile console's COPY past the end of the old version.
mkdir -p box/root hh
printf 'evil\n' >hh/x
"$PS" manifest build hh -o hh.psm
expect_exit 0 "$PS" manifest show hh.psm
H=$(awk '{print $5}' "$T/out")
mkfile box/root/base.bin 100 4
expect_exit 0 python3 "$EVIL" console "$PS" "$T/box/root" copypast:base.bin "$H"
out_has "copy from bytes 200-205"
out_has "which has 100"
exit 0
