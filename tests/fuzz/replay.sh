# tests/fuzz/replay.sh — make check feeds every fuzz target its seed
# corpus (tests/fuzz/corpus/TARGET) and its regression inputs, the crashes
# fuzzing found (tests/fuzz/regress/TARGET), through the replay builds.
set -eu
: "${TOP_SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${TOP_BUILDDIR:=$TOP_SRCDIR/build}"
: "${FUZZ_TARGETS:?FUZZ_TARGETS is set by make check}"
rc=0
for t in $FUZZ_TARGETS; do
	bin=$TOP_BUILDDIR/tests/fuzz/fuzz_${t}_replay
	set --
	for d in corpus regress; do
		[ -d "$TOP_SRCDIR/tests/fuzz/$d/$t" ] &&
		    set -- "$@" "$TOP_SRCDIR/tests/fuzz/$d/$t"
	done
	if [ $# -eq 0 ]; then
		echo "FAIL: $t: no seed corpus in tests/fuzz/corpus/$t" >&2
		rc=1
		continue
	fi
	set +e
	"$bin" "$@"
	r=$?
	set -e
	if [ "$r" != 0 ]; then
		echo "FAIL: $t: replay failed (exit $r)" >&2
		rc=1
	fi
done
exit "$rc"
