/*  ratelimit - decisions in Redis (one Lua script each), fallback, readiness
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Each decision is one EVALSHA: the script reads the bucket, decides and
 *  writes back atomically, so N replicas sharing one Redis let exactly the
 *  limit through. The scripts take the time from Redis (TIME; allowed
 *  before writes since Redis 5 with effects replication, the only mode of
 *  Redis 7), so replicas with skewed clocks still agree. Scripts only do
 *  the atomic part and return raw state; remaining/reset/retry_after are
 *  computed here, which keeps the Redis-side cost (the shared bottleneck)
 *  small. "check" is a deferred method: the worker hands over every check
 *  queued on its socket (one batch), and s_flush runs their scripts in one
 *  pipelined Redis round trip before answering each.
 */
#include "ratelimit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies.h"
#include "scripts.h"
#include "vz_batch.h"
#include "vz_broker_contract.h"
#include "vz_call.h"
#include "vz_clock.h"
#include "vz_proto.h"
#include "vz_ratelimit_contract.h"
#include "vz_redis.h"
#include "vz_worker.h"

#define S_TICK_MS 100       //  Redis probe cadence (failure mode)
#define S_IDLE_PING_MS 1000 //  probe a healthy but idle Redis this often
#define S_NEAR_PERCENT 10   //  "near limit": allowed with under 10 % left
#define S_REPLICAS_MS 2000  //  broker.services cadence (VZ_RATELIMIT_REPLICAS=0)

const vz_cfg_item_t rl_items[] = {
    VZ_CFG_ITEM(rl_config_t, "VZ_RATELIMIT_POLICY", "ratelimit/policy", VZ_CFG_STR,
                "configs/ratelimit.cfg", 0, 0, policy_file,
                "ZPL policy file (descriptors -> limit, algorithm); reloaded on SIGHUP"),
    VZ_CFG_ITEM(rl_config_t, "VZ_RATELIMIT_REDIS_TIMEOUT_MS", "ratelimit/redis_timeout", VZ_CFG_MS,
                "20", 1, 5000, redis_timeout_ms,
                "Redis connect and command timeout: the longest a decision waits"),
    VZ_CFG_ITEM(rl_config_t, "VZ_RATELIMIT_REDIS_RETRY_MS", "ratelimit/redis_retry", VZ_CFG_MS,
                "250", 0, 60000, redis_retry_ms,
                "least time between Redis reconnect attempts while it is away"),
    VZ_CFG_ENUM_ITEM(rl_config_t, "VZ_RATELIMIT_FAILURE_MODE", "ratelimit/failure_mode", "open",
                     "open closed", failure_mode,
                     "when Redis is away: open (local buckets, limit/replicas) or closed (deny)"),
    VZ_CFG_ITEM(rl_config_t, "VZ_RATELIMIT_REPLICAS", "ratelimit/replicas", VZ_CFG_INT, "0", 0,
                1000, replicas,
                "replica count fail-open limits are divided by; 0 = the ratelimit workers the "
                "broker has (broker.services, every 2 s)"),
    VZ_CFG_ITEM(rl_config_t, "VZ_RATELIMIT_LOCAL_MAX", "ratelimit/local_max", VZ_CFG_INT, "100000",
                100, 10000000, local_max,
                "fail-open buckets kept in memory before the oldest are dropped"),
};
const size_t rl_items_count = sizeof rl_items / sizeof rl_items[0];

#define RATELIMIT_CREDIT 64 //  default broker credit: one worker batch

//  Buckets for the Redis round trip: it is tens of microseconds when well.
static const double s_redis_buckets[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                         0.005,   0.01,   0.025,   0.05,   0.1};

typedef struct {
    vz_series_t *allowed;       //  decisions_total{result="allowed"}
    vz_series_t *denied;        //  decisions_total{result="denied"}
    vz_series_t *shadow_denied; //  decisions_total{result="shadow_denied"}
    vz_series_t *near;          //  near_limit_total
} s_policy_series_t;

//  A check_batch request: one reply for all its items, sent when the last
//  item is decided.
typedef struct {
    vz_deferred_t *handle;   //  the open reply (worker's); NULL while items are added
    size_t count;            //  items
    size_t left;             //  items not yet decided
    vz_batch_item_t *result; //  per item: code ("" = body) and payload
    uint8_t **owned;         //  per item: heap body to free, or NULL
} s_group_t;

