/* reload.c — SIGHUP: the configuration file read again and applied while the broker serves.
 *
 * The new file is parsed and checked first, the new vault client made, and everything that
 * can fail allocated, all while the running configuration serves. Then, under the
 * generation lock held for writing (no request handler, sweeper round, scheduler round or
 * file-source round runs), the entries array is rebuilt: a secret whose source is the same
 * (name, path, kind, from_file, file) moves over with its snapshot, lease and version; a
 * new one starts empty and is read by the scheduler at once; a removed one has its lease
 * queued for revocation now and its snapshot released (zeroed when its last reader lets
 * go); one whose source changed is removed and added, its version going on from the old
 * one so that blocked readers see a change. A file source follows the same rules, its
 * watch kept, made or dropped with it (broker_files_remap); the first one in a broker that
 * started without starts the watcher thread (its inotify instance is made at start), and
 * a key file whose contents changed replaces its key and has its sources read again. The
 * rest of a secret's settings (allow, required, refresh, grace) follow the new file in
 * place. A decryption key in the backend named as before is read again, as a key file is
 * (broker/decrypt.c), with the token held, before the generation lock: a failed read
 * refuses the reload. The new client logs in
 * again when the auth settings, the token file or the contents of the credential files
 * changed; the token held serves until that login succeeds, and on when it fails
 * (scheduler.c). docs/broker.md, "Reloading".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/log.h"
#include "crypto/secret.h"

/* Longest list of names in the "configuration reloaded" log line. */
#define RELOAD_NAMES_MAX 1024
/* How much longer than a backend call in flight a reload waits for the broker's threads. */
#define RELOAD_LOCK_SLACK_MS 5000
/* The longest a reload waits for one decryption key kept in the backend (connecting, and
 * the whole read): the signal loop, SIGTERM's too, waits meanwhile. */
#define RELOAD_KEY_CONNECT_TIMEOUT_MS 1000
#define RELOAD_KEY_TIMEOUT_MS 2000

static bool
str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
source_file_eq(const struct broker_source_file *a, const struct broker_source_file *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return str_eq(a->path, b->path) && str_eq(a->key, b->key) && a->decrypt == b->decrypt &&
	       str_eq(a->k8s_namespace, b->k8s_namespace) && str_eq(a->k8s_name, b->k8s_name) &&
	       broker_key_spec_equal(a->decryption_key, b->decryption_key);
}

static bool
file_spec_eq(const struct broker_file_spec *a, const struct broker_file_spec *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return str_eq(a->path, b->path) && a->format == b->format && a->dialect == b->dialect &&
	       str_eq(a->template_text, b->template_text) && a->mode == b->mode &&
	       a->owner == b->owner && a->group == b->group && str_eq(a->pidfile, b->pidfile) &&
	       a->signal == b->signal && str_eq(a->process, b->process) &&
	       a->process_uid == b->process_uid;
}

/* Where a secret's data comes from and where it is written: a change means reading it
 * anew (and, for a dynamic secret, a new lease). The key its values open with is the one
 * it uses, its own or the top-level one (ac's and bc's). */
static bool
source_eq(const struct broker_config *ac, const struct broker_secret_spec *a,
	  const struct broker_config *bc, const struct broker_secret_spec *b)
{
	return str_eq(a->name, b->name) && str_eq(a->path, b->path) && a->kind == b->kind &&
	       source_file_eq(a->from_file, b->from_file) && file_spec_eq(a->file, b->file) &&
	       broker_key_spec_equal(broker_key_of(ac, a), broker_key_of(bc, b));
}

static bool
auth_eq(const struct lk_vault_config *a, const struct lk_vault_config *b)
{
	return a->auth.method == b->auth.method && str_eq(a->auth.mount, b->auth.mount) &&
	       str_eq(a->auth.role, b->auth.role) && str_eq(a->auth.jwt_file, b->auth.jwt_file) &&
	       str_eq(a->auth.role_id_file, b->auth.role_id_file) &&
	       str_eq(a->auth.secret_id_file, b->auth.secret_id_file) &&
	       str_eq(a->auth.token_file, b->auth.token_file) &&
	       str_eq(a->addr, b->addr) && str_eq(a->namespace, b->namespace);
}

