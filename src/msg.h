/*
 * msg.h — the messages of the patchsync protocol (man/patchsync-protocol.5).
 *
 * wire.h frames bytes; this module is the one place that lays out and
 * reads the payload of every message kind. Each kind has a struct and a
 * typed send/decode pair (ps_send_KIND, ps_dec_KIND), generated from one
 * table of fields in msg.c: the table says each field's type, its bounds
 * and its name, so encoding, decoding, range checks and the unit tests
 * all come from the same place.
 *
 * Decoding never copies: strings and byte runs point into the payload,
 * which must outlive the decoded struct. Every field is checked where it
 * is decoded: a value out of its range, a truncated or oversized payload
 * make the decoder fail with a one-line reason naming the message and
 * the field.
 *
 * A session (session.h) runs on top: HELLO, then the console sends OPEN
 * for one component at a time; see the protocol man page for the order.
 */
#ifndef PS_MSG_H
#define PS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "ps.h"
#include "wire.h"

/* The protocol version in HELLO. Peers must speak the same one. */
#define PS_PROTO_VERSION 5
#define PS_MAGIC "PSYNC\0\0\0"
#define PS_MAGIC_LEN 8

/* ---- limits on what a peer may send (documented in the man page) ---- */
#define PS_TEXT_MAX	1024		/* bytes of a message text */
#define PS_TIMEOUT_MAX	86400		/* seconds, in HELLO */
#define PS_MAX_FILE_ID	(1u << 20)	/* file ids of one component */
#define PS_MAX_REGIONS	65536		/* regions per SUMREQ */
#define PS_MAX_ROUNDS	4		/* sum requests per file */
#define PS_DATA_CHUNK	(1u << 20)	/* raw bytes per DATA frame */
#define PS_SUMBLOCK_MIN	64u		/* block length of asked sums */
#define PS_SUMBLOCK_MAX	(1u << 20)	/* a manifest's largest block */
#define PS_SUM_LEN	12		/* u32 weak + u64 strong, per block */
#define PS_MAX_MANIFEST	(1ull << 32)	/* bytes of a decoded manifest */
#define PS_MF_RATIO	64		/* decoded bytes per compressed byte */
#define PS_MAX_FSIZE	(UINT64_C(1) << 50)	/* bytes of one file */
/* Relays (RELAY..RELAYEND): */
#define PS_RELAY_MAX_SERVERS	4096	/* servers behind one relay, in all */
/*
 * Report rows a relay may send for one server: one per console file
 * (missing or out of date), and at most this many of files only the
 * server has.
 */
#define PS_RELAY_MAX_EXTRA	(1u << 24)
#define PS_RELAY_MAX_DEPTH	4	/* relays on the way to a server */
#define PS_RELAY_MAX_SOURCES	256	/* components relayed at once */
#define PS_RELAY_MAX_JOBS	64	/* sessions at once on a relay */
#define PS_NAME_MAX		64	/* bytes of a server name */
#define PS_COMPONENT_MAX	255	/* bytes of a component name */
#define PS_CMD_MAX		4096	/* bytes of a URL, remote shell or
					   remote program */

/* Message types. */
enum ps_msg_type {
	PS_MSG_HELLO = 1,	/* greeting, both ways */
	PS_MSG_ERROR = 2,	/* fatal: the session ends */
	PS_MSG_NOTICE = 3,	/* for the user: waiting, a file error */
	PS_MSG_KEEPALIVE = 4,	/* nothing; the sender is alive */
	PS_MSG_OPEN = 10,	/* console: start a component */
	PS_MSG_MFDATA = 11,	/* a piece of a compressed manifest */
	PS_MSG_MFEND = 12,	/* the manifest is complete */
	PS_MSG_MKDIR = 20,
	PS_MSG_FILE = 21,	/* a new version of a file follows */
	PS_MSG_DATA = 22,	/* literal bytes of a file */
	PS_MSG_SUMREQ = 23,	/* block sums of regions of the old version */
	PS_MSG_SUMS = 24,	/* a piece of those sums */
	PS_MSG_COPY = 25,	/* bytes the receiver already has */
	PS_MSG_END = 27,	/* everything of a file was sent */
	PS_MSG_RESULT = 28,	/* a file is in place, or why not */
	PS_MSG_DELETE = 29,
	PS_MSG_META = 30,	/* content current: set mode and time */
	PS_MSG_DONE = 31,	/* the component is complete */
	PS_MSG_DONEACK = 32,
	PS_MSG_BYE = 33,	/* end of session */
	PS_MSG_RELAY = 40,	/* console: pass the update on (a relay) */
	PS_MSG_RELAYSRC = 41,	/* a component to pass on */
	PS_MSG_RELAYTO = 42,	/* a server behind the relay */
	PS_MSG_RELAYROW = 43,	/* relay: a report row of one server */
	PS_MSG_RELAYRES = 44,	/* relay: how one server's session ended */
	PS_MSG_RELAYEND = 45	/* relay: every server has its result */
};

