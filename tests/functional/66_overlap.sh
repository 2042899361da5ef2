# A server on this machine whose directory is the console directory, is
# inside it, or holds it, is refused before anything is written (exit 2,
# one line): the push would send the console its own files, and --delete
# would remove them (`push src src/sub --delete` deleted src/sub's own
# files). The same for refresh from such a source, and for two servers
# of one push that overlap each other. A sibling whose name only begins
# like the console directory's is fine.
. "$TOP_SRCDIR/tests/lib.sh"

mkdir -p src/sub
mkfile src/a.msu 1000 1
mkfile src/sub/b.msu 2000 2
cp -a src before

refused() {
	expect_exit 2 "$@"
	one_error_line
	err_has "refusing to"
	same_tree before src
}

refused "$PS" push src "$T/src/sub" --delete
err_has "is inside the console directory"
refused "$PS" push src "$T/src"
err_has "is the console directory"
refused "$PS" push src/sub "$T/src" --delete
err_has "the console directory src/sub is inside"
refused "$PS" push src "file://$T/src/sub/new"
[ ! -e src/sub/new ] || fail "a refused push made its destination"
# Through a symbolic link, and with a server that is fine beside it.
ln -s src link
mkdir ok
refused "$PS" push src "$T/ok" "$T/link/sub"
[ -z "$(ls -A ok)" ] || fail "a refused push sent to another server"
refused "$PS" push src / --dry-run

# Components: ROOT/<dest> is what must not overlap.
cat >c.conf <<EOF
[console]
database = $PS_DB

[component patches]
path = $T/src
dest = src

[component engines]
path = $T/eng
EOF
mkdir eng
mkfile eng/e.dat 10 3
refused "$PS" -c c.conf push "$T"
err_has "/src is the console directory"
refused "$PS" -c c.conf push "$T/src"
# The same names elsewhere are fine.
expect_exit 0 "$PS" -c c.conf push "$T/ok"
same_tree src ok/src
expect_exit 0 "$PS" push src "$T/srcx"
same_tree src srcx

# Two servers of one push that are one directory, or one inside the
# other: the outer one's --delete would remove the inner one's files.
mkdir -p srv/inner
mkfile srv/inner/theirs.msu 10 5
cp -a srv srv.before
refused "$PS" push src "$T/srv" "$T/srv/inner" --delete
err_has "srv/inner is inside $T/srv, another server of this push"
same_tree srv.before srv
refused "$PS" push src "$T/srv/inner/" "file://$T/srv"
refused "$PS" push src "$T/srv" "$T/srv/"
err_has "are the same directory"
ln -s srv/inner ilink
refused "$PS" push src "$T/srv" "$T/ilink" --dry-run
same_tree srv.before srv
# Configured servers are named; components compare ROOT/<dest>: beside
# each other's components is fine, inside one is not.
console_conf fleet patches:src engines:eng
mkdir -p fleet/patches fleet/other
A="$PS -c $T/fleet.conf"
expect_exit 0 $A server add outer "$T/fleet"
expect_exit 0 $A server add inner "$T/fleet/patches"
expect_exit 0 $A server add beside "$T/fleet/other"
refused $A push --all --delete
err_has "(server inner) is inside $T/fleet (server outer)"
[ -z "$(ls -A fleet/patches)" ] || fail "a refused push sent to a server"
expect_exit 0 $A push outer beside
same_tree src fleet/patches
same_tree src fleet/other/patches

# Bind mounts (root only): a path elsewhere that shows the console
# directory, a directory inside it, or one around it, is found by where
# it lies on its filesystem (/proc/self/mountinfo), not by its name.
if is_root && mkdir -p bind1 bind2 bind3 bind4 &&
    mount --bind "$T/src/sub" "$T/bind1" 2>/dev/null; then
    trap 'for m in bind1 bind2 bind3 bind4; do umount "$T/$m" 2>/dev/null || true; done; cleanup' EXIT
    mount --bind "$T/src" "$T/bind2"
    mount --bind "$T" "$T/bind3"
    mount --bind "$T/srv/inner" "$T/bind4"
    refused "$PS" push src "$T/bind1" --delete
    err_has "bind1 is inside the console directory src"
    refused "$PS" push src "$T/bind2/sub/new"
    refused "$PS" push src "$T/bind2"
    err_has "bind2 is the console directory src"
    refused "$PS" push src/sub "$T/bind3/src" --delete
    err_has "the console directory src/sub is inside"
    refused "$PS" push src "$T/srv" "$T/bind4" --delete
    err_has "bind4 is inside $T/srv, another server of this push"
    same_tree srv.before srv
    [ ! -e src/sub/new ] || fail "a refused push made its destination"
    # A bind mount of something else is fine.
    expect_exit 0 "$PS" push src "$T/bind4/x"
    same_tree src srv/inner/x
    for m in bind1 bind2 bind3 bind4; do umount "$T/$m"; done
fi

# Refresh: a console directory inside its source's directory.
mkdir -p mirror/patches
mkfile mirror/patches/m.msu 100 4
cat >r.conf <<EOF
[console]
database = $PS_DB

[component patches]
path = $T/mirror/patches/inner
source = $T/mirror
EOF
cp -a mirror mirror.before
expect_exit 2 "$PS" -c r.conf refresh --delete
one_error_line
err_has "refusing to refresh"
same_tree mirror.before mirror
