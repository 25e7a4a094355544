/* cmd_scan.c — `latchkey scan [PATH...] [--staged]`: finds plaintext secrets before they
 * reach Git. Prints "file:line: why" for each finding (never the secret itself); exit 1
 * when something was found, 0 when clean, 2 on usage or read errors. */
#include "cli/seal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/buf.h"
#include "common/file.h"

/* Files larger than this are skipped (with a note): no manifest or source file is. */
#define SCAN_FILE_MAX (8u << 20)
/* Bytes looked at to tell a binary file (a NUL among them) from text. */
#define SCAN_BINARY_PROBE 8000
/* The deepest directory recursion. */
#define SCAN_DEPTH_MAX 64
/* The most staged paths read from git. */
#define SCAN_STAGED_MAX 100000
/* A line holding this is not reported (for documentation and test fixtures). */
#define SCAN_ALLOW_MARK "latchkey-scan: allow"
/* A token with fewer distinct characters than a third of its length (and at least
 * this many) is a placeholder such as XXXX… and is not reported. */
#define SCAN_MIN_DISTINCT 8

struct rule {
	const char *pattern;
	const char *why;
	int group;           /* the capture group holding the token, for the randomness test */
	bool random;   /* report only tokens that look random */
	regex_t re;
};

static struct rule rules[] = {
	{ "-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----", "private key PEM block", 0, false, { 0 } },
	{ "lk1priv:[A-Za-z0-9+/]{43}=", "latchkey lk1 private key", 0, false, { 0 } },
	{ "(^|[^A-Za-z0-9])((AKIA|ASIA)[A-Z0-9]{16})([^A-Za-z0-9]|$)", "AWS access key id", 2, true, { 0 } },
	{ "(^|[^A-Za-z0-9_])(gh[pousr]_[A-Za-z0-9]{36})", "GitHub token", 2, true, { 0 } },
	{ "(github_pat_[A-Za-z0-9_]{22,})", "GitHub fine-grained token", 1, true, { 0 } },
	{ "(xox[abposr]-[A-Za-z0-9-]{10,})", "Slack token", 1, true, { 0 } },
	{ "(^|[^A-Za-z0-9_.])(hv[sbr]\\.[A-Za-z0-9_-]{24,})", "Vault token", 2, true, { 0 } },
	{ "(^|[^A-Za-z0-9_./])(s\\.[A-Za-z0-9]{24})([^A-Za-z0-9]|$)", "Vault token (legacy s.)", 2, true, { 0 } },
};
#define NRULES (sizeof(rules) / sizeof(rules[0]))

struct scan {
	size_t findings, files;
	int errors;
};

/* Random tokens use many distinct characters; placeholders do not. */
static bool
looks_random(const char *s, size_t n)
{
	bool seen[256] = { false };
	size_t distinct = 0;

	for (size_t i = 0; i < n; i++) {
		if (!seen[(unsigned char)s[i]]) {
			seen[(unsigned char)s[i]] = true;
			distinct++;
		}
	}
	return distinct >= SCAN_MIN_DISTINCT && distinct * 3 >= n;
}

static void
report(struct scan *s, const char *file, unsigned line, const char *why)
{
	printf("%s:%u: %s\n", file, line, why);
	s->findings++;
}

static bool
line_allowed(const char *text, size_t len, unsigned line)
{
	const char *p = text, *end = text + len;

	for (unsigned l = 1; l < line && p < end; l++) {
		p = memchr(p, '\n', (size_t)(end - p));
		if (p == NULL)
			return false;
		p++;
	}
	if (p >= end)
		return false;
	const char *eol = memchr(p, '\n', (size_t)(end - p));
	size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
	return memmem(p, n, SCAN_ALLOW_MARK, strlen(SCAN_ALLOW_MARK)) != NULL;
}

