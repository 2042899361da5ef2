/*
 * msg.c — every message's layout, in one table (see msg.h and
 * man/patchsync-protocol.5).
 *
 * A message is a list of fields; each field has a type, its offset in
 * the message's struct, its bounds and its name. One encoder and one
 * decoder walk the table; a message whose fields depend on each other
 * has a small check function on top.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "msg.h"

struct field {
	uint8_t type;		/* enum ps_field_type */
	uint16_t off;		/* offset of the value in the struct */
	uint64_t min, max;
	const char *set;	/* PS_F_U8: allowed values */
	const char *name;
};

struct def {
	uint8_t type;
	const char *name;
	const struct field *f;
	size_t nf;
	/* Rules across fields: NULL, or a reason the message is bad. */
	const char *(*check)(const void *m);
};

#define F(T, S, fld, lo, hi) \
	{ T, offsetof(struct S, fld), lo, hi, NULL, #fld }
#define FSET(S, fld, set) \
	{ PS_F_U8, offsetof(struct S, fld), 0, 255, set, #fld }

#define NSEC_MAX 999999999u
#define MODE_MAX 07777u

static const struct field f_hello[] = {
	F(PS_F_MAGIC, ps_msg_hello, magic, PS_MAGIC_LEN, PS_MAGIC_LEN),
	F(PS_F_U32, ps_msg_hello, version, 0, UINT32_MAX),
	F(PS_F_U32, ps_msg_hello, features, 0, UINT32_MAX),
	FSET(ps_msg_hello, role, "cs"),
	F(PS_F_U32, ps_msg_hello, timeout, 0, PS_TIMEOUT_MAX),
};
static const struct field f_error[] = {
	F(PS_F_U32, ps_msg_error, code, PS_EUSAGE, PS_EINTR),
	F(PS_F_TEXT, ps_msg_error, text, 0, PS_TEXT_MAX),
};
static const struct field f_notice[] = {
	F(PS_F_U8, ps_msg_notice, level, PS_NOTE_INFO, PS_NOTE_ERROR),
	F(PS_F_TEXT, ps_msg_notice, text, 0, PS_TEXT_MAX),
};
static const struct field f_open[] = {
	FSET(ps_msg_open, mode, "prg"),
	F(PS_F_FLAGS, ps_msg_open, flags, 0, PS_OF_ALL),
	F(PS_F_DEST, ps_msg_open, dest, 0, PS_PATH_MAX),
};
static const struct field f_mfdata[] = {
	F(PS_F_REST, ps_msg_mfdata, data, 1, PS_FRAME_MAX),
};
static const struct field f_mfend[] = {
	FSET(ps_msg_mfend, codec, "\x01"),
	F(PS_F_U64, ps_msg_mfend, raw_len, 0, PS_MAX_MANIFEST),
};
static const struct field f_mkdir[] = {
	F(PS_F_PATH, ps_msg_mkdir, path, 1, PS_PATH_MAX),
	F(PS_F_U32, ps_msg_mkdir, mode, 0, MODE_MAX),
};
static const struct field f_file[] = {
	F(PS_F_U32, ps_msg_file, id, 0, PS_MAX_FILE_ID - 1),
	F(PS_F_PATH, ps_msg_file, path, 1, PS_PATH_MAX),
	F(PS_F_U64, ps_msg_file, size, 0, PS_MAX_FSIZE),
	F(PS_F_I64, ps_msg_file, mtime, 0, 0),
	F(PS_F_U32, ps_msg_file, nsec, 0, NSEC_MAX),
	F(PS_F_U32, ps_msg_file, mode, 0, MODE_MAX),
	F(PS_F_HASH, ps_msg_file, hash, 16, 16),
};
static const struct field f_data[] = {
	F(PS_F_U32, ps_msg_data, id, 0, PS_MAX_FILE_ID - 1),
	F(PS_F_U64, ps_msg_data, off, 0, PS_MAX_FSIZE),
	F(PS_F_U32, ps_msg_data, raw_len, 1, PS_DATA_CHUNK),
	F(PS_F_U8, ps_msg_data, codec, PS_CODEC_RAW, PS_CODEC_ZSTD),
	F(PS_F_REST, ps_msg_data, data, 1, PS_FRAME_MAX),
};
static const struct field f_sumreq[] = {
	F(PS_F_U32, ps_msg_sumreq, id, 0, PS_MAX_FILE_ID - 1),
	F(PS_F_PATH, ps_msg_sumreq, path, 1, PS_PATH_MAX),
	F(PS_F_U32, ps_msg_sumreq, round, 0, PS_MAX_ROUNDS - 1),
	F(PS_F_U32, ps_msg_sumreq, block_len, PS_SUMBLOCK_MIN,
	    PS_SUMBLOCK_MAX),
	F(PS_F_U32, ps_msg_sumreq, nregions, 1, PS_MAX_REGIONS),
	F(PS_F_REST, ps_msg_sumreq, regions, 16, 16 * PS_MAX_REGIONS),
};
static const struct field f_sums[] = {
	F(PS_F_U32, ps_msg_sums, id, 0, PS_MAX_FILE_ID - 1),
	F(PS_F_U32, ps_msg_sums, round, 0, PS_MAX_ROUNDS - 1),
	F(PS_F_U8, ps_msg_sums, last, 0, 1),
	F(PS_F_REST, ps_msg_sums, data, 0, PS_FRAME_MAX - 16),
};
static const struct field f_copy[] = {
	F(PS_F_U32, ps_msg_copy, id, 0, PS_MAX_FILE_ID - 1),
	F(PS_F_U64, ps_msg_copy, off, 0, PS_MAX_FSIZE),
	F(PS_F_U64, ps_msg_copy, len, 1, PS_MAX_FSIZE),
	F(PS_F_U64, ps_msg_copy, basis_off, 0, PS_MAX_FSIZE),
};
static const struct field f_end[] = {
	F(PS_F_U32, ps_msg_end, id, 0, PS_MAX_FILE_ID - 1),
};
static const struct field f_result[] = {
	F(PS_F_U32, ps_msg_result, id, 0, PS_MAX_FILE_ID - 1),
	F(PS_F_U32, ps_msg_result, code, PS_OK, PS_EINTR),
	F(PS_F_TEXT, ps_msg_result, text, 0, PS_TEXT_MAX),
};
static const struct field f_delete[] = {
	F(PS_F_PATH, ps_msg_delete, path, 1, PS_PATH_MAX),
	FSET(ps_msg_delete, type, "fd"),
};
static const struct field f_meta[] = {
	F(PS_F_PATH, ps_msg_meta, path, 1, PS_PATH_MAX),
	FSET(ps_msg_meta, type, "fd"),
	F(PS_F_U32, ps_msg_meta, mode, 0, MODE_MAX),
	F(PS_F_I64, ps_msg_meta, mtime, 0, 0),
	F(PS_F_U32, ps_msg_meta, nsec, 0, NSEC_MAX),
};
static const struct field f_doneack[] = {
	F(PS_F_U32, ps_msg_doneack, code, PS_OK, PS_EINTR),
	F(PS_F_U64, ps_msg_doneack, files, 0, UINT64_MAX),
	F(PS_F_U64, ps_msg_doneack, deleted, 0, UINT64_MAX),
	F(PS_F_U32, ps_msg_doneack, errors, 0, UINT32_MAX),
};

static const struct field f_relay[] = {
	FSET(ps_msg_relay, mode, "pr"),
	F(PS_F_FLAGS, ps_msg_relay, flags, 0, PS_OF_ALL),
	F(PS_F_U8, ps_msg_relay, whole, 0, PS_WHOLE_AUTO),
	F(PS_F_U8, ps_msg_relay, extra, 0, 1),
	F(PS_F_I64, ps_msg_relay, max_delete, 0, 0),
	F(PS_F_U32, ps_msg_relay, jobs, 1, PS_RELAY_MAX_JOBS),
	F(PS_F_U32, ps_msg_relay, nsources, 1, PS_RELAY_MAX_SOURCES),
	F(PS_F_U32, ps_msg_relay, nservers, 1, PS_RELAY_MAX_SERVERS),
};
static const struct field f_relaysrc[] = {
	F(PS_F_NAME, ps_msg_relaysrc, component, 1, PS_COMPONENT_MAX),
	F(PS_F_DEST, ps_msg_relaysrc, dest, 0, PS_PATH_MAX),
	F(PS_F_U8, ps_msg_relaysrc, manifest, 0, 1),
};
static const struct field f_relayto[] = {
	F(PS_F_U32, ps_msg_relayto, parent, 0, PS_RELAY_MAX_SERVERS - 1),
	F(PS_F_NAME, ps_msg_relayto, name, 1, PS_NAME_MAX),
	F(PS_F_LINE, ps_msg_relayto, url, 1, PS_CMD_MAX),
	F(PS_F_LINE, ps_msg_relayto, rsh, 0, PS_CMD_MAX),
	F(PS_F_LINE, ps_msg_relayto, remote_path, 0, PS_CMD_MAX),
	F(PS_F_U64, ps_msg_relayto, bwlimit, 0, UINT64_MAX >> 1),
	F(PS_F_U32, ps_msg_relayto, timeout, 0, PS_TIMEOUT_MAX),
};
static const struct field f_relayrow[] = {
	F(PS_F_U32, ps_msg_relayrow, server, 1, PS_RELAY_MAX_SERVERS),
	F(PS_F_NAME, ps_msg_relayrow, component, 0, PS_COMPONENT_MAX),
	F(PS_F_PATH, ps_msg_relayrow, path, 1, PS_PATH_MAX),
	F(PS_F_U8, ps_msg_relayrow, state, PS_RELAY_ROW_MISSING,
	    PS_RELAY_ROW_EXTRA),
	F(PS_F_U64, ps_msg_relayrow, csize, 0, PS_MAX_FSIZE),
	F(PS_F_I64, ps_msg_relayrow, cmtime, 0, 0),
	F(PS_F_HASH, ps_msg_relayrow, chash, 16, 16),
	F(PS_F_U64, ps_msg_relayrow, ssize, 0, PS_MAX_FSIZE),
	F(PS_F_I64, ps_msg_relayrow, smtime, 0, 0),
	F(PS_F_HASH, ps_msg_relayrow, shash, 16, 16),
};
static const struct field f_relayres[] = {
	F(PS_F_U32, ps_msg_relayres, server, 1, PS_RELAY_MAX_SERVERS),
	F(PS_F_U32, ps_msg_relayres, code, PS_OK, PS_EINTR),
	F(PS_F_U64, ps_msg_relayres, files, 0, UINT64_MAX),
	F(PS_F_U64, ps_msg_relayres, deleted, 0, UINT64_MAX),
	F(PS_F_U64, ps_msg_relayres, meta, 0, UINT64_MAX),
	F(PS_F_U64, ps_msg_relayres, literal, 0, UINT64_MAX),
	F(PS_F_U64, ps_msg_relayres, matched, 0, UINT64_MAX),
	F(PS_F_U64, ps_msg_relayres, total, 0, UINT64_MAX),
	F(PS_F_U64, ps_msg_relayres, nsend, 0, UINT64_MAX),
	F(PS_F_U32, ps_msg_relayres, errors, 0, UINT32_MAX),
	F(PS_F_U64, ps_msg_relayres, bytes_sent, 0, UINT64_MAX),
	F(PS_F_U64, ps_msg_relayres, bytes_received, 0, UINT64_MAX),
	F(PS_F_U64, ps_msg_relayres, msec, 0, UINT64_C(1) << 40),
	F(PS_F_TEXT, ps_msg_relayres, error, 0, PS_TEXT_MAX),
};

/* Raw DATA carries exactly raw_len bytes; compressed never more. */
static const char *
check_data(const void *m)
{
	const struct ps_msg_data *d = m;

	if (d->codec == PS_CODEC_RAW && d->data.len != d->raw_len)
		return "raw data length differs from raw_len";
	return NULL;
}

/* Regions and sums come in whole records; regions lie in a file. */
static const char *
check_sumreq(const void *m)
{
	const struct ps_msg_sumreq *q = m;
	uint64_t off, len;
	uint32_t i;

	if (q->regions.len != 16 * (size_t)q->nregions)
		return "regions do not match nregions";
	for (i = 0; i < q->nregions; i++) {
		off = get_u64le(q->regions.p + 16 * (size_t)i);
		len = get_u64le(q->regions.p + 16 * (size_t)i + 8);
		if (off > PS_MAX_FSIZE || len == 0 || len > PS_MAX_FSIZE - off)
			return "a region is out of range";
	}
	return NULL;
}

static const char *
check_sums(const void *m)
{
	const struct ps_msg_sums *s = m;

	return s->data.len % PS_SUM_LEN == 0 ? NULL : "sums are not whole "
	    "records";
}

static const char *
check_copy(const void *m)
{
	const struct ps_msg_copy *c = m;

	return c->len <= PS_MAX_FSIZE - c->off ? NULL : "copy ends past the "
	    "largest file size";
}

static const char *
check_relay(const void *m)
{
	const struct ps_msg_relay *r = m;

	if (r->max_delete < -1)
		return "max_delete is out of range";
	if (r->mode == PS_OPEN_REPORT && (r->flags & ~PS_OF_NOWAIT) != 0)
		return "a report takes no flags but no-wait";
	return NULL;
}

/* A row holds the sides its state says it has, and nothing else. */
static const char *
check_relayrow(const void *m)
{
	static const unsigned char zero[16];
	const struct ps_msg_relayrow *r = m;

	if (r->state == PS_RELAY_ROW_EXTRA && (r->csize != 0 ||
	    r->cmtime != 0 || memcmp(r->chash, zero, 16) != 0))
		return "an extra file has a console side";
	if (r->state == PS_RELAY_ROW_MISSING && (r->ssize != 0 ||
	    r->smtime != 0 || memcmp(r->shash, zero, 16) != 0))
		return "a missing file has a server side";
	return NULL;
}

static const char *
check_relayres(const void *m)
{
	const struct ps_msg_relayres *r = m;

	switch (r->code) {
	case PS_OK:
		return r->error.len == 0 ? NULL : "a success carries an error";
	case PS_EUSAGE:
	case PS_EPARTIAL:
	case PS_EPEER:
	case PS_EVERIFY:
	case PS_EINTR:
		return r->error.len > 0 ? NULL : "a failure carries no reason";
	default:
		return "code is not a result";
	}
}

#define DEF(T, N, tab, chk) { T, N, tab, sizeof(tab) / sizeof(tab[0]), chk }
#define DEF0(T, N) { T, N, NULL, 0, NULL }

static const struct def defs[] = {
	DEF(PS_MSG_HELLO, "HELLO", f_hello, NULL),
	DEF(PS_MSG_ERROR, "ERROR", f_error, NULL),
	DEF(PS_MSG_NOTICE, "NOTICE", f_notice, NULL),
	DEF0(PS_MSG_KEEPALIVE, "KEEPALIVE"),
	DEF(PS_MSG_OPEN, "OPEN", f_open, NULL),
	DEF(PS_MSG_MFDATA, "MFDATA", f_mfdata, NULL),
	DEF(PS_MSG_MFEND, "MFEND", f_mfend, NULL),
	DEF(PS_MSG_MKDIR, "MKDIR", f_mkdir, NULL),
	DEF(PS_MSG_FILE, "FILE", f_file, NULL),
	DEF(PS_MSG_DATA, "DATA", f_data, check_data),
	DEF(PS_MSG_SUMREQ, "SUMREQ", f_sumreq, check_sumreq),
	DEF(PS_MSG_SUMS, "SUMS", f_sums, check_sums),
	DEF(PS_MSG_COPY, "COPY", f_copy, check_copy),
	DEF(PS_MSG_END, "END", f_end, NULL),
	DEF(PS_MSG_RESULT, "RESULT", f_result, NULL),
	DEF(PS_MSG_DELETE, "DELETE", f_delete, NULL),
	DEF(PS_MSG_META, "META", f_meta, NULL),
	DEF0(PS_MSG_DONE, "DONE"),
	DEF(PS_MSG_DONEACK, "DONEACK", f_doneack, NULL),
	DEF0(PS_MSG_BYE, "BYE"),
	DEF(PS_MSG_RELAY, "RELAY", f_relay, check_relay),
	DEF(PS_MSG_RELAYSRC, "RELAYSRC", f_relaysrc, NULL),
	DEF(PS_MSG_RELAYTO, "RELAYTO", f_relayto, NULL),
	DEF(PS_MSG_RELAYROW, "RELAYROW", f_relayrow, check_relayrow),
	DEF(PS_MSG_RELAYRES, "RELAYRES", f_relayres, check_relayres),
	DEF0(PS_MSG_RELAYEND, "RELAYEND"),
};

static const struct def *
lookup(uint8_t type)
{
	size_t i;

	for (i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
		if (defs[i].type == type)
			return &defs[i];
	return NULL;
}

const char *
ps_msg_name(uint8_t type)
{
	const struct def *d = lookup(type);

	return d != NULL ? d->name : "unknown";
}

int
ps_msg_field(uint8_t type, size_t k, struct ps_field_info *fi)
{
	const struct def *d = lookup(type);

	if (d == NULL || k >= d->nf)
		return -1;
	fi->type = d->f[k].type;
	fi->min = d->f[k].min;
	fi->max = d->f[k].max;
	fi->set = d->f[k].set;
	fi->name = d->f[k].name;
	return 0;
}

/* ---- encoding ---- */

#define AT(m, f, T) ((T *)(void *)((char *)(m) + (f)->off))
#define CAT(m, f, T) ((const T *)(const void *)((const char *)(m) + (f)->off))

/* Everything but a trailing REST field; *REST gets that field, if any. */
static void
encode_head(const struct def *d, const void *m, struct buf *out,
    const struct ps_bytes **rest)
{
	const struct ps_bytes *b;
	size_t i;

	*rest = NULL;
	for (i = 0; i < d->nf; i++) {
		const struct field *f = &d->f[i];

		switch (f->type) {
		case PS_F_U8:
			buf_addc(out, *CAT(m, f, uint8_t));
			break;
		case PS_F_U32:
		case PS_F_FLAGS:
			buf_add_u32(out, *CAT(m, f, uint32_t));
			break;
		case PS_F_U64:
			buf_add_u64(out, *CAT(m, f, uint64_t));
			break;
		case PS_F_I64:
			buf_add_u64(out, (uint64_t)*CAT(m, f, int64_t));
			break;
		case PS_F_TEXT:
		case PS_F_PATH:
		case PS_F_DEST:
		case PS_F_NAME:
		case PS_F_LINE:
			b = CAT(m, f, struct ps_bytes);
			buf_add_u32(out, (uint32_t)b->len);
			buf_add(out, b->p, b->len);
			break;
		case PS_F_HASH:
			buf_add(out, CAT(m, f, unsigned char), 16);
			break;
		case PS_F_MAGIC:
			buf_add(out, CAT(m, f, struct ps_bytes)->p,
			    PS_MAGIC_LEN);
			break;
		case PS_F_REST:
			*rest = CAT(m, f, struct ps_bytes);
			break;
		}
	}
}

void
ps_msg_encode(uint8_t type, const void *m, struct buf *out)
{
	const struct def *d = lookup(type);
	const struct ps_bytes *rest;

	if (d == NULL)
		return;
	encode_head(d, m, out, &rest);
	if (rest != NULL)
		buf_add(out, rest->p, rest->len);
}

/*
 * No fewer bytes than encode_head makes of M: 16 for a fixed field, a
 * length and its bytes for a variable one.
 */
static size_t
head_max(const struct def *d, const void *m)
{
	size_t i, n = 0;

	for (i = 0; i < d->nf; i++) {
		const struct field *f = &d->f[i];

		switch (f->type) {
		case PS_F_TEXT:
		case PS_F_PATH:
		case PS_F_DEST:
		case PS_F_NAME:
		case PS_F_LINE:
			n += 4 + CAT(m, f, struct ps_bytes)->len;
			break;
		case PS_F_REST:
			break;
		default:
			n += 16;
		}
	}
	return n;
}

/* Send M: its tail from memory, or (FD >= 0) the file's bytes at OFF. */
static int
msg_send(struct ps_wire *w, uint8_t type, const void *m, int fd, uint64_t off)
{
	const struct def *d = lookup(type);
	const struct ps_bytes *rest;
	unsigned char small[256];
	struct buf head = { 0 };
	int rc;

	if (d == NULL)
		return PS_EUSAGE;
	if (d->nf == 0)
		return ps_wire_send(w, type, NULL, 0);
	/*
	 * Most headers are small: build them on the stack. One with a long
	 * path or text goes to the heap (a buf grows by realloc).
	 */
	if (head_max(d, m) <= sizeof(small)) {
		head.p = small;
		head.cap = sizeof(small);
	}
	encode_head(d, m, &head, &rest);
	if (fd >= 0)
		rc = ps_wire_send_file(w, type, head.p, head.len, fd, off,
		    rest != NULL ? rest->len : 0);
	else
		rc = ps_wire_send2(w, type, head.p, head.len,
		    rest != NULL ? rest->p : NULL,
		    rest != NULL ? rest->len : 0);
	if (head.p != small)
		buf_free(&head);
	return rc;
}

int
ps_msg_send(struct ps_wire *w, uint8_t type, const void *m)
{
	return msg_send(w, type, m, -1, 0);
}

int
ps_msg_send_file(struct ps_wire *w, uint8_t type, const void *m, int fd,
    uint64_t off)
{
	return msg_send(w, type, m, fd, off);
}

/* ---- decoding ---- */

static int
bad(char *why, size_t whylen, const struct def *d, const struct field *f,
    const char *what)
{
	if (f != NULL)
		snprintf(why, whylen, "malformed %s: %s %s", d->name, f->name,
		    what);
	else
		snprintf(why, whylen, "malformed %s: %s", d->name, what);
	return -1;
}

static int
in_set(const char *set, uint8_t v)
{
	size_t i;

	for (i = 0; set[i] != '\0'; i++)
		if ((uint8_t)set[i] == v)
			return 1;
	return 0;
}

/* One line of text that becomes a C string: no NUL, no control byte. */
static int
line_ok(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	return 1;
}

static int
dec_bytes(struct ps_rd *rd, const struct def *d, const struct field *f,
    void *m, char *why, size_t whylen)
{
	struct ps_bytes *b = AT(m, f, struct ps_bytes);
	const char *p;
	size_t len, left;

	switch (f->type) {
	case PS_F_HASH:
		if ((p = (const char *)ps_rd_bytes(rd, 16)) == NULL)
			return bad(why, whylen, d, f, "is truncated");
		memcpy(AT(m, f, unsigned char), p, 16);
		return 0;
	case PS_F_MAGIC:
		b->p = ps_rd_bytes(rd, PS_MAGIC_LEN);
		b->len = PS_MAGIC_LEN;
		if (b->p == NULL)
			return bad(why, whylen, d, f, "is truncated");
		if (memcmp(b->p, PS_MAGIC, PS_MAGIC_LEN) != 0)
			return bad(why, whylen, d, f, "is not patchsync's");
		return 0;
	case PS_F_REST:
		left = rd->len - rd->off;
		if (left < f->min || left > f->max)
			return bad(why, whylen, d, f, left < f->min ?
			    "is too short" : "is too long");
		b->p = ps_rd_bytes(rd, left);
		b->len = left;
		return 0;
	}
	p = ps_rd_str(rd, &len, f->max);
	if (p == NULL)
		return bad(why, whylen, d, f, rd->off + 4 <= rd->len &&
		    get_u32le(rd->p + rd->off) > f->max ? "is too long" :
		    "is truncated");
	if (len < f->min)
		return bad(why, whylen, d, f, "is too short");
	if (f->type == PS_F_PATH && !ps_path_ok(p, len))
		return bad(why, whylen, d, f, "is not a safe relative path");
	if (f->type == PS_F_DEST && len > 0 && !ps_path_ok(p, len))
		return bad(why, whylen, d, f, "is not a safe relative path");
	if (f->type == PS_F_NAME && !ps_name_chars_ok(p, len))
		return bad(why, whylen, d, f, "holds a character a name may "
		    "not");
	if (f->type == PS_F_LINE && !line_ok(p, len))
		return bad(why, whylen, d, f, "holds a control character");
	b->p = (const unsigned char *)p;
	b->len = len;
	return 0;
}

static int
dec_field(struct ps_rd *rd, const struct def *d, const struct field *f,
    void *m, char *why, size_t whylen)
{
	uint64_t v;

	switch (f->type) {
	case PS_F_U8:
		v = ps_rd_u8(rd);
		if (!rd->bad)
			*AT(m, f, uint8_t) = (uint8_t)v;
		if (!rd->bad && f->set != NULL && !in_set(f->set, (uint8_t)v))
			return bad(why, whylen, d, f, "has an unknown value");
		break;
	case PS_F_U32:
	case PS_F_FLAGS:
		v = ps_rd_u32(rd);
		if (!rd->bad)
			*AT(m, f, uint32_t) = (uint32_t)v;
		if (!rd->bad && f->type == PS_F_FLAGS) {
			if ((v & ~f->max) != 0)
				return bad(why, whylen, d, f,
				    "has unknown bits");
			return 0;
		}
		break;
	case PS_F_U64:
		v = ps_rd_u64(rd);
		if (!rd->bad)
			*AT(m, f, uint64_t) = v;
		break;
	case PS_F_I64:
		*AT(m, f, int64_t) = ps_rd_i64(rd);
		return rd->bad ? bad(why, whylen, d, f, "is truncated") : 0;
	default:
		return dec_bytes(rd, d, f, m, why, whylen);
	}
	if (rd->bad)
		return bad(why, whylen, d, f, "is truncated");
	if (f->set == NULL && (v < f->min || v > f->max))
		return bad(why, whylen, d, f, "is out of range");
	return 0;
}

int
ps_msg_decode(uint8_t type, const void *p, size_t len, void *m, char *why,
    size_t whylen)
{
	const struct def *d = lookup(type);
	const char *reason;
	struct ps_rd rd;
	size_t i;

	if (d == NULL) {
		snprintf(why, whylen, "unknown message type %u", type);
		return -1;
	}
	ps_rd_init(&rd, p, len);
	for (i = 0; i < d->nf; i++)
		if (dec_field(&rd, d, &d->f[i], m, why, whylen) != 0)
			return -1;
	if (rd.off != rd.len)
		return bad(why, whylen, d, NULL, "has bytes after its last "
		    "field");
	if (d->check != NULL && (reason = d->check(m)) != NULL)
		return bad(why, whylen, d, NULL, reason);
	return 0;
}
