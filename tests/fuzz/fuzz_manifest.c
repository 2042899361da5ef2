/*
 * fuzz_manifest.c — ps_manifest_decode on any bytes: a manifest comes
 * from a server (after decompression), from the console's cache and from
 * `manifest show/diff FILE`. A manifest it accepts must encode and decode
 * again to the same entries.
 *
 * Input: mode (1 byte) | manifest. A manifest ends with the XXH3-128 of
 * everything before it, which no fuzzer guesses: when bit 0 of the mode
 * is set, that trailer is recomputed over the bytes as they are, so the
 * decoder's structure checks get the mutations instead of the checksum.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "manifest.h"
#include "fuzz.h"

/* Same optional array: both absent, or both there with equal contents. */
static int
same_array(const void *x, const void *y, size_t n, size_t size)
{
	if (x == NULL || y == NULL)
		return x == y;
	return n == 0 || memcmp(x, y, n * size) == 0;
}

static void
same_entries(const struct ps_manifest *a, const struct ps_manifest *b)
{
	size_t i;

	if (a->n != b->n)
		fuzz_fail("re-decoded manifest has another entry count");
	for (i = 0; i < a->n; i++) {
		const struct ps_entry *x = &a->e[i], *y = &b->e[i];

		if (x->path_len != y->path_len ||
		    memcmp(x->path, y->path, x->path_len) != 0 ||
		    x->type != y->type || x->size != y->size ||
		    x->mode != y->mode || x->mtime_sec != y->mtime_sec ||
		    x->mtime_nsec != y->mtime_nsec ||
		    memcmp(x->hash, y->hash, sizeof(x->hash)) != 0 ||
		    x->nblocks != y->nblocks ||
		    !same_array(x->blocks, y->blocks, x->nblocks,
		    sizeof(*x->blocks)) ||
		    !same_array(x->weak, y->weak, x->nblocks,
		    sizeof(*x->weak)))
			fuzz_fail("manifest changed through encode + decode");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_manifest m, again;
	struct buf b = { 0 };
	char err[256];
	uint8_t *copy;
	int r;

	fuzz_init();
	if (size < 1)
		return 0;
	size--;
	/* Exactly SIZE bytes, so that ASan sees a read past the end. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data + 1, size);
	if ((data[0] & 1) && size >= 16) {
		XXH128_canonical_t c;

		XXH128_canonicalFromHash(&c, XXH3_128bits(copy, size - 16));
		memcpy(copy + size - 16, c.digest, 16);
	}
	memset(&m, 0, sizeof(m));
	err[0] = '\0';
	r = ps_manifest_decode(copy, size, &m, err, sizeof(err));
	free(copy);
	if (r != 0) {
		if (err[0] == '\0')
			fuzz_fail("refused without a reason");
		return 0;
	}
	ps_manifest_encode(&m, (m.flags & PS_MF_LOCAL) != 0, &b);
	memset(&again, 0, sizeof(again));
	if (ps_manifest_decode(b.p, b.len, &again, err, sizeof(err)) != 0)
		fuzz_fail("a decoded manifest, encoded again, is refused");
	same_entries(&m, &again);
	ps_manifest_free(&again);
	ps_manifest_free(&m);
	buf_free(&b);
	return 0;
}
