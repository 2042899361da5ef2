/*
 * fsops.c — safe file operations below a server ROOT.
 *
 * The rule, learnt from rsync's symlink CVEs: below ROOT, never hand a
 * path with a '/' to the kernel. Walk it one component at a time with
 * openat(O_NOFOLLOW|O_DIRECTORY) from the ROOT fd, and act on the last
 * component with an *at() call relative to its parent's fd, in ways that
 * never follow a symlink there either (O_NOFOLLOW, O_EXCL, renameat,
 * unlinkat, AT_SYMLINK_NOFOLLOW).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(SYS_openat2) && defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define HAVE_OPENAT2 1
#endif
#endif

#include "ps.h"
#include "fsops.h"

#define DIR_MODE	0755
#define LOCK_NAME	"lock"
#define TMP_RANDOM	6

/*
 * Report that WHAT failed on the first LEN bytes of REL with ERR, in one
 * line; ENOSPC and EDQUOT get their own wording. Leaves errno at ERR and
 * returns PS_EPARTIAL.
 */
static int
fail(const char *rel, size_t len, const char *what, int err)
{
	char *esc = ps_escape(rel, len);

	if (err == ENOSPC || err == EDQUOT)
		ps_err("no space left on device writing %s", esc);
	else
		ps_err("%s: %s: %s", len > 0 ? esc : ".", what, strerror(err));
	free(esc);
	errno = err;
	return PS_EPARTIAL;
}

/* The same for a whole NUL-terminated REL (NULL for ROOT). */
static int
fail_rel(const char *rel, const char *what, int err)
{
	return fail(rel != NULL ? rel : "", rel != NULL ? strlen(rel) : 0,
	    what, err);
}

/* A refused symlink at the first LEN bytes of REL. */
static int
fail_symlink(const char *rel, size_t len)
{
	char *esc = ps_escape(rel, len);

	ps_err("refusing to follow symlink: %s", esc);
	free(esc);
	errno = ELOOP;
	return PS_EPARTIAL;
}

/* Refuse an unsafe REL (defense in depth: callers check first). */
static int
check_rel(const char *rel)
{
	char *esc;

	if (rel != NULL && ps_path_ok(rel, strlen(rel)))
		return PS_OK;
	esc = ps_escape(rel != NULL ? rel : "", rel != NULL ? strlen(rel) : 0);
	ps_err("refusing unsafe path '%s'", esc);
	free(esc);
	errno = EINVAL;
	return PS_EUSAGE;
}

static void
close_keep_errno(int fd)
{
	int saved = errno;

	if (fd >= 0)
		close(fd);
	errno = saved;
}

int
ps_path_is_meta(const char *rel)
{
	size_t n = sizeof(PS_META_DIR) - 1;

	return rel != NULL && strncmp(rel, PS_META_DIR, n) == 0 &&
	    (rel[n] == '\0' || rel[n] == '/');
}

/* ---- ROOT ---- */

char *
ps_parent_of(const char *path)
{
	char *p = xstrdup(path), *slash;

	while (strlen(p) > 1 && p[strlen(p) - 1] == '/')
		p[strlen(p) - 1] = '\0';
	slash = strrchr(p, '/');
	if (slash == NULL) {
		free(p);
		return xstrdup(".");
	}
	if (slash == p)
		slash[1] = '\0';	/* "/x": the parent is "/" */
	else
		*slash = '\0';
	return p;
}

char *
ps_dir_resolve(const char *path)
{
	char *r, *parent, *out;
	const char *base, *slash;
	size_t n, len;

	if ((r = realpath(path, NULL)) != NULL || errno != ENOENT)
		return r;
	/* Not there yet: its parent resolved, and its own name. */
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	slash = memrchr(path, '/', n);
	base = slash != NULL ? slash + 1 : path;
	n -= (size_t)(base - path);
	if (n == 0 || (n == 1 && base[0] == '.') ||
	    (n == 2 && base[0] == '.' && base[1] == '.'))
		return NULL;
	parent = ps_parent_of(path);
	r = realpath(parent, NULL);
	free(parent);
	if (r == NULL)
		return NULL;
	len = strlen(r) + 1 + n + 1;
	out = xmalloc(len);
	snprintf(out, len, "%s/%.*s", strcmp(r, "/") == 0 ? "" : r, (int)n,
	    base);
	free(r);
	return out;
}

