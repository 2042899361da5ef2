/*
 * delta_test.c — the matcher's ops written as a librsync delta and
 * applied with librsync's patch must rebuild the new file byte for byte
 * from the old one in every shape of change; the encoding is the exact
 * byte layout of librsync's format; the patcher refuses (never crashes
 * on) a corrupt or hostile delta.
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
#include "match.h"
#include "splitmix.h"

/* ---- helpers ---- */


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


static int
emit_buf(const void *p, size_t n, void *arg)
{
	assert_true(n > 0 && n <= (1u << 20));
	buf_add(arg, p, n);
	return 0;
}

static ssize_t
mem_read(void *arg, void *buf, size_t n, uint64_t off)
{
	const struct buf *t = arg;

	if (off >= t->len)
		return 0;
	if (n > t->len - off)
		n = (size_t)(t->len - off);
	memcpy(buf, t->p + off, n);
	return (ssize_t)n;
}

/* The matcher's ops making NEW from OLD, in blocks of BL. */
static void
match_ops(const unsigned char *old, size_t olen, const unsigned char *new,
    size_t nlen, uint32_t bl, struct ps_mops *ops)
{
	struct ps_blocksums s, h;
	struct ps_matcher *m;
	struct buf t = { (unsigned char *)(uintptr_t)new, nlen, nlen };

	memset(ops, 0, sizeof(*ops));
	assert_int_equal(ps_blocksums_mem(old, olen, 0, bl, &s), PS_OK);
	assert_int_equal(ps_blocksums_mem(new, nlen, 0, bl, &h), PS_OK);
	assert_int_equal(ps_matcher_new(&s, &m), PS_OK);
	assert_int_equal(ps_match(m, mem_read, &t, 0, nlen, &h, 2, ops),
	    PS_OK);
	ps_matcher_free(m);
	ps_blocksums_free(&s);
	ps_blocksums_free(&h);
}

/* The delta of OPS, the literal bytes read from the file at PATH. */
static void
encode(const char *path, const struct ps_mops *ops, struct buf *d)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	memset(d, 0, sizeof(*d));
	assert_int_equal(ps_rsdelta_write(ops, fd, emit_buf, d), PS_OK);
	assert_int_equal(d->len, ps_rsdelta_size(ops));
	close(fd);
}

/*
 * Write OLD and NEW, match, encode, patch OLD with the delta (fed in
 * uneven pieces) and check the output is NEW. Returns the delta's size.
 */
