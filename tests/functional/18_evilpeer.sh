# Hostile peers (tests/evilpeer.py). A hostile server: garbage instead of
# a greeting, a bad greeting, an oversized frame, an unknown type, a
# truncated frame, a bad manifest, manifest frames without end that decode
# to nothing:
# the console exits 4 with one clear
# line, does not hang, and writes nothing. A hostile console against
# `patchsync serve --stdio ROOT`: destinations and paths that leave ROOT
# (.., absolute, NUL, a symlinked parent) are refused and nothing outside
# ROOT is created, changed or removed.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local
EVIL=$TOP_SRCDIR/tests/evilpeer.py
command -v timeout >/dev/null || skip "no timeout(1)"

mkdir src
mkfile src/a.msu 1000 1
(cd src && find . -exec stat -c '%n %s %Y' {} + | sort) >src.before
bad=0
for mode in garbage eof badmagic badversion bigframe unknowntype truncated badmanifest hugestr mfflood; do
    for cmd in push report; do
        set +e
        timeout 20 "$PS" $cmd src "evil:$T/dst" --rsh "$RSH" --remote-path "python3 $EVIL server $mode" >"$T/out" 2>"$T/err"
        rc=$?
        set -e
        if [ $rc != 4 ]; then
            echo "FAIL: $cmd against a server doing '$mode': exit $rc (want 4)" >&2; cat "$T/err" >&2; bad=1; continue
        fi
        if [ "$(wc -l <"$T/err")" != 1 ] || ! grep -q '^patchsync: ' "$T/err"; then
            echo "FAIL: $cmd/$mode: not one clear line:" >&2; cat "$T/err" >&2; bad=1
        fi
    done
done
# A server that answers a file before the console has sent all of it
# (its data unread, so its END cannot be out): the session ends with one
# line, exit 4; the console never takes the file for done while a thread
# still sends it (its slot would be given to another file).
mkdir srcbig
mkfile srcbig/big.cab 8000000 2
set +e
timeout 60 "$PS" push srcbig "evil:$T/dst" --rsh "$RSH" --remote-path "python3 $EVIL server earlyresult" >"$T/out" 2>"$T/err"
rc=$?
set -e
if [ $rc != 4 ] || [ "$(wc -l <"$T/err")" != 1 ] || ! grep -q 'a result for file id .* before its end' "$T/err"; then
    echo "FAIL: push against a server answering a file before its end: exit $rc (want 4):" >&2; cat "$T/err" >&2; bad=1
fi
# A server that answers a request for block sums twice (the last piece,
# then another last piece): the second is refused, not handed to a second
# worker beside the first (both would own the file).
mkdir sumsrc sumsrv
mkfile sumsrv/big.cab 4000000 4
cp sumsrv/big.cab sumsrc/big.cab
printf 'an edit of the console copy' |
    dd of=sumsrc/big.cab bs=1 seek=2000000 conv=notrunc 2>/dev/null
"$PS" manifest build sumsrv -o sumsrv.psm
set +e
EVIL_MANIFEST=$T/sumsrv.psm timeout 60 "$PS" push sumsrc "evil:$T/dst" --rsh "$RSH" --remote-path "python3 $EVIL server sumstwice" --no-whole-file >"$T/out" 2>"$T/err"
rc=$?
set -e
if [ $rc != 4 ] || [ "$(wc -l <"$T/err")" != 1 ] || ! grep -q 'block sums nobody asked for' "$T/err"; then
    echo "FAIL: push against a server answering sums twice: exit $rc (want 4):" >&2; cat "$T/err" >&2; bad=1
fi
set +e
"$PS" push src "evil:$T/dst" --rsh "$RSH" --remote-path "python3 $EVIL server garbage" >"$T/out" 2>"$T/err"
set -e
grep -qF 'bash: patchsync: command not found' "$T/err" || { cat "$T/err" >&2; echo "FAIL: the greeting text is not quoted" >&2; bad=1; }
[ ! -e dst ] || { echo "FAIL: something created $T/dst" >&2; bad=1; }
(cd src && find . -exec stat -c '%n %s %Y' {} + | sort) >src.after
cmp -s src.before src.after || { echo "FAIL: the console tree changed" >&2; bad=1; }
[ $bad = 0 ] || fail "hostile server cases (see above)"

