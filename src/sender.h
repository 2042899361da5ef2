/*
 * sender.h — the side of a session that sends files: the console for a
 * push. Given its own manifest and the receiver's, it plans the changes
 * (syncplan.h) and streams them: new files whole and zstd-compressed,
 * changed files as COPY ops for the blocks the receiver already has and
 * librsync deltas for the rest, many files in flight, the work spread
 * over a pool of threads.
 */
#ifndef PS_SENDER_H
#define PS_SENDER_H

#include <stdint.h>
#include <stdio.h>

#include "manifest.h"
#include "pool.h"
#include "wire.h"

struct ps_send_opts {
	int whole_file;		/* send changed files whole */
	int checksum;		/* compare content even when size+mtime match */
	int delete;		/* remove what the sender does not have */
	long long max_delete;	/* refuse deleting more files; -1: no limit */
	int dry_run;		/* plan and print only */
	FILE *itemize;		/* one line per change, or NULL */
	const char *label;	/* "server" or "server/component" for messages */
	const char *prefix;	/* printed before itemized paths, or NULL */
	struct ps_pool *pool;	/* workers (shared by sessions) */
	/* Progress: bytes of file content done, and to do, added atomically. */
	uint64_t *progress_bytes;
	uint64_t *progress_total;
	uint64_t *progress_files;	/* files put in place */
};

struct ps_send_stats {
	uint64_t files;		/* files transferred (new or changed) */
	uint64_t deleted;	/* files deleted */
	uint64_t meta;		/* files whose mode or time only was set */
	uint64_t literal;	/* bytes sent as data or delta literals */
	uint64_t matched;	/* bytes the receiver took from its copy */
	uint64_t total;		/* sizes of the files to transfer */
	uint64_t nsend;		/* files planned for transfer */
	uint32_t errors;	/* files that failed */
};

/*
 * Run one component after OPEN and the receiver's MANIFEST (DST): make the
 * receiver's tree equal SRC, read from the directory open at SRCFD.
 * Returns PS_OK, PS_EPARTIAL when some files failed (each named on
 * stderr), PS_EVERIFY when a file failed verification twice, PS_EPEER when
 * the stream broke (the reason is printed).
 */
int ps_send(struct ps_wire *w, int srcfd, const struct ps_manifest *src,
    const struct ps_manifest *dst, const struct ps_send_opts *o,
    struct ps_send_stats *st);

/*
 * Receive an encoded manifest (MFDATA... MFEND) into M, printing NOTICE
 * messages with LABEL as they come. Returns PS_OK, or the ERROR code the
 * peer sent (its message printed), or PS_EPEER.
 */
int ps_recv_manifest(struct ps_wire *w, const char *label,
    struct ps_manifest *m);

#endif
