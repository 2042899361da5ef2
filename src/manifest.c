/*
 * manifest.c — build, serialise, parse and compare manifests (SPEC
 * section 7). The binary format is documented in man/patchsync-manifest.5;
 * keep the two in step.
 *
 * Building is two passes: one thread walks the tree (readdir + fstatat,
 * cheap), then every core hashes files, each worker taking the next file
 * from an atomic counter. Hashing is XXH3, which runs at memory speed, so
 * the cost is in read(): one reusable buffer per worker, no mmap.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
/* Runtime AVX2/AVX-512 dispatch, exported by libxxhash: about 2x faster. */
#include <xxh_x86dispatch.h>
#define HASH64		XXH3_64bits_dispatch
#define HASH128		XXH3_128bits_dispatch
#define HASH128_UPDATE	XXH3_128bits_update_dispatch
#else
#include <xxhash.h>
#define HASH64		XXH3_64bits
#define HASH128		XXH3_128bits
#define HASH128_UPDATE	XXH3_128bits_update
#endif

#if defined(SYS_openat2) && defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define HAVE_OPENAT2 1
#endif
#endif

#include "manifest.h"

/* Format constants: see man/patchsync-manifest.5. */
#define MF_MAGIC	"PSYNCMF\n"
#define MF_MAGIC_LEN	8
#define MF_VERSION	1
#define MF_HEADER_LEN	24	/* magic, version, flags, entry count */
#define MF_TRAILER_LEN	16
/* Smallest entry: type, path_len, 1 path byte, mode, size, mtime. */
#define MF_ENTRY_MIN	(1 + 4 + 1 + 4 + 8 + 8 + 4)
#define MF_LOCAL_LEN	(8 + 8 + 8 + 4)

#define READ_BUF	(1u << 20)	/* per worker: the largest block */
/*
 * Bytes read per fill unless a block is bigger: small enough that the
 * data copied in is still in L2 when both hashes run over it.
 */
#ifndef READ_CHUNK
#define READ_CHUNK	(1u << 17)
#endif
#define MAX_THREADS	64
/*
 * A file whose mtime or ctime is this close to the start of the build
 * could change again within the same timestamp tick without either
 * moving; its cache identity is not trusted (see racy_check()).
 */
#define RACY_SECS	1

unsigned
ps_block_shift_for(uint64_t size)
{
	unsigned k, s;

	/* ceil(log2(sqrt(size))) == ceil(ceil(log2(size)) / 2) */
	if (size <= 1)
		return PS_BLOCK_SHIFT_MIN;
	k = 64 - (unsigned)__builtin_clzll(size - 1);
	s = (k + 1) / 2;
	if (s < PS_BLOCK_SHIFT_MIN)
		s = PS_BLOCK_SHIFT_MIN;
	if (s > PS_BLOCK_SHIFT_MAX)
		s = PS_BLOCK_SHIFT_MAX;
	return s;
}

static uint64_t
nblocks_for(uint64_t size, unsigned shift)
{
	/* Written so that it cannot overflow for any 64-bit size. */
	return (size >> shift) + ((size & ((UINT64_C(1) << shift) - 1)) != 0);
}

int
ps_path_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c;

	c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	if (alen == blen)
		return 0;
	return alen < blen ? -1 : 1;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct ps_entry *x = a, *y = b;

	return ps_path_cmp(x->path, x->path_len, y->path, y->path_len);
}

