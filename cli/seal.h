/* seal.h — the sealing subcommands and the helpers they share.
 *
 * Commands (see cli/commands.h for the calling convention and exit codes):
 *   keygen  new RSA + X25519 sealing keys as files and/or a key Secret manifest
 *   seal    Secret → SealedSecret (Bitnami format, or lk1 with --envelope lk1)
 *   unseal  SealedSecret → Secret with private keys (recovery, admins)
 *   reseal  re-encrypt a SealedSecret with the newest key, in memory
 *   scan    look for plaintext secrets in files or in what Git would commit
 * docs/sealing.md is the user guide.
 */
#ifndef LK_SEAL_H
#define LK_SEAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cli/manifest.h"
#include "common/error.h"
#include "crypto/crypto.h"

int cmd_keygen(int argc, char **argv);
int cmd_seal(int argc, char **argv);
int cmd_unseal(int argc, char **argv);
int cmd_reseal(int argc, char **argv);
int cmd_scan(int argc, char **argv);

/* ---- shared helpers (cli/seal_util.c) ------------------------------------------ */

#define SEAL_API_LATCHKEY "latchkey.io/v1"
#define SEAL_API_BITNAMI  "bitnami.com/v1alpha1"

/* The key Secret label Bitnami's controller selects on. */
#define SEAL_KEY_LABEL "sealedsecrets.bitnami.com/sealed-secrets-key"

/* The largest certificate fetched from a URL. */
#define SEAL_CERT_FETCH_MAX (64u * 1024)
/* How long a certificate fetch may take, in seconds. */
#define SEAL_CERT_FETCH_TIMEOUT 30

/* Reads a whole file, or stdin when path is NULL or "-", into secure memory (at most
 * LK_SECRET_MAX bytes). Owned: free with lk_secret_free. */
int seal_read_input(const char *path, struct lk_secret **ret, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Reads and parses one manifest (path NULL or "-" = stdin). *ret: new reference. With
 * holds_secrets (a Secret, a key Secret) the text is read into secure memory and limited
 * to LK_SECRET_MAX; otherwise (SealedSecrets: ciphertext only) to LK_MANIFEST_MAX. */
int seal_read_manifest(const char *path, bool holds_secrets, json_t **ret,
		       enum lk_manifest_format *ret_format, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Zeroes every string value in v (recursively) so that plaintext held by jansson does
 * not outlive its use; then drops the reference. NULL allowed. */
void seal_json_wipe_decref(json_t *v);

/* Writes len bytes to path (NULL or "-" = stdout). With exclusive, an existing file is an
 * error (-EEXIST); otherwise the file is replaced atomically (temporary + rename). */
int seal_write_output(const char *path, const char *data, size_t len, mode_t mode,
		      bool exclusive, struct lk_error *err) __attribute__((warn_unused_result));

/* Serializes root and writes it (see seal_write_output). */
int seal_write_manifest(const char *path, const json_t *root, enum lk_manifest_format format,
			mode_t mode, bool exclusive, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Loads private (or public) keys from a file or directory: PEM keys and certificates,
 * lk1 key files, and key Secret manifests in Bitnami's shape (a Secret or a List of
 * them, YAML or JSON, with tls.key / tls.crt and optionally lk1.key). */
int seal_load_keys(struct lk_keyset *ks, const char *path, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Adds the keys of a key Secret manifest (a Secret or a List of Secrets). */
int seal_import_key_manifest(struct lk_keyset *ks, const json_t *root, const char *name,
			     struct lk_error *err) __attribute__((warn_unused_result));

/* A key Secret manifest in Bitnami's shape for an RSA key (with private half), plus the
 * lk1 private key under "lk1.key" when x is not NULL. *ret: new reference; holds private
 * keys: wipe with seal_json_wipe_decref. */
int seal_key_manifest(const struct lk_key *rsa, const struct lk_key *x, const char *ns,
		      json_t **ret, struct lk_error *err) __attribute__((warn_unused_result));

/* The recipient of a seal: a certificate (file or http(s) URL; an expired one is
 * refused) or, for lk1, a public or private lk1 key file. Owned: lk_key_free. */
int seal_load_recipient(const char *source, bool lk1, struct lk_key **ret,
			struct lk_error *err) __attribute__((warn_unused_result));

/* The scope a SealedSecret's metadata annotations select. */
enum lk_scope seal_scope_of(const json_t *sealed);

/* Sets or removes the scope annotations in a metadata object (created when needed). */
int seal_set_scope_annotations(json_t *metadata, enum lk_scope scope);

/* unseal (reseal false) or reseal (true): the common body of both commands. */
int seal_unseal_main(int argc, char **argv, bool reseal);

/* Convenience accessors: the string at obj[key], or NULL. */
const char *seal_str(const json_t *obj, const char *key);
/* obj.a.b as a string, or NULL. */
const char *seal_str2(const json_t *obj, const char *a, const char *b);

#endif