/* A mountinfo field, its octal escapes (\040 for a blank) undone. */
static char *
mount_field(const char *p, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\\' && i + 3 < n &&
		    p[i + 1] >= '0' && p[i + 1] <= '3' &&
		    p[i + 2] >= '0' && p[i + 2] <= '7' &&
		    p[i + 3] >= '0' && p[i + 3] <= '7') {
			*o++ = (char)((p[i + 1] - '0') * 64 +
			    (p[i + 2] - '0') * 8 + (p[i + 3] - '0'));
			i += 3;
		} else {
			*o++ = p[i];
		}
	}
	*o = '\0';
	return out;
}

/* Does mount point MP hold PATH? Its length when it does, else 0. */
static size_t
mount_holds(const char *mp, const char *path)
{
	size_t n = strlen(mp);

	if (strcmp(mp, "/") == 0)
		return 1;
	if (strncmp(mp, path, n) != 0 || (path[n] != '\0' && path[n] != '/'))
		return 0;
	return n;
}

char *
ps_dir_place(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *f3[3], *best = NULL, *mp;
	const char *p, *q, *rest, *root;
	size_t cap = 0, len, bestlen = 0, k;
	ssize_t got;
	int i;

	if (f == NULL || *path != '/') {
		if (f != NULL)
			fclose(f);
		return NULL;
	}
	/* ID PARENT MAJOR:MINOR ROOT MOUNT-POINT ...; the last wins. */
	while ((got = getline(&line, &cap, f)) > 0) {
		p = line;
		for (i = 0; i < 2 && (p = strchr(p, ' ')) != NULL; i++)
			p++;
		for (i = 0; i < 3 && p != NULL; i++) {
			q = strpbrk(p, " \n");
			if (q == NULL) {
				p = NULL;
				break;
			}
			f3[i] = mount_field(p, (size_t)(q - p));
			p = q + 1;
		}
		if (p == NULL) {
			while (--i >= 0)
				free(f3[i]);
			continue;
		}
		mp = f3[2];
		if ((len = mount_holds(mp, path)) > 0 && len >= bestlen) {
			/* "" or "/..." below the mount point, under ROOT. */
			rest = path + (strcmp(mp, "/") == 0 ? 0 : len);
			root = strcmp(f3[1], "/") == 0 ? "" : f3[1];
			k = strlen(f3[0]) + strlen(root) + strlen(rest) + 3;
			free(best);
			best = xmalloc(k);
			snprintf(best, k, "%s:%s%s", f3[0], root,
			    *root == '\0' && *rest == '\0' ? "/" : rest);
			bestlen = len;
		}
		for (i = 0; i < 3; i++)
			free(f3[i]);
	}
	free(line);
	fclose(f);
	return best;
}

int
ps_place_nested(const char *a, const char *b)
{
	const char *pa = strchr(a, '/'), *pb = strchr(b, '/');

	if (pa == NULL || pb == NULL || pa - a != pb - b ||
	    memcmp(a, b, (size_t)(pa - a)) != 0)
		return 0;
	return ps_path_nested(pa, pb);
}

int
ps_path_nested(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n;

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	if (la == 1 && a[0] == '/')
		return 1;	/* "/" holds everything */
	if (lb == 1 && b[0] == '/')
		return 1;
	n = la < lb ? la : lb;
	if (memcmp(a, b, n) != 0)
		return 0;
	return la == lb || (la < lb ? b[la] : a[lb]) == '/';
}

int
ps_root_open(const char *path, int create, struct ps_root *r)
{
	char *esc, *parent;
	int err;

	r->fd = -1;
	r->path = NULL;
	r->lockfd = -1;
	r->lock_excl = 0;
	if (path == NULL || *path == '\0') {
		ps_err("server root: empty path");
		return PS_EUSAGE;
	}
	/*
	 * Only the last component is made, as rsync does: a share that is
	 * not mounted, or a typo, must not get a copy on the wrong disk.
	 */
	if (create == PS_ROOT_PROBE && access(path, F_OK) == -1 &&
	    errno == ENOENT) {
		parent = ps_parent_of(path);
		if (access(parent, F_OK) == 0) {
			free(parent);
			return PS_OK;	/* would be made: R->fd stays -1 */
		}
		free(parent);
	}
	if (create == PS_ROOT_CREATE && mkdir(path, DIR_MODE) == -1 &&
	    errno == ENOENT) {
		parent = ps_parent_of(path);
		esc = ps_escape(parent, strlen(parent));
		ps_err("%s: no such directory (the parent of the destination; "
		    "is the share mounted?)", esc);
		free(esc);
		free(parent);
		errno = ENOENT;
		return PS_EPEER;
	}
	r->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->fd >= 0) {
		r->path = xstrdup(path);
		return PS_OK;
	}
	err = errno;
	esc = ps_escape(path, strlen(path));
	if (err == ENOENT)
		ps_err("%s: no such directory", esc);
	else if (err == ENOTDIR)
		ps_err("%s: not a directory", esc);
	else
		ps_err("%s: cannot open: %s", esc, strerror(err));
	free(esc);
	errno = err;
	return err == ENOENT || err == ENOTDIR ? PS_EPEER : PS_EPARTIAL;
}

