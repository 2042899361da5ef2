/*
 * console.c — the console role: scan the console's trees once, then run
 * one session per distribution server, several at once; each session
 * connects, greets, and pushes or reports every component. Also the
 * console's side of a refresh.
 *
 * Threads: one per server session (at most -j), the scanner (the
 * console's own walk, beside the servers' walks), the progress line; each
 * session has its own pool of workers, so a slow or throttled server
 * never holds the threads another one needs. The run's mutex guards
 * `next`, `done` and each source's `ready` and `rc`.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "console.h"
#include "fsops.h"
#include "mfcache.h"
#include "mfshare.h"
#include "output.h"
#include "pool.h"
#include "receiver.h"
#include "relay.h"
#include "session.h"
#include "share.h"
#include "syncplan.h"
#include "url.h"
#include "walk.h"

#define SESSION_THREADS 2	/* workers per server session */
/* Plans and compressed data kept for the other servers, at most. */
#define SHARE_BUDGET (64u << 20)
/* Files this big keep their block sums in the merge (a matching hint). */
#define HINT_MIN (1u << 20)
#define DECODE_MAX (16u << 20)	/* memory for a scan decoded once */
/* Servers' manifests held unread while they match another's, at most. */
#define MFSHARE_BUDGET (64u << 20)
#define PIPE_BUDGET (16 << 20)	/* bytes of pipes toward the servers */
#define PIPE_MAX (1 << 20)	/* per pipe (fs.pipe-max-size's default) */
#define MALLOC_MMAP_MIN (4 << 20)	/* smaller blocks from the arenas */
#define MALLOC_TRIM_MIN (64 << 20)	/* free memory an arena keeps */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the console's manifest cache ---- */

static char *
cache_file(const char *cache_dir, const char *path)
{
	char *real = realpath(path, NULL), *f;

	if (real == NULL)
		return NULL;
	f = xasprintf("%s/%016" PRIx64 ".psm", cache_dir,
	    (uint64_t)XXH3_64bits(real, strlen(real)));
	free(real);
	return f;
}

int
ps_source_open(struct ps_source *src)
{
	src->mf_fd = -1;
	src->fd = open(src->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src->fd < 0) {
		ps_err("console directory %s: %s", src->path, strerror(errno));
		return PS_EUSAGE;
	}
	return PS_OK;
}

/*
 * The walk goes into a manifest file: the cache (rewritten only where it
 * changed), or an unlinked temporary when there is no cache. Sessions
 * read it back as a stream, so the console holds no tree in memory.
 */
int
ps_source_scan(struct ps_source *src, const char *cache_dir, int checksum)
{
	struct ps_build_opts bo = { 0 };
	struct ps_mfin *cache = NULL;
	struct ps_cachew *cw;
	const struct ps_entry *e;
	struct ps_walk *w;
	char *file = NULL, *slash;
	int rc, oldfd = -1, dirfd = -1;

	if (cache_dir != NULL && (file = cache_file(cache_dir, src->path))) {
		oldfd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (ps_mkdir_p(cache_dir) == 0)
			dirfd = open(cache_dir, O_RDONLY | O_DIRECTORY |
			    O_CLOEXEC);
	}
	if (oldfd >= 0) {
		ps_cache_used(oldfd);
		cache = ps_mfin_pread(oldfd);
	}
	bo.cache_in = cache;
	bo.checksum = checksum;
	bo.label = src->path;
	if ((rc = ps_walk_open(src->fd, &bo, &w)) != PS_OK) {
		ps_mfin_free(cache);
		if (oldfd >= 0)
			close(oldfd);
		goto out;
	}
	slash = file != NULL ? strrchr(file, '/') : NULL;
	cw = ps_cachew_open(dirfd, slash != NULL ? slash + 1 : "", oldfd,
	    PS_MF_LOCAL, PS_ENC_LOCAL);
	src->nfiles = 0;
	while ((e = ps_walk_next(w)) != NULL) {
		ps_cachew_add(cw, e);
		src->nfiles += e->type == PS_FT_FILE;
	}
	ps_manifest_free(&src->by);
	rc = ps_walk_close(w, &src->by);
	if (cache != NULL && ps_mfin_failed(cache))
		ps_info(1, "ignoring the damaged cache %s: %s", file,
		    ps_mfin_error(cache));
	ps_mfin_free(cache);
	if (src->mf_fd >= 0)
		close(src->mf_fd);
	src->mf_fd = ps_cachew_commit(cw, src->path);
	if (src->mf_fd < 0)
		rc = PS_EPARTIAL;
	ps_cache_prune(dirfd);	/* of directories gone */
out:
	if (dirfd >= 0)
		close(dirfd);
	free(file);
	return rc;
}

int
ps_source_manifest(const struct ps_source *src, struct ps_manifest *m)
{
	struct ps_mfin *in = ps_mfin_pread(src->mf_fd);
	const struct ps_entry *e;
	struct ps_entry c;
	size_t i;
	int rc = PS_OK;

	memset(m, 0, sizeof(*m));
	m->flags = PS_MF_LOCAL;
	while ((e = ps_mfin_next(in)) != NULL) {
		ps_entry_copy(&c, e);
		ps_manifest_put(m, &c);
	}
	if (ps_mfin_failed(in)) {
		ps_err("console directory %s: its manifest cannot be read "
		    "back: %s", src->path, ps_mfin_error(in));
		ps_manifest_free(m);
		rc = PS_EPARTIAL;
	}
	ps_mfin_free(in);
	for (i = 0; rc == PS_OK && i < src->by.nunreadable; i++) {
		m->unreadable = xreallocarray(m->unreadable, i + 1,
		    sizeof(*m->unreadable));
		m->unreadable[i] = xstrdup(src->by.unreadable[i]);
		m->nunreadable = i + 1;
	}
	return rc;
}

void
ps_source_free(struct ps_source *src)
{
	if (src->fd >= 0)
		close(src->fd);
	src->fd = -1;
	if (src->mf_fd >= 0)
		close(src->mf_fd);
	src->mf_fd = -1;
	ps_manifest_free(&src->by);
}

static void
row_free(struct ps_row *r)
{
	if (r->console != NULL) {
		ps_entry_free((struct ps_entry *)r->console);
		free((struct ps_entry *)r->console);
	}
	if (r->server != NULL) {
		ps_entry_free((struct ps_entry *)r->server);
		free((struct ps_entry *)r->server);
	}
}

