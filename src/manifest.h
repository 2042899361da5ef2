/*
 * manifest.h — the block-checksum description of a directory tree
 * (SPEC section 7; format in man/patchsync-manifest.5).
 */
#ifndef PS_MANIFEST_H
#define PS_MANIFEST_H

#include <stdint.h>
#include <sys/types.h>

#include "ps.h"

enum ps_ftype {
	PS_FT_FILE = 'f',
	PS_FT_DIR = 'd'
};

/* Per-block checksums: block size is 1 << block_shift, within these. */
#define PS_BLOCK_SHIFT_MIN 12	/* 4 KiB */
#define PS_BLOCK_SHIFT_MAX 20	/* 1 MiB */

/*
 * The permission bits a receiver gives what it writes: never the set-id
 * or sticky bits (a patch is data). Modes compare on these alone, or a
 * set-id file would be "changed" at every push.
 */
#define PS_MODE_APPLIED 0777u

struct ps_entry {
	char *path;		/* NUL-terminated; holds no NUL itself */
	uint32_t path_len;	/* bytes in path, without the NUL */
	uint8_t type;		/* enum ps_ftype */
	uint8_t block_shift;	/* files: log2 of block size; dirs: 0 */
	uint32_t mode;		/* permission bits, & 07777 */
	uint64_t size;		/* files: bytes; dirs: 0 */
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint8_t hash[16];	/* XXH3-128 of the content, canonical form */
	uint64_t nblocks;	/* ceil(size / block size) */
	uint64_t *blocks;	/* XXH3-64 of each block, host order; NULL
				   when the entry carries no block sums */
	uint32_t *weak;		/* rolling weak sum of each block (match.h),
				   or NULL */
	/* Local identity, kept only in cache manifests (PS_MF_LOCAL). */
	uint64_t dev;
	uint64_t ino;
	int64_t ctime_sec;
	uint32_t ctime_nsec;
};

/* Manifest flags (stored in the header). */
#define PS_MF_LOCAL 0x1		/* entries carry dev, ino and ctime */

/* Which block sums a build computes (and an entry carries). */
#define PS_SUMS_STRONG	0x1	/* XXH3-64 of each block */
#define PS_SUMS_WEAK	0x2	/* and the rolling weak sum (a basis) */

/*
 * Files of fewer bytes travel whole, so their sums are left out of a
 * manifest sent to the peer; files of more blocks than this carry none
 * (over a TiB at 1 MiB blocks).
 */
#define PS_SUMS_MIN_SIZE	(32u << 10)
#define PS_SUMS_MAX_BLOCKS	(UINT32_C(1) << 20)
/* The longest encoded entry. */
#define PS_MF_ENTRY_MAX	(64 + PS_PATH_MAX + 12 * (size_t)PS_SUMS_MAX_BLOCKS)

struct ps_manifest {
	struct ps_entry *e;	/* sorted by path bytes, unique */
	size_t n;
	size_t cap;
	uint32_t flags;
	/*
	 * Byproducts of a build, never encoded: paths that could not be read
	 * (a file, or a directory and so everything below it), sorted; and
	 * hidden temporaries (PS_TMP_PREFIX) found, which are not entries.
	 */
	char **unreadable;
	size_t nunreadable;
	char **temps;
	size_t ntemps;
};

/*
 * Is PATH (LEN bytes) one of M's unreadable paths or below one of them?
 * Such a path's real state is unknown: it must be neither sent nor
 * deleted.
 */
int ps_manifest_unknown(const struct ps_manifest *m, const char *path,
    size_t len);

/* Block shift (log2 of block size) used for a file of SIZE bytes. */
unsigned ps_block_shift_for(uint64_t size);

struct ps_mfin;

struct ps_build_opts {
	int threads;		/* hashing threads; 0: number of CPUs */
	/* An earlier PS_MF_LOCAL manifest, or NULL. */
	const struct ps_manifest *cache;
	struct ps_mfin *cache_in;	/* or the same, read as a stream */
	int checksum;		/* 1: read every file even when cached */
	const char *label;	/* named before paths in messages, or NULL */
	int sums;		/* PS_SUMS_*: 0 means PS_SUMS_STRONG */
	uint64_t sums_min;	/* files smaller than this go without */
};

