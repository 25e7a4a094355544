/* httpd_parse.c — the request parser of the HTTP server (httpd_parse.h). */
#include "common/httpd_parse.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 tchar: the bytes of a method or a field name. */
static bool
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t
httpd_percent_decode(char *s, size_t n, bool plus_space)
{
	size_t r = 0, w = 0;
	int hi, lo;

	while (r < n) {
		if (s[r] == '%' && r + 2 < n &&
		    (hi = hex_value((unsigned char)s[r + 1])) >= 0 &&
		    (lo = hex_value((unsigned char)s[r + 2])) >= 0) {
			s[w++] = (char)(hi << 4 | lo);
			r += 3;
		} else if (plus_space && s[r] == '+') {
			s[w++] = ' ';
			r++;
		} else {
			s[w++] = s[r++];
		}
	}
	return w;
}

/* Decodes s[0..n) in place and NUL-terminates it (s[n] is ours to write). False when the
 * result holds a NUL byte: it would cut the C string short. */
static bool
decode_text(char *s, size_t n, bool plus_space)
{
	size_t len = httpd_percent_decode(s, n, plus_space);

	s[len] = '\0';
	return memchr(s, '\0', len) == NULL;
}

/* Skips the blank lines a client may send before a request (RFC 9112 section 2.2). */
static size_t
skip_blank_lines(const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
		i++;
	return i;
}

