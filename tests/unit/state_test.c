/* Unit tests for the state database (src/state.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <signal.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "conf.h"
#include "ps.h"
#include "state.h"
#include "task.h"

/*
 * Every test runs on the backend given by PS_TEST_PG: unset, SQLite
 * files; set (tests/unit/state_test_pg.sh, through tests/pg-cluster), a
 * fresh database per test on that PostgreSQL server.
 */
static const char *pg_base;	/* PS_TEST_PG: the server's URI */
static int pg_serial;

struct fix {
	char dir[64];
	char *db;		/* SQLite: DIR/a/b/state.db (dirs not made yet);
				   PostgreSQL: the URI of a new database */
	struct ps_state *st;
};

/* The URI of database NAME on the server of PG_BASE. */
static char *
pg_uri(const char *name)
{
	const char *q = strchr(pg_base, '?'), *slash;

	assert_non_null(q);
	for (slash = q; slash > pg_base && *slash != '/'; slash--)
		;
	assert_true(*slash == '/');
	return xasprintf("%.*s/%s%s", (int)(slash - pg_base), pg_base, name,
	    q);
}

static void
pg_exec(const char *uri, const char *sql)
{
	PGconn *c = PQconnectdb(uri);
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("%s: %s", uri, PQerrorMessage(c));
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

static int
setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));
	char *sql, name[32];

	snprintf(f->dir, sizeof(f->dir), "/tmp/ps-state-test.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	if (pg_base != NULL) {
		snprintf(name, sizeof(name), "t%d_%d", (int)getpid(),
		    ++pg_serial);
		sql = xasprintf("CREATE DATABASE %s", name);
		pg_exec(pg_base, sql);
		free(sql);
		f->db = pg_uri(name);
	} else {
		f->db = xasprintf("%s/a/b/state.db", f->dir);
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;
	char *cmd;

	ps_state_close(f->st);
	cmd = xasprintf("rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(cmd);
	free(f->db);
	free(f);
	return 0;
}

/* Open F->db in F->st (must work). */
static struct ps_state *
open_ok(struct fix *f)
{
	if (f->st == NULL)
		assert_int_equal(ps_state_open(f->db, &f->st), PS_OK);
	return f->st;
}

static char *
slurp(const char *path, size_t *len)
{
	struct buf b = { 0 };
	char tmp[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_add(&b, tmp, (size_t)n);
	close(fd);
	*len = b.len;
	return (char *)b.p;
}

/* Run SQL on PATH with plain SQLite or libpq, as another program would. */
static void
raw_sql(const char *path, const char *sql)
{
	sqlite3 *db;

	if (pg_base != NULL) {
		pg_exec(path, sql);
		return;
	}
	char *err = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	sqlite3_close(db);
}

static long long
raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	long long v = -1;

	if (pg_base != NULL) {
		PGconn *c = PQconnectdb(path);
		PGresult *r = PQexec(c, sql);

		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			fail_msg("%s: %s", sql, PQerrorMessage(c));
		if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
			v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		PQfinish(c);
		return v;
	}
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void
add_server(struct ps_state *st, const char *name, int download_source)
{
	struct ps_server sv = { 0 };

	sv.name = (char *)name;
	sv.url = (char *)"/srv/dist";
	sv.download_source = download_source;
	assert_int_equal(ps_state_server_add(st, &sv), PS_OK);
}

static void
test_open_create(void **state)
{
	struct fix *f = *state;
	struct stat sb;
	char *dir;

	open_ok(f);
	assert_int_equal(stat(f->db, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0640);
	dir = xasprintf("%s/a/b", f->dir);
	assert_int_equal(stat(dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	free(dir);
	add_server(f->st, "one", 0);
	ps_state_close(f->st);
	f->st = NULL;

	assert_int_equal(raw_int(f->db, "PRAGMA application_id"),
	    PS_STATE_APP_ID);
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"),
	    PS_STATE_VERSION);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM servers"), 1);
	/* Reopen: the data is there and nothing is re-created. */
	open_ok(f);
	add_server(f->st, "two", 0);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM servers"), 2);
}

/* Several processes creating the same new database at once all succeed. */
static void
test_open_concurrent(void **state)
{
	enum { PROCS = 6 };
	struct fix *f = *state;
	struct ps_state *st;
	int go[2], status, k;
	pid_t pid[PROCS];
	char c;

	assert_int_equal(pipe(go), 0);
	for (k = 0; k < PROCS; k++) {
		pid[k] = fork();
		assert_true(pid[k] >= 0);
		if (pid[k] == 0) {
			close(go[1]);
			if (read(go[0], &c, 1) != 1)
				_exit(2);
			if (ps_state_open(f->db, &st) != PS_OK)
				_exit(1);
			add_server(st, k == 0 ? "p0" : k == 1 ? "p1" : k == 2 ?
			    "p2" : k == 3 ? "p3" : k == 4 ? "p4" : "p5", 0);
			ps_state_close(st);
			_exit(0);
		}
	}
	close(go[0]);
	assert_int_equal(write(go[1], "xxxxxx", PROCS), PROCS);
	close(go[1]);
	for (k = 0; k < PROCS; k++) {
		assert_int_equal(waitpid(pid[k], &status, 0), pid[k]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM servers"), PROCS);
}

static void
test_open_empty_file(void **state)
{
	struct fix *f = *state;
	char *p = xasprintf("%s/empty.db", f->dir);
	struct ps_state *st;
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);

	assert_true(fd >= 0);
	close(fd);
	/* An empty file holds nothing to lose: it becomes a state db. */
	assert_int_equal(ps_state_open(p, &st), PS_OK);
	ps_state_close(st);
	assert_int_equal(raw_int(p, "PRAGMA application_id"), PS_STATE_APP_ID);
	free(p);
}

/* Opening PATH must fail and leave its bytes exactly as they were. */
static void
check_refused(const char *path)
{
	struct ps_state *st = NULL;
	size_t len0, len1;
	char *before = slurp(path, &len0), *after;

	assert_int_equal(ps_state_open(path, &st), PS_EUSAGE);
	assert_null(st);
	after = slurp(path, &len1);
	assert_int_equal(len0, len1);
	assert_memory_equal(before, after, len0);
	free(before);
	free(after);
}

static void
test_refuse_foreign(void **state)
{
	struct fix *f = *state;
	char *text = xasprintf("%s/notes.txt", f->dir);
	char *other = xasprintf("%s/other.db", f->dir);
	char *marked = xasprintf("%s/marked.db", f->dir);
	char *shortf = xasprintf("%s/short", f->dir);
	FILE *fp;

	fp = fopen(text, "w");
	assert_non_null(fp);
	fputs("this is not a database, it is someone's notes\n", fp);
	fclose(fp);
	check_refused(text);

	fp = fopen(shortf, "w");
	assert_non_null(fp);
	fputs("SQLite", fp);
	fclose(fp);
	check_refused(shortf);

	/* Another program's SQLite database. */
	raw_sql(other, "CREATE TABLE inventory (id INTEGER PRIMARY KEY, "
	    "what TEXT); INSERT INTO inventory (what) VALUES ('x');");
	check_refused(other);
	assert_int_equal(raw_int(other, "SELECT count(*) FROM inventory"), 1);

	/* Our user_version but someone else's application_id. */
	raw_sql(marked, "PRAGMA application_id = 1234; PRAGMA user_version = 1;"
	    "CREATE TABLE servers (x);");
	check_refused(marked);
	free(text);
	free(other);
	free(marked);
	free(shortf);
}

static void
test_refuse_newer(void **state)
{
	struct fix *f = *state;

	open_ok(f);
	add_server(f->st, "kept", 0);
	ps_state_close(f->st);
	f->st = NULL;
	/* A future patchsync wrote it; out of WAL, so one file holds all. */
	raw_sql(f->db,
	    "PRAGMA user_version = 99; PRAGMA journal_mode = DELETE;");
	check_refused(f->db);
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 99);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM servers"), 1);
}

static void
test_servers(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	struct ps_server sv = { 0 }, *v;
	size_t n;
	int64_t id;

	sv.name = (char *)"zeta";
	sv.url = (char *)"user@host:/srv/dist";
	sv.identity_file = (char *)"/etc/patchsync/id";
	sv.rsh = (char *)"ssh -p 2222";
	assert_int_equal(ps_state_server_add(st, &sv), PS_OK);
	assert_int_equal(ps_state_server_add(st, &sv), PS_EUSAGE); /* dup */
	add_server(st, "alpha", 1);
	sv.name = (char *)"-bad";
	assert_int_equal(ps_state_server_add(st, &sv), PS_EUSAGE);
	sv.name = (char *)"a/b";
	assert_int_equal(ps_state_server_add(st, &sv), PS_EUSAGE);
	sv.name = (char *)"nourl";
	sv.url = (char *)"";
	assert_int_equal(ps_state_server_add(st, &sv), PS_EUSAGE);

	assert_int_equal(ps_state_server_get(st, "zeta", &sv), PS_OK);
	assert_string_equal(sv.url, "user@host:/srv/dist");
	assert_string_equal(sv.identity_file, "/etc/patchsync/id");
	assert_null(sv.secret_file);
	assert_string_equal(sv.rsh, "ssh -p 2222");
	assert_int_equal(sv.download_source, 0);
	assert_true(sv.created > 0);
	ps_server_free(&sv);
	assert_int_equal(ps_state_server_get(st, "nope", &sv), PS_EUSAGE);

	assert_int_equal(ps_state_server_list(st, &v, &n), PS_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "alpha");
	assert_int_equal(v[0].download_source, 1);
	assert_string_equal(v[1].name, "zeta");
	ps_server_list_free(v, n);

	/* In use by a schedule: refused until the schedule is gone. */
	assert_int_equal(ps_state_schedule_add(st, "c1", "zeta", "", "@daily",
	    time(NULL), &id), PS_OK);
	assert_int_equal(ps_state_server_remove(st, "zeta"), PS_EUSAGE);
	assert_int_equal(ps_state_schedule_delete(st, id), PS_OK);
	assert_int_equal(ps_state_server_remove(st, "zeta"), PS_OK);
	assert_int_equal(ps_state_server_remove(st, "zeta"), PS_EUSAGE);
	assert_int_equal(ps_state_server_list(st, &v, &n), PS_OK);
	assert_int_equal(n, 1);
	ps_server_list_free(v, n);
}

static void
test_schedules(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	struct ps_schedule sc, *v;
	struct ps_schedule_edit e = { 0 };
	struct ps_claim cl;
	struct ps_task t;
	time_t now = 1710497220;	/* 2024-03-15 10:07 UTC */
	int64_t a, b, c;
	size_t n;

	add_server(st, "s1", 0);
	add_server(st, "s2", 0);
	add_server(st, "mirror", 1);
	assert_int_equal(ps_state_schedule_add(st, "console-a", "s1",
	    "patches,engines", "0 3 * * *", now, &a), PS_OK);
	assert_int_equal(ps_state_schedule_add(st, "console-b", "s2", "",
	    "@hourly", now, &b), PS_OK);
	assert_true(b > a);
	/* Refusals. */
	assert_int_equal(ps_state_schedule_add(st, "console-a", "s1", "",
	    "0 24 * * *", now, &c), PS_EUSAGE);
	assert_int_equal(ps_state_schedule_add(st, "console-a", "nope", "",
	    "@daily", now, &c), PS_EUSAGE);
	assert_int_equal(ps_state_schedule_add(st, "console-a", "mirror", "",
	    "@daily", now, &c), PS_EUSAGE);
	assert_int_equal(ps_state_schedule_add(st, "console-a", "s1",
	    "Patches", "@daily", now, &c), PS_EUSAGE);
	assert_int_equal(ps_state_schedule_add(st, "console-a", "s1",
	    "a,,b", "@daily", now, &c), PS_EUSAGE);

	assert_int_equal(ps_state_schedule_get(st, a, &sc), PS_OK);
	assert_string_equal(sc.owner, "console-a");
	assert_string_equal(sc.server, "s1");
	assert_string_equal(sc.components, "patches,engines");
	assert_string_equal(sc.cron, "0 3 * * *");
	setenv("TZ", "UTC", 1);
	tzset();
	assert_true(sc.next_run > now);
	assert_int_equal(sc.last_run, 0);
	assert_null(sc.last_result);
	ps_schedule_free(&sc);

	assert_int_equal(ps_state_schedule_list(st, &v, &n), PS_OK);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, a);
	assert_string_equal(v[1].owner, "console-b");
	ps_schedule_list_free(v, n);

	/* Editing: only the owner; only the fields given. */
	e.cron = "30 4 * * *";
	assert_int_equal(ps_state_schedule_edit(st, "console-b", a, &e, now),
	    PS_EUSAGE);
	assert_int_equal(ps_state_schedule_edit(st, "console-a", a, &e, now),
	    PS_OK);
	assert_int_equal(ps_state_schedule_get(st, a, &sc), PS_OK);
	assert_string_equal(sc.cron, "30 4 * * *");
	assert_int_equal(sc.next_run, 1710563400); /* 2024-03-16 04:30 UTC */
	assert_string_equal(sc.server, "s1");
	ps_schedule_free(&sc);
	e.cron = NULL;
	e.server = "mirror";
	assert_int_equal(ps_state_schedule_edit(st, "console-a", a, &e, now),
	    PS_EUSAGE);
	e.server = "s2";
	e.components = "definitions";
	assert_int_equal(ps_state_schedule_edit(st, "console-a", a, &e, now),
	    PS_OK);
	assert_int_equal(ps_state_schedule_get(st, a, &sc), PS_OK);
	assert_string_equal(sc.server, "s2");
	assert_string_equal(sc.components, "definitions");
	assert_string_equal(sc.cron, "30 4 * * *");
	ps_schedule_free(&sc);
	e.server = NULL;
	e.components = NULL;
	e.cron = "bogus";
	assert_int_equal(ps_state_schedule_edit(st, "console-a", a, &e, now),
	    PS_EUSAGE);
	e.cron = "@daily";
	assert_int_equal(ps_state_schedule_edit(st, "console-a", 999, &e, now),
	    PS_EUSAGE);

	/* Run now: only the owner; makes a queued run-now task. */
	assert_int_equal(ps_state_schedule_run_now(st, "console-a", b, &cl),
	    PS_EUSAGE);
	assert_int_equal(ps_state_schedule_run_now(st, "console-b", b, &cl),
	    PS_OK);
	assert_int_equal(cl.schedule_id, b);
	assert_string_equal(cl.server, "s2");
	assert_int_equal(ps_state_task_get(st, cl.task_id, &t), PS_OK);
	assert_int_equal(t.kind, PS_TASK_RUN_NOW);
	assert_int_equal(t.state, PS_TASK_QUEUED);
	assert_int_equal(t.schedule_id, b);
	assert_int_equal(t.pid, getpid());
	ps_task_free(&t);
	assert_int_equal(ps_state_schedule_get(st, b, &sc), PS_OK);
	assert_int_equal(sc.last_task, cl.task_id);
	assert_string_equal(sc.last_result, "queued");
	ps_schedule_free(&sc);

	/* Finishing the task records the result on the schedule. */
	assert_int_equal(ps_state_task_set_state(st, cl.task_id,
	    PS_TASK_RUNNING, -1, NULL), PS_OK);
	assert_int_equal(ps_state_task_set_state(st, cl.task_id,
	    PS_TASK_SUCCEEDED, 0, "{\"files\":3}"), PS_OK);
	assert_int_equal(ps_state_task_set_state(st, cl.task_id,
	    PS_TASK_FAILED, 4, NULL), PS_EUSAGE);	/* already ended */
	assert_int_equal(ps_state_task_get(st, cl.task_id, &t), PS_OK);
	assert_int_equal(t.state, PS_TASK_SUCCEEDED);
	assert_int_equal(t.exit_code, 0);
	assert_string_equal(t.stats, "{\"files\":3}");
	assert_true(t.started > 0 && t.ended >= t.started);
	ps_task_free(&t);
	assert_int_equal(ps_state_schedule_get(st, b, &sc), PS_OK);
	assert_string_equal(sc.last_result, "succeeded");
	ps_schedule_free(&sc);
	ps_claim_free(&cl);

	/* Any console may delete; the task's history stays. */
	assert_int_equal(ps_state_schedule_delete(st, b), PS_OK);
	assert_int_equal(ps_state_schedule_delete(st, b), PS_EUSAGE);
	assert_int_equal(ps_state_schedule_get(st, b, &sc), PS_EUSAGE);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM tasks "
	    "WHERE schedule_id IS NULL"), 1);
	/* Ids are not reused after a delete. */
	assert_int_equal(ps_state_schedule_add(st, "console-b", "s2", "",
	    "@hourly", now, &c), PS_OK);
	assert_true(c > b);
}

/* Child: open, wait for the start signal, claim, report the count. */
static void
claim_child(const char *db, int go, int out)
{
	struct ps_state *st;
	struct ps_claim *v;
	size_t n = 0;
	char c;
	int r;

	ps_quiet = 1;
	if (ps_state_open(db, &st) != PS_OK)
		_exit(100);
	if (read(go, &c, 1) != 1)
		_exit(101);
	r = ps_state_schedule_claim_due(st, "console-a", time(NULL), &v, &n);
	ps_claim_list_free(v, n);
	ps_state_close(st);
	if (r != PS_OK)
		_exit(102);
	if (write(out, &n, sizeof(n)) != (ssize_t)sizeof(n))
		_exit(103);
	_exit(0);
}

static void
test_claim_due_race(void **state)
{
	enum { PROCS = 4, DUE = 6, ROUNDS = 5 };
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	struct ps_schedule *v;
	time_t past = time(NULL) - 3 * 3600;
	int go[2], out[2], status, i, k, round;
	size_t n, total, got;
	pid_t pid[PROCS];
	int64_t id;

	add_server(st, "s1", 0);
	for (round = 0; round < ROUNDS; round++) {
		/* DUE of console-a's, one of console-b's, one not yet due. */
		for (i = 0; i < DUE; i++)
			assert_int_equal(ps_state_schedule_add(st, "console-a",
			    "s1", "", "* * * * *", past, &id), PS_OK);
		assert_int_equal(ps_state_schedule_add(st, "console-b", "s1",
		    "", "* * * * *", past, &id), PS_OK);
		assert_int_equal(ps_state_schedule_add(st, "console-a", "s1",
		    "", "0 0 1 1 *", time(NULL), &id), PS_OK);
		assert_int_equal(pipe(go), 0);
		assert_int_equal(pipe(out), 0);
		for (k = 0; k < PROCS; k++) {
			pid[k] = fork();
			assert_true(pid[k] >= 0);
			if (pid[k] == 0) {
				close(go[1]);
				close(out[0]);
				claim_child(f->db, go[0], out[1]);
			}
		}
		close(go[0]);
		close(out[1]);
		/* Release them all at once. */
		assert_int_equal(write(go[1], "xxxx", PROCS), PROCS);
		close(go[1]);
		total = 0;
		for (k = 0; k < PROCS; k++) {
			assert_int_equal(waitpid(pid[k], &status, 0), pid[k]);
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 0);
		}
		for (k = 0; k < PROCS; k++) {
			assert_int_equal(read(out[0], &got, sizeof(got)),
			    sizeof(got));
			total += got;
		}
		close(out[0]);
		assert_int_equal(total, DUE);
	}
	/* Every claim made exactly one task; nothing left due. */
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM tasks WHERE "
	    "kind = 'scheduled' AND state IN ('queued', 'interrupted')"),
	    DUE * ROUNDS);
	assert_int_equal(raw_int(f->db, "SELECT max(c) FROM (SELECT count(*) "
	    "AS c FROM tasks GROUP BY schedule_id) AS x"), 1);
	assert_int_equal(ps_state_schedule_list(st, &v, &n), PS_OK);
	for (i = 0; i < (int)n; i++) {
		if (strcmp(v[i].owner, "console-a") == 0 &&
		    strcmp(v[i].cron, "* * * * *") == 0) {
			assert_true(v[i].next_run > time(NULL) - 5);
			assert_true(v[i].last_task != 0);
		} else {
			assert_int_equal(v[i].last_task, 0);
		}
	}
	ps_schedule_list_free(v, n);
}

