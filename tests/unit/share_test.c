/*
 * share_test.c — what sessions share (src/share.c): the first to ask
 * makes it, the others wait and take copies; a failure lets the next
 * one try; the budget bounds what is kept.
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

#include "share.h"

static const unsigned char OLD[16] = "old-version-hash";
static const unsigned char NEW[16] = "new-version-hash";

static void
plan_of(struct ps_mops *o, uint64_t n)
{
	memset(o, 0, sizeof(*o));
	ps_mops_add(o, PS_MOP_COPY, 0, n, 100);
	ps_mops_add(o, PS_MOP_LITERAL, n, 10, 0);
}

struct waiter {
	struct ps_share *sh;
	int got;
	struct ps_mops ops;
};

static void *
wait_plan(void *arg)
{
	struct waiter *w = arg;

	w->got = ps_share_plan_get(w->sh, OLD, NEW, 1000, &w->ops);
	return NULL;
}

static void
test_plan(void **state)
{
	struct ps_share *sh = ps_share_new(1u << 20);
	struct ps_mops ops, mine;
	struct waiter w = { sh, -1, { 0 } };
	pthread_t t;

	(void)state;
	memset(&ops, 0, sizeof(ops));
	/* First: ours to make. Meanwhile a second asker waits. */
	assert_int_equal(ps_share_plan_get(sh, OLD, NEW, 1000, &ops), 0);
	assert_int_equal(pthread_create(&t, NULL, wait_plan, &w), 0);
	usleep(20000);
	assert_int_equal(w.got, -1);	/* still waiting */
	plan_of(&mine, 500);
	ps_share_plan_put(sh, OLD, NEW, 1000, &mine);
	pthread_join(t, NULL);
	assert_int_equal(w.got, 1);
	assert_int_equal(w.ops.n, mine.n);
	assert_memory_equal(w.ops.v, mine.v, mine.n * sizeof(*mine.v));
	ps_mops_free(&w.ops);
	/* Another size or version is another plan. */
	assert_int_equal(ps_share_plan_get(sh, OLD, NEW, 1001, &ops), 0);
	ps_share_plan_put(sh, OLD, NEW, 1001, NULL);
	assert_int_equal(ps_share_plan_get(sh, NEW, OLD, 1000, &ops), 0);
	ps_share_plan_put(sh, NEW, OLD, 1000, NULL);
	/* Given up: the next asker makes it. */
	assert_int_equal(ps_share_plan_get(sh, OLD, NEW, 1001, &ops), 0);
	ps_share_plan_put(sh, OLD, NEW, 1001, &mine);
	assert_int_equal(ps_share_plan_get(sh, OLD, NEW, 1001, &ops), 1);
	ps_mops_free(&ops);
	/* The refined plan: peeked, never waited for. */
	assert_int_equal(ps_share_final_peek(sh, OLD, NEW, 1000, &ops), 0);
	ps_share_final_offer(sh, OLD, NEW, 1000, &mine);
	assert_int_equal(ps_share_final_peek(sh, OLD, NEW, 1000, &ops), 1);
	assert_int_equal(ops.n, mine.n);
	ps_mops_free(&ops);
	ps_mops_free(&mine);
	ps_share_free(sh);
}

static void
test_data(void **state)
{
	struct ps_share *sh = ps_share_new(1u << 20);
	struct buf out = { 0 };
	uint64_t plans, chunks;
	uint8_t codec = 9;

	(void)state;
	assert_int_equal(ps_share_data_get(sh, NEW, 0, 100, &codec, &out), 0);
	ps_share_data_put(sh, NEW, 0, 100, 2, "zzz", 3);
	assert_int_equal(ps_share_data_get(sh, NEW, 0, 100, &codec, &out), 1);
	assert_int_equal(codec, 2);
	assert_int_equal(out.len, 3);
	assert_memory_equal(out.p, "zzz", 3);
	/* Incompressible: the codec alone. */
	assert_int_equal(ps_share_data_get(sh, NEW, 100, 100, &codec, &out),
	    0);
	ps_share_data_put(sh, NEW, 100, 100, 0, "", 0);
	assert_int_equal(ps_share_data_get(sh, NEW, 100, 100, &codec, &out),
	    1);
	assert_int_equal(codec, 0);
	assert_int_equal(out.len, 0);
	ps_share_stats(sh, &plans, &chunks);
	assert_int_equal(plans, 0);
	assert_int_equal(chunks, 2);
	buf_free(&out);
	ps_share_free(sh);
}

static void
test_budget(void **state)
{
	struct ps_share *sh = ps_share_new(4096);
	unsigned char big[3000];
	struct buf out = { 0 };
	uint8_t codec;
	uint64_t k, found = 0;

	(void)state;
	memset(big, 7, sizeof(big));
	/* Far more than the budget: the oldest go, the newest stay. */
	for (k = 0; k < 50; k++) {
		assert_int_equal(ps_share_data_get(sh, NEW, k * 100, 100,
		    &codec, &out), 0);
		ps_share_data_put(sh, NEW, k * 100, 100, 2, big, sizeof(big));
	}
	for (k = 0; k < 50; k++) {
		if (ps_share_data_get(sh, NEW, k * 100, 100, &codec, &out))
			found++;
		else	/* dropped: ours to make again; give it up */
			ps_share_data_put(sh, NEW, k * 100, 100, 0, NULL, 0);
	}
	assert_true(found >= 1);
	assert_true(found <= 2);
	assert_int_equal(ps_share_data_get(sh, NEW, 49 * 100, 100, &codec,
	    &out), 1);
	buf_free(&out);
	ps_share_free(sh);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_data),
		cmocka_unit_test(test_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
