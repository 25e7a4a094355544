#include "common/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most metrics in one registry. */
#define METRICS_MAX 128

static const double default_buckets[] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
	0.5, 1, 2.5, 5, 10,
};

struct lk_metric;

struct lk_series {
	struct lk_series *next;
	const struct lk_metric *metric;              /* the family: a histogram's bounds */
	char *values[LK_METRIC_LABELS_MAX];
	_Atomic uint64_t value;                      /* a double's bits */
	_Atomic uint64_t sum;                        /* histograms: a double's bits */
	_Atomic uint64_t count;                      /* histograms */
	_Atomic uint64_t buckets[LK_METRIC_BUCKETS_MAX]; /* histograms: non-cumulative */
	bool removed;
};

struct lk_metric {
	enum lk_metric_type type;
	char *name;
	char *help;
	char *labels[LK_METRIC_LABELS_MAX];
	size_t nlabels;
	double bounds[LK_METRIC_BUCKETS_MAX];
	size_t nbounds;
	struct lk_series *series;   /* newest first; removed ones stay allocated */
	size_t nseries;
	_Atomic uint64_t dropped;   /* lookups refused at the series limit */
	struct lk_metrics *reg;
	pthread_mutex_t *lock;      /* the registry's */
};

struct lk_metrics {
	pthread_mutex_t lock;
	struct lk_metric *metrics[METRICS_MAX];
	size_t n;
	size_t series_max;          /* per metric */
};

static double
bits_to_double(uint64_t b)
{
	double d;

	memcpy(&d, &b, sizeof(d));
	return d;
}

static uint64_t
double_to_bits(double d)
{
	uint64_t b;

	memcpy(&b, &d, sizeof(b));
	return b;
}

static void
atomic_add_double(_Atomic uint64_t *slot, double delta)
{
	uint64_t old = atomic_load_explicit(slot, memory_order_relaxed), nw;

	do {
		nw = double_to_bits(bits_to_double(old) + delta);
	} while (!atomic_compare_exchange_weak_explicit(slot, &old, nw, memory_order_relaxed,
							memory_order_relaxed));
}

struct lk_metrics *
lk_metrics_new(void)
{
	struct lk_metrics *reg = calloc(1, sizeof(*reg));

	if (reg != NULL) {
		pthread_mutex_init(&reg->lock, NULL);
		reg->series_max = LK_METRICS_SERIES_MAX_DEFAULT;
	}
	return reg;
}

void
lk_metrics_set_series_max(struct lk_metrics *reg, size_t max)
{
	pthread_mutex_lock(&reg->lock);
	reg->series_max = max > 0 ? max : LK_METRICS_SERIES_MAX_DEFAULT;
	pthread_mutex_unlock(&reg->lock);
}

static void
series_free(struct lk_series *s)
{
	for (size_t i = 0; i < LK_METRIC_LABELS_MAX; i++)
		free(s->values[i]);
	free(s);
}

static void
metric_free(struct lk_metric *m)
{
	struct lk_series *s, *next;

	if (m == NULL)
		return;
	for (s = m->series; s != NULL; s = next) {
		next = s->next;
		series_free(s);
	}
	for (size_t i = 0; i < m->nlabels; i++)
		free(m->labels[i]);
	free(m->name);
	free(m->help);
	free(m);
}

