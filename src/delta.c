/*
 * delta.c — the plan (which parts of a changed file to copy on the
 * server, which to send as librsync deltas, which whole), signatures and
 * deltas of file regions, and the streaming patcher that applies them.
 *
 * librsync facts this relies on (see notes/librsync-facts.md): jobs are
 * fed 256 KiB at a time because librsync copies whatever input it cannot
 * use at once; output buffers are 256 KiB (small ones halve delta speed);
 * a loaded signature needs rs_build_hash_table; Debian keeps librsync's
 * assertions, so anything from the peer is checked before librsync sees
 * it, and the copy callback refuses every position outside its region.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librsync.h>

#include "delta.h"

#define IO_CHUNK	(256u << 10)	/* bytes handed to a job per call */
#define OUT_CHUNK	(256u << 10)	/* job output buffer (>= 4 blocks) */
#define COPY_CHUNK	(1u << 20)	/* pread/pwrite fallback of COPY */
#define SIG_HEADER	12		/* magic, block length, strong length */
#define STRONG_MIN	4		/* shortest strong sum accepted */

#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define MAX(a, b)	((a) > (b) ? (a) : (b))

/* ---- small I/O helpers ---- */

/* Read exactly N bytes at OFF. 0, or -1 (errno set; EIO-like 0 for EOF). */
static int
pread_full(int fd, void *p, size_t n, uint64_t off)
{
	unsigned char *c = p;
	ssize_t r;

	if (off > (uint64_t)INT64_MAX - n) {
		errno = EFBIG;
		return -1;
	}
	while (n > 0) {
		r = pread(fd, c, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = 0;	/* the file is shorter than expected */
			return -1;
		}
		c += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int
pwrite_full(int fd, const void *p, size_t n, uint64_t off)
{
	const unsigned char *c = p;
	ssize_t r;

	if (off > (uint64_t)INT64_MAX - n) {
		errno = EFBIG;
		return -1;
	}
	while (n > 0) {
		r = pwrite(fd, c, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int
range_ok(uint64_t off, uint64_t len)
{
	return off <= (uint64_t)INT64_MAX && len <= (uint64_t)INT64_MAX - off;
}

/* ---- the plan ---- */

static uint64_t
nblocks_of(uint64_t size, unsigned shift)
{
	return (size >> shift) + ((size & ((UINT64_C(1) << shift) - 1)) != 0);
}

/* Does E carry a checksum array that matches its size? */
static int
blocks_ok(const struct ps_entry *e)
{
	if (e->block_shift < PS_BLOCK_SHIFT_MIN ||
	    e->block_shift > PS_BLOCK_SHIFT_MAX)
		return 0;
	if (e->nblocks != nblocks_of(e->size, e->block_shift))
		return 0;
	return e->nblocks == 0 || e->blocks != NULL;
}

static uint64_t
block_len_at(const struct ps_entry *e, uint64_t i)
{
	uint64_t off = i << e->block_shift;

	return MIN(e->size - off, UINT64_C(1) << e->block_shift);
}

/*
 * Index from XXH3-64 of the basis' full blocks to the first block with
 * that sum: open addressing, the sum itself is a good hash.
 */
struct bindex {
	uint64_t *key;
	uint64_t *val;		/* block index + 1; 0 is empty */
	uint64_t mask;
};

static void
bindex_build(struct bindex *ix, const struct ps_entry *b)
{
	uint64_t cap = 16, i, h, full = b->size >> b->block_shift;

	while (cap < 2 * full)
		cap <<= 1;
	ix->key = xcalloc(cap, sizeof(*ix->key));
	ix->val = xcalloc(cap, sizeof(*ix->val));
	ix->mask = cap - 1;
	for (i = 0; i < full; i++) {
		h = b->blocks[i] & ix->mask;
		while (ix->val[h] != 0 && ix->key[h] != b->blocks[i])
			h = (h + 1) & ix->mask;
		if (ix->val[h] == 0) {
			ix->key[h] = b->blocks[i];
			ix->val[h] = i + 1;
		}
	}
}

static int64_t
bindex_find(const struct bindex *ix, uint64_t sum)
{
	uint64_t h = sum & ix->mask;

	while (ix->val[h] != 0) {
		if (ix->key[h] == sum)
			return (int64_t)(ix->val[h] - 1);
		h = (h + 1) & ix->mask;
	}
	return -1;
}

static void
bindex_free(struct bindex *ix)
{
	free(ix->key);
	free(ix->val);
}

/* Is target block I the same bytes as basis block J? */
static int
same_block(const struct ps_entry *b, uint64_t j, const struct ps_entry *t,
    uint64_t i)
{
	return j < b->nblocks && b->blocks[j] == t->blocks[i] &&
	    block_len_at(b, j) == block_len_at(t, i);
}

/*
 * For each target block, the basis block holding the same bytes, or -1.
 * Prefer continuing the previous match (keeps copies long), then the same
 * offset, then any basis block with that sum.
 */
static int64_t *
match_blocks(const struct ps_entry *b, const struct ps_entry *t)
{
	struct bindex ix;
	int64_t *m, j;
	uint64_t i, last = b->nblocks - 1;

	m = xreallocarray(NULL, t->nblocks, sizeof(*m));
	bindex_build(&ix, b);
	for (i = 0; i < t->nblocks; i++) {
		m[i] = -1;
		if (i > 0 && m[i - 1] >= 0 &&
		    same_block(b, (uint64_t)m[i - 1] + 1, t, i))
			m[i] = m[i - 1] + 1;
		else if (same_block(b, i, t, i))
			m[i] = (int64_t)i;
		else if (block_len_at(t, i) == (UINT64_C(1) << t->block_shift)) {
			if ((j = bindex_find(&ix, t->blocks[i])) >= 0)
				m[i] = j;
		} else if (same_block(b, last, t, i))
			m[i] = (int64_t)last;	/* equal short tails */
	}
	bindex_free(&ix);
	return m;
}

struct planner {
	struct ps_plan *pl;
	size_t cap;
	uint64_t bsize;		/* basis file size */
	uint64_t bs;		/* manifest block size (alignment of pieces) */
	unsigned pieces;
};

static void
push(struct planner *p, uint8_t kind, uint64_t toff, uint64_t len,
    uint64_t boff, uint64_t blen, uint32_t sig_bl)
{
	struct ps_plan *pl = p->pl;
	struct ps_plan_op *o = pl->n ? &pl->ops[pl->n - 1] : NULL;

	if (len == 0)
		return;
	if (kind == PS_OP_DELTA && blen == 0)
		kind = PS_OP_LITERAL;	/* nothing to diff against */
	if (o != NULL && o->kind == kind && o->target_off + o->len == toff &&
	    (kind == PS_OP_LITERAL ||
	    (kind == PS_OP_COPY && o->basis_off + o->len == boff))) {
		o->len += len;
		return;
	}
	if (pl->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 16;
		pl->ops = xreallocarray(pl->ops, p->cap, sizeof(*pl->ops));
	}
	o = &pl->ops[pl->n++];
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->target_off = toff;
	o->len = len;
	if (kind == PS_OP_COPY)
		o->basis_off = boff;
	if (kind == PS_OP_DELTA) {
		o->basis_off = boff;
		o->basis_len = blen;
		o->sig_block_len = sig_bl;
	}
}

/* A * B / C without overflow (C > 0, result <= max(A, B)). */
static uint64_t
muldiv(uint64_t a, uint64_t b, uint64_t c)
{
	__extension__ unsigned __int128 r = a;

	return (uint64_t)(r * b / c);
}

/*
 * Dirty target bytes [T0, T1). PE is where the basis copy before it ends
 * (0 at the start), NS where the basis copy after it starts (basis size at
 * the end): the old bytes that became these are most likely in between.
 * Pieces map proportionally into that region; their margin covers the
 * size difference (an insertion anywhere moves everything after it) plus
 * a little for content that moved across a piece boundary. Margins are
 * whole signature blocks, so that where nothing moved the signature's
 * blocks line up with the target's: the unchanged bytes at both ends of
 * a piece then match whole instead of going as literals.
 */
static void
plan_run(struct planner *p, uint64_t t0, uint64_t t1, uint64_t pe,
    uint64_t ns)
{
	uint64_t tl = t1 - t0, lo = MIN(pe, ns), hi = MAX(pe, ns);
	uint64_t rl, diff, margin, pm, k, i, a, b, ra, rb, r0, r1, grow;
	uint32_t bl;

	if (pe > ns && hi - lo < tl) {
		/* Matches out of order: look around both ends instead. */
		grow = tl - (hi - lo);
		lo = lo > grow / 2 ? lo - grow / 2 : 0;
		hi = MIN(p->bsize, lo + tl);
	}
	rl = hi - lo;
	diff = tl > rl ? tl - rl : rl - tl;
	bl = ps_sig_block_len(MAX(tl, rl));

	k = 1;
	if (tl >= 2 * PS_PIECE_MIN)
		k = MIN(p->pieces, tl / PS_PIECE_MIN);
	k = MAX(k, (tl + PS_PIECE_MAX - 1) / PS_PIECE_MAX);
	/* One manifest block and 1/64 of a piece, each side. */
	margin = p->bs + rl / k / 64;
	for (i = 0; i < k; i++) {
		a = i == 0 ? t0 : t0 + ((tl / k * i) & ~(p->bs - 1));
		b = i + 1 == k ? t1 : t0 + ((tl / k * (i + 1)) & ~(p->bs - 1));
		ra = lo + muldiv(a - t0, rl, tl);
		rb = lo + muldiv(b - t0, rl, tl);
		pm = margin + (k > 1 ? diff : 0);
		pm = (pm + bl - 1) / bl * bl;
		r0 = ra >= pm ? ra - pm : ra % bl;
		r1 = MIN(p->bsize, rb + MIN(pm, p->bsize));
		if (r1 < r0)
			r1 = r0;
		push(p, PS_OP_DELTA, a, b - a, r0, r1 - r0, bl);
	}
}

static void
plan_blocks(struct planner *p, const struct ps_entry *b,
    const struct ps_entry *t)
{
	int64_t *m = match_blocks(b, t);
	uint64_t i = 0, i0, off, pe, ns;
	unsigned sh = t->block_shift;

	while (i < t->nblocks) {
		off = i << sh;
		if (m[i] >= 0) {
			push(p, PS_OP_COPY, off, block_len_at(t, i),
			    (uint64_t)m[i] << sh, 0, 0);
			i++;
			continue;
		}
		i0 = i;
		while (i < t->nblocks && m[i] < 0)
			i++;
		pe = 0;
		if (i0 > 0)
			pe = ((uint64_t)m[i0 - 1] << sh) +
			    block_len_at(b, (uint64_t)m[i0 - 1]);
		ns = i < t->nblocks ? (uint64_t)m[i] << sh : b->size;
		plan_run(p, off, i < t->nblocks ? i << sh : t->size, pe, ns);
	}
	free(m);
}

int
ps_delta_plan(const struct ps_entry *basis, const struct ps_entry *target,
    unsigned pieces, struct ps_plan *plan)
{
	struct planner p;
	size_t i;

	memset(plan, 0, sizeof(*plan));
	if (target == NULL)
		return PS_EUSAGE;
	memset(&p, 0, sizeof(p));
	p.pl = plan;
	p.pieces = pieces ? pieces : 1;
	if (target->size == 0)
		return PS_OK;
	if (basis == NULL || basis->size == 0) {
		push(&p, PS_OP_LITERAL, 0, target->size, 0, 0, 0);
		goto done;
	}
	p.bsize = basis->size;
	if (blocks_ok(target)) {
		p.bs = UINT64_C(1) << target->block_shift;
	} else {
		p.bs = UINT64_C(1) << ps_block_shift_for(target->size);
	}
	if (blocks_ok(basis) && blocks_ok(target) &&
	    basis->block_shift == target->block_shift)
		plan_blocks(&p, basis, target);
	else
		plan_run(&p, 0, target->size, 0, basis->size);
done:
	for (i = 0; i < plan->n; i++) {
		switch (plan->ops[i].kind) {
		case PS_OP_COPY:
			plan->copy_bytes += plan->ops[i].len;
			break;
		case PS_OP_DELTA:
			plan->delta_bytes += plan->ops[i].len;
			plan->region_bytes += plan->ops[i].basis_len;
			break;
		default:
			plan->literal_bytes += plan->ops[i].len;
			break;
		}
	}
	return PS_OK;
}

void
ps_plan_free(struct ps_plan *plan)
{
	free(plan->ops);
	memset(plan, 0, sizeof(*plan));
}

/* ---- signatures ---- */

static uint64_t
isqrt(uint64_t v)
{
	uint64_t r = 0, bit = UINT64_C(1) << 62;

	while (bit > v)
		bit >>= 2;
	while (bit != 0) {
		if (v >= r + bit) {
			v -= r + bit;
			r = (r >> 1) + bit;
		} else
			r >>= 1;
		bit >>= 2;
	}
	return r;
}

#define SIG_BLOCK_FLOOR	512u
#define SIG_BLOCK_CAP	(16u << 10)

uint32_t
ps_sig_block_len(uint64_t run_len)
{
	uint64_t want = isqrt(run_len) / 16;
	uint32_t b = SIG_BLOCK_FLOOR;

	/* The power of two nearest WANT, so it divides manifest blocks. */
	while (b < SIG_BLOCK_CAP && (uint64_t)b * 3 / 2 < want)
		b <<= 1;
	return b;
}

/* Strong sum length for LEN bytes in blocks of BL, or 0 on bad input. */
static size_t
strong_len_for(uint64_t len, uint32_t bl)
{
	rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
	size_t b = bl, s = (size_t)-1;

	if (len > (uint64_t)INT64_MAX || bl < PS_SIG_BLOCK_MIN ||
	    bl > PS_SIG_BLOCK_MAX)
		return 0;
	if (rs_sig_args((rs_long_t)len, &magic, &b, &s) != RS_DONE)
		return 0;
	return MAX(s, (size_t)STRONG_MIN);
}

uint64_t
ps_sig_size(uint64_t len, uint32_t block_len)
{
	size_t s = strong_len_for(len, block_len);

	if (s == 0)
		return 0;
	return SIG_HEADER + (len / block_len + (len % block_len != 0)) *
	    (4 + s);
}

/* A job's output goes to this. Returns 0, or a ps_result to stop. */
typedef int (*sink_fn)(const void *p, size_t n, void *arg);

/*
 * Run JOB over bytes [OFF, OFF+LEN) of FD, handing output to SINK.
 * BADCODE is what a librsync failure means for this job.
 */
static int
drive_file(rs_job_t *job, int fd, uint64_t off, uint64_t len,
    sink_fn sink, void *arg, int badcode)
{
	unsigned char *in = xmalloc(IO_CHUNK), *out = xmalloc(OUT_CHUNK);
	rs_buffers_t b;
	rs_result r;
	size_t n, have, before;
	int ret = PS_OK;

	memset(&b, 0, sizeof(b));
	b.eof_in = len == 0;
	for (;;) {
		if (b.avail_in == 0 && !b.eof_in) {
			n = (size_t)MIN(len, IO_CHUNK);
			if (pread_full(fd, in, n, off) == -1) {
				ret = PS_EPARTIAL;
				break;
			}
			off += n;
			len -= n;
			b.next_in = (char *)in;
			b.avail_in = n;
			b.eof_in = len == 0;
		}
		b.next_out = (char *)out;
		b.avail_out = OUT_CHUNK;
		before = b.avail_in;
		r = rs_job_iter(job, &b);
		if (r != RS_DONE && r != RS_BLOCKED) {
			ret = badcode;
			break;
		}
		have = OUT_CHUNK - b.avail_out;
		if (have > 0 && (ret = sink(out, have, arg)) != 0)
			break;
		if (r == RS_DONE)
			break;
		if (have == 0 && before == b.avail_in && b.eof_in) {
			ret = badcode;	/* no progress possible */
			break;
		}
	}
	free(in);
	free(out);
	return ret;
}

static int
sink_buf(const void *p, size_t n, void *arg)
{
	buf_add(arg, p, n);
	return 0;
}

int
ps_sig_region(int fd, uint64_t off, uint64_t len, uint32_t block_len,
    struct buf *sig_out)
{
	rs_job_t *job;
	size_t strong;
	uint64_t want;
	int r;

	if (block_len == 0)
		block_len = ps_sig_block_len(len);
	if (!range_ok(off, len) ||
	    (strong = strong_len_for(len, block_len)) == 0 ||
	    len / block_len >= PS_SIG_MAX_BLOCKS)
		return PS_EUSAGE;
	want = ps_sig_size(len, block_len);
	buf_reserve(sig_out, (size_t)want);
	job = rs_sig_begin(block_len, strong, RS_RK_BLAKE2_SIG_MAGIC);
	r = drive_file(job, fd, off, len, sink_buf, sig_out, PS_EPARTIAL);
	rs_job_free(job);
	return r;
}

int
ps_sig_check(const void *sig, size_t siglen)
{
	const unsigned char *p = sig;
	uint32_t magic, bl, sl;
	uint64_t body, per;

	if (sig == NULL || siglen < SIG_HEADER)
		return PS_EPEER;
	/* librsync writes its header in network byte order. */
	magic = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
	bl = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 |
	    (uint32_t)p[6] << 8 | p[7];
	sl = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 |
	    (uint32_t)p[10] << 8 | p[11];
	if (magic != RS_RK_BLAKE2_SIG_MAGIC)
		return PS_EPEER;
	if (bl < PS_SIG_BLOCK_MIN || bl > PS_SIG_BLOCK_MAX)
		return PS_EPEER;
	if (sl < STRONG_MIN || sl > RS_MAX_STRONG_SUM_LENGTH)
		return PS_EPEER;
	body = siglen - SIG_HEADER;
	per = 4 + (uint64_t)sl;
	if (body % per != 0 || body / per > PS_SIG_MAX_BLOCKS)
		return PS_EPEER;
	return PS_OK;
}

/* ---- delta ---- */

struct emit_ctx {
	int (*emit)(const void *p, size_t n, void *arg);
	void *arg;
};

static int
sink_emit(const void *p, size_t n, void *arg)
{
	struct emit_ctx *e = arg;

	return e->emit(p, n, e->arg);
}

/* Load a checked signature. Returns NULL when librsync refuses it. */
static rs_signature_t *
load_sig(const void *sig, size_t siglen)
{
	rs_signature_t *sums = NULL;
	rs_job_t *job;
	rs_buffers_t b;
	rs_result r;
	const rs_stats_t *st;
	size_t per = 4 + ((const unsigned char *)sig)[11];
	int tries;

	job = rs_loadsig_begin(&sums);
	memset(&b, 0, sizeof(b));
	b.next_in = (char *)(uintptr_t)sig;	/* librsync only reads it */
	b.avail_in = siglen;
	b.eof_in = 1;
	r = RS_BLOCKED;
	for (tries = 0; tries < 4 && r == RS_BLOCKED; tries++)
		r = rs_job_iter(job, &b);
	st = rs_job_statistics(job);
	if (r == RS_DONE &&
	    (uint64_t)st->sig_blocks != (siglen - SIG_HEADER) / per)
		r = RS_CORRUPT;
	rs_job_free(job);
	if (r == RS_DONE && (siglen - SIG_HEADER) / per > 0)
		r = rs_build_hash_table(sums);
	if (r != RS_DONE) {
		rs_free_sumset(sums);
		return NULL;
	}
	return sums;
}

int
ps_delta_region(const void *sig, size_t siglen, int fd, uint64_t off,
    uint64_t len, int (*emit)(const void *p, size_t n, void *arg), void *arg)
{
	struct emit_ctx e = { emit, arg };
	rs_signature_t *sums;
	rs_job_t *job;
	int r;

	if (!range_ok(off, len) || emit == NULL)
		return PS_EUSAGE;
	if ((r = ps_sig_check(sig, siglen)) != PS_OK)
		return r;
	if ((sums = load_sig(sig, siglen)) == NULL)
		return PS_EPEER;
	job = rs_delta_begin(sums);
	r = drive_file(job, fd, off, len, sink_emit, &e, PS_EPEER);
	rs_job_free(job);
	rs_free_sumset(sums);
	return r;
}

/* ---- patch ---- */

struct ps_patch {
	rs_job_t *job;
	int basis_fd;
	int out_fd;
	uint64_t basis_off;
	uint64_t basis_len;
	uint64_t out_off;
	uint64_t expect;
	uint64_t written;	/* bytes already pwritten */
	unsigned char *out;
	size_t have;		/* bytes waiting in out */
	int err;		/* sticky ps_result after a failure */
	int copy_err;		/* what the copy callback refused for */
	int done;		/* the delta's END command was seen */
};

/* librsync asks for basis bytes at POS (relative to the region). */
static rs_result
patch_copy_cb(void *arg, rs_long_t pos, size_t *len, void **bufp)
{
	struct ps_patch *p = arg;
	uint64_t n;

	if (pos < 0 || (uint64_t)pos >= p->basis_len || *len == 0) {
		p->copy_err = PS_EPEER;
		return RS_CORRUPT;
	}
	n = MIN((uint64_t)*len, p->basis_len - (uint64_t)pos);
	if (pread_full(p->basis_fd, *bufp, (size_t)n,
	    p->basis_off + (uint64_t)pos) == -1) {
		p->copy_err = PS_EPARTIAL;
		return RS_IO_ERROR;
	}
	*len = (size_t)n;
	return RS_DONE;
}

struct ps_patch *
ps_patch_begin(int basis_fd, uint64_t basis_off, uint64_t basis_len,
    int out_fd, uint64_t out_off, uint64_t expect_len)
{
	struct ps_patch *p = xcalloc(1, sizeof(*p));

	p->basis_fd = basis_fd;
	p->out_fd = out_fd;
	p->basis_off = basis_off;
	p->basis_len = basis_len;
	p->out_off = out_off;
	p->expect = expect_len;
	if (!range_ok(basis_off, basis_len) || !range_ok(out_off, expect_len))
		p->err = PS_EUSAGE;
	p->out = xmalloc(OUT_CHUNK);
	p->job = rs_patch_begin(patch_copy_cb, p);
	return p;
}

static int
patch_flush(struct ps_patch *p)
{
	if (p->have == 0)
		return PS_OK;
	if (pwrite_full(p->out_fd, p->out, p->have,
	    p->out_off + p->written) == -1)
		return PS_EPARTIAL;
	p->written += p->have;
	p->have = 0;
	return PS_OK;
}

/* Run the job over N bytes at DATA (EOF: no more will come). */
static int
patch_run(struct ps_patch *p, const unsigned char *data, size_t n, int eof)
{
	rs_buffers_t b;
	rs_result r;
	size_t before, made;

	memset(&b, 0, sizeof(b));
	b.next_in = (char *)(uintptr_t)data;
	b.avail_in = n;
	b.eof_in = eof;
	for (;;) {
		b.next_out = (char *)p->out + p->have;
		b.avail_out = OUT_CHUNK - p->have;
		before = b.avail_in;
		r = rs_job_iter(p->job, &b);
		made = OUT_CHUNK - p->have - b.avail_out;
		p->have += made;
		if (p->written + p->have > p->expect)
			return PS_EPEER;	/* more output than announced */
		if (r != RS_DONE && r != RS_BLOCKED)
			return p->copy_err ? p->copy_err : PS_EPEER;
		if ((p->have == OUT_CHUNK || r == RS_DONE) &&
		    patch_flush(p) != PS_OK)
			return PS_EPARTIAL;
		if (r == RS_DONE) {
			p->done = 1;
			/* Bytes after the END command are not ours. */
			return b.avail_in > 0 ? PS_EPEER : PS_OK;
		}
		if (made == 0 && before == b.avail_in) {
			/* Blocked on input: wait for more, or truncated. */
			return eof ? PS_EPEER : PS_OK;
		}
	}
}

int
ps_patch_feed(struct ps_patch *p, const void *data, size_t n)
{
	const unsigned char *c = data;
	size_t k;

	while (p->err == PS_OK && n > 0) {
		if (p->done) {
			p->err = PS_EPEER;	/* data after the end */
			break;
		}
		k = MIN(n, (size_t)IO_CHUNK);
		p->err = patch_run(p, c, k, 0);
		c += k;
		n -= k;
	}
	return p->err;
}

int
ps_patch_end(struct ps_patch *p)
{
	int r = p->err;

	if (r == PS_OK && !p->done)
		r = patch_run(p, NULL, 0, 1);
	if (r == PS_OK && !p->done)
		r = PS_EPEER;
	if (r == PS_OK)
		r = patch_flush(p);
	if (r == PS_OK && p->written != p->expect)
		r = PS_EPEER;	/* the delta made too little */
	ps_patch_abort(p);
	return r;
}

void
ps_patch_abort(struct ps_patch *p)
{
	if (p == NULL)
		return;
	rs_job_free(p->job);
	free(p->out);
	free(p);
}

/* ---- COPY ops ---- */

static int
copy_rw(int in_fd, uint64_t in_off, int out_fd, uint64_t out_off,
    uint64_t len)
{
	unsigned char *buf = xmalloc(COPY_CHUNK);
	size_t n;
	int r = PS_OK;

	while (len > 0) {
		n = (size_t)MIN(len, COPY_CHUNK);
		if (pread_full(in_fd, buf, n, in_off) == -1 ||
		    pwrite_full(out_fd, buf, n, out_off) == -1) {
			r = PS_EPARTIAL;
			break;
		}
		in_off += n;
		out_off += n;
		len -= n;
	}
	free(buf);
	return r;
}

int
ps_copy_range(int basis_fd, uint64_t basis_off, int out_fd,
    uint64_t out_off, uint64_t len)
{
	off_t in, out;
	ssize_t r;

	if (!range_ok(basis_off, len) || !range_ok(out_off, len))
		return PS_EUSAGE;
	while (len > 0) {
		in = (off_t)basis_off;
		out = (off_t)out_off;
		r = copy_file_range(basis_fd, &in, out_fd, &out,
		    (size_t)MIN(len, UINT64_C(1) << 30), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EXDEV || errno == EINVAL ||
		    errno == ENOSYS || errno == EOPNOTSUPP ||
		    errno == EBADF || errno == ETXTBSY))
			return copy_rw(basis_fd, basis_off, out_fd, out_off,
			    len);
		if (r < 0)
			return PS_EPARTIAL;
		if (r == 0) {
			errno = 0;	/* the basis is shorter than planned */
			return PS_EPARTIAL;
		}
		basis_off += (uint64_t)r;
		out_off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return PS_OK;
}

/* ---- librsync's messages ---- */

static void
trace_fn(rs_loglevel level, const char *msg)
{
	size_t n = strlen(msg);

	(void)level;
	while (n > 0 && msg[n - 1] == '\n')
		n--;
	ps_info(2, "librsync: %.*s", (int)MIN(n, (size_t)1000), msg);
}

void
ps_delta_init(void)
{
	rs_trace_to(trace_fn);
	rs_trace_set_level(RS_LOG_WARNING);
}
