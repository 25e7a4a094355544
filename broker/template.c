/* template.c — the template language (template.h): lexer, parser, static checks and the
 * evaluator.
 *
 * The text is copied once; text pieces point into the copy. Every node, argument and
 * string of a compiled template comes from one list of allocations freed together. The
 * parser tracks what "." is statically (the root of every secret, one secret, or a value),
 * which is what lets a compile resolve every secret name to an index and refuse names
 * that are not configured: ".NAME" on the root, `secret "NAME"`, and `index . "NAME"`.
 * Values met while rendering are borrowed from the callers' json_t data, or are strings
 * made by the escaping functions, which are zeroed when freed.
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/template.h"

/* Longest identifier, field or variable name. */
#define TPL_NAME_MAX 256
/* Longest text one escaping function may make. */
#define TPL_TEXT_MAX (4u << 20)

/* ---- the compiled form ---- */

enum arg_kind {
	A_DOT,          /* "." */
	A_ROOT,         /* "$" */
	A_VAR,          /* "$name" */
	A_STRING,       /* "..." or `...` */
	A_NUMBER,       /* 123 */
	A_FUNC,         /* a function name: the command's first argument */
	A_PIPE,         /* ( pipeline ) */
	A_KEY,          /* a bare name in a secret's own file: one of its keys (older syntax) */
};

enum skind { S_ROOT, S_SECRET, S_OTHER };

struct tpipe;

struct targ {
	enum arg_kind kind;
	const char *str;            /* A_STRING (decoded), A_FUNC, A_KEY: the text */
	size_t len;
	long long num;
	int var;                    /* A_VAR: the slot */
	struct tpipe *pipe;         /* A_PIPE */
	const char **fields;        /* a .a.b chain applied to the value */
	size_t nfields;
	size_t root_secret;         /* the first field on a root value: that secret's index */
	size_t secret;              /* A_FUNC "secret", A_STRING under index of the root */
};

struct tcmd {
	struct targ *args;
	size_t nargs;
};

struct tpipe {
	struct tcmd *cmds;
	size_t ncmds;
	int line;
};

enum node_kind { N_TEXT, N_OUT, N_IF, N_WITH, N_RANGE };

struct tnode;

struct tlist {
	struct tnode **v;
	size_t n, cap;
};

struct tnode {
	enum node_kind kind;
	int line;
	const char *text;           /* N_TEXT */
	size_t len;
	struct tpipe *pipe;
	struct tlist body, other;   /* other: the else branch */
	int var_k, var_v;           /* N_RANGE: slots of $k and $v, -1 when absent */
};

struct broker_template {
	char *text;                 /* the copy that text nodes point into */
	char origin[BROKER_TPL_ORIGIN_MAX];
	size_t self;
	size_t nnames;
	char **names;               /* copies of the configured names, for messages */
	bool *reads;                /* nnames */
	size_t *deps;
	size_t ndeps;
	struct tlist root;
	int nslots;
	void **allocs;
	size_t nallocs, allocs_cap;
};

/* ---- allocation ---- */

