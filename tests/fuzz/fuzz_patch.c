/*
 * fuzz_patch.c — a librsync delta as the console sends it for a DELTA
 * op, applied by the server: ps_patch_begin / feed / end against a region
 * of a small basis file, fed in pieces of a size the input chooses.
 *
 * Input: region (1 byte) | expected length (2 bytes, little-endian) |
 *        piece size (1 byte; 0: all at once) | the delta.
 * Region byte R: the region starts at (R & 15) * 256 and is BASIS_LEN
 * minus that long, or (R & 0x80) a quarter of that.
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta.h"
#include "fuzz.h"

#define BASIS_LEN 8192u		/* also in gen-corpus */

static int basisfd = -1;

static void
make_basis(void)
{
	unsigned char b[BASIS_LEN];
	uint32_t i;

	for (i = 0; i < BASIS_LEN; i++)
		b[i] = fuzz_pattern(i);
	basisfd = fuzz_memfd(b, BASIS_LEN, "fuzz-patch-basis");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_patch *p;
	struct stat st;
	uint64_t off, len, expect;
	size_t piece, k;
	int outfd, r = PS_OK;

	fuzz_init();
	if (size < 4)
		return 0;
	if (basisfd == -1)
		make_basis();
	off = (uint64_t)(data[0] & 15) * 256;
	len = BASIS_LEN - off;
	if (data[0] & 0x80)
		len /= 4;
	expect = (uint64_t)data[1] | (uint64_t)data[2] << 8;
	piece = data[3] ? data[3] : size;
	data += 4;
	size -= 4;

	outfd = fuzz_memfd("", 0, "fuzz-patch-out");
	p = ps_patch_begin(basisfd, off, len, outfd, 0, expect);
	for (k = 0; r == PS_OK && k < size; k += piece)
		r = ps_patch_feed(p, data + k, size - k < piece ? size - k :
		    piece);
	if (r == PS_OK)
		r = ps_patch_end(p);
	else
		ps_patch_abort(p);
	if (r != PS_OK && r != PS_EPEER)
		fuzz_fail("patch: unexpected result");
	if (r == PS_OK && (fstat(outfd, &st) == -1 ||
	    (uint64_t)st.st_size != expect))
		fuzz_fail("patch succeeded but the output has another length");
	close(outfd);
	return 0;
}
