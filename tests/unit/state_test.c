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

#include <sqlite3.h>

#include "ps.h"
#include "state.h"

struct fix {
	char dir[64];
	char *db;		/* DIR/a/b/state.db: directories not made yet */
	struct ps_state *st;
};

static int
setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/ps-state-test.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->db = xasprintf("%s/a/b/state.db", f->dir);
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

/* Run SQL on PATH with plain SQLite, as another program would. */
static void
raw_sql(const char *path, const char *sql)
{
	sqlite3 *db;
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
	/* A future patchsync wrote it; take it out of WAL so one file holds all. */
	raw_sql(f->db, "PRAGMA user_version = 99; PRAGMA journal_mode = DELETE;");
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
	assert_int_equal(ps_state_server_add(st, &sv), PS_EUSAGE);	/* dup */
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
	assert_int_equal(sc.next_run, 1710563400);	/* 2024-03-16 04:30 UTC */
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
	    "AS c FROM tasks GROUP BY schedule_id)"), 1);
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
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_concurrent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_empty_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refuse_foreign, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refuse_newer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_servers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_due_race, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_missed_runs_once, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
	};

	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
