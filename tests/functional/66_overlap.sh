# A server on this machine whose directory is the console directory, is
# inside it, or holds it, is refused before anything is written (exit 2,
# one line): the push would send the console its own files, and --delete
# would remove them (`push src src/sub --delete` deleted src/sub's own
# files). The same for refresh from such a source. A sibling whose name
# only begins like the console directory's is fine.
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

# Refresh: a console directory inside its source's directory.
mkdir -p mirror/patches
mkfile mirror/patches/m.msu 100 4
cat >r.conf <<EOF
[component patches]
path = $T/mirror/patches/inner
source = $T/mirror
EOF
cp -a mirror mirror.before
expect_exit 2 "$PS" -c r.conf refresh --delete
one_error_line
err_has "refusing to refresh"
same_tree mirror.before mirror