static void
scan_tokens(struct scan *s, const char *name, const char *text, size_t len)
{
	char *copy = malloc(len + 1), *line;
	unsigned lineno = 0;

	if (copy == NULL) {
		fprintf(stderr, "latchkey scan: %s: out of memory\n", name);
		s->errors++;
		return;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	line = copy;
	while (line != NULL && line <= copy + len) {
		char *nl = strchr(line, '\n');

		if (nl != NULL)
			*nl = '\0';
		lineno++;
		if (strstr(line, SCAN_ALLOW_MARK) == NULL) {
			for (size_t i = 0; i < NRULES; i++) {
				regmatch_t m[6];
				const char *from = line;

				/* Several candidates on one line: the first real one is reported. */
				while (regexec(&rules[i].re, from, 6, m, from == line ? 0 : REG_NOTBOL) == 0) {
					regmatch_t *g = &m[rules[i].group];
					const char *tok = from + g->rm_so;
					size_t tlen = (size_t)(g->rm_eo - g->rm_so);

					if (!rules[i].random ||
					    (looks_random(tok, tlen) &&
					     memmem(tok, tlen, "EXAMPLE", 7) == NULL)) {
						report(s, name, lineno, rules[i].why);
						break;
					}
					/* Go on from the end of the token, not of the match: the match
					 * may have taken the separator that the next token's pattern
					 * needs in front of it ("AKIA…EXAMPLE,AKIA…"). */
					if (g->rm_eo <= 0)
						break;
					from += g->rm_eo;
				}
			}
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
	free(copy);
}

/* Is text a well-formed lk1 envelope (prefix, base64, version, length)? "lk1:" in front
 * of a plain value is not. */
static bool
is_lk1_text(const char *text, size_t len)
{
	char id[LK_KEY_ID_HEX + 1];

	return lk1_key_id(text, len, id, sizeof(id)) == 0;
}

/* A Secret value that is already lk1 ciphertext (encrypted at source) is fine. */
static bool
value_is_sealed(const json_t *v, bool base64)
{
	const char *s = json_string_value(v);
	struct lk_secret *dec = NULL;
	bool sealed;

	if (s == NULL)
		return false;
	if (!base64)
		return is_lk1_text(s, json_string_length(v));
	if (lk_b64_decode(s, json_string_length(v), LK_B64_STD, &dec) < 0)
		return false;
	sealed = is_lk1_text(lk_secret_cstr(dec), lk_secret_len(dec));
	lk_secret_free(dec);
	return sealed;
}

static bool
holds_plaintext(const json_t *field, bool base64)
{
	const char *k;
	json_t *v;

	if (!json_is_object(field))
		return false;
	json_object_foreach((json_t *)field, k, v) {
		if (!value_is_sealed(v, base64))
			return true;
	}
	return false;
}

struct doc_ctx {
	struct scan *s;
	const char *name;
	const char *text;
	size_t len;
};

/* field, or field repeated in the document ("field (duplicate N)" from the lenient
 * reader): a repeated data: must be looked at too. */
static bool
is_field(const char *key, const char *field)
{
	size_t n = strlen(field);

	return strncmp(key, field, n) == 0 &&
	       (key[n] == '\0' || strncmp(key + n, " (duplicate ", 12) == 0);
}

static void
check_resource(struct doc_ctx *c, const json_t *obj, const struct lk_manifest_doc *doc)
{
	const char *kind = lk_sealing_str(obj, "kind");
	const char *fields[] = { "data", "stringData" };
	const char *key;
	json_t *value;

	if (kind != NULL && strcmp(kind, "List") == 0) {
		size_t i;
		json_t *item;

		json_array_foreach(json_object_get(obj, "items"), i, item)
			check_resource(c, item, doc);
		return;
	}
	if (kind == NULL || strcmp(kind, "Secret") != 0)
		return;
	json_object_foreach((json_t *)obj, key, value) {
		for (size_t i = 0; i < 2; i++) {
			json_int_t line;
			char why[96];

			if (!is_field(key, fields[i]) || !holds_plaintext(value, i == 0))
				continue;
			line = json_integer_value(json_object_get(doc->key_lines, key));
			if (obj != doc->root || line <= 0)
				line = doc->line;
			if (line_allowed(c->text, c->len, (unsigned)line))
				continue;
			snprintf(why, sizeof(why),
				 "kind: Secret with plaintext %s (seal it: latchkey seal)", fields[i]);
			report(c->s, c->name, (unsigned)line, why);
		}
	}
}

static int
on_doc(const struct lk_manifest_doc *doc, void *arg)
{
	check_resource(arg, doc->root, doc);
	return 0;
}

static void
scan_text(struct scan *s, const char *name, const char *text, size_t len)
{
	struct doc_ctx c = { s, name, text, len };
	size_t probe = len < SCAN_BINARY_PROBE ? len : SCAN_BINARY_PROBE;

	if (memchr(text, '\0', probe) != NULL)
		return;
	s->files++;
	scan_tokens(s, name, text, len);
	if (memmem(text, len, "Secret", 6) != NULL) {
		struct lk_error err;

		/* Not every file is a manifest (templates, other YAML): a parse error is
		 * not a finding; the token rules above still ran. */
		if (lk_manifest_parse_all_lenient(text, len, name, on_doc, &c, &err) < 0)
			return;
	}
}

/* Reads everything from fd, at most max bytes; *ret is owned (free). */
static int
read_fd(int fd, size_t max, char **ret, size_t *ret_len)
{
	struct lk_buf b;
	int r;

	lk_buf_init(&b, max, false);
	if ((r = lk_fd_read_all(fd, &b)) == 0)
		return lk_buf_take(&b, ret, ret_len);
	lk_buf_free(&b);
	return r;
}

static void
scan_file(struct scan *s, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		fprintf(stderr, "latchkey scan: %s: %s\n", path, strerror(errno));
		s->errors++;
		return;
	}
	r = read_fd(fd, SCAN_FILE_MAX, &text, &len);
	close(fd);
	if (r == -E2BIG) {
		fprintf(stderr, "latchkey scan: %s: larger than %u bytes, skipped\n", path,
			SCAN_FILE_MAX);
		return;
	}
	if (r < 0) {
		fprintf(stderr, "latchkey scan: %s: %s\n", path, strerror(-r));
		s->errors++;
		return;
	}
	scan_text(s, path, text, len);
	free(text);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
scan_path(struct scan *s, const char *path, unsigned depth)
{
	struct stat st;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	if (lstat(path, &st) < 0) {
		fprintf(stderr, "latchkey scan: %s: %s\n", path, strerror(errno));
		s->errors++;
		return;
	}
	if (S_ISREG(st.st_mode)) {
		scan_file(s, path);
		return;
	}
	if (!S_ISDIR(st.st_mode))
		return;
	if (depth > SCAN_DEPTH_MAX) {
		fprintf(stderr, "latchkey scan: %s: deeper than %d directories, skipped\n", path,
			SCAN_DEPTH_MAX);
		return;
	}
	d = opendir(path);
	if (d == NULL) {
		fprintf(stderr, "latchkey scan: %s: %s\n", path, strerror(errno));
		s->errors++;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char *child;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, ".git") == 0)
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap ? cap * 2 : 64) * sizeof(*names));

			if (nn == NULL)
				break;
			names = nn;
			cap = cap ? cap * 2 : 64;
		}
		if (asprintf(&child, "%s/%s", strcmp(path, "/") == 0 ? "" : path, de->d_name) < 0)
			break;
		names[n++] = child;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		scan_path(s, names[i], depth + 1);
		free(names[i]);
	}
	free(names);
}

