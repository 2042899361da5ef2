/*
 * task.c — the task runner: a push recorded as a task with its events,
 * background workers for Run now and run-due, cancellation, and the
 * per-component download lock (see task.h for the life of a task).
 *
 * The download lock is a flock(2) on a file per component in the state
 * directory: a download holds it exclusively, a push shared for as long
 * as it reads the component. flock locks belong to the open file, so
 * every descriptor is O_CLOEXEC: the ssh or server child of a push, or
 * the downloader a download runs, must never keep a lock alive.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "output.h"
#include "ps.h"
#include "task.h"
#include "transport.h"
#include "url.h"

/*
 * MU guards the fields marked so, and only them: it is never held while
 * the database is used or anything is printed (an error line may come
 * back here as an event). ST serialises its own use by several threads.
 */
struct ps_task_ctx {
	pthread_mutex_t mu;
	struct ps_state *st;	/* quiet once the task has begun */
	int64_t id;
	enum ps_task_kind kind;
	char *server;
	int *locks;		/* download lock descriptors held */
	size_t nlocks;
	int syslog;		/* scheduled: events go to syslog too */
	/* Guarded by MU: */
	int broken;		/* the database failed: record no more */
	double last_progress;	/* monotonic time of the last event */
	int progress_pending;	/* figures newer than the last event */
	uint64_t p_done, p_total, p_files;
};

