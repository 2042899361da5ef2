# tests/lib.sh — sourced by every functional test.
#
# Gives: $PS (the patchsync binary), $T (a fresh temporary directory,
# removed on exit), and small helpers. Exit 77 means "skipped" (automake).

set -eu

: "${PATCHSYNC:=$(cd "$(dirname "$0")/../.." && pwd)/build/src/patchsync}"
PS=$PATCHSYNC
[ -x "$PS" ] || { echo "patchsync binary not found: $PS" >&2; exit 99; }

# This script, with an absolute path (state_backends runs it again).
PS_SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

T=$(mktemp -d "${TMPDIR:-/tmp}/patchsync-test.XXXXXX")
PG_DIR=
cleanup() {
    if [ -n "$PG_DIR" ]; then
        sh "$TOP_SRCDIR/tests/pg-cluster" stop "$PG_DIR" || true
    fi
    chmod -R u+rwx "$T" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
cd "$T"

# Never pick up the machine's own configuration, nor its caches.
XDG_CACHE_HOME=$T/cache
export XDG_CACHE_HOME
PATCHSYNC_CONFIG=/nonexistent/patchsync.conf
unset PATCHSYNC_CONFIG

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

skip() {
    echo "SKIP: $*" >&2
    exit 77
}

# expect_exit CODE CMD...: run CMD, capture stdout/stderr in $T/out and
# $T/err, and check its exit status.
expect_exit() {
    want=$1
    shift
    set +e
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    set -e
    if [ "$got" != "$want" ]; then
        echo "--- stdout:" >&2; head -c 2000 "$T/out" >&2
        echo "--- stderr:" >&2; head -c 2000 "$T/err" >&2
        fail "expected exit $want, got $got: $*"
    fi
}

# The last command's stderr is exactly one line starting "patchsync: ".
one_error_line() {
    n=$(wc -l <"$T/err")
    [ "$n" -eq 1 ] || { cat "$T/err" >&2; fail "expected one line on stderr, got $n"; }
    grep -q '^patchsync: ' "$T/err" || { cat "$T/err" >&2; fail "stderr does not start with 'patchsync: '"; }
}

# err_has TEXT: the last command's stderr mentions TEXT.
err_has() {
    grep -qF -- "$1" "$T/err" || { cat "$T/err" >&2; fail "stderr lacks '$1'"; }
}

out_has() {
    grep -qF -- "$1" "$T/out" || { cat "$T/out" >&2; fail "stdout lacks '$1'"; }
}

# same_tree A B: the regular files, their bytes and modes are the same.
same_tree() {
    diff -r "$1" "$2" >/dev/null || fail "trees differ: $1 $2"
}

# mkfile PATH SIZE [SEED]: a file of SIZE pseudo-random bytes from SEED.
mkfile() {
    mkdir -p "$(dirname "$1")"
    if [ -x "${TOP_BUILDDIR:-}/tests/mkfile" ]; then
        "$TOP_BUILDDIR/tests/mkfile" "$2" "${3:-1}" >"$1"
        return
    fi
    python3 -c 'import random,sys
r=random.Random(int(sys.argv[2])); sys.stdout.buffer.write(r.randbytes(int(sys.argv[1])))' \
        "$2" "${3:-1}" >"$1"
}

# json_get FILE EXPR: evaluate a Python expression on the parsed JSON (d).
json_get() {
    python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$1" "$2"
}

is_root() { [ "$(id -u)" = 0 ]; }

# as_nobody CMD...: run CMD as user nobody (root only). A sanitizer
# build's suppressions file is copied where nobody can read it. "env
# VAR=VALUE... CMD" sets the variables here, so that CMD is started by
# setpriv itself (env, run as nobody, could not reach a build below a
# private directory such as mktemp -d's).
as_nobody() {
    if [ "${1:-}" = env ]; then
        shift
        (
            while [ $# -gt 0 ]; do
                case $1 in
                *=*) export "${1?}"; shift ;;
                *) break ;;
                esac
            done
            as_nobody "$@"
        )
        return
    fi
    chmod 755 "$T"
    case ${LSAN_OPTIONS:-} in
    *suppressions=*)
        supp=$(printf '%s\n' "$LSAN_OPTIONS" | tr ':' '\n' | sed -n 's/^suppressions=//p')
        cp "$supp" "$T/lsan.supp" 2>/dev/null && chmod 644 "$T/lsan.supp"
        LSAN_OPTIONS=suppressions=$T/lsan.supp:print_suppressions=0 \
            setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
        ;;
    *)
        setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
        ;;
    esac
}

