/*  vz_metrics - counters, gauges and histograms in Prometheus text format
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A registry of metric families; each family has one name, help text and
 *  type, and any number of series told apart by their label set. Series are
 *  get-or-create: asking again for the same name and labels returns the same
 *  series pointer, valid until the registry is destroyed. Lookups take a
 *  mutex (do them at start or cache the pointer); updates are lock-free
 *  atomics and may run on any thread, including libmicrohttpd's.
 *
 *  Rendering follows the text exposition format 0.0.4 so that
 *  `promtool check metrics` accepts it without warnings: counters end in
 *  _total, HELP and TYPE once per family, histograms with cumulative _bucket
 *  series including le="+Inf", _sum and _count. Names must match
 *  [a-zA-Z_:][a-zA-Z0-9_:]*; label values are escaped.
 */
#ifndef VZ_METRICS_H
#define VZ_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct vz_metrics_t vz_metrics_t;
typedef struct vz_series_t vz_series_t;

//  Default latency buckets in seconds (0.5 ms .. 10 s).
extern const double vz_metrics_latency_buckets[];
extern const size_t vz_metrics_latency_buckets_count;

vz_metrics_t *vz_metrics_new(void);
void vz_metrics_destroy(vz_metrics_t **self_p);

//  A counter name without the _total suffix gets it appended (as the
//  official client libraries do): "vz_drops" and "vz_drops_total" are the
//  same family. help must be non-empty (asserted). Label order is kept as
//  given and is part of the series identity.
//  Get or create a series. labels is NULL or the label pairs as they appear
//  between braces, values unescaped: "service=echo,method=ping" (split at
//  ',' and '='; values must not contain those). A name used before with
//  another type, or an invalid name, is API misuse (asserted).
vz_series_t *vz_metrics_counter(vz_metrics_t *self, const char *name, const char *help,
                                const char *labels);
vz_series_t *vz_metrics_gauge(vz_metrics_t *self, const char *name, const char *help,
                              const char *labels);
//  buckets: strictly increasing upper bounds; NULL = vz_metrics_latency_buckets.
vz_series_t *vz_metrics_histogram(vz_metrics_t *self, const char *name, const char *help,
                                  const char *labels, const double *buckets, size_t count);

void vz_series_inc(vz_series_t *series);                //  counter or gauge += 1
void vz_series_add(vz_series_t *series, double value);  //  counter (value >= 0) or gauge
void vz_series_set(vz_series_t *series, double value);  //  gauge only
void vz_series_observe(vz_series_t *series, double value); //  histogram only
double vz_series_value(const vz_series_t *series);      //  counter/gauge value; histogram count
//  Histogram only: n values of value at once (a merged sketch's bin).
void vz_series_observe_n(vz_series_t *series, double value, uint64_t n);

//  Also export process_resident_memory_bytes, process_cpu_seconds_total,
//  process_start_time_seconds and process_open_fds (read from /proc at render).
void vz_metrics_enable_process(vz_metrics_t *self);

//  Render every family. Returns a heap string the caller frees.
char *vz_metrics_render(vz_metrics_t *self);

#endif
