/* policy.c — Vault ACL policies in the HCL subset or in JSON, and path matching. */
#include "devserver/policy.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "devserver/internal.h"

enum tok_type { TOK_EOF, TOK_IDENT, TOK_STRING, TOK_NUMBER, TOK_PUNCT, TOK_ERROR };

struct lexer {
	const char *p;
	size_t len;
	size_t pos;
	unsigned line;
	/* the current token */
	enum tok_type type;
	char punct;
	char text[DEV_POLICY_PATTERN_MAX + 1];
	const char *error;
};

static void
skip_space(struct lexer *lx)
{
	while (lx->pos < lx->len) {
		char c = lx->p[lx->pos];

		if (c == '\n') {
			lx->line++;
			lx->pos++;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			lx->pos++;
		} else if (c == '#' || (c == '/' && lx->pos + 1 < lx->len && lx->p[lx->pos + 1] == '/')) {
			while (lx->pos < lx->len && lx->p[lx->pos] != '\n')
				lx->pos++;
		} else if (c == '/' && lx->pos + 1 < lx->len && lx->p[lx->pos + 1] == '*') {
			lx->pos += 2;
			while (lx->pos < lx->len &&
			       !(lx->p[lx->pos] == '*' && lx->pos + 1 < lx->len && lx->p[lx->pos + 1] == '/')) {
				if (lx->p[lx->pos] == '\n')
					lx->line++;
				lx->pos++;
			}
			lx->pos = lx->pos + 2 > lx->len ? lx->len : lx->pos + 2;
		} else {
			break;
		}
	}
}

static void
next(struct lexer *lx)
{
	size_t n = 0;
	char c;

	skip_space(lx);
	lx->text[0] = '\0';
	if (lx->pos >= lx->len) {
		lx->type = TOK_EOF;
		return;
	}
	c = lx->p[lx->pos];
	if (strchr("{}[]=,", c) != NULL && c != '\0') {
		lx->type = TOK_PUNCT;
		lx->punct = c;
		lx->pos++;
		return;
	}
	if (c == '"') {
		lx->pos++;
		for (;;) {
			if (lx->pos >= lx->len || lx->p[lx->pos] == '\n') {
				lx->type = TOK_ERROR;
				lx->error = "unterminated string";
				return;
			}
			c = lx->p[lx->pos++];
			if (c == '"')
				break;
			if (c == '\\') {
				if (lx->pos >= lx->len) {
					lx->type = TOK_ERROR;
					lx->error = "unterminated string";
					return;
				}
				c = lx->p[lx->pos++];
				if (c == 'n')
					c = '\n';
				else if (c == 't')
					c = '\t';
				else if (c != '"' && c != '\\' && c != '/') {
					lx->type = TOK_ERROR;
					lx->error = "unsupported escape in string";
					return;
				}
			}
			if (c == '\0' || n >= DEV_POLICY_PATTERN_MAX) {
				lx->type = TOK_ERROR;
				lx->error = c == '\0' ? "NUL byte in string" : "string too long";
				return;
			}
			lx->text[n++] = c;
		}
		lx->text[n] = '\0';
		lx->type = TOK_STRING;
		return;
	}
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9') ||
	    c == '-') {
		bool digits = true;

		while (lx->pos < lx->len) {
			c = lx->p[lx->pos];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-' ||
			      c == '.' || (c >= '0' && c <= '9')))
				break;
			if (!(c >= '0' && c <= '9') && !(n == 0 && c == '-') && c != '.')
				digits = false;
			if (n >= DEV_POLICY_PATTERN_MAX) {
				lx->type = TOK_ERROR;
				lx->error = "word too long";
				return;
			}
			lx->text[n++] = c;
			lx->pos++;
		}
		lx->text[n] = '\0';
		lx->type = digits ? TOK_NUMBER : TOK_IDENT;
		return;
	}
	lx->type = TOK_ERROR;
	lx->error = "unexpected character";
}

static bool
is_punct(const struct lexer *lx, char c)
{
	return lx->type == TOK_PUNCT && lx->punct == c;
}

