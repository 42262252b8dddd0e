/*  vz_call - call another service from a worker's reactor, without blocking it
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_call.h"

#include <string.h>

#include "vz_client.h"
#include "vz_common.h"
#include "vz_pending.h"
#include "vz_proto.h"
#include "vz_retry.h"

#define S_GRACE_MS 250  //  default local wait past the deadline
#define S_BUDGET_PCT 20 //  default retry share
#define S_BUDGET_MIN 10 //  default retry burst
#define S_RECV_BATCH 64 //  responses read per wake-up

//  Outcomes counted; LOCAL ones by their code.
typedef enum { S_REPLY, S_ERROR, S_TIMEOUT, S_UNAVAILABLE, S_INVALID, S_OUTCOMES } s_outcome_t;
static const char *const s_outcome_names[S_OUTCOMES] = {"reply", "error", "timeout", "unavailable",
                                                        "invalid"};

typedef struct {
    vz_pending_entry_t entry;             //  filed while an attempt is out; owner = this call
    char service[VZ_NAME_MAX];            //  callee service
    char method[VZ_NAME_MAX];             //  callee method
    char traceparent[VZ_TRACEPARENT_MAX]; //  the parent's trace context
    uint8_t *body;                        //  owned copy of the request body
    size_t body_len;                      //  its length
    int64_t deadline_ms;                  //  envelope deadline, kept across retries
    bool idempotent;                      //  flagged and retried
    int attempts;                         //  envelopes sent
    const char *local_code;               //  set: end with this LOCAL error on the next tick
    const char *local_message;            //  its text
    vz_call_done_fn *done;                //  completion
    void *arg;                            //  for done
} s_call_t;

struct vz_call_t {
    vz_client_t *client;              //  the brokers (vz_client)
    vz_pending_t *pending;            //  attempts out, by request id
    zlistx_t *later;                  //  calls to send again or to fail on the next tick
    vz_retry_budget_t budget;         //  shared by every call of this object
    bool retries;                     //  retries allowed at all
    int grace_ms;                     //  local wait past the deadline
    zloop_t *loop;                    //  attached reactor, or NULL
    int timer_id;                     //  tick timer in loop
    size_t count;                     //  calls started, not yet done
    bool closed;                      //  no new calls
    vz_series_t *outcome[S_OUTCOMES]; //  vz_call_total by outcome, or NULLs
};

vz_call_t *vz_call_new(const vz_call_config_t *config)
{
    assert(config && config->broker.cert);
    vz_client_t *client = vz_client_new(&config->broker);
    if (!client)
        return NULL;
    vz_call_t *self = (vz_call_t *)zmalloc(sizeof *self);
    assert(self);
    self->client = client;
    self->pending = vz_pending_new();
    self->later = zlistx_new();
    assert(self->later);
    self->grace_ms = config->grace_ms > 0 ? config->grace_ms : S_GRACE_MS;
    self->timer_id = -1;
    self->retries = config->retry_budget_pct >= 0;
    vz_series_t *retried = NULL, *denied = NULL;
    if (config->metrics) {
        char labels[32];
        for (int o = 0; o < S_OUTCOMES; o++) {
            snprintf(labels, sizeof labels, "outcome=%s", s_outcome_names[o]);
            self->outcome[o] = vz_metrics_counter(config->metrics, "vz_call_total",
                                                  "Calls to other services, by outcome", labels);
        }
        retried = vz_metrics_counter(config->metrics, "vz_call_retries_total",
                                     "Idempotent calls sent again", NULL);
        denied = vz_metrics_counter(config->metrics, "vz_call_retries_denied_total",
                                    "Retries not made because the retry budget was spent", NULL);
    }
    int pct = config->retry_budget_pct > 0 ? config->retry_budget_pct : S_BUDGET_PCT;
    vz_retry_budget_init(&self->budget, pct > 100 ? 100 : pct,
                         config->retry_min > 0 ? config->retry_min : S_BUDGET_MIN, retried, denied);
    return self;
}

static void s_call_free(s_call_t *call)
{
    free(call->body);
    free(call);
}

//  The end of a call: count, tell the app, free. The call is in no table.
static void s_finish(vz_call_t *self, s_call_t *call, vz_call_outcome_t outcome, const char *code,
                     const char *message, const vz_envelope_t *env)
{
    s_outcome_t o = outcome == VZ_CALL_REPLY      ? S_REPLY
                    : outcome == VZ_CALL_REMOTE   ? S_ERROR
                    : streq(code, VZ_ERR_TIMEOUT) ? S_TIMEOUT
                    : streq(code, VZ_ERR_INVALID) ? S_INVALID
                                                  : S_UNAVAILABLE;
    if (self->outcome[o])
        vz_series_inc(self->outcome[o]);
    vz_call_result_t result = {
        .outcome = outcome,
        .code = code ? code : "",
        .message = message ? message : "",
        .body = outcome == VZ_CALL_REPLY ? env->body : NULL,
        .body_len = outcome == VZ_CALL_REPLY ? env->body_len : 0,
        .env = env,
        .attempts = call->attempts,
    };
    assert(self->count > 0);
    self->count--;
    call->done(call->arg, &result);
    s_call_free(call);
}

static void s_fail(vz_call_t *self, s_call_t *call, const char *code, const char *message)
{
    s_finish(self, call, VZ_CALL_LOCAL, code, message, NULL);
}

//  Send one attempt of call and file it; the first attempt gets a fresh id,
//  a retry keeps it (a callee may de-duplicate on it). On failure the call
//  is in no table and the caller ends it.
static int s_send(vz_call_t *self, s_call_t *call)
{
    vz_pending_add(self->pending, &call->entry, call->attempts ? call->entry.id : NULL);
    call->entry.expires_ms = call->deadline_ms + self->grace_ms;
    vz_envelope_t env;
    vz_envelope_init(&env, VZ_KIND_REQUEST);
    vz_strlcpy(env.service, call->service, sizeof env.service);
    vz_strlcpy(env.method, call->method, sizeof env.method);
    vz_strlcpy(env.id, call->entry.id, sizeof env.id);
    vz_strlcpy(env.traceparent, call->traceparent, sizeof env.traceparent);
    env.deadline_ms = call->deadline_ms;
    env.flags = call->idempotent ? VZ_FLAG_IDEMPOTENT : 0;
    env.body = call->body;
    env.body_len = call->body_len;
    int rc = vz_client_send(self->client, &env);
    if (rc < 0) {
        vz_pending_remove(self->pending, &call->entry);
        call->local_code = rc == -EMSGSIZE ? VZ_ERR_INVALID : VZ_ERR_UNAVAILABLE;
        call->local_message =
            rc == -EMSGSIZE ? "request does not fit one envelope" : "unable to send to the broker";
        return rc;
    }
    call->entry.broker = vz_client_last_broker(self->client);
    call->attempts++;
    return 0;
}

int vz_call_start(vz_call_t *self, const vz_call_req_t *req, vz_call_done_fn *done, void *arg)
{
    assert(self && req && done);
    assert(self->loop); //  nothing would ever end the call
    assert(req->service && strlen(req->service) < VZ_NAME_MAX);
    assert(req->method && strlen(req->method) < VZ_NAME_MAX);
    assert(req->body || req->body_len == 0);
    int64_t now = vz_now_ms();
    int64_t parent = req->parent ? req->parent->deadline_ms : 0;
    //  A call without any limit could hang: that is a caller bug.
    assert(req->timeout_ms > 0 || parent > 0);
    int64_t deadline = req->timeout_ms > 0 ? now + req->timeout_ms : parent;
    if (parent > 0 && parent < deadline)
        deadline = parent; //  nobody waits for the child past the parent
    s_call_t *call = (s_call_t *)zmalloc(sizeof *call);
    assert(call);
    call->entry.owner = call;
    call->entry.service = call->service;
    call->entry.method = call->method;
    vz_strlcpy(call->service, req->service, sizeof call->service);
    vz_strlcpy(call->method, req->method, sizeof call->method);
    if (req->parent)
        vz_strlcpy(call->traceparent, req->parent->traceparent, sizeof call->traceparent);
    if (req->body_len) {
        call->body = (uint8_t *)malloc(req->body_len);
        assert(call->body);
        memcpy(call->body, req->body, req->body_len);
    }
    call->body_len = req->body_len;
    call->deadline_ms = deadline;
    call->idempotent = req->idempotent;
    call->done = done;
    call->arg = arg;
    self->count++;
    if (self->closed) {
        s_fail(self, call, VZ_ERR_UNAVAILABLE, "caller is shutting down");
        return 0;
    }
    vz_retry_budget_earn(&self->budget);
    if (deadline <= now) {
        call->local_code = VZ_ERR_TIMEOUT;
        call->local_message = "deadline passed before the call";
    }
    //  done must not run inside start: a failure waits for the next tick.
    if (call->local_code || s_send(self, call) < 0)
        zlistx_add_end(self->later, call);
    return 0;
}

//  An error answer: sent again next tick when the policy allows, else done.
//  Queue call to go again on the next tick when the retry policy allows
//  it after code; false when it does not.
static bool s_retry(vz_call_t *self, s_call_t *call, const char *code)
{
    if (self->closed || !self->retries ||
        !vz_retry_allowed(&self->budget, call->idempotent, code, call->attempts,
                          call->deadline_ms - vz_now_ms()))
        return false;
    zlistx_add_end(self->later, call);
    return true;
}

static void s_on_error(vz_call_t *self, s_call_t *call, const vz_envelope_t *env)
{
    const char *code = env->error_code[0] ? env->error_code : VZ_ERR_INTERNAL;
    if (!s_retry(self, call, code))
        s_finish(self, call, VZ_CALL_REMOTE, code, env->error_message, env);
}

static int s_on_response(zloop_t *loop, zsock_t *sock, void *arg)
{
    vz_call_t *self = (vz_call_t *)arg;
    //  A bounded batch per wake-up: the poll is level-triggered, the rest
    //  waits for the next pass without starving the worker's own socket.
    for (int n = 0; n < S_RECV_BATCH; n++) {
        vz_response_t *response = NULL;
        if (vz_client_recv(self->client, &response) < 0 || !response)
            break;
        vz_pending_entry_t *entry = vz_pending_match(self->pending, &response->env);
        if (entry) {
            s_call_t *call = (s_call_t *)entry->owner;
            if (response->env.kind == VZ_KIND_REPLY)
                s_finish(self, call, VZ_CALL_REPLY, "", "", &response->env);
            else
                s_on_error(self, call, &response->env);
        } //  else a late answer to a call that already ended: dropped
        vz_response_destroy(&response);
    }
    return 0;
}

static void s_on_expired(vz_pending_entry_t *entry, void *arg)
{
    s_fail((vz_call_t *)arg, (s_call_t *)entry->owner, VZ_ERR_TIMEOUT,
           "no answer before the deadline");
}

static void s_on_closed(vz_pending_entry_t *entry, void *arg)
{
    s_fail((vz_call_t *)arg, (s_call_t *)entry->owner, VZ_ERR_UNAVAILABLE,
           "caller is shutting down");
}

//  A call the lost broker held: an error worker_lost (sent again to
//  another broker when the retry policy allows), now, not at its deadline.
static void s_on_lost_call(vz_pending_entry_t *entry, void *arg)
{
    vz_call_t *self = (vz_call_t *)arg;
    s_call_t *call = (s_call_t *)entry->owner;
    if (!s_retry(self, call, VZ_ERR_WORKER_LOST))
        s_fail(self, call, VZ_ERR_WORKER_LOST, "broker link lost with the request in flight");
}

static void s_on_broker_lost(void *arg, int broker)
{
    vz_call_t *self = (vz_call_t *)arg;
    vz_pending_clear_broker(self->pending, broker, s_on_lost_call, self);
}

//  Take the calls waiting for a tick; done may add new ones meanwhile.
static zlistx_t *s_take_later(vz_call_t *self)
{
    zlistx_t *later = self->later;
    self->later = zlistx_new();
    assert(self->later);
    return later;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    vz_call_t *self = (vz_call_t *)arg;
    zlistx_t *later = s_take_later(self);
    for (s_call_t *call = (s_call_t *)zlistx_first(later); call;
         call = (s_call_t *)zlistx_next(later)) {
        if (call->local_code || s_send(self, call) < 0)
            s_fail(self, call, call->local_code, call->local_message);
    }
    zlistx_destroy(&later);
    vz_client_links(self->client, s_on_broker_lost, self);
    vz_pending_expire(self->pending, vz_now_ms(), s_on_expired, self);
    return 0;
}

int vz_call_attach(vz_call_t *self, zloop_t *loop)
{
    assert(self && loop);
    assert(!self->loop);
    if (zloop_reader(loop, vz_client_sock(self->client), s_on_response, self) < 0)
        return -EIO;
    //  A socket error must not silently end the reader: calls would hang
    //  until their deadlines.
    zloop_reader_set_tolerant(loop, vz_client_sock(self->client));
    self->timer_id = zloop_timer(loop, VZ_CALL_TICK_MS, 0, s_on_tick, self);
    if (self->timer_id < 0) {
        zloop_reader_end(loop, vz_client_sock(self->client));
        return -EIO;
    }
    self->loop = loop;
    return 0;
}

void vz_call_close(vz_call_t *self)
{
    assert(self);
    self->closed = true;
    zlistx_t *later = s_take_later(self);
    for (s_call_t *call = (s_call_t *)zlistx_first(later); call;
         call = (s_call_t *)zlistx_next(later))
        s_fail(self, call, VZ_ERR_UNAVAILABLE, "caller is shutting down");
    zlistx_destroy(&later);
    vz_pending_clear(self->pending, s_on_closed, self);
}

size_t vz_call_pending(const vz_call_t *self)
{
    assert(self);
    return self->count;
}

void vz_call_destroy(vz_call_t **self_p)
{
    assert(self_p);
    vz_call_t *self = *self_p;
    if (!self)
        return;
    vz_call_close(self);
    if (self->loop) {
        zloop_reader_end(self->loop, vz_client_sock(self->client));
        zloop_timer_end(self->loop, self->timer_id);
    }
    vz_pending_destroy(&self->pending);
    zlistx_destroy(&self->later);
    vz_client_destroy(&self->client);
    free(self);
    *self_p = NULL;
}

void vz_call_complete(void *arg, const vz_call_result_t *result)
{
    vz_deferred_t *handle = (vz_deferred_t *)arg;
    //  The callee's answer is the reply: its ctx too (a status of its own).
    for (size_t i = 0; result->env && i < result->env->ctx_count; i++)
        (void)vz_reply_ctx_set(vz_deferred_reply(handle), result->env->ctx[i].key,
                               result->env->ctx[i].value);
    if (result->outcome == VZ_CALL_REPLY)
        vz_worker_complete(&handle, result->body, result->body_len);
    else
        vz_worker_complete_error(&handle, result->code, result->message);
}

static void s_on_stop(void *arg)
{
    vz_call_close((vz_call_t *)arg);
}

vz_call_t *vz_call_new_daemon(vz_daemon_t *daemon, zloop_t *loop)
{
    assert(daemon && loop);
    vz_call_config_t config = {
        .broker = {vz_daemon_config(daemon)->broker_endpoints, vz_daemon_broker_key(daemon),
                   vz_daemon_cert(daemon)},
        .metrics = vz_daemon_metrics(daemon),
    };
    vz_call_t *self = vz_call_new(&config);
    if (!self)
        return NULL;
    if (vz_call_attach(self, loop) < 0) {
        vz_call_destroy(&self);
        errno = EIO;
        return NULL;
    }
    vz_daemon_on_stop(daemon, s_on_stop, self);
    return self;
}
