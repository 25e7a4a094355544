/* manifest.h — Kubernetes manifests in YAML or JSON, as jansson values, and the naming
 * rules of the objects in them.
 *
 * YAML is read with libyaml and turned into the JSON value Kubernetes would see:
 * YAML 1.1 plain scalars resolve to null, booleans (true/false/yes/no/on/off/y/n in their
 * usual cases), integers (decimal, 0x, 0 octal, 0b, with '_') and floats; quoted and block
 * scalars are strings; values under `data` and `stringData` of a resource (the root, or
 * an item of a List) are always strings, as the API server decodes them into strings.
 * Aliases are refused (no billion laughs), duplicate keys are refused, only scalar keys
 * are accepted, and input size, nesting depth and node count are bounded. JSON input
 * (first character '{' or '[') is read with jansson.
 *
 * Messages in struct lk_error have the form "NAME:LINE:COLUMN: what" and never quote a
 * value.
 */
#ifndef LK_MANIFEST_H
#define LK_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* The largest manifest read: far above any Secret the API server accepts (1 MiB). */
#define LK_MANIFEST_MAX (4u << 20)
/* The deepest nesting of mappings and sequences. */
#define LK_MANIFEST_DEPTH_MAX 64
/* The most nodes (scalars, mappings, sequences) in one input. */
#define LK_MANIFEST_NODES_MAX 200000

enum lk_manifest_format { LK_MANIFEST_YAML, LK_MANIFEST_JSON };

struct lk_manifest_doc {
	json_t *root;        /* borrowed during the callback; json_incref to keep it */
	unsigned index;      /* 1-based document number */
	unsigned line;       /* 1-based line where the document's content starts */
	json_t *key_lines;   /* borrowed: the root mapping's keys → their 1-based lines */
};

typedef int (*lk_manifest_doc_fn)(const struct lk_manifest_doc *doc, void *arg);

/* Parses text holding exactly one document whose root is a mapping. name names the
 * input in messages. *ret is a new reference (json_decref). A second document is refused
 * with a message naming it. Returns 0 or a negative errno (-EINVAL, -E2BIG, -ENOMEM). */
int lk_manifest_parse(const char *text, size_t len, const char *name, json_t **ret,
		      enum lk_manifest_format *ret_format, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Parses every document in turn (empty documents are skipped) and calls fn on each; a
 * non-zero return from fn stops and is returned. */
int lk_manifest_parse_all(const char *text, size_t len, const char *name, lk_manifest_doc_fn fn,
			  void *arg, struct lk_error *err) __attribute__((warn_unused_result));

/* Same, for scanners that must not miss a Secret the strict reader refuses: aliases are
 * read as null (never expanded), a repeated key is kept as "KEY (duplicate N)" instead of
 * refusing the document, and JSON that jansson refuses is read as YAML flow syntax. Not
 * for reading manifests that are acted on. */
int lk_manifest_parse_all_lenient(const char *text, size_t len, const char *name,
				  lk_manifest_doc_fn fn, void *arg, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Serializes root (an object) as YAML or as indented JSON, ending with a newline. *ret is
 * owned: free with free(). Strings that YAML 1.1 would read as something else are quoted,
 * so that parsing the output gives root back. */
int lk_manifest_dump(const json_t *root, enum lk_manifest_format format, char **ret,
		     size_t *ret_len, struct lk_error *err) __attribute__((warn_unused_result));

/* ---- names (Kubernetes' validation rules) ----------------------------------------- */

/* The longest Secret data key and object name (DNS-1123 subdomain). */
#define LK_MANIFEST_NAME_MAX 253
/* The longest namespace (DNS-1123 label). */
#define LK_MANIFEST_LABEL_MAX 63

/* A Secret data key: [-._a-zA-Z0-9]+, at most 253 bytes, as the API server checks it. */
bool lk_manifest_secret_key_valid(const char *key, size_t len);

/* A DNS-1123 subdomain (object names): lowercase alphanumerics, '-' and '.', starting and
 * ending with an alphanumeric, each dot-separated part too, at most 253 bytes. */
bool lk_manifest_subdomain_valid(const char *s);

/* A DNS-1123 label (namespaces): lowercase alphanumerics and '-', starting and ending
 * with an alphanumeric, at most 63 bytes. */
bool lk_manifest_label_valid(const char *s);

#endif
