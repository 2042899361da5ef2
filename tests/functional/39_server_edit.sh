# server add/edit: remote path, bandwidth limit and timeout per server,
# --no-OPTION clears one; server show and list --json show them; a push
# to the server uses its remote path unless --remote-path is given.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir pat dst
mkfile pat/KB1.msu 4000 1
console_conf a patches:pat
A="$PS -c a.conf"

expect_exit 0 $A server add s1 "localhost:$T/dst" --rsh "$RSH" \
    --remote-path "$T/wrapper" --bwlimit 512K --timeout 30
expect_exit 0 $A server list --json
[ "$(json_get "$T/out" 'd["servers"][0]["remote_path"]')" = "$T/wrapper" ] ||
    fail "remote_path in json"
[ "$(json_get "$T/out" 'd["servers"][0]["bwlimit"]')" = 524288 ] || fail "bwlimit"
[ "$(json_get "$T/out" 'd["servers"][0]["timeout"]')" = 30 ] || fail "timeout"
expect_exit 0 $A server show s1
out_has "remote-path: $T/wrapper"
out_has "bwlimit: 524288 bytes/s"
out_has "timeout: 30 s"

# Bad values: one line, exit 2, nothing stored.
for bad in "--bwlimit 0" "--bwlimit 10X" "--bwlimit -1K" "--timeout -1" \
    "--timeout soon" "--rsh="; do
    # shellcheck disable=SC2086
    expect_exit 2 $A server add bad "$T/dst" $bad
    one_error_line
done
expect_exit 2 $A server show bad

# The remote path is used by a push to the server...
printf '#!/bin/sh\necho used >>"%s/wrapper.log"\nexec "%s" "$@"\n' "$T" "$PS" >wrapper
chmod 755 wrapper
expect_exit 0 $A push s1
cmp pat/KB1.msu dst/patches/KB1.msu || fail "push through the remote path"
[ "$(wc -l <wrapper.log)" = 1 ] || fail "the server's remote path was not used"
# ... unless the command line names another.
mkfile pat/KB2.msu 3000 2
expect_exit 0 $A push s1 --remote-path "$PS"
cmp pat/KB2.msu dst/patches/KB2.msu || fail "push with --remote-path"
[ "$(wc -l <wrapper.log)" = 1 ] || fail "--remote-path did not win"

# edit: change, clear, keep the rest.
expect_exit 0 $A server edit s1 --no-remote-path --bwlimit 2M --no-timeout
expect_exit 0 $A server list --json
[ "$(json_get "$T/out" 'd["servers"][0]["remote_path"]')" = None ] || fail "cleared remote_path"
[ "$(json_get "$T/out" 'd["servers"][0]["bwlimit"]')" = 2097152 ] || fail "edited bwlimit"
[ "$(json_get "$T/out" 'd["servers"][0]["timeout"]')" = None ] || fail "cleared timeout"
[ "$(json_get "$T/out" 'd["servers"][0]["rsh"]')" = "$RSH" ] || fail "rsh kept"
expect_exit 0 $A server edit s1 --url "$T/dst" --no-rsh --no-bwlimit
expect_exit 0 $A server show s1
out_has "url: $T/dst"
out_has "rsh: -"
out_has "bwlimit: -"
expect_exit 0 $A push s1

# Refusals.
expect_exit 2 $A server edit s1
one_error_line
err_has "nothing to change"
expect_exit 2 $A server edit s1 --rsh x --no-rsh
one_error_line
expect_exit 2 $A server edit nosuch --bwlimit 1M
one_error_line
err_has "unknown server nosuch"
expect_exit 2 $A server edit s1 --url 'host:relative'
one_error_line
id=$($A schedule add --server s1 --cron @daily)
expect_exit 2 $A server edit s1 --download-source
one_error_line
err_has "schedule $id"
expect_exit 0 $A schedule delete "$id"
expect_exit 0 $A server edit s1 --download-source
expect_exit 2 $A push s1
err_has "download source"
expect_exit 0 $A server edit s1 --no-download-source
expect_exit 0 $A push s1
echo ok
