/* faults.c — fault injection (latency, 409 storms, 429s, errors, dropped watches, HTTP 410
 * watches, compaction, restarts), the request and write counters, the audit log, and the
 * /fake/ admin endpoints that set and read them. docs/test-apiserver.md lists the JSON. */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The plain-text body API Priority and Fairness answers 429 with (REFERENCE.md §2.12). */
#define FAULTS_APF_TEXT "Too many requests, please try again later.\n"
/* Longest Retry-After an injected 429 may ask for, in seconds. */
#define FAULTS_RETRY_AFTER_MAX 600
/* Largest count of one fault rule. */
#define FAULTS_COUNT_MAX 1000000

/* ---- matching ---- */

static bool
match(const struct fk_match *m, const struct fk_request *r)
{
	char q[600];

	if (m->verb[0] != '\0') {
		bool write = strcmp(r->verb, "create") == 0 || strcmp(r->verb, "update") == 0 ||
			     strcmp(r->verb, "patch") == 0 || strcmp(r->verb, "delete") == 0 ||
			     strcmp(r->verb, "deletecollection") == 0;

		if (strcmp(m->verb, "write") == 0 ? !write : strcmp(m->verb, r->verb) != 0)
			return false;
	}
	if (m->resource[0] != '\0') {
		snprintf(q, sizeof(q), "%s%s%s", r->resource, r->group[0] ? "." : "", r->group);
		if (strcmp(m->resource, q) != 0 && strcmp(m->resource, r->resource) != 0)
			return false;
	}
	if (m->namespace[0] != '\0' && strcmp(m->namespace, r->namespace) != 0)
		return false;
	if (m->name[0] != '\0' && strcmp(m->name, r->name) != 0)
		return false;
	return true;
}

