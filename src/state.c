/*
 * state.c — the state database shared by consoles and processes: the
 * rules (owner console, download sources, atomic claims, reaping) over
 * either backend of db.h, in SQL that both SQLite and PostgreSQL run.
 *
 * Tables (the DDL is in db_sqlite.c and db_pg.c):
 *
 *   servers(name PRIMARY KEY, url, identity_file, secret_file, rsh,
 *           remote_path, bwlimit, timeout, download_source 0|1, created,
 *           via (the relay's name, or NULL))
 *   schedules(id, owner (console name), server REFERENCES servers,
 *           components ("a,b"; "" = all), cron (as written), next_run
 *           (NULL: never), last_run, last_result (task state name),
 *           last_task, created)
 *   tasks(id, kind, schedule_id REFERENCES schedules ON DELETE SET NULL,
 *           console, server (name or URL), components, state, host,
 *           boot_id, pid, pid_start (/proc/PID/stat field 22), created,
 *           started, ended, exit_code, stats (JSON))
 *   events(id, task_id REFERENCES tasks ON DELETE CASCADE, time, level,
 *           kind, message, data (JSON))
 *   outcomes(server, kind push|report, time, status, error, files_behind,
 *           bytes_sent, bytes_sent_total, last_ok, rows_total, console)
 *   report_rows(server, seq, component, path, state, sizes and mtimes)
 *
 * Ids are never reused after a delete (AUTOINCREMENT, sequences): a
 * schedule id the user saw never names another schedule, and --follow,
 * which polls for events with id > last seen, never misses or repeats one
 * (ids are assigned under the single write lock, so in commit order).
 *
 * A task is owned by one process, identified by (host, boot id, pid,
 * start time) so a reused pid or a reboot cannot keep a dead task
 * "running". Only the owning host judges its tasks.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "ps.h"
#include "cron.h"
#include "db.h"
#include "state.h"

/* Rows inserted by one statement (9 parameters each). */
#define ROWS_PER_INSERT (PS_DB_MAXARGS / 9)

struct ps_state {
	struct ps_db *db;
	pthread_mutex_t mu;	/* recursive; guards everything below */
	int depth;		/* public calls in progress (nesting) */
	int quiet;
	char err[1024];		/* the failure to report on leaving */
	char last[1024];	/* the last failure reported */
	char host[256];
	char boot_id[64];
};

static const char *const kind_names[] = { "manual", "run-now", "scheduled" };
static const char *const state_names[] = { "queued", "running", "succeeded",
	"failed", "canceled", "interrupted" };
static const char *const fleet_names[] = { "never synced", "current",
	"behind", "failed", "unreachable" };
static const char *const outcome_kinds[] = { "push", "report" };
static const char *const outcome_status[] = { "ok", "failed",
	"unreachable" };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* --- the lock and error reporting ---------------------------------- */

static void
enter(struct ps_state *st)
{
	pthread_mutex_lock(&st->mu);
	st->depth++;
}

/*
 * Leave a public call with result R. The outermost call reports the
 * failure, after the lock is released: printing may call back into code
 * that uses this handle (or holds a lock of its own).
 */
static int
leave(struct ps_state *st, int r)
{
	char msg[sizeof(st->err)];
	int say = 0;

	msg[0] = '\0';
	if (--st->depth == 0) {
		if (r != PS_OK && st->err[0] != '\0') {
			memcpy(msg, st->err, sizeof(msg));
			memcpy(st->last, st->err, sizeof(msg));
			say = !st->quiet;
		}
		st->err[0] = '\0';
	}
	pthread_mutex_unlock(&st->mu);
	if (say)
		ps_err("%s", msg);
	return r;
}

