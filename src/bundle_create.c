/*
 * bundle_create.c — the console's side of an offline bundle: scan the
 * console directories, plan every member against the server state named
 * by --against (or none, --full), write the archive.
 *
 * Deltas come from the same engine as push: the block matcher against
 * the server entry's weak and strong block sums, with the console's own
 * block sums as the hint, written in librsync's delta format (delta.h).
 * The index goes first and holds every member's size and XXH3-128, so
 * the work is done in two passes over what changed: the first plans and
 * hashes each member, the second writes it and checks that it came out
 * the same (a console file that changed in between fails the bundle,
 * which is then not written). Memory: the manifests, the ops of the
 * deltas, a buffer per thread; never a member.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "console.h"
#include "delta.h"
#include "fsops.h"
#include "match.h"
#include "pool.h"

#define DELTA_MIN	(32u << 10)	/* smaller files go whole */
#define MATCH_THREADS_MIN (8u << 20)	/* files this big match on 2 cores */
#define CHUNK		(1u << 20)
#define MF_CHUNK	(1u << 20)	/* manifest bytes buffered */

/* What a member is made of (beside its index entry). */
struct plan {
	const struct ps_entry *e;	/* the console's file */
	struct ps_mops ops;		/* a delta's ops */
};

struct mk {
	const struct ps_bundle_create_opts *o;
	struct ps_source *src;		/* one per component */
	struct ps_manifest *mf;		/* each one's manifest */
	struct ps_bindex x;
	struct plan *plan;		/* beside x.m */
	size_t cap;
	struct ps_bundle_create_stats *st;
	struct ps_bw *w;		/* pass 2 */
	char *label;			/* the output, for messages */
};

/* ---- hashing and writing through one emitter ---- */

struct sink {
	struct ps_h128 h;
	uint64_t n;
	struct ps_bw *w;		/* NULL: hash only */
};

static int
sink_emit(const void *p, size_t n, void *arg)
{
	struct sink *s = arg;

	ps_h128_update(&s->h, p, n);
	s->n += n;
	return s->w != NULL ? ps_bw_data(s->w, p, n) : PS_OK;
}

/*
 * M's portable encoding without block sums (apply needs none), streamed
 * to EMIT a MiB at a time: a manifest is never held encoded.
 */
static int
mf_stream(const struct ps_manifest *m, struct sink *s)
{
	struct buf b = { 0 };
	struct ps_entry e;
	struct ps_mfw w;
	size_t i;
	int rc = PS_OK;

	ps_mfw_begin(&w, 0, 0, &b);
	for (i = 0; i < m->n && rc == PS_OK; i++) {
		e = m->e[i];
		e.blocks = NULL;
		e.weak = NULL;
		ps_mfw_add(&w, &e);
		if (b.len >= MF_CHUNK) {
			rc = sink_emit(b.p, b.len, s);
			b.len = 0;
		}
	}
	ps_mfw_end(&w);
	if (rc == PS_OK)
		rc = sink_emit(b.p, b.len, s);
	buf_free(&b);
	return rc;
}

/* ---- console files ---- */

static char *
console_path(const struct ps_source *src, const struct ps_entry *e)
{
	char *p = ps_escape(e->path, e->path_len);
	char *s = xasprintf("%s/%s", src->path, p);

	free(p);
	return s;
}

static int
open_console(const struct ps_source *src, const struct ps_entry *e,
    int *fd)
{
	struct stat st;
	char *name;

	if (ps_open_beneath(src->fd, e->path, fd, &st) == 0) {
		if ((uint64_t)st.st_size == e->size &&
		    st.st_mtim.tv_sec == e->mtime_sec &&
		    (uint32_t)st.st_mtim.tv_nsec == e->mtime_nsec)
			return PS_OK;
		close(*fd);
		*fd = -1;
		errno = ESTALE;
	}
	name = console_path(src, e);
	ps_err("bundle: %s: %s", name, errno == ESTALE ? "changed since "
	    "it was scanned; no bundle written (create it again)" :
	    errno == ELOOP ? "a symlink is in the way" : strerror(errno));
	free(name);
	return PS_EPARTIAL;
}