static void
test_missed_runs_once(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	struct ps_claim *v;
	struct ps_schedule sc;
	time_t t0 = 1710496800;		/* 2024-03-15 10:00 UTC */
	size_t n;
	int64_t id;

	setenv("TZ", "UTC", 1);
	tzset();
	add_server(st, "s1", 0);
	assert_int_equal(ps_state_schedule_add(st, "c", "s1", "", "@hourly",
	    t0 - 60, &id), PS_OK);
	/* Three slots missed: one claim, next_run moves past NOW. */
	assert_int_equal(ps_state_schedule_claim_due(st, "c", t0 + 3 * 3600 +
	    1200, &v, &n), PS_OK);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].schedule_id, id);
	ps_claim_list_free(v, n);
	assert_int_equal(ps_state_schedule_claim_due(st, "c", t0 + 3 * 3600 +
	    1300, &v, &n), PS_OK);
	assert_int_equal(n, 0);
	ps_claim_list_free(v, n);
	assert_int_equal(ps_state_schedule_get(st, id, &sc), PS_OK);
	assert_int_equal(sc.next_run, t0 + 4 * 3600);
	assert_int_equal(sc.last_run, t0 + 3 * 3600 + 1200);
	ps_schedule_free(&sc);
}

static void
test_reap(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	struct ps_state *cst;
	struct ps_task t, *v;
	int64_t dead_id = 0, live, reused, far;
	int fds[2], status;
	size_t n, reaped;
	pid_t pid;
	char *sql;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* A worker that dies without saying so. */
		if (ps_state_open(f->db, &cst) != PS_OK ||
		    ps_state_task_create(cst, PS_TASK_MANUAL, 0, "c", "s1", "",
		    &dead_id) != PS_OK ||
		    ps_state_task_set_state(cst, dead_id, PS_TASK_RUNNING, -1,
		    NULL) != PS_OK)
			_exit(1);
		ps_state_close(cst);
		if (write(fds[1], &dead_id, sizeof(dead_id)) != sizeof(dead_id))
			_exit(2);
		_exit(0);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &dead_id, sizeof(dead_id)),
	    sizeof(dead_id));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	assert_int_equal(ps_state_task_create(st, PS_TASK_MANUAL, 0, "c", "s1",
	    "", &live), PS_OK);
	assert_int_equal(ps_state_task_create(st, PS_TASK_MANUAL, 0, "c", "s1",
	    "", &reused), PS_OK);
	assert_int_equal(ps_state_task_create(st, PS_TASK_MANUAL, 0, "c", "s1",
	    "", &far), PS_OK);
	/* Our pid, but another start time: the pid was reused. */
	sql = xasprintf("UPDATE tasks SET pid_start = pid_start + 1 "
	    "WHERE id = %lld", (long long)reused);
	raw_sql(f->db, sql);
	free(sql);
	/* A dead pid on another host: not ours to judge. */
	sql = xasprintf("UPDATE tasks SET host = 'elsewhere', pid = %ld "
	    "WHERE id = %lld", (long)pid, (long long)far);
	raw_sql(f->db, sql);
	free(sql);

	assert_int_equal(ps_state_task_reap(st, &reaped), PS_OK);
	assert_int_equal(reaped, 2);
	assert_int_equal(ps_state_task_reap(st, &reaped), PS_OK);
	assert_int_equal(reaped, 0);
	assert_int_equal(ps_state_task_get(st, dead_id, &t), PS_OK);
	assert_int_equal(t.state, PS_TASK_INTERRUPTED);
	assert_int_equal(t.pid, pid);
	assert_true(t.ended > 0);
	ps_task_free(&t);
	assert_int_equal(ps_state_task_list(st, 0, &v, &n), PS_OK);
	assert_int_equal(n, 4);
	assert_int_equal(v[0].id, dead_id);
	assert_int_equal(v[1].state, PS_TASK_QUEUED);		/* live */
	assert_int_equal(v[2].state, PS_TASK_INTERRUPTED);	/* reused */
	assert_int_equal(v[3].state, PS_TASK_QUEUED);		/* far */
	ps_task_list_free(v, n);
	assert_int_equal(ps_state_task_list(st, 2, &v, &n), PS_OK);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, reused);
	assert_int_equal(v[1].id, far);
	ps_task_list_free(v, n);
	sql = xasprintf("SELECT count(*) FROM events WHERE task_id = %lld AND "
	    "kind = 'end' AND level = 'error'", (long long)dead_id);
	assert_int_equal(raw_int(f->db, sql), 1);
	free(sql);
	/* Handing a task to a live process keeps it alive. */
	assert_int_equal(ps_state_task_set_owner(st, live, getppid()), PS_OK);
	assert_int_equal(ps_state_task_reap(st, &reaped), PS_OK);
	assert_int_equal(reaped, 0);
	assert_int_equal(ps_state_task_set_owner(st, dead_id, getpid()),
	    PS_EUSAGE);
}