# public_copy FILE: FILE, or, when user nobody cannot read it (a build
# below a private directory), a copy of it in $T/pub that nobody can run.
public_copy() {
    if setpriv --reuid=65534 --regid=65534 --clear-groups \
        test -r "$1" 2>/dev/null; then
        printf '%s\n' "$1"
        return
    fi
    mkdir -p "$T/pub"
    chmod 755 "$T" "$T/pub"
    cp "$1" "$T/pub/${1##*/}"
    chmod 755 "$T/pub/${1##*/}"
    printf '%s\n' "$T/pub/${1##*/}"
}

# ---- the state database: SQLite or PostgreSQL ----

# $PS_DB: the state database of this run: $T/state.db, or with
# state_backends the URI of a private PostgreSQL server.
PS_BACKEND=${PS_BACKEND:-}
PS_DB=$T/state.db

# state_backends: run this test twice, once against SQLite and once
# against PostgreSQL (a private server from tests/pg-cluster, stopped on
# exit), each in its own $T; fail if either fails. A server that cannot
# be started is a failure, not a skip. Call it right after lib.sh.
state_backends() {
    case $PS_BACKEND in
    '')
        for sb in sqlite pg; do
            echo "=== state database: $sb"
            set +e
            PS_BACKEND=$sb sh "$PS_SELF"
            sb_rc=$?
            set -e
            [ "$sb_rc" = 0 ] || fail "with the $sb backend (exit $sb_rc)"
        done
        exit 0
        ;;
    sqlite)
        ;;
    pg)
        PG_DIR=$T.pg
        PS_DB=$(sh "$TOP_SRCDIR/tests/pg-cluster" start "$PG_DIR") ||
            fail "cannot start a PostgreSQL server for the test"
        # Locks and task logs: this machine's, not the database's.
        PATCHSYNC_STATE_DIR=$T/statedir
        export PATCHSYNC_STATE_DIR
        ;;
    *)
        fail "unknown PS_BACKEND '$PS_BACKEND'"
        ;;
    esac
}

# db_sql SQL: run SQL on $PS_DB as another program would; print rows.
db_sql() {
    case $PS_DB in
    postgres*)
        psql -X -q -At -v ON_ERROR_STOP=1 "$PS_DB" -c "$1"
        ;;
    *)
        sqlite3 -cmd ".timeout 10000" "$PS_DB" "$1"
        ;;
    esac
}

# console_conf NAME COMPONENT:DIR...: write $T/NAME.conf for console
# "console-NAME" with the shared database $PS_DB and each component at
# $T/DIR.
console_conf() {
    cc_name=$1
    shift
    {
        printf '[console]\nname = console-%s\ndatabase = %s\n' "$cc_name" "$PS_DB"
        for cc in "$@"; do
            printf '[component %s]\npath = %s/%s\n' "${cc%%:*}" "$T" "${cc#*:}"
        done
    } >"$T/$cc_name.conf"
}

# treemeta DIR: every entry under DIR but ROOT/.patchsync, one line each:
# path, type, mode, and for files size, mtime in ns and a sha256.
treemeta() {
    python3 - "$1" <<'PY'
import hashlib, os, stat, sys
root = os.fsencode(sys.argv[1])
for d, dirs, files in os.walk(root):
    if d == root:
        dirs[:] = [x for x in dirs if x != b".patchsync"]
    dirs.sort()
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        st = os.lstat(p)
        r = os.path.relpath(p, root)
        if stat.S_ISREG(st.st_mode):
            h = hashlib.sha256(open(p, "rb").read()).hexdigest()
            print(repr(r), "f", oct(st.st_mode & 0o7777), st.st_size,
                  st.st_mtime_ns, h)
        else:
            print(repr(r), "d" if stat.S_ISDIR(st.st_mode) else "?",
                  oct(st.st_mode & 0o7777))
PY
}

# no_litter DIR: no temporaries or other patchsync files anywhere under DIR
# but DIR/.patchsync.
no_litter() {
    n=$(find "$1" -path "$1/.patchsync" -prune -o -name '.psync*' -print | wc -l)
    [ "$n" -eq 0 ] || { find "$1" -name '.psync*' >&2; fail "temporaries left in $1"; }
}
