#include "fakekube.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Largest response body kept (a watch stream is read up to this much). */
#define KUBE_BODY_MAX (16u << 20)

const char *
t_fake_apiserver_bin(void)
{
	const char *b = getenv("FAKE_APISERVER");

	return b != NULL && *b != '\0' ? b : "build/fake-apiserver";
}

int
t_kube_start(struct t_kube *k, const char *const extra_args[])
{
	const char *argv[48];
	char line[1024], *tmp, *tok;
	const char *at;
	size_t n = 0;
	int r;

	memset(k, 0, sizeof(*k));
	if ((tmp = t_tmpdir()) == NULL)
		return -errno;
	snprintf(k->dir, sizeof(k->dir), "%s", tmp);
	free(tmp);
	snprintf(k->kubeconfig, sizeof(k->kubeconfig), "%s/kubeconfig", k->dir);
	snprintf(k->ca, sizeof(k->ca), "%s/ca.crt", k->dir);
	snprintf(k->sa_pub, sizeof(k->sa_pub), "%s/sa.pub", k->dir);
	snprintf(k->log, sizeof(k->log), "%s/fake.log", k->dir);
	argv[n++] = t_fake_apiserver_bin();
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--dir";
	argv[n++] = k->dir;
	for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL && n < 47; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;
	if ((r = t_spawn(&k->proc, argv, NULL, k->log)) < 0)
		return r;
	if (!t_wait_log(&k->proc, "\"msg\":\"listening\"", T_DEADLINE_MS, line, sizeof(line)))
		return -ETIMEDOUT;
	if ((at = strstr(line, "\"addr\":\"https://127.0.0.1:")) == NULL)
		return -EPROTO;
	k->port = atoi(at + strlen("\"addr\":\"https://127.0.0.1:"));
	snprintf(k->addr, sizeof(k->addr), "https://127.0.0.1:%d", k->port);
	if ((tok = t_read_file(t_path(k->dir, "token"))) == NULL)
		return -ENOENT;
	snprintf(k->token, sizeof(k->token), "%s", tok);
	free(tok);
	return k->port > 0 ? 0 : -EPROTO;
}

int
t_kube_stop(struct t_kube *k)
{
	int status = -1;

	if (k->proc.pid != 0)
		status = t_stop(&k->proc, SIGTERM, 10000);
	/* a server that did not stop cleanly (a crash, a sanitizer report): show why */
	if (k->proc.pid != 0 && status != 0 && k->log[0] != '\0') {
		char *log = t_read_file(k->log);

		fprintf(stderr, "fake-apiserver exit status %d; its log:\n%s\n", status, log != NULL ? log : "");
		free(log);
	}
	if (k->dir[0] != '\0') {
		t_rmrf(k->dir);
		k->dir[0] = '\0';
	}
	return status;
}

struct buf {
	char *data;
	size_t len;
	const char *needle;     /* stop once the body holds it */
};

static size_t
collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct buf *b = userdata;
	size_t n = size * nmemb;
	char *nd;

	if (b->len + n > KUBE_BODY_MAX)
		return 0;
	if ((nd = realloc(b->data, b->len + n + 1)) == NULL)
		return 0;
	memcpy(nd + b->len, ptr, n);
	b->data = nd;
	b->len += n;
	b->data[b->len] = '\0';
	if (b->needle != NULL && strstr(b->data, b->needle) != NULL)
		return 0;       /* enough: ends the transfer */
	return n;
}

static long
request(struct t_kube *k, const char *token, const char *method, const char *path,
	const char *content_type, const char *body, const char *needle, long timeout_ms,
	char **ret_body, char **ret_headers)
{
	struct curl_slist *headers = NULL;
	struct buf b = { .needle = needle }, h = { 0 };
	char url[1024], hdr[1200];
	long status = 0;
	CURL *c = curl_easy_init();
	CURLcode rc;

	if (c == NULL)
		return 0;
	snprintf(url, sizeof(url), "%s%s", k->addr, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_CAINFO, k->ca);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	if (token == T_KUBE_ADMIN)
		token = k->token;
	if (token != NULL) {
		snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
		headers = curl_slist_append(headers, hdr);
	}
	headers = curl_slist_append(headers, "Accept: application/json");
	if (body != NULL) {
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", content_type != NULL ? content_type : "application/json");
		headers = curl_slist_append(headers, hdr);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	rc = curl_easy_perform(c);
	/* a stream ended by us (needle found) or by the timeout still has its status */
	if (rc == CURLE_OK || rc == CURLE_WRITE_ERROR || rc == CURLE_OPERATION_TIMEDOUT ||
	    rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	if (ret_body != NULL)
		*ret_body = b.data;
	else
		free(b.data);
	if (ret_headers != NULL)
		*ret_headers = h.data;
	else
		free(h.data);
	return status;
}

long
t_kube_req(struct t_kube *k, const char *token, const char *method, const char *path,
	   const char *content_type, const char *body, char **ret_body, char **ret_headers)
{
	return request(k, token, method, path, content_type, body, NULL, 30000, ret_body, ret_headers);
}

long
t_kube_json(struct t_kube *k, const char *method, const char *path, const char *content_type,
	    const char *body, json_t **ret_json)
{
	char *text = NULL;
	long status = t_kube_req(k, T_KUBE_ADMIN, method, path, content_type, body, &text, NULL);

	if (ret_json != NULL)
		*ret_json = text != NULL ? json_loads(text, 0, NULL) : NULL;
	free(text);
	return status;
}

long
t_kube_stream(struct t_kube *k, const char *path, const char *needle, long timeout_ms, char **ret_body)
{
	return request(k, T_KUBE_ADMIN, "GET", path, NULL, NULL, needle, timeout_ms, ret_body, NULL);
}

int
t_kube_fault(struct t_kube *k, const char *spec)
{
	return t_kube_req(k, T_KUBE_ADMIN, "POST", "/fake/faults", NULL, spec, NULL, NULL) == 200 ? 0 : -EINVAL;
}

json_t *
t_kube_stats(struct t_kube *k)
{
	json_t *j = NULL;

	return t_kube_json(k, "GET", "/fake/stats", NULL, NULL, &j) == 200 ? j : (json_decref(j), NULL);
}

int
t_kube_stats_reset(struct t_kube *k)
{
	return t_kube_req(k, T_KUBE_ADMIN, "DELETE", "/fake/stats", NULL, NULL, NULL, NULL) == 200 ? 0 : -EIO;
}

long
t_kube_writes_in(struct t_kube *k, const char *resource, const char *ns)
{
	json_t *s = t_kube_stats(k), *w;
	long n = s != NULL ? 0 : -1;
	size_t i;

	json_array_foreach(json_object_get(s, "writes"), i, w) {
		const char *res = json_string_value(json_object_get(w, "resource"));
		const char *wns = json_string_value(json_object_get(w, "namespace"));

		if (!json_is_true(json_object_get(w, "system")) && res != NULL && strcmp(res, resource) == 0 &&
		    wns != NULL && strcmp(wns, ns) == 0)
			n += (long)json_integer_value(json_object_get(w, "count"));
	}
	json_decref(s);
	return n;
}

long
t_kube_writes(struct t_kube *k, const char *resource)
{
	json_t *s = t_kube_stats(k);
	long n = s != NULL ? (long)json_integer_value(json_object_get(json_object_get(s, "writes_by_resource"),
								       resource)) : -1;

	json_decref(s);
	return n;
}
