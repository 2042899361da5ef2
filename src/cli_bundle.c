/*
 * cli_bundle.c — `patchsync bundle create|verify|apply|show`: options,
 * the components and the server state a bundle is made against, and
 * what happened as text or JSON. The work is in bundle_*.c.
 */
#include <sys/stat.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <popt.h>

#include "bundle.h"
#include "cli.h"
#include "msg.h"
#include "output.h"
#include "session.h"
#include "task.h"
#include "url.h"


/* ---- create ---- */

struct create_args {
	struct ps_names comp;
	const char *comp1;
	const char *against;
	const char *output;
	const char *rsh;
	const char *remote_path;
	const char *timeout;
	int full;
	int checksum;
};

/* The components: -C NAME... (default all), or SRC_DIR without one. */
static int
create_sources(const struct ps_conf *conf, const struct create_args *c,
    const char **args, int nargs, struct ps_bundle_src **out, size_t *n)
{
	struct ps_bundle_src *s;
	size_t i;
	int k, want;

	if (conf->file == NULL) {
		if (c->comp.n > 0) {
			ps_err("bundle create: -C needs a configuration file "
			    "with [component] sections");
			return PS_EUSAGE;
		}
		if (nargs != 1) {
			ps_err("bundle create: expected one SRC_DIR (or a "
			    "configuration file; see patchsync bundle create "
			    "--help)");
			return PS_EUSAGE;
		}
		s = xcalloc(1, sizeof(*s));
		s->dest = "";
		s->path = args[0];
		*out = s;
		*n = 1;
		return PS_OK;
	}
	if (nargs > 0) {
		ps_err("bundle create: unexpected argument '%s' (with a "
		    "configuration the components come from it; -C NAME "
		    "picks some)", args[0]);
		return PS_EUSAGE;
	}
	for (k = 0; k < c->comp.n; k++)
		if (ps_conf_component(conf, c->comp.v[k]) == NULL) {
			ps_err("unknown component '%s' (not in %s)",
			    c->comp.v[k], conf->file);
			return PS_EUSAGE;
		}
	s = xcalloc(conf->ncomp + 1, sizeof(*s));
	*n = 0;
	for (i = 0; i < conf->ncomp; i++) {
		want = c->comp.n == 0;
		for (k = 0; k < c->comp.n; k++)
			want |= strcmp(c->comp.v[k], conf->comp[i].name) == 0;
		if (!want)
			continue;
		s[*n].name = conf->comp[i].name;
		s[*n].dest = conf->comp[i].dest;
		s[*n].path = conf->comp[i].path;
		(*n)++;
	}
	if (*n == 0) {
		ps_err("no components in %s", conf->file);
		free(s);
		return PS_EUSAGE;
	}
	*out = s;
	return PS_OK;
}


/* Looks like a URL (or a directory path) rather than a server name? */
static int
is_url(const char *s)
{
	return strchr(s, '/') != NULL || strchr(s, ':') != NULL ||
	    strcmp(s, ".") == 0;
}

/* --against SERVER|URL: the server's manifests, read live. */
static int
against_live(const struct ps_conf *conf, const struct create_args *c,
    struct ps_bundle_src *src, size_t n)
{
	struct ps_server_conn sc;
	struct ps_url u;
	char err[256];
	unsigned timeout;
	int rc;

	memset(&sc, 0, sizeof(sc));
	sc.timeout = -1;
	rc = ps_cli_timeout("bundle create", c->timeout, &timeout);
	if (rc != PS_OK)
		return rc;
	if (is_url(c->against)) {
		sc.url = xstrdup(c->against);
	} else if ((rc = ps_task_resolve_server(conf, c->against, 0, &sc)) !=
	    PS_OK) {
		return rc;
	}
	if (ps_url_parse(sc.url, &u, err, sizeof(err)) != 0) {
		ps_err("bundle create: --against %s: %s", c->against, err);
		ps_server_conn_free(&sc);
		return PS_EUSAGE;
	}
	ps_url_free(&u);
	if (c->timeout == NULL && sc.timeout >= 0)
		timeout = (unsigned)sc.timeout;
	rc = ps_bundle_fetch_against(c->against, sc.url, c->rsh != NULL ?
	    c->rsh : sc.rsh, c->remote_path != NULL ? c->remote_path :
	    sc.remote_path, timeout, src, n);
	ps_server_conn_free(&sc);
	return rc;
}

