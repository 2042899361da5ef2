/*
 * sender.h — the side of a session that sends files: the console for a
 * push, the server for a refresh. Given its own manifest and the
 * receiver's, it plans the changes (syncplan.h) and streams them: new
 * files whole and zstd-compressed, changed files as COPY ops for the
 * blocks the receiver already has and librsync deltas for the rest, many
 * files in flight, the work spread over a pool of threads.
 */
#ifndef PS_SENDER_H
#define PS_SENDER_H

#include <stdint.h>
#include <stdio.h>

#include "manifest.h"
#include "pool.h"
#include "session.h"
#include "syncplan.h"

struct ps_share;

struct ps_send_opts {
	int whole_file;		/* send changed files whole */
	int delete;		/* remove what the sender does not have */
	long long max_delete;	/* refuse deleting more files; -1: no limit */
	int dry_run;		/* plan and print only */
	FILE *itemize;		/* -i: one line per change, or NULL */
	FILE *verbose;		/* -v: one line per file sent or deleted */
	const char *server;	/* printed before itemized lines, or NULL */
	const char *prefix;	/* printed before paths (the dest), or NULL */
	const char *label;	/* the console directory, for messages */
	struct ps_pool *pool;	/* workers of this session */
	/*
	 * Files sent whole, and deltas up to their first wait for the
	 * receiver's sums (or whole, with a plan already made for another
	 * server), go from the planning thread itself, not the pool: with
	 * as many sessions as cores, a session's own workers only add
	 * hand-offs.
	 */
	int inline_sends;
	struct ps_share *share;	/* plans and data shared by the push's
				   sessions (share.h), or NULL */
	/* Progress: bytes of file content done, and to do, added atomically. */
	uint64_t *progress_bytes;
	uint64_t *progress_total;
	uint64_t *progress_files;	/* files put in place */
	uint64_t *progress_nfiles;	/* files to put in place */
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
 * Run one component after OPEN and the receiver's manifest: carry out
 * PLAN (made from the two manifests, both read to their intact end),
 * reading the files from the directory open at SRCFD. Returns PS_OK,
 * PS_EPARTIAL when some files failed (each named on stderr), PS_EVERIFY
 * when a file failed verification twice, or the session's failure.
 */
int ps_send(struct ps_sess *s, int srcfd, const struct ps_syncplan *plan,
    const struct ps_send_opts *o, struct ps_send_stats *st);

/*
 * The same in two steps, so that files can go while the receiver's
 * manifest is still coming (an OPEN with PS_OF_EARLY): begin before the
 * merge; offer each action as the merge makes it to ps_send_early, which
 * returns 1 when it sent it (a new directory, or a file sent whole, while
 * fewer than the window's files are in flight: nothing is answered
 * before the manifest ends, so it never waits) and 0 when the plan is to
 * carry it; then ps_send_finish with the whole plan, whose early actions
 * (marked early) it skips, or with NULL when the component failed
 * meanwhile (it waits for the files begun and frees everything). O and
 * ST must last until ps_send_finish returns.
 */
struct ps_sender;
struct ps_sender *ps_send_begin(struct ps_sess *s, int srcfd,
    const struct ps_send_opts *o, struct ps_send_stats *st);
int ps_send_early(struct ps_sender *snd, const struct ps_action *a);
int ps_send_finish(struct ps_sender *snd, const struct ps_syncplan *plan);

#endif
