/*
 * cli_push.c — `patchsync push` and `patchsync report`: choose the
 * console directories and the servers, scan once, run the sessions, print
 * what happened (text, --stats, --json, csv).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <popt.h>

#include "cli.h"
#include "console.h"
#include "output.h"
#include "proto.h"
#include "receiver.h"
#include "task.h"
#include "transport.h"
#include "url.h"
#include "wire.h"

struct common {
	struct ps_names comp;	/* -C NAME... */
	int all;
	const char *rsh;
	const char *remote_path;
	const char *task;	/* --task ID: run as that task */
};

/* Looks like a URL rather than a server name? */
static int
is_url(const char *s)
{
	return strchr(s, '/') != NULL || strchr(s, ':') != NULL ||
	    strcmp(s, ".") == 0;
}

/* A size with an optional K, M or G suffix (powers of 1024). */
static int
parse_rate(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k': case 'K':
		v <<= 10;
		end++;
		break;
	case 'm': case 'M':
		v <<= 20;
		end++;
		break;
	case 'g': case 'G':
		v <<= 30;
		end++;
		break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || v == 0)
		return -1;
	*out = v;
	return 0;
}

/* A server name from the state database, or a URL as it is. */
static int
resolve(const struct ps_conf *conf, const char *name, int for_push,
    char **url, char **rsh, char **remote_path)
{
	struct ps_server_conn sc;
	int rc;

	*url = *rsh = *remote_path = NULL;
	if (is_url(name)) {
		*url = xstrdup(name);
		return PS_OK;
	}
	if ((rc = ps_task_resolve_server(conf, name, for_push, &sc)) != PS_OK)
		return rc;
	*url = sc.url;
	*rsh = sc.rsh;
	*remote_path = sc.remote_path;
	return PS_OK;
}

static char *
cache_dir(const struct ps_conf *conf)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *db, *slash;

	if (conf->file != NULL && conf->database != NULL) {
		db = xstrdup(conf->database);
		if ((slash = strrchr(db, '/')) != NULL) {
			*slash = '\0';
			if (access(*db ? db : "/", W_OK) == 0) {
				char *d = xasprintf("%s/cache", db);

				free(db);
				return d;
			}
		}
		free(db);
	}
	if (x != NULL && *x == '/')
		return xasprintf("%s/patchsync", x);
	if (home != NULL && *home == '/')
		return xasprintf("%s/.cache/patchsync", home);
	return NULL;
}

/*
 * The console directories: from the configuration (-C, or every
 * component; report: patches unless -C all), or SRC_DIR when there is no
 * configuration. *ARGS and *NARGS are advanced past SRC_DIR.
 */
static int
sources(const struct ps_conf *conf, const struct common *c, int report,
    const char ***args, int *nargs, struct ps_source **out, size_t *nout)
{
	struct ps_source *s;
	size_t n = 0, i;
	int k;
	struct stat st;

	if (conf->file == NULL || (c->comp.n == 0 && *nargs >= 2 &&
	    stat((*args)[0], &st) == 0 && S_ISDIR(st.st_mode) &&
	    strchr((*args)[0], ':') == NULL)) {
		if (c->comp.n > 0) {
			ps_err("-C needs a configuration file with "
			    "[component] sections");
			return PS_EUSAGE;
		}
		if (*nargs < 2) {
			ps_err("expected SRC_DIR and at least one URL (or a "
			    "configuration file; see patchsync --help)");
			return PS_EUSAGE;
		}
		s = xcalloc(1, sizeof(*s));
		s->dest = "";
		s->path = (*args)[0];
		s->fd = -1;
		(*args)++;
		(*nargs)--;
		*out = s;
		*nout = 1;
		return PS_OK;
	}
	s = xcalloc(conf->ncomp + 1, sizeof(*s));
	for (i = 0; i < conf->ncomp; i++) {
		const struct ps_component *comp = &conf->comp[i];
		int want = 0;

		if (c->comp.n == 0)
			want = !report || strcmp(comp->name, "patches") == 0;
		for (k = 0; k < c->comp.n; k++)
			if (strcmp(c->comp.v[k], "all") == 0 ||
			    strcmp(c->comp.v[k], comp->name) == 0)
				want = 1;
		if (!want)
			continue;
		s[n].component = comp->name;
		s[n].dest = comp->dest;
		s[n].path = comp->path;
		s[n].fd = -1;
		n++;
	}
	for (k = 0; k < c->comp.n; k++)
		if (strcmp(c->comp.v[k], "all") != 0 &&
		    ps_conf_component(conf, c->comp.v[k]) == NULL) {
			ps_err("unknown component '%s' (not in %s)",
			    c->comp.v[k], conf->file);
			free(s);
			return PS_EUSAGE;
		}
	if (n == 0) {
		ps_err(report && c->comp.n == 0 ? "no component 'patches' in "
		    "%s (use -C NAME or -C all)" : "no components in %s",
		    conf->file);
		free(s);
		return PS_EUSAGE;
	}
	*out = s;
	*nout = n;
	return PS_OK;
}