void
ps_target_free(struct ps_target *t)
{
	size_t i;

	free(t->error);
	free(t->name);
	free(t->url);
	free(t->rsh);
	free(t->remote_path);
	for (i = 0; i < t->nrows; i++)
		row_free(&t->rows[i]);
	free(t->rows);
	t->error = NULL;
	t->name = t->url = t->rsh = t->remote_path = NULL;
	t->rows = NULL;
	t->nrows = 0;
	t->relay_extra = 0;
}

int
ps_targets_local(const struct ps_target *t, size_t nt)
{
	struct ps_url u;
	char err[64];
	size_t i;
	int local = 1;

	for (i = 0; i < nt; i++) {
		if (t[i].via != NULL ||
		    ps_url_parse(t[i].url, &u, err, sizeof(err)) != 0)
			continue;
		if (u.kind != PS_URL_LOCAL)
			local = 0;
		ps_url_free(&u);
	}
	return local;
}

/*
 * The directory for DEST (relative, "" for ROOT itself) on the server of
 * URL when it is on this machine, resolved; NULL when it is not, or
 * cannot be resolved (the push then says what is wrong).
 */
static char *
local_dir(const char *url, const char *dest)
{
	struct ps_url u;
	char err[64], *root, *d;
	size_t len;

	if (ps_url_parse(url, &u, err, sizeof(err)) != 0)
		return NULL;
	root = u.kind == PS_URL_LOCAL ? ps_dir_resolve(u.path) : NULL;
	ps_url_free(&u);
	if (root == NULL || *dest == '\0')
		return root;
	len = strlen(root) + 1 + strlen(dest) + 1;
	d = xmalloc(len);
	snprintf(d, len, "%s/%s", strcmp(root, "/") == 0 ? "" : root, dest);
	free(root);
	return d;
}

/*
 * Is the resolved directory D the directory C or inside it: by their
 * paths, or by their places on their filesystems (DP and CP,
 * ps_dir_place: a bind mount of C, of a directory in it or of one around
 * it is seen too)?
 */
static int
within(const char *d, const char *dp, const char *c, const char *cp)
{
	if (ps_path_nested(c, d) && strlen(c) <= strlen(d))
		return 1;
	return dp != NULL && cp != NULL && ps_place_nested(cp, dp) &&
	    strlen(cp) <= strlen(dp);
}

/* Do console directory DIR and DEST on URL overlap? Said if so. */
static int
overlaps(const char *what, const char *dir, const char *url,
    const char *dest)
{
	char *c = ps_dir_resolve(dir), *d = local_dir(url, dest), *cp, *dp;
	const char *sep = *dest ? "/" : "";
	int in_c = 0, in_d = 0;

	if (c != NULL && d != NULL) {
		cp = ps_dir_place(c);
		dp = ps_dir_place(d);
		in_c = within(d, dp, c, cp);
		in_d = within(c, cp, d, dp);
		free(cp);
		free(dp);
	}
	if (in_c && in_d)
		ps_err("refusing to %s: %s%s%s is the console directory %s",
		    what, url, sep, dest, dir);
	else if (in_c)
		ps_err("refusing to %s: %s%s%s is inside the console "
		    "directory %s", what, url, sep, dest, dir);
	else if (in_d)
		ps_err("refusing to %s: the console directory %s is inside "
		    "%s%s%s", what, dir, url, sep, dest);
	free(c);
	free(d);
	return in_c || in_d;
}

/* "NAME's " when the server has a name of its own, else "". */
static const char *
named(const struct ps_target *t, char *buf, size_t n)
{
	if (t->name == NULL || strcmp(t->name, t->url) == 0)
		return "";
	snprintf(buf, n, " (server %s)", t->name);
	return buf;
}

/*
 * Two servers of one push whose directories on this machine are one, or
 * one inside the other: each session keeps to its own, but the one
 * outside would send the inner one's files its own way, and with
 * --delete remove them. Said if so.
 */
static int
servers_overlap(const struct ps_source *src, size_t nsrc,
    const struct ps_target *t, size_t nt)
{
	struct where {
		char *dir, *place;
		size_t k;
	} *w = xcalloc(nt * nsrc + 1, sizeof(*w));
	char na[160], nb[160];
	size_t n = 0, i, j, k;
	int bad = 0, ij, ji;

	for (k = 0; k < nt; k++)
		for (i = 0; i < nsrc && t[k].via == NULL; i++)
			if ((w[n].dir = local_dir(t[k].url, src[i].dest)) !=
			    NULL) {
				w[n].place = ps_dir_place(w[n].dir);
				w[n++].k = k;
			}
	for (i = 0; i < n && !bad; i++)
		for (j = i + 1; j < n && !bad; j++) {
			const struct ps_target *a = &t[w[i].k], *b = &t[w[j].k];

			if (w[i].k == w[j].k)
				continue;
			ij = within(w[i].dir, w[i].place, w[j].dir,
			    w[j].place);
			ji = within(w[j].dir, w[j].place, w[i].dir,
			    w[i].place);
			if (!ij && !ji)
				continue;
			bad = 1;
			if (ij && !ji) {	/* a the outer one */
				const struct ps_target *x = a;

				a = b;
				b = x;
			}
			if (ij && ji)
				ps_err("refusing to push: %s%s and %s%s are "
				    "the same directory", a->url,
				    named(a, na, sizeof(na)), b->url,
				    named(b, nb, sizeof(nb)));
			else
				ps_err("refusing to push: %s%s is inside "
				    "%s%s, another server of this push",
				    b->url, named(b, nb, sizeof(nb)), a->url,
				    named(a, na, sizeof(na)));
		}
	for (i = 0; i < n; i++) {
		free(w[i].dir);
		free(w[i].place);
	}
	free(w);
	return bad;
}

int
ps_console_overlap(const struct ps_source *src, size_t nsrc,
    const struct ps_target *t, size_t nt)
{
	size_t i, k;

	for (k = 0; k < nt; k++) {
		if (t[k].via != NULL)	/* on another machine */
			continue;
		for (i = 0; i < nsrc; i++)
			if (overlaps("push", src[i].path, t[k].url,
			    src[i].dest))
				return PS_EUSAGE;
	}
	return servers_overlap(src, nsrc, t, nt) ? PS_EUSAGE : PS_OK;
}

/* ---- one session ---- */

