/* route.c — what a socket request asks for, decided from its path, query and headers
 * alone: no broker state, no I/O, so that the fuzz target (tests/fuzz/fuzz_broker_route.c)
 * can run it on anything. server.c acts on the result. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "common/clock.h"

/* Longest a query value may be. */
#define ROUTE_QUERY_MAX 32

enum broker_route
broker_route_parse(const char *path, struct broker_route_req *ret)
{
	const char *rest, *slash;
	size_t n;

	/* Not the name's bytes: it is a string, and most reads are of a secret. */
	ret->name[0] = '\0';
	ret->name_ok = false;
	ret->key = NULL;
	ret->key_ok = false;
	if (strncmp(path, "/v1/secrets/", 12) != 0 || path[12] == '\0') {
		if (strcmp(path, "/v1/secrets") == 0 || strcmp(path, "/v1/secrets/") == 0)
			return ret->route = BROKER_ROUTE_LIST;
		if (strcmp(path, "/v1/health") == 0)
			return ret->route = BROKER_ROUTE_HEALTH;
		if (strcmp(path, "/v1/ready") == 0)
			return ret->route = BROKER_ROUTE_READY;
		if (strcmp(path, "/metrics") == 0)
			return ret->route = BROKER_ROUTE_METRICS;
		return ret->route = BROKER_ROUTE_OTHER;
	}
	rest = path + 12;
	slash = strchr(rest, '/');
	ret->route = slash != NULL ? BROKER_ROUTE_KEY : BROKER_ROUTE_SECRET;
	n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	/* The name as asked (cut to fit): what the audit line of an unknown name shows. */
	memcpy(ret->name, rest, n < BROKER_NAME_MAX ? n : BROKER_NAME_MAX);
	ret->name[n < BROKER_NAME_MAX ? n : BROKER_NAME_MAX] = '\0';
	ret->name_ok = n > 0 && n <= BROKER_NAME_MAX;
	if (slash != NULL) {
		ret->key = slash + 1;
		ret->key_ok = ret->key[0] != '\0';
	}
	return ret->route;
}

int
broker_parse_blocking(const char *index, const char *wait, uint64_t *ret_index,
		      int64_t *ret_wait_ms)
{
	unsigned long long v;
	int64_t ms = BROKER_WAIT_DEFAULT_MS;
	char *end;

	if (index == NULL)
		return wait == NULL ? 1 : -EINVAL;
	if (strlen(index) > ROUTE_QUERY_MAX || index[0] < '0' || index[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(index, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	if (wait != NULL && (strlen(wait) > ROUTE_QUERY_MAX || lk_duration_parse(wait, &ms) < 0))
		return -EINVAL;
	if (ms > BROKER_WAIT_MAX_MS)
		ms = BROKER_WAIT_MAX_MS;
	*ret_index = v;
	*ret_wait_ms = ms;
	return 0;
}

/* RFC 9110 13.1.2: "*", or a list of entity tags, weak ones (W/"...") compared weakly. */
bool
broker_etag_matches(const char *if_none_match, uint64_t version)
{
	const char *p = if_none_match;

	if (p == NULL)
		return false;
	for (;;) {
		const char *open, *close;
		uint64_t v = 0;
		bool digits = true;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return false;
		if (*p == '*')
			return true;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (*p != '"')
			return false;       /* not a list of entity tags: no match */
		open = p + 1;
		if ((close = strchr(open, '"')) == NULL)
			return false;
		/* Tags compare as strings: the broker writes no leading zero, so "07" is
		 * not the tag of version 7. A "*" among tags (not RFC 9110's grammar) is
		 * taken as the "*" it would be alone. */
		if (close == open || (open[0] == '0' && close - open > 1))
			digits = false;
		for (const char *q = open; q < close && digits; q++) {
			uint64_t d = (uint64_t)(*q - '0');

			/* Every version up to UINT64_MAX, nothing past it. */
			if (*q < '0' || *q > '9' || v > UINT64_MAX / 10 ||
			    (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
				digits = false;
			else
				v = v * 10 + d;
		}
		if (digits && v == version)
			return true;
		p = close + 1;
	}
}
