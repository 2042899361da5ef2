/*
 * bundle_index.c — a bundle's index (patchsync-bundle(5)): JSON, one
 * value a line, written and parsed with jansson. One line at a time, so
 * that neither side holds a document of a million members in jansson's
 * form; every field is bounded and checked against what came before,
 * since the index comes from a file anyone may have made.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <xxhash.h>

#include "bundle.h"
#include "conf.h"
#include "fsops.h"

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

void
ps_bindex_free(struct ps_bindex *x)
{
	size_t i;

	for (i = 0; i < x->ncomp; i++) {
		free(x->comp[i].name);
		free(x->comp[i].dest);
	}
	for (i = 0; i < x->nm; i++)
		free(x->m[i].path);
	free(x->comp);
	free(x->m);
	free(x->console);
	buf_free(&x->line);
	memset(x, 0, sizeof(*x));
}

char *
ps_bundle_member_name(const struct ps_bindex *x, const struct ps_bmember *m,
    size_t *len)
{
	const char *dest = m->comp < x->ncomp ? x->comp[m->comp].dest : "";
	struct buf b = { 0 };

	if (m->kind == PS_BK_MANIFEST) {
		char *s = xasprintf("manifests/%u.psm", (unsigned)m->comp);

		*len = strlen(s);
		return s;
	}
	buf_addstr(&b, m->kind == PS_BK_DELTA ? "deltas/" : "files/");
	if (*dest != '\0') {
		buf_addstr(&b, dest);
		buf_addc(&b, '/');
	}
	buf_add(&b, m->path, m->path_len);
	*len = b.len;
	buf_addc(&b, '\0');
	return (char *)b.p;
}

/* Is A a directory above B ("a" and "a/b")? */
static int
above(const char *a, const char *b)
{
	size_t n = strlen(a);

	return strncmp(a, b, n) == 0 && b[n] == '/';
}

const char *
ps_bundle_dest_problem(const char *const *dests, size_t n, size_t i)
{
	const char *d = dests[i];
	size_t j;

	if (*d == '\0')
		return n == 1 ? NULL : "the server root itself can only be "
		    "the destination of a bundle of one directory";
	if (!ps_path_ok(d, strlen(d)))
		return "not a safe relative path";
	if (ps_path_is_meta(d))
		return "patchsync's own directory";
	for (j = 0; j < n; j++) {
		if (j == i)
			continue;
		if (strcmp(dests[j], d) == 0)
			return "the destination of two components";
		if (*dests[j] != '\0' && (above(d, dests[j]) ||
		    above(dests[j], d)))
			return "inside, or around, another destination";
	}
	return NULL;
}

/* ---- writing ---- */

static json_t *
hex_json(const uint8_t h[16])
{
	char hex[33];

	ps_hex(h, 16, hex);
	return json_string(hex);
}

/* A path as an index string: ps_escape's form (lossless, valid UTF-8). */
static json_t *
path_json(const char *p, size_t len)
{
	char *e = ps_escape(p, len);
	json_t *s = json_string(e);

	free(e);
	return s;
}

static char *
dump_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT), *line;

	json_decref(o);
	if (s == NULL) {
		ps_err("out of memory");
		exit(PS_EPARTIAL);
	}
	line = xasprintf("%s\n", s);
	free(s);
	return line;
}

char *
ps_bidx_header_line(const struct ps_bindex *x)
{
	json_t *comps = json_array();
	size_t i;

	for (i = 0; i < x->ncomp; i++) {
		const struct ps_bcomp *c = &x->comp[i];

		json_array_append_new(comps, json_pack("{s:o,s:o,s:o}",
		    "component", c->name ? json_string(c->name) : json_null(),
		    "dest", path_json(c->dest, strlen(c->dest)),
		    "against", c->have_against ? hex_json(c->against) :
		    json_null()));
	}
	return dump_line(json_pack("{s:s,s:i,s:o,s:I,s:b,s:I,s:o}",
	    "format", PS_BUNDLE_FORMAT, "version", PS_BUNDLE_VERSION,
	    "console", path_json(x->console, strlen(x->console)),
	    "created", (json_int_t)x->created, "full", x->full,
	    "members", (json_int_t)x->nm_total, "components", comps));
}

