/*
 * receiver.c — the receiving side of a session (the server for a push,
 * the console for a refresh).
 *
 * One thread reads frames and does the writing; requests for the block
 * sums of regions of old versions go to a pool of workers; verifying,
 * fsync and rename go to another pool, since fsync waits for the disk.
 * Every file is written to a hidden temporary in its own directory, read
 * back and checked against the XXH3-128 the sender announced, fsync'd
 * and renamed: a file under ROOT/DEST is always the
 * old version or the complete new one. Files that fail are reported one
 * by one in RESULT frames; other failures (a directory, a deletion) in
 * NOTICE frames; only a broken session ends the component early.
 *
 * What a sender can make us do is bounded by what it sends: a file's
 * bytes must be covered exactly by the data, copies and deltas that come
 * for it before it is verified (a claimed size costs nothing by itself),
 * block sums by the size of the old file, files in flight and queued
 * requests by fixed limits.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "delta.h"
#include "match.h"
#include "manifest.h"
#include "mfcache.h"
#include "pool.h"
#include "receiver.h"
#include "walk.h"
#include "xxh.h"

#define NBUCKET 1024
#define MAX_LIVE 8192		/* files a sender may have open at once */
#define MAX_SIGJOBS 4096	/* block sum requests queued at once */
#define COMMIT_THREADS 8	/* files verified and fsync'd at once */
/* Written bytes after which the disk is asked to start writing them. */
#define WRITEBACK_CHUNK (8u << 20)

/*
 * A file written front to back from DATA frames alone (a new file, sent
 * whole) is hashed as it is written, from the bytes pwrite took, and
 * needs no read-back before its rename; a COPY, a frame out of order or
 * a huge file ends that, and the file is read back at commit.
 */
struct hashing {
	int on;			/* every byte so far hashed in order */
	unsigned shift;		/* block length 2^shift */
	uint64_t done;		/* bytes hashed */
	XXH3_state_t *st;	/* after more than one frame */
	unsigned char one[16];	/* the hash of a file sent in one frame */
	uint64_t *blocks;	/* XXH3-64 of each block */
	uint32_t *weak;		/* and its weak sum */
	uint64_t nblocks, cap;
};

struct pverify;

struct rfile {
	uint32_t id;
	char *path;		/* relative to DEST */
	char *rel;		/* relative to ROOT */
	int have_meta;		/* FILE seen */
	uint64_t size;
	int64_t mtime;
	uint32_t nsec;
	uint32_t mode;
	unsigned char hash[16];
	uint64_t covered;	/* bytes written or promised by pieces */
	uint64_t dirty;		/* written since writeback was started */
	uint64_t *progress;	/* bytes placed, for a pull's progress */
	uint64_t signed_bytes;	/* basis bytes asked to be signed */
	struct ps_tmp tmp;
	struct hashing h;	/* the bytes as written, when in order */
	uint64_t inorder;	/* bytes [0, inorder) written, in order */
	int unordered;		/* a write elsewhere came */
	struct pverify *pv;	/* read back as written (big files) */
	unsigned *npv;		/* the session's count of those */
	int basis;		/* current version, or -1 */
	uint64_t basis_size;
	int code;		/* first failure, or PS_OK */
	char *msg;
	struct rfile *next;
};

struct recv {
	struct ps_sess *s;
	struct ps_root *root;
	const struct ps_recv_opts *o;
	const char *dest;
	struct ps_recv_stats *st;
	struct rfile *bucket[NBUCKET];
	unsigned live;
	struct ps_pool *pool;		/* signatures */
	struct ps_pool *cpool;		/* verify, fsync, rename */
	pthread_mutex_t mu;		/* guards st, upd, dirs, sigjobs */
	pthread_mutex_t nsmu;		/* held to create or rename a file */
	unsigned npv;			/* files read back as written */
	unsigned sigjobs;
	/*
	 * Commits submitted and not over, and RESULTs written since the
	 * last flush (mu): the last commit of a burst flushes them all.
	 */
	unsigned ncommit, unflushed;
	ZSTD_DCtx *zd;
	unsigned char *zbuf;
	struct ps_manifest by;		/* what the walk found beside the
					   entries: temporaries */
	int mf_fd;			/* the manifest as described (the
					   cache), or -1 */
	struct ps_manifest upd;		/* files put in place this session */
	size_t tally;			/* a pull: the sender's entries
					   counted for the progress */
	char **gone;			/* paths deleted this session */
	size_t ngone;
	char **dirs;			/* directories to fsync at DONE */
	size_t ndirs;
	struct kept *kept;		/* big files' block sums as described,
					   in path order (lazy sums) */
	size_t nkept;
	uint64_t kept_bytes;
	/*
	 * An early push (PS_OF_EARLY): the tree is described on a thread of
	 * its own while files come; what describe() sets (by, mf_fd, kept)
	 * is the main thread's only after describe_join.
	 */
	pthread_t dtid;
	int describing;			/* dtid runs */
	int drc;			/* what describe() returned */
	_Atomic int dstop;		/* the session is over: stop */
};

/*
 * With lazy sums the manifest goes without block sums; the sender asks
 * for those of the files it sends a delta for. A big file's are kept
 * from the walk (which had them from the cache) so that the answer
 * costs no read of it; at most KEEP_MAX bytes of them, the rest is read.
 */
#define KEEP_MIN	(1u << 20)	/* files this big keep their sums */
#define KEEP_MAX	(32u << 20)	/* bytes of sums kept */

struct kept {
	char *path;
	uint32_t path_len;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t ino;		/* and its ctime: the walk's identity */
	int64_t ctime_sec;
	uint32_t ctime_nsec;
	uint32_t block_len;
	uint32_t n;
	uint32_t *weak;
	uint64_t *strong;
};

static char *
join(const char *dest, const char *path, size_t len)
{
	if (*dest == '\0')
		return xstrndup(path, len);
	return xasprintf("%s/%.*s", dest, (int)len, path);
}

/* At ROOT itself, ROOT/.patchsync (lock, caches) is ours alone. */
static int
refused_path(struct recv *r, const struct ps_bytes *p)
{
	size_t n = sizeof(PS_META_DIR) - 1;

	return *r->dest == '\0' && p->len >= n &&
	    memcmp(p->p, PS_META_DIR, n) == 0 &&
	    (p->len == n || p->p[n] == '/');
}

static int
bad_path(struct recv *r, const struct ps_bytes *p)
{
	char *esc = ps_escape((const char *)p->p, p->len);
	int rc;

	rc = ps_sess_fail(r->s, PS_EPEER, "refusing a path inside patchsync's "
	    "own directory: %s", esc);
	free(esc);
	return rc;
}