static int
parse_match(const json_t *o, struct fk_match *m, char *err, size_t errlen)
{
	static const char *const keys[] = { "verb", "resource", "namespace", "name", "count", "code",
					    "retry_after", NULL };
	const char *k;
	json_t *v;

	memset(m, 0, sizeof(*m));
	json_object_foreach((json_t *)o, k, v) {
		bool known = false;

		for (size_t i = 0; keys[i] != NULL; i++)
			known = known || strcmp(keys[i], k) == 0;
		if (!known) {
			snprintf(err, errlen, "unknown key \"%s\" in a fault rule", k);
			return -EINVAL;
		}
	}
#define COPY(field)                                                                        \
	do {                                                                               \
		const char *s = fk_jstr(o, #field);                                        \
		if (s != NULL)                                                             \
			snprintf(m->field, sizeof(m->field), "%s", s);                     \
	} while (0)
	COPY(verb);
	COPY(resource);
	COPY(namespace);
	COPY(name);
#undef COPY
	return 0;
}

/* Adds the rule(s) in spec (an object or an array of objects) to rules. */
static int
add_rules(const json_t *spec, struct fk_rule *rules, unsigned *n, bool need_code, char *err,
	  size_t errlen)
{
	json_t *arr = json_is_array(spec) ? json_incref((json_t *)spec) : json_pack("[O]", spec);
	size_t i;
	json_t *o;
	int r = -EINVAL;

	json_array_foreach(arr, i, o) {
		struct fk_rule rule = { 0 };
		json_int_t count = json_integer_value(json_object_get(o, "count"));

		if (!json_is_object(o)) {
			snprintf(err, errlen, "a fault rule must be an object");
			goto out;
		}
		if ((r = parse_match(o, &rule.match, err, errlen)) < 0)
			goto out;
		r = -EINVAL;
		if (!json_is_integer(json_object_get(o, "count")) || count < 1 || count > FAULTS_COUNT_MAX) {
			snprintf(err, errlen, "a fault rule needs \"count\" from 1 to %d", FAULTS_COUNT_MAX);
			goto out;
		}
		rule.remaining = (long)count;
		rule.code = (int)json_integer_value(json_object_get(o, "code"));
		if (need_code && (rule.code < 400 || rule.code > 599)) {
			snprintf(err, errlen, "an error rule needs \"code\" from 400 to 599");
			goto out;
		}
		rule.retry_after = json_object_get(o, "retry_after") != NULL
				   ? (int)json_integer_value(json_object_get(o, "retry_after")) : 1;
		if (rule.retry_after < 0 || rule.retry_after > FAULTS_RETRY_AFTER_MAX) {
			snprintf(err, errlen, "\"retry_after\" must be 0 to %d", FAULTS_RETRY_AFTER_MAX);
			goto out;
		}
		if (*n >= FK_RULES_MAX) {
			snprintf(err, errlen, "more than %d rules of one kind", FK_RULES_MAX);
			goto out;
		}
		rules[(*n)++] = rule;
	}
	r = 0;
out:
	json_decref(arr);
	return r;
}

int
fk_faults_apply(struct fk_state *st, const json_t *spec, char *err, size_t errlen)
{
	static const char *const keys[] = { "reset", "latency_ms", "latency_match", "conflicts",
					    "errors", "throttle", "drop_watches", "watch_max_events",
					    "watch_gone", "compact", "restart_ms", NULL };
	struct fk_faults f;
	const char *k;
	json_t *v;
	int r;

	if (!json_is_object(spec)) {
		snprintf(err, errlen, "the faults must be a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)spec, k, v) {
		bool known = false;

		for (size_t i = 0; keys[i] != NULL; i++)
			known = known || strcmp(keys[i], k) == 0;
		if (!known) {
			snprintf(err, errlen, "unknown fault \"%s\"", k);
			return -EINVAL;
		}
	}
	f = json_is_true(json_object_get(spec, "reset")) ? (struct fk_faults){ 0 } : st->faults;
	if ((v = json_object_get(spec, "latency_ms")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > FK_LATENCY_MAX_MS) {
			snprintf(err, errlen, "\"latency_ms\" must be 0 to %d", FK_LATENCY_MAX_MS);
			return -EINVAL;
		}
		f.latency_ms = (long)json_integer_value(v);
		memset(&f.latency_match, 0, sizeof(f.latency_match));
	}
	if ((v = json_object_get(spec, "latency_match")) != NULL &&
	    (r = parse_match(v, &f.latency_match, err, errlen)) < 0)
		return r;
	if ((v = json_object_get(spec, "conflicts")) != NULL &&
	    (r = add_rules(v, f.conflicts, &f.nconflicts, false, err, errlen)) < 0)
		return r;
	if ((v = json_object_get(spec, "errors")) != NULL &&
	    (r = add_rules(v, f.errors, &f.nerrors, true, err, errlen)) < 0)
		return r;
	if ((v = json_object_get(spec, "throttle")) != NULL &&
	    (r = add_rules(v, f.throttle, &f.nthrottle, false, err, errlen)) < 0)
		return r;
	if ((v = json_object_get(spec, "watch_max_events")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			snprintf(err, errlen, "\"watch_max_events\" must be 0 (no limit) or more");
			return -EINVAL;
		}
		f.watch_max_events = (long)json_integer_value(v);
	}
	if ((v = json_object_get(spec, "watch_gone")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > FAULTS_COUNT_MAX) {
			snprintf(err, errlen, "\"watch_gone\" must be a count");
			return -EINVAL;
		}
		f.watch_gone = (long)json_integer_value(v);
	}
	if ((v = json_object_get(spec, "restart_ms")) != NULL &&
	    (!json_is_integer(v) || json_integer_value(v) < 0 ||
	     json_integer_value(v) > FK_RESTART_MAX_MS)) {
		snprintf(err, errlen, "\"restart_ms\" must be 0 to %d", FK_RESTART_MAX_MS);
		return -EINVAL;
	}
	if ((v = json_object_get(spec, "drop_watches")) != NULL && !json_is_boolean(v) &&
	    !(json_is_string(v) && strcmp(json_string_value(v), "abort") == 0)) {
		snprintf(err, errlen, "\"drop_watches\" must be true or \"abort\"");
		return -EINVAL;
	}
	/* Everything checked: now it takes effect. */
	st->faults = f;
	if ((v = json_object_get(spec, "drop_watches")) != NULL && !json_is_false(v)) {
		st->watch_epoch++;
		st->watch_abort = json_is_string(v);
	}
	if (json_is_true(json_object_get(spec, "compact")))
		fk_store_compact(st);
	if ((v = json_object_get(spec, "restart_ms")) != NULL)
		st->restart_ms = (long)json_integer_value(v) + 1;   /* > 0: pending */
	pthread_cond_broadcast(&st->changed);
	return 0;
}

static json_t *
match_json(const struct fk_match *m)
{
	json_t *o = json_object();

	if (m->verb[0])
		json_object_set_new(o, "verb", json_string(m->verb));
	if (m->resource[0])
		json_object_set_new(o, "resource", json_string(m->resource));
	if (m->namespace[0])
		json_object_set_new(o, "namespace", json_string(m->namespace));
	if (m->name[0])
		json_object_set_new(o, "name", json_string(m->name));
	return o;
}

static json_t *
rules_json(const struct fk_rule *rules, unsigned n, bool code)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < n; i++) {
		json_t *o;

		if (rules[i].remaining <= 0)
			continue;
		o = match_json(&rules[i].match);
		json_object_set_new(o, "count", json_integer(rules[i].remaining));
		if (code)
			json_object_set_new(o, "code", json_integer(rules[i].code));
		json_object_set_new(o, "retry_after", json_integer(rules[i].retry_after));
		json_array_append_new(arr, o);
	}
	return arr;
}