static int
targets(const struct ps_conf *conf, const struct common *c, int for_push,
    const char **args, int nargs, struct ps_target **out, size_t *nout)
{
	struct ps_target *t;
	char **all = NULL;
	size_t nall = 0, n, i;
	int rc = PS_OK;

	if (c->all) {
		if (nargs > 0) {
			ps_err("--all and server names exclude each other");
			return PS_EUSAGE;
		}
		if ((rc = ps_task_all_servers(conf, &all, &nall)) != PS_OK)
			return rc;
		args = (const char **)all;
		nargs = (int)nall;
	}
	if (nargs == 0) {
		ps_err(c->all ? "no servers in the state database (add one "
		    "with patchsync server add)" : "no server given (name "
		    "servers or URLs, or --all)");
		ps_task_names_free(all, nall);
		return PS_EUSAGE;
	}
	n = (size_t)nargs;
	t = xcalloc(n, sizeof(*t));
	for (i = 0; i < n && rc == PS_OK; i++) {
		t[i].name = xstrdup(args[i]);
		rc = resolve(conf, args[i], for_push, &t[i].url, &t[i].rsh,
		    &t[i].remote_path);
		if (rc == PS_OK && c->rsh != NULL) {
			free(t[i].rsh);
			t[i].rsh = xstrdup(c->rsh);
		}
		if (rc == PS_OK) {
			struct ps_url u;
			char err[256];

			if (ps_url_parse(t[i].url, &u, err, sizeof(err)) != 0) {
				ps_err("%s: %s", t[i].name, err);
				rc = PS_EUSAGE;
			} else {
				ps_url_free(&u);
			}
		}
	}
	ps_task_names_free(all, nall);
	if (rc != PS_OK) {
		for (i = 0; i < n; i++)
			ps_target_free(&t[i]);
		free(t);
		return rc;
	}
	*out = t;
	*nout = n;
	return PS_OK;
}

/* Every URL local? Then changed files go whole by default, as in rsync. */
static int
all_local(const struct ps_target *t, size_t nt)
{
	struct ps_url u;
	char err[64];
	size_t i;
	int local = 1;

	for (i = 0; i < nt; i++) {
		if (ps_url_parse(t[i].url, &u, err, sizeof(err)) != 0)
			continue;
		if (u.kind != PS_URL_LOCAL)
			local = 0;
		ps_url_free(&u);
	}
	return local;
}

/*
 * --delete must never wipe servers because a share is not mounted: an
 * empty console directory is refused before any server is contacted (one
 * holding only directories is refused after the scan, by the console).
 */
static int
check_delete(const struct ps_source *s, size_t n)
{
	struct dirent *d;
	size_t i;
	DIR *dir;
	int fd, any;

	for (i = 0; i < n; i++) {
		if ((fd = dup(s[i].fd)) < 0 || (dir = fdopendir(fd)) == NULL) {
			if (fd >= 0)
				close(fd);
			continue;	/* the scan will say what is wrong */
		}
		any = 0;
		while (!any && (d = readdir(dir)) != NULL)
			any = strcmp(d->d_name, ".") != 0 &&
			    strcmp(d->d_name, "..") != 0 &&
			    strcmp(d->d_name, ".patchsync") != 0;
		rewinddir(dir);		/* the offset is shared with s->fd */
		closedir(dir);
		if (!any) {
			ps_err("refusing --delete: console directory %s is "
			    "empty (is it mounted?)", s[i].path);
			return PS_EUSAGE;
		}
	}
	return PS_OK;
}

