/* fuzz_broker_file_source.c — the broker's reader of file sources (broker/source_file.c)
 * on arbitrary directories: the input is made into files, then read as a from_file
 * secret would be.
 *
 * Input: one flags byte (bit 0: decrypt, with a fixed key, the values bound to
 * "fuzz/src/KEY"; bit 1: the kubelet's layout, the files in a timestamped directory that
 * ..data links to; bit 2: a single file, the first record, served under key "value"),
 * then records separated by NUL bytes: a file name, its content, a name, a content...
 * Names with '/', empty ones, "." and ".." are skipped. Nothing may crash; a read that
 * fails says why; one that succeeds gives at most a key per file written. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/internal.h"
#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fixed private key of fuzz_lk1_open: 32 bytes of 0x42. */
#define FUZZ_KEY "lk1priv:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=" /* latchkey-scan: allow */
/* Files made from one input: enough to reach every branch of a listing. */
#define FUZZ_FILES_MAX 32
#define FUZZ_TS "..2026_12_01_10_00_00.000000001"

static char root[64];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

static void
clean(void)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
at_exit(void)
{
	clean();
	rmdir(root);
}

static struct lk_keyset *
keyset(void)
{
	static struct lk_keyset *ks;
	struct lk_key *k = NULL;
	struct lk_error err;

	if (ks != NULL)
		return ks;
	if (lk_secret_init() < 0 || lk_key_x25519_parse(FUZZ_KEY, strlen(FUZZ_KEY), &k, &err) < 0)
		abort();
	ks = lk_keyset_new();
	if (ks == NULL || lk_keyset_add_take(ks, k) < 0)
		abort();
	snprintf(root, sizeof(root), "/tmp/lk-fuzz-src-XXXXXX");
	if (mkdtemp(root) == NULL)
		abort();
	atexit(at_exit);
	return ks;
}

static bool
name_ok(const char *name, size_t len)
{
	return len > 0 && len < 200 && memchr(name, '/', len) == NULL &&
	       !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

static void
write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (n > 0 && write(fd, p, n) < 0) {
		/* a short file is still a file to read */
	}
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct lk_keyset *ks = keyset();
	struct broker_source_file fs;
	char dir[128], path[256], reason[2048];
	const uint8_t *p, *end;
	json_t *out = NULL;
	size_t files = 0;
	uint8_t flags;
	int rc;

	if (size < 1)
		return 0;
	flags = data[0];
	p = data + 1;
	end = data + size;
	clean();
	snprintf(dir, sizeof(dir), "%s", root);
	if ((flags & 2) && !(flags & 4)) {
		snprintf(dir, sizeof(dir), "%s/%s", root, FUZZ_TS);
		snprintf(path, sizeof(path), "%s/%s", root, BROKER_KUBELET_DATA);
		if (mkdir(dir, 0755) < 0 || symlink(FUZZ_TS, path) < 0)
			abort();
	}
	while (p < end && files < FUZZ_FILES_MAX) {
		const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
		const uint8_t *cend;
		char name[256];
		size_t nlen = nul != NULL ? (size_t)(nul - p) : (size_t)(end - p);

		if (nul == NULL)
			break;
		cend = memchr(nul + 1, '\0', (size_t)(end - nul - 1));
		if (cend == NULL)
			cend = end;
		if (name_ok((const char *)p, nlen)) {
			memcpy(name, p, nlen);
			name[nlen] = '\0';
			write_file(dir, (flags & 4) ? "value" : name, nul + 1, (size_t)(cend - nul - 1));
			files++;
		}
		p = cend < end ? cend + 1 : end;
		if (flags & 4)
			break;
	}
	memset(&fs, 0, sizeof(fs));
	snprintf(path, sizeof(path), "%s%s", root, (flags & 4) ? "/value" : "");
	fs.path = path;
	fs.decrypt = flags & 1;
	fs.k8s_namespace = (char *)"fuzz";
	fs.k8s_name = (char *)"src";
	rc = broker_source_file_read(&fs, ks, &out, reason, sizeof(reason));
	if (rc < 0 && reason[0] == '\0')
		abort();            /* a failure always says why */
	if (rc == 0 && (!json_is_object(out) || json_object_size(out) > files ||
			json_object_size(out) > BROKER_KEYS_MAX))
		abort();
	json_decref(out);
	return 0;
}