static int
changed(const struct ps_source *src, const struct ps_entry *e)
{
	char *name = console_path(src, e);

	ps_err("bundle: %s: changed while the bundle was made; no bundle "
	    "written (create it again)", name);
	free(name);
	return PS_EPARTIAL;
}


/* Can E travel as a delta against the server's B? */
static int
delta_possible(const struct ps_entry *e, const struct ps_entry *b)
{
	return b != NULL && b->type == PS_FT_FILE && b->size > 0 &&
	    e->size >= DELTA_MIN && b->blocks != NULL && b->weak != NULL;
}

/*
 * Pass 1 of a delta: match E (open at FD) against B's sums, check that
 * the file is still what the manifest says, and hash the delta. Returns
 * PS_OK with P->ops filled (empty when the file goes whole instead:
 * sums the matcher refuses, or a delta no smaller than the file).
 */
static int
plan_delta(const struct ps_source *src, struct plan *p,
    const struct ps_entry *b, struct ps_bmember *m, int fd)
{
	const struct ps_entry *e = p->e;
	struct ps_blocksums basis, hint;
	struct ps_matcher *mt;
	struct sink s;
	uint8_t h[16];
	uint64_t size;

	ps_entry_blocksums(b, &basis);
	ps_entry_blocksums(e, &hint);
	if (ps_matcher_new(&basis, &mt) != PS_OK)
		return PS_OK;	/* sums we cannot use: whole */
	if (ps_match(mt, ps_match_read_fd, &fd, 0, e->size, hint.strong ?
	    &hint : NULL, e->size >= MATCH_THREADS_MIN ? (unsigned)ps_ncpu() :
	    1, &p->ops) != PS_OK) {
		ps_matcher_free(mt);
		return changed(src, e);
	}
	ps_matcher_free(mt);
	/* The hint and the cache describe the file: it must still hold. */
	if (ps_h128_fd(fd, &size, h) != 0 || size != e->size ||
	    memcmp(h, e->hash, 16) != 0)
		return changed(src, e);
	if (ps_rsdelta_size(&p->ops) >= e->size) {
		ps_mops_free(&p->ops);
		return PS_OK;
	}
	memset(&s, 0, sizeof(s));
	ps_h128_init(&s.h);
	if (ps_rsdelta_write(&p->ops, fd, sink_emit, &s) != PS_OK) {
		ps_h128_final(&s.h, h);
		return changed(src, e);
	}
	ps_h128_final(&s.h, m->hash);
	m->kind = PS_BK_DELTA;
	m->size = s.n;
	m->basis_size = b->size;
	memcpy(m->basis_hash, b->hash, 16);
	m->target_size = e->size;
	memcpy(m->target_hash, e->hash, 16);
	return PS_OK;
}

static void
add_member(struct mk *k, struct ps_bmember *m, const struct ps_entry *e,
    struct ps_mops *ops)
{
	if (k->x.nm == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 64;
		k->plan = xreallocarray(k->plan, k->cap, sizeof(*k->plan));
	}
	memset(&k->plan[k->x.nm], 0, sizeof(*k->plan));
	k->plan[k->x.nm].e = e;
	if (ops != NULL) {
		k->plan[k->x.nm].ops = *ops;
		memset(ops, 0, sizeof(*ops));
	}
	ps_bidx_add(&k->x, m);
}

