/*
 * version.c — `patchsync --version`: our version and the libraries', as
 * rsync -V does, so a bug report says what the binary really runs with.
 */
#include <stdio.h>
#include <string.h>

#include <archive.h>
#include <jansson.h>
#include <librsync.h>
#include <sqlite3.h>
#include <xxhash.h>
#include <zstd.h>

#include "bundle.h"
#include "version.h"

const char *
ps_version_dotted(char *buf, size_t len, long n, long base, int parts)
{
	long div = 1;
	size_t off = 0;
	int i, w;

	for (i = 1; i < parts; i++)
		div *= base;
	buf[0] = '\0';
	for (i = 0; i < parts && off < len; i++, div /= base) {
		w = snprintf(buf + off, len - off, "%s%ld", i ? "." : "",
		    i ? n / div % base : n / div);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	return buf;
}

/* One entry as text: "name run", "name run (built with b)" or "name b". */
static void
entry(char *buf, size_t len, const struct ps_libversion *l)
{
	const char *v = l->run != NULL ? l->run : l->built;

	if (l->run != NULL && l->built != NULL && *l->built != '\0' &&
	    strcmp(l->run, l->built) != 0)
		snprintf(buf, len, "%s %s (built with %s)", l->name, v,
		    l->built);
	else
		snprintf(buf, len, "%s %s", l->name,
		    v != NULL && *v != '\0' ? v : "(version unknown)");
}

void
ps_version_list(FILE *fp, const struct ps_libversion *libs, size_t n,
    size_t width)
{
	char e[128];
	size_t i, col = 0, len;

	for (i = 0; i < n; i++) {
		entry(e, sizeof(e), &libs[i]);
		len = strlen(e) + (i + 1 < n ? 1 : 0);	/* and its comma */
		if (col > 0 && col + 1 + len > width) {
			fputs("\n", fp);
			col = 0;
		}
		col += (size_t)fprintf(fp, "%s%s%s", col == 0 ? "  " : " ", e,
		    i + 1 < n ? "," : "");
	}
	if (col > 0)
		fputs("\n", fp);
}

/* librsync's string is "librsync 2.3.2". */
static const char *
rsync_version(void)
{
	const char *v = rs_librsync_version;

	return strncmp(v, "librsync ", 9) == 0 ? v + 9 : v;
}

void
ps_version_print(FILE *fp)
{
	char b[8][24];		/* for the versions that are numbers */
	long arv = ps_bundle_libarchive_version();
	/*
	 * One line per library: its name, the version of the headers it was
	 * built with (configure's pkg-config --modversion when the headers
	 * have none) and the version of the library it runs with.
	 */
	const struct ps_libversion libs[] = {
		{ "librsync", NULL, rsync_version() },
		{ "xxhash", ps_version_dotted(b[0], sizeof(b[0]),
		    XXH_VERSION_NUMBER, 100, 3), ps_version_dotted(b[1],
		    sizeof(b[1]), (long)XXH_versionNumber(), 100, 3) },
		{ "zstd", ZSTD_VERSION_STRING, ZSTD_versionString() },
		{ "sqlite", SQLITE_VERSION, sqlite3_libversion() },
		{ "libarchive", ARCHIVE_VERSION_ONLY_STRING, arv < 0 ?
		    "(cannot be loaded)" : ps_version_dotted(b[2], sizeof(b[2]),
		    arv, 1000, 3) },
#if JANSSON_VERSION_HEX >= 0x020d00
		{ "jansson", JANSSON_VERSION, jansson_version_str() },
#else
		{ "jansson", JANSSON_VERSION, NULL },
#endif
		{ "popt", PS_BUILT_POPT, NULL },
		{ "inih", PS_BUILT_INIH, NULL },
	};

	fprintf(fp, "patchsync %s\n", PACKAGE_VERSION);
	ps_version_list(fp, libs, sizeof(libs) / sizeof(libs[0]), 78);
}
