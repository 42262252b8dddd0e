/*  gateway - the public HTTP front (libmicrohttpd) of the mesh
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Routes live in one static const table; central checks (route, method,
 *  body size; later authentication, rate limits, breakers) run before any
 *  handler. Local routes answer on the HTTP thread; upstream routes suspend
 *  the connection and hand a vz_upcall_t to the upstream reactor, which
 *  resumes the connection when the call is done. Every response carries
 *  X-Request-Id and traceparent; every request gets one access-log line.
 *
 *  Threads: new/destroy/drain on the main (reactor) thread; the HTTP
 *  callbacks run on libmicrohttpd's pool threads.
 */
#ifndef VZ_GATEWAY_H
#define VZ_GATEWAY_H

#include <stdbool.h>
#include "upstream.h"
#include "vz_metrics.h"

typedef struct {
    char addr[64];  //  public bind address (IPv4)
    int port;       //  public port; 0 = ephemeral
    int threads;    //  libmicrohttpd thread pool size
    int max_body;   //  largest request body accepted, bytes
    int timeout_ms; //  default upstream deadline per request
} vz_gateway_config_t;

typedef struct vz_gateway_t vz_gateway_t;

//  Start listening. upstream and metrics are borrowed and must outlive the
//  gateway. NULL (errno set) when the address is invalid or the bind fails.
vz_gateway_t *vz_gateway_new(const vz_gateway_config_t *config, vz_upstream_t *upstream,
                             vz_metrics_t *metrics);
//  Stops libmicrohttpd. Fail the upstream's pending calls first
//  (vz_upstream_close) so no connection is left suspended.
void vz_gateway_destroy(vz_gateway_t **self_p);

//  The public port actually bound.
int vz_gateway_port(const vz_gateway_t *self);

//  Start draining: /readiness answers 503, the listening socket is closed,
//  responses ask clients to close their connections.
void vz_gateway_drain(vz_gateway_t *self);

//  HTTP requests started and not yet completed (any thread).
int vz_gateway_inflight(const vz_gateway_t *self);

#endif
