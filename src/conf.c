/*
 * conf.c — the console configuration file, parsed with inih.
 *
 * inih reports key lines only, and its handler does not learn the line
 * number, so the reader we hand it counts lines and notes every section
 * header: that lets errors name file, line and key, and lets an empty or
 * unknown section be caught too.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "conf.h"
#include "db.h"
#include "fsops.h"
#include "ps.h"

struct section {
	char *name;
	unsigned line;
};

struct parse {
	const char *file;
	FILE *fp;
	unsigned line;		/* line the reader handed out last */
	int too_long;		/* line number of an over-long line */
	struct section *sec;
	size_t nsec;
	struct ps_conf *c;
	char *err;		/* first error, already formatted */
	unsigned err_line;
};

static void fail(struct parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Keep the first error, prefixed with file and line. */
static void
fail(struct parse *p, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	/* The earliest line wins: it is where the reader should look first. */
	if (p->err != NULL && p->err_line <= p->line)
		return;
	free(p->err);
	p->err_line = p->line;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	p->err = xasprintf("%s:%u: %s", p->file, p->line,
	    msg != NULL ? msg : "error");
	free(msg);
}

static char *
reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	char *s, *end;
	size_t len;

	if (fgets(str, num, p->fp) == NULL)
		return NULL;
	p->line++;
	len = strlen(str);
	if (len > 0 && str[len - 1] != '\n' && !feof(p->fp) && !p->too_long)
		p->too_long = (int)p->line;
	/*
	 * Note section headers, empty ones included, skipping what inih
	 * skips before one: a UTF-8 byte order mark on the first line, and
	 * any isspace() byte ('\v' and '\f' too).
	 */
	s = str;
	if (p->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	for (; isspace((unsigned char)*s); s++)
		;
	if (*s == '[' && (end = strchr(s, ']')) != NULL) {
		p->sec = xreallocarray(p->sec, p->nsec + 1, sizeof(*p->sec));
		p->sec[p->nsec].name = xstrndup(s + 1, (size_t)(end - s - 1));
		p->sec[p->nsec].line = p->line;
		p->nsec++;
	}
	return str;
}

int
ps_parse_duration(const char *s, long *secs)
{
	long unit = 1, v;
	char *end;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *s == '-' || *s == '+' || v <= 0)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 's':
		end++;
		break;
	case 'm':
		unit = 60;
		end++;
		break;
	case 'h':
		unit = 3600;
		end++;
		break;
	case 'd':
		unit = 86400;
		end++;
		break;
	case 'w':
		unit = 7 * 86400;
		end++;
		break;
	default:
		return -1;
	}
	/* At most about a hundred years: the sum with "now" stays sane. */
	if (*end != '\0' || v > 100L * 366 * 86400 / unit)
		return -1;
	*secs = v * unit;
	return 0;
}

int
ps_conf_name_ok(const char *name)
{
	const char *s;

	if (*name == '\0')
		return 0;
	for (s = name; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '_' || *s == '-'))
			return 0;
	return 1;
}

static struct ps_component *
add_component(struct ps_conf *c, const char *name)
{
	struct ps_component *comp;

	c->comp = xreallocarray(c->comp, c->ncomp + 1, sizeof(*c->comp));
	comp = &c->comp[c->ncomp++];
	memset(comp, 0, sizeof(*comp));
	comp->name = xstrdup(name);
	return comp;
}

static struct ps_component *
component(struct ps_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->ncomp; i++)
		if (strcmp(c->comp[i].name, name) == 0)
			return &c->comp[i];
	return NULL;
}

/* Replace *DST with a copy of VALUE; a second occurrence is an error. */
static void
setstr(struct parse *p, char **dst, const char *section, const char *key,
    const char *value)
{
	if (*dst != NULL) {
		fail(p, "[%s]: duplicate key '%s'", section, key);
		return;
	}
	if (*value == '\0') {
		fail(p, "[%s]: key '%s' has an empty value", section, key);
		return;
	}
	*dst = xstrdup(value);
}

