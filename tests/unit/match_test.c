/*
 * match_test.c — the block matcher must rebuild every target exactly
 * from its ops, copy what the basis holds in every shape of change
 * (shifts, moves, repeats, short last blocks, empty files), stay linear
 * on hostile data (counted strong sums, not wall time), and refuse bad
 * sums. A randomised property test runs briefly here; for longer runs:
 *	PS_MATCH_ITERATIONS=100000 tests/unit/match_test
 * and PS_MATCH_SEED=N replays the seed a failure printed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "match.h"
#include "splitmix.h"

#define KiB	(UINT64_C(1) << 10)
#define MiB	(UINT64_C(1) << 20)

/* ---- helpers ---- */


static uint64_t
rnd(uint64_t n)
{
	return n == 0 ? 0 : rng() % n;
}

static unsigned char *
random_bytes(size_t n)
{
	unsigned char *p = malloc(n ? n : 1);

	assert_non_null(p);
	fill_random(p, n);
	return p;
}

/* A target in memory; reads that touch FAIL_AT fail with EIO. */
struct mt {
	const unsigned char *p;
	uint64_t len;
	uint64_t fail_at;
};

static ssize_t
mt_read(void *arg, void *buf, size_t n, uint64_t off)
{
	const struct mt *t = arg;

	if (t->fail_at >= off && t->fail_at - off < n) {
		errno = EIO;
		return -1;
	}
	if (off >= t->len)
		return 0;
	if (n > t->len - off)
		n = (size_t)(t->len - off);
	memcpy(buf, t->p + off, n);
	return (ssize_t)n;
}

/* Ops cover [OFF, OFF+LEN) exactly, merged, with consistent totals. */
static void
check_ops(const struct ps_mops *o, size_t first, uint64_t off, uint64_t len)
{
	uint64_t at = off, copy = 0, lit = 0;
	const struct ps_mop *v, *p;
	size_t i;

	for (i = first; i < o->n; i++) {
		v = &o->v[i];
		assert_int_equal(v->target_off, at);
		assert_true(v->len > 0);
		assert_true(v->kind == PS_MOP_COPY ||
		    v->kind == PS_MOP_LITERAL);
		if (i > first) {
			p = &o->v[i - 1];
			/* Mergeable neighbours must have been merged. */
			assert_false(p->kind == PS_MOP_LITERAL &&
			    v->kind == PS_MOP_LITERAL);
			assert_false(p->kind == PS_MOP_COPY &&
			    v->kind == PS_MOP_COPY &&
			    p->basis_off + p->len == v->basis_off);
		}
		if (v->kind == PS_MOP_COPY)
			copy += v->len;
		else
			lit += v->len;
		at += v->len;
	}
	assert_int_equal(at, off + len);
	if (first == 0) {
		assert_int_equal(o->copy_bytes, copy);
		assert_int_equal(o->literal_bytes, lit);
	}
}

/* Apply OPS and compare with the target. */
static void
check_rebuild(const struct ps_mops *ops, const unsigned char *basis,
    uint64_t blen, const unsigned char *target, uint64_t tlen)
{
	unsigned char *out = malloc(tlen ? tlen : 1);

	assert_non_null(out);
	assert_int_equal(ps_mops_apply(ops, basis, blen, target, 0, tlen,
	    out), PS_OK);
	assert_memory_equal(out, target, tlen);
	free(out);
}

struct run {
	int hint;		/* use the target's own sums as hint */
	unsigned threads;
};

/*
 * Match TARGET against BASIS in blocks of BL; checks coverage and the
 * rebuild; leaves the ops in OPS (zeroed first).
 */
static void
run_match(const unsigned char *basis, uint64_t blen, uint32_t bl,
    const unsigned char *target, uint64_t tlen, const struct run *r,
    struct ps_mops *ops)
{
	struct ps_blocksums s, h;
	struct ps_matcher *m;
	struct mt t = { target, tlen, UINT64_MAX };

	memset(ops, 0, sizeof(*ops));
	assert_int_equal(ps_blocksums_mem(basis, blen, 0, bl, &s), PS_OK);
	assert_int_equal(ps_matcher_new(&s, &m), PS_OK);
	if (r != NULL && r->hint)
		assert_int_equal(ps_blocksums_mem(target, tlen, 0, bl, &h),
		    PS_OK);
	assert_int_equal(ps_match(m, mt_read, &t, 0, tlen,
	    r != NULL && r->hint ? &h : NULL, r != NULL ? r->threads : 1,
	    ops), PS_OK);
	check_ops(ops, 0, 0, tlen);
	check_rebuild(ops, basis, blen, target, tlen);
	if (r != NULL && r->hint)
		ps_blocksums_free(&h);
	ps_matcher_free(m);
	ps_blocksums_free(&s);
}

/* TARGET = BASIS with N bytes of X inserted at AT (N may be 0). */
static unsigned char *
with_insert(const unsigned char *b, size_t blen, size_t at,
    const unsigned char *x, size_t n)
{
	unsigned char *t = malloc(blen + n + 1);

	assert_non_null(t);
	memcpy(t, b, at);
	memcpy(t + at, x, n);
	memcpy(t + at + n, b + at, blen - at);
	return t;
}

/* TARGET = BASIS without bytes [AT, AT+N). */
static unsigned char *
with_delete(const unsigned char *b, size_t blen, size_t at, size_t n)
{
	unsigned char *t = malloc(blen + 1);

	assert_non_null(t);
	memcpy(t, b, at);
	memcpy(t + at, b + at + n, blen - at - n);
	return t;
}

/* ---- the weak sum and block sums ---- */

static uint32_t
weak_ref(const unsigned char *p, size_t n)
{
	uint32_t h = 0;
	size_t i;

	for (i = 0; i < n; i++)
		h = h * PS_WEAK_MUL + p[i] + PS_WEAK_ADD;
	return h;
}

static void
test_weak_definition(void **state)
{
	unsigned char *p = random_bytes(70000);
	size_t n, o;
	int simd;

	(void)state;
	rng_state = 1;
	for (simd = 0; simd <= 1; simd++) {
		ps_match_simd = simd;
		for (n = 0; n < 300; n++)
			for (o = 0; o < 3; o++)
				assert_int_equal(ps_weak(p + o, n),
				    weak_ref(p + o, n));
		assert_int_equal(ps_weak(p + 1, 65537), weak_ref(p + 1, 65537));
		assert_int_equal(ps_weak(p, 70000), weak_ref(p, 70000));
	}
	ps_match_simd = 1;
	/* Zeros do not sum to zero, and runs of different length differ. */
	memset(p, 0, 4096);
	assert_int_not_equal(ps_weak(p, 4096), 0);
	assert_int_not_equal(ps_weak(p, 4096), ps_weak(p, 4095));
	free(p);
}

