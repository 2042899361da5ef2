# Set-user-ID, set-group-ID and sticky bits are never given to what a
# server writes (a patch is data): 4755 arrives as 755, a 1777 directory
# as 777. And the next push has nothing to do: modes compare on the bits
# that are applied (a set-id file was "changed" at every push, its
# metadata sent again for ever, -i printing it each time).
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir -p src/sticky
mkfile src/suid.exe 100 1
mkfile src/sgid.exe 100 2
mkfile src/plain.msu 100 3
chmod 4755 src/suid.exe
chmod 2750 src/sgid.exe
chmod 1777 src/sticky
expect_exit 0 "$PS" push src "$T/dst"
[ "$(stat -c %a dst/suid.exe)" = 755 ] || fail "suid.exe: $(stat -c %a dst/suid.exe)"
[ "$(stat -c %a dst/sgid.exe)" = 750 ] || fail "sgid.exe: $(stat -c %a dst/sgid.exe)"
[ "$(stat -c %a dst/sticky)" = 777 ] || fail "sticky: $(stat -c %a dst/sticky)"
for url in "$T/dst" "localhost:$T/dst"; do
	expect_exit 0 "$PS" push src "$url" -i --stats --rsh "$RSH" \
	    --remote-path "$PS"
	grep -v ' 0 metadata only' "$T/out" | grep -q . &&
	    { cat "$T/out" >&2; fail "a second push to $url changed something"; }
	out_has "0 files transferred"
done
expect_exit 0 "$PS" report src "$T/dst"
out_has "current"
# A permission bit that is applied still counts.
chmod 4700 src/suid.exe
expect_exit 0 "$PS" push src "$T/dst" -i
out_has "suid.exe"
[ "$(stat -c %a dst/suid.exe)" = 700 ] || fail "mode change not applied"