/* This thread is inside a task's bookkeeping: drop nested events. */
static _Thread_local int in_bookkeeping;

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The state directory (malloc'd): the one holding a SQLite database, or
 * PS_STATE_DIR_DEFAULT for a PostgreSQL one.
 */
static char *
state_dir(const struct ps_conf *conf)
{
	const char *db = conf->database != NULL ? conf->database :
	    PS_DB_DEFAULT;
	const char *slash = strrchr(db, '/');

	const char *env = getenv("PATCHSYNC_STATE_DIR");

	if (!ps_state_is_file(db))
		return xstrdup(env != NULL && *env == '/' ? env :
		    PS_STATE_DIR_DEFAULT);
	if (slash == NULL)
		return xstrdup(".");
	if (slash == db)
		return xstrdup("/");
	return xstrndup(db, (size_t)(slash - db));
}

/* mkdir -p DIR (new directories mode 0755). */
static int
make_dir(const char *dir)
{
	char *d = xstrdup(dir), *p;
	int r = PS_OK;

	for (p = d + 1; r == PS_OK; p++) {
		p = strchr(p, '/');
		if (p != NULL)
			*p = '\0';
		if (mkdir(d, 0755) == -1 && errno != EEXIST) {
			ps_err("%s: cannot create directory: %s", d,
			    strerror(errno));
			r = PS_EUSAGE;
		}
		if (p == NULL)
			break;
		*p = '/';
	}
	free(d);
	return r;
}

/* --- credentials and servers --------------------------------------- */

int
ps_task_credential_ok(const char *file, const char *what)
{
	struct stat sb;

	if (stat(file, &sb) == -1) {
		ps_err("%s %s: %s", what, file, strerror(errno));
		return PS_EUSAGE;
	}
	if (!S_ISREG(sb.st_mode)) {
		ps_err("%s %s: not a regular file", what, file);
		return PS_EUSAGE;
	}
	if ((sb.st_mode & 077) != 0) {
		ps_err("%s %s has mode %04o: a credential must be readable "
		    "only by its owner (chmod 600 %s)", what, file,
		    (unsigned)(sb.st_mode & 07777), file);
		return PS_EUSAGE;
	}
	if (sb.st_uid != geteuid() && sb.st_uid != 0) {
		ps_err("%s %s belongs to uid %lu, not to this account (uid "
		    "%lu) or root", what, file, (unsigned long)sb.st_uid,
		    (unsigned long)geteuid());
		return PS_EUSAGE;
	}
	return PS_OK;
}

/* The remote shell for server SV (see ps_task_resolve_server). */
static int
server_rsh(const struct ps_server *sv, char **rsh)
{
	struct ps_url u;
	char err[256], *q;
	int local = 0;

	*rsh = NULL;
	if (ps_url_parse(sv->url, &u, err, sizeof(err)) == 0) {
		local = u.kind == PS_URL_LOCAL;
		ps_url_free(&u);
	}
	if (sv->identity_file != NULL && ps_task_credential_ok(
	    sv->identity_file, "identity file") != PS_OK)
		return PS_EUSAGE;
	if (sv->secret_file != NULL && ps_task_credential_ok(
	    sv->secret_file, "secret file") != PS_OK)
		return PS_EUSAGE;
	if (local && sv->rsh == NULL)
		return PS_OK;
	if (sv->identity_file == NULL) {
		*rsh = xstrdup(sv->rsh != NULL ? sv->rsh : "ssh");
		return PS_OK;
	}
	q = ps_shell_quote(sv->identity_file);
	*rsh = xasprintf("%s -i %s", sv->rsh != NULL ? sv->rsh : "ssh", q);
	free(q);
	return PS_OK;
}

int
ps_task_resolve_server(const struct ps_conf *conf, const char *name,
    int for_push, struct ps_server_conn *out)
{
	struct ps_state *st;
	struct ps_server sv;
	int r;

	memset(out, 0, sizeof(*out));
	out->timeout = -1;
	if ((r = ps_state_open_existing(conf->database, &st)) != PS_OK)
		return r;
	if (st == NULL) {
		ps_err("unknown server '%s' (no state database at %s; give a "
		    "URL such as host:/path, or add it with patchsync server "
		    "add)", name, conf->database);
		return PS_EUSAGE;
	}
	r = ps_state_server_get(st, name, &sv);
	ps_state_close(st);
	if (r != PS_OK)
		return r;
	if (for_push && sv.download_source) {
		ps_err("server %s is a download source: pushing to it is "
		    "refused", name);
		ps_server_free(&sv);
		return PS_EUSAGE;
	}
	if (sv.via != NULL) {
		ps_err("server %s is reached through relay %s: only push and "
		    "report reach it (check %s itself)", name, sv.via, sv.via);
		ps_server_free(&sv);
		return PS_EUSAGE;
	}
	if ((r = server_rsh(&sv, &out->rsh)) == PS_OK) {
		out->url = sv.url;
		out->remote_path = sv.remote_path;
		out->bwlimit = sv.bwlimit;
		out->timeout = sv.timeout;
		sv.url = sv.remote_path = NULL;
	}
	ps_server_free(&sv);
	return r;
}

/* --- the targets of a push or report -------------------------------- */

_Static_assert(PS_VIA_MAX_DEPTH <= PS_RELAY_MAX_DEPTH,
    "the database allows deeper chains than the protocol");

/* Is NAME a URL rather than a server name? */
static int
names_url(const char *s)
{
	return strchr(s, '/') != NULL || strchr(s, ':') != NULL ||
	    strcmp(s, ".") == 0;
}

static const struct ps_server *
server_named(const struct ps_server *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

/* Target T for server SV of V: its settings, checked as for one. */
static int
target_of(const struct ps_server *v, size_t n, const struct ps_server *sv,
    int for_push, struct ps_target *t)
{
	if (for_push && sv->download_source) {
		ps_err("server %s is a download source: pushing to it is "
		    "refused", sv->name);
		return PS_EUSAGE;
	}
	if (sv->via != NULL && ps_state_via_depth(v, n, sv->name) < 0) {
		ps_err("server %s: its chain of relays (through %s) is broken: "
		    "an unknown relay, a cycle or more than %d relays (see "
		    "patchsync server list)", sv->name, sv->via,
		    PS_VIA_MAX_DEPTH);
		return PS_EUSAGE;
	}
	if (server_rsh(sv, &t->rsh) != PS_OK)
		return PS_EUSAGE;
	t->url = xstrdup(sv->url);
	t->remote_path = sv->remote_path != NULL ?
	    xstrdup(sv->remote_path) : NULL;
	t->bwlimit = sv->bwlimit;
	t->timeout = sv->timeout;
	return PS_OK;
}

static ssize_t
target_named(const struct ps_target *t, size_t nt, const char *name)
{
	size_t i;

	for (i = 0; i < nt; i++)
		if (strcmp(t[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/* Each server's relay: named, or added after the others; then the vias. */
static int
add_relays(const struct ps_server *v, size_t nv, int for_push,
    struct ps_target **t, size_t *nt)
{
	const struct ps_server *sv;
	size_t i, k, n;
	ssize_t j;
	int rc = PS_OK;

	for (i = 0; i < *nt && rc == PS_OK; i++) {
		sv = (*t)[i].url != NULL && !names_url((*t)[i].name) ?
		    server_named(v, nv, (*t)[i].name) : NULL;
		if (sv == NULL || sv->via == NULL ||
		    target_named(*t, *nt, sv->via) >= 0)
			continue;
		*t = xreallocarray(*t, *nt + 1, sizeof(**t));
		memset(&(*t)[*nt], 0, sizeof(**t));
		(*t)[*nt].name = xstrdup(sv->via);
		(*t)[*nt].timeout = -1;
		(*nt)++;
		rc = target_of(v, nv, server_named(v, nv, sv->via), for_push,
		    &(*t)[*nt - 1]);
	}
	for (i = 0; i < *nt && rc == PS_OK; i++) {
		sv = !names_url((*t)[i].name) ? server_named(v, nv,
		    (*t)[i].name) : NULL;
		if (sv != NULL && sv->via != NULL &&
		    (j = target_named(*t, *nt, sv->via)) >= 0) {
			(*t)[i].via = &(*t)[j];
			(*t)[j].relay = 1;
		}
	}
	/* Bounded as RELAY is: servers behind one relay. */
	for (i = 0; i < *nt && rc == PS_OK; i++) {
		const struct ps_target *x;

		for (k = 0, n = 0; k < *nt; k++)
			for (x = (*t)[k].via; x != NULL; x = x->via)
				n += x == &(*t)[i];
		if (n > PS_RELAY_MAX_SERVERS) {
			ps_err("relay %s: %zu servers behind it (at most %d in "
			    "one push)", (*t)[i].name, n, PS_RELAY_MAX_SERVERS);
			rc = PS_EUSAGE;
		}
	}
	return rc;
}

int
ps_task_targets(const struct ps_conf *conf, const char **names, size_t n,
    int for_push, const char *rsh, struct ps_target **out, size_t *nout)
{
	struct ps_state *st = NULL;
	struct ps_server *v = NULL;
	struct ps_target *t;
	struct ps_url u;
	size_t nv = 0, nt = n, i;
	char err[256];
	int rc = PS_OK, any = 0;

	for (i = 0; i < n; i++)
		any |= !names_url(names[i]);
	if (any && (rc = ps_state_open_existing(conf->database, &st)) !=
	    PS_OK)
		return rc;
	if (st != NULL) {
		rc = ps_state_server_list(st, &v, &nv);
		ps_state_close(st);
	}
	t = xcalloc(n + 1, sizeof(*t));
	for (i = 0; i < n && rc == PS_OK; i++) {
		const struct ps_server *sv = server_named(v, nv, names[i]);

		t[i].name = xstrdup(names[i]);
		t[i].timeout = -1;
		if (names_url(names[i])) {
			t[i].url = xstrdup(names[i]);
		} else if (any && st == NULL) {
			ps_err("unknown server '%s' (no state database at %s; "
			    "give a URL such as host:/path, or add it with "
			    "patchsync server add)", names[i], conf->database);
			rc = PS_EUSAGE;
		} else if (sv == NULL) {
			ps_err("unknown server %s", names[i]);
			rc = PS_EUSAGE;
		} else {
			rc = target_of(v, nv, sv, for_push, &t[i]);
		}
	}
	if (rc == PS_OK)
		rc = add_relays(v, nv, for_push, &t, &nt);
	for (i = 0; i < nt && rc == PS_OK; i++) {
		if (rsh != NULL) {
			free(t[i].rsh);
			t[i].rsh = xstrdup(rsh);
		}
		if (ps_url_parse(t[i].url, &u, err, sizeof(err)) != 0) {
			ps_err("%s: %s", t[i].name, err);
			rc = PS_EUSAGE;
		} else {
			ps_url_free(&u);
		}
	}
	ps_server_list_free(v, nv);
	if (rc != PS_OK) {
		for (i = 0; i < nt; i++)
			ps_target_free(&t[i]);
		free(t);
		return rc;
	}
	*out = t;
	*nout = nt;
	return PS_OK;
}

void
ps_server_conn_free(struct ps_server_conn *c)
{
	if (c == NULL)
		return;
	free(c->url);
	free(c->rsh);
	free(c->remote_path);
	memset(c, 0, sizeof(*c));
}

int
ps_task_all_servers(const struct ps_conf *conf, char ***names, size_t *n)
{
	struct ps_state *st;
	struct ps_server *v;
	size_t nv, i;
	int r;

	*names = NULL;
	*n = 0;
	if ((r = ps_state_open_existing(conf->database, &st)) != PS_OK ||
	    st == NULL)
		return r;
	r = ps_state_server_list(st, &v, &nv);
	ps_state_close(st);
	if (r != PS_OK)
		return r;
	for (i = 0; i < nv; i++) {
		if (v[i].download_source)
			continue;
		*names = xreallocarray(*names, *n + 1, sizeof(**names));
		(*names)[(*n)++] = xstrdup(v[i].name);
	}
	ps_server_list_free(v, nv);
	return PS_OK;
}

int
ps_parse_rate(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *s == '-' || *s == '+')
		return -1;
	switch (*end) {
	case 'k': case 'K':
		shift = 10;
		end++;
		break;
	case 'm': case 'M':
		shift = 20;
		end++;
		break;
	case 'g': case 'G':
		shift = 30;
		end++;
		break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || v == 0 || v > (UINT64_MAX >> 1) >> shift)
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

void
ps_task_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* --- download locks ------------------------------------------------ */

char *
ps_download_lock_path(const struct ps_conf *conf, const char *component)
{
	char *dir = state_dir(conf), *p;

	p = xasprintf("%s/locks/%s.lock", dir, component);
	free(dir);
	return p;
}

static int
lock_open(const struct ps_conf *conf, const char *component, int *fd)
{
	char *dir, *ldir, *path;
	int r = PS_OK;

	*fd = -1;
	if (!ps_conf_name_ok(component)) {
		ps_err("invalid component name '%s'", component);
		return PS_EUSAGE;
	}
	dir = state_dir(conf);
	ldir = xasprintf("%s/locks", dir);
	path = xasprintf("%s/%s.lock", ldir, component);
	free(dir);
	if ((r = make_dir(ldir)) == PS_OK) {
		/* flock needs no write access: read-only suits every user. */
		*fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		    0644);
		if (*fd == -1) {
			ps_err("%s: cannot open download lock: %s", path,
			    strerror(errno));
			r = PS_EUSAGE;
		}
	}
	free(ldir);
	free(path);
	return r;
}

static int
lock_take(const struct ps_conf *conf, const char *component, int op,
    int *fdp, void (*waiting)(const char *, void *), void *arg)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	char *why;
	int fd, r;

	*fdp = -1;
	if ((r = lock_open(conf, component, &fd)) != PS_OK)
		return r;
	while (flock(fd, op | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			ps_err("download lock of %s: %s", component,
			    strerror(errno));
			close(fd);
			return PS_EUSAGE;
		}
		if (waiting != NULL) {
			why = op == LOCK_SH ? xasprintf("waiting for the "
			    "download of %s to finish", component) :
			    xasprintf("waiting for pushes reading %s to "
			    "finish", component);
			waiting(why, arg);
			free(why);
			waiting = NULL;
		}
		/* Polled, so a cancel request ends the wait at once. */
		if (ps_intr_signal() != 0) {
			close(fd);
			return PS_EINTR;
		}
		nanosleep(&ts, NULL);
	}
	*fdp = fd;
	return PS_OK;
}

int
ps_download_lock_shared(const struct ps_conf *conf, const char *component,
    int *fd, void (*waiting)(const char *why, void *arg), void *arg)
{
	return lock_take(conf, component, LOCK_SH, fd, waiting, arg);
}

int
ps_download_lock_exclusive(const struct ps_conf *conf,
    const char *component, int *fd,
    void (*waiting)(const char *why, void *arg), void *arg)
{
	return lock_take(conf, component, LOCK_EX, fd, waiting, arg);
}

/* --- cancellation -------------------------------------------------- */

/* A cancel is a SIGTERM: the push unwinds as from Ctrl-C (ps_intr_*). */
void
ps_task_install_cancel_handler(void)
{
	ps_intr_init();
}

int
ps_task_canceled(void)
{
	return ps_intr_signal() != 0;
}

/* --- events -------------------------------------------------------- */

static int
syslog_prio(const char *level)
{
	if (strcmp(level, "error") == 0)
		return LOG_ERR;
	if (strcmp(level, "warning") == 0)
		return LOG_WARNING;
	return LOG_INFO;
}

/*
 * The database failed under the task: say so once, record no more. Never
 * called with CTX->mu held.
 */
static void
book_failed(struct ps_task_ctx *ctx)
{
	int first;

	pthread_mutex_lock(&ctx->mu);
	first = !ctx->broken;
	ctx->broken = 1;
	pthread_mutex_unlock(&ctx->mu);
	if (first)
		ps_err("task %lld: cannot record it in the state database "
		    "(%s); the push goes on without it", (long long)ctx->id,
		    ps_state_error(ctx->st));
}

static int
is_broken(struct ps_task_ctx *ctx)
{
	int b;

	pthread_mutex_lock(&ctx->mu);
	b = ctx->broken;
	pthread_mutex_unlock(&ctx->mu);
	return b;
}

/* Add an event (no lock held). FORCE: even after a failure, silently. */
static void
record(struct ps_task_ctx *ctx, const char *kind, const char *level,
    const char *msg, const char *data, int force)
{
	int r, broken;

	if (in_bookkeeping)
		return;
	broken = is_broken(ctx);
	if (broken && !force)
		return;
	in_bookkeeping = 1;
	r = ps_state_event_add(ctx->st, ctx->id, kind, level, msg, data);
	in_bookkeeping = 0;
	if (r != PS_OK && !broken)
		book_failed(ctx);
	/* Progress is too chatty for syslog. */
	if (ctx->syslog && strcmp(kind, "progress") != 0)
		syslog(syslog_prio(level), "task %lld (%s): %s: %s",
		    (long long)ctx->id, ctx->server, kind, msg);
}

void
ps_task_event(struct ps_task_ctx *ctx, const char *kind, const char *level,
    const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (ctx == NULL || in_bookkeeping)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return;
	record(ctx, kind, level, msg, NULL, 0);
	free(msg);
}

static void
human(uint64_t n, char *out, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]);
}

/* A 'progress' event of these figures (no lock held). */
static void
progress_event(struct ps_task_ctx *ctx, uint64_t done_b, uint64_t total_b,
    uint64_t files, int force)
{
	char done[32], total[32], *msg, *data;

	human(done_b, done, sizeof(done));
	human(total_b, total, sizeof(total));
	msg = xasprintf("%s of %s sent, %llu files done", done, total,
	    (unsigned long long)files);
	data = xasprintf("{\"bytes_done\":%llu,\"bytes_total\":%llu,"
	    "\"files_done\":%llu}", (unsigned long long)done_b,
	    (unsigned long long)total_b, (unsigned long long)files);
	record(ctx, "progress", "info", msg, data, force);
	free(msg);
	free(data);
}

void
ps_task_progress(struct ps_task_ctx *ctx, uint64_t bytes_done,
    uint64_t bytes_total, uint64_t files_done)
{
	int due;

	if (ctx == NULL || in_bookkeeping)
		return;
	/* Decide under the lock, write after releasing it. */
	pthread_mutex_lock(&ctx->mu);
	ctx->p_done = bytes_done;
	ctx->p_total = bytes_total;
	ctx->p_files = files_done;
	ctx->progress_pending = 1;
	due = !ctx->broken &&
	    mono() - ctx->last_progress >= PS_TASK_PROGRESS_SECS;
	if (due) {
		ctx->last_progress = mono();
		ctx->progress_pending = 0;
	}
	pthread_mutex_unlock(&ctx->mu);
	if (due)
		progress_event(ctx, bytes_done, bytes_total, files_done, 0);
}

/* --- begin and end ------------------------------------------------- */

static void
ctx_free(struct ps_task_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->nlocks; i++)
		close(ctx->locks[i]);
	free(ctx->locks);
	ps_state_close(ctx->st);
	free(ctx->server);
	if (ctx->syslog)
		closelog();
	pthread_mutex_destroy(&ctx->mu);
	free(ctx);
}

/* ps_download_lock_shared's WAITING: say once why the task is queued. */
static void
queued_cb(const char *why, void *arg)
{
	struct ps_task_ctx *ctx = arg;

	/* On a terminal somebody waits for us: say why (SPEC 6, push). */
	ps_info(isatty(STDERR_FILENO) ? 0 : 1, "task %lld: %s",
	    (long long)ctx->id, why);
	record(ctx, "queued", "info", why, NULL, 0);
}

/* Take the shared download lock of every component of task T. */
static int
take_locks(struct ps_task_ctx *ctx, const struct ps_conf *conf,
    const struct ps_task *t)
{
	char *list = xstrdup(t->components), *p, *next;
	size_t i;
	int fd, r = PS_OK;

	if (list[0] == '\0') {		/* every configured component */
		for (i = 0; r == PS_OK && i < conf->ncomp; i++) {
			r = ps_download_lock_shared(conf, conf->comp[i].name,
			    &fd, queued_cb, ctx);
			if (r == PS_OK) {
				ctx->locks = xreallocarray(ctx->locks,
				    ctx->nlocks + 1, sizeof(*ctx->locks));
				ctx->locks[ctx->nlocks++] = fd;
			}
		}
		free(list);
		return r;
	}
	for (p = list; r == PS_OK && p != NULL; p = next) {
		if ((next = strchr(p, ',')) != NULL)
			*next++ = '\0';
		r = ps_download_lock_shared(conf, p, &fd, queued_cb, ctx);
		if (r == PS_OK) {
			ctx->locks = xreallocarray(ctx->locks, ctx->nlocks + 1,
			    sizeof(*ctx->locks));
			ctx->locks[ctx->nlocks++] = fd;
		}
	}
	free(list);
	return r;
}

int
ps_task_begin(const struct ps_conf *conf, int64_t id,
    struct ps_task_ctx **ctxp)
{
	struct ps_task_ctx *ctx;
	struct ps_task t;
	int r;

	*ctxp = NULL;
	ps_task_install_cancel_handler();
	ctx = xcalloc(1, sizeof(*ctx));
	pthread_mutex_init(&ctx->mu, NULL);
	ctx->id = id;
	ctx->last_progress = mono();
	if ((r = ps_state_open(conf->database, &ctx->st)) != PS_OK) {
		ctx_free(ctx);
		return r;
	}
	/* Take the task over first: its creator may exit any moment. */
	if ((r = ps_state_task_set_state(ctx->st, id, PS_TASK_QUEUED, -1,
	    NULL)) != PS_OK ||
	    (r = ps_state_task_get(ctx->st, id, &t)) != PS_OK) {
		ctx_free(ctx);
		return r;
	}
	ctx->kind = t.kind;
	ctx->server = xstrdup(t.server);
	if (t.kind == PS_TASK_SCHEDULED) {
		openlog("patchsync", LOG_PID, LOG_DAEMON);
		ctx->syslog = 1;
	}
	r = take_locks(ctx, conf, &t);
	if (r != PS_OK) {
		record(ctx, "end", r == PS_EINTR ? "warning" : "error",
		    r == PS_EINTR ? "canceled while queued" :
		    "failed: cannot take the download locks", NULL, 0);
		(void)ps_state_task_set_state(ctx->st, id, r == PS_EINTR ?
		    PS_TASK_CANCELED : PS_TASK_FAILED, r, NULL);
		ps_task_free(&t);
		ctx_free(ctx);
		return r;
	}
	if ((r = ps_state_task_set_state(ctx->st, id, PS_TASK_RUNNING, -1,
	    NULL)) != PS_OK) {
		ps_task_free(&t);
		ctx_free(ctx);
		return r;
	}
	ps_task_event(ctx, "start", "info", "%s push to %s (%s) started on "
	    "console %s, pid %ld", ps_task_kind_name(t.kind), t.server,
	    t.components[0] != '\0' ? t.components : "all components",
	    t.console, (long)getpid());
	ps_task_free(&t);
	/* From now on a failure is reported by book_failed, once. */
	ps_state_set_quiet(ctx->st, 1);
	*ctxp = ctx;
	return PS_OK;
}

int
ps_task_manual(const struct ps_conf *conf, const char *server,
    const char *components, struct ps_task_ctx **ctx)
{
	struct ps_state *st;
	char err[1024];
	int64_t id;
	int r;

	*ctx = NULL;
	if (conf->database == NULL)
		return PS_OK;
	if (ps_state_try_open(conf->database, &st, err, sizeof(err)) !=
	    PS_OK) {
		ps_warn("this push is not recorded: %s", err);
		return PS_OK;
	}
	if (st == NULL)			/* no database: none is made */
		return PS_OK;
	r = ps_state_task_create(st, PS_TASK_MANUAL, 0, conf->console_name,
	    server, components != NULL ? components : "", &id);
	ps_state_close(st);
	if (r != PS_OK)
		return r;
	return ps_task_begin(conf, id, ctx);
}

int64_t
ps_task_id(const struct ps_task_ctx *ctx)
{
	return ctx != NULL ? ctx->id : 0;
}

void
ps_task_end(struct ps_task_ctx *ctx, int exit_code, const char *stats_json)
{
	enum ps_task_state state;
	uint64_t done, total, files;
	const char *level;
	int pending, broken, r;
	char *msg;

	if (ctx == NULL)
		return;
	if (ps_intr_signal() != 0 || exit_code == PS_EINTR) {
		state = PS_TASK_CANCELED;
		level = "warning";
		msg = xstrdup("canceled");
	} else if (exit_code == 0) {
		state = PS_TASK_SUCCEEDED;
		level = "info";
		msg = xstrdup("succeeded");
	} else {
		state = PS_TASK_FAILED;
		level = "error";
		msg = xasprintf("failed: exit %d (%s)", exit_code,
		    ps_strresult(exit_code));
	}
	pthread_mutex_lock(&ctx->mu);
	pending = ctx->progress_pending;
	done = ctx->p_done;
	total = ctx->p_total;
	files = ctx->p_files;
	ctx->progress_pending = 0;
	pthread_mutex_unlock(&ctx->mu);
	/*
	 * The end is tried even after a failure (a restarted server may be
	 * back), silently then: its line was said already.
	 */
	if (pending)
		progress_event(ctx, done, total, files, 1);
	/* The event first: --follow stops when it sees the final state. */
	record(ctx, "end", level, msg, stats_json, 1);
	broken = is_broken(ctx);
	in_bookkeeping = 1;
	r = ps_state_task_set_state(ctx->st, ctx->id, state, exit_code,
	    stats_json);
	in_bookkeeping = 0;
	if (r != PS_OK && !broken)
		book_failed(ctx);
	free(msg);
	ctx_free(ctx);
}

/* --- workers ------------------------------------------------------- */

static void
argv_add(const char ***argv, size_t *n, const char *s)
{
	*argv = xreallocarray(*argv, *n + 2, sizeof(**argv));
	(*argv)[(*n)++] = s;
	(*argv)[*n] = NULL;
}

/* The worker's command line; strings in *KEEP are freed by the caller. */
static const char **
worker_argv(const struct ps_conf *conf, int64_t id, const char *server,
    const char *components, char **keep)
{
	const char **argv = NULL;
	char *p, *next;
	size_t n = 0;

	keep[0] = keep[1] = keep[2] = NULL;
	argv_add(&argv, &n, "patchsync");
	if (conf->file != NULL) {
		/* The worker may not share our directory for long. */
		keep[0] = realpath(conf->file, NULL);
		argv_add(&argv, &n, "-c");
		argv_add(&argv, &n, keep[0] != NULL ? keep[0] : conf->file);
	}
	argv_add(&argv, &n, "push");
	argv_add(&argv, &n, "--task");
	keep[1] = xasprintf("%lld", (long long)id);
	argv_add(&argv, &n, keep[1]);
	argv_add(&argv, &n, server);
	keep[2] = xstrdup(components != NULL ? components : "");
	for (p = keep[2]; *p != '\0'; p = next) {
		if ((next = strchr(p, ',')) != NULL)
			*next++ = '\0';
		else
			next = p + strlen(p);
		argv_add(&argv, &n, "-C");
		argv_add(&argv, &n, p);
	}
	return argv;
}

static int
open_log(const struct ps_conf *conf, int64_t id)
{
	char *dir = state_dir(conf), *ldir, *path;
	int fd = -1;

	ldir = xasprintf("%s/log", dir);
	path = xasprintf("%s/task-%lld.log", ldir, (long long)id);
	if (make_dir(ldir) == PS_OK)
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
		    O_NOFOLLOW, 0640);
	if (fd == -1)
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	free(dir);
	free(ldir);
	free(path);
	return fd;
}

