# `make install DESTDIR=...` from the build tree puts every file where the
# system reads it, with sane modes; the cron file and the service name the
# installed binary; the account files are valid; `make uninstall` takes it
# all away again.
. "$TOP_SRCDIR/tests/lib.sh"

# A make of our own, not a part of the one running the tests.
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
docdir=$(mkvar docdir)
crondir=$(mkvar crondir)
unitdir=$(mkvar systemdsystemunitdir)
sysusersdir=$(mkvar sysusersdir)
tmpfilesdir=$(mkvar tmpfilesdir)
compdir=$(mkvar bashcompletiondir)
for d in "$bindir" "$mandir" "$docdir"; do
    case $d in /*) ;; *) fail "not an absolute directory: '$d'" ;; esac
done

R=$T/root
mk install DESTDIR="$R" >"$T/install.log" 2>&1 || { cat "$T/install.log" >&2; fail "make install failed"; }

# has MODE PATH: a regular file with exactly that mode.
has() {
    [ -f "$R$2" ] || { (cd "$R" && find . -type f) >&2; fail "not installed: $2"; }
    m=$(stat -c %a "$R$2")
    [ "$m" = "$1" ] || fail "$2 has mode $m, want $1"
}
has 755 "$bindir/patchsync"
has 644 "$mandir/man1/patchsync.1"
for p in patchsync.conf patchsync-manifest patchsync-protocol; do
    has 644 "$mandir/man5/$p.5"
done
has 644 "$docdir/README"
has 644 "$docdir/NEWS"
has 644 "$docdir/examples/patchsync.conf.example"
has 755 "$docdir/examples/demo.sh"
"$R$bindir/patchsync" --version >/dev/null || fail "the installed binary does not run"
# The example configuration is one patchsync accepts.
"$R$bindir/patchsync" -c "$R$docdir/examples/patchsync.conf.example" config check >/dev/null 2>&1 ||
    fail "the example configuration does not pass config check"

# Where cron and systemd read, unless configure was told not to.
if [ -n "$crondir" ]; then
    has 644 "$crondir/patchsync"
    [ "$(stat -c %U "$R$crondir/patchsync")" = "$(id -un)" ] || fail "cron file owner"
    # One job line: every minute, as patchsync, the installed binary.
    grep -v '^#' "$R$crondir/patchsync" | grep . >"$T/cronjob"
    [ "$(wc -l <"$T/cronjob")" = 1 ] || fail "the cron file has not one job line"
    grep -q "^\* \* \* \* \* patchsync .*$bindir/patchsync -q schedule run-due\$" "$T/cronjob" ||
        fail "bad cron line: $(cat "$T/cronjob")"
fi
if [ -n "$unitdir" ]; then
    has 644 "$unitdir/patchsync-run-due.service"
    has 644 "$unitdir/patchsync-run-due.timer"
    grep -qx "ExecStart=$bindir/patchsync -q schedule run-due --wait" \
        "$R$unitdir/patchsync-run-due.service" || fail "ExecStart does not name $bindir/patchsync"
    grep -qx 'User=patchsync' "$R$unitdir/patchsync-run-due.service" || fail "service not as patchsync"
fi
if [ -n "$compdir" ]; then
    has 644 "$compdir/patchsync"
    bash -n "$R$compdir/patchsync" || fail "completion does not parse"
fi
grep -rl '@bindir@' "$R" && fail "an installed file still says @bindir@"

# The account and the state directory, made in a scratch root exactly as
# systemd-sysusers and systemd-tmpfiles would on the real one.
if [ -n "$sysusersdir" ]; then
    has 644 "$sysusersdir/patchsync.conf"
    has 644 "$tmpfilesdir/patchsync.conf"
    S=$T/sys
    mkdir -p "$S/etc"
    systemd-sysusers --root="$S" "$R$sysusersdir/patchsync.conf" >"$T/sysusers.log" 2>&1 ||
        { cat "$T/sysusers.log" >&2; fail "systemd-sysusers refused the file"; }
    grep -q '^patchsync:x:[0-9]*:[0-9]*:[^:]*:/var/lib/patchsync:/usr/sbin/nologin$' "$S/etc/passwd" ||
        { cat "$S/etc/passwd" >&2; fail "no patchsync system account"; }
    grep -q '^patchsync:x:' "$S/etc/group" || fail "no patchsync group"
    uid=$(sed -n 's/^patchsync:x:\([0-9]*\):.*/\1/p' "$S/etc/passwd")
    [ "$uid" -lt 1000 ] || fail "patchsync is not a system account (uid $uid)"
    systemd-tmpfiles --root="$S" --create "$R$tmpfilesdir/patchsync.conf" >"$T/tmpfiles.log" 2>&1 ||
        { cat "$T/tmpfiles.log" >&2; fail "systemd-tmpfiles refused the file"; }
    [ "$(stat -c '%a %u' "$S/var/lib/patchsync")" = "750 $uid" ] ||
        fail "state directory: $(stat -c '%a %U' "$S/var/lib/patchsync")"
fi

# Nothing is left behind by make uninstall but directories.
mk uninstall DESTDIR="$R" >"$T/uninstall.log" 2>&1 || { cat "$T/uninstall.log" >&2; fail "make uninstall failed"; }
left=$(cd "$R" && find . ! -type d)
[ -z "$left" ] || fail "left after make uninstall: $left"
echo ok
