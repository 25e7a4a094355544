/* metrics.h — a Prometheus registry rendered in the text exposition format (0.0.4).
 *
 * A metric (family) has a name, help text, a type and label names; a series is one set of
 * label values. Looking a series up takes a lock; updating one does not (atomics), so hot
 * paths look their series up once and keep the pointer, which stays valid until the
 * registry is freed or the series is removed.
 *
 * Label values are escaped (\\, \", \n) on output; help text escapes \\ and \n. Label
 * values are names (secret names, routes, codes), never secret values.
 */
#ifndef LK_METRICS_H
#define LK_METRICS_H

#include <stddef.h>

#include "common/buf.h"

enum lk_metric_type { LK_COUNTER, LK_GAUGE, LK_HISTOGRAM };

/* Most labels a metric may have. */
#define LK_METRIC_LABELS_MAX 4
/* Most buckets a histogram may have (the +Inf bucket is implicit). */
#define LK_METRIC_BUCKETS_MAX 24
/* Most series (label value sets) one metric keeps unless lk_metrics_set_series_max says
 * otherwise: a bound on the memory and scrape size that label values coming from
 * configuration or from the cluster (secret names, namespaces) could otherwise grow. */
#define LK_METRICS_SERIES_MAX_DEFAULT 4096
/* The counter every registry renders: series lookups refused at that limit, by metric. */
#define LK_METRICS_DROPPED_NAME "latchkey_metrics_series_dropped_total"

struct lk_metrics;
struct lk_metric;
struct lk_series;

/* owned: free with lk_metrics_free */
struct lk_metrics *lk_metrics_new(void);
void lk_metrics_free(struct lk_metrics *reg);

/* The most series each metric keeps (0: LK_METRICS_SERIES_MAX_DEFAULT). Past it, a lookup
 * of a new label value set returns NULL, its updates are dropped (the series functions
 * accept NULL), and LK_METRICS_DROPPED_NAME{metric="..."} counts each refused lookup;
 * existing series go on as before. Never a crash, never an unbounded registry. */
void lk_metrics_set_series_max(struct lk_metrics *reg, size_t max);

/* Adds a metric. labels: NULL-terminated list of label names, or NULL for none.
 * buckets: the upper bounds, ascending, for a histogram (NULL for the default latency
 * buckets); ignored for other types. Returns a pointer owned by the registry, or NULL on
 * a bad name, a duplicate, or no memory. */
struct lk_metric *lk_metrics_add(struct lk_metrics *reg, enum lk_metric_type type,
				 const char *name, const char *help,
				 const char *const labels[], const double *buckets, size_t nbuckets);

/* Finds or creates the series with these label values (as many as the metric has label
 * names; NULL when it has none). Owned by the registry. NULL when out of memory or at the
 * series limit (lk_metrics_set_series_max). */
struct lk_series *lk_metric_series(struct lk_metric *m, const char *const values[]);

/* Removes a series (for example the gauge of a secret that was deleted). Pointers to it
 * must no longer be used. */
void lk_metric_remove(struct lk_metric *m, const char *const values[]);

void lk_series_add(struct lk_series *s, double delta);   /* counters and gauges */
void lk_series_set(struct lk_series *s, double value);   /* gauges */
void lk_series_observe(struct lk_series *s, double value); /* histograms */

/* Shorthands that look the series up each time. */
void lk_metric_add(struct lk_metric *m, const char *const values[], double delta);
void lk_metric_set(struct lk_metric *m, const char *const values[], double value);
void lk_metric_observe(struct lk_metric *m, const char *const values[], double value);

/* Appends the whole registry in the text format; returns 0 or the lk_buf error. */
int lk_metrics_render(struct lk_metrics *reg, struct lk_buf *out);

/* The content type of the text format. */
#define LK_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
