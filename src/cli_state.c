/*
 * cli_state.c — the commands over the state database (SPEC section 6):
 * `server`, `schedule`, `task`, `history`, and `download`.
 *
 * The rules live in state.c (owner console, download sources, atomic
 * claims) and task.c (workers, locks); this file parses options, checks
 * what only the console can check (credential files, configured
 * components) and prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <popt.h>

#include "cli.h"
#include "cron.h"
#include "output.h"
#include "ps.h"
#include "state.h"
#include "task.h"
#include "transport.h"
#include "url.h"
#include "session.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* What every subcommand starts with: options, configuration, database. */
struct sub {
	const char *name;	/* "server add" */
	poptContext ctx;
	const char **args;
	int nargs;
	struct ps_conf conf;
	struct ps_state *st;
};

/* What a subcommand does with the database. */
enum { DB_NONE, DB_CREATE, DB_READ };

/*
 * Open the database: DB_CREATE for commands that store something,
 * DB_READ for the others, which create nothing (SPEC 10.8): without a
 * database S->st stays NULL and they act on an empty one.
 */
static int
open_state(struct sub *s, int how)
{
	if (how == DB_CREATE)
		return ps_state_open(s->conf.database, &s->st);
	if (how == DB_READ)
		return ps_state_open_existing(s->conf.database, &s->st);
	return PS_OK;
}

/* For a lookup that needs a database: one line when there is none. */
static int
need_db(const struct sub *s)
{
	if (s->st != NULL)
		return PS_OK;
	ps_err("%s: no state database at %s", s->name, s->conf.database);
	return PS_EUSAGE;
}

static int
sub_start(struct sub *s, const char *name, int argc, const char **argv,
    struct poptOption *opts, const char *usage, int open_db)
{
	char *prog = xasprintf("patchsync %s", name);
	int rc;

	memset(s, 0, sizeof(*s));
	s->name = name;
	s->ctx = poptGetContext(prog, argc, argv, opts, 0);
	free(prog);
	poptSetOtherOptionHelp(s->ctx, usage);
	if ((rc = ps_cli_parse(s->ctx, name)) != PS_OK)
		return rc;
	s->args = ps_cli_args(s->ctx, &s->nargs);
	if ((rc = ps_cli_conf(&s->conf, 0)) != PS_OK)
		return rc;
	return open_state(s, open_db);
}

static int
sub_end(struct sub *s, int rc)
{
	ps_state_close(s->st);
	ps_conf_free(&s->conf);
	if (s->ctx != NULL)
		poptFreeContext(s->ctx);
	return rc;
}

static int
nargs_is(const struct sub *s, int min, int max, const char *usage)
{
	if (s->nargs >= min && (max < 0 || s->nargs <= max))
		return PS_OK;
	ps_err("%s: %s (usage: patchsync %s)", s->name,
	    s->nargs < min ? "missing arguments" : "too many arguments",
	    usage);
	return PS_EUSAGE;
}

/* A task or schedule id: a positive decimal number. */
static int
parse_id(const char *what, const char *s, int64_t *id)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0) {
		ps_err("invalid %s id '%s': expected a positive number", what,
		    s);
		return PS_EUSAGE;
	}
	*id = v;
	return PS_OK;
}

static void
fmt_time(time_t t, char *out, size_t len)
{
	struct tm tm;

	if (t == 0 || localtime_r(&t, &tm) == NULL) {
		snprintf(out, len, "-");
		return;
	}
	strftime(out, len, "%Y-%m-%d %H:%M", &tm);
}

