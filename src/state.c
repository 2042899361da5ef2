/*
 * state.c — the SQLite state database shared by consoles and processes.
 *
 * Schema (PRAGMA user_version 1, PRAGMA application_id 'PSYC'):
 *
 *   servers(name TEXT PRIMARY KEY, url, identity_file, secret_file, rsh,
 *           download_source 0|1, created INTEGER)
 *   schedules(id INTEGER PRIMARY KEY AUTOINCREMENT, owner (console name),
 *           server REFERENCES servers, components ("a,b"; "" = all),
 *           cron (as written), next_run INTEGER (NULL: never),
 *           last_run INTEGER, last_result (task state name),
 *           last_task INTEGER, created INTEGER)
 *   tasks(id INTEGER PRIMARY KEY AUTOINCREMENT, kind, schedule_id
 *           REFERENCES schedules ON DELETE SET NULL, console, server
 *           (name or URL), components, state, host, boot_id, pid,
 *           pid_start (/proc/PID/stat field 22), created REAL,
 *           started REAL, ended REAL, exit_code, stats (JSON))
 *   events(id INTEGER PRIMARY KEY AUTOINCREMENT, task_id REFERENCES
 *           tasks ON DELETE CASCADE, time REAL, level, kind, message,
 *           data (JSON))
 *
 * AUTOINCREMENT keeps ids from being reused after a delete: a schedule
 * id the user saw never names another schedule, and --follow, which polls
 * for events with id > last seen, never misses or repeats one (ids are
 * assigned under the single write lock, so they are in commit order).
 *
 * A task is owned by one process, identified by (host, boot id, pid,
 * start time) so a reused pid or a reboot cannot keep a dead task
 * "running". Only the owning host judges its tasks.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ps.h"
#include "cron.h"
#include "state.h"

#define BUSY_TIMEOUT_MS 10000

struct ps_state {
	sqlite3 *db;
	char *path;
	char host[256];
	char boot_id[64];
};

/* Migration I takes user_version I to I + 1. */
static const char *const migrations[PS_STATE_VERSION] = {
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
};

static const char *const kind_names[] = { "manual", "run-now", "scheduled" };
static const char *const state_names[] = { "queued", "running", "succeeded",
	"failed", "canceled", "interrupted" };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* --- small helpers ------------------------------------------------- */

static int
dberr(struct ps_state *st, const char *what)
{
	ps_err("%s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
	return PS_EUSAGE;
}

static sqlite3_stmt *
prep(struct ps_state *st, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		dberr(st, "cannot prepare statement");
		return NULL;
	}
	return s;
}

static int
exec(struct ps_state *st, const char *sql, const char *what)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return dberr(st, what);
	return PS_OK;
}

static int
begin(struct ps_state *st)
{
	return exec(st, "BEGIN IMMEDIATE", "cannot start a transaction");
}

static int
commit(struct ps_state *st)
{
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		dberr(st, "cannot commit");
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return PS_EUSAGE;
	}
	return PS_OK;
}

/* Roll back (if a transaction is open) and pass R through. */
static int
rollback(struct ps_state *st, int r)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static void
bind_str(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static char *
col_str(sqlite3_stmt *s, int i)
{
	const unsigned char *v = sqlite3_column_text(s, i);

	return v != NULL ? xstrdup((const char *)v) : NULL;
}

/* Run a statement that returns no rows; finalizes it. */
static int
run(struct ps_state *st, sqlite3_stmt *s, const char *what)
{
	int rc;

	if (s == NULL)
		return PS_EUSAGE;
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return dberr(st, what);
	return PS_OK;
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

/* mkdir -p of the directory part of PATH, new directories mode 0755. */
static int
make_parents(const char *path)
{
	char *d = xstrdup(path), *p;

	for (p = d + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(d, 0755) == -1 && errno != EEXIST) {
			ps_err("%s: cannot create directory: %s", d,
			    strerror(errno));
			free(d);
			return PS_EUSAGE;
		}
		*p = '/';
	}
	free(d);
	return PS_OK;
}

/*
 * Create PATH (mode 0640) if missing; if it exists, make sure it is empty
 * or starts with the SQLite header — before SQLite writes anything to it.
 */
static int
prepare_file(const char *path)
{
	static const char magic[16] = "SQLite format 3";
	char head[16];
	ssize_t n;
	int fd;

	if (make_parents(path) != PS_OK)
		return PS_EUSAGE;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd != -1) {
		(void)fchmod(fd, 0640);		/* whatever the umask */
		close(fd);
		return PS_OK;
	}
	if (errno != EEXIST) {
		ps_err("%s: cannot create state database: %s", path,
		    strerror(errno));
		return PS_EUSAGE;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		ps_err("%s: cannot open state database: %s", path,
		    strerror(errno));
		return PS_EUSAGE;
	}
	n = read(fd, head, sizeof(head));
	close(fd);
	if (n == -1) {
		ps_err("%s: cannot read state database: %s", path,
		    strerror(errno));
		return PS_EUSAGE;
	}
	if (n != 0 && (n != (ssize_t)sizeof(head) ||
	    memcmp(head, magic, sizeof(magic)) != 0)) {
		ps_err("%s: not a SQLite database; refusing to use it as the "
		    "state database", path);
		return PS_EUSAGE;
	}
	return PS_OK;
}

