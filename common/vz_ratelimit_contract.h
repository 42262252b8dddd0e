/*  vz_ratelimit_contract - the bodies of the ratelimit service's methods (contract D)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The one definition of what travels to and from "ratelimit", used by the
 *  service, by every caller (the gateway) and by the tests. Field by field
 *  in docs/protocol.md, "Service contracts".
 *
 *    check        request  {ip, sub, key, tier, route: str, cost: uint}
 *                 reply    {allowed, limit, remaining, reset, retry_after,
 *                           policy, window, mode, shadow}
 *    check_batch  request  vz_batch array of check request bodies
 *                 reply    vz_batch array of check replies or errors
 *    policies     request  empty
 *                 reply    {shadow: bool, policies: [{name, route, tier, by,
 *                           algorithm, limit, window, burst, shadow}]}
 *
 *  Encoders return a heap buffer the caller frees (out of memory aborts)
 *  and never fail: every field fits by construction. Decoders read
 *  untrusted bytes with vz_mp's bounded reader, allocate nothing, skip
 *  unknown keys (forward compatibility), refuse a repeated key, and return
 *  0 or VZ_EMALFORMED with a static *reason (reason may be NULL). On
 *  failure the output holds valid empty strings but is otherwise
 *  unspecified. Any thread; no shared state.
 */
#ifndef VZ_RATELIMIT_CONTRACT_H
#define VZ_RATELIMIT_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_common.h"

#define VZ_RL_SERVICE "ratelimit"

//  Field capacities, bytes incl. NUL: a longer value is refused, never cut.
#define VZ_RL_IP_MAX 64
#define VZ_RL_SUB_MAX 256
#define VZ_RL_KEY_MAX 128
#define VZ_RL_TIER_MAX 32
#define VZ_RL_ROUTE_MAX 64
#define VZ_RL_POLICY_MAX 64 //  policy names: 1..63 of [A-Za-z0-9_.-]
#define VZ_RL_COST_MAX 1000000

//  check request: the descriptors of one request. Empty strings are absent
//  descriptors; the policy's "by" list says which must be present.
typedef struct {
    char ip[VZ_RL_IP_MAX];       //  client IP
    char sub[VZ_RL_SUB_MAX];     //  subject, "" when anonymous
    char key[VZ_RL_KEY_MAX];     //  API key id, "" when none
    char tier[VZ_RL_TIER_MAX];   //  anonymous | free | premium
    char route[VZ_RL_ROUTE_MAX]; //  gateway route name
    uint64_t cost;               //  tokens/slots it takes, 0..VZ_RL_COST_MAX (absent: 1)
} vz_rl_check_t;

//  Where a decision was made.
typedef enum {
    VZ_RL_MODE_REDIS,      //  in Redis, shared by every replica
    VZ_RL_MODE_FAIL_OPEN,  //  Redis away: local buckets, limit / replicas
    VZ_RL_MODE_FAIL_CLOSED //  Redis away: denied
} vz_rl_mode_t;

//  check reply: one decision.
typedef struct {
    bool allowed;                  //  what the caller must do (true in shadow mode)
    uint64_t limit;                //  requests per window of the policy
    uint64_t remaining;            //  left in the window / bucket
    uint64_t reset;                //  seconds until full again
    uint64_t retry_after;          //  seconds; 0 when allowed
    char policy[VZ_RL_POLICY_MAX]; //  policy name ("none" when nothing matched)
    uint32_t window;               //  seconds
    vz_rl_mode_t mode;             //  where the decision was made
    bool shadow;                   //  shadow mode: a denial was only counted
} vz_rl_decision_t;

//  One entry of the policies reply.
typedef struct {
    char name[VZ_RL_POLICY_MAX]; //  policy name
    char route[512];             //  space-separated route names, "*" = any
    char tier[256];              //  space-separated tiers, "*" = any
    char by[128];                //  the "by" list as written
    char algorithm[16];          //  token_bucket | sliding_window
    uint64_t limit;              //  requests per window
    uint32_t window;             //  seconds
    uint64_t burst;              //  token bucket capacity
    bool shadow;                 //  decided and counted, never denied
} vz_rl_policy_desc_t;

//  "redis", "fail_open", "fail_closed".
const char *vz_rl_mode_name(vz_rl_mode_t mode);

//  check request. An empty body decodes as every field absent (cost 1).
uint8_t *vz_rl_check_encode(const vz_rl_check_t *check, size_t *len_p);
int vz_rl_check_decode(vz_rl_check_t *check, const uint8_t *buf, size_t len, const char **reason);

//  check reply. Every field is required; the policy name must be 1..63 of
//  [A-Za-z0-9_.-] (callers put it in HTTP headers).
uint8_t *vz_rl_decision_encode(const vz_rl_decision_t *decision, size_t *len_p);
int vz_rl_decision_decode(vz_rl_decision_t *decision, const uint8_t *buf, size_t len,
                          const char **reason);

//  policies reply: shadow (the whole set is shadowed) and n entries.
uint8_t *vz_rl_policies_encode(bool shadow, const vz_rl_policy_desc_t *policies, size_t n,
                               size_t *len_p);
//  Up to max entries into policies; *n_p how many. More than max is malformed.
int vz_rl_policies_decode(const uint8_t *buf, size_t len, bool *shadow,
                          vz_rl_policy_desc_t *policies, size_t max, size_t *n_p,
                          const char **reason);

#endif