static int
handler(void *user, const char *section, const char *key, const char *value)
{
	struct parse *p = user;
	struct ps_conf *c = p->c;

	if (strcmp(section, "console") == 0) {
		if (strcmp(key, "name") == 0)
			setstr(p, &c->console_name, section, key, value);
		else if (strcmp(key, "database") == 0)
			setstr(p, &c->database, section, key, value);
		else if (strcmp(key, "keep") == 0) {
			if (ps_parse_duration(value, &c->keep) != 0)
				fail(p, "[%s]: key '%s' must be a duration "
				    "such as 90d, 12h or 2w", section, key);
		}
		else if (strcmp(key, "jobs") == 0) {
			char *end;
			long v;

			errno = 0;
			v = strtol(value, &end, 10);
			if (errno != 0 || *end != '\0' || end == value ||
			    v < 1 || v > PS_JOBS_MAX)
				fail(p, "[%s]: key '%s' must be a "
				    "number from 1 to 64", section, key);
			else
				c->jobs = (int)v;
		} else
			fail(p, "[%s]: unknown key '%s'", section, key);
	} else if (strncmp(section, "component ", 10) == 0) {
		struct ps_component *comp = component(c, section + 10);

		if (comp == NULL) {
			if (!ps_conf_name_ok(section + 10))
				return 1;	/* the header is the error */
			comp = add_component(c, section + 10);
		}
		if (strcmp(key, "path") == 0)
			setstr(p, &comp->path, section, key, value);
		else if (strcmp(key, "dest") == 0) {
			setstr(p, &comp->dest, section, key, value);
			if (!ps_path_ok(value, strlen(value)))
				fail(p, "[%s]: key '%s' must be a "
				    "relative path without '..'", section, key);
		} else if (strcmp(key, "source") == 0)
			setstr(p, &comp->source, section, key, value);
		else
			fail(p, "[%s]: unknown key '%s'", section, key);
	} else if (*section == '\0') {
		fail(p, "key '%s' outside any section", key);
	}
	/* Keys of unknown sections: the header itself is the error. */
	return 1;
}

/* A component's directory under ROOT: its dest, else its name. */
static const char *
dest_of(const struct ps_component *comp)
{
	return comp->dest != NULL ? comp->dest : comp->name;
}

/*
 * Each component has ROOT/<dest> to itself: not patchsync's own
 * directory (every server refuses it), and neither the same as another
 * component's nor inside it (with --delete the outer one would remove
 * the inner one's files at every push, and the inner one send them all
 * again).
 */
static void
check_dests(struct parse *p)
{
	const struct ps_component *a, *b;
	size_t i, j, n = strlen(PS_META_DIR);
	const char *d;

	for (i = 0; i < p->nsec; i++) {
		if (strncmp(p->sec[i].name, "component ", 10) != 0 ||
		    (b = component(p->c, p->sec[i].name + 10)) == NULL)
			continue;
		p->line = p->sec[i].line;
		d = dest_of(b);
		if (strncmp(d, PS_META_DIR, n) == 0 &&
		    (d[n] == '\0' || d[n] == '/')) {
			fail(p, "[%s]: dest '%s' is patchsync's own "
			    "directory", p->sec[i].name, d);
			continue;
		}
		for (j = 0; j < i; j++) {
			if (strncmp(p->sec[j].name, "component ", 10) != 0 ||
			    (a = component(p->c, p->sec[j].name + 10)) ==
			    NULL || a == b ||
			    !ps_path_nested(dest_of(a), d))
				continue;
			if (strcmp(dest_of(a), d) == 0)
				fail(p, "[%s]: dest '%s' is [%s]'s too",
				    p->sec[i].name, d, p->sec[j].name);
			else
				fail(p, "[%s]: dest '%s' and [%s]'s '%s' are "
				    "one inside the other", p->sec[i].name, d,
				    p->sec[j].name, dest_of(a));
			break;
		}
	}
}

/*
 * Check every section header once the keys are in: unknown, repeated or
 * badly named sections, and components without a path.
 */
static void
check_sections(struct parse *p)
{
	size_t i, j;

	for (i = 0; i < p->nsec; i++) {
		const char *name = p->sec[i].name;
		struct ps_component *comp;

		p->line = p->sec[i].line;
		for (j = 0; j < i; j++)
			if (strcmp(p->sec[j].name, name) == 0)
				fail(p, "duplicate section [%s]",
				    name);
		if (strcmp(name, "console") == 0)
			continue;
		if (strncmp(name, "component ", 10) != 0) {
			fail(p, "unknown section [%s]", name);
			continue;
		}
		if (!ps_conf_name_ok(name + 10)) {
			fail(p, "[%s]: component name must match "
			    "[a-z0-9_-]+", name);
			continue;
		}
		if ((comp = component(p->c, name + 10)) == NULL)
			comp = add_component(p->c, name + 10);
		if (comp->path == NULL)
			fail(p, "[%s]: missing key '%s'", name, "path");
	}
	check_dests(p);
}

