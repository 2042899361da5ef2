/*
 * cli_serve.c — `patchsync serve --stdio ROOT`: the server role, speaking
 * the protocol on standard input and output (ssh runs it; so does the
 * console itself, in a child, for a local destination).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <popt.h>

#include "cli.h"
#include "fsops.h"
#include "proto.h"
#include "pool.h"
#include "receiver.h"
#include "sender.h"
#include "wire.h"

/*
 * The server's own error lines are not printed (ssh would show them next
 * to the console's): the last one is kept and sent in the ERROR frame.
 */
static pthread_mutex_t last_mu = PTHREAD_MUTEX_INITIALIZER;
static char last_err[512];

static void
keep_err(const char *line)
{
	pthread_mutex_lock(&last_mu);
	snprintf(last_err, sizeof(last_err), "%s", line);
	pthread_mutex_unlock(&last_mu);
}

/* The reason to send: the last error line, or FALLBACK. */
static const char *
reason(const char *fallback)
{
	return last_err[0] != '\0' ? last_err : fallback;
}

struct server {
	struct ps_wire *w;
	const char *rootpath;
	struct ps_root root;
	int opened;
	int locked;
};

static void
waiting(const char *why, void *arg)
{
	struct server *sv = arg;

	ps_send_notice(sv->w, "waiting: %s", why);
}

/*
 * Refresh: this side sends ROOT/DEST to the console, which receives it
 * with the same verified, atomic writes a push uses.
 */
static int
pull(struct server *sv, const char *dest, uint32_t flags)
{
	struct ps_build_opts bo = { 0 };
	struct ps_manifest src = { 0 }, dst = { 0 };
	struct ps_send_opts so;
	struct ps_send_stats st;
	int rc, dfd = -1;

	if (!sv->opened) {
		if ((rc = ps_root_open(sv->rootpath, 0, &sv->root)) != PS_OK) {
			ps_send_error(sv->w, PS_EPEER, "%s",
			    reason("cannot open the server's root"));
			return PS_OK;
		}
		sv->opened = 1;
	}
	if (!sv->locked && ps_root_lock_shared(&sv->root,
	    !(flags & PS_OF_NOWAIT), waiting, sv) != PS_OK) {
		ps_send_error(sv->w, PS_EPEER, "%s is locked by a push",
		    sv->rootpath);
		return PS_EPEER;
	}
	sv->locked = 1;
	if ((rc = ps_dir_open(&sv->root, dest, 0, &dfd)) != PS_OK) {
		ps_send_error(sv->w, PS_EPEER, "cannot open %s under %s",
		    *dest ? dest : ".", sv->rootpath);
		return PS_OK;
	}
	bo.checksum = (flags & PS_OF_CHECKSUM) != 0;
	if ((rc = ps_manifest_buildat(dfd, &bo, &src)) != PS_OK) {
		ps_send_error(sv->w, rc, "some files under %s cannot be "
		    "read on the server", *dest ? dest : ".");
		goto out;
	}
	if ((rc = ps_recv_manifest(sv->w, "serve", &dst)) != PS_OK)
		goto out;
	memset(&so, 0, sizeof(so));
	so.checksum = bo.checksum;
	so.delete = (flags & PS_OF_DELETE) != 0;
	so.max_delete = -1;
	so.dry_run = (flags & PS_OF_DRYRUN) != 0;
	so.label = "serve";
	so.pool = ps_pool_new(ps_ncpu());
	rc = ps_send(sv->w, dfd, &src, &dst, &so, &st);
	ps_pool_free(so.pool);
out:
	ps_manifest_free(&src);
	ps_manifest_free(&dst);
	if (dfd >= 0)
		close(dfd);
	return rc == PS_EPEER ? PS_EPEER : PS_OK;
}

