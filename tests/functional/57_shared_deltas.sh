# One push, several servers (SPEC 14): servers that hold the same old
# copy of a file share one delta plan, and new data is compressed once
# for all of them; servers with other old copies get their own, and
# every server ends byte for byte equal to the console.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir -p src/d
# A big file edited in scattered places (a delta), text that compresses,
# and a new file.
mkfile src/d/big 3000000 5
i=0
while [ $i -lt 4000 ]; do printf 'record %06d some text that repeats\n' $i; i=$((i + 1)); done >src/text
for s in a b c old; do
    mkdir -p "$s"
    cp -a src/. "$s/"
done
python3 - src/d/big <<'PY'
import random, sys
d = bytearray(open(sys.argv[1], "rb").read())
r = random.Random(3)
for _ in range(30):
    o = r.randrange(len(d) - 200)
    d[o:o + 200] = bytes(r.randrange(256) for _ in range(200))
open(sys.argv[1], "wb").write(d)
PY
printf 'new line\n' >>src/text
mkfile src/new 2000000 9
# Server c holds another old version of big: it must get its own delta.
python3 - c/d/big <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[1000:1100] = b"x" * 100
open(sys.argv[1], "wb").write(d)
PY

expect_exit 0 "$PS" push src "x:$T/a" "x:$T/b" "x:$T/c" -j 3 --rsh "$RSH" \
    --remote-path "$PS" --no-whole-file -vv --json
for s in a b c; do
    diff -r src "$s" >/dev/null || fail "server $s differs from the console"
done
line=$(grep 'shared between servers' "$T/err") ||
    fail "no sharing reported: $(tail -n 5 "$T/err")"
plans=$(printf '%s\n' "$line" | sed 's/.*servers: \([0-9]*\) delta plans, \([0-9]*\).*/\1/')
pieces=$(printf '%s\n' "$line" | sed 's/.*plans, \([0-9]*\) compressed.*/\1/')
[ "$plans" -ge 1 ] || fail "no delta plan was shared: $line"
[ "$pieces" -ge 2 ] || fail "no compressed data was shared: $line"
# Each server still got its own delta figures.
for k in 0 1 2; do
    [ "$(json_get "$T/out" "d['servers'][$k]['files_transferred']")" = 3 ] ||
        fail "server $k: files transferred: $(cat "$T/out")"
done

# With several servers the console's scan is decoded once for all their
# merges, not read again by each session: a new source's scan file is
# read about once for three servers.
if command -v strace >/dev/null; then
    cp -a src src3
    expect_exit 0 env ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
        strace -ff -y -qq -e trace=pread64 -o "$T/scan.strace" \
        "$PS" push src3 "x:$T/s3a" "x:$T/s3b" "x:$T/s3c" -j 3 --rsh "$RSH" \
        --remote-path "$PS"
    for s in s3a s3b s3c; do
        diff -r src3 "$s" >/dev/null || fail "server $s differs from the console"
    done
    # One file per thread (-ff): no call is split by another's.
    cat scan.strace.* >scan.all
    scan=$(grep -oE "<$T/cache/patchsync/[0-9a-f]+\.psm>" scan.all | sort -u)
    [ "$(printf '%s\n' "$scan" | wc -l)" = 1 ] || fail "scan files read: $scan"
    read=$(grep -F "$scan" scan.all |
        sed -n 's/.* = \([0-9]*\)$/\1/p' | awk '{ n += $1 } END { print n + 0 }')
    scan=${scan#<}
    size=$(wc -c <"${scan%>}")
    [ "$read" -gt 0 ] && [ "$read" -le $((size + size / 2)) ] ||
        fail "the scan file ($size bytes) was read $read bytes for three servers"
else
    echo "strace is missing (./bootstrap installs it)" >&2
    exit 99
fi

# Six servers in the same state at once: a session that finds a delta's
# plan (or a refinement round's) already matched for another server
# takes it without asking its own server for sums. Nothing is sent again
# (a plan that did not fit would fail the server's check and be resent),
# and every server ends equal to the console. With six sessions on one
# CPU a session starts its deltas from its own thread and the answers to
# its requests for sums are a worker's: frames a worker sends are written
# out by it, not left for a session that waits (left, they would wait for
# the next keepalive, 30 s away: this push takes a second).
for s in p1 p2 p3 p4 p5 p6; do
    mkdir "$s" && cp -a old/. "$s/"
done
expect_exit 0 timeout 20 taskset -c 0 "$PS" push src "x:$T/p1" "x:$T/p2" \
    "x:$T/p3" "x:$T/p4" "x:$T/p5" "x:$T/p6" -j 6 --rsh "$RSH" \
    --remote-path "$PS" --no-whole-file -v
grep 'sending it again' "$T/err" && fail "a shared plan did not fit"
for s in p1 p2 p3 p4 p5 p6; do
    diff -r src "$s" >/dev/null || fail "server $s differs from the console"
done

# One server alone shares nothing (and says nothing of it).
cp -a old/. d1/ 2>/dev/null || { mkdir d1 && cp -a old/. d1/; }
expect_exit 0 "$PS" push src "x:$T/d1" --rsh "$RSH" --remote-path "$PS" \
    --no-whole-file -vv
grep -q 'shared between servers' "$T/err" && fail "sharing with one server"
diff -r src d1 >/dev/null || fail "d1 differs"