/* A run of bytes inside a payload (not NUL-terminated). */
struct ps_bytes {
	const unsigned char *p;
	size_t len;
};

#define PS_ROLE_CONSOLE 'c'
#define PS_ROLE_SERVER 's'

/* OPEN modes. */
#define PS_OPEN_PUSH	'p'	/* the server receives */
#define PS_OPEN_REPORT	'r'	/* the server sends its manifest only */
#define PS_OPEN_PULL	'g'	/* the server sends files (refresh) */

/* OPEN flags. */
#define PS_OF_NOWAIT	0x1	/* fail at once when the lock is taken */
#define PS_OF_CHECKSUM	0x2	/* re-read every file (no cache) */
#define PS_OF_DRYRUN	0x4	/* change nothing */
#define PS_OF_DELETE	0x8	/* the receiver accepts DELETE frames */
#define PS_OF_LAZYSUMS	0x10	/* its manifest without block sums: the
				   sender asks for those it needs */
#define PS_OF_EARLY	0x20	/* a push's files may come while the
				   receiver still sends its manifest */
#define PS_OF_ALL	0x3f

/* NOTICE levels. */
#define PS_NOTE_INFO	0	/* e.g. waiting for a lock */
#define PS_NOTE_WARN	1
#define PS_NOTE_ERROR	2	/* about one file; the session goes on */

/* DATA codecs. */
#define PS_CODEC_RAW	0
#define PS_CODEC_ZSTD	1

struct ps_msg_hello {
	struct ps_bytes magic;	/* PS_MAGIC */
	uint32_t version;
	uint32_t features;	/* none defined: 0 */
	uint8_t role;		/* PS_ROLE_* */
	uint32_t timeout;	/* the sender's --timeout, seconds (0: none) */
};

struct ps_msg_error {
	uint32_t code;		/* ps_result, PS_EUSAGE..PS_EVERIFY */
	struct ps_bytes text;
};

struct ps_msg_notice {
	uint8_t level;		/* PS_NOTE_* */
	struct ps_bytes text;
};

struct ps_msg_open {
	uint8_t mode;		/* PS_OPEN_* */
	uint32_t flags;		/* PS_OF_* */
	struct ps_bytes dest;	/* "" (the root) or a safe relative path */
};

struct ps_msg_mfdata {
	struct ps_bytes data;
};

struct ps_msg_mfend {
	uint8_t codec;		/* PS_CODEC_ZSTD */
	uint64_t raw_len;	/* decoded bytes, at most PS_MAX_MANIFEST */
};

struct ps_msg_mkdir {
	struct ps_bytes path;
	uint32_t mode;
};

struct ps_msg_file {
	uint32_t id;
	struct ps_bytes path;
	uint64_t size;
	int64_t mtime;
	uint32_t nsec;
	uint32_t mode;
	unsigned char hash[16];	/* XXH3-128, canonical */
};

struct ps_msg_data {
	uint32_t id;
	uint64_t off;
	uint32_t raw_len;	/* bytes once decoded */
	uint8_t codec;
	struct ps_bytes data;
};

struct ps_msg_sumreq {
	uint32_t id;
	struct ps_bytes path;
	uint32_t round;		/* 0 .. PS_MAX_ROUNDS - 1 */
	uint32_t block_len;
	uint32_t nregions;	/* 1 .. PS_MAX_REGIONS */
	struct ps_bytes regions;	/* nregions x (u64 offset, length) */
};

struct ps_msg_sums {
	uint32_t id;
	uint32_t round;
	uint8_t last;
	struct ps_bytes data;	/* whole records of u32 weak, u64 strong */
};

struct ps_msg_copy {
	uint32_t id;
	uint64_t off;
	uint64_t len;
	uint64_t basis_off;
};

struct ps_msg_end {
	uint32_t id;
};

struct ps_msg_result {
	uint32_t id;
	uint32_t code;		/* PS_OK or the file's ps_result */
	struct ps_bytes text;
};

struct ps_msg_delete {
	struct ps_bytes path;
	uint8_t type;		/* 'f' or 'd' */
};

