/*
 * bundle_test.c — a bundle's index comes from a file anyone may have
 * made: every field is bounded and checked against what came before it,
 * whatever the pieces it arrives in; what the writer makes the reader
 * takes back unchanged. Also member names, destinations and the server
 * state hash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"

#define H0 "00000000000000000000000000000000"
#define H1 "0123456789abcdef0123456789abcdef"

/* Feed TEXT in pieces of N bytes (0: at once); the result of it all. */
static int
feed(struct ps_bindex *x, const char *text, size_t n, char *err)
{
	size_t len = strlen(text), at = 0, k;

	memset(x, 0, sizeof(*x));
	if (n == 0)
		n = len ? len : 1;
	while (at < len) {
		k = len - at < n ? len - at : n;
		if (ps_bidx_feed(x, text + at, k, err, 256) != 0)
			return -1;
		at += k;
	}
	return ps_bidx_end(x, err, 256);
}

/* Does TEXT fail to parse, with WANT in the reason? */
static void
refused(const char *text, const char *want)
{
	struct ps_bindex x;
	char err[256] = "";

	if (feed(&x, text, 0, err) == 0)
		fail_msg("accepted: %s", text);
	if (strstr(err, want) == NULL)
		fail_msg("reason '%s' lacks '%s' for: %s", err, want, text);
	ps_bindex_free(&x);
}

static void
accepted(const char *text)
{
	struct ps_bindex x;
	char err[256] = "";

	if (feed(&x, text, 0, err) != 0)
		fail_msg("refused (%s): %s", err, text);
	ps_bindex_free(&x);
}

/* A header of NCOMP components (dests a, b, ...) announcing N members. */
static char *
header(int n, const char *extra)
{
	return xasprintf("{\"format\":\"patchsync-bundle\",\"version\":1,"
	    "\"console\":\"c\",\"created\":5,\"full\":false,\"members\":%d,"
	    "\"components\":[{\"component\":\"patches\",\"dest\":\"a\","
	    "\"against\":\"" H1 "\"}%s]}\n", n, extra);
}

static char *
manifest_line(int comp)
{
	return xasprintf("{\"name\":\"manifests/%d.psm\",\"kind\":\"manifest\","
	    "\"component\":%d,\"size\":10,\"hash\":\"" H0 "\"}\n", comp, comp);
}

static char *
file_line(const char *dest, const char *path)
{
	return xasprintf("{\"name\":\"files/%s/%s\",\"kind\":\"file\","
	    "\"component\":0,\"path\":\"%s\",\"size\":3,\"hash\":\"" H1
	    "\"}\n", dest, path, path);
}

static char *
cat3(char *a, char *b, char *c)
{
	char *s = xasprintf("%s%s%s", a, b ? b : "", c ? c : "");

	free(a);
	free(b);
	free(c);
	return s;
}

/* ---- tests ---- */

