/*
 * bundle_apply.c — the server's side of an offline bundle: verify it,
 * and apply it with push's guarantees (SPEC 10).
 *
 * Two phases. The first reads the whole archive in order: the index,
 * the console manifests (each checked against the index), then every
 * member, each checked against its XXH3-128 as it streams past. Before
 * any member is read the plan is made (the console manifests against
 * the server's tree, as push makes it) and the server's state checked:
 * a file the bundle does not carry must already be the console's, and
 * the copy under each delta must be the one the delta was made against
 * (hashed from disk). Members the server needs become hidden temporaries
 * beside their files: whole files as they stream, deltas first written
 * to a temporary of their own, checked, then applied with librsync to
 * the server's copy and the result checked against the console's
 * XXH3-128. Each temporary is fsync'd and renamed to a second hidden
 * name (ps_tmp_commit), so no descriptor stays open per file.
 *
 * Only when everything was read and checked does the second phase
 * change the destinations, in push's order: deletes, directories,
 * renames onto the final names, modes and times, directory times. Any
 * failure in the first phase removes every temporary and changes
 * nothing; an interruption anywhere leaves each file old or new, and
 * the next apply (or push) removes what is left and finishes the job.
 *
 * A file's temporary sits in its own directory when that exists on the
 * server, else in the nearest directory above it that does (a new
 * directory is only made in the second phase).
 */
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "bundle.h"
#include "delta.h"
#include "fsops.h"
#include "receiver.h"
#include "syncplan.h"

#define CHUNK	(1u << 20)

struct staged {
	uint32_t comp;
	const struct ps_entry *e;	/* the console's file */
	char *stage;		/* the temporary's name below ROOT */
	char *final;		/* the file's name below ROOT */
	int ready;		/* complete under its staged name */
};

struct dest {
	int fd;			/* ROOT/DEST, or -1 while it does not exist */
	int made;		/* made by this apply */
	char *label;		/* ROOT/DEST for messages */
	struct ps_manifest cur;	/* the server's tree */
	struct ps_syncplan plan;
	const struct ps_action **send;	/* per console entry: its SEND */
	uint32_t *member;	/* per console entry: member index + 1 */
	size_t *staged;		/* per console entry: staged index + 1 */
};

struct ap {
	const struct ps_bundle_apply_opts *o;
	struct ps_bundle_apply_result *r;
	char *label;		/* the bundle, for messages */
	int fd;
	struct ps_br *br;
	struct ps_bindex x;
	struct ps_manifest *mf;	/* the console manifests */
	struct dest *d;
	struct ps_root root;
	int root_made;
	int writing;		/* apply, not verify or dry run */
	char tok[17];		/* names this apply's temporaries */
	uint64_t seq;
	struct staged *st;
	size_t nst, capst;
	struct ps_tmp tmp;	/* being written */
	struct ps_tmp spool;	/* a delta, before it is applied */
	unsigned char *buf;
	size_t nconflict;
	size_t nconflict_file;
};

/* ---- names ---- */

/* DEST, DIR and NAME (LEN bytes) joined with '/', skipping empty ones. */
static char *
join(const char *dest, const char *dir, size_t dlen, const char *name,
    size_t len)
{
	struct buf b = { 0 };

	if (*dest != '\0')
		buf_addstr(&b, dest);
	if (dlen > 0) {
		if (b.len > 0)
			buf_addc(&b, '/');
		buf_add(&b, dir, dlen);
	}
	if (len > 0) {
		if (b.len > 0)
			buf_addc(&b, '/');
		buf_add(&b, name, len);
	}
	buf_addc(&b, '\0');
	return (char *)b.p;
}

/* "DEST/PATH" of a console entry, escaped, for messages. */
static char *
shown(const struct ap *a, uint32_t c, const struct ps_entry *e)
{
	char *rel = join(a->x.comp[c].dest, "", 0, e->path, e->path_len);
	char *s = ps_escape(rel, strlen(rel));

	free(rel);
	return s;
}

static int
bad_member(struct ap *a, size_t i, const char *why)
{
	size_t len;
	char *name = ps_bundle_member_name(&a->x, &a->x.m[i], &len);
	char *e = ps_escape(name, len);

	ps_err("%s: member %s: %s", a->label, e, why);
	free(e);
	free(name);
	return PS_EVERIFY;
}

static int
not_against(struct ap *a, uint32_t c, const struct ps_entry *e,
    int missing)
{
	char *s = shown(a, c, e);

	ps_err("bundle: %s: %s", s, missing ? "the server has no copy of "
	    "it, but this bundle was made against one" : "the server's "
	    "copy is not the one this bundle was made against");
	free(s);
	return PS_EVERIFY;
}

/* ---- reading the archive ---- */

