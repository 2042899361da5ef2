/* Unit tests for the sync planner (src/syncplan.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncplan.h"

/* Add an entry: TYPE 'f' or 'd', content byte C (files), mtime T. */
static void
put(struct ps_manifest *m, const char *path, int type, uint64_t size,
    int c, int64_t t, uint32_t mode)
{
	struct ps_entry e;

	memset(&e, 0, sizeof(e));
	e.path = strdup(path);
	e.path_len = (uint32_t)strlen(path);
	e.type = (uint8_t)type;
	e.size = type == 'f' ? size : 0;
	e.mtime_sec = t;
	e.mode = mode;
	if (type == 'f') {
		memset(e.hash, c, sizeof(e.hash));
		e.block_shift = (uint8_t)ps_block_shift_for(e.size);
	}
	ps_manifest_put(m, &e);
}

static const struct ps_action *
find(const struct ps_syncplan *p, int kind, const char *path)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		const struct ps_entry *e = p->a[i].src ? p->a[i].src :
		    p->a[i].dst;

		if (p->a[i].kind == kind && strcmp(e->path, path) == 0)
			return &p->a[i];
	}
	return NULL;
}

static void
test_basic(void **state)
{
	struct ps_manifest src = { 0 }, dst = { 0 };
	struct ps_plan_opts o = { .delete = 1 };
	struct ps_syncplan p;
	char code[12];

	(void)state;
	put(&src, "a", 'd', 0, 0, 100, 0755);
	put(&src, "a/same", 'f', 10, 1, 100, 0644);
	put(&src, "a/changed", 'f', 10, 2, 200, 0644);
	put(&src, "a/touched", 'f', 10, 3, 300, 0644);	/* same content */
	put(&src, "a/perm", 'f', 10, 4, 100, 0600);
	put(&src, "new", 'f', 5, 5, 100, 0644);
	put(&src, "newdir", 'd', 0, 0, 100, 0755);
	put(&dst, "a", 'd', 0, 0, 100, 0755);
	put(&dst, "a/same", 'f', 10, 1, 100, 0644);
	put(&dst, "a/changed", 'f', 10, 9, 100, 0644);
	put(&dst, "a/touched", 'f', 10, 3, 100, 0644);
	put(&dst, "a/perm", 'f', 10, 4, 100, 0644);
	put(&dst, "old", 'd', 0, 0, 100, 0755);
	put(&dst, "old/x", 'f', 1, 7, 100, 0644);
	put(&dst, "old/y", 'f', 1, 7, 100, 0644);

	ps_syncplan_make(&src, &dst, &o, &p);
	assert_null(find(&p, PS_ACT_SEND, "a/same"));
	assert_null(find(&p, PS_ACT_META, "a/same"));
	assert_non_null(find(&p, PS_ACT_SEND, "a/changed"));
	assert_non_null(find(&p, PS_ACT_META, "a/touched"));
	assert_null(find(&p, PS_ACT_SEND, "a/touched"));
	assert_non_null(find(&p, PS_ACT_META, "a/perm"));
	assert_non_null(find(&p, PS_ACT_SEND, "new"));
	assert_non_null(find(&p, PS_ACT_MKDIR, "newdir"));
	assert_non_null(find(&p, PS_ACT_DELETE, "old/x"));
	assert_non_null(find(&p, PS_ACT_DELETE, "old"));
	assert_int_equal(p.ndelete_files, 2);
	assert_int_equal(p.nsend, 2);
	assert_int_equal(p.send_bytes, 15);
	/* Deletes come first, deepest first: old/y, old/x, old. */
	assert_int_equal(p.a[0].kind, PS_ACT_DELETE);
	assert_string_equal(p.a[2].dst->path, "old");
	/* a's contents changed: its time is set again, at the end. */
	assert_non_null(find(&p, PS_ACT_DIRMETA, "a"));
	assert_int_equal(p.a[p.n - 1].kind, PS_ACT_DIRMETA);

	ps_itemize(find(&p, PS_ACT_SEND, "new"), code);
	assert_string_equal(code, ">f+++++++++");
	ps_itemize(find(&p, PS_ACT_SEND, "a/changed"), code);
	assert_string_equal(code, ">fc.t......");
	ps_itemize(find(&p, PS_ACT_META, "a/perm"), code);
	assert_string_equal(code, ".f...p.....");
	ps_itemize(find(&p, PS_ACT_DELETE, "old"), code);
	assert_string_equal(code, "*deleting  ");
	ps_syncplan_free(&p);

	/* Without --delete nothing goes. */
	o.delete = 0;
	ps_syncplan_make(&src, &dst, &o, &p);
	assert_null(find(&p, PS_ACT_DELETE, "old"));
	assert_int_equal(p.ndelete_files, 0);
	ps_syncplan_free(&p);
	ps_manifest_free(&src);
	ps_manifest_free(&dst);
}

