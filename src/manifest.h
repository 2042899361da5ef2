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
	uint64_t *blocks;	/* XXH3-64 of each block, host order */
	/* Local identity, kept only in cache manifests (PS_MF_LOCAL). */
	uint64_t dev;
	uint64_t ino;
	int64_t ctime_sec;
	uint32_t ctime_nsec;
};

/* Manifest flags (stored in the header). */
#define PS_MF_LOCAL 0x1		/* entries carry dev, ino and ctime */

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

struct ps_build_opts {
	int threads;		/* hashing threads; 0: number of CPUs */
	const struct ps_manifest *cache;	/* earlier PS_MF_LOCAL manifest or NULL */
	int checksum;		/* 1: read every file even when cached */
	const char *label;	/* named before paths in messages, or NULL */
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
 * block_shift, nblocks, blocks and hash. Returns 0, or -1 with errno set
 * (ESTALE when the file is not E->size bytes long).
 */
int ps_hash_fd(int fd, struct ps_entry *e);

/* Remove the entry for PATH, if there is one. */
void ps_manifest_remove(struct ps_manifest *m, const char *path, size_t len);

/*
 * Insert *E in path order, replacing an entry for the same path. M takes
 * over what E points to; *E is zeroed.
 */
void ps_manifest_put(struct ps_manifest *m, struct ps_entry *e);

/*
 * Serialise M. With LOCAL set (and M having PS_MF_LOCAL) the dev, ino and
 * ctime fields are kept; otherwise the portable form is written.
 */
void ps_manifest_encode(const struct ps_manifest *m, int local,
    struct buf *out);

/*
 * Parse LEN bytes at P. Returns 0, or -1 with a one-line reason in ERR
 * when the data is not a complete, intact manifest of a known version.
 * Nothing of a refused manifest is kept.
 */
int ps_manifest_decode(const void *p, size_t len, struct ps_manifest *out,
    char *err, size_t errlen);

/* Read FILE ("-" for stdin) and decode it. Prints the error; returns a ps_result. */
int ps_manifest_load(const char *file, struct ps_manifest *out);

/* Write M to FILE atomically (temporary + rename), or stdout for "-"/NULL. */
int ps_manifest_save(const char *file, const struct ps_manifest *m, int local);

void ps_manifest_free(struct ps_manifest *m);

/* Binary search by path bytes; NULL when absent. */
const struct ps_entry *ps_manifest_find(const struct ps_manifest *m,
    const char *path, size_t len);

/* Order of two paths, as the manifest sorts them (bytewise). */
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

#endif
