/* httpd_respond.c — answers: copied, borrowed, JSON, errors, headers (httpd.h), and the
 * head of every answer (status line, Content-Type, Content-Length, the handler's headers,
 * Date). */
#include "common/httpd_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Room a head needs besides Content-Type and the handler's headers: the status line,
 * Content-Length, Date, and the longest last lines (head_finish in httpd.c). */
#define HEAD_FIXED_MAX 256

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
	struct http_conn *c = req->conn;

	c->nextra = 0;
	c->extra_len = 0;
	c->extra_framed = false;
}

static const char *
reason_phrase(unsigned status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: break;
	}
	switch (status / 100) {
	case 1: return "Informational";
	case 2: return "Success";
	case 3: return "Redirection";
	case 4: return "Client Error";
	default: return "Server Error";
	}
}

/* ---- the Date header, formatted at most once a second per thread ---- */

struct date_cache {
	time_t sec;
	size_t len;
	char line[48];    /* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" */
};

static _Thread_local struct date_cache date_cache = { .sec = -1 };

/* Formats by hand (days to a civil date): gmtime takes the time zone lock of libc. */
static void
date_format(struct date_cache *d, time_t now)
{
	static const char wday[7][4] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
	static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
					 "Aug", "Sep", "Oct", "Nov", "Dec" };
	int64_t days = (int64_t)now / 86400, secs = (int64_t)now % 86400;
	int64_t z, era, doe, yoe, y, doy, mp, dd, mm;
	int n;

	if (secs < 0) {
		secs += 86400;
		days--;
	}
	/* H. Hinnant's civil_from_days. */
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	dd = doy - (153 * mp + 2) / 5 + 1;
	mm = mp < 10 ? mp + 3 : mp - 9;
	y += mm <= 2;
	n = snprintf(d->line, sizeof(d->line), "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
		     wday[((days % 7) + 7) % 7], (int)dd, mon[mm - 1], (int)y, (int)(secs / 3600),
		     (int)(secs / 60 % 60), (int)(secs % 60));
	d->len = n > 0 && (size_t)n < sizeof(d->line) ? (size_t)n : 0;
	d->sec = now;
}

static const char *
date_line(size_t *ret_len)
{
	time_t now = time(NULL);

	if (now != date_cache.sec)
		date_format(&date_cache, now);
	*ret_len = date_cache.len;
	return date_cache.line;
}

/* ---- the head ---- */

static char *
put(char *p, const char *s, size_t n)
{
	if (n > 0)
		memcpy(p, s, n);
	return p + n;
}

/* Writes the answer's head but its last lines (head_finish adds them when it is sent). */
static int
head_build(struct http_conn *c, unsigned status, const char *content_type, size_t body_len)
{
	size_t ctlen = content_type != NULL ? strlen(content_type) : 0, need, dlen;
	const char *reason = reason_phrase(status), *date = date_line(&dlen);
	bool no_body = status < 200 || status == 204 || status == 304;
	char *p;

	need = HEAD_FIXED_MAX + strlen(reason) + ctlen + c->extra_len;
	if (need > c->out_head_cap) {
		if ((p = realloc(c->out_head, need)) == NULL)
			return -ENOMEM;
		c->out_head = p;
		c->out_head_cap = need;
	}
	p = c->out_head;
	p = put(p, "HTTP/1.1 ", 9);
	p = lk_put_u64(p, status);
	*p++ = ' ';
	p = put(p, reason, strlen(reason));
	p = put(p, "\r\n", 2);
	if (content_type != NULL) {
		p = put(p, "Content-Type: ", 14);
		p = put(p, content_type, ctlen);
		p = put(p, "\r\n", 2);
	}
	if (!no_body && !c->extra_framed) {
		p = put(p, "Content-Length: ", 16);
		p = lk_put_u64(p, body_len);
		p = put(p, "\r\n", 2);
	}
	p = put(p, c->extra, c->extra_len);
	p = put(p, date, dlen);
	c->out_head_len = (size_t)(p - c->out_head);
	c->head_done = false;
	c->sent = 0;
	c->out_no_body = no_body;
	return 0;
}

/* Sets the answer; body (len bytes) stays valid until httpd_answer_clear. */
static int
answer_set(struct lk_http_req *req, unsigned status, const char *content_type,
	   const char *body, size_t len)
{
	struct http_conn *c = req->conn;
	int r;

	if ((r = head_build(c, status, content_type, len)) < 0)
		return r;
	c->out_body = body;
	c->out_body_len = len;
	req->outcome = REQ_ANSWERED;
	httpd_req_clear_headers(req);
	return 0;
}

void
httpd_answer_clear(struct http_conn *c)
{
	void (*release)(void *) = c->release;

	if (c->out_copy_len > 0)
		explicit_bzero(c->out_copy, c->out_copy_len);
	c->out_copy_len = 0;
	if (c->out_copy_cap > HTTPD_OUT_KEEP) {
		free(c->out_copy);
		c->out_copy = NULL;
		c->out_copy_cap = 0;
	}
	c->release = NULL;
	if (release != NULL)
		release(c->release_cls);
	c->release_cls = NULL;
	c->out_body = NULL;
	c->out_body_len = 0;
	c->out_head_len = 0;
	c->head_done = false;
	c->out_no_body = false;
	c->sent = 0;
}

