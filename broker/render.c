/* render.c — secrets written to files for software that cannot use the socket.
 *
 * Formats: "json" (the data object), "env" (KEY=value lines, in a dialect that docker
 * --env-file and systemd's EnvironmentFile read, or one of them) and "template" (the
 * template language of broker/template.h). A secret's own file reads that secret; a
 * template of templates[] reads the secrets its text names, and is rendered again when
 * any of them changes. The file is written only when the rendered bytes differ from what
 * was last written, to a temporary name in the same directory with its final mode, synced
 * and renamed over the old one, so a reader sees the old or the new content, never a mix;
 * a render that fails leaves the old file. Rendered text lives in a wipe buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/internal.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/file.h"
#include "common/log.h"

/* Largest rendered file. */
#define RENDER_MAX (2u << 20)

static bool
env_name_valid(const char *k)
{
	if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
		return false;
	for (k++; *k != '\0'; k++) {
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9') || *k == '_'))
			return false;
	}
	return true;
}

/* Why a value cannot be written in the dialect, or NULL when it can.
 *   docker --env-file (opts/envfile.go) takes everything after the first '=' of a line
 *   as it is: no quotes, no escapes, so a value cannot hold a line break.
 *   systemd's EnvironmentFile (env-file.c) skips blanks after '=', drops trailing blanks,
 *   and reads a backslash as an escape and a leading quote as quoting.
 * Portable values are those both read alike written bare. (Values come from JSON: they
 * are UTF-8, which systemd also requires.) */
static const char *
env_refusal(enum broker_env_dialect d, const char *v, size_t n)
{
	if (memchr(v, '\0', n) != NULL)
		return "holds a NUL byte";
	if (d != BROKER_ENV_SYSTEMD && (memchr(v, '\n', n) != NULL || memchr(v, '\r', n) != NULL))
		return "holds a line break, which docker --env-file cannot carry (use dialect "
		       "\"systemd\", or format json or template)";
	if (d != BROKER_ENV_PORTABLE)
		return NULL;
	if (memchr(v, '\\', n) != NULL)
		return "holds a backslash, an escape to systemd and a plain byte to docker (use "
		       "a dialect)";
	if (n > 0 && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t'))
		return "begins or ends with blanks, which systemd drops and docker keeps (use a "
		       "dialect)";
	if (n > 0 && (v[0] == '\'' || v[0] == '"'))
		return "begins with a quote, quoting to systemd and a plain byte to docker (use a "
		       "dialect)";
	return NULL;
}

/* systemd: bare when bare reads the same, else in double quotes, with \ before the four
 * characters systemd unescapes there (" \ ` $); line breaks are kept as they are. */
static bool
systemd_bare(const char *v, size_t n)
{
	if (n == 0)
		return true;
	if (v[0] == ' ' || v[0] == '\t' || v[0] == '\'' || v[0] == '"' || v[n - 1] == ' ' ||
	    v[n - 1] == '\t')
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i] == '\\' || v[i] == '\n' || v[i] == '\r')
			return false;
	return true;
}

static int
render_env(const struct broker_file_spec *fs, const struct broker_snapshot *s,
	   struct lk_buf *out, struct lk_error *err)
{
	const char *why;
	int rc;