//  One check of the current batch, waiting for its Redis answer.
typedef struct {
    vz_deferred_t *handle;      //  the open reply (worker's), NULL for a group item
    s_group_t *group;           //  check_batch: the group this item answers into
    size_t slot;                //  its index there
    int index;                  //  policy index in limits
    char bucket[RL_BUCKET_MAX]; //  Redis key
    uint64_t cost;              //  tokens this request takes
    char args[3][32];           //  script ARGV
    const char *keys[1];        //  KEYS = {bucket}
    const char *argv[3];        //  ARGV pointers into args
} s_pending_t;

typedef struct {
    vz_daemon_t *daemon;               //  borrowed
    const rl_config_t *config;         //  borrowed
    vz_metrics_t *metrics;             //  borrowed, the daemon's
    rl_policies_t *limits;             //  active policy set
    s_policy_series_t *series;         //  one per policy of limits
    s_policy_series_t none_series;     //  requests no policy matched
    vz_redis_t *redis;                 //  the shared Redis
    vz_redis_script_t *token_bucket;   //  GCRA script
    vz_redis_script_t *sliding_window; //  sliding window counter script
    bool fail_closed;                  //  failure mode
    zhashx_t *local;                   //  fail-open: bucket key -> int64_t tat (us)
    bool fallback;                     //  Redis unusable: failure mode applies
    int64_t last_contact;              //  monotonic ms of the last Redis answer
    vz_series_t *redis_seconds;        //  redis_duration_seconds
    vz_series_t *fallback_gauge;       //  fallback_active
    vz_series_t *redis_errors;         //  redis_errors_total
    vz_series_t *reload_ok;            //  reloads_total{result="ok"}
    vz_series_t *reload_failed;        //  reloads_total{result="failed"}
    s_pending_t *pending;              //  checks of the current batch
    size_t npending;                   //  entries used in pending
    size_t pending_max;                //  entries allocated
    vz_redis_call_t *calls;            //  pipelined calls, pending_max of them
    int replicas;                      //  fail-open divisor in use (>= 1)
    vz_call_t *broker;                 //  replicas 0: asks broker.services (NULL otherwise)
    bool asking;                       //  a broker.services call is in flight
    int64_t replicas_due;              //  next ask (monotonic ms)
    vz_series_t *replicas_gauge;       //  replicas
} s_app_t;

static void s_series_for(s_app_t *app, const char *policy, s_policy_series_t *out)
{
    char labels[128];
    const char *help = "rate-limit decisions by policy and result";
    snprintf(labels, sizeof labels, "policy=%s,result=allowed", policy);
    out->allowed = vz_metrics_counter(app->metrics, "vz_ratelimit_decisions_total", help, labels);
    snprintf(labels, sizeof labels, "policy=%s,result=denied", policy);
    out->denied = vz_metrics_counter(app->metrics, "vz_ratelimit_decisions_total", help, labels);
    snprintf(labels, sizeof labels, "policy=%s,result=shadow_denied", policy);
    out->shadow_denied =
        vz_metrics_counter(app->metrics, "vz_ratelimit_decisions_total", help, labels);
    snprintf(labels, sizeof labels, "policy=%s", policy);
    out->near = vz_metrics_counter(app->metrics, "vz_ratelimit_near_limit_total",
                                   "allowed decisions with under 10% of the limit left", labels);
}

//  Swap in a new policy set; series are get-or-create, so a policy that
//  survives a reload keeps counting on the same series.
static void s_install(s_app_t *app, rl_policies_t **limits_p)
{
    rl_policies_destroy(&app->limits);
    app->limits = *limits_p;
    *limits_p = NULL;
    free(app->series);
    size_t count = rl_policies_count(app->limits);
    app->series = calloc(count, sizeof *app->series);
    assert(app->series);
    for (size_t i = 0; i < count; i++)
        s_series_for(app, rl_policies_at(app->limits, i)->name, &app->series[i]);
}

//  The reload hook: runs on the reactor after SIGHUP.
static void s_reload(void *arg)
{
    s_app_t *app = arg;
    char err[512];
    rl_policies_t *limits = rl_policies_load(app->config->policy_file, err, sizeof err);
    if (!limits) {
        vz_series_inc(app->reload_failed);
        vz_error(NULL, "unable to reload policy file: keeping the old one", "file",
                 app->config->policy_file, "reason", err);
        return;
    }
    s_install(app, &limits);
    vz_series_inc(app->reload_ok);
    char count[16];
    snprintf(count, sizeof count, "%zu", rl_policies_count(app->limits));
    vz_info(NULL, "policy reloaded", "file", app->config->policy_file, "policies", count);
}

