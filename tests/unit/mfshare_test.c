/*
 * mfshare_test.c — plans shared between identical manifests
 * (src/mfshare.c): the first session makes the reference, the others
 * follow it frame by frame and drop out at the first that differs
 * (making a reference of their own), a plan is looked up by the digest
 * of the whole, made once while the others wait, given up to the next,
 * and what is held unread stays within the budget.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfshare.h"

/* The running digest after frame K of manifest kind V. */
static const unsigned char *
dig(int v, uint64_t k)
{
	static unsigned char d[16];

	memset(d, 0, sizeof(d));
	d[0] = (unsigned char)v;
	memcpy(d + 8, &k, sizeof(k));
	return d;
}

static struct ps_syncplan *
plan(size_t n)
{
	struct ps_syncplan *p = calloc(1, sizeof(*p));

	p->nsend = n;
	return p;
}

static void
test_references(void **state)
{
	struct ps_mfshare *m = ps_mfshare_new(2, 1u << 20);
	struct ps_mfpeer lead, same, other, late, like_other, c1;

	(void)state;
	ps_mfshare_join(m, 0, &lead);
	assert_int_equal(lead.own, 0);
	assert_int_equal(lead.diverged, 0);
	ps_mfshare_join(m, 0, &same);
	ps_mfshare_join(m, 0, &other);
	assert_int_equal(same.own, -1);
	assert_int_equal(other.own, -1);
	/* Another component has a first of its own. */
	ps_mfshare_join(m, 1, &c1);
	assert_int_equal(c1.own, 0);

	/* Ahead of the reference: nothing known, still following. */
	ps_mfshare_frame(m, 0, &same, 0, dig(1, 0));
	ps_mfshare_frame(m, 0, &other, 0, dig(1, 0));
	assert_int_equal(same.diverged, 0);
	ps_mfshare_frame(m, 0, &lead, 0, dig(1, 0));
	ps_mfshare_frame(m, 0, &lead, 1, dig(1, 1));
	ps_mfshare_frame(m, 0, &lead, 2, dig(1, 2));
	ps_mfshare_frame(m, 0, &same, 1, dig(1, 1));
	ps_mfshare_frame(m, 0, &same, 2, dig(1, 2));
	assert_int_equal(same.diverged, 0);
	/* Frame 1 differs: it makes a reference of its own. */
	ps_mfshare_frame(m, 0, &other, 1, dig(2, 1));
	assert_int_equal(other.diverged, 1);
	assert_int_equal(other.own, 1);
	ps_mfshare_frame(m, 0, &other, 2, dig(2, 2));
	/* A later one like OTHER follows that reference. */
	ps_mfshare_join(m, 0, &like_other);
	ps_mfshare_frame(m, 0, &like_other, 0, dig(1, 0));
	ps_mfshare_frame(m, 0, &like_other, 1, dig(2, 1));
	ps_mfshare_frame(m, 0, &like_other, 2, dig(2, 2));
	assert_int_equal(like_other.diverged, 0);
	/* One like neither. */
	ps_mfshare_join(m, 0, &late);
	ps_mfshare_frame(m, 0, &late, 0, dig(3, 0));
	assert_int_equal(late.diverged, 1);
	assert_int_equal(late.own, 2);
	/* The other component's references are its own. */
	ps_mfshare_frame(m, 1, &c1, 0, dig(9, 0));
	ps_mfshare_frame(m, 0, &same, 3, dig(1, 3));
	assert_int_equal(same.diverged, 0);
	ps_mfshare_free(m);
}

struct asker {
	struct ps_mfshare *m;
	unsigned char d[16];
	int rc;
	const struct ps_syncplan *p;
};

static void *
ask(void *arg)
{
	struct asker *a = arg;

	a->rc = ps_mfshare_get(a->m, 0, a->d, &a->p);
	return NULL;
}

static void
test_plans(void **state)
{
	struct ps_mfshare *m = ps_mfshare_new(1, 1u << 20);
	struct asker w = { .m = m, .rc = 99 };
	const struct ps_syncplan *got;
	struct ps_syncplan *mine = plan(7), *dup = plan(8);
	pthread_t t;
	int i;

	(void)state;
	/* The first to ask makes it; a second waits for it. */
	assert_int_equal(ps_mfshare_get(m, 0, dig(1, 9), &got), PS_MFS_MAKE);
	assert_null(got);
	memcpy(w.d, dig(1, 9), 16);
	assert_int_equal(pthread_create(&t, NULL, ask, &w), 0);
	usleep(20000);
	assert_int_equal(w.rc, 99);	/* still waiting */
	ps_mfshare_put(m, 0, dig(1, 9), mine);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.rc, PS_MFS_HAVE);
	assert_ptr_equal(w.p, mine);
	assert_int_equal(ps_mfshare_hits(m), 1);
	/* Offered once more for the same digest: not taken. */
	assert_int_equal(ps_mfshare_offer(m, 0, dig(1, 9), dup), 0);
	ps_syncplan_free(dup);
	free(dup);

	/* Given up: the next to ask makes it. */
	assert_int_equal(ps_mfshare_get(m, 0, dig(2, 9), &got), PS_MFS_MAKE);
	ps_mfshare_put(m, 0, dig(2, 9), NULL);
	assert_int_equal(ps_mfshare_get(m, 0, dig(2, 9), &got), PS_MFS_MAKE);
	ps_mfshare_put(m, 0, dig(2, 9), plan(1));
	assert_int_equal(ps_mfshare_get(m, 0, dig(2, 9), &got), PS_MFS_HAVE);
	assert_int_equal(got->nsend, 1);

	/* An offer for a new digest is kept... */
	assert_int_equal(ps_mfshare_offer(m, 0, dig(3, 9), plan(3)), 1);
	assert_int_equal(ps_mfshare_get(m, 0, dig(3, 9), &got), PS_MFS_HAVE);
	assert_int_equal(got->nsend, 3);
	/* ...while there is room: past it nobody makes one for others. */
	for (i = 4; i < 20; i++) {
		struct ps_syncplan *p = plan((size_t)i);

		if (!ps_mfshare_offer(m, 0, dig(i, 9), p)) {
			ps_syncplan_free(p);
			free(p);
		}
	}
	assert_int_equal(ps_mfshare_get(m, 0, dig(30, 9), &got), PS_MFS_NONE);
	/* A component out of range shares nothing. */
	assert_int_equal(ps_mfshare_get(m, 5, dig(1, 9), &got), PS_MFS_NONE);
	ps_mfshare_free(m);
}

static void
test_budget(void **state)
{
	struct ps_mfshare *m = ps_mfshare_new(1, 1000);

	(void)state;
	assert_int_equal(ps_mfshare_hold(m, 600), 1);
	assert_int_equal(ps_mfshare_hold(m, 600), 0);
	assert_int_equal(ps_mfshare_hold(m, 400), 1);
	assert_int_equal(ps_mfshare_hold(m, 1), 0);
	ps_mfshare_unhold(m, 600);
	assert_int_equal(ps_mfshare_hold(m, 600), 1);
	/* More given back than held does not wrap. */
	ps_mfshare_unhold(m, 5000);
	assert_int_equal(ps_mfshare_hold(m, 1000), 1);
	ps_mfshare_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_references),
		cmocka_unit_test(test_plans),
		cmocka_unit_test(test_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
