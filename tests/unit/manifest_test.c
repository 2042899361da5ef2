/*
 * manifest_test.c — the manifest format must refuse every corruption,
 * and building must describe a real tree exactly.
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

#include <xxhash.h>

#include "manifest.h"
#include "mfcache.h"

/* ---- helpers ---- */

/* A memory reader for ps_mfin_new, in small pieces. */
struct mem {
	const unsigned char *p;
	size_t len, off;
};

static ssize_t
mem_read(void *arg, void *buf, size_t n)
{
	struct mem *m = arg;

	if (n > 5)
		n = 5;
	if (n > m->len - m->off)
		n = m->len - m->off;
	memcpy(buf, m->p + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static struct ps_entry *
add(struct ps_manifest *m, int type, const char *path, size_t plen,
    uint64_t size)
{
	struct ps_entry *e;
	uint64_t k;

	/*
	 * Doubling: one entry at a time, the sanitizers' realloc (which
	 * always copies) made test_raw_copy's 20,000 entries take 100 s.
	 */
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 16;
		m->e = realloc(m->e, m->cap * sizeof(*m->e));
		assert_non_null(m->e);
	}
	e = &m->e[m->n++];
	memset(e, 0, sizeof(*e));
	e->path = malloc(plen + 1);
	memcpy(e->path, path, plen);
	e->path[plen] = '\0';
	e->path_len = (uint32_t)plen;
	e->type = (uint8_t)type;
	e->mode = type == PS_FT_DIR ? 0755 : 0644;
	e->mtime_sec = 1700000000 + (int64_t)m->n;
	e->mtime_nsec = 123456789;
	e->dev = 0x801;
	e->ino = 1000 + m->n;
	e->ctime_sec = -5;	/* negative times must survive too */
	e->ctime_nsec = 999999999;
	if (type != PS_FT_FILE)
		return e;
	e->size = size;
	e->block_shift = (uint8_t)ps_block_shift_for(size);
	e->nblocks = (size + (1u << e->block_shift) - 1) >> e->block_shift;
	e->blocks = e->nblocks ? calloc(e->nblocks, 8) : NULL;
	for (k = 0; k < e->nblocks; k++)
		e->blocks[k] = 0x0123456789abcdefULL * (k + 1);
	for (k = 0; k < 16; k++)
		e->hash[k] = (uint8_t)(k * 17 + m->n);
	return e;
}

#define ADD(m, t, s, size) add((m), (t), (s), sizeof(s) - 1, (size))

/* A small manifest with awkward names, sorted. */
static void
sample(struct ps_manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->flags = PS_MF_LOCAL;
	ADD(m, PS_FT_DIR, "a b", 0);
	ADD(m, PS_FT_FILE, "a b/empty", 0);
	ADD(m, PS_FT_FILE, "a b/new\nline", 5);
	ADD(m, PS_FT_FILE, "a b/x\xff", 10000);	/* 3 blocks */
	ADD(m, PS_FT_FILE, "z", 4096);
}

static void
assert_same_entry(const struct ps_entry *a, const struct ps_entry *b,
    int local)
{
	assert_int_equal(a->path_len, b->path_len);
	assert_memory_equal(a->path, b->path, a->path_len);
	assert_int_equal(b->path[b->path_len], '\0');
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->mtime_sec, b->mtime_sec);
	assert_int_equal(a->mtime_nsec, b->mtime_nsec);
	if (a->type == PS_FT_FILE) {
		assert_memory_equal(a->hash, b->hash, 16);
		assert_int_equal(a->block_shift, b->block_shift);
		assert_int_equal(a->nblocks, b->nblocks);
		if (a->nblocks)
			assert_memory_equal(a->blocks, b->blocks,
			    a->nblocks * 8);
	}
	if (local) {
		assert_int_equal(a->dev, b->dev);
		assert_int_equal(a->ino, b->ino);
		assert_int_equal(a->ctime_sec, b->ctime_sec);
		assert_int_equal(a->ctime_nsec, b->ctime_nsec);
	} else {
		assert_int_equal(b->dev, 0);
		assert_int_equal(b->ino, 0);
	}
}

static int
decode_ok(const struct buf *b, struct ps_manifest *out)
{
	char err[200];

	return ps_manifest_decode(b->p, b->len, out, err, sizeof(err));
}

/* Decode must fail, leave OUT empty and say why. Returns the reason. */
static const char *
refused(const void *p, size_t len)
{
	static char err[200];
	struct ps_manifest m;

	err[0] = '\0';
	assert_int_equal(ps_manifest_decode(p, len, &m, err, sizeof(err)),
	    -1);
	assert_int_equal(m.n, 0);
	assert_null(m.e);
	assert_true(err[0] != '\0');
	assert_null(strchr(err, '\n'));
	return err;
}

/* Rewrite the trailer so that a hand edit reaches the parser's checks. */
static void
refinish(struct buf *b)
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(b->p, b->len - 16));
	memcpy(b->p + b->len - 16, c.digest, 16);
}

/* ---- format ---- */

