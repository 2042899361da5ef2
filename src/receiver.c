/*
 * receiver.c — the receiving side of a session (the server for a push).
 *
 * One thread reads frames and does the writing; signature requests go to
 * a pool of workers, since signing is the slow part (about 370 MB/s a
 * core). Every file is written to a hidden temporary in its own
 * directory, read back and checked against the XXH3-128 the sender
 * announced, fsync'd and renamed: a file under ROOT/DEST is always the old
 * version or the complete new one. Files that fail are reported one by
 * one in RESULT frames; only a broken stream ends the session.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "delta.h"
#include "manifest.h"
#include "pool.h"
#include "proto.h"
#include "receiver.h"

#define NBUCKET 1024
#define MAX_LIVE 8192		/* files a sender may have open at once */
#define MAX_PIECES 1024		/* delta pieces per file */
#define COMMIT_THREADS 8	/* files verified and fsync'd at once */

struct piece {
	uint32_t no;
	struct ps_patch *patch;
};

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
	struct ps_tmp tmp;
	int basis;		/* current version, or -1 */
	uint64_t basis_size;
	struct piece *pieces;
	size_t npieces;
	int code;		/* first failure, or PS_OK */
	char *msg;
	struct rfile *next;
};

struct recv {
	struct ps_wire *w;
	struct ps_root *root;
	const char *dest;
	uint32_t flags;
	struct ps_recv_stats *st;
	struct rfile *bucket[NBUCKET];
	unsigned live;
	struct ps_pool *pool;		/* signatures */
	struct ps_pool *cpool;		/* verify, fsync, rename */
	pthread_mutex_t mu;		/* st, upd */
	ZSTD_DCtx *zd;
	unsigned char *zbuf;
	struct ps_manifest cur;		/* what ROOT/DEST holds (cache) */
	struct ps_manifest upd;		/* files put in place this session */
	char **gone;			/* paths deleted this session */
	size_t ngone;
	char broken[256];		/* why the peer broke the protocol */
	int report;			/* only describing: no busy mark */
	char **dirs;			/* directories to fsync at DONE */
	size_t ndirs;
};

static void vsend(struct ps_wire *w, uint8_t type, int code, const char *fmt,
    va_list ap) __attribute__((format(printf, 4, 0)));

static void
vsend(struct ps_wire *w, uint8_t type, int code, const char *fmt, va_list ap)
{
	struct buf b = { 0 };
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (type == PS_MSG_ERROR)
		buf_add_u32(&b, (uint32_t)code);
	ps_buf_add_str(&b, msg, strlen(msg));
	(void)ps_wire_send(w, type, b.p, b.len);
	(void)ps_wire_flush(w);
	buf_free(&b);
}

void
ps_send_error(struct ps_wire *w, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsend(w, PS_MSG_ERROR, code, fmt, ap);
	va_end(ap);
}

void
ps_send_notice(struct ps_wire *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsend(w, PS_MSG_NOTICE, 0, fmt, ap);
	va_end(ap);
}

static int broken(struct recv *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The peer broke the protocol: remember why; the session ends. */
static int
broken(struct recv *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->broken, sizeof(r->broken), fmt, ap);
	va_end(ap);
	return PS_EPEER;
}

static char *
join(const char *dest, const char *path, size_t len)
{
	if (*dest == '\0')
		return xstrndup(path, len);
	return xasprintf("%s/%.*s", dest, (int)len, path);
}