static void s_set_fallback(s_app_t *app, bool on)
{
    if (on == app->fallback)
        return;
    app->fallback = on;
    vz_series_set(app->fallback_gauge, on ? 1 : 0);
    if (on)
        vz_warn(NULL, "redis unreachable: failure mode applies", "mode",
                app->fail_closed ? "fail_closed" : "fail_open");
    else {
        //  Back on Redis: local buckets are stale for the next outage.
        zhashx_purge(app->local);
        vz_info(NULL, "redis back: decisions in redis again");
    }
}

static uint64_t s_ceil_div(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

//  Microseconds per token, at least 1 (policies.c refuses faster policies).
static uint64_t s_emission_us(uint64_t limit, uint32_t window_s)
{
    uint64_t t = (uint64_t)window_s * 1000000 / limit;
    return t ? t : 1;
}

//  The answer of a GCRA decision from d = tat - now (us).
static void s_gcra_answer(uint64_t limit, uint64_t burst, uint32_t window, uint64_t cost,
                          bool allowed, int64_t d, vz_rl_decision_t *a)
{
    uint64_t t = s_emission_us(limit, window);
    uint64_t ud = d > 0 ? (uint64_t)d : 0;
    uint64_t cap = burst * t;
    a->allowed = allowed;
    a->remaining = ud >= cap ? 0 : (cap - ud) / t;
    a->reset = s_ceil_div(ud, 1000000);
    a->retry_after = 0;
    if (!allowed) {
        //  Allowed again once tat + cost*T - burst*T <= now.
        uint64_t need = ud + cost * t;
        uint64_t wait = need > cap ? need - cap : 1;
        a->retry_after = cost > burst ? window : s_ceil_div(wait, 1000000);
    }
}

static void s_sliding_answer(const rl_policy_t *p, uint64_t cost, bool allowed, double c,
                             double prev, double e_ms, vz_rl_decision_t *a)
{
    double win = (double)p->window_s * 1000, lim = (double)p->limit;
    if (e_ms < 0 || e_ms > win)
        e_ms = 0;
    double used = prev * (win - e_ms) / win + c;
    a->allowed = allowed;
    a->remaining = used >= lim ? 0 : (uint64_t)(lim - used);
    //  Full again when what is counted has slid out entirely.
    double full = c > 0 ? 2 * win - e_ms : prev > 0 ? win - e_ms : 0;
    a->reset = (uint64_t)ceil(full / 1000);
    a->retry_after = 0;
    if (!allowed) {
        double wait;
        if ((double)cost > lim)
            wait = win;
        else if (c + (double)cost <= lim && prev > 0)
            wait = win * (1 - (lim - c - (double)cost) / prev) - e_ms;
        else if (c > 0)
            wait = (win - e_ms) + win * (1 - (lim - (double)cost) / c);
        else
            wait = win - e_ms;
        a->retry_after = wait < 1000 ? 1 : (uint64_t)ceil(wait / 1000);
    }
}

static bool s_int_element(const redisReply *r, size_t i, long long *v)
{
    if (r->element[i]->type != REDIS_REPLY_INTEGER)
        return false;
    *v = r->element[i]->integer;
    return true;
}

//  The script's ARGV for policy p: emission interval and burst (token
//  bucket) or window and limit (sliding window), then the cost.
static void s_script_args(const rl_policy_t *p, uint64_t cost, char args[3][32])
{
    if (p->algorithm == RL_TOKEN_BUCKET) {
        snprintf(args[0], 32, "%llu", (unsigned long long)s_emission_us(p->limit, p->window_s));
        snprintf(args[1], 32, "%llu", (unsigned long long)p->burst);
    } else {
        snprintf(args[0], 32, "%llu", (unsigned long long)p->window_s * 1000);
        snprintf(args[1], 32, "%llu", (unsigned long long)p->limit);
    }
    snprintf(args[2], 32, "%llu", (unsigned long long)cost);
}

//  One decision from its script reply (NULL when the batch failed). 0 with
//  *a filled, -1 when Redis did not answer usefully (the failure mode then
//  applies).
static int s_decide_reply(s_app_t *app, const rl_policy_t *p, uint64_t cost, const redisReply *r,
                          vz_rl_decision_t *a)
{
    bool tb = p->algorithm == RL_TOKEN_BUCKET;
    long long v[4] = {0};
    size_t want = tb ? 2 : 4;
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == want;
    for (size_t i = 0; ok && i < want; i++)
        ok = s_int_element(r, i, &v[i]);
    if (!ok) {
        if (r) {
            //  A NULL reply was counted once for the whole batch.
            vz_series_inc(app->redis_errors);
            if (r->type == REDIS_REPLY_ERROR)
                vz_warn(NULL, "unable to run rate-limit script", "reason", r->str);
        }
        return -1;
    }
    if (tb)
        s_gcra_answer(p->limit, p->burst, p->window_s, cost, v[0] == 1, v[1], a);
    else
        s_sliding_answer(p, cost, v[0] == 1, (double)v[1], (double)v[2], (double)v[3], a);
    return 0;
}

//  Fail-open: a GCRA bucket in this process with limit/replicas, so the
//  replicas together stay near the limit while Redis is away. Sliding
//  window policies use the same local token bucket (documented).
static void s_decide_local(s_app_t *app, const rl_policy_t *p, const char *bucket, uint64_t cost,
                           vz_rl_decision_t *a)
{
    uint64_t replicas = (uint64_t)app->replicas;
    uint64_t limit = p->limit / replicas ? p->limit / replicas : 1;
    uint64_t burst = p->burst / replicas ? p->burst / replicas : 1;
    int64_t t = (int64_t)s_emission_us(limit, p->window_s);
    int64_t now = zclock_usecs();
    if (zhashx_size(app->local) >= (size_t)app->config->local_max) {
        //  Bounded memory: an expired bucket is a full bucket, so
        //  forgetting those changes nothing; if that is not enough, start over.
        zlistx_t *keys = zhashx_keys(app->local);
        for (const char *k = zlistx_first(keys); k; k = zlistx_next(keys)) {
            int64_t *tat = zhashx_lookup(app->local, k);
            if (*tat <= now)
                zhashx_delete(app->local, k);
        }
        zlistx_destroy(&keys);
        if (zhashx_size(app->local) >= (size_t)app->config->local_max)
            zhashx_purge(app->local);
    }
    int64_t *tat = zhashx_lookup(app->local, bucket);
    if (!tat) {
        tat = malloc(sizeof *tat);
        assert(tat);
        *tat = now;
        zhashx_insert(app->local, bucket, tat);
    }
    int64_t base = *tat < now ? now : *tat;
    int64_t nt = base + (int64_t)cost * t;
    bool allowed = nt - (int64_t)burst * t <= now;
    if (allowed)
        *tat = nt;
    s_gcra_answer(limit, burst, p->window_s, cost, allowed, (allowed ? nt : base) - now, a);
    a->limit = limit;
}

static void s_count(const s_policy_series_t *s, const vz_rl_decision_t *a, bool denied)
{
    if (!denied) {
        vz_series_inc(s->allowed);
        if (a->remaining * 100 < a->limit * S_NEAR_PERCENT)
            vz_series_inc(s->near);
    } else
        vz_series_inc(a->shadow ? s->shadow_denied : s->denied);
}

static s_group_t *s_group_new(size_t count)
{
    s_group_t *group = calloc(1, sizeof *group);
    assert(group);
    group->count = group->left = count;
    group->result = calloc(count, sizeof *group->result);
    group->owned = calloc(count, sizeof *group->owned);
    assert(group->result && group->owned);
    return group;
}

static void s_group_destroy(s_group_t **self_p)
{
    s_group_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        free(self->owned[i]);
    free(self->owned);
    free(self->result);
    free(self);
    *self_p = NULL;
}

//  Item slot of group decided: a body (taken) or an error (static texts).
//  When it was the last and the reply is open, send it and free the group.
static void s_group_settle(s_group_t *group, size_t slot, uint8_t *body, size_t len,
                           const char *code, const char *message)
{
    assert(slot < group->count && group->left > 0);
    if (body) {
        group->result[slot] = (vz_batch_item_t){.code = "", .data = body, .len = len};
        group->owned[slot] = body;
    } else
        group->result[slot] = (vz_batch_item_t){
            .code = code, .data = (const uint8_t *)message, .len = strlen(message)};
    if (--group->left > 0 || !group->handle)
        return;
    size_t out_len;
    uint8_t *out = vz_batch_reply_encode(group->result, group->count, &out_len);
    //  -ENOTCONN: the broker link was replaced and has written it off.
    (void)vz_worker_complete(&group->handle, out, out_len);
    free(out);
    s_group_destroy(&group);
}

static int s_reply_answer(vz_reply_t *reply, const vz_rl_decision_t *a)
{
    size_t len;
    uint8_t *body = vz_rl_decision_encode(a, &len);
    int rc = vz_reply_body(reply, body, len);
    free(body);
    return rc;
}

//  Decide one pending check from its Redis reply (or the failure mode),
//  count it and answer it.
static void s_settle(s_app_t *app, s_pending_t *pc, const redisReply *r)
{
    const rl_policy_t *p = rl_policies_at(app->limits, (size_t)pc->index);
    vz_rl_decision_t a = {.mode = VZ_RL_MODE_REDIS, .allowed = true};
    memcpy(a.policy, p->name, sizeof a.policy); //  same capacity, NUL-terminated
    a.limit = p->limit;
    a.window = p->window_s;
    a.shadow = p->shadow || rl_policies_shadow(app->limits);
    if (s_decide_reply(app, p, pc->cost, r, &a) == 0)
        s_set_fallback(app, false);
    else {
        s_set_fallback(app, true);
        if (app->fail_closed) {
            a.mode = VZ_RL_MODE_FAIL_CLOSED;
            a.allowed = false;
            a.remaining = 0;
            a.reset = a.retry_after = 1;
        } else {
            a.mode = VZ_RL_MODE_FAIL_OPEN;
            s_decide_local(app, p, pc->bucket, pc->cost, &a);
        }
    }
    bool denied = !a.allowed;
    if (denied && a.shadow) {
        a.allowed = true;
        a.retry_after = 0;
    }
    s_count(&app->series[pc->index], &a, denied);
    size_t len;
    uint8_t *body = vz_rl_decision_encode(&a, &len);
    if (pc->group) {
        s_group_settle(pc->group, pc->slot, body, len, NULL, NULL);
        return;
    }
    //  -ENOTCONN: the broker link was replaced and has written it off.
    (void)vz_worker_complete(&pc->handle, body, len);
    free(body);
}

//  After each batch of the worker: every pending check's script in one
//  pipelined round trip (both scripts mixed, in arrival order, so checks of
//  one bucket are decided in the order they came), then the answers.
static void s_flush(void *arg)
{
    s_app_t *app = arg;
    size_t n = app->npending;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        s_pending_t *pc = &app->pending[i];
        const rl_policy_t *p = rl_policies_at(app->limits, (size_t)pc->index);
        pc->keys[0] = pc->bucket;
        for (int k = 0; k < 3; k++)
            pc->argv[k] = pc->args[k];
        app->calls[i] = (vz_redis_call_t){
            .script = p->algorithm == RL_TOKEN_BUCKET ? app->token_bucket : app->sliding_window,
            .nkeys = 1,
            .keys = pc->keys,
            .nargs = 3,
            .args = pc->argv};
    }
    int64_t t0 = zclock_usecs();
    int rc = vz_redis_eval_batch(app->redis, app->calls, n);
    //  -EAGAIN: inside the retry spacing, no attempt and no wait.
    if (rc != -EAGAIN)
        vz_series_observe(app->redis_seconds, (double)(zclock_usecs() - t0) / 1e6);
    if (rc == 0)
        app->last_contact = vz_clock_mono_ms();
    else if (rc != -EAGAIN)
        vz_series_inc(app->redis_errors);
    for (size_t i = 0; i < n; i++) {
        s_settle(app, &app->pending[i], app->calls[i].reply);
        if (app->calls[i].reply)
            freeReplyObject(app->calls[i].reply);
        app->calls[i].reply = NULL;
    }
    app->npending = 0;
}

