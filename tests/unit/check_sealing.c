/* check_sealing.c — the sealing module: Secret → SealedSecret in both formats and back,
 * scopes binding values to where they were sealed, merging, resealing with a newer key,
 * key Secrets in Bitnami's shape, and the errors that name what was wrong. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "crypto/crypto.h"
#include "sealing/sealing.h"
#include "testutil.h"

static const char secret_text[] =
	"{\"apiVersion\":\"v1\",\"kind\":\"Secret\","
	"\"metadata\":{\"name\":\"db\",\"namespace\":\"app\",\"labels\":{\"team\":\"a\"},"
	"\"annotations\":{\"note\":\"kept\",\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\"}},"
	"\"type\":\"kubernetes.io/basic-auth\",\"immutable\":true,"
	"\"data\":{\"username\":\"YWRtaW4=\",\"password\":\"b2xk\"},"
	"\"stringData\":{\"password\":\"s3cr3t value\"}}";

static json_t *
secret(void)
{
	json_t *j = json_loads(secret_text, 0, NULL);

	ck_assert_ptr_nonnull(j);
	return j;
}

static struct lk_keyset *
keyset_with(struct lk_key *k)
{
	struct lk_keyset *ks = lk_keyset_new();

	ck_assert_ptr_nonnull(ks);
	ck_assert_int_eq(lk_keyset_add_take(ks, k), 0);
	return ks;
}

static struct lk_key *
x25519(void)
{
	struct lk_key *k = NULL;

	ck_assert_int_eq(lk_key_x25519_generate(&k), 0);
	return k;
}

static struct lk_key *
rsa(void)
{
	struct lk_error err = { 0 };
	struct lk_key *k = NULL;

	ck_assert_msg(lk_key_rsa_generate(2048, "test", 1, &k, &err) == 0, "%s", err.msg);
	return k;
}

static const char *
str2(const json_t *j, const char *a, const char *b)
{
	return lk_sealing_str2(j, a, b);
}

/* The opened Secret has the original values (stringData winning over data). */
static void
check_unsealed(const struct lk_keyset *ks, const json_t *sealed)
{
	struct lk_error err = { 0 };
	json_t *out = NULL;
	bool skipped = true;

	ck_assert_msg(lk_sealing_unseal(ks, sealed, &out, &skipped, &err) == 0, "%s", err.msg);
	ck_assert(!skipped);
	ck_assert_str_eq(lk_sealing_str(out, "kind"), "Secret");
	ck_assert_str_eq(str2(out, "metadata", "name"), "db");
	ck_assert_str_eq(str2(out, "metadata", "namespace"), "app");
	ck_assert_str_eq(str2(out, "data", "username"), "YWRtaW4=");
	ck_assert_str_eq(str2(out, "data", "password"), "czNjcjN0IHZhbHVl");
	ck_assert_str_eq(lk_sealing_str(out, "type"), "kubernetes.io/basic-auth");
	ck_assert(json_is_true(json_object_get(out, "immutable")));
	json_decref(out);
}

START_TEST(seal_and_unseal_both_formats)
{
	const struct lk_seal_options o = { 0 };
	struct lk_error err = { 0 };
	struct lk_key *keys[2] = { x25519(), rsa() };
	json_t *s = secret();

	for (int i = 0; i < 2; i++) {
		struct lk_keyset *ks = keyset_with(keys[i]);
		json_t *sealed = NULL, *tmeta, *enc;
		const char *v;

		ck_assert_msg(lk_sealing_seal_secret(s, "in.yaml", keys[i], &o, &sealed, &err) == 0,
			      "%s", err.msg);
		ck_assert_str_eq(lk_sealing_str(sealed, "apiVersion"), LK_SEALING_API_LATCHKEY);
		ck_assert_int_eq(lk_sealing_check_sealed(sealed, "x", &err), 0);
		enc = json_object_get(json_object_get(sealed, "spec"), "encryptedData");
		ck_assert_int_eq(json_object_size(enc), 2);
		v = lk_sealing_str(enc, "password");
		ck_assert_ptr_nonnull(v);
		/* No plaintext in the SealedSecret. */
		{
			char *text = json_dumps(sealed, 0);

			ck_assert_ptr_null(strstr(text, "s3cr3t"));
			ck_assert_ptr_null(strstr(text, "czNjcjN0"));
			free(text);
		}
		ck_assert_int_eq(strncmp(v, "lk1:", 4) == 0, i == 0);
		/* The template keeps labels and annotations, never the last-applied copy. */
		tmeta = json_object_get(json_object_get(json_object_get(sealed, "spec"), "template"),
					"metadata");
		ck_assert_str_eq(str2(tmeta, "labels", "team"), "a");
		ck_assert_str_eq(str2(tmeta, "annotations", "note"), "kept");
		ck_assert_ptr_null(json_object_get(json_object_get(tmeta, "annotations"),
						   "kubectl.kubernetes.io/last-applied-configuration"));
		check_unsealed(ks, sealed);
		json_decref(sealed);
		lk_keyset_free(ks);
	}
	json_decref(s);
}
END_TEST

