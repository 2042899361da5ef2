/*
 * db_pg.c — the PostgreSQL backend of the state database, through libpq,
 * for consoles that share state over the network (SPEC section 15).
 *
 * Write transactions take one transaction-level advisory lock first, so
 * writers are serialised as SQLite's BEGIN IMMEDIATE serialises them:
 * ids (events, tasks) are assigned in commit order, which `history
 * --follow` relies on, and every rule state.c checks inside a
 * transaction holds against every other console.
 *
 * Schema versions are those of db_sqlite.c, kept in a one-row table
 * schema_version; migrations run under the same lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "dynlib.h"
#include "ps.h"

/* libpq, opened at the first ps_db_pg_open (dynlib.h says why). */
#define PQ_FUNCS(X) X(PQclear) X(PQcmdTuples) X(PQconnectdb) X(PQerrorMessage) \
	X(PQexec) X(PQexecParams) X(PQfinish) X(PQgetisnull) X(PQgetvalue) \
	X(PQnfields) X(PQntuples) X(PQreset) X(PQresultErrorField) \
	X(PQresultErrorMessage) X(PQresultStatus) X(PQsetClientEncoding) \
	X(PQsetNoticeProcessor) X(PQstatus) X(PQtransactionStatus)
#define PQ_SLOT(f) __typeof__(f) *f;
#define PQ_SYM(f) { #f, (void **)&pq.f },
static struct {
	PQ_FUNCS(PQ_SLOT)
} pq;
static const struct ps_dynsym pq_syms[] = { PQ_FUNCS(PQ_SYM) };
static struct ps_dynlib libpq = { PS_SONAME_PQ, "a PostgreSQL state database",
    pq_syms, sizeof(pq_syms) / sizeof(pq_syms[0]), 0, "" };

/* The advisory lock of every write transaction: 'PSYC'. */
#define WRITE_LOCK "SELECT pg_advisory_xact_lock(1347639619)"

struct pdb {
	struct ps_db db;	/* first: a struct ps_db * is a struct pdb * */
	PGconn *conn;
	int in_tx;
};

