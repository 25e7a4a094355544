/* cmd_keys.c — `latchkey keys`: the sealing keys of a cluster and which SealedSecrets
 * still use each, so that an admin knows when an old key can be retired.
 *
 * Reads the key Secrets of the controller's namespace (label
 * sealedsecrets.bitnami.com/sealed-secrets-key) and every SealedSecret (latchkey.io/v1 and,
 * where served, bitnami.com/v1alpha1); the keys that opened a SealedSecret are in its
 * status.sealingKeys, written by `latchkey sync`. Key ids come from the certificates (RSA)
 * and the lk1 keys; no value is opened.
 */
#include "cli/seal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "common/json.h"
#include "http/http.h"
#include "k8s/k8s.h"

/* Keys listed, at most. */
#define KEYS_MAX 256

struct key_row {
	char id[LK_KEY_ID_HEX + 1];
	const char *kind;
	char secret[LK_MANIFEST_NAME_MAX + 1];
	char state[64];
	time_t not_before, not_after;
	unsigned bits;
	json_t *users;                  /* "ns/name" of the SealedSecrets that use it */
};

struct keys_ctx {
	struct key_row rows[KEYS_MAX];
	size_t n;
	json_t *unknown;                /* SealedSecrets without status.sealingKeys */
	size_t sealed;
};

static const char *
str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static void
add_row(struct keys_ctx *k, const struct lk_key *key, const char *secret, const char *state)
{
	struct key_row *row;

	if (k->n == KEYS_MAX)
		return;
	row = &k->rows[k->n++];
	memset(row, 0, sizeof(*row));
	snprintf(row->id, sizeof(row->id), "%s", lk_key_id(key));
	row->kind = lk_key_kind(key) == LK_KEY_RSA ? "RSA" : "lk1";
	snprintf(row->secret, sizeof(row->secret), "%s", secret);
	snprintf(row->state, sizeof(row->state), "%s", state);
	row->not_before = lk_key_not_before(key);
	row->not_after = lk_key_not_after(key);
	row->bits = lk_key_bits(key);
	row->users = json_array();
}

/* One key Secret: its certificate (public) and lk1 key, for their ids. */
static int
key_secret(void *arg, json_t *item)
{
	struct keys_ctx *k = arg;
	const json_t *data = json_object_get(item, "data");
	const json_t *labels = json_object_get(json_object_get(item, "metadata"), "labels");
	const char *name = str(json_object_get(item, "metadata"), "name");
	const char *state = str(labels, LK_SEALING_KEY_LABEL);
	const char *crt = str(data, "tls.crt"), *x = str(data, "lk1.key");
	struct lk_secret *pem = NULL;
	struct lk_key *key = NULL;
	struct lk_error err;
	size_t first = k->n;

	lk_error_clear(&err);
	if (crt != NULL && lk_b64_decode(crt, strlen(crt), LK_B64_STD, &pem) == 0 &&
	    lk_key_rsa_from_pem(NULL, 0, lk_secret_cstr(pem), lk_secret_len(pem), true, &key, &err) == 0) {
		add_row(k, key, name, state != NULL ? state : "");
		key = lk_key_free(key);
	}
	pem = lk_secret_free(pem);
	if (x != NULL && lk_b64_decode(x, strlen(x), LK_B64_STD, &pem) == 0 &&
	    lk_key_x25519_parse(lk_secret_cstr(pem), lk_secret_len(pem), &key, &err) == 0) {
		add_row(k, key, name, state != NULL ? state : "");
		lk_key_free(key);
	}
	lk_secret_free(pem);
	if (k->n == first)
		fprintf(stderr, "latchkey keys: Secret %s holds no key latchkey can read%s%s\n",
			name != NULL ? name : "?", err.msg[0] ? ": " : "", err.msg);
	/* An lk1 key takes its Secret's RSA dates. */
	for (size_t i = first; i < k->n; i++)
		if (strcmp(k->rows[i].kind, "lk1") == 0 && first < k->n && strcmp(k->rows[first].kind, "RSA") == 0)
			k->rows[i].not_before = k->rows[first].not_before;
	return 0;
}