struct seen {
	int64_t ids[32];
	size_t n;
	size_t stop_after;	/* 0: never stop */
};

static int
collect(const struct ps_event *ev, void *arg)
{
	struct seen *s = arg;

	assert_true(s->n < 32);
	assert_non_null(ev->server);
	s->ids[s->n++] = ev->id;
	return s->stop_after != 0 && s->n == s->stop_after ? 42 : 0;
}

static void
walk(struct ps_state *st, const struct ps_event_filter *fl, struct seen *s,
    int want_r)
{
	s->n = 0;
	assert_int_equal(ps_state_events(st, fl, collect, s), want_r);
}

static void
test_events(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	struct ps_event_filter fl = { 0 };
	struct seen s = { 0 };
	int64_t t1, t2;
	long long first;
	int i;

	assert_int_equal(ps_state_task_create(st, PS_TASK_MANUAL, 0, "c", "s1",
	    "", &t1), PS_OK);
	assert_int_equal(ps_state_task_create(st, PS_TASK_MANUAL, 0, "c", "s2",
	    "", &t2), PS_OK);
	for (i = 0; i < 5; i++) {
		assert_int_equal(ps_state_event_add(st, t1, "progress", "info",
		    "t1 progress", "{\"files\":1}"), PS_OK);
		assert_int_equal(ps_state_event_add(st, t2, "file-error",
		    "warning", "t2 problem", NULL), PS_OK);
	}
	assert_int_equal(ps_state_event_add(st, t1, "end", "loud", "x", NULL),
	    PS_EUSAGE);
	assert_int_equal(ps_state_event_add(st, 9999, "end", "info", "x",
	    NULL), PS_EUSAGE);
	first = raw_int(f->db, "SELECT min(id) FROM events");

	walk(st, &fl, &s, PS_OK);
	assert_int_equal(s.n, 10);
	for (i = 1; i < 10; i++)
		assert_true(s.ids[i] > s.ids[i - 1]);	/* oldest first */
	fl.task = t1;
	walk(st, &fl, &s, PS_OK);
	assert_int_equal(s.n, 5);
	assert_int_equal(s.ids[0], first);
	fl.task = 0;
	fl.server = "s2";
	walk(st, &fl, &s, PS_OK);
	assert_int_equal(s.n, 5);
	assert_int_equal(s.ids[0], first + 1);
	fl.server = "s3";
	walk(st, &fl, &s, PS_OK);
	assert_int_equal(s.n, 0);
	/* --follow: only what came after the last id seen. */
	fl.server = NULL;
	fl.after_id = first + 7;
	walk(st, &fl, &s, PS_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.ids[0], first + 8);
	/* --limit: the newest N, oldest first. */
	fl.after_id = 0;
	fl.limit = 3;
	walk(st, &fl, &s, PS_OK);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.ids[0], first + 7);
	assert_int_equal(s.ids[2], first + 9);
	fl.task = t2;
	fl.limit = 2;
	walk(st, &fl, &s, PS_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.ids[0], first + 7);
	assert_int_equal(s.ids[1], first + 9);
	/* The callback can stop the walk. */
	fl.task = 0;
	fl.limit = 0;
	s.stop_after = 4;
	walk(st, &fl, &s, 42);
	assert_int_equal(s.n, 4);
	s.stop_after = 0;

	/*
	 * --server: also a task that pushed to several servers, that one
	 * among them, and only a whole name ('_' is no wildcard).
	 */
	assert_int_equal(ps_state_task_create(st, PS_TASK_MANUAL, 0, "c",
	    "ax1,s3,relay", "", &t1), PS_OK);
	assert_int_equal(ps_state_event_add(st, t1, "server", "info",
	    "s3 via relay: ok", NULL), PS_OK);
	for (i = 0; i < 4; i++) {
		fl.server = (const char *[]){ "s3", "relay", "ax1", "a" }[i];
		walk(st, &fl, &s, PS_OK);
		assert_int_equal(s.n, i < 3 ? 1 : 0);
	}
	fl.server = "a_1";
	walk(st, &fl, &s, PS_OK);
	assert_int_equal(s.n, 0);
}

