# report: missing, out-of-date and --extra rows; text, json (SPEC 8) and
# csv; exit 0 when current, 1 when different, 4 when a server is
# unreachable (and the others still listed).
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir src
mkfile src/same.msu 3000 1
mkfile src/sub/changed.cab 4000 2
mkfile src/gone.xml 100 3
expect_exit 0 "$PS" push src "$T/dst"
expect_exit 0 "$PS" report src "$T/dst"
out_has "current"
expect_exit 0 "$PS" report src "localhost:$T/dst" --rsh "$RSH" --remote-path "$PS" --format json
[ "$(json_get "$T/out" 'd["servers"][0]["status"]')" = current ] || fail "not current"
# --json as push and status have it; with another --format, an error.
expect_exit 0 "$PS" report src "$T/dst" --json
[ "$(json_get "$T/out" 'd["summary"]["current"]')" = 1 ] || fail "--json: not JSON"
expect_exit 0 "$PS" report src "$T/dst" --json --format json
expect_exit 2 "$PS" report src "$T/dst" --json --format csv
one_error_line
err_has "--json and --format csv"

# Make the server differ.
rm dst/gone.xml
mkfile dst/sub/changed.cab 4000 22
mkfile dst/only-server.bin 10 4
cp -p src/same.msu before

expect_exit 1 "$PS" report src "$T/dst"
grep -q 'missing.*gone.xml' "$T/out" || { cat "$T/out"; fail "no missing row"; }
grep -q 'out-of-date.*sub/changed.cab' "$T/out" || { cat "$T/out"; fail "no out-of-date row"; }
grep -q only-server "$T/out" && fail "extra listed without --extra"
grep -q same.msu "$T/out" && fail "a current file listed"
expect_exit 1 "$PS" report src "$T/dst" --extra
grep -q 'extra.*only-server.bin' "$T/out" || { cat "$T/out"; fail "no extra row"; }
cmp -s src/same.msu before || fail "report changed the console"
[ -e dst/only-server.bin ] && [ ! -e dst/gone.xml ] || fail "report changed the server"

# An rsh that cannot reach host "down" (as ssh: status 255, one line).
cat >rsh-down <<EOS
#!/bin/sh
for a; do [ "\$a" = down ] && { echo "ssh: connect to host down port 22: Connection refused" >&2; exit 255; }; done
exec "$RSH" "\$@"
EOS
chmod +x rsh-down

# json, over --rsh, with an unreachable second server: exit 4, both listed.
expect_exit 4 "$PS" report src "localhost:$T/dst" "down:$T/nowhere" --extra \
    --rsh "$T/rsh-down" --remote-path "$PS" --format json
python3 - "$T/out" "$T" <<'PY' || fail "report json is not SPEC 8"
import json, sys
d = json.load(open(sys.argv[1])); t = sys.argv[2]
assert set(d) == {"servers", "summary"}, d
s = {x["url"]: x for x in d["servers"]}
ok = s["localhost:" + t + "/dst"]
assert ok["status"] == "out-of-date" and ok["error"] is None, ok
rows = {f["path"]: f for f in ok["files"]}
assert set(rows) == {"gone.xml", "sub/changed.cab", "only-server.bin"}, rows
assert rows["gone.xml"]["state"] == "missing" and rows["gone.xml"]["server"] is None
c = rows["sub/changed.cab"]
assert c["state"] == "out-of-date", c
for side in ("console", "server"):
    assert set(c[side]) >= {"size", "mtime", "hash"}, c
    assert c[side]["size"] == 4000, c
assert c["console"]["hash"] != c["server"]["hash"]
assert len(c["console"]["hash"]) == 32, c
assert rows["only-server.bin"]["state"] == "extra"
for f in ok["files"]:
    assert set(f) >= {"component", "path", "state", "console", "server"}, f
bad = s["down:" + t + "/nowhere"]
assert bad["status"] == "unreachable" and bad["error"], bad
sm = d["summary"]
assert sm == {"servers": 2, "current": 0, "missing": 1, "out_of_date": 1,
              "extra": 1, "unreachable": 1}, sm
PY
[ ! -e nowhere ] || fail "report created the unreachable server's root"

# An unreachable server in text form still lists the other one.
expect_exit 4 "$PS" report src "localhost:$T/dst" "down:$T/x" --rsh "$T/rsh-down" --remote-path "$PS"
grep -q 'gone.xml' "$T/out" || { cat "$T/out"; fail "reachable server not listed"; }
grep -q 'unreachable' "$T/out" || { cat "$T/out"; fail "unreachable server not listed"; }

# csv, parsed by python: header and the same fields as the json rows.
expect_exit 1 "$PS" report src "$T/dst" --extra --format csv
python3 - "$T/out" <<'PY' || fail "report csv"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
by = {r["path"]: r for r in rows}
assert set(by) == {"gone.xml", "sub/changed.cab", "only-server.bin"}, by
assert by["gone.xml"]["state"] == "missing"
assert by["sub/changed.cab"]["state"] == "out-of-date"
assert by["only-server.bin"]["state"] == "extra"
assert "component" in rows[0], rows[0]
PY

# A server root that is a regular file cannot be read: exit 4, one line.
mkfile notadir 10 9
expect_exit 4 "$PS" report src "$T/notadir"
one_error_line
err_has notadir
# The same while the console is still scanning a big tree: the server's
# refusal comes while the console takes its manifest in ahead (nothing
# of that frame may leak: LeakSanitizer builds check it).
mkdir bigsrc
python3 - bigsrc <<'PY'
import os, sys
for d in range(20):
    os.mkdir(os.path.join(sys.argv[1], "d%02d" % d))
    for f in range(150):
        open(os.path.join(sys.argv[1], "d%02d" % d, "f%03d" % f), "w").write("x" * f)
PY
XDG_CACHE_HOME=$T/fresh-cache expect_exit 4 "$PS" report bigsrc "$T/notadir"
one_error_line
err_has notadir
# A server path that does not exist is unreachable (SPEC 6), in one
# clear line.
expect_exit 4 "$PS" report src "$T/nowhere"
one_error_line
out_has "unreachable"
grep -q 'Bad file descriptor' "$T/err" && fail "bogus EBADF for a missing root"
[ ! -e nowhere ] || fail "report created the root"

# After a push, current again: exit 0.
expect_exit 0 "$PS" push src "$T/dst"
expect_exit 0 "$PS" report src "$T/dst"
expect_exit 1 "$PS" report src "$T/dst" --extra
exit 0
