/* check_crypto.c — encodings, scope labels, the lk1 envelope, the Bitnami hybrid
 * format, keys, certificates and key sets. */
#include <check.h>
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "crypto/key_internal.h"
#include "testutil.h"

/* Small RSA keys keep the tests quick; the format does not depend on the size. */
#define TEST_BITS 2048

static struct lk_key *
rsa_key(void)
{
	struct lk_key *k = NULL;
	struct lk_error err;

	ck_assert_int_eq(lk_key_rsa_generate(TEST_BITS, "test", 30, &k, &err), 0);
	return k;
}

static struct lk_key *
x_key(void)
{
	struct lk_key *k = NULL;

	ck_assert_int_eq(lk_key_x25519_generate(&k), 0);
	return k;
}

static struct lk_keyset *
set_of(struct lk_key *a, struct lk_key *b)
{
	struct lk_keyset *ks = lk_keyset_new();

	ck_assert_ptr_nonnull(ks);
	if (a != NULL)
		ck_assert_int_eq(lk_keyset_add_take(ks, a), 0);
	if (b != NULL)
		ck_assert_int_eq(lk_keyset_add_take(ks, b), 0);
	return ks;
}

static void
setup(void)
{
	ck_assert_int_eq(lk_secret_init(), 0);
}

/* ---- encodings ---- */

START_TEST(b64_round_trip_and_strictness)
{
	const unsigned char raw[] = { 0xfb, 0xff, 0x00, 0x10, 0x7e };
	struct lk_secret *s = NULL;
	unsigned char *out = NULL;
	size_t n = 0;
	char *t = NULL;

	ck_assert_int_eq(lk_b64_encode(raw, sizeof(raw), LK_B64_STD, &t), 0);
	ck_assert_str_eq(t, "+/8AEH4=");
	free(t);
	ck_assert_int_eq(lk_b64_encode(raw, sizeof(raw), LK_B64_URL, &t), 0);
	ck_assert_str_eq(t, "-_8AEH4=");
	free(t);
	ck_assert_int_eq(lk_b64_encode(raw, sizeof(raw), LK_B64_URL_NOPAD, &t), 0);
	ck_assert_str_eq(t, "-_8AEH4");
	free(t);
	ck_assert_int_eq(lk_b64_decode("+/8AEH4=", 8, LK_B64_STD, &s), 0);
	ck_assert_uint_eq(lk_secret_len(s), sizeof(raw));
	ck_assert(memcmp(lk_secret_bytes(s), raw, sizeof(raw)) == 0);
	lk_secret_free(s);
	ck_assert_int_eq(lk_b64_decode_raw("-_8AEH4", 7, LK_B64_URL_NOPAD, &out, &n), 0);
	ck_assert_uint_eq(n, sizeof(raw));
	ck_assert(memcmp(out, raw, n) == 0);
	free(out);
	/* missing padding, wrong alphabet, whitespace, non-canonical trailing bits */
	ck_assert_int_eq(lk_b64_decode("+/8AEH4", 7, LK_B64_STD, &s), -EINVAL);
	ck_assert_int_eq(lk_b64_decode("-_8AEH4=", 8, LK_B64_STD, &s), -EINVAL);
	ck_assert_int_eq(lk_b64_decode("+/8A EH4=", 9, LK_B64_STD, &s), -EINVAL);
	ck_assert_int_eq(lk_b64_decode("+/8AEH5=", 8, LK_B64_STD, &s), -EINVAL);
	ck_assert_int_eq(lk_b64_decode("", 0, LK_B64_STD, &s), 0);
	ck_assert_uint_eq(lk_secret_len(s), 0);
	lk_secret_free(s);
}
END_TEST

/* Go's StdEncoding, as the API server and Bitnami's controller read base64: line breaks
 * skipped, spare bits unchecked, padding and the alphabet still required. */
START_TEST(b64_as_go_reads_it)
{
	static const unsigned char want[] = { 0xfb, 0xff, 0x00, 0x10, 0x7e };
	static const char *const good[] = { "+/8AEH4=", "+/8A\r\nEH4=", "+/8AE\nH4=\n", "+/8AEH5=",
		"\n+/8AEH4=" };
	static const char *const bad[] = { "+/8AEH4", "-_8AEH4=", "+/8A EH4=", "+/8AEH4==",
		"+/8=AEH4", "+/8AE===", "+/8AEH4=A" };
	struct lk_secret *s = NULL;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_msg(lk_b64_decode(good[i], strlen(good[i]), LK_B64_STD_GO, &s) == 0, "%zu", i);
		ck_assert_uint_eq(lk_secret_len(s), sizeof(want));
		ck_assert(memcmp(lk_secret_bytes(s), want, sizeof(want)) == 0);
		s = lk_secret_free(s);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(lk_b64_decode(bad[i], strlen(bad[i]), LK_B64_STD_GO, &s) == -EINVAL, "%zu", i);
	ck_assert_int_eq(lk_b64_decode("QQ==", 4, LK_B64_STD_GO, &s), 0);
	ck_assert_str_eq(lk_secret_cstr(s), "A");
	s = lk_secret_free(s);
	ck_assert_int_eq(lk_b64_decode("QUI=", 4, LK_B64_STD_GO, &s), 0);
	ck_assert_str_eq(lk_secret_cstr(s), "AB");
	lk_secret_free(s);
}
END_TEST

