/*
 * mfshare.h — one plan for servers whose manifests are identical (SPEC
 * 14). A push to many servers that hold the same tree receives the same
 * manifest from each: the console compares it with its scan once, and
 * every other server with a byte-identical manifest takes that plan
 * without decoding its own.
 *
 * The first session of a component makes its reference: it merges as
 * its manifest comes (files go early) and records the running digest
 * after each frame. The others take their manifests in whole, unread,
 * while the frames match a reference as far as it goes; one that
 * matches none merges as it comes, like the first, and makes a
 * reference of its own for the servers like it (a fleet in a few
 * states). A session whose whole manifest matches looks the plan up by
 * the digest of the whole: ready, it is used; being made by another
 * session from a manifest it holds whole (no network wait), it waits;
 * unknown, it makes it itself for the others. Only the digest of the
 * whole decides: the per-frame ones only say whether to wait for it.
 * Frames held unread count against a budget: beyond it a session
 * merges as it comes.
 *
 * The digests are XXH3-128 with a seed chosen per push, so a server
 * cannot aim for another's plan; one that did would only be sent the
 * console's files for its own root. Thread-safe.
 */
#ifndef PS_MFSHARE_H
#define PS_MFSHARE_H

#include <stddef.h>
#include <stdint.h>

#include "syncplan.h"

struct ps_mfshare;

/* A share for NCOMP components, holding at most BUDGET bytes unread. */
struct ps_mfshare *ps_mfshare_new(size_t ncomp, uint64_t budget);
/* Frees the plans it was given. */
void ps_mfshare_free(struct ps_mfshare *m);

/* The seed of the frames' digests. */
uint64_t ps_mfshare_seed(const struct ps_mfshare *m);

/* A session's part: set by join, kept up by frame. */
struct ps_mfpeer {
	int own;		/* the reference it makes, or -1 */
	uint32_t dropped;	/* references it does not match */
	int diverged;		/* matches none: merges as it comes */
};

/*
 * Join component C: the first session makes its first reference (OWN
 * 0, DIVERGED 0) and merges as its manifest comes; any other follows
 * the references (OWN -1), also those made after it joined.
 */
void ps_mfshare_join(struct ps_mfshare *m, size_t c, struct ps_mfpeer *p);

/*
 * Frame K (from 0) of the session's manifest left the running digest D.
 * A reference's maker records it; a follower drops the references that
 * have a different frame K, and when none is left it is DIVERGED and
 * (room allowing) makes a reference of its own for those like it.
 */
void ps_mfshare_frame(struct ps_mfshare *m, size_t c, struct ps_mfpeer *p,
    uint64_t k, const unsigned char d[16]);

/* N more bytes held unread: 1 when the budget allows, else 0. */
int ps_mfshare_hold(struct ps_mfshare *m, uint64_t n);
void ps_mfshare_unhold(struct ps_mfshare *m, uint64_t n);

enum {
	PS_MFS_NONE = -1,	/* not shared: make a plan of one's own */
	PS_MFS_MAKE = 0,	/* make it, then ps_mfshare_put */
	PS_MFS_HAVE = 1		/* *OUT is the plan (read only) */
};

/*
 * The plan for component C's whole manifest with digest D. Waits while
 * another session makes it.
 */
int ps_mfshare_get(struct ps_mfshare *m, size_t c, const unsigned char d[16],
    const struct ps_syncplan **out);

/*
 * After PS_MFS_MAKE: the plan (the share keeps it until freed), or NULL
 * when it could not be made (the next session that asks makes it).
 */
void ps_mfshare_put(struct ps_mfshare *m, size_t c, const unsigned char d[16],
    struct ps_syncplan *p);

/*
 * A plan made while the manifest came (by a reference's maker): kept
 * when none is known for D yet and there is room, and then returns 1
 * (the share frees it); else 0.
 */
int ps_mfshare_offer(struct ps_mfshare *m, size_t c,
    const unsigned char d[16], struct ps_syncplan *p);

/* Sessions that took a plan made for another server. */
uint64_t ps_mfshare_hits(struct ps_mfshare *m);

#endif
