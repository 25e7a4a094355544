/* cmd_reseal.c — `latchkey reseal --key DIR`: opens every value of a SealedSecret with
 * the keys in DIR and seals it again with the newest key of its kind, in memory only.
 *
 * Without PATH arguments it reads one SealedSecret (-f, stdin by default) and writes it
 * (-o, stdout by default), as `unseal` does. With PATHs — files, or directories searched
 * for *.yaml, *.yml and *.json — it rewrites each SealedSecret in place (atomically, same
 * mode and format), leaving files that are not SealedSecrets, and SealedSecrets already
 * on the newest keys, untouched.
 */
#include "cli/seal.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "common/file.h"

/* How deep directories are searched. */
#define RESEAL_DEPTH_MAX 16

struct reseal_count {
	size_t files, resealed, current, skipped, failed;
};

static bool
manifest_name(const char *n)
{
	size_t len = strlen(n);

	return (len > 5 && strcmp(n + len - 5, ".yaml") == 0) ||
	       (len > 4 && strcmp(n + len - 4, ".yml") == 0) ||
	       (len > 5 && strcmp(n + len - 5, ".json") == 0);
}

/* One file: resealed in place when it is a SealedSecret with values off the newest keys. */
static void
reseal_file(const struct lk_keyset *ks, const char *path, bool named, struct reseal_count *c)
{
	enum lk_manifest_format format;
	struct lk_error err;
	struct stat st;
	json_t *root = NULL;
	size_t changed = 0;

	lk_error_clear(&err);
	c->files++;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "latchkey reseal: %s: %s\n", path, strerror(errno));
		c->failed++;
		return;
	}
	if (lk_sealing_read_manifest(path, false, &root, &format, &err) < 0 ||
	    lk_sealing_check_sealed(root, path, &err) < 0) {
		/* In a directory, other manifests are expected; a file named on the command
		 * line must be a SealedSecret. */
		if (named) {
			fprintf(stderr, "latchkey reseal: %s\n", err.msg);
			c->failed++;
		} else {
			c->skipped++;
		}
		json_decref(root);
		return;
	}
	if (lk_sealing_reseal(ks, root, &changed, &err) < 0) {
		fprintf(stderr, "latchkey reseal: %s: %s (left as it was)\n", path, err.msg);
		c->failed++;
	} else if (changed == 0) {
		c->current++;
	} else if (seal_write_manifest(path, root, format, st.st_mode & 07777, false, &err) < 0) {
		fprintf(stderr, "latchkey reseal: %s\n", err.msg);
		c->failed++;
	} else {
		printf("%s: %zu value(s) resealed\n", path, changed);
		c->resealed++;
	}
	json_decref(root);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory, in name order, recursively (dot entries skipped). */
static void
reseal_dir(const struct lk_keyset *ks, const char *dir, int depth, struct reseal_count *c)
{
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	if (depth > RESEAL_DEPTH_MAX) {
		fprintf(stderr, "latchkey reseal: %s: deeper than %d directories, not searched\n", dir,
			RESEAL_DEPTH_MAX);
		c->failed++;
		return;
	}
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "latchkey reseal: %s: %s\n", dir, strerror(errno));
		c->failed++;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char *p;

		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **nn = realloc(names, ncap * sizeof(*nn));

			if (nn == NULL) {
				free(p);
				break;
			}
			names = nn;
			cap = ncap;
		}
		names[n++] = p;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		const char *base = strrchr(names[i], '/') + 1;

		if (lstat(names[i], &st) == 0) {
			if (S_ISDIR(st.st_mode))
				reseal_dir(ks, names[i], depth + 1, c);
			else if (S_ISREG(st.st_mode) && manifest_name(base))
				reseal_file(ks, names[i], false, c);
		}
		free(names[i]);
	}
	free(names);
}

/* `latchkey reseal --key K PATH...`. */
static int
reseal_paths(const char *key, char **paths, int npaths)
{
	struct reseal_count c = { 0 };
	struct lk_keyset *ks;
	struct lk_error err;
	int r;

	lk_error_clear(&err);
	if (lk_secret_init() < 0 || (ks = lk_keyset_new()) == NULL) {
		fprintf(stderr, "latchkey reseal: libsodium failed to start, or out of memory\n");
		return LK_EXIT_FAILURE;
	}
	if ((r = lk_sealing_load_keys(ks, key, &err)) < 0) {
		fprintf(stderr, "latchkey reseal: %s\n", err.msg);
		lk_keyset_free(ks);
		return LK_EXIT_FAILURE;
	}
	for (int i = 0; i < npaths; i++) {
		struct stat st;

		if (stat(paths[i], &st) < 0) {
			fprintf(stderr, "latchkey reseal: %s: %s\n", paths[i], strerror(errno));
			c.failed++;
		} else if (S_ISDIR(st.st_mode)) {
			reseal_dir(ks, paths[i], 0, &c);
		} else {
			reseal_file(ks, paths[i], true, &c);
		}
	}
	{
		const struct lk_key *rsa = lk_keyset_newest(ks, LK_KEY_RSA);
		const struct lk_key *x = lk_keyset_newest(ks, LK_KEY_X25519);

		fprintf(stderr, "latchkey reseal: %zu SealedSecret(s) resealed, %zu already on the newest "
			"keys (RSA %s, lk1 %s), %zu other file(s) skipped, %zu failed\n", c.resealed,
			c.current, rsa != NULL ? lk_key_id(rsa) : "-", x != NULL ? lk_key_id(x) : "-",
			c.skipped, c.failed);
	}
	lk_keyset_free(ks);
	return c.failed > 0 ? LK_EXIT_FAILURE : LK_EXIT_OK;
}

int
cmd_reseal(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "file", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *key = NULL;
	bool stream = false;
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "k:f:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'k': key = optarg; break;
		case 'f': case 'o': case 'F': stream = true; break;
		case 'h':
			printf("usage: latchkey reseal --key FILE|DIR [-f FILE] [-o FILE] [--format yaml|json]\n"
			       "       latchkey reseal --key FILE|DIR PATH...\n"
			       "Re-encrypts every value of a SealedSecret with the newest key in FILE|DIR\n"
			       "(key files, or key Secret manifests such as `kubectl get secret -l\n"
			       "sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`), in memory. PATHs\n"
			       "(files, or directories searched for *.yaml, *.yml, *.json) are rewritten\n"
			       "in place; values already on the newest key are left as they are.\n");
			return LK_EXIT_OK;
		default:
			break;
		}
	}
	opterr = 1;
	if (optind < argc) {
		if (stream || key == NULL) {
			fprintf(stderr, "latchkey reseal: %s\n", key == NULL ? "--key FILE|DIR is required" :
				"PATH arguments are rewritten in place: -f, -o and --format do not go with them");
			return LK_EXIT_USAGE;
		}
		return reseal_paths(key, argv + optind, argc - optind);
	}
	return seal_unseal_main(argc, argv, true);
}