static const char *
status_name(const struct ps_target *t, int report)
{
	if (report) {
		if (t->rc == PS_EPEER || t->rc == PS_EUSAGE)
			return "unreachable";
		return t->nrows ? "out-of-date" : "current";
	}
	return t->rc == PS_OK ? "ok" : "failed";
}

static void
print_stats(const struct ps_target *t)
{
	printf("%s: %" PRIu64 " files transferred (of %" PRIu64 "), %" PRIu64
	    " deleted, %" PRIu64 " metadata only; literal %" PRIu64
	    " bytes, matched %" PRIu64 " bytes; sent %" PRIu64
	    " bytes, received %" PRIu64 " bytes in %.2f s%s\n", t->name,
	    t->st.files, t->st.nsend, t->st.deleted, t->st.meta,
	    t->st.literal, t->st.matched, t->bytes_sent, t->bytes_received,
	    t->seconds, t->rc == PS_OK ? "" : " (failed)");
}

static json_t *
push_json(const struct ps_target *t, size_t nt)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < nt; i++)
		json_array_append_new(arr, json_pack(
		    "{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:f}",
		    "server", t[i].name, "url", t[i].url,
		    "status", status_name(&t[i], 0),
		    "error", t[i].error ? json_string(t[i].error) : json_null(),
		    "files_transferred", (json_int_t)t[i].st.files,
		    "files_deleted", (json_int_t)t[i].st.deleted,
		    "literal_bytes", (json_int_t)t[i].st.literal,
		    "matched_bytes", (json_int_t)t[i].st.matched,
		    "bytes_sent", (json_int_t)t[i].bytes_sent,
		    "bytes_received", (json_int_t)t[i].bytes_received,
		    "seconds", t[i].seconds));
	return json_pack("{s:o}", "servers", arr);
}

