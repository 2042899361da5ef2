/*
 * mfcache.c — manifest cache files written only where they change
 * (mfcache.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mfcache.h"

#define BATCH	(1u << 20)	/* encoded bytes compared or written at once */

struct ps_cachew {
	int dirfd;		/* the cache's directory, or -1 */
	char *name;		/* the cache's name there */
	char *tmpname;		/* the temporary's, once made there */
	int oldfd;		/* the file as it was, or -1 */
	off_t oldsize;
	int fd;			/* the new file, once the two differ */
	off_t off;		/* bytes produced so far */
	int err;		/* errno of the first failure, or 0 */
	int spilled;		/* the directory was full (errno), or 0 */
	struct ps_mfw w;
	struct buf b;		/* produced, not compared or written yet */
	unsigned char *cmp;
};

struct ps_cachew *
ps_cachew_open(int dirfd, const char *name, int oldfd, uint32_t flags,
    int how)
{
	struct ps_cachew *c = xcalloc(1, sizeof(*c));
	struct stat st;

	c->dirfd = dirfd;
	c->name = dirfd >= 0 ? xstrdup(name) : NULL;
	c->oldfd = oldfd;
	c->oldsize = oldfd >= 0 && fstat(oldfd, &st) == 0 &&
	    S_ISREG(st.st_mode) ? st.st_size : -1;
	if (c->oldsize < 0 && oldfd >= 0) {
		close(oldfd);
		c->oldfd = -1;
	}
	c->fd = -1;
	ps_mfw_begin(&c->w, flags, how, &c->b);
	return c;
}

/* Equal to the old file's N bytes at OFF? */
static int
same_as_old(struct ps_cachew *c, const unsigned char *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	if (c->oldfd < 0 || c->off + (off_t)n > c->oldsize)
		return 0;
	if (c->cmp == NULL)
		c->cmp = xmalloc(BATCH + (64u << 10));
	while (got < n) {
		size_t want = n - got > BATCH ? BATCH : n - got;

		r = pread(c->oldfd, c->cmp, want, c->off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || memcmp(c->cmp, p + got, (size_t)r) != 0)
			return 0;
		got += (size_t)r;
	}
	return 1;
}

/* An unlinked temporary in $TMPDIR. */
static int
anon_temp(void)
{
	const char *dir = getenv("TMPDIR");
	char *tmpl;
	int fd;

	if (dir == NULL || *dir != '/')
		dir = "/tmp";
#ifdef O_TMPFILE
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
#endif
	tmpl = xasprintf("%s/patchsync-mf.XXXXXX", dir);
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd >= 0)
		unlink(tmpl);
	free(tmpl);
	return fd;
}

/*
 * FROM's first N bytes into TO (new, written from its start). Returns 0,
 * or -1 (errno set).
 */
