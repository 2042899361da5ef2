/*
 * manifest.c — build, serialise, parse and compare manifests (SPEC
 * section 7). The binary format is documented in man/patchsync-manifest.5;
 * keep the two in step.
 *
 * Walking and hashing live in walk.c; ps_manifest_build() collects what
 * the walker streams into a sorted array.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsops.h"
#include "manifest.h"
#include "walk.h"
#include "xxh.h"

/* Format constants: see man/patchsync-manifest.5. */
#define MF_MAGIC	"PSYNCMF\n"
#define MF_MAGIC_LEN	8
#define MF_VERSION	2
#define MF_HEADER_LEN	16	/* magic, version, flags */

unsigned
ps_block_shift_for(uint64_t size)
{
	unsigned k, s;

	/* ceil(log2(sqrt(size))) == ceil(ceil(log2(size)) / 2) */
	if (size <= 1)
		return PS_BLOCK_SHIFT_MIN;
	k = 64 - (unsigned)__builtin_clzll(size - 1);
	s = (k + 1) / 2;
	if (s < PS_BLOCK_SHIFT_MIN)
		s = PS_BLOCK_SHIFT_MIN;
	if (s > PS_BLOCK_SHIFT_MAX)
		s = PS_BLOCK_SHIFT_MAX;
	return s;
}

static uint64_t
nblocks_for(uint64_t size, unsigned shift)
{
	/* Written so that it cannot overflow for any 64-bit size. */
	return (size >> shift) + ((size & ((UINT64_C(1) << shift) - 1)) != 0);
}

/* Bytewise order, as version 1 manifests were sorted. */
static int
bytewise_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c;

	c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	if (alen == blen)
		return 0;
	return alen < blen ? -1 : 1;
}

int
ps_path_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i, n = alen < blen ? alen : blen;
	unsigned char x, y;

	/*
	 * Bytes, with '/' below every other byte: component by component,
	 * so a directory's whole subtree sorts right after it, the order
	 * of a depth-first walk with each directory's names sorted.
	 */
	for (i = 0; i < n; i++) {
		x = (unsigned char)a[i];
		y = (unsigned char)b[i];
		if (x == y)
			continue;
		if (x == '/')
			return -1;
		if (y == '/')
			return 1;
		return x < y ? -1 : 1;
	}
	if (alen == blen)
		return 0;
	return alen < blen ? -1 : 1;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct ps_entry *x = a, *y = b;

	return ps_path_cmp(x->path, x->path_len, y->path, y->path_len);
}

