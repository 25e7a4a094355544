/* check_manifest.c — YAML/JSON manifests to jansson and back. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "manifest/manifest.h"

static json_t *
parse_ok(const char *text)
{
	struct lk_error err;
	json_t *root = NULL;
	int r;

	lk_error_clear(&err);
	r = lk_manifest_parse(text, strlen(text), "in.yaml", &root, NULL, &err);
	ck_assert_msg(r == 0, "parse failed: %s", err.msg);
	return root;
}

static int
parse_fail(const char *text, struct lk_error *err)
{
	json_t *root = NULL;
	int r;

	lk_error_clear(err);
	r = lk_manifest_parse(text, strlen(text), "in.yaml", &root, NULL, err);
	ck_assert_ptr_null(root);
	ck_assert_int_lt(r, 0);
	return r;
}

START_TEST(yaml11_scalars_outside_data)
{
	json_t *root = parse_ok(
		"a: yes\nb: No\nc: on\nd: OFF\ne: y\nf: true\n"
		"g: 42\nh: -7\ni: 0x1F\nj: 0777\nk: 1_000\nl: 0b101\n"
		"m: 1.5\nn: 1e3\no: ~\np: null\nq:\nr: '42'\ns: \"yes\"\nt: hello world\n"
		"u: 2001-12-14\nv: 99999999999999999999\nw: 1.2.3\nx: .inf\n");

	ck_assert(json_is_true(json_object_get(root, "a")));
	ck_assert(json_is_false(json_object_get(root, "b")));
	ck_assert(json_is_true(json_object_get(root, "c")));
	ck_assert(json_is_false(json_object_get(root, "d")));
	ck_assert(json_is_true(json_object_get(root, "e")));
	ck_assert(json_is_true(json_object_get(root, "f")));
	ck_assert_int_eq(json_integer_value(json_object_get(root, "g")), 42);
	ck_assert_int_eq(json_integer_value(json_object_get(root, "h")), -7);
	ck_assert_int_eq(json_integer_value(json_object_get(root, "i")), 31);
	ck_assert_int_eq(json_integer_value(json_object_get(root, "j")), 511);
	ck_assert_int_eq(json_integer_value(json_object_get(root, "k")), 1000);
	ck_assert_int_eq(json_integer_value(json_object_get(root, "l")), 5);
	ck_assert(json_is_real(json_object_get(root, "m")));
	ck_assert_double_eq(json_real_value(json_object_get(root, "n")), 1000.0);
	ck_assert(json_is_null(json_object_get(root, "o")));
	ck_assert(json_is_null(json_object_get(root, "p")));
	ck_assert(json_is_null(json_object_get(root, "q")));
	ck_assert_str_eq(json_string_value(json_object_get(root, "r")), "42");
	ck_assert_str_eq(json_string_value(json_object_get(root, "s")), "yes");
	ck_assert_str_eq(json_string_value(json_object_get(root, "t")), "hello world");
	ck_assert_str_eq(json_string_value(json_object_get(root, "u")), "2001-12-14");
	ck_assert(json_is_real(json_object_get(root, "v")));
	ck_assert_str_eq(json_string_value(json_object_get(root, "w")), "1.2.3");
	ck_assert_str_eq(json_string_value(json_object_get(root, "x")), ".inf");
	json_decref(root);
}
END_TEST

START_TEST(data_values_are_strings)
{
	json_t *root = parse_ok(
		"apiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: y}\n"
		"immutable: yes\n"
		"data:\n  a: 5432\n  b: yes\n  c:\n  d: ~\n  e: 0x10\n"
		"stringData:\n  port: 5432\n  on: off\n  f: 1.50\n");
	json_t *data = json_object_get(root, "data"), *sd = json_object_get(root, "stringData");

	ck_assert(json_is_true(json_object_get(root, "immutable")));
	ck_assert_str_eq(json_string_value(json_object_get(data, "a")), "5432");
	ck_assert_str_eq(json_string_value(json_object_get(data, "b")), "yes");
	ck_assert_str_eq(json_string_value(json_object_get(data, "c")), "");
	ck_assert_str_eq(json_string_value(json_object_get(data, "d")), "~");
	ck_assert_str_eq(json_string_value(json_object_get(data, "e")), "0x10");
	ck_assert_str_eq(json_string_value(json_object_get(sd, "port")), "5432");
	ck_assert_str_eq(json_string_value(json_object_get(sd, "on")), "off");
	ck_assert_str_eq(json_string_value(json_object_get(sd, "f")), "1.50");
	json_decref(root);
}
END_TEST

START_TEST(list_items_data_are_strings)
{
	json_t *root = parse_ok(
		"apiVersion: v1\nkind: List\nitems:\n"
		"- kind: Secret\n  data:\n    n: 12\n"
		"- kind: ConfigMap\n  data: {m: true}\n");
	json_t *items = json_object_get(root, "items");

	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(items, 0), "data"), "n")), "12");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(items, 1), "data"), "m")), "true");
	json_decref(root);
}
END_TEST

START_TEST(odd_but_valid_shapes)
{
	char *big = malloc(200001), *text = NULL;
	json_t *root;

	memset(big, 'Q', 200000);
	big[200000] = '\0';
	root = parse_ok(
		"# leading comment\n"
		"---\n"
		"apiVersion: v1 # trailing comment\n"
		"kind: Secret\n"
		"metadata:\n"
		"  name: 'it''s'\n"
		"  annotations:\n"
		"    \"ключ/ü\": \"значение ✓\"\n"
		"    folded: >\n"
		"      one\n"
		"      two\n"
		"    literal: |\n"
		"      line 1\n"
		"        indented\n"
		"    keep: |+\n"
		"      x\n"
		"\n"
		"    strip: |-\n"
		"      y\n"
		"    esc: \"tab\\there\\n\\u00e9\"\n"
		"stringData:\n"
		"  flow: {not: a map}\n"
		"...\n");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "metadata"), "name")), "it's");
	{
		json_t *ann = json_object_get(json_object_get(root, "metadata"), "annotations");

		ck_assert_str_eq(json_string_value(json_object_get(ann, "ключ/ü")), "значение ✓");
		ck_assert_str_eq(json_string_value(json_object_get(ann, "folded")), "one two\n");
		ck_assert_str_eq(json_string_value(json_object_get(ann, "literal")), "line 1\n  indented\n");
		ck_assert_str_eq(json_string_value(json_object_get(ann, "keep")), "x\n\n");
		ck_assert_str_eq(json_string_value(json_object_get(ann, "strip")), "y");
		ck_assert_str_eq(json_string_value(json_object_get(ann, "esc")), "tab\there\n\xc3\xa9");
	}
	/* a flow mapping under stringData stays a mapping (the seal command refuses it) */
	ck_assert(json_is_object(json_object_get(json_object_get(root, "stringData"), "flow")));
	json_decref(root);
	/* a long value */
	ck_assert_int_ge(asprintf(&text, "kind: Secret\nstringData:\n  long: %s\n", big), 0);
	root = parse_ok(text);
	ck_assert_uint_eq(json_string_length(json_object_get(json_object_get(root, "stringData"), "long")), 200000);
	json_decref(root);
	free(text);
	free(big);
}
END_TEST

