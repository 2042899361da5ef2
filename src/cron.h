/*
 * cron.h — cron expressions (SPEC section 6, `schedule add --cron`) and
 * the next time one fires.
 *
 * Syntax (Vixie cron): five fields separated by blanks,
 *	minute (0-59) hour (0-23) day-of-month (1-31) month (1-12, jan-dec)
 *	day-of-week (0-7, sun-sat; 0 and 7 are Sunday)
 * Each field is a comma list of items: "*", "N", "A-B", any of those
 * followed by "/STEP", and "N/STEP" meaning N-MAX/STEP. Names are
 * case-insensitive and may form ranges ("mon-fri"). The macros @hourly,
 * @daily, @midnight, @weekly, @monthly, @yearly and @annually stand for
 * their usual five fields.
 *
 * Day rule (Vixie): when both day-of-month and day-of-week are restricted
 * (neither field starts with '*'), a day matches when EITHER matches;
 * otherwise both must match.
 *
 * How `schedule run-due` decides: a schedule is due when its stored
 * next_run <= now. After claiming it, next_run becomes ps_cron_next(c,
 * now) — the next slot after NOW, not after the old next_run — so slots
 * missed while nothing ran produce one run, not one per slot.
 */
#ifndef PS_CRON_H
#define PS_CRON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Bit N of each set means value N matches. */
struct ps_cron {
	uint64_t minute;	/* bits 0-59 */
	uint32_t hour;		/* bits 0-23 */
	uint32_t dom;		/* bits 1-31 */
	uint16_t month;		/* bits 1-12 */
	uint8_t dow;		/* bits 0-6, Sunday = 0 (7 is folded in) */
	uint8_t dom_star;	/* day-of-month field started with '*' */
	uint8_t dow_star;	/* day-of-week field started with '*' */
};

/* Longest expression accepted (bytes). */
#define PS_CRON_MAX 256

/*
 * Parse EXPR into C. Returns 0, or -1 with a message in ERR (ERRLEN
 * bytes) naming the field at fault, e.g. "hour field: 24 is out of range
 * 0-23" or "expected 5 fields, got 4". Expressions that can never fire
 * ("0 0 30 2 *") are refused too. Prints nothing.
 */
int ps_cron_parse(const char *expr, struct ps_cron *c, char *err,
    size_t errlen);

/*
 * The first matching minute strictly after AFTER, in local time (TZ).
 * A local time that does not exist (DST gap) is skipped; one that occurs
 * twice (DST overlap) fires at its first occurrence only. Returns -1 when
 * nothing matches within ten years (cannot happen for an expression that
 * ps_cron_parse accepted, as Feb 29 recurs within eight years).
 */
time_t ps_cron_next(const struct ps_cron *c, time_t after);

#endif