static void *
tpl_alloc(struct broker_template *t, size_t n)
{
	void *p;

	if (t->nallocs == t->allocs_cap) {
		size_t cap = t->allocs_cap ? t->allocs_cap * 2 : 64;
		void **v = realloc(t->allocs, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		t->allocs = v;
		t->allocs_cap = cap;
	}
	if ((p = calloc(1, n ? n : 1)) == NULL)
		return NULL;
	t->allocs[t->nallocs++] = p;
	return p;
}

static void *
tpl_grow(struct broker_template *t, void *old, size_t oldn, size_t newn)
{
	void *p = tpl_alloc(t, newn);

	if (p != NULL && old != NULL)
		memcpy(p, old, oldn);
	/* The old block stays on the list and goes with the template. */
	return p;
}

struct broker_template *
broker_template_free(struct broker_template *t)
{
	if (t == NULL)
		return NULL;
	for (size_t i = 0; i < t->nallocs; i++)
		free(t->allocs[i]);
	free(t->allocs);
	for (size_t i = 0; i < t->nnames; i++)
		free(t->names[i]);
	free(t->names);
	free(t->reads);
	free(t->deps);
	free(t->text);
	free(t);
	return NULL;
}

bool
broker_template_reads(const struct broker_template *t, size_t i)
{
	return t != NULL && i < t->nnames && t->reads[i];
}

size_t
broker_template_ndeps(const struct broker_template *t)
{
	return t != NULL ? t->ndeps : 0;
}

size_t
broker_template_dep(const struct broker_template *t, size_t n)
{
	return t != NULL && n < t->ndeps ? t->deps[n] : SIZE_MAX;
}

const char *
broker_template_secret_name(const struct broker_template *t, size_t i)
{
	return t != NULL && i < t->nnames ? t->names[i] : "";
}

static int
add_dep(struct broker_template *t, size_t i)
{
	if (i >= t->nnames || t->reads[i])
		return 0;
	t->reads[i] = true;
	t->deps[t->ndeps++] = i;
	return 0;
}

/* ---- the lexer ---- */

enum tk {
	TK_END,                     /* "}}" (or " -}}") */
	TK_IDENT, TK_FIELD, TK_DOT, TK_VAR, TK_STRING, TK_NUMBER,
	TK_PIPE, TK_LPAREN, TK_RPAREN, TK_DECLARE, TK_COMMA,
};

struct token {
	enum tk kind;
	const char *s;              /* the name (fields and variables: without . or $) */
	size_t n;
	bool space_before;
	int line;
};

struct parser {
	struct broker_template *t;
	const char *p, *end;        /* the action being lexed */
	int line;
	struct token tok;           /* the current token */
	bool have_tok;
	struct lk_error *err;
	int depth;
	size_t nodes;
	/* variables in scope: names and slots */
	const char *var_names[BROKER_TPL_VARS_MAX];
	size_t var_lens[BROKER_TPL_VARS_MAX];
	int var_slots[BROKER_TPL_VARS_MAX];
	int nvars;
	bool trim_next;             /* the action ended with " -}}" */
};

static int
perr(struct parser *ps, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
perr(struct parser *ps, int line, const char *fmt, ...)
{
	char what[LK_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return lk_error_set(ps->err, -EINVAL, "%s:%d: %s", ps->t->origin, line, what);
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool
is_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_name_char(char c)
{
	/* '-' is not Go's, but no valid Go template holds it there, and names such as
	 * ".db-main" are common. */
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

/* Is p at the closing "}}" of the action, or at " -}}"? */
static bool
at_close(const struct parser *ps, const char *p, bool *trim, size_t *skip)
{
	if (ps->end - p >= 2 && p[0] == '}' && p[1] == '}') {
		*trim = false;
		*skip = 2;
		return true;
	}
	if (ps->end - p >= 4 && is_space(p[0]) && p[1] == '-' && p[2] == '}' && p[3] == '}') {
		*trim = true;
		*skip = 4;
		return true;
	}
	return false;
}

/* Reads the next token of the action into ps->tok. */
static int
lex(struct parser *ps)
{
	const char *p = ps->p, *start;
	struct token *tk = &ps->tok;
	bool space = false, trim;
	size_t skip;

	for (;;) {
		if (at_close(ps, p, &trim, &skip)) {
			memset(tk, 0, sizeof(*tk));
			tk->kind = TK_END;
			tk->line = ps->line;
			tk->space_before = space;
			ps->trim_next = trim;
			ps->p = p;          /* the caller moves past it */
			return 0;
		}
		if (p >= ps->end)
			return perr(ps, ps->line, "an action is not closed with \"}}\"");
		if (!is_space(*p))
			break;
		if (*p == '\n')
			ps->line++;
		p++;
		space = true;
	}
	memset(tk, 0, sizeof(*tk));
	tk->space_before = space;
	tk->line = ps->line;
	start = p;
	if (*p == '.') {
		p++;
		if (p < ps->end && is_name_start(*p)) {
			tk->kind = TK_FIELD;
			tk->s = p;
			while (p < ps->end && is_name_char(*p) && !(*p == '-' && p + 1 < ps->end &&
								     p[1] == '}'))
				p++;
			tk->n = (size_t)(p - tk->s);
		} else {
			tk->kind = TK_DOT;
		}
	} else if (*p == '$') {
		p++;
		tk->kind = TK_VAR;
		tk->s = p;
		while (p < ps->end && is_name_char(*p) && *p != '-')
			p++;
		tk->n = (size_t)(p - tk->s);
	} else if (is_name_start(*p)) {
		tk->kind = TK_IDENT;
		tk->s = p;
		while (p < ps->end && is_name_char(*p) && *p != '-')
			p++;
		tk->n = (size_t)(p - tk->s);
	} else if (*p >= '0' && *p <= '9') {
		tk->kind = TK_NUMBER;
		tk->s = p;
		while (p < ps->end && *p >= '0' && *p <= '9')
			p++;
		tk->n = (size_t)(p - tk->s);
		if (tk->n > 9)
			return perr(ps, ps->line, "number too large");
	} else if (*p == '"' || *p == '`') {
		char q = *p++;

		tk->kind = TK_STRING;
		tk->s = p;
		while (p < ps->end && *p != q) {
			if (q == '"' && *p == '\\' && p + 1 < ps->end)
				p++;
			else if (q == '"' && *p == '\n')
				return perr(ps, ps->line, "a string is not closed on its line");
			if (*p == '\n')
				ps->line++;
			p++;
		}
		if (p >= ps->end)
			return perr(ps, tk->line, "a string is not closed");
		tk->n = (size_t)(p - tk->s);
		tk->space_before = space;
		/* The quote kind is remembered in the byte before s. */
		p++;
	} else if (*p == '|') {
		tk->kind = TK_PIPE;
		p++;
	} else if (*p == '(') {
		tk->kind = TK_LPAREN;
		p++;
	} else if (*p == ')') {
		tk->kind = TK_RPAREN;
		p++;
	} else if (*p == ',') {
		tk->kind = TK_COMMA;
		p++;
	} else if (*p == ':' && p + 1 < ps->end && p[1] == '=') {
		tk->kind = TK_DECLARE;
		p += 2;
	} else {
		return perr(ps, ps->line, "unexpected character '%c' in an action",
			    (*p >= 0x20 && *p < 0x7f) ? *p : '?');
	}
	if (tk->n > TPL_NAME_MAX && tk->kind != TK_STRING)
		return perr(ps, tk->line, "a name longer than %d bytes", TPL_NAME_MAX);
	(void)start;
	ps->p = p;
	return 0;
}

static bool
tok_is(const struct token *tk, const char *word)
{
	return tk->kind == TK_IDENT && tk->n == strlen(word) && memcmp(tk->s, word, tk->n) == 0;
}

/* A copy of n bytes, NUL-terminated, owned by the template. */
static char *
tpl_strndup(struct broker_template *t, const char *s, size_t n)
{
	char *d = tpl_alloc(t, n + 1);

	if (d != NULL && n > 0)
		memcpy(d, s, n);
	return d;
}

/* Decodes a string literal's token: Go's escapes for "...", none for `...`. */
static int
decode_string(struct parser *ps, const struct token *tk, const char **ret, size_t *ret_len)
{
	char *d = tpl_alloc(ps->t, tk->n + 1);
	size_t o = 0;
	bool raw = tk->s[-1] == '`';

	if (d == NULL)
		return lk_error_set(ps->err, -ENOMEM, "%s: out of memory", ps->t->origin);
	for (size_t i = 0; i < tk->n; i++) {
		char c = tk->s[i];

		if (!raw && c == '\\') {
			char e = tk->s[++i];

			switch (e) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case '\\': c = '\\'; break;
			case '"': c = '"'; break;
			default:
				return perr(ps, tk->line, "unknown escape \"\\%c\" in a string",
					    (e >= 0x20 && e < 0x7f) ? e : '?');
			}
		}
		if (c == '\0')
			return perr(ps, tk->line, "a NUL byte in a string");
		d[o++] = c;
	}
	d[o] = '\0';
	*ret = d;
	*ret_len = o;
	return 0;
}

/* ---- the parser ---- */

static const char *const functions[] = { "secret", "index", "json", "shell", "yaml", "url",
	"base64", NULL };
static const char *const keywords[] = { "with", "range", "if", "else", "end", "define",
	"template", "block", "nil", "true", "false", NULL };

static bool
word_in(const char *s, size_t n, const char *const *list)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strlen(list[i]) == n && memcmp(list[i], s, n) == 0)
			return true;
	return false;
}

static size_t
secret_index(const struct broker_template *t, const char *s, size_t n)
{
	for (size_t i = 0; i < t->nnames; i++)
		if (strlen(t->names[i]) == n && memcmp(t->names[i], s, n) == 0)
			return i;
	return SIZE_MAX;
}

/* What a value is known to be while compiling. */
struct sval {
	enum skind kind;
	size_t secret;
};

static int parse_pipeline(struct parser *ps, struct sval dot, struct tpipe **ret,
			  struct sval *ret_kind, bool in_paren);

/* The chain of fields right after an operand (no blank in between). */
static int
parse_fields(struct parser *ps, struct targ *a, struct sval *kind)
{
	for (;;) {
		const char *name;
		size_t n = a->nfields;

		if (ps->tok.kind != TK_FIELD || ps->tok.space_before)
			return 0;
		if (n >= 64)
			return perr(ps, ps->tok.line, "a chain of more than 64 fields");
		if ((name = tpl_strndup(ps->t, ps->tok.s, ps->tok.n)) == NULL)
			return lk_error_set(ps->err, -ENOMEM, "%s: out of memory", ps->t->origin);
		a->fields = tpl_grow(ps->t, a->fields, n * sizeof(*a->fields),
				     (n + 1) * sizeof(*a->fields));
		if (a->fields == NULL)
			return lk_error_set(ps->err, -ENOMEM, "%s: out of memory", ps->t->origin);
		a->fields[n] = name;
		a->nfields = n + 1;
		if (kind->kind == S_ROOT) {
			size_t i = secret_index(ps->t, ps->tok.s, ps->tok.n);

			if (i == SIZE_MAX)
				return perr(ps, ps->tok.line, "no secret named \"%s\" is configured "
					    "(.NAME names a secret here)", name);
			a->root_secret = i;
			add_dep(ps->t, i);
			kind->kind = S_SECRET;
			kind->secret = i;
		} else {
			kind->kind = S_OTHER;
		}
		if (lex(ps) < 0)
			return -EINVAL;
	}
}

/* One operand; ps->tok is its first token. kind: what it is statically. */
static int
parse_operand(struct parser *ps, struct sval dot, struct targ *a, struct sval *kind)
{
	struct token tk = ps->tok;
	int rc;

	memset(a, 0, sizeof(*a));
	a->root_secret = SIZE_MAX;
	a->secret = SIZE_MAX;
	kind->kind = S_OTHER;
	kind->secret = SIZE_MAX;
	switch (tk.kind) {
	case TK_DOT:
		a->kind = A_DOT;
		*kind = dot;
		break;
	case TK_FIELD:
		/* ".a.b": fields of the dot; the chain below takes them all. */
		a->kind = A_DOT;
		*kind = dot;
		ps->tok.space_before = false;
		return parse_fields(ps, a, kind);
	case TK_VAR:
		if (tk.n == 0) {
			a->kind = A_ROOT;
			kind->kind = ps->t->self == SIZE_MAX ? S_ROOT : S_SECRET;
			kind->secret = ps->t->self;
		} else {
			int i;

			for (i = ps->nvars - 1; i >= 0; i--)
				if (ps->var_lens[i] == tk.n && memcmp(ps->var_names[i], tk.s, tk.n) == 0)
					break;
			if (i < 0)
				return perr(ps, tk.line, "undefined variable \"$%.*s\"", (int)tk.n, tk.s);
			a->kind = A_VAR;
			a->var = ps->var_slots[i];
		}
		break;
	case TK_STRING:
		a->kind = A_STRING;
		if ((rc = decode_string(ps, &tk, &a->str, &a->len)) < 0)
			return rc;
		break;
	case TK_NUMBER:
		a->kind = A_NUMBER;
		a->num = strtoll(tk.s, NULL, 10);
		break;
	case TK_LPAREN: {
		struct sval inner;

		if (++ps->depth > BROKER_TPL_DEPTH_MAX)
			return perr(ps, tk.line, "nested more than %d deep", BROKER_TPL_DEPTH_MAX);
		if ((rc = lex(ps)) < 0)
			return rc;
		a->kind = A_PIPE;
		if ((rc = parse_pipeline(ps, dot, &a->pipe, &inner, true)) < 0)
			return rc;
		ps->depth--;
		/* ps->tok is the ")" */
		*kind = inner;
		break;
	}
	case TK_IDENT:
		return perr(ps, tk.line, "\"%.*s\" cannot be used here", (int)tk.n, tk.s);
	default:
		return perr(ps, tk.line, "expected a value");
	}
	if ((rc = lex(ps)) < 0)
		return rc;
	return parse_fields(ps, a, kind);
}

/* The static kind of a function's result. */
static int
check_call(struct parser *ps, struct tcmd *cmd, const struct sval *kinds, int line,
	   struct sval *ret)
{
	struct targ *f = &cmd->args[0];
	size_t nargs = cmd->nargs - 1;

	ret->kind = S_OTHER;
	ret->secret = SIZE_MAX;
	if (f->len == 6 && memcmp(f->str, "secret", 6) == 0) {
		struct targ *name = &cmd->args[1];
		size_t i;

		if (nargs != 1 || name->kind != A_STRING || name->nfields > 0)
			return perr(ps, line, "secret takes one name in quotes: secret \"NAME\"");
		if ((i = secret_index(ps->t, name->str, name->len)) == SIZE_MAX)
			return perr(ps, line, "no secret named \"%s\" is configured", name->str);
		f->secret = i;
		add_dep(ps->t, i);
		ret->kind = S_SECRET;
		ret->secret = i;
		return 0;
	}
	if (f->len == 5 && memcmp(f->str, "index", 5) == 0) {
		struct sval k;

		if (nargs < 2)
			return perr(ps, line, "index takes a value and at least one key");
		k = kinds[1];
		for (size_t i = 2; i < cmd->nargs; i++) {
			struct targ *key = &cmd->args[i];

			if (k.kind == S_ROOT) {
				size_t s;

				if (key->kind != A_STRING || key->nfields > 0)
					return perr(ps, line, "index of every secret needs a name in "
						    "quotes");
				if ((s = secret_index(ps->t, key->str, key->len)) == SIZE_MAX)
					return perr(ps, line, "no secret named \"%s\" is configured",
						    key->str);
				key->secret = s;
				add_dep(ps->t, s);
				k.kind = S_SECRET;
				k.secret = s;
			} else {
				k.kind = S_OTHER;
			}
		}
		*ret = k;
		return 0;
	}
	if (nargs != 1)
		return perr(ps, line, "%s takes one value (\"{{ VALUE | %s }}\")", f->str, f->str);
	if (kinds[1].kind == S_ROOT)
		return perr(ps, line, "%s of every secret: name one secret", f->str);
	return 0;
}

/* command := operand fields* | FUNC arg* ; piped: the previous value is the last arg. */
static int
parse_command(struct parser *ps, struct sval dot, struct tcmd *cmd, bool piped,
	      const struct sval *prev, struct sval *ret)
{
	struct targ args[8];
	struct sval kinds[8];
	size_t n = 0;
	int line = ps->tok.line, rc;
	bool func = false;

	memset(args, 0, sizeof(args));
	if (ps->tok.kind == TK_IDENT) {
		struct token tk = ps->tok;

		if (word_in(tk.s, tk.n, keywords))
			return perr(ps, line, "\"%.*s\" cannot be used here", (int)tk.n, tk.s);
		if (!word_in(tk.s, tk.n, functions)) {
			if (ps->t->self == SIZE_MAX || piped)
				return perr(ps, line, "unknown function \"%.*s\" (there are secret, "
					    "index, json, shell, yaml, url and base64)", (int)tk.n, tk.s);
			/* The older syntax of a secret's own file: {{ KEY }}. */
			args[0].kind = A_KEY;
			args[0].root_secret = SIZE_MAX;
			args[0].secret = SIZE_MAX;
			if ((args[0].str = tpl_strndup(ps->t, tk.s, tk.n)) == NULL)
				return lk_error_set(ps->err, -ENOMEM, "%s: out of memory",
						    ps->t->origin);
			args[0].len = tk.n;
			add_dep(ps->t, ps->t->self);
			if ((rc = lex(ps)) < 0)
				return rc;
			/* A key takes no arguments: a name followed by more was meant as a
			 * function. */
			if (ps->tok.kind != TK_END && ps->tok.kind != TK_PIPE &&
			    ps->tok.kind != TK_RPAREN)
				return perr(ps, line, "unknown function \"%.*s\" (there are secret, "
					    "index, json, shell, yaml, url and base64)", (int)tk.n, tk.s);
			kinds[0].kind = S_OTHER;
			n = 1;
			goto done;
		}
		args[0].kind = A_FUNC;
		args[0].root_secret = SIZE_MAX;
		args[0].secret = SIZE_MAX;
		if ((args[0].str = tpl_strndup(ps->t, tk.s, tk.n)) == NULL)
			return lk_error_set(ps->err, -ENOMEM, "%s: out of memory", ps->t->origin);
		args[0].len = tk.n;
		n = 1;
		func = true;
		if ((rc = lex(ps)) < 0)
			return rc;
	} else if (piped) {
		return perr(ps, line, "after \"|\" comes a function");
	}
	while (ps->tok.kind != TK_END && ps->tok.kind != TK_PIPE && ps->tok.kind != TK_RPAREN) {
		if (n >= (sizeof(args) / sizeof(args[0])) - 1)
			return perr(ps, line, "too many arguments");
		if (!func && n > 0)
			return perr(ps, line, "a value cannot take arguments (a function name was "
				    "expected first)");
		if ((rc = parse_operand(ps, dot, &args[n], &kinds[n])) < 0)
			return rc;
		n++;
	}
	if (piped) {
		args[n].kind = A_DOT;   /* a placeholder: the piped value goes here */
		args[n].root_secret = SIZE_MAX;
		args[n].secret = SIZE_MAX;
		args[n].var = -2;
		kinds[n] = *prev;
		n++;
	}
	if (n == 0)
		return perr(ps, line, "an empty command");
done:
	cmd->args = tpl_alloc(ps->t, n * sizeof(*cmd->args));
	if (cmd->args == NULL)
		return lk_error_set(ps->err, -ENOMEM, "%s: out of memory", ps->t->origin);
	memcpy(cmd->args, args, n * sizeof(*cmd->args));
	cmd->nargs = n;
	if (func)
		return check_call(ps, cmd, kinds, line, ret);
	*ret = kinds[0];
	return 0;
}

static int
parse_pipeline(struct parser *ps, struct sval dot, struct tpipe **ret, struct sval *ret_kind,
	       bool in_paren)
{
	struct tpipe *pp = tpl_alloc(ps->t, sizeof(*pp));
	struct tcmd cmds[16];
	struct sval kind = { S_OTHER, SIZE_MAX };
	size_t n = 0;
	int rc;

	if (pp == NULL)
		return lk_error_set(ps->err, -ENOMEM, "%s: out of memory", ps->t->origin);
	pp->line = ps->tok.line;
	for (;;) {
		if (n >= sizeof(cmds) / sizeof(cmds[0]))
			return perr(ps, pp->line, "a pipeline of more than 16 commands");
		if (ps->tok.kind == TK_END || ps->tok.kind == TK_RPAREN)
			return perr(ps, ps->tok.line, "missing value");
		memset(&cmds[n], 0, sizeof(cmds[n]));
		if ((rc = parse_command(ps, dot, &cmds[n], n > 0, &kind, &kind)) < 0)
			return rc;
		n++;
		if (ps->tok.kind == TK_PIPE) {
			if ((rc = lex(ps)) < 0)
				return rc;
			continue;
		}
		break;
	}
	if (in_paren && ps->tok.kind != TK_RPAREN)
		return perr(ps, ps->tok.line, "expected \")\"");
	if (!in_paren && ps->tok.kind != TK_END)
		return perr(ps, ps->tok.line, ps->tok.kind == TK_RPAREN ? "unexpected \")\"" :
			    "unexpected text after the value");
	pp->cmds = tpl_alloc(ps->t, n * sizeof(*pp->cmds));
	if (pp->cmds == NULL)
		return lk_error_set(ps->err, -ENOMEM, "%s: out of memory", ps->t->origin);
	memcpy(pp->cmds, cmds, n * sizeof(*pp->cmds));
	pp->ncmds = n;
	*ret = pp;
	*ret_kind = kind;
	return 0;
}

static int
list_add(struct parser *ps, struct tlist *l, struct tnode *nd)
{
	if (++ps->nodes > BROKER_TPL_NODES_MAX)
		return lk_error_set(ps->err, -E2BIG, "%s: more than %d actions and text pieces",
				    ps->t->origin, BROKER_TPL_NODES_MAX);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct tnode **v = tpl_grow(ps->t, l->v, l->n * sizeof(*v), cap * sizeof(*v));

		if (v == NULL)
			return lk_error_set(ps->err, -ENOMEM, "%s: out of memory", ps->t->origin);
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = nd;
	return 0;
}

static struct tnode *
new_node(struct parser *ps, enum node_kind kind, int line)
{
	struct tnode *nd = tpl_alloc(ps->t, sizeof(*nd));

	if (nd == NULL) {
		lk_error_set(ps->err, -ENOMEM, "%s: out of memory", ps->t->origin);
		return NULL;
	}
	nd->kind = kind;
	nd->line = line;
	nd->var_k = nd->var_v = -1;
	return nd;
}

/* What ended a list: the end of the text, {{ else }} or {{ end }}. */
enum list_end { END_EOF, END_ELSE, END_END };

struct cursor {
	const char *p, *end;
	int line;
	bool trim_next;
};

static int parse_list(struct parser *ps, struct cursor *cur, struct sval dot, struct tlist *l,
		      enum list_end *ret_end, int *ret_line);

static int
declare_var(struct parser *ps, const struct token *tk)
{
	if (ps->nvars >= BROKER_TPL_VARS_MAX)
		return perr(ps, tk->line, "more than %d variables", BROKER_TPL_VARS_MAX);
	if (tk->n == 0)
		return perr(ps, tk->line, "\"$\" cannot be declared");
	ps->var_names[ps->nvars] = tk->s;
	ps->var_lens[ps->nvars] = tk->n;
	/* Scopes nest, so a variable's depth in the scope stack is its slot. */
	ps->var_slots[ps->nvars] = ps->nvars;
	if (ps->nvars + 1 > ps->t->nslots)
		ps->t->nslots = ps->nvars + 1;
	return ps->var_slots[ps->nvars++];
}

/* A block: with, if, range; ps->tok is the token after the keyword. */
static int
parse_block(struct parser *ps, struct cursor *cur, struct sval dot, enum node_kind kind,
	    int line, struct tlist *into)
{
	struct tnode *nd = new_node(ps, kind, line);
	struct sval inner = dot, pk;
	enum list_end end;
	int saved_vars = ps->nvars, end_line, rc;

	if (nd == NULL)
		return -ENOMEM;
	if (++ps->depth > BROKER_TPL_DEPTH_MAX)
		return perr(ps, line, "blocks nested more than %d deep", BROKER_TPL_DEPTH_MAX);
	if (kind == N_RANGE && ps->tok.kind == TK_VAR) {
		/* range $k, $v := PIPE  or  range $v := PIPE */
		struct token v1 = ps->tok, v2;
		const char *save_p = ps->p;
		int save_line = ps->line;

		if ((rc = lex(ps)) < 0)
			return rc;
		if (ps->tok.kind == TK_COMMA || ps->tok.kind == TK_DECLARE) {
			bool two = ps->tok.kind == TK_COMMA;

			if (two) {
				if ((rc = lex(ps)) < 0)
					return rc;
				if (ps->tok.kind != TK_VAR)
					return perr(ps, line, "range $k, $v := …: expected a variable");
				v2 = ps->tok;
				if ((rc = lex(ps)) < 0)
					return rc;
				if (ps->tok.kind != TK_DECLARE)
					return perr(ps, line, "range $k, $v := …: expected \":=\"");
			}
			if ((rc = lex(ps)) < 0)
				return rc;
			if ((rc = parse_pipeline(ps, dot, &nd->pipe, &pk, false)) < 0)
				return rc;
			if ((nd->var_k = declare_var(ps, &v1)) < 0)
				return nd->var_k;
			if (two && (nd->var_v = declare_var(ps, &v2)) < 0)
				return nd->var_v;
			if (!two) {
				/* One variable takes the element, as in Go. */
				nd->var_v = nd->var_k;
				nd->var_k = -1;
			}
			goto parsed;
		}
		/* Not a declaration: lex again from the variable. */
		ps->p = save_p;
		ps->line = save_line;
		ps->tok = v1;
		ps->p = v1.s + v1.n;
	}
	if ((rc = parse_pipeline(ps, dot, &nd->pipe, &pk, false)) < 0)
		return rc;
parsed:
	if (kind == N_RANGE && pk.kind == S_ROOT)
		return perr(ps, line, "range over every secret is not supported: name the secret "
			    "(range .NAME.Data)");
	if (kind == N_WITH)
		inner = pk;
	else if (kind == N_RANGE)
		inner = (struct sval){ S_OTHER, SIZE_MAX };
	/* Past the "}}" */
	cur->p = ps->p + (ps->trim_next ? 4 : 2);
	cur->line = ps->line;
	cur->trim_next = ps->trim_next;
	if ((rc = parse_list(ps, cur, inner, &nd->body, &end, &end_line)) < 0)
		return rc;
	if (end == END_ELSE) {
		/* The else branch sees the outer dot (and, for range, no element). */
		if ((rc = parse_list(ps, cur, dot, &nd->other, &end, &end_line)) < 0)
			return rc;
		if (end == END_ELSE)
			return perr(ps, end_line, "a second {{ else }} in one block");
	}
	if (end != END_END)
		return perr(ps, line, "this block has no {{ end }}");
	ps->nvars = saved_vars;
	ps->depth--;
	return list_add(ps, into, nd);
}

/* Trims the blanks at the end of the last text node of l ("{{- "). */
static void
trim_last(struct tlist *l)
{
	struct tnode *nd = l->n > 0 ? l->v[l->n - 1] : NULL;

	if (nd == NULL || nd->kind != N_TEXT)
		return;
	while (nd->len > 0 && is_space(nd->text[nd->len - 1]))
		nd->len--;
}

static int
parse_list(struct parser *ps, struct cursor *cur, struct sval dot, struct tlist *l,
	   enum list_end *ret_end, int *ret_line)
{
	int rc;

	for (;;) {
		const char *open = NULL, *q;
		struct tnode *nd;
		int line;
		bool ltrim;

		for (q = cur->p; q + 1 < cur->end; q++) {
			if (q[0] == '{' && q[1] == '{') {
				open = q;
				break;
			}
		}
		{
			const char *tend = open != NULL ? open : cur->end, *tstart = cur->p;

			if (cur->trim_next)
				while (tstart < tend && is_space(*tstart)) {
					if (*tstart == '\n')
						cur->line++;
					tstart++;
				}
			cur->trim_next = false;
			if (tend > tstart) {
				if ((nd = new_node(ps, N_TEXT, cur->line)) == NULL)
					return -ENOMEM;
				nd->text = tstart;
				nd->len = (size_t)(tend - tstart);
				if ((rc = list_add(ps, l, nd)) < 0)
					return rc;
			}
			for (const char *c = tstart; c < tend; c++)
				if (*c == '\n')
					cur->line++;
		}
		if (open == NULL) {
			*ret_end = END_EOF;
			*ret_line = cur->line;
			return 0;
		}
		line = cur->line;
		ps->p = open + 2;
		ps->end = cur->end;
		ps->line = line;
		ltrim = ps->end - ps->p >= 2 && ps->p[0] == '-' && is_space(ps->p[1]);
		if (ltrim) {
			trim_last(l);
			ps->p += 1;
		}
		/* A comment: an action holding only a C-style comment, trim markers allowed. */
		{
			const char *c = ps->p;

			while (ltrim && c < ps->end && is_space(*c))
				c++;
			if (ps->end - c >= 2 && c[0] == '/' && c[1] == '*') {
				const char *e = NULL;

				for (const char *x = c + 2; x + 1 < ps->end; x++)
					if (x[0] == '*' && x[1] == '/') {
						e = x;
						break;
					}
				if (e == NULL)
					return perr(ps, line, "a comment is not closed with \"*/}}\"");
				for (const char *x = ps->p; x < e; x++)
					if (*x == '\n')
						ps->line++;
				e += 2;
				if (ps->end - e >= 2 && e[0] == '}' && e[1] == '}') {
					cur->p = e + 2;
					cur->trim_next = false;
				} else if (ps->end - e >= 4 && is_space(e[0]) && e[1] == '-' &&
					   e[2] == '}' && e[3] == '}') {
					cur->p = e + 4;
					cur->trim_next = true;
				} else {
					return perr(ps, line, "a comment must end the action (\"*/}}\")");
				}
				cur->line = ps->line;
				continue;
			}
		}
		if ((rc = lex(ps)) < 0)
			return rc;
		if (tok_is(&ps->tok, "end") || tok_is(&ps->tok, "else")) {
			bool is_end = tok_is(&ps->tok, "end");

			if ((rc = lex(ps)) < 0)
				return rc;
			if (ps->tok.kind != TK_END)
				return perr(ps, line, is_end ? "{{ end }} takes nothing" :
					    "{{ else }} takes nothing here (no else if)");
			cur->p = ps->p + (ps->trim_next ? 4 : 2);
			cur->line = ps->line;
			cur->trim_next = ps->trim_next;
			*ret_end = is_end ? END_END : END_ELSE;
			*ret_line = line;
			return 0;
		}
		if (tok_is(&ps->tok, "with") || tok_is(&ps->tok, "if") || tok_is(&ps->tok, "range")) {
			enum node_kind k = tok_is(&ps->tok, "with") ? N_WITH :
					   tok_is(&ps->tok, "if") ? N_IF : N_RANGE;

			if ((rc = lex(ps)) < 0)
				return rc;
			if ((rc = parse_block(ps, cur, dot, k, line, l)) < 0)
				return rc;
			continue;
		}
		if ((nd = new_node(ps, N_OUT, line)) == NULL)
			return -ENOMEM;
		{
			struct sval k;

			if ((rc = parse_pipeline(ps, dot, &nd->pipe, &k, false)) < 0)
				return rc;
			if (k.kind == S_ROOT)
				return perr(ps, line, "every secret at once cannot be written: name one "
					    "(.NAME.KEY)");
		}
		if ((rc = list_add(ps, l, nd)) < 0)
			return rc;
		cur->p = ps->p + (ps->trim_next ? 4 : 2);
		cur->line = ps->line;
		cur->trim_next = ps->trim_next;
	}
}

int
broker_template_compile(const char *text, size_t len, const char *origin,
			const char *const *names, size_t nnames, size_t self,
			struct broker_template **ret, struct lk_error *err)
{
	struct broker_template *t;
	struct parser ps;
	struct cursor cur;
	enum list_end end;
	int line, rc;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return lk_error_set(err, -ENOMEM, "%s: out of memory", origin);
	snprintf(t->origin, sizeof(t->origin), "%s", origin);
	t->self = self < nnames ? self : SIZE_MAX;
	t->text = malloc(len + 1);
	t->names = calloc(nnames + 1, sizeof(*t->names));
	t->reads = calloc(nnames + 1, sizeof(*t->reads));
	t->deps = calloc(nnames + 1, sizeof(*t->deps));
	if (t->text == NULL || t->names == NULL || t->reads == NULL || t->deps == NULL) {
		broker_template_free(t);
		return lk_error_set(err, -ENOMEM, "%s: out of memory", origin);
	}
	if (len > 0)
		memcpy(t->text, text, len);
	t->text[len] = '\0';
	for (size_t i = 0; i < nnames; i++) {
		if ((t->names[i] = strdup(names[i])) == NULL) {
			t->nnames = i;
			broker_template_free(t);
			return lk_error_set(err, -ENOMEM, "%s: out of memory", origin);
		}
	}
	t->nnames = nnames;
	if (memchr(t->text, '\0', len) != NULL) {
		broker_template_free(t);
		return lk_error_set(err, -EINVAL, "%s: holds a NUL byte", origin);
	}
	/* A secret's own file reads that secret, whatever its text says. */
	if (t->self != SIZE_MAX)
		add_dep(t, t->self);
	memset(&ps, 0, sizeof(ps));
	ps.t = t;
	ps.err = err;
	cur.p = t->text;
	cur.end = t->text + len;
	cur.line = 1;
	cur.trim_next = false;
	rc = parse_list(&ps, &cur, (struct sval){ t->self == SIZE_MAX ? S_ROOT : S_SECRET,
			t->self }, &t->root, &end, &line);
	if (rc == 0 && end != END_EOF)
		rc = lk_error_set(err, -EINVAL, "%s:%d: {{ %s }} without a block", origin, line,
				  end == END_END ? "end" : "else");
	if (rc < 0) {
		broker_template_free(t);
		return rc;
	}
	*ret = t;
	return 0;
}

/* ---- the evaluator ---- */

enum vkind { V_NIL, V_ROOT, V_SECRET, V_JSON, V_STR, V_INT };

struct val {
	enum vkind k;
	size_t secret;              /* V_SECRET; and for V_JSON, the secret it came from */
	const json_t *j;
	const char *s;              /* V_STR */
	size_t n;
	char *owned;                /* V_STR made by a function: zeroed when freed */
	int64_t i;
	/* V_STR: a name, which a message may show: a literal of the template or a key of the
	 * data's own key list (a range key). Every other text may be a secret's value, or
	 * made from one, wherever it travels (".", a variable, a pipeline); only these two
	 * set it, and a function's result never has it. */
	bool is_name;
	/* V_JSON: the name of the member it was read from, when that name is a name (a
	 * field of the template, a literal or range key); NULL when unknown. For messages. */
	const char *key;
};

struct eval {
	const struct broker_template *t;
	const json_t *const *data;
	const uint64_t *versions;
	size_t ndata;
	struct lk_buf *out;
	struct lk_error *err;
	unsigned long steps;
	uint64_t work;              /* bytes produced, escaped and copied so far */
	struct val vars[BROKER_TPL_VARS_MAX];
};

static void
val_clear(struct val *v)
{
	if (v->owned != NULL) {
		sodium_memzero(v->owned, v->n);
		free(v->owned);
	}
	memset(v, 0, sizeof(*v));
}

static int
eerr(struct eval *ev, int code, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
eerr(struct eval *ev, int code, int line, const char *fmt, ...)
{
	char what[LK_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return lk_error_set(ev->err, code, "%s:%d: %s", ev->t->origin, line, what);
}

/* Charges n bytes of work to the render: text produced, escaped or copied. A render ends
 * at BROKER_TPL_WORK_MAX, which bounds its time whatever the template's shape (steps alone
 * do not: one step can escape megabytes). */
static int
charge(struct eval *ev, size_t n, int line)
{
	if (n > BROKER_TPL_WORK_MAX || ev->work + n > BROKER_TPL_WORK_MAX)
		return eerr(ev, -ELOOP, line, "too much work, the limit is %u bytes",
			    (unsigned)BROKER_TPL_WORK_MAX);
	ev->work += n;
	return 0;
}

/* The secret named in messages: "secret \"db\"", or "the secret" in its own file. */
static const char *
secret_label(const struct eval *ev, size_t i, char *buf, size_t n)
{
	if (i >= ev->t->nnames || ev->t->names[i][0] == '\0')
		snprintf(buf, n, "the secret");
	else
		snprintf(buf, n, "secret \"%s\"", ev->t->names[i]);
	return buf;
}

static int
secret_data(struct eval *ev, size_t i, int line, const json_t **ret)
{
	char label[BROKER_TPL_ORIGIN_MAX];

	if (i >= ev->ndata || ev->data[i] == NULL)
		return eerr(ev, -EAGAIN, line, "%s is not loaded yet",
			    secret_label(ev, i, label, sizeof(label)));
	*ret = ev->data[i];
	return 0;
}

/* v := v.name */
static int
apply_field(struct eval *ev, struct val *v, const char *name, size_t root_secret, int line)
{
	char label[BROKER_TPL_ORIGIN_MAX];
	const json_t *d = NULL, *m;
	int rc;

	switch (v->k) {
	case V_ROOT:
		if (root_secret == SIZE_MAX)
			return eerr(ev, -EINVAL, line, "no secret named \"%s\"", name);
		val_clear(v);
		v->k = V_SECRET;
		v->secret = root_secret;
		return 0;
	case V_SECRET:
		if ((rc = secret_data(ev, v->secret, line, &d)) < 0)
			return rc;
		if (strcmp(name, "Data") == 0) {
			v->k = V_JSON;
			v->j = d;
			return 0;
		}
		if (strcmp(name, "Version") == 0) {
			v->k = V_INT;
			v->i = v->secret < ev->ndata && ev->versions != NULL ?
			       (int64_t)ev->versions[v->secret] : 0;
			return 0;
		}
		if ((m = json_object_get(d, name)) == NULL)
			return eerr(ev, -ENOENT, line, "%s has no key \"%s\"",
				    secret_label(ev, v->secret, label, sizeof(label)), name);
		v->k = V_JSON;
		v->j = m;
		v->key = name;
		return 0;
	case V_JSON:
		if (!json_is_object(v->j))
			return eerr(ev, -EINVAL, line, "\"%s\": the value is not an object (in %s)",
				    name, secret_label(ev, v->secret, label, sizeof(label)));
		if ((m = json_object_get(v->j, name)) == NULL)
			return eerr(ev, -ENOENT, line, "%s has no key \"%s\"",
				    secret_label(ev, v->secret, label, sizeof(label)), name);
		v->j = m;
		v->key = name;
		return 0;
	default:
		return eerr(ev, -EINVAL, line, "\"%s\": a field of something that has none", name);
	}
}

/* The text of v (borrowed into *s, or made into *owned). */
static int
val_text(struct eval *ev, const struct val *v, int line, const char **s, size_t *n, char **owned)
{
	const json_t *d = NULL;
	int rc;

	*owned = NULL;
	switch (v->k) {
	case V_STR:
		*s = v->s;
		*n = v->n;
		return 0;
	case V_INT: {
		char buf[32];
		int len = snprintf(buf, sizeof(buf), "%" PRId64, v->i);

		if ((*owned = strdup(buf)) == NULL)
			return lk_error_set(ev->err, -ENOMEM, "out of memory");
		*s = *owned;
		*n = (size_t)len;
		return 0;
	}
	case V_NIL:
		*s = "";
		*n = 0;
		return 0;
	case V_SECRET:
		if ((rc = secret_data(ev, v->secret, line, &d)) < 0)
			return rc;
		break;
	case V_JSON:
		d = v->j;
		if (json_is_string(d)) {
			*s = json_string_value(d);
			*n = json_string_length(d);
			return 0;
		}
		break;
	default:
		return eerr(ev, -EINVAL, line, "every secret at once cannot be written");
	}
	{
		size_t len = json_dumpb(d, NULL, 0, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

		/* jansson writes no text that is not UTF-8 (only a value made without its
		 * check holds one); counting the size takes no memory. */
		if (len == 0)
			return eerr(ev, -EINVAL, line, "the value cannot be written as JSON: it "
				    "holds text that is not UTF-8");
		if ((rc = charge(ev, len, line)) < 0)
			return rc;
		if ((*owned = malloc(len + 1)) == NULL)
			return lk_error_set(ev->err, -ENOMEM, "out of memory");
		json_dumpb(d, *owned, len, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		(*owned)[len] = '\0';
		*s = *owned;
		*n = len;
	}
	return 0;
}

static void
owned_free(char *p, size_t n)
{
	if (p != NULL) {
		sodium_memzero(p, n);
		free(p);
	}
}

/* A growing output for the escaping functions (in memory that is zeroed on free). */
struct obuf {
	char *p;
	size_t n, cap;
	bool failed;                /* out of memory */
	bool toobig;                /* past TPL_TEXT_MAX */
	bool badutf8;               /* the input is not valid UTF-8 (yaml) */
};

static void
ob_put(struct obuf *o, const char *s, size_t n)
{
	if (o->failed || o->toobig || o->badutf8)
		return;
	if (o->n + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 64;
		char *q;

		if (o->n + n + 1 > TPL_TEXT_MAX) {
			o->toobig = true;
			return;
		}
		while (cap < o->n + n + 1)
			cap *= 2;
		if (cap > TPL_TEXT_MAX)
			cap = TPL_TEXT_MAX;
		if ((q = malloc(cap)) == NULL) {
			o->failed = true;
			return;
		}
		if (o->p != NULL) {
			memcpy(q, o->p, o->n);
			owned_free(o->p, o->cap);
		}
		o->p = q;
		o->cap = cap;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
	o->p[o->n] = '\0';
}

static void
ob_putc(struct obuf *o, char c)
{
	ob_put(o, &c, 1);
}

static void
json_quote(struct obuf *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	ob_putc(o, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			ob_putc(o, '\\');
			ob_putc(o, (char)c);
		} else if (c == '\n') {
			ob_put(o, "\\n", 2);
		} else if (c == '\r') {
			ob_put(o, "\\r", 2);
		} else if (c == '\t') {
			ob_put(o, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

			ob_put(o, e, 6);
		} else {
			ob_putc(o, (char)c);
		}
	}
	ob_putc(o, '"');
}

/* The code point of the UTF-8 sequence at s[i] (n bytes in all) into *cp, and its length;
 * 0 when it is not valid UTF-8 (truncated, overlong, a surrogate, past U+10FFFF). */
static size_t
utf8_decode(const unsigned char *s, size_t n, size_t i, uint32_t *cp)
{
	unsigned char c = s[i];
	size_t len;
	uint32_t v, min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n - i < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((s[i + k] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i + k] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* Copies the character at s[*i] for a YAML double-quoted scalar when it is one YAML lets
 * through as it is, else as an escape YAML reads back as the same character. YAML 1.2's
 * printable set is TAB, LF, CR, U+0020-U+007E, U+0085, U+00A0-U+D7FF, U+E000-U+FFFD and
 * U+10000-U+10FFFF; U+0085, U+2028 and U+2029 are line breaks to YAML 1.1 parsers (which
 * fold them), and U+FEFF is a byte order mark to them: these are escaped too. Bytes that
 * are not UTF-8 cannot be written at all (YAML text is Unicode): o->badutf8. Quotes,
 * backslashes and ASCII controls are the caller's. */
static void
yaml_char(struct obuf *o, const char *s, size_t n, size_t *i)
{
	static const char hex[] = "0123456789ABCDEF";
	uint32_t cp;
	size_t len = utf8_decode((const unsigned char *)s, n, *i, &cp);

	if (len == 0) {
		o->badutf8 = true;
		return;
	}
	if (cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
	    cp == 0xfeff || cp == 0xfffe || cp == 0xffff) {
		char e[6] = { '\\', 'u', hex[cp >> 12], hex[(cp >> 8) & 15], hex[(cp >> 4) & 15],
			      hex[cp & 15] };

		ob_put(o, e, 6);
	} else {
		ob_put(o, s + *i, len);
	}
	*i += len - 1;
}

static void
yaml_quote(struct obuf *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	ob_putc(o, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			ob_putc(o, '\\');
			ob_putc(o, (char)c);
		} else if (c == '\n') {
			ob_put(o, "\\n", 2);
		} else if (c == '\t') {
			ob_put(o, "\\t", 2);
		} else if (c == '\r') {
			ob_put(o, "\\r", 2);
		} else if (c < 0x20) {
			char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

			ob_put(o, e, 4);
		} else if (c < 0x7f) {
			ob_putc(o, (char)c);
		} else {
			yaml_char(o, s, n, &i);
		}
	}
	ob_putc(o, '"');
}

/* JSON text (of a value that is not a string) as YAML: JSON is YAML's flow syntax, but
 * jansson writes DEL and non-ASCII characters as they are, and those YAML forbids are
 * escaped here (they can only be inside strings, where \uXXXX means the same to both). */
static void
yaml_json_text(struct obuf *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x7f)
			ob_putc(o, s[i]);
		else
			yaml_char(o, s, n, &i);
	}
}

static void
shell_quote(struct obuf *o, const char *s, size_t n)
{
	ob_putc(o, '\'');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\'')
			ob_put(o, "'\\''", 4);
		else
			ob_putc(o, s[i]);
	}
	ob_putc(o, '\'');
}

static void
url_escape(struct obuf *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			ob_putc(o, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			ob_put(o, e, 3);
		}
	}
}

/* Runs an escaping function on v; the result replaces v. Its input and its result are
 * charged to the render's work. */
static int
call_escape(struct eval *ev, const char *fn, struct val *v, int line)
{
	const char *s;
	size_t n;
	char *owned = NULL;
	struct obuf o = { 0 };
	bool raw_json = false;
	int rc;

	if ((rc = val_text(ev, v, line, &s, &n, &owned)) < 0)
		return rc;
	if ((rc = charge(ev, n, line)) < 0) {
		owned_free(owned, n);
		return rc;
	}
	/* What is not a string is written as its JSON text: a number stays a number. */
	raw_json = v->k == V_SECRET || v->k == V_INT || (v->k == V_JSON && !json_is_string(v->j));
	if (strcmp(fn, "json") == 0) {
		if (raw_json)
			ob_put(&o, s, n);
		else
			json_quote(&o, s, n);
	} else if (strcmp(fn, "yaml") == 0) {
		if (raw_json)
			yaml_json_text(&o, s, n);
		else
			yaml_quote(&o, s, n);
	} else if (memchr(s, '\0', n) != NULL) {
		owned_free(owned, n);
		return eerr(ev, -EINVAL, line, "%s: the value holds a NUL byte", fn);
	} else if (strcmp(fn, "shell") == 0) {
		shell_quote(&o, s, n);
	} else if (strcmp(fn, "url") == 0) {
		url_escape(&o, s, n);
	} else {
		size_t cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);

		if (cap > TPL_TEXT_MAX) {
			o.toobig = true;
		} else if ((o.p = malloc(cap)) == NULL) {
			o.failed = true;
		} else {
			sodium_bin2base64(o.p, cap, (const unsigned char *)s, n,
					  sodium_base64_VARIANT_ORIGINAL);
			o.cap = cap;
			o.n = strlen(o.p);
		}
	}
	owned_free(owned, n);
	if (o.p == NULL)
		ob_put(&o, "", 0);
	if (o.failed || o.toobig || o.badutf8) {
		owned_free(o.p, o.cap);
		if (o.badutf8)
			return eerr(ev, -EINVAL, line, "%s: the value is not valid UTF-8", fn);
		if (o.toobig)
			return eerr(ev, -EMSGSIZE, line, "%s: the result is larger than %u bytes",
				    fn, TPL_TEXT_MAX);
		return lk_error_set(ev->err, -ENOMEM, "%s:%d: %s: out of memory", ev->t->origin,
				    line, fn);
	}
	if ((rc = charge(ev, o.n, line)) < 0) {
		owned_free(o.p, o.cap);
		return rc;
	}
	val_clear(v);
	v->k = V_STR;
	v->owned = o.p;
	v->s = o.p;
	v->n = o.n;
	return 0;
}

static int eval_pipe(struct eval *ev, const struct tpipe *pp, const struct val *dot,
		     struct val *ret);

/* A borrowed copy of v (its owned text is not shared). */
static void
val_borrow(struct val *dst, const struct val *src)
{
	*dst = *src;
	dst->owned = NULL;
}

static int
eval_arg(struct eval *ev, const struct targ *a, const struct val *dot, struct val *piped,
	 int line, struct val *ret)
{
	struct val v;
	int rc;

	memset(&v, 0, sizeof(v));
	switch (a->kind) {
	case A_DOT:
		if (a->var == -2 && piped != NULL) {
			/* The piped value: its text, if owned, moves along. */
			v = *piped;
			memset(piped, 0, sizeof(*piped));
		} else {
			val_borrow(&v, dot);
		}
		break;
	case A_ROOT:
		if (ev->t->self == SIZE_MAX) {
			v.k = V_ROOT;
		} else {
			v.k = V_SECRET;
			v.secret = ev->t->self;
		}
		break;
	case A_VAR:
		val_borrow(&v, &ev->vars[a->var]);
		break;
	case A_STRING:
		v.k = V_STR;
		v.s = a->str;
		v.n = a->len;
		v.is_name = true;
		break;
	case A_NUMBER:
		v.k = V_INT;
		v.i = a->num;
		break;
	case A_PIPE:
		if ((rc = eval_pipe(ev, a->pipe, dot, &v)) < 0)
			return rc;
		break;
	case A_KEY: {
		struct val self = { .k = V_SECRET, .secret = ev->t->self };

		v = self;
		if ((rc = apply_field(ev, &v, a->str, SIZE_MAX, line)) < 0)
			return rc;
		break;
	}
	default:
		return eerr(ev, -EINVAL, line, "a function where a value was expected");
	}
	for (size_t i = 0; i < a->nfields; i++) {
		if (v.owned != NULL) {
			val_clear(&v);
			return eerr(ev, -EINVAL, line, "\"%s\": a field of a text", a->fields[i]);
		}
		if ((rc = apply_field(ev, &v, a->fields[i], i == 0 ? a->root_secret : SIZE_MAX,
				      line)) < 0)
			return rc;
	}
	*ret = v;
	return 0;
}

/* index V K1 K2 ... */
static int
call_index(struct eval *ev, const struct tcmd *cmd, struct val *vals, int line, struct val *ret)
{
	struct val v = vals[1];
	char label[BROKER_TPL_ORIGIN_MAX];
	int rc;

	vals[1].owned = NULL;
	for (size_t i = 2; i < cmd->nargs; i++) {
		const struct val *k = &vals[i];
		const json_t *d = NULL;

		if (v.k == V_ROOT) {
			v.k = V_SECRET;
			v.secret = cmd->args[i].secret;
			continue;
		}
		if (v.k == V_SECRET) {
			if ((rc = secret_data(ev, v.secret, line, &d)) < 0)
				return rc;
			v.k = V_JSON;
			v.j = d;
		}
		if (v.k != V_JSON) {
			val_clear(&v);
			return eerr(ev, -EINVAL, line, "index of something that is not an object "
				    "or a list");
		}
		if (json_is_array(v.j)) {
			if (k->k != V_INT || k->i < 0 || (size_t)k->i >= json_array_size(v.j))
				return eerr(ev, -ENOENT, line, "index %" PRId64 " is out of the list (in %s)",
					    k->k == V_INT ? k->i : -1,
					    secret_label(ev, v.secret, label, sizeof(label)));
			v.j = json_array_get(v.j, (size_t)k->i);
			continue;
		}
		if (!json_is_object(v.j))
			return eerr(ev, -EINVAL, line, "index of a value that is not an object (in %s)",
				    secret_label(ev, v.secret, label, sizeof(label)));
		{
			const char *ks;
			size_t kn;
			char *owned = NULL, *key;
			const json_t *m;

			if (k->k != V_STR && !(k->k == V_JSON && json_is_string(k->j)))
				return eerr(ev, -EINVAL, line, "index: a key must be a string");
			if ((rc = val_text(ev, k, line, &ks, &kn, &owned)) < 0)
				return rc;
			if ((rc = charge(ev, kn, line)) < 0) {
				owned_free(owned, kn);
				return rc;
			}
			if ((key = malloc(kn + 1)) == NULL) {
				owned_free(owned, kn);
				return lk_error_set(ev->err, -ENOMEM, "out of memory");
			}
			memcpy(key, ks, kn);
			key[kn] = '\0';
			owned_free(owned, kn);
			m = json_object_get(v.j, key);
			if (m == NULL) {
				/* A literal or a range key is a name; a key taken from the data
				 * (`index .a.Data .b.name`) or made by a function may be a value,
				 * and is not shown. */
				if (k->k == V_STR && k->is_name)
					rc = eerr(ev, -ENOENT, line, "%s has no key \"%.200s\"",
						  secret_label(ev, v.secret, label, sizeof(label)),
						  key);
				else
					rc = eerr(ev, -ENOENT, line, "%s has no key named by the value "
						  "given to index (not shown)",
						  secret_label(ev, v.secret, label, sizeof(label)));
				sodium_memzero(key, kn);
				free(key);
				return rc;
			}
			/* The member's name, kept for messages only when it is a name. */
			v.key = k->k == V_STR && k->is_name ?
				json_object_iter_key(json_object_iter_at((json_t *)v.j, key)) : NULL;
			sodium_memzero(key, kn);
			free(key);
			v.j = m;
		}
	}
	*ret = v;
	return 0;
}

/* Runs one command. piped (NULL for the first command) is the previous command's value:
 * it is moved in, and freed here whatever happens. */
static int
eval_cmd(struct eval *ev, const struct tcmd *cmd, const struct val *dot, struct val *piped_in,
	 int line, struct val *ret)
{
	struct val vals[8], pv;
	const struct targ *f = &cmd->args[0];
	int rc = 0;

	memset(&pv, 0, sizeof(pv));
	if (piped_in != NULL) {
		pv = *piped_in;
		memset(piped_in, 0, sizeof(*piped_in));
	}
	memset(vals, 0, sizeof(vals));
	if (f->kind != A_FUNC) {
		rc = eval_arg(ev, f, dot, NULL, line, ret);
		goto out;
	}
	if (f->len == 6 && memcmp(f->str, "secret", 6) == 0) {
		memset(ret, 0, sizeof(*ret));
		ret->k = V_SECRET;
		ret->secret = f->secret;
		goto out;
	}
	for (size_t i = 1; i < cmd->nargs; i++)
		if ((rc = eval_arg(ev, &cmd->args[i], dot, &pv, line, &vals[i])) < 0)
			goto out;
	if (f->len == 5 && memcmp(f->str, "index", 5) == 0) {
		rc = call_index(ev, cmd, vals, line, ret);
		goto out;
	}
	rc = call_escape(ev, f->str, &vals[1], line);
	if (rc == 0) {
		*ret = vals[1];
		memset(&vals[1], 0, sizeof(vals[1]));
	}
out:
	for (size_t i = 1; i < cmd->nargs && i < 8; i++)
		val_clear(&vals[i]);
	val_clear(&pv);
	return rc;
}

static int
eval_pipe(struct eval *ev, const struct tpipe *pp, const struct val *dot, struct val *ret)
{
	struct val v;
	int rc;

	memset(&v, 0, sizeof(v));
	for (size_t i = 0; i < pp->ncmds; i++) {
		struct val next;

		memset(&next, 0, sizeof(next));
		/* v is moved into the command (and freed there). */
		rc = eval_cmd(ev, &pp->cmds[i], dot, i > 0 ? &v : NULL, pp->line, &next);
		if (rc < 0) {
			val_clear(&next);
			return rc;
		}
		v = next;
	}
	*ret = v;
	return 0;
}

static bool
truthy(const struct val *v)
{
	switch (v->k) {
	case V_NIL:
		return false;
	case V_STR:
		return v->n > 0;
	case V_INT:
		return v->i != 0;
	case V_JSON:
		if (json_is_string(v->j))
			return json_string_length(v->j) > 0;
		if (json_is_object(v->j))
			return json_object_size(v->j) > 0;
		if (json_is_array(v->j))
			return json_array_size(v->j) > 0;
		if (json_is_integer(v->j))
			return json_integer_value(v->j) != 0;
		if (json_is_real(v->j))
			return json_real_value(v->j) != 0;
		return json_is_true(v->j);
	default:
		return true;
	}
}

static int eval_list(struct eval *ev, const struct tlist *l, const struct val *dot);

/* A value holding a NUL byte is not written: a file that reads as text, or an environment
 * value, would end at it or carry a byte its reader does not expect. The message names the
 * key when it is known (and a name), and the secret; never the value. */
static int
nul_refused(struct eval *ev, const struct val *v, int line)
{
	char label[BROKER_TPL_ORIGIN_MAX];

	if (v->k == V_JSON && v->key != NULL)
		return eerr(ev, -EINVAL, line, "key \"%.200s\" of %s holds a NUL byte, which "
			    "cannot be written as it is (escape it with json or yaml)",
			    v->key, secret_label(ev, v->secret, label, sizeof(label)));
	if (v->k == V_JSON)
		return eerr(ev, -EINVAL, line, "a value of %s holds a NUL byte, which cannot be "
			    "written as it is (escape it with json or yaml)",
			    secret_label(ev, v->secret, label, sizeof(label)));
	return eerr(ev, -EINVAL, line, "the value holds a NUL byte, which cannot be written "
		    "as it is");
}

static int
step(struct eval *ev, int line)
{
	if (++ev->steps > BROKER_TPL_STEPS_MAX)
		return eerr(ev, -ELOOP, line, "the template takes more than %d steps to render",
			    BROKER_TPL_STEPS_MAX);
	return 0;
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
eval_range(struct eval *ev, const struct tnode *nd, const struct val *dot)
{
	struct val v, elem;
	const json_t *j = NULL;
	int rc = 0;
	bool any = false;

	memset(&elem, 0, sizeof(elem));
	if ((rc = eval_pipe(ev, nd->pipe, dot, &v)) < 0)
		return rc;
	if (v.k == V_SECRET) {
		if ((rc = secret_data(ev, v.secret, nd->line, &j)) < 0)
			goto out;
	} else if (v.k == V_JSON) {
		j = v.j;
	} else {
		rc = eerr(ev, -EINVAL, nd->line, "range over something that is not an object or a list");
		goto out;
	}
	if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++) {
			any = true;
			if ((rc = step(ev, nd->line)) < 0)
				goto out;
			memset(&elem, 0, sizeof(elem));
			elem.k = V_JSON;
			elem.secret = v.secret;
			elem.j = json_array_get(j, i);
			elem.key = v.k == V_JSON ? v.key : NULL;
			if (nd->var_k >= 0)
				ev->vars[nd->var_k] = (struct val){ .k = V_INT, .i = (int64_t)i };
			if (nd->var_v >= 0)
				ev->vars[nd->var_v] = elem;
			if ((rc = eval_list(ev, &nd->body, &elem)) < 0)
				goto out;
		}
	} else if (json_is_object(j)) {
		size_t n = json_object_size(j), i = 0;
		const char **keys = calloc(n + 1, sizeof(*keys));
		const char *k;
		json_t *m;

		if (keys == NULL) {
			rc = lk_error_set(ev->err, -ENOMEM, "out of memory");
			goto out;
		}
		json_object_foreach((json_t *)j, k, m)
			keys[i++] = k;
		/* In key order, as Go ranges over a map. */
		qsort(keys, n, sizeof(*keys), key_cmp);
		for (i = 0; i < n && rc == 0; i++) {
			any = true;
			if ((rc = step(ev, nd->line)) < 0)
				break;
			memset(&elem, 0, sizeof(elem));
			elem.k = V_JSON;
			elem.secret = v.secret;
			elem.j = json_object_get(j, keys[i]);
			elem.key = keys[i];
			/* A key of the data's own key list is a name. */
			if (nd->var_k >= 0)
				ev->vars[nd->var_k] = (struct val){ .k = V_STR, .s = keys[i],
								    .n = strlen(keys[i]),
								    .is_name = true };
			if (nd->var_v >= 0)
				ev->vars[nd->var_v] = elem;
			rc = eval_list(ev, &nd->body, &elem);
		}
		free(keys);
		if (rc < 0)
			goto out;
	} else {
		rc = eerr(ev, -EINVAL, nd->line, "range over a value that is not an object or a list");
		goto out;
	}
	if (!any)
		rc = eval_list(ev, &nd->other, dot);
out:
	if (nd->var_k >= 0)
		memset(&ev->vars[nd->var_k], 0, sizeof(ev->vars[0]));
	if (nd->var_v >= 0)
		memset(&ev->vars[nd->var_v], 0, sizeof(ev->vars[0]));
	val_clear(&v);
	return rc;
}

static int
eval_list(struct eval *ev, const struct tlist *l, const struct val *dot)
{
	int rc;

	for (size_t i = 0; i < l->n; i++) {
		const struct tnode *nd = l->v[i];
		struct val v;

		if ((rc = step(ev, nd->line)) < 0)
			return rc;
		switch (nd->kind) {
		case N_TEXT:
			if ((rc = charge(ev, nd->len, nd->line)) < 0)
				return rc;
			if ((rc = lk_buf_append(ev->out, nd->text, nd->len)) < 0)
				return lk_error_set(ev->err, rc, "%s: the rendered text is too large",
						    ev->t->origin);
			break;
		case N_OUT: {
			const char *s;
			size_t n;
			char *owned;

			if ((rc = eval_pipe(ev, nd->pipe, dot, &v)) < 0)
				return rc;
			rc = val_text(ev, &v, nd->line, &s, &n, &owned);
			if (rc == 0)
				rc = charge(ev, n, nd->line);
			if (rc == 0 && memchr(s, '\0', n) != NULL)
				rc = nul_refused(ev, &v, nd->line);
			if (rc == 0 && (rc = lk_buf_append(ev->out, s, n)) < 0)
				lk_error_set(ev->err, rc, "%s: the rendered text is too large",
					     ev->t->origin);
			owned_free(owned, n);
			val_clear(&v);
			if (rc < 0)
				return rc;
			break;
		}
		case N_IF:
		case N_WITH:
			if ((rc = eval_pipe(ev, nd->pipe, dot, &v)) < 0)
				return rc;
			if (truthy(&v))
				rc = eval_list(ev, &nd->body, nd->kind == N_WITH ? &v : dot);
			else
				rc = eval_list(ev, &nd->other, dot);
			val_clear(&v);
			if (rc < 0)
				return rc;
			break;
		case N_RANGE:
			if ((rc = eval_range(ev, nd, dot)) < 0)
				return rc;
			break;
		}
	}
	return 0;
}

int
broker_template_render(const struct broker_template *t, const json_t *const *data,
		       const uint64_t *versions, size_t n, struct lk_buf *out, struct lk_error *err)
{
	struct broker_template_usage u;

	return broker_template_render_usage(t, data, versions, n, out, &u, err);
}

int
broker_template_render_usage(const struct broker_template *t, const json_t *const *data,
			     const uint64_t *versions, size_t n, struct lk_buf *out,
			     struct broker_template_usage *usage, struct lk_error *err)
{
	struct eval ev;
	struct val root;
	int rc;

	memset(&ev, 0, sizeof(ev));
	ev.t = t;
	ev.data = data;
	ev.versions = versions;
	ev.ndata = n;
	ev.out = out;
	ev.err = err;
	memset(&root, 0, sizeof(root));
	if (t->self == SIZE_MAX) {
		root.k = V_ROOT;
	} else {
		root.k = V_SECRET;
		root.secret = t->self;
	}
	for (size_t i = 0; i < t->ndeps; i++) {
		const json_t *d;

		if ((rc = secret_data(&ev, t->deps[i], 1, &d)) < 0)
			goto out;
	}
	rc = eval_list(&ev, &t->root, &root);
out:
	usage->steps = ev.steps;
	usage->bytes = ev.work;
	return rc;
}
