#!/usr/bin/env python3
"""evilpeer.py -- a hostile peer for the functional tests.

A second, independent implementation of the patchsync protocol (version
5, man/patchsync-protocol.5), as rsync's test suite keeps one: it sends
normal messages with one thing wrong. All frame layouts are in the
MESSAGES table below.

  evilpeer.py server MODE [ignored...]
      A hostile server on stdin/stdout (give it as --remote-path through
      tests/rsh-local: the rest of the command line, "serve --stdio PATH",
      is ignored). MODE: garbage, eof, badmagic, badversion, bigframe,
      unknowntype, truncated, badmanifest, hugestr, silent, trickle,
      stall, earlyack, earlyresult (a file answered before its data
      and END), sumstwice (a request for sums answered twice; its
      manifest is $EVIL_MANIFEST), bomb, pulldelete, deletesource (the
      last two are
      refresh sources; $EVIL_MANIFEST names the manifest they offer),
      or a relay that answers a report with a bad relay exchange:
      relayrange (a result for a server it was not given), relaytwice
      (two results for one), relaynone (RELAYEND without results),
      relaybadrow (a row whose path leaves the tree), relayflood (more
      "missing" rows than the console has files).

  evilpeer.py console PATCHSYNC ROOT CASE HASHHEX
      A hostile console: runs "PATCHSYNC serve --stdio ROOT" over pipes,
      greets, then does CASE. HASHHEX is the XXH3-128 (as `manifest show`
      prints it) of the 5 bytes b"evil\\n", the content of every file sent.
      CASE is open:DEST, file:PATH, mkdir:PATH, delete:PATH, meta:PATH,
      copypast:PATH, bigdata:, bigclaim:, silent:, pullpush:DIR, ok, or
      a relay request after pushing nothing: relaynorelay:MARK (serve
      without --relay, asked to reach a server through a remote shell
      that would create MARK), relaystale: (a component this session did
      not push), relayahead: (a server behind one not sent yet); early:
      (a file sent at once after an OPEN with the early flag: its RESULT
      must come after MFEND), earlyfile:PATH, earlymkdir:PATH and
      earlydelete:PATH (those cases sent before MFEND); PATH may hold
      backslash escapes (\\x00).
      Exit 0 when the server refused (ERROR frame, a failed RESULT, or it
      ended the session) -- or, for the cases "ok" and "pullpush", when it
      accepted; 1 otherwise. Prints one line saying what happened.
"""
import codecs
import os
import select
import struct
import subprocess
import sys
import time

MAGIC = b"PSYNC\0\0\0"
VERSION = 5

# message type -> (name, struct layout of the fixed fields; "s" marks a
# u32-length string, "*" the rest of the payload)
MESSAGES = {
    1: ("HELLO", "8s I I B I"),
    2: ("ERROR", "I s"),
    3: ("NOTICE", "B s"),
    4: ("KEEPALIVE", ""),
    10: ("OPEN", "B I s"),
    11: ("MFDATA", "*"),
    12: ("MFEND", "B Q"),
    20: ("MKDIR", "s I"),
    21: ("FILE", "I s Q q I I 16s"),
    22: ("DATA", "I Q I B *"),
    23: ("SUMREQ", "I s I I I *"),
    24: ("SUMS", "I I B *"),
    25: ("COPY", "I Q Q Q"),
    27: ("END", "I"),
    28: ("RESULT", "I I s"),
    29: ("DELETE", "s B"),
    30: ("META", "s B I q I"),
    31: ("DONE", ""),
    32: ("DONEACK", "I Q Q I"),
    33: ("BYE", ""),
    40: ("RELAY", "B I B B q I I I"),
    41: ("RELAYSRC", "s s B"),
    42: ("RELAYTO", "I s s s s Q I"),
    43: ("RELAYROW", "I s s B Q q 16s Q q 16s"),
    44: ("RELAYRES", "I I Q Q Q Q Q Q Q I Q Q Q s"),
    45: ("RELAYEND", ""),
}
T = {v[0]: k for k, v in MESSAGES.items()}
OF_NOWAIT, OF_CHECKSUM, OF_DRYRUN, OF_DELETE = 1, 2, 4, 8
OF_EARLY = 32


