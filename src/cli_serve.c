/*
 * cli_serve.c — `patchsync serve --stdio [--timeout S] ROOT`: options for
 * the server role (server.c), which speaks the protocol on standard input
 * and output (ssh runs it; so does the console itself, in a child, for a
 * local destination).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <popt.h>

#include "cli.h"
#include "msg.h"
#include "server.h"
#include "session.h"

int
cmd_serve(int argc, const char **argv)
{
	int use_stdio = 0, relay = 0;
	const char *timeout = NULL;
	struct poptOption opts[] = {
		{ "stdio", '\0', POPT_ARG_NONE, &use_stdio, 0,
		  "speak the protocol on standard input and output", NULL },
		{ "relay", '\0', POPT_ARG_NONE, &relay, 0,
		  "pass updates on to the servers the console names, with "
		  "this account's ssh keys and configuration", NULL },
		{ "timeout", '\0', POPT_ARG_STRING, &timeout, 0,
		  "end the session when the console is silent this long "
		  "(default 120; 0: never)", "SECONDS" },
		PS_OPTS_END
	};
	struct ps_serve_opts o = { NULL, PS_TIMEOUT_DEFAULT, 0 };
	poptContext ctx;
	const char **args;
	int n, rc;

	ctx = poptGetContext("patchsync serve", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "--stdio [--relay] [--timeout SECONDS] "
	    "ROOT");
	if ((rc = ps_cli_parse(ctx, "serve")) != PS_OK)
		goto out;
	args = ps_cli_args(ctx, &n);
	if (!use_stdio || n != 1) {
		ps_err("serve: usage: patchsync serve --stdio [--relay] "
		    "[--timeout SECONDS] ROOT");
		rc = PS_EUSAGE;
		goto out;
	}
	if ((rc = ps_cli_timeout("serve", timeout, &o.timeout)) != PS_OK)
		goto out;
	if (isatty(STDOUT_FILENO)) {
		ps_err("serve: standard output is a terminal; serve is run "
		    "by patchsync through ssh or a pipe");
		rc = PS_EUSAGE;
		goto out;
	}
	/* What goes wrong is told to the console in the protocol. */
	ps_diag_print(0);
	ps_intr_init();
	o.root = args[0];
	o.relay = relay;
	rc = ps_serve(STDIN_FILENO, STDOUT_FILENO, &o);
out:
	poptFreeContext(ctx);
	return rc;
}
