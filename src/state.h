/*
 * state.h — the console state database (SPEC sections 6 and 15):
 * distribution servers, schedules, tasks, the event history and the last
 * outcome of each server, shared by several processes and consoles.
 *
 * One interface over two backends (db.h): a SQLite file (the default), or
 * PostgreSQL (`database = postgresql://...`) for consoles on several
 * machines. Callers never see SQL nor which backend they use.
 *
 * Errors: every function returns a ps_result: PS_OK, or PS_EUSAGE for a
 * rule the caller broke (unknown server, another console's schedule, ...)
 * and for a database that cannot be used (not ours, too new, I/O error,
 * busy for 10 s, connection lost). It then prints one line
 * ("patchsync: ...") after releasing its lock, unless the handle was made
 * quiet (ps_state_set_quiet); ps_state_error() gives the line either way.
 *
 * Concurrency: a handle may be used by several threads (each call holds
 * the handle's lock, never across a callback or a message). Every write
 * is one short transaction that other writers wait for (SQLite's BEGIN
 * IMMEDIATE, a PostgreSQL advisory lock); nothing holds it across I/O.
 * Times are seconds since the epoch: time_t for schedules (minutes
 * matter), double for tasks, events and outcomes (fractions matter).
 */
#ifndef PS_STATE_H
#define PS_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* PRAGMA application_id of a SQLite state database: 'PSYC'. */
#define PS_STATE_APP_ID 0x50535943
/* The schema version this binary writes and understands (both backends). */
#define PS_STATE_VERSION 3

struct ps_state;

/*
 * Open the state database SPEC: a SQLite file path, or a postgresql:// or
 * postgres:// URI. Creates what is missing (a SQLite file, mode 0640,
 * and its directories, mode 0755; the tables in a PostgreSQL database).
 * A database that is not patchsync's, or one written by a newer
 * patchsync, is refused and left untouched; older schemas are migrated.
 * A SQLite file on NFS or CIFS/SMB is refused (use PostgreSQL there).
 */
int ps_state_open(const char *spec, struct ps_state **st);

/*
 * The same for commands that store nothing (SPEC 10.8): nothing is
 * created. When there is no database yet (no such file, an empty file,
 * or a PostgreSQL database without patchsync's tables) returns PS_OK
 * with *ST NULL: the caller treats it as an empty database.
 */
int ps_state_open_existing(const char *spec, struct ps_state **st);
/*
 * ps_state_open_existing that prints nothing: on failure (PS_EUSAGE) the
 * line is in ERR (LEN bytes) for the caller to report as it sees fit.
 */
int ps_state_try_open(const char *spec, struct ps_state **st, char *err,
    size_t len);
void ps_state_close(struct ps_state *st);

/* Is SPEC a file (SQLite), rather than a PostgreSQL URI? */
int ps_state_is_file(const char *spec);

/* Quiet: failures are not printed, only kept for ps_state_error(). */
void ps_state_set_quiet(struct ps_state *st, int quiet);
/* The line of the last failure ("" when none). */
const char *ps_state_error(struct ps_state *st);

/*
 * Test only: the kind of network filesystem a statfs f_type names
 * ("NFS", "CIFS/SMB"), or NULL for a filesystem SQLite may use.
 */
const char *ps_state_network_fs(unsigned long f_type);

/* --- servers ------------------------------------------------------- */

struct ps_server {
	char *name;		/* [A-Za-z0-9._-]+, not starting '-' or '.' */
	char *url;		/* SPEC section 5 */
	char *identity_file;	/* or NULL */
	char *secret_file;	/* or NULL */
	char *rsh;		/* or NULL */
	char *remote_path;	/* patchsync on the server, or NULL */
	uint64_t bwlimit;	/* bytes per second, 0: none */
	int timeout;		/* seconds (0: never), -1: unset */
	int download_source;	/* pushes and schedules to it are refused */
	char *via;		/* the relay it is reached through, or NULL */
	time_t created;		/* set by ps_state_server_add */
};

/* Relays on the way from the console to any server, at most. */
#define PS_VIA_MAX_DEPTH 4

/* Is NAME acceptable as a server name? */
int ps_state_server_name_ok(const char *name);

/*
 * Duplicate name: PS_EUSAGE "server NAME already exists". The relay rules
 * (ps_state_via_check) are checked against the database's servers.
 */
int ps_state_server_add(struct ps_state *st, const struct ps_server *s);