const struct ps_entry *
ps_manifest_find(const struct ps_manifest *m, const char *path, size_t len)
{
	size_t lo = 0, hi = m->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = ps_path_cmp(m->e[mid].path, m->e[mid].path_len, path, len);
		if (c == 0)
			return &m->e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int
ps_entry_same_content(const struct ps_entry *a, const struct ps_entry *b)
{
	return a->type == PS_FT_FILE && b->type == PS_FT_FILE &&
	    a->size == b->size && memcmp(a->hash, b->hash, 16) == 0;
}

static void
entry_free(struct ps_entry *e)
{
	free(e->path);
	free(e->blocks);
	e->path = NULL;
	e->blocks = NULL;
}

void
ps_manifest_free(struct ps_manifest *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		entry_free(&m->e[i]);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

static struct ps_entry *
manifest_add(struct ps_manifest *m)
{
	struct ps_entry *e;

	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->e = xreallocarray(m->e, m->cap, sizeof(*m->e));
	}
	e = &m->e[m->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

size_t
ps_manifest_diff(const struct ps_manifest *old, const struct ps_manifest *new,
    int extra, void (*cb)(enum ps_diff_state, const struct ps_entry *,
	const struct ps_entry *, void *), void *arg)
{
	size_t i = 0, j = 0, calls = 0;
	const struct ps_entry *o, *n;
	int c;

	/*
	 * A merge of the two sorted lists, looking at files only: a file
	 * facing a directory of the same name simply has no partner.
	 */
	for (;;) {
		while (i < old->n && old->e[i].type != PS_FT_FILE)
			i++;
		while (j < new->n && new->e[j].type != PS_FT_FILE)
			j++;
		if (i == old->n && j == new->n)
			break;
		o = i < old->n ? &old->e[i] : NULL;
		n = j < new->n ? &new->e[j] : NULL;
		if (o == NULL)
			c = 1;
		else if (n == NULL)
			c = -1;
		else
			c = ps_path_cmp(o->path, o->path_len, n->path,
			    n->path_len);
		if (c < 0) {
			cb(PS_D_MISSING, o, NULL, arg);
			calls++;
			i++;
		} else if (c > 0) {
			if (extra) {
				cb(PS_D_EXTRA, NULL, n, arg);
				calls++;
			}
			j++;
		} else {
			if (!ps_entry_same_content(o, n)) {
				cb(PS_D_OUTDATED, o, n, arg);
				calls++;
			}
			i++;
			j++;
		}
	}
	return calls;
}

/* ---- Encoding ---- */

void
ps_manifest_encode(const struct ps_manifest *m, int local, struct buf *out)
{
	size_t start = out->len, i, k, need;
	const struct ps_entry *e;
	XXH128_canonical_t c;
	uint32_t flags;

	local = local && (m->flags & PS_MF_LOCAL);
	flags = local ? PS_MF_LOCAL : 0;

	need = MF_HEADER_LEN + MF_TRAILER_LEN;
	for (i = 0; i < m->n; i++)
		need += MF_ENTRY_MIN + m->e[i].path_len + 17 +
		    m->e[i].nblocks * 8 + MF_LOCAL_LEN;
	buf_reserve(out, need);

	buf_add(out, MF_MAGIC, MF_MAGIC_LEN);
	buf_add_u32(out, MF_VERSION);
	buf_add_u32(out, flags);
	buf_add_u64(out, m->n);
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		buf_addc(out, e->type);
		buf_add_u32(out, e->path_len);
		buf_add(out, e->path, e->path_len);
		buf_add_u32(out, e->mode);
		buf_add_u64(out, e->type == PS_FT_FILE ? e->size : 0);
		buf_add_u64(out, (uint64_t)e->mtime_sec);
		buf_add_u32(out, e->mtime_nsec);
		if (e->type == PS_FT_FILE) {
			buf_add(out, e->hash, 16);
			buf_addc(out, e->block_shift);
			for (k = 0; k < e->nblocks; k++)
				buf_add_u64(out, e->blocks[k]);
		}
		if (local) {
			buf_add_u64(out, e->dev);
			buf_add_u64(out, e->ino);
			buf_add_u64(out, (uint64_t)e->ctime_sec);
			buf_add_u32(out, e->ctime_nsec);
		}
	}
	XXH128_canonicalFromHash(&c, HASH128(out->p + start, out->len - start));
	buf_add(out, c.digest, 16);
}

/* ---- Decoding: every field of untrusted input is checked. ---- */

struct cur {
	const unsigned char *p;
	size_t left;
};

static int
take(struct cur *c, void *dst, size_t n)
{
	if (c->left < n)
		return -1;
	memcpy(dst, c->p, n);
	c->p += n;
	c->left -= n;
	return 0;
}

static int
take_u8(struct cur *c, uint8_t *v)
{
	return take(c, v, 1);
}

static int
take_u32(struct cur *c, uint32_t *v)
{
	if (c->left < 4)
		return -1;
	*v = get_u32le(c->p);
	c->p += 4;
	c->left -= 4;
	return 0;
}

static int
take_u64(struct cur *c, uint64_t *v)
{
	if (c->left < 8)
		return -1;
	*v = get_u64le(c->p);
	c->p += 8;
	c->left -= 8;
	return 0;
}

static int
take_i64(struct cur *c, int64_t *v)
{
	uint64_t u;

	if (take_u64(c, &u) == -1)
		return -1;
	memcpy(v, &u, sizeof(*v));	/* two's complement, no UB */
	return 0;
}

static int
fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

#define TRUNC(i) fail(err, errlen, "entry %zu: truncated", (i))

/* Parse one entry at C into E (whose path and blocks E then owns). */
static int
decode_entry(struct cur *c, size_t i, int local, struct ps_entry *e,
    char *err, size_t errlen)
{
	uint32_t plen;
	uint64_t k;

	if (take_u8(c, &e->type) == -1 || take_u32(c, &plen) == -1)
		return TRUNC(i);
	if (e->type != PS_FT_FILE && e->type != PS_FT_DIR)
		return fail(err, errlen, "entry %zu: unknown type 0x%02x", i,
		    e->type);
	if (plen == 0 || plen > PS_PATH_MAX)
		return fail(err, errlen, "entry %zu: path length %u out of "
		    "range", i, plen);
	if (c->left < plen)
		return TRUNC(i);
	if (!ps_path_ok((const char *)c->p, plen))
		return fail(err, errlen, "entry %zu: unsafe path", i);
	e->path = xstrndup((const char *)c->p, plen);
	e->path_len = plen;
	c->p += plen;
	c->left -= plen;

	if (take_u32(c, &e->mode) == -1 || take_u64(c, &e->size) == -1 ||
	    take_i64(c, &e->mtime_sec) == -1 ||
	    take_u32(c, &e->mtime_nsec) == -1)
		return TRUNC(i);
	if (e->mode & ~(uint32_t)07777)
		return fail(err, errlen, "entry %zu: bad mode 0%o", i,
		    e->mode);
	if (e->mtime_nsec >= 1000000000)
		return fail(err, errlen, "entry %zu: bad mtime", i);

	if (e->type == PS_FT_DIR) {
		if (e->size != 0)
			return fail(err, errlen, "entry %zu: directory with "
			    "a size", i);
	} else {
		if (take(c, e->hash, 16) == -1 ||
		    take_u8(c, &e->block_shift) == -1)
			return TRUNC(i);
		if (e->block_shift != ps_block_shift_for(e->size))
			return fail(err, errlen, "entry %zu: block shift %u "
			    "wrong for size %llu", i, e->block_shift,
			    (unsigned long long)e->size);
		e->nblocks = nblocks_for(e->size, e->block_shift);
		/* Checked against the bytes present before allocating. */
		if (e->nblocks > c->left / 8)
			return TRUNC(i);
		if (e->nblocks > 0) {
			e->blocks = xreallocarray(NULL, e->nblocks, 8);
			for (k = 0; k < e->nblocks; k++)
				(void)take_u64(c, &e->blocks[k]);
		}
	}

	if (local) {
		if (take_u64(c, &e->dev) == -1 || take_u64(c, &e->ino) == -1 ||
		    take_i64(c, &e->ctime_sec) == -1 ||
		    take_u32(c, &e->ctime_nsec) == -1)
			return TRUNC(i);
		if (e->ctime_nsec >= 1000000000)
			return fail(err, errlen, "entry %zu: bad ctime", i);
	}
	return 0;
}

/*
 * No entry may lie below a file: "a" a file and "a/b" present describes
 * no tree. Every ancestor path sorts before its descendants, so M is
 * complete enough to look them up.
 */
static int
check_ancestors(const struct ps_manifest *m, char *err, size_t errlen)
{
	const struct ps_entry *e, *a;
	size_t i, k;

	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		for (k = 1; k < e->path_len; k++) {
			if (e->path[k] != '/')
				continue;
			a = ps_manifest_find(m, e->path, k);
			if (a != NULL && a->type != PS_FT_DIR)
				return fail(err, errlen, "entry %zu: below "
				    "a file", i);
		}
	}
	return 0;
}

int
ps_manifest_decode(const void *p, size_t len, struct ps_manifest *out,
    char *err, size_t errlen)
{
	const unsigned char *b = p;
	struct ps_manifest m = { 0 };
	XXH128_canonical_t c;
	struct cur cur;
	uint32_t version, flags;
	uint64_t count, i;
	size_t minent;

	memset(out, 0, sizeof(*out));
	if (len < MF_MAGIC_LEN || memcmp(b, MF_MAGIC, MF_MAGIC_LEN) != 0)
		return fail(err, errlen, "bad magic");
	if (len < MF_HEADER_LEN + MF_TRAILER_LEN)
		return fail(err, errlen, "truncated (%zu bytes)", len);
	/*
	 * The version is read before the checksum only to name it: a later
	 * version may checksum differently.
	 */
	version = get_u32le(b + 8);
	if (version != MF_VERSION)
		return fail(err, errlen, "unsupported version %u", version);
	XXH128_canonicalFromHash(&c, HASH128(b, len - MF_TRAILER_LEN));
	if (memcmp(c.digest, b + len - MF_TRAILER_LEN, 16) != 0)
		return fail(err, errlen, "checksum mismatch (corrupt or "
		    "truncated)");

	/* Intact as written; still parse as if hostile. */
	flags = get_u32le(b + 12);
	if (flags & ~(uint32_t)PS_MF_LOCAL)
		return fail(err, errlen, "unknown flags 0x%x", flags);
	count = get_u64le(b + 16);
	cur.p = b + MF_HEADER_LEN;
	cur.left = len - MF_HEADER_LEN - MF_TRAILER_LEN;
	minent = MF_ENTRY_MIN + ((flags & PS_MF_LOCAL) ? MF_LOCAL_LEN : 0);
	if (count > cur.left / minent)
		return fail(err, errlen, "entry count %llu too large for "
		    "%zu bytes", (unsigned long long)count, len);

	m.flags = flags;
	m.cap = count ? (size_t)count : 1;
	m.e = xcalloc(m.cap, sizeof(*m.e));
	for (i = 0; i < count; i++) {
		m.n++;	/* so that free() sees a partly filled entry */
		if (decode_entry(&cur, i, flags & PS_MF_LOCAL, &m.e[i], err,
		    errlen) == -1)
			goto bad;
		if (i > 0 && ps_path_cmp(m.e[i - 1].path, m.e[i - 1].path_len,
		    m.e[i].path, m.e[i].path_len) >= 0) {
			fail(err, errlen, "entry %llu: out of order or "
			    "duplicate", (unsigned long long)i);
			goto bad;
		}
	}
	if (cur.left != 0) {
		fail(err, errlen, "%zu bytes of trailing garbage", cur.left);
		goto bad;
	}
	if (check_ancestors(&m, err, errlen) == -1)
		goto bad;
	*out = m;
	return 0;
bad:
	ps_manifest_free(&m);
	return -1;
}

/* ---- Loading and saving ---- */

static int
read_all(int fd, struct buf *b)
{
	ssize_t n;

	for (;;) {
		buf_reserve(b, 65536);
		n = read(fd, b->p + b->len, b->cap - b->len);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b->len += (size_t)n;
	}
}

int
ps_manifest_load(const char *file, struct ps_manifest *out)
{
	struct buf b = { 0 };
	char err[160];
	const char *name;
	char *esc;
	int fd, isstdin, r = PS_OK, saved = 0;

	memset(out, 0, sizeof(*out));
	isstdin = strcmp(file, "-") == 0;
	if (isstdin) {
		fd = STDIN_FILENO;
		name = "standard input";
	} else {
		fd = open(file, O_RDONLY | O_CLOEXEC);
		name = file;
	}
	if (fd < 0 || read_all(fd, &b) == -1)
		saved = errno;
	esc = ps_escape(name, strlen(name));
	if (saved != 0) {
		ps_err("%s: %s", esc, strerror(saved));
		r = PS_EUSAGE;
	} else if (ps_manifest_decode(b.p, b.len, out, err, sizeof(err)) ==
	    -1) {
		ps_err("%s: not a valid manifest: %s", esc, err);
		r = PS_EUSAGE;
	}
	if (!isstdin && fd >= 0)
		close(fd);
	free(esc);
	buf_free(&b);
	return r;
}

static int
write_all(int fd, const unsigned char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Make a rename durable: best effort, a failure loses nothing yet. */
static void
sync_parent(const char *file)
{
	const char *slash = strrchr(file, '/');
	char *dir;
	int fd;

	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == file)
		dir = xstrdup("/");
	else
		dir = xstrndup(file, (size_t)(slash - file));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

static int
save_atomic(const char *file, const struct buf *b, const char *esc)
{
	char *tmp;
	mode_t um;
	int fd, saved;

	tmp = xasprintf("%s.tmpXXXXXX", file);
	fd = mkstemp(tmp);
	if (fd < 0) {
		ps_err("%s: cannot create temporary file: %s", esc,
		    strerror(errno));
		free(tmp);
		return PS_EUSAGE;
	}
	/* mkstemp makes 0600; give the file the mode open() would. */
	um = umask(0);
	umask(um);
	if (fchmod(fd, 0666 & ~um) == -1 || write_all(fd, b->p, b->len) == -1 ||
	    fsync(fd) == -1)
		goto bad;
	if (close(fd) == -1) {
		fd = -1;
		goto bad;
	}
	fd = -1;
	if (rename(tmp, file) == -1)
		goto bad;
	free(tmp);
	sync_parent(file);
	return PS_OK;
bad:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	ps_err("%s: %s", esc, strerror(saved));
	return PS_EUSAGE;
}

int
ps_manifest_save(const char *file, const struct ps_manifest *m, int local)
{
	struct buf b = { 0 };
	struct stat st;
	char *esc;
	int fd, r = PS_OK;

	ps_manifest_encode(m, local, &b);
	if (file == NULL || strcmp(file, "-") == 0) {
		if (write_all(STDOUT_FILENO, b.p, b.len) == -1) {
			ps_err("standard output: %s", strerror(errno));
			r = PS_EUSAGE;
		}
		buf_free(&b);
		return r;
	}
	esc = ps_escape(file, strlen(file));
	if (stat(file, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* /dev/null, a fifo: no temporary beside those. */
		fd = open(file, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write_all(fd, b.p, b.len) == -1) {
			ps_err("%s: %s", esc, strerror(errno));
			r = PS_EUSAGE;
		}
		if (fd >= 0 && close(fd) == -1 && r == PS_OK) {
			ps_err("%s: %s", esc, strerror(errno));
			r = PS_EUSAGE;
		}
	} else
		r = save_atomic(file, &b, esc);
	free(esc);
	buf_free(&b);
	return r;
}

/* ---- Building: the walk ---- */

struct walk {
	struct ps_manifest *m;
	char path[PS_PATH_MAX + 1];
	int errors;
};

static void
walk_err(const char *path, size_t len, const char *what, int errnum)
{
	char *esc = ps_escape(path, len);

	if (errnum != 0)
		ps_err("%s: %s: %s", esc, what, strerror(errnum));
	else
		ps_err("%s: %s", esc, what);
	free(esc);
}

static void
walk_skip(const char *path, size_t len, const char *what)
{
	char *esc = ps_escape(path, len);

	ps_warn("skipping %s: %s", what, esc);
	free(esc);
}

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
	if (S_ISREG(st->st_mode)) {
		e->block_shift = ps_block_shift_for(e->size);
		e->nblocks = nblocks_for(e->size, e->block_shift);
	}
}

static void walk_dir(struct walk *, int, size_t);

static void
walk_one(struct walk *w, int dfd, const char *name, size_t plen)
{
	struct ps_entry *e;
	struct stat st;
	int fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno != ENOENT) {	/* vanished: nothing to record */
			walk_err(w->path, plen, "stat", errno);
			w->errors++;
		}
		return;
	}
	switch (st.st_mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
		break;
	case S_IFLNK:
		walk_skip(w->path, plen, "symlink");
		return;
	case S_IFCHR:
	case S_IFBLK:
		walk_skip(w->path, plen, "device");
		return;
	case S_IFSOCK:
		walk_skip(w->path, plen, "socket");
		return;
	case S_IFIFO:
		walk_skip(w->path, plen, "fifo");
		return;
	default:
		walk_skip(w->path, plen, "special file");
		return;
	}
	e = manifest_add(w->m);
	e->path = xstrndup(w->path, plen);
	e->path_len = (uint32_t)plen;
	e->type = S_ISDIR(st.st_mode) ? PS_FT_DIR : PS_FT_FILE;
	entry_from_stat(e, &st);
	if (e->type != PS_FT_DIR)
		return;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1) {
		walk_err(w->path, plen, "cannot open directory", errno);
		w->errors++;
		return;
	}
	walk_dir(w, fd, plen);
}

