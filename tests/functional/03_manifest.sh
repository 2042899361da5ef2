# manifest build / show on real trees: nested and empty directories,
# 0-byte files, a 5 GiB sparse file, hashes checked against xxhsum.
. "$TOP_SRCDIR/tests/lib.sh"

mkdir -p c/a/b/c c/empty-dir
mkfile c/KB5031356.msu 300000 1
mkfile c/a/b/c/deep.cab 70000 2
: >c/zero-bytes
printf 'hello\n' >c/a/hello.txt
chmod 0600 c/a/hello.txt
touch -d '2024-01-02 03:04:05.123456789' c/a/hello.txt

expect_exit 0 "$PS" manifest build c -o c.psm
[ -s c.psm ] || fail "empty manifest"
expect_exit 0 "$PS" manifest show c.psm
cp "$T/out" show.txt
# Entries: 4 files + 4 directories (a, a/b, a/b/c, empty-dir; not the root).
[ "$(wc -l <show.txt)" -eq 8 ] || { cat show.txt; fail "expected 8 entries"; }
grep -q '^d [0-7]\{4\} - [0-9]*\.[0-9]\{9\} - - empty-dir$' show.txt || fail "no empty-dir entry"
grep -q '^f 0600 6 1704164645\.123456789 [0-9a-f]\{32\} 4096 a/hello\.txt$' show.txt \
    || { cat show.txt; fail "hello.txt entry wrong (mode, size, mtime ns)"; }
grep -q '^f [0-7]* 0 [0-9.]* [0-9a-f]\{32\} 4096 zero-bytes$' show.txt || fail "0-byte file"

# The content hash is the XXH3-128 that xxhsum -H2 prints.
if command -v xxhsum >/dev/null; then
    for f in KB5031356.msu a/b/c/deep.cab a/hello.txt zero-bytes; do
        want=$(cd c && xxhsum -H2 "$f" | awk '{print $1}')
        grep -q " $want [0-9]* $f\$" show.txt || fail "hash of $f is not xxhsum's $want"
    done
fi

# Building twice gives the same bytes; building to stdout too.
"$PS" manifest build c >c2.psm
cmp c.psm c2.psm || fail "manifest not reproducible"

# A directory compared with its own manifest: nothing differs.
expect_exit 0 "$PS" manifest diff c.psm c
expect_exit 0 "$PS" manifest diff c c.psm
[ ! -s "$T/out" ] || fail "diff printed something for equal trees"

# An empty directory has an empty manifest.
mkdir empty
expect_exit 0 "$PS" manifest build empty -o empty.psm
expect_exit 0 "$PS" manifest show empty.psm
[ ! -s "$T/out" ] || fail "empty tree shows entries"
expect_exit 1 "$PS" manifest diff c empty.psm
[ "$(wc -l <"$T/out")" -eq 4 ] || fail "expected 4 missing files"

# A 5 GiB sparse file: 64-bit sizes.
mkdir big
truncate -s 5G big/huge.bin
expect_exit 0 "$PS" manifest build big -o big.psm
expect_exit 0 "$PS" manifest show big.psm
grep -q '^f [0-7]* 5368709120 .* huge\.bin$' "$T/out" || { cat "$T/out"; fail "5 GiB size wrong"; }
# xxhsum -H2 of 5 GiB of zeros, once: it takes 12 s to read them here
# (the holes are not read: the manifest takes half a second).
want=c015bff1b14a8763a0e5e4d6d5502024
grep -q " $want " "$T/out" || fail "5 GiB hash differs from xxhsum's $want"

# Sparse files with data between holes (at and off block and page
# boundaries, a hole at either end) describe byte for byte as their dense
# copies do: whole-file hashes, block sums and weak sums.
mkdir sparse dense
put() {	# FILE OFFSET BYTES: random bytes at OFFSET
    head -c "$3" /dev/urandom |
        dd of="$1" bs=4096 seek="$2" oflag=seek_bytes conv=notrunc \
            status=none
}
put sparse/a.bin 0 300000
put sparse/a.bin 5242880 1234567
put sparse/a.bin 9437184 100
truncate -s 20971597 sparse/a.bin
put sparse/b.bin 1048577 12289
put sparse/b.bin 3145728 4096
truncate -s 1048576 sparse/c.bin
put sparse/c.bin 1048575 1
truncate -s 3145728 sparse/hole.bin
for f in a b c hole; do
    cp --sparse=never sparse/$f.bin dense/$f.bin
    touch -r sparse/$f.bin dense/$f.bin
done
expect_exit 0 "$PS" manifest build sparse -o sparse.psm
expect_exit 0 "$PS" manifest build dense -o dense.psm
cmp sparse.psm dense.psm || fail "a sparse file's manifest differs"

# -o into a directory that does not exist: an error, nothing written.
expect_exit 2 "$PS" manifest build c -o nodir/x.psm
one_error_line
[ ! -e nodir ] || fail "created nodir"
echo ok