struct ps_msg_meta {
	struct ps_bytes path;
	uint8_t type;
	uint32_t mode;
	int64_t mtime;
	uint32_t nsec;
};

struct ps_msg_doneack {
	uint32_t code;		/* worst result of the component */
	uint64_t files;
	uint64_t deleted;
	uint32_t errors;
};

/*
 * RELAY: after its own components, the console asks the server (a relay)
 * to run the same push or report from there to the servers behind it.
 * NSOURCES RELAYSRC and NSERVERS RELAYTO follow.
 */
#define PS_WHOLE_AUTO	2	/* whole: as the URLs say (local: whole) */
struct ps_msg_relay {
	uint8_t mode;		/* PS_OPEN_PUSH or PS_OPEN_REPORT */
	uint32_t flags;		/* PS_OF_* of every session */
	uint8_t whole;		/* 0 deltas, 1 whole files, PS_WHOLE_AUTO */
	uint8_t extra;		/* report: list extra files too */
	int64_t max_delete;	/* -1: no limit */
	uint32_t jobs;		/* servers at once, 1 .. 64 */
	uint32_t nsources;	/* 1 .. PS_RELAY_MAX_SOURCES */
	uint32_t nservers;	/* 1 .. PS_RELAY_MAX_SERVERS */
};

/* A component; its manifest (MFDATA..., MFEND) follows when asked. */
struct ps_msg_relaysrc {
	struct ps_bytes component;	/* its name on the console */
	struct ps_bytes dest;	/* under ROOT, as OPEN's */
	uint8_t manifest;	/* 1: the console's manifest follows */
};

/* Server K (1-based, in the order sent) of a RELAY. */
struct ps_msg_relayto {
	uint32_t parent;	/* 0: behind this relay; else the server
				   (sent before) it is behind */
	struct ps_bytes name;
	struct ps_bytes url;	/* as the relay reaches it */
	struct ps_bytes rsh;	/* "": ssh, or the URL is local */
	struct ps_bytes remote_path;	/* "": patchsync */
	uint64_t bwlimit;	/* bytes per second, 0: none */
	uint32_t timeout;	/* seconds, 0: none */
};

/*
 * Report rows: missing (console side only), extra (server side only);
 * the absent side is all zeros.
 */
#define PS_RELAY_ROW_MISSING	0	/* the values of enum ps_diff_state */
#define PS_RELAY_ROW_OUTDATED	1
#define PS_RELAY_ROW_EXTRA	2
struct ps_msg_relayrow {
	uint32_t server;	/* K of the RELAYTO */
	struct ps_bytes component;
	struct ps_bytes path;
	uint8_t state;		/* PS_RELAY_ROW_* */
	uint64_t csize;		/* console side */
	int64_t cmtime;
	unsigned char chash[16];
	uint64_t ssize;		/* server side */
	int64_t smtime;
	unsigned char shash[16];
};

struct ps_msg_relayres {
	uint32_t server;	/* K of the RELAYTO */
	uint32_t code;		/* the session's ps_result */
	uint64_t files, deleted, meta, literal, matched, total, nsend;
	uint32_t errors;
	uint64_t bytes_sent, bytes_received;
	uint64_t msec;		/* the session's length */
	struct ps_bytes error;	/* "" when it succeeded */
};

/* Empty messages. */
struct ps_msg_empty {
	char unused;
};

/* The name of message TYPE ("FILE"), or "unknown". */
const char *ps_msg_name(uint8_t type);

/*
 * Encode message TYPE from the struct at M and send it as one frame.
 * Returns a wire result (PS_OK, PS_EPEER, PS_EINTR).
 */
int ps_msg_send(struct ps_wire *w, uint8_t type, const void *m);

/*
 * The same for a message whose tail is bytes of a file: M's tail names
 * only their length, and they are the bytes of FD at OFF, passed from
 * the page cache to the stream (ps_wire_send_file). PS_EPARTIAL when the
 * file no longer holds them (see there).
 */
int ps_msg_send_file(struct ps_wire *w, uint8_t type, const void *m, int fd,
    uint64_t off);

/*
 * Encode message TYPE from M into OUT (payload only). Exposed for the
 * tests and the bundle writer.
 */
void ps_msg_encode(uint8_t type, const void *m, struct buf *out);

/*
 * Decode the LEN bytes at P as message TYPE into M (whose pointers then
 * point into P). Returns 0, or -1 with a one-line reason in WHY
 * ("malformed FILE: path is not a safe relative path").
 */
