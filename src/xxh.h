/*
 * xxh.h — XXH3 as the hot paths call it: libxxhash's runtime AVX2 /
 * AVX-512 dispatch on x86-64 (about twice the speed of the plain
 * functions there), the plain functions elsewhere.
 */
#ifndef PS_XXH_H
#define PS_XXH_H

#if defined(__x86_64__)
#include <xxh_x86dispatch.h>
#define HASH64		XXH3_64bits_dispatch
#define HASH128		XXH3_128bits_dispatch
#define HASH128_UPDATE	XXH3_128bits_update_dispatch
#else
#include <xxhash.h>
#define HASH64		XXH3_64bits
#define HASH128		XXH3_128bits
#define HASH128_UPDATE	XXH3_128bits_update
#endif

#endif