//  What s_admit made of one check body.
typedef enum {
    S_ADMIT_ERROR,   //  refused: *reason says why (invalid_request)
    S_ADMIT_ANSWER,  //  decided at once: *answer holds it
    S_ADMIT_PENDING, //  added to the batch: app->pending[app->npending - 1]
} s_admit_t;

//  Decode one check and either decide it now (no policy matches) or file
//  it for the batch's pipelined Redis round trip.
static s_admit_t s_admit(s_app_t *app, const uint8_t *body, size_t len, vz_rl_decision_t *answer,
                         const char **reason)
{
    vz_rl_check_t rq;
    if (vz_rl_check_decode(&rq, body, len, reason) < 0)
        return S_ADMIT_ERROR;
    int index = rl_policies_match(app->limits, &rq);
    if (index < 0) {
        //  No policy: nothing to limit (the shipped file ends in a catch-all).
        *answer = (vz_rl_decision_t){.policy = "none", .allowed = true};
        answer->mode = app->fallback
                           ? (app->fail_closed ? VZ_RL_MODE_FAIL_CLOSED : VZ_RL_MODE_FAIL_OPEN)
                           : VZ_RL_MODE_REDIS;
        vz_series_inc(app->none_series.allowed);
        return S_ADMIT_ANSWER;
    }
    const rl_policy_t *p = rl_policies_at(app->limits, (size_t)index);
    if (app->npending == app->pending_max) {
        app->pending_max = app->pending_max ? app->pending_max * 2 : VZ_WORKER_BATCH;
        app->pending = realloc(app->pending, app->pending_max * sizeof *app->pending);
        app->calls = realloc(app->calls, app->pending_max * sizeof *app->calls);
        assert(app->pending && app->calls);
    }
    s_pending_t *pc = &app->pending[app->npending];
    int rc = rl_policies_bucket(p, &rq, pc->bucket, sizeof pc->bucket);
    if (rc < 0) {
        *reason = rc == -ENOENT ? "no descriptor for the policy (ip, sub or key empty)"
                                : "descriptor too long";
        return S_ADMIT_ERROR;
    }
    pc->index = index;
    pc->cost = rq.cost;
    pc->handle = NULL;
    pc->group = NULL;
    s_script_args(p, rq.cost, pc->args);
    app->npending++;
    return S_ADMIT_PENDING;
}

