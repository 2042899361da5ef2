/*
 * cli.h — the command-line front end: global options and one entry point
 * per command. Each cmd_* parses its own options with popt and returns a
 * ps_result, which main() turns into the exit status.
 */
#ifndef PS_CLI_H
#define PS_CLI_H

#include <popt.h>

#include "conf.h"

/* Set by the global options. */
struct ps_global {
	const char *config;	/* -c/--config FILE, or NULL */
};
extern struct ps_global ps_g;

/* -c, -v, -q: included in every command's option table. */
extern struct poptOption ps_global_options[];

/*
 * The end of every command's option table: global options and --help
 * (-h too, as before the command; ps_cli_parse prints the help for it).
 */
#define PS_OPTS_END \
	{ NULL, '\0', POPT_ARG_INCLUDE_TABLE, ps_global_options, 0, \
	  "Global options:", NULL }, \
	{ NULL, 'h', POPT_ARG_NONE | POPT_ARGFLAG_DOC_HIDDEN, NULL, 'h', \
	  NULL, NULL }, \
	POPT_AUTOHELP \
	POPT_TABLEEND

/*
 * Run the popt loop on CTX for command CMD: counts -v and -q, and turns a
 * bad option into one error line. Returns PS_OK or PS_EUSAGE.
 */
int ps_cli_parse(poptContext ctx, const char *cmd);

/* Values of a repeatable option, such as -C NAME; V is NULL-terminated. */
struct ps_names {
	const char **v;
	int n;
};

/*
 * ps_cli_parse for a command with a repeatable option of val 'C': each
 * time it is seen, its value (*VAL, popt's argument pointer) is added to
 * NAMES (free NAMES->v afterwards).
 */
int ps_cli_parse_names(poptContext ctx, const char *cmd,
    const char *const *val, struct ps_names *names);

/* Remaining arguments of CTX as a NULL-terminated array; *N gets the count. */
const char **ps_cli_args(poptContext ctx, int *n);

/* Load the configuration named by -c, $PATCHSYNC_CONFIG or the default. */
int ps_cli_conf(struct ps_conf *conf, int required);

/* A subcommand: "patchsync CMD NAME ..." runs RUN. */
struct ps_subcmd {
	const char *name;
	int (*run)(int, const char **);
};

/*
 * Run the subcommand ARGV[1] of command CMD from SUBS (N of them), with
 * "patchsync CMD NAME" as its argv[0]; --help or -h prints HELP. A
 * missing or unknown subcommand is one error line naming the choices.
 */
int ps_cli_dispatch(const char *cmd, const struct ps_subcmd *subs, size_t n,
    const char *help, int argc, const char **argv);

/*
 * The console's cache directory (its scans' manifests): beside a SQLite
 * state database the account may write, else $XDG_CACHE_HOME/patchsync
 * or ~/.cache/patchsync; NULL when there is none. Free it.
 */
char *ps_cli_cache_dir(const struct ps_conf *conf);

/*
 * --timeout S of command CMD into *OUT: seconds from 0 (none) to
 * PS_TIMEOUT_MAX; PS_TIMEOUT_DEFAULT when S is NULL. PS_OK, or PS_EUSAGE
 * with one error line.
 */
int ps_cli_timeout(const char *cmd, const char *s, unsigned *out);

int cmd_manifest(int argc, const char **argv);
int cmd_bundle(int argc, const char **argv);
int cmd_config(int argc, const char **argv);
int cmd_push(int argc, const char **argv);
int cmd_report(int argc, const char **argv);
int cmd_refresh(int argc, const char **argv);
int cmd_serve(int argc, const char **argv);
int cmd_server(int argc, const char **argv);
int cmd_schedule(int argc, const char **argv);
int cmd_task(int argc, const char **argv);
int cmd_history(int argc, const char **argv);
int cmd_download(int argc, const char **argv);
int cmd_status(int argc, const char **argv);

#endif