/*
 * A receiver whose filesystem keeps times coarser than the sender's has
 * them cut off (1 s, 2 s, 10 ms, 1 us, 100 ns): the same time, nothing
 * to set again. Anything else is a change of time.
 */
static void
test_time_granularity(void **state)
{
	static const struct {
		int64_t sec;
		uint32_t nsec;
		int same;
	} cases[] = {
		{ 1001, 123456789, 1 },	/* exact */
		{ 1001, 0, 1 },		/* 1 s */
		{ 1000, 0, 1 },		/* 2 s (FAT: even seconds) */
		{ 1001, 120000000, 1 },	/* 10 ms */
		{ 1001, 123456000, 1 },	/* 1 us */
		{ 1001, 123456700, 1 },	/* 100 ns */
		{ 1001, 123456788, 0 },
		{ 1001, 123456790, 0 },
		{ 1002, 0, 0 },		/* later */
		{ 999, 0, 0 },		/* odd: no 2 s filesystem keeps it */
		{ 998, 0, 0 },
		{ 1001, 100000000, 0 },
	};
	struct ps_plan_opts o = { .delete = 0 };
	struct ps_syncplan p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ps_manifest src = { 0 }, dst = { 0 };

		put(&src, "f", 'f', 10, 1, 1001, 0644);
		src.e[0].mtime_nsec = 123456789;
		put(&src, "z", 'd', 0, 0, 1001, 0755);
		src.e[1].mtime_nsec = 123456789;
		put(&dst, "f", 'f', 10, 1, cases[i].sec, 0644);
		dst.e[0].mtime_nsec = cases[i].nsec;
		put(&dst, "z", 'd', 0, 0, cases[i].sec, 0755);
		dst.e[1].mtime_nsec = cases[i].nsec;
		ps_syncplan_make(&src, &dst, &o, &p);
		if ((find(&p, PS_ACT_META, "f") == NULL) != cases[i].same ||
		    (find(&p, PS_ACT_DIRMETA, "z") == NULL) != cases[i].same)
			fail_msg("case %zu: %lld.%09u", i,
			    (long long)cases[i].sec, cases[i].nsec);
		ps_syncplan_free(&p);
		ps_manifest_free(&src);
		ps_manifest_free(&dst);
	}
}

