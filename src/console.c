/*
 * console.c — the console role: scan the console's trees once, then run
 * one session per distribution server, several at once; each session
 * opens the transport, greets, and pushes or reports every component.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "console.h"
#include "output.h"
#include "pool.h"
#include "proto.h"
#include "transport.h"
#include "url.h"
#include "wire.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the console's manifest cache ---- */

static char *
cache_file(const char *cache_dir, const char *path)
{
	char *real = realpath(path, NULL), *f;

	if (real == NULL)
		return NULL;
	f = xasprintf("%s/%016" PRIx64 ".psm", cache_dir,
	    (uint64_t)XXH3_64bits(real, strlen(real)));
	free(real);
	return f;
}

static void
cache_read(const char *file, struct ps_manifest *m)
{
	FILE *fp = fopen(file, "rb");
	struct buf b = { 0 };
	char chunk[65536], err[128];
	size_t n;

	memset(m, 0, sizeof(*m));
	if (fp == NULL)
		return;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_add(&b, chunk, n);
	fclose(fp);
	if (ps_manifest_decode(b.p, b.len, m, err, sizeof(err)) != 0)
		ps_info(1, "ignoring the damaged cache %s: %s", file, err);
	buf_free(&b);
}

/* mkdir -p, the last directory private (it describes the console). */
static int
mkdir_p(const char *dir)
{
	char *p = xstrdup(dir), *s;
	int rc = 0;

	for (s = p + 1; *s != '\0' && rc == 0; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			rc = -1;
		*s = '/';
	}
	if (rc == 0 && mkdir(p, 0700) != 0 && errno != EEXIST)
		rc = -1;
	free(p);
	return rc;
}

static void
cache_write(const char *cache_dir, const char *file,
    const struct ps_manifest *m)
{
	struct buf b = { 0 };
	char *tmp;
	int fd;

	if (mkdir_p(cache_dir) != 0)
		return;
	tmp = xasprintf("%s.%d", file, (int)getpid());
	ps_manifest_encode(m, 1, &b);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd >= 0 && write(fd, b.p, b.len) == (ssize_t)b.len &&
	    close(fd) == 0) {
		if (rename(tmp, file) != 0)
			unlink(tmp);
	} else {
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	}
	free(tmp);
	buf_free(&b);
}

int
ps_source_open(struct ps_source *src)
{
	src->fd = open(src->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src->fd < 0) {
		ps_err("console directory %s: %s", src->path, strerror(errno));
		return PS_EUSAGE;
	}
	return PS_OK;
}

int
ps_source_scan(struct ps_source *src, const char *cache_dir, int checksum)
{
	struct ps_build_opts bo = { 0 };
	struct ps_manifest cache = { 0 };
	char *file = NULL;
	int rc;

	if (cache_dir != NULL && (file = cache_file(cache_dir, src->path)))
		cache_read(file, &cache);
	bo.cache = &cache;
	bo.checksum = checksum;
	rc = ps_manifest_buildat(src->fd, &bo, &src->m);
	if (rc == PS_OK && file != NULL)
		cache_write(cache_dir, file, &src->m);
	ps_manifest_free(&cache);
	free(file);
	return rc;
}

void
ps_source_free(struct ps_source *src)
{
	if (src->fd >= 0)
		close(src->fd);
	src->fd = -1;
	ps_manifest_free(&src->m);
}

void
ps_target_free(struct ps_target *t)
{
	size_t i;

	free(t->error);
	free(t->name);
	free(t->url);
	free(t->rsh);
	free(t->remote_path);
	t->remote_path = NULL;
	free(t->rows);
	for (i = 0; i < t->nmf; i++)
		ps_manifest_free(&t->mf[i]);
	free(t->mf);
	t->error = NULL;
	t->name = t->url = t->rsh = NULL;
	t->rows = NULL;
	t->mf = NULL;
	t->nrows = t->nmf = 0;
}

/* ---- one session ---- */

struct run {
	const struct ps_console_opts *o;
	struct ps_source *src;
	size_t nsrc;
	struct ps_target *t;
	size_t nt;
	struct ps_pool *pool;
	uint64_t progress_bytes;
	uint64_t progress_total;
	uint64_t progress_files;
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* done changed, or a source became ready */
	size_t next;		/* next target to start */
	int done;
};

