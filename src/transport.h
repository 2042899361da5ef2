/*
 * transport.h — open a connection to a destination: a child process that
 * runs the server role (`patchsync serve --stdio ROOT`), reached through
 * a socketpair for a local directory or through ssh (or --rsh) pipes.
 */
#ifndef PS_TRANSPORT_H
#define PS_TRANSPORT_H

#include <sys/types.h>

#include "url.h"

struct ps_conn {
	int rfd;		/* read the server's frames here */
	int wfd;		/* write ours here (== rfd for a socketpair) */
	pid_t pid;		/* the child: patchsync serve, or ssh */
	char err[256];		/* why ps_conn_open failed, one line */
};

struct ps_conn_opts {
	const char *rsh;	/* remote shell command line; NULL: "ssh" */
	const char *remote_path;	/* verbatim; NULL: "patchsync" */
	const char *self_exe;	/* local server; NULL: /proc/self/exe */
	int relay;		/* ask for `serve --relay` (relay.h) */
	/*
	 * Bytes the pipe to a remote shell may hold (F_SETPIPE_SZ); 0: the
	 * system's default. A refusal leaves the default.
	 */
	int pipe_size;
};

/*
 * Start the server role for U. On success C holds the descriptors and
 * the child; the child's stderr is ours, so its complaints reach the
 * user. Returns PS_OK, PS_EUSAGE (an rsh that cannot be split, a psync://
 * URL) or PS_EPEER (could not start the child), with the reason in
 * C->err. A remote command that cannot be run shows up later as end of
 * stream at the greeting.
 */
int ps_conn_open(const struct ps_url *u, const struct ps_conn_opts *o,
    struct ps_conn *c);

/*
 * Close the descriptors and wait for the child, at most SECS seconds
 * before it is sent SIGTERM (and SIGKILL 5 s later). Returns its exit
 * status, 128 + signal number when a signal ended it, or -1.
 */
int ps_conn_close(struct ps_conn *c, unsigned secs);

/* Ask the child to stop (SIGTERM), e.g. when a task is cancelled. */
int ps_conn_kill(struct ps_conn *c);

/*
 * The argv ps_conn_open runs for U (NULL-terminated, free with
 * ps_argv_free), or NULL with a reason in ERR. Exposed for tests and -vv.
 */
char **ps_conn_argv(const struct ps_url *u, const struct ps_conn_opts *o,
    char *err, size_t errlen);
void ps_argv_free(char **argv);

/* S quoted for a POSIX shell with single quotes ("it's" -> 'it'\''s'). */
char *ps_shell_quote(const char *s);

#endif