/* Migration I takes schema version I to I + 1 (see db_sqlite.c). */
static const char *const migrations[PS_DB_SCHEMA_VERSION] = {
	"CREATE TABLE servers ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  url TEXT NOT NULL,"
	"  identity_file TEXT,"
	"  secret_file TEXT,"
	"  rsh TEXT,"
	"  download_source INTEGER NOT NULL DEFAULT 0"
	"    CHECK (download_source IN (0, 1)),"
	"  created BIGINT NOT NULL);"
	"CREATE TABLE schedules ("
	"  id BIGSERIAL PRIMARY KEY,"
	"  owner TEXT NOT NULL,"
	"  server TEXT NOT NULL REFERENCES servers(name),"
	"  components TEXT NOT NULL DEFAULT '',"
	"  cron TEXT NOT NULL,"
	"  next_run BIGINT,"
	"  last_run BIGINT,"
	"  last_result TEXT,"
	"  last_task BIGINT,"
	"  created BIGINT NOT NULL);"
	"CREATE INDEX schedules_due ON schedules(owner, next_run);"
	"CREATE INDEX schedules_server ON schedules(server);"
	"CREATE TABLE tasks ("
	"  id BIGSERIAL PRIMARY KEY,"
	"  kind TEXT NOT NULL"
	"    CHECK (kind IN ('manual', 'run-now', 'scheduled')),"
	"  schedule_id BIGINT REFERENCES schedules(id) ON DELETE SET NULL,"
	"  console TEXT NOT NULL,"
	"  server TEXT NOT NULL,"
	"  components TEXT NOT NULL DEFAULT '',"
	"  state TEXT NOT NULL CHECK (state IN ('queued', 'running',"
	"    'succeeded', 'failed', 'canceled', 'interrupted')),"
	"  host TEXT NOT NULL,"
	"  boot_id TEXT NOT NULL DEFAULT '',"
	"  pid BIGINT NOT NULL,"
	"  pid_start BIGINT NOT NULL DEFAULT 0,"
	"  created DOUBLE PRECISION NOT NULL,"
	"  started DOUBLE PRECISION,"
	"  ended DOUBLE PRECISION,"
	"  exit_code INTEGER,"
	"  stats TEXT);"
	"CREATE INDEX tasks_active ON tasks(state)"
	"  WHERE state IN ('queued', 'running');"
	"CREATE INDEX tasks_schedule ON tasks(schedule_id);"
	"CREATE INDEX tasks_server ON tasks(server);"
	"CREATE TABLE events ("
	"  id BIGSERIAL PRIMARY KEY,"
	"  task_id BIGINT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	"  time DOUBLE PRECISION NOT NULL,"
	"  level TEXT NOT NULL CHECK (level IN ('info', 'warning', 'error')),"
	"  kind TEXT NOT NULL,"
	"  message TEXT NOT NULL,"
	"  data TEXT);"
	"CREATE INDEX events_task ON events(task_id, id);",

	"ALTER TABLE servers ADD COLUMN remote_path TEXT;"
	"ALTER TABLE servers ADD COLUMN bwlimit BIGINT;"
	"ALTER TABLE servers ADD COLUMN timeout BIGINT;"
	"CREATE TABLE outcomes ("
	"  server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,"
	"  kind TEXT NOT NULL CHECK (kind IN ('push', 'report')),"
	"  time DOUBLE PRECISION NOT NULL,"
	"  status TEXT NOT NULL"
	"    CHECK (status IN ('ok', 'failed', 'unreachable')),"
	"  error TEXT,"
	"  files_behind BIGINT,"
	"  bytes_sent BIGINT NOT NULL DEFAULT 0,"
	"  bytes_sent_total BIGINT NOT NULL DEFAULT 0,"
	"  last_ok DOUBLE PRECISION,"
	"  rows_total BIGINT NOT NULL DEFAULT 0,"
	"  console TEXT NOT NULL,"
	"  PRIMARY KEY (server, kind));"
	"CREATE TABLE report_rows ("
	"  server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,"
	"  seq BIGINT NOT NULL,"
	"  component TEXT,"
	"  path TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  console_size BIGINT,"
	"  console_mtime BIGINT,"
	"  server_size BIGINT,"
	"  server_mtime BIGINT,"
	"  PRIMARY KEY (server, seq));"
	"CREATE INDEX tasks_ended ON tasks(ended);",

	"ALTER TABLE servers ADD COLUMN via TEXT;"
	"CREATE INDEX servers_via ON servers(via);",
};

/* The URI as shown in messages: any password replaced by "***". */
static char *
display_uri(const char *uri)
{
	const char *host = strstr(uri, "://"), *at, *colon, *slash;
	char *d;

	if (host == NULL)
		return xstrdup(uri);
	host += 3;
	at = strchr(host, '@');
	colon = strchr(host, ':');
	slash = strchr(host, '/');
	if (at == NULL || colon == NULL || colon > at ||
	    (slash != NULL && slash < at))
		return xstrdup(uri);
	d = xasprintf("%.*s:***%s", (int)(colon - uri), uri, at);
	return d;
}

static enum ps_db_rc
res_fail(struct pdb *p, PGresult *res, const char *what)
{
	const char *state = res != NULL ?
	    pq.PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res != NULL ? pq.PQresultErrorMessage(res) : "";

	if (msg == NULL || *msg == '\0')
		msg = pq.PQerrorMessage(p->conn);
	ps_db_seterr(p->db.err, sizeof(p->db.err), "%s: %s: %s",
	    p->db.display, what, msg);
	if (state != NULL && strcmp(state, "23505") == 0)
		return PS_DB_UNIQUE;
	if (state != NULL && strcmp(state, "23503") == 0)
		return PS_DB_FOREIGN;
	return PS_DB_ERROR;
}

