/* Unit tests for cron expressions (src/cron.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cron.h"

static void
set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

/* UTC instant of Y-M-D H:M. */
static time_t
utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return timegm(&tm);
}

static struct ps_cron
must_parse(const char *expr)
{
	struct ps_cron c;
	char err[256];

	if (ps_cron_parse(expr, &c, err, sizeof(err)) != 0)
		fail_msg("'%s' refused: %s", expr, err);
	return c;
}

static void
check_error(const char *expr, const char *want)
{
	struct ps_cron c;
	char err[256];

	if (ps_cron_parse(expr, &c, err, sizeof(err)) == 0)
		fail_msg("'%s' accepted", expr);
	if (strstr(err, want) == NULL)
		fail_msg("'%s': error '%s' lacks '%s'", expr, err, want);
}

/* Next after the UTC time A must be the UTC time WANT (-1: none). */
static void
check_next(const char *expr, time_t a, time_t want)
{
	struct ps_cron c = must_parse(expr);
	time_t got = ps_cron_next(&c, a);

	if (got != want) {
		char g[64] = "-1", w[64] = "-1";
		struct tm tm;

		if (got != -1)
			strftime(g, sizeof(g), "%F %T", gmtime_r(&got, &tm));
		if (want != -1)
			strftime(w, sizeof(w), "%F %T", gmtime_r(&want, &tm));
		fail_msg("'%s': next got %s UTC, want %s UTC", expr, g, w);
	}
}

static void
test_parse_constructs(void **state)
{
	struct ps_cron c;
	uint64_t want;
	int i;

	(void)state;
	c = must_parse("* * * * *");
	assert_true(c.minute == (((uint64_t)1 << 60) - 1));
	assert_int_equal(c.hour, (1u << 24) - 1);
	assert_int_equal(c.dom, 0xfffffffeu);
	assert_int_equal(c.month, 0x1ffe);
	assert_int_equal(c.dow, 0x7f);
	assert_true(c.dom_star && c.dow_star);

	c = must_parse("1,5,10 1-5 */10 */3 *");
	assert_true(c.minute == ((1u << 1) | (1u << 5) | (1u << 10)));
	assert_int_equal(c.hour, 0x3e);
	assert_int_equal(c.dom,
	    (1u << 1) | (1u << 11) | (1u << 21) | (1u << 31));
	assert_int_equal(c.month,
	    (1u << 1) | (1u << 4) | (1u << 7) | (1u << 10));

	c = must_parse("10-50/5 5/10 * * *");
	for (i = 0, want = 0; i <= 8; i++)
		want |= (uint64_t)1 << (10 + 5 * i);	/* 10,15,...,50 */
	assert_true(c.minute == want);
	assert_int_equal(c.hour, (1u << 5) | (1u << 15)); /* 5, 15 (not 25) */

	c = must_parse("0 0 * JAN,jul-Sep mon-FRI");
	assert_int_equal(c.month,
	    (1u << 1) | (1u << 7) | (1u << 8) | (1u << 9));
	assert_int_equal(c.dow, 0x3e);
	assert_true(c.dom_star);
	assert_false(c.dow_star);

	/* 7 and 0 are both Sunday. */
	c = must_parse("0 0 * * 7");
	assert_int_equal(c.dow, 1);
	c = must_parse("0 0 * * 5-7");
	assert_int_equal(c.dow, (1u << 5) | (1u << 6) | 1u);
	c = must_parse("0 0 * * sun");
	assert_int_equal(c.dow, 1);
	assert_false(c.dow_star);

	/* Blanks around and between fields; tabs. */
	c = must_parse("  0\t12  *  *   * ");
	assert_int_equal(c.hour, 1u << 12);
}

static void
test_macros(void **state)
{
	struct ps_cron a, b;

	(void)state;
	a = must_parse("@hourly");
	b = must_parse("0 * * * *");
	assert_memory_equal(&a, &b, sizeof(a));
	a = must_parse("@daily");
	b = must_parse("@MIDNIGHT");
	assert_memory_equal(&a, &b, sizeof(a));
	b = must_parse("0 0 * * *");
	assert_memory_equal(&a, &b, sizeof(a));
	a = must_parse("@weekly");
	b = must_parse("0 0 * * 0");
	assert_memory_equal(&a, &b, sizeof(a));
	a = must_parse("@monthly");
	b = must_parse("0 0 1 * *");
	assert_memory_equal(&a, &b, sizeof(a));
	a = must_parse("@yearly");
	b = must_parse("@annually");
	assert_memory_equal(&a, &b, sizeof(a));
	b = must_parse("0 0 1 1 *");
	assert_memory_equal(&a, &b, sizeof(a));
	check_error("@reboot", "unknown macro '@reboot'");
	check_error("@daily 5", "unknown macro");
}