json_t *
fk_faults_dump(struct fk_state *st)
{
	const struct fk_faults *f = &st->faults;

	return json_pack("{s:I,s:o,s:o,s:o,s:o,s:I,s:I}", "latency_ms", (json_int_t)f->latency_ms,
			 "latency_match", match_json(&f->latency_match),
			 "conflicts", rules_json(f->conflicts, f->nconflicts, false),
			 "errors", rules_json(f->errors, f->nerrors, true),
			 "throttle", rules_json(f->throttle, f->nthrottle, false),
			 "watch_max_events", (json_int_t)f->watch_max_events,
			 "watch_gone", (json_int_t)f->watch_gone);
}

static struct fk_rule *
take(struct fk_rule *rules, unsigned n, const struct fk_request *r)
{
	for (unsigned i = 0; i < n; i++) {
		if (rules[i].remaining > 0 && match(&rules[i].match, r)) {
			rules[i].remaining--;
			return &rules[i];
		}
	}
	return NULL;
}

bool
fk_faults_intercept(struct fk_state *st, struct fk_request *r, long *ret_latency_ms)
{
	struct fk_faults *f = &st->faults;
	struct fk_rule *rule;

	if ((rule = take(f->throttle, f->nthrottle, r)) != NULL) {
		fk_reply_text(r, 429, "text/plain; charset=utf-8", FAULTS_APF_TEXT);
		r->retry_after = rule->retry_after;
		return true;
	}
	if ((rule = take(f->errors, f->nerrors, r)) != NULL) {
		const char *reason = "InternalError", *msg = "Internal error occurred: injected fault";
		json_t *details = NULL;

		switch (rule->code) {
		case 429:
			reason = "TooManyRequests";
			msg = "Too many requests, please try again later.";
			details = json_pack("{s:i}", "retryAfterSeconds", rule->retry_after);
			r->retry_after = rule->retry_after;
			break;
		case 503:
			reason = "ServiceUnavailable";
			msg = "the server is currently unable to handle the request";
			break;
		case 504:
			reason = "Timeout";
			msg = "the server was unable to return a response in the time allotted, but may still be processing the request";
			break;
		case 500:
			break;
		default:
			reason = "";
			msg = "injected fault";
			break;
		}
		fk_reply_json(r, (unsigned)rule->code, fk_status_new(rule->code, reason, msg, details));
		return true;
	}
	if (f->latency_ms > 0 && match(&f->latency_match, r))
		*ret_latency_ms = f->latency_ms;
	return false;
}

bool
fk_faults_conflict(struct fk_state *st, const struct fk_request *r)
{
	return take(st->faults.conflicts, st->faults.nconflicts, r) != NULL;
}

bool
fk_faults_watch_gone(struct fk_state *st)
{
	if (st->faults.watch_gone <= 0)
		return false;
	st->faults.watch_gone--;
	return true;
}

/* ---- counters ---- */

