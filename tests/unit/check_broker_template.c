/* check_broker_template.c — the template language of rendered files and exec environments
 * (broker/template.c): syntax, the shorthand, the escaping functions, the errors (which
 * name the template, the line and the key, never a value), and the limits. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "broker/template.h"
#include "common/buf.h"
#include "crypto/secret.h"

static const char *const names[] = { "db", "api", "db-main", "w" };
#define NNAMES 4

static json_t *data[NNAMES];
static uint64_t versions[NNAMES] = { 3, 7, 1, 1 };

static void
setup(void)
{
	data[0] = json_pack("{s:s, s:s}", "username", "v-app-1", "password", "p'w\"d\\x\n$y");
	data[1] = json_pack("{s:s, s:i, s:b, s:{s:s}, s:[s,s], s:s}", "key", "k&y=1/2 3",
			    "port", 5432, "debug", 0, "nested", "host", "db.internal", "list", "a",
			    "b", "empty", "");
	data[2] = json_pack("{s:s, s:s%}", "user-name", "main", "nul", "a\0b", (size_t)3);
	/* The shape of a costly template: a quote that doubles at each json, and ten items. */
	data[3] = json_pack("{s:s, s:[i,i,i,i,i,i,i,i,i,i]}", "q", "\"", "l", 1, 2, 3, 4, 5, 6, 7,
			    8, 9, 10);
}

static void
teardown(void)
{
	for (size_t i = 0; i < NNAMES; i++) {
		json_decref(data[i]);
		data[i] = NULL;
	}
}

/* Compiles and renders text (top-level unless self is given); returns the rc, with the
 * output or the error message in out. */
static int
render_self(const char *text, size_t self, char *out, size_t outlen)
{
	struct broker_template *t = NULL;
	struct lk_error err;
	struct lk_buf buf;
	int rc;

	lk_error_clear(&err);
	rc = broker_template_compile(text, strlen(text), "t.tpl", names, NNAMES, self, &t, &err);
	if (rc < 0) {
		snprintf(out, outlen, "%s", err.msg);
		return rc;
	}
	lk_buf_init(&buf, 1 << 20, true);
	rc = broker_template_render(t, (const json_t *const *)data, versions, NNAMES, &buf, &err);
	snprintf(out, outlen, "%s", rc == 0 ? (buf.data != NULL ? buf.data : "") : err.msg);
	lk_buf_free(&buf);
	broker_template_free(t);
	return rc;
}

static int
render(const char *text, char *out, size_t outlen)
{
	return render_self(text, SIZE_MAX, out, outlen);
}

#define RENDERS(text, want) do { \
	char o_[4096]; \
	int r_ = render(text, o_, sizeof(o_)); \
	ck_assert_msg(r_ == 0, "%s: %d %s", text, r_, o_); \
	ck_assert_str_eq(o_, want); \
} while (0)

#define FAILS(text, code, needle) do { \
	char o_[4096]; \
	int r_ = render(text, o_, sizeof(o_)); \
	ck_assert_msg(r_ == (code), "%s: expected %d, got %d (%s)", text, code, r_, o_); \
	ck_assert_msg(strstr(o_, needle) != NULL, "%s: \"%s\" not in \"%s\"", text, needle, o_); \
	/* No value of any secret in a message, nor one made from a value. */ \
	ck_assert_ptr_null(strstr(o_, "v-app-1")); \
	ck_assert_ptr_null(strstr(o_, "di1hcHAtMQ")); \
	ck_assert_ptr_null(strstr(o_, "k%26y")); \
	ck_assert_ptr_null(strstr(o_, "p'w")); \
	ck_assert_ptr_null(strstr(o_, "db.internal")); \
} while (0)

