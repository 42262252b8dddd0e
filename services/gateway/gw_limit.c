/*  gw_limit - the limit stage: may this caller make one more request now
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Every request on a route with a rate_class is decided by a token the
 *  caller leased earlier (lease.h), or by its own ratelimit.check sent
 *  through the reactor (batched there with the others of one pass). When
 *  the limiter does not answer usefully, the failure policy decides: a
 *  local per-replica bucket per caller (open) or 503 (closed).
 */
#include "gw_pipeline.h"

#include <assert.h>
#include <czmq.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_render.h"
#include "vz_authctx.h"
#include "vz_clock.h"

#define LOCAL_MAX 100000 //  fail-open buckets kept at most

typedef struct {
    double tokens;   //  left
    int64_t last_ms; //  last refill
} s_bucket_t;

struct gw_buckets_t {
    pthread_mutex_t lock; //  guards buckets
    zhashx_t *buckets;    //  "tier|caller" -> s_bucket_t
    int local_limit;      //  anonymous requests a minute (free x10, premium x100)
};

gw_buckets_t *gw_buckets_new(int local_limit)
{
    gw_buckets_t *self = calloc(1, sizeof *self);
    assert(self);
    pthread_mutex_init(&self->lock, NULL);
    self->buckets = zhashx_new();
    zhashx_set_destructor(self->buckets, (zhashx_destructor_fn *)zstr_free);
    self->local_limit = local_limit;
    return self;
}

void gw_buckets_destroy(gw_buckets_t **self_p)
{
    assert(self_p);
    gw_buckets_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->buckets);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

//  The bucket of caller in tier, refilled to now, with the lock held
//  (the caller unlocks); *limit and *rate (tokens per ms) its policy.
static s_bucket_t *s_bucket_locked(gw_buckets_t *self, const char *caller, const char *tier,
                                   double *limit, double *rate)
{
    assert(self && caller && tier);
    *limit = self->local_limit;
    if (strcmp(tier, VZ_AUTHCTX_TIER_PREMIUM) == 0)
        *limit *= 100;
    else if (strcmp(tier, VZ_AUTHCTX_TIER_FREE) == 0)
        *limit *= 10;
    *rate = *limit / 60000.0;
    char key[VZ_JWT_STR_MAX + GW_EDGE_TIER_MAX + 2];
    snprintf(key, sizeof key, "%s|%s", tier, caller);
    int64_t now = vz_clock_mono_ms();
    pthread_mutex_lock(&self->lock);
    s_bucket_t *b = zhashx_lookup(self->buckets, key);
    if (!b) {
        if (zhashx_size(self->buckets) >= LOCAL_MAX)
            zhashx_purge(self->buckets); //  bounded; a purge only forgives
        b = calloc(1, sizeof *b);
        assert(b);
        b->tokens = *limit;
        b->last_ms = now;
        zhashx_insert(self->buckets, key, b);
    }
    b->tokens += (double)(now - b->last_ms) * *rate;
    if (b->tokens > *limit)
        b->tokens = *limit;
    b->last_ms = now;
    return b;
}

//  Seconds until a bucket of tokens at rate holds one again (at least 1).
static uint64_t s_wait_s(double tokens, double rate)
{
    uint64_t s = (uint64_t)ceil((1.0 - tokens) / rate / 1000.0);
    return s ? s : 1;
}

//  Fail-open: one request against the local bucket of caller (ip, sub or
//  key id) in tier; fills out like the limiter would (policy "local").
static void s_local_take(gw_buckets_t *self, const char *caller, const char *tier,
                         vz_rl_decision_t *out)
{
    assert(out);
    memset(out, 0, sizeof *out);
    double limit, rate;
    s_bucket_t *b = s_bucket_locked(self, caller, tier, &limit, &rate);
    out->allowed = b->tokens >= 1.0;
    if (out->allowed)
        b->tokens -= 1.0;
    double tokens = b->tokens;
    pthread_mutex_unlock(&self->lock);
    out->limit = (uint64_t)limit;
    out->remaining = (uint64_t)tokens;
    out->window = 60;
    out->reset = (uint64_t)ceil((limit - tokens) / rate / 1000.0);
    out->retry_after = out->allowed ? 0 : s_wait_s(tokens, rate);
    vz_strlcpy(out->policy, "local", sizeof out->policy);
}

