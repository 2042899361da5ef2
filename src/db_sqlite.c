/*
 * db_sqlite.c — the SQLite backend of the state database: one file that
 * several processes share, in WAL mode, writers serialised by BEGIN
 * IMMEDIATE (and a 10 s busy timeout).
 *
 * Schema history (PRAGMA user_version; PRAGMA application_id 'PSYC'):
 *   1  servers, schedules, tasks, events
 *   2  servers.remote_path, .bwlimit, .timeout; outcomes (the last push
 *      and report per server, for `status`); report_rows (the last
 *      report's rows per server); an index on tasks(ended) for pruning
 *   3  servers.via: the relay a server is reached through
 *
 * SQLite's locking is not safe on network filesystems: a database whose
 * directory is on NFS or CIFS/SMB is refused before anything is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db.h"
#include "ps.h"

#define BUSY_TIMEOUT_MS 10000
#define APP_ID 0x50535943	/* 'PSYC' */

struct sdb {
	struct ps_db db;	/* first: a struct ps_db * is a struct sdb * */
	sqlite3 *h;
};

/* Migration I takes user_version I to I + 1. */
static const char *const migrations[PS_DB_SCHEMA_VERSION] = {
	"CREATE TABLE servers ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  url TEXT NOT NULL,"
	"  identity_file TEXT,"
	"  secret_file TEXT,"
	"  rsh TEXT,"
	"  download_source INTEGER NOT NULL DEFAULT 0"
	"    CHECK (download_source IN (0, 1)),"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE schedules ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  owner TEXT NOT NULL,"
	"  server TEXT NOT NULL REFERENCES servers(name),"
	"  components TEXT NOT NULL DEFAULT '',"
	"  cron TEXT NOT NULL,"
	"  next_run INTEGER,"
	"  last_run INTEGER,"
	"  last_result TEXT,"
	"  last_task INTEGER,"
	"  created INTEGER NOT NULL);"
	"CREATE INDEX schedules_due ON schedules(owner, next_run);"
	"CREATE INDEX schedules_server ON schedules(server);"
	"CREATE TABLE tasks ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind TEXT NOT NULL"
	"    CHECK (kind IN ('manual', 'run-now', 'scheduled')),"
	"  schedule_id INTEGER REFERENCES schedules(id) ON DELETE SET NULL,"
	"  console TEXT NOT NULL,"
	"  server TEXT NOT NULL,"
	"  components TEXT NOT NULL DEFAULT '',"
	"  state TEXT NOT NULL CHECK (state IN ('queued', 'running',"
	"    'succeeded', 'failed', 'canceled', 'interrupted')),"
	"  host TEXT NOT NULL,"
	"  boot_id TEXT NOT NULL DEFAULT '',"
	"  pid INTEGER NOT NULL,"
	"  pid_start INTEGER NOT NULL DEFAULT 0,"
	"  created REAL NOT NULL,"
	"  started REAL,"
	"  ended REAL,"
	"  exit_code INTEGER,"
	"  stats TEXT);"
	"CREATE INDEX tasks_active ON tasks(state)"
	"  WHERE state IN ('queued', 'running');"
	"CREATE INDEX tasks_schedule ON tasks(schedule_id);"
	"CREATE INDEX tasks_server ON tasks(server);"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	"  time REAL NOT NULL,"
	"  level TEXT NOT NULL CHECK (level IN ('info', 'warning', 'error')),"
	"  kind TEXT NOT NULL,"
	"  message TEXT NOT NULL,"
	"  data TEXT);"
	"CREATE INDEX events_task ON events(task_id, id);",

	"ALTER TABLE servers ADD COLUMN remote_path TEXT;"
	"ALTER TABLE servers ADD COLUMN bwlimit INTEGER;"
	"ALTER TABLE servers ADD COLUMN timeout INTEGER;"
	"CREATE TABLE outcomes ("
	"  server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,"
	"  kind TEXT NOT NULL CHECK (kind IN ('push', 'report')),"
	"  time REAL NOT NULL,"
	"  status TEXT NOT NULL"
	"    CHECK (status IN ('ok', 'failed', 'unreachable')),"
	"  error TEXT,"
	"  files_behind INTEGER,"
	"  bytes_sent INTEGER NOT NULL DEFAULT 0,"
	"  bytes_sent_total INTEGER NOT NULL DEFAULT 0,"
	"  last_ok REAL,"
	"  rows_total INTEGER NOT NULL DEFAULT 0,"
	"  console TEXT NOT NULL,"
	"  PRIMARY KEY (server, kind));"
	"CREATE TABLE report_rows ("
	"  server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  component TEXT,"
	"  path TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  console_size INTEGER,"
	"  console_mtime INTEGER,"
	"  server_size INTEGER,"
	"  server_mtime INTEGER,"
	"  PRIMARY KEY (server, seq));"
	"CREATE INDEX tasks_ended ON tasks(ended);",

	"ALTER TABLE servers ADD COLUMN via TEXT;"
	"CREATE INDEX servers_via ON servers(via);",
};