static int
push_opts(int argc, const char **argv, struct ps_console_opts *o,
    struct common *c, int *stats, int *json, const char ***args, int *nargs,
    poptContext *ctxp)
{
	static int dry, del, nowait, checksum, whole, nowhole, itemize;
	static int prog, noprog;
	static const char *maxdel, *bwlimit, *comp;
	static int jobs;
	struct poptOption opts[] = {
		{ "dry-run", 'n', POPT_ARG_NONE, &dry, 0,
		  "print what would be sent and deleted; change nothing",
		  NULL },
		{ "delete", '\0', POPT_ARG_NONE, &del, 0,
		  "remove files the console does not have", NULL },
		{ "max-delete", '\0', POPT_ARG_STRING, &maxdel, 0,
		  "delete nothing (exit 3) when more than N files would go",
		  "N" },
		{ "no-wait", '\0', POPT_ARG_NONE, &nowait, 0,
		  "fail (exit 4) instead of waiting for a locked server",
		  NULL },
		{ "jobs", 'j', POPT_ARG_INT, &jobs, 0,
		  "servers pushed to at once", "N" },
		{ "checksum", '\0', POPT_ARG_NONE, &checksum, 0,
		  "compare content even when size and time match", NULL },
		{ "whole-file", 'W', POPT_ARG_NONE, &whole, 0,
		  "send changed files whole", NULL },
		{ "no-whole-file", '\0', POPT_ARG_NONE, &nowhole, 0,
		  "send changed files as deltas", NULL },
		{ "bwlimit", '\0', POPT_ARG_STRING, &bwlimit, 0,
		  "bytes per second per server (512K, 10M)", "RATE" },
		{ "progress", '\0', POPT_ARG_NONE, &prog, 0,
		  "show progress", NULL },
		{ "no-progress", '\0', POPT_ARG_NONE, &noprog, 0,
		  "do not show progress", NULL },
		{ "stats", '\0', POPT_ARG_NONE, stats, 0,
		  "print transfer statistics per server", NULL },
		{ "json", '\0', POPT_ARG_NONE, json, 0,
		  "print one JSON document describing the outcome", NULL },
		{ "itemize", 'i', POPT_ARG_NONE, &itemize, 0,
		  "one line per changed path", NULL },
		{ "all", '\0', POPT_ARG_NONE, &c->all, 0,
		  "every server in the state database", NULL },
		{ "component", 'C', POPT_ARG_STRING, &comp, 'C',
		  "only this component (repeatable)", "NAME" },
		{ "rsh", 'e', POPT_ARG_STRING, &c->rsh, 0,
		  "remote shell instead of ssh", "CMD" },
		{ "remote-path", '\0', POPT_ARG_STRING, &c->remote_path, 0,
		  "patchsync on the server (default: patchsync)", "PROGRAM" },
		{ "task", '\0', POPT_ARG_STRING | POPT_ARGFLAG_DOC_HIDDEN,
		  &c->task, 0, "run as task ID (schedule run, run-due)", "ID" },
		PS_OPTS_END
	};
	poptContext ctx;

	ctx = poptGetContext("patchsync push", argc, argv, opts, 0);
	*ctxp = ctx;
	poptSetOtherOptionHelp(ctx, "[SERVER|URL ...] | SRC_DIR URL...");
	if (ps_cli_parse_names(ctx, "push", &comp, &c->comp) != PS_OK)
		return PS_EUSAGE;
	if (whole && nowhole) {
		ps_err("push: --whole-file and --no-whole-file exclude each "
		    "other");
		return PS_EUSAGE;
	}
	o->mode = PS_OPEN_PUSH;
	o->flags = (nowait ? PS_OF_NOWAIT : 0) | (checksum ? PS_OF_CHECKSUM :
	    0) | (dry ? PS_OF_DRYRUN : 0);
	o->whole_file = whole ? 1 : nowhole ? 0 : -1;
	o->jobs = jobs;
	o->send.delete = del;
	o->send.checksum = checksum;
	o->send.max_delete = -1;
	if (maxdel != NULL) {
		char *end;

		errno = 0;
		o->send.max_delete = strtoll(maxdel, &end, 10);
		if (errno || *end || end == maxdel || o->send.max_delete < 0) {
			ps_err("push: --max-delete needs a number, not '%s'",
			    maxdel);
			return PS_EUSAGE;
		}
	}
	if (jobs < 0 || jobs > PS_JOBS_MAX) {
		ps_err("push: --jobs must be from 1 to %d", PS_JOBS_MAX);
		return PS_EUSAGE;
	}
	if (bwlimit != NULL && parse_rate(bwlimit, &o->bwlimit) != 0) {
		ps_err("push: --bwlimit needs a rate such as 512K or 10M, "
		    "not '%s'", bwlimit);
		return PS_EUSAGE;
	}
	o->send.itemize = itemize || dry ? stdout : NULL;
	o->progress = noprog ? 0 : prog ? 1 : isatty(STDERR_FILENO);
	if (*json || ps_quiet)
		o->progress = prog;
	if (*json)
		o->send.itemize = NULL;
	o->remote_path = c->remote_path;
	*args = ps_cli_args(ctx, nargs);
	return PS_OK;
}

static struct ps_task_ctx *cur_task;

/* Every error line of a task's push goes into its history too. */
static void
task_err(const char *line)
{
	ps_task_event(cur_task, "error", "error", "%s", line);
}

/*
 * The task this push runs as: the one given by --task (Run now,
 * run-due), or a new 'manual' task when there is a state database.
 */
static int
begin_task(const struct ps_conf *conf, const struct common *c,
    const struct ps_source *src, size_t nsrc, const struct ps_target *t,
    size_t nt, struct ps_task_ctx **task)
{
	struct buf servers = { 0 }, comps = { 0 };
	size_t i;
	int rc;

	*task = NULL;
	if (c->task != NULL) {
		char *end;
		long long id;

		errno = 0;
		id = strtoll(c->task, &end, 10);
		if (errno || *end || id <= 0) {
			ps_err("push: --task needs a task id, not '%s'",
			    c->task);
			return PS_EUSAGE;
		}
		rc = ps_task_begin(conf, (int64_t)id, task);
		if (rc != PS_OK)
			return rc;
	} else if (conf->file != NULL) {
		for (i = 0; i < nt; i++) {
			if (i > 0)
				buf_addc(&servers, ',');
			buf_addstr(&servers, t[i].name);
		}
		for (i = 0; i < nsrc; i++) {
			if (src[i].component == NULL)
				continue;
			if (comps.len > 0)
				buf_addc(&comps, ',');
			buf_addstr(&comps, src[i].component);
		}
		buf_addc(&servers, '\0');
		buf_addc(&comps, '\0');
		rc = ps_task_manual(conf, (char *)servers.p, (char *)comps.p,
		    task);
		buf_free(&servers);
		buf_free(&comps);
		if (rc != PS_OK)
			return rc;
	}
	if (*task != NULL) {
		cur_task = *task;
		ps_err_hook = task_err;
	}
	return PS_OK;
}

