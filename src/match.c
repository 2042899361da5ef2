/*
 * match.c — block sums, the matcher's index and the search (match.h).
 *
 * The weak sum is a polynomial mod 2^32. Over whole blocks it is computed
 * in 32 independent lanes (lane j takes bytes j, j+32, j+64, ... with
 * multiplier MUL^32) and the lanes are folded with MUL^31..MUL^0 at the
 * end; that is the same number as the byte-by-byte definition, only the
 * multiplications are independent, so SIMD runs them 8 or 4 at a time.
 * AVX2 is chosen at run time; SSE2 is the x86-64 baseline.
 *
 * The search rolls the weak sum over the target (8 windows a step with
 * AVX2). A blocked Bloom filter of at most 256 KiB (two bits of one
 * word) rejects almost every position with one load; the rare survivors
 * look the sum up in an open-addressing table whose groups list at most
 * PS_MATCH_CANDIDATES distinct blocks, then XXH3 the window once.
 * Identical blocks are indexed once (the lowest index): a file of zeros
 * is one entry, so runs of equal weak sums cost one probe each, never a
 * walk (rsync's hash_search CVE). Strong sums that fail are rationed
 * (FAIL_BURST + FAIL_RATE per block of target), so crafted collisions
 * cost at most a constant factor of hashing.
 */
#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<sys/random.h>)
#include <sys/random.h>
#define HAVE_GETRANDOM 1
#endif
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include "xxh.h"

#include "manifest.h"
#include "match.h"

#define MUL		PS_WEAK_MUL
#define ADD		PS_WEAK_ADD
#define LANES		32
#define MUL_LANES	UINT32_C(0x84df6981)	/* MUL^32 */

#define READ_CHUNK	(1u << 20)	/* target bytes read at once */
#define SUMS_CHUNK	(1u << 20)	/* basis bytes read at once */
#define SLICE_MIN	(UINT64_C(4) << 20)	/* least bytes per thread */
#define MAX_THREADS	64u
#define FAIL_BURST	64u	/* failed strong sums allowed at once */
#define FAIL_RATE	8u	/* ... and per block_len target bytes */
#define NONE		UINT32_MAX

/*
 * The prefilter: a blocked Bloom filter. The weak sum's top bits pick a
 * 32-bit word, the next two groups of 5 bits two bits in it; a window
 * passes when both are set. With BM_PER_BLOCK bits per indexed block
 * about one non-matching window in 2000 passes (one bit alone: 1 in
 * 128); at most 2^BM_BITS_MAX bits (256 KiB, kept in L2).
 */
#define BM_PER_BLOCK	128u
#define BM_BITS_MAX	21u

#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define MAX(a, b)	((a) > (b) ? (a) : (b))

/* MUL^(31-j): folds lane j of the lane sums into the weak sum. */
static const uint32_t lane_pow[LANES] = {
	0x30597d3d, 0xd43b6b09, 0x58c4e6a5, 0x02cb64d1,
	0xec8cd74d, 0xa1a078d9, 0x47a96935, 0x8f6fd921,
	0xcdc2865d, 0x730b47a9, 0x99a668c5, 0x585d9671,
	0x8c341a6d, 0x1a0b2779, 0x7459f555, 0x42d66cc1,
	0xc6c8237d, 0x9ae86849, 0x80f71ee5, 0xe61d2c11,
	0xa022318d, 0xb1745a19, 0x49d5f575, 0xaec5a461,
	0xa0b2d49d, 0x46d94ce9, 0x85038905, 0xfb04a5b1,
	0x6dc79cad, 0x286a90b9, 0x5bd1e995, 0x00000001,
};

int ps_match_simd = 1;
uint64_t ps_match_slice_min = SLICE_MIN;

/* ---- the weak sum ---- */

/* Fold the 32 lane sums, then take the bytes after the last whole group. */
static uint32_t
weak_finish(const uint32_t lane[LANES], const unsigned char *p, size_t n)
{
	uint32_t h = 0;
	size_t i;

	for (i = 0; i < LANES; i++)
		h += lane[i] * lane_pow[i];
	for (i = 0; i < n; i++)
		h = h * MUL + p[i] + ADD;
	return h;
}

#if defined(__x86_64__)
/* SSE2 has no 32-bit multiply: two 32x32->64 products, low halves kept. */
static inline __m128i
mul32_sse2(__m128i a, __m128i b)
{
	__m128i even = _mm_mul_epu32(a, b);
	__m128i odd = _mm_mul_epu32(_mm_srli_epi64(a, 32),
	    _mm_srli_epi64(b, 32));

	return _mm_unpacklo_epi32(_mm_shuffle_epi32(even, 0x08),
	    _mm_shuffle_epi32(odd, 0x08));
}

/* One SSE2 lane group: A = A * MUL^32 + (4 bytes widened + ADD). */
#define SSE2_STEP(a, w) \
	((a) = _mm_add_epi32(mul32_sse2((a), mm), _mm_add_epi32((w), kk)))

static uint32_t
weak_sse2(const unsigned char *p, size_t n)
{
	const __m128i zero = _mm_setzero_si128();
	const __m128i mm = _mm_set1_epi32((int)MUL_LANES);
	const __m128i kk = _mm_set1_epi32((int)ADD);
	__m128i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
	__m128i a4 = zero, a5 = zero, a6 = zero, a7 = zero, x, lo, hi;
	uint32_t lane[LANES];
	size_t i;

	/* Named accumulators: in an array they would live in memory. */
	for (i = 0; i + LANES <= n; i += LANES) {
		x = _mm_loadu_si128((const __m128i *)(p + i));
		lo = _mm_unpacklo_epi8(x, zero);
		hi = _mm_unpackhi_epi8(x, zero);
		SSE2_STEP(a0, _mm_unpacklo_epi16(lo, zero));
		SSE2_STEP(a1, _mm_unpackhi_epi16(lo, zero));
		SSE2_STEP(a2, _mm_unpacklo_epi16(hi, zero));
		SSE2_STEP(a3, _mm_unpackhi_epi16(hi, zero));
		x = _mm_loadu_si128((const __m128i *)(p + i + 16));
		lo = _mm_unpacklo_epi8(x, zero);
		hi = _mm_unpackhi_epi8(x, zero);
		SSE2_STEP(a4, _mm_unpacklo_epi16(lo, zero));
		SSE2_STEP(a5, _mm_unpackhi_epi16(lo, zero));
		SSE2_STEP(a6, _mm_unpacklo_epi16(hi, zero));
		SSE2_STEP(a7, _mm_unpackhi_epi16(hi, zero));
	}
	_mm_storeu_si128((__m128i *)(void *)(lane + 0), a0);
	_mm_storeu_si128((__m128i *)(void *)(lane + 4), a1);
	_mm_storeu_si128((__m128i *)(void *)(lane + 8), a2);
	_mm_storeu_si128((__m128i *)(void *)(lane + 12), a3);
	_mm_storeu_si128((__m128i *)(void *)(lane + 16), a4);
	_mm_storeu_si128((__m128i *)(void *)(lane + 20), a5);
	_mm_storeu_si128((__m128i *)(void *)(lane + 24), a6);
	_mm_storeu_si128((__m128i *)(void *)(lane + 28), a7);
	return weak_finish(lane, p + i, n - i);
}