void
lk_metrics_free(struct lk_metrics *reg)
{
	if (reg == NULL)
		return;
	for (size_t i = 0; i < reg->n; i++)
		metric_free(reg->metrics[i]);
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

/* Prometheus names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names without ':' and not "__" first. */
static bool
valid_name(const char *s, bool label)
{
	if (s == NULL || *s == '\0')
		return false;
	if (label && s[0] == '_' && s[1] == '_')
		return false;
	for (const char *p = s; *p; p++) {
		bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
			     (!label && *p == ':');
		if (!alpha && !(p > s && *p >= '0' && *p <= '9'))
			return false;
	}
	return true;
}

struct lk_metric *
lk_metrics_add(struct lk_metrics *reg, enum lk_metric_type type, const char *name,
	       const char *help, const char *const labels[], const double *buckets, size_t nbuckets)
{
	struct lk_metric *m = NULL;

	if (!valid_name(name, false))
		return NULL;
	if (type == LK_HISTOGRAM && buckets == NULL) {
		buckets = default_buckets;
		nbuckets = sizeof(default_buckets) / sizeof(default_buckets[0]);
	}
	if (type == LK_HISTOGRAM && (nbuckets == 0 || nbuckets > LK_METRIC_BUCKETS_MAX))
		return NULL;
	for (size_t i = 1; type == LK_HISTOGRAM && i < nbuckets; i++)
		if (!(buckets[i] > buckets[i - 1]))
			return NULL;
	pthread_mutex_lock(&reg->lock);
	if (reg->n >= METRICS_MAX)
		goto fail;
	for (size_t i = 0; i < reg->n; i++)
		if (strcmp(reg->metrics[i]->name, name) == 0)
			goto fail;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		goto fail;
	m->type = type;
	m->lock = &reg->lock;
	m->reg = reg;
	m->name = strdup(name);
	m->help = strdup(help != NULL ? help : "");
	if (m->name == NULL || m->help == NULL)
		goto fail;
	for (size_t i = 0; labels != NULL && labels[i] != NULL; i++) {
		if (i >= LK_METRIC_LABELS_MAX || !valid_name(labels[i], true) ||
		    (type == LK_HISTOGRAM && strcmp(labels[i], "le") == 0))
			goto fail;
		m->labels[i] = strdup(labels[i]);
		if (m->labels[i] == NULL)
			goto fail;
		m->nlabels++;
	}
	if (type == LK_HISTOGRAM) {
		memcpy(m->bounds, buckets, nbuckets * sizeof(double));
		m->nbounds = nbuckets;
	}
	reg->metrics[reg->n++] = m;
	pthread_mutex_unlock(&reg->lock);
	return m;
fail:
	pthread_mutex_unlock(&reg->lock);
	metric_free(m);
	return NULL;
}

static bool
same_values(const struct lk_metric *m, const struct lk_series *s, const char *const values[])
{
	for (size_t i = 0; i < m->nlabels; i++)
		if (strcmp(s->values[i], values[i] != NULL ? values[i] : "") != 0)
			return false;
	return true;
}

struct lk_series *
lk_metric_series(struct lk_metric *m, const char *const values[])
{
	struct lk_series *s;

	pthread_mutex_lock(m->lock);
	for (s = m->series; s != NULL; s = s->next) {
		if (same_values(m, s, values)) {
			/* A removed series comes back to life from zero. */
			if (s->removed) {
				s->removed = false;
				atomic_store(&s->value, double_to_bits(0));
				atomic_store(&s->sum, double_to_bits(0));
				atomic_store(&s->count, 0);
				for (size_t i = 0; i < LK_METRIC_BUCKETS_MAX; i++)
					atomic_store(&s->buckets[i], 0);
			}
			goto out;
		}
	}
	if (m->nseries >= m->reg->series_max) {
		/* Past the limit: the update is dropped, and counted where it shows. */
		atomic_fetch_add_explicit(&m->dropped, 1, memory_order_relaxed);
		goto out; /* s is NULL */
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		goto out;
	for (size_t i = 0; i < m->nlabels; i++) {
		s->values[i] = strdup(values[i] != NULL ? values[i] : "");
		if (s->values[i] == NULL) {
			series_free(s);
			s = NULL;
			goto out;
		}
	}
	atomic_store(&s->value, double_to_bits(0));
	atomic_store(&s->sum, double_to_bits(0));
	s->metric = m;
	s->next = m->series;
	m->series = s;
	m->nseries++;
out:
	pthread_mutex_unlock(m->lock);
	return s;
}

void
lk_metric_remove(struct lk_metric *m, const char *const values[])
{
	pthread_mutex_lock(m->lock);
	/* Kept allocated (marked) so that pointers held elsewhere never dangle. */
	for (struct lk_series *s = m->series; s != NULL; s = s->next)
		if (same_values(m, s, values))
			s->removed = true;
	pthread_mutex_unlock(m->lock);
}

void
lk_series_add(struct lk_series *s, double delta)
{
	if (s != NULL)
		atomic_add_double(&s->value, delta);
}

void
lk_series_set(struct lk_series *s, double value)
{
	if (s != NULL)
		atomic_store_explicit(&s->value, double_to_bits(value), memory_order_relaxed);
}

static void
observe(const struct lk_metric *m, struct lk_series *s, double value)
{
	size_t i = 0;

	while (i < m->nbounds && value > m->bounds[i])
		i++;
	if (i < m->nbounds)
		atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
	atomic_add_double(&s->sum, value);
	atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void
lk_series_observe(struct lk_series *s, double value)
{
	if (s != NULL && s->metric->type == LK_HISTOGRAM)
		observe(s->metric, s, value);
}

void
lk_metric_add(struct lk_metric *m, const char *const values[], double delta)
{
	lk_series_add(lk_metric_series(m, values), delta);
}

void
lk_metric_set(struct lk_metric *m, const char *const values[], double value)
{
	lk_series_set(lk_metric_series(m, values), value);
}

void
lk_metric_observe(struct lk_metric *m, const char *const values[], double value)
{
	lk_series_observe(lk_metric_series(m, values), value);
}

static int
put_escaped(struct lk_buf *out, const char *s, bool label_value)
{
	int r = 0;

	for (; *s != '\0' && r == 0; s++) {
		if (*s == '\\')
			r = lk_buf_append(out, "\\\\", 2);
		else if (*s == '\n')
			r = lk_buf_append(out, "\\n", 2);
		else if (*s == '"' && label_value)
			r = lk_buf_append(out, "\\\"", 2);
		else
			r = lk_buf_append(out, s, 1);
	}
	return r;
}

static int
put_number(struct lk_buf *out, double v)
{
	if (isnan(v))
		return lk_buf_append(out, "NaN", 3);
	if (isinf(v))
		return v > 0 ? lk_buf_append(out, "+Inf", 4) : lk_buf_append(out, "-Inf", 4);
	if (v == floor(v) && fabs(v) < 1e15)
		return lk_buf_printf(out, "%.0f", v);
	return lk_buf_printf(out, "%.17g", v);
}

/* name{a="x",b="y"[,le="..."]} */
static int
put_series_name(struct lk_buf *out, const struct lk_metric *m, const struct lk_series *s,
		const char *suffix, const char *le)
{
	int r = lk_buf_printf(out, "%s%s", m->name, suffix);

	if (r == 0 && (m->nlabels > 0 || le != NULL)) {
		r = lk_buf_append(out, "{", 1);
		for (size_t i = 0; r == 0 && i < m->nlabels; i++) {
			r = lk_buf_printf(out, "%s%s=\"", i ? "," : "", m->labels[i]);
			if (r == 0)
				r = put_escaped(out, s->values[i], true);
			if (r == 0)
				r = lk_buf_append(out, "\"", 1);
		}
		if (r == 0 && le != NULL)
			r = lk_buf_printf(out, "%sle=\"%s\"", m->nlabels ? "," : "", le);
		if (r == 0)
			r = lk_buf_append(out, "}", 1);
	}
	if (r == 0)
		r = lk_buf_append(out, " ", 1);
	return r;
}

static int
render_metric(struct lk_buf *out, const struct lk_metric *m)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	int r;

	r = lk_buf_printf(out, "# HELP %s ", m->name);
	if (r == 0)
		r = put_escaped(out, m->help, false);
	if (r == 0)
		r = lk_buf_printf(out, "\n# TYPE %s %s\n", m->name, types[m->type]);
	for (const struct lk_series *s = m->series; r == 0 && s != NULL; s = s->next) {
		if (s->removed)
			continue;
		if (m->type != LK_HISTOGRAM) {
			r = put_series_name(out, m, s, "", NULL);
			if (r == 0)
				r = put_number(out, bits_to_double(atomic_load(&s->value)));
			if (r == 0)
				r = lk_buf_append(out, "\n", 1);
			continue;
		}
		uint64_t cumulative = 0;
		char le[64];
		for (size_t i = 0; r == 0 && i < m->nbounds; i++) {
			cumulative += atomic_load(&s->buckets[i]);
			snprintf(le, sizeof(le), "%.17g", m->bounds[i]);
			r = put_series_name(out, m, s, "_bucket", le);
			if (r == 0)
				r = lk_buf_printf(out, "%llu\n", (unsigned long long)cumulative);
		}
		uint64_t count = atomic_load(&s->count);
		if (r == 0)
			r = put_series_name(out, m, s, "_bucket", "+Inf");
		if (r == 0)
			r = lk_buf_printf(out, "%llu\n", (unsigned long long)count);
		if (r == 0)
			r = put_series_name(out, m, s, "_sum", NULL);
		if (r == 0)
			r = put_number(out, bits_to_double(atomic_load(&s->sum)));
		if (r == 0)
			r = lk_buf_append(out, "\n", 1);
		if (r == 0)
			r = put_series_name(out, m, s, "_count", NULL);
		if (r == 0)
			r = lk_buf_printf(out, "%llu\n", (unsigned long long)count);
	}
	return r;
}

int
lk_metrics_render(struct lk_metrics *reg, struct lk_buf *out)
{
	int r = 0;

	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; r == 0 && i < reg->n; i++)
		r = render_metric(out, reg->metrics[i]);
	if (r == 0)
		r = lk_buf_printf(out, "# HELP %s Series lookups refused because the metric "
				  "reached its limit of series (the update was dropped).\n"
				  "# TYPE %s counter\n", LK_METRICS_DROPPED_NAME,
				  LK_METRICS_DROPPED_NAME);
	for (size_t i = 0; r == 0 && i < reg->n; i++) {
		uint64_t d = atomic_load(&reg->metrics[i]->dropped);

		if (d > 0)
			r = lk_buf_printf(out, "%s{metric=\"%s\"} %llu\n", LK_METRICS_DROPPED_NAME,
					  reg->metrics[i]->name, (unsigned long long)d);
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}
