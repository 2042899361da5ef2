/*
 * cron.c — Vixie-style cron expressions: parsing into bitsets, and the
 * next local time an expression fires.
 *
 * ps_cron_next walks the calendar as wall-clock fields (year, month, day,
 * hour, minute) and only asks mktime() about candidate minutes, so a DST
 * change never makes the walk skip or repeat a day: a wall-clock time that
 * does not exist fails the round trip through mktime/localtime and is
 * skipped; one that exists twice resolves to its earlier instant, so it
 * fires once.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cron.h"

/*
 * How far ps_cron_next looks. Feb 29 on a given weekday can be 40 years
 * apart.
 */
#define SEARCH_YEARS 50

struct field {
	const char *name;
	int min, max;
	const char *const *names;	/* names[i] is value min + i, or NULL */
};

static const char *const month_names[] = { "jan", "feb", "mar", "apr",
	"may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", NULL };
static const char *const dow_names[] = { "sun", "mon", "tue", "wed", "thu",
	"fri", "sat", NULL };

static const struct field fields[5] = {
	{ "minute", 0, 59, NULL },
	{ "hour", 0, 23, NULL },
	{ "day-of-month", 1, 31, NULL },
	{ "month", 1, 12, month_names },
	{ "day-of-week", 0, 7, dow_names },
};

static const struct {
	const char *name;
	const char *expr;
} macros[] = {
	{ "@hourly", "0 * * * *" },
	{ "@daily", "0 0 * * *" },
	{ "@midnight", "0 0 * * *" },
	{ "@weekly", "0 0 * * 0" },
	{ "@monthly", "0 0 1 * *" },
	{ "@yearly", "0 0 1 1 *" },
	{ "@annually", "0 0 1 1 *" },
};

static int
fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Length of the run of letters and digits at S. */
static size_t
alnum_run(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && isalnum((unsigned char)s[i]); i++)
		;
	return i;
}

/*
 * Value of N decimal digits, saturating at 1000000 so overflow cannot
 * happen.
 */
static long
digits_value(const char *s, size_t n)
{
	long v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		if (v < 1000000)
			v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * Parse one value (number or name) at *S (N bytes left). Advances *S.
 */
static int
parse_value(const struct field *f, const char **s, size_t *n, int *out,
    char *err, size_t errlen)
{
	size_t len = alnum_run(*s, *n);
	long v;
	int i;

	if (len == 0)
		return fail(err, errlen, "%s field: missing number", f->name);
	v = digits_value(*s, len);
	if (v < 0 && f->names != NULL) {
		for (i = 0; f->names[i] != NULL; i++)
			if (len == 3 && strncasecmp(*s, f->names[i], 3) == 0)
				v = f->min + i;
		if (v < 0)
			return fail(err, errlen,
			    "%s field: '%.*s' is not a number or name",
			    f->name, (int)len, *s);
	} else if (v < 0) {
		return fail(err, errlen, "%s field: '%.*s' is not a number",
		    f->name, (int)len, *s);
	}
	if (v < f->min || v > f->max)
		return fail(err, errlen, "%s field: %.*s is out of range %d-%d",
		    f->name, (int)len, *s, f->min, f->max);
	*out = (int)v;
	*s += len;
	*n -= len;
	return 0;
}

/*
 * One list item: "*", "V", "A-B", each optionally "/STEP". Sets bits.
 */
static int
parse_item(const struct field *f, const char *s, size_t n, uint64_t *bits,
    char *err, size_t errlen)
{
	const char *item = s;
	size_t itemlen = n, len;
	int lo, hi, v, single = 0;
	long step = 1;

	if (n == 0)
		return fail(err, errlen, "%s field: empty list item", f->name);
	if (*s == '*') {
		lo = f->min;
		hi = f->max;
		s++;
		n--;
	} else {
		if (parse_value(f, &s, &n, &lo, err, errlen) < 0)
			return -1;
		hi = lo;
		single = 1;
		if (n > 0 && *s == '-') {
			s++;
			n--;
			if (parse_value(f, &s, &n, &hi, err, errlen) < 0)
				return -1;
			single = 0;
			if (lo > hi)
				return fail(err, errlen,
				    "%s field: reversed range '%.*s'",
				    f->name, (int)itemlen, item);
		}
	}
	if (n > 0 && *s == '/') {
		s++;
		n--;
		len = alnum_run(s, n);
		step = len > 0 ? digits_value(s, len) : -1;
		if (step < 0)
			return fail(err, errlen,
			    "%s field: step '%.*s' is not a number", f->name,
			    (int)len, s);
		if (step == 0)
			return fail(err, errlen,
			    "%s field: step 0 is not allowed", f->name);
		s += len;
		n -= len;
		if (single)		/* "5/10": from 5 to the maximum */
			hi = f->max;
	}
	if (n > 0)
		return fail(err, errlen, "%s field: unexpected '%c' in '%.*s'",
		    f->name, *s, (int)itemlen, item);
	for (v = lo; v <= hi; v += (int)(step > 64 ? 64 : step))
		*bits |= (uint64_t)1 << v;
	return 0;
}

static int
parse_field(const struct field *f, const char *s, size_t n, uint64_t *bits,
    char *err, size_t errlen)
{
	const char *comma;
	size_t len;

	*bits = 0;
	for (;;) {
		comma = memchr(s, ',', n);
		len = comma != NULL ? (size_t)(comma - s) : n;
		if (parse_item(f, s, len, bits, err, errlen) < 0)
			return -1;
		if (comma == NULL)
			return 0;
		s += len + 1;
		n -= len + 1;
	}
}

static int
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
	static const int d[] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};

	return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

