/*
 * output.h — the rows of a difference listing (manifest diff, report) as
 * text, JSON (SPEC section 8) or CSV.
 */
#ifndef PS_OUTPUT_H
#define PS_OUTPUT_H

#include <stdio.h>

#include <jansson.h>

#include "manifest.h"

enum ps_format {
	PS_FMT_TEXT,
	PS_FMT_JSON,
	PS_FMT_CSV
};

/* Parse "text", "json" or "csv". Returns 0, or -1 for anything else. */
int ps_format_parse(const char *s, enum ps_format *f);

/* "missing", "out-of-date" or "extra". */
const char *ps_diff_state_name(enum ps_diff_state st);

/*
 * A JSON string for path bytes: the path itself when it is valid UTF-8,
 * otherwise its ps_escape() form (and *ESCAPED is set).
 */
json_t *ps_json_path(const char *p, size_t len, int *escaped);

/*
 * One `files` row of SPEC section 8. COMPONENT may be NULL (JSON null).
 * CONSOLE is the console's entry (NULL for extra), SERVER the server's
 * (NULL for missing).
 */
json_t *ps_json_file_row(const char *component, enum ps_diff_state st,
    const struct ps_entry *console, const struct ps_entry *server);

/* CSV: header and one row, with a leading `server` column when WITH_SERVER. */
void ps_csv_header(FILE *fp, int with_server);
void ps_csv_row(FILE *fp, const char *server, const char *component,
    enum ps_diff_state st, const struct ps_entry *console,
    const struct ps_entry *server_e);

/* Text: "STATE  PATH" with the path escaped; COMPONENT prefixes it as C/. */
void ps_text_row(FILE *fp, const char *component, enum ps_diff_state st,
    const struct ps_entry *e);

/* Print a JSON document to stdout, followed by a newline. */
int ps_json_print(json_t *doc);

#endif
