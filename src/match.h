/*
 * match.h — the block matcher of engine v2: per-block sums of a basis (a
 * rolling weak sum and XXH3-64 of every aligned block), an index over
 * them, and the search that finds which parts of a target the basis
 * already holds, unchanged, moved or shifted. Pure computation: no
 * protocol, no printing. The sender runs ps_match for pushes and offline
 * bundles; receivers and manifest builds compute the sums.
 *
 * Costs: sums run at memory speed (the weak sum in parallel lanes, XXH3
 * only once per block); the search reads the target once, rolls the weak
 * sum over data that does not match (a Bloom filter of at most 256 KiB
 * answers "no" for almost every position) and hashes with XXH3 only
 * where the weak sum is indexed. After a match it tries the next basis
 * block right behind it before rolling again, so content shifted by an
 * insertion costs hashing, not rolling.
 * No input makes it quadratic: identical blocks are indexed once, at most
 * PS_MATCH_CANDIDATES distinct blocks per weak sum are considered, and
 * strong sums that fail are rationed per target byte.
 *
 * Results are enum ps_result values: PS_EUSAGE for sums or arguments out
 * of bounds (the sums may come from a peer), PS_EPARTIAL for read errors
 * (errno kept).
 */
#ifndef PS_MATCH_H
#define PS_MATCH_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include "ps.h"

/* Block lengths the matcher accepts (any length between, not only 2^k). */
#define PS_MATCH_BLOCK_MIN	64u
#define PS_MATCH_BLOCK_MAX	(1u << 20)
/* Most blocks in one ps_blocksums (an index of up to about 0.7 GB). */
#define PS_MATCH_MAX_BLOCKS	(UINT32_C(1) << 24)
/* Distinct strong sums considered for one weak sum. */
#define PS_MATCH_CANDIDATES	8

/*
 * The weak sum of bytes b[0..n-1]; peers exchange it, so it is fixed:
 *
 *	weak = sum over i of (b[i] + PS_WEAK_ADD) * PS_WEAK_MUL^(n-1-i)
 *
 * modulo 2^32. Adding a constant to each byte keeps runs of zeros from all
 * summing to 0; the multiplier is odd with maximal multiplicative order.
 * The sum rolls in O(1): dropping byte a and taking byte z,
 *	weak' = weak * MUL + (z + ADD) - (a + ADD) * MUL^n.
 */
#define PS_WEAK_MUL	UINT32_C(0x5bd1e995)
#define PS_WEAK_ADD	UINT32_C(0x9d)

uint32_t ps_weak(const void *p, size_t n);

/*
 * Block sums of a basis, or of one region of it. Block i covers
 * [base + i*block_len, min(base + (i+1)*block_len, base + len)): every
 * block has block_len bytes but the last, which may be shorter (>= 1).
 */
struct ps_blocksums {
	uint64_t base;		/* basis offset of block 0 */
	uint64_t len;		/* basis bytes covered */
	uint32_t block_len;	/* PS_MATCH_BLOCK_MIN..PS_MATCH_BLOCK_MAX */
	uint32_t n;		/* ceil(len / block_len) */
	uint32_t *weak;		/* ps_weak() of each block */
	uint64_t *strong;	/* XXH3-64 (seed 0) of each block */
};

/*
 * Is S consistent: block_len in bounds, n == ceil(len / block_len) and at
 * most PS_MATCH_MAX_BLOCKS, base + len without overflow, arrays present
 * when n > 0? PS_OK or PS_EUSAGE. Check sums decoded from a peer with it.
 */
int ps_blocksums_check(const struct ps_blocksums *s);

/*
 * Sums of LEN bytes at P, which sit at basis offset BASE, in blocks of
 * BLOCK_LEN. Fills OUT (free with ps_blocksums_free). PS_EUSAGE when the
 * block length or count is out of bounds.
 */
int ps_blocksums_mem(const void *p, uint64_t len, uint64_t base,
    uint32_t block_len, struct ps_blocksums *out);

/*
 * Sums of bytes [OFF, OFF+LEN) of FD (base OFF), read with pread in
 * chunks of about 1 MiB. PS_EPARTIAL when the file is shorter (errno
 * ESTALE) or cannot be read (errno kept); PS_EUSAGE as above.
 */
int ps_blocksums_fd(int fd, uint64_t off, uint64_t len, uint32_t block_len,
    struct ps_blocksums *out);

/* Free the arrays of S and zero it. NULL and zeroed sums are fine. */
void ps_blocksums_free(struct ps_blocksums *s);

/* ---- matching ---- */

enum ps_mop_kind {
	PS_MOP_COPY = 1,	/* the basis holds these bytes at basis_off */
	PS_MOP_LITERAL = 2	/* the target's own bytes */
};

struct ps_mop {
	uint64_t target_off;
	uint64_t len;
	uint64_t basis_off;	/* COPY only; 0 for LITERAL */
	uint8_t kind;		/* enum ps_mop_kind */
};

/*
 * Ops in target order. Zero-initialise before first use. The stat_
 * fields count work done by ps_match (tests use them to prove bounds).
 */
struct ps_mops {
	struct ps_mop *v;
	size_t n;
	size_t cap;
	uint64_t copy_bytes;	/* sum of COPY lengths */
	uint64_t literal_bytes;	/* sum of LITERAL lengths */
	uint64_t stat_strong;	/* XXH3 sums of target windows computed */
	uint64_t stat_weak_hits; /* positions whose weak sum is indexed */
	uint64_t stat_read;	/* target bytes read */
};

/*
 * Append an op to O, merged into the last one when it continues it (a
 * LITERAL after a LITERAL, a COPY whose target and basis ranges both
 * follow the last COPY's). LEN 0 appends nothing.
 */
