/* cmd_keygen.c — `latchkey keygen`: new sealing keys (RSA + certificate for the
 * Bitnami format, X25519 for lk1) as files in a key directory and/or as a key Secret
 * manifest in Bitnami's shape; --rotate adds a newer key next to the old ones; --import
 * turns a key Secret backup into key files. */
#include "cli/seal.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"

/* The highest key sequence number in a directory (file names NNNN.*). */
#define KEYGEN_SEQ_MAX 9999

struct keygen_opts {
	const char *out_dir, *manifest, *ns, *rotate, *cn, *import;
	unsigned bits, days;
	bool lk1_only;
};

static void
keygen_usage(FILE *f)
{
	fprintf(f,
		"usage: latchkey keygen [--out-dir DIR] [--secret-manifest FILE [--namespace NS]]\n"
		"                       [--rotate KEYDIR] [--cn CN] [--key-size BITS] [--days N]\n"
		"       latchkey keygen --import FILE --out-dir DIR\n"
		"       latchkey keygen --lk1 [--out-dir DIR | --rotate DIR]\n"
		"Writes NNNN.key (RSA, PKCS#1, mode 0600), NNNN.crt, NNNN.lk1 (mode 0600) and\n"
		"NNNN.lk1.pub into DIR; the highest NNNN is the newest key. Existing files are never\n"
		"overwritten.\n"
		"--lk1 makes a recipient key pair for encryption at source: with a directory it\n"
		"writes NNNN.lk1 and NNNN.lk1.pub there and prints the public line (the recipient);\n"
		"without one it prints the private line and the public line (not to a terminal).\n");
}

/* Highest NNNN prefix in dir; 0 when none; -errno when dir cannot be read. */
static int
highest_seq(const char *dir, int *ret_keys)
{
	struct dirent *de;
	int best = 0, keys = 0;
	DIR *d = opendir(dir);

	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long v = strtol(de->d_name, &end, 10);
		size_t n = strlen(de->d_name);

		if (n > 4 && (strcmp(de->d_name + n - 4, ".key") == 0 ||
			      strcmp(de->d_name + n - 4, ".lk1") == 0))
			keys++;
		if (end == de->d_name || *end != '.' || v < 0 || v > KEYGEN_SEQ_MAX)
			continue;
		if (v > best)
			best = (int)v;
	}
	closedir(d);
	*ret_keys = keys;
	return best;
}

static int
write_file(const char *dir, int seq, const char *ext, const void *p, size_t n, mode_t mode,
	   char *ret_path, size_t pathlen, struct lk_error *err)
{
	snprintf(ret_path, pathlen, "%s/%04d%s", dir, seq, ext);
	return seal_write_output(ret_path, p, n, mode, true, err);
}

static int
write_keys(const char *dir, int seq, const struct lk_key *rsa, const struct lk_key *x,
	   struct lk_error *err)
{
	struct lk_secret *pem = NULL, *xt = NULL;
	char *crt = NULL, *xpub = NULL, path[4096];
	int r = 0;

	if (rsa != NULL) {
		r = lk_key_rsa_private_pem(rsa, &pem, err);
		if (r == 0)
			r = lk_key_rsa_cert_pem(rsa, &crt, err);
		if (r == 0)
			r = write_file(dir, seq, ".key", lk_secret_bytes(pem), lk_secret_len(pem), 0600,
				       path, sizeof(path), err);
		if (r == 0)
			printf("%s: RSA-%u private key, id %s\n", path, lk_key_bits(rsa),
			       lk_key_id(rsa));
		if (r == 0)
			r = write_file(dir, seq, ".crt", crt, strlen(crt), 0644, path, sizeof(path),
				       err);
		if (r == 0) {
			char until[32];
			time_t t = lk_key_not_after(rsa);
			struct tm tm;

			gmtime_r(&t, &tm);
			strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
			printf("%s: certificate, valid until %s\n", path, until);
		}
		if (r < 0)
			goto out;
	}
	if (x != NULL) {
		r = lk_key_x25519_private_text(x, &xt);
		if (r == 0)
			r = lk_key_x25519_public_text(x, &xpub);
		if (r < 0) {
			lk_error_set(err, r, "cannot encode the lk1 key");
			goto out;
		}
		r = write_file(dir, seq, ".lk1", lk_secret_bytes(xt), lk_secret_len(xt), 0600, path,
			       sizeof(path), err);
		if (r == 0)
			printf("%s: lk1 private key, id %s\n", path, lk_key_id(x));
		if (r == 0)
			r = write_file(dir, seq, ".lk1.pub", xpub, strlen(xpub), 0644, path,
				       sizeof(path), err);
		if (r == 0)
			printf("%s: lk1 public key\n", path);
	}
out:
	lk_secret_free(pem);
	lk_secret_free(xt);
	free(crt);
	free(xpub);
	return r;
}

