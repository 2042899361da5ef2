/*
 * fuzz_wire.c — what a peer writes, read through the wire layer: the
 * input goes into a pipe, which ps_wire_recv reads frame by frame (after
 * ps_wire_hello when the first byte is odd), until the stream fails or
 * ends. The payloads then go through the bounded decoding helpers.
 *
 * Input: mode (1 byte) | the bytes the peer sends.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wire.h"
#include "fuzz.h"

#define MAX_FRAMES 256

static int devnull = -1;

/* Read a payload the way the roles do, with the same helpers. */
static void
decode_payload(const struct buf *p)
{
	struct ps_rd rd;
	size_t len;

	ps_rd_init(&rd, p->p, p->len);
	while (!rd.bad && rd.off < rd.len) {
		switch (ps_rd_u8(&rd) % 5) {
		case 0:
			(void)ps_rd_u32(&rd);
			break;
		case 1:
			(void)ps_rd_u64(&rd);
			break;
		case 2:
			(void)ps_rd_i64(&rd);
			break;
		case 3:
			(void)ps_rd_str(&rd, &len, 4096);
			break;
		default:
			(void)ps_rd_bytes(&rd, rd.len - rd.off);
			break;
		}
	}
	(void)ps_rd_done(&rd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf payload = { 0 };
	struct ps_wire *w;
	uint32_t features;
	uint8_t type, role;
	int pfd[2], cap, i, r = PS_OK;
	size_t n;

	fuzz_init();
	if (size < 1)
		return 0;
	if (devnull == -1 &&
	    (devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
		fuzz_fail("open /dev/null");
	if (pipe2(pfd, O_CLOEXEC) == -1)
		fuzz_fail("pipe2");
	/* The whole input must fit: the writer is this thread. */
	cap = fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20);
	if (cap < 0)
		cap = 65536;
	n = size - 1 < (size_t)cap ? size - 1 : (size_t)cap;
	if (n > 0 && write(pfd[1], data + 1, n) != (ssize_t)n)
		fuzz_fail("write to pipe");
	close(pfd[1]);

	w = ps_wire_new(pfd[0], devnull);
	if (data[0] & 1)
		r = ps_wire_hello(w, PS_ROLE_CONSOLE, 0, &features, &role);
	for (i = 0; r == PS_OK && i < MAX_FRAMES; i++) {
		r = ps_wire_recv(w, &type, &payload);
		if (r == PS_OK)
			decode_payload(&payload);
	}
	if (r != PS_OK && !ps_wire_eof(w) && ps_wire_error(w)[0] == '\0')
		fuzz_fail("the wire failed without a reason");
	(void)ps_wire_bytes_in(w);
	ps_wire_free(w);
	buf_free(&payload);
	close(pfd[0]);
	return 0;
}