/*
 * Walk the directory open at DFD (closed here) whose path is
 * w->path[0..plen).
 */
static void
walk_dir(struct walk *w, int dfd, size_t plen)
{
	struct dirent *de;
	size_t nlen, clen;
	DIR *d;

	d = fdopendir(dfd);
	if (d == NULL) {
		walk_err(w->path, plen, "cannot read directory", errno);
		w->errors++;
		close(dfd);
		return;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		/* patchsync's own state on a server: not part of the tree */
		if (plen == 0 && strcmp(de->d_name, ".patchsync") == 0 &&
		    (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN))
			continue;
		nlen = strlen(de->d_name);
		clen = plen == 0 ? nlen : plen + 1 + nlen;
		if (clen > PS_PATH_MAX) {
			walk_err(w->path, plen, "name inside is longer than "
			    "the path limit", 0);
			w->errors++;
			continue;
		}
		if (plen > 0)
			w->path[plen] = '/';
		memcpy(w->path + clen - nlen, de->d_name, nlen);
		w->path[clen] = '\0';
		walk_one(w, dirfd(d), de->d_name, clen);
	}
	if (errno != 0) {
		walk_err(w->path, plen, "cannot read directory", errno);
		w->errors++;
	}
	closedir(d);
}

/* ---- Building: hashing ---- */

