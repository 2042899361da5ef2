/*
 * walk.c — a directory tree as a stream of manifest entries (walk.h).
 *
 * The walk is depth first with each directory's names sorted, which is
 * manifest order. Entries enter a window in that order; a file the cache
 * does not vouch for is hashed by a worker of a small pool while the walk
 * goes on, and entries leave the window in order as they are ready. The
 * window is bounded in entries and in bytes waiting to be hashed, so a
 * huge tree costs only its directories' names and the window.
 *
 * Threads: the caller's thread walks and takes entries; pool workers
 * hash. The walk's mutex guards the state of the items in the window.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsops.h"
#include "match.h"
#include "pool.h"
#include "walk.h"
#include "xxh.h"

#define READ_BUF	(1u << 20)	/* per hashing job: the largest block */
/*
 * Bytes read per fill unless a block is bigger: small enough that the
 * data copied in is still in L2 when both hashes run over it.
 */
#define READ_CHUNK	(1u << 17)
#define WINDOW		512		/* entries in the window */
#define WINDOW_BYTES	(256u << 20)	/* bytes waiting to be hashed */
#define MAX_THREADS	64
/*
 * A file whose mtime or ctime is this close to the start of the walk
 * could change again within the same timestamp tick without either
 * moving; its cache identity is not trusted (see racy()).
 */
#define RACY_SECS	1

enum { IT_READY, IT_HASHING, IT_DROP };

struct item {
	struct ps_entry e;
	int state;		/* mu while IT_HASHING */
	int failed;		/* not readable: its path is kept */
};

struct name {
	char *s;
	unsigned char type;	/* d_type, maybe DT_UNKNOWN */
};

struct level {
	int fd;
	size_t plen;		/* its path's length in w->path */
	struct name *names;
	size_t n, next;
};

/* A hashing job's buffer and state, reused through a free list. */
struct hasher {
	unsigned char *buf;
	void *st;		/* XXH3_state_t */
	struct hasher *next;
};

struct ps_walk {
	int rootfd;
	const char *label;
	int sums;
	uint64_t sums_min;	/* smaller files go without sums */
	int checksum;
	const struct ps_manifest *cache;
	struct ps_mfin *cache_in;
	const struct ps_entry *cache_head;	/* cache_in's next entry */
	struct timespec start;

	char path[PS_PATH_MAX + 2];
	struct level *stack;
	size_t depth, cap;
	int done;		/* the walk has nothing more */

	struct item ring[WINDOW];
	size_t head, count;	/* the window: ring[head], count items */
	int out;		/* ring[head] was handed out last */
	uint64_t pending;	/* bytes being hashed (mu) */

	struct ps_pool *pool;
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* an item finished hashing */
	struct hasher *free;	/* mu */

	struct ps_manifest by;	/* unreadable paths, temporaries */
	int errors;
};

struct job {
	struct ps_walk *w;
	struct item *it;
};

/* ---- messages and byproducts ---- */

static void
said(struct ps_walk *w, const char *path, size_t len, const char *what,
    int errnum)
{
	char *esc = ps_escape(path, len);
	const char *l = w->label;

	if (errnum != 0)
		ps_err("%s%s%s: %s: %s", l ? l : "", l ? "/" : "", esc, what,
		    strerror(errnum));
	else
		ps_err("%s%s%s: %s", l ? l : "", l ? "/" : "", esc, what);
	free(esc);
}

static void
strv_add(char ***v, size_t *n, const char *p, size_t len)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = xstrndup(p, len);
}

/* PATH could not be read: said, and kept (its state is unknown). */
static void
unreadable(struct ps_walk *w, const char *path, size_t len, const char *what,
    int errnum)
{
	said(w, path, len, what, errnum);
	if (len > 0)
		strv_add(&w->by.unreadable, &w->by.nunreadable, path, len);
	w->errors++;
}

static void
skipped(struct ps_walk *w, size_t len, const char *what)
{
	char *esc = ps_escape(w->path, len);
	const char *l = w->label;

	ps_warn("skipping %s: %s%s%s", what, l ? l : "", l ? "/" : "", esc);
	free(esc);
}

/* ---- hashing ---- */