/* One console file: current on the server, whole, or a delta. */
static int
plan_file(struct mk *k, size_t c, const struct ps_entry *e)
{
	const struct ps_bundle_src *bs = &k->o->src[c];
	const struct ps_entry *b = NULL;
	struct ps_bmember m;
	struct plan p;
	int fd, rc;

	if (bs->have_against)
		b = ps_manifest_find(&bs->against, e->path, e->path_len);
	if (b != NULL && b->type == PS_FT_FILE &&
	    ps_entry_same_content(e, b)) {
		k->st->current++;
		return PS_OK;
	}
	if (k->x.nm >= PS_BUNDLE_MAX_MEMBERS) {
		ps_err("bundle: more than %u files to carry: too many for one "
		    "bundle", (unsigned)PS_BUNDLE_MAX_MEMBERS);
		return PS_EUSAGE;
	}
	memset(&m, 0, sizeof(m));
	memset(&p, 0, sizeof(p));
	m.comp = (uint32_t)c;
	m.path = xstrndup(e->path, e->path_len);
	m.path_len = e->path_len;
	m.kind = PS_BK_FILE;
	m.size = e->size;
	memcpy(m.hash, e->hash, 16);
	p.e = e;
	if (!k->o->full && delta_possible(e, b)) {
		if ((rc = open_console(&k->src[c], e, &fd)) != PS_OK) {
			free(m.path);
			return rc;
		}
		rc = plan_delta(&k->src[c], &p, b, &m, fd);
		close(fd);
		if (rc != PS_OK) {
			ps_mops_free(&p.ops);
			free(m.path);
			return rc;
		}
	}
	if (m.kind == PS_BK_DELTA) {
		k->st->deltas++;
		k->st->delta_bytes += m.size;
		k->st->delta_target += e->size;
	} else {
		k->st->files++;
		k->st->file_bytes += e->size;
	}
	add_member(k, &m, e, m.kind == PS_BK_DELTA ? &p.ops : NULL);
	return PS_OK;
}

/* The index: its header, and each component's manifest member. */
static int
plan_index(struct mk *k)
{
	const struct ps_bundle_create_opts *o = k->o;
	struct ps_bmember m;
	struct sink s;
	size_t i;

	k->x.version = PS_BUNDLE_VERSION;
	k->x.console = xstrdup(o->console);
	k->x.created = (int64_t)time(NULL);
	k->x.full = o->full;
	k->x.ncomp = o->nsrc;
	k->x.comp = xcalloc(o->nsrc, sizeof(*k->x.comp));
	for (i = 0; i < o->nsrc; i++) {
		struct ps_bcomp *c = &k->x.comp[i];

		c->name = o->src[i].name ? xstrdup(o->src[i].name) : NULL;
		c->dest = xstrdup(o->src[i].dest);
		c->have_against = !o->full;
		if (!o->full)
			ps_bundle_state(&o->src[i].against, c->against);
	}
	for (i = 0; i < o->nsrc; i++) {
		memset(&m, 0, sizeof(m));
		memset(&s, 0, sizeof(s));
		ps_h128_init(&s.h);
		(void)mf_stream(&k->mf[i], &s);
		ps_h128_final(&s.h, m.hash);
		m.kind = PS_BK_MANIFEST;
		m.comp = (uint32_t)i;
		m.size = s.n;
		add_member(k, &m, NULL, NULL);
	}
	return PS_OK;
}

/* ---- pass 2: the archive ---- */

static int
write_index(struct mk *k)
{
	uint64_t size = 0;
	size_t i;
	char *line;
	int rc;

	/* The lines twice: once for the size the tar header needs. */
	line = ps_bidx_header_line(&k->x);
	size += strlen(line);
	free(line);
	for (i = 0; i < k->x.nm; i++) {
		line = ps_bidx_member_line(&k->x, &k->x.m[i]);
		size += strlen(line);
		free(line);
	}
	rc = ps_bw_member(k->w, PS_BUNDLE_INDEX, strlen(PS_BUNDLE_INDEX),
	    size, k->x.created);
	line = ps_bidx_header_line(&k->x);
	if (rc == PS_OK)
		rc = ps_bw_data(k->w, line, strlen(line));
	free(line);
	for (i = 0; i < k->x.nm && rc == PS_OK; i++) {
		line = ps_bidx_member_line(&k->x, &k->x.m[i]);
		rc = ps_bw_data(k->w, line, strlen(line));
		free(line);
	}
	return rc;
}

/* A whole file, checked against the manifest's hash as it goes. */
static int
write_file(const struct ps_source *src, const struct ps_entry *e,
    struct sink *s)
{
	unsigned char *b;
	uint64_t done = 0;
	size_t n;
	ssize_t r;
	int fd, rc;

