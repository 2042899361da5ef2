/*
 * wire.c — framing of the message stream (see wire.h and
 * man/patchsync-protocol.5).
 *
 * Output goes through one buffer guarded by a mutex, so threads that
 * send whole frames never interleave them; payloads too big for the
 * buffer are written straight from the caller's memory with writev.
 * Input goes through a buffer filled by large reads; a payload bigger
 * than what is buffered is read directly into the caller's buffer.
 *
 * The bandwidth limit is applied where bytes really leave: before each
 * write of at most one "slice" the writer waits until the bytes sent so
 * far are due at the configured rate.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ps.h"
#include "wire.h"

#define OBUF_SIZE (256 * 1024)
#define IBUF_SIZE (256 * 1024)
#define HELLO_LEN (PS_MAGIC_LEN + 4 + 4 + 1)
#define TEXT_MAX 60		/* bytes of peer text quoted in a reason */
#define TEXT_WAIT_MS 300	/* wait for the rest of a text line */
#define BW_CREDIT_NS 50000000	/* idle time spendable later: 50 ms */
#define NS 1000000000ull

struct ps_wire {
	int rfd;
	int wfd;

	pthread_mutex_t wlock;	/* everything on the sending side */
	unsigned char *obuf;
	size_t olen;
	int wdead;		/* a write failed: the stream is over */
	uint64_t bwlimit;	/* bytes per second, 0: none */
	uint64_t bw_due;	/* CLOCK_MONOTONIC ns when sent bytes are due */

	unsigned char *ibuf;	/* the receiving thread's alone */
	size_t ioff;
	size_t ilen;
	int eof;		/* clean end of stream between frames */
	int rdead;

	_Atomic uint64_t bytes_out;
	_Atomic uint64_t bytes_in;

	pthread_mutex_t elock;
	char err[256];		/* first failure, one line */
};

