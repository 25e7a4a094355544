/* fuzz_devserver_database.c — the database engine of `latchkey dev` (devserver/database.c)
 * turning request bodies into configs and roles, and what a read shows of them. The input
 * is a JSON object (a write to a new entry) or an array of objects (the first creates,
 * each next one updates). A read that shows a password member, or a connection_url
 * other than the stored one with its password redacted, aborts. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devserver/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The password span [*from, *to) of a scheme://user:pass@host URL, by the rules of Go's
 * url.Parse, written here apart from database.c's so that the two are checked against
 * each other; *valid is false when Go would refuse the userinfo. */
static bool
password_span(const char *url, size_t *from, size_t *to, bool *valid)
{
	const char *p = url, *auth, *end, *at = NULL, *colon;

	if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
		return false;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
	       *p == '+' || *p == '-' || *p == '.')
		p++;
	if (strncmp(p, "://", 3) != 0)
		return false;
	auth = p + 3;
	end = auth + strcspn(auth, "/?#");
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL || (colon = memchr(auth, ':', (size_t)(at - auth))) == NULL)
		return false;
	*valid = true;
	for (p = auth; p < at; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("-._:~!$&'()*+,;=%@", *p) != NULL))
			*valid = false;
	*from = (size_t)(colon + 1 - url);
	*to = (size_t)(at - url);
	return true;
}

/* The view of cfg holds none of the secrets of its connection_details, and its
 * connection_url is the stored one with only the password replaced. */
static void
check_config_view(const json_t *cfg)
{
	static const char *const hidden[] = { "password", "private_key", "service_account_json", NULL };
	const json_t *stored = json_object_get(json_object_get(cfg, "connection_details"), "connection_url");
	json_t *view = dev_db_config_view(cfg), *details = json_object_get(view, "connection_details");
	const json_t *shown = json_object_get(details, "connection_url");
	const char *url = json_string_value(stored), *s = json_string_value(shown);
	size_t from, to;
	bool valid;

	for (size_t i = 0; hidden[i] != NULL; i++)
		if (json_object_get(details, hidden[i]) != NULL)
			abort();
	if (url == NULL || !password_span(url, &from, &to, &valid) || !valid) {
		/* (json_equal is false when both are NULL) */
		if ((stored != NULL || shown != NULL) && !json_equal(stored, shown))
			abort();
	} else if (s == NULL || strncmp(s, url, from) != 0 || strncmp(s + from, "xxxxx", 5) != 0 ||
		   strcmp(s + from + 5, url + to) != 0) {
		abort();
	}
	json_decref(view);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *input = json_loadb((const char *)data, size, 0, NULL), *cfg = NULL, *role = NULL;
	json_t *next, *body;
	char err[512];
	size_t i, n;

	if (input == NULL)
		return 0;
	n = json_is_array(input) ? json_array_size(input) : 1;
	for (i = 0; i < n && i < 8; i++) {
		body = json_is_array(input) ? json_array_get(input, i) : input;
		if (!json_is_object(body))
			continue;
		if (dev_db_config_new(cfg, body, &next, err, sizeof(err)) == 0) {
			json_decref(cfg);
			cfg = next;
			check_config_view(cfg);
		}
		if (dev_db_role_new(role, body, &next, err, sizeof(err)) == 0) {
			json_decref(role);
			role = next;
			json_decref(dev_db_role_view(role));
		}
	}
	json_decref(cfg);
	json_decref(role);
	json_decref(input);
	return 0;
}