void
ps_root_close(struct ps_root *r)
{
	ps_root_unlock(r);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	free(r->path);
	r->path = NULL;
}

/* ---- directories ---- */

/*
 * Open the first LEN bytes of REL (already checked) as a directory below
 * ROOT into *OUT. With QUIET_MISSING, a missing component returns
 * PS_EPARTIAL with errno ENOENT and no message.
 */
static int
walk(struct ps_root *r, const char *rel, size_t len, int create,
    int quiet_missing, int *out)
{
	char comp[NAME_MAX + 1];
	size_t start = 0, end;
	int fd, next, err;

	*out = -1;
	fd = openat(r->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return fail_rel(NULL, "cannot open server root", errno);
	while (start < len) {
		for (end = start; end < len && rel[end] != '/'; end++)
			continue;
		if (end - start > NAME_MAX) {
			close(fd);
			return fail(rel, end, "cannot open", ENAMETOOLONG);
		}
		memcpy(comp, rel + start, end - start);
		comp[end - start] = '\0';
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (next == -1 && errno == ENOENT && create) {
			/* EEXIST: someone else made it; open checks what. */
			if (mkdirat(fd, comp, DIR_MODE) == -1 &&
			    errno != EEXIST) {
				err = errno;
				close(fd);
				return fail(rel, end,
				    "cannot create directory", err);
			}
			next = openat(fd, comp, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
		}
		if (next == -1) {
			struct stat st;

			err = errno;
			if ((err == ELOOP || err == ENOTDIR) &&
			    fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode)) {
				close(fd);
				return fail_symlink(rel, end);
			}
			close(fd);
			if (err == ENOENT && quiet_missing) {
				errno = err;
				return PS_EPARTIAL;
			}
			return fail(rel, end, "cannot open directory", err);
		}
		close(fd);
		fd = next;
		start = end + 1;
	}
	*out = fd;
	return PS_OK;
}

int
ps_dir_open(struct ps_root *r, const char *rel, int create, int *dirfd)
{
	int rc;

	*dirfd = -1;
	if (rel == NULL || *rel == '\0')
		return walk(r, "", 0, 0, 0, dirfd);
	if ((rc = check_rel(rel)) != PS_OK)
		return rc;
	return walk(r, rel, strlen(rel), create, 0, dirfd);
}

/*
 * Check REL and open its parent directory into *DIRFD; *BASE points at
 * REL's last component.
 */
static int
open_parent(struct ps_root *r, const char *rel, int create,
    int quiet_missing, int *dirfd, const char **base)
{
	const char *slash;
	int rc;

	*dirfd = -1;
	if ((rc = check_rel(rel)) != PS_OK)
		return rc;
	slash = strrchr(rel, '/');
	*base = slash != NULL ? slash + 1 : rel;
	if (strlen(*base) > NAME_MAX)
		return fail_rel(rel, "cannot open", ENAMETOOLONG);
	return walk(r, rel, slash != NULL ? (size_t)(slash - rel) : 0, create,
	    quiet_missing, dirfd);
}

/* ps_file_open; with QUIET_MISSING, missing is silent (errno ENOENT). */
static int
file_open(struct ps_root *r, const char *rel, int quiet_missing, int *fd,
    struct stat *st)
{
	struct stat sb;
	int rc;

	*fd = -1;
	if (quiet_missing && r->fd < 0) {	/* ROOT not there (yet) */
		errno = ENOENT;
		return PS_EPARTIAL;
	}
	if ((rc = check_rel(rel)) != PS_OK)
		return rc;
	if (ps_open_beneath(r->fd, rel, fd, &sb) == 0) {
		if (st != NULL)
			*st = sb;
		return PS_OK;
	}
	if ((errno == ENOENT || errno == ENOTDIR) && quiet_missing) {
		errno = ENOENT;
		return PS_EPARTIAL;
	}
	if (errno == ELOOP)
		return fail_symlink(rel, strlen(rel));
	if (errno == EISDIR || errno == EINVAL)
		return fail_rel(rel, "not a regular file", errno);
	return fail_rel(rel, "cannot open", errno);
}

int
ps_file_open(struct ps_root *r, const char *rel, int *fd, struct stat *st)
{
	return file_open(r, rel, 0, fd, st);
}

/* Why a mode was not kept, not yet told (ps_mode_unkept), or 0. */
static atomic_int unkept;

int
ps_set_mode(int fd, uint32_t mode, const char *rel)
{
	struct stat st;
	int err;

	if (fchmod(fd, mode & 0777) == 0)
		return PS_OK;
	err = errno;
	/*
	 * A filesystem without permission bits (FAT, a CIFS share without
	 * Unix extensions) refuses every mode, also to the owner of what we
	 * just made: the file goes without one.
	 */
	if (err == ENOSYS || err == EOPNOTSUPP || err == ENOTSUP ||
	    (err == EPERM && fstat(fd, &st) == 0 && st.st_uid == geteuid())) {
		atomic_store(&unkept, err);
		return PS_OK;
	}
	return fail_rel(rel, "cannot change mode", err);
}

int
ps_mode_unkept(void)
{
	return atomic_exchange(&unkept, 0);
}

int
ps_mkdir(struct ps_root *r, const char *rel, uint32_t mode)
{
	const char *base;
	int dfd, fd, rc, err;

	if ((rc = open_parent(r, rel, 1, 0, &dfd, &base)) != PS_OK)
		return rc;
	if (mkdirat(dfd, base, DIR_MODE) == -1 && errno != EEXIST) {
		err = errno;
		close(dfd);
		return fail_rel(rel, "cannot create directory", err);
	}
	/* Whatever is there now must be a real directory. */
	fd = openat(dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	err = errno;
	if (fd == -1) {
		struct stat st;

		if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode)) {
			close(dfd);
			return fail_symlink(rel, strlen(rel));
		}
		close(dfd);
		return fail_rel(rel, "cannot open directory", err);
	}
	close(dfd);
	rc = ps_set_mode(fd, mode, rel);
	close(fd);
	return rc;
}

