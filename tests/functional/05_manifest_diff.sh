# manifest diff: missing, out-of-date and extra; text, json and csv; exit
# codes; each side a manifest file or a directory.
. "$TOP_SRCDIR/tests/lib.sh"

mkdir -p old/sub new/sub
mkfile old/same.msu 5000 1;     cp -p old/same.msu new/same.msu
mkfile old/changed.cab 9000 2;  mkfile new/changed.cab 9000 3
mkfile old/gone.xml 100 4
mkfile old/sub/grown.bin 10 5;  mkfile new/sub/grown.bin 20 5
mkfile new/only-new.exe 77 6
# Same content, different mtime: not a difference.
mkfile old/touched 10 7; mkfile new/touched 10 7; touch -d 2001-01-01 new/touched
# A file on one side where the other has a directory.
mkfile old/was-file 3 8; mkdir -p new/was-file

expect_exit 0 "$PS" manifest build old -o old.psm
expect_exit 0 "$PS" manifest build new -o new.psm

for a in old.psm old; do
  for b in new.psm new; do
    expect_exit 1 "$PS" manifest diff "$a" "$b"
    cat >want <<'W'
out-of-date changed.cab
missing     gone.xml
out-of-date sub/grown.bin
missing     was-file
W
    diff want "$T/out" || fail "text diff of $a $b"
  done
done

expect_exit 1 "$PS" manifest diff old.psm new.psm --extra
grep -qx 'extra       only-new.exe' "$T/out" || fail "no extra row"
[ "$(wc -l <"$T/out")" -eq 5 ] || fail "expected 5 rows with --extra"

# JSON, parsed by a real JSON parser, with the fields of SPEC 8.
expect_exit 1 "$PS" manifest diff old.psm new.psm --extra --format json
python3 - "$T/out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rows = {r["path"]: r for r in d["files"]}
assert set(rows) == {"changed.cab", "gone.xml", "sub/grown.bin", "was-file", "only-new.exe"}, rows
g = rows["gone.xml"]
assert g["state"] == "missing" and g["server"] is None and g["component"] is None
assert g["console"]["size"] == 100 and len(g["console"]["hash"]) == 32
assert isinstance(g["console"]["mtime"], int)
c = rows["changed.cab"]
assert c["state"] == "out-of-date" and c["console"]["hash"] != c["server"]["hash"]
e = rows["only-new.exe"]
assert e["state"] == "extra" and e["console"] is None and e["server"]["size"] == 77
assert d["summary"] == {"missing": 2, "out_of_date": 2, "extra": 1}, d["summary"]
PY

# CSV: header plus the same fields, read by a real CSV parser.
expect_exit 1 "$PS" manifest diff old new --format csv
python3 - "$T/out" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert [r["path"] for r in rows] == ["changed.cab", "gone.xml", "sub/grown.bin", "was-file"], rows
assert rows[1]["state"] == "missing" and rows[1]["server_size"] == "" and rows[1]["console_size"] == "100"
assert rows[0]["state"] == "out-of-date" and rows[0]["server_hash"] != rows[0]["console_hash"]
PY

# Identical: exit 0 and empty output in every format; JSON still a document.
expect_exit 0 "$PS" manifest diff old.psm old
[ ! -s "$T/out" ] || fail "output for identical trees"
expect_exit 0 "$PS" manifest diff old.psm old --format json
[ "$(json_get "$T/out" 'len(d["files"])')" = 0 ] || fail "json files not empty"
expect_exit 0 "$PS" manifest diff old old.psm --format csv
[ "$(wc -l <"$T/out")" -eq 1 ] || fail "csv should be a header only"

expect_exit 2 "$PS" manifest diff old new --format xml
one_error_line
err_has "unknown format 'xml'"
expect_exit 2 "$PS" manifest diff old /nonexistent/path
one_error_line
echo ok