START_TEST(test_access)
{
	RENDERS("{{ with secret \"db\" }}{{ .Data.username }}{{ end }}", "v-app-1");
	RENDERS("{{ .db.username }}", "v-app-1");
	RENDERS("{{.db.Data.username}}@{{ .api.port }}", "v-app-1@5432");
	RENDERS("{{ (secret \"db\").Data.username }}", "v-app-1");
	RENDERS("{{ index .db.Data \"username\" }}", "v-app-1");
	RENDERS("{{ index . \"db-main\" \"user-name\" }}", "main");
	RENDERS("{{ with secret \"db-main\" }}{{ index .Data \"user-name\" }}{{ end }}", "main");
	RENDERS("{{ .db-main.user-name }}", "main");
	RENDERS("{{ .api.nested.host }} {{ index .api.list 1 }}", "db.internal b");
	RENDERS("{{ .api.nested }}", "{\"host\":\"db.internal\"}");
	RENDERS("v{{ .db.Version }} v{{ with secret \"api\" }}{{ .Version }}{{ end }}", "v3 v7");
	RENDERS("{{ with $.db }}{{ $.api.port }}{{ .username }}{{ end }}", "5432v-app-1");
	RENDERS("plain text, no action", "plain text, no action");
	RENDERS("", "");
}
END_TEST

START_TEST(test_blocks)
{
	RENDERS("{{ range $k, $v := .db.Data }}{{ $k }}={{ $v | shell }};{{ end }}",
		"password='p'\\''w\"d\\x\n$y';username='v-app-1';");
	RENDERS("{{ range .api.list }}[{{ . }}]{{ end }}", "[a][b]");
	RENDERS("{{ range $i, $e := .api.list }}{{ $i }}{{ $e }}{{ end }}", "0a1b");
	RENDERS("{{ range $v := .api.list }}{{ $v }}{{ end }}", "ab");
	RENDERS("{{ if .api.debug }}on{{ else }}off{{ end }}", "off");
	RENDERS("{{ if .api.port }}on{{ else }}off{{ end }}", "on");
	RENDERS("{{ with .api.empty }}x{{ else }}none{{ end }}", "none");
	RENDERS("a  {{- .api.port -}}  \n b", "a5432b");
	RENDERS("a {{/* a comment */}}b{{- /* trimmed */ -}}  c", "a bc");
	RENDERS("l1\n{{ with secret \"db\" }}\n{{- .username }}\n{{- end }}", "l1\nv-app-1");
}
END_TEST

START_TEST(test_escaping)
{
	RENDERS("{{ .db.password | json }}", "\"p'w\\\"d\\\\x\\n$y\"");
	RENDERS("{{ json .db.password }}", "\"p'w\\\"d\\\\x\\n$y\"");
	RENDERS("{{ .api.port | json }} {{ .api.debug | json }}", "5432 false");
	RENDERS("{{ .db.Data | json }}", "{\"password\":\"p'w\\\"d\\\\x\\n$y\",\"username\":\"v-app-1\"}");
	RENDERS("{{ .db.password | shell }}", "'p'\\''w\"d\\x\n$y'");
	RENDERS("{{ .db.password | yaml }}", "\"p'w\\\"d\\\\x\\n$y\"");
	RENDERS("{{ .api.port | yaml }}", "5432");
	RENDERS("{{ .api.key | url }}", "k%26y%3D1%2F2%203");
	RENDERS("{{ .db.username | base64 }}", "di1hcHAtMQ==");
	RENDERS("{{ .db.username | base64 | json }}", "\"di1hcHAtMQ==\"");
	RENDERS("{{ \"a\\tb\" | json }} {{ `raw\\n` }}", "\"a\\tb\" raw\\n");
}
END_TEST

