/*
 * relay.c — servers reached through relays (relay.h): the console's side
 * of RELAY (send the request, take the results in) and the relay's (run
 * the console role toward the servers behind it, send each result back).
 *
 * Threads on the relay: the session's own thread reads from the console
 * (after the request, only BYE may come; anything else, or the console
 * going away, interrupts the work); one thread runs ps_console_run, whose
 * session threads send the results back as each server ends.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfcache.h"
#include "relay.h"
#include "url.h"

#define NAMES_SHOWN 5	/* servers named in a line, then "and N more" */

/* ---- the console's side ---- */

/*
 * The servers behind T in ALL, each after the one it is reached through
 * (*N of them). The targets' vias never form a cycle (task.c), and the
 * list never grows beyond ALL.
 */
static struct ps_target **
behind(struct ps_target *all, size_t nall, const struct ps_target *t,
    size_t *n)
{
	struct ps_target **v = xcalloc(nall + 1, sizeof(*v));
	size_t i, k, m = 0;

	for (i = 0; i < nall; i++)
		if (all[i].via == t && m < nall)
			v[m++] = &all[i];
	for (k = 0; k < m; k++)
		for (i = 0; i < nall; i++)
			if (all[i].via == v[k] && m < nall)
				v[m++] = &all[i];
	*n = m;
	return v;
}

/* 1 + the position of X in V, or 0 (X is the relay itself). */
static uint32_t
position(struct ps_target **v, size_t n, const struct ps_target *x)
{
	size_t k;

	for (k = 0; k < n; k++)
		if (v[k] == x)
			return (uint32_t)k + 1;
	return 0;
}

static struct ps_bytes
bytes(const char *s)
{
	struct ps_bytes b = { (const unsigned char *)(s != NULL ? s : ""),
	    s != NULL ? strlen(s) : 0 };

	return b;
}

/*
 * The console's manifest of S, as it was compared: the relay reports (or
 * plans a dry run) against it, not against its own copy. Block sums stay
 * home: a report needs none.
 */
static int
send_manifest(struct ps_sess *ss, const struct ps_source *s)
{
	struct ps_mfin *in = ps_mfin_pread(s->mf_fd);
	struct ps_sess_mfout *out = ps_sess_mfout_begin(ss, 0);
	const struct ps_entry *e;
	struct ps_entry c;
	int rc = PS_OK;

	while (rc == PS_OK && (e = ps_mfin_next(in)) != NULL) {
		c = *e;
		c.blocks = NULL;
		c.weak = NULL;
		c.nblocks = 0;
		rc = ps_sess_mfout_add(out, &c);
	}
	if (rc == PS_OK && ps_mfin_failed(in))
		rc = ps_sess_fail(ss, PS_EPARTIAL, "console directory %s: its "
		    "manifest cannot be read back: %s", s->path,
		    ps_mfin_error(in));
	if (rc == PS_OK)
		rc = ps_sess_mfout_end(out);
	ps_sess_mfout_free(out);
	ps_mfin_free(in);
	return rc;
}

/* The settings the console would use for D itself (as console.c's). */
static void
relayto(const struct ps_console_opts *o, struct ps_target **v, size_t n,
    const struct ps_target *d, struct ps_msg_relayto *m)
{
	memset(m, 0, sizeof(*m));
	m->parent = position(v, n, d->via);
	m->name = bytes(d->name);
	m->url = bytes(d->url);
	m->rsh = bytes(d->rsh);
	m->remote_path = bytes(o->remote_path != NULL ? o->remote_path :
	    d->remote_path);
	m->bwlimit = o->bwlimit != 0 ? o->bwlimit : d->bwlimit;
	m->timeout = !o->timeout_set && d->timeout >= 0 ?
	    (uint32_t)d->timeout : o->timeout;
}

