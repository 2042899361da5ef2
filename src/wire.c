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
 *
 * Nothing waits without a deadline: the descriptors are non-blocking and
 * every wait is a poll() on the descriptor and on the interruption pipe
 * (ps_intr_fd), bounded by the session's timeout and, for the greeting,
 * by an overall deadline.
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
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ps.h"
#include "wire.h"

#define OBUF_SIZE (256 * 1024)
#define HELD_MAX (64u << 20)	/* frames held back (ps_wire_hold) */
#define COPY_CHUNK (256u << 10)	/* file bytes read at once, slow way */
#define IBUF_SIZE (256 * 1024)
#define TEXT_MAX 60		/* bytes of peer text quoted in a reason */
#define TEXT_WAIT_MS 300	/* wait for the rest of a text line */
#define BW_CREDIT_NS 50000000	/* idle time spendable later: 50 ms */
#define NS 1000000000ull

struct ps_wire {
	int rfd;
	int wfd;
	int timeout_ms;		/* longest wait for the peer; -1: none */
	_Atomic uint64_t deadline;	/* CLOCK_MONOTONIC ns cap, 0: none */
	_Atomic uint64_t last_out;	/* when bytes last left, ns */

	pthread_mutex_t wlock;	/* everything on the sending side */
	unsigned char *obuf;
	size_t olen;
	int wdead;		/* a write failed: the stream is over */
	uint64_t bwlimit;	/* bytes per second, 0: none */
	uint64_t bw_due;	/* CLOCK_MONOTONIC ns when sent bytes are due */
	uint64_t pass;		/* holding: the frame types that still go */
	int holding;
	struct buf held;	/* frames held back, whole, in order */

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

static uint64_t now_ns(void);

static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl != -1 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

struct ps_wire *
ps_wire_new(int rfd, int wfd)
{
	struct ps_wire *w = xcalloc(1, sizeof(*w));

	w->rfd = rfd;
	w->wfd = wfd;
	w->timeout_ms = -1;
	set_nonblock(rfd);
	set_nonblock(wfd);
	atomic_store(&w->last_out, now_ns());
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
	buf_free(&w->held);
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

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

/* ---- deadlines ---- */

void
ps_wire_set_timeout(struct ps_wire *w, unsigned seconds)
{
	w->timeout_ms = seconds == 0 ? -1 : (int)(seconds > 86400 ? 86400 :
	    seconds) * 1000;
}

void
ps_wire_set_deadline(struct ps_wire *w, unsigned seconds)
{
	atomic_store(&w->deadline, seconds == 0 ? 0 : now_ns() +
	    (uint64_t)seconds * NS);
}

uint64_t
ps_wire_idle_ms(const struct ps_wire *w)
{
	uint64_t now = now_ns(), last = atomic_load(&w->last_out);

	return now > last ? (now - last) / 1000000 : 0;
}

/*
 * Wait until FD is ready for EVENTS, an interruption, or the time runs
 * out. Returns PS_OK, PS_EINTR, or PS_EPEER (timed out, reason set).
 */
static int
wait_fd(struct ps_wire *w, int fd, short events)
{
	struct pollfd pfd[2];
	uint64_t deadline = atomic_load(&w->deadline), now;
	int ms, r, n = 1;

	pfd[0].fd = fd;
	pfd[0].events = events;
	if (ps_intr_fd() >= 0) {
		pfd[1].fd = ps_intr_fd();
		pfd[1].events = POLLIN;
		n = 2;
	}
	for (;;) {
		ms = w->timeout_ms;
		if (deadline != 0) {
			now = now_ns();
			if (now >= deadline)
				ms = 0;
			else if (ms < 0 || (deadline - now) / 1000000 <
			    (uint64_t)ms)
				ms = (int)((deadline - now) / 1000000) + 1;
		}
		pfd[0].revents = pfd[1].revents = 0;
		r = poll(pfd, (nfds_t)n, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			set_err(w, "poll: %s", strerror(errno));
			return PS_EPEER;
		}
		if (n == 2 && pfd[1].revents != 0) {
			set_err(w, "interrupted");
			return PS_EINTR;
		}
		if (r > 0)
			return PS_OK;
		if (deadline != 0 && now_ns() >= deadline)
			set_err(w, "timed out: the peer did not greet us "
			    "within the time allowed");
		else
			set_err(w, "timed out: nothing from the peer for %d "
			    "s%s", w->timeout_ms / 1000, events == POLLOUT ?
			    " (it does not read what we send)" : "");
		return PS_EPEER;
	}
}

/* ---- writing ---- */

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
static int
bw_wait(struct ps_wire *w, size_t n)
{
	struct pollfd pfd = { .fd = ps_intr_fd(), .events = POLLIN };
	uint64_t now = now_ns(), cost;

	/* An idle writer may catch up a little, not a whole idle hour. */
	if (w->bw_due + BW_CREDIT_NS < now)
		w->bw_due = now - BW_CREDIT_NS;
	cost = (uint64_t)((double)n * (double)NS / (double)w->bwlimit);
	w->bw_due += cost;
	while (w->bw_due > now) {
		/* poll(-1 fd) just sleeps; a readable intr fd ends it. */
		if (poll(&pfd, 1, (int)((w->bw_due - now) / 1000000) + 1) > 0) {
			set_err(w, "interrupted");
			return PS_EINTR;
		}
		now = now_ns();
	}
	return PS_OK;
}

static int
write_failed(struct ps_wire *w, int err)
{
	w->wdead = 1;
	if (err == EINTR)
		return PS_EINTR;
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
	int rc;

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
			if ((rc = bw_wait(w, one.iov_len)) != PS_OK)
				return write_failed(w, EINTR);
			r = writev(w->wfd, &one, 1);
		} else
			r = writev(w->wfd, iov, n);	/* n <= 3 */
		if (r < 0 && errno == EAGAIN) {
			if ((rc = wait_fd(w, w->wfd, POLLOUT)) != PS_OK) {
				w->wdead = 1;
				return rc;
			}
			continue;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return write_failed(w, errno);
		}
		if (r == 0)
			return write_failed(w, EPIPE);
		atomic_fetch_add(&w->bytes_out, (uint64_t)r);
		atomic_store(&w->last_out, now_ns());
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
	if (w->holding && (type >= 64 || !(w->pass & (1ull << type)))) {
		if (w->held.len + total > HELD_MAX) {
			set_err(w, "the peer made us hold more than %u MiB of "
			    "answers back", HELD_MAX >> 20);
			w->wdead = 1;
			return PS_EPEER;
		}
		buf_add(&w->held, hdr, PS_FRAME_HDR);
		buf_add(&w->held, a, alen);
		buf_add(&w->held, b, blen);
		return PS_OK;
	}
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

/* Write N bytes of FD at OFF through our memory (the slow way). */
static int
copy_through(struct ps_wire *w, int fd, uint64_t off, size_t n, int *shrank)
{
	unsigned char *b = xmalloc(n < COPY_CHUNK ? (n ? n : 1) : COPY_CHUNK);
	struct iovec iov;
	size_t k;
	ssize_t r;
	int rc = PS_OK;

	while (n > 0 && rc == PS_OK) {
		k = n < COPY_CHUNK ? n : COPY_CHUNK;
		r = *shrank ? 0 : pread(fd, b, k, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {		/* gone short: zeros keep the framing */
			*shrank = 1;
			memset(b, 0, k);
			r = (ssize_t)k;
		}
		iov.iov_base = b;
		iov.iov_len = (size_t)r;
		rc = write_iov(w, &iov, 1);
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	free(b);
	return rc;
}

int
ps_wire_send_file(struct ps_wire *w, uint8_t type, const void *a,
    size_t alen, int fd, uint64_t off, size_t n)
{
	unsigned char hdr[PS_FRAME_HDR];
	struct iovec iov[2];
	struct stat st;
	off_t pos = (off_t)off;
	ssize_t r;
	int rc, shrank = 0, direct = 1;

	if (alen > PS_FRAME_MAX || n > PS_FRAME_MAX - alen) {
		set_err(w, "internal error: frame of %zu bytes is over the "
		    "%u-byte limit", alen + n, PS_FRAME_MAX);
		return PS_EUSAGE;
	}
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < off ||
	    (uint64_t)st.st_size - off < n)
		return PS_EPARTIAL;
	pthread_mutex_lock(&w->wlock);
	if (w->bwlimit != 0 || (w->holding && (type >= 64 ||
	    !(w->pass & (1ull << type))))) {
		/* Paced or held: the ordinary way, through a buffer. */
		unsigned char *b = xmalloc(n ? n : 1);

		pthread_mutex_unlock(&w->wlock);
		r = n ? pread(fd, b, n, (off_t)off) : 0;
		rc = r == (ssize_t)n ? ps_wire_send2(w, type, a, alen, b, n) :
		    PS_EPARTIAL;
		free(b);
		return rc;
	}
	if ((rc = flush_locked(w)) != PS_OK)
		goto out;
	put_u32le(hdr, (uint32_t)(alen + n));
	hdr[4] = type;
	iov[0].iov_base = hdr;
	iov[0].iov_len = PS_FRAME_HDR;
	iov[1].iov_base = (void *)(uintptr_t)a;
	iov[1].iov_len = alen;
	if ((rc = write_iov(w, iov, 2)) != PS_OK)
		goto out;
	while (n > 0 && direct) {
		r = sendfile(w->wfd, fd, &pos, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			if ((rc = wait_fd(w, w->wfd, POLLOUT)) != PS_OK) {
				w->wdead = 1;
				goto out;
			}
			continue;
		}
		if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
			direct = 0;	/* not here: read and write */
			break;
		}
		if (r < 0) {
			rc = write_failed(w, errno);
			goto out;
		}
		if (r == 0) {		/* shrank under us */
			shrank = 1;
			break;
		}
		atomic_fetch_add(&w->bytes_out, (uint64_t)r);
		atomic_store(&w->last_out, now_ns());
		n -= (size_t)r;
	}
	if (n > 0)
		rc = copy_through(w, fd, (uint64_t)pos, n, &shrank);
	if (rc == PS_OK && shrank)
		rc = PS_EPARTIAL;
out:
	pthread_mutex_unlock(&w->wlock);
	return rc;
}

int
ps_wire_send(struct ps_wire *w, uint8_t type, const void *p, size_t len)
{
	return ps_wire_send2(w, type, p, len, NULL, 0);
}

void
ps_wire_hold(struct ps_wire *w, uint64_t pass)
{
	pthread_mutex_lock(&w->wlock);
	w->holding = 1;
	w->pass = pass;
	pthread_mutex_unlock(&w->wlock);
}

int
ps_wire_release(struct ps_wire *w)
{
	struct iovec iov;
	int r = PS_OK;

	pthread_mutex_lock(&w->wlock);
	if (w->wdead)
		r = PS_EPEER;
	else if (w->holding && w->held.len > 0 &&
	    (r = flush_locked(w)) == PS_OK) {
		iov.iov_base = w->held.p;
		iov.iov_len = w->held.len;
		r = write_iov(w, &iov, 1);
	}
	w->holding = 0;
	buf_free(&w->held);
	pthread_mutex_unlock(&w->wlock);
	return r;
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

static int
recv_dead(struct ps_wire *w, int rc)
{
	w->rdead = 1;
	return rc;
}

/*
 * Read at most N bytes, waiting (bounded) for some. Returns the count,
 * 0 at end of stream, -1 with *RC set. A peer that exits with our bytes
 * unread makes a socket read fail with ECONNRESET once its own bytes are
 * consumed: for us that is the end of the stream like any other.
 */
static ssize_t
read_some(struct ps_wire *w, void *p, size_t n, int *rc)
{
	ssize_t r;

	for (;;) {
		r = read(w->rfd, p, n);
		if (r > 0) {
			atomic_fetch_add(&w->bytes_in, (uint64_t)r);
			return r;
		}
		if (r == 0 || errno == ECONNRESET)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			if ((*rc = wait_fd(w, w->rfd, POLLIN)) != PS_OK)
				return -1;
			continue;
		}
		set_err(w, "read from peer failed: %s", strerror(errno));
		*rc = PS_EPEER;
		return -1;
	}
}

/* Read once into the input buffer. Returns bytes read, 0 at EOF, -1. */
static ssize_t
fill_once(struct ps_wire *w, int *rc)
{
	ssize_t r;

	if (w->ioff > 0) {
		memmove(w->ibuf, w->ibuf + w->ioff, w->ilen - w->ioff);
		w->ilen -= w->ioff;
		w->ioff = 0;
	}
	r = read_some(w, w->ibuf + w->ilen, IBUF_SIZE - w->ilen, rc);
	if (r > 0)
		w->ilen += (size_t)r;
	return r;
}

/*
 * Make N (<= IBUF_SIZE) bytes available in the input buffer. Returns 1,
 * 0 at EOF (fewer available), -1 with *RC set.
 */
static int
fill(struct ps_wire *w, size_t n, int *rc)
{
	ssize_t r;

	while (w->ilen - w->ioff < n) {
		r = fill_once(w, rc);
		if (r <= 0)
			return (int)r;
	}
	return 1;
}

/* Read the rest of a payload that is bigger than the input buffer holds. */
static int
read_direct(struct ps_wire *w, struct buf *payload, size_t len)
{
	ssize_t r;
	int rc = PS_EPEER;

	while (payload->len < len) {
		r = read_some(w, payload->p + payload->len, len - payload->len,
		    &rc);
		if (r < 0)
			return recv_dead(w, rc);
		if (r == 0) {
			set_err(w, "peer closed the connection in the middle "
			    "of a frame (%zu of %zu payload bytes)",
			    payload->len, len);
			return recv_dead(w, PS_EPEER);
		}
		payload->len += (size_t)r;
	}
	return PS_OK;
}

int
ps_wire_recv(struct ps_wire *w, uint8_t *type, struct buf *payload)
{
	size_t len, have;
	int r, rc = PS_EPEER;

	payload->len = 0;
	if (w->rdead)
		return PS_EPEER;
	r = fill(w, PS_FRAME_HDR, &rc);
	if (r < 0)
		return recv_dead(w, rc);
	if (r == 0) {
		have = w->ilen - w->ioff;
		if (have == 0) {
			w->eof = 1;
			set_err(w, "peer closed the connection");
		} else
			set_err(w, "peer closed the connection in the middle "
			    "of a frame header (%zu of %d bytes)", have,
			    PS_FRAME_HDR);
		return recv_dead(w, PS_EPEER);
	}
	len = get_u32le(w->ibuf + w->ioff);
	if (len > PS_FRAME_MAX) {
		set_err(w, "frame of %zu bytes exceeds the %u-byte limit",
		    len, PS_FRAME_MAX);
		return recv_dead(w, PS_EPEER);
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
		r = fill(w, 1, &rc);
		if (r < 0)
			return recv_dead(w, rc);
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
	unsigned char *s = w->ibuf + w->ioff;
	char quote[TEXT_MAX + 1];
	size_t have = w->ilen - w->ioff, i, q;
	int saved = w->timeout_ms, rc;

	for (i = 0; i < have && i < PS_FRAME_HDR; i++)
		if (!is_text(s[i]))
			break;
	if (i < have && i < PS_FRAME_HDR) {
		set_err(w, "peer is not patchsync (bad greeting)");
		return recv_dead(w, PS_EPEER);
	}
	w->timeout_ms = TEXT_WAIT_MS;
	while (have < TEXT_MAX && memchr(s, '\n', have) == NULL &&
	    fill_once(w, &rc) > 0) {
		s = w->ibuf + w->ioff;
		have = w->ilen - w->ioff;
	}
	w->timeout_ms = saved;
	/* Skip leading blank lines, quote up to the end of the first line. */
	for (i = 0; i < have && (s[i] == '\n' || s[i] == '\r'); i++)
		;
	for (q = 0; i < have && q < TEXT_MAX && s[i] != '\n' && s[i] != '\r';
	    i++)
		quote[q++] = is_text(s[i]) && s[i] != '\t' ? (char)s[i] : '?';
	quote[q] = '\0';
	/* The first reason (a timeout while quoting) must not win. */
	pthread_mutex_lock(&w->elock);
	w->err[0] = '\0';
	pthread_mutex_unlock(&w->elock);
	set_err(w, "peer is not patchsync; it said: \"%s\"", quote);
	return recv_dead(w, PS_EPEER);
}

int
ps_wire_recv_greeting(struct ps_wire *w, uint8_t type, size_t minlen,
    size_t maxlen, struct buf *payload)
{
	uint32_t len;
	int r, rc = PS_EPEER;

	r = fill(w, PS_FRAME_HDR, &rc);
	if (r < 0)
		return recv_dead(w, rc);
	if (r == 0 && w->ilen == w->ioff) {
		set_err(w, "peer closed the connection before greeting "
		    "(is patchsync installed and runnable there?)");
		return recv_dead(w, PS_EPEER);
	}
	len = r == 0 ? 0 : get_u32le(w->ibuf + w->ioff);
	if (r == 0 || len < minlen || len > maxlen ||
	    w->ibuf[w->ioff + 4] != type)
		return bad_greeting(w);
	return ps_wire_recv(w, &(uint8_t){ 0 }, payload);
}

void
ps_wire_clear_error(struct ps_wire *w)
{
	pthread_mutex_lock(&w->elock);
	w->err[0] = '\0';
	pthread_mutex_unlock(&w->elock);
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