static int
sealed_secret(void *arg, json_t *item)
{
	struct keys_ctx *k = arg;
	const json_t *meta = json_object_get(item, "metadata");
	const json_t *ids = json_object_get(json_object_get(item, "status"), "sealingKeys");
	char who[2 * LK_MANIFEST_NAME_MAX + 2];
	json_t *id;
	size_t i;

	k->sealed++;
	snprintf(who, sizeof(who), "%s/%s", str(meta, "namespace") ? str(meta, "namespace") : "",
		 str(meta, "name") ? str(meta, "name") : "");
	if (json_array_size(ids) == 0) {
		json_array_append_new(k->unknown, json_string(who));
		return 0;
	}
	json_array_foreach(ids, i, id) {
		for (size_t j = 0; j < k->n; j++)
			if (json_is_string(id) && strcmp(json_string_value(id), k->rows[j].id) == 0)
				json_array_append_new(k->rows[j].users, json_string(who));
	}
	return 0;
}

/* Oldest first; a Secret's RSA key before its lk1 key. */
static int
cmp_rows(const void *a, const void *b)
{
	const struct key_row *x = a, *y = b;

	if (x->not_before != y->not_before)
		return x->not_before < y->not_before ? -1 : 1;
	if (strcmp(x->secret, y->secret) != 0)
		return strcmp(x->secret, y->secret);
	return strcmp(y->kind, x->kind);
}