static void
fail(struct ps_target *t, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
fail(struct ps_target *t, int rc, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (t->error == NULL)
		t->error = xstrdup(msg);
	if (rc > t->rc)
		t->rc = rc;
}

static int
send_open(struct ps_wire *w, int mode, uint32_t flags, const char *dest)
{
	struct buf b = { 0 };
	int rc;

	buf_addc(&b, (unsigned char)mode);
	buf_add_u32(&b, flags);
	ps_buf_add_str(&b, dest, strlen(dest));
	rc = ps_wire_send(w, PS_MSG_OPEN, b.p, b.len);
	if (rc == PS_OK)
		rc = ps_wire_flush(w);
	buf_free(&b);
	return rc;
}

/* After a report's DONE: the server's DONEACK. */
static int
wait_ack(struct ps_wire *w, const char *label)
{
	struct buf msg = { 0 };
	uint8_t type;
	int rc;

	for (;;) {
		if ((rc = ps_wire_recv(w, &type, &msg)) != PS_OK) {
			ps_err("%s: %s", label, ps_wire_error(w));
			break;
		}
		if (type == PS_MSG_DONEACK)
			break;
		if (type != PS_MSG_NOTICE) {
			ps_err("%s: the server broke the protocol (message "
			    "type %u)", label, type);
			rc = PS_EPEER;
			break;
		}
	}
	buf_free(&msg);
	return rc;
}

struct rows_ctx {
	struct ps_target *t;
	const char *component;
	size_t cap;
};

static void
add_row(enum ps_diff_state st, const struct ps_entry *o,
    const struct ps_entry *n, void *arg)
{
	struct rows_ctx *c = arg;
	struct ps_target *t = c->t;

	if (t->nrows == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		t->rows = xreallocarray(t->rows, c->cap, sizeof(*t->rows));
	}
	t->rows[t->nrows].component = c->component;
	t->rows[t->nrows].state = st;
	t->rows[t->nrows].console = o;
	t->rows[t->nrows].server = n;
	t->nrows++;
}

static char *
label_of(const struct ps_target *t, const struct ps_source *s)
{
	if (s->component == NULL)
		return xstrdup(t->name);
	return xasprintf("%s/%s", t->name, s->dest);
}

static int
component(struct run *r, struct ps_target *t, struct ps_wire *w,
    struct ps_source *s, struct rows_ctx *rc_rows)
{
	const struct ps_console_opts *o = r->o;
	struct ps_send_opts so = o->send;
	struct ps_send_stats st;
	struct ps_manifest *dst;
	char *label = label_of(t, s);
	int rc;

	t->mf = xreallocarray(t->mf, t->nmf + 1, sizeof(*t->mf));
	dst = &t->mf[t->nmf++];
	memset(dst, 0, sizeof(*dst));
	rc = send_open(w, o->mode, o->flags, s->dest);
	if (rc != PS_OK) {
		fail(t, PS_EPEER, "%s", ps_wire_error(w));
		goto out;
	}
	if ((rc = ps_recv_manifest(w, label, dst)) != PS_OK) {
		fail(t, rc, "%s: the server could not describe %s", label,
		    *s->dest ? s->dest : "its root");
		goto out;
	}
	/* The console's own scan ran meanwhile. */
	pthread_mutex_lock(&r->mu);
	while (!s->ready)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	if (s->rc != PS_OK) {
		/* Said once by the scanner; the session just ends. */
		rc = PS_EUSAGE;
		if (t->rc < s->rc)
			t->rc = s->rc;
		if (t->error == NULL)
			t->error = xasprintf("console directory %s could not "
			    "be read", s->path);
		goto out;
	}
	if (o->mode == PS_OPEN_REPORT) {
		rc_rows->component = s->component;
		ps_manifest_diff(&s->m, dst, o->extra, add_row, rc_rows);
		rc = ps_wire_send(w, PS_MSG_DONE, NULL, 0);
		if (rc == PS_OK)
			rc = ps_wire_flush(w);
		if (rc == PS_OK)
			rc = wait_ack(w, label);
		if (rc != PS_OK)
			fail(t, PS_EPEER, "%s", ps_wire_error(w));
		goto out;
	}
	so.label = label;
	so.prefix = s->component != NULL ? xasprintf("%s/", s->dest) : NULL;
	so.pool = r->pool;
	so.progress_bytes = &r->progress_bytes;
	so.progress_total = &r->progress_total;
	so.progress_files = &r->progress_files;
	so.dry_run = (o->flags & PS_OF_DRYRUN) != 0;
	rc = ps_send(w, s->fd, &s->m, dst, &so, &st);
	free((char *)so.prefix);
	t->st.files += st.files;
	t->st.deleted += st.deleted;
	t->st.meta += st.meta;
	t->st.literal += st.literal;
	t->st.matched += st.matched;
	t->st.total += st.total;
	t->st.nsend += st.nsend;
	t->st.errors += st.errors;
	if (rc != PS_OK)
		fail(t, rc, rc == PS_EPEER ? "%s: the connection broke" :
		    "%s: some files were not transferred", label);
	/* The manifest is not needed after a push. */
	ps_manifest_free(dst);
	t->nmf--;
out:
	free(label);
	return rc;
}

static void
session(struct run *r, struct ps_target *t)
{
	const struct ps_console_opts *o = r->o;
	struct ps_conn_opts co = { t->rsh, o->remote_path != NULL ?
	    o->remote_path : t->remote_path, NULL };
	struct rows_ctx rows = { t, NULL, 0 };
	struct ps_url url;
	struct ps_conn c;
	struct ps_wire *w;
	char err[256];
	double start = now();
	size_t i;
	int rc;

	t->rc = PS_OK;
	if (ps_url_parse(t->url, &url, err, sizeof(err)) != 0) {
		fail(t, PS_EUSAGE, "%s: %s", t->name, err);
		ps_err("%s", t->error);
		return;
	}
	if ((rc = ps_conn_open(&url, &co, &c)) != PS_OK) {
		fail(t, rc == PS_EUSAGE ? PS_EUSAGE : PS_EPEER, "%s: %s",
		    t->name, c.err);
		ps_err("%s", t->error);
		ps_url_free(&url);
		return;
	}
	w = ps_wire_new(c.rfd, c.wfd);
	pthread_mutex_lock(&r->mu);
	t->live = w;
	pthread_mutex_unlock(&r->mu);
	if (o->bwlimit > 0)
		ps_wire_set_bwlimit(w, o->bwlimit);
	if (ps_wire_hello(w, PS_ROLE_CONSOLE, 0, NULL, NULL) != PS_OK) {
		fail(t, PS_EPEER, "%s: cannot reach the server: %s", t->name,
		    ps_wire_error(w));
		ps_err("%s", t->error);
		goto close;
	}
	for (i = 0; i < r->nsrc; i++) {
		rc = component(r, t, w, &r->src[i], &rows);
		if (rc == PS_EPEER || rc == PS_EUSAGE)
			break;	/* the session is over */
		if (rc == PS_EINTR)
			break;
	}
	if (t->rc != PS_EPEER) {
		(void)ps_wire_send(w, PS_MSG_BYE, NULL, 0);
		(void)ps_wire_shutdown_write(w);
	}
close:
	pthread_mutex_lock(&r->mu);
	t->live = NULL;
	pthread_mutex_unlock(&r->mu);
	t->bytes_sent = ps_wire_bytes_out(w);
	t->bytes_received = ps_wire_bytes_in(w);
	if (t->rc == PS_EPEER)
		(void)ps_conn_kill(&c);
	rc = ps_conn_close(&c);
	if (rc != 0 && t->rc == PS_OK) {
		fail(t, PS_EPEER, "%s: the server ended with status %d",
		    t->name, rc);
		ps_err("%s", t->error);
	}
	ps_wire_free(w);
	ps_url_free(&url);
	t->seconds = now() - start;
}

static void *
worker(void *arg)
{
	struct run *r = arg;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&r->mu);
		i = r->next++;
		pthread_mutex_unlock(&r->mu);
		if (i >= r->nt)
			break;
		session(r, &r->t[i]);
	}
	return NULL;
}

