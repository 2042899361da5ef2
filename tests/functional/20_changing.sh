# A console file that changes while it is being sent (a writer appends to
# it, or rewrites it in place, during a slow --bwlimit push): the server
# gets one complete version the writer produced, or the push reports the
# file (exit 3); never a half-old, half-new file.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

# writer.py FILE MODE LOG: every 0.15 s for 1.8 s, change FILE (append 64
# KiB, or rewrite 64 KiB in place) and log the sha256 of each complete
# state (the first line is the state before any change).
cat >writer.py <<'PY'
import hashlib, os, sys, time
path, mode, log = sys.argv[1:4]
def h():
    return hashlib.sha256(open(path, "rb").read()).hexdigest()
with open(log, "w") as lg:
    lg.write(h() + "\n"); lg.flush()
    end = time.time() + 1.8
    k = 0
    while time.time() < end:
        time.sleep(0.15)
        k += 1
        chunk = os.urandom(65536)
        with open(path, "r+b") as f:
            if mode == "append":
                f.seek(0, 2)
            else:
                f.seek((k * 65536 * 7) % (3145728 - 65536))
            f.write(chunk)
        lg.write(h() + "\n"); lg.flush()
PY

# case N MODE HOW: one push from srcN while the writer changes its
# big.msu; the four run side by side (each waits out a 2 MB/s push).
case_() {
    n=$1 mode=$2 how=$3 src=src$1
    mkdir "$src"
    head -c 3145728 /dev/urandom >"$src/big.msu"
    mkfile "$src/small" 100 "$n"
    python3 writer.py "$src/big.msu" "$mode" "states$n" &
    wpid=$!
    sleep 0.3
    if [ "$how" = local ]; then url=$T/dst$n; set -- ; else
        url=localhost:$T/dst$n; set -- --rsh "$RSH" --remote-path "$PS"; fi
    set +e
    "$PS" push "$src" "$url" --bwlimit 2M "$@" >"$T/out$n" 2>"$T/err$n"
    rc=$?
    set -e
    wait $wpid
    case $rc in
    0)  ;;
    3)  grep -q '^patchsync: .*big.msu' "$T/err$n" || { cat "$T/err$n" >&2; fail "$mode/$how: exit 3 without naming big.msu"; } ;;
    *)  cat "$T/err$n" >&2; fail "$mode/$how: push exit $rc";;
    esac
    if [ -e "dst$n/big.msu" ]; then
        got=$(sha256sum "dst$n/big.msu" | cut -d' ' -f1)
        grep -qx "$got" "states$n" ||
            fail "$mode/$how (exit $rc): the server has a version of big.msu the writer never produced (half-old, half-new)"
    else
        [ $rc != 0 ] || fail "$mode/$how: exit 0 but big.msu missing"
    fi
    cmp -s "$src/small" "dst$n/small" || fail "$mode/$how: small not pushed"
    c=$(find "dst$n" -path "dst$n/.patchsync" -prune -o -name '.psync*' -print | wc -l)
    [ "$c" -eq 0 ] || fail "$mode/$how: temporaries left"
}
pids=
n=0
for mode in append rewrite; do
    for how in local rsh; do
        n=$((n + 1))
        (case_ $n $mode $how) &
        pids="$pids $!"
    done
done
bad=0
for p in $pids; do
    wait "$p" || bad=1
done
[ $bad = 0 ] || fail "see above"
exit 0
