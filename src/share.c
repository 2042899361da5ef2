/*
 * share.c — plans and compressed data worked out once per push (share.h).
 *
 * One mutex guards the table; a condition variable wakes those waiting
 * for an entry being made. Entries live in a hash table (chained) and on
 * a list in the order they were made, the oldest first out when the
 * budget is exceeded; an entry still being made is never dropped.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "share.h"

#define NBUCKET 4096

enum { K_PLAN, K_DATA, K_FINAL };

struct ent {
	/* Key. */
	int kind;
	unsigned char a[16];	/* plan: old version; data: new version */
	unsigned char b[16];	/* plan: new version */
	uint64_t x, y;		/* plan: size; data: offset, length */
	/* Value. */
	int ready;		/* made (or given up: then none) */
	int none;
	struct ps_mops ops;	/* plan */
	uint8_t codec;		/* data */
	unsigned char *p;
	size_t n;
	size_t cost;		/* bytes counted against the budget */
	struct ent *hnext;	/* bucket chain */
	struct ent *older, *newer;	/* age list */
};

struct ps_share {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ent *bucket[NBUCKET];
	struct ent *oldest, *newest;
	size_t used, budget;
	uint64_t hits_plan, hits_data;
};

struct ps_share *
ps_share_new(size_t budget)
{
	struct ps_share *sh = xcalloc(1, sizeof(*sh));

	pthread_mutex_init(&sh->mu, NULL);
	pthread_cond_init(&sh->cv, NULL);
	sh->budget = budget;
	return sh;
}

static void
ent_free(struct ent *e)
{
	ps_mops_free(&e->ops);
	free(e->p);
	free(e);
}

void
ps_share_free(struct ps_share *sh)
{
	struct ent *e, *next;

	if (sh == NULL)
		return;
	for (e = sh->oldest; e != NULL; e = next) {
		next = e->newer;
		ent_free(e);
	}
	pthread_mutex_destroy(&sh->mu);
	pthread_cond_destroy(&sh->cv);
	free(sh);
}

static size_t
bucket_of(int kind, const unsigned char *a, uint64_t x)
{
	uint64_t h;

	memcpy(&h, a, sizeof(h));	/* the key holds XXH3 output */
	h ^= x * 0x9e3779b97f4a7c15ULL ^ (uint64_t)kind;
	return (size_t)(h % NBUCKET);
}

/* The entry for the key, or NULL (mu held). */
static struct ent *
lookup(struct ps_share *sh, int kind, const unsigned char *a,
    const unsigned char *b, uint64_t x, uint64_t y)
{
	struct ent *e;

	for (e = sh->bucket[bucket_of(kind, a, x)]; e != NULL; e = e->hnext)
		if (e->kind == kind && e->x == x && e->y == y &&
		    memcmp(e->a, a, 16) == 0 &&
		    (b == NULL || memcmp(e->b, b, 16) == 0))
			return e;
	return NULL;
}

static void
unlink_ent(struct ps_share *sh, struct ent *e)
{
	struct ent **pp = &sh->bucket[bucket_of(e->kind, e->a, e->x)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		sh->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		sh->newest = e->older;
	sh->used -= e->cost;
}

/* A new entry being made, the caller's (mu held). */
static struct ent *
insert(struct ps_share *sh, int kind, const unsigned char *a,
    const unsigned char *b, uint64_t x, uint64_t y)
{
	struct ent *e = xcalloc(1, sizeof(*e));
	size_t k = bucket_of(kind, a, x);

	e->kind = kind;
	memcpy(e->a, a, 16);
	if (b != NULL)
		memcpy(e->b, b, 16);
	e->x = x;
	e->y = y;
	e->cost = sizeof(*e);
	e->hnext = sh->bucket[k];
	sh->bucket[k] = e;
	e->older = sh->newest;
	if (sh->newest != NULL)
		sh->newest->newer = e;
	else
		sh->oldest = e;
	sh->newest = e;
	sh->used += e->cost;
	return e;
}

/* Drop the oldest made entries until the budget holds (mu held). */
static void
trim(struct ps_share *sh)
{
	struct ent *e = sh->oldest, *next;

	while (sh->used > sh->budget && e != NULL) {
		next = e->newer;
		if (e->ready) {
			unlink_ent(sh, e);
			ent_free(e);
		}
		e = next;
	}
}

/*
 * Find or claim the entry for a key: returns the made entry (mu held,
 * the caller copies from it), or NULL when the caller is to make it (a
 * placeholder is in the table then, unless the budget is used up).
 */
static struct ent *
find_or_claim(struct ps_share *sh, int kind, const unsigned char *a,
    const unsigned char *b, uint64_t x, uint64_t y)
{
	struct ent *e;

	for (;;) {
		e = lookup(sh, kind, a, b, x, y);
		if (e == NULL) {
			if (sh->used < sh->budget)
				(void)insert(sh, kind, a, b, x, y);
			return NULL;
		}
		if (e->ready && !e->none)
			return e;
		if (e->ready) {		/* the one who tried gave up */
			unlink_ent(sh, e);
			ent_free(e);
			continue;
		}
		pthread_cond_wait(&sh->cv, &sh->mu);
	}
}

/* The placeholder for a key is made: fill it, or drop it (mu held). */
static struct ent *
made(struct ps_share *sh, int kind, const unsigned char *a,
    const unsigned char *b, uint64_t x, uint64_t y, int ok)
{
	struct ent *e = lookup(sh, kind, a, b, x, y);

	pthread_cond_broadcast(&sh->cv);
	if (e == NULL || e->ready)
		return NULL;		/* not claimed (over budget) */
	e->ready = 1;
	if (!ok) {
		unlink_ent(sh, e);
		ent_free(e);
		return NULL;
	}
	return e;
}

static void
mops_copy(struct ps_mops *dst, const struct ps_mops *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->n > 0) {
		dst->v = xreallocarray(NULL, src->n, sizeof(*dst->v));
		memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
	}
	dst->n = dst->cap = src->n;
	dst->copy_bytes = src->copy_bytes;
	dst->literal_bytes = src->literal_bytes;
}

