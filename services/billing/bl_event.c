/*  bl_event - what billing makes of one Stripe event (pure)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "bl_event.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vz_json.h"

static const bl_event_type_t s_types[] = {
    {"customer.created", BL_KIND_CUSTOMER, 1, NULL},
    {"customer.updated", BL_KIND_CUSTOMER, 2, NULL},
    {"customer.deleted", BL_KIND_CUSTOMER, 3, NULL},
    {"customer.subscription.created", BL_KIND_SUBSCRIPTION, 1, NULL},
    {"customer.subscription.updated", BL_KIND_SUBSCRIPTION, 2, NULL},
    {"customer.subscription.trial_will_end", BL_KIND_SUBSCRIPTION, 2, NULL},
    {"customer.subscription.deleted", BL_KIND_SUBSCRIPTION, 3, NULL},
    {"invoice.created", BL_KIND_INVOICE, 1, NULL},
    {"invoice.finalized", BL_KIND_INVOICE, 2, NULL},
    {"invoice.payment_failed", BL_KIND_INVOICE, 2, "dunning"},
    {"invoice.paid", BL_KIND_INVOICE, 3, "receipt"},
    {"invoice.voided", BL_KIND_INVOICE, 3, NULL},
    {"invoice.marked_uncollectible", BL_KIND_INVOICE, 3, NULL},
    {"checkout.session.completed", BL_KIND_CHECKOUT, 2, NULL},
    {"payment_intent.payment_failed", BL_KIND_PAYMENT_INTENT, 2, NULL},
    {"payment_intent.succeeded", BL_KIND_PAYMENT_INTENT, 3, NULL},
    {"charge.refunded", BL_KIND_CHARGE, 2, NULL},
    {"charge.dispute.created", BL_KIND_DISPUTE, 1, "dispute_alert"},
};

const bl_event_type_t *bl_event_type(const char *type)
{
    for (size_t i = 0; type && i < sizeof s_types / sizeof s_types[0]; i++)
        if (strcmp(s_types[i].type, type) == 0)
            return &s_types[i];
    return NULL;
}

const char *bl_event_kind_name(bl_kind_t kind)
{
    static const char *const names[] = {"unknown",  "customer",       "subscription", "invoice",
                                        "checkout", "payment_intent", "charge",       "dispute"};
    return (size_t)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

bool bl_event_paying(const char *status)
{
    return strcmp(status, "active") == 0 || strcmp(status, "past_due") == 0;
}

int64_t bl_event_monthly(int64_t amount, const char *interval, int64_t count)
{
    //  amount x num / den, rounded half up (amounts are never negative here).
    int64_t num, den;
    if (count < 1 || !interval)
        return -1;
    if (strcmp(interval, "month") == 0)
        num = 1, den = count;
    else if (strcmp(interval, "year") == 0)
        num = 1, den = 12 * count;
    else if (strcmp(interval, "week") == 0)
        num = 52, den = 12 * count;
    else if (strcmp(interval, "day") == 0)
        num = 365, den = 12 * count;
    else
        return -1;
    return (amount * num * 2 + den) / (2 * den);
}

//  Copy a string member (absent, null or too long: "").
static void s_str(const vz_json_value_t *obj, const char *key, char *out, size_t max)
{
    size_t n = 0;
    const char *text = vz_json_get_string(obj, key, &n);
    out[0] = '\0';
    if (text && n < max)
        memcpy(out, text, n + 1);
}

static int64_t s_int(const vz_json_value_t *obj, const char *key)
{
    int64_t v = 0;
    return vz_json_int(vz_json_get(obj, key), &v) == 0 ? v : 0;
}

//  A subscription's MRR: every item's price (or legacy plan) normalised.
static int64_t s_subscription_mrr(const vz_json_value_t *sub)
{
    const vz_json_value_t *items = vz_json_get(vz_json_get(sub, "items"), "data");
    int64_t total = 0;
    for (size_t i = 0; i < vz_json_size(items); i++) {
        const vz_json_value_t *item = vz_json_at(items, i);
        const vz_json_value_t *price = vz_json_get(item, "price");
        int64_t quantity = vz_json_get(item, "quantity") ? s_int(item, "quantity") : 1;
        int64_t amount = 0, count = 0;
        const char *interval = NULL;
        if (vz_json_int(vz_json_get(price, "unit_amount"), &amount) == 0) {
            const vz_json_value_t *rec = vz_json_get(price, "recurring");
            interval = vz_json_get_string(rec, "interval", NULL);
            count = s_int(rec, "interval_count");
        } else {
            const vz_json_value_t *plan = vz_json_get(item, "plan");
            amount = s_int(plan, "amount");
            interval = vz_json_get_string(plan, "interval", NULL);
            count = s_int(plan, "interval_count");
        }
        int64_t monthly = bl_event_monthly(amount * quantity, interval, count);
        if (monthly > 0)
            total += monthly;
    }
    return total;
}

int bl_event_read(const void *body, size_t len, bl_event_t *out)
{
    memset(out, 0, sizeof *out);
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    s_str(root, "id", out->id, sizeof out->id);
    s_str(root, "type", out->type, sizeof out->type);
    int rc =
        out->id[0] && out->type[0] && vz_json_int(vz_json_get(root, "created"), &out->created) == 0
            ? 0
            : -EINVAL;
    out->row = bl_event_type(out->type);
    const vz_json_value_t *obj = vz_json_get(vz_json_get(root, "data"), "object");
    if (rc == 0 && out->row) {
        s_str(obj, "id", out->object, sizeof out->object);
        if (!out->object[0])
            rc = -EINVAL;
    }
    if (rc == 0 && out->row) {
        bl_kind_t kind = out->row->kind;
        out->at = out->created;
        s_str(obj, "status", out->status, sizeof out->status);
        s_str(obj, "currency", out->currency, sizeof out->currency);
        for (char *p = out->currency; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        s_str(vz_json_get(obj, "metadata"), "vz_user", out->vz_user, sizeof out->vz_user);
        if (kind == BL_KIND_CUSTOMER)
            snprintf(out->customer, sizeof out->customer, "%s", out->object);
        else
            s_str(obj, "customer", out->customer, sizeof out->customer);
        //  A deleted customer has no status; a deleted subscription says "canceled".
        if (strstr(out->type, ".deleted") && !(kind == BL_KIND_SUBSCRIPTION && out->status[0]))
            strcpy(out->status, "deleted");
        switch (kind) {
        case BL_KIND_SUBSCRIPTION:
            out->mrr = s_subscription_mrr(obj);
            if (!out->currency[0]) //  older API versions: the first price's currency
                s_str(vz_json_get(vz_json_at(vz_json_get(vz_json_get(obj, "items"), "data"), 0),
                                  "price"),
                      "currency", out->currency, sizeof out->currency);
            break;
        case BL_KIND_INVOICE: {
            out->amount = s_int(obj, "amount_paid");
            int64_t paid_at = s_int(vz_json_get(obj, "status_transitions"), "paid_at");
            if (paid_at > 0)
                out->at = paid_at;
            s_str(obj, "subscription", out->subscription, sizeof out->subscription);
            if (!out->subscription[0]) //  API 2025+: parent.subscription_details
                s_str(vz_json_get(vz_json_get(obj, "parent"), "subscription_details"),
                      "subscription", out->subscription, sizeof out->subscription);
            break;
        }
        case BL_KIND_CHARGE:
            out->amount = s_int(obj, "amount_refunded");
            break;
        case BL_KIND_PAYMENT_INTENT:
        case BL_KIND_DISPUTE:
            out->amount = s_int(obj, "amount");
            break;
        case BL_KIND_CHECKOUT:
            out->amount = s_int(obj, "amount_total");
            s_str(obj, "subscription", out->subscription, sizeof out->subscription);
            break;
        default:
            break;
        }
    }
    vz_json_destroy(&doc);
    return rc;
}
