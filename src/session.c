/*
 * session.c — set-up, the receive loop, failures, keepalives and the
 * manifest exchange of one session (session.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>
#include <zstd.h>

#include "session.h"
#include "url.h"

#define MF_SLACK (16u << 20)	/* decoded manifest bytes always allowed */
#define CHILD_WAIT_SECS 30	/* for a child to end after our BYE */

/* ---- failures ---- */

static void
sess_init(struct ps_sess *s, uint8_t role, unsigned timeout,
    const char *peer)
{
	memset(s, 0, sizeof(*s));
	s->role = role;
	s->timeout = timeout;
	s->peer = xstrdup(peer);
	s->conn.rfd = s->conn.wfd = -1;
	s->conn.pid = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->ka_cv, NULL);
}

/*
 * Record RC and WHY unless a failure is recorded already (a provisional
 * one gives way to a definite one); 1 if recorded.
 */
static int
record(struct ps_sess *s, int rc, const char *why, int provisional)
{
	int first;

	pthread_mutex_lock(&s->mu);
	first = s->rc == PS_OK || (s->provisional && !provisional);
	if (first) {
		s->rc = rc;
		s->provisional = provisional;
		snprintf(s->why, sizeof(s->why), "%s", why);
	}
	pthread_mutex_unlock(&s->mu);
	return first;
}

/* Say the recorded reason (console side), as ps_sess_fail would. */
static void
say(struct ps_sess *s, int rc, const char *why)
{
	size_t n = strlen(s->peer);

	if (s->role == PS_ROLE_SERVER || rc == PS_EINTR)
		return;
	/* A reason that names the peer already needs no prefix. */
	if (strncmp(why, s->peer, n) == 0 && why[n] == ':')
		ps_err("%s", why);
	else
		ps_err("%s: %s", s->peer, why);
}

static void
send_error(struct ps_sess *s, int rc, const char *text)
{
	struct ps_msg_error e;

	if (s->w == NULL || rc == PS_EINTR)
		return;
	e.code = (uint32_t)(rc >= PS_EUSAGE && rc <= PS_EVERIFY ? rc :
	    PS_EPEER);
	e.text.p = (const unsigned char *)text;
	e.text.len = strlen(text) > PS_TEXT_MAX ? PS_TEXT_MAX : strlen(text);
	(void)ps_send_error(s->w, &e);
	(void)ps_wire_flush(s->w);
}

int
ps_sess_fail(struct ps_sess *s, int rc, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (!record(s, rc, why, 0))
		return rc;
	if (s->role == PS_ROLE_SERVER) {
		/* Our stderr is the console's terminal: tell it in-band. */
		ps_err("%s", why);
		send_error(s, rc, why);
	} else {
		say(s, rc, why);
	}
	return rc;
}

int
ps_sess_said(struct ps_sess *s, int rc, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (record(s, rc, why, 0) && s->role == PS_ROLE_SERVER)
		send_error(s, rc, why);
	return rc;
}

int
ps_sess_unexpected(struct ps_sess *s, uint8_t type, const char *where)
{
	return ps_sess_fail(s, PS_EPEER, "the %s broke the protocol: "
	    "unexpected %s message %s", s->role == PS_ROLE_CONSOLE ?
	    "server" : "console", ps_msg_name(type), where);
}

int
ps_sess_decode(struct ps_sess *s, uint8_t type, const struct buf *payload,
    void *m)
{
	char why[256];

	if (ps_msg_decode(type, payload->p, payload->len, m, why,
	    sizeof(why)) == 0)
		return PS_OK;
	return ps_sess_fail(s, PS_EPEER, "the %s broke the protocol: %s",
	    s->role == PS_ROLE_CONSOLE ? "server" : "console", why);
}

