#include "brokerutil.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void
bf_dev(struct bf *f, const char *default_ttl, const char *max_ttl)
{
	bf_dev_args(f, default_ttl, max_ttl, NULL);
}

void
bf_dev_args(struct bf *f, const char *default_ttl, const char *max_ttl,
	    const char *const extra_args[])
{
	char body[256];

	memset(f, 0, sizeof(*f));
	if (t_dev_start(&f->dev, extra_args) != 0) {
		fprintf(stderr, "bf_dev: latchkey dev did not start\n");
		exit(1);
	}
	f->dir = t_tmpdir();
	/* Other uids may traverse (abuse tests connect as nobody). */
	chmod(f->dir, 0711);
	snprintf(f->sock, sizeof(f->sock), "%s/broker.sock", f->dir);
	snprintf(f->cfg, sizeof(f->cfg), "%s/broker.json", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/broker.log", f->dir);
	snprintf(f->token_file, sizeof(f->token_file), "%s/token", f->dir);
	snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->dir);
	t_write_file(f->token_file, f->dev.token, 0600);
	snprintf(body, sizeof(body), "{\"db_name\":\"pg\",\"default_ttl\":\"%s\",\"max_ttl\":\"%s\"}",
		 default_ttl, max_ttl);
	bf_dev_call(f, "POST", "/v1/database/roles/app", body, NULL);
	bf_dev_call(f, "POST", "/v1/secret/data/app/api",
		    "{\"data\":{\"user\":\"bf-user\",\"password\":\"bf-password-4a1f0c\"}}", NULL);
}

long
bf_dev_call(struct bf *f, const char *method, const char *path, const char *body, char **ret)
{
	char url[512];

	snprintf(url, sizeof(url), "%s%s", f->dev.addr, path);
	return t_http(method, url, NULL, f->dev.token, body, ret);
}

void
bf_config(struct bf *f, const char *secrets, const char *extra)
{
	bf_config_listen(f, secrets, NULL, extra);
}

void
bf_config_listen(struct bf *f, const char *secrets, const char *listen, const char *extra)
{
	char *text;

	if (asprintf(&text,
		     "{\"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"token\","
		     " \"token_file\": \"%s\"}},\n"
		     " \"listen\": {\"socket\": \"%s\", \"mode\": \"0666\", \"admin_uids\": [0]%s%s},\n"
		     " \"state_dir\": \"%s\", \"seccomp\": true, \"grace\": \"1s\",\n"
		     " %s%s%s\"secrets\": [%s]}\n",
		     f->dev.addr, f->token_file, f->sock, listen != NULL ? ", " : "",
		     listen != NULL ? listen : "", f->state_dir,
		     /* A retry of the caller's replaces the default. */
		     extra != NULL && strstr(extra, "\"retry\"") != NULL ? "" :
		     "\"retry\": {\"initial\": \"200ms\", \"max\": \"2s\"},\n ",
		     extra != NULL ? extra : "", extra != NULL ? ",\n " : "", secrets) < 0)
		exit(1);
	t_write_file(f->cfg, text, 0600);
	free(text);
}

bool
bf_start(struct bf *f)
{
	const char *argv[] = { t_latchkey_bin(), "broker", "--config", f->cfg, NULL };

	if (t_spawn(&f->broker, argv, NULL, f->log) != 0)
		return false;
	return t_wait_log(&f->broker, "\"msg\":\"serving\"", T_DEADLINE_MS, NULL, 0);
}

static bool
ready_cond(void *arg)
{
	return bf_get(arg, "/v1/ready", NULL) == 200;
}

bool
bf_wait_ready(struct bf *f, int timeout_ms)
{
	return t_wait_until(ready_cond, f, timeout_ms);
}

int
bf_stop_broker(struct bf *f, int sig, int timeout_ms)
{
	int status = -1;

	if (f->broker.pid != 0)
		status = t_stop(&f->broker, sig, timeout_ms);
	f->broker.pid = 0;
	return status;
}

void
bf_stop(struct bf *f)
{
	bf_stop_broker(f, SIGTERM, T_DEADLINE_MS);
	t_dev_stop(&f->dev);
	if (f->dir != NULL) {
		t_rmrf(f->dir);
		free(f->dir);
		f->dir = NULL;
	}
}

long
bf_get(struct bf *f, const char *path, char **ret)
{
	char url[1024];

	snprintf(url, sizeof(url), "http://broker%s", path);
	return t_http("GET", url, f->sock, NULL, NULL, ret);
}

static json_t *
dev_leases(struct bf *f)
{
	char *body = NULL;
	json_t *j = NULL;

	if (bf_dev_call(f, "GET", "/_latchkey/leases", NULL, &body) == 200)
		j = json_loads(body, 0, NULL);
	free(body);
	return j;
}

int
bf_leases(struct bf *f, const char *state)
{
	json_t *j = dev_leases(f), *l;
	size_t i;
	int n = 0;

	if (j == NULL)
		return -1;
	json_array_foreach(json_object_get(j, "leases"), i, l) {
		const char *st = json_string_value(json_object_get(l, "state"));

		if (st != NULL && strcmp(st, state) == 0)
			n++;
	}
	json_decref(j);
	return n;
}

int
bf_lease_state(struct bf *f, const char *id, char *state, size_t len)
{
	json_t *j = dev_leases(f), *l;
	size_t i;
	int rc = -1;

	json_array_foreach(json_object_get(j, "leases"), i, l) {
		const char *lid = json_string_value(json_object_get(l, "lease_id"));

		if (lid != NULL && strcmp(lid, id) == 0) {
			snprintf(state, len, "%s", json_string_value(json_object_get(l, "state")));
			rc = 0;
			break;
		}
	}
	json_decref(j);
	return rc;
}

bool
bf_current_lease(struct bf *f, const char *name, char *id, size_t len)
{
	char *body = NULL;
	json_t *j, *s;
	size_t i;
	bool found = false;

	bf_get(f, "/v1/ready", &body);
	j = body != NULL ? json_loads(body, 0, NULL) : NULL;
	free(body);
	json_array_foreach(json_object_get(j, "secrets"), i, s) {
		const char *n = json_string_value(json_object_get(s, "name"));
		const char *l = json_string_value(json_object_get(s, "lease_id"));

		if (n != NULL && strcmp(n, name) == 0 && l != NULL) {
			snprintf(id, len, "%s", l);
			found = true;
		}
	}
	json_decref(j);
	return found;
}

int
bf_log_count(struct bf *f, const char *needle)
{
	char *log = t_read_file(f->log), *p;
	int n = 0;

	for (p = log; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(log);
	return n;
}

struct log_wait {
	struct bf *f;
	const char *needle;
	int count;
};

static bool
log_has(void *arg)
{
	struct log_wait *w = arg;

	return bf_log_count(w->f, w->needle) >= w->count;
}

bool
bf_wait_log_count(struct bf *f, const char *needle, int count)
{
	struct log_wait w = { f, needle, count };

	return t_wait_until(log_has, &w, T_DEADLINE_MS);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
bf_percentile(double *v, size_t n, double pct)
{
	size_t k;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	k = (size_t)(pct / 100.0 * (double)(n - 1) + 0.5);
	return v[k < n ? k : n - 1];
}