/* Runs git with args, its stdout into *ret (at most max bytes). Returns 0 or -errno;
 * -ECHILD when git exited non-zero. */
static int
run_git(const char *const args[], size_t max, char **ret, size_t *ret_len)
{
	int pipefd[2], status = 0, r;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return r;
	}
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		execvp("git", (char *const *)args);
		_exit(127);
	}
	close(pipefd[1]);
	r = read_fd(pipefd[0], max, ret, ret_len);
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		free(*ret);
		*ret = NULL;
		r = -ECHILD;
	}
	return r;
}

static void
scan_staged(struct scan *s)
{
	static const char *const list_args[] = { "git", "diff", "--cached", "--name-only", "-z",
						  "--diff-filter=ACMR", NULL };
	char *list = NULL;
	size_t len = 0, count = 0;
	int r;

	r = run_git(list_args, SCAN_FILE_MAX, &list, &len);
	if (r < 0) {
		fprintf(stderr, "latchkey scan: git diff --cached failed (%s)\n",
			r == -ECHILD ? "not a Git work tree?" : strerror(-r));
		s->errors++;
		return;
	}
	for (size_t off = 0; off < len && count < SCAN_STAGED_MAX; count++) {
		const char *path = list + off;
		size_t plen = strnlen(path, len - off);
		char *spec = NULL, *blob = NULL;
		size_t blen = 0;

		off += plen + 1;
		if (plen == 0 || asprintf(&spec, ":%s", path) < 0)
			continue;
		const char *show_args[] = { "git", "show", spec, NULL };

		r = run_git(show_args, SCAN_FILE_MAX, &blob, &blen);
		free(spec);
		if (r == -E2BIG) {
			fprintf(stderr, "latchkey scan: %s: larger than %u bytes, skipped\n", path,
				SCAN_FILE_MAX);
			continue;
		}
		if (r < 0) {
			fprintf(stderr, "latchkey scan: %s: cannot read the staged blob\n", path);
			s->errors++;
			continue;
		}
		scan_text(s, path, blob, blen);
		free(blob);
	}
	free(list);
}