static int
refuse(struct lk_error *err, const char *file, const char *key)
{
	return lk_error_set(err, -EINVAL, "%s: %s: changed, and only a restart applies it (the "
			    "running configuration goes on serving)", file, key);
}

/* The settings the running broker holds in its sockets, threads, filters and memory. The
 * serving threads' count and poll compare as they run: "auto" was decided at start and
 * keeps what it decided, and a number is a change only if it is not what runs. */
static int
check_restart_only(const struct broker *b, const struct broker_config *o,
		   const struct broker_config *n, struct lk_error *err)
{
	const char *f = n->file;

	if (!str_eq(o->socket_path, n->socket_path))
		return refuse(err, f, "listen.socket");
	if (o->socket_mode != n->socket_mode)
		return refuse(err, f, "listen.mode");
	if (o->socket_owner != n->socket_owner)
		return refuse(err, f, "listen.owner");
	if (o->socket_group != n->socket_group)
		return refuse(err, f, "listen.group");
	if (!str_eq(o->metrics_addr, n->metrics_addr))
		return refuse(err, f, "listen.metrics");
	if (n->threads != BROKER_THREADS_AUTO && n->threads != b->threads)
		return refuse(err, f, "listen.threads");
	if (n->poll_us != BROKER_POLL_US_AUTO && n->poll_us != b->poll_us)
		return refuse(err, f, "listen.poll_us");
	if (o->max_connections != n->max_connections)
		return refuse(err, f, "listen.max_connections");
	if (o->max_connections_per_uid != n->max_connections_per_uid)
		return refuse(err, f, "listen.max_connections_per_uid");
	if (o->header_timeout_ms != n->header_timeout_ms)
		return refuse(err, f, "listen.header_timeout");
	if (o->seccomp != n->seccomp)
		return refuse(err, f, "seccomp");
	if (!str_eq(o->state_dir, n->state_dir))
		return refuse(err, f, "state_dir");
	if (o->require_mlock != n->require_mlock)
		return refuse(err, f, "require_mlock");
	if (o->metrics_series_max != n->metrics_series_max)
		return refuse(err, f, "metrics_series_max");
	if (o->audit_interval_ms != n->audit_interval_ms)
		return refuse(err, f, "audit_interval");
	if (!str_eq(o->log_level, n->log_level))
		return refuse(err, f, "log_level");
	if (!o->backend && n->backend)
		return lk_error_set(err, -EINVAL, "%s: secrets: the first secret read from the "
				    "backend needs a restart (the running broker has no backend "
				    "login); the running configuration goes on serving", f);
	return 0;
}

/* Appends name to the list text (capped, with "..." once full). */
static void
list_add(char *list, size_t len, const char *name)
{
	size_t used = strlen(list);

	if (used > 0 && strcmp(list + used - (used >= 3 ? 3 : used), "...") == 0)
		return;
	if (used + strlen(name) + 2 >= len) {
		if (used + 4 < len)
			strcat(list, "...");
		return;
	}
	if (used > 0)
		strcat(list, ",");
	strcat(list, name);
}

struct plan {
	size_t old_n, new_n;
	size_t *old_of_new;         /* by name; SIZE_MAX: added */
	size_t *new_of_old;         /* by name; SIZE_MAX: removed */
	bool *moved;                /* per new entry: same source, moves with its data */
	const char **old_names;     /* borrowed from the old configuration */
	struct broker_entry *entries; /* the new array */
	size_t *by_name;            /* its name index */
	struct broker_files_next *files; /* for broker_files_remap */
	size_t nretired;            /* old entries whose lease is queued for revocation */
};

static void
plan_free(struct plan *p)
{
	free(p->old_of_new);
	free(p->new_of_old);
	free(p->moved);
	free(p->old_names);
	free(p->entries);
	free(p->by_name);
	broker_files_next_free(p->files);
	memset(p, 0, sizeof(*p));
}