static int
send_request(const struct ps_console_opts *o, struct ps_source *src,
    size_t nsrc, struct ps_target **v, size_t n, struct ps_sess *ss)
{
	struct ps_msg_relay m;
	struct ps_msg_relaysrc rs;
	struct ps_msg_relayto rt;
	size_t i;
	int rc;

	memset(&m, 0, sizeof(m));
	m.mode = (uint8_t)o->mode;
	m.flags = o->flags;
	if (o->mode == PS_OPEN_PUSH && o->send.delete)
		m.flags |= PS_OF_DELETE;
	if (o->mode == PS_OPEN_REPORT)
		m.flags &= PS_OF_NOWAIT;
	m.whole = (uint8_t)o->whole_relay;
	m.extra = o->extra != 0;
	m.max_delete = o->mode == PS_OPEN_PUSH && o->send.max_delete >= 0 ?
	    o->send.max_delete : -1;
	m.jobs = o->jobs < 1 ? 1 : o->jobs > PS_RELAY_MAX_JOBS ?
	    PS_RELAY_MAX_JOBS : (uint32_t)o->jobs;
	m.nsources = (uint32_t)nsrc;
	m.nservers = (uint32_t)n;
	if (nsrc > PS_RELAY_MAX_SOURCES || n > PS_RELAY_MAX_SERVERS)
		return ps_sess_fail(ss, PS_EUSAGE, "cannot pass on %zu "
		    "components to %zu servers (at most %d and %d)", nsrc, n,
		    PS_RELAY_MAX_SOURCES, PS_RELAY_MAX_SERVERS);
	rc = ps_send_relay(ss->w, &m);
	for (i = 0; i < nsrc && rc == PS_OK; i++) {
		rs.component = bytes(src[i].component);
		rs.dest = bytes(src[i].dest);
		rs.manifest = o->mode == PS_OPEN_REPORT ||
		    (o->flags & PS_OF_DRYRUN) != 0;
		if (rs.component.len > PS_COMPONENT_MAX)
			return ps_sess_fail(ss, PS_EUSAGE, "component name %s "
			    "is too long to pass on", src[i].component);
		if ((rc = ps_send_relaysrc(ss->w, &rs)) != PS_OK)
			break;
		if (rs.manifest && (rc = send_manifest(ss, &src[i])) != PS_OK)
			return rc;	/* said */
	}
	for (i = 0; i < n && rc == PS_OK; i++) {
		relayto(o, v, n, v[i], &rt);
		rc = ps_send_relayto(ss->w, &rt);
	}
	if (rc == PS_OK)
		rc = ps_wire_flush(ss->w);
	return ps_sess_send_failed(ss, rc);
}

/* Server K (1-based) of V, or NULL after failing the session. */
static struct ps_target *
server_at(struct ps_sess *ss, struct ps_target **v, size_t n, uint32_t k,
    const char *what)
{
	if (k >= 1 && k <= n)
		return v[k - 1];
	(void)ps_sess_fail(ss, PS_EPEER, "the relay broke the protocol: %s "
	    "for server %u of %zu", what, k, n);
	return NULL;
}

/* A side of a relayed row: the entry's figures. */
static const struct ps_entry *
side(const struct ps_msg_relayrow *m, int console)
{
	struct ps_entry *e = xcalloc(1, sizeof(*e));

	e->path = xstrndup((const char *)m->path.p, m->path.len);
	e->path_len = (uint32_t)m->path.len;
	e->type = PS_FT_FILE;
	e->size = console ? m->csize : m->ssize;
	e->mtime_sec = console ? m->cmtime : m->smtime;
	memcpy(e->hash, console ? m->chash : m->shash, 16);
	return e;
}

static int
take_row(struct ps_sess *ss, struct ps_source *src, size_t nsrc,
    struct ps_target **v, size_t n, const struct buf *msg)
{
	struct ps_msg_relayrow m;
	struct ps_target *d;
	struct ps_row *r;
	const char *comp = NULL;
	uint64_t files;
	size_t i;
	int rc, found = 0;