static int s_check(void *arg, const vz_envelope_t *req, vz_reply_t *reply)
{
    s_app_t *app = arg;
    vz_rl_decision_t a;
    const char *reason = NULL;
    switch (s_admit(app, req->body, req->body_len, &a, &reason)) {
    case S_ADMIT_ERROR:
        return vz_reply_error(reply, VZ_ERR_INVALID, reason);
    case S_ADMIT_ANSWER:
        return s_reply_answer(reply, &a);
    case S_ADMIT_PENDING:
        break;
    }
    app->pending[app->npending - 1].handle = vz_reply_defer(reply, s_flush);
    return 0;
}

//  check_batch (vz_batch.h): up to VZ_BATCH_MAX checks in one envelope,
//  decided in the same pipelined round trip as every other check of the
//  worker's batch, answered in one reply once the last item is decided.
static int s_check_batch(void *arg, const vz_envelope_t *req, vz_reply_t *reply)
{
    s_app_t *app = arg;
    vz_batch_item_t items[VZ_BATCH_MAX];
    size_t count;
    const char *reason = NULL;
    if (vz_batch_request_decode(req->body, req->body_len, items, VZ_BATCH_MAX, &count, &reason) < 0)
        return vz_reply_error(reply, VZ_ERR_INVALID, reason);
    s_group_t *group = s_group_new(count);
    for (size_t i = 0; i < count; i++) {
        vz_rl_decision_t a;
        switch (s_admit(app, items[i].data, items[i].len, &a, &reason)) {
        case S_ADMIT_ERROR:
            s_group_settle(group, i, NULL, 0, VZ_ERR_INVALID, reason);
            break;
        case S_ADMIT_ANSWER: {
            size_t len;
            uint8_t *body = vz_rl_decision_encode(&a, &len);
            s_group_settle(group, i, body, len, NULL, NULL);
            break;
        }
        case S_ADMIT_PENDING:
            app->pending[app->npending - 1].group = group;
            app->pending[app->npending - 1].slot = i;
            break;
        }
    }
    if (group->left == 0) {
        //  Nothing waits for Redis: answer now.
        size_t len;
        uint8_t *body = vz_batch_reply_encode(group->result, group->count, &len);
        int rc = vz_reply_body(reply, body, len);
        free(body);
        s_group_destroy(&group);
        return rc;
    }
    //  The items are settled by s_flush after this worker batch; the last
    //  one sends the reply through this handle.
    group->handle = vz_reply_defer(reply, s_flush);
    return 0;
}

