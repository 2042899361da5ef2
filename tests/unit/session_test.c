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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "console.h"
#include "server.h"
#include "session.h"

static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- a peer that writes raw bytes, slowly if asked ---- */

struct raw {
	int fd;
	const unsigned char *p;
	size_t len;
	int close_after;
	int every_ms;		/* 0: all at once; else one byte each */
	pthread_t t;
};

static void *
raw_main(void *arg)
{
	struct raw *r = arg;
	struct timespec ts;
	size_t i;

	if (r->every_ms == 0) {
		if (r->len > 0 && write(r->fd, r->p, r->len) < 0)
			return NULL;
	} else {
		ts.tv_sec = 0;
		ts.tv_nsec = (long)r->every_ms * 1000000;
		for (i = 0; i < r->len; i++) {
			if (write(r->fd, r->p + i, 1) != 1)
				break;
			nanosleep(&ts, NULL);
		}
	}
	if (r->close_after)
		shutdown(r->fd, SHUT_WR);
	return NULL;
}

/* A valid HELLO frame of VERSION, role server, in F; its length. */
static size_t
hello_frame(unsigned char *f, const char *magic, uint32_t version)
{
	put_u32le(f, 21);
	f[4] = PS_MSG_HELLO;
	memcpy(f + 5, magic, 8);
	put_u32le(f + 13, version);
	put_u32le(f + 17, 0);
	f[21] = PS_ROLE_SERVER;
	put_u32le(f + 22, 120);
	return 26;
}

/* Greet a raw peer as a console; the result and, in WHY, the reason. */
static double greet_took;	/* seconds the last greet_raw took */