/*
 * What the file holds: 1 ours (*VERSION set), 0 empty (never used), or
 * -1 after an error line (foreign, newer, unreadable).
 */
static int
identify(struct ps_state *st, long long *version)
{
	long long app, nobj;
	sqlite3_stmt *s;
	int rc;

	/* One statement, so one snapshot while another process migrates. */
	s = prep(st, "SELECT a.application_id, u.user_version, "
	    "(SELECT count(*) FROM sqlite_master) "
	    "FROM pragma_application_id AS a, pragma_user_version AS u");
	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	app = sqlite3_column_int64(s, 0);
	*version = sqlite3_column_int64(s, 1);
	nobj = sqlite3_column_int64(s, 2);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW) {
		dberr(st, "cannot read the database header");
		return -1;
	}
	if (app == PS_STATE_APP_ID) {
		if (*version > PS_STATE_VERSION) {
			ps_err("%s: written by a newer patchsync (schema "
			    "version %lld; this one knows up to %d); "
			    "refusing to use it", st->path, *version,
			    PS_STATE_VERSION);
			return -1;
		}
		return 1;
	}
	if (app == 0 && *version == 0 && nobj == 0)
		return 0;
	ps_err("%s: a SQLite database that is not a patchsync state "
	    "database; refusing to use it", st->path);
	return -1;
}

static int
migrate(struct ps_state *st)
{
	char sql[64];
	long long v;
	int kind;

	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	/* Again under the lock: another process may have done it. */
	if ((kind = identify(st, &v)) < 0)
		return rollback(st, PS_EUSAGE);
	if (kind == 1 && v == PS_STATE_VERSION)
		return commit(st);
	if (kind == 0)
		v = 0;
	for (; v < PS_STATE_VERSION; v++)
		if (exec(st, migrations[v], "cannot create the schema") !=
		    PS_OK)
			return rollback(st, PS_EUSAGE);
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d",
	    PS_STATE_APP_ID);
	if (exec(st, sql, "cannot mark the database") != PS_OK)
		return rollback(st, PS_EUSAGE);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    PS_STATE_VERSION);
	if (exec(st, sql, "cannot set the schema version") != PS_OK)
		return rollback(st, PS_EUSAGE);
	return commit(st);
}

/* The current journal mode into MODE (16 bytes); SQLite result code. */
static int
journal_mode(struct ps_state *st, const char *sql, char *mode)
{
	sqlite3_stmt *s = prep(st, sql);
	const unsigned char *v;
	int rc;

	mode[0] = '\0';
	if (s == NULL)
		return SQLITE_ERROR;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && (v = sqlite3_column_text(s, 0)) != NULL)
		snprintf(mode, 16, "%s", (const char *)v);
	sqlite3_finalize(s);
	return rc;
}

static int
configure(struct ps_state *st)
{
	char mode[16];
	int rc, tries;

	/*
	 * WAL lets readers work while one process writes. Switching needs
	 * an exclusive lock and SQLite does not call the busy handler for
	 * it, so retry here (a first open racing another one).
	 */
	rc = journal_mode(st, "PRAGMA journal_mode", mode);
	for (tries = 0; strcmp(mode, "wal") != 0 &&
	    tries < BUSY_TIMEOUT_MS / 10; tries++) {
		rc = journal_mode(st, "PRAGMA journal_mode = WAL", mode);
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			break;
		usleep(10000);
	}
	if (strcmp(mode, "wal") != 0)
		return dberr(st, "cannot switch to WAL journal mode");
	return exec(st, "PRAGMA foreign_keys = ON; "
	    "PRAGMA synchronous = NORMAL", "cannot configure the database");
}

int
ps_state_open(const char *path, struct ps_state **stp)
{
	struct ps_state *st;
	long long v;
	int kind;

	*stp = NULL;
	if (prepare_file(path) != PS_OK)
		return PS_EUSAGE;
	st = xcalloc(1, sizeof(*st));
	st->path = xstrdup(path);
	if (gethostname(st->host, sizeof(st->host) - 1) == -1)
		st->host[0] = '\0';
	read_boot_id(st->boot_id, sizeof(st->boot_id));
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		if (st->db == NULL)
			ps_err("%s: cannot open state database", path);
		else
			dberr(st, "cannot open state database");
		ps_state_close(st);
		return PS_EUSAGE;
	}
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	/* Identify before anything that could write (journal_mode does). */
	if ((kind = identify(st, &v)) < 0 || configure(st) != PS_OK ||
	    ((kind == 0 || v < PS_STATE_VERSION) && migrate(st) != PS_OK)) {
		ps_state_close(st);
		return PS_EUSAGE;
	}
	*stp = st;
	return PS_OK;
}

void
ps_state_close(struct ps_state *st)
{
	if (st == NULL)
		return;
	sqlite3_close(st->db);
	free(st->path);
	free(st);
}