static int fail(struct ps_state *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Note the (first) failure of this call; returns PS_EUSAGE. */
static int
fail(struct ps_state *st, const char *fmt, ...)
{
	va_list ap;

	if (st->err[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(st->err, sizeof(st->err), fmt, ap);
		va_end(ap);
	}
	return PS_EUSAGE;
}

void
ps_state_set_quiet(struct ps_state *st, int quiet)
{
	enter(st);
	st->quiet = quiet;
	leave(st, PS_OK);
}

const char *
ps_state_error(struct ps_state *st)
{
	return st->last;
}

int
ps_state_is_file(const char *spec)
{
	return !ps_db_is_pg(spec);
}

const char *
ps_state_network_fs(unsigned long f_type)
{
	return ps_db_network_fs(f_type);
}

/* --- statements ---------------------------------------------------- */

/* Run SQL; R (may be NULL) gets its rows. Returns the backend's code. */
static enum ps_db_rc
qx(struct ps_state *st, const char *sql, const struct ps_dbargs *a,
    struct ps_dbres *r)
{
	enum ps_db_rc rc = st->db->ops->query(st->db, sql, a, r);

	if (rc != PS_DB_OK && rc != PS_DB_UNIQUE && rc != PS_DB_FOREIGN)
		fail(st, "%s", st->db->err);
	return rc;
}

/* Run SQL; a ps_result, the failure noted. */
static int
q(struct ps_state *st, const char *sql, const struct ps_dbargs *a,
    struct ps_dbres *r)
{
	enum ps_db_rc rc = qx(st, sql, a, r);

	if (rc == PS_DB_OK)
		return PS_OK;
	return fail(st, "%s", st->db->err);
}

static int
begin(struct ps_state *st)
{
	if (st->db->ops->begin(st->db) != PS_DB_OK)
		return fail(st, "%s", st->db->err);
	return PS_OK;
}

static int
commit(struct ps_state *st)
{
	if (st->db->ops->commit(st->db) != PS_DB_OK)
		return fail(st, "%s", st->db->err);
	return PS_OK;
}

/* Roll back and pass R through. */
static int
rollback(struct ps_state *st, int r)
{
	st->db->ops->rollback(st->db);
	return r;
}

static char *
col_str(const struct ps_dbres *r, size_t row, size_t col)
{
	const struct ps_dbval *v = ps_dbres_at(r, row, col);

	return v->null ? NULL : xstrdup(v->s);
}

static int64_t
col_int(const struct ps_dbres *r, size_t row, size_t col)
{
	return ps_dbres_at(r, row, col)->i;
}

static double
col_real(const struct ps_dbres *r, size_t row, size_t col)
{
	return ps_dbres_at(r, row, col)->d;
}

static int
col_null(const struct ps_dbres *r, size_t row, size_t col)
{
	return ps_dbres_at(r, row, col)->null;
}

static void
arg_time(struct ps_dbargs *a, time_t t)
{
	if (t == 0)
		ps_db_null(a);
	else
		ps_db_int(a, (int64_t)t);
}

/* The id a statement's RETURNING id gave. */
static int64_t
returned_id(const struct ps_dbres *r)
{
	return col_int(r, 0, 0);
}

static double
now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
lookup(const char *const *names, size_t n, const char *v)
{
	size_t i;

	for (i = 0; v != NULL && i < n; i++)
		if (strcmp(names[i], v) == 0)
			return (int)i;
	return -1;
}

const char *
ps_task_kind_name(enum ps_task_kind k)
{
	return (size_t)k < NELEM(kind_names) ? kind_names[k] : "unknown";
}

const char *
ps_task_state_name(enum ps_task_state s)
{
	return (size_t)s < NELEM(state_names) ? state_names[s] : "unknown";
}

int
ps_task_state_final(enum ps_task_state s)
{
	return s >= PS_TASK_SUCCEEDED;
}

const char *
ps_fleet_state_name(enum ps_fleet_state s)
{
	return (size_t)s < NELEM(fleet_names) ? fleet_names[s] : "unknown";
}

/* --- process identity ---------------------------------------------- */

/*
 * Start time (clock ticks after boot, field 22) and state (field 3) of
 * PID from /proc/PID/stat. Returns 0 when unknown. Field 2 is the command
 * in parentheses and may itself hold ')' and blanks: scan from the last.
 */
static uint64_t
proc_start(pid_t pid, char *state)
{
	char path[64], line[1024], *p, *end;
	unsigned long long v;
	ssize_t n;
	int fd, field;

	*state = '?';
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	line[n] = '\0';
	if ((p = strrchr(line, ')')) == NULL || p[1] != ' ')
		return 0;
	p += 2;
	*state = *p;
	for (field = 3; field < 22; field++) {
		if ((p = strchr(p, ' ')) == NULL)
			return 0;
		p++;
	}
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno != 0 || end == p)
		return 0;
	return v;
}

static void
read_boot_id(char *out, size_t len)
{
	ssize_t n;
	int fd;

	out[0] = '\0';
	if ((fd = open("/proc/sys/kernel/random/boot_id",
	    O_RDONLY | O_CLOEXEC)) == -1)
		return;
	n = read(fd, out, len - 1);
	close(fd);
	if (n < 0)
		n = 0;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

/* Is the owner recorded for a task (on this host) still running it? */
static int
owner_alive(struct ps_state *st, const char *boot_id, pid_t pid,
    uint64_t start)
{
	uint64_t cur;
	char pstate;

	if (boot_id[0] != '\0' && st->boot_id[0] != '\0' &&
	    strcmp(boot_id, st->boot_id) != 0)
		return 0;		/* rebooted since */
	if (pid <= 0)
		return 0;
	if (kill(pid, 0) == -1 && errno == ESRCH)
		return 0;
	cur = proc_start(pid, &pstate);
	if (pstate == 'Z' || pstate == 'X')
		return 0;		/* exited, not yet waited for */
	if (start != 0 && cur != 0 && cur != start)
		return 0;		/* the pid was reused */
	return 1;
}

/* --- open ---------------------------------------------------------- */

static int
open_db(const char *spec, int flags, struct ps_state **stp, char *err,
    size_t len)
{
	pthread_mutexattr_t ma;
	struct ps_state *st;
	struct ps_db *db;
	enum ps_db_rc rc;

	*stp = NULL;
	rc = ps_db_open(spec, flags, &db, err, len);
	if (rc == PS_DB_ABSENT)
		return PS_OK;
	if (rc != PS_DB_OK)
		return PS_EUSAGE;
	st = xcalloc(1, sizeof(*st));
	st->db = db;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&st->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	if (gethostname(st->host, sizeof(st->host) - 1) == -1)
		st->host[0] = '\0';
	read_boot_id(st->boot_id, sizeof(st->boot_id));
	*stp = st;
	return PS_OK;
}

int
ps_state_open(const char *spec, struct ps_state **stp)
{
	char err[1024];

	if (open_db(spec, PS_DB_CREATE, stp, err, sizeof(err)) == PS_OK)
		return PS_OK;
	ps_err("%s", err);
	return PS_EUSAGE;
}

int
ps_state_open_existing(const char *spec, struct ps_state **stp)
{
	char err[1024];

	if (open_db(spec, 0, stp, err, sizeof(err)) == PS_OK)
		return PS_OK;
	ps_err("%s", err);
	return PS_EUSAGE;
}

int
ps_state_try_open(const char *spec, struct ps_state **stp, char *err,
    size_t len)
{
	return open_db(spec, 0, stp, err, len);
}

void
ps_state_close(struct ps_state *st)
{
	if (st == NULL)
		return;
	st->db->ops->close(st->db);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

/* --- servers ------------------------------------------------------- */

int
ps_state_server_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n <= 64 && name[0] != '-' && name[0] != '.' &&
	    ps_name_chars_ok(name, n);
}

static void
arg_bwlimit(struct ps_dbargs *a, uint64_t v)
{
	if (v == 0)
		ps_db_null(a);
	else
		ps_db_int(a, (int64_t)v);
}

static void
arg_timeout(struct ps_dbargs *a, int v)
{
	if (v < 0)
		ps_db_null(a);
	else
		ps_db_int(a, v);
}

/* --- relays ------------------------------------------------------- */

static const struct ps_server *
find_server(const struct ps_server *v, size_t n, const struct ps_server *s,
    const char *name)
{
	size_t i;

	if (strcmp(s->name, name) == 0)
		return s;
	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

/* Relays above R, with S in place of its row; -1: broken or too deep. */
static int
depth_of(const struct ps_server *v, size_t n, const struct ps_server *s,
    const struct ps_server *r)
{
	int d = 0;

	while (r != NULL && r->via != NULL) {
		if (++d > PS_VIA_MAX_DEPTH)
			return -1;
		r = find_server(v, n, s, r->via);
		if (r == NULL)
			return -1;
	}
	return d;
}

/* The longest way down from server NAME to a server behind it, in hops. */
static int
height_of(const struct ps_server *v, size_t n, const char *name, int limit)
{
	size_t i;
	int h = 0, x;

	if (limit < 0)
		return PS_VIA_MAX_DEPTH + 1;
	for (i = 0; i < n; i++) {
		if (v[i].via == NULL || strcmp(v[i].via, name) != 0 ||
		    strcmp(v[i].name, name) == 0)
			continue;
		x = 1 + height_of(v, n, v[i].name, limit - 1);
		if (x > h)
			h = x;
	}
	return h;
}

int
ps_state_via_depth(const struct ps_server *v, size_t n, const char *name)
{
	const struct ps_server *s = NULL;
	size_t i;

	for (i = 0; i < n && s == NULL; i++)
		if (strcmp(v[i].name, name) == 0)
			s = &v[i];
	return s != NULL ? depth_of(v, n, s, s) : -1;
}

/* A server behind S (in V, S itself not counted), or NULL. */
static const struct ps_server *
first_behind(const struct ps_server *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].via != NULL && strcmp(v[i].via, name) == 0 &&
		    strcmp(v[i].name, name) != 0)
			return &v[i];
	return NULL;
}

int
ps_state_via_check(const struct ps_server *v, size_t n,
    const struct ps_server *s, char *why, size_t len)
{
	const struct ps_server *r, *b = first_behind(v, n, s->name);
	int d, h;

	if (s->download_source && b != NULL)
		return snprintf(why, len, "server %s is the relay of %s: it "
		    "cannot be a download source", s->name, b->name), -1;
	if (s->via == NULL)
		return 0;
	if (strcmp(s->via, s->name) == 0)
		return snprintf(why, len, "server %s cannot be its own relay",
		    s->name), -1;
	if ((r = find_server(v, n, s, s->via)) == NULL)
		return snprintf(why, len, "unknown relay %s for server %s "
		    "(add it first)", s->via, s->name), -1;
	if (r->download_source)
		return snprintf(why, len, "server %s is a download source: it "
		    "cannot be a relay", r->name), -1;
	if (s->download_source)
		return snprintf(why, len, "server %s is a download source: the "
		    "console reaches it itself, never through a relay",
		    s->name), -1;
	if (s->identity_file != NULL || s->secret_file != NULL)
		return snprintf(why, len, "server %s is reached through relay "
		    "%s, which connects with its own account's keys: it takes "
		    "no %s", s->name, s->via, s->identity_file != NULL ?
		    "--identity" : "--secret-file"), -1;
	for (d = 0; r != NULL; r = r->via != NULL ? find_server(v, n, s,
	    r->via) : NULL) {
		if (r->via != NULL && strcmp(r->via, s->name) == 0)
			return snprintf(why, len, "server %s cannot be reached "
			    "through %s: %s is reached through %s (a cycle)",
			    s->name, s->via, s->via, s->name), -1;
		if (++d > PS_VIA_MAX_DEPTH)
			break;
	}
	h = height_of(v, n, s->name, PS_VIA_MAX_DEPTH);
	if (d + h > PS_VIA_MAX_DEPTH)
		return snprintf(why, len, "server %s through %s: a server "
		    "would be %d relays away from the console (at most %d)",
		    s->name, s->via, d + h, PS_VIA_MAX_DEPTH), -1;
	return 0;
}

static int server_list(struct ps_state *st, struct ps_server **v,
    size_t *n);

/* Inside a transaction: the relay rules for S as it would be. */
static int
via_rules(struct ps_state *st, const struct ps_server *s)
{
	struct ps_server *v;
	char why[512];
	size_t n;
	int r;

	if (server_list(st, &v, &n) != PS_OK)
		return PS_EUSAGE;
	r = ps_state_via_check(v, n, s, why, sizeof(why));
	ps_server_list_free(v, n);
	return r == 0 ? PS_OK : fail(st, "%s", why);
}

/* --- servers ------------------------------------------------------- */

static int
server_add(struct ps_state *st, const struct ps_server *sv)
{
	struct ps_dbargs a = { 0 };
	enum ps_db_rc rc;

	if (!ps_state_server_name_ok(sv->name))
		return fail(st, "invalid server name '%s': use up to 64 "
		    "letters, digits, '.', '_' and '-', not starting with '-' "
		    "or '.'", sv->name);
	if (sv->url == NULL || sv->url[0] == '\0')
		return fail(st, "server %s: empty URL", sv->name);
	if ((int64_t)sv->bwlimit < 0)
		return fail(st, "server %s: bandwidth limit out of range",
		    sv->name);
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (via_rules(st, sv) != PS_OK)
		return rollback(st, PS_EUSAGE);
	ps_db_text(&a, sv->name);
	ps_db_text(&a, sv->url);
	ps_db_text(&a, sv->identity_file);
	ps_db_text(&a, sv->secret_file);
	ps_db_text(&a, sv->rsh);
	ps_db_text(&a, sv->remote_path);
	arg_bwlimit(&a, sv->bwlimit);
	arg_timeout(&a, sv->timeout);
	ps_db_int(&a, sv->download_source != 0);
	ps_db_int(&a, (int64_t)time(NULL));
	ps_db_text(&a, sv->via);
	rc = qx(st, "INSERT INTO servers (name, url, identity_file, "
	    "secret_file, rsh, remote_path, bwlimit, timeout, "
	    "download_source, created, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
	    "?, ?, ?)", &a, NULL);
	if (rc == PS_DB_UNIQUE)
		return rollback(st, fail(st, "server %s already exists",
		    sv->name));
	if (rc != PS_DB_OK)
		return rollback(st, PS_EUSAGE);
	return commit(st);
}

int
ps_state_server_add(struct ps_state *st, const struct ps_server *sv)
{
	enter(st);
	return leave(st, server_add(st, sv));
}

#define SERVER_COLS "name, url, identity_file, secret_file, rsh, " \
	"download_source, created, remote_path, bwlimit, timeout, via"

static void
server_row(const struct ps_dbres *r, size_t i, struct ps_server *sv)
{
	sv->name = col_str(r, i, 0);
	sv->url = col_str(r, i, 1);
	sv->identity_file = col_str(r, i, 2);
	sv->secret_file = col_str(r, i, 3);
	sv->rsh = col_str(r, i, 4);
	sv->download_source = (int)col_int(r, i, 5);
	sv->created = (time_t)col_int(r, i, 6);
	sv->remote_path = col_str(r, i, 7);
	sv->bwlimit = col_null(r, i, 8) ? 0 : (uint64_t)col_int(r, i, 8);
	sv->timeout = col_null(r, i, 9) ? -1 : (int)col_int(r, i, 9);
	sv->via = col_str(r, i, 10);
}

static int
server_get(struct ps_state *st, const char *name, struct ps_server *sv)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	int found;

	memset(sv, 0, sizeof(*sv));
	sv->timeout = -1;
	ps_db_text(&a, name);
	if (q(st, "SELECT " SERVER_COLS " FROM servers WHERE name = ?", &a,
	    &r) != PS_OK)
		return PS_EUSAGE;
	if ((found = r.nrows == 1))
		server_row(&r, 0, sv);
	ps_dbres_free(&r);
	return found ? PS_OK : fail(st, "unknown server %s", name);
}

