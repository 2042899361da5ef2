/*
 * fuzz_conf.c — ps_conf_load on any file contents (the configuration
 * file is edited by hand). The file is a memfd, read by its
 * /proc/self/fd path as a named file would be.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "ps.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_conf c;
	char path[64];
	size_t i;
	int fd, r;

	fuzz_init();
	fd = fuzz_memfd(data, size, "fuzz-conf");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = ps_conf_load(path, &c);
	if (r == PS_OK) {
		if (c.jobs < 1 || c.jobs > PS_JOBS_MAX)
			fuzz_fail("accepted jobs out of range");
		for (i = 0; i < c.ncomp; i++)
			if (!ps_conf_name_ok(c.comp[i].name) ||
			    c.comp[i].path == NULL || c.comp[i].dest == NULL)
				fuzz_fail("accepted an incomplete component");
		ps_conf_free(&c);
	} else if (r != PS_EUSAGE) {
		fuzz_fail("unexpected result");
	}
	close(fd);
	return 0;
}
