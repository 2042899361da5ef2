/*
 * fuzz_sig.c — a librsync signature as a server sends it for a DELTA op:
 * ps_sig_check, and when it passes, ps_delta_region of a small file
 * against it (what the console does next).
 */
#include <stdlib.h>
#include <unistd.h>

#include "delta.h"
#include "fuzz.h"

#define NEW_LEN 20000u		/* also in gen-corpus */

static int newfd = -1;

static int
discard(const void *p, size_t n, void *arg)
{
	size_t *total = arg;

	(void)p;
	*total += n;
	return 0;
}

/* The console's new file: the pattern with a few edits. */
static void
make_new(void)
{
	unsigned char *b = malloc(NEW_LEN);
	uint32_t i;

	if (b == NULL)
		fuzz_fail("out of memory");
	for (i = 0; i < NEW_LEN; i++)
		b[i] = fuzz_pattern(i);
	for (i = 3000; i < 3100; i++)
		b[i] ^= 0x5a;
	for (i = 11000; i < 11013; i++)
		b[i] = (uint8_t)i;
	newfd = fuzz_memfd(b, NEW_LEN, "fuzz-sig-new");
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t total = 0;
	int r;

	fuzz_init();
	if (newfd == -1)
		make_new();
	if (ps_sig_check(data, size) != PS_OK)
		return 0;
	r = ps_delta_region(data, size, newfd, 0, NEW_LEN, discard, &total);
	if (r != PS_OK && r != PS_EPEER)
		fuzz_fail("ps_delta_region: unexpected result");
	if (r == PS_OK && total == 0)
		fuzz_fail("ps_delta_region made no delta at all");
	return 0;
}
