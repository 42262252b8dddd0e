/*  vz_outbox - an outbox stream delivered through the notifier (vz_stream + vz_call)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_clock.h"
#include "vz_log.h"
#include "vz_notifier_contract.h"
#include "vz_proto.h"

struct vz_outbox_t {
    vz_call_t *calls;          //  borrowed
    vz_stream_t *stream;       //  the outbox, group "notify"
    vz_metrics_t *metrics;     //  borrowed, may be NULL
    vz_outbox_config_t config; //  metric, help, what (static)
    vz_outbox_fn *fn;          //  entry -> call, or NULL
    void *arg;                 //  its argument
    int inflight;              //  calls not yet answered
};

//  One call in flight.
typedef struct {
    vz_outbox_t *owner;
    char id[64]; //  the outbox entry
} s_flight_t;

static void s_count(vz_outbox_t *self, const char *result)
{
    if (!self->metrics || !self->config.metric)
        return;
    char labels[48];
    snprintf(labels, sizeof labels, "result=%s", result);
    vz_series_inc(
        vz_metrics_counter(self->metrics, self->config.metric, self->config.help, labels));
}

//  The notifier's verdict on one call.
static void s_done(void *arg, const vz_call_result_t *r)
{
    s_flight_t *f = arg;
    vz_outbox_t *self = f->owner;
    self->inflight--;
    bool transient =
        r->outcome == VZ_CALL_LOCAL || strcmp(r->code, VZ_ERR_NO_WORKER) == 0 ||
        strcmp(r->code, VZ_ERR_UNAVAILABLE) == 0 || strcmp(r->code, VZ_ERR_TIMEOUT) == 0 ||
        strcmp(r->code, VZ_ERR_OVERLOADED) == 0 || strcmp(r->code, VZ_ERR_WORKER_LOST) == 0;
    if (r->outcome == VZ_CALL_REPLY) {
        s_count(self, "delivered");
        (void)vz_stream_ack(self->stream, f->id);
    } else if (transient) {
        //  The notifier is away: the entry waits in the outbox.
        s_count(self, "retried");
        vz_stream_retry_later(self->stream, vz_clock_mono_ms());
    } else {
        s_count(self, "refused");
        vz_warn(NULL, "the notifier refused a notification", "outbox",
                self->config.what ? self->config.what : "", "code", r->code, "message", r->message);
        (void)vz_stream_ack(self->stream, f->id);
    }
    free(f);
}

//  Without fn: the entry's own "method" and "body" fields.
static char *s_fields(const vz_stream_entry_t *e, const char **method)
{
    size_t len = 0;
    *method = vz_stream_field(e, "method", NULL);
    const char *body = vz_stream_field(e, "body", &len);
    if (!*method || !body)
        return NULL;
    char *out = malloc(len + 1);
    if (out) {
        memcpy(out, body, len);
        out[len] = '\0';
    }
    return out;
}

static vz_stream_verdict_t s_entry(void *arg, const vz_stream_entry_t *e)
{
    vz_outbox_t *self = arg;
    const char *method = NULL;
    char *body = self->fn ? self->fn(self->arg, e, &method) : s_fields(e, &method);
    if (!body || !method) {
        free(body);
        s_count(self, "skipped");
        return VZ_STREAM_ACK;
    }
    s_flight_t *f = calloc(1, sizeof *f);
    if (!f) {
        free(body);
        return VZ_STREAM_RETRY;
    }
    f->owner = self;
    snprintf(f->id, sizeof f->id, "%s", e->id);
    vz_call_req_t req = {.service = VZ_NT_SERVICE,
                         .method = method,
                         .body = body,
                         .body_len = strlen(body),
                         .timeout_ms = VZ_OUTBOX_CALL_MS};
    self->inflight++;
    vz_call_start(self->calls, &req, s_done, f);
    free(body);
    return VZ_STREAM_LATER;
}

vz_outbox_t *vz_outbox_new(vz_redis_t *redis, vz_call_t *calls, const vz_outbox_config_t *config,
                           vz_metrics_t *metrics, vz_outbox_fn *fn, void *arg)
{
    if (!calls || !config)
        return NULL;
    vz_outbox_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->calls = calls;
    self->metrics = metrics;
    self->config = *config;
    self->fn = fn;
    self->arg = arg;
    vz_stream_config_t c = {.stream = config->stream,
                            .group = "notify",
                            .consumer = config->consumer,
                            .count = 16,
                            .retry_ms = config->retry_ms,
                            //  Waiting for the notifier is normal: many deliveries.
                            .max_deliveries = 1000};
    self->stream = vz_stream_new(redis, &c, s_entry, self);
    if (!self->stream) {
        free(self);
        return NULL;
    }
    //  The copied strings are vz_stream's; these two are not kept.
    self->config.stream = self->config.consumer = NULL;
    return self;
}

void vz_outbox_destroy(vz_outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vz_outbox_t *self = *self_p;
    vz_stream_destroy(&self->stream);
    free(self);
    *self_p = NULL;
}

int vz_outbox_poll(vz_outbox_t *self, int64_t now_ms)
{
    if (self->inflight >= VZ_OUTBOX_INFLIGHT)
        return 0;
    return vz_stream_poll(self->stream, now_ms);
}
