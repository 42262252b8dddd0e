/*  gateway - the public HTTP front (libmicrohttpd) of the mesh
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The HTTP front: it parses, checks and answers. The gateway's own routes
 *  (probes, metrics, OpenAPI) live in a static const table and answer on
 *  the HTTP thread; service routes come from the reloadable route table
 *  (routes.h). Central checks (URL length, route, method, declared size,
 *  media type, credential present; after the body, JSON syntax) run
 *  before anything else; then the connection is suspended and the
 *  request goes through the pipeline (gw_pipeline.h: authenticate, limit,
 *  cache, circuit-break, forward), whose one exit resumes it; the front
 *  renders the outcome (gw_render.h) and queues the response. Every
 *  response carries X-Request-Id and traceparent; every request gets one
 *  access-log line.
 *
 *  Threads: new/destroy/drain on the main (reactor) thread; the HTTP
 *  callbacks run on libmicrohttpd's pool threads.
 */
#ifndef VZ_GATEWAY_H
#define VZ_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>
#include "breaker.h"
#include "edge.h"
#include "gw_clientip.h"
#include "lease.h"
#include "routes.h"
#include "upstream.h"
#include "vz_metrics.h"
#include "vz_telemetry.h"

typedef struct {
    char addr[64];                  //  public bind address (IPv4)
    int port;                       //  public port; 0 = ephemeral
    int threads;                    //  libmicrohttpd thread pool size
    int max_body;                   //  largest request body accepted, bytes (routes may lower it)
    int timeout_ms;                 //  default upstream deadline per request
    int max_url;                    //  longest path, bytes (414 above)
    int max_header;                 //  per-connection memory for the request head, bytes
    int max_connections;            //  concurrent connections (beyond: refused)
    int max_per_ip;                 //  concurrent connections per client IP (0 = no limit)
    int idle_s;                     //  idle/slow client timeout, seconds
    char cors_origins[512];         //  allowed Origins, comma-separated; "*" = any; "" = CORS off
    char openapi_path[VZ_PATH_MAX]; //  OpenAPI document served at /v1/openapi.yaml
    gw_breaker_config_t breaker;    //  per-upstream circuit breakers
    int auth_timeout_ms;            //  deadline of auth.api_key_verify
    int auth_failures;              //  failed credentials a minute per client IP before 429
    int rl_timeout_ms;              //  deadline of ratelimit.check
    bool rl_fail_open;              //  limiter silent: local bucket (true) or 503 (false)
    int rl_lease;                   //  most tokens leased per check (< 2: no leases, lease.h)
    int rl_lease_ms;                //  lifetime of a lease
    int rl_local_limit;             //  fail-open: anonymous a minute (free x10, premium x100)
    int access_log_buffer;          //  access-log buffer, bytes (0 = a write per line)
    int deprecation_clients;        //  callers recorded per deprecated route (gw_deprecation.h)
    const gw_trust_t *trust;        //  trusted proxies (borrowed; NULL = trust none)
    gw_fwd_header_t fwd_header;     //  the header a trusted proxy names the client in
    bool proxy_protocol;            //  trusted peers may start with a PROXY header (gw_proxy.h)
} gw_gateway_config_t;

typedef struct gw_gateway_t gw_gateway_t;

//  Start listening with the route table *routes_p (taken). upstream, edge
//  and metrics are borrowed and must outlive the gateway. NULL (errno set)
//  when the address is invalid or the bind fails. An unreadable OpenAPI
//  document is not fatal: /v1/openapi.yaml then answers 404.
gw_gateway_t *gw_gateway_new(const gw_gateway_config_t *config, gw_routes_t **routes_p,
                             gw_upstream_t *upstream, gw_edge_t *edge, vz_metrics_t *metrics);
//  Install a route table (takes the reference; any thread). Requests in
//  flight keep the table they started with.
void gw_gateway_set_routes(gw_gateway_t *self, gw_routes_t **routes_p);

//  Stops libmicrohttpd. Fail the upstream's pending calls first
//  (gw_upstream_close) so no connection is left suspended.
void gw_gateway_destroy(gw_gateway_t **self_p);

//  The public port actually bound.
int gw_gateway_port(const gw_gateway_t *self);

//  Start draining: /readiness answers 503, the listening socket is closed,
//  responses ask clients to close their connections.
void gw_gateway_drain(gw_gateway_t *self);

//  Write out the access-log lines collected so far (the reactor's tick).
void gw_gateway_flush_log(gw_gateway_t *self);

//  Reactor thread, on its tick: keep cache probing for the current route
//  table (health.h); the public /health answers from cache from then on
//  (200 {"status":"ok"}, 503 "degraded" or "starting"), the detailed
//  document being on the admin port. cache is borrowed.
typedef struct gw_health_cache_t gw_health_cache_t;
void gw_gateway_health_tick(gw_gateway_t *self, gw_health_cache_t *cache, int64_t now_ms);

//  Report each answered request to telemetry (vz_telemetry_http); NULL
//  stops. telemetry is borrowed: set NULL, or destroy the gateway, first.
void gw_gateway_set_telemetry(gw_gateway_t *self, vz_telemetry_t *telemetry);

//  HTTP requests started and not yet completed (any thread).
int gw_gateway_inflight(const gw_gateway_t *self);

#endif