/* What the writer makes, the reader takes back, in any pieces. */
static void
test_roundtrip(void **state)
{
	struct ps_bindex w, r;
	struct ps_bmember m;
	struct buf all = { 0 };
	char err[256], *line;
	size_t i, n;
	static const char *paths[] = { "a.msu", "b\\c", "sub/d\nx",
	    "sub/\377\376", "z" };

	(void)state;
	memset(&w, 0, sizeof(w));
	w.version = 1;
	w.console = xstrdup("console \"a\"");
	w.created = 1764000000;
	w.ncomp = 2;
	w.comp = xcalloc(2, sizeof(*w.comp));
	w.comp[0].name = xstrdup("patches");
	w.comp[0].dest = xstrdup("p");
	w.comp[0].have_against = 1;
	memset(w.comp[0].against, 0xab, 16);
	w.comp[1].dest = xstrdup("defs/x");
	w.comp[1].have_against = 1;
	for (i = 0; i < 2; i++) {
		memset(&m, 0, sizeof(m));
		m.kind = PS_BK_MANIFEST;
		m.comp = (uint32_t)i;
		m.size = 100 + i;
		m.hash[0] = (uint8_t)i;
		ps_bidx_add(&w, &m);
	}
	for (i = 0; i < 5; i++) {
		memset(&m, 0, sizeof(m));
		m.kind = i == 2 ? PS_BK_DELTA : PS_BK_FILE;
		m.comp = i < 4 ? 0 : 1;
		m.path = xstrdup(paths[i]);
		m.path_len = (uint32_t)strlen(paths[i]);
		m.size = (UINT64_C(1) << 40) + i;
		m.hash[15] = (uint8_t)i;
		m.basis_size = i == 2 ? 77 : 0;
		m.basis_hash[3] = i == 2 ? 9 : 0;
		m.target_size = i == 2 ? 88 : 0;
		m.target_hash[4] = i == 2 ? 8 : 0;
		ps_bidx_add(&w, &m);
	}
	w.nm_total = w.nm;
	line = ps_bidx_header_line(&w);
	buf_addstr(&all, line);
	free(line);
	for (i = 0; i < w.nm; i++) {
		line = ps_bidx_member_line(&w, &w.m[i]);
		assert_non_null(strchr(line, '\n'));
		assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
		buf_addstr(&all, line);
		free(line);
	}
	buf_addc(&all, '\0');
	for (n = 1; n < 300; n += 37) {
		assert_int_equal(feed(&r, (char *)all.p, n, err), 0);
		assert_string_equal(r.console, w.console);
		assert_int_equal(r.created, w.created);
		assert_int_equal(r.ncomp, 2);
		assert_null(r.comp[1].name);
		assert_string_equal(r.comp[1].dest, "defs/x");
		assert_memory_equal(r.comp[0].against, w.comp[0].against, 16);
		assert_int_equal(r.nm, w.nm);
		for (i = 0; i < w.nm; i++) {
			assert_int_equal(r.m[i].kind, w.m[i].kind);
			assert_int_equal(r.m[i].comp, w.m[i].comp);
			assert_int_equal(r.m[i].size, w.m[i].size);
			assert_memory_equal(r.m[i].hash, w.m[i].hash, 16);
			assert_int_equal(r.m[i].basis_size, w.m[i].basis_size);
			assert_memory_equal(r.m[i].basis_hash,
			    w.m[i].basis_hash, 16);
			assert_int_equal(r.m[i].target_size,
			    w.m[i].target_size);
			assert_memory_equal(r.m[i].target_hash,
			    w.m[i].target_hash, 16);
			if (w.m[i].path == NULL) {
				assert_null(r.m[i].path);
				continue;
			}
			assert_int_equal(r.m[i].path_len, w.m[i].path_len);
			assert_memory_equal(r.m[i].path, w.m[i].path,
			    w.m[i].path_len);
		}
		ps_bindex_free(&r);
	}
	buf_free(&all);
	ps_bindex_free(&w);
}

static void
test_header(void **state)
{
	char *s, big[400];

	(void)state;
	s = cat3(header(1, ""), manifest_line(0), NULL);
	accepted(s);
	free(s);
	refused("", "empty");
	refused("[]\n", "not a JSON object");
	refused("{\"format\":\"tar\",\"version\":1}\n", "not a patchsync");
	refused("{\"format\":\"patchsync-bundle\",\"version\":2}\n",
	    "version 2 is not supported");
	refused("{\"format\":\"patchsync-bundle\",\"version\":1}\n",
	    "index header");
	s = header(1, "");
	s[strlen(s) - 2] = '\0';	/* an extra key instead of '}' */
	s = cat3(s, xstrdup(",\"x\":1}\n"), NULL);
	refused(s, "index header");
	free(s);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	s = xasprintf("{\"format\":\"patchsync-bundle\",\"version\":1,"
	    "\"console\":\"%s\",\"created\":5,\"full\":false,\"members\":1,"
	    "\"components\":[]}\n", big);
	refused(s, "console name");
	free(s);
	refused("{\"format\":\"patchsync-bundle\",\"version\":1,\"console\":"
	    "\"c\",\"created\":-1,\"full\":false,\"members\":1,"
	    "\"components\":[]}\n", "creation time");
	refused("{\"format\":\"patchsync-bundle\",\"version\":1,\"console\":"
	    "\"c\",\"created\":1,\"full\":false,\"members\":1,"
	    "\"components\":[]}\n", "components expected");
	refused("{\"format\":\"patchsync-bundle\",\"version\":1,\"console\":"
	    "\"c\",\"created\":1,\"full\":false,\"members\":1,"
	    "\"components\":{}}\n", "components expected");
	/* member counts */
	s = header(0, "");
	refused(s, "member count");
	free(s);
	s = header(1 << 30, "");
	refused(s, "member count");
	free(s);
	s = header(-1, "");
	refused(s, "member count");
	free(s);
	s = header(2, "");
	s = cat3(s, manifest_line(0), NULL);
	refused(s, "1 members of the 2");
	free(s);
}