/* Is S valid UTF-8 (the database's encoding refuses anything else)? */
static int
utf8_ok(const unsigned char *s)
{
	size_t n, i;

	while (*s != '\0') {
		if (*s < 0x80) {
			s++;
			continue;
		}
		if ((*s & 0xe0) == 0xc0 && *s >= 0xc2)
			n = 1;
		else if ((*s & 0xf0) == 0xe0)
			n = 2;
		else if ((*s & 0xf8) == 0xf0 && *s <= 0xf4)
			n = 3;
		else
			return 0;
		for (i = 1; i <= n; i++)
			if ((s[i] & 0xc0) != 0x80)
				return 0;
		s += n + 1;
	}
	return 1;
}

/* SQL with '?' placeholders as PostgreSQL's $1, $2, ... */
static char *
numbered(const char *sql)
{
	struct buf b = { 0 };
	char num[16];
	int quoted = 0, k = 0;

	for (; *sql != '\0'; sql++) {
		if (*sql == '\'')
			quoted = !quoted;
		if (*sql == '?' && !quoted) {
			snprintf(num, sizeof(num), "$%d", ++k);
			buf_addstr(&b, num);
		} else {
			buf_addc(&b, (unsigned char)*sql);
		}
	}
	buf_addc(&b, '\0');
	return (char *)b.p;
}

static void
copy_rows(PGresult *res, struct ps_dbres *r)
{
	struct ps_dbval *v;
	size_t row, c;

	r->nrows = (size_t)pq.PQntuples(res);
	r->ncols = (size_t)pq.PQnfields(res);
	r->v = xcalloc(r->nrows * r->ncols + 1, sizeof(*r->v));
	for (row = 0; row < r->nrows; row++)
		for (c = 0; c < r->ncols; c++) {
			v = &r->v[row * r->ncols + c];
			v->null = pq.PQgetisnull(res, (int)row, (int)c);
			v->s = xstrdup(pq.PQgetvalue(res, (int)row, (int)c));
			v->i = strtoll(v->s, NULL, 10);
			v->d = strtod(v->s, NULL);
		}
}

static enum ps_db_rc
p_query(struct ps_db *db, const char *sql, const struct ps_dbargs *a,
    struct ps_dbres *r)
{
	struct pdb *p = (struct pdb *)db;
	char *vals[PS_DB_MAXARGS], *q;
	const char *pv[PS_DB_MAXARGS];
	enum ps_db_rc rc = PS_DB_OK;
	ExecStatusType est;
	PGresult *res;
	size_t i, n = a != NULL ? a->n : 0;

	if (r != NULL)
		memset(r, 0, sizeof(*r));
	/* A server restarted between transactions: connect again, once. */
	if (!p->in_tx && pq.PQstatus(p->conn) != CONNECTION_OK)
		pq.PQreset(p->conn);
	for (i = 0; i < n; i++) {
		vals[i] = NULL;
		switch (a->v[i].t) {
		case PS_DBT_NULL:
			break;
		case PS_DBT_INT:
			vals[i] = xasprintf("%lld", (long long)a->v[i].i);
			break;
		case PS_DBT_REAL:
			vals[i] = xasprintf("%.17g", a->v[i].d);
			break;
		case PS_DBT_TEXT:
			vals[i] = utf8_ok((const unsigned char *)a->v[i].s) ?
			    xstrdup(a->v[i].s) : ps_escape(a->v[i].s,
			    strlen(a->v[i].s));
			break;
		}
		pv[i] = vals[i];
	}
	q = numbered(sql);
	res = pq.PQexecParams(p->conn, q, (int)n, NULL, pv, NULL, NULL, 0);
	free(q);
	for (i = 0; i < n; i++)
		free(vals[i]);
	est = res != NULL ? pq.PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (est == PGRES_TUPLES_OK || est == PGRES_COMMAND_OK) {
		if (r != NULL) {
			copy_rows(res, r);
			r->changes = strtoll(pq.PQcmdTuples(res), NULL, 10);
		}
	} else {
		rc = res_fail(p, res, "statement failed");
	}
	pq.PQclear(res);
	return rc;
}