static void
test_blocksums(void **state)
{
	char path[] = "/tmp/ps_match_XXXXXX";
	struct ps_blocksums a, b;
	size_t len = 300 * KiB + 17;
	unsigned char *p;
	uint32_t i;
	int fd;

	(void)state;
	rng_state = 2;
	p = random_bytes(len);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);

	assert_int_equal(ps_blocksums_mem(p + 100, len - 100, 100, 4000, &a),
	    PS_OK);
	assert_int_equal(ps_blocksums_fd(fd, 100, len - 100, 4000, &b), PS_OK);
	assert_int_equal(a.n, (len - 100 + 3999) / 4000);
	assert_int_equal(b.n, a.n);
	assert_int_equal(b.base, 100);
	for (i = 0; i < a.n; i++) {
		size_t o = 100 + (size_t)i * 4000;
		size_t l = i + 1 < a.n ? 4000 : len - o;

		assert_int_equal(a.weak[i], weak_ref(p + o, l));
		assert_int_equal(a.strong[i], XXH3_64bits(p + o, l));
		assert_int_equal(b.weak[i], a.weak[i]);
		assert_int_equal(b.strong[i], a.strong[i]);
	}
	ps_blocksums_free(&b);
	/* Blocks bigger than the read chunk. */
	assert_int_equal(ps_blocksums_fd(fd, 0, len, PS_MATCH_BLOCK_MAX, &b),
	    PS_OK);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.strong[0], XXH3_64bits(p, len));
	ps_blocksums_free(&b);

	/* A file shorter than asked for. */
	errno = 0;
	assert_int_equal(ps_blocksums_fd(fd, 0, len + 1, 4096, &b),
	    PS_EPARTIAL);
	assert_int_equal(errno, ESTALE);
	assert_null(b.weak);
	assert_int_equal(ps_blocksums_fd(-1, 0, 10, 4096, &b), PS_EPARTIAL);
	assert_int_equal(errno, EBADF);

	/* Bounds. */
	assert_int_equal(ps_blocksums_mem(p, 10, 0, PS_MATCH_BLOCK_MIN - 1,
	    &b), PS_EUSAGE);
	assert_int_equal(ps_blocksums_mem(p, 10, 0, PS_MATCH_BLOCK_MAX + 1,
	    &b), PS_EUSAGE);
	assert_int_equal(ps_blocksums_fd(fd, 0, (uint64_t)PS_MATCH_MAX_BLOCKS *
	    64 + 1, 64, &b), PS_EUSAGE);
	assert_int_equal(ps_blocksums_fd(fd, UINT64_MAX - 5, 10, 64, &b),
	    PS_EUSAGE);
	/* Empty. */
	assert_int_equal(ps_blocksums_mem(p, 0, 7, 64, &b), PS_OK);
	assert_int_equal(b.n, 0);
	ps_blocksums_free(&b);

	ps_blocksums_free(&a);
	close(fd);
	unlink(path);
	free(p);
}

static void
test_bad_sums(void **state)
{
	uint32_t w[4] = { 0 };
	uint64_t st[4] = { 0 };
	struct ps_blocksums s = { 0, 4 * 1024, 1024, 4, w, st };
	struct ps_matcher *m = (struct ps_matcher *)&s;

	(void)state;
	assert_int_equal(ps_matcher_new(&s, &m), PS_OK);
	ps_matcher_free(m);
	s.n = 5;			/* count does not fit the length */
	assert_int_equal(ps_matcher_new(&s, &m), PS_EUSAGE);
	assert_null(m);
	s.n = 3;
	assert_int_equal(ps_matcher_new(&s, &m), PS_EUSAGE);
	s.n = 4;
	s.block_len = 32;		/* too small */
	assert_int_equal(ps_matcher_new(&s, &m), PS_EUSAGE);
	s.block_len = 2u << 20;		/* too big */
	assert_int_equal(ps_matcher_new(&s, &m), PS_EUSAGE);
	s.block_len = 1024;
	s.weak = NULL;
	assert_int_equal(ps_matcher_new(&s, &m), PS_EUSAGE);
	s.weak = w;
	s.base = UINT64_MAX - 100;	/* base + len overflows */
	assert_int_equal(ps_matcher_new(&s, &m), PS_EUSAGE);
	s.base = 0;
	s.len = (uint64_t)1024 * PS_MATCH_MAX_BLOCKS + 1;
	s.n = PS_MATCH_MAX_BLOCKS + 1;	/* absurd count */
	assert_int_equal(ps_matcher_new(&s, &m), PS_EUSAGE);
}

/* ---- exact cases ---- */

static void
test_identical(void **state)
{
	const size_t len = 1 * MiB + 123;	/* short last block */
	struct run r = { 0, 1 };
	struct ps_mops ops;
	unsigned char *p;

	(void)state;
	rng_state = 3;
	p = random_bytes(len);
	for (r.hint = 0; r.hint <= 1; r.hint++) {
		run_match(p, len, 4096, p, len, &r, &ops);
		assert_int_equal(ops.n, 1);
		assert_int_equal(ops.v[0].kind, PS_MOP_COPY);
		assert_int_equal(ops.v[0].basis_off, 0);
		assert_int_equal(ops.copy_bytes, len);
		if (r.hint) {
			/* Unchanged in place: nothing read, nothing hashed. */
			assert_int_equal(ops.stat_read, 0);
			assert_int_equal(ops.stat_strong, 0);
		} else
			assert_true(ops.stat_strong <= len / 4096 + 2);
		ps_mops_free(&ops);
	}
	/* Block length not a power of two, last block of one byte. */
	run_match(p, 3000 * 7 + 1, 3000, p, 3000 * 7 + 1, NULL, &ops);
	assert_int_equal(ops.n, 1);
	assert_int_equal(ops.literal_bytes, 0);
	ps_mops_free(&ops);
	free(p);
}

