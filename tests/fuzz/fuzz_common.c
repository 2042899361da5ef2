/* fuzz_common.c — helpers of the fuzz targets (see fuzz.h). */
#define _XOPEN_SOURCE 700	/* nftw */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps.h"
#include "fuzz.h"

void
fuzz_init(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	ps_quiet = 1;
	ps_diag_print(0);
}

int
fuzz_memfd(const void *p, size_t n, const char *name)
{
	const char *c = p;
	ssize_t w;
	int fd;

	if ((fd = memfd_create(name, MFD_CLOEXEC)) == -1)
		fuzz_fail("memfd_create");
	while (n > 0) {
		if ((w = write(fd, c, n)) <= 0)
			fuzz_fail("write to memfd");
		c += w;
		n -= (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		fuzz_fail("lseek memfd");
	return fd;
}

int
fuzz_pipe(const void *p, size_t n)
{
	int pfd[2], cap;

	if (pipe2(pfd, O_CLOEXEC) == -1)
		fuzz_fail("pipe2");
	/* The whole input must fit: the writer is this thread. */
	cap = fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20);
	if (cap < 0)
		cap = 65536;
	if (n > (size_t)cap)
		n = (size_t)cap;
	if (n > 0 && write(pfd[1], p, n) != (ssize_t)n)
		fuzz_fail("write to pipe");
	close(pfd[1]);
	return pfd[0];
}

uint8_t
fuzz_pattern(uint32_t i)
{
	uint32_t x = i * 2654435761u + 0x9e3779b9u;

	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	x ^= x >> 12;
	return (uint8_t)x;
}

void
fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz: %s\n", what);
	abort();
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	return ftw->level > 0 && remove(path) == -1 ? -1 : 0;
}

int
fuzz_empty_dir(const char *dir)
{
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void
fuzz_put_file(const char *dir, const char *rel, const uint8_t *p, size_t n,
    time_t mtime)
{
	char path[PATH_MAX];
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1 || write(fd, p, n) != (ssize_t)n ||
	    futimens(fd, ts) == -1 || close(fd) == -1)
		fuzz_fail("cannot make a file to fuzz with");
}

void
fuzz_tmpdir(char *out, size_t n, const char *name)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(out, n, "%s/fuzz-%s.XXXXXX",
	    tmp != NULL && *tmp == '/' ? tmp : "/tmp", name);
	if (mkdtemp(out) == NULL)
		fuzz_fail("mkdtemp");
}