START_TEST(hex_and_compare)
{
	char hex[9];

	ck_assert_int_eq(lk_hex_encode("\x01\xab\xff\x00", 4, hex, sizeof(hex)), 0);
	ck_assert_str_eq(hex, "01abff00");
	ck_assert_int_eq(lk_hex_encode("\x01\xab\xff\x00", 4, hex, 8), -ENOSPC);
	ck_assert(lk_ct_equal("abcd", "abcd", 4));
	ck_assert(!lk_ct_equal("abcd", "abce", 4));
}
END_TEST

START_TEST(scope_labels)
{
	char b[LK_LABEL_MAX + 1];
	struct lk_error err;
	enum lk_scope s;

	ck_assert_int_eq(lk_scope_label(LK_SCOPE_STRICT, "ns", "n", NULL, b, sizeof(b), &err), 0);
	ck_assert_str_eq(b, "ns/n");
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_STRICT, "ns", "n", "k", b, sizeof(b), &err), 0);
	ck_assert_str_eq(b, "ns/n/k");
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_NAMESPACE, "ns", "n", "k", b, sizeof(b), &err), 0);
	ck_assert_str_eq(b, "ns");
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_CLUSTER, NULL, NULL, "k", b, sizeof(b), &err), 0);
	ck_assert_str_eq(b, "");
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_STRICT, NULL, "n", NULL, b, sizeof(b), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "namespace"));
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_STRICT, "ns", "", NULL, b, sizeof(b), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "name"));
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_STRICT, "a/b", "n", NULL, b, sizeof(b), &err), -EINVAL);
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_NAMESPACE, NULL, NULL, NULL, b, sizeof(b), &err), -EINVAL);
	ck_assert_int_eq(lk_scope_parse("namespace-wide", &s), 0);
	ck_assert_int_eq(s, LK_SCOPE_NAMESPACE);
	ck_assert_int_eq(lk_scope_parse("global", &s), -EINVAL);
	ck_assert_str_eq(lk_scope_name(LK_SCOPE_CLUSTER), "cluster-wide");
}
END_TEST

/* ---- round trips ---- */

static void
round_trip(struct lk_key *k, const char *label, size_t n)
{
	struct lk_keyset *ks = set_of(k, NULL);
	struct lk_secret *pt = NULL;
	struct lk_error err;
	unsigned char *msg = malloc(n + 1);
	char *ct = NULL;

	for (size_t i = 0; i < n; i++)
		msg[i] = (unsigned char)(i * 31 + 7);
	ck_assert_int_eq(lk_key_seal(lk_keyset_get(ks, 0), label, msg, n, &ct, &err), 0);
	ck_assert_int_eq(lk_keyset_open(ks, label, ct, strlen(ct), &pt, &err), 0);
	ck_assert_uint_eq(lk_secret_len(pt), n);
	ck_assert(n == 0 || memcmp(lk_secret_bytes(pt), msg, n) == 0);
	/* The ciphertext does not carry the plaintext. */
	if (n >= 16)
		ck_assert_ptr_null(memmem(ct, strlen(ct), msg, 16));
	lk_secret_free(pt);
	free(ct);
	free(msg);
	lk_keyset_free(ks);
}

START_TEST(lk1_round_trip_every_scope)
{
	static const char *labels[] = { "app/db/password", "app", "" };
	static const size_t sizes[] = { 0, 1, 57, 1000, 65536 };

	for (size_t l = 0; l < 3; l++)
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
			round_trip(x_key(), labels[l], sizes[s]);
}
END_TEST

START_TEST(hybrid_round_trip_every_scope)
{
	static const char *labels[] = { "app/db", "app", "" };

	for (size_t l = 0; l < 3; l++) {
		round_trip(rsa_key(), labels[l], 0);
		round_trip(rsa_key(), labels[l], 300);
	}
}
END_TEST

START_TEST(hybrid_layout)
{
	struct lk_key *k = rsa_key();
	struct lk_error err;
	unsigned char *blob = NULL;
	size_t n = 0;
	char *ct = NULL;

	ck_assert_int_eq(lk_key_seal(k, "ns/name", "hello", 5, &ct, &err), 0);
	ck_assert_int_eq(lk_b64_decode_raw(ct, strlen(ct), LK_B64_STD, &blob, &n), 0);
	/* BE16 length 256 for RSA-2048, then 256 bytes, then 5 + 16 */
	ck_assert_uint_eq(blob[0], 0x01);
	ck_assert_uint_eq(blob[1], 0x00);
	ck_assert_uint_eq(n, 2 + 256 + 5 + 16);
	free(blob);
	free(ct);
	lk_key_free(k);
}
END_TEST

