/*
 * share.h — what one push works out once for all of its servers (SPEC
 * 14): the matcher's plan for a changed file, by (the server's old
 * version, the console's new one), and the compressed bytes of the
 * literal data sent, by (new version, range). Servers that hold the same
 * old copy of a file cost the console one plan and one compression, not
 * one per server.
 *
 * Sessions run at once and reach the same file at about the same time:
 * the first to ask does the work while the others wait for it (only
 * while it computes: nothing is held across a network wait), then all
 * take copies. Memory is bounded by the budget given; beyond it the
 * oldest entries go, and a session simply works the thing out again.
 * Thread-safe.
 */
#ifndef PS_SHARE_H
#define PS_SHARE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "match.h"

struct ps_share;

/* A share keeping at most BUDGET bytes of plans and data. */
struct ps_share *ps_share_new(size_t budget);
void ps_share_free(struct ps_share *sh);

/*
 * The plan from OLD to NEW (XXH3-128 of each version; SIZE the new
 * version's): returns 1 with a copy in *OPS when it is known, or 0 when
 * the caller is to make it and then must call ps_share_plan_put (with
 * NULL if it could not). Waits while another session makes it.
 */
int ps_share_plan_get(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, struct ps_mops *ops);
void ps_share_plan_put(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, const struct ps_mops *ops);

/*
 * The same for the plan after a refinement, ROUND a key of what it
 * starts from (not 0): made from that and the server's finer sums, the
 * same for every server with the old version. Only the matching is
 * waited for: the caller asks once its own sums are in.
 */
int ps_share_round_get(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, uint64_t round,
    struct ps_mops *ops);
void ps_share_round_put(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, uint64_t round,
    const struct ps_mops *ops);

/*
 * The plan of ROUND (0: the first plan) when it is already made, without
 * claiming or waiting: returns 1 with a copy in *OPS. A session that
 * finds the plan a round would give asks its server for no sums.
 */
int ps_share_round_peek(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, uint64_t round,
    struct ps_mops *ops);

/*
 * The plan as refined with finer sums from a server (which takes round
 * trips, so nobody waits for it): peek returns 1 with a copy when one
 * is known; offer keeps one.
 */
int ps_share_final_peek(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, struct ps_mops *ops);
void ps_share_final_offer(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, const struct ps_mops *ops);

/*
 * The bytes to send for [OFF, OFF+LEN) of version NEW: returns 1 with
 * the codec in *CODEC and the bytes in OUT (replaced) when known, or 0
 * when the caller is to compress them and then must call
 * ps_share_data_put (P NULL if it could not). Waits meanwhile. Data that
 * does not compress is kept as the codec alone (raw, no bytes): the
 * caller reads it itself.
 */
int ps_share_data_get(struct ps_share *sh, const unsigned char new[16],
    uint64_t off, uint32_t len, uint8_t *codec, struct buf *out);
void ps_share_data_put(struct ps_share *sh, const unsigned char new[16],
    uint64_t off, uint32_t len, uint8_t codec, const void *p, size_t n);

/*
 * PATH beneath DIRFD open for reading (ps_open_beneath), one descriptor
 * for every session that sends the file, at most FDS_MAX at a time: its
 * file position is nobody's, so only pread and sendfile with an offset
 * may use it. *ST is the file's status when it was opened. Returns the
 * descriptor, or -1 with errno. Every get is matched by a put (which
 * closes it when it was not kept); forget stops handing out one found
 * changed.
 */
int ps_share_fd_get(struct ps_share *sh, int dirfd, const char *path,
    struct stat *st);
void ps_share_fd_put(struct ps_share *sh, int fd);
void ps_share_fd_forget(struct ps_share *sh, int fd);

/* Work saved so far: plans and compressions taken from the share. */
void ps_share_stats(struct ps_share *sh, uint64_t *plans, uint64_t *chunks);

#endif