static int
fail(struct lexer *lx, struct lk_error *err, const char *what)
{
	if (lx->type == TOK_ERROR)
		return lk_error_set(err, -EINVAL, "policy: line %u: %s", lx->line, lx->error);
	return lk_error_set(err, -EINVAL, "policy: line %u: expected %s", lx->line, what);
}

static int parse_body(struct lexer *lx, struct dev_policy_rule *rule, unsigned depth,
		      struct lk_error *err);

/* A value whose meaning is ignored: string, number, word, list or object. */
static int
skip_value(struct lexer *lx, unsigned depth, struct lk_error *err)
{
	if (depth > DEV_POLICY_DEPTH_MAX)
		return lk_error_set(err, -EINVAL, "policy: line %u: values nested too deeply", lx->line);
	if (lx->type == TOK_STRING || lx->type == TOK_NUMBER || lx->type == TOK_IDENT) {
		next(lx);
		return 0;
	}
	if (is_punct(lx, '[')) {
		next(lx);
		while (!is_punct(lx, ']')) {
			int r = skip_value(lx, depth + 1, err);
			if (r < 0)
				return r;
			if (is_punct(lx, ','))
				next(lx);
			else if (!is_punct(lx, ']'))
				return fail(lx, err, "',' or ']'");
		}
		next(lx);
		return 0;
	}
	if (is_punct(lx, '{')) {
		next(lx);
		int r = parse_body(lx, NULL, depth + 1, err);
		if (r < 0)
			return r;
		if (!is_punct(lx, '}'))
			return fail(lx, err, "'}'");
		next(lx);
		return 0;
	}
	return fail(lx, err, "a value");
}

static unsigned
cap_bit(const char *name)
{
	static const struct { const char *name; unsigned bit; } caps[] = {
		{ "create", DEV_CAP_CREATE }, { "read", DEV_CAP_READ }, { "update", DEV_CAP_UPDATE },
		{ "delete", DEV_CAP_DELETE }, { "list", DEV_CAP_LIST }, { "sudo", DEV_CAP_SUDO },
		{ "deny", DEV_CAP_DENY }, { "patch", DEV_CAP_PATCH },
	};

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (strcmp(name, caps[i].name) == 0)
			return caps[i].bit;
	return 0;
}

/* The legacy shorthand: policy = "read" | "write" | "deny" | "sudo". */
static unsigned
legacy_bits(const char *name)
{
	const unsigned rw = DEV_CAP_CREATE | DEV_CAP_READ | DEV_CAP_UPDATE | DEV_CAP_DELETE |
	    DEV_CAP_LIST;

	if (strcmp(name, "read") == 0)
		return DEV_CAP_READ | DEV_CAP_LIST;
	if (strcmp(name, "write") == 0)
		return rw;
	if (strcmp(name, "deny") == 0)
		return DEV_CAP_DENY;
	if (strcmp(name, "sudo") == 0)
		return rw | DEV_CAP_SUDO;
	return 0;
}

/* key = value pairs up to (not including) the closing '}'. rule is NULL inside ignored
 * objects. */
static int
parse_body(struct lexer *lx, struct dev_policy_rule *rule, unsigned depth, struct lk_error *err)
{
	int r;

	while (!is_punct(lx, '}')) {
		char key[64];

		if (lx->type != TOK_IDENT && lx->type != TOK_STRING)
			return fail(lx, err, "a key or '}'");
		if (strlen(lx->text) >= sizeof(key))
			return lk_error_set(err, -EINVAL, "policy: line %u: key too long", lx->line);
		strcpy(key, lx->text);
		next(lx);
		if (!is_punct(lx, '='))
			return fail(lx, err, "'='");
		next(lx);
		if (rule != NULL && strcmp(key, "capabilities") == 0) {
			if (!is_punct(lx, '['))
				return fail(lx, err, "a list of capabilities");
			next(lx);
			while (!is_punct(lx, ']')) {
				unsigned bit;

				if (lx->type != TOK_STRING)
					return fail(lx, err, "a capability string");
				bit = cap_bit(lx->text);
				if (bit == 0)
					return lk_error_set(err, -EINVAL,
					    "policy: line %u: unknown capability \"%.64s\"", lx->line, lx->text);
				rule->caps |= bit;
				next(lx);
				if (is_punct(lx, ','))
					next(lx);
				else if (!is_punct(lx, ']'))
					return fail(lx, err, "',' or ']'");
			}
			next(lx);
		} else if (rule != NULL && strcmp(key, "policy") == 0) {
			unsigned bits;

			if (lx->type != TOK_STRING)
				return fail(lx, err, "a policy string");
			bits = legacy_bits(lx->text);
			if (bits == 0)
				return lk_error_set(err, -EINVAL,
				    "policy: line %u: unknown policy \"%.64s\"", lx->line, lx->text);
			rule->caps |= bits;
			next(lx);
		} else {
			r = skip_value(lx, depth + 1, err);
			if (r < 0)
				return r;
		}
		if (is_punct(lx, ','))
			next(lx);
		if (lx->type == TOK_EOF || lx->type == TOK_ERROR)
			return fail(lx, err, "'}'");
	}
	return 0;
}