/* One AVX2 lane group: bytes Q[0..7] into A. */
#define AVX2_STEP(a, q) \
	((a) = _mm256_add_epi32(_mm256_mullo_epi32((a), mm), \
	_mm256_add_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64( \
	(const __m128i *)(q))), kk)))

__attribute__((target("avx2"))) static uint32_t
weak_avx2(const unsigned char *p, size_t n)
{
	const __m256i mm = _mm256_set1_epi32((int)MUL_LANES);
	const __m256i kk = _mm256_set1_epi32((int)ADD);
	__m256i a0, a1, a2, a3;
	uint32_t lane[LANES];
	size_t i;

	a0 = a1 = a2 = a3 = _mm256_setzero_si256();
	for (i = 0; i + LANES <= n; i += LANES) {
		AVX2_STEP(a0, p + i);
		AVX2_STEP(a1, p + i + 8);
		AVX2_STEP(a2, p + i + 16);
		AVX2_STEP(a3, p + i + 24);
	}
	_mm256_storeu_si256((__m256i *)(void *)(lane + 0), a0);
	_mm256_storeu_si256((__m256i *)(void *)(lane + 8), a1);
	_mm256_storeu_si256((__m256i *)(void *)(lane + 16), a2);
	_mm256_storeu_si256((__m256i *)(void *)(lane + 24), a3);
	return weak_finish(lane, p + i, n - i);
}

static int
have_avx2(void)
{
	return ps_match_simd && __builtin_cpu_supports("avx2");
}
#else
static uint32_t
weak_lanes_c(const unsigned char *p, size_t n)
{
	uint32_t lane[LANES] = { 0 };
	size_t i;
	int j;

	for (i = 0; i + LANES <= n; i += LANES)
		for (j = 0; j < LANES; j++)
			lane[j] = lane[j] * MUL_LANES + p[i + j] + ADD;
	return weak_finish(lane, p + i, n - i);
}
#endif

static uint32_t
weak_run(const unsigned char *p, size_t n)
{
#if defined(__x86_64__)
	if (have_avx2())
		return weak_avx2(p, n);
	return weak_sse2(p, n);
#else
	return weak_lanes_c(p, n);
#endif
}

uint32_t
ps_weak(const void *p, size_t n)
{
	return weak_run(p, n);
}

/* ---- block sums ---- */

int
ps_blocksums_check(const struct ps_blocksums *s)
{
	uint64_t n;

	if (s->block_len < PS_MATCH_BLOCK_MIN ||
	    s->block_len > PS_MATCH_BLOCK_MAX)
		return PS_EUSAGE;
	if (s->base > UINT64_MAX - s->len)
		return PS_EUSAGE;
	n = s->len / s->block_len + (s->len % s->block_len != 0);
	if (n != s->n || n > PS_MATCH_MAX_BLOCKS)
		return PS_EUSAGE;
	if (n > 0 && (s->weak == NULL || s->strong == NULL))
		return PS_EUSAGE;
	return PS_OK;
}

/* Fill OUT's header and arrays for LEN bytes at BASE; PS_EUSAGE if bad. */
static int
sums_alloc(uint64_t len, uint64_t base, uint32_t block_len,
    struct ps_blocksums *out)
{
	memset(out, 0, sizeof(*out));
	if (block_len < PS_MATCH_BLOCK_MIN || block_len > PS_MATCH_BLOCK_MAX ||
	    base > UINT64_MAX - len ||
	    len / block_len + (len % block_len != 0) > PS_MATCH_MAX_BLOCKS)
		return PS_EUSAGE;
	out->base = base;
	out->len = len;
	out->block_len = block_len;
	out->n = (uint32_t)(len / block_len + (len % block_len != 0));
	if (out->n > 0) {
		out->weak = xreallocarray(NULL, out->n, sizeof(*out->weak));
		out->strong = xreallocarray(NULL, out->n,
		    sizeof(*out->strong));
	}
	return PS_OK;
}

/* Sums of the blocks FIRST.. held whole in P (LEN bytes). */
static void
sums_fill(struct ps_blocksums *s, uint32_t first, const unsigned char *p,
    size_t len)
{
	size_t off, l;
	uint32_t i = first;

	for (off = 0; off < len; off += l, i++) {
		l = MIN(len - off, s->block_len);
		s->weak[i] = weak_run(p + off, l);
		s->strong[i] = HASH64(p + off, l);
	}
}

int
ps_blocksums_mem(const void *p, uint64_t len, uint64_t base,
    uint32_t block_len, struct ps_blocksums *out)
{
	int r;

	if ((r = sums_alloc(len, base, block_len, out)) != PS_OK)
		return r;
	if (len > SIZE_MAX) {
		ps_blocksums_free(out);
		return PS_EUSAGE;
	}
	sums_fill(out, 0, p, (size_t)len);
	return PS_OK;
}