struct run {
	const struct ps_console_opts *o;
	struct ps_source *src;
	size_t nsrc;
	struct ps_target *t;
	size_t nt;
	struct ps_share *share;	/* plans and data worked out once (several
				   servers), or NULL */
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* done changed, or a source became ready */
	size_t next;		/* next target to start (mu) */
	int done;		/* mu */
	int pipe_size;		/* of each pipe toward a server */
	int nsess;		/* sessions at once */
	struct decoded *dec;	/* per source: its scan decoded once */
	struct ps_mfshare *mfs;	/* plans of identical manifests, or NULL */
};

/*
 * With several servers, a source's scan is decoded once for all their
 * merges when it is small enough to hold (else each session reads the
 * file as a stream, as with one server).
 */
struct decoded {
	pthread_mutex_t mu;
	int state;		/* 0 not tried, 1 in m, -1 not held */
	struct ps_manifest m;
};


struct rows_ctx {
	struct ps_target *t;
	const char *component;
	size_t cap;
};

/* The row's own copy of E (without its block sums), or NULL. */
static const struct ps_entry *
copy(const struct ps_entry *e)
{
	struct ps_entry *c, tmp;

	if (e == NULL)
		return NULL;
	tmp = *e;
	tmp.blocks = NULL;
	tmp.weak = NULL;
	tmp.nblocks = 0;
	c = xmalloc(sizeof(*c));
	ps_entry_copy(c, &tmp);
	return c;
}

static void
add_row(enum ps_diff_state st, const struct ps_entry *o,
    const struct ps_entry *n, void *arg)
{
	struct rows_ctx *c = arg;
	struct ps_target *t = c->t;

	if (t->nrows == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		t->rows = xreallocarray(t->rows, c->cap, sizeof(*t->rows));
	}
	t->rows[t->nrows].component = c->component;
	t->rows[t->nrows].state = st;
	t->rows[t->nrows].console = copy(o);
	t->rows[t->nrows].server = copy(n);
	t->nrows++;
}

static int
is_scanned(struct run *r, struct ps_source *s)
{
	int ready;

	pthread_mutex_lock(&r->mu);
	ready = s->ready;
	pthread_mutex_unlock(&r->mu);
	return ready;
}