static void
test_block_shift(void **state)
{
	(void)state;
	assert_int_equal(ps_block_shift_for(0), 12);
	assert_int_equal(ps_block_shift_for(1), 12);
	assert_int_equal(ps_block_shift_for(4096), 12);
	assert_int_equal(ps_block_shift_for(1 << 24), 12);
	assert_int_equal(ps_block_shift_for((1 << 24) + 1), 13);
	assert_int_equal(ps_block_shift_for(1 << 26), 13);
	assert_int_equal(ps_block_shift_for((1 << 26) + 1), 14);
	assert_int_equal(ps_block_shift_for(UINT64_C(5) << 30), 17);
	assert_int_equal(ps_block_shift_for(UINT64_C(1) << 40), 20);
	assert_int_equal(ps_block_shift_for(UINT64_MAX), 20);
}

static void
roundtrip(int local)
{
	struct ps_manifest m, d;
	struct buf b = { 0 }, b2 = { 0 };
	size_t i;

	sample(&m);
	ps_manifest_encode(&m, local, &b);
	assert_int_equal(decode_ok(&b, &d), 0);
	assert_int_equal(d.n, m.n);
	assert_int_equal(d.flags, local ? PS_MF_LOCAL : 0);
	for (i = 0; i < m.n; i++)
		assert_same_entry(&m.e[i], &d.e[i], local);
	/* Stable: the decoded manifest encodes to the same bytes. */
	ps_manifest_encode(&d, local, &b2);
	assert_int_equal(b.len, b2.len);
	assert_memory_equal(b.p, b2.p, b.len);
	assert_ptr_equal(ps_manifest_find(&d, "a b/x\xff", 6), &d.e[3]);
	assert_null(ps_manifest_find(&d, "a b/x", 5));
	ps_manifest_free(&d);
	ps_manifest_free(&m);
	buf_free(&b);
	buf_free(&b2);
}

static void
test_roundtrip(void **state)
{
	(void)state;
	roundtrip(0);
	roundtrip(1);
}

static void
test_empty(void **state)
{
	struct ps_manifest m = { 0 }, d;
	struct buf b = { 0 };

	(void)state;
	ps_manifest_encode(&m, 0, &b);
	/* header, the end marker, the count and the trailer */
	assert_int_equal(b.len, 16 + 1 + 8 + 16);
	assert_int_equal(decode_ok(&b, &d), 0);
	assert_int_equal(d.n, 0);
	ps_manifest_free(&d);
	buf_free(&b);
}

static void
test_every_byte_flip(void **state)
{
	static const unsigned char masks[] = { 0x01, 0x80, 0xff };
	struct ps_manifest m;
	struct buf b = { 0 };
	unsigned char *c;
	size_t i, k;

	(void)state;
	sample(&m);
	ps_manifest_encode(&m, 1, &b);
	c = malloc(b.len);
	for (i = 0; i < b.len; i++) {
		for (k = 0; k < sizeof(masks); k++) {
			memcpy(c, b.p, b.len);
			c[i] ^= masks[k];
			refused(c, b.len);
		}
	}
	free(c);
	ps_manifest_free(&m);
	buf_free(&b);
}

static void
test_every_truncation(void **state)
{
	struct ps_manifest m;
	struct buf b = { 0 };
	unsigned char *c;
	size_t len;

	(void)state;
	sample(&m);
	ps_manifest_encode(&m, 0, &b);
	for (len = 0; len < b.len; len++) {
		/* An exact-size copy, so ASan sees any overread. */
		c = malloc(len ? len : 1);
		memcpy(c, b.p, len);
		refused(c, len);
		free(c);
	}
	ps_manifest_free(&m);
	buf_free(&b);
}

static void
test_trailing(void **state)
{
	struct ps_manifest m;
	struct buf b = { 0 };

	(void)state;
	sample(&m);
	ps_manifest_encode(&m, 0, &b);
	buf_addc(&b, 0);
	refused(b.p, b.len);
	/* With a valid trailer over the garbage, the parser still says no. */
	buf_add(&b, "0123456789abcdef", 16);
	refinish(&b);
	assert_non_null(strstr(refused(b.p, b.len), "after the end"));
	ps_manifest_free(&m);
	buf_free(&b);
}

/* Encode M, apply EDIT at offset OFF, refinish, expect refusal with WHY. */
static void
refused_edit(struct ps_manifest *m, int local, size_t off, const void *edit,
    size_t n, const char *why)
{
	struct buf b = { 0 };
	const char *err;

	ps_manifest_encode(m, local, &b);
	assert_true(off + n <= b.len - 16);
	memcpy(b.p + off, edit, n);
	refinish(&b);
	err = refused(b.p, b.len);
	if (strstr(err, why) == NULL)
		fail_msg("expected \"%s\", got \"%s\"", why, err);
	buf_free(&b);
}

/* Offset of entry 0's fields: header 16, type 1, path_len 4, path. */
#define E0_PATH	(16 + 1 + 4)