/* --- PostgreSQL's own checks of what it opens ------------------------- */

static void
test_pg_open_create(void **state)
{
	struct fix *f = *state;

	open_ok(f);
	add_server(f->st, "one", 0);
	ps_state_close(f->st);
	f->st = NULL;
	assert_int_equal(raw_int(f->db, "SELECT version FROM schema_version"),
	    PS_STATE_VERSION);
	open_ok(f);
	add_server(f->st, "two", 0);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM servers"), 2);
}

static void
test_pg_refuse(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = NULL;

	/* Another program's tables, no schema_version: left alone. */
	raw_sql(f->db, "CREATE TABLE servers (x INTEGER)");
	assert_int_equal(ps_state_open(f->db, &st), PS_EUSAGE);
	assert_null(st);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM "
	    "information_schema.tables WHERE table_name = 'tasks'"), 0);
	raw_sql(f->db, "DROP TABLE servers");
	/* A newer patchsync's. */
	open_ok(f);
	ps_state_close(f->st);
	f->st = NULL;
	raw_sql(f->db, "UPDATE schema_version SET version = 99");
	assert_int_equal(ps_state_open(f->db, &st), PS_EUSAGE);
	assert_null(st);
	assert_int_equal(raw_int(f->db, "SELECT version FROM schema_version"),
	    99);
	/* Not reachable: one error, no handle. */
	assert_int_equal(ps_state_open("postgresql:///nosuchdb?"
	    "host=/nonexistent", &st), PS_EUSAGE);
	assert_null(st);
}