static void
test_components(void **state)
{
	struct buf b = { 0 };
	char *s;
	int i;

	(void)state;
	/* too many components */
	buf_addstr(&b, "{\"format\":\"patchsync-bundle\",\"version\":1,"
	    "\"console\":\"c\",\"created\":1,\"full\":true,\"members\":300,"
	    "\"components\":[");
	for (i = 0; i < 257; i++) {
		s = xasprintf("%s{\"component\":null,\"dest\":\"d%d\","
		    "\"against\":null}", i ? "," : "", i);
		buf_addstr(&b, s);
		free(s);
	}
	buf_addstr(&b, "]}\n");
	buf_addc(&b, '\0');
	refused((char *)b.p, "components expected");
	buf_free(&b);

#define COMP(x) header(2, ",{" x "}")
	s = COMP("\"component\":\"Bad Name\",\"dest\":\"b\",\"against\":\""
	    H1 "\"");
	refused(s, "bad name");
	free(s);
	s = COMP("\"component\":7,\"dest\":\"b\",\"against\":\"" H1 "\"");
	refused(s, "string or null");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"../b\",\"against\":\"" H1
	    "\"");
	refused(s, "not a safe relative path");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"/b\",\"against\":\"" H1 "\"");
	refused(s, "not a safe relative path");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"b//c\",\"against\":\"" H1
	    "\"");
	refused(s, "not a safe relative path");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"b\\\\x00c\",\"against\":\""
	    H1 "\"");
	refused(s, "bad destination");
	free(s);
	s = COMP("\"component\":null,\"dest\":\".patchsync\",\"against\":\""
	    H1 "\"");
	refused(s, "patchsync's own directory");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"\",\"against\":\"" H1 "\"");
	refused(s, "server root itself");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"a\",\"against\":\"" H1 "\"");
	refused(s, "two components");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"a/b\",\"against\":\"" H1
	    "\"");
	refused(s, "inside, or around");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"b\",\"against\":null");
	refused(s, "no server state named");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"b\",\"against\":\"0123\"");
	refused(s, "bad server state");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"b\",\"against\":\""
	    "0123456789ABCDEF0123456789abcdef\"");
	refused(s, "bad server state");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"b\"");
	refused(s, "component 1");
	free(s);
	s = COMP("\"component\":null,\"dest\":\"b\",\"against\":\"" H1 "\","
	    "\"more\":1");
	refused(s, "component 1");
	free(s);
	refused("{\"format\":\"patchsync-bundle\",\"version\":1,\"console\":"
	    "\"c\",\"created\":1,\"full\":true,\"members\":1,\"components\":"
	    "[{\"component\":null,\"dest\":\"a\",\"against\":\"" H1 "\"}]}\n",
	    "a full bundle names no server state");
#undef COMP
}

/* Header of one component "a", then LINES as members (N of them). */
static void
members_refused(int n, const char *lines, const char *want)
{
	char *s = cat3(header(n, ""), xstrdup(lines), NULL);

	refused(s, want);
	free(s);
}

