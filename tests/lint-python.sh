# tests/lint-python.sh — the Python files (bench/*.py, bench/psbench/,
# tests/*.py, tests/fuzz/gen-corpus) pass pyflakes and pycodestyle
# (Debian packages python3-pyflakes and python3-pycodestyle, installed by
# ./bootstrap).
set -eu
: "${TOP_SRCDIR:=$(cd "$(dirname "$0")/.." && pwd)}"
cd "$TOP_SRCDIR"

# The Debian modules belong to Debian's python3, which may not be the
# first python3 on PATH.
py=
for p in python3 /usr/bin/python3; do
	if "$p" -c 'import pyflakes, pycodestyle' 2>/dev/null; then
		py=$p
		break
	fi
done
if [ -z "$py" ]; then
	echo "FAIL: pyflakes and pycodestyle are needed (apt-get install" \
	    "python3-pyflakes python3-pycodestyle, or ./bootstrap)" >&2
	exit 1
fi
set -- bench/*.py bench/psbench/*.py tests/*.py tests/fuzz/gen-corpus
rc=0
"$py" -m pyflakes "$@" || rc=1
"$py" -m pycodestyle "$@" || rc=1
[ "$rc" = 0 ] && echo "ok: $*"
exit "$rc"
