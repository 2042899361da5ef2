/*
 * server.c — the server role (server.h).
 *
 * Locks (SPEC sections 3 and 10.4): when ROOT holds components, the lock
 * is ROOT/.patchsync/lock, exclusive for a push, shared for a report or
 * a refresh; a session that reads first and pushes later gets it
 * exclusive before it writes. Every destination is also locked itself
 * (flock on its directory) while a component is served, exclusive for a
 * push: that is the only lock of a directory push (`push SRC_DIR URL`),
 * whose destination is ROOT itself and holds nothing of ours.
 *
 * Caches: ROOT/.patchsync/cache when ROOT holds components; the serving
 * account's cache directory for a directory push.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "fsops.h"
#include "mfcache.h"
#include "pool.h"
#include "receiver.h"
#include "relay.h"
#include "sender.h"
#include "server.h"
#include "session.h"

struct server {
	struct ps_sess s;
	const char *rootpath;
	struct ps_root root;
	int relay;		/* serve --relay: RELAY is served */
	char **fresh;		/* destinations pushed intact so far */
	size_t nfresh;
};

/* What one OPEN asked for. */
struct comp {
	uint8_t mode;
	uint32_t flags;
	char *dest;		/* "" for ROOT itself */
	char *label;		/* ROOT/DEST, for messages */
	int push;		/* files will be written */
	int dirfd;		/* ROOT/DEST, or -1 when it does not exist */
	int cache_dirfd;
	char *cache_name;
	int cache_writable;
};

static void
waiting(const char *why, void *arg)
{
	struct server *sv = arg;

	ps_sess_notice(&sv->s, PS_NOTE_INFO, "waiting: %s", why);
}

/* An fsops failure, said by fsops as our last error, ends the session. */
static int
fs_failed(struct server *sv, int rc)
{
	if (rc == PS_EINTR)
		return ps_sess_fail(&sv->s, PS_EINTR, "interrupted");
	return ps_sess_fail(&sv->s, rc == PS_EPARTIAL ? PS_EPARTIAL :
	    PS_EPEER, "%s", *ps_last_error() ? ps_last_error() :
	    "cannot open the destination");
}

static int
open_root(struct server *sv, int create)
{
	int rc;

	if (sv->root.fd >= 0)
		return PS_OK;
	ps_clear_error();
	if ((rc = ps_root_open(sv->rootpath, create, &sv->root)) != PS_OK)
		return fs_failed(sv, rc);
	return PS_OK;
}

/* The ROOT lock, when ROOT holds components. */
static int
lock_root(struct server *sv, const struct comp *c)
{
	int wait = !(c->flags & PS_OF_NOWAIT), rc;

	ps_clear_error();
	rc = c->push ? ps_root_lock(&sv->root, wait, waiting, sv) :
	    ps_root_lock_shared(&sv->root, wait, waiting, sv);
	if (rc == PS_OK)
		return PS_OK;
	if (rc == PS_EPARTIAL && c->push)
		return ps_sess_fail(&sv->s, PS_EPEER, "cannot take the lock "
		    "of %s, so nothing is pushed there: %s", sv->rootpath,
		    ps_last_error());
	return fs_failed(sv, rc);
}

/* Open ROOT/DEST (made for a push; its parent must exist) and lock it. */
static int
open_dest(struct server *sv, struct comp *c)
{
	int rc, wait = !(c->flags & PS_OF_NOWAIT);

	ps_clear_error();
	rc = ps_dest_open(&sv->root, c->dest, c->push, &c->dirfd);
	if (rc == PS_EPARTIAL && errno == ENOENT && c->mode == PS_OPEN_REPORT)
		return PS_OK;	/* nothing there yet: everything is missing */
	if (rc == PS_EPARTIAL && errno == ENOENT && (c->flags & PS_OF_DELETE))
		return ps_sess_fail(&sv->s, PS_EUSAGE, "refusing --delete: the "
		    "source %s does not exist (is it mounted?)", c->label);
	if (rc == PS_EPARTIAL && errno == ENOENT)
		return ps_sess_fail(&sv->s, PS_EPEER, "%s: no such directory",
		    c->label);
	if (rc != PS_OK)
		return fs_failed(sv, rc);
	rc = ps_dir_lock(c->dirfd, !c->push, wait, c->label, waiting, sv);
	return rc == PS_OK ? PS_OK : fs_failed(sv, rc);
}