/* --- servers ------------------------------------------------------- */

int
ps_state_server_name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '-' || name[0] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= '0' && name[i] <= '9') ||
		    name[i] == '.' || name[i] == '_' || name[i] == '-'))
			return 0;
	return 1;
}

int
ps_state_server_add(struct ps_state *st, const struct ps_server *sv)
{
	sqlite3_stmt *s;
	int rc;

	if (!ps_state_server_name_ok(sv->name)) {
		ps_err("invalid server name '%s': use up to 64 letters, digits, "
		    "'.', '_' and '-', not starting with '-' or '.'", sv->name);
		return PS_EUSAGE;
	}
	if (sv->url == NULL || sv->url[0] == '\0') {
		ps_err("server %s: empty URL", sv->name);
		return PS_EUSAGE;
	}
	s = prep(st, "INSERT INTO servers (name, url, identity_file, "
	    "secret_file, rsh, download_source, created) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?)");
	if (s == NULL)
		return PS_EUSAGE;
	bind_str(s, 1, sv->name);
	bind_str(s, 2, sv->url);
	bind_str(s, 3, sv->identity_file);
	bind_str(s, 4, sv->secret_file);
	bind_str(s, 5, sv->rsh);
	sqlite3_bind_int(s, 6, sv->download_source != 0);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE)
		return PS_OK;
	if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_PRIMARYKEY) {
		ps_err("server %s already exists", sv->name);
		return PS_EUSAGE;
	}
	return dberr(st, "cannot add server");
}

#define SERVER_COLS "name, url, identity_file, secret_file, rsh, " \
	"download_source, created"

static void
server_row(sqlite3_stmt *s, struct ps_server *sv)
{
	sv->name = col_str(s, 0);
	sv->url = col_str(s, 1);
	sv->identity_file = col_str(s, 2);
	sv->secret_file = col_str(s, 3);
	sv->rsh = col_str(s, 4);
	sv->download_source = sqlite3_column_int(s, 5);
	sv->created = (time_t)sqlite3_column_int64(s, 6);
}

int
ps_state_server_get(struct ps_state *st, const char *name,
    struct ps_server *sv)
{
	sqlite3_stmt *s;
	int rc;

	memset(sv, 0, sizeof(*sv));
	s = prep(st, "SELECT " SERVER_COLS " FROM servers WHERE name = ?");
	if (s == NULL)
		return PS_EUSAGE;
	bind_str(s, 1, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		server_row(s, sv);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return PS_OK;
	if (rc == SQLITE_DONE) {
		ps_err("unknown server %s", name);
		return PS_EUSAGE;
	}
	return dberr(st, "cannot read server");
}

int
ps_state_server_list(struct ps_state *st, struct ps_server **v, size_t *n)
{
	sqlite3_stmt *s;
	int rc;

	*v = NULL;
	*n = 0;
	s = prep(st, "SELECT " SERVER_COLS " FROM servers ORDER BY name");
	if (s == NULL)
		return PS_EUSAGE;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		server_row(s, &(*v)[(*n)++]);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		ps_server_list_free(*v, *n);
		*v = NULL;
		*n = 0;
		return dberr(st, "cannot list servers");
	}
	return PS_OK;
}

