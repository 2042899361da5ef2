/*
 * url.c — parse destination URLs (see url.h for the forms).
 *
 * Host and user names end up as separate words on an ssh command line,
 * so besides being well-formed they may not start with '-' (ssh would
 * take "-oProxyCommand=..." for an option) nor hold spaces or control
 * bytes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps.h"
#include "url.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Bytes that may appear in a host or user name. */
static int
name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || s[0] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == 0x7f || c == '@' || c == '/' ||
		    c == '\\' || c == '\'' || c == '"' || c == '`' ||
		    c == '$' || c == ';')
			return 0;
	}
	return 1;
}

/* A decimal port 1..65535 in S[0..N). */
static int
parse_port(const char *s, size_t n)
{
	size_t i;
	int v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v >= 1 && v <= 65535 ? v : -1;
}

/*
 * Split "[user@]host" (S, N bytes; host maybe "[v6]") into U. The part
 * after a bracketed or plain host, if any, is left in *REST (up to S+N).
 */
static int
parse_userhost(const char *s, size_t n, const char **rest, struct ps_url *u,
    char *err, size_t errlen)
{
	const char *at, *h, *end = s + n, *he;

	at = memchr(s, '@', n);
	if (at != NULL) {
		if (memchr(at + 1, '@', (size_t)(end - at - 1)) != NULL)
			return fail(err, errlen, "user name may not hold "
			    "'@' in '%.*s'", (int)n, s);
		if (memchr(s, ':', (size_t)(at - s)) != NULL)
			return fail(err, errlen, "passwords in URLs are not "
			    "supported ('%.*s'); use a credentials file",
			    (int)(at - s), s);
		if (!name_ok(s, (size_t)(at - s)))
			return fail(err, errlen, "bad user name '%.*s'",
			    (int)(at - s), s);
		u->user = xstrndup(s, (size_t)(at - s));
		h = at + 1;
	} else
		h = s;
	if (h < end && *h == '[') {
		he = memchr(h, ']', (size_t)(end - h));
		if (he == NULL)
			return fail(err, errlen, "missing ']' after IPv6 "
			    "address in '%.*s'", (int)n, s);
		if (he == h + 1 || !name_ok(h + 1, (size_t)(he - h - 1)))
			return fail(err, errlen, "bad host name '%.*s'",
			    (int)(he + 1 - h), h);
		u->host = xstrndup(h + 1, (size_t)(he - h - 1));
		*rest = he + 1;
		return 0;
	}
	for (he = h; he < end && *he != ':'; he++)
		;
	if (he == h)
		return fail(err, errlen, "empty host name");
	if (!name_ok(h, (size_t)(he - h)))
		return fail(err, errlen, "bad host name '%.*s'",
		    (int)(he - h), h);
	u->host = xstrndup(h, (size_t)(he - h));
	*rest = he;
	return 0;
}

/* "scheme://[user@]host[:port]/rest": everything after the "//". */
static int
parse_authority(const char *s, const char *what, struct ps_url *u,
    char *err, size_t errlen)
{
	const char *slash = strchr(s, '/'), *rest;
	size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);

	if (n == 0)
		return fail(err, errlen, "%s URL without a host", what);
	if (parse_userhost(s, n, &rest, u, err, errlen) < 0)
		return -1;
	if (rest < s + n) {
		if (*rest != ':' ||
		    (u->port = parse_port(rest + 1,
		    (size_t)(s + n - rest - 1))) < 0)
			return fail(err, errlen, "bad port '%.*s' (want "
			    "1-65535)", (int)(s + n - rest), rest);
	}
	if (slash == NULL || (u->kind == PS_URL_DAEMON && slash[1] == '\0'))
		return fail(err, errlen, "%s URL without a %s", what,
		    u->kind == PS_URL_DAEMON ? "module" : "path");
	if (u->kind == PS_URL_DAEMON)
		u->path = xstrdup(slash + 1);
	else
		u->path = xstrdup(slash);
	return 0;
}

/* "[user@]host:/path", rsync style. */
static int
parse_scp(const char *s, struct ps_url *u, char *err, size_t errlen)
{
	const char *colon, *br, *rest;

	u->kind = PS_URL_SSH;
	colon = strchr(s, ':');
	br = strchr(s, '[');
	if (br != NULL && br < colon)	/* "[v6]:/path" */
		colon = strstr(br, "]:");
	if (colon == NULL)
		return fail(err, errlen, "cannot parse '%s' as [user@]host:"
		    "/path", s);
	if (*colon == ']')
		colon++;
	if (parse_userhost(s, (size_t)(colon - s), &rest, u, err,
	    errlen) < 0)
		return -1;
	if (rest != colon)
		return fail(err, errlen, "cannot parse '%s' as [user@]host:"
		    "/path", s);
	if (colon[1] == ':')
		return fail(err, errlen, "'%s': rsync daemon syntax "
		    "(host::module) is not supported; use psync://host/module",
		    s);
	if (colon[1] != '/')
		return fail(err, errlen, "remote path '%s' in '%s' must be "
		    "absolute, e.g. %s:/srv/patches (for a local directory "
		    "write ./%s)", colon + 1, s, u->host, s);
	u->path = xstrdup(colon + 1);
	return 0;
}

static int
parse(const char *s, struct ps_url *u, char *err, size_t errlen)
{
	const char *p;

	if (*s == '\0')
		return fail(err, errlen, "empty destination");
	if (strncmp(s, "file://", 7) == 0) {
		u->kind = PS_URL_LOCAL;
		p = s + 7;
		if (strncmp(p, "localhost/", 10) == 0)
			p += 9;
		if (*p != '/')
			return fail(err, errlen, "'%s': a file URL names no "
			    "host and needs an absolute path (file:///path)",
			    s);
		u->path = xstrdup(p);
		return 0;
	}
	if (strncmp(s, "ssh://", 6) == 0) {
		u->kind = PS_URL_SSH;
		return parse_authority(s + 6, "ssh", u, err, errlen);
	}
	if (strncmp(s, "psync://", 8) == 0) {
		u->kind = PS_URL_DAEMON;
		if (parse_authority(s + 8, "psync", u, err, errlen) < 0)
			return -1;
		if (u->user != NULL)
			return fail(err, errlen, "'%s': psync URLs take no "
			    "user name", s);
		return 0;
	}
	/* Some other "scheme://": better refused than taken for host:path. */
	p = s + strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
	if (p > s && strncmp(p, "://", 3) == 0)
		return fail(err, errlen, "unknown URL scheme '%.*s' in '%s'",
		    (int)(p - s), s, s);
	/* rsync's rule: a ':' before any '/' means host:path. */
	p = strpbrk(s, ":/");
	if (p != NULL && *p == ':')
		return parse_scp(s, u, err, errlen);
	u->kind = PS_URL_LOCAL;
	u->path = xstrdup(s);
	return 0;
}

int
ps_url_parse(const char *s, struct ps_url *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof(*u));
	if (errlen > 0)
		err[0] = '\0';
	if (s == NULL)
		return fail(err, errlen, "empty destination");
	if (parse(s, u, err, errlen) < 0) {
		ps_url_free(u);
		return -1;
	}
	return 0;
}

void
ps_url_free(struct ps_url *u)
{
	free(u->user);
	free(u->host);
	free(u->path);
	memset(u, 0, sizeof(*u));
}
