# push over --rsh (a real second process, as over ssh): host:/path and
# ssh://user@host:port/path, awkward names, a delta for a 1% change of a
# 20 MiB file, several URLs with -j 2, and a failing URL that does not
# stop the others (exit 4, the JSON says which one failed).
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir src
mkfile "src/a b/with space.msu" 5000 1
mkfile "$(printf 'src/new\nline')" 10 2
mkfile "$(printf 'src/x\377y')" 10 3
: >src/zero
mkdir -p "src/empty dir"
chmod 640 src/zero
touch -d '2020-02-02 02:02:02.987654321' "src/a b/with space.msu"
treemeta src >want

# host:/path, and a server path that needs quoting for the remote shell.
expect_exit 0 "$PS" push src "localhost:$T/it's dst" --rsh "$RSH" --remote-path "$PS"
treemeta "$T/it's dst" >got
diff want got >&2 || fail "host:/path push: trees differ"
no_litter "$T/it's dst"

# ssh://user@host:port/path: the port and user reach the rsh command.
cat >rsh-log <<EOS
#!/bin/sh
printf '%s\n' "\$@" >"$T/rsh-args"
exec "$RSH" "\$@"
EOS
chmod +x rsh-log
expect_exit 0 "$PS" push src "ssh://someone@localhost:2222$T/dst2" --rsh "$T/rsh-log" --remote-path "$PS" --json
grep -qx -- -p rsh-args && grep -qx 2222 rsh-args && grep -qx -- -l rsh-args &&
    grep -qx someone rsh-args || { cat rsh-args >&2; fail "port/user not passed to --rsh"; }
treemeta dst2 >got
diff want got >&2 || fail "ssh:// push: trees differ"
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 4 ] ||
    fail "expected 4 files transferred"

# Second push: nothing sent.
expect_exit 0 "$PS" push src "localhost:$T/dst2" --rsh "$RSH" --remote-path "$PS" --json
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 0 ] ||
    fail "second push over --rsh transferred files"

# A 1% change of a 20 MiB file goes as a delta by default over --rsh.
mkfile src/big.cab 20971520 11
expect_exit 0 "$PS" push src "localhost:$T/dst2" --rsh "$RSH" --remote-path "$PS"
python3 - src/big.cab <<'PY'
import sys
f = open(sys.argv[1], "r+b")
for off in (1000, 7000000, 15000000):
    f.seek(off); f.write(b"\xa5" * 70000)
PY
expect_exit 0 "$PS" push src "localhost:$T/dst2" --rsh "$RSH" --remote-path "$PS" --json
lit=$(json_get "$T/out" 'd["servers"][0]["literal_bytes"]')
mat=$(json_get "$T/out" 'd["servers"][0]["matched_bytes"]')
sent=$(json_get "$T/out" 'd["servers"][0]["bytes_sent"]')
[ "$lit" -lt 2000000 ] || fail "delta over --rsh: literal $lit bytes for a 1% change"
[ "$mat" -gt 18000000 ] || fail "delta over --rsh: only $mat bytes matched"
[ "$sent" -lt 4000000 ] || fail "delta over --rsh: $sent bytes on the wire"
cmp -s src/big.cab dst2/big.cab || fail "delta result differs"
rm src/big.cab

# Several URLs with -j 2; one of them unreachable (--rsh false).
expect_exit 4 "$PS" push src "$T/m1" "$T/m2" "localhost:$T/m3" "$T/m4" -j 2 --rsh false --json
for d in m1 m2 m4; do
    treemeta "$d" >got
    diff want got >&2 || fail "$d not pushed while another URL failed"
done
[ ! -e m3 ] || fail "the failing URL's directory exists"
python3 - "$T/out" "$T" <<'PY' || fail "--json does not say which URL failed"
import json, sys
d = json.load(open(sys.argv[1]))
st = {s["url"]: s for s in d["servers"]}
t = sys.argv[2]
assert len(st) == 4, st
for m in ("m1", "m2", "m4"):
    s = st[t + "/" + m]
    assert s["status"] == "ok" and s["error"] is None, s
s = st["localhost:" + t + "/m3"]
assert s["status"] == "failed" and s["error"], s
PY
err_has "localhost:$T/m3"

# A bad --remote-path: one clear line of patchsync's own (the remote
# shell's complaint comes through its stderr, as with ssh).
expect_exit 4 "$PS" push src "localhost:$T/m5" "$T/m6" --rsh "$RSH" --remote-path /nonexistent/patchsync
[ "$(grep -c '^patchsync: ' "$T/err")" = 1 ] || { cat "$T/err" >&2; fail "expected one patchsync line"; }
grep '^patchsync: ' "$T/err" | grep -qF "m5" || fail "the error does not name the URL"
err_has "not found"
treemeta m6 >got
diff want got >&2 || fail "m6 not pushed"
[ ! -e m5 ] || fail "m5 created by a failing push"
# The pipe toward a server holds 1 MiB (the default 64 KiB made a MiB of
# data sixteen rounds of write, wake-up and read), less when many
# sessions run at once (a quarter of the per-user pipe quota in all).
cat >pipesz <<EOF
#!/bin/sh
python3 -c 'import fcntl; print(fcntl.fcntl(0, 1032))' >"$T/pipesz.d/\$\$"
exec "$PS" "\$@"
EOF
chmod +x pipesz
mkdir pipesz.d
expect_exit 0 "$PS" push src "localhost:$T/p1" --rsh "$RSH" --remote-path "$T/pipesz"
[ "$(cat pipesz.d/*)" = 1048576 ] || fail "the pipe to one server holds $(cat pipesz.d/*) bytes"
rm -f pipesz.d/*
set --
for i in $(seq 1 32); do set -- "$@" "localhost:$T/pj$i"; done
expect_exit 0 "$PS" push src "$@" -j 32 --rsh "$RSH" --remote-path "$T/pipesz"
[ "$(ls pipesz.d | wc -l)" = 32 ] || fail "$(ls pipesz.d | wc -l) servers recorded their pipe"
[ "$(cat pipesz.d/* | sort -u)" = 524288 ] || fail "pipes with -j 32: $(cat pipesz.d/* | sort -u | tr '\n' ' ')"
exit 0