static void
test_parser_checks(void **state)
{
	struct ps_manifest m;
	unsigned char v[8];
	size_t file;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.flags = PS_MF_LOCAL;
	ADD(&m, PS_FT_FILE, "ab", 3);

	refused_edit(&m, 0, E0_PATH, "..", 2, "unsafe path");
	refused_edit(&m, 0, E0_PATH, "/b", 2, "unsafe path");
	refused_edit(&m, 0, E0_PATH, "a\0", 2, "unsafe path");
	refused_edit(&m, 0, E0_PATH, "a/", 2, "unsafe path");
	refused_edit(&m, 0, 16, "x", 1, "unknown type");
	put_u32le(v, 0);
	refused_edit(&m, 0, 17, v, 4, "path length");
	put_u32le(v, PS_PATH_MAX + 1);
	refused_edit(&m, 0, 17, v, 4, "path length");
	put_u32le(v, 2);
	refused_edit(&m, 0, 12, v, 4, "unknown flags");
	put_u32le(v, 3);
	refused_edit(&m, 0, 8, v, 4, "unsupported version");
	put_u32le(v, 0100644);
	refused_edit(&m, 0, E0_PATH + 2, v, 4, "bad mode");
	put_u32le(v, 1000000000);
	refused_edit(&m, 0, E0_PATH + 2 + 4 + 8, v, 4, "bad mtime");
	/* size, hash, block shift and sums follow mode and mtime */
	file = E0_PATH + 2 + 4 + 8 + 4;
	refused_edit(&m, 0, file + 8 + 16, "\x0d", 1, "block shift");
	refused_edit(&m, 0, file + 8 + 16 + 1, "\x07", 1, "unknown sums");
	put_u64le(v, 1 << 30);	/* 1 GiB claimed, no blocks present */
	refused_edit(&m, 0, file, v, 8, "block shift");
	ps_manifest_free(&m);

	/* A huge size with sums claimed: no huge allocation. */
	memset(&m, 0, sizeof(m));
	ADD(&m, PS_FT_FILE, "f", 0);
	m.e[0].size = UINT64_C(1) << 62;
	m.e[0].block_shift = 20;
	refused_edit(&m, 0, E0_PATH + 1 + 4 + 8 + 4 + 8 + 16 + 1, "\x01", 1,
	    "sums for");
	ps_manifest_free(&m);

	/* The count in the trailer must be the entries'. */
	memset(&m, 0, sizeof(m));
	ADD(&m, PS_FT_DIR, "d", 0);
	{
		struct buf b = { 0 };

		ps_manifest_encode(&m, 0, &b);
		put_u64le(b.p + b.len - 16 - 8, 2);
		refinish(&b);
		assert_non_null(strstr(refused(b.p, b.len), "trailer says"));
		buf_free(&b);
	}
	ps_manifest_free(&m);

	/* Local fields: a bad ctime. */
	memset(&m, 0, sizeof(m));
	m.flags = PS_MF_LOCAL;
	ADD(&m, PS_FT_DIR, "d", 0);
	put_u32le(v, 1000000000);
	refused_edit(&m, 1, E0_PATH + 1 + 4 + 8 + 4 + 8 + 8 + 8, v, 4,
	    "bad ctime");
	ps_manifest_free(&m);
}

static int
count_entry(struct ps_entry *e, void *arg)
{
	struct ps_manifest *m = arg;

	m->e = realloc(m->e, (m->n + 1) * sizeof(*m->e));
	assert_non_null(m->e);
	m->e[m->n++] = *e;
	m->cap = m->n;
	return 0;
}

/* The streaming reader, fed a byte at a time, gives the same entries. */
static void
test_stream(void **state)
{
	struct ps_manifest m, d = { 0 };
	struct ps_mfr *r;
	struct buf b = { 0 };
	size_t i;

	(void)state;
	sample(&m);
	ps_manifest_encode(&m, PS_ENC_LOCAL, &b);
	r = ps_mfr_new();
	for (i = 0; i < b.len; i++)
		assert_int_equal(ps_mfr_feed(r, b.p + i, 1, count_entry, &d),
		    0);
	assert_int_equal(ps_mfr_done(r), 0);
	assert_int_equal(ps_mfr_flags(r), PS_MF_LOCAL);
	assert_int_equal(d.n, m.n);
	for (i = 0; i < m.n; i++)
		assert_same_entry(&m.e[i], &d.e[i], 1);
	ps_mfr_free(r);
	ps_manifest_free(&d);
	/* Cut short, it is not done. */
	r = ps_mfr_new();
	memset(&d, 0, sizeof(d));
	assert_int_equal(ps_mfr_feed(r, b.p, b.len - 1, count_entry, &d), 0);
	assert_int_equal(ps_mfr_done(r), -1);
	ps_mfr_free(r);
	ps_manifest_free(&d);
	ps_manifest_free(&m);
	buf_free(&b);
}

/* Version 1 manifests (bytewise order) are read, in today's order. */
static void
test_version1(void **state)
{
	static const char *paths[] = { "a", "a-b", "a/c" };
	struct ps_manifest d;
	struct buf b = { 0 };
	XXH128_canonical_t c;
	size_t i;

	(void)state;
	buf_add(&b, "PSYNCMF\n", 8);
	buf_add_u32(&b, 1);
	buf_add_u32(&b, 0);
	buf_add_u64(&b, 3);
	for (i = 0; i < 3; i++) {
		buf_addc(&b, i == 0 ? PS_FT_DIR : PS_FT_FILE);
		buf_add_u32(&b, (uint32_t)strlen(paths[i]));
		buf_addstr(&b, paths[i]);
		buf_add_u32(&b, 0644);
		buf_add_u64(&b, i == 0 ? 0 : 5);
		buf_add_u64(&b, 1700000000);
		buf_add_u32(&b, 0);
		if (i > 0) {
			buf_add(&b, "0123456789abcdef", 16);
			buf_addc(&b, 12);
			buf_add_u64(&b, 42);	/* one block */
		}
	}
	XXH128_canonicalFromHash(&c, XXH3_128bits(b.p, b.len));
	buf_add(&b, c.digest, 16);
	assert_int_equal(decode_ok(&b, &d), 0);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.e[0].path, "a");
	assert_string_equal(d.e[1].path, "a/c");	/* now before a-b */
	assert_string_equal(d.e[2].path, "a-b");
	assert_int_equal(d.e[1].blocks[0], 42);
	assert_null(d.e[1].weak);
	ps_manifest_free(&d);
	buf_free(&b);
}