static int
greet_raw(const void *bytes, size_t len, int close_after, int every_ms,
    unsigned timeout, char *why, size_t whylen)
{
	struct ps_sess s;
	struct raw r = { 0 };
	char *reason = NULL;
	double t0 = now();
	int sv[2], rc;

	pair(sv);
	r.fd = sv[0];
	r.p = bytes;
	r.len = len;
	r.close_after = close_after;
	r.every_ms = every_ms;
	assert_int_equal(pthread_create(&r.t, NULL, raw_main, &r), 0);
	rc = ps_sess_start(&s, PS_ROLE_CONSOLE, sv[1], sv[1], timeout, "srv");
	greet_took = now() - t0;
	(void)ps_sess_close(&s, &reason);
	snprintf(why, whylen, "%s", reason != NULL ? reason : "");
	free(reason);
	pthread_join(r.t, NULL);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void
test_greeting_bad(void **state)
{
	static const char bash[] = "bash: patchsync: command not found\n";
	static const char banner[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2";
	unsigned char f[64];
	char why[512];
	double t0;
	size_t n;

	(void)state;
	n = hello_frame(f, PS_MAGIC, PS_PROTO_VERSION);
	assert_int_equal(greet_raw(f, n, 0, 0, 5, why, sizeof(why)), PS_OK);

	n = hello_frame(f, "PSYNC\0\0\1", PS_PROTO_VERSION);
	assert_int_equal(greet_raw(f, n, 0, 0, 5, why, sizeof(why)),
	    PS_EPEER);
	assert_non_null(strstr(why, "not patchsync"));

	n = hello_frame(f, PS_MAGIC, 1);
	assert_int_equal(greet_raw(f, n, 0, 0, 5, why, sizeof(why)),
	    PS_EPEER);
	assert_non_null(strstr(why, "protocol version 1, this patchsync "
	    "speaks 5"));

	n = hello_frame(f, PS_MAGIC, PS_PROTO_VERSION);
	f[21] = PS_ROLE_CONSOLE;
	assert_int_equal(greet_raw(f, n, 0, 0, 5, why, sizeof(why)),
	    PS_EPEER);
	assert_non_null(strstr(why, "console too"));

	assert_int_equal(greet_raw(bash, strlen(bash), 1, 0, 5, why,
	    sizeof(why)), PS_EPEER);
	assert_string_equal(why, "peer is not patchsync; it said: "
	    "\"bash: patchsync: command not found\"");

	/* Text with no newline from a peer that waits: no hang. */
	t0 = now();
	assert_int_equal(greet_raw(banner, strlen(banner), 0, 0, 5, why,
	    sizeof(why)), PS_EPEER);
	assert_non_null(strstr(why, banner));
	assert_true(now() - t0 < 4);

	assert_int_equal(greet_raw("", 0, 1, 0, 5, why, sizeof(why)),
	    PS_EPEER);
	assert_non_null(strstr(why, "before greeting"));
}

/* A peer that says nothing, or trickles its greeting: bounded. */
static void
test_greeting_deadline(void **state)
{
	unsigned char f[64];
	char why[512];
	double t0;
	size_t n;

	(void)state;
	t0 = now();
	assert_int_equal(greet_raw("", 0, 0, 0, 1, why, sizeof(why)),
	    PS_EPEER);
	assert_true(now() - t0 < 5);
	assert_non_null(strstr(why, "timed out"));

	/* One byte every 100 ms: each read is quick, the whole is not. */
	n = hello_frame(f, PS_MAGIC, PS_PROTO_VERSION);
	assert_int_equal(greet_raw(f, n, 0, 100, 1, why, sizeof(why)),
	    PS_EPEER);
	assert_true(greet_took < 2);
	assert_non_null(strstr(why, "did not greet"));
}

/* ---- two real sessions ---- */

struct side {
	struct ps_sess s;
	uint8_t role;
	int fd;
	unsigned timeout;
	int rc;
	pthread_t t;
};

static void *
start_main(void *arg)
{
	struct side *x = arg;

	x->rc = ps_sess_start(&x->s, x->role, x->fd, x->fd, x->timeout,
	    x->role == PS_ROLE_SERVER ? "console" : "srv");
	return NULL;
}

static void
two_sides(struct side *c, struct side *s, unsigned ct, unsigned st,
    int sv[2])
{
	pair(sv);
	memset(c, 0, sizeof(*c));
	memset(s, 0, sizeof(*s));
	c->role = PS_ROLE_CONSOLE;
	c->fd = sv[0];
	c->timeout = ct;
	s->role = PS_ROLE_SERVER;
	s->fd = sv[1];
	s->timeout = st;
	assert_int_equal(pthread_create(&s->t, NULL, start_main, s), 0);
	start_main(c);
	pthread_join(s->t, NULL);
	assert_int_equal(c->rc, PS_OK);
	assert_int_equal(s->rc, PS_OK);
}

/* The timeouts are exchanged; a silent peer ends a wait; keepalives
 * keep a busy one alive. */
static void
test_timeouts(void **state)
{
	struct side c, s;
	struct buf msg = { 0 };
	uint8_t type;
	char *why = NULL;
	double t0;
	int sv[2];

	(void)state;
	two_sides(&c, &s, 1, 7, sv);
	assert_int_equal(c.s.peer_timeout, 7);
	assert_int_equal(s.s.peer_timeout, 1);
	/*
	 * The server is busy (here: silent) for 3 s; its keepalives (every
	 * 250 ms: a quarter of the shorter timeout) keep the console's 1 s
	 * timeout from ending the session.
	 */
	t0 = now();
	while (now() - t0 < 3)
		usleep(100000);
	assert_int_equal(ps_sess_rc(&c.s), PS_OK);
	/* Now the server stops everything: the console times out. */
	(void)ps_sess_close(&s.s, NULL);
	t0 = now();
	assert_int_equal(ps_sess_recv(&c.s, &type, &msg), PS_EPEER);
	assert_true(now() - t0 < 3);
	(void)ps_sess_close(&c.s, &why);
	assert_non_null(why);
	free(why);
	buf_free(&msg);
	close(sv[0]);
	close(sv[1]);

	/* A peer that greets and then says nothing at all. */
	two_sides(&c, &s, 1, 0, sv);
	/* Stop the server's keepalives without closing its end. */
	pthread_mutex_lock(&s.s.mu);
	s.s.ka_stop = 1;
	pthread_cond_broadcast(&s.s.ka_cv);
	pthread_mutex_unlock(&s.s.mu);
	pthread_join(s.s.ka, NULL);
	s.s.ka_running = 0;
	t0 = now();
	assert_int_equal(ps_sess_recv(&c.s, &type, &msg), PS_EPEER);
	assert_true(now() - t0 < 3);
	(void)ps_sess_close(&c.s, &why);
	assert_non_null(strstr(why, "timed out"));
	free(why);
	(void)ps_sess_close(&s.s, NULL);
	buf_free(&msg);
	close(sv[0]);
	close(sv[1]);
}

/* ERROR ends a session with the peer's code; its text is escaped. */
static void
test_error_frame(void **state)
{
	struct side c, s;
	struct ps_msg_error e = { PS_EVERIFY,
	    { (const unsigned char *)"bad\x1b[31m\nline", 13 } };
	struct buf msg = { 0 };
	uint8_t type;
	char *why = NULL;
	int sv[2];

	(void)state;
	two_sides(&c, &s, 5, 5, sv);
	assert_int_equal(ps_send_error(s.s.w, &e), PS_OK);
	assert_int_equal(ps_wire_flush(s.s.w), PS_OK);
	assert_int_equal(ps_sess_recv(&c.s, &type, &msg), PS_EVERIFY);
	(void)ps_sess_close(&c.s, &why);
	assert_string_equal(why, "bad\\x1b[31m\\nline");
	free(why);
	(void)ps_sess_close(&s.s, NULL);
	buf_free(&msg);
	close(sv[0]);
	close(sv[1]);
}

/* A manifest that expands far beyond what arrived is refused early. */
static void
test_manifest_bomb(void **state)
{
	struct side c, s;
	struct ps_manifest m;
	struct ps_msg_mfdata d;
	struct ps_msg_mfend e;
	struct ps_entry big;
	struct ps_mfw w;
	struct buf raw = { 0 }, z = { 0 };
	ZSTD_CCtx *cz;
	ZSTD_inBuffer ib;
	ZSTD_outBuffer ob;
	uint64_t raw_total = 0;
	char *why = NULL, name[16];
	int sv[2], i;

	(void)state;
	/*
	 * A well-formed manifest that expands without end: 1 TiB files
	 * whose million block sums are all zero, 12 MiB each, a few
	 * kilobytes compressed.
	 */
	memset(&big, 0, sizeof(big));
	big.type = PS_FT_FILE;
	big.mode = 0644;
	big.size = 1ull << 40;
	big.block_shift = 20;
	big.nblocks = PS_SUMS_MAX_BLOCKS;
	big.blocks = calloc(big.nblocks, sizeof(*big.blocks));
	big.weak = calloc(big.nblocks, sizeof(*big.weak));
	assert_non_null(big.blocks);
	assert_non_null(big.weak);
	cz = ZSTD_createCCtx();
	ps_mfw_begin(&w, 0, PS_ENC_WIRE, &raw);
	for (i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		big.path = name;
		big.path_len = (uint32_t)strlen(name);
		ps_mfw_add(&w, &big);
		ib.src = raw.p;
		ib.size = raw.len;
		ib.pos = 0;
		while (ib.pos < ib.size) {
			buf_reserve(&z, ZSTD_CStreamOutSize());
			ob.dst = z.p + z.len;
			ob.size = z.cap - z.len;
			ob.pos = 0;
			assert_false(ZSTD_isError(ZSTD_compressStream2(cz,
			    &ob, &ib, ZSTD_e_continue)));
			z.len += ob.pos;
		}
		raw_total += raw.len;
		raw.len = 0;
	}
	ps_mfw_end(&w);
	buf_free(&raw);
	ZSTD_freeCCtx(cz);
	free(big.blocks);
	free(big.weak);
	assert_true(z.len < (1u << 20));
	two_sides(&c, &s, 5, 5, sv);
	d.data.p = z.p;
	d.data.len = z.len;
	(void)ps_send_mfdata(s.s.w, &d);
	e.codec = PS_CODEC_ZSTD;
	e.raw_len = raw_total;
	(void)ps_send_mfend(s.s.w, &e);
	(void)ps_wire_flush(s.s.w);
	assert_int_equal(ps_sess_recv_manifest(&c.s, &m), PS_EPEER);
	(void)ps_sess_close(&c.s, &why);
	assert_non_null(strstr(why, "expands"));
	free(why);
	(void)ps_sess_close(&s.s, NULL);
	buf_free(&z);
	close(sv[0]);
	close(sv[1]);
}

/* ---- a whole push, console role against server role, in-process ---- */

struct srv {
	int fd;
	const char *root;
	int rc;
	pthread_t t;
};

static void *
srv_main(void *arg)
{
	struct srv *x = arg;
	struct ps_serve_opts o = { x->root, 10, 0 };

	x->rc = ps_serve(x->fd, x->fd, &o);
	return NULL;
}

static void
write_file(const char *path, const char *text, size_t n)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, n, fp), n);
	fclose(fp);
}