/* --- both backends ----------------------------------------------------- */

/* Commands that store nothing create nothing (SPEC 10.8). */
static void
test_open_existing(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = (struct ps_state *)1;
	struct stat sb;
	char *dir = xasprintf("%s/a", f->dir);

	assert_int_equal(ps_state_open_existing(f->db, &st), PS_OK);
	assert_null(st);
	if (pg_base == NULL) {
		assert_int_equal(stat(dir, &sb), -1);	/* not even the dir */
	} else {
		assert_int_equal(raw_int(f->db, "SELECT count(*) FROM "
		    "information_schema.tables WHERE table_schema = "
		    "'public'"), 0);
	}
	free(dir);
	open_ok(f);
	add_server(f->st, "s", 0);
	assert_int_equal(ps_state_open_existing(f->db, &st), PS_OK);
	assert_non_null(st);
	ps_state_close(st);
}

/* A version 1 database (before servers had limits) migrates in place. */
static void
test_migrate_v1(void **state)
{
	struct fix *f = *state;
	struct ps_server sv;

	open_ok(f);
	add_server(f->st, "old", 0);
	ps_state_close(f->st);
	f->st = NULL;
	/* What version 1 was: v2's additions taken away again. */
	raw_sql(f->db, "DROP TABLE report_rows; DROP TABLE outcomes; "
	    "DROP INDEX tasks_ended; DROP INDEX servers_via; "
	    "ALTER TABLE servers DROP COLUMN via; "
	    "ALTER TABLE servers DROP COLUMN timeout; "
	    "ALTER TABLE servers DROP COLUMN bwlimit; "
	    "ALTER TABLE servers DROP COLUMN remote_path");
	raw_sql(f->db, pg_base != NULL ? "UPDATE schema_version SET "
	    "version = 1" : "PRAGMA user_version = 1");
	open_ok(f);
	assert_int_equal(raw_int(f->db, pg_base != NULL ? "SELECT version "
	    "FROM schema_version" : "PRAGMA user_version"), PS_STATE_VERSION);
	assert_int_equal(ps_state_server_get(f->st, "old", &sv), PS_OK);
	assert_null(sv.remote_path);
	assert_int_equal(sv.bwlimit, 0);
	assert_int_equal(sv.timeout, -1);
	assert_null(sv.via);
	ps_server_free(&sv);
}

/* A version 2 database (before relays) migrates in place. */
static void
test_migrate_v2(void **state)
{
	struct fix *f = *state;
	struct ps_server sv;

	open_ok(f);
	add_server(f->st, "old", 0);
	ps_state_close(f->st);
	f->st = NULL;
	raw_sql(f->db, "DROP INDEX servers_via; "
	    "ALTER TABLE servers DROP COLUMN via");
	raw_sql(f->db, pg_base != NULL ? "UPDATE schema_version SET "
	    "version = 2" : "PRAGMA user_version = 2");
	open_ok(f);
	assert_int_equal(raw_int(f->db, pg_base != NULL ? "SELECT version "
	    "FROM schema_version" : "PRAGMA user_version"), 3);
	assert_int_equal(ps_state_server_get(f->st, "old", &sv), PS_OK);
	assert_null(sv.via);
	ps_server_free(&sv);
}

static int
add_via(struct ps_state *st, const char *name, const char *via)
{
	struct ps_server sv = { 0 };

	sv.name = (char *)name;
	sv.url = (char *)"host:/srv/dist";
	sv.via = (char *)via;
	return ps_state_server_add(st, &sv);
}