/* Flips one bit at every byte position of the binary form; none may open. */
static void
flip_every_byte(struct lk_key *k, const char *label, bool lk1)
{
	struct lk_keyset *ks = set_of(k, NULL);
	struct lk_secret *pt = NULL;
	struct lk_error err;
	unsigned char *blob = NULL;
	size_t n = 0, prefix = lk1 ? 4 : 0;
	char *ct = NULL;

	ck_assert_int_eq(lk_key_seal(lk_keyset_get(ks, 0), label, "short value", 11, &ct, &err), 0);
	ck_assert_int_eq(lk_b64_decode_raw(ct + prefix, strlen(ct) - prefix, LK_B64_STD, &blob, &n), 0);
	for (size_t i = 0; i < n; i++) {
		char *b64 = NULL, *text = NULL;
		int r;

		blob[i] ^= (unsigned char)(1u << (i % 8));
		ck_assert_int_eq(lk_b64_encode(blob, n, LK_B64_STD, &b64), 0);
		ck_assert_int_ge(asprintf(&text, "%s%s", lk1 ? "lk1:" : "", b64), 0);
		pt = NULL;
		r = lk_keyset_open(ks, label, text, strlen(text), &pt, &err);
		if (r == 0)
			ck_abort_msg("flipped byte %zu of %zu still opens", i, n);
		ck_assert_ptr_null(pt);
		blob[i] ^= (unsigned char)(1u << (i % 8));
		free(b64);
		free(text);
	}
	/* and the unmodified one still opens */
	ck_assert_int_eq(lk_keyset_open(ks, label, ct, strlen(ct), &pt, &err), 0);
	lk_secret_free(pt);
	free(blob);
	free(ct);
	lk_keyset_free(ks);
}

START_TEST(lk1_bit_flips_fail)
{
	flip_every_byte(x_key(), "ns/name/key", true);
}
END_TEST

START_TEST(hybrid_bit_flips_fail)
{
	flip_every_byte(rsa_key(), "ns/name", false);
}
END_TEST

START_TEST(truncated_and_garbage_fail)
{
	struct lk_keyset *ks = set_of(x_key(), rsa_key());
	struct lk_secret *pt = NULL;
	struct lk_error err;
	char *ct = NULL;

	ck_assert_int_eq(lk_key_seal(lk_keyset_get(ks, 0), "", "v", 1, &ct, &err), 0);
	for (size_t cut = 0; cut < strlen(ct); cut += 3)
		ck_assert_int_lt(lk_keyset_open(ks, "", ct, cut, &pt, &err), 0);
	free(ct);
	ck_assert_int_eq(lk_keyset_open(ks, "", "lk1:AA==", 8, &pt, &err), -EINVAL);
	ck_assert_int_eq(lk_keyset_open(ks, "", "not base64!", 11, &pt, &err), -EINVAL);
	ck_assert_int_lt(lk_keyset_open(ks, "", "AAAA", 4, &pt, &err), 0);
	ck_assert_ptr_null(pt);
	lk_keyset_free(ks);
}
END_TEST

/* Sealed under `sealed`, opened under `other`: must fail and say why. */
static void
wrong_label(struct lk_key *k, const char *sealed, const char *other)
{
	struct lk_keyset *ks = set_of(k, NULL);
	struct lk_secret *pt = NULL;
	struct lk_error err;
	char *ct = NULL;

	ck_assert_int_eq(lk_key_seal(lk_keyset_get(ks, 0), sealed, "pw", 2, &ct, &err), 0);
	lk_error_clear(&err);
	ck_assert_int_eq(lk_keyset_open(ks, other, ct, strlen(ct), &pt, &err), -EBADMSG);
	ck_assert_ptr_null(pt);
	ck_assert_msg(strstr(err.msg, "another scope") != NULL, "message: %s", err.msg);
	ck_assert_ptr_null(strstr(err.msg, "pw"));
	free(ct);
	lk_keyset_free(ks);
}

START_TEST(moved_values_fail)
{
	/* lk1: other key, other name, other namespace, other scope */
	wrong_label(x_key(), "app/db/password", "app/db/username");
	wrong_label(x_key(), "app/db/password", "app/web/password");
	wrong_label(x_key(), "app/db/password", "prod/db/password");
	wrong_label(x_key(), "app/db/password", "app");
	wrong_label(x_key(), "app", "prod");
	wrong_label(x_key(), "app", "");
	wrong_label(x_key(), "", "app");
	/* Bitnami: other name, other namespace, other scope */
	wrong_label(rsa_key(), "app/db", "app/web");
	wrong_label(rsa_key(), "app/db", "prod/db");
	wrong_label(rsa_key(), "app", "");
	wrong_label(rsa_key(), "", "app");
}
END_TEST

