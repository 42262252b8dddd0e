/*  gw_request - one HTTP request on its way through the gateway
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The record the HTTP front (gateway.c) fills from the headers and the
 *  body, the stages of the pipeline (gw_pipeline.h) read and write, and
 *  the front finally answers from. gw_pipe_t is what the stages share
 *  between requests: the objects each one decides with.
 *
 *  Ownership: the front owns every gw_req_t (a per-gateway free list) and
 *  its heap members; a stage that replaces one frees the old value. While
 *  the connection is suspended (state REQ_WAITING) exactly one thread
 *  writes the request at a time: the stage that runs, or the reactor
 *  callback that continues it.
 */
#ifndef GW_REQUEST_H
#define GW_REQUEST_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "breaker.h"
#include "edge.h"
#include "lease.h"
#include "routes.h"
#include "upstream.h"
#include "vz_metrics.h"
#include "vz_proto.h"

#define GW_PATH_LOG_MAX 256   //  path bytes kept for the access log
#define GW_CTYPE_MAX 128      //  longest Content-Type passed through
#define GW_ORIGIN_MAX 256     //  longest Origin echoed in CORS headers
#define GW_LEASE_KEY_MAX 1024 //  ip|sub|kid|tier|route
#define GW_AUTH_METHODS 3     //  "jwt", "api_key", "none"
#define GW_AUTH_RESULTS 7     //  ok invalid expired unavailable forbidden missing throttled

typedef struct gw_gateway_t gw_gateway_t;
typedef struct gw_local_t gw_local_t;               //  one of the front's own routes (gateway.c)
typedef struct gw_buckets_t gw_buckets_t;           //  fail-open local buckets (gw_limit.c)
typedef struct gw_deprecations_t gw_deprecations_t; //  callers of deprecated routes

typedef enum { REQ_NEW, REQ_WAITING, REQ_DONE } gw_state_t;

typedef enum { CRED_NONE, CRED_BEARER, CRED_APIKEY } gw_cred_t;

//  What the stages decide with, shared by every request of a gateway;
//  made by gw_pipeline_new, each part read by the stage named.
typedef struct {
    vz_metrics_t *metrics;   //  borrowed: every stage counts
    gw_upstream_t *upstream; //  borrowed: side calls and the forward
    //  authenticate
    gw_edge_t *edge;          //  borrowed: JWKS, verified tokens, API-key answers
    int auth_timeout_ms;      //  deadline of auth.api_key_verify
    gw_buckets_t *auth_fails; //  failed credentials per client IP (a minute's allowance)
    _Atomic(vz_series_t *) auth_series[GW_AUTH_METHODS][GW_AUTH_RESULTS]; //  auth_total
    //  limit
    gw_leases_t *leases;                      //  rate-limit leases, NULL when off
    gw_buckets_t *buckets;                    //  fail-open local buckets
    int rl_timeout_ms;                        //  deadline of ratelimit.check
    bool rl_fail_open;                        //  limiter silent: local bucket (true) or 503 (false)
    _Atomic(vz_series_t *) rate_series[2][3]; //  ratelimit_total: [allowed][local, limiter, lease]
    //  versions
    gw_deprecations_t *deprecations; //  callers of deprecated routes (gw_deprecation.h)
    //  circuit-break
    gw_breakers_t *breakers; //  one per upstream service
    //  forward
    int timeout_ms; //  deadline of a route without its own
} gw_pipe_t;

//  Requests are recycled through a per-gateway free list, and a recycled
//  one is not cleared whole: ~10 KB of calloc per request was the largest
//  memset under load. Everything up to request_id is zeroed; the buffers
//  after it are each written before they are read, or given "" by the
//  front when it takes one (the two calls by gw_upcall_reset).
typedef struct gw_req_t gw_req_t;
struct gw_req_t {
    gw_gateway_t *gw;            //  owner (the front's)
    gw_pipe_t *pipe;             //  the stages' shared state
    struct MHD_Connection *conn; //  its connection
    gw_req_t *next_free;         //  free-list link while pooled
    gw_routes_t *table;          //  the table this request was matched on (a reference)
    const gw_local_t *local;     //  or one of the gateway's own routes
    bool preflight;              //  OPTIONS: answered by the gateway
    struct timespec start;       //  monotonic start
    size_t url_len;              //  full path length, for the 414 check
    int reject;                  //  status of a failed central check, 0 = none
    const char *reject_detail;   //  its message, NULL = the default (static)
    uint8_t *body;               //  collected body
    size_t body_len;             //  its length
    size_t body_cap;             //  allocated
    size_t body_max;             //  limit for this route
    gw_state_t state;            //  progress
    bool upstream_done;          //  call result waits to be rendered
    gw_breaker_t *breaker;       //  the upstream's breaker when the call was let through
    int status;                  //  response status
    char *resp;                  //  response body (heap)
    size_t resp_len;             //  its length
    const char *resp_type;       //  response Content-Type (static or route-owned)
    int retry_after;             //  Retry-After seconds, 0 = none
    bool www_authenticate;       //  add WWW-Authenticate: Bearer
    bool www_basic;              //  ... Basic instead (an OAuth client's credentials)
    bool queued;                 //  a response went out
    size_t sent_len;             //  its body length, for the access log
    gw_cred_t cred_kind;         //  credential presented for the route
    char *cred;                  //  the bearer token or API key (heap), never logged
    bool authed;                 //  id holds the verified caller
    unsigned stage;              //  pipeline stage running or waited on (gw_pipeline.c)
    gw_edge_waiter_t waiter;     //  queued while the JWKS is fetched
    bool jwks_waited;            //  waited once already: do not again
    uint8_t *pre_body;           //  body of pre (heap)
    bool rl_have;                //  rl holds a decision: send the headers
    //  Not cleared on reuse (see above).
    char request_id[VZ_ID_MAX];           //  accepted or generated
    char traceparent[VZ_TRACEPARENT_MAX]; //  accepted or generated
    char http_method[16];                 //  for the access log
    char path[GW_PATH_LOG_MAX];           //  idem, truncated
    char content_type[GW_CTYPE_MAX];      //  request's, printable ASCII only
    char origin[GW_ORIGIN_MAX];           //  allowed CORS Origin, "" = none
    char client_ip[64];                   //  peer address
    char allow[64];                       //  Allow header, "" = none
    char location[VZ_CTX_VAL_MAX];        //  Location header, "" = none
    gw_route_match_t match;               //  route and params; route NULL = none
    gw_edge_identity_t id;                //  who the caller is (valid when authed)
    vz_rl_decision_t rl;                  //  the rate-limit decision (valid when rl_have)
    uint64_t rl_cost;                     //  tokens the pending check asks for
    char rl_key[GW_LEASE_KEY_MAX];        //  the caller's lease key, leases on
    gw_upcall_t call;                     //  the upstream call
    gw_upcall_t pre;                      //  auth.api_key_verify or ratelimit.check (no ctx)
    vz_ctx_entry_t ctx[VZ_CTX_MAX];       //  call's envelope ctx (gw_forward.c)
};

#endif