	if ((rc = ps_sess_decode(ss, PS_MSG_RELAYROW, msg, &m)) != PS_OK)
		return rc;
	if ((d = server_at(ss, v, n, m.server, "a row")) == NULL)
		return PS_EPEER;
	for (i = 0; i < nsrc && !found; i++) {
		comp = src[i].component;
		found = comp != NULL ? m.component.len == strlen(comp) &&
		    memcmp(m.component.p, comp, m.component.len) == 0 :
		    m.component.len == 0;
	}
	if (!found || d->relayed)
		return ps_sess_fail(ss, PS_EPEER, "the relay broke the "
		    "protocol: a row of %s %s", d->name, !found ? "names no "
		    "component of this push" : "after its result");
	/* As many rows as the console has files, and extras within limit. */
	for (i = 0, files = 0; i < nsrc; i++)
		files += src[i].nfiles;
	if (m.state == PS_RELAY_ROW_EXTRA ? d->relay_extra >=
	    PS_RELAY_MAX_EXTRA : d->nrows - d->relay_extra >= files)
		return ps_sess_fail(ss, PS_EPEER, "the relay broke the "
		    "protocol: more rows of %s than %s", d->name,
		    m.state == PS_RELAY_ROW_EXTRA ? "a server may have" :
		    "the console has files");
	d->relay_extra += m.state == PS_RELAY_ROW_EXTRA;
	if (d->nrows == 0 || (d->nrows >= 64 && (d->nrows & (d->nrows - 1))
	    == 0))
		d->rows = xreallocarray(d->rows, d->nrows < 64 ? 64 :
		    d->nrows * 2, sizeof(*d->rows));
	r = &d->rows[d->nrows++];
	r->component = comp;
	r->state = m.state;
	r->console = m.state != PS_RELAY_ROW_EXTRA ? side(&m, 1) : NULL;
	r->server = m.state != PS_RELAY_ROW_MISSING ? side(&m, 0) : NULL;
	return PS_OK;
}

static int
take_result(const struct ps_console_opts *o, struct ps_sess *ss,
    struct ps_target **v, size_t n, const struct buf *msg)
{
	struct ps_msg_relayres m;
	struct ps_target *d;
	int rc;

	if ((rc = ps_sess_decode(ss, PS_MSG_RELAYRES, msg, &m)) != PS_OK)
		return rc;
	if ((d = server_at(ss, v, n, m.server, "a result")) == NULL)
		return PS_EPEER;
	if (d->relayed)
		return ps_sess_fail(ss, PS_EPEER, "the relay broke the "
		    "protocol: two results for %s", d->name);
	d->rc = (int)m.code;
	free(d->error);
	d->error = m.error.len > 0 ? ps_escape((const char *)m.error.p,
	    m.error.len) : NULL;
	d->st.files = m.files;
	d->st.deleted = m.deleted;
	d->st.meta = m.meta;
	d->st.literal = m.literal;
	d->st.matched = m.matched;
	d->st.total = m.total;
	d->st.nsend = m.nsend;
	d->st.errors = m.errors;
	d->bytes_sent = m.bytes_sent;
	d->bytes_received = m.bytes_received;
	d->seconds = (double)m.msec / 1000.0;
	d->relayed = 1;
	if (o->done != NULL)
		o->done(d, o->done_arg);
	return PS_OK;
}

/* Rows and results until RELAYEND, which must find every server done. */
static int
results(const struct ps_console_opts *o, struct ps_source *src,
    size_t nsrc, struct ps_target **v, size_t n, struct ps_sess *ss)
{
	struct buf msg = { 0 };
	uint8_t type;
	size_t k;
	int rc;

	for (;;) {
		if ((rc = ps_sess_recv(ss, &type, &msg)) != PS_OK)
			break;
		if (type == PS_MSG_RELAYROW && o->mode == PS_OPEN_REPORT)
			rc = take_row(ss, src, nsrc, v, n, &msg);
		else if (type == PS_MSG_RELAYRES)
			rc = take_result(o, ss, v, n, &msg);
		else if (type == PS_MSG_RELAYEND)
			break;
		else
			rc = ps_sess_unexpected(ss, type, "while relaying");
		if (rc != PS_OK)
			break;
	}
	for (k = 0; rc == PS_OK && k < n; k++)
		if (!v[k]->relayed)
			rc = ps_sess_fail(ss, PS_EPEER, "the relay broke the "
			    "protocol: it ended without a result for %s",
			    v[k]->name);
	buf_free(&msg);
	return rc;
}