static void
test_shifts(void **state)
{
	const size_t len = 256 * KiB + 1000, bl = 4096;
	const size_t where[] = { 0, 1, 100 * KiB + 7, 100 * KiB,
	    len - 1, len };
	unsigned char x = 0xa5, *b, *t;
	struct run r = { 0, 1 };
	struct ps_mops ops;
	size_t i;

	(void)state;
	rng_state = 4;
	b = random_bytes(len);
	for (r.hint = 0; r.hint <= 1; r.hint++) {
		for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
			/* One byte inserted. */
			t = with_insert(b, len, where[i], &x, 1);
			run_match(b, len, bl, t, len + 1, &r, &ops);
			if (where[i] % bl == 0 || where[i] == len)
				assert_int_equal(ops.literal_bytes, 1);
			else
				assert_true(ops.literal_bytes <= bl + 1);
			ps_mops_free(&ops);
			free(t);
			if (where[i] == len)
				continue;
			/* One byte deleted. */
			t = with_delete(b, len, where[i], 1);
			run_match(b, len, bl, t, len - 1, &r, &ops);
			if (where[i] == 0)
				assert_int_equal(ops.literal_bytes,
				    bl - 1);
			else
				assert_true(ops.literal_bytes <= bl);
			ps_mops_free(&ops);
			free(t);
		}
	}
	/* Insertion at the first byte: one literal byte, then one COPY. */
	t = with_insert(b, len, 0, &x, 1);
	run_match(b, len, bl, t, len + 1, NULL, &ops);
	assert_int_equal(ops.n, 2);
	assert_int_equal(ops.v[1].kind, PS_MOP_COPY);
	assert_int_equal(ops.v[1].len, len);
	ps_mops_free(&ops);
	free(t);
	free(b);
}

static void
test_grow_shrink(void **state)
{
	const size_t len = 100 * KiB + 300, bl = 2048;
	unsigned char *b, *t, tail[100];
	struct run r = { 0, 1 };
	struct ps_mops ops;

	(void)state;
	rng_state = 5;
	b = random_bytes(len);
	fill_random(tail, sizeof(tail));
	for (r.hint = 0; r.hint <= 1; r.hint++) {
		/* Grows by less than a block: the old short block still
		 * matches, the new bytes are literal. */
		t = with_insert(b, len, len, tail, sizeof(tail));
		run_match(b, len, bl, t, len + sizeof(tail), &r, &ops);
		assert_int_equal(ops.literal_bytes, sizeof(tail));
		ps_mops_free(&ops);
		free(t);
		/* Shrinks by 100 bytes: only the cut tail block is literal. */
		run_match(b, len, bl, b, len - 100, &r, &ops);
		assert_int_equal(ops.literal_bytes, 300 - 100);
		ps_mops_free(&ops);
		/* Shrinks into the last full block. */
		run_match(b, len, bl, b, len - 400, &r, &ops);
		assert_int_equal(ops.literal_bytes, bl - 100);
		ps_mops_free(&ops);
	}
	free(b);
}

static void
test_empty_and_tiny(void **state)
{
	unsigned char a = 'a', z = 'z', *p;
	struct ps_blocksums s;
	struct ps_matcher *m;
	struct mt t = { &a, 1, UINT64_MAX };
	struct ps_mops ops = { 0 };

	(void)state;
	rng_state = 6;
	p = random_bytes(10000);
	/* Empty basis: one literal, the target is not read. */
	assert_int_equal(ps_blocksums_mem(p, 0, 0, 4096, &s), PS_OK);
	assert_int_equal(ps_matcher_new(&s, &m), PS_OK);
	t.p = p;
	t.len = 10000;
	assert_int_equal(ps_match(m, mt_read, &t, 0, 10000, NULL, 2, &ops),
	    PS_OK);
	assert_int_equal(ops.n, 1);
	assert_int_equal(ops.literal_bytes, 10000);
	assert_int_equal(ops.stat_read, 0);
	ps_mops_free(&ops);
	/* Empty target. */
	assert_int_equal(ps_match(m, mt_read, &t, 0, 0, NULL, 1, &ops),
	    PS_OK);
	assert_int_equal(ops.n, 0);
	ps_matcher_free(m);
	ps_blocksums_free(&s);
	run_match(p, 10000, 4096, p, 0, NULL, &ops);
	assert_int_equal(ops.n, 0);
	ps_mops_free(&ops);

	/* One-byte files. */
	run_match(&a, 1, PS_MATCH_BLOCK_MIN, &a, 1, NULL, &ops);
	assert_int_equal(ops.n, 1);
	assert_int_equal(ops.v[0].kind, PS_MOP_COPY);
	ps_mops_free(&ops);
	run_match(&a, 1, PS_MATCH_BLOCK_MIN, &z, 1, NULL, &ops);
	assert_int_equal(ops.n, 1);
	assert_int_equal(ops.v[0].kind, PS_MOP_LITERAL);
	ps_mops_free(&ops);
	/* A basis smaller than a block found at the end of a target. */
	run_match(p, 50, 64, p + 10, 40, NULL, &ops);
	assert_int_equal(ops.copy_bytes, 0);
	ps_mops_free(&ops);
	{
		unsigned char *t2 = with_insert(p, 50, 0, p + 500, 300);

		run_match(p, 50, 64, t2, 350, NULL, &ops);
		assert_int_equal(ops.copy_bytes, 50);
		assert_int_equal(ops.v[ops.n - 1].basis_off, 0);
		ps_mops_free(&ops);
		free(t2);
	}
	free(p);
}

static void
test_moved_blocks(void **state)
{
	const size_t bl = 4096;
	const int order[] = { 4, 2, 0, 3, 1, 1, 4 };
	unsigned char *b, *t;
	struct ps_mops ops;
	size_t i, k = sizeof(order) / sizeof(order[0]);

	(void)state;
	rng_state = 7;
	b = random_bytes(5 * bl);
	t = malloc(k * bl + 10);
	assert_non_null(t);
	for (i = 0; i < k; i++)
		memcpy(t + i * bl, b + order[i] * bl, bl);
	run_match(b, 5 * bl, bl, t, k * bl, NULL, &ops);
	assert_int_equal(ops.literal_bytes, 0);
	assert_int_equal(ops.n, k);
	for (i = 0; i < k; i++)
		assert_int_equal(ops.v[i].basis_off, order[i] * bl);
	ps_mops_free(&ops);
	/* Moved by an odd amount between junk. */
	memmove(t + 77, t, 3 * bl);
	fill_random(t, 77);
	run_match(b, 5 * bl, bl, t, 3 * bl + 77 + 5, NULL, &ops);
	assert_int_equal(ops.literal_bytes, 77 + 5);
	ps_mops_free(&ops);
	free(t);
	free(b);
}

