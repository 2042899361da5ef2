/*
 * delta.h — how a changed file travels: which parts the server already
 * has (COPY, found from the two manifests' aligned block checksums),
 * which parts go as librsync deltas against a region of the old file
 * (DELTA), and which go whole (LITERAL). Pure computation over file
 * descriptors: no networking, no protocol.
 *
 * Who runs what, for one DELTA op:
 *   server (has the old file)  ps_sig_region()  -> signature bytes
 *   console (has the new file) ps_delta_region() -> delta bytes
 *   server                     ps_patch_begin/feed/end() -> writes output
 * COPY ops run on the server with ps_copy_range(); LITERAL bytes are
 * written as they come.
 *
 * Results are enum ps_result values: PS_EPEER for data from the peer that
 * is not a valid signature or delta (or a delta that does not fit its
 * region and length), PS_EPARTIAL for a local read or write error (errno
 * kept), PS_EUSAGE for bad arguments. Nothing here prints except through
 * ps_info (librsync's own messages, at -vv).
 */
#ifndef PS_DELTA_H
#define PS_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "manifest.h"
#include "ps.h"

enum ps_op_kind {
	PS_OP_COPY = 1,		/* bytes the basis holds at basis_off */
	PS_OP_DELTA = 2,	/* librsync delta against a basis region */
	PS_OP_LITERAL = 3	/* send the bytes whole */
};

struct ps_plan_op {
	uint64_t target_off;	/* where the bytes go in the new file */
	uint64_t len;		/* bytes of the new file this op makes */
	uint64_t basis_off;	/* COPY: source; DELTA: region start */
	uint64_t basis_len;	/* DELTA: region length; else 0 */
	uint32_t sig_block_len;	/* DELTA: signature block length to use */
	uint8_t kind;		/* enum ps_op_kind */
};

/* Ops in target order; they cover [0, target size) exactly, no gaps. */
struct ps_plan {
	struct ps_plan_op *ops;
	size_t n;
	uint64_t copy_bytes;	/* sum of COPY lengths */
	uint64_t delta_bytes;	/* sum of DELTA lengths (target side) */
	uint64_t literal_bytes;	/* sum of LITERAL lengths */
	uint64_t region_bytes;	/* sum of DELTA basis_len (signed work) */
};

/*
 * Long dirty runs are cut into block-aligned pieces so that signature,
 * delta and patch work spreads over cores (and pipelines over the link):
 * at most PIECES pieces, none shorter than PS_PIECE_MIN, but always at
 * least enough that none is longer than PS_PIECE_MAX.
 */
#define PS_PIECE_MIN	(UINT64_C(4) << 20)
#define PS_PIECE_MAX	(UINT64_C(32) << 20)

/*
 * Plan how to make TARGET (the console's entry, new content) on a server
 * that holds BASIS (its old content; NULL when it has none). PIECES is the
 * number of cores to spread work over (0 counts as 1). Both entries must
 * carry their block checksums; when they do not agree on the block size
 * (or one's checksum array does not match its size) nothing is copied and
 * the whole file is one dirty run. Returns PS_OK, filling PLAN (free with
 * ps_plan_free).
 */
int ps_delta_plan(const struct ps_entry *basis, const struct ps_entry *target,
    unsigned pieces, struct ps_plan *plan);
void ps_plan_free(struct ps_plan *plan);

/* Limits on signatures accepted from a peer (and made here). */
#define PS_SIG_BLOCK_MIN	256u
#define PS_SIG_BLOCK_MAX	(64u << 10)
#define PS_SIG_MAX_BLOCKS	(UINT32_C(1) << 22)

/*
 * Signature block length for a dirty run of RUN_LEN bytes (all pieces of a
 * run share it): the power of two nearest sqrt(RUN_LEN) / 16, within
 * 512 B..16 KiB. Small blocks keep scattered small edits cheap (a 50 MB
 * text with 1 % of its records edited: 512 B sends 6 MB, 2 KiB 16 MB,
 * 8 KiB 38 MB) and even speed the delta up (fewer literal bytes to roll
 * over); the price is a signature of about 2.2 % of the region at 512 B.
 * A power of two divides the manifest's block size, so signature blocks
 * line up with the target where nothing moved.
 */
uint32_t ps_sig_block_len(uint64_t run_len);

/*
 * Append to SIG_OUT the librsync signature (RabinKarp + BLAKE2, minimum
 * safe strong sum) of bytes [OFF, OFF+LEN) of FD, in blocks of BLOCK_LEN
 * (0: ps_sig_block_len(LEN)). Reads with pread. PS_EPARTIAL when the file
 * is shorter than OFF+LEN or cannot be read.
 */
int ps_sig_region(int fd, uint64_t off, uint64_t len, uint32_t block_len,
    struct buf *sig_out);

/*
 * Size in bytes of the signature ps_sig_region makes for LEN bytes in
 * blocks of BLOCK_LEN (for budgeting; 0 on bad arguments).
 */
uint64_t ps_sig_size(uint64_t len, uint32_t block_len);

/*
 * Check SIGLEN bytes at SIG as a signature this module accepts: the
 * RabinKarp+BLAKE2 magic, block length within PS_SIG_BLOCK_MIN..MAX,
 * strong sum 4..32 bytes, a whole number of blocks, at most
 * PS_SIG_MAX_BLOCKS. Returns PS_OK or PS_EPEER.
 */
int ps_sig_check(const void *sig, size_t siglen);

/*
 * Compute the delta of bytes [OFF, OFF+LEN) of FD against signature SIG
 * (from ps_sig_region on the peer) and pass it to EMIT in chunks of at
 * most 1 MiB. A nonzero return from EMIT stops the work and is returned.
 * Returns PS_OK, PS_EPEER for a signature that fails ps_sig_check,
 * PS_EPARTIAL when FD cannot be read for the whole range.
 */
int ps_delta_region(const void *sig, size_t siglen, int fd, uint64_t off,
    uint64_t len, int (*emit)(const void *p, size_t n, void *arg), void *arg);

/*
 * Streaming patcher: applies delta bytes, fed in any pieces, against the
 * region [BASIS_OFF, BASIS_OFF+BASIS_LEN) of BASIS_FD, writing the result
 * with pwrite at OUT_OFF.. of OUT_FD. Exactly EXPECT_LEN bytes must come
 * out. A COPY outside the region, a malformed delta, more output than
 * EXPECT_LEN or data after the delta's end make feed/end fail with
 * PS_EPEER; local I/O errors give PS_EPARTIAL. After a failure, further
 * feeds return the same error. ps_patch_end and ps_patch_abort free P.
 */
struct ps_patch;

struct ps_patch *ps_patch_begin(int basis_fd, uint64_t basis_off,
    uint64_t basis_len, int out_fd, uint64_t out_off, uint64_t expect_len);
int ps_patch_feed(struct ps_patch *p, const void *data, size_t n);
int ps_patch_end(struct ps_patch *p);
void ps_patch_abort(struct ps_patch *p);

/*
 * Copy LEN bytes from BASIS_OFF of BASIS_FD to OUT_OFF of OUT_FD
 * (copy_file_range where the kernel allows, else pread/pwrite).
 * PS_EPARTIAL when the basis is shorter or I/O fails.
 */
int ps_copy_range(int basis_fd, uint64_t basis_off, int out_fd,
    uint64_t out_off, uint64_t len);

/*
 * Route librsync's log lines to ps_info(2, ...) instead of stderr. Call
 * once, before threads start.
 */
void ps_delta_init(void);

#endif