void
ps_conf_defaults(struct ps_conf *c)
{
	char host[HOST_NAME_MAX + 1];

	if (c->console_name == NULL) {
		if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		c->console_name = xstrdup(host);
	}
	if (c->database == NULL)
		c->database = xstrdup(PS_DB_DEFAULT);
	if (c->jobs == 0)
		c->jobs = PS_JOBS_DEFAULT;
}

/*
 * A relative path in the configuration is taken from the directory that
 * holds the file, not from wherever the command runs (from cron: /).
 * *PATH is replaced by the absolute one.
 */
static void
beside(const char *file, char **path)
{
	char *dir, *abs;

	if (**path == '/')
		return;
	dir = ps_parent_of(file);
	if ((abs = realpath(dir, NULL)) == NULL)
		abs = xstrdup(dir);
	free(dir);
	dir = xasprintf("%s/%s", strcmp(abs, "/") == 0 ? "" : abs, *path);
	free(abs);
	free(*path);
	*path = dir;
}

int
ps_conf_load(const char *file, struct ps_conf *c)
{
	struct parse p;
	size_t i;
	int rc;

	memset(c, 0, sizeof(*c));
	memset(&p, 0, sizeof(p));
	p.file = file;
	p.c = c;
	if ((p.fp = fopen(file, "r")) == NULL) {
		ps_err("cannot read configuration %s: %s", file,
		    strerror(errno));
		return PS_EUSAGE;
	}

	rc = ini_parse_stream(reader, &p, handler, &p);
	if (p.too_long) {
		p.line = (unsigned)p.too_long;
		fail(&p, "line longer than %d bytes", INI_MAX_LINE - 2);
	}
	if (rc > 0) {
		p.line = (unsigned)rc;
		fail(&p, "syntax error: expected 'key = value' or "
		    "'[section]'");
	} else if (rc < 0) {
		fail(&p, "cannot parse: out of memory");
	}
	check_sections(&p);
	fclose(p.fp);
	for (i = 0; i < p.nsec; i++)
		free(p.sec[i].name);
	free(p.sec);
	if (p.err != NULL) {
		ps_err("%s", p.err);
		free(p.err);
		ps_conf_free(c);
		return PS_EUSAGE;
	}
	for (i = 0; i < c->ncomp; i++) {
		if (c->comp[i].dest == NULL)
			c->comp[i].dest = xstrdup(c->comp[i].name);
		beside(file, &c->comp[i].path);
	}
	if (c->database != NULL && !ps_db_is_pg(c->database))
		beside(file, &c->database);
	c->file = xstrdup(file);
	ps_conf_defaults(c);
	return PS_OK;
}

const struct ps_component *
ps_conf_component(const struct ps_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->ncomp; i++)
		if (strcmp(c->comp[i].name, name) == 0)
			return &c->comp[i];
	return NULL;
}

void
ps_conf_free(struct ps_conf *c)
{
	size_t i;

	for (i = 0; i < c->ncomp; i++) {
		free(c->comp[i].name);
		free(c->comp[i].path);
		free(c->comp[i].dest);
		free(c->comp[i].source);
	}
	free(c->comp);
	free(c->file);
	free(c->console_name);
	free(c->database);
	memset(c, 0, sizeof(*c));
}

size_t
ps_conf_warn_paths(const struct ps_conf *c)
{
	struct stat st;
	size_t i, n = 0;
	char *esc;

	for (i = 0; i < c->ncomp; i++) {
		const struct ps_component *comp = &c->comp[i];

		esc = ps_escape(comp->path, strlen(comp->path));
		if (stat(comp->path, &st) != 0) {
			ps_warn("[component %s]: path %s: %s (a push of it "
			    "fails until it exists)", comp->name, esc,
			    strerror(errno));
			n++;
		} else if (!S_ISDIR(st.st_mode)) {
			ps_warn("[component %s]: path %s is not a directory",
			    comp->name, esc);
			n++;
		}
		free(esc);
	}
	return n;
}
