/*  tl_versions - per (service, version) Prometheus series of the snapshots this replica ingested
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  What `vzctl rollout` and a Prometheus canary analysis read: for every
 *  snapshot that carries a service_version, its requests by outcome (ok,
 *  error: tl_code_error) and its latency as a histogram with the mesh's
 *  latency buckets. Counters of this replica only (sum them across the
 *  sink's replicas, as Prometheus does); the Redis-backed view is the
 *  "versions" of `signals`. At most TL_VERSIONS_MAX pairs a process: past
 *  that, snapshots of new pairs are counted in
 *  vz_telemetry_version_overflow_total only (versions come from the
 *  network, the registry must stay bounded). Reactor thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry.h"

//  One pair's series (in tl_t.versions, keyed "service|version").
typedef struct {
    vz_series_t *ok;       //  vz_telemetry_version_requests_total{...,outcome="ok"}
    vz_series_t *error;    //  ...{outcome="error"}
    vz_series_t *duration; //  vz_telemetry_version_request_duration_seconds
} s_pair_t;

#define S_REQUESTS_HELP "Requests reported per service version (snapshots ingested by this replica)"

static void s_pair_free(void **item)
{
    free(*item);
    *item = NULL;
}

void tl_versions_init(tl_t *self)
{
    self->versions = zhashx_new();
    assert(self->versions);
    zhashx_set_destructor(self->versions, s_pair_free);
    if (!self->metrics)
        return;
    self->version_pairs = vz_metrics_gauge(self->metrics, "vz_telemetry_version_series",
                                           "(service, version) pairs with series here", NULL);
    self->version_overflow =
        vz_metrics_counter(self->metrics, "vz_telemetry_version_overflow_total",
                           "Snapshots of a version past the pairs kept, not counted", NULL);
}

void tl_versions_destroy(tl_t *self)
{
    zhashx_destroy(&self->versions);
}

//  The series of (service, version), made on first use; NULL past the cap.
static s_pair_t *s_pair(tl_t *self, const char *service, const char *version)
{
    char key[VZ_TL_NAME_MAX + VZ_VERSION_MAX + 2];
    snprintf(key, sizeof key, "%s|%s", service, version);
    s_pair_t *pair = (s_pair_t *)zhashx_lookup(self->versions, key);
    if (pair || zhashx_size(self->versions) >= TL_VERSIONS_MAX)
        return pair;
    pair = (s_pair_t *)zmalloc(sizeof *pair);
    assert(pair);
    char labels[sizeof key + 48];
    snprintf(labels, sizeof labels, "service=%s,version=%s,outcome=ok", service, version);
    pair->ok = vz_metrics_counter(self->metrics, "vz_telemetry_version_requests_total",
                                  S_REQUESTS_HELP, labels);
    snprintf(labels, sizeof labels, "service=%s,version=%s,outcome=error", service, version);
    pair->error = vz_metrics_counter(self->metrics, "vz_telemetry_version_requests_total",
                                     S_REQUESTS_HELP, labels);
    snprintf(labels, sizeof labels, "service=%s,version=%s", service, version);
    pair->duration = vz_metrics_histogram(
        self->metrics, "vz_telemetry_version_request_duration_seconds",
        "Request duration in the worker, per service version (reported)", labels, NULL, 0);
    zhashx_insert(self->versions, key, pair);
    vz_series_set(self->version_pairs, (double)zhashx_size(self->versions));
    return pair;
}

void tl_versions_count(tl_t *self, const vz_tl_snapshot_t *snap)
{
    assert(self && snap);
    if (!self->metrics || !*snap->version)
        return;
    s_pair_t *pair = s_pair(self, snap->service, snap->version);
    if (!pair) {
        vz_series_inc(self->version_overflow);
        return;
    }
    for (size_t i = 0; i < snap->nseries; i++) {
        const vz_tl_series_t *row = &snap->series[i];
        for (size_t c = 0; c < row->ncodes; c++)
            vz_series_add(tl_code_error(row->codes[c].name) ? pair->error : pair->ok,
                          (double)row->codes[c].count);
        //  A bin stands for its value (within VZ_TL_REL_ERROR) in seconds.
        for (size_t b = 0; b < row->nbins; b++)
            vz_series_observe_n(pair->duration, vz_tl_bin_value(row->bin[b]) / 1e6,
                                row->bin_count[b]);
    }
}
