/*
 * bundle.h — offline bundles (SPEC section 13; the format is
 * patchsync-bundle(5)): one pax tar, zstd-compressed, that carries an
 * update to a distribution server the console cannot reach.
 *
 *   patchsync-bundle.jsonl   the index: what the bundle is and, one line
 *                            each, every member that follows, in order
 *   manifests/K.psm          component K's console manifest (no sums)
 *   files/DEST/PATH          a file the server lacks or holds otherwise
 *   deltas/DEST/PATH         a librsync delta against the server's copy
 *
 * Three layers: the index (bundle_index.c: pure, every field bounded,
 * unit-tested), the archive (bundle_archive.c: libarchive, streamed both
 * ways, interruptible) and the two ends (bundle_create.c on the
 * console, bundle_apply.c on the server, which also verifies).
 */
#ifndef PS_BUNDLE_H
#define PS_BUNDLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "manifest.h"
#include "ps.h"

#define PS_BUNDLE_FORMAT	"patchsync-bundle"
#define PS_BUNDLE_VERSION	1
#define PS_BUNDLE_INDEX		"patchsync-bundle.jsonl"

/* Bounds on what an index may say (it comes from an untrusted file). */
#define PS_BUNDLE_MAX_COMPONENTS	256
#define PS_BUNDLE_MAX_MEMBERS		(UINT32_C(1) << 22)
#define PS_BUNDLE_LINE_MAX		(64u << 10)	/* one index line */
#define PS_BUNDLE_NAME_MAX		255		/* console, component */
#define PS_BUNDLE_SIZE_MAX		(UINT64_C(1) << 62)	/* a member */

enum ps_bkind {
	PS_BK_MANIFEST = 1,	/* a component's console manifest */
	PS_BK_FILE = 2,		/* a file, whole */
	PS_BK_DELTA = 3		/* a librsync delta against the server's */
};

struct ps_bcomp {
	char *name;		/* component name, or NULL (a directory) */
	char *dest;		/* "" (ROOT itself) or a safe relative path */
	int have_against;	/* made against a server state (not --full) */
	uint8_t against[16];	/* ps_bundle_state() of that state */
};

struct ps_bmember {
	uint8_t kind;		/* enum ps_bkind */
	uint32_t comp;		/* index into the components */
	char *path;		/* below DEST (files, deltas); else NULL */
	uint32_t path_len;
	uint64_t size;		/* bytes of the member */
	uint8_t hash[16];	/* their XXH3-128 (canonical form) */
	/* Deltas: the server file it applies to, and what it makes. */
	uint64_t basis_size;
	uint8_t basis_hash[16];
	uint64_t target_size;
	uint8_t target_hash[16];
};

struct ps_bindex {
	uint32_t version;
	char *console;
	int64_t created;	/* seconds since the epoch */
	int full;		/* --full: needs nothing on the server */
	struct ps_bcomp *comp;
	size_t ncomp;
	struct ps_bmember *m;	/* in archive order */
	size_t nm;		/* members read (or added) so far */
	size_t nm_total;	/* members the header announces */
	size_t cap;
	/* The line reader's state (ps_bidx_feed). */
	struct buf line;
	int have_header;
};

void ps_bindex_free(struct ps_bindex *x);

/*
 * The archive name of member M of X (bytes, NUL-terminated, malloc'd;
 * its length in *LEN): manifests/K.psm, files/DEST/PATH, deltas/DEST/PATH
 * (without "DEST/" for a destination that is ROOT itself).
 */
char *ps_bundle_member_name(const struct ps_bindex *x,
    const struct ps_bmember *m, size_t *len);

/*
 * Is DEST acceptable as a bundle's destination among the N of DESTS:
 * "" only when alone, else a safe relative path (ps_path_ok) outside
 * ROOT/.patchsync, different from every other and neither inside nor
 * around one of them? Returns NULL, or a reason for a message.
 */
const char *ps_bundle_dest_problem(const char *const *dests, size_t n,
    size_t i);

/*
 * Index lines (JSON, one value a line; patchsync-bundle(5)). The header
 * describes X and its components and announces X->nm_total members; a
 * member line describes one member. Each returns a malloc'd line ending
 * in '\n'.
 */
