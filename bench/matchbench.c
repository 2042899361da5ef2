/*
 * matchbench.c — speed and result size of the block matcher (src/match.c)
 * on this machine. Run by hand, not by `make check`:
 *
 *	build/bench/matchbench [-s MiB] [-r runs]
 *
 * Prints one markdown table: block-sum speed, rolling speed on data that
 * matches nothing (1 and 2 threads), and the two scattered-edit cases of
 * the lead's brief (320 edits of ~8 KiB, every 4th changing the length;
 * 25,000 in-place edits of 100 bytes, refined with 256/512/1024-byte sums
 * of the gaps). Wall and CPU times (of all threads) are the best of
 * RUNS, each; on a shared machine the CPU column is the steadier one.
 * Data lives in memory (as a file in the page cache would).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "match.h"
#include "../tests/unit/splitmix.h"

#define MiB	(UINT64_C(1) << 20)


/* Wall and CPU time (all threads) of a piece of work. */
struct clk {
	double wall;
	double cpu;
};

static struct clk
clk_now(void)
{
	struct timespec w, c;
	struct clk k;

	clock_gettime(CLOCK_MONOTONIC, &w);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
	k.wall = (double)w.tv_sec + (double)w.tv_nsec / 1e9;
	k.cpu = (double)c.tv_sec + (double)c.tv_nsec / 1e9;
	return k;
}

static struct clk
clk_since(struct clk a)
{
	struct clk b = clk_now();

	b.wall -= a.wall;
	b.cpu -= a.cpu;
	return b;
}

/* Keep the best wall and the best CPU time seen. */
static void
clk_best(struct clk *best, struct clk t)
{
	if (t.wall < best->wall)
		best->wall = t.wall;
	if (t.cpu < best->cpu)
		best->cpu = t.cpu;
}

static const struct clk CLK_MAX = { 1e9, 1e9 };

struct mt {
	const unsigned char *p;
	uint64_t len;
};

static ssize_t
mt_read(void *arg, void *buf, size_t n, uint64_t off)
{
	const struct mt *t = arg;

	if (off >= t->len)
		return 0;
	if (n > t->len - off)
		n = (size_t)(t->len - off);
	memcpy(buf, t->p + off, n);
	return (ssize_t)n;
}

static void
die(const char *what)
{
	fprintf(stderr, "matchbench: %s failed\n", what);
	exit(1);
}

static int runs = 3;

static void
row(const char *what, const char *result, struct clk t, double mbytes)
{
	if (mbytes > 0)
		printf("| %s | %s | %.3f s | %.3f s | %.0f MB/s | %.0f MB/s "
		    "|\n", what, result, t.wall, t.cpu, mbytes / t.wall,
		    mbytes / t.cpu);
	else
		printf("| %s | %s | %.3f s | %.3f s | | |\n", what, result,
		    t.wall, t.cpu);
	fflush(stdout);
}

/*
 * The clock this process sees now (other load on the machine lowers it):
 * a chain of dependent additions runs at one per cycle.
 */
static double
cpu_ghz(void)
{
	struct clk t0, t;
	uint64_t x = 0, i, n = 200000000;

	t0 = clk_now();
	for (i = 0; i < n; i++) {
#if defined(__x86_64__)
		__asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
		    "add $1, %0" : "+r"(x));
#else
		x += i;
#endif
	}
	t = clk_since(t0);
	return x ? 4.0 * (double)n / t.cpu / 1e9 : 0;
}

/* ---- block sums ---- */

static void
bench_sums(const unsigned char *p, size_t len)
{
	static const uint32_t bls[] = { 4096, 16384 };
	struct ps_blocksums s;
	struct clk t0, best;
	uint32_t w = 0;
	size_t i, k, o;
	char what[96];
	int r, simd;

	for (simd = 1; simd >= 0; simd--) {
		ps_match_simd = simd;
		for (k = 0; k < 2; k++) {
			best = CLK_MAX;
			for (r = 0; r < runs; r++) {
				t0 = clk_now();
				for (o = 0; o + bls[k] <= len; o += bls[k])
					w += ps_weak(p + o, bls[k]);
				clk_best(&best, clk_since(t0));
			}
			snprintf(what, sizeof(what), "weak sum only, %u-byte "
			    "blocks%s", bls[k], simd ? "" : " (SSE2 path)");
			row(what, "", best, (double)len / 1e6);
			if (!simd)
				continue;
			best = CLK_MAX;
			for (r = 0; r < runs; r++) {
				t0 = clk_now();
				if (ps_blocksums_mem(p, len, 0, bls[k], &s) !=
				    PS_OK)
					die("ps_blocksums_mem");
				clk_best(&best, clk_since(t0));
				for (i = 0; i < s.n; i++)
					w += s.weak[i];
				ps_blocksums_free(&s);
			}
			snprintf(what, sizeof(what), "ps_blocksums_mem (weak + "
			    "XXH3), %u-byte blocks", bls[k]);
			row(what, "", best, (double)len / 1e6);
		}
	}
	ps_match_simd = 1;
	if (w == 1)
		printf("\n");	/* so the sums are not optimised away */
}

