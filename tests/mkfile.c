/*
 * mkfile.c — the tests' maker of repeatable file contents:
 *
 *	mkfile SIZE SEED
 *
 * writes SIZE pseudo-random bytes (splitmix64 from SEED) to stdout: the
 * same for the same SIZE and SEED, different for another SEED.
 * tests/lib.sh's mkfile() runs it (a Python interpreter started for each
 * file took a tenth of a second, and some tests make a hundred files).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit/splitmix.h"

static int
number(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return *s >= '0' && *s <= '9' && *end == '\0' && errno == 0;
}

int
main(int argc, char **argv)
{
	static unsigned char buf[1 << 16];
	uint64_t size, seed;
	size_t n, off;
	ssize_t w;

	if (argc != 3 || !number(argv[1], &size) || !number(argv[2], &seed)) {
		fprintf(stderr, "usage: mkfile SIZE SEED\n");
		return 2;
	}
	rng_state = seed * UINT64_C(0x2545f4914f6cdd1d) + 1;
	while (size > 0) {
		n = size < sizeof(buf) ? (size_t)size : sizeof(buf);
		fill_random(buf, (n + 7) & ~(size_t)7);
		for (off = 0; off < n; off += (size_t)w) {
			w = write(1, buf + off, n - off);
			if (w < 0 && errno == EINTR)
				w = 0;
			else if (w <= 0) {
				perror("mkfile: write");
				return 1;
			}
		}
		size -= n;
	}
	return 0;
}
