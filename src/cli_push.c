/*
 * cli_push.c — `patchsync push`, `report` and `refresh`: parse the
 * options, choose the console directories and the servers, hand them to
 * the console role (console.h), print what happened (text, --stats,
 * --json, csv).
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
#include "session.h"
#include "task.h"
#include "url.h"

struct common {
	struct ps_names comp;	/* -C NAME... */
	int all;
	const char *rsh;
	const char *remote_path;
	const char *timeout;
	const char *task;	/* --task ID: run as that task */
};

/* Looks like a URL rather than a server name? */
static int
is_url(const char *s)
{
	return strchr(s, '/') != NULL || strchr(s, ':') != NULL ||
	    strcmp(s, ".") == 0;
}


/* A server name from the state database, or a URL as it is. */
static int
resolve(const struct ps_conf *conf, const char *name, int for_push,
    struct ps_target *t)
{
	struct ps_server_conn sc;
	int rc;

	t->timeout = -1;
	if (is_url(name)) {
		t->url = xstrdup(name);
		return PS_OK;
	}
	if ((rc = ps_task_resolve_server(conf, name, for_push, &sc)) != PS_OK)
		return rc;
	/* The strings are the target's now. */
	t->url = sc.url;
	t->rsh = sc.rsh;
	t->remote_path = sc.remote_path;
	t->bwlimit = sc.bwlimit;
	t->timeout = sc.timeout;
	return PS_OK;
}


/* Without a configuration: SRC_DIR and URLs. */
static int
source_dir(const struct common *c, const char ***args, int *nargs,
    struct ps_source **out, size_t *nout)
{
	struct ps_source *s;

