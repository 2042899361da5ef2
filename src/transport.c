/*
 * transport.c — start the server role as a child process.
 *
 * Both transports end in the same place: a process running
 * `patchsync serve --stdio ROOT` with the stream on its stdin and stdout.
 * Locally it is our own executable over a socketpair; remotely it is the
 * rsh command (ssh by default) with the remote command line as its last
 * word, the way rsync's -e works, so a test wrapper given as --rsh can
 * drop the host and run the command here.
 *
 * The child is started with posix_spawn (a vfork-like clone: nothing of
 * the console's address space is copied, which matters when it starts a
 * session for each of many servers), its stdin and stdout set by file
 * actions, its signal mask cleared and SIGPIPE back to the default.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <popt.h>

#include "ps.h"
#include "transport.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

char *
ps_shell_quote(const char *s)
{
	struct buf b = { 0 };

	buf_addc(&b, '\'');
	for (; *s != '\0'; s++) {
		if (*s == '\'')
			buf_addstr(&b, "'\\''");
		else
			buf_addc(&b, (unsigned char)*s);
	}
	buf_addc(&b, '\'');
	buf_addc(&b, '\0');
	return (char *)b.p;
}

void
ps_argv_free(char **argv)
{
	size_t i;

	if (argv == NULL)
		return;
	for (i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

static void
argv_add(char ***argv, size_t *n, char *s)
{
	*argv = xreallocarray(*argv, *n + 2, sizeof(**argv));
	(*argv)[(*n)++] = s;
	(*argv)[*n] = NULL;
}

static char **
local_argv(const struct ps_url *u, const struct ps_conn_opts *o)
{
	char **argv = NULL;
	size_t n = 0;

	argv_add(&argv, &n, xstrdup(o->self_exe != NULL ? o->self_exe :
	    "patchsync"));
	argv_add(&argv, &n, xstrdup("serve"));
	argv_add(&argv, &n, xstrdup("--stdio"));
	if (o->relay)
		argv_add(&argv, &n, xstrdup("--relay"));
	argv_add(&argv, &n, xstrdup(u->path));
	return argv;
}

/*
 * poptParseArgvString accepts an unterminated quote ("ssh 'x") and makes
 * a word of the rest; refuse it instead, as a shell would.
 */
static int
quotes_closed(const char *s)
{
	char quote = '\0';

	for (; *s != '\0'; s++) {
		if (quote != '\0' && *s == quote)
			quote = '\0';
		else if (*s == '\\') {	/* popt: even inside '...' */
			if (*++s == '\0')
				return 0;
		} else if (quote == '\0' && (*s == '\'' || *s == '"'))
			quote = *s;
	}
	return quote == '\0';
}

static char **
ssh_argv(const struct ps_url *u, const struct ps_conn_opts *o, char *err,
    size_t errlen)
{
	const char *rsh = o->rsh != NULL ? o->rsh : "ssh";
	const char **words = NULL;
	char **argv = NULL, *q;
	size_t n = 0;
	int i, nwords = 0, r;

	if (!quotes_closed(rsh)) {
		fail(err, errlen, "cannot split remote shell command '%s': "
		    "unterminated quote", rsh);
		return NULL;
	}
	r = poptParseArgvString(rsh, &nwords, &words);
	if (r != 0 || nwords < 1) {
		fail(err, errlen, "cannot split remote shell command '%s': %s",
		    rsh, r != 0 ? poptStrerror(r) : "empty");
		free(words);
		return NULL;
	}
	for (i = 0; i < nwords; i++)
		argv_add(&argv, &n, xstrdup(words[i]));
	free(words);
	if (u->port != 0) {
		argv_add(&argv, &n, xstrdup("-p"));
		argv_add(&argv, &n, xasprintf("%d", u->port));
	}
	if (u->user != NULL) {
		argv_add(&argv, &n, xstrdup("-l"));
		argv_add(&argv, &n, xstrdup(u->user));
	}
	argv_add(&argv, &n, xstrdup(u->host));
	q = ps_shell_quote(u->path);
	argv_add(&argv, &n, xasprintf("%s serve --stdio %s%s",
	    o->remote_path != NULL ? o->remote_path : "patchsync",
	    o->relay ? "--relay " : "", q));
	free(q);
	return argv;
}

char **
ps_conn_argv(const struct ps_url *u, const struct ps_conn_opts *o,
    char *err, size_t errlen)
{
	static const struct ps_conn_opts none;

	if (o == NULL)
		o = &none;
	switch (u->kind) {
	case PS_URL_LOCAL:
		return local_argv(u, o);
	case PS_URL_SSH:
		return ssh_argv(u, o, err, errlen);
	case PS_URL_DAEMON:
		fail(err, errlen, "psync:// destinations (patchsync daemon) "
		    "are not supported yet");
		return NULL;
	default:
		fail(err, errlen, "unknown destination kind");
		return NULL;
	}
}

/* FD moved to 3 or above (so the file actions cannot clobber it). */
static int
above2(int fd)
{
	int n;

	if (fd > 2)
		return fd;
	n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return n;
}

/*
 * Start PROG (ARGV) with IN as its stdin and OUT as its stdout: 0, or -1
 * with the reason in C->err.
 */
static int
spawn(struct ps_conn *c, int in, int out, const char *prog, char **argv)
{
	extern char **environ;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	pid_t pid;
	int e;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in, 0);
	posix_spawn_file_actions_adddup2(&fa, out, 1);
	posix_spawnattr_init(&at);
	/* main() ignores SIGPIPE; ssh and friends expect the default. */
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF);
	e = posix_spawnp(&pid, prog, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (e != 0) {
		c->pid = -1;
		return fail(c->err, sizeof(c->err), "cannot run '%s': %s",
		    argv[0], strerror(e));
	}
	c->pid = pid;
	return 0;
}

