# Offline bundles, end to end: the "air-gapped" server describes itself
# with `manifest build`; the console makes a bundle against that
# manifest; the server applies it; then the console and the server are
# the same (manifest diff exits 0, report says current). Also: --against
# read live (a local path, and an --rsh URL), --full into an empty
# server, a bundle of several components against a manifest of ROOT,
# bsdtar lists it, rdiff applies a delta of it by hand, show and verify.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local
command -v bsdtar >/dev/null || fail "bsdtar is missing (./bootstrap installs libarchive-tools)"

# The console: patches, and a definitions file that will change a little.
mkdir -p con/patches con/defs
mkfile con/patches/KB1.msu 300000 1
mkfile "con/patches/sub dir/KB2.cab" 70000 2
mkfile con/patches/small.txt 100 3
mkfile con/patches/old.msu 5000 4
mkfile con/defs/defs.bin 3000000 5
cat >p.conf <<EOF
[console]
name = console-b
database = $T/state.db
[component patches]
path = $T/con/patches
[component definitions]
path = $T/con/defs
dest = defs
EOF

# The server starts as a copy (a push, while it was still reachable).
mkdir srv
expect_exit 0 "$PS" -c p.conf push ./srv

# The console moves on: a new patch, a changed one, one gone, a few
# scattered edits in the definitions.
mkfile con/patches/KB3.msu 200000 6
mkfile con/patches/small.txt 120 7
rm con/patches/old.msu
chmod 600 "con/patches/sub dir/KB2.cab"
python3 - con/defs/defs.bin <<'PY'
import random, sys
d = bytearray(open(sys.argv[1], "rb").read())
r = random.Random(3)
for _ in range(20):
    o = r.randrange(len(d) - 64)
    d[o:o + 64] = bytes(r.randrange(256) for _ in range(64))
open(sys.argv[1], "wb").write(d)
PY

# ---- the round trip: manifest build there, bundle here, apply there ----
expect_exit 0 "$PS" manifest build srv -o srv.psm
cp -a srv srv-before
expect_exit 0 "$PS" -c p.conf bundle create --against srv.psm -o b.psb
[ -s b.psb ] || fail "no bundle written"
ls -a | grep -q '^\.patchsync-bundle' && fail "a temporary of create was left"
# A standard tar, zstd-compressed: bsdtar lists it.
bsdtar -tf b.psb >list || fail "bsdtar cannot list the bundle"
head -1 list | grep -qx 'patchsync-bundle.jsonl' || { cat list >&2; fail "the index is not first"; }
grep -qx 'manifests/0.psm' list && grep -qx 'manifests/1.psm' list || fail "no manifests"
grep -qx 'files/patches/KB3.msu' list || fail "the new patch is not carried whole"
grep -qx 'deltas/defs/defs.bin' list || fail "the definitions are not a delta"
grep -q 'KB1.msu' list && fail "a file the server has was carried"
head -c 4 b.psb | od -An -tx1 | grep -q '28 b5 2f fd' || fail "not zstd-compressed"
[ "$(wc -c <b.psb)" -lt 700000 ] || fail "the bundle is too big: $(wc -c <b.psb) bytes"

expect_exit 0 "$PS" bundle show b.psb
out_has "console:  console-b"
out_has "component definitions -> defs/"
out_has "0 files whole (0 bytes), 1 deltas"
expect_exit 0 "$PS" bundle show b.psb --json
[ "$(json_get "$T/out" 'd["console"]')" = console-b ] || fail "show --json: console"
[ "$(json_get "$T/out" 'len(d["members"])')" = 5 ] || fail "show --json: members"
expect_exit 0 "$PS" bundle verify b.psb
out_has "ok (5 members verified)"

# rdiff (librsync's own tool) applies the delta by hand.
if command -v rdiff >/dev/null; then
    mkdir x
    bsdtar -xf b.psb -C x
    rdiff patch srv/defs/defs.bin x/deltas/defs/defs.bin rebuilt ||
        fail "rdiff cannot apply the bundle's delta"
    cmp -s rebuilt con/defs/defs.bin || fail "rdiff rebuilt another file"
fi

# A dry run changes nothing and says what would change.
expect_exit 0 "$PS" bundle apply b.psb srv -n
grep -qxF '>f+++++++++ patches/KB3.msu' "$T/out" || { cat "$T/out" >&2; fail "dry run: no line for KB3"; }
diff -r srv srv-before >/dev/null || fail "a dry run changed the server"

expect_exit 0 "$PS" bundle apply b.psb srv --delete -i --json
[ "$(json_get "$T/out" 'd["status"]')" = ok ] || fail "apply --json: status"
[ "$(json_get "$T/out" 'd["files_transferred"]')" = 3 ] || fail "apply: files transferred"
[ "$(json_get "$T/out" 'd["files_deleted"]')" = 1 ] || fail "apply: files deleted"
no_litter srv
expect_exit 0 "$PS" manifest diff con/patches srv/patches --extra
expect_exit 0 "$PS" manifest diff con/defs srv/defs --extra
treemeta con/patches >want
treemeta srv/patches >got
diff want got >&2 || fail "modes or times differ after apply"
expect_exit 0 "$PS" -c p.conf report ./srv -C all
out_has "current"

