/*
 * sender.c — the sending side of a session (the console for a push, the
 * server for a refresh).
 *
 * Threads: the caller's thread plans and queues work; one reader thread
 * takes everything the receiver says (signatures, per-file results), and
 * never writes, so neither side can block the other; pool workers read,
 * compress and delta files and write whole frames. Up to WINDOW files
 * are in flight: nothing waits on a per-file round trip.
 *
 * Verification is the receiver's: it checks every file against the
 * XXH3-128 announced here. A file that fails it (it changed while being
 * read, or the stream was damaged) is hashed again and sent once more,
 * whole; a second failure is reported.
 *
 * Locking: the mutex `mu` guards every field marked "mu" below. A file's
 * state (its regions and their signature buffers) is published under mu
 * before its signature request goes out, so the reader never sees a
 * file that is half set up.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "match.h"
#include "fsops.h"
#include "sender.h"
#include "share.h"
#include "syncplan.h"

#define WINDOW 64		/* files in flight */
#define DELTA_MIN (32u << 10)	/* smaller changed files go whole */
#define SUMS_BUDGET (64u << 20) /* block sums asked for at once, bytes */
#define MATCH_THREADS_MIN (8u << 20)	/* files this big match on 2 cores */
#define MAX_CCTX 64
#define SF_BLK 1024		/* files per block of struct ps_sender */
#define SF_TOP (PS_MAX_FILE_ID / SF_BLK)

struct sfile {
	uint32_t id;
	struct ps_entry ent;	/* what we announce (hash may be refreshed) */
	const struct ps_entry *src;	/* the console's, with its block sums */
	const struct ps_entry *dst;	/* the receiver's version, or NULL */
	int use_delta;
	struct ps_mops ops;	/* the plan: COPY and LITERAL, in order */
	int round;		/* sum requests made (SUMREQ round) */
	int lazy;		/* round 0 asked for the basis's block sums */
	uint32_t fine;		/* block length of this round's sums */
	uint32_t block;		/* block length the ops were made with */
	struct ps_gap *gaps;	/* the regions of this round */
	size_t ngaps;
	struct buf sums;	/* what came of them (mu until complete) */
	uint64_t sums_expect;	/* the bytes they come to */
	int sums_in;		/* mu: the last piece came; its job runs */
	int retried;
	int own_fd;		/* changed: not the shared descriptor */
	int inl;		/* sent from the planning thread, whose
				   loop flushes before it waits */
	int finished;		/* mu */
	int ended;		/* mu: END is out, a RESULT may come */
	uint64_t sent_literal;	/* mu */
};

struct ps_sender {
	struct ps_sess *ss;
	int srcfd;
	const struct ps_send_opts *o;
	struct ps_send_stats *st;	/* mu */
	/*
	 * Files by id, in blocks that never move (jobs hold pointers to
	 * them): blk[id / SF_BLK][id % SF_BLK]. The protocol's ids are
	 * fewer than the files a component may send: the file numbered N
	 * (nf counts them) has id N % nids, and takes its slot over from
	 * the one nids before it once that one is over.
	 */
	struct sfile **blk;
	size_t nf;		/* mu */
	uint32_t nids;

	pthread_mutex_t mu;
	pthread_cond_t cv;	/* anything below changed, or the end */
	unsigned inflight;	/* files sent or queued, no RESULT yet */
	unsigned jobs;		/* pool jobs of this session not finished */
	uint64_t sums_inflight;	/* block sums asked for, not here yet */
	int done_sent;		/* DONE went out: DONEACK may come */
	int ack;		/* DONEACK came */
	int ack_code;
	int worst;		/* worst per-file result */
	int ended;		/* the reader stopped */
	/*
	 * ps_send_early carried actions out: the plan is this sender's own
	 * and marks them. A plan made for another server's identical
	 * manifest marks that one's: here they are all still to do.
	 */
	int took_early;

	pthread_mutex_t zmu;	/* guards cctx, ncctx */
	ZSTD_CCtx *cctx[MAX_CCTX];
	int ncctx;
};

/* File ID (below nf and nids). */
static struct sfile *
sf(struct ps_sender *s, size_t id)
{
	return &s->blk[id / SF_BLK][id % SF_BLK];
}

/* Is ID one that files were sent with (with mu held)? */
static int
id_used(const struct ps_sender *s, uint32_t id)
{
	return id < s->nf && id < s->nids;
}

static void
lock(struct ps_sender *s)
{
	pthread_mutex_lock(&s->mu);
}

static void
unlock(struct ps_sender *s)
{
	pthread_mutex_unlock(&s->mu);
}

/* The session failed (anywhere): wake everyone who waits. */
static int
broken(struct ps_sender *s)
{
	int rc = ps_sess_rc(s->ss);

	if (rc != PS_OK) {
		lock(s);
		pthread_cond_broadcast(&s->cv);
		unlock(s);
	}
	return rc;
}

/* A send failed: record it on the session and wake the waiters. */
static int
send_failed(struct ps_sender *s, int rc)
{
	if (rc == PS_OK)
		return PS_OK;
	(void)ps_sess_send_failed(s->ss, rc);
	broken(s);
	return rc;
}

static void
set_worst(struct ps_sender *s, int code)
{
	if (code > s->worst)
		s->worst = code;
}

static void
progress(struct ps_sender *s, uint64_t n)
{
	if (s->o->progress_bytes != NULL)
		__atomic_fetch_add(s->o->progress_bytes, n, __ATOMIC_RELAXED);
}

/* A file is over, one way or the other (with mu held). */
static void
file_over(struct ps_sender *s, struct sfile *f)
{
	f->finished = 1;
	s->inflight--;
	pthread_cond_broadcast(&s->cv);
}

static void
file_failed(struct ps_sender *s, struct sfile *f, int code)
{
	lock(s);
	s->st->errors++;
	set_worst(s, code);
	file_over(s, f);
	unlock(s);
}

/* ---- zstd contexts, one per concurrent job ---- */

static ZSTD_CCtx *
cctx_get(struct ps_sender *s)
{
	ZSTD_CCtx *c = NULL;

	pthread_mutex_lock(&s->zmu);
	if (s->ncctx > 0)
		c = s->cctx[--s->ncctx];
	pthread_mutex_unlock(&s->zmu);
	if (c == NULL) {
		c = ZSTD_createCCtx();
		if (c == NULL) {
			ps_err("out of memory");
			exit(PS_EPARTIAL);
		}
		ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
	}
	return c;
}

