/*  bl_stripe - Stripe API requests as the official SDKs build them (pure)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "bl_stripe.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const bl_stripe_op_t s_ops[] = {
    {"customer_create", "POST", "/v1/customers", false},
    {"customer_update", "POST", "/v1/customers", true},
    {"subscription_create", "POST", "/v1/subscriptions", false},
    {"subscription_update", "POST", "/v1/subscriptions", true},
    {"subscription_cancel", "DELETE", "/v1/subscriptions", true},
    {"invoice_list", "GET", "/v1/invoices", false},
    {"checkout_session_create", "POST", "/v1/checkout/sessions", false},
    {"portal_session_create", "POST", "/v1/billing_portal/sessions", false},
    {"payment_intent_create", "POST", "/v1/payment_intents", false},
    {"event_list", "GET", "/v1/events", false},
};

const bl_stripe_op_t *bl_stripe_op_at(size_t i)
{
    return i < sizeof s_ops / sizeof s_ops[0] ? &s_ops[i] : NULL;
}

const bl_stripe_op_t *bl_stripe_op(const char *name)
{
    for (size_t i = 0; name && i < sizeof s_ops / sizeof s_ops[0]; i++)
        if (strcmp(s_ops[i].name, name) == 0)
            return &s_ops[i];
    return NULL;
}

// --------------------------------------------------------------------------
//  Form encoding

typedef struct {
    char *data;
    size_t len, cap;
    int err;
} s_buf_t;

static void s_put(s_buf_t *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data) {
            b->err = -ENOMEM;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

//  RFC 3986 percent-encoding as qs does it (unreserved bytes kept).
static void s_enc(s_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            s_put(b, (const char *)&c, 1);
        else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            s_put(b, esc, 3);
        }
    }
}

//  A canonical array index ("0", "17", not "01"): JavaScript orders such
//  object keys first, ascending. *value its number.
static bool s_index_key(const char *key, unsigned long *value)
{
    if (!key[0] || (key[0] == '0' && key[1]) || strlen(key) > 9)
        return false;
    for (const char *p = key; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    *value = strtoul(key, NULL, 10);
    return true;
}

static void s_value(s_buf_t *b, const char *prefix, size_t plen, const vz_json_value_t *v);

//  "prefix[key]" (or "key" at the top), the key percent-encoded.
static void s_member(s_buf_t *b, const char *prefix, size_t plen, const char *key,
                     const vz_json_value_t *v)
{
    s_buf_t name = {0};
    if (plen) {
        s_put(&name, prefix, plen);
        s_put(&name, "[", 1);
    }
    s_enc(&name, key, strlen(key));
    if (plen)
        s_put(&name, "]", 1);
    if (name.err)
        b->err = name.err;
    else
        s_value(b, name.data, name.len, v);
    free(name.data);
}

static void s_value(s_buf_t *b, const char *prefix, size_t plen, const vz_json_value_t *v)
{
    char text[32];
    switch (vz_json_type(v)) {
    case VZ_JSON_OBJECT: {
        //  Index-like keys first, ascending (selection: objects are small).
        size_t n = vz_json_size(v);
        unsigned long last = 0;
        bool any = false;
        for (;;) {
            size_t best = n;
            unsigned long best_v = 0, k;
            for (size_t i = 0; i < n; i++)
                if (s_index_key(vz_json_key_at(v, i), &k) && (!any || k > last) &&
                    (best == n || k < best_v))
                    best = i, best_v = k;
            if (best == n)
                break;
            s_member(b, prefix, plen, vz_json_key_at(v, best), vz_json_at(v, best));
            last = best_v;
            any = true;
        }
        unsigned long ignored;
        for (size_t i = 0; i < n; i++)
            if (!s_index_key(vz_json_key_at(v, i), &ignored))
                s_member(b, prefix, plen, vz_json_key_at(v, i), vz_json_at(v, i));
        return;
    }
    case VZ_JSON_ARRAY:
        for (size_t i = 0; i < vz_json_size(v); i++) {
            snprintf(text, sizeof text, "%zu", i);
            s_member(b, prefix, plen, text, vz_json_at(v, i));
        }
        return;
    default:
        break;
    }
    //  A scalar: "name=value".
    if (b->len)
        s_put(b, "&", 1);
    s_put(b, prefix, plen);
    s_put(b, "=", 1);
    int64_t i64;
    bool flag;
    size_t slen = 0;
    const char *s = vz_json_string(v, &slen);
    if (s)
        s_enc(b, s, slen);
    else if (vz_json_bool(v, &flag) == 0)
        s_put(b, flag ? "true" : "false", flag ? 4 : 5);
    else if (vz_json_int(v, &i64) == 0) {
        int n = snprintf(text, sizeof text, "%lld", (long long)i64);
        s_put(b, text, (size_t)n);
    } else if (vz_json_type(v) == VZ_JSON_NUMBER) {
        //  JavaScript's shortest round-trip form, as the JSON writer prints it.
        double d = 0;
        vz_json_double(v, &d);
        vz_json_writer_t *w = vz_json_writer_new(64);
        vz_json_write_double(w, d);
        size_t n = 0;
        const char *out = vz_json_writer_data(w, &n);
        s_enc(b, out ? out : "", out ? n : 0);
        vz_json_writer_destroy(&w);
    }
    //  null: the empty value, which unsets the field at Stripe.
}

int bl_stripe_form(const vz_json_value_t *params, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (params && vz_json_type(params) != VZ_JSON_OBJECT)
        return -EINVAL;
    s_buf_t b = {0};
    s_put(&b, "", 0);
    if (params)
        s_value(&b, "", 0, params);
    if (b.err) {
        free(b.data);
        return b.err;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}

int bl_stripe_target(const bl_stripe_op_t *op, const char *id, const char *form, char *out,
                     size_t n)
{
    if (op->with_id && (!id || !*id))
        return -EINVAL;
    s_buf_t b = {0};
    s_put(&b, op->path, strlen(op->path));
    if (op->with_id) {
        s_put(&b, "/", 1);
        s_enc(&b, id, strlen(id));
    }
    if (strcmp(op->method, "GET") == 0 && form && *form) {
        s_put(&b, "?", 1);
        s_put(&b, form, strlen(form));
    }
    int rc = b.err ? b.err : b.len < n ? 0 : -ENAMETOOLONG;
    if (rc == 0)
        memcpy(out, b.data, b.len + 1);
    free(b.data);
    return rc;
}

int bl_stripe_idempotency_key(const char *op, const char *logical, char out[BL_STRIPE_IDEM_MAX])
{
    char *text = NULL;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    if (asprintf(&text, "%s\n%s", op, logical) < 0)
        return -EIO;
    bool ok = SHA256((const unsigned char *)text, strlen(text), digest) != NULL;
    free(text);
    if (!ok)
        return -EIO;
    memcpy(out, "vzb-", 4);
    for (int i = 0; i < 16; i++)
        snprintf(out + 4 + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

bool bl_stripe_retryable(int rc, long status, const char *should_retry)
{
    //  Stripe's own verdict wins, as in its SDKs.
    if (should_retry && strcmp(should_retry, "true") == 0)
        return true;
    if (should_retry && strcmp(should_retry, "false") == 0)
        return false;
    if (rc < 0)
        return true;
    return status == 409 || status == 429 || status >= 500;
}

void bl_stripe_error(long status, const char *body, size_t len, bl_stripe_error_t *out)
{
    memset(out, 0, sizeof *out);
    vz_json_t *doc = body ? vz_json_parse(body, len, NULL, NULL) : NULL;
    const vz_json_value_t *err = vz_json_get(doc ? vz_json_root(doc) : NULL, "error");
    const char *type = vz_json_get_string(err, "type", NULL);
    const char *code = vz_json_get_string(err, "code", NULL);
    const char *message = vz_json_get_string(err, "message", NULL);
    snprintf(out->message, sizeof out->message, "%s",
             message ? message : "the payment provider refused the call");
    if (!type)
        type = "";
    if (strcmp(type, "card_error") == 0)
        out->status = 402, out->code = "card_declined";
    else if (strcmp(type, "invalid_request_error") == 0 && code &&
             strcmp(code, "resource_missing") == 0)
        out->status = 404, out->code = "not_found";
    else if (strcmp(type, "invalid_request_error") == 0)
        out->status = 400, out->code = "invalid_request";
    else if (strcmp(type, "idempotency_error") == 0)
        out->status = 409, out->code = "conflict";
    else if (strcmp(type, "authentication_error") == 0 || strcmp(type, "permission_error") == 0 ||
             status == 401 || status == 403) {
        out->status = 502, out->code = "bad_gateway", out->operator_alert = true;
        snprintf(out->message, sizeof out->message, "%s",
                 "the payment provider refused our credentials");
    } else if (strcmp(type, "rate_limit_error") == 0 || status == 429)
        out->status = 503, out->code = "unavailable", out->retry_after = true;
    else
        out->status = 502, out->code = "bad_gateway";
    vz_json_destroy(&doc);
}