int
ps_state_server_remove(struct ps_state *st, const char *name)
{
	sqlite3_stmt *s;
	char *users = NULL;
	int rc;

	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	s = prep(st, "SELECT group_concat(id, ', ') FROM schedules "
	    "WHERE server = ?");
	if (s == NULL)
		return rollback(st, PS_EUSAGE);
	bind_str(s, 1, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		users = col_str(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return rollback(st, dberr(st, "cannot read schedules"));
	if (users != NULL) {
		ps_err("server %s is used by schedule %s; delete those first",
		    name, users);
		free(users);
		return rollback(st, PS_EUSAGE);
	}
	s = prep(st, "DELETE FROM servers WHERE name = ?");
	if (s != NULL)
		bind_str(s, 1, name);
	if (run(st, s, "cannot remove server") != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (sqlite3_changes(st->db) == 0) {
		ps_err("unknown server %s", name);
		return rollback(st, PS_EUSAGE);
	}
	return commit(st);
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
components_ok(const char *c)
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
	ps_err("invalid component list '%s': names of [a-z0-9_-] separated "
	    "by commas", c);
	return 0;
}

/* Parse CRON and compute its next slot after NOW (0: never). */
static int
cron_next(const char *cron, time_t now, time_t *next)
{
	struct ps_cron c;
	char err[256];
	time_t t;

	if (ps_cron_parse(cron, &c, err, sizeof(err)) != 0) {
		ps_err("invalid cron expression '%s': %s", cron, err);
		return PS_EUSAGE;
	}
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

	if (ps_state_server_get(st, server, &sv) != PS_OK)
		return PS_EUSAGE;
	src = sv.download_source;
	ps_server_free(&sv);
	if (src) {
		ps_err("server %s is a download source: the console downloads "
		    "from it, so it cannot be scheduled for pushes", server);
		return PS_EUSAGE;
	}
	return PS_OK;
}

static void
bind_time(sqlite3_stmt *s, int i, time_t t)
{
	if (t == 0)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int64(s, i, (sqlite3_int64)t);
}

int
ps_state_schedule_add(struct ps_state *st, const char *owner,
    const char *server, const char *components, const char *cron,
    time_t now, int64_t *id)
{
	sqlite3_stmt *s;
	time_t next;

	if (components == NULL)
		components = "";
	if (cron_next(cron, now, &next) != PS_OK || !components_ok(components))
		return PS_EUSAGE;
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (check_target(st, server) != PS_OK)
		return rollback(st, PS_EUSAGE);
	s = prep(st, "INSERT INTO schedules (owner, server, components, cron, "
	    "next_run, created) VALUES (?, ?, ?, ?, ?, ?)");
	if (s != NULL) {
		bind_str(s, 1, owner);
		bind_str(s, 2, server);
		bind_str(s, 3, components);
		bind_str(s, 4, cron);
		bind_time(s, 5, next);
		sqlite3_bind_int64(s, 6, (sqlite3_int64)now);
	}
	if (run(st, s, "cannot add schedule") != PS_OK)
		return rollback(st, PS_EUSAGE);
	*id = sqlite3_last_insert_rowid(st->db);
	return commit(st);
}

#define SCHEDULE_COLS "id, owner, server, components, cron, next_run, " \
	"last_run, last_result, last_task, created"

static void
schedule_row(sqlite3_stmt *s, struct ps_schedule *sc)
{
	sc->id = sqlite3_column_int64(s, 0);
	sc->owner = col_str(s, 1);
	sc->server = col_str(s, 2);
	sc->components = col_str(s, 3);
	sc->cron = col_str(s, 4);
	sc->next_run = (time_t)sqlite3_column_int64(s, 5);
	sc->last_run = (time_t)sqlite3_column_int64(s, 6);
	sc->last_result = col_str(s, 7);
	sc->last_task = sqlite3_column_int64(s, 8);
	sc->created = (time_t)sqlite3_column_int64(s, 9);
}

int
ps_state_schedule_get(struct ps_state *st, int64_t id, struct ps_schedule *sc)
{
	sqlite3_stmt *s;
	int rc;

	memset(sc, 0, sizeof(*sc));
	s = prep(st, "SELECT " SCHEDULE_COLS " FROM schedules WHERE id = ?");
	if (s == NULL)
		return PS_EUSAGE;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		schedule_row(s, sc);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return PS_OK;
	if (rc == SQLITE_DONE) {
		ps_err("unknown schedule %lld", (long long)id);
		return PS_EUSAGE;
	}
	return dberr(st, "cannot read schedule");
}

int
ps_state_schedule_list(struct ps_state *st, struct ps_schedule **v,
    size_t *n)
{
	sqlite3_stmt *s;
	int rc;

	*v = NULL;
	*n = 0;
	s = prep(st, "SELECT " SCHEDULE_COLS " FROM schedules ORDER BY id");
	if (s == NULL)
		return PS_EUSAGE;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		schedule_row(s, &(*v)[(*n)++]);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		ps_schedule_list_free(*v, *n);
		*v = NULL;
		*n = 0;
		return dberr(st, "cannot list schedules");
	}
	return PS_OK;
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

	if (ps_state_schedule_get(st, id, &tmp) != PS_OK)
		return PS_EUSAGE;
	r = strcmp(tmp.owner, console) == 0 ? PS_OK : PS_EUSAGE;
	if (r != PS_OK)
		ps_err("schedule %lld belongs to console %s; only it can edit "
		    "or run it", (long long)id, tmp.owner);
	if (r == PS_OK && sc != NULL)
		*sc = tmp;
	else
		ps_schedule_free(&tmp);
	return r;
}

static int
update_text(struct ps_state *st, const char *sql, const char *v, int64_t id)
{
	sqlite3_stmt *s = prep(st, sql);

	if (s != NULL) {
		bind_str(s, 1, v);
		sqlite3_bind_int64(s, 2, id);
	}
	return run(st, s, "cannot update schedule");
}

int
ps_state_schedule_edit(struct ps_state *st, const char *console, int64_t id,
    const struct ps_schedule_edit *e, time_t now)
{
	sqlite3_stmt *s;
	time_t next = 0;

	if (e->cron != NULL && cron_next(e->cron, now, &next) != PS_OK)
		return PS_EUSAGE;
	if (e->components != NULL && !components_ok(e->components))
		return PS_EUSAGE;
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (own_schedule(st, console, id, NULL) != PS_OK ||
	    (e->server != NULL && check_target(st, e->server) != PS_OK))
		return rollback(st, PS_EUSAGE);
	if (e->server != NULL && update_text(st, "UPDATE schedules SET "
	    "server = ? WHERE id = ?", e->server, id) != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (e->components != NULL && update_text(st, "UPDATE schedules SET "
	    "components = ? WHERE id = ?", e->components, id) != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (e->cron != NULL) {
		s = prep(st, "UPDATE schedules SET cron = ?, next_run = ? "
		    "WHERE id = ?");
		if (s != NULL) {
			bind_str(s, 1, e->cron);
			bind_time(s, 2, next);
			sqlite3_bind_int64(s, 3, id);
		}
		if (run(st, s, "cannot update schedule") != PS_OK)
			return rollback(st, PS_EUSAGE);
	}
	return commit(st);
}

int
ps_state_schedule_delete(struct ps_state *st, int64_t id)
{
	sqlite3_stmt *s;

	s = prep(st, "DELETE FROM schedules WHERE id = ?");
	if (s != NULL)
		sqlite3_bind_int64(s, 1, id);
	if (run(st, s, "cannot delete schedule") != PS_OK)
		return PS_EUSAGE;
	if (sqlite3_changes(st->db) == 0) {
		ps_err("unknown schedule %lld", (long long)id);
		return PS_EUSAGE;
	}
	return PS_OK;
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
	sqlite3_stmt *s;
	char pstate;

	s = prep(st, "INSERT INTO tasks (kind, schedule_id, console, server, "
	    "components, state, host, boot_id, pid, pid_start, created) "
	    "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)");
	if (s != NULL) {
		bind_str(s, 1, ps_task_kind_name(kind));
		if (schedule_id != 0)
			sqlite3_bind_int64(s, 2, schedule_id);
		bind_str(s, 3, console);
		bind_str(s, 4, server);
		bind_str(s, 5, components != NULL ? components : "");
		bind_str(s, 6, st->host);
		bind_str(s, 7, st->boot_id);
		sqlite3_bind_int64(s, 8, (sqlite3_int64)getpid());
		sqlite3_bind_int64(s, 9,
		    (sqlite3_int64)proc_start(getpid(), &pstate));
		sqlite3_bind_double(s, 10, now_real());
	}
	if (run(st, s, "cannot create task") != PS_OK)
		return PS_EUSAGE;
	*id = sqlite3_last_insert_rowid(st->db);
	return PS_OK;
}

/* Record TASK as the last run of schedule SCHED; SET_NEXT: next_run = NEXT. */
static int
note_run(struct ps_state *st, int64_t sched, int64_t task, time_t now,
    time_t next, int set_next)
{
	sqlite3_stmt *s;

	s = prep(st, set_next ?
	    "UPDATE schedules SET last_run = ?, last_task = ?, "
	    "last_result = 'queued', next_run = ? WHERE id = ?" :
	    "UPDATE schedules SET last_run = ?, last_task = ?, "
	    "last_result = 'queued' WHERE id = ?");
	if (s != NULL) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)now);
		sqlite3_bind_int64(s, 2, task);
		if (set_next) {
			bind_time(s, 3, next);
			sqlite3_bind_int64(s, 4, sched);
		} else {
			sqlite3_bind_int64(s, 3, sched);
		}
	}
	return run(st, s, "cannot update schedule");
}

int
ps_state_task_create(struct ps_state *st, enum ps_task_kind kind,
    int64_t schedule_id, const char *console, const char *server,
    const char *components, int64_t *id)
{
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (insert_task(st, kind, schedule_id, console, server, components,
	    id) != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (schedule_id != 0 && note_run(st, schedule_id, *id, time(NULL), 0,
	    0) != PS_OK)
		return rollback(st, PS_EUSAGE);
	return commit(st);
}

int
ps_state_schedule_run_now(struct ps_state *st, const char *console,
    int64_t id, struct ps_claim *claim)
{
	struct ps_schedule sc;

	memset(claim, 0, sizeof(*claim));
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (own_schedule(st, console, id, &sc) != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (insert_task(st, PS_TASK_RUN_NOW, id, console, sc.server,
	    sc.components, &claim->task_id) != PS_OK ||
	    note_run(st, id, claim->task_id, time(NULL), 0, 0) != PS_OK) {
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

struct due {
	int64_t id;
	char *server, *components, *cron;
};

static void
due_free(struct due *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(d[i].server);
		free(d[i].components);
		free(d[i].cron);
	}
	free(d);
}

/* Inside the transaction: this console's schedules due at NOW. */
static int
select_due(struct ps_state *st, const char *console, time_t now,
    struct due **v, size_t *n)
{
	sqlite3_stmt *s;
	int rc;

	s = prep(st, "SELECT id, server, components, cron FROM schedules "
	    "WHERE owner = ? AND next_run IS NOT NULL AND next_run <= ? "
	    "ORDER BY next_run, id");
	if (s == NULL)
		return PS_EUSAGE;
	bind_str(s, 1, console);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)now);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		(*v)[*n].id = sqlite3_column_int64(s, 0);
		(*v)[*n].server = col_str(s, 1);
		(*v)[*n].components = col_str(s, 2);
		(*v)[*n].cron = col_str(s, 3);
		(*n)++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return dberr(st, "cannot read due schedules");
	return PS_OK;
}

int
ps_state_schedule_claim_due(struct ps_state *st, const char *console,
    time_t now, struct ps_claim **v, size_t *n)
{
	struct due *d = NULL;
	size_t nd = 0, i;
	time_t next;
	int64_t task;

	*v = NULL;
	*n = 0;
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if (select_due(st, console, now, &d, &nd) != PS_OK)
		goto fail;
	for (i = 0; i < nd; i++) {
		/* A bad stored expression stops that schedule, not the rest. */
		if (cron_next(d[i].cron, now, &next) != PS_OK)
			next = 0;
		if (insert_task(st, PS_TASK_SCHEDULED, d[i].id, console,
		    d[i].server, d[i].components, &task) != PS_OK ||
		    note_run(st, d[i].id, task, now, next, 1) != PS_OK)
			goto fail;
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		(*v)[*n].schedule_id = d[i].id;
		(*v)[*n].task_id = task;
		(*v)[*n].server = d[i].server;
		(*v)[*n].components = d[i].components;
		d[i].server = d[i].components = NULL;
		(*n)++;
	}
	due_free(d, nd);
	if (commit(st) != PS_OK) {
		ps_claim_list_free(*v, *n);
		*v = NULL;
		*n = 0;
		return PS_EUSAGE;
	}
	return PS_OK;
fail:
	due_free(d, nd);
	ps_claim_list_free(*v, *n);
	*v = NULL;
	*n = 0;
	return rollback(st, PS_EUSAGE);
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

static int
task_state_now(struct ps_state *st, int64_t id)
{
	sqlite3_stmt *s;
	int rc, r = -1;

	if ((s = prep(st, "SELECT state FROM tasks WHERE id = ?")) == NULL)
		return -2;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		r = lookup(state_names, NELEM(state_names),
		    (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		dberr(st, "cannot read task");
		return -2;
	}
	return r;
}

static int
set_active(struct ps_state *st, int64_t id, enum ps_task_state state)
{
	sqlite3_stmt *s;
	char pstate;

	s = prep(st, "UPDATE tasks SET state = ?, host = ?, boot_id = ?, "
	    "pid = ?, pid_start = ?, started = CASE WHEN ? THEN "
	    "coalesce(started, ?) ELSE started END "
	    "WHERE id = ? AND state IN ('queued', 'running')");
	if (s != NULL) {
		bind_str(s, 1, ps_task_state_name(state));
		bind_str(s, 2, st->host);
		bind_str(s, 3, st->boot_id);
		sqlite3_bind_int64(s, 4, (sqlite3_int64)getpid());
		sqlite3_bind_int64(s, 5,
		    (sqlite3_int64)proc_start(getpid(), &pstate));
		sqlite3_bind_int(s, 6, state == PS_TASK_RUNNING);
		sqlite3_bind_double(s, 7, now_real());
		sqlite3_bind_int64(s, 8, id);
	}
	return run(st, s, "cannot update task");
}

static int
set_final(struct ps_state *st, int64_t id, enum ps_task_state state,
    int exit_code, const char *stats)
{
	sqlite3_stmt *s;

	s = prep(st, "UPDATE tasks SET state = ?, ended = ?, exit_code = ?, "
	    "stats = ? WHERE id = ? AND state IN ('queued', 'running')");
	if (s != NULL) {
		bind_str(s, 1, ps_task_state_name(state));
		sqlite3_bind_double(s, 2, now_real());
		if (exit_code >= 0)
			sqlite3_bind_int(s, 3, exit_code);
		bind_str(s, 4, stats);
		sqlite3_bind_int64(s, 5, id);
	}
	if (run(st, s, "cannot update task") != PS_OK)
		return PS_EUSAGE;
	if (sqlite3_changes(st->db) == 0)
		return PS_OK;
	s = prep(st, "UPDATE schedules SET last_result = ? WHERE last_task = ?");
	if (s != NULL) {
		bind_str(s, 1, ps_task_state_name(state));
		sqlite3_bind_int64(s, 2, id);
	}
	return run(st, s, "cannot update schedule");
}

int
ps_state_task_set_state(struct ps_state *st, int64_t id,
    enum ps_task_state state, int exit_code, const char *stats_json)
{
	int r, cur;

	if ((size_t)state >= NELEM(state_names))
		return PS_EUSAGE;
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	if ((cur = task_state_now(st, id)) == -2)
		return rollback(st, PS_EUSAGE);
	if (cur == -1) {
		ps_err("unknown task %lld", (long long)id);
		return rollback(st, PS_EUSAGE);
	}
	if (ps_task_state_final((enum ps_task_state)cur)) {
		ps_err("task %lld already ended (%s)", (long long)id,
		    state_names[cur]);
		return rollback(st, PS_EUSAGE);
	}
	if (ps_task_state_final(state))
		r = set_final(st, id, state, exit_code, stats_json);
	else
		r = set_active(st, id, state);
	if (r != PS_OK)
		return rollback(st, r);
	return commit(st);
}

#define TASK_COLS "id, kind, schedule_id, console, server, components, " \
	"state, host, pid, pid_start, created, started, ended, exit_code, stats"

static void
task_row(sqlite3_stmt *s, struct ps_task *t)
{
	int k;

	t->id = sqlite3_column_int64(s, 0);
	k = lookup(kind_names, NELEM(kind_names),
	    (const char *)sqlite3_column_text(s, 1));
	t->kind = k < 0 ? PS_TASK_MANUAL : (enum ps_task_kind)k;
	t->schedule_id = sqlite3_column_int64(s, 2);
	t->console = col_str(s, 3);
	t->server = col_str(s, 4);
	t->components = col_str(s, 5);
	k = lookup(state_names, NELEM(state_names),
	    (const char *)sqlite3_column_text(s, 6));
	t->state = k < 0 ? PS_TASK_FAILED : (enum ps_task_state)k;
	t->host = col_str(s, 7);
	t->pid = (pid_t)sqlite3_column_int64(s, 8);
	t->pid_start = (uint64_t)sqlite3_column_int64(s, 9);
	t->created = sqlite3_column_double(s, 10);
	t->started = sqlite3_column_double(s, 11);
	t->ended = sqlite3_column_double(s, 12);
	t->exit_code = sqlite3_column_type(s, 13) == SQLITE_NULL ? -1 :
	    sqlite3_column_int(s, 13);
	t->stats = col_str(s, 14);
}

int
ps_state_task_get(struct ps_state *st, int64_t id, struct ps_task *t)
{
	sqlite3_stmt *s;
	int rc;

	memset(t, 0, sizeof(*t));
	if (ps_state_task_reap(st, NULL) != PS_OK)
		return PS_EUSAGE;
	if ((s = prep(st, "SELECT " TASK_COLS " FROM tasks WHERE id = ?")) ==
	    NULL)
		return PS_EUSAGE;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		task_row(s, t);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return PS_OK;
	if (rc == SQLITE_DONE) {
		ps_err("unknown task %lld", (long long)id);
		return PS_EUSAGE;
	}
	return dberr(st, "cannot read task");
}

int
ps_state_task_list(struct ps_state *st, size_t limit, struct ps_task **v,
    size_t *n)
{
	sqlite3_stmt *s;
	int rc;

	*v = NULL;
	*n = 0;
	if (ps_state_task_reap(st, NULL) != PS_OK)
		return PS_EUSAGE;
	s = prep(st, "SELECT * FROM (SELECT " TASK_COLS " FROM tasks "
	    "ORDER BY id DESC LIMIT ?) ORDER BY id");
	if (s == NULL)
		return PS_EUSAGE;
	sqlite3_bind_int64(s, 1, limit == 0 || limit > INT64_MAX ? -1 :
	    (sqlite3_int64)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		task_row(s, &(*v)[(*n)++]);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		ps_task_list_free(*v, *n);
		*v = NULL;
		*n = 0;
		return dberr(st, "cannot list tasks");
	}
	return PS_OK;
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
	sqlite3_stmt *s;
	char pstate;

	s = prep(st, "UPDATE tasks SET pid = ?, pid_start = ?, host = ?, "
	    "boot_id = ? WHERE id = ? AND state IN ('queued', 'running')");
	if (s != NULL) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)pid);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)proc_start(pid, &pstate));
		bind_str(s, 3, st->host);
		bind_str(s, 4, st->boot_id);
		sqlite3_bind_int64(s, 5, id);
	}
	if (run(st, s, "cannot update task") != PS_OK)
		return PS_EUSAGE;
	if (sqlite3_changes(st->db) == 0) {
		ps_err("task %lld is unknown or already ended", (long long)id);
		return PS_EUSAGE;
	}
	return PS_OK;
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
	sqlite3_stmt *s;
	struct owner o;
	const char *boot;
	int rc;

	s = prep(st, "SELECT id, pid, pid_start, boot_id FROM tasks "
	    "WHERE state IN ('queued', 'running') AND host = ?");
	if (s == NULL)
		return PS_EUSAGE;
	bind_str(s, 1, st->host);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		o.id = sqlite3_column_int64(s, 0);
		o.pid = (pid_t)sqlite3_column_int64(s, 1);
		o.start = (uint64_t)sqlite3_column_int64(s, 2);
		boot = (const char *)sqlite3_column_text(s, 3);
		if (owner_alive(st, boot != NULL ? boot : "", o.pid, o.start))
			continue;
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		(*v)[(*n)++] = o;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return dberr(st, "cannot read tasks");
	return PS_OK;
}