int
cmd_push(int argc, const char **argv)
{
	struct ps_console_opts o;
	struct common c;
	struct ps_conf conf = { 0 };
	struct ps_source *src = NULL;
	struct ps_target *t = NULL;
	size_t nsrc = 0, nt = 0, i;
	poptContext ctx = NULL;
	const char **args;
	int nargs, rc, stats = 0, json = 0;
	char *cache = NULL;
	struct ps_task_ctx *task = NULL;

	memset(&o, 0, sizeof(o));
	memset(&c, 0, sizeof(c));
	if ((rc = push_opts(argc, argv, &o, &c, &stats, &json, &args, &nargs,
	    &ctx)) != PS_OK)
		goto out;
	if ((rc = ps_cli_conf(&conf, 0)) != PS_OK)
		goto out;
	if (o.jobs == 0)
		o.jobs = conf.jobs;
	if ((rc = sources(&conf, &c, 0, &args, &nargs, &src, &nsrc)) != PS_OK)
		goto out;
	if ((rc = targets(&conf, &c, 1, args, nargs, &t, &nt)) != PS_OK)
		goto out;
	if ((rc = begin_task(&conf, &c, src, nsrc, t, nt, &task)) != PS_OK)
		goto out;
	o.task = task;
	if (o.whole_file == -1)
		o.whole_file = all_local(t, nt);
	o.send.whole_file = o.whole_file;
	cache = cache_dir(&conf);
	for (i = 0; i < nsrc; i++)
		if ((rc = ps_source_open(&src[i])) != PS_OK)
			goto out;
	if (o.send.delete && (rc = check_delete(src, nsrc)) != PS_OK)
		goto out;
	o.cache_dir = cache;
	o.delete_guard = o.send.delete;
	rc = ps_console_run(&o, src, nsrc, t, nt);
	if (!(o.flags & PS_OF_DRYRUN))
		ps_task_record_outcomes(&conf, t, nt, 0);
	if (ps_task_canceled())
		rc = PS_EINTR;
	fflush(stdout);
	for (i = 0; i < nt && stats; i++)
		print_stats(&t[i]);
	if (json || task != NULL) {
		json_t *doc = push_json(t, nt);

		if (json && ps_json_print(doc) != PS_OK && rc == PS_OK)
			rc = PS_EPARTIAL;
		if (task != NULL) {
			char *text = json_dumps(doc, JSON_COMPACT);

			ps_err_hook = NULL;
			ps_task_end(task, rc, text);
			task = NULL;
			free(text);
		}
		json_decref(doc);
	}
out:
	if (task != NULL) {
		ps_err_hook = NULL;
		ps_task_end(task, rc, NULL);
	}
	for (i = 0; i < nsrc; i++)
		ps_source_free(&src[i]);
	for (i = 0; i < nt; i++)
		ps_target_free(&t[i]);
	free(src);
	free(t);
	free(cache);
	free(c.comp.v);
	ps_conf_free(&conf);
	poptFreeContext(ctx);
	return rc;
}

/* ---- report ---- */

