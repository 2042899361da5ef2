# One push, many servers in a few states (SPEC 14): servers whose
# manifests are byte for byte the same take one plan, made once; the
# others make their own (and share it with those like them); every
# server ends equal to the console, files sent early by the first
# included, with its own figures.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir -p old/a/b old/c old/gone
i=0
while [ $i -lt 200 ]; do
    printf 'definition %d\n' $i >"old/a/f$i"
    i=$((i + 1))
done
mkfile old/a/b/big 600000 3
mkfile old/c/engine 200000 4
echo bye >old/gone/file
chmod 600 old/a/f7
cp -a old src
# The update: new files (the first server's go early), a new directory,
# a changed big file (a delta), a mode change, deletions.
i=0
while [ $i -lt 30 ]; do
    printf 'new patch %d\n' $i >"src/a/new$i"
    i=$((i + 1))
done
mkdir -p src/n/m
mkfile src/n/m/kb.cab 300000 8
mkfile src/c/engine 200000 5
python3 - src/a/b/big <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[1000:1010] = b"0123456789"
open(sys.argv[1], "wb").write(d)
PY
chmod 644 src/a/f7
rm -r src/gone

# Four servers as the last push left them, one that differs late in the
# tree, one that differs at once, and an empty one.
for s in s1 s2 s3 s4 late early; do cp -a old "$s"; done
echo changed >late/c/zzz
rm early/a/f0
mkdir empty

treemeta src >src.meta
# same_as_src DIR WHAT: DIR holds what the console has.
same_as_src() {
    treemeta "$1" | cmp -s src.meta - ||
        fail "$2: server $1 differs from the console"
}
push() {
    expect_exit 0 "$PS" push src "x:$T/s1" "x:$T/s2" "x:$T/late" \
        "x:$T/s3" "x:$T/early" "x:$T/s4" "x:$T/empty" --rsh "$RSH" \
        --remote-path "$PS" --delete -vv --json "$@"
    for s in s1 s2 s3 s4 late early empty; do
        same_as_src "$s" "push $*"
        no_litter "$s"
    done
}
took() {
    sed -n "s/.*servers that took another's plan: \([0-9]*\).*/\1/p" "$T/err"
}

# One at a time: the first makes the plan as its manifest comes (sending
# new files early); s2, s3, s4 take it, so its early files must be sent
# to them all the same; late and early differ and make their own.
push -j 1
[ "$(took)" = 3 ] || fail "servers that took another's plan: '$(took)' (want 3)"
for k in 0 1 3 5; do
    [ "$(json_get "$T/out" "d['servers'][$k]['files_transferred']")" = 33 ] ||
        fail "server $k: files transferred: $(cat "$T/out")"
    [ "$(json_get "$T/out" "d['servers'][$k]['files_deleted']")" = 1 ] ||
        fail "server $k: files deleted: $(cat "$T/out")"
done

# All at once: whoever comes first, the four alike still share.
for s in s1 s2 s3 s4 late early; do
    rm -rf "$s"
    cp -a old "$s"
done
echo changed >late/c/zzz
rm early/a/f0
rm -rf empty
mkdir empty
push -j 7
[ "$(took)" -ge 2 ] || fail "servers that took another's plan: '$(took)' (want >= 2)"

# Up to date: nothing sent, the plan (empty) shared all the same.
push -j 7 -i
[ "$(json_get "$T/out" "sum(s['files_transferred'] for s in d['servers'])")" = 0 ] ||
    fail "files sent to servers already current: $(cat "$T/out")"
[ "$(took)" -ge 5 ] || fail "servers that took another's plan: '$(took)' (want >= 5)"

# A dry run prints each server's plan, shared or not.
for s in s1 s2 s3 s4; do
    rm -rf "$s"
    cp -a old "$s"
done
expect_exit 0 "$PS" push src "x:$T/s1" "x:$T/s2" "x:$T/s3" "x:$T/s4" \
    --rsh "$RSH" --remote-path "$PS" --delete -n -i -j 1
[ "$(grep -c '>f+++++++++ a/new0$' "$T/out")" = 4 ] ||
    fail "dry run: new file not listed for every server: $(cat "$T/out")"
[ "$(grep -c 'deleting *gone/file' "$T/out")" = 4 ] ||
    fail "dry run: deletion not listed for every server: $(cat "$T/out")"
[ "$(treemeta old)" = "$(treemeta s2)" ] || fail "a dry run changed a server"

# As many sessions as CPUs (one, under taskset): files sent whole go
# from each session's own thread, not its workers; the same result.
if command -v taskset >/dev/null; then
    for s in s1 s2 s3 late; do
        rm -rf "$s"
        cp -a old "$s"
    done
    echo changed >late/c/zzz
    expect_exit 0 taskset -c 0 "$PS" push src "x:$T/s1" "x:$T/s2" \
        "x:$T/s3" "x:$T/late" --rsh "$RSH" --remote-path "$PS" --delete -j 2
    for s in s1 s2 s3 late; do
        same_as_src "$s" "one CPU"
    done
fi

# A hostile or dying first server (tests/evilpeer.py, by host name:
# cut short, a bad manifest, silent after its manifest)
# neither holds the others back nor leads them astray: it fails alone.
cat >rsh-mixed <<'SH'
#!/bin/sh
while [ $# -gt 0 ]; do
    case $1 in
    -[bcDEeFIiJLlmOopQRSWw]) shift 2 ;;
    -*) shift ;;
    *) break ;;
    esac
done
host=$1
shift
[ "$host" = evil ] && exec python3 "$EVIL" server "$EVIL_MODE"
exec sh -c "$*"
SH
chmod +x rsh-mixed
for mode in truncated badmanifest stall; do
    for s in s1 s2 s3; do
        rm -rf "$s"
        cp -a old "$s"
    done
    expect_exit 4 env EVIL="$TOP_SRCDIR/tests/evilpeer.py" EVIL_MODE=$mode \
        timeout 60 "$PS" push src "evil:$T/evil" "x:$T/s1" "x:$T/s2" \
        "x:$T/s3" -j 4 --timeout 1 --rsh "$T/rsh-mixed" \
        --remote-path "$PS" --delete --json
    for s in s1 s2 s3; do
        same_as_src "$s" "$mode"
    done
    [ "$(json_get "$T/out" "[s['status'] for s in d['servers']]")" = \
        "['failed', 'ok', 'ok', 'ok']" ] ||
        fail "$mode: statuses: $(cat "$T/out")"
    [ ! -e evil ] || fail "$mode: something created $T/evil"
done
