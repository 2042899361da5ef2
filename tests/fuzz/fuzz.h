/*
 * fuzz.h — what the fuzz targets share. Each tests/fuzz/fuzz_NAME.c
 * defines LLVMFuzzerTestOneInput for one decoder that data from a peer or
 * a file reaches. Built two ways: with clang -fsanitize=fuzzer (configure
 * --enable-fuzz; libFuzzer's main) and with replay.c's main, which feeds
 * it files (make check replays tests/fuzz/corpus and tests/fuzz/regress).
 */
#ifndef PS_FUZZ_H
#define PS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Once per process: diagnostics go nowhere (bad input is the normal case
 * here; a crash report does not go through ps_err).
 */
void fuzz_init(void);

/* A memfd holding N bytes of P, offset 0; aborts when one cannot be made. */
int fuzz_memfd(const void *p, size_t n, const char *name);

/*
 * The read end of a pipe holding the N bytes at P (as many as the pipe
 * takes, up to 1 MiB), its write end closed: a peer that said that much
 * and hung up.
 */
int fuzz_pipe(const void *p, size_t n);

/* A new directory fuzz-NAME.XXXXXX under $TMPDIR (or /tmp) into OUT. */
void fuzz_tmpdir(char *out, size_t n, const char *name);

/* Remove everything under DIR (not DIR): 0, or -1 when something stays. */
int fuzz_empty_dir(const char *dir);

/* DIR/REL made with the N bytes at P and the time MTIME, or abort. */
void fuzz_put_file(const char *dir, const char *rel, const uint8_t *p,
    size_t n, time_t mtime);

/* The I-th byte of a fixed pseudo-random sequence (also in gen-corpus). */
uint8_t fuzz_pattern(uint32_t i);

/* Stop: the code under test broke a promise its header makes. */
void fuzz_fail(const char *what) __attribute__((noreturn));

#endif
