/* scope.c — accessors, the scope annotations, and reading manifests (sealing.h). */
#include "sealing/sealing.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"

const char *
lk_sealing_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

const char *
lk_sealing_str2(const json_t *obj, const char *a, const char *b)
{
	return json_string_value(json_object_get(json_object_get(obj, a), b));
}

static bool
annotation_true(const json_t *meta, const char *name)
{
	const char *v = lk_sealing_str(json_object_get(meta, "annotations"), name);

	return v != NULL && strcmp(v, "true") == 0;
}

enum lk_scope
lk_sealing_scope_of(const json_t *obj)
{
	const json_t *meta = json_object_get(obj, "metadata");

	if (annotation_true(meta, LK_ANNOT_CLUSTER_WIDE))
		return LK_SCOPE_CLUSTER;
	if (annotation_true(meta, LK_ANNOT_NAMESPACE_WIDE))
		return LK_SCOPE_NAMESPACE;
	return LK_SCOPE_STRICT;
}

int
lk_sealing_set_scope_annotations(json_t *metadata, enum lk_scope scope)
{
	json_t *ann = json_object_get(metadata, "annotations");

	if (ann == NULL || !json_is_object(ann)) {
		if (scope == LK_SCOPE_STRICT)
			return 0;
		ann = json_object();
		if (ann == NULL || json_object_set_new(metadata, "annotations", ann) != 0)
			return -ENOMEM;
	}
	json_object_del(ann, LK_ANNOT_CLUSTER_WIDE);
	json_object_del(ann, LK_ANNOT_NAMESPACE_WIDE);
	if (scope == LK_SCOPE_CLUSTER)
		return json_object_set_new(ann, LK_ANNOT_CLUSTER_WIDE, json_string("true")) ? -ENOMEM : 0;
	if (scope == LK_SCOPE_NAMESPACE)
		return json_object_set_new(ann, LK_ANNOT_NAMESPACE_WIDE, json_string("true")) ? -ENOMEM : 0;
	if (json_object_size(ann) == 0)
		json_object_del(metadata, "annotations");
	return 0;
}

int
lk_sealing_read_manifest(const char *path, bool holds_secrets, json_t **ret,
			 enum lk_manifest_format *ret_format, struct lk_error *err)
{
	const char *name = lk_file_shown(path);
	struct lk_secret *text = NULL;
	struct lk_buf plain;
	int fd = STDIN_FILENO, r;

	if (holds_secrets) {
		if (!lk_file_is_std(path) && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return lk_error_set(err, -errno, "%s: %s", name, strerror(errno));
		r = lk_secret_read_fd(fd, LK_SECRET_MAX, false, &text);
		if (fd != STDIN_FILENO)
			close(fd);
		if (r == -E2BIG)
			return lk_error_set(err, r, "%s: larger than %u bytes", name, LK_SECRET_MAX);
		if (r < 0)
			return lk_error_set(err, r, "%s: %s", name, strerror(-r));
		r = lk_manifest_parse(lk_secret_cstr(text), lk_secret_len(text), name, ret,
				      ret_format, err);
		lk_secret_free(text);
		return r;
	}
	lk_buf_init(&plain, LK_MANIFEST_MAX, false);
	r = lk_file_read(path, false, &plain, err);
	if (r == 0)
		r = lk_manifest_parse(plain.data, plain.len, name, ret, ret_format, err);
	lk_buf_free(&plain);
	return r;
}