int
ps_state_server_get(struct ps_state *st, const char *name,
    struct ps_server *sv)
{
	enter(st);
	return leave(st, server_get(st, name, sv));
}

static int
server_list(struct ps_state *st, struct ps_server **v, size_t *n)
{
	struct ps_dbres r;
	size_t i;

	*v = NULL;
	*n = 0;
	if (q(st, "SELECT " SERVER_COLS " FROM servers ORDER BY name", NULL,
	    &r) != PS_OK)
		return PS_EUSAGE;
	*v = xcalloc(r.nrows + 1, sizeof(**v));
	for (i = 0; i < r.nrows; i++)
		server_row(&r, i, &(*v)[i]);
	*n = r.nrows;
	ps_dbres_free(&r);
	return PS_OK;
}

int
ps_state_server_list(struct ps_state *st, struct ps_server **v, size_t *n)
{
	enter(st);
	return leave(st, server_list(st, v, n));
}

/* Inside a transaction: the ids of schedules pushing to SERVER, or "". */
static int
schedule_users(struct ps_state *st, const char *server, struct buf *ids)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	char num[32];
	size_t i;

	ps_db_text(&a, server);
	if (q(st, "SELECT id FROM schedules WHERE server = ? ORDER BY id", &a,
	    &r) != PS_OK)
		return PS_EUSAGE;
	for (i = 0; i < r.nrows; i++) {
		snprintf(num, sizeof(num), "%s%lld", i > 0 ? ", " : "",
		    (long long)col_int(&r, i, 0));
		buf_addstr(ids, num);
	}
	buf_addc(ids, '\0');
	ps_dbres_free(&r);
	return PS_OK;
}

/* Inside a transaction: set one column of server NAME. */
static int
set_column(struct ps_state *st, const char *name, const char *col,
    struct ps_dbargs *a)
{
	char *sql = xasprintf("UPDATE servers SET %s = ? WHERE name = ?", col);
	int r;

	ps_db_text(a, name);
	r = q(st, sql, a, NULL);
	free(sql);
	return r;
}

static int
set_text(struct ps_state *st, const char *name, const char *col,
    const char *v)
{
	struct ps_dbargs a = { 0 };

	if (v == NULL)
		return PS_OK;
	ps_db_text(&a, v[0] != '\0' ? v : NULL);
	return set_column(st, name, col, &a);
}

/* A string of E applied to *V (NULL keeps, "" clears). */
static void
edited(char **v, const char *e)
{
	if (e == NULL)
		return;
	free(*v);
	*v = e[0] != '\0' ? xstrdup(e) : NULL;
}

/* Inside a transaction: the relay rules for SV once E is applied. */
static int
edit_via_rules(struct ps_state *st, struct ps_server *sv,
    const struct ps_server_edit *e)
{
	edited(&sv->via, e->via);
	edited(&sv->identity_file, e->identity_file);
	edited(&sv->secret_file, e->secret_file);
	if (e->download_source >= 0)
		sv->download_source = e->download_source;
	return via_rules(st, sv);
}