struct hasher {
	int rootfd;
	struct ps_entry **work;
	size_t nwork;
	atomic_size_t next;
	atomic_int errors;
};

struct worker {
	struct hasher *h;
	unsigned char *buf;
	XXH3_state_t *st;
};

static int
open_below(int rootfd, const char *path)
{
	int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
#ifdef HAVE_OPENAT2
	/*
	 * Never leave the tree through a directory swapped for a symlink
	 * after the walk; O_NOFOLLOW covers only the last component.
	 */
	static atomic_int no_openat2;
	struct open_how how = { 0 };
	long fd;

	if (!atomic_load(&no_openat2)) {
		how.flags = (uint64_t)flags;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		    RESOLVE_NO_MAGICLINKS;
		fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
		if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
			return (int)fd;
		atomic_store(&no_openat2, 1);	/* old kernel or seccomp */
	}
#endif
	return openat(rootfd, path, flags);
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

static void
hash_err(const struct ps_entry *e, const char *what, int errnum)
{
	walk_err(e->path, e->path_len, what, errnum);
}

/*
 * Fill W->buf from FD, hashing whole blocks as they come. Returns 0 when
 * read, 1 when the file is not the size fstat said, -1 on error.
 */
static int
read_hash(struct worker *w, int fd, struct ps_entry *e)
{
	size_t fill, want, bs = (size_t)1 << e->block_shift, i, n;
	size_t chunk = bs > READ_CHUNK ? bs : READ_CHUNK;
	uint64_t off = 0;
	XXH128_hash_t h128;
	XXH128_canonical_t c;
	ssize_t r;
	int eof = 0, streaming = 0;

	while (!eof) {
		fill = 0;
		while (fill < chunk) {
			want = chunk - fill;
			r = read(fd, w->buf + fill, want);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				hash_err(e, "read", errno);
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
			h128 = HASH128(w->buf, fill);	/* whole file at once */
		} else {
			if (!streaming) {
				XXH3_128bits_reset(w->st);
				streaming = 1;
			}
			HASH128_UPDATE(w->st, w->buf, fill);
		}
		/* chunk is a multiple of bs: blocks never straddle fills. */
		for (i = 0; i < fill; i += bs) {
			n = fill - i < bs ? fill - i : bs;
			e->blocks[(off + i) >> e->block_shift] =
			    HASH64(w->buf + i, n);
		}
		off += fill;
	}
	if (off != e->size)
		return 1;	/* shrank */
	if (streaming)
		h128 = XXH3_128bits_digest(w->st);
	XXH128_canonicalFromHash(&c, h128);
	memcpy(e->hash, c.digest, 16);
	return 0;
}

/* Hash E once. Returns 0, 1 when it changed under us, -1 on error. */
static int
hash_once(struct worker *w, struct ps_entry *e)
{
	struct stat st, st2;
	int fd, r;

	fd = open_below(w->h->rootfd, e->path);
	if (fd == -1) {
		hash_err(e, "open", errno);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		hash_err(e, "stat", errno);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return 1;	/* replaced since the walk */
	}
	/* Describe the file as opened, whatever the walk saw. */
	entry_from_stat(e, &st);
	free(e->blocks);
	e->blocks = NULL;
	if (e->nblocks > 0)
		e->blocks = xreallocarray(NULL, e->nblocks, 8);
	if (e->size > READ_BUF)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	r = read_hash(w, fd, e);
	if (r == 0 && fstat(fd, &st2) == 0 && !same_stat(&st, &st2))
		r = 1;
	close(fd);
	return r;
}

static void
hash_file(struct worker *w, struct ps_entry *e)
{
	int r;

	r = hash_once(w, e);
	if (r == 1)
		r = hash_once(w, e);	/* once more, then give up */
	if (r == 1)
		hash_err(e, "file changed while being read", 0);
	if (r != 0) {
		e->type = 0;	/* dropped from the manifest afterwards */
		atomic_fetch_add(&w->h->errors, 1);
	}
}

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	size_t i;

	for (;;) {
		i = atomic_fetch_add(&w->h->next, 1);
		if (i >= w->h->nwork)
			break;
		hash_file(w, w->h->work[i]);
	}
	return NULL;
}