void ps_mops_add(struct ps_mops *o, enum ps_mop_kind kind,
    uint64_t target_off, uint64_t len, uint64_t basis_off);

void ps_mops_free(struct ps_mops *o);

/*
 * An index over one ps_blocksums. It refers to S's arrays, which must
 * stay unchanged until ps_matcher_free. Read-only once made: several
 * threads may match with it at once. Memory: at most about 40 bytes a
 * block (twice that while it is built), O(n) time to build.
 */
struct ps_matcher;

/* PS_OK with *OUT set, or PS_EUSAGE when ps_blocksums_check refuses S. */
int ps_matcher_new(const struct ps_blocksums *s, struct ps_matcher **out);
void ps_matcher_free(struct ps_matcher *m);

/*
 * Reads target bytes, like pread: fills BUF with up to N bytes from
 * target offset OFF; returns the count (short only at the end of the
 * target) or -1 with errno set. With THREADS > 1 it is called from
 * several threads at once.
 */
typedef ssize_t (*ps_match_read_fn)(void *arg, void *buf, size_t n,
    uint64_t off);

/*
 * Find which parts of target range [OFF, OFF+LEN) the basis of M holds,
 * appending to OUT ops that cover the range exactly, in target order,
 * merged as ps_mops_add does. A COPY is emitted only where the target's
 * bytes have the basis block's XXH3-64 (and, found by rolling, its weak
 * sum); all other bytes are LITERAL.
 *
 * HINT (may be NULL) is the target's own block sums (only strong sums are
 * used), with M's block length; its base is the target offset of its
 * block 0. Where target block k lies wholly in the range and has the same
 * length and strong sum as the basis block k (the unchanged-in-place
 * case), it is a COPY without reading the target, and the search never
 * reads across it. A hint with another block length is ignored. It must
 * describe the target's current bytes.
 *
 * THREADS > 1 splits ranges of several MiB into that many contiguous
 * slices matched at once (a match across a slice boundary may be lost).
 * The result depends only on the inputs and THREADS.
 *
 * The target is read only where needed (nothing where the hint covers it
 * or the basis is empty), in chunks of about 1 MiB into one buffer per
 * thread. Returns PS_OK, or PS_EPARTIAL when RD fails (errno kept) or
 * the target ends early (errno ESTALE); OUT's ops and byte counts are
 * then as they were before (its stat_ counts include the work done).
 */
int ps_match(const struct ps_matcher *m, ps_match_read_fn rd, void *arg,
    uint64_t off, uint64_t len, const struct ps_blocksums *hint,
    unsigned threads, struct ps_mops *out);

/* A ps_match_read_fn for a file: ARG points to its descriptor (pread). */
ssize_t ps_match_read_fd(void *arg, void *buf, size_t n, uint64_t off);

/* The block sums a manifest entry carries (its arrays, not copied). */
struct ps_entry;
void ps_entry_blocksums(const struct ps_entry *e, struct ps_blocksums *b);

/*
 * Test knobs (leave them alone otherwise): 0 in ps_match_simd runs the
 * portable code where the CPU has AVX2; ps_match_slice_min is the least
 * bytes a thread's slice gets (4 MiB).
 */
extern int ps_match_simd;
extern uint64_t ps_match_slice_min;

/* ---- refinement ---- */

/*
 * Where a second, finer pass may pay: for each LITERAL op of OPS at least
 * MIN_LEN long whose neighbours are COPYs, the basis bytes between the
 * previous COPY's source end and the next COPY's source start. A literal
 * that is the first op of OPS and starts at target offset 0 counts from
 * basis offset 0; one that is the last op reaches to BASIS_SIZE. A gap is
 * reported only when non-empty and at most 4 * literal length +
 * BLOCK_LEN (a bigger one means the content was deleted or moved, and
 * finer sums of it would cost more than they save).
 *
 * Fetch finer sums of each gap, match the literal's target range against
 * them, and put the result in with ps_mops_splice_many. Returns the count
 * and sets *GAPS to a malloc'd array (NULL when 0), in op order.
 */
struct ps_gap {
	size_t op;		/* index of the LITERAL op in OPS */
	uint64_t basis_off;
	uint64_t basis_len;
};

size_t ps_match_gaps(const struct ps_mops *ops, uint64_t basis_size,
    uint64_t min_len, uint32_t block_len, struct ps_gap **gaps);

/*
 * Replace op I of OPS by the ops of SUB, which must cover exactly its
 * target range; merges at both seams and keeps the byte counts. Returns
 * PS_OK, or PS_EUSAGE (OPS unchanged) when I or SUB does not fit. O(n):
 * for many ops use ps_mops_splice_many.
 */
int ps_mops_splice(struct ps_mops *ops, size_t i, const struct ps_mops *sub);

/*
 * Replace ops IDX[0] < IDX[1] < ... (K of them) by SUBS[0..K-1] in one
 * pass, with the same rules. PS_EUSAGE (OPS unchanged) on a misfit.
 */
int ps_mops_splice_many(struct ps_mops *ops, const size_t *idx,
    const struct ps_mops *subs, size_t k);

/*
 * Reference applier, for tests: write target range [OFF, OFF+LEN) into
 * OUT (LEN bytes) from OPS, taking COPY bytes from BASIS (BASIS_LEN bytes,
 * basis offset 0) and LITERAL bytes from TARGET (indexed by target
 * offset). PS_EUSAGE when OPS do not cover the range exactly, in order,
 * or a COPY reads outside the basis.
 */
int ps_mops_apply(const struct ps_mops *ops, const void *basis,
    uint64_t basis_len, const void *target, uint64_t off, uint64_t len,
    void *out);

#endif
