# A console directory without write permission (0555) is still filled on
# the server by an ordinary account: its mode is applied after its files.
. "$TOP_SRCDIR/tests/lib.sh"
is_root || skip "needs root to run the push as another account"
command -v setpriv >/dev/null || skip "setpriv needed"

mkdir -p src/ro/deeper
mkfile src/ro/f.msu 1000 1
mkfile src/ro/deeper/g.cab 2000 2
chmod 555 src/ro/deeper src/ro
chown -R 65534:65534 "$T"
expect_exit 0 as_nobody "$PS" push src "$T/dst"
cmp -s src/ro/f.msu dst/ro/f.msu || fail "file in a 0555 directory not pushed"
cmp -s src/ro/deeper/g.cab dst/ro/deeper/g.cab || fail "nested file not pushed"
[ "$(stat -c %a dst/ro)" = 555 ] || fail "directory mode not kept: $(stat -c %a dst/ro)"
[ "$(stat -c %a dst/ro/deeper)" = 555 ] || fail "nested directory mode not kept"
chmod -R u+w src dst
echo ok
