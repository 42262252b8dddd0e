/*  bl_notify - billing's side effects ({billing}:outbox) delivered through the notifier
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "bl_notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_json.h"
#include "vz_notifier_contract.h"
#include "vz_outbox.h"

struct bl_notify_t {
    vz_redis_t *redis;   //  borrowed
    vz_outbox_t *outbox; //  {billing}:outbox, group "notify"
};

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
    char key[192], money[48];
    int64_t amount = 0;
    char *out = NULL;
    if (strcmp(kind, "receipt") == 0 || strcmp(kind, "dunning") == 0) {
        const char *email = vz_json_get_string(obj, "customer_email", NULL);
        const char *name = vz_json_get_string(obj, "customer_name", NULL);
        const char *number = vz_json_get_string(obj, "number", NULL);
        const char *url = vz_json_get_string(obj, "hosted_invoice_url", NULL);
        vz_json_int(vz_json_get(obj, strcmp(kind, "receipt") == 0 ? "amount_paid" : "amount_due"),
                    &amount);
        s_money(money, sizeof money, amount, currency);
        snprintf(key, sizeof key, "billing-%s-%s", event, kind);
        vz_nt_recipient_t to = {.name = name ? name : "", .address = email ? email : ""};
        vz_nt_var_t data[] = {
            {.name = "name", .s = name && *name ? name : "customer"},
            {.name = "amount", .s = money},
            {.name = "invoice",
             .s = number ? number
                  : id   ? id
                         : ""},
            {.name = "url", .s = url ? url : ""},
        };
        vz_nt_send_t send = {.channel = "email",
                             .template_name = kind,
                             .idempotency_key = key,
                             .data = data,
                             .ndata = sizeof data / sizeof data[0],
                             .recipients = &to,
                             .nrecipients = 1};
        out = email && *email ? vz_nt_send_encode(&send, NULL) : NULL;
        *method = VZ_NT_METHOD_SEND;
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
        //  The alert body has no encoder in the contract: written here.
        vz_json_writer_t *w = vz_json_writer_new(1024);
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "name", "billing_dispute");
        vz_json_write_kv_string(w, "severity", "critical");
        vz_json_write_kv_string(w, "status", "firing");
        vz_json_write_kv_string(w, "summary", summary);
        vz_json_write_kv_string(w, "source", "billing");
        vz_json_write_kv_string(w, "key", key);
        vz_json_write_object_end(w);
        out = vz_json_writer_take(w, NULL);
        vz_json_writer_destroy(&w);
        *method = VZ_NT_METHOD_ALERT;
    }
    if (!out)
        *method = NULL;
    vz_json_destroy(&doc);
    return out;
}

//  The stored object's newest event JSON (heap) or NULL.
static char *s_stored(bl_notify_t *self, const char *kind, const char *object, size_t *len)
{
    char key[256];
    snprintf(key, sizeof key, "{billing}:obj:%s:%s",
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

//  The notifier call for one outbox entry (vz_outbox_fn).
static char *s_entry(void *arg, const vz_stream_entry_t *e, const char **method)
{
    bl_notify_t *self = arg;
    const char *kind = vz_stream_field(e, "kind", NULL);
    const char *event = vz_stream_field(e, "event", NULL);
    const char *object = vz_stream_field(e, "object", NULL);
    *method = NULL;
    if (!kind || !event || !object)
        return NULL; //  not ours to understand
    size_t len = 0;
    char *stored = s_stored(self, kind, object, &len);
    char *body = bl_notify_message(kind, event, stored, len, method);
    free(stored);
    return body;
}

bl_notify_t *bl_notify_new(vz_redis_t *redis, vz_call_t *calls, const char *consumer, int retry_ms,
                           vz_metrics_t *metrics)
{
    bl_notify_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->redis = redis;
    vz_outbox_config_t c = {.stream = "{billing}:outbox",
                            .consumer = consumer,
                            .retry_ms = retry_ms,
                            .metric = "vz_billing_notifications",
                            .help = "Side effects handed to the notifier, by result",
                            .what = "billing"};
    self->outbox = vz_outbox_new(redis, calls, &c, metrics, s_entry, self);
    if (!self->outbox) {
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
    vz_outbox_destroy(&self->outbox);
    free(self);
    *self_p = NULL;
}

int bl_notify_poll(bl_notify_t *self, int64_t now_ms)
{
    return vz_outbox_poll(self->outbox, now_ms);
}