# ---- the hostile console ----
mkdir -p hh box/root/sub box/outside
printf 'evil\n' >hh/x
"$PS" manifest build hh -o hh.psm
expect_exit 0 "$PS" manifest show hh.psm
H=$(awk '{print $5}' "$T/out")
[ ${#H} = 32 ] || fail "cannot get the content hash from manifest show: $(cat "$T/out")"
mkfile box/outside/victim 100 2
mkfile box/victim 100 3
ln -s "$T/box/outside" box/root/link
snap() { (cd "$T" && find box etc 2>/dev/null | grep -v '^box/root' | LC_ALL=C sort | while IFS= read -r f; do
    stat -c '%n %F %s %a %Y' "$f"; done) }
snap >outside.before
R=$T/box/root
# The case that must work, so that refusals below mean something.
expect_exit 0 python3 "$EVIL" console "$PS" "$R" ok "$H"
cmp -s hh/x box/root/ok.txt || fail "the well-formed FILE did not land"
# Pieces out of order are fine (the file is read back to check it); one
# wrong byte in order is caught by the hash taken as it is written.
expect_exit 0 python3 "$EVIL" console "$PS" "$R" reorder: "$H"
cmp -s hh/x box/root/reorder.txt || fail "a file sent in pieces out of order did not land"
expect_exit 0 python3 "$EVIL" console "$PS" "$R" badbytes: "$H"
[ ! -e box/root/badbytes.txt ] || fail "a file whose bytes do not match its hash was put in place"
# An OPEN with the early flag: a file sent at once is taken while serve
# still walks a big tree, and answered only after its manifest ended
# (the console reads the manifest whole first).
mkdir -p big/root/many
(cd big/root/many && seq 1 4000 | sed 's/^/f/' | xargs touch)
expect_exit 0 python3 "$EVIL" console "$PS" "$T/big/root" early: "$H"
cmp -s hh/x big/root/ok.txt || fail "a file sent early did not land"
[ "$(find big/root/many -type f | wc -l)" = 4000 ] || fail "files went missing around an early file"
for c in 'open:../x' 'open:/etc' 'open:..' 'open:sub/../../x' 'open:.patchsync' \
    'file:../../etc/x' 'file:a/../../b' 'file:../victim' "file:$T/box/abs" 'file:/etc/evil' \
    'file:sub/../../victim' 'file:a\x00b' 'file:..\x00/x' 'file:link/victim' 'file:link/new' \
    'file:.patchsync/lock' 'delete:.patchsync/lock' 'file:' 'file:.' 'file:sub/..' \
    'mkdir:../made' 'mkdir:link/made' "mkdir:$T/box/made2" \
    'delete:../victim' 'delete:link/victim' "delete:$T/box/victim" \
    'meta:../victim' 'meta:link/victim' 'bigdata:' \
    'earlyfile:../victim' 'earlyfile:link/new' 'earlyfile:.patchsync/lock' \
    'earlymkdir:../made3' 'earlymkdir:link/made3' 'earlydelete:../victim' \
    'earlydelete:link/victim'; do
    set +e
    timeout 20 python3 "$EVIL" console "$PS" "$R" "$c" "$H" >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ $rc = 0 ] || { echo "FAIL: hostile console '$c' (exit $rc): $(cat "$T/out")" >&2; cat "$T/err" >&2; bad=1; }
done
snap >outside.after
diff outside.before outside.after >&2 || { echo "FAIL: something outside ROOT changed" >&2; bad=1; }
[ ! -e "$T/etc" ] && [ ! -e /etc/evil ] && [ ! -e /etc/x ] || { echo "FAIL: created under etc" >&2; bad=1; }
[ $bad = 0 ] || fail "hostile console cases (see above)"
exit 0
