/*
 * syncplan.h — what a sender must do to make the receiver's tree an exact
 * copy of its own, decided from the two manifests alone (pure logic).
 */
#ifndef PS_SYNCPLAN_H
#define PS_SYNCPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

enum ps_act_kind {
	PS_ACT_DELETE,		/* remove dst (file, or empty dir) */
	PS_ACT_MKDIR,		/* make directory src */
	PS_ACT_SEND,		/* send file src (dst: old version or NULL) */
	PS_ACT_META,		/* same content: set mode and mtime of src */
	PS_ACT_DIRMETA		/* set a directory's mode and mtime, last */
};

/* What changed, for -i/--itemize. */
#define PS_CH_NEW	0x01
#define PS_CH_SIZE	0x02
#define PS_CH_TIME	0x04
#define PS_CH_PERMS	0x08
#define PS_CH_CONTENT	0x10

struct ps_action {
	uint8_t kind;		/* enum ps_act_kind */
	uint8_t changes;	/* PS_CH_* */
	uint8_t early;		/* taken by the plan's early hook */
	const struct ps_entry *src;	/* console side (NULL for DELETE) */
	const struct ps_entry *dst;	/* receiver side, or NULL */
};

struct ps_syncplan {
	struct ps_action *a;	/* deletes (deepest first), mkdirs,
				   sends, metas, dirmetas */
	size_t n;
	size_t cap;
	struct ps_entry **own;	/* the copies the actions point to */
	size_t nown, capown;
	size_t ndelete_files;	/* regular files among the deletes */
	size_t nsend;
	uint64_t send_bytes;	/* sizes of the files to send */
	size_t nconflict;	/* dst entries of another type than src's,
				   kept because deleting was not allowed */
	size_t nconflict_file;	/* of which files where src has a
				   directory: what it holds is left out */
};

struct ps_plan_opts {
	int delete;		/* remove what src does not have */
	/*
	 * Called from ps_syncplan_stream as soon as a new directory or a
	 * file to send is known (the receiver's stream has passed its
	 * path), except where something must be deleted first: returns 1
	 * when it carried the action out (the action is then marked early).
	 * NULL: none.
	 */
	int (*early)(void *arg, const struct ps_action *a);
	void *early_arg;
};

/*
 * Compare SRC (what should be) with DST (what the receiver has). A file
 * is current when its size and content hash match (both manifests carry
 * hashes); when only its mode or mtime differ it needs only META. Paths
 * SRC could not read (ps_manifest_unknown) are neither sent nor deleted.
 * Directories whose mode or time differ, or whose contents change, get a
 * DIRMETA at the end. A directory on the receiver where SRC has a file
 * (or the reverse) is deleted first when DELETE is set; otherwise it is
 * counted in nconflict and the file is not sent.
 */
void ps_syncplan_make(const struct ps_manifest *src,
    const struct ps_manifest *dst, const struct ps_plan_opts *o,
    struct ps_syncplan *p);

/*
 * The same from two streams, holding neither whole: the plan keeps
 * copies of the entries its actions name (and of the directories being
 * walked), nothing else. UNKNOWN holds SRC's unreadable paths (or is
 * NULL). Whether both streams ended cleanly is the caller's to check
 * before acting on the plan.
 */
void ps_syncplan_stream(struct ps_eiter *src, const struct ps_manifest *unknown,
    struct ps_eiter *dst, const struct ps_plan_opts *o,
    struct ps_syncplan *p);
void ps_syncplan_free(struct ps_syncplan *p);

/*
 * The itemize string of an action in rsync 3.x's 11-column form
 * (YXcstpoguax), in OUT (12 bytes): ">f+++++++++" new file,
 * ">fcst......" changed (c content, s size, t time, p perms),
 * ".f..tp....." metadata only, "cd+++++++++" new directory,
 * "*deleting  " removal.
 */
void ps_itemize(const struct ps_action *a, char out[12]);

/*
 * What the plan's conflicts are, for "SERVER: ...; not replaced without
 * --delete": NDIR directories where the sender has files and NFILE files
 * where it has directories. Returns BUF.
 */
char *ps_conflicts_text(size_t ndir, size_t nfile, char *buf, size_t n);

#endif