static enum ps_db_rc
simple(struct pdb *p, const char *sql, const char *what)
{
	PGresult *res = pq.PQexec(p->conn, sql);
	ExecStatusType est = res != NULL ? pq.PQresultStatus(res) :
	    PGRES_FATAL_ERROR;
	enum ps_db_rc rc = PS_DB_OK;

	if (est != PGRES_COMMAND_OK && est != PGRES_TUPLES_OK)
		rc = res_fail(p, res, what);
	pq.PQclear(res);
	return rc;
}

static enum ps_db_rc
p_begin(struct ps_db *db)
{
	struct pdb *p = (struct pdb *)db;

	if (pq.PQstatus(p->conn) != CONNECTION_OK)
		pq.PQreset(p->conn);
	if (simple(p, "BEGIN", "cannot start a transaction") != PS_DB_OK)
		return PS_DB_ERROR;
	p->in_tx = 1;
	if (simple(p, WRITE_LOCK, "cannot take the write lock") !=
	    PS_DB_OK) {
		(void)simple(p, "ROLLBACK", "cannot roll back");
		p->in_tx = 0;
		return PS_DB_ERROR;
	}
	return PS_DB_OK;
}

static enum ps_db_rc
p_commit(struct ps_db *db)
{
	struct pdb *p = (struct pdb *)db;
	enum ps_db_rc rc = simple(p, "COMMIT", "cannot commit");

	if (rc != PS_DB_OK && pq.PQtransactionStatus(p->conn) != PQTRANS_IDLE)
		(void)simple(p, "ROLLBACK", "cannot roll back");
	p->in_tx = 0;
	return rc;
}

static void
p_rollback(struct ps_db *db)
{
	struct pdb *p = (struct pdb *)db;
	char keep[sizeof(p->db.err)];

	/* Keep the error that made us roll back. */
	memcpy(keep, p->db.err, sizeof(keep));
	if (pq.PQtransactionStatus(p->conn) != PQTRANS_IDLE)
		(void)simple(p, "ROLLBACK", "cannot roll back");
	memcpy(p->db.err, keep, sizeof(keep));
	p->in_tx = 0;
}

static void
p_close(struct ps_db *db)
{
	struct pdb *p = (struct pdb *)db;

	if (p == NULL)
		return;
	pq.PQfinish(p->conn);
	free(p->db.display);
	free(p);
}

static const struct ps_db_ops pg_ops = {
	p_query, p_begin, p_commit, p_rollback, p_close
};

/* --- schema -------------------------------------------------------- */

/*
 * The schema version: 0 when there is no patchsync schema, -1 after an
 * error (a foreign database, a newer schema).
 */
static long long
schema_version(struct pdb *p)
{
	struct ps_dbres r;
	long long v;
	int has_table, foreign;

	/*
	 * pg_tables, not to_regclass(): a table scan sees what another
	 * console committed just before we took the lock, the catalog cache
	 * may not yet.
	 */
	if (p_query(&p->db, "SELECT count(*) FILTER (WHERE tablename = "
	    "'schema_version'), count(*) FILTER (WHERE tablename IN "
	    "('servers', 'tasks')) FROM pg_catalog.pg_tables WHERE "
	    "schemaname = current_schema()", NULL, &r) != PS_DB_OK)
		return -1;
	has_table = ps_dbres_at(&r, 0, 0)->i > 0;
	foreign = ps_dbres_at(&r, 0, 1)->i > 0;
	ps_dbres_free(&r);
	if (!has_table) {
		if (!foreign)
			return 0;
		ps_db_seterr(p->db.err, sizeof(p->db.err), "%s: a database "
		    "with tables of another program (no schema_version); "
		    "refusing to use it as the state database",
		    p->db.display);
		return -1;
	}
	if (p_query(&p->db, "SELECT version, application FROM schema_version",
	    NULL, &r) != PS_DB_OK)
		return -1;
	v = ps_dbres_at(&r, 0, 0)->i;
	if (r.nrows != 1 || strcmp(ps_dbres_at(&r, 0, 1)->s, "patchsync")
	    != 0) {
		ps_dbres_free(&r);
		ps_db_seterr(p->db.err, sizeof(p->db.err), "%s: its "
		    "schema_version table is not patchsync's; refusing to use "
		    "it", p->db.display);
		return -1;
	}
	ps_dbres_free(&r);
	if (v > PS_DB_SCHEMA_VERSION) {
		ps_db_seterr(p->db.err, sizeof(p->db.err), "%s: written by a "
		    "newer patchsync (schema version %lld; this one knows up "
		    "to %d); refusing to use it", p->db.display, v,
		    PS_DB_SCHEMA_VERSION);
		return -1;
	}
	return v;
}