/* The next member must be member I of the index (its name and size). */
static int
expect_member(struct ap *a, size_t i)
{
	const char *name;
	size_t len, wlen;
	uint64_t size;
	char *want, *e;
	int rc;

	if ((rc = ps_br_next(a->br, &name, &len, &size)) != PS_OK)
		return rc;
	want = ps_bundle_member_name(&a->x, &a->x.m[i], &wlen);
	if (name == NULL) {
		e = ps_escape(want, wlen);
		ps_err("%s: truncated: it ends before member %s", a->label, e);
		rc = PS_EVERIFY;
	} else if (len != wlen || memcmp(name, want, len) != 0) {
		e = ps_escape(name, len);
		ps_err("%s: member %s is not the one the index lists next "
		    "(out of order, or not in the index)", a->label, e);
		rc = PS_EVERIFY;
	} else {
		e = NULL;
		if (size != a->x.m[i].size)
			rc = bad_member(a, i, "its size is not the one in the "
			    "index");
	}
	free(e);
	free(want);
	return rc;
}

/*
 * Read the current member (member I) to its end, hashing it and writing
 * it to T (may be NULL); then check it against the index.
 */
static int
take_member(struct ap *a, size_t i, struct ps_tmp *t)
{
	const struct ps_bmember *m = &a->x.m[i];
	struct ps_h128 h;
	uint8_t got[16];
	uint64_t n = 0;
	ssize_t k;
	int rc = PS_OK;

	ps_h128_init(&h);
	for (;;) {
		if (ps_intr_signal() != 0) {
			rc = PS_EINTR;
			break;
		}
		if ((k = ps_br_read(a->br, a->buf, CHUNK, &rc)) <= 0)
			break;
		ps_h128_update(&h, a->buf, (size_t)k);
		n += (uint64_t)k;
		if (t != NULL && (rc = ps_tmp_write(t, a->buf, (size_t)k)) !=
		    PS_OK)
			break;
	}
	ps_h128_final(&h, got);
	if (rc != PS_OK)
		return rc;
	a->r->members++;
	if (n != m->size || memcmp(got, m->hash, 16) != 0)
		return bad_member(a, i, "its XXH3-128 is not the one in the "
		    "index (damaged or tampered with)");
	return PS_OK;
}

static int
read_index(struct ap *a)
{
	const char *name;
	char err[256];
	size_t len;
	uint64_t size;
	ssize_t k;
	int rc;

	if ((rc = ps_br_next(a->br, &name, &len, &size)) != PS_OK)
		return rc;
	if (name == NULL || strcmp(name, PS_BUNDLE_INDEX) != 0) {
		ps_err("%s: not a patchsync bundle (its first member is not "
		    PS_BUNDLE_INDEX ")", a->label);
		return PS_EVERIFY;
	}
	for (;;) {
		if ((k = ps_br_read(a->br, a->buf, CHUNK, &rc)) < 0)
			return rc;
		if (k == 0)
			break;
		if (ps_bidx_feed(&a->x, a->buf, (size_t)k, err,
		    sizeof(err)) != 0) {
			ps_err("%s: index: %s", a->label, err);
			return PS_EVERIFY;
		}
	}
	if (ps_bidx_end(&a->x, err, sizeof(err)) != 0) {
		ps_err("%s: index: %s", a->label, err);
		return PS_EVERIFY;
	}
	return PS_OK;
}

static int
put_entry(struct ps_entry *e, void *arg)
{
	ps_manifest_put(arg, e);
	return 0;
}

/* Component K's console manifest: member K. */
static int
read_manifest(struct ap *a, size_t k)
{
	const struct ps_bmember *m = &a->x.m[k];
	struct ps_mfr *r;
	struct ps_h128 h;
	uint8_t got[16];
	uint64_t n = 0;
	ssize_t len;
	char *why;
	int rc = PS_OK;

	if ((rc = expect_member(a, k)) != PS_OK)
		return rc;
	r = ps_mfr_new();
	ps_h128_init(&h);
	while ((len = ps_br_read(a->br, a->buf, CHUNK, &rc)) > 0) {
		ps_h128_update(&h, a->buf, (size_t)len);
		n += (uint64_t)len;
		if (ps_mfr_feed(r, a->buf, (size_t)len, put_entry,
		    &a->mf[k]) != 0)
			break;
	}
	ps_h128_final(&h, got);
	if (rc == PS_OK && len > 0) {
		why = xasprintf("not a valid manifest: %s", ps_mfr_error(r));
		rc = bad_member(a, k, why);
		free(why);
	} else if (rc == PS_OK && (n != m->size ||
	    memcmp(got, m->hash, 16) != 0)) {
		rc = bad_member(a, k, "its XXH3-128 is not the one in the "
		    "index (damaged or tampered with)");
	} else if (rc == PS_OK && ps_mfr_done(r) != 0) {
		why = xasprintf("not a valid manifest: %s", ps_mfr_error(r));
		rc = bad_member(a, k, why);
		free(why);
	}
	if (rc == PS_OK)
		a->r->members++;
	ps_mfr_free(r);
	return rc;
}

