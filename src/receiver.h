/*
 * receiver.h — the side of a session that receives files: the server for
 * a push, the console for a pull. It describes its tree (MANIFEST),
 * answers signature requests, writes each file to a hidden temporary,
 * verifies it against the sender's XXH3-128 and renames it into place.
 */
#ifndef PS_RECEIVER_H
#define PS_RECEIVER_H

#include <stdint.h>

#include "fsops.h"
#include "manifest.h"
#include "session.h"

struct ps_recv_stats {
	uint64_t files;		/* files put in place */
	uint64_t deleted;	/* files and directories removed */
	uint32_t errors;	/* files or deletions that failed */
	int worst;		/* worst ps_result of a failed file */
};

struct ps_recv_opts {
	const char *dest;	/* below ROOT; "" for ROOT itself */
	int dirfd;		/* ROOT/DEST, open (and locked) */
	uint32_t flags;		/* PS_OF_* of the OPEN */
	int report_only;	/* describe only, change nothing */
	int early;		/* files may come while we describe */
	/*
	 * A pull: the sender's manifest. A DELETE must name a path the
	 * sender does not have (and PS_OF_DELETE must be set).
	 */
	const struct ps_manifest *source;
	/*
	 * Where the manifest cache of ROOT/DEST lives: a directory opened
	 * by the caller (-1: none) and a file name in it. Never inside a
	 * destination (SPEC section 3).
	 */
	int cache_dirfd;
	const char *cache_name;
	int cache_writable;	/* 0: read the cache only (a report) */
	const char *label;	/* names ROOT/DEST in messages */
	/*
	 * Progress of a pull (atomics, or NULL): bytes and files to come,
	 * worked out from SOURCE while the tree is described, and done.
	 */
	uint64_t *progress_bytes, *progress_total;
	uint64_t *progress_files, *progress_nfiles;
};

/*
 * Serve one component after an OPEN: build and send the manifest of
 * ROOT/DEST (removing the hidden temporaries of an interrupted push
 * first, when pushing), then apply what the sender sends until DONE,
 * which is answered with DONEACK. File errors are counted in ST and
 * reported per file; the session goes on. Returns PS_OK, or the
 * session's failure (already said).
 */
int ps_receive(struct ps_sess *s, struct ps_root *root,
    const struct ps_recv_opts *o, struct ps_recv_stats *st);

/*
 * Build the manifest of the open directory DIRFD for a receiver: with its
 * cache (O's cache fields), LABEL in messages. Returns a ps_result.
 */
int ps_recv_describe(const struct ps_recv_opts *o, struct ps_manifest *m);

/*
 * Where the manifest cache of a destination lives when it has no
 * ROOT/.patchsync of its own (a directory push, a refresh into a console
 * directory): a directory of the account's cache ($XDG_CACHE_HOME or
 * ~/.cache, then patchsync/dest), opened into *CACHE_DIRFD (made when
 * CREATE), and a name keyed by the device and inode of the destination
 * open at DIRFD. Returns 0, or -1 when the account has no usable cache
 * directory (then there is no cache).
 */
int ps_recv_account_cache(int dirfd, int create, int *cache_dirfd,
    char **name);

#endif
