/* fakekube.h — the test Kubernetes API server (build/fake-apiserver) for suites that need
 * one: start it on a free port in a temporary directory, talk to it over HTTPS with
 * libcurl (its CA, its admin token), set faults, read its counters, stop it.
 *
 * Self-contained on libcurl and jansson; shares nothing with k8s/. The server dies with
 * the test process (t_spawn), and t_kube_stop stops it and removes its directory.
 */
#ifndef LK_FAKEKUBE_H
#define LK_FAKEKUBE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "testutil.h"

struct t_kube {
	struct t_proc proc;
	char dir[512];          /* --dir: kubeconfig, ca.crt, token, sa.pub; also fake.log */
	char kubeconfig[600];
	char ca[600];
	char sa_pub[600];
	char log[600];
	char addr[128];         /* "https://127.0.0.1:PORT" */
	char token[128];        /* the admin token */
	int port;
};

/* The server under test: $FAKE_APISERVER, else build/fake-apiserver. */
const char *t_fake_apiserver_bin(void);

/* Starts `fake-apiserver --listen 127.0.0.1:0 --dir <tmp>` plus extra_args (NULL-terminated,
 * may be NULL) and waits for its "listening" line. 0 or -errno. */
int t_kube_start(struct t_kube *k, const char *const extra_args[]);
/* SIGTERM, wait, remove the directory; returns the exit status as t_stop does. Safe twice. */
int t_kube_stop(struct t_kube *k);

/* One HTTPS request to path ("/api/v1/..."), verified against the fake's CA, with
 * Authorization: Bearer token (NULL: none; T_KUBE_ADMIN: the admin token). content_type
 * NULL means application/json when there is a body. Returns the HTTP status (0 on a
 * transport failure); *ret_body malloc'd (may be NULL), *ret_headers too when not NULL. */
#define T_KUBE_ADMIN ((const char *)1)
long t_kube_req(struct t_kube *k, const char *token, const char *method, const char *path,
		const char *content_type, const char *body, char **ret_body, char **ret_headers);
/* The same as the admin, the body parsed: *ret_json a new reference or NULL. */
long t_kube_json(struct t_kube *k, const char *method, const char *path, const char *content_type,
		 const char *body, json_t **ret_json);

/* Reads a streaming GET (a watch) as the admin until its body holds needle (NULL: until
 * the server ends it) or timeout_ms passes. Returns the status; *ret_body as read. */
long t_kube_stream(struct t_kube *k, const char *path, const char *needle, long timeout_ms,
		   char **ret_body);

/* POST /fake/faults with spec (JSON text); 0 when the server took it. */
int t_kube_fault(struct t_kube *k, const char *spec);
/* GET /fake/stats (new reference or NULL); DELETE /fake/stats resets the counters. */
json_t *t_kube_stats(struct t_kube *k);
int t_kube_stats_reset(struct t_kube *k);
/* Writes by clients of a resource ("secrets", "widgets.fake.latchkey.io"), from the stats. */
long t_kube_writes(struct t_kube *k, const char *resource);
/* The same, in namespace ns only (resource without its group: "secrets"). */
long t_kube_writes_in(struct t_kube *k, const char *resource, const char *ns);

#endif
