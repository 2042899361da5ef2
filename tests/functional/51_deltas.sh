# Engine v2 deltas: the console finds unchanged, moved and shifted blocks
# from the server's block sums alone, and asks for finer sums where edits
# smaller than a block sit; what it sends is close to what changed.
# Every result is checked byte for byte.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

lit() { json_get "$T/out" 'd["servers"][0]["literal_bytes"]'; }
push() {
    expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" \
        --remote-path "$PS" --no-whole-file --json
    cmp -s src/f dst/f || fail "$1: the server's copy differs"
}

mkdir src
mkfile src/f 4194304 1
push "first copy"

# 200 scattered 40-byte edits in place: about 8 KB changed.
python3 - src/f <<'PY'
import random, sys
d = bytearray(open(sys.argv[1], "rb").read())
r = random.Random(7)
for _ in range(200):
    o = r.randrange(len(d) - 40)
    d[o:o + 40] = bytes(r.randrange(256) for _ in range(40))
open(sys.argv[1], "wb").write(d)
PY
push "scattered edits"
[ "$(lit)" -lt 80000 ] || fail "scattered 40-byte edits sent $(lit) literal bytes (want < 80000)"

# One byte inserted at the front: everything after it shifted.
{ printf 'X'; cat src/f; } >src/g && mv src/g src/f
push "an insertion at the first byte"
[ "$(lit)" -lt 20000 ] || fail "a one-byte insertion sent $(lit) literal bytes"

# The last byte removed; then blocks moved around.
head -c -1 src/f >src/g && mv src/g src/f
push "a deletion at the last byte"
[ "$(lit)" -lt 20000 ] || fail "a one-byte deletion sent $(lit) literal bytes"
python3 - src/f <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
h = len(d) // 2
open(sys.argv[1], "wb").write(d[h:] + d[:h])
PY
push "halves swapped"
[ "$(lit)" -lt 20000 ] || fail "moved blocks sent $(lit) literal bytes"

# A file of zeros against itself grown, and against random data.
head -c 8388608 /dev/zero >src/f
push "zeros"
head -c 8392704 /dev/zero >src/f
push "zeros grown by a block"
[ "$(lit)" -lt 8192 ] || fail "zeros grown sent $(lit) literal bytes"
mkfile src/f 8388608 9
push "random over zeros"

# Shrinking and growing by less than a block.
head -c 8388000 src/f >src/g && mv src/g src/f
push "shrunk"
{ cat src/f; printf 'tail'; } >src/g && mv src/g src/f
push "grown"
[ "$(lit)" -lt 8192 ] || fail "a 4-byte append sent $(lit) literal bytes"
no_litter "$T/dst"

# Lazy sums: the server's manifest carries no block sums; the console asks
# for those of the files it sends a delta for. 100 unchanged files of
# 256 KiB (64 blocks each) cost no sums on the wire; one changed file
# still goes as a small delta.
rm -rf src dst
mkdir src
i=0
while [ $i -lt 100 ]; do
    mkfile "src/u$i.bin" 262144 $((i + 20))
    i=$((i + 1))
done
mkfile src/f 4194304 3
push "many files"
python3 - src/f <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[1000000:1000010] = b"0123456789"
open(sys.argv[1], "wb").write(d)
PY
push "one edit among many files"
[ "$(lit)" -lt 20000 ] || fail "a lazy delta sent $(lit) literal bytes"
recv=$(json_get "$T/out" 'd["servers"][0]["bytes_received"]')
# With sums: 100 x 64 x 12 bytes = 76800 of sums alone.
[ "$recv" -lt 40000 ] || fail "the server's manifest came with block sums ($recv bytes received)"
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 1 ] ||
    fail "more than the edited file was sent"

# A big file's sums come from what the server's walk had (its cache), not
# from reading the file again: the server never preads dst/f while it
# answers (it reads it only through copy_file_range for the COPYs).
if command -v strace >/dev/null; then
    # (LeakSanitizer cannot run under ptrace: no leak check there.)
    cat >traced <<TR
#!/bin/sh
ASAN_OPTIONS="\${ASAN_OPTIONS:-}:detect_leaks=0"
export ASAN_OPTIONS
exec strace -f -y -qq -e trace=pread64 -o "$T/strace.log" "$PS" "\$@"
TR
    chmod +x traced
    python3 - src/f <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[3000000:3000010] = b"abcdefghij"