	if (c->comp.n > 0) {
		ps_err("-C needs a configuration file with [component] "
		    "sections");
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
	s->mf_fd = -1;
	(*args)++;
	(*nargs)--;
	*out = s;
	*nout = 1;
	return PS_OK;
}

/*
 * The console directories: from the configuration (-C, or every
 * component; report: patches unless -C all), or SRC_DIR when there is no
 * configuration. With a configuration every argument is a server name
 * or URL, whatever exists on disk under that name (SPEC 6).
 */
static int
sources(const struct ps_conf *conf, const struct common *c, int report,
    const char ***args, int *nargs, struct ps_source **out, size_t *nout)
{
	struct ps_source *s;
	size_t n = 0, i;
	int k;

	if (conf->file == NULL)
		return source_dir(c, args, nargs, out, nout);
	for (k = 0; k < c->comp.n; k++)
		if (strcmp(c->comp.v[k], "all") != 0 &&
		    ps_conf_component(conf, c->comp.v[k]) == NULL) {
			ps_err("unknown component '%s' (not in %s)",
			    c->comp.v[k], conf->file);
			return PS_EUSAGE;
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
		s[n].mf_fd = -1;
		n++;
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

/*
 * The servers: names (and the relays they are reached through) or URLs,
 * or --all.
 */
static int
targets(const struct ps_conf *conf, const struct common *c, int for_push,
    const char **args, int nargs, struct ps_target **out, size_t *nout)
{
	char **all = NULL;
	size_t nall = 0;
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
	rc = ps_task_targets(conf, args, (size_t)nargs, for_push, c->rsh,
	    out, nout);
	ps_task_names_free(all, nall);
	return rc;
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

/* Could any console directory not be read completely? */
static int
console_incomplete(const struct ps_source *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i].rc == PS_EPARTIAL)
			return 1;
	return 0;
}

static int
unreachable(const struct ps_target *t)
{
	return t->rc == PS_EPEER || t->rc == PS_EUSAGE || t->rc == PS_EINTR;
}

static const char *
report_status(const struct ps_target *t, int incomplete)
{
	if (unreachable(t))
		return "unreachable";
	if (t->nrows > 0)
		return "out-of-date";
	/* Current only when every console file was compared. */
	return incomplete ? "incomplete" : "current";
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
		    "{s:s,s:s,s:o,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:f}",
		    "server", t[i].name, "url", t[i].url,
		    "via", t[i].via != NULL ? json_string(t[i].via->name) :
		    json_null(),
		    "status", t[i].rc == PS_OK ? "ok" : "failed",
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

struct push_flags {
	int dry, del, nowait, checksum, whole, nowhole, itemize;
	int prog, noprog, stats, json;
	const char *maxdel, *bwlimit, *comp;
	int jobs;
};

/* Options common to push and refresh; flags set from F. */
static int
transfer_opts(const char *cmd, const struct push_flags *f,
    const struct common *c, struct ps_console_opts *o)
{
	o->flags = (f->nowait ? PS_OF_NOWAIT : 0) |
	    (f->checksum ? PS_OF_CHECKSUM : 0) | (f->dry ? PS_OF_DRYRUN : 0);
	o->send.delete = f->del;
	o->send.max_delete = -1;
	if (f->maxdel != NULL) {
		char *end;

		errno = 0;
		o->send.max_delete = strtoll(f->maxdel, &end, 10);
		if (errno || *end || end == f->maxdel ||
		    o->send.max_delete < 0) {
			ps_err("%s: --max-delete needs a number, not '%s'",
			    cmd, f->maxdel);
			return PS_EUSAGE;
		}
	}
	if (f->bwlimit != NULL && ps_parse_rate(f->bwlimit, &o->bwlimit) != 0) {
		ps_err("%s: --bwlimit needs a rate such as 512K or 10M, not "
		    "'%s'", cmd, f->bwlimit);
		return PS_EUSAGE;
	}
	if (ps_cli_timeout(cmd, c->timeout, &o->timeout) != PS_OK)
		return PS_EUSAGE;
	o->timeout_set = c->timeout != NULL;
	o->send.itemize = f->itemize || f->dry ? stdout : NULL;
	o->send.verbose = ps_verbose > 0 && !f->json ? stdout : NULL;
	o->progress = f->noprog ? 0 : f->prog ? 1 : isatty(STDERR_FILENO);
	if (f->json || ps_quiet)
		o->progress = f->prog;
	if (f->json)
		o->send.itemize = NULL;
	o->remote_path = c->remote_path;
	return PS_OK;
}

#define COMMON_OPTS(c) \
	{ "rsh", 'e', POPT_ARG_STRING, &(c)->rsh, 0, \
	  "remote shell instead of ssh", "CMD" }, \
	{ "remote-path", '\0', POPT_ARG_STRING, &(c)->remote_path, 0, \
	  "patchsync on the server (default: patchsync)", "PROGRAM" }, \
	{ "timeout", '\0', POPT_ARG_STRING, &(c)->timeout, 0, \
	  "end a session whose peer is silent this long (default 120; " \
	  "0: never)", "SECONDS" }

static int
push_opts(int argc, const char **argv, struct ps_console_opts *o,
    struct common *c, struct push_flags *f, const char ***args, int *nargs,
    poptContext *ctxp)
{
	struct poptOption opts[] = {
		{ "dry-run", 'n', POPT_ARG_NONE, &f->dry, 0,
		  "print what would be sent and deleted; change nothing",
		  NULL },
		{ "delete", '\0', POPT_ARG_NONE, &f->del, 0,
		  "remove files the console does not have", NULL },
		{ "max-delete", '\0', POPT_ARG_STRING, &f->maxdel, 0,
		  "delete nothing (exit 3) when more than N files would go",
		  "N" },
		{ "no-wait", '\0', POPT_ARG_NONE, &f->nowait, 0,
		  "fail (exit 4) instead of waiting for a locked server",
		  NULL },
		{ "jobs", 'j', POPT_ARG_INT, &f->jobs, 0,
		  "servers pushed to at once", "N" },
		{ "checksum", '\0', POPT_ARG_NONE, &f->checksum, 0,
		  "read every file again instead of trusting the caches",
		  NULL },
		{ "whole-file", 'W', POPT_ARG_NONE, &f->whole, 0,
		  "send changed files whole", NULL },
		{ "no-whole-file", '\0', POPT_ARG_NONE, &f->nowhole, 0,
		  "send changed files as deltas", NULL },
		{ "bwlimit", '\0', POPT_ARG_STRING, &f->bwlimit, 0,
		  "bytes per second for each server (512K, 10M)", "RATE" },
		{ "progress", '\0', POPT_ARG_NONE, &f->prog, 0,
		  "show progress", NULL },
		{ "no-progress", '\0', POPT_ARG_NONE, &f->noprog, 0,
		  "do not show progress", NULL },
		{ "stats", '\0', POPT_ARG_NONE, &f->stats, 0,
		  "print transfer statistics per server", NULL },
		{ "json", '\0', POPT_ARG_NONE, &f->json, 0,
		  "print one JSON document describing the outcome", NULL },
		{ "itemize", 'i', POPT_ARG_NONE, &f->itemize, 0,
		  "one line per changed path", NULL },
		{ "all", '\0', POPT_ARG_NONE, &c->all, 0,
		  "every server in the state database", NULL },
		{ "component", 'C', POPT_ARG_STRING, &f->comp, 'C',
		  "only this component (repeatable)", "NAME" },
		COMMON_OPTS(c),
		{ "task", '\0', POPT_ARG_STRING | POPT_ARGFLAG_DOC_HIDDEN,
		  &c->task, 0, "run as task ID (schedule run, run-due)", "ID" },
		PS_OPTS_END
	};
	poptContext ctx;

	ctx = poptGetContext("patchsync push", argc, argv, opts, 0);
	*ctxp = ctx;
	poptSetOtherOptionHelp(ctx, "[SERVER|URL ...] | SRC_DIR URL...");
	if (ps_cli_parse_names(ctx, "push", &f->comp, &c->comp) != PS_OK)
		return PS_EUSAGE;
	if (f->whole && f->nowhole) {
		ps_err("push: --whole-file and --no-whole-file exclude each "
		    "other");
		return PS_EUSAGE;
	}
	/* -1: not given (the configuration's, else the default). */
	if (f->jobs != -1 && (f->jobs < 1 || f->jobs > PS_JOBS_MAX)) {
		ps_err("push: --jobs must be from 1 to %d", PS_JOBS_MAX);
		return PS_EUSAGE;
	}
	o->mode = PS_OPEN_PUSH;
	o->send.whole_file = f->whole ? 1 : f->nowhole ? 0 : -1;
	o->jobs = f->jobs == -1 ? 0 : f->jobs;
	*args = ps_cli_args(ctx, nargs);
	return transfer_opts("push", f, c, o);
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
		return ps_task_begin(conf, (int64_t)id, task);
	}
	if (conf->file == NULL)
		return PS_OK;
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
	rc = ps_task_manual(conf, (char *)servers.p, (char *)comps.p, task);
	buf_free(&servers);
	buf_free(&comps);
	return rc;
}

static int
push_results(struct ps_target *t, size_t nt, const struct push_flags *f,
    struct ps_task_ctx *task, int rc)
{
	json_t *doc;
	char *text;
	size_t i;

	fflush(stdout);
	for (i = 0; i < nt && f->stats; i++)
		print_stats(&t[i]);
	if (!f->json && task == NULL)
		return rc;
	doc = push_json(t, nt);
	if (f->json && ps_json_print(doc) != PS_OK && rc == PS_OK)
		rc = PS_EPARTIAL;
	ps_task_results(task, t, nt);
	if (task != NULL) {
		text = json_dumps(doc, JSON_COMPACT);
		ps_task_end(task, rc, text);
		free(text);
	}
	json_decref(doc);
	return rc;
}

int
cmd_push(int argc, const char **argv)
{
	struct ps_console_opts o;
	struct common c;
	struct push_flags f;
	struct ps_conf conf = { 0 };
	struct ps_source *src = NULL;
	struct ps_target *t = NULL;
	size_t nsrc = 0, nt = 0, i;
	poptContext ctx = NULL;
	const char **args;
	int nargs, rc;
	char *cache = NULL;
	struct ps_task_ctx *task = NULL;

	memset(&o, 0, sizeof(o));
	memset(&c, 0, sizeof(c));
	memset(&f, 0, sizeof(f));
	f.jobs = -1;
	ps_intr_init();
	if ((rc = push_opts(argc, argv, &o, &c, &f, &args, &nargs, &ctx)) !=
	    PS_OK)
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
	for (i = 0; i < nsrc; i++)
		if ((rc = ps_source_open(&src[i])) != PS_OK)
			goto out;
	if (o.send.delete && (rc = check_delete(src, nsrc)) != PS_OK)
		goto out;
	if ((rc = ps_console_overlap(src, nsrc, t, nt)) != PS_OK)
		goto out;
	/* Relays choose for themselves unless told. */
	o.whole_relay = o.send.whole_file == -1 ? PS_WHOLE_AUTO :
	    o.send.whole_file;
	if (o.send.whole_file == -1)	/* as rsync: whole for local ones */
		o.send.whole_file = ps_targets_local(t, nt);
	o.cache_dir = cache = ps_cli_cache_dir(&conf);
	o.delete_guard = o.send.delete;
	rc = ps_console_run(&o, src, nsrc, t, nt);
	if (!(o.flags & PS_OF_DRYRUN))
		ps_task_record_outcomes(&conf, t, nt, 0);
	rc = push_results(t, nt, &f, task, rc);
	task = NULL;
out:
	if (task != NULL)
		ps_task_end(task, rc, NULL);
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
report_text(const struct ps_target *t, size_t nt, int incomplete)
{
	size_t i, k, miss, old, extra;

	for (i = 0; i < nt; i++) {
		const struct ps_target *x = &t[i];

		if (unreachable(x)) {
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
			printf("%s: %s\n", x->name, report_status(x,
			    incomplete));
			continue;
		}
		printf("%s: %zu missing, %zu out-of-date", x->name, miss, old);
		if (extra)
			printf(", %zu extra", extra);
		if (incomplete)
			printf(" (incomplete: some console files could not "
			    "be read)");
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
report_json(const struct ps_target *t, size_t nt, int incomplete)
{
	json_t *servers = json_array();
	size_t i, k, sum[4] = { 0 }, current = 0, unreach = 0;

	for (i = 0; i < nt; i++) {
		const struct ps_target *x = &t[i];
		json_t *files = json_array(), *s;
		int down = unreachable(x);

		for (k = 0; k < x->nrows && !down; k++) {
			const struct ps_row *r = &x->rows[k];

			sum[r->state]++;
			json_array_append_new(files, ps_json_file_row(
			    r->component, r->state, r->console, r->server));
		}
		unreach += down;
		current += !down && x->nrows == 0 && !incomplete;
		s = json_pack("{s:s,s:s,s:o,s:s,s:o,s:o}", "server", x->name,
		    "url", x->url, "via", x->via != NULL ?
		    json_string(x->via->name) : json_null(),
		    "status", report_status(x, incomplete),
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

/* The report's exit status (SPEC 6): 4, then 3, then 1, then 0. */
static int
report_rc(const struct ps_target *t, size_t nt, int incomplete, int rc)
{
	size_t i;
	int worst = PS_OK;

	if (rc == PS_EINTR || rc == PS_EUSAGE)
		return rc;
	for (i = 0; i < nt; i++) {
		if (unreachable(&t[i]))
			worst = ps_worse(worst, PS_EPEER);
		else if (t[i].nrows > 0)
			worst = ps_worse(worst, PS_DIFFER);
	}
	if (incomplete && worst != PS_EPEER)
		worst = PS_EPARTIAL;
	return ps_worse(worst, rc == PS_EPARTIAL ? PS_OK : rc);
}

int
cmd_report(int argc, const char **argv)
{
	static const char *format, *comp;
	static int extra, json;
	struct common c;
	struct poptOption opts[] = {
		{ "extra", '\0', POPT_ARG_NONE, &extra, 0,
		  "also list files only the server has", NULL },
		{ "format", '\0', POPT_ARG_STRING, &format, 0,
		  "text (the default), json or csv", "FORMAT" },
		{ "json", '\0', POPT_ARG_NONE, &json, 0,
		  "the same as --format json", NULL },
		{ "all", '\0', POPT_ARG_NONE, &c.all, 0,
		  "every server in the state database", NULL },
		{ "component", 'C', POPT_ARG_STRING, &comp, 'C',
		  "component to compare (default: patches; 'all' for every "
		  "one)", "NAME" },
		COMMON_OPTS(&c),
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
	int nargs, rc, incomplete;
	char *cache = NULL;

	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	ps_intr_init();
	ctx = poptGetContext("patchsync report", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "[SERVER|URL ...] | SRC_DIR URL...");
	if ((rc = ps_cli_parse_names(ctx, "report", &comp, &c.comp)) != PS_OK)
		goto out;
	if (json && format != NULL && strcmp(format, "json") != 0) {
		ps_err("report: --json and --format %s say different things",
		    format);
		rc = PS_EUSAGE;
		goto out;
	}
	if (format == NULL)
		format = json ? "json" : "text";
	if (ps_format_parse(format, &fmt) != 0) {
		ps_err("report: unknown format '%s' (use text, json or csv)",
		    format);
		rc = PS_EUSAGE;
		goto out;
	}
	if ((rc = ps_cli_timeout("report", c.timeout, &o.timeout)) != PS_OK)
		goto out;
	o.timeout_set = c.timeout != NULL;
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
	for (i = 0; i < nsrc; i++)
		if ((rc = ps_source_open(&src[i])) != PS_OK)
			goto out;
	o.cache_dir = cache = ps_cli_cache_dir(&conf);
	rc = ps_console_run(&o, src, nsrc, t, nt);
	ps_task_record_outcomes(&conf, t, nt, 1);
	incomplete = console_incomplete(src, nsrc);
	if (fmt == PS_FMT_TEXT) {
		report_text(t, nt, incomplete);
	} else if (fmt == PS_FMT_CSV) {
		report_csv(t, nt);
	} else {
		json_t *doc = report_json(t, nt, incomplete);

		(void)ps_json_print(doc);
		json_decref(doc);
	}
	rc = report_rc(t, nt, incomplete, rc);
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

static void
lock_waiting(const char *why, void *arg)
{
	ps_warn("%s: %s", (const char *)arg, why);
}

static json_t *
pull_json(const char *component, const char *source,
    const struct ps_pull_result *r, int rc)
{
	return json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:f}",
	    "component", component, "source", source,
	    "status", rc == PS_OK ? "ok" : "failed",
	    "error", r->error != NULL ? json_string(r->error) : json_null(),
	    "files_transferred", (json_int_t)r->files,
	    "files_deleted", (json_int_t)r->deleted,
	    "bytes_sent", (json_int_t)r->bytes_sent,
	    "bytes_received", (json_int_t)r->bytes_received,
	    "seconds", r->seconds);
}

/* Refresh one component from its source; its result into ARR (JSON). */
static int
refresh_one(const struct ps_conf *conf, const struct ps_component *x,
    const struct common *c, const struct push_flags *f,
    const struct ps_console_opts *co, json_t *arr)
{
	struct ps_pull_opts po;
	struct ps_pull_result res;
	struct ps_target t;
	int rc, lockfd = -1;

	memset(&t, 0, sizeof(t));
	memset(&res, 0, sizeof(res));
	if ((rc = resolve(conf, x->source, 0, &t)) != PS_OK)
		goto out;
	rc = ps_download_lock_exclusive(conf, x->name, &lockfd,
	    lock_waiting, (void *)x->name);
	if (rc != PS_OK)
		goto out;
	memset(&po, 0, sizeof(po));
	po.component = x->name;
	po.path = x->path;
	po.dest = x->dest;
	po.source = x->source;
	po.url = t.url;
	po.rsh = c->rsh != NULL ? c->rsh : t.rsh;
	po.remote_path = c->remote_path != NULL ? c->remote_path :
	    t.remote_path;
	po.flags = co->flags | (f->del ? PS_OF_DELETE : 0);
	po.timeout = co->timeout;
	po.itemize = co->send.itemize;
	po.progress = co->progress;
	rc = ps_console_pull(&po, &res);
	if (f->stats)
		printf("%s: %" PRIu64 " files received, %" PRIu64 " deleted "
		    "from %s; sent %" PRIu64 " bytes, received %" PRIu64
		    " bytes in %.2f s%s\n", x->name, res.files, res.deleted,
		    x->source, res.bytes_sent, res.bytes_received,
		    res.seconds, rc == PS_OK ? "" : " (failed)");
	else if (rc == PS_OK && !f->json)
		ps_info(1, "refresh: %s: %" PRIu64 " files received, %"
		    PRIu64 " deleted from %s", x->name, res.files,
		    res.deleted, x->source);
out:
	if (arr != NULL)
		json_array_append_new(arr, pull_json(x->name, x->source, &res,
		    rc));
	if (lockfd >= 0)
		close(lockfd);
	free(res.error);
	ps_target_free(&t);
	return rc;
}

/* -C names that cannot be refreshed are a usage error, before anything. */
static int
check_refresh_names(const struct ps_conf *conf, const struct common *c)
{
	const struct ps_component *x;
	int k;

	for (k = 0; k < c->comp.n; k++) {
		x = ps_conf_component(conf, c->comp.v[k]);
		if (x == NULL || x->source == NULL) {
			ps_err("refresh: %s component '%s'%s", x == NULL ?
			    "unknown" : "no source for", c->comp.v[k],
			    x == NULL ? "" : " (set source = in its section)");
			return PS_EUSAGE;
		}
	}
	return PS_OK;
}

int
cmd_refresh(int argc, const char **argv)
{
	struct push_flags f;
	struct common c;
	struct poptOption opts[] = {
		{ "component", 'C', POPT_ARG_STRING, &f.comp, 'C',
		  "only this component (repeatable)", "NAME" },
		{ "delete", '\0', POPT_ARG_NONE, &f.del, 0,
		  "remove console files the source does not have", NULL },
		{ "dry-run", 'n', POPT_ARG_NONE, &f.dry, 0,
		  "print what would change; change nothing", NULL },
		{ "checksum", '\0', POPT_ARG_NONE, &f.checksum, 0,
		  "read every file again instead of trusting the caches",
		  NULL },
		{ "no-wait", '\0', POPT_ARG_NONE, &f.nowait, 0,
		  "fail instead of waiting for a locked source", NULL },
		{ "stats", '\0', POPT_ARG_NONE, &f.stats, 0,
		  "print transfer statistics per component", NULL },
		{ "json", '\0', POPT_ARG_NONE, &f.json, 0,
		  "print one JSON document describing the outcome", NULL },
		{ "itemize", 'i', POPT_ARG_NONE, &f.itemize, 0,
		  "one line per changed path", NULL },
		{ "progress", '\0', POPT_ARG_NONE, &f.prog, 0,
		  "show progress (default on a terminal)", NULL },
		{ "no-progress", '\0', POPT_ARG_NONE, &f.noprog, 0,
		  "do not show progress", NULL },
		COMMON_OPTS(&c),
		PS_OPTS_END
	};
	struct ps_console_opts co;
	struct ps_conf conf = { 0 };
	json_t *arr = NULL;
	poptContext ctx;
	const char **args;
	size_t i;
	int nargs, rc, k, worst = PS_OK, any = 0;

	memset(&c, 0, sizeof(c));
	memset(&f, 0, sizeof(f));
	f.jobs = -1;
	memset(&co, 0, sizeof(co));
	ps_intr_init();
	ctx = poptGetContext("patchsync refresh", argc, argv, opts, 0);
	if ((rc = ps_cli_parse_names(ctx, "refresh", &f.comp, &c.comp)) !=
	    PS_OK)
		goto out;
	args = ps_cli_args(ctx, &nargs);
	if (nargs != 0) {
		ps_err("refresh: unexpected argument '%s' (components come "
		    "from -C and their source from the configuration)",
		    args[0]);
		rc = PS_EUSAGE;
		goto out;
	}
	if ((rc = transfer_opts("refresh", &f, &c, &co)) != PS_OK ||
	    (rc = ps_cli_conf(&conf, 1)) != PS_OK ||
	    (rc = check_refresh_names(&conf, &c)) != PS_OK)
		goto out;
	if (f.json)
		arr = json_array();
	for (i = 0; i < conf.ncomp && ps_intr_signal() == 0; i++) {
		const struct ps_component *x = &conf.comp[i];
		int want = c.comp.n == 0 && x->source != NULL;

		for (k = 0; k < c.comp.n; k++)
			want |= strcmp(c.comp.v[k], x->name) == 0;
		if (!want)
			continue;
		any = 1;
		worst = ps_worse(worst, refresh_one(&conf, x, &c, &f, &co,
		    arr));
	}
	if (!any) {
		ps_err("refresh: no component has a source in %s", conf.file);
		worst = PS_EUSAGE;
	}
	if (arr != NULL) {
		json_t *doc = json_pack("{s:o}", "components", arr);

		if (ps_json_print(doc) != PS_OK && worst == PS_OK)
			worst = PS_EPARTIAL;
		json_decref(doc);
	}
	rc = ps_intr_signal() != 0 ? PS_EINTR : worst;
out:
	free(c.comp.v);
	ps_conf_free(&conf);
	poptFreeContext(ctx);
	return rc;
}
