/*
 * relay.h — servers reached through other servers (SPEC section 14,
 * `server add NAME URL --via RELAY`).
 *
 * A relay is a server like any other: the console pushes to it (or
 * reports on it) over its own session. In that same session, once its
 * components went well, the console sends RELAY: the components, and the
 * servers behind the relay with the settings the console would have used
 * for them (URL, remote shell, remote program, bandwidth limit, timeout;
 * never a credential). The relay, started as `serve --relay`, runs the
 * console role itself (ps_console_run) toward them: a push from its own
 * fresh copy of each component, which this session has just made intact;
 * a report, or a dry run, against the console's manifest, which comes
 * along (its copy may be older than the console's). Each server's
 * outcome goes back as it is known (report rows, then RELAYRES), so the
 * console records and prints it as if it had reached the server itself;
 * RELAYEND ends the exchange. A server behind a relay may be a relay:
 * its own servers go with it, nested, and their results come back the
 * same way, each link carrying every update once.
 *
 * The relay connects with its own account: its ssh keys and
 * configuration. What the console sends is bounded (msg.h: servers,
 * depth, lengths) and the relay's serve must have been started with
 * --relay, so an account whose forced command lacks it never acts for
 * the console beyond its ROOT.
 */
#ifndef PS_RELAY_H
#define PS_RELAY_H

#include <stddef.h>

#include "console.h"
#include "fsops.h"
#include "session.h"

/*
 * Console side, in T's session SS after its components: pass the update
 * on to the servers behind T (those of ALL, NALL, whose chain of vias
 * passes T) and take in their results, each into its own target (and to
 * O->done). Nothing is asked when T's own part failed: its copy is not
 * the console's. Returns PS_OK or the session's failure (said).
 */
int ps_relay_forward(const struct ps_console_opts *o, struct ps_source *src,
    size_t nsrc, struct ps_target *all, size_t nall, struct ps_target *t,
    struct ps_sess *ss);

/*
 * Console side, once T's session has ended: every server behind T that
 * has no result yet gets one: not reached (PS_EPEER), saying why (T
 * failed, or T did not get every file). One line on stderr names them.
 */
void ps_relay_settle(const struct ps_console_opts *o, struct ps_target *all,
    size_t nall, struct ps_target *t);

/* Relay side: what this session knows of the relay's own copy. */
struct ps_relay_copy {
	int allowed;		/* serve --relay */
	const char *rootpath;	/* ROOT as the console named it */
	struct ps_root *root;	/* open (fd -1 when nothing was pushed) */
	char **fresh;		/* destinations this session pushed intact */
	size_t nfresh;
};

/*
 * Relay side: the console sent RELAY (PAYLOAD, not decoded yet) over S.
 * Read the rest of the request, push or report to the servers behind,
 * send each result back, then RELAYEND; then wait for the console's BYE.
 * A relay that cannot serve the request (not --relay, a component it
 * did not get intact) answers every server with the reason. Returns
 * PS_OK after BYE, or the session's failure; when the console goes away
 * meanwhile, the sessions behind are interrupted (their temporaries are
 * removed).
 */
int ps_relay_serve(struct ps_sess *s, const struct ps_relay_copy *c,
    const struct buf *payload);

#endif