static void
test_order_checks(void **state)
{
	struct ps_manifest m;

	(void)state;
	/* encode() writes what it is given; decode() must check order. */
	memset(&m, 0, sizeof(m));
	ADD(&m, PS_FT_FILE, "b", 1);
	ADD(&m, PS_FT_FILE, "a", 1);
	refused_edit(&m, 0, 0, "P", 1, "out of order");
	ps_manifest_free(&m);

	memset(&m, 0, sizeof(m));
	ADD(&m, PS_FT_FILE, "a", 1);
	ADD(&m, PS_FT_DIR, "a", 0);
	refused_edit(&m, 0, 0, "P", 1, "duplicate");
	ps_manifest_free(&m);

	/* Shorter first: "a" < "a/b" < "a0"; "ab" before "a/b" is wrong. */
	memset(&m, 0, sizeof(m));
	ADD(&m, PS_FT_DIR, "a", 0);
	ADD(&m, PS_FT_FILE, "ab", 1);
	ADD(&m, PS_FT_FILE, "a/b", 1);
	refused_edit(&m, 0, 0, "P", 1, "out of order");
	ps_manifest_free(&m);

	/* Something below a file. */
	memset(&m, 0, sizeof(m));
	ADD(&m, PS_FT_FILE, "a", 1);
	ADD(&m, PS_FT_FILE, "a/b", 1);
	refused_edit(&m, 0, 0, "P", 1, "below a file");
	ps_manifest_free(&m);
}

static void
test_path_cmp(void **state)
{
	(void)state;
	assert_true(ps_path_cmp("a", 1, "a/b", 3) < 0);
	assert_true(ps_path_cmp("a/b", 3, "a0", 2) < 0);
	/* '/' sorts below every other byte: a subtree right after its dir */
	assert_true(ps_path_cmp("a/b", 3, "a-", 2) < 0);
	assert_true(ps_path_cmp("a/zzz", 5, "a.txt", 5) < 0);
	assert_true(ps_path_cmp("a\x01", 2, "a/", 2) > 0);
	assert_true(ps_path_cmp("\xff", 1, "a", 1) > 0);
	assert_int_equal(ps_path_cmp("ab", 2, "ab", 2), 0);
}

/* ---- diff ---- */

struct calls {
	int n;
	char log[16][40];
};

static void
diff_cb(enum ps_diff_state st, const struct ps_entry *o,
    const struct ps_entry *n, void *arg)
{
	struct calls *c = arg;
	const char *s = st == PS_D_MISSING ? "missing" :
	    st == PS_D_OUTDATED ? "outdated" : "extra";

	assert_true(c->n < 16);
	if (st == PS_D_MISSING)
		assert_null(n);
	if (st == PS_D_EXTRA)
		assert_null(o);
	snprintf(c->log[c->n++], sizeof(c->log[0]), "%s %s", s,
	    o ? o->path : n->path);
}

static void
test_diff(void **state)
{
	struct ps_manifest o = { 0 }, n = { 0 };
	struct calls c = { 0 };
	struct ps_entry *e;

	(void)state;
	ADD(&o, PS_FT_FILE, "a", 10);
	ADD(&o, PS_FT_FILE, "b", 10);
	ADD(&o, PS_FT_FILE, "c", 10);
	ADD(&o, PS_FT_DIR, "d", 0);
	ADD(&o, PS_FT_FILE, "e", 10);
	ADD(&o, PS_FT_FILE, "g", 10);

	ADD(&n, PS_FT_FILE, "a", 10);	/* same as o's: same n, same hash */
	e = ADD(&n, PS_FT_FILE, "b", 10);
	e->hash[0] ^= 1;		/* content differs */
	ADD(&n, PS_FT_FILE, "d", 10);	/* dir became a file */
	ADD(&n, PS_FT_DIR, "e", 0);	/* file became a dir */
	ADD(&n, PS_FT_FILE, "f", 10);
	e = ADD(&n, PS_FT_FILE, "g", 11);	/* size differs */
	memcpy(e->hash, o.e[5].hash, 16);
	/* "a" hashes depend on position in add(): make them equal. */
	memcpy(n.e[0].hash, o.e[0].hash, 16);

	assert_int_equal(ps_manifest_diff(&o, &n, 1, diff_cb, &c), 6);
	assert_string_equal(c.log[0], "outdated b");
	assert_string_equal(c.log[1], "missing c");
	assert_string_equal(c.log[2], "extra d");
	assert_string_equal(c.log[3], "missing e");
	assert_string_equal(c.log[4], "extra f");
	assert_string_equal(c.log[5], "outdated g");

	memset(&c, 0, sizeof(c));
	assert_int_equal(ps_manifest_diff(&o, &n, 0, diff_cb, &c), 4);
	assert_string_equal(c.log[1], "missing c");
	assert_string_equal(c.log[2], "missing e");

	assert_true(ps_entry_same_content(&o.e[0], &n.e[0]));
	assert_false(ps_entry_same_content(&o.e[3], &o.e[3]));	/* dirs */
	ps_manifest_free(&o);
	ps_manifest_free(&n);
}