int gw_buckets_empty(gw_buckets_t *self, const char *caller)
{
    double limit, rate;
    s_bucket_t *b = s_bucket_locked(self, caller, VZ_AUTHCTX_TIER_ANONYMOUS, &limit, &rate);
    double tokens = b->tokens;
    pthread_mutex_unlock(&self->lock);
    return tokens >= 1.0 ? 0 : (int)s_wait_s(tokens, rate);
}

void gw_buckets_charge(gw_buckets_t *self, const char *caller)
{
    double limit, rate;
    s_bucket_t *b = s_bucket_locked(self, caller, VZ_AUTHCTX_TIER_ANONYMOUS, &limit, &rate);
    b->tokens = b->tokens >= 1.0 ? b->tokens - 1.0 : 0.0;
    pthread_mutex_unlock(&self->lock);
}

static void s_count(gw_pipe_t *pipe, const char *name, const char *help, const char *labels)
{
    vz_series_inc(vz_metrics_counter(pipe->metrics, name, help, labels));
}

//  A decision from the limiter or the local bucket: count, keep the
//  headers, 429 when denied. false = answered.
static bool s_rate_decide(gw_req_t *req, const vz_rl_decision_t *rl, const char *source)
{
    req->rl = *rl;
    req->rl_have = true;
    int from = strcmp(source, "limiter") == 0 ? 1 : strcmp(source, "lease") == 0 ? 2 : 0;
    assert(from || strcmp(source, "local") == 0);
    vz_series_inc(gw_pipeline_counter(req->pipe, &req->pipe->rate_series[rl->allowed][from],
                                      "vz_gateway_ratelimit_total",
                                      "Rate-limit decisions, by decision and source", "decision",
                                      rl->allowed ? "allowed" : "denied", "source", source));
    if (rl->allowed)
        return true;
    gw_render_error(req, 429, VZ_AUTHCTX_ERR_TOO_MANY, "rate limit exceeded; retry later");
    req->retry_after = rl->retry_after > 0 ? (int)rl->retry_after : 1;
    return false;
}

//  The limiter did not answer in time (or not usefully): the configured
//  failure policy decides.
static bool s_rate_fallback(gw_req_t *req, const char *reason)
{
    gw_pipe_t *pipe = req->pipe;
    char labels[64];
    snprintf(labels, sizeof labels, "reason=%s,policy=%s", reason,
             pipe->rl_fail_open ? "open" : "closed");
    s_count(pipe, "vz_gateway_ratelimit_fallback_total",
            "Rate-limit checks the limiter did not answer in time, by reason and policy", labels);
    if (!pipe->rl_fail_open) {
        s_count(pipe, "vz_gateway_ratelimit_total", "Rate-limit decisions, by decision and source",
                "decision=denied,source=closed");
        gw_render_error(req, 503, "rate_limit_unavailable",
                        "rate limiter unavailable; try again later");
        req->retry_after = 1;
        return false;
    }
    vz_rl_decision_t rl;
    //  Per subject, as the limiter's tiers: twenty keys of one user share.
    const char *caller = req->id.sub[0] ? req->id.sub : req->client_ip;
    s_local_take(pipe->buckets, caller, req->authed ? req->id.tier : VZ_AUTHCTX_TIER_ANONYMOUS,
                 &rl);
    return s_rate_decide(req, &rl, "local");
}

//  The caller a lease belongs to: every descriptor the check sends.
static void s_lease_key(const gw_req_t *req, char *out, size_t n)
{
    snprintf(out, n, "%s|%s|%s|%s|%s", req->client_ip, req->authed ? req->id.sub : "",
             req->authed ? req->id.kid : "", req->authed ? req->id.tier : VZ_AUTHCTX_TIER_ANONYMOUS,
             req->match.route->name);
}

static bool s_rate_check(gw_req_t *req, uint64_t cost);

