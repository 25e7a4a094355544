/* decrypt.c — the keys that open file sources: lk1 private keys from a file or from the
 * backend's KV, held in sodium memory (crypto/ keeps an X25519 secret in a struct
 * lk_secret) from start to exit.
 *
 * A key file is read at start, and refused unless only its owner may read it. A key in
 * the backend is read by the scheduler thread (the one that talks to the backend) once it
 * is logged in, retried with backoff until it is in; the file sources that wait for it are
 * woken then (broker_files_wake). A key set is replaced only by a reload, under the
 * generation lock held for writing, so the watcher thread may use it without a lock after
 * taking the pointer under one, for its round (which holds the generation lock).
 *
 * A reload (broker/reload.c) makes the keyring of the new configuration: a key named as
 * before is taken over with what it holds, a key file is read again (a new one, and one
 * named as before: its BLAKE2b digest, kept in memory, tells whether its contents changed;
 * if so the new key replaces the old and the secrets using it are read again), a key in
 * the backend named as before that holds a key is read again the same way (by the reload's
 * thread, through the reload's client, before the generation lock), and a key no secret
 * uses any more is zeroed, under the generation lock held for writing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "crypto/crypto.h"

struct broker_dkey {
	const struct broker_key_spec *spec; /* borrowed from the configuration */
	pthread_mutex_t lock;       /* guards ks, failed and reason */
	struct lk_keyset *ks;       /* owned; NULL until loaded; replaced only by a reload */
	/* BLAKE2b of a key file's bytes, or of the KV field's text; set with ks */
	unsigned char digest[BROKER_KEY_DIGEST_LEN];
	bool failed;                /* a backend read of it failed */
	char reason[BROKER_REASON_MAX];
	/* scheduler thread only */
	int64_t next_mono_ms;
	struct lk_backoff backoff;
};

/* Room for why a backend key read failed: the backend's error, or a field's name and what
 * its text is not. */
#define KEY_WHY_MAX (LK_ERROR_MSG_MAX + 128)

struct broker_keyring {
	struct broker_dkey *keys;
	size_t n;
	size_t *of_entry;           /* per entry: its key, or SIZE_MAX */
};

/* ---- configuration ---- */

static int
cfg_oom(struct lk_cfg *c)
{
	return lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
}

void
broker_key_spec_free(struct broker_key_spec *k)
{
	if (k == NULL)
		return;
	free(k->file);
	free(k->vault_path);
	free(k->field);
	free(k->where);
	free(k);
}

int
broker_key_spec_parse(struct lk_cfg *c, const json_t *obj, const char *key,
		      struct broker_key_spec **ret)
{
	static const char *const keys[] = { "file", "vault_path", "field", NULL };
	struct broker_key_spec *k = NULL;
	const char *file = NULL, *vpath = NULL, *field = NULL;
	json_t *o = NULL;
	size_t mark;
	int rc;

