/*
 * sender.c — the sending side of a session (the console for a push).
 *
 * Threads: the caller's thread plans and queues work; one reader thread
 * takes everything the receiver says (signatures, per-file results,
 * notices), and never writes, so neither side can block the other; pool
 * workers read, compress and delta files and write whole frames. Up to
 * WINDOW files are in flight: nothing waits on a per-file round trip.
 *
 * Verification is the receiver's: it checks every file against the
 * XXH3-128 announced here. A file that fails it (it changed while being
 * read, or the stream was damaged) is hashed again and sent once more,
 * whole; a second failure is reported.
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

#include <zstd.h>

#include "delta.h"
#include "proto.h"
#include "receiver.h"
#include "sender.h"
#include "syncplan.h"

#define WINDOW 64		/* files in flight */
#define DELTA_MIN (32u << 10)	/* smaller changed files go whole */
#define MAX_CCTX 64

struct sfile {
	uint32_t id;
	struct ps_entry ent;	/* what we announce (hash may be refreshed) */
	const struct ps_entry *dst;	/* the receiver's version, or NULL */
	struct ps_plan plan;
	int use_delta;
	uint32_t nreg;		/* signature regions asked for */
	uint32_t sigs_done;
	struct buf *sig;	/* per region */
	uint32_t *reg_op;	/* plan op of each region */
	int pieces_left;	/* guarded by the session mutex */
	int retried;
	int finished;
	uint64_t sent_literal;	/* guarded by the session mutex */
};

struct sess {
	struct ps_wire *w;
	int srcfd;
	const struct ps_send_opts *o;
	struct ps_send_stats *st;
	struct sfile *f;
	size_t nf;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned inflight;	/* files sent or queued, no RESULT yet */
	unsigned jobs;		/* pool jobs of this session not finished */
	int broken;		/* the stream is dead */
	int peer_code;		/* code of an ERROR from the peer */
	int ack;		/* DONEACK came */
	int ack_code;
	int worst;		/* worst per-file result */

	pthread_mutex_t zmu;
	ZSTD_CCtx *cctx[MAX_CCTX];
	int ncctx;
};

static void
lock(struct sess *s)
{
	pthread_mutex_lock(&s->mu);
}

static void
unlock(struct sess *s)
{
	pthread_mutex_unlock(&s->mu);
}

static void
set_worst(struct sess *s, int code)
{
	if (code > s->worst)
		s->worst = code;
}

static void
progress(struct sess *s, uint64_t n)
{
	if (s->o->progress_bytes != NULL)
		__atomic_fetch_add(s->o->progress_bytes, n, __ATOMIC_RELAXED);
}

/* ---- zstd contexts, one per concurrent job ---- */

static ZSTD_CCtx *
cctx_get(struct sess *s)
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
cctx_put(struct sess *s, ZSTD_CCtx *c)
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
	struct sess *s;
	struct sfile *f;
	size_t op;		/* piece jobs: the plan op */
};

static void
submit(struct sess *s, void (*fn)(void *), struct sfile *f, size_t op)
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
	struct sess *s = j->s;

	lock(s);
	if (--s->jobs == 0)
		pthread_cond_broadcast(&s->cv);
	unlock(s);
	free(j);
}