static void
report_text(const struct ps_target *t, size_t nt)
{
	size_t i, k, miss, old, extra;

	for (i = 0; i < nt; i++) {
		const struct ps_target *x = &t[i];

		if (x->rc == PS_EPEER || x->rc == PS_EUSAGE) {
			printf("%s: unreachable: %s\n", x->name,
			    x->error ? x->error : "unknown error");
			continue;
		}
		miss = old = extra = 0;
		for (k = 0; k < x->nrows; k++) {
			miss += x->rows[k].state == PS_D_MISSING;
			old += x->rows[k].state == PS_D_OUTDATED;
			extra += x->rows[k].state == PS_D_EXTRA;
		}
		if (x->nrows == 0) {
			printf("%s: current\n", x->name);
			continue;
		}
		printf("%s: %zu missing, %zu out-of-date", x->name, miss, old);
		if (extra)
			printf(", %zu extra", extra);
		putchar('\n');
		for (k = 0; k < x->nrows; k++) {
			const struct ps_row *r = &x->rows[k];

			fputs("  ", stdout);
			ps_text_row(stdout, r->component, r->state,
			    r->console ? r->console : r->server);
		}
	}
}

static json_t *
report_json(const struct ps_target *t, size_t nt)
{
	json_t *servers = json_array();
	size_t i, k, sum[4] = { 0 }, current = 0, unreach = 0;

	for (i = 0; i < nt; i++) {
		const struct ps_target *x = &t[i];
		json_t *files = json_array(), *s;
		int down = x->rc == PS_EPEER || x->rc == PS_EUSAGE;

		for (k = 0; k < x->nrows && !down; k++) {
			const struct ps_row *r = &x->rows[k];

			sum[r->state]++;
			json_array_append_new(files, ps_json_file_row(
			    r->component, r->state, r->console, r->server));
		}
		unreach += down;
		current += !down && x->nrows == 0;
		s = json_pack("{s:s,s:s,s:s,s:o,s:o}", "server", x->name,
		    "url", x->url, "status", status_name(x, 1),
		    "error", down && x->error ? json_string(x->error) :
		    json_null(), "files", files);
		json_array_append_new(servers, s);
	}
	return json_pack("{s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I}}",
	    "servers", servers, "summary",
	    "servers", (json_int_t)nt, "current", (json_int_t)current,
	    "missing", (json_int_t)sum[PS_D_MISSING],
	    "out_of_date", (json_int_t)sum[PS_D_OUTDATED],
	    "extra", (json_int_t)sum[PS_D_EXTRA],
	    "unreachable", (json_int_t)unreach);
}

static void
report_csv(const struct ps_target *t, size_t nt)
{
	size_t i, k;

	ps_csv_header(stdout, 1);
	for (i = 0; i < nt; i++)
		for (k = 0; k < t[i].nrows; k++)
			ps_csv_row(stdout, t[i].name, t[i].rows[k].component,
			    t[i].rows[k].state, t[i].rows[k].console,
			    t[i].rows[k].server);
}