/* Every file member names a console file, with its size and hash. */
static int
crosscheck(struct ap *a)
{
	size_t i, c;

	for (c = 0; c < a->x.ncomp; c++) {
		a->d[c].member = xcalloc(a->mf[c].n + 1, sizeof(uint32_t));
		a->d[c].send = xcalloc(a->mf[c].n + 1, sizeof(void *));
		a->d[c].staged = xcalloc(a->mf[c].n + 1, sizeof(size_t));
	}
	for (i = a->x.ncomp; i < a->x.nm; i++) {
		const struct ps_bmember *m = &a->x.m[i];
		const struct ps_entry *e;

		e = ps_manifest_find(&a->mf[m->comp], m->path, m->path_len);
		if (e == NULL || e->type != PS_FT_FILE)
			return bad_member(a, i, "not a file of the console's "
			    "manifest");
		if (m->kind == PS_BK_FILE ? (m->size != e->size ||
		    memcmp(m->hash, e->hash, 16) != 0) :
		    (m->target_size != e->size ||
		    memcmp(m->target_hash, e->hash, 16) != 0))
			return bad_member(a, i, "it does not make the file "
			    "the console's manifest describes");
		a->d[m->comp].member[e - a->mf[m->comp].e] = (uint32_t)i + 1;
	}
	return PS_OK;
}

/* ---- the server ---- */

static void
waiting(const char *why, void *arg)
{
	(void)arg;
	ps_warn("waiting: %s", why);
}

static int
open_root(struct ap *a)
{
	struct stat st;
	int dir = a->x.ncomp == 1 && *a->x.comp[0].dest == '\0';
	int mode = !dir ? PS_ROOT_EXISTING : a->writing ? PS_ROOT_CREATE :
	    PS_ROOT_PROBE;
	int rc, missing;

	missing = stat(a->o->root, &st) != 0 && errno == ENOENT;
	rc = ps_root_open(a->o->root, mode, &a->root);
	a->root_made = rc == PS_OK && missing && a->root.fd >= 0;
	if (rc != PS_OK)
		return rc;
	if (a->root.fd < 0)
		return PS_OK;	/* a dry run into a directory still to make */
	if (!dir)
		rc = a->writing ? ps_root_lock(&a->root, 1, waiting, NULL) :
		    ps_root_lock_shared(&a->root, 1, waiting, NULL);
	return rc;
}

/* The server's cache of ROOT/DEST's manifest, read only (push's). */
static void
cache_of(struct ap *a, const char *dest, int dfd, struct ps_recv_opts *ro)
{
	ro->cache_dirfd = -1;
	ro->cache_name = NULL;
	if (*dest == '\0') {
		if (ps_recv_account_cache(dfd, 0, &ro->cache_dirfd,
		    (char **)&ro->cache_name) != 0)
			ro->cache_dirfd = -1;
		return;
	}
	if (ps_dir_open_quiet(&a->root, PS_META_DIR "/cache",
	    &ro->cache_dirfd) != PS_OK) {
		ro->cache_dirfd = -1;
		return;
	}
	ro->cache_name = xasprintf("%016" PRIx64 ".psm",
	    (uint64_t)XXH3_64bits(dest, strlen(dest)));
}

/* Open, lock and describe ROOT/DEST of component C. */
static int
open_dest(struct ap *a, size_t c)
{
	struct dest *d = &a->d[c];
	const char *dest = a->x.comp[c].dest;
	struct ps_recv_opts ro;
	int rc;

	d->fd = -1;
	d->label = *dest ? xasprintf("%s/%s", a->o->root, dest) :
	    xstrdup(a->o->root);
	if (a->root.fd < 0)
		return PS_OK;
	ps_clear_error();
	rc = ps_dest_open(&a->root, dest, 0, &d->fd);
	if (rc == PS_EPARTIAL && errno == ENOENT)
		return PS_OK;	/* nothing there yet */
	if (rc == PS_OK)
		rc = ps_dir_lock(d->fd, !a->writing, 1, d->label, waiting,
		    NULL);
	if (rc != PS_OK)
		return rc;
	memset(&ro, 0, sizeof(ro));
	ro.dest = dest;
	ro.dirfd = d->fd;
	ro.report_only = 1;
	ro.label = d->label;
	cache_of(a, dest, d->fd, &ro);
	rc = ps_recv_describe(&ro, &d->cur);
	if (ro.cache_dirfd >= 0)
		close(ro.cache_dirfd);
	free((char *)ro.cache_name);
	if (rc == PS_EPARTIAL)
		ps_err("bundle: some files under %s cannot be read; nothing "
		    "applied", d->label);
	return rc;
}

