# A bundle that is damaged, tampered with, reordered, truncated, made by
# hand to escape the server root, or made against another server state
# changes nothing (exit 5, one line naming what is wrong); a file the
# server has already at its new content is skipped before its basis is
# checked; a symlink in the server's tree is never followed.
. "$TOP_SRCDIR/tests/lib.sh"
command -v bsdtar >/dev/null || fail "bsdtar is missing (./bootstrap installs libarchive-tools)"

mkdir con
mkfile con/a.msu 200000 1
mkfile con/big.bin 2000000 2
mkfile con/sub/c.cab 50000 3
expect_exit 0 "$PS" push con "$T/srv"
mkfile con/n.msu 100000 4
python3 - con/big.bin <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[1000000:1000100] = bytes(100)
open(sys.argv[1], "wb").write(d)
PY
expect_exit 0 "$PS" manifest build srv -o srv.psm
expect_exit 0 "$PS" bundle create con --against srv.psm -o b.psb
bsdtar -tf b.psb >list
grep -qx 'deltas/big.bin' list && grep -qx 'files/n.msu' list ||
    { cat list >&2; fail "unexpected members"; }
# The same bundle as a plain tar, which python can take apart.
bsdtar -cf plain.tar --format pax @b.psb
expect_exit 0 "$PS" bundle verify plain.tar
treemeta srv >before

# unchanged: the server is as it was, nothing of ours is left, nothing
# appeared outside it.
unchanged() {
    treemeta srv >after
    diff before after >&2 || fail "$1: the server changed"
    no_litter srv
    [ ! -e "$T/evil" ] && [ ! -e /tmp/patchsync-evil ] || fail "$1: a file was written outside the root"
}

# bad CODE WHAT FILE: verify and apply both refuse FILE with one line.
bad() {
    expect_exit 5 "$PS" bundle verify "$3"
    one_error_line
    expect_exit 5 "$PS" bundle apply "$3" srv
    one_error_line
    err_has "$2"
    unchanged "$1"
}

cat >tweak.py <<'PY'
# tweak.py MODE IN OUT: rewrite a plain bundle tar with one thing wrong.
import io, sys, tarfile
mode, src, dst = sys.argv[1:4]
tin = tarfile.open(src)
members = [(m, tin.extractfile(m).read() if m.isfile() else None)
           for m in tin.getmembers()]
out = tarfile.open(dst, "w", format=tarfile.PAX_FORMAT)

def add(info, data):
    out.addfile(info, io.BytesIO(data) if data is not None else None)

def named(name, kind=tarfile.REGTYPE, **kw):
    i = tarfile.TarInfo(name)
    i.type = kind
    for k, v in kw.items():
        setattr(i, k, v)
    return i

if mode == "swap":
    members[-1], members[-2] = members[-2], members[-1]
if mode == "index-path":
    # The index itself asks for a path outside the root.
    m, d = members[0]
    d = d.replace(b'"files/n.msu"', b'"files/../../evil"')
    d = d.replace(b'"path":"n.msu"', b'"path":"../../evil"')
    m.size = len(d)
    members[0] = (m, d)
if mode == "index-dest":
    m, d = members[0]
    d = d.replace(b'"dest":""', b'"dest":"../x"', 1)
    m.size = len(d)
    members[0] = (m, d)