static void
time_text(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	if (t == 0) {
		snprintf(out, outlen, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
print_table(const struct keys_ctx *k, bool wide)
{
	char nb[32];
	json_t *u;
	size_t i;

	printf("%-16s  %-4s  %-28s  %-8s  %-20s  %s\n", "KEY", "KIND", "SECRET", "STATE", "CREATED",
	       "SEALEDSECRETS");
	for (size_t r = 0; r < k->n; r++) {
		time_text(k->rows[r].not_before, nb, sizeof(nb));
		printf("%-16s  %-4s  %-28s  %-8s  %-20s  %zu\n", k->rows[r].id, k->rows[r].kind,
		       k->rows[r].secret, k->rows[r].state, nb, json_array_size(k->rows[r].users));
		if (wide)
			json_array_foreach(k->rows[r].users, i, u)
				printf("    %s\n", json_string_value(u));
	}
	if (json_array_size(k->unknown) > 0) {
		printf("%zu SealedSecret(s) name no key yet (not synced, or failing):", json_array_size(k->unknown));
		json_array_foreach(k->unknown, i, u)
			printf(" %s", json_string_value(u));
		printf("\n");
	}
}

static void
print_json(const struct keys_ctx *k)
{
	json_t *out = json_object(), *keys = json_array();
	char nb[32], na[32];
	char *text;

	for (size_t r = 0; r < k->n; r++) {
		time_text(k->rows[r].not_before, nb, sizeof(nb));
		time_text(k->rows[r].not_after, na, sizeof(na));
		json_array_append_new(keys, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:O}",
			"id", k->rows[r].id, "kind", k->rows[r].kind, "secret", k->rows[r].secret,
			"state", k->rows[r].state, "notBefore", nb, "notAfter", na, "bits",
			(int)k->rows[r].bits, "sealedSecrets", k->rows[r].users));
	}
	json_object_set_new(out, "keys", keys);
	json_object_set(out, "withoutKey", k->unknown);
	text = json_dumps(out, JSON_INDENT(2));
	if (text != NULL)
		printf("%s\n", text);
	free(text);
	json_decref(out);
}

int
cmd_keys(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "kubeconfig", required_argument, NULL, 'K' },
		{ "controller-namespace", required_argument, NULL, 'n' },
		{ "wide", no_argument, NULL, 'w' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct lk_k8s_resource kinds[2] = {
		{ "latchkey.io", "v1", "sealedsecrets", "SealedSecret", true },
		{ "bitnami.com", "v1alpha1", "sealedsecrets", "SealedSecret", true },
	};
	const char *kubeconfig = NULL, *ns = getenv("POD_NAMESPACE"), *output = "table";
	struct lk_k8s_client *client = NULL;
	struct lk_k8s_config cfg;
	struct lk_k8s_error kerr;
	struct lk_error err;
	struct keys_ctx *k;
	bool wide = false;
	int c, r, rc = LK_EXIT_FAILURE;

	if (ns == NULL || ns[0] == '\0')
		ns = "latchkey-system";
	optind = 0;
	while ((c = getopt_long(argc, argv, "n:o:wh", longopts, NULL)) != -1) {
		switch (c) {
		case 'K': kubeconfig = optarg; break;
		case 'n': ns = optarg; break;
		case 'w': wide = true; break;
		case 'o': output = optarg; break;
		case 'h':
			printf("usage: latchkey keys [--kubeconfig FILE] [--controller-namespace NS] [--wide]\n"
			       "                     [--output table|json]\n"
			       "Lists the sealing keys in NS (default $POD_NAMESPACE, else latchkey-system)\n"
			       "and how many SealedSecrets still open with each (--wide: which). A key that\n"
			       "none uses may be retired once `latchkey reseal` has moved Git to the newest.\n");
			return LK_EXIT_OK;
		default:
			fprintf(stderr, "usage: latchkey keys [--kubeconfig FILE] [--controller-namespace NS] "
				"[--wide] [--output table|json]\n");
			return LK_EXIT_USAGE;
		}
	}
	if (optind < argc || (strcmp(output, "table") != 0 && strcmp(output, "json") != 0)) {
		fprintf(stderr, "latchkey keys: %s\n", optind < argc ? "unexpected argument" :
			"--output is table or json");
		return LK_EXIT_USAGE;
	}
	if (lk_secret_init() < 0 || lk_http_global_init() < 0 || (k = calloc(1, sizeof(*k))) == NULL) {
		fprintf(stderr, "latchkey keys: cannot start (libsodium or memory)\n");
		return LK_EXIT_FAILURE;
	}
	lk_json_wipe_on_free();
	lk_error_clear(&err);
	lk_k8s_config_init(&cfg);
	k->unknown = json_array();
	if (lk_k8s_config_load(kubeconfig, &cfg, &err) < 0 || lk_k8s_client_new(&cfg, &client, &err) < 0) {
		fprintf(stderr, "latchkey keys: %s\n", err.msg);
		rc = LK_EXIT_USAGE;
		goto out;
	}
	r = lk_k8s_list(client, &lk_k8s_secrets, ns, LK_SEALING_KEY_LABEL, key_secret, k, NULL, 0, &kerr);
	if (r < 0) {
		fprintf(stderr, "latchkey keys: the key Secrets in %s: %s\n", ns, kerr.base.msg);
		goto out;
	}
	for (size_t i = 0; i < 2; i++) {
		if (lk_k8s_served(client, &kinds[i], &kerr) == -ENOENT)
			continue;
		r = lk_k8s_list(client, &kinds[i], NULL, NULL, sealed_secret, k, NULL, 0, &kerr);
		if (r < 0) {
			fprintf(stderr, "latchkey keys: SealedSecrets (%s): %s\n", kinds[i].group, kerr.base.msg);
			goto out;
		}
	}
	qsort(k->rows, k->n, sizeof(k->rows[0]), cmp_rows);
	if (strcmp(output, "json") == 0)
		print_json(k);
	else
		print_table(k, wide);
	rc = LK_EXIT_OK;
out:
	for (size_t i = 0; i < k->n; i++)
		json_decref(k->rows[i].users);
	json_decref(k->unknown);
	free(k);
	lk_k8s_client_free(client);
	lk_k8s_config_clear(&cfg);
	lk_http_global_cleanup();
	return rc;
}