static void
test_errors(void **state)
{
	struct ps_cron c;
	char big[PS_CRON_MAX + 10];

	(void)state;
	check_error("* * * *", "expected 5 fields, got 4");
	check_error("* * * * * *", "expected 5 fields, got 6");
	check_error("", "expected 5 fields, got 0");
	check_error("60 * * * *", "minute field: 60 is out of range 0-59");
	check_error("0 24 * * *", "hour field: 24 is out of range 0-23");
	check_error("0 0 0 * *", "day-of-month field: 0 is out of range 1-31");
	check_error("0 0 32 * *", "day-of-month field: 32 is out of range");
	check_error("0 0 * 13 *", "month field: 13 is out of range 1-12");
	check_error("0 0 * * 8", "day-of-week field: 8 is out of range 0-7");
	check_error("0 0 * * funday",
	    "day-of-week field: 'funday' is not a number or name");
	check_error("0 0 * foo *",
	    "month field: 'foo' is not a number or name");
	check_error("x * * * *", "minute field: 'x' is not a number");
	check_error("*/0 * * * *", "minute field: step 0 is not allowed");
	check_error("* */x * * *", "hour field: step 'x' is not a number");
	check_error("* 5-1 * * *", "hour field: reversed range '5-1'");
	check_error("0 0 * * fri-mon", "day-of-week field: reversed range");
	check_error("1,,2 * * * *", "minute field: empty list item");
	check_error("1, * * * *", "minute field: empty list item");
	check_error("* * * * 1-", "day-of-week field: missing number");
	check_error("5x * * * *", "minute field: '5x' is not a number");
	check_error("99999999999999999999 * * * *", "minute field:");
	check_error("1-2-3 * * * *", "minute field: unexpected '-'");
	check_error("0 0 30 2 *", "would never run");
	check_error("0 0 31 4,6,9,11 *", "would never run");
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	check_error(big, "longer than");
	/* Feb 29 exists; both-restricted days always fire (OR rule). */
	c = must_parse("0 0 29 2 *");
	c = must_parse("0 0 30 2 mon");
	(void)c;
	/* A NULL-safe empty error buffer. */
	assert_int_equal(ps_cron_parse("bad", &c, NULL, 0), -1);
}

static void
test_next_utc(void **state)
{
	time_t t0 = utc(2024, 3, 15, 10, 7);	/* a Friday */

	(void)state;
	set_tz("UTC");
	check_next("* * * * *", t0, utc(2024, 3, 15, 10, 8));
	/* Strictly after: seconds into a matching minute go to the next one. */
	check_next("* * * * *", t0 + 30, utc(2024, 3, 15, 10, 8));
	check_next("7 10 * * *", t0, utc(2024, 3, 16, 10, 7));
	check_next("7 10 * * *", t0 - 1, t0);
	check_next("*/15 * * * *", t0, utc(2024, 3, 15, 10, 15));
	check_next("0 0 * * *", t0, utc(2024, 3, 16, 0, 0));
	check_next("@hourly", t0, utc(2024, 3, 15, 11, 0));
	check_next("@weekly", t0, utc(2024, 3, 17, 0, 0));	/* Sunday */
	check_next("@monthly", t0, utc(2024, 4, 1, 0, 0));
	check_next("@yearly", t0, utc(2025, 1, 1, 0, 0));
	check_next("30 2 * * mon-fri", utc(2024, 3, 15, 3, 0),
	    utc(2024, 3, 18, 2, 30));
	/* Month end and year end roll over. */
	check_next("0 0 31 * *", utc(2024, 4, 1, 0, 0), utc(2024, 5, 31, 0, 0));
	check_next("59 23 31 12 *", utc(2024, 12, 31, 23, 59),
	    utc(2025, 12, 31, 23, 59));
	/* Feb 29: the next leap year; across the non-leap 2100. */
	check_next("0 0 29 2 *", utc(2024, 3, 1, 0, 0), utc(2028, 2, 29, 0, 0));
	check_next("0 0 29 2 *", utc(2097, 1, 1, 0, 0), utc(2104, 2, 29, 0, 0));
	/* AND rule with '*' day-of-week step: Feb 29 that is a Sunday. */
	check_next("0 0 29 2 */7", utc(2024, 3, 1, 0, 0), utc(2032, 2, 29, 0,
	    0));
}