static uint64_t
roundtrip(struct fixture *f, const unsigned char *old, size_t olen,
    const unsigned char *new, size_t nlen, uint32_t bl)
{
	struct ps_mops ops;
	struct ps_patch *p;
	struct buf d;
	unsigned char *got;
	uint64_t size;
	int ofd, wfd;

	write_file(f->old_path, old, olen);
	write_file(f->new_path, new, nlen);
	match_ops(old, olen, new, nlen, bl, &ops);
	encode(f->new_path, &ops, &d);
	ofd = open(f->old_path, O_RDONLY);
	wfd = open(f->out_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(ofd >= 0 && wfd >= 0);
	p = ps_patch_begin(ofd, 0, olen, wfd, 0, nlen);
	assert_int_equal(patch_pieces(p, &d), PS_OK);
	got = malloc(nlen + 1);
	assert_non_null(got);
	assert_int_equal(pread(wfd, got, nlen + 1, 0), (ssize_t)nlen);
	assert_memory_equal(got, new, nlen);
	assert_true(d.len >= ops.literal_bytes + 5);
	size = d.len;
	free(got);
	close(ofd);
	close(wfd);
	buf_free(&d);
	ps_mops_free(&ops);
	return size;
}

/* ---- tests ---- */

static void
test_identical(void **state)
{
	size_t n = (3u << 20) + 777;
	unsigned char *a;

	rng_state = 1;
	a = random_bytes(n);
	/* one COPY: magic, COPY_N1_N4, END */
	assert_int_equal(roundtrip(*state, a, n, a, n, 4096), 4 + 1 + 1 + 4 +
	    1);
	free(a);
}

static void
test_scattered(void **state)
{
	size_t n = 8u << 20, i, at, changed = 0;
	unsigned char *a, *b;
	uint64_t d;

	rng_state = 2;
	a = random_bytes(n);
	b = malloc(n);
	assert_non_null(b);
	memcpy(b, a, n);
	for (i = 0; i < 40; i++) {
		at = (size_t)(rng() % (n - 100));
		fill_random(b + at, 100);
		changed += 100;
	}
	d = roundtrip(*state, a, n, b, n, 2048);
	print_message("scattered: %zu changed, delta %llu\n", changed,
	    (unsigned long long)d);
	assert_true(d < 40 * 2 * 2048 + 4096);
	free(a);
	free(b);
}

static void
test_insert_delete(void **state)
{
	size_t n = 4u << 20, ins = 1000, del = 5000, at1, at2, m;
	unsigned char *a, *b;

	rng_state = 3;
	a = random_bytes(n);
	b = malloc(n + ins);
	assert_non_null(b);
	at1 = 1300000;
	at2 = 2700000;
	memcpy(b, a, at1);
	fill_random(b + at1, ins);
	memcpy(b + at1 + ins, a + at1, at2 - at1);
	memcpy(b + at1 + ins + at2 - at1, a + at2 + del, n - at2 - del);
	m = n + ins - del;
	assert_true(roundtrip(*state, a, n, b, m, 4096) < ins + 3 * 4096);
	free(a);
	free(b);
}

static void
test_append_truncate(void **state)
{
	size_t n = (3u << 20) + 5000, extra = 12345;
	unsigned char *a;

	rng_state = 4;
	a = random_bytes(n + extra);
	assert_true(roundtrip(*state, a, n, a, n + extra, 4096) <
	    extra + 8192);
	assert_true(roundtrip(*state, a, n, a, n - 1000000 - 3, 4096) <
	    8192);
	assert_true(roundtrip(*state, a, n, a, 1u << 20, 4096) < 32);
	free(a);
}

/* All literal, empty target, empty basis. */
static void
test_different_empty(void **state)
{
	size_t n = 2u << 20;
	unsigned char *a, *b;

	rng_state = 5;
	a = random_bytes(n);
	b = random_bytes(n + 333);
	/* magic, LITERAL_N4, its length, the bytes, END */
	assert_int_equal(roundtrip(*state, a, n, b, n + 333, 4096),
	    4 + 1 + 4 + n + 333 + 1);
	assert_int_equal(roundtrip(*state, a, n, b, 0, 4096), 5);
	assert_int_equal(roundtrip(*state, a, 0, b, 100, 4096),
	    4 + 2 + 100 + 1);
	assert_int_equal(roundtrip(*state, a, 0, b, 64, 4096), 4 + 1 + 64 + 1);
	assert_int_equal(roundtrip(*state, a, 0, b, 65, 4096),
	    4 + 2 + 65 + 1);
	free(a);
	free(b);
}

/* Random pairs: pieces of the basis, moved and repeated, and new bytes. */
static void
test_random_pairs(void **state)
{
	unsigned char *a, *b;
	size_t round, olen, nlen, at, len, n;

	rng_state = 11;
	for (round = 0; round < 40; round++) {
		olen = (size_t)(rng() % (600000 + 1));
		a = random_bytes(olen);
		nlen = 0;
		b = malloc(2000000);
		assert_non_null(b);
		while (nlen < 1200000 && rng() % 16 != 0) {
			len = 1 + (size_t)(rng() % 80000);
			if (olen > 0 && rng() % 3 != 0) {
				at = (size_t)(rng() % olen);
				if (len > olen - at)
					len = olen - at;
				memcpy(b + nlen, a + at, len);
			} else {
				fill_random(b + nlen, len);
			}
			nlen += len;
		}
		n = (size_t)(PS_MATCH_BLOCK_MIN << (rng() % 7));
		(void)roundtrip(*state, a, olen, b, nlen, (uint32_t)n);
		free(a);
		free(b);
	}
}

/* Operand widths: the byte layout, from made-up ops. */
static void
test_encoding(void **state)
{
	static const unsigned char want[] = {
		0x72, 0x73, 0x02, 0x36,
		0x03, 'a', 'b', 'c',			/* LITERAL_3 */
		0x45, 0x07, 0x10,			/* COPY_N1_N1 */
		0x4a, 0x01, 0x00, 0x01, 0x00,		/* COPY_N2_N2 */
		0x4f, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x01, 0x00, 0x01,			/* COPY_N4_N4 */
		0x51, 0, 0, 0, 0x01, 0, 0, 0, 0,
		0x02,					/* COPY_N8_N1 */
		0x52, 0, 0, 0, 0x01, 0, 0, 0, 0,
		0x12, 0x34,				/* COPY_N8_N2 */
		0x00					/* END */
	};
	struct fixture *f = *state;
	struct ps_mops ops;
	struct buf d;
	uint64_t t = 0;

	memset(&ops, 0, sizeof(ops));
	write_file(f->new_path, "abc", 3);
	ps_mops_add(&ops, PS_MOP_LITERAL, t, 3, 0);
	t += 3;
	ps_mops_add(&ops, PS_MOP_COPY, t, 0x10, 7);
	t += 0x10;
	ps_mops_add(&ops, PS_MOP_COPY, t, 0x100, 0x100);
	t += 0x100;
	ps_mops_add(&ops, PS_MOP_COPY, t, 0x10001, 0x10000);
	t += 0x10001;
	ps_mops_add(&ops, PS_MOP_COPY, t, 2, UINT64_C(1) << 32);
	t += 2;
	ps_mops_add(&ops, PS_MOP_COPY, t, 0x1234, UINT64_C(1) << 32);
	encode(f->new_path, &ops, &d);
	assert_int_equal(d.len, sizeof(want));
	assert_memory_equal(d.p, want, sizeof(want));
	buf_free(&d);
	ps_mops_free(&ops);
}

static int
emit_stop(const void *p, size_t n, void *arg)
{
	(void)p;
	(void)n;
	return ++*(int *)arg == 2 ? 42 : 0;
}

/* A short target file, and an emitter that stops the work. */
static void
test_encode_errors(void **state)
{
	struct fixture *f = *state;
	struct ps_mops ops;
	unsigned char *a;
	struct buf d;
	int fd, calls = 0;

	rng_state = 12;
	a = random_bytes(1u << 20);
	write_file(f->new_path, a, 1000);
	memset(&ops, 0, sizeof(ops));
	memset(&d, 0, sizeof(d));
	ps_mops_add(&ops, PS_MOP_LITERAL, 0, 2000, 0);
	fd = open(f->new_path, O_RDONLY);
	assert_int_equal(ps_rsdelta_write(&ops, fd, emit_buf, &d),
	    PS_EPARTIAL);
	buf_free(&d);
	close(fd);
	write_file(f->new_path, a, 1u << 20);
	ps_mops_free(&ops);
	ps_mops_add(&ops, PS_MOP_LITERAL, 0, 1u << 20, 0);
	fd = open(f->new_path, O_RDONLY);
	assert_int_equal(ps_rsdelta_write(&ops, fd, emit_stop, &calls), 42);
	close(fd);
	ps_mops_free(&ops);
	free(a);
}

/* A valid delta of NEW (100000 bytes) against OLD (100000 bytes). */
static void
make_delta(struct fixture *f, struct buf *d)
{
	unsigned char *a, *b;
	struct ps_mops ops;

	rng_state = 9;
	a = random_bytes(100000);
	b = malloc(100000);
	assert_non_null(b);
	memcpy(b, a, 100000);
	fill_random(b + 50000, 3000);
	write_file(f->old_path, a, 100000);
	write_file(f->new_path, b, 100000);
	match_ops(a, 100000, b, 100000, 1024, &ops);
	assert_true(ops.copy_bytes > 90000);
	encode(f->new_path, &ops, d);
	ps_mops_free(&ops);
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
		cmocka_unit_test_setup_teardown(test_different_empty, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_random_pairs, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_encoding, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_encode_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_delta, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_copy_range, setup,
		    teardown),
	};

	ps_delta_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
