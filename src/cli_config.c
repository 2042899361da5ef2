/*
 * cli_config.c — `patchsync config check|show`: validate the configuration
 * file and print what patchsync understood of it.
 */
#include <stdio.h>
#include <string.h>

#include <popt.h>

#include "cli.h"
#include "ps.h"

int
cmd_config(int argc, const char **argv)
{
	struct poptOption opts[] = {
		PS_OPTS_END
	};
	struct ps_conf conf;
	poptContext ctx;
	const char **args;
	size_t i;
	int n, rc;

	ctx = poptGetContext("patchsync config", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "check|show");
	if ((rc = ps_cli_parse(ctx, "config")) != PS_OK)
		goto out;
	args = ps_cli_args(ctx, &n);
	if (n != 1 || (strcmp(args[0], "check") != 0 &&
	    strcmp(args[0], "show") != 0)) {
		ps_err("config: expected check or show "
		    "(usage: patchsync [-c FILE] config check|show)");
		rc = PS_EUSAGE;
		goto out;
	}
	if ((rc = ps_cli_conf(&conf, 1)) != PS_OK)
		goto out;
	if (strcmp(args[0], "check") == 0) {
		(void)ps_conf_warn_paths(&conf);
		ps_info(0, "%s: configuration is valid (%zu components)",
		    conf.file, conf.ncomp);
	} else {
		printf("; %s\n[console]\nname = %s\ndatabase = %s\n"
		    "jobs = %d\n", conf.file, conf.console_name, conf.database,
		    conf.jobs);
		for (i = 0; i < conf.ncomp; i++) {
			const struct ps_component *c = &conf.comp[i];

			printf("\n[component %s]\npath = %s\ndest = %s\n",
			    c->name, c->path, c->dest);
			if (c->source != NULL)
				printf("source = %s\n", c->source);
		}
	}
	ps_conf_free(&conf);
out:
	poptFreeContext(ctx);
	return rc;
}