static void
fmt_rtime(double t, char *out, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;

	if (t <= 0 || localtime_r(&s, &tm) == NULL) {
		snprintf(out, len, "-");
		return;
	}
	strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static json_t *
json_str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* Print DOC (one JSON document) and free it. */
static int
print_doc(json_t *doc)
{
	int rc;

	if (doc == NULL) {
		ps_err("cannot build the JSON document");
		return PS_EUSAGE;
	}
	rc = ps_json_print(doc);
	json_decref(doc);
	return rc;
}

/* Stored JSON text as a value (null when missing or unreadable). */
static json_t *
json_text(const char *s)
{
	json_t *v = s != NULL ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;

	return v != NULL ? v : json_null();
}

static json_t *
json_time_or_null(double t)
{
	return t > 0 ? json_real(t) : json_null();
}

/* ---- servers ---- */

/* An absolute path of a credential file that passed the mode check. */
static int
credential(const char *file, const char *what, char **abs)
{
	*abs = NULL;
	if (file == NULL)
		return PS_OK;
	if (ps_task_credential_ok(file, what) != PS_OK)
		return PS_EUSAGE;
	if ((*abs = realpath(file, NULL)) == NULL) {
		ps_err("%s %s: %s", what, file, strerror(errno));
		return PS_EUSAGE;
	}
	return PS_OK;
}

/* --bwlimit and --timeout of server add and edit. */
static int
server_limits(const char *name, const char *bwlimit, const char *timeout,
    uint64_t *bw, int *to)
{
	char *end;
	long v;

	if (bwlimit != NULL && ps_parse_rate(bwlimit, bw) != 0) {
		ps_err("%s: --bwlimit needs a rate such as 512K or 10M, not "
		    "'%s'", name, bwlimit);
		return PS_EUSAGE;
	}
	if (timeout != NULL) {
		errno = 0;
		v = strtol(timeout, &end, 10);
		if (errno != 0 || end == timeout || *end != '\0' || v < 0 ||
		    v > INT_MAX) {
			ps_err("%s: --timeout needs a number of seconds (0: "
			    "never), not '%s'", name, timeout);
			return PS_EUSAGE;
		}
		*to = (int)v;
	}
	return PS_OK;
}

/* An option that must not be given an empty value ("" clears nothing). */
static int
not_empty(const char *cmd, const char *opt, const char *v)
{
	if (v == NULL || v[0] != '\0')
		return PS_OK;
	ps_err("%s: --%s needs a value (--no-%s clears it)", cmd, opt, opt);
	return PS_EUSAGE;
}

static int
server_add(int argc, const char **argv)
{
	static const char *identity, *secret, *rsh, *rpath, *bwlimit,
	    *timeout, *via;
	static int dlsource;
	struct poptOption opts[] = {
		{ "identity", 'i', POPT_ARG_STRING, &identity, 0,
		  "ssh private key (mode 0600)", "FILE" },
		{ "via", '\0', POPT_ARG_STRING, &via, 0,
		  "reached through this relay server, which passes every "
		  "update on", "RELAY" },
		{ "secret-file", '\0', POPT_ARG_STRING, &secret, 0,
		  "file holding the server's secret (mode 0600)", "FILE" },
		{ "rsh", 'e', POPT_ARG_STRING, &rsh, 0,
		  "remote shell instead of ssh", "CMD" },
		{ "remote-path", '\0', POPT_ARG_STRING, &rpath, 0,
		  "patchsync on the server (default: patchsync)", "PROGRAM" },
		{ "bwlimit", '\0', POPT_ARG_STRING, &bwlimit, 0,
		  "bytes per second to this server (512K, 10M)", "RATE" },
		{ "timeout", '\0', POPT_ARG_STRING, &timeout, 0,
		  "end a session silent this long (0: never)", "SECONDS" },
		{ "download-source", '\0', POPT_ARG_NONE, &dlsource, 0,
		  "the console downloads from it: never push to it", NULL },
		PS_OPTS_END
	};
	static const char usage[] = "server add NAME URL [--via RELAY] "
	    "[--identity FILE] [--secret-file FILE] [--rsh CMD] "
	    "[--remote-path PROG] [--bwlimit RATE] [--timeout S] "
	    "[--download-source]";
	struct ps_server sv;
	struct ps_url u;
	struct sub s;
	char err[256], *id = NULL, *sec = NULL;
	int rc;

	memset(&sv, 0, sizeof(sv));
	sv.timeout = -1;
	if ((rc = sub_start(&s, "server add", argc, argv, opts, usage + 11,
	    DB_NONE)) != PS_OK || (rc = nargs_is(&s, 2, 2, usage)) != PS_OK)
		return sub_end(&s, rc);
	if (ps_url_parse(s.args[1], &u, err, sizeof(err)) != 0) {
		ps_err("server add: %s: %s", s.args[1], err);
		return sub_end(&s, PS_EUSAGE);
	}
	ps_url_free(&u);
	if ((rc = not_empty(s.name, "rsh", rsh)) != PS_OK ||
	    (rc = not_empty(s.name, "remote-path", rpath)) != PS_OK ||
	    (rc = not_empty(s.name, "via", via)) != PS_OK ||
	    (rc = server_limits(s.name, bwlimit, timeout, &sv.bwlimit,
	    &sv.timeout)) != PS_OK ||
	    (rc = credential(identity, "identity file", &id)) != PS_OK ||
	    (rc = credential(secret, "secret file", &sec)) != PS_OK ||
	    (rc = open_state(&s, DB_CREATE)) != PS_OK)
		goto out;
	sv.name = (char *)s.args[0];
	sv.url = (char *)s.args[1];
	sv.identity_file = id;
	sv.secret_file = sec;
	sv.rsh = (char *)rsh;
	sv.remote_path = (char *)rpath;
	sv.download_source = dlsource;
	sv.via = (char *)via;
	if ((rc = ps_state_server_add(s.st, &sv)) == PS_OK)
		ps_info(1, "server %s added", sv.name);
out:
	free(id);
	free(sec);
	return sub_end(&s, rc);
}

/* A string option of server edit: the value, "" for --no-X, or NULL. */
static int
edit_str(const char *cmd, const char *opt, const char *v, int clear,
    const char **out)
{
	if (v != NULL && clear) {
		ps_err("%s: --%s and --no-%s exclude each other", cmd, opt,
		    opt);
		return PS_EUSAGE;
	}
	*out = clear ? "" : v;
	return not_empty(cmd, opt, v);
}

static int
server_edit(int argc, const char **argv)
{
	static const char *url, *identity, *secret, *rsh, *rpath, *bwlimit,
	    *timeout, *via;
	static int dlsource, no_id, no_sec, no_rsh, no_rpath, no_bw, no_to,
	    no_dl, no_via;
	struct poptOption opts[] = {
		{ "url", '\0', POPT_ARG_STRING, &url, 0,
		  "a new URL", "URL" },
		{ "via", '\0', POPT_ARG_STRING, &via, 0,
		  "reached through this relay server", "RELAY" },
		{ "no-via", '\0', POPT_ARG_NONE, &no_via, 0,
		  "reached by the console itself", NULL },
		{ "identity", 'i', POPT_ARG_STRING, &identity, 0,
		  "ssh private key (mode 0600)", "FILE" },
		{ "no-identity", '\0', POPT_ARG_NONE, &no_id, 0,
		  "no identity file", NULL },
		{ "secret-file", '\0', POPT_ARG_STRING, &secret, 0,
		  "file holding the server's secret (mode 0600)", "FILE" },
		{ "no-secret-file", '\0', POPT_ARG_NONE, &no_sec, 0,
		  "no secret file", NULL },
		{ "rsh", 'e', POPT_ARG_STRING, &rsh, 0,
		  "remote shell instead of ssh", "CMD" },
		{ "no-rsh", '\0', POPT_ARG_NONE, &no_rsh, 0,
		  "the default remote shell (ssh)", NULL },
		{ "remote-path", '\0', POPT_ARG_STRING, &rpath, 0,
		  "patchsync on the server", "PROGRAM" },
		{ "no-remote-path", '\0', POPT_ARG_NONE, &no_rpath, 0,
		  "the default remote program (patchsync)", NULL },
		{ "bwlimit", '\0', POPT_ARG_STRING, &bwlimit, 0,
		  "bytes per second to this server (512K, 10M)", "RATE" },
		{ "no-bwlimit", '\0', POPT_ARG_NONE, &no_bw, 0,
		  "no bandwidth limit", NULL },
		{ "timeout", '\0', POPT_ARG_STRING, &timeout, 0,
		  "end a session silent this long (0: never)", "SECONDS" },
		{ "no-timeout", '\0', POPT_ARG_NONE, &no_to, 0,
		  "the push's own timeout", NULL },
		{ "download-source", '\0', POPT_ARG_NONE, &dlsource, 0,
		  "the console downloads from it: never push to it", NULL },
		{ "no-download-source", '\0', POPT_ARG_NONE, &no_dl, 0,
		  "a distribution server again", NULL },
		PS_OPTS_END
	};
	static const char usage[] = "server edit NAME [--url URL] "
	    "[--[no-]via RELAY] [--[no-]identity FILE] "
	    "[--[no-]secret-file FILE] [--[no-]rsh CMD] "
	    "[--[no-]remote-path PROG] [--[no-]bwlimit RATE] "
	    "[--[no-]timeout S] [--[no-]download-source]";
	struct ps_server_edit e;
	struct ps_url u;
	struct sub s;
	char err[256], *id = NULL, *sec = NULL;
	uint64_t bw = 0;
	int rc, to = -1;

	memset(&e, 0, sizeof(e));
	if ((rc = sub_start(&s, "server edit", argc, argv, opts, usage + 12,
	    DB_NONE)) != PS_OK || (rc = nargs_is(&s, 1, 1, usage)) != PS_OK)
		return sub_end(&s, rc);
	if (url != NULL && ps_url_parse(url, &u, err, sizeof(err)) != 0) {
		ps_err("server edit: %s: %s", url, err);
		return sub_end(&s, PS_EUSAGE);
	}
	if (url != NULL)
		ps_url_free(&u);
	e.url = url;
	e.bwlimit = no_bw ? 0 : -1;
	e.timeout = no_to ? -1 : PS_KEEP;
	e.download_source = dlsource ? 1 : no_dl ? 0 : -1;
	if ((rc = edit_str(s.name, "rsh", rsh, no_rsh, &e.rsh)) != PS_OK ||
	    (rc = edit_str(s.name, "via", via, no_via, &e.via)) != PS_OK ||
	    (rc = edit_str(s.name, "remote-path", rpath, no_rpath,
	    &e.remote_path)) != PS_OK ||
	    (rc = edit_str(s.name, "identity", identity, no_id,
	    &e.identity_file)) != PS_OK ||
	    (rc = edit_str(s.name, "secret-file", secret, no_sec,
	    &e.secret_file)) != PS_OK)
		goto out;
	if ((bwlimit != NULL && no_bw) || (timeout != NULL && no_to) ||
	    (dlsource && no_dl)) {
		ps_err("server edit: an option and its --no- form exclude each "
		    "other");
		rc = PS_EUSAGE;
		goto out;
	}
	if ((rc = server_limits(s.name, bwlimit, timeout, &bw, &to)) != PS_OK)
		goto out;
	if (bwlimit != NULL)
		e.bwlimit = (int64_t)bw;
	if (timeout != NULL)
		e.timeout = to;
	if (url == NULL && identity == NULL && secret == NULL && rsh == NULL &&
	    rpath == NULL && bwlimit == NULL && timeout == NULL && !dlsource &&
	    via == NULL && !no_id && !no_sec && !no_rsh && !no_rpath &&
	    !no_bw && !no_to && !no_dl && !no_via) {
		ps_err("server edit: nothing to change (see patchsync server "
		    "--help)");
		rc = PS_EUSAGE;
		goto out;
	}
	if ((rc = credential(identity, "identity file", &id)) != PS_OK ||
	    (rc = credential(secret, "secret file", &sec)) != PS_OK)
		goto out;
	if (id != NULL)
		e.identity_file = id;
	if (sec != NULL)
		e.secret_file = sec;
	if ((rc = open_state(&s, DB_READ)) != PS_OK ||
	    (rc = need_db(&s)) != PS_OK)
		goto out;
	if ((rc = ps_state_server_edit(s.st, s.args[0], &e)) == PS_OK)
		ps_info(1, "server %s changed", s.args[0]);
out:
	free(id);
	free(sec);
	return sub_end(&s, rc);
}

static json_t *
server_json(const struct ps_server *sv)
{
	return json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:b,s:I}",
	    "name", sv->name, "url", sv->url,
	    "via", json_str_or_null(sv->via),
	    "identity_file", json_str_or_null(sv->identity_file),
	    "secret_file", json_str_or_null(sv->secret_file),
	    "rsh", json_str_or_null(sv->rsh),
	    "remote_path", json_str_or_null(sv->remote_path),
	    "bwlimit", sv->bwlimit > 0 ? json_integer((json_int_t)sv->bwlimit)
	    : json_null(),
	    "timeout", sv->timeout >= 0 ? json_integer(sv->timeout) :
	    json_null(),
	    "download_source", sv->download_source,
	    "created", (json_int_t)sv->created);
}

