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
#include "upstream.h"

//  Heap JSON the caller frees. *healthy is true when the broker answered,
//  Redis answered and every service in needed has at least one worker.
char *gw_health_render(const gw_upcall_t *call, const char *const *needed, size_t count,
                       bool *healthy);

#endif
