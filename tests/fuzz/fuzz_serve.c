/*
 * fuzz_serve.c — what a console sends, taken by the server role: the
 * input goes into a pipe and ps_serve answers it (into /dev/null) as
 * `patchsync serve --stdio ROOT` would, until BYE, a failure or the end
 * of the stream. This reaches everything a hostile console reaches: the
 * decoders, locks and destinations, the receiver's file, data, delta
 * (COPY from the basis), delete and metadata handling, and reports.
 *
 * Before every input ROOT is made afresh with the same two files (the
 * basis that recorded deltas refer to) and an empty cache directory.
 * After it, nothing but ROOT and the cache may exist beside them: a
 * file written outside ROOT is a finding.
 *
 * Input: the bytes a console sends (tests/fuzz/gen-corpus records real
 * pushes and reports into a ROOT made the same way).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"
#include "fuzz.h"

#define BASIS_BIG_LEN	(12 * 4096 + 100)	/* gen-corpus SERVE_FILES */
#define BASIS_MTIME	1700000000

static char top[1024], root[1100], cache[1100];

/* ROOT with d/e/big.bin and d/small, as gen-corpus's server copy. */
static void
make_root(void)
{
	static uint8_t big[BASIS_BIG_LEN];
	char d[PATH_MAX];
	uint32_t i;

	if (fuzz_empty_dir(top) == -1)
		fuzz_fail("cannot walk the fuzz directory");
	if (mkdir(root, 0755) == -1 || mkdir(cache, 0700) == -1)
		fuzz_fail("cannot make ROOT");
	snprintf(d, sizeof(d), "%s/d", root);
	if (mkdir(d, 0755) == -1)
		fuzz_fail("cannot make ROOT/d");
	snprintf(d, sizeof(d), "%s/d/e", root);
	if (mkdir(d, 0755) == -1)
		fuzz_fail("cannot make ROOT/d/e");
	for (i = 0; i < BASIS_BIG_LEN; i++)
		big[i] = fuzz_pattern(i);
	fuzz_put_file(root, "d/e/big.bin", big, sizeof(big), BASIS_MTIME);
	fuzz_put_file(root, "d/small", (const uint8_t *)"hello\n", 6,
	    BASIS_MTIME);
}

/* Only ROOT and the cache directory may be in TOP. */
static void
check_top(void)
{
	struct dirent *e;
	DIR *dir;

	if ((dir = opendir(top)) == NULL)
		fuzz_fail("cannot read the fuzz directory");
	while ((e = readdir(dir)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, "root") == 0 ||
		    strcmp(e->d_name, "cache") == 0)
			continue;
		fprintf(stderr, "fuzz: %s/%s\n", top, e->d_name);
		fuzz_fail("the server wrote outside ROOT");
	}
	closedir(dir);
}

static void
cleanup(void)
{
	(void)fuzz_empty_dir(top);
	(void)rmdir(top);
}

static void
setup(void)
{
	if (*top)
		return;
	fuzz_tmpdir(top, sizeof(top), "serve");
	snprintf(root, sizeof(root), "%s/root", top);
	snprintf(cache, sizeof(cache), "%s/cache", top);
	if (setenv("XDG_CACHE_HOME", cache, 1) == -1)
		fuzz_fail("setenv");
	atexit(cleanup);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_serve_opts o;
	int rfd, wfd;

	fuzz_init();
	setup();
	make_root();
	rfd = fuzz_pipe(data, size);
	if ((wfd = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
		fuzz_fail("open /dev/null");
	memset(&o, 0, sizeof(o));
	o.root = root;
	o.timeout = 5;
	(void)ps_serve(rfd, wfd, &o);
	close(rfd);
	close(wfd);
	check_top();
	return 0;
}