int
fk_stats_init(struct fk_stats *s)
{
	memset(s, 0, sizeof(*s));
	if (pthread_mutex_init(&s->lock, NULL) != 0)
		return -ENOMEM;
	s->rows = calloc(FK_STATS_ROWS_MAX, sizeof(*s->rows));
	s->writes = calloc(FK_STATS_ROWS_MAX, sizeof(*s->writes));
	if (s->rows == NULL || s->writes == NULL)
		return -ENOMEM;
	return 0;
}

void
fk_stats_clear(struct fk_stats *s)
{
	free(s->rows);
	free(s->writes);
	s->rows = s->writes = NULL;
	pthread_mutex_destroy(&s->lock);
}

void
fk_stats_reset(struct fk_stats *s)
{
	pthread_mutex_lock(&s->lock);
	s->total = 0;
	s->nrows = s->nwrites = 0;
	pthread_mutex_unlock(&s->lock);
}

/* The row for these fields in rows (a new one when there is room, else the last). */
static struct fk_stat_row *
row(struct fk_stat_row *rows, size_t *n, const char *verb, const char *group,
    const char *resource, const char *sub, const char *ns, int code, bool system)
{
	for (size_t i = 0; i < *n; i++) {
		struct fk_stat_row *x = &rows[i];

		if (x->code == code && x->system == system && strcmp(x->verb, verb) == 0 &&
		    strcmp(x->group, group) == 0 && strcmp(x->resource, resource) == 0 &&
		    strcmp(x->subresource, sub) == 0 && strcmp(x->namespace, ns) == 0)
			return x;
	}
	if (*n >= FK_STATS_ROWS_MAX) {
		struct fk_stat_row *x = &rows[FK_STATS_ROWS_MAX - 1];

		snprintf(x->resource, sizeof(x->resource), "(other)");
		x->verb[0] = x->group[0] = x->subresource[0] = x->namespace[0] = '\0';
		x->code = 0;
		return x;
	}
	struct fk_stat_row *x = &rows[(*n)++];
	memset(x, 0, sizeof(*x));
	snprintf(x->verb, sizeof(x->verb), "%s", verb);
	snprintf(x->group, sizeof(x->group), "%s", group);
	snprintf(x->resource, sizeof(x->resource), "%s", resource);
	snprintf(x->subresource, sizeof(x->subresource), "%s", sub);
	snprintf(x->namespace, sizeof(x->namespace), "%s", ns);
	x->code = code;
	x->system = system;
	return x;
}

void
fk_stats_request(struct fk_stats *s, const struct fk_request *r)
{
	pthread_mutex_lock(&s->lock);
	s->total++;
	row(s->rows, &s->nrows, r->verb, r->group, r->resource, r->subresource, r->namespace,
	    (int)r->status, false)->count++;
	pthread_mutex_unlock(&s->lock);
}

void
fk_stats_write(struct fk_stats *s, const char *verb, const struct fk_rtype *t, const char *sub,
	       const char *ns, bool system)
{
	pthread_mutex_lock(&s->lock);
	row(s->writes, &s->nwrites, verb, t->group, t->plural, sub != NULL ? sub : "",
	    ns != NULL ? ns : "", 0, system)->count++;
	pthread_mutex_unlock(&s->lock);
}

static void
bump(json_t *obj, const char *key, uint64_t by)
{
	json_object_set_new(obj, key, json_integer(json_integer_value(json_object_get(obj, key)) +
						    (json_int_t)by));
}