/* Read exactly N bytes at OFF; -1 with errno (ESTALE: file too short). */
static int
pread_all(int fd, unsigned char *p, size_t n, uint64_t off)
{
	ssize_t r;

	while (n > 0) {
		if (off > (uint64_t)INT64_MAX - n) {
			errno = EFBIG;
			return -1;
		}
		r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ESTALE;
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int
ps_blocksums_fd(int fd, uint64_t off, uint64_t len, uint32_t block_len,
    struct ps_blocksums *out)
{
	unsigned char *buf;
	uint64_t done;
	size_t chunk, n;
	uint32_t first;
	int r, e;

	if ((r = sums_alloc(len, off, block_len, out)) != PS_OK)
		return r;
	/* Whole blocks per read, about SUMS_CHUNK bytes. */
	chunk = MAX(SUMS_CHUNK / block_len, 1u) * (size_t)block_len;
	buf = xmalloc(MIN(chunk, (size_t)MIN(len, SIZE_MAX)) + 1);
	for (done = 0, first = 0; done < len; done += n) {
		n = (size_t)MIN(len - done, chunk);
		if (pread_all(fd, buf, n, off + done) == -1) {
			e = errno;
			free(buf);
			ps_blocksums_free(out);
			errno = e;
			return PS_EPARTIAL;
		}
		sums_fill(out, first, buf, n);
		first += (uint32_t)(n / block_len);
	}
	free(buf);
	return PS_OK;
}

void
ps_blocksums_free(struct ps_blocksums *s)
{
	if (s == NULL)
		return;
	free(s->weak);
	free(s->strong);
	memset(s, 0, sizeof(*s));
}

/* ---- op lists ---- */

void
ps_mops_add(struct ps_mops *o, enum ps_mop_kind kind, uint64_t target_off,
    uint64_t len, uint64_t basis_off)
{
	struct ps_mop *last = o->n > 0 ? &o->v[o->n - 1] : NULL;

	if (len == 0)
		return;
	if (kind == PS_MOP_COPY)
		o->copy_bytes += len;
	else {
		o->literal_bytes += len;
		basis_off = 0;
	}
	if (last != NULL && last->kind == kind &&
	    last->target_off + last->len == target_off &&
	    (kind == PS_MOP_LITERAL || last->basis_off + last->len ==
	    basis_off)) {
		last->len += len;
		return;
	}
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 16;
		o->v = xreallocarray(o->v, o->cap, sizeof(*o->v));
	}
	o->v[o->n].target_off = target_off;
	o->v[o->n].len = len;
	o->v[o->n].basis_off = basis_off;
	o->v[o->n].kind = (uint8_t)kind;
	o->n++;
}

void
ps_mops_free(struct ps_mops *o)
{
	if (o == NULL)
		return;
	free(o->v);
	memset(o, 0, sizeof(*o));
}

/* ---- the index ---- */

/*
 * A table slot: the weak sum and, packed, where its candidates start in
 * cand[] (block counts stay below 2^24) and how many there are (1..8;
 * 0 marks an empty slot).
 */
struct slot {
	uint32_t weak;
	uint32_t at;		/* start << 4 | count */
};

struct ps_matcher {
	struct ps_blocksums s;	/* header; the arrays are the caller's */
	uint32_t bl;		/* s.block_len */
	uint32_t nfull;		/* blocks of bl bytes */
	uint32_t last_len;	/* bytes of block n-1 (0 when n == 0) */
	uint32_t outt[256];	/* (c + ADD) * MUL^bl - ADD: rolls c out */
	uint32_t sv[4][16];	/* constants of scan_avx2 */
	uint32_t *bm;		/* the prefilter's words */
	unsigned bm_shift;	/* 32 - log2(prefilter bits) */
	struct slot *tab;
	uint32_t tmask;
	uint32_t seed;		/* random: crafted sums cannot cluster */
	uint32_t *cand;		/* block indices grouped by weak sum */
};

/* Murmur3's finaliser: every input bit moves every output bit. */
static inline uint32_t
mix32(uint32_t h)
{
	h ^= h >> 16;
	h *= UINT32_C(0x85ebca6b);
	h ^= h >> 13;
	h *= UINT32_C(0xc2b2ae35);
	h ^= h >> 16;
	return h;
}

/* The slot holding WEAK, or the empty slot where it would go. */
static inline uint32_t
slot_of(const struct ps_matcher *m, uint32_t weak)
{
	uint32_t i = mix32(weak ^ m->seed) & m->tmask;

	while ((m->tab[i].at & 15) != 0 && m->tab[i].weak != weak)
		i = (i + 1) & m->tmask;
	return i;
}

/* Is WEAK the weak sum of an indexed block? (Behind the bitmap test.) */
static inline int
indexed(const struct ps_matcher *m, uint32_t weak)
{
	return (m->tab[slot_of(m, weak)].at & 15) != 0;
}

/* Does WEAK pass the prefilter? */
static inline uint32_t
bm_pass(const uint32_t *bm, unsigned sh, uint32_t weak)
{
	uint32_t w = bm[weak >> (sh + 5)];

	return (w >> ((weak >> sh) & 31)) & (w >> ((weak >> (sh - 5)) & 31)) &
	    1;
}

/* Does WEAK pass the prefilter and the table? */
static inline int
hit(const struct ps_matcher *m, uint32_t weak)
{
	return bm_pass(m->bm, m->bm_shift, weak) && indexed(m, weak);
}

static uint32_t
random_seed(const void *salt)
{
	uint32_t v = 0;
	struct timespec ts;

#ifdef HAVE_GETRANDOM
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
#endif
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return mix32((uint32_t)ts.tv_nsec ^ (uint32_t)(uintptr_t)salt ^
	    (uint32_t)getpid());
}

/*
 * Group the full blocks by weak sum (counting pass, then placing in
 * index order), then keep in each group the first block of each distinct
 * strong sum, at most PS_MATCH_CANDIDATES of them. O(n) time and memory.
 */
static void
index_build(struct ps_matcher *m)
{
	const struct ps_blocksums *s = &m->s;
	uint32_t *cnt, *start, i, k, j, kept, size = 16, b, sl;
	uint64_t total;

	while (size < 2 * (uint64_t)m->nfull)
		size <<= 1;
	m->tmask = size - 1;
	m->tab = xcalloc(size, sizeof(*m->tab));
	m->cand = xreallocarray(NULL, MAX(m->nfull, 1u), sizeof(*m->cand));
	cnt = xcalloc(size, sizeof(*cnt));
	start = xreallocarray(NULL, size, sizeof(*start));

	/* Count; a slot is marked used with a provisional count of 1. */
	for (i = 0; i < m->nfull; i++) {
		sl = slot_of(m, s->weak[i]);
		m->tab[sl].weak = s->weak[i];
		m->tab[sl].at = 1;
		cnt[sl]++;
	}
	for (k = 0, total = 0; k < size; k++) {
		start[k] = (uint32_t)total;
		total += cnt[k];
	}
	for (i = 0; i < m->nfull; i++) {
		sl = slot_of(m, s->weak[i]);
		m->cand[start[sl]++] = i;
	}
	for (k = 0; k < size; k++) {
		if (cnt[k] == 0)
			continue;
		b = start[k] - cnt[k];
		for (j = 0, kept = 0; j < cnt[k] && kept <
		    PS_MATCH_CANDIDATES; j++) {
			i = 0;
			while (i < kept && s->strong[m->cand[b + i]] !=
			    s->strong[m->cand[b + j]])
				i++;
			if (i == kept)
				m->cand[b + kept++] = m->cand[b + j];
		}
		m->tab[k].at = b << 4 | kept;
	}
	free(cnt);
	free(start);
}

static void
bitmap_build(struct ps_matcher *m)
{
	unsigned bits = 10;
	uint32_t i, x;

	while (bits < BM_BITS_MAX &&
	    (UINT64_C(1) << bits) < BM_PER_BLOCK * (uint64_t)m->nfull)
		bits++;
	m->bm_shift = 32 - bits;
	m->bm = xcalloc((size_t)1 << (bits - 5), sizeof(*m->bm));
	for (i = 0; i < m->nfull; i++) {
		x = m->s.weak[i];
		m->bm[x >> (m->bm_shift + 5)] |=
		    UINT32_C(1) << ((x >> m->bm_shift) & 31) |
		    UINT32_C(1) << ((x >> (m->bm_shift - 5)) & 31);
	}
}

/* The inverse of odd A modulo 2^32 (Newton: each step doubles the bits). */
static uint32_t
inverse32(uint32_t a)
{
	uint32_t x = a;
	int i;

	for (i = 0; i < 5; i++)
		x *= 2 - a * x;
	return x;
}

/*
 * scan_avx2 finds the weak sums of 16 windows at once. With d[t] the
 * change at step t (incoming byte, outgoing byte times MUL^bl, and the
 * constant part of ADD), the sums after steps 0..j are
 *	H[j] = MUL^j * (g + sum over t <= j of d[t] * MUL^-t),  g = h * MUL
 * so one prefix sum of plain additions replaces a chain of multiplies,
 * and only g is carried from one step to the next. sv[0] and sv[1] scale
 * the incoming and outgoing bytes by MUL^-t (and MUL^bl), sv[2] is the
 * constant part, sv[3] holds MUL^j.
 */
static void
scan_consts(struct ps_matcher *m, uint32_t pw)
{
	uint32_t inv = inverse32(MUL), down = 1, up = 1;
	int j;

	for (j = 0; j < 16; j++) {
		m->sv[0][j] = down;
		m->sv[1][j] = down * pw;
		m->sv[2][j] = down * (ADD - ADD * pw);
		m->sv[3][j] = up;
		down *= inv;
		up *= MUL;
	}
}

int
ps_matcher_new(const struct ps_blocksums *s, struct ps_matcher **out)
{
	struct ps_matcher *m;
	uint32_t pw = 1, sq, i;
	unsigned c;

	*out = NULL;
	if (ps_blocksums_check(s) != PS_OK)
		return PS_EUSAGE;
	m = xcalloc(1, sizeof(*m));
	m->s = *s;
	m->bl = s->block_len;
	m->nfull = (uint32_t)(s->len / s->block_len);
	m->last_len = s->n == 0 ? 0 :
	    (uint32_t)(s->len - (uint64_t)(s->n - 1) * s->block_len);
	for (i = m->bl, sq = MUL; i > 0; i >>= 1, sq *= sq)
		if (i & 1)
			pw *= sq;
	for (c = 0; c < 256; c++)
		m->outt[c] = (c + ADD) * pw - ADD;
	scan_consts(m, pw);
	m->seed = random_seed(m);
	index_build(m);
	bitmap_build(m);
	*out = m;
	return PS_OK;
}

void
ps_matcher_free(struct ps_matcher *m)
{
	if (m == NULL)
		return;
	free(m->bm);
	free(m->tab);
	free(m->cand);
	free(m);
}

/* Bytes in basis block I. */
static inline uint32_t
blen(const struct ps_matcher *m, uint32_t i)
{
	return i + 1 < m->s.n ? m->bl : m->last_len;
}

/* ---- the search ---- */

/*
 * Test windows 0..NPOS-1 starting at P (NPOS >= 1; the bytes of window
 * NPOS-1 must be readable), rolling *H (the weak sum of window 0) from
 * one to the next. Returns the first window whose weak sum is indexed,
 * with *H its sum, or NPOS with *H the sum of window NPOS-1. This loop
 * is where non-matching data spends its time: one bitmap bit rejects
 * almost every window; the few that pass it are looked up in the table
 * here, without leaving the loop.
 */
static size_t
scan_c(const struct ps_matcher *m, const unsigned char *p, size_t npos,
    uint32_t *hp)
{
	const uint32_t *bm = m->bm;
	const uint32_t *outt = m->outt;
	const unsigned sh = m->bm_shift;
	const size_t bl = m->bl;
	uint32_t h = *hp;
	size_t i;

	for (i = 0;; i++) {
		if (bm_pass(bm, sh, h) && indexed(m, h))
			break;
		if (i + 1 == npos) {
			i = npos;
			break;
		}
		h = h * MUL + p[i + bl] - outt[p[i]];
	}
	*hp = h;
	return i;
}

#if defined(__x86_64__)
/*
 * Prefix sums of d[t] * MUL^-t for 8 steps starting at P (outgoing
 * bytes) and P + BL (incoming), with row R (0 or 8) of the constants.
 */
__attribute__((target("avx2"))) static inline __m256i
scan_prefix(const struct ps_matcher *m, const unsigned char *p, size_t bl,
    int r)
{
	__m256i in = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)
	    (p + bl)));
	__m256i out = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)
	    p));
	__m256i u;

	u = _mm256_sub_epi32(_mm256_add_epi32(_mm256_loadu_si256(
	    (const __m256i *)(m->sv[2] + r)), _mm256_mullo_epi32(in,
	    _mm256_loadu_si256((const __m256i *)(m->sv[0] + r)))),
	    _mm256_mullo_epi32(out, _mm256_loadu_si256(
	    (const __m256i *)(m->sv[1] + r))));
	u = _mm256_add_epi32(u, _mm256_slli_si256(u, 4));
	u = _mm256_add_epi32(u, _mm256_slli_si256(u, 8));
	return _mm256_add_epi32(u, _mm256_shuffle_epi32(
	    _mm256_permute2x128_si256(u, u, 0x08), 0xff));
}

