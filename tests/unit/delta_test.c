/*
 * delta_test.c — plan + signature + delta + patch must rebuild the new
 * file byte for byte from the old one in every shape of change, send
 * little when little changed, and refuse (never crash on) a corrupt
 * signature or delta.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delta.h"
#include "manifest.h"

/* ---- helpers ---- */

static uint64_t rng_state;

static uint64_t
rng(void)
{
	/* splitmix64: repeatable data from a seed */
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void
fill_random(unsigned char *p, size_t n)
{
	uint64_t v;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		v = rng();
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (unsigned char)rng();
}

static unsigned char *
random_bytes(size_t n)
{
	unsigned char *p = malloc(n ? n : 1);

	assert_non_null(p);
	fill_random(p, n);
	return p;
}

struct fixture {
	char dir[64];
	char old_path[96];
	char new_path[96];
	char out_path[96];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	memcpy(f->dir, "/tmp/ps_delta_XXXXXX", 21);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->old_path, sizeof(f->old_path), "%s/old", f->dir);
	snprintf(f->new_path, sizeof(f->new_path), "%s/new", f->dir);
	snprintf(f->out_path, sizeof(f->out_path), "%s/out", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->old_path);
	unlink(f->new_path);
	unlink(f->out_path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

/* Every op in order, no gap, no overlap, regions inside the basis. */
static void
check_cover(const struct ps_plan *pl, uint64_t tsize, uint64_t bsize)
{
	uint64_t at = 0, c = 0, d = 0, l = 0;
	size_t i;

	for (i = 0; i < pl->n; i++) {
		const struct ps_plan_op *o = &pl->ops[i];

		assert_int_equal(o->target_off, at);
		assert_true(o->len > 0);
		at += o->len;
		switch (o->kind) {
		case PS_OP_COPY:
			assert_true(o->basis_off + o->len <= bsize);
			c += o->len;
			break;
		case PS_OP_DELTA:
			assert_true(o->basis_len > 0);
			assert_true(o->basis_off + o->basis_len <= bsize);
			assert_true(o->sig_block_len >= 512 &&
			    o->sig_block_len <= 16384);
			assert_int_equal(o->sig_block_len &
			    (o->sig_block_len - 1), 0);
			assert_true(o->len <= PS_PIECE_MAX);
			d += o->len;
			break;
		case PS_OP_LITERAL:
			l += o->len;
			break;
		default:
			fail_msg("bad op kind %d", o->kind);
		}
	}
	assert_int_equal(at, tsize);
	assert_int_equal(c, pl->copy_bytes);
	assert_int_equal(d, pl->delta_bytes);
	assert_int_equal(l, pl->literal_bytes);
}

static int
collect(const void *p, size_t n, void *arg)
{
	assert_true(n <= (1u << 20));
	buf_add(arg, p, n);
	return 0;
}

/* Feed D to a patcher in uneven pieces (as the network would). */
static int
patch_pieces(struct ps_patch *p, const struct buf *d)
{
	size_t at = 0, n;
	int r;

	while (at < d->len) {
		n = 1 + (size_t)(rng() % 9000);
		if (n > d->len - at)
			n = d->len - at;
		if ((r = ps_patch_feed(p, d->p + at, n)) != PS_OK) {
			/* a failed feed stays failed; end reports it */
			assert_int_equal(ps_patch_feed(p, "x", 1), r);
			assert_int_equal(ps_patch_end(p), r);
			return r;
		}
		at += n;
	}
	return ps_patch_end(p);
}

struct stats {
	struct ps_plan plan;
	uint64_t sig_bytes;
	uint64_t delta_bytes;	/* wire: delta streams + literals */
};

/*
 * Write OLD and NEW, build their manifest, plan with PIECES, run every op
 * the way console and server would, and check the output is NEW.
 */
static void
roundtrip(struct fixture *f, const unsigned char *old, size_t olen,
    const unsigned char *new, size_t nlen, unsigned pieces, struct stats *st)
{
	struct ps_manifest m;
	struct ps_build_opts bo;
	const struct ps_entry *eo, *en;
	struct buf sig, delta;
	struct ps_patch *p;
	unsigned char *got;
	int ofd, nfd, wfd;
	size_t i;

	memset(st, 0, sizeof(*st));
	memset(&m, 0, sizeof(m));
	memset(&bo, 0, sizeof(bo));
	bo.threads = 1;
	write_file(f->old_path, old, olen);
	write_file(f->new_path, new, nlen);
	assert_int_equal(ps_manifest_build(f->dir, &bo, &m), PS_OK);
	eo = ps_manifest_find(&m, "old", 3);
	en = ps_manifest_find(&m, "new", 3);
	assert_non_null(eo);
	assert_non_null(en);
	assert_int_equal(ps_delta_plan(eo, en, pieces, &st->plan), PS_OK);
	check_cover(&st->plan, nlen, olen);

	ofd = open(f->old_path, O_RDONLY);
	nfd = open(f->new_path, O_RDONLY);
	wfd = open(f->out_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(ofd >= 0 && nfd >= 0 && wfd >= 0);
	for (i = 0; i < st->plan.n; i++) {
		const struct ps_plan_op *o = &st->plan.ops[i];

		switch (o->kind) {
		case PS_OP_COPY:
			assert_int_equal(ps_copy_range(ofd, o->basis_off, wfd,
			    o->target_off, o->len), PS_OK);
			break;
		case PS_OP_LITERAL:
			assert_int_equal(pwrite(wfd, new + o->target_off,
			    o->len, (off_t)o->target_off), (ssize_t)o->len);
			st->delta_bytes += o->len;
			break;
		case PS_OP_DELTA:
			memset(&sig, 0, sizeof(sig));
			memset(&delta, 0, sizeof(delta));
			assert_int_equal(ps_sig_region(ofd, o->basis_off,
			    o->basis_len, o->sig_block_len, &sig), PS_OK);
			assert_int_equal(sig.len,
			    ps_sig_size(o->basis_len, o->sig_block_len));
			assert_int_equal(ps_delta_region(sig.p, sig.len, nfd,
			    o->target_off, o->len, collect, &delta), PS_OK);
			p = ps_patch_begin(ofd, o->basis_off, o->basis_len,
			    wfd, o->target_off, o->len);
			assert_int_equal(patch_pieces(p, &delta), PS_OK);
			st->sig_bytes += sig.len;
			st->delta_bytes += delta.len;
			buf_free(&sig);
			buf_free(&delta);
			break;
		}
	}
	got = malloc(nlen + 1);
	assert_non_null(got);
	assert_int_equal(pread(wfd, got, nlen + 1, 0), (ssize_t)nlen);
	assert_memory_equal(got, new, nlen);
	free(got);
	close(ofd);
	close(nfd);
	close(wfd);
	ps_manifest_free(&m);
}

static size_t
count_kind(const struct ps_plan *pl, int kind)
{
	size_t i, n = 0;

	for (i = 0; i < pl->n; i++)
		n += pl->ops[i].kind == kind;
	return n;
}

/* ---- tests ---- */

static void
test_identical(void **state)
{
	size_t n = (3u << 20) + 777;
	unsigned char *a;
	struct stats st;

	rng_state = 1;
	a = random_bytes(n);
	roundtrip(*state, a, n, a, n, 2, &st);
	assert_int_equal(st.plan.n, 1);
	assert_int_equal(st.plan.ops[0].kind, PS_OP_COPY);
	assert_int_equal(st.plan.copy_bytes, n);
	assert_int_equal(st.plan.delta_bytes, 0);
	assert_int_equal(st.delta_bytes, 0);
	ps_plan_free(&st.plan);
	free(a);
}

static void
test_scattered(void **state)
{
	size_t n = 16u << 20, i, at, changed = 0;
	unsigned char *a, *b;
	struct stats st;

	rng_state = 2;
	a = random_bytes(n);
	b = malloc(n);
	assert_non_null(b);
	memcpy(b, a, n);
	/* 1 %: 40 edits of 4 KiB, anywhere */
	for (i = 0; i < 40; i++) {
		at = (size_t)(rng() % (n - 4096));
		fill_random(b + at, 4096);
		changed += 4096;
	}
	roundtrip(*state, a, n, b, n, 2, &st);
	assert_true(st.plan.copy_bytes > n * 9 / 10);
	print_message("scattered: %zu changed, delta %llu, sig %llu, "
	    "%zu ops\n", changed, (unsigned long long)st.delta_bytes,
	    (unsigned long long)st.sig_bytes, st.plan.n);
	assert_true(st.delta_bytes + st.sig_bytes < n / 20);
	assert_true(st.delta_bytes < 2 * changed);
	ps_plan_free(&st.plan);
	free(a);
	free(b);
}

static void
test_insert_delete(void **state)
{
	size_t n = 4u << 20, ins = 1000, del = 5000, at1, at2, m;
	unsigned char *a, *b;
	struct stats st;

	rng_state = 3;
	a = random_bytes(n);
	b = malloc(n + ins);
	assert_non_null(b);
	at1 = 1300000;
	at2 = 2700000;
	/* a[0..at1) + ins new + a[at1..at2) + a[at2+del..n) */
	memcpy(b, a, at1);
	fill_random(b + at1, ins);
	memcpy(b + at1 + ins, a + at1, at2 - at1);
	memcpy(b + at1 + ins + at2 - at1, a + at2 + del, n - at2 - del);
	m = n + ins - del;
	roundtrip(*state, a, n, b, m, 2, &st);
	assert_true(st.delta_bytes + st.sig_bytes < m / 20);
	ps_plan_free(&st.plan);
	/* the same as pure insertion and pure deletion */
	roundtrip(*state, a, n, b, at1 + ins + (n - at1), 2, &st);
	ps_plan_free(&st.plan);
	free(a);
	free(b);
}

static void
test_append_truncate(void **state)
{
	size_t n = (3u << 20) + 5000, extra = 12345;
	unsigned char *a;
	struct stats st;

	rng_state = 4;
	a = random_bytes(n + extra);
	/* appended tail: only the tail (and the old last block) travels */
	roundtrip(*state, a, n, a, n + extra, 2, &st);
	assert_true(st.plan.copy_bytes >= n - 65536);
	assert_true(st.delta_bytes < extra + 8192);
	ps_plan_free(&st.plan);
	/* truncated */
	roundtrip(*state, a, n, a, n - 1000000 - 3, 2, &st);
	assert_true(st.delta_bytes < 8192);
	ps_plan_free(&st.plan);
	/* truncated at a block boundary: all copy */
	roundtrip(*state, a, n, a, 1u << 20, 2, &st);
	assert_int_equal(st.delta_bytes, 0);
	ps_plan_free(&st.plan);
	free(a);
}

static void
test_different(void **state)
{
	size_t n = 2u << 20;
	unsigned char *a, *b;
	struct stats st;

	rng_state = 5;
	a = random_bytes(n);
	b = random_bytes(n + 333);
	roundtrip(*state, a, n, b, n + 333, 2, &st);
	assert_int_equal(st.plan.copy_bytes, 0);
	ps_plan_free(&st.plan);
	free(a);
	free(b);
}

/* Sizes far enough apart that the manifests' block sizes differ. */
static void
test_shift_change_pieces(void **state)
{
	size_t n = 16u << 20, ins = 70000, at = 5000000;
	unsigned char *a, *b;
	struct stats st;

	rng_state = 6;
	a = random_bytes(n);
	b = malloc(n + ins);
	assert_non_null(b);
	memcpy(b, a, at);
	fill_random(b + at, ins);
	memcpy(b + at + ins, a + at, n - at);
	assert_true(ps_block_shift_for(n) != ps_block_shift_for(n + ins));
	roundtrip(*state, a, n, b, n + ins, 4, &st);
	assert_int_equal(st.plan.copy_bytes, 0);
	assert_int_equal(count_kind(&st.plan, PS_OP_DELTA), 4);
	assert_true(st.delta_bytes < ins + 200000);
	ps_plan_free(&st.plan);
	free(a);
	free(b);
}

static void
test_empty(void **state)
{
	unsigned char *a;
	struct stats st;
	struct ps_entry t;
	struct ps_plan pl;

	rng_state = 7;
	a = random_bytes(100000);
	/* empty basis: the whole file as one literal */
	roundtrip(*state, a, 0, a, 100000, 2, &st);
	assert_int_equal(st.plan.n, 1);
	assert_int_equal(st.plan.ops[0].kind, PS_OP_LITERAL);
	ps_plan_free(&st.plan);
	/* empty target: nothing to do */
	roundtrip(*state, a, 100000, a, 0, 2, &st);
	assert_int_equal(st.plan.n, 0);
	ps_plan_free(&st.plan);
	/* no basis at all */
	memset(&t, 0, sizeof(t));
	t.size = 5;
	t.block_shift = 12;
	t.nblocks = 1;
	t.blocks = (uint64_t[]){ 42 };
	assert_int_equal(ps_delta_plan(NULL, &t, 2, &pl), PS_OK);
	assert_int_equal(pl.n, 1);
	assert_int_equal(pl.ops[0].kind, PS_OP_LITERAL);
	ps_plan_free(&pl);
	free(a);
}

/* Plans from made-up checksum arrays: reordered, repeated, broken. */
static void
test_plan_synthetic(void **state)
{
	struct ps_entry b, t;
	struct ps_plan pl;
	uint64_t bb[64], tb[64], i;

	(void)state;
	memset(&b, 0, sizeof(b));
	memset(&t, 0, sizeof(t));
	for (i = 0; i < 64; i++)
		bb[i] = 1000 + i;
	b.block_shift = t.block_shift = 12;
	b.size = 64 * 4096 - 100;
	b.nblocks = 64;
	b.blocks = bb;
	/* target: second half first, then first half, then junk */
	for (i = 0; i < 32; i++) {
		tb[i] = bb[32 + i];
		tb[32 + i] = bb[i];
	}
	tb[63] = 7;	/* the old short tail is not a full block */
	tb[10] = 5;
	t.size = 64 * 4096 - 50;
	t.nblocks = 64;
	t.blocks = tb;
	assert_int_equal(ps_delta_plan(&b, &t, 2, &pl), PS_OK);
	check_cover(&pl, t.size, b.size);
	assert_int_equal(pl.copy_bytes, 61 * 4096);
	ps_plan_free(&pl);
	/* a checksum array that does not match the size: no copies */
	t.nblocks = 3;
	assert_int_equal(ps_delta_plan(&b, &t, 2, &pl), PS_OK);
	check_cover(&pl, t.size, b.size);
	assert_int_equal(pl.copy_bytes, 0);
	ps_plan_free(&pl);
	/* same short tail matches */
	t.nblocks = 64;
	t.size = b.size;
	memcpy(tb, bb, sizeof(bb));
	tb[5] = 1;
	assert_int_equal(ps_delta_plan(&b, &t, 2, &pl), PS_OK);
	check_cover(&pl, t.size, b.size);
	assert_int_equal(pl.copy_bytes, b.size - 4096);
	assert_int_equal(pl.n, 3);
	assert_int_equal(pl.ops[1].kind, PS_OP_DELTA);
	ps_plan_free(&pl);
}

static void
make_sig(struct fixture *f, struct buf *sig, size_t n)
{
	unsigned char *a;
	int fd;

	rng_state = 8;
	a = random_bytes(n);
	write_file(f->old_path, a, n);
	write_file(f->new_path, a, n);
	fd = open(f->old_path, O_RDONLY);
	assert_true(fd >= 0);
	memset(sig, 0, sizeof(*sig));
	assert_int_equal(ps_sig_region(fd, 0, n, 1024, sig), PS_OK);
	close(fd);
	free(a);
}

static int
delta_of(struct fixture *f, const void *sig, size_t len)
{
	struct buf d;
	int fd, r;

	memset(&d, 0, sizeof(d));
	fd = open(f->new_path, O_RDONLY);
	assert_true(fd >= 0);
	r = ps_delta_region(sig, len, fd, 0, 100000, collect, &d);
	close(fd);
	buf_free(&d);
	return r;
}

static void
test_bad_signature(void **state)
{
	struct fixture *f = *state;
	struct buf sig;
	unsigned char *c;
	size_t i, k;

	make_sig(f, &sig, 100000);
	assert_int_equal(delta_of(f, sig.p, sig.len), PS_OK);
	c = malloc(sig.len);
	assert_non_null(c);
	/*
	 * Header bytes changed (bytes 6 and 7 would only make another
	 * valid block length), and every short length.
	 */
	for (i = 0; i < 12; i++) {
		if (i == 6 || i == 7)
			continue;
		memcpy(c, sig.p, sig.len);
		c[i] ^= 0x80;
		assert_int_equal(delta_of(f, c, sig.len), PS_EPEER);
	}
	memcpy(c, sig.p, sig.len);
	c[6] = 0;
	c[7] = 255;	/* block length 255: below the minimum */
	assert_int_equal(delta_of(f, c, sig.len), PS_EPEER);
	c[5] = 1;
	c[6] = 0;
	c[7] = 1;	/* 65537: above the maximum */
	assert_int_equal(delta_of(f, c, sig.len), PS_EPEER);
	for (i = 0; i < 12; i++)
		assert_int_equal(delta_of(f, sig.p, i), PS_EPEER);
	assert_int_equal(delta_of(f, sig.p, sig.len - 1), PS_EPEER);
	assert_int_equal(delta_of(f, NULL, 0), PS_EPEER);
	/* strong length 0 (librsync would read "maximum") and 33 */
	memcpy(c, sig.p, sig.len);
	c[11] = 0;
	assert_int_equal(delta_of(f, c, sig.len), PS_EPEER);
	c[11] = 33;
	assert_int_equal(delta_of(f, c, sig.len), PS_EPEER);
	/* random headers: refused or harmless, never a crash */
	for (k = 0; k < 2000; k++) {
		memcpy(c, sig.p, sig.len);
		fill_random(c + 4, 8);
		c[4] = c[5] = 0;
		(void)delta_of(f, c, sig.len);
	}
	/* a body of garbage is well-formed: the delta still runs */
	memcpy(c, sig.p, sig.len);
	fill_random(c + 12, sig.len - 12);
	assert_int_equal(delta_of(f, c, sig.len), PS_OK);
	free(c);
	buf_free(&sig);
}

/* A valid delta of NEW (100000 bytes) against OLD region [0, 100000). */
static void
make_delta(struct fixture *f, struct buf *d)
{
	unsigned char *a, *b;
	struct buf sig;
	int ofd, nfd;

	rng_state = 9;
	a = random_bytes(100000);
	b = malloc(100000);
	assert_non_null(b);
	memcpy(b, a, 100000);
	fill_random(b + 50000, 3000);
	write_file(f->old_path, a, 100000);
	write_file(f->new_path, b, 100000);
	ofd = open(f->old_path, O_RDONLY);
	nfd = open(f->new_path, O_RDONLY);
	memset(&sig, 0, sizeof(sig));
	memset(d, 0, sizeof(*d));
	assert_int_equal(ps_sig_region(ofd, 0, 100000, 0, &sig), PS_OK);
	assert_int_equal(ps_delta_region(sig.p, sig.len, nfd, 0, 100000,
	    collect, d), PS_OK);
	close(ofd);
	close(nfd);
	buf_free(&sig);
	free(a);
	free(b);
}

static int
patch_with(struct fixture *f, const void *p, size_t n, uint64_t boff,
    uint64_t blen, uint64_t expect)
{
	struct ps_patch *pp;
	struct buf d;
	int ofd, wfd, r;

	ofd = open(f->old_path, O_RDONLY);
	wfd = open(f->out_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(ofd >= 0 && wfd >= 0);
	d.p = (unsigned char *)(uintptr_t)p;
	d.len = n;
	pp = ps_patch_begin(ofd, boff, blen, wfd, 0, expect);
	assert_non_null(pp);
	r = patch_pieces(pp, &d);
	close(ofd);
	close(wfd);
	return r;
}

static void
test_bad_delta(void **state)
{
	struct fixture *f = *state;
	struct buf d;
	unsigned char *c;
	size_t i, k;
	int ok = 0, r;

	make_delta(f, &d);
	assert_int_equal(patch_with(f, d.p, d.len, 0, 100000, 100000), PS_OK);
	/* output length other than announced */
	assert_int_equal(patch_with(f, d.p, d.len, 0, 100000, 99999),
	    PS_EPEER);
	assert_int_equal(patch_with(f, d.p, d.len, 0, 100000, 100001),
	    PS_EPEER);
	/* the region it copies from is not all there */
	assert_int_equal(patch_with(f, d.p, d.len, 0, 60000, 100000),
	    PS_EPEER);
	assert_int_equal(patch_with(f, d.p, d.len, 0, 0, 100000), PS_EPEER);
	/* truncated anywhere, or with bytes after its end */
	for (i = 0; i < d.len; i += 1 + i / 3)
		assert_int_equal(patch_with(f, d.p, i, 0, 100000, 100000),
		    PS_EPEER);
	c = malloc(d.len + 1);
	assert_non_null(c);
	memcpy(c, d.p, d.len);
	c[d.len] = 0;
	assert_int_equal(patch_with(f, c, d.len + 1, 0, 100000, 100000),
	    PS_EPEER);
	/* bad magic */
	c[0] ^= 1;
	assert_int_equal(patch_with(f, c, d.len, 0, 100000, 100000),
	    PS_EPEER);
	/* flipped bytes and garbage: refused or harmless, never a crash */
	for (k = 0; k < 3000; k++) {
		memcpy(c, d.p, d.len);
		if (k % 2)
			c[4 + rng() % (d.len - 4)] = (unsigned char)rng();
		else
			fill_random(c + 4, d.len - 4);
		r = patch_with(f, c, d.len, 0, 100000, 100000);
		assert_true(r == PS_OK || r == PS_EPEER);
		ok += r == PS_OK;
	}
	print_message("fuzzed deltas patched without error: %d of 3000\n",
	    ok);
	/* abort without end frees everything */
	ps_patch_abort(ps_patch_begin(0, 0, 1, 1, 0, 1));
	ps_patch_abort(NULL);
	free(c);
	buf_free(&d);
}

static void
test_copy_range(void **state)
{
	struct fixture *f = *state;
	unsigned char *a, *got;
	int ofd, wfd;

	rng_state = 10;
	a = random_bytes(3000000);
	write_file(f->old_path, a, 3000000);
	ofd = open(f->old_path, O_RDONLY);
	wfd = open(f->out_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(ps_copy_range(ofd, 1000, wfd, 5, 2000000), PS_OK);
	got = malloc(2000000);
	assert_non_null(got);
	assert_int_equal(pread(wfd, got, 2000000, 5), 2000000);
	assert_memory_equal(got, a + 1000, 2000000);
	/* beyond the basis' end */
	assert_int_equal(ps_copy_range(ofd, 2999000, wfd, 0, 2000),
	    PS_EPARTIAL);
	close(ofd);
	close(wfd);
	free(got);
	free(a);
}

static void
test_block_len(void **state)
{
	(void)state;
	assert_int_equal(ps_sig_block_len(0), 512);
	assert_int_equal(ps_sig_block_len(65536), 512);
	assert_int_equal(ps_sig_block_len(50000000), 512);
	assert_int_equal(ps_sig_block_len(UINT64_C(256) << 20), 1024);
	assert_int_equal(ps_sig_block_len(UINT64_C(4) << 30), 4096);
	assert_int_equal(ps_sig_block_len(UINT64_MAX), 16384);
	assert_int_equal(ps_sig_size(0, 1024), 12);
	assert_int_equal(ps_sig_size(1, 100), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identical, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_scattered, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_insert_delete, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_append_truncate, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_different, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_shift_change_pieces,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test(test_plan_synthetic),
		cmocka_unit_test_setup_teardown(test_bad_signature, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_delta, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_copy_range, setup,
		    teardown),
		cmocka_unit_test(test_block_len),
	};

	ps_delta_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