const struct ps_entry *
ps_manifest_find(const struct ps_manifest *m, const char *path, size_t len)
{
	size_t lo = 0, hi = m->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = ps_path_cmp(m->e[mid].path, m->e[mid].path_len, path, len);
		if (c == 0)
			return &m->e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int
ps_entry_same_content(const struct ps_entry *a, const struct ps_entry *b)
{
	return a->type == PS_FT_FILE && b->type == PS_FT_FILE &&
	    a->size == b->size && memcmp(a->hash, b->hash, 16) == 0;
}

static void
entry_free(struct ps_entry *e)
{
	free(e->path);
	free(e->blocks);
	free(e->weak);
	e->path = NULL;
	e->blocks = NULL;
	e->weak = NULL;
}

void
ps_manifest_free(struct ps_manifest *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		entry_free(&m->e[i]);
	free(m->e);
	for (i = 0; i < m->nunreadable; i++)
		free(m->unreadable[i]);
	free(m->unreadable);
	for (i = 0; i < m->ntemps; i++)
		free(m->temps[i]);
	free(m->temps);
	memset(m, 0, sizeof(*m));
}

/* Is the first LEN bytes of PATH one of the sorted strings of V? */
static int
strv_has(char *const *v, size_t n, const char *path, size_t len)
{
	size_t lo = 0, hi = n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = ps_path_cmp(v[mid], strlen(v[mid]), path, len);
		if (c == 0)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

int
ps_manifest_unknown(const struct ps_manifest *m, const char *path,
    size_t len)
{
	size_t i;

	if (m->nunreadable == 0)
		return 0;
	/* PATH itself, or any directory above it. */
	for (i = 1; i <= len; i++)
		if ((i == len || path[i] == '/') &&
		    strv_has(m->unreadable, m->nunreadable, path, i))
			return 1;
	return 0;
}

static struct ps_entry *
manifest_add(struct ps_manifest *m)
{
	struct ps_entry *e;

	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->e = xreallocarray(m->e, m->cap, sizeof(*m->e));
	}
	e = &m->e[m->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

/* The next file of IT, or NULL. */
static const struct ps_entry *
next_file(struct ps_eiter *it)
{
	const struct ps_entry *e;

	while ((e = it->next(it->arg)) != NULL && e->type != PS_FT_FILE)
		;
	return e;
}

size_t
ps_manifest_diff_iter(struct ps_eiter *old, struct ps_eiter *new, int extra,
    void (*cb)(enum ps_diff_state, const struct ps_entry *,
	const struct ps_entry *, void *), void *arg)
{
	const struct ps_entry *o, *n;
	size_t calls = 0;
	int c;

	/*
	 * A merge of the two sorted streams, looking at files only: a file
	 * facing a directory of the same name simply has no partner.
	 */
	o = next_file(old);
	n = next_file(new);
	while (o != NULL || n != NULL) {
		if (o == NULL)
			c = 1;
		else if (n == NULL)
			c = -1;
		else
			c = ps_path_cmp(o->path, o->path_len, n->path,
			    n->path_len);
		if (c < 0) {
			cb(PS_D_MISSING, o, NULL, arg);
			calls++;
			o = next_file(old);
		} else if (c > 0) {
			if (extra) {
				cb(PS_D_EXTRA, NULL, n, arg);
				calls++;
			}
			n = next_file(new);
		} else {
			if (!ps_entry_same_content(o, n)) {
				cb(PS_D_OUTDATED, o, n, arg);
				calls++;
			}
			o = next_file(old);
			n = next_file(new);
		}
	}
	return calls;
}

size_t
ps_manifest_diff(const struct ps_manifest *old, const struct ps_manifest *new,
    int extra, void (*cb)(enum ps_diff_state, const struct ps_entry *,
	const struct ps_entry *, void *), void *arg)
{
	struct ps_arr_pos pa, pb;
	struct ps_eiter a, b;

	ps_eiter_array(&a, &pa, old);
	ps_eiter_array(&b, &pb, new);
	return ps_manifest_diff_iter(&a, &b, extra, cb, arg);
}

static const struct ps_entry *
arr_next(void *arg)
{
	struct ps_arr_pos *a = arg;

	return a->i < a->m->n ? &a->m->e[a->i++] : NULL;
}

void
ps_eiter_array(struct ps_eiter *it, struct ps_arr_pos *a,
    const struct ps_manifest *m)
{
	a->m = m;
	a->i = 0;
	it->next = arr_next;
	it->arg = a;
}

static const struct ps_entry *
mfin_next(void *arg)
{
	return ps_mfin_next(arg);
}

void
ps_eiter_mfin(struct ps_eiter *it, struct ps_mfin *in)
{
	it->next = mfin_next;
	it->arg = in;
}

/* ---- Encoding (version 2, streaming) ---- */

/* Does E carry sums in this encoding? */
static int
sums_kept(const struct ps_entry *e, int how)
{
	if (e->type != PS_FT_FILE || e->blocks == NULL || e->nblocks == 0 ||
	    e->nblocks > PS_SUMS_MAX_BLOCKS || (how & PS_ENC_NOSUMS))
		return 0;
	return !(how & PS_ENC_WIRE) || e->size >= PS_SUMS_MIN_SIZE;
}

void
ps_mfw_begin(struct ps_mfw *w, uint32_t flags, int how, struct buf *out)
{
	unsigned char h[MF_HEADER_LEN];

	memset(w, 0, sizeof(*w));
	w->how = how;
	w->out = out;
	w->flags = (how & PS_ENC_LOCAL) ? (flags & PS_MF_LOCAL) : 0;
	w->st = XXH3_createState();
	if (w->st == NULL) {
		ps_err("out of memory");
		exit(PS_EPARTIAL);
	}
	XXH3_128bits_reset(w->st);
	memcpy(h, MF_MAGIC, MF_MAGIC_LEN);
	put_u32le(h + 8, MF_VERSION);
	put_u32le(h + 12, w->flags);
	buf_add(out, h, sizeof(h));
	w->start = out->len - sizeof(h);
}

/* Hash what was appended since the last call, so OUT may be drained. */
static void
mfw_hash(struct ps_mfw *w)
{
	HASH128_UPDATE(w->st, w->out->p + w->start, w->out->len - w->start);
	w->start = w->out->len;
}

void
ps_mfw_add(struct ps_mfw *w, const struct ps_entry *e)
{
	struct buf *out = w->out;
	uint64_t k;
	int sums = sums_kept(e, w->how);

	if (w->start > out->len)	/* the caller drained OUT */
		w->start = 0;
	buf_reserve(out, 64 + e->path_len + (sums ? e->nblocks * 12 : 0));
	buf_addc(out, e->type);
	buf_add_u32(out, e->path_len);
	buf_add(out, e->path, e->path_len);
	buf_add_u32(out, e->mode);
	buf_add_u64(out, (uint64_t)e->mtime_sec);
	buf_add_u32(out, e->mtime_nsec);
	if (e->type == PS_FT_FILE) {
		buf_add_u64(out, e->size);
		buf_add(out, e->hash, 16);
		buf_addc(out, e->block_shift);
		if (sums)
			buf_addc(out, e->weak != NULL ? PS_SUMS_STRONG |
			    PS_SUMS_WEAK : PS_SUMS_STRONG);
		else
			buf_addc(out, 0);
		if (sums) {
			/* Reserved above: written in one pass each. */
			for (k = 0; k < e->nblocks; k++)
				put_u64le(out->p + out->len + 8 * k,
				    e->blocks[k]);
			out->len += 8 * e->nblocks;
		}
		if (sums && e->weak != NULL) {
			for (k = 0; k < e->nblocks; k++)
				put_u32le(out->p + out->len + 4 * k,
				    e->weak[k]);
			out->len += 4 * e->nblocks;
		}
	}
	if (w->flags & PS_MF_LOCAL) {
		buf_add_u64(out, e->dev);
		buf_add_u64(out, e->ino);
		buf_add_u64(out, (uint64_t)e->ctime_sec);
		buf_add_u32(out, e->ctime_nsec);
	}
	w->count++;
	mfw_hash(w);
}

void
ps_mfw_add_raw(struct ps_mfw *w, const unsigned char *p, size_t n)
{
	if (w->start > w->out->len)	/* the caller drained OUT */
		w->start = 0;
	buf_add(w->out, p, n);
	w->count++;
	mfw_hash(w);
}

void
ps_mfw_end(struct ps_mfw *w)
{
	XXH128_canonical_t c;

	if (w->start > w->out->len)
		w->start = 0;
	buf_addc(w->out, 0);		/* the end marker */
	buf_add_u64(w->out, w->count);
	mfw_hash(w);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(w->st));
	buf_add(w->out, c.digest, 16);
	XXH3_freeState(w->st);
	w->st = NULL;
}

void
ps_manifest_encode(const struct ps_manifest *m, int how, struct buf *out)
{
	struct ps_mfw w;
	size_t i;

	ps_mfw_begin(&w, m->flags, how, out);
	for (i = 0; i < m->n; i++)
		ps_mfw_add(&w, &m->e[i]);
	ps_mfw_end(&w);
}

/* ---- Decoding: every field of untrusted input is checked. ---- */

struct cur {
	const unsigned char *p;
	size_t left;
};

static int
take(struct cur *c, void *dst, size_t n)
{
	if (c->left < n)
		return -1;
	memcpy(dst, c->p, n);
	c->p += n;
	c->left -= n;
	return 0;
}

static int
take_u8(struct cur *c, uint8_t *v)
{
	return take(c, v, 1);
}

static int
take_u32(struct cur *c, uint32_t *v)
{
	if (c->left < 4)
		return -1;
	*v = get_u32le(c->p);
	c->p += 4;
	c->left -= 4;
	return 0;
}

static int
take_u64(struct cur *c, uint64_t *v)
{
	if (c->left < 8)
		return -1;
	*v = get_u64le(c->p);
	c->p += 8;
	c->left -= 8;
	return 0;
}

static int
take_i64(struct cur *c, int64_t *v)
{
	uint64_t u;

	if (take_u64(c, &u) == -1)
		return -1;
	memcpy(v, &u, sizeof(*v));	/* two's complement, no UB */
	return 0;
}

static int
fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Entry parse results besides 0 and -1 (bad). */
#define MORE 1		/* the entry is not all there yet */

static int
take_path(struct cur *c, uint64_t i, struct ps_entry *e, char *err,
    size_t errlen)
{
	uint32_t plen;

	if (take_u32(c, &plen) == -1)
		return MORE;
	if (plen == 0 || plen > PS_PATH_MAX)
		return fail(err, errlen, "entry %llu: path length %u out of "
		    "range", (unsigned long long)i, plen);
	if (c->left < plen)
		return MORE;
	if (!ps_path_ok((const char *)c->p, plen))
		return fail(err, errlen, "entry %llu: unsafe path",
		    (unsigned long long)i);
	e->path = xstrndup((const char *)c->p, plen);
	e->path_len = plen;
	c->p += plen;
	c->left -= plen;
	return 0;
}

/* A file's hash, block shift and sums (version 2). */
static int
take_file(struct cur *c, uint64_t i, struct ps_entry *e, uint64_t sums_min,
    char *err, size_t errlen)
{
	uint8_t sums;
	uint64_t k;

	if (take_u64(c, &e->size) == -1 || take(c, e->hash, 16) == -1 ||
	    take_u8(c, &e->block_shift) == -1 || take_u8(c, &sums) == -1)
		return MORE;
	if (e->block_shift != ps_block_shift_for(e->size))
		return fail(err, errlen, "entry %llu: block shift %u wrong "
		    "for size %llu", (unsigned long long)i, e->block_shift,
		    (unsigned long long)e->size);
	e->nblocks = nblocks_for(e->size, e->block_shift);
	if (sums != 0 && sums != PS_SUMS_STRONG &&
	    sums != (PS_SUMS_STRONG | PS_SUMS_WEAK))
		return fail(err, errlen, "entry %llu: unknown sums 0x%x",
		    (unsigned long long)i, sums);
	if (sums != 0 && (e->nblocks == 0 ||
	    e->nblocks > PS_SUMS_MAX_BLOCKS))
		return fail(err, errlen, "entry %llu: sums for %llu blocks",
		    (unsigned long long)i, (unsigned long long)e->nblocks);
	if (sums == 0)
		return 0;
	/* Checked against the bytes present before allocating. */
	if (c->left / ((sums & PS_SUMS_WEAK) ? 12 : 8) < e->nblocks)
		return MORE;
	if (e->size < sums_min) {	/* passed over (raw copies, small) */
		k = e->nblocks * ((sums & PS_SUMS_WEAK) ? 12 : 8);
		c->p += k;
		c->left -= k;
		return 0;
	}
	/* In one pass each: these are most of a cache's bytes. */
	e->blocks = xreallocarray(NULL, e->nblocks, 8);
	for (k = 0; k < e->nblocks; k++)
		e->blocks[k] = get_u64le(c->p + 8 * k);
	c->p += 8 * e->nblocks;
	c->left -= 8 * e->nblocks;
	if (sums & PS_SUMS_WEAK) {
		e->weak = xreallocarray(NULL, e->nblocks, 4);
		for (k = 0; k < e->nblocks; k++)
			e->weak[k] = get_u32le(c->p + 4 * k);
		c->p += 4 * e->nblocks;
		c->left -= 4 * e->nblocks;
	}
	return 0;
}

/*
 * Parse one version 2 entry at C into E (which then owns its arrays).
 * Returns 0, MORE when C ends inside it, or -1 (ERR says why).
 */
static int
decode_entry2(struct cur *c, uint64_t i, int local, uint64_t sums_min,
    struct ps_entry *e, char *err, size_t errlen)
{
	int r;

	if ((r = take_path(c, i, e, err, errlen)) != 0)
		return r;
	if (take_u32(c, &e->mode) == -1 || take_i64(c, &e->mtime_sec) == -1 ||
	    take_u32(c, &e->mtime_nsec) == -1)
		return MORE;
	if (e->mode & ~(uint32_t)07777)
		return fail(err, errlen, "entry %llu: bad mode 0%o",
		    (unsigned long long)i, e->mode);
	if (e->mtime_nsec >= 1000000000)
		return fail(err, errlen, "entry %llu: bad mtime",
		    (unsigned long long)i);
	if (e->type == PS_FT_FILE &&
	    (r = take_file(c, i, e, sums_min, err, errlen)) != 0)
		return r;
	if (local) {
		if (take_u64(c, &e->dev) == -1 || take_u64(c, &e->ino) == -1 ||
		    take_i64(c, &e->ctime_sec) == -1 ||
		    take_u32(c, &e->ctime_nsec) == -1)
			return MORE;
		if (e->ctime_nsec >= 1000000000)
			return fail(err, errlen, "entry %llu: bad ctime",
			    (unsigned long long)i);
	}
	return 0;
}

struct ps_mfr {
	struct buf in;		/* bytes fed; those before pos are parsed */
	size_t pos;
	XXH3_state_t *st;	/* hash of the bytes parsed */
	int state;		/* 0 header, 1 entries, 2 trailer, 3 done */
	uint32_t flags;
	uint64_t count;
	struct ps_entry prev;	/* the last entry: path, type (order) */
	int nosums;		/* entries without their sums (raw use) */
	uint64_t sums_min;	/* smaller files' sums are passed over */
	size_t raw_off;		/* the last entry's bytes, in IN */
	size_t raw_len;
	char err[160];
};

struct ps_mfr *
ps_mfr_new(void)
{
	struct ps_mfr *r = xcalloc(1, sizeof(*r));

	r->st = XXH3_createState();
	if (r->st == NULL) {
		ps_err("out of memory");
		exit(PS_EPARTIAL);
	}
	XXH3_128bits_reset(r->st);
	return r;
}

void
ps_mfr_free(struct ps_mfr *r)
{
	if (r == NULL)
		return;
	buf_free(&r->in);
	XXH3_freeState(r->st);
	free(r->prev.path);
	free(r);
}

uint32_t
ps_mfr_flags(const struct ps_mfr *r)
{
	return r->flags;
}

const char *
ps_mfr_error(const struct ps_mfr *r)
{
	return r->err;
}

/* Order and nesting of E after the previous entry (version 2 rules). */
static int
mfr_check_order(struct ps_mfr *r, const struct ps_entry *e)
{
	const struct ps_entry *p = &r->prev;

	if (p->path == NULL)
		return 0;
	if (ps_path_cmp(p->path, p->path_len, e->path, e->path_len) >= 0)
		return fail(r->err, sizeof(r->err), "entry %llu: out of order "
		    "or duplicate", (unsigned long long)r->count);
	/* Everything below "a" comes right after "a" in this order. */
	if (p->type == PS_FT_FILE && e->path_len > p->path_len &&
	    memcmp(e->path, p->path, p->path_len) == 0 &&
	    e->path[p->path_len] == '/')
		return fail(r->err, sizeof(r->err), "entry %llu: below a file",
		    (unsigned long long)r->count);
	return 0;
}

/* Bytes fed and not parsed yet. */
#define LEFT(r) ((r)->in.len - (r)->pos)
#define AT(r) ((r)->in.p + (r)->pos)

/* Consume N parsed bytes (hashed). */
static void
mfr_consume(struct ps_mfr *r, size_t n)
{
	HASH128_UPDATE(r->st, AT(r), n);
	r->pos += n;
}

static int
mfr_header(struct ps_mfr *r)
{
	uint32_t version;

	if (LEFT(r) < MF_HEADER_LEN)
		return MORE;
	if (memcmp(AT(r), MF_MAGIC, MF_MAGIC_LEN) != 0)
		return fail(r->err, sizeof(r->err), "bad magic");
	version = get_u32le(AT(r) + 8);
	if (version != MF_VERSION)
		return fail(r->err, sizeof(r->err), "unsupported version %u",
		    version);
	r->flags = get_u32le(AT(r) + 12);
	if (r->flags & ~(uint32_t)PS_MF_LOCAL)
		return fail(r->err, sizeof(r->err), "unknown flags 0x%x",
		    r->flags);
	mfr_consume(r, MF_HEADER_LEN);
	r->state = 1;
	return 0;
}

static int
mfr_trailer(struct ps_mfr *r)
{
	XXH128_canonical_t c;
	uint64_t count;

	if (LEFT(r) < 8 + 16)
		return MORE;
	count = get_u64le(AT(r));
	mfr_consume(r, 8);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(r->st));
	if (memcmp(c.digest, AT(r), 16) != 0)
		return fail(r->err, sizeof(r->err), "checksum mismatch "
		    "(corrupt or truncated)");
	if (count != r->count)
		return fail(r->err, sizeof(r->err), "%llu entries, the trailer "
		    "says %llu", (unsigned long long)r->count,
		    (unsigned long long)count);
	r->pos += 16;
	r->state = 3;
	return 0;
}

/* Parse what is complete: entries go to CB, which owns them. */
static int
mfr_parse(struct ps_mfr *r, int (*cb)(struct ps_entry *, void *), void *arg)
{
	struct ps_entry e;
	struct cur c;
	int rc;

	for (;;) {
		if (r->state == 0 && (rc = mfr_header(r)) != 0)
			return rc == MORE ? 0 : -1;
		if (r->state == 2 && (rc = mfr_trailer(r)) != 0)
			return rc == MORE ? 0 : -1;
		if (r->state == 3)
			return LEFT(r) == 0 ? 0 : fail(r->err,
			    sizeof(r->err), "%zu bytes after the end",
			    LEFT(r));
		if (LEFT(r) == 0)
			return 0;
		if (AT(r)[0] == 0) {		/* the end marker */
			mfr_consume(r, 1);
			r->state = 2;
			continue;
		}
		memset(&e, 0, sizeof(e));
		e.type = AT(r)[0];
		if (e.type != PS_FT_FILE && e.type != PS_FT_DIR)
			return fail(r->err, sizeof(r->err), "entry %llu: "
			    "unknown type 0x%02x", (unsigned long long)r->count,
			    e.type);
		c.p = AT(r) + 1;
		c.left = LEFT(r) - 1;
		rc = decode_entry2(&c, r->count, r->flags & PS_MF_LOCAL,
		    r->nosums ? UINT64_MAX : r->sums_min, &e, r->err,
		    sizeof(r->err));
		if (rc == 0)
			rc = mfr_check_order(r, &e);
		if (rc != 0) {
			entry_free(&e);
			return rc == MORE ? 0 : -1;
		}
		r->raw_off = r->pos;
		r->raw_len = LEFT(r) - c.left;
		mfr_consume(r, r->raw_len);
		r->count++;
		free(r->prev.path);
		r->prev.path = xstrndup(e.path, e.path_len);
		r->prev.path_len = e.path_len;
		r->prev.type = e.type;
		if ((rc = cb(&e, arg)) != 0)
			return rc;
	}
}

int
ps_mfr_feed(struct ps_mfr *r, const void *p, size_t n,
    int (*cb)(struct ps_entry *e, void *arg), void *arg)
{
	int rc;

	if (r->err[0] != '\0')
		return -1;
	/* Drop what was parsed before adding more. */
	if (r->pos > 0) {
		memmove(r->in.p, AT(r), LEFT(r));
		r->in.len -= r->pos;
		r->pos = 0;
	}
	buf_add(&r->in, p, n);
	if ((rc = mfr_parse(r, cb, arg)) != 0)
		return rc;
	/* No entry is longer: what is left unparsed is not one. */
	if (LEFT(r) > PS_MF_ENTRY_MAX)
		return fail(r->err, sizeof(r->err), "entry %llu: too long",
		    (unsigned long long)r->count);
	return 0;
}

int
ps_mfr_done(struct ps_mfr *r)
{
	if (r->err[0] != '\0')
		return -1;
	if (r->state != 3 || LEFT(r) != 0)
		return fail(r->err, sizeof(r->err), "truncated (%s)",
		    r->state == 0 ? "no header" : r->state == 1 ?
		    "no end marker" : "no trailer");
	return 0;
}

/*
 * No entry may lie below a file: "a" a file and "a/b" present describes
 * no tree. Every ancestor path sorts before its descendants, so M is
 * complete enough to look them up.
 */
static int
check_ancestors(const struct ps_manifest *m, char *err, size_t errlen)
{
	const struct ps_entry *e, *a;
	size_t i, k;

	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		for (k = 1; k < e->path_len; k++) {
			if (e->path[k] != '/')
				continue;
			a = ps_manifest_find(m, e->path, k);
			if (a != NULL && a->type != PS_FT_DIR)
				return fail(err, errlen, "entry %zu: below "
				    "a file", i);
		}
	}
	return 0;
}

