/*
 * session.h — one conversation between a console and a server role, the
 * same object for every role (push, report, refresh, server check):
 *
 *   - setting up: the transport (console side), the greeting (HELLO both
 *     ways, within 30 s), the timeout each side announced;
 *   - one receive loop (ps_sess_recv) that every role uses: it skips
 *     KEEPALIVE, shows NOTICE text, turns an ERROR frame into the
 *     session's failure, and escapes all peer text once, before it can
 *     reach a terminal;
 *   - one failure record: the first reason the session failed, said once
 *     (printed on the console side, sent to the console on the server
 *     side), and its result code;
 *   - keepalives, so a side that is busy (hashing a big tree, waiting
 *     for a lock) is not taken for a dead one;
 *   - the manifest exchange (MFDATA... MFEND), bounded.
 *
 * Threads: any thread may send and call ps_sess_fail; one thread
 * receives at a time.
 */
#ifndef PS_SESSION_H
#define PS_SESSION_H

#include <pthread.h>
#include <stdint.h>

#include "manifest.h"
#include "msg.h"
#include "transport.h"
#include "wire.h"

#define PS_GREETING_SECS 30	/* the greeting's own limit (or the
				   timeout, when that is shorter) */
#define PS_TIMEOUT_DEFAULT 120	/* --timeout when not given */

struct ps_sess {
	struct ps_wire *w;
	char *peer;		/* who we talk to, for messages */
	uint8_t role;		/* ours: PS_ROLE_CONSOLE or PS_ROLE_SERVER */
	unsigned timeout;	/* ours, seconds; 0: none */
	unsigned peer_timeout;	/* the peer's, from its HELLO */

	pthread_mutex_t mu;	/* guards rc, why, provisional, nerrors */
	int rc;			/* first failure, PS_OK while healthy */
	char why[512];		/* its reason, one line, escaped */
	int provisional;	/* a send failed: the peer may have said why */
	uint32_t nerrors;	/* error NOTICEs received */

	/* Keepalives: a thread sends KEEPALIVE when we have been quiet. */
	pthread_t ka;
	int ka_running;
	int ka_stop;		/* guarded by mu */
	pthread_cond_t ka_cv;

	struct ps_conn conn;	/* console side: the child (ssh, serve) */
	int have_conn;
};

struct ps_sess_opts {
	const char *label;	/* the server's name, for messages */
	const char *url;
	const char *rsh;	/* NULL: ssh */
	const char *remote_path;	/* NULL: patchsync */
	unsigned timeout;	/* seconds, 0: none */
	uint64_t bwlimit;	/* bytes per second, 0: none */
	int relay;		/* a relay: ask for serve --relay */
	int pipe_size;		/* ps_conn_opts.pipe_size */
};

/*
 * Console side: start the server role for O->url (a local child over a
 * socketpair, or ssh / --rsh) and greet it. On failure the reason has
 * been said and recorded (S->why). S must be closed with ps_sess_close
 * either way. Returns PS_OK, PS_EUSAGE (a bad URL or remote shell) or
 * PS_EPEER / PS_EINTR.
 */
int ps_sess_connect(struct ps_sess *s, const struct ps_sess_opts *o);

/*
 * A session on descriptors already connected to the peer (the server
 * role on its standard input and output; tests): greet as ROLE. PEER
 * names the other side in messages. Close with ps_sess_close.
 */
int ps_sess_start(struct ps_sess *s, uint8_t role, int rfd, int wfd,
    unsigned timeout, const char *peer);

/*
 * End the session: stop keepalives; a healthy console sends BYE; both
 * sides flush and close their end. The console then waits for its child
 * (bounded: a child that does not exit is terminated). Returns the
 * session's result (the child's failure counts when nothing else
 * failed), and in *WHY (may be NULL) its reason, malloc'd, when it
 * failed. Frees everything. Safe after a failed connect.
 */
int ps_sess_close(struct ps_sess *s, char **why);

/*
 * The next frame for the role: KEEPALIVE is skipped, NOTICE shown (or,
 * on the server side, dropped), ERROR becomes the session's failure.
 * Returns PS_OK with *TYPE and PAYLOAD, or the session's failure code
 * (already said).
 */
int ps_sess_recv(struct ps_sess *s, uint8_t *type, struct buf *payload);

/*
 * Record a failure (the first one wins), say it once, return RC. On the
 * console side the line is "patchsync: PEER: REASON"; the server side
 * also sends it to the console in an ERROR frame.
 */
