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
 * template, the line and the key, never a value (a key is shown only when it is a name: a
 * literal or a range key). Rendering is bounded in steps, in bytes of work and in output
 * (the caller's buffer cap).
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
/* Most bytes of work of one render: every text written, every escaping function's input
 * and result, every value written as JSON text. Steps alone do not bound the time, as one
 * step can escape megabytes; this does (well under a second of CPU). */
#define BROKER_TPL_WORK_MAX (64u << 20)
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
/* The configured name of secret index i, for messages (borrowed: valid while t is); "" when
 * i is out of range. */
const char *broker_template_secret_name(const struct broker_template *t, size_t i);

/* Renders into out. data[i] is secret i's data object (borrowed) and versions[i] its
 * version, for every i the template reads (others may be NULL); n is the size of both
 * arrays. Returns 0, or with err set: -ENOENT (a missing key or member), -EAGAIN (a secret
 * it reads has no data), -EINVAL (a value of the wrong kind, a NUL byte a context cannot
 * carry, text that is not UTF-8 to yaml), -ELOOP (too many steps, or too much work),
 * -EMSGSIZE (a function's result past 4 MiB), -E2BIG (out's cap), -ENOMEM. Never puts a
 * value in err. A value holding a NUL byte is written only escaped (json, yaml). */
int broker_template_render(const struct broker_template *t, const json_t *const *data,
			   const uint64_t *versions, size_t n, struct lk_buf *out,
			   struct lk_error *err) __attribute__((warn_unused_result));

/* What one render used: its steps, and its bytes of work (BROKER_TPL_WORK_MAX). */
struct broker_template_usage {
	unsigned long steps;
	uint64_t bytes;
};

/* broker_template_render that also tells, in *usage, what the render used, whether
 * it succeeded or not (for the limits' tests and for diagnostics). */
int broker_template_render_usage(const struct broker_template *t, const json_t *const *data,
				 const uint64_t *versions, size_t n, struct lk_buf *out,
				 struct broker_template_usage *usage, struct lk_error *err)
	__attribute__((warn_unused_result));

#endif
