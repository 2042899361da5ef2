/*
 * util.c — diagnostics, interruption, allocation, byte buffers, path
 * rules and escaping.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps.h"

int ps_verbose;
int ps_quiet;

const char *
ps_strresult(int r)
{
	switch (r) {
	case PS_OK:		return "success";
	case PS_DIFFER:		return "differences found";
	case PS_EUSAGE:		return "usage or configuration error";
	case PS_EPARTIAL:	return "some files could not be transferred";
	case PS_EPEER:		return "server unreachable or protocol error";
	case PS_EVERIFY:	return "verification failed";
	case PS_EINTR:		return "interrupted";
	default:		return "unknown result";
	}
}

int
ps_exit_code(int rc)
{
	switch (rc) {
	case PS_OK:
	case PS_DIFFER:
	case PS_EUSAGE:
	case PS_EPARTIAL:
	case PS_EPEER:
	case PS_EVERIFY:
	case PS_EINTR:
		return rc;
	default:
		return PS_EPEER;
	}
}

int
ps_worse(int a, int b)
{
	a = ps_exit_code(a);
	b = ps_exit_code(b);
	return a > b ? a : b;
}

/* ---- diagnostics ---- */

#define LINE_MAX_BYTES 2048
#define KEEP_MAX 1000		/* lines kept for ps_diag_drain */

static _Thread_local char last_error[LINE_MAX_BYTES];
static atomic_int print_off;

static pthread_mutex_t keep_mu = PTHREAD_MUTEX_INITIALIZER;
static int keep_on;		/* keep_mu guards keep_on, kept, nkept */
static char *kept[KEEP_MAX];
static size_t nkept, kept_first;

static void
keep(const char *prefix, const char *line)
{
	pthread_mutex_lock(&keep_mu);
	if (keep_on) {
		size_t slot = (kept_first + nkept) % KEEP_MAX;

		if (nkept == KEEP_MAX) {	/* full: drop the oldest */
			free(kept[slot]);
			kept_first = (kept_first + 1) % KEEP_MAX;
			nkept--;
		}
		kept[slot] = xasprintf("%s%s", prefix, line);
		nkept++;
	}
	pthread_mutex_unlock(&keep_mu);
}

int
ps_vfit(char *out, size_t size, const char *fmt, va_list ap)
{
	size_t n, head, tail;
	va_list again;
	char *all;
	int r;

	va_copy(again, ap);
	r = vsnprintf(out, size, fmt, ap);
	if (r >= 0 && (size_t)r >= size && size >= 16 &&
	    (all = malloc((size_t)r + 1)) != NULL) {
		n = (size_t)r;
		head = size / 2 - 4;
		tail = size - 1 - head - 3;
		if (vsnprintf(all, n + 1, fmt, again) == r) {
			memcpy(out, all, head);
			memcpy(out + head, "...", 3);
			memcpy(out + head + 3, all + n - tail, tail);
			out[size - 1] = '\0';
		}
		free(all);
	}
	va_end(again);
	return r;
}

static void
vsay(const char *prefix, int is_err, const char *fmt, va_list ap)
{
	char line[LINE_MAX_BYTES];

	if (ps_vfit(line, sizeof(line), fmt, ap) < 0)
		return;
	if (is_err)
		memcpy(last_error, line, sizeof(line));
	if (is_err || *prefix != '\0')
		keep(prefix, line);
	if (atomic_load(&print_off))
		return;
	/* One call per line so lines from threads do not interleave. */
	fprintf(stderr, "patchsync: %s%s\n", prefix, line);
}

void
ps_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("", 1, fmt, ap);
	va_end(ap);
}

void
ps_warn(const char *fmt, ...)
{
	va_list ap;

	if (ps_quiet)
		return;
	va_start(ap, fmt);
	vsay("warning: ", 0, fmt, ap);
	va_end(ap);
}

void
ps_info(int level, const char *fmt, ...)
{
	va_list ap;

	if (ps_quiet || ps_verbose < level)
		return;
	va_start(ap, fmt);
	vsay("", 0, fmt, ap);
	va_end(ap);
}

void
ps_trace(const char *fmt, ...)
{
	va_list ap;

	if (ps_quiet || ps_verbose < 2)
		return;
	va_start(ap, fmt);
	vsay("  from: ", 0, fmt, ap);
	va_end(ap);
}

const char *
ps_last_error(void)
{
	return last_error;
}

void
ps_clear_error(void)
{
	last_error[0] = '\0';
}

void
ps_diag_print(int on)
{
	atomic_store(&print_off, !on);
}

void
ps_diag_collect(int on)
{
	pthread_mutex_lock(&keep_mu);
	keep_on = on;
	pthread_mutex_unlock(&keep_mu);
}

char **
ps_diag_drain(size_t *n)
{
	char **v;
	size_t i;

	pthread_mutex_lock(&keep_mu);
	v = xcalloc(nkept + 1, sizeof(*v));
	for (i = 0; i < nkept; i++)
		v[i] = kept[(kept_first + i) % KEEP_MAX];
	*n = nkept;
	nkept = kept_first = 0;
	pthread_mutex_unlock(&keep_mu);
	return v;
}

