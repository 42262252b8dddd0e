/*  health - the gateway's aggregated /health document
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "health.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_broker_contract.h"
#include "vz_log.h"
#include "vz_proto.h"

#define SERVICES_MAX 128 //  services listed; more are left out

static void s_put_string(FILE *out, const char *text)
{
    char esc[VZ_ERRMSG_MAX * 6];
    if (vz_json_escape(esc, sizeof esc, text) < 0)
        vz_strlcpy(esc, "?", sizeof esc);
    fprintf(out, "\"%s\"", esc);
}

static void s_put_check(FILE *out, const char *name, bool up, const char *error)
{
    fprintf(out, "\"%s\":{\"status\":\"%s\"", name, up ? "up" : "down");
    if (error && error[0]) {
        fputs(",\"error\":", out);
        s_put_string(out, error);
    }
    fputc('}', out);
}

static void s_put_service(FILE *out, const vz_broker_service_t *svc, bool first)
{
    fputs(first ? "" : ",", out);
    s_put_string(out, svc->name);
    fprintf(out, ":{\"status\":\"%s\",\"workers\":%llu,\"queue\":%llu}",
            svc->workers > 0 ? "up" : "down", (unsigned long long)svc->workers,
            (unsigned long long)svc->queue);
}

char *gw_health_render(const gw_upcall_t *call, const char *const *needed, size_t count,
                       bool *healthy)
{
    assert(call && healthy);
    //  A remote error still proves the broker is there; only a local
    //  timeout or a failed send means it is not.
    bool replied = call->result == GW_UPCALL_REPLY;
    bool broker_up = replied || (strcmp(call->error_code, VZ_ERR_TIMEOUT) != 0 &&
                                 strcmp(call->error_code, VZ_ERR_UNAVAILABLE) != 0);
    vz_broker_service_t *svcs = calloc(SERVICES_MAX, sizeof *svcs);
    assert(svcs);
    //  The broker's reply is still bytes from a socket: a malformed one
    //  lists nothing (and every needed service is then down).
    size_t found = 0;
    if (replied && vz_broker_services_decode(call->reply, call->reply_len, svcs, SERVICES_MAX,
                                             &found, NULL, NULL) != 0)
        found = 0;

    bool all = replied && call->redis_ok;
    char *json = NULL;
    size_t json_len = 0;
    FILE *out = open_memstream(&json, &json_len);
    assert(out);
    s_put_check(out, "broker", broker_up, replied ? NULL : call->error_code);
    fputc(',', out);
    s_put_check(out, "redis", call->redis_ok, call->redis_error);
    fputs(",\"services\":{", out);
    bool first = true;
    for (size_t i = 0; i < found; i++, first = false)
        s_put_service(out, &svcs[i], first);
    for (size_t n = 0; n < count; n++) {
        size_t i = 0;
        while (i < found && strcmp(svcs[i].name, needed[n]) != 0)
            i++;
        if (i < found) {
            all = all && svcs[i].workers > 0;
            continue;
        }
        //  A needed service the broker does not know has no worker at all.
        vz_broker_service_t missing = {.workers = 0, .queue = 0};
        vz_strlcpy(missing.name, needed[n], sizeof missing.name);
        s_put_service(out, &missing, first);
        first = false;
        all = false;
    }
    fputs("}}", out);
    fclose(out);
    free(svcs);

    //  The overall status is known only now; it goes first for readers.
    char *doc = NULL;
    int len = asprintf(&doc, "{\"status\":\"%s\",%s", all ? "ok" : "degraded", json);
    assert(len >= 0);
    free(json);
    *healthy = all;
    return doc;
}

#define NEEDED_MAX 64 //  services a probe judges

struct gw_health_cache_t {
    gw_upstream_t *upstream;              //  borrowed: runs the probes
    int period_ms;                        //  between probe starts
    int64_t last_ms;                      //  when the last probe started, 0 = never
    atomic_bool busy;                     //  a probe is in flight (call is the reactor's)
    gw_upcall_t call;                     //  the probe
    char needed[NEEDED_MAX][VZ_NAME_MAX]; //  services the probe judges
    size_t count;                         //  used
    pthread_mutex_t lock;                 //  guards doc and healthy
    char *doc;                            //  last document, NULL = none yet
    bool healthy;                         //  its verdict
};

gw_health_cache_t *gw_health_cache_new(gw_upstream_t *upstream, int period_ms)
{
    assert(upstream && period_ms > 0);
    gw_health_cache_t *self = calloc(1, sizeof *self);
    assert(self);
    self->upstream = upstream;
    self->period_ms = period_ms;
    pthread_mutex_init(&self->lock, NULL);
    return self;
}

void gw_health_cache_destroy(gw_health_cache_t **self_p)
{
    assert(self_p);
    gw_health_cache_t *self = *self_p;
    if (!self)
        return;
    free(self->call.reply);
    free(self->doc);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

//  The probe is over (reactor thread): render and keep the document.
static void s_probed(gw_upcall_t *call)
{
    gw_health_cache_t *self = call->arg;
    const char *needed[NEEDED_MAX];
    for (size_t i = 0; i < self->count; i++)
        needed[i] = self->needed[i];
    bool healthy = false;
    char *doc = gw_health_render(call, needed, self->count, &healthy);
    free(call->reply);
    call->reply = NULL;
    pthread_mutex_lock(&self->lock);
    free(self->doc);
    self->doc = doc;
    self->healthy = healthy;
    pthread_mutex_unlock(&self->lock);
    atomic_store(&self->busy, false);
}

void gw_health_cache_tick(gw_health_cache_t *self, const char *const *needed, size_t count,
                          int64_t now_ms)
{
    assert(self);
    if (atomic_load(&self->busy) || (self->last_ms && now_ms - self->last_ms < self->period_ms))
        return;
    self->last_ms = now_ms;
    self->count = 0;
    for (size_t i = 0; i < count && self->count < NEEDED_MAX; i++)
        vz_strlcpy(self->needed[self->count++], needed[i], VZ_NAME_MAX);
    gw_upcall_reset(&self->call);
    self->call.kind = GW_UPCALL_HEALTH;
    //  Answered within the period, or counted as down by the next probe.
    self->call.timeout_ms = self->period_ms < 1000 ? self->period_ms : 1000;
    self->call.idempotent = true;
    self->call.done = s_probed;
    self->call.arg = self;
    atomic_store(&self->busy, true);
    if (gw_upstream_submit(self->upstream, &self->call) < 0)
        atomic_store(&self->busy, false); //  shutting down
}

char *gw_health_cache_get(gw_health_cache_t *self, bool *healthy)
{
    assert(self && healthy);
    pthread_mutex_lock(&self->lock);
    char *doc = self->doc ? strdup(self->doc) : NULL;
    *healthy = self->healthy;
    pthread_mutex_unlock(&self->lock);
    return doc;
}

char *gw_health_cache_admin(void *arg, bool *healthy)
{
    return gw_health_cache_get(arg, healthy);
}
