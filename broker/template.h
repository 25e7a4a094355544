/* template.h — the template language of rendered files and of exec-mode environment
 * values: a small subset of Go's text/template, which Vault Agent (consul-template) users
 * already write. docs/broker.md ("Templates") is the user's reference.
 *
 *   {{ with secret "db" }}{{ .Data.username }}{{ end }}    a secret by its configured name
 *   {{ .db.username }}                                     the same, as a shorthand
 *   {{ .db.password | json }}                              escaped for JSON (also shell, yaml,
 *                                                          url, base64)
 *   {{ range $k, $v := .api.Data }}{{ $k }}={{ $v | shell }}{{ end }}
 *   {{ if .api.debug }}…{{ else }}…{{ end }}, {{ index .db.Data "key-with-dash" }},
 *   {{- … -}} trims the blanks around an action; a comment is an action holding only a
 *   C-style comment, as in Go
 *
 * There is nothing that runs a command, reads a file or reaches the network: the only
 * data are the secrets the broker holds. A template names the secrets it reads with
 * literals, so compiling it tells which secrets it depends on (and refuses names that are
 * not configured); a missing key is found when rendering, and its error names the
 * template, the line and the key, never a value. Rendering is bounded in steps and in
 * output (the caller's buffer cap).
 */
#ifndef LK_BROKER_TEMPLATE_H
#define LK_BROKER_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"

/* Deepest nesting of with/if/range blocks and parentheses. */
#define BROKER_TPL_DEPTH_MAX 32
/* Most actions and text pieces in one template. */
#define BROKER_TPL_NODES_MAX 16384
/* Most evaluation steps (actions run, range iterations) of one render. */
#define BROKER_TPL_STEPS_MAX 1000000
/* Most range variables in scope at once. */
#define BROKER_TPL_VARS_MAX 32
/* Longest origin name kept for messages (a file path, or "FILE: KEY.PATH"). */
#define BROKER_TPL_ORIGIN_MAX 512

struct broker_template;

/* Compiles text (len bytes; it need not be NUL-terminated) into *ret.
 *   origin  names the template in every message: its file, or the config key holding it
 *   names   the configured secret names (nnames of them), in configuration order: the
 *           indexes used by broker_template_render and broker_template_reads
 *   self    for a secret's own file: its index, and the template's root (".") is that
 *           secret (".KEY" and the older "{{ KEY }}" name its keys); SIZE_MAX for a
 *           template of its own, whose root holds every secret by name (".NAME.KEY")
 * owned: free with broker_template_free. On error (-EINVAL, -E2BIG, -ENOMEM) err says
 * "ORIGIN:LINE: what". */
int broker_template_compile(const char *text, size_t len, const char *origin,
			    const char *const *names, size_t nnames, size_t self,
			    struct broker_template **ret, struct lk_error *err)
	__attribute__((warn_unused_result));

/* NULL allowed; returns NULL. */
struct broker_template *broker_template_free(struct broker_template *t);

/* True when the template reads secret index i. */
bool broker_template_reads(const struct broker_template *t, size_t i);
/* How many secrets it reads, and the n-th of them (an index into names). */
size_t broker_template_ndeps(const struct broker_template *t);
size_t broker_template_dep(const struct broker_template *t, size_t n);

/* Renders into out. data[i] is secret i's data object (borrowed) and versions[i] its
 * version, for every i the template reads (others may be NULL); n is the size of both
 * arrays. Returns 0, or with err set: -ENOENT (a missing key or member), -EAGAIN (a secret
 * it reads has no data), -EINVAL (a value of the wrong kind, a NUL byte a context cannot
 * carry), -ELOOP (too many steps), -E2BIG (out's cap), -ENOMEM. Never puts a value in err. */
int broker_template_render(const struct broker_template *t, const json_t *const *data,
			   const uint64_t *versions, size_t n, struct lk_buf *out,
			   struct lk_error *err) __attribute__((warn_unused_result));

#endif
