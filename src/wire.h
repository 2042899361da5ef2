/*
 * wire.h — the framed message stream between the console and the server
 * roles. Framing only: what a frame means is the business of the roles.
 *
 * A frame is: u32 little-endian payload length | u8 type | payload.
 * A payload is at most PS_FRAME_MAX bytes. Anything that breaks the
 * framing (a length over the maximum, end of stream in the middle of a
 * frame, a read or write error, a peer silent for longer than the
 * timeout) ends the session: the call returns PS_EPEER and
 * ps_wire_error() says why in one line. An interruption (ps_intr_fd)
 * ends any wait with PS_EINTR.
 */
#ifndef PS_WIRE_H
#define PS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ps.h"

#define PS_FRAME_MAX (4u * 1024 * 1024)	/* largest payload, bytes */
#define PS_FRAME_HDR 5			/* u32 length + u8 type */

struct ps_wire;

/*
 * A stream that reads RFD and writes WFD (the same descriptor for a
 * socket). The wire does not own the descriptors: ps_wire_free leaves
 * them open.
 */
struct ps_wire *ps_wire_new(int rfd, int wfd);
void ps_wire_free(struct ps_wire *w);

/*
 * Queue one whole frame. Small frames are gathered in an output buffer
 * and written when it fills or on ps_wire_flush; large payloads are
 * written through. Several threads may send at once: frames never
 * interleave. Returns PS_OK, PS_EUSAGE (payload over PS_FRAME_MAX, a bug
 * of the caller) or PS_EPEER (write failed; the stream is dead from then
 * on).
 */
int ps_wire_send(struct ps_wire *w, uint8_t type, const void *p,
    size_t len);

/* One frame whose payload is A (a header) followed by B, without copying B. */
int ps_wire_send2(struct ps_wire *w, uint8_t type, const void *a,
    size_t alen, const void *b, size_t blen);

/*
 * One frame whose payload is A (a header) followed by the N bytes of the
 * file FD at OFF, which go from the page cache to the stream without a
 * copy through our memory (sendfile) where the kernel allows it, else
 * are read and written. When the file holds fewer than N bytes there,
 * nothing is sent and PS_EPARTIAL returned; when it shrinks while being
 * sent, the frame is completed with zeros (the receiver's hash check
 * refuses the file) and PS_EPARTIAL returned.
 */
int ps_wire_send_file(struct ps_wire *w, uint8_t type, const void *a,
    size_t alen, int fd, uint64_t off, size_t n);

/*
 * Hold back every frame whose type is not in PASS (bit 1 << type) until
 * ps_wire_release, which writes them in the order they were sent: a
 * receiver still sending its manifest answers files that came early only
 * after it. At most 64 MiB is held; a peer that makes us hold more ends
 * the stream (PS_EPEER).
 */
void ps_wire_hold(struct ps_wire *w, uint64_t pass);
int ps_wire_release(struct ps_wire *w);

/* Write everything queued. */
int ps_wire_flush(struct ps_wire *w);

/*
 * Flush, then tell the peer nothing more will come: shutdown(SHUT_WR) on
 * a socket; on a pipe the write end is replaced by /dev/null (the
 * descriptor number stays valid, so its owner may still close it).
 */
int ps_wire_shutdown_write(struct ps_wire *w);

/*
 * Read the next frame: its type into *TYPE and its payload into PAYLOAD
 * (replacing what PAYLOAD held). Only one thread may receive. Returns
 * PS_OK, PS_EPEER or PS_EINTR. When the stream ended cleanly between two
 * frames, ps_wire_eof() is 1 as well ("peer finished or died between frames");
 * a stream that ends inside a frame is a broken frame, and ps_wire_eof()
 * stays 0.
 */
int ps_wire_recv(struct ps_wire *w, uint8_t *type, struct buf *payload);
int ps_wire_eof(const struct ps_wire *w);

/* One-line reason for the first failure, or "" when there was none. */
const char *ps_wire_error(struct ps_wire *w);

/* Bytes actually written to / read from the descriptors so far. */
uint64_t ps_wire_bytes_out(const struct ps_wire *w);
uint64_t ps_wire_bytes_in(const struct ps_wire *w);

/* Cap the bytes written per second (a token bucket); 0: no limit. */
void ps_wire_set_bwlimit(struct ps_wire *w, uint64_t bytes_per_sec);

/*
 * The longest wait for the peer, in seconds, for any one read or write
 * (0: none). Set before other threads use the wire.
 */
void ps_wire_set_timeout(struct ps_wire *w, unsigned seconds);

/* An overall deadline from now for every wait (the greeting); 0 clears. */
void ps_wire_set_deadline(struct ps_wire *w, unsigned seconds);

/* Milliseconds since bytes last left (for keepalives). */
uint64_t ps_wire_idle_ms(const struct ps_wire *w);

/*
 * Read the first frame of a session: it must be of TYPE with a payload of
 * MINLEN..MAXLEN bytes. Anything else fails with PS_EPEER and a reason
 * meant for an administrator: when the peer wrote text (a shell error, a
 * login banner), the reason quotes up to 60 printable bytes of it.
 */
int ps_wire_recv_greeting(struct ps_wire *w, uint8_t type, size_t minlen,
    size_t maxlen, struct buf *payload);

/* Forget the recorded reason (before reading the greeting after a
 * failed write: what the peer said explains more than EPIPE). */
void ps_wire_clear_error(struct ps_wire *w);

/*
 * Bounds-checked payload decoding. Reading past the end sets bad and
 * returns 0 or NULL; nothing ever reads outside [p, p + len).
 */
struct ps_rd {
	const unsigned char *p;
	size_t len;
	size_t off;
	int bad;
};

void ps_rd_init(struct ps_rd *r, const void *p, size_t len);
uint8_t ps_rd_u8(struct ps_rd *r);
uint32_t ps_rd_u32(struct ps_rd *r);
uint64_t ps_rd_u64(struct ps_rd *r);
int64_t ps_rd_i64(struct ps_rd *r);
/* N bytes in place; NULL (and bad) when fewer remain. */
const unsigned char *ps_rd_bytes(struct ps_rd *r, size_t n);
/*
 * A u32 length and that many bytes, length at most MAX. Returns a pointer
 * into the payload (not NUL-terminated) and the length in *LEN; NULL
 * (and bad, *LEN 0) when too long or truncated.
 */
const char *ps_rd_str(struct ps_rd *r, size_t *len, size_t max);
/* 0 when nothing went wrong and every byte was consumed, else -1. */
int ps_rd_done(const struct ps_rd *r);

/* Encoding: a u32 length and the bytes (the form ps_rd_str reads). */
void ps_buf_add_str(struct buf *b, const void *p, size_t len);

#endif