void
ps_strv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

int
ps_mkdir_p(const char *dir)
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

/* ---- interruption ---- */

static int intr_pipe[2] = { -1, -1 };
static volatile sig_atomic_t intr_sig;

static void
on_intr(int sig)
{
	int saved = errno;

	if (intr_sig == 0)
		intr_sig = sig;
	/* Never drained: readable for every waiter from now on. */
	if (intr_pipe[1] >= 0)
		(void)!write(intr_pipe[1], "x", 1);
	errno = saved;
}

void
ps_intr_init(void)
{
	struct sigaction sa;

	if (intr_pipe[0] < 0 && pipe2(intr_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		ps_err("cannot create a pipe: %s", strerror(errno));
		exit(PS_EPARTIAL);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_intr;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int
ps_intr_fd(void)
{
	return intr_pipe[0];
}

int
ps_intr_signal(void)
{
	return intr_sig;
}

void
ps_intr_raise(int sig)
{
	on_intr(sig);
}

static void
oom(void)
{
	fputs("patchsync: out of memory\n", stderr);
	exit(PS_EPARTIAL);
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		oom();
	return xrealloc(p, n * size);
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		oom();
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		oom();
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom();
	return p;
}

void
buf_grow(struct buf *b, size_t extra)
{
	size_t want;

	if (extra > SIZE_MAX - b->len)
		oom();
	want = b->len + extra;
	if (want <= b->cap)
		return;
	if (b->cap == 0)
		b->cap = 256;
	while (b->cap < want)
		b->cap = b->cap > SIZE_MAX / 2 ? want : b->cap * 2;
	b->p = xrealloc(b->p, b->cap);
}

void
buf_addstr(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int
ps_write_all(int fd, const void *p, size_t n)
{
	const unsigned char *q = p;
	ssize_t r;

	while (n > 0) {
		r = write(fd, q, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ENOSPC;
			return -1;
		}
		q += r;
		n -= (size_t)r;
	}
	return 0;
}

int
ps_name_chars_ok(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') ||
		    (p[i] >= 'A' && p[i] <= 'Z') ||
		    (p[i] >= '0' && p[i] <= '9') ||
		    p[i] == '.' || p[i] == '_' || p[i] == '-'))
			return 0;
	return 1;
}

int
ps_path_ok(const char *p, size_t len)
{
	const char *c = p, *end = p + len, *slash;
	size_t clen;

	if (len == 0 || len > PS_PATH_MAX || p[0] == '/')
		return 0;
	if (memchr(p, '\0', len) != NULL)
		return 0;
	/* Component by component (every peer path comes here: memchr). */
	for (;;) {
		slash = memchr(c, '/', (size_t)(end - c));
		clen = (size_t)((slash != NULL ? slash : end) - c);
		if (clen == 0)
			return 0;	/* "//" or trailing "/" */
		if (c[0] == '.' && (clen == 1 || (clen == 2 && c[1] == '.')))
			return 0;
		if (slash == NULL)
			return 1;
		c = slash + 1;
	}
}

/* Length of the valid UTF-8 sequence at S (at most N bytes), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	/* C1 controls would move a terminal's cursor: escape them too. */
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return len;
}

char *
ps_escape(const char *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)p;
	struct buf b = { 0 };
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t u;

		if (c == '\\') {
			buf_add(&b, "\\\\", 2);
			i++;
		} else if (c == '\n') {
			buf_add(&b, "\\n", 2);
			i++;
		} else if (c == '\t') {
			buf_add(&b, "\\t", 2);
			i++;
		} else if (c == '\r') {
			buf_add(&b, "\\r", 2);
			i++;
		} else if (c >= 0x20 && c < 0x7f) {
			buf_addc(&b, c);
			i++;
		} else if (c >= 0x80 && (u = utf8_len(s + i, len - i)) > 1) {
			buf_add(&b, s + i, u);
			i += u;
		} else {
			char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

			buf_add(&b, e, 4);
			i++;
		}
	}
	buf_addc(&b, '\0');
	return (char *)b.p;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
ps_unescape(const char *s, struct buf *out)
{
	while (*s != '\0') {
		int hi, lo;

		if (*s != '\\') {
			buf_addc(out, (unsigned char)*s++);
			continue;
		}
		switch (s[1]) {
		case '\\':
			buf_addc(out, '\\');
			break;
		case 'n':
			buf_addc(out, '\n');
			break;
		case 't':
			buf_addc(out, '\t');
			break;
		case 'r':
			buf_addc(out, '\r');
			break;
		case 'x':
			if ((hi = hexval(s[2])) < 0 || (lo = hexval(s[3])) < 0)
				return -1;
			buf_addc(out, (unsigned char)(hi << 4 | lo));
			s += 2;
			break;
		default:
			return -1;
		}
		s += 2;
	}
	return 0;
}

void
ps_hex(const unsigned char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}