/* A path from the peer: safe, and not inside ROOT/.patchsync. */
static const char *
rd_path(struct recv *r, struct ps_rd *rd, size_t *len)
{
	const char *p = ps_rd_str(rd, len, PS_PATH_MAX);

	if (p == NULL || !ps_path_ok(p, *len))
		return NULL;
	/* At ROOT itself, ROOT/.patchsync (lock, caches) is ours alone. */
	if (*r->dest == '\0' && *len >= sizeof(PS_META_DIR) - 1 &&
	    memcmp(p, PS_META_DIR, sizeof(PS_META_DIR) - 1) == 0 &&
	    (*len == sizeof(PS_META_DIR) - 1 ||
	    p[sizeof(PS_META_DIR) - 1] == '/'))
		return NULL;
	return p;
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
static struct rfile *
get(struct recv *r, uint32_t id, const char *path, size_t len)
{
	struct rfile **pp = slot(r, id), *f;

	if (*pp != NULL)
		return *pp;
	if (r->live >= MAX_LIVE)
		return NULL;
	f = xcalloc(1, sizeof(*f));
	f->id = id;
	f->path = xstrndup(path, len);
	f->rel = join(r->dest, path, len);
	f->basis = -1;
	f->tmp.fd = -1;
	f->tmp.dirfd = -1;
	*pp = f;
	r->live++;
	return f;
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
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f->code = code;
	f->msg = xstrdup(msg);
	ps_tmp_abort(&f->tmp);
}

static void
free_rfile(struct rfile *f)
{
	size_t i;

	for (i = 0; i < f->npieces; i++)
		if (f->pieces[i].patch != NULL)
			ps_patch_abort(f->pieces[i].patch);
	free(f->pieces);
	ps_tmp_abort(&f->tmp);
	if (f->basis >= 0)
		close(f->basis);
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

static void
drop(struct recv *r, struct rfile *f)
{
	unlink_rfile(r, f);
	free_rfile(f);
}

/* A failed file, directory or deletion (any thread). */
static void
count_error(struct recv *r, int code)
{
	pthread_mutex_lock(&r->mu);
	r->st->errors++;
	if (code > r->st->worst)
		r->st->worst = code;
	pthread_mutex_unlock(&r->mu);
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

/* ---- the cache of ROOT/DEST's manifest in ROOT/.patchsync/cache ---- */

static char *
cache_name(const char *dest)
{
	return xasprintf("%016" PRIx64 ".psm",
	    (uint64_t)XXH3_64bits(dest, strlen(dest)));
}

static void
cache_load(struct recv *r, struct ps_manifest *m)
{
	char err[128], *name;
	struct buf b = { 0 };
	unsigned char chunk[65536];
	ssize_t n;
	int dfd, fd;

	memset(m, 0, sizeof(*m));
	if (ps_dir_open_quiet(r->root, PS_META_DIR "/cache", &dfd) != PS_OK)
		return;
	name = cache_name(r->dest);
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	free(name);
	close(dfd);
	if (fd < 0)
		return;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)n);
	close(fd);
	if (n == 0 && ps_manifest_decode(b.p, b.len, m, err, sizeof(err)) != 0)
		ps_info(1, "ignoring damaged cache of %s: %s", r->dest, err);
	buf_free(&b);
}

static void
cache_save(struct recv *r, const struct ps_manifest *m)
{
	struct buf b = { 0 };
	char *name, *tmp;
	int dfd, fd;

	if (ps_dir_open(r->root, PS_META_DIR "/cache", 1, &dfd) != PS_OK)
		return;
	name = cache_name(r->dest);
	tmp = xasprintf("%s.%d", name, (int)getpid());
	ps_manifest_encode(m, 1, &b);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0644);
	if (fd >= 0 && write(fd, b.p, b.len) == (ssize_t)b.len &&
	    close(fd) == 0) {
		if (renameat(dfd, tmp, dfd, name) != 0)
			unlinkat(dfd, tmp, 0);
	} else {
		if (fd >= 0)
			close(fd);
		unlinkat(dfd, tmp, 0);
	}
	buf_free(&b);
	free(tmp);
	free(name);
	close(dfd);
}

/*
 * ROOT/.patchsync/busy-NAME exists while a push into DEST runs. Found at
 * the start of a push, it means the last one was interrupted: only then
 * is the tree walked for leftover temporaries.
 */
static char *
busy_name(const char *dest)
{
	return xasprintf("busy-%016" PRIx64,
	    (uint64_t)XXH3_64bits(dest, strlen(dest)));
}

static void
mark_busy(struct recv *r)
{
	char *name = busy_name(r->dest);
	int dfd, fd;

	if (ps_dir_open(r->root, PS_META_DIR, 1, &dfd) != PS_OK) {
		(void)ps_remove_temps(r->root, r->dest, NULL);
		free(name);
		return;
	}
	if (faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
	    errno != ENOENT)
		(void)ps_remove_temps(r->root, r->dest, NULL);
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0644);
	if (fd >= 0)
		close(fd);
	close(dfd);
	free(name);
}

static void
clear_busy(struct recv *r)
{
	char *name = busy_name(r->dest);
	int dfd;

	if (ps_dir_open_quiet(r->root, PS_META_DIR, &dfd) == PS_OK) {
		(void)unlinkat(dfd, name, 0);
		close(dfd);
	}
	free(name);
}

