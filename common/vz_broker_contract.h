/*  vz_broker_contract - the body of the broker's own "services" method
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The broker serves the service "broker" itself (docs/protocol.md, "The
 *  built-in broker service"): "ping" answers an empty body, "services" a
 *  msgpack map of service name -> {workers: uint, queue: uint}. Written by
 *  the broker, read by the gateway's /health and by the tests.
 *
 *  The encoder returns a heap buffer the caller frees (out of memory
 *  aborts). The decoder reads untrusted bytes with vz_mp's bounded reader,
 *  allocates nothing, and returns 0 or VZ_EMALFORMED with a static
 *  *reason (reason may be NULL). Any thread; no shared state.
 */
#ifndef VZ_BROKER_CONTRACT_H
#define VZ_BROKER_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_common.h"

#define VZ_BROKER_SERVICES_MAX 4096 //  entries a decoder accepts in one reply

//  One service as the broker sees it.
typedef struct {
    char name[VZ_NAME_MAX]; //  service name
    uint64_t workers;       //  ready workers
    uint64_t queue;         //  requests waiting for one
} vz_broker_service_t;

//  The "services" reply of n entries (n may be 0).
uint8_t *vz_broker_services_encode(const vz_broker_service_t *services, size_t n, size_t *len_p);

//  Decode a "services" reply. The first max entries go to services (*n_p
//  of them); *total_p (may be NULL) is how many the reply holds, so a
//  caller with fewer slots can say the list was cut. Each entry needs a
//  name that fits, and workers and queue; a name given twice among the
//  first max is malformed.
int vz_broker_services_decode(const uint8_t *buf, size_t len, vz_broker_service_t *services,
                              size_t max, size_t *n_p, size_t *total_p, const char **reason);

#endif