/*
 * Mark one task interrupted, unless its owner changed since it was read
 * (a worker took it over) or it ended meanwhile. *DONE: whether it was.
 */
static int
interrupt_one(struct ps_state *st, const struct owner *o, int *done)
{
	sqlite3_stmt *s;
	char *msg;
	int r;

	*done = 0;
	if (begin(st) != PS_OK)
		return PS_EUSAGE;
	s = prep(st, "UPDATE tasks SET state = 'interrupted', ended = ? "
	    "WHERE id = ? AND pid = ? AND pid_start = ? AND host = ? "
	    "AND state IN ('queued', 'running')");
	if (s != NULL) {
		sqlite3_bind_double(s, 1, now_real());
		sqlite3_bind_int64(s, 2, o->id);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)o->pid);
		sqlite3_bind_int64(s, 4, (sqlite3_int64)o->start);
		bind_str(s, 5, st->host);
	}
	if (run(st, s, "cannot update task") != PS_OK)
		return rollback(st, PS_EUSAGE);
	if (sqlite3_changes(st->db) == 0)
		return rollback(st, PS_OK);
	s = prep(st, "UPDATE schedules SET last_result = 'interrupted' "
	    "WHERE last_task = ?");
	if (s != NULL)
		sqlite3_bind_int64(s, 1, o->id);
	if (run(st, s, "cannot update schedule") != PS_OK)
		return rollback(st, PS_EUSAGE);
	msg = xasprintf("task %lld interrupted: its process %ld on %s is gone",
	    (long long)o->id, (long)o->pid, st->host);
	r = ps_state_event_add(st, o->id, "end", "error", msg, NULL);
	free(msg);
	if (r != PS_OK)
		return rollback(st, r);
	*done = 1;
	return commit(st);
}

