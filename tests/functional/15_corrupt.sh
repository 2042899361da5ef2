# A byte flipped on the wire (console -> server) inside a DATA payload:
# the push fails (exit 5, or 4) and the server's old file stays as it was;
# the next clean push works and leaves no temporaries.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

# flip.py MARK N: copy stdin to stdout frame by frame, flipping one byte
# in the middle of the payload of the first N DATA frames (type 22) whose
# payload is over 1000 bytes (and DELTA frames, type 26, alike).
cat >flip.py <<'PY'
import os, struct, sys
i, o = sys.stdin.buffer, sys.stdout.buffer
def read(n):
    b = b""
    while len(b) < n:
        c = i.read1(n - len(b)) if hasattr(i, "read1") else i.read(n - len(b))
        if not c:
            return b
        b += c
    return b
left = int(sys.argv[2])
while True:
    h = read(5)
    if len(h) < 5:
        o.write(h); o.flush(); break
    n, t = struct.unpack("<IB", h)
    p = read(n)
    if left > 0 and t in (22, 26) and n > 1000 and len(p) == n:
        p = bytearray(p); p[n // 2] ^= 0x10; p = bytes(p)
        left -= 1
        open(sys.argv[1], "w").write("flipped\n")
    o.write(h + p); o.flush()
    if len(p) < n:
        break
PY
cat >rsh-flip <<EOS
#!/bin/sh
python3 "$T/flip.py" "$T/flipped" "\$FLIPS" | "$RSH" "\$@"
EOS
chmod +x rsh-flip

mkdir src
mkfile src/a.msu 300000 1
mkfile src/b.cab 1000 2
expect_exit 0 "$PS" push src "$T/dst"
cp -p dst/a.msu old-a
mkfile src/a.msu 300000 3
# Every DATA frame damaged: the file cannot get through; exit 5 (or 4),
# one error line, and the old file stays.
FLIPS=1000000; export FLIPS
for mode in -W --no-whole-file; do
    rm -f flipped
    set +e
    "$PS" push src "localhost:$T/dst" --rsh "$T/rsh-flip" --remote-path "$PS" $mode >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ -e flipped ] || fail "$mode: the filter saw no DATA frame"
    case $rc in 4|5) ;; *) cat "$T/err" >&2; fail "$mode: exit $rc after damaged data (want 5 or 4)";; esac
    grep -q "^patchsync: " "$T/err" || { echo "exit $rc" >&2; cat "$T/out" >&2; fail "$mode: exit $rc and no error line"; }
    cmp -s old-a dst/a.msu || fail "$mode: the server's file was replaced by corrupt data"
done

# One damaged frame: the file may be sent again (exit 0, and then exactly
# right), or the push fails (5/4 with a line) leaving the old file. Never
# a corrupt file, never a silent failure.
FLIPS=1
for mode in -W --no-whole-file; do
    cp -p old-a src/a.msu; expect_exit 0 "$PS" push src "$T/dst"
    mkfile src/a.msu 300000 4
    rm -f flipped
    set +e
    "$PS" push src "localhost:$T/dst" --rsh "$T/rsh-flip" --remote-path "$PS" $mode --json >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ -e flipped ] || fail "$mode: the filter saw no DATA frame"
    st=$(json_get "$T/out" 'd["servers"][0]["status"]')
    case $rc in
    0)  cmp -s src/a.msu dst/a.msu || fail "$mode: exit 0 but the server file is not the new version"
        [ "$st" = ok ] || fail "$mode: exit 0 but status $st";;
    4|5)
        grep -q "^patchsync: " "$T/err" || { cat "$T/out" >&2; cmp -s src/a.msu dst/a.msu && echo "(the server file is the complete new version)" >&2; fail "$mode: exit $rc (status $st) and no error line"; }
        cmp -s old-a dst/a.msu || fail "$mode: exit $rc but the server file was replaced";;
    *)  cat "$T/err" >&2; fail "$mode: exit $rc after one damaged frame";;
    esac
done
expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS"
cmp -s src/a.msu dst/a.msu || fail "the clean push did not update the file"

# A big file built from copies and data is read back while it is written
# (receiver.c, progressive verification): damaged data is caught there.
mkfile src/big.bin 20971520 5
expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS"
cp -p dst/big.bin old-big
python3 - src/big.bin <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
for o in range(1000000, len(d), 3000000):
    d[o:o + 5000] = bytes((b + 1) & 255 for b in d[o:o + 5000])
open(sys.argv[1], "wb").write(d)
PY
FLIPS=1000000
rm -f flipped
set +e
"$PS" push src "localhost:$T/dst" --rsh "$T/rsh-flip" --remote-path "$PS" --no-whole-file >"$T/out" 2>"$T/err"
rc=$?
set -e
[ -e flipped ] || fail "big file: the filter saw no DATA frame"
case $rc in 4|5) ;; *) cat "$T/err" >&2; fail "big file: exit $rc after damaged data (want 5 or 4)";; esac
cmp -s old-big dst/big.bin || fail "big file: replaced by corrupt data"
expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS" --no-whole-file
cmp -s src/big.bin dst/big.bin || fail "big file: the clean delta push did not update it"
n=$(find dst -path dst/.patchsync -prune -o -name '.psync*' -print | wc -l)
[ "$n" -eq 0 ] || fail "temporaries left"
exit 0