static int
server_list(int argc, const char **argv)
{
	static int json;
	struct poptOption opts[] = {
		{ "json", '\0', POPT_ARG_NONE, &json, 0,
		  "one JSON document", NULL },
		PS_OPTS_END
	};
	struct ps_server *v = NULL;
	struct sub s;
	size_t n = 0, i;
	int rc;

	if ((rc = sub_start(&s, "server list", argc, argv, opts, "[--json]",
	    DB_READ)) != PS_OK || (rc = nargs_is(&s, 0, 0,
	    "server list [--json]")) != PS_OK || (s.st != NULL &&
	    (rc = ps_state_server_list(s.st, &v, &n)) != PS_OK))
		return sub_end(&s, rc);
	if (json) {
		json_t *arr = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(arr, server_json(&v[i]));
		rc = print_doc(json_pack("{s:o}", "servers", arr));
	} else {
		if (n > 0)
			printf("%-20s %-40s %s\n", "NAME", "URL", "NOTES");
		for (i = 0; i < n; i++)
			printf("%-20s %-40s %s%s%s%s%s%s%s%s%s\n",
			    v[i].name, v[i].url, v[i].via ? "via " : "",
			    v[i].via ? v[i].via : "", v[i].via ? " " : "",
			    v[i].download_source ? "download-source " : "",
			    v[i].identity_file ? "identity " : "",
			    v[i].rsh ? "rsh " : "",
			    v[i].remote_path ? "remote-path " : "",
			    v[i].bwlimit ? "bwlimit " : "",
			    v[i].timeout >= 0 ? "timeout" : "");
	}
	ps_server_list_free(v, n);
	return sub_end(&s, rc);
}

static int
server_show(int argc, const char **argv)
{
	static int json;
	struct poptOption opts[] = {
		{ "json", '\0', POPT_ARG_NONE, &json, 0,
		  "one JSON document", NULL },
		PS_OPTS_END
	};
	struct ps_server sv;
	struct sub s;
	char when[32], bw[32], to[32];
	int rc;

	if ((rc = sub_start(&s, "server show", argc, argv, opts, "NAME",
	    DB_READ)) != PS_OK || (rc = nargs_is(&s, 1, 1, "server show NAME"))
	    != PS_OK || (rc = need_db(&s)) != PS_OK ||
	    (rc = ps_state_server_get(s.st, s.args[0], &sv)) != PS_OK)
		return sub_end(&s, rc);
	if (json) {
		rc = print_doc(server_json(&sv));
	} else {
		fmt_time(sv.created, when, sizeof(when));
		snprintf(bw, sizeof(bw), sv.bwlimit ? "%llu bytes/s" : "-",
		    (unsigned long long)sv.bwlimit);
		snprintf(to, sizeof(to), sv.timeout >= 0 ? "%d s" : "-",
		    sv.timeout);
		printf("name: %s\nurl: %s\nvia: %s\nidentity-file: %s\n"
		    "secret-file: %s\nrsh: %s\nremote-path: %s\n"
		    "bwlimit: %s\ntimeout: %s\ndownload-source: %s\n"
		    "created: %s\n", sv.name, sv.url, sv.via ? sv.via : "-",
		    sv.identity_file ? sv.identity_file : "-",
		    sv.secret_file ? sv.secret_file : "-",
		    sv.rsh ? sv.rsh : "-",
		    sv.remote_path ? sv.remote_path : "-", bw, to,
		    sv.download_source ? "yes" : "no", when);
	}
	ps_server_free(&sv);
	return sub_end(&s, rc);
}

static int
server_remove(int argc, const char **argv)
{
	struct poptOption opts[] = {
		PS_OPTS_END
	};
	struct sub s;
	int rc;

	if ((rc = sub_start(&s, "server remove", argc, argv, opts, "NAME",
	    DB_READ)) == PS_OK && (rc = nargs_is(&s, 1, 1,
	    "server remove NAME")) == PS_OK && (rc = need_db(&s)) == PS_OK)
		rc = ps_state_server_remove(s.st, s.args[0]);
	return sub_end(&s, rc);
}

static char *
account_name(void)
{
	struct passwd *pw = getpwuid(geteuid());

	if (pw != NULL)
		return xstrdup(pw->pw_name);
	return xasprintf("uid %lu", (unsigned long)geteuid());
}

/*
 * The probe of a local ROOT, as this process's account: can it list
 * ROOT, and create and remove a file in it? One line on failure.
 */
static int
probe_local(const char *name, const char *root, int ro)
{
	char *acct = account_name(), *probe;
	struct stat sb;
	DIR *d;
	int fd, rc = PS_EPEER;

	probe = xasprintf("%s/.patchsync-probe.%ld", root, (long)getpid());
	if (stat(root, &sb) == -1 || !S_ISDIR(sb.st_mode)) {
		ps_err("server %s: %s is not a directory%s%s", name, root,
		    errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
		goto out;
	}
	if ((d = opendir(root)) == NULL) {
		ps_err("server %s: account %s lacks read access to %s: %s",
		    name, acct, root, strerror(errno));
		goto out;
	}
	closedir(d);
	if (ro) {
		printf("server %s: account %s can read %s (a download source: "
		    "write access not needed)\n", name, acct, root);
		rc = PS_OK;
		goto out;
	}
	fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		ps_err("server %s: account %s lacks write access to %s "
		    "(creating a probe file: %s)", name, acct, root,
		    strerror(errno));
		goto out;
	}
	if (write(fd, "patchsync probe\n", 16) != 16) {
		ps_err("server %s: account %s cannot write to %s: %s", name,
		    acct, root, strerror(errno));
		close(fd);
		(void)unlink(probe);
		goto out;
	}
	close(fd);
	if (unlink(probe) == -1) {
		ps_err("server %s: account %s cannot remove files in %s "
		    "(%s): %s", name, acct, root, probe, strerror(errno));
		goto out;
	}
	printf("server %s: account %s can read and write %s\n", name, acct,
	    root);
	rc = PS_OK;
out:
	free(acct);
	free(probe);
	return rc;
}

/*
 * The same probe on a remote host, through the server's remote shell:
 * a small POSIX sh script (no single quotes in it) run where
 * `patchsync serve` would run, with ROOT as $3 and "ro" or "rw" as $0
 * (a download source needs read access only).
 */
