/* cmd_seal.c — `latchkey seal`: Secret manifest → SealedSecret, or one raw value. */
#include "cli/seal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"

/* The most keys sealed from one Secret. */
#define SEAL_KEYS_MAX 4096
/* A data key: Kubernetes allows [-._a-zA-Z0-9]+ up to 253 characters. */
#define SEAL_DATA_KEY_MAX 253

struct seal_opts {
	const char *in, *out, *cert, *key_file, *scope_arg, *name, *ns, *from_file;
	const char *data_key, *merge_into, *format;
	bool raw, lk1, compat;
};

static void
seal_usage(FILE *f)
{
	fprintf(f,
		"usage: latchkey seal [-f FILE] [-o FILE] [--format yaml|json]\n"
		"                     [--cert FILE|URL | --envelope lk1 --key-file FILE]\n"
		"                     [--scope strict|namespace-wide|cluster-wide]\n"
		"                     [--compat sealed-secrets] [--merge-into FILE]\n"
		"       latchkey seal --raw --namespace NS --name NAME [--from-file [KEY=]PATH]\n"
		"                     [--data-key KEY] (--cert ... | --envelope lk1 --key-file ...)\n"
		"Reads a Secret manifest (YAML or JSON; stdin by default) and writes a SealedSecret.\n"
		"The certificate may also come from $LATCHKEY_CERT.\n");
}

