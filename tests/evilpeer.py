#!/usr/bin/env python3
"""evilpeer.py -- a hostile peer for the functional tests.

  evilpeer.py server MODE [ignored...]
      A hostile server on stdin/stdout (give it as --remote-path through
      tests/rsh-local: the rest of the command line, "serve --stdio PATH",
      is ignored). MODE: garbage, eof, badmagic, badversion, bigframe,
      unknowntype, truncated, badmanifest, hugestr.

  evilpeer.py console PATCHSYNC ROOT CASE HASHHEX
      A hostile console: runs "PATCHSYNC serve --stdio ROOT" over pipes,
      greets, then does CASE. HASHHEX is the XXH3-128 (as `manifest show`
      prints it) of the 5 bytes b"evil\\n", the content of every file sent.
      CASE is open:DEST, file:PATH, mkdir:PATH, delete:PATH, meta:PATH,
      bigdata: or ok; PATH may hold backslash escapes (\\x00).
      Exit 0 when the server refused (ERROR frame, a failed RESULT, or it
      ended the session) -- or, for the case "ok", when it accepted; 1
      otherwise. Prints one line saying what happened.

Frame: u32le length | u8 type | payload. HELLO (type 1) payload:
b"PSYNC\\0\\0\\0" + u32le version + u32le features + u8 role.
"""
import codecs
import os
import select
import struct
import subprocess
import sys
import time

MAGIC = b"PSYNC\0\0\0"
HELLO, ERROR, NOTICE, OPEN, MFDATA, MFEND = 1, 2, 3, 10, 11, 12
MKDIR, FILE, DATA, END, RESULT, DELETE, META, DONE, DONEACK, BYE = \
    20, 21, 22, 27, 28, 29, 30, 31, 32, 33


def frame(t, payload=b""):
    return struct.pack("<IB", len(payload), t) + payload


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<I", len(b)) + b


def hello(role):
    return frame(HELLO, MAGIC + struct.pack("<II", 1, 0) + role)


class Reader:
    def __init__(self, fd):
        self.fd = fd
        self.buf = b""

    def fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                raise TimeoutError
            c = os.read(self.fd, 65536)
            if not c:
                return False
            self.buf += c
        return True

    def frame(self, timeout=10):
        """(type, payload), or None at end of stream."""
        deadline = time.time() + timeout
        if not self.fill(5, deadline):
            return None
        n, t = struct.unpack("<IB", self.buf[:5])
        if n > (64 << 20):
            raise ValueError("peer frame too long: %d" % n)
        if not self.fill(5 + n, deadline):
            return None
        p = self.buf[5:5 + n]
        self.buf = self.buf[5 + n:]
        return t, p


# ---- the hostile server ----

def server(mode):
    out = sys.stdout.buffer
    rd = Reader(0)
    if mode == "garbage":
        out.write(b"bash: patchsync: command not found\n")
        out.flush()
        sys.exit(127)
    if mode == "eof":
        sys.exit(0)
    if mode == "badmagic":
        out.write(frame(HELLO, b"RSYNC\0\0\0" + struct.pack("<II", 1, 0) +
                        b"s"))
        out.flush()
    elif mode == "badversion":
        out.write(frame(HELLO, MAGIC + struct.pack("<II", 99, 0) + b"s"))
        out.flush()
    else:
        out.write(hello(b"s"))
        out.flush()
    try:
        rd.frame()              # the console's HELLO
        if mode in ("badmanifest", "hugestr"):
            rd.frame()          # its OPEN
        if mode == "bigframe":
            out.write(struct.pack("<IB", 0xFFFFFFF0, MFDATA) + b"x" * 100)
        elif mode == "unknowntype":
            out.write(frame(200, b"hello?"))
        elif mode == "truncated":
            out.write(struct.pack("<IB", 100, MFDATA) + b"0123456789")
            out.flush()
            sys.exit(0)
        elif mode == "badmanifest":
            out.write(frame(MFDATA, b"PSMF this is not a manifest" * 10))
            out.write(frame(MFEND))
        elif mode == "hugestr":
            out.write(frame(ERROR, struct.pack("<II", 4, 0xFFFFFFFF) + b"x"))
        out.flush()
        # Wait (at most 10 s) for the console to hang up.
        while rd.frame() is not None:
            pass
    except (TimeoutError, ValueError, BrokenPipeError, ConnectionError):
        pass
    sys.exit(0)


