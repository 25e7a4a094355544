/* status.c — Status bodies shaped as kube-apiserver sends them (REFERENCE.md §2.4), and the
 * JSON and text answers every handler uses. */
#include "fake.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Field errors listed in one 422 message before the rest are left out. */
#define STATUS_CAUSES_MAX 64

void
fk_reply_json(struct fk_request *r, unsigned status, json_t *value)
{
	char *text = value != NULL ? fk_json_dump(value) : NULL;

	json_decref(value);
	free(r->resp);
	r->resp = NULL;
	if (text == NULL) {
		r->status = 500;
		r->resp_type = "text/plain; charset=utf-8";
		r->resp = strdup("Internal Server Error: out of memory\n");
		r->resp_len = r->resp != NULL ? strlen(r->resp) : 0;
		return;
	}
	/* A real server ends every JSON answer with a newline. */
	size_t n = strlen(text);
	char *body = realloc(text, n + 2);
	if (body == NULL) {
		free(text);
		r->status = 500;
		return;
	}
	body[n] = '\n';
	body[n + 1] = '\0';
	r->status = status;
	r->resp = body;
	r->resp_len = n + 1;
	r->resp_type = "application/json";
}

void
fk_reply_text(struct fk_request *r, unsigned status, const char *type, const char *text)
{
	free(r->resp);
	r->resp = strdup(text);
	r->resp_len = r->resp != NULL ? strlen(r->resp) : 0;
	r->resp_type = type;
	r->status = status;
}

void
fk_reply_bytes(struct fk_request *r, unsigned status, const char *type, char *data, size_t len)
{
	free(r->resp);
	r->resp = data;
	r->resp_len = len;
	r->resp_type = type;
	r->status = status;
}