/* ---- the console's scan, beside the sessions ---- */

static int
has_files(const struct ps_manifest *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (m->e[i].type == PS_FT_FILE)
			return 1;
	return 0;
}

static void *
scanner(void *arg)
{
	struct run *r = arg;
	size_t i;
	int rc;

	for (i = 0; i < r->nsrc; i++) {
		struct ps_source *s = &r->src[i];

		rc = ps_source_scan(s, r->o->cache_dir,
		    (r->o->flags & PS_OF_CHECKSUM) != 0);
		if (rc == PS_EPARTIAL)
			ps_err("%s: some console files cannot be read; nothing "
			    "%s", s->path, r->o->mode == PS_OPEN_PUSH ?
			    "pushed" : "compared");
		if (rc == PS_OK && r->o->delete_guard && !has_files(&s->m)) {
			/* An unmounted share must never empty the servers. */
			ps_err("refusing --delete: console directory %s holds "
			    "no files (is it mounted?)", s->path);
			rc = PS_EUSAGE;
		}
		pthread_mutex_lock(&r->mu);
		s->rc = rc;
		s->ready = 1;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

/* ---- progress on a terminal ---- */

static void
human(uint64_t n, char *out, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]);
}

/* A cancel request: end every session's stream; the servers clean up. */
static void
cancel_all(struct run *r)
{
	size_t i;

	pthread_mutex_lock(&r->mu);
	for (i = 0; i < r->nt; i++)
		if (r->t[i].live != NULL)
			(void)ps_wire_shutdown_write(r->t[i].live);
	pthread_mutex_unlock(&r->mu);
}

