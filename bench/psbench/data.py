"""The data sets: made deterministically from the seed, at the run's
scale, under WORK/data/NAME, and reused when already there with the
same settings."""
import json
import os
import random
import shutil

from .util import KiB, MiB

VERSION = 1                     # bump when generated data changes
BASE_MTIME = 1_700_000_000
PRODUCTS = ["windows10-22h2", "windows11-23h2", "windows11-24h2",
            "server2019", "server2022", "office2016", "dotnet-fx"]
ARCHS = ["x64", "x86", "arm64"]


def scaled(ctx, n, lo):
    return max(lo, int(round(n * ctx.scale)))


def rng_for(ctx, *parts):
    return random.Random("/".join(str(p) for p in (ctx.opt["seed"],) +
                                  parts))


def randbytes(r, n):
    out = bytearray()
    while n > 0:
        k = min(n, 4 * MiB)
        out += r.randbytes(k)
        n -= k
    return bytes(out)


def loguniform(r, lo, hi):
    return int(round(2 ** r.uniform(lo.bit_length() - 1,
                                    hi.bit_length() - 1)))


def write_file(path, data, mtime, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))


def edit_bytes(r, data, nedits, frac, shift_every=4):
    """Overwrite about FRAC of DATA in NEDITS scattered places; every
    SHIFT_EVERY-th edit also changes the length (insert or delete)."""
    n = len(data)
    span = max(1, int(n * frac / nedits))
    starts = sorted(r.sample(range(0, max(1, n - span)),
                             min(nedits, max(1, n - span))))
    out, pos = [], 0
    for k, s in enumerate(starts):
        if s < pos:
            continue
        out.append(data[pos:s])
        newlen = span
        if shift_every and k % shift_every == 0:
            newlen = max(1, span + r.randint(-min(512, span - 1), 512))
        out.append(r.randbytes(newlen))
        pos = s + span
    out.append(data[pos:])
    return b"".join(out)


def gen_tree(ctx, d):
    """Patch-like tree: console copy (tree), and the server's state
    before Patch Tuesday (tree-old): without the new files, with the
    old versions of the modified ones."""
    n = scaled(ctx, 5000, 40)
    nnew, nmod = scaled(ctx, 50, 5), scaled(ctx, 20, 2)
    r = rng_for(ctx, "tree")
    paths, seen = [], set()
    for i in range(n):
        while True:
            kb = r.randrange(4000000, 5999999)
            p, a = r.choice(PRODUCTS), r.choice(ARCHS)
            ext = ".msu" if r.random() < 0.7 else ".cab"
            name = "%s/%s/%s-kb%d-%s_%040x%s" % (
                p, a, p.split("-")[0], kb, a, r.getrandbits(160), ext)
            if name not in seen:
                break
        seen.add(name)
        paths.append(name)
    picks = r.sample(range(n), nnew + nmod)
    new, mod = set(picks[:nnew]), set(picks[nnew:])
    tree, old = os.path.join(d, "tree"), os.path.join(d, "tree-old")
    total = 0
    for i, p in enumerate(paths):
        fr = rng_for(ctx, "tree", i)
        size = loguniform(fr, KiB, MiB)
        data = randbytes(fr, size)
        total += size
        mt = BASE_MTIME + i * 61 + (40 * 86400 if i in new or i in mod
                                    else 0)
        write_file(os.path.join(tree, p), data, mt)
        if i in new:
            continue
        if i in mod:
            # An older build of the same package: a few regions differ,
            # and its length is different.
            data = edit_bytes(fr, data, fr.randint(1, 4), 0.05, 1)
            mt -= 30 * 86400
        write_file(os.path.join(old, p), data, mt)
    return dict(files=n, bytes=total, new=sorted(paths[i] for i in new),
                modified=sorted(paths[i] for i in mod))