int
ps_sess_rc(struct ps_sess *s)
{
	int rc;

	pthread_mutex_lock(&s->mu);
	rc = s->rc;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

char *
ps_sess_why(struct ps_sess *s)
{
	char *why = NULL;

	pthread_mutex_lock(&s->mu);
	if (s->rc != PS_OK)
		why = xstrdup(s->why);
	pthread_mutex_unlock(&s->mu);
	return why;
}

/* The wire failed: record its reason (a read, a write or a timeout). */
static int
wire_failed(struct ps_sess *s, int rc)
{
	if (rc == PS_EINTR)
		return ps_sess_fail(s, PS_EINTR, "interrupted");
	return ps_sess_fail(s, rc, "%s", ps_wire_error(s->w));
}

int
ps_sess_send_failed(struct ps_sess *s, int rc)
{
	if (rc == PS_OK)
		return PS_OK;
	if (rc == PS_EINTR)
		return ps_sess_fail(s, PS_EINTR, "interrupted");
	(void)record(s, rc, ps_wire_error(s->w), 1);
	return rc;
}

static int peer_words(struct ps_sess *s, uint8_t type,
    const struct buf *payload);

/*
 * A send failed and nobody has said why yet: read what the peer sent
 * before it went (at most a second), then say the reason once.
 */
static void
settle(struct ps_sess *s)
{
	struct buf msg = { 0 };
	uint8_t type;
	int provisional, rc;
	char why[512];

	pthread_mutex_lock(&s->mu);
	provisional = s->provisional;
	pthread_mutex_unlock(&s->mu);
	if (!provisional || s->w == NULL)
		return;
	ps_wire_set_deadline(s->w, 1);
	while (ps_wire_recv(s->w, &type, &msg) == PS_OK)
		if (type == PS_MSG_ERROR) {
			(void)peer_words(s, type, &msg);
			break;
		}
	buf_free(&msg);
	pthread_mutex_lock(&s->mu);
	provisional = s->provisional;
	s->provisional = 0;
	rc = s->rc;
	memcpy(why, s->why, sizeof(why));
	pthread_mutex_unlock(&s->mu);
	if (provisional)
		say(s, rc, why);
}

void
ps_sess_notice(struct ps_sess *s, int level, const char *fmt, ...)
{
	struct ps_msg_notice n;
	char text[PS_TEXT_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	n.level = (uint8_t)level;
	n.text.p = (const unsigned char *)text;
	n.text.len = strlen(text);
	(void)ps_send_notice(s->w, &n);
	(void)ps_wire_flush(s->w);
}

/* ---- the receive loop ---- */

/* NOTICE and ERROR: the peer's words, escaped before they are shown. */
static int
peer_words(struct ps_sess *s, uint8_t type, const struct buf *payload)
{
	struct ps_msg_notice n;
	struct ps_msg_error e;
	char *text;
	int rc;

	if (type == PS_MSG_NOTICE) {
		if ((rc = ps_sess_decode(s, type, payload, &n)) != PS_OK)
			return rc;
		if (s->role == PS_ROLE_SERVER)
			return PS_OK;	/* a console has nothing to say */
		text = ps_escape((const char *)n.text.p, n.text.len);
		if (n.level == PS_NOTE_ERROR) {
			ps_err("%s: %s", s->peer, text);
			pthread_mutex_lock(&s->mu);
			s->nerrors++;
			pthread_mutex_unlock(&s->mu);
		} else if (n.level == PS_NOTE_WARN) {
			ps_warn("%s: %s", s->peer, text);
		} else {
			ps_info(0, "%s: %s", s->peer, text);
		}
		free(text);
		return PS_OK;
	}
	if ((rc = ps_sess_decode(s, type, payload, &e)) != PS_OK)
		return rc;
	text = ps_escape((const char *)e.text.p, e.text.len);
	/* The peer's own interruption is, to us, a server that failed. */
	rc = e.code >= PS_EUSAGE && e.code <= PS_EVERIFY ? (int)e.code :
	    PS_EPEER;
	rc = ps_sess_fail(s, rc, "%s", *text ? text : "the peer gave up");
	free(text);
	return rc;
}

int
ps_sess_recv(struct ps_sess *s, uint8_t *type, struct buf *payload)
{
	int rc;

	for (;;) {
		if ((rc = ps_sess_rc(s)) != PS_OK) {
			settle(s);
			return ps_sess_rc(s);
		}
		if ((rc = ps_wire_recv(s->w, type, payload)) != PS_OK)
			return wire_failed(s, rc);
		switch (*type) {
		case PS_MSG_KEEPALIVE:
			if (payload->len != 0)
				return ps_sess_decode(s, *type, payload,
				    &(struct ps_msg_empty){ 0 });
			continue;
		case PS_MSG_NOTICE:
			if ((rc = peer_words(s, *type, payload)) != PS_OK)
				return rc;
			continue;
		case PS_MSG_ERROR:
			return peer_words(s, *type, payload);
		default:
			return PS_OK;
		}
	}
}

/* ---- keepalives ---- */

static unsigned
ka_interval_ms(const struct ps_sess *s)
{
	unsigned t = s->timeout;

	if (s->peer_timeout != 0 && (t == 0 || s->peer_timeout < t))
		t = s->peer_timeout;
	if (t == 0)
		return 0;
	return t * 1000 / 4 < 500 ? 500 : t * 1000 / 4;
}

static void *
keepalive(void *arg)
{
	struct ps_sess *s = arg;
	unsigned every = ka_interval_ms(s);
	struct timespec ts;

	pthread_mutex_lock(&s->mu);
	while (!s->ka_stop && s->rc == PS_OK) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += every / 4000;
		ts.tv_nsec += (long)(every / 4 % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->ka_cv, &s->mu, &ts);
		if (s->ka_stop || s->rc != PS_OK)
			break;
		if (ps_wire_idle_ms(s->w) < every)
			continue;
		pthread_mutex_unlock(&s->mu);
		if (ps_send_keepalive(s->w, NULL) == PS_OK)
			(void)ps_wire_flush(s->w);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void
ka_start(struct ps_sess *s)
{
	if (ka_interval_ms(s) == 0)
		return;
	s->ka_running = pthread_create(&s->ka, NULL, keepalive, s) == 0;
}

static void
ka_stop(struct ps_sess *s)
{
	if (!s->ka_running)
		return;
	pthread_mutex_lock(&s->mu);
	s->ka_stop = 1;
	pthread_cond_broadcast(&s->ka_cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->ka, NULL);
	s->ka_running = 0;
}

/* ---- the greeting ---- */

static int
greet(struct ps_sess *s)
{
	static const unsigned char magic[] = PS_MAGIC;
	struct ps_msg_hello h = { { magic, PS_MAGIC_LEN }, PS_PROTO_VERSION,
	    0, s->role, s->timeout };
	struct buf p = { 0 };
	struct ps_rd rd;
	uint32_t version;
	int rc, sent;

	/* The greeting's own limit; a shorter --timeout shortens it. */
	ps_wire_set_deadline(s->w, s->timeout != 0 && s->timeout <
	    PS_GREETING_SECS ? s->timeout : PS_GREETING_SECS);
	sent = ps_send_hello(s->w, &h);
	if (sent == PS_OK)
		sent = ps_wire_flush(s->w);
	if (sent == PS_EINTR)
		return wire_failed(s, sent);
	/*
	 * Even when our greeting could not go out (the peer is gone), what
	 * it wrote before going (a shell error) explains more than EPIPE.
	 */
	if (sent != PS_OK)
		ps_wire_clear_error(s->w);
	rc = ps_wire_recv_greeting(s->w, PS_MSG_HELLO, PS_MAGIC_LEN + 4,
	    256, &p);
	if (rc != PS_OK) {
		buf_free(&p);
		return wire_failed(s, rc);
	}
	/* The version first: an old peer's HELLO has other fields. */
	ps_rd_init(&rd, p.p, p.len);
	(void)ps_rd_bytes(&rd, PS_MAGIC_LEN);
	version = ps_rd_u32(&rd);
	if (memcmp(p.p, PS_MAGIC, PS_MAGIC_LEN) != 0)
		rc = ps_sess_fail(s, PS_EPEER, "peer is not patchsync (bad "
		    "greeting)");
	else if (version != PS_PROTO_VERSION)
		rc = ps_sess_fail(s, PS_EPEER, "peer speaks protocol version "
		    "%u, this patchsync speaks %u (install the same release "
		    "on both sides)", version, PS_PROTO_VERSION);
	else if ((rc = ps_sess_decode(s, PS_MSG_HELLO, &p, &h)) == PS_OK &&
	    h.role == s->role)
		rc = ps_sess_fail(s, PS_EPEER, "peer greeted as a %s too",
		    s->role == PS_ROLE_CONSOLE ? "console" : "server");
	buf_free(&p);
	if (rc == PS_OK && sent != PS_OK)
		rc = wire_failed(s, sent);
	if (rc != PS_OK)
		return rc;
	s->peer_timeout = h.timeout;
	ps_wire_set_deadline(s->w, 0);
	ka_start(s);
	return PS_OK;
}

int
ps_sess_connect(struct ps_sess *s, const struct ps_sess_opts *o)
{
	struct ps_conn_opts co = { o->rsh, o->remote_path, NULL, o->relay,
	    o->pipe_size };
	struct ps_url u;
	char err[256];
	int rc;

	sess_init(s, PS_ROLE_CONSOLE, o->timeout, o->label);
	if (ps_url_parse(o->url, &u, err, sizeof(err)) != 0)
		return ps_sess_fail(s, PS_EUSAGE, "%s", err);
	rc = ps_conn_open(&u, &co, &s->conn);
	ps_url_free(&u);
	if (rc != PS_OK)
		return ps_sess_fail(s, rc == PS_EUSAGE ? PS_EUSAGE : PS_EPEER,
		    "%s", s->conn.err);
	s->have_conn = 1;
	s->w = ps_wire_new(s->conn.rfd, s->conn.wfd);
	ps_wire_set_timeout(s->w, o->timeout);
	if (o->bwlimit > 0)
		ps_wire_set_bwlimit(s->w, o->bwlimit);
	return greet(s);
}

int
ps_sess_start(struct ps_sess *s, uint8_t role, int rfd, int wfd,
    unsigned timeout, const char *peer)
{
	sess_init(s, role, timeout, peer);
	s->w = ps_wire_new(rfd, wfd);
	ps_wire_set_timeout(s->w, timeout);
	return greet(s);
}

int
ps_sess_close(struct ps_sess *s, char **why)
{
	int rc = ps_sess_rc(s), status;

	ka_stop(s);
	settle(s);
	rc = ps_sess_rc(s);
	if (s->w != NULL) {
		if (rc == PS_OK && s->role == PS_ROLE_CONSOLE)
			(void)ps_send_bye(s->w, NULL);
		(void)ps_wire_shutdown_write(s->w);
	}
	if (s->have_conn) {
		/*
		 * A server that failed is told to stop; after an
		 * interruption it is cleaning up (it got the signal too, or
		 * sees our end close): give it time.
		 */
		if (rc != PS_OK && rc != PS_EINTR)
			(void)ps_conn_kill(&s->conn);
		status = ps_conn_close(&s->conn, CHILD_WAIT_SECS);
		if (rc == PS_OK && status != 0)
			rc = ps_sess_fail(s, PS_EPEER, "the server ended "
			    "with status %d", status);
	}
	if (why != NULL)
		*why = ps_sess_why(s);
	ps_wire_free(s->w);
	s->w = NULL;
	free(s->peer);
	s->peer = NULL;
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->ka_cv);
	return rc;
}

/* ---- manifests ---- */

/* ---- manifests, as streams ---- */

/* Raw manifest bytes compressed at a time; each batch is sent at once. */
#define MFOUT_BATCH	(256u << 10)

struct ps_sess_mfout {
	struct ps_sess *s;
	ZSTD_CCtx *z;
	struct ps_mfw w;
	struct buf raw;		/* encoded, not compressed yet */
	struct buf zout;	/* compressed, not sent yet */
	uint64_t raw_total;
	int rc;
};

/* Compress what RAW holds (MODE: continue, flush or end) and send it. */
static int
mfout_push(struct ps_sess_mfout *o, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer ib = { o->raw.p, o->raw.len, 0 };
	struct ps_msg_mfdata d;
	ZSTD_outBuffer ob;
	size_t left;

	o->raw_total += o->raw.len;
	do {
		buf_reserve(&o->zout, ZSTD_CStreamOutSize());
		ob.dst = o->zout.p + o->zout.len;
		ob.size = o->zout.cap - o->zout.len;
		ob.pos = 0;
		left = ZSTD_compressStream2(o->z, &ob, &ib, mode);
		if (ZSTD_isError(left)) {
			o->raw.len = 0;
			return ps_sess_fail(o->s, PS_EPARTIAL, "cannot "
			    "compress a manifest: %s",
			    ZSTD_getErrorName(left));
		}
		o->zout.len += ob.pos;
		while (o->zout.len >= PS_FRAME_MAX ||
		    (o->zout.len > 0 && mode != ZSTD_e_continue &&
		    left == 0)) {
			size_t n = o->zout.len < PS_FRAME_MAX ? o->zout.len :
			    PS_FRAME_MAX;
			int rc;

			d.data.p = o->zout.p;
			d.data.len = n;
			rc = ps_send_mfdata(o->s->w, &d);
			if (rc != PS_OK) {
				o->raw.len = 0;
				return ps_sess_send_failed(o->s, rc);
			}
			memmove(o->zout.p, o->zout.p + n, o->zout.len - n);
			o->zout.len -= n;
		}
	} while (ib.pos < ib.size || (mode != ZSTD_e_continue && left != 0));
	o->raw.len = 0;
	if (mode == ZSTD_e_flush) {
		int rc = ps_wire_flush(o->s->w);

		if (rc != PS_OK)
			return ps_sess_send_failed(o->s, rc);
	}
	return PS_OK;
}

struct ps_sess_mfout *
ps_sess_mfout_begin(struct ps_sess *s, uint32_t flags)
{
	struct ps_sess_mfout *o = xcalloc(1, sizeof(*o));

	o->s = s;
	if ((o->z = ZSTD_createCCtx()) == NULL) {
		ps_err("out of memory");
		exit(PS_EPARTIAL);
	}
	/* Sorted paths share prefixes: about half the bytes go. */
	(void)ZSTD_CCtx_setParameter(o->z, ZSTD_c_compressionLevel, 1);
	ps_mfw_begin(&o->w, flags, PS_ENC_WIRE, &o->raw);
	return o;
}

void
ps_sess_mfout_nosums(struct ps_sess_mfout *o)
{
	o->w.how |= PS_ENC_NOSUMS;
}

int
ps_sess_mfout_add(struct ps_sess_mfout *o, const struct ps_entry *e)
{
	if (o->rc != PS_OK)
		return o->rc;
	ps_mfw_add(&o->w, e);
	/*
	 * A batch at a time, flushed: the peer compares while we walk.
	 * The flushes cost a little compression.
	 */
	if (o->raw.len >= MFOUT_BATCH)
		o->rc = mfout_push(o, ZSTD_e_flush);
	return o->rc;
}

int
ps_sess_mfout_end(struct ps_sess_mfout *o)
{
	struct ps_msg_mfend e;
	int rc;

	if (o->rc == PS_OK) {
		ps_mfw_end(&o->w);
		o->rc = mfout_push(o, ZSTD_e_end);
	}
	if (o->rc == PS_OK) {
		e.codec = PS_CODEC_ZSTD;
		e.raw_len = o->raw_total;
		rc = ps_send_mfend(o->s->w, &e);
		if (rc == PS_OK)
			rc = ps_wire_flush(o->s->w);
		if (rc != PS_OK)
			o->rc = ps_sess_send_failed(o->s, rc);
	}
	return o->rc;
}

void
ps_sess_mfout_free(struct ps_sess_mfout *o)
{
	if (o == NULL)
		return;
	if (o->w.st != NULL) {
		/* Ended without ps_sess_mfout_end: drop the encoder. */
		ps_mfw_end(&o->w);
	}
	ZSTD_freeCCtx(o->z);
	buf_free(&o->raw);
	buf_free(&o->zout);
	free(o);
}

int
ps_sess_send_manifest(struct ps_sess *s, const struct ps_manifest *m)
{
	struct ps_sess_mfout *o = ps_sess_mfout_begin(s, m->flags);
	size_t i;
	int rc = PS_OK;

	for (i = 0; i < m->n && rc == PS_OK; i++)
		rc = ps_sess_mfout_add(o, &m->e[i]);
	if (rc == PS_OK)
		rc = ps_sess_mfout_end(o);
	ps_sess_mfout_free(o);
	return rc;
}

struct qframe {
	uint8_t type;
	struct buf b;
};

struct ps_sess_mf {
	struct ps_sess *s;
	ZSTD_DStream *z;
	struct buf msg;		/* the MFDATA frame being decompressed */
	ZSTD_inBuffer ib;
	uint64_t zbytes;	/* compressed bytes received */
	uint64_t cost;		/* and their frames' bookkeeping */
	uint64_t raw;		/* decompressed bytes handed on */
	size_t zleft;		/* ZSTD's hint: 0 at the end of its frame */
	int ended;		/* MFEND received and checked */
	int rc;			/* the session's failure, once failed */
	struct ps_mfin *in;
	/* Frames received ahead (ps_sess_mf_prefetch), each as it came. */
	struct qframe *q;
	size_t nq, capq, qhead;
	size_t qbytes;		/* their bytes and bookkeeping, not read */
	int qdone;		/* the last frame of the manifest is queued */
	uint8_t qlast;		/* and its type */
	int skipped;		/* taken unread (ps_sess_mf_skip) */
	/* The frames' running digest (ps_sess_mf_hash), or NULL. */
	XXH3_state_t *h;
	uint64_t nframes;
	void (*fn)(void *, uint64_t, const unsigned char *);
	void *fnarg;
};

/* The frames received ahead, read or not: gone. */
static void
q_free(struct ps_sess_mf *m)
{
	size_t i;

	for (i = 0; i < m->nq; i++)
		buf_free(&m->q[i].b);
	free(m->q);
	m->q = NULL;
	m->nq = m->capq = m->qhead = 0;
	m->qbytes = 0;
}

/* Frame TYPE with its N bytes at P came: into the running digest. */
static void
mf_hash(struct ps_sess_mf *m, uint8_t type, const void *p, size_t n)
{
	XXH128_canonical_t c;
	uint32_t len = (uint32_t)n;

	if (m->h == NULL)
		return;
	(void)XXH3_128bits_update(m->h, &type, 1);
	(void)XXH3_128bits_update(m->h, &len, 4);
	(void)XXH3_128bits_update(m->h, p, n);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(m->h));
	if (m->fn != NULL)
		m->fn(m->fnarg, m->nframes, c.digest);
	m->nframes++;
}

/* Compressed manifest bytes received ahead at most. */
#define MF_PREFETCH_MAX	(64u << 20)
/* What a frame received ahead costs besides its bytes. */
#define QFRAME_COST	64
/* What a manifest frame counts for at least, against PS_MAX_MANIFEST. */
#define MF_FRAME_COST	4096

static const char *
mf_who(const struct ps_sess *s)
{
	return s->role == PS_ROLE_CONSOLE ? "server" : "console";
}

/*
 * The stream's read function: decompressed bytes of the MFDATA frames,
 * never more than their size allows; 0 after a checked MFEND.
 */
static ssize_t
mf_read(void *arg, void *p, size_t n)
{
	struct ps_sess_mf *m = arg;
	struct ps_msg_mfdata d;
	struct ps_msg_mfend e;
	ZSTD_outBuffer ob;
	uint64_t limit;
	uint8_t type;
	size_t r;

	for (;;) {
		if (m->rc != PS_OK) {
			errno = EPROTO;
			return -1;
		}
		if (m->ended)
			return 0;
		limit = MF_SLACK + m->zbytes * PS_MF_RATIO;
		if (limit > PS_MAX_MANIFEST)
			limit = PS_MAX_MANIFEST;
		if (m->ib.pos < m->ib.size || m->zleft > 0) {
			if (m->raw >= limit) {
				m->rc = ps_sess_fail(m->s, PS_EPEER, "the %s's "
				    "manifest expands beyond what patchsync "
				    "accepts", mf_who(m->s));
				continue;
			}
			ob.dst = p;
			ob.size = n < limit - m->raw ? n :
			    (size_t)(limit - m->raw);
			ob.pos = 0;
			r = ZSTD_decompressStream(m->z, &ob, &m->ib);
			if (ZSTD_isError(r)) {
				m->rc = ps_sess_fail(m->s, PS_EPEER, "the %s's "
				    "manifest does not decompress: %s",
				    mf_who(m->s), ZSTD_getErrorName(r));
				continue;
			}
			m->zleft = r;
			m->raw += ob.pos;
			if (ob.pos > 0)
				return (ssize_t)ob.pos;
			if (m->ib.pos < m->ib.size)
				continue;
			/* Input used up with nothing out: the next frame. */
		}
		if (m->qhead < m->nq) {
			/* The frame's own buffer: no copy. */
			type = m->q[m->qhead].type;
			buf_free(&m->msg);
			m->msg = m->q[m->qhead].b;
			memset(&m->q[m->qhead].b, 0, sizeof(m->msg));
			m->qbytes -= m->msg.len + QFRAME_COST;
			if (++m->qhead == m->nq)
				q_free(m);
		} else if ((m->rc = ps_sess_recv(m->s, &type, &m->msg)) !=
		    PS_OK) {
			continue;
		} else {
			mf_hash(m, type, m->msg.p, m->msg.len);
		}
		if (type == PS_MSG_MFDATA) {
			if ((m->rc = ps_sess_decode(m->s, type, &m->msg,
			    &d)) != PS_OK)
				continue;
			m->zbytes += d.data.len;
			/*
			 * Frames that decode to nothing (empty ones, zstd's
			 * skippable frames) must not go on for ever either.
			 */
			m->cost += d.data.len + MF_FRAME_COST;
			if (m->cost > PS_MAX_MANIFEST) {
				m->rc = ps_sess_fail(m->s, PS_EPEER, "the %s's "
				    "manifest is larger than patchsync "
				    "accepts", mf_who(m->s));
				continue;
			}
			m->ib.src = d.data.p;
			m->ib.size = d.data.len;
			m->ib.pos = 0;
			if (d.data.len > 0 && m->zleft == 0)
				m->zleft = 1;	/* a new zstd frame */
			continue;
		}
		if (type != PS_MSG_MFEND) {
			m->rc = ps_sess_unexpected(m->s, type, "before the end "
			    "of a manifest");
			continue;
		}
		if ((m->rc = ps_sess_decode(m->s, type, &m->msg, &e)) !=
		    PS_OK)
			continue;
		if (e.raw_len != m->raw || m->zleft != 0) {
			m->rc = ps_sess_fail(m->s, PS_EPEER, "the %s's "
			    "manifest is truncated (%llu of %llu bytes)",
			    mf_who(m->s),
			    (unsigned long long)m->raw,
			    (unsigned long long)e.raw_len);
			continue;
		}
		m->ended = 1;
	}
}

struct ps_sess_mf *
ps_sess_mf_open(struct ps_sess *s)
{
	struct ps_sess_mf *m = xcalloc(1, sizeof(*m));

	m->s = s;
	if ((m->z = ZSTD_createDStream()) == NULL) {
		ps_err("out of memory");
		exit(PS_EPARTIAL);
	}
	(void)ZSTD_initDStream(m->z);
	m->in = ps_mfin_new(mf_read, m);
	return m;
}

int
ps_sess_mf_prefetch(struct ps_sess_mf *m)
{
	struct qframe *f;

	if (m->qdone || m->rc != PS_OK || m->qbytes >= MF_PREFETCH_MAX)
		return 0;
	if (m->nq == m->capq) {
		m->capq = m->capq ? m->capq * 2 : 16;
		m->q = xreallocarray(m->q, m->capq, sizeof(*m->q));
	}
	f = &m->q[m->nq];
	memset(f, 0, sizeof(*f));
	if ((m->rc = ps_sess_recv(m->s, &f->type, &f->b)) != PS_OK) {
		buf_free(&f->b);	/* a frame cut short, an ERROR */
		return 0;
	}
	m->nq++;
	/* Each at most PS_FRAME_MAX; empty ones cost their bookkeeping. */
	m->qbytes += f->b.len + QFRAME_COST;
	mf_hash(m, f->type, f->b.p, f->b.len);
	if (f->type != PS_MSG_MFDATA) {
		m->qdone = 1;
		m->qlast = f->type;
	}
	return !m->qdone;
}

void
ps_sess_mf_hash(struct ps_sess_mf *m, uint64_t seed,
    void (*fn)(void *, uint64_t, const unsigned char *), void *arg)
{
	if (m->h == NULL && (m->h = XXH3_createState()) == NULL) {
		ps_err("out of memory");
		exit(PS_EPARTIAL);
	}
	(void)XXH3_128bits_reset_withSeed(m->h, seed);
	m->nframes = 0;
	m->fn = fn;
	m->fnarg = arg;
}

int
ps_sess_mf_digest(const struct ps_sess_mf *m, unsigned char d[16])
{
	XXH128_canonical_t c;

	if (m->h == NULL)
		return -1;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(m->h));
	memcpy(d, c.digest, 16);
	return 0;
}

