/* selector.c — label selectors (=, ==, !=, in, notin, exists, !exists, >, <) and field
 * selectors (=, ==, != with backslash escapes), as k8s.io/apimachinery parses them. */
#include "fake.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Longest label selector or field selector text accepted. */
#define SEL_TEXT_MAX 8192

void
fk_selector_clear(struct fk_selector *sel)
{
	for (unsigned i = 0; i < sel->n; i++) {
		for (unsigned j = 0; j < sel->reqs[i].nvalues; j++)
			free(sel->reqs[i].values[j]);
		sel->reqs[i].nvalues = 0;
	}
	sel->n = 0;
}

/* ---- label selectors ---- */

struct lexer {
	const char *s;
	size_t pos;
};

enum tok { T_END, T_IDENT, T_COMMA, T_EQ, T_DEQ, T_NE, T_NOT, T_OPEN, T_CLOSE, T_IN, T_NOTIN,
	   T_GT, T_LT, T_ERR };

static bool
ident_char(char c)
{
	return c != '\0' && !isspace((unsigned char)c) && strchr(",=!()<>", c) == NULL;
}

static enum tok
lex(struct lexer *lx, char *text, size_t textlen)
{
	const char *s = lx->s;
	size_t start, n;

	while (isspace((unsigned char)s[lx->pos]))
		lx->pos++;
	text[0] = '\0';
	switch (s[lx->pos]) {
	case '\0':
		return T_END;
	case ',':
		lx->pos++;
		return T_COMMA;
	case '(':
		lx->pos++;
		return T_OPEN;
	case ')':
		lx->pos++;
		return T_CLOSE;
	case '>':
		lx->pos++;
		return T_GT;
	case '<':
		lx->pos++;
		return T_LT;
	case '=':
		lx->pos++;
		if (s[lx->pos] == '=') {
			lx->pos++;
			return T_DEQ;
		}
		return T_EQ;
	case '!':
		lx->pos++;
		if (s[lx->pos] == '=') {
			lx->pos++;
			return T_NE;
		}
		return T_NOT;
	default:
		break;
	}
	start = lx->pos;
	while (ident_char(s[lx->pos]))
		lx->pos++;
	n = lx->pos - start;
	if (n == 0 || n >= textlen)
		return T_ERR;
	memcpy(text, s + start, n);
	text[n] = '\0';
	if (strcmp(text, "in") == 0)
		return T_IN;
	if (strcmp(text, "notin") == 0)
		return T_NOTIN;
	return T_IDENT;
}

static bool
name_part_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	}
	return true;
}

/* A qualified name: [prefix/]name, prefix a DNS subdomain. */
static bool
label_key_ok(const char *k)
{
	const char *slash = strchr(k, '/');
	char prefix[256];

	if (slash == NULL)
		return name_part_ok(k, strlen(k));
	if ((size_t)(slash - k) >= sizeof(prefix) || strchr(slash + 1, '/') != NULL)
		return false;
	memcpy(prefix, k, (size_t)(slash - k));
	prefix[slash - k] = '\0';
	return fk_valid_dns1123_subdomain(prefix) && name_part_ok(slash + 1, strlen(slash + 1));
}

static bool
label_value_ok(const char *v)
{
	return v[0] == '\0' || name_part_ok(v, strlen(v));
}

static int
add_value(struct fk_sel_req *q, const char *v)
{
	if (q->nvalues >= FK_SEL_VALUES_MAX)
		return -E2BIG;
	if ((q->values[q->nvalues] = strdup(v)) == NULL)
		return -ENOMEM;
	q->nvalues++;
	return 0;
}

static bool
is_integer(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
	}
	return true;
}

