/* cmd_unseal.c — `latchkey unseal`: SealedSecret → Secret with the private keys; also
 * the body of `latchkey reseal` (cmd_reseal.c), which shares the reading and opening. */
#include "cli/seal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/file.h"

struct unseal_opts {
	const char *in, *out, *key, *format;
};

static int
read_sealed(const char *in, json_t **ret, enum lk_manifest_format *ret_format,
	    struct lk_error *err)
{
	json_t *root = NULL;
	int r;

	if ((r = lk_sealing_read_manifest(in, false, &root, ret_format, err)) < 0)
		return r;
	if ((r = lk_sealing_check_sealed(root, lk_file_shown(in), err)) < 0) {
		json_decref(root);
		return r;
	}
	*ret = root;
	return 0;
}

static enum lk_manifest_format
out_format(const struct unseal_opts *o, enum lk_manifest_format dflt)
{
	if (o->format == NULL)
		return dflt;
	return strcmp(o->format, "json") == 0 ? LK_MANIFEST_JSON : LK_MANIFEST_YAML;
}

static int
do_unseal(const struct unseal_opts *o, const struct lk_keyset *ks, struct lk_error *err)
{
	json_t *sealed = NULL, *secret = NULL;
	enum lk_manifest_format format;
	bool skipped = false;
	int r;

	if ((r = read_sealed(o->in, &sealed, &format, err)) < 0)
		return r;
	if ((r = lk_sealing_unseal(ks, sealed, &secret, &skipped, err)) < 0)
		goto out;
	if (skipped)
		fprintf(stderr, "latchkey unseal: spec.template.data is not rendered; "
			"the output holds the sealed keys only\n");
	/* Plaintext: only the owner may read the output file. */
	r = seal_write_manifest(o->out, secret, out_format(o, format), 0600, false, err);
out:
	json_decref(sealed);
	json_decref(secret);
	return r;
}

static int
do_reseal(const struct unseal_opts *o, const struct lk_keyset *ks, struct lk_error *err)
{
	const struct lk_key *newest_rsa = lk_keyset_newest(ks, LK_KEY_RSA);
	const struct lk_key *newest_x = lk_keyset_newest(ks, LK_KEY_X25519);
	enum lk_manifest_format format;
	json_t *sealed = NULL;
	size_t changed = 0;
	int r;

	if ((r = read_sealed(o->in, &sealed, &format, err)) < 0)
		return r;
	if ((r = lk_sealing_reseal(ks, sealed, &changed, err)) < 0)
		goto out;
	r = seal_write_manifest(o->out, sealed, out_format(o, format), 0644, false, err);
	if (r == 0)
		fprintf(stderr, "latchkey reseal: %zu value(s) resealed (RSA key %s%s%s)\n", changed,
			newest_rsa ? lk_key_id(newest_rsa) : "-", newest_x ? ", lk1 key " : "",
			newest_x ? lk_key_id(newest_x) : "");
out:
	json_decref(sealed);
	return r;
}

int
seal_unseal_main(int argc, char **argv, bool reseal)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "file", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = reseal ? "reseal" : "unseal";
	struct lk_keyset *ks = NULL;
	struct unseal_opts o;
	struct lk_error err;
	int c, r;

	memset(&o, 0, sizeof(o));
	lk_error_clear(&err);
	optind = 0;
	while ((c = getopt_long(argc, argv, "k:f:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'k': o.key = optarg; break;
		case 'f': o.in = optarg; break;
		case 'o': o.out = optarg; break;
		case 'F': o.format = optarg; break;
		case 'h':
			printf("usage: latchkey %s --key FILE|DIR [-f FILE] [-o FILE] [--format yaml|json]\n"
			       "%s\n", cmd, reseal ?
			       "Re-encrypts every value of a SealedSecret with the newest key in DIR." :
			       "Opens a SealedSecret with private keys and writes the Secret.");
			return LK_EXIT_OK;
		default:
			fprintf(stderr, "usage: latchkey %s --key FILE|DIR [-f FILE] [-o FILE] "
				"[--format yaml|json]\n", cmd);
			return LK_EXIT_USAGE;
		}
	}
	if (optind < argc || o.key == NULL) {
		fprintf(stderr, "latchkey %s: %s\n", cmd,
			o.key == NULL ? "--key FILE|DIR is required" : "unexpected argument");
		return LK_EXIT_USAGE;
	}
	if (o.format != NULL && strcmp(o.format, "yaml") != 0 && strcmp(o.format, "json") != 0) {
		fprintf(stderr, "latchkey %s: --format is yaml or json\n", cmd);
		return LK_EXIT_USAGE;
	}
	if (lk_secret_init() < 0) {
		fprintf(stderr, "latchkey %s: libsodium failed to start\n", cmd);
		return LK_EXIT_FAILURE;
	}
	ks = lk_keyset_new();
	if (ks == NULL) {
		fprintf(stderr, "latchkey %s: out of memory\n", cmd);
		return LK_EXIT_FAILURE;
	}
	r = lk_sealing_load_keys(ks, o.key, &err);
	if (r == 0)
		r = reseal ? do_reseal(&o, ks, &err) : do_unseal(&o, ks, &err);
	lk_keyset_free(ks);
	if (r < 0) {
		fprintf(stderr, "latchkey %s: %s\n", cmd, err.msg);
		return LK_EXIT_FAILURE;
	}
	return LK_EXIT_OK;
}

int
cmd_unseal(int argc, char **argv)
{
	return seal_unseal_main(argc, argv, false);
}
