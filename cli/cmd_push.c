/* cmd_push.c — `latchkey push`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "manifest/manifest.h"
#include "cli/push.h"
#include "common/clock.h"
#include "http/http.h"
#include "crypto/secret.h"
#include "vault/vault.h"

/* The most keys one push writes. */
#define PUSH_KEYS_MAX 256
/* The largest value read from a file or stdin (KV values travel in one JSON body). */
#define PUSH_VALUE_MAX (512u << 10)

struct push_opts {
	const char *path;          /* as given: MOUNT/data/PATH */
	char *mount;               /* owned */
	char *kv_path;             /* owned: PATH under the mount */
	const char *name;
	const char *namespace;
	const char *store;
	const char *store_kind;
	const char *refresh;
	const char *api;
	enum lk_manifest_format format;
	bool merge;
	long long cas;
};

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: latchkey push --path MOUNT/data/PATH [options] KEY=VALUE|KEY=@FILE|KEY=- ...\n"
		"\n"
		"Writes the values to the backend's KV v2 engine and prints an ExternalSecret that\n"
		"references them, for committing instead of the values. KEY=@FILE reads a file,\n"
		"KEY=- reads standard input without its trailing newline (prefer these two: command\n"
		"lines are visible to other users).\n"
		"The backend is VAULT_ADDR with VAULT_TOKEN, or the token in ~/.vault-token.\n"
		"\n"
		"options:\n"
		"  --path P          KV v2 path, e.g. secret/data/app/api (required)\n"
		"  --merge           keep the keys already stored at the path (check-and-set)\n"
		"  --cas N           write only if the current version is N (0: only if new)\n"
		"  --name NAME       ExternalSecret and target Secret name (default: last path segment)\n"
		"  --namespace NS    metadata.namespace of the ExternalSecret\n"
		"  --store NAME      the SecretStore to reference (default: vault)\n"
		"  --cluster-store   reference a ClusterSecretStore\n"
		"  --refresh D       spec.refreshInterval (default: 1h0m0s)\n"
		"  --compat external-secrets   apiVersion external-secrets.io/v1 instead of latchkey.io/v1\n"
		"  --format yaml|json          output format (default: yaml)\n");
}

/* Splits MOUNT/data/PATH. */
static int
split_path(struct push_opts *o)
{
	const char *p = o->path, *d;

	while (*p == '/')
		p++;
	d = strstr(p, "/data/");
	if (d == NULL || d == p || d[6] == '\0') {
		fprintf(stderr, "latchkey push: --path %s: expected a KV v2 path MOUNT/data/PATH, "
			"such as secret/data/app/api\n", o->path);
		return -EINVAL;
	}
	o->mount = strndup(p, (size_t)(d - p));
	o->kv_path = strdup(d + 6);
	if (o->mount == NULL || o->kv_path == NULL)
		return -ENOMEM;
	/* Trailing slashes name no secret. */
	for (size_t n = strlen(o->kv_path); n > 0 && o->kv_path[n - 1] == '/'; n--)
		o->kv_path[n - 1] = '\0';
	if (o->kv_path[0] == '\0') {
		fprintf(stderr, "latchkey push: --path %s: the path under the mount is empty\n", o->path);
		return -EINVAL;
	}
	return 0;
}

/* Reads a value from a file or stdin (path "-") into secure memory. */
static int
read_value(const char *key, const char *path, struct lk_secret **ret)
{
	int r;

	/* A file is taken byte for byte (a PEM file ends in a newline); standard input loses
	 * one trailing newline, which `echo` adds. */
	if (strcmp(path, "-") == 0)
		r = lk_secret_read_fd(STDIN_FILENO, PUSH_VALUE_MAX, true, ret);
	else
		r = lk_secret_read_file(path, PUSH_VALUE_MAX, false, ret);
	if (r == -E2BIG)
		fprintf(stderr, "latchkey push: %s: %s is larger than %u bytes\n", key,
			strcmp(path, "-") == 0 ? "standard input" : path, PUSH_VALUE_MAX);
	else if (r < 0)
		fprintf(stderr, "latchkey push: %s: cannot read %s: %s\n", key,
			strcmp(path, "-") == 0 ? "standard input" : path, strerror(-r));
	return r;
}

