/*  upstream - the gateway's reactor side: owns the broker client and Redis
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "upstream.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vz_authctx.h"
#include "vz_batch.h"
#include "vz_clock.h"
#include "vz_endpoints.h"
#include "vz_client.h"
#include "vz_proto.h"
#include "vz_redis.h"
#include "vz_retry.h"

#define TICK_MS 50           //  deadline scan period
#define REDIS_TIMEOUT_MS 200 //  connect and command budget for the health PING
#define PING_PREFIX "gw-ping-"
#define RECV_BATCH 64   //  responses read per wake-up
#define BUDGET_MIN 10   //  retry tokens saved at most (vz_retry_budget_init's min)
#define BUNDLE_GROUPS 8 //  distinct service.method bundles filled in one pass

struct gw_upstream_t {
    vz_client_t *client;       //  the brokers (vz_client), reactor thread only
    vz_series_t *brokers;      //  vz_gateway_brokers: known
    vz_series_t *brokers_up;   //  vz_gateway_brokers_up: handshake done, link not dropped
    vz_pending_t *pending;     //  wire id -> gw_upcall_t (entry), reactor thread only
    int wake_fd;               //  eventfd: submissions waiting
    pthread_mutex_t lock;      //  guards queue_head/queue_tail/closed
    gw_upcall_t *queue_head;   //  submitted, not yet started
    gw_upcall_t *queue_tail;   //  last of them
    bool closed;               //  no more submissions
    atomic_int inflight;       //  submitted and not done
    atomic_llong last_seen_ms; //  when the broker last answered anything (monotonic)
    int heartbeat_ms;          //  ping interval
    int grace_ms;              //  local wait past the envelope deadline
    unsigned ping_seq;         //  numbers our pings
    vz_redis_t *redis;         //  health connection, reactor thread only; NULL = bad URL
    vz_retry_budget_t budget;  //  retry budget, reactor thread only
    zlistx_t *retries;         //  calls waiting for the next tick to go again
    struct {
        char service[VZ_NAME_MAX];        //  calls of service.method...
        char method[VZ_NAME_MAX];         //  ...
        char batch_method[VZ_NAME_MAX];   //  ...travel together as service.batch_method
        bool off;                         //  the service does not know batch_method
        gw_upcall_t *group[VZ_BATCH_MAX]; //  s_on_wake's group being filled
        size_t grouped;                   //  calls in group
    } rule[GW_UPSTREAM_BATCH_RULES];
    size_t rules;         //  rules used
    vz_series_t *batches; //  vz_gateway_batch_envelopes_total
    vz_series_t *batched; //  vz_gateway_batch_calls_total
    size_t bundle_max;    //  forwards per bundle (< 2: off)
    struct {
        char service[VZ_NAME_MAX];        //  the forwards' service...
        char method[VZ_NAME_MAX];         //  ...method
        int timeout_ms;                   //  ...timeout
        bool idempotent;                  //  ...and idempotency
        gw_upcall_t *group[VZ_BATCH_MAX]; //  forwards of one service.method, in order
        size_t n;                         //  forwards in group
        size_t bytes;                     //  bound of their encoded sizes (s_envelope_bound)
    } bundle[BUNDLE_GROUPS];              //  s_on_wake's bundles being filled
    size_t nbundles;                      //  bundles in use this pass
    vz_series_t *bundles;                 //  vz_gateway_bundle_envelopes_total
    vz_series_t *bundled;                 //  vz_gateway_bundle_calls_total
    vz_series_t *resent;                  //  vz_gateway_bundle_resent_total
};

void gw_upcall_reset(gw_upcall_t *call)
{
    memset(call, 0, offsetof(gw_upcall_t, error_message));
    call->error_message[0] = '\0';
    call->http_location[0] = '\0';
    call->http_ctype[0] = '\0';
    call->redis_error[0] = '\0';
}

gw_upstream_t *gw_upstream_new(const gw_upstream_config_t *config)
{
    assert(config && config->endpoints && config->broker_key && config->cert);
    gw_upstream_t *self = calloc(1, sizeof *self);
    assert(self);
    self->wake_fd = -1;
    self->heartbeat_ms = config->heartbeat_ms > 0 ? config->heartbeat_ms : VZ_HEARTBEAT_MS;
    self->grace_ms = config->grace_ms;
    self->retries = zlistx_new();
    vz_series_t *retried = NULL, *denied = NULL;
    if (config->metrics) {
        retried = vz_metrics_counter(config->metrics, "vz_gateway_retries_total",
                                     "Idempotent upstream calls sent again", NULL);
        denied = vz_metrics_counter(config->metrics, "vz_gateway_retries_denied_total",
                                    "Retries not made because the retry budget was spent", NULL);
    }
    vz_retry_budget_init(&self->budget, config->retry_budget_pct, BUDGET_MIN, retried, denied);
    if (config->metrics) {
        self->brokers = vz_metrics_gauge(config->metrics, "vz_gateway_brokers",
                                         "Brokers known (listed or resolved from a name)", NULL);
        self->brokers_up = vz_metrics_gauge(config->metrics, "vz_gateway_brokers_up",
                                            "Brokers whose link is up", NULL);
    }
    assert(config->batch_count <= GW_UPSTREAM_BATCH_RULES);
    for (size_t i = 0; i < config->batch_count; i++) {
        vz_strlcpy(self->rule[i].service, config->batch[i].service, VZ_NAME_MAX);
        vz_strlcpy(self->rule[i].method, config->batch[i].method, VZ_NAME_MAX);
        vz_strlcpy(self->rule[i].batch_method, config->batch[i].batch_method, VZ_NAME_MAX);
    }
    self->rules = config->batch_count;
    assert(config->bundle_max <= VZ_BATCH_MAX);
    self->bundle_max = config->bundle_max;
    if (config->metrics && self->bundle_max > 1) {
        self->bundles = vz_metrics_counter(config->metrics, "vz_gateway_bundle_envelopes_total",
                                           "Bundle envelopes sent (several forwards each)", NULL);
        self->bundled = vz_metrics_counter(config->metrics, "vz_gateway_bundle_calls_total",
                                           "Forwards sent inside bundle envelopes", NULL);
        self->resent = vz_metrics_counter(
            config->metrics, "vz_gateway_bundle_resent_total",
            "Bundled forwards sent again alone (the bundle's reply was full)", NULL);
    }
    if (config->metrics && self->rules) {
        self->batches =
            vz_metrics_counter(config->metrics, "vz_gateway_batch_envelopes_total",
                               "Envelopes that carried several calls (batch convention)", NULL);
        self->batched = vz_metrics_counter(config->metrics, "vz_gateway_batch_calls_total",
                                           "Calls sent inside batch envelopes", NULL);
    }
    pthread_mutex_init(&self->lock, NULL);
    //  NULL: health then reports Redis as misconfigured instead of refusing to start.
    self->redis = vz_redis_new(config->redis_url ? config->redis_url : "", REDIS_TIMEOUT_MS,
                               REDIS_TIMEOUT_MS, 0);
    vz_client_config_t cc = {
        .endpoints = config->endpoints,
        .broker_key = config->broker_key,
        .cert = config->cert,
        .heartbeat_ms = self->heartbeat_ms,
        .direct = config->direct};
    self->client = vz_client_new(&cc);
    self->pending = vz_pending_new();
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!self->client || self->wake_fd < 0) {
        gw_upstream_destroy(&self);
        return NULL;
    }
    return self;
}

//  Complete a call: bookkeeping first, because done may free the call.
static void s_finish(gw_upstream_t *self, gw_upcall_t *call)
{
    atomic_fetch_sub(&self->inflight, 1);
    call->done(call);
}

static void s_fail_batch(gw_upstream_t *self, gw_upcall_t *carrier, const char *code,
                         const char *message);

static void s_fail(gw_upstream_t *self, gw_upcall_t *call, const char *code, const char *message)
{
    if (call->kind == GW_UPCALL_BATCH || call->kind == GW_UPCALL_BUNDLE) {
        s_fail_batch(self, call, code, message);
        return;
    }
    call->result = GW_UPCALL_ERROR;
    vz_strlcpy(call->error_code, code, sizeof call->error_code);
    vz_strlcpy(call->error_message, message, sizeof call->error_message);
    s_finish(self, call);
}

//  Take the whole submission queue at once, so the lock is held briefly.
static gw_upcall_t *s_take_queue(gw_upstream_t *self)
{
    pthread_mutex_lock(&self->lock);
    gw_upcall_t *head = self->queue_head;
    self->queue_head = self->queue_tail = NULL;
    pthread_mutex_unlock(&self->lock);
    return head;
}

static void s_on_closed(vz_pending_entry_t *entry, void *arg)
{
    s_fail(arg, entry->owner, VZ_ERR_UNAVAILABLE, "gateway is shutting down");
}

void gw_upstream_close(gw_upstream_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    self->closed = true;
    pthread_mutex_unlock(&self->lock);
    for (gw_upcall_t *call = s_take_queue(self), *next; call; call = next) {
        next = call->next;
        s_fail(self, call, VZ_ERR_UNAVAILABLE, "gateway is shutting down");
    }
    for (gw_upcall_t *call = self->retries ? zlistx_first(self->retries) : NULL; call;
         call = zlistx_next(self->retries))
        s_fail(self, call, VZ_ERR_UNAVAILABLE, "gateway is shutting down");
    if (self->retries)
        zlistx_purge(self->retries);
    if (!self->pending)
        return;
    vz_pending_clear(self->pending, s_on_closed, self);
}

void gw_upstream_destroy(gw_upstream_t **self_p)
{
    assert(self_p);
    gw_upstream_t *self = *self_p;
    if (!self)
        return;
    gw_upstream_close(self);
    vz_pending_destroy(&self->pending);
    zlistx_destroy(&self->retries);
    vz_client_destroy(&self->client);
    vz_redis_destroy(&self->redis);
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

int gw_upstream_submit(gw_upstream_t *self, gw_upcall_t *call)
{
    assert(self && call && call->done);
    call->next = NULL;
    pthread_mutex_lock(&self->lock);
    if (self->closed) {
        pthread_mutex_unlock(&self->lock);
        return -ESHUTDOWN;
    }
    bool was_empty = self->queue_head == NULL;
    if (self->queue_tail)
        self->queue_tail->next = call;
    else
        self->queue_head = call;
    self->queue_tail = call;
    atomic_fetch_add(&self->inflight, 1);
    pthread_mutex_unlock(&self->lock);
    //  The reactor empties the whole queue per wake-up, so only the first
    //  submission into an empty queue needs to wake it.
    if (was_empty) {
        uint64_t one = 1;
        ssize_t rc = write(self->wake_fd, &one, sizeof one);
        (void)rc; //  EAGAIN means the counter is already non-zero: awake anyway
    }
    return 0;
}

//  One PING on a kept connection (vz_redis: AUTH and TLS as the URL says);
//  reconnects after any failure. Blocks the reactor at most twice
//  REDIS_TIMEOUT_MS, and only on a /health request.
static void s_redis_ping(gw_upstream_t *self, gw_upcall_t *call)
{
    call->redis_ok = false;
    if (!self->redis) {
        vz_strlcpy(call->redis_error, "invalid VZ_REDIS_URL", sizeof call->redis_error);
        return;
    }
    int rc = vz_redis_ensure(self->redis);
    const char *argv[] = {"PING"};
    redisReply *reply = rc == 0 ? vz_redis_command(self->redis, 1, argv, NULL) : NULL;
    if (reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0)
        call->redis_ok = true;
    else if (reply && reply->type == REDIS_REPLY_ERROR)
        vz_strlcpy(call->redis_error, reply->str, sizeof call->redis_error);
    else
        vz_strlcpy(call->redis_error, strerror(rc < 0 ? -rc : EIO), sizeof call->redis_error);
    if (reply)
        freeReplyObject(reply);
}

//  The envelope of one attempt of call, with a wire id unique among the
//  pending (request ids come from clients and may repeat, so a colliding
//  call travels under a fresh id). env borrows call's body.
static void s_envelope(gw_upstream_t *self, gw_upcall_t *call, vz_envelope_t *env)
{
    call->attempts++;
    vz_pending_id(self->pending, call->attempts > 1 ? NULL : call->id, call->entry.id);
    vz_envelope_init(env, VZ_KIND_REQUEST);
    vz_strlcpy(env->service, call->service, sizeof env->service);
    vz_strlcpy(env->method, call->method, sizeof env->method);
    vz_strlcpy(env->id, call->entry.id, sizeof env->id);
    vz_strlcpy(env->traceparent, call->traceparent, sizeof env->traceparent);
    env->deadline_ms = call->deadline_ms;
    env->flags = (call->idempotent ? VZ_FLAG_IDEMPOTENT : 0) |
                 (call->kind == GW_UPCALL_BUNDLE ? VZ_FLAG_BUNDLE : 0);
    env->body = call->body;
    env->body_len = call->body_len;
    //  Built and checked by vz_authctx (gw_forward.c): copying cannot fail.
    //  Side calls carry no ctx (and call->ctx NULL).
    assert(call->ctx_count <= VZ_CTX_MAX && (call->ctx || !call->ctx_count));
    if (call->ctx_count)
        memcpy(env->ctx, call->ctx, call->ctx_count * sizeof *call->ctx);
    env->ctx_count = call->ctx_count;
}

//  Send one attempt of call (first or retry) and file it as pending.
static void s_send(gw_upstream_t *self, gw_upcall_t *call)
{
    vz_envelope_t env;
    s_envelope(self, call, &env);
    int rc = vz_client_send(self->client, &env);
    if (rc == -EMSGSIZE) {
        s_fail(self, call, "request_too_large", "request does not fit one envelope");
        return;
    }
    if (rc < 0) {
        s_fail(self, call, VZ_ERR_UNAVAILABLE, "unable to send to the broker");
        return;
    }
    //  The grace lets the broker's own verdict at the deadline (no_worker,
    //  timeout) arrive before we give up locally.
    call->entry.expires_ms = env.deadline_ms + self->grace_ms;
    call->entry.service = call->service;
    call->entry.method = call->method;
    call->entry.owner = call;
    call->entry.broker = vz_client_last_broker(self->client);
    vz_pending_add(self->pending, &call->entry, call->entry.id);
}

//  A first attempt: its deadline, and the retry budget it earns.
static void s_begin(gw_upstream_t *self, gw_upcall_t *call)
{
    call->deadline_ms = vz_now_ms() + call->timeout_ms;
    vz_retry_budget_earn(&self->budget);
}

static void s_start(gw_upstream_t *self, gw_upcall_t *call)
{
    if (call->kind == GW_UPCALL_HEALTH) {
        s_redis_ping(self, call);
        vz_strlcpy(call->service, VZ_BROKER_SERVICE, sizeof call->service);
        vz_strlcpy(call->method, "services", sizeof call->method);
    }
    s_begin(self, call);
    s_send(self, call);
}

//  Should this failed attempt go again? Only idempotent calls, only for
//  codes that say "not served" rather than "served and failed", only with
//  time and budget left.
static bool s_retry(gw_upstream_t *self, gw_upcall_t *call, const char *code)
{
    if (call->kind != GW_UPCALL_FORWARD || self->closed ||
        !vz_retry_allowed(&self->budget, call->idempotent, code, call->attempts,
                          call->deadline_ms - vz_now_ms()))
        return false;
    zlistx_add_end(self->retries, call);
    return true;
}

//  The call succeeded with body: a NUL-terminated heap copy for the caller.
static void s_take_reply(gw_upcall_t *call, const uint8_t *body, size_t len)
{
    call->result = GW_UPCALL_REPLY;
    call->reply_len = len;
    call->reply = malloc(len + 1);
    assert(call->reply);
    if (len)
        memcpy(call->reply, body, len);
    call->reply[len] = '\0';
}

//  A reply envelope answering call: its body and the HTTP hints in its ctx.
static void s_take_env(gw_upcall_t *call, const vz_envelope_t *env)
{
    s_take_reply(call, env->body, env->body_len);
    const char *status = vz_envelope_ctx_get(env, VZ_AUTHCTX_HTTP_STATUS);
    long code = status ? strtol(status, NULL, 10) : 0;
    call->http_status = code >= 200 && code <= 399 ? (int)code : 0;
    const char *location = vz_envelope_ctx_get(env, VZ_AUTHCTX_HTTP_LOCATION);
    vz_strlcpy(call->http_location, location ? location : "", sizeof call->http_location);
    //  A worker serving several formats from one route names each one's type
    //  (the reporter: HTML, JSON, PDF); only a plain media type is taken.
    const char *ctype = vz_envelope_ctx_get(env, VZ_AUTHCTX_HTTP_CONTENT_TYPE);
    size_t len = ctype ? strlen(ctype) : 0;
    bool plain = len > 0 && len < sizeof call->http_ctype &&
                 strspn(ctype, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "/+.-; =") == len;
    vz_strlcpy(call->http_ctype, plain ? ctype : "", sizeof call->http_ctype);
}

//  An error for call from a service or the broker: retried when it may be.
//  A worker may say which HTTP status its own error code means (reply ctx
//  http_status 400..599, vz_authctx_reply_error); the renderer uses it for
//  codes the gateway does not know. A bundle's items are whole envelopes
//  with their own ctx, so this holds inside bundles too; only the batch
//  convention's items (s_reply_batch) carry a code without a status.
static void s_error(gw_upstream_t *self, gw_upcall_t *call, const vz_envelope_t *env)
{
    const char *code = env->error_code[0] ? env->error_code : VZ_ERR_INTERNAL;
    if (s_retry(self, call, code))
        return;
    const char *status = vz_envelope_ctx_get(env, VZ_AUTHCTX_HTTP_STATUS);
    long http = status ? strtol(status, NULL, 10) : 0;
    call->http_status = http >= 400 && http <= 599 ? (int)http : 0;
    s_fail(self, call, code, env->error_message);
}

static void s_carrier_free(gw_upcall_t *carrier)
{
    free(carrier->members);
    free(carrier->owned_body);
    free(carrier);
}

//  The carrier failed as a whole (broker verdict, deadline, send failure,
//  shutdown): each call it carried is retried alone where it may be, else
//  fails with the same code. unknown_method means the service has no batch
//  method: the rule is turned off and the calls go again one by one.
static void s_fail_batch(gw_upstream_t *self, gw_upcall_t *carrier, const char *code,
                         const char *message)
{
    //  (A bundle's service.method is its calls' own: unknown to them too.)
    bool unknown = carrier->kind == GW_UPCALL_BATCH && strcmp(code, VZ_ERR_UNKNOWN_METHOD) == 0;
    for (size_t r = 0; unknown && r < self->rules; r++)
        if (strcmp(self->rule[r].service, carrier->service) == 0 &&
            strcmp(self->rule[r].batch_method, carrier->method) == 0)
            self->rule[r].off = true;
    for (size_t i = 0; i < carrier->nmembers; i++) {
        gw_upcall_t *call = carrier->members[i];
        if (unknown)
            s_send(self, call);
        else if (!s_retry(self, call, code))
            s_fail(self, call, code, message);
    }
    s_carrier_free(carrier);
}

//  A batch or bundle codec's decoder (vz_batch_reply_decode or
//  vz_batch_request_decode).
typedef int(gw_items_decode_fn)(const uint8_t *buf, size_t len, vz_batch_item_t *items, size_t max,
                                size_t *n_p, const char **reason);

//  Split a carrier's reply body with decode into items (VZ_BATCH_MAX), one
//  per call it carried. 0, or -1 when the body is malformed or holds the
//  wrong number of results: then the carrier is failed and freed
//  (s_fail_batch) and what names it ("batch", "bundle") in the message.
static int s_carrier_items(gw_upstream_t *self, gw_upcall_t *carrier, const vz_envelope_t *env,
                           gw_items_decode_fn *decode, const char *what, vz_batch_item_t *items)
{
    size_t n = 0;
    const char *reason = NULL;
    if (decode(env->body, env->body_len, items, VZ_BATCH_MAX, &n, &reason) == 0 &&
        n == carrier->nmembers)
        return 0;
    char message[VZ_ERRMSG_MAX];
    if (!reason)
        snprintf(message, sizeof message, "%s reply has the wrong number of results", what);
    s_fail_batch(self, carrier, VZ_ERR_INTERNAL, reason ? reason : message);
    return -1;
}

//  The carrier's reply: one result per call, in order.
static void s_reply_batch(gw_upstream_t *self, gw_upcall_t *carrier, const vz_envelope_t *env)
{
    vz_batch_item_t items[VZ_BATCH_MAX];
    if (s_carrier_items(self, carrier, env, vz_batch_reply_decode, "batch", items) != 0)
        return;
    size_t n = carrier->nmembers;
    for (size_t i = 0; i < n; i++) {
        gw_upcall_t *call = carrier->members[i];
        if (items[i].code_len == 0) {
            s_take_reply(call, items[i].data, items[i].len);
            s_finish(self, call);
            continue;
        }
        char code[VZ_ERRCODE_MAX], message[VZ_ERRMSG_MAX];
        size_t clen = items[i].code_len < sizeof code - 1 ? items[i].code_len : sizeof code - 1;
        size_t mlen = items[i].len < sizeof message - 1 ? items[i].len : sizeof message - 1;
        memcpy(code, items[i].code, clen);
        code[clen] = '\0';
        if (mlen)
            memcpy(message, items[i].data, mlen);
        message[mlen] = '\0';
        if (!s_retry(self, call, code))
            s_fail(self, call, code, message);
    }
    s_carrier_free(carrier);
}

//  Send the n calls of group in one carrier of kind to service.method with
//  body items (copied): the earliest of their deadlines, the first one's
//  trace context, idempotent only if every call is. Counted in envelopes
//  and calls when those exist.
static void s_send_carrier(gw_upstream_t *self, gw_upcall_kind_t kind, const char *service,
                           const char *method, gw_upcall_t **group, const vz_batch_item_t *items,
                           size_t n, vz_series_t *envelopes, vz_series_t *calls)
{
    gw_upcall_t *carrier = calloc(1, sizeof *carrier);
    assert(carrier);
    carrier->kind = kind;
    vz_strlcpy(carrier->service, service, sizeof carrier->service);
    vz_strlcpy(carrier->method, method, sizeof carrier->method);
    vz_strlcpy(carrier->traceparent, group[0]->traceparent, sizeof carrier->traceparent);
    carrier->members = malloc(n * sizeof *carrier->members);
    assert(carrier->members);
    carrier->deadline_ms = group[0]->deadline_ms;
    carrier->idempotent = true;
    for (size_t i = 0; i < n; i++) {
        carrier->members[i] = group[i];
        carrier->idempotent = carrier->idempotent && group[i]->idempotent;
        if (group[i]->deadline_ms < carrier->deadline_ms)
            carrier->deadline_ms = group[i]->deadline_ms;
    }
    carrier->nmembers = n;
    carrier->owned_body = vz_batch_request_encode(items, n, &carrier->body_len);
    carrier->body = carrier->owned_body;
    if (envelopes) {
        vz_series_inc(envelopes);
        vz_series_add(calls, (double)n);
    }
    s_send(self, carrier);
}

//  Whether the n calls taken off a group go on together in a carrier: a
//  lone call is sent as it is here, and none means nothing to send.
static bool s_carry(gw_upstream_t *self, gw_upcall_t **group, size_t n)
{
    if (n == 1)
        s_send(self, group[0]);
    return n > 1;
}

//  Send rule r's group: alone when it is one call, else as one
//  <method>_batch envelope of their bodies.
static void s_send_group(gw_upstream_t *self, size_t r)
{
    size_t n = self->rule[r].grouped;
    gw_upcall_t **group = self->rule[r].group;
    self->rule[r].grouped = 0;
    if (!s_carry(self, group, n))
        return;
    vz_batch_item_t items[VZ_BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
        group[i]->attempts++; //  this envelope is their attempt
        items[i] = (vz_batch_item_t){.data = group[i]->body, .len = group[i]->body_len};
    }
    s_send_carrier(self, GW_UPCALL_BATCH, self->rule[r].service, self->rule[r].batch_method, group,
                   items, n, self->batches, self->batched);
}

//  A bundle item the bundle's reply had no room for: not served (any call
//  goes again alone), or served with its reply dropped (only a call that
//  may run twice goes again; the others fail with reply_dropped, as they
//  would with worker_lost). True when code was one of those two.
static bool s_overflowed(gw_upstream_t *self, gw_upcall_t *call, const vz_envelope_t *item)
{
    bool unserved = strcmp(item->error_code, VZ_ERR_BUNDLE_OVERFLOW) == 0;
    if (!unserved && strcmp(item->error_code, VZ_ERR_REPLY_DROPPED) != 0)
        return false;
    if (!unserved && !call->idempotent) {
        s_fail(self, call, VZ_ERR_REPLY_DROPPED, item->error_message);
        return true;
    }
    if (self->resent)
        vz_series_inc(self->resent);
    s_send(self, call);
    return true;
}

//  The bundle's reply: one whole reply or error envelope per call, in order.
static void s_reply_bundle(gw_upstream_t *self, gw_upcall_t *carrier, const vz_envelope_t *env)
{
    vz_batch_item_t items[VZ_BATCH_MAX];
    if (s_carrier_items(self, carrier, env, vz_batch_request_decode, "bundle", items) != 0)
        return;
    size_t n = carrier->nmembers;
    const char *reason = NULL;
    vz_envelope_t item;
    for (size_t i = 0; i < n; i++) {
        gw_upcall_t *call = carrier->members[i];
        if (vz_envelope_decode(&item, items[i].data, items[i].len, NULL, &reason) != 0)
            s_fail(self, call, VZ_ERR_INTERNAL, reason ? reason : "undecodable bundle reply");
        else if (item.kind == VZ_KIND_ERROR && s_overflowed(self, call, &item))
            ; //  sent again alone, or failed
        else if (strcmp(item.id, call->entry.id) != 0)
            s_fail(self, call, VZ_ERR_INTERNAL, "bundle reply answers another request");
        else if (item.kind == VZ_KIND_REPLY) {
            s_take_env(call, &item);
            s_finish(self, call);
        } else
            s_error(self, call, &item);
    }
    s_carrier_free(carrier);
}

//  Send bundle b: alone when it holds one call, else as one bundle of
//  their whole envelopes (encoded here, once each).
static void s_send_bundle(gw_upstream_t *self, size_t b)
{
    size_t n = self->bundle[b].n;
    gw_upcall_t **group = self->bundle[b].group;
    self->bundle[b].n = self->bundle[b].bytes = 0;
    if (!s_carry(self, group, n))
        return;
    vz_batch_item_t items[VZ_BATCH_MAX];
    gw_upcall_t *members[VZ_BATCH_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        vz_envelope_t env;
        s_envelope(self, group[i], &env);
        uint8_t *buf = NULL;
        size_t len = 0;
        if (vz_envelope_encode(&env, &buf, &len) < 0) {
            s_fail(self, group[i], "request_too_large", "request does not fit one envelope");
            continue;
        }
        members[k] = group[i];
        items[k++] = (vz_batch_item_t){.data = buf, .len = len};
    }
    if (k > 0)
        s_send_carrier(self, GW_UPCALL_BUNDLE, members[0]->service, members[0]->method, members,
                       items, k, self->bundles, self->bundled);
    for (size_t i = 0; i < k; i++)
        free((void *)items[i].data);
}

//  An upper bound of call's encoded envelope: its body, its ctx and room
//  for the fixed fields.
static size_t s_envelope_bound(const gw_upcall_t *call)
{
    size_t bytes = call->body_len + 256;
    for (size_t i = 0; i < call->ctx_count; i++)
        bytes += strlen(call->ctx[i].key) + strlen(call->ctx[i].value) + 8;
    return bytes;
}

//  File a first-attempt forward in this pass's bundle for its service,
//  method, timeout and idempotency; false when it must go alone (bundles
//  off, the route says so, or no free bundle).
static bool s_bundle_add(gw_upstream_t *self, gw_upcall_t *call)
{
    if (self->bundle_max < 2 || call->kind != GW_UPCALL_FORWARD || call->alone)
        return false;
    size_t b = 0;
    for (; b < self->nbundles; b++)
        if (self->bundle[b].timeout_ms == call->timeout_ms &&
            self->bundle[b].idempotent == call->idempotent &&
            strcmp(self->bundle[b].method, call->method) == 0 &&
            strcmp(self->bundle[b].service, call->service) == 0)
            break;
    if (b == BUNDLE_GROUPS)
        return false;
    s_begin(self, call);
    size_t bytes = s_envelope_bound(call);
    if (b < self->nbundles && self->bundle[b].bytes + bytes > GW_UPSTREAM_BUNDLE_BYTES)
        s_send_bundle(self, b); //  full: this call starts the next one (same slot)
    if (b == self->nbundles) {
        self->nbundles++;
        vz_strlcpy(self->bundle[b].service, call->service, VZ_NAME_MAX);
        vz_strlcpy(self->bundle[b].method, call->method, VZ_NAME_MAX);
        self->bundle[b].timeout_ms = call->timeout_ms;
        self->bundle[b].idempotent = call->idempotent;
    }
    self->bundle[b].group[self->bundle[b].n++] = call;
    self->bundle[b].bytes += bytes;
    if (self->bundle[b].n == self->bundle_max)
        s_send_bundle(self, b);
    return true;
}

//  The batching rule call falls under, or -1.
static int s_rule_of(const gw_upstream_t *self, const gw_upcall_t *call)
{
    if (call->kind != GW_UPCALL_FORWARD || call->ctx_count > 0)
        return -1;
    for (size_t r = 0; r < self->rules; r++)
        if (!self->rule[r].off && strcmp(self->rule[r].service, call->service) == 0 &&
            strcmp(self->rule[r].method, call->method) == 0)
            return (int)r;
    return -1;
}

static int s_on_wake(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    gw_upstream_t *self = arg;
    uint64_t count;
    ssize_t rc = read(self->wake_fd, &count, sizeof count);
    (void)rc; //  EAGAIN: a previous pass already took the queue
    //  Everything queued since the last pass goes now; calls under a
    //  batching rule are grouped first, so one envelope carries them all.
    for (gw_upcall_t *call = s_take_queue(self), *next; call; call = next) {
        next = call->next;
        int r = s_rule_of(self, call);
        if (r < 0) {
            if (!s_bundle_add(self, call))
                s_start(self, call);
            continue;
        }
        s_begin(self, call);
        self->rule[r].group[self->rule[r].grouped++] = call;
        if (self->rule[r].grouped == VZ_BATCH_MAX)
            s_send_group(self, (size_t)r);
    }
    for (size_t r = 0; r < self->rules; r++)
        s_send_group(self, r);
    for (size_t b = 0; b < self->nbundles; b++)
        s_send_bundle(self, b);
    self->nbundles = 0;
    return 0;
}

//  Hand a response to its pending call; late or unknown ids are dropped.
static void s_match(gw_upstream_t *self, vz_response_t *response)
{
    //  Any answer at all proves the broker link works.
    atomic_store(&self->last_seen_ms, (long long)vz_clock_mono_ms());
    //  One request id travels on each step of a request (rate-limit check,
    //  then the forward): vz_pending_match also compares service and method.
    vz_pending_entry_t *entry = vz_pending_match(self->pending, &response->env);
    gw_upcall_t *call = entry ? entry->owner : NULL;
    if (call) {
        if (response->env.kind == VZ_KIND_REPLY && call->kind == GW_UPCALL_BATCH)
            s_reply_batch(self, call, &response->env);
        else if (response->env.kind == VZ_KIND_REPLY && call->kind == GW_UPCALL_BUNDLE)
            s_reply_bundle(self, call, &response->env);
        else if (response->env.kind == VZ_KIND_REPLY) {
            s_take_env(call, &response->env);
            s_finish(self, call);
        } else {
            //  A carrier is never retried as a whole (s_retry refuses it):
            //  s_fail hands each of its calls the error (s_fail_batch),
            //  which retries them alone.
            s_error(self, call, &response->env);
        }
    }
    vz_response_destroy(&response);
}

static int s_on_response(zloop_t *loop, zsock_t *sock, void *arg)
{
    gw_upstream_t *self = arg;
    //  A bounded batch per wake-up; zmq_poll is level-triggered, so the
    //  rest waits for the next pass without starving the other handlers.
    for (int n = 0; n < RECV_BATCH; n++) {
        vz_response_t *response = NULL;
        if (vz_client_recv(self->client, &response) < 0 || !response)
            break; //  none left, or a heartbeat or malformed frame was dropped
        s_match(self, response);
    }
    return 0;
}

static void s_on_expired(vz_pending_entry_t *entry, void *arg)
{
    s_fail(arg, entry->owner, VZ_ERR_TIMEOUT, "no answer before the deadline");
}

static void s_on_link_lost(vz_pending_entry_t *entry, void *arg)
{
    gw_upcall_t *call = entry->owner;
    if (!s_retry(arg, call, VZ_ERR_WORKER_LOST))
        s_fail(arg, call, VZ_ERR_WORKER_LOST, "broker link lost with the request in flight");
}

//  A broker's link dropped (it died, restarted, stopped answering or left
//  DNS): a broker keeps no state, so the calls it held are lost. They end
//  now as worker_lost — idempotent ones go again on the next tick, to a
//  broker that is up (queued on the next one while none is) — instead of
//  at their deadline. Calls on the other brokers are untouched.
static void s_on_broker_lost(void *arg, int broker)
{
    gw_upstream_t *self = arg;
    vz_pending_clear_broker(self->pending, broker, s_on_link_lost, self);
}

//  Link events and DNS changes: end what lost brokers held, count them.
static void s_links(gw_upstream_t *self)
{
    int up = vz_client_links(self->client, s_on_broker_lost, self);
    if (self->brokers_up) {
        vz_series_set(self->brokers_up, up);
        vz_series_set(self->brokers, (double)vz_client_brokers(self->client));
    }
}

//  A call on a suspect broker: idempotent ones go again now (on another
//  broker, under the retry budget; a late answer from the first is
//  dropped), the others are filed again to wait for theirs.
static void s_on_suspect_call(vz_pending_entry_t *entry, void *arg)
{
    gw_upstream_t *self = arg;
    gw_upcall_t *call = entry->owner;
    if (!s_retry(self, call, VZ_ERR_WORKER_LOST))
        vz_pending_add(self->pending, &call->entry, call->entry.id);
}

//  A broker silent for a heartbeat with calls out while another answers
//  (vz_client_suspect): do not wait for ZMTP to drop its link.
static void s_leave_suspects(gw_upstream_t *self)
{
    //  Brokers only: they answer the gateway's pings, so silence means
    //  trouble. A worker's direct link carries no pings (a slow call is
    //  just slow); ZMTP heartbeats drop it when the worker is gone.
    for (int b = 0; b < VZ_ENDPOINTS_MAX; b++)
        if (vz_client_suspect(self->client, b))
            vz_pending_clear_broker(self->pending, b, s_on_suspect_call, self);
}

static int s_on_links(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_links(arg);
    return 0;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    gw_upstream_t *self = arg;
    //  Retries wait one tick: a short backoff without a timer per call.
    for (gw_upcall_t *call = zlistx_first(self->retries); call; call = zlistx_next(self->retries))
        s_send(self, call);
    zlistx_purge(self->retries);
    vz_pending_expire(self->pending, vz_now_ms(), s_on_expired, self);
    //  Brokers that left DNS report no link event: collect them here too.
    s_links(self);
    s_leave_suspects(self);
    return 0;
}

static int s_on_ping(zloop_t *loop, int timer_id, void *arg)
{
    gw_upstream_t *self = arg;
    vz_envelope_t env;
    vz_envelope_init(&env, VZ_KIND_REQUEST);
    vz_strlcpy(env.service, VZ_BROKER_SERVICE, sizeof env.service);
    vz_strlcpy(env.method, "ping", sizeof env.method);
    snprintf(env.id, sizeof env.id, PING_PREFIX "%u", self->ping_seq++);
    env.deadline_ms = vz_now_ms() + (int64_t)self->heartbeat_ms * VZ_HEARTBEAT_LIVENESS;
    env.flags = VZ_FLAG_IDEMPOTENT;
    vz_client_send(self->client, &env); //  a lost ping shows up as a stale last_seen
    return 0;
}

int gw_upstream_attach(gw_upstream_t *self, zloop_t *loop)
{
    assert(self && loop);
    zmq_pollitem_t wake = {NULL, self->wake_fd, ZMQ_POLLIN, 0};
    if (zloop_reader(loop, vz_client_sock(self->client), s_on_response, self) < 0 ||
        zloop_reader(loop, vz_client_links_sock(self->client), s_on_links, self) < 0 ||
        zloop_poller(loop, &wake, s_on_wake, self) < 0 ||
        zloop_timer(loop, TICK_MS, 0, s_on_tick, self) < 0 ||
        zloop_timer(loop, (size_t)self->heartbeat_ms, 0, s_on_ping, self) < 0)
        return -ENOMEM;
    //  First ping now rather than one interval later, so readiness is quick.
    s_on_ping(loop, 0, self);
    return 0;
}

bool gw_upstream_link_up(const gw_upstream_t *self)
{
    assert(self);
    long long seen = atomic_load(&((gw_upstream_t *)self)->last_seen_ms);
    return seen > 0 &&
           vz_clock_mono_ms() - seen <= (int64_t)self->heartbeat_ms * VZ_HEARTBEAT_LIVENESS;
}

int gw_upstream_pending(const gw_upstream_t *self)
{
    assert(self);
    return atomic_load(&((gw_upstream_t *)self)->inflight);
}
