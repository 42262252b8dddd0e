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

#define VZ_ENDPOINT_MAX 128        //  a direct endpoint, with its NUL
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

//  The "directory" method (docs/protocol.md, "Direct calls"): the request
//  body is the service's name (a msgpack str); the reply an array
//  [direct, [[endpoint, key], ...]]: whether callers may call the
//  service's workers directly (false while weights split it between
//  versions: then every call goes through a broker), and the workers that
//  offer a direct endpoint with their CURVE public key (Z85).
#define VZ_BROKER_DIRECT_MAX 32 //  workers a directory reply lists (decoders accept as many)

typedef struct {
    char endpoint[VZ_ENDPOINT_MAX]; //  tcp://ADDRESS:PORT the worker bound
    char key[41];                   //  its public key, Z85
} vz_broker_direct_t;

uint8_t *vz_broker_directory_request_encode(const char *service, size_t *len_p);
int vz_broker_directory_request_decode(const uint8_t *buf, size_t len, char *service, size_t cap,
                                       const char **reason);
uint8_t *vz_broker_directory_encode(bool direct, const vz_broker_direct_t *workers, size_t n,
                                    size_t *len_p);
//  Checks every endpoint (vz_broker_endpoint_valid) and key (40 Z85
//  characters); more than max workers is malformed.
int vz_broker_directory_decode(const uint8_t *buf, size_t len, bool *direct,
                               vz_broker_direct_t *workers, size_t max, size_t *n_p,
                               const char **reason);

//  True for "tcp://HOST:PORT" with HOST of [A-Za-z0-9.-] (a name or an
//  IPv4 address) and PORT 1..65535, shorter than VZ_ENDPOINT_MAX: what a
//  worker may announce as its direct endpoint.
bool vz_broker_endpoint_valid(const char *endpoint);

#endif
