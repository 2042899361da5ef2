# The command line: help, version, unknown commands and options.
. "$TOP_SRCDIR/tests/lib.sh"

expect_exit 0 "$PS" --version
grep -Eq '^patchsync [0-9]+\.[0-9]+\.[0-9]+$' "$T/out" || fail "bad --version: $(cat "$T/out")"

expect_exit 0 "$PS" --help
out_has "manifest"
out_has "Usage: patchsync"

for cmd in "manifest build" "manifest show" "manifest diff" "config"; do
    # shellcheck disable=SC2086
    expect_exit 0 "$PS" $cmd --help
    out_has "Usage: patchsync $cmd"
done
expect_exit 0 "$PS" manifest --help
out_has "manifest diff OLD NEW"

expect_exit 2 "$PS"
err_has "no command given"

expect_exit 2 "$PS" frobnicate
one_error_line
err_has "unknown command 'frobnicate'"

expect_exit 2 "$PS" --bogus-option
one_error_line
err_has "--bogus-option"

expect_exit 2 "$PS" manifest build --bogus "$T"
one_error_line
err_has "manifest build: --bogus"

expect_exit 2 "$PS" manifest
one_error_line
expect_exit 2 "$PS" manifest frob
one_error_line
err_has "unknown subcommand 'frob'"
expect_exit 2 "$PS" manifest build
one_error_line
expect_exit 2 "$PS" manifest diff onlyone
one_error_line
expect_exit 2 "$PS" manifest build "$T" --threads=-1
one_error_line

# Global options work before and after the command.
mkdir d
expect_exit 0 "$PS" -q manifest build d -o m1
expect_exit 0 "$PS" manifest build -q d -o m2
cmp m1 m2 || fail "same tree gave different manifests"
echo ok
