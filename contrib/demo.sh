#!/bin/sh
# contrib/demo.sh — what `./bootstrap demo` shows: a sample console tree,
# its manifest, and the difference after a Patch Tuesday.
#
# PATCHSYNC names the binary (default: patchsync on PATH). The sample data
# goes to a new temporary directory, which is left for you to look at.
set -eu

ps=${PATCHSYNC:-patchsync}
demo=$(mktemp -d "${TMPDIR:-/tmp}/patchsync-demo.XXXXXX")
console=$demo/console/patches

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Deterministic pseudo-random bytes: SIZE bytes from SEED.
gen() {
    python3 -c 'import random,sys
r=random.Random(int(sys.argv[2])); sys.stdout.buffer.write(r.randbytes(int(sys.argv[1])))' "$1" "$2"
}

say "A sample console under $demo"
mkdir -p "$console/windows10" "$console/office" "$console/empty"
i=0
for kb in 5031356 5031358 5031364 5032189 5032190 5033372; do
    i=$((i + 1))
    gen $((i * 40000)) "$kb" >"$console/windows10/KB$kb.msu"
done
gen 150000 7 >"$console/office/mso2016-kb5002519.cab"
gen 9000 8 >"$console/office/Definitions update.xml"
ls -lR "$console" | sed 's/^/  /'

say "patchsync manifest build $console -o before.psm"
"$ps" manifest build "$console" -o "$demo/before.psm"
echo "  $(stat -c %s "$demo/before.psm") bytes"

say "patchsync manifest show before.psm"
"$ps" manifest show "$demo/before.psm"

say "Patch Tuesday: one new update, one replaced, one withdrawn"
gen 70000 5034441 >"$console/windows10/KB5034441.msu"
gen 120000 99 >"$console/windows10/KB5031358.msu"
rm "$console/office/Definitions update.xml"

say "patchsync manifest diff before.psm $console --extra"
rc=0
"$ps" manifest diff "$demo/before.psm" "$console" --extra || rc=$?
echo "  (exit status $rc: 1 means the trees differ)"

say "The same as JSON"
"$ps" manifest diff "$demo/before.psm" "$console" --extra --format json || true

echo
echo "The sample data is in $demo (remove it with: rm -r $demo)"