static int
prepare_dir(const char *dir, bool rotate, int *ret_seq, struct lk_error *err)
{
	int seq, keys = 0;

	if (!rotate && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return lk_error_set(err, -errno, "%s: %s", dir, strerror(errno));
	seq = highest_seq(dir, &keys);
	if (seq < 0)
		return lk_error_set(err, seq, "%s: %s", dir, strerror(-seq));
	if (!rotate && keys > 0)
		return lk_error_set(err, -EEXIST, "%s already holds keys; use --rotate %s to add a "
				    "newer one", dir, dir);
	if (rotate && keys == 0)
		return lk_error_set(err, -ENOENT, "%s holds no keys to rotate", dir);
	if (seq >= KEYGEN_SEQ_MAX)
		return lk_error_set(err, -E2BIG, "%s: key sequence exhausted", dir);
	*ret_seq = seq + 1;
	return 0;
}

static int
do_import(const struct keygen_opts *o, struct lk_error *err)
{
	struct lk_keyset *ks = lk_keyset_new();
	int r, seq = 0;

	if (ks == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	r = lk_sealing_load_keys(ks, o->import, err);
	if (r < 0)
		goto out;
	r = prepare_dir(o->out_dir, false, &seq, err);
	if (r < 0)
		goto out;
	/* Oldest first, so that the newest gets the highest number. */
	for (size_t i = 0; i < lk_keyset_count(ks) && r == 0; i++) {
		const struct lk_key *k = lk_keyset_get(ks, i);

		if (!lk_key_has_private(k))
			continue;
		r = write_keys(o->out_dir, seq++, lk_key_kind(k) == LK_KEY_RSA ? k : NULL,
			       lk_key_kind(k) == LK_KEY_X25519 ? k : NULL, err);
	}
out:
	lk_keyset_free(ks);
	return r;
}

/* --lk1: an X25519 recipient pair only. */
static int
do_lk1(const struct keygen_opts *o, struct lk_error *err)
{
	const char *dir = o->rotate != NULL ? o->rotate : o->out_dir;
	struct lk_secret *priv = NULL;
	struct lk_key *x = NULL;
	char *pub = NULL, path[4096];
	int r, seq = 0, keys = 0;

	if (dir == NULL && isatty(STDOUT_FILENO))
		return lk_error_set(err, -EPERM, "standard output is a terminal: give --out-dir DIR "
				    "for the private key, or send the output to a file");
	if (dir != NULL) {
		/* A recipient directory may hold older recipients: the next number. */
		if (o->rotate == NULL && mkdir(dir, 0700) < 0 && errno != EEXIST)
			return lk_error_set(err, -errno, "%s: %s", dir, strerror(errno));
		if ((seq = highest_seq(dir, &keys)) < 0)
			return lk_error_set(err, seq, "%s: %s", dir, strerror(-seq));
		if (seq >= KEYGEN_SEQ_MAX)
			return lk_error_set(err, -E2BIG, "%s: key sequence exhausted", dir);
		seq++;
	}
	if ((r = lk_key_x25519_generate(&x)) < 0)
		return lk_error_set(err, r, "X25519 key generation failed");
	if ((r = lk_key_x25519_private_text(x, &priv)) < 0 || (r = lk_key_x25519_public_text(x, &pub)) < 0) {
		lk_error_set(err, r, "cannot encode the lk1 key");
		goto out;
	}
	if (dir != NULL) {
		r = write_file(dir, seq, ".lk1", lk_secret_bytes(priv), lk_secret_len(priv), 0600, path,
			       sizeof(path), err);
		if (r == 0)
			fprintf(stderr, "%s: lk1 private key, id %s (for the broker's decryption_key)\n",
				path, lk_key_id(x));
		if (r == 0)
			r = write_file(dir, seq, ".lk1.pub", pub, strlen(pub), 0644, path, sizeof(path), err);
		if (r == 0) {
			fprintf(stderr, "%s: lk1 public key: the recipient\n", path);
			fputs(pub, stdout);
		}
	} else {
		fwrite(lk_secret_bytes(priv), 1, lk_secret_len(priv), stdout);
		fputs(pub, stdout);
		fprintf(stderr, "lk1 key pair, id %s: the lk1priv: line opens values (keep it secret), "
			"the lk1pub: line is the recipient\n", lk_key_id(x));
	}
out:
	lk_secret_free(priv);
	free(pub);
	lk_key_free(x);
	return r;
}

static int
do_keygen(const struct keygen_opts *o, struct lk_error *err)
{
	struct lk_key *rsa = NULL, *x = NULL;
	const char *dir = o->rotate != NULL ? o->rotate : o->out_dir;
	json_t *manifest = NULL;
	int r, seq = 0;

	if (dir != NULL) {
		r = prepare_dir(dir, o->rotate != NULL, &seq, err);
		if (r < 0)
			return r;
	}
	r = lk_key_rsa_generate(o->bits, o->cn, o->days, &rsa, err);
	if (r < 0)
		goto out;
	r = lk_key_x25519_generate(&x);
	if (r < 0) {
		lk_error_set(err, r, "X25519 key generation failed");
		goto out;
	}
	if (dir != NULL) {
		r = write_keys(dir, seq, rsa, x, err);
		if (r < 0)
			goto out;
	}
	if (o->manifest != NULL) {
		bool json = strlen(o->manifest) > 5 &&
			    strcmp(o->manifest + strlen(o->manifest) - 5, ".json") == 0;

		r = lk_sealing_key_manifest(rsa, x, o->ns, &manifest, err);
		if (r == 0)
			r = seal_write_manifest(o->manifest, manifest,
						json ? LK_MANIFEST_JSON : LK_MANIFEST_YAML, 0600,
						strcmp(o->manifest, "-") != 0, err);
		if (r == 0 && strcmp(o->manifest, "-") != 0)
			printf("%s: key Secret for namespace %s (RSA id %s, lk1 id %s)\n",
			       o->manifest, o->ns, lk_key_id(rsa), lk_key_id(x));
	}
out:
	json_decref(manifest);
	lk_key_free(rsa);
	lk_key_free(x);
	return r;
}

int
cmd_keygen(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out-dir", required_argument, NULL, 'd' },
		{ "secret-manifest", required_argument, NULL, 'm' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "rotate", required_argument, NULL, 'R' },
		{ "cn", required_argument, NULL, 'c' },
		{ "key-size", required_argument, NULL, 'b' },
		{ "days", required_argument, NULL, 'D' },
		{ "import", required_argument, NULL, 'i' },
		{ "lk1", no_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct keygen_opts o = { .ns = "kube-system", .cn = "", .bits = LK_RSA_BITS_DEFAULT,
				 .days = LK_CERT_DAYS_DEFAULT };
	struct lk_error err;
	char *end;
	long v;
	int c, r;

	lk_error_clear(&err);
	optind = 0;
	while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o.out_dir = optarg; break;
		case 'm': o.manifest = optarg; break;
		case 'n': o.ns = optarg; break;
		case 'R': o.rotate = optarg; break;
		case 'c': o.cn = optarg; break;
		case 'i': o.import = optarg; break;
		case 'L': o.lk1_only = true; break;
		case 'b':
		case 'D':
			v = strtol(optarg, &end, 10);
			if (*end != '\0' || v <= 0 || v > 100000) {
				fprintf(stderr, "latchkey keygen: bad number '%s'\n", optarg);
				return LK_EXIT_USAGE;
			}
			if (c == 'b')
				o.bits = (unsigned)v;
			else
				o.days = (unsigned)v;
			break;
		case 'h':
			keygen_usage(stdout);
			return LK_EXIT_OK;
		default:
			keygen_usage(stderr);
			return LK_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "latchkey keygen: unexpected argument '%s'\n", argv[optind]);
		return LK_EXIT_USAGE;
	}
	if (o.lk1_only && (o.manifest != NULL || o.import != NULL)) {
		fprintf(stderr, "latchkey keygen: --lk1 goes with --out-dir or --rotate only\n");
		return LK_EXIT_USAGE;
	}
	if (o.out_dir == NULL && o.manifest == NULL && o.rotate == NULL && !o.lk1_only) {
		fprintf(stderr, "latchkey keygen: give --out-dir DIR, --rotate KEYDIR and/or "
			"--secret-manifest FILE\n");
		return LK_EXIT_USAGE;
	}
	if (o.out_dir != NULL && o.rotate != NULL) {
		fprintf(stderr, "latchkey keygen: --out-dir and --rotate do not go together\n");
		return LK_EXIT_USAGE;
	}
	if (o.import != NULL && (o.out_dir == NULL || o.manifest != NULL || o.rotate != NULL)) {
		fprintf(stderr, "latchkey keygen: --import FILE needs --out-dir DIR (only)\n");
		return LK_EXIT_USAGE;
	}
	if (o.bits < LK_RSA_BITS_MIN || o.bits > LK_RSA_BITS_MAX) {
		fprintf(stderr, "latchkey keygen: --key-size must be %u..%u\n", LK_RSA_BITS_MIN,
			LK_RSA_BITS_MAX);
		return LK_EXIT_USAGE;
	}
	if (lk_secret_init() < 0) {
		fprintf(stderr, "latchkey keygen: libsodium failed to start\n");
		return LK_EXIT_FAILURE;
	}
	r = o.lk1_only ? do_lk1(&o, &err) : o.import != NULL ? do_import(&o, &err) : do_keygen(&o, &err);
	fflush(stdout);
	if (r < 0) {
		fprintf(stderr, "latchkey keygen: %s\n", err.msg);
		return LK_EXIT_FAILURE;
	}
	return LK_EXIT_OK;
}