/* ---- matching ---- */

struct result {
	struct clk t;
	struct ps_mops ops;
};

/* Best of RUNS: match T (TLEN) against the matcher M. */
static void
timed_match(const struct ps_matcher *m, const unsigned char *t, size_t tlen,
    const struct ps_blocksums *hint, unsigned threads, struct result *res)
{
	struct mt mt = { t, tlen };
	struct ps_mops ops;
	struct clk t0;
	int r;

	res->t = CLK_MAX;
	memset(&res->ops, 0, sizeof(res->ops));
	for (r = 0; r < runs; r++) {
		memset(&ops, 0, sizeof(ops));
		t0 = clk_now();
		if (ps_match(m, mt_read, &mt, 0, tlen, hint, threads, &ops) !=
		    PS_OK)
			die("ps_match");
		clk_best(&res->t, clk_since(t0));
		ps_mops_free(&res->ops);
		res->ops = ops;
	}
}

static void
bench_nomatch(const unsigned char *b, const unsigned char *t, size_t len)
{
	struct ps_blocksums s;
	struct ps_matcher *m;
	struct result res;
	unsigned th;
	char what[96], out[96];

	if (ps_blocksums_mem(b, len, 0, 16384, &s) != PS_OK ||
	    ps_matcher_new(&s, &m) != PS_OK)
		die("sums");
	for (th = 0; th <= 2; th++) {
		/* th 0: one thread without AVX2 */
		ps_match_simd = th > 0;
		timed_match(m, t, len, NULL, th ? th : 1, &res);
		ps_match_simd = 1;
		snprintf(what, sizeof(what), "rolling search, no match, "
		    "16 KiB blocks, %u thread%s%s", th ? th : 1, th > 1 ? "s" :
		    "", th ? "" : " (portable scan)");
		snprintf(out, sizeof(out), "literal %.1f MB, %" PRIu64
		    " strong sums", (double)res.ops.literal_bytes / 1e6,
		    res.ops.stat_strong);
		row(what, out, res.t, (double)len / 1e6);
		ps_mops_free(&res.ops);
	}
	ps_matcher_free(m);
	ps_blocksums_free(&s);
}

/*
 * 320 edits of about 8 KiB; with SHIFT every 4th inserts or deletes
 * bytes, else all are in place.
 */
static size_t
edits_8k(unsigned char *t, size_t len, size_t cap, int shift,
    uint64_t *changed)
{
	size_t i, at, n, k = 320;

	*changed = 0;
	for (i = 0; i < k; i++) {
		at = (size_t)(rng() % (len - 16384));
		n = 6144 + (size_t)(rng() % 4096);
		if (i % 4 != 3 || !shift) {
			fill_random(t + at, n);
		} else if (i % 8 == 3 && len + n <= cap) {
			memmove(t + at + n, t + at, len - at);
			fill_random(t + at, n);
			len += n;
		} else {
			memmove(t + at, t + at + n, len - at - n);
			len -= n;
		}
		*changed += n;
	}
	return len;
}