static const char probe_script[] =
	"r=$3; u=$(id -un 2>/dev/null || echo unknown); "
	"if [ ! -d \"$r\" ]; then echo \"PSCHECK missing $u\"; exit 0; fi; "
	"if ! ls -a \"$r\" >/dev/null 2>&1; then "
	"echo \"PSCHECK noread $u\"; exit 0; fi; "
	"if [ \"$0\" = ro ]; then echo \"PSCHECK okread $u\"; exit 0; fi; "
	"p=\"$r/.patchsync-probe.$$\"; "
	"if ! (set -C; echo probe >\"$p\") 2>/dev/null; then "
	"echo \"PSCHECK nowrite $u\"; exit 0; fi; "
	"if ! rm -f \"$p\" 2>/dev/null || [ -e \"$p\" ]; then "
	"echo \"PSCHECK noremove $u\"; exit 0; fi; "
	"echo \"PSCHECK ok $u\"";

/* Run ARGV, its stdout into OUT (at most LEN - 1 bytes). Exit status. */
static int
run_capture(char **argv, char *out, size_t len)
{
	size_t got = 0;
	ssize_t n;
	int p[2], status;
	pid_t pid;

	out[0] = '\0';
	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	fflush(stdout);
	if ((pid = fork()) == -1) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null != -1)
			dup2(null, 0);
		dup2(p[1], 1);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		dprintf(2, "patchsync: cannot run %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		char scratch[512];

		if (got + 1 < len)
			n = read(p[0], out + got, len - 1 - got);
		else
			n = read(p[0], scratch, sizeof(scratch));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (got + 1 < len)
			got += (size_t)n;
	}
	out[got] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 +
	    WTERMSIG(status);
}

static int
probe_remote(const char *name, const struct ps_url *u, const char *rsh,
    int ro)
{
	struct ps_conn_opts co;
	char **argv, err[256], out[1024], *q, *rp, *line, word[16],
	    acct[128];
	int st;

	memset(&co, 0, sizeof(co));
	co.rsh = rsh;
	/* The remote command becomes: sh -c 'SCRIPT' sh serve --stdio ROOT */
	q = ps_shell_quote(probe_script);
	rp = xasprintf("sh -c %s %s", q, ro ? "ro" : "rw");
	free(q);
	co.remote_path = rp;
	argv = ps_conn_argv(u, &co, err, sizeof(err));
	free(rp);
	if (argv == NULL) {
		ps_err("server %s: %s", name, err);
		return PS_EUSAGE;
	}
	st = run_capture(argv, out, sizeof(out));
	ps_argv_free(argv);
	line = strstr(out, "PSCHECK ");
	if (line == NULL || sscanf(line, "PSCHECK %15s %127s", word,
	    acct) != 2) {
		ps_err("server %s: cannot connect to %s (remote shell exited "
		    "with status %d)", name, u->host, st);
		return PS_EPEER;
	}
	if (strcmp(word, "ok") == 0) {
		printf("server %s: account %s on %s can read and write %s\n",
		    name, acct, u->host, u->path);
		return PS_OK;
	}
	if (strcmp(word, "okread") == 0) {
		printf("server %s: account %s on %s can read %s (a download "
		    "source: write access not needed)\n", name, acct, u->host,
		    u->path);
		return PS_OK;
	}
	if (strcmp(word, "missing") == 0)
		ps_err("server %s: %s on %s is not a directory (account %s)",
		    name, u->path, u->host, acct);
	else if (strcmp(word, "noread") == 0)
		ps_err("server %s: account %s on %s lacks read access to %s",
		    name, acct, u->host, u->path);
	else if (strcmp(word, "nowrite") == 0)
		ps_err("server %s: account %s on %s lacks write access to %s "
		    "(cannot create a file)", name, acct, u->host, u->path);
	else
		ps_err("server %s: account %s on %s cannot remove files in %s",
		    name, acct, u->host, u->path);
	return PS_EPEER;
}

/* Does `patchsync serve` answer the greeting? */
static int
probe_serve(const char *name, const char *url, const char *rsh,
    const char *remote_path)
{
	struct ps_sess_opts so;
	struct ps_sess ss;
	int rc;

	memset(&so, 0, sizeof(so));
	so.label = name;
	so.url = url;
	so.rsh = rsh;
	so.remote_path = remote_path;
	so.timeout = PS_TIMEOUT_DEFAULT;
	rc = ps_sess_connect(&ss, &so);
	rc = ps_sess_close(&ss, NULL);
	if (rc == PS_OK)
		printf("server %s: patchsync serve answers (protocol %d)\n",
		    name, PS_PROTO_VERSION);
	return rc == PS_OK || rc == PS_EUSAGE ? rc : PS_EPEER;
}

static int
server_check(int argc, const char **argv)
{
	static const char *remote_path;
	struct poptOption opts[] = {
		{ "remote-path", '\0', POPT_ARG_STRING, &remote_path, 0,
		  "patchsync on the server (default: patchsync)", "PROGRAM" },
		PS_OPTS_END
	};
	struct ps_server_conn sc;
	struct ps_server sv;
	struct ps_url u;
	struct sub s;
	char *rsh, err[256];
	int rc, ro;

	memset(&sc, 0, sizeof(sc));
	if ((rc = sub_start(&s, "server check", argc, argv, opts, "NAME",
	    DB_READ)) != PS_OK || (rc = nargs_is(&s, 1, 1,
	    "server check NAME")) != PS_OK || (rc = need_db(&s)) != PS_OK ||
	    (rc = ps_state_server_get(s.st, s.args[0], &sv)) != PS_OK)
		return sub_end(&s, rc);
	ro = sv.download_source;
	ps_server_free(&sv);
	if ((rc = ps_task_resolve_server(&s.conf, s.args[0], 0, &sc)) !=
	    PS_OK)
		return sub_end(&s, rc);
	rsh = sc.rsh;
	if (remote_path == NULL)
		remote_path = sc.remote_path;
	if (ps_url_parse(sc.url, &u, err, sizeof(err)) != 0) {
		ps_err("server %s: %s: %s", s.args[0], sc.url, err);
		rc = PS_EUSAGE;
		goto out;
	}
	if (u.kind == PS_URL_LOCAL)
		rc = probe_local(s.args[0], u.path, ro);
	else if (u.kind == PS_URL_SSH)
		rc = probe_remote(s.args[0], &u, rsh, ro);
	else {
		ps_err("server %s: psync:// servers cannot be checked yet",
		    s.args[0]);
		rc = PS_EUSAGE;
	}
	if (rc == PS_OK)
		rc = probe_serve(s.args[0], sc.url, rsh, remote_path);
	ps_url_free(&u);
out:
	ps_server_conn_free(&sc);
	return sub_end(&s, rc);
}


int
cmd_server(int argc, const char **argv)
{
	static const struct ps_subcmd subs[] = {
		{ "add", server_add },
		{ "edit", server_edit },
		{ "list", server_list },
		{ "show", server_show },
		{ "remove", server_remove },
		{ "check", server_check },
	};

	return ps_cli_dispatch("server", subs, NELEM(subs),
	    "Usage: patchsync server add NAME URL [--via RELAY] "
	    "[--identity FILE]\n"
	    "                            [--secret-file FILE] [--rsh CMD] "
	    "[--remote-path PROG]\n"
	    "                            [--bwlimit RATE] [--timeout S] "
	    "[--download-source]\n"
	    "       patchsync server edit NAME [--url URL] [same options]\n"
	    "                             [--no-OPTION to clear one]\n"
	    "       patchsync server list [--json]\n"
	    "       patchsync server show NAME [--json]\n"
	    "       patchsync server remove NAME\n"
	    "       patchsync server check NAME\n\n"
	    "Distribution servers, kept in the state database. Credential "
	    "files must be\nreadable only by their owner (mode 0600). "
	    "See patchsync(1).\n", argc, argv);
}

