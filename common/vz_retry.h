/*  vz_retry - when a failed call may go again: codes, attempts, time, budget
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One policy for every caller that retries (the gateway's upstream,
 *  vz_call, vz_client): only calls flagged idempotent, only for codes that
 *  say "not served" (no_worker, worker_lost, unavailable, overloaded), at
 *  most VZ_RETRY_MAX extra attempts, never with less than VZ_RETRY_MIN_MS
 *  left before the deadline, and only while a retry budget allows.
 *
 *  The budget is Envoy's idea (retry_budget: retries are at most a share of
 *  the traffic, plus a minimum) as a token bucket: every first attempt earns
 *  pct/100 of a token, every retry spends one, and at most `min` tokens are
 *  saved (the bucket starts full). So over time retries are at most pct % of
 *  calls, plus a burst of `min`: when a callee fails for everybody, the
 *  callers do not multiply its load. A plain value struct, no heap; not
 *  thread-safe (one per reactor).
 */
#ifndef VZ_RETRY_H
#define VZ_RETRY_H

#include <stdbool.h>
#include <stdint.h>
#include "vz_metrics.h"

#define VZ_RETRY_MAX 2     //  extra attempts per call
#define VZ_RETRY_MIN_MS 20 //  no retry with less time than this left

typedef struct {
    double tokens;        //  retries that may be made now
    double earn;          //  tokens earned per first attempt (pct / 100)
    double cap;           //  most tokens saved (the minimum burst)
    vz_series_t *retried; //  optional counter: retries made
    vz_series_t *denied;  //  optional counter: retries refused by the budget
} vz_retry_budget_t;

//  pct: retries as a share of first attempts (0..100); min: tokens saved at
//  most, and the start. retried and denied may be NULL (borrowed).
void vz_retry_budget_init(vz_retry_budget_t *self, int pct, int min, vz_series_t *retried,
                          vz_series_t *denied);

//  Count one first attempt (earns pct/100 of a token).
void vz_retry_budget_earn(vz_retry_budget_t *self);

//  True for the error codes that mean "the request was not served"
//  (or, for worker_lost, that the broker could not tell).
bool vz_retry_code(const char *code);

//  The whole decision for one failed attempt: idempotent, a retry code,
//  attempts (envelopes sent so far, first included) <= VZ_RETRY_MAX,
//  left_ms >= VZ_RETRY_MIN_MS, and a token (spent here; counted in retried,
//  or in denied when the budget said no). budget may be NULL (no budget).
bool vz_retry_allowed(vz_retry_budget_t *budget, bool idempotent, const char *code, int attempts,
                      int64_t left_ms);

#endif
