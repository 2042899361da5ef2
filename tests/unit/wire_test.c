/* Unit tests for the framed message stream (src/wire.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ps.h"
#include "msg.h"
#include "wire.h"

static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
}

/* Deterministic payload bytes for frame I of LEN bytes. */
static void
fill_pattern(unsigned char *p, size_t len, uint32_t seed)
{
	size_t i;
	uint32_t x = seed * 2654435761u + 1;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

/* ---- a thread that writes raw bytes, then closes its descriptor ---- */

struct raw {
	int fd;
	const void *p;
	size_t len;
	int close_after;
	pthread_t t;
};

static void *
raw_main(void *arg)
{
	struct raw *r = arg;
	const char *p = r->p;
	size_t left = r->len;
	ssize_t n;

	while (left > 0) {
		n = write(r->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n;
		left -= (size_t)n;
	}
	if (r->close_after)
		close(r->fd);
	return NULL;
}

static void
raw_start(struct raw *r, int fd, const void *p, size_t len, int close_after)
{
	r->fd = fd;
	r->p = p;
	r->len = len;
	r->close_after = close_after;
	assert_int_equal(pthread_create(&r->t, NULL, raw_main, r), 0);
}

static void
raw_join(struct raw *r)
{
	pthread_join(r->t, NULL);
}

/* ---- round trip ---- */

static const size_t sizes[] = { 0, 1, 4, 5, 100, 4096, 65536,
    256 * 1024 - 5, 256 * 1024, 256 * 1024 + 1, 1000000, PS_FRAME_MAX,
    3, 0, 77777, 2 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
#define ROUNDS 3

struct exact {
	struct ps_wire *w;
	int rc;
	pthread_t t;
};

/* Frame I: type I & 0xff, sizes[I % NSIZES] pattern bytes seeded by I. */
static void *
exact_main(void *arg)
{
	struct exact *x = arg;
	unsigned char *p = malloc(PS_FRAME_MAX);
	size_t i;

	x->rc = PS_OK;
	for (i = 0; i < NSIZES * ROUNDS && x->rc == PS_OK; i++) {
		fill_pattern(p, sizes[i % NSIZES], (uint32_t)i);
		x->rc = ps_wire_send(x->w, (uint8_t)i, p, sizes[i % NSIZES]);
	}
	if (x->rc == PS_OK)
		x->rc = ps_wire_shutdown_write(x->w);
	free(p);
	return NULL;
}

/* Free a pair of wires made over SV, and the payload buffer P. */
static void
done_pair(struct ps_wire *a, struct ps_wire *b, int sv[2], struct buf *p)
{
	buf_free(p);
	ps_wire_free(a);
	ps_wire_free(b);
	close(sv[0]);
	close(sv[1]);
}

static void
test_round_trip(void **state)
{
	struct ps_wire *a, *b;
	struct exact x = { 0 };
	struct buf p = { 0 };
	unsigned char *want = malloc(PS_FRAME_MAX);
	uint64_t total = 0;
	uint8_t type;
	size_t i;
	int sv[2];

	(void)state;
	pair(sv);
	a = ps_wire_new(sv[0], sv[0]);
	b = ps_wire_new(sv[1], sv[1]);
	x.w = a;
	assert_int_equal(pthread_create(&x.t, NULL, exact_main, &x), 0);
	for (i = 0; i < NSIZES * ROUNDS; i++) {
		if (ps_wire_recv(b, &type, &p) != PS_OK)
			fail_msg("frame %zu: %s", i, ps_wire_error(b));
		assert_int_equal(type, (uint8_t)i);
		assert_int_equal(p.len, sizes[i % NSIZES]);
		fill_pattern(want, p.len, (uint32_t)i);
		if (p.len > 0)
			assert_memory_equal(p.p, want, p.len);
		total += PS_FRAME_HDR + sizes[i % NSIZES];
	}
	/* The writer shut down after the last frame: a clean end. */
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_EPEER);
	assert_int_equal(ps_wire_eof(b), 1);
	assert_string_equal(ps_wire_error(b), "peer closed the connection");
	assert_int_equal(p.len, 0);
	/* Once dead, it stays dead. */
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_EPEER);
	pthread_join(x.t, NULL);
	assert_int_equal(x.rc, PS_OK);
	assert_int_equal(ps_wire_bytes_out(a), total);
	assert_int_equal(ps_wire_bytes_in(b), total);
	assert_int_equal(ps_wire_bytes_in(a), 0);
	assert_int_equal(ps_wire_bytes_out(b), 0);
	free(want);
	done_pair(a, b, sv, &p);
}

/* Several threads send at once: every frame arrives whole and in order. */
#define NSENDERS 4
#define PER_SENDER 60

struct sender {
	struct ps_wire *w;
	int id;			/* also the frame type */
	int rc;
	pthread_t t;
};

static size_t
sender_len(int i)
{
	size_t n = sizes[(size_t)i % NSIZES];

	n = n < 4 ? 4 : n;
	return n > 300000 ? 300000 : n;
}

static void *
sender_main(void *arg)
{
	struct sender *s = arg;
	unsigned char *p = malloc(300000);
	size_t len;
	int i;

	s->rc = PS_OK;
	for (i = 0; i < PER_SENDER && s->rc == PS_OK; i++) {
		len = sender_len(i);
		put_u32le(p, (uint32_t)i);
		fill_pattern(p + 4, len - 4, (uint32_t)(s->id * 1000 + i));
		if (i % 2)
			s->rc = ps_wire_send(s->w, (uint8_t)s->id, p, len);
		else
			s->rc = ps_wire_send2(s->w, (uint8_t)s->id, p, 4,
			    p + 4, len - 4);
	}
	if (s->rc == PS_OK)
		s->rc = ps_wire_flush(s->w);
	free(p);
	return NULL;
}

static void
test_threads(void **state)
{
	struct sender s[NSENDERS];
	struct ps_wire *a, *b;
	struct buf p = { 0 };
	unsigned char *want = malloc(300000);
	int next[NSENDERS] = { 0 };
	uint8_t type;
	int sv[2], i, n, id, seq;

	(void)state;
	pair(sv);
	a = ps_wire_new(sv[0], sv[0]);
	b = ps_wire_new(sv[1], sv[1]);
	for (i = 0; i < NSENDERS; i++) {
		s[i].w = a;
		s[i].id = i;
		assert_int_equal(pthread_create(&s[i].t, NULL, sender_main,
		    &s[i]), 0);
	}
	/*
	 * No flush from this thread: a sender holding the lock may be blocked
	 * writing until we read. The senders flush when they are done.
	 */
	for (n = 0; n < NSENDERS * PER_SENDER; n++) {
		if (ps_wire_recv(b, &type, &p) != PS_OK)
			fail_msg("frame %d: %s", n, ps_wire_error(b));
		id = type;
		assert_in_range(id, 0, NSENDERS - 1);
		assert_true(p.len >= 4);
		seq = (int)get_u32le(p.p);
		assert_int_equal(seq, next[id]);
		next[id]++;
		assert_int_equal(p.len, sender_len(seq));
		fill_pattern(want, p.len - 4, (uint32_t)(id * 1000 + seq));
		assert_memory_equal(p.p + 4, want, p.len - 4);
	}
	for (i = 0; i < NSENDERS; i++) {
		pthread_join(s[i].t, NULL);
		assert_int_equal(s[i].rc, PS_OK);
	}
	free(want);
	done_pair(a, b, sv, &p);
}

/* Held frames go after the ones that pass, in their order; a cap. */
static void
test_hold(void **state)
{
	struct ps_wire *a, *b;
	struct buf p = { 0 };
	unsigned char *big = calloc(1, PS_FRAME_MAX);
	uint8_t type;
	int sv[2], i, rc = PS_OK;

	(void)state;
	pair(sv);
	a = ps_wire_new(sv[0], sv[0]);
	b = ps_wire_new(sv[1], sv[1]);
	ps_wire_hold(a, 1ull << 11 | 1ull << 12);
	assert_int_equal(ps_wire_send(a, 28, "r1", 2), PS_OK);
	assert_int_equal(ps_wire_send(a, 11, "m1", 2), PS_OK);
	assert_int_equal(ps_wire_send(a, 70, "x", 1), PS_OK);	/* >= 64 */
	assert_int_equal(ps_wire_send(a, 12, "m2", 2), PS_OK);
	assert_int_equal(ps_wire_flush(a), PS_OK);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
	assert_int_equal(type, 11);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
	assert_int_equal(type, 12);
	assert_int_equal(ps_wire_release(a), PS_OK);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
	assert_int_equal(type, 28);
	assert_memory_equal(p.p, "r1", 2);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
	assert_int_equal(type, 70);
	/* Released: frames go at once again. */
	assert_int_equal(ps_wire_send(a, 28, "r2", 2), PS_OK);
	assert_int_equal(ps_wire_flush(a), PS_OK);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
	assert_int_equal(type, 28);
	/* No more than 64 MiB is held: then the stream is over. */
	ps_wire_hold(a, 0);
	for (i = 0; i < 17 && rc == PS_OK; i++)
		rc = ps_wire_send(a, 28, big, PS_FRAME_MAX);
	assert_int_equal(rc, PS_EPEER);
	assert_int_equal(i, 16);
	assert_non_null(strstr(ps_wire_error(a), "hold"));
	assert_int_equal(ps_wire_release(a), PS_EPEER);
	free(big);
	done_pair(a, b, sv, &p);
}

/* A frame whose tail is a file's bytes: over a pipe and a socket. */
struct sf_job {
	struct ps_wire *w;
	int fd, rc;
	uint64_t off;
	size_t n;
	pthread_t t;
};

static void *
sf_main(void *arg)
{
	struct sf_job *j = arg;

	j->rc = ps_wire_send_file(j->w, 22, "head", 4, j->fd, j->off, j->n);
	if (j->rc == PS_OK)
		j->rc = ps_wire_flush(j->w);
	return NULL;
}

static void
test_send_file(void **state)
{
	char name[] = "/tmp/wire_test.XXXXXX";
	unsigned char *data = malloc(300000);
	struct ps_wire *a, *b;
	struct buf p = { 0 };
	struct sf_job j;
	uint64_t before;
	uint8_t type;
	int fd, kind, sv[2], q[2];

	(void)state;
	fill_pattern(data, 300000, 5);
	assert_true((fd = mkstemp(name)) >= 0);
	unlink(name);
	assert_int_equal(write(fd, data, 300000), 300000);
	for (kind = 0; kind < 3; kind++) {
		if (kind == 0) {	/* pipes, as to a remote shell */
			assert_int_equal(pipe(sv), 0);
			assert_int_equal(pipe(q), 0);
			a = ps_wire_new(q[0], sv[1]);
			b = ps_wire_new(sv[0], q[1]);
		} else {		/* a socket, as to a local child */
			pair(sv);
			q[0] = q[1] = -1;
			a = ps_wire_new(sv[0], sv[0]);
			b = ps_wire_new(sv[1], sv[1]);
		}
		if (kind == 2)		/* paced: through a buffer */
			ps_wire_set_bwlimit(a, 64u << 20);
		/* More than a pipe holds: the sender waits for the reader. */
		j.w = a;
		j.fd = fd;
		j.off = 1000;
		j.n = 250000;
		assert_int_equal(pthread_create(&j.t, NULL, sf_main, &j), 0);
		assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
		pthread_join(j.t, NULL);
		assert_int_equal(j.rc, PS_OK);
		assert_int_equal(type, 22);
		assert_int_equal(p.len, 4 + 250000);
		assert_memory_equal(p.p, "head", 4);
		assert_memory_equal(p.p + 4, data + 1000, 250000);
		/* Past the end of the file: nothing goes. */
		before = ps_wire_bytes_out(a);
		assert_int_equal(ps_wire_send_file(a, 22, "h", 1, fd, 299000,
		    2000), PS_EPARTIAL);
		assert_int_equal(ps_wire_bytes_out(a), before);
		/* Held, then released in order. */
		ps_wire_hold(a, 0);
		j.off = 7;
		j.n = 3000;
		sf_main(&j);
		assert_int_equal(j.rc, PS_OK);
		assert_int_equal(ps_wire_send(a, 11, "m", 1), PS_OK);
		assert_int_equal(ps_wire_release(a), PS_OK);
		assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
		assert_int_equal(type, 22);
		assert_memory_equal(p.p + 4, data + 7, 3000);
		assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
		assert_int_equal(type, 11);
		if (q[0] >= 0) {
			close(q[0]);
			close(q[1]);
		}
		done_pair(a, b, sv, &p);
	}
	close(fd);
	free(data);
}

static void
test_send2(void **state)
{
	struct ps_wire *a, *b;
	struct buf p = { 0 };
	unsigned char *big = malloc(PS_FRAME_MAX);
	unsigned char hdr[12] = "chunk-header";
	uint8_t type;
	int sv[2];

	(void)state;
	pair(sv);
	a = ps_wire_new(sv[0], sv[0]);
	b = ps_wire_new(sv[1], sv[1]);
	fill_pattern(big, 1000, 7);
	assert_int_equal(ps_wire_send2(a, 42, hdr, sizeof(hdr), big, 1000),
	    PS_OK);
	assert_int_equal(ps_wire_send2(a, 43, NULL, 0, NULL, 0), PS_OK);
	assert_int_equal(ps_wire_flush(a), PS_OK);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
	assert_int_equal(type, 42);
	assert_int_equal(p.len, sizeof(hdr) + 1000);
	assert_memory_equal(p.p, hdr, sizeof(hdr));
	assert_memory_equal(p.p + sizeof(hdr), big, 1000);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
	assert_int_equal(type, 43);
	assert_int_equal(p.len, 0);
	/* One byte too big, split or not: refused, nothing sent. */
	assert_int_equal(ps_wire_send2(a, 1, hdr, sizeof(hdr), big,
	    PS_FRAME_MAX - sizeof(hdr) + 1), PS_EUSAGE);
	assert_int_equal(ps_wire_send(a, 1, big, (size_t)PS_FRAME_MAX + 1),
	    PS_EUSAGE);
	assert_int_equal(ps_wire_send2(a, 1, big, SIZE_MAX, big, 2),
	    PS_EUSAGE);
	assert_int_equal(ps_wire_bytes_out(a), 2 * PS_FRAME_HDR +
	    sizeof(hdr) + 1000);
	free(big);
	done_pair(a, b, sv, &p);
}

/*
 * Messages whose headers outgrow the stack buffer they start in: a
 * path of PS_PATH_MAX bytes (realloc of the stack buffer aborted), and
 * one of every length around that buffer's size.
 */
static void
test_long_headers(void **state)
{
	struct ps_wire *a, *b;
	struct buf p = { 0 };
	struct ps_msg_mkdir m, got;
	static const size_t lens[] = { 1, 240, 247, 248, 249, 252, 256, 300,
	    2048, PS_PATH_MAX };
	char *path = malloc(PS_PATH_MAX), why[128];
	uint8_t type;
	size_t i, k;
	int sv[2];

	(void)state;
	assert_non_null(path);
	for (k = 0; k < PS_PATH_MAX; k++)
		path[k] = k % 50 == 25 ? '/' : (char)('a' + k % 26);
	pair(sv);
	a = ps_wire_new(sv[0], sv[0]);
	b = ps_wire_new(sv[1], sv[1]);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		m.path.p = (const unsigned char *)path;
		m.path.len = lens[i];
		m.mode = 0755;
		assert_int_equal(ps_send_mkdir(a, &m), PS_OK);
		assert_int_equal(ps_wire_flush(a), PS_OK);
		assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
		assert_int_equal(type, PS_MSG_MKDIR);
		if (ps_dec_mkdir(&p, &got, why, sizeof(why)) != 0)
			fail_msg("%zu bytes: %s", lens[i], why);
		assert_int_equal(got.path.len, lens[i]);
		assert_memory_equal(got.path.p, path, lens[i]);
	}
	free(path);
	done_pair(a, b, sv, &p);
}

