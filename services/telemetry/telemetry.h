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
#include "vz_event.h"
#include "vz_telemetry_contract.h"
#include "vz_worker.h"

#define TL_SERVICE VZ_TL_SERVICE

typedef struct {
    char slo_file[VZ_PATH_MAX]; //  configs/slo.cfg
    int fine_ttl_s;             //  per-minute retention
    int coarse_ttl_s;           //  per-hour retention
    int eval_ms;                //  SLO evaluation period
    int window_s;               //  default window of telemetry.signals
    int redis_timeout_ms;       //  Redis command timeout
    char readers[256];          //  in-mesh identities that may read, space-separated
} tl_config_t;

typedef struct {
    tl_config_t config;    //  as loaded
    tl_slo_config_t slos;  //  SLOs and alerting (reloaded on SIGHUP)
    vz_redis_t *redis;     //  the sink's connection
    tl_store_t *store;     //  state in Redis
    vz_event_t *notify;    //  notifier.send events, or NULL
    vz_metrics_t *metrics; //  borrowed
    vz_series_t *ingested; //  snapshots ingested
    vz_series_t *refused;  //  snapshots refused (malformed, wrong caller)
    vz_series_t *notified; //  notifications sent
    vz_series_t *evals;    //  evaluations run by this replica
    char owner[64];        //  lock value: who evaluates
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

//  One evaluation at now_s: if this replica takes the evaluation lock,
//  evaluate every SLO, step the alerts, send what they call for, save the
//  table and the freeze flag. 1 evaluated, 0 another replica holds the
//  lock, -EIO Redis away.
int tl_evaluate(tl_t *self, int64_t now_s);

#endif