static void set_err(struct ps_wire *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Keep the first reason: later ones are usually its consequences. */
static void
set_err(struct ps_wire *w, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&w->elock);
	if (w->err[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(w->err, sizeof(w->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&w->elock);
}

struct ps_wire *
ps_wire_new(int rfd, int wfd)
{
	struct ps_wire *w = xcalloc(1, sizeof(*w));

	w->rfd = rfd;
	w->wfd = wfd;
	w->obuf = xmalloc(OBUF_SIZE);
	w->ibuf = xmalloc(IBUF_SIZE);
	pthread_mutex_init(&w->wlock, NULL);
	pthread_mutex_init(&w->elock, NULL);
	return w;
}

void
ps_wire_free(struct ps_wire *w)
{
	if (w == NULL)
		return;
	pthread_mutex_destroy(&w->wlock);
	pthread_mutex_destroy(&w->elock);
	free(w->obuf);
	free(w->ibuf);
	free(w);
}

const char *
ps_wire_error(struct ps_wire *w)
{
	return w->err;
}

int
ps_wire_eof(const struct ps_wire *w)
{
	return w->eof;
}

uint64_t
ps_wire_bytes_out(const struct ps_wire *w)
{
	return atomic_load(&w->bytes_out);
}

uint64_t
ps_wire_bytes_in(const struct ps_wire *w)
{
	return atomic_load(&w->bytes_in);
}

/* ---- writing ---- */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

void
ps_wire_set_bwlimit(struct ps_wire *w, uint64_t bytes_per_sec)
{
	pthread_mutex_lock(&w->wlock);
	w->bwlimit = bytes_per_sec;
	w->bw_due = 0;
	pthread_mutex_unlock(&w->wlock);
}

/* Largest write under a limit: about 1/20 s of traffic, 1 B .. 64 KiB. */
static size_t
bw_slice(uint64_t rate)
{
	uint64_t s = rate / 20;

	if (s < 1)
		s = 1;
	if (s > 65536)
		s = 65536;
	return (size_t)s;
}

/* Wait until N more bytes may go out at the configured rate. */
static void
bw_wait(struct ps_wire *w, size_t n)
{
	uint64_t now = now_ns(), cost;
	struct timespec ts;

	/* An idle writer may catch up a little, not a whole idle hour. */
	if (w->bw_due + BW_CREDIT_NS < now)
		w->bw_due = now - BW_CREDIT_NS;
	cost = (uint64_t)((double)n * (double)NS / (double)w->bwlimit);
	w->bw_due += cost;
	while (w->bw_due > now) {
		ts.tv_sec = (time_t)((w->bw_due - now) / NS);
		ts.tv_nsec = (long)((w->bw_due - now) % NS);
		nanosleep(&ts, NULL);	/* EINTR: sleep again */
		now = now_ns();
	}
}

static int
write_failed(struct ps_wire *w, int err)
{
	w->wdead = 1;
	if (err == EPIPE || err == ECONNRESET)
		set_err(w, "peer closed the connection");
	else
		set_err(w, "write to peer failed: %s", strerror(err));
	return PS_EPEER;
}

/* Write the IOV array fully (it is modified). Called with wlock held. */
static int
write_iov(struct ps_wire *w, struct iovec *iov, int n)
{
	struct iovec one;
	ssize_t r;
	size_t left;

	while (n > 0) {
		if (iov->iov_len == 0) {
			iov++;
			n--;
			continue;
		}
		if (w->bwlimit != 0) {
			/* One slice of one iovec at a time, each paid for. */
			one.iov_base = iov->iov_base;
			one.iov_len = iov->iov_len;
			if (one.iov_len > bw_slice(w->bwlimit))
				one.iov_len = bw_slice(w->bwlimit);
			bw_wait(w, one.iov_len);
			r = writev(w->wfd, &one, 1);
		} else
			r = writev(w->wfd, iov, n);	/* n <= 3 */
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return write_failed(w, errno);
		}
		if (r == 0)
			return write_failed(w, EPIPE);
		atomic_fetch_add(&w->bytes_out, (uint64_t)r);
		left = (size_t)r;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return PS_OK;
}

static int
flush_locked(struct ps_wire *w)
{
	struct iovec iov;
	int r;

	if (w->wdead)
		return PS_EPEER;
	if (w->olen == 0)
		return PS_OK;
	iov.iov_base = w->obuf;
	iov.iov_len = w->olen;
	r = write_iov(w, &iov, 1);
	w->olen = 0;
	return r;
}

int
ps_wire_flush(struct ps_wire *w)
{
	int r;

	pthread_mutex_lock(&w->wlock);
	r = flush_locked(w);
	pthread_mutex_unlock(&w->wlock);
	return r;
}

/* Queue (or write through) a frame made of the header and two parts. */
static int
send_locked(struct ps_wire *w, uint8_t type, const void *a, size_t alen,
    const void *b, size_t blen)
{
	unsigned char hdr[PS_FRAME_HDR];
	struct iovec iov[3];
	size_t total = PS_FRAME_HDR + alen + blen;
	int r;

	if (w->wdead)
		return PS_EPEER;
	put_u32le(hdr, (uint32_t)(alen + blen));
	hdr[4] = type;
	if (total > OBUF_SIZE - w->olen && (r = flush_locked(w)) != PS_OK)
		return r;
	if (total <= OBUF_SIZE - w->olen) {
		memcpy(w->obuf + w->olen, hdr, PS_FRAME_HDR);
		w->olen += PS_FRAME_HDR;
		if (alen > 0)
			memcpy(w->obuf + w->olen, a, alen);
		w->olen += alen;
		if (blen > 0)
			memcpy(w->obuf + w->olen, b, blen);
		w->olen += blen;
		return PS_OK;
	}
	/* Bigger than the whole buffer: straight from the caller's memory. */
	iov[0].iov_base = hdr;
	iov[0].iov_len = PS_FRAME_HDR;
	iov[1].iov_base = (void *)(uintptr_t)a;
	iov[1].iov_len = alen;
	iov[2].iov_base = (void *)(uintptr_t)b;
	iov[2].iov_len = blen;
	return write_iov(w, iov, 3);
}

int
ps_wire_send2(struct ps_wire *w, uint8_t type, const void *a, size_t alen,
    const void *b, size_t blen)
{
	int r;

	if (alen > PS_FRAME_MAX || blen > PS_FRAME_MAX - alen) {
		set_err(w, "internal error: frame of %zu bytes is over the "
		    "%u-byte limit", alen + blen, PS_FRAME_MAX);
		return PS_EUSAGE;
	}
	pthread_mutex_lock(&w->wlock);
	r = send_locked(w, type, a, alen, b, blen);
	pthread_mutex_unlock(&w->wlock);
	return r;
}

int
ps_wire_send(struct ps_wire *w, uint8_t type, const void *p, size_t len)
{
	return ps_wire_send2(w, type, p, len, NULL, 0);
}

int
ps_wire_shutdown_write(struct ps_wire *w)
{
	int r, null;

	pthread_mutex_lock(&w->wlock);
	r = flush_locked(w);
	if (shutdown(w->wfd, SHUT_WR) == 0 || errno != ENOTSOCK)
		goto out;
	/* A pipe: swap in /dev/null so the reader sees EOF. */
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null < 0 || dup3(null, w->wfd, O_CLOEXEC) < 0) {
		set_err(w, "cannot close the stream: %s", strerror(errno));
		r = PS_EPEER;
	}
	if (null >= 0)
		close(null);
out:
	w->wdead = 1;
	pthread_mutex_unlock(&w->wlock);
	return r;
}

/* ---- reading ---- */

/*
 * read(2), retried on EINTR. A peer that exits with our bytes unread
 * makes a socket read fail with ECONNRESET once its own bytes are
 * consumed: for us that is the end of the stream like any other.
 */
static ssize_t
read_some(int fd, void *p, size_t n)
{
	ssize_t r;

	do
		r = read(fd, p, n);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == ECONNRESET)
		r = 0;
	return r;
}

/* Read once into the input buffer. Returns bytes read, 0 at EOF, -1. */
static ssize_t
fill_once(struct ps_wire *w)
{
	ssize_t r;

	if (w->ioff > 0) {
		memmove(w->ibuf, w->ibuf + w->ioff, w->ilen - w->ioff);
		w->ilen -= w->ioff;
		w->ioff = 0;
	}
	r = read_some(w->rfd, w->ibuf + w->ilen, IBUF_SIZE - w->ilen);
	if (r < 0) {
		set_err(w, "read from peer failed: %s", strerror(errno));
		return -1;
	}
	w->ilen += (size_t)r;
	atomic_fetch_add(&w->bytes_in, (uint64_t)r);
	return r;
}

/*
 * Make N (<= IBUF_SIZE) bytes available in the input buffer. Returns 1,
 * 0 at EOF (fewer available), -1 on error.
 */
static int
fill(struct ps_wire *w, size_t n)
{
	ssize_t r;

	while (w->ilen - w->ioff < n) {
		r = fill_once(w);
		if (r <= 0)
			return (int)r;
	}
	return 1;
}

static int
recv_dead(struct ps_wire *w)
{
	w->rdead = 1;
	return PS_EPEER;
}

/* Read the rest of a payload that is bigger than the input buffer holds. */
static int
read_direct(struct ps_wire *w, struct buf *payload, size_t len)
{
	ssize_t r;

	while (payload->len < len) {
		r = read_some(w->rfd, payload->p + payload->len,
		    len - payload->len);
		if (r < 0) {
			set_err(w, "read from peer failed: %s",
			    strerror(errno));
			return recv_dead(w);
		}
		if (r == 0) {
			set_err(w, "peer closed the connection in the middle "
			    "of a frame (%zu of %zu payload bytes)",
			    payload->len, len);
			return recv_dead(w);
		}
		atomic_fetch_add(&w->bytes_in, (uint64_t)r);
		payload->len += (size_t)r;
	}
	return PS_OK;
}

int
ps_wire_recv(struct ps_wire *w, uint8_t *type, struct buf *payload)
{
	size_t len, have;
	int r;

	payload->len = 0;
	if (w->rdead)
		return PS_EPEER;
	r = fill(w, PS_FRAME_HDR);
	if (r < 0)
		return recv_dead(w);
	if (r == 0) {
		have = w->ilen - w->ioff;
		if (have == 0) {
			w->eof = 1;
			set_err(w, "peer closed the connection");
		} else
			set_err(w, "peer closed the connection in the middle "
			    "of a frame header (%zu of %d bytes)", have,
			    PS_FRAME_HDR);
		return recv_dead(w);
	}
	len = get_u32le(w->ibuf + w->ioff);
	if (len > PS_FRAME_MAX) {
		set_err(w, "frame of %zu bytes exceeds the %u-byte limit",
		    len, PS_FRAME_MAX);
		return recv_dead(w);
	}
	*type = w->ibuf[w->ioff + 4];
	w->ioff += PS_FRAME_HDR;

	buf_reserve(payload, len);
	have = w->ilen - w->ioff;
	if (have > len)
		have = len;
	if (have > 0)
		memcpy(payload->p, w->ibuf + w->ioff, have);
	w->ioff += have;
	payload->len = have;
	/* Small frames: keep reading in big gulps through the buffer. */
	while (payload->len < len && len - payload->len < IBUF_SIZE / 2) {
		r = fill(w, 1);
		if (r < 0)
			return recv_dead(w);
		if (r == 0)
			break;		/* read_direct reports the EOF */
		have = w->ilen - w->ioff;
		if (have > len - payload->len)
			have = len - payload->len;
		memcpy(payload->p + payload->len, w->ibuf + w->ioff, have);
		w->ioff += have;
		payload->len += have;
	}
	return read_direct(w, payload, len);
}

/* ---- greeting ---- */

static int
is_text(unsigned char c)
{
	return (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\r' ||
	    c == '\n';
}

/*
 * The peer did not greet us: describe what it sent. When the first bytes
 * look like text, read on (briefly, it may be waiting for us) to the end
 * of the line and quote it.
 */
static int
bad_greeting(struct ps_wire *w)
{
	struct pollfd pfd = { .fd = w->rfd, .events = POLLIN };
	unsigned char *s = w->ibuf + w->ioff;
	char quote[TEXT_MAX + 1];
	size_t have = w->ilen - w->ioff, i, q;

	for (i = 0; i < have && i < PS_FRAME_HDR; i++)
		if (!is_text(s[i]))
			break;
	if (i < have && i < PS_FRAME_HDR) {
		set_err(w, "peer is not patchsync (bad greeting)");
		return recv_dead(w);
	}
	while (have < TEXT_MAX && memchr(s, '\n', have) == NULL &&
	    poll(&pfd, 1, TEXT_WAIT_MS) > 0 && fill_once(w) > 0) {
		s = w->ibuf + w->ioff;
		have = w->ilen - w->ioff;
	}
	/* Skip leading blank lines, quote up to the end of the first line. */
	for (i = 0; i < have && (s[i] == '\n' || s[i] == '\r'); i++)
		;
	for (q = 0; i < have && q < TEXT_MAX && s[i] != '\n' && s[i] != '\r';
	    i++)
		quote[q++] = is_text(s[i]) && s[i] != '\t' ? (char)s[i] : '?';
	quote[q] = '\0';
	set_err(w, "peer is not patchsync; it said: \"%s\"", quote);
	return recv_dead(w);
}

static int
read_hello(struct ps_wire *w, uint32_t *peer_features, uint8_t *peer_role)
{
	struct buf p = { 0 };
	struct ps_rd rd;
	const unsigned char *magic;
	uint32_t version, features;
	uint8_t type, role;
	int r;

	r = fill(w, PS_FRAME_HDR);
	if (r < 0)
		return recv_dead(w);
	if (r == 0 && w->ilen == w->ioff) {
		set_err(w, "peer closed the connection before greeting "
		    "(is patchsync installed and runnable there?)");
		return recv_dead(w);
	}
	if (r == 0 || get_u32le(w->ibuf + w->ioff) < HELLO_LEN ||
	    get_u32le(w->ibuf + w->ioff) > 4096 ||
	    w->ibuf[w->ioff + 4] != PS_MSG_HELLO)
		return bad_greeting(w);

	if ((r = ps_wire_recv(w, &type, &p)) != PS_OK)
		return r;
	ps_rd_init(&rd, p.p, p.len);
	magic = ps_rd_bytes(&rd, PS_MAGIC_LEN);
	version = ps_rd_u32(&rd);
	features = ps_rd_u32(&rd);
	role = ps_rd_u8(&rd);
	/* Later versions may append fields to HELLO: extra bytes are fine. */
	if (rd.bad || memcmp(magic, PS_MAGIC, PS_MAGIC_LEN) != 0) {
		set_err(w, "peer is not patchsync (bad greeting)");
		r = recv_dead(w);
	} else if (version != PS_PROTO_VERSION) {
		set_err(w, "peer speaks protocol version %u, this patchsync "
		    "speaks %u", version, PS_PROTO_VERSION);
		r = recv_dead(w);
	} else {
		if (peer_features != NULL)
			*peer_features = features;
		if (peer_role != NULL)
			*peer_role = role;
	}
	buf_free(&p);
	return r;
}

int
ps_wire_hello(struct ps_wire *w, uint8_t role, uint32_t features,
    uint32_t *peer_features, uint8_t *peer_role)
{
	unsigned char h[HELLO_LEN];
	char sent_err[sizeof(w->err)];
	int r, rr;

	memcpy(h, PS_MAGIC, PS_MAGIC_LEN);
	put_u32le(h + PS_MAGIC_LEN, PS_PROTO_VERSION);
	put_u32le(h + PS_MAGIC_LEN + 4, features);
	h[PS_MAGIC_LEN + 8] = role;
	r = ps_wire_send(w, PS_MSG_HELLO, h, sizeof(h));
	if (r == PS_OK)
		r = ps_wire_flush(w);
	if (r == PS_OK)
		return read_hello(w, peer_features, peer_role);
	/*
	 * The peer is gone before our greeting got out, but what it wrote
	 * before going (a shell error, say) explains more than EPIPE does.
	 * No other thread uses the wire yet, so the reason may be replaced.
	 */
	memcpy(sent_err, w->err, sizeof(sent_err));
	w->err[0] = '\0';
	rr = read_hello(w, peer_features, peer_role);
	if (rr == PS_OK || w->err[0] == '\0')
		memcpy(w->err, sent_err, sizeof(w->err));
	return r;
}

/* ---- payload decoding ---- */

void
ps_rd_init(struct ps_rd *r, const void *p, size_t len)
{
	r->p = p;
	r->len = p != NULL ? len : 0;
	r->off = 0;
	r->bad = 0;
}

const unsigned char *
ps_rd_bytes(struct ps_rd *r, size_t n)
{
	static const unsigned char empty[1];
	const unsigned char *q;

	if (r->bad || n > r->len - r->off) {
		r->bad = 1;
		return NULL;
	}
	if (n == 0)
		return r->p != NULL ? r->p + r->off : empty;
	q = r->p + r->off;
	r->off += n;
	return q;
}

uint8_t
ps_rd_u8(struct ps_rd *r)
{
	const unsigned char *q = ps_rd_bytes(r, 1);

	return q != NULL ? q[0] : 0;
}

uint32_t
ps_rd_u32(struct ps_rd *r)
{
	const unsigned char *q = ps_rd_bytes(r, 4);

	return q != NULL ? get_u32le(q) : 0;
}

uint64_t
ps_rd_u64(struct ps_rd *r)
{
	const unsigned char *q = ps_rd_bytes(r, 8);

	return q != NULL ? get_u64le(q) : 0;
}

int64_t
ps_rd_i64(struct ps_rd *r)
{
	uint64_t u = ps_rd_u64(r);
	int64_t v;

	memcpy(&v, &u, sizeof(v));	/* two's complement on the wire */
	return v;
}

const char *
ps_rd_str(struct ps_rd *r, size_t *len, size_t max)
{
	size_t off = r->off;
	uint32_t n = ps_rd_u32(r);
	const unsigned char *q;

	*len = 0;
	if (r->bad)
		return NULL;
	if (n > max) {
		r->off = off;
		r->bad = 1;
		return NULL;
	}
	if ((q = ps_rd_bytes(r, n)) == NULL)
		return NULL;
	*len = n;
	return (const char *)q;
}

int
ps_rd_done(const struct ps_rd *r)
{
	return !r->bad && r->off == r->len ? 0 : -1;
}

void
ps_buf_add_str(struct buf *b, const void *p, size_t len)
{
	if (len > UINT32_MAX)
		len = UINT32_MAX;	/* callers check against far less */
	buf_add_u32(b, (uint32_t)len);
	if (len > 0)
		buf_add(b, p, len);
}
