# A server tree filled by `rsync -a`: patchsync sends nothing; then a 1%
# change of a 10 MiB file goes as a delta over --rsh.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local
command -v rsync >/dev/null || skip "no rsync"

mkdir src
mkfile src/big.msu 10485760 1
mkfile "src/sub dir/x.cab" 50000 2
: >src/zero
mkdir -p src/empty
chmod 600 src/zero
touch -d '2022-01-02 03:04:05.678901234' src/big.msu
rsync -a src/ dst/
expect_exit 0 "$PS" push src "$T/dst" --json
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 0 ] ||
    fail "an rsync -a copy is not recognised as current"
expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS" --json
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 0 ] ||
    fail "over --rsh: an rsync -a copy is not recognised as current"
expect_exit 0 "$PS" report src "$T/dst" --extra

python3 - src/big.msu <<'PY'
import sys
f = open(sys.argv[1], "r+b"); f.seek(4000000); f.write(b"\x42" * 104857)
PY
expect_exit 0 "$PS" push src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS" --json
lit=$(json_get "$T/out" 'd["servers"][0]["literal_bytes"]')
mat=$(json_get "$T/out" 'd["servers"][0]["matched_bytes"]')
[ "$lit" -lt 1000000 ] || fail "literal $lit bytes for a 1% change"
[ "$mat" -gt 9000000 ] || fail "matched only $mat bytes"
cmp -s src/big.msu dst/big.msu || fail "result differs"
# And rsync agrees nothing is left to do.
n=$(rsync -a --dry-run --itemize-changes src/ dst/ | grep -v '^\.d' | wc -l)
[ "$n" -eq 0 ] || { rsync -a -n -i src/ dst/ >&2; fail "rsync sees differences after patchsync"; }
exit 0