static const char *
kind_name(uint8_t kind)
{
	switch (kind) {
	case PS_BK_MANIFEST:
		return "manifest";
	case PS_BK_FILE:
		return "file";
	default:
		return "delta";
	}
}

char *
ps_bidx_member_line(const struct ps_bindex *x, const struct ps_bmember *m)
{
	size_t nlen;
	char *name = ps_bundle_member_name(x, m, &nlen);
	json_t *o;

	o = json_pack("{s:o,s:s,s:I}", "name", path_json(name, nlen),
	    "kind", kind_name(m->kind), "component", (json_int_t)m->comp);
	free(name);
	if (m->kind != PS_BK_MANIFEST)
		json_object_set_new(o, "path", path_json(m->path,
		    m->path_len));
	json_object_set_new(o, "size", json_integer((json_int_t)m->size));
	json_object_set_new(o, "hash", hex_json(m->hash));
	if (m->kind == PS_BK_DELTA) {
		json_object_set_new(o, "basis", json_pack("{s:I,s:o}",
		    "size", (json_int_t)m->basis_size,
		    "hash", hex_json(m->basis_hash)));
		json_object_set_new(o, "target", json_pack("{s:I,s:o}",
		    "size", (json_int_t)m->target_size,
		    "hash", hex_json(m->target_hash)));
	}
	return dump_line(o);
}

void
ps_bidx_add(struct ps_bindex *x, struct ps_bmember *m)
{
	if (x->nm == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 64;
		x->m = xreallocarray(x->m, x->cap, sizeof(*x->m));
	}
	x->m[x->nm++] = *m;
	memset(m, 0, sizeof(*m));
}

/* ---- reading ---- */

