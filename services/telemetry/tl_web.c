/*  tl_web - the sink's traces, OTLP/HTTP intake and export, and the status page
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry.h"
#include "tl_status_html.h"
#include "vz_authctx.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_log.h"
#include "vz_proto.h"

#define S_EXPORTS_MAX 16       //  OTLP export batches in flight at most
#define S_STATUS_WINDOW_S 300  //  golden signals of the status page
#define S_CHART_MINUTES 60     //  its charts
#define S_READY_AGE_S 60       //  a replica reported within this: up
#define S_STATUS_MAX (1 << 20) //  the status document

static void s_inc(vz_series_t *series)
{
    if (series)
        vz_series_inc(series);
}

// --------------------------------------------------------------------------
//  Spans in and out

static void s_exported(const vz_http_response_t *response, void *arg)
{
    tl_t *self = arg;
    self->exporting--;
    bool ok = response->rc == 0 && response->status >= 200 && response->status < 300;
    s_inc(self->exported[ok ? 0 : 1]);
    if (!ok)
        vz_warn(NULL, "OTLP export failed", "url", response->url, "reason",
                *response->error ? response->error : "status not 2xx");
}

//  One POST of the spans to the collector's /v1/traces, never waited for.
static void s_export(tl_t *self, const tl_span_t *spans, size_t n)
{
    if (!self->http || !*self->config.otlp_endpoint)
        return;
    if (self->exporting >= S_EXPORTS_MAX) {
        s_inc(self->exported[1]);
        return;
    }
    size_t len = 0;
    char *body = tl_otlp_traces_encode(spans, n, &len);
    char url[VZ_PATH_MAX + 16];
    snprintf(url, sizeof url, "%s/v1/traces", self->config.otlp_endpoint);
    const char *headers[] = {"Content-Type: application/json", NULL};
    vz_http_request_t req = {.method = "POST",
                             .url = url,
                             .headers = headers,
                             .body = body,
                             .body_len = len,
                             .idempotent = true, //  a span sent twice is the same span
                             .done = s_exported,
                             .arg = self};
    if (body && vz_http_request(self->http, &req) == 0)
        self->exporting++;
    else
        s_inc(self->exported[1]);
    free(body);
}

int tl_spans_take(tl_t *self, const tl_span_t *spans, size_t n)
{
    assert(self);
    if (tl_trace_store(self->redis, spans, n, self->config.trace_ttl_s) < 0)
        return -EIO;
    for (size_t i = 0; i < n; i++)
        s_inc(self->spans);
    s_export(self, spans, n);
    return 0;
}

int tl_h_traces(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    if (!tl_may(self, req, reply, "telemetry:read"))
        return 0;
    const char *id = vz_authctx_param(req, "trace_id");
    char trace[VZ_TL_TRACE_HEX + 1] = "";
    if (!id && req->body_len && req->body_len <= VZ_TL_TRACE_HEX) {
        memcpy(trace, req->body, req->body_len);
        trace[req->body_len] = '\0';
        id = trace;
    }
    if (!vz_tl_hex_id_valid(id, VZ_TL_TRACE_HEX))
        return vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID,
                                      "trace_id must be 32 lowercase hex digits");
    int err = 0;
    char *tree = tl_trace_tree(self->redis, id, &err);
    if (!tree)
        return err == -ENOENT
                   ? vz_authctx_reply_error(reply, 404, "not_found", "no such trace (or expired)")
                   : vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    int rc = vz_reply_body(reply, tree, strlen(tree));
    free(tree);
    vz_reply_ctx_set(reply, VZ_AUTHCTX_HTTP_STATUS, "200");
    return rc;
}

//  OTLP/HTTP answers a full success with an empty partialSuccess.
static int s_otlp_ok(vz_reply_t *reply)
{
    static const char body[] = "{\"partialSuccess\":{}}";
    vz_reply_ctx_set(reply, VZ_AUTHCTX_HTTP_STATUS, "200");
    return vz_reply_body(reply, body, sizeof body - 1);
}

int tl_h_otlp_traces(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    if (!tl_may(self, req, reply, "telemetry:write"))
        return 0;
    tl_span_t *spans = NULL;
    size_t n = 0;
    const char *why = NULL;
    if (tl_otlp_traces_parse(req->body, req->body_len, &spans, &n, &why) < 0)
        return vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID, why);
    int rc = tl_spans_take(self, spans, n);
    free(spans);
    if (rc < 0)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    return s_otlp_ok(reply);
}

int tl_h_otlp_metrics(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    if (!tl_may(self, req, reply, "telemetry:write"))
        return 0;
    tl_otlp_point_t *points = NULL;
    size_t n = 0;
    const char *why = NULL;
    if (tl_otlp_metrics_parse(req->body, req->body_len, &points, &n, &why) < 0)
        return vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID, why);
    //  The latest value of each metric per service, kept with the coarse
    //  retention: {tl}:otlp:<service> name -> value, name:count -> points;
    //  one script call for the whole request. KEYS[1] (the prefix) routes
    //  it to {tl}'s slot, where every ARGV key also is.
    const char **args = (const char **)calloc(1 + 4 * (n ? n : 1), sizeof(char *));
    char(*texts)[3][TL_TRACE_TEXT + 16] = calloc(n ? n : 1, sizeof *texts);
    assert(args && texts);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%d", self->config.coarse_ttl_s);
    args[0] = ttl;
    for (size_t i = 0; i < n; i++) {
        snprintf(texts[i][0], sizeof texts[i][0], "{tl}:otlp:%s", points[i].service);
        snprintf(texts[i][1], sizeof texts[i][1], "%.17g", points[i].value);
        snprintf(texts[i][2], sizeof texts[i][2], "%llu", (unsigned long long)points[i].count);
        args[1 + 4 * i] = texts[i][0];
        args[2 + 4 * i] = points[i].name;
        args[3 + 4 * i] = texts[i][1];
        args[4 + 4 * i] = texts[i][2];
    }
    static vz_redis_script_t *script;
    if (!script)
        script = vz_redis_script_new(
            "for i = 2, #ARGV, 4 do\n"
            "  redis.call('HSET', ARGV[i], ARGV[i + 1], ARGV[i + 2])\n"
            "  redis.call('HINCRBY', ARGV[i], ARGV[i + 1] .. ':count', ARGV[i + 3])\n"
            "  redis.call('EXPIRE', ARGV[i], ARGV[1])\n"
            "end\n"
            "return 1\n");
    redisReply *r = n ? vz_redis_eval(self->redis, script, 1, (const char *[]){"{tl}:otlp:"},
                                      (int)(1 + 4 * n), args)
                      : NULL;
    int rc = n == 0 || (r && r->type != REDIS_REPLY_ERROR) ? 0 : -EIO;
    if (r)
        freeReplyObject(r);
    free(args);
    free(texts);
    free(points);
    if (rc < 0)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    return s_otlp_ok(reply);
}

// --------------------------------------------------------------------------
//  The status page: public, nothing secret (names, counts, states)

int tl_h_status(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    vz_reply_ctx_set(reply, VZ_AUTHCTX_HTTP_STATUS, "200");
    return vz_reply_body(reply, tl_status_html, sizeof tl_status_html - 1);
}

typedef struct {
    uint64_t count;    //  requests in the window
    uint64_t errors;   //  of them errors
    vz_tl_hist_t hist; //  latency, all series merged
} s_summary_t;

static void s_summarize(void *arg, const tl_merged_t *m)
{
    s_summary_t *sum = arg;
    sum->count += m->hist.count;
    vz_tl_hist_merge(&sum->hist, &m->hist);
    for (size_t c = 0; c < m->ncodes; c++)
        if (tl_code_error(m->codes[c].name))
            sum->errors += m->codes[c].count;
}

static int s_status_service(tl_t *self, vz_json_writer_t *w, const char *service, int64_t now_s)
{
    tl_sat_t sat[64];
    size_t nsat = 0;
    s_summary_t *sum = (s_summary_t *)zmalloc(sizeof *sum);
    uint64_t n[S_CHART_MINUTES], e[S_CHART_MINUTES];
    int rc = tl_store_saturation(self->store, service, sat, 64, &nsat);
    if (rc == 0)
        rc = tl_store_series(self->store, service, now_s - S_STATUS_WINDOW_S, now_s + 1,
                             s_summarize, sum);
    if (rc == 0)
        rc = tl_store_chart(self->store, service, now_s, n, e, S_CHART_MINUTES);
    if (rc < 0) {
        free(sum);
        return rc;
    }
    int replicas = 0;
    for (size_t i = 0; i < nsat; i++)
        replicas += now_s - sat[i].t_s <= S_READY_AGE_S;
    //  Ready: the broker has a worker for it (the gateway, no worker: it reports).
    int64_t workers = -1, queue = -1;
    tl_broker_get(self, service, &workers, &queue);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "service", service);
    vz_json_write_kv_int(w, "replicas", replicas);
    vz_json_write_kv_int(w, "workers", workers);
    vz_json_write_kv_int(w, "queue", queue);
    vz_json_write_kv_bool(w, "ready", workers >= 0 ? workers > 0 : replicas > 0);
    vz_json_write_key(w, "rate_per_s");
    vz_json_write_double(w, (double)sum->count / S_STATUS_WINDOW_S);
    vz_json_write_key(w, "error_ratio");
    vz_json_write_double(w, sum->count ? (double)sum->errors / (double)sum->count : 0);
    vz_json_write_key(w, "p99_ms");
    vz_json_write_double(w, vz_tl_hist_quantile(&sum->hist, 0.99) / 1000.0);
    vz_json_write_key(w, "chart");
    vz_json_write_object_begin(w);
    vz_json_write_key(w, "requests");
    vz_json_write_array_begin(w);
    for (int i = 0; i < S_CHART_MINUTES; i++)
        vz_json_write_uint(w, n[i]);
    vz_json_write_array_end(w);
    vz_json_write_key(w, "errors");
    vz_json_write_array_begin(w);
    for (int i = 0; i < S_CHART_MINUTES; i++)
        vz_json_write_uint(w, e[i]);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    free(sum);
    return 0;
}

//  The SLOs' budgets, as telemetry.slo computes them; *freeze set.
static int s_status_slos(tl_t *self, vz_json_writer_t *w, int64_t now_s, bool *freeze)
{
    vz_json_write_key(w, "slos");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < self->slos.count; i++) {
        const tl_slo_t *slo = &self->slos.slo[i];
        tl_slo_status_t st;
        if (tl_slo_eval(slo, &self->slos.alerting, tl_store_slo_counts, self->store, now_s, &st) <
            0)
            return -EIO;
        *freeze = *freeze || st.spent;
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "name", slo->name);
        vz_json_write_kv_string(w, "objective",
                                slo->kind == TL_SLO_AVAILABILITY ? "availability" : "latency");
        vz_json_write_key(w, "target");
        vz_json_write_double(w, slo->target);
        vz_json_write_key(w, "budget_remaining");
        vz_json_write_double(w, st.remaining);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    return 0;
}

//  Alerts pending or firing, from the last evaluation.
static void s_status_alerts(tl_t *self, vz_json_writer_t *w)
{
    size_t len = 0;
    char *saved = tl_store_get(self->store, "{tl}:alerts", &len);
    tl_alerts_t *table = (tl_alerts_t *)zmalloc(sizeof *table);
    if (saved && tl_alerts_load(table, saved, len) < 0)
        table->count = 0;
    free(saved);
    vz_json_write_key(w, "alerts");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < table->count; i++) {
        const tl_alert_t *a = &table->alert[i];
        if (a->state != TL_ALERT_PENDING && a->state != TL_ALERT_FIRING)
            continue;
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "key", a->key);
        vz_json_write_kv_string(w, "severity", tl_severity_name(a->severity));
        vz_json_write_kv_string(w, "state", tl_alert_state_name(a->state));
        vz_json_write_kv_int(w, "since", a->since_s);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    free(table);
}

void tl_gauges_signals(tl_t *self, int64_t now_s)
{
    if (!self->metrics)
        return;
    zlist_t *services = tl_store_services(self->store);
    for (const char *svc = services ? zlist_first(services) : NULL; svc;
         svc = zlist_next(services)) {
        s_summary_t *sum = (s_summary_t *)zmalloc(sizeof *sum);
        if (tl_store_series(self->store, svc, now_s - S_STATUS_WINDOW_S, now_s + 1, s_summarize,
                            sum) == 0) {
            char labels[VZ_TL_NAME_MAX + 16];
            snprintf(labels, sizeof labels, "service=%s", svc);
            vz_series_set(vz_metrics_gauge(self->metrics, "vz_telemetry_requests_per_second",
                                           "Requests per second over 5 minutes, per service",
                                           labels),
                          (double)sum->count / S_STATUS_WINDOW_S);
            vz_series_set(vz_metrics_gauge(self->metrics, "vz_telemetry_error_ratio",
                                           "Share of requests that failed over 5 minutes", labels),
                          sum->count ? (double)sum->errors / (double)sum->count : 0);
            vz_series_set(vz_metrics_gauge(self->metrics, "vz_telemetry_latency_p99_seconds",
                                           "p99 latency over 5 minutes (1 % relative error)",
                                           labels),
                          vz_tl_hist_quantile(&sum->hist, 0.99) / 1e6);
        }
        free(sum);
    }
    zlist_destroy(&services);
    tl_usage_t usage;
    if (tl_store_usage(self->store, now_s, &usage) == 0) {
        const char *windows[] = {"window=day", "window=week", "window=month"};
        uint64_t values[] = {usage.dau, usage.wau, usage.mau};
        for (int i = 0; i < 3; i++)
            vz_series_set(vz_metrics_gauge(self->metrics, "vz_telemetry_active_users",
                                           "Distinct active users (HyperLogLog)", windows[i]),
                          (double)values[i]);
    }
}

int tl_h_status_json(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    int64_t now_s = vz_clock_now_ms() / 1000;
    zlist_t *services = tl_store_services(self->store);
    redisReply *deploys = services ? tl_store_deploys(self->store) : NULL;
    if (!services || !deploys) {
        zlist_destroy(&services);
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    }
    //  Services the broker has workers for but that do not report
    //  (VZ_TELEMETRY=off) are shown too.
    const char *hkeys[] = {"HKEYS", "{tl}:broker"};
    redisReply *known = vz_redis_command(self->redis, 2, hkeys, NULL);
    for (size_t i = 0; known && known->type == REDIS_REPLY_ARRAY && i < known->elements; i++) {
        const char *name = known->element[i]->str;
        bool listed = !name || strcmp(name, VZ_BROKER_SERVICE) == 0;
        for (const char *svc = zlist_first(services); svc && !listed; svc = zlist_next(services))
            listed = strcmp(svc, name) == 0;
        if (!listed)
            zlist_append(services, (void *)name);
    }
    if (known)
        freeReplyObject(known);
    zlist_sort(services, (zlist_compare_fn *)strcmp);
    vz_json_writer_t *w = vz_json_writer_new(S_STATUS_MAX);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "t", now_s);
    vz_json_write_key(w, "services");
    vz_json_write_array_begin(w);
    int rc = 0;
    for (const char *svc = zlist_first(services); svc && rc == 0; svc = zlist_next(services))
        rc = s_status_service(self, w, svc, now_s);
    vz_json_write_array_end(w);
    bool freeze = false;
    if (rc == 0)
        rc = s_status_slos(self, w, now_s, &freeze);
    s_status_alerts(self, w);
    vz_json_write_key(w, "deploys");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < deploys->elements; i++) {
        redisReply *d = deploys->element[i];
        vz_json_t *doc =
            d->type == REDIS_REPLY_STRING ? vz_json_parse(d->str, d->len, NULL, NULL) : NULL;
        if (doc)
            vz_json_write_value(w, vz_json_root(doc));
        vz_json_destroy(&doc);
    }
    vz_json_write_array_end(w);
    vz_json_write_kv_bool(w, "deploy_freeze", freeze);
    vz_json_write_object_end(w);
    freeReplyObject(deploys);
    zlist_destroy(&services);
    return tl_reply_json(reply, &w, rc);
}
