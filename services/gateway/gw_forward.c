/*  gw_forward - the forward stage: the request's own call to its service
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The envelope gets the route's service, method, deadline and
 *  idempotency, the request's id, trace context and body (borrowed), and
 *  the ctx services see (contract B: the verified identity, never the
 *  credential; the route's target version; path params; forwarded
 *  headers; the query parameters the route names). The reactor ends the
 *  call (reply, error or expiry) with s_on_call_done, which records the
 *  breaker's outcome and takes the pipeline's exit; the front renders.
 */
#include "gw_pipeline.h"

#include <stdio.h>
#include <string.h>

#include "gw_render.h"
#include "vz_authctx.h"
#include "vz_clock.h"

//  Reactor thread: the call is over. Rendering waits for the HTTP thread,
//  so the reactor only records the outcome, flips the state and resumes.
static void s_on_call_done(gw_upcall_t *call)
{
    gw_req_t *req = call->arg;
    if (req->breaker)
        gw_breaker_record(req->breaker,
                          call->result == GW_UPCALL_ERROR &&
                              gw_breaker_is_failure(call->error_code),
                          vz_clock_mono_ms());
    req->upstream_done = true;
    gw_pipeline_resume(req, GW_DONE);
}

//  The envelope ctx: auth context (contract B), content type, path
//  params, forwarded headers (webhook signatures). Nothing is cut: NULL,
//  or what did not fit (the request is then refused, never forwarded).
static const char *s_build_ctx(gw_req_t *req)
{
    gw_upcall_t *call = &req->call;
    const gw_route_t *route = req->match.route;
    call->ctx = req->ctx;
    //  The verified identity only; the credential itself stays here.
    vz_authctx_t who = {
        .auth = VZ_AUTHCTX_BY_NONE, .tier = VZ_AUTHCTX_TIER_ANONYMOUS, .client_ip = req->client_ip};
    if (req->authed) {
        who.auth = req->id.auth;
        who.sub = req->id.sub;
        who.scope = req->id.scope;
        who.tier = req->id.tier;
        who.kid = req->id.kid[0] ? req->id.kid : NULL;
    }
    if (vz_authctx_write(req->ctx, &call->ctx_count, &who) < 0)
        return "the credential's identity";
    if (route->version[0] && vz_envelope_ctx_put(req->ctx, &call->ctx_count,
                                                 VZ_AUTHCTX_ROUTE_VERSION, route->version) < 0)
        return "the route's version";
    if (req->content_type[0] && vz_envelope_ctx_put(req->ctx, &call->ctx_count,
                                                    VZ_AUTHCTX_CONTENT_TYPE, req->content_type) < 0)
        return "Content-Type";
    for (size_t i = 0; i < req->match.param_count; i++)
        if (vz_authctx_set_param(req->ctx, &call->ctx_count, req->match.param_name[i],
                                 req->match.param_value[i]) < 0)
            return "a path parameter";
    for (size_t i = 0; i < route->header_count; i++) {
        const char *value =
            MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, route->headers[i]);
        if (value &&
            vz_authctx_set_header(req->ctx, &call->ctx_count, route->headers[i], value) < 0)
            return route->headers[i];
    }
    return NULL;
}

//  The walk over the request's query arguments (decoded by libmicrohttpd).
typedef struct {
    gw_req_t *req;   //  the request, its route names the parameters
    const char *why; //  the refusal, NULL while all is well
    unsigned seen;   //  bit i: the route's query[i] was met
} s_query_walk_t;

static enum MHD_Result s_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    s_query_walk_t *walk = cls;
    const gw_route_t *route = walk->req->match.route;
    value = value ? value : "";
    for (size_t i = 0; key && i < route->query_count; i++) {
        if (strcmp(key, route->query[i]) != 0)
            continue;
        //  Twice would leave the service guessing which one counts;
        //  control bytes could forge lines in whatever logs the value.
        bool control = false;
        for (const char *c = value; *c; c++)
            control = control || (unsigned char)*c < 0x20 || *c == 0x7f;
        if (walk->seen & (1u << i))
            walk->why = "a query parameter is given twice";
        else if (control)
            walk->why = "a query parameter holds control characters";
        else if (vz_authctx_set_query(walk->req->ctx, &walk->req->call.ctx_count, key, value) < 0)
            walk->why = "a query parameter does not fit the request context";
        walk->seen |= 1u << i;
        break;
    }
    return walk->why ? MHD_NO : MHD_YES;
}

//  The route's query parameters as ctx "query.<name>"; others are ignored.
//  NULL, or why the request is refused (never forwarded cut or ambiguous).
static const char *s_build_query(gw_req_t *req)
{
    s_query_walk_t walk = {.req = req};
    if (req->match.route->query_count)
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, s_query_arg, &walk);
    return walk.why;
}

//  Submit the prepared call; the connection is already suspended. false
//  = answered: the upstream no longer takes calls (shutdown).
static bool s_submit(gw_req_t *req)
{
    gw_upcall_t *call = &req->call;
    vz_strlcpy(call->id, req->request_id, sizeof call->id);
    vz_strlcpy(call->traceparent, req->traceparent, sizeof call->traceparent);
    call->body = req->body;
    call->body_len = req->body_len;
    call->done = s_on_call_done;
    call->arg = req;
    if (gw_upstream_submit(req->pipe->upstream, call) < 0) {
        if (req->breaker)
            gw_breaker_record(req->breaker, false, vz_clock_mono_ms()); //  not the upstream's fault
        req->breaker = NULL;
        gw_render_error(req, 503, VZ_ERR_UNAVAILABLE, "gateway is shutting down");
        req->retry_after = 1;
        return false;
    }
    return true;
}

gw_verdict_t gw_forward_run(gw_req_t *req)
{
    const gw_route_t *route = req->match.route;
    gw_upcall_t *call = &req->call;
    gw_upcall_reset(call);
    call->kind = GW_UPCALL_FORWARD;
    vz_strlcpy(call->service, route->service, sizeof call->service);
    vz_strlcpy(call->method, route->call, sizeof call->method);
    call->timeout_ms = route->timeout_ms > 0 ? route->timeout_ms : req->pipe->timeout_ms;
    call->idempotent = route->retry;
    //  A versioned call travels alone: the broker reads route.version on the
    //  envelope it routes, and a bundle's outer envelope carries no ctx.
    call->alone = !route->bundle || route->version[0];
    const char *unfit = s_build_ctx(req);
    const char *refused = unfit ? NULL : s_build_query(req);
    if (unfit || refused) {
        //  Cut, a scope list could grant what it never said: refuse instead.
        if (req->breaker)
            gw_breaker_record(req->breaker, false, vz_clock_mono_ms()); //  not the upstream's fault
        req->breaker = NULL;
        char message[96];
        if (unfit)
            snprintf(message, sizeof message, "%.48s does not fit the request context", unfit);
        else
            vz_strlcpy(message, refused, sizeof message);
        gw_render_error(req, 400, VZ_ERR_INVALID, message);
        return GW_DONE;
    }
    return s_submit(req) ? GW_WAIT : GW_DONE;
}