static void
test_checksum_and_conflicts(void **state)
{
	struct ps_manifest src = { 0 }, dst = { 0 };
	struct ps_plan_opts o = { .delete = 0 };
	struct ps_syncplan p;

	(void)state;
	/*
	 * Same size and time, other content (changed behind our back on
	 * the server): sent, with or without --checksum.
	 */
	put(&src, "f", 'f', 10, 1, 100, 0644);
	put(&dst, "f", 'f', 10, 2, 100, 0644);
	/* A directory where the console has a file, and the reverse. */
	put(&src, "x", 'f', 3, 3, 100, 0644);
	put(&dst, "x", 'd', 0, 0, 100, 0755);
	put(&dst, "x/inner", 'f', 1, 1, 100, 0644);
	put(&src, "y", 'd', 0, 0, 100, 0755);
	put(&src, "y/z", 'd', 0, 0, 100, 0755);
	put(&src, "y/z/f", 'f', 4, 4, 100, 0644);
	put(&src, "ya", 'f', 2, 2, 100, 0644);
	put(&dst, "y", 'f', 3, 3, 100, 0644);

	ps_syncplan_make(&src, &dst, &o, &p);
	assert_non_null(find(&p, PS_ACT_SEND, "f"));
	assert_int_equal(p.nconflict, 2);
	assert_int_equal(p.nconflict_file, 1);
	assert_null(find(&p, PS_ACT_SEND, "x"));
	/* Nothing inside y can go while a file is there; beside it can. */
	assert_null(find(&p, PS_ACT_MKDIR, "y/z"));
	assert_null(find(&p, PS_ACT_SEND, "y/z/f"));
	assert_non_null(find(&p, PS_ACT_SEND, "ya"));
	ps_syncplan_free(&p);

	o.delete = 1;
	ps_syncplan_make(&src, &dst, &o, &p);
	assert_non_null(find(&p, PS_ACT_SEND, "f"));
	assert_int_equal(p.nconflict, 0);
	assert_non_null(find(&p, PS_ACT_DELETE, "x/inner"));
	assert_non_null(find(&p, PS_ACT_DELETE, "x"));
	assert_non_null(find(&p, PS_ACT_SEND, "x"));
	assert_non_null(find(&p, PS_ACT_DELETE, "y"));
	assert_non_null(find(&p, PS_ACT_MKDIR, "y"));
	assert_non_null(find(&p, PS_ACT_SEND, "y/z/f"));
	ps_syncplan_free(&p);
	ps_manifest_free(&src);
	ps_manifest_free(&dst);
}

/* What the console could not read is neither sent nor deleted. */
static void
test_unreadable(void **state)
{
	struct ps_manifest src = { 0 }, dst = { 0 };
	struct ps_plan_opts o = { .delete = 1 };
	struct ps_syncplan p;

	(void)state;
	put(&src, "d", 'd', 0, 0, 100, 0755);
	put(&src, "ok", 'f', 1, 1, 100, 0644);
	put(&dst, "d", 'd', 0, 0, 100, 0755);
	put(&dst, "d/in", 'f', 1, 2, 100, 0644);
	put(&dst, "gone", 'f', 1, 3, 100, 0644);
	put(&dst, "secret", 'f', 1, 4, 100, 0644);
	put(&dst, "x", 'd', 0, 0, 100, 0755);
	put(&dst, "x/y", 'f', 1, 5, 100, 0644);
	src.unreadable = xcalloc(2, sizeof(char *));
	src.unreadable[0] = xstrdup("d");	/* sorted */
	src.unreadable[1] = xstrdup("secret");
	src.nunreadable = 2;
	assert_true(ps_manifest_unknown(&src, "d/in", 4));
	assert_true(ps_manifest_unknown(&src, "secret", 6));
	assert_false(ps_manifest_unknown(&src, "secretx", 7));
	assert_false(ps_manifest_unknown(&src, "dd", 2));

	ps_syncplan_make(&src, &dst, &o, &p);
	assert_null(find(&p, PS_ACT_DELETE, "d/in"));
	assert_null(find(&p, PS_ACT_DELETE, "secret"));
	assert_non_null(find(&p, PS_ACT_DELETE, "gone"));
	assert_non_null(find(&p, PS_ACT_DELETE, "x/y"));
	assert_non_null(find(&p, PS_ACT_SEND, "ok"));
	assert_int_equal(p.ndelete_files, 2);
	ps_syncplan_free(&p);
	ps_manifest_free(&src);
	ps_manifest_free(&dst);
}

static void
test_empty(void **state)
{
	struct ps_manifest src = { 0 }, dst = { 0 };
	struct ps_plan_opts o = { .delete = 1 };
	struct ps_syncplan p;

	(void)state;
	ps_syncplan_make(&src, &dst, &o, &p);
	assert_int_equal(p.n, 0);
	ps_syncplan_free(&p);
}

/* A memory reader for ps_mfin_new. */
struct mem {
	const unsigned char *p;
	size_t len, off;
};