/* The server state: a manifest file, a server, or a URL. */
static int
against(const struct ps_conf *conf, const struct create_args *c,
    struct ps_bundle_src *src, size_t n)
{
	const struct ps_entry *d;
	struct ps_manifest m;
	struct stat st;
	int rc;

	if (c->full)
		return PS_OK;
	if (stat(c->against, &st) == 0 && S_ISREG(st.st_mode)) {
		if ((rc = ps_manifest_load(c->against, &m)) != PS_OK)
			return rc;
		d = ps_manifest_find(&m, src[0].dest, strlen(src[0].dest));
		if (n == 1 && *src[0].dest != '\0' && d != NULL &&
		    d->type == PS_FT_DIR)
			ps_warn("bundle create: %s has a directory %s: with "
			    "one component, --against takes the manifest of "
			    "ROOT/%s, not of ROOT", c->against, src[0].dest,
			    src[0].dest);
		ps_bundle_split_against(&m, n > 1, src, n);
		return PS_OK;
	}
	return against_live(conf, c, src, n);
}

static void
create_stats(const char *file, const struct ps_bundle_create_stats *st)
{
	if (ps_verbose == 0)
		return;
	printf("%s: %" PRIu64 " files whole (%" PRIu64 " bytes), %" PRIu64
	    " deltas (%" PRIu64 " bytes for %" PRIu64 "), %" PRIu64
	    " files current on the server\n", file, st->files,
	    st->file_bytes, st->deltas, st->delta_bytes, st->delta_target,
	    st->current);
}

static int
bundle_create(int argc, const char **argv)
{
	struct create_args c;
	struct poptOption opts[] = {
		{ "component", 'C', POPT_ARG_STRING, &c.comp1, 'C',
		  "only this component (repeatable; default: all)", "NAME" },
		{ "against", '\0', POPT_ARG_STRING, &c.against, 0,
		  "the server's state: a manifest from `manifest build`, a "
		  "server name or a URL", "FILE|SERVER|URL" },
		{ "full", '\0', POPT_ARG_NONE, &c.full, 0,
		  "every file whole: needs nothing on the server", NULL },
		{ "output", 'o', POPT_ARG_STRING, &c.output, 0,
		  "the bundle to write ('-': standard output)", "FILE" },
		{ "checksum", '\0', POPT_ARG_NONE, &c.checksum, 0,
		  "read every console file again instead of trusting the "
		  "cache", NULL },
		{ "rsh", 'e', POPT_ARG_STRING, &c.rsh, 0,
		  "remote shell instead of ssh (--against URL)", "CMD" },
		{ "remote-path", '\0', POPT_ARG_STRING, &c.remote_path, 0,
		  "patchsync on the server (default: patchsync)", "PROGRAM" },
		{ "timeout", '\0', POPT_ARG_STRING, &c.timeout, 0,
		  "end a session whose peer is silent this long (default "
		  "120; 0: never)", "SECONDS" },
		PS_OPTS_END
	};
	struct ps_bundle_create_opts o;
	struct ps_bundle_create_stats st;
	struct ps_conf conf = { 0 };
	struct ps_bundle_src *src = NULL;
	size_t n = 0, i;
	poptContext ctx;
	const char **args;
	char *cache = NULL;
	int nargs, rc;

	memset(&c, 0, sizeof(c));
	ps_intr_init();
	ctx = poptGetContext("patchsync bundle create", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "[SRC_DIR] [-C NAME]... --against X|--full "
	    "-o FILE");
	if ((rc = ps_cli_parse_names(ctx, "bundle create", &c.comp1,
	    &c.comp)) != PS_OK)
		goto out;
	args = ps_cli_args(ctx, &nargs);
	rc = PS_EUSAGE;
	if (c.full == (c.against != NULL)) {
		ps_err("bundle create: give --against FILE|SERVER|URL (the "
		    "server's state) or --full, one of them");
		goto out;
	}
	if (c.output == NULL) {
		ps_err("bundle create: -o FILE is needed (where the bundle "
		    "goes)");
		goto out;
	}
	if ((rc = ps_cli_conf(&conf, 0)) != PS_OK ||
	    (rc = create_sources(&conf, &c, args, nargs, &src, &n)) != PS_OK)
		goto out;
	if ((rc = against(&conf, &c, src, n)) != PS_OK)
		goto out;
	memset(&o, 0, sizeof(o));
	o.output = c.output;
	o.console = conf.console_name;
	o.src = src;
	o.nsrc = n;
	o.full = c.full;
	o.cache_dir = cache = ps_cli_cache_dir(&conf);
	o.checksum = c.checksum;
	rc = ps_bundle_create(&o, &st);
	if (rc == PS_OK)
		create_stats(c.output, &st);
out:
	for (i = 0; i < n; i++)
		ps_manifest_free(&src[i].against);
	free(src);
	free(cache);
	free(c.comp.v);
	ps_conf_free(&conf);
	poptFreeContext(ctx);
	return rc;
}