static int
plan_make(struct broker *b, const struct broker_config *nc, struct plan *p)
{
	memset(p, 0, sizeof(*p));
	p->old_n = b->n;
	p->new_n = nc->nsecrets;
	p->old_of_new = malloc((p->new_n + 1) * sizeof(*p->old_of_new));
	p->new_of_old = malloc((p->old_n + 1) * sizeof(*p->new_of_old));
	p->moved = calloc(p->new_n + 1, sizeof(*p->moved));
	p->old_names = calloc(p->old_n + 1, sizeof(*p->old_names));
	p->entries = calloc(p->new_n + 1, sizeof(*p->entries));
	p->by_name = broker_name_index(nc->secrets, nc->nsecrets);
	if (p->old_of_new == NULL || p->new_of_old == NULL || p->moved == NULL ||
	    p->old_names == NULL || p->entries == NULL || p->by_name == NULL) {
		plan_free(p);
		return -ENOMEM;
	}
	for (size_t o = 0; o < p->old_n; o++) {
		p->new_of_old[o] = SIZE_MAX;
		p->old_names[o] = b->entries[o].spec->name;
	}
	/* Names are unique on each side (the parser checks): n * m compares, a few
	 * milliseconds at the most secrets. */
	for (size_t i = 0; i < p->new_n; i++) {
		p->old_of_new[i] = SIZE_MAX;
		for (size_t o = 0; o < p->old_n; o++) {
			if (strcmp(nc->secrets[i].name, b->entries[o].spec->name) != 0)
				continue;
			p->old_of_new[i] = o;
			p->new_of_old[o] = i;
			p->moved[i] = source_eq(nc, &nc->secrets[i], b->cfg,
					       b->entries[o].spec);
			break;
		}
	}
	return 0;
}

/* The old entries whose lease is to be revoked. Under the generation lock: the lease ids
 * are the scheduler's. */
static size_t
plan_retired(const struct broker *b, const struct plan *p)
{
	size_t n = 0;

	for (size_t o = 0; o < p->old_n; o++) {
		size_t i = p->new_of_old[o];

		if ((i == SIZE_MAX || !p->moved[i]) && b->entries[o].lease_id != NULL)
			n++;
	}
	return n;
}

/* The lease of a retired entry (handed over) is revoked at once, under the name it had. */
static void
retire_lease(struct broker *b, struct broker_entry *e, int64_t now)
{
	struct broker_revocation *r = &b->revocations[b->nrevocations++];

	memset(r, 0, sizeof(*r));
	r->lease_id = e->lease_id;
	e->lease_id = NULL;
	r->entry = SIZE_MAX;
	r->owned_secret = strdup(e->spec->name);
	r->secret = r->owned_secret;
	r->gen = e->lease_gen;
	r->retired = true;
	r->at_mono_ms = now;
	r->expires_mono_ms = e->expires_mono_ms;
	r->expires_real_ms = e->expires_real_ms;
}

/* Under the generation lock held for writing: nothing can fail from here on. */
static void
apply(struct broker *b, struct broker_config *nc, struct plan *p, int64_t now)
{
	struct broker_config swap;
	struct broker_entry *old = b->entries;

	/* b->cfg is the one the rest of the broker holds: it takes the new contents, and nc
	 * the old ones (freed by the caller), whose arrays stay where they are. */
	swap = *b->cfg;
	*b->cfg = *nc;
	*nc = swap;
	b->token_backoff.base_ms = b->cfg->retry_base_ms;
	b->token_backoff.cap_ms = b->cfg->retry_cap_ms;
	for (size_t i = 0; i < p->new_n; i++) {
		struct broker_entry *e = &p->entries[i];
		size_t o = p->old_of_new[i];

		if (o != SIZE_MAX && p->moved[i]) {
			/* Unlocked and unused: every user of it holds the generation lock. */
			*e = old[o];
			/* The retry settings of the new file, the retries so far kept. */
			e->backoff.base_ms = b->cfg->retry_base_ms;
			e->backoff.cap_ms = b->cfg->retry_cap_ms;
		} else {
			lk_backoff_init(&e->backoff, b->cfg->retry_base_ms, b->cfg->retry_cap_ms);
			/* A changed source goes on from the old version: its blocked readers are
			 * woken by the first read of the new one. */
			if (o != SIZE_MAX)
				e->version = old[o].version;
		}
		pthread_mutex_init(&e->lock, NULL);
		e->spec = &b->cfg->secrets[i];
		e->index = i;
	}
	/* Pending revocations follow their secret, or keep its name when it is gone. */
	for (size_t k = 0; k < b->nrevocations; k++) {
		struct broker_revocation *r = &b->revocations[k];
		size_t i = r->entry < p->old_n ? p->new_of_old[r->entry] : SIZE_MAX;

		if (r->entry >= p->old_n)
			continue;
		if (i != SIZE_MAX) {
			r->entry = i;
			r->secret = b->cfg->secrets[i].name;
		} else {
			r->owned_secret = strdup(p->old_names[r->entry]);
			r->secret = r->owned_secret;
			r->entry = SIZE_MAX;
		}
	}
	for (size_t o = 0; o < p->old_n; o++) {
		struct broker_entry *e = &old[o];
		size_t i = p->new_of_old[o];

		if (i == SIZE_MAX || !p->moved[i]) {
			if (e->lease_id != NULL)
				retire_lease(b, e, now);
			/* Zeroed when its last reader lets go. */
			broker_snapshot_unref(e->current);
			e->current = NULL;
			free(e->shown_lease_id);
			e->shown_lease_id = NULL;
		}
		pthread_mutex_destroy(&e->lock);
	}
	b->entries = p->entries;
	b->n = p->new_n;
	p->entries = old;           /* freed by plan_free */
	{
		size_t *old_index = b->by_name;

		b->by_name = p->by_name;
		p->by_name = old_index;
	}
	broker_files_remap(b, p->old_of_new, p->moved, p->new_n, p->files);
	p->files = NULL;
	broker_server_remap(b, p->new_of_old);
	b->journal_dirty = true;
}