/* Day of week, Sunday = 0 (Sakamoto). */
static int
day_of_week(int y, int m, int d)
{
	static const int t[] = { 0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4 };

	if (m < 3)
		y--;
	return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
}

/*
 * Refuse what can never fire: with the AND day rule, a day-of-month set
 * none of whose days exists in any selected month ("0 0 30 2 *"). With
 * the OR rule, or a '*' day-of-month, some day always matches.
 */
static int
check_fires(const struct ps_cron *c, char *err, size_t errlen)
{
	uint32_t mask;
	int m;

	if (c->dom_star || !c->dow_star)
		return 0;
	for (m = 1; m <= 12; m++) {
		if (!(c->month & (1u << m)))
			continue;
		/* Days 1..N where N is the longest the month gets (Feb: 29). */
		mask = (uint32_t)(((uint64_t)1 <<
		    (days_in_month(2000, m) + 1)) - 2);
		if (c->dom & mask)
			return 0;
	}
	return fail(err, errlen, "day-of-month field: none of the selected "
	    "days occurs in the selected months, so the schedule would never "
	    "run");
}

static int
parse_fields(const char *expr, struct ps_cron *c, char *err, size_t errlen)
{
	const char *tok[5];
	size_t toklen[5];
	uint64_t bits[5];
	const char *p = expr;
	int n = 0, i;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (n < 5)
			tok[n] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (n < 5)
			toklen[n] = (size_t)(p - tok[n]);
		n++;
	}
	if (n != 5)
		return fail(err, errlen, "expected 5 fields, got %d", n);
	for (i = 0; i < 5; i++)
		if (parse_field(&fields[i], tok[i], toklen[i], &bits[i], err,
		    errlen) < 0)
			return -1;
	memset(c, 0, sizeof(*c));
	c->minute = bits[0];
	c->hour = (uint32_t)bits[1];
	c->dom = (uint32_t)bits[2];
	c->month = (uint16_t)bits[3];
	/* 7 is Sunday */
	c->dow = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f);
	c->dom_star = tok[2][0] == '*';
	c->dow_star = tok[4][0] == '*';
	return check_fires(c, err, errlen);
}

