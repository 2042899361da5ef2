/*
 * fuzz_url.c — ps_url_parse on any string (destinations come from the
 * command line, the configuration file and the state database).
 */
#include <stdlib.h>
#include <string.h>

#include "url.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_url u;
	char err[256], *s;

	fuzz_init();
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	err[0] = '\0';
	if (ps_url_parse(s, &u, err, sizeof(err)) == 0) {
		if (u.kind != PS_URL_LOCAL && u.kind != PS_URL_SSH &&
		    u.kind != PS_URL_DAEMON)
			fuzz_fail("parsed URL of no known kind");
		if (u.path == NULL)
			fuzz_fail("parsed URL without a path");
		if (u.kind != PS_URL_LOCAL && (u.host == NULL ||
		    u.host[0] == '\0'))
			fuzz_fail("remote URL without a host");
		if (u.port < 0 || u.port > 65535)
			fuzz_fail("port out of range");
		ps_url_free(&u);
	} else if (err[0] == '\0') {
		fuzz_fail("refused without a reason");
	}
	free(s);
	return 0;
}
