# refresh never removes a console file unless --delete is given, whatever
# the source sends (a DELETE frame is then a protocol error), and with
# --delete only what the source lacks; --delete from a source that is
# empty or missing is refused (exit 2), like push's guard. A refresh
# leaves nothing of patchsync's in the console directory.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local
EVIL=$TOP_SRCDIR/tests/evilpeer.py

mkdir -p srv/patches console/patches empty/patches
mkfile srv/patches/a.msu 5000 1
mkfile console/patches/keep 100 2
mkfile console/patches/a.msu 5000 1
conf() {
    cat >c.conf <<EOC
[console]
name = con-a
database = $T/state/state.db

[component patches]
path = $T/console/patches
source = $1
EOC
}

# A hostile source: a manifest with a.msu, then DELETE "keep" although
# refresh ran without --delete.
"$PS" manifest build srv/patches -o srv.psm
export EVIL_MANIFEST=$T/srv.psm
conf "evil:$T/srv"
expect_exit 4 "$PS" -c c.conf refresh --rsh "$RSH" \
    --remote-path "python3 $EVIL server pulldelete"
one_error_line
err_has "without --delete"
err_has "evil:$T/srv"
[ -e console/patches/keep ] || fail "a DELETE frame removed a console file without --delete"
# With --delete, a DELETE of a file the source itself offers is refused.
expect_exit 4 "$PS" -c c.conf refresh --delete --rsh "$RSH" \
    --remote-path "python3 $EVIL server deletesource"
one_error_line
[ -e console/patches/a.msu ] || fail "--delete removed a file the source has"
unset EVIL_MANIFEST

# --delete from an empty source, or one whose directory is missing:
# refused, exit 2, nothing removed.
conf "$T/empty"
expect_exit 2 "$PS" -c c.conf refresh --delete
one_error_line
err_has "refusing --delete"
[ -e console/patches/keep ] || fail "--delete from an empty source removed files"
conf "$T/nowhere"
expect_exit 2 "$PS" -c c.conf refresh --delete
err_has "refusing --delete"
[ -e console/patches/keep ] || fail "--delete from a missing source removed files"
# The same source without --delete: an error, but not a refusal.
expect_exit 4 "$PS" -c c.conf refresh
one_error_line

# A real source: --delete removes what the source lacks, and only that.
conf "$T/srv"
expect_exit 0 "$PS" -c c.conf refresh --delete --stats
out_has "1 deleted"
[ ! -e console/patches/keep ] || fail "--delete kept a file the source lacks"
diff -r srv/patches console/patches >/dev/null || fail "console differs from the source"
[ ! -e console/patches/.patchsync ] || fail "refresh left .patchsync in the console directory"
# JSON and itemized output, like push.
mkfile srv/patches/b.cab 300 3
expect_exit 0 "$PS" -c c.conf refresh -i
out_has ">f+++++++++ patches/b.cab"
mkfile srv/patches/c.cab 300 4
expect_exit 0 "$PS" -c c.conf refresh --json
[ "$(json_get "$T/out" 'd["components"][0]["files_transferred"]')" = 1 ] || fail "refresh --json"
exit 0