/* ---- schedules ---- */

/*
 * -C NAME... as a stored component list: names checked against the
 * configuration when there is one; "all" (or none) means every one.
 */
static int
component_list(const struct ps_conf *conf, const char **names, int n,
    char **out)
{
	struct buf b = { 0 };
	int i;

	*out = NULL;
	for (i = 0; i < n; i++) {
		if (strcmp(names[i], "all") == 0) {
			buf_free(&b);
			*out = xstrdup("");
			return PS_OK;
		}
		if (!ps_conf_name_ok(names[i]) || (conf->file != NULL &&
		    ps_conf_component(conf, names[i]) == NULL)) {
			ps_err("unknown component '%s'%s%s", names[i],
			    conf->file != NULL ? " (not in " : "",
			    conf->file != NULL ? conf->file : "");
			buf_free(&b);
			return PS_EUSAGE;
		}
		if (b.len > 0)
			buf_addc(&b, ',');
		buf_addstr(&b, names[i]);
	}
	buf_addc(&b, '\0');
	*out = (char *)b.p;
	return PS_OK;
}

/* Like sub_start, for commands with -C. */
static int
sub_start_c(struct sub *s, const char *name, int argc, const char **argv,
    struct poptOption *opts, const char *usage, const char **comp,
    struct ps_names *cl, int open_db)
{
	char *prog = xasprintf("patchsync %s", name);
	int rc;

	memset(s, 0, sizeof(*s));
	s->name = name;
	s->ctx = poptGetContext(prog, argc, argv, opts, 0);
	free(prog);
	poptSetOtherOptionHelp(s->ctx, usage);
	if ((rc = ps_cli_parse_names(s->ctx, name, comp, cl)) != PS_OK)
		return rc;
	s->args = ps_cli_args(s->ctx, &s->nargs);
	if ((rc = ps_cli_conf(&s->conf, 0)) != PS_OK)
		return rc;
	return open_state(s, open_db);
}

static int
schedule_add(int argc, const char **argv)
{
	static const char *server, *cron, *comp;
	struct ps_names cl = { NULL, 0 };
	struct poptOption opts[] = {
		{ "server", 's', POPT_ARG_STRING, &server, 0,
		  "the server to push to", "NAME" },
		{ "component", 'C', POPT_ARG_STRING, &comp, 'C',
		  "only this component (repeatable; default: all)", "NAME" },
		{ "cron", '\0', POPT_ARG_STRING, &cron, 0,
		  "when: 'M H DOM MON DOW', @hourly, @daily, @weekly", "EXPR" },
		PS_OPTS_END
	};
	static const char usage[] = "schedule add --server NAME [-C NAME]... "
	    "--cron EXPR";
	struct sub s;
	char *comps = NULL;
	int64_t id;
	int rc;

	if ((rc = sub_start_c(&s, "schedule add", argc, argv, opts,
	    usage + 13, &comp, &cl, DB_CREATE)) != PS_OK ||
	    (rc = nargs_is(&s, 0, 0, usage)) != PS_OK)
		goto out;
	if (server == NULL || cron == NULL) {
		ps_err("schedule add: %s is required (usage: patchsync %s)",
		    server == NULL ? "--server" : "--cron", usage);
		rc = PS_EUSAGE;
		goto out;
	}
	if ((rc = component_list(&s.conf, cl.v, cl.n, &comps)) != PS_OK)
		goto out;
	rc = ps_state_schedule_add(s.st, s.conf.console_name, server, comps,
	    cron, time(NULL), &id);
	if (rc == PS_OK)
		printf("%lld\n", (long long)id);
out:
	free(comps);
	free(cl.v);
	return sub_end(&s, rc);
}

static json_t *
schedule_json(const struct ps_schedule *sc)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o}",
	    "id", (json_int_t)sc->id, "owner", sc->owner, "server", sc->server,
	    "components", sc->components, "cron", sc->cron,
	    "next_run", sc->next_run ? json_integer(sc->next_run) :
	    json_null(), "last_run", sc->last_run ?
	    json_integer(sc->last_run) : json_null(),
	    "last_result", json_str_or_null(sc->last_result),
	    "last_task", sc->last_task ? json_integer(sc->last_task) :
	    json_null());
}

static int
schedule_list(int argc, const char **argv)
{
	static int json;
	struct poptOption opts[] = {
		{ "json", '\0', POPT_ARG_NONE, &json, 0,
		  "one JSON document", NULL },
		PS_OPTS_END
	};
	struct ps_schedule *v = NULL;
	struct sub s;
	size_t n = 0, i;
	char next[32], last[32];
	int rc;

	if ((rc = sub_start(&s, "schedule list", argc, argv, opts, "[--json]",
	    DB_READ)) != PS_OK || (rc = nargs_is(&s, 0, 0,
	    "schedule list [--json]")) != PS_OK)
		return sub_end(&s, rc);
	/* Reap first, so a dead worker's schedule shows 'interrupted'. */
	if (s.st != NULL && ((rc = ps_state_task_reap(s.st, NULL)) != PS_OK ||
	    (rc = ps_state_schedule_list(s.st, &v, &n)) != PS_OK))
		return sub_end(&s, rc);
	if (json) {
		json_t *arr = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(arr, schedule_json(&v[i]));
		rc = print_doc(json_pack("{s:o}", "schedules", arr));
	} else {
		if (n > 0)
			printf("%-5s %-14s %-14s %-16s %-14s %-16s %-16s %s\n",
			    "ID", "OWNER", "SERVER", "COMPONENTS", "CRON",
			    "NEXT RUN", "LAST RUN", "RESULT");
		for (i = 0; i < n; i++) {
			fmt_time(v[i].next_run, next, sizeof(next));
			fmt_time(v[i].last_run, last, sizeof(last));
			printf("%-5lld %-14s %-14s %-16s %-14s %-16s %-16s "
			    "%s\n", (long long)v[i].id, v[i].owner,
			    v[i].server, v[i].components[0] ?
			    v[i].components : "all", v[i].cron, next, last,
			    v[i].last_result ? v[i].last_result : "-");
		}
	}
	ps_schedule_list_free(v, n);
	return sub_end(&s, rc);
}

static int
schedule_edit(int argc, const char **argv)
{
	static const char *server, *cron, *comp;
	struct ps_names cl = { NULL, 0 };
	struct poptOption opts[] = {
		{ "server", 's', POPT_ARG_STRING, &server, 0,
		  "push to this server instead", "NAME" },
		{ "component", 'C', POPT_ARG_STRING, &comp, 'C',
		  "replace the components (repeatable; 'all' for every one)",
		  "NAME" },
		{ "cron", '\0', POPT_ARG_STRING, &cron, 0,
		  "new time expression", "EXPR" },
		PS_OPTS_END
	};
	static const char usage[] = "schedule edit ID [--server NAME] "
	    "[-C NAME]... [--cron EXPR]";
	struct ps_schedule_edit e;
	struct sub s;
	char *comps = NULL;
	int64_t id;
	int rc;

	memset(&e, 0, sizeof(e));
	if ((rc = sub_start_c(&s, "schedule edit", argc, argv, opts,
	    usage + 14, &comp, &cl, DB_READ)) != PS_OK ||
	    (rc = nargs_is(&s, 1, 1, usage)) != PS_OK ||
	    (rc = need_db(&s)) != PS_OK ||
	    (rc = parse_id("schedule", s.args[0], &id)) != PS_OK)
		goto out;
	if (server == NULL && cron == NULL && cl.n == 0) {
		ps_err("schedule edit: nothing to change (give --server, -C or "
		    "--cron)");
		rc = PS_EUSAGE;
		goto out;
	}
	if (cl.n > 0 && (rc = component_list(&s.conf, cl.v, cl.n, &comps)) !=
	    PS_OK)
		goto out;
	e.server = server;
	e.cron = cron;
	e.components = comps;
	rc = ps_state_schedule_edit(s.st, s.conf.console_name, id, &e,
	    time(NULL));
out:
	free(comps);
	free(cl.v);
	return sub_end(&s, rc);
}