int
ps_task_spawn(struct ps_state *st, const struct ps_conf *conf,
    int64_t task_id, const char *server, const char *components,
    pid_t *pidp)
{
	const char **argv;
	char *keep[3], go;
	int logfd, nullfd, gate[2];
	pid_t pid;
	ssize_t n;

	*pidp = -1;
	argv = worker_argv(conf, task_id, server, components, keep);
	logfd = open_log(conf, task_id);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd == -1 || nullfd == -1 || pipe2(gate, O_CLOEXEC) == -1) {
		ps_err("task %lld: cannot prepare the worker: %s",
		    (long long)task_id, strerror(errno));
		pid = -1;
		goto out;
	}
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		ps_err("task %lld: cannot start the worker: %s",
		    (long long)task_id, strerror(errno));
		close(gate[0]);
		close(gate[1]);
		goto out;
	}
	if (pid == 0) {
		/* Detach: no terminal, no session to hang up with. */
		setsid();
		signal(SIGPIPE, SIG_DFL);
		close(gate[1]);
		/* Wait until the parent has handed the task to us. */
		while ((n = read(gate[0], &go, 1)) == -1 && errno == EINTR)
			;
		if (n != 1)
			_exit(PS_EUSAGE);
		if (dup2(nullfd, 0) == -1 || dup2(logfd, 1) == -1 ||
		    dup2(logfd, 2) == -1)
			_exit(PS_EUSAGE);
		execv("/proc/self/exe", (char *const *)argv);
		dprintf(2, "patchsync: cannot run /proc/self/exe: %s\n",
		    strerror(errno));
		_exit(127);
	}
	close(gate[0]);
	if (ps_state_task_set_owner(st, task_id, pid) != PS_OK) {
		close(gate[1]);		/* the child exits without running */
		waitpid(pid, NULL, 0);
		(void)ps_state_task_set_state(st, task_id, PS_TASK_FAILED,
		    PS_EUSAGE, NULL);
		pid = -1;
		goto out;
	}
	go = 1;
	while (write(gate[1], &go, 1) == -1 && errno == EINTR)
		;
	close(gate[1]);
