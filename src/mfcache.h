/*
 * mfcache.h — a manifest written as a stream into a cache file, beside
 * the one it replaces: while the new bytes equal the old ones nothing is
 * written at all (a tree that did not change costs one read of its
 * cache); from the first difference on, the old prefix and the rest go
 * into a temporary that is renamed over the old file at the end.
 */
#ifndef PS_MFCACHE_H
#define PS_MFCACHE_H

#include "manifest.h"

struct ps_cachew;

/*
 * Start writing the manifest cache NAME in the directory open at DIRFD.
 * OLDFD is the file now there (or -1), which the writer takes over. With
 * DIRFD -1 no cache is kept: the result is an unlinked temporary (in
 * $TMPDIR) unless it equals OLDFD's content. FLAGS and HOW as for
 * ps_mfw_begin (PS_MF_LOCAL, PS_ENC_LOCAL for a cache).
 */
struct ps_cachew *ps_cachew_open(int dirfd, const char *name, int oldfd,
    uint32_t flags, int how);

void ps_cachew_add(struct ps_cachew *c, const struct ps_entry *e);
/* An entry of a manifest with the same flags, as encoded there. */
void ps_cachew_add_raw(struct ps_cachew *c, const unsigned char *p,
    size_t n);

/*
 * End the manifest and put it in place. Returns a descriptor open on it
 * (read it with ps_mfin_pread), or -1 when it could not be written (an
 * error line says why, as "LABEL: ...", unless LABEL is NULL). Frees C.
 */
int ps_cachew_commit(struct ps_cachew *c, const char *label);

/* Give up: nothing changes on disk. Frees C. */
void ps_cachew_abort(struct ps_cachew *c);

/*
 * A cache's name comes from what it describes (a console directory's
 * path, a server directory's device and inode), so the cache of one that
 * is gone (renamed, made again) would stay for ever. ps_cache_used marks
 * the cache open at FD as used (its modification time, at most once a
 * day); ps_cache_prune removes from the cache directory open at DIRFD
 * the manifests (*.psm) not used for PS_CACHE_KEEP_DAYS and the
 * temporaries (*.psm.*) of writers gone for a day, looking at no more
 * than PS_CACHE_PRUNE_MAX entries, at most once a day (a file "pruned"
 * there says when).
 */
#define PS_CACHE_KEEP_DAYS	90
#define PS_CACHE_PRUNE_MAX	4096
void ps_cache_used(int fd);
void ps_cache_prune(int dirfd);

#endif