static char *
read_file(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	char *p;
	long len;

	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	p = malloc((size_t)len + 1);
	*n = fread(p, 1, (size_t)len, fp);
	fclose(fp);
	return p;
}

static int
push_once(const char *src_dir, const char *root, struct ps_target *t,
    int delete)
{
	struct ps_console_opts o;
	struct ps_source src;
	struct ps_sess ss;
	struct srv x;
	int sv[2], rc;

	memset(&o, 0, sizeof(o));
	memset(&src, 0, sizeof(src));
	memset(t, 0, sizeof(*t));
	o.mode = PS_OPEN_PUSH;
	o.flags = delete ? PS_OF_DELETE : 0;
	o.send.delete = delete;
	o.send.max_delete = -1;
	o.send.whole_file = 0;
	src.dest = "";
	src.path = src_dir;
	assert_int_equal(ps_source_open(&src), PS_OK);
	src.rc = ps_source_scan(&src, NULL, 0);
	t->name = strdup("srv");
	t->url = strdup(root);
	pair(sv);
	x.fd = sv[1];
	x.root = root;
	assert_int_equal(pthread_create(&x.t, NULL, srv_main, &x), 0);
	rc = ps_sess_start(&ss, PS_ROLE_CONSOLE, sv[0], sv[0], 10, "srv");
	assert_int_equal(rc, PS_OK);
	rc = ps_console_session(&o, &src, 1, t, &ss);
	pthread_join(x.t, NULL);
	assert_int_equal(x.rc, PS_OK);
	close(sv[0]);
	close(sv[1]);
	ps_source_free(&src);
	return rc;
}