static void
test_members(void **state)
{
	char *m0 = manifest_line(0), *s, *f;

	(void)state;
	s = cat3(header(3, ""), xstrdup(m0), cat3(file_line("a", "x"),
	    file_line("a", "y/z"), NULL));
	accepted(s);
	free(s);

	members_refused(1, "{\"kind\":\"file\"}\n", "member 0");
	members_refused(1, "{\"name\":\"manifests/0.psm\",\"kind\":\"other\","
	    "\"component\":0,\"size\":1,\"hash\":\"" H0 "\"}\n",
	    "unknown kind");
	members_refused(1, "{\"name\":\"manifests/0.psm\",\"kind\":"
	    "\"manifest\",\"component\":0,\"size\":1,\"hash\":\"" H0 "\","
	    "\"x\":1}\n", "member 0");
	members_refused(1, "{\"name\":\"manifests/0.psm\",\"kind\":"
	    "\"manifest\",\"component\":0,\"size\":-1,\"hash\":\"" H0 "\"}\n",
	    "size out of range");
	members_refused(1, "{\"name\":\"manifests/0.psm\",\"kind\":"
	    "\"manifest\",\"component\":0,\"size\":4611686018427387905,"
	    "\"hash\":\"" H0 "\"}\n", "size out of range");
	members_refused(1, "{\"name\":\"manifests/0.psm\",\"kind\":"
	    "\"manifest\",\"component\":0,\"size\":1,\"hash\":\"xyz\"}\n",
	    "malformed hash");
	members_refused(1, "{\"name\":\"manifests/0.psm\",\"kind\":"
	    "\"manifest\",\"component\":-1,\"size\":1,\"hash\":\"" H0 "\"}\n",
	    "bad component");
	members_refused(1, "{\"name\":\"manifests/1.psm\",\"kind\":"
	    "\"manifest\",\"component\":1,\"size\":1,\"hash\":\"" H0 "\"}\n",
	    "the manifest of component 0 expected");
	members_refused(1, "{\"name\":\"manifests/9.psm\",\"kind\":"
	    "\"manifest\",\"component\":0,\"size\":1,\"hash\":\"" H0 "\"}\n",
	    "its name is not the one");
	f = file_line("a", "x");
	members_refused(1, f, "the manifest of component 0 expected");
	s = cat3(xstrdup(m0), xstrdup(m0), NULL);
	members_refused(2, s, "a second manifest");
	free(s);
	s = cat3(xstrdup(m0), xstrdup(f), xstrdup(f));
	members_refused(3, s, "out of order");
	free(s);
	s = cat3(xstrdup(m0), file_line("a", "y"), file_line("a", "x"));
	members_refused(3, s, "out of order");
	free(s);
	/* "a/b" sorts before "a-b" in manifest order ('/' lowest). */
	s = cat3(xstrdup(m0), file_line("a", "a-b"), file_line("a", "a/b"));
	members_refused(3, s, "out of order");
	free(s);
	s = cat3(xstrdup(m0), xstrdup(f), NULL);
	members_refused(1, s, "more members than the header announces");
	free(s);
	/* unsafe paths, whatever the name says */
	s = cat3(xstrdup(m0), file_line("a", "../x"), NULL);
	members_refused(2, s, "refusing an unsafe path");
	free(s);
	s = cat3(xstrdup(m0), xstrdup("{\"name\":\"files/a//x\",\"kind\":"
	    "\"file\",\"component\":0,\"path\":\"/x\",\"size\":3,\"hash\":\""
	    H1 "\"}\n"), NULL);
	members_refused(2, s, "refusing an unsafe path");
	free(s);
	s = cat3(xstrdup(m0), xstrdup("{\"name\":\"files/a/x\",\"kind\":"
	    "\"file\",\"component\":0,\"path\":\"x\\\\x00y\",\"size\":3,"
	    "\"hash\":\"" H1 "\"}\n"), NULL);
	members_refused(2, s, "refusing an unsafe path");
	free(s);
	s = cat3(xstrdup(m0), xstrdup("{\"name\":\"files/a/x\",\"kind\":"
	    "\"file\",\"component\":0,\"path\":\"\",\"size\":3,"
	    "\"hash\":\"" H1 "\"}\n"), NULL);
	members_refused(2, s, "refusing an unsafe path");
	free(s);
	/* a name that does not match its path */
	s = cat3(xstrdup(m0), xstrdup("{\"name\":\"files/../../x\",\"kind\":"
	    "\"file\",\"component\":0,\"path\":\"x\",\"size\":3,\"hash\":\""
	    H1 "\"}\n"), NULL);
	members_refused(2, s, "its name is not the one");
	free(s);
	s = cat3(xstrdup(m0), xstrdup("{\"name\":\"deltas/a/x\",\"kind\":"
	    "\"file\",\"component\":0,\"path\":\"x\",\"size\":3,\"hash\":\""
	    H1 "\"}\n"), NULL);
	members_refused(2, s, "its name is not the one");
	free(s);
	/* deltas: their basis and target, a header at least, not in full */
	s = cat3(xstrdup(m0), xstrdup("{\"name\":\"deltas/a/x\",\"kind\":"
	    "\"delta\",\"component\":0,\"path\":\"x\",\"size\":9,\"hash\":\""
	    H1 "\"}\n"), NULL);
	members_refused(2, s, "member 1");
	free(s);
	s = cat3(xstrdup(m0), xstrdup("{\"name\":\"deltas/a/x\",\"kind\":"
	    "\"delta\",\"component\":0,\"path\":\"x\",\"size\":4,\"hash\":\""
	    H1 "\",\"basis\":{\"size\":1,\"hash\":\"" H1 "\"},\"target\":"
	    "{\"size\":1,\"hash\":\"" H1 "\"}}\n"), NULL);
	members_refused(2, s, "shorter than its header");
	free(s);
	s = cat3(xstrdup(m0), xstrdup("{\"name\":\"deltas/a/x\",\"kind\":"
	    "\"delta\",\"component\":0,\"path\":\"x\",\"size\":9,\"hash\":\""
	    H1 "\",\"basis\":{\"size\":1,\"hash\":\"" H1 "\"},\"target\":"
	    "{\"size\":1,\"hash\":\"nothex\"}}\n"), NULL);
	members_refused(2, s, "malformed hash");
	free(s);
	s = xasprintf("{\"format\":\"patchsync-bundle\",\"version\":1,"
	    "\"console\":\"c\",\"created\":5,\"full\":true,\"members\":2,"
	    "\"components\":[{\"component\":null,\"dest\":\"a\","
	    "\"against\":null}]}\n%s{\"name\":\"deltas/a/x\",\"kind\":"
	    "\"delta\",\"component\":0,\"path\":\"x\",\"size\":9,\"hash\":\""
	    H1 "\",\"basis\":{\"size\":1,\"hash\":\"" H1 "\"},\"target\":"
	    "{\"size\":1,\"hash\":\"" H1 "\"}}\n", m0);
	refused(s, "a delta in a full bundle");
	free(s);
	/* a member of a component that does not exist */
	s = cat3(xstrdup(m0), xstrdup("{\"name\":\"files/x\",\"kind\":\"file\","
	    "\"component\":3,\"path\":\"x\",\"size\":3,\"hash\":\"" H1
	    "\"}\n"), NULL);
	members_refused(2, s, "no such component");
	free(s);
	free(f);
	free(m0);
}