static int
schedule_delete(int argc, const char **argv)
{
	struct poptOption opts[] = {
		PS_OPTS_END
	};
	struct sub s;
	int64_t id;
	int i, rc, r;

	if ((rc = sub_start(&s, "schedule delete", argc, argv, opts, "ID...",
	    DB_READ)) != PS_OK || (rc = nargs_is(&s, 1, -1,
	    "schedule delete ID...")) != PS_OK || (rc = need_db(&s)) != PS_OK)
		return sub_end(&s, rc);
	/* Every id is checked before any is deleted. */
	for (i = 0; i < s.nargs; i++)
		if ((rc = parse_id("schedule", s.args[i], &id)) != PS_OK)
			return sub_end(&s, rc);
	for (i = 0; i < s.nargs; i++) {
		(void)parse_id("schedule", s.args[i], &id);
		if ((r = ps_state_schedule_delete(s.st, id)) != PS_OK)
			rc = r;
	}
	return sub_end(&s, rc);
}

/* Start the worker of CLAIM; print its task id. */
static int
start_claim(struct sub *s, const struct ps_claim *c, int quiet_out,
    pid_t *pid)
{
	int rc;

	rc = ps_task_spawn(s->st, &s->conf, c->task_id, c->server,
	    c->components, pid);
	if (rc != PS_OK)
		return rc;
	if (!quiet_out)
		printf("%lld\n", (long long)c->task_id);
	fflush(stdout);
	return PS_OK;
}

/* The worse of two exit statuses: anything beats 0, a failure beats 1. */
static int
worse(int a, int b)
{
	if (a == PS_OK || (a == PS_DIFFER && b != PS_OK))
		return b;
	return a;
}

static int
schedule_run(int argc, const char **argv)
{
	static int wait;
	struct poptOption opts[] = {
		{ "wait", 'w', POPT_ARG_NONE, &wait, 0,
		  "wait for the tasks; exit with the worst status", NULL },
		PS_OPTS_END
	};
	struct ps_claim *cl;
	pid_t *pids;
	int64_t id;
	struct sub s;
	int i, rc, r;

	if ((rc = sub_start(&s, "schedule run", argc, argv, opts,
	    "ID... [--wait]", DB_READ)) != PS_OK || (rc = nargs_is(&s, 1, -1,
	    "schedule run ID... [--wait]")) != PS_OK ||
	    (rc = need_db(&s)) != PS_OK)
		return sub_end(&s, rc);
	for (i = 0; i < s.nargs; i++)
		if ((rc = parse_id("schedule", s.args[i], &id)) != PS_OK)
			return sub_end(&s, rc);
	cl = xcalloc((size_t)s.nargs, sizeof(*cl));
	pids = xcalloc((size_t)s.nargs, sizeof(*pids));
	for (i = 0; i < s.nargs; i++) {
		pids[i] = -1;
		(void)parse_id("schedule", s.args[i], &id);
		if ((r = ps_state_schedule_run_now(s.st, s.conf.console_name,
		    id, &cl[i])) == PS_OK)
			r = start_claim(&s, &cl[i], 0, &pids[i]);
		rc = worse(rc, r);
	}
	for (i = 0; wait && i < s.nargs; i++)
		if (pids[i] > 0)
			rc = worse(rc, ps_task_wait(s.st, cl[i].task_id,
			    pids[i]));
	for (i = 0; i < s.nargs; i++)
		ps_claim_free(&cl[i]);
	free(cl);
	free(pids);
	return sub_end(&s, rc);
}

static int
schedule_run_due(int argc, const char **argv)
{
	static int wait;
	struct poptOption opts[] = {
		{ "wait", 'w', POPT_ARG_NONE, &wait, 0,
		  "wait for the tasks; exit with the worst status", NULL },
		PS_OPTS_END
	};
	struct ps_claim *cl = NULL;
	pid_t *pids;
	size_t n = 0, i;
	struct sub s;
	int rc, r;

	/* Without a database nothing is due, and none is made. */
	if ((rc = sub_start(&s, "schedule run-due", argc, argv, opts,
	    "[--wait]", DB_READ)) != PS_OK || (rc = nargs_is(&s, 0, 0,
	    "schedule run-due [--wait]")) != PS_OK || s.st == NULL)
		return sub_end(&s, rc);
	(void)ps_state_task_reap(s.st, NULL);
	/* [console] keep bounds the history. */
	if (s.conf.keep > 0)
		(void)ps_task_prune(s.st, &s.conf, (double)time(NULL) -
		    (double)s.conf.keep, NULL);
	if ((rc = ps_state_schedule_claim_due(s.st, s.conf.console_name,
	    time(NULL), &cl, &n)) != PS_OK)
		return sub_end(&s, rc);
	pids = xcalloc(n + 1, sizeof(*pids));
	if (n > 0)
		openlog("patchsync", LOG_PID, LOG_DAEMON);
	for (i = 0; i < n; i++) {
		pids[i] = -1;
		r = start_claim(&s, &cl[i], 0, &pids[i]);
		if (r == PS_OK)
			syslog(LOG_INFO, "schedule %lld: started task %lld "
			    "(push to %s)", (long long)cl[i].schedule_id,
			    (long long)cl[i].task_id, cl[i].server);
		else
			syslog(LOG_ERR, "schedule %lld: cannot start task "
			    "%lld", (long long)cl[i].schedule_id,
			    (long long)cl[i].task_id);
		rc = worse(rc, r);
	}
	for (i = 0; wait && i < n; i++)
		if (pids[i] > 0)
			rc = worse(rc, ps_task_wait(s.st, cl[i].task_id,
			    pids[i]));
	if (n > 0)
		closelog();
	ps_claim_list_free(cl, n);
	free(pids);
	return sub_end(&s, rc);
}

int
cmd_schedule(int argc, const char **argv)
{
	static const struct ps_subcmd subs[] = {
		{ "add", schedule_add },
		{ "list", schedule_list },
		{ "edit", schedule_edit },
		{ "delete", schedule_delete },
		{ "run", schedule_run },
		{ "run-due", schedule_run_due },
	};

	return ps_cli_dispatch("schedule", subs, NELEM(subs),
	    "Usage: patchsync schedule add --server NAME [-C NAME]... "
	    "--cron EXPR\n"
	    "       patchsync schedule list [--json]\n"
	    "       patchsync schedule edit ID [--server NAME] [-C NAME]... "
	    "[--cron EXPR]\n"
	    "       patchsync schedule delete ID...\n"
	    "       patchsync schedule run ID... [--wait]\n"
	    "       patchsync schedule run-due [--wait]\n\n"
	    "EXPR is 'M H DOM MON DOW' (cron) or @hourly, @daily, @weekly. "
	    "Every console\nsees every schedule; only its owner edits or "
	    "runs it; any console deletes it.\n", argc, argv);
}

/* ---- tasks ---- */

