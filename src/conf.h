/*
 * conf.h — the console configuration file (SPEC section 4), INI parsed
 * with inih.
 */
#ifndef PS_CONF_H
#define PS_CONF_H

#include <stddef.h>

#define PS_CONF_DEFAULT "/etc/patchsync/patchsync.conf"
#define PS_DB_DEFAULT "/var/lib/patchsync/state.db"
#define PS_JOBS_DEFAULT 4
#define PS_JOBS_MAX 64

struct ps_component {
	char *name;	/* [a-z0-9_-]+ */
	char *path;	/* console directory (required) */
	char *dest;	/* subdirectory on every server (default: name) */
	char *source;	/* server name or URL for refresh, or NULL */
};

struct ps_conf {
	char *file;		/* file read, or NULL when there was none */
	char *console_name;	/* default: host name */
	char *database;		/* a SQLite file or a postgresql:// URI */
	long keep;		/* seconds of task history kept; 0: all */
	int jobs;
	struct ps_component *comp;
	size_t ncomp;
};

/*
 * Read FILE into C. Returns PS_OK, or PS_EUSAGE after printing one error
 * line naming the file, the line and the key (or section) at fault.
 */
int ps_conf_load(const char *file, struct ps_conf *c);

/*
 * Defaults for a console without a configuration file.
 */
void ps_conf_defaults(struct ps_conf *c);

/*
 * A duration: a positive number followed by s, m, h, d or w ("90d",
 * "12h"); a bare number is seconds. Returns 0 with *SECS set, or -1.
 */
int ps_parse_duration(const char *s, long *secs);

/* Is NAME a valid component name ([a-z0-9_-]+)? */
int ps_conf_name_ok(const char *name);

const struct ps_component *ps_conf_component(const struct ps_conf *c,
    const char *name);

void ps_conf_free(struct ps_conf *c);

/*
 * `config check`'s look at this machine: a warning for each component
 * whose console directory is missing or not a directory (a push of it
 * fails until it is one). Returns how many were given.
 */
size_t ps_conf_warn_paths(const struct ps_conf *c);

#endif