def frame(t, payload=b""):
    return struct.pack("<IB", len(payload), t) + payload


def msg(name, *values):
    """One frame of message NAME with VALUES for its fields, in order."""
    t = T[name]
    out = b""
    vals = list(values)
    for f in MESSAGES[t][1].split():
        v = vals.pop(0)
        if f == "s":
            v = v.encode() if isinstance(v, str) else v
            out += struct.pack("<I", len(v)) + v
        elif f == "*":
            out += v
        else:
            out += struct.pack("<" + f, v)
    assert not vals, name
    return frame(t, out)


def fields(t, payload):
    """Decode the fixed fields of a frame (strings as bytes)."""
    vals, off = [], 0
    for f in MESSAGES[t][1].split():
        if f == "s":
            n = struct.unpack_from("<I", payload, off)[0]
            vals.append(payload[off + 4:off + 4 + n])
            off += 4 + n
        elif f == "*":
            vals.append(payload[off:])
            off = len(payload)
        else:
            vals.append(struct.unpack_from("<" + f, payload, off)[0])
            off += struct.calcsize("<" + f)
    return vals


def hello(role, version=VERSION, magic=MAGIC):
    return msg("HELLO", magic, version, 0, role[0], 120)


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

    def skip_until(self, t, timeout=10):
        while True:
            f = self.frame(timeout)
            if f is None or f[0] == t:
                return f


def zstd_frame(data):
    """data compressed by the zstd command (a real compressor)."""
    p = subprocess.run(["zstd", "-q", "-c", "-19"], input=data,
                       stdout=subprocess.PIPE, check=True)
    return p.stdout


# ---- the hostile server ----

def empty_manifest():
    """A valid encoded manifest with no entries (trailer: XXH3-128)."""
    body = b"PSYNCMF\n" + struct.pack("<IIBQ", 2, 0, 0, 0)
    h = subprocess.run(["xxhsum", "-H2", "-"], input=body,
                       stdout=subprocess.PIPE, check=True).stdout
    return body + bytes.fromhex(h.split()[0].decode()[-32:])


def send_manifest(out, raw):
    z = zstd_frame(raw)
    out.write(msg("MFDATA", z))
    out.write(msg("MFEND", 1, len(raw)))


def result(k, code=0, error=b""):
    return msg("RELAYRES", k, code, 1, 0, 0, 5, 0, 5, 1, 0, 100, 50, 10,
               error)


def bad_relay(mode, rd, out):
    """Report as an empty server, take the relay request, answer badly."""
    send_manifest(out, empty_manifest())
    out.flush()
    rd.skip_until(T["DONE"])
    out.write(msg("DONEACK", 0, 0, 0, 0))
    out.flush()
    t, pl = rd.skip_until(T["RELAY"])
    nservers = fields(t, pl)[7]
    for _ in range(nservers):
        rd.skip_until(T["RELAYTO"])
    if mode == "relayrange":
        out.write(result(nservers + 1))
    elif mode == "relaytwice":
        out.write(result(1))
        out.write(result(1))
    elif mode == "relaybadrow":
        out.write(msg("RELAYROW", 1, b"patches", b"../../etc/passwd", 0,
                      1, 1, b"\0" * 16, 0, 0, b"\0" * 16))
    elif mode == "relayflood":
        for i in range(5000):
            out.write(msg("RELAYROW", 1, b"patches", b"f%05d" % i, 0,
                          1, 1, b"\0" * 16, 0, 0, b"\0" * 16))
        out.write(result(1))
    out.write(msg("RELAYEND"))