static void
bench_edits8k(const unsigned char *b, size_t len)
{
	struct ps_blocksums s, h;
	struct ps_matcher *m;
	struct result res;
	unsigned char *t;
	uint64_t changed;
	size_t tlen, cap = len + 4 * MiB;
	unsigned th;
	struct clk hs;
	char what[128], out[128];

	t = malloc(cap);
	if (t == NULL)
		die("malloc");
	if (ps_blocksums_mem(b, len, 0, 16384, &s) != PS_OK ||
	    ps_matcher_new(&s, &m) != PS_OK)
		die("sums");
	/* In place only: where the hint saves reading. */
	memcpy(t, b, len);
	tlen = edits_8k(t, len, cap, 0, &changed);
	if (ps_blocksums_mem(t, tlen, 0, 16384, &h) != PS_OK)
		die("hint sums");
	timed_match(m, t, tlen, &h, 1, &res);
	snprintf(out, sizeof(out), "literal %.2f MB, read %.0f MB",
	    (double)res.ops.literal_bytes / 1e6,
	    (double)res.ops.stat_read / 1e6);
	row("320 x ~8 KiB edits, all in place, 16 KiB, hint, 1 thr", out,
	    res.t, (double)tlen / 1e6);
	ps_mops_free(&res.ops);
	ps_blocksums_free(&h);

	memcpy(t, b, len);
	tlen = edits_8k(t, len, cap, 1, &changed);
	hs = clk_now();
	if (ps_blocksums_mem(t, tlen, 0, 16384, &h) != PS_OK)
		die("hint sums");
	hs = clk_since(hs);
	for (th = 1; th <= 2; th++) {
		timed_match(m, t, tlen, NULL, th, &res);
		snprintf(what, sizeof(what), "320 x ~8 KiB edits (%.1f MB, 1/4 "
		    "change length), 16 KiB, no hint, %u thr", (double)changed /
		    1e6, th);
		snprintf(out, sizeof(out), "literal %.2f MB in %zu ops, "
		    "read %.0f MB", (double)res.ops.literal_bytes / 1e6,
		    res.ops.n, (double)res.ops.stat_read / 1e6);
		row(what, out, res.t, (double)tlen / 1e6);
		ps_mops_free(&res.ops);
		timed_match(m, t, tlen, &h, th, &res);
		snprintf(what, sizeof(what), "same, with hint, %u thr", th);
		snprintf(out, sizeof(out), "literal %.2f MB, read %.0f MB",
		    (double)res.ops.literal_bytes / 1e6,
		    (double)res.ops.stat_read / 1e6);
		row(what, out, res.t, (double)tlen / 1e6);
		ps_mops_free(&res.ops);
	}
	row("(the hint's own sums, computed once by the manifest)", "", hs,
	    (double)tlen / 1e6);
	ps_blocksums_free(&h);
	ps_matcher_free(m);
	ps_blocksums_free(&s);
	free(t);
}

/*
 * One refinement round over the literals of OPS with FINE-byte sums of
 * the basis gaps. Returns the wire cost of the fine sums (12 bytes per
 * block) in *SUMBYTES and the time in *SEC (sums + matching).
 */
static void
refine(const unsigned char *b, size_t blen, const unsigned char *t,
    size_t tlen, struct ps_mops *ops, uint32_t coarse, uint32_t fine,
    uint64_t *sumbytes, struct clk *sec)
{
	struct mt mt = { t, tlen };
	struct ps_mops *subs;
	struct ps_blocksums s;
	struct ps_matcher *m;
	struct ps_gap *g;
	size_t n, i, *idx;
	struct clk t0 = clk_now();

	*sumbytes = 0;
	n = ps_match_gaps(ops, blen, fine, coarse, &g);
	subs = calloc(n + 1, sizeof(*subs));
	idx = calloc(n + 1, sizeof(*idx));
	if (subs == NULL || idx == NULL)
		die("calloc");
	for (i = 0; i < n; i++) {
		const struct ps_mop *o = &ops->v[g[i].op];

		if (ps_blocksums_mem(b + g[i].basis_off, g[i].basis_len,
		    g[i].basis_off, fine, &s) != PS_OK ||
		    ps_matcher_new(&s, &m) != PS_OK)
			die("fine sums");
		*sumbytes += 12 * (uint64_t)s.n;
		if (ps_match(m, mt_read, &mt, o->target_off, o->len, NULL, 1,
		    &subs[i]) != PS_OK)
			die("refine match");
		idx[i] = g[i].op;
		ps_matcher_free(m);
		ps_blocksums_free(&s);
	}
	if (ps_mops_splice_many(ops, idx, subs, n) != PS_OK)
		die("splice");
	*sec = clk_since(t0);
	for (i = 0; i < n; i++)
		ps_mops_free(&subs[i]);
	free(subs);
	free(idx);
	free(g);
}