static enum ps_db_rc
fail(struct sdb *s, const char *what)
{
	int ext = sqlite3_extended_errcode(s->h);
	int sys = sqlite3_system_errno(s->h);

	/*
	 * A full disk shows as "disk I/O error" when SQLite cannot make its
	 * shared-memory file, which reads as a damaged database: say so.
	 */
	ps_db_seterr(s->db.err, sizeof(s->db.err), "%s: %s: %s",
	    s->db.display, what, sys == ENOSPC || sys == EDQUOT ?
	    strerror(sys) : sqlite3_errmsg(s->h));
	if (ext == SQLITE_CONSTRAINT_PRIMARYKEY ||
	    ext == SQLITE_CONSTRAINT_UNIQUE)
		return PS_DB_UNIQUE;
	if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
		return PS_DB_FOREIGN;
	return PS_DB_ERROR;
}

static enum ps_db_rc
exec_script(struct sdb *s, const char *sql, const char *what)
{
	if (sqlite3_exec(s->h, sql, NULL, NULL, NULL) != SQLITE_OK)
		return fail(s, what);
	return PS_DB_OK;
}

static void
read_row(sqlite3_stmt *st, struct ps_dbres *r)
{
	struct ps_dbval *v;
	const unsigned char *t;
	size_t c;

	r->v = xreallocarray(r->v, (r->nrows + 1) * r->ncols,
	    sizeof(*r->v));
	for (c = 0; c < r->ncols; c++) {
		v = &r->v[r->nrows * r->ncols + c];
		v->null = sqlite3_column_type(st, (int)c) == SQLITE_NULL;
		v->i = sqlite3_column_int64(st, (int)c);
		v->d = sqlite3_column_double(st, (int)c);
		t = sqlite3_column_text(st, (int)c);
		v->s = xstrdup(t != NULL ? (const char *)t : "");
	}
	r->nrows++;
}

static enum ps_db_rc
s_query(struct ps_db *db, const char *sql, const struct ps_dbargs *a,
    struct ps_dbres *r)
{
	struct sdb *s = (struct sdb *)db;
	struct ps_dbres tmp;
	sqlite3_stmt *st;
	enum ps_db_rc rc;
	size_t i;
	int k;