/* Build the manifest of ROOT/DEST (empty when it does not exist yet). */
static int
describe(struct recv *r, int create)
{
	struct ps_build_opts bo = { 0 };
	struct ps_manifest cache;
	int dfd, rc;

	memset(&r->cur, 0, sizeof(r->cur));
	r->cur.flags = PS_MF_LOCAL;
	if (create)
		rc = ps_dir_open(r->root, r->dest, 1, &dfd);
	else
		rc = ps_dir_open_quiet(r->root, r->dest, &dfd);
	if (rc != PS_OK)
		return create ? rc : PS_OK;	/* nothing there yet */
	if (create)
		mark_busy(r);
	cache_load(r, &cache);
	bo.cache = &cache;
	bo.checksum = (r->flags & PS_OF_CHECKSUM) != 0;
	rc = ps_manifest_buildat(dfd, &bo, &r->cur);
	ps_manifest_free(&cache);
	close(dfd);
	return rc;
}

int
ps_send_manifest(struct ps_wire *w, const struct ps_manifest *m)
{
	struct buf b = { 0 };
	unsigned char end[9];
	unsigned char *z;
	size_t zlen, off;
	int rc = PS_OK;

	ps_manifest_encode(m, 0, &b);
	/* Sorted paths share prefixes: about half the bytes go. */
	z = xmalloc(ZSTD_compressBound(b.len));
	zlen = ZSTD_compress(z, ZSTD_compressBound(b.len), b.p, b.len, 1);
	if (ZSTD_isError(zlen)) {
		ps_err("cannot compress a manifest: %s",
		    ZSTD_getErrorName(zlen));
		rc = PS_EPARTIAL;
		goto out;
	}
	for (off = 0; off < zlen && rc == PS_OK; off += PS_DATA_CHUNK) {
		size_t n = zlen - off < PS_DATA_CHUNK ? zlen - off :
		    PS_DATA_CHUNK;

		rc = ps_wire_send(w, PS_MSG_MFDATA, z + off, n);
	}
	end[0] = PS_CODEC_ZSTD;
	put_u64le(end + 1, b.len);
	if (rc == PS_OK)
		rc = ps_wire_send(w, PS_MSG_MFEND, end, sizeof(end));
	if (rc == PS_OK)
		rc = ps_wire_flush(w);
out:
	free(z);
	buf_free(&b);
	return rc;
}

/* ---- signature requests, answered by the pool ---- */

struct sigjob {
	struct ps_wire *w;
	uint32_t id;
	int fd;			/* a dup of the basis, owned by the job */
	uint32_t n;
	uint64_t *off, *len;
	uint32_t *block;
};

static void
sign(void *arg)
{
	struct sigjob *j = arg;
	struct buf sig = { 0 };
	unsigned char hdr[9];
	uint32_t i;
	size_t off, n;

	for (i = 0; i < j->n; i++) {
		sig.len = 0;
		if (ps_sig_region(j->fd, j->off[i], j->len[i], j->block[i],
		    &sig) != PS_OK)
			sig.len = 0;	/* an empty signature: all literal */
		put_u32le(hdr, j->id);
		put_u32le(hdr + 4, i);
		off = 0;
		do {
			n = sig.len - off;
			if (n > PS_FRAME_MAX - sizeof(hdr))
				n = PS_FRAME_MAX - sizeof(hdr);
			hdr[8] = off + n == sig.len;
			if (ps_wire_send2(j->w, PS_MSG_SIG, hdr, sizeof(hdr),
			    sig.p + off, n) != PS_OK)
				goto out;
			off += n;
		} while (off < sig.len);
	}
	(void)ps_wire_flush(j->w);
out:
	buf_free(&sig);
	close(j->fd);
	free(j->off);
	free(j->len);
	free(j->block);
	free(j);
}