/* Lanes of weak sums HV that pass the prefilter: 1, else 0. */
__attribute__((target("avx2"))) static inline __m256i
scan_filter(const struct ps_matcher *m, __m256i hv)
{
	const __m256i low5 = _mm256_set1_epi32(31);
	const __m128i sh = _mm_cvtsi32_si128((int)m->bm_shift);
	__m256i w;

	w = _mm256_i32gather_epi32((const int *)m->bm, _mm256_srl_epi32(hv,
	    _mm_cvtsi32_si128((int)m->bm_shift + 5)), 4);
	return _mm256_and_si256(_mm256_and_si256(_mm256_srlv_epi32(w,
	    _mm256_and_si256(_mm256_srl_epi32(hv, sh), low5)),
	    _mm256_srlv_epi32(w, _mm256_and_si256(_mm256_srl_epi32(hv,
	    _mm_cvtsi32_si128((int)m->bm_shift - 5)), low5))),
	    _mm256_set1_epi32(1));
}

/*
 * scan_c for CPUs with AVX2: 16 windows per step (see scan_consts); the
 * prefilter words of 8 windows come with one gather, which is where
 * this loop spends most of its time.
 */
__attribute__((target("avx2"))) static size_t
scan_avx2(const struct ps_matcher *m, const unsigned char *p, size_t npos,
    uint32_t *hp)
{
	const __m256i up0 = _mm256_loadu_si256((const __m256i *)m->sv[3]);
	const __m256i up8 = _mm256_loadu_si256((const __m256i *)
	    (m->sv[3] + 8));
	const __m256i mul16 = _mm256_set1_epi32((int)(m->sv[3][15] * MUL));
	const __m256i last = _mm256_set1_epi32(7);
	const size_t bl = m->bl;
	__m256i g, u0, u8, x0, x8, h0, h8, t;
	uint32_t h = *hp, bits[16], sums[16];
	size_t i = 0;
	int j;

	if (hit(m, h))
		return 0;
	g = _mm256_set1_epi32((int)(h * MUL));
	/* Window i is tested; compute and test windows i+1..i+16. */
	for (; i + 16 < npos; i += 16) {
		u0 = scan_prefix(m, p + i, bl, 0);
		u8 = _mm256_add_epi32(scan_prefix(m, p + i + 8, bl, 8),
		    _mm256_permutevar8x32_epi32(u0, last));
		x0 = _mm256_add_epi32(g, u0);
		x8 = _mm256_add_epi32(g, u8);
		h0 = _mm256_mullo_epi32(x0, up0);
		h8 = _mm256_mullo_epi32(x8, up8);
		t = _mm256_or_si256(scan_filter(m, h0), scan_filter(m, h8));
		if (!_mm256_testz_si256(t, t)) {
			_mm256_storeu_si256((__m256i *)(void *)bits,
			    scan_filter(m, h0));
			_mm256_storeu_si256((__m256i *)(void *)(bits + 8),
			    scan_filter(m, h8));
			_mm256_storeu_si256((__m256i *)(void *)sums, h0);
			_mm256_storeu_si256((__m256i *)(void *)(sums + 8), h8);
			for (j = 0; j < 16; j++) {
				if (bits[j] && indexed(m, sums[j])) {
					*hp = sums[j];
					return i + 1 + (size_t)j;
				}
			}
		}
		g = _mm256_mullo_epi32(_mm256_permutevar8x32_epi32(x8, last),
		    mul16);
	}
	h = (uint32_t)_mm256_cvtsi256_si32(g) * m->sv[0][1];
	for (;; i++) {
		if (i + 1 == npos) {
			*hp = h;
			return npos;
		}
		h = h * MUL + p[i + bl] - m->outt[p[i]];
		if (hit(m, h)) {
			*hp = h;
			return i + 1;
		}
	}
}
#endif

