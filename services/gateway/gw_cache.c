/*  gw_cache - the cache stage: answer from what the gateway holds
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The JWKS route (auth.jwks) is answered from the key set the
 *  authenticate stage verifies with, while there is one; before the first
 *  fetch it goes on to the auth service like any route. After the limit
 *  stage (the answer counts against the caller) and before the breaker
 *  (a failing auth service does not stop the cached answer).
 */
#include "gw_pipeline.h"

#include <string.h>

#include "gw_render.h"
#include "vz_auth_contract.h"

gw_verdict_t gw_cache_run(gw_req_t *req)
{
    const gw_route_t *route = req->match.route;
    if (strcmp(route->service, VZ_AUTH_SERVICE) != 0 || strcmp(route->call, "jwks") != 0)
        return GW_NEXT;
    size_t len = 0;
    char *doc = gw_edge_jwks_document(req->pipe->edge, &len);
    if (!doc)
        return GW_NEXT;
    gw_render_body(req, 200, GW_CTYPE_JSON, doc, len);
    return GW_DONE;
}