/* unlinkat REL with FLAGS; gone already is fine. */
static int
remove_at(struct ps_root *r, const char *rel, int flags)
{
	const char *base;
	int dfd, rc, err;

	rc = open_parent(r, rel, 0, 1, &dfd, &base);
	if (rc != PS_OK)
		return rc == PS_EPARTIAL && errno == ENOENT ? PS_OK : rc;
	if (unlinkat(dfd, base, flags) == 0 || errno == ENOENT) {
		close(dfd);
		return PS_OK;
	}
	err = errno;
	close(dfd);
	if (flags == 0 && (err == EISDIR || err == EPERM)) {
		struct stat st;

		/* Linux says EISDIR, POSIX allows EPERM for a directory. */
		if (open_parent(r, rel, 0, 1, &dfd, &base) == PS_OK) {
			int isdir = fstatat(dfd, base, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);

			close(dfd);
			if (isdir)
				return fail_rel(rel, "cannot remove", EISDIR);
		}
	}
	if (err == EEXIST)
		err = ENOTEMPTY;	/* POSIX allows either */
	return fail_rel(rel, "cannot remove", err);
}

int
ps_unlink(struct ps_root *r, const char *rel)
{
	return remove_at(r, rel, 0);
}

int
ps_rmdir(struct ps_root *r, const char *rel)
{
	return remove_at(r, rel, AT_REMOVEDIR);
}

/* Fill TS for a new modification time; access time untouched. */
static int
mtime_spec(int64_t sec, uint32_t nsec, struct timespec ts[2])
{
	if (nsec >= 1000000000u || (int64_t)(time_t)sec != sec)
		return -1;
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)sec;
	ts[1].tv_nsec = (long)nsec;
	return 0;
}

int
ps_set_times(struct ps_root *r, const char *rel, int64_t sec, uint32_t nsec)
{
	struct timespec ts[2];
	const char *base;
	int dfd, rc, err;

	if (rel != NULL && *rel != '\0' && (rc = check_rel(rel)) != PS_OK)
		return rc;
	if (mtime_spec(sec, nsec, ts) == -1)
		return fail_rel(rel, "invalid modification time", EINVAL);
	if (rel == NULL || *rel == '\0') {
		if (futimens(r->fd, ts) == -1)
			return fail_rel(NULL, "cannot set times", errno);
		return PS_OK;
	}
	if ((rc = open_parent(r, rel, 0, 0, &dfd, &base)) != PS_OK)
		return rc;
	rc = utimensat(dfd, base, ts, AT_SYMLINK_NOFOLLOW);
	err = errno;
	close(dfd);
	if (rc == -1)
		return fail_rel(rel, "cannot set times", err);
	return PS_OK;
}

