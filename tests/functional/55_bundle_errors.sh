# bundle: every mistake gets one line and the SPEC 9 exit code: usage
# (2), a missing server root (4), an index of an unknown version (5); a
# --delete that would empty a server is refused; a directory where the
# console has a file is left alone without --delete (3) and replaced
# with it.
. "$TOP_SRCDIR/tests/lib.sh"

mkdir -p con/patches empty
mkfile con/patches/a.msu 1000 1
cat >p.conf <<EOF
[console]
database = $T/state.db
[component patches]
path = $T/con/patches
EOF

usage() {
    expect_exit 2 "$@"
    one_error_line
}
usage "$PS" bundle
usage "$PS" bundle frobnicate
usage "$PS" bundle create con/patches -o x.psb
err_has "give --against FILE|SERVER|URL (the server's state) or --full"
usage "$PS" bundle create con/patches --full --against x.psm -o x.psb
usage "$PS" bundle create con/patches --full
err_has "-o FILE is needed"
usage "$PS" bundle create --full -o x.psb
usage "$PS" bundle create con/patches con --full -o x.psb
usage "$PS" bundle create -C patches con/patches --full -o x.psb
usage "$PS" -c p.conf bundle create con/patches --full -o x.psb
err_has "unexpected argument 'con/patches'"
usage "$PS" -c p.conf bundle create -C nosuch --full -o x.psb
usage "$PS" bundle create "$T/nowhere" --full -o x.psb
usage "$PS" bundle create con/patches --full -o "$T/nowhere/x.psb"
usage "$PS" bundle create con/patches --against nowhere.psm -o x.psb
err_has "unknown server"
printf 'not a manifest' >bad.psm
usage "$PS" bundle create con/patches --against bad.psm -o x.psb
err_has "not a valid manifest"
usage "$PS" bundle create con/patches --full --bogus -o x.psb
usage "$PS" bundle verify
usage "$PS" bundle verify "$T/nowhere.psb"
usage "$PS" bundle verify con
usage "$PS" bundle show "$T/nowhere.psb"
usage "$PS" bundle apply x.psb
usage "$PS" bundle apply "$T/nowhere.psb" "$T/srv"
[ ! -e x.psb ] || fail "a bundle was written by a command that failed"

# Destinations that overlap, or leave the root.
cat >nested.conf <<EOF
[console]
database = $T/state.db
[component a]
path = $T/con/patches
dest = data
[component b]
path = $T/con/patches
dest = data/b
EOF
usage "$PS" -c nested.conf bundle create --full -o x.psb
err_has "are one inside the other"
sed 's|dest = data/b|dest = ../b|' nested.conf >up.conf
usage "$PS" -c up.conf bundle create --full -o x.psb
err_has "without '..'"

# A component bundle needs the server's root to exist: exit 4.
expect_exit 0 "$PS" -c p.conf bundle create --full -o p.psb
expect_exit 4 "$PS" bundle apply p.psb "$T/nowhere/srv"
one_error_line
[ ! -e "$T/nowhere" ] || fail "apply made the missing root"
mkdir srv
expect_exit 0 "$PS" bundle apply p.psb srv
cmp -s con/patches/a.msu srv/patches/a.msu || fail "a.msu not applied"

# --delete with a console that had no files: refused, nothing removed.
expect_exit 0 "$PS" bundle create empty --full -o e.psb
mkdir srv2 && mkfile srv2/keep.msu 10 2
expect_exit 2 "$PS" bundle apply e.psb srv2 --delete
one_error_line
err_has "refusing --delete"
[ -e srv2/keep.msu ] || fail "--delete from an empty console removed a file"
expect_exit 0 "$PS" bundle apply e.psb srv2
[ -e srv2/keep.msu ] || fail "apply without --delete removed a file"

# A directory where the console has a file: left alone without --delete.
mkdir -p srv3/a.msu/inner
expect_exit 0 "$PS" bundle create con/patches --full -o c.psb
expect_exit 3 "$PS" bundle apply c.psb srv3
err_has "directories stand where the console has files"
[ -d srv3/a.msu ] || fail "a directory was replaced without --delete"
no_litter srv3
expect_exit 0 "$PS" bundle apply c.psb srv3 --delete
cmp -s con/patches/a.msu srv3/a.msu || fail "--delete: the file did not replace the directory"

# An index of a later format version.
mkdir v && cd v
bsdtar -xf ../c.psb
sed -i '1s/"version":1/"version":2/' patchsync-bundle.jsonl
bsdtar -cf ../v2.psb --zstd patchsync-bundle.jsonl manifests files
cd ..
expect_exit 5 "$PS" bundle verify v2.psb
one_error_line
err_has "bundle format version 2 is not supported"
expect_exit 5 "$PS" bundle show v2.psb
one_error_line
echo ok