/* Lines: too long, unfinished, not JSON. */
static void
test_lines(void **state)
{
	struct ps_bindex x;
	char err[256], *big, *s;

	(void)state;
	big = malloc(PS_BUNDLE_LINE_MAX + 10);
	assert_non_null(big);
	memset(big, ' ', PS_BUNDLE_LINE_MAX + 9);
	big[PS_BUNDLE_LINE_MAX + 9] = '\0';
	memset(&x, 0, sizeof(x));
	assert_int_equal(ps_bidx_feed(&x, big, strlen(big), err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "too long"));
	ps_bindex_free(&x);
	big[PS_BUNDLE_LINE_MAX + 8] = '\n';
	refused(big, "too long");
	free(big);
	s = header(1, "");
	s[strlen(s) - 1] = '\0';	/* no newline at the end */
	refused(s, "in the middle of a line");
	free(s);
	s = cat3(header(1, ""), xstrdup("{not json\n"), NULL);
	refused(s, "not a JSON object");
	free(s);
	s = cat3(header(1, ""), xstrdup("{\"a\":1,\"a\":2}\n"), NULL);
	refused(s, "not a JSON object");	/* duplicate keys */
	free(s);
}

static void
test_names(void **state)
{
	struct ps_bindex x;
	struct ps_bcomp c[2];
	struct ps_bmember m;
	size_t len;
	char *n;

	(void)state;
	memset(&x, 0, sizeof(x));
	memset(c, 0, sizeof(c));
	c[0].dest = (char *)"";
	c[1].dest = (char *)"data/defs";
	x.comp = c;
	x.ncomp = 2;
	memset(&m, 0, sizeof(m));
	m.kind = PS_BK_MANIFEST;
	m.comp = 1;
	n = ps_bundle_member_name(&x, &m, &len);
	assert_string_equal(n, "manifests/1.psm");
	assert_int_equal(len, 15);
	free(n);
	m.kind = PS_BK_FILE;
	m.comp = 0;
	m.path = (char *)"a/b.msu";
	m.path_len = 7;
	n = ps_bundle_member_name(&x, &m, &len);
	assert_string_equal(n, "files/a/b.msu");
	free(n);
	m.kind = PS_BK_DELTA;
	m.comp = 1;
	n = ps_bundle_member_name(&x, &m, &len);
	assert_string_equal(n, "deltas/data/defs/a/b.msu");
	assert_int_equal(len, strlen(n));
	free(n);
}