/* ---- temporaries ---- */

/* Six characters from [A-Za-z0-9], unpredictable enough for O_EXCL. */
static void
random_suffix(char out[TMP_RANDOM + 1])
{
	static const char set[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	static unsigned long counter;
	unsigned char rnd[TMP_RANDOM];
	size_t i;

	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(rnd)) {
		/* No entropy yet: O_EXCL and retries still keep us safe. */
		unsigned long x = (unsigned long)time(NULL) ^
		    ((unsigned long)getpid() << 16) ^ (++counter * 2654435761u);

		for (i = 0; i < sizeof(rnd); i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			rnd[i] = (unsigned char)x;
		}
	}
	for (i = 0; i < TMP_RANDOM; i++)
		out[i] = set[rnd[i] % (sizeof(set) - 1)];
	out[TMP_RANDOM] = '\0';
}

static void
tmp_init(struct ps_tmp *t)
{
	t->live = 0;
	t->dirfd = -1;
	t->fd = -1;
	t->name = NULL;
	t->base = NULL;
	t->rel = NULL;
	t->nslock = NULL;
}

/* Close and free everything T holds (no unlink). */
static void
tmp_release(struct ps_tmp *t)
{
	int saved = errno;

	if (t->fd >= 0)
		close(t->fd);
	if (t->dirfd >= 0)
		close(t->dirfd);
	free(t->name);
	free(t->base);
	free(t->rel);
	tmp_init(t);
	errno = saved;
}

int
ps_tmp_create(struct ps_root *r, const char *rel, struct ps_tmp *t)
{
	/* prefix + base + "." + random must fit NAME_MAX. */
	const size_t maxbase = NAME_MAX - (sizeof(PS_TMP_PREFIX) - 1) - 1 -
	    TMP_RANDOM;
	struct stat st;
	const char *base;
	char rnd[TMP_RANDOM + 1];
	size_t blen;
	int dfd, rc, tries, err;

	tmp_init(t);
	if ((rc = open_parent(r, rel, 1, 0, &dfd, &base)) != PS_OK)
		return rc;
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode)) {
		close(dfd);
		return fail_rel(rel, "cannot replace", EISDIR);
	}
	blen = strlen(base);
	if (blen > maxbase)
		blen = maxbase;
	for (tries = 0; tries < 100; tries++) {
		random_suffix(rnd);
		free(t->name);
		t->name = xasprintf("%s%.*s.%s", PS_TMP_PREFIX, (int)blen, base,
		    rnd);
		t->fd = openat(dfd, t->name, O_RDWR | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (t->fd >= 0 || errno != EEXIST)
			break;
	}
	if (t->fd == -1) {
		err = errno;
		close(dfd);
		free(t->name);
		t->name = NULL;
		return fail_rel(rel, "cannot create temporary file", err);
	}
	t->dirfd = dfd;
	t->base = xstrdup(base);
	t->rel = xstrdup(rel);
	t->live = 1;
	return PS_OK;
}