static int
on_sigreq(struct recv *r, struct ps_rd *rd)
{
	uint32_t id = ps_rd_u32(rd), n, i;
	struct sigjob *j;
	struct rfile *f;
	const char *p;
	size_t len;

	if ((p = rd_path(r, rd, &len)) == NULL)
		return broken(r, "bad path in signature request");
	n = ps_rd_u32(rd);
	if (n == 0 || n > PS_MAX_REGIONS)
		return broken(r, "bad region count %" PRIu32, n);
	if ((f = get(r, id, p, len)) == NULL)
		return broken(r, "too many files in flight");
	j = xcalloc(1, sizeof(*j));
	j->w = r->w;
	j->id = id;
	j->n = n;
	j->off = xreallocarray(NULL, n, sizeof(*j->off));
	j->len = xreallocarray(NULL, n, sizeof(*j->len));
	j->block = xreallocarray(NULL, n, sizeof(*j->block));
	for (i = 0; i < n; i++) {
		j->off[i] = ps_rd_u64(rd);
		j->len[i] = ps_rd_u64(rd);
		j->block[i] = ps_rd_u32(rd);
		if (j->block[i] < 16 || j->block[i] > (1u << 24))
			rd->bad = 1;
	}
	if (ps_rd_done(rd) != 0) {
		free(j->off);
		free(j->len);
		free(j->block);
		free(j);
		return broken(r, "malformed signature request");
	}
	j->fd = -1;
	if (open_basis(r, f) == PS_OK)
		j->fd = fcntl(f->basis, F_DUPFD_CLOEXEC, 0);
	if (j->fd < 0) {
		/* No basis: empty signatures; the sender sends literals. */
		j->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	for (i = 0; i < n; i++) {
		/* Regions past the basis shrink; the job reads only these. */
		if (j->off[i] > f->basis_size)
			j->off[i] = f->basis_size;
		if (j->len[i] > f->basis_size - j->off[i])
			j->len[i] = f->basis_size - j->off[i];
	}
	ps_pool_submit(r->pool, sign, j);
	return PS_OK;
}

/* ---- files ---- */

static int
on_file(struct recv *r, struct ps_rd *rd)
{
	uint32_t id = ps_rd_u32(rd);
	const unsigned char *h;
	struct rfile *f;
	const char *p;
	size_t len;

	if ((p = rd_path(r, rd, &len)) == NULL)
		return broken(r, "bad path in file header");
	if ((f = get(r, id, p, len)) == NULL)
		return broken(r, "too many files in flight");
	if (f->have_meta || strlen(f->path) != len ||
	    memcmp(f->path, p, len) != 0)
		return broken(r, "file id %" PRIu32 " announced twice", id);
	f->size = ps_rd_u64(rd);
	f->mtime = ps_rd_i64(rd);
	f->nsec = ps_rd_u32(rd);
	f->mode = ps_rd_u32(rd);
	h = ps_rd_bytes(rd, 16);
	if (ps_rd_done(rd) != 0 || f->nsec >= 1000000000u)
		return broken(r, "malformed file header");
	memcpy(f->hash, h, 16);
	f->have_meta = 1;
	if (ps_tmp_create(r->root, f->rel, &f->tmp) != PS_OK) {
		fail_file(f, PS_EPARTIAL, "cannot create a temporary for %s",
		    f->path);
		return PS_OK;
	}
	if (ftruncate(f->tmp.fd, (off_t)f->size) != 0)
		fail_file(f, PS_EPARTIAL, "%s: %s", f->path,
		    errno == ENOSPC || errno == EDQUOT ?
		    "no space left on device" : strerror(errno));
	return PS_OK;
}

/* The file a DATA/COPY/DELTA/END frame names, ready to be written. */
static int
writable(struct recv *r, uint32_t id, uint64_t off, uint64_t len,
    struct rfile **fp)
{
	struct rfile *f = find(r, id);

	if (f == NULL || !f->have_meta)
		return broken(r, "data for unknown file id %" PRIu32, id);
	if (off > f->size || len > f->size - off)
		return broken(r, "data past the end of %s", f->path);
	*fp = f;
	return PS_OK;
}

static void
write_at(struct rfile *f, const void *p, size_t n, uint64_t off)
{
	ssize_t w;

	while (n > 0 && f->code == PS_OK) {
		w = pwrite(f->tmp.fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fail_file(f, PS_EPARTIAL, "writing %s: %s", f->path,
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
on_data(struct recv *r, struct ps_rd *rd)
{
	uint32_t id = ps_rd_u32(rd), raw;
	uint64_t off = ps_rd_u64(rd);
	uint8_t codec;
	const unsigned char *p;
	struct rfile *f;
	size_t n, got;
	int rc;

	raw = ps_rd_u32(rd);
	codec = ps_rd_u8(rd);
	n = rd->off <= rd->len ? rd->len - rd->off : 0;
	p = ps_rd_bytes(rd, n);
	if (rd->bad || raw > PS_FRAME_MAX || (codec != PS_CODEC_RAW &&
	    codec != PS_CODEC_ZSTD) || (codec == PS_CODEC_RAW && n != raw))
		return broken(r, "malformed data frame");
	if ((rc = writable(r, id, off, raw, &f)) != PS_OK)
		return rc;
	if (f->code != PS_OK)
		return PS_OK;
	if (codec == PS_CODEC_ZSTD) {
		got = ZSTD_decompressDCtx(r->zd, r->zbuf, PS_FRAME_MAX, p, n);
		if (ZSTD_isError(got) || got != raw) {
			fail_file(f, PS_EVERIFY, "corrupt compressed data for "
			    "%s", f->path);
			return PS_OK;
		}
		p = r->zbuf;
	}
	write_at(f, p, raw, off);
	return PS_OK;
}

static int
on_copy(struct recv *r, struct ps_rd *rd)
{
	uint32_t id = ps_rd_u32(rd);
	uint64_t off = ps_rd_u64(rd), len = ps_rd_u64(rd);
	uint64_t boff = ps_rd_u64(rd);
	struct rfile *f;
	int rc;

	if (ps_rd_done(rd) != 0)
		return broken(r, "malformed copy frame");
	if ((rc = writable(r, id, off, len, &f)) != PS_OK)
		return rc;
	if (f->code != PS_OK)
		return PS_OK;
	if (open_basis(r, f) != PS_OK) {
		fail_file(f, PS_EPARTIAL, "%s: the old version is gone",
		    f->path);
		return PS_OK;
	}
	if (boff > f->basis_size || len > f->basis_size - boff) {
		fail_file(f, PS_EPARTIAL, "%s changed on the server during "
		    "the push", f->path);
		return PS_OK;
	}
	if (ps_copy_range(f->basis, boff, f->tmp.fd, off, len) != PS_OK)
		fail_file(f, PS_EPARTIAL, "writing %s: %s", f->path,
		    errno == ENOSPC || errno == EDQUOT ?
		    "no space left on device" : strerror(errno));
	return PS_OK;
}

static int
on_delta(struct recv *r, struct ps_rd *rd)
{
	uint32_t id = ps_rd_u32(rd), no = ps_rd_u32(rd);
	uint64_t off = ps_rd_u64(rd), len = ps_rd_u64(rd);
	uint64_t boff = ps_rd_u64(rd), blen = ps_rd_u64(rd);
	uint8_t last = ps_rd_u8(rd);
	size_t n = rd->off <= rd->len ? rd->len - rd->off : 0, i;
	const unsigned char *p = ps_rd_bytes(rd, n);
	struct piece *pc = NULL;
	struct rfile *f;
	int rc;

	if (rd->bad)
		return broken(r, "malformed delta frame");
	if ((rc = writable(r, id, off, len, &f)) != PS_OK)
		return rc;
	if (f->code != PS_OK)
		return PS_OK;
	for (i = 0; i < f->npieces; i++)
		if (f->pieces[i].no == no)
			pc = &f->pieces[i];
	if (pc == NULL) {
		if (f->npieces >= MAX_PIECES)
			return broken(r, "too many delta pieces");
		if (open_basis(r, f) != PS_OK) {
			fail_file(f, PS_EPARTIAL, "%s: the old version is "
			    "gone", f->path);
			return PS_OK;
		}
		if (boff > f->basis_size)
			boff = f->basis_size;
		if (blen > f->basis_size - boff)
			blen = f->basis_size - boff;
		f->pieces = xreallocarray(f->pieces, f->npieces + 1,
		    sizeof(*f->pieces));
		pc = &f->pieces[f->npieces++];
		pc->no = no;
		pc->patch = ps_patch_begin(f->basis, boff, blen, f->tmp.fd,
		    off, len);
		if (pc->patch == NULL) {
			fail_file(f, PS_EPARTIAL, "%s: cannot start patching",
			    f->path);
			return PS_OK;
		}
	}
	if (pc->patch == NULL)
		return broken(r, "delta piece %" PRIu32 " of %s sent twice",
		    no, f->path);
	if (n > 0 && ps_patch_feed(pc->patch, p, n) != PS_OK) {
		fail_file(f, PS_EVERIFY, "%s: corrupt delta", f->path);
		return PS_OK;
	}
	if (last) {
		rc = ps_patch_end(pc->patch);
		pc->patch = NULL;
		if (rc != PS_OK)
			fail_file(f, rc == PS_EPARTIAL ? PS_EPARTIAL :
			    PS_EVERIFY, "%s: delta did not apply", f->path);
	}
	return PS_OK;
}

static void
send_result(struct recv *r, uint32_t id, int code, const char *msg)
{
	struct buf b = { 0 };

	buf_add_u32(&b, id);
	buf_add_u32(&b, (uint32_t)code);
	ps_buf_add_str(&b, msg, strlen(msg));
	(void)ps_wire_send(r->w, PS_MSG_RESULT, b.p, b.len);
	(void)ps_wire_flush(r->w);
	buf_free(&b);
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
static void
sync_dirs(struct recv *r)
{
	size_t i;
	int dfd;

	if (r->ndirs > 1)
		qsort(r->dirs, r->ndirs, sizeof(*r->dirs), str_cmp);
	for (i = 0; i < r->ndirs; i++) {
		if (i > 0 && strcmp(r->dirs[i], r->dirs[i - 1]) == 0)
			continue;
		if (ps_dir_open_quiet(r->root, r->dirs[i], &dfd) == PS_OK) {
			(void)fsync(dfd);
			close(dfd);
		}
	}
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
	if (f->code == PS_OK) {
		/* Verify what is really on disk, not what we meant to write. */
		e.path = f->path;
		e.path_len = (uint32_t)strlen(f->path);
		e.type = PS_FT_FILE;
		e.size = f->size;
		e.mode = f->mode & 07777;
		e.mtime_sec = f->mtime;
		e.mtime_nsec = f->nsec;
		if (ps_hash_fd(f->tmp.fd, &e) != 0)
			fail_file(f, PS_EPARTIAL, "reading back %s: %s",
			    f->path, strerror(errno));
		else if (memcmp(e.hash, f->hash, 16) != 0)
			fail_file(f, PS_EVERIFY, "received data for %s does "
			    "not match its hash; not replaced", f->path);
	}
	f->tmp.defer_dirsync = 1;
	if (f->code == PS_OK && ps_tmp_commit(&f->tmp, f->mode, f->mtime,
	    f->nsec) != PS_OK)
		fail_file(f, PS_EPARTIAL, "cannot put %s in place", f->path);
	if (f->code == PS_OK) {
		f->path = NULL;		/* now owned by the cache entry */
		pthread_mutex_lock(&r->mu);
		r->st->files++;
		note_dir(r, f->rel);
		note_placed(r, f, &e);
		pthread_mutex_unlock(&r->mu);
		send_result(r, f->id, PS_OK, "");
	} else {
		free(e.blocks);
		/* Told in RESULT; the sender may retry, so not in "worst". */
		count_error(r, PS_OK);
		send_result(r, f->id, f->code, f->msg);
	}
	free_rfile(f);
	free(c);
}

static int
on_end(struct recv *r, struct ps_rd *rd)
{
	uint32_t id = ps_rd_u32(rd);
	struct commit *c;
	struct rfile *f;
	size_t i;

	if (ps_rd_done(rd) != 0)
		return broken(r, "malformed end frame");
	if ((f = find(r, id)) == NULL || !f->have_meta)
		return broken(r, "end of unknown file id %" PRIu32, id);
	for (i = 0; i < f->npieces && f->code == PS_OK; i++)
		if (f->pieces[i].patch != NULL)
			fail_file(f, PS_EVERIFY, "%s: delta piece %" PRIu32
			    " incomplete", f->path, f->pieces[i].no);
	unlink_rfile(r, f);
	c = xmalloc(sizeof(*c));
	c->r = r;
	c->f = f;
	ps_pool_submit(r->cpool, commit, c);
	return PS_OK;
}

static int
on_mkdir(struct recv *r, struct ps_rd *rd)
{
	const char *p;
	size_t len;
	uint32_t mode;
	char *rel;

	if ((p = rd_path(r, rd, &len)) == NULL)
		return broken(r, "bad path in mkdir");
	mode = ps_rd_u32(rd);
	if (ps_rd_done(rd) != 0)
		return broken(r, "malformed mkdir frame");
	rel = join(r->dest, p, len);
	/*
	 * Writable by us until it is filled: its own mode comes with its
	 * time, after its contents (META), as rsync does.
	 */
	if (ps_mkdir(r->root, rel, mode | 0700) != PS_OK) {
		count_error(r, PS_EPARTIAL);
	}
	free(rel);
	return PS_OK;
}

static int
on_delete(struct recv *r, struct ps_rd *rd)
{
	const char *p;
	size_t len;
	uint8_t type;
	char *rel;
	int rc;

	if ((p = rd_path(r, rd, &len)) == NULL)
		return broken(r, "bad path in delete");
	type = ps_rd_u8(rd);
	if (ps_rd_done(rd) != 0 || (type != PS_FT_FILE && type != PS_FT_DIR))
		return broken(r, "malformed delete frame");
	rel = join(r->dest, p, len);
	rc = type == PS_FT_DIR ? ps_rmdir(r->root, rel) :
	    ps_unlink(r->root, rel);
	free(rel);
	if (rc != PS_OK) {
		count_error(r, PS_EPARTIAL);
		return PS_OK;
	}
	pthread_mutex_lock(&r->mu);
	r->st->deleted++;
	pthread_mutex_unlock(&r->mu);
	if (type == PS_FT_FILE) {
		r->gone = xreallocarray(r->gone, r->ngone + 1,
		    sizeof(*r->gone));
		r->gone[r->ngone++] = xstrndup(p, len);
	}
	return PS_OK;
}

static int
on_meta(struct recv *r, struct ps_rd *rd)
{
	const char *p;
	size_t len;
	uint8_t type;
	uint32_t mode, nsec;
	int64_t mtime;
	struct timespec ts[2];
	char *rel;
	int fd, rc = PS_OK;

	if ((p = rd_path(r, rd, &len)) == NULL)
		return broken(r, "bad path in meta");
	type = ps_rd_u8(rd);
	mode = ps_rd_u32(rd);
	mtime = ps_rd_i64(rd);
	nsec = ps_rd_u32(rd);
	if (ps_rd_done(rd) != 0 || nsec >= 1000000000u ||
	    (type != PS_FT_FILE && type != PS_FT_DIR))
		return broken(r, "malformed meta frame");
	rel = join(r->dest, p, len);
	if (type == PS_FT_DIR) {
		rc = ps_mkdir(r->root, rel, mode);
		if (rc == PS_OK)
			rc = ps_set_times(r->root, rel, mtime, nsec);
	} else if ((rc = ps_file_open(r->root, rel, &fd, NULL)) == PS_OK) {
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1].tv_sec = mtime;
		ts[1].tv_nsec = nsec;
		if (fchmod(fd, mode & 0777) != 0 || futimens(fd, ts) != 0) {
			char *e = ps_escape(rel, strlen(rel));

			ps_err("%s: %s", e, strerror(errno));
			free(e);
			rc = PS_EPARTIAL;
		}
		close(fd);
	}
	free(rel);
	if (rc != PS_OK) {
		count_error(r, PS_EPARTIAL);
	}
	return PS_OK;
}

/* Fold this session's changes into the cached manifest and save it. */
static void
update_cache(struct recv *r)
{
	struct ps_manifest *m = &r->cur;
	size_t i;

	for (i = 0; i < r->ngone; i++)
		ps_manifest_remove(m, r->gone[i], strlen(r->gone[i]));
	for (i = 0; i < r->upd.n; i++)
		ps_manifest_put(m, &r->upd.e[i]);	/* takes it over */
	r->upd.n = 0;
	if (!(r->flags & PS_OF_DRYRUN)) {
		cache_save(r, m);
		if (!r->report)
			clear_busy(r);
	}
}

static void
cleanup(struct recv *r)
{
	size_t i;

	ps_pool_free(r->pool);
	r->pool = NULL;
	ps_pool_free(r->cpool);
	r->cpool = NULL;
	for (i = 0; i < NBUCKET; i++)
		while (r->bucket[i] != NULL)
			drop(r, r->bucket[i]);
	for (i = 0; i < r->ngone; i++)
		free(r->gone[i]);
	free(r->gone);
	ps_manifest_free(&r->upd);
	ps_manifest_free(&r->cur);
	ZSTD_freeDCtx(r->zd);
	free(r->zbuf);
	for (i = 0; i < r->ndirs; i++)
		free(r->dirs[i]);
	free(r->dirs);
	pthread_mutex_destroy(&r->mu);
}

static int
send_doneack(struct recv *r)
{
	struct buf b = { 0 };
	int rc;

	buf_add_u32(&b, (uint32_t)r->st->worst);
	buf_add_u64(&b, r->st->files);
	buf_add_u64(&b, r->st->deleted);
	buf_add_u32(&b, r->st->errors);
	rc = ps_wire_send(r->w, PS_MSG_DONEACK, b.p, b.len);
	if (rc == PS_OK)
		rc = ps_wire_flush(r->w);
	buf_free(&b);
	return rc;
}

static int
dispatch(struct recv *r, uint8_t type, struct ps_rd *rd, int report_only)
{
	if (report_only && type != PS_MSG_DONE)
		return broken(r, "unexpected message %u in a report", type);
	switch (type) {
	case PS_MSG_SIGREQ:
		return on_sigreq(r, rd);
	case PS_MSG_FILE:
		return on_file(r, rd);
	case PS_MSG_DATA:
		return on_data(r, rd);
	case PS_MSG_COPY:
		return on_copy(r, rd);
	case PS_MSG_DELTA:
		return on_delta(r, rd);
	case PS_MSG_END:
		return on_end(r, rd);
	case PS_MSG_MKDIR:
		return on_mkdir(r, rd);
	case PS_MSG_DELETE:
		return on_delete(r, rd);
	case PS_MSG_META:
		return on_meta(r, rd);
	default:
		return broken(r, "unexpected message type %u", type);
	}
}

int
ps_receive(struct ps_wire *w, struct ps_root *root, const char *dest,
    uint32_t flags, int report_only, struct ps_recv_stats *st)
{
	struct recv r;
	struct buf msg = { 0 };
	struct ps_rd rd;
	uint8_t type;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(st, 0, sizeof(*st));
	r.w = w;
	r.root = root;
	r.dest = dest;
	r.flags = flags;
	r.report = report_only;
	r.st = st;
	pthread_mutex_init(&r.mu, NULL);
	rc = describe(&r, !report_only && !(flags & PS_OF_DRYRUN));
	if (rc != PS_OK && rc != PS_EPARTIAL) {
		ps_send_error(w, rc, "cannot read %s on the server",
		    *dest ? dest : ".");
		cleanup(&r);
		return rc;
	}
	if (rc == PS_EPARTIAL) {
		/* Unreadable files would look missing and be sent again. */
		ps_send_error(w, rc, "some files under %s cannot be read on "
		    "the server", *dest ? dest : ".");
		cleanup(&r);
		return rc;
	}
	if ((rc = ps_send_manifest(w, &r.cur)) != PS_OK)
		goto out;
	r.pool = ps_pool_new(ps_ncpu());
	r.cpool = ps_pool_new(COMMIT_THREADS);
	r.zd = ZSTD_createDCtx();
	r.zbuf = xmalloc(PS_FRAME_MAX);
	for (;;) {
		if ((rc = ps_wire_recv(w, &type, &msg)) != PS_OK)
			break;
		ps_rd_init(&rd, msg.p, msg.len);
		if (type == PS_MSG_DONE) {
			ps_pool_wait(r.pool);
			ps_pool_wait(r.cpool);
			sync_dirs(&r);
			update_cache(&r);
			rc = send_doneack(&r);
			break;
		}
		if (type == PS_MSG_NOTICE || type == PS_MSG_ERROR) {
			/* The sender's words (a pull from a server). */
			uint32_t code = type == PS_MSG_ERROR ?
			    ps_rd_u32(&rd) : 0;
			size_t len;
			const char *m = ps_rd_str(&rd, &len, 4096);

			if (ps_rd_done(&rd) != 0) {
				rc = broken(&r, "malformed message");
				break;
			}
			if (type == PS_MSG_NOTICE) {
				ps_warn("%.*s", (int)len, m);
				continue;
			}
			ps_err("%.*s", (int)len, m);
			rc = code >= PS_EUSAGE && code <= PS_EVERIFY ?
			    (int)code : PS_EPEER;
			break;
		}
		if ((rc = dispatch(&r, type, &rd, report_only)) != PS_OK)
			break;
	}
	if (rc != PS_OK && r.broken[0] != '\0') {
		ps_err("%s", r.broken);
		ps_send_error(w, PS_EPEER, "%s", r.broken);
	}
out:
	cleanup(&r);
	buf_free(&msg);
	return rc;
}
