/*
 * fuzz_bundle_index.c — the index of an offline bundle (its first
 * member, patchsync-bundle.jsonl: JSON lines from a file that came on
 * removable media), read the way bundle verify and apply read it:
 * ps_bidx_feed in pieces, then ps_bidx_end. An index it accepts
 * announced exactly the members it holds, each with an archive name.
 *
 * Input: piece size (1 byte; 0: all at once) | the index.
 */
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_bindex x;
	char err[256], *name;
	size_t piece, k, len;
	int r = 0;

	fuzz_init();
	if (size < 1)
		return 0;
	piece = data[0] ? data[0] : size;
	data++;
	size--;
	memset(&x, 0, sizeof(x));
	err[0] = '\0';
	for (k = 0; r == 0 && k < size; k += piece)
		r = ps_bidx_feed(&x, data + k, size - k < piece ? size - k :
		    piece, err, sizeof(err));
	if (r == 0)
		r = ps_bidx_end(&x, err, sizeof(err));
	if (r != 0 && err[0] == '\0')
		fuzz_fail("index refused without a reason");
	if (r == 0) {
		if (x.nm != x.nm_total)
			fuzz_fail("accepted an index short of its members");
		for (k = 0; k < x.nm; k++) {
			if (x.m[k].comp >= x.ncomp)
				fuzz_fail("a member of no component");
			name = ps_bundle_member_name(&x, &x.m[k], &len);
			if (name == NULL || len == 0)
				fuzz_fail("a member without an archive name");
			free(name);
		}
	}
	ps_bindex_free(&x);
	return 0;
}