static void
test_day_rule(void **state)
{
	(void)state;
	set_tz("UTC");
	/*
	 * Both restricted: the 13th OR any Friday. From Mon 2024-09-02 the
	 * next Friday (6th) comes before the 13th; from Sat 7th, Fri 13th.
	 */
	check_next("0 12 13 * fri", utc(2024, 9, 2, 0, 0), utc(2024, 9, 6, 12,
	    0));
	check_next("0 12 13 * fri", utc(2024, 9, 7, 0, 0), utc(2024, 9, 13, 12,
	    0));
	check_next("0 12 13 * fri", utc(2024, 9, 13, 13, 0),
	    utc(2024, 9, 20, 12, 0));
	/* The 1st of any month OR Monday: Mon 2024-10-07 before Nov 1. */
	check_next("0 0 1 * mon", utc(2024, 10, 2, 0, 0), utc(2024, 10, 7, 0,
	    0));
	/* Day-of-month '*'-stepped: AND; odd days that are Mondays. */
	check_next("0 0 */2 * mon", utc(2024, 9, 1, 0, 0), utc(2024, 9, 9, 0,
	    0));
	/* Day-of-week '*': only the day of month counts. */
	check_next("0 0 13 * *", utc(2024, 9, 2, 0, 0), utc(2024, 9, 13, 0, 0));
}

static void
test_missed_slot(void **state)
{
	struct ps_cron c;
	time_t next_run, now, after;

	(void)state;
	set_tz("UTC");
	/*
	 * Hourly; stored next_run was 10:00 but nothing ran until 13:20.
	 * It is due once; the next run is 14:00, not 11:00.
	 */
	c = must_parse("@hourly");
	next_run = utc(2024, 3, 15, 10, 0);
	now = utc(2024, 3, 15, 13, 20);
	assert_true(next_run <= now);
	after = ps_cron_next(&c, now);
	assert_true(after == utc(2024, 3, 15, 14, 0));
	assert_true(after > now);
}

static int
have_zone(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
	return access(path, R_OK) == 0;
}

static void
test_dst_berlin(void **state)
{
	(void)state;
	if (!have_zone("Europe/Berlin"))
		skip();
	set_tz("Europe/Berlin");
	/*
	 * 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC). 02:30 does
	 * not exist that day: skipped, next is 02:30 CEST on April 1st.
	 */
	check_next("30 2 * * *", utc(2024, 3, 30, 12, 0), utc(2024, 4, 1, 0,
	    30));
	check_next("30 2 * * *", utc(2024, 3, 31, 0, 0), utc(2024, 4, 1, 0,
	    30));
	/* Every minute across the gap: 01:59 CET then 03:00 CEST. */
	check_next("* * * * *", utc(2024, 3, 31, 0, 59), utc(2024, 3, 31, 1,
	    0));
	/*
	 * 2024-10-27: 03:00 CEST falls back to 02:00 CET (01:00 UTC); 02:30
	 * exists twice (00:30 and 01:30 UTC): it runs at the first only.
	 */
	check_next("30 2 * * *", utc(2024, 10, 26, 12, 0), utc(2024, 10, 27, 0,
	    30));
	check_next("30 2 * * *", utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1,
	    30));
	/* From inside the repeated hour (02:10 CET, second pass). */
	check_next("30 2 * * *", utc(2024, 10, 27, 1, 10), utc(2024, 10, 28, 1,
	    30));
	/* Hourly across the overlap: 02:00 CEST, then 03:00 CET. */
	check_next("0 * * * *", utc(2024, 10, 27, 0, 0), utc(2024, 10, 27, 2,
	    0));
}

static void
test_dst_new_york(void **state)
{
	(void)state;
	if (!have_zone("America/New_York"))
		skip();
	set_tz("America/New_York");
	/* 2024-03-10 02:00 EST -> 03:00 EDT; 02:15 does not exist. */
	check_next("15 2 * * *", utc(2024, 3, 10, 6, 0), utc(2024, 3, 11, 6,
	    15));
	/* Daily midnight is 05:00 UTC in winter, 04:00 UTC in summer. */
	check_next("@daily", utc(2024, 3, 9, 12, 0), utc(2024, 3, 10, 5, 0));
	check_next("@daily", utc(2024, 3, 10, 12, 0), utc(2024, 3, 11, 4, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_constructs),
		cmocka_unit_test(test_macros),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_next_utc),
		cmocka_unit_test(test_day_rule),
		cmocka_unit_test(test_missed_slot),
		cmocka_unit_test(test_dst_berlin),
		cmocka_unit_test(test_dst_new_york),
	};

	set_tz("UTC");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