static json_t *
task_json(const struct ps_task *t)
{
	return json_pack("{s:I,s:s,s:o,s:s,s:s,s:s,s:s,s:s,s:I,s:f,s:o,s:o,"
	    "s:o,s:o}", "id", (json_int_t)t->id, "kind",
	    ps_task_kind_name(t->kind), "schedule", t->schedule_id ?
	    json_integer(t->schedule_id) : json_null(), "console",
	    t->console, "server", t->server, "components", t->components,
	    "state", ps_task_state_name(t->state), "host", t->host, "pid",
	    (json_int_t)t->pid, "created", t->created, "started",
	    json_time_or_null(t->started), "ended",
	    json_time_or_null(t->ended), "exit_code", t->exit_code >= 0 ?
	    json_integer(t->exit_code) : json_null(), "stats",
	    json_text(t->stats));
}

static int
task_list(int argc, const char **argv)
{
	static int json, limit;
	struct poptOption opts[] = {
		{ "json", '\0', POPT_ARG_NONE, &json, 0,
		  "one JSON document", NULL },
		{ "limit", 'n', POPT_ARG_INT, &limit, 0,
		  "only the N newest tasks", "N" },
		PS_OPTS_END
	};
	struct ps_task *v = NULL;
	struct sub s;
	size_t n = 0, i;
	char start[32], end[32];
	int rc;

	if ((rc = sub_start(&s, "task list", argc, argv, opts,
	    "[--json] [--limit N]", DB_READ)) != PS_OK || (rc = nargs_is(&s,
	    0, 0, "task list [--json] [--limit N]")) != PS_OK)
		return sub_end(&s, rc);
	if (limit < 0) {
		ps_err("task list: --limit needs a number of tasks (0: all)");
		return sub_end(&s, PS_EUSAGE);
	}
	if (s.st != NULL && (rc = ps_state_task_list(s.st, (size_t)limit, &v,
	    &n)) != PS_OK)
		return sub_end(&s, rc);
	if (json) {
		json_t *arr = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(arr, task_json(&v[i]));
		rc = print_doc(json_pack("{s:o}", "tasks", arr));
	} else {
		if (n > 0)
			printf("%-6s %-9s %-11s %-14s %-14s %-19s %-19s %s\n",
			    "ID", "KIND", "STATE", "SERVER", "CONSOLE",
			    "STARTED", "ENDED", "EXIT");
		for (i = 0; i < n; i++) {
			fmt_rtime(v[i].started > 0 ? v[i].started :
			    v[i].created, start, sizeof(start));
			fmt_rtime(v[i].ended, end, sizeof(end));
			printf("%-6lld %-9s %-11s %-14s %-14s %-19s %-19s ",
			    (long long)v[i].id, ps_task_kind_name(v[i].kind),
			    ps_task_state_name(v[i].state), v[i].server,
			    v[i].console, start, end);
			if (v[i].exit_code >= 0)
				printf("%d\n", v[i].exit_code);
			else
				puts("-");
		}
	}
	ps_task_list_free(v, n);
	return sub_end(&s, rc);
}

static int
task_cancel(int argc, const char **argv)
{
	struct poptOption opts[] = {
		PS_OPTS_END
	};
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	char host[256];
	struct ps_task t;
	struct sub s;
	int64_t id;
	int rc, tries;

	if ((rc = sub_start(&s, "task cancel", argc, argv, opts, "ID",
	    DB_READ)) != PS_OK || (rc = nargs_is(&s, 1, 1, "task cancel ID"))
	    != PS_OK || (rc = parse_id("task", s.args[0], &id)) != PS_OK ||
	    (rc = need_db(&s)) != PS_OK ||
	    (rc = ps_state_task_get(s.st, id, &t)) != PS_OK)
		return sub_end(&s, rc);
	if (gethostname(host, sizeof(host) - 1) == -1)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	if (ps_task_state_final(t.state)) {
		ps_err("task %lld already ended (%s)", (long long)id,
		    ps_task_state_name(t.state));
		rc = PS_EUSAGE;
	} else if (strcmp(t.host, host) != 0) {
		ps_err("task %lld runs on host %s; cancel it there",
		    (long long)id, t.host);
		rc = PS_EUSAGE;
	} else if (kill(t.pid, SIGTERM) == -1) {
		ps_err("task %lld: cannot signal process %ld: %s",
		    (long long)id, (long)t.pid, strerror(errno));
		rc = errno == EPERM ? PS_EUSAGE : PS_EPEER;
	}
	ps_task_free(&t);
	if (rc != PS_OK)
		return sub_end(&s, rc);
	/* Wait (up to 30 s) for the worker to record how it ended. */
	for (tries = 0; tries < 300; tries++) {
		if ((rc = ps_state_task_get(s.st, id, &t)) != PS_OK)
			return sub_end(&s, rc);
		if (ps_task_state_final(t.state))
			break;
		ps_task_free(&t);
		nanosleep(&ts, NULL);
	}
	if (tries == 300) {
		ps_err("task %lld: asked to stop, still running after 30 s",
		    (long long)id);
		return sub_end(&s, PS_EPEER);
	}
	printf("task %lld %s\n", (long long)id, ps_task_state_name(t.state));
	ps_task_free(&t);
	return sub_end(&s, PS_OK);
}

int
cmd_task(int argc, const char **argv)
{
	static const struct ps_subcmd subs[] = {
		{ "list", task_list },
		{ "cancel", task_cancel },
	};

	return ps_cli_dispatch("task", subs, NELEM(subs),
	    "Usage: patchsync task list [--json] [--limit N]\n"
	    "       patchsync task cancel ID\n\n"
	    "Tasks are runs of a push (manual, run-now, scheduled). A task "
	    "whose process\ndied is shown as interrupted. See patchsync(1).\n",
	    argc, argv);
}

/* ---- history ---- */

struct hist {
	int json;		/* one document */
	int lines;		/* --follow --json: one object per line */
	json_t *arr;
	int64_t last;
};

static json_t *
event_json(const struct ps_event *ev)
{
	return json_pack("{s:I,s:I,s:f,s:s,s:s,s:s,s:s,s:o}", "id",
	    (json_int_t)ev->id, "task", (json_int_t)ev->task_id, "time",
	    ev->time, "server", ev->server, "level", ev->level, "kind",
	    ev->kind, "message", ev->message, "data", json_text(ev->data));
}

static int
print_event(const struct ps_event *ev, void *arg)
{
	struct hist *h = arg;
	char when[32], *msg;

	h->last = ev->id;
	if (h->json) {
		json_array_append_new(h->arr, event_json(ev));
		return 0;
	}
	if (h->lines) {
		json_t *o = event_json(ev);
		char *s = json_dumps(o, JSON_COMPACT);

		if (s != NULL)
			puts(s);
		free(s);
		json_decref(o);
		fflush(stdout);
		return 0;
	}
	fmt_rtime(ev->time, when, sizeof(when));
	msg = ps_escape(ev->message, strlen(ev->message));
	printf("%s  task %-5lld %-14s %-7s %-10s %s\n", when,
	    (long long)ev->task_id, ev->server, ev->level, ev->kind, msg);
	free(msg);
	fflush(stdout);
	return 0;
}

