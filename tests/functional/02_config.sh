# The configuration file: lookup order and errors naming file, line, key.
. "$TOP_SRCDIR/tests/lib.sh"

cat >good.conf <<'CONF'
[console]
name = console-a
database = /tmp/some.db   ; shared by consoles
jobs = 3

[component patches]
path = /srv/console/patches
source = mirror

[component definitions]
path = /srv/console/data/definitions
dest = defs
CONF

expect_exit 0 "$PS" -c good.conf config check
# It looks at this machine too: a console directory that is missing or
# not a directory is a warning (the file is still valid).
err_has "warning: [component patches]: path /srv/console/patches: No such file or directory"
printf '[component a]\npath = %s\n[component b]\npath = %s\n' "$T" "$T/good.conf" >paths.conf
expect_exit 0 "$PS" -c paths.conf config check
[ "$(wc -l <"$T/err")" = 2 ] || fail "config check: $(cat "$T/err")"
err_has "warning: [component b]: path $T/good.conf is not a directory"
err_has "configuration is valid (2 components)"
expect_exit 0 "$PS" -c good.conf config show
out_has "name = console-a"
out_has "jobs = 3"
out_has "[component patches]"
out_has "dest = patches"
out_has "dest = defs"
out_has "source = mirror"

# $PATCHSYNC_CONFIG is used when there is no -c; -c wins over it.
expect_exit 0 env PATCHSYNC_CONFIG="$T/good.conf" "$PS" config show
out_has "console-a"
printf '[console]\nname = other\n' >other.conf
expect_exit 0 env PATCHSYNC_CONFIG="$T/good.conf" "$PS" -c other.conf config show
out_has "name = other"

# Relative paths come from the file's directory, wherever the command
# runs (from cron: /).
mkdir cfgdir
printf '[console]\ndatabase = st/state.db\n[component patches]\npath = ../con/p\n' \
    >cfgdir/rel.conf
(cd / && expect_exit 0 "$PS" -c "$T/cfgdir/rel.conf" config show)
out_has "path = $T/cfgdir/../con/p"
out_has "database = $T/cfgdir/st/state.db"

# Errors: one line, naming file, line and key (exit 2).
check_bad() {
    printf "$1" >bad.conf
    expect_exit 2 "$PS" -c bad.conf config check
    one_error_line
    err_has "bad.conf:$2:"
    err_has "$3"
}
check_bad '[console]\nname = a\ncolour = blue\n' 3 "unknown key 'colour'"
check_bad '[console]\n[servers]\nx = 1\n' 2 "unknown section [servers]"
check_bad '[component patches]\ndest = p\n' 1 "missing key 'path'"
check_bad '\n[component Patches]\npath = /p\n' 2 "component name must match"
check_bad '[component a.b]\npath = /p\n' 1 "component name must match"
check_bad '[console]\njobs = lots\n' 2 "key 'jobs'"
check_bad '[console]\n\nthis is not ini\n' 3 "syntax error"
check_bad '[component a]\npath = /a\ndest = ../../etc\n' 3 "key 'dest'"
# Each component has ROOT/<dest> to itself, outside ROOT/.patchsync.
check_bad '[component a]\npath = /a\ndest = .patchsync\n' 1 \
    "dest '.patchsync' is patchsync's own directory"
check_bad '[component a]\npath = /a\ndest = d\n[component b]\npath = /b\ndest = d\n' 4 \
    "[component b]: dest 'd' is [component a]'s too"
check_bad '[component a]\npath = /a\n[component b]\npath = /b\ndest = a/b\n' 3 \
    "[component b]: dest 'a/b' and [component a]'s 'a' are one inside the other"

expect_exit 2 "$PS" -c /nonexistent/x.conf config check
one_error_line
err_has "/nonexistent/x.conf"

expect_exit 2 "$PS" -c good.conf config frob
one_error_line
echo ok
