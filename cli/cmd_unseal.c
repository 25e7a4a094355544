/* cmd_unseal.c — `latchkey unseal`: SealedSecret → Secret with the private keys; also
 * the body of `latchkey reseal` (cmd_reseal.c), which shares the reading and opening. */
#include "cli/seal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "cli/commands.h"

struct unseal_opts {
	const char *in, *out, *key, *format;
};

static int
read_sealed(const char *in, json_t **ret, enum lk_manifest_format *ret_format,
	    struct lk_error *err)
{
	const char *src = in != NULL && strcmp(in, "-") != 0 ? in : "stdin";
	const char *kind, *api;
	json_t *root = NULL;
	int r;

	r = seal_read_manifest(in, false, &root, ret_format, err);
	if (r < 0)
		return r;
	kind = seal_str(root, "kind");
	api = seal_str(root, "apiVersion");
	if (kind == NULL || strcmp(kind, "SealedSecret") != 0 || api == NULL ||
	    (strcmp(api, SEAL_API_LATCHKEY) != 0 && strcmp(api, SEAL_API_BITNAMI) != 0)) {
		json_decref(root);
		return lk_error_set(err, -EINVAL, "%s: not a SealedSecret (%s or %s)", src,
				    SEAL_API_LATCHKEY, SEAL_API_BITNAMI);
	}
	if (!json_is_object(json_object_get(json_object_get(root, "spec"), "encryptedData"))) {
		json_decref(root);
		return lk_error_set(err, -EINVAL, "%s: spec.encryptedData is missing", src);
	}
	*ret = root;
	return 0;
}

static const char *
str_or_empty(const char *a, const char *b)
{
	return a != NULL ? a : b != NULL ? b : "";
}

/* Opens encryptedData[key] of a SealedSecret. */
static int
open_value(const struct lk_keyset *ks, const json_t *sealed, const char *key, const json_t *v,
	   struct lk_secret **ret, struct lk_error *err)
{
	const char *name = seal_str2(sealed, "metadata", "name");
	const char *ns = seal_str2(sealed, "metadata", "namespace");
	enum lk_scope scope = seal_scope_of(sealed);
	char label[LK_LABEL_MAX + 1];
	const char *text = json_string_value(v);
	bool lk1;
	int r;

	if (text == NULL)
		return lk_error_set(err, -EINVAL, "encryptedData.%s is not a string", key);
	lk1 = strncmp(text, LK_LK1_TEXT_PREFIX, strlen(LK_LK1_TEXT_PREFIX)) == 0;
	r = lk_scope_label(scope, ns, name, lk1 ? key : NULL, label, sizeof(label), err);
	if (r < 0)
		return lk_error_prefix(err, "encryptedData.%s (scope %s)", key, lk_scope_name(scope));
	r = lk_keyset_open(ks, label, text, json_string_length(v), ret, err);
	if (r < 0)
		return lk_error_prefix(err, "encryptedData.%s (scope %s)", key, lk_scope_name(scope));
	return 0;
}