/* ---- verify, apply ---- */

static int
bundle_verify(int argc, const char **argv)
{
	struct poptOption opts[] = {
		PS_OPTS_END
	};
	struct ps_bundle_apply_opts o;
	struct ps_bundle_apply_result r;
	poptContext ctx;
	const char **args;
	char *e;
	int n, rc;

	ps_intr_init();
	ctx = poptGetContext("patchsync bundle verify", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "FILE");
	if ((rc = ps_cli_parse(ctx, "bundle verify")) != PS_OK)
		goto out;
	args = ps_cli_args(ctx, &n);
	if (n != 1) {
		ps_err("bundle verify: expected one bundle (usage: patchsync "
		    "bundle verify FILE)");
		rc = PS_EUSAGE;
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.file = args[0];
	rc = ps_bundle_apply(&o, &r);
	if (rc == PS_OK && !ps_quiet) {
		e = ps_escape(args[0], strlen(args[0]));
		printf("%s: ok (%" PRIu64 " members verified)\n", e,
		    r.members);
		free(e);
	}
	free(r.error);
out:
	poptFreeContext(ctx);
	return rc;
}

static json_t *
apply_json(const char *file, const char *root,
    const struct ps_bundle_apply_result *r, int rc)
{
	int esc;

	return json_pack("{s:o,s:o,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:f}",
	    "bundle", ps_json_path(file, strlen(file), &esc),
	    "root", ps_json_path(root, strlen(root), &esc),
	    "status", rc == PS_OK ? "ok" : "failed",
	    "error", r->error ? json_string(r->error) : json_null(),
	    "files_transferred", (json_int_t)r->files,
	    "files_deleted", (json_int_t)r->deleted,
	    "files_skipped", (json_int_t)r->skipped,
	    "metadata_only", (json_int_t)r->meta,
	    "members_verified", (json_int_t)r->members,
	    "bytes_read", (json_int_t)r->bytes_read,
	    "seconds", r->seconds);
}

static int
bundle_apply(int argc, const char **argv)
{
	int del = 0, dry = 0, item = 0, json = 0;
	struct poptOption opts[] = {
		{ "delete", '\0', POPT_ARG_NONE, &del, 0,
		  "remove files the console does not have", NULL },
		{ "dry-run", 'n', POPT_ARG_NONE, &dry, 0,
		  "verify, and print what would change; change nothing",
		  NULL },
		{ "itemize", 'i', POPT_ARG_NONE, &item, 0,
		  "one line per changed path", NULL },
		{ "json", '\0', POPT_ARG_NONE, &json, 0,
		  "print one JSON document describing the outcome", NULL },
		PS_OPTS_END
	};
	struct ps_bundle_apply_opts o;
	struct ps_bundle_apply_result r;
	poptContext ctx;
	const char **args;
	int n, rc;

	memset(&r, 0, sizeof(r));
	ps_intr_init();
	ctx = poptGetContext("patchsync bundle apply", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "FILE ROOT [--delete] [-n] [-i] "
	    "[--json]");
	if ((rc = ps_cli_parse(ctx, "bundle apply")) != PS_OK)
		goto out;
	args = ps_cli_args(ctx, &n);
	if (n != 2) {
		ps_err("bundle apply: expected a bundle and the server's root "
		    "(usage: patchsync bundle apply FILE ROOT)");
		rc = PS_EUSAGE;
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.file = args[0];
	o.root = args[1];
	o.delete = del;
	o.dry_run = dry;
	o.itemize = (item || dry) && !json ? stdout : NULL;
	rc = ps_bundle_apply(&o, &r);
	if (json) {
		json_t *doc = apply_json(args[0], args[1], &r, rc);

		if (ps_json_print(doc) != PS_OK && rc == PS_OK)
			rc = PS_EPARTIAL;
		json_decref(doc);
	}
	free(r.error);
out:
	poptFreeContext(ctx);
	return rc;
}

/* ---- show ---- */

static void
show_text(const char *file, const struct ps_bindex *x)
{
	uint64_t nf, nd, bf, bd;
	char hex[33], when[64], *e;
	struct tm tm;
	time_t t = (time_t)x->created;
	size_t c, i;

	e = ps_escape(file, strlen(file));
	printf("bundle:   %s\n", e);
	free(e);
	e = ps_escape(x->console, strlen(x->console));
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(when, sizeof(when), "%" PRId64, x->created);
	printf("format:   %s %u\nconsole:  %s\ncreated:  %s\nneeds:    %s\n",
	    PS_BUNDLE_FORMAT, x->version, e, when, x->full ? "nothing (a "
	    "full bundle)" : "the server state named below, for its deltas");
	free(e);
	for (c = 0; c < x->ncomp; c++) {
		const struct ps_bcomp *k = &x->comp[c];

		nf = nd = bf = bd = 0;
		for (i = x->ncomp; i < x->nm; i++) {
			if (x->m[i].comp != c)
				continue;
			if (x->m[i].kind == PS_BK_FILE) {
				nf++;
				bf += x->m[i].size;
			} else {
				nd++;
				bd += x->m[i].size;
			}
		}
		e = ps_escape(k->dest, strlen(k->dest));
		printf("component %s -> %s%s\n", k->name ? k->name : "(a "
		    "directory)", *k->dest ? e : "ROOT", *k->dest ? "/" : "");
		free(e);
		if (k->have_against) {
			ps_hex(k->against, 16, hex);
			printf("  server state %s\n", hex);
		}
		printf("  %" PRIu64 " files whole (%" PRIu64 " bytes), %" PRIu64
		    " deltas (%" PRIu64 " bytes)\n", nf, bf, nd, bd);
	}
	for (i = 0; i < x->nm && ps_verbose > 0; i++) {
		size_t len;
		char *name = ps_bundle_member_name(x, &x->m[i], &len);

		e = ps_escape(name, len);
		printf("%-8s %12" PRIu64 "  %s\n", x->m[i].kind ==
		    PS_BK_MANIFEST ? "manifest" : x->m[i].kind == PS_BK_FILE ?
		    "file" : "delta", x->m[i].size, e);
		free(e);
		free(name);
	}
}

static json_t *
show_json(const struct ps_bindex *x)
{
	json_t *comps = json_array(), *members = json_array();
	char hex[33];
	size_t c, i;
	int esc;

	for (c = 0; c < x->ncomp; c++) {
		const struct ps_bcomp *k = &x->comp[c];

		ps_hex(k->against, 16, hex);
		json_array_append_new(comps, json_pack("{s:o,s:o,s:o}",
		    "component", k->name ? json_string(k->name) : json_null(),
		    "dest", ps_json_path(k->dest, strlen(k->dest), &esc),
		    "against", k->have_against ?
		    json_string(hex) : json_null()));
	}
	for (i = 0; i < x->nm; i++) {
		size_t len;
		char *name = ps_bundle_member_name(x, &x->m[i], &len);

		ps_hex(x->m[i].hash, 16, hex);
		json_array_append_new(members, json_pack("{s:o,s:s,s:I,s:I,"
		    "s:s}", "name", ps_json_path(name, len, &esc), "kind",
		    x->m[i].kind == PS_BK_MANIFEST ? "manifest" :
		    x->m[i].kind == PS_BK_FILE ? "file" : "delta",
		    "component", (json_int_t)x->m[i].comp,
		    "size", (json_int_t)x->m[i].size, "hash", hex));
		free(name);
	}
	return json_pack("{s:s,s:i,s:o,s:I,s:b,s:o,s:o}",
	    "format", PS_BUNDLE_FORMAT, "version", (int)x->version,
	    "console", ps_json_path(x->console, strlen(x->console), &esc),
	    "created", (json_int_t)x->created,
	    "full", x->full, "components", comps, "members", members);
}

static int
bundle_show(int argc, const char **argv)
{
	int json = 0;
	struct poptOption opts[] = {
		{ "json", '\0', POPT_ARG_NONE, &json, 0,
		  "the index as one JSON document", NULL },
		PS_OPTS_END
	};
	struct ps_bindex x;
	poptContext ctx;
	const char **args;
	int n, rc;

	memset(&x, 0, sizeof(x));
	ps_intr_init();
	ctx = poptGetContext("patchsync bundle show", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "FILE [--json]");
	if ((rc = ps_cli_parse(ctx, "bundle show")) != PS_OK)
		goto out;
	args = ps_cli_args(ctx, &n);
	if (n != 1) {
		ps_err("bundle show: expected one bundle (usage: patchsync "
		    "bundle show FILE)");
		rc = PS_EUSAGE;
		goto out;
	}
	if ((rc = ps_bundle_read_index(args[0], &x)) != PS_OK)
		goto out;
	if (json) {
		json_t *doc = show_json(&x);

		rc = ps_json_print(doc);
		json_decref(doc);
	} else {
		show_text(args[0], &x);
	}
out:
	ps_bindex_free(&x);
	poptFreeContext(ctx);
	return rc;
}

int
cmd_bundle(int argc, const char **argv)
{
	static const struct ps_subcmd sub[] = {
		{ "create", bundle_create },
		{ "verify", bundle_verify },
		{ "apply", bundle_apply },
		{ "show", bundle_show },
	};

	return ps_cli_dispatch("bundle", sub, sizeof(sub) / sizeof(sub[0]),
	    "Usage: patchsync bundle create [-C NAME]... "
	    "--against FILE|SERVER|URL -o FILE\n"
	    "       patchsync bundle create [-C NAME]... --full "
	    "-o FILE\n"
	    "       patchsync bundle verify FILE\n"
	    "       patchsync bundle apply FILE ROOT [--delete] "
	    "[-n] [-i] [--json]\n"
	    "       patchsync bundle show FILE [--json]\n\n"
	    "Offline bundles for distribution servers the console "
	    "cannot reach: a pax tar,\nzstd-compressed, of the "
	    "console's manifests, the files the server lacks and\n"
	    "deltas against its copies. Without a configuration, "
	    "`bundle create SRC_DIR`\nbundles one directory. See "
	    "patchsync-bundle(5).\n", argc, argv);
}