static int
open_local(struct ps_conn *c, const char *prog, char **argv)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return fail(c->err, sizeof(c->err), "socketpair: %s",
		    strerror(errno));
	sv[0] = above2(sv[0]);
	sv[1] = above2(sv[1]);
	if (sv[0] < 0 || sv[1] < 0 || spawn(c, sv[1], sv[1], prog, argv) < 0) {
		if (sv[0] < 0 || sv[1] < 0)
			fail(c->err, sizeof(c->err), "socketpair: %s",
			    strerror(errno));
		if (sv[0] >= 0)
			close(sv[0]);
		if (sv[1] >= 0)
			close(sv[1]);
		return -1;
	}
	close(sv[1]);
	c->rfd = c->wfd = sv[0];
	return 0;
}

static int
open_pipes(struct ps_conn *c, const char *prog, char **argv, int size)
{
	int to[2], from[2], i;

	if (pipe2(to, O_CLOEXEC) < 0)
		return fail(c->err, sizeof(c->err), "pipe: %s",
		    strerror(errno));
	if (pipe2(from, O_CLOEXEC) < 0) {
		fail(c->err, sizeof(c->err), "pipe: %s", strerror(errno));
		close(to[0]);
		close(to[1]);
		return -1;
	}
	/* Only toward the server: that is where the file data goes. */
	if (size > 0)
		(void)fcntl(to[1], F_SETPIPE_SZ, size);
	for (i = 0; i < 2; i++) {
		to[i] = above2(to[i]);
		from[i] = above2(from[i]);
	}
	if (to[0] < 0 || to[1] < 0 || from[0] < 0 || from[1] < 0 ||
	    spawn(c, to[0], from[1], prog, argv) < 0) {
		if (to[0] < 0 || to[1] < 0 || from[0] < 0 || from[1] < 0)
			fail(c->err, sizeof(c->err), "pipe: %s",
			    strerror(errno));
		for (i = 0; i < 2; i++) {
			if (to[i] >= 0)
				close(to[i]);
			if (from[i] >= 0)
				close(from[i]);
		}
		return -1;
	}
	close(to[0]);
	close(from[1]);
	c->wfd = to[1];
	c->rfd = from[0];
	return 0;
}

int
ps_conn_open(const struct ps_url *u, const struct ps_conn_opts *o,
    struct ps_conn *c)
{
	static const struct ps_conn_opts none;
	const char *prog;
	char **argv;
	int r;

	if (o == NULL)
		o = &none;
	memset(c, 0, sizeof(*c));
	c->rfd = c->wfd = -1;
	c->pid = -1;
	argv = ps_conn_argv(u, o, c->err, sizeof(c->err));
	if (argv == NULL)
		return PS_EUSAGE;
	if (u->kind == PS_URL_LOCAL) {
		/* argv[0] stays readable in ps; exec the real file. */
		prog = o->self_exe != NULL ? o->self_exe : "/proc/self/exe";
		r = open_local(c, prog, argv);
	} else
		r = open_pipes(c, argv[0], argv, o->pipe_size);
	ps_argv_free(argv);
	if (r < 0) {
		c->pid = -1;
		return PS_EPEER;
	}
	return PS_OK;
}

/*
 * waitpid with a deadline: 0 when PID ended (STATUS set), -1 if not.
 * Asleep on a pidfd (Linux 5.3 and later), which wakes the moment the
 * child exits; else polled, the first waits short (a child that read our
 * BYE is usually gone within a millisecond).
 */
static int
wait_for(pid_t pid, int *status, unsigned ms)
{
	struct timespec ts;
	unsigned waited_us = 0, step_us = 100;
	struct pollfd pfd;
	pid_t r;
#ifdef SYS_pidfd_open
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (pidfd >= 0) {
		pfd.fd = pidfd;
		pfd.events = POLLIN;
		while ((r = poll(&pfd, 1, ms > INT_MAX ? -1 : (int)ms)) < 0 &&
		    errno == EINTR)
			;
		close(pidfd);
		if (r == 0)
			return -1;	/* still running at the deadline */
	}
#else
	(void)pfd;
#endif
	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return 0;	/* not ours any more */
		if (waited_us >= ms * 1000u)
			return -1;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)step_us * 1000;
		nanosleep(&ts, NULL);
		waited_us += step_us;
		if (step_us < 20000)
			step_us *= 2;
	}
}

int
ps_conn_close(struct ps_conn *c, unsigned secs)
{
	int status = 0;

	if (c->rfd >= 0)
		close(c->rfd);
	if (c->wfd >= 0 && c->wfd != c->rfd)
		close(c->wfd);
	c->rfd = c->wfd = -1;
	if (c->pid <= 0)
		return -1;
	/* Give it time to finish (and clean up), then insist. */
	if (wait_for(c->pid, &status, secs * 1000) != 0) {
		(void)kill(c->pid, SIGTERM);
		if (wait_for(c->pid, &status, 5000) != 0) {
			(void)kill(c->pid, SIGKILL);
			(void)wait_for(c->pid, &status, 5000);
		}
	}
	c->pid = -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

int
ps_conn_kill(struct ps_conn *c)
{
	if (c->pid <= 0)
		return -1;
	return kill(c->pid, SIGTERM);
}