static int
server_edit(struct ps_state *st, const char *name,
    const struct ps_server_edit *e)
{
	struct ps_dbargs a = { 0 };
	struct buf users = { 0 };
	struct ps_server sv;
	int r;

	if (e->url != NULL && e->url[0] == '\0')
		return fail(st, "server %s: empty URL", name);
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (server_get(st, name, &sv) != PS_OK)
		return rollback(st, PS_EUSAGE);
	r = edit_via_rules(st, &sv, e);
	ps_server_free(&sv);
	if (r != PS_OK)
		return rollback(st, r);
	if (e->download_source == 1) {
		if (schedule_users(st, name, &users) != PS_OK)
			return rollback(st, PS_EUSAGE);
		r = users.p[0] != '\0' ? fail(st, "server %s is used by "
		    "schedule %s: it cannot become a download source; delete "
		    "those first", name, (char *)users.p) : PS_OK;
		buf_free(&users);
		if (r != PS_OK)
			return rollback(st, r);
	}
	if (set_text(st, name, "url", e->url) != PS_OK ||
	    set_text(st, name, "identity_file", e->identity_file) != PS_OK ||
	    set_text(st, name, "secret_file", e->secret_file) != PS_OK ||
	    set_text(st, name, "rsh", e->rsh) != PS_OK ||
	    set_text(st, name, "remote_path", e->remote_path) != PS_OK ||
	    set_text(st, name, "via", e->via) != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (e->bwlimit >= 0) {
		arg_bwlimit(&a, (uint64_t)e->bwlimit);
		if (set_column(st, name, "bwlimit", &a) != PS_OK)
			return rollback(st, PS_EUSAGE);
	}
	memset(&a, 0, sizeof(a));
	if (e->timeout != PS_KEEP) {
		arg_timeout(&a, e->timeout);
		if (set_column(st, name, "timeout", &a) != PS_OK)
			return rollback(st, PS_EUSAGE);
	}
	memset(&a, 0, sizeof(a));
	if (e->download_source >= 0) {
		ps_db_int(&a, e->download_source != 0);
		if (set_column(st, name, "download_source", &a) != PS_OK)
			return rollback(st, PS_EUSAGE);
	}
	return commit(st);
}

int
ps_state_server_edit(struct ps_state *st, const char *name,
    const struct ps_server_edit *e)
{
	enter(st);
	return leave(st, server_edit(st, name, e));
}

static int
server_remove(struct ps_state *st, const char *name)
{
	struct ps_dbargs a = { 0 };
	struct buf users = { 0 };
	struct ps_dbres r;
	int rc;

	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (schedule_users(st, name, &users) != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (users.p[0] != '\0') {
		fail(st, "server %s is used by schedule %s; delete those "
		    "first", name, (char *)users.p);
		buf_free(&users);
		return rollback(st, PS_EUSAGE);
	}
	buf_free(&users);
	ps_db_text(&a, name);
	if (q(st, "SELECT name FROM servers WHERE via = ? ORDER BY name", &a,
	    &r) != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (r.nrows > 0) {
		fail(st, "server %s is the relay of %s%s: remove those or "
		    "change their --via first", name, ps_dbres_at(&r, 0, 0)->s,
		    r.nrows > 1 ? " and others" : "");
		ps_dbres_free(&r);
		return rollback(st, PS_EUSAGE);
	}
	ps_dbres_free(&r);
	if (q(st, "DELETE FROM servers WHERE name = ?", &a, &r) != PS_OK)
		return rollback(st, PS_EUSAGE);
	rc = r.changes == 0 ? fail(st, "unknown server %s", name) : PS_OK;
	ps_dbres_free(&r);
	if (rc != PS_OK)
		return rollback(st, rc);
	return commit(st);
}

int
ps_state_server_remove(struct ps_state *st, const char *name)
{
	enter(st);
	return leave(st, server_remove(st, name));
}

void
ps_server_free(struct ps_server *sv)
{
	if (sv == NULL)
		return;
	free(sv->name);
	free(sv->url);
	free(sv->identity_file);
	free(sv->secret_file);
	free(sv->rsh);
	free(sv->remote_path);
	free(sv->via);
	memset(sv, 0, sizeof(*sv));
}

void
ps_server_list_free(struct ps_server *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ps_server_free(&v[i]);
	free(v);
}

/* --- schedules ----------------------------------------------------- */

/* "" or names [a-z0-9_-]+ separated by single commas. */
static int
components_ok(struct ps_state *st, const char *c)
{
	size_t i, run = 0;

	for (i = 0; c[i] != '\0'; i++) {
		if (c[i] == ',') {
			if (run == 0)
				break;
			run = 0;
		} else if ((c[i] >= 'a' && c[i] <= 'z') ||
		    (c[i] >= '0' && c[i] <= '9') || c[i] == '_' ||
		    c[i] == '-') {
			run++;
		} else {
			break;
		}
	}
	if (c[i] == '\0' && (i == 0 || run > 0))
		return 1;
	fail(st, "invalid component list '%s': names of [a-z0-9_-] "
	    "separated by commas", c);
	return 0;
}

/* Parse CRON and compute its next slot after NOW (0: never). */
static int
cron_next(struct ps_state *st, const char *cron, time_t now, time_t *next)
{
	struct ps_cron c;
	char err[256];
	time_t t;

	if (ps_cron_parse(cron, &c, err, sizeof(err)) != 0)
		return fail(st, "invalid cron expression '%s': %s", cron,
		    err);
	t = ps_cron_next(&c, now);
	*next = t == -1 ? 0 : t;
	return PS_OK;
}

/* The server must exist and must not be a download source. */
static int
check_target(struct ps_state *st, const char *server)
{
	struct ps_server sv;
	int src;

	if (server_get(st, server, &sv) != PS_OK)
		return PS_EUSAGE;
	src = sv.download_source;
	ps_server_free(&sv);
	if (src)
		return fail(st, "server %s is a download source: the console "
		    "downloads from it, so it cannot be scheduled for pushes",
		    server);
	return PS_OK;
}

static int
schedule_add(struct ps_state *st, const char *owner, const char *server,
    const char *components, const char *cron, time_t now, int64_t *id)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	time_t next;

	if (components == NULL)
		components = "";
	if (cron_next(st, cron, now, &next) != PS_OK ||
	    !components_ok(st, components))
		return PS_EUSAGE;
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (check_target(st, server) != PS_OK)
		return rollback(st, PS_EUSAGE);
	ps_db_text(&a, owner);
	ps_db_text(&a, server);
	ps_db_text(&a, components);
	ps_db_text(&a, cron);
	arg_time(&a, next);
	ps_db_int(&a, (int64_t)now);
	if (q(st, "INSERT INTO schedules (owner, server, components, cron, "
	    "next_run, created) VALUES (?, ?, ?, ?, ?, ?) RETURNING id", &a,
	    &r) != PS_OK)
		return rollback(st, PS_EUSAGE);
	*id = returned_id(&r);
	ps_dbres_free(&r);
	return commit(st);
}

int
ps_state_schedule_add(struct ps_state *st, const char *owner,
    const char *server, const char *components, const char *cron,
    time_t now, int64_t *id)
{
	enter(st);
	return leave(st, schedule_add(st, owner, server, components, cron,
	    now, id));
}

#define SCHEDULE_COLS "id, owner, server, components, cron, next_run, " \
	"last_run, last_result, last_task, created"

static void
schedule_row(const struct ps_dbres *r, size_t i, struct ps_schedule *sc)
{
	sc->id = col_int(r, i, 0);
	sc->owner = col_str(r, i, 1);
	sc->server = col_str(r, i, 2);
	sc->components = col_str(r, i, 3);
	sc->cron = col_str(r, i, 4);
	sc->next_run = (time_t)col_int(r, i, 5);
	sc->last_run = (time_t)col_int(r, i, 6);
	sc->last_result = col_str(r, i, 7);
	sc->last_task = col_int(r, i, 8);
	sc->created = (time_t)col_int(r, i, 9);
}

static int
schedule_get(struct ps_state *st, int64_t id, struct ps_schedule *sc)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	int found;

	memset(sc, 0, sizeof(*sc));
	ps_db_int(&a, id);
	if (q(st, "SELECT " SCHEDULE_COLS " FROM schedules WHERE id = ?", &a,
	    &r) != PS_OK)
		return PS_EUSAGE;
	if ((found = r.nrows == 1))
		schedule_row(&r, 0, sc);
	ps_dbres_free(&r);
	return found ? PS_OK : fail(st, "unknown schedule %lld",
	    (long long)id);
}

int
ps_state_schedule_get(struct ps_state *st, int64_t id, struct ps_schedule *sc)
{
	enter(st);
	return leave(st, schedule_get(st, id, sc));
}

int
ps_state_schedule_list(struct ps_state *st, struct ps_schedule **v,
    size_t *n)
{
	struct ps_dbres r;
	size_t i;

	*v = NULL;
	*n = 0;
	enter(st);
	if (q(st, "SELECT " SCHEDULE_COLS " FROM schedules ORDER BY id", NULL,
	    &r) != PS_OK)
		return leave(st, PS_EUSAGE);
	*v = xcalloc(r.nrows + 1, sizeof(**v));
	for (i = 0; i < r.nrows; i++)
		schedule_row(&r, i, &(*v)[i]);
	*n = r.nrows;
	ps_dbres_free(&r);
	return leave(st, PS_OK);
}

/*
 * Inside a transaction: schedule ID must exist and belong to CONSOLE.
 * Fills SC when not NULL.
 */
static int
own_schedule(struct ps_state *st, const char *console, int64_t id,
    struct ps_schedule *sc)
{
	struct ps_schedule tmp;
	int r;

	if (schedule_get(st, id, &tmp) != PS_OK)
		return PS_EUSAGE;
	r = strcmp(tmp.owner, console) == 0 ? PS_OK : fail(st, "schedule "
	    "%lld belongs to console %s; only it can edit or run it",
	    (long long)id, tmp.owner);
	if (r == PS_OK && sc != NULL)
		*sc = tmp;
	else
		ps_schedule_free(&tmp);
	return r;
}

static int
update_schedule(struct ps_state *st, const char *col, const char *v,
    int64_t id)
{
	struct ps_dbargs a = { 0 };
	char *sql;
	int r;

	if (v == NULL)
		return PS_OK;
	sql = xasprintf("UPDATE schedules SET %s = ? WHERE id = ?", col);
	ps_db_text(&a, v);
	ps_db_int(&a, id);
	r = q(st, sql, &a, NULL);
	free(sql);
	return r;
}

static int
schedule_edit(struct ps_state *st, const char *console, int64_t id,
    const struct ps_schedule_edit *e, time_t now)
{
	struct ps_dbargs a = { 0 };
	time_t next = 0;

	if (e->cron != NULL && cron_next(st, e->cron, now, &next) != PS_OK)
		return PS_EUSAGE;
	if (e->components != NULL && !components_ok(st, e->components))
		return PS_EUSAGE;
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (own_schedule(st, console, id, NULL) != PS_OK ||
	    (e->server != NULL && check_target(st, e->server) != PS_OK))
		return rollback(st, PS_EUSAGE);
	if (update_schedule(st, "server", e->server, id) != PS_OK ||
	    update_schedule(st, "components", e->components, id) != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (e->cron != NULL) {
		ps_db_text(&a, e->cron);
		arg_time(&a, next);
		ps_db_int(&a, id);
		if (q(st, "UPDATE schedules SET cron = ?, next_run = ? "
		    "WHERE id = ?", &a, NULL) != PS_OK)
			return rollback(st, PS_EUSAGE);
	}
	return commit(st);
}

int
ps_state_schedule_edit(struct ps_state *st, const char *console, int64_t id,
    const struct ps_schedule_edit *e, time_t now)
{
	enter(st);
	return leave(st, schedule_edit(st, console, id, e, now));
}

int
ps_state_schedule_delete(struct ps_state *st, int64_t id)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	int rc;

	enter(st);
	ps_db_int(&a, id);
	if (q(st, "DELETE FROM schedules WHERE id = ?", &a, &r) != PS_OK)
		return leave(st, PS_EUSAGE);
	rc = r.changes == 0 ? fail(st, "unknown schedule %lld",
	    (long long)id) : PS_OK;
	ps_dbres_free(&r);
	return leave(st, rc);
}

void
ps_schedule_free(struct ps_schedule *sc)
{
	if (sc == NULL)
		return;
	free(sc->owner);
	free(sc->server);
	free(sc->components);
	free(sc->cron);
	free(sc->last_result);
	memset(sc, 0, sizeof(*sc));
}

void
ps_schedule_list_free(struct ps_schedule *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ps_schedule_free(&v[i]);
	free(v);
}

/* --- tasks (creation) ---------------------------------------------- */

/* Insert a 'queued' task owned by this process. */
static int
insert_task(struct ps_state *st, enum ps_task_kind kind, int64_t schedule_id,
    const char *console, const char *server, const char *components,
    int64_t *id)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	char pstate;

	ps_db_text(&a, ps_task_kind_name(kind));
	if (schedule_id != 0)
		ps_db_int(&a, schedule_id);
	else
		ps_db_null(&a);
	ps_db_text(&a, console);
	ps_db_text(&a, server);
	ps_db_text(&a, components != NULL ? components : "");
	ps_db_text(&a, st->host);
	ps_db_text(&a, st->boot_id);
	ps_db_int(&a, (int64_t)getpid());
	ps_db_int(&a, (int64_t)proc_start(getpid(), &pstate));
	ps_db_real(&a, now_real());
	if (q(st, "INSERT INTO tasks (kind, schedule_id, console, server, "
	    "components, state, host, boot_id, pid, pid_start, created) "
	    "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?) RETURNING id",
	    &a, &r) != PS_OK)
		return PS_EUSAGE;
	*id = returned_id(&r);
	ps_dbres_free(&r);
	return PS_OK;
}