static void
entry_from_stat(struct ps_entry *e, const struct stat *st)
{
	e->mode = st->st_mode & 07777;
	e->size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
	e->mtime_sec = st->st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->ctime_sec = st->st_ctim.tv_sec;
	e->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
	e->nblocks = 0;
	if (S_ISREG(st->st_mode)) {
		e->block_shift = (uint8_t)ps_block_shift_for(e->size);
		e->nblocks = (e->size >> e->block_shift) +
		    ((e->size & (((uint64_t)1 << e->block_shift) - 1)) != 0);
	}
}

/*
 * Room for the block sums SUMS asks for (none for a huge file, nor with
 * SUMS 0).
 */
static void
alloc_sums(struct ps_entry *e, int sums)
{
	free(e->blocks);
	free(e->weak);
	e->blocks = NULL;
	e->weak = NULL;
	if (e->nblocks == 0 || e->nblocks > PS_SUMS_MAX_BLOCKS || sums == 0)
		return;
	e->blocks = xreallocarray(NULL, e->nblocks, 8);
	if (sums & PS_SUMS_WEAK)
		e->weak = xreallocarray(NULL, e->nblocks, 4);
}

static struct hasher *
hasher_get(struct ps_walk *w)
{
	struct hasher *h = NULL;

	if (w != NULL) {
		pthread_mutex_lock(&w->mu);
		if ((h = w->free) != NULL)
			w->free = h->next;
		pthread_mutex_unlock(&w->mu);
	}
	if (h != NULL)
		return h;
	h = xcalloc(1, sizeof(*h));
	/*
	 * Page-aligned: the kernel's copy into a buffer 16 bytes off a
	 * cache line (what malloc returns) was a third slower.
	 */
	h->buf = aligned_alloc(4096, READ_BUF);
	h->st = XXH3_createState();
	if (h->buf == NULL || h->st == NULL) {
		ps_err("out of memory");
		exit(PS_EPARTIAL);
	}
	return h;
}

static void
hasher_free(struct hasher *h)
{
	free(h->buf);
	XXH3_freeState(h->st);
	free(h);
}

static void
hasher_put(struct ps_walk *w, struct hasher *h)
{
	if (w == NULL) {
		hasher_free(h);
		return;
	}
	pthread_mutex_lock(&w->mu);
	h->next = w->free;
	w->free = h;
	pthread_mutex_unlock(&w->mu);
}

/*
 * A sparse file's holes: where the data at or after POS begins and the
 * hole after it (lseek SEEK_DATA, SEEK_HOLE). Reading a hole makes the
 * kernel zero a page cache page for every 4 KiB of it (1.2 GB/s here: a
 * 5 GiB sparse image took 14 s of system time); the zeros are put into
 * the buffer instead. The file offset is left at the data. Returns 0, or
 * -1 when the filesystem cannot say (then everything is read).
 */
struct holes {
	uint64_t data;		/* the hole before it ends here */
	uint64_t hole;		/* and the next hole begins here */
};

static int
next_data(int fd, uint64_t pos, uint64_t size, struct holes *ho)
{
	off_t d, hl;

	d = lseek(fd, (off_t)pos, SEEK_DATA);
	if (d == -1 && errno == ENXIO) {
		ho->data = ho->hole = size;	/* a hole to the end */
		return 0;
	}
	if (d == -1 || (uint64_t)d < pos)
		return -1;
	hl = lseek(fd, d, SEEK_HOLE);
	if (hl == -1 || hl < d || lseek(fd, d, SEEK_SET) != d)
		return -1;
	ho->data = (uint64_t)d;
	ho->hole = (uint64_t)hl;
	return 0;
}

/*
 * Read FD through H's buffer, hashing whole blocks as they come; SPARSE
 * when fstat says the file has fewer blocks than bytes. Returns 0 when
 * read, 1 when the file is not the size fstat said, -1 on error (errno
 * set).
 */
