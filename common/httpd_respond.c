/* httpd_respond.c — answers: copied, borrowed, JSON, errors, headers (httpd.h). */
#include "common/httpd_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
httpd_wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

bool
httpd_has_ctl(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return true;
		if (*s == 0x7f)
			return true;
	}
	return false;
}

void
httpd_req_clear_headers(struct lk_http_req *req)
{
	for (unsigned i = 0; i < req->nheaders; i++) {
		free(req->header_name[i]);
		free(req->header_value[i]);
		req->header_name[i] = NULL;
		req->header_value[i] = NULL;
	}
	req->nheaders = 0;
}

/* ---- responses ---- */

/* A response body owned by MHD until it frees the response; wiped then. */
struct owned_body {
	size_t len;
	char data[];
};

static void
owned_body_free(void *cls)
{
	struct owned_body *o = cls;

	explicit_bzero(o->data, o->len);
	free(o);
}

/* Queues resp (consumed) with the request's headers. */
static int
queue(struct lk_http_req *req, unsigned status, const char *content_type,
      struct MHD_Response *resp)
{
	int r = 0;

	if (content_type != NULL &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
		r = -EINVAL;
		goto out;
	}
	for (unsigned i = 0; i < req->nheaders; i++) {
		if (MHD_add_response_header(resp, req->header_name[i],
					    req->header_value[i]) != MHD_YES) {
			r = -EINVAL;
			goto out;
		}
	}
	if (MHD_queue_response(req->mhd, status, resp) != MHD_YES) {
		r = -EIO;
		goto out;
	}
	req->outcome = REQ_ANSWERED;
	httpd_req_clear_headers(req);
out:
	MHD_destroy_response(resp);
	return r;
}

static int
check_answerable(const struct lk_http_req *req, unsigned status, const char *content_type)
{
	if (!req->in_handler || req->outcome != REQ_NONE)
		return -EALREADY;
	if (status < 100 || status > 999)
		return -EINVAL;
	if (content_type != NULL && httpd_has_ctl(content_type))
		return -EINVAL;
	return 0;
}

/* Answers with o (owned; freed on every path). */
static int
respond_owned(struct lk_http_req *req, unsigned status, const char *content_type,
	      struct owned_body *o)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer_with_free_callback_cls(o->len, o->data,
								      owned_body_free, o);
	if (resp == NULL) {
		owned_body_free(o);
		return -ENOMEM;
	}
	return queue(req, status, content_type, resp);
}

int
lk_http_respond(struct lk_http_req *req, unsigned status, const char *content_type,
		const void *body, size_t len)
{
	struct owned_body *o;
	int r;

	if ((r = check_answerable(req, status, content_type)) < 0)
		return r;
	if (body == NULL && len > 0)
		return -EINVAL;
	if (len > SIZE_MAX - sizeof(*o))
		return -E2BIG;
	if ((o = malloc(sizeof(*o) + len)) == NULL)
		return -ENOMEM;
	o->len = len;
	if (len > 0)
		memcpy(o->data, body, len);
	return respond_owned(req, status, content_type, o);
}

int
lk_http_respond_borrowed(struct lk_http_req *req, unsigned status, const char *content_type,
			 const void *body, size_t len, void (*release)(void *cls), void *cls)
{
	struct MHD_Response *resp;
	int r;

	/* release runs exactly once, also when the answer could not be queued. */
	if ((r = check_answerable(req, status, content_type)) < 0)
		goto fail;
	if (body == NULL && len > 0) {
		r = -EINVAL;
		goto fail;
	}
	resp = MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)body,
								      release, cls);
	if (resp == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	return queue(req, status, content_type, resp);
fail:
	if (release != NULL)
		release(cls);
	return r;
}

int
lk_http_respond_json(struct lk_http_req *req, unsigned status, const json_t *value)
{
	struct owned_body *o;
	size_t len;
	int r;

	if ((r = check_answerable(req, status, NULL)) < 0)
		return r;
	if (value == NULL)
		return -EINVAL;
	if ((len = json_dumpb(value, NULL, 0, JSON_COMPACT)) == 0)
		return -EINVAL;
	if ((o = malloc(sizeof(*o) + len)) == NULL)
		return -ENOMEM;
	o->len = len;
	if (json_dumpb(value, o->data, len, JSON_COMPACT) != len) {
		owned_body_free(o);
		return -EINVAL;
	}
	return respond_owned(req, status, "application/json", o);
}

/* A JSON string of s; bytes that are not UTF-8 text become '?' (a reason may quote a
 * decoded path). New reference or NULL. */
static json_t *
json_text(const char *s)
{
	json_t *j;
	char *copy;

	if ((j = json_string(s)) != NULL)
		return j;
	if ((copy = strdup(s)) == NULL)
		return NULL;
	for (char *p = copy; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	j = json_string(copy);
	free(copy);
	return j;
}

int
lk_http_respond_error(struct lk_http_req *req, unsigned status, const char *error,
		      const char *reason)
{
	json_t *obj;
	int r;

	if ((obj = json_object()) == NULL)
		return -ENOMEM;
	r = -ENOMEM;
	if (json_object_set_new(obj, "error", json_text(error != NULL ? error : "error")) < 0)
		goto out;
	if (reason != NULL && json_object_set_new(obj, "reason", json_text(reason)) < 0)
		goto out;
	r = lk_http_respond_json(req, status, obj);
out:
	json_decref(obj);
	return r;
}

int
lk_http_add_header(struct lk_http_req *req, const char *name, const char *value)
{
	char *n = NULL, *v = NULL;

	if (name == NULL || value == NULL || name[0] == '\0' ||
	    strlen(name) > HTTPD_RESP_HEADER_VALUE_MAX ||
	    strlen(value) > HTTPD_RESP_HEADER_VALUE_MAX ||
	    httpd_has_ctl(name) || httpd_has_ctl(value) || strchr(name, ':') != NULL ||
	    strchr(name, ' ') != NULL || strchr(name, '\t') != NULL)
		return -EINVAL;
	if (req->nheaders >= LK_HTTP_RESP_HEADERS_MAX)
		return -E2BIG;
	if ((n = strdup(name)) == NULL || (v = strdup(value)) == NULL) {
		free(n);
		return -ENOMEM;
	}
	req->header_name[req->nheaders] = n;
	req->header_value[req->nheaders] = v;
	req->nheaders++;
	return 0;
}

/* An answer the server gives by itself (413, 431, 500, 503): outside the handler. */
enum MHD_Result
httpd_answer_self(struct lk_http_req *req, unsigned status, const char *error, const char *reason)
{
	int r;

	httpd_req_clear_headers(req);
	req->outcome = REQ_NONE;
	req->in_handler = true;
	if (req->srv->error_body != NULL) {
		json_t *body = req->srv->error_body(status, error, reason);

		r = body != NULL ? lk_http_respond_json(req, status, body) : -ENOMEM;
		json_decref(body);
	} else {
		r = lk_http_respond_error(req, status, error, reason);
	}
	req->in_handler = false;
	return r == 0 ? MHD_YES : MHD_NO;
}