/* Record TASK as the last run of schedule SCHED (next_run unchanged). */
static int
note_run(struct ps_state *st, int64_t sched, int64_t task, time_t now)
{
	struct ps_dbargs a = { 0 };

	ps_db_int(&a, (int64_t)now);
	ps_db_int(&a, task);
	ps_db_int(&a, sched);
	return q(st, "UPDATE schedules SET last_run = ?, last_task = ?, "
	    "last_result = 'queued' WHERE id = ?", &a, NULL);
}

int
ps_state_task_create(struct ps_state *st, enum ps_task_kind kind,
    int64_t schedule_id, const char *console, const char *server,
    const char *components, int64_t *id)
{
	enter(st);
	if (begin(st) != PS_OK)
		return leave(st, PS_EUSAGE);
	if (insert_task(st, kind, schedule_id, console, server, components,
	    id) != PS_OK || (schedule_id != 0 && note_run(st, schedule_id,
	    *id, time(NULL)) != PS_OK))
		return leave(st, rollback(st, PS_EUSAGE));
	return leave(st, commit(st));
}

static int
run_now(struct ps_state *st, const char *console, int64_t id,
    struct ps_claim *claim)
{
	struct ps_schedule sc;

	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (own_schedule(st, console, id, &sc) != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (insert_task(st, PS_TASK_RUN_NOW, id, console, sc.server,
	    sc.components, &claim->task_id) != PS_OK ||
	    note_run(st, id, claim->task_id, time(NULL)) != PS_OK) {
		ps_schedule_free(&sc);
		return rollback(st, PS_EUSAGE);
	}
	claim->schedule_id = id;
	claim->server = sc.server;
	claim->components = sc.components;
	sc.server = sc.components = NULL;
	ps_schedule_free(&sc);
	if (commit(st) != PS_OK) {
		ps_claim_free(claim);
		return PS_EUSAGE;
	}
	return PS_OK;
}

int
ps_state_schedule_run_now(struct ps_state *st, const char *console,
    int64_t id, struct ps_claim *claim)
{
	memset(claim, 0, sizeof(*claim));
	enter(st);
	return leave(st, run_now(st, console, id, claim));
}

/*
 * Claim schedule row I of R (id, server, components, cron, next_run):
 * move its next_run past NOW only if it still holds the value read — an
 * atomic compare-and-set, so even without the write lock two consoles
 * could not both claim it — then make its task. *GOT: claimed.
 */
static int
claim_one(struct ps_state *st, const char *console, const struct ps_dbres *r,
    size_t i, time_t now, struct ps_claim *c, int *got)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres u;
	time_t next;
	int64_t id = col_int(r, i, 0);

	*got = 0;
	/* A bad stored expression stops that schedule, not the rest. */
	if (cron_next(st, ps_dbres_at(r, i, 3)->s, now, &next) != PS_OK) {
		st->err[0] = '\0';
		next = 0;
	}
	arg_time(&a, next);
	ps_db_int(&a, id);
	ps_db_int(&a, col_int(r, i, 4));
	if (q(st, "UPDATE schedules SET next_run = ? WHERE id = ? AND "
	    "next_run = ?", &a, &u) != PS_OK)
		return PS_EUSAGE;
	*got = u.changes == 1;
	ps_dbres_free(&u);
	if (!*got)
		return PS_OK;
	c->schedule_id = id;
	c->server = col_str(r, i, 1);
	c->components = col_str(r, i, 2);
	if (insert_task(st, PS_TASK_SCHEDULED, id, console, c->server,
	    c->components, &c->task_id) != PS_OK ||
	    note_run(st, id, c->task_id, now) != PS_OK)
		return PS_EUSAGE;
	return PS_OK;
}

static int
claim_due(struct ps_state *st, const char *console, time_t now,
    struct ps_claim **v, size_t *n)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	size_t i;
	int got;

	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	ps_db_text(&a, console);
	ps_db_int(&a, (int64_t)now);
	/* By id: concurrent claimers take their row locks in one order. */
	if (q(st, "SELECT id, server, components, cron, next_run FROM "
	    "schedules WHERE owner = ? AND next_run IS NOT NULL AND "
	    "next_run <= ? ORDER BY id", &a, &r) != PS_OK)
		return rollback(st, PS_EUSAGE);
	*v = xcalloc(r.nrows + 1, sizeof(**v));
	for (i = 0; i < r.nrows; i++) {
		if (claim_one(st, console, &r, i, now, &(*v)[*n], &got) !=
		    PS_OK) {
			(*n)++;
			ps_dbres_free(&r);
			return rollback(st, PS_EUSAGE);
		}
		*n += got;
	}
	ps_dbres_free(&r);
	return commit(st);
}

int
ps_state_schedule_claim_due(struct ps_state *st, const char *console,
    time_t now, struct ps_claim **v, size_t *n)
{
	int r;

	*v = NULL;
	*n = 0;
	enter(st);
	if ((r = claim_due(st, console, now, v, n)) != PS_OK) {
		ps_claim_list_free(*v, *n);
		*v = NULL;
		*n = 0;
	}
	return leave(st, r);
}

void
ps_claim_free(struct ps_claim *c)
{
	if (c == NULL)
		return;
	free(c->server);
	free(c->components);
	memset(c, 0, sizeof(*c));
}

void
ps_claim_list_free(struct ps_claim *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ps_claim_free(&v[i]);
	free(v);
}

/* --- tasks (state) ------------------------------------------------- */

/* The task's state index, -1 unknown task, -2 after a failure. */
static int
task_state_now(struct ps_state *st, int64_t id)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	int k = -1;

	ps_db_int(&a, id);
	if (q(st, "SELECT state FROM tasks WHERE id = ?", &a, &r) != PS_OK)
		return -2;
	if (r.nrows == 1)
		k = lookup(state_names, NELEM(state_names),
		    ps_dbres_at(&r, 0, 0)->s);
	ps_dbres_free(&r);
	return k;
}

static int
set_active(struct ps_state *st, int64_t id, enum ps_task_state state)
{
	struct ps_dbargs a = { 0 };
	char pstate;

	ps_db_text(&a, ps_task_state_name(state));
	ps_db_text(&a, st->host);
	ps_db_text(&a, st->boot_id);
	ps_db_int(&a, (int64_t)getpid());
	ps_db_int(&a, (int64_t)proc_start(getpid(), &pstate));
	ps_db_int(&a, state == PS_TASK_RUNNING);
	ps_db_real(&a, now_real());
	ps_db_int(&a, id);
	return q(st, "UPDATE tasks SET state = ?, host = ?, boot_id = ?, "
	    "pid = ?, pid_start = ?, started = CASE WHEN ? = 1 THEN "
	    "coalesce(started, ?) ELSE started END "
	    "WHERE id = ? AND state IN ('queued', 'running')", &a, NULL);
}

static int
set_final(struct ps_state *st, int64_t id, enum ps_task_state state,
    int exit_code, const char *stats)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	int64_t changed;

	ps_db_text(&a, ps_task_state_name(state));
	ps_db_real(&a, now_real());
	if (exit_code >= 0)
		ps_db_int(&a, exit_code);
	else
		ps_db_null(&a);
	ps_db_text(&a, stats);
	ps_db_int(&a, id);
	if (q(st, "UPDATE tasks SET state = ?, ended = ?, exit_code = ?, "
	    "stats = ? WHERE id = ? AND state IN ('queued', 'running')", &a,
	    &r) != PS_OK)
		return PS_EUSAGE;
	changed = r.changes;
	ps_dbres_free(&r);
	if (changed == 0)
		return PS_OK;
	memset(&a, 0, sizeof(a));
	ps_db_text(&a, ps_task_state_name(state));
	ps_db_int(&a, id);
	return q(st, "UPDATE schedules SET last_result = ? WHERE last_task = ?",
	    &a, NULL);
}