/* Server names for one line: the first few, then how many more. */
struct names {
	struct buf b;
	size_t n;
};

static void
names_add(struct names *l, const char *name)
{
	if (++l->n > NAMES_SHOWN)
		return;
	if (l->b.len > 0)
		buf_addstr(&l->b, ", ");
	buf_addstr(&l->b, name);
}

/* The list as a string (valid until names_free). */
static const char *
names_str(struct names *l)
{
	char more[48];

	if (l->n > NAMES_SHOWN) {
		snprintf(more, sizeof(more), " and %zu more",
		    l->n - NAMES_SHOWN);
		buf_addstr(&l->b, more);
	}
	buf_addc(&l->b, '\0');
	return (const char *)l->b.p;
}

/* Could a console file not be read? */
static int
incomplete(const struct ps_source *src, size_t nsrc)
{
	size_t i;

	for (i = 0; i < nsrc; i++)
		if (src[i].rc != PS_OK)
			return 1;
	return 0;
}

/*
 * A console file could not be read: the relay's copy lacks it, and a
 * --delete from there could remove the copies behind it (the console
 * itself never deletes a file it could not read). Nothing is passed on.
 */
static void
not_deleting(const struct ps_console_opts *o, struct ps_target **v,
    size_t n, const struct ps_target *t)
{
	struct names l = { { 0 }, 0 };
	size_t k;

	for (k = 0; k < n; k++) {
		v[k]->rc = PS_EPARTIAL;
		free(v[k]->error);
		v[k]->error = xasprintf("not updated: console files could not "
		    "be read, so --delete is not passed on through %s",
		    t->name);
		v[k]->relayed = 1;
		names_add(&l, v[k]->name);
		if (o->done != NULL)
			o->done(v[k], o->done_arg);
	}
	ps_err("%s: not updated: console files could not be read, so "
	    "--delete is not passed on through %s", names_str(&l), t->name);
	buf_free(&l.b);
}

int
ps_relay_forward(const struct ps_console_opts *o, struct ps_source *src,
    size_t nsrc, struct ps_target *all, size_t nall, struct ps_target *t,
    struct ps_sess *ss)
{
	struct ps_target **v;
	size_t n;
	int rc = PS_OK;

	v = behind(all, nall, t, &n);
	if (n > 0 && o->mode == PS_OPEN_PUSH && o->send.delete &&
	    incomplete(src, nsrc)) {
		not_deleting(o, v, n, t);
		n = 0;
	}
	/* Only an intact copy of the console's is passed on. */
	if (n > 0 && ps_sess_rc(ss) == PS_OK && t->rc == PS_OK) {
		rc = send_request(o, src, nsrc, v, n, ss);
		if (rc == PS_OK)
			rc = results(o, src, nsrc, v, n, ss);
		if (ss->w != NULL) {
			t->bytes_sent = ps_wire_bytes_out(ss->w);
			t->bytes_received = ps_wire_bytes_in(ss->w);
		}
	}
	free(v);
	return rc;
}

void
ps_relay_settle(const struct ps_console_opts *o, struct ps_target *all,
    size_t nall, struct ps_target *t)
{
	struct names l = { { 0 }, 0 };
	struct ps_target **v;
	size_t n, k;
	int partial = t->rc == PS_EPARTIAL || t->rc == PS_EVERIFY;

	v = behind(all, nall, t, &n);
	for (k = 0; k < n; k++) {
		struct ps_target *d = v[k];

		if (d->relayed)
			continue;
		d->rc = PS_EPEER;
		free(d->error);
		if (partial)
			d->error = xasprintf("not updated: its relay %s did "
			    "not get every file", t->name);
		else
			d->error = xasprintf("not reached: its relay %s "
			    "failed%s%s", t->name, t->error != NULL ? ": " : "",
			    t->error != NULL ? t->error : "");
		d->relayed = 1;
		names_add(&l, d->name);
		if (o->done != NULL)
			o->done(d, o->done_arg);
	}
	if (l.n > 0)
		ps_err("%s: not %s %s %s", names_str(&l), partial ?
		    "updated: their relay" : "reached: their relay", t->name,
		    partial ? "did not get every file" : "failed");
	buf_free(&l.b);
	free(v);
}

