/*
 * delta.c — COPY ops in the kernel, the encoder that writes the block
 * matcher's ops in librsync's delta format (offline bundles), and the
 * streaming patcher that applies such a delta with librsync.
 *
 * The encoder is ours: librsync only makes deltas by its own rolling
 * search against a signature, while the matcher (match.h) has found the
 * ops already, at XXH3 speed. Applying is librsync's, so a delta in a
 * bundle is the same format `rdiff patch` reads.
 *
 * librsync facts this relies on (see notes/librsync-facts.md): jobs are
 * fed 256 KiB at a time because librsync copies whatever input it cannot
 * use at once; output buffers are 256 KiB; Debian keeps librsync's
 * assertions, so the copy callback refuses every position outside its
 * region and the output is bounded by the length expected.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librsync.h>

#include "delta.h"

#define IO_CHUNK	(256u << 10)	/* bytes handed to a job per call */
#define OUT_CHUNK	(256u << 10)	/* job output buffer (>= 4 blocks) */
#define COPY_CHUNK	(1u << 20)	/* pread/pwrite fallback of COPY */

#define MIN(a, b)	((a) < (b) ? (a) : (b))

/* ---- small I/O helpers ---- */

/* Read exactly N bytes at OFF. 0, or -1 (errno set; EIO-like 0 for EOF). */
static int
pread_full(int fd, void *p, size_t n, uint64_t off)
{
	unsigned char *c = p;
	ssize_t r;

	if (off > (uint64_t)INT64_MAX - n) {
		errno = EFBIG;
		return -1;
	}
	while (n > 0) {
		r = pread(fd, c, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = 0;	/* the file is shorter than expected */
			return -1;
		}
		c += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int
pwrite_full(int fd, const void *p, size_t n, uint64_t off)
{
	const unsigned char *c = p;
	ssize_t r;

	if (off > (uint64_t)INT64_MAX - n) {
		errno = EFBIG;
		return -1;
	}
	while (n > 0) {
		r = pwrite(fd, c, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int
range_ok(uint64_t off, uint64_t len)
{
	return off <= (uint64_t)INT64_MAX && len <= (uint64_t)INT64_MAX - off;
}

/* ---- librsync deltas from the matcher's ops ---- */

#define OP_END		0x00
#define OP_LITERAL_N1	0x41
#define OP_COPY_N1_N1	0x45
#define LIT_IMMEDIATE	64	/* longest literal whose length is the op */

/* Operand width index (0..3 for 1, 2, 4, 8 bytes) for V. */
static unsigned
width_ix(uint64_t v)
{
	if (v <= UINT8_MAX)
		return 0;
	if (v <= UINT16_MAX)
		return 1;
	if (v <= UINT32_MAX)
		return 2;
	return 3;
}

static unsigned char *
put_be(unsigned char *p, uint64_t v, unsigned ix)
{
	unsigned n = 1u << ix;

	while (n-- > 0)
		*p++ = (unsigned char)(v >> (8 * n));
	return p;
}

/* The command (and operands) of OP into CMD; returns its length. */
static size_t
op_command(const struct ps_mop *op, unsigned char *cmd)
{
	unsigned char *p = cmd;
	unsigned a, b;

	if (op->kind == PS_MOP_LITERAL) {
		if (op->len <= LIT_IMMEDIATE) {
			*p++ = (unsigned char)op->len;
		} else {
			a = width_ix(op->len);
			*p++ = (unsigned char)(OP_LITERAL_N1 + a);
			p = put_be(p, op->len, a);
		}
	} else {
		a = width_ix(op->basis_off);
		b = width_ix(op->len);
		*p++ = (unsigned char)(OP_COPY_N1_N1 + 4 * a + b);
		p = put_be(p, op->basis_off, a);
		p = put_be(p, op->len, b);
	}
	return (size_t)(p - cmd);
}

uint64_t
ps_rsdelta_size(const struct ps_mops *ops)
{
	unsigned char cmd[17];
	uint64_t n = 4 + 1;	/* magic, END */
	size_t i;

	for (i = 0; i < ops->n; i++) {
		if (ops->v[i].len == 0)
			continue;
		n += op_command(&ops->v[i], cmd);
		if (ops->v[i].kind == PS_MOP_LITERAL)
			n += ops->v[i].len;
	}
	return n;
}

/* Commands gather in a buffer; literal bytes are read straight into it. */
struct enc {
	unsigned char *buf;
	size_t have;
	int (*emit)(const void *p, size_t n, void *arg);
	void *arg;
};

static int
enc_flush(struct enc *e)
{
	int r = PS_OK;

	if (e->have > 0)
		r = e->emit(e->buf, e->have, e->arg);
	e->have = 0;
	return r;
}

static int
enc_add(struct enc *e, const void *p, size_t n)
{
	int r;

	if (e->have + n > IO_CHUNK && (r = enc_flush(e)) != PS_OK)
		return r;
	memcpy(e->buf + e->have, p, n);
	e->have += n;
	return PS_OK;
}

static int
enc_literal(struct enc *e, int fd, uint64_t off, uint64_t len)
{
	size_t n;
	int r;

	while (len > 0) {
		if (e->have == IO_CHUNK && (r = enc_flush(e)) != PS_OK)
			return r;
		n = (size_t)MIN(len, (uint64_t)(IO_CHUNK - e->have));
		if (pread_full(fd, e->buf + e->have, n, off) == -1)
			return PS_EPARTIAL;
		e->have += n;
		off += n;
		len -= n;
	}
	return PS_OK;
}

int
ps_rsdelta_write(const struct ps_mops *ops, int fd,
    int (*emit)(const void *p, size_t n, void *arg), void *arg)
{
	unsigned char cmd[17], end = OP_END;
	struct enc e = { NULL, 0, emit, arg };
	size_t i, n;
	int r;

	e.buf = xmalloc(IO_CHUNK);
	put_be(cmd, PS_RSDELTA_MAGIC, 2);
	r = enc_add(&e, cmd, 4);
	for (i = 0; i < ops->n && r == PS_OK; i++) {
		const struct ps_mop *op = &ops->v[i];

		if (op->len == 0)
			continue;
		n = op_command(op, cmd);
		r = enc_add(&e, cmd, n);
		if (r == PS_OK && op->kind == PS_MOP_LITERAL)
			r = enc_literal(&e, fd, op->target_off, op->len);
	}
	if (r == PS_OK)
		r = enc_add(&e, &end, 1);
	if (r == PS_OK)
		r = enc_flush(&e);
	free(e.buf);
	return r;
}

/* ---- patch ---- */

struct ps_patch {
	rs_job_t *job;
	int basis_fd;
	int out_fd;
	uint64_t basis_off;
	uint64_t basis_len;
	uint64_t out_off;
	uint64_t expect;
	uint64_t written;	/* bytes already pwritten */
	unsigned char *out;
	size_t have;		/* bytes waiting in out */
	int err;		/* sticky ps_result after a failure */
	int copy_err;		/* what the copy callback refused for */
	int done;		/* the delta's END command was seen */
};

/* librsync asks for basis bytes at POS (relative to the region). */
static rs_result
patch_copy_cb(void *arg, rs_long_t pos, size_t *len, void **bufp)
{
	struct ps_patch *p = arg;
	uint64_t n;

	if (pos < 0 || (uint64_t)pos >= p->basis_len || *len == 0) {
		p->copy_err = PS_EPEER;
		return RS_CORRUPT;
	}
	n = MIN((uint64_t)*len, p->basis_len - (uint64_t)pos);
	if (pread_full(p->basis_fd, *bufp, (size_t)n,
	    p->basis_off + (uint64_t)pos) == -1) {
		p->copy_err = PS_EPARTIAL;
		return RS_IO_ERROR;
	}
	*len = (size_t)n;
	return RS_DONE;
}

struct ps_patch *
ps_patch_begin(int basis_fd, uint64_t basis_off, uint64_t basis_len,
    int out_fd, uint64_t out_off, uint64_t expect_len)
{
	struct ps_patch *p = xcalloc(1, sizeof(*p));

	p->basis_fd = basis_fd;
	p->out_fd = out_fd;
	p->basis_off = basis_off;
	p->basis_len = basis_len;
	p->out_off = out_off;
	p->expect = expect_len;
	if (!range_ok(basis_off, basis_len) || !range_ok(out_off, expect_len))
		p->err = PS_EUSAGE;
	p->out = xmalloc(OUT_CHUNK);
	p->job = rs_patch_begin(patch_copy_cb, p);
	return p;
}

static int
patch_flush(struct ps_patch *p)
{
	if (p->have == 0)
		return PS_OK;
	if (pwrite_full(p->out_fd, p->out, p->have,
	    p->out_off + p->written) == -1)
		return PS_EPARTIAL;
	p->written += p->have;
	p->have = 0;
	return PS_OK;
}

/* Run the job over N bytes at DATA (EOF: no more will come). */
static int
patch_run(struct ps_patch *p, const unsigned char *data, size_t n, int eof)
{
	rs_buffers_t b;
	rs_result r;
	size_t before, made;

	memset(&b, 0, sizeof(b));
	b.next_in = (char *)(uintptr_t)data;
	b.avail_in = n;
	b.eof_in = eof;
	for (;;) {
		b.next_out = (char *)p->out + p->have;
		b.avail_out = OUT_CHUNK - p->have;
		before = b.avail_in;
		r = rs_job_iter(p->job, &b);
		made = OUT_CHUNK - p->have - b.avail_out;
		p->have += made;
		if (p->written + p->have > p->expect)
			return PS_EPEER;	/* more output than announced */
		if (r != RS_DONE && r != RS_BLOCKED)
			return p->copy_err ? p->copy_err : PS_EPEER;
		if ((p->have == OUT_CHUNK || r == RS_DONE) &&
		    patch_flush(p) != PS_OK)
			return PS_EPARTIAL;
		if (r == RS_DONE) {
			p->done = 1;
			/* Bytes after the END command are not ours. */
			return b.avail_in > 0 ? PS_EPEER : PS_OK;
		}
		if (made == 0 && before == b.avail_in) {
			/* Blocked on input: wait for more, or truncated. */
			return eof ? PS_EPEER : PS_OK;
		}
	}
}

int
ps_patch_feed(struct ps_patch *p, const void *data, size_t n)
{
	const unsigned char *c = data;
	size_t k;

	while (p->err == PS_OK && n > 0) {
		if (p->done) {
			p->err = PS_EPEER;	/* data after the end */
			break;
		}
		k = MIN(n, (size_t)IO_CHUNK);
		p->err = patch_run(p, c, k, 0);
		c += k;
		n -= k;
	}
	return p->err;
}

int
ps_patch_end(struct ps_patch *p)
{
	int r = p->err;

	if (r == PS_OK && !p->done)
		r = patch_run(p, NULL, 0, 1);
	if (r == PS_OK && !p->done)
		r = PS_EPEER;
	if (r == PS_OK)
		r = patch_flush(p);
	if (r == PS_OK && p->written != p->expect)
		r = PS_EPEER;	/* the delta made too little */
	ps_patch_abort(p);
	return r;
}

void
ps_patch_abort(struct ps_patch *p)
{
	if (p == NULL)
		return;
	rs_job_free(p->job);
	free(p->out);
	free(p);
}

/* ---- COPY ops ---- */

static int
copy_rw(int in_fd, uint64_t in_off, int out_fd, uint64_t out_off,
    uint64_t len)
{
	unsigned char *buf = xmalloc(COPY_CHUNK);
	size_t n;
	int r = PS_OK;

	while (len > 0) {
		n = (size_t)MIN(len, COPY_CHUNK);
		if (pread_full(in_fd, buf, n, in_off) == -1 ||
		    pwrite_full(out_fd, buf, n, out_off) == -1) {
			r = PS_EPARTIAL;
			break;
		}
		in_off += n;
		out_off += n;
		len -= n;
	}
	free(buf);
	return r;
}

int
ps_copy_range(int basis_fd, uint64_t basis_off, int out_fd,
    uint64_t out_off, uint64_t len)
{
	off_t in, out;
	ssize_t r;

	if (!range_ok(basis_off, len) || !range_ok(out_off, len))
		return PS_EUSAGE;
	while (len > 0) {
		in = (off_t)basis_off;
		out = (off_t)out_off;
		r = copy_file_range(basis_fd, &in, out_fd, &out,
		    (size_t)MIN(len, UINT64_C(1) << 30), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EXDEV || errno == EINVAL ||
		    errno == ENOSYS || errno == EOPNOTSUPP ||
		    errno == EBADF || errno == ETXTBSY))
			return copy_rw(basis_fd, basis_off, out_fd, out_off,
			    len);
		if (r < 0)
			return PS_EPARTIAL;
		if (r == 0) {
			errno = 0;	/* the basis is shorter than planned */
			return PS_EPARTIAL;
		}
		basis_off += (uint64_t)r;
		out_off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return PS_OK;
}

/* ---- librsync's messages ---- */

static void
trace_fn(rs_loglevel level, const char *msg)
{
	size_t n = strlen(msg);

	(void)level;
	while (n > 0 && msg[n - 1] == '\n')
		n--;
	ps_info(2, "librsync: %.*s", (int)MIN(n, (size_t)1000), msg);
}

void
ps_delta_init(void)
{
	rs_trace_to(trace_fn);
	rs_trace_set_level(RS_LOG_WARNING);
}