static size_t
scan(const struct ps_matcher *m, const unsigned char *p, size_t npos,
    uint32_t *hp)
{
#if defined(__x86_64__)
	if (have_avx2())
		return scan_avx2(m, p, npos, hp);
#endif
	return scan_c(m, p, npos, hp);
}

/* Target bytes of one slice: a window of the target held in memory. */
struct tbuf {
	unsigned char *p;
	size_t cap;
	uint64_t off;		/* target offset of p[0] */
	size_t len;		/* valid bytes */
};

/* The work on one slice [s0, s1) of the target range. */
struct mctx {
	const struct ps_matcher *m;
	ps_match_read_fn rd;
	void *arg;
	const struct ps_blocksums *hint;	/* NULL when not usable */
	uint64_t s0, s1;
	struct tbuf b;
	struct ps_mops out;
	uint64_t lit;		/* start of the literal not yet emitted */
	uint64_t fails;		/* strong sums that matched nothing */
	uint32_t hk;		/* hint blocks before hk do not agree */
	int err;		/* set with errno saved in err_no */
	int err_no;
};

static void
fail(struct mctx *c, int e)
{
	if (!c->err) {
		c->err = 1;
		c->err_no = e;
	}
}

/*
 * Make the buffer hold target bytes [AT, AT+N) and return them; reads
 * ahead as far as the buffer and LIMIT (the end of what the search may
 * use, at most s1) allow. NULL on error (c->err set).
 */
