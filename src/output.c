/*
 * output.c — difference rows as text, JSON and CSV.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "ps.h"

int
ps_format_parse(const char *s, enum ps_format *f)
{
	if (strcmp(s, "text") == 0)
		*f = PS_FMT_TEXT;
	else if (strcmp(s, "json") == 0)
		*f = PS_FMT_JSON;
	else if (strcmp(s, "csv") == 0)
		*f = PS_FMT_CSV;
	else
		return -1;
	return 0;
}

const char *
ps_diff_state_name(enum ps_diff_state st)
{
	switch (st) {
	case PS_D_MISSING:
		return "missing";
	case PS_D_OUTDATED:
		return "out-of-date";
	case PS_D_EXTRA:
		return "extra";
	}
	return "unknown";
}

json_t *
ps_json_path(const char *p, size_t len, int *escaped)
{
	json_t *s;
	char *e;

	*escaped = 0;
	/* jansson refuses strings that are not valid UTF-8. */
	if ((s = json_stringn(p, len)) != NULL)
		return s;
	*escaped = 1;
	e = ps_escape(p, len);
	s = json_string(e);
	free(e);
	return s;
}

static json_t *
json_side(const struct ps_entry *e)
{
	char hex[33];

	if (e == NULL)
		return json_null();
	ps_hex(e->hash, sizeof(e->hash), hex);
	return json_pack("{s:I,s:I,s:s}", "size", (json_int_t)e->size,
	    "mtime", (json_int_t)e->mtime_sec, "hash", hex);
}

json_t *
ps_json_file_row(const char *component, enum ps_diff_state st,
    const struct ps_entry *console, const struct ps_entry *server)
{
	const struct ps_entry *e = console != NULL ? console : server;
	json_t *row;
	int escaped;

	row = json_object();
	json_object_set_new(row, "component",
	    component != NULL ? json_string(component) : json_null());
	json_object_set_new(row, "path", ps_json_path(e->path, e->path_len,
	    &escaped));
	if (escaped)
		json_object_set_new(row, "path_escaped", json_true());
	json_object_set_new(row, "state", json_string(ps_diff_state_name(st)));
	json_object_set_new(row, "console", json_side(console));
	json_object_set_new(row, "server", json_side(server));
	return row;
}

/* A CSV field, quoted when it holds a comma, quote or line break. */
static void
csv_field(FILE *fp, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, fp);
		return;
	}
	fputc('"', fp);
	for (; *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', fp);
		fputc(*s, fp);
	}
	fputc('"', fp);
}

static void
csv_side(FILE *fp, const struct ps_entry *e)
{
	char hex[33];

	if (e == NULL) {
		fputs(",,,", fp);
		return;
	}
	ps_hex(e->hash, sizeof(e->hash), hex);
	fprintf(fp, ",%" PRIu64 ",%" PRId64 ",%s", e->size, e->mtime_sec, hex);
}

void
ps_csv_header(FILE *fp, int with_server)
{
	if (with_server)
		fputs("server,", fp);
	fputs("component,path,state,console_size,console_mtime,console_hash,"
	    "server_size,server_mtime,server_hash\r\n", fp);
}

void
ps_csv_row(FILE *fp, const char *server, const char *component,
    enum ps_diff_state st, const struct ps_entry *console,
    const struct ps_entry *server_e)
{
	const struct ps_entry *e = console != NULL ? console : server_e;
	char *path;

	if (server != NULL) {
		csv_field(fp, server);
		fputc(',', fp);
	}
	csv_field(fp, component != NULL ? component : "");
	fputc(',', fp);
	/* Escaped, so that every row is one line whatever the name holds. */
	path = ps_escape(e->path, e->path_len);
	csv_field(fp, path);
	free(path);
	fprintf(fp, ",%s", ps_diff_state_name(st));
	csv_side(fp, console);
	csv_side(fp, server_e);
	fputs("\r\n", fp);
}

void
ps_text_row(FILE *fp, const char *component, enum ps_diff_state st,
    const struct ps_entry *e)
{
	char *path = ps_escape(e->path, e->path_len);

	if (component != NULL)
		fprintf(fp, "%-11s %s/%s\n", ps_diff_state_name(st), component,
		    path);
	else
		fprintf(fp, "%-11s %s\n", ps_diff_state_name(st), path);
	free(path);
}

int
ps_json_print(json_t *doc)
{
	if (json_dumpf(doc, stdout, JSON_COMPACT) != 0 ||
	    fputc('\n', stdout) == EOF) {
		ps_err("cannot write JSON to standard output");
		return PS_EPARTIAL;
	}
	return PS_OK;
}
