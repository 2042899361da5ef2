# Several servers in one push: -i and -v name the server on every line
# (rsync's 11-column itemize codes); --bwlimit applies to each server on
# its own (two servers at 1M each get 1M each, not half of it).
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

mkdir src
mkfile src/a.msu 1000 1
mkfile src/sub/b.cab 1000 2
expect_exit 0 "$PS" push src "$T/one" "localhost:$T/two" --rsh "$RSH" --remote-path "$PS" -i
for s in "$T/one" "localhost:$T/two"; do
    grep -qxF "$s: >f+++++++++ a.msu" "$T/out" || { cat "$T/out" >&2; fail "no itemized line for $s"; }
    grep -qxF "$s: cd+++++++++ sub/" "$T/out" || { cat "$T/out" >&2; fail "no directory line for $s"; }
done
# One server: no prefix, as rsync prints.
mkfile src/c.msu 10 3
expect_exit 0 "$PS" push src "$T/one" -i
grep -qxF ">f+++++++++ c.msu" "$T/out" || { cat "$T/out" >&2; fail "itemize with one server"; }
# -v: each file sent and each deletion, per server.
mkfile src/d.msu 10 4
rm src/c.msu
expect_exit 0 "$PS" push src "$T/one" "localhost:$T/two" --rsh "$RSH" --remote-path "$PS" -v --delete
grep -qxF "$T/one: d.msu" "$T/out" || { cat "$T/out" >&2; fail "-v does not list the file sent"; }
grep -qxF "$T/one: deleting c.msu" "$T/out" || { cat "$T/out" >&2; fail "-v does not list the deletion"; }
grep -qxF "localhost:$T/two: d.msu" "$T/out" || { cat "$T/out" >&2; fail "-v for the second server"; }

# --bwlimit is per server: 2 MiB to each of two servers at 1 MiB/s takes
# about 2 s (it took about 4 when the servers shared the limit).
mkdir big
mkfile big/x.msu 2097152 5
start=$(date +%s.%N)
expect_exit 0 "$PS" push big "$T/b1" "$T/b2" -W --bwlimit 1M -j 2
end=$(date +%s.%N)
took=$(echo "$end - $start" | bc -l 2>/dev/null || python3 -c "print($end - $start)")
python3 -c "import sys; t=float(sys.argv[1]); sys.exit(0 if 1.5 < t < 3.6 else 1)" "$took" ||
    fail "two servers at --bwlimit 1M each took $took s for 2 MiB each (want about 2 s)"
same_tree big b1
same_tree big b2
exit 0
