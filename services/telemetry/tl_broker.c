/*  tl_broker - the broker's view of the mesh: workers and queue depth per service
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  On every evaluation tick the sink asks broker.services (vz_call, never
 *  waiting) and keeps the answer in {tl}:broker (service -> {"workers",
 *  "queue", "t"}): the saturation the broker adds, and the readiness the
 *  status page shows (a service is ready while the broker has a worker
 *  for it). Metrics: vz_telemetry_broker_workers{service},
 *  vz_telemetry_broker_queue{service}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry.h"
#include "vz_broker_contract.h"
#include "vz_clock.h"
#include "vz_log.h"
#include "vz_proto.h"

#define S_KEY "{tl}:broker"
#define S_MAX 256 //  services kept

static void s_done(void *arg, const vz_call_result_t *result)
{
    tl_t *self = arg;
    self->broker_asking = false;
    if (result->outcome != VZ_CALL_REPLY)
        return;
    vz_broker_service_t *list = (vz_broker_service_t *)calloc(S_MAX, sizeof *list);
    assert(list);
    size_t n = 0;
    const char *why = NULL;
    if (vz_broker_services_decode(result->body, result->body_len, list, S_MAX, &n, NULL, &why) <
        0) {
        vz_warn(NULL, "unable to read broker.services", "reason", why);
        free(list);
        return;
    }
    int64_t now_s = vz_clock_now_ms() / 1000;
    const char *del[] = {"DEL", S_KEY};
    redisReply *r = vz_redis_command(self->redis, 2, del, NULL);
    if (r)
        freeReplyObject(r);
    for (size_t i = 0; i < n; i++) {
        char value[128];
        snprintf(value, sizeof value, "{\"workers\":%llu,\"queue\":%llu,\"t\":%lld}",
                 (unsigned long long)list[i].workers, (unsigned long long)list[i].queue,
                 (long long)now_s);
        const char *set[] = {"HSET", S_KEY, list[i].name, value};
        r = vz_redis_command(self->redis, 4, set, NULL);
        if (r)
            freeReplyObject(r);
        if (self->metrics) {
            char labels[VZ_NAME_MAX + 16];
            snprintf(labels, sizeof labels, "service=%s", list[i].name);
            vz_series_set(vz_metrics_gauge(self->metrics, "vz_telemetry_broker_workers",
                                           "Ready workers per service, as the broker says", labels),
                          (double)list[i].workers);
            vz_series_set(vz_metrics_gauge(self->metrics, "vz_telemetry_broker_queue",
                                           "Requests waiting for a worker, as the broker says",
                                           labels),
                          (double)list[i].queue);
        }
    }
    free(list);
}

void tl_broker_poll(tl_t *self)
{
    assert(self);
    if (!self->calls || self->broker_asking)
        return;
    vz_call_req_t req = {
        .service = VZ_BROKER_SERVICE, .method = "services", .timeout_ms = 2000, .idempotent = true};
    self->broker_asking = true;
    vz_call_start(self->calls, &req, s_done, self);
}

int tl_broker_get(tl_t *self, const char *service, int64_t *workers, int64_t *queue)
{
    assert(self && service && workers && queue);
    *workers = *queue = -1;
    const char *get[] = {"HGET", S_KEY, service};
    redisReply *r = vz_redis_command(self->redis, 3, get, NULL);
    if (!r)
        return -EIO;
    if (r->type == REDIS_REPLY_STRING) {
        vz_json_t *doc = vz_json_parse(r->str, r->len, NULL, NULL);
        if (doc) {
            vz_json_int(vz_json_get(vz_json_root(doc), "workers"), workers);
            vz_json_int(vz_json_get(vz_json_root(doc), "queue"), queue);
        }
        vz_json_destroy(&doc);
    }
    freeReplyObject(r);
    return 0;
}
