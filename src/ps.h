/*
 * ps.h — what every part of patchsync shares: the result codes (which are
 * the exit codes of SPEC section 9), diagnostics, allocation, a growable
 * byte buffer, little-endian integer helpers and path rules.
 */
#ifndef PS_H
#define PS_H

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

/* Set by the global options -v and -q. */
extern int ps_verbose;
extern int ps_quiet;

/*
 * Diagnostics: one line on stderr starting "patchsync: ". ps_err always
 * prints; ps_warn prints unless -q; ps_info prints when -v was given at
 * least LEVEL times.
 */
void ps_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* When set, every ps_err line is also handed here (the task's history). */
extern void (*ps_err_hook)(const char *line);
/* Set: error lines go to the hook only (the server role sends them on). */
extern int ps_err_hook_only;
void ps_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ps_info(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

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

void buf_reserve(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_addc(struct buf *b, unsigned char c);
void buf_addstr(struct buf *b, const char *s);
void buf_add_u32(struct buf *b, uint32_t v);	/* little-endian */
void buf_add_u64(struct buf *b, uint64_t v);	/* little-endian */
void buf_free(struct buf *b);

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

/* Longest relative path patchsync accepts (bytes, without NUL). */
#define PS_PATH_MAX 4096

/*
 * Is P (LEN bytes, not NUL-terminated) a safe relative path: not empty,
 * no NUL byte, not absolute, no empty, "." or ".." component, no trailing
 * slash, at most PS_PATH_MAX bytes? Returns 1 when safe, 0 otherwise.
 */
int ps_path_ok(const char *p, size_t len);

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

/* Lower-case hex of N bytes into OUT (2N+1 bytes). */
void ps_hex(const unsigned char *p, size_t n, char *out);

#endif
