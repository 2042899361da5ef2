/*
 * util.c — diagnostics, allocation, byte buffers, path rules and escaping.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps.h"

int ps_verbose;
void (*ps_err_hook)(const char *line);
int ps_err_hook_only;
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

static void
vsay(const char *prefix, const char *fmt, va_list ap)
{
	char line[2048];
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	/* One write per line so lines from threads do not interleave. */
	fprintf(stderr, "patchsync: %s%s\n", prefix, line);
}

void
ps_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (ps_err_hook != NULL) {
		char line[2048];
		va_list ap2;

		va_copy(ap2, ap);
		vsnprintf(line, sizeof(line), fmt, ap2);
		va_end(ap2);
		ps_err_hook(line);
		if (ps_err_hook_only) {
			va_end(ap);
			return;
		}
	}
	vsay("", fmt, ap);
	va_end(ap);
}

void
ps_warn(const char *fmt, ...)
{
	va_list ap;

	if (ps_quiet)
		return;
	va_start(ap, fmt);
	vsay("warning: ", fmt, ap);
	va_end(ap);
}

void
ps_info(int level, const char *fmt, ...)
{
	va_list ap;

	if (ps_quiet || ps_verbose < level)
		return;
	va_start(ap, fmt);
	vsay("", fmt, ap);
	va_end(ap);
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
buf_reserve(struct buf *b, size_t extra)
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
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void
buf_addc(struct buf *b, unsigned char c)
{
	buf_reserve(b, 1);
	b->p[b->len++] = c;
}

void
buf_addstr(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_add_u32(struct buf *b, uint32_t v)
{
	buf_reserve(b, 4);
	put_u32le(b->p + b->len, v);
	b->len += 4;
}

void
buf_add_u64(struct buf *b, uint64_t v)
{
	buf_reserve(b, 8);
	put_u64le(b->p + b->len, v);
	b->len += 8;
}

void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int
ps_path_ok(const char *p, size_t len)
{
	size_t i, start;

	if (len == 0 || len > PS_PATH_MAX || p[0] == '/')
		return 0;
	if (memchr(p, '\0', len) != NULL)
		return 0;
	start = 0;
	for (i = 0; i <= len; i++) {
		size_t clen;

		if (i < len && p[i] != '/')
			continue;
		clen = i - start;
		if (clen == 0)
			return 0;	/* "//" or trailing "/" */
		if (clen == 1 && p[start] == '.')
			return 0;
		if (clen == 2 && p[start] == '.' && p[start + 1] == '.')
			return 0;
		start = i + 1;
	}
	return 1;
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