int ps_sess_fail(struct ps_sess *s, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Record RC as the session's failure when its reason was said already
 * (by the code that failed, or another thread): as ps_sess_fail, without
 * printing. Returns RC.
 */
int ps_sess_said(struct ps_sess *s, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Sending failed with RC (from ps_wire_send/flush). A peer that went
 * away usually said why first (an ERROR frame still on its way): the
 * session is failed at once, but the reason is taken from that ERROR
 * when one can still be read (by the next ps_sess_recv, or at close),
 * else from the wire. Returns RC.
 */
int ps_sess_send_failed(struct ps_sess *s, int rc);

/* The peer broke the protocol with a frame of TYPE here (PS_EPEER). */
int ps_sess_unexpected(struct ps_sess *s, uint8_t type, const char *where);

/* Decode PAYLOAD as TYPE into M; a malformed frame fails the session. */
int ps_sess_decode(struct ps_sess *s, uint8_t type, const struct buf *payload,
    void *m);

/* Failed already? Returns the code (PS_OK while healthy). */
int ps_sess_rc(struct ps_sess *s);
/* Copy of the failure's reason, or NULL while healthy. */
char *ps_sess_why(struct ps_sess *s);

/* Send a NOTICE (server side: how a per-file error reaches the user). */
void ps_sess_notice(struct ps_sess *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));


/* Console: OPEN component DEST (flags PS_OF_*) and flush it. */
int ps_sess_open(struct ps_sess *s, int mode, uint32_t flags,
    const char *dest);

/* Console, after a report's manifest: DONE, then the server's DONEACK. */
int ps_sess_report_done(struct ps_sess *s);
/*
 * Send a manifest (portable form, zstd-compressed) as MFDATA frames and
 * MFEND, an entry at a time, in order: the peer reads it as it comes.
 * FLAGS are the manifest's. add and end return PS_OK or the session's
 * failure; free the sender in any case.
 */
struct ps_sess_mfout;
struct ps_sess_mfout *ps_sess_mfout_begin(struct ps_sess *s, uint32_t flags);
/* Leave the block sums out (the peer asked for lazy sums). */
void ps_sess_mfout_nosums(struct ps_sess_mfout *o);
int ps_sess_mfout_add(struct ps_sess_mfout *o, const struct ps_entry *e);
int ps_sess_mfout_end(struct ps_sess_mfout *o);
void ps_sess_mfout_free(struct ps_sess_mfout *o);

/* The same for the whole manifest M. */
int ps_sess_send_manifest(struct ps_sess *s, const struct ps_manifest *m);

/*
 * Receive the peer's manifest as a stream: ps_sess_mf_next gives each
 * entry (valid until the next call), NULL at the end or on a failure.
 * ps_sess_mf_end reads and checks whatever is left and returns PS_OK
 * only when the whole manifest arrived intact: nothing may be acted on
 * before it says so. Decompression is bounded by what arrives (at most
 * PS_MF_RATIO decoded bytes per compressed byte, plus a little) and by
 * PS_MAX_MANIFEST; a manifest that breaks a rule fails the session.
 */
struct ps_sess_mf;
struct ps_sess_mf *ps_sess_mf_open(struct ps_sess *s);
/*
 * Receive one more frame of it ahead, compressed, to be read later (so
 * that the peer goes on while we cannot read yet). Returns 1 when more
 * may come, 0 at its end, past MF_PREFETCH_MAX bytes, or on a failure.
 */
int ps_sess_mf_prefetch(struct ps_sess_mf *m);
const struct ps_entry *ps_sess_mf_next(struct ps_sess_mf *m);
void ps_sess_mf_eiter(struct ps_sess_mf *m, struct ps_eiter *it);
int ps_sess_mf_end(struct ps_sess_mf *m);
uint32_t ps_sess_mf_flags(struct ps_sess_mf *m);
void ps_sess_mf_free(struct ps_sess_mf *m);

/*
 * The frames from now on (call it before any arrives) go into a running
 * XXH3-128 digest seeded with SEED; FN (if not NULL) is told each
 * frame's index from 0 and the digest after it. ps_sess_mf_digest gives
 * the digest so far (-1 when not hashing).
 */
void ps_sess_mf_hash(struct ps_sess_mf *m, uint64_t seed,
    void (*fn)(void *, uint64_t, const unsigned char *), void *arg);
int ps_sess_mf_digest(const struct ps_sess_mf *m, unsigned char d[16]);
/* Bytes received ahead and not read yet. */
size_t ps_sess_mf_queued(const struct ps_sess_mf *m);
/* 1 when the whole manifest, to its MFEND, is received ahead unread. */
int ps_sess_mf_whole(const struct ps_sess_mf *m);
/*
 * Take such a manifest as read and checked, without decoding it: only
 * for one byte-identical to a manifest that was (its digest matches).
 */
void ps_sess_mf_skip(struct ps_sess_mf *m);

/*
 * Receive the whole manifest into M (as above). Returns PS_OK or the
 * session's failure.
 */
int ps_sess_recv_manifest(struct ps_sess *s, struct ps_manifest *m);

#endif
