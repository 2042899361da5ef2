/*
 * cli_status.c — `patchsync status` (SPEC section 15): one row per
 * configured server from the outcomes that push and report record, as
 * text, JSON, node_exporter textfile metrics (prometheus) or one
 * self-contained HTML page (the fleet grid and each server's File Status
 * Report rows). With -o FILE the output is written to a temporary file
 * in FILE's directory and renamed over FILE, so a reader (node_exporter,
 * a web server) never sees half of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <popt.h>

#include "cli.h"
#include "output.h"
#include "ps.h"
#include "state.h"

enum sfmt { SF_TEXT, SF_JSON, SF_PROM, SF_HTML };

struct fleet {
	const struct ps_conf *conf;
	struct ps_state *st;		/* NULL: no database yet */
	struct ps_server_status *v;
	size_t n;
	time_t now;
};

static void
fmt_when(double t, char *out, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;

	if (t <= 0 || localtime_r(&s, &tm) == NULL)
		snprintf(out, len, "-");
	else
		strftime(out, len, "%Y-%m-%d %H:%M", &tm);
}

/* ---- text ---- */

static int
put_text(FILE *fp, const struct fleet *f)
{
	char when[32], behind[32], *err;
	size_t i;

	if (f->n > 0)
		fprintf(fp, "%-20s %-13s %-16s %8s %14s  %s\n", "SERVER",
		    "STATE", "LAST GOOD PUSH", "BEHIND", "BYTES SENT",
		    "LAST ERROR");
	for (i = 0; i < f->n; i++) {
		const struct ps_server_status *x = &f->v[i];

		fmt_when(x->last_ok, when, sizeof(when));
		if (x->files_behind >= 0)
			snprintf(behind, sizeof(behind), "%" PRId64,
			    x->files_behind);
		else
			snprintf(behind, sizeof(behind), "-");
		err = x->last_error != NULL ? ps_escape(x->last_error,
		    strlen(x->last_error)) : xstrdup("-");
		fprintf(fp, "%-20s %-13s %-16s %8s %14" PRIu64 "  %s\n",
		    x->server, x->download_source ? "download-src" :
		    ps_fleet_state_name(x->state), when, behind, x->bytes_sent,
		    err);
		free(err);
	}
	return PS_OK;
}

/* ---- json ---- */

static json_t *
time_or_null(double t)
{
	return t > 0 ? json_real(t) : json_null();
}

static int
put_json(FILE *fp, const struct fleet *f)
{
	json_t *arr = json_array(), *doc;
	size_t i;
	int rc;

	for (i = 0; i < f->n; i++) {
		const struct ps_server_status *x = &f->v[i];

		json_array_append_new(arr, json_pack("{s:s,s:s,s:o,s:s,s:b,"
		    "s:o,s:o,s:o,s:o,s:I,s:I,s:o,s:I}",
		    "server", x->server, "url", x->url,
		    "via", x->via != NULL ? json_string(x->via) : json_null(),
		    "state", ps_fleet_state_name(x->state),
		    "download_source", x->download_source,
		    "last_good_push", time_or_null(x->last_ok),
		    "last_outcome", time_or_null(x->last_time),
		    "last_error", x->last_error != NULL ?
		    json_string(x->last_error) : json_null(),
		    "files_behind", x->files_behind >= 0 ?
		    json_integer(x->files_behind) : json_null(),
		    "bytes_sent", (json_int_t)x->bytes_sent,
		    "bytes_sent_last_push", (json_int_t)x->bytes_sent_last,
		    "last_report", time_or_null(x->report_time),
		    "report_rows", (json_int_t)x->rows_total));
	}
	doc = json_pack("{s:s,s:I,s:o}", "console", f->conf->console_name,
	    "generated", (json_int_t)f->now, "servers", arr);
	if (doc == NULL) {
		ps_err("status: cannot build the JSON document");
		return PS_EUSAGE;
	}
	rc = json_dumpf(doc, fp, JSON_INDENT(2)) == 0 ? PS_OK : PS_EPARTIAL;
	fputc('\n', fp);
	json_decref(doc);
	return rc;
}

/* ---- prometheus (node_exporter textfile format) ---- */

/* A label value with \, " and newline escaped as the format wants. */
static void
put_label(FILE *fp, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', fp);
		if (*v == '\n')
			fputs("\\n", fp);
		else
			fputc(*v, fp);
	}
}

static void
metric_head(FILE *fp, const char *name, const char *type, const char *help)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample; download sources (never pushed to) are left out. */
static void
metric(FILE *fp, const char *name, const struct ps_server_status *x,
    double v)
{
	if (x->download_source)
		return;
	fprintf(fp, "%s{server=\"", name);
	put_label(fp, x->server);
	fprintf(fp, "\"} %.17g\n", v);
}

