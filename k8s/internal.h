/* internal.h — what the files of k8s/ share (not for other modules). */
#ifndef LK_K8S_INTERNAL_H
#define LK_K8S_INTERNAL_H

#include <pthread.h>

#include "http/http.h"
#include "k8s/k8s.h"

/* One call of the client. Everything is borrowed for the call. */
struct k8s_call {
	const char *verb;               /* for messages and the observer: "get", "list", ... */
	const char *method;             /* HTTP method */
	const struct lk_k8s_resource *res;
	const char *ns, *name, *sub;
	const char *query;              /* already encoded, without '?'; may be NULL */
	const char *path;               /* instead of res/ns/name/sub: "/apis/G/V" */
	const json_t *body;             /* NULL: none */
	const char *content_type;       /* of the body; NULL: application/json */
	size_t max_body;                /* 0: LK_K8S_RESPONSE_MAX */
	bool wipe;                      /* the answer may hold secret data */
	int64_t timeout_ms;             /* 0: the client's */
	bool no_retry;                  /* watches: the caller handles failures */
	/* A stream (watches): the body is handed over as it arrives; ret stays NULL. */
	int (*on_data)(void *arg, const char *p, size_t n);
	void *arg;
	const volatile bool *cancel;    /* ends the call soon after it turns true */
};

/* Makes the call with rate limiting, the bearer token and the retries of k8s.h; parses a
 * 2xx JSON body into *ret (ret may be NULL), a failure's Status into err. */
int k8s_call(struct lk_k8s_client *c, const struct k8s_call *call, json_t **ret,
	     struct lk_k8s_error *err);

/* The default namespace the client's configuration names (may be NULL). Borrowed. */
const char *k8s_client_namespace(const struct lk_k8s_client *c);

/* Sleeps ms, in slices, returning early when *stop turns true (may be NULL). */
void k8s_sleep_ms(int64_t ms, const volatile bool *stop);

/* A watch body fed to an informer that is never started (no thread, no client; its cache
 * empty, as lk_k8s_informer_start leaves it), chunk bytes per call of the stream callback
 * as the transport would hand them over (0: all at once), then freed. cfg gives the
 * transform and the handlers (NULL: none; its resource, namespace and selector are not
 * used). Returns what watch() decides from the stream alone: 0 (a clean end), -ESTALE (an
 * ERROR event with a 410 Status), -EBADMSG (another ERROR, or an event that could not be
 * read), or -ENOMEM; *ret_cached (when not NULL) gets the number of objects cached at the
 * end. For tests/fuzz/fuzz_k8s_watch.c. */
int k8s_informer_feed(const struct lk_k8s_informer_config *cfg, const char *p, size_t n,
		      size_t chunk, size_t *ret_cached);

#endif