int
fk_label_selector_parse(const char *s, struct fk_selector *sel, char *err, size_t errlen)
{
	struct lexer lx = { s, 0 };
	char text[320];
	enum tok t;
	int r = -EINVAL;

	sel->n = 0;
	if (strlen(s) > SEL_TEXT_MAX) {
		snprintf(err, errlen, "the selector is longer than %d bytes", SEL_TEXT_MAX);
		return -EINVAL;
	}
	t = lex(&lx, text, sizeof(text));
	if (t == T_END)
		return 0;
	for (;;) {
		struct fk_sel_req *q;
		bool negated = false;

		if (sel->n >= FK_SEL_REQS_MAX) {
			snprintf(err, errlen, "more than %d requirements", FK_SEL_REQS_MAX);
			goto fail;
		}
		q = &sel->reqs[sel->n];
		memset(q, 0, sizeof(*q));
		if (t == T_NOT) {
			negated = true;
			t = lex(&lx, text, sizeof(text));
		}
		if (t != T_IDENT) {
			snprintf(err, errlen, "unable to parse requirement: found '%s', expected: identifier",
				 text);
			goto fail;
		}
		if (!label_key_ok(text)) {
			snprintf(err, errlen, "unable to parse requirement: <nil>: Invalid value: \"%s\": "
				 "name part must consist of alphanumeric characters, '-', '_' or '.', and "
				 "must start and end with an alphanumeric character", text);
			goto fail;
		}
		snprintf(q->key, sizeof(q->key), "%s", text);
		sel->n++;
		t = lex(&lx, text, sizeof(text));
		if (negated) {
			q->op = FK_SEL_NOTEXISTS;
		} else if (t == T_END || t == T_COMMA) {
			q->op = FK_SEL_EXISTS;
		} else if (t == T_EQ || t == T_DEQ || t == T_NE || t == T_GT || t == T_LT) {
			q->op = t == T_NE ? FK_SEL_NE : t == T_GT ? FK_SEL_GT : t == T_LT ? FK_SEL_LT : FK_SEL_EQ;
			size_t save = lx.pos;
			t = lex(&lx, text, sizeof(text));
			if (t == T_IN || t == T_NOTIN)
				t = T_IDENT;        /* "in" is a fine value */
			if (t != T_IDENT) {
				/* an empty value: "a=" */
				lx.pos = save;
				text[0] = '\0';
				if (q->op == FK_SEL_GT || q->op == FK_SEL_LT) {
					snprintf(err, errlen, "unable to parse requirement: found '', expected: identifier");
					goto fail;
				}
			}
			if ((q->op == FK_SEL_GT || q->op == FK_SEL_LT) && !is_integer(text)) {
				snprintf(err, errlen, "unable to parse requirement: for 'Gt', 'Lt' operators, "
					 "the value must be an integer");
				goto fail;
			}
			if (!label_value_ok(text)) {
				snprintf(err, errlen, "unable to parse requirement: <nil>: Invalid value: \"%s\": "
					 "a valid label must be an empty string or consist of alphanumeric "
					 "characters, '-', '_' or '.', and must start and end with an "
					 "alphanumeric character", text);
				goto fail;
			}
			if ((r = add_value(q, text)) < 0)
				goto fail_errno;
			r = -EINVAL;
			t = lex(&lx, text, sizeof(text));
		} else if (t == T_IN || t == T_NOTIN) {
			q->op = t == T_IN ? FK_SEL_IN : FK_SEL_NOTIN;
			if (lex(&lx, text, sizeof(text)) != T_OPEN) {
				snprintf(err, errlen, "unable to parse requirement: found '%s', expected: '('", text);
				goto fail;
			}
			for (;;) {
				t = lex(&lx, text, sizeof(text));
				if (t == T_IN || t == T_NOTIN)
					t = T_IDENT;
				if (t == T_IDENT) {
					if (!label_value_ok(text)) {
						snprintf(err, errlen, "unable to parse requirement: invalid value \"%s\"", text);
						goto fail;
					}
					if ((r = add_value(q, text)) < 0)
						goto fail_errno;
					r = -EINVAL;
					t = lex(&lx, text, sizeof(text));
				} else if ((t == T_COMMA || t == T_CLOSE) && (r = add_value(q, "")) < 0) {
					goto fail_errno;     /* "a in (,x)": an empty value */
				}
				r = -EINVAL;
				if (t == T_CLOSE)
					break;
				if (t != T_COMMA) {
					snprintf(err, errlen, "unable to parse requirement: found '%s', expected: ',', ')' or identifier", text);
					goto fail;
				}
			}
			t = lex(&lx, text, sizeof(text));
		} else {
			snprintf(err, errlen, "unable to parse requirement: found '%s', expected: in, notin, =, ==, !=, gt, lt", text);
			goto fail;
		}
		if (t == T_END)
			return 0;
		if (t != T_COMMA) {
			snprintf(err, errlen, "found '%s', expected: ',' or 'end of string'", text);
			goto fail;
		}
		t = lex(&lx, text, sizeof(text));
	}
fail_errno:
	snprintf(err, errlen, r == -E2BIG ? "too many values" : "out of memory");
fail:
	fk_selector_clear(sel);
	return -EINVAL;
}