# The same bundle again: nothing to do.
expect_exit 0 "$PS" bundle apply b.psb srv -i
[ ! -s "$T/out" ] || { cat "$T/out" >&2; fail "a second apply changed something"; }
treemeta srv/patches >got
diff want got >&2 || fail "a second apply changed the server"

# The next bundle is made against the manifest of the applied server.
mkfile con/patches/KB4.msu 1000 8
# One component: the manifest of ROOT/<dest> (one of ROOT gets a warning).
expect_exit 0 "$PS" manifest build srv -o root.psm
expect_exit 0 "$PS" -c p.conf bundle create -C patches --against root.psm -o b2.psb
err_has "with one component, --against takes the manifest of ROOT/patches"
expect_exit 0 "$PS" manifest build srv/patches -o srv2.psm
expect_exit 0 "$PS" -c p.conf bundle create -C patches --against srv2.psm -o b2.psb
bsdtar -tf b2.psb >list
[ "$(grep -c '^files/\|^deltas/' list)" = 1 ] || { cat list >&2; fail "bundle 2 carries more than KB4"; }
expect_exit 0 "$PS" bundle apply b2.psb srv
expect_exit 0 "$PS" manifest diff con/patches srv/patches --extra

# ---- --against read live: a local path, and an --rsh URL ----
mkfile con/patches/KB5.msu 1000 9
cp -a srv srv3
expect_exit 0 "$PS" -c p.conf bundle create --against "$T/srv3" -o b3.psb
bsdtar -tf b3.psb >list
grep -qx 'files/patches/KB5.msu' list || fail "live --against: KB5 not carried"
[ "$(grep -c '^files/\|^deltas/' list)" = 1 ] || { cat list >&2; fail "live --against carries too much"; }
expect_exit 0 "$PS" bundle apply b3.psb srv3
expect_exit 0 "$PS" -c p.conf report ./srv3 -C all
expect_exit 0 "$PS" -c p.conf bundle create -C patches \
    --against "localhost:$T/srv" --rsh "$RSH" --remote-path "$PS" -o b4.psb
expect_exit 0 "$PS" bundle apply b4.psb srv
expect_exit 0 "$PS" manifest diff con/patches srv/patches --extra
# A server name from the state database.
mkfile con/patches/KB6.msu 1000 13
expect_exit 0 "$PS" -c p.conf server add dist3 "$T/srv3"
expect_exit 0 "$PS" -c p.conf bundle create -C patches --against dist3 -o b6.psb
bsdtar -tf b6.psb >list
[ "$(grep -c '^files/\|^deltas/' list)" = 1 ] || { cat list >&2; fail "--against SERVER carries too much"; }
expect_exit 0 "$PS" bundle apply b6.psb srv3
expect_exit 0 "$PS" -c p.conf report dist3 -C all
# An unreachable server: exit 4, no bundle.
expect_exit 4 "$PS" -c p.conf bundle create --against "$T/nowhere/srv" -o b5.psb
one_error_line
[ ! -e b5.psb ] || fail "a bundle was written against an unreachable server"

# ---- --full: needs nothing on the server ----
mkdir empty
expect_exit 0 "$PS" -c p.conf bundle create --full -o full.psb
expect_exit 0 "$PS" bundle apply full.psb empty
expect_exit 0 "$PS" manifest diff con/patches empty/patches --extra
expect_exit 0 "$PS" manifest diff con/defs empty/defs --extra
no_litter empty

# ---- a directory without a configuration, into a root still to make ----
mkdir d
mkfile d/a.bin 50000 10
mkfile "d/b/$(printf 'x\377y')" 10 11
expect_exit 0 "$PS" bundle create d --full -o d.psb
expect_exit 0 "$PS" bundle apply d.psb "$T/d-copy"
treemeta d >want
treemeta d-copy >got
diff want got >&2 || fail "directory bundle: trees differ"
mkfile d/a.bin 50000 12
expect_exit 0 "$PS" manifest build d-copy -o d.psm
expect_exit 0 "$PS" bundle create d --against d.psm -o d2.psb
expect_exit 0 "$PS" bundle apply d2.psb d-copy
treemeta d >want
treemeta d-copy >got
diff want got >&2 || fail "directory bundle 2: trees differ"
# To and from a pipe.
expect_exit 0 sh -c "'$PS' bundle create d --full -o - | '$PS' bundle apply - '$T/d-pipe'"
treemeta d-pipe >got
diff want got >&2 || fail "a bundle through a pipe: trees differ"
echo ok