/* True when the token file holds another token than the client has. */
static bool
token_file_changed(const struct broker_config *nc, struct lk_vault_client *client)
{
	struct lk_secret *file = NULL, *held;
	bool changed;

	if (nc->vault.auth.token_file == NULL)
		return false;
	if (lk_secret_read_file(nc->vault.auth.token_file, 0, true, &file) < 0)
		return true;        /* the login says why */
	held = lk_vault_client_token_dup(client);
	changed = held == NULL || !lk_secret_equal(file, held);
	lk_secret_free(held);
	lk_secret_free(file);
	return changed;
}

/* One credential file into the digest: its length and bytes, or the error reading it. */
static void
digest_file(crypto_generichash_state *st, const char *path)
{
	struct lk_secret *s = NULL;
	int rc = lk_secret_read_file(path, LK_VAULT_CREDENTIAL_FILE_MAX, true, &s);
	uint64_t len;

	if (rc < 0) {
		int32_t e = rc;

		crypto_generichash_update(st, (const unsigned char *)"E", 1);
		crypto_generichash_update(st, (const unsigned char *)&e, sizeof(e));
		return;
	}
	len = lk_secret_len(s);
	crypto_generichash_update(st, (const unsigned char *)"F", 1);
	crypto_generichash_update(st, (const unsigned char *)&len, sizeof(len));
	crypto_generichash_update(st, (const unsigned char *)lk_secret_cstr(s), len);
	lk_secret_free(s);
}