/*
 * Four byte differences D at exponents E (positions counted from the
 * window's end) that leave the weak sum unchanged: d0 M^e0 + d1 M^e1 +
 * d2 M^e2 + d3 M^e3 == 0 mod 2^32, |d| <= 127. Meet in the middle.
 */
struct half {
	uint32_t v;
	int8_t a, b;
};

static int
half_cmp(const void *x, const void *y)
{
	const struct half *p = x, *q = y;

	return p->v < q->v ? -1 : p->v > q->v;
}

static uint32_t
mpow(unsigned e)
{
	uint32_t r = 1;

	while (e-- > 0)
		r *= PS_WEAK_MUL;
	return r;
}

static void
find_collision(int d[4], unsigned e[4])
{
	struct half *tab = malloc(255 * 255 * sizeof(*tab)), key, *f;
	unsigned j;
	int x, y, n;

	assert_non_null(tab);
	for (j = 0; j < 64; j++) {
		uint32_t p0, p1, p2, p3;

		e[0] = 0, e[1] = 1, e[2] = 2, e[3] = 3 + j;
		p0 = mpow(e[0]), p1 = mpow(e[1]), p2 = mpow(e[2]);
		p3 = mpow(e[3]);
		n = 0;
		for (x = -127; x <= 127; x++)
			for (y = -127; y <= 127; y++) {
				tab[n].v = (uint32_t)x * p0 + (uint32_t)y * p1;
				tab[n].a = (int8_t)x;
				tab[n].b = (int8_t)y;
				n++;
			}
		qsort(tab, (size_t)n, sizeof(*tab), half_cmp);
		for (x = -127; x <= 127; x++)
			for (y = -127; y <= 127; y++) {
				if (x == 0 && y == 0)
					continue;
				key.v = 0u - ((uint32_t)x * p2 +
				    (uint32_t)y * p3);
				f = bsearch(&key, tab, (size_t)n, sizeof(*tab),
				    half_cmp);
				if (f == NULL)
					continue;
				d[0] = f->a, d[1] = f->b, d[2] = x, d[3] = y;
				free(tab);
				return;
			}
	}
	fail_msg("no weak-sum collision found");
}

/* Add the differences at window end offset AT (in a block of BL). */
static void
apply_diff(unsigned char *blk, size_t bl, size_t at, const int d[4],
    const unsigned e[4], int sign)
{
	int i;

	for (i = 0; i < 4; i++)
		blk[bl - 1 - at - e[i]] = (unsigned char)(blk[bl - 1 - at -
		    e[i]] + sign * d[i]);
}

static void
test_weak_collision(void **state)
{
	const size_t bl = 1024;
	unsigned char *x, *y, *t;
	struct ps_mops ops;
	unsigned e[4];
	int d[4], i;

	(void)state;
	rng_state = 8;
	find_collision(d, e);
	x = random_bytes(bl);
	for (i = 0; i < 4; i++)		/* room for +-127 */
		x[bl - 1 - e[i]] = 128;
	y = malloc(bl);
	assert_non_null(y);
	memcpy(y, x, bl);
	apply_diff(y, bl, 0, d, e, 1);
	assert_memory_not_equal(x, y, bl);
	assert_int_equal(ps_weak(x, bl), ps_weak(y, bl));

	/* Same weak sum, other content: literal, after one strong sum. */
	run_match(x, bl, bl, y, bl, NULL, &ops);
	assert_int_equal(ops.literal_bytes, bl);
	assert_int_equal(ops.stat_weak_hits, 1);
	assert_int_equal(ops.stat_strong, 1);
	ps_mops_free(&ops);
	/* ... and the real block behind it is still found. */
	t = with_insert(x, bl, 0, y, bl);
	run_match(x, bl, bl, t, 2 * bl, NULL, &ops);
	assert_int_equal(ops.literal_bytes, bl);
	assert_int_equal(ops.copy_bytes, bl);
	ps_mops_free(&ops);
	free(t);
	free(x);
	free(y);
}

/* Many distinct blocks with one weak sum: at most the cap is indexed. */
static void
test_collision_cap(void **state)
{
	const size_t bl = 1024, nv = 128;
	unsigned char *b, *t;
	struct ps_mops ops;
	unsigned e[4];
	int d[4];
	size_t v, k, i;

	(void)state;
	rng_state = 9;
	find_collision(d, e);
	b = malloc(nv * bl);
	assert_non_null(b);
	fill_random(b, bl);
	for (k = 0; k < 7; k++)
		for (i = 0; i < 4; i++)
			b[bl - 1 - 80 * k - e[i]] = 128;
	/* Variant v has the differences at the places of v's bits. */
	for (v = 1; v < nv; v++) {
		memcpy(b + v * bl, b, bl);
		for (k = 0; k < 7; k++)
			if (v >> k & 1)
				apply_diff(b + v * bl, bl, 80 * k, d, e, 1);
	}
	for (v = 1; v < nv; v++) {
		assert_int_equal(ps_weak(b + v * bl, bl), ps_weak(b, bl));
		assert_memory_not_equal(b + v * bl, b, bl);
	}
	/* The first PS_MATCH_CANDIDATES are found by rolling ... */
	t = malloc(nv * bl);
	assert_non_null(t);
	t[0] = 1;
	memcpy(t + 1, b + 5 * bl, bl);
	run_match(b, nv * bl, bl, t, bl + 1, NULL, &ops);
	assert_int_equal(ops.copy_bytes, bl);
	assert_int_equal(ops.v[1].basis_off, 5 * bl);
	ps_mops_free(&ops);
	/* ... those past the cap are not, and cost one strong sum each
	 * position whatever the group size. */
	memcpy(t + 1, b + 100 * bl, bl);
	run_match(b, nv * bl, bl, t, bl + 1, NULL, &ops);
	assert_int_equal(ops.copy_bytes, 0);
	assert_int_equal(ops.stat_strong, ops.stat_weak_hits);
	ps_mops_free(&ops);
	/* After a match, the next block is found by extension even when
	 * the index does not list it: variant 7 (indexed), then 8. */
	memcpy(t + 1, b + 7 * bl, 2 * bl);
	run_match(b, nv * bl, bl, t, 2 * bl + 1, NULL, &ops);
	assert_int_equal(ops.copy_bytes, 2 * bl);
	ps_mops_free(&ops);
	free(t);
	free(b);
}