out:
	if (logfd != -1)
		close(logfd);
	if (nullfd != -1)
		close(nullfd);
	free(argv);
	free(keep[0]);
	free(keep[1]);
	free(keep[2]);
	if (pid == -1)
		return PS_EUSAGE;
	*pidp = pid;
	return PS_OK;
}

int
ps_task_wait(struct ps_state *st, int64_t task_id, pid_t pid)
{
	int status, code;

	(void)task_id;
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return PS_EUSAGE;
	if (WIFEXITED(status))
		code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		code = 128 + WTERMSIG(status);
	else
		code = PS_EUSAGE;
	/* A worker that died without ending its task: interrupted now. */
	(void)ps_state_task_reap(st, NULL);
	return code;
}

/* --- pruning ------------------------------------------------------- */

int
ps_task_prune(struct ps_state *st, const struct ps_conf *conf,
    double before, size_t *pruned)
{
	char *dir, *path;
	int64_t *ids;
	size_t n, i;
	int r;

	if (pruned != NULL)
		*pruned = 0;
	if ((r = ps_state_prune(st, before, &ids, &n)) != PS_OK)
		return r;
	dir = state_dir(conf);
	for (i = 0; i < n; i++) {
		path = xasprintf("%s/log/task-%lld.log", dir,
		    (long long)ids[i]);
		if (unlink(path) == -1 && errno != ENOENT)
			ps_warn("%s: cannot remove: %s", path,
			    strerror(errno));
		free(path);
	}
	free(dir);
	free(ids);
	if (pruned != NULL)
		*pruned = n;
	return PS_OK;
}

