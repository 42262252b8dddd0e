/*  bl_api - the user-facing calls to Stripe and the caller's own objects
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bl_app.h"
#include "vz_clock.h"
#include "vz_log.h"
#include "vz_proto.h"

// --------------------------------------------------------------------------
//  Answers and checks shared by the handlers

//  Copy a member of a Stripe object into the answer, under its last name:
//  path is "key" or "a.b.key" (nested objects); strings, integers, booleans.
static void s_copy_kv(vz_json_writer_t *w, const vz_json_value_t *obj, const char *path)
{
    char part[64];
    const char *p = path, *dot;
    while ((dot = strchr(p, '.')) && (size_t)(dot - p) < sizeof part) {
        snprintf(part, sizeof part, "%.*s", (int)(dot - p), p);
        obj = vz_json_get(obj, part);
        p = dot + 1;
    }
    const vz_json_value_t *v = vz_json_get(obj, p);
    int64_t n = 0;
    bool b = false;
    if (vz_json_string(v, NULL))
        vz_json_write_kv_string(w, p, vz_json_string(v, NULL));
    else if (vz_json_int(v, &n) == 0)
        vz_json_write_kv_int(w, p, n);
    else if (vz_json_bool(v, &b) == 0)
        vz_json_write_kv_bool(w, p, b);
}

//  The parameters a writer built, parsed for bl_client_call (NULL when
//  not valid or unfinished); the writer is destroyed.
static vz_json_t *s_params_take(vz_json_writer_t **w_p, bool valid)
{
    size_t len = 0;
    const char *text = valid ? vz_json_writer_data(*w_p, &len) : NULL;
    vz_json_t *params = text ? vz_json_parse(text, len, NULL, NULL) : NULL;
    vz_json_writer_destroy(w_p);
    return params;
}

//  Complete handle with Stripe's error, or with the object's fields (paths,
//  NULL-terminated, as s_copy_kv takes them).
static void s_complete_pick(vz_deferred_t *handle, const bl_client_result_t *r,
                            const char *const *paths)
{
    if (!r->ok) {
        bl_complete_error(&handle, r->error.status, r->error.code, r->error.message);
        return;
    }
    vz_json_t *doc = vz_json_parse(r->body, r->body_len, NULL, NULL);
    const vz_json_value_t *obj = doc ? vz_json_root(doc) : NULL;
    vz_json_writer_t *w = vz_json_writer_new(BL_REPLY_MAX);
    vz_json_write_object_begin(w);
    for (size_t i = 0; paths[i]; i++)
        s_copy_kv(w, obj, paths[i]);
    vz_json_write_object_end(w);
    size_t len = 0;
    const char *text = vz_json_writer_data(w, &len);
    if (text)
        (void)vz_worker_complete(&handle, text, len);
    else
        (void)vz_worker_complete_error(&handle, VZ_ERR_INTERNAL, "unreadable Stripe answer");
    vz_json_writer_destroy(&w);
    vz_json_destroy(&doc);
}

static void s_pi_done(void *arg, const bl_client_result_t *r)
{
    static const char *const paths[] = {"id",       "status",        "amount",
                                        "currency", "client_secret", NULL};
    s_complete_pick(arg, r, paths);
}

//  The checks of every user-facing call to Stripe: a signed-in caller (who
//  filled) and a configured client. 0, or -1 after replying.
static int s_stripe_caller(bl_t *self, const vz_envelope_t *req, vz_reply_t *reply,
                           vz_authctx_t *who)
{
    vz_authctx_read(req, who);
    if (!who->sub[0]) {
        vz_authctx_reply_error(reply, 401, VZ_AUTHCTX_ERR_UNAUTHORIZED, "sign in first");
        return -1;
    }
    if (bl_stripe_unusable(self, reply))
        return -1;
    return 0;
}

//  POST /v1/billing/payment-intents {amount, currency, description?}: a
//  PaymentIntent for the caller (metadata vz_user), idempotent per caller
//  and Idempotency-Key header (or per request id without one).
int bl_h_payment_intent_create(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    vz_authctx_t who;
    if (s_stripe_caller(self, req, reply, &who) < 0)
        return 0;
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const vz_json_value_t *body = doc ? vz_json_root(doc) : NULL;
    int64_t amount = 0;
    size_t clen = 0;
    const char *currency = vz_json_get_string(body, "currency", &clen);
    const char *description = vz_json_get_string(body, "description", NULL);
    bool valid = vz_json_int(vz_json_get(body, "amount"), &amount) == 0 && amount > 0 &&
                 amount <= 99999999 && currency && clen == 3;
    for (size_t i = 0; valid && i < clen; i++)
        valid = currency[i] >= 'a' && currency[i] <= 'z';
    if (!valid) {
        vz_json_destroy(&doc);
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "amount (1..99999999 minor units) and currency (3 "
                                      "lowercase letters) are required");
    }
    //  The parameters as the SDK would take them.
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "amount", amount);
    vz_json_write_kv_string(w, "currency", currency);
    if (description)
        vz_json_write_kv_string(w, "description", description);
    vz_json_write_key(w, "automatic_payment_methods");
    vz_json_write_object_begin(w);
    vz_json_write_kv_bool(w, "enabled", true);
    vz_json_write_object_end(w);
    vz_json_write_key(w, "metadata");
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "vz_user", who.sub);
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    vz_json_t *params = s_params_take(&w, true);
    vz_json_destroy(&doc);
    const char *client_key = vz_authctx_header(req, "Idempotency-Key");
    char logical[512];
    snprintf(logical, sizeof logical, "%s/%s", who.sub,
             client_key && *client_key ? client_key : req->id);
    vz_deferred_t *handle = vz_reply_defer(reply, NULL);
    int rc = params ? bl_client_call(self->client, "payment_intent_create", NULL,
                                     vz_json_root(params), logical, s_pi_done, handle)
                    : -ENOMEM;
    vz_json_destroy(&params);
    if (rc == -EAGAIN)
        (void)vz_worker_complete_error(&handle, VZ_ERR_UNAVAILABLE,
                                       "idempotency key not stored: Redis unavailable");
    else if (rc < 0)
        (void)vz_worker_complete_error(&handle, VZ_ERR_INTERNAL, "payment intent not sent");
    return 0;
}

// --------------------------------------------------------------------------
//  Checkout: the caller's Stripe customer (created once), then a session

#define URL_MAX 1024 //  longest success/cancel URL accepted

typedef struct {
    bl_t *self;
    vz_deferred_t *handle;
    char sub[VZ_AUTHCTX_VALUE_MAX + 1]; //  the caller
    char logical[600];                  //  the session's idempotency name
    char *params;                       //  session parameters, without the customer (JSON
                                        //  object text whose last byte is '}')
} s_checkout_t;

static void s_checkout_free(s_checkout_t *co)
{
    free(co->params);
    free(co);
}

static void s_checkout_fail(s_checkout_t *co, int status, const char *code, const char *message)
{
    bl_complete_error(&co->handle, status, code, message);
    s_checkout_free(co);
}

static void s_session_done(void *arg, const bl_client_result_t *r)
{
    s_checkout_t *co = arg;
    static const char *const paths[] = {"id", "url", "customer", NULL};
    s_complete_pick(co->handle, r, paths);
    co->handle = NULL;
    s_checkout_free(co);
}

//  The session for customer: params plus "customer".
static void s_session_start(s_checkout_t *co, const char *customer)
{
    size_t n = strlen(co->params);
    char *text = zsys_sprintf("%.*s,\"customer\":\"%s\"}", (int)(n - 1), co->params, customer);
    vz_json_t *doc = text ? vz_json_parse(text, strlen(text), NULL, NULL) : NULL;
    int rc = doc ? bl_client_call(co->self->client, "checkout_session_create", NULL,
                                  vz_json_root(doc), co->logical, s_session_done, co)
                 : -EINVAL;
    vz_json_destroy(&doc);
    zstr_free(&text);
    if (rc < 0)
        s_checkout_fail(co, 503, VZ_ERR_UNAVAILABLE, "checkout session not sent");
}

static void s_customer_done(void *arg, const bl_client_result_t *r)
{
    s_checkout_t *co = arg;
    if (!r->ok) {
        s_checkout_fail(co, r->error.status, r->error.code, r->error.message);
        return;
    }
    vz_json_t *doc = vz_json_parse(r->body, r->body_len, NULL, NULL);
    const char *id = doc ? vz_json_get_string(vz_json_root(doc), "id", NULL) : NULL;
    char customer[BL_SIG_ID_MAX] = "";
    if (id && strlen(id) < sizeof customer)
        strcpy(customer, id);
    vz_json_destroy(&doc);
    if (!customer[0] || bl_customer_remember(co->self, co->sub, customer) < 0) {
        s_checkout_fail(co, 503, VZ_ERR_UNAVAILABLE, "customer not recorded");
        return;
    }
    s_session_start(co, customer);
}

//  A URL the session may send the buyer back to.
static bool s_url_ok(const char *url)
{
    size_t n = url ? strlen(url) : 0;
    return n > 8 && n < URL_MAX &&
           (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0);
}

//  POST /v1/billing/checkout {price, quantity?, success_url, cancel_url,
//  trial_period_days?}: a Checkout Session in subscription mode for the
//  caller's customer (created the first time, metadata vz_user) -> {id, url,
//  customer}. Idempotent per caller and Idempotency-Key header.
int bl_h_checkout(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    vz_authctx_t who;
    if (s_stripe_caller(self, req, reply, &who) < 0)
        return 0;
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const vz_json_value_t *body = doc ? vz_json_root(doc) : NULL;
    const char *price = vz_json_get_string(body, "price", NULL);
    const char *ok_url = vz_json_get_string(body, "success_url", NULL);
    const char *cancel_url = vz_json_get_string(body, "cancel_url", NULL);
    int64_t quantity = 1, trial = 0;
    if (vz_json_get(body, "quantity") && vz_json_int(vz_json_get(body, "quantity"), &quantity) < 0)
        quantity = 0;
    if (vz_json_get(body, "trial_period_days") &&
        vz_json_int(vz_json_get(body, "trial_period_days"), &trial) < 0)
        trial = -1;
    if (!price || strncmp(price, "price_", 6) != 0 || strlen(price) > 128 || quantity < 1 ||
        quantity > 10000 || trial < 0 || trial > 730 || !s_url_ok(ok_url) ||
        !s_url_ok(cancel_url)) {
        vz_json_destroy(&doc);
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "price (price_...), success_url and cancel_url (http[s]) "
                                      "are required; quantity 1..10000, trial_period_days "
                                      "0..730");
    }
    s_checkout_t *co = calloc(1, sizeof *co);
    vz_json_writer_t *w = vz_json_writer_new(8192);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "mode", "subscription");
    vz_json_write_key(w, "line_items");
    vz_json_write_array_begin(w);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "price", price);
    vz_json_write_kv_int(w, "quantity", quantity);
    vz_json_write_object_end(w);
    vz_json_write_array_end(w);
    vz_json_write_kv_string(w, "success_url", ok_url);
    vz_json_write_kv_string(w, "cancel_url", cancel_url);
    vz_json_write_kv_string(w, "client_reference_id", who.sub);
    if (trial > 0) {
        vz_json_write_key(w, "subscription_data");
        vz_json_write_object_begin(w);
        vz_json_write_kv_int(w, "trial_period_days", trial);
        vz_json_write_object_end(w);
    }
    vz_json_write_key(w, "metadata");
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "vz_user", who.sub);
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    vz_json_destroy(&doc);
    if (!co || vz_json_writer_status(w) != 0) {
        vz_json_writer_destroy(&w);
        free(co);
        return vz_reply_error(reply, VZ_ERR_INTERNAL, "out of memory");
    }
    size_t plen = 0;
    co->params = vz_json_writer_take(w, &plen);
    vz_json_writer_destroy(&w);
    co->self = self;
    snprintf(co->sub, sizeof co->sub, "%s", who.sub);
    const char *client_key = vz_authctx_header(req, "Idempotency-Key");
    snprintf(co->logical, sizeof co->logical, "%s/checkout/%s", who.sub,
             client_key && *client_key ? client_key : req->id);
    co->handle = vz_reply_defer(reply, NULL);
    char customer[BL_SIG_ID_MAX];
    int rc = bl_customer_of(self, who.sub, customer, sizeof customer);
    if (rc == 0) {
        s_session_start(co, customer);
        return 0;
    }
    if (rc == -EIO) {
        s_checkout_fail(co, 503, VZ_ERR_UNAVAILABLE, "billing state unavailable");
        return 0;
    }
    //  The first time: the customer, keyed by the user alone, so that two
    //  first checkouts at once make one customer at Stripe.
    char params[VZ_AUTHCTX_VALUE_MAX + 64], logical[VZ_AUTHCTX_VALUE_MAX + 16];
    vz_json_writer_t *cw = vz_json_writer_new(1024);
    vz_json_write_object_begin(cw);
    vz_json_write_key(cw, "metadata");
    vz_json_write_object_begin(cw);
    vz_json_write_kv_string(cw, "vz_user", who.sub);
    vz_json_write_object_end(cw);
    vz_json_write_object_end(cw);
    snprintf(params, sizeof params, "%s", vz_json_writer_data(cw, NULL));
    vz_json_writer_destroy(&cw);
    snprintf(logical, sizeof logical, "customer/%s", who.sub);
    vz_json_t *cdoc = vz_json_parse(params, strlen(params), NULL, NULL);
    rc = cdoc ? bl_client_call(self->client, "customer_create", NULL, vz_json_root(cdoc), logical,
                               s_customer_done, co)
              : -EINVAL;
    vz_json_destroy(&cdoc);
    if (rc < 0)
        s_checkout_fail(co, 503, VZ_ERR_UNAVAILABLE, "customer not created: Redis or Stripe away");
    return 0;
}

// --------------------------------------------------------------------------
//  The caller's own objects (from the stored state) and their changes

#define LIST_DEFAULT 10 //  items per page unless the caller asks
#define LIST_MAX 100    //  most items per page, as Stripe's lists

//  One row of the list script's answer.
typedef struct {
    const char *id, *status, *currency, *subscription;
    long long amount, mrr, created;
} s_row_t;

//  Newest first, then by id: a stable order for cursors.
static int s_row_cmp(const void *a, const void *b)
{
    const s_row_t *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? 1 : -1;
    return strcmp(x->id, y->id);
}

//  GET lists: {"object":"list","data":[...],"has_more":bool} of kind for the
//  caller's customer, newest first; page size and cursor from the query
//  (?limit=&starting_after=, ctx query.<name>).
static int s_list(bl_t *self, const vz_envelope_t *req, vz_reply_t *reply, const char *kind)
{
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    if (!who.sub[0])
        return vz_authctx_reply_error(reply, 401, VZ_AUTHCTX_ERR_UNAUTHORIZED, "sign in first");
    const char *limit_text = vz_authctx_query(req, "limit");
    const char *after = vz_authctx_query(req, "starting_after");
    char *end = NULL;
    long limit = limit_text ? strtol(limit_text, &end, 10) : LIST_DEFAULT;
    if (limit < 1 || limit > LIST_MAX || (end && (end == limit_text || *end)))
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "limit must be 1..100");
    char customer[BL_SIG_ID_MAX];
    int rc = bl_customer_of(self, who.sub, customer, sizeof customer);
    if (rc == -EIO)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "billing state unavailable");
    redisReply *r = NULL;
    if (rc == 0) {
        const char *args[] = {BL_PREFIX, kind, customer};
        r = vz_redis_eval(self->redis, self->list, 1, args, 3, args);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE,
                                          "billing state unavailable");
        }
    }
    size_t n = r ? r->elements : 0;
    s_row_t *rows = calloc(n + 1, sizeof *rows);
    size_t count = 0;
    for (size_t i = 0; rows && i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 7)
            continue;
        rows[count++] = (s_row_t){e->element[0]->str,
                                  e->element[1]->str,
                                  e->element[2]->str,
                                  e->element[6]->str,
                                  strtoll(e->element[3]->str, NULL, 10),
                                  strtoll(e->element[4]->str, NULL, 10),
                                  strtoll(e->element[5]->str, NULL, 10)};
    }
    qsort(rows, count, sizeof *rows, s_row_cmp);
    size_t first = 0;
    if (after && *after) {
        while (first < count && strcmp(rows[first].id, after) != 0)
            first++;
        first = first < count ? first + 1 : count; //  an unknown cursor: nothing more
    }
    vz_json_writer_t *w = vz_json_writer_new(BL_REPLY_MAX);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "object", "list");
    vz_json_write_key(w, "data");
    vz_json_write_array_begin(w);
    size_t i = first;
    for (; i < count && i < first + (size_t)limit; i++) {
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "id", rows[i].id);
        vz_json_write_kv_string(w, "status", rows[i].status);
        vz_json_write_kv_string(w, "currency", rows[i].currency);
        if (strcmp(kind, "subscription") == 0)
            vz_json_write_kv_int(w, "mrr", rows[i].mrr);
        else
            vz_json_write_kv_int(w, "amount", rows[i].amount);
        if (rows[i].subscription[0])
            vz_json_write_kv_string(w, "subscription", rows[i].subscription);
        vz_json_write_kv_int(w, "updated", rows[i].created);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_kv_bool(w, "has_more", i < count);
    vz_json_write_object_end(w);
    free(rows);
    if (r)
        freeReplyObject(r);
    return vz_authctx_reply_json(reply, &w);
}

int bl_h_subscriptions_list(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_list(app, req, reply, "subscription");
}

int bl_h_invoices_list(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_list(app, req, reply, "invoice");
}

int bl_h_payments_list(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_list(app, req, reply, "payment_intent");
}

//  A subscription change answered with {id, status, cancel_at_period_end}.
static void s_sub_done(void *arg, const bl_client_result_t *r)
{
    static const char *const paths[] = {"id", "status", "cancel_at_period_end", NULL};
    s_complete_pick(arg, r, paths);
}

//  A signed-in caller, a configured client and the subscription of route
//  parameter id being the caller's: 0, who filled and the first item's id
//  (from the stored event) in item; else -1 after replying.
static int s_own_subscription(bl_t *self, const vz_envelope_t *req, vz_reply_t *reply,
                              vz_authctx_t *who, const char **id, char *item, size_t n)
{
    if (s_stripe_caller(self, req, reply, who) < 0)
        return -1;
    *id = vz_authctx_param(req, "id");
    char customer[BL_SIG_ID_MAX], key[BL_SIG_ID_MAX + 64];
    if (!*id || !**id || strlen(*id) >= BL_SIG_ID_MAX ||
        bl_customer_of(self, who->sub, customer, sizeof customer) < 0) {
        vz_authctx_reply_error(reply, 404, VZ_AUTHCTX_ERR_NOT_FOUND, "no such subscription");
        return -1;
    }
    snprintf(key, sizeof key, BL_PREFIX "obj:subscription:%s", *id);
    const char *argv[] = {"HMGET", key, "customer", "event"};
    redisReply *r = vz_redis_command(self->redis, 4, argv, NULL);
    bool mine = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                r->element[0]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[0]->str, customer) == 0;
    item[0] = '\0';
    if (mine && r->element[1]->type == REDIS_REPLY_STRING) {
        vz_json_t *doc = vz_json_parse(r->element[1]->str, r->element[1]->len, NULL, NULL);
        const vz_json_value_t *items = vz_json_get(
            vz_json_get(vz_json_get(vz_json_get(doc ? vz_json_root(doc) : NULL, "data"), "object"),
                        "items"),
            "data");
        const char *si = vz_json_get_string(vz_json_at(items, 0), "id", NULL);
        if (si && strlen(si) < n)
            strcpy(item, si);
        vz_json_destroy(&doc);
    }
    if (r)
        freeReplyObject(r);
    if (!mine) {
        vz_authctx_reply_error(reply, 404, VZ_AUTHCTX_ERR_NOT_FOUND, "no such subscription");
        return -1;
    }
    return 0;
}

//  The parameters of a change from the body {price?, quantity?,
//  cancel_at_period_end?} on the first item (item), or NULL after replying
//  validation_failed.
static vz_json_t *s_update_params(const vz_envelope_t *req, vz_reply_t *reply, const char *item)
{
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const vz_json_value_t *body = doc ? vz_json_root(doc) : NULL;
    const char *price = vz_json_get_string(body, "price", NULL);
    int64_t quantity = 0;
    bool at_end = false, has_q = vz_json_get(body, "quantity") != NULL,
         has_end = vz_json_get(body, "cancel_at_period_end") != NULL;
    bool valid =
        vz_json_type(body) == VZ_JSON_OBJECT && (price || has_q || has_end) &&
        (!price || (strncmp(price, "price_", 6) == 0 && strlen(price) < 128)) &&
        (!has_q || (vz_json_int(vz_json_get(body, "quantity"), &quantity) == 0 && quantity >= 1 &&
                    quantity <= 10000)) &&
        (!has_end || vz_json_bool(vz_json_get(body, "cancel_at_period_end"), &at_end) == 0) &&
        ((!price && !has_q) || item[0]);
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    if (valid && (price || has_q)) {
        vz_json_write_key(w, "items");
        vz_json_write_array_begin(w);
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "id", item);
        if (price)
            vz_json_write_kv_string(w, "price", price);
        if (has_q)
            vz_json_write_kv_int(w, "quantity", quantity);
        vz_json_write_object_end(w);
        vz_json_write_array_end(w);
    }
    if (valid && has_end)
        vz_json_write_kv_bool(w, "cancel_at_period_end", at_end);
    vz_json_write_object_end(w);
    vz_json_destroy(&doc);
    vz_json_t *params = s_params_take(&w, valid);
    if (!params)
        vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                               "give price (price_...), quantity 1..10000 and/or "
                               "cancel_at_period_end (boolean)");
    return params;
}

//  PATCH (a plan or quantity change with Stripe's default proration, or a
//  cancellation at the period's end) or DELETE (cancel now) of the caller's
//  own subscription.
static int s_subscription(void *app, const vz_envelope_t *req, vz_reply_t *reply, bool cancel)
{
    bl_t *self = app;
    vz_authctx_t who;
    const char *id = NULL;
    char item[BL_SIG_ID_MAX];
    if (s_own_subscription(self, req, reply, &who, &id, item, sizeof item) < 0)
        return 0;
    vz_json_t *params = cancel ? NULL : s_update_params(req, reply, item);
    if (!cancel && !params)
        return 0;
    const char *client_key = vz_authctx_header(req, "Idempotency-Key");
    char logical[600];
    snprintf(logical, sizeof logical, "%s/%s/%s", who.sub, id,
             client_key && *client_key ? client_key : req->id);
    vz_deferred_t *handle = vz_reply_defer(reply, NULL);
    int rc = bl_client_call(self->client, cancel ? "subscription_cancel" : "subscription_update",
                            id, params ? vz_json_root(params) : NULL, logical, s_sub_done, handle);
    vz_json_destroy(&params);
    if (rc < 0)
        (void)vz_worker_complete_error(&handle, VZ_ERR_UNAVAILABLE, "change not sent");
    return 0;
}

//  PATCH /v1/billing/subscriptions/{id} {price?, quantity?, cancel_at_period_end?}
int bl_h_subscription_update(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_subscription(app, req, reply, false);
}

//  DELETE /v1/billing/subscriptions/{id}: cancel now (at the period's end:
//  PATCH cancel_at_period_end).
int bl_h_subscription_cancel(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_subscription(app, req, reply, true);
}

//  The checks of s_stripe_caller, then the caller's customer into
//  customer: 0, or -1 after replying (409 without one: checkout first).
static int s_caller_customer(bl_t *self, const vz_envelope_t *req, vz_reply_t *reply,
                             vz_authctx_t *who, char *customer, size_t n)
{
    if (s_stripe_caller(self, req, reply, who) < 0)
        return -1;
    int rc = bl_customer_of(self, who->sub, customer, n);
    if (rc == -EIO)
        vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "billing state unavailable");
    else if (rc < 0)
        vz_authctx_reply_error(reply, 409, VZ_AUTHCTX_ERR_CONFLICT,
                               "no payment customer yet: start with POST /v1/billing/checkout");
    return rc < 0 ? -1 : 0;
}

//  {id, status, client_secret}: the first payment's secret when Stripe
//  expanded latest_invoice.payment_intent.
static void s_created_done(void *arg, const bl_client_result_t *r)
{
    static const char *const paths[] = {"id", "status",
                                        "latest_invoice.payment_intent.client_secret", NULL};
    s_complete_pick(arg, r, paths);
}

static void s_portal_done(void *arg, const bl_client_result_t *r)
{
    static const char *const paths[] = {"id", "url", NULL};
    s_complete_pick(arg, r, paths);
}

//  POST /v1/billing/subscriptions {price, quantity?, trial_period_days?}: a
//  subscription for the caller's customer, incomplete until its first
//  payment (payment_behavior default_incomplete; the answer carries the
//  PaymentIntent's client_secret). Without a customer yet: 409, checkout
//  first.
int bl_h_subscription_create(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    vz_authctx_t who;
    char customer[BL_SIG_ID_MAX];
    if (s_caller_customer(self, req, reply, &who, customer, sizeof customer) < 0)
        return 0;
    int rc = 0;
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const vz_json_value_t *body = doc ? vz_json_root(doc) : NULL;
    const char *price = vz_json_get_string(body, "price", NULL);
    int64_t quantity = 1, trial = 0;
    bool valid = price && strncmp(price, "price_", 6) == 0 && strlen(price) < 128 &&
                 (!vz_json_get(body, "quantity") ||
                  vz_json_int(vz_json_get(body, "quantity"), &quantity) == 0) &&
                 (!vz_json_get(body, "trial_period_days") ||
                  vz_json_int(vz_json_get(body, "trial_period_days"), &trial) == 0) &&
                 quantity >= 1 && quantity <= 10000 && trial >= 0 && trial <= 730;
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "customer", customer);
    vz_json_write_key(w, "items");
    vz_json_write_array_begin(w);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "price", valid ? price : "");
    vz_json_write_kv_int(w, "quantity", quantity);
    vz_json_write_object_end(w);
    vz_json_write_array_end(w);
    if (trial > 0)
        vz_json_write_kv_int(w, "trial_period_days", trial);
    vz_json_write_kv_string(w, "payment_behavior", "default_incomplete");
    vz_json_write_key(w, "metadata");
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "vz_user", who.sub);
    vz_json_write_object_end(w);
    vz_json_write_key(w, "expand");
    vz_json_write_array_begin(w);
    vz_json_write_string(w, "latest_invoice.payment_intent");
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    vz_json_destroy(&doc);
    vz_json_t *params = s_params_take(&w, valid);
    if (!params)
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "price (price_...) is required; quantity 1..10000, "
                                      "trial_period_days 0..730");
    const char *client_key = vz_authctx_header(req, "Idempotency-Key");
    char logical[600];
    snprintf(logical, sizeof logical, "%s/subscription/%s", who.sub,
             client_key && *client_key ? client_key : req->id);
    vz_deferred_t *handle = vz_reply_defer(reply, NULL);
    rc = bl_client_call(self->client, "subscription_create", NULL, vz_json_root(params), logical,
                        s_created_done, handle);
    vz_json_destroy(&params);
    if (rc < 0)
        (void)vz_worker_complete_error(&handle, VZ_ERR_UNAVAILABLE, "subscription not sent");
    return 0;
}

//  POST /v1/billing/portal {return_url}: a Billing Portal session for the
//  caller's customer -> {id, url}. 409 without a customer (checkout first).
int bl_h_portal(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    vz_authctx_t who;
    char customer[BL_SIG_ID_MAX];
    if (s_caller_customer(self, req, reply, &who, customer, sizeof customer) < 0)
        return 0;
    int rc = 0;
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const char *url = vz_json_get_string(doc ? vz_json_root(doc) : NULL, "return_url", NULL);
    bool valid = s_url_ok(url);
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "customer", customer);
    vz_json_write_kv_string(w, "return_url", valid ? url : "");
    vz_json_write_object_end(w);
    vz_json_destroy(&doc);
    vz_json_t *params = s_params_take(&w, valid);
    if (!params)
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "return_url (http[s]) is required");
    char logical[600];
    snprintf(logical, sizeof logical, "%s/portal/%s", who.sub, req->id);
    vz_deferred_t *handle = vz_reply_defer(reply, NULL);
    rc = bl_client_call(self->client, "portal_session_create", NULL, vz_json_root(params), logical,
                        s_portal_done, handle);
    vz_json_destroy(&params);
    if (rc < 0)
        (void)vz_worker_complete_error(&handle, VZ_ERR_UNAVAILABLE, "portal session not sent");
    return 0;
}
