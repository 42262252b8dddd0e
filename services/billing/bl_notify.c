/*  bl_notify - billing's side effects (billing:outbox) delivered through the notifier
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "bl_notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bl_stream.h"
#include "vz_json.h"
#include "vz_log.h"
#include "vz_proto.h"

#define NOTIFY_CALL_MS 5000 //  one notifier call
#define INFLIGHT_MAX 32     //  calls in flight before the outbox is read again

struct bl_notify_t {
    vz_redis_t *redis;     //  borrowed
    vz_call_t *calls;      //  borrowed
    bl_stream_t *stream;   //  billing:outbox, group "notify"
    vz_metrics_t *metrics; //  borrowed, may be NULL
    int inflight;          //  calls not yet answered
};

//  One call in flight.
typedef struct {
    bl_notify_t *owner;
    char id[64]; //  the outbox entry
} s_flight_t;

static void s_count(bl_notify_t *self, const char *result)
{
    if (!self->metrics)
        return;
    char labels[48];
    snprintf(labels, sizeof labels, "result=%s", result);
    vz_series_inc(vz_metrics_counter(self->metrics, "vz_billing_notifications",
                                     "Side effects handed to the notifier, by result", labels));
}

//  "12.34 EUR" for minor units in a two-decimal currency (others as is).
static void s_money(char *out, size_t n, int64_t minor, const char *currency)
{
    char upper[8] = "";
    for (size_t i = 0; currency && currency[i] && i < sizeof upper - 1; i++)
        upper[i] =
            (char)(currency[i] >= 'a' && currency[i] <= 'z' ? currency[i] - 32 : currency[i]);
    static const char *const zero_decimal[] = {"JPY", "KRW", "VND", "CLP", "ISK", "UGX"};
    for (size_t i = 0; i < sizeof zero_decimal / sizeof zero_decimal[0]; i++)
        if (strcmp(upper, zero_decimal[i]) == 0) {
            snprintf(out, n, "%" PRId64 " %s", minor, upper);
            return;
        }
    snprintf(out, n, "%" PRId64 ".%02" PRId64 " %s", minor / 100, minor % 100, upper);
}

char *bl_notify_message(const char *kind, const char *event, const char *stored, size_t len,
                        const char **method)
{
    *method = NULL;
    vz_json_t *doc = stored ? vz_json_parse(stored, len, NULL, NULL) : NULL;
    const vz_json_value_t *obj =
        vz_json_get(vz_json_get(doc ? vz_json_root(doc) : NULL, "data"), "object");
    const char *id = vz_json_get_string(obj, "id", NULL);
    const char *currency = vz_json_get_string(obj, "currency", NULL);
    vz_json_writer_t *w = vz_json_writer_new(16384);
    char key[192], money[48];
    int64_t amount = 0;
    bool any = false;
    if (strcmp(kind, "receipt") == 0 || strcmp(kind, "dunning") == 0) {
        const char *email = vz_json_get_string(obj, "customer_email", NULL);
        const char *name = vz_json_get_string(obj, "customer_name", NULL);
        const char *number = vz_json_get_string(obj, "number", NULL);
        const char *url = vz_json_get_string(obj, "hosted_invoice_url", NULL);
        vz_json_int(vz_json_get(obj, strcmp(kind, "receipt") == 0 ? "amount_paid" : "amount_due"),
                    &amount);
        s_money(money, sizeof money, amount, currency);
        snprintf(key, sizeof key, "billing-%s-%s", event, kind);
        any = email && *email;
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "channel", "email");
        vz_json_write_kv_string(w, "template", kind);
        vz_json_write_kv_string(w, "idempotency_key", key);
        vz_json_write_key(w, "to");
        vz_json_write_array_begin(w);
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "name", name ? name : "");
        vz_json_write_kv_string(w, "address", email ? email : "");
        vz_json_write_object_end(w);
        vz_json_write_array_end(w);
        vz_json_write_key(w, "data");
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "name", name && *name ? name : "customer");
        vz_json_write_kv_string(w, "amount", money);
        vz_json_write_kv_string(w, "invoice", number ? number : id ? id : "");
        vz_json_write_kv_string(w, "url", url ? url : "");
        vz_json_write_object_end(w);
        vz_json_write_object_end(w);
        *method = "send";
    } else if (strcmp(kind, "dispute_alert") == 0) {
        char summary[256];
        vz_json_int(vz_json_get(obj, "amount"), &amount);
        s_money(money, sizeof money, amount, currency);
        const char *reason = vz_json_get_string(obj, "reason", NULL);
        snprintf(summary, sizeof summary, "Dispute %s on charge %s: %s (%s)", id ? id : "?",
                 vz_json_get_string(obj, "charge", NULL) ? vz_json_get_string(obj, "charge", NULL)
                                                         : "?",
                 money, reason ? reason : "no reason given");
        snprintf(key, sizeof key, "dispute-%s", id ? id : event);
        any = true;
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "name", "billing_dispute");
        vz_json_write_kv_string(w, "severity", "critical");
        vz_json_write_kv_string(w, "status", "firing");
        vz_json_write_kv_string(w, "summary", summary);
        vz_json_write_kv_string(w, "source", "billing");
        vz_json_write_kv_string(w, "key", key);
        vz_json_write_object_end(w);
        *method = "alert";
    }
    char *out = any ? vz_json_writer_take(w, NULL) : NULL;
    if (!out)
        *method = NULL;
    vz_json_writer_destroy(&w);
    vz_json_destroy(&doc);
    return out;
}

//  The notifier's verdict on one call.
static void s_done(void *arg, const vz_call_result_t *r)
{
    s_flight_t *f = arg;
    bl_notify_t *self = f->owner;
    self->inflight--;
    bool transient =
        r->outcome == VZ_CALL_LOCAL || strcmp(r->code, VZ_ERR_NO_WORKER) == 0 ||
        strcmp(r->code, VZ_ERR_UNAVAILABLE) == 0 || strcmp(r->code, VZ_ERR_TIMEOUT) == 0 ||
        strcmp(r->code, VZ_ERR_OVERLOADED) == 0 || strcmp(r->code, VZ_ERR_WORKER_LOST) == 0;
    if (r->outcome == VZ_CALL_REPLY) {
        s_count(self, "delivered");
        (void)bl_stream_ack(self->stream, f->id);
    } else if (transient) {
        //  The notifier is away: the entry waits in the outbox.
        s_count(self, "retried");
        bl_stream_retry_later(self->stream);
    } else {
        s_count(self, "refused");
        vz_warn(NULL, "the notifier refused a billing notification", "code", r->code, "message",
                r->message);
        (void)bl_stream_ack(self->stream, f->id);
    }
    free(f);
}

//  The stored object's newest event JSON (heap) or NULL.
static char *s_stored(bl_notify_t *self, const char *kind, const char *object, size_t *len)
{
    char key[256];
    snprintf(key, sizeof key, "billing:obj:%s:%s",
             strcmp(kind, "dispute_alert") == 0 ? "dispute" : "invoice", object);
    const char *argv[] = {"HGET", key, "event"};
    redisReply *r = vz_redis_command(self->redis, 3, argv, NULL);
    char *out = r && r->type == REDIS_REPLY_STRING ? malloc(r->len + 1) : NULL;
    if (out) {
        memcpy(out, r->str, r->len + 1);
        *len = r->len;
    }
    if (r)
        freeReplyObject(r);
    return out;
}

static bl_stream_verdict_t s_entry(void *arg, const bl_stream_entry_t *e)
{
    bl_notify_t *self = arg;
    const char *kind = bl_stream_field(e, "kind", NULL);
    const char *event = bl_stream_field(e, "event", NULL);
    const char *object = bl_stream_field(e, "object", NULL);
    if (!kind || !event || !object)
        return BL_STREAM_ACK; //  not ours to understand
    size_t len = 0;
    char *stored = s_stored(self, kind, object, &len);
    const char *method = NULL;
    char *body = bl_notify_message(kind, event, stored, len, &method);
    free(stored);
    if (!body) {
        s_count(self, "skipped");
        return BL_STREAM_ACK;
    }
    s_flight_t *f = calloc(1, sizeof *f);
    if (!f) {
        free(body);
        return BL_STREAM_RETRY;
    }
    f->owner = self;
    snprintf(f->id, sizeof f->id, "%s", e->id);
    vz_call_req_t req = {.service = "notifier",
                         .method = method,
                         .body = body,
                         .body_len = strlen(body),
                         .timeout_ms = NOTIFY_CALL_MS};
    self->inflight++;
    vz_call_start(self->calls, &req, s_done, f);
    free(body);
    return BL_STREAM_LATER;
}

bl_notify_t *bl_notify_new(vz_redis_t *redis, vz_call_t *calls, const char *consumer, int retry_ms,
                           vz_metrics_t *metrics)
{
    bl_notify_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->redis = redis;
    self->calls = calls;
    self->metrics = metrics;
    bl_stream_config_t c = {.stream = "billing:outbox",
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

void bl_notify_destroy(bl_notify_t **self_p)
{
    bl_notify_t *self = *self_p;
    if (!self)
        return;
    bl_stream_destroy(&self->stream);
    free(self);
    *self_p = NULL;
}

int bl_notify_poll(bl_notify_t *self)
{
    if (self->inflight >= INFLIGHT_MAX)
        return 0;
    return bl_stream_poll(self->stream);
}