size_t
ps_sess_mf_queued(const struct ps_sess_mf *m)
{
	return m->qbytes;
}

int
ps_sess_mf_whole(const struct ps_sess_mf *m)
{
	/* Nothing read from the queue yet, and it ends with MFEND. */
	return m->rc == PS_OK && m->qdone && m->qlast == PS_MSG_MFEND &&
	    m->qhead == 0 && m->raw == 0;
}

void
ps_sess_mf_skip(struct ps_sess_mf *m)
{
	q_free(m);
	m->ended = 1;
	m->skipped = 1;
}

const struct ps_entry *
ps_sess_mf_next(struct ps_sess_mf *m)
{
	return ps_mfin_next(m->in);
}

static const struct ps_entry *
mf_next(void *arg)
{
	return ps_mfin_next(((struct ps_sess_mf *)arg)->in);
}

void
ps_sess_mf_eiter(struct ps_sess_mf *m, struct ps_eiter *it)
{
	it->next = mf_next;
	it->arg = m;
}

int
ps_sess_mf_end(struct ps_sess_mf *m)
{
	if (m->skipped)
		return m->rc;
	/* What was not read yet is read (and checked) now. */
	while (!ps_mfin_failed(m->in) && ps_mfin_next(m->in) != NULL)
		;
	if (m->rc != PS_OK)
		return m->rc;
	if (ps_mfin_failed(m->in))
		m->rc = ps_sess_fail(m->s, PS_EPEER, "the %s sent a bad "
		    "manifest: %s", mf_who(m->s), ps_mfin_error(m->in));
	return m->rc;
}

