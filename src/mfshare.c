/*
 * mfshare.c — one plan for servers with identical manifests (mfshare.h).
 *
 * One mutex guards everything; a condition variable wakes those waiting
 * for a plan being made. Per component: at most REFS_MAX references,
 * each the frame digests of one manifest (at most REF_MAX: past them a
 * follower is never told it differs, and its budget bounds what it
 * holds), and at most PLANS_MAX plans, by digest.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mfshare.h"
#include "ps.h"

/*
 * Frames a reference remembers: a manifest of a million files is a few
 * hundred; past them the others are never told they differ (and their
 * budget bounds what they hold), so a server sending tiny frames costs
 * 64 KiB here, no more.
 */
#define REF_MAX 4096
#define PLANS_MAX 8		/* distinct manifests per component */
#define REFS_MAX 8		/* references per component */

struct plan {
	unsigned char d[16];
	int ready;		/* else being made */
	struct ps_syncplan *p;
};

/* A manifest's frames as one session received them: the reference. */
struct ref {
	unsigned char (*d)[16];
	uint64_t n, cap;
};

struct comp {
	struct ref refs[REFS_MAX];
	size_t nrefs;
	struct plan plans[PLANS_MAX];
	size_t nplans;
};

struct ps_mfshare {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct comp *c;
	size_t ncomp;
	uint64_t held, budget;
	uint64_t seed;
	uint64_t hits;
};

struct ps_mfshare *
ps_mfshare_new(size_t ncomp, uint64_t budget)
{
	struct ps_mfshare *m = xcalloc(1, sizeof(*m));
	struct timespec ts;

	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	m->c = xcalloc(ncomp > 0 ? ncomp : 1, sizeof(*m->c));
	m->ncomp = ncomp;
	m->budget = budget;
	/* Unpredictable to a server; not a secret worth more than that. */
	clock_gettime(CLOCK_REALTIME, &ts);
	m->seed = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^
	    ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)m;
	return m;
}

void
ps_mfshare_free(struct ps_mfshare *m)
{
	size_t i, k;

	if (m == NULL)
		return;
	for (i = 0; i < m->ncomp; i++) {
		for (k = 0; k < m->c[i].nplans; k++) {
			ps_syncplan_free(m->c[i].plans[k].p);
			free(m->c[i].plans[k].p);
		}
		for (k = 0; k < m->c[i].nrefs; k++)
			free(m->c[i].refs[k].d);
	}
	free(m->c);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	free(m);
}

uint64_t
ps_mfshare_seed(const struct ps_mfshare *m)
{
	return m->seed;
}

/* Append D to reference R (mu held). */
static void
ref_add(struct ref *r, const unsigned char d[16])
{
	if (r->n >= REF_MAX)
		return;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->d = xreallocarray(r->d, r->cap, sizeof(*r->d));
	}
	memcpy(r->d[r->n++], d, 16);
}

void
ps_mfshare_join(struct ps_mfshare *m, size_t c, struct ps_mfpeer *p)
{
	struct comp *x;

	memset(p, 0, sizeof(*p));
	p->own = -1;
	if (c >= m->ncomp) {
		p->diverged = 1;
		return;
	}
	pthread_mutex_lock(&m->mu);
	x = &m->c[c];
	if (x->nrefs == 0) {
		p->own = 0;	/* the first: the reference of all */
		x->nrefs = 1;
	}
	pthread_mutex_unlock(&m->mu);
}