/* ---- the relay's side ---- */

struct relay_run {
	struct ps_sess *up;		/* the console's session */
	const struct ps_relay_copy *copy;
	struct ps_msg_relay req;
	struct ps_console_opts o;
	struct ps_source *src;
	size_t nsrc;
	struct ps_target *t;
	size_t nt;
	char *refused;			/* why nothing is passed on, or NULL */
	pthread_mutex_t mu;
	int ended;			/* the work is done (mu) */
};

/* Error lines said here meanwhile go to the console, as NOTICEs. */
static void
pass_lines(struct relay_run *r)
{
	size_t n, i;
	char **v;

	v = ps_diag_drain(&n);
	for (i = 0; i < n; i++) {
		if (strncmp(v[i], "warning: ", 9) == 0)
			ps_sess_notice(r->up, PS_NOTE_WARN, "%s", v[i] + 9);
		else if (strncmp(v[i], "  from: ", 8) != 0)
			ps_sess_notice(r->up, PS_NOTE_ERROR, "%s", v[i]);
	}
	ps_strv_free(v);
}

static void
send_row(struct relay_run *r, uint32_t k, const struct ps_row *w)
{
	struct ps_msg_relayrow m;
	const struct ps_entry *e = w->console != NULL ? w->console :
	    w->server;

	memset(&m, 0, sizeof(m));
	m.server = k;
	m.component = bytes(w->component);
	m.path.p = (const unsigned char *)e->path;
	m.path.len = e->path_len;
	m.state = (uint8_t)w->state;
	if (w->console != NULL) {
		m.csize = w->console->size;
		m.cmtime = w->console->mtime_sec;
		memcpy(m.chash, w->console->hash, 16);
	}
	if (w->server != NULL) {
		m.ssize = w->server->size;
		m.smtime = w->server->mtime_sec;
		memcpy(m.shash, w->server->hash, 16);
	}
	(void)ps_send_relayrow(r->up->w, &m);
}

/* O->done on the relay: T's rows and result go back to the console. */
static void
send_result(struct ps_target *t, void *arg)
{
	struct relay_run *r = arg;
	struct ps_msg_relayres m;
	uint32_t k = (uint32_t)(t - r->t) + 1;
	size_t i;

	pass_lines(r);
	for (i = 0; i < t->nrows && r->o.mode == PS_OPEN_REPORT; i++)
		send_row(r, k, &t->rows[i]);
	memset(&m, 0, sizeof(m));
	m.server = k;
	m.code = (uint32_t)(t->rc == PS_OK || t->rc == PS_EUSAGE ||
	    t->rc == PS_EPARTIAL || t->rc == PS_EVERIFY ||
	    t->rc == PS_EINTR ? t->rc : PS_EPEER);
	m.files = t->st.files;
	m.deleted = t->st.deleted;
	m.meta = t->st.meta;
	m.literal = t->st.literal;
	m.matched = t->st.matched;
	m.total = t->st.total;
	m.nsend = t->st.nsend;
	m.errors = t->st.errors;
	m.bytes_sent = t->bytes_sent;
	m.bytes_received = t->bytes_received;
	m.msec = t->seconds > 0 && t->seconds < 1e9 ?
	    (uint64_t)(t->seconds * 1000) : 0;
	if (m.code != PS_OK)
		m.error = bytes(t->error != NULL && *t->error ? t->error :
		    ps_strresult((int)m.code));
	if (m.error.len > PS_TEXT_MAX)
		m.error.len = PS_TEXT_MAX;
	if (ps_send_relayres(r->up->w, &m) == PS_OK)
		(void)ps_wire_flush(r->up->w);
}

