# push to a local directory: a new tree with awkward names, empty
# directories, modes and nanosecond mtimes; nothing sent the second time;
# --checksum, -n, -i, --no-whole-file, -W, --stats and --json (SPEC 8).
. "$TOP_SRCDIR/tests/lib.sh"



mkdir src
mkfile "src/with space.msu" 70000 1
mkfile "$(printf 'src/new\nline.cab')" 1234 2
mkfile "$(printf 'src/bad\377byte.bin')" 4321 3
mkfile src/sub/deep/x.xml 100000 4
: >src/zero
mkdir -p "src/empty dir" src/sub/also-empty
mkfile src/exec.sh 10 5; chmod 755 src/exec.sh
mkfile src/private 10 6; chmod 600 src/private
touch -d '2021-03-04 05:06:07.123456789' "src/with space.msu"
touch -d '1999-12-31 23:59:59.000000001' src/zero

expect_exit 0 "$PS" push src "$T/dst" --json
treemeta src >want
treemeta dst >got
diff want got >&2 || fail "first push: trees differ (names, modes or mtimes)"
# The destination is an exact copy: nothing of patchsync's inside it.
[ ! -e dst/.patchsync ] || fail "ROOT/.patchsync inside a directory push's destination"
diff -r src dst >/dev/null || fail "diff -r: the destination is not an exact copy"
no_litter "$T/dst"
python3 - "$T/out" <<'PY' || fail "push --json is not the document of SPEC 8"
import json, sys
d = json.load(open(sys.argv[1]))
assert list(d) == ["servers"], d
s = d["servers"][0]
want = {"server", "url", "status", "error", "files_transferred",
        "files_deleted", "literal_bytes", "matched_bytes", "bytes_sent",
        "bytes_received", "seconds"}
assert want <= set(s), set(s) ^ want
assert s["status"] == "ok" and s["error"] is None, s
assert s["files_transferred"] == 7, s
assert s["files_deleted"] == 0, s
assert s["literal_bytes"] == 70000 + 1234 + 4321 + 100000 + 20, s
assert s["bytes_sent"] >= s["literal_bytes"] and s["bytes_received"] > 0, s
assert isinstance(s["seconds"], float) and s["seconds"] >= 0, s
assert s["url"].endswith("/dst"), s
PY

# Nothing changed: nothing sent.
expect_exit 0 "$PS" push src "$T/dst" --json
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 0 ] ||
    fail "second push transferred files"
[ "$(json_get "$T/out" 'd["servers"][0]["literal_bytes"]')" = 0 ] ||
    fail "second push sent literal data"
expect_exit 0 "$PS" push src "$T/dst" --stats
out_has "0 files transferred"
treemeta dst >got
diff want got >&2 || fail "second push changed the server tree"

# Same size, same mtime, other content, on the console: its cache sees
# the file's identity change, hashes it again, and it is sent.
f=src/sub/deep/x.xml
cp -p "$f" ref
mkfile "$f" 100000 44
touch -r ref "$f"
expect_exit 0 "$PS" push src "$T/dst" --json
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 1 ] ||
    fail "a same-size same-mtime file with other content was not sent"
cmp -s "$f" dst/sub/deep/x.xml || fail "server file not updated"
# The same on the server, behind our back: its manifest holds the other
# hash, so a plain push sends the file again (report says out-of-date).
mkfile dst/sub/deep/x.xml 100000 45
touch -r "$f" dst/sub/deep/x.xml
expect_exit 1 "$PS" report src "$T/dst"
out_has "out-of-date"
expect_exit 0 "$PS" push src "$T/dst" --json
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 1 ] ||
    fail "a server file changed behind our back (same size and mtime) was not sent"
cmp -s "$f" dst/sub/deep/x.xml || fail "the server file changed behind our back was left"
expect_exit 0 "$PS" push src "$T/dst" --checksum --json
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 0 ] ||
    fail "--checksum sent a current file"

# -n: the itemized list, and nothing changes.
mkfile "src/with space.msu" 70000 7
mkfile src/brand-new 5 8
treemeta dst >before
expect_exit 0 "$PS" push -n src "$T/dst"
out_has "with space.msu"
out_has "brand-new"
treemeta dst >after
diff before after >&2 || fail "-n changed the server"
[ ! -e dst/brand-new ] || fail "-n created a file"

# -i: one line per changed path, and only those.
expect_exit 0 "$PS" push -i src "$T/dst"
out_has "with space.msu"
out_has "brand-new"
grep -q 'private' "$T/out" && fail "-i listed an unchanged file"
treemeta src >want; treemeta dst >got
diff want got >&2 || fail "push after -n: trees differ"

# --no-whole-file locally: a 1% change goes as a delta.
mkfile src/big 2097152 9
expect_exit 0 "$PS" push src "$T/dst"
python3 - src/big <<'PY'
import sys
f = open(sys.argv[1], "r+b"); f.seek(1000000); f.write(b"\x5a" * 20971)
PY
expect_exit 0 "$PS" push src "$T/dst" --no-whole-file --json
lit=$(json_get "$T/out" 'd["servers"][0]["literal_bytes"]')
mat=$(json_get "$T/out" 'd["servers"][0]["matched_bytes"]')
[ "$lit" -lt 500000 ] || fail "--no-whole-file: literal $lit bytes for a 1% change"
[ "$mat" -gt 1500000 ] || fail "--no-whole-file: only $mat bytes matched"
cmp -s src/big dst/big || fail "--no-whole-file: server file differs"

# -W: the whole file is sent.
python3 - src/big <<'PY'
import sys
f = open(sys.argv[1], "r+b"); f.seek(5); f.write(b"\x00\x01\x02")
PY
expect_exit 0 "$PS" push src "$T/dst" -W --json
lit=$(json_get "$T/out" 'd["servers"][0]["literal_bytes"]')
mat=$(json_get "$T/out" 'd["servers"][0]["matched_bytes"]')
[ "$lit" -ge 2097152 ] && [ "$mat" = 0 ] ||
    fail "-W: literal $lit matched $mat (want the whole file)"
cmp -s src/big dst/big || fail "-W: server file differs"
treemeta src >want; treemeta dst >got
diff want got >&2 || fail "final trees differ"
no_litter "$T/dst"

# More files than the protocol has file ids (1,048,576; a test makes
# them 128): ids are reused once their files are over, and every file
# lands. Over a remote shell too (files go while the server walks).
mkdir many
(cd many && seq 1 1000 | sed 's/^/f/' | xargs touch && seq 1 300 | while read -r i; do echo "$i" >"g$i"; done)
expect_exit 0 env PATCHSYNC_TEST_FILE_IDS=128 "$PS" push many "$T/many-dst" --json
diff -r many many-dst >/dev/null || fail "a push of 1300 files with 128 ids differs"
[ "$(json_get "$T/out" "d['servers'][0]['files_transferred']")" = 1300 ] ||
    fail "files transferred: $(cat "$T/out")"
expect_exit 0 env PATCHSYNC_TEST_FILE_IDS=128 "$PS" push many "x:$T/many-rsh" \
    --rsh "$TOP_SRCDIR/tests/rsh-local" --remote-path "$PS"
diff -r many many-rsh >/dev/null || fail "over --rsh, 1300 files with 128 ids differ"
exit 0