static int
put_prom(FILE *fp, const struct fleet *f)
{
	const struct ps_server_status *x;
	size_t i;

	metric_head(fp, "patchsync_server_up", "gauge", "1 unless the "
	    "server's latest push or report could not reach it");
	for (i = 0; i < f->n; i++)
		metric(fp, "patchsync_server_up", &f->v[i],
		    f->v[i].state != PS_FLEET_UNREACHABLE);
	metric_head(fp, "patchsync_server_current", "gauge", "1 when the "
	    "server holds the console's files (state current)");
	for (i = 0; i < f->n; i++)
		metric(fp, "patchsync_server_current", &f->v[i],
		    f->v[i].state == PS_FLEET_CURRENT);
	metric_head(fp, "patchsync_server_state", "gauge", "0 never synced, "
	    "1 current, 2 behind, 3 failed, 4 unreachable");
	for (i = 0; i < f->n; i++)
		metric(fp, "patchsync_server_state", &f->v[i],
		    (double)f->v[i].state);
	metric_head(fp, "patchsync_last_success_timestamp_seconds", "gauge",
	    "end of the last good push (0: none yet)");
	for (i = 0; i < f->n; i++)
		metric(fp, "patchsync_last_success_timestamp_seconds",
		    &f->v[i], f->v[i].last_ok);
	metric_head(fp, "patchsync_files_behind", "gauge", "files missing "
	    "or out of date on the server (absent: unknown)");
	for (i = 0; i < f->n; i++) {
		x = &f->v[i];
		if (x->files_behind >= 0)
			metric(fp, "patchsync_files_behind", x,
			    (double)x->files_behind);
	}
	metric_head(fp, "patchsync_bytes_sent_total", "counter", "bytes sent "
	    "to the server by every push recorded");
	for (i = 0; i < f->n; i++)
		metric(fp, "patchsync_bytes_sent_total", &f->v[i],
		    (double)f->v[i].bytes_sent);
	metric_head(fp, "patchsync_status_timestamp_seconds", "gauge",
	    "when this file was written");
	fprintf(fp, "patchsync_status_timestamp_seconds %lld\n",
	    (long long)f->now);
	return PS_OK;
}

/* ---- html ---- */

/* Text for HTML: & < > " ' escaped; control bytes already escaped. */
static void
put_html(FILE *fp, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", fp);
			break;
		case '<':
			fputs("&lt;", fp);
			break;
		case '>':
			fputs("&gt;", fp);
			break;
		case '"':
			fputs("&quot;", fp);
			break;
		case '\'':
			fputs("&#39;", fp);
			break;
		default:
			fputc(*s, fp);
		}
	}
}

/* Peer or user text: made one safe line first (ps_escape), then HTML. */
static void
put_html_text(FILE *fp, const char *s)
{
	char *e = ps_escape(s, strlen(s));

	put_html(fp, e);
	free(e);
}

static const char html_style[] =
	"body{font-family:sans-serif;margin:1.5em;color:#222}"
	"table{border-collapse:collapse;margin-bottom:1.5em}"
	"th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left}"
	"th{background:#eee}td.n{text-align:right}"
	".current{background:#cfc}.behind{background:#ffc}"
	".failed{background:#fcc}.unreachable{background:#f99}"
	".never{background:#ddd}.source{background:#def}"
	"h2{margin-top:1.5em}.note{color:#555}";

static const char *
state_class(const struct ps_server_status *x)
{
	static const char *const cls[] = { "never", "current", "behind",
		"failed", "unreachable" };

	if (x->download_source)
		return "source";
	return (size_t)x->state < 5 ? cls[x->state] : "never";
}

static void
html_grid(FILE *fp, const struct fleet *f)
{
	char when[32];
	size_t i;

	fputs("<h2>Fleet</h2>\n<table id=\"fleet\">\n<tr><th>Server</th>"
	    "<th>URL</th><th>State</th><th>Last good push</th>"
	    "<th>Files behind</th><th>Bytes sent</th><th>Last error</th>"
	    "</tr>\n", fp);
	for (i = 0; i < f->n; i++) {
		const struct ps_server_status *x = &f->v[i];

		fputs("<tr><td class=\"server\">", fp);
		put_html_text(fp, x->server);
		fputs("</td><td>", fp);
		put_html_text(fp, x->url);
		if (x->via != NULL) {
			fputs(" (via ", fp);
			put_html_text(fp, x->via);
			fputs(")", fp);
		}
		fprintf(fp, "</td><td class=\"state %s\">", state_class(x));
		put_html(fp, x->download_source ? "download source" :
		    ps_fleet_state_name(x->state));
		fmt_when(x->last_ok, when, sizeof(when));
		fprintf(fp, "</td><td>%s</td><td class=\"n\">", when);
		if (x->files_behind >= 0)
			fprintf(fp, "%" PRId64, x->files_behind);
		else
			fputs("-", fp);
		fprintf(fp, "</td><td class=\"n\">%" PRIu64 "</td><td>",
		    x->bytes_sent);
		put_html_text(fp, x->last_error != NULL ? x->last_error : "");
		fputs("</td></tr>\n", fp);
	}
	fputs("</table>\n", fp);
}