/* ---- broken streams ---- */

/* Feed RAW bytes (then EOF) to a fresh wire; return recv's result. */
static int
recv_raw(const void *raw, size_t len, struct ps_wire **wp, struct buf *p)
{
	struct raw r;
	uint8_t type;
	int sv[2], rc;

	pair(sv);
	raw_start(&r, sv[0], raw, len, 1);
	*wp = ps_wire_new(sv[1], sv[1]);
	rc = ps_wire_recv(*wp, &type, p);
	raw_join(&r);
	close(sv[1]);
	return rc;
}

static void
test_oversized(void **state)
{
	unsigned char h[PS_FRAME_HDR + 16] = { 0 };
	struct ps_wire *w;
	struct buf p = { 0 };

	(void)state;
	put_u32le(h, PS_FRAME_MAX + 1);
	h[4] = 3;
	assert_int_equal(recv_raw(h, sizeof(h), &w, &p), PS_EPEER);
	assert_string_equal(ps_wire_error(w),
	    "frame of 4194305 bytes exceeds the 4194304-byte limit");
	assert_int_equal(ps_wire_eof(w), 0);
	ps_wire_free(w);
	put_u32le(h, UINT32_MAX);
	assert_int_equal(recv_raw(h, sizeof(h), &w, &p), PS_EPEER);
	assert_non_null(strstr(ps_wire_error(w), "exceeds"));
	ps_wire_free(w);
	buf_free(&p);
}