/*
 * The relay rules for server S as it would be (its name, via, credential
 * files and download-source mark), among the servers V (the database's;
 * a row named like S is taken to be S): its relay exists, is not S and
 * is no download source; no chain of relays comes back to S; no server
 * is more than PS_VIA_MAX_DEPTH relays away from the console; a server
 * behind a relay names no credential file (the relay's own account
 * connects) and is no download source, nor is a relay. Pure; the console
 * checks the same again when it builds a push. Returns 0, or -1 with a
 * one-line reason in WHY.
 */
int ps_state_via_check(const struct ps_server *v, size_t n,
    const struct ps_server *s, char *why, size_t len);

/*
 * Relays on the way to server NAME among V (0: the console reaches it
 * itself), or -1 when its chain is broken (an unknown relay, a cycle, or
 * more than PS_VIA_MAX_DEPTH).
 */
int ps_state_via_depth(const struct ps_server *v, size_t n,
    const char *name);

/*
 * What ps_state_server_edit changes. Strings: NULL keeps the value, ""
 * clears it (url cannot be cleared). bwlimit: -1 keeps, 0 clears.
 * timeout: PS_KEEP keeps, -1 clears. download_source: -1 keeps.
 */
#define PS_KEEP (-2)
struct ps_server_edit {
	const char *url;
	const char *identity_file;
	const char *secret_file;
	const char *rsh;
	const char *remote_path;
	int64_t bwlimit;
	int timeout;
	int download_source;
	const char *via;
};

/*
 * Unknown name: PS_EUSAGE. Making a server a download source is refused
 * while schedules push to it; the relay rules hold as for add.
 */
int ps_state_server_edit(struct ps_state *st, const char *name,
    const struct ps_server_edit *e);
/* Unknown name: PS_EUSAGE "unknown server NAME". Free with ps_server_free. */
int ps_state_server_get(struct ps_state *st, const char *name,
    struct ps_server *s);
/* Every server, by name. Free with ps_server_list_free. */
int ps_state_server_list(struct ps_state *st, struct ps_server **v,
    size_t *n);
/* Refused (PS_EUSAGE) while schedules or servers behind it refer to it. */
int ps_state_server_remove(struct ps_state *st, const char *name);
void ps_server_free(struct ps_server *s);
void ps_server_list_free(struct ps_server *v, size_t n);

/* --- schedules ----------------------------------------------------- */

/*
 * COMPONENTS everywhere below is a comma-separated list of component
 * names ("patches,engines"); "" means every configured component.
 */
struct ps_schedule {
	int64_t id;
	char *owner;		/* console name */
	char *server;
	char *components;
	char *cron;		/* as the user wrote it */
	time_t next_run;	/* 0: never (cron can no longer fire) */
	time_t last_run;	/* 0: never ran */
	char *last_result;	/* state name of the last task, or NULL */
	int64_t last_task;	/* 0: none */
	time_t created;
};

/*
 * Add a schedule owned by console OWNER; next_run is the first slot after
 * NOW. Refused (PS_EUSAGE): unknown server, a download-source server, an
 * invalid cron expression or component list.
 */
int ps_state_schedule_add(struct ps_state *st, const char *owner,
    const char *server, const char *components, const char *cron,
    time_t now, int64_t *id);
/* Unknown id: PS_EUSAGE "unknown schedule ID". */
int ps_state_schedule_get(struct ps_state *st, int64_t id,
    struct ps_schedule *s);
/* Every schedule of every console, by id. */
int ps_state_schedule_list(struct ps_state *st, struct ps_schedule **v,
    size_t *n);

/* What ps_state_schedule_edit changes: NULL fields stay as they are. */
struct ps_schedule_edit {
	const char *server;
	const char *components;
	const char *cron;	/* also recomputes next_run from NOW */
};

/* Only CONSOLE's own schedules: else PS_EUSAGE "schedule ID belongs to X". */
int ps_state_schedule_edit(struct ps_state *st, const char *console,
    int64_t id, const struct ps_schedule_edit *e, time_t now);
/* Any console's schedule (SPEC). Its tasks keep their history. */
int ps_state_schedule_delete(struct ps_state *st, int64_t id);
void ps_schedule_free(struct ps_schedule *s);
void ps_schedule_list_free(struct ps_schedule *v, size_t n);

/* A schedule claimed for running, and the queued task made for it. */
struct ps_claim {
	int64_t schedule_id;
	int64_t task_id;
	char *server;
	char *components;
};

/*
 * Run now (`schedule run ID`): only CONSOLE's own schedules. Creates a
 * 'run-now' task in state 'queued' owned by this process; next_run is
 * left alone.
 */
