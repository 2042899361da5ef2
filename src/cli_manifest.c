/*
 * cli_manifest.c — `patchsync manifest build|show|diff`.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <popt.h>

#include "cli.h"
#include "manifest.h"
#include "output.h"
#include "ps.h"

static int
mf_build(int argc, const char **argv)
{
	const char *out = NULL;
	int threads = 0;
	struct poptOption opts[] = {
		{ "output", 'o', POPT_ARG_STRING, &out, 0,
		  "write the manifest to FILE (default: standard output)",
		  "FILE" },
		{ "threads", '\0', POPT_ARG_INT, &threads, 0,
		  "hashing threads (default: one per CPU)", "N" },
		PS_OPTS_END
	};
	struct ps_build_opts bo = { 0 };
	struct ps_manifest m = { 0 };
	poptContext ctx;
	const char **args;
	int n, rc;

	ctx = poptGetContext("patchsync manifest build", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "DIR [-o FILE]");
	if ((rc = ps_cli_parse(ctx, "manifest build")) != PS_OK)
		goto done;
	args = ps_cli_args(ctx, &n);
	if (n != 1) {
		ps_err("manifest build: expected one directory "
		    "(usage: patchsync manifest build DIR [-o FILE])");
		rc = PS_EUSAGE;
		goto done;
	}
	if (threads < 0 || threads > 256) {
		ps_err("manifest build: --threads must be from 1 to 256");
		rc = PS_EUSAGE;
		goto done;
	}
	if ((out == NULL || strcmp(out, "-") == 0) && isatty(STDOUT_FILENO)) {
		ps_err("manifest build: refusing to write a binary manifest "
		    "to a terminal (use -o FILE)");
		rc = PS_EUSAGE;
		goto done;
	}
	bo.threads = threads;
	/* Both sums: the output may describe a server for a bundle. */
	bo.sums = PS_SUMS_STRONG | PS_SUMS_WEAK;
	rc = ps_manifest_build(args[0], &bo, &m);
	if (rc == PS_EPARTIAL) {
		/* A manifest that leaves a file out would be believed. */
		ps_err("manifest build: %s: some files could not be read; "
		    "no manifest written", args[0]);
	} else if (rc == PS_OK) {
		rc = ps_manifest_save(out, &m, 0);
	}
done:
	ps_manifest_free(&m);
	poptFreeContext(ctx);
	return rc;
}

static void
show_entry(const struct ps_entry *e)
{
	char *path = ps_escape(e->path, e->path_len);
	char hex[33];

	if (e->type == PS_FT_DIR) {
		printf("d %04" PRIo32 " - %" PRId64 ".%09" PRIu32 " - - %s\n",
		    e->mode, e->mtime_sec, e->mtime_nsec, path);
	} else {
		ps_hex(e->hash, sizeof(e->hash), hex);
		printf("f %04" PRIo32 " %" PRIu64 " %" PRId64 ".%09" PRIu32
		    " %s %" PRIu64 " %s\n", e->mode, e->size, e->mtime_sec,
		    e->mtime_nsec, hex, (uint64_t)1 << e->block_shift, path);
	}
	free(path);
}

static int
mf_show(int argc, const char **argv)
{
	struct poptOption opts[] = {
		PS_OPTS_END
	};
	struct ps_manifest m = { 0 };
	poptContext ctx;
	const char **args;
	size_t i;
	int n, rc;

	ctx = poptGetContext("patchsync manifest show", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "FILE");
	if ((rc = ps_cli_parse(ctx, "manifest show")) != PS_OK)
		goto done;
	args = ps_cli_args(ctx, &n);
	if (n != 1) {
		ps_err("manifest show: expected one manifest file "
		    "(usage: patchsync manifest show FILE)");
		rc = PS_EUSAGE;
		goto done;
	}
	if ((rc = ps_manifest_load(args[0], &m)) != PS_OK)
		goto done;
	for (i = 0; i < m.n; i++)
		show_entry(&m.e[i]);
done:
	ps_manifest_free(&m);
	poptFreeContext(ctx);
	return rc;
}