	if (r == NULL)
		r = &tmp;
	memset(r, 0, sizeof(*r));
	if (sqlite3_prepare_v2(s->h, sql, -1, &st, NULL) != SQLITE_OK)
		return fail(s, "cannot prepare statement");
	for (i = 0; a != NULL && i < a->n; i++) {
		k = (int)i + 1;
		switch (a->v[i].t) {
		case PS_DBT_NULL:
			sqlite3_bind_null(st, k);
			break;
		case PS_DBT_INT:
			sqlite3_bind_int64(st, k, (sqlite3_int64)a->v[i].i);
			break;
		case PS_DBT_REAL:
			sqlite3_bind_double(st, k, a->v[i].d);
			break;
		case PS_DBT_TEXT:
			sqlite3_bind_text(st, k, a->v[i].s, -1,
			    SQLITE_STATIC);
			break;
		}
	}
	r->ncols = (size_t)sqlite3_column_count(st);
	while ((k = sqlite3_step(st)) == SQLITE_ROW)
		read_row(st, r);
	rc = PS_DB_OK;
	if (k != SQLITE_DONE) {
		rc = fail(s, "statement failed");
		ps_dbres_free(r);
	} else {
		r->changes = sqlite3_changes(s->h);
	}
	sqlite3_finalize(st);
	if (r == &tmp)
		ps_dbres_free(&tmp);
	return rc;
}

static enum ps_db_rc
s_begin(struct ps_db *db)
{
	return exec_script((struct sdb *)db, "BEGIN IMMEDIATE",
	    "cannot start a transaction");
}

