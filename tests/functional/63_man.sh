# Every manual page in man/ renders without a warning and fits 80 columns:
# mandoc's lint, groff with every warning, and man(1) at MANWIDTH=80.
. "$TOP_SRCDIR/tests/lib.sh"

for tool in mandoc groff man; do
    command -v $tool >/dev/null || fail "$tool is missing (./bootstrap installs it)"
done

# Lines of standard input longer than 80 characters (not bytes).
wide() {
    python3 -c 'import sys
for n, l in enumerate(sys.stdin.read().splitlines(), 1):
    if len(l) > 80:
        print("line %d has %d columns: %s" % (n, len(l), l))'
}

pages=0
for page in "$TOP_SRCDIR"/man/*.[1-9]; do
    name=${page##*/}
    pages=$((pages + 1))
    # Whether a page named in .Xr is installed here is no fault of ours.
    mandoc -T lint -W style "$page" 2>&1 |
        grep -v 'referenced manual not found\|outdated mandoc.db' >"$T/lint" || true
    [ ! -s "$T/lint" ] || { cat "$T/lint" >&2; fail "$name: mandoc -T lint"; }

    groff -ww -z -man -Tutf8 "$page" 2>"$T/groff.err" || fail "$name: groff failed"
    [ ! -s "$T/groff.err" ] || { cat "$T/groff.err" >&2; fail "$name: groff warns"; }
    groff -man -Tutf8 "$page" 2>/dev/null | col -bx | wide >"$T/wide"
    [ ! -s "$T/wide" ] || { cat "$T/wide" >&2; fail "$name: groff output over 80 columns"; }

    MANWIDTH=80 MAN_KEEP_FORMATTING='' man -l "$page" >"$T/man.out" 2>"$T/man.err" ||
        { cat "$T/man.err" >&2; fail "$name: man -l failed"; }
    [ ! -s "$T/man.err" ] || { cat "$T/man.err" >&2; fail "$name: man -l warns"; }
    [ -s "$T/man.out" ] || fail "$name: man -l printed nothing"
    col -bx <"$T/man.out" | wide >"$T/wide"
    [ ! -s "$T/wide" ] || { cat "$T/wide" >&2; fail "$name: over 80 columns at MANWIDTH=80"; }
done
[ "$pages" -ge 4 ] || fail "only $pages manual pages found in $TOP_SRCDIR/man"
echo ok
