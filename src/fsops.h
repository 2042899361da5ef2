/*
 * fsops.h — the server side's file operations under ROOT.
 *
 * Every access below ROOT goes through openat-family calls relative to the
 * ROOT directory fd, and every path component is opened with O_NOFOLLOW
 * (plus O_DIRECTORY for directories). A symlink anywhere below ROOT, in a
 * parent directory or where a file goes, therefore can never make
 * patchsync read or write outside ROOT (SPEC section 10, guarantee 3).
 * Symlinks in ROOT's own path, which the admin chose, are followed.
 *
 * Paths given to this module ("REL") are relative, already-decoded bytes
 * and must pass ps_path_ok(); anything else is refused with an error even
 * though callers are expected to have checked already.
 *
 * Conventions for every function returning int: PS_OK on success; on
 * failure exactly one ps_err line naming the relative path (escaped with
 * ps_escape) and the reason, a ps_result code (PS_EPARTIAL for a file
 * system problem unless said otherwise), and errno left at the cause
 * (EINVAL for a refused path, ELOOP for a refused symlink), so callers can
 * tell e.g. ENOSPC from EACCES. "No space left" (ENOSPC, EDQUOT) always
 * reads "no space left on device writing REL".
 */
#ifndef PS_FSOPS_H
#define PS_FSOPS_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

/* Names of hidden temporaries start with this (see ps_tmp_create). */
#define PS_TMP_PREFIX ".psync-tmp."

/* patchsync's own directory under ROOT: lock, caches. */
#define PS_META_DIR ".patchsync"

/* An open server root. */
struct ps_root {
	int fd;			/* ROOT (O_DIRECTORY); -1 when closed */
	char *path;		/* ROOT as given, for messages */
	int lockfd;		/* .patchsync/lock while locked, else -1 */
	int lock_excl;		/* the lock held is exclusive */
};

#define PS_ROOT_EXISTING	0	/* ROOT must exist */
#define PS_ROOT_CREATE		1	/* made when missing */
#define PS_ROOT_PROBE		2	/* may be missing when its parent is
					   there (a dry run): R->fd is -1 */

/*
 * Open ROOT (PATH as the admin gave it; symlinks in it are followed) with
 * O_DIRECTORY. With CREATE (PS_ROOT_*), PATH itself is made when missing,
 * but never its parents (as rsync does: an unmounted share or a typo must
 * not get a copy on the wrong disk); a missing parent is named in the
 * error.
 * Returns PS_OK; PS_EPEER when PATH (or, with CREATE, its parent) does
 * not exist or is not a directory; PS_EUSAGE for an empty PATH;
 * PS_EPARTIAL for permission and other file system errors. R is always
 * initialised, so ps_root_close() is safe after a failure.
 */
int ps_root_open(const char *path, int create, struct ps_root *r);

/* Release the lock, if held, and close ROOT. Safe to call twice. */
void ps_root_close(struct ps_root *r);

/*
 * Callback of a waiting lock: WHY is the one-line reason, e.g.
 * "/srv/ps is locked by another push (pid 42 since 2026-11-25 10:00:00)".
 */
typedef void (*ps_lock_wait_fn)(const char *why, void *arg);

/*
 * Take the exclusive ROOT lock (flock LOCK_EX on ROOT/.patchsync/lock,
 * creating ROOT/.patchsync mode 0755 and the lock file mode 0644 when
 * missing; a symlink at either is refused). On success our pid and the
 * time are recorded in the lock file so that others can name the holder.
 * Holding the shared lock already, the caller gets it exclusive (the
 * shared one is released first); holding the exclusive one, nothing
 * changes.
 *
 * When another process holds the lock: with WAIT == 0, print
 * "ROOT is locked by another push (pid N since TIME)" and return PS_EPEER
 * at once; with WAIT != 0, call WAITING (if not NULL) once with that text
 * and wait until the lock is free, or until an interruption (ps_intr_fd):
 * then PS_EINTR, without a message. Other failures return PS_EPARTIAL.
 *
 * The lock is released by ps_root_unlock(), ps_root_close(), or when the
 * process ends in any way (the kernel drops flock locks on close).
 */
int ps_root_lock(struct ps_root *r, int wait, ps_lock_wait_fn waiting,
    void *arg);

/*
 * As ps_root_lock, but a shared lock (LOCK_SH) for readers (report,
 * pull): many readers may hold it at once; pushes wait for them and they
 * wait for a push. Readers do not record themselves. On a read-only ROOT
 * where the lock file cannot be created, the reader proceeds without a
 * lock (nobody can be pushing there) and returns PS_OK.
 */
int ps_root_lock_shared(struct ps_root *r, int wait, ps_lock_wait_fn waiting,
    void *arg);