static void
open_cache(struct server *sv, struct comp *c)
{
	int rc;

	c->cache_dirfd = -1;
	if (*c->dest == '\0') {
		/* Nothing of ours inside a destination: the account's cache. */
		if (c->dirfd >= 0 && ps_recv_account_cache(c->dirfd, 1,
		    &c->cache_dirfd, &c->cache_name) == 0)
			c->cache_writable = !(c->flags & PS_OF_DRYRUN);
		if (c->cache_writable)	/* of directories gone */
			ps_cache_prune(c->cache_dirfd);
		return;
	}
	rc = c->push ? ps_dir_open(&sv->root, PS_META_DIR "/cache", 1,
	    &c->cache_dirfd) : ps_dir_open_quiet(&sv->root, PS_META_DIR
	    "/cache", &c->cache_dirfd);
	if (rc != PS_OK) {
		c->cache_dirfd = -1;
		return;
	}
	/* A report or refresh writes nothing under ROOT. */
	c->cache_writable = c->push;
	if (c->cache_writable)	/* of components gone */
		ps_cache_prune(c->cache_dirfd);
	c->cache_name = xasprintf("%016" PRIx64 ".psm",
	    (uint64_t)XXH3_64bits(c->dest, strlen(c->dest)));
}

static void
comp_free(struct comp *c)
{
	if (c->dirfd >= 0)
		close(c->dirfd);
	if (c->cache_dirfd >= 0)
		close(c->cache_dirfd);
	free(c->cache_name);
	free(c->dest);
	free(c->label);
}

static void
recv_opts(const struct comp *c, struct ps_recv_opts *ro)
{
	memset(ro, 0, sizeof(*ro));
	ro->dest = c->dest;
	ro->dirfd = c->dirfd;
	ro->flags = c->flags;
	ro->report_only = c->mode == PS_OPEN_REPORT;
	ro->early = c->mode == PS_OPEN_PUSH && (c->flags & PS_OF_EARLY) &&
	    !(c->flags & PS_OF_DRYRUN);
	ro->cache_dirfd = c->cache_dirfd;
	ro->cache_name = c->cache_name;
	ro->cache_writable = c->cache_writable;
	ro->label = c->label;
}

/*
 * A refresh: this side sends ROOT/DEST to the console. Its manifest goes
 * first, so the console can refuse --delete from an empty source and
 * check every deletion against it; then the console's manifest comes and
 * the files go with the same engine a push uses.
 */
static int
pull(struct server *sv, struct comp *c)
{
	struct ps_manifest src = { 0 }, dst = { 0 };
	struct ps_plan_opts po = { .delete = (c->flags & PS_OF_DELETE) != 0 };
	struct ps_syncplan plan;
	struct ps_recv_opts ro;
	struct ps_send_opts so;
	struct ps_send_stats st;
	int rc;

	recv_opts(c, &ro);
	rc = ps_recv_describe(&ro, &src);
	if (rc != PS_OK) {
		rc = ps_sess_fail(&sv->s, rc == PS_EPARTIAL ? PS_EPARTIAL : rc,
		    "some files under %s cannot be read", c->label);
		goto out;
	}
	if ((rc = ps_sess_send_manifest(&sv->s, &src)) != PS_OK ||
	    (rc = ps_sess_recv_manifest(&sv->s, &dst)) != PS_OK)
		goto out;
	memset(&so, 0, sizeof(so));
	so.delete = (c->flags & PS_OF_DELETE) != 0;
	so.max_delete = -1;
	so.dry_run = (c->flags & PS_OF_DRYRUN) != 0;
	so.label = c->label;
	so.pool = ps_pool_new(ps_ncpu());
	ps_syncplan_make(&src, &dst, &po, &plan);
	rc = ps_send(&sv->s, c->dirfd, &plan, &so, &st);
	ps_syncplan_free(&plan);
	ps_pool_free(so.pool);
	/* File errors were the console's to report; the session goes on. */
	if (rc == PS_EPARTIAL || rc == PS_EVERIFY)
		rc = PS_OK;
out:
	ps_manifest_free(&src);
	ps_manifest_free(&dst);
	return rc;
}