START_TEST(scope_binds_values)
{
	const struct lk_seal_options strict = { 0 };
	const struct lk_seal_options wide = { .scope = LK_SCOPE_NAMESPACE, .scope_given = true };
	struct lk_error err = { 0 };
	struct lk_key *k = x25519();
	struct lk_keyset *ks = keyset_with(k);
	json_t *s = secret(), *sealed = NULL, *out = NULL, *enc;

	ck_assert_int_eq(lk_sealing_seal_secret(s, "in", k, &strict, &sealed, &err), 0);
	/* Copied to another namespace: it does not open, and the message names the key and
	 * the scope, not a value. */
	json_object_set_new(json_object_get(sealed, "metadata"), "namespace", json_string("other"));
	ck_assert_int_eq(lk_sealing_unseal(ks, sealed, &out, NULL, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "encryptedData."));
	ck_assert_ptr_nonnull(strstr(err.msg, "scope strict"));
	ck_assert_ptr_null(strstr(err.msg, "s3cr3t"));
	/* lk1 also binds the key: a value moved to another key fails. */
	json_object_set_new(json_object_get(sealed, "metadata"), "namespace", json_string("app"));
	enc = json_object_get(json_object_get(sealed, "spec"), "encryptedData");
	json_object_set(enc, "username", json_object_get(enc, "password"));
	ck_assert_int_eq(lk_sealing_unseal(ks, sealed, &out, NULL, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "username"));
	json_decref(sealed);

	/* Namespace-wide: the annotation is set and another name in the namespace opens. */
	ck_assert_int_eq(lk_sealing_seal_secret(s, "in", k, &wide, &sealed, &err), 0);
	ck_assert_int_eq(lk_sealing_scope_of(sealed), LK_SCOPE_NAMESPACE);
	ck_assert_str_eq(str2(json_object_get(sealed, "metadata"), "annotations",
			      LK_ANNOT_NAMESPACE_WIDE), "true");
	json_object_set_new(json_object_get(sealed, "metadata"), "name", json_string("renamed"));
	ck_assert_int_eq(lk_sealing_unseal(ks, sealed, &out, NULL, &err), 0);
	ck_assert_str_eq(str2(out, "metadata", "name"), "renamed");
	json_decref(out);
	json_decref(sealed);
	json_decref(s);
	lk_keyset_free(ks);
}
END_TEST

