/*
 * db.c — what the two state backends share: parameters, results, the
 * choice of backend, and the network-filesystem rule for SQLite.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "ps.h"

static void
arg_add(struct ps_dbargs *a, enum ps_db_type t, int64_t i, double d,
    const char *s)
{
	/* A statement with more is a programming error, caught by tests. */
	if (a->n >= PS_DB_MAXARGS)
		abort();
	a->v[a->n].t = t;
	a->v[a->n].i = i;
	a->v[a->n].d = d;
	a->v[a->n].s = s;
	a->n++;
}

void
ps_db_int(struct ps_dbargs *a, int64_t v)
{
	arg_add(a, PS_DBT_INT, v, 0, NULL);
}

void
ps_db_real(struct ps_dbargs *a, double v)
{
	arg_add(a, PS_DBT_REAL, 0, v, NULL);
}

void
ps_db_text(struct ps_dbargs *a, const char *v)
{
	arg_add(a, v != NULL ? PS_DBT_TEXT : PS_DBT_NULL, 0, 0, v);
}

void
ps_db_null(struct ps_dbargs *a)
{
	arg_add(a, PS_DBT_NULL, 0, 0, NULL);
}

void
ps_dbres_free(struct ps_dbres *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nrows * r->ncols; i++)
		free(r->v[i].s);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

const struct ps_dbval *
ps_dbres_at(const struct ps_dbres *r, size_t row, size_t col)
{
	static const struct ps_dbval none = { 1, 0, 0, (char *)"" };

	if (row >= r->nrows || col >= r->ncols)
		return &none;
	return &r->v[row * r->ncols + col];
}

void
ps_db_seterr(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	char *p, *q;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	/*
	 * Engines end some messages with a newline, libpq indents its
	 * second line: keep it one line, blanks squeezed.
	 */
	for (p = q = err; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
		if (*p == ' ' && (q == err || q[-1] == ' '))
			continue;
		*q++ = *p;
	}
	while (q > err && q[-1] == ' ')
		q--;
	*q = '\0';
}

int
ps_db_is_pg(const char *spec)
{
	return strncmp(spec, "postgresql://", 13) == 0 ||
	    strncmp(spec, "postgres://", 11) == 0;
}

enum ps_db_rc
ps_db_open(const char *spec, int flags, struct ps_db **db, char *err,
    size_t len)
{
	*db = NULL;
	err[0] = '\0';
	if (ps_db_is_pg(spec))
		return ps_db_pg_open(spec, flags, db, err, len);
	return ps_db_sqlite_open(spec, flags, db, err, len);
}

const char *
ps_db_network_fs(unsigned long f_type)
{
	/* The magic numbers of linux/magic.h (not every libc ships it). */
	switch (f_type) {
	case 0x6969UL:			/* NFS_SUPER_MAGIC */
		return "NFS";
	case 0x517bUL:			/* SMB_SUPER_MAGIC */
	case 0xff534d42UL:		/* CIFS_MAGIC_NUMBER */
	case 0xfe534d42UL:		/* SMB2_MAGIC_NUMBER */
		return "CIFS/SMB";
	default:
		return NULL;
	}
}