/* Wait for the console's own scan of S; its result. */
static int
scanned(struct run *r, struct ps_source *s)
{
	int rc;

	pthread_mutex_lock(&r->mu);
	while (!s->ready)
		pthread_cond_wait(&r->cv, &r->mu);
	rc = s->rc;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* The sending options of one component of one server (freed by send_done). */
static void
send_opts(struct run *r, struct ps_target *t, struct ps_source *s,
    struct ps_pool *pool, struct ps_send_opts *so)
{
	const struct ps_console_opts *o = r->o;

	*so = o->send;
	so->server = r->nt > 1 ? t->name : NULL;
	so->prefix = s->component != NULL ? xasprintf("%s/", s->dest) : NULL;
	so->label = s->path;
	so->pool = pool;
	so->progress_bytes = &t->prog_bytes;
	so->progress_total = &t->prog_total;
	so->progress_files = &t->prog_files;
	so->progress_nfiles = &t->prog_nfiles;
	so->dry_run = (o->flags & PS_OF_DRYRUN) != 0;
	so->share = r->share;
	so->inline_sends = r->nsess >= ps_ncpu();
}

static void
send_done(struct ps_target *t, struct ps_send_opts *so,
    const struct ps_send_stats *st)
{
	free((char *)so->prefix);
	t->st.files += st->files;
	t->st.deleted += st->deleted;
	t->st.meta += st->meta;
	t->st.literal += st->literal;
	t->st.matched += st->matched;
	t->st.total += st->total;
	t->st.nsend += st->nsend;
	t->st.errors += st->errors;
}

static int
early_hook(void *arg, const struct ps_action *a)
{
	return ps_send_early(arg, a);
}

/*
 * Both manifests read to their end: the server's intact (else the
 * session has failed), the console's own file readable.
 */
static int
streams_ended(struct ps_sess *ss, struct ps_sess_mf *mf,
    struct ps_mfin *mine, const struct ps_source *s)
{
	int rc;

	if ((rc = ps_sess_mf_end(mf)) != PS_OK)
		return rc;
	if (mine != NULL && ps_mfin_failed(mine))
		return ps_sess_said(ss, PS_EPARTIAL, "console directory %s: "
		    "its manifest cannot be read back: %s", s->path,
		    ps_mfin_error(mine));
	return PS_OK;
}

/*
 * One component of one server: OPEN, then the server's manifest, read
 * as it comes and compared with the console's as a merge: neither is
 * held whole.
 */
/* S's scan decoded once for every session (see struct decoded), or NULL. */
static const struct ps_manifest *
decoded_scan(struct run *r, struct ps_source *s, uint64_t sums_min)
{
	struct decoded *d;
	struct ps_mfin *in;
	const struct ps_entry *e;
	struct ps_entry c;
	uint64_t used = 0;

	if (r->dec == NULL)
		return NULL;
	d = &r->dec[s - r->src];
	pthread_mutex_lock(&d->mu);
	if (d->state == 0) {
		in = ps_mfin_pread(s->mf_fd);
		ps_mfin_sums_min(in, sums_min);
		d->m.flags = PS_MF_LOCAL;
		while (used <= DECODE_MAX && (e = ps_mfin_next(in)) != NULL) {
			ps_entry_copy(&c, e);
			ps_manifest_put(&d->m, &c);
			used += sizeof(c) + e->path_len + 12 * (uint64_t)(
			    e->blocks != NULL ? e->nblocks : 0);
		}
		/*
		 * Too big to hold, or damaged (each session then says so
		 * itself): every session reads it as a stream.
		 */
		d->state = used <= DECODE_MAX && !ps_mfin_failed(in) ? 1 : -1;
		if (d->state < 0)
			ps_manifest_free(&d->m);
		ps_mfin_free(in);
	}
	pthread_mutex_unlock(&d->mu);
	return d->state == 1 ? &d->m : NULL;
}

/* A session's part in sharing plans between identical manifests. */
struct mfpeer {
	struct ps_mfshare *m;	/* NULL: not sharing */
	size_t c;		/* the component */
	struct ps_mfpeer p;
	uint64_t held;		/* bytes held unread, against the budget */
	const struct ps_syncplan *plan;	/* the shared plan taken */
};

static void
mf_frame(void *arg, uint64_t k, const unsigned char *d)
{
	struct mfpeer *p = arg;

	ps_mfshare_frame(p->m, p->c, &p->p, k, d);
}

/*
 * A follower: take the whole manifest in unread while its frames match
 * a reference's and the budget allows, then look its plan up by
 * its digest (into D). PS_MFS_HAVE (the plan in P->plan), PS_MFS_MAKE
 * (the caller makes it from what is held, for the others) or
 * PS_MFS_NONE (the caller merges as it comes).
 */
static int
follow(struct ps_sess_mf *mf, struct mfpeer *p, unsigned char d[16])
{
	size_t q;

	for (;;) {
		q = ps_sess_mf_queued(mf);
		if (q > p->held) {
			if (!ps_mfshare_hold(p->m, q - p->held))
				break;
			p->held = q;
		}
		if (p->p.diverged || !ps_sess_mf_prefetch(mf))
			break;
	}
	if (p->p.diverged || !ps_sess_mf_whole(mf) ||
	    ps_sess_mf_digest(mf, d) != 0)
		return PS_MFS_NONE;
	return ps_mfshare_get(p->m, p->c, d, &p->plan);
}

/*
 * The plan this session made, for the others with the same manifest:
 * as asked (PS_MFS_MAKE), or offered by a reference's maker. *PLAN becomes NULL
 * when the share took it (it is freed with the share).
 */
static void
keep_plan(struct mfpeer *p, int shared, struct ps_sess_mf *mf, int ok,
    unsigned char d[16], struct ps_syncplan **plan)
{
	if (shared == PS_MFS_MAKE) {
		ps_mfshare_put(p->m, p->c, d, ok ? *plan : NULL);
		if (ok)
			*plan = NULL;
	} else if (p->p.own >= 0 && ok && ps_sess_mf_digest(mf, d) == 0 &&
	    ps_mfshare_offer(p->m, p->c, d, *plan)) {
		*plan = NULL;
	}
}

static int
component(struct run *r, struct ps_target *t, struct ps_sess *ss,
    struct ps_source *s, struct rows_ctx *rows, struct ps_pool *pool)
{
	const struct ps_console_opts *o = r->o;
	struct ps_plan_opts po = { .delete = o->send.delete };
	struct ps_syncplan *plan;
	const struct ps_syncplan *use;
	struct mfpeer peer = { .m = NULL };
	unsigned char d[16];
	int shared;
	struct ps_send_opts so;
	struct ps_send_stats st;
	struct ps_sender *snd = NULL;
	struct ps_sess_mf *mf;
	struct ps_mfin *mine;
	const struct ps_manifest *held;
	struct ps_arr_pos pos;
	struct ps_eiter a, b;
	uint32_t flags = o->flags;
	uint64_t sums_min;
	size_t nrows;
	int rc;

	if (o->mode == PS_OPEN_PUSH && o->send.delete)
		flags |= PS_OF_DELETE;
	/* Block sums come only for the files that get a delta. */
	if (o->mode == PS_OPEN_PUSH || o->mode == PS_OPEN_REPORT)
		flags |= PS_OF_LAZYSUMS;
	/*
	 * New files and files sent whole go while the server's manifest is
	 * still coming, as soon as it has passed their paths; deletions,
	 * deltas and metadata wait for the whole of it.
	 */
	if (o->mode == PS_OPEN_PUSH && !(flags & PS_OF_DRYRUN))
		flags |= PS_OF_EARLY;
	if ((rc = ps_sess_open(ss, o->mode, flags, s->dest)) != PS_OK)
		return rc;
	/*
	 * The console's own scan runs meanwhile: until it ends, the server's
	 * manifest is taken in as it comes (compressed), so its walk is
	 * never held up by ours.
	 */
	mf = ps_sess_mf_open(ss);
	if (r->mfs != NULL && o->mode == PS_OPEN_PUSH) {
		peer.m = r->mfs;
		peer.c = (size_t)(s - r->src);
		ps_mfshare_join(peer.m, peer.c, &peer.p);
		ps_sess_mf_hash(mf, ps_mfshare_seed(peer.m), mf_frame, &peer);
	}
	while (!is_scanned(r, s) && ps_sess_mf_prefetch(mf))
		;
	rc = scanned(r, s);
	if (rc != PS_OK && rc != PS_EPARTIAL) {	/* said by the scanner */
		ps_sess_mf_free(mf);
		return ps_sess_said(ss, rc, "console directory %s could not "
		    "be used", s->path);
	}
	/*
	 * Our own block sums serve only as a hint for matching big files;
	 * decoding every file's for every server costs more than it saves.
	 */
	sums_min = o->mode == PS_OPEN_REPORT ? UINT64_MAX : HINT_MIN;
	if ((held = decoded_scan(r, s, sums_min)) != NULL) {
		mine = NULL;
		ps_eiter_array(&a, &pos, held);
	} else {
		mine = ps_mfin_pread(s->mf_fd);
		ps_mfin_sums_min(mine, sums_min);
		ps_eiter_mfin(&a, mine);
	}
	ps_sess_mf_eiter(mf, &b);
	if (o->mode == PS_OPEN_REPORT) {
		rows->component = s->component;
		nrows = t->nrows;
		ps_manifest_diff_iter(&a, &b, o->extra, add_row, rows);
		rc = streams_ended(ss, mf, mine, s);
		if (rc != PS_OK)	/* no rows from half a listing */
			while (t->nrows > nrows)
				row_free(&t->rows[--t->nrows]);
		ps_mfin_free(mine);
		ps_sess_mf_free(mf);
		return rc != PS_OK ? rc : ps_sess_report_done(ss);
	}
	send_opts(r, t, s, pool, &so);
	__atomic_store_n(&t->prog_phase, PS_PH_SENDING, __ATOMIC_RELAXED);
	snd = ps_send_begin(ss, s->fd, &so, &st);
	plan = xcalloc(1, sizeof(*plan));
	shared = peer.m != NULL && peer.p.own < 0 ? follow(mf, &peer, d) :
	    PS_MFS_NONE;
	if (shared == PS_MFS_HAVE) {
		/* Byte for byte a manifest another session read and checked. */
		ps_sess_mf_skip(mf);
		free(plan);
		plan = NULL;
		use = peer.plan;
	} else {
		if ((flags & PS_OF_EARLY) && shared == PS_MFS_NONE) {
			po.early = early_hook;
			po.early_arg = snd;
		}
		ps_syncplan_stream(&a, &s->by, &b, &po, plan);
		use = plan;
	}
	/* Nothing is deleted on the strength of half a manifest. */
	rc = streams_ended(ss, mf, mine, s);
	if (peer.m != NULL)
		keep_plan(&peer, shared, mf, rc == PS_OK, d, &plan);
	ps_mfin_free(mine);
	ps_sess_mf_free(mf);
	if (peer.held > 0)
		ps_mfshare_unhold(peer.m, peer.held);
	if (rc == PS_OK)
		rc = ps_send_finish(snd, use);
	else
		(void)ps_send_finish(snd, NULL);
	send_done(t, &so, &st);
	if (plan != NULL) {
		ps_syncplan_free(plan);
		free(plan);
	}
	return rc;
}

/* Every component over the session SS; the results go into T. */
static int
components(struct run *r, struct ps_target *t, struct ps_sess *ss)
{
	struct rows_ctx rows = { t, NULL, 0 };
	struct ps_pool *pool = NULL;
	size_t i;
	int rc = PS_OK;

	if (r->o->mode == PS_OPEN_PUSH)
		pool = ps_pool_new(SESSION_THREADS);
	for (i = 0; i < r->nsrc && rc == PS_OK; i++) {
		rc = component(r, t, ss, &r->src[i], &rows, pool);
		if (rc != PS_OK)
			ps_trace("%s: component %s (%s)", t->name,
			    *r->src[i].dest ? r->src[i].dest : ".",
			    ps_strresult(rc));
		/* Files that failed are reported; the session goes on. */
		if (rc == PS_EPARTIAL || rc == PS_EVERIFY) {
			t->rc = ps_worse(t->rc, rc);
			rc = PS_OK;
		}
	}
	ps_pool_free(pool);
	if (ss->w != NULL) {
		t->bytes_sent = ps_wire_bytes_out(ss->w);
		t->bytes_received = ps_wire_bytes_in(ss->w);
	}
	return rc;
}

/* The end of a session: its result and reason into T. */
static void
finish(struct ps_target *t, struct ps_sess *ss, double start)
{
	int rc;

	free(t->error);
	t->error = NULL;
	rc = ps_sess_close(ss, &t->error);
	if (rc != PS_OK)
		t->rc = ps_worse(t->rc, rc);
	else if (t->rc != PS_OK)
		t->error = xstrdup(t->st.errors > 0 ? "some files were not "
		    "transferred" : "some files could not be handled");
	t->seconds = now() - start;
}

static void
session(struct run *r, struct ps_target *t)
{
	const struct ps_console_opts *o = r->o;
	struct ps_sess_opts so;
	struct ps_sess ss;
	double start = now();

	memset(&so, 0, sizeof(so));
	so.label = t->name;
	so.url = t->url;
	so.rsh = t->rsh;
	/* The command line first, then the server's own settings. */
	so.remote_path = o->remote_path != NULL ? o->remote_path :
	    t->remote_path;
	so.timeout = !o->timeout_set && t->timeout >= 0 ?
	    (unsigned)t->timeout : o->timeout;
	so.bwlimit = o->bwlimit != 0 ? o->bwlimit : t->bwlimit;
	so.relay = t->relay;
	so.pipe_size = r->pipe_size;
	__atomic_store_n(&t->prog_phase, PS_PH_COMPARING, __ATOMIC_RELAXED);
	if (ps_sess_connect(&ss, &so) == PS_OK &&
	    components(r, t, &ss) == PS_OK && t->relay)
		(void)ps_relay_forward(o, r->src, r->nsrc, r->t, r->nt, t, &ss);
	finish(t, &ss, start);
	if (t->relay)	/* the servers behind it that got no result */
		ps_relay_settle(o, r->t, r->nt, t);
	__atomic_store_n(&t->prog_phase, PS_PH_DONE, __ATOMIC_RELEASE);
	if (o->done != NULL)
		o->done(t, o->done_arg);
}

int
ps_console_session(const struct ps_console_opts *o, struct ps_source *src,
    size_t nsrc, struct ps_target *t, struct ps_sess *ss)
{
	struct run r;
	double start = now();
	size_t i;

	memset(&r, 0, sizeof(r));
	r.o = o;
	r.src = src;
	r.nsrc = nsrc;
	r.t = t;
	r.nt = 1;
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	for (i = 0; i < nsrc; i++)
		src[i].ready = 1;	/* scanned by the caller */
	(void)components(&r, t, ss);
	finish(t, ss, start);
	pthread_mutex_destroy(&r.mu);
	pthread_cond_destroy(&r.cv);
	return t->rc;
}

static void *
worker(void *arg)
{
	struct run *r = arg;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&r->mu);
		i = r->next++;
		pthread_mutex_unlock(&r->mu);
		if (i >= r->nt)
			break;
		if (r->t[i].via == NULL)	/* else its relay's session */
			session(r, &r->t[i]);
	}
	return NULL;
}

