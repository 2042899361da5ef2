# refresh: pull a component from its source (a URL or a download-source
# server) into the console, with the same engine and atomic writes.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir -p srv/patches/win10 console
mkfile srv/patches/win10/KB1.msu 200000 1
mkfile srv/patches/KB2.cab 5000 2
: >srv/patches/empty.xml
touch -d '2024-03-04 05:06:07.5' srv/patches/KB2.cab
cat >c.conf <<EOF
[console]
name = con-a
database = $PS_DB

[component patches]
path = $T/console/patches
source = $T/srv

[component engines]
path = $T/console/engines
EOF

expect_exit 0 "$PS" -c c.conf refresh
diff -r srv/patches console/patches | grep -v '^Only in .*console/patches: .patchsync$' | grep -q . \
    && fail "console differs from the source after refresh"
[ "$(stat -c %Y.%y console/patches/KB2.cab)" = "$(stat -c %Y.%y srv/patches/KB2.cab)" ] \
    || fail "mtime not kept"
ls -A console/patches | grep -q psync-tmp && fail "temporaries left"

# A change on the source arrives; a console-only file stays without --delete.
mkfile srv/patches/win10/KB1.msu 200000 3
mkfile console/patches/local-only 10 4
expect_exit 0 "$PS" -c c.conf refresh -C patches
cmp -s srv/patches/win10/KB1.msu console/patches/win10/KB1.msu || fail "changed file not pulled"
[ -e console/patches/local-only ] || fail "refresh without --delete removed a file"
expect_exit 0 "$PS" -c c.conf refresh -C patches --delete
[ ! -e console/patches/local-only ] || fail "--delete kept a console-only file"

# Over a remote shell, like ssh.
sed -i "s|^source = .*|source = localhost:$T/srv|" c.conf
mkfile srv/patches/KB9.msu 70000 9
expect_exit 0 "$PS" -c c.conf refresh --rsh "$RSH" --remote-path "$PS"
cmp -s srv/patches/KB9.msu console/patches/KB9.msu || fail "remote refresh"

# A download-source server by name: refresh uses it, push refuses it.
expect_exit 0 "$PS" -c c.conf server add mirror "$T/srv" --download-source
sed -i "s|^source = .*|source = mirror|" c.conf
mkfile srv/patches/KB10.msu 1000 10
expect_exit 0 "$PS" -c c.conf refresh
cmp -s srv/patches/KB10.msu console/patches/KB10.msu || fail "refresh from a server name"
expect_exit 2 "$PS" -c c.conf push mirror
one_error_line
err_has "download source"

# Errors: a component without a source, an unknown one, a dead source.
expect_exit 2 "$PS" -c c.conf refresh -C engines
one_error_line
err_has "no source"
expect_exit 2 "$PS" -c c.conf refresh -C nosuch
one_error_line
sed -i "s|^source = .*|source = $T/missing-source|" c.conf
expect_exit 4 "$PS" -c c.conf refresh -C patches
err_has "missing-source"
echo ok
