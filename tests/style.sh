# tests/style.sh — make check runs tests/style-check over the C files of
# src/, tests/unit/, tests/fuzz/ and bench/ (what it checks:
# tests/style-check --help). First it proves
# on a file of known faults that the checker still finds each kind.
set -eu
: "${TOP_SRCDIR:=$(cd "$(dirname "$0")/.." && pwd)}"
check=$TOP_SRCDIR/tests/style-check
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 99; }

t=$(mktemp -d "${TMPDIR:-/tmp}/style-test.XXXXXX")
trap 'rm -rf "$t"' EXIT
{
	printf 'int\nf(void)\n{\n'
	printf '\tchar b[8]; \n'				# 4
	printf '\tif ((rc = g()) != PS_OK)\n\t\treturn 1;\n'	# 5: fine
	printf '\tif (x = g())\n\t\treturn 2;\n'		# 7
	printf '\tstrcpy(b, "sprintf(x)"); /* atoi( */\n'	# 9
	printf '\t%s\n' "$(printf 'x%.0s' $(seq 1 73))"	# 10: 81 cols
	printf '\treturn snprintf(b, 8, "%%d", atoi(b));\n}\n'	# 11
} >"$t/bad.c"
set +e
python3 "$check" "$t/bad.c" >"$t/out" 2>&1
rc=$?
set -e
cat >"$t/want" <<WANT
$t/bad.c:4: trailing whitespace
$t/bad.c:7: assignment in an if condition (write it as if ((x = f()) != 0))
$t/bad.c:9: banned call strcpy()
$t/bad.c:10: line is 81 columns (max 80)
$t/bad.c:11: banned call atoi()
WANT
if [ "$rc" != 1 ] || ! diff -u "$t/want" "$t/out"; then
	echo "FAIL: style-check does not find the known faults (exit $rc)" >&2
	exit 1
fi

# The real tree.
cd "$TOP_SRCDIR"
python3 "$check"
