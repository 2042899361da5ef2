/*
 * version.h — what `patchsync --version` prints: patchsync's version, then
 * each library it uses with the version it runs with and, when that is
 * not the one its headers had at build time, the build-time one too.
 */
#ifndef PS_VERSION_H
#define PS_VERSION_H

#include <stdio.h>

struct ps_libversion {
	const char *name;
	const char *built;	/* the headers' version, or NULL */
	const char *run;	/* the loaded library's, or NULL */
};

/*
 * Write N as a dotted version of PARTS numbers of BASE each, most
 * significant first (801, 100, 3: "0.8.1"), into BUF; returns BUF.
 */
const char *ps_version_dotted(char *buf, size_t len, long n, long base,
    int parts);

/*
 * Write LIBS as "  name run (built with built), ..." lines of at most
 * WIDTH columns to FP.
 */
void ps_version_list(FILE *fp, const struct ps_libversion *libs, size_t n,
    size_t width);

/* Print "patchsync VERSION" and the libraries, for --version. */
void ps_version_print(FILE *fp);

#endif
