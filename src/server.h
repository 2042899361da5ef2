/*
 * server.h — the server role: what `patchsync serve --stdio ROOT` runs
 * (through ssh, or in a child of the console for a local destination).
 * It answers one console: for each OPEN it takes the right lock, opens
 * the destination and receives files (push), describes them (report) or
 * sends them (refresh); a relay then passes the update on to the servers
 * behind it (RELAY, relay.h).
 */
#ifndef PS_SERVER_H
#define PS_SERVER_H

struct ps_serve_opts {
	const char *root;	/* ROOT as the console named it */
	unsigned timeout;	/* seconds without a word from the console */
	int relay;		/* pass updates on when asked (relay.h) */
};

/*
 * Serve the console on RFD/WFD until BYE or a failure. What goes wrong is
 * told to the console in the protocol; nothing is printed. Returns a
 * ps_result (PS_EINTR when a signal ended it, after every temporary was
 * removed).
 */
int ps_serve(int rfd, int wfd, const struct ps_serve_opts *o);

#endif