START_TEST(merge_and_reseal)
{
	const struct lk_seal_options o = { 0 };
	const struct lk_seal_options cluster = { .scope = LK_SCOPE_CLUSTER, .scope_given = true };
	struct lk_error err = { 0 };
	struct lk_key *old = x25519(), *newer = x25519();
	struct lk_keyset *ks = keyset_with(old), *only_new;
	json_t *s = secret(), *sealed = NULL, *extra, *enc;
	char *before;
	size_t changed = 0;

	ck_assert_int_eq(lk_sealing_seal_secret(s, "in", old, &o, &sealed, &err), 0);
	/* Merge one more key; the others stay as they are. */
	extra = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "Secret",
			  "metadata", "name", "db", "namespace", "app", "stringData", "token", "t-1");
	enc = json_object_get(json_object_get(sealed, "spec"), "encryptedData");
	before = strdup(lk_sealing_str(enc, "username"));
	ck_assert_int_eq(lk_sealing_merge(sealed, "sealed.yaml", extra, "in", old, &o, &err), 0);
	ck_assert_int_eq(json_object_size(enc), 3);
	ck_assert_str_eq(lk_sealing_str(enc, "username"), before);
	free(before);
	/* A disagreeing scope or name is refused, naming the file. */
	ck_assert_int_eq(lk_sealing_merge(sealed, "sealed.yaml", extra, "in", old, &cluster, &err),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "sealed.yaml: --scope cluster-wide differs"));
	json_object_set_new(json_object_get(extra, "metadata"), "name", json_string("other"));
	ck_assert_int_eq(lk_sealing_merge(sealed, "sealed.yaml", extra, "in", old, &o, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "the Secret is app/other but the SealedSecret is app/db"));

	/* Reseal to the newest key: afterwards the new key alone opens everything. */
	ck_assert_int_eq(lk_keyset_add_take(ks, newer), 0);
	ck_assert_int_eq(lk_sealing_reseal(ks, sealed, &changed, &err), 0);
	ck_assert_uint_eq(changed, 3);
	/* Values already with the newest key are left alone. */
	{
		char *again = strdup(lk_sealing_str(enc, "username"));

		ck_assert_int_eq(lk_sealing_reseal(ks, sealed, &changed, &err), 0);
		ck_assert_uint_eq(changed, 0);
		ck_assert_str_eq(lk_sealing_str(enc, "username"), again);
		free(again);
	}
	only_new = lk_keyset_new();
	{
		struct lk_secret *priv = NULL;
		struct lk_key *copy = NULL;

		ck_assert_int_eq(lk_key_x25519_private_text(newer, &priv), 0);
		ck_assert_int_eq(lk_key_x25519_parse(lk_secret_cstr(priv), lk_secret_len(priv), &copy,
						     &err), 0);
		lk_secret_free(priv);
		ck_assert_int_eq(lk_keyset_add_take(only_new, copy), 0);
	}
	check_unsealed(only_new, sealed);
	lk_keyset_free(only_new);
	json_decref(extra);
	json_decref(sealed);
	json_decref(s);
	lk_keyset_free(ks);
}
END_TEST

START_TEST(key_manifest_round_trip)
{
	const struct lk_seal_options o = { .compat = true };
	struct lk_error err = { 0 };
	struct lk_key *r = rsa(), *x = x25519();
	struct lk_keyset *ks = lk_keyset_new();
	json_t *manifest = NULL, *sealed = NULL, *s = secret(), *list;

	ck_assert_int_eq(lk_sealing_key_manifest(r, x, "latchkey-system", &manifest, &err), 0);
	ck_assert_str_eq(lk_sealing_str(manifest, "type"), "kubernetes.io/tls");
	ck_assert_str_eq(str2(json_object_get(manifest, "metadata"), "labels", LK_SEALING_KEY_LABEL),
			 "active");
	ck_assert_int_eq(strncmp(str2(manifest, "metadata", "name"), "sealed-secrets-key", 18), 0);
	ck_assert_ptr_nonnull(str2(manifest, "data", "tls.key"));
	ck_assert_ptr_nonnull(str2(manifest, "data", "lk1.key"));
	/* As the controller finds them: a List of key Secrets. */
	list = json_pack("{s:s, s:s, s:[O]}", "apiVersion", "v1", "kind", "List", "items", manifest);
	ck_assert_int_eq(lk_sealing_import_key_manifest(ks, list, "keys", &err), 0);
	ck_assert_uint_eq(lk_keyset_count(ks), 2);
	/* Bitnami's format to the RSA key opens with the imported set. */
	ck_assert_int_eq(lk_sealing_seal_secret(s, "in", r, &o, &sealed, &err), 0);
	ck_assert_str_eq(lk_sealing_str(sealed, "apiVersion"), LK_SEALING_API_BITNAMI);
	check_unsealed(ks, sealed);
	/* A Secret without a key is an error naming it. */
	ck_assert_int_eq(lk_sealing_import_key_manifest(ks, s, "plain.yaml", &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "plain.yaml: Secret db has no tls.key or lk1.key"));
	json_decref(list);
	json_decref(manifest);
	json_decref(sealed);
	json_decref(s);
	lk_keyset_free(ks);
	lk_key_free(r);
	lk_key_free(x);
}
END_TEST

