/*
 * ps.h — what every part of patchsync shares: the result codes (which are
 * the exit codes of SPEC section 9), diagnostics, allocation, a growable
 * byte buffer, little-endian integer helpers and path rules.
 */
#ifndef PS_H
#define PS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Result codes. They are the process exit codes (SPEC section 9). */
enum ps_result {
	PS_OK = 0,		/* success; nothing differs */
	PS_DIFFER = 1,		/* report / diff: differences found */
	PS_EUSAGE = 2,		/* usage, configuration or rule error */
	PS_EPARTIAL = 3,	/* some files could not be handled */
	PS_EPEER = 4,		/* unreachable server or protocol broken */
	PS_EVERIFY = 5,		/* received data did not match its hash */
	PS_EINTR = 130		/* interrupted */
};

const char *ps_strresult(int r);

/*
 * The exit status for a result (SPEC section 9): the one place where
 * results become exit codes. Anything unknown is a protocol failure.
 */
int ps_exit_code(int rc);

/* The worse of two results, as their exit codes rank (130 first). */
int ps_worse(int a, int b);

/* Set by the global options -v and -q. */
extern int ps_verbose;
extern int ps_quiet;

/*
 * Diagnostics: one line on stderr starting "patchsync: ".
 *
 * ps_err says what failed and why, once, where it failed; it always
 * prints (unless printing is off, see below) and also becomes the calling
 * thread's last error (ps_last_error), so a caller that must pass the
 * reason on (to the peer, into a RESULT) takes it from there instead of
 * formatting it again. ps_warn prints unless -q; ps_info prints when -v
 * was given at least LEVEL times; ps_trace is the short line a caller
 * adds while unwinding, shown only with -vv.
 *
 * Nothing here calls back into other code, so any of these may be called
 * while holding any lock.
 */
/*
 * vsnprintf into OUT (SIZE bytes); a text that does not fit keeps its
 * beginning and its end, where the reason usually is, and loses its
 * middle ("..."). Returns vsnprintf's result.
 */
int ps_vfit(char *out, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void ps_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ps_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ps_info(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ps_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* This thread's last ps_err line (without "patchsync: "), or "". */
const char *ps_last_error(void);
void ps_clear_error(void);

/*
 * Printing off (the server role: its stderr is the console's terminal,
 * and what went wrong travels in the protocol instead). ps_err still
 * records the thread's last error.
 */
void ps_diag_print(int on);

/*
 * Keep every ps_err and ps_warn line (bounded: the oldest go first) for
 * someone to collect later with ps_diag_drain: the event history of a
 * task. Pull, never push: no callback runs inside ps_err.
 */
void ps_diag_collect(int on);
/* The kept lines, oldest first (NULL-terminated, free with ps_strv_free). */
char **ps_diag_drain(size_t *n);
void ps_strv_free(char **v);

/*
 * Interruption (SPEC 6: Ctrl-C or SIGTERM end a push with exit 130 after
 * its temporaries are removed). ps_intr_init installs handlers for
 * SIGINT, SIGTERM and SIGHUP that only record the signal and make
 * ps_intr_fd() readable for good: every wait of the program polls that
 * descriptor too, so the work unwinds through its normal error paths.
 */
void ps_intr_init(void);
int ps_intr_fd(void);		/* -1 before ps_intr_init */
int ps_intr_signal(void);	/* the first signal received, or 0 */
/* Interrupt this process as a signal would (e.g. a task cancel). */
void ps_intr_raise(int sig);

/* Allocation that never returns NULL: out of memory ends the process. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable byte buffer. Zero-initialise before first use. */
struct buf {
	unsigned char *p;
	size_t len;
	size_t cap;
};

/* Room for EXTRA more bytes (the growing half of buf_reserve). */
void buf_grow(struct buf *b, size_t extra);
void buf_addstr(struct buf *b, const char *s);
void buf_free(struct buf *b);

/*
 * Write all N bytes at P to FD, again after EINTR and short writes.
 * Returns 0, or -1 with errno set (ENOSPC when write made no progress).
 */
int ps_write_all(int fd, const void *p, size_t n);

static inline uint32_t
get_u32le(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static inline uint64_t
get_u64le(const unsigned char *p)
{
	return (uint64_t)get_u32le(p) | (uint64_t)get_u32le(p + 4) << 32;
}

static inline void
put_u32le(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = (v >> 24) & 0xff;
}

static inline void
put_u64le(unsigned char *p, uint64_t v)
{
	put_u32le(p, (uint32_t)v);
	put_u32le(p + 4, (uint32_t)(v >> 32));
}

/*
 * The buffer's hot half, inline: manifests are encoded a field at a
 * time, and a call per field showed in the profiles of a push.
 */
static inline void
buf_reserve(struct buf *b, size_t extra)
{
	if (extra > b->cap - b->len)
		buf_grow(b, extra);
}

static inline void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static inline void
buf_addc(struct buf *b, unsigned char c)
{
	buf_reserve(b, 1);
	b->p[b->len++] = c;
}

static inline void
buf_add_u32(struct buf *b, uint32_t v)		/* little-endian */
{
	buf_reserve(b, 4);
	put_u32le(b->p + b->len, v);
	b->len += 4;
}

static inline void
buf_add_u64(struct buf *b, uint64_t v)		/* little-endian */
{
	buf_reserve(b, 8);
	put_u64le(b->p + b->len, v);
	b->len += 8;
}

/* Longest relative path patchsync accepts (bytes, without NUL). */
#define PS_PATH_MAX 4096

/*
 * Is P (LEN bytes, not NUL-terminated) a safe relative path: not empty,
 * no NUL byte, not absolute, no empty, "." or ".." component, no trailing
 * slash, at most PS_PATH_MAX bytes? Returns 1 when safe, 0 otherwise.
 */
int ps_path_ok(const char *p, size_t len);

/*
 * Are the LEN bytes at P made only of letters, digits, '.', '_' and '-'
 * (the characters of server and component names)? 1 or 0.
 */
int ps_name_chars_ok(const char *p, size_t len);

/*
 * Escape path bytes for one line of text: backslash, control bytes, DEL
 * and bytes that are not part of valid UTF-8 become \\, \n, \t, \r or
 * \xHH; everything else (spaces, valid UTF-8) is kept. The result never
 * contains a newline. Returns a malloc'd NUL-terminated string.
 */
char *ps_escape(const char *p, size_t len);

/*
 * Reverse ps_escape: appends the raw bytes of S to OUT. Returns 0, or -1
 * when S holds a malformed escape.
 */
int ps_unescape(const char *s, struct buf *out);

/*
 * mkdir -p DIR, for the account's own directories (caches): parents mode
 * 0755, DIR itself 0700. Returns 0, or -1 with errno.
 */
int ps_mkdir_p(const char *dir);

/* Lower-case hex of N bytes into OUT (2N+1 bytes). */
void ps_hex(const unsigned char *p, size_t n, char *out);

#endif