void
broker_credentials_digest(const struct lk_vault_config *vc, unsigned char out[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	switch (vc->auth.method) {
	case LK_VAULT_AUTH_APPROLE:
		if (vc->auth.role_id_file != NULL)
			digest_file(&st, vc->auth.role_id_file);
		if (vc->auth.secret_id_file != NULL)
			digest_file(&st, vc->auth.secret_id_file);
		break;
	case LK_VAULT_AUTH_KUBERNETES:
		digest_file(&st, vc->auth.jwt_file != NULL ? vc->auth.jwt_file :
			    LK_VAULT_K8S_JWT_PATH_DEFAULT);
		break;
	default:
		break;
	}
	crypto_generichash_final(&st, out, 32);
	sodium_memzero(&st, sizeof(st));
}

int
broker_reload(struct broker *b, struct lk_error *err)
{
	unsigned char creds[32];
	struct broker_config *nc;
	struct lk_vault_client *client = NULL, *old_client = NULL, *keys_client = NULL;
	struct lk_vault_error verr;
	struct plan plan;
	struct broker_output *outputs = NULL;
	size_t noutputs = 0;
	char added[RELOAD_NAMES_MAX] = "", removed[RELOAD_NAMES_MAX] = "";
	char changed[RELOAD_NAMES_MAX] = "";
	bool relogin = false;
	int64_t now;
	int rc;

	memset(&plan, 0, sizeof(plan));
	nc = calloc(1, sizeof(*nc));
	if (nc == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	if ((rc = broker_config_load(nc, b->cfg->file, err)) < 0 ||
	    (rc = broker_keys_check(nc, err)) < 0 ||
	    (rc = check_restart_only(b, b->cfg, nc, err)) < 0)
		goto out;
	if (nc->backend) {
		/* A new client: the address, the TLS files and the auth settings read again. */
		if (nc->vault.connect_timeout_ms <= 0)
			nc->vault.connect_timeout_ms = BROKER_VAULT_CONNECT_TIMEOUT_MS;
		if (nc->vault.timeout_ms <= 0)
			nc->vault.timeout_ms = BROKER_VAULT_TIMEOUT_MS;
		lk_vault_error_clear(&verr);
		if ((rc = lk_vault_client_new(&nc->vault, &client, &verr)) < 0) {
			lk_error_set(err, rc, "%s: vault: %s", nc->file, verr.base.msg);
			goto out;
		}
	}
	if ((rc = plan_make(b, nc, &plan)) < 0 ||
	    (rc = broker_outputs_new(nc, &outputs, &noutputs)) < 0) {
		lk_error_set(err, rc, "out of memory");
		goto out;
	}
	/* The keys in the backend named as before are read again through the new client
	 * with the token held (copied again under the lock: the scheduler may renew it
	 * meanwhile), unless the reload logs in again (elsewhere, otherwise, or with another
	 * token or credentials file): the token held may not be good there, or may be the one
	 * being replaced, and the next reload reads them with the new login. Each read is
	 * cut short at RELOAD_KEY_TIMEOUT_MS, since signals wait for it. */
	if (client != NULL && b->vault != NULL && auth_eq(&b->cfg->vault, &nc->vault)) {
		struct lk_secret *token = lk_vault_client_token_dup(b->vault);

		rc = token != NULL ? lk_vault_client_set_token(client, token) : 0;
		lk_secret_free(token);
		if (rc < 0) {
			lk_error_set(err, rc, "out of memory");
			goto out;
		}
		/* The credentials digest is this thread's alone (the reload writes it). */
		broker_credentials_digest(&nc->vault, creds);
		if (!token_file_changed(nc, client) &&
		    sodium_memcmp(creds, b->credentials_digest, sizeof(creds)) == 0) {
			keys_client = client;
			lk_vault_client_set_timeouts(client,
				nc->vault.connect_timeout_ms < RELOAD_KEY_CONNECT_TIMEOUT_MS ?
				nc->vault.connect_timeout_ms : RELOAD_KEY_CONNECT_TIMEOUT_MS,
				nc->vault.timeout_ms < RELOAD_KEY_TIMEOUT_MS ?
				nc->vault.timeout_ms : RELOAD_KEY_TIMEOUT_MS);
		}
	}
	/* The watches and keys of the new file sources; the key files are read here. */
	rc = broker_files_prepare(b, nc, keys_client, &plan.files, err);
	if (keys_client != NULL)
		lk_vault_client_set_timeouts(client, nc->vault.connect_timeout_ms,
					     nc->vault.timeout_ms);
	if (rc < 0)
		goto out;

	/* The broker's threads finish what they are doing first: a backend call in flight
	 * (vault.timeout at the most) and the requests being answered. Under a load that
	 * never lets go the reload gives up rather than hold the signal loop for ever. */
	{
		int64_t wait_ms = (b->cfg->backend ? b->cfg->vault.timeout_ms : 0) +
				  RELOAD_LOCK_SLACK_MS;
		/* The wall clock: pthread_rwlock_clockwrlock would take the monotonic one, but
		 * ThreadSanitizer does not know it and takes the lock for unheld. */
		struct timespec until = lk_timespec_in_ms(CLOCK_REALTIME, wait_ms);

		if ((rc = pthread_rwlock_timedwrlock(&b->gen_lock, &until)) != 0) {
			rc = lk_error_set(err, -ETIMEDOUT, "%s: the broker stayed busy for %lld ms; "
					  "nothing was changed: send SIGHUP again", b->cfg->file,
					  (long long)wait_ms);
			goto out;
		}
	}
	/* What can fail first, while nothing has changed. */
	plan.nretired = plan_retired(b, &plan);
	if (plan.nretired > 0) {
		struct broker_revocation *r = realloc(b->revocations, (b->nrevocations +
						      plan.nretired) * sizeof(*r));

		if (r == NULL) {
			pthread_rwlock_unlock(&b->gen_lock);
			rc = lk_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		b->revocations = r;
	}
	if (client != NULL && b->vault != NULL) {
		/* The new client carries the token on; a new login replaces it when the auth
		 * settings or the token file changed. */
		struct lk_secret *token = lk_vault_client_token_dup(b->vault);

		rc = token != NULL ? lk_vault_client_set_token(client, token) : 0;
		lk_secret_free(token);
		broker_credentials_digest(&nc->vault, creds);
		relogin = !auth_eq(&b->cfg->vault, &nc->vault) || token_file_changed(nc, client) ||
			  sodium_memcmp(creds, b->credentials_digest, sizeof(creds)) != 0;
	}
	if (rc < 0 || (rc = broker_metrics_remap(b->metrics, plan.old_of_new, plan.new_n,
						 plan.old_names, plan.old_n)) < 0) {
		pthread_rwlock_unlock(&b->gen_lock);
		lk_error_set(err, rc, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < plan.new_n; i++) {
		if (plan.old_of_new[i] == SIZE_MAX)
			list_add(added, sizeof(added), nc->secrets[i].name);
		else if (!plan.moved[i])
			list_add(changed, sizeof(changed), nc->secrets[i].name);
	}
	for (size_t o = 0; o < plan.old_n; o++)
		if (plan.new_of_old[o] == SIZE_MAX)
			list_add(removed, sizeof(removed), plan.old_names[o]);
	now = lk_now_mono_ms();
	/* The files and templates of the new file, knowing what the old ones last wrote (the
	 * old specs are alive until nc is cleared); the old array is freed below. */
	broker_outputs_carry(outputs, noutputs, b->outputs, b->noutputs);
	{
		struct broker_output *o = b->outputs;
		size_t on = b->noutputs;

		b->outputs = outputs;
		b->noutputs = noutputs;
		outputs = o;
		noutputs = on;
	}
	apply(b, nc, &plan, now);
	if (client != NULL) {
		old_client = b->vault;
		b->vault = client;
		client = NULL;
		memcpy(b->credentials_digest, creds, sizeof(creds));
	}
	pthread_mutex_lock(&b->lock);
	if (b->backend_reason_entry != SIZE_MAX)
		b->backend_reason_entry = b->backend_reason_entry < plan.old_n ?
					  plan.new_of_old[b->backend_reason_entry] : SIZE_MAX;
	if (relogin) {
		/* A capped token is replaced by a login, not renewed (scheduler.c); if that
		 * login fails, the token held goes on as it was. */
		if (!b->reload_login) {
			b->reload_prev_capped = b->token_capped;
			b->reload_prev_next_mono_ms = b->token_next_mono_ms;
		}
		b->reload_login = b->logged_in;
		b->token_capped = true;
		b->token_next_mono_ms = now;
	}
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_rwlock_unlock(&b->gen_lock);
	/* Every file once, from what is loaded: a changed template or file spec shows now,
	 * unchanged bytes are not written again. */
	pthread_rwlock_rdlock(&b->gen_lock);
	broker_render_all(b);
	pthread_rwlock_unlock(&b->gen_lock);

	lk_log(LK_INFO, "configuration reloaded", LK_STR("file", b->cfg->file),
	       LK_INT("secrets", plan.new_n), LK_STR("added", added), LK_STR("removed", removed),
	       LK_STR("changed", changed), LK_BOOL("login", relogin));
	rc = 0;
out:
	broker_outputs_free(outputs, noutputs);
	lk_vault_client_free(old_client);
	lk_vault_client_free(client);
	plan_free(&plan);
	broker_config_clear(nc);
	free(nc);
	broker_metrics_reload(b->metrics, rc == 0);
	return rc;
}