/* ---- Pull: a stream of entries ---- */

#define MFIN_CHUNK (64u << 10)

struct ps_mfin {
	ps_mfin_read_fn rd;
	void *arg;
	int fd;			/* ps_mfin_fd's, ps_mfin_pread's */
	off_t off;		/* ps_mfin_pread's */
	struct ps_mfr *r;
	struct ps_entry *q;	/* entries decoded, not taken yet */
	size_t *raw;		/* and where their bytes are in r->in */
	size_t nq, cap, head;
	struct ps_entry cur;	/* the one handed out last */
	size_t cur_raw, cur_len;
	int eof, failed;
	char err[160];
	unsigned char *chunk;
};

static int
mfin_take(struct ps_entry *e, void *arg)
{
	struct ps_mfin *in = arg;

	if (in->nq == in->cap) {
		in->cap = in->cap ? in->cap * 2 : 64;
		in->q = xreallocarray(in->q, in->cap, sizeof(*in->q));
		if (in->r->nosums)
			in->raw = xreallocarray(in->raw, in->cap,
			    2 * sizeof(*in->raw));
	}
	if (in->r->nosums) {
		in->raw[2 * in->nq] = in->r->raw_off;
		in->raw[2 * in->nq + 1] = in->r->raw_len;
	}
	in->q[in->nq++] = *e;
	return 0;
}

