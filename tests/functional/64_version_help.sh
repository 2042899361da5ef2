# --version names patchsync's version and the libraries it was built with
# and runs with; every command's --help works and lists only options that
# patchsync(1) documents.
. "$TOP_SRCDIR/tests/lib.sh"

# ---- --version ----
version=$(sed -n 's/^PACKAGE_VERSION = //p' "$TOP_BUILDDIR/Makefile")
[ -n "$version" ] || fail "no PACKAGE_VERSION in $TOP_BUILDDIR/Makefile"
expect_exit 0 "$PS" --version
[ ! -s "$T/err" ] || { cat "$T/err" >&2; fail "--version wrote to stderr"; }
[ "$(head -n 1 "$T/out")" = "patchsync $version" ] ||
    fail "first line of --version: $(head -n 1 "$T/out")"

# The versions it runs with, asked of the very libraries the binary loads.
ldd "$PS" >"$T/ldd" || fail "ldd $PS failed"
# libpq and libarchive (and the ~35 libraries they bring) are opened only
# by what uses them: a PostgreSQL state database, a bundle (dynlib.h).
if grep -E "libpq|libarchive|libgssapi|libldap|libicu|libxml2" "$T/ldd" >&2; then
    fail "patchsync is linked with libraries only a database or a bundle needs"
fi
python3 - "$T/out" "$T/ldd" <<'PY' || fail "--version does not match the libraries"
import ctypes, re, subprocess, sys

lines = open(sys.argv[1]).read().splitlines()
for l in lines:
    assert len(l) <= 80, "line over 80 columns: %r" % l
body = " ".join(l.strip() for l in lines[1:])
got = {}
for item in body.split(", "):
    m = re.fullmatch(r"(\S+) (\S+)(?: \(built with (\S+)\))?", item)
    assert m, "bad entry %r" % item
    got[m.group(1)] = (m.group(2), m.group(3) or m.group(2))
want = ["librsync", "xxhash", "zstd", "sqlite", "libarchive", "jansson",
        "popt", "inih"]
missing = [n for n in want if n not in got]
assert not missing, "not named: %s (got %s)" % (missing, sorted(got))

# Built with: what pkg-config says of the headers on this machine.
pc = {"xxhash": "libxxhash", "zstd": "libzstd", "sqlite": "sqlite3",
      "libarchive": "libarchive", "jansson": "jansson", "popt": "popt",
      "inih": "inih"}
for name, mod in pc.items():
    v = subprocess.run(["pkg-config", "--modversion", mod],
                       capture_output=True, text=True, check=True).stdout.strip()
    assert got[name][1] == v, "%s: built with %s, pkg-config says %s" % (
        name, got[name][1], v)

# Runs with: each library's own version call.
# Only these are loaded here (a sanitizer's runtime, say, must not be).
libs = {}
for l in open(sys.argv[2]):
    m = re.match(r"\s*(lib\S+?)\.so\S* => (\S+)", l)
    if m and m.group(1) in ("librsync", "libxxhash", "libzstd", "libsqlite3",
                            "libarchive", "libjansson"):
        libs[m.group(1)] = ctypes.CDLL(m.group(2))
# libarchive is opened when first needed (src/dynlib.c), not linked.
assert "libarchive" not in libs, "libarchive is linked in"
import ctypes.util
libs["libarchive"] = ctypes.CDLL(ctypes.util.find_library("archive"))
def call(lib, fn, restype):
    f = getattr(libs[lib], fn)
    f.restype = restype
    return f()
def dotted(n, base, parts):
    return ".".join(str(n // base ** (parts - 1 - i) % base if i else
                        n // base ** (parts - 1)) for i in range(parts))
rs = (ctypes.c_char * 64).in_dll(libs["librsync"], "rs_librsync_version")
run = {
    "librsync": rs.value.decode().replace("librsync ", ""),
    "xxhash": dotted(call("libxxhash", "XXH_versionNumber", ctypes.c_uint), 100, 3),
    "zstd": call("libzstd", "ZSTD_versionString", ctypes.c_char_p).decode(),
    "sqlite": call("libsqlite3", "sqlite3_libversion", ctypes.c_char_p).decode(),
    "libarchive": dotted(call("libarchive", "archive_version_number",
                              ctypes.c_int), 1000, 3),
    "jansson": call("libjansson", "jansson_version_str", ctypes.c_char_p).decode(),
}
for name, v in run.items():
    assert got[name][0] == v, "%s: prints %s, the library says %s" % (
        name, got[name][0], v)
print("versions:", got)
PY

# ---- --help ----
expect_exit 0 "$PS" --help
python3 -c 'import sys
for l in open(sys.argv[1]):
    assert len(l.rstrip("\n")) <= 80, "--help line over 80 columns: %r" % l' "$T/out" ||
    fail "patchsync --help is wider than 80 columns"
commands=$(sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' "$T/out")
[ "$(echo "$commands" | wc -l)" -ge 10 ] || fail "too few commands in --help: $commands"
for word in --config --verbose --quiet --help --version; do
    out_has "$word"
done

man=$TOP_SRCDIR/man/patchsync.1
checked=0
for cmd in $commands; do
    grep -q "^\.Cm $cmd\b\|^\.Ss $cmd\b" "$man" || fail "patchsync(1) lacks the command $cmd"
    expect_exit 0 "$PS" "$cmd" --help
    out_has "Usage: patchsync $cmd"
    subs=$(sed -n "s/^[A-Za-z:]* *patchsync $cmd \([a-z][a-z|-]*\).*/\1/p" "$T/out" |
        tr '|' ' ')
    for sub in "" $subs; do
        # shellcheck disable=SC2086
        expect_exit 0 "$PS" $cmd $sub --help
        [ ! -s "$T/err" ] || { cat "$T/err" >&2; fail "$cmd $sub --help wrote to stderr"; }
        out_has "Usage: patchsync $cmd"
        [ -z "$sub" ] || grep -q "Cm $sub\b\|Cm $cmd .*\b$sub\b" "$man" ||
            fail "patchsync(1) lacks $cmd $sub"
        cp "$T/out" "$T/help"
        # shellcheck disable=SC2086
        expect_exit 0 "$PS" $cmd $sub -h
        cmp -s "$T/out" "$T/help" || fail "$cmd $sub: -h differs from --help"
        opts=$(sed -n -e 's/^  -[^ ], \(--[a-z0-9-]*\).*/\1/p' \
            -e 's/^      \(--[a-z0-9-]*\).*/\1/p' "$T/help")
        for o in $opts; do
            case $o in --help|--usage) continue ;; esac
            grep -q "Fl $o\b\|Fl -${o#--}\b" "$man" ||
                fail "patchsync $cmd $sub: $o is not in patchsync(1)"
            checked=$((checked + 1))
        done
    done
done
[ "$checked" -ge 30 ] || fail "only $checked options checked"
echo "ok ($checked options)"