static void
test_truncated(void **state)
{
	static const size_t cut[][2] = {	/* frame length, bytes sent */
		{ 100, 50 }, { 100, 0 }, { 100, 99 },
		{ 1000000, 300000 }, { 1000000, 999999 },
		{ PS_FRAME_MAX, 5 },
	};
	unsigned char *raw = calloc(1, PS_FRAME_HDR + 1000000);
	struct ps_wire *w;
	struct buf p = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		put_u32le(raw, (uint32_t)cut[i][0]);
		raw[4] = 9;
		assert_int_equal(recv_raw(raw, PS_FRAME_HDR + cut[i][1], &w,
		    &p), PS_EPEER);
		if (strstr(ps_wire_error(w), "middle of a frame") == NULL)
			fail_msg("case %zu: reason '%s'", i,
			    ps_wire_error(w));
		assert_int_equal(ps_wire_eof(w), 0);
		ps_wire_free(w);
	}
	/* A cut inside the header itself. */
	for (i = 1; i < PS_FRAME_HDR; i++) {
		assert_int_equal(recv_raw(raw, i, &w, &p), PS_EPEER);
		assert_non_null(strstr(ps_wire_error(w), "frame header"));
		assert_int_equal(ps_wire_eof(w), 0);
		ps_wire_free(w);
	}
	/* Nothing at all: a clean end, told apart from the above. */
	assert_int_equal(recv_raw(raw, 0, &w, &p), PS_EPEER);
	assert_int_equal(ps_wire_eof(w), 1);
	assert_string_equal(ps_wire_error(w), "peer closed the connection");
	ps_wire_free(w);
	free(raw);
	buf_free(&p);
}