/* ---- the console's scan, beside the sessions ---- */

static void *
scanner(void *arg)
{
	struct run *r = arg;
	size_t i;
	int rc;

	for (i = 0; i < r->nsrc; i++) {
		struct ps_source *s = &r->src[i];

		if (s->ready)	/* given with its manifest */
			continue;
		rc = ps_source_scan(s, r->o->cache_dir,
		    (r->o->flags & PS_OF_CHECKSUM) != 0);
		if (rc == PS_OK && r->o->delete_guard && s->nfiles == 0) {
			/* An unmounted share must never empty the servers. */
			ps_err("refusing --delete: console directory %s holds "
			    "no files (is it mounted?)", s->path);
			rc = PS_EUSAGE;
		}
		pthread_mutex_lock(&r->mu);
		s->rc = rc;
		s->ready = 1;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

/* ---- progress on a terminal, and the task's events ---- */

static void
human(uint64_t n, char *out, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]);
}

/* Error lines said since the last call become events of the task. */
static void
drain_errors(struct ps_task_ctx *task)
{
	size_t n, i;
	char **v;

	if (task == NULL)
		return;
	v = ps_diag_drain(&n);
	for (i = 0; i < n; i++)
		ps_task_event(task, strncmp(v[i], "warning: ", 9) == 0 ?
		    "notice" : "error", strncmp(v[i], "warning: ", 9) == 0 ?
		    "warning" : "error", "%s", v[i]);
	ps_strv_free(v);
}

/* The progress lines: what was drawn last, so it can be redrawn. */
struct lines {
	double start;
	int drawn;		/* lines now on screen below the cursor's row */
	int pct;		/* the total's percentage shown last */
	unsigned char *over;	/* servers whose last line is printed */
	int namew;		/* width of the names' column */
};