int ps_msg_decode(uint8_t type, const void *p, size_t len, void *m,
    char *why, size_t whylen);

/* Typed wrappers: ps_send_file(w, &m), ps_dec_file(&payload, &m, why, n). */
#define PS_MSG_PAIR(name, TYPE, STRUCT)					\
static inline int							\
ps_send_##name(struct ps_wire *w, const struct STRUCT *m)		\
{									\
	return ps_msg_send(w, TYPE, m);					\
}									\
static inline int							\
ps_dec_##name(const struct buf *b, struct STRUCT *m, char *why,	\
    size_t whylen)							\
{									\
	return ps_msg_decode(TYPE, b->p, b->len, m, why, whylen);	\
}

PS_MSG_PAIR(hello, PS_MSG_HELLO, ps_msg_hello)
PS_MSG_PAIR(error, PS_MSG_ERROR, ps_msg_error)
PS_MSG_PAIR(notice, PS_MSG_NOTICE, ps_msg_notice)
PS_MSG_PAIR(keepalive, PS_MSG_KEEPALIVE, ps_msg_empty)
PS_MSG_PAIR(open, PS_MSG_OPEN, ps_msg_open)
PS_MSG_PAIR(mfdata, PS_MSG_MFDATA, ps_msg_mfdata)
PS_MSG_PAIR(mfend, PS_MSG_MFEND, ps_msg_mfend)
PS_MSG_PAIR(mkdir, PS_MSG_MKDIR, ps_msg_mkdir)
PS_MSG_PAIR(file, PS_MSG_FILE, ps_msg_file)
PS_MSG_PAIR(data, PS_MSG_DATA, ps_msg_data)
PS_MSG_PAIR(sumreq, PS_MSG_SUMREQ, ps_msg_sumreq)
PS_MSG_PAIR(sums, PS_MSG_SUMS, ps_msg_sums)
PS_MSG_PAIR(copy, PS_MSG_COPY, ps_msg_copy)
PS_MSG_PAIR(end, PS_MSG_END, ps_msg_end)
PS_MSG_PAIR(result, PS_MSG_RESULT, ps_msg_result)
PS_MSG_PAIR(delete, PS_MSG_DELETE, ps_msg_delete)
PS_MSG_PAIR(meta, PS_MSG_META, ps_msg_meta)
PS_MSG_PAIR(done, PS_MSG_DONE, ps_msg_empty)
PS_MSG_PAIR(doneack, PS_MSG_DONEACK, ps_msg_doneack)
PS_MSG_PAIR(bye, PS_MSG_BYE, ps_msg_empty)
PS_MSG_PAIR(relay, PS_MSG_RELAY, ps_msg_relay)
PS_MSG_PAIR(relaysrc, PS_MSG_RELAYSRC, ps_msg_relaysrc)
PS_MSG_PAIR(relayto, PS_MSG_RELAYTO, ps_msg_relayto)
PS_MSG_PAIR(relayrow, PS_MSG_RELAYROW, ps_msg_relayrow)
PS_MSG_PAIR(relayres, PS_MSG_RELAYRES, ps_msg_relayres)
PS_MSG_PAIR(relayend, PS_MSG_RELAYEND, ps_msg_empty)

/*
 * The field table, for the unit tests and the fuzz targets: field K of
 * message TYPE. Returns 0 and fills the out-parameters, or -1 past the
 * last field or for an unknown TYPE.
 */
enum ps_field_type {
	PS_F_U8 = 1, PS_F_U32, PS_F_U64, PS_F_I64,
	PS_F_FLAGS,	/* u32 whose bits must all be within max */
	PS_F_TEXT,	/* u32 length + bytes, length <= max */
	PS_F_PATH,	/* u32 length + a safe relative path */
	PS_F_DEST,	/* u32 length + "" or a safe relative path */
	PS_F_HASH,	/* 16 bytes */
	PS_F_MAGIC,	/* PS_MAGIC_LEN bytes */
	PS_F_REST,	/* every byte left, at least min, at most max */
	PS_F_NAME,	/* u32 length + bytes of [A-Za-z0-9._-] */
	PS_F_LINE	/* u32 length + bytes, no NUL or control byte */
};

struct ps_field_info {
	uint8_t type;		/* enum ps_field_type */
	uint64_t min, max;	/* value (or length) bounds, inclusive */
	const char *set;	/* PS_F_U8: the allowed values, or NULL */
	const char *name;
};

int ps_msg_field(uint8_t type, size_t k, struct ps_field_info *fi);

#endif