uint32_t
ps_sess_mf_flags(struct ps_sess_mf *m)
{
	return ps_mfin_flags(m->in);
}

void
ps_sess_mf_free(struct ps_sess_mf *m)
{
	if (m == NULL)
		return;
	ps_mfin_free(m->in);
	ZSTD_freeDStream(m->z);
	if (m->h != NULL)
		XXH3_freeState(m->h);
	buf_free(&m->msg);
	q_free(m);
	free(m);
}

int
ps_sess_recv_manifest(struct ps_sess *s, struct ps_manifest *out)
{
	struct ps_sess_mf *m = ps_sess_mf_open(s);
	const struct ps_entry *e;
	struct ps_entry c;
	int rc;

	memset(out, 0, sizeof(*out));
	while ((e = ps_sess_mf_next(m)) != NULL) {
		ps_entry_copy(&c, e);
		ps_manifest_put(out, &c);
	}
	rc = ps_sess_mf_end(m);
	out->flags = ps_sess_mf_flags(m);
	ps_sess_mf_free(m);
	if (rc != PS_OK)
		ps_manifest_free(out);
	return rc;
}

int
ps_sess_open(struct ps_sess *s, int mode, uint32_t flags, const char *dest)
{
	struct ps_msg_open m;
	int rc;

	m.mode = (uint8_t)mode;
	m.flags = flags;
	m.dest.p = (const unsigned char *)dest;
	m.dest.len = strlen(dest);
	if ((rc = ps_send_open(s->w, &m)) == PS_OK)
		rc = ps_wire_flush(s->w);
	return ps_sess_send_failed(s, rc);
}

int
ps_sess_report_done(struct ps_sess *s)
{
	struct ps_msg_doneack a;
	struct buf msg = { 0 };
	uint8_t type;
	int rc;

	if ((rc = ps_send_done(s->w, NULL)) == PS_OK)
		rc = ps_wire_flush(s->w);
	if (rc != PS_OK)
		return ps_sess_send_failed(s, rc);
	if ((rc = ps_sess_recv(s, &type, &msg)) == PS_OK) {
		if (type != PS_MSG_DONEACK)
			rc = ps_sess_unexpected(s, type, "after a report");
		else
			rc = ps_sess_decode(s, type, &msg, &a);
	}
	buf_free(&msg);
	return rc;
}
