# Progress on a terminal (under tmux, read with capture-pane): one line
# per server at work with -j, a total line below them, percentages that
# never go back, a final line per server; nothing on a pipe unless asked.
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local
command -v tmux >/dev/null || fail "tmux is not installed (./bootstrap installs it)"

mkdir -p src
for i in 1 2 3 4 5 6; do mkfile src/f$i 400000 $i; done

# A pipe: no progress unless asked.
expect_exit 0 "$PS" push src "x:$T/p1" --rsh "$RSH" --remote-path "$PS"
grep -q '%' "$T/err" && fail "progress on a pipe: $(cat "$T/err")"
expect_exit 0 "$PS" push src "x:$T/p2" --rsh "$RSH" --remote-path "$PS" \
    --progress
grep -q '100%' "$T/err" || fail "--progress on a pipe drew nothing"

sock=$T/tmux.sock
tm() { tmux -S "$sock" "$@"; }
cat >run.sh <<EOS
#!/bin/sh
cd "$T"
"$PS" push src x:$T/a x:$T/b x:$T/c -j 3 --rsh "$RSH" --remote-path "$PS" \
    --bwlimit 600K
echo "exit \$?" >"$T/rc"
sleep 30
EOS
chmod +x run.sh
tm -f /dev/null new-session -d -x 132 -y 40 "$T/run.sh"
trap 'tm kill-server 2>/dev/null || true; cleanup' EXIT
# Watch the screen until the push ends (at most 60 s).
n=0
: >screens
while [ ! -s rc ] && [ $n -lt 600 ]; do
    tm capture-pane -p >>screens 2>/dev/null || true
    echo "----" >>screens
    sleep 0.1
    n=$((n + 1))
done
tm capture-pane -p >final
[ -s rc ] || fail "the push did not end: $(tail -n 5 final)"
[ "$(cat rc)" = "exit 0" ] || fail "push: $(cat rc): $(cat final)"
for s in a b c; do diff -r src "$s" >/dev/null || fail "server $s differs"; done

# While it ran: a line per server, and a total line below them.
grep -q "^x:$T/a .*%" screens || fail "no line for server a: $(tail -n 20 screens)"
grep -q "^x:$T/c .*%" screens || fail "no line for server c"
grep -q '^total .*%.*planned' screens || fail "no total line"
# The total's percentage never went back.
grep '^total' screens | sed 's/^total *[0-9.]* [KMG]*i*B *\([0-9]*\)%.*/\1/' |
    awk 'NR > 1 && $1 < prev { bad = 1 } { prev = $1 } END { exit bad }' ||
    fail "the total went back: $(grep '^total' screens | uniq)"
# It was seen below 100 % at some point (the push was watched).
grep '^total' screens | grep -qv ' 100%' || fail "never saw the push under way"
# At the end: each server's last line (100 %, done) and the total at 100 %.
for s in a b c; do
    grep -q "^x:$T/$s .* 100% .*done" final ||
        fail "no final line for $s: $(cat final)"
done
grep -q '^total .* 100% ' final || fail "total not at 100%: $(cat final)"

# refresh --progress: the component's line, from the exact total of what
# the source has and the console lacks, up to 100 %.
mkdir -p rsrc/patches
mkfile rsrc/patches/a.msu 300000 11
mkfile rsrc/patches/b.msu 200000 12
mkdir -p rcon/patches
cp rsrc/patches/b.msu rcon/patches/
cat >r.conf <<EOC
[console]
name = con
database = $T/state.db

[component patches]
path = $T/rcon/patches
source = $T/rsrc
EOC
expect_exit 0 "$PS" -c r.conf refresh --progress
grep -q 'patches: .* 100% .*(1/1 files)' "$T/err" ||
    fail "refresh --progress: $(cat "$T/err")"
cmp -s rsrc/patches/a.msu rcon/patches/a.msu || fail "refresh did not pull a.msu"
expect_exit 0 "$PS" -c r.conf refresh
grep -q '%' "$T/err" && fail "refresh drew progress on a pipe"
true