static int
copy_prefix(struct ps_cachew *c, int from, int to, off_t n)
{
	off_t in = 0;
	ssize_t r;

	while (in < n) {
		r = copy_file_range(from, &in, to, NULL, (size_t)(n - in), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
	}
	if (in == n)
		return 0;
	/* No copy_file_range here: through a buffer. */
	if (c->cmp == NULL)
		c->cmp = xmalloc(BATCH + (64u << 10));
	if (lseek(to, in, SEEK_SET) < 0)
		return -1;
	while (in < n) {
		size_t want = n - in > BATCH ? BATCH : (size_t)(n - in);

		r = pread(from, c->cmp, want, in);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			errno = EIO;	/* shorter than the N bytes it had */
		if (r <= 0 || ps_write_all(to, c->cmp, (size_t)r) != 0)
			return -1;
		in += r;
	}
	return 0;
}

static int
full(int e)
{
	return e == ENOSPC || e == EDQUOT;
}

/*
 * The cache's directory is full (or its owner over quota): the manifest
 * goes on in memory (else an unlinked temporary), from the N bytes FROM
 * holds so far, and the cache is not saved this time (the old one
 * stays). A console whose cache disk filled up pushed nothing at all.
 * Returns 0, or -1 (errno set).
 */
static int
spill(struct ps_cachew *c, int from)
{
	int fd, e = errno;

	fd = memfd_create("patchsync-manifest", MFD_CLOEXEC);
	if (fd < 0)
		fd = anon_temp();
	if (fd < 0 || copy_prefix(c, from, fd, c->off) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(c->fd);
	unlinkat(c->dirfd, c->tmpname, 0);
	free(c->tmpname);
	c->tmpname = NULL;
	c->fd = fd;
	c->spilled = e;
	return 0;
}

/* The two differ from here on: make the new file, with the old prefix. */
static void
diverge(struct ps_cachew *c)
{
	static unsigned seq;

	if (c->dirfd >= 0) {
		c->tmpname = xasprintf("%s.%ld.%u", c->name, (long)getpid(),
		    __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
		c->fd = openat(c->dirfd, c->tmpname, O_RDWR | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (c->fd < 0) {
			free(c->tmpname);
			c->tmpname = NULL;
		}
	}
	if (c->fd < 0)
		c->fd = anon_temp();
	if (c->fd < 0) {
		c->err = errno;
		return;
	}
	if (c->off > 0 && copy_prefix(c, c->oldfd, c->fd, c->off) != 0 &&
	    (!full(errno) || c->tmpname == NULL || spill(c, c->oldfd) != 0))
		c->err = errno;
}

/* Compare or write what B holds. */
static void
emit(struct ps_cachew *c)
{
	if (c->b.len == 0 || c->err != 0) {
		c->b.len = 0;
		return;
	}
	if (c->fd < 0 && same_as_old(c, c->b.p, c->b.len)) {
		c->off += (off_t)c->b.len;
		c->b.len = 0;
		return;
	}
	if (c->fd < 0)
		diverge(c);
	if (c->err == 0 && ps_write_all(c->fd, c->b.p, c->b.len) != 0 &&
	    (!full(errno) || c->tmpname == NULL || spill(c, c->fd) != 0 ||
	    ps_write_all(c->fd, c->b.p, c->b.len) != 0))
		c->err = errno;
	c->off += (off_t)c->b.len;
	c->b.len = 0;
}

void
ps_cachew_add(struct ps_cachew *c, const struct ps_entry *e)
{
	ps_mfw_add(&c->w, e);
	if (c->b.len >= BATCH)
		emit(c);
}

void
ps_cachew_add_raw(struct ps_cachew *c, const unsigned char *p, size_t n)
{
	ps_mfw_add_raw(&c->w, p, n);
	if (c->b.len >= BATCH)
		emit(c);
}

static void
cachew_free(struct ps_cachew *c)
{
	if (c->w.st != NULL)
		ps_mfw_end(&c->w);
	if (c->oldfd >= 0)
		close(c->oldfd);
	free(c->name);
	free(c->tmpname);
	free(c->cmp);
	buf_free(&c->b);
	free(c);
}

int
ps_cachew_commit(struct ps_cachew *c, const char *label)
{
	int fd;

	ps_mfw_end(&c->w);
	emit(c);
	if (c->fd < 0 && c->err == 0 && c->off == c->oldsize) {
		/* Not a byte changed: the old file stays. */
		fd = c->oldfd;
		c->oldfd = -1;
		cachew_free(c);
		return fd;
	}
	if (c->fd < 0 && c->err == 0)
		diverge(c);	/* the old file is longer, or there is none */
	if (c->err != 0) {
		if (label != NULL)
			ps_err("%s: cannot write its manifest: %s", label,
			    strerror(c->err));
		ps_cachew_abort(c);
		return -1;
	}
	if (c->spilled != 0 && label != NULL)
		ps_warn("%s: the scan's cache is not saved: %s", label,
		    strerror(c->spilled));
	if (c->tmpname != NULL &&
	    renameat(c->dirfd, c->tmpname, c->dirfd, c->name) != 0)
		/* Still usable through FD; the old cache stays. */
		unlinkat(c->dirfd, c->tmpname, 0);
	fd = c->fd;
	c->fd = -1;
	cachew_free(c);
	return fd;
}

void
ps_cachew_abort(struct ps_cachew *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	if (c->tmpname != NULL)
		unlinkat(c->dirfd, c->tmpname, 0);
	cachew_free(c);
}

#define DAY	(24 * 60 * 60)
#define PRUNE_STAMP	"pruned"	/* when the directory was last pruned */

void
ps_cache_used(int fd)
{
	struct stat st;

	if (fd >= 0 && fstat(fd, &st) == 0 &&
	    st.st_mtime < time(NULL) - DAY)
		(void)futimens(fd, NULL);
}

void
ps_cache_prune(int dirfd)
{
	const char *name, *dot;
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);
	size_t seen = 0, n;
	DIR *d;
	int fd, tmp;

	if (dirfd < 0)
		return;
	/* Once a day: a stamp says when (every session would read it all). */
	if (fstatat(dirfd, PRUNE_STAMP, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && st.st_mtime > now - DAY &&
	    st.st_mtime <= now)
		return;
	fd = openat(dirfd, PRUNE_STAMP, O_WRONLY | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd < 0)
		return;		/* not ours to tidy */
	(void)futimens(fd, NULL);
	close(fd);
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL && seen++ < PS_CACHE_PRUNE_MAX) {
		name = de->d_name;
		n = strlen(name);
		dot = strstr(name, ".psm");
		if (dot == NULL || dot == name)
			continue;
		tmp = dot[4] == '.';
		if (!tmp && dot + 4 != name + n)
			continue;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (st.st_mtime < now - (tmp ? DAY :
		    (time_t)PS_CACHE_KEEP_DAYS * DAY))
			(void)unlinkat(dirfd, name, 0);
	}
	closedir(d);
}