static int
task_set_state(struct ps_state *st, int64_t id, enum ps_task_state state,
    int exit_code, const char *stats_json)
{
	int r, cur;

	if ((size_t)state >= NELEM(state_names))
		return fail(st, "invalid task state");
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if ((cur = task_state_now(st, id)) == -2)
		return rollback(st, PS_EUSAGE);
	if (cur == -1)
		return rollback(st, fail(st, "unknown task %lld",
		    (long long)id));
	if (ps_task_state_final((enum ps_task_state)cur))
		return rollback(st, fail(st, "task %lld already ended (%s)",
		    (long long)id, state_names[cur]));
	if (ps_task_state_final(state))
		r = set_final(st, id, state, exit_code, stats_json);
	else
		r = set_active(st, id, state);
	if (r != PS_OK)
		return rollback(st, r);
	return commit(st);
}

int
ps_state_task_set_state(struct ps_state *st, int64_t id,
    enum ps_task_state state, int exit_code, const char *stats_json)
{
	enter(st);
	return leave(st, task_set_state(st, id, state, exit_code,
	    stats_json));
}

#define TASK_COLS "id, kind, schedule_id, console, server, components, " \
	"state, host, pid, pid_start, created, started, ended, exit_code, stats"

static void
task_row(const struct ps_dbres *r, size_t i, struct ps_task *t)
{
	int k;

	t->id = col_int(r, i, 0);
	k = lookup(kind_names, NELEM(kind_names), ps_dbres_at(r, i, 1)->s);
	t->kind = k < 0 ? PS_TASK_MANUAL : (enum ps_task_kind)k;
	t->schedule_id = col_int(r, i, 2);
	t->console = col_str(r, i, 3);
	t->server = col_str(r, i, 4);
	t->components = col_str(r, i, 5);
	k = lookup(state_names, NELEM(state_names), ps_dbres_at(r, i, 6)->s);
	t->state = k < 0 ? PS_TASK_FAILED : (enum ps_task_state)k;
	t->host = col_str(r, i, 7);
	t->pid = (pid_t)col_int(r, i, 8);
	t->pid_start = (uint64_t)col_int(r, i, 9);
	t->created = col_real(r, i, 10);
	t->started = col_real(r, i, 11);
	t->ended = col_real(r, i, 12);
	t->exit_code = col_null(r, i, 13) ? -1 : (int)col_int(r, i, 13);
	t->stats = col_str(r, i, 14);
}

static int task_reap(struct ps_state *st, size_t *reaped);

int
ps_state_task_get(struct ps_state *st, int64_t id, struct ps_task *t)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	int found;

	memset(t, 0, sizeof(*t));
	enter(st);
	if (task_reap(st, NULL) != PS_OK)
		return leave(st, PS_EUSAGE);
	ps_db_int(&a, id);
	if (q(st, "SELECT " TASK_COLS " FROM tasks WHERE id = ?", &a, &r) !=
	    PS_OK)
		return leave(st, PS_EUSAGE);
	if ((found = r.nrows == 1))
		task_row(&r, 0, t);
	ps_dbres_free(&r);
	return leave(st, found ? PS_OK : fail(st, "unknown task %lld",
	    (long long)id));
}

int
ps_state_task_list(struct ps_state *st, size_t limit, struct ps_task **v,
    size_t *n)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	size_t i;

	*v = NULL;
	*n = 0;
	enter(st);
	if (task_reap(st, NULL) != PS_OK)
		return leave(st, PS_EUSAGE);
	ps_db_int(&a, limit == 0 || limit > INT64_MAX ? INT64_MAX :
	    (int64_t)limit);
	if (q(st, "SELECT * FROM (SELECT " TASK_COLS " FROM tasks "
	    "ORDER BY id DESC LIMIT ?) AS newest ORDER BY id", &a, &r) !=
	    PS_OK)
		return leave(st, PS_EUSAGE);
	*v = xcalloc(r.nrows + 1, sizeof(**v));
	for (i = 0; i < r.nrows; i++)
		task_row(&r, i, &(*v)[i]);
	*n = r.nrows;
	ps_dbres_free(&r);
	return leave(st, PS_OK);
}

void
ps_task_free(struct ps_task *t)
{
	if (t == NULL)
		return;
	free(t->console);
	free(t->server);
	free(t->components);
	free(t->host);
	free(t->stats);
	memset(t, 0, sizeof(*t));
}

void
ps_task_list_free(struct ps_task *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ps_task_free(&v[i]);
	free(v);
}

int
ps_state_task_set_owner(struct ps_state *st, int64_t id, pid_t pid)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	char pstate;
	int rc;

	enter(st);
	ps_db_int(&a, (int64_t)pid);
	ps_db_int(&a, (int64_t)proc_start(pid, &pstate));
	ps_db_text(&a, st->host);
	ps_db_text(&a, st->boot_id);
	ps_db_int(&a, id);
	if (q(st, "UPDATE tasks SET pid = ?, pid_start = ?, host = ?, "
	    "boot_id = ? WHERE id = ? AND state IN ('queued', 'running')",
	    &a, &r) != PS_OK)
		return leave(st, PS_EUSAGE);
	rc = r.changes == 0 ? fail(st, "task %lld is unknown or already "
	    "ended", (long long)id) : PS_OK;
	ps_dbres_free(&r);
	return leave(st, rc);
}

/* --- reaping ------------------------------------------------------- */

struct owner {
	int64_t id;
	pid_t pid;
	uint64_t start;
};

/* Active tasks of this host whose owner is gone (read only). */
static int
find_dead(struct ps_state *st, struct owner **v, size_t *n)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	struct owner o;
	size_t i;

	ps_db_text(&a, st->host);
	if (q(st, "SELECT id, pid, pid_start, boot_id FROM tasks "
	    "WHERE state IN ('queued', 'running') AND host = ?", &a, &r) !=
	    PS_OK)
		return PS_EUSAGE;
	for (i = 0; i < r.nrows; i++) {
		o.id = col_int(&r, i, 0);
		o.pid = (pid_t)col_int(&r, i, 1);
		o.start = (uint64_t)col_int(&r, i, 2);
		if (owner_alive(st, ps_dbres_at(&r, i, 3)->s, o.pid, o.start))
			continue;
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		(*v)[(*n)++] = o;
	}
	ps_dbres_free(&r);
	return PS_OK;
}

static int event_add(struct ps_state *st, int64_t task_id, const char *kind,
    const char *level, const char *message, const char *data_json);

/*
 * Mark one task interrupted, unless its owner changed since it was read
 * (a worker took it over) or it ended meanwhile. *DONE: whether it was.
 */
static int
interrupt_one(struct ps_state *st, const struct owner *o, int *done)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	int64_t changed;
	char *msg;
	int rc;

	*done = 0;
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	ps_db_real(&a, now_real());
	ps_db_int(&a, o->id);
	ps_db_int(&a, (int64_t)o->pid);
	ps_db_int(&a, (int64_t)o->start);
	ps_db_text(&a, st->host);
	if (q(st, "UPDATE tasks SET state = 'interrupted', ended = ? "
	    "WHERE id = ? AND pid = ? AND pid_start = ? AND host = ? "
	    "AND state IN ('queued', 'running')", &a, &r) != PS_OK)
		return rollback(st, PS_EUSAGE);
	changed = r.changes;
	ps_dbres_free(&r);
	if (changed == 0)
		return rollback(st, PS_OK);
	memset(&a, 0, sizeof(a));
	ps_db_int(&a, o->id);
	if (q(st, "UPDATE schedules SET last_result = 'interrupted' "
	    "WHERE last_task = ?", &a, NULL) != PS_OK)
		return rollback(st, PS_EUSAGE);
	msg = xasprintf("task %lld interrupted: its process %ld on %s is gone",
	    (long long)o->id, (long)o->pid, st->host);
	rc = event_add(st, o->id, "end", "error", msg, NULL);
	free(msg);
	if (rc != PS_OK)
		return rollback(st, rc);
	*done = 1;
	return commit(st);
}

static int
task_reap(struct ps_state *st, size_t *reaped)
{
	struct owner *v = NULL;
	size_t n = 0, i, count = 0;
	int done, r;

	if (reaped != NULL)
		*reaped = 0;
	r = find_dead(st, &v, &n);
	for (i = 0; r == PS_OK && i < n; i++) {
		r = interrupt_one(st, &v[i], &done);
		count += done;
	}
	free(v);
	if (reaped != NULL)
		*reaped = count;
	return r;
}

