/*
 * walk.h — a directory tree as a stream of manifest entries, in manifest
 * order (depth first, each directory's names sorted), hashed on several
 * threads, with an earlier manifest of the tree as a cache that is itself
 * read as a stream. Memory stays small whatever the tree's size: the
 * names of the directories being walked, and a bounded window of entries
 * being hashed.
 *
 * What cannot be read is said (one line each, as LABEL/PATH) and left out
 * of the stream; its paths are kept (ps_walk_close gives them back), and
 * so are the hidden temporaries of an interrupted push, which are not
 * entries either.
 */
#ifndef PS_WALK_H
#define PS_WALK_H

#include "manifest.h"

struct ps_walk;

/*
 * Walk the directory open at DIRFD (not closed; a duplicate is kept),
 * with O (threads, sums, checksum, label, and the cache: O->cache, an
 * array, or O->cache_in, a stream). Returns PS_OK, or PS_EPARTIAL when
 * the descriptor cannot be duplicated.
 */
int ps_walk_open(int dirfd, const struct ps_build_opts *o,
    struct ps_walk **w);

/*
 * The next entry, or NULL at the end. It stays the walk's until the next
 * call: copy what must be kept (ps_entry_copy).
 */
const struct ps_entry *ps_walk_next(struct ps_walk *w);

/*
 * End the walk. The paths that could not be read (sorted) and the
 * temporaries found go into BYPRODUCTS (its unreadable and temps fields;
 * may be NULL). Returns PS_OK, or PS_EPARTIAL when something could not
 * be read.
 */
int ps_walk_close(struct ps_walk *w, struct ps_manifest *byproducts);

#endif
