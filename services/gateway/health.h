/*  health - the gateway's aggregated /health document
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Turns a finished GW_UPCALL_HEALTH call (Redis PING result plus the
 *  broker's "services" reply, a msgpack map service -> {workers, queue})
 *  into JSON:
 *    {"status":"ok"|"degraded",
 *     "broker":{"status":"up"|"down"[,"error":".."]},
 *     "redis":{"status":"up"|"down"[,"error":".."]},
 *     "services":{"echo":{"status":"up","workers":1,"queue":0}, ...}}
 *  Every service the gateway routes to is listed, reported or not.
 *  Pure function, any thread.
 */
#ifndef GW_HEALTH_H
#define GW_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "upstream.h"

//  Heap JSON the caller frees. *healthy is true when the broker answered,
//  Redis answered and every service in needed has at least one worker.
char *gw_health_render(const gw_upcall_t *call, const char *const *needed, size_t count,
                       bool *healthy);

//  The health document kept up to date off the request path: the reactor
//  starts one probe (broker.services and a Redis PING, a GW_UPCALL_HEALTH
//  call) every period and keeps the rendered result; HTTP and admin
//  threads only read the copy. So /health never waits on Redis or the
//  broker, however many ask.
typedef struct gw_health_cache_t gw_health_cache_t;

//  upstream is borrowed; period_ms between probes.
gw_health_cache_t *gw_health_cache_new(gw_upstream_t *upstream, int period_ms);
//  Reactor thread, after the upstream was closed (no probe in flight).
void gw_health_cache_destroy(gw_health_cache_t **self_p);

//  Reactor thread: start a probe when period_ms passed since the last one
//  began and none is in flight; needed (count names, copied) are the
//  services the route table needs.
void gw_health_cache_tick(gw_health_cache_t *self, const char *const *needed, size_t count,
                          int64_t now_ms);

//  Any thread: a copy of the last document (heap, the caller frees) and
//  whether it was healthy; NULL before the first probe finished.
char *gw_health_cache_get(gw_health_cache_t *self, bool *healthy);

//  The same with the signature of vz_admin_set_health (arg: the cache).
char *gw_health_cache_admin(void *arg, bool *healthy);

#endif
