/* Unit tests for destination URLs (src/url.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ps.h"
#include "url.h"

struct good {
	const char *in;
	int kind;
	const char *user;
	const char *host;
	int port;
	const char *path;
};

static const struct good goods[] = {
	{ "/srv/patches", PS_URL_LOCAL, NULL, NULL, 0, "/srv/patches" },
	{ "/", PS_URL_LOCAL, NULL, NULL, 0, "/" },
	{ "file:///srv/p", PS_URL_LOCAL, NULL, NULL, 0, "/srv/p" },
	{ "file://localhost/srv/p", PS_URL_LOCAL, NULL, NULL, 0, "/srv/p" },
	{ "./dist", PS_URL_LOCAL, NULL, NULL, 0, "./dist" },
	{ "dist", PS_URL_LOCAL, NULL, NULL, 0, "dist" },
	{ "dist/sub", PS_URL_LOCAL, NULL, NULL, 0, "dist/sub" },
	{ "./a:b", PS_URL_LOCAL, NULL, NULL, 0, "./a:b" },
	{ "/x/a:b", PS_URL_LOCAL, NULL, NULL, 0, "/x/a:b" },
	{ "dir/x@y:z", PS_URL_LOCAL, NULL, NULL, 0, "dir/x@y:z" },
	{ "host:/srv", PS_URL_SSH, NULL, "host", 0, "/srv" },
	{ "admin@dist1.example.com:/srv/p", PS_URL_SSH, "admin",
	    "dist1.example.com", 0, "/srv/p" },
	{ "h:/path with space/x:y", PS_URL_SSH, NULL, "h", 0,
	    "/path with space/x:y" },
	{ "[::1]:/srv", PS_URL_SSH, NULL, "::1", 0, "/srv" },
	{ "u@[fe80::1%eth0]:/srv", PS_URL_SSH, "u", "fe80::1%eth0", 0,
	    "/srv" },
	{ "ssh://host/srv", PS_URL_SSH, NULL, "host", 0, "/srv" },
	{ "ssh://u@host:2222/srv/p", PS_URL_SSH, "u", "host", 2222,
	    "/srv/p" },
	{ "ssh://host:1/", PS_URL_SSH, NULL, "host", 1, "/" },
	{ "ssh://host:65535//x", PS_URL_SSH, NULL, "host", 65535, "//x" },
	{ "ssh://user@[::1]:22/path", PS_URL_SSH, "user", "::1", 22,
	    "/path" },
	{ "ssh://[2001:db8::7]/p", PS_URL_SSH, NULL, "2001:db8::7", 0, "/p" },
	{ "psync://dist1/patches", PS_URL_DAEMON, NULL, "dist1", 0,
	    "patches" },
	{ "psync://dist1:8873/patches/sub", PS_URL_DAEMON, NULL, "dist1",
	    8873, "patches/sub" },
	{ "psync://[::1]:9/m", PS_URL_DAEMON, NULL, "::1", 9, "m" },
};

static void
check_str(const char *what, const char *in, const char *got,
    const char *want)
{
	if (want == NULL && got == NULL)
		return;
	if (want == NULL || got == NULL || strcmp(want, got) != 0)
		fail_msg("'%s': %s is '%s', want '%s'", in, what,
		    got ? got : "(null)", want ? want : "(null)");
}

static void
test_good(void **state)
{
	struct ps_url u;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];

		if (ps_url_parse(g->in, &u, err, sizeof(err)) != 0)
			fail_msg("'%s' refused: %s", g->in, err);
		if (u.kind != g->kind)
			fail_msg("'%s': kind %d, want %d", g->in, u.kind,
			    g->kind);
		check_str("user", g->in, u.user, g->user);
		check_str("host", g->in, u.host, g->host);
		check_str("path", g->in, u.path, g->path);
		if (u.port != g->port)
			fail_msg("'%s': port %d, want %d", g->in, u.port,
			    g->port);
		ps_url_free(&u);
		assert_null(u.path);
	}
}

struct bad {
	const char *in;
	const char *why;	/* a substring of the reason */
};

static const struct bad bads[] = {
	{ "", "empty destination" },
	{ ":/srv", "empty host" },
	{ "u@:/srv", "empty host" },
	{ "host:", "must be absolute" },
	{ "host:srv/p", "must be absolute" },
	{ "a:b", "for a local directory write ./a:b" },
	{ "host::module", "host::module" },
	{ "a@b@host:/p", "'@'" },
	{ "@host:/p", "bad user name" },
	{ "-oProxyCommand=x:/p", "bad host name" },
	{ "ssh://-oProxyCommand=x/p", "bad host name" },
	{ "ssh://-l/p", "bad host name" },
	{ "ho st:/p", "bad host name" },
	{ "h\tx:/p", "bad host name" },
	{ "ssh://", "without a host" },
	{ "ssh:///srv", "without a host" },
	{ "ssh://host", "without a path" },
	{ "ssh://host:/p", "bad port" },
	{ "ssh://host:0/p", "bad port" },
	{ "ssh://host:65536/p", "bad port" },
	{ "ssh://host:99999999999/p", "bad port" },
	{ "ssh://host:-1/p", "bad port" },
	{ "ssh://host:22x/p", "bad port" },
	{ "ssh://host:22:23/p", "bad port" },
	{ "ssh://u@h@x/p", "'@'" },
	{ "ssh://u:pw@h/p", "passwords" },
	{ "ssh://[::1/p", "missing ']'" },
	{ "ssh://[]/p", "bad host name" },
	{ "ssh://[::1]x/p", "bad port" },
	{ "[::1]/srv", "cannot parse" },
	{ "[::1]:srv", "must be absolute" },
	{ "psync://host", "without a module" },
	{ "psync://host/", "without a module" },
	{ "psync://u@host/m", "no user name" },
	{ "file://host/srv", "file URL" },
	{ "file://relative", "file URL" },
	{ "http://host/p", "unknown URL scheme 'http'" },
	{ "rsync://host/m", "unknown URL scheme 'rsync'" },
};

static void
test_bad(void **state)
{
	struct ps_url u;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];

		if (b->why == NULL)
			continue;
		if (ps_url_parse(b->in, &u, err, sizeof(err)) == 0)
			fail_msg("'%s' accepted (host '%s', path '%s')",
			    b->in, u.host ? u.host : "", u.path);
		if (strstr(err, b->why) == NULL)
			fail_msg("'%s': reason '%s' lacks '%s'", b->in, err,
			    b->why);
		assert_null(strchr(err, '\n'));
		/* Nothing half-filled is left behind. */
		assert_null(u.path);
		assert_null(u.host);
		assert_null(u.user);
	}
	assert_int_equal(ps_url_parse(NULL, &u, err, sizeof(err)), -1);
	/* A tiny error buffer is fine, and so is none. */
	assert_int_equal(ps_url_parse("host:", &u, err, 4), -1);
	assert_int_equal(strlen(err), 3);
	assert_int_equal(ps_url_parse("host:", &u, NULL, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
