/* Unit tests for the configuration parser (src/conf.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "ps.h"

static char path[64];

static int
load_text(const char *text, struct ps_conf *c)
{
	FILE *fp;
	int fd;

	snprintf(path, sizeof(path), "/tmp/ps-conf-test.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	int rc = ps_conf_load(path, c);
	unlink(path);
	return rc;
}

static void
test_full(void **state)
{
	struct ps_conf c;
	const struct ps_component *p;

	(void)state;
	assert_int_equal(load_text(
	    "[console]\n"
	    "name = console-a\n"
	    "database = /tmp/x.db   ; shared\n"
	    "jobs = 8\n"
	    "\n"
	    "; a comment\n"
	    "[component patches]\n"
	    "path = /srv/console/patches\n"
	    "dest = patches\n"
	    "source = mirror\n"
	    "[component engines]\n"
	    "path = /srv/console/data/engines\n", &c), PS_OK);
	assert_string_equal(c.console_name, "console-a");
	assert_string_equal(c.database, "/tmp/x.db");
	assert_int_equal(c.jobs, 8);
	assert_int_equal(c.ncomp, 2);
	p = ps_conf_component(&c, "patches");
	assert_non_null(p);
	assert_string_equal(p->path, "/srv/console/patches");
	assert_string_equal(p->source, "mirror");
	p = ps_conf_component(&c, "engines");
	assert_non_null(p);
	assert_string_equal(p->dest, "engines");	/* default: the name */
	assert_null(p->source);
	assert_null(ps_conf_component(&c, "definitions"));
	ps_conf_free(&c);
}

static void
test_defaults(void **state)
{
	struct ps_conf c;

	(void)state;
	assert_int_equal(load_text("[component a]\npath = /a\n", &c), PS_OK);
	assert_non_null(c.console_name);
	assert_string_equal(c.database, PS_DB_DEFAULT);
	assert_int_equal(c.jobs, PS_JOBS_DEFAULT);
	ps_conf_free(&c);
}

static void
test_errors(void **state)
{
	static const char *bad[] = {
		"[console]\nbogus = 1\n",		/* unknown key */
		"[bogus]\nx = 1\n",			/* unknown section */
		"[bogus]\n",				/* empty unknown */
		"[component patches]\ndest = p\n",		/* no path */
		"[component patches]\n",		/* empty component */
		"[component Patches]\npath = /p\n",		/* bad name */
		"[component a b]\npath = /p\n",			/* bad name */
		"[component ]\npath = /p\n",			/* empty name */
		"[console]\njobs = 0\n",			/* range */
		"[console]\njobs = many\n",		/* not a number */
		"[console]\njobs = 65\n",
		"[console]\nthis line has no equals\n",		/* syntax */
		"name = x\n",				/* outside section */
		"[component a]\npath = /a\npath = /b\n",	/* duplicate */
		"[component a]\npath = /a\n[component a]\npath = /b\n",
		"[component a]\npath = /a\ndest = ../x\n", /* unsafe dest */
		"[component a]\npath = /a\ndest = /abs\n",
		"[component a]\npath = /a\ndest = .patchsync\n", /* ours */
		"[component a]\npath = /a\ndest = .patchsync/a\n",
		"[component a]\npath = /a\ndest = d\n"	/* the same */
		"[component b]\npath = /b\ndest = d\n",
		"[component a]\npath = /a\ndest = d\n"	/* nested */
		"[component b]\npath = /b\ndest = d/b\n",
		"[component a]\npath = /a\ndest = d/a\n"	/* around */
		"[component b]\npath = /b\ndest = d\n",
		"[component a]\npath = /a\n"		/* a's name */
		"[component b]\npath = /b\ndest = a/x\n",
		"[console]\nname =\n",			/* empty value */
		"[console\nname = x\n",			/* broken header */
		NULL
	};
	struct ps_conf c;
	size_t i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		if (load_text(bad[i], &c) != PS_EUSAGE)
			fail_msg("accepted bad configuration %zu: %s", i,
			    bad[i]);
		assert_int_equal(c.ncomp, 0);	/* nothing half-kept */
	}
}

/* Destinations beside each other, also with a common beginning, are fine. */
static void
test_dests_beside(void **state)
{
	struct ps_conf c;

	(void)state;
	assert_int_equal(load_text("[component a]\npath = /a\ndest = d\n"
	    "[component b]\npath = /b\ndest = db\n"
	    "[component c]\npath = /c\ndest = x/a\n"
	    "[component e]\npath = /e\ndest = x/b\n", &c), PS_OK);
	assert_int_equal(c.ncomp, 4);
	ps_conf_free(&c);
}

/*
 * Relative paths come from the configuration file's directory, not from
 * where the command runs; a PostgreSQL URL is left as it is.
 */
static void
test_relative_paths(void **state)
{
	struct ps_conf c;
	char *dir, want[PATH_MAX + 32];

	(void)state;
	assert_int_equal(load_text("[console]\ndatabase = st/state.db\n"
	    "[component a]\npath = con/a\n"
	    "[component b]\npath = /abs/b\n", &c), PS_OK);
	dir = realpath("/tmp", NULL);
	assert_non_null(dir);
	snprintf(want, sizeof(want), "%s/con/a", dir);
	assert_string_equal(ps_conf_component(&c, "a")->path, want);
	assert_string_equal(ps_conf_component(&c, "b")->path, "/abs/b");
	snprintf(want, sizeof(want), "%s/st/state.db", dir);
	assert_string_equal(c.database, want);
	ps_conf_free(&c);
	free(dir);
	assert_int_equal(load_text("[console]\ndatabase = "
	    "postgresql://ps@db/ps\n", &c), PS_OK);
	assert_string_equal(c.database, "postgresql://ps@db/ps");
	ps_conf_free(&c);
}

static void
test_missing_file(void **state)
{
	struct ps_conf c;

	(void)state;
	assert_int_equal(ps_conf_load("/nonexistent/patchsync.conf", &c),
	    PS_EUSAGE);
}

static void
test_names(void **state)
{
	(void)state;
	assert_true(ps_conf_name_ok("patches"));
	assert_true(ps_conf_name_ok("a-b_c9"));
	assert_false(ps_conf_name_ok(""));
	assert_false(ps_conf_name_ok("A"));
	assert_false(ps_conf_name_ok("a.b"));
	assert_false(ps_conf_name_ok("a/b"));
	assert_false(ps_conf_name_ok("a b"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_dests_beside),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_names),
	};

	ps_quiet = 0;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