char *ps_bidx_header_line(const struct ps_bindex *x);
char *ps_bidx_member_line(const struct ps_bindex *x,
    const struct ps_bmember *m);

/*
 * Append a member to X (the writer's side); takes M's path.
 */
void ps_bidx_add(struct ps_bindex *x, struct ps_bmember *m);

/*
 * The reader's side: feed the index member's bytes in any pieces. Each
 * complete line is parsed and checked against everything before it:
 * the header first (known format and version, bounded strings, valid
 * destinations, a bounded member count), then the members in archive
 * order (one manifest per component, in component order, first; then
 * each component's files and deltas with paths in strictly increasing
 * manifest order; names as ps_bundle_member_name makes them; sizes and
 * hashes well formed). Returns 0, or -1 with a one-line reason in ERR.
 * ps_bidx_end returns 0 when the index was complete (every announced
 * member, nothing after them).
 */
int ps_bidx_feed(struct ps_bindex *x, const void *p, size_t n, char *err,
    size_t errlen);
int ps_bidx_end(struct ps_bindex *x, char *err, size_t errlen);

/*
 * A server state, for the index and `bundle show`: XXH3-128 over the
 * entries of M in order: path bytes, a NUL, the type byte, and for files
 * the size (8 bytes, little-endian) and the content hash. Modes and
 * times are left out: they do not change what a delta applies to.
 */
void ps_bundle_state(const struct ps_manifest *m, uint8_t out[16]);

/* ---- XXH3-128 of a stream, as manifests hash content ---- */

struct ps_h128 {
	void *st;		/* XXH3 state */
};

void ps_h128_init(struct ps_h128 *h);
void ps_h128_update(struct ps_h128 *h, const void *p, size_t n);
/* The canonical digest into OUT; frees the state. */
void ps_h128_final(struct ps_h128 *h, uint8_t out[16]);
/* XXH3-128 of the open file FD from its start: 0, or -1 (errno). */
int ps_h128_fd(int fd, uint64_t *size, uint8_t out[16]);

/* ---- the archive (bundle_archive.c) ---- */

/*
 * The writer: a pax tar through libarchive's zstd filter, written to FD
 * (not closed). Members are added one at a time: a header with the size
 * announced, then exactly that many bytes. Every function returns a
 * ps_result: PS_EPARTIAL for a write error (said once), PS_EINTR when
 * interrupted (ps_intr_signal).
 */
struct ps_bw;
int ps_bw_open(int fd, const char *label, struct ps_bw **out);
int ps_bw_member(struct ps_bw *w, const char *name, size_t name_len,
    uint64_t size, int64_t mtime);
int ps_bw_data(struct ps_bw *w, const void *p, size_t n);
int ps_bw_close(struct ps_bw *w);	/* ends the archive, frees W */
void ps_bw_abort(struct ps_bw *w);	/* frees W */

/*
 * The version of the libarchive bundles use (archive_version_number), or
 * -1 when it cannot be loaded (dynlib.h).
 */
long ps_bundle_libarchive_version(void);

/*
 * The reader: a tar, zstd-compressed or not, from FD (a file or a pipe;
 * not closed; an interruption ends a wait for data). ps_br_next gives
 * the next member's name and size, and refuses (PS_EVERIFY, said) any
 * member that is not a regular file (links, devices, directories...),
 * sparse files and names with NUL bytes; at the end it returns PS_OK
 * with *NAME NULL. ps_br_read reads the member's data: the count, 0 at
 * its end, or -1 (said: a truncated or damaged archive, PS_EVERIFY; or
 * PS_EINTR) with *RC set.
 */
struct ps_br;
int ps_br_open(int fd, const char *label, struct ps_br **out);
int ps_br_next(struct ps_br *r, const char **name, size_t *name_len,
    uint64_t *size);
ssize_t ps_br_read(struct ps_br *r, void *buf, size_t n, int *rc);
uint64_t ps_br_bytes(struct ps_br *r);	/* archive bytes read so far */
void ps_br_close(struct ps_br *r);

/* ---- the console's side (bundle_create.c) ---- */

