/* sealing.h — Secrets to SealedSecrets and back: the conversion, scopes and their
 * annotations, key Secrets in Bitnami's shape, and the recipient of a seal.
 *
 * The same code serves `latchkey seal`, `unseal`, `reseal` and `keygen` (cli/) and the
 * controller that unseals SealedSecrets in the cluster (sync/): a value sealed by one
 * opens in the other by construction. Manifests are jansson values as manifest/ reads
 * them (a Secret's data is base64, stringData plain text).
 *
 * Plaintext passes through jansson: the process must call lk_json_wipe_on_free()
 * (common/json.h) at start, so that every block holding a value is zeroed when freed.
 * Messages name the input, the key and the scope, never a value.
 */
#ifndef LK_SEALING_H
#define LK_SEALING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "crypto/crypto.h"
#include "manifest/manifest.h"

#define LK_SEALING_API_LATCHKEY "latchkey.io/v1"
#define LK_SEALING_API_BITNAMI  "bitnami.com/v1alpha1"

/* The label Bitnami's controller selects its key Secrets by. */
#define LK_SEALING_KEY_LABEL "sealedsecrets.bitnami.com/sealed-secrets-key"

/* The most keys sealed from one Secret. */
#define LK_SEALING_KEYS_MAX 4096
/* The largest certificate fetched from a URL. */
#define LK_SEALING_CERT_FETCH_MAX (64u * 1024)
/* How long a certificate fetch may take. */
#define LK_SEALING_CERT_FETCH_TIMEOUT_MS 30000
/* The most manifest files looked at in one key directory. */
#define LK_SEALING_KEYDIR_MANIFESTS_MAX 1024

/* ---- small accessors ---------------------------------------------------------------- */

/* The string at obj[key] (or obj[a][b]), or NULL. Borrowed from obj. */
const char *lk_sealing_str(const json_t *obj, const char *key);
const char *lk_sealing_str2(const json_t *obj, const char *a, const char *b);

/* ---- scopes ------------------------------------------------------------------------- */

/* The scope a SealedSecret's (or Secret's) metadata annotations select: cluster-wide,
 * namespace-wide, else strict. */
enum lk_scope lk_sealing_scope_of(const json_t *obj);

/* Sets or removes the scope annotations in a metadata object (created when needed; an
 * emptied annotations object is removed). Returns 0 or -ENOMEM. */
int lk_sealing_set_scope_annotations(json_t *metadata, enum lk_scope scope);

/* ---- reading manifests -------------------------------------------------------------- */

/* Reads and parses one manifest (path NULL or "-": standard input, which may be a pipe or
 * a socket). *ret: new reference. With holds_secrets (a Secret, a key Secret) the text is
 * read into secure memory and limited to LK_SECRET_MAX; otherwise (SealedSecrets:
 * ciphertext only) to LK_MANIFEST_MAX. */
int lk_sealing_read_manifest(const char *path, bool holds_secrets, json_t **ret,
			     enum lk_manifest_format *ret_format, struct lk_error *err)
	__attribute__((warn_unused_result));

/* ---- sealing ------------------------------------------------------------------------ */

struct lk_seal_options {
	enum lk_scope scope;     /* used when scope_given, else the Secret's annotations */
	bool scope_given;
	const char *name;        /* --name / --namespace: must agree with the Secret's metadata */
	const char *ns;          /*   when both are set, fill in when it has none; may be NULL */
	bool compat;             /* apiVersion bitnami.com/v1alpha1 instead of latchkey.io/v1 */
};

/* A new SealedSecret sealing every value of secret (kind Secret; data base64, stringData
 * plain and winning over data) to recipient: an RSA key gives Bitnami's format, an X25519
 * key lk1. The result carries metadata (name, namespace, scope annotations),
 * spec.encryptedData and spec.template (labels, annotations but the last-applied ones,
 * which hold the plaintext; type; immutable). src names the input in messages. *ret: new
 * reference. */
