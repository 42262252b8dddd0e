/*  lease - rate-limit tokens taken from the limiter in small leases
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A check costs a round trip through the broker to vz-ratelimit and a Lua
 *  call in Redis. For a caller that sends many requests, the gateway asks
 *  for several tokens at once (a check with cost N) and spends them on the
 *  caller's next requests without a round trip, for at most the lease's
 *  lifetime. Every token still comes from the limiter, so the limit holds
 *  across gateway replicas; what a lease costs is that tokens it did not
 *  spend before expiring are lost to the caller (at most the lease size
 *  per lease). The size adapts per caller: it doubles while leases run out
 *  before they expire, shrinks to what was used when one expires, and is
 *  capped at max_tokens and at 1 % of the policy's limit per window, so a
 *  policy of fewer than 200 requests a window is never leased (every
 *  request is decided by the limiter, exactly as without leases). At most
 *  four leases are asked for at a time per caller, so at most four leases'
 *  worth of tokens can be lost per lifetime, however many connections the
 *  caller uses.
 *
 *  Thread-safe: HTTP threads take, the reactor grants.
 */
#ifndef GW_LEASE_H
#define GW_LEASE_H

#include <stdbool.h>
#include <stdint.h>
#include "vz_ratelimit_contract.h"

typedef struct gw_leases_t gw_leases_t;

//  now_ms below is monotonic (vz_clock_mono_ms): lease lifetimes are
//  durations, not dates.

//  At most max_entries callers remembered; leases live ttl_ms. NULL when
//  max_tokens < 2 (leases off).
gw_leases_t *gw_leases_new(int max_tokens, int ttl_ms, int max_entries);
void gw_leases_destroy(gw_leases_t **self_p);

//  Spend one leased token of key: true with *out the decision to apply
//  (the lease's answer, remaining counting the tokens still leased). False
//  with *want_p the tokens key's check should ask for (1 = no lease); above
//  1 it counts as a lease asked for until gw_leases_grant, _shrink or
//  _abandon, and with four in flight the others get 1, so the tokens leased
//  at once stay bounded.
bool gw_leases_take(gw_leases_t *self, const char *key, int64_t now_ms, vz_rl_decision_t *out,
                    uint64_t *want_p);

//  A check of cost n for key was answered allowed with *rl: keep the n - 1
//  tokens not spent by the request that asked, and adjust rl->remaining
//  for that request's headers.
void gw_leases_grant(gw_leases_t *self, const char *key, uint64_t n, vz_rl_decision_t *rl,
                     int64_t now_ms);

//  A check of cost > 1 was denied: key is near its limit, ask one at a time.
void gw_leases_shrink(gw_leases_t *self, const char *key);

//  A check of cost > 1 got no usable answer (limiter away, malformed).
void gw_leases_abandon(gw_leases_t *self, const char *key);

#endif
