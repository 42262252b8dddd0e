/*  policies - the rate-limit policy set: which request gets which limit
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Loaded from a ZPL file (format documented in configs/ratelimit.cfg).
 *  Policies are tried in file order; the first whose route and tier lists
 *  match the request applies. Its "by" list names the descriptor(s) that
 *  key the bucket: alternatives separated by spaces, parts joined by '+',
 *  the first alternative whose parts are all non-empty wins (e.g.
 *  "key sub ip": the API key if any, else the user, else the client IP).
 *  A set is immutable once loaded; a reload builds a new one and swaps it.
 *  Single-threaded (the service's reactor).
 */
#ifndef RL_POLICIES_H
#define RL_POLICIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_ratelimit_contract.h" //  vz_rl_check_t, the field capacities

#define RL_BUCKET_MAX 1024 //  Redis key of one bucket, incl. NUL

typedef enum { RL_TOKEN_BUCKET, RL_SLIDING_WINDOW } rl_algorithm_t;

#define RL_BY_MAX 4 //  alternatives in a "by" list

typedef struct {
    char name[VZ_RL_POLICY_MAX]; //  policy name, the metrics label
    char routes[512];            //  space-separated route names, "*" = any
    char tiers[256];             //  space-separated tiers, "*" = any
    char by_text[128];           //  the "by" list as written
    unsigned by[RL_BY_MAX];      //  descriptor bit masks, one per alternative
    size_t by_count;             //  alternatives in by
    rl_algorithm_t algorithm;    //  token bucket or sliding window
    uint64_t limit;              //  requests per window
    uint64_t burst;              //  token bucket capacity (= limit unless set)
    uint32_t window_s;           //  window (or refill period) in seconds
    bool shadow;                 //  decide and count, never deny
} rl_policy_t;

typedef struct rl_policies_t rl_policies_t;

//  Load and validate path. NULL with a one-line reason in err when the file
//  is missing, not ZPL, has no policy, or holds a bad value. Caller owns.
rl_policies_t *rl_policies_load(const char *path, char *err, size_t errlen);
void rl_policies_destroy(rl_policies_t **self_p);

size_t rl_policies_count(const rl_policies_t *self);
const rl_policy_t *rl_policies_at(const rl_policies_t *self, size_t index);
//  True when the file's global "ratelimit/shadow" is set (every policy shadowed).
bool rl_policies_shadow(const rl_policies_t *self);

//  Index of the first policy matching req, or -1 when none does.
int rl_policies_match(const rl_policies_t *self, const vz_rl_check_t *req);

//  Bucket key "vz:rl:<policy>:<len>:<part>..." for req under policy, built
//  from the first complete "by" alternative. -ENOENT when every alternative
//  has an empty part; -ENAMETOOLONG when it does not fit (n bytes).
int rl_policies_bucket(const rl_policy_t *policy, const vz_rl_check_t *req, char *out, size_t n);

const char *rl_algorithm_name(rl_algorithm_t algorithm);

#endif