static ssize_t
mem_read(void *arg, void *buf, size_t n)
{
	struct mem *m = arg;

	if (n > 7)
		n = 7;		/* small pieces: entries straddle reads */
	if (n > m->len - m->off)
		n = m->len - m->off;
	memcpy(buf, m->p + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static int
count_kind(const struct ps_syncplan *p, int kind, const char *path)
{
	size_t i;
	int n = 0;

	for (i = 0; i < p->n; i++) {
		const struct ps_entry *e = p->a[i].src ? p->a[i].src :
		    p->a[i].dst;

		n += p->a[i].kind == kind && strcmp(e->path, path) == 0;
	}
	return n;
}

/*
 * From two streams, in small reads: the plan holds its own copies (the
 * manifests are gone before it is looked at), and each directory gets
 * its DIRMETA once, when what is inside it changed.
 */
static void
test_stream(void **state)
{
	struct ps_manifest src = { 0 }, dst = { 0 };
	struct ps_plan_opts o = { .delete = 1 };
	struct ps_syncplan p;
	struct buf bs = { 0 }, bd = { 0 };
	struct mem ms, md;
	struct ps_mfin *is, *id;
	struct ps_eiter a, b;

	(void)state;
	put(&src, "a", 'd', 0, 0, 100, 0755);
	put(&src, "a/b", 'd', 0, 0, 100, 0755);
	put(&src, "a/b/c", 'f', 4, 1, 100, 0644);	/* new */
	put(&src, "a/b/d", 'd', 0, 0, 100, 0755);
	put(&src, "a/b/d/e", 'f', 4, 2, 100, 0644);
	put(&src, "a/z", 'f', 4, 3, 100, 0644);
	put(&src, "q", 'd', 0, 0, 100, 0755);
	put(&src, "q/r", 'f', 4, 4, 100, 0644);
	put(&dst, "a", 'd', 0, 0, 100, 0755);
	put(&dst, "a/b", 'd', 0, 0, 100, 0755);
	put(&dst, "a/b/d", 'd', 0, 0, 100, 0755);
	put(&dst, "a/b/d/e", 'f', 4, 2, 100, 0644);
	put(&dst, "a/b/d/old", 'f', 4, 9, 100, 0644);	/* goes */
	put(&dst, "a/b!", 'd', 0, 0, 100, 0755); /* goes, with its file */
	put(&dst, "a/b!/x", 'f', 4, 9, 100, 0644);
	put(&dst, "a/z", 'f', 4, 3, 100, 0644);
	put(&dst, "q", 'd', 0, 0, 100, 0755);
	put(&dst, "q/r", 'f', 4, 4, 100, 0644);
	ps_manifest_encode(&src, PS_ENC_WIRE, &bs);
	ps_manifest_encode(&dst, PS_ENC_WIRE, &bd);
	ps_manifest_free(&src);
	ps_manifest_free(&dst);
	ms.p = bs.p;
	ms.len = bs.len;
	ms.off = 0;
	md.p = bd.p;
	md.len = bd.len;
	md.off = 0;
	is = ps_mfin_new(mem_read, &ms);
	id = ps_mfin_new(mem_read, &md);
	ps_eiter_mfin(&a, is);
	ps_eiter_mfin(&b, id);
	ps_syncplan_stream(&a, NULL, &b, &o, &p);
	assert_false(ps_mfin_failed(is));
	assert_false(ps_mfin_failed(id));
	ps_mfin_free(is);
	ps_mfin_free(id);
	buf_free(&bs);
	buf_free(&bd);

	assert_int_equal(count_kind(&p, PS_ACT_SEND, "a/b/c"), 1);
	assert_int_equal(count_kind(&p, PS_ACT_DELETE, "a/b/d/old"), 1);
	assert_int_equal(count_kind(&p, PS_ACT_DELETE, "a/b!/x"), 1);
	assert_int_equal(count_kind(&p, PS_ACT_DELETE, "a/b!"), 1);
	assert_int_equal(p.ndelete_files, 2);
	/* Changed inside: a/b (c), a/b/d (old), a (b! went). */
	assert_int_equal(count_kind(&p, PS_ACT_DIRMETA, "a/b"), 1);
	assert_int_equal(count_kind(&p, PS_ACT_DIRMETA, "a/b/d"), 1);
	assert_int_equal(count_kind(&p, PS_ACT_DIRMETA, "a"), 1);
	assert_int_equal(count_kind(&p, PS_ACT_DIRMETA, "q"), 0);
	assert_int_equal(p.n, 7);
	/* Directories last, deepest first. */
	assert_string_equal(p.a[p.n - 1].src->path, "a");
	assert_string_equal(p.a[p.n - 3].src->path, "a/b/d");
	ps_syncplan_free(&p);
}

/* The early hook: what it takes, and when. */
struct early_log {
	char seen[16][16];
	int n;
};

static int
take_early(void *arg, const struct ps_action *a)
{
	struct early_log *l = arg;
	const struct ps_entry *e = a->src;

	assert_true(a->kind == PS_ACT_MKDIR || a->kind == PS_ACT_SEND);
	assert_true(l->n < 16);
	snprintf(l->seen[l->n++], sizeof(l->seen[0]), "%s", e->path);
	/* "big" changed: not taken, the plan keeps it. */
	return strcmp(e->path, "big") != 0;
}

static void
test_early(void **state)
{
	struct ps_manifest src = { 0 }, dst = { 0 };
	struct early_log l = { 0 };
	struct ps_plan_opts o = { .delete = 1, .early = take_early,
	    .early_arg = &l };
	struct ps_syncplan p;
	const struct ps_action *a;
	int i;

	(void)state;
	put(&src, "big", 'f', 10, 1, 100, 0644);
	put(&src, "c", 'f', 10, 2, 100, 0644);
	put(&src, "conf", 'd', 0, 0, 100, 0755);
	put(&src, "conf/in", 'f', 10, 3, 100, 0644);
	put(&src, "meta", 'f', 10, 4, 300, 0644);
	put(&src, "new", 'd', 0, 0, 100, 0755);
	put(&src, "new/a", 'f', 10, 5, 100, 0644);
	put(&src, "newf", 'f', 10, 6, 100, 0644);
	put(&src, "same", 'f', 10, 7, 100, 0644);
	put(&dst, "big", 'f', 10, 9, 100, 0644);
	put(&dst, "c", 'f', 10, 9, 100, 0644);
	put(&dst, "conf", 'f', 10, 3, 100, 0644);	/* a file: conflict */
	put(&dst, "gone", 'f', 10, 8, 100, 0644);
	put(&dst, "meta", 'f', 10, 4, 100, 0644);
	put(&dst, "same", 'f', 10, 7, 100, 0644);
	ps_syncplan_make(&src, &dst, &o, &p);
	/* Offered in path order: the changed and new files, the new dir. */
	assert_int_equal(l.n, 5);
	assert_string_equal(l.seen[0], "big");
	assert_string_equal(l.seen[1], "c");
	assert_string_equal(l.seen[2], "new");
	assert_string_equal(l.seen[3], "new/a");
	assert_string_equal(l.seen[4], "newf");
	/* Not the directory that replaces a file, nor what is inside it. */
	assert_non_null(a = find(&p, PS_ACT_MKDIR, "conf"));
	assert_false(a->early);
	assert_non_null(a = find(&p, PS_ACT_SEND, "conf/in"));
	assert_false(a->early);
	assert_non_null(a = find(&p, PS_ACT_SEND, "big"));
	assert_false(a->early);
	for (i = 1; i < 5; i++) {
		int kind = strcmp(l.seen[i], "new") == 0 ? PS_ACT_MKDIR :
		    PS_ACT_SEND;

		assert_non_null(a = find(&p, kind, l.seen[i]));
		assert_true(a->early);
	}
	/* Deletions and metadata are never early; all stay in the plan. */
	assert_non_null(a = find(&p, PS_ACT_DELETE, "gone"));
	assert_false(a->early);
	assert_non_null(a = find(&p, PS_ACT_META, "meta"));
	assert_false(a->early);
	assert_int_equal(p.nsend, 5);
	ps_syncplan_free(&p);
	ps_manifest_free(&src);
	ps_manifest_free(&dst);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_time_granularity),
		cmocka_unit_test(test_checksum_and_conflicts),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_early),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
