/*  gw_forward - the forward stage: the request's own call to its service
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The envelope gets the route's service, method, deadline and
 *  idempotency, the request's id, trace context and body (borrowed), and
 *  the ctx services see (contract B: the verified identity, never the
 *  credential; path params; forwarded headers). The reactor ends the call
 *  (reply, error or expiry) with s_on_call_done, which records the
 *  breaker's outcome and takes the pipeline's exit; the front renders.
 */
#include "gw_pipeline.h"

#include <stdio.h>

#include "gw_render.h"

#define HEALTH_TIMEOUT 1000 //  ms for broker.services behind /health

//  Reactor thread: the call is over. Rendering waits for the HTTP thread,
//  so the reactor only records the outcome, flips the state and resumes.
static void s_on_call_done(vz_upcall_t *call)
{
    gw_req_t *req = call->arg;
    if (req->breaker)
        vz_breaker_record(req->breaker,
                          call->result == VZ_UPCALL_ERROR &&
                              vz_breaker_is_failure(call->error_code),
                          vz_now_ms());
    req->upstream_done = true;
    gw_pipeline_resume(req, GW_DONE);
}

static void s_ctx_add(gw_req_t *req, const char *key, const char *value)
{
    vz_upcall_t *call = &req->call;
    if (call->ctx_count == VZ_CTX_MAX)
        return; //  routes.c bounds params and headers, so this cannot be reached
    vz_ctx_entry_t *e = &req->ctx[call->ctx_count++];
    vz_strlcpy(e->key, key, sizeof e->key);
    vz_strlcpy(e->value, value, sizeof e->value);
}

//  The envelope ctx: auth context (contract B), content type, path
//  params, forwarded headers (webhook signatures).
static void s_build_ctx(gw_req_t *req)
{
    vz_upcall_t *call = &req->call;
    const vz_route_t *route = req->match.route;
    call->ctx = req->ctx;
    if (req->authed) {
        //  The verified identity only; the credential itself stays here.
        s_ctx_add(req, "auth", req->id.auth);
        s_ctx_add(req, "sub", req->id.sub);
        s_ctx_add(req, "scope", req->id.scope);
        s_ctx_add(req, "tier", req->id.tier);
        if (req->id.kid[0])
            s_ctx_add(req, "kid", req->id.kid);
    } else {
        s_ctx_add(req, "auth", "none");
        s_ctx_add(req, "tier", "anonymous");
    }
    s_ctx_add(req, "client_ip", req->client_ip);
    if (req->content_type[0])
        s_ctx_add(req, "content_type", req->content_type);
    char key[VZ_CTX_KEY_MAX * 2]; //  routes.c keeps prefix + name within VZ_CTX_KEY_MAX
    for (size_t i = 0; i < req->match.param_count; i++) {
        snprintf(key, sizeof key, "path.%s", req->match.param_name[i]);
        s_ctx_add(req, key, req->match.param_value[i]);
    }
    for (size_t i = 0; i < route->header_count; i++) {
        const char *value =
            MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, route->headers[i]);
        if (!value)
            continue;
        snprintf(key, sizeof key, "header.%s", route->headers[i]);
        s_ctx_add(req, key, value);
    }
}

//  Submit the prepared call; the connection is already suspended. false
//  = answered: the upstream no longer takes calls (shutdown).
static bool s_submit(gw_req_t *req)
{
    vz_upcall_t *call = &req->call;
    vz_strlcpy(call->id, req->request_id, sizeof call->id);
    vz_strlcpy(call->traceparent, req->traceparent, sizeof call->traceparent);
    call->body = req->body;
    call->body_len = req->body_len;
    call->done = s_on_call_done;
    call->arg = req;
    if (vz_upstream_submit(req->pipe->upstream, call) < 0) {
        if (req->breaker)
            vz_breaker_record(req->breaker, false, vz_now_ms()); //  not the upstream's fault
        req->breaker = NULL;
        gw_render_error(req, 503, VZ_ERR_UNAVAILABLE, "gateway is shutting down");
        req->retry_after = 1;
        return false;
    }
    return true;
}

gw_verdict_t gw_forward_run(gw_req_t *req)
{
    const vz_route_t *route = req->match.route;
    vz_upcall_t *call = &req->call;
    vz_upcall_reset(call);
    call->kind = VZ_UPCALL_FORWARD;
    vz_strlcpy(call->service, route->service, sizeof call->service);
    vz_strlcpy(call->method, route->call, sizeof call->method);
    call->timeout_ms = route->timeout_ms > 0 ? route->timeout_ms : req->pipe->timeout_ms;
    call->idempotent = route->retry;
    call->alone = !route->bundle;
    s_build_ctx(req);
    return s_submit(req) ? GW_WAIT : GW_DONE;
}

void gw_forward_health(gw_req_t *req)
{
    vz_upcall_t *call = &req->call;
    vz_upcall_reset(call);
    call->kind = VZ_UPCALL_HEALTH;
    call->timeout_ms = HEALTH_TIMEOUT;
    call->idempotent = true;
    if (!s_submit(req))
        gw_pipeline_resume(req, GW_DONE);
}