/*
 * Release the lock taken by ps_root_lock or ps_root_lock_shared. An
 * exclusive holder first clears its record from the lock file. No-op when
 * no lock is held.
 */
void ps_root_unlock(struct ps_root *r);

/*
 * flock the open directory DIRFD itself, shared or exclusive: the lock of
 * a destination that has no ROOT/.patchsync of its own (a directory push,
 * SPEC section 3), and of every destination while a push writes into it.
 * LABEL names the directory in messages. Waiting as for ps_root_lock.
 * The lock goes when DIRFD is closed.
 */
int ps_dir_lock(int dirfd, int shared, int wait, const char *label,
    ps_lock_wait_fn waiting, void *arg);

/*
 * Open the destination ROOT/DEST (DEST "" is ROOT itself) into *DIRFD.
 * With CREATE, DEST's last component is made when missing; its parent
 * must exist (a missing parent is named: PS_EPEER). Without CREATE, a
 * missing DEST returns PS_EPARTIAL with errno ENOENT and no message.
 * A symlink anywhere below ROOT is refused.
 */
int ps_dest_open(struct ps_root *r, const char *dest, int create,
    int *dirfd);

/*
 * Open the regular file REL below the directory DIRFD for reading, never
 * leaving DIRFD's tree and never following a symlink on the way
 * (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel
 * has it, a walk of O_NOFOLLOW components otherwise), and fstat it into
 * *ST. The one way files are opened for reading below a root: the
 * console's sender, the manifest builder and the receiver all use it.
 * Silent: returns 0, or -1 with errno (ELOOP: a symlink on the way,
 * EISDIR / EINVAL: not a regular file, EINVAL: REL is not a safe path).
 */
int ps_open_beneath(int dirfd, const char *rel, int *fd, struct stat *st);

/*
 * fchmod FD (REL, for messages) to MODE & 0777. A filesystem that keeps
 * no permission bits (ENOSYS, EOPNOTSUPP, or EPERM to the file's owner:
 * FAT, CIFS without Unix extensions) is not a failure: the file stays as
 * it is, and ps_mode_unkept says so later. Returns PS_OK or PS_EPARTIAL
 * (said).
 */
int ps_set_mode(int fd, uint32_t mode, const char *rel);
/* The errno of a mode not kept since the last call, or 0. */
int ps_mode_unkept(void);

/*
 * Directory PATH as the kernel resolves it (absolute, symlinks followed),
 * also when its last component does not exist yet (a ROOT or a console
 * directory that will be made): malloc'd, or NULL when neither it nor
 * its parent resolves.
 */
char *ps_dir_resolve(const char *path);

/* The directory part of PATH ("." when it has none), malloc'd. */
char *ps_parent_of(const char *path);

/*
 * 1 when the resolved directories A and B are the same or one is inside
 * the other ("/a/b" and "/a/bc" are not), else 0.
 */
int ps_path_nested(const char *a, const char *b);

/*
 * Where the resolved directory PATH (ps_dir_resolve) lies on its
 * filesystem, from /proc/self/mountinfo: "MAJOR:MINOR" and the path from
 * that filesystem's root, through the mount that shows PATH. A bind
 * mount of a directory, or of one around it, gives the directory's own
 * place. malloc'd, or NULL when the mounts cannot be read.
 */
char *ps_dir_place(const char *path);

/*
 * 1 when the places A and B (ps_dir_place) are the same directory or
 * one is inside the other, on the same filesystem.
 */
int ps_place_nested(const char *a, const char *b);

/*
 * Is REL inside patchsync's own ROOT/.patchsync (first component)? The
 * server role uses this to refuse peer paths there. Returns 1 or 0.
 */
int ps_path_is_meta(const char *rel);

/*
 * Open directory REL below ROOT (NULL or "" means ROOT itself) for
 * reading into *DIRFD (a new fd, O_CLOEXEC; the caller closes it). Each
 * component is opened with O_DIRECTORY|O_NOFOLLOW; with CREATE, missing
 * ones are made (mode 0755 less umask; EEXIST from a racing creator is
 * fine). A symlink component is refused with
 * "refusing to follow symlink: REL/COMP". Returns PS_OK or PS_EPARTIAL
 * (PS_EUSAGE for a path that fails ps_path_ok); *DIRFD is -1 on failure.
 */
int ps_dir_open(struct ps_root *r, const char *rel, int create, int *dirfd);

/*
 * As ps_dir_open without CREATE, but a missing directory (or a closed
 * ROOT) returns PS_EPARTIAL with errno ENOENT and prints nothing.
 */
int ps_dir_open_quiet(struct ps_root *r, const char *rel, int *dirfd);

/*
 * As ps_file_open, but a missing file (or parent) returns PS_EPARTIAL with
 * errno ENOENT and prints nothing; other problems are reported as usual.
 */