START_TEST(wrong_key_fails)
{
	struct lk_keyset *ks = set_of(x_key(), rsa_key());
	struct lk_keyset *other = set_of(x_key(), rsa_key());
	struct lk_secret *pt = NULL;
	struct lk_error err;
	char *ct = NULL;

	ck_assert_int_eq(lk_key_seal(lk_keyset_get(ks, 0), "a", "v", 1, &ct, &err), 0);
	ck_assert_int_eq(lk_keyset_open(other, "a", ct, strlen(ct), &pt, &err), -ENOKEY);
	ck_assert_ptr_nonnull(strstr(err.msg, lk_key_id(lk_keyset_get(ks, 0))));
	free(ct);
	ck_assert_int_eq(lk_key_seal(lk_keyset_get(ks, 1), "a", "v", 1, &ct, &err), 0);
	ck_assert_int_eq(lk_keyset_open(other, "a", ct, strlen(ct), &pt, &err), -EBADMSG);
	ck_assert_ptr_null(pt);
	free(ct);
	lk_keyset_free(ks);
	lk_keyset_free(other);
}
END_TEST

/* ---- key sets and rotation ---- */

START_TEST(rotation_old_open_new_seals)
{
	struct lk_keyset *ks = lk_keyset_new(), *only_new = lk_keyset_new();
	struct lk_key *k1 = rsa_key(), *k2 = rsa_key();
	struct lk_secret *pt = NULL;
	struct lk_error err;
	char *old_ct = NULL, *new_ct = NULL, *pem = NULL;
	struct lk_key *k2_pub = NULL;

	ck_assert_int_eq(lk_keyset_add_take(ks, k1), 0);
	ck_assert_ptr_eq(lk_keyset_newest(ks, LK_KEY_RSA), k1);
	ck_assert_int_eq(lk_key_seal(lk_keyset_newest(ks, LK_KEY_RSA), "ns/n", "old", 3, &old_ct, &err), 0);
	ck_assert_int_eq(lk_key_rsa_cert_pem(k2, &pem, &err), 0);
	ck_assert_int_eq(lk_key_rsa_from_pem(NULL, 0, pem, strlen(pem), false, &k2_pub, &err), 0);
	ck_assert_int_eq(lk_keyset_add_take(only_new, k2_pub), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, k2), 0);
	/* same id twice is refused */
	ck_assert_int_eq(lk_key_rsa_from_pem(NULL, 0, pem, strlen(pem), false, &k2_pub, &err), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, k2_pub), -EEXIST);
	ck_assert_ptr_eq(lk_keyset_newest(ks, LK_KEY_RSA), k2);
	ck_assert_int_eq(lk_key_seal(lk_keyset_newest(ks, LK_KEY_RSA), "ns/n", "new", 3, &new_ct, &err), 0);
	ck_assert_int_eq(lk_keyset_open(ks, "ns/n", old_ct, strlen(old_ct), &pt, &err), 0);
	ck_assert_str_eq(lk_secret_cstr(pt), "old");
	pt = lk_secret_free(pt);
	ck_assert_int_eq(lk_keyset_open(ks, "ns/n", new_ct, strlen(new_ct), &pt, &err), 0);
	ck_assert_str_eq(lk_secret_cstr(pt), "new");
	pt = lk_secret_free(pt);
	/* the new value is sealed to k2: a set holding only k1 cannot open it */
	{
		struct lk_keyset *only_old = lk_keyset_new();
		struct lk_secret *k1pem = NULL;
		struct lk_key *k1copy = NULL;

		ck_assert_int_eq(lk_key_rsa_private_pem(k1, &k1pem, &err), 0);
		ck_assert_int_eq(lk_key_rsa_from_pem(lk_secret_cstr(k1pem), lk_secret_len(k1pem), NULL, 0,
						     false, &k1copy, &err), 0);
		ck_assert_int_eq(lk_keyset_add_take(only_old, k1copy), 0);
		ck_assert_int_lt(lk_keyset_open(only_old, "ns/n", new_ct, strlen(new_ct), &pt, &err), 0);
		lk_secret_free(k1pem);
		lk_keyset_free(only_old);
	}
	/* a public-only key set cannot open anything */
	ck_assert_int_eq(lk_keyset_open(only_new, "ns/n", new_ct, strlen(new_ct), &pt, &err), -ENOKEY);
	free(old_ct);
	free(new_ct);
	free(pem);
	lk_keyset_free(ks);
	lk_keyset_free(only_new);
}
END_TEST