/* ---- linear time on repeats and crafted collisions ---- */

static void
test_zeros(void **state)
{
	const size_t tlen = 64 * MiB + 100, blen = 1 * MiB, bl = 4096;
	unsigned char *z = calloc(1, tlen), *r;
	struct ps_mops ops;

	(void)state;
	assert_non_null(z);
	rng_state = 10;
	/* Zeros against zeros: copies, about one strong sum per block. */
	run_match(z, blen, bl, z, tlen, NULL, &ops);
	assert_int_equal(ops.literal_bytes, 100);
	assert_true(ops.stat_strong <= 2 * (tlen / bl) + 8);
	ps_mops_free(&ops);
	/* Zeros against random data, and random data against zeros. */
	r = random_bytes(blen);
	run_match(r, blen, bl, z, 8 * MiB, NULL, &ops);
	assert_int_equal(ops.literal_bytes, 8 * MiB);
	assert_true(ops.stat_strong <= 2);
	ps_mops_free(&ops);
	run_match(z, blen, bl, r, blen, NULL, &ops);
	assert_int_equal(ops.literal_bytes, blen);
	assert_true(ops.stat_strong <= 2);
	ps_mops_free(&ops);
	free(r);
	free(z);
}

/*
 * A target that is one constant byte, and a basis block with the same
 * weak sum but other bytes: every target position hits the weak sum.
 * The strong sums computed must stay O(target / block), not O(target).
 */
static void
test_hostile_run(void **state)
{
	const size_t tlen = 16 * MiB, bl = 4096;
	unsigned char *t, *b;
	struct ps_mops ops;
	unsigned e[4];
	int d[4];

	(void)state;
	find_collision(d, e);
	t = malloc(tlen);
	b = malloc(bl);
	assert_non_null(t);
	assert_non_null(b);
	memset(t, 0x80, tlen);
	memset(b, 0x80, bl);
	apply_diff(b, bl, 100, d, e, 1);
	assert_int_equal(ps_weak(b, bl), ps_weak(t, bl));
	run_match(b, bl, bl, t, tlen, NULL, &ops);
	assert_int_equal(ops.literal_bytes, tlen);
	/* Every window is a weak hit ... */
	assert_true(ops.stat_weak_hits >= tlen - bl);
	/* ... but few of them are hashed. */
	assert_true(ops.stat_strong <= 8 * (tlen / bl) + 64);
	ps_mops_free(&ops);
	free(t);
	free(b);
}

/* ---- errors ---- */

static void
test_read_errors(void **state)
{
	const size_t len = 3 * MiB;
	struct ps_mops ops = { 0 }, before;
	struct ps_blocksums s;
	struct ps_matcher *m;
	unsigned char *b, *t;
	struct mt mt;
	unsigned th;

	(void)state;
	rng_state = 11;
	b = random_bytes(len);
	t = with_insert(b, len, 1000, b, 10);
	assert_int_equal(ps_blocksums_mem(b, len, 0, 4096, &s), PS_OK);
	assert_int_equal(ps_matcher_new(&s, &m), PS_OK);
	/* Ops already in OUT stay as they were. */
	ps_mops_add(&ops, PS_MOP_LITERAL, 0, 5, 0);
	before = ops;
	for (th = 1; th <= 2; th++) {
		mt.p = t;
		mt.len = len + 10;
		mt.fail_at = 2 * MiB;
		errno = 0;
		assert_int_equal(ps_match(m, mt_read, &mt, 5, len + 5, NULL, th,
		    &ops), PS_EPARTIAL);
		assert_int_equal(errno, EIO);
		assert_int_equal(ops.n, before.n);
		assert_int_equal(ops.v[0].len, 5);
		assert_int_equal(ops.literal_bytes, 5);
		/* Shorter than announced. */
		mt.fail_at = UINT64_MAX;
		mt.len = len;
		errno = 0;
		assert_int_equal(ps_match(m, mt_read, &mt, 5, len + 5, NULL, th,
		    &ops), PS_EPARTIAL);
		assert_int_equal(errno, ESTALE);
		assert_int_equal(ops.n, 1);
		assert_int_equal(ops.copy_bytes, 0);
	}
	/* The same call on the whole target works. */
	mt.len = len + 10;
	assert_int_equal(ps_match(m, mt_read, &mt, 5, len + 5, NULL, 1, &ops),
	    PS_OK);
	check_ops(&ops, 0, 0, len + 10);
	ps_mops_free(&ops);
	ps_matcher_free(m);
	ps_blocksums_free(&s);
	free(t);
	free(b);
}

/* ---- threads ---- */

/* Random edits: overwrite, insert, delete; returns the new length. */
static size_t
edit(unsigned char *t, size_t len, size_t cap, int nedits, size_t maxlen)
{
	int i;
	size_t at, n;

	for (i = 0; i < nedits && len > 0; i++) {
		at = (size_t)rnd(len);
		n = 1 + (size_t)rnd(maxlen);
		switch (rnd(3)) {
		case 0:		/* overwrite */
			n = n < len - at ? n : len - at;
			fill_random(t + at, n);
			break;
		case 1:		/* insert */
			if (len + n > cap)
				break;
			memmove(t + at + n, t + at, len - at);
			fill_random(t + at, n);
			len += n;
			break;
		default:	/* delete */
			n = n < len - at ? n : len - at;
			memmove(t + at, t + at + n, len - at - n);
			len -= n;
			break;
		}
	}
	return len;
}