int ps_state_schedule_run_now(struct ps_state *st, const char *console,
    int64_t id, struct ps_claim *claim);

/*
 * `schedule run-due`: in one BEGIN IMMEDIATE transaction, take every
 * schedule of CONSOLE with next_run <= NOW, move its next_run to the
 * first slot after NOW (so missed slots run once) and create a
 * 'scheduled' task in state 'queued' owned by this process. Two callers
 * at the same moment never claim the same schedule. *V may be empty.
 */
int ps_state_schedule_claim_due(struct ps_state *st, const char *console,
    time_t now, struct ps_claim **v, size_t *n);
void ps_claim_free(struct ps_claim *c);
void ps_claim_list_free(struct ps_claim *v, size_t n);

/* --- tasks --------------------------------------------------------- */

enum ps_task_kind {
	PS_TASK_MANUAL,		/* patchsync push */
	PS_TASK_RUN_NOW,	/* schedule run */
	PS_TASK_SCHEDULED	/* schedule run-due */
};

enum ps_task_state {
	PS_TASK_QUEUED,		/* created, or waiting (lock, download) */
	PS_TASK_RUNNING,
	PS_TASK_SUCCEEDED,
	PS_TASK_FAILED,
	PS_TASK_CANCELED,
	PS_TASK_INTERRUPTED	/* its process died (found by reaping) */
};

const char *ps_task_kind_name(enum ps_task_kind k);
const char *ps_task_state_name(enum ps_task_state s);
/* Is S one of the final states (succeeded .. interrupted)? */
int ps_task_state_final(enum ps_task_state s);

struct ps_task {
	int64_t id;
	enum ps_task_kind kind;
	int64_t schedule_id;	/* 0: none */
	char *console;
	char *server;		/* server name or URL */
	char *components;
	enum ps_task_state state;
	char *host;		/* host name of the owning process */
	pid_t pid;		/* owning process */
	uint64_t pid_start;	/* its /proc/PID/stat starttime; 0 unknown */
	double created;
	double started;		/* 0: not yet running */
	double ended;		/* 0: not ended */
	int exit_code;		/* -1: none yet */
	char *stats;		/* JSON text, or NULL */
};

/*
 * A new task in state 'queued', owned by the calling process (its pid,
 * start time, host and boot id are recorded for reaping). SCHEDULE_ID
 * (0: none) also becomes that schedule's last run.
 */
int ps_state_task_create(struct ps_state *st, enum ps_task_kind kind,
    int64_t schedule_id, const char *console, const char *server,
    const char *components, int64_t *id);

/*
 * Move task ID to STATE. 'running' records the calling process as owner
 * (a forked worker calls this) and the start time; a final state records
 * the end time, EXIT_CODE and STATS_JSON (may be NULL) and the result on
 * the task's schedule. A task already in a final state is not changed
 * (PS_EUSAGE "task ID already ended (STATE)").
 */
int ps_state_task_set_state(struct ps_state *st, int64_t id,
    enum ps_task_state state, int exit_code, const char *stats_json);

/*
 * Hand task ID over to process PID (on this host), e.g. a worker that
 * run-due forked: call it in the parent right after fork(), before the
 * parent may exit, so the task is never without a live owner.
 */
int ps_state_task_set_owner(struct ps_state *st, int64_t id, pid_t pid);

/* ps_state_task_get and _list reap first (see below). */
int ps_state_task_get(struct ps_state *st, int64_t id, struct ps_task *t);
/* The LIMIT newest tasks (0: all), oldest first. */
int ps_state_task_list(struct ps_state *st, size_t limit, struct ps_task **v,
    size_t *n);
void ps_task_free(struct ps_task *t);
void ps_task_list_free(struct ps_task *v, size_t n);

/*
 * Tasks 'queued' or 'running' whose owning process on this host is gone
 * (no such pid, a different start time, or a reboot since) become
 * 'interrupted' with an 'end' event. Tasks of other hosts are left to
 * their hosts. *REAPED (may be NULL) gets how many.
 */
int ps_state_task_reap(struct ps_state *st, size_t *reaped);

/* --- events -------------------------------------------------------- */

struct ps_event {
	int64_t id;
	int64_t task_id;
	double time;
	const char *level;	/* "info", "warning" or "error" */
	/* "start", "queued", "progress", "file-error", "end", ... */
	const char *kind;
	const char *message;
	const char *data;	/* JSON text, or NULL */
	const char *server;	/* the task's server */
};

/* LEVEL must be "info", "warning" or "error"; DATA_JSON may be NULL. */
int ps_state_event_add(struct ps_state *st, int64_t task_id,
    const char *kind, const char *level, const char *message,
    const char *data_json);