int
ps_share_plan_get(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, struct ps_mops *ops)
{
	struct ent *e;

	pthread_mutex_lock(&sh->mu);
	e = find_or_claim(sh, K_PLAN, old, new, size, 0);
	if (e != NULL) {
		mops_copy(ops, &e->ops);
		sh->hits_plan++;
	}
	pthread_mutex_unlock(&sh->mu);
	return e != NULL;
}

void
ps_share_plan_put(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, const struct ps_mops *ops)
{
	struct ent *e;

	pthread_mutex_lock(&sh->mu);
	e = made(sh, K_PLAN, old, new, size, 0, ops != NULL);
	if (e != NULL) {
		mops_copy(&e->ops, ops);
		e->cost += ops->n * sizeof(*ops->v);
		sh->used += ops->n * sizeof(*ops->v);
		trim(sh);
	}
	pthread_mutex_unlock(&sh->mu);
}

int
ps_share_data_get(struct ps_share *sh, const unsigned char new[16],
    uint64_t off, uint32_t len, uint8_t *codec, struct buf *out)
{
	struct ent *e;

	pthread_mutex_lock(&sh->mu);
	e = find_or_claim(sh, K_DATA, new, NULL, off, len);
	if (e != NULL) {
		*codec = e->codec;
		out->len = 0;
		buf_add(out, e->p, e->n);
		sh->hits_data++;
	}
	pthread_mutex_unlock(&sh->mu);
	return e != NULL;
}

void
ps_share_data_put(struct ps_share *sh, const unsigned char new[16],
    uint64_t off, uint32_t len, uint8_t codec, const void *p, size_t n)
{
	struct ent *e;

	pthread_mutex_lock(&sh->mu);
	e = made(sh, K_DATA, new, NULL, off, len, p != NULL);
	if (e != NULL) {
		e->codec = codec;
		e->p = xmalloc(n > 0 ? n : 1);
		memcpy(e->p, p, n);
		e->n = n;
		e->cost += n;
		sh->used += n;
		trim(sh);
	}
	pthread_mutex_unlock(&sh->mu);
}

int
ps_share_final_peek(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, struct ps_mops *ops)
{
	struct ent *e;
	int found;

	pthread_mutex_lock(&sh->mu);
	e = lookup(sh, K_FINAL, old, new, size, 0);
	found = e != NULL && e->ready && !e->none;
	if (found) {
		mops_copy(ops, &e->ops);
		sh->hits_plan++;
	}
	pthread_mutex_unlock(&sh->mu);
	return found;
}

void
ps_share_final_offer(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, const struct ps_mops *ops)
{
	struct ent *e;
	size_t cost = ops->n * sizeof(*ops->v);

	pthread_mutex_lock(&sh->mu);
	if (lookup(sh, K_FINAL, old, new, size, 0) == NULL &&
	    sh->used + cost < sh->budget) {
		e = insert(sh, K_FINAL, old, new, size, 0);
		e->ready = 1;
		mops_copy(&e->ops, ops);
		e->cost += cost;
		sh->used += cost;
	}
	pthread_mutex_unlock(&sh->mu);
}

void
ps_share_stats(struct ps_share *sh, uint64_t *plans, uint64_t *chunks)
{
	pthread_mutex_lock(&sh->mu);
	*plans = sh->hits_plan;
	*chunks = sh->hits_data;
	pthread_mutex_unlock(&sh->mu);
}
