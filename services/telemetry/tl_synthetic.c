/*  tl_synthetic - critical endpoints called through the gateway on a period; failures alert
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry.h"
#include "vz_authctx.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_log.h"
#include "vz_notifier_contract.h"
#include "vz_proto.h"

#define S_CHECKS_MAX 16
#define S_KEY "{tl}:synth"
#define S_LOCK "{tl}:synth:lock"

typedef struct {
    char name[VZ_TL_NAME_MAX]; //  check name (the alert's)
    char method[8];            //  HTTP method
    char path[256];            //  path through the gateway
    long expect;               //  the status that passes
    bool running;              //  a call is in flight
} s_check_t;

typedef struct {
    tl_t *tl;                       //  owner
    zloop_t *loop;                  //  for the timer
    int timer;                      //  its id
    s_check_t checks[S_CHECKS_MAX]; //  configured
    size_t count;                   //  rows
    vz_series_t *outcome[2];        //  [0] passed, [1] failed
} s_synth_t;

//  "name=METHOD:/path:status": 0 or -1.
static int s_parse_one(const char *item, size_t len, s_check_t *out)
{
    char text[400];
    if (len >= sizeof text)
        return -1;
    memcpy(text, item, len);
    text[len] = '\0';
    char *eq = strchr(text, '=');
    char *c1 = eq ? strchr(eq + 1, ':') : NULL;
    char *c2 = c1 ? strrchr(c1 + 1, ':') : NULL;
    if (!eq || !c1 || !c2 || c2 == c1)
        return -1;
    *eq = *c1 = *c2 = '\0';
    char *end = NULL;
    out->expect = strtol(c2 + 1, &end, 10);
    if (!vz_tl_name_valid(text) || strlen(eq + 1) >= sizeof out->method || !*(eq + 1) ||
        c1[1] != '/' || strlen(c1 + 1) >= sizeof out->path || *end || out->expect < 100 ||
        out->expect > 599)
        return -1;
    vz_strlcpy(out->name, text, sizeof out->name);
    vz_strlcpy(out->method, eq + 1, sizeof out->method);
    vz_strlcpy(out->path, c1 + 1, sizeof out->path);
    return 0;
}

//  The check's alert, sent on a change between passing and failing.
static void s_alert(s_synth_t *self, const s_check_t *check, bool firing, int64_t fired_s)
{
    tl_alert_t alert = {.severity = TL_SEV_PAGE,
                        .state = firing ? TL_ALERT_FIRING : TL_ALERT_RESOLVED};
    snprintf(alert.key, sizeof alert.key, "synthetic/%s/page", check->name);
    vz_strlcpy(alert.slo, check->name, sizeof alert.slo);
    alert.fired_s = fired_s;
    alert.resolved_s = firing ? 0 : vz_clock_now_ms() / 1000;
    size_t len = 0;
    char *body = tl_alert_notify_body(&alert, firing ? TL_NOTIFY_FIRE : TL_NOTIFY_RESOLVE,
                                      &self->tl->slos.alerting, &len);
    if (body && self->tl->notify &&
        vz_event_send(self->tl->notify, VZ_NT_SERVICE, VZ_NT_METHOD_SEND, body, len) == 0 &&
        self->tl->notified)
        vz_series_inc(self->tl->notified);
    vz_info(NULL, firing ? "synthetic check failed" : "synthetic check passes again", "check",
            check->name, "dedup_key", alert.key);
    free(body);
}

typedef struct {
    s_synth_t *synth; //  owner
    s_check_t *check; //  which
} s_call_t;

static void s_done(const vz_http_response_t *response, void *arg)
{
    s_call_t *call = arg;
    s_synth_t *self = call->synth;
    s_check_t *check = call->check;
    free(call);
    check->running = false;
    if (response->rc == VZ_HTTP_ECANCELED)
        return; //  shutting down: not a failure of the endpoint
    bool ok = response->rc == 0 && response->status == check->expect;
    if (self->outcome[ok ? 0 : 1])
        vz_series_inc(self->outcome[ok ? 0 : 1]);
    int64_t now_s = vz_clock_now_ms() / 1000;
    //  The previous result decides whether this one changes the alert.
    size_t len = 0;
    char field[VZ_TL_NAME_MAX + 8];
    snprintf(field, sizeof field, "%s", check->name);
    const char *get[] = {"HGET", S_KEY, field};
    redisReply *prev = vz_redis_command(self->tl->redis, 3, get, NULL);
    bool was_failing = false;
    int64_t fired_s = now_s;
    if (prev && prev->type == REDIS_REPLY_STRING) {
        vz_json_t *doc = vz_json_parse(prev->str, prev->len, NULL, NULL);
        bool prev_ok = true;
        if (doc && vz_json_bool(vz_json_get(vz_json_root(doc), "ok"), &prev_ok) == 0)
            was_failing = !prev_ok;
        if (doc && was_failing)
            vz_json_int(vz_json_get(vz_json_root(doc), "fired_at"), &fired_s);
        vz_json_destroy(&doc);
    }
    if (prev)
        freeReplyObject(prev);
    if (!ok && !was_failing)
        s_alert(self, check, true, fired_s);
    else if (ok && was_failing)
        s_alert(self, check, false, fired_s);
    char *json = zsys_sprintf(
        "{\"ok\":%s,\"status\":%ld,\"t\":%lld,\"ms\":%.1f,\"fired_at\":%lld,\"path\":\"%s\"}",
        ok ? "true" : "false", response->status, (long long)now_s, response->seconds * 1000.0,
        (long long)(ok ? 0 : fired_s), check->path);
    len = strlen(json);
    const char *set[] = {"HSET", S_KEY, field, json};
    size_t lens[] = {4, strlen(S_KEY), strlen(field), len};
    redisReply *r = vz_redis_command(self->tl->redis, 4, set, lens);
    if (r)
        freeReplyObject(r);
    zstr_free(&json);
}

void tl_synthetic_run(tl_t *tl)
{
    s_synth_t *self = tl->synth;
    if (!self || !tl->http)
        return;
    for (size_t i = 0; i < self->count; i++) {
        s_check_t *check = &self->checks[i];
        if (check->running)
            continue;
        char url[VZ_PATH_MAX + 256];
        snprintf(url, sizeof url, "%s%s", tl->config.synthetic_base, check->path);
        s_call_t *call = (s_call_t *)zmalloc(sizeof *call);
        call->synth = self;
        call->check = check;
        vz_http_request_t req = {.method = check->method,
                                 .url = url,
                                 .max_attempts = 1,
                                 .metrics_host = "synthetic",
                                 .done = s_done,
                                 .arg = call};
        if (vz_http_request(tl->http, &req) == 0)
            check->running = true;
        else
            free(call);
    }
}

static int s_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    tl_t *tl = arg;
    //  One replica a period runs the checks.
    int ttl =
        tl->config.synthetic_ms > 200 ? tl->config.synthetic_ms - 100 : tl->config.synthetic_ms;
    if (tl_store_lock(tl->store, S_LOCK, tl->owner, ttl) == 1)
        tl_synthetic_run(tl);
    return 0;
}

int tl_synthetic_start(tl_t *tl, zloop_t *loop)
{
    assert(tl && loop);
    s_synth_t *self = (s_synth_t *)zmalloc(sizeof *self);
    self->tl = tl;
    self->timer = -1;
    const char *cursor = tl->config.synthetic, *item;
    size_t len;
    while ((item = vz_authctx_scope_next(&cursor, &len))) {
        if (self->count == S_CHECKS_MAX || s_parse_one(item, len, &self->checks[self->count]) < 0) {
            free(self);
            return -1;
        }
        self->count++;
    }
    if (tl->metrics) {
        self->outcome[0] = vz_metrics_counter(tl->metrics, "vz_telemetry_synthetic_total",
                                              "Synthetic checks run", "outcome=passed");
        self->outcome[1] = vz_metrics_counter(tl->metrics, "vz_telemetry_synthetic_total",
                                              "Synthetic checks run", "outcome=failed");
    }
    tl->synth = self;
    if (self->count) {
        self->loop = loop;
        self->timer = zloop_timer(loop, (size_t)tl->config.synthetic_ms, 0, s_on_timer, tl);
    }
    return 0;
}

void tl_synthetic_stop(tl_t *tl)
{
    s_synth_t *self = tl->synth;
    if (!self)
        return;
    if (self->loop && self->timer >= 0)
        zloop_timer_end(self->loop, self->timer);
    //  vz_http_destroy ran first: no call is in flight any more.
    tl->synth = NULL;
    free(self);
}

int tl_h_synthetic(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    if (!tl_may(self, req, reply, "telemetry:read"))
        return 0;
    const char *argv[] = {"HGETALL", S_KEY};
    redisReply *r = vz_redis_command(self->redis, 2, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    }
    vz_json_writer_t *w = vz_json_writer_new(64 * 1024);
    vz_json_write_object_begin(w);
    vz_json_write_key(w, "checks");
    vz_json_write_object_begin(w);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        vz_json_t *doc = vz_json_parse(r->element[i + 1]->str, r->element[i + 1]->len, NULL, NULL);
        if (!doc)
            continue;
        vz_json_write_key(w, r->element[i]->str);
        vz_json_write_value(w, vz_json_root(doc));
        vz_json_destroy(&doc);
    }
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    freeReplyObject(r);
    return vz_authctx_reply_json(reply, &w);
}