def server(mode):
    out = sys.stdout.buffer
    rd = Reader(0)
    if mode == "garbage":
        out.write(b"bash: patchsync: command not found\n")
        out.flush()
        sys.exit(127)
    if mode == "eof":
        sys.exit(0)
    if mode == "silent":
        time.sleep(60)          # says nothing at all
        sys.exit(0)
    if mode == "trickle":       # the greeting, one byte a second
        for b in hello(b"s"):
            out.write(bytes([b]))
            out.flush()
            time.sleep(1)
        time.sleep(60)
        sys.exit(0)
    if mode == "badmagic":
        out.write(hello(b"s", magic=b"RSYNC\0\0\0"))
    elif mode == "badversion":
        out.write(hello(b"s", version=99))
    else:
        out.write(hello(b"s"))
    out.flush()
    try:
        rd.frame()              # the console's HELLO
        if mode in ("badmanifest", "hugestr", "stall", "earlyack", "bomb",
                    "mfflood", "pulldelete", "deletesource",
                    "earlyresult", "sumstwice") or \
                mode.startswith("relay"):
            rd.skip_until(T["OPEN"])
        if mode == "bigframe":
            out.write(struct.pack("<IB", 0xFFFFFFF0, T["MFDATA"]) +
                      b"x" * 100)
        elif mode == "unknowntype":
            out.write(frame(200, b"hello?"))
        elif mode == "truncated":
            out.write(struct.pack("<IB", 100, T["MFDATA"]) + b"0123456789")
            out.flush()
            sys.exit(0)
        elif mode == "badmanifest":
            out.write(msg("MFDATA", b"PSMF this is not a manifest" * 10))
            out.write(msg("MFEND", 1, 270))
        elif mode == "hugestr":
            out.write(frame(T["ERROR"], struct.pack("<II", 4, 0xFFFFFFFF) +
                            b"x"))
        elif mode == "stall":   # a manifest, then nothing, ever
            send_manifest(out, empty_manifest())
            out.flush()
            time.sleep(60)
        elif mode == "earlyack":  # DONEACK before DONE, then goes away
            send_manifest(out, empty_manifest())
            out.write(msg("DONEACK", 0, 0, 0, 0))
            out.flush()
            sys.exit(0)
        elif mode == "bomb":    # 4 GiB of zeros in a few compressed bytes
            z = subprocess.run(
                "head -c 1073741824 /dev/zero | zstd -q -c -1",
                shell=True, stdout=subprocess.PIPE, check=True).stdout
            for i in range(4):
                out.write(msg("MFDATA", z))
            out.write(msg("MFEND", 1, 4 << 30))
        elif mode == "mfflood":  # frames that decode to nothing, for ever
            skippable = struct.pack("<II", 0x184D2A50, 0)   # zstd's
            batch = msg("MFDATA", skippable) * 100000
            while True:
                out.write(batch)
                out.flush()
        elif mode == "earlyresult":
            # A file answered as soon as its FILE came, its data unread
            # (so that its END cannot be out yet), then a well-behaved
            # end of component and session.
            send_manifest(out, empty_manifest())
            out.flush()
            t, pl = rd.skip_until(T["FILE"])
            out.write(msg("RESULT", fields(t, pl)[0], 0, b""))
            out.flush()
            rd.skip_until(T["DONE"], timeout=30)
            out.write(msg("DONEACK", 0, 1, 0, 0))
            out.flush()
            rd.skip_until(T["BYE"], timeout=30)
        elif mode == "sumstwice":
            # Its manifest ($EVIL_MANIFEST, with block sums), then the
            # first request for finer sums answered in full as the last
            # piece, and once more (an empty last piece) right after.
            send_manifest(out, open(os.environ["EVIL_MANIFEST"],
                                    "rb").read())
            out.flush()
            f = rd.skip_until(T["SUMREQ"], timeout=30)
            if f is None:
                sys.exit(0)
            fid, _, rnd, blen, nreg, regions = fields(*f)
            n = 0
            for i in range(nreg):
                ln = struct.unpack_from("<QQ", regions, 16 * i)[1]
                n += (ln + blen - 1) // blen
            out.write(msg("SUMS", fid, rnd, 1, b"\0" * (12 * n)) +
                      msg("SUMS", fid, rnd, 1, b""))
            out.flush()
            rd.skip_until(T["DONE"], timeout=30)
            out.write(msg("DONEACK", 0, 1, 0, 0))
            out.flush()
            rd.skip_until(T["BYE"], timeout=30)
        elif mode.startswith("relay"):
            bad_relay(mode, rd, out)
        elif mode in ("pulldelete", "deletesource"):
            # A refresh source: its manifest (a file, so not empty), the
            # console's, then a DELETE of the console's file "keep" --
            # or, deletesource, of "a.msu", which the source itself has.
            mf = os.environ.get("EVIL_MANIFEST")
            if mf:
                send_manifest(out, open(mf, "rb").read())
            else:
                send_manifest(out, empty_manifest())
            out.flush()
            rd.skip_until(T["MFEND"])
            victim = b"keep" if mode == "pulldelete" else b"a.msu"
            out.write(msg("DELETE", victim, ord("f")))
            out.write(msg("DONE"))
        out.flush()
        # Wait (at most 10 s) for the console to hang up.
        while rd.frame() is not None:
            pass
    except (TimeoutError, ValueError, BrokenPipeError, ConnectionError):
        pass
    sys.exit(0)