START_TEST(multi_document_refused)
{
	struct lk_error err;

	parse_fail("kind: Secret\n---\nkind: ConfigMap\n", &err);
	ck_assert_msg(strstr(err.msg, "in.yaml:2:") != NULL, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "document 2") != NULL, "%s", err.msg);
	parse_fail("", &err);
	ck_assert_ptr_nonnull(strstr(err.msg, "no document"));
	parse_fail("- a\n- b\n", &err);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a mapping"));
}
END_TEST

START_TEST(aliases_refused_quickly)
{
	struct lk_error err;
	struct timespec a, b;
	const char *laughs =
		"a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
		"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
		"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
		"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
		"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
		"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
		"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
		"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";

	clock_gettime(CLOCK_MONOTONIC, &a);
	parse_fail(laughs, &err);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ck_assert_msg(strstr(err.msg, "in.yaml:2:") != NULL, "%s", err.msg);
	ck_assert_ptr_nonnull(strstr(err.msg, "aliases"));
	ck_assert_int_lt(b.tv_sec - a.tv_sec, 5);
	parse_fail("a: &x 1\nb: *x\n", &err);
	ck_assert_msg(strstr(err.msg, "in.yaml:2:4") != NULL, "%s", err.msg);
	parse_fail("? [a]\n: b\n", &err);
	ck_assert_ptr_nonnull(strstr(err.msg, "keys must be scalars"));
}
END_TEST

