/*  gw_pipeline - the stages an upstream request passes, in order
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The HTTP front (gateway.c) parses the request, runs the central checks
 *  on the headers and the body, suspends the connection and hands the
 *  request to gw_pipeline_start. From there it moves forward through one
 *  table (s_stages in gw_pipeline.c) and leaves at one exit, which resumes
 *  the connection; the front then renders and answers.
 *
 *    stage           module         entry             may wait for
 *    authenticate    gw_auth.c      gw_auth_run       JWKS fetch, auth.api_key_verify
 *                    (first: an IP with too many failed credentials gets 429 unverified)
 *    limit           gw_limit.c     gw_limit_run      ratelimit.check
 *    versions        gw_versions.c  gw_versions_run   -
 *    cache           gw_cache.c     gw_cache_run      -
 *    circuit-break   gw_circuit.c   gw_circuit_run    -
 *    forward         gw_forward.c   gw_forward_run    the call itself (always)
 *    -- exit: state REQ_DONE, MHD_resume_connection --
 *    render          gw_render.c    gw_render_run     - (HTTP thread, called by the front)
 *
 *  Threads: a stage runs on the HTTP thread that suspended the connection,
 *  or, after something it waited for, on the reactor thread (the callback
 *  that ends the wait continues the chain with gw_pipeline_resume). No
 *  stage blocks or touches a socket, and none adds a thread hop: every
 *  wait is a gw_upcall_t or a JWKS waiter that the reactor ends, as the
 *  request path had before it was cut into stages.
 *
 *  Reads and writes in gw_req_t (gw_request.h):
 *    authenticate  reads match.route (auth, scopes), cred_kind, cred;
 *                  writes id, authed, waiter, jwks_waited, pre, pre_body;
 *                  reads client_ip; answers 401 (+ WWW-Authenticate), 403, 429, 503
 *    limit         reads match.route (rate_class, name), client_ip, id, authed;
 *                  writes rl, rl_have, rl_cost, rl_key, pre, pre_body; answers 429, 503
 *    versions      reads match.route (deprecation fields, service), authed, id, client_ip;
 *                  records the caller; answers 410 route_sunset after the sunset, and
 *                  200 with the report on the gateway's own route (service "gateway")
 *    cache         reads match.route (service, call); answers 200 with the cached JWKS
 *    circuit-break reads match.route (service); writes breaker; answers 503 circuit_open
 *    forward       reads match (route, params), id, authed, client_ip, content_type,
 *                  the forwarded headers, body, request_id, traceparent; writes call,
 *                  ctx; answers 503 only when the upstream is closed (shutdown); its
 *                  completion (reactor) records the outcome on breaker and sets
 *                  upstream_done
 *    render        reads call, table (/health), match.route, content_type; writes
 *                  status, resp, resp_type, location, retry_after, www_authenticate
 *
 *  A stage answers by filling the response with gw_render_error or
 *  gw_render_body and returning GW_DONE.
 */
#ifndef GW_PIPELINE_H
#define GW_PIPELINE_H

#include "gateway.h"
#include "gw_request.h"

//  What a stage says when it returns (and what a wait's callback passes
//  to gw_pipeline_resume).
typedef enum {
    GW_NEXT,  //  this stage let the request through: run the next one
    GW_AGAIN, //  run this stage again (after a wait it queued)
    GW_WAIT,  //  handed to the reactor: do not touch the request any more
    GW_DONE,  //  leave the pipeline: the response (or the call to render) is in req
} gw_verdict_t;

typedef gw_verdict_t(gw_stage_fn)(gw_req_t *req);

//  The stage entries, in chain order.
gw_stage_fn gw_auth_run;
gw_stage_fn gw_limit_run;
gw_stage_fn gw_versions_run;
gw_stage_fn gw_cache_run;
gw_stage_fn gw_circuit_run;
gw_stage_fn gw_forward_run;

//  The stages' shared state from the gateway's configuration; the breaker
//  of every non-optional service of routes exists from the start (so its
//  state is on /metrics before the first failure). upstream, edge and
//  metrics are borrowed.
gw_pipe_t *gw_pipeline_new(const gw_gateway_config_t *config, gw_routes_t *routes,
                           gw_upstream_t *upstream, gw_edge_t *edge, vz_metrics_t *metrics);
void gw_pipeline_destroy(gw_pipe_t **self_p);

//  HTTP thread, connection suspended (state REQ_WAITING): run the chain
//  from its first stage.
void gw_pipeline_start(gw_req_t *req);

//  Any thread, after a wait: continue req's chain as the waiting stage
//  would have returned verdict (never GW_WAIT). GW_DONE is the one exit.
void gw_pipeline_resume(gw_req_t *req, gw_verdict_t verdict);

//  A stage's side call (auth.api_key_verify, ratelimit.check) with body
//  req->pre_body of body_len bytes; done continues the chain on the
//  reactor. false when the upstream no longer takes calls (shutdown).
bool gw_pipeline_call(gw_req_t *req, const char *service, const char *method, size_t body_len,
                      int timeout_ms, bool idempotent, gw_upcall_done_fn *done);

//  A counter series labelled k1=v1,k2=v2, looked up once into *slot (any
//  thread): vz_metrics_counter renders and compares labels on every call.
vz_series_t *gw_pipeline_counter(gw_pipe_t *pipe, _Atomic(vz_series_t *) *slot, const char *name,
                                 const char *help, const char *k1, const char *v1, const char *k2,
                                 const char *v2);

//  Header-time part of authenticate, run by the front's central checks
//  (HTTP thread): is the credential the route needs there and well
//  formed? Sets cred_kind and cred, or reject = 401 with reject_detail.
void gw_auth_credential(gw_req_t *req);

//  Fail-open local buckets of the limit stage (any thread; own mutex).
gw_buckets_t *gw_buckets_new(int local_limit);
void gw_buckets_destroy(gw_buckets_t **self_p);
//  The same buckets counting failed credentials per client IP (authenticate):
//  0 when caller's bucket holds a token, else the seconds until it does.
int gw_buckets_empty(gw_buckets_t *self, const char *caller);
//  Take a token from caller's bucket (none left: stays empty).
void gw_buckets_charge(gw_buckets_t *self, const char *caller);

#endif