static void
test_threads(void **state)
{
	const size_t len = 13 * MiB, bl = 8192;
	struct ps_mops o1, o2;
	struct run r = { 0, 1 };
	unsigned char *b, *t;
	size_t tlen;

	(void)state;
	rng_state = 12;
	b = random_bytes(len);
	t = malloc(len + MiB);
	assert_non_null(t);
	memcpy(t, b, len);
	tlen = edit(t, len, len + MiB, 40, 3000);
	for (r.hint = 0; r.hint <= 1; r.hint++) {
		r.threads = 1;
		run_match(b, len, bl, t, tlen, &r, &o1);
		r.threads = 2;
		run_match(b, len, bl, t, tlen, &r, &o2);
		/* A slice boundary loses at most about a block each side. */
		assert_true(o2.literal_bytes <= o1.literal_bytes + 2 * bl);
		ps_mops_free(&o2);
		r.threads = 3;
		run_match(b, len, bl, t, tlen, &r, &o2);
		assert_true(o2.literal_bytes <= o1.literal_bytes + 4 * bl);
		/* Same inputs, same thread count: same ops. */
		{
			struct ps_mops o3;
			size_t i;

			run_match(b, len, bl, t, tlen, &r, &o3);

			assert_int_equal(o3.n, o2.n);
			for (i = 0; i < o2.n; i++) {
				assert_int_equal(o3.v[i].kind, o2.v[i].kind);
				assert_int_equal(o3.v[i].len, o2.v[i].len);
				assert_int_equal(o3.v[i].basis_off,
				    o2.v[i].basis_off);
			}
			ps_mops_free(&o3);
		}
		ps_mops_free(&o1);
		ps_mops_free(&o2);
	}
	free(t);
	free(b);
}

/* The AVX2 and the portable scan find the same windows. */
static void
test_scanners_agree(void **state)
{
	const size_t len = 2 * MiB, bl = 200;
	struct ps_mops o[2];
	unsigned char *b, *t;
	size_t tlen, i;
	int simd;

	(void)state;
	rng_state = 14;
	b = random_bytes(len);
	t = malloc(len + MiB);
	assert_non_null(t);
	memcpy(t, b, len);
	tlen = edit(t, len, len + MiB, 300, 5000);
	for (simd = 0; simd <= 1; simd++) {
		ps_match_simd = simd;
		run_match(b, len, bl, t, tlen, NULL, &o[simd]);
	}
	ps_match_simd = 1;
	assert_int_equal(o[0].n, o[1].n);
	for (i = 0; i < o[0].n; i++) {
		assert_int_equal(o[0].v[i].kind, o[1].v[i].kind);
		assert_int_equal(o[0].v[i].len, o[1].v[i].len);
		assert_int_equal(o[0].v[i].basis_off, o[1].v[i].basis_off);
	}
	/* Same bitmap survivors, same table hits. */
	assert_true(o[0].stat_weak_hits > 0);
	assert_int_equal(o[0].stat_weak_hits, o[1].stat_weak_hits);
	assert_int_equal(o[0].stat_strong, o[1].stat_strong);
	ps_mops_free(&o[0]);
	ps_mops_free(&o[1]);
	free(t);
	free(b);
}

/* ---- refinement helpers ---- */

static void
test_gaps_splice(void **state)
{
	struct ps_mops o = { 0 }, sub = { 0 }, subs[2] = { { 0 } }, bad = { 0 };
	struct ps_gap *g;
	size_t n, idx[2];

	(void)state;
	/* L(0,100) C(100,1000<-100) L(1100,500) C(1600,1000<-1500)
	 * L(2600,50) C(2650,10<-9000) L(2660,3000) */
	ps_mops_add(&o, PS_MOP_LITERAL, 0, 100, 0);
	ps_mops_add(&o, PS_MOP_COPY, 100, 1000, 100);
	ps_mops_add(&o, PS_MOP_LITERAL, 1100, 500, 0);
	ps_mops_add(&o, PS_MOP_COPY, 1600, 1000, 1500);
	ps_mops_add(&o, PS_MOP_LITERAL, 2600, 50, 0);
	ps_mops_add(&o, PS_MOP_COPY, 2650, 10, 9000);
	ps_mops_add(&o, PS_MOP_LITERAL, 2660, 3000, 0);
	/* Merging: a contiguous copy and a literal extend the last ops. */
	ps_mops_add(&o, PS_MOP_LITERAL, 5660, 40, 0);
	assert_int_equal(o.n, 7);
	assert_int_equal(o.v[6].len, 3040);
	assert_int_equal(o.literal_bytes, 100 + 500 + 50 + 3040);
	assert_int_equal(o.copy_bytes, 2010);

	n = ps_match_gaps(&o, 12000, 60, 64, &g);
	/* op 0: basis [0,100); op 2: [1100,1500); op 4 too short;
	 * op 6: [9010,12000) is 2990 <= 4*3040+64. */
	assert_int_equal(n, 3);
	assert_int_equal(g[0].op, 0);
	assert_int_equal(g[0].basis_off, 0);
	assert_int_equal(g[0].basis_len, 100);
	assert_int_equal(g[1].op, 2);
	assert_int_equal(g[1].basis_off, 1100);
	assert_int_equal(g[1].basis_len, 400);
	assert_int_equal(g[2].op, 6);
	assert_int_equal(g[2].basis_off, 9010);
	assert_int_equal(g[2].basis_len, 2990);
	free(g);
	/* A gap much bigger than its literal is not worth it. */
	n = ps_match_gaps(&o, 30000, 60, 64, &g);
	assert_int_equal(n, 2);
	free(g);
	/* Nothing qualifies. */
	n = ps_match_gaps(&o, 12000, 100000, 64, &g);
	assert_int_equal(n, 0);
	assert_null(g);

	/* Splice op 2 (L 1100+500): C(1100,100<-1100) L(1200,400): the
	 * copy continues op 1's source, so they merge. */
	ps_mops_add(&sub, PS_MOP_COPY, 1100, 100, 1100);
	ps_mops_add(&sub, PS_MOP_LITERAL, 1200, 400, 0);
	assert_int_equal(ps_mops_splice(&o, 2, &sub), PS_OK);
	assert_int_equal(o.n, 7);
	assert_int_equal(o.v[1].len, 1100);
	assert_int_equal(o.v[2].kind, PS_MOP_LITERAL);
	assert_int_equal(o.v[2].len, 400);
	assert_int_equal(o.copy_bytes, 2110);
	assert_int_equal(o.literal_bytes, 3590);
	check_ops(&o, 0, 0, 5700);

	/* Misfits change nothing. */
	ps_mops_add(&bad, PS_MOP_LITERAL, 1200, 399, 0);
	assert_int_equal(ps_mops_splice(&o, 2, &bad), PS_EUSAGE);
	assert_int_equal(ps_mops_splice(&o, 99, &bad), PS_EUSAGE);
	assert_int_equal(ps_mops_splice(&o, 0, &bad), PS_EUSAGE);
	assert_int_equal(o.n, 7);

	/* Two at once: op 0 becomes a full copy merging into op 1; op 6
	 * (L 2660+3040) becomes L, C, L. */
	ps_mops_add(&subs[0], PS_MOP_COPY, 0, 100, 0);
	ps_mops_add(&subs[1], PS_MOP_LITERAL, 2660, 40, 0);
	ps_mops_add(&subs[1], PS_MOP_COPY, 2700, 1000, 9500);
	ps_mops_add(&subs[1], PS_MOP_LITERAL, 3700, 2000, 0);
	idx[0] = 0;
	idx[1] = 6;
	assert_int_equal(ps_mops_splice_many(&o, idx, subs, 2), PS_OK);
	check_ops(&o, 0, 0, 5700);
	assert_int_equal(o.v[0].kind, PS_MOP_COPY);
	assert_int_equal(o.v[0].len, 1200);
	assert_int_equal(o.n, 8);
	assert_int_equal(o.copy_bytes, 2110 + 100 + 1000);
	/* Out of order indices are refused. */
	idx[0] = 3;
	idx[1] = 2;
	assert_int_equal(ps_mops_splice_many(&o, idx, subs, 2), PS_EUSAGE);

	ps_mops_free(&o);
	ps_mops_free(&sub);
	ps_mops_free(&subs[0]);
	ps_mops_free(&subs[1]);
	ps_mops_free(&bad);
}