static void
rate_eta(uint64_t done, uint64_t total, double t, int final, char *rate,
    size_t rlen, char *eta, size_t elen)
{
	char h[24];

	human(t > 0 ? (uint64_t)((double)done / t) : 0, h, sizeof(h));
	snprintf(rate, rlen, "%.24s/s", h);
	if (final)
		snprintf(eta, elen, "%d:%02d done", (int)t / 60, (int)t % 60);
	else if (done > 0 && total > done && t > 0) {
		double left = (double)(total - done) / ((double)done / t);

		snprintf(eta, elen, "%d:%02d ETA", (int)left / 60,
		    (int)left % 60);
	} else
		snprintf(eta, elen, "-:-- ETA");
}

/* One server's line, in OUT. */
static void
server_line(const struct ps_target *t, int w, double el, char *out,
    size_t len)
{
	uint64_t done = __atomic_load_n(&t->prog_bytes, __ATOMIC_RELAXED);
	uint64_t total = __atomic_load_n(&t->prog_total, __ATOMIC_RELAXED);
	uint64_t f = __atomic_load_n(&t->prog_files, __ATOMIC_RELAXED);
	uint64_t nf = __atomic_load_n(&t->prog_nfiles, __ATOMIC_RELAXED);
	int ph = __atomic_load_n(&t->prog_phase, __ATOMIC_ACQUIRE);
	char a[32], rate[32], eta[32];

	if (done > total)
		done = total;	/* a file sent again */
	human(done, a, sizeof(a));
	if (ph == PS_PH_COMPARING) {
		snprintf(out, len, "%-*.*s comparing", w, w, t->name);
		return;
	}
	if (ph == PS_PH_DONE && t->rc != PS_OK && t->rc != PS_EPARTIAL &&
	    t->rc != PS_EVERIFY) {
		snprintf(out, len, "%-*.*s failed", w, w, t->name);
		return;
	}
	rate_eta(done, total, el, ph == PS_PH_DONE, rate, sizeof(rate), eta,
	    sizeof(eta));
	snprintf(out, len, "%-*.*s %10s %3d%% %12s %12s (%" PRIu64 "/%"
	    PRIu64 " files)", w, w, t->name, a, total ? (int)(done * 100 /
	    total) : 100, rate, eta, f, nf);
}

/* Bytes and files done and planned over every server (NF may be NULL). */
static void
prog_sum(struct run *r, uint64_t *done, uint64_t *total, uint64_t *files,
    uint64_t *nf)
{
	uint64_t d, t;
	size_t k;

	*done = *total = *files = 0;
	if (nf != NULL)
		*nf = 0;
	for (k = 0; k < r->nt; k++) {
		d = __atomic_load_n(&r->t[k].prog_bytes, __ATOMIC_RELAXED);
		t = __atomic_load_n(&r->t[k].prog_total, __ATOMIC_RELAXED);
		*done += d < t ? d : t;
		*total += t;
		*files += __atomic_load_n(&r->t[k].prog_files,
		    __ATOMIC_RELAXED);
		if (nf != NULL)
			*nf += __atomic_load_n(&r->t[k].prog_nfiles,
			    __ATOMIC_RELAXED);
	}
}

/*
 * Draw: with one server, one line that rewrites itself (as rsync's
 * --info=progress2); with several at once, a line per server at work and
 * one for the whole push below them, redrawn in place; a server's final
 * line stays printed above. The total's percentage never goes back,
 * though servers that start later add to the total.
 */
static void
draw(struct run *r, struct lines *L, int final)
{
	char line[200], rate[32], eta[32], a[32], b[32];
	uint64_t done = 0, total = 0, f = 0, nf = 0;
	double el = now() - L->start;
	size_t k;
	int pct, multi = r->nt > 1 && r->o->jobs > 1, ph;

	prog_sum(r, &done, &total, &f, &nf);
	pct = total ? (int)(done * 100 / total) : final ? 100 : 0;
	if (pct < L->pct)
		pct = L->pct;
	L->pct = pct;
	human(done, a, sizeof(a));
	human(total, b, sizeof(b));
	rate_eta(done, total, el, final, rate, sizeof(rate), eta,
	    sizeof(eta));
	if (!multi) {
		fprintf(stderr, "\r%10s %3d%% %12s %12s (%" PRIu64 "/%" PRIu64
		    " files)\033[K", a, pct, rate, eta, f, nf);
		fflush(stderr);
		return;
	}
	/* Back to the first line drawn last time, and draw again. */
	if (L->drawn > 0)
		fprintf(stderr, "\r\033[%dA", L->drawn);
	else
		fputc('\r', stderr);
	L->drawn = 0;
	for (k = 0; k < r->nt; k++) {
		ph = __atomic_load_n(&r->t[k].prog_phase, __ATOMIC_ACQUIRE);
		if (ph == PS_PH_DONE && !L->over[k]) {
			/* Its last word: printed once, above the rest. */
			server_line(&r->t[k], L->namew, r->t[k].seconds,
			    line, sizeof(line));
			fprintf(stderr, "%s\033[K\n", line);
			L->over[k] = 1;
		}
	}
	for (k = 0; k < r->nt && !final; k++) {
		ph = __atomic_load_n(&r->t[k].prog_phase, __ATOMIC_ACQUIRE);
		if (ph == PS_PH_COMPARING || ph == PS_PH_SENDING) {
			server_line(&r->t[k], L->namew, el, line,
			    sizeof(line));
			fprintf(stderr, "%s\033[K\n", line);
			L->drawn++;
		}
	}
	fprintf(stderr, "%-*s %10s %3d%% %12s %12s (%" PRIu64 "/%" PRIu64
	    " files, %s planned)\033[K", L->namew, "total", a, pct, rate, eta,
	    f, nf, b);
	fprintf(stderr, "\033[J");
	fflush(stderr);
}

/* Wait until *DONE (under MU, signalled on CV) or 200 ms; returns *DONE. */
static int
tick(pthread_mutex_t *mu, pthread_cond_t *cv, const int *done)
{
	struct timespec ts;
	int d;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 200 * 1000 * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(mu);
	if (!*done)
		pthread_cond_timedwait(cv, mu, &ts);
	d = *done;
	pthread_mutex_unlock(mu);
	return d;
}

static void *
progress(void *arg)
{
	struct run *r = arg;
	struct lines L;
	uint64_t done, total, files;
	int finished = 0;
	size_t k;

	memset(&L, 0, sizeof(L));
	L.start = now();
	L.over = xcalloc(r->nt + 1, 1);
	L.namew = 5;		/* "total" */
	for (k = 0; k < r->nt; k++)
		if ((int)strlen(r->t[k].name) > L.namew)
			L.namew = (int)strlen(r->t[k].name);
	if (L.namew > 40)
		L.namew = 40;
	while (!finished) {
		finished = tick(&r->mu, &r->cv, &r->done);
		prog_sum(r, &done, &total, &files, NULL);
		drain_errors(r->o->task);
		ps_task_progress(r->o->task, done, total, files);
		if (r->o->progress)
			draw(r, &L, finished);
	}
	if (r->o->progress)
		fputc('\n', stderr);
	free(L.over);
	return NULL;
}