void
ps_mfshare_frame(struct ps_mfshare *m, size_t c, struct ps_mfpeer *p,
    uint64_t k, const unsigned char d[16])
{
	struct comp *x;
	struct ref *r;
	int i, last = -1;

	if (c >= m->ncomp)
		return;
	pthread_mutex_lock(&m->mu);
	x = &m->c[c];
	if (p->own >= 0) {
		if (k == x->refs[p->own].n)
			ref_add(&x->refs[p->own], d);
		pthread_mutex_unlock(&m->mu);
		return;
	}
	if (p->diverged) {
		pthread_mutex_unlock(&m->mu);
		return;
	}
	/* Every reference there is, also those made since it joined. */
	for (i = 0; i < (int)x->nrefs; i++) {
		if (p->dropped & (1u << i))
			continue;
		r = &x->refs[i];
		if (k < r->n && memcmp(r->d[k], d, 16) != 0) {
			p->dropped |= 1u << i;
			last = i;
		}
	}
	if (p->dropped == (1u << x->nrefs) - 1) {
		/*
		 * Like none before it: it becomes a reference itself (its
		 * earlier frames were those of the last one it matched).
		 */
		p->diverged = 1;
		if (x->nrefs < REFS_MAX && last >= 0 && k <= x->refs[last].n) {
			p->own = (int)x->nrefs++;
			r = &x->refs[p->own];
			r->cap = k + 64;
			r->d = xreallocarray(NULL, r->cap, sizeof(*r->d));
			memcpy(r->d, x->refs[last].d,
			    (size_t)k * sizeof(*r->d));
			r->n = k;
			ref_add(r, d);
		}
	}
	pthread_mutex_unlock(&m->mu);
}

int
ps_mfshare_hold(struct ps_mfshare *m, uint64_t n)
{
	int ok;

	pthread_mutex_lock(&m->mu);
	ok = n <= m->budget - m->held;
	if (ok)
		m->held += n;
	pthread_mutex_unlock(&m->mu);
	return ok;
}

void
ps_mfshare_unhold(struct ps_mfshare *m, uint64_t n)
{
	pthread_mutex_lock(&m->mu);
	m->held -= n <= m->held ? n : m->held;
	pthread_mutex_unlock(&m->mu);
}

static struct plan *
find(struct comp *x, const unsigned char d[16])
{
	size_t k;

	for (k = 0; k < x->nplans; k++)
		if (memcmp(x->plans[k].d, d, 16) == 0)
			return &x->plans[k];
	return NULL;
}

int
ps_mfshare_get(struct ps_mfshare *m, size_t c, const unsigned char d[16],
    const struct ps_syncplan **out)
{
	struct comp *x;
	struct plan *p;
	int rc;

	*out = NULL;
	if (c >= m->ncomp)
		return PS_MFS_NONE;
	pthread_mutex_lock(&m->mu);
	x = &m->c[c];
	/* Being made by a session that holds its manifest whole. */
	while ((p = find(x, d)) != NULL && !p->ready)
		pthread_cond_wait(&m->cv, &m->mu);
	if (p != NULL) {
		*out = p->p;
		m->hits++;
		rc = PS_MFS_HAVE;
	} else if (x->nplans < PLANS_MAX) {
		p = &x->plans[x->nplans++];
		memcpy(p->d, d, 16);
		p->ready = 0;
		p->p = NULL;
		rc = PS_MFS_MAKE;
	} else {
		rc = PS_MFS_NONE;
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

void
ps_mfshare_put(struct ps_mfshare *m, size_t c, const unsigned char d[16],
    struct ps_syncplan *p)
{
	struct comp *x = &m->c[c];
	struct plan *e;

	pthread_mutex_lock(&m->mu);
	if ((e = find(x, d)) != NULL && !e->ready) {
		if (p != NULL) {
			e->ready = 1;
			e->p = p;
		} else {	/* gone: the next to ask makes it */
			*e = x->plans[--x->nplans];
		}
	}
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

int
ps_mfshare_offer(struct ps_mfshare *m, size_t c, const unsigned char d[16],
    struct ps_syncplan *p)
{
	struct comp *x;
	struct plan *e;
	int taken = 0;

	if (c >= m->ncomp)
		return 0;
	pthread_mutex_lock(&m->mu);
	x = &m->c[c];
	if (find(x, d) == NULL && x->nplans < PLANS_MAX) {
		e = &x->plans[x->nplans++];
		memcpy(e->d, d, 16);
		e->ready = 1;
		e->p = p;
		taken = 1;
	}
	pthread_mutex_unlock(&m->mu);
	return taken;
}

uint64_t
ps_mfshare_hits(struct ps_mfshare *m)
{
	uint64_t n;

	pthread_mutex_lock(&m->mu);
	n = m->hits;
	pthread_mutex_unlock(&m->mu);
	return n;
}