/*
 * Match, then refine every literal gap with FINE-byte sums of the basis
 * gap; returns the final ops (checked) in OPS.
 */
static void
refine(const unsigned char *b, size_t blen, const unsigned char *t,
    size_t tlen, uint32_t coarse, uint32_t fine, struct ps_mops *ops)
{
	struct mt mt = { t, tlen, UINT64_MAX };
	struct ps_mops *subs;
	struct ps_blocksums s;
	struct ps_matcher *m;
	struct ps_gap *g;
	size_t n, i, *idx;

	run_match(b, blen, coarse, t, tlen, NULL, ops);
	n = ps_match_gaps(ops, blen, fine, coarse, &g);
	subs = calloc(n + 1, sizeof(*subs));
	idx = calloc(n + 1, sizeof(*idx));
	assert_non_null(subs);
	assert_non_null(idx);
	for (i = 0; i < n; i++) {
		const struct ps_mop *o = &ops->v[g[i].op];

		assert_int_equal(ps_blocksums_mem(b + g[i].basis_off,
		    g[i].basis_len, g[i].basis_off, fine, &s), PS_OK);
		assert_int_equal(ps_matcher_new(&s, &m), PS_OK);
		assert_int_equal(ps_match(m, mt_read, &mt, o->target_off,
		    o->len, NULL, 1, &subs[i]), PS_OK);
		check_ops(&subs[i], 0, o->target_off, o->len);
		idx[i] = g[i].op;
		ps_matcher_free(m);
		ps_blocksums_free(&s);
	}
	assert_int_equal(ps_mops_splice_many(ops, idx, subs, n), PS_OK);
	check_ops(ops, 0, 0, tlen);
	check_rebuild(ops, b, blen, t, tlen);
	for (i = 0; i < n; i++)
		ps_mops_free(&subs[i]);
	free(subs);
	free(idx);
	free(g);
}

static void
test_refine_round_trip(void **state)
{
	const size_t len = 8 * MiB, nedit = 300;
	struct ps_mops coarse, fine;
	unsigned char *b, *t;
	size_t i, at;

	(void)state;
	rng_state = 13;
	b = random_bytes(len);
	t = malloc(len);
	assert_non_null(t);
	memcpy(t, b, len);
	for (i = 0; i < nedit; i++) {
		at = (size_t)rnd(len - 100);
		fill_random(t + at, 100);
	}
	run_match(b, len, 16384, t, len, NULL, &coarse);
	refine(b, len, t, len, 16384, 256, &fine);
	/* Coarse: about a block per edit; fine: about 100 + 2 * 256. */
	assert_true(coarse.literal_bytes > nedit * 8192);
	assert_true(fine.literal_bytes <= nedit * (100 + 2 * 256));
	assert_true(fine.literal_bytes >= nedit * 50);
	ps_mops_free(&coarse);
	ps_mops_free(&fine);
	free(t);
	free(b);
}

/* ---- property test ---- */

/* Apply one random edit of any kind to T (LEN bytes, room for CAP). */
static size_t
random_edit(unsigned char *t, size_t len, size_t cap, size_t scale)
{
	size_t at, n, from;
	unsigned char *tmp;

	at = (size_t)rnd(len + 1);
	n = 1 + (size_t)rnd(rnd(4) == 0 ? 3 * scale : 64);
	switch (rnd(5)) {
	case 0:		/* insert random bytes */
		if (len + n > cap)
			return len;
		memmove(t + at + n, t + at, len - at);
		fill_random(t + at, n);
		return len + n;
	case 1:		/* delete */
		n = n < len - at ? n : len - at;
		memmove(t + at, t + at + n, len - at - n);
		return len - n;
	case 2:		/* overwrite */
		n = n < len - at ? n : len - at;
		fill_random(t + at, n);
		return len;
	case 3:		/* move a range elsewhere */
		n = n < len - at ? n : len - at;
		tmp = malloc(n + 1);
		assert_non_null(tmp);
		memcpy(tmp, t + at, n);
		memmove(t + at, t + at + n, len - at - n);
		from = (size_t)rnd(len - n + 1);
		memmove(t + from + n, t + from, len - n - from);
		memcpy(t + from, tmp, n);
		free(tmp);
		return len;
	default:	/* duplicate a range */
		n = n < len - at ? n : len - at;
		if (len + n > cap)
			return len;
		tmp = malloc(n + 1);
		assert_non_null(tmp);
		memcpy(tmp, t + at, n);
		from = (size_t)rnd(len + 1);
		memmove(t + from + n, t + from, len - from);
		memcpy(t + from, tmp, n);
		free(tmp);
		return len + n;
	}
}

/*
 * Match target range [TO, TO+TL) against the sums of basis range
 * [BO, BO+BL_LEN) in blocks of BL, with a hint of the target's sums over
 * [HO, HO+HL) when HL > 0; check coverage and the rebuild.
 */
