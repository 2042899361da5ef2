/*
 * splitmix.h — repeatable pseudo-random data for the matcher's tests and
 * its benchmark (bench/matchbench.c): splitmix64 from RNG_STATE, which a
 * test sets to its own seed.
 */
#ifndef PS_SPLITMIX_H
#define PS_SPLITMIX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint64_t rng_state;

static inline uint64_t
rng(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static inline void
fill_random(unsigned char *p, size_t n)
{
	uint64_t v;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		v = rng();
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (unsigned char)rng();
}

#endif
