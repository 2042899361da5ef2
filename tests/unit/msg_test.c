#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

/* Every message type there is. */
static const uint8_t types[] = {
	PS_MSG_HELLO, PS_MSG_ERROR, PS_MSG_NOTICE, PS_MSG_KEEPALIVE,
	PS_MSG_OPEN, PS_MSG_MFDATA, PS_MSG_MFEND, PS_MSG_MKDIR, PS_MSG_FILE,
	PS_MSG_DATA, PS_MSG_SUMREQ, PS_MSG_SUMS, PS_MSG_COPY, PS_MSG_END,
	PS_MSG_RESULT, PS_MSG_DELETE, PS_MSG_META, PS_MSG_DONE,
	PS_MSG_DONEACK, PS_MSG_BYE, PS_MSG_RELAY, PS_MSG_RELAYSRC,
	PS_MSG_RELAYTO, PS_MSG_RELAYROW, PS_MSG_RELAYRES, PS_MSG_RELAYEND
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

/* Room for any message struct. */
union any {
	struct ps_msg_hello hello;
	struct ps_msg_file file;
	struct ps_msg_sumreq sumreq;
	struct ps_msg_sums sums;
	max_align_t align;
	unsigned char bytes[512];
};
_Static_assert(sizeof(struct ps_msg_relayrow) <= 512 &&
    sizeof(struct ps_msg_relayres) <= 512 &&
    sizeof(struct ps_msg_relayto) <= 512 &&
    sizeof(struct ps_msg_relay) <= 512 &&
    sizeof(struct ps_msg_open) <= 512 &&
    sizeof(struct ps_msg_result) <= 512, "union any holds every message");

/* REST bytes of message TYPE that fit its other fields. */
static size_t
rest_len(uint8_t type, const struct ps_field_info *fi, int variant)
{
	if (type == PS_MSG_SUMREQ)
		return variant ? 32 : 16;	/* 1 or 2 regions */
	if (type == PS_MSG_SUMS)
		return variant ? 24 : 12;	/* whole records */
	return fi->min + (variant ? 40 : 3);
}

/* A valid value of field FI, appended to B (VARIANT picks among a few). */
static void
put_field(struct buf *b, uint8_t type, const struct ps_field_info *fi,
    int variant)
{
	static const char *paths[] = { "a", "dir/KB5034441.msu",
	    "with space/\xc3\xa9t\xc3\xa9" };
	unsigned char raw[64];
	const char *p;
	size_t n;

	switch (fi->type) {
	case PS_F_U8:
		buf_addc(b, fi->set != NULL ? (unsigned char)fi->set[0] :
		    (unsigned char)(variant ? fi->max : fi->min));
		break;
	case PS_F_U32:
		buf_add_u32(b, (uint32_t)(variant ? fi->max : fi->min));
		break;
	case PS_F_FLAGS:
		buf_add_u32(b, (uint32_t)(variant ? fi->max : 0));
		break;
	case PS_F_U64:
		buf_add_u64(b, variant && fi->max < UINT64_MAX ? fi->max :
		    fi->min);
		break;
	case PS_F_I64:
		buf_add_u64(b, variant ? (uint64_t)-5 : 1700000000);
		break;
	case PS_F_TEXT:
		p = variant ? "patchsync: warning: \xe2\x9c\x93" : "ok";
		buf_add_u32(b, (uint32_t)strlen(p));
		buf_addstr(b, p);
		break;
	case PS_F_PATH:
	case PS_F_DEST:
		p = fi->type == PS_F_DEST && variant == 0 ? "" :
		    paths[variant % 3];
		buf_add_u32(b, (uint32_t)strlen(p));
		buf_addstr(b, p);
		break;
	case PS_F_HASH:
		memset(raw, 0xa5, 16);
		buf_add(b, raw, 16);
		break;
	case PS_F_MAGIC:
		buf_add(b, PS_MAGIC, PS_MAGIC_LEN);
		break;
	case PS_F_NAME:
		p = variant ? "dist-5.example_A" : "a";
		buf_add_u32(b, (uint32_t)strlen(p));
		buf_addstr(b, p);
		break;
	case PS_F_LINE:
		p = variant ? "ssh -p 2222 -o 'ConnectTimeout=5' \xc3\xa9" :
		    "x";
		buf_add_u32(b, (uint32_t)strlen(p));
		buf_addstr(b, p);
		break;
	case PS_F_REST:
		n = rest_len(type, fi, variant);
		memset(raw, 0, sizeof(raw));
		if (type == PS_MSG_SUMREQ) { /* regions: offset 0, length 1 */
			raw[8] = 1;
			raw[24] = 1;
		} else if (type != PS_MSG_SUMS) {
			memset(raw, 'z', sizeof(raw));
		}
		buf_add(b, raw, n);
		break;
	}
}

/* Where a RELAYROW's state is: after server, component and path. */
static size_t
row_state_off(const unsigned char *p)
{
	size_t off = 4;

	off += 4 + get_u32le(p + off);
	off += 4 + get_u32le(p + off);
	return off;
}

/* A valid payload of TYPE; *HEAD gets the bytes before a REST field. */
static void
valid(uint8_t type, int variant, struct buf *b, size_t *head, int *rest)
{
	struct ps_field_info fi;
	size_t k;

	b->len = 0;
	*rest = 0;
	*head = 0;
	for (k = 0; ps_msg_field(type, k, &fi) == 0; k++) {
		if (fi.type == PS_F_REST) {
			*head = b->len;
			*rest = 1;
		}
		put_field(b, type, &fi, variant);
	}
	if (!*rest)
		*head = b->len;
	/* Fields that depend on each other. */
	if (type == PS_MSG_DATA) {	/* raw: the data is raw_len long */
		size_t len = b->len - *head;

		put_u32le(b->p + 12, (uint32_t)len);
		b->p[16] = PS_CODEC_RAW;
	}
	if (type == PS_MSG_SUMREQ) {	/* nregions: the regions given */
		size_t off = 4 + 4 + get_u32le(b->p + 4) + 4 + 4;

		put_u32le(b->p + off, variant ? 2 : 1);
		put_u32le(b->p + off - 4, PS_SUMBLOCK_MIN);
		put_u32le(b->p + off - 8, 0);
	}
	if (type == PS_MSG_COPY)	/* off + len within range */
		put_u64le(b->p + 4, 0);
	if (type == PS_MSG_RELAY)	/* max_delete: -1 or more */
		put_u64le(b->p + 7, variant ? (uint64_t)-1 : 10);
	if (type == PS_MSG_RELAYROW)	/* out-of-date: both sides */
		b->p[row_state_off(b->p)] = PS_RELAY_ROW_OUTDATED;
	if (type == PS_MSG_RELAYRES && variant == 0)	/* failed, with why */
		put_u32le(b->p + 4, PS_EPEER);
}

static int
decodes(uint8_t type, const void *p, size_t n)
{
	union any m;
	char why[256];

	memset(&m, 0, sizeof(m));
	return ps_msg_decode(type, p, n, &m, why, sizeof(why)) == 0;
}

/* Bytes -> struct -> bytes gives the same bytes, for every message. */
static void
test_round_trip(void **state)
{
	struct buf b = { 0 }, out = { 0 };
	union any m;
	char why[256];
	size_t i, head;
	int v, rest;

	(void)state;
	for (i = 0; i < NTYPES; i++) {
		for (v = 0; v < 2; v++) {
			valid(types[i], v, &b, &head, &rest);
			memset(&m, 0, sizeof(m));
			if (ps_msg_decode(types[i], b.p, b.len, &m, why,
			    sizeof(why)) != 0)
				fail_msg("%s variant %d: %s",
				    ps_msg_name(types[i]), v, why);
			out.len = 0;
			ps_msg_encode(types[i], &m, &out);
			assert_int_equal(out.len, b.len);
			if (b.len > 0)
				assert_memory_equal(out.p, b.p, b.len);
		}
		assert_string_not_equal(ps_msg_name(types[i]), "unknown");
	}
	buf_free(&b);
	buf_free(&out);
}

/* Every cut inside the fixed fields fails; bytes past the end fail. */
static void
test_truncated_and_oversized(void **state)
{
	struct buf b = { 0 };
	struct ps_field_info fi;
	size_t i, k, n, head, restmin = 0;
	int rest;

	(void)state;
	for (i = 0; i < NTYPES; i++) {
		valid(types[i], 1, &b, &head, &rest);
		for (k = 0; ps_msg_field(types[i], k, &fi) == 0; k++)
			if (fi.type == PS_F_REST)
				restmin = fi.min;
		for (n = 0; n < head + (rest ? restmin : 0); n++)
			if (decodes(types[i], b.p, n))
				fail_msg("%s decoded from %zu of %zu bytes",
				    ps_msg_name(types[i]), n, b.len);
		if (!rest) {
			buf_addc(&b, 0);
			if (decodes(types[i], b.p, b.len))
				fail_msg("%s decoded with a byte too many",
				    ps_msg_name(types[i]));
		}
	}
	/* An unknown type is refused. */
	assert_false(decodes(200, "", 0));
	buf_free(&b);
}

/* Rebuild TYPE's valid payload with field K replaced by RAW. */
static void
with_field(uint8_t type, size_t k, const void *raw, size_t rawlen,
    struct buf *b)
{
	struct ps_field_info fi;
	struct buf one = { 0 };
	size_t j;

	b->len = 0;
	for (j = 0; ps_msg_field(type, j, &fi) == 0; j++) {
		if (j == k) {
			buf_add(b, raw, rawlen);
			continue;
		}
		one.len = 0;
		put_field(&one, type, &fi, 0);
		if (type == PS_MSG_DATA && j == 2) /* raw_len: the data's */
			put_u32le(one.p, 4);
		if (type == PS_MSG_SUMREQ && j == 4)	/* nregions */
			put_u32le(one.p, 1);
		if (type == PS_MSG_RELAYROW && j == 3)	/* both sides */
			one.p[0] = PS_RELAY_ROW_OUTDATED;
		if (type == PS_MSG_RELAYRES && j == 1)	/* failed, with why */
			put_u32le(one.p, PS_EPEER);
		buf_add(b, one.p, one.len);
	}
	buf_free(&one);
}

/* Each bounded field, one past its bound, fails; unsafe paths too. */
static void
test_out_of_range(void **state)
{
	static const char *unsafe[] = { "..", "/etc/passwd", "a/../../b",
	    "a//b", "a/", ".", "a\0b" };
	static const size_t unsafe_len[] = { 2, 11, 9, 4, 2, 1, 3 };
	struct ps_field_info fi;
	struct buf b = { 0 }, raw = { 0 };
	size_t i, k, u;
	int tested = 0;

	(void)state;
	for (i = 0; i < NTYPES; i++) {
		for (k = 0; ps_msg_field(types[i], k, &fi) == 0; k++) {
			raw.len = 0;
			switch (fi.type) {
			case PS_F_U8:
				if (fi.set != NULL)
					buf_addc(&raw, '?');
				else if (fi.max < 255)
					buf_addc(&raw, (uint8_t)fi.max + 1);
				else
					continue;
				break;
			case PS_F_U32:
				if (fi.max < UINT32_MAX)
					buf_add_u32(&raw, (uint32_t)fi.max + 1);
				else if (fi.min > 0)
					buf_add_u32(&raw, (uint32_t)fi.min - 1);
				else
					continue;
				break;
			case PS_F_FLAGS:
				buf_add_u32(&raw, (uint32_t)fi.max + 1);
				break;
			case PS_F_U64:
				if (fi.max == UINT64_MAX)
					continue;
				buf_add_u64(&raw, fi.max + 1);
				break;
			case PS_F_TEXT:
				buf_add_u32(&raw, (uint32_t)fi.max + 1);
				break;
			case PS_F_PATH:
			case PS_F_DEST:
				for (u = 0; u < 7; u++) {
					raw.len = 0;
					buf_add_u32(&raw, (uint32_t)
					    unsafe_len[u]);
					buf_add(&raw, unsafe[u], unsafe_len[u]);
					with_field(types[i], k, raw.p, raw.len,
					    &b);
					if (decodes(types[i], b.p, b.len))
						fail_msg("%s accepted path %s",
						    ps_msg_name(types[i]),
						    unsafe[u]);
					tested++;
				}
				continue;
			case PS_F_MAGIC:
				buf_add(&raw, "RSYNC\0\0\0", 8);
				break;
			case PS_F_NAME:
				buf_add_u32(&raw, 5);
				buf_add(&raw, "a/b c", 5);
				break;
			case PS_F_LINE:
				buf_add_u32(&raw, 3);
				buf_add(&raw, "a\nb", 3);
				break;
			default:
				continue;
			}
			with_field(types[i], k, raw.p, raw.len, &b);
			if (decodes(types[i], b.p, b.len))
				fail_msg("%s accepted an out-of-range %s",
				    ps_msg_name(types[i]), fi.name);
			tested++;
		}
	}
	assert_true(tested > 40);
	buf_free(&b);
	buf_free(&raw);
}

/* Rules across fields, and the reasons given. */
static void
test_cross_checks(void **state)
{
	struct ps_msg_data d = { 1, 0, 10, PS_CODEC_RAW,
	    { (const unsigned char *)"abc", 3 } };
	unsigned char reg[16] = { 0 };
	struct ps_msg_sumreq q = { 1, { (const unsigned char *)"f", 1 }, 0, 512,
	    2, { reg, 16 } };
	struct ps_msg_sums u = { 1, 0, 1, { reg, 10 } };
	struct ps_msg_copy c = { 1, PS_MAX_FSIZE, 10, 0 };
	struct ps_msg_file f, g;
	struct buf b = { 0 };
	char why[256];

	(void)state;
	ps_msg_encode(PS_MSG_DATA, &d, &b);
	assert_int_equal(ps_msg_decode(PS_MSG_DATA, b.p, b.len, &d, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "DATA"));
	b.len = 0;
	/* Two regions announced, one given; then a region of length 0. */
	ps_msg_encode(PS_MSG_SUMREQ, &q, &b);
	assert_int_equal(ps_msg_decode(PS_MSG_SUMREQ, b.p, b.len, &q, why,
	    sizeof(why)), -1);
	q.nregions = 1;
	b.len = 0;
	ps_msg_encode(PS_MSG_SUMREQ, &q, &b);
	assert_int_equal(ps_msg_decode(PS_MSG_SUMREQ, b.p, b.len, &q, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "out of range"));
	/* Sums come in whole records. */
	b.len = 0;
	ps_msg_encode(PS_MSG_SUMS, &u, &b);
	assert_int_equal(ps_msg_decode(PS_MSG_SUMS, b.p, b.len, &u, why,
	    sizeof(why)), -1);
	b.len = 0;
	ps_msg_encode(PS_MSG_COPY, &c, &b);
	assert_int_equal(ps_msg_decode(PS_MSG_COPY, b.p, b.len, &c, why,
	    sizeof(why)), -1);

	/* The typed pair keeps every field. */
	memset(&f, 0, sizeof(f));
	f.id = 42;
	f.path.p = (const unsigned char *)"dir/KB1.msu";
	f.path.len = 11;
	f.size = 123456789;
	f.mtime = -1;
	f.nsec = 999999999;
	f.mode = 0644;
	memset(f.hash, 7, 16);
	b.len = 0;
	ps_msg_encode(PS_MSG_FILE, &f, &b);
	memset(&g, 0, sizeof(g));
	assert_int_equal(ps_dec_file(&b, &g, why, sizeof(why)), 0);
	assert_int_equal(g.id, 42);
	assert_int_equal(g.path.len, 11);
	assert_memory_equal(g.path.p, "dir/KB1.msu", 11);
	assert_int_equal(g.size, 123456789);
	assert_int_equal(g.mtime, -1);
	assert_int_equal(g.nsec, 999999999);
	assert_int_equal(g.mode, 0644);
	assert_memory_equal(g.hash, f.hash, 16);
	/* A reason names the message and the field. */
	b.p[0] = 0xff;
	b.p[1] = b.p[2] = b.p[3] = 0xff;
	assert_int_equal(ps_dec_file(&b, &g, why, sizeof(why)), -1);
	assert_string_equal(why, "malformed FILE: id is out of range");
	buf_free(&b);
}

/* RELAY..RELAYRES: the rules across their fields. */
static void
test_relay_checks(void **state)
{
	struct ps_msg_relay r = { PS_OPEN_PUSH, PS_OF_DELETE, 1, 0, -1, 4,
	    1, 3 };
	struct ps_msg_relayrow w;
	struct ps_msg_relayres x;
	struct buf b = { 0 };
	char why[256];

	(void)state;
	ps_msg_encode(PS_MSG_RELAY, &r, &b);
	assert_int_equal(ps_dec_relay(&b, &r, why, sizeof(why)), 0);
	assert_int_equal(r.max_delete, -1);
	r.max_delete = -2;
	b.len = 0;
	ps_msg_encode(PS_MSG_RELAY, &r, &b);
	assert_int_equal(ps_dec_relay(&b, &r, why, sizeof(why)), -1);
	assert_string_equal(why, "malformed RELAY: max_delete is out of "
	    "range");
	/* A report deletes nothing. */
	r.max_delete = -1;
	r.mode = PS_OPEN_REPORT;
	b.len = 0;
	ps_msg_encode(PS_MSG_RELAY, &r, &b);
	assert_int_equal(ps_dec_relay(&b, &r, why, sizeof(why)), -1);

	/* A missing file has no server side; an extra one no console side. */
	memset(&w, 0, sizeof(w));
	w.server = 1;
	w.component.p = (const unsigned char *)"patches";
	w.component.len = 7;
	w.path.p = (const unsigned char *)"KB1.msu";
	w.path.len = 7;
	w.state = PS_RELAY_ROW_MISSING;
	w.csize = 10;
	b.len = 0;
	ps_msg_encode(PS_MSG_RELAYROW, &w, &b);
	assert_int_equal(ps_dec_relayrow(&b, &w, why, sizeof(why)), 0);
	w.smtime = 1;
	b.len = 0;
	ps_msg_encode(PS_MSG_RELAYROW, &w, &b);
	assert_int_equal(ps_dec_relayrow(&b, &w, why, sizeof(why)), -1);
	w.state = PS_RELAY_ROW_EXTRA;
	b.len = 0;
	ps_msg_encode(PS_MSG_RELAYROW, &w, &b);
	assert_int_equal(ps_dec_relayrow(&b, &w, why, sizeof(why)), -1);

	/* A result is a result code; a failure says why, a success not. */
	memset(&x, 0, sizeof(x));
	x.server = 2;
	x.code = PS_DIFFER;
	b.len = 0;
	ps_msg_encode(PS_MSG_RELAYRES, &x, &b);
	assert_int_equal(ps_dec_relayres(&b, &x, why, sizeof(why)), -1);
	x.code = PS_EPEER;
	b.len = 0;
	ps_msg_encode(PS_MSG_RELAYRES, &x, &b);
	assert_int_equal(ps_dec_relayres(&b, &x, why, sizeof(why)), -1);
	x.error.p = (const unsigned char *)"timed out";
	x.error.len = 9;
	b.len = 0;
	ps_msg_encode(PS_MSG_RELAYRES, &x, &b);
	assert_int_equal(ps_dec_relayres(&b, &x, why, sizeof(why)), 0);
	x.code = PS_OK;
	b.len = 0;
	ps_msg_encode(PS_MSG_RELAYRES, &x, &b);
	assert_int_equal(ps_dec_relayres(&b, &x, why, sizeof(why)), -1);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_truncated_and_oversized),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_cross_checks),
		cmocka_unit_test(test_relay_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