static int s_policies(void *arg, const vz_envelope_t *req, vz_reply_t *reply)
{
    s_app_t *app = arg;
    size_t count = rl_policies_count(app->limits);
    vz_rl_policy_desc_t *descs = calloc(count ? count : 1, sizeof *descs);
    assert(descs);
    for (size_t i = 0; i < count; i++) {
        const rl_policy_t *p = rl_policies_at(app->limits, i);
        vz_rl_policy_desc_t *d = &descs[i];
        //  The policy set's fields have the contract's capacities.
        vz_strlcpy(d->name, p->name, sizeof d->name);
        vz_strlcpy(d->route, p->routes, sizeof d->route);
        vz_strlcpy(d->tier, p->tiers, sizeof d->tier);
        vz_strlcpy(d->by, p->by_text, sizeof d->by);
        vz_strlcpy(d->algorithm, rl_algorithm_name(p->algorithm), sizeof d->algorithm);
        d->limit = p->limit;
        d->window = p->window_s;
        d->burst = p->burst;
        d->shadow = p->shadow;
    }
    size_t len;
    uint8_t *body = vz_rl_policies_encode(rl_policies_shadow(app->limits), descs, count, &len);
    free(descs);
    int rc = vz_reply_body(reply, body, len);
    free(body);
    return rc;
}