/* ---- build on a real tree ---- */

static char tmpdir[64];

static void
mkfile(const char *rel, const void *p, size_t n)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static void
mkd(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	assert_int_equal(mkdir(path, 0750), 0);
}

static unsigned char *
pattern(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n ? n : 1);
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
	return p;
}

static void
assert_content(const struct ps_manifest *m, const char *path,
    const unsigned char *p, size_t n)
{
	const struct ps_entry *e = ps_manifest_find(m, path, strlen(path));
	XXH128_canonical_t c;
	size_t bs, k;

	if (e == NULL)
		fail_msg("%s not in manifest", path);
	assert_int_equal(e->type, PS_FT_FILE);
	assert_int_equal(e->size, n);
	XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
	assert_memory_equal(e->hash, c.digest, 16);
	assert_int_equal(e->block_shift, ps_block_shift_for(n));
	bs = (size_t)1 << e->block_shift;
	assert_int_equal(e->nblocks, (n + bs - 1) / bs);
	for (k = 0; k < e->nblocks; k++)
		assert_int_equal(e->blocks[k], XXH3_64bits(p + k * bs,
		    n - k * bs < bs ? n - k * bs : bs));
}

static int
setup_tree(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/manifest_test.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown_tree(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const size_t big_n = (3u << 20) + 12345;	/* several read fills */

static void
make_tree(void)
{
	unsigned char *p;
	char path[512];

	mkd("sub");
	mkd("sub/deeper");
	mkd("sub/.patchsync");	/* only the top-level one is skipped */
	mkd(".patchsync");
	mkfile(".patchsync/state", "x", 1);
	mkfile("empty", "", 0);
	mkfile("sub/deeper/with space", "hello\n", 6);
	mkfile("sub/new\nline", "n", 1);
	mkfile("sub/\xff", "ff", 2);
	p = pattern(10000, 1);
	mkfile("sub/three_blocks", p, 10000);
	free(p);
	p = pattern(1 << 20, 2);
	mkfile("exactly_1MiB", p, 1 << 20);
	free(p);
	p = pattern(big_n, 3);
	mkfile("big", p, big_n);
	free(p);
	snprintf(path, sizeof(path), "%s/link", tmpdir);
	assert_int_equal(symlink("empty", path), 0);
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	assert_int_equal(mkfifo(path, 0644), 0);
}

static void
check_tree(const struct ps_manifest *m)
{
	static const char *want[] = {
		"big", "empty", "exactly_1MiB", "sub", "sub/.patchsync",
		"sub/deeper", "sub/deeper/with space", "sub/new\nline",
		"sub/three_blocks", "sub/\xff",
	};
	unsigned char *p;
	size_t i;

	assert_int_equal(m->flags, PS_MF_LOCAL);
	assert_int_equal(m->n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < m->n; i++)
		assert_string_equal(m->e[i].path, want[i]);
	assert_int_equal(m->e[3].type, PS_FT_DIR);
	assert_int_equal(m->e[3].mode, 0750);
	assert_int_equal(m->e[3].size, 0);
	assert_int_equal(m->e[1].mode, 0644 & ~0022);
	assert_content(m, "empty", (const unsigned char *)"", 0);
	assert_content(m, "sub/deeper/with space",
	    (const unsigned char *)"hello\n", 6);
	assert_content(m, "sub/\xff", (const unsigned char *)"ff", 2);
	p = pattern(10000, 1);
	assert_content(m, "sub/three_blocks", p, 10000);
	free(p);
	p = pattern(1 << 20, 2);
	assert_content(m, "exactly_1MiB", p, 1 << 20);
	free(p);
	p = pattern(big_n, 3);
	assert_content(m, "big", p, big_n);
	free(p);
}

static void
test_build(void **state)
{
	struct ps_build_opts o = { 0 };
	struct ps_manifest m, d;
	struct buf b = { 0 };
	int threads;

	(void)state;
	umask(022);
	make_tree();
	for (threads = 1; threads <= 3; threads++) {
		o.threads = threads;
		assert_int_equal(ps_manifest_build(tmpdir, &o, &m), PS_OK);
		check_tree(&m);
		/* What build makes, decode accepts. */
		ps_manifest_encode(&m, 1, &b);
		assert_int_equal(decode_ok(&b, &d), 0);
		check_tree(&d);
		ps_manifest_free(&d);
		buf_free(&b);
		ps_manifest_free(&m);
	}
	/*
	 * Twice over one descriptor: the second walk sees the whole tree
	 * again (it once read on from where the first stopped, at the end,
	 * and found the tree empty).
	 */
	{
		int fd = open(tmpdir, O_RDONLY | O_DIRECTORY);

		assert_true(fd >= 0);
		assert_int_equal(ps_manifest_buildat(fd, &o, &m), PS_OK);
		check_tree(&m);
		ps_manifest_free(&m);
		assert_int_equal(ps_manifest_buildat(fd, &o, &m), PS_OK);
		check_tree(&m);
		ps_manifest_free(&m);
		close(fd);
	}
}

static void
test_build_cache(void **state)
{
	struct ps_build_opts o = { 0 };
	struct ps_manifest c, m;
	struct ps_entry *ce;
	const struct ps_entry *e;
	char path[512];
	int fd;

	(void)state;
	mkfile("cached", "0123456789", 10);
	/* Just written: too recent to be trusted as a cache entry. */
	assert_int_equal(ps_manifest_build(tmpdir, &o, &c), PS_OK);
	ce = (struct ps_entry *)ps_manifest_find(&c, "cached", 6);
	assert_int_equal(ce->ino, 0);
	ce->hash[0] ^= 0xff;
	o.cache = &c;
	assert_int_equal(ps_manifest_build(tmpdir, &o, &m), PS_OK);
	assert_content(&m, "cached", (const unsigned char *)"0123456789", 10);
	ps_manifest_free(&m);
	ps_manifest_free(&c);

	sleep(2);
	o.cache = NULL;
	assert_int_equal(ps_manifest_build(tmpdir, &o, &c), PS_OK);
	ce = (struct ps_entry *)ps_manifest_find(&c, "cached", 6);
	assert_true(ce->ino != 0);
	/* A wrong hash in the cache shows that the cache was used. */
	ce->hash[0] ^= 0xff;
	ce->blocks[0] ^= 1;
	o.cache = &c;
	assert_int_equal(ps_manifest_build(tmpdir, &o, &m), PS_OK);
	e = ps_manifest_find(&m, "cached", 6);
	assert_memory_equal(e->hash, ce->hash, 16);
	assert_int_equal(e->blocks[0], ce->blocks[0]);
	ps_manifest_free(&m);

	/* The same cache read as a stream (as push reads it) is used too. */
	{
		struct buf b = { 0 };
		struct mem mm;
		struct ps_mfin *in;

		ps_manifest_encode(&c, PS_ENC_LOCAL, &b);
		mm.p = b.p;
		mm.len = b.len;
		mm.off = 0;
		in = ps_mfin_new(mem_read, &mm);
		o.cache = NULL;
		o.cache_in = in;
		assert_int_equal(ps_manifest_build(tmpdir, &o, &m), PS_OK);
		e = ps_manifest_find(&m, "cached", 6);
		assert_memory_equal(e->hash, ce->hash, 16);
		ps_manifest_free(&m);
		ps_mfin_free(in);
		buf_free(&b);
	}
	/*
	 * A cache of manifest version 1 (patchsync before engine v2), with
	 * the file's identity and a wrong hash: not trusted, the file is
	 * hashed again (and the cache rewritten in today's format).
	 */
	{
		struct buf b = { 0 };
		struct mem mm;
		struct ps_mfin *in;
		XXH128_canonical_t h;

		buf_add(&b, "PSYNCMF\n", 8);
		buf_add_u32(&b, 1);
		buf_add_u32(&b, PS_MF_LOCAL);
		buf_add_u64(&b, 1);
		buf_addc(&b, PS_FT_FILE);
		buf_add_u32(&b, 6);
		buf_addstr(&b, "cached");
		buf_add_u32(&b, ce->mode);
		buf_add_u64(&b, ce->size);
		buf_add_u64(&b, (uint64_t)ce->mtime_sec);
		buf_add_u32(&b, ce->mtime_nsec);
		buf_add(&b, ce->hash, 16);
		buf_addc(&b, ce->block_shift);
		buf_add_u64(&b, ce->blocks[0]);
		buf_add_u64(&b, ce->dev);
		buf_add_u64(&b, ce->ino);
		buf_add_u64(&b, (uint64_t)ce->ctime_sec);
		buf_add_u32(&b, ce->ctime_nsec);
		XXH128_canonicalFromHash(&h, XXH3_128bits(b.p, b.len));
		buf_add(&b, h.digest, 16);
		/* It is a good version 1 manifest... */
		{
			struct ps_manifest v1;

			assert_int_equal(decode_ok(&b, &v1), 0);
			assert_memory_equal(v1.e[0].hash, ce->hash, 16);
			assert_int_equal(v1.e[0].ino, ce->ino);
			ps_manifest_free(&v1);
		}
		/* ...that a streamed build does not trust. */
		mm.p = b.p;
		mm.len = b.len;
		mm.off = 0;
		in = ps_mfin_new(mem_read, &mm);
		o.cache_in = in;
		assert_int_equal(ps_manifest_build(tmpdir, &o, &m), PS_OK);
		assert_content(&m, "cached", (const unsigned char *)
		    "0123456789", 10);
		ps_manifest_free(&m);
		ps_mfin_free(in);
		o.cache_in = NULL;
		o.cache = &c;
		buf_free(&b);
	}

	/* --checksum reads it anyway. */
	o.checksum = 1;
	assert_int_equal(ps_manifest_build(tmpdir, &o, &m), PS_OK);
	assert_content(&m, "cached", (const unsigned char *)"0123456789", 10);
	ps_manifest_free(&m);

	/* Same size, mtime put back: ctime still tells. */
	o.checksum = 0;
	snprintf(path, sizeof(path), "%s/cached", tmpdir);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 0), 1);
	{
		struct timespec ts[2] = {
			{ .tv_sec = 0, .tv_nsec = UTIME_OMIT },
			{ .tv_sec = ce->mtime_sec, .tv_nsec = ce->mtime_nsec },
		};
		assert_int_equal(futimens(fd, ts), 0);
	}
	close(fd);
	assert_int_equal(ps_manifest_build(tmpdir, &o, &m), PS_OK);
	assert_content(&m, "cached", (const unsigned char *)"X123456789", 10);
	ps_manifest_free(&m);
	ps_manifest_free(&c);
}