static void
cctx_put(struct ps_sender *s, ZSTD_CCtx *c)
{
	pthread_mutex_lock(&s->zmu);
	if (s->ncctx < MAX_CCTX) {
		s->cctx[s->ncctx++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&s->zmu);
	ZSTD_freeCCtx(c);
}

/* ---- jobs ---- */

struct job {
	struct ps_sender *s;
	struct sfile *f;
	size_t op;		/* piece jobs: the plan op */
};

static void
submit(struct ps_sender *s, void (*fn)(void *), struct sfile *f, size_t op)
{
	struct job *j = xmalloc(sizeof(*j));

	j->s = s;
	j->f = f;
	j->op = op;
	lock(s);
	s->jobs++;
	unlock(s);
	ps_pool_submit(s->o->pool, fn, j);
}

static void
job_done(struct job *j)
{
	struct ps_sender *s = j->s;

	lock(s);
	if (--s->jobs == 0)
		pthread_cond_broadcast(&s->cv);
	unlock(s);
	free(j);
}

/* Open the console's file, naming it with its console path on failure. */
static int
open_src(struct ps_sender *s, struct sfile *f, struct stat *st)
{
	char *e;
	int fd;

	/*
	 * With several servers one descriptor serves them all (it is read
	 * only by offset); a retry, after the file changed, opens its own.
	 */
	if (s->o->share != NULL && !f->retried && !f->own_fd) {
		if ((fd = ps_share_fd_get(s->o->share, s->srcfd, f->ent.path,
		    st)) >= 0)
			return fd;
	} else if (ps_open_beneath(s->srcfd, f->ent.path, &fd, st) == 0) {
		return fd;
	}
	e = ps_escape(f->ent.path, f->ent.path_len);
	ps_err("%s/%s: cannot read: %s", s->o->label, e, errno == ELOOP ?
	    "a symlink is in the way" : errno == EISDIR || errno == EINVAL ?
	    "not a regular file" : strerror(errno));
	free(e);
	return -1;
}

/* Done with a descriptor open_src gave. */
static void
close_src(struct ps_sender *s, int fd)
{
	if (s->o->share != NULL)
		ps_share_fd_put(s->o->share, fd);
	else
		close(fd);
}

static int
changed_since(const struct ps_entry *e, const struct stat *st)
{
	return (uint64_t)st->st_size != e->size ||
	    st->st_mtim.tv_sec != e->mtime_sec ||
	    (uint32_t)st->st_mtim.tv_nsec != e->mtime_nsec;
}

/*
 * The file changed since the manifest was made: describe it as it is now,
 * so the receiver checks against the content we actually send.
 */
static int
refresh(struct ps_sender *s, struct sfile *f, int fd, const struct stat *st)
{
	char *e;

	f->ent.size = (uint64_t)st->st_size;
	f->ent.mtime_sec = st->st_mtim.tv_sec;
	f->ent.mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	f->ent.mode = st->st_mode & 07777;
	free(f->ent.blocks);
	f->ent.blocks = NULL;
	if (ps_hash_fd(fd, &f->ent) != 0) {
		e = ps_escape(f->ent.path, f->ent.path_len);
		ps_err("%s/%s: changed while being read", s->o->label, e);
		free(e);
		return -1;
	}
	ps_info(1, "%s/%s changed since it was scanned; sending it as it is "
	    "now", s->o->label, f->ent.path);
	return 0;
}

static int
send_file_header(struct ps_sender *s, struct sfile *f)
{
	struct ps_msg_file m;

	m.id = f->id;
	m.path.p = (const unsigned char *)f->ent.path;
	m.path.len = f->ent.path_len;
	m.size = f->ent.size;
	m.mtime = f->ent.mtime_sec;
	m.nsec = f->ent.mtime_nsec;
	m.mode = f->ent.mode;
	memcpy(m.hash, f->ent.hash, 16);
	return send_failed(s, ps_send_file(s->ss->w, &m));
}

static int
send_end(struct ps_sender *s, struct sfile *f)
{
	struct ps_msg_end m = { f->id };
	int rc;

	lock(s);
	f->ended = 1;	/* before it is out: the answer may come at once */
	unlock(s);
	/*
	 * A pool thread sent the file (or sends it again): nobody else
	 * would flush it. Sent inline, it waits in the buffer for the next
	 * file's frames.
	 */
	if ((rc = ps_send_end(s->ss->w, &m)) == PS_OK &&
	    (!f->inl || f->retried))
		rc = ps_wire_flush(s->ss->w);
	return send_failed(s, rc);
}

/* Read N bytes at OFF of FD into P; 0, or -1 when fewer came. */
static int
read_full(int fd, unsigned char *p, size_t n, uint64_t off)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = pread(fd, p + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* Raw pieces this big are passed by sendfile, smaller ones copied. */
#define SENDFILE_MIN (64u << 10)

/* Bytes of a file's first chunk compressed to see whether it pays. */
#define PROBE (16u << 10)

/*
 * Compress the piece M names (raw_len bytes of FD at M->off, read into
 * RAW) when that pays: then M is the zstd bytes (in *Z). Otherwise M
 * stays raw, *HAVE says whether RAW holds its bytes, and *COMPRESS
 * becomes 0: already compressed data (a cab, an msu) is not tried
 * again. A file's FIRST piece is tried on a 16 KiB sample first, so
 * that such a file costs a look, not a compression of 1 MiB. Returns
 * -1 when the file gave fewer bytes.
 */
static int
compress_piece(struct ps_sender *s, ZSTD_CCtx **c, unsigned char **z,
    int fd, unsigned char *raw, int first, struct ps_msg_data *m,
    int *compress, int *have)
{
	size_t n = m->raw_len, zcap = ZSTD_compressBound(PS_DATA_CHUNK);
	size_t want = first && n > PROBE ? PROBE : n, zn = 0;
	int pays = 1;

	if (read_full(fd, raw, want, m->off) != 0)
		return -1;
	if (*c == NULL) {
		*c = cctx_get(s);
		*z = xmalloc(zcap);
	}
	if (want < n) {
		zn = ZSTD_compress2(*c, *z, zcap, raw, PROBE);
		pays = !ZSTD_isError(zn) && zn <= PROBE - PROBE / 32;
		if (pays && read_full(fd, raw + want, n - want,
		    m->off + want) != 0)
			return -1;
	}
	if (pays) {
		*have = 1;
		zn = ZSTD_compress2(*c, *z, zcap, raw, n);
	}
	if (!pays || ZSTD_isError(zn) || zn > n - n / 32) {
		*compress = 0;
		return 0;
	}
	m->codec = PS_CODEC_ZSTD;
	m->data.p = *z;
	m->data.len = zn;
	return 0;
}

/*
 * Send bytes [OFF, OFF+LEN) of FD as DATA frames, compressed while that
 * pays; raw pieces go from the page cache to the stream (sendfile), not
 * through our memory. With a share (several servers), each piece is
 * compressed once for all of them (not on a retry: the file may have
 * changed under its hash). Returns PS_OK, PS_EPARTIAL on a read error
 * (the receiver then finds the file incomplete and we retry), or the
 * session's failure.
 */
static int
send_literal(struct ps_sender *s, struct sfile *f, int fd, uint64_t off,
    uint64_t len)
{
	struct ps_share *sh = f->retried ? NULL : s->o->share;
	unsigned char *raw = NULL, *z = NULL;
	struct buf shared = { 0 };
	struct ps_msg_data m;
	ZSTD_CCtx *c = NULL;
	int compress = 1, have, rc = PS_OK;
	uint64_t done = 0;
	uint8_t codec;

	raw = xmalloc(PS_DATA_CHUNK);
	while (done < len && rc == PS_OK) {
		size_t n = len - done > PS_DATA_CHUNK ? PS_DATA_CHUNK :
		    (size_t)(len - done);

		m.id = f->id;
		m.off = off + done;
		m.raw_len = (uint32_t)n;
		m.codec = PS_CODEC_RAW;
		m.data.p = raw;
		m.data.len = n;
		have = 0;		/* raw holds the piece */
		if (sh != NULL && ps_share_data_get(sh, f->ent.hash, m.off,
		    (uint32_t)n, &codec, &shared)) {
			if (codec == PS_CODEC_ZSTD) {
				m.codec = PS_CODEC_ZSTD;
				m.data.p = shared.p;
				m.data.len = shared.len;
			} else if (shared.len == n) {
				m.data.p = shared.p;	/* a small piece */
				have = 1;
			}
		} else {
			if ((compress && n >= 512 && compress_piece(s, &c, &z,
			    fd, raw, done == 0, &m, &compress, &have) != 0) ||
			    (m.codec == PS_CODEC_RAW && !have &&
			    n < SENDFILE_MIN && read_full(fd, raw, n,
			    m.off) != 0)) {
				if (sh != NULL)
					ps_share_data_put(sh, f->ent.hash,
					    m.off, (uint32_t)n, 0, NULL, 0);
				rc = PS_EPARTIAL;  /* shrank: verify fails */
				break;
			}
			if (m.codec == PS_CODEC_RAW && n < SENDFILE_MIN)
				have = 1;	/* read just above */
			/*
			 * Kept for the other servers: compressed bytes, and
			 * small raw pieces (each a read saved per server);
			 * of a big raw piece only that it is raw: it goes
			 * from the page cache by sendfile.
			 */
			if (sh != NULL)
				ps_share_data_put(sh, f->ent.hash, m.off,
				    (uint32_t)n, m.codec, m.codec ==
				    PS_CODEC_ZSTD ? m.data.p : raw,
				    m.codec == PS_CODEC_ZSTD ? m.data.len :
				    n < SENDFILE_MIN ? n : 0);
		}
		/*
		 * A small piece (an edit's few bytes) joins the frames
		 * gathered in the output buffer; a big one goes from the
		 * page cache to the stream, not through our memory.
		 */
		if (m.codec == PS_CODEC_RAW && !have && n < SENDFILE_MIN) {
			if (read_full(fd, raw, n, m.off) != 0) {
				rc = PS_EPARTIAL;	/* shrank */
				break;
			}
			have = 1;
		}
		if (m.codec == PS_CODEC_RAW && !have) {
			m.data.p = NULL;
			rc = ps_msg_send_file(s->ss->w, PS_MSG_DATA, &m, fd,
			    m.off);
			if (rc == PS_EPARTIAL)
				break;	/* shrank: verify fails, retried */
			rc = send_failed(s, rc);
		} else {
			rc = send_failed(s, ps_send_data(s->ss->w, &m));
		}
		done += n;
		progress(s, n);
	}
	lock(s);
	f->sent_literal += done;
	unlock(s);
	if (c != NULL)
		cctx_put(s, c);
	buf_free(&shared);
	free(z);
	free(raw);
	return rc;
}

/* Whole file: FILE, DATA..., END. */
static void
send_whole(struct ps_sender *s, struct sfile *f)
{
	struct stat st;
	int fd, rc;

	if ((fd = open_src(s, f, &st)) < 0) {
		file_failed(s, f, PS_EPARTIAL);
		return;
	}
	if (changed_since(&f->ent, &st) && s->o->share != NULL &&
	    !f->retried && !f->own_fd) {
		/*
		 * Hashed again from a descriptor of its own (the shared one
		 * has no file position to read by), and sent from it.
		 */
		ps_share_fd_forget(s->o->share, fd);
		close_src(s, fd);
		f->own_fd = 1;
		if ((fd = open_src(s, f, &st)) < 0) {
			file_failed(s, f, PS_EPARTIAL);
			return;
		}
	}
	if (changed_since(&f->ent, &st) && refresh(s, f, fd, &st) != 0) {
		close_src(s, fd);
		file_failed(s, f, PS_EPARTIAL);
		return;
	}
	rc = send_file_header(s, f);
	if (rc == PS_OK)
		rc = send_literal(s, f, fd, 0, f->ent.size);
	close_src(s, fd);
	if (rc == PS_OK || rc == PS_EPARTIAL)
		(void)send_end(s, f);
}

static void
job_whole(void *arg)
{
	struct job *j = arg;

	if (ps_sess_rc(j->s->ss) == PS_OK)
		send_whole(j->s, j->f);
	job_done(j);
}


/* ---- deltas: the plan from the receiver's block sums ---- */


/* FILE, then the plan's COPY and DATA frames, then END. */
static void
send_planned(struct ps_sender *s, struct sfile *f)
{
	struct ps_msg_copy c;
	struct stat st;
	size_t i;
	int fd, rc = PS_OK;

	if ((fd = open_src(s, f, &st)) < 0) {
		file_failed(s, f, PS_EPARTIAL);
		return;
	}
	if (changed_since(&f->ent, &st)) {
		/* The plan was made for other content: send it whole. */
		close_src(s, fd);
		send_whole(s, f);
		return;
	}
	rc = send_file_header(s, f);
	for (i = 0; i < f->ops.n && rc == PS_OK; i++) {
		const struct ps_mop *op = &f->ops.v[i];

		if (op->kind == PS_MOP_LITERAL) {
			rc = send_literal(s, f, fd, op->target_off, op->len);
			continue;
		}
		c.id = f->id;
		c.off = op->target_off;
		c.len = op->len;
		c.basis_off = op->basis_off;
		rc = send_failed(s, ps_send_copy(s->ss->w, &c));
		progress(s, op->len);
	}
	close_src(s, fd);
	if (rc == PS_OK || rc == PS_EPARTIAL)
		(void)send_end(s, f);
}

/*
 * Ask for the block sums (of length F->fine) of F's gaps, unless that
 * would take the sums in flight over the budget. Returns 1 when asked.
 */
static int
ask_sums(struct ps_sender *s, struct sfile *f)
{
	struct ps_msg_sumreq q;
	struct buf regions = { 0 };
	uint64_t expect = 0;
	size_t i;
	int ask;

	if (f->ngaps > PS_MAX_REGIONS)
		f->ngaps = PS_MAX_REGIONS;
	for (i = 0; i < f->ngaps; i++)
		expect += (f->gaps[i].basis_len + f->fine - 1) / f->fine *
		    PS_SUM_LEN;
	lock(s);
	ask = f->ngaps > 0 && s->sums_inflight + expect <= SUMS_BUDGET;
	if (ask) {
		/* The rest is the answer's job: a pool thread's to flush. */
		f->inl = 0;
		s->sums_inflight += expect;
		f->sums_expect = expect;
		f->sums_in = 0;
		f->sums.len = 0;
		/*
		 * The request is made while mu is held: once it is out, the
		 * answer's job (another thread) owns F's regions.
		 */
		for (i = 0; i < f->ngaps; i++) {
			buf_add_u64(&regions, f->gaps[i].basis_off);
			buf_add_u64(&regions, f->gaps[i].basis_len);
		}
		q.id = f->id;
		q.path.p = (const unsigned char *)f->ent.path;
		q.path.len = f->ent.path_len;
		q.round = (uint32_t)f->round;
		q.block_len = f->fine;
		q.nregions = (uint32_t)f->ngaps;
		q.regions.p = regions.p;
		q.regions.len = regions.len;
	}
	unlock(s);
	if (ask && send_failed(s, ps_send_sumreq(s->ss->w, &q)) == PS_OK)
		(void)send_failed(s, ps_wire_flush(s->ss->w));
	buf_free(&regions);
	return ask;
}

/*
 * Ask for finer sums of the basis where the plan still has literals
 * between copies (where edits smaller than a block sit), or send it.
 * Never waits: over the budget, the plan goes as it is.
 */
static uint64_t round_key(const struct sfile *f);

/*
 * The round F is about to ask sums for, when another server with the
 * same old copy has had it matched: its plan in F->ops, as if F's own
 * sums had come (the receiver's hash check stands behind it, as behind
 * every shared plan). Returns 1 when taken.
 */
static int
round_known(struct ps_sender *s, struct sfile *f)
{
	struct ps_share *sh = f->retried ? NULL : s->o->share;
	struct ps_mops done;

	if (sh == NULL || f->ngaps == 0 || !ps_share_round_peek(sh,
	    f->dst->hash, f->ent.hash, f->ent.size, round_key(f), &done))
		return 0;
	ps_mops_free(&f->ops);
	f->ops = done;
	f->block = f->fine;
	f->round++;
	return 1;
}

static void
refine_or_send(struct ps_sender *s, struct sfile *f)
{
	int level;

	do {
		level = f->round - f->lazy;	/* refinements made */
		f->fine = level == 0 ? f->block / 32 : PS_SUMBLOCK_MIN;
		if (f->fine < (level == 0 ? 256 : PS_SUMBLOCK_MIN))
			f->fine = level == 0 ? 256 : PS_SUMBLOCK_MIN;
		free(f->gaps);
		f->gaps = NULL;
		f->ngaps = 0;
		if (level < 2 && f->fine < f->block)
			f->ngaps = ps_match_gaps(&f->ops, f->dst->size,
			    2 * (uint64_t)f->fine, f->block, &f->gaps);
		if (f->ngaps > PS_MAX_REGIONS)
			f->ngaps = PS_MAX_REGIONS;	/* as asked */
	} while (round_known(s, f));
	if (ask_sums(s, f))
		return;
	/* Refined as far as it goes: other servers may use it. */
	if (f->round > 0 && s->o->share != NULL)
		ps_share_final_offer(s->o->share, f->dst->hash, f->ent.hash,
		    f->ent.size, &f->ops);
	send_planned(s, f);
}

/*
 * The receiver's manifest came without block sums (PS_OF_LAZYSUMS): ask
 * for those of the whole old version, in its manifest's block length
 * (round 0), and match when they come as a refinement does. A refined
 * plan another server made for the same versions needs none.
 */
static void
lazy_start(struct ps_sender *s, struct sfile *f)
{
	struct ps_share *sh = f->retried ? NULL : s->o->share;
	uint32_t block;

	if (sh != NULL && ps_share_final_peek(sh, f->dst->hash, f->ent.hash,
	    f->ent.size, &f->ops)) {
		send_planned(s, f);
		return;
	}
	block = (uint32_t)1 << f->dst->block_shift;
	if (block < PS_SUMBLOCK_MIN || block > PS_SUMBLOCK_MAX)
		block = block < PS_SUMBLOCK_MIN ? PS_SUMBLOCK_MIN :
		    PS_SUMBLOCK_MAX;
	f->lazy = 1;
	f->round = 0;
	f->block = f->fine = block;
	if (sh != NULL && ps_share_round_peek(sh, f->dst->hash, f->ent.hash,
	    f->ent.size, 0, &f->ops)) {
		/* Matched for another server: no sums of the whole. */
		f->round = 1;
		refine_or_send(s, f);
		return;
	}
	ps_mops_add(&f->ops, PS_MOP_LITERAL, 0, f->ent.size, 0);
	f->gaps = xcalloc(1, sizeof(*f->gaps));
	f->gaps[0].op = 0;
	f->gaps[0].basis_off = 0;
	f->gaps[0].basis_len = f->dst->size;
	f->ngaps = 1;
	if (!ask_sums(s, f)) {
		/* Over the budget: not worth waiting for. */
		ps_mops_free(&f->ops);
		send_whole(s, f);
	}
}

static void
job_lazy(void *arg)
{
	struct job *j = arg;

	if (ps_sess_rc(j->s->ss) == PS_OK)
		lazy_start(j->s, j->f);
	job_done(j);
}

/*
 * F's first plan against BASIS (the old version's block sums) into
 * F->ops: another session's for the same versions, or matched here from
 * FD and offered to the others. Waits only while another session
 * matches, never for a round trip. PS_OK, or the matcher's failure.
 */
static int
first_plan(struct ps_sender *s, struct sfile *f, int fd,
    const struct ps_blocksums *basis)
{
	struct ps_share *sh = s->o->share;
	struct ps_blocksums hint;
	struct ps_matcher *m;
	int rc;

	if (sh != NULL && ps_share_plan_get(sh, f->dst->hash, f->ent.hash,
	    f->ent.size, &f->ops))
		return PS_OK;
	ps_entry_blocksums(f->src, &hint);
	if ((rc = ps_matcher_new(basis, &m)) == PS_OK) {
		rc = ps_match(m, ps_match_read_fd, &fd, 0, f->ent.size,
		    hint.strong ? &hint : NULL, f->ent.size >=
		    MATCH_THREADS_MIN ? (unsigned)ps_ncpu() : 1, &f->ops);
		ps_matcher_free(m);
	}
	/* Claimed by ps_share_plan_get: always answered. */
	if (sh != NULL)
		ps_share_plan_put(sh, f->dst->hash, f->ent.hash, f->ent.size,
		    rc == PS_OK ? &f->ops : NULL);
	return rc;
}

/* Match the first plan against the receiver's block sums. */
static void
job_match(void *arg)
{
	struct job *j = arg;
	struct ps_sender *s = j->s;
	struct sfile *f = j->f;
	struct ps_share *sh = s->o->share;
	struct ps_blocksums basis;
	struct stat st;
	int fd, rc;

	if (ps_sess_rc(s->ss) != PS_OK)
		goto out;
	if ((fd = open_src(s, f, &st)) < 0) {
		file_failed(s, f, PS_EPARTIAL);
		goto out;
	}
	ps_entry_blocksums(f->dst, &basis);
	f->block = basis.block_len;
	if (changed_since(&f->ent, &st)) {
		rc = PS_EPARTIAL;
	} else if (sh != NULL && ps_share_final_peek(sh, f->dst->hash,
	    f->ent.hash, f->ent.size, &f->ops)) {
		/* Another server with this old copy: its refined plan. */
		close_src(s, fd);
		send_planned(s, f);
		goto out;
	} else {
		rc = first_plan(s, f, fd, &basis);
	}
	close_src(s, fd);
	if (rc != PS_OK) {
		/* Changed meanwhile, or sums we cannot use: whole. */
		ps_mops_free(&f->ops);
		send_whole(s, f);
		goto out;
	}
	refine_or_send(s, f);
out:
	job_done(j);
}

/*
 * The sums at RAW (records of PS_SUM_LEN bytes) of the old version's
 * [BASE, BASE+LEN) in blocks of BLOCK_LEN, as the matcher takes them.
 */
static void
parse_sums(const unsigned char *raw, uint64_t base, uint64_t len,
    uint32_t block_len, struct ps_blocksums *b)
{
	size_t k;

	memset(b, 0, sizeof(*b));
	b->base = base;
	b->len = len;
	b->block_len = block_len;
	b->n = (uint32_t)((len + block_len - 1) / block_len);
	b->weak = xreallocarray(NULL, b->n ? b->n : 1, 4);
	b->strong = xreallocarray(NULL, b->n ? b->n : 1, 8);
	for (k = 0; k < b->n; k++, raw += PS_SUM_LEN) {
		b->weak[k] = get_u32le(raw);
		b->strong[k] = get_u64le(raw + 4);
	}
}

/* The sums of F's round are used up: the budget gets them back. */
static void
sums_taken(struct ps_sender *s, struct sfile *f)
{
	buf_free(&f->sums);
	lock(s);
	s->sums_inflight -= f->sums_expect;
	f->sums_expect = 0;
	unlock(s);
	f->round++;
}

/*
 * The old version's block sums (round 0 of a lazy file) are in: the
 * first plan, as job_match makes it, or another session's for the same
 * versions (it waits only while one is being matched, never for a round
 * trip). Then refine as usual.
 */
static void
job_lazy_match(void *arg)
{
	struct job *j = arg;
	struct ps_sender *s = j->s;
	struct sfile *f = j->f;
	struct ps_blocksums basis;
	struct stat st;
	int fd = -1, rc = PS_EPARTIAL;

	if (ps_sess_rc(s->ss) != PS_OK)
		goto out;
	ps_mops_free(&f->ops);
	/* Fewer sums than asked: the old version changed; send it whole. */
	if (f->sums.len == f->sums_expect &&
	    (fd = open_src(s, f, &st)) >= 0 && !changed_since(&f->ent, &st)) {
		parse_sums(f->sums.p, 0, f->dst->size, f->fine, &basis);
		rc = first_plan(s, f, fd, &basis);
		ps_blocksums_free(&basis);
	}
	if (fd >= 0)
		close_src(s, fd);
	sums_taken(s, f);
	if (rc != PS_OK) {
		ps_mops_free(&f->ops);
		send_whole(s, f);
	} else {
		refine_or_send(s, f);
	}
out:
	job_done(j);
}

/*
 * What a refinement round of F starts from, for the share's key: the
 * plan so far, the block length asked for, the round. Every server with
 * the same old version sends the same sums for it.
 */
static uint64_t
round_key(const struct sfile *f)
{
	unsigned char b[25];
	uint64_t h = XXH3_64bits(&f->fine, sizeof(f->fine));
	size_t i;

	for (i = 0; i < f->ops.n; i++) {
		memcpy(b, &f->ops.v[i].target_off, 8);
		memcpy(b + 8, &f->ops.v[i].len, 8);
		memcpy(b + 16, &f->ops.v[i].basis_off, 8);
		b[24] = f->ops.v[i].kind;
		h = XXH3_64bits_withSeed(b, sizeof(b), h);
	}
	/* Never 0, the first plan's. */
	return (h & ~(uint64_t)0xffff) | 0x8000 | (uint64_t)f->lazy << 8 |
	    (uint64_t)(f->round & 0xff);
}

/* The finer sums of this round are in: match the gaps, splice. */
static void
job_refine(void *arg)
{
	struct job *j = arg;
	struct ps_sender *s = j->s;
	struct sfile *f = j->f;
	struct ps_share *sh = f->retried ? NULL : s->o->share;
	struct ps_blocksums fine;
	struct ps_mops *sub = NULL, done;
	struct ps_matcher *m;
	size_t *idx = NULL, i, at = 0, n;
	uint64_t key = 0;
	int fd = -1, ok, made = 0, spliced = 0;

	if (ps_sess_rc(s->ss) != PS_OK)
		goto out;
	/* Fewer sums than asked: the old version changed; go as it is. */
	ok = f->sums.len == f->sums_expect;
	if (ok && sh != NULL) {
		/* Another server with this old copy matched this round. */
		key = round_key(f);
		if (ps_share_round_get(sh, f->dst->hash, f->ent.hash,
		    f->ent.size, key, &done)) {
			ps_mops_free(&f->ops);
			f->ops = done;
			f->block = f->fine;
			sums_taken(s, f);
			refine_or_send(s, f);
			goto out;
		}
		made = 1;	/* claimed: always answered below */
	}
	if (ok) {
		struct stat st;

		ok = (fd = open_src(s, f, &st)) >= 0 &&
		    !changed_since(&f->ent, &st);
	}
	sub = xcalloc(f->ngaps ? f->ngaps : 1, sizeof(*sub));
	idx = xcalloc(f->ngaps ? f->ngaps : 1, sizeof(*idx));
	for (i = 0; ok && i < f->ngaps; i++) {
		const struct ps_mop *op = &f->ops.v[f->gaps[i].op];

		parse_sums(f->sums.p + at, f->gaps[i].basis_off,
		    f->gaps[i].basis_len, f->fine, &fine);
		at += (size_t)fine.n * PS_SUM_LEN;
		idx[i] = f->gaps[i].op;
		ok = ps_matcher_new(&fine, &m) == PS_OK;
		if (ok) {
			ok = ps_match(m, ps_match_read_fd, &fd,
			    op->target_off, op->len, NULL, 1, &sub[i]) ==
			    PS_OK;
			ps_matcher_free(m);
		}
		ps_blocksums_free(&fine);
	}
	n = i;
	if (ok && n > 0 && ps_mops_splice_many(&f->ops, idx, sub, n) ==
	    PS_OK) {
		f->block = f->fine;
		spliced = 1;
	}
	if (made)
		ps_share_round_put(sh, f->dst->hash, f->ent.hash, f->ent.size,
		    key, spliced ? &f->ops : NULL);
	for (i = 0; i < n; i++)
		ps_mops_free(&sub[i]);
	free(sub);
	free(idx);
	if (fd >= 0)
		close_src(s, fd);
	sums_taken(s, f);
	if (ok)
		refine_or_send(s, f);
	else
		send_planned(s, f);
out:
	job_done(j);
}

/* Verification failed once: hash the file again and send it whole. */
static void
job_retry(void *arg)
{
	struct job *j = arg;
	struct ps_sender *s = j->s;
	struct sfile *f = j->f;
	struct stat st;
	int fd, ok = 0;

	if (ps_sess_rc(s->ss) != PS_OK)
		goto out;
	if ((fd = open_src(s, f, &st)) >= 0) {
		ok = refresh(s, f, fd, &st) == 0;
		close_src(s, fd);
	}
	if (ok) {
		f->use_delta = 0;
		send_whole(s, f);
	} else {
		file_failed(s, f, PS_EPARTIAL);
	}
out:
	job_done(j);
}

/* ---- the reader thread ---- */

static int
on_sums(struct ps_sender *s, const struct buf *payload)
{
	struct ps_msg_sums m;
	struct sfile *f;
	int rc, done = 0;

	if ((rc = ps_sess_decode(s->ss, PS_MSG_SUMS, payload, &m)) != PS_OK)
		return rc;
	lock(s);
	f = id_used(s, m.id) ? sf(s, m.id) : NULL;
	/* After the last piece its job owns the sums: nothing more. */
	if (f == NULL || f->sums_expect == 0 || f->sums_in ||
	    (int)m.round != f->round ||
	    f->sums.len + m.data.len > f->sums_expect) {
		unlock(s);
		return ps_sess_fail(s->ss, PS_EPEER, "the receiver broke the "
		    "protocol: block sums nobody asked for");
	}
	buf_add(&f->sums, m.data.p, m.data.len);
	done = m.last;
	f->sums_in = done;
	unlock(s);
	if (done)
		submit(s, f->lazy && f->round == 0 ? job_lazy_match :
		    job_refine, f, 0);
	return PS_OK;
}

/* Is the console's file no longer what we last announced? */
static int
console_changed(struct ps_sender *s, struct sfile *f)
{
	struct stat st;

	if (fstatat(s->srcfd, f->ent.path, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return 1;
	return changed_since(&f->ent, &st);
}

static void
print_done(struct ps_sender *s, struct sfile *f)
{
	char *path;

	if (s->o->verbose == NULL)
		return;
	path = ps_escape(f->ent.path, f->ent.path_len);
	fprintf(s->o->verbose, "%s%s%s%s\n", s->o->server ? s->o->server : "",
	    s->o->server ? ": " : "", s->o->prefix ? s->o->prefix : "", path);
	free(path);
}

static int
on_result(struct ps_sender *s, const struct buf *payload)
{
	struct ps_msg_result m;
	struct sfile *f;
	char *text, *e;
	int rc, code;

	if ((rc = ps_sess_decode(s->ss, PS_MSG_RESULT, payload, &m)) != PS_OK)
		return rc;
	/*
	 * Only a file whose END is out is answered: a result before it
	 * would free the file while a thread still sends it.
	 */
	lock(s);
	rc = !id_used(s, m.id) || sf(s, m.id)->finished ? 1 :
	    !sf(s, m.id)->ended ? 2 : 0;
	f = rc ? NULL : sf(s, m.id);
	if (f != NULL)
		f->ended = 0;	/* sent again, it ends again */
	unlock(s);
	if (rc)
		return ps_sess_fail(s->ss, PS_EPEER, "the receiver broke the "
		    "protocol: a result for file id %" PRIu32 " %s", m.id,
		    rc == 1 ? "that is not in flight" : "before its end");
	code = (int)m.code;
	if (code == PS_OK) {
		if (s->o->progress_files != NULL)
			__atomic_fetch_add(s->o->progress_files, 1,
			    __ATOMIC_RELAXED);
		print_done(s, f);
		lock(s);
		s->st->files++;
		s->st->literal += f->sent_literal;
		if (f->ent.size > f->sent_literal)
			s->st->matched += f->ent.size - f->sent_literal;
		file_over(s, f);
		unlock(s);
		return PS_OK;
	}
	text = ps_escape((const char *)m.text.p, m.text.len);
	if (code == PS_EVERIFY && !f->retried) {
		f->retried = 1;
		f->sent_literal = 0;
		ps_info(1, "%s: %s; sending it again", s->ss->peer, text);
		free(text);
		submit(s, job_retry, f, 0);
		return PS_OK;
	}
	if (code == PS_EVERIFY && console_changed(s, f)) {
		/* Not the network's fault: say what really happened. */
		e = ps_escape(f->ent.path, f->ent.path_len);
		ps_err("%s/%s changed on the console while being sent; not "
		    "replaced on %s (push again when it is complete)",
		    s->o->label, e, s->ss->peer);
		free(e);
		code = PS_EPARTIAL;
	} else {
		ps_err("%s: %s", s->ss->peer, text);
	}
	free(text);
	file_failed(s, f, code == PS_EVERIFY ? PS_EVERIFY : PS_EPARTIAL);
	return PS_OK;
}

static int
on_doneack(struct ps_sender *s, const struct buf *payload)
{
	struct ps_msg_doneack m;
	int rc, early;

	lock(s);
	early = !s->done_sent;
	unlock(s);
	if (early)
		return ps_sess_unexpected(s->ss, PS_MSG_DONEACK, "before the "
		    "component was complete");
	if ((rc = ps_sess_decode(s->ss, PS_MSG_DONEACK, payload, &m)) != PS_OK)
		return rc;
	lock(s);
	s->ack = 1;
	s->ack_code = m.code == PS_OK ? PS_OK : m.code == PS_EVERIFY ?
	    PS_EVERIFY : PS_EPARTIAL;
	pthread_cond_broadcast(&s->cv);
	unlock(s);
	return PS_OK;
}

static void *
reader(void *arg)
{
	struct ps_sender *s = arg;
	struct buf msg = { 0 };
	uint8_t type;
	int rc;

	for (;;) {
		if ((rc = ps_sess_recv(s->ss, &type, &msg)) != PS_OK)
			break;
		if (type == PS_MSG_SUMS)
			rc = on_sums(s, &msg);
		else if (type == PS_MSG_RESULT)
			rc = on_result(s, &msg);
		else if (type == PS_MSG_DONEACK) {
			if ((rc = on_doneack(s, &msg)) == PS_OK)
				break;
		} else
			rc = ps_sess_unexpected(s->ss, type, "while files "
			    "were being sent");
		if (rc != PS_OK)
			break;
	}
	lock(s);
	s->ended = 1;
	pthread_cond_broadcast(&s->cv);
	unlock(s);
	buf_free(&msg);
	return NULL;
}

/* ---- the caller's thread ---- */

static int
send_path(struct ps_sender *s, uint8_t type, const struct ps_entry *e)
{
	struct ps_bytes path = { (const unsigned char *)e->path,
	    e->path_len };
	struct ps_msg_delete d;
	struct ps_msg_mkdir k;
	struct ps_msg_meta m;
	int rc = PS_OK;

	switch (type) {
	case PS_MSG_DELETE:
		d.path = path;
		d.type = e->type;
		rc = ps_send_delete(s->ss->w, &d);
		break;
	case PS_MSG_MKDIR:
		k.path = path;
		k.mode = e->mode;
		rc = ps_send_mkdir(s->ss->w, &k);
		break;
	case PS_MSG_META:
		m.path = path;
		m.type = e->type;
		m.mode = e->mode;
		m.mtime = e->mtime_sec;
		m.nsec = e->mtime_nsec;
		rc = ps_send_meta(s->ss->w, &m);
		break;
	}
	return send_failed(s, rc);
}

static void
itemize(const struct ps_send_opts *o, const struct ps_action *a)
{
	const struct ps_entry *e = a->src != NULL ? a->src : a->dst;
	char code[12], *path;

	if (o->itemize == NULL || a->kind == PS_ACT_DIRMETA)
		return;
	ps_itemize(a, code);
	path = ps_escape(e->path, e->path_len);
	fprintf(o->itemize, "%s%s%s %s%s%s\n", o->server ? o->server : "",
	    o->server ? ": " : "", code, o->prefix ? o->prefix : "", path,
	    e->type == PS_FT_DIR ? "/" : "");
	free(path);
}

static void
print_deleting(const struct ps_send_opts *o, const struct ps_entry *e)
{
	char *path;

	if (o->verbose == NULL)
		return;
	path = ps_escape(e->path, e->path_len);
	fprintf(o->verbose, "%s%sdeleting %s%s%s\n", o->server ? o->server :
	    "", o->server ? ": " : "", o->prefix ? o->prefix : "", path,
	    e->type == PS_FT_DIR ? "/" : "");
	free(path);
}

/* Wait (with mu held) until COND or the session is over. */
#define WAIT_UNTIL(s, cond) \
	while (!(cond) && !(s)->ended && ps_sess_rc((s)->ss) == PS_OK) \
		pthread_cond_wait(&(s)->cv, &(s)->mu)

/* A delta where the receiver's sums allow one, else the file whole. */
static void
start_file(struct ps_sender *s, struct sfile *f)
{
	const struct ps_entry *d = f->dst;

	if (!f->use_delta)
		submit(s, job_whole, f, 0);
	else if (d->blocks == NULL || d->weak == NULL)
		submit(s, job_lazy, f, 0);	/* its sums are asked for */
	else
		submit(s, job_match, f, 0);
}

/*
 * start_file on the planning thread (o->inline_sends): a file whole, or
 * a delta up to its request for sums (a pool thread takes the answer).
 * What it sends stays in the buffer for the loop to flush.
 */
static void
inline_start(struct ps_sender *s, struct sfile *f)
{
	const struct ps_entry *d = f->dst;

	if (ps_sess_rc(s->ss) != PS_OK)
		return;
	if (!f->use_delta) {
		f->inl = 1;
		send_whole(s, f);
	} else if (d->blocks == NULL || d->weak == NULL) {
		f->inl = 1;
		lazy_start(s, f);
	} else {
		submit(s, job_match, f, 0);	/* matching: the pool's */
	}
}

static void
sfile_clear(struct sfile *f)
{
	ps_mops_free(&f->ops);
	free(f->gaps);
	buf_free(&f->sums);
	free(f->ent.blocks);
	free(f->ent.weak);
	memset(f, 0, sizeof(*f));
}

static void
snd_free(struct ps_sender *s)
{
	size_t i;

	for (i = 0; i < s->nf && i < s->nids; i++)
		sfile_clear(sf(s, i));
	for (i = 0; i < SF_TOP && s->blk[i] != NULL; i++)
		free(s->blk[i]);
	free(s->blk);
	for (i = 0; i < (size_t)s->ncctx; i++)
		ZSTD_freeCCtx(s->cctx[i]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->zmu);
	free(s);
}

/* Report what the plan could not do and print what it will do. */
static int
plan_notes(struct ps_sender *s, const struct ps_syncplan *plan)
{
	const struct ps_send_opts *o = s->o;
	int deletes = o->delete;
	size_t i;

	if (plan->nconflict > 0) {
		char what[200];

		ps_err("%s: %s; not replaced without --delete", s->ss->peer,
		    ps_conflicts_text(plan->nconflict - plan->nconflict_file,
		    plan->nconflict_file, what, sizeof(what)));
		s->st->errors += (uint32_t)plan->nconflict;
		set_worst(s, PS_EPARTIAL);
	}
	if (o->delete && o->max_delete >= 0 &&
	    plan->ndelete_files > (size_t)o->max_delete) {
		ps_err("%s: would delete %zu files, more than --max-delete "
		    "%lld; deleting nothing", s->ss->peer,
		    plan->ndelete_files, o->max_delete);
		deletes = 0;
		set_worst(s, PS_EPARTIAL);
	}
	for (i = 0; i < plan->n; i++)
		if (deletes || plan->a[i].kind != PS_ACT_DELETE)
			itemize(o, &plan->a[i]);
	return deletes;
}

/* A changed file big enough to be sent as a delta. */
static int
use_delta(const struct ps_send_opts *o, const struct ps_action *a)
{
	return !o->whole_file && a->dst != NULL && a->dst->size > 0 &&
	    a->src->size >= DELTA_MIN;
}

/* Is the next file's slot free (with mu held)? */
static int
slot_free(struct ps_sender *s)
{
	return s->nf < s->nids || sf(s, s->nf % s->nids)->finished;
}

/* The slot of the next file, free (with mu held). */
static struct sfile *
new_slot(struct ps_sender *s)
{
	size_t k = s->nf % s->nids, b = k / SF_BLK;

	if (s->blk[b] == NULL)
		s->blk[b] = xcalloc(SF_BLK, sizeof(struct sfile));
	if (s->nf >= s->nids)	/* the file nids before is over */
		sfile_clear(&s->blk[b][k % SF_BLK]);
	return &s->blk[b][k % SF_BLK];
}

/* Fill F (the slot new_slot gave) for action A and publish it. */
static void
add_file(struct ps_sender *s, struct sfile *f, const struct ps_action *a)
{
	f->id = (uint32_t)(s->nf % s->nids);
	f->ent = *a->src;
	f->ent.blocks = NULL;	/* ours only when refreshed */
	f->ent.weak = NULL;
	f->src = a->src;
	f->dst = a->dst;
	f->use_delta = use_delta(s->o, a);
	s->inflight++;
	s->nf++;
}

/* Deletes, directories and files, in plan order, WINDOW files at a time. */
static int
send_changes(struct ps_sender *s, const struct ps_syncplan *plan, int deletes)
{
	const struct ps_send_opts *o = s->o;
	size_t i;
	int rc = PS_OK;

	for (i = 0; i < plan->n && rc == PS_OK; i++) {
		const struct ps_action *a = &plan->a[i];
		struct sfile *f = NULL;

		if (a->early && s->took_early)	/* gone before the plan */
			continue;
		if (a->kind == PS_ACT_DELETE && deletes) {
			rc = send_path(s, PS_MSG_DELETE, a->dst);
			print_deleting(o, a->dst);
			if (a->dst->type == PS_FT_FILE)
				s->st->deleted++;
		} else if (a->kind == PS_ACT_MKDIR) {
			rc = send_path(s, PS_MSG_MKDIR, a->src);
		} else if (a->kind == PS_ACT_SEND) {
			lock(s);
			if (s->inflight >= WINDOW || !slot_free(s)) {
				/* What is buffered may be what is awaited. */
				unlock(s);
				rc = send_failed(s, ps_wire_flush(s->ss->w));
				lock(s);
			}
			WAIT_UNTIL(s, rc != PS_OK || (s->inflight < WINDOW &&
			    slot_free(s)));
			if (rc != PS_OK) {
				unlock(s);
				break;
			}
			rc = ps_sess_rc(s->ss);
			if (rc == PS_OK && s->ended)
				rc = PS_EPEER;
			if (rc == PS_OK) {
				f = new_slot(s);
				add_file(s, f, a);
			}
			unlock(s);
			if (rc == PS_OK && o->inline_sends)
				inline_start(s, f);
			else if (rc == PS_OK)
				start_file(s, f);
		}
	}
	/*
	 * Frames gather in the wire's buffer (it writes itself out when
	 * full, and before a file's data goes by sendfile): one write for
	 * many small files and deletions, not one each.
	 */
	if (rc == PS_OK)
		rc = send_failed(s, ps_wire_flush(s->ss->w));
	return rc;
}

struct ps_sender *
ps_send_begin(struct ps_sess *ss, int srcfd, const struct ps_send_opts *o,
    struct ps_send_stats *st)
{
	struct ps_sender *s = xcalloc(1, sizeof(*s));
	const char *ids;
	unsigned long n;

	memset(st, 0, sizeof(*st));
	s->ss = ss;
	s->srcfd = srcfd;
	s->o = o;
	s->st = st;
	s->blk = xcalloc(SF_TOP, sizeof(*s->blk));
	s->nids = PS_MAX_FILE_ID;
	/* Tests make ids run out after a few files (at least 128). */
	if ((ids = getenv("PATCHSYNC_TEST_FILE_IDS")) != NULL &&
	    (n = strtoul(ids, NULL, 10)) >= 128 && n < PS_MAX_FILE_ID)
		s->nids = (uint32_t)n;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_mutex_init(&s->zmu, NULL);
	return s;
}

int
ps_send_early(struct ps_sender *s, const struct ps_action *a)
{
	struct sfile *f = NULL;

	if (s->o->dry_run || ps_sess_rc(s->ss) != PS_OK)
		return 0;
	if (a->kind == PS_ACT_MKDIR) {
		s->took_early = 1;
		(void)send_path(s, PS_MSG_MKDIR, a->src);
		return 1;
	}
	/* A delta needs the receiver's sums: it waits for the plan. */
	if (a->kind != PS_ACT_SEND || use_delta(s->o, a))
		return 0;
	/* Nothing is answered before the manifest ends: never wait. */
	lock(s);
	if (s->inflight < WINDOW && slot_free(s)) {
		f = new_slot(s);
		add_file(s, f, a);
	}
	unlock(s);
	if (f == NULL)
		return 0;
	s->took_early = 1;
	start_file(s, f);
	return 1;
}

int
ps_send_finish(struct ps_sender *sp, const struct ps_syncplan *plan)
{
	struct ps_sender *s = sp;
	struct ps_sess *ss = s->ss;
	const struct ps_send_opts *o = s->o;
	struct ps_send_stats *st = s->st;
	pthread_t rt;
	size_t k;
	int rc = PS_OK, deletes;

	if (plan == NULL) {
		/* The component failed: let the files begun early end. */
		lock(s);
		while (s->jobs > 0)
			pthread_cond_wait(&s->cv, &s->mu);
		unlock(s);
		snd_free(s);
		return PS_OK;
	}
	st->total = plan->send_bytes;
	st->nsend = plan->nsend;
	if (o->progress_total != NULL && !o->dry_run)
		__atomic_fetch_add(o->progress_total, plan->send_bytes,
		    __ATOMIC_RELAXED);
	if (o->progress_nfiles != NULL && !o->dry_run)
		__atomic_fetch_add(o->progress_nfiles, plan->nsend,
		    __ATOMIC_RELAXED);
	deletes = plan_notes(s, plan);
	if (pthread_create(&rt, NULL, reader, s) != 0) {
		ps_err("cannot start a thread");
		exit(PS_EPARTIAL);
	}
	if (!o->dry_run && (rc = send_changes(s, plan, deletes)) != PS_OK)
		ps_trace("%s: sending files (%s)", ss->peer, ps_strresult(rc));
	/* Every file answered; then metadata, directories last. */
	lock(s);
	WAIT_UNTIL(s, s->inflight == 0);
	unlock(s);
	for (k = 0; k < plan->n && !o->dry_run && rc == PS_OK; k++) {
		const struct ps_action *a = &plan->a[k];

		if (a->kind == PS_ACT_META || a->kind == PS_ACT_DIRMETA) {
			rc = send_path(s, PS_MSG_META, a->src);
			if (a->kind == PS_ACT_META)
				st->meta++;
		}
	}
	lock(s);
	s->done_sent = rc == PS_OK && ps_sess_rc(ss) == PS_OK;
	unlock(s);
	if (s->done_sent) {
		rc = ps_send_done(ss->w, NULL);
		if (rc == PS_OK)
			rc = ps_wire_flush(ss->w);
		(void)send_failed(s, rc);
	}
	lock(s);
	WAIT_UNTIL(s, s->ack);
	while (s->jobs > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	unlock(s);
	if (!s->ack && ps_sess_rc(ss) == PS_OK)
		(void)ps_sess_fail(ss, PS_EPEER, "the receiver ended the "
		    "component without an answer");
	/* The reader ends on DONEACK or with the session. */
	if (!s->ack)
		(void)ps_wire_shutdown_write(ss->w);
	pthread_join(rt, NULL);

	if (ps_sess_rc(ss) != PS_OK || !s->ack)
		rc = ps_sess_rc(ss) != PS_OK ? ps_sess_rc(ss) : PS_EPEER;
	else
		rc = ps_worse(s->worst, s->ack_code);
	if (s->ack && s->ack_code != PS_OK && st->errors == 0)
		st->errors++;
	snd_free(s);
	return rc;
}

int
ps_send(struct ps_sess *ss, int srcfd, const struct ps_syncplan *plan,
    const struct ps_send_opts *o, struct ps_send_stats *st)
{
	return ps_send_finish(ps_send_begin(ss, srcfd, o, st), plan);
}