	for (size_t i = 0; i < s->nkeys; i++) {
		const struct broker_kv *kv = &s->keys[i];

		if (!env_name_valid(kv->key))
			return lk_error_set(err, -EINVAL, "key \"%s\" is not a valid variable name",
					    kv->key);
		if ((why = env_refusal(fs->dialect, kv->value, kv->value_len)) != NULL)
			return lk_error_set(err, -EINVAL, "env file: the value of key \"%s\" %s",
					    kv->key, why);
		if ((rc = lk_buf_printf(out, "%s=", kv->key)) < 0)
			return rc;
		if (fs->dialect != BROKER_ENV_SYSTEMD || systemd_bare(kv->value, kv->value_len)) {
			rc = lk_buf_append(out, kv->value, kv->value_len);
		} else {
			rc = lk_buf_append(out, "\"", 1);
			for (size_t j = 0; rc == 0 && j < kv->value_len; j++) {
				char ch = kv->value[j];

				if (strchr("\"\\`$", ch) != NULL)
					rc = lk_buf_append(out, "\\", 1);
				if (rc == 0)
					rc = lk_buf_append(out, &ch, 1);
			}
			if (rc == 0)
				rc = lk_buf_append(out, "\"", 1);
		}
		if (rc == 0)
			rc = lk_buf_append(out, "\n", 1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Renders fs's template with snaps[i] (NULL: not loaded) as secret i, for n secrets. The
 * data objects parsed from the snapshots live in jansson memory, which is wiped when freed
 * (common/json.h). */
static int
render_template(const struct broker_file_spec *fs, struct broker_snapshot *const *snaps,
		size_t n, struct lk_buf *out, struct lk_error *err)
{
	const json_t **data = calloc(n + 1, sizeof(*data));
	uint64_t *versions = calloc(n + 1, sizeof(*versions));
	int rc;

	if (data == NULL || versions == NULL) {
		rc = lk_error_set(err, -ENOMEM, "%s: out of memory", fs->path);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_error_t je;

		if (snaps[i] == NULL || !broker_template_reads(fs->template, i))
			continue;
		/* A value may hold a NUL byte (a file source's, for one): the template decides
		 * what becomes of it. */
		data[i] = json_loadb(snaps[i]->data_json, snaps[i]->data_len, JSON_ALLOW_NUL, &je);
		if (data[i] == NULL) {
			/* je.text may quote the data: only its position is told. */
			if (json_error_code(&je) == json_error_out_of_memory)
				rc = lk_error_set(err, -ENOMEM, "%s: out of memory", fs->path);
			else
				rc = lk_error_set(err, -EINVAL, "%s: the data of secret \"%s\" cannot "
						  "be read as JSON (at byte %d)", fs->path,
						  broker_template_secret_name(fs->template, i),
						  je.position);
			goto out;
		}
		versions[i] = snaps[i]->version;
	}
	rc = broker_template_render(fs->template, data, versions, n, out, err);
out:
	for (size_t i = 0; data != NULL && i < n; i++)
		json_decref((json_t *)data[i]);
	free(data);
	free(versions);
	return rc;
}

static int
render_from(const struct broker_file_spec *fs, struct broker_snapshot *const *snaps, size_t n,
	    struct lk_buf *out, struct lk_error *err)
{
	const struct broker_snapshot *s = fs->secret < n ? snaps[fs->secret] : NULL;
	int rc;

	if (fs->format != BROKER_FORMAT_TEMPLATE && s == NULL)
		return lk_error_set(err, -EAGAIN, "%s: the secret is not loaded", fs->path);
	switch (fs->format) {
	case BROKER_FORMAT_JSON:
		rc = lk_buf_append(out, s->data_json, s->data_len);
		if (rc == 0)
			rc = lk_buf_append(out, "\n", 1);
		break;
	case BROKER_FORMAT_ENV:
		rc = render_env(fs, s, out, err);
		break;
	case BROKER_FORMAT_TEMPLATE:
		rc = fs->template != NULL ? render_template(fs, snaps, n, out, err) :
		     lk_error_set(err, -EINVAL, "%s: the template is not compiled", fs->path);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	if (rc == -E2BIG)
		lk_error_set(err, rc, "%s: rendered file larger than %u bytes", fs->path,
			     RENDER_MAX);
	return rc;
}

int
broker_render(const struct broker_file_spec *fs, const struct broker_snapshot *s,
	      struct lk_buf *out, struct lk_error *err)
{
	size_t n = fs->secret != SIZE_MAX ? fs->secret + 1 : 1;
	struct broker_snapshot **snaps = calloc(n, sizeof(*snaps));
	int rc;

	if (snaps == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	if (fs->secret != SIZE_MAX)
		snaps[fs->secret] = (struct broker_snapshot *)s;
	rc = render_from(fs, snaps, n, out, err);
	free(snaps);
	return rc;
}

bool
broker_output_reads(const struct broker_output *o, size_t entry)
{
	if (o->fs->template != NULL)
		return broker_template_reads(o->fs->template, entry);
	return o->fs->secret == entry;
}

const char *
broker_output_state_name(enum broker_output_state st)
{
	switch (st) {
	case BROKER_OUTPUT_WRITTEN:
		return "written";
	case BROKER_OUTPUT_FAILED:
		return "failed";
	default:
		return "pending";
	}
}

static void
output_record(struct broker_output *o, enum broker_output_state st, const char *reason,
	      bool written_now)
{
	pthread_mutex_lock(&o->lock);
	o->state = st;
	broker_copy_text(o->reason, sizeof(o->reason), reason);
	if (written_now)
		o->written_real_ms = lk_now_real_ms();
	pthread_mutex_unlock(&o->lock);
}

int
broker_output_render(struct broker *b, struct broker_output *o, struct lk_error *err)
{
	const struct broker_file_spec *fs = o->fs;
	struct broker_snapshot **snaps = calloc(b->n + 1, sizeof(*snaps));
	unsigned char digest[32];
	struct lk_buf out;
	int rc;

	lk_buf_init(&out, RENDER_MAX, true);
	if (snaps == NULL) {
		rc = lk_error_set(err, -ENOMEM, "%s: out of memory", fs->path);
		goto out;
	}
	for (size_t i = 0; i < b->n; i++)
		if (broker_output_reads(o, i))
			snaps[i] = broker_entry_snapshot(&b->entries[i]);
	if ((rc = render_from(fs, snaps, b->n, &out, err)) < 0) {
		/* Not loaded yet is a wait, not a failure: the load renders it again, and the
		 * state stays what the last render left. */
		if (rc != -EAGAIN)
			output_record(o, BROKER_OUTPUT_FAILED, err->msg, false);
		goto out;
	}
	crypto_generichash(digest, sizeof(digest), (const unsigned char *)out.data, out.len,
			   NULL, 0);
	if (o->written && sodium_memcmp(digest, o->digest, sizeof(digest)) == 0) {
		output_record(o, BROKER_OUTPUT_WRITTEN, NULL, false);
		rc = 0;
		goto out;
	}
	if ((rc = lk_file_write_atomic(fs->path, out.data, out.len, fs->mode, fs->owner,
				       fs->group, err)) < 0) {
		output_record(o, BROKER_OUTPUT_FAILED, err->msg, false);
		goto out;
	}
	memcpy(o->digest, digest, sizeof(digest));
	o->written = true;
	if (fs->pidfile != NULL && (rc = broker_signal_pidfile(fs, err)) < 0) {
		output_record(o, BROKER_OUTPUT_FAILED, err->msg, true);
		goto out;
	}
	output_record(o, BROKER_OUTPUT_WRITTEN, NULL, true);
	rc = 1;
out:
	sodium_memzero(digest, sizeof(digest));
	for (size_t i = 0; snaps != NULL && i < b->n; i++)
		broker_snapshot_unref(snaps[i]);
	free(snaps);
	lk_buf_free(&out);
	return rc;
}

/* One output rendered, its failure logged with the file and the template's origin:line
 * and key (never a value); entry names the secret whose change caused it (SIZE_MAX: a
 * reload). Under render_lock. */
static void
render_one(struct broker *b, struct broker_output *o, size_t entry)
{
	const struct broker_file_spec *fs = o->fs;
	struct lk_error ferr;
	int rc;

	lk_error_clear(&ferr);
	rc = broker_output_render(b, o, &ferr);
	if (rc < 0 && rc != -EAGAIN)
		lk_log(LK_WARN, "file render failed", LK_STR("file", fs->path),
		       LK_STR("secret", fs->secret != SIZE_MAX ?
			      b->entries[fs->secret].spec->name : NULL),
		       LK_STR("template", fs->secret == SIZE_MAX ? fs->origin : NULL),
		       LK_STR("error", ferr.msg));
	else if (rc == 1 && fs->secret == SIZE_MAX)
		lk_log(LK_INFO, "template rendered", LK_STR("file", fs->path),
		       LK_STR("template", fs->origin),
		       LK_STR("secret", entry != SIZE_MAX ? b->entries[entry].spec->name : NULL));
}

/* Renders again every file that reads entry, whose version just changed: its own file and
 * the templates that name it; the old file stays when one fails. The scheduler and the
 * file sources' thread both call it; b->render_lock keeps one render at a time. */
void
broker_render_outputs(struct broker *b, size_t entry)
{
	pthread_mutex_lock(&b->render_lock);
	for (size_t i = 0; i < b->noutputs; i++)
		if (broker_output_reads(&b->outputs[i], entry))
			render_one(b, &b->outputs[i], entry);
	pthread_mutex_unlock(&b->render_lock);
}

void
broker_render_all(struct broker *b)
{
	pthread_mutex_lock(&b->render_lock);
	for (size_t i = 0; i < b->noutputs; i++)
		render_one(b, &b->outputs[i], SIZE_MAX);
	pthread_mutex_unlock(&b->render_lock);
}

int
broker_outputs_new(const struct broker_config *cfg, struct broker_output **ret, size_t *ret_n)
{
	struct broker_output *o = calloc(cfg->nsecrets + cfg->ntemplates + 1, sizeof(*o));
	size_t n = 0;

	if (o == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nsecrets + cfg->ntemplates; i++) {
		const struct broker_file_spec *fs = i < cfg->nsecrets ? cfg->secrets[i].file :
						    cfg->templates[i - cfg->nsecrets];

		if (fs == NULL)
			continue;
		o[n].fs = fs;
		pthread_mutex_init(&o[n].lock, NULL);
		n++;
	}
	*ret = o;
	*ret_n = n;
	return 0;
}

void
broker_outputs_free(struct broker_output *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sodium_memzero(o[i].digest, sizeof(o[i].digest));
		pthread_mutex_destroy(&o[i].lock);
	}
	free(o);
}

void
broker_outputs_carry(struct broker_output *o, size_t n, const struct broker_output *old,
		     size_t oldn)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < oldn; j++) {
			if (strcmp(o[i].fs->path, old[j].fs->path) != 0)
				continue;
			o[i].state = old[j].state;
			memcpy(o[i].reason, old[j].reason, sizeof(o[i].reason));
			o[i].written_real_ms = old[j].written_real_ms;
			o[i].written = old[j].written;
			memcpy(o[i].digest, old[j].digest, sizeof(o[i].digest));
			break;
		}
	}
}
