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
#include "session.h"

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

/* "a, b or c" of the names of SUBS. */
static char *
choices(const struct ps_subcmd *subs, size_t n)
{
	struct buf b = { 0 };
	size_t i;

	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_addstr(&b, i + 1 == n ? " or " : ", ");
		buf_addstr(&b, subs[i].name);
	}
	buf_add(&b, "", 1);
	return (char *)b.p;
}

int
ps_cli_dispatch(const char *cmd, const struct ps_subcmd *subs, size_t n,
    const char *help, int argc, const char **argv)
{
	const char *saved;
	char *name, *list;
	size_t i;
	int rc;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		fputs(help, stdout);
		return PS_OK;
	}
	for (i = 0; argc >= 2 && i < n; i++) {
		if (strcmp(argv[1], subs[i].name) != 0)
			continue;
		name = xasprintf("patchsync %s %s", cmd, subs[i].name);
		saved = argv[1];
		argv[1] = name;
		rc = subs[i].run(argc - 1, argv + 1);
		argv[1] = saved;
		free(name);
		return rc;
	}
	list = choices(subs, n);
	if (argc < 2)
		ps_err("%s: expected %s (see patchsync %s --help)", cmd, list,
		    cmd);
	else
		ps_err("%s: unknown subcommand '%s' (use %s)", cmd, argv[1],
		    list);
	free(list);
	return PS_EUSAGE;
}

char *
ps_cli_cache_dir(const struct ps_conf *conf)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *db, *slash, *d;

	if (conf->file != NULL && conf->database != NULL &&
	    strncmp(conf->database, "postgres", 8) != 0) {
		db = xstrdup(conf->database);
		if ((slash = strrchr(db, '/')) != NULL) {
			*slash = '\0';
			if (access(*db ? db : "/", W_OK) == 0) {
				d = xasprintf("%s/cache", db);
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

int
ps_cli_timeout(const char *cmd, const char *s, unsigned *out)
{
	char *end;
	long v;

	*out = PS_TIMEOUT_DEFAULT;
	if (s == NULL)
		return PS_OK;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 ||
	    v > PS_TIMEOUT_MAX) {
		ps_err("%s: --timeout needs seconds from 0 (none) to %d, not "
		    "'%s'", cmd, PS_TIMEOUT_MAX, s);
		return PS_EUSAGE;
	}
	*out = (unsigned)v;
	return PS_OK;
}