int
ps_state_task_reap(struct ps_state *st, size_t *reaped)
{
	enter(st);
	return leave(st, task_reap(st, reaped));
}

/* --- events -------------------------------------------------------- */

static int
event_add(struct ps_state *st, int64_t task_id, const char *kind,
    const char *level, const char *message, const char *data_json)
{
	struct ps_dbargs a = { 0 };
	enum ps_db_rc rc;

	if (level == NULL || (strcmp(level, "info") != 0 &&
	    strcmp(level, "warning") != 0 && strcmp(level, "error") != 0))
		return fail(st, "invalid event level '%s'",
		    level != NULL ? level : "");
	if (kind == NULL || kind[0] == '\0')
		return fail(st, "event without a kind");
	ps_db_int(&a, task_id);
	ps_db_real(&a, now_real());
	ps_db_text(&a, level);
	ps_db_text(&a, kind);
	ps_db_text(&a, message != NULL ? message : "");
	ps_db_text(&a, data_json);
	rc = qx(st, "INSERT INTO events (task_id, time, level, kind, "
	    "message, data) VALUES (?, ?, ?, ?, ?, ?)", &a, NULL);
	if (rc == PS_DB_FOREIGN)
		return fail(st, "unknown task %lld", (long long)task_id);
	return rc == PS_DB_OK ? PS_OK : PS_EUSAGE;
}

int
ps_state_event_add(struct ps_state *st, int64_t task_id, const char *kind,
    const char *level, const char *message, const char *data_json)
{
	int r;

	enter(st);
	/* Under the write lock, so ids are in commit order (--follow). */
	if (begin(st) != PS_OK)
		return leave(st, PS_EUSAGE);
	if ((r = event_add(st, task_id, kind, level, message, data_json)) !=
	    PS_OK)
		return leave(st, rollback(st, r));
	return leave(st, commit(st));
}

struct evrow {
	struct ps_event ev;
	char *level, *kind, *message, *data, *server;
};

static void
evrows_free(struct evrow *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].level);
		free(v[i].kind);
		free(v[i].message);
		free(v[i].data);
		free(v[i].server);
	}
	free(v);
}

/* A LIKE pattern for ",NAME," inside a comma list ('!' escapes). */
static char *
like_member(const char *name)
{
	struct buf b = { 0 };

	buf_addstr(&b, "%,");
	for (; *name != '\0'; name++) {
		if (*name == '%' || *name == '_' || *name == '!')
			buf_addc(&b, '!');
		buf_addc(&b, (unsigned char)*name);
	}
	buf_addstr(&b, ",%");
	buf_addc(&b, '\0');
	return (char *)b.p;
}

/* Matching events, newest first (so LIMIT keeps the newest). */
static int
select_events(struct ps_state *st, const struct ps_event_filter *f,
    struct evrow **v, size_t *n)
{
	struct ps_dbargs a = { 0 };
	struct buf sql = { 0 };
	char *like = NULL;
	struct ps_dbres r;
	struct evrow *e;
	size_t i;
	int rc;

	buf_addstr(&sql, "SELECT e.id, e.task_id, e.time, e.level, e.kind, "
	    "e.message, e.data, t.server FROM events e JOIN tasks t "
	    "ON t.id = e.task_id WHERE e.id > ?");
	ps_db_int(&a, f->after_id);
	if (f->task != 0) {
		buf_addstr(&sql, " AND e.task_id = ?");
		ps_db_int(&a, f->task);
	}
	if (f->server != NULL) {
		/* Or one of the servers of a task that pushed several. */
		buf_addstr(&sql, " AND (t.server = ? OR ',' || t.server || ',' "
		    "LIKE ? ESCAPE '!')");
		ps_db_text(&a, f->server);
		like = like_member(f->server);
		ps_db_text(&a, like);
	}
	buf_addstr(&sql, " ORDER BY e.id DESC LIMIT ?");
	ps_db_int(&a, f->limit == 0 || f->limit > INT64_MAX ? INT64_MAX :
	    (int64_t)f->limit);
	buf_addc(&sql, '\0');
	rc = q(st, (const char *)sql.p, &a, &r);
	buf_free(&sql);
	free(like);
	if (rc != PS_OK)
		return PS_EUSAGE;
	*v = xcalloc(r.nrows + 1, sizeof(**v));
	for (i = 0; i < r.nrows; i++) {
		e = &(*v)[i];
		e->ev.id = col_int(&r, i, 0);
		e->ev.task_id = col_int(&r, i, 1);
		e->ev.time = col_real(&r, i, 2);
		e->ev.level = e->level = xstrdup(ps_dbres_at(&r, i, 3)->s);
		e->ev.kind = e->kind = xstrdup(ps_dbres_at(&r, i, 4)->s);
		e->ev.message = e->message = xstrdup(ps_dbres_at(&r, i, 5)->s);
		e->ev.data = e->data = col_str(&r, i, 6);
		e->ev.server = e->server = xstrdup(ps_dbres_at(&r, i, 7)->s);
	}
	*n = r.nrows;
	ps_dbres_free(&r);
	return PS_OK;
}

int
ps_state_events(struct ps_state *st, const struct ps_event_filter *f,
    ps_event_fn fn, void *arg)
{
	struct evrow *v = NULL;
	size_t n = 0, i;
	int r;

	enter(st);
	if ((r = task_reap(st, NULL)) == PS_OK)
		r = select_events(st, f, &v, &n);
	/* FN runs with the lock released: it prints, it may use ST. */
	if ((r = leave(st, r)) != PS_OK) {
		evrows_free(v, n);
		return r;
	}
	for (i = n; r == PS_OK && i > 0; i--)
		r = fn(&v[i - 1].ev, arg);
	evrows_free(v, n);
	return r;
}

static int
prune(struct ps_state *st, double before, int64_t **ids, size_t *n)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	size_t i;

	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	ps_db_real(&a, before);
	/* Events go with their tasks (ON DELETE CASCADE). */
	if (q(st, "DELETE FROM tasks WHERE ended IS NOT NULL AND ended < ? "
	    "AND state NOT IN ('queued', 'running') RETURNING id", &a, &r) !=
	    PS_OK)
		return rollback(st, PS_EUSAGE);
	*ids = xcalloc(r.nrows + 1, sizeof(**ids));
	for (i = 0; i < r.nrows; i++)
		(*ids)[i] = col_int(&r, i, 0);
	*n = r.nrows;
	ps_dbres_free(&r);
	if (commit(st) != PS_OK) {
		free(*ids);
		*ids = NULL;
		*n = 0;
		return PS_EUSAGE;
	}
	return PS_OK;
}

int
ps_state_prune(struct ps_state *st, double before, int64_t **ids, size_t *n)
{
	*ids = NULL;
	*n = 0;
	enter(st);
	return leave(st, prune(st, before, ids, n));
}

/* --- outcomes and status ------------------------------------------- */

static void
arg_opt(struct ps_dbargs *a, int64_t v)
{
	if (v < 0)
		ps_db_null(a);
	else
		ps_db_int(a, v);
}

/* Inside the transaction: replace SERVER's kept report rows. */
static int
store_rows(struct ps_state *st, const char *server,
    const struct ps_outcome *o)
{
	struct ps_dbargs a = { 0 };
	struct buf sql = { 0 };
	const struct ps_report_row *x;
	size_t i, k, n = o->nrows < PS_STATE_MAX_ROWS ? o->nrows :
	    PS_STATE_MAX_ROWS;
	int r = PS_OK;

	ps_db_text(&a, server);
	if (q(st, "DELETE FROM report_rows WHERE server = ?", &a, NULL) !=
	    PS_OK)
		return PS_EUSAGE;
	for (i = 0; r == PS_OK && i < n; i += ROWS_PER_INSERT) {
		memset(&a, 0, sizeof(a));
		buf_free(&sql);
		buf_addstr(&sql, "INSERT INTO report_rows (server, seq, "
		    "component, path, state, console_size, console_mtime, "
		    "server_size, server_mtime) VALUES ");
		for (k = i; k < n && k < i + ROWS_PER_INSERT; k++) {
			x = &o->rows[k];
			if (k > i)
				buf_addstr(&sql, ", ");
			buf_addstr(&sql, "(?, ?, ?, ?, ?, ?, ?, ?, ?)");
			if (a.n + 9 > PS_DB_MAXARGS)
				abort();
			ps_db_text(&a, server);
			ps_db_int(&a, (int64_t)k);
			ps_db_text(&a, x->component);
			ps_db_text(&a, x->path);
			ps_db_text(&a, x->state);
			arg_opt(&a, x->console_size);
			arg_opt(&a, x->console_mtime);
			arg_opt(&a, x->server_size);
			arg_opt(&a, x->server_mtime);
		}
		buf_addc(&sql, '\0');
		r = q(st, (const char *)sql.p, &a, NULL);
	}
	buf_free(&sql);
	return r;
}