int
cmd_report(int argc, const char **argv)
{
	static const char *format = "text", *comp;
	static int extra;
	struct common c;
	struct poptOption opts[] = {
		{ "extra", '\0', POPT_ARG_NONE, &extra, 0,
		  "also list files only the server has", NULL },
		{ "format", '\0', POPT_ARG_STRING, &format, 0,
		  "text, json or csv", "FORMAT" },
		{ "all", '\0', POPT_ARG_NONE, &c.all, 0,
		  "every server in the state database", NULL },
		{ "component", 'C', POPT_ARG_STRING, &comp, 'C',
		  "component to compare (default: patches; 'all' for every "
		  "one)", "NAME" },
		{ "rsh", 'e', POPT_ARG_STRING, &c.rsh, 0,
		  "remote shell instead of ssh", "CMD" },
		{ "remote-path", '\0', POPT_ARG_STRING, &c.remote_path, 0,
		  "patchsync on the server (default: patchsync)", "PROGRAM" },
		PS_OPTS_END
	};
	struct ps_console_opts o;
	struct ps_conf conf = { 0 };
	struct ps_source *src = NULL;
	struct ps_target *t = NULL;
	size_t nsrc = 0, nt = 0, i;
	enum ps_format fmt;
	poptContext ctx;
	const char **args;
	int nargs, rc;
	char *cache = NULL;

	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	ctx = poptGetContext("patchsync report", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "[SERVER|URL ...] | SRC_DIR URL...");
	if ((rc = ps_cli_parse_names(ctx, "report", &comp, &c.comp)) != PS_OK)
		goto out;
	if (ps_format_parse(format, &fmt) != 0) {
		ps_err("report: unknown format '%s' (use text, json or csv)",
		    format);
		rc = PS_EUSAGE;
		goto out;
	}
	args = ps_cli_args(ctx, &nargs);
	if ((rc = ps_cli_conf(&conf, 0)) != PS_OK)
		goto out;
	if ((rc = sources(&conf, &c, 1, &args, &nargs, &src, &nsrc)) != PS_OK)
		goto out;
	if ((rc = targets(&conf, &c, 0, args, nargs, &t, &nt)) != PS_OK)
		goto out;
	o.mode = PS_OPEN_REPORT;
	o.extra = extra;
	o.jobs = conf.jobs;
	o.remote_path = c.remote_path;
	cache = cache_dir(&conf);
	for (i = 0; i < nsrc; i++)
		if ((rc = ps_source_open(&src[i])) != PS_OK)
			goto out;
	o.cache_dir = cache;
	rc = ps_console_run(&o, src, nsrc, t, nt);
	ps_task_record_outcomes(&conf, t, nt, 1);
	if (fmt == PS_FMT_TEXT) {
		report_text(t, nt);
	} else if (fmt == PS_FMT_CSV) {
		report_csv(t, nt);
	} else {
		json_t *doc = report_json(t, nt);

		(void)ps_json_print(doc);
		json_decref(doc);
	}
	if (rc == PS_OK)
		for (i = 0; i < nt; i++)
			if (t[i].nrows > 0)
				rc = PS_DIFFER;
	if (rc != PS_OK && rc != PS_DIFFER)
		rc = PS_EPEER;
out:
	for (i = 0; i < nsrc; i++)
		ps_source_free(&src[i]);
	for (i = 0; i < nt; i++)
		ps_target_free(&t[i]);
	free(src);
	free(t);
	free(cache);
	free(c.comp.v);
	ps_conf_free(&conf);
	poptFreeContext(ctx);
	return rc;
}

/* ---- refresh: pull components from their source ---- */

static int
pull_one(const struct ps_component *comp, const char *url, const char *rsh,
    const char *remote_path, uint32_t flags)
{
	struct ps_conn_opts co = { rsh, remote_path, NULL };
	struct ps_recv_stats st;
	struct ps_root root;
	struct ps_url u;
	struct ps_conn c;
	struct ps_wire *w;
	struct buf b = { 0 };
	char err[256];
	int rc;

	if (ps_url_parse(url, &u, err, sizeof(err)) != 0) {
		ps_err("refresh: %s: source %s: %s", comp->name, url, err);
		return PS_EUSAGE;
	}
	if ((rc = ps_conn_open(&u, &co, &c)) != PS_OK) {
		ps_err("refresh: %s: %s: %s", comp->name, url, c.err);
		ps_url_free(&u);
		return rc == PS_EUSAGE ? PS_EUSAGE : PS_EPEER;
	}
	w = ps_wire_new(c.rfd, c.wfd);
	rc = ps_wire_hello(w, PS_ROLE_CONSOLE, 0, NULL, NULL);
	if (rc != PS_OK) {
		ps_err("refresh: %s: cannot reach %s: %s", comp->name, url,
		    ps_wire_error(w));
		goto out;
	}
	if ((rc = ps_root_open(comp->path, 1, &root)) != PS_OK)
		goto out;
	buf_addc(&b, PS_OPEN_PULL);
	buf_add_u32(&b, flags);
	ps_buf_add_str(&b, comp->dest, strlen(comp->dest));
	rc = ps_wire_send(w, PS_MSG_OPEN, b.p, b.len);
	buf_free(&b);
	if (rc == PS_OK)
		rc = ps_receive(w, &root, "", flags, 0, &st);
	ps_root_close(&root);
	if (rc == PS_OK) {
		(void)ps_wire_send(w, PS_MSG_BYE, NULL, 0);
		(void)ps_wire_shutdown_write(w);
		ps_info(0, "refresh: %s: %" PRIu64 " files received, %" PRIu64
		    " deleted from %s", comp->name, st.files, st.deleted, url);
		if (st.errors > 0)
			rc = st.worst > PS_EPARTIAL ? st.worst : PS_EPARTIAL;
	}
out:
	if (rc == PS_EPEER)
		(void)ps_conn_kill(&c);
	(void)ps_conn_close(&c);
	ps_wire_free(w);
	ps_url_free(&u);
	return rc;
}

