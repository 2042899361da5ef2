/* Unit tests for what --version prints (src/version.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "version.h"

static void
test_dotted(void **state)
{
	char b[24], tiny[4];

	(void)state;
	assert_string_equal(ps_version_dotted(b, sizeof(b), 801, 100, 3),
	    "0.8.1");
	assert_string_equal(ps_version_dotted(b, sizeof(b), 10504, 100, 3),
	    "1.5.4");
	assert_string_equal(ps_version_dotted(b, sizeof(b), 3006002, 1000, 3),
	    "3.6.2");
	/* libpq: major * 10000 + minor. */
	assert_string_equal(ps_version_dotted(b, sizeof(b), 150018, 10000, 2),
	    "15.18");
	assert_string_equal(ps_version_dotted(b, sizeof(b), 0, 100, 3),
	    "0.0.0");
	assert_string_equal(ps_version_dotted(b, sizeof(b), 42, 100, 1), "42");
	/* Too small a buffer: cut short, still a string. */
	ps_version_dotted(tiny, sizeof(tiny), 3006002, 1000, 3);
	assert_int_equal(strlen(tiny), 3);
	assert_memory_equal(tiny, "3.6", 3);
}

/* LIBS as ps_version_list writes them, in a malloc'd string. */
static char *
listed(const struct ps_libversion *libs, size_t n, size_t width)
{
	char *s = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&s, &len);

	assert_non_null(fp);
	ps_version_list(fp, libs, n, width);
	assert_int_equal(fclose(fp), 0);
	return s;
}

static void
test_list_entries(void **state)
{
	const struct ps_libversion libs[] = {
		{ "same", "1.2.3", "1.2.3" },
		{ "newer", "1.5.4", "1.5.5" },
		{ "built", "1.19", NULL },
		{ "run", NULL, "2.3.2" },
		{ "none", NULL, NULL },
	};
	char *s;

	(void)state;
	s = listed(libs, 5, 200);
	assert_string_equal(s, "  same 1.2.3, newer 1.5.5 (built with 1.5.4), "
	    "built 1.19, run 2.3.2, none (version unknown)\n");
	free(s);
	s = listed(libs, 0, 78);
	assert_string_equal(s, "");
	free(s);
}

static void
test_list_wraps(void **state)
{
	struct ps_libversion libs[12];
	char *s, *line, *nl;
	size_t i, n = 0;

	(void)state;
	for (i = 0; i < 12; i++) {
		libs[i].name = "library";
		libs[i].built = "10.20.30";
		libs[i].run = "10.20.30";
	}
	s = listed(libs, 12, 40);
	for (line = s; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		assert_true(nl - line <= 40);
		assert_memory_equal(line, "  library ", 10);
		n++;
	}
	assert_string_equal(line, "");
	/* Two entries of 18 columns per line of 40. */
	assert_int_equal(n, 6);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dotted),
		cmocka_unit_test(test_list_entries),
		cmocka_unit_test(test_list_wraps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
