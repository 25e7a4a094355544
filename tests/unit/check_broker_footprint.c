/* check_broker_footprint.c — the start-up code the broker drops from its resident set
 * (broker/footprint.c): a loaded library's code leaves it and runs as before, its
 * read-only data stays; a mapping the loader did not make is left alone, and so is code
 * with a private page, whose only copy is that page. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker/internal.h"

#define PAGE 4096
#define FILE_PAGES 8

/* Resident kB of the mappings that start at addr (addr 0: of every mapping with those perms
 * whose path ends in name), read from /proc/self/smaps; -1 when none was found. */
static long long
resident_kb(uintptr_t addr, const char *name, const char *perms)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[4096];
	bool in = false, found = false;
	long long total = 0, kb;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long start, end;
		int path_at = -1;

		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &start, &end, &path_at) == 2) {
			const char *nl, *path = path_at > 0 ? line + path_at : "";
			size_t plen;

			nl = strchr(path, '\n');
			plen = nl != NULL ? (size_t)(nl - path) : strlen(path);
			if (addr != 0)
				in = (uintptr_t)start == addr;
			else
				in = plen >= strlen(name) &&
				     memcmp(path + plen - strlen(name), name, strlen(name)) == 0 &&
				     strstr(line, perms) != NULL;
			found = found || in;
		} else if (in && sscanf(line, "Rss: %lld kB", &kb) == 1) {
			total += kb;
		}
	}
	fclose(f);
	return found ? total : -1;
}

/* A file of FILE_PAGES pages, each filled with its index plus salt, in the directory of
 * this test's binary (which may run code, unlike a noexec /tmp). Returns its descriptor. */
static int
page_file(unsigned char salt)
{
	char exe[PATH_MAX], path[PATH_MAX + 32];
	unsigned char page[PAGE];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int fd;

	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	snprintf(path, sizeof(path), "%s/footprint.XXXXXX", dirname(exe));
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	for (int i = 0; i < FILE_PAGES; i++) {
		memset(page, (unsigned char)(i + salt), sizeof(page));
		ck_assert_int_eq(write(fd, page, sizeof(page)), sizeof(page));
	}
	return fd;
}

static bool
pages_hold(const unsigned char *p, unsigned char salt)
{
	for (int i = 0; i < FILE_PAGES; i++)
		for (int j = 0; j < PAGE; j++)
			if (p[i * PAGE + j] != (unsigned char)(i + salt))
				return false;
	return true;
}

/* An executable file mapping that the loader did not make (it could be unmapped and its
 * addresses reused for other memory at any time) is left alone. */
START_TEST(test_mapping_not_loaded_kept)
{
	int fd = page_file(1);
	unsigned char *p = mmap(NULL, FILE_PAGES * PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	struct broker_footprint_stats fs;

	if (p == MAP_FAILED && errno == EPERM) {
		close(fd);
		printf("SKIP test_mapping_not_loaded_kept: this file system refuses executable "
		       "mappings\n");
		return;
	}
	ck_assert_ptr_ne(p, MAP_FAILED);
	ck_assert(pages_hold(p, 1));
	ck_assert_int_eq(resident_kb((uintptr_t)p, NULL, NULL), FILE_PAGES * PAGE / 1024);
	ck_assert_int_eq(broker_footprint_drop_text(&fs), 0);
	ck_assert_uint_gt(fs.mappings, 0);  /* the libraries' code was dropped */
	ck_assert_int_eq(resident_kb((uintptr_t)p, NULL, NULL), FILE_PAGES * PAGE / 1024);
	munmap(p, FILE_PAGES * PAGE);
	close(fd);
}
END_TEST

/* A page of this binary's own code, alone in its page, never run. */
__attribute__((aligned(PAGE), noinline, used)) static void
text_page(void)
{
	__asm__ volatile(".fill 4096, 1, 0x90");
}

/* Code written to (as a text relocation or a breakpoint does) holds a private page, the
 * only copy of what was written: it stays as it is. */
START_TEST(test_private_pages_kept)
{
	unsigned char *p = (unsigned char *)(uintptr_t)text_page;
	struct broker_footprint_stats fs;

	ck_assert_uint_eq((uintptr_t)p % PAGE, 0);
	ck_assert_int_eq(p[100], 0x90);
	ck_assert_int_eq(mprotect(p, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
	p[100] = 0xCC;              /* the page is copied on write */
	ck_assert_int_eq(mprotect(p, PAGE, PROT_READ | PROT_EXEC), 0);
	ck_assert_int_eq(broker_footprint_drop_text(&fs), 0);
	ck_assert_uint_gt(fs.mappings, 0);
	ck_assert_int_eq(p[100], 0xCC);
	ck_assert_int_eq(resident_kb((uintptr_t)p, NULL, NULL), PAGE / 1024);
}
END_TEST

static void
sha256_abc(unsigned char out[32])
{
	unsigned int n = 0;

	ck_assert_int_eq(EVP_Digest("abc", 3, out, &n, EVP_sha256(), NULL), 1);
	ck_assert_uint_eq(n, 32);
}

/* A shared library's code leaves the resident set and runs as before; its read-only data
 * (not code) stays. */
START_TEST(test_library_code_runs_after)
{
	static const unsigned char want[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
		0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
		0xf2, 0x00, 0x15, 0xad,
	};
	unsigned char got[32];
	struct broker_footprint_stats fs;
	long long before, after, data_before, data_after;

	sha256_abc(got);
	ck_assert_mem_eq(got, want, 32);
	before = resident_kb(0, "/libcrypto.so.3", " r-xp ");
	data_before = resident_kb(0, "/libcrypto.so.3", " r--p ");
	if (before < 0 || data_before < 0) {
		printf("SKIP test_library_code_runs_after: libcrypto.so.3 is not mapped\n");
		return;
	}
	ck_assert_int_gt(before, 0);
	ck_assert_int_gt(data_before, 0);
	ck_assert_int_eq(broker_footprint_drop_text(&fs), 0);
	after = resident_kb(0, "/libcrypto.so.3", " r-xp ");
	data_after = resident_kb(0, "/libcrypto.so.3", " r--p ");
	ck_assert_int_lt(after, before);
	ck_assert_int_ge(data_after, data_before);
	sha256_abc(got);
	ck_assert_mem_eq(got, want, 32);
}
END_TEST

static Suite *
footprint_suite(void)
{
	Suite *s = suite_create("broker_footprint");
	TCase *tc = tcase_create("drop_text");

	tcase_add_test(tc, test_mapping_not_loaded_kept);
	tcase_add_test(tc, test_private_pages_kept);
	tcase_add_test(tc, test_library_code_runs_after);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(footprint_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