static void
test_write_to_closed(void **state)
{
	struct ps_wire *w;
	char big[1000] = { 0 };
	int sv[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);	/* as main() does */
	pair(sv);
	close(sv[1]);
	w = ps_wire_new(sv[0], sv[0]);
	assert_int_equal(ps_wire_send(w, 5, big, sizeof(big)), PS_OK);
	assert_int_equal(ps_wire_flush(w), PS_EPEER);
	assert_string_equal(ps_wire_error(w), "peer closed the connection");
	assert_int_equal(ps_wire_send(w, 5, big, sizeof(big)), PS_EPEER);
	assert_int_equal(ps_wire_bytes_out(w), 0);
	ps_wire_free(w);
	close(sv[0]);
}

/* A peer that exits with our bytes unread: still a clean end between frames. */
static void
test_reset_is_eof(void **state)
{
	struct ps_wire *a, *b;
	struct buf p = { 0 };
	uint8_t type;
	int sv[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	pair(sv);
	a = ps_wire_new(sv[0], sv[0]);
	b = ps_wire_new(sv[1], sv[1]);
	assert_int_equal(ps_wire_send(b, 3, "unread", 6), PS_OK);
	assert_int_equal(ps_wire_flush(b), PS_OK);
	assert_int_equal(ps_wire_send(a, 4, "last", 4), PS_OK);
	assert_int_equal(ps_wire_flush(a), PS_OK);
	close(sv[0]);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
	assert_int_equal(type, 4);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_EPEER);
	assert_int_equal(ps_wire_eof(b), 1);
	buf_free(&p);
	ps_wire_free(a);
	ps_wire_free(b);
	close(sv[1]);
}

