/*
 * rsh.c — the benchmark's stand-in for ssh. bench/run.py compiles it
 * into WORK/bin/rsh and gives it to both tools (rsync -e, patchsync
 * --rsh):
 *
 *	rsh [SSH-OPTIONS] HOST COMMAND...
 *
 * drops the options and the host and runs COMMAND with /bin/sh -c, its
 * stdin and stdout the caller's pipes, as the remote side of ssh would.
 *
 * The server side must not be counted as the caller's: a process's
 * rusage includes the children it waited for. So the server runs under
 * a helper process that this wrapper never waits for (bench/run.py, a
 * subreaper, reaps it after the wrapper is gone): the caller's CPU time
 * and peak RSS are its own, plus this wrapper's (one fork). The helper
 * waits for the server, tells the wrapper its exit status through a pipe
 * (the wrapper exits with it, as ssh does), and when BENCH_SERVER_LOG
 * names a directory it writes there one file per server:
 *
 *	WALL_S USER_S SYS_S MAXRSS_KIB STATUS
 *
 * (the server's wall time, CPU seconds of it and every child it waited
 * for, the peak RSS of its largest process, and its exit status).
 * Written in C because a shell or Python wrapper would cost the console
 * side a few milliseconds of CPU per server.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ssh options that take an argument (as tests/rsh-local knows them). */
static const char with_arg[] = "bcDEeFIiJLlmOopQRSWw";

static void
die(const char *what)
{
	fprintf(stderr, "rsh: %s: %s\n", what, strerror(errno));
	exit(255);
}

static double
secs(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* COMMAND... joined with blanks, as ssh sends it. */
static char *
join(char **argv, int argc)
{
	size_t len = 1, off = 0;
	char *s;
	int i;

	for (i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if ((s = malloc(len)) == NULL)
		die("malloc");
	for (i = 0; i < argc; i++) {
		size_t n = strlen(argv[i]);

		if (i > 0)
			s[off++] = ' ';
		memcpy(s + off, argv[i], n);
		off += n;
	}
	s[off] = '\0';
	return s;
}

/* Where the server's record goes: a new file in DIR, or NULL. */
static FILE *
open_log(const char *dir)
{
	char path[4096];
	int fd;

	if (dir == NULL || *dir == '\0')
		return NULL;
	if (snprintf(path, sizeof(path), "%s/srv.XXXXXX", dir) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		die("BENCH_SERVER_LOG");
	}
	if ((fd = mkostemp(path, O_CLOEXEC)) == -1)
		die(path);
	return fdopen(fd, "w");
}

/*
 * In the helper: run the server, wait for it, report. Never returns.
 */
static void
helper(const char *cmd, int status_fd)
{
	struct rusage ru;
	double t0 = now(), wall;
	FILE *log;
	pid_t pid;
	int st, code, devnull;

	log = open_log(getenv("BENCH_SERVER_LOG"));
	if ((pid = fork()) == -1)
		die("fork");
	if (pid == 0) {
		close(status_fd);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		die("/bin/sh");
	}
	/* Only the server keeps the caller's pipes open. */
	if ((devnull = open("/dev/null", O_RDWR)) == -1)
		die("/dev/null");
	dup2(devnull, 0);
	dup2(devnull, 1);
	close(devnull);
	while (wait4(pid, &st, 0, &ru) == -1)
		if (errno != EINTR)
			die("wait4");
	wall = now() - t0;
	code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (log != NULL) {
		fprintf(log, "%.6f %.6f %.6f %ld %d\n", wall, secs(ru.ru_utime),
		    secs(ru.ru_stime), ru.ru_maxrss, code);
		if (fclose(log) != 0)
			die("BENCH_SERVER_LOG");
	}
	dprintf(status_fd, "%d\n", code);
	_exit(0);
}

int
main(int argc, char **argv)
{
	char buf[32];
	size_t got = 0;
	ssize_t r;
	int i = 1, p[2], devnull;
	char *cmd;

	while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		/* -p 22 takes the next word; -p22 and -x do not. */
		if (argv[i][2] == '\0' && strchr(with_arg, argv[i][1]) != NULL)
			i++;
		i++;
	}
	if (argc - i < 2) {
		fprintf(stderr, "rsh: usage: rsh [OPTIONS] HOST COMMAND...\n");
		return 255;
	}
	cmd = join(argv + i + 1, argc - i - 1);
	if (pipe2(p, O_CLOEXEC) == -1)
		die("pipe");
	switch (fork()) {
	case -1:
		die("fork");
		break;
	case 0:
		close(p[0]);
		helper(cmd, p[1]);
		break;
	default:
		break;
	}
	close(p[1]);
	if ((devnull = open("/dev/null", O_RDWR)) == -1)
		die("/dev/null");
	dup2(devnull, 0);
	dup2(devnull, 1);
	close(devnull);
	while (got < sizeof(buf) - 1) {
		r = read(p[0], buf + got, sizeof(buf) - 1 - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	/* No status: the helper died before the server ended. */
	return got > 0 ? (int)strtol(buf, NULL, 10) : 255;
}