static const unsigned char *
need(struct mctx *c, uint64_t at, size_t n, uint64_t limit)
{
	struct tbuf *b = &c->b;
	size_t want, keep = 0;
	ssize_t r;

	if (at >= b->off && at - b->off <= b->len &&
	    n <= b->len - (at - b->off))
		return b->p + (at - b->off);
	if (c->err)
		return NULL;
	if (at >= b->off && at - b->off < b->len) {
		keep = b->len - (size_t)(at - b->off);
		memmove(b->p, b->p + (at - b->off), keep);
	}
	b->off = at;
	b->len = keep;
	want = (size_t)MIN(b->cap, limit - at);
	while (b->len < want) {
		r = c->rd(c->arg, b->p + b->len, want - b->len, at + b->len);
		if (r < 0) {
			fail(c, errno);
			return NULL;
		}
		if (r == 0 || (size_t)r > want - b->len) {
			/* The target ends before the range does. */
			fail(c, r == 0 ? ESTALE : EIO);
			return NULL;
		}
		b->len += (size_t)r;
		c->out.stat_read += (uint64_t)r;
	}
	return b->p;
}

static void
emit_copy(struct mctx *c, uint64_t at, uint64_t len, uint64_t basis_off)
{
	ps_mops_add(&c->out, PS_MOP_LITERAL, c->lit, at - c->lit, 0);
	ps_mops_add(&c->out, PS_MOP_COPY, at, len, basis_off);
	c->lit = at + len;
}

static uint64_t
basis_off(const struct ps_matcher *m, uint32_t i)
{
	return m->s.base + (uint64_t)i * m->bl;
}

/* Bytes of hint block K. */
static uint64_t
hint_len(const struct ps_blocksums *h, uint32_t k)
{
	return k + 1 < h->n ? h->block_len :
	    h->len - (uint64_t)k * h->block_len;
}

/*
 * Where the next hint block at or after POS starts that lies in the
 * slice and equals the basis block of the same index, or s1. POS only
 * grows within a slice, so the blocks are examined once in all.
 */
static uint64_t
next_agree(struct mctx *c, uint64_t pos)
{
	const struct ps_blocksums *h = c->hint;
	const struct ps_matcher *m = c->m;
	uint64_t k, at, l;

	if (h == NULL)
		return c->s1;
	k = pos <= h->base ? 0 : (pos - h->base + h->block_len - 1) /
	    h->block_len;
	k = MAX(k, c->hk);
	for (; k < h->n && k < m->s.n; k++) {
		at = h->base + k * h->block_len;
		l = hint_len(h, (uint32_t)k);
		if (at >= c->s1 || l > c->s1 - at)
			break;
		if (h->strong[k] == m->s.strong[k] &&
		    l == blen(m, (uint32_t)k)) {
			c->hk = (uint32_t)k;
			return at;
		}
	}
	c->hk = (uint32_t)MIN(k, UINT32_MAX);
	return c->s1;
}

/* The strong sum of target [POS, POS+LEN) if the hint has it. */
static int
hint_sum(const struct mctx *c, uint64_t pos, uint64_t len, uint64_t *sum)
{
	const struct ps_blocksums *h = c->hint;
	uint64_t k;

	if (h == NULL || pos < h->base || (pos - h->base) % h->block_len)
		return 0;
	k = (pos - h->base) / h->block_len;
	if (k >= h->n || hint_len(h, (uint32_t)k) != len)
		return 0;
	*sum = h->strong[k];
	return 1;
}

/* XXH3 of target [POS, POS+LEN), from the hint or read. -1 on error. */
static int
window_sum(struct mctx *c, uint64_t pos, uint32_t len, uint64_t limit,
    uint64_t *sum)
{
	const unsigned char *p;

	if (hint_sum(c, pos, len, sum))
		return 0;
	if ((p = need(c, pos, len, limit)) == NULL)
		return -1;
	*sum = HASH64(p, len);
	c->out.stat_strong++;
	return 0;
}

/* Does basis block J follow at POS (the block before it matched)? */
static int
extend(struct mctx *c, uint64_t pos, uint32_t j, uint64_t limit)
{
	const struct ps_matcher *m = c->m;
	uint64_t sum;
	uint32_t l;

	if (j >= m->s.n)
		return 0;
	l = blen(m, j);
	if (l > limit - pos || window_sum(c, pos, l, limit, &sum) == -1)
		return 0;
	if (sum != m->s.strong[j])
		return 0;
	emit_copy(c, pos, l, basis_off(m, j));
	return 1;
}

/*
 * The basis' short last block can only be the bytes ending exactly at
 * the slice end (the common case: the file's tail). Check it there.
 */
static void
tail_check(struct mctx *c, uint64_t pos)
{
	const struct ps_matcher *m = c->m;
	uint64_t sum, at;
	uint32_t l = m->last_len;

	if (m->s.n == 0 || l == m->bl || c->s1 - pos < l)
		return;
	at = c->s1 - l;
	if (window_sum(c, at, l, c->s1, &sum) == -1)
		return;
	if (sum == m->s.strong[m->s.n - 1])
		emit_copy(c, at, l, basis_off(m, m->s.n - 1));
}

/*
 * The window at POS passed the bitmap with weak sum H: is it a block?
 * Failed strong sums are rationed so that crafted weak collisions cost
 * at most FAIL_RATE block hashes per block of target.
 */
static int
probe(struct mctx *c, uint64_t pos, uint32_t h, uint32_t *blk)
{
	const struct ps_matcher *m = c->m;
	const struct slot *t;
	uint64_t sum;
	uint32_t i, at, n;

	t = &m->tab[slot_of(m, h)];
	if ((t->at & 15) == 0)
		return 0;
	c->out.stat_weak_hits++;
	if (c->fails >= FAIL_BURST + FAIL_RATE * ((pos - c->s0) / m->bl))
		return 0;
	sum = HASH64(c->b.p + (pos - c->b.off), m->bl);
	c->out.stat_strong++;
	at = t->at >> 4;
	n = t->at & 15;
	for (i = 0; i < n; i++) {
		if (m->s.strong[m->cand[at + i]] == sum) {
			*blk = m->cand[at + i];
			return 1;
		}
	}
	c->fails++;
	return 0;
}

