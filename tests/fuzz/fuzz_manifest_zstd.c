/*
 * fuzz_manifest_zstd.c — a server's manifest as the console receives it:
 * after the greeting, MFDATA frames of zstd-compressed manifest and an
 * MFEND, read by ps_sess_recv_manifest (bounded decompression, then the
 * entries one by one, checked as they come).
 *
 * Input: the bytes the server role sends (HELLO, MFDATA..., MFEND, and
 * whatever follows); tests/fuzz/gen-corpus records real sessions.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "manifest.h"
#include "session.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_manifest mf;
	struct ps_sess s;
	size_t i;
	int rfd, wfd, r;

	fuzz_init();
	rfd = fuzz_pipe(data, size);
	if ((wfd = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
		fuzz_fail("open /dev/null");
	memset(&mf, 0, sizeof(mf));
	r = ps_sess_start(&s, PS_ROLE_CONSOLE, rfd, wfd, 0, "fuzz");
	if (r == PS_OK) {
		r = ps_sess_recv_manifest(&s, &mf);
		/* What it accepts is a manifest: sorted, unique paths. */
		for (i = 1; r == PS_OK && i < mf.n; i++)
			if (ps_path_cmp(mf.e[i - 1].path, mf.e[i - 1].path_len,
			    mf.e[i].path, mf.e[i].path_len) >= 0)
				fuzz_fail("accepted a manifest out of order");
		ps_manifest_free(&mf);
	}
	(void)ps_sess_close(&s, NULL);
	close(rfd);
	close(wfd);
	return 0;
}