START_TEST(errors_name_what_is_wrong)
{
	const struct lk_seal_options o = { 0 }, named = { .name = "web" };
	struct lk_error err = { 0 };
	struct lk_key *k = x25519();
	json_t *s = secret(), *sealed = NULL, *bad;

	ck_assert_int_eq(lk_sealing_seal_secret(s, "in.yaml", k, &named, &sealed, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "in.yaml: --name web differs from metadata.name db");
	bad = json_deep_copy(s);
	json_object_set_new(json_object_get(bad, "stringData"), "bad key", json_string("v"));
	ck_assert_int_eq(lk_sealing_seal_secret(bad, "in.yaml", k, &o, &sealed, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "key 'bad key' is not a valid Secret key"));
	json_decref(bad);
	bad = json_deep_copy(s);
	json_object_set_new(json_object_get(bad, "data"), "username", json_string("not base64!"));
	ck_assert_int_eq(lk_sealing_seal_secret(bad, "in.yaml", k, &o, &sealed, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "in.yaml: data.username is not valid base64");
	json_decref(bad);
	bad = json_deep_copy(s);
	json_object_set_new(bad, "kind", json_string("ConfigMap"));
	ck_assert_int_eq(lk_sealing_seal_secret(bad, "in.yaml", k, &o, &sealed, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "kind is 'ConfigMap', not Secret"));
	json_decref(bad);
	/* Strict scope without a namespace. */
	bad = json_deep_copy(s);
	json_object_del(json_object_get(bad, "metadata"), "namespace");
	ck_assert_int_eq(lk_sealing_seal_secret(bad, "in.yaml", k, &o, &sealed, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "strict scope needs a namespace"));
	json_decref(bad);
	/* Not a SealedSecret. */
	ck_assert_int_eq(lk_sealing_check_sealed(s, "s.yaml", &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "s.yaml: not a SealedSecret"));
	bad = json_pack("{s:s, s:s, s:{}}", "apiVersion", LK_SEALING_API_BITNAMI, "kind",
			"SealedSecret", "spec");
	ck_assert_int_eq(lk_sealing_check_sealed(bad, "s.yaml", &err), -EINVAL);
	ck_assert_str_eq(err.msg, "s.yaml: spec.encryptedData is missing");
	json_decref(bad);
	json_decref(s);
	lk_key_free(k);
}
END_TEST

START_TEST(scope_annotations)
{
	json_t *meta = json_object(), *obj = json_pack("{s:O}", "metadata", meta);

	ck_assert_int_eq(lk_sealing_scope_of(obj), LK_SCOPE_STRICT);
	ck_assert_int_eq(lk_sealing_set_scope_annotations(meta, LK_SCOPE_CLUSTER), 0);
	ck_assert_int_eq(lk_sealing_scope_of(obj), LK_SCOPE_CLUSTER);
	ck_assert_int_eq(lk_sealing_set_scope_annotations(meta, LK_SCOPE_NAMESPACE), 0);
	ck_assert_int_eq(lk_sealing_scope_of(obj), LK_SCOPE_NAMESPACE);
	ck_assert_ptr_null(json_object_get(json_object_get(meta, "annotations"), LK_ANNOT_CLUSTER_WIDE));
	/* Back to strict: the emptied annotations go. */
	ck_assert_int_eq(lk_sealing_set_scope_annotations(meta, LK_SCOPE_STRICT), 0);
	ck_assert_ptr_null(json_object_get(meta, "annotations"));
	json_decref(meta);
	json_decref(obj);
}
END_TEST

static Suite *
sealing_suite(void)
{
	Suite *s = suite_create("sealing");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, seal_and_unseal_both_formats);
	tcase_add_test(tc, scope_binds_values);
	tcase_add_test(tc, merge_and_reseal);
	tcase_add_test(tc, key_manifest_round_trip);
	tcase_add_test(tc, errors_name_what_is_wrong);
	tcase_add_test(tc, scope_annotations);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sealing_suite());
	int failed;

	lk_json_wipe_on_free();
	if (lk_secret_init() < 0)
		return EXIT_FAILURE;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