static void
lock_waiting(const char *why, void *arg)
{
	ps_warn("%s: %s", (const char *)arg, why);
}

int
cmd_refresh(int argc, const char **argv)
{
	static const char *comp, *rsh, *remote_path;
	static int del, dry, checksum, nowait;
	struct poptOption opts[] = {
		{ "component", 'C', POPT_ARG_STRING, &comp, 'C',
		  "only this component (repeatable)", "NAME" },
		{ "delete", '\0', POPT_ARG_NONE, &del, 0,
		  "remove console files the source does not have", NULL },
		{ "dry-run", 'n', POPT_ARG_NONE, &dry, 0,
		  "change nothing", NULL },
		{ "checksum", '\0', POPT_ARG_NONE, &checksum, 0,
		  "compare content even when size and time match", NULL },
		{ "no-wait", '\0', POPT_ARG_NONE, &nowait, 0,
		  "fail instead of waiting for a locked source", NULL },
		{ "rsh", 'e', POPT_ARG_STRING, &rsh, 0,
		  "remote shell instead of ssh", "CMD" },
		{ "remote-path", '\0', POPT_ARG_STRING, &remote_path, 0,
		  "patchsync on the source (default: patchsync)", "PROGRAM" },
		PS_OPTS_END
	};
	struct common c;
	struct ps_conf conf = { 0 };
	poptContext ctx;
	const char **args;
	size_t i;
	int nargs, rc, k, worst = PS_OK, any = 0;
	uint32_t flags;

	memset(&c, 0, sizeof(c));
	ctx = poptGetContext("patchsync refresh", argc, argv, opts, 0);
	if ((rc = ps_cli_parse_names(ctx, "refresh", &comp, &c.comp)) != PS_OK)
		goto out;
	args = ps_cli_args(ctx, &nargs);
	if (nargs != 0) {
		ps_err("refresh: unexpected argument '%s' (components come "
		    "from -C and their source from the configuration)",
		    args[0]);
		rc = PS_EUSAGE;
		goto out;
	}
	if ((rc = ps_cli_conf(&conf, 1)) != PS_OK)
		goto out;
	for (k = 0; k < c.comp.n; k++) {
		const struct ps_component *x = ps_conf_component(&conf,
		    c.comp.v[k]);

		if (x == NULL || x->source == NULL) {
			ps_err("refresh: %s component '%s'%s", x == NULL ?
			    "unknown" : "no source for", c.comp.v[k],
			    x == NULL ? "" : " (set source = in its section)");
			rc = PS_EUSAGE;
			goto out;
		}
	}
	flags = (del ? PS_OF_DELETE : 0) | (dry ? PS_OF_DRYRUN : 0) |
	    (checksum ? PS_OF_CHECKSUM : 0) | (nowait ? PS_OF_NOWAIT : 0);
	for (i = 0; i < conf.ncomp; i++) {
		const struct ps_component *x = &conf.comp[i];
		char *url = NULL, *srsh = NULL, *spath = NULL;
		int want = c.comp.n == 0 && x->source != NULL, lockfd = -1;

		for (k = 0; k < c.comp.n; k++)
			want |= strcmp(c.comp.v[k], x->name) == 0;
		if (!want)
			continue;
		any = 1;
		if ((rc = resolve(&conf, x->source, 0, &url, &srsh, &spath)) !=
		    PS_OK) {
			worst = rc > worst ? rc : worst;
			continue;
		}
		rc = ps_download_lock_exclusive(&conf, x->name, &lockfd,
		    lock_waiting, (void *)x->name);
		if (rc == PS_OK)
			rc = pull_one(x, url, rsh != NULL ? rsh : srsh,
			    remote_path != NULL ? remote_path : spath, flags);
		if (lockfd >= 0)
			close(lockfd);
		free(url);
		free(srsh);
		free(spath);
		if (rc > worst)
			worst = rc;
	}
	if (!any) {
		ps_err("refresh: no component has a source in %s", conf.file);
		worst = PS_EUSAGE;
	}
	rc = worst;
out:
	free(c.comp.v);
	ps_conf_free(&conf);
	poptFreeContext(ctx);
	return rc;
}