static int
history(struct sub *s, const char *task, const char *server, int follow,
    int json, int limit)
{
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	struct ps_event_filter f;
	struct hist h;
	struct ps_task t;
	int rc, ended = 0;

	memset(&f, 0, sizeof(f));
	memset(&h, 0, sizeof(h));
	if (limit < 0) {
		ps_err("history: --limit needs a number of events (0: all)");
		return PS_EUSAGE;
	}
	if (task != NULL && (rc = parse_id("task", task, &f.task)) != PS_OK)
		return rc;
	if (s->st == NULL) {
		/* No database: no task is known, no event happened. */
		if (f.task != 0)
			return need_db(s);
		if (json && !follow)
			return print_doc(json_pack("{s:[]}", "events"));
		return PS_OK;
	}
	if (f.task != 0) {
		/* An unknown task is an error, not an empty history. */
		if ((rc = ps_state_task_get(s->st, f.task, &t)) != PS_OK)
			return rc;
		ps_task_free(&t);
	}
	f.server = server;
	f.limit = (size_t)limit;
	h.json = json && !follow;
	h.lines = json && follow;
	if (h.json)
		h.arr = json_array();
	if ((rc = ps_state_events(s->st, &f, print_event, &h)) != PS_OK)
		goto out;
	while (follow && !ended) {
		/* Check the end before reading, so no event is missed. */
		if (f.task != 0) {
			if ((rc = ps_state_task_get(s->st, f.task, &t)) !=
			    PS_OK)
				goto out;
			ended = ps_task_state_final(t.state);
			ps_task_free(&t);
		}
		if (!ended)
			nanosleep(&ts, NULL);
		f.after_id = h.last;
		f.limit = 0;
		if ((rc = ps_state_events(s->st, &f, print_event, &h)) !=
		    PS_OK)
			goto out;
	}
out:
	if (h.json) {
		if (rc == PS_OK)
			rc = print_doc(json_pack("{s:o}", "events",
			    h.arr));
		else
			json_decref(h.arr);
	}
	return rc;
}

/* `history prune --older-than DURATION` (the tasks, their events, logs). */
static int
history_prune(int argc, const char **argv)
{
	static const char *older;
	struct poptOption opts[] = {
		{ "older-than", '\0', POPT_ARG_STRING, &older, 0,
		  "tasks that ended longer ago than this (30d, 12h, 2w)",
		  "DURATION" },
		PS_OPTS_END
	};
	static const char usage[] = "history prune --older-than DURATION";
	struct sub s;
	size_t n = 0;
	long secs;
	int rc;

	if ((rc = sub_start(&s, "history prune", argc, argv, opts,
	    usage + 14, DB_NONE)) != PS_OK || (rc = nargs_is(&s, 0, 0,
	    usage)) != PS_OK)
		return sub_end(&s, rc);
	if (older == NULL || ps_parse_duration(older, &secs) != 0) {
		ps_err("history prune: --older-than needs a duration such as "
		    "90d, 12h or 2w%s%s%s", older != NULL ? ", not '" : "",
		    older != NULL ? older : "", older != NULL ? "'" : "");
		return sub_end(&s, PS_EUSAGE);
	}
	/* Without a database there is nothing to prune. */
	if ((rc = open_state(&s, DB_READ)) == PS_OK && s.st != NULL &&
	    (rc = ps_task_prune(s.st, &s.conf, (double)time(NULL) -
	    (double)secs, &n)) == PS_OK)
		printf("%zu task%s pruned\n", n, n == 1 ? "" : "s");
	return sub_end(&s, rc);
}

int
cmd_history(int argc, const char **argv)
{
	static const char *task, *server;
	static int follow, json, limit;
	struct poptOption opts[] = {
		{ "task", 't', POPT_ARG_STRING, &task, 0,
		  "only this task's events", "ID" },
		{ "server", 's', POPT_ARG_STRING, &server, 0,
		  "only events of tasks pushing to this server", "NAME" },
		{ "follow", 'f', POPT_ARG_NONE, &follow, 0,
		  "keep printing new events (until the task ends, with "
		  "--task)", NULL },
		{ "json", '\0', POPT_ARG_NONE, &json, 0,
		  "JSON (with --follow: one object per line)", NULL },
		{ "limit", 'n', POPT_ARG_INT, &limit, 0,
		  "only the N newest events", "N" },
		PS_OPTS_END
	};
	struct sub s;
	const char *saved;
	char *name;
	int rc;

	if (argc >= 2 && strcmp(argv[1], "prune") == 0) {
		name = xasprintf("patchsync history prune");
		saved = argv[1];
		argv[1] = name;
		rc = history_prune(argc - 1, argv + 1);
		argv[1] = saved;
		free(name);
		return rc;
	}
	if ((rc = sub_start(&s, "history", argc, argv, opts,
	    "[--task ID] [--server NAME] [--follow] [--json] [--limit N]\n"
	    "       patchsync history prune --older-than DURATION",
	    DB_READ)) == PS_OK && (rc = nargs_is(&s, 0, 0, "history "
	    "[--task ID] [--server NAME] [--follow] [--json] [--limit N]")) ==
	    PS_OK)
		rc = history(&s, task, server, follow, json, limit);
	return sub_end(&s, rc);
}

/* ---- download ---- */

static volatile sig_atomic_t forward_sig;

static void
on_forward(int sig)
{
	forward_sig = sig;
}

static void
say_waiting(const char *why, void *arg)
{
	(void)arg;
	ps_warn("%s", why);
}

/* Run ARGV while holding the lock; its exit status, as a shell gives it. */
static int
run_locked(const char **argv)
{
	struct sigaction sa, old_term, old_hup, old_int;
	int status;
	pid_t pid, w;

	fflush(stdout);
	if ((pid = fork()) == -1) {
		ps_err("download: cannot start %s: %s", argv[0],
		    strerror(errno));
		return PS_EUSAGE;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], (char *const *)argv);
		ps_err("download: cannot run %s: %s", argv[0],
		    strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	/*
	 * Dying now would free the lock while the downloader still writes:
	 * pass SIGTERM and SIGHUP on, and let SIGINT reach it from the
	 * terminal, then wait for it whatever happens.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_forward;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	sigaction(SIGINT, &sa, &old_int);
	for (;;) {
		w = waitpid(pid, &status, 0);
		if (w == pid)
			break;
		if (w == -1 && errno != EINTR) {
			status = PS_EUSAGE << 8;
			break;
		}
		if (forward_sig != 0 && forward_sig != SIGINT)
			kill(pid, forward_sig);
		forward_sig = 0;
	}
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	sigaction(SIGINT, &old_int, NULL);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int
cmd_download(int argc, const char **argv)
{
	static const char *comp;
	struct poptOption opts[] = {
		{ "component", 'C', POPT_ARG_STRING, &comp, 0,
		  "the component being downloaded into", "NAME" },
		PS_OPTS_END
	};
	static const char usage[] = "download -C NAME -- COMMAND [ARG...]";
	const char **cmd;
	struct sub s;
	int rc, fd = -1;

	memset(&s, 0, sizeof(s));
	s.name = "download";
	s.ctx = poptGetContext("patchsync download", argc, argv, opts,
	    POPT_CONTEXT_POSIXMEHARDER);
	poptSetOtherOptionHelp(s.ctx, "-C NAME -- COMMAND [ARG...]");
	if ((rc = ps_cli_parse(s.ctx, "download")) != PS_OK)
		return sub_end(&s, rc);
	s.args = ps_cli_args(s.ctx, &s.nargs);
	if (comp == NULL || s.nargs == 0) {
		ps_err("download: %s (usage: patchsync %s)", comp == NULL ?
		    "-C NAME is required" : "no command given", usage);
		return sub_end(&s, PS_EUSAGE);
	}
	if ((rc = ps_cli_conf(&s.conf, 1)) != PS_OK)
		return sub_end(&s, rc);
	if (ps_conf_component(&s.conf, comp) == NULL) {
		ps_err("download: unknown component '%s' (not in %s)", comp,
		    s.conf.file);
		return sub_end(&s, PS_EUSAGE);
	}
	if ((rc = ps_download_lock_exclusive(&s.conf, comp, &fd, say_waiting,
	    NULL)) != PS_OK)
		return sub_end(&s, rc);
	ps_info(1, "download lock of %s taken", comp);
	cmd = xcalloc((size_t)s.nargs + 1, sizeof(*cmd));
	memcpy(cmd, s.args, (size_t)s.nargs * sizeof(*cmd));
	rc = run_locked(cmd);
	free(cmd);
	close(fd);
	return sub_end(&s, rc);
}