static void *
progress(void *arg)
{
	struct run *r = arg;
	double start = now(), t;
	char a[32], b[32], c[32], eta[32];
	uint64_t done, total;
	int finished = 0, canceled = 0;

	while (!finished) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&r->mu);
		if (!r->done)
			pthread_cond_timedwait(&r->cv, &r->mu, &ts);
		finished = r->done;
		pthread_mutex_unlock(&r->mu);
		if (!canceled && ps_task_canceled()) {
			canceled = 1;
			cancel_all(r);
		}
		done = __atomic_load_n(&r->progress_bytes, __ATOMIC_RELAXED);
		total = __atomic_load_n(&r->progress_total, __ATOMIC_RELAXED);
		if (done > total)
			done = total;
		ps_task_progress(r->o->task, done, total,
		    __atomic_load_n(&r->progress_files, __ATOMIC_RELAXED));
		if (!r->o->progress)
			continue;
		t = now() - start;
		human(done, a, sizeof(a));
		human(total, b, sizeof(b));
		human(t > 0 ? (uint64_t)((double)done / t) : 0, c, sizeof(c));
		if (done > 0 && total > done && t > 0) {
			double left = (double)(total - done) /
			    ((double)done / t);

			snprintf(eta, sizeof(eta), "ETA %d:%02d",
			    (int)left / 60, (int)left % 60);
		} else {
			snprintf(eta, sizeof(eta), "%s",
			    finished ? "done" : "ETA -:--");
		}
		fprintf(stderr, "\r%10s / %-10s %3d%%  %10s/s  %-10s", a, b,
		    total ? (int)(done * 100 / total) : 100, c, eta);
		fflush(stderr);
	}
	if (r->o->progress)
		fputc('\n', stderr);
	return NULL;
}

int
ps_console_run(const struct ps_console_opts *o, struct ps_source *src,
    size_t nsrc, struct ps_target *t, size_t nt)
{
	struct run r;
	pthread_t *tid, ptid, stid;
	int n, i, worst = PS_OK, started = 0, have_progress = 0;
	size_t k;

	memset(&r, 0, sizeof(r));
	r.o = o;
	r.src = src;
	r.nsrc = nsrc;
	r.t = t;
	r.nt = nt;
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	r.pool = ps_pool_new(ps_ncpu());
	n = o->jobs < 1 ? 1 : o->jobs;
	if ((size_t)n > nt)
		n = (int)nt;
	if (o->mode == PS_OPEN_PUSH)
		have_progress = pthread_create(&ptid, NULL, progress, &r) == 0;
	if (pthread_create(&stid, NULL, scanner, &r) != 0) {
		ps_err("cannot start a thread");
		exit(PS_EPARTIAL);
	}
	tid = xcalloc((size_t)n, sizeof(*tid));
	for (i = 1; i < n; i++)
		if (pthread_create(&tid[i], NULL, worker, &r) == 0)
			started = i;
	worker(&r);
	for (i = 1; i <= started; i++)
		pthread_join(tid[i], NULL);
	free(tid);
	pthread_join(stid, NULL);
	pthread_mutex_lock(&r.mu);
	r.done = 1;
	pthread_cond_broadcast(&r.cv);
	pthread_mutex_unlock(&r.mu);
	if (have_progress)
		pthread_join(ptid, NULL);
	ps_pool_free(r.pool);
	pthread_mutex_destroy(&r.mu);
	pthread_cond_destroy(&r.cv);
	for (k = 0; k < nt; k++)
		if (t[k].rc > worst)
			worst = t[k].rc;
	for (k = 0; k < nsrc; k++)
		if (src[k].rc != PS_OK)
			worst = src[k].rc;	/* the console's own fault */
	return worst;
}