/* open_with says which key opened a value, whichever key it was told to try first. */
START_TEST(open_with_names_the_key)
{
	struct lk_keyset *ks = lk_keyset_new();
	struct lk_key *k1 = rsa_key(), *k2 = rsa_key(), *x = x_key();
	const struct lk_key *used = NULL;
	struct lk_secret *pt = NULL;
	struct lk_error err;
	char *c1 = NULL, *c2 = NULL, *cx = NULL;

	ck_assert_int_eq(lk_key_seal(k1, "ns/n", "one", 3, &c1, &err), 0);
	ck_assert_int_eq(lk_key_seal(k2, "ns/n", "two", 3, &c2, &err), 0);
	ck_assert_int_eq(lk_key_seal(x, "ns/n/k", "ex", 2, &cx, &err), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, k1), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, k2), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, x), 0);
	for (int pass = 0; pass < 3; pass++) {
		const char *prefer = pass == 0 ? NULL : pass == 1 ? lk_key_id(k1) : lk_key_id(k2);

		ck_assert_int_eq(lk_keyset_open_with(ks, "ns/n", c1, strlen(c1), prefer, &pt, &used, &err), 0);
		ck_assert_str_eq(lk_secret_cstr(pt), "one");
		ck_assert_ptr_eq(used, k1);
		pt = lk_secret_free(pt);
		ck_assert_int_eq(lk_keyset_open_with(ks, "ns/n", c2, strlen(c2), prefer, &pt, &used, &err), 0);
		ck_assert_str_eq(lk_secret_cstr(pt), "two");
		ck_assert_ptr_eq(used, k2);
		pt = lk_secret_free(pt);
	}
	ck_assert_int_eq(lk_keyset_open_with(ks, "ns/n/k", cx, strlen(cx), "unknown", &pt, &used, &err), 0);
	ck_assert_ptr_eq(used, x);
	pt = lk_secret_free(pt);
	/* a failure names no key */
	ck_assert_int_eq(lk_keyset_open_with(ks, "ns/other", c2, strlen(c2), lk_key_id(k2), &pt, &used,
					     &err), -EBADMSG);
	ck_assert_ptr_null(used);
	ck_assert_ptr_null(pt);
	free(c1);
	free(c2);
	free(cx);
	lk_keyset_free(ks);
}
END_TEST

START_TEST(lk1_rotation_by_id)
{
	struct lk_keyset *ks = lk_keyset_new();
	struct lk_key *a = x_key(), *b = x_key();
	struct lk_secret *pt = NULL;
	struct lk_error err;
	char *ca = NULL, *cb = NULL, id[LK_KEY_ID_HEX + 1];

	ck_assert_int_eq(lk_key_seal(a, "x", "A", 1, &ca, &err), 0);
	ck_assert_int_eq(lk_key_seal(b, "x", "B", 1, &cb, &err), 0);
	ck_assert_int_eq(lk1_key_id(cb, strlen(cb), id, sizeof(id)), 0);
	ck_assert_str_eq(id, lk_key_id(b));
	ck_assert_int_eq(lk_keyset_add_take(ks, a), 0);
	ck_assert_int_eq(lk_keyset_open(ks, "x", cb, strlen(cb), &pt, &err), -ENOKEY);
	ck_assert_ptr_nonnull(strstr(err.msg, lk_key_id(b)));
	ck_assert_int_eq(lk_keyset_add_take(ks, b), 0);
	ck_assert_ptr_eq(lk_keyset_newest(ks, LK_KEY_X25519), b);
	ck_assert_int_eq(lk_keyset_open(ks, "x", ca, strlen(ca), &pt, &err), 0);
	ck_assert_str_eq(lk_secret_cstr(pt), "A");
	pt = lk_secret_free(pt);
	ck_assert_int_eq(lk_keyset_open(ks, "x", cb, strlen(cb), &pt, &err), 0);
	ck_assert_str_eq(lk_secret_cstr(pt), "B");
	lk_secret_free(pt);
	free(ca);
	free(cb);
	lk_keyset_free(ks);
}
END_TEST

/* A public key read before its private half (a certificate or .lk1.pub next to a key
 * Secret backup) must not shadow it; two keys that share an id both stay and both open. */