int
ps_console_run(const struct ps_console_opts *o, struct ps_source *src,
    size_t nsrc, struct ps_target *t, size_t nt)
{
	struct run r;
	pthread_t *tid, ptid, stid;
	int n, i, worst = PS_OK, started = 0, have_progress;
	size_t k;

	memset(&r, 0, sizeof(r));
	r.o = o;
	r.src = src;
	r.nsrc = nsrc;
	r.t = t;
	r.nt = nt;
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	/*
	 * Every file sent takes and frees buffers of a MiB on some thread:
	 * from an arena kept whole, not from fresh mappings (or a heap
	 * trimmed and faulted in again) each time. A tenth of the CPU of a
	 * push to many servers went to page faults.
	 */
	(void)mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_MIN);
	(void)mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_MIN);
	if (o->mode == PS_OPEN_PUSH && nt > 1) {
		r.share = ps_share_new(SHARE_BUDGET);
		r.mfs = ps_mfshare_new(nsrc, MFSHARE_BUDGET);
	}
	if (nt > 1) {
		r.dec = xcalloc(nsrc, sizeof(*r.dec));
		for (k = 0; k < nsrc; k++)
			pthread_mutex_init(&r.dec[k].mu, NULL);
	}
	n = o->jobs < 1 ? 1 : o->jobs;
	if ((size_t)n > nt)
		n = (int)nt;
	r.nsess = n;
	/*
	 * A pipe holds 64 KiB: a MiB of data is sixteen rounds of write,
	 * wake-up and read on each side (fan-out-64: a fifth of the
	 * console's CPU). Larger pipes toward the servers, within a quarter
	 * of the per-user pipe quota (pipe-user-pages-soft, 64 MiB) however
	 * many sessions run at once: beyond it the kernel would give every
	 * new pipe of the user a single page.
	 */
	r.pipe_size = PIPE_BUDGET / n;
	if (r.pipe_size > PIPE_MAX)
		r.pipe_size = PIPE_MAX;
	if (o->task != NULL)
		ps_diag_collect(1);
	have_progress = o->mode == PS_OPEN_PUSH &&
	    pthread_create(&ptid, NULL, progress, &r) == 0;
	if (pthread_create(&stid, NULL, scanner, &r) != 0) {
		ps_err("cannot start a thread");
		exit(PS_EPARTIAL);
	}
	tid = xcalloc((size_t)n, sizeof(*tid));
	for (i = 1; i < n; i++)
		if (pthread_create(&tid[i], NULL, worker, &r) == 0)
			started = i;
	worker(&r);
	for (i = 1; i <= started; i++)
		pthread_join(tid[i], NULL);
	free(tid);
	pthread_join(stid, NULL);
	pthread_mutex_lock(&r.mu);
	r.done = 1;
	pthread_cond_broadcast(&r.cv);
	pthread_mutex_unlock(&r.mu);
	if (have_progress)
		pthread_join(ptid, NULL);
	drain_errors(o->task);
	if (r.share != NULL) {
		uint64_t plans, chunks;

		ps_share_stats(r.share, &plans, &chunks);
		ps_info(2, "shared between servers: %" PRIu64 " delta plans, "
		    "%" PRIu64 " compressed pieces", plans, chunks);
		ps_share_free(r.share);
	}
	if (r.mfs != NULL) {
		ps_info(2, "servers that took another's plan: %" PRIu64,
		    ps_mfshare_hits(r.mfs));
		ps_mfshare_free(r.mfs);	/* before the scans its plans use */
	}
	for (k = 0; r.dec != NULL && k < nsrc; k++) {
		ps_manifest_free(&r.dec[k].m);
		pthread_mutex_destroy(&r.dec[k].mu);
	}
	free(r.dec);
	pthread_mutex_destroy(&r.mu);
	pthread_cond_destroy(&r.cv);
	for (k = 0; k < nt; k++)
		worst = ps_worse(worst, t[k].rc);
	for (k = 0; k < nsrc; k++)
		worst = ps_worse(worst, src[k].rc);	/* the console's own */
	if (ps_intr_signal() != 0)
		worst = PS_EINTR;
	return worst;
}

/* ---- refresh: the console receives ---- */

/* -i and -v for a refresh: the plan, from the two manifests. */
static void
pull_itemize(const struct ps_pull_opts *o, const struct ps_manifest *src,
    const struct ps_manifest *dst)
{
	struct ps_plan_opts po = { .delete = (o->flags & PS_OF_DELETE) != 0 };
	struct ps_syncplan plan;
	char code[12], *path;
	size_t i;

	if (o->itemize == NULL)
		return;
	ps_syncplan_make(src, dst, &po, &plan);
	for (i = 0; i < plan.n; i++) {
		const struct ps_action *a = &plan.a[i];
		const struct ps_entry *e = a->src != NULL ? a->src : a->dst;

		if (a->kind == PS_ACT_DIRMETA)
			continue;
		ps_itemize(a, code);
		path = ps_escape(e->path, e->path_len);
		fprintf(o->itemize, "%s %s/%s%s\n", code, o->component, path,
		    e->type == PS_FT_DIR ? "/" : "");
		free(path);
	}
	ps_syncplan_free(&plan);
}

/* The source's manifest: refused for --delete when it holds no file. */
static int
pull_source(struct ps_sess *ss, const struct ps_pull_opts *o,
    struct ps_manifest *src)
{
	struct ps_msg_open m;
	size_t i;
	int rc, any = 0;

	m.mode = PS_OPEN_PULL;
	m.flags = o->flags;
	m.dest.p = (const unsigned char *)o->dest;
	m.dest.len = strlen(o->dest);
	if ((rc = ps_send_open(ss->w, &m)) == PS_OK)
		rc = ps_wire_flush(ss->w);
	if (rc != PS_OK)
		return ps_sess_send_failed(ss, rc);
	if ((rc = ps_sess_recv_manifest(ss, src)) != PS_OK)
		return rc;
	for (i = 0; i < src->n; i++)
		any |= src->e[i].type == PS_FT_FILE;
	if ((o->flags & PS_OF_DELETE) && !any)
		return ps_sess_fail(ss, PS_EUSAGE, "refusing --delete: the "
		    "source holds no files (is it mounted?)");
	return PS_OK;
}

