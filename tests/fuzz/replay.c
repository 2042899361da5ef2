/*
 * replay.c — main() for a fuzz target built without libFuzzer: feeds it
 * each FILE, and every file below each DIRECTORY, once.
 *
 *   fuzz_NAME_replay FILE|DIRECTORY...
 *
 * Exits 0 after the last input (printing how many ran), 2 when an
 * argument cannot be read; a crash ends it as it would end the fuzzer.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ps.h"
#include "fuzz.h"

static unsigned long ran;

static int
replay_file(const char *path)
{
	struct buf b = { 0 };
	unsigned char chunk[65536], *exact;
	size_t n;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	if (ferror(f)) {
		fprintf(stderr, "replay: %s: read error\n", path);
		fclose(f);
		buf_free(&b);
		return -1;
	}
	fclose(f);
	/* A copy of exactly its size, so ASan sees reads past the end. */
	exact = xmalloc(b.len ? b.len : 1);
	if (b.len > 0)
		memcpy(exact, b.p, b.len);
	LLVMFuzzerTestOneInput(exact, b.len);
	free(exact);
	buf_free(&b);
	ran++;
	return 0;
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
replay(const char *path)
{
	struct dirent *de;
	struct stat st;
	char **names = NULL;
	size_t n = 0, i;
	DIR *d;
	int rc = 0;

	if (stat(path, &st) == -1) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xasprintf("%s/%s", path, de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), compare_names);
	for (i = 0; i < n; i++) {
		if (replay(names[i]) != 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

int
main(int argc, char **argv)
{
	int i, rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIRECTORY...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++)
		if (replay(argv[i]) != 0)
			rc = 2;
	printf("%s: replayed %lu input(s)\n", argv[0], ran);
	return rc;
}