static void
html_figure(FILE *fp, int64_t v)
{
	if (v >= 0)
		fprintf(fp, "<td class=\"n\">%" PRId64 "</td>", v);
	else
		fputs("<td></td>", fp);
}

static void
html_mtime(FILE *fp, int64_t v)
{
	char when[32];

	fmt_when(v >= 0 ? (double)v : 0, when, sizeof(when));
	fprintf(fp, "<td>%s</td>", v >= 0 ? when : "");
}

/* One server's File Status Report rows, from its last report. */
static int
html_report(FILE *fp, const struct fleet *f, const struct ps_server_status *x)
{
	struct ps_report_row *r;
	char when[32];
	size_t n, i;
	int rc;

	if (x->report_time <= 0)
		return PS_OK;
	if ((rc = ps_state_report_rows(f->st, x->server, &r, &n)) != PS_OK)
		return rc;
	fputs("<h2>File Status Report: ", fp);
	put_html_text(fp, x->server);
	fmt_when(x->report_time, when, sizeof(when));
	fprintf(fp, "</h2>\n<p class=\"note\">report of %s: %zu file%s "
	    "missing, out of date or extra%s</p>\n", when, x->rows_total,
	    x->rows_total == 1 ? "" : "s", x->last_ok > x->report_time ?
	    " (a push has succeeded since)" : "");
	if (n > 0)
		fputs("<table class=\"report\">\n<tr><th>Component</th>"
		    "<th>File</th><th>State</th><th>Console size</th>"
		    "<th>Console mtime</th><th>Server size</th>"
		    "<th>Server mtime</th></tr>\n", fp);
	for (i = 0; i < n; i++) {
		fputs("<tr><td>", fp);
		put_html_text(fp, r[i].component != NULL ? r[i].component :
		    "");
		fputs("</td><td>", fp);
		put_html(fp, r[i].path);	/* stored escaped */
		fputs("</td><td>", fp);
		put_html_text(fp, r[i].state);
		fputs("</td>", fp);
		html_figure(fp, r[i].console_size);
		html_mtime(fp, r[i].console_mtime);
		html_figure(fp, r[i].server_size);
		html_mtime(fp, r[i].server_mtime);
		fputs("</tr>\n", fp);
	}
	if (n > 0)
		fputs("</table>\n", fp);
	if (x->rows_total > n)
		fprintf(fp, "<p class=\"note\">%zu more not kept (at most "
		    "%d per server)</p>\n", x->rows_total - n,
		    PS_STATE_MAX_ROWS);
	ps_report_rows_free(r, n);
	return PS_OK;
}

static int
put_page(FILE *fp, const struct fleet *f)
{
	char when[32];
	size_t i;
	int rc = PS_OK;

	fmt_when((double)f->now, when, sizeof(when));
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset="
	    "\"utf-8\">\n<title>patchsync status: ", fp);
	put_html_text(fp, f->conf->console_name);
	fprintf(fp, "</title>\n<style>%s</style></head>\n<body>\n"
	    "<h1>patchsync status</h1>\n<p class=\"note\">console ",
	    html_style);
	put_html_text(fp, f->conf->console_name);
	fprintf(fp, ", %s, %zu server%s</p>\n", when, f->n,
	    f->n == 1 ? "" : "s");
	html_grid(fp, f);
	for (i = 0; rc == PS_OK && i < f->n; i++)
		rc = html_report(fp, f, &f->v[i]);
	fputs("</body></html>\n", fp);
	return rc;
}

/* ---- output ---- */

static int
render(FILE *fp, enum sfmt fmt, const struct fleet *f)
{
	switch (fmt) {
	case SF_JSON:
		return put_json(fp, f);
	case SF_PROM:
		return put_prom(fp, f);
	case SF_HTML:
		return put_page(fp, f);
	default:
		return put_text(fp, f);
	}
}