static const vz_method_t s_methods[] = {
    {"check", s_check, VZ_METHOD_DEFERRED, 4096},
    {"check_batch", s_check_batch, VZ_METHOD_DEFERRED, VZ_BATCH_MAX * 4096},
    {"policies", s_policies, VZ_METHOD_IDEMPOTENT, 0},
};

//  Probe Redis when it is away (so it comes back without traffic and
//  readiness follows it) or when it has been quiet for a while.
static void s_probe_redis(s_app_t *app)
{
    if (vz_redis_up(app->redis) && vz_clock_mono_ms() - app->last_contact < S_IDLE_PING_MS)
        return;
    int rc = vz_redis_ensure(app->redis);
    if (rc == -EAGAIN)
        return;
    const char *argv[] = {"PING"};
    redisReply *r = rc < 0 ? NULL : vz_redis_command(app->redis, 1, argv, NULL);
    if (r && r->type == REDIS_REPLY_STATUS) {
        app->last_contact = vz_clock_mono_ms();
        s_set_fallback(app, false);
    } else {
        if (rc != -EAGAIN)
            vz_series_inc(app->redis_errors);
        s_set_fallback(app, true);
    }
    if (r)
        freeReplyObject(r);
}

//  Redis probes (for the failure mode) run on the reactor's own timer.
//  broker.services answered: the divisor is the ratelimit workers it has
//  (this replica at least). Unanswered, the last known count stays.
static void s_replicas_done(void *arg, const vz_call_result_t *result)
{
    s_app_t *app = arg;
    app->asking = false;
    if (result->outcome != VZ_CALL_REPLY)
        return;
    vz_broker_service_t list[64];
    size_t n = 0;
    const char *why = NULL;
    if (vz_broker_services_decode(result->body, result->body_len, list, 64, &n, NULL, &why) < 0) {
        vz_warn(NULL, "unable to read broker.services", "reason", why);
        return;
    }
    int workers = 1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, "ratelimit") == 0 && list[i].workers > 1)
            workers = list[i].workers > 1000 ? 1000 : (int)list[i].workers;
    app->replicas = workers;
    vz_series_set(app->replicas_gauge, workers);
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    s_app_t *app = arg;
    s_probe_redis(app);
    int64_t now = vz_clock_mono_ms();
    if (app->broker && !app->asking && now >= app->replicas_due) {
        app->replicas_due = now + S_REPLICAS_MS;
        app->asking = true;
        vz_call_req_t req = {.service = VZ_BROKER_SERVICE,
                             .method = "services",
                             .timeout_ms = S_REPLICAS_MS,
                             .idempotent = true};
        vz_call_start(app->broker, &req, s_replicas_done, app);
    }
    return 0;
}

static void s_app_destroy(s_app_t *app)
{
    vz_redis_destroy(&app->redis);
    vz_redis_script_destroy(&app->token_bucket);
    vz_redis_script_destroy(&app->sliding_window);
    zhashx_destroy(&app->local);
    rl_policies_destroy(&app->limits);
    free(app->series);
    free(app->pending);
    free(app->calls);
}

