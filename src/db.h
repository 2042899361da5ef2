/*
 * db.h — the two SQL backends under the state database (state.c only):
 * SQLite (a file) and PostgreSQL (libpq, a postgresql:// URI).
 *
 * state.c writes its statements once, in the SQL both understand, with
 * '?' placeholders; a backend turns them into what its engine takes.
 * Each backend owns its schema: creating it, migrating it (SQLite's
 * PRAGMA user_version, PostgreSQL's schema_version table), and refusing
 * a database that is not patchsync's or is newer than this binary.
 *
 * Nothing here prints: a failing call returns a ps_db_rc and leaves one
 * line of explanation in db->err, which state.c reports when it may.
 * Results are read whole into memory (state rows are few and small), so
 * no statement stays open across calls.
 */
#ifndef PS_DB_H
#define PS_DB_H

#include <stddef.h>
#include <stdint.h>

enum ps_db_rc {
	PS_DB_OK = 0,
	PS_DB_ERROR,		/* anything else; see db->err */
	PS_DB_UNIQUE,		/* a unique or primary key constraint */
	PS_DB_FOREIGN,		/* a foreign key constraint */
	PS_DB_ABSENT		/* open without create: there is no database */
};

/* Open flags. */
#define PS_DB_CREATE 0x1	/* create the file / schema when missing */

/* Parameters of one statement, at most (rows are inserted in batches). */
#define PS_DB_MAXARGS 128

enum ps_db_type { PS_DBT_NULL, PS_DBT_INT, PS_DBT_REAL, PS_DBT_TEXT };

struct ps_dbargs {
	size_t n;
	struct {
		enum ps_db_type t;
		int64_t i;
		double d;
		const char *s;
	} v[PS_DB_MAXARGS];
};

/* Append a parameter (a NULL string binds SQL NULL). */
void ps_db_int(struct ps_dbargs *a, int64_t v);
void ps_db_real(struct ps_dbargs *a, double v);
void ps_db_text(struct ps_dbargs *a, const char *v);
void ps_db_null(struct ps_dbargs *a);

struct ps_dbval {
	int null;
	int64_t i;
	double d;
	char *s;		/* the value as text ("" for NULL) */
};

struct ps_dbres {
	size_t nrows, ncols;
	struct ps_dbval *v;	/* nrows * ncols, row by row */
	int64_t changes;	/* rows changed by INSERT, UPDATE, DELETE */
};

void ps_dbres_free(struct ps_dbres *r);
const struct ps_dbval *ps_dbres_at(const struct ps_dbres *r, size_t row,
    size_t col);

struct ps_db;

struct ps_db_ops {
	/* One statement with parameters; R (may be NULL) gets its rows. */
	enum ps_db_rc (*query)(struct ps_db *db, const char *sql,
	    const struct ps_dbargs *a, struct ps_dbres *r);
	/* A write transaction that other writers wait for. */
	enum ps_db_rc (*begin)(struct ps_db *db);
	enum ps_db_rc (*commit)(struct ps_db *db);
	void (*rollback)(struct ps_db *db);
	void (*close)(struct ps_db *db);
};

struct ps_db {
	const struct ps_db_ops *ops;
	char *display;		/* the file, or the URI without a password */
	char err[1024];		/* the last error, one line */
};

/*
 * Open SPEC: a postgresql:// or postgres:// URI, else a SQLite file
 * path. Returns PS_DB_OK with *DB set, PS_DB_ABSENT (without
 * PS_DB_CREATE: no such file, or a PostgreSQL database holding no
 * patchsync schema), or PS_DB_ERROR with ERR (LEN bytes) explaining.
 */
enum ps_db_rc ps_db_open(const char *spec, int flags, struct ps_db **db,
    char *err, size_t len);

/* Is SPEC a PostgreSQL URI? */
int ps_db_is_pg(const char *spec);

/* The schema version both backends are migrated to. */
#define PS_DB_SCHEMA_VERSION 3

/*
 * Network filesystems SQLite must not live on: the name of the kind
 * ("NFS", "CIFS/SMB") for a statfs f_type, or NULL for a local one.
 */
const char *ps_db_network_fs(unsigned long f_type);

/* Backends (db_sqlite.c, db_pg.c). */
enum ps_db_rc ps_db_sqlite_open(const char *path, int flags,
    struct ps_db **db, char *err, size_t len);
enum ps_db_rc ps_db_pg_open(const char *uri, int flags, struct ps_db **db,
    char *err, size_t len);

/* Shared helpers of the backends. */
void ps_db_seterr(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