int
ps_state_task_reap(struct ps_state *st, size_t *reaped)
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

/* --- events -------------------------------------------------------- */

int
ps_state_event_add(struct ps_state *st, int64_t task_id, const char *kind,
    const char *level, const char *message, const char *data_json)
{
	sqlite3_stmt *s;
	int rc;

	if (level == NULL || (strcmp(level, "info") != 0 &&
	    strcmp(level, "warning") != 0 && strcmp(level, "error") != 0)) {
		ps_err("invalid event level '%s'", level != NULL ? level : "");
		return PS_EUSAGE;
	}
	if (kind == NULL || kind[0] == '\0') {
		ps_err("event without a kind");
		return PS_EUSAGE;
	}
	s = prep(st, "INSERT INTO events (task_id, time, level, kind, "
	    "message, data) VALUES (?, ?, ?, ?, ?, ?)");
	if (s == NULL)
		return PS_EUSAGE;
	sqlite3_bind_int64(s, 1, task_id);
	sqlite3_bind_double(s, 2, now_real());
	bind_str(s, 3, level);
	bind_str(s, 4, kind);
	bind_str(s, 5, message != NULL ? message : "");
	bind_str(s, 6, data_json);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE)
		return PS_OK;
	if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_FOREIGNKEY) {
		ps_err("unknown task %lld", (long long)task_id);
		return PS_EUSAGE;
	}
	return dberr(st, "cannot add event");
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