/* The console's manifest of a component, into an unlinked file. */
static int
take_manifest(struct ps_sess *s, int *fd)
{
	struct ps_sess_mf *mf = ps_sess_mf_open(s);
	struct ps_cachew *cw = ps_cachew_open(-1, "", -1, PS_MF_LOCAL,
	    PS_ENC_LOCAL);
	const struct ps_entry *e;
	int rc;

	while ((e = ps_sess_mf_next(mf)) != NULL)
		ps_cachew_add(cw, e);
	rc = ps_sess_mf_end(mf);
	ps_sess_mf_free(mf);
	if (rc != PS_OK) {
		ps_cachew_abort(cw);
		return rc;
	}
	ps_clear_error();
	if ((*fd = ps_cachew_commit(cw, NULL)) < 0)
		return ps_sess_fail(s, PS_EPARTIAL, "cannot keep the console's "
		    "manifest: %s", *ps_last_error() ? ps_last_error() :
		    "no room for a temporary file");
	return PS_OK;
}

/* The next frame, which must be TYPE, decoded into M. */
static int
expect(struct ps_sess *s, uint8_t want, struct buf *msg, void *m)
{
	uint8_t type;
	int rc;

	if ((rc = ps_sess_recv(s, &type, msg)) != PS_OK)
		return rc;
	if (type != want)
		return ps_sess_unexpected(s, type, "in a relay request");
	return ps_sess_decode(s, type, msg, m);
}

static int
is_fresh(const struct ps_relay_copy *c, const char *dest)
{
	size_t i;

	for (i = 0; i < c->nfresh; i++)
		if (strcmp(c->fresh[i], dest) == 0)
			return 1;
	return 0;
}

/* Source I of the request, and what it needs: a manifest or the copy. */
static int
take_source(struct relay_run *r, struct ps_source *s, struct buf *msg)
{
	struct ps_msg_relaysrc m;
	int rc, with_mf = r->req.mode == PS_OPEN_REPORT ||
	    (r->req.flags & PS_OF_DRYRUN) != 0;

	s->fd = s->mf_fd = -1;
	if ((rc = expect(r->up, PS_MSG_RELAYSRC, msg, &m)) != PS_OK)
		return rc;
	if (m.manifest != with_mf)
		return ps_sess_fail(r->up, PS_EPEER, "the console broke the "
		    "protocol: a relayed %s", with_mf ? "report or dry run "
		    "needs the console's manifest" : "push takes no manifest");
	s->component = m.component.len > 0 ? xstrndup((const char *)
	    m.component.p, m.component.len) : NULL;
	s->dest = xstrndup((const char *)m.dest.p, m.dest.len);
	s->path = *s->dest ? xasprintf("%s/%s", r->copy->rootpath, s->dest) :
	    xstrdup(r->copy->rootpath);
	if (with_mf) {
		if ((rc = take_manifest(r->up, &s->mf_fd)) != PS_OK)
			return rc;
		s->ready = 1;	/* not scanned: the console's is given */
		return PS_OK;
	}
	/* A push passes on only what this session has just put in place. */
	if (r->refused == NULL && (!is_fresh(r->copy, s->dest) ||
	    r->copy->root->fd < 0))
		r->refused = xasprintf("not passed on: the relay did not get "
		    "%s intact in this session", s->path);
	ps_clear_error();
	if (r->refused == NULL && ps_dest_open(r->copy->root, s->dest, 0,
	    &s->fd) != PS_OK)
		r->refused = xasprintf("not passed on: the relay cannot open "
		    "its copy %s: %s", s->path, *ps_last_error() ?
		    ps_last_error() : strerror(errno));
	return PS_OK;
}