/*
 * Roll over the windows starting in [*POSP, LIMIT - bl]. Returns 1 with
 * *POSP at a matching window and *BLK its basis block, or 0 with *POSP
 * at LIMIT - bl + 1 (or on error).
 */
static int
roll(struct mctx *c, uint64_t *posp, uint64_t limit, uint32_t *blk)
{
	const struct ps_matcher *m = c->m;
	uint64_t pos = *posp, last = limit - m->bl, avail;
	const unsigned char *p;
	uint32_t h;
	size_t npos, i;

	if ((p = need(c, pos, m->bl, limit)) == NULL)
		return 0;
	h = weak_run(p, m->bl);
	for (;;) {
		avail = MIN(c->b.off + c->b.len - m->bl, last);
		npos = (size_t)(avail - pos + 1);
		i = scan(m, c->b.p + (pos - c->b.off), npos, &h);
		if (i < npos) {
			pos += i;
			if (probe(c, pos, h, blk)) {
				*posp = pos;
				return 1;
			}
		} else
			pos = avail;
		if (pos == last)
			break;
		if ((p = need(c, pos, (size_t)m->bl + 1, limit)) == NULL)
			return 0;
		h = h * MUL + p[m->bl] - m->outt[p[0]];
		pos++;
	}
	*posp = last + 1;
	return 0;
}

static void
slice_run(struct mctx *c)
{
	const struct ps_matcher *m = c->m;
	uint64_t pos = c->s0, limit, nexta;
	uint32_t expect = NONE, blk, k;

	c->lit = pos;
	nexta = next_agree(c, pos);
	while (pos < c->s1 && !c->err) {
		if (pos == nexta) {
			/* Unchanged in place: copy without reading. */
			k = (uint32_t)((pos - c->hint->base) / m->bl);
			emit_copy(c, pos, blen(m, k), basis_off(m, k));
			pos += blen(m, k);
			expect = k + 1;
			nexta = next_agree(c, pos);
			continue;
		}
		limit = nexta;
		if (expect != NONE && extend(c, pos, expect, limit)) {
			pos += blen(m, expect);
			expect++;
			continue;
		}
		expect = NONE;
		if (m->nfull > 0 && limit - pos >= m->bl) {
			if (roll(c, &pos, limit, &blk)) {
				emit_copy(c, pos, m->bl, basis_off(m, blk));
				pos += m->bl;
				expect = blk + 1;
				continue;
			}
		}
		if (limit == c->s1 && !c->err)
			tail_check(c, pos);
		pos = limit;
	}
	if (!c->err)
		ps_mops_add(&c->out, PS_MOP_LITERAL, c->lit, c->s1 - c->lit,
		    0);
}

static void *
slice_thread(void *arg)
{
	struct mctx *c = arg;

	slice_run(c);
	return NULL;
}

/*
 * Cut [OFF, OFF+LEN) into at most THREADS slices of at least
 * ps_match_slice_min bytes and 4 blocks, on the block grid of ORIGIN.
 * Returns the count; BOUNDS gets count + 1 offsets.
 */
static unsigned
slices(uint64_t off, uint64_t len, uint64_t origin, uint32_t bl,
    unsigned threads, uint64_t *bounds)
{
	uint64_t per, at, min = MAX(ps_match_slice_min, 4 * (uint64_t)bl);
	unsigned t, n = 1;

	threads = MIN(MAX(threads, 1u), MAX_THREADS);
	if (len / min < threads)
		threads = (unsigned)(len / min);
	bounds[0] = off;
	per = threads > 1 ? len / threads : len;
	for (t = 1; t < threads; t++) {
		at = off + per * t;
		if (at > origin)
			at = origin + (at - origin) / bl * bl;
		if (at > bounds[n - 1] && at < off + len)
			bounds[n++] = at;
	}
	bounds[n] = off + len;
	return n;
}

static int
hint_usable(const struct ps_matcher *m, const struct ps_blocksums *hint)
{
	return hint != NULL && hint->block_len == m->bl &&
	    ps_blocksums_check(hint) == PS_OK;
}

int
ps_match(const struct ps_matcher *m, ps_match_read_fn rd, void *arg,
    uint64_t off, uint64_t len, const struct ps_blocksums *hint,
    unsigned threads, struct ps_mops *out)
{
	uint64_t bounds[MAX_THREADS + 1];
	struct mctx *c;
	pthread_t *tid;
	unsigned n, t;
	char *started;
	size_t i;
	int err_no = 0, failed = 0;

	if (len == 0)
		return PS_OK;
	if (off > (uint64_t)INT64_MAX - len) {
		errno = EFBIG;
		return PS_EPARTIAL;
	}
	if (m->s.n == 0) {
		/* Nothing to find: no need to read the target. */
		ps_mops_add(out, PS_MOP_LITERAL, off, len, 0);
		return PS_OK;
	}
	if (!hint_usable(m, hint))
		hint = NULL;
	n = slices(off, len, hint ? hint->base : off, m->bl, threads, bounds);
	c = xcalloc(n, sizeof(*c));
	tid = xcalloc(n, sizeof(*tid));
	started = xcalloc(n, 1);
	for (t = 0; t < n; t++) {
		c[t].m = m;
		c[t].rd = rd;
		c[t].arg = arg;
		c[t].hint = hint;
		c[t].s0 = bounds[t];
		c[t].s1 = bounds[t + 1];
		c[t].b.cap = (size_t)MIN(READ_CHUNK + (uint64_t)m->bl,
		    c[t].s1 - c[t].s0);
		c[t].b.p = xmalloc(c[t].b.cap);
		c[t].b.off = c[t].s0;
	}
	for (t = 1; t < n; t++)
		started[t] = pthread_create(&tid[t], NULL, slice_thread,
		    &c[t]) == 0;
	slice_run(&c[0]);
	for (t = 1; t < n; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
		else
			slice_run(&c[t]);
	}
	for (t = 0; t < n && !failed; t++) {
		if (c[t].err) {
			failed = 1;
			err_no = c[t].err_no;
		}
	}
	for (t = 0; t < n; t++) {
		for (i = 0; !failed && i < c[t].out.n; i++)
			ps_mops_add(out, c[t].out.v[i].kind,
			    c[t].out.v[i].target_off, c[t].out.v[i].len,
			    c[t].out.v[i].basis_off);
		out->stat_strong += c[t].out.stat_strong;
		out->stat_weak_hits += c[t].out.stat_weak_hits;
		out->stat_read += c[t].out.stat_read;
		ps_mops_free(&c[t].out);
		free(c[t].b.p);
	}
	free(c);
	free(tid);
	free(started);
	if (failed) {
		errno = err_no;
		return PS_EPARTIAL;
	}
	return PS_OK;
}