/* Receive into the console directory, checking against SRC. */
/* A refresh's progress line, drawn by its own thread. */
struct pullprog {
	const char *name;
	uint64_t bytes, total, files, nfiles;	/* atomics */
	int done;				/* mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void
pull_draw(struct pullprog *p, double start, int final, int *shown)
{
	uint64_t done = __atomic_load_n(&p->bytes, __ATOMIC_RELAXED);
	uint64_t total = __atomic_load_n(&p->total, __ATOMIC_RELAXED);
	char a[32], rate[32], eta[32];
	int pct;

	if (done > total)
		done = total;
	pct = total ? (int)(done * 100 / total) : final ? 100 : 0;
	if (pct < *shown)
		pct = *shown;	/* never back */
	*shown = pct;
	human(done, a, sizeof(a));
	rate_eta(done, total, now() - start, final, rate, sizeof(rate), eta,
	    sizeof(eta));
	fprintf(stderr, "\r%s: %10s %3d%% %12s %12s (%" PRIu64 "/%" PRIu64
	    " files)\033[K", p->name, a, pct, rate, eta,
	    __atomic_load_n(&p->files, __ATOMIC_RELAXED),
	    __atomic_load_n(&p->nfiles, __ATOMIC_RELAXED));
	fflush(stderr);
}

static void *
pull_progress(void *arg)
{
	struct pullprog *p = arg;
	double start = now();
	int finished = 0, shown = 0;

	while (!finished) {
		finished = tick(&p->mu, &p->cv, &p->done);
		pull_draw(p, start, finished, &shown);
	}
	fputc('\n', stderr);
	return NULL;
}

static int
pull_receive(struct ps_sess *ss, const struct ps_pull_opts *o,
    const struct ps_manifest *src, struct ps_pull_result *res)
{
	struct pullprog prog;
	pthread_t pt;
	int drawing = 0;
	struct ps_recv_opts ro;
	struct ps_recv_stats st;
	struct ps_manifest dst;
	struct ps_root root;
	int rc, dfd = -1;

	ps_clear_error();
	rc = ps_root_open(o->path, (o->flags & PS_OF_DRYRUN) ?
	    PS_ROOT_PROBE : PS_ROOT_CREATE, &root);
	if (rc != PS_OK)	/* said by fsops */
		return ps_sess_said(ss, rc == PS_EPEER ? PS_EUSAGE : rc, "%s",
		    ps_last_error());
	memset(&ro, 0, sizeof(ro));
	ro.dest = "";
	ro.dirfd = root.fd;
	ro.flags = o->flags;
	ro.source = src;
	ro.label = o->path;
	ro.cache_dirfd = -1;
	if (root.fd >= 0 && (rc = ps_dir_lock(root.fd, 0, 1, o->path, NULL,
	    NULL)) != PS_OK) {
		ps_root_close(&root);
		return ps_sess_said(ss, rc, "%s", ps_last_error());
	}
	if (root.fd >= 0 && ps_recv_account_cache(root.fd, 1, &dfd,
	    (char **)&ro.cache_name) == 0) {
		ro.cache_dirfd = dfd;
		ro.cache_writable = !(o->flags & PS_OF_DRYRUN);
	}
	if (o->itemize != NULL && ps_recv_describe(&ro, &dst) != PS_EUSAGE) {
		pull_itemize(o, src, &dst);
		ps_manifest_free(&dst);
	}
	memset(&prog, 0, sizeof(prog));
	if (o->progress && !(o->flags & PS_OF_DRYRUN)) {
		prog.name = o->component;
		pthread_mutex_init(&prog.mu, NULL);
		pthread_cond_init(&prog.cv, NULL);
		ro.progress_bytes = &prog.bytes;
		ro.progress_total = &prog.total;
		ro.progress_files = &prog.files;
		ro.progress_nfiles = &prog.nfiles;
		drawing = pthread_create(&pt, NULL, pull_progress, &prog) == 0;
	}
	rc = ps_receive(ss, &root, &ro, &st);
	if (drawing) {
		pthread_mutex_lock(&prog.mu);
		prog.done = 1;
		pthread_cond_broadcast(&prog.cv);
		pthread_mutex_unlock(&prog.mu);
		pthread_join(pt, NULL);
	}
	if (o->progress && !(o->flags & PS_OF_DRYRUN)) {
		pthread_mutex_destroy(&prog.mu);
		pthread_cond_destroy(&prog.cv);
	}
	res->files = st.files;
	res->deleted = st.deleted;
	res->errors = st.errors;
	if (rc == PS_OK && st.errors > 0)
		rc = st.worst > PS_EPARTIAL ? st.worst : PS_EPARTIAL;
	if (dfd >= 0)
		close(dfd);
	free((char *)ro.cache_name);
	ps_root_close(&root);
	return rc;
}

int
ps_console_pull(const struct ps_pull_opts *o, struct ps_pull_result *res)
{
	struct ps_manifest src = { 0 };
	struct ps_sess_opts so;
	struct ps_sess ss;
	double start = now();
	int rc, crc;

	memset(res, 0, sizeof(*res));
	if (o->url != NULL && overlaps("refresh", o->path, o->url,
	    o->dest != NULL ? o->dest : "")) {
		res->error = xstrdup("the console directory and the source's "
		    "overlap");
		return PS_EUSAGE;
	}
	memset(&so, 0, sizeof(so));
	so.label = o->source;
	so.url = o->url;
	so.rsh = o->rsh;
	so.remote_path = o->remote_path;
	so.timeout = o->timeout;
	rc = ps_sess_connect(&ss, &so);
	if (rc == PS_OK)
		rc = pull_source(&ss, o, &src);
	if (rc == PS_OK)
		rc = pull_receive(&ss, o, &src, res);
	if (rc != PS_OK)
		ps_trace("refresh of %s from %s (%s)", o->component, o->source,
		    ps_strresult(rc));
	if (ss.w != NULL) {
		res->bytes_sent = ps_wire_bytes_out(ss.w);
		res->bytes_received = ps_wire_bytes_in(ss.w);
	}
	crc = ps_sess_close(&ss, &res->error);
	if (crc != PS_OK)
		rc = ps_worse(rc == PS_EPARTIAL || rc == PS_EVERIFY ? rc :
		    PS_OK, crc);
	ps_manifest_free(&src);
	res->seconds = now() - start;
	return rc;
}
