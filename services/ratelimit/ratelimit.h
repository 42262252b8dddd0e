/*  ratelimit - decisions in Redis (one Lua script each), fallback, readiness
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The service's application object and its reactor. Methods (contract D):
 *  "check" consumes from the bucket of the first matching policy and
 *  answers allowed/limit/remaining/reset/retry_after/policy/window/mode/
 *  shadow; "policies" lists the active policy set. Readiness is the
 *  broker link AND Redis answering. Single-threaded.
 */
#ifndef RL_RATELIMIT_H
#define RL_RATELIMIT_H

#include "vz_daemon.h"

typedef struct {
    char policy_file[VZ_PATH_MAX]; //  ZPL policy set (configs/ratelimit.cfg)
    int redis_timeout_ms;          //  connect and command timeout
    int redis_retry_ms;            //  least time between reconnect attempts
    int failure_mode;              //  RL_FAIL_OPEN | RL_FAIL_CLOSED
    int replicas;                  //  fail-open divides limits by this; 0 = broker's count
    int local_max;                 //  fail-open buckets kept in memory
} rl_config_t;

enum { RL_FAIL_OPEN, RL_FAIL_CLOSED }; //  failure_mode, in the order of its choices

extern const vz_cfg_item_t rl_items[];
extern const size_t rl_items_count;

//  Run the service until SIGTERM, then drain. Returns the exit code
//  (VZ_EXIT_PERMANENT for a bad policy file or failure mode).
int rl_run(vz_daemon_t *daemon, const rl_config_t *config);

#endif