static int
open_src(struct sess *s, struct sfile *f, struct stat *st)
{
	int fd = openat(s->srcfd, f->ent.path, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC);

	if (fd < 0 || fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
		char *e = ps_escape(f->ent.path, f->ent.path_len);

		ps_err("%s: cannot read %s: %s", s->o->label, e,
		    fd < 0 || errno != 0 ? strerror(errno) :
		    "not a regular file");
		free(e);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
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
refresh(struct sess *s, struct sfile *f, int fd, const struct stat *st)
{
	f->ent.size = (uint64_t)st->st_size;
	f->ent.mtime_sec = st->st_mtim.tv_sec;
	f->ent.mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	f->ent.mode = st->st_mode & 07777;
	if (ps_hash_fd(fd, &f->ent) != 0) {
		char *e = ps_escape(f->ent.path, f->ent.path_len);

		ps_err("%s: %s changed while being read", s->o->label, e);
		free(e);
		return -1;
	}
	ps_info(1, "%s: %s changed since it was scanned; sending it as it "
	    "is now", s->o->label, f->ent.path);
	return 0;
}

static int
send_file_header(struct sess *s, struct sfile *f)
{
	struct buf b = { 0 };
	int rc;

	buf_add_u32(&b, f->id);
	ps_buf_add_str(&b, f->ent.path, f->ent.path_len);
	buf_add_u64(&b, f->ent.size);
	buf_add_u64(&b, (uint64_t)f->ent.mtime_sec);
	buf_add_u32(&b, f->ent.mtime_nsec);
	buf_add_u32(&b, f->ent.mode);
	buf_add(&b, f->ent.hash, 16);
	rc = ps_wire_send(s->w, PS_MSG_FILE, b.p, b.len);
	buf_free(&b);
	return rc;
}

static int
send_end(struct sess *s, struct sfile *f)
{
	unsigned char b[4];

	put_u32le(b, f->id);
	/* A pool thread sent the file: nobody else would flush it. */
	if (ps_wire_send(s->w, PS_MSG_END, b, sizeof(b)) != PS_OK)
		return PS_EPEER;
	return ps_wire_flush(s->w);
}

/*
 * Send bytes [OFF, OFF+LEN) of FD as DATA frames, compressed while that
 * pays. Returns PS_OK, PS_EPARTIAL on a read error (the receiver then
 * fails verification and we retry), PS_EPEER when the stream broke.
 */
static int
send_literal(struct sess *s, struct sfile *f, int fd, uint64_t off,
    uint64_t len)
{
	unsigned char hdr[17], *raw = NULL, *z = NULL;
	size_t zcap = ZSTD_compressBound(PS_DATA_CHUNK);
	ZSTD_CCtx *c = NULL;
	int compress = 1, rc = PS_OK;
	uint64_t done = 0;

	raw = xmalloc(PS_DATA_CHUNK);
	while (done < len && rc == PS_OK) {
		size_t n = len - done > PS_DATA_CHUNK ? PS_DATA_CHUNK :
		    (size_t)(len - done), got = 0, zn = 0;
		const unsigned char *body = raw;
		ssize_t r;

		while (got < n) {
			r = pread(fd, raw + got, n - got,
			    (off_t)(off + done + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got < n) {
			rc = PS_EPARTIAL;	/* shrank: verification fails */
			break;
		}
		put_u32le(hdr, f->id);
		put_u64le(hdr + 4, off + done);
		put_u32le(hdr + 12, (uint32_t)n);
		hdr[16] = PS_CODEC_RAW;
		if (compress && n >= 512) {
			if (c == NULL) {
				c = cctx_get(s);
				z = xmalloc(zcap);
			}
			zn = ZSTD_compress2(c, z, zcap, raw, n);
			/* Already compressed (cab, msu): stop trying. */
			if (ZSTD_isError(zn) || zn > n - n / 32) {
				compress = 0;
			} else {
				hdr[16] = PS_CODEC_ZSTD;
				body = z;
				n = zn;
			}
		}
		rc = ps_wire_send2(s->w, PS_MSG_DATA, hdr, sizeof(hdr), body,
		    hdr[16] == PS_CODEC_ZSTD ? zn : n);
		n = get_u32le(hdr + 12);
		done += n;
		progress(s, n);
	}
	lock(s);
	f->sent_literal += done;
	unlock(s);
	if (c != NULL)
		cctx_put(s, c);
	free(z);
	free(raw);
	return rc;
}

/* Whole file: FILE, DATA..., END. */
static void
send_whole(struct sess *s, struct sfile *f)
{
	struct stat st;
	int fd, rc;

	if ((fd = open_src(s, f, &st)) < 0)
		goto failed;
	if (changed_since(&f->ent, &st) && refresh(s, f, fd, &st) != 0) {
		close(fd);
		goto failed;
	}
	rc = send_file_header(s, f);
	if (rc == PS_OK)
		rc = send_literal(s, f, fd, 0, f->ent.size);
	close(fd);
	if (rc != PS_EPEER)
		(void)send_end(s, f);
	return;
failed:
	lock(s);
	f->finished = 1;
	s->st->errors++;
	set_worst(s, PS_EPARTIAL);
	s->inflight--;
	pthread_cond_broadcast(&s->cv);
	unlock(s);
}

static void
job_whole(void *arg)
{
	struct job *j = arg;

	if (!j->s->broken)
		send_whole(j->s, j->f);
	job_done(j);
}

/* Delta output of one piece goes out as DELTA frames. */
struct emit_ctx {
	struct sess *s;
	struct sfile *f;
	const struct ps_plan_op *op;
	uint32_t piece;
	uint64_t bytes;
};

static void
delta_hdr(unsigned char *h, const struct emit_ctx *e, int last)
{
	put_u32le(h, e->f->id);
	put_u32le(h + 4, e->piece);
	put_u64le(h + 8, e->op->target_off);
	put_u64le(h + 16, e->op->len);
	put_u64le(h + 24, e->op->basis_off);
	put_u64le(h + 32, e->op->basis_len);
	h[40] = (unsigned char)last;
}

static int
emit_delta(const void *p, size_t n, void *arg)
{
	struct emit_ctx *e = arg;
	unsigned char h[41];

	delta_hdr(h, e, 0);
	e->bytes += n;
	return ps_wire_send2(e->s->w, PS_MSG_DELTA, h, sizeof(h), p, n);
}

/* The last piece of a file to finish sends END. */
static void
piece_finished(struct sess *s, struct sfile *f)
{
	int last;

	lock(s);
	last = --f->pieces_left == 0;
	unlock(s);
	if (last)
		(void)send_end(s, f);
}

static void
job_piece(void *arg)
{
	struct job *j = arg;
	struct sess *s = j->s;
	struct sfile *f = j->f;
	const struct ps_plan_op *op = &f->plan.ops[j->op];
	struct emit_ctx e = { s, f, op, (uint32_t)j->op, 0 };
	struct buf *sig = NULL;
	unsigned char h[41];
	struct stat st;
	uint32_t r;
	int fd, rc = PS_OK;

	if (s->broken)
		goto out;
	for (r = 0; r < f->nreg; r++)
		if (f->reg_op[r] == j->op)
			sig = &f->sig[r];
	if ((fd = open_src(s, f, &st)) < 0)
		goto out;	/* the receiver will find the file incomplete */
	if (op->kind == PS_OP_DELTA && sig != NULL &&
	    ps_sig_check(sig->p, sig->len) == PS_OK) {
		rc = ps_delta_region(sig->p, sig->len, fd, op->target_off,
		    op->len, emit_delta, &e);
		if (rc == PS_OK) {
			delta_hdr(h, &e, 1);
			rc = ps_wire_send(s->w, PS_MSG_DELTA, h, sizeof(h));
		}
		progress(s, op->len);
		lock(s);
		f->sent_literal += e.bytes;
		unlock(s);
	} else {
		/* No usable signature (the receiver lost its copy): whole. */
		rc = send_literal(s, f, fd, op->target_off, op->len);
	}
	close(fd);
	(void)rc;
out:
	if (!s->broken)
		piece_finished(s, f);
	job_done(j);
}

/* All signatures are in: FILE, the COPY ops, then the pieces in parallel. */
static void
job_delta(void *arg)
{
	struct job *j = arg;
	struct sess *s = j->s;
	struct sfile *f = j->f;
	struct stat st;
	unsigned char h[28];
	size_t i, npieces = 0;
	int fd;

	if (s->broken)
		goto out;
	if ((fd = open_src(s, f, &st)) < 0) {
		send_whole(s, f);	/* counts the failure */
		goto out;
	}
	if (changed_since(&f->ent, &st)) {
		/* The plan was made for other content: send it whole. */
		close(fd);
		send_whole(s, f);
		goto out;
	}
	close(fd);
	if (send_file_header(s, f) != PS_OK)
		goto out;
	for (i = 0; i < f->plan.n; i++) {
		const struct ps_plan_op *op = &f->plan.ops[i];

		if (op->kind != PS_OP_COPY) {
			npieces++;
			continue;
		}
		put_u32le(h, f->id);
		put_u64le(h + 4, op->target_off);
		put_u64le(h + 12, op->len);
		put_u64le(h + 20, op->basis_off);
		if (ps_wire_send(s->w, PS_MSG_COPY, h, sizeof(h)) != PS_OK)
			goto out;
		progress(s, op->len);
	}
	if (npieces == 0) {
		(void)send_end(s, f);
		goto out;
	}
	lock(s);
	f->pieces_left = (int)npieces;
	unlock(s);
	for (i = 0; i < f->plan.n; i++)
		if (f->plan.ops[i].kind != PS_OP_COPY)
			submit(s, job_piece, f, i);
out:
	job_done(j);
}

/* Verification failed once: hash the file again and send it whole. */
static void
job_retry(void *arg)
{
	struct job *j = arg;
	struct sess *s = j->s;
	struct sfile *f = j->f;
	struct stat st;
	int fd;

	if (s->broken)
		goto out;
	if ((fd = open_src(s, f, &st)) >= 0) {
		int ok = refresh(s, f, fd, &st) == 0;

		close(fd);
		if (ok) {
			f->use_delta = 0;
			send_whole(s, f);
			goto out;
		}
	}
	lock(s);
	f->finished = 1;
	s->st->errors++;
	set_worst(s, PS_EPARTIAL);
	s->inflight--;
	pthread_cond_broadcast(&s->cv);
	unlock(s);
out:
	job_done(j);
}

/* ---- the reader thread ---- */

static int
on_sig(struct sess *s, struct ps_rd *rd)
{
	uint32_t id = ps_rd_u32(rd), reg = ps_rd_u32(rd);
	uint8_t last = ps_rd_u8(rd);
	size_t n = rd->off <= rd->len ? rd->len - rd->off : 0;
	const unsigned char *p = ps_rd_bytes(rd, n);
	struct sfile *f;

	if (rd->bad || id >= s->nf || reg >= s->f[id].nreg)
		return -1;
	f = &s->f[id];
	if (f->sigs_done >= f->nreg)
		return -1;
	buf_add(&f->sig[reg], p, n);
	if (f->sig[reg].len > (size_t)PS_SIG_MAX_BLOCKS * 40)
		return -1;
	if (last && ++f->sigs_done == f->nreg)
		submit(s, job_delta, f, 0);
	return 0;
}

/* Is the console's file no longer what we last announced? */
static int
console_changed(struct sess *s, struct sfile *f)
{
	struct stat st;

	if (fstatat(s->srcfd, f->ent.path, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return 1;
	return changed_since(&f->ent, &st);
}

static int
on_result(struct sess *s, struct ps_rd *rd)
{
	uint32_t id = ps_rd_u32(rd), code = ps_rd_u32(rd);
	size_t len;
	const char *msg = ps_rd_str(rd, &len, 4096);
	struct sfile *f;

	if (ps_rd_done(rd) != 0 || id >= s->nf || s->f[id].finished)
		return -1;
	f = &s->f[id];
	if (code == PS_OK) {
		if (s->o->progress_files != NULL)
			__atomic_fetch_add(s->o->progress_files, 1,
			    __ATOMIC_RELAXED);
		lock(s);
		s->st->files++;
		s->st->literal += f->sent_literal;
		if (f->ent.size > f->sent_literal)
			s->st->matched += f->ent.size - f->sent_literal;
		f->finished = 1;
		s->inflight--;
		pthread_cond_broadcast(&s->cv);
		unlock(s);
		return 0;
	}
	if (code == PS_EVERIFY && !f->retried) {
		f->retried = 1;
		f->sent_literal = 0;
		ps_info(1, "%s: %.*s; sending it again", s->o->label,
		    (int)len, msg);
		submit(s, job_retry, f, 0);
		return 0;
	}
	if (code == PS_EVERIFY && console_changed(s, f)) {
		/* Not the network's fault: say what really happened. */
		char *e = ps_escape(f->ent.path, f->ent.path_len);

		ps_err("%s: %s changed on the console while being sent; not "
		    "replaced (push again when it is complete)", s->o->label,
		    e);
		free(e);
		code = PS_EPARTIAL;
	} else {
		ps_err("%s: %.*s", s->o->label, (int)len, msg);
	}
	lock(s);
	f->finished = 1;
	s->st->errors++;
	set_worst(s, code == PS_EVERIFY ? PS_EVERIFY : PS_EPARTIAL);
	s->inflight--;
	pthread_cond_broadcast(&s->cv);
	unlock(s);
	return 0;
}

/* ERROR and NOTICE frames, wherever they come. */
static int
peer_said(const char *label, uint8_t type, struct ps_rd *rd, int *code)
{
	size_t len;
	const char *msg;

	if (type == PS_MSG_ERROR)
		*code = (int)ps_rd_u32(rd);
	msg = ps_rd_str(rd, &len, 4096);
	if (ps_rd_done(rd) != 0)
		return -1;
	if (type == PS_MSG_ERROR) {
		ps_err("%s: %.*s", label, (int)len, msg);
		if (*code < PS_EUSAGE || *code > PS_EVERIFY)
			*code = PS_EPEER;
	} else {
		ps_warn("%s: %.*s", label, (int)len, msg);
	}
	return 0;
}

static void *
reader(void *arg)
{
	struct sess *s = arg;
	struct buf msg = { 0 };
	struct ps_rd rd;
	uint8_t type;
	int code = PS_EPEER, bad = 0;

	for (;;) {
		if (ps_wire_recv(s->w, &type, &msg) != PS_OK) {
			ps_err("%s: %s", s->o->label, ps_wire_error(s->w));
			break;
		}
		ps_rd_init(&rd, msg.p, msg.len);
		if (type == PS_MSG_SIG)
			bad = on_sig(s, &rd);
		else if (type == PS_MSG_RESULT)
			bad = on_result(s, &rd);
		else if (type == PS_MSG_NOTICE)
			bad = peer_said(s->o->label, type, &rd, &code);
		else if (type == PS_MSG_ERROR) {
			if (peer_said(s->o->label, type, &rd, &code) == 0)
				break;
			bad = 1;
		} else if (type == PS_MSG_DONEACK) {
			uint32_t c = ps_rd_u32(&rd);

			(void)ps_rd_u64(&rd);
			(void)ps_rd_u64(&rd);
			(void)ps_rd_u32(&rd);
			if (ps_rd_done(&rd) != 0) {
				bad = 1;
			} else {
				lock(s);
				s->ack = 1;
				s->ack_code = (int)c;
				pthread_cond_broadcast(&s->cv);
				unlock(s);
				buf_free(&msg);
				return NULL;
			}
		} else
			bad = 1;
		if (bad) {
			ps_err("%s: the server broke the protocol (message "
			    "type %u)", s->o->label, type);
			code = PS_EPEER;
			break;
		}
	}
	lock(s);
	s->broken = 1;
	s->peer_code = code;
	pthread_cond_broadcast(&s->cv);
	unlock(s);
	buf_free(&msg);
	return NULL;
}

/* ---- the caller's thread ---- */

static int
send_path_frame(struct sess *s, uint8_t type, const struct ps_entry *e)
{
	struct buf b = { 0 };
	int rc;

	ps_buf_add_str(&b, e->path, e->path_len);
	switch (type) {
	case PS_MSG_DELETE:
		buf_addc(&b, e->type);
		break;
	case PS_MSG_MKDIR:
		buf_add_u32(&b, e->mode);
		break;
	case PS_MSG_META:
		buf_addc(&b, e->type);
		buf_add_u32(&b, e->mode);
		buf_add_u64(&b, (uint64_t)e->mtime_sec);
		buf_add_u32(&b, e->mtime_nsec);
		break;
	}
	rc = ps_wire_send(s->w, type, b.p, b.len);
	buf_free(&b);
	return rc;
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
	fprintf(o->itemize, "%s %s%s%s\n", code, o->prefix ? o->prefix : "",
	    path, e->type == PS_FT_DIR ? "/" : "");
	free(path);
}

/* Wait (with the lock held) until COND or the stream broke. */
#define WAIT_UNTIL(s, cond) \
	while (!(cond) && !(s)->broken) \
		pthread_cond_wait(&(s)->cv, &(s)->mu)

/* Ask for the signatures a delta needs, or queue the file whole. */
static int
start_file(struct sess *s, struct sfile *f, const struct ps_entry *src,
    unsigned ncpu)
{
	struct buf b = { 0 };
	size_t i;
	int rc;

	if (f->use_delta) {
		/* SRC has the block sums the plan needs. */
		ps_delta_plan(f->dst, src, ncpu, &f->plan);
		for (i = 0; i < f->plan.n; i++)
			if (f->plan.ops[i].kind == PS_OP_DELTA)
				f->nreg++;
		if (f->plan.n == 0 || f->nreg > PS_MAX_REGIONS) {
			ps_plan_free(&f->plan);
			f->use_delta = 0;
			f->nreg = 0;
		}
	}
	if (!f->use_delta) {
		submit(s, job_whole, f, 0);
		return PS_OK;
	}
	if (f->nreg == 0) {
		submit(s, job_delta, f, 0);	/* only copies and literals */
		return PS_OK;
	}
	f->sig = xcalloc(f->nreg, sizeof(*f->sig));
	f->reg_op = xcalloc(f->nreg, sizeof(*f->reg_op));
	buf_add_u32(&b, f->id);
	ps_buf_add_str(&b, f->ent.path, f->ent.path_len);
	buf_add_u32(&b, f->nreg);
	f->nreg = 0;
	for (i = 0; i < f->plan.n; i++) {
		const struct ps_plan_op *op = &f->plan.ops[i];

		if (op->kind != PS_OP_DELTA)
			continue;
		f->reg_op[f->nreg++] = (uint32_t)i;
		buf_add_u64(&b, op->basis_off);
		buf_add_u64(&b, op->basis_len);
		buf_add_u32(&b, op->sig_block_len);
	}
	rc = ps_wire_send(s->w, PS_MSG_SIGREQ, b.p, b.len);
	buf_free(&b);
	return rc;
}

static void
sess_free(struct sess *s)
{
	size_t i;
	uint32_t r;

	for (i = 0; i < s->nf; i++) {
		struct sfile *f = &s->f[i];

		for (r = 0; r < f->nreg; r++)
			buf_free(&f->sig[r]);
		free(f->sig);
		free(f->reg_op);
		ps_plan_free(&f->plan);
		free(f->ent.blocks);
	}
	free(s->f);
	for (i = 0; i < (size_t)s->ncctx; i++)
		ZSTD_freeCCtx(s->cctx[i]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->zmu);
}

int
ps_send(struct ps_wire *w, int srcfd, const struct ps_manifest *src,
    const struct ps_manifest *dst, const struct ps_send_opts *o,
    struct ps_send_stats *st)
{
	struct ps_plan_opts po = { o->checksum, o->delete };
	struct ps_syncplan plan;
	struct sess s;
	pthread_t rt;
	size_t i, k;
	int rc = PS_OK, deletes = o->delete;
	unsigned ncpu = (unsigned)ps_ncpu();

	memset(st, 0, sizeof(*st));
	memset(&s, 0, sizeof(s));
	s.w = w;
	s.srcfd = srcfd;
	s.o = o;
	s.st = st;
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	pthread_mutex_init(&s.zmu, NULL);

	ps_syncplan_make(src, dst, &po, &plan);
	st->total = plan.send_bytes;
	st->nsend = plan.nsend;
	if (o->progress_total != NULL && !o->dry_run)
		__atomic_fetch_add(o->progress_total, plan.send_bytes,
		    __ATOMIC_RELAXED);
	if (plan.nconflict > 0) {
		ps_err("%s: %zu directories on the server stand where the "
		    "console has files; not replaced without --delete",
		    o->label, plan.nconflict);
		st->errors += (uint32_t)plan.nconflict;
		set_worst(&s, PS_EPARTIAL);
	}
	if (o->delete && o->max_delete >= 0 &&
	    plan.ndelete_files > (size_t)o->max_delete) {
		ps_err("%s: would delete %zu files, more than --max-delete "
		    "%lld; deleting nothing", o->label, plan.ndelete_files,
		    o->max_delete);
		deletes = 0;
		set_worst(&s, PS_EPARTIAL);
	}
	for (i = 0; i < plan.n; i++)
		if (deletes || plan.a[i].kind != PS_ACT_DELETE)
			itemize(o, &plan.a[i]);

	s.f = xcalloc(plan.nsend + 1, sizeof(*s.f));
	if (pthread_create(&rt, NULL, reader, &s) != 0) {
		ps_err("cannot start a thread");
		exit(PS_EPARTIAL);
	}
	for (i = 0; i < plan.n && !o->dry_run && rc == PS_OK; i++) {
		const struct ps_action *a = &plan.a[i];

		if (a->kind == PS_ACT_DELETE && deletes) {
			rc = send_path_frame(&s, PS_MSG_DELETE, a->dst);
			if (a->dst->type == PS_FT_FILE)
				st->deleted++;
		} else if (a->kind == PS_ACT_MKDIR) {
			rc = send_path_frame(&s, PS_MSG_MKDIR, a->src);
		} else if (a->kind == PS_ACT_SEND) {
			struct sfile *f = &s.f[s.nf];

			f->id = (uint32_t)s.nf;
			f->ent = *a->src;
			f->ent.blocks = NULL;	/* ours only when refreshed */
			f->plan.ops = NULL;
			f->dst = a->dst;
			f->use_delta = !o->whole_file && a->dst != NULL &&
			    a->dst->size > 0 && a->src->size >= DELTA_MIN;
			lock(&s);
			WAIT_UNTIL(&s, s.inflight < WINDOW);
			s.inflight++;
			s.nf++;
			unlock(&s);
			if (s.broken)
				break;
			rc = start_file(&s, f, a->src, ncpu);
		}
		if (rc == PS_OK)
			rc = ps_wire_flush(w);
	}
	/* Every file answered; then metadata, directories last. */
	lock(&s);
	WAIT_UNTIL(&s, s.inflight == 0);
	unlock(&s);
	for (k = 0; k < plan.n && !o->dry_run && rc == PS_OK && !s.broken;
	    k++) {
		const struct ps_action *a = &plan.a[k];

		if (a->kind == PS_ACT_META || a->kind == PS_ACT_DIRMETA) {
			rc = send_path_frame(&s, PS_MSG_META, a->src);
			if (a->kind == PS_ACT_META)
				st->meta++;
		}
	}
	if (rc == PS_OK && !s.broken)
		rc = ps_wire_send(w, PS_MSG_DONE, NULL, 0);
	if (rc == PS_OK)
		rc = ps_wire_flush(w);
	lock(&s);
	WAIT_UNTIL(&s, s.ack);
	while (s.jobs > 0)
		pthread_cond_wait(&s.cv, &s.mu);
	unlock(&s);
	if (!s.ack && !s.broken) {
		/* We failed to write; the reader ends when the peer goes. */
		ps_err("%s: %s", o->label, ps_wire_error(w));
	}
	pthread_join(rt, NULL);

	if (s.broken || !s.ack)
		rc = s.peer_code ? s.peer_code : PS_EPEER;
	else if (s.ack_code > s.worst)
		set_worst(&s, s.ack_code);
	if (rc == PS_OK)
		rc = s.worst;
	if (s.ack && s.ack_code != PS_OK && st->errors == 0)
		st->errors++;
	ps_syncplan_free(&plan);
	sess_free(&s);
	return rc;
}

/* MFEND: u8 codec, u64 raw length; DATA holds the compressed bytes. */
static int
decode_manifest(const char *label, const struct buf *end,
    const struct buf *data, struct ps_manifest *m)
{
	struct ps_rd rd;
	unsigned char *raw;
	uint64_t rawlen;
	size_t got;
	uint8_t codec;
	char err[256];
	int rc = PS_OK;

	ps_rd_init(&rd, end->p, end->len);
	codec = ps_rd_u8(&rd);
	rawlen = ps_rd_u64(&rd);
	if (ps_rd_done(&rd) != 0 || codec != PS_CODEC_ZSTD ||
	    rawlen > PS_MAX_MANIFEST) {
		ps_err("%s: the server sent a malformed manifest trailer",
		    label);
		return PS_EPEER;
	}
	raw = xmalloc((size_t)rawlen);
	got = ZSTD_decompress(raw, (size_t)rawlen, data->p, data->len);
	if (ZSTD_isError(got) || got != rawlen) {
		ps_err("%s: the server's manifest does not decompress", label);
		rc = PS_EPEER;
	} else if (ps_manifest_decode(raw, (size_t)rawlen, m, err,
	    sizeof(err)) != 0) {
		ps_err("%s: the server sent a bad manifest: %s", label, err);
		rc = PS_EPEER;
	}
	free(raw);
	return rc;
}

int
ps_recv_manifest(struct ps_wire *w, const char *label, struct ps_manifest *m)
{
	struct buf msg = { 0 }, data = { 0 };
	struct ps_rd rd;
	uint8_t type;
	int rc, code = PS_EPEER;

	memset(m, 0, sizeof(*m));
	for (;;) {
		if ((rc = ps_wire_recv(w, &type, &msg)) != PS_OK) {
			ps_err("%s: %s", label, ps_wire_error(w));
			break;
		}
		ps_rd_init(&rd, msg.p, msg.len);
		if (type == PS_MSG_NOTICE || type == PS_MSG_ERROR) {
			if (peer_said(label, type, &rd, &code) != 0) {
				ps_err("%s: malformed message from the server",
				    label);
				rc = PS_EPEER;
				break;
			}
			if (type == PS_MSG_ERROR) {
				rc = code;
				break;
			}
			continue;
		}
		if (type == PS_MSG_MFDATA) {
			if (data.len + msg.len > PS_MAX_MANIFEST) {
				ps_err("%s: the server's manifest is too "
				    "large", label);
				rc = PS_EPEER;
				break;
			}
			buf_add(&data, msg.p, msg.len);
			continue;
		}
		if (type != PS_MSG_MFEND) {
			ps_err("%s: the server broke the protocol (message "
			    "type %u before its manifest)", label, type);
			rc = PS_EPEER;
			break;
		}
		rc = decode_manifest(label, &msg, &data, m);
		break;
	}
	buf_free(&msg);
	buf_free(&data);
	return rc;
}
