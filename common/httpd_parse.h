/* httpd_parse.h — the HTTP/1.x request parser of the server (common/httpd*.c, and its fuzz
 * target): pure functions over a byte buffer, no I/O, no allocation.
 *
 * httpd_parse_head parses a request head in place: it writes NUL bytes into the buffer to
 * end the method, the path, query keys and values and header fields, and decodes the path
 * and query in place. The pointers it returns point into that buffer and are valid as long
 * as the buffer is neither moved nor reused. httpd_chunked_feed decodes a chunked body
 * into a capped buffer. docs/internals/httpd.md, "Parsing", says what is accepted.
 */
#ifndef LK_HTTPD_PARSE_H
#define LK_HTTPD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Most header fields one request may carry; more is answered 431. */
#define HTTPD_HEADERS_MAX 128
/* Most query arguments one request may carry; more is answered 414. */
#define HTTPD_QUERY_MAX 64
/* Most bytes of chunk extensions on one chunk-size line, and of trailer fields in all. */
#define HTTPD_CHUNK_META_MAX 4096

struct httpd_field {
	const char *name;
	const char *value;
	size_t name_len;            /* strlen(name); in the query, 0 */
};

struct httpd_head {
	size_t head_len;          /* bytes of the head, its empty line included */
	const char *method;
	const char *path;         /* percent-decoded, without the query */
	bool http10;              /* HTTP/1.0 (else 1.1) */
	bool keep_alive;          /* what the request asks: by version and Connection */
	bool expect_continue;     /* Expect: 100-continue */
	bool chunked;             /* Transfer-Encoding: chunked */
	bool has_length;          /* a Content-Length was given */
	uint64_t content_length;
	unsigned nfields;
	struct httpd_field field[HTTPD_HEADERS_MAX];
	unsigned nquery;
	struct httpd_field query[HTTPD_QUERY_MAX];   /* value NULL: the key had no '=' */
};

/* What httpd_parse_head found. */
enum httpd_parse_result {
	HTTPD_PARSE_OK = 0,       /* *ret filled */
	HTTPD_PARSE_INCOMPLETE,   /* no end of head yet, and under the limit: read more */
	HTTPD_PARSE_BAD,          /* 400: malformed */
	HTTPD_PARSE_URI_TOO_LONG, /* 414: the request line alone is over the limit, or too
				   * many query arguments */
	HTTPD_PARSE_TOO_LARGE,    /* 431: the head is over the limit, or too many fields */
	HTTPD_PARSE_NOT_IMPLEMENTED, /* 501: a transfer coding other than chunked */
	HTTPD_PARSE_VERSION,      /* 505: not HTTP/1.0 or HTTP/1.1 */
};

/* Parses the request head at the start of buf (len bytes; the buffer may hold more after
 * the head: a body, a pipelined request). max_header bounds the head, request line
 * included. On HTTPD_PARSE_OK, *ret points into buf (modified in place); on any other
 * result buf may be modified too and *ret is not to be used. *ret_reason (may be NULL)
 * gets a static text saying what was wrong. */
enum httpd_parse_result httpd_parse_head(char *buf, size_t len, size_t max_header,
					 struct httpd_head *ret, const char **ret_reason);

/* The length of the request head at the start of buf (through its empty line, blank lines
 * before the request line included), or 0 when it has not ended within len bytes.
 * *io_scanned (0 for a new request) keeps where to look on, so that a head arriving in
 * small pieces is scanned once. */
size_t httpd_head_end(const char *buf, size_t len, size_t *io_scanned);

/* Percent-decodes s (n bytes) in place; with plus_space, '+' becomes a space. A '%' not
 * followed by two hex digits is kept as it is. Returns the new length; the result is
 * NUL-terminated when n < the buffer's size (the caller's terminator moves forward). */
size_t httpd_percent_decode(char *s, size_t n, bool plus_space);

/* The value of the first field called name (case-insensitive), or NULL. */
const char *httpd_head_field(const struct httpd_head *h, const char *name);
/* The value of the first query argument called key (exact), or NULL. */
const char *httpd_head_query(const struct httpd_head *h, const char *key);

/* A chunked body being decoded. Zero it (or httpd_chunked_init) before the first feed. */
struct httpd_chunked {
	int state;
	uint64_t remaining;       /* data bytes left in the current chunk */
	unsigned digits;          /* hex digits of the current size line */
	size_t meta;              /* extension and trailer bytes so far */
	bool colon;               /* the current trailer line has its ':' */
};

void httpd_chunked_init(struct httpd_chunked *c);

/* Feeds len bytes of a chunked body: data go to out (its max is the body limit). Sets
 * *ret_used to the bytes consumed. Returns 1 when the body ended (the last chunk and the
 * trailers read: bytes after it are not consumed), 0 when more is needed (all consumed),
 * -EINVAL when malformed (a line of the framing that does not end in CRLF too), -E2BIG
 * when the data pass out's limit, -ENOMEM. */
int httpd_chunked_feed(struct httpd_chunked *c, const char *in, size_t len, size_t *ret_used,
		       struct lk_buf *out);

#endif