/* Matching events, newest first (so LIMIT keeps the newest). */
static int
select_events(struct ps_state *st, const struct ps_event_filter *f,
    struct evrow **v, size_t *n)
{
	struct buf q = { 0 };
	sqlite3_stmt *s;
	struct evrow *r;
	int rc;

	buf_addstr(&q, "SELECT e.id, e.task_id, e.time, e.level, e.kind, "
	    "e.message, e.data, t.server FROM events e JOIN tasks t "
	    "ON t.id = e.task_id WHERE e.id > ?1");
	if (f->task != 0)
		buf_addstr(&q, " AND e.task_id = ?2");
	if (f->server != NULL)
		buf_addstr(&q, " AND t.server = ?3");
	buf_addstr(&q, " ORDER BY e.id DESC LIMIT ?4");
	buf_addc(&q, '\0');
	s = prep(st, (const char *)q.p);
	buf_free(&q);
	if (s == NULL)
		return PS_EUSAGE;
	sqlite3_bind_int64(s, 1, f->after_id);
	if (f->task != 0)
		sqlite3_bind_int64(s, 2, f->task);
	if (f->server != NULL)
		bind_str(s, 3, f->server);
	sqlite3_bind_int64(s, 4, f->limit == 0 || f->limit > INT64_MAX ? -1 :
	    (sqlite3_int64)f->limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		r = &(*v)[(*n)++];
		memset(r, 0, sizeof(*r));
		r->ev.id = sqlite3_column_int64(s, 0);
		r->ev.task_id = sqlite3_column_int64(s, 1);
		r->ev.time = sqlite3_column_double(s, 2);
		r->ev.level = r->level = col_str(s, 3);
		r->ev.kind = r->kind = col_str(s, 4);
		r->ev.message = r->message = col_str(s, 5);
		r->ev.data = r->data = col_str(s, 6);
		r->ev.server = r->server = col_str(s, 7);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return dberr(st, "cannot read events");
	return PS_OK;
}

int
ps_state_events(struct ps_state *st, const struct ps_event_filter *f,
    ps_event_fn fn, void *arg)
{
	struct evrow *v = NULL;
	size_t n = 0, i;
	int r;

	if (ps_state_task_reap(st, NULL) != PS_OK)
		return PS_EUSAGE;
	r = select_events(st, f, &v, &n);
	/* Rows are collected first so FN runs with no statement open. */
	for (i = n; r == PS_OK && i > 0; i--)
		r = fn(&v[i - 1].ev, arg);
	evrows_free(v, n);
	return r;
}
