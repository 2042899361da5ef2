/*
 * console.h — the console role: one session per distribution server, run
 * for several servers at once; the console's trees are scanned once for
 * all of them. Also the console's side of a refresh (a pull from a
 * component's source).
 */
#ifndef PS_CONSOLE_H
#define PS_CONSOLE_H

#include <stdint.h>
#include <stdio.h>

#include "manifest.h"
#include "sender.h"
#include "task.h"

/* A console directory to replicate. */
struct ps_source {
	const char *component;	/* component name, or NULL (push DIR URL) */
	const char *dest;	/* subdirectory on the server ("" for ROOT) */
	const char *path;	/* console directory */
	int fd;			/* open directory */
	/*
	 * Its manifest, in a file (the console's cache, or a temporary)
	 * that every session reads as a stream (ps_mfin_pread), and what
	 * the scan found beside the entries: unreadable paths, temps.
	 */
	int mf_fd;
	struct ps_manifest by;
	uint64_t nfiles;	/* regular files in it */
	int ready;		/* scanned (valid when rc is PS_OK/EPARTIAL) */
	int rc;			/* result of the scan */
};

/* A difference found by a report (the entries are the row's own). */
struct ps_row {
	const char *component;
	int state;			/* enum ps_diff_state */
	const struct ps_entry *console;
	const struct ps_entry *server;
};

/* A distribution server and what happened there. */
struct ps_target {
	char *name;		/* server name, or the URL itself */
	char *url;
	char *rsh;		/* remote shell, or NULL for the default */
	char *remote_path;	/* patchsync there, or NULL */
	uint64_t bwlimit;	/* bytes per second for this server, 0: none */
	int timeout;		/* seconds, -1: the console's */
	int rc;			/* ps_result of the session */
	char *error;		/* one line when it failed, else NULL */
	struct ps_send_stats st;
	uint64_t bytes_sent;
	uint64_t bytes_received;
	double seconds;
	/* Report: the differences. */
	struct ps_row *rows;
	size_t nrows;
	/* Progress (atomics): bytes and files done and planned, phase. */
	uint64_t prog_bytes, prog_total, prog_files, prog_nfiles;
	int prog_phase;		/* PS_PH_* */
	/*
	 * Relays (relay.h): the server this one is reached through (in the
	 * same array; its own session is never run here), whether servers
	 * are reached through this one, and whether the result is in.
	 */
	struct ps_target *via;
	int relay;
	int relayed;
	size_t relay_extra;	/* rows of files only it has, from its relay */
};

/* What a server's session is doing, for the progress lines. */
enum {
	PS_PH_WAITING,		/* not started (-j) */
	PS_PH_COMPARING,	/* connecting, reading its manifest */
	PS_PH_SENDING,		/* its plan is known: sending */
	PS_PH_DONE		/* ended (rc says how) */
};

struct ps_console_opts {
	int mode;		/* PS_OPEN_PUSH or PS_OPEN_REPORT */
	uint32_t flags;		/* PS_OF_* */
	int extra;		/* report: list extra files too */
	int jobs;		/* servers at once */
	const char *remote_path;	/* for servers that name none */
	uint64_t bwlimit;	/* bytes per second per server, 0: none */
	unsigned timeout;	/* seconds, 0: none */
	int timeout_set;	/* given on the command line */
	int progress;		/* draw a progress line on stderr */
	struct ps_send_opts send;	/* template for every session */
	struct ps_task_ctx *task;	/* events go here, or NULL */
	const char *cache_dir;	/* the console's manifest cache, or NULL */
	int delete_guard;	/* refuse a source without files (--delete) */
	/*
	 * Relays (relay.h): how relays send changed files (0 deltas, 1
	 * whole, PS_WHOLE_AUTO as their own URLs say), and a function called
	 * with each server as its result is known (NULL: none).
	 */
	int whole_relay;
	void (*done)(struct ps_target *t, void *arg);
	void *done_arg;
};

/*
 * Open SRC->path (SRC->fd; SRC must be zeroed but for its names): a
 * missing console directory is an error before any server is contacted.
 * Returns a ps_result.
 */
int ps_source_open(struct ps_source *src);

/*
 * Build (or refresh from the console's cache) the manifest of the open
 * SRC into SRC->mf_fd. Returns a ps_result; unreadable files give
 * PS_EPARTIAL (each named with its console path, and listed in
 * SRC->by's unreadable paths; the manifest holds the rest).
 */
int ps_source_scan(struct ps_source *src, const char *cache_dir,
    int checksum);
/*
 * The scanned SRC's whole manifest as an array in M (for offline bundles,
 * which keep it). Returns PS_OK, or PS_EPARTIAL when the manifest file
 * cannot be read back (said).
 */
int ps_source_manifest(const struct ps_source *src, struct ps_manifest *m);
void ps_source_free(struct ps_source *src);

/*
 * Run the sessions: every target gets every source. The sources (opened
 * with ps_source_open) are scanned here while the servers describe their
 * trees, so the two walks overlap; a source whose manifest is given
 * (ready set: a relay has the console's) is not scanned. A target with a
 * via is not connected to: its relay's session passes the update on.
 * Fills each target's results; returns the worst ps_result (PS_EINTR
 * when interrupted).
 */
int ps_console_run(const struct ps_console_opts *o, struct ps_source *src,
    size_t nsrc, struct ps_target *t, size_t nt);

void ps_target_free(struct ps_target *t);

/*
 * Is every URL of the NT targets the console connects to itself (no
 * via) a local one? Then changed files go whole by default, as in rsync.
 */
int ps_targets_local(const struct ps_target *t, size_t nt);

/*
 * Refuse a push to a server on this machine (a local URL) whose
 * directory for a component and a console directory are the same or one
 * holds the other: the console would be sent its own files, and --delete
 * would remove them. Likewise two servers of the push whose directories
 * on this machine are one or nested. Says why and returns PS_EUSAGE,
 * else PS_OK.
 */
int ps_console_overlap(const struct ps_source *src, size_t nsrc,
    const struct ps_target *t, size_t nt);

/*
 * One session over SS, started already (a test over a socketpair; a
 * relay): push or report the sources SRC, scanned already by the caller
 * (their rc set), to T; then close SS. Returns T->rc.
 */
struct ps_sess;
int ps_console_session(const struct ps_console_opts *o, struct ps_source *src,
    size_t nsrc, struct ps_target *t, struct ps_sess *ss);

/* A refresh: pull one component from its source into the console. */
struct ps_pull_opts {
	const char *component;
	const char *path;	/* the console directory */
	const char *dest;	/* the component's directory on the source */
	const char *source;	/* the source's name or URL, for messages */
	const char *url;
	const char *rsh;
	const char *remote_path;
	uint32_t flags;		/* PS_OF_DELETE, PS_OF_DRYRUN, ... */
	unsigned timeout;
	FILE *itemize;		/* -i, or NULL */
	FILE *verbose;		/* -v, or NULL */
	int progress;		/* draw a progress line on stderr */
};

struct ps_pull_result {
	uint64_t files;		/* files received */
	uint64_t deleted;
	uint32_t errors;
	uint64_t bytes_sent;
	uint64_t bytes_received;
	double seconds;
	char *error;		/* one line when it failed */
};

int ps_console_pull(const struct ps_pull_opts *o, struct ps_pull_result *r);

#endif
