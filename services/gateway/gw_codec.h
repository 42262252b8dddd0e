/*  gw_codec - msgpack bodies of the two contracts the gateway calls itself
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  auth.api_key_verify ({"key"} -> {"valid", "sub", "scope", "tier",
 *  "kid"}, contract E) for the authenticate stage and ratelimit.check
 *  (contract D) for the limit stage. Pure functions, any thread. These
 *  bodies move to the one codec per contract in common/ (issue 15).
 */
#ifndef GW_CODEC_H
#define GW_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "edge.h"

//  A rate-limit decision (contract D reply). The name stays as lease.h
//  knows it.
typedef struct {
    bool allowed;         //  let it through
    uint64_t limit;       //  requests per window
    uint64_t remaining;   //  left
    uint64_t reset;       //  seconds until full again
    uint64_t retry_after; //  seconds (0 when allowed)
    uint64_t window;      //  seconds
    char policy[64];      //  policy name
} vz_edge_rate_t;

//  msgpack {"key": key} (caller frees).
uint8_t *gw_codec_apikey_request(const char *key, size_t *len_p);
//  Decode the reply; 0 or -EINVAL for a malformed one.
int gw_codec_apikey_decode(const uint8_t *buf, size_t len, bool *valid, vz_edge_identity_t *id);

//  msgpack body of ratelimit.check asking cost tokens (caller frees).
uint8_t *gw_codec_rate_request(const char *ip, const char *sub, const char *key, const char *tier,
                               const char *route, uint64_t cost, size_t *len_p);
//  Decode a check reply; 0 or -EINVAL.
int gw_codec_rate_decode(const uint8_t *buf, size_t len, vz_edge_rate_t *out);

#endif
