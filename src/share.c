/*
 * share.c — plans and compressed data worked out once per push (share.h).
 *
 * One mutex guards the table; a condition variable wakes those waiting
 * for an entry being made. Entries live in a hash table (chained) and on
 * a list in the order they were made, the oldest first out when the
 * budget is exceeded; an entry still being made is never dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "fsops.h"
#include "share.h"

#define NBUCKET 4096
#define FDS_MAX 64		/* console files held open */

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

/* A console file open for every session that sends it. */
struct fdslot {
	int fd;			/* -1: free */
	int dirfd;
	uint64_t h;		/* of the path */
	char *path;
	struct stat st;		/* when it was opened */
	unsigned refs;		/* sessions reading it now */
	uint64_t used;		/* tick of the last get */
};

struct ps_share {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ent *bucket[NBUCKET];
	struct ent *oldest, *newest;
	size_t used, budget;
	uint64_t hits_plan, hits_data;
	struct fdslot fds[FDS_MAX];
	uint64_t tick, hits_fd;
};

struct ps_share *
ps_share_new(size_t budget)
{
	struct ps_share *sh = xcalloc(1, sizeof(*sh));

	size_t i;

	pthread_mutex_init(&sh->mu, NULL);
	pthread_cond_init(&sh->cv, NULL);
	sh->budget = budget;
	for (i = 0; i < FDS_MAX; i++)
		sh->fds[i].fd = -1;
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
	size_t i;

	for (e = sh->oldest; e != NULL; e = next) {
		next = e->newer;
		ent_free(e);
	}
	for (i = 0; i < FDS_MAX; i++) {
		if (sh->fds[i].fd >= 0)
			close(sh->fds[i].fd);
		free(sh->fds[i].path);
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
	return ps_share_round_get(sh, old, new, size, 0, ops);
}

void
ps_share_plan_put(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, const struct ps_mops *ops)
{
	ps_share_round_put(sh, old, new, size, 0, ops);
}

int
ps_share_round_get(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, uint64_t round,
    struct ps_mops *ops)
{
	struct ent *e;

	pthread_mutex_lock(&sh->mu);
	e = find_or_claim(sh, K_PLAN, old, new, size, round);
	if (e != NULL) {
		mops_copy(ops, &e->ops);
		sh->hits_plan++;
	}
	pthread_mutex_unlock(&sh->mu);
	return e != NULL;
}

/* A plan of KIND made already: a copy in *OPS, no claim, no wait. */
static int
peek(struct ps_share *sh, int kind, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, uint64_t round,
    struct ps_mops *ops)
{
	struct ent *e;
	int found;

	pthread_mutex_lock(&sh->mu);
	e = lookup(sh, kind, old, new, size, round);
	found = e != NULL && e->ready && !e->none;
	if (found) {
		mops_copy(ops, &e->ops);
		sh->hits_plan++;
	}
	pthread_mutex_unlock(&sh->mu);
	return found;
}

int
ps_share_round_peek(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, uint64_t round,
    struct ps_mops *ops)
{
	return peek(sh, K_PLAN, old, new, size, round, ops);
}

void
ps_share_round_put(struct ps_share *sh, const unsigned char old[16],
    const unsigned char new[16], uint64_t size, uint64_t round,
    const struct ps_mops *ops)
{
	struct ent *e;

	pthread_mutex_lock(&sh->mu);
	e = made(sh, K_PLAN, old, new, size, round, ops != NULL);
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
	return peek(sh, K_FINAL, old, new, size, 0, ops);
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

/* The slot holding DIRFD's PATH (hash H), or NULL (mu held). */
static struct fdslot *
fd_find(struct ps_share *sh, int dirfd, uint64_t h, const char *path)
{
	size_t i;

	for (i = 0; i < FDS_MAX; i++)
		if (sh->fds[i].fd >= 0 && sh->fds[i].h == h &&
		    sh->fds[i].dirfd == dirfd &&
		    strcmp(sh->fds[i].path, path) == 0)
			return &sh->fds[i];
	return NULL;
}

int
ps_share_fd_get(struct ps_share *sh, int dirfd, const char *path,
    struct stat *st)
{
	uint64_t h = XXH3_64bits(path, strlen(path));
	struct fdslot *x, *victim = NULL;
	int fd, err;
	size_t i;

	pthread_mutex_lock(&sh->mu);
	if ((x = fd_find(sh, dirfd, h, path)) != NULL) {
		x->refs++;
		x->used = ++sh->tick;
		*st = x->st;
		sh->hits_fd++;
		pthread_mutex_unlock(&sh->mu);
		return x->fd;
	}
	pthread_mutex_unlock(&sh->mu);
	if (ps_open_beneath(dirfd, path, &fd, st) != 0)
		return -1;
	pthread_mutex_lock(&sh->mu);
	if ((x = fd_find(sh, dirfd, h, path)) != NULL) {
		/* Opened meanwhile by another session: one is enough. */
		x->refs++;
		x->used = ++sh->tick;
		*st = x->st;
		pthread_mutex_unlock(&sh->mu);
		err = errno;
		close(fd);
		errno = err;
		return x->fd;
	}
	/* A free slot, else the one used longest ago that nobody reads. */
	for (i = 0; i < FDS_MAX; i++) {
		x = &sh->fds[i];
		if (x->fd < 0) {
			victim = x;
			break;
		}
		if (x->refs == 0 && (victim == NULL || x->used < victim->used))
			victim = x;
	}
	if (victim != NULL) {
		if (victim->fd >= 0)
			close(victim->fd);
		free(victim->path);
		victim->fd = fd;
		victim->dirfd = dirfd;
		victim->h = h;
		victim->path = xstrdup(path);
		victim->st = *st;
		victim->refs = 1;
		victim->used = ++sh->tick;
	}
	pthread_mutex_unlock(&sh->mu);
	return fd;	/* the caller's own when no slot was free */
}

/* The slot whose descriptor FD someone reads now, or NULL (mu held). */
static struct fdslot *
fd_busy(struct ps_share *sh, int fd)
{
	size_t i;

	for (i = 0; i < FDS_MAX; i++)
		if (sh->fds[i].fd == fd && sh->fds[i].refs > 0)
			return &sh->fds[i];
	return NULL;
}

void
ps_share_fd_put(struct ps_share *sh, int fd)
{
	struct fdslot *x;

	pthread_mutex_lock(&sh->mu);
	if ((x = fd_busy(sh, fd)) != NULL)
		x->refs--;
	pthread_mutex_unlock(&sh->mu);
	if (x == NULL)
		close(fd);	/* the caller's own */
}

void
ps_share_fd_forget(struct ps_share *sh, int fd)
{
	struct fdslot *x;

	pthread_mutex_lock(&sh->mu);
	if ((x = fd_busy(sh, fd)) != NULL) {
		/*
		 * Found by no path any more; closed when its slot is taken
		 * (once its readers are done) or with the share.
		 */
		x->h = 0;
		free(x->path);
		x->path = xstrdup("");
		x->dirfd = -1;
	}
	pthread_mutex_unlock(&sh->mu);
}