static struct rfile **
slot(struct recv *r, uint32_t id)
{
	struct rfile **pp = &r->bucket[id % NBUCKET];

	while (*pp != NULL && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

static struct rfile *
find(struct recv *r, uint32_t id)
{
	return *slot(r, id);
}

/* The file for ID, made on first mention (SIGREQ or FILE). */
static int
get(struct recv *r, uint32_t id, const struct ps_bytes *path,
    struct rfile **fp)
{
	struct rfile **pp = slot(r, id), *f;

	if (refused_path(r, path))
		return bad_path(r, path);
	if (*pp != NULL) {
		f = *pp;
		if (strlen(f->path) != path->len ||
		    memcmp(f->path, path->p, path->len) != 0)
			return ps_sess_fail(r->s, PS_EPEER, "the sender broke "
			    "the protocol: file id %" PRIu32 " names two "
			    "paths", id);
		*fp = f;
		return PS_OK;
	}
	if (r->live >= MAX_LIVE)
		return ps_sess_fail(r->s, PS_EPEER, "the sender broke the "
		    "protocol: more than %d files in flight", MAX_LIVE);
	f = xcalloc(1, sizeof(*f));
	f->id = id;
	f->path = xstrndup((const char *)path->p, path->len);
	f->rel = join(r->dest, f->path, path->len);
	f->basis = -1;
	f->tmp.fd = -1;
	f->tmp.dirfd = -1;
	f->progress = r->o->progress_bytes;
	*pp = f;
	r->live++;
	*fp = f;
	return PS_OK;
}

static void
fail_file(struct rfile *f, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record the first failure of F; its temporary goes at once (disk space). */
static void
fail_file(struct rfile *f, int code, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	if (f->code != PS_OK)
		return;
	va_start(ap, fmt);
	(void)ps_vfit(msg, sizeof(msg), fmt, ap);	/* keeps its reason */
	va_end(ap);
	f->code = code;
	f->msg = xstrdup(msg);
	ps_tmp_abort(&f->tmp);
}

/* F failed in fsops, which said why: pass that reason on. */
static void
fail_fs(struct rfile *f)
{
	fail_file(f, PS_EPARTIAL, "%s", ps_last_error());
}

static void
hashing_stop(struct hashing *h)
{
	if (h->st != NULL)
		XXH3_freeState(h->st);
	free(h->blocks);
	free(h->weak);
	memset(h, 0, sizeof(*h));
}

/* Start hashing a file of SIZE as it comes, unless it is too big for it. */
static void
hashing_start(struct hashing *h, uint64_t size)
{
	unsigned shift = ps_block_shift_for(size);
	uint64_t n = (size >> shift) + ((size & ((1ull << shift) - 1)) != 0);

	memset(h, 0, sizeof(*h));
	h->on = n <= PS_SUMS_MAX_BLOCKS;
	h->shift = shift;
}

/*
 * N bytes at P were written at OFF of a file of SIZE: hash them if they
 * continue what was hashed, in whole blocks (the last may be short).
 * Anything else ends hashing (the file is then read back). The arrays
 * grow with the bytes that came, never with a size the sender claims.
 */
static void
hashing_add(struct hashing *h, uint64_t size, const unsigned char *p,
    size_t n, uint64_t off)
{
	uint64_t bs = 1ull << h->shift, want, i;
	XXH128_canonical_t c;
	size_t k;

	if (!h->on || n == 0)
		return;
	if (off != h->done || ((n & (bs - 1)) != 0 && off + n != size)) {
		hashing_stop(h);
		return;
	}
	if (off == 0 && n == size) {
		XXH128_canonicalFromHash(&c, HASH128(p, n));
		memcpy(h->one, c.digest, 16);
	} else {
		if (h->st == NULL) {
			if ((h->st = XXH3_createState()) == NULL) {
				hashing_stop(h);	/* read back instead */
				return;
			}
			XXH3_128bits_reset(h->st);
		}
		HASH128_UPDATE(h->st, p, n);
	}
	want = h->nblocks + (n + bs - 1) / bs;
	if (want > h->cap) {
		h->cap = want > 2 * h->cap ? want : 2 * h->cap;
		h->blocks = xreallocarray(h->blocks, h->cap, 8);
		h->weak = xreallocarray(h->weak, h->cap, 4);
	}
	for (i = 0; i < n; i += bs) {
		k = n - i < bs ? (size_t)(n - i) : (size_t)bs;
		h->blocks[h->nblocks] = HASH64(p + i, k);
		h->weak[h->nblocks++] = ps_weak(p + i, k);
	}
	h->done += n;
}

/*
 * The hash and block sums of a file hashed whole as it came, into E (the
 * arrays move to E). 0, or -1 when it was not (read it back then).
 */
static int
hashing_take(struct hashing *h, uint64_t size, struct ps_entry *e)
{
	XXH128_canonical_t c;

	if (!h->on || h->done != size)
		return -1;
	if (h->st != NULL) {
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h->st));
		memcpy(e->hash, c.digest, 16);
	} else if (size == 0) {
		XXH128_canonicalFromHash(&c, HASH128(NULL, 0));
		memcpy(e->hash, c.digest, 16);
	} else {
		memcpy(e->hash, h->one, 16);
	}
	e->block_shift = (uint8_t)h->shift;
	e->nblocks = h->nblocks;
	e->blocks = h->blocks;
	e->weak = h->weak;
	h->blocks = NULL;
	h->weak = NULL;
	hashing_stop(h);
	return 0;
}

/*
 * A big file built with copies from its old version is read back while
 * it is written, by a thread of its own, as far as its bytes have come in
 * order: by its END most of it is hashed (from the disk, as a read-back
 * at commit would), and the commit waits only for the rest. Out of
 * order, or anything else unexpected: the commit reads it back whole.
 */
#define PV_MIN		(16u << 20)	/* files this big */
#define PV_MAX		2		/* at once */
#define PV_CHUNK	(1u << 20)	/* a multiple of every block length */

struct pverify {
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t upto;		/* bytes [0, upto) are written */
	int ended;		/* END came: upto is the whole file */
	int stop;		/* give up (read back at commit instead) */
	int finished;		/* the thread is done; h is the result */
	int fd;			/* the temporary, our own descriptor */
	uint64_t size;
	struct hashing h;
};

static void *
pv_main(void *arg)
{
	struct pverify *v = arg;
	uint64_t bs = 1ull << v->h.shift, end = 0;
	unsigned char *buf = xmalloc(PV_CHUNK);
	int ended = 0, stop = 0;
	size_t n;
	ssize_t got;

	while (!stop) {
		pthread_mutex_lock(&v->mu);
		for (;;) {
			ended = v->ended;
			stop = v->stop;
			/* Whole blocks only, but for the file's end. */
			end = ended ? v->upto : v->upto & ~(bs - 1);
			if (stop || ended || end > v->h.done)
				break;
			pthread_cond_wait(&v->cv, &v->mu);
		}
		pthread_mutex_unlock(&v->mu);
		while (!stop && v->h.on && v->h.done < end) {
			n = end - v->h.done > PV_CHUNK ? PV_CHUNK :
			    (size_t)(end - v->h.done);
			got = pread(v->fd, buf, n, (off_t)v->h.done);
			if (got < 0 && errno == EINTR)
				continue;
			if (got != (ssize_t)n)
				stop = 1;	/* read back at commit */
			else
				hashing_add(&v->h, v->size, buf, n, v->h.done);
		}
		if (!v->h.on)
			stop = 1;
		if (ended)
			break;
	}
	free(buf);
	pthread_mutex_lock(&v->mu);
	v->stop |= stop;
	v->finished = 1;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

/* Start reading F back as it is written, if it is big and none is. */
static void
pv_start(struct recv *r, struct rfile *f)
{
	struct pverify *v;

	if (f->pv != NULL || f->unordered || f->size < PV_MIN ||
	    f->tmp.fd < 0 || __atomic_load_n(&r->npv, __ATOMIC_RELAXED) >=
	    PV_MAX)
		return;
	v = xcalloc(1, sizeof(*v));
	hashing_start(&v->h, f->size);
	v->size = f->size;
	v->upto = f->inorder;
	if (!v->h.on || (v->fd = dup(f->tmp.fd)) < 0) {
		hashing_stop(&v->h);
		free(v);
		return;
	}
	pthread_mutex_init(&v->mu, NULL);
	pthread_cond_init(&v->cv, NULL);
	if (pthread_create(&v->tid, NULL, pv_main, v) != 0) {
		pthread_mutex_destroy(&v->mu);
		pthread_cond_destroy(&v->cv);
		close(v->fd);
		hashing_stop(&v->h);
		free(v);
		return;
	}
	__atomic_add_fetch(&r->npv, 1, __ATOMIC_RELAXED);
	f->pv = v;
	f->npv = &r->npv;
}

static void
pv_set(struct pverify *v, uint64_t upto, int ended, int stop)
{
	pthread_mutex_lock(&v->mu);
	v->upto = upto;
	v->ended |= ended;
	v->stop |= stop;
	pthread_cond_signal(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

/*
 * Wait for F's reader and release it. 0 when it hashed the whole file
 * (the hash and sums are in E), -1 when the file must be read back.
 */
static int
pv_finish(struct rfile *f, struct ps_entry *e)
{
	struct pverify *v = f->pv;
	int rc = -1;

	if (v == NULL)
		return -1;
	if (e == NULL)
		pv_set(v, v->upto, 0, 1);
	pthread_mutex_lock(&v->mu);
	while (!v->finished)
		pthread_cond_wait(&v->cv, &v->mu);
	pthread_mutex_unlock(&v->mu);
	pthread_join(v->tid, NULL);
	if (e != NULL && !v->stop)
		rc = hashing_take(&v->h, v->size, e);
	hashing_stop(&v->h);
	close(v->fd);
	pthread_mutex_destroy(&v->mu);
	pthread_cond_destroy(&v->cv);
	free(v);
	f->pv = NULL;
	__atomic_sub_fetch(f->npv, 1, __ATOMIC_RELAXED);
	return rc;
}

/* Bytes [OFF, OFF+N) of F are written: tell its reader how far it may go. */
static void
placed(struct rfile *f, uint64_t off, uint64_t n)
{
	if (f->unordered)
		return;
	if (off != f->inorder) {
		f->unordered = 1;	/* or overwritten: read back whole */
		if (f->pv != NULL)
			pv_set(f->pv, f->inorder, 0, 1);
		return;
	}
	f->inorder += n;
	if (f->pv != NULL)
		pv_set(f->pv, f->inorder, 0, 0);
}

static void
free_rfile(struct rfile *f)
{
	(void)pv_finish(f, NULL);
	ps_tmp_abort(&f->tmp);
	if (f->basis >= 0)
		close(f->basis);
	hashing_stop(&f->h);
	free(f->path);
	free(f->rel);
	free(f->msg);
	free(f);
}

/* Take F out of the table of files in flight. */
static void
unlink_rfile(struct recv *r, struct rfile *f)
{
	struct rfile **pp = slot(r, f->id);

	*pp = f->next;
	r->live--;
}

/* A failed directory or deletion: count it, tell the user (any thread). */
static void
count_error(struct recv *r, int code, const char *why)
{
	pthread_mutex_lock(&r->mu);
	r->st->errors++;
	if (code > r->st->worst)
		r->st->worst = code;
	pthread_mutex_unlock(&r->mu);
	if (why != NULL)
		ps_sess_notice(r->s, PS_NOTE_ERROR, "%s", why);
}

/* Open the current version of F as the basis of copies and deltas. */
static int
open_basis(struct recv *r, struct rfile *f)
{
	struct stat st;

	if (f->basis >= 0)
		return PS_OK;
	if (ps_file_open_quiet(r->root, f->rel, &f->basis, &st) != PS_OK)
		return PS_EPARTIAL;
	f->basis_size = (uint64_t)st.st_size;
	return PS_OK;
}

/* ---- the manifest cache (never inside a destination) ---- */

/* The cache as it is, or -1. */
static int
cache_open(const struct ps_recv_opts *o)
{
	if (o->cache_dirfd < 0)
		return -1;
	return openat(o->cache_dirfd, o->cache_name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC);
}

static int
cache_saved(const struct ps_recv_opts *o)
{
	return o->cache_dirfd >= 0 && o->cache_writable &&
	    !(o->flags & PS_OF_DRYRUN);
}

int
ps_recv_account_cache(int dirfd, int create, int *cache_dirfd, char **name)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	struct stat st;
	char *dir;

	*cache_dirfd = -1;
	*name = NULL;
	if (fstat(dirfd, &st) != 0)
		return -1;
	if (x != NULL && *x == '/')
		dir = xasprintf("%s/patchsync/dest", x);
	else if (home != NULL && *home == '/')
		dir = xasprintf("%s/.cache/patchsync/dest", home);
	else
		return -1;
	if (create)
		(void)ps_mkdir_p(dir);
	*cache_dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (*cache_dirfd < 0)
		return -1;
	*name = xasprintf("%016" PRIx64 "-%016" PRIx64 ".psm",
	    (uint64_t)st.st_dev, (uint64_t)st.st_ino);
	return 0;
}

int
ps_recv_describe(const struct ps_recv_opts *o, struct ps_manifest *m)
{
	struct ps_build_opts bo = { 0 };
	struct ps_mfin *cache = NULL;
	int rc, fd;

	memset(m, 0, sizeof(*m));
	m->flags = PS_MF_LOCAL;
	if (o->dirfd < 0)
		return PS_OK;		/* nothing there yet */
	if ((fd = cache_open(o)) >= 0) {
		if (cache_saved(o))
			ps_cache_used(fd);
		cache = ps_mfin_pread(fd);
	}
	bo.cache_in = cache;
	bo.checksum = (o->flags & PS_OF_CHECKSUM) != 0;
	bo.label = o->label;
	bo.sums = PS_SUMS_STRONG | PS_SUMS_WEAK;	/* basis of deltas */
	rc = ps_manifest_buildat(o->dirfd, &bo, m);
	ps_mfin_free(cache);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Hidden temporaries of an interrupted push: we hold the lock, they go. */
static void
sweep_temps(struct recv *r)
{
	size_t i;
	char *rel;

	for (i = 0; i < r->by.ntemps; i++) {
		rel = join(r->dest, r->by.temps[i], strlen(r->by.temps[i]));
		if (ps_unlink(r->root, rel) != PS_OK)
			ps_sess_notice(r->s, PS_NOTE_WARN, "%s",
			    ps_last_error());
		free(rel);
	}
}

/* Keep E's block sums for a lazy request (called in path order). */
static void
keep_sums(struct recv *r, const struct ps_entry *e)
{
	struct kept *k;
	uint64_t bytes;

	if (e->type != PS_FT_FILE || e->size < KEEP_MIN || e->blocks == NULL ||
	    e->weak == NULL || e->nblocks == 0 || e->ino == 0)
		return;
	bytes = (uint64_t)e->nblocks * PS_SUM_LEN + e->path_len;
	if (r->kept_bytes + bytes > KEEP_MAX)
		return;
	r->kept_bytes += bytes;
	r->kept = xreallocarray(r->kept, r->nkept + 1, sizeof(*r->kept));
	k = &r->kept[r->nkept++];
	k->path = xstrndup(e->path, e->path_len);
	k->path_len = e->path_len;
	k->size = e->size;
	k->mtime_sec = e->mtime_sec;
	k->mtime_nsec = e->mtime_nsec;
	k->ino = e->ino;
	k->ctime_sec = e->ctime_sec;
	k->ctime_nsec = e->ctime_nsec;
	k->block_len = (uint32_t)1 << e->block_shift;
	k->n = (uint32_t)e->nblocks;
	k->weak = xreallocarray(NULL, k->n, sizeof(*k->weak));
	k->strong = xreallocarray(NULL, k->n, sizeof(*k->strong));
	memcpy(k->weak, e->weak, (size_t)k->n * sizeof(*k->weak));
	memcpy(k->strong, e->blocks, (size_t)k->n * sizeof(*k->strong));
}

/*
 * The kept sums that answer a request for the whole of PATH in blocks
 * of BLOCK_LEN, when the file open as FD is still what was described.
 */
static const struct kept *
kept_for(const struct recv *r, const struct ps_bytes *path, int fd,
    uint32_t block_len)
{
	size_t lo = 0, hi = r->nkept, mid;
	const struct kept *k;
	struct stat st;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		k = &r->kept[mid];
		c = ps_path_cmp(k->path, k->path_len, (const char *)path->p,
		    path->len);
		if (c == 0) {
			if (k->block_len != block_len || fd < 0 ||
			    fstat(fd, &st) != 0 ||
			    (uint64_t)st.st_size != k->size ||
			    (int64_t)st.st_mtim.tv_sec != k->mtime_sec ||
			    (uint32_t)st.st_mtim.tv_nsec != k->mtime_nsec ||
			    (uint64_t)st.st_ino != k->ino ||
			    (int64_t)st.st_ctim.tv_sec != k->ctime_sec ||
			    (uint32_t)st.st_ctim.tv_nsec != k->ctime_nsec)
				return NULL;
			return k;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void
free_kept(struct recv *r)
{
	size_t i;

	for (i = 0; i < r->nkept; i++) {
		free(r->kept[i].path);
		free(r->kept[i].weak);
		free(r->kept[i].strong);
	}
	free(r->kept);
	r->kept = NULL;
	r->nkept = 0;
}

/* ---- block sums of regions of the old version, made by the pool ---- */

struct sumjob {
	struct recv *r;
	uint32_t id;
	uint32_t round;
	uint32_t block_len;
	int fd;			/* a dup of the basis, owned by the job */
	uint64_t basis_size;
	uint32_t n;
	uint64_t *off, *len;	/* the regions, clamped to the basis */
	const struct kept *kept;	/* the answer, kept from the walk */
};

/* Send what BUF holds of the sums; LAST ends the round. */
static int
send_sums(struct sumjob *j, struct buf *b, int last)
{
	struct ps_msg_sums m = { j->id, j->round, (uint8_t)last,
	    { b->p, b->len } };
	int rc = ps_send_sums(j->r->s->w, &m);

	b->len = 0;
	return rc;
}

static void
sum_regions(void *arg)
{
	struct sumjob *j = arg;
	struct ps_blocksums bs;
	struct buf out = { 0 };
	uint32_t i, k;
	int rc = PS_OK;

	for (i = 0; i < j->n && rc == PS_OK; i++) {
		if (ps_sess_rc(j->r->s) != PS_OK)
			break;
		memset(&bs, 0, sizeof(bs));
		if (j->kept != NULL) {		/* the whole file, unread */
			bs.n = j->kept->n;
			bs.weak = j->kept->weak;
			bs.strong = j->kept->strong;
		} else if (j->len[i] > 0 && ps_blocksums_fd(j->fd, j->off[i],
		    j->len[i], j->block_len, &bs) != PS_OK) {
			/* A region the old version cannot fill: no sums. */
			bs.n = 0;
		}
		for (k = 0; k < bs.n; k++) {
			buf_reserve(&out, PS_SUM_LEN);
			put_u32le(out.p + out.len, bs.weak[k]);
			put_u64le(out.p + out.len + 4, bs.strong[k]);
			out.len += PS_SUM_LEN;
			if (out.len >= (1u << 20) - PS_SUM_LEN &&
			    (rc = send_sums(j, &out, 0)) != PS_OK)
				break;
		}
		if (j->kept == NULL)
			ps_blocksums_free(&bs);
	}
	if (rc == PS_OK && send_sums(j, &out, 1) == PS_OK)
		(void)ps_wire_flush(j->r->s->w);
	pthread_mutex_lock(&j->r->mu);
	j->r->sigjobs--;
	pthread_mutex_unlock(&j->r->mu);
	buf_free(&out);
	if (j->fd >= 0)
		close(j->fd);
	free(j->off);
	free(j->len);
	free(j);
}

static int
on_sumreq(struct recv *r, const struct buf *payload)
{
	struct ps_msg_sumreq q;
	struct sumjob *j;
	struct rfile *f;
	uint64_t off, len, total = 0;
	uint32_t i;
	int rc;

	if ((rc = ps_sess_decode(r->s, PS_MSG_SUMREQ, payload, &q)) != PS_OK ||
	    (rc = get(r, q.id, &q.path, &f)) != PS_OK)
		return rc;
	if (f->have_meta)
		return ps_sess_fail(r->s, PS_EPEER, "the sender broke the "
		    "protocol: block sums asked after the file's data");
	j = xcalloc(1, sizeof(*j));
	j->r = r;
	j->id = q.id;
	j->round = q.round;
	j->block_len = q.block_len;
	j->fd = -1;
	if (open_basis(r, f) == PS_OK) {
		j->fd = fcntl(f->basis, F_DUPFD_CLOEXEC, 0);
		j->basis_size = f->basis_size;
	}
	j->n = q.nregions;
	j->off = xreallocarray(NULL, j->n, sizeof(*j->off));
	j->len = xreallocarray(NULL, j->n, sizeof(*j->len));
	for (i = 0; i < j->n; i++) {
		/* Regions past the old version shrink to what it holds. */
		off = get_u64le(q.regions.p + 16 * (size_t)i);
		len = get_u64le(q.regions.p + 16 * (size_t)i + 8);
		if (off > j->basis_size)
			off = j->basis_size;
		if (len > j->basis_size - off)
			len = j->basis_size - off;
		j->off[i] = off;
		j->len[i] = len;
		total += len;
	}
	if (j->n == 1 && j->off[0] == 0 && j->len[0] == j->basis_size &&
	    j->basis_size > 0)
		j->kept = kept_for(r, &q.path, j->fd, j->block_len);
	/* Reading costs what the old version holds, not what was asked. */
	f->signed_bytes += total;
	rc = f->signed_bytes > 3 * f->basis_size + (1u << 20);
	pthread_mutex_lock(&r->mu);
	if (!rc && r->sigjobs >= MAX_SIGJOBS)
		rc = 2;
	if (!rc)
		r->sigjobs++;
	pthread_mutex_unlock(&r->mu);
	if (rc) {
		if (j->fd >= 0)
			close(j->fd);
		free(j->off);
		free(j->len);
		free(j);
		return ps_sess_fail(r->s, PS_EPEER, "the sender broke the "
		    "protocol: %s", rc == 2 ? "too many block sum requests "
		    "queued" : "asked for the sums of a file many times over");
	}
	ps_pool_submit(r->pool, sum_regions, j);
	return PS_OK;
}

/* ---- files ---- */

static int
on_file(struct recv *r, const struct buf *payload)
{
	struct ps_msg_file m;
	struct rfile *f;
	int rc;

	if ((rc = ps_sess_decode(r->s, PS_MSG_FILE, payload, &m)) != PS_OK ||
	    (rc = get(r, m.id, &m.path, &f)) != PS_OK)
		return rc;
	if (f->have_meta)
		return ps_sess_fail(r->s, PS_EPEER, "the sender broke the "
		    "protocol: file id %" PRIu32 " announced twice", m.id);
	f->size = m.size;
	f->mtime = m.mtime;
	f->nsec = m.nsec;
	f->mode = m.mode;
	memcpy(f->hash, m.hash, 16);
	f->have_meta = 1;
	hashing_start(&f->h, f->size);
	ps_clear_error();
	pthread_mutex_lock(&r->nsmu);
	rc = ps_tmp_create(r->root, f->rel, &f->tmp);
	pthread_mutex_unlock(&r->nsmu);
	if (rc != PS_OK)
		fail_fs(f);
	f->tmp.nslock = &r->nsmu;
	return PS_OK;
}

/*
 * The file a DATA/COPY/DELTA frame names, ready for LEN more bytes at
 * OFF: they must lie inside the file, and all the bytes sent for a file
 * may not add up to more than its size.
 */
static int
writable(struct recv *r, uint32_t id, uint64_t off, uint64_t len,
    struct rfile **fp)
{
	struct rfile *f = find(r, id);

	if (f == NULL || !f->have_meta)
		return ps_sess_fail(r->s, PS_EPEER, "the sender broke the "
		    "protocol: data for unknown file id %" PRIu32, id);
	if (off > f->size || len > f->size - off ||
	    len > f->size - f->covered)
		return ps_sess_fail(r->s, PS_EPEER, "the sender broke the "
		    "protocol: more data than the %" PRIu64 " bytes of %s",
		    f->size, f->path);
	f->covered += len;
	*fp = f;
	return PS_OK;
}

/*
 * Durability overlapped with the transfer: the disk starts writing a
 * temporary's data while more arrives (every WRITEBACK_CHUNK bytes) and
 * when it is complete, so that the fsync before its rename mostly waits
 * for writes already under way. Only a hint: fsync still decides.
 */
static void
writeback(struct rfile *f, uint64_t n, int all)
{
	f->dirty += n;
	if (f->tmp.fd < 0 || (!all && f->dirty < WRITEBACK_CHUNK) ||
	    f->dirty == 0)
		return;
	(void)sync_file_range(f->tmp.fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	f->dirty = 0;
}

static void
write_at(struct rfile *f, const void *p, size_t n, uint64_t off)
{
	writeback(f, n, 0);
	if (f->progress != NULL)
		__atomic_fetch_add(f->progress, n, __ATOMIC_RELAXED);
	ssize_t w;

	while (n > 0 && f->code == PS_OK) {
		w = pwrite(f->tmp.fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fail_file(f, PS_EPARTIAL, "%s: %s", f->rel,
			    errno == ENOSPC || errno == EDQUOT ?
			    "no space left on device" : strerror(errno));
			return;
		}
		p = (const unsigned char *)p + w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
}

static int
on_data(struct recv *r, const struct buf *payload)
{
	struct ps_msg_data m;
	const unsigned char *p;
	struct rfile *f;
	size_t got;
	int rc;

	if ((rc = ps_sess_decode(r->s, PS_MSG_DATA, payload, &m)) != PS_OK ||
	    (rc = writable(r, m.id, m.off, m.raw_len, &f)) != PS_OK)
		return rc;
	if (f->code != PS_OK)
		return PS_OK;
	p = m.data.p;
	if (m.codec == PS_CODEC_ZSTD) {
		/* Never more than raw_len (at most PS_DATA_CHUNK) comes out. */
		got = ZSTD_decompressDCtx(r->zd, r->zbuf, m.raw_len, m.data.p,
		    m.data.len);
		if (ZSTD_isError(got) || got != m.raw_len) {
			fail_file(f, PS_EVERIFY, "corrupt compressed data for "
			    "%s", f->rel);
			return PS_OK;
		}
		p = r->zbuf;
	}
	write_at(f, p, m.raw_len, m.off);
	if (f->code == PS_OK) {
		hashing_add(&f->h, f->size, p, m.raw_len, m.off);
		placed(f, m.off, m.raw_len);
	}
	return PS_OK;
}

static int
on_copy(struct recv *r, const struct buf *payload)
{
	struct ps_msg_copy m;
	struct rfile *f;
	int rc;

	if ((rc = ps_sess_decode(r->s, PS_MSG_COPY, payload, &m)) != PS_OK ||
	    (rc = writable(r, m.id, m.off, m.len, &f)) != PS_OK)
		return rc;
	if (f->code != PS_OK)
		return PS_OK;
	hashing_stop(&f->h);	/* read back: the kernel copies these */
	pv_start(r, f);
	if (open_basis(r, f) != PS_OK) {
		fail_file(f, PS_EPARTIAL, "%s: the old version to copy from is "
		    "gone", f->rel);
		return PS_OK;
	}
	if (m.basis_off > f->basis_size ||
	    m.len > f->basis_size - m.basis_off) {
		/*
		 * The sender planned against an older manifest of ours, or
		 * it is lying: either way this file cannot be made here.
		 */
		fail_file(f, PS_EVERIFY, "%s: a copy from bytes %" PRIu64
		    "-%" PRIu64 " of the old version, which has %" PRIu64,
		    f->rel, m.basis_off, m.basis_off + m.len, f->basis_size);
		return PS_OK;
	}
	if (ps_copy_range(f->basis, m.basis_off, f->tmp.fd, m.off, m.len) !=
	    PS_OK) {
		fail_file(f, PS_EPARTIAL, "writing %s: %s", f->rel,
		    errno == ENOSPC || errno == EDQUOT ?
		    "no space left on device" : strerror(errno));
	} else {
		writeback(f, m.len, 0);
		placed(f, m.off, m.len);
	}
	if (f->progress != NULL)
		__atomic_fetch_add(f->progress, m.len, __ATOMIC_RELAXED);
	return PS_OK;
}

/* RESULTs held back at most, while other commits are under way. */
#define RESULTS_HELD 8

/*
 * A commit's RESULT. It is flushed by the last commit under way (or
 * with RESULTS_HELD others): files that end together cost the sender
 * one wake-up, not one each.
 */
static void
send_result(struct recv *r, uint32_t id, int code, const char *msg)
{
	struct ps_msg_result m;
	int flush;

	m.id = id;
	m.code = (uint32_t)code;
	m.text.p = (const unsigned char *)msg;
	m.text.len = strlen(msg) > PS_TEXT_MAX ? PS_TEXT_MAX : strlen(msg);
	(void)ps_send_result(r->s->w, &m);
	pthread_mutex_lock(&r->mu);
	flush = --r->ncommit == 0 || ++r->unflushed >= RESULTS_HELD;
	if (flush)
		r->unflushed = 0;
	pthread_mutex_unlock(&r->mu);
	if (flush)
		(void)ps_wire_flush(r->s->w);
}

/* Remember F as put in place, for the cache. */
static void
note_placed(struct recv *r, struct rfile *f, struct ps_entry *e)
{
	struct stat st;
	int fd;

	if (ps_file_open_quiet(r->root, f->rel, &fd, &st) == PS_OK) {
		e->dev = (uint64_t)st.st_dev;
		e->ino = (uint64_t)st.st_ino;
		e->ctime_sec = st.st_ctim.tv_sec;
		e->ctime_nsec = (uint32_t)st.st_ctim.tv_nsec;
		close(fd);
	}
	if (r->upd.n == r->upd.cap) {
		r->upd.cap = r->upd.cap ? r->upd.cap * 2 : 64;
		r->upd.e = xreallocarray(r->upd.e, r->upd.cap,
		    sizeof(*r->upd.e));
	}
	r->upd.e[r->upd.n++] = *e;
}

/* Remember REL's directory: its rename is made durable at DONE. */
static void
note_dir(struct recv *r, const char *rel)
{
	const char *slash = strrchr(rel, '/');
	size_t len = slash != NULL ? (size_t)(slash - rel) : 0;

	if (r->ndirs > 0 && strlen(r->dirs[r->ndirs - 1]) == len &&
	    memcmp(r->dirs[r->ndirs - 1], rel, len) == 0)
		return;		/* files of one directory come together */
	r->dirs = xreallocarray(r->dirs, r->ndirs + 1, sizeof(*r->dirs));
	r->dirs[r->ndirs++] = xstrndup(rel, len);
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* fsync each directory that got new files, once. */
struct dirsync {
	struct recv *r;
	const char *rel;
};

static void
job_dirsync(void *arg)
{
	struct dirsync *d = arg;
	int dfd;

	if (ps_dir_open_quiet(d->r->root, d->rel, &dfd) == PS_OK) {
		(void)fsync(dfd);
		close(dfd);
	}
	free(d);
}

/*
 * fsync each directory that got new files, once, several at a time (a
 * file system's journal takes concurrent fsyncs in one commit).
 */
static void
sync_dirs(struct recv *r)
{
	struct dirsync *d;
	size_t i;

	if (r->ndirs > 1)
		qsort(r->dirs, r->ndirs, sizeof(*r->dirs), str_cmp);
	for (i = 0; i < r->ndirs; i++) {
		if (i > 0 && strcmp(r->dirs[i], r->dirs[i - 1]) == 0)
			continue;
		d = xmalloc(sizeof(*d));
		d->r = r;
		d->rel = r->dirs[i];
		ps_pool_submit(r->cpool, job_dirsync, d);
	}
	ps_pool_wait(r->cpool);
	for (i = 0; i < r->ndirs; i++)
		free(r->dirs[i]);
	free(r->dirs);
	r->dirs = NULL;
	r->ndirs = 0;
}

struct commit {
	struct recv *r;
	struct rfile *f;
};

/*
 * Check F against the hash the sender announced: from the bytes as they
 * were written when they came in order, else read back from the disk
 * (which is where copies from the old version put theirs).
 */
static void
verify(struct rfile *f, struct ps_entry *e)
{
	e->path = f->path;
	e->path_len = (uint32_t)strlen(f->path);
	e->type = PS_FT_FILE;
	e->size = f->size;
	e->mode = f->mode & 07777;
	e->mtime_sec = f->mtime;
	e->mtime_nsec = f->nsec;
	if (hashing_take(&f->h, f->size, e) != 0 && pv_finish(f, e) != 0 &&
	    ps_hash_fd_sums(f->tmp.fd, e, PS_SUMS_STRONG | PS_SUMS_WEAK) != 0)
		fail_file(f, PS_EPARTIAL, "reading back %s: %s", f->rel,
		    strerror(errno));
	else if (memcmp(e->hash, f->hash, 16) != 0)
		fail_file(f, PS_EVERIFY, "received data for %s does not "
		    "match its hash; not replaced", f->rel);
}

/*
 * Verify, fsync and rename one file. Runs on the commit pool: fsync waits
 * for the disk, so many files are committed at once.
 */
static void
commit(void *arg)
{
	struct commit *c = arg;
	struct recv *r = c->r;
	struct rfile *f = c->f;
	struct ps_entry e;

	memset(&e, 0, sizeof(e));
	if (f->code == PS_OK)
		verify(f, &e);
	f->tmp.defer_dirsync = 1;
	ps_clear_error();
	if (f->code == PS_OK && ps_tmp_commit(&f->tmp, f->mode, f->mtime,
	    f->nsec) != PS_OK)
		fail_fs(f);
	if (f->code == PS_OK) {
		f->path = NULL;		/* now owned by the cache entry */
		pthread_mutex_lock(&r->mu);
		r->st->files++;
		if (r->o->progress_files != NULL)
			__atomic_fetch_add(r->o->progress_files, 1,
			    __ATOMIC_RELAXED);
		note_dir(r, f->rel);
		note_placed(r, f, &e);
		pthread_mutex_unlock(&r->mu);
		send_result(r, f->id, PS_OK, "");
	} else {
		free(e.blocks);
		free(e.weak);
		/* Told in RESULT; the sender may retry, so not in "worst". */
		count_error(r, PS_OK, NULL);
		send_result(r, f->id, f->code, f->msg);
	}
	free_rfile(f);
	free(c);
}

static int
on_end(struct recv *r, const struct buf *payload)
{
	struct ps_msg_end m;
	struct commit *c;
	struct rfile *f;
	int rc;

	if ((rc = ps_sess_decode(r->s, PS_MSG_END, payload, &m)) != PS_OK)
		return rc;
	if ((f = find(r, m.id)) == NULL || !f->have_meta)
		return ps_sess_fail(r->s, PS_EPEER, "the sender broke the "
		    "protocol: end of unknown file id %" PRIu32, m.id);
	/* Unwritten bytes are never hashed: a claimed size costs nothing. */
	if (f->code == PS_OK && f->covered != f->size)
		fail_file(f, PS_EVERIFY, "%s: only %" PRIu64 " of its %" PRIu64
		    " bytes came", f->rel, f->covered, f->size);
	if (f->code == PS_OK)
		writeback(f, 0, 1);
	if (f->pv != NULL)	/* the rest, while the commit waits */
		pv_set(f->pv, f->inorder, 1, f->code != PS_OK);
	unlink_rfile(r, f);
	c = xmalloc(sizeof(*c));
	c->r = r;
	c->f = f;
	pthread_mutex_lock(&r->mu);
	r->ncommit++;
	pthread_mutex_unlock(&r->mu);
	ps_pool_submit(r->cpool, commit, c);
	return PS_OK;
}

static int
on_mkdir(struct recv *r, const struct buf *payload)
{
	struct ps_msg_mkdir m;
	char *rel;
	int rc;

	if ((rc = ps_sess_decode(r->s, PS_MSG_MKDIR, payload, &m)) != PS_OK)
		return rc;
	if (refused_path(r, &m.path))
		return bad_path(r, &m.path);
	rel = join(r->dest, (const char *)m.path.p, m.path.len);
	/*
	 * Writable by us until it is filled: its own mode comes with its
	 * time, after its contents (META), as rsync does.
	 */
	ps_clear_error();
	if (ps_mkdir(r->root, rel, m.mode | 0700) != PS_OK)
		count_error(r, PS_EPARTIAL, ps_last_error());
	free(rel);
	return PS_OK;
}

static int
on_delete(struct recv *r, const struct buf *payload)
{
	struct ps_msg_delete m;
	char *rel, *esc;
	int rc;

	if ((rc = ps_sess_decode(r->s, PS_MSG_DELETE, payload, &m)) != PS_OK)
		return rc;
	/* Without --delete nothing is deleted, whatever the peer sends. */
	if (!(r->o->flags & PS_OF_DELETE))
		return ps_sess_fail(r->s, PS_EPEER, "the sender broke the "
		    "protocol: a deletion without --delete");
	if (refused_path(r, &m.path))
		return bad_path(r, &m.path);
	if (r->o->source != NULL && ps_manifest_find(r->o->source,
	    (const char *)m.path.p, m.path.len) != NULL) {
		esc = ps_escape((const char *)m.path.p, m.path.len);
		rc = ps_sess_fail(r->s, PS_EPEER, "the sender broke the "
		    "protocol: it asked to delete %s, which it has itself",
		    esc);
		free(esc);
		return rc;
	}
	rel = join(r->dest, (const char *)m.path.p, m.path.len);
	ps_clear_error();
	rc = m.type == PS_FT_DIR ? ps_rmdir(r->root, rel) :
	    ps_unlink(r->root, rel);
	free(rel);
	if (rc != PS_OK) {
		count_error(r, PS_EPARTIAL, ps_last_error());
		return PS_OK;
	}
	pthread_mutex_lock(&r->mu);
	r->st->deleted++;
	pthread_mutex_unlock(&r->mu);
	if (m.type == PS_FT_FILE) {
		r->gone = xreallocarray(r->gone, r->ngone + 1,
		    sizeof(*r->gone));
		r->gone[r->ngone++] = xstrndup((const char *)m.path.p,
		    m.path.len);
	}
	return PS_OK;
}

static int
set_file_meta(struct recv *r, const char *rel, const struct ps_msg_meta *m)
{
	struct timespec ts[2];
	char *esc;
	int fd, rc;

	if ((rc = ps_file_open(r->root, rel, &fd, NULL)) != PS_OK)
		return rc;
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = m->mtime;
	ts[1].tv_nsec = m->nsec;
	if (ps_set_mode(fd, m->mode & PS_MODE_APPLIED, rel) != PS_OK)
		rc = PS_EPARTIAL;
	else if (futimens(fd, ts) != 0) {
		esc = ps_escape(rel, strlen(rel));
		ps_err("%s: %s", esc, strerror(errno));
		free(esc);
		rc = PS_EPARTIAL;
	}
	close(fd);
	return rc;
}

static int
on_meta(struct recv *r, const struct buf *payload)
{
	struct ps_msg_meta m;
	char *rel;
	int rc;

	if ((rc = ps_sess_decode(r->s, PS_MSG_META, payload, &m)) != PS_OK)
		return rc;
	if (refused_path(r, &m.path))
		return bad_path(r, &m.path);
	rel = join(r->dest, (const char *)m.path.p, m.path.len);
	ps_clear_error();
	if (m.type == PS_FT_DIR) {
		rc = ps_mkdir(r->root, rel, m.mode);
		if (rc == PS_OK)
			rc = ps_set_times(r->root, rel, m.mtime, m.nsec);
	} else {
		rc = set_file_meta(r, rel, &m);
	}
	free(rel);
	if (rc != PS_OK)
		count_error(r, PS_EPARTIAL, ps_last_error());
	return PS_OK;
}

/* Fold this session's changes into the cached manifest and save it. */
static const struct ps_entry *upd_base;

/* Files placed, in manifest order; the later of two for one path last. */
static int
upd_cmp(const void *x, const void *y)
{
	const struct ps_entry *a = &upd_base[*(const size_t *)x];
	const struct ps_entry *b = &upd_base[*(const size_t *)y];
	int c = ps_path_cmp(a->path, a->path_len, b->path, b->path_len);

	if (c != 0)
		return c;
	return *(const size_t *)x < *(const size_t *)y ? -1 : 1;
}

static int
gone_cmp(const void *x, const void *y)
{
	const char *a = *(char *const *)x, *b = *(char *const *)y;

	return ps_path_cmp(a, strlen(a), b, strlen(b));
}

/*
 * The cache after a push: the manifest described at the start, read
 * back as a stream and merged with what this session deleted and put in
 * place; the entries kept are copied as they are encoded (their block
 * sums are most of the bytes: never decoded, never encoded again).
 * Memory: the changes only.
 */
static void
update_cache(struct recv *r)
{
	struct ps_cachew *cw;
	struct ps_mfin *in;
	const struct ps_entry *e, *u;
	size_t *ix = NULL, i = 0, g = 0;
	const char *dropped = NULL;	/* the last path left out */
	const unsigned char *raw;
	size_t dlen = 0, rawlen;
	int fd;

	if ((r->ngone == 0 && r->upd.n == 0) || r->mf_fd < 0 ||
	    !cache_saved(r->o))
		return;
	if (r->upd.n > 0) {
		ix = xreallocarray(NULL, r->upd.n, sizeof(*ix));
		for (i = 0; i < r->upd.n; i++)
			ix[i] = i;
		upd_base = r->upd.e;	/* one receiver per process */
		qsort(ix, r->upd.n, sizeof(*ix), upd_cmp);
	}
	if (r->ngone > 1)
		qsort(r->gone, r->ngone, sizeof(*r->gone), gone_cmp);
	in = ps_mfin_pread_raw(r->mf_fd);
	cw = ps_cachew_open(r->o->cache_dirfd, r->o->cache_name, -1,
	    PS_MF_LOCAL, PS_ENC_LOCAL);
	i = 0;
	e = ps_mfin_next(in);
	for (;;) {
		/* The later of several placings of one path wins. */
		while (i + 1 < r->upd.n && ps_path_cmp(
		    r->upd.e[ix[i]].path, r->upd.e[ix[i]].path_len,
		    r->upd.e[ix[i + 1]].path, r->upd.e[ix[i + 1]].path_len) ==
		    0)
			i++;
		u = i < r->upd.n ? &r->upd.e[ix[i]] : NULL;
		if (e == NULL && u == NULL)
			break;
		if (e != NULL && (u == NULL || ps_path_cmp(e->path,
		    e->path_len, u->path, u->path_len) < 0)) {
			while (g < r->ngone && ps_path_cmp(r->gone[g],
			    strlen(r->gone[g]), e->path, e->path_len) < 0)
				g++;
			if (g < r->ngone && strcmp(r->gone[g], e->path) == 0) {
				dropped = r->gone[g];
				dlen = strlen(dropped);
			} else if (dropped == NULL || e->path_len <= dlen ||
			    memcmp(e->path, dropped, dlen) != 0 ||
			    e->path[dlen] != '/') {
				raw = ps_mfin_raw(in, &rawlen);
				ps_cachew_add_raw(cw, raw, rawlen);
			}
			e = ps_mfin_next(in);
			continue;
		}
		if (e != NULL && ps_path_cmp(e->path, e->path_len, u->path,
		    u->path_len) == 0)
			e = ps_mfin_next(in);	/* replaced */
		if ((r->o->flags & PS_OF_LAZYSUMS) && u->size < KEEP_MIN) {
			struct ps_entry small = *u;	/* as describe has it */

			small.blocks = NULL;
			small.weak = NULL;
			ps_cachew_add(cw, &small);
		} else {
			ps_cachew_add(cw, u);
		}
		i++;
	}
	/* Copied as encoded: only into a cache of the same kind. */
	if (ps_mfin_failed(in) || ps_mfin_flags(in) != PS_MF_LOCAL) {
		ps_cachew_abort(cw);
	} else if ((fd = ps_cachew_commit(cw, NULL)) >= 0) {
		close(r->mf_fd);
		r->mf_fd = fd;
	}
	ps_mfin_free(in);
	free(ix);
}

static void
job_update_cache(void *arg)
{
	update_cache(arg);
}

static void
cleanup(struct recv *r)
{
	size_t i;

	ps_pool_free(r->pool);
	r->pool = NULL;
	ps_pool_free(r->cpool);
	r->cpool = NULL;
	/* Every temporary of a file not committed goes with it. */
	for (i = 0; i < NBUCKET; i++)
		while (r->bucket[i] != NULL) {
			struct rfile *f = r->bucket[i];

			unlink_rfile(r, f);
			free_rfile(f);
		}
	for (i = 0; i < r->ngone; i++)
		free(r->gone[i]);
	free(r->gone);
	ps_manifest_free(&r->upd);
	ps_manifest_free(&r->by);
	free_kept(r);
	if (r->mf_fd >= 0)
		close(r->mf_fd);
	ZSTD_freeDCtx(r->zd);
	free(r->zbuf);
	for (i = 0; i < r->ndirs; i++)
		free(r->dirs[i]);
	free(r->dirs);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->nsmu);
}

static int
send_doneack(struct recv *r)
{
	struct ps_msg_doneack m;
	int rc, e;

	if ((e = ps_mode_unkept()) != 0) {
		if (r->s->role == PS_ROLE_CONSOLE)
			ps_warn("%s: this filesystem does not keep permission "
			    "bits (%s): files are written without them",
			    r->o->label, strerror(e));
		else
			ps_sess_notice(r->s, PS_NOTE_WARN, "this filesystem "
			    "does not keep permission bits (%s): files are "
			    "written without them", strerror(e));
	}
	pthread_mutex_lock(&r->mu);
	m.code = (uint32_t)r->st->worst;
	m.files = r->st->files;
	m.deleted = r->st->deleted;
	m.errors = r->st->errors;
	pthread_mutex_unlock(&r->mu);
	rc = ps_send_doneack(r->s->w, &m);
	if (rc == PS_OK)
		rc = ps_wire_flush(r->s->w);
	return ps_sess_send_failed(r->s, rc);
}

static int
dispatch(struct recv *r, uint8_t type, const struct buf *payload)
{
	if (r->o->report_only)
		return ps_sess_unexpected(r->s, type, "in a report");
	switch (type) {
	case PS_MSG_SUMREQ:
		return on_sumreq(r, payload);
	case PS_MSG_FILE:
		return on_file(r, payload);
	case PS_MSG_DATA:
		return on_data(r, payload);
	case PS_MSG_COPY:
		return on_copy(r, payload);
	case PS_MSG_END:
		return on_end(r, payload);
	case PS_MSG_MKDIR:
		return on_mkdir(r, payload);
	case PS_MSG_DELETE:
		return on_delete(r, payload);
	case PS_MSG_META:
		return on_meta(r, payload);
	default:
		return ps_sess_unexpected(r->s, type, "while receiving files");
	}
}

/* A file of the sender's that will come: counted for the progress. */
static void
to_come(struct recv *r, const struct ps_entry *e)
{
	if (e->type != PS_FT_FILE)
		return;
	__atomic_fetch_add(r->o->progress_total, e->size, __ATOMIC_RELAXED);
	if (r->o->progress_nfiles != NULL)
		__atomic_fetch_add(r->o->progress_nfiles, 1,
		    __ATOMIC_RELAXED);
}

/*
 * A pull's totals, from the sender's manifest merged with our walk (E in
 * path order; NULL at its end): what the sender has and we lack, or hold
 * with other content, will come.
 */
static void
tally(struct recv *r, const struct ps_entry *e)
{
	const struct ps_manifest *src = r->o->source;
	const struct ps_entry *s;
	int c;

	if (src == NULL || r->o->progress_total == NULL)
		return;
	while (r->tally < src->n) {
		s = &src->e[r->tally];
		c = e == NULL ? -1 : ps_path_cmp(s->path, s->path_len, e->path,
		    e->path_len);
		if (c > 0)
			return;
		r->tally++;
		if (c < 0 || e->type != s->type ||
		    !ps_entry_same_content(s, e))
			to_come(r, s);
		if (c == 0)
			return;
	}
}

/*
 * Describe ROOT/DEST to the sender as it is walked: each entry goes on
 * the wire and into the cache (rewritten only where it changed) at once.
 */
static int
describe(struct recv *r)
{
	const struct ps_recv_opts *o = r->o;
	struct ps_build_opts bo = { 0 };
	struct ps_sess_mfout *out;
	struct ps_mfin *cache = NULL;
	struct ps_cachew *cw = NULL;
	const struct ps_entry *e;
	struct ps_walk *w;
	int rc, sent = PS_OK, oldfd;

	out = ps_sess_mfout_begin(r->s, 0);
	if (o->flags & PS_OF_LAZYSUMS)
		ps_sess_mfout_nosums(out);
	if (o->dirfd < 0) {		/* nothing there yet */
		rc = ps_sess_mfout_end(out);
		ps_sess_mfout_free(out);
		return rc;
	}
	if ((oldfd = cache_open(o)) >= 0)
		cache = ps_mfin_pread(oldfd);
	bo.cache_in = cache;
	bo.checksum = (o->flags & PS_OF_CHECKSUM) != 0;
	bo.label = o->label;
	bo.sums = PS_SUMS_STRONG | PS_SUMS_WEAK;	/* basis of deltas */
	/*
	 * With lazy sums, only a big file's sums are ever taken from here
	 * (kept_for); a smaller one is read when they are asked for. The
	 * cache goes without them: a tenth of its bytes for a tree of
	 * files of a few hundred KiB, and so of its reading and writing.
	 */
	if (o->flags & PS_OF_LAZYSUMS)
		bo.sums_min = KEEP_MIN;
	if ((rc = ps_walk_open(o->dirfd, &bo, &w)) != PS_OK) {
		ps_mfin_free(cache);
		if (oldfd >= 0)
			close(oldfd);
		ps_sess_mfout_free(out);
		return ps_sess_fail(r->s, rc, "cannot read %s", o->label);
	}
	if (cache_saved(o)) {
		cw = ps_cachew_open(o->cache_dirfd, o->cache_name, oldfd,
		    PS_MF_LOCAL, PS_ENC_LOCAL);
		oldfd = -1;		/* the writer's now */
	}
	while ((e = ps_walk_next(w)) != NULL) {
		if (atomic_load_explicit(&r->dstop, memory_order_relaxed)) {
			sent = PS_EPEER;	/* the session failed */
			break;
		}
		if (sent == PS_OK)
			sent = ps_sess_mfout_add(out, e);
		if (o->flags & PS_OF_LAZYSUMS)
			keep_sums(r, e);
		if (cw != NULL)
			ps_cachew_add(cw, e);
		tally(r, e);
	}
	tally(r, NULL);
	rc = ps_walk_close(w, &r->by);
	ps_mfin_free(cache);
	if (oldfd >= 0)
		close(oldfd);
	if (sent != PS_OK || rc != PS_OK) {
		ps_cachew_abort(cw);
		ps_sess_mfout_free(out);
		if (sent != PS_OK)
			return sent;
		if (rc == PS_EPARTIAL)
			/* Unreadable files would look missing: sent again. */
			return ps_sess_fail(r->s, PS_EPARTIAL, "some files "
			    "under %s cannot be read", o->label);
		return ps_sess_fail(r->s, rc, "cannot read %s", o->label);
	}
	if (cw != NULL)
		r->mf_fd = ps_cachew_commit(cw, NULL);
	if (!o->report_only && !(o->flags & PS_OF_DRYRUN))
		sweep_temps(r);
	rc = ps_sess_mfout_end(out);
	ps_sess_mfout_free(out);
	return rc;
}

static void *
describe_main(void *arg)
{
	struct recv *r = arg;

	r->drc = describe(r);
	/* MFEND is out: what was answered meanwhile follows it. */
	(void)ps_wire_release(r->s->w);
	return NULL;
}

/*
 * An early push: describe on a thread while the main thread takes the
 * files the sender may send before our manifest has ended. Anything we
 * would send meanwhile but the manifest (RESULT, SUMS, NOTICE) is held
 * back until MFEND, so that the sender reads the manifest whole first.
 */
static int
describe_start(struct recv *r)
{
	uint64_t pass = 1ull << PS_MSG_MFDATA | 1ull << PS_MSG_MFEND |
	    1ull << PS_MSG_ERROR | 1ull << PS_MSG_KEEPALIVE;

	ps_wire_hold(r->s->w, pass);
	if (pthread_create(&r->dtid, NULL, describe_main, r) == 0) {
		r->describing = 1;
		return PS_OK;
	}
	(void)ps_wire_release(r->s->w);
	return describe(r);
}

static int
describe_join(struct recv *r)
{
	if (!r->describing)
		return PS_OK;
	pthread_join(r->dtid, NULL);
	r->describing = 0;
	return r->drc;
}

/*
 * What may come while we describe: a new directory and files sent
 * whole. Anything else (a delta, a deletion, DONE) is only taken after
 * the description is complete.
 */
static int
early_frame(uint8_t type)
{
	return type == PS_MSG_MKDIR || type == PS_MSG_FILE ||
	    type == PS_MSG_DATA || type == PS_MSG_END;
}

int
ps_receive(struct ps_sess *s, struct ps_root *root,
    const struct ps_recv_opts *o, struct ps_recv_stats *st)
{
	struct recv r;
	struct buf msg = { 0 };
	uint8_t type;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(st, 0, sizeof(*st));
	r.s = s;
	r.root = root;
	r.o = o;
	r.dest = o->dest;
	r.st = st;
	r.mf_fd = -1;
	pthread_mutex_init(&r.mu, NULL);
	pthread_mutex_init(&r.nsmu, NULL);
	r.pool = ps_pool_new(ps_ncpu());
	r.cpool = ps_pool_new(COMMIT_THREADS);
	r.zd = ZSTD_createDCtx();
	r.zbuf = xmalloc(PS_DATA_CHUNK);
	rc = o->early && o->dirfd >= 0 ? describe_start(&r) : describe(&r);
	if (rc != PS_OK)
		goto out;
	for (;;) {
		if ((rc = ps_sess_recv(s, &type, &msg)) != PS_OK)
			break;
		if (r.describing && !early_frame(type) &&
		    (rc = describe_join(&r)) != PS_OK)
			break;
		if (type == PS_MSG_DONE) {
			if (msg.len != 0) {
				rc = ps_sess_unexpected(s, type, "with data");
				break;
			}
			ps_pool_wait(r.pool);
			ps_pool_wait(r.cpool);
			/* The cache is written while the directories sync. */
			ps_pool_submit(r.pool, job_update_cache, &r);
			sync_dirs(&r);
			ps_pool_wait(r.pool);
			rc = send_doneack(&r);
			break;
		}
		if ((rc = dispatch(&r, type, &msg)) != PS_OK)
			break;
	}
out:
	if (r.describing) {
		atomic_store(&r.dstop, 1);
		(void)describe_join(&r);
	}
	cleanup(&r);
	buf_free(&msg);
	return rc;
}