static enum ps_db_rc
s_commit(struct ps_db *db)
{
	struct sdb *s = (struct sdb *)db;
	enum ps_db_rc rc = exec_script(s, "COMMIT", "cannot commit");

	if (rc != PS_DB_OK && !sqlite3_get_autocommit(s->h))
		sqlite3_exec(s->h, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static void
s_rollback(struct ps_db *db)
{
	struct sdb *s = (struct sdb *)db;

	if (!sqlite3_get_autocommit(s->h))
		sqlite3_exec(s->h, "ROLLBACK", NULL, NULL, NULL);
}

static void
s_close(struct ps_db *db)
{
	struct sdb *s = (struct sdb *)db;

	if (s == NULL)
		return;
	sqlite3_close(s->h);
	free(s->db.display);
	free(s);
}

static const struct ps_db_ops sqlite_ops = {
	s_query, s_begin, s_commit, s_rollback, s_close
};

/* --- opening ------------------------------------------------------- */

/*
 * Refuse a database directory on a network filesystem. DIR may not exist
 * yet: the nearest existing ancestor is what will hold it.
 * PATCHSYNC_TEST_FSTYPE (hex) stands in for the f_type statfs returns,
 * for the tests only: the rest of this path is the same.
 */
static int
local_fs(const char *path, char *err, size_t len)
{
	char *d = xstrdup(path), *slash;
	const char *kind, *fake = getenv("PATCHSYNC_TEST_FSTYPE");
	unsigned long type = 0;
	struct statfs sf;
	int got = 0;

	for (;;) {
		slash = strrchr(d, '/');
		if (slash == NULL) {
			got = statfs(".", &sf) == 0;
			break;
		}
		*(slash == d ? slash + 1 : slash) = '\0';
		if ((got = statfs(d, &sf) == 0) || errno != ENOENT ||
		    slash == d)
			break;
	}
	free(d);
	if (got)
		type = (unsigned long)sf.f_type;
	if (fake != NULL && *fake != '\0') {
		type = strtoul(fake, NULL, 16);
		got = 1;
	}
	if (!got || (kind = ps_db_network_fs(type)) == NULL)
		return 0;
	ps_db_seterr(err, len, "%s: refusing a SQLite state database on %s "
	    "(its locking is not safe there): use a local file, or set "
	    "database = postgresql://... for consoles that share state",
	    path, kind);
	return -1;
}

/* mkdir -p of the directory part of PATH, new directories mode 0755. */
static int
make_parents(const char *path, char *err, size_t len)
{
	char *d = xstrdup(path), *p;

	for (p = d + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(d, 0755) == -1 && errno != EEXIST) {
			ps_db_seterr(err, len, "%s: cannot create directory: "
			    "%s", d, strerror(errno));
			free(d);
			return -1;
		}
		*p = '/';
	}
	free(d);
	return 0;
}

/*
 * CREATE: make PATH (mode 0640) if missing. Returns PS_DB_ABSENT when
 * PATH does not exist (or is empty) and CREATE is not set.
 *
 * An existing file is never opened here: closing any descriptor of a
 * file releases every POSIX lock this process holds on it, so a raw
 * open and close while another handle of this process has the database
 * open would let other processes checkpoint and remove the WAL under
 * it. What the file holds is left to SQLite, which refuses a file that
 * is not a database without writing to it (identify()).
 */
static enum ps_db_rc
prepare_file(const char *path, int create, char *err, size_t len)
{
	struct stat sb;
	int fd;

	if (create) {
		if (make_parents(path, err, len) != 0)
			return PS_DB_ERROR;
		/* Only a file that did not exist: nobody has it open. */
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (fd != -1) {
			(void)fchmod(fd, 0640);		/* whatever the umask */
			close(fd);
			return PS_DB_OK;
		}
		if (errno != EEXIST) {
			ps_db_seterr(err, len, "%s: cannot create state "
			    "database: %s", path, strerror(errno));
			return PS_DB_ERROR;
		}
	}
	if (stat(path, &sb) == -1) {
		if (errno == ENOENT && !create)
			return PS_DB_ABSENT;
		ps_db_seterr(err, len, "%s: cannot open state database: %s",
		    path, strerror(errno));
		return PS_DB_ERROR;
	}
	if (!S_ISREG(sb.st_mode)) {
		ps_db_seterr(err, len, "%s: not a regular file; refusing to "
		    "use it as the state database", path);
		return PS_DB_ERROR;
	}
	if (sb.st_size == 0 && !create)
		return PS_DB_ABSENT;
	return PS_DB_OK;
}

/*
 * What the file holds: 1 ours (*VERSION set), 0 empty (never used), or
 * -1 (foreign, newer, unreadable; err set).
 */
static int
identify(struct sdb *s, long long *version)
{
	struct ps_dbres r;
	long long app, nobj;

	/* One statement, so one snapshot while another process migrates. */
	if (s_query(&s->db, "SELECT a.application_id, u.user_version, "
	    "(SELECT count(*) FROM sqlite_master) "
	    "FROM pragma_application_id AS a, pragma_user_version AS u",
	    NULL, &r) != PS_DB_OK) {
		if (sqlite3_errcode(s->h) == SQLITE_NOTADB)
			ps_db_seterr(s->db.err, sizeof(s->db.err), "%s: not a "
			    "SQLite database; refusing to use it as the state "
			    "database", s->db.display);
		else
			fail(s, "cannot read the database header");
		return -1;
	}
	app = ps_dbres_at(&r, 0, 0)->i;
	*version = ps_dbres_at(&r, 0, 1)->i;
	nobj = ps_dbres_at(&r, 0, 2)->i;
	ps_dbres_free(&r);
	if (app == APP_ID) {
		if (*version > PS_DB_SCHEMA_VERSION) {
			ps_db_seterr(s->db.err, sizeof(s->db.err), "%s: "
			    "written by a newer patchsync (schema version "
			    "%lld; this one knows up to %d); refusing to use "
			    "it", s->db.display, *version,
			    PS_DB_SCHEMA_VERSION);
			return -1;
		}
		return 1;
	}
	if (app == 0 && *version == 0 && nobj == 0)
		return 0;
	ps_db_seterr(s->db.err, sizeof(s->db.err), "%s: a SQLite database "
	    "that is not a patchsync state database; refusing to use it",
	    s->db.display);
	return -1;
}

static enum ps_db_rc
migrate(struct sdb *s)
{
	char sql[64];
	long long v;
	int kind;

	if (s_begin(&s->db) != PS_DB_OK)
		return PS_DB_ERROR;
	/* Again under the lock: another process may have done it. */
	if ((kind = identify(s, &v)) < 0)
		goto fail;
	if (kind == 1 && v == PS_DB_SCHEMA_VERSION)
		return s_commit(&s->db);
	if (kind == 0)
		v = 0;
	for (; v < PS_DB_SCHEMA_VERSION; v++)
		if (exec_script(s, migrations[v], "cannot migrate the schema")
		    != PS_DB_OK)
			goto fail;
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", APP_ID);
	if (exec_script(s, sql, "cannot mark the database") != PS_DB_OK)
		goto fail;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    PS_DB_SCHEMA_VERSION);
	if (exec_script(s, sql, "cannot set the schema version") != PS_DB_OK)
		goto fail;
	return s_commit(&s->db);
fail:
	s_rollback(&s->db);
	return PS_DB_ERROR;
}