/* Makes room for len bytes of body copy; the old copy was wiped already. */
static int
copy_reserve(struct http_conn *c, size_t len)
{
	char *p;

	if (len <= c->out_copy_cap)
		return 0;
	if ((p = malloc(len)) == NULL)
		return -ENOMEM;
	free(c->out_copy);
	c->out_copy = p;
	c->out_copy_cap = len;
	return 0;
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

int
lk_http_respond(struct lk_http_req *req, unsigned status, const char *content_type,
		const void *body, size_t len)
{
	struct http_conn *c = req->conn;
	int r;

	if ((r = check_answerable(req, status, content_type)) < 0)
		return r;
	if (body == NULL && len > 0)
		return -EINVAL;
	if ((r = copy_reserve(c, len)) < 0)
		return r;
	if (len > 0)
		memcpy(c->out_copy, body, len);
	c->out_copy_len = len;
	if ((r = answer_set(req, status, content_type, c->out_copy, len)) < 0) {
		explicit_bzero(c->out_copy, len);
		c->out_copy_len = 0;
	}
	return r;
}

int
lk_http_respond_borrowed(struct lk_http_req *req, unsigned status, const char *content_type,
			 const void *body, size_t len, void (*release)(void *cls), void *cls)
{
	struct http_conn *c = req->conn;
	int r;

	/* release runs exactly once, also when the answer could not be made. */
	if ((r = check_answerable(req, status, content_type)) < 0)
		goto fail;
	if (body == NULL && len > 0) {
		r = -EINVAL;
		goto fail;
	}
	if ((r = answer_set(req, status, content_type, body, len)) < 0)
		goto fail;
	c->release = release;
	c->release_cls = cls;
	return 0;
fail:
	if (release != NULL)
		release(cls);
	return r;
}

int
lk_http_respond_json(struct lk_http_req *req, unsigned status, const json_t *value)
{
	struct http_conn *c = req->conn;
	size_t len;
	int r;

	if ((r = check_answerable(req, status, NULL)) < 0)
		return r;
	if (value == NULL)
		return -EINVAL;
	if ((len = json_dumpb(value, NULL, 0, JSON_COMPACT)) == 0)
		return -EINVAL;
	if ((r = copy_reserve(c, len)) < 0)
		return r;
	c->out_copy_len = len;
	if (json_dumpb(value, c->out_copy, len, JSON_COMPACT) != len) {
		explicit_bzero(c->out_copy, len);
		c->out_copy_len = 0;
		return -EINVAL;
	}
	if ((r = answer_set(req, status, "application/json", c->out_copy, len)) < 0) {
		explicit_bzero(c->out_copy, len);
		c->out_copy_len = 0;
	}
	return r;
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
	struct http_conn *c = req->conn;
	size_t nlen, vlen, need;
	char *p;

	if (name == NULL || value == NULL || name[0] == '\0' ||
	    (nlen = strlen(name)) > HTTPD_RESP_HEADER_VALUE_MAX ||
	    (vlen = strlen(value)) > HTTPD_RESP_HEADER_VALUE_MAX ||
	    httpd_has_ctl(name) || httpd_has_ctl(value) || strchr(name, ':') != NULL ||
	    strchr(name, ' ') != NULL || strchr(name, '\t') != NULL)
		return -EINVAL;
	if (c->nextra >= LK_HTTP_RESP_HEADERS_MAX)
		return -E2BIG;
	/* Framing the handler asks for, as the server's own lines would give it. */
	if (nlen == 10 && strcasecmp(name, "Connection") == 0 && strcasecmp(value, "close") == 0) {
		c->close_after = true;      /* head_finish says Connection: close */
		c->nextra++;
		return 0;
	}
	if (nlen == 17 && strcasecmp(name, "Transfer-Encoding") == 0)
		c->extra_framed = true;     /* the body is sent as given, no Content-Length */
	need = c->extra_len + nlen + vlen + 4;
	if (need > c->extra_cap) {
		size_t cap = c->extra_cap ? c->extra_cap : 256;

		while (cap < need)
			cap *= 2;
		if ((p = realloc(c->extra, cap)) == NULL)
			return -ENOMEM;
		c->extra = p;
		c->extra_cap = cap;
	}
	p = c->extra + c->extra_len;
	p = put(p, name, nlen);
	p = put(p, ": ", 2);
	p = put(p, value, vlen);
	p = put(p, "\r\n", 2);
	c->extra_len = (size_t)(p - c->extra);
	c->nextra++;
	return 0;
}

/* An answer the server gives by itself (400, 413, 431, 500, 503): outside the handler. */
int
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
	return r;
}