static bool
value_in(const struct fk_sel_req *q, const char *v)
{
	for (unsigned i = 0; i < q->nvalues; i++) {
		if (strcmp(q->values[i], v) == 0)
			return true;
	}
	return false;
}

bool
fk_labels_match(const struct fk_selector *sel, const json_t *labels)
{
	for (unsigned i = 0; i < sel->n; i++) {
		const struct fk_sel_req *q = &sel->reqs[i];
		const char *v = json_string_value(json_object_get(labels, q->key));

		switch (q->op) {
		case FK_SEL_EXISTS:
			if (v == NULL)
				return false;
			break;
		case FK_SEL_NOTEXISTS:
			if (v != NULL)
				return false;
			break;
		case FK_SEL_EQ:
		case FK_SEL_IN:
			if (v == NULL || !value_in(q, v))
				return false;
			break;
		case FK_SEL_NE:
		case FK_SEL_NOTIN:
			if (v != NULL && value_in(q, v))
				return false;
			break;
		case FK_SEL_GT:
		case FK_SEL_LT:
			if (v == NULL || !is_integer(v))
				return false;
			if (q->op == FK_SEL_GT ? !(atoll(v) > atoll(q->values[0]))
					       : !(atoll(v) < atoll(q->values[0])))
				return false;
			break;
		}
	}
	return true;
}

/* ---- field selectors ---- */

/* Copies s up to the first unescaped char of stop into out, unescaping; returns the
 * position after it (or the end). -1 on a bad escape or an overlong part. */