START_TEST(duplicates_and_syntax_errors)
{
	struct lk_error err;

	parse_fail("a: 1\nb: 2\na: 3\n", &err);
	ck_assert_msg(strstr(err.msg, "in.yaml:3:1: duplicate key 'a'") != NULL, "%s", err.msg);
	parse_fail("a: [1, 2\n", &err);
	ck_assert_msg(strncmp(err.msg, "in.yaml:", 8) == 0, "%s", err.msg);
	parse_fail("a: b\n c: d\n", &err);
	ck_assert_msg(strstr(err.msg, "in.yaml:2:") != NULL, "%s", err.msg);
	parse_fail("a: !!int abc\n", &err);
	ck_assert_ptr_nonnull(strstr(err.msg, "explicit tag"));
	/* JSON errors name the place, never the text there (it may be a secret value) */
	parse_fail("{\"stringData\": {\"pw\": \"SECRET-VALUE\" x}}", &err);
	ck_assert_msg(strncmp(err.msg, "in.yaml:1:", 10) == 0, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "SECRET") == NULL, "%s", err.msg);
	parse_fail("{\"stringData\": {\"pw\": \"SECRET-VALUE\x01\"}}", &err);
	ck_assert_msg(strstr(err.msg, "SECRET") == NULL, "%s", err.msg);
	parse_fail("{\"stringData\": {\"pw\": \"SECRET-VALUE", &err);
	ck_assert_msg(strstr(err.msg, "SECRET") == NULL, "%s", err.msg);
}
END_TEST

START_TEST(bounds)
{
	struct lk_error err;
	char *text = malloc(LK_MANIFEST_MAX + 2);
	size_t n = 0;
	json_t *root = NULL;

	memset(text, ' ', LK_MANIFEST_MAX + 1);
	text[LK_MANIFEST_MAX + 1] = '\0';
	ck_assert_int_eq(lk_manifest_parse(text, LK_MANIFEST_MAX + 1, "big.yaml", &root, NULL, &err), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "big.yaml"));
	/* nesting */
	n = 0;
	for (int i = 0; i < LK_MANIFEST_DEPTH_MAX + 5; i++)
		text[n++] = '[';
	text[n] = '\0';
	n = strlen(strcpy(text, "a: ")) ;
	for (int i = 0; i < LK_MANIFEST_DEPTH_MAX + 5; i++)
		text[n++] = '[';
	for (int i = 0; i < LK_MANIFEST_DEPTH_MAX + 5; i++)
		text[n++] = ']';
	text[n++] = '\n';
	text[n] = '\0';
	ck_assert_int_eq(lk_manifest_parse(text, n, "deep.yaml", &root, NULL, &err), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "nesting"));
	/* node count */
	n = strlen(strcpy(text, "a: ["));
	for (int i = 0; i < LK_MANIFEST_NODES_MAX + 10; i++) {
		memcpy(text + n, "1,", 2);
		n += 2;
	}
	memcpy(text + n, "1]\n", 4);
	n += 3;
	ck_assert_int_eq(lk_manifest_parse(text, n, "wide.yaml", &root, NULL, &err), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "too many nodes"));
	free(text);
}
END_TEST

START_TEST(json_input)
{
	struct lk_error err;
	enum lk_manifest_format f = LK_MANIFEST_YAML;
	json_t *root = NULL;
	const char *ok = "  {\"kind\": \"Secret\", \"data\": {\"a\": \"YQ==\"}, \"n\": 5}";
	const char *dup = "{\"a\": 1,\n \"a\": 2}";

	ck_assert_int_eq(lk_manifest_parse(ok, strlen(ok), "in.json", &root, &f, &err), 0);
	ck_assert_int_eq(f, LK_MANIFEST_JSON);
	ck_assert_int_eq(json_integer_value(json_object_get(root, "n")), 5);
	json_decref(root);
	root = NULL;
	ck_assert_int_eq(lk_manifest_parse(dup, strlen(dup), "in.json", &root, &f, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "in.json:2:") != NULL, "%s", err.msg);
	ck_assert_int_eq(lk_manifest_parse("{} {}", 5, "in.json", &root, &f, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "in.json:1:"));
	/* a YAML flow mapping is not JSON but is a manifest */
	ck_assert_int_eq(lk_manifest_parse("{kind: Secret, data: {a: 1}}", 28, "flow.yaml", &root, &f, &err), 0);
	ck_assert_int_eq(f, LK_MANIFEST_YAML);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "data"), "a")), "1");
	json_decref(root);
	root = NULL;
	ck_assert_int_eq(lk_manifest_parse("[1]", 3, "in.json", &root, &f, &err), -EINVAL);
}
END_TEST