/*
 * Build the manifest of directory DIR into OUT (which gets PS_MF_LOCAL).
 * Symlinks, devices, sockets and fifos are skipped with a warning naming
 * them; hidden temporaries of an interrupted push are listed in
 * OUT->temps. Returns PS_OK; PS_EPARTIAL when some file or directory
 * could not be read (each is named in an error line, as LABEL/PATH when
 * a label is given, and listed in OUT->unreadable; OUT holds the rest);
 * PS_EUSAGE when DIR is not a readable directory.
 */
int ps_manifest_build(const char *dir, const struct ps_build_opts *opts,
    struct ps_manifest *out);

/* As ps_manifest_build, for the directory open at DIRFD (not closed). */
int ps_manifest_buildat(int dirfd, const struct ps_build_opts *opts,
    struct ps_manifest *out);

/*
 * Hash the open regular file FD from its start: E->size must be set; fills
 * block_shift, nblocks, blocks (and weak, with PS_SUMS_WEAK in SUMS) and
 * hash. Returns 0, or -1 with errno set (ESTALE when the file is not
 * E->size bytes long).
 */
int ps_hash_fd(int fd, struct ps_entry *e);
int ps_hash_fd_sums(int fd, struct ps_entry *e, int sums);

/* Remove the entry for PATH, if there is one. */
void ps_manifest_remove(struct ps_manifest *m, const char *path, size_t len);

/*
 * Insert *E in path order, replacing an entry for the same path. M takes
 * over what E points to; *E is zeroed.
 */
void ps_manifest_put(struct ps_manifest *m, struct ps_entry *e);

/* How to encode (PS_ENC_*). */
#define PS_ENC_LOCAL	0x1	/* keep dev, ino and ctime (a cache) */
#define PS_ENC_WIRE	0x2	/* sums only for files of PS_SUMS_MIN_SIZE
				   bytes or more */
#define PS_ENC_NOSUMS	0x4	/* no block sums at all (asked for later) */

/*
 * Serialise M (version 2 of patchsync-manifest(5)). With PS_ENC_LOCAL
 * (and M having PS_MF_LOCAL) the dev, ino and ctime fields are kept;
 * otherwise the portable form is written.
 */
void ps_manifest_encode(const struct ps_manifest *m, int how,
    struct buf *out);

/*
 * The same, an entry at a time: begin appends the header to OUT, add an
 * entry (in order), end the end marker and trailer. The caller may take
 * (and empty) OUT between calls. FLAGS are the manifest's own (a
 * PS_MF_LOCAL manifest), HOW as above.
 */
struct ps_mfw {
	struct buf *out;
	void *st;		/* XXH3 state */
	size_t start;		/* bytes of OUT not hashed yet start here */
	uint64_t count;
	uint32_t flags;
	int how;
};
void ps_mfw_begin(struct ps_mfw *w, uint32_t flags, int how,
    struct buf *out);
void ps_mfw_add(struct ps_mfw *w, const struct ps_entry *e);
/* An entry already encoded, as ps_mfin_raw gives it. */
void ps_mfw_add_raw(struct ps_mfw *w, const unsigned char *p, size_t n);
void ps_mfw_end(struct ps_mfw *w);

/*
 * Parse LEN bytes at P (version 2, or version 1, whose entries are sorted
 * again in today's order). Returns 0, or -1 with a one-line reason in
 * ERR when the data is not a complete, intact manifest of a known
 * version. Nothing of a refused manifest is kept.
 */
int ps_manifest_decode(const void *p, size_t len, struct ps_manifest *out,
    char *err, size_t errlen);

/*
 * A streaming reader of version 2: feed bytes in any pieces; each entry,
 * checked as ps_manifest_decode checks it, goes to CB, which owns it (its
 * path and arrays) from then on, and returns 0 to go on. Memory is at
 * most one entry beyond what was fed. ps_mfr_feed returns 0, -1 for bad
 * data (ps_mfr_error says why) or CB's nonzero; ps_mfr_done returns 0
 * when the manifest was complete and intact.
 */
struct ps_mfr;
struct ps_mfr *ps_mfr_new(void);
int ps_mfr_feed(struct ps_mfr *r, const void *p, size_t n,
    int (*cb)(struct ps_entry *e, void *arg), void *arg);
int ps_mfr_done(struct ps_mfr *r);
uint32_t ps_mfr_flags(const struct ps_mfr *r);
const char *ps_mfr_error(const struct ps_mfr *r);
void ps_mfr_free(struct ps_mfr *r);

