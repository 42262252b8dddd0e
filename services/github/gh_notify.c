/*  gh_notify - github:outbox (partner notifications) delivered through the notifier
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gh_notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bl_stream.h"
#include "vz_log.h"
#include "vz_notifier_contract.h"
#include "vz_proto.h"

#define NOTIFY_CALL_MS 5000 //  one notifier call
#define INFLIGHT_MAX 32     //  calls in flight before the outbox is read again

struct gh_notify_t {
    vz_call_t *calls;      //  borrowed
    bl_stream_t *stream;   //  github:outbox, group "notify"
    vz_metrics_t *metrics; //  borrowed, may be NULL
    int inflight;          //  calls not yet answered
};

typedef struct {
    gh_notify_t *owner;
    char id[64]; //  the outbox entry
} s_flight_t;

static void s_count(gh_notify_t *self, const char *result)
{
    if (!self->metrics)
        return;
    char labels[48];
    snprintf(labels, sizeof labels, "result=%s", result);
    vz_series_inc(vz_metrics_counter(self->metrics, "vz_github_notifications",
                                     "Partner notifications handed to the notifier, by result",
                                     labels));
}

static void s_done(void *arg, const vz_call_result_t *r)
{
    s_flight_t *f = arg;
    gh_notify_t *self = f->owner;
    self->inflight--;
    bool transient =
        r->outcome == VZ_CALL_LOCAL || strcmp(r->code, VZ_ERR_NO_WORKER) == 0 ||
        strcmp(r->code, VZ_ERR_UNAVAILABLE) == 0 || strcmp(r->code, VZ_ERR_TIMEOUT) == 0 ||
        strcmp(r->code, VZ_ERR_OVERLOADED) == 0 || strcmp(r->code, VZ_ERR_WORKER_LOST) == 0;
    if (r->outcome == VZ_CALL_REPLY) {
        s_count(self, "delivered");
        (void)bl_stream_ack(self->stream, f->id);
    } else if (transient) {
        s_count(self, "retried");
        bl_stream_retry_later(self->stream);
    } else {
        s_count(self, "refused");
        vz_warn(NULL, "the notifier refused a github notification", "code", r->code, "message",
                r->message);
        (void)bl_stream_ack(self->stream, f->id);
    }
    free(f);
}

static bl_stream_verdict_t s_entry(void *arg, const bl_stream_entry_t *e)
{
    gh_notify_t *self = arg;
    size_t len = 0;
    const char *method = bl_stream_field(e, "method", NULL);
    const char *body = bl_stream_field(e, "body", &len);
    if (!method || !body || strcmp(method, VZ_NT_METHOD_SEND) != 0) {
        s_count(self, "skipped");
        return BL_STREAM_ACK;
    }
    s_flight_t *f = calloc(1, sizeof *f);
    if (!f)
        return BL_STREAM_RETRY;
    f->owner = self;
    snprintf(f->id, sizeof f->id, "%s", e->id);
    vz_call_req_t req = {.service = VZ_NT_SERVICE,
                         .method = VZ_NT_METHOD_SEND,
                         .body = body,
                         .body_len = len,
                         .timeout_ms = NOTIFY_CALL_MS};
    self->inflight++;
    vz_call_start(self->calls, &req, s_done, f);
    return BL_STREAM_LATER;
}

gh_notify_t *gh_notify_new(vz_redis_t *redis, vz_call_t *calls, const char *outbox,
                           const char *consumer, int retry_ms, vz_metrics_t *metrics)
{
    gh_notify_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->calls = calls;
    self->metrics = metrics;
    bl_stream_config_t c = {.stream = outbox,
                            .group = "notify",
                            .consumer = consumer,
                            .count = 16,
                            .retry_ms = retry_ms,
                            //  Waiting for the notifier is normal: many deliveries.
                            .max_deliveries = 1000};
    self->stream = bl_stream_new(redis, &c, s_entry, self);
    if (!self->stream) {
        free(self);
        return NULL;
    }
    return self;
}

void gh_notify_destroy(gh_notify_t **self_p)
{
    gh_notify_t *self = *self_p;
    if (!self)
        return;
    bl_stream_destroy(&self->stream);
    free(self);
    *self_p = NULL;
}

int gh_notify_poll(gh_notify_t *self)
{
    if (self->inflight >= INFLIGHT_MAX)
        return 0;
    return bl_stream_poll(self->stream);
}