/* `*` only at the end; `+` only as a whole segment. */
static bool
pattern_valid(const char *p)
{
	size_t n = strlen(p);

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '*' && i != n - 1)
			return false;
		if (p[i] == '+' && ((i > 0 && p[i - 1] != '/') ||
				    (i + 1 < n && p[i + 1] != '/' && p[i + 1] != '*')))
			return false;
	}
	return true;
}

/* Appends rule (its pattern owned; freed on failure). */
static int
rule_append(struct dev_policy *pol, struct dev_policy_rule rule, struct lk_error *err)
{
	struct dev_policy_rule *nr;

	if (pol->n >= DEV_POLICY_RULES_MAX) {
		free(rule.pattern);
		return lk_error_set(err, -E2BIG, "policy: more than %u path blocks",
		    DEV_POLICY_RULES_MAX);
	}
	nr = realloc(pol->rules, (pol->n + 1) * sizeof(*nr));
	if (nr == NULL) {
		free(rule.pattern);
		return lk_error_set(err, -ENOMEM, "policy: out of memory");
	}
	pol->rules = nr;
	pol->rules[pol->n++] = rule;
	return 0;
}

static int
parse_hcl(const char *text, size_t len, struct dev_policy *pol, struct lk_error *err)
{
	struct lexer lx = { .p = text, .len = len, .line = 1 };
	int r = 0;

	next(&lx);
	while (lx.type != TOK_EOF) {
		struct dev_policy_rule rule = { 0 };
		const char *p;

		if (lx.type != TOK_IDENT || strcmp(lx.text, "path") != 0) {
			r = fail(&lx, err, "a path block");
			goto out;
		}
		next(&lx);
		if (lx.type != TOK_STRING) {
			r = fail(&lx, err, "a quoted path pattern");
			goto out;
		}
		p = lx.text[0] == '/' ? lx.text + 1 : lx.text;
		if (!pattern_valid(p)) {
			r = lk_error_set(err, -EINVAL, "policy: line %u: path pattern \"%.128s\": "
			    "'*' may only end it and '+' must be a whole segment", lx.line, lx.text);
			goto out;
		}
		if (pol->n >= DEV_POLICY_RULES_MAX) {
			r = lk_error_set(err, -E2BIG, "policy: more than %u path blocks",
			    DEV_POLICY_RULES_MAX);
			goto out;
		}
		rule.pattern = strdup(p);
		if (rule.pattern == NULL) {
			r = lk_error_set(err, -ENOMEM, "policy: out of memory");
			goto out;
		}
		next(&lx);
		if (is_punct(&lx, '=')) /* `path "x" = { ... }` is also HCL */
			next(&lx);
		if (!is_punct(&lx, '{')) {
			free(rule.pattern);
			r = fail(&lx, err, "'{'");
			goto out;
		}
		next(&lx);
		r = parse_body(&lx, &rule, 0, err);
		if (r < 0) {
			free(rule.pattern);
			goto out;
		}
		next(&lx); /* the '}' */
		r = rule_append(pol, rule, err);
		if (r < 0)
			goto out;
	}
	if (lx.type == TOK_ERROR)
		r = fail(&lx, err, "a path block");
out:
	return r;
}

