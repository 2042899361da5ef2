# The installed systemd units: systemd-analyze verify finds nothing to
# say about the service and the timer, and the service's sandbox rates
# "OK" or better in systemd-analyze security.
. "$TOP_SRCDIR/tests/lib.sh"

command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (./bootstrap installs systemd)"
systemd-analyze security --help 2>/dev/null | grep -q -- --offline ||
    skip "this systemd-analyze cannot judge a unit file offline"

mk() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory \
        -C "$TOP_BUILDDIR" "$@"
}
# mkvar NAME: make variable NAME of the build tree, fully expanded.
mkvar() {
    printf "ps-var:\n\t@echo \"\$(%s)\"\n" "$1" | mk -f Makefile -f - ps-var
}
bindir=$(mkvar bindir)
mandir=$(mkvar mandir)
unitdir=$(mkvar systemdsystemunitdir)
[ -n "$unitdir" ] || skip "configured without systemd units"
R=$T/root
mk install DESTDIR="$R" >"$T/install.log" 2>&1 || { cat "$T/install.log" >&2; fail "make install failed"; }
svc=$R$unitdir/patchsync-run-due.service
tmr=$R$unitdir/patchsync-run-due.timer

# The sandbox, judged on the installed file.
expect_exit 0 systemd-analyze security --offline=true "$svc"
level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' "$T/out")
echo "exposure: $level"
case ${level#* } in
OK|SAFE|PERFECT) ;;
*) grep '✗' "$T/out" >&2; fail "exposure level $level, want OK or better" ;;
esac
# The same judgement as a threshold (exposure 0-100; OK is below 50).
expect_exit 0 systemd-analyze security --offline=true --threshold=49 "$svc"
# What the service needs stays allowed, whatever raised the score.
for want in 'User=patchsync' 'ProtectSystem=strict' 'ProtectHome=yes' \
    'PrivateTmp=yes' 'NoNewPrivileges=yes' 'CapabilityBoundingSet=' \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
    'StateDirectory=patchsync' 'KillMode=control-group' 'KillSignal=SIGTERM'; do
    grep -qx "$want" "$svc" || fail "the service lacks $want"
done
grep -q '^TimeoutStopSec=[1-9]' "$svc" || fail "the service sets no TimeoutStopSec"
grep -q '^PrivateNetwork=yes' "$svc" && fail "the service could not reach its servers"

# verify: every key known, the binary there, the manual pages found (the
# units name man:patchsync(1)). It runs ExecStart's path as given, so the
# copy checked names the binary below DESTDIR.
mkdir "$T/units"
sed "s|^ExecStart=$bindir/|ExecStart=$R$bindir/|" "$svc" >"$T/units/patchsync-run-due.service"
cp "$tmr" "$T/units/"
cmp -s "$svc" "$T/units/patchsync-run-due.service" && fail "ExecStart is not $bindir/patchsync"
expect_exit 0 env MANPATH="$R$mandir" systemd-analyze verify \
    "$T/units/patchsync-run-due.service" "$T/units/patchsync-run-due.timer"
[ ! -s "$T/err" ] || { cat "$T/err" >&2; fail "systemd-analyze verify complains"; }
[ ! -s "$T/out" ] || { cat "$T/out" >&2; fail "systemd-analyze verify complains"; }
# And it would complain: an unknown key is reported.
echo 'NoSuchKey=1' >>"$T/units/patchsync-run-due.service"
MANPATH="$R$mandir" systemd-analyze verify "$T/units/patchsync-run-due.service" \
    >"$T/out" 2>&1 || true
grep -q NoSuchKey "$T/out" || fail "systemd-analyze verify does not check the keys here"
echo ok
