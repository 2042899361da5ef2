/*
 * task.h — pushes as tasks (SPEC section 6): the task row and its events
 * while a push runs, background workers for Run now and run-due, task
 * cancellation, the per-component download lock, and resolving server
 * names from the state database for push and report.
 *
 * Life of a task:
 *
 *   schedule run / run-due          patchsync push --task ID (the worker)
 *   ---------------------           -------------------------------------
 *   task row 'queued' (state.c)
 *   ps_task_spawn(): fork, setsid,
 *     hand the task to the child,  ps_task_begin(): download locks (shared;
 *     exec /proc/self/exe push         'queued' + event while a download
 *     --task ID SERVER -C ...          holds one), 'running', 'start' event
 *                                   ps_task_progress() / ps_task_event()
 *                                   ps_task_end(): final state, 'end' event
 *
 * A manual `patchsync push SERVER` calls ps_task_manual() instead, which
 * creates the row and begins it in one go. A worker that dies without
 * ps_task_end() is found by the reaper (state.h) and shown 'interrupted'.
 *
 * Every function taking a ps_task_ctx accepts NULL and then does nothing,
 * so a push without a state database needs no special cases.
 * ps_task_event, ps_task_progress and ps_task_end may be called from
 * several threads; they serialise on the context.
 */
#ifndef PS_TASK_H
#define PS_TASK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
#include "state.h"

struct ps_task_ctx;

/* Seconds between two 'progress' events of one task, at least. */
#define PS_TASK_PROGRESS_SECS 2.0

/*
 * Locks and task logs when the database is not a local file
 * ($PATCHSYNC_STATE_DIR, an absolute path, replaces it).
 */
#define PS_STATE_DIR_DEFAULT "/var/lib/patchsync"

/* --- servers from the state database ------------------------------ */

/* How to reach a server from the state database. */
struct ps_server_conn {
	char *url;
	char *rsh;		/* remote shell command line, or NULL */
	char *remote_path;	/* patchsync on the server, or NULL: default */
	uint64_t bwlimit;	/* bytes per second, 0: none */
	int timeout;		/* seconds (0: never), -1: unset */
};

/*
 * Look up server NAME in the database at CONF->database (never creating
 * it: without a database every name is unknown, "no state database at
 * PATH"). Fills *OUT: its URL; its remote shell command line: the
 * server's rsh or "ssh", plus " -i 'IDENTITY'" when it has an identity
 * file (whose mode is checked again now: 0600 or stricter, else
 * PS_EUSAGE), NULL for a local URL without rsh; its remote path,
 * bandwidth limit and timeout. FOR_PUSH: a download-source server is
 * refused (PS_EUSAGE, "server NAME is a download source: pushing to it
 * is refused"). A server reached through a relay is refused: only push
 * and report reach it (ps_task_targets). Strings are malloc'd: free with
 * ps_server_conn_free. One error line on failure.
 */
int ps_task_resolve_server(const struct ps_conf *conf, const char *name,
    int for_push, struct ps_server_conn *out);
void ps_server_conn_free(struct ps_server_conn *c);

/*
 * The targets of a push (FOR_PUSH) or report: each of the N names or
 * URLs, the names resolved as ps_task_resolve_server does (with one look
 * at the state database), then the relays that any of them is reached
 * through and that were not named, after them: every target reached
 * through a relay has it in the same array (its via). RSH (may be NULL)
 * replaces every remote shell. The relay rules are checked again (the
 * database may have been edited meanwhile): a broken chain, or more than
 * PS_RELAY_MAX_SERVERS behind one relay, is refused. Returns PS_OK with
 * *OUT (free each with ps_target_free, then the array), or PS_EUSAGE
 * after one line.
 */
struct ps_target;
int ps_task_targets(const struct ps_conf *conf, const char **names,
    size_t n, int for_push, const char *rsh, struct ps_target **out,
    size_t *nout);

/*
 * The names of every server that is not a download source (for --all);
 * none when there is no database.
 */
int ps_task_all_servers(const struct ps_conf *conf, char ***names,
    size_t *n);
void ps_task_names_free(char **names, size_t n);

/*
 * A rate: a number of bytes per second with an optional K, M or G suffix
 * (powers of 1024) and an optional B ("512K", "10M", "1GB"). Returns 0
 * with *OUT set, or -1 (zero, negative, overflow, garbage).
 */
int ps_parse_rate(const char *s, uint64_t *out);

/*
 * Record how each of the NT targets of a push (REPORT 0) or report
 * (REPORT 1) ended, for `patchsync status`: state, error, bytes sent,
 * files behind, and a report's rows (at most PS_STATE_MAX_ROWS per
 * server). Only servers configured in the database are kept, and only
 * when the database already exists: nothing is ever created (SPEC
 * 10.8). A database that cannot be written costs one warning line, never
 * the command's exit status.
 */
struct ps_target;
void ps_task_record_outcomes(const struct ps_conf *conf,
    const struct ps_target *t, size_t nt, int report);

/*
 * One 'server' event per target of a push, with its own result (a
 * server reached through a relay names it): the history shows every
 * server, relayed or not.
 */
struct ps_task_ctx;
void ps_task_results(struct ps_task_ctx *ctx, const struct ps_target *t,
    size_t nt);

/*
 * `history prune` and `keep =`: delete the tasks that ended before
 * BEFORE, their events and their log files. *PRUNED (may be NULL) gets
 * how many.
 */
int ps_task_prune(struct ps_state *st, const struct ps_conf *conf,
    double before, size_t *pruned);