static void
test_dests(void **state)
{
	const char *ok[] = { "patches", "data/engines", "defs" };
	const char *one[] = { "" };
	const char *two[] = { "", "x" };
	const char *bad[] = { "a", "a" };
	const char *nest[] = { "a/b", "a" };
	const char *sib[] = { "a", "ab", "a-b" };
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++)
		assert_null(ps_bundle_dest_problem(ok, 3, i));
	assert_null(ps_bundle_dest_problem(one, 1, 0));
	assert_non_null(ps_bundle_dest_problem(two, 2, 0));
	assert_non_null(ps_bundle_dest_problem(bad, 2, 1));
	assert_non_null(ps_bundle_dest_problem(nest, 2, 0));
	assert_non_null(ps_bundle_dest_problem(nest, 2, 1));
	for (i = 0; i < 3; i++)
		assert_null(ps_bundle_dest_problem(sib, 3, i));
}

/* The server state hash: paths, types, sizes and hashes; not times. */
static void
test_state(void **state)
{
	struct ps_manifest m;
	struct ps_entry e[2];
	uint8_t a[16], b[16];

	(void)state;
	memset(&m, 0, sizeof(m));
	memset(e, 0, sizeof(e));
	e[0].path = (char *)"d";
	e[0].path_len = 1;
	e[0].type = PS_FT_DIR;
	e[1].path = (char *)"d/f";
	e[1].path_len = 3;
	e[1].type = PS_FT_FILE;
	e[1].size = 10;
	m.e = e;
	m.n = 2;
	ps_bundle_state(&m, a);
	e[1].mtime_sec = 99;
	e[1].mode = 0600;
	e[0].mode = 0700;
	ps_bundle_state(&m, b);
	assert_memory_equal(a, b, 16);
	e[1].hash[5] = 1;
	ps_bundle_state(&m, b);
	assert_memory_not_equal(a, b, 16);
	e[1].hash[5] = 0;
	e[1].size = 11;
	ps_bundle_state(&m, b);
	assert_memory_not_equal(a, b, 16);
	e[1].size = 10;
	e[1].path = (char *)"d/g";
	ps_bundle_state(&m, b);
	assert_memory_not_equal(a, b, 16);
	m.n = 1;
	ps_bundle_state(&m, b);
	assert_memory_not_equal(a, b, 16);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_components),
		cmocka_unit_test(test_members),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_dests),
		cmocka_unit_test(test_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