def gen_definitions(ctx, d):
    size = max(MiB, int(256 * MiB * ctx.scale) // 4096 * 4096)
    r = rng_for(ctx, "definitions")
    old = randbytes(r, size)
    new = edit_bytes(r, old, scaled(ctx, 320, 16), 0.01)
    write_file(os.path.join(d, "old", "mpam-fe.bin"), old, BASE_MTIME)
    write_file(os.path.join(d, "new", "mpam-fe.bin"), new,
               BASE_MTIME + 86400)
    return dict(files=1, bytes=len(new))


SCATTER_EDIT = 100              # bytes per edit in `scattered`


def gen_scattered(ctx, d):
    """One big binary file with many small edits in place: 100 bytes
    overwritten every ~10 KiB on average, the length unchanged."""
    size = max(MiB, int(256 * MiB * ctx.scale) // 4096 * 4096)
    nedits = scaled(ctx, 25000, 50)
    r = rng_for(ctx, "scattered")
    old = randbytes(r, size)
    new = bytearray(old)
    for slot in r.sample(range(size // SCATTER_EDIT), nedits):
        off = slot * SCATTER_EDIT
        new[off:off + SCATTER_EDIT] = r.randbytes(SCATTER_EDIT)
    write_file(os.path.join(d, "old", "engine.bin"), old, BASE_MTIME)
    write_file(os.path.join(d, "new", "engine.bin"), bytes(new),
               BASE_MTIME + 86400)
    return dict(files=1, bytes=size, edits=nedits)


def gen_text(ctx, d):
    r = rng_for(ctx, "text")
    target = int(50e6 * ctx.scale)
    titles = ["Cumulative Update", "Security Update", "Servicing Stack Update",
              "Security Intelligence Update", "Update for Microsoft Office",
              "Cumulative Update for .NET Framework 3.5 and 4.8.1",
              "Dynamic Update", "Feature Update via Enablement Package"]
    recs, size, kb = [], 0, 4000000
    while size < target:
        kb += r.randint(1, 7)
        rec = [
            "KB%d" % kb,
            "20%02d-%02d-%02d" % (r.randint(16, 26), r.randint(1, 12),
                                  r.randint(1, 28)),
            r.choice(PRODUCTS), r.choice(ARCHS),
            "%s for %s (KB%d)" % (r.choice(titles), r.choice(PRODUCTS), kb),
            str(loguniform(r, KiB, 512 * MiB)),
            "%040x" % r.getrandbits(160),
            ",".join("KB%d" % (kb - r.randint(1, 90000))
                     for _ in range(r.randint(0, 6))),
        ]
        recs.append(rec)
        size += sum(len(x) for x in rec) + len(rec)

    def dump(rs):
        return "".join("\t".join(x) + "\n" for x in rs).encode()
    old = dump(recs)
    for i in r.sample(range(len(recs)), max(1, len(recs) // 100)):
        rec = list(recs[i])
        rec[1] = "2026-11-%02d" % r.randint(1, 28)
        rec[4] += r.choice([" (re-released)", " [expired]", "",
                            " - revised metadata"])
        rec[6] = "%040x" % r.getrandbits(160)
        rec[7] = ",".join(["KB%d" % r.randint(4000000, 5999999)
                           for _ in range(r.randint(0, 8))])
        recs[i] = rec
    new = dump(recs)
    write_file(os.path.join(d, "old", "wsusscn-index.txt"), old, BASE_MTIME)
    write_file(os.path.join(d, "new", "wsusscn-index.txt"), new,
               BASE_MTIME + 86400)
    return dict(files=1, bytes=len(new), records=len(recs))


def gen_small(ctx, d):
    n = scaled(ctx, 100000, 500)
    r = rng_for(ctx, "small")
    src, srv = os.path.join(d, "small"), os.path.join(d, "small-server")
    names, total = [], 0
    for i in range(n):
        p = "sig%02d/s%02d/f%06d.vdm" % (i // 5000, (i // 200) % 25, i)
        size = loguniform(r, 100, 8 * KiB)
        write_file(os.path.join(src, p), r.randbytes(size),
                   BASE_MTIME + i)
        names.append(p)
        total += size
    missing = set(r.sample(names, max(1, n // 100)))
    ctx.sh(["cp", "-a", src, srv])
    for p in missing:
        os.unlink(os.path.join(srv, p))
    return dict(files=n, bytes=total, missing=sorted(missing))


def gen_million(ctx, d):
    """1,000,000 small files (0.1-1 KiB) in 1,000 directories, for the
    no-op at SPEC 14's scale. Written with bare system calls: this is the
    slow part of the data set (about a minute per 100,000 files)."""
    n = scaled(ctx, 1000000, 2000)
    r = rng_for(ctx, "million")
    src = os.path.join(d, "small")
    total = 0
    per_dir = 1000
    for i in range(n):
        if i % per_dir == 0:
            sub = os.path.join(src, "v%03d" % (i // per_dir))
            os.makedirs(sub, exist_ok=True)
        size = loguniform(r, 100, KiB)
        path = os.path.join(sub, "f%07d.vdm" % i)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, r.randbytes(size))
        finally:
            os.close(fd)
        os.utime(path, (BASE_MTIME + i, BASE_MTIME + i))
        total += size
    return dict(files=n, bytes=total)


# name: (generator, scenarios that use it)
DATASETS = {
    "tree": (gen_tree, ["initial", "patch-tuesday", "fan-out",
                        "fan-out-64", "fan-out-growth"]),
    "definitions": (gen_definitions, ["definitions"]),
    "scattered": (gen_scattered, ["scattered"]),
    "text": (gen_text, ["definitions-text"]),
    "small": (gen_small, ["noop", "report"]),
    "million": (gen_million, ["noop-1m"]),
}


def dataset(ctx, work, name):
    """Make data set NAME under WORK/data/NAME unless it is there with the
    same settings; return its directory and metadata."""
    d = os.path.join(work, "data", name)
    stamp = "v%d seed=%d scale=%r" % (VERSION, ctx.opt["seed"], ctx.scale)
    mfile = os.path.join(d, "meta.json")
    try:
        with open(mfile) as f:
            meta = json.load(f)
        if meta.get("stamp") == stamp:
            return d, meta
    except (OSError, ValueError):
        pass
    ctx.log("making data set %s (%s) ..." % (name, stamp))
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    meta = DATASETS[name][0](ctx, d)
    meta["stamp"] = stamp
    with open(mfile, "w") as f:
        json.dump(meta, f)
    return d, meta
