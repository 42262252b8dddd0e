/*  vz-telemetry - the telemetry sink: golden signals, SLO budgets, burn-rate alerts
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Thin main: the settings table, the method table, the SLO evaluation
 *  timer, the SIGHUP reload of slo.cfg, vz_daemon_serve. The handlers and
 *  the evaluation live in tl_api.c (telemetry.h); docs/services/telemetry.md
 *  describes the API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "telemetry.h"
#include "vz_clock.h"
#include "vz_daemon.h"
#include "vz_call.h"
#include "vz_event.h"
#include "vz_ports.h"
#include "vz_proto.h"

#define TL_CREDIT 16 //  default broker credit: ingest is one pipelined Redis round trip
#define TL_QUERY_MAX 4096
#define TL_SNAPSHOT_MAX (2 * 1024 * 1024)

static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_SLO", "telemetry/slo", VZ_CFG_STR, "configs/slo.cfg", 0,
                0, slo_file, "SLO file (ZPL: slo, alerting); reloaded on SIGHUP"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_FINE_TTL_S", "telemetry/fine_ttl", VZ_CFG_INT, "86400",
                21600, 2592000, fine_ttl_s, "per-minute data kept this long, seconds (>= 6 h)"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_COARSE_TTL_S", "telemetry/coarse_ttl", VZ_CFG_INT,
                "2592000", 86400, 31536000, coarse_ttl_s, "per-hour data kept this long, seconds"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_EVAL_MS", "telemetry/eval", VZ_CFG_MS, "30000", 100,
                600000, eval_ms, "SLO and alert evaluation period"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_WINDOW_S", "telemetry/window", VZ_CFG_INT, "300", 60,
                2592000, window_s, "default window of telemetry.signals, seconds"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_REDIS_TIMEOUT_MS", "telemetry/redis_timeout", VZ_CFG_MS,
                "200", 5, 5000, redis_timeout_ms, "Redis command timeout"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_READERS", "telemetry/readers", VZ_CFG_STR,
                "vzctl reporter", 0, 0, readers,
                "in-mesh identities that may read signals, SLOs and alerts (the gateway's callers "
                "need admin or telemetry:read)"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_TRACE_TTL_S", "telemetry/trace_ttl", VZ_CFG_INT, "86400",
                60, 2592000, trace_ttl_s, "sampled spans kept this long after a trace's last span"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_OTLP_ENDPOINT", "telemetry/otlp_endpoint", VZ_CFG_STR,
                "", 0, 0, otlp_endpoint,
                "OTLP/HTTP collector base URL (spans POSTed to <url>/v1/traces); \"\" = no export"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_SYNTHETIC", "telemetry/synthetic", VZ_CFG_STR,
                "health=GET:/health:200", 0, 0, synthetic,
                "synthetic checks through the gateway: name=METHOD:/path:status, space-separated; "
                "\"\" = none"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_SYNTHETIC_BASE", "telemetry/synthetic_base", VZ_CFG_STR,
                "http://127.0.0.1:" VZ_PORT_TEXT(VZ_PORT_GATEWAY), 0, 0, synthetic_base,
                "gateway base URL the synthetic checks call"),
    VZ_CFG_ITEM(tl_config_t, "VZ_TELEMETRY_SYNTHETIC_MS", "telemetry/synthetic_period", VZ_CFG_MS,
                "5m", 1000, 86400000, synthetic_ms, "period of the synthetic checks"),
    VZ_HTTP_CFG_ITEMS(tl_config_t, http),
};

static const vz_method_t s_methods[] = {
    {VZ_TL_METHOD_INGEST, tl_h_ingest, 0, TL_SNAPSHOT_MAX},
    {"signals", tl_h_signals, VZ_METHOD_IDEMPOTENT, TL_QUERY_MAX},
    {"slo", tl_h_slo, VZ_METHOD_IDEMPOTENT, TL_QUERY_MAX},
    {"alerts", tl_h_alerts, VZ_METHOD_IDEMPOTENT, TL_QUERY_MAX},
    {"usage", tl_h_usage, VZ_METHOD_IDEMPOTENT, TL_QUERY_MAX},
    {"errors_top", tl_h_errors_top, VZ_METHOD_IDEMPOTENT, TL_QUERY_MAX},
    {"traces", tl_h_traces, VZ_METHOD_IDEMPOTENT, TL_QUERY_MAX},
    {"otlp_traces", tl_h_otlp_traces, 0, TL_SNAPSHOT_MAX},
    {"otlp_metrics", tl_h_otlp_metrics, 0, TL_SNAPSHOT_MAX},
    {"status", tl_h_status, VZ_METHOD_IDEMPOTENT, TL_QUERY_MAX},
    {"status_json", tl_h_status_json, VZ_METHOD_IDEMPOTENT, TL_QUERY_MAX},
    {"synthetic", tl_h_synthetic, VZ_METHOD_IDEMPOTENT, TL_QUERY_MAX},
    {"anomalies", tl_h_anomalies, VZ_METHOD_IDEMPOTENT, TL_QUERY_MAX},
};

static int s_eval_timer(zloop_t *loop, int timer_id, void *arg)
{
    tl_t *tl = arg;
    tl_broker_poll(tl);
    if (tl_evaluate(tl, vz_clock_now_ms() / 1000) < 0)
        vz_warn(NULL, "unable to evaluate SLOs", "reason", "redis unavailable");
    return 0;
}

//  SIGHUP: a new slo.cfg, or the old one kept when the new one is bad.
static void s_reload(void *arg)
{
    tl_t *tl = arg;
    tl_slo_config_t *slos = (tl_slo_config_t *)malloc(sizeof *slos);
    char err[512];
    if (tl_slo_load(tl->config.slo_file, slos, err, sizeof err) < 0)
        vz_error(NULL, "unable to reload SLOs: keeping the old ones", "reason", err);
    else {
        tl->slos = *slos;
        vz_info(NULL, "SLOs reloaded", "file", tl->config.slo_file);
    }
    free(slos);
}

int main(int argc, char **argv)
{
    tl_config_t config;
    vz_daemon_spec_t spec = {
        .service = TL_SERVICE,
        .admin_port = VZ_PORT_ADMIN_TELEMETRY,
        .needs_broker = true,
        //  Every method reads or writes Redis: ready only while it answers.
        .needs_redis = true,
        .items = s_items,
        .count = sizeof s_items / sizeof s_items[0],
        .config = &config,
    };
    int code = VZ_EXIT_OK;
    vz_daemon_t *daemon = vz_daemon_new(&spec, argc, argv, &code);
    if (!daemon)
        return code;
    tl_slo_config_t *slos = (tl_slo_config_t *)malloc(sizeof *slos);
    char err[512];
    if (tl_slo_load(config.slo_file, slos, err, sizeof err) < 0) {
        vz_error(NULL, "unable to load SLOs", "reason", err, "setting", "VZ_TELEMETRY_SLO");
        free(slos);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    char owner[64];
    snprintf(owner, sizeof owner, "%d/%d", vz_daemon_config(daemon)->replica, (int)getpid());
    tl_t *tl = tl_new(&config, slos, vz_daemon_config(daemon)->redis_url, vz_daemon_metrics(daemon),
                      owner);
    free(slos);
    if (!tl) {
        vz_error(NULL, "unable to start telemetry: bad Redis URL");
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    zloop_t *loop = zloop_new();
    //  Alerts leave as notifier.send events: never waiting on the notifier.
    tl->notify = vz_event_new_daemon(daemon);
    if (!tl->notify || vz_event_attach(tl->notify, loop) < 0)
        vz_warn(NULL, "unable to create the notifier event socket: alerts are not sent");
    //  broker.services on every tick: workers and queue depth per service.
    tl->calls = vz_call_new_daemon(daemon, loop);
    if (!tl->calls)
        vz_warn(NULL, "unable to create the call client: no broker view", "reason",
                strerror(errno));
    zloop_timer(loop, (size_t)config.eval_ms, 0, s_eval_timer, tl);
    //  Outbound HTTP: OTLP export and the synthetic checks.
    tl->http = vz_http_new(loop, &config.http, vz_daemon_metrics(daemon), err, sizeof err);
    if (!tl->http)
        vz_warn(NULL, "unable to start outbound HTTP: no OTLP export, no synthetic checks",
                "reason", err);
    else if (vz_http_warning(tl->http))
        vz_warn(NULL, vz_http_warning(tl->http));
    if (tl->http && tl_synthetic_start(tl, loop) < 0)
        vz_warn(NULL, "unable to start the synthetic checks", "setting", "VZ_TELEMETRY_SYNTHETIC");
    vz_daemon_on_reload(daemon, s_reload, tl);
    code = vz_daemon_serve(daemon, loop, s_methods, sizeof s_methods / sizeof s_methods[0],
                           TL_CREDIT, tl);
    vz_http_destroy(&tl->http); //  its calls end first: then their checks go
    vz_call_destroy(&tl->calls);
    tl_synthetic_stop(tl);
    vz_event_destroy(&tl->notify);
    zloop_destroy(&loop);
    tl_destroy(&tl);
    vz_daemon_destroy(&daemon);
    return code;
}