static void
test_build_errors(void **state)
{
	struct ps_manifest m;
	char path[512];

	(void)state;
	assert_int_equal(ps_manifest_build("/nonexistent/patchsync", NULL,
	    &m), PS_EUSAGE);
	assert_int_equal(m.n, 0);
	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	assert_int_equal(ps_manifest_build(path, NULL, &m), PS_EUSAGE);
	if (geteuid() == 0)
		return;	/* root reads anything */
	snprintf(path, sizeof(path), "%s/sub/three_blocks", tmpdir);
	assert_int_equal(chmod(path, 0), 0);
	assert_int_equal(ps_manifest_build(tmpdir, NULL, &m), PS_EPARTIAL);
	assert_null(ps_manifest_find(&m, "sub/three_blocks", 16));
	assert_non_null(ps_manifest_find(&m, "sub/deeper/with space", 21));
	ps_manifest_free(&m);
	assert_int_equal(chmod(path, 0644), 0);
}

/* Write M through a cache writer over OLDFD into tmpdir/NAME. */
static int
cachew_write(const struct ps_manifest *m, int oldfd, const char *name)
{
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY), fd;
	struct ps_cachew *c;
	size_t i;

	assert_true(dfd >= 0);
	c = ps_cachew_open(name != NULL ? dfd : -1, name, oldfd, PS_MF_LOCAL,
	    PS_ENC_LOCAL);
	for (i = 0; i < m->n; i++)
		ps_cachew_add(c, &m->e[i]);
	fd = ps_cachew_commit(c, "test");
	close(dfd);
	return fd;
}