/* Relays: chains up to PS_VIA_MAX_DEPTH, no cycle, no credentials. */
static void
test_relays(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	struct ps_server_edit e;
	struct ps_server sv, *v;
	char name[16], prev[16];
	size_t n;
	int i;

	ps_state_set_quiet(st, 1);
	add_server(st, "relay", 0);
	add_server(st, "mirror", 1);
	assert_int_equal(add_via(st, "dist5", "relay"), PS_OK);
	assert_int_equal(ps_state_server_get(st, "dist5", &sv), PS_OK);
	assert_string_equal(sv.via, "relay");
	ps_server_free(&sv);
	assert_int_equal(add_via(st, "x", "nosuch"), PS_EUSAGE);
	assert_non_null(strstr(ps_state_error(st), "unknown relay nosuch"));
	assert_int_equal(add_via(st, "x", "x"), PS_EUSAGE);
	assert_int_equal(add_via(st, "x", "mirror"), PS_EUSAGE);
	assert_non_null(strstr(ps_state_error(st), "download source"));
	/* Behind a relay: the relay's own keys, never ours. */
	memset(&sv, 0, sizeof(sv));
	sv.name = (char *)"k";
	sv.url = (char *)"host:/srv";
	sv.via = (char *)"relay";
	sv.identity_file = (char *)"/root/.ssh/k";
	assert_int_equal(ps_state_server_add(st, &sv), PS_EUSAGE);
	assert_non_null(strstr(ps_state_error(st), "--identity"));

	/* A cycle: relay through dist5, which is behind relay. */
	memset(&e, 0, sizeof(e));
	e.bwlimit = -1;
	e.timeout = PS_KEEP;
	e.download_source = -1;
	e.via = "dist5";
	assert_int_equal(ps_state_server_edit(st, "relay", &e), PS_EUSAGE);
	assert_non_null(strstr(ps_state_error(st), "cycle"));
	/* The relay of someone cannot become a download source. */
	e.via = NULL;
	e.download_source = 1;
	assert_int_equal(ps_state_server_edit(st, "relay", &e), PS_EUSAGE);
	e.download_source = -1;
	/* Nor be removed while servers are behind it. */
	assert_int_equal(ps_state_server_remove(st, "relay"), PS_EUSAGE);
	assert_non_null(strstr(ps_state_error(st), "relay of dist5"));

	/* A chain: r1 <- r2 <- ... as deep as allowed, and no deeper. */
	snprintf(prev, sizeof(prev), "dist5");
	for (i = 2; i <= PS_VIA_MAX_DEPTH; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		assert_int_equal(add_via(st, name, prev), PS_OK);
		snprintf(prev, sizeof(prev), "%s", name);
	}
	assert_int_equal(add_via(st, "deep", prev), PS_EUSAGE);
	assert_non_null(strstr(ps_state_error(st), "relays away"));
	assert_int_equal(ps_state_server_list(st, &v, &n), PS_OK);
	assert_int_equal(ps_state_via_depth(v, n, "relay"), 0);
	assert_int_equal(ps_state_via_depth(v, n, "dist5"), 1);
	assert_int_equal(ps_state_via_depth(v, n, prev), PS_VIA_MAX_DEPTH);
	ps_server_list_free(v, n);
	/* Moving a subtree under another server deepens all of it. */
	add_server(st, "top", 0);
	e.via = "top";
	assert_int_equal(ps_state_server_edit(st, "relay", &e), PS_EUSAGE);
	/* --no-via brings a server back to the console. */
	e.via = "";
	assert_int_equal(ps_state_server_edit(st, prev, &e), PS_OK);
	assert_int_equal(ps_state_server_get(st, prev, &sv), PS_OK);
	assert_null(sv.via);
	ps_server_free(&sv);
	e.via = "top";
	assert_int_equal(ps_state_server_edit(st, "relay", &e), PS_OK);
}

static void
conf_for(struct fix *f, struct ps_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->database = f->db;
	c->console_name = (char *)"console-a";
}

static void
test_server_edit(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	struct ps_server_edit e = { NULL, NULL, NULL, NULL, NULL, -1, PS_KEEP,
	    -1, NULL };
	struct ps_server sv = { 0 };
	struct ps_server_conn c;
	struct ps_conf conf;
	int64_t id;

	sv.name = (char *)"s1";
	sv.url = (char *)"host.example:/srv/dist";
	sv.rsh = (char *)"ssh -p 2222";
	sv.remote_path = (char *)"/opt/patchsync/bin/patchsync";
	sv.bwlimit = 10 << 20;
	sv.timeout = 45;
	assert_int_equal(ps_state_server_add(st, &sv), PS_OK);
	conf_for(f, &conf);
	assert_int_equal(ps_task_resolve_server(&conf, "s1", 1, &c), PS_OK);
	assert_string_equal(c.url, "host.example:/srv/dist");
	assert_string_equal(c.rsh, "ssh -p 2222");
	assert_string_equal(c.remote_path, "/opt/patchsync/bin/patchsync");
	assert_int_equal(c.bwlimit, 10 << 20);
	assert_int_equal(c.timeout, 45);
	ps_server_conn_free(&c);

	/* Change some, clear others; the rest stays. */
	e.url = "other.example:/srv/d2";
	e.remote_path = "";
	e.bwlimit = 512 << 10;
	e.timeout = 0;
	assert_int_equal(ps_state_server_edit(st, "s1", &e), PS_OK);
	assert_int_equal(ps_task_resolve_server(&conf, "s1", 1, &c), PS_OK);
	assert_string_equal(c.url, "other.example:/srv/d2");
	assert_string_equal(c.rsh, "ssh -p 2222");
	assert_null(c.remote_path);
	assert_int_equal(c.bwlimit, 512 << 10);
	assert_int_equal(c.timeout, 0);
	ps_server_conn_free(&c);
	memset(&e, 0, sizeof(e));
	e.bwlimit = 0;
	e.timeout = -1;
	e.rsh = "";
	e.download_source = -1;
	assert_int_equal(ps_state_server_edit(st, "s1", &e), PS_OK);
	assert_int_equal(ps_task_resolve_server(&conf, "s1", 0, &c), PS_OK);
	assert_int_equal(c.bwlimit, 0);
	assert_int_equal(c.timeout, -1);
	assert_string_equal(c.rsh, "ssh");	/* remote URL: ssh */
	ps_server_conn_free(&c);
	assert_int_equal(ps_state_server_edit(st, "nosuch", &e), PS_EUSAGE);
	e.rsh = NULL;
	e.url = "";
	assert_int_equal(ps_state_server_edit(st, "s1", &e), PS_EUSAGE);
	/* Becoming a download source: refused while scheduled. */
	e.url = NULL;
	e.download_source = 1;
	assert_int_equal(ps_state_schedule_add(st, "c", "s1", "", "@daily",
	    time(NULL), &id), PS_OK);
	assert_int_equal(ps_state_server_edit(st, "s1", &e), PS_EUSAGE);
	assert_int_equal(ps_state_schedule_delete(st, id), PS_OK);
	assert_int_equal(ps_state_server_edit(st, "s1", &e), PS_OK);
	assert_int_equal(ps_task_resolve_server(&conf, "s1", 1, &c),
	    PS_EUSAGE);
	/* No database: every name is unknown, and none is made. */
	conf.database = xasprintf("%s/none/state.db", f->dir);
	assert_int_equal(ps_task_resolve_server(&conf, "s1", 1, &c),
	    PS_EUSAGE);
	assert_int_equal(access(conf.database, F_OK), -1);
	free(conf.database);
}

