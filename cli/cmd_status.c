/* cmd_status.c — `latchkey status`: what the broker holds, as a table. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/client.h"
#include "cli/commands.h"

/* Timeout of the status request. */
#define STATUS_TIMEOUT_MS 10000L

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: latchkey status [--socket PATH] [--json]\n"
		"\n"
		"Prints the secrets this user may read from the broker: version, state, TTL left,\n"
		"last renewal and next action. Exit status 0 when the broker is ready.\n"
		"  --socket PATH   the broker socket (default $LATCHKEY_SOCKET, else %s)\n"
		"  --json          print the broker's /v1/ready answer as it is\n",
		CLIENT_SOCKET_DEFAULT);
}

static void
format_ttl(json_t *v, char *out, size_t n)
{
	long long s;

	if (!json_is_integer(v)) {
		snprintf(out, n, "-");
		return;
	}
	s = json_integer_value(v);
	if (s >= 3600)
		snprintf(out, n, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
	else if (s >= 60)
		snprintf(out, n, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(out, n, "%llds", s);
}

int
cmd_status(int argc, char **argv)
{
	const char *socket_flag = NULL;
	bool raw = false, ready;
	char msg[512];
	struct lk_buf body;
	json_t *j = NULL, *arr, *v;
	long status = 0;
	size_t i;
	int exit_status = LK_EXIT_FAILURE;

	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
			usage(stdout);
			return LK_EXIT_OK;
		} else if (strcmp(argv[k], "--socket") == 0 && k + 1 < argc) {
			socket_flag = argv[++k];
		} else if (strncmp(argv[k], "--socket=", 9) == 0) {
			socket_flag = argv[k] + 9;
		} else if (strcmp(argv[k], "--json") == 0) {
			raw = true;
		} else {
			fprintf(stderr, "latchkey status: unexpected argument '%s'\n", argv[k]);
			usage(stderr);
			return LK_EXIT_USAGE;
		}
	}
	lk_buf_init(&body, CLIENT_RESPONSE_MAX, false);
	if (client_get(client_socket_path(socket_flag), "/v1/ready", STATUS_TIMEOUT_MS, &status,
		       &body, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "latchkey status: %s\n", msg);
		goto out;
	}
	j = json_loadb(body.data != NULL ? body.data : "", body.len, 0, NULL);
	if ((status != 200 && status != 503) || !json_is_object(j)) {
		fprintf(stderr, "latchkey status: unexpected answer (HTTP %ld)\n", status);
		goto out;
	}
	ready = json_is_true(json_object_get(j, "ready"));
	if (raw) {
		fwrite(body.data, 1, body.len, stdout);
		fputc('\n', stdout);
		exit_status = ready ? LK_EXIT_OK : LK_EXIT_FAILURE;
		goto out;
	}
	printf("ready: %s", ready ? "yes" : "no");
	if (!ready && json_is_string(json_object_get(j, "reason")))
		printf(" (%s)", json_string_value(json_object_get(j, "reason")));
	v = json_object_get(j, "backend");
	if (json_is_false(json_object_get(v, "configured")))
		printf("\nbackend: none (every secret is read from a file)");
	else
		printf("\nbackend: %s", json_is_true(json_object_get(v, "ok")) ? "ok" : "failing");
	if (json_is_string(json_object_get(v, "reason")))
		printf(" (%s)", json_string_value(json_object_get(v, "reason")));
	printf("\n\n%-24s %8s %-8s %9s %-24s %s\n", "SECRET", "VERSION", "STATE", "TTL LEFT",
	       "LAST RENEWAL", "NEXT ACTION");
	arr = json_object_get(j, "secrets");
	json_array_foreach(arr, i, v) {
		char ttl[32], next[64];
		const char *last = json_string_value(json_object_get(v, "last_renewal"));
		json_t *in = json_object_get(v, "next_in");

		format_ttl(json_object_get(v, "ttl"), ttl, sizeof(ttl));
		snprintf(next, sizeof(next), "%s in %llds",
			 json_string_value(json_object_get(v, "next_action")) ?: "-",
			 json_is_integer(in) ? (long long)json_integer_value(in) : 0LL);
		printf("%-24s %8lld %-8s %9s %-24s %s\n",
		       json_string_value(json_object_get(v, "name")) ?: "?",
		       (long long)json_integer_value(json_object_get(v, "version")),
		       json_string_value(json_object_get(v, "state")) ?: "?", ttl,
		       last != NULL ? last : "-", next);
		if (json_is_string(json_object_get(v, "reason")))
			printf("%-24s   reason: %s\n", "", json_string_value(json_object_get(v, "reason")));
	}
	exit_status = ready ? LK_EXIT_OK : LK_EXIT_FAILURE;
out:
	json_decref(j);
	lk_buf_free(&body);
	return exit_status;
}