static int
read_hash(struct hasher *h, int fd, struct ps_entry *e, int sparse)
{
	size_t fill, want, bs = (size_t)1 << e->block_shift, i, n;
	size_t chunk = bs > READ_CHUNK ? bs : READ_CHUNK;
	uint64_t off = 0, pos;
	struct holes ho = { 0, 0 };
	XXH128_hash_t h128;
	XXH128_canonical_t c;
	ssize_t r;
	int eof = 0, streaming = 0;

	while (!eof) {
		fill = 0;
		while (fill < chunk) {
			want = chunk - fill;
			pos = off + fill;
			if (sparse && pos >= ho.hole && pos < e->size &&
			    next_data(fd, pos, e->size, &ho) == -1) {
				sparse = 0;	/* read it all, from here */
				if (lseek(fd, (off_t)pos, SEEK_SET) == -1)
					return -1;
			}
			if (sparse && pos < ho.data) {
				if (want > ho.data - pos)
					want = (size_t)(ho.data - pos);
				memset(h->buf + fill, 0, want);
				fill += want;
				if (off + fill == e->size) {
					eof = 1;
					break;
				}
				continue;
			}
			if (sparse && want > ho.hole - pos)
				want = (size_t)(ho.hole - pos);
			r = read(fd, h->buf + fill, want);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			if (r == 0) {
				eof = 1;
				break;
			}
			fill += (size_t)r;
			if (off + fill > e->size)
				return 1;	/* grew */
			/*
			 * A short read that ends where fstat said the
			 * file ends is EOF; saves a read() per small file.
			 * Growth after that is caught by the second fstat.
			 */
			if ((size_t)r < want && off + fill == e->size) {
				eof = 1;
				break;
			}
		}
		if (off == 0 && eof) {
			h128 = HASH128(h->buf, fill);	/* whole file at once */
		} else {
			if (!streaming) {
				XXH3_128bits_reset(h->st);
				streaming = 1;
			}
			HASH128_UPDATE(h->st, h->buf, fill);
		}
		/* chunk is a multiple of bs: blocks never straddle fills. */
		for (i = 0; i < fill && e->blocks != NULL; i += bs) {
			n = fill - i < bs ? fill - i : bs;
			e->blocks[(off + i) >> e->block_shift] =
			    HASH64(h->buf + i, n);
			if (e->weak != NULL)
				e->weak[(off + i) >> e->block_shift] =
				    ps_weak(h->buf + i, n);
		}
		off += fill;
	}
	if (off != e->size)
		return 1;	/* shrank */
	if (streaming)
		h128 = XXH3_128bits_digest(h->st);
	XXH128_canonicalFromHash(&c, h128);
	memcpy(e->hash, c.digest, 16);
	return 0;
}

static int
same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino &&
	    a->st_dev == b->st_dev &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * Hash IT once. Returns 0, 1 when it changed under us, 2 when it is
 * gone, -1 when it cannot be read (said).
 */
static int
hash_once(struct ps_walk *w, struct hasher *h, struct ps_entry *e)
{
	struct stat st, st2;
	int fd, r;

	if (ps_open_beneath(w->rootfd, e->path, &fd, &st) == -1) {
		if (errno == ENOENT)
			return 2;	/* gone since the walk */
		if (errno == EISDIR || errno == EINVAL || errno == ELOOP)
			return 1;	/* replaced since the walk */
		said(w, e->path, e->path_len, "open", errno);
		return -1;
	}
	/* Describe the file as opened, whatever the walk saw. */
	entry_from_stat(e, &st);
	alloc_sums(e, e->size >= w->sums_min ? w->sums : 0);
	if (e->size > READ_BUF)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	r = read_hash(h, fd, e, (uint64_t)st.st_blocks * 512 < e->size);
	if (r < 0)
		said(w, e->path, e->path_len, "read", errno);
	if (r == 0 && fstat(fd, &st2) == 0 && !same_stat(&st, &st2))
		r = 1;
	close(fd);
	return r;
}

static void
hash_job(void *arg)
{
	struct job *j = arg;
	struct ps_walk *w = j->w;
	struct item *it = j->it;
	struct hasher *h = hasher_get(w);
	uint64_t size = it->e.size;
	int r;

	r = hash_once(w, h, &it->e);
	if (r == 1)
		r = hash_once(w, h, &it->e);	/* once more, then give up */
	if (r == 1)
		said(w, it->e.path, it->e.path_len, "changed while being read",
		    0);
	hasher_put(w, h);
	pthread_mutex_lock(&w->mu);
	it->failed = r == -1 || r == 1;
	it->state = r == 0 ? IT_READY : IT_DROP;
	w->pending -= size;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	free(j);
}

/* ---- the cache ---- */

/* Does the walk want E's block sums? */
static int
wants_sums(const struct ps_walk *w, const struct ps_entry *e)
{
	return e->nblocks > 0 && e->nblocks <= PS_SUMS_MAX_BLOCKS &&
	    e->size >= w->sums_min;
}