static void
test_parse_rate(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(ps_parse_rate("512K", &v), 0);
	assert_int_equal(v, 512 << 10);
	assert_int_equal(ps_parse_rate("10M", &v), 0);
	assert_int_equal(v, 10 << 20);
	assert_int_equal(ps_parse_rate("2gb", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(ps_parse_rate("1000", &v), 0);
	assert_int_equal(v, 1000);
	assert_int_equal(ps_parse_rate("0", &v), -1);
	assert_int_equal(ps_parse_rate("-5K", &v), -1);
	assert_int_equal(ps_parse_rate("5X", &v), -1);
	assert_int_equal(ps_parse_rate("", &v), -1);
	assert_int_equal(ps_parse_rate("99999999999999999999", &v), -1);
	assert_int_equal(ps_parse_rate("9000000000000G", &v), -1);
}

static void
test_network_fs(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = NULL;
	char *dir = xasprintf("%s/a", f->dir);
	struct stat sb;

	assert_string_equal(ps_state_network_fs(0x6969), "NFS");
	assert_string_equal(ps_state_network_fs(0xff534d42UL), "CIFS/SMB");
	assert_string_equal(ps_state_network_fs(0xfe534d42UL), "CIFS/SMB");
	assert_string_equal(ps_state_network_fs(0x517b), "CIFS/SMB");
	assert_null(ps_state_network_fs(0xef53));	/* ext4 */
	assert_null(ps_state_network_fs(0x58465342));	/* xfs */
	assert_null(ps_state_network_fs(0x01021994));	/* tmpfs */
	if (pg_base == NULL) {
		/* The same open path, with statfs's answer replaced. */
		setenv("PATCHSYNC_TEST_FSTYPE", "6969", 1);
		assert_int_equal(ps_state_open(f->db, &st), PS_EUSAGE);
		unsetenv("PATCHSYNC_TEST_FSTYPE");
		assert_null(st);
		assert_int_equal(stat(dir, &sb), -1);
	}
	free(dir);
}

static void
test_fleet_state(void **state)
{
	(void)state;
	assert_int_equal(ps_fleet_state_of(0, 0, 0, 0, 0, 0, 0),
	    PS_FLEET_NEVER);
	assert_int_equal(ps_fleet_state_of(1, 10, PS_OUTCOME_OK, 0, 0, 0, 0),
	    PS_FLEET_CURRENT);
	assert_int_equal(ps_fleet_state_of(1, 10, PS_OUTCOME_OK, 1, 20,
	    PS_OUTCOME_OK, 3), PS_FLEET_BEHIND);
	assert_int_equal(ps_fleet_state_of(1, 30, PS_OUTCOME_OK, 1, 20,
	    PS_OUTCOME_OK, 3), PS_FLEET_CURRENT);
	assert_int_equal(ps_fleet_state_of(1, 30, PS_OUTCOME_FAILED, 1, 20,
	    PS_OUTCOME_OK, 0), PS_FLEET_FAILED);
	assert_int_equal(ps_fleet_state_of(1, 10, PS_OUTCOME_OK, 1, 20,
	    PS_OUTCOME_UNREACHABLE, 0), PS_FLEET_UNREACHABLE);
	assert_int_equal(ps_fleet_state_of(0, 0, 0, 1, 20, PS_OUTCOME_OK, 0),
	    PS_FLEET_CURRENT);
	assert_string_equal(ps_fleet_state_name(PS_FLEET_NEVER),
	    "never synced");
}

static struct ps_server_status *
find_status(struct ps_server_status *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].server, name) == 0)
			return &v[i];
	fail_msg("no status row for %s", name);
	return NULL;
}

static void
test_outcomes(void **state)
{
	enum { MANY = PS_STATE_MAX_ROWS + 5 };
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	struct ps_outcome o;
	struct ps_server_status *v, *x;
	struct ps_report_row *rows, *got;
	size_t n, i;

	add_server(st, "a", 0);
	add_server(st, "b", 0);
	add_server(st, "c", 0);
	add_server(st, "d", 0);
	memset(&o, 0, sizeof(o));
	o.server = "a";
	o.kind = PS_OUTCOME_PUSH;
	o.bytes_sent = 1000;
	o.files_behind = 0;
	assert_int_equal(ps_state_record_outcome(st, "con", &o), PS_OK);
	o.bytes_sent = 500;
	assert_int_equal(ps_state_record_outcome(st, "con", &o), PS_OK);
	o.server = "b";
	o.status = PS_OUTCOME_FAILED;
	o.error = "b: disk full";
	o.bytes_sent = 10;
	assert_int_equal(ps_state_record_outcome(st, "con", &o), PS_OK);
	o.server = "c";
	o.kind = PS_OUTCOME_REPORT;
	o.status = PS_OUTCOME_OK;
	o.error = NULL;
	o.bytes_sent = 0;
	rows = xcalloc(MANY, sizeof(*rows));
	for (i = 0; i < MANY; i++) {
		rows[i].component = (char *)"patches";
		rows[i].path = xasprintf("dir/KB%05zu.msu", i);
		rows[i].state = (char *)(i % 2 ? "out-of-date" : "missing");
		rows[i].console_size = (int64_t)i;
		rows[i].console_mtime = 1700000000;
		rows[i].server_size = i % 2 ? 7 : -1;
		rows[i].server_mtime = -1;
	}
	o.rows = rows;
	o.nrows = MANY;
	o.rows_total = MANY;
	o.files_behind = MANY;
	assert_int_equal(ps_state_record_outcome(st, "con", &o), PS_OK);
	o.server = "http-url-not-a-server:/x";	/* ignored */
	assert_int_equal(ps_state_record_outcome(st, "con", &o), PS_OK);
	o.server = "d";
	o.status = PS_OUTCOME_UNREACHABLE;
	o.error = "d: connection refused";
	o.rows = NULL;
	o.nrows = o.rows_total = 0;
	o.files_behind = -1;
	assert_int_equal(ps_state_record_outcome(st, "con", &o), PS_OK);

	assert_int_equal(ps_state_status(st, &v, &n), PS_OK);
	assert_int_equal(n, 4);
	x = find_status(v, n, "a");
	assert_int_equal(x->state, PS_FLEET_CURRENT);
	assert_int_equal(x->bytes_sent, 1500);
	assert_int_equal(x->bytes_sent_last, 500);
	assert_true(x->last_ok > 0);
	assert_int_equal(x->files_behind, 0);
	assert_null(x->last_error);
	x = find_status(v, n, "b");
	assert_int_equal(x->state, PS_FLEET_FAILED);
	assert_string_equal(x->last_error, "b: disk full");
	assert_true(x->last_ok == 0);
	x = find_status(v, n, "c");
	assert_int_equal(x->state, PS_FLEET_BEHIND);
	assert_int_equal(x->files_behind, MANY);
	assert_int_equal(x->rows_total, MANY);
	x = find_status(v, n, "d");
	assert_int_equal(x->state, PS_FLEET_UNREACHABLE);
	ps_server_status_list_free(v, n);

	/* At most PS_STATE_MAX_ROWS rows kept, in order. */
	assert_int_equal(ps_state_report_rows(st, "c", &got, &n), PS_OK);
	assert_int_equal(n, PS_STATE_MAX_ROWS);
	assert_string_equal(got[0].path, "dir/KB00000.msu");
	assert_int_equal(got[0].server_size, -1);
	assert_string_equal(got[1].state, "out-of-date");
	assert_int_equal(got[1].server_size, 7);
	assert_string_equal(got[n - 1].path, "dir/KB09999.msu");
	ps_report_rows_free(got, n);
	/* A later push makes c current; removing a server drops its rows. */
	o.server = "c";
	o.kind = PS_OUTCOME_PUSH;
	o.status = PS_OUTCOME_OK;
	o.files_behind = 0;
	assert_int_equal(ps_state_record_outcome(st, "con", &o), PS_OK);
	assert_int_equal(ps_state_status(st, &v, &n), PS_OK);
	assert_int_equal(find_status(v, n, "c")->state, PS_FLEET_CURRENT);
	ps_server_status_list_free(v, n);
	assert_int_equal(ps_state_server_remove(st, "c"), PS_OK);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM report_rows"),
	    0);
	for (i = 0; i < MANY; i++)
		free(rows[i].path);
	free(rows);
}