for m, d in members:
    if m.name == "files/n.msu":
        if mode == "flip":
            d = bytearray(d)
            d[len(d) // 2] ^= 1
            d = bytes(d)
        elif mode == "dotdot":
            m.name = "../../evil"
        elif mode == "absolute":
            m.name = "/tmp/patchsync-evil"
        elif mode == "symlink":
            m, d = named(m.name, tarfile.SYMTYPE, linkname="../../evil"), None
        elif mode == "hardlink":
            m, d = named(m.name, tarfile.LNKTYPE, linkname="manifests/0.psm"), None
        elif mode == "device":
            m, d = named(m.name, tarfile.CHRTYPE, devmajor=1, devminor=3), None
        elif mode == "fifo":
            m, d = named(m.name, tarfile.FIFOTYPE), None
        elif mode == "dir":
            m, d = named(m.name, tarfile.DIRTYPE), None
        elif mode == "drop":
            continue
    add(m, d)
if mode == "extra":
    add(named("files/zz", size=3), b"abc")
out.close()
PY

for mode in flip swap dotdot absolute symlink hardlink device fifo dir drop \
    extra index-path index-dest; do
    python3 tweak.py $mode plain.tar $mode.tar || fail "tweak.py $mode"
done
bad flip "member files/n.msu: its XXH3-128 is not the one in the index" flip.tar
bad swap "is not the one the index lists next" swap.tar
bad dotdot "member ../../evil is not the one the index lists next" dotdot.tar
bad absolute "member /tmp/patchsync-evil is not the one" absolute.tar
bad symlink "refusing a symbolic link" symlink.tar
bad hardlink "refusing a hard link" hardlink.tar
bad device "refusing a device" device.tar
bad fifo "refusing a device, fifo or other special file" fifo.tar
bad dir "refusing a directory" dir.tar
bad drop "it ends before member files/n.msu" drop.tar
bad extra "member files/zz is not in the index" extra.tar
bad index-path "refusing an unsafe path" index-path.tar
bad index-dest "not a safe relative path" index-dest.tar

# The same, compressed again, and a byte flipped in the compressed stream.
bsdtar -cf flip.psb --zstd @flip.tar
bad flip-zstd "XXH3-128 is not the one in the index" flip.psb
size=$(wc -c <b.psb)
python3 - b.psb zflip.psb <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[len(d) // 2] ^= 0x40
open(sys.argv[2], "wb").write(d)
PY
bad zflip "" zflip.psb

# Truncated anywhere: at the start, in the index, in a member, at the end.
for n in 10 600 $((size / 2)) $((size - 3)); do
    head -c "$n" b.psb >trunc.psb
    bad "truncated at $n" "" trunc.psb
done
: >empty.psb
bad empty "" empty.psb
# Not a bundle: another tar, and not an archive at all.
mkdir other && echo x >other/readme
bsdtar -cf other.tar -C other readme
bad other "not a patchsync bundle" other.tar
bad text "" "$TOP_SRCDIR/README"

# ---- another server state ----
cp -a srv srv-saved
mkfile srv/big.bin 2000000 9
treemeta srv >before
expect_exit 5 "$PS" bundle apply b.psb srv
one_error_line
err_has "bundle: big.bin: the server's copy is not the one this bundle was made against"
unchanged "a changed basis"
[ ! -e srv/n.msu ] || fail "a file was added although the state differs"
# A file the bundle does not carry, changed on the server.
rm -rf srv && cp -a srv-saved srv
mkfile srv/a.msu 200000 10
treemeta srv >before
expect_exit 5 "$PS" bundle apply b.psb srv
one_error_line
err_has "bundle: a.msu: the server's copy is not the one this bundle was made against"
unchanged "a changed file not carried"
rm srv/a.msu
treemeta srv >before
expect_exit 5 "$PS" bundle apply b.psb srv
err_has "bundle: a.msu: the server has no copy of it"
unchanged "a missing file not carried"
# A file already at its new content is skipped before its basis is checked.
rm -rf srv && cp -a srv-saved srv
cp -p con/big.bin srv/big.bin
expect_exit 0 "$PS" bundle apply b.psb srv
expect_exit 0 "$PS" manifest diff con srv --extra

# ---- a symlink in the server's tree is never followed ----
rm -rf srv && cp -a srv-saved srv
mkdir outside
rm -rf srv/sub && ln -s "$T/outside" srv/sub
expect_exit 0 "$PS" bundle create con --full -o full.psb
expect_exit 3 "$PS" bundle apply full.psb srv
err_has "symlink"
[ -z "$(ls -A outside)" ] || fail "something was written through the symlink"
no_litter srv
echo ok
