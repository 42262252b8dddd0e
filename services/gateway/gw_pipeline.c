/*  gw_pipeline - the stages an upstream request passes, in order
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gw_pipeline.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "gw_deprecation.h"
#include "gw_render.h"

#define GW_LEASES_MAX 4096 //  callers with a rate-limit lease remembered at most

//  The chain (gw_pipeline.h has each stage's contract). A request enters
//  at the first stage and moves only forward; a stage may run again only
//  after a wait it queued itself (GW_AGAIN).
static const struct {
    const char *name; //  for reading and debugging
    gw_stage_fn *run; //  the entry
} s_stages[] = {
    {"authenticate", gw_auth_run},     //  gw_auth.c: who calls, with which scopes
    {"limit", gw_limit_run},           //  gw_limit.c: lease, ratelimit.check, failure policy
    {"versions", gw_versions_run},     //  gw_versions.c: callers of deprecated routes, sunset
    {"cache", gw_cache_run},           //  gw_cache.c: auth.jwks from the cached key set
    {"circuit-break", gw_circuit_run}, //  gw_circuit.c: the service's breaker
    {"forward", gw_forward_run},       //  gw_forward.c: the call; its completion exits
};
#define STAGE_COUNT (sizeof s_stages / sizeof s_stages[0])

//  Run stages from req->stage on until one waits or answers. verdict is
//  what the current stage said (or would have: a wait's callback).
static void s_run(gw_req_t *req, gw_verdict_t verdict)
{
    while (verdict == GW_NEXT || verdict == GW_AGAIN) {
        if (verdict == GW_NEXT)
            req->stage++;
        assert(req->stage < STAGE_COUNT && "the last stage never says GW_NEXT");
        verdict = s_stages[req->stage].run(req);
    }
    if (verdict == GW_WAIT)
        return; //  someone else holds req now: do not touch it
    //  The one exit: the front renders and answers on its next call.
    req->state = REQ_DONE;
    MHD_resume_connection(req->conn);
}

void gw_pipeline_start(gw_req_t *req)
{
    req->stage = 0;
    s_run(req, GW_AGAIN);
}

void gw_pipeline_resume(gw_req_t *req, gw_verdict_t verdict)
{
    assert(verdict != GW_WAIT);
    s_run(req, verdict);
}

bool gw_pipeline_call(gw_req_t *req, const char *service, const char *method, size_t body_len,
                      int timeout_ms, bool idempotent, gw_upcall_done_fn *done)
{
    gw_upcall_t *pre = &req->pre;
    free(pre->reply);
    gw_upcall_reset(pre);
    pre->kind = GW_UPCALL_FORWARD;
    vz_strlcpy(pre->service, service, sizeof pre->service);
    vz_strlcpy(pre->method, method, sizeof pre->method);
    vz_strlcpy(pre->id, req->request_id, sizeof pre->id);
    vz_strlcpy(pre->traceparent, req->traceparent, sizeof pre->traceparent);
    pre->timeout_ms = timeout_ms;
    pre->idempotent = idempotent;
    pre->body = req->pre_body;
    pre->body_len = body_len;
    pre->done = done;
    pre->arg = req;
    return gw_upstream_submit(req->pipe->upstream, pre) == 0;
}

//  A counter series labelled k1=v1,k2=v2, through a once-filled slot so
//  the labels are rendered and looked up only on first use. Two threads
//  racing on an empty slot both get the same series from vz_metrics_counter.
vz_series_t *gw_pipeline_counter(gw_pipe_t *pipe, _Atomic(vz_series_t *) *slot, const char *name,
                                 const char *help, const char *k1, const char *v1, const char *k2,
                                 const char *v2)
{
    vz_series_t *series = atomic_load_explicit(slot, memory_order_acquire);
    if (!series) {
        char labels[96];
        snprintf(labels, sizeof labels, "%s=%s,%s=%s", k1, v1, k2, v2);
        series = vz_metrics_counter(pipe->metrics, name, help, labels);
        atomic_store_explicit(slot, series, memory_order_release);
    }
    return series;
}

gw_pipe_t *gw_pipeline_new(const gw_gateway_config_t *config, gw_routes_t *routes,
                           gw_upstream_t *upstream, gw_edge_t *edge, vz_metrics_t *metrics)
{
    assert(config && upstream && edge && metrics);
    gw_pipe_t *self = calloc(1, sizeof *self);
    assert(self);
    self->metrics = metrics;
    self->upstream = upstream;
    self->edge = edge;
    self->auth_timeout_ms = config->auth_timeout_ms;
    self->auth_fails = gw_buckets_new(config->auth_failures);
    self->leases = gw_leases_new(config->rl_lease, config->rl_lease_ms, GW_LEASES_MAX);
    self->buckets = gw_buckets_new(config->rl_local_limit);
    self->rl_timeout_ms = config->rl_timeout_ms;
    self->rl_fail_open = config->rl_fail_open;
    self->deprecations = gw_deprecations_new(
        config->deprecation_clients > 0 ? (size_t)config->deprecation_clients : 100);
    self->breakers = gw_breakers_new(&config->breaker, metrics);
    self->timeout_ms = config->timeout_ms;
    const char *needed[GW_ROUTES_MAX];
    size_t count = gw_render_needed(routes, needed, GW_ROUTES_MAX);
    for (size_t i = 0; i < count; i++)
        gw_breakers_get(self->breakers, needed[i]);
    return self;
}

void gw_pipeline_destroy(gw_pipe_t **self_p)
{
    assert(self_p);
    gw_pipe_t *self = *self_p;
    if (!self)
        return;
    gw_breakers_destroy(&self->breakers);
    gw_deprecations_destroy(&self->deprecations);
    gw_leases_destroy(&self->leases);
    gw_buckets_destroy(&self->buckets);
    gw_buckets_destroy(&self->auth_fails);
    free(self);
    *self_p = NULL;
}
