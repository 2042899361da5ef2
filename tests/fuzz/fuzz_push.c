/*
 * fuzz_push.c — what a server sends, taken by the console role of a push
 * or a report: the input goes into a pipe, and the console's whole
 * session runs on it (ps_console_session, as one server of
 * `patchsync push` would), its own frames going to /dev/null. This
 * reaches what a hostile server reaches on the console: its manifest
 * merged with the console's scan, the plan, block sums for deltas and
 * their rounds, results, files sent again, deletions, and a report's
 * rows.
 *
 * The console's directory is made once, as gen-corpus makes the source
 * of the recorded sessions (a changed d/e/big.bin, a new file, no
 * d/small, fixed times). After every input it must be as it was: the
 * console never writes to what it pushes.
 *
 * A server answers what the console asked: block sums after a request
 * for them, a file's result after its end. Given all at once, answers
 * would come before their questions, and the console (rightly) ends the
 * session at the first. So the input is fed in step with the console:
 *
 *	OPT (CONSOLE-BYTES LENGTH DATA)...
 *
 * OPT is a byte of options (bit 0 report, 1 --delete, 2 --checksum, 3
 * --whole-file, 4 --dry-run, 5 report --extra); then each piece of what
 * the server sends (LENGTH bytes of DATA; CONSOLE-BYTES and LENGTH are
 * 32-bit little-endian) goes once the console has sent that many bytes,
 * or has sent nothing for QUIET_MS. tests/fuzz/gen-corpus records the
 * pieces so from real pushes and reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "msg.h"
#include "session.h"
#include "fuzz.h"

#define BIG_LEN		(12 * 4096 + 100)	/* gen-corpus SERVE_FILES */
#define NEW_LEN		2000
#define CHANGE_AT	5000
#define DIR_MTIME	1700000000
#define FILE_MTIME	1700000100
#define QUIET_MS	3	/* the console is waiting for us */
#define PIECES_MAX	256	/* pieces fed, at most (the rest at once) */

static char top[1024], srcdir[1100];
static struct ps_source src;

/* What the console's files were made with: each must stay so. */
static const char *const files[] = { "d/e/big.bin", "new" };
static uint8_t *want[2];
static size_t want_len[2];

static void
cleanup(void)
{
	ps_source_free(&src);
	(void)fuzz_empty_dir(top);
	(void)rmdir(top);
}

/* Directory REL made (MAKE) or given its time. */
static void
put_dir(const char *rel, int make)
{
	char path[PATH_MAX];
	struct timespec ts[2] = { { DIR_MTIME, 0 }, { DIR_MTIME, 0 } };

	snprintf(path, sizeof(path), "%s%s%s", srcdir, *rel ? "/" : "", rel);
	if (make ? mkdir(path, 0755) == -1 :
	    utimensat(AT_FDCWD, path, ts, 0) == -1)
		fuzz_fail("cannot make the console's directories");
}

static void
setup(void)
{
	char cache[1100];
	uint32_t i;

	if (*top)
		return;
	fuzz_tmpdir(top, sizeof(top), "push");
	snprintf(srcdir, sizeof(srcdir), "%s/src", top);
	snprintf(cache, sizeof(cache), "%s/cache", top);
	if (mkdir(srcdir, 0755) == -1 || mkdir(cache, 0700) == -1 ||
	    setenv("XDG_CACHE_HOME", cache, 1) == -1)
		fuzz_fail("cannot make the console's directory");
	atexit(cleanup);
	signal(SIGPIPE, SIG_IGN);
	want_len[0] = BIG_LEN;
	want[0] = malloc(BIG_LEN);
	want_len[1] = NEW_LEN;
	want[1] = malloc(NEW_LEN);
	if (want[0] == NULL || want[1] == NULL)
		fuzz_fail("malloc");
	for (i = 0; i < BIG_LEN; i++)
		want[0][i] = fuzz_pattern(i);
	memcpy(want[0] + CHANGE_AT, "changed", 7);
	for (i = 0; i < NEW_LEN; i++)	/* gen-corpus pattern(2000, 7) */
		want[1][i] = fuzz_pattern(i + 7);
	put_dir("d", 1);
	put_dir("d/e", 1);
	fuzz_put_file(srcdir, files[0], want[0], want_len[0], FILE_MTIME);
	fuzz_put_file(srcdir, files[1], want[1], want_len[1], FILE_MTIME);
	put_dir("d/e", 0);
	put_dir("d", 0);
	put_dir("", 0);
	src.path = srcdir;
	src.dest = "";
	if (ps_source_open(&src) != PS_OK ||
	    ps_source_scan(&src, NULL, 0) != PS_OK)
		fuzz_fail("cannot scan the console's directory");
}