struct ps_event_filter {
	int64_t task;		/* 0: any */
	const char *server;	/* NULL: any */
	int64_t after_id;	/* only events with id > after_id */
	size_t limit;		/* 0: all; else the LIMIT newest that match */
};

/*
 * Call FN for each matching event, oldest first; FN returning non-zero
 * stops the walk. FN may use ST. --follow polls with after_id set to the
 * last id seen. Returns PS_OK, or what FN returned if it stopped.
 */
typedef int (*ps_event_fn)(const struct ps_event *ev, void *arg);
int ps_state_events(struct ps_state *st, const struct ps_event_filter *f,
    ps_event_fn fn, void *arg);

/*
 * Delete the tasks that ended before BEFORE (and their events). *IDS
 * (malloc'd, may be NULL when *N is 0) gets the ids deleted, so the
 * caller can remove their logs.
 */
int ps_state_prune(struct ps_state *st, double before, int64_t **ids,
    size_t *n);

/* --- outcomes and status (SPEC section 15) ------------------------- */

enum ps_outcome_kind { PS_OUTCOME_PUSH, PS_OUTCOME_REPORT };
enum ps_outcome_status {
	PS_OUTCOME_OK,
	PS_OUTCOME_FAILED,
	PS_OUTCOME_UNREACHABLE
};

/* A report's row, kept for the status page. Sizes, mtimes: -1 none. */
struct ps_report_row {
	char *component;	/* or NULL */
	char *path;		/* as ps_escape() gives it */
	char *state;		/* "missing", "out-of-date", "extra" */
	int64_t console_size, console_mtime;
	int64_t server_size, server_mtime;
};

/* At most this many rows of a report are kept per server. */
#define PS_STATE_MAX_ROWS 10000

struct ps_outcome {
	const char *server;	/* only configured servers are recorded */
	enum ps_outcome_kind kind;
	enum ps_outcome_status status;
	const char *error;	/* or NULL */
	int64_t files_behind;	/* missing + out-of-date; -1 unknown */
	uint64_t bytes_sent;
	const struct ps_report_row *rows;	/* report: its rows */
	size_t nrows;		/* kept: at most PS_STATE_MAX_ROWS */
	size_t rows_total;	/* how many the report had */
};

/*
 * Record O as SERVER's latest push or report, made by console CONSOLE.
 * A server that is not in the database (a URL) is left out: PS_OK.
 */
int ps_state_record_outcome(struct ps_state *st, const char *console,
    const struct ps_outcome *o);

enum ps_fleet_state {
	PS_FLEET_NEVER,		/* never synced: no push or report yet */
	PS_FLEET_CURRENT,
	PS_FLEET_BEHIND,
	PS_FLEET_FAILED,
	PS_FLEET_UNREACHABLE
};

/* "never synced", "current", "behind", "failed", "unreachable". */
const char *ps_fleet_state_name(enum ps_fleet_state s);

struct ps_server_status {
	char *server;
	char *url;
	enum ps_fleet_state state;
	double last_ok;		/* end of the last good push; 0: none */
	double last_time;	/* time of the latest outcome; 0: none */
	char *last_error;	/* the latest outcome's error, or NULL */
	int64_t files_behind;	/* -1: unknown */
	uint64_t bytes_sent;	/* by every push recorded */
	uint64_t bytes_sent_last;	/* by the latest push */
	double report_time;	/* of the rows kept; 0: no report */
	size_t rows_total;	/* rows that report had (kept: <= MAX) */
	int download_source;
	char *via;		/* the relay it is reached through, or NULL */
};

/*
 * The state from a server's latest push and report: the newer one
 * decides (unreachable, failed; a good push is current; a good report is
 * behind when it found files missing or out of date). HAS_*: whether
 * there is one. Pure; exported for the tests.
 */
enum ps_fleet_state ps_fleet_state_of(int has_push, double push_time,
    enum ps_outcome_status push_status, int has_report, double report_time,
    enum ps_outcome_status report_status, int64_t report_behind);

/* One row per configured server, by name. */
int ps_state_status(struct ps_state *st, struct ps_server_status **v,
    size_t *n);
void ps_server_status_list_free(struct ps_server_status *v, size_t n);

/* The rows kept from SERVER's last report, in the report's order. */
int ps_state_report_rows(struct ps_state *st, const char *server,
    struct ps_report_row **v, size_t *n);
void ps_report_rows_free(struct ps_report_row *v, size_t n);

#endif
