# A push over real ssh to a private sshd on 127.0.0.1 (root only; skipped
# without sshd).
. "$TOP_SRCDIR/tests/lib.sh"

SSHD=/usr/sbin/sshd
[ -x "$SSHD" ] || skip "no $SSHD"
is_root || skip "needs root to run sshd"
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || skip "no ssh client"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$T/userkey"
cp "$T/userkey.pub" "$T/authorized_keys"
chmod 600 "$T/authorized_keys"
cat >"$T/sshd_config" <<EOC
Port $PORT
ListenAddress 127.0.0.1
HostKey $T/hostkey
AuthorizedKeysFile $T/authorized_keys
PidFile $T/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
PubkeyAuthentication yes
SetEnv XDG_CACHE_HOME=$T/cache
EOC
mkdir -p /run/sshd 2>/dev/null || true
"$SSHD" -t -f "$T/sshd_config" 2>sshd-t || { sed 's/^/  /' sshd-t >&2; skip "sshd refuses the test configuration"; }
"$SSHD" -f "$T/sshd_config" -D -e 2>"$T/sshd.log" &
SSHD_PID=$!
trap 'kill $SSHD_PID 2>/dev/null; wait $SSHD_PID 2>/dev/null; cleanup' EXIT
RSH="ssh -p $PORT -i $T/userkey -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
i=0
until $RSH 127.0.0.1 true 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 50 ] || { cat "$T/sshd.log" >&2; skip "sshd did not come up"; }
    sleep 0.1
done

mkdir src
mkfile "src/a b.msu" 300000 1
mkfile src/sub/c.cab 2000000 2
: >src/zero
expect_exit 0 "$PS" push src "127.0.0.1:$T/dst" --rsh "$RSH" --remote-path "$PS" --json
diff -r -x .patchsync src dst >/dev/null || fail "ssh push: trees differ"
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 3 ] || fail "not 3 files"
expect_exit 0 "$PS" push src "ssh://root@127.0.0.1:$PORT$T/dst" --rsh "ssh -i $T/userkey -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR" --remote-path "$PS" --json
[ "$(json_get "$T/out" 'd["servers"][0]["files_transferred"]')" = 0 ] || fail "second push sent files"
python3 - src/sub/c.cab <<'PY'
import sys
f = open(sys.argv[1], "r+b"); f.seek(100000); f.write(b"\x11" * 20000)
PY
expect_exit 0 "$PS" push src "127.0.0.1:$T/dst" --rsh "$RSH" --remote-path "$PS" --json
[ "$(json_get "$T/out" 'd["servers"][0]["literal_bytes"]')" -lt 500000 ] || fail "no delta over ssh"
cmp -s src/sub/c.cab dst/sub/c.cab || fail "delta over ssh: file differs"
expect_exit 0 "$PS" report src "127.0.0.1:$T/dst" --rsh "$RSH" --remote-path "$PS"
# A wrong key: exit 4, one line of patchsync's own.
ssh-keygen -q -t ed25519 -N '' -f "$T/otherkey"
expect_exit 4 "$PS" push src "127.0.0.1:$T/dst" --rsh "ssh -p $PORT -i $T/otherkey -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR" --remote-path "$PS"
[ "$(grep -c '^patchsync: ' "$T/err")" = 1 ] || { cat "$T/err" >&2; fail "not one patchsync line"; }
exit 0
