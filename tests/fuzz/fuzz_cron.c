/*
 * fuzz_cron.c — ps_cron_parse on any string (schedule add --cron, and
 * what the state database holds). An expression it accepts must fire:
 * ps_cron_next finds a later minute that the expression matches.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "fuzz.h"

/* 2026-11-29 12:54:56 UTC */
#define START ((time_t)1795956896)

static int
matches(const struct ps_cron *c, time_t t)
{
	struct tm tm;
	int dom, dow;

	if (localtime_r(&t, &tm) == NULL || tm.tm_sec != 0)
		return 0;
	if (!(c->minute >> tm.tm_min & 1) || !(c->hour >> tm.tm_hour & 1) ||
	    !(c->month >> (tm.tm_mon + 1) & 1))
		return 0;
	dom = c->dom >> tm.tm_mday & 1;
	dow = c->dow >> tm.tm_wday & 1;
	if (!c->dom_star && !c->dow_star)
		return dom || dow;
	return dom && dow;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_cron c;
	char err[256], *s;
	time_t next;

	fuzz_init();
	if (getenv("TZ") == NULL || strcmp(getenv("TZ"), "UTC") != 0) {
		setenv("TZ", "UTC", 1);
		tzset();
	}
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	err[0] = '\0';
	if (ps_cron_parse(s, &c, err, sizeof(err)) == 0) {
		next = ps_cron_next(&c, START);
		if (next == -1)
			fuzz_fail("an accepted expression never fires");
		if (next <= START)
			fuzz_fail("next run is not after the start");
		if (!matches(&c, next))
			fuzz_fail("next run does not match the expression");
	} else if (err[0] == '\0') {
		fuzz_fail("refused without a reason");
	}
	free(s);
	return 0;
}
