/* Unit tests for path checks and escaping (src/util.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ps.h"

static void
test_path_ok(void **state)
{
	static const char *good[] = { "a", "a/b", "a b/c d", "..a", "a..",
	    ".hidden", "a/.b", "x/...", NULL };
	static const char *bad[] = { "", "/a", "a/", "a//b", ".", "..",
	    "a/..", "../a", "a/../b", "a/./b", "./a", NULL };
	char big[PS_PATH_MAX + 2];
	size_t i;

	(void)state;
	for (i = 0; good[i] != NULL; i++)
		assert_true(ps_path_ok(good[i], strlen(good[i])));
	for (i = 0; bad[i] != NULL; i++)
		if (ps_path_ok(bad[i], strlen(bad[i])))
			fail_msg("accepted unsafe path '%s'", bad[i]);
	assert_false(ps_path_ok("a\0b", 3));		/* NUL inside */
	memset(big, 'a', sizeof(big));
	assert_true(ps_path_ok(big, PS_PATH_MAX));
	assert_false(ps_path_ok(big, PS_PATH_MAX + 1));
}

static void
check_round_trip(const char *p, size_t len, const char *want)
{
	struct buf b = { 0 };
	char *e = ps_escape(p, len);

	if (want != NULL)
		assert_string_equal(e, want);
	assert_null(strchr(e, '\n'));
	assert_int_equal(ps_unescape(e, &b), 0);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.p, p, len);
	buf_free(&b);
	free(e);
}

static void
test_escape(void **state)
{
	unsigned char all[256];
	size_t i;

	(void)state;
	check_round_trip("plain name.msu", 14, "plain name.msu");
	check_round_trip("a\nb", 3, "a\\nb");
	check_round_trip("tab\there", 8, "tab\\there");
	check_round_trip("back\\slash", 10, "back\\\\slash");
	check_round_trip("\xff", 1, "\\xff");
	check_round_trip("caf\xc3\xa9", 5, "caf\xc3\xa9");	/* UTF-8 kept */
	check_round_trip("\xc3", 1, "\\xc3");		/* truncated UTF-8 */
	check_round_trip("\xc0\xaf", 2, "\\xc0\\xaf");	/* overlong */
	check_round_trip("\xed\xa0\x80", 3, "\\xed\\xa0\\x80"); /* surrogate */
	check_round_trip("\x7f\x01", 2, "\\x7f\\x01");
	check_round_trip("\xc2\x85", 2, "\\xc2\\x85");	/* C1 control */
	for (i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)i;
	check_round_trip((const char *)all, sizeof(all), NULL);
}

static void
test_unescape_bad(void **state)
{
	static const char *bad[] = { "\\", "a\\q", "\\x", "\\x1", "\\xzz",
	    NULL };
	size_t i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		struct buf b = { 0 };

		assert_int_equal(ps_unescape(bad[i], &b), -1);
		buf_free(&b);
	}
}

static void
test_buf_le(void **state)
{
	struct buf b = { 0 };
	size_t i;

	(void)state;
	buf_add_u32(&b, 0x01020304);
	buf_add_u64(&b, 0x1122334455667788ULL);
	assert_int_equal(b.len, 12);
	assert_int_equal(b.p[0], 0x04);
	assert_int_equal(get_u32le(b.p), 0x01020304);
	assert_true(get_u64le(b.p + 4) == 0x1122334455667788ULL);
	for (i = 0; i < 100000; i++)
		buf_addc(&b, (unsigned char)i);
	assert_int_equal(b.len, 100012);
	assert_int_equal(b.p[12 + 99999], (unsigned char)99999);
	buf_free(&b);
}

static int
fit(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fit(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = ps_vfit(out, size, fmt, ap);
	va_end(ap);
	return r;
}

/* A text too long keeps its beginning and its end (the reason). */
/* Everything written, through a pipe's short writes; a full device fails. */
static void
test_write_all(void **state)
{
	static unsigned char big[1 << 20], back[1 << 20];
	size_t i, got = 0;
	ssize_t r;
	int fd[2], full;
	pid_t pid;

	(void)state;
	for (i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 131 + i / 4099);
	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fd[0]);
		_exit(ps_write_all(fd[1], big, sizeof(big)) == 0 ? 0 : 1);
	}
	close(fd[1]);
	while ((r = read(fd[0], back + got, sizeof(back) - got)) > 0)
		got += (size_t)r;
	close(fd[0]);
	assert_int_equal(waitpid(pid, &full, 0), pid);
	assert_true(WIFEXITED(full) && WEXITSTATUS(full) == 0);
	assert_int_equal(got, sizeof(big));
	assert_memory_equal(back, big, sizeof(big));
	assert_int_equal(ps_write_all(fd[1], big, 0), 0);	/* nothing */
	if ((full = open("/dev/full", O_WRONLY | O_CLOEXEC)) < 0)
		return;
	errno = 0;
	assert_int_equal(ps_write_all(full, big, 10), -1);
	assert_int_equal(errno, ENOSPC);
	close(full);
}

static void
test_vfit(void **state)
{
	char out[64], path[200];

	(void)state;
	assert_int_equal(fit(out, sizeof(out), "%s: %s", "a/b", "gone"), 9);
	assert_string_equal(out, "a/b: gone");
	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(fit(out, sizeof(out), "label/%s: %s", path,
	    "name too long"), 6 + 199 + 2 + 13);
	assert_int_equal(strlen(out), sizeof(out) - 1);
	assert_memory_equal(out, "label/ppp", 9);
	assert_non_null(strstr(out, "..."));
	assert_string_equal(out + strlen(out) - 16, "p: name too long");
	/* Exactly full: nothing elided. */
	memset(path, 'q', 63);
	path[63] = '\0';
	assert_int_equal(fit(out, sizeof(out), "%s", path), 63);
	assert_string_equal(out, path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_ok),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_unescape_bad),
		cmocka_unit_test(test_buf_le),
		cmocka_unit_test(test_vfit),
		cmocka_unit_test(test_write_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
