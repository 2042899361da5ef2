/*
 * url.h — destination URLs (SPEC section 5).
 *
 *   /abs/path, ./rel, rel        local directory (kind PS_URL_LOCAL)
 *   file:///abs/path             local directory
 *   [user@]host:/path            ssh, rsync style (kind PS_URL_SSH)
 *   ssh://[user@]host[:port]/path
 *   psync://host[:port]/module   patchsync daemon (kind PS_URL_DAEMON)
 *
 * As in rsync, a ':' before the first '/' makes a remote destination:
 * "a:b" is host "a", so write "./a:b" for a local directory named "a:b".
 * IPv6 addresses go in brackets: "[::1]:/srv", "ssh://u@[::1]:22/srv".
 * A remote path must be absolute. Local relative paths are returned as
 * given; the caller may resolve them.
 */
#ifndef PS_URL_H
#define PS_URL_H

#include <stddef.h>

enum ps_url_kind {
	PS_URL_LOCAL = 1,
	PS_URL_SSH,
	PS_URL_DAEMON
};

struct ps_url {
	int kind;		/* enum ps_url_kind */
	char *user;		/* NULL: not given */
	char *host;		/* NULL for local; IPv6 without brackets */
	int port;		/* 0: the transport's default */
	char *path;		/* directory; for PS_URL_DAEMON the module */
};

/*
 * Parse S into U (all strings malloc'd). Returns 0, or -1 with a one-line
 * reason in ERR (ERRLEN bytes) and U left empty.
 */
int ps_url_parse(const char *s, struct ps_url *u, char *err, size_t errlen);
void ps_url_free(struct ps_url *u);

#endif