/*
 * A manifest read as a stream, an entry at a time (pull). RD fills BUF
 * with up to N bytes and returns the count, 0 at the end, or -1 (errno
 * set). ps_mfin_next returns the next entry, which stays the reader's
 * until the next call (copy what must be kept), or NULL at the end or on
 * an error (then ps_mfin_failed is nonzero and ps_mfin_error says why).
 * Memory: one read's worth of entries.
 */
typedef ssize_t (*ps_mfin_read_fn)(void *arg, void *buf, size_t n);
struct ps_mfin *ps_mfin_new(ps_mfin_read_fn rd, void *arg);
/* Over an open file, read from its current offset. */
struct ps_mfin *ps_mfin_fd(int fd);
const struct ps_entry *ps_mfin_next(struct ps_mfin *in);
int ps_mfin_failed(const struct ps_mfin *in);
const char *ps_mfin_error(const struct ps_mfin *in);
uint32_t ps_mfin_flags(const struct ps_mfin *in);
void ps_mfin_free(struct ps_mfin *in);

/*
 * Entries in manifest order from anywhere: NEXT returns the next entry,
 * which stays valid until the following call, or NULL at the end.
 */
struct ps_eiter {
	const struct ps_entry *(*next)(void *arg);
	void *arg;
};

/* The entries of the array manifest M (A holds the position). */
struct ps_arr_pos {
	const struct ps_manifest *m;
	size_t i;
};
void ps_eiter_array(struct ps_eiter *it, struct ps_arr_pos *a,
    const struct ps_manifest *m);
/* The entries of the stream IN. */
void ps_eiter_mfin(struct ps_eiter *it, struct ps_mfin *in);

/*
 * A manifest file read from offset 0 with pread(), so that several
 * readers can share one descriptor (FD is not closed by ps_mfin_free).
 */
struct ps_mfin *ps_mfin_pread(int fd);

/*
 * The same, for copying entries as they are: entries come without their
 * block sums (blocks and weak NULL), and ps_mfin_raw gives the encoded
 * bytes of the entry ps_mfin_next returned last (valid until the next
 * call), for ps_mfw_add_raw into a manifest with the same flags.
 */
struct ps_mfin *ps_mfin_pread_raw(int fd);

/* Files smaller than MIN come without their block sums (before reading). */
void ps_mfin_sums_min(struct ps_mfin *in, uint64_t min);
const unsigned char *ps_mfin_raw(const struct ps_mfin *in, size_t *len);

/* A deep copy of SRC into DST (path and sums); free with ps_entry_free. */
void ps_entry_copy(struct ps_entry *dst, const struct ps_entry *src);
void ps_entry_free(struct ps_entry *e);

/*
 * Read FILE ("-" for stdin) and decode it. Prints the error; returns a
 * ps_result.
 */
int ps_manifest_load(const char *file, struct ps_manifest *out);

/* Write M to FILE atomically (temporary + rename), or stdout for "-"/NULL. */
int ps_manifest_save(const char *file, const struct ps_manifest *m, int how);

void ps_manifest_free(struct ps_manifest *m);

/* Binary search by path bytes; NULL when absent. */
const struct ps_entry *ps_manifest_find(const struct ps_manifest *m,
    const char *path, size_t len);

/*
 * Order of two paths, as the manifest sorts them: bytes, with '/' below
 * every other byte (component by component: a depth-first walk's order).
 */
int ps_path_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* Same content: equal size and equal XXH3-128. */
int ps_entry_same_content(const struct ps_entry *a, const struct ps_entry *b);

enum ps_diff_state {
	PS_D_MISSING,		/* in OLD only */
	PS_D_OUTDATED,		/* in both, content differs */
	PS_D_EXTRA		/* in NEW only */
};

/*
 * Walk the regular files of OLD and NEW in path order and call CB for each
 * that is missing from NEW, out of date in NEW, or (with EXTRA set) only
 * in NEW. A file in one and a directory in the other counts as missing /
 * extra. Returns the number of callbacks made.
 */
size_t ps_manifest_diff(const struct ps_manifest *old,
    const struct ps_manifest *new, int extra,
    void (*cb)(enum ps_diff_state st, const struct ps_entry *o,
	const struct ps_entry *n, void *arg),
    void *arg);

/*
 * The same over two streams: the entries CB is given are valid only
 * during the call.
 */
size_t ps_manifest_diff_iter(struct ps_eiter *old, struct ps_eiter *new,
    int extra,
    void (*cb)(enum ps_diff_state st, const struct ps_entry *o,
	const struct ps_entry *n, void *arg),
    void *arg);

#endif
