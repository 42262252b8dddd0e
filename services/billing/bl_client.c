/*  bl_client - calls to Stripe's API: SDK-shaped requests, stored idempotency keys, retries
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "bl_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vz_clock.h"
#include "vz_log.h"

#define IDEM_TTL "86400" //  Stripe keeps idempotency keys 24 h

typedef struct s_call_t s_call_t;
struct s_call_t {
    bl_client_t *owner;
    s_call_t *prev, *next;    //  the owner's list of pending calls
    const bl_stripe_op_t *op; //  what is called
    char *url;                //  base + target
    char *body;               //  POST form ("" otherwise)
    size_t body_len;
    char idem[BL_STRIPE_IDEM_MAX]; //  Idempotency-Key, "" for GET/DELETE
    int attempts;                  //  made so far
    int64_t deadline_ms;           //  monotonic end of the budget
    int timer_id;                  //  waiting for a retry, else -1
    bl_client_done_fn *done;
    void *arg;
};

struct bl_client_t {
    zloop_t *loop;         //  borrowed
    vz_http_t *http;       //  the common outbound client
    vz_redis_t *redis;     //  borrowed: idempotency keys
    vz_metrics_t *metrics; //  borrowed, may be NULL
    bl_client_config_t config;
    char *base_url;  //  copied
    char *auth;      //  "Authorization: Bearer <key>" (cleansed on destroy)
    s_call_t *calls; //  pending
    bool closing;    //  in destroy: no retries
};

int bl_client_backoff(int retry, int base_ms, int max_ms, int retry_after_s, double draw)
{
    double ceiling = base_ms;
    for (int i = 1; i < retry && ceiling < max_ms; i++)
        ceiling *= 2;
    if (ceiling > max_ms)
        ceiling = max_ms;
    int wait = (int)(draw * ceiling);
    if (retry_after_s > 0 && retry_after_s * 1000 > wait)
        wait = retry_after_s * 1000;
    return wait;
}

//  The series of an operation's final status.
static vz_series_t *s_series(bl_client_t *self, const char *operation, const char *status)
{
    char labels[128];
    snprintf(labels, sizeof labels, "operation=%s,status=%s", operation, status);
    return vz_metrics_counter(self->metrics, "vz_billing_stripe_calls",
                              "Stripe API calls by operation and final status", labels);
}

bl_client_t *bl_client_new(zloop_t *loop, const vz_http_config_t *http,
                           const bl_client_config_t *config, vz_redis_t *redis,
                           vz_metrics_t *metrics, char *err, size_t errlen)
{
    bl_client_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->loop = loop;
    self->redis = redis;
    self->metrics = metrics;
    self->config = *config;
    if (self->config.max_attempts < 1)
        self->config.max_attempts = 1;
    self->base_url = strdup(config->base_url ? config->base_url : BL_STRIPE_BASE_URL);
    const char *key = config->secret_key ? config->secret_key : "";
    if (asprintf(&self->auth, "Authorization: Bearer %s", key) < 0)
        self->auth = NULL;
    self->config.secret_key = NULL; //  only self->auth holds it
    self->http = vz_http_new(loop, http, metrics, err, errlen);
    //  Jitter differs between replicas, so their retries do not line up.
    srandom((unsigned)(vz_clock_now_us() ^ (int64_t)getpid()));
    if (!self->base_url || !self->auth || !self->http) {
        bl_client_destroy(&self);
        return NULL;
    }
    //  Every operation's failures exist from the start, at 0, so an alert
    //  on their rate has a series before the first one.
    for (size_t i = 0; self->metrics && bl_stripe_op_at(i); i++)
        (void)s_series(self, bl_stripe_op_at(i)->name, "error");
    return self;
}

const char *bl_client_warning(const bl_client_t *self)
{
    return vz_http_warning(self->http);
}

bool bl_client_configured(const bl_client_t *self)
{
    return strlen(self->auth) > strlen("Authorization: Bearer ");
}

static void s_count(bl_client_t *self, const s_call_t *call, const char *status)
{
    if (self->metrics)
        vz_series_inc(s_series(self, call->op->name, status));
}

//  Unlink, answer and free.
static void s_finish(s_call_t *call, const bl_client_result_t *result)
{
    bl_client_t *self = call->owner;
    if (call->prev)
        call->prev->next = call->next;
    else
        self->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    char status[16];
    snprintf(status, sizeof status, "%ld", result->status);
    s_count(self, call, result->status ? status : "error");
    call->done(call->arg, result);
    free(call->url);
    free(call->body);
    free(call);
}

//  An end without a response: our caller retries later.
static void s_finish_unavailable(s_call_t *call, const char *message)
{
    bl_client_result_t r = {.body = "", .attempts = call->attempts, .idempotency_key = call->idem};
    r.error.status = 503;
    r.error.code = "unavailable";
    r.error.retry_after = true;
    snprintf(r.error.message, sizeof r.error.message, "%s", message);
    s_finish(call, &r);
}

static int s_send(s_call_t *call);

static int s_timer(zloop_t *loop, int timer_id, void *arg)
{
    s_call_t *call = arg;
    call->timer_id = -1;
    if (s_send(call) < 0)
        s_finish_unavailable(call, "payment provider call could not be sent");
    return 0;
}

static void s_on_response(const vz_http_response_t *resp, void *arg)
{
    s_call_t *call = arg;
    bl_client_t *self = call->owner;
    if (resp->rc == 0 && resp->status >= 200 && resp->status <= 299) {
        bl_client_result_t r = {.ok = true,
                                .status = resp->status,
                                .body = (const char *)resp->body,
                                .body_len = resp->body_len,
                                .attempts = call->attempts,
                                .idempotency_key = call->idem};
        s_finish(call, &r);
        return;
    }
    const char *should = vz_http_response_header(resp, "Stripe-Should-Retry");
    const char *after = vz_http_response_header(resp, "Retry-After");
    int after_s = after ? atoi(after) : 0;
    int wait =
        bl_client_backoff(call->attempts, self->config.backoff_ms, self->config.backoff_max_ms,
                          after_s, (double)random() / 2147483648.0);
    bool retry = !self->closing && resp->rc != VZ_HTTP_ECANCELED &&
                 call->attempts < self->config.max_attempts &&
                 bl_stripe_retryable(resp->rc, resp->status, should) &&
                 vz_clock_mono_ms() + wait < call->deadline_ms;
    if (retry) {
        call->timer_id = zloop_timer(self->loop, (size_t)(wait > 0 ? wait : 1), 1, s_timer, call);
        if (call->timer_id >= 0)
            return;
    }
    if (resp->rc != 0) {
        s_finish_unavailable(call, "payment provider unreachable");
        return;
    }
    bl_client_result_t r = {.status = resp->status,
                            .body = "",
                            .attempts = call->attempts,
                            .idempotency_key = call->idem};
    bl_stripe_error(resp->status, (const char *)resp->body, resp->body_len, &r.error);
    if (r.error.operator_alert)
        vz_error(NULL, "Stripe refused the API key: check VZ_BILLING_STRIPE_SECRET_KEY",
                 "operation", call->op->name);
    s_finish(call, &r);
}

static int s_send(s_call_t *call)
{
    bl_client_t *self = call->owner;
    int64_t left = call->deadline_ms - vz_clock_mono_ms();
    if (left <= 0)
        return -ETIMEDOUT;
    const char *headers[] = {self->auth, "Stripe-Version: " BL_STRIPE_VERSION,
                             "Content-Type: application/x-www-form-urlencoded",
                             "User-Agent: vizmesh-billing", NULL};
    bool post = strcmp(call->op->method, "POST") == 0;
    vz_http_request_t req = {.method = call->op->method,
                             .url = call->url,
                             .headers = headers,
                             .body = post ? call->body : NULL,
                             .body_len = post ? call->body_len : 0,
                             .idempotency_key = call->idem[0] ? call->idem : NULL,
                             .metrics_host = "stripe",
                             .budget_ms = (int)left,
                             .max_attempts = 1, //  the retries are ours (Stripe's rules)
                             .done = s_on_response,
                             .arg = call};
    call->attempts++;
    return vz_http_request(self->http, &req);
}

//  Store the key before the first attempt; an existing one is a retry.
static int s_store_key(bl_client_t *self, const char *key, const char *op, const char *logical)
{
    char name[BL_STRIPE_IDEM_MAX + 16], value[512];
    snprintf(name, sizeof name, "{billing}:idem:%s", key);
    snprintf(value, sizeof value, "%s\n%s", op, logical);
    const char *argv[] = {"SET", name, value, "NX", "EX", IDEM_TTL};
    redisReply *r = self->redis ? vz_redis_command(self->redis, 6, argv, NULL) : NULL;
    bool ok = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_NIL);
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -EAGAIN;
}

int bl_client_call(bl_client_t *self, const char *op_name, const char *id,
                   const vz_json_value_t *params, const char *logical, bl_client_done_fn *done,
                   void *arg)
{
    const bl_stripe_op_t *op = bl_stripe_op(op_name);
    if (!op || !done)
        return -EINVAL;
    if (!bl_client_configured(self))
        return -ENOKEY;
    char *form = NULL;
    size_t form_len = 0;
    int rc = bl_stripe_form(params, &form, &form_len);
    if (rc < 0)
        return rc;
    char target[4096];
    rc = bl_stripe_target(op, id, form, target, sizeof target);
    s_call_t *call = rc == 0 ? calloc(1, sizeof *call) : NULL;
    if (!call) {
        free(form);
        return rc < 0 ? rc : -ENOMEM;
    }
    call->owner = self;
    call->op = op;
    call->timer_id = -1;
    call->done = done;
    call->arg = arg;
    call->body = form;
    call->body_len = form_len;
    call->deadline_ms = vz_clock_mono_ms() + self->config.budget_ms;
    if (asprintf(&call->url, "%s%s", self->base_url, target) < 0)
        call->url = NULL;
    if (strcmp(op->method, "POST") == 0) {
        rc = bl_stripe_idempotency_key(op->name, logical ? logical : "", call->idem);
        if (rc == 0)
            rc = s_store_key(self, call->idem, op->name, logical ? logical : "");
    }
    if (rc == 0 && !call->url)
        rc = -ENOMEM;
    if (rc == 0) {
        call->next = self->calls;
        if (self->calls)
            self->calls->prev = call;
        self->calls = call;
        if (s_send(call) == 0)
            return 0;
        //  Refused at once: answered from the loop, never inside this call.
        call->timer_id = zloop_timer(self->loop, 1, 1, s_timer, call);
        return 0;
    }
    free(call->url);
    free(call->body);
    free(call);
    return rc;
}

void bl_client_destroy(bl_client_t **self_p)
{
    bl_client_t *self = *self_p;
    if (!self)
        return;
    self->closing = true;
    //  Calls waiting for a retry end here; those in flight end in vz_http_destroy.
    for (s_call_t *call = self->calls, *next; call; call = next) {
        next = call->next;
        if (call->timer_id >= 0) {
            zloop_timer_end(self->loop, call->timer_id);
            s_finish_unavailable(call, "billing is shutting down");
        }
    }
    vz_http_destroy(&self->http);
    if (self->auth) {
        memset(self->auth, 0, strlen(self->auth));
        free(self->auth);
    }
    free(self->base_url);
    free(self);
    *self_p = NULL;
}
