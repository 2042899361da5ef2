/*
 * main.c — patchsync's entry point: global options, then one command.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <popt.h>

#include "cli.h"
#include "delta.h"
#include "ps.h"
#include "version.h"

struct ps_global ps_g;

struct command {
	const char *name;
	int (*run)(int argc, const char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "push", cmd_push,
	  "bring servers up to date with the console, sending only changes" },
	{ "report", cmd_report,
	  "the File Status Report: what each server is missing" },
	{ "refresh", cmd_refresh,
	  "pull components from their source into the console" },
	{ "serve", cmd_serve,
	  "the server role, run by ssh (serve --stdio ROOT)" },
	{ "manifest", cmd_manifest,
	  "build, show and compare block-checksum manifests" },
	{ "bundle", cmd_bundle,
	  "offline bundles: create, verify, apply, show" },
	{ "config", cmd_config,
	  "check the configuration file, or show what was understood" },
	{ "server", cmd_server,
	  "add, list, show, remove and check distribution servers" },
	{ "schedule", cmd_schedule,
	  "scheduled pushes: add, list, edit, delete, run, run-due" },
	{ "task", cmd_task,
	  "list pushes run as tasks, cancel one" },
	{ "history", cmd_history,
	  "the event history of tasks (--follow to stream)" },
	{ "status", cmd_status,
	  "one row per server: current, behind, failed, unreachable" },
	{ "download", cmd_download,
	  "run a downloader while holding a component's download lock" },
	{ NULL, NULL, NULL }
};

static void
usage(FILE *fp)
{
	const struct command *c;

	fprintf(fp,
	    "Usage: patchsync [-c FILE] [-v] [-q] COMMAND [options] [args]\n"
	    "       patchsync --version | --help\n\n"
	    "Keeps distribution servers current with a console's patches.\n\n"
	    "Commands:\n");
	for (c = commands; c->name != NULL; c++)
		fprintf(fp, "  %-10s %s\n", c->name, c->summary);
	fprintf(fp,
	    "\nGlobal options:\n"
	    "  -c, --config=FILE   configuration file (default: "
	    "$PATCHSYNC_CONFIG, else\n"
	    "                      " PS_CONF_DEFAULT ")\n"
	    "  -v, --verbose       more messages (repeat for more)\n"
	    "  -q, --quiet         errors only\n"
	    "  -h, --help          this help; `patchsync COMMAND --help` for "
	    "a command's\n"
	    "      --version       print the version, and the libraries'\n\n"
	    "See patchsync(1).\n");
}

int
main(int argc, const char **argv)
{
	const struct command *c;
	int show_version = 0, show_help = 0;
	struct poptOption opts[] = {
		{ NULL, '\0', POPT_ARG_INCLUDE_TABLE, ps_global_options, 0,
		  NULL, NULL },
		{ "version", '\0', POPT_ARG_NONE, &show_version, 0, NULL,
		  NULL },
		{ "help", 'h', POPT_ARG_NONE, &show_help, 0, NULL, NULL },
		POPT_TABLEEND
	};
	poptContext ctx;
	const char **rest;
	const char **cargv;
	char *name;
	int n, rc;

	/* A closed reader must not kill us silently in the middle of a
	 * write. */
	signal(SIGPIPE, SIG_IGN);
	ps_delta_init();

	ctx = poptGetContext("patchsync", argc, argv, opts,
	    POPT_CONTEXT_POSIXMEHARDER);
	if ((rc = ps_cli_parse(ctx, NULL)) != PS_OK) {
		poptFreeContext(ctx);
		return rc;
	}
	if (show_version) {
		ps_version_print(stdout);
		poptFreeContext(ctx);
		return PS_OK;
	}
	rest = ps_cli_args(ctx, &n);
	if (show_help || n == 0) {
		usage(show_help ? stdout : stderr);
		poptFreeContext(ctx);
		if (!show_help)
			ps_err("no command given");
		return show_help ? PS_OK : PS_EUSAGE;
	}
	for (c = commands; c->name != NULL; c++)
		if (strcmp(c->name, rest[0]) == 0)
			break;
	if (c->name == NULL) {
		ps_err("unknown command '%s' (see patchsync --help)", rest[0]);
		poptFreeContext(ctx);
		return PS_EUSAGE;
	}
	/* popt's --help prints argv[0]: make it the whole command. */
	cargv = xcalloc((size_t)n + 1, sizeof(*cargv));
	memcpy(cargv, rest, (size_t)n * sizeof(*cargv));
	cargv[0] = name = xasprintf("patchsync %s", c->name);
	rc = c->run(n, cargv);
	free(name);
	free(cargv);
	poptFreeContext(ctx);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		/* A reader that stopped early (| head) is no error. */
		if (errno == EPIPE)
			return rc;
		ps_err("cannot write to standard output: %s", strerror(errno));
		if (rc == PS_OK || rc == PS_DIFFER)
			rc = PS_EPARTIAL;
	}
	return rc;
}