	if ((rc = open_console(src, e, &fd)) != PS_OK)
		return rc;
	b = xmalloc(CHUNK);
	while (done < e->size && rc == PS_OK) {
		n = e->size - done < CHUNK ? (size_t)(e->size - done) : CHUNK;
		r = pread(fd, b, n, (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = changed(src, e);
			break;
		}
		rc = sink_emit(b, (size_t)r, s);
		done += (uint64_t)r;
	}
	free(b);
	close(fd);
	return rc;
}

static int
write_member(struct mk *k, size_t i)
{
	const struct ps_bmember *m = &k->x.m[i];
	const struct plan *p = &k->plan[i];
	const struct ps_source *src = &k->src[m->comp];
	struct sink s;
	uint8_t h[16];
	size_t len;
	char *name = ps_bundle_member_name(&k->x, m, &len);
	int rc, fd;

	rc = ps_bw_member(k->w, name, len, m->size, m->kind ==
	    PS_BK_MANIFEST ? k->x.created : p->e->mtime_sec);
	free(name);
	if (rc != PS_OK)
		return rc;
	memset(&s, 0, sizeof(s));
	s.w = k->w;
	ps_h128_init(&s.h);
	if (m->kind == PS_BK_MANIFEST) {
		rc = mf_stream(&k->mf[m->comp], &s);
	} else if (m->kind == PS_BK_FILE) {
		rc = write_file(src, p->e, &s);
	} else if ((rc = open_console(src, p->e, &fd)) == PS_OK) {
		rc = ps_rsdelta_write(&p->ops, fd, sink_emit, &s);
		if (rc == PS_EPARTIAL)
			rc = changed(src, p->e);
		close(fd);
	}
	ps_h128_final(&s.h, h);
	if (rc == PS_OK && (s.n != m->size || memcmp(h, m->hash, 16) != 0))
		rc = m->kind == PS_BK_MANIFEST ? PS_EPARTIAL :
		    changed(src, p->e);
	return rc;
}

static mode_t
current_umask(void)
{
	mode_t u = umask(022);

	umask(u);
	return u;
}

/* Where the bundle goes: a temporary beside FILE, or standard output. */
static int
open_output(const char *file, char **tmp, int *fd)
{
	char *copy, *dir;

	*tmp = NULL;
	if (strcmp(file, "-") == 0) {
		if (isatty(STDOUT_FILENO)) {
			ps_err("bundle: refusing to write a bundle to a "
			    "terminal (use -o FILE)");
			return PS_EUSAGE;
		}
		*fd = STDOUT_FILENO;
		return PS_OK;
	}
	copy = xstrdup(file);
	dir = dirname(copy);
	*tmp = xasprintf("%s/.%s.XXXXXX", dir, "patchsync-bundle");
	free(copy);
	*fd = mkostemp(*tmp, O_CLOEXEC);
	if (*fd < 0) {
		ps_err("bundle: cannot create a file beside %s: %s", file,
		    strerror(errno));
		free(*tmp);
		*tmp = NULL;
		return PS_EUSAGE;
	}
	/* mkostemp makes it 0600; a bundle is not secret. */
	(void)fchmod(*fd, 0644 & ~current_umask());
	return PS_OK;
}

static int
finish_output(const char *file, const char *tmp, int fd)
{
	char *copy, *dir;
	int dfd;

	if (tmp == NULL)
		return PS_OK;
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, file) != 0) {
		ps_err("bundle: cannot write %s: %s", file, strerror(errno));
		unlink(tmp);
		return PS_EPARTIAL;
	}
	copy = xstrdup(file);
	dir = dirname(copy);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	free(copy);
	return PS_OK;
}