	if ((rc = lk_cfg_object(c, obj, key, false, &o)) < 0 || o == NULL)
		return rc;
	mark = lk_cfg_push_key(c, key);
	if ((rc = lk_cfg_keys(c, o, keys)) < 0 ||
	    (rc = lk_cfg_string(c, o, "file", false, &file)) < 0 ||
	    (rc = lk_cfg_string(c, o, "vault_path", false, &vpath)) < 0 ||
	    (rc = lk_cfg_string(c, o, "field", false, &field)) < 0)
		goto out;
	if ((file == NULL) == (vpath == NULL)) {
		rc = lk_cfg_fail(c, "expected exactly one of file (an lk1 private key file) and "
				 "vault_path (a KV secret in the backend holding one)");
		goto out;
	}
	if (file != NULL && (file[0] != '/' || strlen(file) > BROKER_FILE_PATH_MAX)) {
		size_t m2 = lk_cfg_push_key(c, "file");

		rc = lk_cfg_fail(c, "expected an absolute path of at most %d bytes",
				 BROKER_FILE_PATH_MAX);
		lk_cfg_pop(c, m2);
		goto out;
	}
	/* The same rules as a secret's path. */
	if (vpath != NULL && (strlen(vpath) >= LK_VAULT_PATH_MAX || strstr(vpath, "//") != NULL ||
			      vpath[0] == '/' || strstr(vpath, "..") != NULL)) {
		size_t m2 = lk_cfg_push_key(c, "vault_path");

		rc = lk_cfg_fail(c, "expected a Vault path such as \"secret/data/app/lk1\" "
				 "(no leading '/', no empty or '..' segments)");
		lk_cfg_pop(c, m2);
		goto out;
	}
	if (field != NULL && vpath == NULL) {
		size_t m2 = lk_cfg_push_key(c, "field");

		rc = lk_cfg_fail(c, "field names the KV field of vault_path; a key file has none");
		lk_cfg_pop(c, m2);
		goto out;
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL || (file != NULL && (k->file = strdup(file)) == NULL) ||
	    (vpath != NULL && (k->vault_path = strdup(vpath)) == NULL) ||
	    (vpath != NULL && (k->field = strdup(field != NULL ? field : "key")) == NULL) ||
	    (k->where = strdup(c->path)) == NULL) {
		rc = cfg_oom(c);
		goto out;
	}
	*ret = k;
	k = NULL;
out:
	broker_key_spec_free(k);
	lk_cfg_pop(c, mark);
	return rc;
}

/* ---- key files ---- */

