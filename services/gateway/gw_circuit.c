/*  gw_circuit - the circuit-break stage: is the upstream worth calling
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The route's service has one breaker (breaker.h). A refused call is 503
 *  circuit_open with Retry-After = seconds until a probe may pass; a call
 *  let through keeps the breaker in req->breaker, and the forward stage's
 *  completion records its outcome there (on the reactor).
 */
#include "gw_pipeline.h"

#include "gw_render.h"
#include "vz_clock.h"

gw_verdict_t gw_circuit_run(gw_req_t *req)
{
    gw_breaker_t *breaker = gw_breakers_get(req->pipe->breakers, req->match.route->service);
    int retry_after = 1;
    if (!gw_breaker_allow(breaker, vz_clock_mono_ms(), &retry_after)) {
        gw_render_error(req, 503, "circuit_open", "upstream is failing; try again later");
        req->retry_after = retry_after;
        return GW_DONE;
    }
    req->breaker = breaker;
    return GW_NEXT;
}