/* Parses KEY=VALUE|KEY=@FILE|KEY=- arguments into data (values as JSON strings). */
static int
collect_values(int argc, char **argv, json_t *data)
{
	bool stdin_used = false;

	if (argc == 0) {
		fprintf(stderr, "latchkey push: no KEY=VALUE given\n");
		return -EINVAL;
	}
	if (argc > PUSH_KEYS_MAX) {
		fprintf(stderr, "latchkey push: more than %d keys\n", PUSH_KEYS_MAX);
		return -EINVAL;
	}
	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		struct lk_secret *v = NULL;
		char key[256];
		json_t *s;
		int r;

		if (eq == NULL || !lk_manifest_secret_key_valid(argv[i], (size_t)(eq - argv[i]))) {
			/* Name only what precedes '=': the rest may be a value. */
			size_t n = eq != NULL ? (size_t)(eq - argv[i]) : 0;
			fprintf(stderr, "latchkey push: argument %d: expected KEY=VALUE, KEY=@FILE or "
				"KEY=- with KEY made of letters, digits, '-', '.' and '_'%s%.*s%s\n",
				i + 1, n ? " (got key '" : "", (int)(n > 64 ? 64 : n), argv[i],
				n ? "')" : "");
			return -EINVAL;
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - argv[i]), argv[i]);
		if (json_object_get(data, key) != NULL) {
			fprintf(stderr, "latchkey push: %s: given twice\n", key);
			return -EINVAL;
		}
		if (strcmp(eq + 1, "-") == 0) {
			if (stdin_used) {
				fprintf(stderr, "latchkey push: %s: standard input is already used by "
					"another key\n", key);
				return -EINVAL;
			}
			stdin_used = true;
			r = read_value(key, "-", &v);
		} else if (eq[1] == '@') {
			r = read_value(key, eq + 2, &v);
		} else {
			v = lk_secret_from_str(eq + 1);
			r = v != NULL ? 0 : -ENOMEM;
		}
		if (r < 0)
			return r;
		s = json_stringn(lk_secret_cstr(v), lk_secret_len(v));
		v = lk_secret_free(v);
		if (s == NULL) {
			fprintf(stderr, "latchkey push: %s: the value is not UTF-8 text (KV values are "
				"JSON strings: base64-encode binary data first)\n", key);
			return -EINVAL;
		}
		json_object_set_new(data, key, s);
	}
	return 0;
}

/* The ExternalSecret that references every key of data at the pushed path. */
static json_t *
external_secret(const struct push_opts *o, const json_t *data)
{
	json_t *es, *list, *meta;
	const char *key;
	json_t *v;
	char *remote;

	if (asprintf(&remote, "%s/%s", o->mount, o->kv_path) < 0)
		return NULL;
	list = json_array();
	json_object_foreach((json_t *)data, key, v) {
		json_array_append_new(list, json_pack("{s:s, s:{s:s, s:s}}", "secretKey", key,
						      "remoteRef", "key", remote, "property", key));
	}
	meta = json_pack("{s:s}", "name", o->name);
	if (o->namespace != NULL)
		json_object_set_new(meta, "namespace", json_string(o->namespace));
	es = json_pack("{s:s, s:s, s:o, s:{s:{s:s, s:s}, s:s, s:{s:s, s:s}, s:o}}",
		       "apiVersion", o->api, "kind", "ExternalSecret", "metadata", meta,
		       "spec", "secretStoreRef", "name", o->store, "kind", o->store_kind,
		       "refreshInterval", o->refresh,
		       "target", "name", o->name, "creationPolicy", "Owner",
		       "data", list);
	free(remote);
	return es;
}