static int
unhex(const char *s, uint8_t out[16])
{
	size_t i;
	int hi, lo;

	if (strlen(s) != 32)
		return -1;
	for (i = 0; i < 16; i++) {
		hi = s[2 * i];
		lo = s[2 * i + 1];
		hi = hi >= '0' && hi <= '9' ? hi - '0' : hi >= 'a' &&
		    hi <= 'f' ? hi - 'a' + 10 : -1;
		lo = lo >= '0' && lo <= '9' ? lo - '0' : lo >= 'a' &&
		    lo <= 'f' ? lo - 'a' + 10 : -1;
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* An index string back to bytes; NULL when malformed or too long. */
static char *
unescape(const char *s, size_t max, size_t *len)
{
	struct buf b = { 0 };

	if (strlen(s) > 4 * max || ps_unescape(s, &b) != 0 || b.len > max) {
		buf_free(&b);
		return NULL;
	}
	*len = b.len;
	buf_addc(&b, '\0');
	return (char *)b.p;
}

static int
size_ok(json_int_t v)
{
	return v >= 0 && (uint64_t)v <= PS_BUNDLE_SIZE_MAX;
}

static int
parse_comp(struct ps_bindex *x, json_t *o, size_t i, char *err,
    size_t errlen)
{
	struct ps_bcomp *c = &x->comp[i];
	const char *name = NULL, *dest, *against = NULL;
	json_t *jname, *jagainst;
	json_error_t je;
	size_t len;

	if (json_unpack_ex(o, &je, JSON_STRICT, "{s:o,s:s,s:o}",
	    "component", &jname, "dest", &dest, "against", &jagainst) != 0)
		return fail(err, errlen, "component %zu: %s", i, je.text);
	if ((!json_is_null(jname) && (name = json_string_value(jname)) ==
	    NULL) || (!json_is_null(jagainst) &&
	    (against = json_string_value(jagainst)) == NULL))
		return fail(err, errlen, "component %zu: a string or null "
		    "expected", i);
	if (name != NULL && (strlen(name) > PS_BUNDLE_NAME_MAX ||
	    !ps_conf_name_ok(name)))
		return fail(err, errlen, "component %zu: bad name", i);
	c->name = name != NULL ? xstrdup(name) : NULL;
	if ((c->dest = unescape(dest, PS_PATH_MAX, &len)) == NULL ||
	    strlen(c->dest) != len)
		return fail(err, errlen, "component %zu: bad destination", i);
	if (x->full != (against == NULL))
		return fail(err, errlen, "component %zu: %s", i, x->full ?
		    "a full bundle names no server state" :
		    "no server state named");
	c->have_against = against != NULL;
	if (against != NULL && unhex(against, c->against) != 0)
		return fail(err, errlen, "component %zu: bad server state", i);
	return 0;
}

static int
parse_header(struct ps_bindex *x, json_t *o, char *err, size_t errlen)
{
	const char *format, *console;
	json_int_t version, created, members;
	json_t *comps;
	json_error_t je;
	const char **dests;
	const char *why;
	size_t i, len;
	int full, rc = 0;

	if (json_unpack_ex(o, &je, 0, "{s:s,s:I}", "format", &format,
	    "version", &version) != 0 || strcmp(format, PS_BUNDLE_FORMAT) != 0)
		return fail(err, errlen, "not a patchsync bundle index");
	if (version != PS_BUNDLE_VERSION)
		return fail(err, errlen, "bundle format version %lld is not "
		    "supported (this patchsync reads version %d)",
		    (long long)version, PS_BUNDLE_VERSION);
	if (json_unpack_ex(o, &je, JSON_STRICT,
	    "{s:s,s:I,s:s,s:I,s:b,s:I,s:o}", "format", &format,
	    "version", &version, "console", &console, "created", &created,
	    "full", &full, "members", &members, "components", &comps) != 0)
		return fail(err, errlen, "index header: %s", je.text);
	x->version = (uint32_t)version;
	if ((x->console = unescape(console, PS_BUNDLE_NAME_MAX, &len)) ==
	    NULL)
		return fail(err, errlen, "index header: bad console name");
	if (created < 0)
		return fail(err, errlen, "index header: bad creation time");
	x->created = (int64_t)created;
	x->full = full;
	if (!json_is_array(comps) || json_array_size(comps) == 0 ||
	    json_array_size(comps) > PS_BUNDLE_MAX_COMPONENTS)
		return fail(err, errlen, "index header: 1 to %d components "
		    "expected", PS_BUNDLE_MAX_COMPONENTS);
	x->ncomp = json_array_size(comps);
	x->comp = xcalloc(x->ncomp, sizeof(*x->comp));
	for (i = 0; i < x->ncomp && rc == 0; i++)
		rc = parse_comp(x, json_array_get(comps, i), i, err, errlen);
	if (rc != 0)
		return rc;
	if (members < (json_int_t)x->ncomp ||
	    members > (json_int_t)PS_BUNDLE_MAX_MEMBERS)
		return fail(err, errlen, "index header: bad member count");
	x->nm_total = (size_t)members;
	dests = xcalloc(x->ncomp, sizeof(*dests));
	for (i = 0; i < x->ncomp; i++)
		dests[i] = x->comp[i].dest;
	for (i = 0; i < x->ncomp && rc == 0; i++)
		if ((why = ps_bundle_dest_problem(dests, x->ncomp, i)) != NULL)
			rc = fail(err, errlen, "component %zu: destination: "
			    "%s", i, why);
	free(dests);
	return rc;
}

/* The fields of a member line, by kind. */
static int
unpack_member(json_t *o, uint8_t kind, struct ps_bmember *m,
    const char **name, const char **path, char *err, size_t errlen)
{
	const char *k, *hash, *bhash = NULL, *thash = NULL;
	json_int_t comp, size, bsize = 0, tsize = 0;
	json_error_t je;
	int r;

	*path = NULL;
	if (kind == PS_BK_MANIFEST)
		r = json_unpack_ex(o, &je, JSON_STRICT, "{s:s,s:s,s:I,s:I,s:s}",
		    "name", name, "kind", &k, "component", &comp, "size",
		    &size, "hash", &hash);
	else if (kind == PS_BK_FILE)
		r = json_unpack_ex(o, &je, JSON_STRICT,
		    "{s:s,s:s,s:I,s:s,s:I,s:s}", "name", name, "kind", &k,
		    "component", &comp, "path", path, "size", &size, "hash",
		    &hash);
	else
		r = json_unpack_ex(o, &je, JSON_STRICT,
		    "{s:s,s:s,s:I,s:s,s:I,s:s,s:{s:I,s:s},s:{s:I,s:s}}",
		    "name", name, "kind", &k, "component", &comp, "path", path,
		    "size", &size, "hash", &hash, "basis", "size", &bsize,
		    "hash", &bhash, "target", "size", &tsize, "hash", &thash);
	if (r != 0)
		return fail(err, errlen, "%s", je.text);
	if (comp < 0 || comp >= PS_BUNDLE_MAX_COMPONENTS)
		return fail(err, errlen, "bad component");
	m->comp = (uint32_t)comp;
	if (!size_ok(size) || !size_ok(bsize) || !size_ok(tsize))
		return fail(err, errlen, "size out of range");
	m->size = (uint64_t)size;
	m->basis_size = (uint64_t)bsize;
	m->target_size = (uint64_t)tsize;
	if (unhex(hash, m->hash) != 0 || (bhash != NULL &&
	    unhex(bhash, m->basis_hash) != 0) || (thash != NULL &&
	    unhex(thash, m->target_hash) != 0))
		return fail(err, errlen, "malformed hash");
	return 0;
}

/* Where member M may stand: after everything before it. */
static int
check_order(const struct ps_bindex *x, const struct ps_bmember *m,
    char *err, size_t errlen)
{
	const struct ps_bmember *prev = x->nm > 0 ? &x->m[x->nm - 1] : NULL;

	if (x->nm < x->ncomp) {
		if (m->kind != PS_BK_MANIFEST || m->comp != x->nm)
			return fail(err, errlen, "the manifest of component "
			    "%zu expected", x->nm);
		return 0;
	}
	if (m->kind == PS_BK_MANIFEST)
		return fail(err, errlen, "a second manifest");
	if (m->comp >= x->ncomp)
		return fail(err, errlen, "no such component");
	if (m->kind == PS_BK_DELTA && !x->comp[m->comp].have_against)
		return fail(err, errlen, "a delta in a full bundle");
	if (m->kind == PS_BK_DELTA && m->size < 5)
		return fail(err, errlen, "a delta shorter than its header");
	if (prev->kind == PS_BK_MANIFEST || prev->comp < m->comp)
		return 0;
	if (prev->comp > m->comp || ps_path_cmp(prev->path, prev->path_len,
	    m->path, m->path_len) >= 0)
		return fail(err, errlen, "out of order");
	return 0;
}

static int
parse_member(struct ps_bindex *x, json_t *o, char *err, size_t errlen)
{
	struct ps_bmember m;
	const char *kind, *name, *path;
	char *want = NULL, *got = NULL, sub[160];
	size_t wlen, glen;
	json_error_t je;
	int rc = -1;

	if (x->nm == x->nm_total)
		return fail(err, errlen, "more members than the header "
		    "announces");
	memset(&m, 0, sizeof(m));
	if (json_unpack_ex(o, &je, 0, "{s:s}", "kind", &kind) != 0)
		return fail(err, errlen, "member %zu: no kind", x->nm);
	if (strcmp(kind, "manifest") == 0)
		m.kind = PS_BK_MANIFEST;
	else if (strcmp(kind, "file") == 0)
		m.kind = PS_BK_FILE;
	else if (strcmp(kind, "delta") == 0)
		m.kind = PS_BK_DELTA;
	else
		return fail(err, errlen, "member %zu: unknown kind", x->nm);
	if (unpack_member(o, m.kind, &m, &name, &path, sub,
	    sizeof(sub)) != 0)
		return fail(err, errlen, "member %zu: %s", x->nm, sub);
	if (path != NULL) {
		size_t len;

		m.path = unescape(path, PS_PATH_MAX, &len);
		if (m.path == NULL || !ps_path_ok(m.path, len)) {
			fail(err, errlen, "member %zu: refusing an unsafe "
			    "path", x->nm);
			goto out;
		}
		m.path_len = (uint32_t)len;
	}
	if (check_order(x, &m, sub, sizeof(sub)) != 0) {
		fail(err, errlen, "member %zu: %s", x->nm, sub);
		goto out;
	}
	want = ps_bundle_member_name(x, &m, &wlen);
	got = unescape(name, PS_PATH_MAX + 16, &glen);
	if (got == NULL || glen != wlen || memcmp(got, want, wlen) != 0) {
		fail(err, errlen, "member %zu: its name is not the one its "
		    "kind, component and path make", x->nm);
		goto out;
	}
	ps_bidx_add(x, &m);
	rc = 0;
out:
	free(m.path);
	free(want);
	free(got);
	return rc;
}

static int
parse_line(struct ps_bindex *x, const char *p, size_t n, char *err,
    size_t errlen)
{
	json_error_t je;
	json_t *o;
	int rc;

	o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return fail(err, errlen, "index line %zu is not a JSON object",
		    x->have_header ? x->nm + 2 : 1);
	}
	if (!x->have_header) {
		rc = parse_header(x, o, err, errlen);
		x->have_header = rc == 0;
	} else {
		rc = parse_member(x, o, err, errlen);
	}
	json_decref(o);
	return rc;
}

int
ps_bidx_feed(struct ps_bindex *x, const void *p, size_t n, char *err,
    size_t errlen)
{
	const unsigned char *nl;
	size_t at = 0;

	buf_add(&x->line, p, n);
	while ((nl = memchr(x->line.p + at, '\n', x->line.len - at)) !=
	    NULL) {
		size_t len = (size_t)(nl - (x->line.p + at));

		if (len > PS_BUNDLE_LINE_MAX)
			break;
		if (parse_line(x, (const char *)x->line.p + at, len, err,
		    errlen) != 0)
			return -1;
		at += len + 1;
	}
	if (x->line.len - at > PS_BUNDLE_LINE_MAX)
		return fail(err, errlen, "index line %zu is too long",
		    x->have_header ? x->nm + 2 : 1);
	memmove(x->line.p, x->line.p + at, x->line.len - at);
	x->line.len -= at;
	return 0;
}

int
ps_bidx_end(struct ps_bindex *x, char *err, size_t errlen)
{
	if (x->line.len > 0)
		return fail(err, errlen, "the index ends in the middle of a "
		    "line");
	if (!x->have_header)
		return fail(err, errlen, "the index is empty");
	if (x->nm != x->nm_total)
		return fail(err, errlen, "the index lists %zu members of the "
		    "%zu it announces", x->nm, x->nm_total);
	buf_free(&x->line);
	return 0;
}

void
ps_bundle_state(const struct ps_manifest *m, uint8_t out[16])
{
	XXH3_state_t *st = XXH3_createState();
	XXH128_canonical_t c;
	unsigned char b[8];
	size_t i;

	if (st == NULL) {
		ps_err("out of memory");
		exit(PS_EPARTIAL);
	}
	XXH3_128bits_reset(st);
	for (i = 0; i < m->n; i++) {
		const struct ps_entry *e = &m->e[i];

		XXH3_128bits_update(st, e->path, e->path_len);
		XXH3_128bits_update(st, "", 1);
		XXH3_128bits_update(st, &e->type, 1);
		if (e->type != PS_FT_FILE)
			continue;
		put_u64le(b, e->size);
		XXH3_128bits_update(st, b, 8);
		XXH3_128bits_update(st, e->hash, 16);
	}
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(out, c.digest, 16);
	XXH3_freeState(st);
}