/* --- outcomes for `status` ----------------------------------------- */

void
ps_task_results(struct ps_task_ctx *ctx, const struct ps_target *t,
    size_t nt)
{
	size_t i;

	for (i = 0; i < nt && ctx != NULL; i++) {
		const char *via = t[i].via != NULL ? t[i].via->name : NULL;

		if (t[i].rc == PS_OK)
			ps_task_event(ctx, "server", "info", "%s%s%s: ok, %"
			    PRIu64 " files transferred, %" PRIu64 " deleted, "
			    "%" PRIu64 " bytes sent", t[i].name, via != NULL ?
			    " via " : "", via != NULL ? via : "",
			    t[i].st.files, t[i].st.deleted, t[i].bytes_sent);
		else
			ps_task_event(ctx, "server", "error", "%s%s%s: failed "
			    "(exit %d): %s", t[i].name, via != NULL ? " via " :
			    "", via != NULL ? via : "", ps_exit_code(t[i].rc),
			    t[i].error != NULL ? t[i].error :
			    ps_strresult(t[i].rc));
	}
}

static void
entry_figures(const struct ps_entry *e, int64_t *size, int64_t *mtime)
{
	*size = e != NULL ? (int64_t)e->size : -1;
	*mtime = e != NULL ? e->mtime_sec : -1;
}

