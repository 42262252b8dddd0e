/*  telemetry - the sink's application: settings, state and method handlers
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  main.c owns one tl_t and runs it on the daemon's reactor thread; every
 *  function here runs there. Modules: tl_store (Redis), tl_slo (budgets and burn rates), tl_alert
 *  (alert states and the notifier request), tl_api.c (the handlers and the
 *  evaluation tick). docs/services/telemetry.md describes the API.
 */
#ifndef TELEMETRY_H
#define TELEMETRY_H

#include "tl_alert.h"
#include "tl_slo.h"
#include "tl_store.h"
#include "tl_trace.h"
#include "vz_http.h"
#include "vz_json.h"
#include "vz_call.h"
#include "vz_event.h"
#include "vz_telemetry_contract.h"
#include "vz_worker.h"

#define TL_SERVICE VZ_TL_SERVICE

typedef struct {
    char slo_file[VZ_PATH_MAX];      //  configs/slo.cfg
    int fine_ttl_s;                  //  per-minute retention
    int coarse_ttl_s;                //  per-hour retention
    int eval_ms;                     //  SLO evaluation period
    int window_s;                    //  default window of telemetry.signals
    int redis_timeout_ms;            //  Redis command timeout
    char readers[256];               //  in-mesh identities that may read, space-separated
    int trace_ttl_s;                 //  spans kept this long after a trace's last one
    char otlp_endpoint[VZ_PATH_MAX]; //  OTLP/HTTP collector base URL, "" = no export
    char synthetic[1024]; //  synthetic checks: "name=METHOD:/path:status ..." ("" = none)
    char synthetic_base[VZ_PATH_MAX]; //  gateway base URL the checks call
    int synthetic_ms;                 //  period of the checks
    vz_http_config_t http;            //  outbound HTTP (export, checks)
} tl_config_t;

typedef struct {
    tl_config_t config;            //  as loaded
    tl_slo_config_t slos;          //  SLOs and alerting (reloaded on SIGHUP)
    vz_redis_t *redis;             //  the sink's connection
    tl_store_t *store;             //  state in Redis
    vz_event_t *notify;            //  notifier.send events, or NULL
    vz_metrics_t *metrics;         //  borrowed
    vz_series_t *ingested;         //  snapshots ingested
    vz_series_t *refused;          //  snapshots refused (malformed, wrong caller)
    vz_series_t *notified;         //  notifications sent
    vz_series_t *evals;            //  evaluations run by this replica
    char owner[64];                //  lock value: who evaluates
    vz_http_t *http;               //  outbound HTTP (main.c), or NULL
    size_t exporting;              //  OTLP exports in flight
    vz_series_t *spans;            //  spans stored
    vz_series_t *exported[2];      //  OTLP export batches: [0] sent, [1] failed or dropped
    void *synth;                   //  the synthetic checks' state (tl_synthetic.c), or NULL
    vz_call_t *calls;              //  calls to the broker (main.c), or NULL
    bool broker_asking;            //  a broker.services call is in flight
    zhashx_t *versions;            //  tl_versions.c: "service|version" -> its series
    vz_series_t *version_pairs;    //  vz_telemetry_version_series
    vz_series_t *version_overflow; //  vz_telemetry_version_overflow_total
} tl_t;

//  NULL on a bad Redis URL.
tl_t *tl_new(const tl_config_t *config, const tl_slo_config_t *slos, const char *redis_url,
             vz_metrics_t *metrics, const char *owner);
void tl_destroy(tl_t **self_p);

//  Handlers (vz_worker.h).
int tl_h_ingest(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_signals(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_slo(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_alerts(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_usage(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_errors_top(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_traces(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_otlp_traces(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_otlp_metrics(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_status(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_status_json(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int tl_h_anomalies(void *app, const vz_envelope_t *req, vz_reply_t *reply);

//  tl_versions.c: per (service, version) requests by outcome and latency
//  on the replica's /metrics (vz_telemetry_version_requests_total{service,
//  version,outcome="ok|error"}, vz_telemetry_version_request_duration_seconds
//  {service,version}), counted from each snapshot with a service_version;
//  at most TL_VERSIONS_MAX pairs. init/destroy from tl_new/tl_destroy.
#define TL_VERSIONS_MAX 256
void tl_versions_init(tl_t *self);
void tl_versions_destroy(tl_t *self);
void tl_versions_count(tl_t *self, const vz_tl_snapshot_t *snap);

//  Synthetic checks (tl_synthetic.c): parse VZ_TELEMETRY_SYNTHETIC and
//  call each check through the gateway every synthetic_ms (one replica per
//  period, by lock); a check that fails (transport error or another status)
//  fires a page "synthetic/<name>/page" to the notifier, the next pass
//  resolves it. Results in {tl}:synth. 0, or -1 on a bad setting.
int tl_synthetic_start(tl_t *self, zloop_t *loop);
void tl_synthetic_stop(tl_t *self);
//  Run every check now (tests, and the timer).
void tl_synthetic_run(tl_t *self);
//  The method "synthetic": the checks' last results (readers).
int tl_h_synthetic(void *app, const vz_envelope_t *req, vz_reply_t *reply);

//  The evaluating replica's gauges of every service's golden signals over
//  5 minutes and of the active users (for Prometheus and the dashboards).
void tl_gauges_signals(tl_t *self, int64_t now_s);

//  tl_broker.c: ask broker.services now (no wait; at most one call in
//  flight), the answer kept in {tl}:broker; and read one service's workers
//  and queue from it (-1 each when unknown). 0 or -EIO.
void tl_broker_poll(tl_t *self);
int tl_broker_get(tl_t *self, const char *service, int64_t *workers, int64_t *queue);

//  tl_api.c's reader check, for tl_web.c: true, or false with the error
//  reply set (mesh identities of VZ_TELEMETRY_READERS; through the gateway
//  admin or scope, 401 without credentials).
bool tl_may(const tl_t *self, const vz_envelope_t *req, vz_reply_t *reply, const char *scope);

//  Reply the document of *writer_p (taken), or 503 unavailable when rc < 0
//  (Redis away; the writer is dropped).
int tl_reply_json(vz_reply_t *reply, vz_json_writer_t **writer_p, int rc);

//  Spans of a snapshot or an OTLP request: stored, and exported when a
//  collector is configured. 0 or -EIO.
int tl_spans_take(tl_t *self, const tl_span_t *spans, size_t n);

//  One evaluation at now_s: if this replica takes the evaluation lock,
//  evaluate every SLO, step the alerts, send what they call for, save the
//  table and the freeze flag. 1 evaluated, 0 another replica holds the
//  lock, -EIO Redis away.
int tl_evaluate(tl_t *self, int64_t now_s);

#endif