json_t *
fk_stats_dump(struct fk_state *st)
{
	struct fk_stats *s = &st->stats;
	json_t *req = json_array(), *wr = json_array(), *by_verb = json_object();
	json_t *by_code = json_object(), *by_res = json_object(), *out;
	uint64_t writes_total = 0;
	char q[400], code[16], rv[32];

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nrows; i++) {
		struct fk_stat_row *x = &s->rows[i];

		json_array_append_new(req, json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:I}", "verb", x->verb,
			"group", x->group, "resource", x->resource, "subresource", x->subresource,
			"namespace", x->namespace, "code", x->code, "count", (json_int_t)x->count));
		bump(by_verb, x->verb, x->count);
		snprintf(code, sizeof(code), "%d", x->code);
		bump(by_code, code, x->count);
	}
	for (size_t i = 0; i < s->nwrites; i++) {
		struct fk_stat_row *x = &s->writes[i];

		json_array_append_new(wr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:I}", "verb", x->verb,
			"group", x->group, "resource", x->resource, "subresource", x->subresource,
			"namespace", x->namespace, "system", x->system, "count", (json_int_t)x->count));
		snprintf(q, sizeof(q), "%s%s%s", x->resource, x->group[0] ? "." : "", x->group);
		if (!x->system) {
			bump(by_res, q, x->count);
			writes_total += x->count;
		}
	}
	out = json_pack("{s:I,s:o,s:o,s:o,s:I,s:o,s:o}", "requests_total", (json_int_t)s->total,
			"requests_by_verb", by_verb, "requests_by_code", by_code, "requests", req,
			"writes_total", (json_int_t)writes_total, "writes_by_resource", by_res,
			"writes", wr);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&st->lock);
	snprintf(rv, sizeof(rv), "%llu", (unsigned long long)st->rv);
	json_object_set_new(out, "resourceVersion", json_string(rv));
	snprintf(rv, sizeof(rv), "%llu", (unsigned long long)st->hist.compact_rv);
	json_object_set_new(out, "compactedResourceVersion", json_string(rv));
	json_object_set_new(out, "objects", json_integer((json_int_t)st->nobjects));
	json_object_set_new(out, "watches", json_integer(st->watches));
	pthread_mutex_unlock(&st->lock);
	return out;
}

/* ---- audit ---- */

void
fk_audit(struct fk_state *st, const struct fk_request *r)
{
	char ts[40], *line;
	json_t *o;

	if (st->audit == NULL)
		return;
	fk_now_micro(ts);
	o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i}", "ts", ts, "user",
		      r->user.name[0] ? r->user.name : "system:anonymous", "token",
		      r->user.token_id, "verb", r->verb, "group", r->group, "resource", r->resource,
		      "subresource", r->subresource, "namespace", r->namespace, "name", r->name,
		      "path", r->path, "code", (int)r->status);
	if (o == NULL || (line = fk_json_dump(o)) == NULL) {
		json_decref(o);
		return;
	}
	pthread_mutex_lock(&st->audit_lock);
	fprintf(st->audit, "%s\n", line);
	fflush(st->audit);
	pthread_mutex_unlock(&st->audit_lock);
	free(line);
	json_decref(o);
}

/* ---- /fake/ ---- */

void
fk_admin(struct fk_state *st, struct fk_request *r)
{
	const char *path = r->path, *m = r->method;
	char err[512];
	json_t *spec;

	if (strcmp(path, "/fake/faults") == 0) {
		if (strcmp(m, "GET") == 0) {
			pthread_mutex_lock(&st->lock);
			fk_reply_json(r, 200, fk_faults_dump(st));
			pthread_mutex_unlock(&st->lock);
			return;
		}
		if (strcmp(m, "DELETE") == 0) {
			pthread_mutex_lock(&st->lock);
			memset(&st->faults, 0, sizeof(st->faults));
			fk_reply_json(r, 200, fk_faults_dump(st));
			pthread_mutex_unlock(&st->lock);
			return;
		}
		if (strcmp(m, "POST") != 0) {
			fk_reply_method_not_allowed(r);
			return;
		}
		if ((spec = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
			fk_reply_bad_request(r, "the faults are not a JSON object");
			return;
		}
		pthread_mutex_lock(&st->lock);
		if (fk_faults_apply(st, spec, err, sizeof(err)) < 0) {
			fk_reply_bad_request(r, "%s", err);
		} else {
			fk_reply_json(r, 200, fk_faults_dump(st));
			if (st->restart_ms > 0)
				r->restart_after = true;
		}
		pthread_mutex_unlock(&st->lock);
		json_decref(spec);
		return;
	}
	if (strcmp(path, "/fake/stats") == 0) {
		if (strcmp(m, "GET") == 0) {
			fk_reply_json(r, 200, fk_stats_dump(st));
		} else if (strcmp(m, "DELETE") == 0) {
			fk_stats_reset(&st->stats);
			fk_reply_json(r, 200, fk_stats_dump(st));
		} else {
			fk_reply_method_not_allowed(r);
		}
		return;
	}
	fk_reply_status(r, 404, "NotFound", NULL, "no admin endpoint %s (see docs/test-apiserver.md)", path);
}