/* One rule of a JSON policy: pattern → { "capabilities": [...], "policy": "..." } (other
 * keys ignored, as in HCL). */
static int
json_rule(struct dev_policy *pol, const char *pattern, const json_t *block, struct lk_error *err)
{
	struct dev_policy_rule rule = { 0 };
	const json_t *caps = json_object_get(block, "capabilities");
	const json_t *legacy = json_object_get(block, "policy");
	const char *p = pattern[0] == '/' ? pattern + 1 : pattern;
	size_t i;
	json_t *v;

	if (strlen(pattern) > DEV_POLICY_PATTERN_MAX)
		return lk_error_set(err, -EINVAL, "policy: JSON: a path pattern is longer than %u bytes",
		    DEV_POLICY_PATTERN_MAX);
	if (!pattern_valid(p))
		return lk_error_set(err, -EINVAL, "policy: JSON: path pattern \"%.128s\": "
		    "'*' may only end it and '+' must be a whole segment", pattern);
	if (!json_is_object(block))
		return lk_error_set(err, -EINVAL, "policy: JSON: path \"%.128s\": expected an object",
		    pattern);
	if (caps != NULL && !json_is_array(caps))
		return lk_error_set(err, -EINVAL,
		    "policy: JSON: path \"%.128s\": capabilities must be a list of strings", pattern);
	json_array_foreach(caps, i, v) {
		unsigned bit = json_is_string(v) ? cap_bit(json_string_value(v)) : 0;

		if (!json_is_string(v))
			return lk_error_set(err, -EINVAL,
			    "policy: JSON: path \"%.128s\": capabilities must be a list of strings", pattern);
		if (bit == 0)
			return lk_error_set(err, -EINVAL, "policy: JSON: path \"%.128s\": unknown capability \"%.64s\"",
			    pattern, json_string_value(v));
		rule.caps |= bit;
	}
	if (legacy != NULL) {
		unsigned bits = json_is_string(legacy) ? legacy_bits(json_string_value(legacy)) : 0;

		if (bits == 0)
			return lk_error_set(err, -EINVAL,
			    "policy: JSON: path \"%.128s\": policy must be \"read\", \"write\", \"deny\" or \"sudo\"",
			    pattern);
		rule.caps |= bits;
	}
	rule.pattern = strdup(p);
	if (rule.pattern == NULL)
		return lk_error_set(err, -ENOMEM, "policy: out of memory");
	return rule_append(pol, rule, err);
}

/* The rules of one "path" object: { pattern: block | [block, ...], ... }. */
static int
json_paths(struct dev_policy *pol, const json_t *paths, struct lk_error *err)
{
	const char *pattern;
	json_t *block;
	int r;

	if (!json_is_object(paths))
		return lk_error_set(err, -EINVAL, "policy: JSON: \"path\" must map patterns to objects");
	json_object_foreach((json_t *)paths, pattern, block) {
		if (json_is_array(block)) {
			size_t i;
			json_t *b;

			json_array_foreach(block, i, b) {
				if ((r = json_rule(pol, pattern, b, err)) < 0)
					return r;
			}
		} else if ((r = json_rule(pol, pattern, block, err)) < 0) {
			return r;
		}
	}
	return 0;
}

/* A policy in JSON, which Vault's HCL parser also reads:
 * {"path": {"secret/data/+": {"capabilities": ["read"]}}} ("path" may also be a list of
 * such objects). Errors name what is wrong, never quote jansson's view of the text. */
static int
parse_json(const char *text, size_t len, struct dev_policy *pol, struct lk_error *err)
{
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, 0, &jerr), *v;
	const char *key;
	int r = 0;

	if (doc == NULL)
		return lk_error_set(err, -EINVAL, "policy: JSON: %s at line %d, column %d",
		    dev_json_error_words(&jerr), jerr.line, jerr.column);
	if (!json_is_object(doc)) {
		r = lk_error_set(err, -EINVAL, "policy: JSON: expected an object");
		goto out;
	}
	json_object_foreach(doc, key, v) {
		if (strcmp(key, "name") == 0)
			continue;
		if (strcmp(key, "path") != 0) {
			r = lk_error_set(err, -EINVAL,
			    "policy: JSON: unknown top-level key (only \"path\" and \"name\" are allowed)");
			goto out;
		}
		if (json_is_array(v)) {
			size_t i;
			json_t *e;

			json_array_foreach(v, i, e) {
				if ((r = json_paths(pol, e, err)) < 0)
					goto out;
			}
		} else if ((r = json_paths(pol, v, err)) < 0) {
			goto out;
		}
	}