#define S_FITS(field, check_field)                                                                 \
    _Static_assert(sizeof(field) <= sizeof(((vz_rl_check_t *)0)->check_field),                     \
                   #field " fits the rate-limit check")
S_FITS(((gw_req_t *)0)->client_ip, ip);
S_FITS(((gw_req_t *)0)->id.sub, sub);
S_FITS(((gw_req_t *)0)->id.kid, key);
S_FITS(((gw_req_t *)0)->id.tier, tier);
S_FITS(((gw_route_t *)0)->name, route);

static void s_on_rate(gw_upcall_t *pre)
{
    gw_req_t *req = pre->arg;
    gw_pipe_t *pipe = req->pipe;
    vz_rl_decision_t rl;
    bool ok = pre->result == GW_UPCALL_REPLY &&
              vz_rl_decision_decode(&rl, pre->reply, pre->reply_len, NULL) == 0;
    const char *reason =
        pre->result == GW_UPCALL_REPLY ? "malformed" : gw_render_code_label(pre->error_code);
    free(pre->reply);
    pre->reply = NULL;
    if (ok && !rl.allowed && req->rl_cost > 1) {
        //  Near the limit: the tokens left go one at a time.
        gw_leases_shrink(pipe->leases, req->rl_key);
        if (s_rate_check(req, 1))
            return;
        ok = false;
        reason = VZ_ERR_UNAVAILABLE;
    } else if (ok && rl.allowed && pipe->leases)
        //  Even a check of one token starts the caller's record: the next
        //  request within a lease lifetime asks for more.
        gw_leases_grant(pipe->leases, req->rl_key, req->rl_cost, &rl, vz_clock_mono_ms());
    else if (!ok && req->rl_cost > 1)
        gw_leases_abandon(pipe->leases, req->rl_key);
    bool go = ok ? s_rate_decide(req, &rl, "limiter") : s_rate_fallback(req, reason);
    gw_pipeline_resume(req, go ? GW_NEXT : GW_DONE);
}

//  Send ratelimit.check for req asking cost tokens; false when it could
//  not be submitted.
static bool s_rate_check(gw_req_t *req, uint64_t cost)
{
    size_t len = 0;
    vz_rl_check_t check = {.cost = cost};
    //  Every descriptor fits its field (static asserts above): nothing is cut.
    vz_strlcpy(check.ip, req->client_ip, sizeof check.ip);
    vz_strlcpy(check.sub, req->authed ? req->id.sub : "", sizeof check.sub);
    vz_strlcpy(check.key, req->authed ? req->id.kid : "", sizeof check.key);
    vz_strlcpy(check.tier, req->authed ? req->id.tier : VZ_AUTHCTX_TIER_ANONYMOUS,
               sizeof check.tier);
    vz_strlcpy(check.route, req->match.route->name, sizeof check.route);
    free(req->pre_body);
    req->rl_cost = cost;
    req->pre_body = vz_rl_check_encode(&check, &len);
    //  Not idempotent: a check consumes, so it is never retried.
    return gw_pipeline_call(req, VZ_RL_SERVICE, "check", len, req->pipe->rl_timeout_ms, false,
                            s_on_rate);
}

//  The stage: GW_NEXT = allowed, GW_WAIT = the limiter decides (s_on_rate
//  continues), GW_DONE = answered (429, or 503 when closed).
gw_verdict_t gw_limit_run(gw_req_t *req)
{
    gw_pipe_t *pipe = req->pipe;
    const gw_route_t *route = req->match.route;
    if (!route->rate_class[0])
        return GW_NEXT;
    uint64_t cost = 1;
    if (pipe->leases) {
        //  A token leased earlier for this caller: no round trip.
        s_lease_key(req, req->rl_key, sizeof req->rl_key);
        vz_rl_decision_t rl;
        if (gw_leases_take(pipe->leases, req->rl_key, vz_clock_mono_ms(), &rl, &cost))
            return s_rate_decide(req, &rl, "lease") ? GW_NEXT : GW_DONE;
    }
    if (s_rate_check(req, cost))
        return GW_WAIT;
    if (cost > 1)
        gw_leases_abandon(pipe->leases, req->rl_key);
    return s_rate_fallback(req, VZ_ERR_UNAVAILABLE) ? GW_NEXT : GW_DONE;
}