size_t
httpd_head_end(const char *buf, size_t len, size_t *io_scanned)
{
	size_t start = skip_blank_lines(buf, len), i;
	const char *nl;

	i = *io_scanned > start ? *io_scanned : start;
	while (i < len && (nl = memchr(buf + i, '\n', len - i)) != NULL) {
		i = (size_t)(nl - buf);
		/* An empty line: "\n\n" or "\n\r\n", after the request line. */
		if (i > start && (buf[i - 1] == '\n' ||
				  (i >= start + 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n')))
			return i + 1;
		i++;
	}
	/* Resume where a blank line could still be completed. */
	*io_scanned = len >= 2 ? len - 2 : 0;
	return 0;
}

/* Trims spaces and tabs at both ends of s[0..*n) in place: returns the new start. */
static char *
trim_ows(char *s, size_t *n)
{
	while (*n > 0 && (s[0] == ' ' || s[0] == '\t')) {
		s++;
		(*n)--;
	}
	while (*n > 0 && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
		(*n)--;
	return s;
}

/* True when the comma-separated list s holds token (case-insensitive). */
static bool
list_has(const char *s, const char *token)
{
	size_t tlen = strlen(token), n;

	while (*s != '\0') {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		n = strcspn(s, ",");
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (n == tlen && strncasecmp(s, token, tlen) == 0)
			return true;
		s += strcspn(s, ",");
	}
	return false;
}

static bool
parse_length(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return true;
}

/* Splits the query (NUL-terminated, n bytes) into its arguments, decoded in place. */
static enum httpd_parse_result
parse_query(char *q, size_t n, struct httpd_head *h, const char **reason)
{
	char *end = q + n, *seg, *eq;
	size_t len;

	while (q < end) {
		seg = q;
		len = strcspn(seg, "&");
		q = seg + len + (seg + len < end);
		seg[len] = '\0';
		if (len == 0)
			continue;
		if (h->nquery == HTTPD_QUERY_MAX) {
			*reason = "too many query arguments";
			return HTTPD_PARSE_URI_TOO_LONG;
		}
		eq = memchr(seg, '=', len);
		h->query[h->nquery].name = seg;
		h->query[h->nquery].value = NULL;
		h->query[h->nquery].name_len = 0;
		if (eq != NULL) {
			*eq = '\0';
			if (!decode_text(eq + 1, (size_t)(seg + len - eq - 1), true)) {
				*reason = "the URL holds an encoded NUL byte";
				return HTTPD_PARSE_BAD;
			}
			h->query[h->nquery].value = eq + 1;
		}
		if (!decode_text(seg, eq != NULL ? (size_t)(eq - seg) : len, false)) {
			*reason = "the URL holds an encoded NUL byte";
			return HTTPD_PARSE_BAD;
		}
		h->nquery++;
	}
	return HTTPD_PARSE_OK;
}

/* The request line, line[0..n) without its line end (line[n] is ours to write). */
static enum httpd_parse_result
parse_request_line(char *line, size_t n, struct httpd_head *h, const char **reason)
{
	char *sp1, *sp2, *target, *version, *q;
	size_t tlen;

	*reason = "malformed request line";
	if ((sp1 = memchr(line, ' ', n)) == NULL || sp1 == line)
		return HTTPD_PARSE_BAD;
	for (char *p = line; p < sp1; p++)
		if (!is_tchar((unsigned char)*p))
			return HTTPD_PARSE_BAD;
	target = sp1 + 1;
	if ((sp2 = memchr(target, ' ', (size_t)(line + n - target))) == NULL || sp2 == target)
		return HTTPD_PARSE_BAD;
	version = sp2 + 1;
	for (char *p = target; p < sp2; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return HTTPD_PARSE_BAD;
	if ((size_t)(line + n - version) != 8 || strncmp(version, "HTTP/", 5) != 0 ||
	    version[6] != '.' || version[5] < '0' || version[5] > '9' ||
	    version[7] < '0' || version[7] > '9')
		return HTTPD_PARSE_BAD;
	if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
		*reason = "only HTTP/1.0 and HTTP/1.1 are served";
		return HTTPD_PARSE_VERSION;
	}
	h->http10 = version[7] == '0';
	h->keep_alive = !h->http10;
	*sp1 = '\0';
	*sp2 = '\0';
	h->method = line;
	tlen = (size_t)(sp2 - target);
	if ((q = memchr(target, '?', tlen)) != NULL) {
		*q = '\0';
		enum httpd_parse_result r = parse_query(q + 1, (size_t)(sp2 - q - 1), h, reason);

		if (r != HTTPD_PARSE_OK)
			return r;
		tlen = (size_t)(q - target);
	}
	if (!decode_text(target, tlen, false)) {
		*reason = "the URL holds an encoded NUL byte";
		return HTTPD_PARSE_BAD;
	}
	h->path = target;
	return HTTPD_PARSE_OK;
}

/* One header field line, line[0..n) without its line end (line[n] is ours to write). */
static enum httpd_parse_result
parse_field(char *line, size_t n, struct httpd_head *h, const char **reason)
{
	char *colon, *value;
	size_t vlen;

	*reason = "malformed header field";
	if (line[0] == ' ' || line[0] == '\t') {
		*reason = "obsolete line folding is not accepted";
		return HTTPD_PARSE_BAD;
	}
	if ((colon = memchr(line, ':', n)) == NULL || colon == line)
		return HTTPD_PARSE_BAD;
	for (char *p = line; p < colon; p++)
		if (!is_tchar((unsigned char)*p))
			return HTTPD_PARSE_BAD;
	vlen = (size_t)(line + n - colon - 1);
	value = trim_ows(colon + 1, &vlen);
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)value[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return HTTPD_PARSE_BAD;
	}
	if (h->nfields == HTTPD_HEADERS_MAX) {
		*reason = "too many header fields";
		return HTTPD_PARSE_TOO_LARGE;
	}
	*colon = '\0';
	value[vlen] = '\0';
	h->field[h->nfields].name = line;
	h->field[h->nfields].value = value;
	h->field[h->nfields].name_len = (size_t)(colon - line);
	h->nfields++;
	return HTTPD_PARSE_OK;
}

/* name (of nlen bytes) is lit, case aside. The length first: most names are none of those
 * the server reads. */
static bool
name_is(const char *name, size_t nlen, const char *lit, size_t lit_len)
{
	return nlen == lit_len && strcasecmp(name, lit) == 0;
}

#define NAME_IS(name, nlen, lit) name_is(name, nlen, lit, sizeof(lit) - 1)

/* What the fields say about the body and the connection. */
static enum httpd_parse_result
read_framing(struct httpd_head *h, const char **reason)
{
	bool te = false;
	uint64_t v;

	for (unsigned i = 0; i < h->nfields; i++) {
		const char *name = h->field[i].name, *value = h->field[i].value;
		size_t nlen = h->field[i].name_len;

		if (NAME_IS(name, nlen, "Content-Length")) {
			if (!parse_length(value, &v)) {
				*reason = "Content-Length is not a number";
				return HTTPD_PARSE_BAD;
			}
			if (h->has_length && v != h->content_length) {
				*reason = "conflicting Content-Length fields";
				return HTTPD_PARSE_BAD;
			}
			h->has_length = true;
			h->content_length = v;
		} else if (NAME_IS(name, nlen, "Transfer-Encoding")) {
			if (te || strcasecmp(value, "chunked") != 0) {
				*reason = "only the chunked transfer coding is served";
				return HTTPD_PARSE_NOT_IMPLEMENTED;
			}
			te = true;
		} else if (NAME_IS(name, nlen, "Connection")) {
			if (list_has(value, "close"))
				h->keep_alive = false;
			else if (h->http10 && list_has(value, "keep-alive"))
				h->keep_alive = true;
		} else if (NAME_IS(name, nlen, "Expect")) {
			h->expect_continue = strcasecmp(value, "100-continue") == 0;
		}
	}
	if (te && h->has_length) {
		*reason = "both Content-Length and Transfer-Encoding";
		return HTTPD_PARSE_BAD;
	}
	h->chunked = te;
	/* RFC 9112 6.1: a transfer coding in an HTTP/1.0 request means the connection closes
	 * after it (an intermediary may have framed it otherwise). */
	if (te && h->http10)
		h->keep_alive = false;
	return HTTPD_PARSE_OK;
}

enum httpd_parse_result
httpd_parse_head(char *buf, size_t len, size_t max_header, struct httpd_head *ret,
		 const char **ret_reason)
{
	const char *reason_sink;
	const char **reason = ret_reason != NULL ? ret_reason : &reason_sink;
	size_t scanned = 0, head_len, pos, n, line_len;
	enum httpd_parse_result r;
	char *nl, *line;
	bool first = true;

	*reason = "";
	pos = skip_blank_lines(buf, len);
	nl = memchr(buf + pos, '\n', len - pos);
	/* The line's length without its CRLF (or the CR that came so far). */
	line_len = nl != NULL ? (size_t)(nl - (buf + pos)) : len - pos;
	if (line_len > 0 && buf[pos + line_len - 1] == '\r')
		line_len--;
	if (line_len > max_header) {
		*reason = "the request line is too long";
		return HTTPD_PARSE_URI_TOO_LONG;
	}
	if ((head_len = httpd_head_end(buf, len, &scanned)) == 0) {
		if (len > max_header) {
			*reason = "the request head is too large";
			return HTTPD_PARSE_TOO_LARGE;
		}
		return HTTPD_PARSE_INCOMPLETE;
	}
	if (head_len - pos > max_header) {
		*reason = "the request head is too large";
		return HTTPD_PARSE_TOO_LARGE;
	}
	memset(ret, 0, offsetof(struct httpd_head, field));
	ret->nfields = 0;
	ret->nquery = 0;
	ret->head_len = head_len;
	while (pos < head_len) {
		line = buf + pos;
		nl = memchr(line, '\n', head_len - pos);
		n = (size_t)(nl - line);
		pos += n + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			break;                  /* the empty line: end of the head */
		if (memchr(line, '\r', n) != NULL || memchr(line, '\0', n) != NULL) {
			*reason = "a stray CR or NUL byte in the head";
			return HTTPD_PARSE_BAD;
		}
		r = first ? parse_request_line(line, n, ret, reason) :
			    parse_field(line, n, ret, reason);
		if (r != HTTPD_PARSE_OK)
			return r;
		first = false;
	}
	return read_framing(ret, reason);
}

const char *
httpd_head_field(const struct httpd_head *h, const char *name)
{
	size_t nlen = strlen(name);

	for (unsigned i = 0; i < h->nfields; i++)
		if (name_is(h->field[i].name, h->field[i].name_len, name, nlen))
			return h->field[i].value;
	return NULL;
}

const char *
httpd_head_query(const struct httpd_head *h, const char *key)
{
	for (unsigned i = 0; i < h->nquery; i++)
		if (strcmp(h->query[i].name, key) == 0)
			return h->query[i].value;
	return NULL;
}

/* ---- chunked bodies ----
 *
 * Every line of the chunked framing (size lines, the line end after a chunk's data,
 * trailer fields, the last empty line) must end in CRLF (RFC 9112 section 7.1): a bare LF
 * is malformed. The head may end its lines in a bare LF (RFC 9112 section 2.2 lets a
 * recipient accept it), but inside a body where the framing decides where the next
 * request starts, a front end that reads a bare LF otherwise than this parser would see
 * another request than we do (request smuggling). */

enum {
	CH_SIZE = 0,      /* hex digits of a chunk size */
	CH_EXT,           /* a chunk extension, up to the line end */
	CH_SIZE_LF,       /* the LF of a size line's CRLF */
	CH_DATA,
	CH_DATA_CR,       /* the CRLF after a chunk's data */
	CH_DATA_LF,
	CH_TRAILER_START, /* the start of a trailer line, or the final empty line */
	CH_TRAILER,       /* a trailer field, up to its line end */
	CH_TRAILER_LF,    /* the LF of a trailer line's CRLF */
	CH_END_LF,        /* the LF of the final CRLF */
	CH_DONE,
};

void
httpd_chunked_init(struct httpd_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

/* The end of a chunk-size line. */
static void
size_line_done(struct httpd_chunked *c)
{
	c->state = c->remaining == 0 ? CH_TRAILER_START : CH_DATA;
	c->digits = 0;
}

int
httpd_chunked_feed(struct httpd_chunked *c, const char *in, size_t len, size_t *ret_used,
		   struct lk_buf *out)
{
	size_t i = 0, n;
	int h, r;

	while (i < len && c->state != CH_DONE) {
		unsigned char b = (unsigned char)in[i];

		switch (c->state) {
		case CH_SIZE:
			if ((h = hex_value(b)) >= 0) {
				if (++c->digits > 16)
					goto bad;
				c->remaining = c->remaining << 4 | (uint64_t)h;
			} else if (c->digits == 0) {
				goto bad;
			} else if (b == ';' || b == ' ' || b == '\t') {
				c->state = CH_EXT;
			} else if (b == '\r') {
				c->state = CH_SIZE_LF;
			} else {
				goto bad;
			}
			i++;
			break;
		case CH_EXT:
		case CH_TRAILER:
			/* A trailer line is a field, "name: value"; one without a colon (a
			 * request line smuggled after the last chunk) is malformed. */
			if (b == '\r' && c->state == CH_TRAILER && !c->colon)
				goto bad;
			if (b == '\r') {
				/* The LF must follow. */
				c->state = c->state == CH_EXT ? CH_SIZE_LF : CH_TRAILER_LF;
			} else if ((b < 0x20 && b != '\t') || b == 0x7f ||
				   ++c->meta > HTTPD_CHUNK_META_MAX) {
				goto bad;
			} else if (b == ':') {
				c->colon = true;
			}
			i++;
			break;
		case CH_SIZE_LF:
			if (b != '\n')
				goto bad;
			size_line_done(c);
			i++;
			break;
		case CH_DATA:
			n = len - i;
			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			if ((r = lk_buf_append(out, in + i, n)) < 0) {
				*ret_used = i;
				return r;
			}
			c->remaining -= n;
			i += n;
			if (c->remaining == 0)
				c->state = CH_DATA_CR;
			break;
		case CH_DATA_CR:
			if (b != '\r')
				goto bad;
			c->state = CH_DATA_LF;
			i++;
			break;
		case CH_DATA_LF:
			if (b != '\n')
				goto bad;
			c->state = CH_SIZE;
			i++;
			break;
		case CH_TRAILER_START:
			if (b == '\r') {
				c->state = CH_END_LF;
			} else if (b == '\n' || b == ' ' || b == '\t' || ++c->meta > HTTPD_CHUNK_META_MAX) {
				goto bad;
			} else {
				c->state = CH_TRAILER;
				c->colon = false;
			}
			i++;
			break;
		case CH_TRAILER_LF:
			if (b != '\n')
				goto bad;
			c->state = CH_TRAILER_START;
			i++;
			break;
		case CH_END_LF:
			if (b != '\n')
				goto bad;
			c->state = CH_DONE;
			i++;
			break;
		default:
			goto bad;
		}
	}
	*ret_used = i;
	return c->state == CH_DONE ? 1 : 0;
bad:
	*ret_used = i;
	return -EINVAL;
}
