# download -C NAME -- COMMAND: holds the component's download lock while
# COMMAND runs and returns its exit status; a push of NAME meanwhile
# waits (queued, with an event) and then sends the complete file.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends

mkdir pat eng dst
mkfile pat/old.msu 1000 1
mkfile eng/e.bin 1000 2
console_conf a patches:pat engines:eng
A="$PS -c a.conf"
expect_exit 0 $A server add dist "$T/dst"

# Exit status and argument passing.
expect_exit 7 $A download -C patches -- sh -c 'exit 7'
expect_exit 0 $A download -C patches -- sh -c 'echo "$1" >pat/arg' sh -q
[ "$(cat pat/arg)" = -q ] || fail "arguments not passed to the command"
rm pat/arg
expect_exit 2 $A download -C nosuch -- true
one_error_line
err_has "unknown component 'nosuch'"
expect_exit 2 $A download -C patches
one_error_line

# A downloader that writes a file in two halves, slowly.
mkfile half1 400000 3
mkfile half2 400000 4
cat half1 half2 >full
$A download -C patches -- sh -c "cat half1 >pat/new.msu; sleep 2; cat half2 >>pat/new.msu" &
dl=$!
i=0
while [ ! -s pat/new.msu ]; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "downloader did not start"; sleep 0.1
done
start=$(date +%s)
expect_exit 0 $A push dist -C patches
end=$(date +%s)
wait "$dl" || fail "download failed"
[ $((end - start)) -ge 1 ] || fail "push did not wait for the download"
cmp full dst/patches/new.msu || fail "push sent a half-downloaded file"
expect_exit 0 $A history
out_has "waiting for the download of patches"

# On a terminal, a waiting push says what it waits for (SPEC 6).
if command -v script >/dev/null; then
    $A download -C patches -- sh -c "touch dl.started; sleep 1" &
    dl=$!
    i=0
    while [ ! -e dl.started ]; do
        i=$((i + 1)); [ $i -lt 100 ] || fail "downloader did not start"; sleep 0.1
    done
    script -qec "$A push dist -C patches --no-progress" /dev/null >tty.out 2>&1 ||
        { cat tty.out >&2; fail "push on a terminal failed"; }
    wait "$dl"
    grep -q "waiting for the download of patches" tty.out ||
        { cat tty.out >&2; fail "a push waiting on a terminal said nothing"; }
fi

# Another component is not held up by the download.
$A download -C patches -- sleep 5 &
dl=$!
sleep 0.5
start=$(date +%s)
expect_exit 0 $A push dist -C engines
end=$(date +%s)
[ $((end - start)) -lt 4 ] || fail "push of engines waited for patches"
kill "$dl"; wait "$dl" 2>/dev/null || true
echo ok