void
fk_warn(struct fk_request *r, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (r->nwarnings >= FK_WARNINGS_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (char *p = text; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	}
	r->warnings[r->nwarnings] = strdup(text);
	if (r->warnings[r->nwarnings] != NULL)
		r->nwarnings++;
}

json_t *
fk_status_new(int code, const char *reason, const char *message, json_t *details)
{
	json_t *s = json_pack("{s:s,s:s,s:{},s:s}", "kind", "Status", "apiVersion", "v1",
			      "metadata", "status", code < 400 ? "Success" : "Failure");

	if (s == NULL) {
		json_decref(details);
		return NULL;
	}
	if (message != NULL)
		json_object_set_new(s, "message", json_string(message));
	if (reason != NULL && reason[0] != '\0')
		json_object_set_new(s, "reason", json_string(reason));
	if (details != NULL)
		json_object_set_new(s, "details", details);
	json_object_set_new(s, "code", json_integer(code));
	return s;
}

json_t *
fk_details(const struct fk_rtype *t, const char *name, bool kind_is_kind)
{
	json_t *d = json_object();

	if (d == NULL)
		return NULL;
	if (name != NULL && name[0] != '\0')
		json_object_set_new(d, "name", json_string(name));
	if (t != NULL && t->group[0] != '\0')
		json_object_set_new(d, "group", json_string(t->group));
	if (t != NULL)
		json_object_set_new(d, "kind", json_string(kind_is_kind ? t->kind : t->plural));
	return d;
}

void
fk_reply_status(struct fk_request *r, int code, const char *reason, json_t *details,
		const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fk_reply_json(r, (unsigned)code, fk_status_new(code, reason, msg, details));
}

void
fk_reply_not_found(struct fk_request *r, const struct fk_rtype *t, const char *name)
{
	char q[400];

	fk_rtype_qualified(t, q, sizeof(q));
	fk_reply_status(r, 404, "NotFound", fk_details(t, name, false), "%s \"%s\" not found", q, name);
}

void
fk_reply_already_exists(struct fk_request *r, const struct fk_rtype *t, const char *name)
{
	char q[400];

	fk_rtype_qualified(t, q, sizeof(q));
	fk_reply_status(r, 409, "AlreadyExists", fk_details(t, name, false),
			"%s \"%s\" already exists", q, name);
}

void
fk_reply_conflict(struct fk_request *r, const struct fk_rtype *t, const char *name,
		  const char *why)
{
	char q[400];

	fk_rtype_qualified(t, q, sizeof(q));
	fk_reply_status(r, 409, "Conflict", fk_details(t, name, false),
			"Operation cannot be fulfilled on %s \"%s\": %s", q, name,
			why != NULL ? why : "the object has been modified; please apply your "
			"changes to the latest version and try again");
}

void
fk_reply_bad_request(struct fk_request *r, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fk_reply_json(r, 400, fk_status_new(400, "BadRequest", msg, NULL));
}

void
fk_reply_method_not_allowed(struct fk_request *r)
{
	fk_reply_status(r, 405, "MethodNotAllowed", NULL,
			"the server does not allow this method on the requested resource");
}

void
fk_reply_unsupported_patch(struct fk_request *r, const struct fk_rtype *t)
{
	const char *ct = fk_req_header(r, "Content-Type");

	fk_reply_status(r, 415, "UnsupportedMediaType", NULL,
			"the body of the request was in an unknown format - accepted media types "
			"include: application/json-patch+json, application/merge-patch+json, "
			"application/apply-patch+yaml%s%s",
			t != NULL && (t->flags & FK_SMP) ? ", application/strategic-merge-patch+json" : "",
			ct == NULL ? "" : "");
}

/* ---- field errors ---- */

void
fk_errors_init(struct fk_errors *e)
{
	e->causes = json_array();
	e->first[0] = '\0';
}

void
fk_errors_clear(struct fk_errors *e)
{
	json_decref(e->causes);
	e->causes = NULL;
}

bool
fk_errors_any(const struct fk_errors *e)
{
	return json_array_size(e->causes) > 0;
}

/* What each cause reason reads as in the message, as field.Error.ErrorBody() writes. */
static const char *
reason_text(const char *reason)
{
	static const struct { const char *reason, *text; } map[] = {
		{ "FieldValueRequired", "Required value" },
		{ "FieldValueInvalid", "Invalid value" },
		{ "FieldValueForbidden", "Forbidden" },
		{ "FieldValueNotSupported", "Unsupported value" },
		{ "FieldValueDuplicate", "Duplicate value" },
		{ "FieldValueTooLong", "Too long" },
		{ "FieldValueTooMany", "Too many" },
		{ "FieldValueTypeInvalid", "Invalid value" },
		{ "FieldValueNotFound", "Not found" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(map[i].reason, reason) == 0)
			return map[i].text;
	}
	return "Invalid value";
}

void
fk_error_add(struct fk_errors *e, const char *reason, const char *field, const char *fmt, ...)
{
	char detail[1024], msg[1200];
	va_list ap;

	if (e->causes == NULL || json_array_size(e->causes) >= STATUS_CAUSES_MAX)
		return;
	detail[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	/* "Invalid value: \"x\": why" or "Required value" */
	if (detail[0] != '\0')
		snprintf(msg, sizeof(msg), "%s: %s", reason_text(reason), detail);
	else
		snprintf(msg, sizeof(msg), "%s", reason_text(reason));
	json_array_append_new(e->causes, json_pack("{s:s,s:s,s:s}", "reason", reason,
						   "message", msg, "field", field));
}

void
fk_reply_invalid(struct fk_request *r, const struct fk_rtype *t, const char *name,
		 struct fk_errors *e)
{
	char *msg = NULL;
	size_t len = 0, cap = 0, i, n = json_array_size(e->causes);
	json_t *cause, *details;

	fk_appendf(&msg, &len, &cap, "%s%s%s \"%s\" is invalid: %s", t->kind,
		   t->group[0] != '\0' ? "." : "", t->group, name != NULL ? name : "",
		   n > 1 ? "[" : "");
	json_array_foreach(e->causes, i, cause) {
		fk_appendf(&msg, &len, &cap, "%s%s: %s", i > 0 ? ", " : "",
			   fk_jstr(cause, "field"), fk_jstr(cause, "message"));
	}
	if (n > 1)
		fk_appendf(&msg, &len, &cap, "]");
	details = fk_details(t, name, true);
	json_object_set(details, "causes", e->causes);
	fk_reply_json(r, 422, fk_status_new(422, "Invalid", msg != NULL ? msg : "invalid", details));
	free(msg);
	fk_errors_clear(e);
}