/* The current journal mode into MODE (16 bytes); SQLite result code. */
static int
journal_mode(struct sdb *s, const char *sql, char *mode)
{
	sqlite3_stmt *st;
	const unsigned char *v;
	int rc;

	mode[0] = '\0';
	if (sqlite3_prepare_v2(s->h, sql, -1, &st, NULL) != SQLITE_OK)
		return SQLITE_ERROR;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && (v = sqlite3_column_text(st, 0)) != NULL)
		snprintf(mode, 16, "%s", (const char *)v);
	sqlite3_finalize(st);
	return rc;
}

static enum ps_db_rc
configure(struct sdb *s)
{
	char mode[16];
	int rc, tries;

	/*
	 * WAL lets readers work while one process writes. Switching needs
	 * an exclusive lock and SQLite does not call the busy handler for
	 * it, so retry here (a first open racing another one).
	 */
	rc = journal_mode(s, "PRAGMA journal_mode", mode);
	for (tries = 0; strcmp(mode, "wal") != 0 &&
	    tries < BUSY_TIMEOUT_MS / 10; tries++) {
		rc = journal_mode(s, "PRAGMA journal_mode = WAL", mode);
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			break;
		usleep(10000);
	}
	if (strcmp(mode, "wal") != 0)
		return fail(s, "cannot switch to WAL journal mode");
	return exec_script(s, "PRAGMA foreign_keys = ON; "
	    "PRAGMA synchronous = NORMAL", "cannot configure the database");
}

enum ps_db_rc
ps_db_sqlite_open(const char *path, int flags, struct ps_db **dbp,
    char *err, size_t len)
{
	int create = (flags & PS_DB_CREATE) != 0, kind;
	enum ps_db_rc rc;
	struct sdb *s;
	long long v;

	*dbp = NULL;
	if (local_fs(path, err, len) != 0)
		return PS_DB_ERROR;
	if ((rc = prepare_file(path, create, err, len)) != PS_DB_OK)
		return rc;
	s = xcalloc(1, sizeof(*s));
	s->db.ops = &sqlite_ops;
	s->db.display = xstrdup(path);
	if (sqlite3_open_v2(path, &s->h, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		if (s->h == NULL)
			ps_db_seterr(err, len, "%s: cannot open state database",
			    path);
		else
			ps_db_seterr(err, len, "%s: cannot open state "
			    "database: %s", path, sqlite3_errmsg(s->h));
		s_close(&s->db);
		return PS_DB_ERROR;
	}
	sqlite3_busy_timeout(s->h, BUSY_TIMEOUT_MS);
	/* Identify before anything that could write (journal_mode does). */
	if ((kind = identify(s, &v)) < 0 || configure(s) != PS_DB_OK ||
	    ((kind == 0 || v < PS_DB_SCHEMA_VERSION) && migrate(s) !=
	    PS_DB_OK)) {
		snprintf(err, len, "%s", s->db.err);
		s_close(&s->db);
		return PS_DB_ERROR;
	}
	*dbp = &s->db;
	return PS_DB_OK;
}