static int
cache_fits(const struct ps_walk *w, const struct ps_entry *c,
    const struct ps_entry *e)
{
	int want = wants_sums(w, e);

	if (c == NULL || c->type != PS_FT_FILE || c->ino == 0 ||
	    c->size != e->size || c->mtime_sec != e->mtime_sec ||
	    c->mtime_nsec != e->mtime_nsec || c->dev != e->dev ||
	    c->ino != e->ino || c->ctime_sec != e->ctime_sec ||
	    c->ctime_nsec != e->ctime_nsec ||
	    c->block_shift != e->block_shift || c->nblocks != e->nblocks)
		return 0;
	/* An older cache without the sums asked for does not do. */
	return !want || (c->blocks != NULL &&
	    (!(w->sums & PS_SUMS_WEAK) || c->weak != NULL));
}

/* The cache's entry for E's path, if there is one. */
static const struct ps_entry *
cache_lookup(struct ps_walk *w, const struct ps_entry *e)
{
	const struct ps_entry *c;
	int k;

	if (w->cache != NULL)
		return (w->cache->flags & PS_MF_LOCAL) ?
		    ps_manifest_find(w->cache, e->path, e->path_len) : NULL;
	if (w->cache_in == NULL)
		return NULL;
	/* The walk goes in manifest order: the cache is read along. */
	for (;;) {
		c = w->cache_head;
		if (c == NULL)
			return NULL;
		k = ps_path_cmp(c->path, c->path_len, e->path, e->path_len);
		if (k == 0)
			return c;
		if (k > 0)
			return NULL;
		w->cache_head = ps_mfin_next(w->cache_in);
	}
}

/* Take hash and sums from the cache when it vouches for the file. */
static int
from_cache(struct ps_walk *w, struct ps_entry *e)
{
	const struct ps_entry *c = cache_lookup(w, e);
	int want = wants_sums(w, e);

	if (w->checksum || !cache_fits(w, c, e))
		return 0;
	memcpy(e->hash, c->hash, 16);
	if (want) {
		e->blocks = xreallocarray(NULL, c->nblocks, 8);
		memcpy(e->blocks, c->blocks, c->nblocks * 8);
		if (w->sums & PS_SUMS_WEAK) {
			e->weak = xreallocarray(NULL, c->nblocks, 4);
			memcpy(e->weak, c->weak, c->nblocks * 4);
		}
	}
	return 1;
}

/* ---- the walk ---- */

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct name *)a)->s,
	    ((const struct name *)b)->s);
}

/* Push the directory open at FD, whose path is w->path[0..plen). */
static void
push_dir(struct ps_walk *w, int fd, size_t plen)
{
	struct level *l;
	struct dirent *de;
	size_t cap = 0;
	DIR *d;

	if ((d = fdopendir(fd)) == NULL) {
		unreadable(w, w->path, plen, "cannot read directory", errno);
		close(fd);
		return;
	}
	/*
	 * FD may share its offset with a descriptor already read to its end
	 * (a duplicate of the caller's, walked before): start again.
	 */
	rewinddir(d);
	if (w->depth == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 16;
		w->stack = xreallocarray(w->stack, w->cap, sizeof(*w->stack));
	}
	l = &w->stack[w->depth++];
	memset(l, 0, sizeof(*l));
	l->plen = plen;
	l->fd = fcntl(dirfd(d), F_DUPFD_CLOEXEC, 0);
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		/* patchsync's own state at a server's root: not the tree */
		if (plen == 0 && strcmp(de->d_name, PS_META_DIR) == 0 &&
		    (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN))
			continue;
		if (l->n == cap) {
			cap = cap ? cap * 2 : 16;
			l->names = xreallocarray(l->names, cap,
			    sizeof(*l->names));
		}
		l->names[l->n].s = xstrdup(de->d_name);
		l->names[l->n].type = de->d_type;
		l->n++;
	}
	if (errno != 0)
		unreadable(w, w->path, plen, "cannot read directory", errno);
	closedir(d);
	if (l->fd < 0) {
		unreadable(w, w->path, plen, "cannot read directory", errno);
		l->n = 0;
	}
	if (l->n > 1)
		qsort(l->names, l->n, sizeof(*l->names), name_cmp);
}

static void
pop_dir(struct ps_walk *w)
{
	struct level *l = &w->stack[--w->depth];
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->names[i].s);
	free(l->names);
	if (l->fd >= 0)
		close(l->fd);
}

/*
 * The next tree entry into E (path, type, stat fields), or 0 at the end.
 * Directories are pushed as they are met, so their contents follow them.
 */