/* ---- the plan and the server's state ---- */

static int
has_files(const struct ps_manifest *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (m->e[i].type == PS_FT_FILE)
			return 1;
	return 0;
}

/* Is the server's copy of E (its SEND action A) the delta's basis? */
static int
check_basis(struct ap *a, uint32_t c, const struct ps_action *act,
    const struct ps_bmember *m)
{
	uint8_t h[16];
	uint64_t size;
	struct stat st;
	char *rel;
	int fd, rc;

	if (act->dst == NULL)
		return not_against(a, c, act->src, 1);
	if (act->dst->size != m->basis_size)
		return not_against(a, c, act->src, 0);
	rel = join(a->x.comp[c].dest, "", 0, act->src->path,
	    act->src->path_len);
	rc = ps_file_open_quiet(&a->root, rel, &fd, &st);
	free(rel);
	if (rc == PS_EPARTIAL && errno == ENOENT)
		return not_against(a, c, act->src, 1);
	if (rc != PS_OK)
		return rc;
	rc = ps_h128_fd(fd, &size, h);
	close(fd);
	if (rc != 0) {
		char *s = shown(a, c, act->src);

		ps_err("bundle: %s: cannot read the server's copy: %s", s,
		    strerror(errno));
		free(s);
		return PS_EPARTIAL;
	}
	if (size != m->basis_size || memcmp(h, m->basis_hash, 16) != 0)
		return not_against(a, c, act->src, 0);
	return PS_OK;
}

/*
 * The index in the console's manifest of component C of E, an entry of
 * it or a plan's copy of one (plans keep their own copies).
 */
static size_t
mf_index(const struct ap *a, uint32_t c, const struct ps_entry *e)
{
	const struct ps_manifest *mf = &a->mf[c];

	return (size_t)(ps_manifest_find(mf, e->path, e->path_len) - mf->e);
}

/* Plan component C and check that the bundle fits the server. */
static int
plan_comp(struct ap *a, uint32_t c)
{
	struct ps_plan_opts po = { .delete = a->o->delete };
	struct dest *d = &a->d[c];
	const struct ps_manifest *mf = &a->mf[c];
	size_t i, k;
	int rc = PS_OK;

	if (a->o->delete && !has_files(mf)) {
		ps_err("bundle: refusing --delete: the console's manifest of "
		    "%s holds no files", d->label);
		return PS_EUSAGE;
	}
	ps_syncplan_make(mf, &d->cur, &po, &d->plan);
	a->nconflict += d->plan.nconflict;
	a->nconflict_file += d->plan.nconflict_file;
	for (i = 0; i < d->plan.n && rc == PS_OK; i++) {
		const struct ps_action *act = &d->plan.a[i];

		if (act->kind != PS_ACT_SEND)
			continue;
		k = mf_index(a, c, act->src);
		d->send[k] = act;
		if (d->member[k] == 0)	/* needed, and not carried */
			rc = not_against(a, c, act->src, act->dst == NULL);
		else if (a->x.m[d->member[k] - 1].kind == PS_BK_DELTA)
			rc = check_basis(a, c, act,
			    &a->x.m[d->member[k] - 1]);
	}
	return rc;
}

/* ---- the first phase: members into temporaries ---- */

/* The staged name of console file E of component C. */
static struct staged *
new_staged(struct ap *a, uint32_t c, const struct ps_entry *e)
{
	const struct ps_entry *p;
	struct staged *s;
	size_t k;
	char name[64];

	if (a->nst == a->capst) {
		a->capst = a->capst ? 2 * a->capst : 64;
		a->st = xreallocarray(a->st, a->capst, sizeof(*a->st));
	}
	s = &a->st[a->nst++];
	memset(s, 0, sizeof(*s));
	s->comp = c;
	s->e = e;
	/* The deepest directory above E that the server has. */
	for (k = e->path_len; k > 0; k--) {
		if (e->path[k - 1] != '/')
			continue;
		p = ps_manifest_find(&a->d[c].cur, e->path, k - 1);
		if (p != NULL && p->type == PS_FT_DIR)
			break;
	}
	snprintf(name, sizeof(name), "%sb%s.%" PRIu64, PS_TMP_PREFIX, a->tok,
	    a->seq++);
	s->stage = join(a->x.comp[c].dest, e->path, k > 0 ? k - 1 : 0, name,
	    strlen(name));
	s->final = join(a->x.comp[c].dest, "", 0, e->path, e->path_len);
	a->d[c].staged[mf_index(a, c, e)] = a->nst;
	return s;
}