int ps_file_open_quiet(struct ps_root *r, const char *rel, int *fd,
    struct stat *st);

/*
 * Open the existing regular file REL for reading into *FD (O_CLOEXEC) and
 * fstat it into *ST (may be NULL). A symlink (final or parent component)
 * or a non-regular file (directory, FIFO, device...) is refused. Returns
 * PS_OK or PS_EPARTIAL (errno ENOENT when it is missing); *FD is -1 on
 * failure.
 */
int ps_file_open(struct ps_root *r, const char *rel, int *fd, struct stat *st);

/*
 * A hidden temporary that becomes REL on commit. Treat as opaque except
 * for FD, which the caller writes the new content to (or use
 * ps_tmp_write). Zero-initialised or after create/commit/abort it is in a
 * state where ps_tmp_abort is a safe no-op.
 */
struct ps_tmp {
	int live;		/* created and neither committed nor aborted */
	int dirfd;		/* the target's directory */
	int fd;			/* the temporary, O_RDWR */
	char *name;		/* temporary's name in DIRFD */
	char *base;		/* final name in DIRFD */
	char *rel;		/* REL, for messages */
	int defer_dirsync;	/* the caller fsyncs the directory later */
	pthread_mutex_t *nslock; /* held around the rename, when set */
};

/*
 * Create a hidden temporary for REL in REL's own directory (made, with
 * its parents, as by ps_dir_open with CREATE), named
 * PS_TMP_PREFIX "<base>.<6 random chars>" with <base> cut so that the
 * name fits NAME_MAX; O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600. Fails
 * early when REL is an existing directory. Returns PS_OK, PS_EUSAGE for a
 * refused path, or PS_EPARTIAL. T is always initialised.
 */
int ps_tmp_create(struct ps_root *r, const char *rel, struct ps_tmp *t);

/*
 * Write all N bytes at P to the temporary (retrying short writes and
 * EINTR). Returns PS_OK or PS_EPARTIAL ("no space left on device writing
 * REL" for ENOSPC/EDQUOT). The caller then calls ps_tmp_abort.
 */
int ps_tmp_write(struct ps_tmp *t, const void *p, size_t n);

/*
 * Make the temporary REL: fchmod to MODE & 0777 (set-id and sticky bits
 * are never set by a push), set the modification time (after all writes;
 * access time is left alone), fsync, close, and renameat onto the final
 * name in the same directory, then fsync the directory (unless
 * T->defer_dirsync: the caller then syncs it, once for many files).
 * With T->nslock set (after create) the rename holds that mutex: threads
 * that create and rename in the same directories then wait for each
 * other asleep, not spinning on the directory's lock in the kernel.
 * rename never follows the destination: a symlink or other non-directory
 * at REL is replaced itself; a directory at REL is an error. MTIME_NSEC
 * must be below 1000000000. On success T is released (ps_tmp_abort is a no-op);
 * on failure the temporary still exists and the caller calls ps_tmp_abort.
 * Returns PS_OK or PS_EPARTIAL.
 */
int ps_tmp_commit(struct ps_tmp *t, uint32_t mode, int64_t mtime_sec,
    uint32_t mtime_nsec);

/*
 * Close and unlink the temporary and release T. Safe to call twice, after
 * a failed create and after commit (then a no-op). Keeps errno.
 */
void ps_tmp_abort(struct ps_tmp *t);

/*
 * Remove the file REL (anything but a directory: a symlink is removed
 * itself). Already gone (REL or a parent missing) counts as success.
 * Returns PS_OK, PS_EUSAGE for a refused path, or PS_EPARTIAL.
 */
int ps_unlink(struct ps_root *r, const char *rel);

/*
 * Remove the empty directory REL (never a symlink). Already gone counts
 * as success. Returns PS_OK, PS_EUSAGE for a refused path, or PS_EPARTIAL
 * (e.g. "directory not empty").
 */
int ps_rmdir(struct ps_root *r, const char *rel);

/*
 * Make directory REL and its missing parents (parents mode 0755), then
 * set REL's mode to MODE & 0777 (also when REL already existed). A
 * symlink or file in the way is refused. Returns PS_OK, PS_EUSAGE for a
 * refused path, or PS_EPARTIAL.
 */
int ps_mkdir(struct ps_root *r, const char *rel, uint32_t mode);

/*
 * Set the modification time of REL (NULL or "" for ROOT); meant for
 * directories, whose times must be set after their contents. Never
 * follows a symlink. Access time is left alone. Returns PS_OK, PS_EUSAGE
 * for a refused path, or PS_EPARTIAL.
 */
int ps_set_times(struct ps_root *r, const char *rel, int64_t sec,
    uint32_t nsec);

#endif