/* One component to bundle. */
struct ps_bundle_src {
	const char *name;	/* component name, or NULL (SRC_DIR) */
	const char *dest;	/* "" for SRC_DIR */
	const char *path;	/* the console directory */
	struct ps_manifest against;	/* the server's ROOT/DEST (paths
					   below DEST), when have_against */
	int have_against;
};

struct ps_bundle_create_opts {
	const char *output;	/* the bundle file, or "-" for stdout */
	const char *console;	/* the console's name */
	struct ps_bundle_src *src;
	size_t nsrc;
	int full;		/* every file whole, no server state */
	const char *cache_dir;	/* the console's manifest cache, or NULL */
	int checksum;		/* read every console file again */
};

struct ps_bundle_create_stats {
	uint64_t files;		/* whole files */
	uint64_t deltas;
	uint64_t file_bytes;	/* bytes of whole files */
	uint64_t delta_bytes;	/* bytes of deltas */
	uint64_t delta_target;	/* bytes the deltas make */
	uint64_t current;	/* console files the server has already */
};

/*
 * Scan the console directories, plan every member against the server
 * state (deltas with the block matcher where the server's copy has block
 * sums and a delta is smaller than the file) and write the bundle:
 * atomically (a temporary beside O->output, renamed when complete), or
 * to standard output. Returns a ps_result: PS_EUSAGE for bad arguments,
 * PS_EPARTIAL when a console file cannot be read or changed while it was
 * read (no bundle is written), PS_EINTR.
 */
int ps_bundle_create(const struct ps_bundle_create_opts *o,
    struct ps_bundle_create_stats *st);

/*
 * The server state for --against SERVER|URL: one report session to URL
 * (through RSH, with REMOTE_PATH and TIMEOUT as push takes them), the
 * manifest of each SRC[i].dest read live into SRC[i].against. Returns
 * PS_OK, PS_EPEER (unreachable, said), PS_EUSAGE or PS_EINTR.
 */
int ps_bundle_fetch_against(const char *label, const char *url,
    const char *rsh, const char *remote_path, unsigned timeout,
    struct ps_bundle_src *src, size_t nsrc);

/*
 * The server state from a manifest file M (from `manifest build`): of
 * ROOT/DEST when there is one component (SPLIT 0), of ROOT when there
 * are several (SPLIT 1: entries DEST/PATH go to that component as
 * PATH). M's entries are moved out.
 */
void ps_bundle_split_against(struct ps_manifest *m, int split,
    struct ps_bundle_src *src, size_t nsrc);

/* ---- the server's side (bundle_apply.c) ---- */

struct ps_bundle_apply_opts {
	const char *file;	/* the bundle, or "-" for stdin */
	const char *root;	/* NULL: verify only */
	int delete;		/* remove what the console does not have */
	int dry_run;
	FILE *itemize;		/* -i (and -n): one line per change */
};

struct ps_bundle_apply_result {
	uint64_t files;		/* files put in place */
	uint64_t skipped;	/* carried, but already current */
	uint64_t deleted;
	uint64_t meta;		/* mode or time set only */
	uint64_t members;	/* members read and verified */
	uint64_t bytes_read;	/* archive bytes */
	double seconds;
	char *error;		/* the failure, one line, or NULL */
};

/*
 * Verify (O->root NULL) or apply a bundle. Everything is read and
 * checked before anything is renamed into place: the index, each
 * manifest, each member's XXH3-128, the server's copy under each delta,
 * each new file's XXH3-128; a failure removes every temporary. Returns
 * a ps_result: PS_EVERIFY for a bundle that is damaged, tampered with,
 * or made against another server state; PS_EUSAGE for a FILE that
 * cannot be opened or a refused --delete; PS_EPEER for a ROOT that
 * does not exist; PS_EPARTIAL when a file could not be written;
 * PS_EINTR.
 */
int ps_bundle_apply(const struct ps_bundle_apply_opts *o,
    struct ps_bundle_apply_result *r);

/*
 * Read only the index of bundle FILE into X. Returns a ps_result (said).
 */
int ps_bundle_read_index(const char *file, struct ps_bindex *x);

/* Open a bundle FILE ("-": stdin) for reading. A ps_result (said). */
int ps_bundle_open_file(const char *file, int *fd);

#endif