/* Server K (0-based) of the request. */
static int
take_server(struct relay_run *r, size_t k, int *depth, struct buf *msg)
{
	struct ps_msg_relayto m;
	struct ps_target *t = &r->t[k];
	int rc;

	if ((rc = expect(r->up, PS_MSG_RELAYTO, msg, &m)) != PS_OK)
		return rc;
	if (m.parent > k)
		return ps_sess_fail(r->up, PS_EPEER, "the console broke the "
		    "protocol: server %zu is behind server %u, not sent yet",
		    k + 1, m.parent);
	depth[k] = m.parent > 0 ? depth[m.parent - 1] + 1 : 0;
	if (depth[k] >= PS_RELAY_MAX_DEPTH)
		return ps_sess_fail(r->up, PS_EPEER, "the console broke the "
		    "protocol: relays nest deeper than %d", PS_RELAY_MAX_DEPTH);
	t->name = xstrndup((const char *)m.name.p, m.name.len);
	t->url = xstrndup((const char *)m.url.p, m.url.len);
	t->rsh = m.rsh.len > 0 ? xstrndup((const char *)m.rsh.p, m.rsh.len) :
	    NULL;
	t->remote_path = m.remote_path.len > 0 ? xstrndup((const char *)
	    m.remote_path.p, m.remote_path.len) : NULL;
	t->bwlimit = m.bwlimit;
	t->timeout = (int)m.timeout;
	if (m.parent > 0) {
		t->via = &r->t[m.parent - 1];
		t->via->relay = 1;
	}
	return PS_OK;
}

/* The whole request after RELAY: components, then servers. */
static int
take_request(struct relay_run *r)
{
	struct buf msg = { 0 };
	int *depth, rc = PS_OK;
	size_t i;

	r->nsrc = r->req.nsources;
	r->nt = r->req.nservers;
	r->src = xcalloc(r->nsrc, sizeof(*r->src));
	r->t = xcalloc(r->nt, sizeof(*r->t));
	for (i = 0; i < r->nsrc; i++)
		r->src[i].fd = r->src[i].mf_fd = -1;
	for (i = 0; i < r->nsrc && rc == PS_OK; i++)
		rc = take_source(r, &r->src[i], &msg);
	depth = xcalloc(r->nt, sizeof(*depth));
	for (i = 0; i < r->nt && rc == PS_OK; i++)
		rc = take_server(r, i, depth, &msg);
	free(depth);
	buf_free(&msg);
	return rc;
}

static void
setup_opts(struct relay_run *r)
{
	struct ps_console_opts *o = &r->o;
	int push = r->req.mode == PS_OPEN_PUSH, components = 1;
	size_t i;

	memset(o, 0, sizeof(*o));
	o->mode = r->req.mode;
	o->flags = r->req.flags & ~(uint32_t)PS_OF_DELETE;
	o->extra = r->req.extra;
	o->jobs = (int)r->req.jobs;
	o->timeout = PS_TIMEOUT_DEFAULT;	/* each server has its own */
	o->send.delete = push && (r->req.flags & PS_OF_DELETE) != 0;
	o->send.max_delete = r->req.max_delete;
	o->send.whole_file = r->req.whole == PS_WHOLE_AUTO ?
	    ps_targets_local(r->t, r->nt) : r->req.whole;
	o->whole_relay = r->req.whole;
	o->delete_guard = o->send.delete;
	for (i = 0; i < r->nsrc; i++)
		components &= *r->src[i].dest != '\0';
	/* Its scans' cache: beside its lock, never inside a destination. */
	if (push && !(o->flags & PS_OF_DRYRUN) && components)
		o->cache_dir = xasprintf("%s/" PS_META_DIR "/relay",
		    r->copy->rootpath);
	o->done = send_result;
	o->done_arg = r;
}

static void *
worker(void *arg)
{
	struct relay_run *r = arg;

	(void)ps_console_run(&r->o, r->src, r->nsrc, r->t, r->nt);
	pass_lines(r);
	/* Done before RELAYEND: the console's BYE may come at once. */
	pthread_mutex_lock(&r->mu);
	r->ended = 1;
	pthread_mutex_unlock(&r->mu);
	if (ps_send_relayend(r->up->w, NULL) == PS_OK)
		(void)ps_wire_flush(r->up->w);
	return NULL;
}

/*
 * Under a forced command (sshd sets SSH_ORIGINAL_COMMAND), the console's
 * account may do no more than the administrator wrote: push below ROOT
 * and have it passed on. So the relay runs no remote shell or remote
 * program the console names, and writes no local directory for it: only
 * ssh URLs, reached with ssh and the default program (each host's own
 * forced command decides the rest). A console that logs in with a shell
 * could do all that itself; then the relay takes what it is sent.
 */
