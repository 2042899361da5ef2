#!/bin/sh
# contrib/demo.sh — what `./bootstrap demo` shows: a sample console with a
# few hundred patch-like files and a 64 MiB definitions file, pushed to a
# sample distribution server, changed, pushed again as deltas, and the
# File Status Report after a file goes missing on the server.
#
# PATCHSYNC names the binary (default: patchsync on PATH). The sample data
# goes to a new temporary directory, which is left for you to look at.
set -eu

ps=${PATCHSYNC:-patchsync}
demo=$(mktemp -d "${TMPDIR:-/tmp}/patchsync-demo.XXXXXX")
console=$demo/console
server=$demo/server

say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "A sample console under $demo"
python3 - "$console" <<'PY'
import os, random, sys
root = sys.argv[1]
r = random.Random(2026)
for i in range(300):
    d = os.path.join(root, "patches", ["windows10", "windows11", "office", "server2022"][i % 4])
    os.makedirs(d, exist_ok=True)
    size = int(2 ** r.uniform(10, 17))          # 1 KiB .. 128 KiB
    with open(os.path.join(d, "KB%07d.msu" % (5030000 + i)), "wb") as f:
        f.write(r.randbytes(size))
defs = os.path.join(root, "definitions")
os.makedirs(defs, exist_ok=True)
with open(os.path.join(defs, "scan-definitions.bin"), "wb") as f:
    for _ in range(64):
        f.write(r.randbytes(1 << 20))
PY
du -sh "$console/patches" "$console/definitions" | sed 's/^/  /'
cat >"$demo/patchsync.conf" <<EOF2
[console]
name = demo-console
database = $demo/state/state.db

[component patches]
path = $console/patches

[component definitions]
path = $console/definitions
EOF2
echo "  configuration: $demo/patchsync.conf"

# The server root must exist (a missing one is an unmounted share or a
# typo, never a reason to create a copy elsewhere).
mkdir -p "$server"

say "First push: everything is new"
run "$ps" -c "$demo/patchsync.conf" push "$server" --stats

say "Patch Tuesday: 3 new updates, 1 replaced, 1% of the definitions changed"
python3 - "$console" <<'PY'
import os, random, sys
root = sys.argv[1]
r = random.Random(7)
for kb in (5034441, 5034442, 5034443):
    with open(os.path.join(root, "patches", "windows11", "KB%d.msu" % kb), "wb") as f:
        f.write(r.randbytes(50000))
with open(os.path.join(root, "patches", "office", "KB5030002.msu"), "wb") as f:
    f.write(r.randbytes(70000))
p = os.path.join(root, "definitions", "scan-definitions.bin")
with open(p, "r+b") as f:
    for _ in range(40):                     # 40 x 16 KiB = 1 % of 64 MiB
        f.seek(r.randrange((64 << 20) - 16384))
        f.write(r.randbytes(16384))
PY

say "Second push, as deltas (--no-whole-file; the default over ssh)"
run "$ps" -c "$demo/patchsync.conf" push "$server" --no-whole-file --stats -i

say "A file goes missing on the server; the File Status Report"
rm "$server/patches/windows10/KB5030000.msu"
rc=0
run "$ps" -c "$demo/patchsync.conf" report "$server" -C all || rc=$?
echo "  (exit status $rc: 1 means something is missing or out of date)"

say "The same report as JSON"
"$ps" -c "$demo/patchsync.conf" report "$server" --format json || true

say "A manifest of the console's patches, and a diff against the server"
run "$ps" manifest build "$console/patches" -o "$demo/patches.psm"
"$ps" manifest show "$demo/patches.psm" | head -3
echo "  ..."
rc=0
run "$ps" manifest diff "$demo/patches.psm" "$server/patches" || rc=$?
echo "  (exit status $rc)"

echo
echo "The sample data is in $demo (remove it with: rm -r $demo)"