static int
walk_step(struct ps_walk *w, struct ps_entry *e)
{
	struct level *l;
	struct stat st;
	const char *n;
	size_t nlen, clen;
	int fd;

	while (w->depth > 0) {
		l = &w->stack[w->depth - 1];
		if (l->next == l->n) {
			pop_dir(w);
			continue;
		}
		n = l->names[l->next++].s;
		nlen = strlen(n);
		clen = l->plen == 0 ? nlen : l->plen + 1 + nlen;
		if (clen > PS_PATH_MAX) {
			unreadable(w, w->path, l->plen, "name inside is "
			    "longer than the path limit", 0);
			continue;
		}
		if (l->plen > 0)
			w->path[l->plen] = '/';
		memcpy(w->path + clen - nlen, n, nlen);
		w->path[clen] = '\0';
		if (fstatat(l->fd, n, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno != ENOENT)	/* vanished: nothing to say */
				unreadable(w, w->path, clen, "stat", errno);
			continue;
		}
		switch (st.st_mode & S_IFMT) {
		case S_IFREG:
			/* A push's hidden temporary is not part of the tree. */
			if (strncmp(n, PS_TMP_PREFIX,
			    sizeof(PS_TMP_PREFIX) - 1) == 0) {
				strv_add(&w->by.temps, &w->by.ntemps, w->path,
				    clen);
				continue;
			}
			break;
		case S_IFDIR:
			break;
		case S_IFLNK:
			skipped(w, clen, "symlink");
			continue;
		case S_IFCHR:
		case S_IFBLK:
			skipped(w, clen, "device");
			continue;
		case S_IFSOCK:
			skipped(w, clen, "socket");
			continue;
		case S_IFIFO:
			skipped(w, clen, "fifo");
			continue;
		default:
			skipped(w, clen, "special file");
			continue;
		}
		memset(e, 0, sizeof(*e));
		e->path = xstrndup(w->path, clen);
		e->path_len = (uint32_t)clen;
		e->type = S_ISDIR(st.st_mode) ? PS_FT_DIR : PS_FT_FILE;
		entry_from_stat(e, &st);
		if (e->type == PS_FT_DIR) {
			fd = openat(l->fd, n, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (fd == -1)
				unreadable(w, w->path, clen, "cannot open "
				    "directory", errno);
			else
				push_dir(w, fd, clen);
		}
		return 1;
	}
	return 0;
}

/*
 * A file modified or changed within the same timestamp tick as our stat
 * keeps its mtime and ctime, so a cache could not tell. As git does for
 * its index, distrust entries stamped too close to the walk: ino 0 in the
 * saved manifest means "never reuse".
 */
static void
racy(struct ps_walk *w, struct ps_entry *e)
{
	if (e->mtime_sec >= w->start.tv_sec - RACY_SECS ||
	    e->ctime_sec >= w->start.tv_sec - RACY_SECS)
		e->ino = 0;
}

/* Add entries to the window while there is room. */
static void
fill(struct ps_walk *w)
{
	struct item *it;
	struct job *j;
	uint64_t pending;

	while (!w->done && w->count < WINDOW) {
		pthread_mutex_lock(&w->mu);
		pending = w->pending;
		pthread_mutex_unlock(&w->mu);
		if (pending >= WINDOW_BYTES)
			break;
		it = &w->ring[(w->head + w->count) % WINDOW];
		if (!walk_step(w, &it->e)) {
			w->done = 1;
			break;
		}
		w->count++;
		it->failed = 0;
		it->state = IT_READY;
		if (it->e.type != PS_FT_FILE || from_cache(w, &it->e))
			continue;
		it->state = IT_HASHING;
		pthread_mutex_lock(&w->mu);
		w->pending += it->e.size;
		pthread_mutex_unlock(&w->mu);
		j = xmalloc(sizeof(*j));
		j->w = w;
		j->it = it;
		ps_pool_submit(w->pool, hash_job, j);
	}
}

const struct ps_entry *
ps_walk_next(struct ps_walk *w)
{
	struct item *it;

	for (;;) {
		if (w->out) {		/* the one handed out last */
			ps_entry_free(&w->ring[w->head].e);
			w->head = (w->head + 1) % WINDOW;
			w->count--;
			w->out = 0;
		}
		fill(w);
		if (w->count == 0)
			return NULL;
		it = &w->ring[w->head];
		pthread_mutex_lock(&w->mu);
		while (it->state == IT_HASHING)
			pthread_cond_wait(&w->cv, &w->mu);
		pthread_mutex_unlock(&w->mu);
		w->out = 1;
		if (it->state == IT_DROP) {
			if (it->failed) {
				strv_add(&w->by.unreadable,
				    &w->by.nunreadable, it->e.path,
				    it->e.path_len);
				w->errors++;
			}
			continue;
		}
		racy(w, &it->e);
		return &it->e;
	}
}

static int
nthreads(const struct ps_build_opts *o)
{
	long n = o != NULL ? o->threads : 0;

	if (n <= 0)
		n = ps_ncpu();
	return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

int
ps_walk_open(int dirfd, const struct ps_build_opts *o, struct ps_walk **out)
{
	struct ps_walk *w;
	int fd, rootfd;

	*out = NULL;
	rootfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	fd = rootfd == -1 ? -1 : fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd == -1) {
		ps_err("cannot duplicate a directory descriptor: %s",
		    strerror(errno));
		if (rootfd != -1)
			close(rootfd);
		return PS_EPARTIAL;
	}
	w = xcalloc(1, sizeof(*w));
	w->rootfd = rootfd;
	if (o != NULL) {
		w->label = o->label;
		w->checksum = o->checksum;
		w->cache = o->cache;
		w->cache_in = o->cache_in;
		w->sums = o->sums;
		w->sums_min = o->sums_min;
	}
	if (w->sums == 0)
		w->sums = PS_SUMS_STRONG;
	if (w->cache_in != NULL) {
		w->cache_head = ps_mfin_next(w->cache_in);
		if (!(ps_mfin_flags(w->cache_in) & PS_MF_LOCAL))
			w->cache_head = NULL;	/* not a cache: no identity */
	}
	clock_gettime(CLOCK_REALTIME, &w->start);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->pool = ps_pool_new(nthreads(o));
	w->by.flags = PS_MF_LOCAL;
	push_dir(w, fd, 0);
	*out = w;
	return PS_OK;
}

static int
strp_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;

	return ps_path_cmp(x, strlen(x), y, strlen(y));
}

