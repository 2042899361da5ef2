/*
 * cli.c — what every command shares: the global options, the popt loop
 * and finding the configuration file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <popt.h>

#include "cli.h"
#include "ps.h"

struct poptOption ps_global_options[] = {
	{ "config", 'c', POPT_ARG_STRING, &ps_g.config, 0,
	  "configuration file", "FILE" },
	{ "verbose", 'v', POPT_ARG_NONE, NULL, 'v',
	  "more messages (repeat for more)", NULL },
	{ "quiet", 'q', POPT_ARG_NONE, NULL, 'q', "errors only", NULL },
	POPT_TABLEEND
};

int
ps_cli_parse_names(poptContext ctx, const char *cmd, const char *const *val,
    struct ps_names *names)
{
	int rc;

	while ((rc = poptGetNextOpt(ctx)) >= 0) {
		if (rc == 'v')
			ps_verbose++;
		else if (rc == 'q')
			ps_quiet = 1;
		else if (rc == 'h') {
			/* As popt's own --help does. */
			poptPrintHelp(ctx, stdout, 0);
			exit(PS_OK);
		}
		else if (rc == 'C' && names != NULL) {
			names->v = xreallocarray(names->v, (size_t)names->n + 2,
			    sizeof(*names->v));
			names->v[names->n++] = *val;
			names->v[names->n] = NULL;
		}
	}
	if (rc == -1)
		return PS_OK;
	ps_err("%s%s%s: %s", cmd != NULL ? cmd : "", cmd != NULL ? ": " : "",
	    poptBadOption(ctx, POPT_BADOPTION_NOALIAS), poptStrerror(rc));
	return PS_EUSAGE;
}

int
ps_cli_parse(poptContext ctx, const char *cmd)
{
	return ps_cli_parse_names(ctx, cmd, NULL, NULL);
}

const char **
ps_cli_args(poptContext ctx, int *n)
{
	static const char *none[] = { NULL };
	const char **args = poptGetArgs(ctx);

	if (args == NULL)
		args = none;
	for (*n = 0; args[*n] != NULL; (*n)++)
		;
	return args;
}

int
ps_cli_conf(struct ps_conf *conf, int required)
{
	const char *file = ps_g.config;

	if (file == NULL)
		file = getenv("PATCHSYNC_CONFIG");
	if (file != NULL && *file != '\0')
		return ps_conf_load(file, conf);
	if (access(PS_CONF_DEFAULT, F_OK) == 0)
		return ps_conf_load(PS_CONF_DEFAULT, conf);
	memset(conf, 0, sizeof(*conf));
	if (required) {
		ps_err("no configuration file: give -c FILE, set "
		    "PATCHSYNC_CONFIG or create " PS_CONF_DEFAULT);
		return PS_EUSAGE;
	}
	ps_conf_defaults(conf);
	return PS_OK;
}