int lk_sealing_seal_secret(const json_t *secret, const char *src, const struct lk_key *recipient,
			   const struct lk_seal_options *o, json_t **ret, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Seals the values of secret into the existing SealedSecret target (its encryptedData is
 * updated in place; keys not in secret stay). The target decides the scope, name and
 * namespace; a --scope, name or namespace that disagrees is an error. target_src names the
 * target in messages. */
int lk_sealing_merge(json_t *target, const char *target_src, const json_t *secret,
		     const char *src, const struct lk_key *recipient,
		     const struct lk_seal_options *o, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Seals one value for the Secret ns/name and data key key (key may be NULL with the
 * Bitnami format or a wider scope). *ret_text is owned: free with free(). */
int lk_sealing_seal_value(const struct lk_key *recipient, enum lk_scope scope, const char *ns,
			  const char *name, const char *key, const struct lk_secret *value,
			  char **ret_text, struct lk_error *err)
	__attribute__((warn_unused_result));

/* ---- opening ------------------------------------------------------------------------ */

/* Checks that root is a SealedSecret (kind, one of the two apiVersions, an encryptedData
 * mapping); src names it in messages. */
int lk_sealing_check_sealed(const json_t *root, const char *src, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Opens encryptedData[key] (value v) of a SealedSecret with the keys of ks, under the
 * scope its annotations select. *ret: owned, lk_secret_free. */
int lk_sealing_open_value(const struct lk_keyset *ks, const json_t *sealed, const char *key,
			  const json_t *v, struct lk_secret **ret, struct lk_error *err)
	__attribute__((warn_unused_result));
/* The same, trying the RSA key prefer_id (may be NULL) first and saying in *ret_key (may
 * be NULL; borrowed from ks) which key opened the value. */
int lk_sealing_open_value_with(const struct lk_keyset *ks, const json_t *sealed, const char *key,
			       const json_t *v, const char *prefer_id, struct lk_secret **ret,
			       const struct lk_key **ret_key, struct lk_error *err)
	__attribute__((warn_unused_result));

/* The Secret a SealedSecret stands for: name and namespace from its metadata (else the
 * template's), labels, annotations, type (default Opaque) and immutable from
 * spec.template, data = every encryptedData value opened (base64). spec.template.data is
 * not rendered: *ret_skipped_template_data says whether there was one. *ret: new
 * reference holding plaintext. */
int lk_sealing_unseal(const struct lk_keyset *ks, const json_t *sealed, json_t **ret,
		      bool *ret_skipped_template_data, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Opens every value of sealed and seals it again, in place, with the newest key of its
 * kind in ks (RSA for Bitnami values, X25519 for lk1); plaintext stays in secure memory.
 * A value that already opens with that newest key is left as it is. *ret_changed counts
 * the values sealed again. */
int lk_sealing_reseal(const struct lk_keyset *ks, json_t *sealed, size_t *ret_changed,
		      struct lk_error *err) __attribute__((warn_unused_result));

/* ---- keys --------------------------------------------------------------------------- */

/* Adds the keys of a key Secret manifest (a Secret in Bitnami's shape with tls.key and
 * tls.crt and optionally lk1.key, or a List of them); name names it in messages. -ENOENT
 * when it holds no key. */
int lk_sealing_import_key_manifest(struct lk_keyset *ks, const json_t *root, const char *name,
				   struct lk_error *err) __attribute__((warn_unused_result));

/* Loads keys from a file or directory: PEM keys and certificates, lk1 key files, and key
 * Secret manifests (YAML or JSON; in a directory, manifests that are not key Secrets are
 * skipped). -ENOENT when none is found. */
int lk_sealing_load_keys(struct lk_keyset *ks, const char *path, struct lk_error *err)
	__attribute__((warn_unused_result));

/* A key Secret manifest in Bitnami's shape (name sealed-secrets-key + 5 characters of the
 * key id, the key label "active", type kubernetes.io/tls) for an RSA key with its private
 * half, plus the lk1 private key under "lk1.key" when x is not NULL. *ret: new reference
 * holding private keys. */
int lk_sealing_key_manifest(const struct lk_key *rsa, const struct lk_key *x, const char *ns,
			    json_t **ret, struct lk_error *err) __attribute__((warn_unused_result));

/* The recipient of a seal: a certificate (a file, or an http(s) URL: at most
 * LK_SEALING_CERT_FETCH_MAX bytes, redirects only to https from https; an expired one is
 * refused) or, with lk1, a public or private lk1 key file. Owned: lk_key_free. */
int lk_sealing_load_recipient(const char *source, bool lk1, struct lk_key **ret,
			      struct lk_error *err) __attribute__((warn_unused_result));

#endif
