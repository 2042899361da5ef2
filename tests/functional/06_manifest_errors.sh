# Corrupted and truncated manifests are refused; special files are skipped
# with a warning; unreadable files are an error (exit 3), never left out.
. "$TOP_SRCDIR/tests/lib.sh"

mkdir c
mkfile c/a.msu 20000 1
mkfile c/b.cab 300 2
expect_exit 0 "$PS" manifest build c -o good.psm
size=$(stat -c %s good.psm)

# Flip one byte at many places (every byte for a small manifest).
i=0
while [ "$i" -lt "$size" ]; do
    python3 -c 'import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[int(sys.argv[2])] ^= 0x40
open(sys.argv[3], "wb").write(b)' good.psm "$i" bad.psm
    expect_exit 2 "$PS" manifest show bad.psm
    one_error_line
    [ ! -s "$T/out" ] || fail "corrupt manifest (byte $i) partly shown"
    i=$((i + 1 + i / 8))
done
err_has "bad.psm"

# Truncated at several lengths, and empty.
for len in 0 1 8 16 $((size / 2)) $((size - 1)); do
    head -c "$len" good.psm >short.psm
    expect_exit 2 "$PS" manifest show short.psm
    one_error_line
    expect_exit 2 "$PS" manifest diff short.psm c
    one_error_line
done
# Garbage appended.
cat good.psm good.psm >long.psm
expect_exit 2 "$PS" manifest show long.psm
one_error_line
# Not a manifest at all.
echo "hello" >text.psm
expect_exit 2 "$PS" manifest show text.psm
one_error_line
expect_exit 2 "$PS" manifest show /nonexistent.psm
one_error_line
expect_exit 2 "$PS" manifest build /nonexistent-dir -o x.psm
one_error_line
expect_exit 2 "$PS" manifest build c/a.msu -o x.psm
one_error_line

# Symlinks, fifos, sockets and devices are skipped with a warning naming them.
ln -s a.msu c/link-to-a
ln -s /etc c/link-to-etc
mkfifo c/a-fifo
python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind("c/a-socket")'
if is_root; then mknod c/a-device c 1 3; fi
expect_exit 0 "$PS" manifest build c -o s.psm
err_has "link-to-a"
err_has "link-to-etc"
err_has "a-fifo"
err_has "a-socket"
if is_root; then err_has "a-device"; fi
expect_exit 0 "$PS" manifest show s.psm
[ "$(wc -l <"$T/out")" -eq 2 ] || { cat "$T/out"; fail "special files listed"; }
expect_exit 0 "$PS" -q manifest build c -o s.psm
[ ! -s "$T/err" ] || fail "-q still warns"

# An unreadable file: exit 3, named, and no manifest written.
mkdir -p u/sub
mkfile u/ok 10 1
mkfile u/sub/secret.msu 10 2
chmod 000 u/sub/secret.msu
run_unprivileged() {
    if is_root; then
        command -v setpriv >/dev/null || skip "setpriv needed to drop root"
        chmod 755 "$T"
        as_nobody "$@"
    else
        "$@"
    fi
}
chmod 777 "$T"
expect_exit 3 run_unprivileged "$PS" manifest build u -o "$T/u.psm"
err_has "sub/secret.msu"
[ ! -e u.psm ] || fail "partial manifest written"
ls -A "$T" | grep -q "u\.psm" && fail "temporary left behind"
# An unreadable directory is named too.
chmod 644 u/sub/secret.msu
chmod 000 u/sub
expect_exit 3 run_unprivileged "$PS" manifest build u -o "$T/u.psm"
err_has "sub"
chmod 755 u/sub
echo ok