static void
scan_usage(FILE *f)
{
	fprintf(f, "usage: latchkey scan [PATH...] | latchkey scan --staged\n"
		"Reports plaintext secrets as FILE:LINE: WHY. Exit 1 when any is found, 0 when\n"
		"clean, 2 on errors. A line containing '" SCAN_ALLOW_MARK "' is not reported.\n");
}

int
cmd_scan(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "staged", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct scan s = { 0, 0, 0 };
	bool staged = false;
	size_t i;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': staged = true; break;
		case 'h':
			scan_usage(stdout);
			return LK_EXIT_OK;
		default:
			scan_usage(stderr);
			return LK_EXIT_USAGE;
		}
	}
	if (staged && optind < argc) {
		fprintf(stderr, "latchkey scan: --staged takes no paths\n");
		return LK_EXIT_USAGE;
	}
	if (lk_secret_init() < 0) {
		fprintf(stderr, "latchkey scan: libsodium failed to start\n");
		return LK_EXIT_USAGE;
	}
	for (i = 0; i < NRULES; i++) {
		if (regcomp(&rules[i].re, rules[i].pattern, REG_EXTENDED) != 0) {
			fprintf(stderr, "latchkey scan: internal pattern %zu does not compile\n", i);
			while (i-- > 0)
				regfree(&rules[i].re);
			return LK_EXIT_USAGE;
		}
	}
	if (staged) {
		scan_staged(&s);
	} else if (optind == argc) {
		scan_path(&s, ".", 0);
	} else {
		for (int a = optind; a < argc; a++)
			scan_path(&s, argv[a], 0);
	}
	for (i = 0; i < NRULES; i++)
		regfree(&rules[i].re);
	fflush(stdout);
	fprintf(stderr, "latchkey scan: %zu finding(s) in %zu file(s) scanned\n", s.findings,
		s.files);
	if (s.errors > 0)
		return LK_EXIT_USAGE;
	return s.findings > 0 ? LK_EXIT_FAILURE : LK_EXIT_OK;
}