static void
confine(struct relay_run *r)
{
	struct ps_url u;
	char err[256];
	size_t i;
	int local;

	if (r->refused != NULL || getenv("SSH_ORIGINAL_COMMAND") == NULL)
		return;
	for (i = 0; i < r->nt; i++) {
		struct ps_target *t = &r->t[i];

		memset(&u, 0, sizeof(u));
		local = ps_url_parse(t->url, &u, err, sizeof(err)) != 0 ||
		    u.kind == PS_URL_LOCAL;
		ps_url_free(&u);
		if (!local && t->rsh == NULL && t->remote_path == NULL)
			continue;
		r->refused = xasprintf("not passed on: this relay runs under "
		    "a forced command, so it takes no %s from the console "
		    "(server %s)", local ? "local path" : t->rsh != NULL ?
		    "remote shell" : "remote program", t->name);
		return;
	}
}

/* Nothing is passed on: every server gets the reason. */
static void
refuse(struct relay_run *r)
{
	struct names l = { { 0 }, 0 };
	size_t i;

	for (i = 0; i < r->nt; i++)
		names_add(&l, r->t[i].name);
	ps_err("%s: %s", names_str(&l), r->refused);
	buf_free(&l.b);
	for (i = 0; i < r->nt; i++) {
		r->t[i].rc = PS_EPEER;
		r->t[i].error = xstrdup(r->refused);
		send_result(&r->t[i], r);
	}
	if (ps_send_relayend(r->up->w, NULL) == PS_OK)
		(void)ps_wire_flush(r->up->w);
	r->ended = 1;
}

/*
 * The console's BYE, once RELAYEND is out. Anything else (or the console
 * going away) while the work goes on interrupts it: every session behind
 * then removes its temporaries.
 */
static int
await_bye(struct relay_run *r, pthread_t *tid)
{
	struct buf msg = { 0 };
	uint8_t type;
	int rc, ended;

	rc = ps_sess_recv(r->up, &type, &msg);
	pthread_mutex_lock(&r->mu);
	ended = r->ended;
	pthread_mutex_unlock(&r->mu);
	if (rc == PS_OK && (type != PS_MSG_BYE || !ended))
		rc = ps_sess_unexpected(r->up, type, "while relaying");
	if (rc != PS_OK && !ended)
		ps_intr_raise(SIGTERM);
	if (tid != NULL)
		pthread_join(*tid, NULL);
	buf_free(&msg);
	return rc;
}

static void
run_free(struct relay_run *r)
{
	size_t i;

	for (i = 0; i < r->nsrc; i++) {
		free((char *)r->src[i].component);
		free((char *)r->src[i].dest);
		free((char *)r->src[i].path);
		ps_source_free(&r->src[i]);
	}
	for (i = 0; i < r->nt; i++)
		ps_target_free(&r->t[i]);
	free(r->src);
	free(r->t);
	free(r->refused);
	free((char *)r->o.cache_dir);
	pthread_mutex_destroy(&r->mu);
}

int
ps_relay_serve(struct ps_sess *s, const struct ps_relay_copy *c,
    const struct buf *payload)
{
	struct relay_run r;
	pthread_t tid;
	int rc;

	memset(&r, 0, sizeof(r));
	r.up = s;
	r.copy = c;
	pthread_mutex_init(&r.mu, NULL);
	if ((rc = ps_sess_decode(s, PS_MSG_RELAY, payload, &r.req)) != PS_OK)
		goto out;
	if (!c->allowed)
		r.refused = xstrdup("not passed on: the relay's serve command "
		    "lacks --relay");
	if ((rc = take_request(&r)) != PS_OK)
		goto out;
	confine(&r);
	setup_opts(&r);
	ps_diag_collect(1);
	if (r.refused != NULL) {
		refuse(&r);
		rc = await_bye(&r, NULL);
	} else if (pthread_create(&tid, NULL, worker, &r) != 0) {
		rc = ps_sess_fail(s, PS_EPARTIAL, "cannot start a thread");
	} else {
		rc = await_bye(&r, &tid);
	}
	ps_diag_collect(0);
out:
	run_free(&r);
	return rc;
}
