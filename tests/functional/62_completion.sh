# Bash completion: commands, each command's options, server names from the
# state database (never creating one), schedule and task ids, components
# from the configuration; and bash-completion finds the installed file.
. "$TOP_SRCDIR/tests/lib.sh"

command -v bash >/dev/null || fail "bash is missing"
COMPLETION=$TOP_SRCDIR/contrib/patchsync.bash-completion

# A console with two components, two servers, a schedule and a task.
mkdir -p c/patches c/engines srv
mkfile c/patches/KB1.msu 100 1
console_conf a patches:c/patches engines:c/engines
expect_exit 0 "$PS" -c a.conf server add dist1 "$T/srv/one"
expect_exit 0 "$PS" -c a.conf server add dist2 "$T/srv/two"
expect_exit 0 "$PS" -c a.conf server add mirror "$T/mirror" --download-source
mkdir -p srv/one srv/two
expect_exit 0 "$PS" -c a.conf schedule add --server dist1 --cron @daily
sched=$(cat "$T/out")
expect_exit 0 "$PS" -c a.conf push dist1
expect_exit 0 "$PS" -c a.conf task list --json
task=$(json_get "$T/out" 'd["tasks"][-1]["id"]')

# comp WORD...: complete the last WORD of "patchsync WORD..." (the program
# is $PS); COMPREPLY, sorted, one per line, goes to $T/reply.
comp() {
    bash -c '
        . "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
        _patchsync
        printf "%s\n" "${COMPREPLY[@]}"' \
        comp "$COMPLETION" "$PS" "$@" 2>"$T/comp.err" | grep . | sort >"$T/reply" || true
    [ ! -s "$T/comp.err" ] || { cat "$T/comp.err" >&2; fail "completion wrote errors: $*"; }
}
# expect WORD...: the last reply is exactly these words.
expect() {
    : >"$T/want"
    [ $# = 0 ] || printf '%s\n' "$@" | sort >"$T/want"
    diff -u "$T/want" "$T/reply" >&2 || fail "completion of '$line' differs"
}
# has WORD...: the last reply includes these words.
has() {
    for w; do grep -qx -- "$w" "$T/reply" || { cat "$T/reply" >&2; fail "'$line' does not offer $w"; }; done
}
lacks() {
    for w; do grep -qx -- "$w" "$T/reply" && { cat "$T/reply" >&2; fail "'$line' offers $w"; }; done
    return 0
}
c() { line="$*"; comp "$@"; }

# Command names, from patchsync --help.
c ''
has push report refresh serve manifest config server schedule task history download
c sch;          expect schedule
c -;            expect --config --verbose --quiet --version --help
# Subcommands.
c server '';    expect add list show remove check edit
c config '';    expect check show
c -c a.conf schedule r; expect run run-due
# Options of each command.
c push --
has --dry-run --delete --max-delete --no-wait --jobs --checksum --whole-file \
    --no-whole-file --bwlimit --progress --no-progress --stats --json \
    --itemize --all --component --rsh --remote-path --config --help
lacks --stdio --extra --format
c push --no;    expect --no-wait --no-whole-file --no-progress
c report --ex;  expect --extra
c schedule add --c; expect --component --cron --config
c manifest build --;  has --output --threads
# Server names from the database.
c -c a.conf push ''
has dist1 dist2 mirror
c -c a.conf push -j 4 -C patches d;  has dist1 dist2; lacks mirror
c -c a.conf server show d;   expect dist1 dist2
c -c a.conf server check '';  expect dist1 dist2 mirror
c -c a.conf server check dist1 ''; expect
c --config=a.conf schedule add --server '';  expect dist1 dist2 mirror
c -c a.conf schedule add -s dist;  expect dist1 dist2
c -c a.conf history --server = d;  expect dist1 dist2
c -c a.conf server add d3 /srv/d3 --via d;  expect dist1 dist2
c -c a.conf server edit dist2 --via = '';  expect dist1 dist2 mirror
(PATCHSYNC_CONFIG=$T/a.conf; export PATCHSYNC_CONFIG; c server remove m; expect mirror)
# Schedule and task ids.
c -c a.conf schedule run '';  expect "$sched"
c -c a.conf schedule edit '';  expect "$sched"
c -c a.conf task cancel '';  expect "$task"
c -c a.conf history --task '';  expect "$task"
# Components from the configuration (-C and --component, = forms too).
c -c a.conf push -C '';  expect engines patches
c -c a.conf push --component p;  expect patches
c -c a.conf push --component=e;  expect engines
c -c a.conf push --component = '';  expect engines patches
c -c a.conf report -C '';  expect all engines patches
c -c a.conf download -C e;  expect engines
c -c missing.conf push -C '';  expect
# Values of other options.
c manifest diff --format '';  expect text json csv
c -c a.conf schedule add --cron @d;  expect @daily
mkdir bin
printf '#!/bin/sh\n' >bin/ps-fetch-patches
chmod 755 bin/ps-fetch-patches
PATH=$T/bin:$PATH
c -c a.conf download -C patches -- ps-fetch;  expect ps-fetch-patches
c -c a.conf download -C patches -- ps-fetch-patches c/p;  expect c/patches

# No database: nothing offered, and none created.
printf '[console]\nname = b\ndatabase = %s/nodb/state.db\n[component patches]\npath = %s/c/patches\n' \
    "$T" "$T" >b.conf
c -c b.conf push '';  lacks dist1
c -c b.conf server show '';  expect
c -c b.conf schedule run '';  expect
c -c b.conf task cancel '';  expect
[ ! -e "$T/nodb" ] || fail "completion created $T/nodb"
c -c b.conf push -C '';  expect patches

# bash-completion loads the installed file for the command patchsync.
# mkvar NAME: make variable NAME of the build tree, fully expanded.
mkvar() {
    printf "ps-var:\n\t@echo \"\$(%s)\"\n" "$1" |
        env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory \
            -C "$TOP_BUILDDIR" -f Makefile -f - ps-var
}
compdir=$(mkvar bashcompletiondir)
case $compdir in
*/bash-completion/completions)
    [ -f /usr/share/bash-completion/bash_completion ] ||
        fail "bash-completion is missing (./bootstrap installs it)"
    R=$T/root
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$TOP_BUILDDIR" \
        install-data-local DESTDIR="$R" >"$T/install.log" 2>&1 ||
        { cat "$T/install.log" >&2; fail "make install-data-local failed"; }
    XDG_DATA_DIRS=$R${compdir%/bash-completion/completions} bash -c '
        BASH_COMPLETION_USER_DIR=/nonexistent
        . /usr/share/bash-completion/bash_completion
        __load_completion patchsync
        complete -p patchsync
        shopt -s extdebug
        declare -F _patchsync' >"$T/out" 2>&1 || true
    grep -q '^complete -F _patchsync patchsync$' "$T/out" ||
        { cat "$T/out" >&2; fail "bash-completion did not load the installed completion"; }
    grep -qF "$R$compdir/patchsync" "$T/out" ||
        { cat "$T/out" >&2; fail "bash-completion loaded another file"; }
    ;;
"") ;;
*) echo "bash-completion directory $compdir: not checked" ;;
esac
echo ok
