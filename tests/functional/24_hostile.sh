# Hostile peers, beyond malformed frames (tests/evilpeer.py): a server
# that says nothing, trickles its greeting, stalls after its manifest,
# answers DONE before it was sent, or claims a 4 GiB manifest; a console
# that says nothing, announces a 1 TiB file, or reads then pushes in one
# session. Each ends with exit 4 and one line within its deadline, or is
# refused; nothing waits forever and nothing is allocated or written out
# of proportion to what was sent.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local
EVIL=$TOP_SRCDIR/tests/evilpeer.py
command -v timeout >/dev/null || skip "no timeout(1)"

mkdir src
mkfile src/a.msu 1000 1
bad=0
# Address space for the console: enough for it, far too little for 4 GiB
# (not under AddressSanitizer or ThreadSanitizer, which reserve terabytes
# of it).
if grep -q -e __asan_init -e __tsan_init "$PS"; then
    printf '#!/bin/sh\nexec "$@"\n' >limited
else
    printf '#!/bin/sh\nulimit -v 1000000\nexec "$@"\n' >limited
fi
chmod +x limited
# evil ID MODE SECONDS CMD...: the console against a hostile server, in
# the background (the cases wait out their timeouts side by side); then
# evil_check ID: it exited 4 with one patchsync line (in $T/err.ID), in
# less than SECONDS.
evil() {
    id=$1 mode=$2 limit=$3
    shift 3
    (
        start=$(date +%s)
        set +e
        timeout 60 "$T/limited" "$PS" "$@" "evil:$T/dst" --rsh "$RSH" \
            --remote-path "python3 $EVIL server $mode" \
            >"$T/out.$id" 2>"$T/err.$id"
        rc=$?
        echo "$rc $(($(date +%s) - start)) $limit $mode $*" >"$T/rc.$id"
    ) &
}
evil_check() {
    read -r rc took limit what <"$T/rc.$1"
    if [ "$rc" != 4 ]; then
        echo "FAIL: $what: exit $rc (want 4)" >&2; cat "$T/err.$1" >&2; bad=1; return
    fi
    [ "$took" -lt "$limit" ] || { echo "FAIL: $what took $took s" >&2; bad=1; }
    [ "$(grep -c '^patchsync: ' "$T/err.$1")" = 1 ] ||
        { echo "FAIL: $what: not one line:" >&2; cat "$T/err.$1" >&2; bad=1; }
}
# Silent, and trickling one byte a second: the greeting has its limit
# (30 s, or a shorter --timeout).
evil 1 silent 15 push src --timeout 3
evil 2 trickle 15 push src --timeout 3
evil 3 silent 15 report src --timeout 3
# A manifest, then nothing: --timeout ends it.
evil 4 stall 15 push src --timeout 2
evil 5 stall 15 report src --timeout 2
# DONEACK before DONE, then gone: a protocol error, not a hang.
evil 6 earlyack 20 push src --timeout 10
# 4 GiB of zeros in a few kilobytes: refused early, in little memory.
evil 7 bomb 30 report src
wait
for i in 1 2 3 4 5 6 7; do evil_check $i; done
grep -q 'timed out' "$T/err.1" || { cat "$T/err.1" >&2; bad=1; }
grep -q 'timed out' "$T/err.4" || { cat "$T/err.4" >&2; bad=1; }
grep -qi 'expands\|manifest' "$T/err.7" || { cat "$T/err.7" >&2; echo "FAIL: bomb reason" >&2; bad=1; }
[ ! -e dst ] || { echo "FAIL: something created dst" >&2; bad=1; }
[ $bad = 0 ] || fail "hostile server cases (see above)"

# Peer text is escaped before it reaches a terminal.
cat >"$T/esc.py" <<'PY'
import struct, sys
sys.path.insert(0, sys.argv[1])
import evilpeer as e
out = sys.stdout.buffer
out.write(e.hello(b"s")); out.flush()
e.Reader(0).frame()
out.write(e.msg("ERROR", 4, b"\x1b]0;owned\x07\x1b[2Jgone"))
out.flush()
PY
expect_exit 4 "$PS" push src "evil:$T/dst" --rsh "$RSH" \
    --remote-path "python3 $T/esc.py $TOP_SRCDIR/tests"
one_error_line
grep -q "$(printf '\033')" "$T/err" && fail "a raw escape byte reached stderr"
err_has '\x1b'

# ---- hostile consoles against serve ----
mkdir -p hh box/root
printf 'evil\n' >hh/x
"$PS" manifest build hh -o hh.psm
expect_exit 0 "$PS" manifest show hh.psm
H=$(awk '{print $5}' "$T/out")
R=$T/box/root
# Greets, then silence: serve --timeout 3 gives up, with an ERROR.
expect_exit 0 timeout 30 python3 "$EVIL" console "$PS" "$R" silent: "$H"
# A 1 TiB file announced, 5 bytes sent: refused at once, nothing hashed
# or allocated for the claimed size, no temporary left.
expect_exit 0 timeout 30 python3 "$EVIL" console "$PS" "$R" bigclaim: "$H"
no_litter "$R"
[ ! -e "$R/huge.bin" ] || fail "the 1 TiB claim was put in place"

# Read first (shared lock), then push in the same session: the push
# holds ROOT's lock exclusively, so another reader cannot get in.
mkdir -p comp/.patchsync comp/patches sync
: >comp/.patchsync/lock
python3 "$EVIL" console "$PS" "$T/comp" "pullpush:$T/sync" "$H" >pp.out 2>pp.err &
pp=$!
i=0
while [ ! -e sync/pushing ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
[ -e sync/pushing ] || { cat pp.out pp.err >&2; fail "the hostile console never got to push"; }
if flock -n -s comp/.patchsync/lock true; then
    held=shared
else
    held=exclusive
fi
touch sync/probed
wait $pp || { cat pp.out pp.err >&2; fail "pull-then-push session failed"; }
[ "$held" = exclusive ] || fail "a push after a pull ran under the shared lock only"
exit 0
