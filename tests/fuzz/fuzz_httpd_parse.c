/* fuzz_httpd_parse.c — the HTTP server's request parser (common/httpd_parse.c): the head
 * (request line, fields, the query, percent-decoding, framing) and chunked bodies.
 *
 * The input is a request as a client would send it. Checks beyond "does not crash":
 * finding the end of the head in pieces gives what one look gives, a parsed head stays
 * inside its buffer, a chunked body decoded in pieces gives what one feed gives, and a
 * chunked body that ended ends in CRLF CRLF. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpd_parse.h"

/* Inputs larger than this are skipped: heads are capped at a few KiB. */
#define FUZZ_INPUT_MAX (64u << 10)
/* The head limit the parser is given (the broker's). */
#define FUZZ_MAX_HEADER 4096
/* The body limit a chunked body is decoded under. */
#define FUZZ_MAX_BODY 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
inside(const char *p, const char *buf, size_t len)
{
	return p >= buf && p < buf + len;
}

/* Decodes in[0..len) as a chunked body at once and in pieces of step bytes; both must
 * agree on the verdict, the bytes consumed and the data (on the verdict alone when the
 * body passes its limit). */
static void
chunked_both_ways(const char *in, size_t len, size_t step)
{
	struct httpd_chunked one, many;
	struct lk_buf a, b;
	size_t used_one = 0, used_many = 0, used, n;
	int r_one, r_many = 0;

	lk_buf_init(&a, FUZZ_MAX_BODY, false);
	lk_buf_init(&b, FUZZ_MAX_BODY, false);
	httpd_chunked_init(&one);
	httpd_chunked_init(&many);
	r_one = httpd_chunked_feed(&one, in, len, &used_one, &a);
	while (used_many < len) {
		n = len - used_many < step ? len - used_many : step;
		r_many = httpd_chunked_feed(&many, in + used_many, n, &used, &b);
		used_many += used;
		if (r_many != 0)
			break;
	}
	if (r_one == -ENOMEM || r_many == -ENOMEM)
		goto out;
	/* Past the limit, where it is noticed depends on the pieces: only the verdict. */
	if (r_one == -E2BIG || r_many == -E2BIG) {
		if (r_one != r_many)
			abort();
		goto out;
	}
	if (r_one != r_many || used_one != used_many || a.len != b.len ||
	    (a.len > 0 && memcmp(a.data, b.data, a.len) != 0))
		abort();
	/* A body that ended has its last line, the empty one after the last chunk or the
	 * last trailer, framed in CRLF: a bare LF never ends a body. */
	if (r_one == 1 && (used_one < 5 || memcmp(in + used_one - 4, "\r\n\r\n", 4) != 0))
		abort();
out:
	lk_buf_free(&a);
	lk_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct httpd_head *head;
	const char *reason = NULL;
	size_t end, end_pieces = 0, scanned = 0, step;
	enum httpd_parse_result r;
	char *buf;

	if (size == 0 || size > FUZZ_INPUT_MAX)
		return 0;
	step = (size_t)(data[0] % 7) + 1;
	if ((buf = malloc(size + 1)) == NULL || (head = malloc(sizeof(*head))) == NULL) {
		free(buf);
		return 0;
	}
	memcpy(buf, data, size);
	buf[size] = '\0';

	/* The end of the head, found in one look and as it arrives in pieces. */
	end = httpd_head_end(buf, size, &(size_t){ 0 });
	for (size_t have = step < size ? step : size;; have = have + step < size ? have + step : size) {
		if ((end_pieces = httpd_head_end(buf, have, &scanned)) != 0 || have == size)
			break;
	}
	if (end != end_pieces)
		abort();
	if (end > size)
		abort();

	r = httpd_parse_head(buf, size, FUZZ_MAX_HEADER, head, &reason);
	if (reason == NULL)
		abort();
	if (r == HTTPD_PARSE_OK) {
		if (head->head_len == 0 || head->head_len > size ||
		    !inside(head->method, buf, size) || !inside(head->path, buf, size) ||
		    head->nfields > HTTPD_HEADERS_MAX || head->nquery > HTTPD_QUERY_MAX)
			abort();
		for (unsigned i = 0; i < head->nfields; i++)
			if (httpd_head_field(head, head->field[i].name) == NULL)
				abort();
		for (unsigned i = 0; i < head->nquery; i++)
			if (!inside(head->query[i].name, buf, size))
				abort();
		if (head->chunked && head->has_length)
			abort();
		if (head->chunked)
			chunked_both_ways(buf + head->head_len, size - head->head_len, step);
	}
	/* Any bytes as a chunked body, whatever the head was. */
	chunked_both_ways((const char *)data, size, step);
	free(head);
	free(buf);
	return 0;
}
