/* render.c — secrets written to files for software that cannot use the socket.
 *
 * Formats: "json" (the data object), "env" (KEY=value lines, in a dialect that docker
 * --env-file and systemd's EnvironmentFile read, or one of them) and "template" ({{ key }}
 * replaced by the key's value). The file is written to a temporary name in the same
 * directory with its final mode, synced and renamed over the old one, so a reader sees
 * the old or the new content, never a mix. Rendered text lives in a wipe buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/internal.h"
#include "common/buf.h"
#include "common/file.h"

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

static int
render_template(const char *tpl, const struct broker_snapshot *s, struct lk_buf *out,
		struct lk_error *err)
{
	const char *p = tpl;
	int rc;

	for (;;) {
		const char *open = strstr(p, "{{"), *close, *a, *z;
		char key[256];
		const struct broker_kv *kv;

		if (open == NULL)
			return lk_buf_append(out, p, strlen(p));
		if ((rc = lk_buf_append(out, p, (size_t)(open - p))) < 0)
			return rc;
		close = strstr(open + 2, "}}");
		if (close == NULL)
			return lk_error_set(err, -EINVAL, "template: \"{{\" without \"}}\"");
		for (a = open + 2; a < close && *a == ' '; a++)
			;
		if (a < close && *a == '.')
			a++;
		for (z = close; z > a && z[-1] == ' '; z--)
			;
		if (z <= a || (size_t)(z - a) >= sizeof(key))
			return lk_error_set(err, -EINVAL, "template: empty or too long key name");
		memcpy(key, a, (size_t)(z - a));
		key[z - a] = '\0';
		kv = broker_snapshot_key(s, key);
		if (kv == NULL)
			return lk_error_set(err, -ENOENT, "template: the secret has no key \"%s\"", key);
		if ((rc = lk_buf_append(out, kv->value, kv->value_len)) < 0)
			return rc;
		p = close + 2;
	}
}

int
broker_render(const struct broker_file_spec *fs, const struct broker_snapshot *s,
	      struct lk_buf *out, struct lk_error *err)
{
	int rc;

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
		rc = render_template(fs->template_text, s, out, err);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	if (rc == -E2BIG)
		lk_error_set(err, rc, "rendered file larger than %u bytes", RENDER_MAX);
	return rc;
}

int
broker_render_file(const struct broker_file_spec *fs, const struct broker_snapshot *s,
		   struct lk_error *err)
{
	struct lk_buf out;
	int rc;

	lk_buf_init(&out, RENDER_MAX, true);
	if ((rc = broker_render(fs, s, &out, err)) == 0)
		rc = lk_file_write_atomic(fs->path, out.data, out.len, fs->mode, fs->owner,
					  fs->group, err);
	if (rc == 0 && fs->pidfile != NULL)
		rc = broker_signal_pidfile(fs, err);
	lk_buf_free(&out);
	return rc;
}