struct ps_mfin *
ps_mfin_new(ps_mfin_read_fn rd, void *arg)
{
	struct ps_mfin *in = xcalloc(1, sizeof(*in));

	in->rd = rd;
	in->arg = arg;
	in->fd = -1;
	in->r = ps_mfr_new();
	in->chunk = xmalloc(MFIN_CHUNK);
	return in;
}

static ssize_t
fd_read(void *arg, void *buf, size_t n)
{
	struct ps_mfin *in = arg;
	ssize_t r;

	do
		r = read(in->fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

static ssize_t
fd_pread(void *arg, void *buf, size_t n)
{
	struct ps_mfin *in = arg;
	ssize_t r;

	do
		r = pread(in->fd, buf, n, in->off);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		in->off += r;
	return r;
}

struct ps_mfin *
ps_mfin_pread(int fd)
{
	struct ps_mfin *in = ps_mfin_new(fd_pread, NULL);

	in->arg = in;
	in->fd = fd;
	return in;
}

struct ps_mfin *
ps_mfin_pread_raw(int fd)
{
	struct ps_mfin *in = ps_mfin_pread(fd);

	in->r->nosums = 1;
	return in;
}

void
ps_mfin_sums_min(struct ps_mfin *in, uint64_t min)
{
	in->r->sums_min = min;
}

const unsigned char *
ps_mfin_raw(const struct ps_mfin *in, size_t *len)
{
	/*
	 * The bytes stay in the reader's buffer until it is fed again,
	 * which is only once every queued entry was handed out.
	 */
	*len = in->cur_len;
	return in->r->in.p + in->cur_raw;
}

struct ps_mfin *
ps_mfin_fd(int fd)
{
	struct ps_mfin *in = ps_mfin_new(fd_read, NULL);

	in->arg = in;
	in->fd = fd;
	return in;
}

static void
mfin_fail(struct ps_mfin *in, const char *why)
{
	in->failed = 1;
	snprintf(in->err, sizeof(in->err), "%s", why);
}

const struct ps_entry *
ps_mfin_next(struct ps_mfin *in)
{
	ssize_t n;

	entry_free(&in->cur);
	while (in->head == in->nq && !in->eof && !in->failed) {
		in->head = in->nq = 0;
		n = in->rd(in->arg, in->chunk, MFIN_CHUNK);
		if (n < 0) {
			mfin_fail(in, strerror(errno));
		} else if (n == 0) {
			in->eof = 1;
			if (ps_mfr_done(in->r) != 0)
				mfin_fail(in, ps_mfr_error(in->r));
		} else if (ps_mfr_feed(in->r, in->chunk, (size_t)n, mfin_take,
		    in) != 0) {
			mfin_fail(in, ps_mfr_error(in->r));
		}
	}
	if (in->head == in->nq || in->failed)
		return NULL;
	if (in->r->nosums) {
		in->cur_raw = in->raw[2 * in->head];
		in->cur_len = in->raw[2 * in->head + 1];
	}
	in->cur = in->q[in->head++];
	return &in->cur;
}

int
ps_mfin_failed(const struct ps_mfin *in)
{
	return in->failed;
}

const char *
ps_mfin_error(const struct ps_mfin *in)
{
	return in->err;
}

uint32_t
ps_mfin_flags(const struct ps_mfin *in)
{
	return ps_mfr_flags(in->r);
}

void
ps_mfin_free(struct ps_mfin *in)
{
	if (in == NULL)
		return;
	entry_free(&in->cur);
	while (in->head < in->nq)
		entry_free(&in->q[in->head++]);
	free(in->q);
	free(in->raw);
	free(in->chunk);
	ps_mfr_free(in->r);
	free(in);
}

void
ps_entry_copy(struct ps_entry *dst, const struct ps_entry *src)
{
	*dst = *src;
	dst->path = xstrndup(src->path, src->path_len);
	if (src->blocks != NULL) {
		dst->blocks = xreallocarray(NULL, src->nblocks, 8);
		memcpy(dst->blocks, src->blocks, src->nblocks * 8);
	}
	if (src->weak != NULL) {
		dst->weak = xreallocarray(NULL, src->nblocks, 4);
		memcpy(dst->weak, src->weak, src->nblocks * 4);
	}
}

void
ps_entry_free(struct ps_entry *e)
{
	entry_free(e);
}

/* ---- Version 1, read for old manifests and caches ---- */

#define V1_HEADER_LEN	24	/* magic, version, flags, entry count */
#define V1_ENTRY_MIN	(1 + 4 + 1 + 4 + 8 + 8 + 4)
#define V1_LOCAL_LEN	(8 + 8 + 8 + 4)

static int
decode_entry1(struct cur *c, uint64_t i, int local, struct ps_entry *e,
    char *err, size_t errlen)
{
	uint64_t k;

	if (take_u8(c, &e->type) == -1)
		return fail(err, errlen, "entry %llu: truncated",
		    (unsigned long long)i);
	if (e->type != PS_FT_FILE && e->type != PS_FT_DIR)
		return fail(err, errlen, "entry %llu: unknown type 0x%02x",
		    (unsigned long long)i, e->type);
	if (take_path(c, i, e, err, errlen) != 0 ||
	    take_u32(c, &e->mode) == -1 || take_u64(c, &e->size) == -1 ||
	    take_i64(c, &e->mtime_sec) == -1 ||
	    take_u32(c, &e->mtime_nsec) == -1)
		return fail(err, errlen, "entry %llu: truncated or bad path",
		    (unsigned long long)i);
	if ((e->mode & ~(uint32_t)07777) || e->mtime_nsec >= 1000000000 ||
	    (e->type == PS_FT_DIR && e->size != 0))
		return fail(err, errlen, "entry %llu: bad mode, time or size",
		    (unsigned long long)i);
	if (e->type == PS_FT_FILE) {
		if (take(c, e->hash, 16) == -1 ||
		    take_u8(c, &e->block_shift) == -1 ||
		    e->block_shift != ps_block_shift_for(e->size))
			return fail(err, errlen, "entry %llu: bad block shift",
			    (unsigned long long)i);
		e->nblocks = nblocks_for(e->size, e->block_shift);
		if (e->nblocks > c->left / 8)
			return fail(err, errlen, "entry %llu: truncated",
			    (unsigned long long)i);
		/* Sums kept for a file of any size: strong ones only. */
		if (e->nblocks > 0 && e->nblocks <= PS_SUMS_MAX_BLOCKS)
			e->blocks = xreallocarray(NULL, e->nblocks, 8);
		for (k = 0; k < e->nblocks; k++) {
			uint64_t v;

			(void)take_u64(c, &v);
			if (e->blocks != NULL)
				e->blocks[k] = v;
		}
	}
	if (local && (take_u64(c, &e->dev) == -1 ||
	    take_u64(c, &e->ino) == -1 || take_i64(c, &e->ctime_sec) == -1 ||
	    take_u32(c, &e->ctime_nsec) == -1 || e->ctime_nsec >= 1000000000))
		return fail(err, errlen, "entry %llu: bad local fields",
		    (unsigned long long)i);
	return 0;
}

/* Version 1: bytewise order; re-sorted in today's order when read. */
static int
decode_v1(const unsigned char *b, size_t len, struct ps_manifest *m,
    char *err, size_t errlen)
{
	XXH128_canonical_t c;
	struct cur cur;
	uint64_t count, i;
	size_t minent;

	if (len < V1_HEADER_LEN + 16)
		return fail(err, errlen, "truncated (%zu bytes)", len);
	XXH128_canonicalFromHash(&c, HASH128(b, len - 16));
	if (memcmp(c.digest, b + len - 16, 16) != 0)
		return fail(err, errlen, "checksum mismatch (corrupt or "
		    "truncated)");
	m->flags = get_u32le(b + 12);
	if (m->flags & ~(uint32_t)PS_MF_LOCAL)
		return fail(err, errlen, "unknown flags 0x%x", m->flags);
	count = get_u64le(b + 16);
	cur.p = b + V1_HEADER_LEN;
	cur.left = len - V1_HEADER_LEN - 16;
	minent = V1_ENTRY_MIN + ((m->flags & PS_MF_LOCAL) ? V1_LOCAL_LEN : 0);
	if (count > cur.left / minent)
		return fail(err, errlen, "entry count %llu too large for "
		    "%zu bytes", (unsigned long long)count, len);
	m->cap = count ? (size_t)count : 1;
	m->e = xcalloc(m->cap, sizeof(*m->e));
	for (i = 0; i < count; i++) {
		m->n++;	/* so that free() sees a partly filled entry */
		if (decode_entry1(&cur, i, m->flags & PS_MF_LOCAL, &m->e[i],
		    err, errlen) == -1)
			return -1;
		if (i > 0 && bytewise_cmp(m->e[i - 1].path,
		    m->e[i - 1].path_len, m->e[i].path, m->e[i].path_len) >= 0)
			return fail(err, errlen, "entry %llu: out of order or "
			    "duplicate", (unsigned long long)i);
	}
	if (cur.left != 0)
		return fail(err, errlen, "%zu bytes of trailing garbage",
		    cur.left);
	if (m->n > 1)
		qsort(m->e, m->n, sizeof(*m->e), entry_cmp);
	return check_ancestors(m, err, errlen);
}

/* ---- Whole manifests ---- */

static int
collect(struct ps_entry *e, void *arg)
{
	struct ps_manifest *m = arg;

	*manifest_add(m) = *e;
	return 0;
}

int
ps_manifest_decode(const void *p, size_t len, struct ps_manifest *out,
    char *err, size_t errlen)
{
	const unsigned char *b = p;
	struct ps_mfr *r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len < MF_MAGIC_LEN || memcmp(b, MF_MAGIC, MF_MAGIC_LEN) != 0)
		return fail(err, errlen, "bad magic");
	if (len >= MF_HEADER_LEN && get_u32le(b + 8) == 1) {
		if ((rc = decode_v1(b, len, out, err, errlen)) != 0)
			ps_manifest_free(out);
		return rc;
	}
	r = ps_mfr_new();
	rc = ps_mfr_feed(r, p, len, collect, out);
	if (rc == 0)
		rc = ps_mfr_done(r);
	if (rc != 0) {
		fail(err, errlen, "%s", ps_mfr_error(r));
		ps_manifest_free(out);
	} else {
		out->flags = ps_mfr_flags(r);
	}
	ps_mfr_free(r);
	return rc == 0 ? 0 : -1;
}

/* ---- Loading and saving ---- */

static int
read_all(int fd, struct buf *b)
{
	ssize_t n;

	for (;;) {
		buf_reserve(b, 65536);
		n = read(fd, b->p + b->len, b->cap - b->len);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b->len += (size_t)n;
	}
}

int
ps_manifest_load(const char *file, struct ps_manifest *out)
{
	struct buf b = { 0 };
	char err[160];
	const char *name;
	char *esc;
	int fd, isstdin, r = PS_OK, saved = 0;

	memset(out, 0, sizeof(*out));
	isstdin = strcmp(file, "-") == 0;
	if (isstdin) {
		fd = STDIN_FILENO;
		name = "standard input";
	} else {
		fd = open(file, O_RDONLY | O_CLOEXEC);
		name = file;
	}
	if (fd < 0 || read_all(fd, &b) == -1)
		saved = errno;
	esc = ps_escape(name, strlen(name));
	if (saved != 0) {
		ps_err("%s: %s", esc, strerror(saved));
		r = PS_EUSAGE;
	} else if (ps_manifest_decode(b.p, b.len, out, err, sizeof(err)) ==
	    -1) {
		ps_err("%s: not a valid manifest: %s", esc, err);
		r = PS_EUSAGE;
	}
	if (!isstdin && fd >= 0)
		close(fd);
	free(esc);
	buf_free(&b);
	return r;
}

/* Make a rename durable: best effort, a failure loses nothing yet. */
static void
sync_parent(const char *file)
{
	char *dir = ps_parent_of(file);
	int fd;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

static int
save_atomic(const char *file, const struct buf *b, const char *esc)
{
	char *tmp;
	mode_t um;
	int fd, saved;

	tmp = xasprintf("%s.tmpXXXXXX", file);
	fd = mkstemp(tmp);
	if (fd < 0) {
		ps_err("%s: cannot create temporary file: %s", esc,
		    strerror(errno));
		free(tmp);
		return PS_EUSAGE;
	}
	/* mkstemp makes 0600; give the file the mode open() would. */
	um = umask(0);
	umask(um);
	if (fchmod(fd, 0666 & ~um) == -1 ||
	    ps_write_all(fd, b->p, b->len) == -1 || fsync(fd) == -1)
		goto bad;
	if (close(fd) == -1) {
		fd = -1;
		goto bad;
	}
	fd = -1;
	if (rename(tmp, file) == -1)
		goto bad;
	free(tmp);
	sync_parent(file);
	return PS_OK;
bad:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	ps_err("%s: %s", esc, strerror(saved));
	return PS_EUSAGE;
}

int
ps_manifest_save(const char *file, const struct ps_manifest *m, int local)
{
	struct buf b = { 0 };
	struct stat st;
	char *esc;
	int fd, r = PS_OK;

	ps_manifest_encode(m, local, &b);
	if (file == NULL || strcmp(file, "-") == 0) {
		if (ps_write_all(STDOUT_FILENO, b.p, b.len) == -1) {
			ps_err("standard output: %s", strerror(errno));
			r = PS_EUSAGE;
		}
		buf_free(&b);
		return r;
	}
	esc = ps_escape(file, strlen(file));
	if (stat(file, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* /dev/null, a fifo: no temporary beside those. */
		fd = open(file, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || ps_write_all(fd, b.p, b.len) == -1) {
			ps_err("%s: %s", esc, strerror(errno));
			r = PS_EUSAGE;
		}
		if (fd >= 0 && close(fd) == -1 && r == PS_OK) {
			ps_err("%s: %s", esc, strerror(errno));
			r = PS_EUSAGE;
		}
	} else
		r = save_atomic(file, &b, esc);
	free(esc);
	buf_free(&b);
	return r;
}

/* ---- Building: the walk (walk.c) into an array ---- */

int
ps_manifest_build(const char *dir, const struct ps_build_opts *opts,
    struct ps_manifest *out)
{
	char *esc;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	out->flags = PS_MF_LOCAL;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		esc = ps_escape(dir, strlen(dir));
		ps_err("%s: %s", esc, strerror(errno));
		free(esc);
		return PS_EUSAGE;
	}
	rc = ps_manifest_buildat(fd, opts, out);
	close(fd);
	return rc;
}

int
ps_manifest_buildat(int dirfd, const struct ps_build_opts *opts,
    struct ps_manifest *out)
{
	const struct ps_entry *e;
	struct ps_walk *w;
	int rc;

	memset(out, 0, sizeof(*out));
	out->flags = PS_MF_LOCAL;
	if ((rc = ps_walk_open(dirfd, opts, &w)) != PS_OK)
		return rc;
	while ((e = ps_walk_next(w)) != NULL)
		ps_entry_copy(manifest_add(out), e);
	return ps_walk_close(w, out);
}

void
ps_manifest_remove(struct ps_manifest *m, const char *path, size_t len)
{
	const struct ps_entry *f = ps_manifest_find(m, path, len);
	size_t i;

	if (f == NULL)
		return;
	i = (size_t)(f - m->e);
	entry_free(&m->e[i]);
	memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(*m->e));
	m->n--;
}

void
ps_manifest_put(struct ps_manifest *m, struct ps_entry *e)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = ps_path_cmp(m->e[mid].path, m->e[mid].path_len,
		    e->path, e->path_len);

		if (c == 0) {
			entry_free(&m->e[mid]);
			m->e[mid] = *e;
			memset(e, 0, sizeof(*e));
			return;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->e = xreallocarray(m->e, m->cap, sizeof(*m->e));
	}
	memmove(&m->e[lo + 1], &m->e[lo], (m->n - lo) * sizeof(*m->e));
	m->e[lo] = *e;
	m->n++;
	memset(e, 0, sizeof(*e));
}