out:
	json_decref(doc);
	return r;
}

int
dev_policy_parse(const char *text, size_t len, struct dev_policy **ret, struct lk_error *err)
{
	struct dev_policy *pol;
	size_t lead = 0;
	int r;

	if (len > DEV_POLICY_TEXT_MAX)
		return lk_error_set(err, -E2BIG, "policy: longer than %u bytes", DEV_POLICY_TEXT_MAX);
	pol = calloc(1, sizeof(*pol));
	if (pol == NULL)
		return lk_error_set(err, -ENOMEM, "policy: out of memory");
	while (lead < len && strchr(" \t\r\n", text[lead]) != NULL && text[lead] != '\0')
		lead++;
	r = lead < len && text[lead] == '{' ? parse_json(text, len, pol, err) :
	    parse_hcl(text, len, pol, err);
	if (r < 0) {
		dev_policy_free(pol);
		return r;
	}
	*ret = pol;
	return 0;
}

void
dev_policy_free(struct dev_policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->rules[i].pattern);
	free(p->rules);
	free(p);
}

bool
dev_policy_match(const char *pattern, const char *path)
{
	size_t i = 0, j = 0;

	while (pattern[i] != '\0') {
		if (pattern[i] == '*' && pattern[i + 1] == '\0')
			return true;
		if (pattern[i] == '+' && (i == 0 || pattern[i - 1] == '/')) {
			if (path[j] == '\0' || path[j] == '/')
				return false;
			while (path[j] != '\0' && path[j] != '/')
				j++;
			i++;
			continue;
		}
		if (path[j] != pattern[i])
			return false;
		i++;
		j++;
	}
	return path[j] == '\0';
}

static size_t
first_wildcard(const char *p)
{
	size_t n = strcspn(p, "+*");

	return n;
}

static unsigned
plus_count(const char *p)
{
	unsigned n = 0;

	for (size_t i = 0; p[i] != '\0'; i++)
		if (p[i] == '+' && (i == 0 || p[i - 1] == '/'))
			n++;
	return n;
}

int
dev_policy_priority(const char *a, const char *b)
{
	size_t wa = first_wildcard(a), wb = first_wildcard(b);
	size_t la = strlen(a), lb = strlen(b);
	bool ga = la > 0 && a[la - 1] == '*', gb = lb > 0 && b[lb - 1] == '*';
	unsigned pa = plus_count(a), pb = plus_count(b);
	int c;

	/* Vault's order: a wildcard earlier loses; a trailing glob loses; more `+` loses;
	 * shorter loses; lexicographically smaller loses. */
	if (wa != wb)
		return wa < wb ? -1 : 1;
	if (ga != gb)
		return ga ? -1 : 1;
	if (pa != pb)
		return pa > pb ? -1 : 1;
	if (la != lb)
		return la < lb ? -1 : 1;
	c = strcmp(a, b);
	return c < 0 ? -1 : c > 0 ? 1 : 0;
}

unsigned
dev_policy_caps(const struct dev_policy *const *set, size_t n, const char *path)
{
	const char *best = NULL;
	unsigned caps = 0;

	for (size_t i = 0; i < n; i++) {
		if (set[i] == NULL)
			continue;
		for (size_t k = 0; k < set[i]->n; k++) {
			const struct dev_policy_rule *r = &set[i]->rules[k];
			int c;

			if (!dev_policy_match(r->pattern, path))
				continue;
			c = best == NULL ? 1 : dev_policy_priority(r->pattern, best);
			if (c > 0) {
				best = r->pattern;
				caps = r->caps;
			} else if (c == 0) {
				caps |= r->caps;
			}
		}
	}
	return (caps & DEV_CAP_DENY) != 0 ? 0 : caps;
}
