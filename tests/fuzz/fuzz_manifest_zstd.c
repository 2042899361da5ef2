/*
 * fuzz_manifest_zstd.c — a compressed manifest as a server sends it: the
 * trailer (u8 codec, u64 decoded length, as in src/sender.c's
 * decode_manifest, which is static) then the zstd data. The decoded
 * length is bounded the way the console bounds it, then the bytes go
 * through ZSTD_decompress and ps_manifest_decode.
 *
 * Input: codec (1 byte) | length (8 bytes, little-endian) | zstd frame.
 * When the manifest message gets its own decoder, call that instead.
 */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "manifest.h"
#include "proto.h"
#include "wire.h"
#include "fuzz.h"

/*
 * The console accepts up to PS_MAX_MANIFEST (4 GiB) and allocates what
 * the server announces before decompressing: a fuzzer cannot allocate
 * that much, so here the announced length is capped lower.
 */
#define FUZZ_MAX_RAW (64u << 20)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_manifest m;
	struct ps_rd rd;
	unsigned char *raw;
	uint64_t rawlen;
	size_t got;
	uint8_t codec;
	char err[256];

	fuzz_init();
	ps_rd_init(&rd, data, size);
	codec = ps_rd_u8(&rd);
	rawlen = ps_rd_u64(&rd);
	if (rd.bad || codec != PS_CODEC_ZSTD || rawlen > PS_MAX_MANIFEST ||
	    rawlen > FUZZ_MAX_RAW)
		return 0;
	raw = malloc(rawlen ? (size_t)rawlen : 1);
	if (raw == NULL)
		return 0;
	got = ZSTD_decompress(raw, (size_t)rawlen, data + rd.off,
	    size - rd.off);
	memset(&m, 0, sizeof(m));
	if (!ZSTD_isError(got) && got == rawlen &&
	    ps_manifest_decode(raw, (size_t)rawlen, &m, err,
	    sizeof(err)) == 0)
		ps_manifest_free(&m);
	free(raw);
	return 0;
}