static long
field_part(const char *s, const char *stop, char *out, size_t outlen)
{
	size_t o = 0;
	long i = 0;

	for (; s[i] != '\0'; i++) {
		char c = s[i];

		if (c == '\\') {
			if (s[i + 1] == '\0' || strchr(",=!\\", s[i + 1]) == NULL)
				return -1;
			c = s[++i];
		} else if (strchr(stop, c) != NULL) {
			break;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return i;
}

int
fk_field_selector_parse(const char *s, struct fk_selector *sel, char *err, size_t errlen)
{
	const char *p = s;
	char value[1024];
	long n;
	int r;

	sel->n = 0;
	if (strlen(s) > SEL_TEXT_MAX) {
		snprintf(err, errlen, "the selector is longer than %d bytes", SEL_TEXT_MAX);
		return -EINVAL;
	}
	if (*p == '\0')
		return 0;
	for (;;) {
		struct fk_sel_req *q;
		const char *term = p;

		if (sel->n >= FK_SEL_REQS_MAX) {
			snprintf(err, errlen, "more than %d requirements", FK_SEL_REQS_MAX);
			goto fail;
		}
		q = &sel->reqs[sel->n];
		memset(q, 0, sizeof(*q));
		if ((n = field_part(p, "=!,", q->key, sizeof(q->key))) < 0)
			goto invalid;
		p += n;
		if (p[0] == '!' && p[1] == '=') {
			q->op = FK_SEL_NE;
			p += 2;
		} else if (p[0] == '=' && p[1] == '=') {
			q->op = FK_SEL_EQ;
			p += 2;
		} else if (p[0] == '=') {
			q->op = FK_SEL_EQ;
			p += 1;
		} else {
			snprintf(err, errlen, "invalid selector: '%s'; can't understand '%.*s'", s,
				 (int)strcspn(term, ","), term);
			goto fail;
		}
		/* keys are trimmed, values kept as they are */
		while (strlen(q->key) > 0 && isspace((unsigned char)q->key[strlen(q->key) - 1]))
			q->key[strlen(q->key) - 1] = '\0';
		if ((n = field_part(p, ",", value, sizeof(value))) < 0)
			goto invalid;
		p += n;
		sel->n++;
		if ((r = add_value(q, value)) < 0) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		if (*p == '\0')
			return 0;
		p++;        /* ',' */
	}
invalid:
	snprintf(err, errlen, "invalid selector: '%s'", s);
fail:
	fk_selector_clear(sel);
	return -EINVAL;
}

/* The value of a selectable field as text ("" when absent). */
static void
field_value(json_t *obj, const char *field, char *out, size_t outlen)
{
	json_t *v;

	/* events: "source" is source.component */
	if (strcmp(field, "source") == 0)
		field = "source.component";
	v = fk_jpath(obj, field);
	out[0] = '\0';
	if (json_is_string(v))
		snprintf(out, outlen, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
	else if (json_is_true(v))
		snprintf(out, outlen, "true");
	else if (json_is_false(v))
		snprintf(out, outlen, "false");
}

bool
fk_fields_match(const struct fk_selector *sel, json_t *obj)
{
	char v[1024];

	for (unsigned i = 0; i < sel->n; i++) {
		const struct fk_sel_req *q = &sel->reqs[i];
		bool eq;

		field_value(obj, q->key, v, sizeof(v));
		eq = strcmp(v, q->values[0]) == 0;
		if (q->op == FK_SEL_EQ ? !eq : eq)
			return false;
	}
	return true;
}

static const char *const fields_secret[] = { "type", NULL };
static const char *const fields_namespace[] = { "status.phase", NULL };
static const char *const fields_event[] = {
	"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
	"involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
	"involvedObject.fieldPath", "reason", "reportingComponent", "source", "type", NULL
};
static const char *const fields_event_v1[] = {
	"regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
	"regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath", "reason",
	"reportingController", "type", NULL
};
static const char *const fields_pod[] = {
	"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
	"spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName", NULL
};

static const char *const *
extra_fields(const struct fk_rtype *t)
{
	switch (t->hook) {
	case FK_HOOK_SECRET:
		return fields_secret;
	case FK_HOOK_NAMESPACE:
		return fields_namespace;
	case FK_HOOK_EVENT:
		return fields_event;
	case FK_HOOK_EVENTS_V1:
		return fields_event_v1;
	case FK_HOOK_POD:
		return fields_pod;
	default:
		return NULL;
	}
}

int
fk_fields_supported(const struct fk_rtype *t, const struct fk_selector *sel, char *err,
		    size_t errlen)
{
	for (unsigned i = 0; i < sel->n; i++) {
		const char *k = sel->reqs[i].key;
		const char *const *extra = extra_fields(t);
		bool ok = strcmp(k, "metadata.name") == 0 || strcmp(k, "metadata.namespace") == 0;

		for (size_t j = 0; !ok && extra != NULL && extra[j] != NULL; j++)
			ok = strcmp(extra[j], k) == 0;
		/* CRDs: spec.versions[].selectableFields, jsonPath ".spec.x" */
		for (unsigned v = 0; !ok && v < t->nversions; v++) {
			size_t idx;
			json_t *f;

			json_array_foreach(t->versions[v].selectable, idx, f) {
				const char *jp = fk_jstr(f, "jsonPath");

				if (jp != NULL && jp[0] == '.' && strcmp(jp + 1, k) == 0)
					ok = true;
			}
		}
		if (!ok) {
			if (t->flags & FK_CRD)
				snprintf(err, errlen, "field label not supported: %s", k);
			else
				snprintf(err, errlen, "\"%s\" is not a known field selector: only "
					 "\"metadata.name\", \"metadata.namespace\"", k);
			return -EINVAL;
		}
	}
	return 0;
}