/* The token: VAULT_TOKEN (taken by lk_vault_config_from_env), else ~/.vault-token. */
static int
load_token(struct lk_vault_config *cfg)
{
	const char *home = getenv("HOME");
	char path[4096];
	int r;

	if (cfg->token != NULL || home == NULL)
		return 0;
	snprintf(path, sizeof(path), "%s/.vault-token", home);
	if (access(path, F_OK) != 0)
		return 0;
	r = lk_secret_read_file(path, LK_VAULT_CREDENTIAL_FILE_MAX, true, &cfg->token);
	if (r < 0)
		fprintf(stderr, "latchkey push: %s: %s\n", path, strerror(-r));
	return r;
}

int
cmd_push(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "path", required_argument, NULL, 'p' },
		{ "merge", no_argument, NULL, 'm' },
		{ "cas", required_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'N' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "store", required_argument, NULL, 's' },
		{ "cluster-store", no_argument, NULL, 'C' },
		{ "refresh", required_argument, NULL, 'r' },
		{ "compat", required_argument, NULL, 'x' },
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct push_opts o = {
		.store = "vault", .store_kind = "SecretStore", .refresh = "1h0m0s",
		.api = "latchkey.io/v1", .format = LK_MANIFEST_YAML, .cas = -1,
	};
	struct lk_vault_config cfg;
	struct lk_vault_client *client = NULL;
	struct lk_vault_error verr;
	struct lk_vault_kv_secret current = { 0 };
	struct lk_error err;
	json_t *data = NULL, *es = NULL, *warnings = NULL;
	char *out = NULL, *name_buf = NULL, *end;
	int64_t version = 0, ms;
	size_t out_len;
	int c, rc = LK_EXIT_USAGE;

	lk_vault_config_init(&cfg);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': o.path = optarg; break;
		case 'm': o.merge = true; break;
		case 'c':
			errno = 0;
			o.cas = strtoll(optarg, &end, 10);
			if (errno != 0 || *optarg == '\0' || *end != '\0' || o.cas < 0) {
				fprintf(stderr, "latchkey push: --cas: expected a version number >= 0\n");
				goto out;
			}
			break;
		case 'N': o.name = optarg; break;
		case 'n': o.namespace = optarg; break;
		case 's': o.store = optarg; break;
		case 'C': o.store_kind = "ClusterSecretStore"; break;
		case 'r':
			if (lk_duration_parse(optarg, &ms) < 0) {
				fprintf(stderr, "latchkey push: --refresh: expected a duration such as 1h or 15m\n");
				goto out;
			}
			o.refresh = optarg;
			break;
		case 'x':
			if (strcmp(optarg, "external-secrets") != 0) {
				fprintf(stderr, "latchkey push: --compat: expected external-secrets\n");
				goto out;
			}
			o.api = "external-secrets.io/v1";
			break;
		case 'f':
			if (strcmp(optarg, "yaml") == 0)
				o.format = LK_MANIFEST_YAML;
			else if (strcmp(optarg, "json") == 0)
				o.format = LK_MANIFEST_JSON;
			else {
				fprintf(stderr, "latchkey push: --format: expected yaml or json\n");
				goto out;
			}
			break;
		case 'h':
			usage(stdout);
			rc = LK_EXIT_OK;
			goto out;
		default:
			fprintf(stderr, "latchkey push: see 'latchkey push --help'\n");
			goto out;
		}
	}
	if (o.path == NULL) {
		fprintf(stderr, "latchkey push: --path is required (e.g. --path secret/data/app/api)\n");
		goto out;
	}
	if (o.merge && o.cas >= 0) {
		fprintf(stderr, "latchkey push: --merge and --cas exclude each other (--merge checks the version itself)\n");
		goto out;
	}
	if (split_path(&o) < 0)
		goto out;
	if (o.name == NULL) {
		const char *slash = strrchr(o.kv_path, '/');
		name_buf = strdup(slash != NULL ? slash + 1 : o.kv_path);
		for (char *p = name_buf; p != NULL && *p; p++)
			if (*p == '_')
				*p = '-';
			else if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		o.name = name_buf;
	}
	if (o.name == NULL || !lk_manifest_subdomain_valid(o.name)) {
		fprintf(stderr, "latchkey push: name '%s': expected a DNS-1123 name (lowercase letters, "
			"digits, '-' and '.'); set one with --name\n", o.name ? o.name : "");
		goto out;
	}
	if (o.namespace != NULL && !lk_manifest_label_valid(o.namespace)) {
		fprintf(stderr, "latchkey push: --namespace: expected a DNS-1123 name\n");
		goto out;
	}
	if (lk_secret_init() < 0 || lk_http_global_init() < 0) {
		fprintf(stderr, "latchkey push: cannot initialise libsodium or libcurl\n");
		rc = LK_EXIT_FAILURE;
		goto out;
	}
	data = json_object();
	if (data == NULL || collect_values(argc - optind, argv + optind, data) < 0)
		goto out;

	rc = LK_EXIT_FAILURE;
	if (lk_vault_config_from_env(&cfg, &verr) < 0 || load_token(&cfg) < 0) {
		fprintf(stderr, "latchkey push: %s\n", verr.base.msg);
		goto out;
	}
	if (cfg.token == NULL) {
		fprintf(stderr, "latchkey push: no token: set VAULT_TOKEN or log in so that "
			"~/.vault-token exists\n");
		rc = LK_EXIT_USAGE;
		goto out;
	}
	if (lk_vault_client_new(&cfg, &client, &verr) < 0) {
		fprintf(stderr, "latchkey push: %s\n", verr.base.msg);
		rc = LK_EXIT_USAGE;
		goto out;
	}
	if (o.merge) {
		int r = lk_vault_kv_read_v2(client, o.mount, o.kv_path, 0, &current, &verr);
		if (r == 0) {
			const char *k;
			json_t *v;
			/* The keys given win; the others stay as stored. */
			json_object_foreach(current.data, k, v) {
				if (json_object_get(data, k) == NULL)
					json_object_set(data, k, v);
			}
			o.cas = current.version;
		} else if (r == -ENOENT && verr.not_found != LK_VAULT_NF_NO_ROUTE) {
			/* Nothing there yet, or the latest version deleted: a new version on top. */
			o.cas = verr.not_found == LK_VAULT_NF_MISSING ? 0 : verr.version;
		} else {
			fprintf(stderr, "latchkey push: %s\n", verr.base.msg);
			goto out;
		}
	}
	if (lk_vault_kv_write_v2(client, o.mount, o.kv_path, data, o.cas, &version, &warnings,
				 &verr) < 0) {
		fprintf(stderr, "latchkey push: %s\n", verr.base.msg);
		if (verr.status == 400 && o.cas >= 0)
			fprintf(stderr, "latchkey push: the secret changed meanwhile (check-and-set); "
				"run the command again\n");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(warnings); i++)
		fprintf(stderr, "latchkey push: warning from the backend: %s\n",
			json_string_value(json_array_get(warnings, i)));
	fprintf(stderr, "latchkey push: wrote %zu keys to %s/data/%s, version %lld\n",
		json_object_size(data), o.mount, o.kv_path, (long long)version);

	es = external_secret(&o, data);
	if (es == NULL || lk_manifest_dump(es, o.format, &out, &out_len, &err) < 0) {
		fprintf(stderr, "latchkey push: cannot write the ExternalSecret: %s\n",
			es == NULL ? "out of memory" : err.msg);
		goto out;
	}
	if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0) {
		fprintf(stderr, "latchkey push: cannot write to standard output\n");
		goto out;
	}
	rc = LK_EXIT_OK;
out:
	lk_vault_kv_secret_clear(&current);
	json_decref(data);
	json_decref(es);
	json_decref(warnings);
	free(out);
	free(name_buf);
	free(o.mount);
	free(o.kv_path);
	lk_vault_client_free(client);
	lk_vault_config_clear(&cfg);
	return rc;
}
