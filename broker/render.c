/* render.c — secrets written to files for software that cannot use the socket.
 *
 * Formats: "json" (the data object), "env" (KEY=value lines) and "template" ({{ key }}
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

static bool
env_plain(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = v[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || strchr("_-.,:/@+=%", ch) != NULL))
			return false;
	}
	return true;
}

static int
render_env(const struct broker_snapshot *s, struct lk_buf *out, struct lk_error *err)
{
	int rc;

	for (size_t i = 0; i < s->nkeys; i++) {
		const struct broker_kv *kv = &s->keys[i];

		if (!env_name_valid(kv->key))
			return lk_error_set(err, -EINVAL, "key \"%s\" is not a valid variable name",
					    kv->key);
		if ((rc = lk_buf_printf(out, "%s=", kv->key)) < 0)
			return rc;
		if (env_plain(kv->value, kv->value_len)) {
			rc = lk_buf_append(out, kv->value, kv->value_len);
		} else {
			/* Single quotes, with ' written as '\'' (POSIX shell quoting). */
			rc = lk_buf_append(out, "'", 1);
			for (size_t j = 0; rc == 0 && j < kv->value_len; j++) {
				if (kv->value[j] == '\'')
					rc = lk_buf_append(out, "'\\''", 4);
				else if (kv->value[j] == '\0')
					rc = lk_error_set(err, -EINVAL, "key \"%s\" holds a NUL byte",
							  kv->key);
				else
					rc = lk_buf_append(out, &kv->value[j], 1);
			}
			if (rc == 0)
				rc = lk_buf_append(out, "'", 1);
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
		rc = render_env(s, out, err);
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