/* ---- payload decoding ---- */

static void
test_rd(void **state)
{
	struct buf b = { 0 };
	struct ps_rd r;
	const char *s;
	size_t len, i, n;

	(void)state;
	buf_addc(&b, 0xab);
	buf_add_u32(&b, 0x01020304);
	buf_add_u64(&b, 0x1122334455667788ull);
	buf_add_u64(&b, (uint64_t)-5);
	ps_buf_add_str(&b, "hello", 5);
	ps_buf_add_str(&b, "", 0);
	n = b.len;

	ps_rd_init(&r, b.p, b.len);
	assert_int_equal(ps_rd_u8(&r), 0xab);
	assert_int_equal(ps_rd_u32(&r), 0x01020304);
	assert_true(ps_rd_u64(&r) == 0x1122334455667788ull);
	assert_true(ps_rd_i64(&r) == -5);
	s = ps_rd_str(&r, &len, 5);
	assert_non_null(s);
	assert_int_equal(len, 5);
	assert_memory_equal(s, "hello", 5);
	s = ps_rd_str(&r, &len, 5);
	assert_non_null(s);
	assert_int_equal(len, 0);
	assert_int_equal(ps_rd_done(&r), 0);
	/* Past the end: bad, zero, and it sticks. */
	assert_int_equal(ps_rd_u8(&r), 0);
	assert_true(r.bad);
	assert_int_equal(ps_rd_done(&r), -1);

	/* Every read type fails on every truncation of its field. */
	for (i = 0; i < 8; i++) {
		ps_rd_init(&r, b.p + 5, i);
		assert_true(ps_rd_u64(&r) == 0 && r.bad);
		ps_rd_init(&r, b.p + 5, i);
		assert_true(ps_rd_i64(&r) == 0 && r.bad);
		if (i < 4) {
			ps_rd_init(&r, b.p + 1, i);
			assert_true(ps_rd_u32(&r) == 0 && r.bad);
		}
		if (i < 1) {
			ps_rd_init(&r, b.p, i);
			assert_true(ps_rd_u8(&r) == 0 && r.bad);
		}
	}
	for (i = 0; i < 9; i++) {	/* the "hello" string, cut */
		ps_rd_init(&r, b.p + 21, i);
		assert_null(ps_rd_str(&r, &len, 100));
		assert_true(r.bad);
		assert_int_equal(len, 0);
	}
	/* The maximum is enforced. */
	ps_rd_init(&r, b.p + 21, n - 21);
	assert_null(ps_rd_str(&r, &len, 4));
	assert_true(r.bad);
	/* A huge length does not wrap around. */
	ps_rd_init(&r, "\xff\xff\xff\xff" "abc", 7);
	assert_null(ps_rd_str(&r, &len, SIZE_MAX));
	assert_true(r.bad);
	ps_rd_init(&r, b.p, b.len);
	assert_null(ps_rd_bytes(&r, SIZE_MAX));
	assert_true(r.bad);
	/* After bad, nothing more is read even when bytes remain. */
	assert_int_equal(ps_rd_u8(&r), 0);
	/* Not everything consumed. */
	ps_rd_init(&r, b.p, b.len);
	ps_rd_u8(&r);
	assert_int_equal(ps_rd_done(&r), -1);
	/* Empty input. */
	ps_rd_init(&r, NULL, 0);
	assert_int_equal(ps_rd_done(&r), 0);
	assert_non_null(ps_rd_bytes(&r, 0));
	assert_null(ps_rd_bytes(&r, 1));
	buf_free(&b);
}