static enum ps_db_rc
migrate(struct pdb *p)
{
	struct ps_dbargs a = { 0 };
	long long v;

	if (p_begin(&p->db) != PS_DB_OK)
		return PS_DB_ERROR;
	/* Again under the lock: another console may have done it. */
	if ((v = schema_version(p)) < 0)
		goto fail;
	if (v == 0 && simple(p, "CREATE TABLE schema_version ("
	    "application TEXT NOT NULL, version INTEGER NOT NULL);"
	    "INSERT INTO schema_version VALUES ('patchsync', 0)",
	    "cannot create the schema") != PS_DB_OK)
		goto fail;
	for (; v < PS_DB_SCHEMA_VERSION; v++)
		if (simple(p, migrations[v], "cannot migrate the schema") !=
		    PS_DB_OK)
			goto fail;
	ps_db_int(&a, PS_DB_SCHEMA_VERSION);
	if (p_query(&p->db, "UPDATE schema_version SET version = ?", &a,
	    NULL) != PS_DB_OK)
		goto fail;
	return p_commit(&p->db);
fail:
	p_rollback(&p->db);
	return PS_DB_ERROR;
}

/*
 * Server notices (a WARNING as the server shuts down, say) are not ours
 * to print: what fails is reported by the call that failed, in one line.
 */
static void
no_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

enum ps_db_rc
ps_db_pg_open(const char *uri, int flags, struct ps_db **dbp, char *err,
    size_t len)
{
	struct pdb *p;
	long long v;

	*dbp = NULL;
	if (ps_dynlib_need(&libpq) != PS_OK) {
		ps_db_seterr(err, len, "%s", libpq.err);
		return PS_DB_ERROR;
	}
	p = xcalloc(1, sizeof(*p));
	p->db.ops = &pg_ops;
	p->db.display = display_uri(uri);
	/*
	 * A server that does not answer must not hang a cron job for the
	 * minutes TCP would wait: 10 s, unless the URI (connect_timeout)
	 * or the environment says otherwise.
	 */
	setenv("PGCONNECT_TIMEOUT", "10", 0);
	p->conn = pq.PQconnectdb(uri);
	if (p->conn == NULL || pq.PQstatus(p->conn) != CONNECTION_OK) {
		ps_db_seterr(err, len, "%s: cannot connect to the state "
		    "database: %s", p->db.display, p->conn != NULL ?
		    pq.PQerrorMessage(p->conn) : "out of memory");
		p_close(&p->db);
		return PS_DB_ERROR;
	}
	pq.PQsetNoticeProcessor(p->conn, no_notices, NULL);
	if (pq.PQsetClientEncoding(p->conn, "UTF8") != 0)
		ps_db_seterr(p->db.err, sizeof(p->db.err), "%s: cannot use "
		    "UTF8: %s", p->db.display, pq.PQerrorMessage(p->conn));
	if (p->db.err[0] != '\0' || simple(p, "SET client_min_messages = "
	    "warning", "cannot configure the session") != PS_DB_OK ||
	    (v = schema_version(p)) < 0 ||
	    (v == 0 && !(flags & PS_DB_CREATE)) ||
	    (v < PS_DB_SCHEMA_VERSION && migrate(p) != PS_DB_OK)) {
		enum ps_db_rc rc = PS_DB_ERROR;

		if (p->db.err[0] == '\0')
			rc = PS_DB_ABSENT;
		snprintf(err, len, "%s", p->db.err);
		p_close(&p->db);
		return rc;
	}
	*dbp = &p->db;
	return PS_DB_OK;
}
