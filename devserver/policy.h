/* policy.h — ACL policies of `latchkey dev`: a small subset of Vault's HCL, or the same
 * in JSON ({"path": {"<pattern>": {"capabilities": [...]}}}), as Vault also reads.
 *
 * A policy is a list of path blocks:
 *
 *   # comment
 *   path "secret/data/+/config" {
 *     capabilities = ["read", "list"]
 *   }
 *
 * A pattern may end in a star (a prefix glob) and may use `+` as a whole segment (any one
 * segment). The legacy `policy = "read"` shorthand is understood; other keys inside a
 * block (allowed_parameters, ...) are parsed and ignored. Which rule applies to a path
 * follows Vault's "most specific pattern wins" order, and `deny` beats everything.
 */
#ifndef LK_DEVSERVER_POLICY_H
#define LK_DEVSERVER_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* Longest policy document accepted. */
#define DEV_POLICY_TEXT_MAX (64u << 10)
/* Most path blocks in one policy. */
#define DEV_POLICY_RULES_MAX 256
/* Longest path pattern. */
#define DEV_POLICY_PATTERN_MAX 512
/* Deepest nesting of the values of ignored keys. */
#define DEV_POLICY_DEPTH_MAX 8

enum {
	DEV_CAP_CREATE = 1u << 0,
	DEV_CAP_READ   = 1u << 1,
	DEV_CAP_UPDATE = 1u << 2,
	DEV_CAP_DELETE = 1u << 3,
	DEV_CAP_LIST   = 1u << 4,
	DEV_CAP_SUDO   = 1u << 5,
	DEV_CAP_DENY   = 1u << 6,
	DEV_CAP_PATCH  = 1u << 7,
};

struct dev_policy_rule {
	char *pattern;     /* owned */
	unsigned caps;     /* DEV_CAP_* bits */
};

struct dev_policy {
	struct dev_policy_rule *rules; /* owned */
	size_t n;
};

/* Parses len bytes of text (need not be NUL-terminated). *ret is owned: free with
 * dev_policy_free. Errors name the line and what was expected. */
int dev_policy_parse(const char *text, size_t len, struct dev_policy **ret,
		     struct lk_error *err) __attribute__((warn_unused_result));

/* NULL allowed. */
void dev_policy_free(struct dev_policy *p);

/* True when pattern matches path (no leading slash on either). */
bool dev_policy_match(const char *pattern, const char *path);

/* Positive when pattern a takes priority over b, negative when b does, 0 when equal. */
int dev_policy_priority(const char *a, const char *b);

/* The capabilities the policies in set (n of them, NULL entries skipped) grant on path:
 * the union over rules carrying the most specific matching pattern; 0 when that union
 * holds deny or nothing matches. */
unsigned dev_policy_caps(const struct dev_policy *const *set, size_t n, const char *path);

#endif
