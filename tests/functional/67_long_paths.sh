# Paths as long as patchsync takes them (PS_PATH_MAX, 4096 bytes) go
# through push, report and --delete, locally and over a remote shell: a
# message header longer than 256 bytes (a MKDIR, FILE or DELETE with a
# long path) made the sender abort ("realloc(): invalid pointer"). A
# path beyond the limit is one error line that still says why, however
# long the path (the reason was cut off with the line).
. "$TOP_SRCDIR/tests/lib.sh"
RSH=$TOP_SRCDIR/tests/rsh-local

# deep ROOT DEPTH FILE: FILE under DEPTH directories of 200-byte names.
deep() {
	python3 - "$@" <<'EOF'
import os, sys
os.makedirs(sys.argv[1], exist_ok=True)
os.chdir(sys.argv[1])
for i in range(int(sys.argv[2])):
    n = chr(ord('a') + i % 26) * 200
    os.makedirs(n, exist_ok=True)
    os.chdir(n)
with open(sys.argv[3], "wb") as f:
    f.write(os.urandom(3000))
EOF
}

deep src 1 short.bin	# a path of 210 bytes
deep src 19 long.bin	# 3,827 bytes
mkfile src/plain 100 1
expect_exit 0 "$PS" push src "$T/local"
same_tree src local
expect_exit 0 "$PS" push src "localhost:$T/remote" --rsh "$RSH" --remote-path "$PS"
same_tree src remote
expect_exit 0 "$PS" report src "$T/local" "localhost:$T/remote" --rsh "$RSH" \
    --remote-path "$PS"

# A long path deleted, and changed.
find src -name long.bin -delete
find src -name short.bin -exec sh -c 'printf x >>"$1"' sh {} \;
expect_exit 0 "$PS" push src "$T/local" --delete
same_tree src local
expect_exit 0 "$PS" push src "localhost:$T/remote" --delete --rsh "$RSH" \
    --remote-path "$PS"
same_tree src remote

# Beyond the limit: skipped, said in one line that keeps its reason.
deep over 25 far.bin	# 5,000 bytes
mkfile over/ok 10 2
expect_exit 3 "$PS" push over "$T/overdst"
one_error_line
err_has "longer than the path limit"
[ "$(wc -c <"$T/err")" -le 2100 ] || fail "an error line of $(wc -c <"$T/err") bytes"
cmp -s over/ok overdst/ok || fail "the other files were not pushed"