START_TEST(keyset_public_then_private_and_id_collision)
{
	struct lk_keyset *ks = lk_keyset_new();
	struct lk_key *x = x_key(), *xpub = NULL, *r = rsa_key(), *rpub = NULL, *rpriv = NULL;
	struct lk_key *a = x_key(), *b = x_key();
	struct lk_secret *pt = NULL, *pem = NULL;
	struct lk_error err;
	char *text = NULL, *crt = NULL, *ct = NULL;

	ck_assert_int_eq(lk_key_x25519_public_text(x, &text), 0);
	ck_assert_int_eq(lk_key_x25519_parse(text, strlen(text), &xpub, &err), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, xpub), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, x), 0);
	ck_assert_uint_eq(lk_keyset_count(ks), 1);
	ck_assert(lk_key_has_private(lk_keyset_get(ks, 0)));
	ck_assert_int_eq(lk_key_seal(lk_keyset_get(ks, 0), "ns", "v", 1, &ct, &err), 0);
	ck_assert_int_eq(lk_keyset_open(ks, "ns", ct, strlen(ct), &pt, &err), 0);
	pt = lk_secret_free(pt);
	free(ct);
	ct = NULL;

	ck_assert_int_eq(lk_key_rsa_cert_pem(r, &crt, &err), 0);
	ck_assert_int_eq(lk_key_rsa_private_pem(r, &pem, &err), 0);
	ck_assert_int_eq(lk_key_rsa_from_pem(NULL, 0, crt, strlen(crt), false, &rpub, &err), 0);
	ck_assert_int_eq(lk_key_rsa_from_pem(lk_secret_cstr(pem), lk_secret_len(pem), NULL, 0, false,
					     &rpriv, &err), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, rpub), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, rpriv), 0);
	ck_assert_uint_eq(lk_keyset_count(ks), 2);
	ck_assert(lk_key_has_private(lk_keyset_get(ks, 1)));
	/* the certificate read first still dates the key */
	ck_assert(lk_key_not_before(lk_keyset_get(ks, 1)) != 0);
	ck_assert_int_eq(lk_key_seal(r, "ns/n", "w", 1, &ct, &err), 0);
	ck_assert_int_eq(lk_keyset_open(ks, "ns/n", ct, strlen(ct), &pt, &err), 0);
	ck_assert_str_eq(lk_secret_cstr(pt), "w");
	pt = lk_secret_free(pt);
	free(ct);
	ct = NULL;
	/* the same private key again is still a duplicate */
	ck_assert_int_eq(lk_key_rsa_from_pem(lk_secret_cstr(pem), lk_secret_len(pem), NULL, 0, false,
					     &rpriv, &err), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, rpriv), -EEXIST);

	/* b gets a's id: both are kept, and a value sealed to b opens although a is tried first */
	memcpy(b->id_bytes, a->id_bytes, sizeof(b->id_bytes));
	memcpy(b->id, a->id, sizeof(b->id));
	ck_assert_int_eq(lk_key_seal(b, "ns", "B", 1, &ct, &err), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, a), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, b), 0);
	ck_assert_uint_eq(lk_keyset_count(ks), 4);
	ck_assert_int_eq(lk_keyset_open(ks, "ns", ct, strlen(ct), &pt, &err), 0);
	ck_assert_str_eq(lk_secret_cstr(pt), "B");
	/* and the scope still binds */
	ck_assert_int_eq(lk_keyset_open(ks, "other", ct, strlen(ct), &pt, &err), -EBADMSG);
	lk_secret_free(pt);
	lk_secret_free(pem);
	lk_key_free(r);
	free(ct);
	free(crt);
	free(text);
	lk_keyset_free(ks);
}
END_TEST

/* ---- keys, PEM, certificates ---- */

START_TEST(certificate_shape)
{
	struct lk_key *k = NULL;
	struct lk_error err;
	char *pem = NULL;
	BIO *bio;
	X509 *x;
	BIGNUM *serial;
	time_t now = time(NULL);

	ck_assert_int_eq(lk_key_rsa_generate(TEST_BITS, "sealed", LK_CERT_DAYS_DEFAULT, &k, &err), 0);
	ck_assert_uint_eq(lk_key_bits(k), TEST_BITS);
	ck_assert_int_eq(lk_key_rsa_cert_pem(k, &pem, &err), 0);
	bio = BIO_new_mem_buf(pem, -1);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	ck_assert_ptr_nonnull(x);
	/* CA=true in basic constraints (X509_check_ca would also want keyCertSign, which
	 * Bitnami's certificates do not have). */
	ck_assert(X509_get_extension_flags(x) & EXFLAG_BCONS);
	ck_assert(X509_get_extension_flags(x) & EXFLAG_CA);
	ck_assert_uint_eq(X509_get_key_usage(x), KU_ENCIPHER_ONLY);
	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	ck_assert_int_le(BN_num_bits(serial), 128);
	ck_assert_int_gt(BN_num_bits(serial), 64);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	/* ten years, give or take the leap days and a minute */
	ck_assert_int_ge(lk_key_not_after(k) - now, (time_t)3650 * 86400 - 60);
	ck_assert_int_le(lk_key_not_after(k) - now, (time_t)3650 * 86400 + 60);
	ck_assert_int_le(llabs((long long)(lk_key_not_before(k) - now)), 60);
	BN_free(serial);
	X509_free(x);
	BIO_free(bio);
	free(pem);
	lk_key_free(k);
}
END_TEST