static void
match_ranges(const unsigned char *b, size_t blen, size_t bo, size_t bl_len,
    const unsigned char *t, size_t tlen, size_t to, size_t tl, size_t ho,
    size_t hl, uint32_t bl, unsigned threads, struct ps_mops *ops)
{
	struct mt mt = { t, tlen, UINT64_MAX };
	struct ps_blocksums s, h;
	struct ps_matcher *m;
	unsigned char *out = malloc(tl + 1);

	assert_non_null(out);
	memset(ops, 0, sizeof(*ops));
	assert_int_equal(ps_blocksums_mem(b + bo, bl_len, bo, bl, &s), PS_OK);
	assert_int_equal(ps_matcher_new(&s, &m), PS_OK);
	if (hl > 0)
		assert_int_equal(ps_blocksums_mem(t + ho, hl, ho, bl, &h),
		    PS_OK);
	assert_int_equal(ps_match(m, mt_read, &mt, to, tl, hl ? &h : NULL,
	    threads, ops), PS_OK);
	check_ops(ops, 0, to, tl);
	assert_int_equal(ps_mops_apply(ops, b, blen, t, to, tl, out), PS_OK);
	assert_memory_equal(out, t + to, tl);
	/* Copies come from the summed basis range only. */
	{
		size_t i;

		for (i = 0; i < ops->n; i++)
			if (ops->v[i].kind == PS_MOP_COPY)
				assert_true(ops->v[i].basis_off >= bo &&
				    ops->v[i].basis_off + ops->v[i].len <=
				    bo + bl_len);
	}
	if (hl > 0)
		ps_blocksums_free(&h);
	ps_matcher_free(m);
	ps_blocksums_free(&s);
	free(out);
}

static void
one_property_case(uint64_t seed)
{
	size_t blen, tlen, cap, k, nedit, bo, bn, to, tn, ho, hn;
	unsigned char *b, *t;
	struct ps_mops ops;
	unsigned threads;
	uint32_t bl;

	rng_state = seed;
	blen = (size_t)rnd(rnd(8) == 0 ? 3 * MiB : 64 * KiB);
	bl = (uint32_t)(PS_MATCH_BLOCK_MIN + rnd(rnd(2) ? 4096 : 65536));
	if (rnd(4) == 0)
		bl = 1u << (6 + rnd(10));
	cap = blen + 512 * KiB;
	b = random_bytes(blen);
	if (rnd(8) == 0)	/* low-entropy data: repeats everywhere */
		for (k = 0; k < blen; k++)
			b[k] = (unsigned char)(k % 7 == 0 ? rnd(3) : 0);
	t = malloc(cap);
	assert_non_null(t);
	memcpy(t, b, blen);
	tlen = blen;
	nedit = (size_t)rnd(9);
	for (k = 0; k < nedit; k++)
		tlen = random_edit(t, tlen, cap, bl);
	/* Mostly whole files; sometimes a region of the basis (sums with
	 * a base), of the target, and a hint over the target or a region. */
	bo = 0, bn = blen, to = 0, tn = tlen, ho = 0, hn = 0;
	if (rnd(4) == 0) {
		bo = (size_t)rnd(blen + 1);
		bn = (size_t)rnd(blen - bo + 1);
	}
	if (rnd(4) == 0) {
		to = (size_t)rnd(tlen + 1);
		tn = (size_t)rnd(tlen - to + 1);
	}
	if (rnd(2)) {
		hn = tlen;
		if (rnd(3) == 0) {
			ho = (size_t)rnd(tlen + 1);
			hn = (size_t)rnd(tlen - ho + 1);
		}
	}
	threads = 1 + (unsigned)rnd(4);
	ps_match_simd = rnd(4) != 0;
	/* Small slices, so that threads split these small targets. */
	ps_match_slice_min = 1 + rnd(tn / 2 + 1);
	match_ranges(b, blen, bo, bn, t, tlen, to, tn, ho, hn, bl, threads,
	    &ops);
	ps_match_simd = 1;
	ps_match_slice_min = 4 * MiB;
	/* An unedited whole target is all COPY (slices are cut on the
	 * grid). */
	if (nedit == 0 && bn == blen && tn == tlen && (hn == 0 ||
	    hn == tlen))
		assert_int_equal(ops.literal_bytes, 0);
	ps_mops_free(&ops);
	free(t);
	free(b);
}

/* The case running now; the teardown names it when it did not finish. */
static uint64_t prop_seed;
static int prop_running;

static void
test_property(void **state)
{
	const char *s = getenv("PS_MATCH_SEED");
	const char *it = getenv("PS_MATCH_ITERATIONS");
	uint64_t seed = s ? strtoull(s, NULL, 0) : 20261130;
	unsigned long n = it ? strtoul(it, NULL, 0) : 200, i;

	(void)state;
	fprintf(stderr, "# property test: PS_MATCH_SEED=%" PRIu64
	    " PS_MATCH_ITERATIONS=%lu\n", seed, n);
	for (i = 0; i < n; i++) {
		prop_seed = seed + i;
		prop_running = 1;
		one_property_case(prop_seed);
		prop_running = 0;
	}
}

static int
property_teardown(void **state)
{
	(void)state;
	if (prop_running)
		fprintf(stderr, "# property case failed; replay it with "
		    "PS_MATCH_SEED=%" PRIu64 " PS_MATCH_ITERATIONS=1\n",
		    prop_seed);
	prop_running = 0;
	ps_match_simd = 1;
	ps_match_slice_min = 4 * MiB;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weak_definition),
		cmocka_unit_test(test_blocksums),
		cmocka_unit_test(test_bad_sums),
		cmocka_unit_test(test_identical),
		cmocka_unit_test(test_shifts),
		cmocka_unit_test(test_grow_shrink),
		cmocka_unit_test(test_empty_and_tiny),
		cmocka_unit_test(test_moved_blocks),
		cmocka_unit_test(test_weak_collision),
		cmocka_unit_test(test_collision_cap),
		cmocka_unit_test(test_zeros),
		cmocka_unit_test(test_hostile_run),
		cmocka_unit_test(test_read_errors),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_scanners_agree),
		cmocka_unit_test(test_gaps_splice),
		cmocka_unit_test(test_refine_round_trip),
		cmocka_unit_test_teardown(test_property, property_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
