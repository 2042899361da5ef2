/* Unit tests for safe file operations under ROOT (src/fsops.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ps.h"
#include "fsops.h"

struct fx {
	char root[64];		/* ROOT */
	char out[64];		/* a directory outside ROOT */
	struct ps_root r;
};

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(p);
	return unlink(p);
}

static void
rm_tree(const char *p)
{
	(void)nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/fsops-root.XXXXXX");
	snprintf(f->out, sizeof(f->out), "/tmp/fsops-out.XXXXXX");
	if (mkdtemp(f->root) == NULL || mkdtemp(f->out) == NULL)
		return -1;
	if (ps_root_open(f->root, 0, &f->r) != PS_OK)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	ps_root_close(&f->r);
	rm_tree(f->root);
	rm_tree(f->out);
	free(f);
	return 0;
}

/* Path under DIR, in a static buffer (one at a time is enough here). */
static const char *
at(const char *dir, const char *rel)
{
	static char p[2][PATH_MAX];
	static int i;

	i ^= 1;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, rel);
	return p[i];
}

/* Number of entries in DIR other than "." and "..". */
static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* First entry of DIR starting with PREFIX, or NULL (static buffer). */
static const char *
find_entry(const char *dir, const char *prefix)
{
	static char name[NAME_MAX + 1];
	DIR *d = opendir(dir);
	struct dirent *de;
	const char *res = NULL;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
			snprintf(name, sizeof(name), "%s", de->d_name);
			res = name;
			break;
		}
	closedir(d);
	return res;
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static void
assert_file_is(const char *path, const char *text)
{
	char buf[256];
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	assert_string_equal(buf, text);
}

/* Capture stderr around a call: begin returns a token for end. */
static int
capture_begin(void)
{
	int saved;
	FILE *tmp = tmpfile();

	assert_non_null(tmp);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	/* tmpfile stays open through the dup in fd 2. */
	fclose(tmp);
	return saved;
}