int
broker_key_file_load(const char *path, struct lk_keyset **ret,
		     unsigned char ret_digest[BROKER_KEY_DIGEST_LEN], char *why, size_t whylen)
{
	struct lk_secret *text = NULL;
	struct lk_keyset *ks = NULL;
	struct lk_key *k = NULL;
	struct lk_error err;
	struct stat st;
	int fd, rc;

	lk_error_clear(&err);
	/* Following links: the kubelet mounts a Secret's files as links into ..data. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: cannot open: %s", path, strerror(errno));
		return rc;
	}
	/* The mode of what was opened, not of a name that may be swapped meanwhile. */
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(why, whylen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = -EPERM;
		snprintf(why, whylen, "%s: mode %04o, expected 0600 or stricter (a private key is "
			 "for its owner's eyes only: chmod 600 it; in a pod, mount it with "
			 "defaultMode 0400 and no fsGroup, or keep it in the backend with "
			 "vault_path)", path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	rc = lk_secret_read_fd(fd, LK_KEYFILE_MAX, true, &text);
	if (rc == -E2BIG) {
		snprintf(why, whylen, "%s: larger than %u bytes: not an lk1 key file", path,
			 LK_KEYFILE_MAX);
		goto out;
	}
	if (rc < 0) {
		snprintf(why, whylen, "%s: cannot read: %s", path, strerror(-rc));
		goto out;
	}
	if ((rc = lk_key_x25519_parse(lk_secret_cstr(text), lk_secret_len(text), &k, &err)) < 0) {
		snprintf(why, whylen, "%s: %s", path, err.msg);
		goto out;
	}
	if (!lk_key_has_private(k)) {
		rc = -ENOKEY;
		snprintf(why, whylen, "%s: holds an lk1 public key (%s...), not the private key "
			 "(%s...) that opens the values", path, LK_LK1_PUB_PREFIX,
			 LK_LK1_PRIV_PREFIX);
		goto out;
	}
	if ((ks = lk_keyset_new()) == NULL) {
		rc = -ENOMEM;
		snprintf(why, whylen, "%s: out of memory", path);
		goto out;
	}
	rc = lk_keyset_add_take(ks, k);
	k = NULL;
	if (rc < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(-rc));
		goto out;
	}
	if (ret_digest != NULL)
		crypto_generichash(ret_digest, BROKER_KEY_DIGEST_LEN,
				   (const unsigned char *)lk_secret_cstr(text), lk_secret_len(text),
				   NULL, 0);
	*ret = ks;
	ks = NULL;
out:
	lk_keyset_free(ks);
	lk_key_free(k);
	lk_secret_free(text);
	close(fd);
	return rc;
}

const struct broker_key_spec *
broker_key_of(const struct broker_config *cfg, const struct broker_secret_spec *sp)
{
	const struct broker_source_file *fs = sp->from_file;

	if (fs == NULL || !fs->decrypt)
		return NULL;
	return fs->decryption_key != NULL ? fs->decryption_key : cfg->decryption_key;
}

static int
load_file_key(const struct broker_config *cfg, const struct broker_key_spec *spec,
	      struct lk_keyset **ret, unsigned char ret_digest[BROKER_KEY_DIGEST_LEN],
	      struct lk_error *err)
{
	char why[BROKER_FILE_PATH_MAX + 256];
	int rc = broker_key_file_load(spec->file, ret, ret_digest, why, sizeof(why));

	if (rc < 0)
		return lk_error_set(err, rc == -ENOMEM ? rc : -EINVAL, "%s: %s.file: %s",
				    cfg->file, spec->where, why);
	return 0;
}

/* The data of a KV read, as the secrets' reads unwrap it: a KV v2 answer through the
 * logical path is {"data": {...}, "metadata": {... "version" ...}}; NULL when that version
 * holds no data (deleted or destroyed). */
static const json_t *
kv_data(const struct lk_vault_lease_secret *ls)
{
	json_t *inner = json_object_get(ls->data, "data");
	json_t *meta = json_object_get(ls->data, "metadata");

	if (ls->lease_id == NULL && json_is_object(meta) && json_object_size(ls->data) == 2 &&
	    json_object_get(meta, "version") != NULL)
		return json_is_object(inner) ? inner : NULL;
	return ls->data;
}

/* Reads the key spec names in the backend through client: *ret (owned: lk_keyset_free)
 * the private key in sodium memory, ret_digest the BLAKE2b digest of the field's text. On
 * failure, why says what went wrong (the backend's error, the field missing, not a private
 * key), never the field's text, and *ret and ret_digest are untouched. Any thread: the
 * client serialises its calls. */
static int
backend_key_read(struct broker *b, struct lk_vault_client *client,
		 const struct broker_key_spec *spec, struct lk_keyset **ret,
		 unsigned char ret_digest[BROKER_KEY_DIGEST_LEN], char *why, size_t whylen)
{
	struct lk_vault_lease_secret ls;
	struct lk_vault_error verr;
	struct lk_secret *text = NULL;
	struct lk_keyset *ks = NULL;
	struct lk_key *key = NULL;
	struct lk_error err;
	const json_t *data, *v;
	int64_t t0 = lk_now_mono_ms();
	int rc;

	memset(&ls, 0, sizeof(ls));
	lk_vault_error_clear(&verr);
	lk_error_clear(&err);
	rc = lk_vault_lease_read(client, spec->vault_path, &ls, &verr);
	broker_metrics_backend(b->metrics, "read", lk_now_mono_ms() - t0);
	if (rc < 0) {
		snprintf(why, whylen, "%s", verr.base.msg);
		goto out;
	}
	rc = -EINVAL;
	data = kv_data(&ls);
	v = data != NULL ? json_object_get(data, spec->field) : NULL;
	if (data == NULL) {
		snprintf(why, whylen, "the KV version has no data (deleted or destroyed)");
		goto out;
	}
	if (!json_is_string(v)) {
		snprintf(why, whylen, "the secret has no string field \"%s\"", spec->field);
		goto out;
	}
	text = lk_secret_new(json_string_value(v), json_string_length(v));
	if (text == NULL) {
		rc = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	if (lk_key_x25519_parse(lk_secret_cstr(text), lk_secret_len(text), &key, &err) < 0) {
		snprintf(why, whylen, "field \"%s\": %s", spec->field, err.msg);
		goto out;
	}
	if (!lk_key_has_private(key)) {
		snprintf(why, whylen, "field \"%s\" holds an lk1 public key, not the private "
			 "key that opens the values", spec->field);
		goto out;
	}
	if ((ks = lk_keyset_new()) == NULL || lk_keyset_add_take(ks, key) < 0) {
		if (ks == NULL)
			lk_key_free(key);
		key = NULL;
		rc = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	key = NULL;
	crypto_generichash(ret_digest, BROKER_KEY_DIGEST_LEN,
			   (const unsigned char *)lk_secret_cstr(text), lk_secret_len(text), NULL, 0);
	*ret = ks;
	ks = NULL;
	rc = 0;
out:
	lk_keyset_free(ks);
	lk_key_free(key);
	lk_secret_free(text);
	lk_vault_lease_secret_clear(&ls);
	return rc;
}

int
broker_keys_check(const struct broker_config *cfg, struct lk_error *err)
{
	for (size_t i = 0; i < cfg->nsecrets; i++) {
		const struct broker_key_spec *spec = broker_key_of(cfg, &cfg->secrets[i]);
		struct lk_keyset *ks = NULL;
		int rc;

		/* The top-level key once, at the first secret that uses it. */
		if (spec == NULL || spec->file == NULL)
			continue;
		if (spec == cfg->decryption_key) {
			bool seen = false;

			for (size_t j = 0; j < i && !seen; j++)
				seen = broker_key_of(cfg, &cfg->secrets[j]) == spec;
			if (seen)
				continue;
		}
		if ((rc = load_file_key(cfg, spec, &ks, NULL, err)) < 0)
			return rc;
		lk_keyset_free(ks);
	}
	return 0;
}

int
broker_keyring_new(struct broker *b, struct lk_error *err)
{
	const struct broker_config *cfg = b->cfg;
	struct broker_keyring *kr;

	kr = calloc(1, sizeof(*kr));
	if (kr == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	b->keyring = kr;
	kr->keys = calloc(cfg->nsecrets + 1, sizeof(*kr->keys));
	kr->of_entry = calloc(b->n ? b->n : 1, sizeof(*kr->of_entry));
	if (kr->keys == NULL || kr->of_entry == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < b->n; i++) {
		const struct broker_key_spec *spec = broker_key_of(cfg, b->entries[i].spec);
		struct broker_dkey *k = NULL;
		int rc;

		kr->of_entry[i] = SIZE_MAX;
		if (spec == NULL)
			continue;
		for (size_t j = 0; j < kr->n && k == NULL; j++) {
			if (kr->keys[j].spec == spec) {
				k = &kr->keys[j];
				kr->of_entry[i] = j;
			}
		}
		if (k != NULL)
			continue;
		k = &kr->keys[kr->n];
		k->spec = spec;
		pthread_mutex_init(&k->lock, NULL);
		lk_backoff_init(&k->backoff, cfg->retry_base_ms, cfg->retry_cap_ms);
		kr->of_entry[i] = kr->n++;
		if (spec->file == NULL)
			continue;           /* the scheduler reads it once logged in */
		if ((rc = load_file_key(cfg, spec, &k->ks, k->digest, err)) < 0)
			return rc;
		lk_log(LK_INFO, "decryption key loaded", LK_STR("config", spec->where),
		       LK_STR("file", spec->file),
		       LK_STR("key_id", lk_key_id(lk_keyset_get(k->ks, 0))));
	}
	return 0;
}

static bool
str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool
broker_key_spec_equal(const struct broker_key_spec *a, const struct broker_key_spec *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return str_eq(a->file, b->file) && str_eq(a->vault_path, b->vault_path) &&
	       str_eq(a->field, b->field);
}

struct broker_keyring_next {
	struct broker_keyring *kr;  /* the keys of the new configuration */
	size_t *from_old;           /* per new key: the old key it takes over, or SIZE_MAX */
	bool *replaced;             /* per new key: a key file whose contents changed */
};

void
broker_keyring_next_free(struct broker_keyring_next *next)
{
	if (next == NULL)
		return;
	if (next->kr != NULL) {
		for (size_t i = 0; i < next->kr->n; i++) {
			lk_keyset_free(next->kr->keys[i].ks);
			pthread_mutex_destroy(&next->kr->keys[i].lock);
		}
		free(next->kr->keys);
		free(next->kr->of_entry);
		free(next->kr);
	}
	free(next->from_old);
	free(next->replaced);
	free(next);
}

/* The backend key k (spec, taking over old key from) read again for a reload: from has a
 * key, so a failed read refuses the reload; the same text under the same name keeps from's
 * key (k holds none), other text gives k the new key and marks it replaced. */
static int
reread_backend_key(struct broker *b, struct lk_vault_client *client,
		   const struct broker_config *nc, struct broker_dkey *k,
		   struct broker_dkey *from, bool *ret_replaced, struct lk_error *err)
{
	unsigned char held[BROKER_KEY_DIGEST_LEN];
	char why[KEY_WHY_MAX];
	bool replaced;
	int rc;

	if ((rc = backend_key_read(b, client, k->spec, &k->ks, k->digest, why, sizeof(why))) < 0)
		return lk_error_set(err, rc == -ENOMEM ? rc : -EINVAL, "%s: %s.vault_path: the "
				    "decryption key (%s, field %s) could not be read: %s (the key "
				    "loaded before goes on serving)", nc->file, k->spec->where,
				    k->spec->vault_path, k->spec->field, why);
	/* Written with ks by the scheduler, under the lock, and not again once ks is set. */
	pthread_mutex_lock(&from->lock);
	memcpy(held, from->digest, sizeof(held));
	pthread_mutex_unlock(&from->lock);
	replaced = sodium_memcmp(held, k->digest, sizeof(held)) != 0;
	sodium_memzero(held, sizeof(held));
	if (!replaced)
		k->ks = lk_keyset_free(k->ks);
	*ret_replaced = replaced;
	return 0;
}

int
broker_keyring_prepare(struct broker *b, const struct broker_config *nc,
		       struct lk_vault_client *client, struct broker_keyring_next **ret,
		       struct lk_error *err)
{
	struct broker_keyring *old = b->keyring;
	struct broker_keyring_next *next;
	struct broker_keyring *kr;
	int rc = 0;

	next = calloc(1, sizeof(*next));
	if (next == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	next->kr = kr = calloc(1, sizeof(*kr));
	if (kr == NULL || (kr->keys = calloc(nc->nsecrets + 1, sizeof(*kr->keys))) == NULL ||
	    (kr->of_entry = calloc(nc->nsecrets + 1, sizeof(*kr->of_entry))) == NULL ||
	    (next->from_old = calloc(nc->nsecrets + 1, sizeof(*next->from_old))) == NULL ||
	    (next->replaced = calloc(nc->nsecrets + 1, sizeof(*next->replaced))) == NULL) {
		rc = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* One key per distinct setting (the same file or KV field named twice is one key).
	 * The old keys' specs are read here without a lock: only this thread (the reload)
	 * changes them, under the generation lock. */
	for (size_t i = 0; i < nc->nsecrets; i++) {
		const struct broker_key_spec *spec = broker_key_of(nc, &nc->secrets[i]);
		struct broker_dkey *k;
		size_t j;

		kr->of_entry[i] = SIZE_MAX;
		if (spec == NULL)
			continue;
		for (j = 0; j < kr->n && !broker_key_spec_equal(kr->keys[j].spec, spec); j++)
			;
		kr->of_entry[i] = j;
		if (j < kr->n)
			continue;
		k = &kr->keys[kr->n++];
		k->spec = spec;
		pthread_mutex_init(&k->lock, NULL);
		lk_backoff_init(&k->backoff, nc->retry_base_ms, nc->retry_cap_ms);
		next->from_old[j] = SIZE_MAX;
		for (size_t o = 0; old != NULL && o < old->n; o++) {
			if (broker_key_spec_equal(old->keys[o].spec, spec)) {
				next->from_old[j] = o;
				break;
			}
		}
		/* A key file is read now, new or not (an error refuses the reload, as it stops
		 * a start; the old key goes on serving); a new KV field by the scheduler. */
		if (spec->file == NULL) {
			struct broker_dkey *from;
			bool held;

			if (next->from_old[j] == SIZE_MAX || client == NULL)
				continue;
			/* A KV field named as before is read again when it holds a key, by
			 * the same rules; one still waited for is the scheduler's (remap). */
			from = &old->keys[next->from_old[j]];
			pthread_mutex_lock(&from->lock);
			held = from->ks != NULL;
			pthread_mutex_unlock(&from->lock);
			if (held && (rc = reread_backend_key(b, client, nc, k, from,
							     &next->replaced[j], err)) < 0)
				goto out;
			continue;
		}
		if ((rc = load_file_key(nc, spec, &k->ks, k->digest, err)) < 0)
			goto out;
		/* The same bytes under the same name: the old key is taken over at remap (the
		 * digests are the reload's own: only this thread writes them). */
		if (next->from_old[j] != SIZE_MAX) {
			const struct broker_dkey *from = &old->keys[next->from_old[j]];

			if (sodium_memcmp(from->digest, k->digest, sizeof(k->digest)) == 0) {
				k->ks = lk_keyset_free(k->ks);
			} else {
				next->replaced[j] = true;
			}
		}
	}
	*ret = next;
	next = NULL;
out:
	broker_keyring_next_free(next);
	return rc;
}

void
broker_keyring_remap(struct broker *b, struct broker_keyring_next *next, size_t new_n,
		     bool *ret_rekeyed)
{
	struct broker_keyring *old = b->keyring, *kr = next->kr;

	for (size_t i = 0; i < new_n; i++)
		ret_rekeyed[i] = kr->of_entry[i] != SIZE_MAX && next->replaced[kr->of_entry[i]];
	if (old == NULL) {
		broker_keyring_next_free(next);
		return;
	}
	/* Unused by any other thread: each takes a key set only in its round. */
	for (size_t j = 0; j < kr->n; j++) {
		struct broker_dkey *k = &kr->keys[j], *from;

		if (next->from_old[j] == SIZE_MAX || next->replaced[j]) {
			/* The old one of a replaced key is zeroed with the old keyring, below. */
			if (k->ks != NULL && k->spec->file != NULL)
				lk_log(LK_INFO, "decryption key loaded", LK_STR("config", k->spec->where),
				       LK_STR("file", k->spec->file),
				       LK_STR("key_id", lk_key_id(lk_keyset_get(k->ks, 0))),
				       LK_BOOL("replaced", next->replaced[j]));
			else if (k->ks != NULL)
				lk_log(LK_INFO, "decryption key loaded", LK_STR("config", k->spec->where),
				       LK_STR("vault_path", k->spec->vault_path),
				       LK_STR("field", k->spec->field),
				       LK_STR("key_id", lk_key_id(lk_keyset_get(k->ks, 0))),
				       LK_BOOL("replaced", next->replaced[j]));
			continue;
		}
		from = &old->keys[next->from_old[j]];
		k->ks = from->ks;
		from->ks = NULL;
		memcpy(k->digest, from->digest, sizeof(k->digest));
		k->failed = from->failed;
		memcpy(k->reason, from->reason, sizeof(k->reason));
		k->next_mono_ms = from->next_mono_ms;
		k->backoff = from->backoff;
		k->backoff.base_ms = b->cfg->retry_base_ms;
		k->backoff.cap_ms = b->cfg->retry_cap_ms;
		/* A KV field still waited for is tried again at once, as a reload reads the
		 * keys it names (a policy or a secret fixed in the backend shows now). */
		if (k->spec->vault_path != NULL && k->ks == NULL)
			k->next_mono_ms = 0;
	}
	/* The keys no secret uses any more are zeroed now. */
	b->keyring = kr;
	next->kr = old;
	broker_keyring_next_free(next);
}

void
broker_keyring_free(struct broker *b)
{
	struct broker_keyring *kr = b->keyring;

	if (kr == NULL)
		return;
	for (size_t i = 0; i < kr->n; i++) {
		lk_keyset_free(kr->keys[i].ks);
		pthread_mutex_destroy(&kr->keys[i].lock);
	}
	free(kr->keys);
	free(kr->of_entry);
	free(kr);
	b->keyring = NULL;
}

const struct lk_keyset *
broker_keyring_for(struct broker *b, size_t entry, char *why, size_t whylen, bool *ret_failed)
{
	struct broker_keyring *kr = b->keyring;
	const struct lk_keyset *ks;
	struct broker_dkey *k;

	*ret_failed = false;
	if (kr == NULL || entry >= b->n || kr->of_entry[entry] == SIZE_MAX) {
		snprintf(why, whylen, "%s", "no decryption key is configured for it");
		*ret_failed = true;
		return NULL;
	}
	k = &kr->keys[kr->of_entry[entry]];
	pthread_mutex_lock(&k->lock);
	ks = k->ks;
	if (ks == NULL) {
		*ret_failed = k->failed;
		if (k->failed)
			snprintf(why, whylen, "%s", k->reason);
		else
			snprintf(why, whylen, "waiting for the decryption key from the backend "
				 "(%s)", k->spec->vault_path);
	}
	pthread_mutex_unlock(&k->lock);
	return ks;
}

/* ---- keys in the backend (scheduler thread) ---- */

int64_t
broker_keyring_due(struct broker *b)
{
	struct broker_keyring *kr = b->keyring;
	int64_t at = INT64_MAX;

	/* ks is written by this thread only: reading it here needs no lock. */
	for (size_t i = 0; kr != NULL && i < kr->n; i++)
		if (kr->keys[i].spec->vault_path != NULL && kr->keys[i].ks == NULL &&
		    kr->keys[i].next_mono_ms < at)
			at = kr->keys[i].next_mono_ms;
	return at;
}

static void
key_failed(struct broker *b, struct broker_dkey *k, const char *why, int64_t now)
{
	int64_t next = now + broker_retry_delay(&k->backoff, true);
	char reason[LK_VAULT_PATH_MAX + 1024];

	k->next_mono_ms = next;
	snprintf(reason, sizeof(reason), "the decryption key (%s, field %s) could not be read: %s",
		 k->spec->vault_path, k->spec->field, why);
	pthread_mutex_lock(&k->lock);
	k->failed = true;
	broker_copy_text(k->reason, sizeof(k->reason), reason);
	pthread_mutex_unlock(&k->lock);
	lk_log(LK_WARN, "decryption key read failed", LK_STR("config", k->spec->where),
	       LK_STR("vault_path", k->spec->vault_path), LK_STR("error", why),
	       LK_INT("retry_in_ms", next - now));
	/* The sources waiting for it say why now, not at their next read. */
	broker_files_wake(b);
}

void
broker_keyring_fetch(struct broker *b, int64_t now)
{
	struct broker_keyring *kr = b->keyring;
	unsigned char digest[BROKER_KEY_DIGEST_LEN];
	struct broker_dkey *k = NULL;
	struct lk_keyset *ks = NULL;
	char why[KEY_WHY_MAX];

	for (size_t i = 0; kr != NULL && i < kr->n && k == NULL; i++)
		if (kr->keys[i].spec->vault_path != NULL && kr->keys[i].ks == NULL &&
		    kr->keys[i].next_mono_ms <= now)
			k = &kr->keys[i];
	if (k == NULL)
		return;
	if (backend_key_read(b, b->vault, k->spec, &ks, digest, why, sizeof(why)) < 0) {
		key_failed(b, k, why, lk_now_mono_ms());
		return;
	}
	lk_log(LK_INFO, "decryption key loaded", LK_STR("config", k->spec->where),
	       LK_STR("vault_path", k->spec->vault_path),
	       LK_STR("key_id", lk_key_id(lk_keyset_get(ks, 0))));
	pthread_mutex_lock(&k->lock);
	k->ks = ks;
	memcpy(k->digest, digest, sizeof(k->digest));
	k->failed = false;
	k->reason[0] = '\0';
	pthread_mutex_unlock(&k->lock);
	sodium_memzero(digest, sizeof(digest));
	broker_files_wake(b);
}
