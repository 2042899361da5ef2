#!/usr/bin/env python3
"""count_rsh.py — like bench/rsh.c (a local stand-in for ssh), but it
relays both directions through itself and writes "SENT RECEIVED" (bytes,
seen from the caller) to $BENCH_COUNT_FILE. bench/run uses it for
untimed runs only, to count the bytes of tools that do not report them:
the relay costs time.

    count_rsh.py [SSH-OPTIONS] HOST COMMAND...
"""
import os
import subprocess
import sys
import threading

WITH_ARG = set("bcDEeFIiJLlmOopQRSWw")


def pump(src, dst, counts, k, close):
    while True:
        b = os.read(src, 1 << 16)
        if not b:
            break
        counts[k] += len(b)
        v = memoryview(b)
        while v:
            try:
                v = v[os.write(dst, v):]
            except BrokenPipeError:
                return
    close()


def main(argv):
    while argv and argv[0].startswith("-") and argv[0] != "-":
        if argv[0] == "--":
            argv = argv[1:]
            break
        takes = len(argv[0]) == 2 and argv[0][1] in WITH_ARG
        argv = argv[2:] if takes else argv[1:]
    if len(argv) < 2:
        print("count_rsh: usage: count_rsh HOST COMMAND...",
              file=sys.stderr)
        return 255
    p = subprocess.Popen(["sh", "-c", " ".join(argv[1:])],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    counts = [0, 0]
    t = threading.Thread(target=pump, daemon=True,
                         args=(0, p.stdin.fileno(), counts, 0,
                               p.stdin.close))
    t.start()
    pump(p.stdout.fileno(), 1, counts, 1, lambda: None)
    rc = p.wait()
    with open(os.environ["BENCH_COUNT_FILE"], "w") as f:
        f.write("%d %d\n" % (counts[0], counts[1]))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
