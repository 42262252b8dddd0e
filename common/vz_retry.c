/*  vz_retry - when a failed call may go again: codes, attempts, time, budget
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_retry.h"

#include <assert.h>
#include <string.h>

#include "vz_proto.h"

void vz_retry_budget_init(vz_retry_budget_t *self, int pct, int min, vz_series_t *retried,
                          vz_series_t *denied)
{
    assert(self && pct >= 0 && pct <= 100 && min >= 0);
    self->earn = pct / 100.0;
    self->cap = min;
    self->tokens = self->cap;
    self->retried = retried;
    self->denied = denied;
}

void vz_retry_budget_earn(vz_retry_budget_t *self)
{
    assert(self);
    self->tokens += self->earn;
    if (self->tokens > self->cap)
        self->tokens = self->cap;
}

bool vz_retry_code(const char *code)
{
    return code && (strcmp(code, VZ_ERR_NO_WORKER) == 0 || strcmp(code, VZ_ERR_WORKER_LOST) == 0 ||
                    strcmp(code, VZ_ERR_UNAVAILABLE) == 0 || strcmp(code, VZ_ERR_OVERLOADED) == 0);
}

bool vz_retry_allowed(vz_retry_budget_t *budget, bool idempotent, const char *code, int attempts,
                      int64_t left_ms)
{
    if (!idempotent || attempts > VZ_RETRY_MAX || left_ms < VZ_RETRY_MIN_MS || !vz_retry_code(code))
        return false;
    if (!budget)
        return true;
    //  The budget is asked last, so only retries that would happen spend it.
    if (budget->tokens < 1.0) {
        if (budget->denied)
            vz_series_inc(budget->denied);
        return false;
    }
    budget->tokens -= 1.0;
    if (budget->retried)
        vz_series_inc(budget->retried);
    return true;
}
