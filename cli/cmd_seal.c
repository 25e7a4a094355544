/* cmd_seal.c — `latchkey seal`: Secret manifest → SealedSecret, or one raw value. */
#include "cli/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/file.h"

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

/* Reads a value to seal from path (NULL or "-": stdin, which may be a socket). */
static int
read_value(const char *path, struct lk_secret **ret, struct lk_error *err)
{
	int fd = STDIN_FILENO, r;

	if (!lk_file_is_std(path) && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return lk_error_set(err, -errno, "%s: %s", path, strerror(errno));
	r = lk_secret_read_fd(fd, LK_SECRET_MAX, false, ret);
	if (fd != STDIN_FILENO)
		close(fd);
	if (r == -E2BIG)
		return lk_error_set(err, r, "%s: larger than %u bytes", lk_file_shown(path),
				    LK_SECRET_MAX);
	if (r < 0)
		return lk_error_set(err, r, "%s: %s", lk_file_shown(path), strerror(-r));
	return 0;
}

static int
raw_seal(const struct seal_opts *o, const struct lk_key *recipient, enum lk_scope scope,
	 struct lk_error *err)
{
	struct lk_secret *value = NULL;
	const char *path = o->from_file, *key = o->data_key;
	char *keybuf = NULL, *ct = NULL;
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
	/* The scope is checked before anything is read. */
	{
		char label[LK_LABEL_MAX + 1];

		r = lk_scope_label(scope, o->ns, o->name,
				   lk_key_kind(recipient) == LK_KEY_X25519 ? key : NULL, label,
				   sizeof(label), err);
		if (r < 0)
			goto out;
	}
	if ((r = read_value(path, &value, err)) < 0)
		goto out;
	r = lk_sealing_seal_value(recipient, scope, o->ns, o->name, key, value, &ct, err);
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

static enum lk_manifest_format
out_format(const struct seal_opts *o, enum lk_manifest_format dflt)
{
	if (o->format == NULL)
		return dflt;
	return strcmp(o->format, "json") == 0 ? LK_MANIFEST_JSON : LK_MANIFEST_YAML;
}

static int
seal_manifest(const struct seal_opts *o, const struct lk_key *recipient, bool scope_given,
	      enum lk_scope scope, struct lk_error *err)
{
	const struct lk_seal_options so = {
		.scope = scope, .scope_given = scope_given, .name = o->name, .ns = o->ns,
		.compat = o->compat,
	};
	json_t *secret = NULL, *target = NULL, *out = NULL;
	enum lk_manifest_format in_format = LK_MANIFEST_YAML, target_format;
	const char *src = lk_file_shown(o->in);
	struct stat st;
	mode_t mode = 0644;
	int r;

	if ((r = lk_sealing_read_manifest(o->in, true, &secret, &in_format, err)) < 0)
		goto out;
	if (o->merge_into != NULL) {
		r = lk_sealing_read_manifest(o->merge_into, false, &target, &target_format, err);
		if (r < 0)
			goto out;
		r = lk_sealing_merge(target, o->merge_into, secret, src, recipient, &so, err);
		if (r < 0)
			goto out;
		if (stat(o->merge_into, &st) == 0)
			mode = st.st_mode & 07777;
		r = seal_write_manifest(o->merge_into, target, out_format(o, target_format), mode,
					false, err);
		goto out;
	}
	if ((r = lk_sealing_seal_secret(secret, src, recipient, &so, &out, err)) < 0)
		goto out;
	r = seal_write_manifest(o->out, out, out_format(o, in_format), 0644, false, err);
out:
	json_decref(secret);
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
	r = lk_sealing_load_recipient(source, o.lk1, &recipient, &err);
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