START_TEST(test_errors)
{
	/* A missing key: the template, the line and the key; never a value. */
	FAILS("line 1\nline 2\n{{ .db.pasword }}", -ENOENT, "t.tpl:3: secret \"db\" has no key \"pasword\"");
	FAILS("{{ with secret \"db\" }}\n{{ .Data.nope }}{{ end }}", -ENOENT, "t.tpl:2: secret \"db\" has no key \"nope\"");
	FAILS("{{ index .db.Data \"nope\" }}", -ENOENT, "has no key \"nope\"");
	/* A key taken from a value is not shown: it may be the value of a secret. */
	FAILS("{{ index .api.Data .db.username }}", -ENOENT, "has no key named by the value");
	FAILS("{{ index .api.Data (.db.username | base64) }}", -ENOENT, "has no key named by the value");
	/* Nor when a function's result travels: through with (as "."), nested with, a range's
	 * variable, a pipeline, a variable of a range over a value. */
	FAILS("{{ with (.db.username | url) }}{{ index $.api.Data . }}{{ end }}", -ENOENT,
	      "has no key named by the value");
	FAILS("{{ with (.db.username | base64) }}{{ index $.api.Data . }}{{ end }}", -ENOENT,
	      "has no key named by the value");
	FAILS("{{ with (.api.key | url) }}{{ index $.api.Data . }}{{ end }}", -ENOENT,
	      "has no key named by the value");
	FAILS("{{ with (.db.username | url) }}{{ with . }}{{ with . }}{{ index $.api.Data . }}"
	      "{{ end }}{{ end }}{{ end }}", -ENOENT, "has no key named by the value");
	FAILS("{{ range $k, $v := .db.Data }}{{ with ($v | url) }}{{ index $.api.Data . }}{{ end }}"
	      "{{ end }}", -ENOENT, "has no key named by the value");
	FAILS("{{ range $k, $v := .db.Data }}{{ index $.api.Data $v }}{{ end }}", -ENOENT,
	      "has no key named by the value");
	FAILS("{{ range $e := .api.list }}{{ index $.api.Data $e }}{{ end }}", -ENOENT,
	      "has no key named by the value");
	FAILS("{{ with .db.username }}{{ index $.api.Data . }}{{ end }}", -ENOENT,
	      "has no key named by the value");
	FAILS("{{ with (.db.username | url) }}{{ range $.api.list }}{{ end }}"
	      "{{ index $.api.Data . }}{{ end }}", -ENOENT, "has no key named by the value");
	/* A name stays a name on those paths: a literal, a range key. */
	FAILS("{{ with \"nope\" }}{{ with . }}{{ index $.api.Data . }}{{ end }}{{ end }}", -ENOENT,
	      "secret \"api\" has no key \"nope\"");
	FAILS("{{ range $k, $v := .db.Data }}{{ with $k }}{{ index $.api.Data . }}{{ end }}{{ end }}",
	      -ENOENT, "secret \"api\" has no key \"password\"");
	FAILS("{{ .api.nested.port }}", -ENOENT, "secret \"api\" has no key \"port\"");
	/* Compile errors name the line. */
	FAILS("{{ .nosuch.key }}", -EINVAL, "t.tpl:1: no secret named \"nosuch\" is configured");
	FAILS("x\n{{ secret \"nosuch\" }}", -EINVAL, "t.tpl:2: no secret named \"nosuch\"");
	FAILS("{{ exec \"rm\" }}", -EINVAL, "unknown function \"exec\"");
	FAILS("{{ .db.username | env }}", -EINVAL, "unknown function \"env\"");
	FAILS("{{ .db.username", -EINVAL, "not closed");
	FAILS("{{ with .db }}x", -EINVAL, "no {{ end }}");
	FAILS("{{ end }}", -EINVAL, "without a block");
	FAILS("{{ . }}", -EINVAL, "cannot be written");
	FAILS("{{ range . }}{{ end }}", -EINVAL, "range over every secret");
	FAILS("{{ index . .db.username }}", -EINVAL, "needs a name in quotes");
	FAILS("{{ $nope }}", -EINVAL, "undefined variable");
	FAILS("{{ .db.username .db.password }}", -EINVAL, "cannot take arguments");
	FAILS("{{ .db.username | json .db.password }}", -EINVAL, "takes one value");
	FAILS("{{ template \"x\" }}", -EINVAL, "cannot be used here");
	FAILS("{{ (.db.username }}", -EINVAL, "expected \")\"");
	FAILS("{{ .db.username.x }}", -EINVAL, "not an object");
	FAILS("{{ range .db.username }}{{ end }}", -EINVAL, "not an object or a list");
}
END_TEST