int
ps_tmp_write(struct ps_tmp *t, const void *p, size_t n)
{
	const unsigned char *s = p;
	ssize_t w;

	if (!t->live || t->fd < 0)
		return fail_rel(t->rel, "write to a closed temporary", EBADF);
	while (n > 0) {
		w = write(t->fd, s, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return fail_rel(t->rel, "cannot write", errno);
		if (w == 0)	/* no progress and no errno: call it full */
			return fail_rel(t->rel, "cannot write", ENOSPC);
		s += w;
		n -= (size_t)w;
	}
	return PS_OK;
}

int
ps_tmp_commit(struct ps_tmp *t, uint32_t mode, int64_t mtime_sec,
    uint32_t mtime_nsec)
{
	struct timespec ts[2];
	int fd, rc, err;

	if (!t->live || t->fd < 0)
		return fail_rel(t->rel, "commit of a closed temporary", EBADF);
	if (mtime_spec(mtime_sec, mtime_nsec, ts) == -1)
		return fail_rel(t->rel, "invalid modification time", EINVAL);
	if (ps_set_mode(t->fd, mode, t->rel) != PS_OK)
		return PS_EPARTIAL;
	/* After every write, or the write would move mtime again. */
	if (futimens(t->fd, ts) == -1)
		return fail_rel(t->rel, "cannot set times", errno);
	if (fsync(t->fd) == -1)
		return fail_rel(t->rel, "cannot sync", errno);
	/* close can report delayed write errors (NFS): check it. */
	fd = t->fd;
	t->fd = -1;
	if (close(fd) == -1 && errno != EINTR)
		return fail_rel(t->rel, "cannot close", errno);
	/* rename replaces a symlink at BASE itself, never its target. */
	if (t->nslock != NULL)
		pthread_mutex_lock(t->nslock);
	rc = renameat(t->dirfd, t->name, t->dirfd, t->base);
	err = errno;
	if (t->nslock != NULL)
		pthread_mutex_unlock(t->nslock);
	if (rc == -1) {
		if (err == EISDIR || err == ENOTEMPTY || err == EEXIST)
			return fail_rel(t->rel, "cannot replace", EISDIR);
		return fail_rel(t->rel, "cannot rename temporary file", err);
	}
	/* Make the rename durable; some file systems refuse, that's fine. */
	if (!t->defer_dirsync)
		(void)fsync(t->dirfd);
	tmp_release(t);
	return PS_OK;
}

void
ps_tmp_abort(struct ps_tmp *t)
{
	int saved = errno;

	if (!t->live)
		return;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	(void)unlinkat(t->dirfd, t->name, 0);
	tmp_release(t);
	errno = saved;
}

/* ---- lock ---- */

/*
 * Describe who holds the lock on FD, from the record an exclusive holder
 * wrote ("PID TIME\n"). A record whose process is gone is stale: then a
 * reader holds the lock, or a push has not written its record yet.
 */
static char *
holder_text(struct ps_root *r, int fd)
{
	char rec[64], when[64], *end, *esc, *msg;
	long long pid = 0, t = 0;
	ssize_t n;
	struct tm tm;
	time_t tt;

	n = pread(fd, rec, sizeof(rec) - 1, 0);
	if (n > 0) {
		rec[n] = '\0';
		errno = 0;
		pid = strtoll(rec, &end, 10);
		if (errno != 0 || end == rec || *end != ' ')
			pid = 0;
		else
			t = strtoll(end + 1, &end, 10);
		if (errno != 0 || *end != '\n')
			pid = 0;
	}
	if (pid > 0 && pid <= INT_MAX &&
	    (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
		tt = (time_t)t;
		if (localtime_r(&tt, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) == 0)
			snprintf(when, sizeof(when), "%lld", t);
	} else {
		pid = 0;
	}
	esc = ps_escape(r->path, strlen(r->path));
	if (pid > 0)
		msg = xasprintf("%s is locked by another push (pid %lld "
		    "since %s)", esc, pid, when);
	else
		msg = xasprintf("%s is locked by another process (a report "
		    "or pull reading, or a push starting)", esc);
	free(esc);
	return msg;
}

/* Write our record into the lock file we now hold exclusively. */
static void
record_holder(int fd)
{
	char rec[64];
	int n;

	n = snprintf(rec, sizeof(rec), "%ld %lld\n", (long)getpid(),
	    (long long)time(NULL));
	/* Only used for messages: a failure here does not matter. */
	if (ftruncate(fd, 0) == -1 || pwrite(fd, rec, (size_t)n, 0) != n)
		ps_info(1, "cannot record lock holder: %s", strerror(errno));
}

/*
 * Open ROOT/.patchsync/lock into *FD, creating what is missing. A reader
 * (SHARED) that may not create it (read-only ROOT, or no write
 * permission) gets *FD == -1 and PS_OK: it only reads files, which are
 * old-or-new at any moment anyway, so it can do without the lock.
 */
static int
open_lock_file(struct ps_root *r, int shared, int *fd)
{
	static const char lockrel[] = PS_META_DIR "/" LOCK_NAME;
	struct stat st;
	int mfd, err, nolock_ok = 0;

	*fd = -1;
	if (mkdirat(r->fd, PS_META_DIR, DIR_MODE) == -1 && errno != EEXIST) {
		if (!shared || (errno != EROFS && errno != EACCES))
			return fail_rel(PS_META_DIR, "cannot create directory",
			    errno);
		nolock_ok = 1;
	}
	if (walk(r, PS_META_DIR, sizeof(PS_META_DIR) - 1, 0, nolock_ok,
	    &mfd) != PS_OK)
		return nolock_ok && errno == ENOENT ? PS_OK : PS_EPARTIAL;
	*fd = openat(mfd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC, 0644);
	if (*fd == -1 && shared && (errno == EROFS || errno == EACCES)) {
		*fd = openat(mfd, LOCK_NAME, O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		if (*fd == -1 && errno == ENOENT) {
			close(mfd);
			return PS_OK;
		}
	}
	err = errno;
	close(mfd);
	if (*fd == -1 && err == ELOOP)
		return fail_symlink(lockrel, sizeof(lockrel) - 1);
	if (*fd == -1)
		return fail_rel(lockrel, "cannot open", err);
	if (fstat(*fd, &st) == -1) {
		err = errno;
		close(*fd);
		*fd = -1;
		return fail_rel(lockrel, "cannot stat", err);
	}
	if (!S_ISREG(st.st_mode)) {
		close(*fd);
		*fd = -1;
		return fail_rel(lockrel, "not a regular file", EINVAL);
	}
	return PS_OK;
}

/*
 * flock FD with OP. When another process holds it: without WAIT, say WHY
 * and return PS_EPEER; with WAIT, call WAITING(WHY) once and try again
 * every 100 ms until it is ours, or until an interruption (PS_EINTR).
 * WHY is made only when needed, by WHY_FN(ARG2).
 */
static int
flock_wait(int fd, int op, int wait, char *(*why_fn)(void *), void *arg2,
    ps_lock_wait_fn waiting, void *arg, const char *what)
{
	struct pollfd pfd = { .fd = ps_intr_fd(), .events = POLLIN };
	int told = 0;
	char *why;

	while (flock(fd, op | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return fail_rel(what, "cannot lock", errno);
		if (!told) {
			why = why_fn(arg2);
			if (!wait) {
				ps_err("%s", why);
				free(why);
				return PS_EPEER;
			}
			if (waiting != NULL)
				waiting(why, arg);
			free(why);
			told = 1;
		}
		/* poll(-1, ...) just sleeps: no interruption pipe yet. */
		if (poll(&pfd, 1, 100) > 0)
			return PS_EINTR;
	}
	return PS_OK;
}

struct holder_arg {
	struct ps_root *r;
	int fd;
};

static char *
root_holder(void *arg)
{
	struct holder_arg *h = arg;

	return holder_text(h->r, h->fd);
}

static int
lock_root(struct ps_root *r, int shared, int wait, ps_lock_wait_fn waiting,
    void *arg)
{
	int op = shared ? LOCK_SH : LOCK_EX;
	struct holder_arg h;
	int fd, rc;

	if (r->lockfd >= 0) {
		if (shared || r->lock_excl)
			return PS_OK;	/* what we hold is enough */
		/* A reader that now pushes: the lock must be exclusive. */
		ps_root_unlock(r);
	}
	if ((rc = open_lock_file(r, shared, &fd)) != PS_OK || fd == -1)
		return rc;
	h.r = r;
	h.fd = fd;
	rc = flock_wait(fd, op, wait, root_holder, &h, waiting, arg,
	    PS_META_DIR "/" LOCK_NAME);
	if (rc != PS_OK) {
		close_keep_errno(fd);
		return rc;
	}
	if (!shared)
		record_holder(fd);
	r->lockfd = fd;
	r->lock_excl = !shared;
	return PS_OK;
}

int
ps_root_lock(struct ps_root *r, int wait, ps_lock_wait_fn waiting, void *arg)
{
	return lock_root(r, 0, wait, waiting, arg);
}

int
ps_root_lock_shared(struct ps_root *r, int wait, ps_lock_wait_fn waiting,
    void *arg)
{
	return lock_root(r, 1, wait, waiting, arg);
}

void
ps_root_unlock(struct ps_root *r)
{
	if (r->lockfd < 0)
		return;
	/* Clear our record while still holding the lock. */
	if (r->lock_excl)
		(void)ftruncate(r->lockfd, 0);
	close(r->lockfd);
	r->lockfd = -1;
	r->lock_excl = 0;
}

struct dir_holder {
	const char *label;
};

static char *
dir_holder(void *arg)
{
	struct dir_holder *d = arg;
	char *esc = ps_escape(d->label, strlen(d->label)), *msg;

	msg = xasprintf("%s is locked by another patchsync (a push, or a "
	    "report or refresh reading it)", esc);
	free(esc);
	return msg;
}

int
ps_dir_lock(int dirfd, int shared, int wait, const char *label,
    ps_lock_wait_fn waiting, void *arg)
{
	struct dir_holder d = { label };

	return flock_wait(dirfd, shared ? LOCK_SH : LOCK_EX, wait,
	    dir_holder, &d, waiting, arg, label);
}

int
ps_dest_open(struct ps_root *r, const char *dest, int create, int *dirfd)
{
	const char *base;
	char *esc;
	int dfd, rc, err;

	*dirfd = -1;
	if (dest == NULL || *dest == '\0')
		return walk(r, "", 0, 0, 0, dirfd);
	if ((rc = open_parent(r, dest, 0, 1, &dfd, &base)) != PS_OK) {
		if (rc == PS_EPARTIAL && errno == ENOENT) {
			const char *slash = strrchr(dest, '/');

			esc = ps_escape(dest, (size_t)(slash - dest));
			ps_err("%s/%s: no such directory (the parent of the "
			    "destination)", r->path, esc);
			free(esc);
			errno = ENOENT;
			return PS_EPEER;
		}
		return rc;
	}
	if (create && mkdirat(dfd, base, DIR_MODE) == -1 && errno != EEXIST) {
		err = errno;
		close(dfd);
		return fail_rel(dest, "cannot create directory", err);
	}
	*dirfd = openat(dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	err = errno;
	if (*dirfd == -1) {
		struct stat st;

		if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode)) {
			close(dfd);
			return fail_symlink(dest, strlen(dest));
		}
		close(dfd);
		if (err == ENOENT && !create) {
			errno = ENOENT;
			return PS_EPARTIAL;	/* quiet: "nothing there yet" */
		}
		return fail_rel(dest, "cannot open directory", err);
	}
	close(dfd);
	return PS_OK;
}

/* ---- opening below a directory, for reading ---- */

/* Open REL below DIRFD one component at a time, never following links. */
static int
open_walk(int dirfd, const char *rel, int flags)
{
	char comp[NAME_MAX + 1];
	const char *p = rel, *slash;
	int fd, next;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	while (fd >= 0 && (slash = strchr(p, '/')) != NULL) {
		if ((size_t)(slash - p) > NAME_MAX) {
			close(fd);
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(comp, p, (size_t)(slash - p));
		comp[slash - p] = '\0';
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		close_keep_errno(fd);
		fd = next;
		p = slash + 1;
	}
	if (fd < 0)
		return -1;
	next = openat(fd, p, flags | O_NOFOLLOW);
	close_keep_errno(fd);
	return next;
}

int
ps_open_beneath(int dirfd, const char *rel, int *fd, struct stat *st)
{
	int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
#ifdef HAVE_OPENAT2
	static atomic_int no_openat2;
	struct open_how how;
	long r;
#endif

	*fd = -1;
	if (rel == NULL || !ps_path_ok(rel, strlen(rel))) {
		errno = EINVAL;
		return -1;
	}
#ifdef HAVE_OPENAT2
	if (!atomic_load(&no_openat2)) {
		memset(&how, 0, sizeof(how));
		how.flags = (uint64_t)(flags | O_NOFOLLOW);
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		    RESOLVE_NO_MAGICLINKS;
		r = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
		if (r >= 0 || (errno != ENOSYS && errno != EPERM))
			*fd = (int)r;
		else
			atomic_store(&no_openat2, 1);	/* old kernel */
	}
	if (!atomic_load(&no_openat2) && *fd < 0)
		return -1;
	if (*fd < 0)
#endif
		if ((*fd = open_walk(dirfd, rel, flags)) < 0)
			return -1;
	if (fstat(*fd, st) == -1 || !S_ISREG(st->st_mode)) {
		int err = S_ISDIR(st->st_mode) ? EISDIR : errno != 0 ? errno :
		    EINVAL;

		close(*fd);
		*fd = -1;
		errno = err;
		return -1;
	}
	/* O_NONBLOCK only so that a FIFO planted here cannot hang us. */
	(void)fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK);
	return 0;
}

int
ps_dir_open_quiet(struct ps_root *r, const char *rel, int *dirfd)
{
	int rc;

	*dirfd = -1;
	if (r->fd < 0) {
		errno = ENOENT;
		return PS_EPARTIAL;
	}
	if (rel == NULL || *rel == '\0')
		return walk(r, "", 0, 0, 1, dirfd);
	if ((rc = check_rel(rel)) != PS_OK)
		return rc;
	return walk(r, rel, strlen(rel), 0, 1, dirfd);
}

int
ps_file_open_quiet(struct ps_root *r, const char *rel, int *fd,
    struct stat *st)
{
	return file_open(r, rel, 1, fd, st);
}