/* ---- refinement ---- */

size_t
ps_match_gaps(const struct ps_mops *ops, uint64_t basis_size,
    uint64_t min_len, uint32_t block_len, struct ps_gap **gaps)
{
	const struct ps_mop *o, *prev, *next;
	uint64_t a, b;
	size_t i, n = 0, cap = 0;

	*gaps = NULL;
	for (i = 0; i < ops->n; i++) {
		o = &ops->v[i];
		if (o->kind != PS_MOP_LITERAL || o->len < min_len)
			continue;
		prev = i > 0 ? &ops->v[i - 1] : NULL;
		next = i + 1 < ops->n ? &ops->v[i + 1] : NULL;
		if (prev != NULL && prev->kind != PS_MOP_COPY)
			continue;
		if (next != NULL && next->kind != PS_MOP_COPY)
			continue;
		if (prev == NULL && o->target_off != 0)
			continue;
		a = prev ? prev->basis_off + prev->len : 0;
		b = next ? next->basis_off : basis_size;
		if (b <= a || b > basis_size)
			continue;
		if (o->len <= (UINT64_MAX - block_len) / 4 &&
		    b - a > 4 * o->len + block_len)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			*gaps = xreallocarray(*gaps, cap, sizeof(**gaps));
		}
		(*gaps)[n].op = i;
		(*gaps)[n].basis_off = a;
		(*gaps)[n].basis_len = b - a;
		n++;
	}
	return n;
}

/* Does SUB cover exactly the target range of O, in order? */
static int
sub_fits(const struct ps_mop *o, const struct ps_mops *sub)
{
	uint64_t at = o->target_off, end = o->target_off + o->len;
	size_t i;

	for (i = 0; i < sub->n; i++) {
		if (sub->v[i].target_off != at || sub->v[i].len == 0 ||
		    sub->v[i].len > end - at ||
		    (sub->v[i].kind != PS_MOP_COPY &&
		    sub->v[i].kind != PS_MOP_LITERAL))
			return 0;
		at += sub->v[i].len;
	}
	return at == end;
}

int
ps_mops_splice_many(struct ps_mops *ops, const size_t *idx,
    const struct ps_mops *subs, size_t k)
{
	struct ps_mops t = { 0 };
	const struct ps_mop *o;
	size_t i, j, s;

	for (j = 0; j < k; j++)
		if (idx[j] >= ops->n || (j > 0 && idx[j] <= idx[j - 1]) ||
		    !sub_fits(&ops->v[idx[j]], &subs[j]))
			return PS_EUSAGE;
	for (i = 0, j = 0; i < ops->n; i++) {
		if (j < k && idx[j] == i) {
			for (s = 0; s < subs[j].n; s++) {
				o = &subs[j].v[s];
				ps_mops_add(&t, o->kind, o->target_off, o->len,
				    o->basis_off);
			}
			ops->stat_strong += subs[j].stat_strong;
			ops->stat_weak_hits += subs[j].stat_weak_hits;
			ops->stat_read += subs[j].stat_read;
			j++;
			continue;
		}
		o = &ops->v[i];
		ps_mops_add(&t, o->kind, o->target_off, o->len, o->basis_off);
	}
	free(ops->v);
	ops->v = t.v;
	ops->n = t.n;
	ops->cap = t.cap;
	ops->copy_bytes = t.copy_bytes;
	ops->literal_bytes = t.literal_bytes;
	return PS_OK;
}

int
ps_mops_splice(struct ps_mops *ops, size_t i, const struct ps_mops *sub)
{
	return ps_mops_splice_many(ops, &i, sub, 1);
}

int
ps_mops_apply(const struct ps_mops *ops, const void *basis,
    uint64_t basis_len, const void *target, uint64_t off, uint64_t len,
    void *out)
{
	const unsigned char *bp = basis, *tp = target;
	unsigned char *op = out;
	const struct ps_mop *o;
	uint64_t at = off;
	size_t i;

	for (i = 0; i < ops->n; i++) {
		o = &ops->v[i];
		if (o->target_off != at || o->len == 0 ||
		    o->len > off + len - at)
			return PS_EUSAGE;
		if (o->kind == PS_MOP_COPY) {
			if (o->basis_off > basis_len ||
			    o->len > basis_len - o->basis_off)
				return PS_EUSAGE;
			memcpy(op + (at - off), bp + o->basis_off, o->len);
		} else if (o->kind == PS_MOP_LITERAL)
			memcpy(op + (at - off), tp + at, o->len);
		else
			return PS_EUSAGE;
		at += o->len;
	}
	return at == off + len ? PS_OK : PS_EUSAGE;
}

ssize_t
ps_match_read_fd(void *arg, void *buf, size_t n, uint64_t off)
{
	ssize_t r;

	do
		r = pread(*(int *)arg, buf, n, (off_t)off);
	while (r < 0 && errno == EINTR);
	return r;
}

void
ps_entry_blocksums(const struct ps_entry *e, struct ps_blocksums *b)
{
	memset(b, 0, sizeof(*b));
	b->len = e->size;
	b->block_len = (uint32_t)1 << e->block_shift;
	b->n = (uint32_t)e->nblocks;
	b->weak = e->weak;
	b->strong = e->blocks;
}
