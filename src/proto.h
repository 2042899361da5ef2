/*
 * proto.h — the messages of the patchsync protocol, version 1
 * (man/patchsync-protocol.5). wire.h frames them; this header says what
 * each frame means. Integers are little-endian; "str" is a u32 length and
 * that many bytes; paths are relative to the component directory and
 * pass ps_path_ok().
 *
 * A session: both sides send HELLO. The console then sends OPEN for one
 * component at a time. The side that receives files (the server for a
 * push, the console for a pull) answers with its MANIFEST; the sending
 * side compares, and sends the files; the receiver answers each with
 * RESULT. DONE closes the component, BYE the session.
 */
#ifndef PS_PROTO_H
#define PS_PROTO_H

#include <stdint.h>

/* HELLO is 1 (wire.h). */
#define PS_MSG_ERROR	2   /* u32 code (a ps_result), str message: fatal */
#define PS_MSG_NOTICE	3   /* str message: for the user, e.g. waiting */

#define PS_MSG_OPEN	10  /* u8 mode, u32 flags, str dest */
#define PS_MSG_MFDATA	11  /* bytes: the next piece of an encoded manifest */
#define PS_MSG_MFEND	12  /* (empty): the manifest is complete */

#define PS_MSG_MKDIR	20  /* str path, u32 mode */
#define PS_MSG_FILE	21  /* u32 id, str path, u64 size, i64 mtime, u32 nsec,
			       u32 mode, 16 bytes XXH3-128: a new version of path
			       follows in DATA / COPY / DELTA frames */
#define PS_MSG_DATA	22  /* u32 id, u64 offset, u32 raw length, u8 codec,
			       bytes: literal data (codec 0 raw, 1 zstd) */
#define PS_MSG_SIGREQ	23  /* u32 id, str path, u32 n, n x (u64 off, u64 len,
			       u32 block_len): sign these regions of path */
#define PS_MSG_SIG	24  /* u32 id, u32 region, u8 last, bytes: signature
			       (librsync format) of one region, in pieces */
#define PS_MSG_COPY	25  /* u32 id, u64 offset, u64 len, u64 basis offset:
			       copy from the receiver's current version */
#define PS_MSG_DELTA	26  /* u32 id, u32 piece, u64 offset, u64 len, u64 basis
			       offset, u64 basis len, u8 last, bytes: librsync
			       delta against that basis region, in pieces */
#define PS_MSG_END	27  /* u32 id: everything of file id was sent */
#define PS_MSG_RESULT	28  /* u32 id, u32 code, str message: file id is in
			       place (code 0) or not */
#define PS_MSG_DELETE	29  /* str path, u8 type ('f' or 'd') */
#define PS_MSG_META	30  /* str path, u8 type, u32 mode, i64 mtime, u32 nsec:
			       content is current; set mode and time */
#define PS_MSG_DONE	31  /* (empty): the component is complete */
#define PS_MSG_DONEACK	32  /* u32 code, u64 files, u64 deleted, u32 errors */
#define PS_MSG_BYE	33  /* (empty): end of session */

/* OPEN modes. */
#define PS_OPEN_PUSH	'p'	/* the server receives */
#define PS_OPEN_REPORT	'r'	/* the server sends its manifest only */
#define PS_OPEN_PULL	'g'	/* the server sends files (refresh) */

/* OPEN flags. */
#define PS_OF_NOWAIT	0x1	/* fail at once when ROOT is locked */
#define PS_OF_CHECKSUM	0x2	/* re-read every file (no cache) */
#define PS_OF_DRYRUN	0x4	/* change nothing */
#define PS_OF_DELETE	0x8	/* pull: remove what the sender lacks */

/* DATA codecs. */
#define PS_CODEC_RAW	0
#define PS_CODEC_ZSTD	1

/* Limits enforced on what a peer sends. */
#define PS_MAX_REGIONS	4096		/* regions per SIGREQ */
#define PS_MAX_INFLIGHT	(1u << 20)	/* file ids a session may use */
#define PS_MAX_MANIFEST	(1ull << 32)	/* bytes of an encoded manifest */
#define PS_DATA_CHUNK	(1u << 20)	/* raw bytes per DATA frame */

#endif