START_TEST(dump_round_trips)
{
	static const char *tricky[] = { "yes", "No", "on", "y", "123", "0777", "0x1F", "1e3", "1.5",
		"", "null", "~", ".inf", "-.inf", ".nan", " lead", "trail ", "a: b", "#x", "- x",
		"multi\nline", "trail\n", "\n", "ключ ✓", "'quoted'", "\"dq\"", "tab\there",
		"@at", "`tick", "%pct", "{brace", "[bracket", "*star", "&amp", "!bang", "|pipe",
		">gt", "?q", "a #b", "key:", "2001-12-14", "=", "<<", NULL };
	json_t *root = json_object(), *arr = json_array(), *again = NULL;
	enum lk_manifest_format formats[] = { LK_MANIFEST_YAML, LK_MANIFEST_JSON };
	struct lk_error err;

	for (size_t i = 0; tricky[i] != NULL; i++) {
		json_array_append_new(arr, json_string(tricky[i]));
		json_object_set_new(root, tricky[i][0] ? tricky[i] : "empty", json_string(tricky[i]));
	}
	json_object_set_new(root, "list", arr);
	json_object_set_new(root, "int", json_integer(-42));
	json_object_set_new(root, "real", json_real(2.5));
	json_object_set_new(root, "whole real", json_real(3.0));
	json_object_set_new(root, "t", json_true());
	json_object_set_new(root, "nil", json_null());
	json_object_set_new(root, "nested", json_pack("{s:{s:[i,s]}}", "a", "b", 1, "two"));
	for (size_t f = 0; f < 2; f++) {
		char *text = NULL;
		size_t len = 0;

		ck_assert_int_eq(lk_manifest_dump(root, formats[f], &text, &len, &err), 0);
		ck_assert_uint_eq(strlen(text), len);
		ck_assert(text[len - 1] == '\n');
		ck_assert_int_eq(lk_manifest_parse(text, len, "dump", &again, NULL, &err), 0);
		ck_assert_msg(json_equal(root, again), "format %zu did not round-trip:\n%s", f, text);
		/* key order is kept */
		ck_assert_str_eq(json_object_iter_key(json_object_iter(again)), "yes");
		json_decref(again);
		free(text);
	}
	json_decref(root);
}
END_TEST

struct collected {
	unsigned n;
	unsigned lines[8];
	json_int_t data_line;
};

static int
collect(const struct lk_manifest_doc *doc, void *arg)
{
	struct collected *c = arg;

	if (c->n < 8)
		c->lines[c->n] = doc->line;
	if (c->n == 1)
		c->data_line = json_integer_value(json_object_get(doc->key_lines, "data"));
	c->n++;
	return 0;
}

START_TEST(parse_all_documents)
{
	const char *text = "kind: A\n---\n# c\nkind: Secret\nmetadata: {}\ndata:\n  a: b\n---\n---\nkind: C\n";
	struct collected c = { 0, { 0 }, 0 };
	struct lk_error err;

	ck_assert_int_eq(lk_manifest_parse_all(text, strlen(text), "m.yaml", collect, &c, &err), 0);
	ck_assert_uint_eq(c.n, 3);
	ck_assert_uint_eq(c.lines[0], 1);
	ck_assert_uint_eq(c.lines[1], 4);
	ck_assert_int_eq(c.data_line, 6);
	ck_assert_uint_eq(c.lines[2], 10);
}
END_TEST

static int
keep_root(const struct lk_manifest_doc *doc, void *arg)
{
	json_t **ret = arg;

	*ret = json_incref(doc->root);
	return 0;
}

/* The scanner's reader: aliases are null (not expanded), repeated keys are all kept;
 * the strict reader still refuses both. */