/* Render into FILE through a temporary beside it and a rename. */
static int
render_file(const char *file, enum sfmt fmt, const struct fleet *f)
{
	char *tmp = NULL, *slash;
	FILE *fp = NULL;
	int fd, rc;

	/* DIR/.NAME.tmp.XXXXXX: hidden, and on FILE's filesystem. */
	slash = strrchr(file, '/');
	tmp = xasprintf("%.*s.%s.tmp.XXXXXX", slash != NULL ?
	    (int)(slash - file + 1) : 0, file, slash != NULL ? slash + 1 :
	    file);
	if ((fd = mkstemp(tmp)) == -1 || (fp = fdopen(fd, "w")) == NULL) {
		ps_err("status: cannot write %s: %s", file, strerror(errno));
		if (fd != -1) {
			close(fd);
			unlink(tmp);
		}
		free(tmp);
		return PS_EUSAGE;
	}
	(void)fchmod(fd, 0644);		/* for node_exporter, web servers */
	rc = render(fp, fmt, f);
	if (fflush(fp) != 0 || fsync(fd) != 0 || ferror(fp)) {
		ps_err("status: cannot write %s: %s", file, strerror(errno));
		rc = PS_EPARTIAL;
	}
	if (fclose(fp) != 0 && rc == PS_OK) {
		ps_err("status: cannot write %s: %s", file, strerror(errno));
		rc = PS_EPARTIAL;
	}
	if (rc == PS_OK && rename(tmp, file) == -1) {
		ps_err("status: cannot rename %s to %s: %s", tmp, file,
		    strerror(errno));
		rc = PS_EPARTIAL;
	}
	if (rc != PS_OK)
		unlink(tmp);
	free(tmp);
	return rc;
}

static int
parse_format(const char *s, int json, enum sfmt *fmt)
{
	*fmt = json ? SF_JSON : SF_TEXT;
	if (s == NULL)
		return PS_OK;
	if (strcmp(s, "text") == 0 && !json)
		*fmt = SF_TEXT;
	else if (strcmp(s, "json") == 0)
		*fmt = SF_JSON;
	else if (strcmp(s, "prometheus") == 0 && !json)
		*fmt = SF_PROM;
	else if (strcmp(s, "html") == 0 && !json)
		*fmt = SF_HTML;
	else {
		ps_err("status: %s '%s' (use text, json, prometheus or html)",
		    json ? "--json conflicts with --format" : "unknown format",
		    s);
		return PS_EUSAGE;
	}
	return PS_OK;
}

int
cmd_status(int argc, const char **argv)
{
	static const char *format, *out;
	static int json;
	struct poptOption opts[] = {
		{ "json", '\0', POPT_ARG_NONE, &json, 0,
		  "one JSON document (same as --format json)", NULL },
		{ "format", '\0', POPT_ARG_STRING, &format, 0,
		  "text, json, prometheus (node_exporter textfile) or html",
		  "FORMAT" },
		{ "output", 'o', POPT_ARG_STRING, &out, 0,
		  "write FILE atomically instead of standard output", "FILE" },
		PS_OPTS_END
	};
	struct ps_conf conf;
	struct fleet f;
	poptContext ctx;
	enum sfmt fmt;
	int nargs, rc;

	memset(&conf, 0, sizeof(conf));
	memset(&f, 0, sizeof(f));
	ctx = poptGetContext("patchsync status", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "[--json] [--format FORMAT] [-o FILE]");
	if ((rc = ps_cli_parse(ctx, "status")) != PS_OK)
		goto done;
	(void)ps_cli_args(ctx, &nargs);
	if (nargs != 0) {
		ps_err("status: unexpected argument (usage: patchsync status "
		    "[--json] [--format FORMAT] [-o FILE])");
		rc = PS_EUSAGE;
		goto done;
	}
	if ((rc = parse_format(format, json, &fmt)) != PS_OK ||
	    (rc = ps_cli_conf(&conf, 0)) != PS_OK)
		goto done;
	f.conf = &conf;
	f.now = time(NULL);
	/* A read-only command: no database is an empty fleet. */
	if ((rc = ps_state_open_existing(conf.database, &f.st)) != PS_OK ||
	    (f.st != NULL && (rc = ps_state_status(f.st, &f.v, &f.n)) !=
	    PS_OK))
		goto done;
	rc = out != NULL ? render_file(out, fmt, &f) : render(stdout, fmt,
	    &f);
done:
	ps_server_status_list_free(f.v, f.n);
	ps_state_close(f.st);
	ps_conf_free(&conf);
	poptFreeContext(ctx);
	return rc;
}