static bool
valid_data_key(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > SEAL_DATA_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

/* Seals one value for key under the scope; sets out[key]. */
static int
seal_value(const struct lk_key *recipient, enum lk_scope scope, const char *ns, const char *name,
	   const char *key, const struct lk_secret *value, json_t *out, struct lk_error *err)
{
	char label[LK_LABEL_MAX + 1], *ct = NULL;
	bool lk1 = lk_key_kind(recipient) == LK_KEY_X25519;
	int r;

	r = lk_scope_label(scope, ns, name, lk1 ? key : NULL, label, sizeof(label), err);
	if (r < 0)
		return r;
	r = lk_key_seal(recipient, label, lk_secret_bytes(value), lk_secret_len(value), &ct, err);
	if (r < 0)
		return lk_error_prefix(err, "key %s", key);
	r = json_object_set_new(out, key, json_string(ct)) == 0 ? 0 : -ENOMEM;
	free(ct);
	if (r < 0)
		return lk_error_set(err, r, "out of memory");
	return 0;
}

static int
cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Seals data (base64) and stringData (plain, wins over data) of a Secret into enc. */
static int
seal_secret_values(const json_t *secret, const char *src, const struct lk_key *recipient,
		   enum lk_scope scope, const char *ns, const char *name, json_t *enc,
		   struct lk_error *err)
{
	const json_t *data = json_object_get(secret, "data");
	const json_t *sdata = json_object_get(secret, "stringData");
	const char **keys = NULL;
	size_t n = 0;
	const char *k;
	json_t *v;
	int r = 0;

	if ((data != NULL && !json_is_object(data) && !json_is_null(data)) ||
	    (sdata != NULL && !json_is_object(sdata) && !json_is_null(sdata)))
		return lk_error_set(err, -EINVAL, "%s: data and stringData must be mappings", src);
	keys = calloc(json_object_size(data) + json_object_size(sdata) + 1, sizeof(*keys));
	if (keys == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	json_object_foreach((json_t *)data, k, v) {
		if (json_object_get(sdata, k) == NULL)
			keys[n++] = k;
	}
	json_object_foreach((json_t *)sdata, k, v)
		keys[n++] = k;
	if (n > SEAL_KEYS_MAX) {
		r = lk_error_set(err, -E2BIG, "%s: more than %d keys", src, SEAL_KEYS_MAX);
		goto out;
	}
	qsort(keys, n, sizeof(*keys), cmp_keys);
	for (size_t i = 0; i < n; i++) {
		const json_t *sv = json_object_get(sdata, keys[i]);
		bool from_string = sv != NULL;
		struct lk_secret *value = NULL;

		if (!valid_data_key(keys[i])) {
			r = lk_error_set(err, -EINVAL,
					 "%s: key '%.100s' is not a valid Secret key ([-._a-zA-Z0-9]+)",
					 src, keys[i]);
			goto out;
		}
		if (!from_string)
			sv = json_object_get(data, keys[i]);
		if (!json_is_string(sv)) {
			r = lk_error_set(err, -EINVAL, "%s: %s.%s is not a string", src,
					 from_string ? "stringData" : "data", keys[i]);
			goto out;
		}
		if (from_string) {
			value = lk_secret_new(json_string_value(sv), json_string_length(sv));
			r = value == NULL ? -ENOMEM : 0;
		} else {
			r = lk_b64_decode(json_string_value(sv), json_string_length(sv), LK_B64_STD,
					  &value);
		}
		if (r < 0) {
			lk_error_set(err, r, "%s: %s.%s %s", src, from_string ? "stringData" : "data",
				     keys[i], r == -EINVAL ? "is not valid base64" : "is too large");
			goto out;
		}
		r = seal_value(recipient, scope, ns, name, keys[i], value, enc, err);
		lk_secret_free(value);
		if (r < 0)
			goto out;
	}
out:
	free(keys);
	return r;
}

static json_t *
template_metadata(const json_t *meta, const char *name, const char *ns)
{
	json_t *out = json_object(), *ann;
	const json_t *labels = json_object_get(meta, "labels");

	if (out == NULL)
		return NULL;
	if (name != NULL)
		json_object_set_new(out, "name", json_string(name));
	if (ns != NULL)
		json_object_set_new(out, "namespace", json_string(ns));
	if (json_is_object(labels) && json_object_size(labels) > 0)
		json_object_set_new(out, "labels", json_deep_copy(labels));
	ann = json_deep_copy(json_object_get(meta, "annotations"));
	if (json_is_object(ann)) {
		/* These hold the whole last-applied object, plaintext included. */
		json_object_del(ann, "kubectl.kubernetes.io/last-applied-configuration");
		json_object_del(ann, "kubecfg.ksonnet.io/last-applied-configuration");
		if (json_object_size(ann) > 0)
			json_object_set(out, "annotations", ann);
	}
	json_decref(ann);
	return out;
}

static int
raw_seal(const struct seal_opts *o, const struct lk_key *recipient, enum lk_scope scope,
	 struct lk_error *err)
{
	struct lk_secret *value = NULL;
	const char *path = o->from_file, *key = o->data_key;
	char *keybuf = NULL, *ct = NULL, label[LK_LABEL_MAX + 1];
	int r;

	if (path != NULL && strchr(path, '=') != NULL) {
		keybuf = strndup(path, (size_t)(strchr(path, '=') - path));
		if (keybuf == NULL)
			return lk_error_set(err, -ENOMEM, "out of memory");
		path = strchr(path, '=') + 1;
		if (key == NULL)
			key = keybuf;
	} else if (path != NULL && key == NULL) {
		key = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	}
	if (lk_key_kind(recipient) == LK_KEY_X25519 && scope == LK_SCOPE_STRICT && key == NULL) {
		r = lk_error_set(err, -EINVAL, "lk1 with strict scope binds the key name: give "
				 "--data-key KEY or --from-file KEY=PATH");
		goto out;
	}
	r = lk_scope_label(scope, o->ns, o->name,
			   lk_key_kind(recipient) == LK_KEY_X25519 ? key : NULL, label,
			   sizeof(label), err);
	if (r < 0)
		goto out;
	r = seal_read_input(path, &value, err);
	if (r < 0)
		goto out;
	r = lk_key_seal(recipient, label, lk_secret_bytes(value), lk_secret_len(value), &ct, err);
	if (r < 0)
		goto out;
	printf("%s\n", ct);
	r = fflush(stdout) == 0 ? 0 : lk_error_set(err, -EIO, "stdout: write failed");
out:
	lk_secret_free(value);
	free(keybuf);
	free(ct);
	return r;
}

static const char *
str_or(const char *a, const char *b)
{
	return a != NULL ? a : b;
}

static int
seal_manifest(const struct seal_opts *o, const struct lk_key *recipient, bool scope_given,
	      enum lk_scope scope, struct lk_error *err)
{
	json_t *secret = NULL, *target = NULL, *out = NULL, *enc, *meta;
	enum lk_manifest_format in_format = LK_MANIFEST_YAML, target_format, out_format;
	const char *src = o->in != NULL && strcmp(o->in, "-") != 0 ? o->in : "stdin";
	const char *kind, *name, *ns, *type;
	struct stat st;
	mode_t mode = 0644;
	int r;

	r = seal_read_manifest(o->in, true, &secret, &in_format, err);
	if (r < 0)
		goto out;
	kind = seal_str(secret, "kind");
	if (kind == NULL || strcmp(kind, "Secret") != 0) {
		r = lk_error_set(err, -EINVAL, "%s: kind is '%.60s', not Secret; refusing to seal", src,
				 kind ? kind : "(none)");
		goto out;
	}
	meta = json_object_get(secret, "metadata");
	name = seal_str(meta, "name");
	ns = seal_str(meta, "namespace");
	if (o->name != NULL && name != NULL && strcmp(o->name, name) != 0) {
		r = lk_error_set(err, -EINVAL, "%s: --name %s differs from metadata.name %s", src,
				 o->name, name);
		goto out;
	}
	if (o->ns != NULL && ns != NULL && strcmp(o->ns, ns) != 0) {
		r = lk_error_set(err, -EINVAL, "%s: --namespace %s differs from metadata.namespace %s",
				 src, o->ns, ns);
		goto out;
	}
	name = str_or(name, o->name);
	ns = str_or(ns, o->ns);
	if (!scope_given)
		scope = seal_scope_of(secret);
	if (o->merge_into != NULL) {
		const char *tname, *tns;

		r = seal_read_manifest(o->merge_into, false, &target, &target_format, err);
		if (r < 0)
			goto out;
		if (seal_str(target, "kind") == NULL || strcmp(seal_str(target, "kind"), "SealedSecret")) {
			r = lk_error_set(err, -EINVAL, "%s: not a SealedSecret", o->merge_into);
			goto out;
		}
		tname = seal_str2(target, "metadata", "name");
		tns = seal_str2(target, "metadata", "namespace");
		if ((name != NULL && tname != NULL && strcmp(name, tname) != 0) ||
		    (ns != NULL && tns != NULL && strcmp(ns, tns) != 0)) {
			r = lk_error_set(err, -EINVAL,
					 "%s: the Secret is %s/%s but the SealedSecret is %s/%s",
					 o->merge_into, str_or(ns, "-"), str_or(name, "-"),
					 str_or(tns, "-"), str_or(tname, "-"));
			goto out;
		}
		if (scope_given && scope != seal_scope_of(target)) {
			r = lk_error_set(err, -EINVAL, "%s: --scope %s differs from the file's scope %s",
					 o->merge_into, lk_scope_name(scope),
					 lk_scope_name(seal_scope_of(target)));
			goto out;
		}
		scope = seal_scope_of(target);
		name = str_or(tname, name);
		ns = str_or(tns, ns);
		enc = json_object_get(json_object_get(target, "spec"), "encryptedData");
		if (!json_is_object(enc)) {
			r = lk_error_set(err, -EINVAL, "%s: spec.encryptedData is missing",
					 o->merge_into);
			goto out;
		}
		if (stat(o->merge_into, &st) == 0)
			mode = st.st_mode & 07777;
	} else {
		out = json_object();
		enc = json_object();
		if (out == NULL || enc == NULL) {
			json_decref(enc);
			r = lk_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		json_object_set_new(out, "apiVersion",
				    json_string(o->compat ? SEAL_API_BITNAMI : SEAL_API_LATCHKEY));
		json_object_set_new(out, "kind", json_string("SealedSecret"));
		json_object_set_new(out, "metadata", json_object());
		if (name != NULL)
			json_object_set_new(json_object_get(out, "metadata"), "name", json_string(name));
		if (ns != NULL)
			json_object_set_new(json_object_get(out, "metadata"), "namespace",
					    json_string(ns));
		if (seal_set_scope_annotations(json_object_get(out, "metadata"), scope) < 0) {
			json_decref(enc);
			r = lk_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		json_object_set_new(out, "spec", json_pack("{s:o}", "encryptedData", enc));
	}
	if (scope == LK_SCOPE_STRICT && (ns == NULL || ns[0] == '\0')) {
		r = lk_error_set(err, -EINVAL, "%s: strict scope needs a namespace: set "
				 "metadata.namespace or --namespace (or use --scope cluster-wide)", src);
		goto out;
	}
	if (scope == LK_SCOPE_STRICT && (name == NULL || name[0] == '\0')) {
		r = lk_error_set(err, -EINVAL, "%s: strict scope needs a name: set metadata.name or "
				 "--name", src);
		goto out;
	}
	r = seal_secret_values(secret, src, recipient, scope, ns, name, enc, err);
	if (r < 0)
		goto out;
	if (o->merge_into != NULL) {
		out_format = target_format;
		if (o->format != NULL)
			out_format = strcmp(o->format, "json") == 0 ? LK_MANIFEST_JSON : LK_MANIFEST_YAML;
		r = seal_write_manifest(o->merge_into, target, out_format, mode, false, err);
		goto out;
	}
	{
		json_t *tmpl = json_object(), *tm;

		tm = template_metadata(meta, name, ns);
		if (tmpl == NULL || tm == NULL) {
			json_decref(tmpl);
			json_decref(tm);
			r = lk_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		json_object_set_new(tmpl, "metadata", tm);
		type = seal_str(secret, "type");
		if (type != NULL)
			json_object_set_new(tmpl, "type", json_string(type));
		if (json_is_boolean(json_object_get(secret, "immutable")))
			json_object_set(tmpl, "immutable", json_object_get(secret, "immutable"));
		json_object_set_new(json_object_get(out, "spec"), "template", tmpl);
	}
	out_format = in_format;
	if (o->format != NULL)
		out_format = strcmp(o->format, "json") == 0 ? LK_MANIFEST_JSON : LK_MANIFEST_YAML;
	r = seal_write_manifest(o->out, out, out_format, 0644, false, err);
out:
	seal_json_wipe_decref(secret);
	json_decref(target);
	json_decref(out);
	return r;
}

int
cmd_seal(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'F' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "envelope", required_argument, NULL, 'e' },
		{ "compat", required_argument, NULL, 'C' },
		{ "scope", required_argument, NULL, 's' },
		{ "raw", no_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'N' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "from-file", required_argument, NULL, 'i' },
		{ "data-key", required_argument, NULL, 'd' },
		{ "merge-into", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct seal_opts o;
	struct lk_key *recipient = NULL;
	struct lk_error err;
	enum lk_scope scope = LK_SCOPE_STRICT;
	const char *source;
	int c, r;

	memset(&o, 0, sizeof(o));
	lk_error_clear(&err);
	optind = 0;
	while ((c = getopt_long(argc, argv, "f:o:n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': o.in = optarg; break;
		case 'o': o.out = optarg; break;
		case 'F': o.format = optarg; break;
		case 'c': o.cert = optarg; break;
		case 'k': o.key_file = optarg; break;
		case 'e':
			if (strcmp(optarg, "lk1") == 0)
				o.lk1 = true;
			else if (strcmp(optarg, "sealed-secrets") != 0 && strcmp(optarg, "bitnami") != 0) {
				fprintf(stderr, "latchkey seal: --envelope is lk1 or sealed-secrets\n");
				return LK_EXIT_USAGE;
			}
			break;
		case 'C':
			if (strcmp(optarg, "sealed-secrets") != 0) {
				fprintf(stderr, "latchkey seal: --compat takes sealed-secrets\n");
				return LK_EXIT_USAGE;
			}
			o.compat = true;
			break;
		case 's': o.scope_arg = optarg; break;
		case 'r': o.raw = true; break;
		case 'N': o.name = optarg; break;
		case 'n': o.ns = optarg; break;
		case 'i': o.from_file = optarg; break;
		case 'd': o.data_key = optarg; break;
		case 'm': o.merge_into = optarg; break;
		case 'h':
			seal_usage(stdout);
			return LK_EXIT_OK;
		default:
			seal_usage(stderr);
			return LK_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "latchkey seal: unexpected argument '%s'\n", argv[optind]);
		return LK_EXIT_USAGE;
	}
	if (o.scope_arg != NULL && lk_scope_parse(o.scope_arg, &scope) < 0) {
		fprintf(stderr, "latchkey seal: --scope is strict, namespace-wide or cluster-wide\n");
		return LK_EXIT_USAGE;
	}
	if (o.format != NULL && strcmp(o.format, "yaml") != 0 && strcmp(o.format, "json") != 0) {
		fprintf(stderr, "latchkey seal: --format is yaml or json\n");
		return LK_EXIT_USAGE;
	}
	if (o.lk1 && o.compat) {
		fprintf(stderr, "latchkey seal: the sealed-secrets controller cannot open lk1; "
			"drop --compat or --envelope lk1\n");
		return LK_EXIT_USAGE;
	}
	if (o.raw && o.merge_into != NULL) {
		fprintf(stderr, "latchkey seal: --raw and --merge-into do not go together\n");
		return LK_EXIT_USAGE;
	}
	if (!o.raw && (o.from_file != NULL || o.data_key != NULL)) {
		fprintf(stderr, "latchkey seal: --from-file and --data-key need --raw\n");
		return LK_EXIT_USAGE;
	}
	source = o.lk1 ? (o.key_file != NULL ? o.key_file : o.cert) : o.cert;
	if (source == NULL && !o.lk1)
		source = getenv("LATCHKEY_CERT");
	if (source == NULL || source[0] == '\0') {
		fprintf(stderr, "latchkey seal: no recipient: give --cert FILE|URL%s\n",
			o.lk1 ? " or --key-file FILE (lk1 public key)" : " (or set LATCHKEY_CERT)");
		return LK_EXIT_USAGE;
	}
	if (lk_secret_init() < 0) {
		fprintf(stderr, "latchkey seal: libsodium failed to start\n");
		return LK_EXIT_FAILURE;
	}
	r = seal_load_recipient(source, o.lk1, &recipient, &err);
	if (r == 0) {
		if (o.raw)
			r = raw_seal(&o, recipient, scope, &err);
		else
			r = seal_manifest(&o, recipient, o.scope_arg != NULL, scope, &err);
	}
	lk_key_free(recipient);
	if (r < 0) {
		fprintf(stderr, "latchkey seal: %s\n", err.msg);
		return LK_EXIT_FAILURE;
	}
	return LK_EXIT_OK;
}
