/* syncfx.h — the fixture of the `latchkey sync` suites: the test API server with the
 * CRDs, `latchkey dev`, up to two controllers (the real binary), and the waits their
 * tests share. Every helper fails the test (ck_assert) on what it cannot do. */
#ifndef LK_TEST_SYNCFX_H
#define LK_TEST_SYNCFX_H

#include <jansson.h>
#include <stdbool.h>

#include "fakekube.h"
#include "testutil.h"

struct t_sfx {
	struct t_kube kube;
	struct t_dev dev;
	struct t_proc ctl[2];
	char *dir;
	int metrics_port[2];
};

/* Starts the API server (CRDs from LATCHKEY_SRCDIR/deploy/crds and, when extra_crds is
 * not NULL, that glob too) and latchkey dev, and creates the namespaces (NULL-terminated). */
void t_sfx_start(struct t_sfx *f, const char *extra_crds, const char *const namespaces[]);
/* Stops every controller (each must exit 0 on SIGTERM), the backend and the API server. */
void t_sfx_stop(struct t_sfx *f);
/* Starts controller i: `latchkey sync --kubeconfig ... --metrics 127.0.0.1:0
 * --controller-namespace NS --log-level debug` plus extra (NULL-terminated, may be NULL);
 * returns once it runs, its metrics port in f->metrics_port[i]. */
void t_sfx_ctl_start(struct t_sfx *f, int i, const char *controller_ns, const char *const extra[]);

/* A request to the API server: the answer (new reference or NULL); want 0 takes any. */
json_t *t_sfx_kube(struct t_sfx *f, const char *method, const char *path, const char *body, long want);
/* A JSON merge patch (what kubectl patch --type=merge sends). */
json_t *t_sfx_patch(struct t_sfx *f, const char *path, const char *body, long want);
/* GET path: the object, or NULL when the answer is not 200. */
json_t *t_sfx_get(struct t_sfx *f, const char *path);
void t_sfx_ns_create(struct t_sfx *f, const char *ns);
/* Creates the manifests of every file matching pattern under LATCHKEY_SRCDIR. */
void t_sfx_apply_crds(struct t_sfx *f, const char *pattern);
/* Creates each manifest of a YAML or JSON text at its kind's endpoint (namespace from the
 * manifest, else ns). */
void t_sfx_apply(struct t_sfx *f, const char *ns, const char *text);

/* A request to latchkey dev with its root token: the status. */
long t_sfx_dev(struct t_sfx *f, const char *method, const char *path, const char *body);
/* Writes data (a JSON object) at secret/data/PATH (KV v2). */
void t_sfx_kv_put(struct t_sfx *f, const char *path, const char *data);

/* The decoded data[key] of Secret ns/name (owned, NUL-terminated), or NULL. */
char *t_sfx_secret_value(struct t_sfx *f, const char *ns, const char *name, const char *key);
/* Waits until data[key] of ns/name is value (NULL: the key or the Secret is gone). */
void t_sfx_wait_value(struct t_sfx *f, const char *ns, const char *name, const char *key,
		      const char *value);
/* Waits until the condition type of the object at path has status ("True"/"False") and,
 * when needle is not NULL, a message holding it. The last message seen goes into msg. */
void t_sfx_wait_condition(struct t_sfx *f, const char *path, const char *type, const char *status,
			  const char *needle);
/* The controller's /metrics page (owned), or NULL. */
char *t_sfx_metrics(struct t_sfx *f, int i);

#endif
