/*
 * bundle_against.c — the server state a bundle is made against: a
 * manifest file from `manifest build` on the server, or the server's
 * manifests read live through a report session (what `report` reads:
 * the server's own description of its tree, with the weak and strong
 * block sums deltas are matched against).
 */
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "msg.h"
#include "session.h"

static void
entry_drop(struct ps_entry *e)
{
	free(e->path);
	free(e->blocks);
	free(e->weak);
	memset(e, 0, sizeof(*e));
}

void
ps_bundle_split_against(struct ps_manifest *m, int split,
    struct ps_bundle_src *src, size_t nsrc)
{
	size_t i, c, dlen;

	for (c = 0; c < nsrc; c++) {
		memset(&src[c].against, 0, sizeof(src[c].against));
		src[c].have_against = 1;
	}
	if (!split && nsrc == 1) {
		src[0].against = *m;
		memset(m, 0, sizeof(*m));
		return;
	}
	for (i = 0; i < m->n; i++) {
		struct ps_entry *e = &m->e[i];

		for (c = 0; c < nsrc; c++) {
			dlen = strlen(src[c].dest);
			if (dlen > 0 && e->path_len > dlen + 1 &&
			    memcmp(e->path, src[c].dest, dlen) == 0 &&
			    e->path[dlen] == '/')
				break;
		}
		if (c == nsrc) {
			entry_drop(e);	/* outside every destination */
			continue;
		}
		/* Same order below a common prefix: an append each time. */
		memmove(e->path, e->path + dlen + 1, e->path_len - dlen);
		e->path_len -= (uint32_t)(dlen + 1);
		ps_manifest_put(&src[c].against, e);
	}
	m->n = 0;
	ps_manifest_free(m);
}


int
ps_bundle_fetch_against(const char *label, const char *url,
    const char *rsh, const char *remote_path, unsigned timeout,
    struct ps_bundle_src *src, size_t nsrc)
{
	struct ps_sess_opts so;
	struct ps_sess ss;
	size_t i;
	int rc, crc;

	memset(&so, 0, sizeof(so));
	so.label = label;
	so.url = url;
	so.rsh = rsh;
	so.remote_path = remote_path;
	so.timeout = timeout;
	rc = ps_sess_connect(&ss, &so);
	for (i = 0; i < nsrc && rc == PS_OK; i++) {
		memset(&src[i].against, 0, sizeof(src[i].against));
		src[i].have_against = 1;
		if ((rc = ps_sess_open(&ss, PS_OPEN_REPORT, 0,
		    src[i].dest)) == PS_OK &&
		    (rc = ps_sess_recv_manifest(&ss, &src[i].against)) ==
		    PS_OK)
			rc = ps_sess_report_done(&ss);
	}
	crc = ps_sess_close(&ss, NULL);
	if (rc == PS_OK)
		rc = crc;
	if (rc != PS_OK && rc != PS_EINTR && rc != PS_EUSAGE)
		rc = PS_EPEER;	/* SPEC 9: the server could not be read */
	return rc;
}
