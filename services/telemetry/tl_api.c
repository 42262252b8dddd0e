/*  tl_api - the sink's methods (ingest, signals, slo, alerts) and its evaluation tick
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry.h"
#include "vz_notifier_contract.h"
#include "vz_authctx.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_log.h"
#include "vz_proto.h"

#define S_REPLY_MAX (512 * 1024)
#define S_SAT_MAX 64              //  replicas shown per service
#define S_WINDOW_MAX (30 * 86400) //  longest signals window
#define S_LOCK_KEY "{tl}:eval:lock"
#define S_ALERTS_KEY "{tl}:alerts"
#define S_FREEZE_KEY "{tl}:freeze"
#define S_MS(us) ((us) / 1000.0)

//  The alert gauge of slo at severity sev (metrics set).
static vz_series_t *s_firing(tl_t *self, const tl_slo_t *slo, int sev)
{
    char labels[TL_SLO_NAME_MAX + 32];
    snprintf(labels, sizeof labels, "slo=%s,severity=%s", slo->name,
             tl_severity_name((tl_severity_t)sev));
    return vz_metrics_gauge(self->metrics, "vz_telemetry_alert_firing",
                            "1 while the SLO's alert of this severity fires", labels);
}

//  The deploy-freeze gauge (metrics set).
static vz_series_t *s_freeze(tl_t *self)
{
    return vz_metrics_gauge(self->metrics, "vz_telemetry_deploy_freeze",
                            "1 while an SLO's error budget is spent", NULL);
}

tl_t *tl_new(const tl_config_t *config, const tl_slo_config_t *slos, const char *redis_url,
             vz_metrics_t *metrics, const char *owner)
{
    assert(config && slos && redis_url && owner);
    vz_redis_t *redis =
        vz_redis_new(redis_url, config->redis_timeout_ms, config->redis_timeout_ms, 500);
    if (!redis)
        return NULL;
    tl_t *self = (tl_t *)zmalloc(sizeof *self);
    assert(self);
    self->config = *config;
    self->slos = *slos;
    self->redis = redis;
    tl_store_config_t sc = {config->fine_ttl_s, config->coarse_ttl_s};
    self->store = tl_store_new(redis, &sc);
    self->metrics = metrics;
    vz_strlcpy(self->owner, owner, sizeof self->owner);
    if (metrics) {
        self->ingested = vz_metrics_counter(metrics, "vz_telemetry_snapshots_total",
                                            "Snapshots ingested", "outcome=ingested");
        self->refused = vz_metrics_counter(metrics, "vz_telemetry_snapshots_total",
                                           "Snapshots ingested", "outcome=refused");
        self->notified = vz_metrics_counter(metrics, "vz_telemetry_notifications_total",
                                            "Alert notifications sent to the notifier", NULL);
        self->evals = vz_metrics_counter(metrics, "vz_telemetry_evaluations_total",
                                         "SLO evaluations run by this replica", NULL);
        self->spans = vz_metrics_counter(metrics, "vz_telemetry_spans_total",
                                         "Sampled spans stored (reporters and OTLP)", NULL);
        self->exported[0] =
            vz_metrics_counter(metrics, "vz_telemetry_otlp_exports_total",
                               "Span batches POSTed to the OTLP collector", "outcome=sent");
        self->exported[1] =
            vz_metrics_counter(metrics, "vz_telemetry_otlp_exports_total",
                               "Span batches POSTed to the OTLP collector", "outcome=failed");
        //  The alert and freeze series exist at 0 from the start (dashboards
        //  and rules see them before the first evaluation, on every replica).
        for (size_t i = 0; i < self->slos.count; i++)
            for (int sev = 0; sev < TL_SEVERITIES; sev++)
                s_firing(self, &self->slos.slo[i], sev);
        s_freeze(self);
    }
    tl_versions_init(self);
    return self;
}

void tl_destroy(tl_t **self_p)
{
    assert(self_p);
    tl_t *self = *self_p;
    if (self) {
        tl_store_destroy(&self->store);
        tl_versions_destroy(self);
        vz_redis_destroy(&self->redis);
        free(self);
        *self_p = NULL;
    }
}

static void s_kv_uint(vz_json_writer_t *w, const char *key, uint64_t value)
{
    vz_json_write_key(w, key);
    vz_json_write_uint(w, value);
}

static void s_kv_double(vz_json_writer_t *w, const char *key, double value)
{
    vz_json_write_key(w, key);
    vz_json_write_double(w, value);
}

static void s_inc(vz_series_t *series)
{
    if (series)
        vz_series_inc(series);
}

//  A snapshot from the reporter of service `caller`: a daemon reports for
//  itself only, so the broker-vouched identity must name the service.
int tl_h_ingest(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    const char *why = NULL;
    vz_tl_snapshot_t *snap = NULL;
    if (vz_tl_snapshot_decode(req->body, req->body_len, &snap, &why) < 0) {
        s_inc(self->refused);
        return vz_reply_error(reply, VZ_ERR_INVALID, why);
    }
    if (strcmp(snap->service, req->caller) != 0) {
        vz_tl_snapshot_destroy(&snap);
        s_inc(self->refused);
        return vz_reply_error(reply, VZ_ERR_FORBIDDEN, "a daemon reports for its own service");
    }
    int rc = tl_store_ingest(self->store, snap, &self->slos, vz_clock_now_ms() / 1000);
    if (rc == 0) //  per-version series of what Redis took
        tl_versions_count(self, snap);
    if (rc == 0 && snap->nspans) {
        tl_span_t *spans = (tl_span_t *)calloc(snap->nspans, sizeof *spans);
        assert(spans);
        for (size_t i = 0; i < snap->nspans; i++)
            tl_span_from_report(&spans[i], snap->service, &snap->spans[i]);
        rc = tl_spans_take(self, spans, snap->nspans);
        free(spans);
    }
    vz_tl_snapshot_destroy(&snap);
    if (rc < 0)
        return vz_reply_error(reply, VZ_ERR_UNAVAILABLE, "redis unavailable");
    s_inc(self->ingested);
    return vz_reply_body(reply, "", 0);
}

//  Readers: an in-mesh identity of VZ_TELEMETRY_READERS, or through the
//  gateway a caller granted admin or telemetry:read. Every daemon may send
//  snapshots (ingest); that does not let it read the others'.
static bool s_may_read(const tl_t *self, const vz_envelope_t *req, vz_reply_t *reply)
{
    return tl_may(self, req, reply, "telemetry:read");
}

int tl_reply_json(vz_reply_t *reply, vz_json_writer_t **writer_p, int rc)
{
    if (rc < 0) {
        vz_json_writer_destroy(writer_p);
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    }
    return vz_authctx_reply_json(reply, writer_p);
}

bool tl_may(const tl_t *self, const vz_envelope_t *req, vz_reply_t *reply, const char *scope)
{
    if (!vz_authctx_trusted(req->caller)) {
        if (vz_authctx_scope_has(self->config.readers, req->caller))
            return true;
        vz_authctx_reply_error(reply, 0, VZ_ERR_FORBIDDEN, "not a telemetry reader");
        return false;
    }
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    if (vz_authctx_scope_has(who.scope, "admin") || vz_authctx_scope_has(who.scope, scope))
        return true;
    if (strcmp(who.auth, VZ_AUTHCTX_BY_NONE) == 0)
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED, "credentials required");
    else {
        char message[96];
        snprintf(message, sizeof message, "needs scope admin or %s", scope);
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_DENIED, message);
    }
    return false;
}

//  "now" of a read, or the instant of an optional body {"at": Unix s}
//  (the reporter asks for a past week); -1 after answering invalid_request.
static int64_t s_at(const vz_envelope_t *req, vz_reply_t *reply)
{
    int64_t now_s = vz_clock_now_ms() / 1000, at = now_s;
    if (req->body_len == 0)
        return now_s;
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const vz_json_value_t *v = doc ? vz_json_get(vz_json_root(doc), "at") : NULL;
    bool bad = !doc || vz_json_type(vz_json_root(doc)) != VZ_JSON_OBJECT ||
               (v && (vz_json_int(v, &at) < 0 || at < 0));
    vz_json_destroy(&doc);
    if (bad) {
        vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID, "body: {\"at\": Unix seconds}");
        return -1;
    }
    return at;
}

//  Query: the path parameter "service" (gateway) or a JSON body
//  {"service": "...", "window_s": N}. 0, or -1 with an error reply set.
static int s_query(tl_t *self, const vz_envelope_t *req, vz_reply_t *reply, char *service, size_t n,
                   int64_t *window_s)
{
    *window_s = self->config.window_s;
    service[0] = '\0';
    const char *path = vz_authctx_param(req, "service");
    if (path)
        vz_strlcpy(service, path, n);
    if (req->body_len) {
        vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
        const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
        if (!root || vz_json_type(root) != VZ_JSON_OBJECT) {
            vz_json_destroy(&doc);
            vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID, "body must be a JSON object");
            return -1;
        }
        const char *svc = vz_json_get_string(root, "service", NULL);
        if (svc)
            vz_strlcpy(service, svc, n);
        const vz_json_value_t *w = vz_json_get(root, "window_s");
        if (w && (vz_json_int(w, window_s) < 0 || *window_s < 60 || *window_s > S_WINDOW_MAX)) {
            vz_json_destroy(&doc);
            vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID, "window_s must be 60..2592000");
            return -1;
        }
        vz_json_destroy(&doc);
    }
    if (*service && !vz_tl_name_valid(service)) {
        vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID, "service must be a service name");
        return -1;
    }
    return 0;
}

typedef struct {
    vz_json_writer_t *w; //  the reply being written
    const char *service; //  whose series are being written
    int64_t window_s;    //  for the rate
    bool open;           //  a service object is open
    const char *key;     //  "name" (series) or "version" (versions)
} s_signals_t;

//  One series: traffic, errors by code, latency quantiles.
static void s_write_series(void *arg, const tl_merged_t *m)
{
    s_signals_t *ctx = arg;
    vz_json_writer_t *w = ctx->w;
    uint64_t errors = 0;
    for (size_t c = 0; c < m->ncodes; c++)
        if (tl_code_error(m->codes[c].name)) //  not "ok", nor an HTTP 1xx..3xx
            errors += m->codes[c].count;
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, ctx->key, m->name);
    s_kv_uint(w, "count", m->hist.count);
    s_kv_double(w, "rate_per_s", (double)m->hist.count / (double)ctx->window_s);
    s_kv_double(w, "error_ratio", m->hist.count ? (double)errors / (double)m->hist.count : 0);
    vz_json_write_key(w, "codes");
    vz_json_write_object_begin(w);
    for (size_t c = 0; c < m->ncodes; c++) {
        vz_json_write_key(w, m->codes[c].name);
        vz_json_write_uint(w, m->codes[c].count);
    }
    vz_json_write_object_end(w);
    vz_json_write_key(w, "latency_ms");
    vz_json_write_object_begin(w);
    s_kv_double(w, "p50", S_MS(vz_tl_hist_quantile(&m->hist, 0.50)));
    s_kv_double(w, "p95", S_MS(vz_tl_hist_quantile(&m->hist, 0.95)));
    s_kv_double(w, "p99", S_MS(vz_tl_hist_quantile(&m->hist, 0.99)));
    s_kv_double(w, "mean", m->hist.count ? S_MS(m->hist.sum_us / (double)m->hist.count) : 0);
    s_kv_double(w, "relative_error", VZ_TL_REL_ERROR);
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
}

static int s_write_service(tl_t *self, vz_json_writer_t *w, const char *service, int64_t now_s,
                           int64_t window_s)
{
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "service", service);
    tl_totals_t tot;
    if (tl_store_totals(self->store, service, &tot) < 0)
        return -EIO;
    vz_json_write_key(w, "totals");
    vz_json_write_object_begin(w);
    s_kv_uint(w, "received", tot.received);
    s_kv_uint(w, "lost", tot.lost);
    s_kv_uint(w, "snapshots", tot.snapshots);
    s_kv_uint(w, "dropped_events", tot.dropped);
    vz_json_write_object_end(w);
    tl_sat_t sat[S_SAT_MAX];
    size_t nsat = 0;
    if (tl_store_saturation(self->store, service, sat, S_SAT_MAX, &nsat) < 0)
        return -EIO;
    int64_t workers = -1, queue = -1;
    tl_broker_get(self, service, &workers, &queue);
    vz_json_write_key(w, "broker");
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "workers", workers);
    vz_json_write_kv_int(w, "queue", queue);
    vz_json_write_object_end(w);
    vz_json_write_key(w, "saturation");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < nsat; i++) {
        vz_json_write_object_begin(w);
        vz_json_write_kv_int(w, "replica", sat[i].replica);
        s_kv_double(w, "cpu", sat[i].cpu);
        s_kv_uint(w, "rss_bytes", sat[i].rss);
        vz_json_write_kv_int(w, "open_fds", sat[i].fds);
        vz_json_write_kv_int(w, "age_s", now_s - sat[i].t_s);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_key(w, "series");
    vz_json_write_array_begin(w);
    s_signals_t ctx = {w, service, window_s, false, "name"};
    int rc =
        tl_store_series(self->store, service, now_s - window_s, now_s + 1, s_write_series, &ctx);
    vz_json_write_array_end(w);
    //  The same per version of the service (what a canary is judged by).
    vz_json_write_key(w, "versions");
    vz_json_write_array_begin(w);
    ctx.key = "version";
    if (rc == 0)
        rc = tl_store_versions(self->store, service, now_s - window_s, now_s + 1, s_write_series,
                               &ctx);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    return rc;
}

int tl_h_signals(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    if (!s_may_read(self, req, reply))
        return 0;
    char service[VZ_TL_NAME_MAX];
    int64_t window_s;
    if (s_query(self, req, reply, service, sizeof service, &window_s) < 0)
        return 0;
    int64_t now_s = s_at(req, reply);
    if (now_s < 0)
        return 0;
    zlist_t *services = tl_store_services(self->store);
    if (!services)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    vz_json_writer_t *w = vz_json_writer_new(S_REPLY_MAX);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "t", now_s);
    vz_json_write_kv_int(w, "window_s", window_s);
    vz_json_write_key(w, "services");
    vz_json_write_array_begin(w);
    int rc = 0;
    for (const char *svc = zlist_first(services); svc && rc == 0; svc = zlist_next(services))
        if (!*service || strcmp(service, svc) == 0)
            rc = s_write_service(self, w, svc, now_s, window_s);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    zlist_destroy(&services);
    return tl_reply_json(reply, &w, rc);
}

int tl_h_slo(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    if (!s_may_read(self, req, reply))
        return 0;
    int64_t now_s = vz_clock_now_ms() / 1000;
    vz_json_writer_t *w = vz_json_writer_new(S_REPLY_MAX);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "t", now_s);
    bool freeze = false;
    vz_json_write_key(w, "slos");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < self->slos.count; i++) {
        const tl_slo_t *slo = &self->slos.slo[i];
        tl_slo_status_t st;
        if (tl_slo_eval(slo, &self->slos.alerting, tl_store_slo_counts, self->store, now_s, &st) <
            0) {
            vz_json_writer_destroy(&w);
            return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
        }
        freeze = freeze || st.spent;
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "name", slo->name);
        vz_json_write_kv_string(w, "objective",
                                slo->kind == TL_SLO_AVAILABILITY ? "availability" : "latency");
        s_kv_double(w, "target", slo->target);
        vz_json_write_kv_int(w, "window_s", slo->window_s);
        vz_json_write_kv_string(w, "service", slo->service);
        vz_json_write_kv_string(w, "match", slo->match);
        s_kv_uint(w, "requests", st.budget_counts.total);
        s_kv_uint(w, "bad", st.budget_counts.bad);
        s_kv_double(w, "budget_minutes", st.budget_minutes);
        s_kv_double(w, "budget_remaining", st.remaining);
        vz_json_write_kv_bool(w, "spent", st.spent);
        vz_json_write_key(w, "burn_rates");
        vz_json_write_array_begin(w);
        for (int r = 0; r < TL_SLO_RULES; r++) {
            const tl_burn_rule_t *rule = &tl_burn_rules[r];
            vz_json_write_object_begin(w);
            vz_json_write_kv_string(w, "severity", rule->severity);
            s_kv_double(w, "factor", rule->factor);
            vz_json_write_kv_int(w, "long_s", rule->long_s);
            vz_json_write_kv_int(w, "short_s", rule->short_s);
            s_kv_double(w, "burn_long", st.burn_long[r]);
            s_kv_double(w, "burn_short", st.burn_short[r]);
            vz_json_write_kv_bool(w, "holds", st.rule[r]);
            vz_json_write_object_end(w);
        }
        vz_json_write_array_end(w);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_kv_bool(w, "deploy_freeze", freeze);
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}

int tl_h_alerts(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    if (!s_may_read(self, req, reply))
        return 0;
    size_t len = 0;
    char *alerts = tl_store_get(self->store, S_ALERTS_KEY, &len);
    char *freeze = tl_store_get(self->store, S_FREEZE_KEY, NULL);
    //  The stored table is our own JSON; checked before it is embedded.
    tl_alerts_t table;
    if (!alerts || tl_alerts_load(&table, alerts, len) < 0) {
        free(alerts);
        alerts = strdup("[]");
    }
    char *body = zsys_sprintf("{\"alerts\":%s,\"deploy_freeze\":%s}", alerts,
                              freeze && strcmp(freeze, "1") == 0 ? "true" : "false");
    free(alerts);
    free(freeze);
    int rc = vz_reply_body(reply, body, strlen(body));
    zstr_free(&body);
    vz_reply_ctx_set(reply, VZ_AUTHCTX_HTTP_STATUS, "200");
    return rc;
}

#define S_USAGE_DAYS 30
#define S_TOP_USERS 10

//  API calls by gateway route over the usage window, and by route class
//  (the route name up to its first '_': auth_login -> auth).
typedef struct {
    zhashx_t *routes;  //  route -> count (uint64_t *, owned)
    zhashx_t *classes; //  class -> count
} s_calls_t;

static void s_count_into(zhashx_t *table, const char *key, uint64_t n)
{
    uint64_t *slot = (uint64_t *)zhashx_lookup(table, key);
    if (!slot) {
        slot = (uint64_t *)zmalloc(sizeof *slot);
        zhashx_insert(table, key, slot);
    }
    *slot += n;
}

static void s_calls(void *arg, const tl_merged_t *m)
{
    s_calls_t *calls = arg;
    s_count_into(calls->routes, m->name, m->hist.count);
    char cls[VZ_TL_NAME_MAX];
    vz_strlcpy(cls, m->name, sizeof cls);
    cls[strcspn(cls, "_")] = '\0';
    s_count_into(calls->classes, cls, m->hist.count);
}

static void s_write_counts(vz_json_writer_t *w, const char *key, zhashx_t *table)
{
    vz_json_write_key(w, key);
    vz_json_write_object_begin(w);
    for (uint64_t *n = zhashx_first(table); n; n = zhashx_next(table)) {
        vz_json_write_key(w, (const char *)zhashx_cursor(table));
        vz_json_write_uint(w, *n);
    }
    vz_json_write_object_end(w);
}

//  The rest of usage: API calls by endpoint and route class (the gateway's
//  series), business events and countries (X-Country), over 30 days.
static int s_usage_more(tl_t *self, vz_json_writer_t *w, int64_t now_s)
{
    s_calls_t calls = {zhashx_new(), zhashx_new()};
    zhashx_t *events = zhashx_new(), *countries = zhashx_new();
    zhashx_t *tables[] = {calls.routes, calls.classes, events, countries};
    for (int i = 0; i < 4; i++)
        zhashx_set_destructor(tables[i], (zhashx_destructor_fn *)zstr_free);
    int rc = tl_store_series(self->store, "gateway", now_s - S_USAGE_DAYS * 86400, now_s + 1,
                             s_calls, &calls);
    redisReply *ev = rc == 0 ? tl_store_events(self->store, now_s, S_USAGE_DAYS) : NULL;
    if (!ev)
        rc = -EIO;
    for (size_t i = 0; ev && i + 1 < ev->elements; i += 2) {
        const char *name = ev->element[i]->str;
        uint64_t n = (uint64_t)strtod(ev->element[i + 1]->str, NULL);
        if (strncmp(name, "country.", 8) == 0)
            s_count_into(countries, name + 8, n);
        else
            s_count_into(events, name, n);
    }
    if (ev)
        freeReplyObject(ev);
    vz_json_write_kv_int(w, "window_days", S_USAGE_DAYS);
    //  API calls by user: the 10 busiest of the last 7 days.
    tl_user_calls_t top[S_TOP_USERS];
    size_t ntop = 0;
    if (rc == 0 && tl_store_top_users(self->store, now_s, 7, top, S_TOP_USERS, &ntop) < 0)
        rc = -EIO;
    vz_json_write_key(w, "top_users_7d");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < ntop; i++) {
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "user", top[i].user);
        s_kv_uint(w, "calls", top[i].calls);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    s_write_counts(w, "api_calls", calls.routes);
    s_write_counts(w, "route_classes", calls.classes);
    s_write_counts(w, "events", events);
    s_write_counts(w, "countries", countries);
    for (int i = 0; i < 4; i++)
        zhashx_destroy(&tables[i]);
    return rc;
}

int tl_h_usage(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    if (!s_may_read(self, req, reply))
        return 0;
    int64_t now_s = s_at(req, reply);
    if (now_s < 0)
        return 0;
    tl_usage_t usage;
    if (tl_store_usage(self->store, now_s, &usage) < 0)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    vz_json_writer_t *w = vz_json_writer_new(1024);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "t", now_s);
    s_kv_uint(w, "dau", usage.dau);
    s_kv_uint(w, "wau", usage.wau);
    s_kv_uint(w, "mau", usage.mau);
    s_kv_double(w, "relative_error", 0.0081);
    if (s_usage_more(self, w, now_s) < 0) {
        vz_json_writer_destroy(&w);
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    }
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}

#define S_TOP_ERRORS 10

int tl_h_errors_top(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    if (!s_may_read(self, req, reply))
        return 0;
    int64_t now_s = s_at(req, reply);
    if (now_s < 0)
        return 0;
    tl_error_t top[S_TOP_ERRORS];
    size_t count = 0;
    if (tl_store_errors_top(self->store, now_s, top, S_TOP_ERRORS, &count) < 0)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    vz_json_writer_t *w = vz_json_writer_new(S_REPLY_MAX);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "t", now_s);
    vz_json_write_key(w, "errors");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < count; i++) {
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "code", top[i].code);
        s_kv_uint(w, "count", top[i].count);
        s_kv_uint(w, "previous_week", top[i].previous);
        //  Change against last week: null when the code is new this week.
        vz_json_write_key(w, "change");
        if (top[i].previous)
            vz_json_write_double(w, ((double)top[i].count - (double)top[i].previous) /
                                        (double)top[i].previous);
        else
            vz_json_write_null(w);
        vz_json_write_kv_int(w, "first_seen", top[i].first_s);
        vz_json_write_kv_int(w, "last_seen", top[i].last_s);
        vz_json_write_key(w, "services");
        vz_json_write_array_begin(w);
        const char *cursor = top[i].services, *name;
        size_t len;
        while ((name = vz_authctx_scope_next(&cursor, &len)))
            vz_json_write_string_len(w, name, len);
        vz_json_write_array_end(w);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}

//  The notifier request of one transition, fire-and-forget.
static void s_notify(tl_t *self, const tl_alert_t *alert, tl_notify_t what)
{
    size_t len = 0;
    char *body = tl_alert_notify_body(alert, what, &self->slos.alerting, &len);
    if (body && self->notify &&
        vz_event_send(self->notify, VZ_NT_SERVICE, VZ_NT_METHOD_SEND, body, len) == 0)
        s_inc(self->notified);
    vz_info(NULL, what == TL_NOTIFY_FIRE ? "alert firing" : "alert resolved", "dedup_key",
            alert->key, "severity", tl_severity_name(alert->severity));
    free(body);
}

//  The evaluation's outcome as gauges of this replica's /metrics (the
//  replica that evaluated last has the current values: take max() across
//  replicas). Series are get-or-create: a lookup per SLO per evaluation.
static void s_gauges(tl_t *self, const tl_slo_t *slo, const tl_slo_status_t *st,
                     const tl_alert_t *const alerts[TL_SEVERITIES])
{
    if (!self->metrics)
        return;
    char labels[TL_SLO_NAME_MAX + 32];
    snprintf(labels, sizeof labels, "slo=%s", slo->name);
    vz_series_set(vz_metrics_gauge(self->metrics, "vz_telemetry_slo_budget_remaining",
                                   "Share of the SLO's error budget left (negative: overspent)",
                                   labels),
                  st->remaining);
    vz_series_set(vz_metrics_gauge(self->metrics, "vz_telemetry_slo_burn_rate_1h",
                                   "Burn rate of the SLO's budget over the last hour", labels),
                  st->burn_long[0]);
    for (int sev = 0; sev < TL_SEVERITIES; sev++)
        vz_series_set(s_firing(self, slo, sev),
                      alerts[sev] && alerts[sev]->state == TL_ALERT_FIRING ? 1 : 0);
}

int tl_evaluate(tl_t *self, int64_t now_s)
{
    assert(self);
    //  One replica evaluates per period: the lock lives a little less than
    //  the period, so the next tick (on any replica) can take it.
    int ttl = self->config.eval_ms > 200 ? self->config.eval_ms - 100 : self->config.eval_ms;
    int rc = tl_store_lock(self->store, S_LOCK_KEY, self->owner, ttl);
    if (rc <= 0)
        return rc;
    s_inc(self->evals);
    tl_alerts_t table = {0};
    size_t len = 0;
    char *saved = tl_store_get(self->store, S_ALERTS_KEY, &len);
    if (saved && tl_alerts_load(&table, saved, len) < 0)
        vz_warn(NULL, "unable to load alert table: starting empty", "key", S_ALERTS_KEY);
    free(saved);
    bool freeze = false;
    int failed = 0;
    for (size_t i = 0; i < self->slos.count; i++) {
        const tl_slo_t *slo = &self->slos.slo[i];
        tl_slo_status_t st;
        //  An SLO whose counts cannot be read keeps its alerts as they are;
        //  the others' steps (and what they sent) are still saved below.
        if (tl_slo_eval(slo, &self->slos.alerting, tl_store_slo_counts, self->store, now_s, &st) <
            0) {
            failed = -EIO;
            continue;
        }
        freeze = freeze || st.spent;
        const tl_alert_t *stepped[TL_SEVERITIES] = {NULL};
        for (int sev = 0; sev < TL_SEVERITIES; sev++) {
            tl_alert_t *alert = tl_alerts_get(&table, slo->name, (tl_severity_t)sev);
            stepped[sev] = alert;
            if (!alert)
                continue;
            tl_notify_t what = tl_alert_step(alert, st.condition[sev], st.burn[sev], now_s,
                                             self->slos.alerting.pending_s);
            if (what != TL_NOTIFY_NONE)
                s_notify(self, alert, what);
        }
        s_gauges(self, slo, &st, stepped);
    }
    tl_gauges_signals(self, now_s);
    if (self->metrics)
        vz_series_set(s_freeze(self), freeze ? 1 : 0);
    char *json = tl_alerts_json(&table, &len);
    rc = json ? tl_store_set(self->store, S_ALERTS_KEY, json, len) : -EIO;
    free(json);
    if (rc == 0 && failed == 0)
        rc = tl_store_set(self->store, S_FREEZE_KEY, freeze ? "1" : "0", 1);
    return rc < 0 || failed < 0 ? -EIO : 1;
}