int
ps_cron_parse(const char *expr, struct ps_cron *c, char *err, size_t errlen)
{
	struct ps_cron tmp;
	size_t len, i;

	if (errlen > 0)
		err[0] = '\0';
	len = strlen(expr);
	if (len > PS_CRON_MAX)
		return fail(err, errlen, "expression is longer than %d bytes",
		    PS_CRON_MAX);
	while (*expr == ' ' || *expr == '\t')
		expr++, len--;
	while (len > 0 && (expr[len - 1] == ' ' || expr[len - 1] == '\t'))
		len--;
	if (len > 0 && expr[0] == '@') {
		for (i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
			if (strlen(macros[i].name) == len &&
			    strncasecmp(expr, macros[i].name, len) == 0)
				break;
		if (i == sizeof(macros) / sizeof(macros[0]))
			return fail(err, errlen, "unknown macro '%.*s' (known: "
			    "@hourly @daily @midnight @weekly @monthly @yearly "
			    "@annually)", (int)len, expr);
		expr = macros[i].expr;
	}
	if (parse_fields(expr, &tmp, err, errlen) < 0)
		return -1;
	*c = tmp;
	return 0;
}

static int
day_matches(const struct ps_cron *c, int y, int m, int d)
{
	int dom_ok = (c->dom >> d) & 1;
	int dow_ok = (c->dow >> day_of_week(y, m, d)) & 1;

	if (!c->dom_star && !c->dow_star)
		return dom_ok || dow_ok;
	return dom_ok && dow_ok;
}

/*
 * The instant of local wall-clock time Y-M-D H:MI, or -1 when it does not
 * exist. When it exists twice, the earlier instant.
 */
static time_t
resolve(int y, int m, int d, int h, int mi)
{
	static const int isdst[] = { -1, 0, 1 };
	struct tm tm;
	time_t t, best = -1;
	size_t i;

	for (i = 0; i < sizeof(isdst) / sizeof(isdst[0]); i++) {
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = y - 1900;
		tm.tm_mon = m - 1;
		tm.tm_mday = d;
		tm.tm_hour = h;
		tm.tm_min = mi;
		tm.tm_isdst = isdst[i];
		t = mktime(&tm);
		if (t == (time_t)-1)
			continue;
		/* mktime normalised TM to what T really is: compare. */
		if (tm.tm_year != y - 1900 || tm.tm_mon != m - 1 ||
		    tm.tm_mday != d || tm.tm_hour != h || tm.tm_min != mi)
			continue;
		if (best == -1 || t < best)
			best = t;
	}
	return best;
}

/* First matching minute of day Y-M-D at or after H:MI that is > AFTER. */
static time_t
scan_day(const struct ps_cron *c, int y, int m, int d, int h0, int mi0,
    time_t after)
{
	time_t t;
	int h, mi;

	for (h = h0; h < 24; h++) {
		if (!((c->hour >> h) & 1))
			continue;
		for (mi = h == h0 ? mi0 : 0; mi < 60; mi++) {
			if (!((c->minute >> mi) & 1))
				continue;
			t = resolve(y, m, d, h, mi);
			if (t != -1 && t > after)
				return t;
		}
	}
	return -1;
}

time_t
ps_cron_next(const struct ps_cron *c, time_t after)
{
	struct tm tm;
	time_t t;
	int y, m, d, h0, mi0, end;

	if (localtime_r(&after, &tm) == NULL)
		return -1;
	y = tm.tm_year + 1900;
	m = tm.tm_mon + 1;
	d = tm.tm_mday;
	h0 = tm.tm_hour;
	mi0 = tm.tm_min;
	end = y + SEARCH_YEARS;
	while (y <= end) {
		if (!((c->month >> m) & 1)) {
			d = days_in_month(y, m);	/* skip the month */
		} else if (day_matches(c, y, m, d)) {
			t = scan_day(c, y, m, d, h0, mi0, after);
			if (t != -1)
				return t;
		}
		h0 = mi0 = 0;
		if (++d > days_in_month(y, m)) {
			d = 1;
			if (++m > 12) {
				m = 1;
				y++;
			}
		}
	}
	return -1;
}