static char *
capture_end(int saved)
{
	static char text[1024];
	ssize_t n;

	fflush(stderr);
	n = pread(STDERR_FILENO, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	return text;
}

static void
test_tmp_commit(void **state)
{
	struct fx *f = *state;
	struct ps_tmp t;
	struct stat st;
	const char *tn;
	char tmpname[NAME_MAX + 1], path[PATH_MAX];

	assert_int_equal(ps_tmp_create(&f->r, "pkg/KB1.msu", &t), PS_OK);
	assert_int_equal(ps_tmp_write(&t, "new content", 11), PS_OK);
	/* Hidden, in the target's own directory, only thing there. */
	tn = find_entry(at(f->root, "pkg"), PS_TMP_PREFIX);
	assert_non_null(tn);
	snprintf(tmpname, sizeof(tmpname), "%s", tn);
	assert_int_equal(strncmp(tmpname, PS_TMP_PREFIX "KB1.msu.",
	    strlen(PS_TMP_PREFIX "KB1.msu.")), 0);
	assert_int_equal(strlen(tmpname), strlen(PS_TMP_PREFIX "KB1.msu.") + 6);
	assert_int_equal(count_entries(at(f->root, "pkg")), 1);
	snprintf(path, sizeof(path), "%s/pkg/%s", f->root, tmpname);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	assert_int_equal(ps_tmp_commit(&t, 04751, 1700000000, 123456789),
	    PS_OK);
	assert_int_equal(count_entries(at(f->root, "pkg")), 1);
	assert_file_is(at(f->root, "pkg/KB1.msu"), "new content");
	assert_int_equal(stat(at(f->root, "pkg/KB1.msu"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);	/* set-id dropped */
	assert_int_equal(st.st_mtim.tv_sec, 1700000000);
	assert_int_equal(st.st_mtim.tv_nsec, 123456789);
	ps_tmp_abort(&t);			/* after commit: no-op */
	assert_int_equal(count_entries(at(f->root, "pkg")), 1);

	/* Replacing an existing file. */
	assert_int_equal(ps_tmp_create(&f->r, "pkg/KB1.msu", &t), PS_OK);
	assert_int_equal(ps_tmp_write(&t, "v2", 2), PS_OK);
	assert_file_is(at(f->root, "pkg/KB1.msu"), "new content");
	assert_int_equal(ps_tmp_commit(&t, 0644, 5, 0), PS_OK);
	assert_file_is(at(f->root, "pkg/KB1.msu"), "v2");
	assert_int_equal(count_entries(at(f->root, "pkg")), 1);
}

static void
test_tmp_abort(void **state)
{
	struct fx *f = *state;
	struct ps_tmp t;
	int fd0_open = fcntl(0, F_GETFD) != -1;

	memset(&t, 0, sizeof(t));
	ps_tmp_abort(&t);		/* zeroed: no-op, no close(0) */
	assert_int_equal(fcntl(0, F_GETFD) != -1, fd0_open);

	assert_int_equal(ps_tmp_create(&f->r, "x", &t), PS_OK);
	assert_int_equal(ps_tmp_write(&t, "junk", 4), PS_OK);
	assert_int_equal(count_entries(f->root), 1);
	ps_tmp_abort(&t);
	assert_int_equal(count_entries(f->root), 0);
	ps_tmp_abort(&t);			/* twice */

	/* A bad mtime fails the commit; abort then cleans up. */
	assert_int_equal(ps_tmp_create(&f->r, "x", &t), PS_OK);
	assert_int_equal(ps_tmp_commit(&t, 0644, 1, 1000000000), PS_EPARTIAL);
	assert_int_equal(count_entries(f->root), 1);
	ps_tmp_abort(&t);
	assert_int_equal(count_entries(f->root), 0);
}

static void
test_tmp_long_name(void **state)
{
	struct fx *f = *state;
	char name[NAME_MAX + 1];
	struct ps_tmp t;
	const char *tn;

	memset(name, 'n', NAME_MAX);
	name[NAME_MAX] = '\0';
	assert_int_equal(ps_tmp_create(&f->r, name, &t), PS_OK);
	tn = find_entry(f->root, PS_TMP_PREFIX);
	assert_non_null(tn);
	assert_true(strlen(tn) <= NAME_MAX);
	assert_int_equal(ps_tmp_commit(&t, 0644, 1, 0), PS_OK);
	assert_int_equal(access(at(f->root, name), F_OK), 0);
	assert_int_equal(count_entries(f->root), 1);
}

static void
test_nested_create(void **state)
{
	struct fx *f = *state;
	struct ps_tmp t;
	struct stat st;
	int fd;

	assert_int_equal(ps_tmp_create(&f->r, "a/b/c/file", &t), PS_OK);
	assert_int_equal(ps_tmp_commit(&t, 0600, 10, 0), PS_OK);
	assert_int_equal(access(at(f->root, "a/b/c/file"), F_OK), 0);

	assert_int_equal(ps_dir_open(&f->r, "d/e", 0, &fd), PS_EPARTIAL);
	assert_int_equal(fd, -1);
	assert_int_equal(ps_dir_open(&f->r, "d/e", 1, &fd), PS_OK);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	close(fd);
	assert_int_equal(ps_dir_open(&f->r, NULL, 0, &fd), PS_OK);
	close(fd);
	assert_int_equal(ps_dir_open(&f->r, "", 0, &fd), PS_OK);
	close(fd);

	assert_int_equal(ps_mkdir(&f->r, "m/n/o", 0700), PS_OK);
	assert_int_equal(stat(at(f->root, "m/n/o"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(ps_mkdir(&f->r, "m/n/o", 0750), PS_OK);  /* chmod */
	assert_int_equal(stat(at(f->root, "m/n/o"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	/* A file in the way of a directory. */
	assert_int_equal(ps_mkdir(&f->r, "a/b/c/file", 0755), PS_EPARTIAL);
	assert_int_equal(ps_dir_open(&f->r, "a/b/c/file/x", 1, &fd),
	    PS_EPARTIAL);
}

/* ROOT/link -> OUT; also ROOT/a/deep -> OUT. */
static void
test_symlink_parent(void **state)
{
	struct fx *f = *state;
	struct ps_tmp t;
	struct stat st;
	int fd, rc, saved;
	char *msg;

	write_file(at(f->out, "victim"), "outside");
	write_file(at(f->out, PS_TMP_PREFIX "victim.abcdef"), "outside tmp");
	assert_int_equal(mkdir(at(f->out, "sub"), 0755), 0);
	assert_int_equal(symlink(f->out, at(f->root, "link")), 0);
	assert_int_equal(mkdir(at(f->root, "a"), 0755), 0);
	assert_int_equal(symlink(f->out, at(f->root, "a/deep")), 0);

	saved = capture_begin();
	rc = ps_tmp_create(&f->r, "link/new", &t);
	msg = capture_end(saved);
	assert_int_equal(rc, PS_EPARTIAL);
	assert_int_equal(errno, ELOOP);
	assert_non_null(strstr(msg, "refusing to follow symlink: link"));
	ps_tmp_abort(&t);

	assert_int_equal(ps_tmp_create(&f->r, "a/deep/new", &t), PS_EPARTIAL);
	ps_tmp_abort(&t);
	assert_int_equal(ps_tmp_create(&f->r, "link/x/y/new", &t),
	    PS_EPARTIAL);
	ps_tmp_abort(&t);
	assert_int_equal(ps_dir_open(&f->r, "link", 1, &fd), PS_EPARTIAL);
	assert_int_equal(ps_dir_open(&f->r, "link/sub", 1, &fd), PS_EPARTIAL);
	assert_int_equal(ps_dir_open(&f->r, "link/made", 1, &fd),
	    PS_EPARTIAL);
	assert_int_equal(fd, -1);
	assert_int_equal(ps_mkdir(&f->r, "link/made", 0755), PS_EPARTIAL);
	assert_int_equal(ps_mkdir(&f->r, "a/deep/made/more", 0755),
	    PS_EPARTIAL);
	assert_int_equal(ps_unlink(&f->r, "link/victim"), PS_EPARTIAL);
	assert_int_equal(ps_unlink(&f->r, "a/deep/victim"), PS_EPARTIAL);
	assert_int_equal(ps_rmdir(&f->r, "link/sub"), PS_EPARTIAL);
	assert_int_equal(ps_set_times(&f->r, "link/victim", 1, 0),
	    PS_EPARTIAL);
	assert_int_equal(ps_file_open(&f->r, "link/victim", &fd, NULL),
	    PS_EPARTIAL);
	assert_int_equal(fd, -1);
	/* A symlink as the directory itself. */
	assert_int_equal(ps_mkdir(&f->r, "link", 0755), PS_EPARTIAL);
	assert_int_equal(ps_rmdir(&f->r, "link"), PS_EPARTIAL);
	/* Opening for reading below a directory never follows a link. */
	{
		errno = 0;
		assert_int_equal(ps_open_beneath(f->r.fd, "link/victim", &fd,
		    &st), -1);
		assert_int_equal(errno, ELOOP);
		assert_int_equal(fd, -1);
		assert_int_equal(ps_dest_open(&f->r, "link", 0, &fd),
		    PS_EPARTIAL);
		assert_int_equal(ps_dest_open(&f->r, "link/sub", 1, &fd),
		    PS_EPARTIAL);
	}

	/* Nothing changed outside. */
	assert_int_equal(count_entries(f->out), 3);
	assert_file_is(at(f->out, "victim"), "outside");
	assert_file_is(at(f->out, PS_TMP_PREFIX "victim.abcdef"),
	    "outside tmp");
	assert_int_equal(count_entries(at(f->out, "sub")), 0);
	assert_int_equal(stat(at(f->out, "victim"), &st), 0);
	assert_true(st.st_mtime > 1);
	/* The links themselves are still there. */
	assert_int_equal(lstat(at(f->root, "link"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
}

/* ROOT/f -> OUT/target: commit replaces the link, not the target. */
static void
test_symlink_final(void **state)
{
	struct fx *f = *state;
	struct ps_tmp t;
	struct stat st;
	int fd;

	write_file(at(f->out, "target"), "outside");
	assert_int_equal(symlink(at(f->out, "target"), at(f->root, "f")), 0);
	assert_int_equal(symlink(at(f->out, "target"), at(f->root, "g")), 0);
	assert_int_equal(symlink(f->out, at(f->root, "d")), 0);

	assert_int_equal(ps_file_open(&f->r, "f", &fd, NULL), PS_EPARTIAL);
	assert_int_equal(fd, -1);

	assert_int_equal(ps_tmp_create(&f->r, "f", &t), PS_OK);
	assert_int_equal(ps_tmp_write(&t, "inside", 6), PS_OK);
	assert_int_equal(ps_tmp_commit(&t, 0644, 100, 5), PS_OK);
	assert_int_equal(lstat(at(f->root, "f"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_file_is(at(f->root, "f"), "inside");
	assert_file_is(at(f->out, "target"), "outside");
	assert_int_equal(stat(at(f->out, "target"), &st), 0);
	assert_true(st.st_mtime != 100);

	/* unlink removes the link itself; set_times touches the link only. */
	assert_int_equal(ps_set_times(&f->r, "g", 100, 0), PS_OK);
	assert_int_equal(stat(at(f->out, "target"), &st), 0);
	assert_true(st.st_mtime != 100);
	assert_int_equal(ps_unlink(&f->r, "g"), PS_OK);
	assert_int_equal(lstat(at(f->root, "g"), &st), -1);
	assert_int_equal(ps_unlink(&f->r, "d"), PS_OK);	/* link to dir */
	assert_int_equal(count_entries(f->out), 1);
	assert_file_is(at(f->out, "target"), "outside");
}

static void
test_meta_symlink(void **state)
{
	struct fx *f = *state;
	struct ps_root r2;

	assert_int_equal(symlink(f->out, at(f->root, PS_META_DIR)), 0);
	assert_int_equal(ps_root_lock(&f->r, 0, NULL, NULL), PS_EPARTIAL);
	assert_int_equal(f->r.lockfd, -1);
	assert_int_equal(ps_root_lock_shared(&f->r, 0, NULL, NULL),
	    PS_EPARTIAL);
	assert_int_equal(count_entries(f->out), 0);

	/* A symlink as the lock file itself. */
	assert_int_equal(unlink(at(f->root, PS_META_DIR)), 0);
	assert_int_equal(mkdir(at(f->root, PS_META_DIR), 0755), 0);
	assert_int_equal(symlink(at(f->out, "lock"),
	    at(f->root, PS_META_DIR "/lock")), 0);
	assert_int_equal(ps_root_lock(&f->r, 0, NULL, NULL), PS_EPARTIAL);
	assert_int_equal(count_entries(f->out), 0);

	/* And the normal case for comparison. */
	assert_int_equal(unlink(at(f->root, PS_META_DIR "/lock")), 0);
	assert_int_equal(ps_root_lock(&f->r, 0, NULL, NULL), PS_OK);
	assert_true(f->r.lockfd >= 0);
	/* Held already: enough; shared on top of exclusive too. */
	assert_int_equal(ps_root_lock(&f->r, 0, NULL, NULL), PS_OK);
	assert_int_equal(ps_root_lock_shared(&f->r, 0, NULL, NULL), PS_OK);
	assert_true(f->r.lock_excl);
	ps_root_unlock(&f->r);
	assert_int_equal(f->r.lockfd, -1);
	assert_int_equal(ps_root_open(f->root, 0, &r2), PS_OK);
	assert_int_equal(ps_root_lock(&r2, 0, NULL, NULL), PS_OK);
	ps_root_close(&r2);
	ps_root_close(&r2);			/* twice */
}

static void
test_unsafe_paths(void **state)
{
	static const char *bad[] = { "..", "/abs", "a/../b", "../x", "a/",
	    "a//b", ".", "./a", "", NULL };
	struct fx *f = *state;
	struct ps_tmp t;
	struct stat st;
	size_t i;
	int fd;

	assert_int_equal(mkdir(at(f->root, "a"), 0755), 0);
	write_file(at(f->root, "b"), "keep");
	for (i = 0; bad[i] != NULL; i++) {
		const char *p = bad[i];

		assert_int_equal(ps_tmp_create(&f->r, p, &t), PS_EUSAGE);
		ps_tmp_abort(&t);
		assert_int_equal(ps_file_open(&f->r, p, &fd, NULL), PS_EUSAGE);
		assert_int_equal(ps_mkdir(&f->r, p, 0755), PS_EUSAGE);
		assert_int_equal(ps_unlink(&f->r, p), PS_EUSAGE);
		assert_int_equal(ps_rmdir(&f->r, p), PS_EUSAGE);
		if (*p == '\0')
			continue;	/* "" means ROOT for these */
		assert_int_equal(ps_dir_open(&f->r, p, 1, &fd), PS_EUSAGE);
		assert_int_equal(fd, -1);
		assert_int_equal(ps_set_times(&f->r, p, 1, 0), PS_EUSAGE);
		assert_int_equal(ps_open_beneath(f->r.fd, p, &fd, &st), -1);
	}
	assert_int_equal(count_entries(f->root), 2);
	assert_file_is(at(f->root, "b"), "keep");
	assert_int_equal(count_entries(f->out), 0);
}

static void
test_remove_ops(void **state)
{
	struct fx *f = *state;
	struct stat st;
	int fd, saved;
	char *msg;

	assert_int_equal(mkdir(at(f->root, "d"), 0755), 0);
	write_file(at(f->root, "d/file"), "x");
	assert_int_equal(ps_unlink(&f->r, "d"), PS_EPARTIAL);	/* a dir */
	assert_int_equal(ps_rmdir(&f->r, "d/file"), PS_EPARTIAL);
	saved = capture_begin();
	assert_int_equal(ps_rmdir(&f->r, "d"), PS_EPARTIAL);
	msg = capture_end(saved);
	assert_non_null(strstr(msg, "d: cannot remove: Directory not empty"));
	assert_int_equal(ps_unlink(&f->r, "d/file"), PS_OK);
	assert_int_equal(ps_unlink(&f->r, "d/file"), PS_OK);	/* gone */
	assert_int_equal(ps_unlink(&f->r, "nodir/file"), PS_OK);
	assert_int_equal(ps_rmdir(&f->r, "d"), PS_OK);
	assert_int_equal(ps_rmdir(&f->r, "d"), PS_OK);
	assert_int_equal(count_entries(f->root), 0);

	/* Directory times, ns preserved; a bad nsec refused. */
	assert_int_equal(mkdir(at(f->root, "t"), 0755), 0);
	assert_int_equal(ps_set_times(&f->r, "t", 1600000000, 987654321),
	    PS_OK);
	assert_int_equal(stat(at(f->root, "t"), &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1600000000);
	assert_int_equal(st.st_mtim.tv_nsec, 987654321);
	assert_int_equal(ps_set_times(&f->r, "t", 1, 1000000000),
	    PS_EPARTIAL);
	assert_int_equal(ps_set_times(&f->r, NULL, 1500000000, 1), PS_OK);
	assert_int_equal(stat(f->root, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1500000000);

	/* file_open: regular files only, a FIFO must not hang. */
	write_file(at(f->root, "t/reg"), "data");
	assert_int_equal(ps_file_open(&f->r, "t/reg", &fd, &st), PS_OK);
	assert_int_equal(st.st_size, 4);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
	assert_int_equal(ps_file_open(&f->r, "t", &fd, NULL), PS_EPARTIAL);
	assert_int_equal(mkfifo(at(f->root, "t/fifo"), 0644), 0);
	assert_int_equal(ps_file_open(&f->r, "t/fifo", &fd, NULL),
	    PS_EPARTIAL);
	assert_int_equal(ps_file_open(&f->r, "t/none", &fd, NULL),
	    PS_EPARTIAL);
	assert_int_equal(errno, ENOENT);
}

/* The quiet variants: missing is silent, everything else still speaks. */
static void
test_quiet_open(void **state)
{
	struct fx *f = *state;
	struct ps_root closed = { .fd = -1, .lockfd = -1 };
	struct stat st;
	int fd, saved;
	char *msg;

	assert_int_equal(mkdir(at(f->root, "d"), 0755), 0);
	write_file(at(f->root, "d/reg"), "abc");
	assert_int_equal(symlink(f->out, at(f->root, "link")), 0);

	saved = capture_begin();
	assert_int_equal(ps_file_open_quiet(&f->r, "d/none", &fd, NULL),
	    PS_EPARTIAL);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(fd, -1);
	assert_int_equal(ps_file_open_quiet(&f->r, "no/such", &fd, NULL),
	    PS_EPARTIAL);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(ps_dir_open_quiet(&f->r, "no/such", &fd),
	    PS_EPARTIAL);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(ps_file_open_quiet(&closed, "x", &fd, NULL),
	    PS_EPARTIAL);
	assert_int_equal(ps_dir_open_quiet(&closed, "x", &fd), PS_EPARTIAL);
	msg = capture_end(saved);
	assert_string_equal(msg, "");

	assert_int_equal(ps_file_open_quiet(&f->r, "d/reg", &fd, &st), PS_OK);
	assert_int_equal(st.st_size, 3);
	close(fd);
	assert_int_equal(ps_dir_open_quiet(&f->r, "d", &fd), PS_OK);
	close(fd);

	saved = capture_begin();
	assert_int_equal(ps_file_open_quiet(&f->r, "link/x", &fd, NULL),
	    PS_EPARTIAL);
	assert_int_equal(ps_file_open_quiet(&f->r, "d", &fd, NULL),
	    PS_EPARTIAL);
	assert_int_equal(ps_dir_open_quiet(&f->r, "link", &fd), PS_EPARTIAL);
	assert_int_equal(ps_file_open_quiet(&f->r, "../x", &fd, NULL),
	    PS_EUSAGE);
	msg = capture_end(saved);
	assert_non_null(strstr(msg, "refusing to follow symlink: link\n"));
	assert_non_null(strstr(msg, "d: not a regular file"));
	assert_non_null(strstr(msg, "refusing unsafe path '../x'"));
}

static void
test_commit_onto_dir(void **state)
{
	struct fx *f = *state;
	struct ps_tmp t;

	assert_int_equal(mkdir(at(f->root, "dir"), 0755), 0);
	/* Caught early... */
	assert_int_equal(ps_tmp_create(&f->r, "dir", &t), PS_EPARTIAL);
	ps_tmp_abort(&t);
	/* ...or at commit, when the directory appears meanwhile. */
	assert_int_equal(ps_tmp_create(&f->r, "late", &t), PS_OK);
	assert_int_equal(mkdir(at(f->root, "late"), 0755), 0);
	write_file(at(f->root, "late/keep"), "k");
	assert_int_equal(ps_tmp_commit(&t, 0644, 1, 0), PS_EPARTIAL);
	ps_tmp_abort(&t);
	assert_null(find_entry(f->root, PS_TMP_PREFIX));
	assert_file_is(at(f->root, "late/keep"), "k");
	assert_int_equal(mkdir(at(f->root, "empty"), 0755), 0);
	assert_int_equal(ps_tmp_create(&f->r, "empty2", &t), PS_OK);
	assert_int_equal(mkdir(at(f->root, "empty2"), 0755), 0);
	assert_int_equal(ps_tmp_commit(&t, 0644, 1, 0), PS_EPARTIAL);
	ps_tmp_abort(&t);
	assert_null(find_entry(f->root, PS_TMP_PREFIX));
}

static void
test_root_open(void **state)
{
	struct fx *f = *state;
	struct ps_root r2;

	assert_int_equal(ps_root_open(at(f->root, "no/such"), 0, &r2),
	    PS_EPEER);
	ps_root_close(&r2);
	/* Only the last component is made: never a copy on the wrong disk. */
	assert_int_equal(ps_root_open(at(f->root, "no/such"), PS_ROOT_CREATE,
	    &r2), PS_EPEER);
	assert_int_equal(access(at(f->root, "no"), F_OK), -1);
	ps_root_close(&r2);
	assert_int_equal(ps_root_open(at(f->root, "new"), PS_ROOT_CREATE,
	    &r2), PS_OK);
	assert_true(r2.fd >= 0);
	ps_root_close(&r2);
	assert_int_equal(ps_root_open(at(f->root, "later"), PS_ROOT_PROBE,
	    &r2), PS_OK);
	assert_int_equal(r2.fd, -1);
	assert_int_equal(access(at(f->root, "later"), F_OK), -1);
	ps_root_close(&r2);
	assert_int_equal(ps_root_open(at(f->root, "no/such"), PS_ROOT_PROBE,
	    &r2), PS_EPEER);
	ps_root_close(&r2);
	write_file(at(f->root, "plain"), "x");
	assert_int_equal(ps_root_open(at(f->root, "plain"), 0, &r2),
	    PS_EPEER);
	assert_int_equal(ps_root_open(at(f->root, "plain"), 1, &r2),
	    PS_EPEER);
	assert_int_equal(ps_root_open("", 0, &r2), PS_EUSAGE);
	/* A symlink in ROOT's own path is the admin's choice: followed. */
	assert_int_equal(symlink(f->out, at(f->root, "alias")), 0);
	assert_int_equal(ps_root_open(at(f->root, "alias"), 0, &r2), PS_OK);
	ps_root_close(&r2);
}

/* Directories that overlap: the same, or one inside the other. */
static void
test_path_nested(void **state)
{
	(void)state;
	assert_int_equal(ps_path_nested("/a/b", "/a/b"), 1);
	assert_int_equal(ps_path_nested("/a/b", "/a/b/"), 1);
	assert_int_equal(ps_path_nested("/a/b", "/a/b/c"), 1);
	assert_int_equal(ps_path_nested("/a/b/c/d", "/a/b"), 1);
	assert_int_equal(ps_path_nested("/", "/x"), 1);
	assert_int_equal(ps_path_nested("/x", "/"), 1);
	/* A name that only begins like the other's is beside it. */
	assert_int_equal(ps_path_nested("/a/b", "/a/bc"), 0);
	assert_int_equal(ps_path_nested("/a/bc", "/a/b"), 0);
	assert_int_equal(ps_path_nested("/a/b", "/a/c"), 0);
	assert_int_equal(ps_path_nested("/ab/c", "/a"), 0);
	/* Places on filesystems: the same filesystem, then the paths. */
	assert_int_equal(ps_place_nested("254:0:/srv/a", "254:0:/srv/a/b"), 1);
	assert_int_equal(ps_place_nested("254:0:/", "254:0:/srv"), 1);
	assert_int_equal(ps_place_nested("254:0:/srv/a", "254:1:/srv/a"), 0);
	assert_int_equal(ps_place_nested("254:0:/srv/a", "25:40:/srv/a"), 0);
	assert_int_equal(ps_place_nested("254:0:/srv/a", "254:0:/srv/ab"), 0);
	assert_int_equal(ps_place_nested("254:0:/a", "bad"), 0);
}

/* Where a directory lies: the mount that shows it and the path below. */
static void
test_dir_place(void **state)
{
	struct fx *f = *state;
	const char *last;
	char *a, *b, *r;

	if ((a = ps_dir_place("/")) == NULL)
		skip();		/* no /proc/self/mountinfo */
	assert_non_null(strchr(a, '/'));
	r = ps_dir_resolve(f->root);
	assert_non_null(r);
	b = ps_dir_place(r);
	assert_non_null(b);
	/* It ends in the path's own last component. */
	last = strrchr(r, '/');
	assert_true(strlen(b) >= strlen(last));
	assert_string_equal(b + strlen(b) - strlen(last), last);
	free(a);
	free(b);
	free(r);
	assert_null(ps_dir_place("relative"));
}

/* Resolved as the kernel sees it, also before the last one exists. */
static void
test_dir_resolve(void **state)
{
	struct fx *f = *state;
	char want[PATH_MAX], *r;

	assert_int_equal(symlink(f->out, at(f->root, "alias")), 0);
	r = ps_dir_resolve(at(f->root, "alias"));
	assert_non_null(r);
	assert_string_equal(r, f->out);
	free(r);
	/* Not made yet: its parent resolved, and its name. */
	snprintf(want, sizeof(want), "%s/later", f->out);
	r = ps_dir_resolve(at(f->root, "alias/later/"));
	assert_non_null(r);
	assert_string_equal(r, want);
	free(r);
	assert_null(ps_dir_resolve(at(f->root, "no/such")));
	assert_null(ps_dir_resolve(at(f->root, "alias/later/..")));
	r = ps_dir_resolve("/nonexistent-top-level");
	assert_non_null(r);
	assert_string_equal(r, "/nonexistent-top-level");
	free(r);
}

/* The destination's last component is made; its parent must exist. */
static void
test_dest_open(void **state)
{
	struct fx *f = *state;
	int fd;

	assert_int_equal(ps_dest_open(&f->r, "patches", 0, &fd), PS_EPARTIAL);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(ps_dest_open(&f->r, "patches", 1, &fd), PS_OK);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ps_dest_open(&f->r, "a/b", 1, &fd), PS_EPEER);
	assert_int_equal(access(at(f->root, "a"), F_OK), -1);
	assert_int_equal(ps_dest_open(&f->r, "", 0, &fd), PS_OK);
	close(fd);
	/* A directory lock is held on the destination itself. */
	assert_int_equal(ps_dest_open(&f->r, "patches", 0, &fd), PS_OK);
	assert_int_equal(ps_dir_lock(fd, 0, 0, "patches", NULL, NULL), PS_OK);
	{
		int fd2;

		assert_int_equal(ps_dest_open(&f->r, "patches", 0, &fd2),
		    PS_OK);
		/* flock locks are per open file: a second one is refused. */
		assert_int_equal(ps_dir_lock(fd2, 1, 0, "patches", NULL,
		    NULL), PS_EPEER);
		close(fd2);
	}
	close(fd);
}

/* ---- locks, with a forked child as the other process ---- */

/* Waiting callback of the child: send WHY to the parent. */
static void
notify(const char *why, void *arg)
{
	int fd = *(int *)arg;

	if (write(fd, why, strlen(why)) < 0)
		_exit(70);
	close(fd);
}

/*
 * In the child: open ROOT, try to lock; exit status 0 when the result is
 * WANT, with stderr going to ERRFILE. The parent's lock fd is closed
 * first: a forked copy of it would hold the parent's lock (flock locks
 * belong to the open file description, shared across fork).
 */
static void
child_lock(struct fx *f, int shared, int wait, int want,
    const char *errfile, int notify_fd)
{
	struct ps_root r;
	int fd, rc;

	if (f->r.lockfd >= 0)
		close(f->r.lockfd);

	fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		_exit(71);
	if (ps_root_open(f->root, 0, &r) != PS_OK)
		_exit(72);
	rc = shared ? ps_root_lock_shared(&r, wait, notify, &notify_fd) :
	    ps_root_lock(&r, wait, notify, &notify_fd);
	_exit(rc == want ? 0 : 73);
}

static int
wait_child(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
}

static void
test_lock_nowait(void **state)
{
	struct fx *f = *state;
	char errfile[128], text[512], want[64];
	pid_t pid;

	snprintf(errfile, sizeof(errfile), "%s/err", f->out);
	assert_int_equal(ps_root_lock(&f->r, 0, NULL, NULL), PS_OK);
	fflush(NULL);
	if ((pid = fork()) == 0)
		child_lock(f, 0, 0, PS_EPEER, errfile, -1);
	assert_int_equal(wait_child(pid), 0);
	read_text(errfile, text, sizeof(text));
	snprintf(want, sizeof(want), "(pid %ld since ", (long)getpid());
	assert_non_null(strstr(text, "is locked by another push"));
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, f->root));
	assert_non_null(strchr(text, '\n'));
	assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);

	/* A reader fails the same way while a push holds the lock. */
	if ((pid = fork()) == 0)
		child_lock(f, 1, 0, PS_EPEER, errfile, -1);
	assert_int_equal(wait_child(pid), 0);

	/* After release, the child gets it. */
	ps_root_unlock(&f->r);
	if ((pid = fork()) == 0)
		child_lock(f, 0, 0, PS_OK, errfile, -1);
	assert_int_equal(wait_child(pid), 0);
}

static void
test_lock_shared(void **state)
{
	struct fx *f = *state;
	char errfile[128], text[512];
	pid_t pid;

	snprintf(errfile, sizeof(errfile), "%s/err", f->out);
	assert_int_equal(ps_root_lock_shared(&f->r, 0, NULL, NULL), PS_OK);
	fflush(NULL);
	if ((pid = fork()) == 0)
		child_lock(f, 1, 0, PS_OK, errfile, -1);
	assert_int_equal(wait_child(pid), 0);
	if ((pid = fork()) == 0)
		child_lock(f, 0, 0, PS_EPEER, errfile, -1);
	assert_int_equal(wait_child(pid), 0);
	read_text(errfile, text, sizeof(text));
	assert_non_null(strstr(text, "is locked by another process"));
	ps_root_unlock(&f->r);
}

static void
test_lock_wait(void **state)
{
	struct fx *f = *state;
	char errfile[128], text[512] = "";
	int p[2], status;
	ssize_t n;
	pid_t pid;

	snprintf(errfile, sizeof(errfile), "%s/err", f->out);
	assert_int_equal(ps_root_lock(&f->r, 0, NULL, NULL), PS_OK);
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		close(p[0]);
		child_lock(f, 0, 1, PS_OK, errfile, p[1]);
	}
	close(p[1]);
	/* The callback text arrives, then the child stays blocked. */
	n = read(p[0], text, sizeof(text) - 1);
	assert_true(n > 0);
	text[n] = '\0';
	assert_non_null(strstr(text, "is locked by another push (pid "));
	usleep(200000);
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	ps_root_unlock(&f->r);
	assert_int_equal(wait_child(pid), 0);
	/* Callback called exactly once: the pipe is at EOF now. */
	assert_int_equal(read(p[0], text, sizeof(text)), 0);
	close(p[0]);
	read_text(errfile, text, sizeof(text));
	assert_string_equal(text, "");
}

/* A killed holder's lock goes away with it. */
static void
test_lock_killed(void **state)
{
	struct fx *f = *state;
	int p[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		struct ps_root r;

		if (ps_root_open(f->root, 0, &r) != PS_OK ||
		    ps_root_lock(&r, 0, NULL, NULL) != PS_OK)
			_exit(1);
		if (write(p[1], "L", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	assert_int_equal(ps_root_lock(&f->r, 0, NULL, NULL), PS_EPEER);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_int_equal(ps_root_lock(&f->r, 0, NULL, NULL), PS_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_tmp_commit),
		T(test_tmp_abort),
		T(test_tmp_long_name),
		T(test_nested_create),
		T(test_symlink_parent),
		T(test_symlink_final),
		T(test_meta_symlink),
		T(test_unsafe_paths),
		T(test_remove_ops),
		T(test_quiet_open),
		T(test_commit_onto_dir),
		T(test_root_open),
		T(test_dest_open),
		T(test_path_nested),
		T(test_dir_resolve),
		T(test_dir_place),
		T(test_lock_nowait),
		T(test_lock_shared),
		T(test_lock_wait),
		T(test_lock_killed),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