START_TEST(pem_pkcs1_and_pkcs8)
{
	struct lk_key *k = rsa_key(), *again = NULL, *p8 = NULL;
	struct lk_secret *pem = NULL;
	struct lk_error err;
	char *crt = NULL, *p8pem = NULL;
	EVP_PKEY *pkey;
	BIO *in, *out;
	long n;

	ck_assert_int_eq(lk_key_rsa_private_pem(k, &pem, &err), 0);
	ck_assert_ptr_nonnull(strstr(lk_secret_cstr(pem), "-----BEGIN RSA PRIVATE KEY-----")); /* latchkey-scan: allow */
	ck_assert_int_eq(lk_key_rsa_cert_pem(k, &crt, &err), 0);
	ck_assert_int_eq(lk_key_rsa_from_pem(lk_secret_cstr(pem), lk_secret_len(pem), crt,
					     strlen(crt), false, &again, &err), 0);
	ck_assert_str_eq(lk_key_id(again), lk_key_id(k));
	ck_assert(lk_key_has_private(again));
	/* PKCS#8 */
	in = BIO_new_mem_buf(lk_secret_cstr(pem), (int)lk_secret_len(pem));
	pkey = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	out = BIO_new(BIO_s_mem());
	ck_assert_int_eq(PEM_write_bio_PKCS8PrivateKey(out, pkey, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(out, &p8pem);
	ck_assert_ptr_nonnull(memmem(p8pem, (size_t)n, "BEGIN PRIVATE KEY", 17));
	ck_assert_int_eq(lk_key_rsa_from_pem(p8pem, (size_t)n, NULL, 0, false, &p8, &err), 0);
	ck_assert_str_eq(lk_key_id(p8), lk_key_id(k));
	BIO_free(in);
	BIO_free(out);
	EVP_PKEY_free(pkey);
	lk_secret_free(pem);
	free(crt);
	lk_key_free(k);
	lk_key_free(again);
	lk_key_free(p8);
}
END_TEST

START_TEST(mismatched_cert_refused)
{
	struct lk_key *a = rsa_key(), *b = rsa_key(), *out = NULL;
	struct lk_secret *pem = NULL;
	struct lk_error err;
	char *crt = NULL;

	ck_assert_int_eq(lk_key_rsa_private_pem(a, &pem, &err), 0);
	ck_assert_int_eq(lk_key_rsa_cert_pem(b, &crt, &err), 0);
	ck_assert_int_eq(lk_key_rsa_from_pem(lk_secret_cstr(pem), lk_secret_len(pem), crt,
					     strlen(crt), false, &out, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "does not belong"));
	ck_assert_int_eq(lk_key_rsa_from_pem("junk", 4, NULL, 0, false, &out, &err), -EINVAL);
	lk_secret_free(pem);
	free(crt);
	lk_key_free(a);
	lk_key_free(b);
}
END_TEST

START_TEST(expired_cert_refused)
{
	struct lk_key *k = rsa_key(), *out = NULL;
	struct lk_secret *pem = NULL;
	struct lk_error err;
	EVP_PKEY *pkey;
	X509 *x = X509_new();
	BIO *in, *bio;
	char *crt;
	long n;

	ck_assert_int_eq(lk_key_rsa_private_pem(k, &pem, &err), 0);
	in = BIO_new_mem_buf(lk_secret_cstr(pem), (int)lk_secret_len(pem));
	pkey = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), -7200);
	X509_gmtime_adj(X509_getm_notAfter(x), -3600);
	X509_set_pubkey(x, pkey);
	X509_sign(x, pkey, EVP_sha256());
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(bio, x);
	n = BIO_get_mem_data(bio, &crt);
	ck_assert_int_eq(lk_key_rsa_from_pem(NULL, 0, crt, (size_t)n, false, &out, &err), -EKEYEXPIRED);
	ck_assert_ptr_nonnull(strstr(err.msg, "expired"));
	ck_assert_int_eq(lk_key_rsa_from_pem(NULL, 0, crt, (size_t)n, true, &out, &err), 0);
	ck_assert_str_eq(lk_key_id(out), lk_key_id(k));
	lk_key_free(out);
	BIO_free(bio);
	BIO_free(in);
	X509_free(x);
	EVP_PKEY_free(pkey);
	lk_secret_free(pem);
	lk_key_free(k);
}
END_TEST

START_TEST(x25519_key_text)
{
	struct lk_key *k = x_key(), *priv = NULL, *pub = NULL, *bad = NULL;
	struct lk_secret *t = NULL;
	struct lk_error err;
	char *p = NULL;

	ck_assert_int_eq(lk_key_x25519_private_text(k, &t), 0);
	ck_assert_int_eq(strncmp(lk_secret_cstr(t), "lk1priv:", 8), 0);
	ck_assert_int_eq(lk_key_x25519_public_text(k, &p), 0);
	ck_assert_int_eq(strncmp(p, "lk1pub:", 7), 0);
	ck_assert_int_eq(lk_key_x25519_parse(lk_secret_cstr(t), lk_secret_len(t), &priv, &err), 0);
	ck_assert_int_eq(lk_key_x25519_parse(p, strlen(p), &pub, &err), 0);
	ck_assert_str_eq(lk_key_id(priv), lk_key_id(k));
	ck_assert_str_eq(lk_key_id(pub), lk_key_id(k));
	ck_assert(lk_key_has_private(priv));
	ck_assert(!lk_key_has_private(pub));
	ck_assert_int_eq(lk_key_x25519_private_text(pub, &t), -ENOKEY);
	ck_assert_int_eq(lk_key_x25519_parse("lk1pub:AAAA", 11, &bad, &err), -EINVAL);
	ck_assert_int_eq(lk_key_x25519_parse("ssh-ed25519 AAAA", 16, &bad, &err), -ENOTSUP);
	lk_secret_free(t);
	free(p);
	lk_key_free(k);
	lk_key_free(priv);
	lk_key_free(pub);
}
END_TEST

