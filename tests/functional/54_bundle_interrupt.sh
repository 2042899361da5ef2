# An apply that is killed (kill -9) while it reads the bundle leaves every
# file old, and the next apply finishes the job and removes what the
# killed one left; Ctrl-C (SIGINT) ends an apply with exit 130, nothing
# changed and no temporary left. The bundle comes through a FIFO that
# the test fills halfway, so the apply is certainly in the middle.
. "$TOP_SRCDIR/tests/lib.sh"

mkdir con
for i in 1 2 3 4; do
    mkfile con/f$i.msu 3000000 $i
done
mkfile con/defs.bin 4000000 5
expect_exit 0 "$PS" push con "$T/srv"
mkfile con/f2.msu 3000000 12
mkfile con/f5.msu 3000000 15
python3 - con/defs.bin <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[2000000:2000010] = b"0123456789"
open(sys.argv[1], "wb").write(d)
PY
expect_exit 0 "$PS" manifest build srv -o srv.psm
expect_exit 0 "$PS" bundle create con --against srv.psm -o b.psb
size=$(wc -c <b.psb)
treemeta srv >before

# start_apply: an apply reading the FIFO p, which gets half the bundle.
start_apply() {
    rm -f p
    mkfifo p
    "$PS" bundle apply p srv >apply.out 2>apply.err &
    pid=$!
    exec 3>p
    head -c $((size / 2)) b.psb >&3
}

# wait_staged: until a temporary of the apply is in the server (bounded).
wait_staged() {
    n=0
    until find srv -name '.psync-tmp.*' | grep -q .; do
        n=$((n + 1))
        [ $n -lt 400 ] || fail "no temporary appeared in 20 s"
        kill -0 $pid 2>/dev/null || { cat apply.err >&2; fail "the apply ended early"; }
        sleep 0.05
    done
}

# kill -9 in the middle: every file is still old.
start_apply
wait_staged
kill -9 $pid
set +e
wait $pid
set -e
exec 3>&-
# Its temporaries are hidden; the next apply removes them.
treemeta srv | grep -v "^b'\.psync-tmp\." >after
diff before after >&2 || fail "a killed apply changed a file"
expect_exit 0 "$PS" bundle apply b.psb srv
no_litter srv
expect_exit 0 "$PS" manifest diff con srv --extra
treemeta con >want
treemeta srv >got
diff want got >&2 || fail "the apply after a kill did not finish the job"

# SIGINT in the middle: exit 130, nothing changed, nothing left.
rm -rf srv
expect_exit 0 "$PS" push con "$T/srv"
mkfile con/f6.msu 3000000 16
mkfile con/f1.msu 3000000 11
expect_exit 0 "$PS" manifest build srv -o srv.psm
expect_exit 0 "$PS" bundle create con --against srv.psm -o b.psb
size=$(wc -c <b.psb)
treemeta srv >before
start_apply
wait_staged
kill -INT $pid
set +e
wait $pid
rc=$?
set -e
exec 3>&-
[ "$rc" = 130 ] || { cat apply.err >&2; fail "SIGINT: exit $rc, not 130"; }
[ ! -s apply.err ] || { cat apply.err >&2; fail "SIGINT: messages on stderr"; }
treemeta srv >after
diff before after >&2 || fail "an interrupted apply changed a file"
no_litter srv

# A create writing to a pipe that stalls ends on SIGINT too.
rm -f p
mkfifo p
"$PS" bundle create con --full -o - >p 2>create.err &
pid=$!
exec 3<p
head -c 1000 <&3 >/dev/null
kill -INT $pid
set +e
wait $pid
rc=$?
set -e
exec 3<&-
[ "$rc" = 130 ] || { cat create.err >&2; fail "create: exit $rc after SIGINT, not 130"; }
echo ok