/* The report rows of T as the state keeps them (paths escaped). */
static struct ps_report_row *
report_rows(const struct ps_target *t, size_t *n, int64_t *behind)
{
	struct ps_report_row *v;
	const struct ps_entry *e;
	size_t i;

	*n = t->nrows < PS_STATE_MAX_ROWS ? t->nrows : PS_STATE_MAX_ROWS;
	*behind = 0;
	for (i = 0; i < t->nrows; i++)
		*behind += t->rows[i].state != PS_D_EXTRA;
	v = xcalloc(*n + 1, sizeof(*v));
	for (i = 0; i < *n; i++) {
		e = t->rows[i].console != NULL ? t->rows[i].console :
		    t->rows[i].server;
		v[i].component = (char *)t->rows[i].component;
		v[i].path = ps_escape(e->path, e->path_len);
		v[i].state = (char *)ps_diff_state_name(
		    (enum ps_diff_state)t->rows[i].state);
		entry_figures(t->rows[i].console, &v[i].console_size,
		    &v[i].console_mtime);
		entry_figures(t->rows[i].server, &v[i].server_size,
		    &v[i].server_mtime);
	}
	return v;
}

static int
record_one(struct ps_state *st, const struct ps_conf *conf,
    const struct ps_target *t, int report)
{
	struct ps_report_row *rows = NULL;
	struct ps_outcome o;
	size_t i;
	int r;

	memset(&o, 0, sizeof(o));
	o.server = t->name;
	o.kind = report ? PS_OUTCOME_REPORT : PS_OUTCOME_PUSH;
	o.error = t->error;
	o.files_behind = -1;
	if (t->rc == PS_EPEER || (report && t->rc == PS_EUSAGE))
		o.status = PS_OUTCOME_UNREACHABLE;
	else if (!report && t->rc != PS_OK)
		o.status = PS_OUTCOME_FAILED;
	else
		o.status = PS_OUTCOME_OK;
	if (!report) {
		o.bytes_sent = t->bytes_sent;
		if (o.status == PS_OUTCOME_OK)
			o.files_behind = 0;
	} else if (o.status == PS_OUTCOME_OK) {
		rows = report_rows(t, &o.nrows, &o.files_behind);
		o.rows = rows;
		o.rows_total = t->nrows;
	}
	r = ps_state_record_outcome(st, conf->console_name, &o);
	for (i = 0; i < o.nrows; i++)
		free(rows[i].path);
	free(rows);
	return r;
}

void
ps_task_record_outcomes(const struct ps_conf *conf,
    const struct ps_target *t, size_t nt, int report)
{
	struct ps_state *st;
	char err[1024];
	size_t i;

	if (conf->database == NULL || nt == 0)
		return;
	if (ps_state_try_open(conf->database, &st, err, sizeof(err)) !=
	    PS_OK) {
		ps_warn("outcome not recorded for status: %s", err);
		return;
	}
	if (st == NULL)			/* no database: none is made */
		return;
	ps_state_set_quiet(st, 1);
	for (i = 0; i < nt; i++)
		if (record_one(st, conf, &t[i], report) != PS_OK) {
			ps_warn("outcome not recorded for status: %s",
			    ps_state_error(st));
			break;
		}
	ps_state_close(st);
}