/* A manifest from a manifest file, or built from a directory. */
static int
load_side(const char *arg, struct ps_manifest *m)
{
	struct stat st;
	struct ps_build_opts bo = { 0 };
	int rc;

	if (strcmp(arg, "-") != 0 && stat(arg, &st) == 0 &&
	    S_ISDIR(st.st_mode)) {
		rc = ps_manifest_build(arg, &bo, m);
		if (rc == PS_EPARTIAL)
			ps_err("manifest diff: %s: some files could not be "
			    "read; not compared", arg);
		return rc;
	}
	return ps_manifest_load(arg, m);
}

struct diff_out {
	enum ps_format fmt;
	json_t *files;
	size_t count[3];
};

static void
diff_row(enum ps_diff_state st, const struct ps_entry *o,
    const struct ps_entry *n, void *arg)
{
	struct diff_out *d = arg;

	d->count[st]++;
	switch (d->fmt) {
	case PS_FMT_TEXT:
		ps_text_row(stdout, NULL, st, o != NULL ? o : n);
		break;
	case PS_FMT_CSV:
		ps_csv_row(stdout, NULL, NULL, st, o, n);
		break;
	case PS_FMT_JSON:
		json_array_append_new(d->files,
		    ps_json_file_row(NULL, st, o, n));
		break;
	}
}

static int
mf_diff(int argc, const char **argv)
{
	const char *format = "text";
	int extra = 0;
	struct poptOption opts[] = {
		{ "extra", '\0', POPT_ARG_NONE, &extra, 0,
		  "also list files only NEW has", NULL },
		{ "format", '\0', POPT_ARG_STRING, &format, 0,
		  "output format: text, json or csv", "FORMAT" },
		PS_OPTS_END
	};
	struct ps_manifest a = { 0 }, b = { 0 };
	struct diff_out d = { 0 };
	poptContext ctx;
	const char **args;
	size_t diffs;
	int n, rc;

	ctx = poptGetContext("patchsync manifest diff", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "OLD NEW [--extra] [--format FORMAT]");
	if ((rc = ps_cli_parse(ctx, "manifest diff")) != PS_OK)
		goto done;
	args = ps_cli_args(ctx, &n);
	if (n != 2) {
		ps_err("manifest diff: expected OLD and NEW (usage: "
		    "patchsync manifest diff OLD NEW [--extra] "
		    "[--format text|json|csv])");
		rc = PS_EUSAGE;
		goto done;
	}
	if (ps_format_parse(format, &d.fmt) != 0) {
		ps_err("manifest diff: unknown format '%s' "
		    "(use text, json or csv)", format);
		rc = PS_EUSAGE;
		goto done;
	}
	if ((rc = load_side(args[0], &a)) != PS_OK ||
	    (rc = load_side(args[1], &b)) != PS_OK)
		goto done;
	if (d.fmt == PS_FMT_CSV)
		ps_csv_header(stdout, 0);
	if (d.fmt == PS_FMT_JSON)
		d.files = json_array();
	diffs = ps_manifest_diff(&a, &b, extra, diff_row, &d);
	if (d.fmt == PS_FMT_JSON) {
		json_t *doc = json_pack("{s:o,s:{s:I,s:I,s:I}}",
		    "files", d.files, "summary",
		    "missing", (json_int_t)d.count[PS_D_MISSING],
		    "out_of_date", (json_int_t)d.count[PS_D_OUTDATED],
		    "extra", (json_int_t)d.count[PS_D_EXTRA]);

		rc = ps_json_print(doc);
		json_decref(doc);
		if (rc != PS_OK)
			goto done;
	}
	rc = diffs > 0 ? PS_DIFFER : PS_OK;
done:
	ps_manifest_free(&a);
	ps_manifest_free(&b);
	poptFreeContext(ctx);
	return rc;
}

int
cmd_manifest(int argc, const char **argv)
{
	static const struct ps_subcmd sub[] = {
		{ "build", mf_build },
		{ "show", mf_show },
		{ "diff", mf_diff },
	};

	return ps_cli_dispatch("manifest", sub, sizeof(sub) / sizeof(sub[0]),
	    "Usage: patchsync manifest build DIR [-o FILE]\n"
	    "       patchsync manifest show FILE\n"
	    "       patchsync manifest diff OLD NEW [--extra] "
	    "[--format text|json|csv]\n\n"
	    "OLD and NEW are manifest files or directories. diff "
	    "exits 0 when nothing\ndiffers, 1 when something does. "
	    "See patchsync-manifest(5).\n", argc, argv);
}