/* ---- greeting ---- */

/* ---- shutdown on a pipe ---- */

static void
test_shutdown_pipe(void **state)
{
	struct ps_wire *a, *b;
	struct buf p = { 0 };
	uint8_t type;
	int fd[2];

	(void)state;
	assert_int_equal(pipe2(fd, O_CLOEXEC), 0);
	a = ps_wire_new(-1, fd[1]);
	b = ps_wire_new(fd[0], -1);
	assert_int_equal(ps_wire_send(a, 7, "x", 1), PS_OK);
	assert_int_equal(ps_wire_shutdown_write(a), PS_OK);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_OK);
	assert_int_equal(ps_wire_recv(b, &type, &p), PS_EPEER);
	assert_int_equal(ps_wire_eof(b), 1);
	/* The descriptor number is still ours to close. */
	assert_int_equal(close(fd[1]), 0);
	close(fd[0]);
	buf_free(&p);
	ps_wire_free(a);
	ps_wire_free(b);
}

/* ---- bandwidth limit ---- */

struct drain {
	struct ps_wire *w;
	uint64_t bytes;
	pthread_t t;
};

static void *
drain_main(void *arg)
{
	struct drain *d = arg;
	struct buf p = { 0 };
	uint8_t type;

	while (ps_wire_recv(d->w, &type, &p) == PS_OK)
		d->bytes += p.len;
	buf_free(&p);
	return NULL;
}