/* ROOT/DEST must exist before anything is staged in it. */
static int
need_dest(struct ap *a, uint32_t c)
{
	struct dest *d = &a->d[c];
	int rc;

	if (d->fd >= 0)
		return PS_OK;
	rc = ps_dest_open(&a->root, a->x.comp[c].dest, 1, &d->fd);
	d->made = rc == PS_OK;
	return rc;
}

static int
stage_file(struct ap *a, size_t i, const struct ps_action *act)
{
	const struct ps_bmember *m = &a->x.m[i];
	const struct ps_entry *e = act->src;
	struct staged *s;
	int rc;

	if ((rc = need_dest(a, m->comp)) != PS_OK)
		return rc;
	s = new_staged(a, m->comp, e);
	if ((rc = ps_tmp_create(&a->root, s->stage, &a->tmp)) == PS_OK &&
	    (rc = take_member(a, i, &a->tmp)) == PS_OK &&
	    (rc = ps_tmp_commit(&a->tmp, e->mode, e->mtime_sec,
	    e->mtime_nsec)) == PS_OK)
		s->ready = 1;
	ps_tmp_abort(&a->tmp);
	return rc;
}

/* Apply the delta in the spool to the server's copy, into a->tmp. */
static int
patch(struct ap *a, const struct ps_bmember *m, const struct staged *s)
{
	struct ps_patch *p;
	struct stat st;
	uint64_t off = 0, size;
	uint8_t h[16];
	ssize_t n;
	char *e;
	int bfd, rc;

	if ((rc = ps_file_open(&a->root, s->final, &bfd, &st)) != PS_OK)
		return rc;
	if ((uint64_t)st.st_size != m->basis_size) {
		close(bfd);
		return not_against(a, s->comp, s->e, 0);
	}
	p = ps_patch_begin(bfd, 0, m->basis_size, a->tmp.fd, 0,
	    m->target_size);
	while (off < m->size && rc == PS_OK) {
		n = pread(a->spool.fd, a->buf, CHUNK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = PS_EPARTIAL;
			break;
		}
		rc = ps_patch_feed(p, a->buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (rc == PS_OK)
		rc = ps_patch_end(p);
	else
		ps_patch_abort(p);
	close(bfd);
	e = ps_escape(s->final, strlen(s->final));
	if (rc == PS_EPEER) {
		ps_err("bundle: %s: the delta does not apply to the server's "
		    "copy", e);
		rc = PS_EVERIFY;
	} else if (rc != PS_OK) {
		ps_err("bundle: %s: cannot write the new version: %s", e,
		    strerror(errno));
		rc = PS_EPARTIAL;
	} else if (ps_h128_fd(a->tmp.fd, &size, h) != 0 ||
	    size != s->e->size || memcmp(h, s->e->hash, 16) != 0) {
		ps_err("bundle: %s: the file the delta made is not the "
		    "console's (XXH3-128 differs); nothing applied", e);
		rc = PS_EVERIFY;
	}
	free(e);
	return rc;
}

static int
stage_delta(struct ap *a, size_t i, const struct ps_action *act)
{
	const struct ps_bmember *m = &a->x.m[i];
	const struct ps_entry *e = act->src;
	struct staged *s;
	char *spool;
	int rc;

	if ((rc = need_dest(a, m->comp)) != PS_OK)
		return rc;
	s = new_staged(a, m->comp, e);
	/* The delta's bytes are checked before librsync sees them. */
	spool = xasprintf("%s.d", s->stage);
	rc = ps_tmp_create(&a->root, spool, &a->spool);
	free(spool);
	if (rc == PS_OK)
		rc = take_member(a, i, &a->spool);
	if (rc == PS_OK)
		rc = ps_tmp_create(&a->root, s->stage, &a->tmp);
	if (rc == PS_OK)
		rc = patch(a, m, s);
	if (rc == PS_OK && (rc = ps_tmp_commit(&a->tmp, e->mode, e->mtime_sec,
	    e->mtime_nsec)) == PS_OK)
		s->ready = 1;
	ps_tmp_abort(&a->tmp);
	ps_tmp_abort(&a->spool);
	return rc;
}

static int
read_members(struct ap *a)
{
	const char *name;
	size_t i, len;
	uint64_t size;
	int rc = PS_OK;

	for (i = a->x.ncomp; i < a->x.nm && rc == PS_OK; i++) {
		const struct ps_bmember *m = &a->x.m[i];
		const struct ps_action *act = NULL;
		const struct ps_entry *e;

		if ((rc = expect_member(a, i)) != PS_OK)
			break;
		e = ps_manifest_find(&a->mf[m->comp], m->path, m->path_len);
		if (a->writing)
			act = a->d[m->comp].send[e - a->mf[m->comp].e];
		if (act == NULL) {
			rc = take_member(a, i, NULL);
			a->r->skipped += a->writing;
		} else if (m->kind == PS_BK_FILE) {
			rc = stage_file(a, i, act);
		} else {
			rc = stage_delta(a, i, act);
		}
	}
	if (rc != PS_OK)
		return rc;
	/* Nothing may follow the last member the index lists. */
	if ((rc = ps_br_next(a->br, &name, &len, &size)) != PS_OK)
		return rc;
	if (name != NULL) {
		char *e = ps_escape(name, len);

		ps_err("%s: member %s is not in the index", a->label, e);
		free(e);
		return PS_EVERIFY;
	}
	return ps_intr_signal() != 0 ? PS_EINTR : PS_OK;
}

/* ---- the second phase ---- */

static void
itemize(struct ap *a)
{
	char code[12], *path;
	size_t c, i;

	if (a->o->itemize == NULL)
		return;
	for (c = 0; c < a->x.ncomp; c++) {
		const struct ps_syncplan *p = &a->d[c].plan;

		for (i = 0; i < p->n; i++) {
			const struct ps_action *act = &p->a[i];
			const struct ps_entry *e = act->src ? act->src :
			    act->dst;

			if (act->kind == PS_ACT_DIRMETA ||
			    (act->kind == PS_ACT_DELETE && !a->o->delete))
				continue;
			ps_itemize(act, code);
			path = shown(a, (uint32_t)c, e);
			fprintf(a->o->itemize, "%s %s%s\n", code, path,
			    e->type == PS_FT_DIR ? "/" : "");
			free(path);
		}
	}
}

/* Rename staged file S onto its final name. */
static int
put_in_place(struct ap *a, struct staged *s)
{
	const char *sb = strrchr(s->stage, '/'), *fb = strrchr(s->final, '/');
	char *sdir = xstrndup(s->stage, sb ? (size_t)(sb - s->stage) : 0);
	char *fdir = xstrndup(s->final, fb ? (size_t)(fb - s->final) : 0);
	int sfd = -1, ffd = -1, rc;

	rc = ps_dir_open(&a->root, sdir, 0, &sfd);
	if (rc == PS_OK)
		rc = ps_dir_open(&a->root, fdir, 1, &ffd);
	if (rc == PS_OK && renameat(sfd, sb ? sb + 1 : s->stage, ffd,
	    fb ? fb + 1 : s->final) != 0) {
		char *e = ps_escape(s->final, strlen(s->final));

		ps_err("bundle: %s: cannot rename the new version into place: "
		    "%s", e, strerror(errno));
		free(e);
		rc = PS_EPARTIAL;
	}
	if (rc == PS_OK) {
		s->ready = 0;
		(void)fsync(ffd);
		if (strcmp(sdir, fdir) != 0)
			(void)fsync(sfd);
	}
	if (sfd >= 0)
		close(sfd);
	if (ffd >= 0)
		close(ffd);
	free(sdir);
	free(fdir);
	return rc;
}

/* Mode and time of an existing file. */
static int
set_meta(struct ap *a, const char *rel, const struct ps_entry *e)
{
	struct timespec ts[2];
	struct stat st;
	char *esc;
	int fd, rc;

	if ((rc = ps_file_open(&a->root, rel, &fd, &st)) != PS_OK)
		return rc;
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)e->mtime_sec;
	ts[1].tv_nsec = (long)e->mtime_nsec;
	if (ps_set_mode(fd, e->mode & PS_MODE_APPLIED, rel) != PS_OK) {
		rc = PS_EPARTIAL;
	} else if (futimens(fd, ts) != 0) {
		esc = ps_escape(rel, strlen(rel));
		ps_err("bundle: %s: cannot set its time: %s", esc,
		    strerror(errno));
		free(esc);
		rc = PS_EPARTIAL;
	}
	close(fd);
	return rc;
}

static int
do_action(struct ap *a, uint32_t c, const struct ps_action *act)
{
	const struct ps_entry *e = act->src ? act->src : act->dst;
	struct dest *d = &a->d[c];
	char *rel = join(a->x.comp[c].dest, "", 0, e->path, e->path_len);
	size_t k;
	int rc = PS_OK;

	switch (act->kind) {
	case PS_ACT_DELETE:
		if (!a->o->delete)
			break;
		rc = e->type == PS_FT_DIR ? ps_rmdir(&a->root, rel) :
		    ps_unlink(&a->root, rel);
		if (rc == PS_OK && e->type == PS_FT_FILE)
			a->r->deleted++;
		break;
	case PS_ACT_MKDIR:
		rc = ps_mkdir(&a->root, rel, e->mode);
		break;
	case PS_ACT_SEND:
		k = d->staged[mf_index(a, c, e)];
		rc = k == 0 ? PS_EPARTIAL : put_in_place(a, &a->st[k - 1]);
		if (rc == PS_OK)
			a->r->files++;
		break;
	case PS_ACT_META:
		if ((rc = set_meta(a, rel, e)) == PS_OK)
			a->r->meta++;
		break;
	case PS_ACT_DIRMETA:
		rc = ps_mkdir(&a->root, rel, e->mode);
		if (rc == PS_OK)
			rc = ps_set_times(&a->root, rel, e->mtime_sec,
			    e->mtime_nsec);
		break;
	}
	free(rel);
	return rc;
}

/* Leftover temporaries of an interrupted push or apply: they go. */
static void
sweep(struct ap *a, uint32_t c)
{
	const struct ps_manifest *cur = &a->d[c].cur;
	size_t i;
	char *rel;

	for (i = 0; i < cur->ntemps; i++) {
		rel = join(a->x.comp[c].dest, "", 0, cur->temps[i],
		    strlen(cur->temps[i]));
		if (ps_unlink(&a->root, rel) != PS_OK)
			ps_trace("bundle: a leftover temporary stays");
		free(rel);
	}
}

/* Is E one of the directories that could not be made, or below one? */
static int
below_failed(const struct ps_entry *e, const struct ps_entry **failed,
    size_t n)
{
	size_t k, len;

	for (k = 0; k < n; k++) {
		len = failed[k]->path_len;
		if (e->path_len >= len && memcmp(e->path, failed[k]->path,
		    len) == 0 && (e->path_len == len || e->path[len] == '/'))
			return 1;
	}
	return 0;
}

/* Component C's plan, in order; below a failed mkdir, quietly nothing. */
static int
commit_comp(struct ap *a, uint32_t c)
{
	const struct ps_syncplan *p = &a->d[c].plan;
	const struct ps_entry **failed = NULL, *e;
	size_t i, nfailed = 0;
	int rc, worst = PS_OK;

	for (i = 0; i < p->n; i++) {
		if (ps_intr_signal() != 0) {
			worst = PS_EINTR;
			break;
		}
		e = p->a[i].src ? p->a[i].src : p->a[i].dst;
		if (below_failed(e, failed, nfailed)) {
			worst = ps_worse(worst, PS_EPARTIAL);
			continue;
		}
		if ((rc = do_action(a, c, &p->a[i])) == PS_OK)
			continue;
		worst = ps_worse(worst, PS_EPARTIAL);
		if (p->a[i].kind == PS_ACT_MKDIR) {
			failed = xreallocarray(failed, nfailed + 1,
			    sizeof(*failed));
			failed[nfailed++] = e;
		}
	}
	free(failed);
	return worst;
}

static int
commit(struct ap *a)
{
	size_t c;
	int rc, worst = a->nconflict > 0 ? PS_EPARTIAL : PS_OK;
	char what[200];

	if (a->nconflict > 0)
		ps_err("bundle: %s; not replaced without --delete",
		    ps_conflicts_text(a->nconflict - a->nconflict_file,
		    a->nconflict_file, what, sizeof(what)));
	for (c = 0; c < a->x.ncomp; c++) {
		struct dest *d = &a->d[c];

		if ((rc = need_dest(a, (uint32_t)c)) != PS_OK)
			return ps_worse(worst, rc);
		d->made = 0;	/* it stays, whatever happens now */
		sweep(a, (uint32_t)c);
		worst = ps_worse(worst, commit_comp(a, (uint32_t)c));
		if (worst == PS_EINTR)
			break;
	}
	return worst;
}

/* A failure: remove every temporary and what the first phase made. */
static void
discard(struct ap *a)
{
	size_t i, c;

	ps_diag_print(0);	/* the failure was said; cleanup is quiet */
	ps_tmp_abort(&a->tmp);
	ps_tmp_abort(&a->spool);
	for (i = 0; i < a->nst; i++)
		if (a->st[i].ready)
			(void)ps_unlink(&a->root, a->st[i].stage);
	for (c = 0; a->d != NULL && c < a->x.ncomp; c++) {
		if (!a->d[c].made)
			continue;
		close(a->d[c].fd);
		a->d[c].fd = -1;
		if (*a->x.comp[c].dest != '\0')
			(void)ps_rmdir(&a->root, a->x.comp[c].dest);
	}
	ps_diag_print(1);
}

/* ---- the whole ---- */

static void
ap_free(struct ap *a)
{
	size_t c, i;

	for (i = 0; i < a->nst; i++) {
		free(a->st[i].stage);
		free(a->st[i].final);
	}
	free(a->st);
	for (c = 0; a->d != NULL && c < a->x.ncomp; c++) {
		struct dest *d = &a->d[c];

		if (d->fd >= 0)
			close(d->fd);
		free(d->label);
		ps_manifest_free(&d->cur);
		ps_syncplan_free(&d->plan);
		free(d->send);
		free(d->member);
		free(d->staged);
	}
	free(a->d);
	for (c = 0; a->mf != NULL && c < a->x.ncomp; c++)
		ps_manifest_free(&a->mf[c]);
	free(a->mf);
	ps_bindex_free(&a->x);
	ps_br_close(a->br);
	if (a->fd >= 0)
		close(a->fd);
	free(a->buf);
	free(a->label);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The bundle's index and manifests, read and checked. */
static int
read_head(struct ap *a)
{
	size_t c;
	int rc;

	if ((rc = ps_bundle_open_file(a->o->file, &a->fd)) != PS_OK ||
	    (rc = ps_br_open(a->fd, a->label, &a->br)) != PS_OK ||
	    (rc = read_index(a)) != PS_OK)
		return rc;
	a->mf = xcalloc(a->x.ncomp, sizeof(*a->mf));
	a->d = xcalloc(a->x.ncomp, sizeof(*a->d));
	for (c = 0; c < a->x.ncomp; c++)
		a->d[c].fd = -1;
	for (c = 0; c < a->x.ncomp && rc == PS_OK; c++)
		rc = read_manifest(a, c);
	if (rc == PS_OK)
		rc = crosscheck(a);
	return rc;
}

/* The server's side: open, lock, describe, plan, check its state. */
static int
prepare(struct ap *a)
{
	size_t c;
	int rc;

	if ((rc = open_root(a)) != PS_OK)
		return rc;
	for (c = 0; c < a->x.ncomp && rc == PS_OK; c++)
		rc = open_dest(a, c);
	for (c = 0; c < a->x.ncomp && rc == PS_OK; c++)
		rc = plan_comp(a, (uint32_t)c);
	return rc;
}

static void
random_token(char tok[17])
{
	unsigned char r[8];
	uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		memcpy(r, &t, sizeof(r));
	ps_hex(r, sizeof(r), tok);
}

int
ps_bundle_apply(const struct ps_bundle_apply_opts *o,
    struct ps_bundle_apply_result *r)
{
	struct ap a;
	double start = now();
	int rc, e;

	memset(r, 0, sizeof(*r));
	memset(&a, 0, sizeof(a));
	a.o = o;
	a.r = r;
	a.fd = -1;
	a.root.fd = -1;
	a.root.lockfd = -1;
	a.label = ps_escape(o->file, strlen(o->file));
	a.buf = xmalloc(CHUNK);
	a.writing = o->root != NULL && !o->dry_run;
	random_token(a.tok);
	ps_clear_error();
	rc = read_head(&a);
	if (rc == PS_OK && o->root != NULL)
		rc = prepare(&a);
	if (rc == PS_OK)
		rc = read_members(&a);
	if (rc == PS_OK && o->root != NULL)
		itemize(&a);
	if (rc == PS_OK && a.writing) {
		/* From here on the destinations change. */
		a.root_made = 0;
		rc = commit(&a);
	}
	if (a.writing && (e = ps_mode_unkept()) != 0)
		ps_warn("%s: this filesystem does not keep permission bits "
		    "(%s): files are written without them", o->root,
		    strerror(e));
	if (rc != PS_OK && a.writing)
		discard(&a);
	r->bytes_read = a.br != NULL ? ps_br_bytes(a.br) : 0;
	ap_free(&a);
	ps_root_close(&a.root);
	if (rc != PS_OK && a.root_made)
		(void)rmdir(o->root);
	if (rc != PS_OK && *ps_last_error() != '\0')
		r->error = xstrdup(ps_last_error());
	r->seconds = now() - start;
	return rc;
}

int
ps_bundle_read_index(const char *file, struct ps_bindex *x)
{
	struct ps_bundle_apply_opts o;
	struct ps_bundle_apply_result r;
	struct ap a;
	int rc;

	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	memset(&a, 0, sizeof(a));
	o.file = file;
	a.fd = -1;
	a.o = &o;
	a.r = &r;
	a.label = ps_escape(file, strlen(file));
	a.buf = xmalloc(CHUNK);
	if ((rc = ps_bundle_open_file(file, &a.fd)) == PS_OK &&
	    (rc = ps_br_open(a.fd, a.label, &a.br)) == PS_OK)
		rc = read_index(&a);
	*x = a.x;
	memset(&a.x, 0, sizeof(a.x));
	ap_free(&a);
	return rc;
}
