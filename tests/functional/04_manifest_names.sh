# Path bytes survive exactly: spaces, newlines, tabs, backslashes, 0xff,
# UTF-8; `manifest show` prints one line per entry whatever the names hold.
. "$TOP_SRCDIR/tests/lib.sh"

mkdir c
python3 - <<'PY'
import os
names = [b"with space.msu", b"new\nline.cab", b"tab\there", b"back\\slash",
         b"\xff\xfe raw bytes", "caf\u00e9-\u6587\u4ef6.xml".encode(),
         b"-leading-dash", b" leading space", b"trailing space ", b"\x01ctl"]
os.makedirs(b"c/dir with\nnewline", exist_ok=True)
for i, n in enumerate(names):
    with open(b"c/" + n, "wb") as f:
        f.write(b"x" * i)
    with open(b"c/dir with\nnewline/" + n, "wb") as f:
        f.write(b"y" * i)
PY

expect_exit 0 "$PS" manifest build c -o c.psm
expect_exit 0 "$PS" manifest show c.psm
# Decode every line's path and compare with the names on disk, byte for byte.
python3 - "$T/out" <<'PY'
import os, re, sys
def unescape(s):
    out = bytearray(); i = 0
    while i < len(s):
        c = s[i]
        if c != 0x5c:
            out.append(c); i += 1; continue
        n = s[i+1]
        if n == 0x5c: out.append(0x5c); i += 2
        elif n == ord('n'): out.append(10); i += 2
        elif n == ord('t'): out.append(9); i += 2
        elif n == ord('r'): out.append(13); i += 2
        elif n == ord('x'): out.append(int(s[i+2:i+4], 16)); i += 4
        else: raise SystemExit("bad escape in %r" % s)
    return bytes(out)
lines = open(sys.argv[1], "rb").read().split(b"\n")
assert lines[-1] == b""
got = set()
for l in lines[:-1]:
    f = l.split(b" ", 6)
    got.add(unescape(f[6]))
want = set()
for root, dirs, files in os.walk(b"c"):
    for n in dirs + files:
        want.add(os.path.relpath(os.path.join(root, n), b"c"))
if got != want:
    raise SystemExit("names differ:\n only shown: %r\n only on disk: %r" % (got - want, want - got))
print("names ok:", len(got))
PY

# A diff of the tree against its manifest is clean, and changed files
# with odd names are found by their exact names.
expect_exit 0 "$PS" manifest diff c.psm c
printf 'changed' >"c/new
line.cab"
expect_exit 1 "$PS" manifest diff c.psm c
[ "$(wc -l <"$T/out")" -eq 1 ] || fail "one changed file should be one line"
grep -qxF 'out-of-date new\nline.cab' "$T/out" || { cat "$T/out"; fail "escaped name"; }
expect_exit 1 "$PS" manifest diff c.psm c --format json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["files"][0]["path"]=="new\nline.cab", d' "$T/out"
echo ok
