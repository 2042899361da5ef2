/* fuzz_common.c — helpers of the fuzz targets (see fuzz.h). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ps.h"
#include "fuzz.h"

static void
drop_line(const char *line)
{
	(void)line;
}

void
fuzz_init(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	ps_quiet = 1;
	ps_err_hook = drop_line;
	ps_err_hook_only = 1;
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