/* The manifest in FD, read back as a stream, equals M. */
static void
assert_reads_back(int fd, const struct ps_manifest *m)
{
	struct ps_mfin *in = ps_mfin_pread(fd);
	const struct ps_entry *e;
	size_t i = 0;

	while ((e = ps_mfin_next(in)) != NULL) {
		assert_true(i < m->n);
		assert_string_equal(e->path, m->e[i].path);
		assert_memory_equal(e->hash, m->e[i].hash, 16);
		assert_int_equal(e->ino, m->e[i].ino);
		i++;
	}
	assert_false(ps_mfin_failed(in));
	assert_int_equal(i, m->n);
	ps_mfin_free(in);
}

static void
test_cache_writer(void **state)
{
	struct ps_manifest m = { 0 };
	struct stat a, b;
	char path[128], name[32];
	int fd, fd2, i;

	(void)state;
	m.flags = PS_MF_LOCAL;
	/* Enough entries for several of the writer's batches. */
	for (i = 0; i < 40000; i++) {
		snprintf(name, sizeof(name), "d%02d/f%05d", i / 1000, i);
		add(&m, PS_FT_FILE, name, strlen(name), 100000 + (uint64_t)i);
	}
	snprintf(path, sizeof(path), "%s/c.psm", tmpdir);
	unlink(path);
	/* No old file: written. */
	fd = cachew_write(&m, -1, "c.psm");
	assert_true(fd >= 0);
	assert_reads_back(fd, &m);
	close(fd);
	assert_int_equal(stat(path, &a), 0);
	/* The same again: the old file stays, untouched. */
	fd = cachew_write(&m, open(path, O_RDONLY), "c.psm");
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_reads_back(fd, &m);
	close(fd);
	/* One entry changed near the end: a new file with the new entry. */
	m.e[m.n - 3].hash[0] ^= 1;
	fd = cachew_write(&m, open(path, O_RDONLY), "c.psm");
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &b), 0);
	assert_true(a.st_ino != b.st_ino);
	assert_reads_back(fd, &m);
	fd2 = open(path, O_RDONLY);
	assert_reads_back(fd2, &m);
	close(fd2);
	close(fd);
	/* Shorter: the old prefix is not enough. */
	ps_entry_free(&m.e[--m.n]);
	fd = cachew_write(&m, open(path, O_RDONLY), "c.psm");
	assert_reads_back(fd, &m);
	close(fd);
	/* No cache directory: an unlinked temporary. */
	fd = cachew_write(&m, -1, NULL);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &b), 0);
	assert_int_equal(b.st_nlink, 0);
	assert_reads_back(fd, &m);
	close(fd);
	/* Aborted: nothing changes, no temporary is left. */
	{
		int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
		struct ps_cachew *c = ps_cachew_open(dfd, "c.psm",
		    open(path, O_RDONLY), PS_MF_LOCAL, PS_ENC_LOCAL);

		ps_cachew_add(c, &m.e[1]);
		ps_cachew_abort(c);
		close(dfd);
		fd = open(path, O_RDONLY);
		assert_reads_back(fd, &m);
		close(fd);
	}
	unlink(path);
	ps_manifest_free(&m);
}

/*
 * Entries read with ps_mfin_pread_raw come without their sums, and their
 * encoded bytes copied with ps_mfw_add_raw make the very same manifest,
 * across the reader's refills (many entries) and with weak sums too.
 */