static void
test_bwlimit(void **state)
{
	struct ps_wire *a;
	struct drain d = { 0 };
	struct timespec t0, t1;
	unsigned char *big = calloc(1, 1 << 20);
	double secs;
	int sv[2], i;

	(void)state;
	pair(sv);
	a = ps_wire_new(sv[0], sv[0]);
	d.w = ps_wire_new(sv[1], sv[1]);
	assert_int_equal(pthread_create(&d.t, NULL, drain_main, &d), 0);
	ps_wire_set_bwlimit(a, 4u << 20);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* 1 MiB as one big frame and as many small ones. */
	assert_int_equal(ps_wire_send(a, 1, big, 512 * 1024), PS_OK);
	for (i = 0; i < 512; i++)
		assert_int_equal(ps_wire_send(a, 1, big, 1024), PS_OK);
	assert_int_equal(ps_wire_flush(a), PS_OK);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* 0.25 s at the nominal rate; only a loose lower bound is safe. */
	if (secs < 0.18)
		fail_msg("1 MiB at 4 MiB/s took only %.3f s", secs);
	assert_int_equal(ps_wire_shutdown_write(a), PS_OK);
	pthread_join(d.t, NULL);
	assert_int_equal(d.bytes, 1 << 20);
	assert_int_equal(ps_wire_bytes_out(a),
	    (1 << 20) + 513 * PS_FRAME_HDR);
	assert_int_equal(ps_wire_bytes_in(d.w), ps_wire_bytes_out(a));
	free(big);
	ps_wire_free(a);
	ps_wire_free(d.w);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_send2),
		cmocka_unit_test(test_long_headers),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_write_to_closed),
		cmocka_unit_test(test_reset_is_eof),
		cmocka_unit_test(test_rd),
		cmocka_unit_test(test_shutdown_pipe),
		cmocka_unit_test(test_bwlimit),
		cmocka_unit_test(test_hold),
		cmocka_unit_test(test_send_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