# ---- the hostile console ----

def console(ps, root, case, hashhex):
    h = bytes.fromhex(hashhex)
    data = b"evil\n"
    p = subprocess.Popen([ps, "serve", "--stdio", root],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    rd = Reader(p.stdout.fileno())

    def send(b):
        try:
            p.stdin.write(b)
            p.stdin.flush()
        except (BrokenPipeError, ConnectionError):
            pass

    def verdict(refused, why):
        try:
            p.stdin.close()
        except (BrokenPipeError, ConnectionError):
            pass
        try:
            rc = p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            print("serve hung after: " + why)
            sys.exit(1)
        want_refusal = case != "ok"
        print("%s (%s; serve exit %d)" %
              ("refused" if refused else "accepted", why, rc))
        sys.exit(0 if refused == want_refusal else 1)

    def wait_for(types):
        """Next frame of one of TYPES; ERROR or EOF ends with a verdict."""
        while True:
            try:
                f = rd.frame()
            except TimeoutError:
                print("no answer from serve in 10 s")
                p.kill()
                sys.exit(1)
            if f is None:
                verdict(True, "serve ended the session")
            t, pl = f
            if t == ERROR:
                verdict(True, "ERROR frame: " +
                        pl[8:].decode(errors="replace"))
            if t in types:
                return t, pl

    send(hello(b"c"))
    wait_for({HELLO})

    def open_(dest, mode=b"p"):
        send(frame(OPEN, mode + struct.pack("<I", 0) + s(dest)))

    if case.startswith("open:"):
        open_(case[5:])
        wait_for({MFEND})
        verdict(False, "serve sent its manifest")
    open_("")
    wait_for({MFEND})
    kind, _, path = case.partition(":")
    # Backslash escapes (\x00, \n) give bytes argv cannot carry.
    path = codecs.escape_decode(path.encode())[0]
    if kind in ("file", "ok"):
        if kind == "ok":
            path = b"ok.txt"
        send(frame(FILE, struct.pack("<I", 7) + s(path) +
                   struct.pack("<QqII", len(data), 1600000000, 0, 0o644) + h))
        send(frame(DATA, struct.pack("<IQIB", 7, 0, len(data), 0) + data))
        send(frame(END, struct.pack("<I", 7)))
        t, pl = wait_for({RESULT})
        rid, code = struct.unpack("<II", pl[:8])
        if code != 0:
            verdict(True, "RESULT code %d: %s" % (
                code, pl[12:].decode(errors="replace")))
    elif kind == "bigdata":
        send(frame(FILE, struct.pack("<I", 7) + s("big.txt") +
                   struct.pack("<QqII", len(data), 1600000000, 0, 0o644) + h))
        send(frame(DATA, struct.pack("<IQIB", 7, 3, 100, 0) + b"x" * 100))
        send(frame(END, struct.pack("<I", 7)))
        t, pl = wait_for({RESULT})
        rid, code = struct.unpack("<II", pl[:8])
        if code != 0:
            verdict(True, "RESULT code %d" % code)
    elif kind == "mkdir":
        send(frame(MKDIR, s(path) + struct.pack("<I", 0o755)))
    elif kind == "delete":
        send(frame(DELETE, s(path) + b"f"))
    elif kind == "meta":
        send(frame(META, s(path) + b"f" + struct.pack("<IqI", 0o777, 0, 0)))
    else:
        print("unknown case " + case)
        sys.exit(2)
    send(frame(DONE))
    t, pl = wait_for({DONEACK})
    worst, files, deleted, errors = struct.unpack("<IQQI", pl[:24])
    if worst != 0 or errors != 0:
        verdict(True, "DONEACK worst %d errors %d" % (worst, errors))
    send(frame(BYE))
    verdict(False, "DONEACK worst 0, %d files, %d deleted" % (files, deleted))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "server":
        server(sys.argv[2])
    elif len(sys.argv) == 6 and sys.argv[1] == "console":
        console(*sys.argv[2:6])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