static void
write_secret_file(const char *dir, const char *name, const char *text, size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
}

START_TEST(key_directory)
{
	char *dir = t_tmpdir();
	struct lk_key *r1 = rsa_key(), *r2 = rsa_key(), *x1 = x_key();
	struct lk_secret *pem = NULL, *xt = NULL;
	struct lk_keyset *ks = lk_keyset_new();
	struct lk_error err;
	char *crt = NULL, *xp = NULL;

	ck_assert_int_eq(lk_key_rsa_private_pem(r1, &pem, &err), 0);
	ck_assert_int_eq(lk_key_rsa_cert_pem(r1, &crt, &err), 0);
	write_secret_file(dir, "0001.key", lk_secret_cstr(pem), lk_secret_len(pem));
	write_secret_file(dir, "0001.crt", crt, strlen(crt));
	free(crt);
	lk_secret_free(pem);
	ck_assert_int_eq(lk_key_rsa_private_pem(r2, &pem, &err), 0);
	ck_assert_int_eq(lk_key_rsa_cert_pem(r2, &crt, &err), 0);
	/* key and certificate in one file */
	{
		char *both = NULL;

		ck_assert_int_ge(asprintf(&both, "%s%s", lk_secret_cstr(pem), crt), 0);
		write_secret_file(dir, "0002.key", both, strlen(both));
		free(both);
	}
	ck_assert_int_eq(lk_key_x25519_private_text(x1, &xt), 0);
	ck_assert_int_eq(lk_key_x25519_public_text(x1, &xp), 0);
	write_secret_file(dir, "0001.lk1", lk_secret_cstr(xt), lk_secret_len(xt));
	write_secret_file(dir, "0001.lk1.pub", xp, strlen(xp));
	write_secret_file(dir, "README", "not a key", 9);
	ck_assert_int_eq(lk_keyset_load_dir(ks, dir, &err), 0);
	ck_assert_uint_eq(lk_keyset_count(ks), 3);
	ck_assert_str_eq(lk_key_id(lk_keyset_newest(ks, LK_KEY_RSA)), lk_key_id(r2));
	ck_assert_str_eq(lk_key_id(lk_keyset_newest(ks, LK_KEY_X25519)), lk_key_id(x1));
	ck_assert(lk_key_has_private(lk_keyset_newest(ks, LK_KEY_X25519)));
	ck_assert_int_eq(lk_keyset_load_file(ks, "/dev/null", &err), -ENOTSUP);
	lk_keyset_free(ks);
	ks = lk_keyset_new();
	{
		char empty[1100];

		snprintf(empty, sizeof(empty), "%s/empty", dir);
		ck_assert_int_eq(mkdir(empty, 0700), 0);
		ck_assert_int_eq(lk_keyset_load_dir(ks, empty, &err), -ENOENT);
	}
	lk_keyset_free(ks);
	lk_secret_free(pem);
	lk_secret_free(xt);
	free(crt);
	free(xp);
	lk_key_free(r1);
	lk_key_free(r2);
	lk_key_free(x1);
	t_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(keygen_bounds)
{
	struct lk_key *k = NULL;
	struct lk_error err;

	ck_assert_int_eq(lk_key_rsa_generate(1024, "", 10, &k, &err), -EINVAL);
	ck_assert_int_eq(lk_key_rsa_generate(2048, "", 0, &k, &err), -EINVAL);
	ck_assert_ptr_null(k);
}
END_TEST

static Suite *
crypto_suite(void)
{
	Suite *s = suite_create("crypto");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, b64_round_trip_and_strictness);
	tcase_add_test(tc, b64_as_go_reads_it);
	tcase_add_test(tc, hex_and_compare);
	tcase_add_test(tc, scope_labels);
	tcase_add_test(tc, lk1_round_trip_every_scope);
	tcase_add_test(tc, hybrid_round_trip_every_scope);
	tcase_add_test(tc, hybrid_layout);
	tcase_add_test(tc, lk1_bit_flips_fail);
	tcase_add_test(tc, hybrid_bit_flips_fail);
	tcase_add_test(tc, truncated_and_garbage_fail);
	tcase_add_test(tc, moved_values_fail);
	tcase_add_test(tc, wrong_key_fails);
	tcase_add_test(tc, rotation_old_open_new_seals);
	tcase_add_test(tc, open_with_names_the_key);
	tcase_add_test(tc, lk1_rotation_by_id);
	tcase_add_test(tc, keyset_public_then_private_and_id_collision);
	tcase_add_test(tc, certificate_shape);
	tcase_add_test(tc, pem_pkcs1_and_pkcs8);
	tcase_add_test(tc, mismatched_cert_refused);
	tcase_add_test(tc, expired_cert_refused);
	tcase_add_test(tc, x25519_key_text);
	tcase_add_test(tc, key_directory);
	tcase_add_test(tc, keygen_bounds);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(crypto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
