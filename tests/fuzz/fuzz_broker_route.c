/* fuzz_broker_route.c — what the broker's socket makes of a request: the path as the HTTP
 * server hands it over (percent-decoded, a decoded NUL refused), the route and the secret
 * and key names in it, the blocking-read query (index, wait), If-None-Match, the audit
 * table's keys, and the filter that cuts the /metrics page down to what a peer may read.
 *
 * The input is lines: the raw path (with its query), the index and wait values, the
 * If-None-Match value; the rest is a metrics page to filter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/httpd_parse.h"
#include "common/log.h"

/* Inputs larger than this are skipped: request heads are at most a few KiB. */
#define FUZZ_INPUT_MAX (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of in (NUL-terminated copy, owned by the caller), or NULL at the end. */
static char *
next_line(const char **p, const char *end)
{
	const char *nl;
	char *line;
	size_t n;

	if (*p >= end)
		return NULL;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	n = nl != NULL ? (size_t)(nl - *p) : (size_t)(end - *p);
	if ((line = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(line, *p, n);
	line[n] = '\0';
	*p += n + (nl != NULL);
	return line;
}

static bool
keep_some(void *arg, const char *name)
{
	(void)arg;
	return name[0] != '\0' && name[0] < 'n';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct broker_audit *audit;
	const char *p = (const char *)data, *end = p + size;
	char *path, *index, *wait, *inm, *query;
	struct broker_route_req rr;
	struct lk_peer peer = { true, 42, 1000, 1000 };
	struct lk_buf out;
	uint64_t v = 0;
	int64_t ms = 0;
	size_t n;

	if (audit == NULL) {
		/* A small table, so that its overflow is reached too. */
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

		lk_log_setup(fd >= 0 ? fd : 2, LK_INFO);
		if ((audit = broker_audit_new(8, 1000)) == NULL)
			abort();
	}
	if (size > FUZZ_INPUT_MAX)
		return 0;
	path = next_line(&p, end);
	index = next_line(&p, end);
	wait = next_line(&p, end);
	inm = next_line(&p, end);
	if (path != NULL) {
		/* As the HTTP server does: the query cut off, the path decoded in place, a
		 * decoded NUL answered 400 before any handler. */
		if ((query = strchr(path, '?')) != NULL)
			*query = '\0';
		n = httpd_percent_decode(path, strlen(path), false);
		path[n] = '\0';
		if (memchr(path, '\0', n) == NULL) {
			broker_route_parse(path, &rr);
			if (rr.route == BROKER_ROUTE_SECRET || rr.route == BROKER_ROUTE_KEY) {
				(void)broker_name_valid(rr.name);
				broker_audit_read(audit, &peer, rr.name, rr.key, v, "no-such-secret");
			}
		}
	}
	(void)broker_parse_blocking(index, wait, &v, &ms);
	(void)broker_etag_matches(inm, v);
	lk_buf_init(&out, FUZZ_INPUT_MAX * 2, false);
	if (broker_metrics_filter(p, (size_t)(end - p), keep_some, NULL, &out) == 0 &&
	    out.len > (size_t)(end - p))
		abort();    /* a filter only ever leaves lines out */
	lk_buf_free(&out);
	if (size % 64 == 0)
		broker_audit_flush(audit, lk_now_mono_ms(), true);
	free(path);
	free(index);
	free(wait);
	free(inm);
	return 0;
}