static void
test_prune(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	struct ps_conf conf;
	int64_t old, recent, active;
	char *sql, *logdir = NULL, *log = NULL;
	size_t n;
	int fd;

	assert_int_equal(ps_state_task_create(st, PS_TASK_MANUAL, 0, "c", "s",
	    "", &old), PS_OK);
	assert_int_equal(ps_state_task_create(st, PS_TASK_MANUAL, 0, "c", "s",
	    "", &recent), PS_OK);
	assert_int_equal(ps_state_task_create(st, PS_TASK_MANUAL, 0, "c", "s",
	    "", &active), PS_OK);
	assert_int_equal(ps_state_event_add(st, old, "end", "info", "x",
	    NULL), PS_OK);
	assert_int_equal(ps_state_task_set_state(st, old, PS_TASK_SUCCEEDED,
	    0, NULL), PS_OK);
	assert_int_equal(ps_state_task_set_state(st, recent, PS_TASK_FAILED,
	    3, NULL), PS_OK);
	sql = xasprintf("UPDATE tasks SET ended = ended - 100 * 86400, "
	    "created = created - 100 * 86400 WHERE id = %lld",
	    (long long)old);
	raw_sql(f->db, sql);
	free(sql);
	conf_for(f, &conf);
	if (pg_base == NULL) {
		/* Its log goes with it (SQLite: beside the database). */
		logdir = xasprintf("%s/a/b/log", f->dir);
		log = xasprintf("%s/task-%lld.log", logdir, (long long)old);
		assert_int_equal(mkdir(logdir, 0755), 0);
		fd = open(log, O_WRONLY | O_CREAT, 0644);
		assert_true(fd >= 0);
		close(fd);
	}
	assert_int_equal(ps_task_prune(st, &conf, (double)time(NULL) -
	    90 * 86400.0, &n), PS_OK);
	assert_int_equal(n, 1);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM tasks"), 2);
	sql = xasprintf("SELECT count(*) FROM events WHERE task_id = %lld",
	    (long long)old);
	assert_int_equal(raw_int(f->db, sql), 0);
	free(sql);
	if (log != NULL)
		assert_int_equal(access(log, F_OK), -1);
	/* A running task is never pruned, however old. */
	assert_int_equal(ps_task_prune(st, &conf, (double)time(NULL) + 10,
	    &n), PS_OK);
	assert_int_equal(n, 1);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM tasks"), 1);
	free(logdir);
	free(log);
}

/* --- the task-event deadlock ----------------------------------------- */

struct hammer {
	struct ps_task_ctx *ctx;
	int n;
};

static void *
hammer(void *arg)
{
	struct hammer *h = arg;
	int i;

	for (i = 0; i < h->n; i++) {
		ps_task_progress(h->ctx, (uint64_t)i, 1000, (uint64_t)i);
		ps_task_event(h->ctx, "file-error", "warning", "event %d", i);
	}
	return NULL;
}

/*
 * Child: a task whose database fails under ps_task_progress (its events
 * table dropped by another program). Everything must return, with one
 * line on stderr, from several threads at once.
 */
static void
broken_child(struct fix *f, int errfd)
{
	struct timespec ts = { 2, 200 * 1000 * 1000 };
	struct ps_task_ctx *ctx;
	struct hammer h;
	struct ps_conf conf;
	pthread_t th[3];
	int k;

	alarm(60);			/* a deadlock ends as SIGALRM */
	dup2(errfd, 2);
	conf_for(f, &conf);
	if (ps_task_manual(&conf, "s1", "", &ctx) != PS_OK || ctx == NULL)
		_exit(10);
	raw_sql(f->db, "DROP TABLE events");
	nanosleep(&ts, NULL);		/* past PS_TASK_PROGRESS_SECS */
	ps_task_progress(ctx, 1, 2, 1);	/* writes now, and fails */
	h.ctx = ctx;
	h.n = 2000;
	for (k = 0; k < 3; k++)
		if (pthread_create(&th[k], NULL, hammer, &h) != 0)
			_exit(11);
	for (k = 0; k < 3; k++)
		pthread_join(th[k], NULL);
	ps_task_end(ctx, 0, NULL);
	_exit(0);
}

static void
test_progress_db_fails(void **state)
{
	struct fix *f = *state;
	struct ps_state *st = open_ok(f);
	char *errpath = xasprintf("%s/stderr", f->dir), line[2048];
	struct ps_task *v;
	int errfd, status, lines = 0;
	size_t n;
	FILE *fp;
	pid_t pid;

	add_server(st, "s1", 0);
	errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(errfd >= 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		broken_child(f, errfd);
	close(errfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));		/* not killed by SIGALRM */
	assert_int_equal(WEXITSTATUS(status), 0);
	fp = fopen(errpath, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL) {
		lines++;
		assert_non_null(strstr(line, "cannot record it in the state "
		    "database"));
	}
	fclose(fp);
	assert_int_equal(lines, 1);
	/* The end still reached the tasks table. */
	assert_int_equal(ps_state_task_list(st, 0, &v, &n), PS_OK);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].state, PS_TASK_SUCCEEDED);
	ps_task_list_free(v, n);
	free(errpath);
}

int
main(void)
{
	const struct CMUnitTest both[] = {
		cmocka_unit_test_setup_teardown(test_open_concurrent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_servers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedules, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_claim_due_race, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_missed_runs_once, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_existing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v1, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v2, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_relays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_edit, setup,
		    teardown),
		cmocka_unit_test(test_parse_rate),
		cmocka_unit_test_setup_teardown(test_network_fs, setup,
		    teardown),
		cmocka_unit_test(test_fleet_state),
		cmocka_unit_test_setup_teardown(test_outcomes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_progress_db_fails, setup,
		    teardown),
	};
	const struct CMUnitTest sqlite_only[] = {
		cmocka_unit_test_setup_teardown(test_open_create, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_empty_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refuse_foreign, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refuse_newer, setup,
		    teardown),
	};
	const struct CMUnitTest pg_only[] = {
		cmocka_unit_test_setup_teardown(test_pg_open_create, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pg_refuse, setup,
		    teardown),
	};
	int r;

	umask(022);
	pg_base = getenv("PS_TEST_PG");
	if (pg_base != NULL && *pg_base == '\0')
		pg_base = NULL;
	r = cmocka_run_group_tests_name(pg_base != NULL ? "postgresql" :
	    "sqlite", both, NULL, NULL);
	if (pg_base != NULL)
		r += cmocka_run_group_tests_name("postgresql only", pg_only,
		    NULL, NULL);
	else
		r += cmocka_run_group_tests_name("sqlite only", sqlite_only,
		    NULL, NULL);
	return r;
}