static void
test_raw_copy(void **state)
{
	struct ps_manifest m = { 0 };
	const struct ps_entry *e;
	const unsigned char *raw;
	struct ps_mfin *in;
	struct ps_mfw w;
	struct buf out = { 0 }, file = { 0 };
	char name[32];
	size_t len, i = 0;
	ssize_t r;
	int fd, k;

	(void)state;
	m.flags = PS_MF_LOCAL;
	for (k = 0; k < 20000; k++) {
		struct ps_entry *f;

		snprintf(name, sizeof(name), "d%02d/f%05d", k / 1000, k);
		f = add(&m, PS_FT_FILE, name, strlen(name),
		    (uint64_t)(k % 7) * 70000);
		if (k % 3 == 0 && f->nblocks > 0) {
			f->weak = calloc(f->nblocks, 4);
			f->weak[0] = (uint32_t)k;
		}
	}
	fd = cachew_write(&m, -1, NULL);
	assert_true(fd >= 0);
	buf_reserve(&file, 1u << 20);
	while ((r = pread(fd, file.p + file.len, file.cap - file.len,
	    (off_t)file.len)) > 0) {
		file.len += (size_t)r;
		buf_reserve(&file, 1u << 20);
	}
	in = ps_mfin_pread_raw(fd);
	ps_mfw_begin(&w, PS_MF_LOCAL, PS_ENC_LOCAL, &out);
	while ((e = ps_mfin_next(in)) != NULL) {
		assert_string_equal(e->path, m.e[i].path);
		assert_null(e->blocks);
		assert_null(e->weak);
		raw = ps_mfin_raw(in, &len);
		assert_true(len > 0);
		assert_int_equal(raw[0], e->type);
		ps_mfw_add_raw(&w, raw, len);
		i++;
	}
	assert_false(ps_mfin_failed(in));
	assert_int_equal(ps_mfin_flags(in), PS_MF_LOCAL);
	assert_int_equal(i, m.n);
	ps_mfw_end(&w);
	assert_int_equal(out.len, file.len);
	assert_memory_equal(out.p, file.p, file.len);
	ps_mfin_free(in);
	close(fd);
	buf_free(&out);
	buf_free(&file);
	ps_manifest_free(&m);
}

static void
test_load_save(void **state)
{
	struct ps_manifest m, d;
	struct stat st;
	char path[512];
	size_t i;

	(void)state;
	sample(&m);
	snprintf(path, sizeof(path), "%s/saved.mf", tmpdir);
	assert_int_equal(ps_manifest_save(path, &m, 1), PS_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(ps_manifest_load(path, &d), PS_OK);
	assert_int_equal(d.n, m.n);
	for (i = 0; i < m.n; i++)
		assert_same_entry(&m.e[i], &d.e[i], 1);
	ps_manifest_free(&d);

	/* Corrupt: refused with a usage error, nothing kept. */
	mkfile("bad.mf", "PSYNCMF\nnot really", 18);
	snprintf(path, sizeof(path), "%s/bad.mf", tmpdir);
	assert_int_equal(ps_manifest_load(path, &d), PS_EUSAGE);
	assert_int_equal(d.n, 0);
	assert_int_equal(ps_manifest_load("/nonexistent/x.mf", &d), PS_EUSAGE);

	/* Into a directory that does not exist: no temporary left behind. */
	snprintf(path, sizeof(path), "%s/nodir/x.mf", tmpdir);
	assert_int_equal(ps_manifest_save(path, &m, 0), PS_EUSAGE);

	/* /dev/null stays a device. */
	assert_int_equal(ps_manifest_save("/dev/null", &m, 0), PS_OK);
	assert_int_equal(stat("/dev/null", &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	ps_manifest_free(&m);
}

/* Sizes past 4 GiB: a sparse file, read as zeros. */
static void
test_build_huge_sparse(void **state)
{
	const uint64_t size = UINT64_C(5) << 30;
	struct ps_manifest m;
	XXH3_state_t *st;
	XXH128_canonical_t c;
	unsigned char *zero;
	char dir[600], path[700];
	const struct ps_entry *e;
	uint64_t k;
	int fd;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/huge", tmpdir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/sparse", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	if (ftruncate(fd, (off_t)size) == -1) {
		close(fd);
		skip();
	}
	close(fd);
	assert_int_equal(ps_manifest_build(dir, NULL, &m), PS_OK);
	assert_int_equal(m.n, 1);
	e = &m.e[0];
	assert_int_equal(e->size, size);
	assert_int_equal(e->block_shift, 17);
	assert_int_equal(e->nblocks, size >> 17);

	zero = calloc(1, 1 << 17);
	st = XXH3_createState();
	XXH3_128bits_reset(st);
	for (k = 0; k < size >> 17; k++)
		XXH3_128bits_update(st, zero, 1 << 17);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	assert_memory_equal(e->hash, c.digest, 16);
	for (k = 0; k < e->nblocks; k++)
		assert_int_equal(e->blocks[k], XXH3_64bits(zero, 1 << 17));
	XXH3_freeState(st);
	free(zero);
	ps_manifest_free(&m);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_shift),
		cmocka_unit_test(test_path_cmp),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_version1),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_every_byte_flip),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_parser_checks),
		cmocka_unit_test(test_order_checks),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_raw_copy),
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_build_cache),
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_load_save),
		cmocka_unit_test(test_cache_writer),
		cmocka_unit_test(test_build_huge_sparse),
	};

	ps_quiet = 1;	/* the skipped symlink and fifo are expected */
	return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}