static int
on_open(struct server *sv, const struct buf *payload)
{
	struct ps_msg_open m;
	struct ps_recv_opts ro;
	struct ps_recv_stats st;
	struct comp c;
	int rc, component;

	if ((rc = ps_sess_decode(&sv->s, PS_MSG_OPEN, payload, &m)) != PS_OK)
		return rc;
	memset(&c, 0, sizeof(c));
	c.dirfd = c.cache_dirfd = -1;
	c.mode = m.mode;
	c.flags = m.flags;
	c.dest = xstrndup((const char *)m.dest.p, m.dest.len);
	c.label = *c.dest ? xasprintf("%s/%s", sv->rootpath, c.dest) :
	    xstrdup(sv->rootpath);
	c.push = m.mode == PS_OPEN_PUSH && !(m.flags & PS_OF_DRYRUN);
	component = *c.dest != '\0';
	if (component && ps_path_is_meta(c.dest)) {
		rc = ps_sess_fail(&sv->s, PS_EPEER, "refusing patchsync's own "
		    "directory as a destination");
		goto out;
	}
	/*
	 * A directory push makes ROOT itself (its parent must exist); a
	 * dry run only checks that it could; components need ROOT.
	 */
	if (c.mode == PS_OPEN_PULL && (c.flags & PS_OF_DELETE) &&
	    sv->root.fd < 0 && access(sv->rootpath, F_OK) != 0) {
		rc = ps_sess_fail(&sv->s, PS_EUSAGE, "refusing --delete: the "
		    "source %s does not exist (is it mounted?)", sv->rootpath);
		goto out;
	}
	rc = open_root(sv, component ? PS_ROOT_EXISTING : c.push ?
	    PS_ROOT_CREATE : m.mode == PS_OPEN_PUSH ? PS_ROOT_PROBE :
	    PS_ROOT_EXISTING);
	if (rc != PS_OK)
		goto out;
	if (sv->root.fd < 0)
		goto receive;	/* a dry run into a directory still to make */
	if (component && (rc = lock_root(sv, &c)) != PS_OK)
		goto out;
	if ((rc = open_dest(sv, &c)) != PS_OK)
		goto out;
	open_cache(sv, &c);
	if (c.mode == PS_OPEN_PULL) {
		rc = pull(sv, &c);
		goto out;
	}
receive:
	recv_opts(&c, &ro);
	rc = ps_receive(&sv->s, &sv->root, &ro, &st);
	/* A relay passes on only what it got whole (relay.h). */
	if (rc == PS_OK && c.push && st.errors == 0) {
		sv->fresh = xreallocarray(sv->fresh, sv->nfresh + 1,
		    sizeof(*sv->fresh));
		sv->fresh[sv->nfresh++] = xstrdup(c.dest);
	}
out:
	comp_free(&c);
	return rc;
}

int
ps_serve(int rfd, int wfd, const struct ps_serve_opts *o)
{
	struct server sv;
	struct buf msg = { 0 };
	uint8_t type;
	int rc;

	memset(&sv, 0, sizeof(sv));
	sv.rootpath = o->root;
	sv.relay = o->relay;
	sv.root.fd = -1;
	sv.root.lockfd = -1;
	if ((rc = ps_sess_start(&sv.s, PS_ROLE_SERVER, rfd, wfd, o->timeout,
	    "console")) != PS_OK)
		goto out;
	for (;;) {
		if ((rc = ps_sess_recv(&sv.s, &type, &msg)) != PS_OK)
			break;
		if (type == PS_MSG_BYE) {
			rc = PS_OK;
			break;
		}
		if (type == PS_MSG_RELAY) {	/* the last request */
			struct ps_relay_copy c = { sv.relay, sv.rootpath,
			    &sv.root, sv.fresh, sv.nfresh };

			rc = ps_relay_serve(&sv.s, &c, &msg);
			break;
		}
		if (type != PS_MSG_OPEN) {
			rc = ps_sess_unexpected(&sv.s, type, "between "
			    "components");
			break;
		}
		if ((rc = on_open(&sv, &msg)) != PS_OK)
			break;
	}
out:
	/* The console went away or we are done: nothing half done stays. */
	(void)ps_sess_close(&sv.s, NULL);
	ps_root_close(&sv.root);
	buf_free(&msg);
	while (sv.nfresh > 0)
		free(sv.fresh[--sv.nfresh]);
	free(sv.fresh);
	return rc;
}
