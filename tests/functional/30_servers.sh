# server add|list|show|remove|check: credential files must be mode 0600;
# unknown servers and download sources are refused with one line (exit 2);
# server check proves read and write access and names the missing right.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir pat dst
echo x >pat/a
# SQLite: a file whose directory does not exist yet.
[ "$PS_BACKEND" = pg ] || PS_DB=$T/state/state.db
cat >a.conf <<CONF
[console]
name = console-a
database = $PS_DB
[component patches]
path = $T/pat
CONF
A="$PS -c a.conf"

# The database and its directory are created on first use.
expect_exit 0 $A server add dist "$T/dst"
[ "$PS_BACKEND" = pg ] || [ -f state/state.db ] ||
    fail "state database not created"
expect_exit 0 $A server add mirror "$T/mirror" --download-source
expect_exit 2 $A server add dist "$T/other"
one_error_line
err_has "already exists"
expect_exit 2 $A server add 'bad name' "$T/dst"
one_error_line
expect_exit 2 $A server add x 'host:relative'
one_error_line

# Credentials: mode 0600 only; the path, not the secret, is stored.
echo secret-key-material >key
chmod 644 key
expect_exit 2 $A server add k "ssh://h/srv" --identity key
one_error_line
err_has "mode 0644"
expect_exit 2 $A server add k "ssh://h/srv" --secret-file key
one_error_line
expect_exit 2 $A server add k "ssh://h/srv" --identity nonexistent
one_error_line
chmod 600 key
expect_exit 0 $A server add k "ssh://h/srv" --identity key --rsh "$RSH"
if grep -a -q secret-key-material state/state.db state/state.db-wal 2>/dev/null ||
    db_sql "SELECT * FROM servers" | grep -q secret-key-material; then
    fail "a secret was copied into the database"
fi
expect_exit 0 $A server show k
out_has "identity-file: $T/key"
# A key whose mode became loose is refused at use, too.
chmod 640 key
expect_exit 2 $A server check k
one_error_line
err_has "mode 0640"
chmod 600 key

expect_exit 0 $A server list
out_has dist
out_has mirror
out_has download-source
expect_exit 0 $A server list --json
[ "$(json_get "$T/out" 'len(d["servers"])')" = 3 ] || fail "server list --json"
[ "$(json_get "$T/out" '[s["download_source"] for s in d["servers"] if s["name"]=="mirror"][0]')" = True ] ||
    fail "download_source in json"

expect_exit 2 $A server show nosuch
one_error_line
err_has "unknown server nosuch"
expect_exit 2 $A server check nosuch
one_error_line
expect_exit 2 $A server remove nosuch
one_error_line

# A download source is never a push or schedule target.
expect_exit 2 $A push mirror
one_error_line
err_has "download source"
expect_exit 2 $A schedule add --server mirror --cron @daily
one_error_line
err_has "download source"
expect_exit 2 $A push nosuch
one_error_line
err_has "nosuch"

# server check on a local directory.
expect_exit 0 $A server check dist
out_has "can read and write $T/dst"
[ -z "$(ls -A dst)" ] || fail "server check left something in ROOT"
expect_exit 0 $A server add gone "$T/nonexistent"
expect_exit 4 $A server check gone
one_error_line
err_has "not a directory"

# ... and through a remote shell (rsh-local stands in for ssh).
expect_exit 0 $A server add remote "localhost:$T/dst" --rsh "$RSH"
PATH=$(dirname "$PS"):$PATH expect_exit 0 $A server check remote \
    --remote-path "$PS"
out_has "can read and write $T/dst"
out_has "patchsync serve answers"

# A download source needs read access only.
mkdir mirror
expect_exit 0 $A server check mirror
out_has "can read $T/mirror"
[ -z "$(ls -A mirror)" ] || fail "server check wrote into a download source"
expect_exit 0 $A server add rmirror "localhost:$T/mirror" --rsh "$RSH" \
    --download-source
PATH=$(dirname "$PS"):$PATH expect_exit 0 $A server check rmirror \
    --remote-path "$PS"
out_has "can read $T/mirror"

# Missing rights are named with the account (needs another account).
if is_root && command -v setpriv >/dev/null 2>&1; then
    mkdir ro
    chmod 755 ro
    cp a.conf b.conf
    chmod 755 "$T"
    [ "$PS_BACKEND" = pg ] || chmod -R a+rwX state
    $A server add ro "$T/ro"
    nobody() { as_nobody "$@"; }
    expect_exit 4 nobody $PS -c "$T/a.conf" server check ro
    one_error_line
    err_has "lacks write access to $T/ro"
    chmod 700 ro
    expect_exit 4 nobody $PS -c "$T/a.conf" server check ro
    one_error_line
    err_has "lacks read access to $T/ro"
fi

# Removal: refused while a schedule uses the server.
id=$($A schedule add --server dist --cron @hourly)
expect_exit 2 $A server remove dist
one_error_line
err_has "schedule $id"
expect_exit 0 $A schedule delete "$id"
expect_exit 0 $A server remove dist
expect_exit 2 $A server show dist
echo ok