static void s_free_tat(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

static int s_app_init(s_app_t *app, vz_daemon_t *daemon, const rl_config_t *config)
{
    app->daemon = daemon;
    app->config = config;
    app->metrics = vz_daemon_metrics(daemon);
    app->fail_closed = config->failure_mode == RL_FAIL_CLOSED;
    char err[512];
    rl_policies_t *limits = rl_policies_load(config->policy_file, err, sizeof err);
    if (!limits) {
        vz_error(NULL, "unable to load policy file", "file", config->policy_file, "reason", err,
                 "setting", "VZ_RATELIMIT_POLICY");
        return VZ_EXIT_PERMANENT;
    }
    app->redis = vz_redis_new(vz_daemon_config(daemon)->redis_url, config->redis_timeout_ms,
                              config->redis_timeout_ms, config->redis_retry_ms);
    if (!app->redis) {
        char shown[VZ_PATH_MAX]; //  never the password
        vz_redis_redact(vz_daemon_config(daemon)->redis_url, shown, sizeof shown);
        rl_policies_destroy(&limits);
        vz_error(NULL, "unable to load configuration", "reason",
                 "VZ_REDIS_URL: expected redis://host:port[/db]", "value", shown);
        return VZ_EXIT_PERMANENT;
    }
    app->redis_seconds = vz_metrics_histogram(
        app->metrics, "vz_ratelimit_redis_duration_seconds",
        "Redis round trip of one pipelined batch of rate-limit decisions", NULL, s_redis_buckets,
        sizeof s_redis_buckets / sizeof s_redis_buckets[0]);
    app->fallback_gauge =
        vz_metrics_gauge(app->metrics, "vz_ratelimit_fallback_active",
                         "1 while Redis is away and the failure mode applies", NULL);
    app->redis_errors = vz_metrics_counter(app->metrics, "vz_ratelimit_redis_errors_total",
                                           "Redis calls that failed or timed out", NULL);
    const char *reload_help = "policy file reloads by result";
    app->reload_ok =
        vz_metrics_counter(app->metrics, "vz_ratelimit_reloads_total", reload_help, "result=ok");
    app->reload_failed = vz_metrics_counter(app->metrics, "vz_ratelimit_reloads_total", reload_help,
                                            "result=failed");
    app->replicas = config->replicas > 0 ? config->replicas : 1;
    app->replicas_gauge =
        vz_metrics_gauge(app->metrics, "vz_ratelimit_replicas",
                         "Replicas the fail-open limits are divided by", NULL);
    vz_series_set(app->replicas_gauge, app->replicas);
    s_series_for(app, "none", &app->none_series);
    s_install(app, &limits);
    app->token_bucket = vz_redis_script_new(rl_token_bucket_lua);
    app->sliding_window = vz_redis_script_new(rl_sliding_window_lua);
    app->local = zhashx_new();
    zhashx_set_destructor(app->local, s_free_tat);
    //  Not up until the first probe succeeds: a Redis missing at start
    //  keeps the service alive and not ready instead of crash-looping.
    app->fallback = true;
    vz_series_set(app->fallback_gauge, 1);
    return -1;
}

int rl_run(vz_daemon_t *daemon, const rl_config_t *config)
{
    assert(daemon && config);
    s_app_t app = {0};
    int code = s_app_init(&app, daemon, config);
    if (code >= 0) {
        s_app_destroy(&app);
        return code;
    }
    zloop_t *loop = zloop_new();
    assert(loop);
    if (zloop_timer(loop, S_TICK_MS, 0, s_on_tick, &app) < 0) {
        vz_error(NULL, "unable to start the reactor timer");
        code = VZ_EXIT_TEMPORARY;
    } else {
        s_probe_redis(&app);
        //  Readiness is both links (needs_redis in main.c): a replica whose
        //  decisions are only local should not count as a ready endpoint,
        //  yet it keeps answering.
        vz_daemon_on_reload(daemon, s_reload, &app);
        //  Replicas 0: the divisor follows the broker's count of workers.
        if (config->replicas == 0 && !(app.broker = vz_call_new_daemon(daemon, loop)))
            vz_warn(NULL, "unable to ask the broker for replicas: fail-open divides by 1");
        //  Checks are decided a batch per Redis round trip, so the more the
        //  broker may queue here, the fewer round trips (VZ_WORKER_CREDIT).
        code = vz_daemon_serve(daemon, loop, s_methods, sizeof s_methods / sizeof s_methods[0],
                               RATELIMIT_CREDIT, &app);
        vz_call_destroy(&app.broker);
    }
    zloop_destroy(&loop);
    s_app_destroy(&app);
    return code;
}