START_TEST(test_self_and_older_syntax)
{
	char o[4096];

	/* A secret's own file: its keys are the root's, and {{ KEY }} still works. */
	ck_assert_int_eq(render_self("u={{ username }} p={{.password | json}} {{ .Data.username }}",
				     0, o, sizeof(o)), 0);
	ck_assert_str_eq(o, "u=v-app-1 p=\"p'w\\\"d\\\\x\\n$y\" v-app-1");
	ck_assert_int_eq(render_self("{{ with secret \"api\" }}{{ .port }}{{ end }}", 0, o, sizeof(o)), 0);
	ck_assert_str_eq(o, "5432");
	ck_assert_int_eq(render_self("{{ MISSING }}", 0, o, sizeof(o)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(o, "t.tpl:1: secret \"db\" has no key \"MISSING\""));
	/* In its own file a name followed by arguments was meant as a function. */
	ck_assert_int_eq(render_self("x\n{{ exec \"rm\" }}", 0, o, sizeof(o)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(o, "t.tpl:2: unknown function \"exec\""));
	/* At top level a bare name is not a key. */
	ck_assert_int_eq(render("{{ username }}", o, sizeof(o)), -EINVAL);
}
END_TEST

START_TEST(test_deps_and_loading)
{
	struct broker_template *t = NULL;
	struct lk_error err;
	struct lk_buf buf;
	const json_t *partial[NNAMES] = { data[0], NULL, NULL };
	const char *text = "{{ .db.username }} {{ with secret \"api\" }}{{ .key }}{{ end }}";

	lk_error_clear(&err);
	ck_assert_int_eq(broker_template_compile(text, strlen(text), "t", names, NNAMES, SIZE_MAX,
						 &t, &err), 0);
	ck_assert_int_eq(broker_template_ndeps(t), 2);
	ck_assert(broker_template_reads(t, 0));
	ck_assert(broker_template_reads(t, 1));
	ck_assert(!broker_template_reads(t, 2));
	lk_buf_init(&buf, 4096, true);
	/* Not every secret it reads is loaded: it waits. */
	ck_assert_int_eq(broker_template_render(t, partial, versions, NNAMES, &buf, &err), -EAGAIN);
	ck_assert_ptr_nonnull(strstr(err.msg, "secret \"api\" is not loaded"));
	lk_buf_free(&buf);
	broker_template_free(t);
}
END_TEST

START_TEST(test_limits)
{
	char o[4096];
	struct lk_buf buf;
	struct broker_template *t = NULL;
	struct lk_error err;
	char *deep, *loop;
	size_t n = 0;
	int rc;

	/* Nesting past the limit is refused when compiling. */
	deep = malloc(64 * 40 + 64);
	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(deep + n, "{{ with .db }}");
	ck_assert_int_eq(render(deep, o, sizeof(o)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(o, "nested more than"));
	free(deep);
	/* Ranges inside ranges stop at the step limit. */
	loop = malloc(4096);
	strcpy(loop, "{{ range .db.Data }}");
	for (int i = 0; i < 25; i++)
		strcat(loop, "{{ range $.api.list }}");
	for (int i = 0; i < 26; i++)
		strcat(loop, "{{ end }}");
	ck_assert_int_eq(render(loop, o, sizeof(o)), -ELOOP);
	free(loop);
	/* Output past the buffer's cap. */
	lk_error_clear(&err);
	{
		const char *text = "{{ range .api.list }}0123456789{{ end }}";

		rc = broker_template_compile(text, strlen(text), "t", names, NNAMES, SIZE_MAX, &t,
					     &err);
	}
	ck_assert_int_eq(rc, 0);
	lk_buf_init(&buf, 12, true);
	ck_assert_int_eq(broker_template_render(t, (const json_t *const *)data, versions, NNAMES,
						&buf, &err), -E2BIG);
	lk_buf_free(&buf);
	broker_template_free(t);
	/* A NUL byte in the template, or in a value a context cannot carry. */
	ck_assert_int_eq(broker_template_compile("a\0b", 3, "t", names, NNAMES, SIZE_MAX, &t, &err),
			 -EINVAL);
	ck_assert_int_eq(render("{{ index . \"db-main\" \"nul\" | shell }}", o, sizeof(o)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(o, "t.tpl:1: shell: the value holds a NUL byte"));
	ck_assert_int_eq(render("{{ index . \"db-main\" \"nul\" | url }}", o, sizeof(o)), -EINVAL);
	ck_assert_int_eq(render("{{ index . \"db-main\" \"nul\" | json }}", o, sizeof(o)), 0);
	ck_assert_str_eq(o, "\"a\\u0000b\"");
}
END_TEST

/* A value holding a NUL byte is written only escaped; the error names the line, the key
 * and the secret. */
START_TEST(test_nul_written)
{
	char o[4096];

	FAILS("x\n{{ index . \"db-main\" \"nul\" }}", -EINVAL,
	      "t.tpl:2: key \"nul\" of secret \"db-main\" holds a NUL byte");
	FAILS("{{ .db-main.nul }}", -EINVAL, "t.tpl:1: key \"nul\" of secret \"db-main\" holds a NUL byte");
	FAILS("{{ range $k, $v := .db-main.Data }}{{ $v }}{{ end }}", -EINVAL,
	      "key \"nul\" of secret \"db-main\" holds a NUL byte");
	FAILS("{{ with secret \"db-main\" }}{{ .nul }}{{ end }}", -EINVAL,
	      "key \"nul\" of secret \"db-main\" holds a NUL byte");
	/* Nothing of the value before the NUL is in the message either. */
	ck_assert_int_eq(render("{{ .db-main.nul }}", o, sizeof(o)), -EINVAL);
	ck_assert_ptr_null(strstr(o, "\"a"));
	/* Escaped, or as a whole object's JSON text, it is written. */
	RENDERS("{{ .db-main.nul | yaml }}", "\"a\\x00b\"");
	RENDERS("{{ .db-main.Data }}", "{\"nul\":\"a\\u0000b\",\"user-name\":\"main\"}");
	/* The other values of that secret are unaffected. */
	RENDERS("{{ index . \"db-main\" \"user-name\" }}", "main");
}
END_TEST

/* Builds "{{ range $.w.l }}" x nranges around an if of njson nested (… | json) on a quote:
 * each json doubles the text, so one step escapes megabytes. */
static char *
costly_text(int nranges, int njson)
{
	char *t = calloc(1, 4096);

	for (int i = 0; i < nranges; i++)
		strcat(t, "{{ range $.w.l }}");
	strcat(t, "{{ if ");
	for (int i = 0; i < njson; i++)
		strcat(t, "(");
	strcat(t, "$.w.q");
	for (int i = 0; i < njson; i++)
		strcat(t, " | json)");
	strcat(t, " }}{{ end }}");
	for (int i = 0; i < nranges; i++)
		strcat(t, "{{ end }}");
	return t;
}

static int
render_usage(const char *text, size_t cap, struct broker_template_usage *u, char *out,
	     size_t outlen)
{
	struct broker_template *t = NULL;
	struct lk_error err;
	struct lk_buf buf;
	int rc;

	lk_error_clear(&err);
	ck_assert_int_eq(broker_template_compile(text, strlen(text), "t.tpl", names, NNAMES,
						 SIZE_MAX, &t, &err), 0);
	lk_buf_init(&buf, cap, true);
	rc = broker_template_render_usage(t, (const json_t *const *)data, versions, NNAMES, &buf,
					  u, &err);
	snprintf(out, outlen, "%s", rc == 0 ? "" : err.msg);
	lk_buf_free(&buf);
	broker_template_free(t);
	return rc;
}

/* The work of a render is bounded in bytes, whatever its steps: the reviewed shape (four
 * ranges of ten around eighteen nested json, 2% of the step limit) ends with an error,
 * having done at most BROKER_TPL_WORK_MAX bytes in a few hundred steps. */
START_TEST(test_work_bounded)
{
	struct broker_template_usage u = { 0 };
	char o[4096], *text = costly_text(4, 18), *big;
	int rc;

	rc = render_usage(text, 2u << 20, &u, o, sizeof(o));
	ck_assert_msg(rc == -ELOOP, "%d %s", rc, o);
	ck_assert_msg(strstr(o, "t.tpl:1: too much work, the limit is 67108864 bytes") != NULL, "%s", o);
	ck_assert_uint_le(u.bytes, BROKER_TPL_WORK_MAX);
	/* It stopped on bytes, long before the steps it would have taken (over 20,000). */
	ck_assert_uint_gt(u.bytes, BROKER_TPL_WORK_MAX / 2);
	ck_assert_uint_lt(u.steps, 2000);
	free(text);
	/* One level of it is cheap and fine: every step of it runs. */
	text = costly_text(4, 3);
	ck_assert_int_eq(render_usage(text, 2u << 20, &u, o, sizeof(o)), 0);
	ck_assert_uint_gt(u.steps, 10000);
	ck_assert_uint_lt(u.bytes, 1u << 20);
	free(text);
	/* A large ordinary template: a 1 MiB value written raw and escaped four ways, 5.5 MiB
	 * of output (more than a rendered file may hold, 2 MiB), uses under a third of the
	 * budget. */
	big = malloc((1u << 20) + 1);
	memset(big, 'x', 1u << 20);
	big[1u << 20] = '\0';
	json_object_set_new(data[3], "big", json_string(big));
	free(big);
	rc = render_usage("{{ .w.big }}\n{{ .w.big | json }}\n{{ .w.big | yaml }}\n"
			  "{{ .w.Data | json | base64 }}\n"
			  "{{ range $k, $v := .w.Data }}{{ $k }}={{ $v | json }}\n{{ end }}",
			  16u << 20, &u, o, sizeof(o));
	ck_assert_msg(rc == 0, "%d %s", rc, o);
	ck_assert_uint_lt(u.bytes, BROKER_TPL_WORK_MAX / 3);
}
END_TEST

/* The value of the first scalar of a YAML document in *ret (malloc'd, *ret_len bytes),
 * the one after the scalar "after" when it is given (a mapping's value); -1 when libyaml
 * refuses the text or there is no such scalar. */
static int
yaml_scalar(const char *text, size_t len, const char *after, char **ret, size_t *ret_len)
{
	yaml_parser_t p;
	yaml_event_t e;
	bool next = after == NULL;
	int rc = -1;

	if (!yaml_parser_initialize(&p))
		return -1;
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_parse(&p, &e))
			break;
		if (e.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&e);
			break;
		}
		if (e.type == YAML_SCALAR_EVENT) {
			const char *v = (const char *)e.data.scalar.value;
			size_t n = e.data.scalar.length;

			if (next) {
				*ret = malloc(n + 1);
				memcpy(*ret, v, n);
				(*ret)[n] = '\0';
				*ret_len = n;
				rc = 0;
				yaml_event_delete(&e);
				break;
			}
			next = strlen(after) == n && memcmp(v, after, n) == 0;
		}
		yaml_event_delete(&e);
	}
	yaml_parser_delete(&p);
	return rc;
}

/* Values YAML forbids raw, or reads otherwise than written bare: yaml escapes them so
 * that libyaml (what PyYAML and most YAML readers run) reads back the same characters,
 * alone and inside a whole object's text. */
START_TEST(test_yaml_round_trip)
{
	static const struct { const char *s; size_t n; } hostile[] = {
#define V(lit) { lit, sizeof(lit) - 1 }
		V("a\xc2\x80" "b"),                 /* U+0080, a C1 control */
		V("\xc2\x9f\xc2\x81"),              /* U+009F, U+0081 */
		V("x\xc2\x85y"),                    /* NEL */
		V("\xe2\x80\xa8\xe2\x80\xa9"),      /* line and paragraph separators */
		V("\xef\xbb\xbf" "bom"),            /* a byte order mark */
		V("\xef\xbf\xbe\xef\xbf\xbf"),      /* U+FFFE, U+FFFF: not characters */
		V("del\x7f"),
		V("\x01\x1b[0m\x1f"),
		V("\t\n\r "),
		V("a\0b"),
		V("\xf0\x9f\x98\x80 \xc2\xa0 \xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbd \xf4\x8f\xbf\xbf"),
		V("\"'\\ - : # & * ! | > % @ `"),
		V(" both ends "),
		V("null"),
		V(""),
#undef V
	};
	static const char *const ways[] = { "{{ .w.v | yaml }}", "{{ .w.Data | yaml }}",
					    "k: {{ .w.v | yaml }}\n" };
	char o[4096];

	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		json_object_set_new(data[3], "v", json_stringn(hostile[i].s, hostile[i].n));
		ck_assert_ptr_nonnull(json_object_get(data[3], "v"));
		for (size_t w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
			struct broker_template *t = NULL;
			struct lk_error err;
			struct lk_buf buf;
			char *got = NULL;
			size_t gotn = 0;

			lk_error_clear(&err);
			ck_assert_int_eq(broker_template_compile(ways[w], strlen(ways[w]), "t.tpl",
								 names, NNAMES, SIZE_MAX, &t,
								 &err), 0);
			lk_buf_init(&buf, 1 << 20, true);
			ck_assert_int_eq(broker_template_render(t, (const json_t *const *)data,
								versions, NNAMES, &buf, &err), 0);
			ck_assert_msg(yaml_scalar(buf.data, buf.len, w == 0 ? NULL : w == 1 ? "v" :
						  "k", &got, &gotn) == 0,
				      "value %zu, way %zu: libyaml refuses the text", i, w);
			ck_assert_msg(gotn == hostile[i].n && memcmp(got, hostile[i].s, gotn) == 0,
				      "value %zu, way %zu: read back otherwise", i, w);
			free(got);
			lk_buf_free(&buf);
			broker_template_free(t);
		}
	}
	/* Bytes that are not UTF-8 cannot be YAML: refused, without the value. */
	{
		static const char *const bad[] = { "ab\xff", "\xc0\x80", "\xed\xa0\x80", "x\xe2\x80" };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			json_object_set_new(data[3], "v", json_stringn_nocheck(bad[i], strlen(bad[i])));
			ck_assert_int_eq(render("{{ .w.v | yaml }}", o, sizeof(o)), -EINVAL);
			ck_assert_str_eq(o, "t.tpl:1: yaml: the value is not valid UTF-8");
			/* As part of an object's JSON text: jansson will not write it. */
			ck_assert_int_eq(render("{{ .w.Data | yaml }}", o, sizeof(o)), -EINVAL);
			ck_assert_str_eq(o, "t.tpl:1: the value cannot be written as JSON: it holds "
					 "text that is not UTF-8");
		}
	}
}
END_TEST

static Suite *
template_suite(void)
{
	Suite *s = suite_create("broker_template");
	TCase *tc = tcase_create("template");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_access);
	tcase_add_test(tc, test_blocks);
	tcase_add_test(tc, test_escaping);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_self_and_older_syntax);
	tcase_add_test(tc, test_deps_and_loading);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_nul_written);
	tcase_add_test(tc, test_work_bounded);
	tcase_add_test(tc, test_yaml_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (lk_secret_init() < 0)
		return 1;
	sr = srunner_create(template_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