/* The console's files are as they were made. */
static void
check_src(void)
{
	static uint8_t got[BIG_LEN + 1];
	char path[PATH_MAX];
	struct stat st;
	ssize_t n;
	int fd, i;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", srcdir, files[i]);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
		    fstat(fd, &st) == -1)
			fuzz_fail("a console file is gone");
		n = read(fd, got, sizeof(got));
		close(fd);
		if (n != (ssize_t)want_len[i] ||
		    memcmp(got, want[i], want_len[i]) != 0 ||
		    st.st_mtime != FILE_MTIME)
			fuzz_fail("the console's file changed");
	}
	snprintf(path, sizeof(path), "%s/d/small", srcdir);
	if (lstat(path, &st) == 0)
		fuzz_fail("a file appeared in the console's directory");
}

/* The console's output, counted; and the input, fed in step with it. */
struct feed {
	const uint8_t *p;
	size_t n;
	int fd;			/* the console reads the other end */
	int out;		/* the console writes the other end */
	uint64_t sent;		/* atomic: bytes the console sent */
	int done;		/* atomic: the console's output ended */
};

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static void *
drain(void *arg)
{
	struct feed *f = arg;
	char buf[65536];
	ssize_t r;

	while ((r = read(f->out, buf, sizeof(buf))) > 0 ||
	    (r == -1 && errno == EINTR))
		if (r > 0)
			__atomic_add_fetch(&f->sent, (uint64_t)r,
			    __ATOMIC_RELEASE);
	__atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Until the console has sent NEED bytes, ended, or gone quiet. */
static void
wait_console(struct feed *f, uint64_t need)
{
	struct timespec tick = { 0, 200000 };
	uint64_t last = UINT64_MAX, now;
	int still = 0;

	while ((now = __atomic_load_n(&f->sent, __ATOMIC_ACQUIRE)) < need &&
	    !__atomic_load_n(&f->done, __ATOMIC_ACQUIRE)) {
		if (now == last) {
			if (++still * 200 >= QUIET_MS * 1000)
				return;
		} else {
			still = 0;
			last = now;
		}
		nanosleep(&tick, NULL);
	}
}

static int
put_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;	/* the console is gone: EPIPE */
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *
feeder(void *arg)
{
	struct feed *f = arg;
	const uint8_t *p = f->p;
	size_t n = f->n, len;
	int pieces = 0;

	while (n >= 8 && pieces++ < PIECES_MAX) {
		len = le32(p + 4);
		if (len > n - 8)
			len = n - 8;
		wait_console(f, le32(p));
		if (put_all(f->fd, p + 8, len) == -1)
			break;
		p += 8 + len;
		n -= 8 + len;
	}
	if (pieces > PIECES_MAX)	/* the rest, unframed */
		(void)put_all(f->fd, p, n);
	close(f->fd);
	return NULL;
}

static void
pipe_pair(int p[2])
{
	if (pipe2(p, O_CLOEXEC) == -1)
		fuzz_fail("pipe2");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_console_opts o;
	struct ps_target t;
	struct ps_sess ss;
	struct feed f;
	pthread_t ft, dt;
	uint8_t opt;
	int in[2], out[2], rfd, wfd;

	if (size < 1)
		return 0;
	fuzz_init();
	setup();
	opt = data[0];
	memset(&f, 0, sizeof(f));
	f.p = data + 1;
	f.n = size - 1;
	pipe_pair(in);
	pipe_pair(out);
	rfd = in[0];
	f.fd = in[1];
	wfd = out[1];
	f.out = out[0];
	if (pthread_create(&dt, NULL, drain, &f) != 0 ||
	    pthread_create(&ft, NULL, feeder, &f) != 0)
		fuzz_fail("pthread_create");
	memset(&o, 0, sizeof(o));
	o.mode = opt & 1 ? PS_OPEN_REPORT : PS_OPEN_PUSH;
	o.flags = (opt & 4 ? PS_OF_CHECKSUM : 0) |
	    (opt & 16 ? PS_OF_DRYRUN : 0);
	o.extra = (opt & 32) != 0;
	o.jobs = 1;
	o.timeout = 5;
	o.send.delete = (opt & 2) != 0;
	o.send.max_delete = -1;
	o.send.dry_run = (opt & 16) != 0;
	o.send.whole_file = (opt & 8) != 0;
	o.send.label = srcdir;
	memset(&t, 0, sizeof(t));
	t.name = xstrdup("fuzz");
	t.url = xstrdup("bench:/fuzz");
	t.timeout = -1;
	if (ps_sess_start(&ss, PS_ROLE_CONSOLE, rfd, wfd, o.timeout,
	    "fuzz") == PS_OK)
		(void)ps_console_session(&o, &src, 1, &t, &ss);
	else
		(void)ps_sess_close(&ss, NULL);
	ps_target_free(&t);
	close(rfd);		/* a feeder still writing stops (EPIPE) */
	close(wfd);		/* the drain sees the end */
	pthread_join(ft, NULL);
	pthread_join(dt, NULL);
	close(out[0]);
	check_src();
	return 0;
}