static void
bench_edits100(const unsigned char *b, size_t len)
{
	static const uint32_t fines[] = { 256, 512, 1024 };
	struct ps_blocksums s, h;
	struct ps_matcher *m;
	struct result res;
	struct ps_mops ops;
	unsigned char *t;
	uint64_t sumbytes, k, nedit = 25000 * (uint64_t)len / (256 * MiB);
	struct clk sec;
	size_t f;
	char what[128], out[160];

	t = malloc(len);
	if (t == NULL)
		die("malloc");
	memcpy(t, b, len);
	for (k = 0; k < nedit; k++)
		fill_random(t + rng() % (len - 100), 100);
	if (ps_blocksums_mem(b, len, 0, 16384, &s) != PS_OK ||
	    ps_matcher_new(&s, &m) != PS_OK)
		die("sums");
	if (ps_blocksums_mem(t, len, 0, 16384, &h) != PS_OK)
		die("hint sums");
	timed_match(m, t, len, &h, 1, &res);
	snprintf(what, sizeof(what), "%" PRIu64 " x 100-byte in-place edits "
	    "(%.1f MB), 16 KiB, hint", nedit, (double)nedit * 100 / 1e6);
	snprintf(out, sizeof(out), "literal %.1f MB, read %.0f MB",
	    (double)res.ops.literal_bytes / 1e6,
	    (double)res.ops.stat_read / 1e6);
	row(what, out, res.t, (double)len / 1e6);
	ps_mops_free(&res.ops);
	ps_blocksums_free(&h);
	timed_match(m, t, len, NULL, 1, &res);
	snprintf(what, sizeof(what), "same, no hint");
	snprintf(out, sizeof(out), "literal %.1f MB",
	    (double)res.ops.literal_bytes / 1e6);
	row(what, out, res.t, (double)len / 1e6);
	for (f = 0; f < 3; f++) {
		memset(&ops, 0, sizeof(ops));
		ops.v = malloc(res.ops.n * sizeof(*ops.v) + 1);
		if (ops.v == NULL)
			die("malloc");
		memcpy(ops.v, res.ops.v, res.ops.n * sizeof(*ops.v));
		ops.n = ops.cap = res.ops.n;
		ops.copy_bytes = res.ops.copy_bytes;
		ops.literal_bytes = res.ops.literal_bytes;
		refine(b, len, t, len, &ops, 16384, fines[f], &sumbytes, &sec);
		snprintf(what, sizeof(what), "  then one refinement with "
		    "%u-byte sums of the gaps", fines[f]);
		snprintf(out, sizeof(out), "literal %.2f MB + fine sums "
		    "%.2f MB = %.2f MB", (double)ops.literal_bytes / 1e6,
		    (double)sumbytes / 1e6, (double)(ops.literal_bytes +
		    sumbytes) / 1e6);
		row(what, out, sec, 0);
		ps_mops_free(&ops);
	}
	for (f = 0; f < 2; f++) {
		uint64_t sb2;
		struct clk sec2;

		memset(&ops, 0, sizeof(ops));
		ops.v = malloc(res.ops.n * sizeof(*ops.v) + 1);
		if (ops.v == NULL)
			die("malloc");
		memcpy(ops.v, res.ops.v, res.ops.n * sizeof(*ops.v));
		ops.n = ops.cap = res.ops.n;
		ops.copy_bytes = res.ops.copy_bytes;
		ops.literal_bytes = res.ops.literal_bytes;
		refine(b, len, t, len, &ops, 16384, fines[f], &sumbytes, &sec);
		refine(b, len, t, len, &ops, fines[f], 64, &sb2, &sec2);
		snprintf(what, sizeof(what), "  two rounds: %u-byte, then "
		    "64-byte sums", fines[f]);
		snprintf(out, sizeof(out), "literal %.2f MB + fine sums "
		    "%.2f MB = %.2f MB", (double)ops.literal_bytes / 1e6,
		    (double)(sumbytes + sb2) / 1e6, (double)(ops.literal_bytes +
		    sumbytes + sb2) / 1e6);
		sec.wall += sec2.wall;
		sec.cpu += sec2.cpu;
		row(what, out, sec, 0);
		ps_mops_free(&ops);
	}
	ps_mops_free(&res.ops);
	ps_matcher_free(m);
	ps_blocksums_free(&s);
	free(t);
}

int
main(int argc, char **argv)
{
	size_t len = 256 * MiB;
	unsigned char *b, *t;
	int c;

	rng_state = 42;
	while ((c = getopt(argc, argv, "s:r:")) != -1) {
		switch (c) {
		case 's':
			len = (size_t)strtoul(optarg, NULL, 10) * MiB;
			break;
		case 'r':
			runs = (int)strtol(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: matchbench [-s MiB] "
			    "[-r runs]\n");
			return 2;
		}
	}
	if (len < 16 * MiB || runs < 1) {
		fprintf(stderr, "matchbench: -s at least 16, -r at least 1\n");
		return 2;
	}
	b = malloc(len);
	t = malloc(len);
	if (b == NULL || t == NULL)
		die("malloc");
	fill_random(b, len);
	fill_random(t, len);
	printf("matchbench: %zu MiB, best of %d; clock seen before: "
	    "%.2f GHz\n\n", len / MiB, runs, cpu_ghz());
	printf("| what | result | wall | CPU | speed (wall) | speed (CPU) |\n"
	    "|---|---|--:|--:|--:|--:|\n");
	bench_sums(b, len);
	bench_nomatch(b, t, len);
	free(t);
	bench_edits8k(b, len);
	bench_edits100(b, len);
	printf("\nclock seen after: %.2f GHz\n", cpu_ghz());
	free(b);
	return 0;
}
