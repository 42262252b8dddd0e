/*  gw_render - what a response says: status, body, type
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The setters every stage and the front answer with, and the render
 *  stage: the outcome of the upstream call (reply, error or the health
 *  upcall) becomes the response, errors through the contract C map. The
 *  front (gateway.c) queues what is set here. Any thread that owns the
 *  request at that moment (gw_request.h).
 */
#ifndef GW_RENDER_H
#define GW_RENDER_H

#include "gw_request.h"

#define GW_CTYPE_JSON "application/json"

//  Response status, Content-Type (static or route-owned; NULL = JSON) and
//  body (heap, taken; NULL = empty); the previous body is freed.
void gw_render_body(gw_req_t *req, int status, const char *type, char *body, size_t len);
//  {"error":{"code":..,"message":..,"request_id":..}}, both escaped.
void gw_render_error(gw_req_t *req, int status, const char *code, const char *message);
//  A JSON literal (copied).
void gw_render_json(gw_req_t *req, int status, const char *json);

//  The render stage (HTTP thread, after the resume): req->call is over;
//  its reply becomes the body (no copy), or its error the error answer.
void gw_render_run(gw_req_t *req);

//  Counter label for an error code: known codes, else "other" (a worker
//  cannot blow up the series count or inject label syntax).
const char *gw_render_code_label(const char *code);

//  The services table routes to (each once), optional routes and the
//  gateway's own (GW_ROUTE_SELF) left out;
//  at most cap. For /health and the breakers made at start.
size_t gw_render_needed(gw_routes_t *table, const char **needed, size_t cap);

#endif