static int
on_open(struct server *sv, struct ps_rd *rd)
{
	uint8_t mode = ps_rd_u8(rd);
	uint32_t flags = ps_rd_u32(rd);
	struct ps_recv_stats st;
	const char *p;
	size_t len;
	char *dest;
	int rc, push;

	p = ps_rd_str(rd, &len, PS_PATH_MAX);
	if (ps_rd_done(rd) != 0 || (len > 0 && !ps_path_ok(p, len)) ||
	    (mode != PS_OPEN_PUSH && mode != PS_OPEN_REPORT &&
	    mode != PS_OPEN_PULL)) {
		ps_send_error(sv->w, PS_EPEER, "malformed open request");
		return PS_EPEER;
	}
	dest = xstrndup(p != NULL ? p : "", len);
	if (len > 0 && ps_path_is_meta(dest)) {
		ps_send_error(sv->w, PS_EPEER, "refusing patchsync's own "
		    "directory as a destination");
		free(dest);
		return PS_EPEER;
	}
	if (mode == PS_OPEN_PULL) {
		rc = pull(sv, dest, flags);
		free(dest);
		return rc;
	}
	push = mode == PS_OPEN_PUSH && !(flags & PS_OF_DRYRUN);
	if (!sv->opened) {
		rc = ps_root_open(sv->rootpath, push, &sv->root);
		/* A server nothing was pushed to yet lacks everything. */
		if (rc != PS_OK && !push && errno == ENOENT)
			rc = PS_OK;
		if (rc != PS_OK) {
			ps_send_error(sv->w, rc == PS_EUSAGE ? PS_EPEER : rc,
			    "%s", reason("cannot open the server's root"));
			free(dest);
			return rc;
		}
		sv->opened = rc == PS_OK;
	}
	if (push && !sv->locked) {
		rc = ps_root_lock(&sv->root, !(flags & PS_OF_NOWAIT), waiting,
		    sv);
		if (rc != PS_OK) {
			ps_send_error(sv->w, PS_EPEER, "%s",
			    reason("the server is locked by another push"));
			free(dest);
			return PS_EPEER;
		}
		sv->locked = 1;
	}
	rc = ps_receive(sv->w, &sv->root, dest, flags, mode ==
	    PS_OPEN_REPORT, &st);
	free(dest);
	return rc == PS_EPEER ? PS_EPEER : PS_OK;
}

static int
serve(const char *rootpath)
{
	struct server sv;
	struct buf msg = { 0 };
	struct ps_rd rd;
	uint8_t type;
	int rc;

	memset(&sv, 0, sizeof(sv));
	sv.rootpath = rootpath;
	sv.root.fd = -1;
	sv.root.lockfd = -1;
	sv.w = ps_wire_new(STDIN_FILENO, STDOUT_FILENO);
	if ((rc = ps_wire_hello(sv.w, PS_ROLE_SERVER, 0, NULL, NULL)) !=
	    PS_OK) {
		ps_err("serve: %s", ps_wire_error(sv.w));
		goto out;
	}
	for (;;) {
		if ((rc = ps_wire_recv(sv.w, &type, &msg)) != PS_OK) {
			/* The console went away: nothing half done stays. */
			if (!ps_wire_eof(sv.w))
				ps_err("serve: %s", ps_wire_error(sv.w));
			break;
		}
		ps_rd_init(&rd, msg.p, msg.len);
		if (type == PS_MSG_BYE) {
			rc = PS_OK;
			break;
		}
		if (type != PS_MSG_OPEN) {
			ps_send_error(sv.w, PS_EPEER, "unexpected message "
			    "type %u", type);
			ps_err("serve: the console broke the protocol "
			    "(message type %u)", type);
			rc = PS_EPEER;
			break;
		}
		if ((rc = on_open(&sv, &rd)) != PS_OK)
			break;
	}
	(void)ps_wire_flush(sv.w);
out:
	ps_root_close(&sv.root);
	ps_wire_free(sv.w);
	buf_free(&msg);
	return rc;
}

int
cmd_serve(int argc, const char **argv)
{
	int use_stdio = 0;
	struct poptOption opts[] = {
		{ "stdio", '\0', POPT_ARG_NONE, &use_stdio, 0,
		  "speak the protocol on standard input and output", NULL },
		PS_OPTS_END
	};
	poptContext ctx;
	const char **args;
	int n, rc;

	ctx = poptGetContext("patchsync serve", argc, argv, opts, 0);
	poptSetOtherOptionHelp(ctx, "--stdio ROOT");
	if ((rc = ps_cli_parse(ctx, "serve")) != PS_OK)
		goto out;
	args = ps_cli_args(ctx, &n);
	if (!use_stdio || n != 1) {
		ps_err("serve: usage: patchsync serve --stdio ROOT");
		rc = PS_EUSAGE;
		goto out;
	}
	if (isatty(STDOUT_FILENO)) {
		ps_err("serve: standard output is a terminal; serve is run "
		    "by patchsync through ssh or a pipe");
		rc = PS_EUSAGE;
		goto out;
	}
	ps_err_hook = keep_err;
	ps_err_hook_only = 1;
	rc = serve(args[0]);
out:
	poptFreeContext(ctx);
	return rc;
}