/*
 * Is FILE usable as a credential: a regular file readable only by its
 * owner (no group or other bits), like ssh's rule for keys? WHAT names
 * the option in the error line ("--identity"). Returns PS_OK or
 * PS_EUSAGE after one line.
 */
int ps_task_credential_ok(const char *file, const char *what);

/* --- running a task (the worker side) ------------------------------ */

/*
 * Begin task ID in this process: open the database, make this process
 * the owner, take the download lock of each of the task's components
 * shared (while a download holds one: state 'queued' and a 'queued'
 * event saying why, then wait), move to 'running' and add the 'start'
 * event. Installs the cancel handler. Returns PS_OK with *CTX set, or
 * PS_EUSAGE (unknown or ended task; one line), or PS_EINTR when the task
 * was canceled while waiting (it is then recorded 'canceled' and *CTX is
 * NULL).
 */
int ps_task_begin(const struct ps_conf *conf, int64_t id,
    struct ps_task_ctx **ctx);

/*
 * A manual push: create a 'manual' task for SERVER (name or URL) and
 * COMPONENTS ("a,b"; "" or NULL: all) and begin it. Only when the state
 * database already exists: a push never creates one (SPEC 10.8), and
 * then nothing is recorded: PS_OK with *CTX NULL. A database that exists
 * but cannot be used (another account's, say) costs one warning line and
 * the push goes on unrecorded (PS_OK, *CTX NULL). Other errors (one
 * line) return their ps_result.
 */
int ps_task_manual(const struct ps_conf *conf, const char *server,
    const char *components, struct ps_task_ctx **ctx);

/* The task's id (0 for NULL). */
int64_t ps_task_id(const struct ps_task_ctx *ctx);

/*
 * Add an event. KIND: "progress", "file-error", "notice", ...; LEVEL:
 * "info", "warning" or "error". Scheduled tasks also log it to syslog.
 *
 * Bookkeeping never stops a push: when the database fails (a restarted
 * PostgreSQL server, a removed file), one line says so ("task ID: cannot
 * record its progress ...; the push goes on") and the task records
 * nothing more; a worker that ends unrecorded is later shown
 * 'interrupted' by the reaper. No lock is held while the database is
 * written or anything is printed, and a call made from inside the task's
 * own bookkeeping (an error line handed back as an event) is dropped.
 */
void ps_task_event(struct ps_task_ctx *ctx, const char *kind,
    const char *level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * A 'progress' event with bytes and files done, at most one every
 * PS_TASK_PROGRESS_SECS (calls in between are dropped; call as often as
 * convenient). ps_task_end records the last figures anyway.
 */
void ps_task_progress(struct ps_task_ctx *ctx, uint64_t bytes_done,
    uint64_t bytes_total, uint64_t files_done);

/*
 * End the task: state 'succeeded' (EXIT_CODE 0), 'canceled' (a cancel
 * request came, or EXIT_CODE is PS_EINTR) or 'failed', the 'end' event
 * with STATS_JSON (may be NULL) as its data, locks released, CTX freed.
 */
void ps_task_end(struct ps_task_ctx *ctx, int exit_code,
    const char *stats_json);

/*
 * Cancellation: `task cancel ID` sends SIGTERM to the task's process.
 * The handler only sets a flag (SA_RESTART, so I/O elsewhere is not
 * disturbed); the push polls ps_task_canceled() and stops.
 */
void ps_task_install_cancel_handler(void);
int ps_task_canceled(void);

/* --- starting workers (the scheduler side) ------------------------- */

/*
 * Start the worker for task TASK_ID (state 'queued', owned by us): fork,
 * detach (setsid, stdin from /dev/null, stdout and stderr to the task's
 * log file in the state directory's log/), hand the task over to the
 * child (ps_state_task_set_owner), exec our own executable as
 * `patchsync [-c CONF] push --task ID SERVER [-C NAME]...`.
 * *PID gets the child's pid. Returns a ps_result.
 */
int ps_task_spawn(struct ps_state *st, const struct ps_conf *conf,
    int64_t task_id, const char *server, const char *components,
    pid_t *pid);

/*
 * Wait for worker PID of task TASK_ID to exit. Returns its exit status
 * (128 + signal when killed); a worker that died without ending its task
 * leaves it to the reaper, which marks it 'interrupted'.
 */
int ps_task_wait(struct ps_state *st, int64_t task_id, pid_t pid);

/* --- download locks ------------------------------------------------ */

/*
 * The lock file of COMPONENT: STATEDIR/locks/COMPONENT.lock (malloc'd),
 * where STATEDIR is the directory of a SQLite database, or
 * $PATCHSYNC_STATE_DIR or PS_STATE_DIR_DEFAULT when the database is a
 * PostgreSQL URI (locks and task logs belong to this machine).
 */
char *ps_download_lock_path(const struct ps_conf *conf,
    const char *component);

/*
 * Take COMPONENT's download lock shared (a push reading it). When a
 * download holds it, calls WAITING(why, ARG) once (may be NULL) and
 * waits; a cancel request (ps_task_canceled) ends the wait with
 * PS_EINTR. *FD gets the locked descriptor (close it to release).
 */
int ps_download_lock_shared(const struct ps_conf *conf,
    const char *component, int *fd,
    void (*waiting)(const char *why, void *arg), void *arg);

/*
 * Take COMPONENT's download lock exclusively (a download), waiting for
 * pushes that are reading it; WAITING as above.
 */
int ps_download_lock_exclusive(const struct ps_conf *conf,
    const char *component, int *fd,
    void (*waiting)(const char *why, void *arg), void *arg);

#endif
