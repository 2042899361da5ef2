"""Is a server copy exactly the console's? Both trees are walked in the
same order, side by side, so memory stays small at a million files."""
import os

from .util import MiB


def entries(root, key=(), rel=""):
    """(key, relpath, kind, stat) for everything below ROOT except
    ROOT/.patchsync, depth first, each directory's names sorted: two
    trees yield in the same order (by KEY, the tuple of components)."""
    with os.scandir(os.path.join(root, rel)) as it:
        names = sorted((de.name, de) for de in it)
    for name, de in names:
        if not rel and name == ".patchsync":
            continue
        p = rel + "/" + name if rel else name
        k = key + (name,)
        st = de.stat(follow_symlinks=False)
        if de.is_dir(follow_symlinks=False):
            yield k, p, "dir", st
            yield from entries(root, k, p)
        elif de.is_file(follow_symlinks=False):
            yield k, p, "file", st
        else:
            yield k, p, "other", st


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MiB), fb.read(MiB)
            if x != y:
                return False
            if not x:
                return True


def verify(src, dst, known=None, since=None):
    """None when DST holds exactly SRC's files and bytes, a list of notes
    (mtime or mode not kept) when only those differ, else a string: why
    not. KNOWN maps (dev, ino) of files known to hold the console's
    bytes for a path (the untouched hard links of a prepared server
    copy) to that path: those are not read again. SINCE (a time in ns):
    server files whose inode did not change since then (ctime) are
    known to be the reset copy's, which held the console's bytes; only
    their metadata is compared."""
    known = known or {}
    a, b = entries(src), entries(dst)
    extra, missing, notes = [0, None], [0, None], []
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[0] < y[0]):
            missing = [missing[0] + 1, missing[1] or x[1]]
            x = next(a, None)
            continue
        if x is None or y[0] < x[0]:
            extra = [extra[0] + 1, extra[1] or y[1]]
            y = next(b, None)
            continue
        _, p, ka, sa = x
        _, _, kb, sb = y
        x, y = next(a, None), next(b, None)
        if ka != kb:
            return "%s is a %s on the console, a %s on the server" % (
                p, ka, kb)
        if ka != "file":
            continue
        if sa.st_size != sb.st_size:
            return "%s: size %d, server %d" % (p, sa.st_size, sb.st_size)
        untouched = since is not None and sb.st_ctime_ns < since
        if known.get((sb.st_dev, sb.st_ino)) != p and not untouched and \
                not same_bytes(os.path.join(src, p), os.path.join(dst, p)):
            return "%s: content differs" % p
        if int(sa.st_mtime) != int(sb.st_mtime) and len(notes) < 1:
            notes.append("mtime of %s not kept" % p)
        if (sa.st_mode & 0o7777) != (sb.st_mode & 0o7777) and \
                len(notes) < 2:
            notes.append("mode of %s not kept" % p)
    if extra[0]:
        return "%d extra on the server, e.g. %s" % tuple(extra)
    if missing[0]:
        return "%d missing on the server, e.g. %s" % tuple(missing)
    return notes or None


def walk_files(root):
    """{relpath: stat} of the regular files below ROOT."""
    return {p: st for _, p, kind, st in entries(root) if kind == "file"}
