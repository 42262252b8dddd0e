/*  breaker - one circuit breaker per upstream service
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Closed: calls pass; the breaker opens after `failures` consecutive
 *  failures, or when at least `window` outcomes were seen and the share of
 *  failures among the last `window` reaches `ratio_pct`. Open: calls are
 *  refused (503 + Retry-After) for `cooldown_ms`. Half-open: up to `probes`
 *  calls pass at once; a success closes the breaker, a failure opens it
 *  again for another cooldown. Only upstream failures count (timeout,
 *  no_worker, unavailable, overloaded, worker_lost, internal), not a
 *  service telling the client it is wrong.
 *
 *  Thread-safe: HTTP threads ask, the reactor records; each breaker has
 *  its own mutex, held for a few instructions. The state is exported as
 *  vz_gateway_breaker_state{service} (0 closed, 1 half-open, 2 open) and
 *  transitions as vz_gateway_breaker_transitions_total{service,to}.
 */
#ifndef GW_BREAKER_H
#define GW_BREAKER_H

#include <stdbool.h>
#include <stdint.h>
#include "vz_metrics.h"

typedef struct {
    int failures;    //  consecutive failures that open
    int ratio_pct;   //  failure share over the window that opens
    int window;      //  outcomes in the ratio window (at most 64)
    int cooldown_ms; //  open time before half-open probes
    int probes;      //  calls let through at once while half-open
} gw_breaker_config_t;

typedef enum {
    GW_BREAKER_CLOSED = 0,
    GW_BREAKER_HALF_OPEN = 1,
    GW_BREAKER_OPEN = 2
} gw_breaker_state_t;

typedef struct gw_breakers_t gw_breakers_t;
typedef struct gw_breaker_t gw_breaker_t;

//  metrics is borrowed and must outlive the set.
gw_breakers_t *gw_breakers_new(const gw_breaker_config_t *config, vz_metrics_t *metrics);
void gw_breakers_destroy(gw_breakers_t **self_p);

//  The breaker of service (created closed on first use; valid until destroy).
gw_breaker_t *gw_breakers_get(gw_breakers_t *self, const char *service);

//  Time is a parameter: now_ms is monotonic (vz_clock_mono_ms), never the
//  wall clock, so a clock step neither opens nor closes a breaker.

//  May a call go? true = yes (the caller must then record its outcome);
//  false = refused, *retry_after_s = seconds until a probe may pass (>= 1).
bool gw_breaker_allow(gw_breaker_t *self, int64_t now_ms, int *retry_after_s);
//  The outcome of an allowed call.
void gw_breaker_record(gw_breaker_t *self, bool failure, int64_t now_ms);
gw_breaker_state_t gw_breaker_state(gw_breaker_t *self, int64_t now_ms);

//  Is this upstream error code a failure of the upstream (counts against it)?
bool gw_breaker_is_failure(const char *error_code);

#endif