static int
write_bundle(struct mk *k)
{
	const char *file = k->o->output;
	char *tmp;
	size_t i;
	int fd, rc;

	if ((rc = open_output(file, &tmp, &fd)) != PS_OK)
		return rc;
	rc = ps_bw_open(fd, k->label, &k->w);
	if (rc == PS_OK)
		rc = write_index(k);
	for (i = 0; i < k->x.nm && rc == PS_OK; i++)
		rc = write_member(k, i);
	if (rc == PS_OK && ps_intr_signal() != 0)
		rc = PS_EINTR;
	if (rc == PS_OK) {
		rc = ps_bw_close(k->w);
		k->w = NULL;
	}
	if (rc == PS_OK) {
		rc = finish_output(file, tmp, fd);
		free(tmp);
		return rc;
	}
	ps_bw_abort(k->w);
	k->w = NULL;
	if (tmp != NULL) {
		close(fd);
		unlink(tmp);
		free(tmp);
	}
	return rc;
}

/* ---- the whole ---- */

static int
scan(struct mk *k)
{
	const struct ps_bundle_create_opts *o = k->o;
	size_t i;
	int rc;

	k->src = xcalloc(o->nsrc, sizeof(*k->src));
	k->mf = xcalloc(o->nsrc, sizeof(*k->mf));
	for (i = 0; i < o->nsrc; i++) {
		k->src[i].component = o->src[i].name;
		k->src[i].dest = o->src[i].dest;
		k->src[i].path = o->src[i].path;
		k->src[i].fd = -1;
		k->src[i].mf_fd = -1;
	}
	for (i = 0; i < o->nsrc; i++) {
		if ((rc = ps_source_open(&k->src[i])) != PS_OK)
			return rc;
		rc = ps_source_scan(&k->src[i], o->cache_dir, o->checksum);
		if (rc == PS_EPARTIAL) {
			/* A bundle must be whole: apply would delete them. */
			ps_err("bundle: some files of %s could not be read "
			    "(see above); no bundle written", o->src[i].path);
			return rc;
		}
		if (rc != PS_OK)
			return rc;
		if ((rc = ps_source_manifest(&k->src[i], &k->mf[i])) != PS_OK)
			return rc;
		if (ps_intr_signal() != 0)
			return PS_EINTR;
	}
	return PS_OK;
}

static int
check_dests(const struct ps_bundle_create_opts *o)
{
	const char **dests = xcalloc(o->nsrc + 1, sizeof(*dests));
	const char *why;
	size_t i;
	int rc = PS_OK;

	for (i = 0; i < o->nsrc; i++)
		dests[i] = o->src[i].dest;
	for (i = 0; i < o->nsrc && rc == PS_OK; i++) {
		if ((why = ps_bundle_dest_problem(dests, o->nsrc, i)) != NULL) {
			ps_err("bundle: component %s: dest '%s': %s",
			    o->src[i].name ? o->src[i].name : o->src[i].path,
			    o->src[i].dest, why);
			rc = PS_EUSAGE;
		}
	}
	free(dests);
	return rc;
}

int
ps_bundle_create(const struct ps_bundle_create_opts *o,
    struct ps_bundle_create_stats *st)
{
	struct mk k;
	size_t c, i;
	int rc;

	memset(st, 0, sizeof(*st));
	memset(&k, 0, sizeof(k));
	k.o = o;
	k.st = st;
	k.label = ps_escape(o->output, strlen(o->output));
	if ((rc = check_dests(o)) == PS_OK && (rc = scan(&k)) == PS_OK)
		rc = plan_index(&k);
	for (c = 0; c < o->nsrc && rc == PS_OK; c++) {
		const struct ps_manifest *m = &k.mf[c];

		for (i = 0; i < m->n && rc == PS_OK; i++) {
			if (m->e[i].type == PS_FT_FILE)
				rc = plan_file(&k, c, &m->e[i]);
			if (rc == PS_OK && ps_intr_signal() != 0)
				rc = PS_EINTR;
		}
	}
	k.x.nm_total = k.x.nm;
	if (rc == PS_OK)
		rc = write_bundle(&k);
	for (i = 0; i < k.x.nm; i++)
		ps_mops_free(&k.plan[i].ops);
	free(k.plan);
	for (c = 0; k.src != NULL && c < o->nsrc; c++) {
		ps_source_free(&k.src[c]);
		ps_manifest_free(&k.mf[c]);
	}
	free(k.src);
	free(k.mf);
	ps_bindex_free(&k.x);
	free(k.label);
	return rc;
}