static int
size_desc(const void *a, const void *b)
{
	const struct ps_entry *x = *(struct ps_entry *const *)a;
	const struct ps_entry *y = *(struct ps_entry *const *)b;

	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return 0;
}

static void
worker_init(struct worker *w, struct hasher *h)
{
	w->h = h;
	/*
	 * Page-aligned: the kernel's copy into a buffer 16 bytes off a
	 * cache line (what malloc returns) was a third slower.
	 */
	w->buf = aligned_alloc(4096, READ_BUF);
	w->st = XXH3_createState();
	if (w->buf == NULL || w->st == NULL) {
		ps_err("out of memory");
		exit(PS_EPARTIAL);	/* as xmalloc() does */
	}
}

static void
worker_fini(struct worker *w)
{
	free(w->buf);
	XXH3_freeState(w->st);
}

/* Hash the files in WORK on NTHREADS threads, this one among them. */
static int
hash_all(int rootfd, struct ps_entry **work, size_t nwork, int nthreads)
{
	struct hasher h = { .rootfd = rootfd, .work = work, .nwork = nwork };
	struct worker ws[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	int started = 0, i;

	if (nwork == 0)
		return 0;
	/* Biggest first, so that no big file is left alone at the end. */
	qsort(work, nwork, sizeof(*work), size_desc);
	atomic_init(&h.next, 0);
	atomic_init(&h.errors, 0);
	if ((size_t)nthreads > nwork)
		nthreads = (int)nwork;
	for (i = 0; i < nthreads; i++)
		worker_init(&ws[i], &h);
	for (i = 1; i < nthreads; i++) {
		if (pthread_create(&tid[i], NULL, worker_run, &ws[i]) != 0)
			break;	/* fewer threads: still correct */
		started = i;
	}
	worker_run(&ws[0]);
	for (i = 1; i <= started; i++)
		pthread_join(tid[i], NULL);
	for (i = 0; i < nthreads; i++)
		worker_fini(&ws[i]);
	return atomic_load(&h.errors);
}

/* Take hash and blocks from the cache when the file is known unchanged. */
static int
from_cache(struct ps_entry *e, const struct ps_manifest *cache)
{
	const struct ps_entry *c;

	if (cache == NULL || !(cache->flags & PS_MF_LOCAL))
		return 0;
	c = ps_manifest_find(cache, e->path, e->path_len);
	if (c == NULL || c->type != PS_FT_FILE || c->ino == 0 ||
	    c->size != e->size || c->mtime_sec != e->mtime_sec ||
	    c->mtime_nsec != e->mtime_nsec || c->dev != e->dev ||
	    c->ino != e->ino || c->ctime_sec != e->ctime_sec ||
	    c->ctime_nsec != e->ctime_nsec ||
	    c->block_shift != e->block_shift || c->nblocks != e->nblocks)
		return 0;
	memcpy(e->hash, c->hash, 16);
	if (c->nblocks > 0) {
		e->blocks = xreallocarray(NULL, c->nblocks, 8);
		memcpy(e->blocks, c->blocks, c->nblocks * 8);
	}
	return 1;
}

/*
 * A file changed within the same timestamp tick as our stat keeps its
 * mtime and ctime, so the cache could not tell. As git does for its
 * index, distrust entries stamped too close to the build: ino 0 in the
 * saved manifest means "never reuse".
 */
static void
racy_check(struct ps_entry *e, const struct timespec *start)
{
	if (e->mtime_sec >= start->tv_sec - RACY_SECS ||
	    e->ctime_sec >= start->tv_sec - RACY_SECS)
		e->ino = 0;
}

static int
nthreads_for(const struct ps_build_opts *opts)
{
	long n = opts != NULL ? opts->threads : 0;

	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

/* Drop the entries hashing gave up on (type 0). */
static void
compact(struct ps_manifest *m)
{
	size_t i, k = 0;

	for (i = 0; i < m->n; i++) {
		if (m->e[i].type == 0)
			entry_free(&m->e[i]);
		else
			m->e[k++] = m->e[i];
	}
	m->n = k;
}

int
ps_manifest_build(const char *dir, const struct ps_build_opts *opts,
    struct ps_manifest *out)
{
	char *esc;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	out->flags = PS_MF_LOCAL;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		esc = ps_escape(dir, strlen(dir));
		ps_err("%s: %s", esc, strerror(errno));
		free(esc);
		return PS_EUSAGE;
	}
	rc = ps_manifest_buildat(fd, opts, out);
	close(fd);
	return rc;
}

int
ps_manifest_buildat(int dirfd, const struct ps_build_opts *opts,
    struct ps_manifest *out)
{
	const struct ps_manifest *cache = opts ? opts->cache : NULL;
	struct walk *w;
	struct ps_entry **work;
	struct timespec start;
	size_t i, nwork = 0;
	int rootfd, walkfd, errors;

	memset(out, 0, sizeof(*out));
	out->flags = PS_MF_LOCAL;
	clock_gettime(CLOCK_REALTIME, &start);
	/* The walk's fd is closed by closedir(); the workers need one too. */
	rootfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	walkfd = rootfd == -1 ? -1 : fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (walkfd == -1) {
		ps_err("cannot duplicate a directory descriptor: %s",
		    strerror(errno));
		if (rootfd != -1)
			close(rootfd);
		return PS_EPARTIAL;
	}
	w = xcalloc(1, sizeof(*w));
	w->m = out;
	walk_dir(w, walkfd, 0);
	errors = w->errors;
	free(w);

	if (out->n > 1)
		qsort(out->e, out->n, sizeof(*out->e), entry_cmp);
	work = xreallocarray(NULL, out->n ? out->n : 1, sizeof(*work));
	for (i = 0; i < out->n; i++) {
		if (out->e[i].type != PS_FT_FILE)
			continue;
		if ((opts == NULL || !opts->checksum) &&
		    from_cache(&out->e[i], cache))
			continue;
		work[nwork++] = &out->e[i];
	}
	errors += hash_all(rootfd, work, nwork, nthreads_for(opts));
	free(work);
	close(rootfd);
	compact(out);
	for (i = 0; i < out->n; i++)
		racy_check(&out->e[i], &start);
	return errors ? PS_EPARTIAL : PS_OK;
}

int
ps_hash_fd(int fd, struct ps_entry *e)
{
	struct hasher h;
	struct worker w;
	int r;

	memset(&h, 0, sizeof(h));
	h.rootfd = -1;
	e->block_shift = (uint8_t)ps_block_shift_for(e->size);
	e->nblocks = (e->size + ((uint64_t)1 << e->block_shift) - 1) >>
	    e->block_shift;
	free(e->blocks);
	e->blocks = e->nblocks > 0 ? xreallocarray(NULL, e->nblocks, 8) :
	    NULL;
	if (lseek(fd, 0, SEEK_SET) == -1)
		return -1;
	worker_init(&w, &h);
	r = read_hash(&w, fd, e);
	worker_fini(&w);
	if (r == 1)
		errno = ESTALE;	/* not the size it should be */
	return r == 0 ? 0 : -1;
}

void
ps_manifest_remove(struct ps_manifest *m, const char *path, size_t len)
{
	const struct ps_entry *f = ps_manifest_find(m, path, len);
	size_t i;

	if (f == NULL)
		return;
	i = (size_t)(f - m->e);
	entry_free(&m->e[i]);
	memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(*m->e));
	m->n--;
}

void
ps_manifest_put(struct ps_manifest *m, struct ps_entry *e)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = ps_path_cmp(m->e[mid].path, m->e[mid].path_len,
		    e->path, e->path_len);

		if (c == 0) {
			entry_free(&m->e[mid]);
			m->e[mid] = *e;
			memset(e, 0, sizeof(*e));
			return;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->e = xreallocarray(m->e, m->cap, sizeof(*m->e));
	}
	memmove(&m->e[lo + 1], &m->e[lo], (m->n - lo) * sizeof(*m->e));
	m->e[lo] = *e;
	m->n++;
	memset(e, 0, sizeof(*e));
}
