/*
 * receiver.h — the side of a session that receives files: the server for
 * a push, the console for a pull. It describes its tree (MANIFEST),
 * answers signature requests, writes each file to a hidden temporary,
 * verifies it against the sender's XXH3-128 and renames it into place.
 */
#ifndef PS_RECEIVER_H
#define PS_RECEIVER_H

#include <stdint.h>

#include "fsops.h"
#include "manifest.h"
#include "wire.h"

struct ps_recv_stats {
	uint64_t files;		/* files put in place */
	uint64_t deleted;	/* files and directories removed */
	uint32_t errors;	/* files or deletions that failed */
	int worst;		/* worst ps_result of a failed file */
};

/*
 * Serve one component: DEST (relative to ROOT's directory, "" for ROOT
 * itself) after an OPEN with FLAGS (PS_OF_*). Builds and sends the
 * manifest of ROOT/DEST, then applies what the sender sends until DONE,
 * which it answers with DONEACK. With REPORT_ONLY it sends the manifest
 * and waits for DONE. Returns PS_OK when the session may go on (file
 * errors are counted in ST and reported per file), PS_EPEER when the
 * stream broke or the peer broke the protocol (a message says why).
 */
int ps_receive(struct ps_wire *w, struct ps_root *root, const char *dest,
    uint32_t flags, int report_only, struct ps_recv_stats *st);

/*
 * Send manifest M (portable form, zstd-compressed) as MFDATA frames and
 * MFEND. Returns a ps_result.
 */
int ps_send_manifest(struct ps_wire *w, const struct ps_manifest *m);

/* Send an ERROR frame (best effort) and flush. */
void ps_send_error(struct ps_wire *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Send a NOTICE frame (best effort) and flush. */
void ps_send_notice(struct ps_wire *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