open(sys.argv[1], "wb").write(d)
PY
    # A file changed within a second of a walk is hashed again (its
    # cache entry is not trusted): wait until dst/f is older than that.
    i=0
    until [ $(($(date +%s) - $(stat -c %Z dst/f))) -ge 3 ]; do
        i=$((i + 1))
        [ $i -le 100 ] || fail "dst/f's ctime stays recent"
        sleep 0.1
    done
    expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" \
        --remote-path "$T/traced" --no-whole-file --json
    cmp -s src/f dst/f || fail "traced push: the server's copy differs"
    [ "$(lit)" -lt 20000 ] || fail "a kept-sums delta sent $(lit) literal bytes"
    # Only the finer rounds read it: a few blocks around the edit.
    read=$(grep "pread64([0-9]*<$T/dst/f>" strace.log |
        sed -n 's/.* = \([0-9]*\)$/\1/p' | awk '{ n += $1 } END { print n + 0 }')
    if [ "$read" -ge 65536 ]; then
        grep "pread64([0-9]*<$T/dst/f>" strace.log | cut -c1-80 | head -3 >&2
        fail "the server read $read bytes of its old f to answer for its sums"
    fi
    # A new file sent whole is hashed as it is written: the server never
    # reads its temporary back (in several DATA frames, the last block
    # short; in one frame; empty). The sums it keeps are right: the next
    # delta against them sends little.
    sed 's/trace=pread64/trace=read,pread64/' traced >traced-read
    chmod +x traced-read
    mkfile src/h 3145829 31
    mkfile src/small 5000 32
    : >src/empty
    expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" \
        --remote-path "$T/traced-read" --json
    for x in h small empty; do
        cmp -s "src/$x" "dst/$x" || fail "new file $x differs on the server"
    done
    if grep -E "read(64)?\([0-9]+<[^>]*\.psync-tmp\." strace.log >&2; then
        fail "the server read a new file's temporary back"
    fi
    grep -q "^[0-9]* *read(" strace.log || fail "strace saw no read at all"
    # The console sends a new file that does not compress from the page
    # cache to the stream (sendfile), not through its own memory: the
    # whole file goes by sendfile, over a pipe (--rsh) and a socket (a
    # local path).
    mkfile src/sf 2621440 34
    for to in "localhost:$T/dst" "$T/dst2"; do
        rm -f strace-con.log*
        # One file per thread (-ff): no call is split by another's.
        expect_exit 0 strace -ff -y -qq -e trace=sendfile -o strace-con.log \
            env ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
            "$PS" push src "$to" --rsh "$RSH" --remote-path "$PS"
        cmp -s src/sf "${to#localhost:}/sf" || fail "sf differs on $to"
        sent=$(cat strace-con.log.* | grep "sendfile([0-9]*<[^>]*>, [0-9]*<$T/src/sf>" |
            sed -n 's/.* = \([0-9]*\)$/\1/p' | awk '{ n += $1 } END { print n + 0 }')
        [ "$sent" = 2621440 ] || fail "to $to, sendfile passed $sent bytes of sf (want all 2621440)"
    done
    python3 - src/h <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[2000000:2000010] = b"0123456789"
open(sys.argv[1], "wb").write(d)
PY
    expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" \
        --remote-path "$PS" --no-whole-file --json
    cmp -s src/h dst/h || fail "delta of h: the server's copy differs"
    [ "$(lit)" -lt 70000 ] || fail "a delta against streamed sums sent $(lit) literal bytes"
    # A big file built from copies is read back while it is written (by
    # pread, chunk by chunk, as its bytes come in order), not read again
    # whole at its commit (read after a seek to 0).
    mkfile src/big 25165824 33
    expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS"
    python3 - src/big <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
for o in range(500000, len(d), 4000000):
    d[o:o + 100] = bytes(100)
open(sys.argv[1], "wb").write(d)
PY
    expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" \
        --remote-path "$T/traced-read" --no-whole-file --json
    cmp -s src/big dst/big || fail "big delta: the server's copy differs"
    if grep -E "^[0-9]+ +read\([0-9]+<[^>]*\.psync-tmp\.big\." strace.log >reads; then
        head -3 reads >&2
        fail "the server read a big file's temporary again at its commit"
    fi
    n=$(grep -cE "pread64\([0-9]+<[^>]*\.psync-tmp\.big\." strace.log || true)
    [ "$n" -ge 20 ] || fail "the big file was not read back as it was written ($n preads)"
else
    echo "strace is missing (./bootstrap installs it)" >&2
    exit 99
fi
# The server's cache keeps block sums only for files of 1 MiB or more:
# with lazy sums nothing else is ever taken from it (a smaller file is
# read when its sums are asked for), and they were most of its bytes.
rm -rf cs cd
mkdir cs
mkfile cs/small 200000 41
mkfile cs/big 2100000 42
expect_exit 0 "$PS" push cs "localhost:$T/cd" --rsh "$RSH" --remote-path "$PS"
python3 - "$T/cache/patchsync/dest" <<'PY' || fail "the server's cache keeps the wrong sums"
import os, struct, sys
seen = {}
d = sys.argv[1]
for name in os.listdir(d):
    if not name.endswith(".psm"):
        continue    # the prune stamp
    b = open(os.path.join(d, name), "rb").read()
    assert b[:8] == b"PSYNCMF\n"
    local = struct.unpack_from("<I", b, 12)[0] & 1
    o = 16
    while b[o] != 0:
        t = b[o]; o += 1
        (plen,) = struct.unpack_from("<I", b, o); o += 4
        path = b[o:o + plen]; o += plen + 4 + 8 + 4
        if t == ord("f"):
            (size,) = struct.unpack_from("<Q", b, o); o += 8 + 16
            shift, sums = b[o], b[o + 1]; o += 2
            n = (size + (1 << shift) - 1) >> shift
            o += n * ({0: 0, 1: 8, 3: 12}[sums])
            seen[path] = (size, sums)
        if local:
            o += 28
want = {b"small": 0, b"big": 3}
for p, s in want.items():
    assert p in seen, "no cache entry for %r: %r" % (p, seen)
    assert seen[p][1] == s, "%r: sums %d, want %d" % (p, seen[p][1], s)
PY
python3 - cs/small cs/big <<'PY'
import sys
for f in sys.argv[1:]:
    d = bytearray(open(f, "rb").read())
    d[100000:100010] = b"0123456789"
    open(f, "wb").write(d)
PY
expect_exit 0 "$PS" push cs "localhost:$T/cd" --rsh "$RSH" --remote-path "$PS" \
    --no-whole-file --json
cmp -s cs/small cd/small && cmp -s cs/big cd/big || fail "deltas against a cache without small files' sums differ"
[ "$(lit)" -lt 40000 ] || fail "deltas against a cache without small files' sums sent $(lit) literal bytes"
no_litter "$T/dst"
exit 0