int
ps_walk_close(struct ps_walk *w, struct ps_manifest *by)
{
	struct hasher *h;
	int rc;

	if (w == NULL)
		return PS_OK;
	/* Let hashing jobs of entries never taken finish first. */
	ps_pool_free(w->pool);
	if (w->out) {
		ps_entry_free(&w->ring[w->head].e);
		w->head = (w->head + 1) % WINDOW;
		w->count--;
	}
	while (w->count > 0) {
		ps_entry_free(&w->ring[w->head].e);
		w->head = (w->head + 1) % WINDOW;
		w->count--;
	}
	while (w->depth > 0)
		pop_dir(w);
	free(w->stack);
	while ((h = w->free) != NULL) {
		w->free = h->next;
		hasher_free(h);
	}
	rc = w->errors ? PS_EPARTIAL : PS_OK;
	if (w->by.nunreadable > 1)
		qsort(w->by.unreadable, w->by.nunreadable, sizeof(char *),
		    strp_cmp);
	if (by != NULL) {
		by->unreadable = w->by.unreadable;
		by->nunreadable = w->by.nunreadable;
		by->temps = w->by.temps;
		by->ntemps = w->by.ntemps;
	} else {
		ps_manifest_free(&w->by);
	}
	close(w->rootfd);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
	return rc;
}

/* ---- one file ---- */

int
ps_hash_fd(int fd, struct ps_entry *e)
{
	return ps_hash_fd_sums(fd, e, PS_SUMS_STRONG);
}

int
ps_hash_fd_sums(int fd, struct ps_entry *e, int sums)
{
	struct hasher *h;
	int r;

	e->block_shift = (uint8_t)ps_block_shift_for(e->size);
	e->nblocks = (e->size >> e->block_shift) +
	    ((e->size & (((uint64_t)1 << e->block_shift) - 1)) != 0);
	alloc_sums(e, sums);
	if (lseek(fd, 0, SEEK_SET) == -1)
		return -1;
	h = hasher_get(NULL);
	r = read_hash(h, fd, e, 0);
	hasher_put(NULL, h);
	if (r == 1)
		errno = ESTALE;	/* not the size it should be */
	return r == 0 ? 0 : -1;
}