START_TEST(lenient_reader_for_scanning)
{
	const char *alias = "a: &x [1, 2]\nb: *x\nstringData:\n  pw: *x\n";
	const char *dup = "kind: Secret\ndata: {pw: AAAA}\ndata:\n  pw: BBBB\n  pw: CCCC\n";
	const char *dup_json = "{\"data\": {\"pw\": \"A\", \"pw\": \"B\"}}";
	struct lk_error err;
	json_t *root = NULL;
	char bomb[4096];
	size_t n = 0;

	ck_assert_int_lt(lk_manifest_parse_all(alias, strlen(alias), "a", keep_root, &root, &err), 0);
	ck_assert_int_eq(lk_manifest_parse_all_lenient(alias, strlen(alias), "a", keep_root, &root,
						       &err), 0);
	ck_assert(json_is_null(json_object_get(root, "b")));
	ck_assert(json_is_null(json_object_get(json_object_get(root, "stringData"), "pw")));
	json_decref(root);
	root = NULL;

	ck_assert_int_lt(lk_manifest_parse_all(dup, strlen(dup), "d", keep_root, &root, &err), 0);
	ck_assert_int_eq(lk_manifest_parse_all_lenient(dup, strlen(dup), "d", keep_root, &root, &err), 0);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "data"), "pw")), "AAAA");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "data (duplicate 3)"),
							   "pw")), "BBBB");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "data (duplicate 3)"),
							   "pw (duplicate 2)")), "CCCC");
	json_decref(root);
	root = NULL;

	ck_assert_int_lt(lk_manifest_parse_all(dup_json, strlen(dup_json), "j", keep_root, &root, &err), 0);
	ck_assert_int_eq(lk_manifest_parse_all_lenient(dup_json, strlen(dup_json), "j", keep_root,
						       &root, &err), 0);
	ck_assert_uint_eq(json_object_size(json_object_get(root, "data")), 2);
	json_decref(root);
	root = NULL;

	/* a billion laughs stays small: nothing is expanded */
	n += (size_t)snprintf(bomb + n, sizeof(bomb) - n, "a: &a [x, x, x, x, x, x, x, x, x]\n");
	for (char c = 'b'; c <= 'j'; c++)
		n += (size_t)snprintf(bomb + n, sizeof(bomb) - n,
				      "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", c, c,
				      c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
	ck_assert_int_eq(lk_manifest_parse_all_lenient(bomb, n, "bomb", keep_root, &root, &err), 0);
	ck_assert_uint_eq(json_array_size(json_object_get(root, "j")), 9);
	ck_assert(json_is_null(json_array_get(json_object_get(root, "j"), 0)));
	json_decref(root);
}
END_TEST

START_TEST(names)
{
	ck_assert(lk_manifest_secret_key_valid("tls.crt", 7));
	ck_assert(lk_manifest_secret_key_valid("A-b_c.9", 7));
	ck_assert(!lk_manifest_secret_key_valid("", 0));
	ck_assert(!lk_manifest_secret_key_valid("a/b", 3));
	ck_assert(!lk_manifest_secret_key_valid("a b", 3));
	/* The length given is what is checked: a NUL inside fails. */
	ck_assert(!lk_manifest_secret_key_valid("ab\0c", 4));
	{
		char k[LK_MANIFEST_NAME_MAX + 2];

		memset(k, 'k', sizeof(k));
		ck_assert(lk_manifest_secret_key_valid(k, LK_MANIFEST_NAME_MAX));
		ck_assert(!lk_manifest_secret_key_valid(k, LK_MANIFEST_NAME_MAX + 1));
	}
	ck_assert(lk_manifest_subdomain_valid("db-creds"));
	ck_assert(lk_manifest_subdomain_valid("a.b-c.d9"));
	ck_assert(!lk_manifest_subdomain_valid("Db"));
	ck_assert(!lk_manifest_subdomain_valid("-a"));
	ck_assert(!lk_manifest_subdomain_valid("a-"));
	ck_assert(!lk_manifest_subdomain_valid("a..b"));
	ck_assert(!lk_manifest_subdomain_valid("a.-b"));
	ck_assert(!lk_manifest_subdomain_valid(""));
	ck_assert(lk_manifest_label_valid("team-a"));
	ck_assert(!lk_manifest_label_valid("team.a"));
	ck_assert(!lk_manifest_label_valid("0123456789012345678901234567890123456789012345678901234567890123"));
	ck_assert(lk_manifest_label_valid("012345678901234567890123456789012345678901234567890123456789012"));
}
END_TEST

static Suite *
manifest_suite(void)
{
	Suite *s = suite_create("manifest");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, yaml11_scalars_outside_data);
	tcase_add_test(tc, data_values_are_strings);
	tcase_add_test(tc, list_items_data_are_strings);
	tcase_add_test(tc, odd_but_valid_shapes);
	tcase_add_test(tc, multi_document_refused);
	tcase_add_test(tc, aliases_refused_quickly);
	tcase_add_test(tc, duplicates_and_syntax_errors);
	tcase_add_test(tc, bounds);
	tcase_add_test(tc, json_input);
	tcase_add_test(tc, dump_round_trips);
	tcase_add_test(tc, parse_all_documents);
	tcase_add_test(tc, lenient_reader_for_scanning);
	tcase_add_test(tc, names);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(manifest_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
