/*
 * delta.h — byte-level pieces of rebuilding a changed file: COPY ops in
 * the kernel (ps_copy_range, used by the receiver), and librsync's delta
 * format for offline bundles (patchsync-bundle(5)): an encoder from the
 * block matcher's ops (match.h) and the streaming patcher that applies
 * a delta with librsync.
 *
 * Results are enum ps_result values: PS_EPEER for a delta that is not
 * valid (or does not fit its basis and length), PS_EPARTIAL for a local
 * read or write error (errno kept), PS_EUSAGE for bad arguments. Nothing
 * here prints except through ps_info (librsync's own messages, at -vv).
 */
#ifndef PS_DELTA_H
#define PS_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "match.h"
#include "ps.h"

/*
 * librsync's delta format (its doc/formats.md; the same as `rdiff
 * delta`): the magic 0x72730236, then commands, then a 0 byte (END).
 * All integers are big-endian. A LITERAL of 1..64 bytes is the one byte
 * 0x01..0x40 followed by the bytes; a longer one is 0x41..0x44 (its
 * length in 1, 2, 4 or 8 bytes), the length, the bytes. A COPY is
 * 0x45 + 4 * i + j, where the basis offset takes (1, 2, 4, 8)[i] bytes
 * and the length (1, 2, 4, 8)[j]: offset, then length.
 */
#define PS_RSDELTA_MAGIC	UINT32_C(0x72730236)

/*
 * The number of bytes of the delta ps_rsdelta_write makes from OPS (the
 * magic, one command per op with the smallest operands, literal bytes,
 * END). OPS must cover their target range in order, as ps_match makes
 * them; ops of length 0 are skipped.
 */
uint64_t ps_rsdelta_size(const struct ps_mops *ops);

/*
 * Write the delta of OPS, reading each LITERAL op's bytes from target FD
 * at its target offset (pread), and pass it to EMIT in pieces of at most
 * 1 MiB. A nonzero return from EMIT stops the work and is returned.
 * Returns PS_OK, or PS_EPARTIAL when FD cannot be read (errno kept; 0
 * when it is shorter than the ops say).
 */
int ps_rsdelta_write(const struct ps_mops *ops, int fd,
    int (*emit)(const void *p, size_t n, void *arg), void *arg);

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