# ---- the hostile console ----

def relay_request(case, send, wait_for, verdict):
    """Ask for a relayed push of "patches" to one server, nothing pushed."""
    kind, _, mark = case.partition(":")
    send(msg("RELAY", ord("p"), 0, 1, 0, -1, 1, 1, 1))
    send(msg("RELAYSRC", b"patches", b"patches", 0))
    rsh = ("sh -c 'touch %s' --" % mark).encode() if mark else b""
    send(msg("RELAYTO", 1 if kind == "relayahead" else 0, b"dist5",
             b"dist5.example:/srv/dist", rsh, b"", 0, 30))
    t, pl = wait_for({T["RELAYRES"]})
    v = fields(t, pl)
    send(msg("BYE"))
    if v[1] != 0:
        verdict(True, "RELAYRES code %d: %s" %
                (v[1], v[13].decode(errors="replace")))
    verdict(False, "RELAYRES code 0")


def console(ps, root, case, hashhex):
    h = bytes.fromhex(hashhex)
    data = b"evil\n"
    relay = ["--relay"] if case.startswith("relay") and \
        not case.startswith("relaynorelay") else []
    p = subprocess.Popen([ps, "serve", "--stdio", "--timeout", "3"] +
                         relay + [root],
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
        want_refusal = case not in ("ok", "reorder:", "early:") and \
            not case.startswith("pullpush")
        print("%s (%s; serve exit %d)" %
              ("refused" if refused else "accepted", why, rc))
        sys.exit(0 if refused == want_refusal else 1)

    def wait_for(types, timeout=10):
        """Next frame of one of TYPES; ERROR or EOF ends with a verdict."""
        while True:
            try:
                f = rd.frame(timeout)
            except TimeoutError:
                print("no answer from serve in %d s" % timeout)
                p.kill()
                sys.exit(1)
            if f is None:
                verdict(True, "serve ended the session")
            t, pl = f
            if t == T["MFEND"]:
                seen.add(t)
            if t == T["ERROR"]:
                verdict(True, "ERROR frame: " +
                        pl[8:].decode(errors="replace"))
            if t in types:
                return t, pl

    seen = set()
    send(hello(b"c"))
    wait_for({T["HELLO"]})

    def open_(dest, mode=b"p", flags=0):
        send(msg("OPEN", mode[0], flags, dest))

    if case == "silent:":
        # Greets, then says nothing: serve --timeout 3 must give up.
        start = time.time()
        f = rd.skip_until(T["ERROR"], timeout=20)
        took = time.time() - start
        p.wait(10)
        print("serve gave up after %.1f s" % took)
        sys.exit(0 if f is not None and took < 15 else 1)
    if case.startswith("pullpush:"):
        # Read first (shared lock), then push in the same session: the
        # push must hold the lock exclusively. Markers let the test look.
        sync = case[9:]
        open_("patches", b"g")
        wait_for({T["MFEND"]})
        send(msg("MFDATA", zstd_frame(empty_manifest())))
        send(msg("MFEND", 1, len(empty_manifest())))
        wait_for({T["DONE"]})
        send(msg("DONEACK", 0, 0, 0, 0))
        open_("patches", b"p")
        wait_for({T["MFEND"]})
        open(os.path.join(sync, "pushing"), "w").close()
        deadline = time.time() + 20
        while not os.path.exists(os.path.join(sync, "probed")):
            if time.time() > deadline:
                print("the test did not probe the lock")
                sys.exit(1)
            send(msg("KEEPALIVE"))
            time.sleep(0.1)
        send(msg("DONE"))
        wait_for({T["DONEACK"]})
        send(msg("BYE"))
        verdict(False, "pushed after pulling")
    if case.startswith("relay"):
        relay_request(case, send, wait_for, verdict)
    if case.startswith("open:"):
        open_(case[5:])
        wait_for({T["MFEND"]})
        verdict(False, "serve sent its manifest")
    kind, _, path = case.partition(":")
    # early...: frames sent at once, while serve still walks its tree.
    early = kind.startswith("early")
    if early:
        kind = kind[5:] or "ok"
    open_("", flags=(OF_DELETE if kind == "delete" else 0) |
          (OF_EARLY if early else 0))
    if not early:
        wait_for({T["MFEND"]})
    # Backslash escapes (\x00, \n) give bytes argv cannot carry.
    path = codecs.escape_decode(path.encode())[0]

    def one_file(path, pieces):
        """FILE PATH, the frames PIECES, END; a RESULT other than 0 is a
        refusal."""
        send(msg("FILE", 7, path, len(data), 1600000000, 0, 0o644, h))
        for piece in pieces:
            send(piece)
        send(msg("END", 7))
        t, pl = wait_for({T["RESULT"]})
        if T["MFEND"] not in seen:
            print("a RESULT came before the manifest had ended")
            p.kill()
            sys.exit(1)
        rid, code, text = fields(t, pl)
        if code != 0:
            verdict(True, "RESULT code %d: %s" %
                    (code, text.decode(errors="replace")))

    if kind in ("file", "ok"):
        one_file(b"ok.txt" if kind == "ok" else path,
                 [msg("DATA", 7, 0, len(data), 0, data)])
    elif kind == "reorder":
        # The right bytes, the second piece first (written where they
        # belong; the file is then checked by reading it back).
        one_file(b"reorder.txt",
                 [msg("DATA", 7, 3, len(data) - 3, 0, data[3:]),
                  msg("DATA", 7, 0, 3, 0, data[:3])])
    elif kind == "badbytes":
        # In order, one byte wrong: the hash taken as the bytes are
        # written must refuse it.
        one_file(b"badbytes.txt",
                 [msg("DATA", 7, 0, len(data), 0, data[:2] + b"I" + data[3:])])
    elif kind == "bigdata":
        one_file(b"big.txt", [msg("DATA", 7, 3, 100, 0, b"x" * 100)])
    elif kind == "copypast":
        # A COPY from past the end of the server's old version.
        one_file(path, [msg("COPY", 7, 0, len(data), 200)])
    elif kind == "bigclaim":
        # A 1 TiB file announced, 5 bytes sent: must cost nothing.
        start = time.time()
        send(msg("FILE", 7, b"huge.bin", 1 << 40, 1600000000, 0, 0o644, h))
        send(msg("DATA", 7, 0, len(data), 0, data))
        send(msg("END", 7))
        t, pl = wait_for({T["RESULT"]})
        rid, code, text = fields(t, pl)
        if code != 0 and time.time() - start < 5:
            verdict(True, "RESULT code %d in %.1f s: %s" % (
                code, time.time() - start, text.decode(errors="replace")))
        verdict(False, "a claimed size cost %.1f s" % (time.time() - start))
    elif kind == "mkdir":
        send(msg("MKDIR", path, 0o755))
    elif kind == "delete":
        send(msg("DELETE", path, ord("f")))
    elif kind == "meta":
        send(msg("META", path, ord("f"), 0o777, 0, 0))
    else:
        print("unknown case " + case)
        sys.exit(2)
    send(msg("DONE"))
    t, pl = wait_for({T["DONEACK"]})
    worst, files, deleted, errors = fields(t, pl)
    if worst != 0 or errors != 0:
        verdict(True, "DONEACK worst %d errors %d" % (worst, errors))
    send(msg("BYE"))
    verdict(False, "DONEACK worst 0, %d files, %d deleted" % (files, deleted))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "server":
        server(sys.argv[2])
    elif len(sys.argv) == 6 and sys.argv[1] == "console":
        console(*sys.argv[2:6])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
