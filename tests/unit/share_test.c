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

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
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

/* The first op's length of the plan of round KEY made already, or 0. */
static uint64_t
peeked(struct ps_share *sh, uint64_t key)
{
	struct ps_mops ops;
	uint64_t len;

	if (!ps_share_round_peek(sh, OLD, NEW, 1000, key, &ops))
		return 0;
	len = ops.v[0].len;
	ps_mops_free(&ops);
	return len;
}

/* Refinement rounds: their own entries, by key, beside the first plan. */
static void
test_rounds(void **state)
{
	struct ps_share *sh = ps_share_new(1u << 20);
	struct ps_mops first, r1, ops;

	(void)state;
	plan_of(&first, 500);
	plan_of(&r1, 700);
	assert_int_equal(ps_share_plan_get(sh, OLD, NEW, 1000, &ops), 0);
	ps_share_plan_put(sh, OLD, NEW, 1000, &first);
	/* Round key K: not the first plan; made once, then taken. */
	assert_int_equal(ps_share_round_get(sh, OLD, NEW, 1000, 0x18101,
	    &ops), 0);
	ps_share_round_put(sh, OLD, NEW, 1000, 0x18101, &r1);
	assert_int_equal(ps_share_round_get(sh, OLD, NEW, 1000, 0x18101,
	    &ops), 1);
	assert_int_equal(ops.v[0].len, 700);
	ps_mops_free(&ops);
	/* Another round key, or given up: the next asker makes it. */
	assert_int_equal(ps_share_round_get(sh, OLD, NEW, 1000, 0x28101,
	    &ops), 0);
	ps_share_round_put(sh, OLD, NEW, 1000, 0x28101, NULL);
	assert_int_equal(ps_share_round_get(sh, OLD, NEW, 1000, 0x28101,
	    &ops), 0);
	ps_share_round_put(sh, OLD, NEW, 1000, 0x28101, NULL);
	/* A peek neither claims nor waits. */
	assert_int_equal(peeked(sh, 0x38101), 0);	/* unknown */
	assert_int_equal(ps_share_round_get(sh, OLD, NEW, 1000, 0x38101,
	    &ops), 0);
	assert_int_equal(peeked(sh, 0x38101), 0);	/* being made */
	ps_share_round_put(sh, OLD, NEW, 1000, 0x38101, &r1);
	assert_int_equal(peeked(sh, 0x38101), 700);
	assert_int_equal(peeked(sh, 0x28101), 0);	/* given up */
	assert_int_equal(peeked(sh, 0), 500);		/* the first plan */
	/* The first plan is still the first plan. */
	assert_int_equal(ps_share_plan_get(sh, OLD, NEW, 1000, &ops), 1);
	assert_int_equal(ops.v[0].len, 500);
	ps_mops_free(&ops);
	ps_mops_free(&first);
	ps_mops_free(&r1);
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

/* Is FD open? */
static int
is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static void
test_fds(void **state)
{
	struct ps_share *sh = ps_share_new(1u << 20);
	char dir[] = "/tmp/share_test.XXXXXX", name[64], path[128];
	struct stat st, st2;
	int dfd, a, b, c, fds[80], i;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (i = 0; i < 80; i++) {
		snprintf(path, sizeof(path), "%s/f%d", dir, i);
		fp = fopen(path, "w");
		assert_non_null(fp);
		fprintf(fp, "file %d\n", i);
		fclose(fp);
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	/* Two sessions sending one file share one descriptor. */
	a = ps_share_fd_get(sh, dfd, "f1", &st);
	b = ps_share_fd_get(sh, dfd, "f1", &st2);
	assert_true(a >= 0);
	assert_int_equal(a, b);
	assert_int_equal(st.st_ino, st2.st_ino);
	assert_int_equal(st.st_size, 7);
	c = ps_share_fd_get(sh, dfd, "f2", &st);
	assert_true(c >= 0 && c != a);
	ps_share_fd_put(sh, a);
	ps_share_fd_put(sh, b);
	assert_true(is_open(a));	/* kept for the next session */
	/* Not there, or escaping the directory: -1, nothing kept. */
	errno = 0;
	assert_int_equal(ps_share_fd_get(sh, dfd, "nope", &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(ps_share_fd_get(sh, dfd, "../etc/passwd", &st), -1);
	/*
	 * More files at once than it keeps: the rest are the caller's own,
	 * closed by the put; those kept stay within the bound.
	 */
	for (i = 0; i < 80; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fds[i] = ps_share_fd_get(sh, dfd, name, &st);
		assert_true(fds[i] >= 0);
	}
	for (i = 0; i < 80; i++)
		ps_share_fd_put(sh, fds[i]);
	ps_share_fd_put(sh, c);
	for (i = 0, a = 0; i < 80; i++)
		a += is_open(fds[i]);
	assert_true(a <= 64);
	/* Forgotten (found changed): the next get opens it anew. */
	a = ps_share_fd_get(sh, dfd, "f3", &st);
	ps_share_fd_forget(sh, a);
	b = ps_share_fd_get(sh, dfd, "f3", &st);
	assert_true(b != a);
	ps_share_fd_put(sh, a);
	ps_share_fd_put(sh, b);
	ps_share_free(sh);
	for (i = 0; i < 80; i++) {
		snprintf(path, sizeof(path), "%s/f%d", dir, i);
		unlink(path);
	}
	close(dfd);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_rounds),
		cmocka_unit_test(test_data),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_fds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