static int
do_unseal(const struct unseal_opts *o, const struct lk_keyset *ks, struct lk_error *err)
{
	json_t *sealed = NULL, *secret = NULL, *data, *meta, *tmpl, *tmeta;
	enum lk_manifest_format format;
	const char *key;
	json_t *v;
	int r;

	r = read_sealed(o->in, &sealed, &format, err);
	if (r < 0)
		return r;
	tmpl = json_object_get(json_object_get(sealed, "spec"), "template");
	tmeta = json_object_get(tmpl, "metadata");
	meta = json_object();
	data = json_object();
	secret = json_object();
	if (meta == NULL || data == NULL || secret == NULL) {
		json_decref(meta);
		json_decref(data);
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	json_object_set_new(secret, "apiVersion", json_string("v1"));
	json_object_set_new(secret, "kind", json_string("Secret"));
	json_object_set_new(secret, "metadata", meta);
	json_object_set_new(meta, "name", json_string(str_or_empty(
		seal_str2(sealed, "metadata", "name"), seal_str(tmeta, "name"))));
	if (seal_str2(sealed, "metadata", "namespace") != NULL || seal_str(tmeta, "namespace") != NULL)
		json_object_set_new(meta, "namespace", json_string(str_or_empty(
			seal_str2(sealed, "metadata", "namespace"), seal_str(tmeta, "namespace"))));
	if (json_is_object(json_object_get(tmeta, "labels")))
		json_object_set(meta, "labels", json_object_get(tmeta, "labels"));
	if (json_is_object(json_object_get(tmeta, "annotations")))
		json_object_set(meta, "annotations", json_object_get(tmeta, "annotations"));
	json_object_set_new(secret, "type", json_string(seal_str(tmpl, "type") != NULL ?
							seal_str(tmpl, "type") : "Opaque"));
	if (json_is_boolean(json_object_get(tmpl, "immutable")))
		json_object_set(secret, "immutable", json_object_get(tmpl, "immutable"));
	json_object_set_new(secret, "data", data);
	if (json_object_get(tmpl, "data") != NULL)
		fprintf(stderr, "latchkey unseal: spec.template.data is not rendered; "
			"the output holds the sealed keys only\n");
	json_object_foreach(json_object_get(json_object_get(sealed, "spec"), "encryptedData"), key, v) {
		struct lk_secret *pt = NULL;
		char *b64 = NULL;

		r = open_value(ks, sealed, key, v, &pt, err);
		if (r < 0)
			goto out;
		r = lk_b64_encode(lk_secret_bytes(pt), lk_secret_len(pt), LK_B64_STD, &b64);
		lk_secret_free(pt);
		if (r < 0) {
			lk_error_set(err, r, "encryptedData.%s: cannot encode", key);
			goto out;
		}
		r = json_object_set_new(data, key, json_string(b64)) == 0 ? 0 : -ENOMEM;
		sodium_memzero(b64, strlen(b64));
		free(b64);
		if (r < 0) {
			lk_error_set(err, r, "out of memory");
			goto out;
		}
	}
	if (o->format != NULL)
		format = strcmp(o->format, "json") == 0 ? LK_MANIFEST_JSON : LK_MANIFEST_YAML;
	/* Plaintext: only the owner may read the output file. */
	r = seal_write_manifest(o->out, secret, format, 0600, false, err);
out:
	json_decref(sealed);
	seal_json_wipe_decref(secret);
	return r;
}

static int
do_reseal(const struct unseal_opts *o, const struct lk_keyset *ks, struct lk_error *err)
{
	const struct lk_key *newest_rsa = lk_keyset_newest(ks, LK_KEY_RSA);
	const struct lk_key *newest_x = lk_keyset_newest(ks, LK_KEY_X25519);
	enum lk_manifest_format format;
	json_t *sealed = NULL, *enc;
	const char *key;
	json_t *v;
	size_t changed = 0;
	int r;

	r = read_sealed(o->in, &sealed, &format, err);
	if (r < 0)
		return r;
	enc = json_object_get(json_object_get(sealed, "spec"), "encryptedData");
	json_object_foreach(enc, key, v) {
		const char *name = seal_str2(sealed, "metadata", "name");
		const char *ns = seal_str2(sealed, "metadata", "namespace");
		enum lk_scope scope = seal_scope_of(sealed);
		const struct lk_key *to;
		struct lk_secret *pt = NULL;
		char label[LK_LABEL_MAX + 1], *ct = NULL;
		bool lk1;

		r = open_value(ks, sealed, key, v, &pt, err);
		if (r < 0)
			goto out;
		lk1 = strncmp(json_string_value(v), LK_LK1_TEXT_PREFIX,
			      strlen(LK_LK1_TEXT_PREFIX)) == 0;
		to = lk1 ? newest_x : newest_rsa;
		if (to == NULL) {
			lk_secret_free(pt);
			r = lk_error_set(err, -ENOKEY, "encryptedData.%s: no %s key to reseal with", key,
					 lk1 ? "lk1" : "RSA");
			goto out;
		}
		r = lk_scope_label(scope, ns, name, lk1 ? key : NULL, label, sizeof(label), err);
		if (r == 0)
			r = lk_key_seal(to, label, lk_secret_bytes(pt), lk_secret_len(pt), &ct, err);
		lk_secret_free(pt);
		if (r < 0) {
			lk_error_prefix(err, "encryptedData.%s", key);
			goto out;
		}
		r = json_object_set_new(enc, key, json_string(ct)) == 0 ? 0 : -ENOMEM;
		free(ct);
		if (r < 0) {
			lk_error_set(err, r, "out of memory");
			goto out;
		}
		changed++;
	}
	if (o->format != NULL)
		format = strcmp(o->format, "json") == 0 ? LK_MANIFEST_JSON : LK_MANIFEST_YAML;
	r = seal_write_manifest(o->out, sealed, format, 0644, false, err);
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
	r = seal_load_keys(ks, o.key, &err);
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
