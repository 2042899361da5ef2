/*
 * fuzz_wire.c — what a peer writes, read the way every role reads it:
 * the input goes into a pipe; ps_sess_start greets over it (HELLO both
 * ways, as the console), then ps_sess_recv takes frame after frame (the
 * session itself handles KEEPALIVE, NOTICE and ERROR) and each payload
 * is decoded by ps_msg_decode as the message its type names, until the
 * session fails or the stream ends.
 *
 * Input: the bytes the server role sends (tests/fuzz/gen-corpus records
 * real sessions for the seeds).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"
#include "session.h"
#include "fuzz.h"

#define MAX_FRAMES 512

/* Room for any message struct. */
union any_msg {
	struct ps_msg_hello hello;
	struct ps_msg_error error;
	struct ps_msg_notice notice;
	struct ps_msg_open open;
	struct ps_msg_mfdata mfdata;
	struct ps_msg_mfend mfend;
	struct ps_msg_mkdir mkdir;
	struct ps_msg_file file;
	struct ps_msg_data data;
	struct ps_msg_sumreq sumreq;
	struct ps_msg_sums sums;
	struct ps_msg_copy copy;
	struct ps_msg_end end;
	struct ps_msg_result result;
	struct ps_msg_delete delete;
	struct ps_msg_meta meta;
	struct ps_msg_doneack doneack;
	struct ps_msg_relay relay;
	struct ps_msg_relaysrc relaysrc;
	struct ps_msg_relayto relayto;
	struct ps_msg_relayrow relayrow;
	struct ps_msg_relayres relayres;
	struct ps_msg_empty empty;
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf payload = { 0 };
	struct ps_sess s;
	union any_msg m;
	char why[256];
	uint8_t type;
	int rfd, wfd, i, r;

	fuzz_init();
	rfd = fuzz_pipe(data, size);
	if ((wfd = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
		fuzz_fail("open /dev/null");
	r = ps_sess_start(&s, PS_ROLE_CONSOLE, rfd, wfd, 0, "fuzz");
	for (i = 0; r == PS_OK && i < MAX_FRAMES; i++) {
		r = ps_sess_recv(&s, &type, &payload);
		why[0] = '\0';
		if (r == PS_OK && ps_msg_decode(type, payload.p, payload.len,
		    &m, why, sizeof(why)) != 0 && why[0] == '\0')
			fuzz_fail("a message refused without a reason");
	}
	if (r != PS_OK && ps_sess_rc(&s) == PS_OK)
		fuzz_fail("the session failed without recording it");
	(void)ps_sess_close(&s, NULL);
	buf_free(&payload);
	close(rfd);
	close(wfd);
	return 0;
}