static int
record_outcome(struct ps_state *st, const char *console,
    const struct ps_outcome *o)
{
	struct ps_dbargs a = { 0 };
	struct ps_dbres r;
	double now = now_real();
	int known;

	if ((size_t)o->kind >= NELEM(outcome_kinds) ||
	    (size_t)o->status >= NELEM(outcome_status))
		return fail(st, "invalid outcome");
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	ps_db_text(&a, o->server);
	if (q(st, "SELECT 1 FROM servers WHERE name = ?", &a, &r) != PS_OK)
		return rollback(st, PS_EUSAGE);
	known = r.nrows > 0;
	ps_dbres_free(&r);
	if (!known)			/* a URL: nothing to keep */
		return rollback(st, PS_OK);
	memset(&a, 0, sizeof(a));
	ps_db_text(&a, o->server);
	ps_db_text(&a, outcome_kinds[o->kind]);
	ps_db_real(&a, now);
	ps_db_text(&a, outcome_status[o->status]);
	ps_db_text(&a, o->status == PS_OUTCOME_OK ? NULL : o->error);
	arg_opt(&a, o->files_behind);
	ps_db_int(&a, (int64_t)o->bytes_sent);
	ps_db_int(&a, (int64_t)o->bytes_sent);
	if (o->status == PS_OUTCOME_OK)
		ps_db_real(&a, now);
	else
		ps_db_null(&a);
	ps_db_int(&a, (int64_t)o->rows_total);
	ps_db_text(&a, console);
	if (q(st, "INSERT INTO outcomes (server, kind, time, status, error, "
	    "files_behind, bytes_sent, bytes_sent_total, last_ok, rows_total, "
	    "console) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
	    "ON CONFLICT (server, kind) DO UPDATE SET time = excluded.time, "
	    "status = excluded.status, error = excluded.error, "
	    "files_behind = excluded.files_behind, "
	    "bytes_sent = excluded.bytes_sent, "
	    "bytes_sent_total = outcomes.bytes_sent_total + "
	    "excluded.bytes_sent, "
	    "last_ok = coalesce(excluded.last_ok, outcomes.last_ok), "
	    "rows_total = excluded.rows_total, console = excluded.console",
	    &a, NULL) != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (o->kind == PS_OUTCOME_REPORT && o->status == PS_OUTCOME_OK &&
	    store_rows(st, o->server, o) != PS_OK)
		return rollback(st, PS_EUSAGE);
	return commit(st);
}

int
ps_state_record_outcome(struct ps_state *st, const char *console,
    const struct ps_outcome *o)
{
	enter(st);
	return leave(st, record_outcome(st, console, o));
}

enum ps_fleet_state
ps_fleet_state_of(int has_push, double push_time,
    enum ps_outcome_status push_status, int has_report, double report_time,
    enum ps_outcome_status report_status, int64_t report_behind)
{
	int report_newer;

	if (!has_push && !has_report)
		return PS_FLEET_NEVER;
	report_newer = has_report && (!has_push || report_time >= push_time);
	switch (report_newer ? report_status : push_status) {
	case PS_OUTCOME_UNREACHABLE:
		return PS_FLEET_UNREACHABLE;
	case PS_OUTCOME_FAILED:
		return PS_FLEET_FAILED;
	default:
		break;
	}
	if (report_newer && report_behind > 0)
		return PS_FLEET_BEHIND;
	return PS_FLEET_CURRENT;
}

/* One outcome row as read for status. */
struct orow {
	int has;
	double time, last_ok;
	enum ps_outcome_status status;
	char *error;
	int64_t behind;
	uint64_t sent, sent_total;
	size_t rows_total;
};

static void
orow_read(const struct ps_dbres *r, size_t i, size_t c, struct orow *o)
{
	int k;

	o->has = !col_null(r, i, c);
	if (!o->has)
		return;
	o->time = col_real(r, i, c);
	k = lookup(outcome_status, NELEM(outcome_status),
	    ps_dbres_at(r, i, c + 1)->s);
	o->status = k < 0 ? PS_OUTCOME_FAILED : (enum ps_outcome_status)k;
	o->error = col_str(r, i, c + 2);
	o->behind = col_null(r, i, c + 3) ? -1 : col_int(r, i, c + 3);
	o->sent = (uint64_t)col_int(r, i, c + 4);
	o->sent_total = (uint64_t)col_int(r, i, c + 5);
	o->last_ok = col_real(r, i, c + 6);
	o->rows_total = (size_t)col_int(r, i, c + 7);
}

static void
status_row(const struct ps_dbres *r, size_t i, struct ps_server_status *s)
{
	struct orow p = { 0 }, rep = { 0 };
	int report_newer;

	s->server = col_str(r, i, 0);
	s->url = col_str(r, i, 1);
	s->download_source = (int)col_int(r, i, 2);
	orow_read(r, i, 3, &p);
	orow_read(r, i, 11, &rep);
	s->state = ps_fleet_state_of(p.has, p.time, p.status, rep.has,
	    rep.time, rep.status, rep.behind);
	report_newer = rep.has && (!p.has || rep.time >= p.time);
	s->last_ok = p.has ? p.last_ok : 0;
	s->last_time = report_newer ? rep.time : p.time;
	s->last_error = report_newer ? rep.error : p.error;
	if (report_newer)
		free(p.error);
	else
		free(rep.error);
	if (report_newer)
		s->files_behind = rep.status == PS_OUTCOME_OK ? rep.behind :
		    -1;
	else if (p.has && p.status == PS_OUTCOME_OK)
		s->files_behind = 0;
	else
		s->files_behind = rep.has && rep.status == PS_OUTCOME_OK ?
		    rep.behind : -1;
	s->bytes_sent = p.sent_total;
	s->bytes_sent_last = p.sent;
	s->report_time = rep.has ? rep.time : 0;
	s->rows_total = rep.rows_total;
	s->via = col_str(r, i, 19);
}

#define OUTCOME_COLS(x) x ".time, " x ".status, " x ".error, " \
	x ".files_behind, " x ".bytes_sent, " x ".bytes_sent_total, " \
	x ".last_ok, " x ".rows_total"

int
ps_state_status(struct ps_state *st, struct ps_server_status **v, size_t *n)
{
	struct ps_dbres r;
	size_t i;

	*v = NULL;
	*n = 0;
	enter(st);
	if (q(st, "SELECT s.name, s.url, s.download_source, "
	    OUTCOME_COLS("p") ", " OUTCOME_COLS("r") ", s.via FROM servers s "
	    "LEFT JOIN outcomes p ON p.server = s.name AND p.kind = 'push' "
	    "LEFT JOIN outcomes r ON r.server = s.name AND r.kind = 'report' "
	    "ORDER BY s.name", NULL, &r) != PS_OK)
		return leave(st, PS_EUSAGE);
	*v = xcalloc(r.nrows + 1, sizeof(**v));
	for (i = 0; i < r.nrows; i++)
		status_row(&r, i, &(*v)[i]);
	*n = r.nrows;
	ps_dbres_free(&r);
	return leave(st, PS_OK);
}

void
ps_server_status_list_free(struct ps_server_status *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].server);
		free(v[i].url);
		free(v[i].last_error);
		free(v[i].via);
	}
	free(v);
}

int
ps_state_report_rows(struct ps_state *st, const char *server,
    struct ps_report_row **v, size_t *n)
{
	struct ps_dbargs a = { 0 };
	struct ps_report_row *x;
	struct ps_dbres r;
	size_t i;

	*v = NULL;
	*n = 0;
	enter(st);
	ps_db_text(&a, server);
	if (q(st, "SELECT component, path, state, console_size, "
	    "console_mtime, server_size, server_mtime FROM report_rows "
	    "WHERE server = ? ORDER BY seq", &a, &r) != PS_OK)
		return leave(st, PS_EUSAGE);
	*v = xcalloc(r.nrows + 1, sizeof(**v));
	for (i = 0; i < r.nrows; i++) {
		x = &(*v)[i];
		x->component = col_str(&r, i, 0);
		x->path = xstrdup(ps_dbres_at(&r, i, 1)->s);
		x->state = xstrdup(ps_dbres_at(&r, i, 2)->s);
		x->console_size = col_null(&r, i, 3) ? -1 : col_int(&r, i, 3);
		x->console_mtime = col_null(&r, i, 4) ? -1 : col_int(&r, i, 4);
		x->server_size = col_null(&r, i, 5) ? -1 : col_int(&r, i, 5);
		x->server_mtime = col_null(&r, i, 6) ? -1 : col_int(&r, i, 6);
	}
	*n = r.nrows;
	ps_dbres_free(&r);
	return leave(st, PS_OK);
}

void
ps_report_rows_free(struct ps_report_row *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].component);
		free(v[i].path);
		free(v[i].state);
	}
	free(v);
}
