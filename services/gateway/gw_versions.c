/*  gw_versions - the API-versions stage: callers of deprecated routes, sunset, the report
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  After limit (a call to an old route still costs the caller its tokens):
 *  the gateway's own report route (service "gateway", call "deprecations"),
 *  then, on a deprecated route, the caller recorded (gw_deprecation.h) and
 *  counted, and 410 route_sunset from the sunset on. The Deprecation,
 *  Sunset and Link headers are added by the front to every answer of the
 *  route (gateway.c), whichever stage gave it.
 */
#include "gw_pipeline.h"

#include <stdio.h>
#include <string.h>

#include "gw_deprecation.h"
#include "gw_render.h"
#include "vz_clock.h"

gw_verdict_t gw_versions_run(gw_req_t *req)
{
    const gw_route_t *route = req->match.route;
    if (strcmp(route->service, GW_ROUTE_SELF) == 0) {
        size_t len = 0;
        char *doc = gw_deprecations_report(req->pipe->deprecations, &len);
        if (doc)
            gw_render_body(req, 200, GW_CTYPE_JSON, doc, len);
        else
            gw_render_error(req, 500, VZ_ERR_INTERNAL, "the report does not fit");
        return GW_DONE;
    }
    if (!route->deprecated_s)
        return GW_NEXT;
    int64_t now_s = vz_clock_now_ms() / 1000;
    char client[GW_DEPRECATION_CLIENT_MAX];
    gw_deprecation_client(req->authed ? req->id.kid : NULL, req->authed ? req->id.sub : NULL,
                          req->client_ip, client, sizeof client);
    gw_deprecations_record(req->pipe->deprecations, route->name, client, now_s);
    vz_series_inc(route->deprecated_calls);
    if (!gw_deprecation_sunset(route, now_s))
        return GW_NEXT;
    char message[VZ_ERRMSG_MAX];
    if (route->successor[0])
        snprintf(message, sizeof message, "this route was retired at its sunset (%s); use %.150s",
                 route->hdr_sunset, route->successor);
    else
        snprintf(message, sizeof message, "this route was retired at its sunset (%s)",
                 route->hdr_sunset);
    gw_render_error(req, 410, GW_ERR_ROUTE_SUNSET, message);
    return GW_DONE;
}