static void
test_push_session(void **state)
{
	char tmpl[] = "/tmp/ps-session-XXXXXX", *dir, path[4096], *got;
	char big[200000];
	struct ps_target t;
	size_t i, n;

	(void)state;
	dir = mkdtemp(tmpl);
	assert_non_null(dir);
	/* The server's cache of dst's manifest: here, not in ~/.cache. */
	snprintf(path, sizeof(path), "%s/cache", dir);
	assert_int_equal(setenv("XDG_CACHE_HOME", path, 1), 0);
	snprintf(path, sizeof(path), "%s/src", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/src/sub", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/dst", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + i / 1000);
	snprintf(path, sizeof(path), "%s/src/big.bin", dir);
	write_file(path, big, sizeof(big));
	snprintf(path, sizeof(path), "%s/src/sub/a.txt", dir);
	write_file(path, "hello\n", 6);
	snprintf(path, sizeof(path), "%s/dst/old", dir);
	write_file(path, "old", 3);

	snprintf(path, sizeof(path), "%s/src", dir);
	{
		char root[4096];

		snprintf(root, sizeof(root), "%s/dst", dir);
		assert_int_equal(push_once(path, root, &t, 1), PS_OK);
		assert_int_equal(t.st.files, 2);
		assert_int_equal(t.st.deleted, 1);
		ps_target_free(&t);
		/* Changed in the middle: the second push sends a delta. */
		big[100000] ^= 1;
		snprintf(path, sizeof(path), "%s/src/big.bin", dir);
		write_file(path, big, sizeof(big));
		snprintf(path, sizeof(path), "%s/src", dir);
		assert_int_equal(push_once(path, root, &t, 1), PS_OK);
		assert_int_equal(t.st.files, 1);
		assert_true(t.st.matched > 100000);
		ps_target_free(&t);
	}
	snprintf(path, sizeof(path), "%s/dst/big.bin", dir);
	got = read_file(path, &n);
	assert_non_null(got);
	assert_int_equal(n, sizeof(big));
	assert_memory_equal(got, big, n);
	free(got);
	snprintf(path, sizeof(path), "%s/dst/old", dir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_bad),
		cmocka_unit_test(test_greeting_deadline),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_error_frame),
		cmocka_unit_test(test_manifest_bomb),
		cmocka_unit_test(test_push_session),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
