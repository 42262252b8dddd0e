/*  gw_render - what a response says: status, body, type
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gw_render.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_authctx.h"
#include "vz_json.h"
#include "vz_log.h"

//  How an upstream error code becomes an HTTP answer: the gateway's own
//  codes here, then the worker codes of contract C with the status
//  vz_authctx gives them; unknown codes keep their own (sanitised) code
//  with the status the worker gave in its reply ctx (400..599), else 502.
static const struct {
    const char *code;        //  error_code from the broker, a worker or upstream.c
    int status;              //  HTTP status
    const char *public_code; //  code shown to the client, NULL = the same
    const char *message;     //  message shown, NULL = the upstream's
    bool retry_after;        //  worth retrying soon
} s_error_map[] = {
    {VZ_ERR_NO_WORKER, 503, NULL, NULL, true},
    {VZ_ERR_UNAVAILABLE, 503, NULL, NULL, true},
    {VZ_ERR_OVERLOADED, 503, NULL, NULL, true},
    {VZ_ERR_TIMEOUT, 504, NULL, NULL, false},
    //  A refused policy or a rejected envelope is our fault, and the
    //  policy's details are not the client's business.
    {VZ_ERR_FORBIDDEN, 502, "bad_gateway", "upstream refused the call", false},
    {VZ_ERR_MALFORMED, 502, "bad_gateway", "upstream refused the call", false},
    {"request_too_large", 413, "payload_too_large", "request does not fit one envelope", false},
    //  Only for a call that may not be sent twice (upstream.c): it was
    //  served, but its reply did not fit the bundle's.
    {VZ_ERR_REPLY_DROPPED, 502, "reply_lost",
     "the upstream's reply was lost; the request may have taken effect", false},
};

void gw_render_body(gw_req_t *req, int status, const char *type, char *body, size_t len)
{
    free(req->resp);
    req->status = status;
    req->resp_type = type;
    req->resp = body;
    req->resp_len = len;
}

//  {"error":{"code":..,"message":..,"request_id":..}}
void gw_render_error(gw_req_t *req, int status, const char *code, const char *message)
{
    char ecode[VZ_ERRCODE_MAX * 6], emsg[VZ_ERRMSG_MAX * 6];
    if (vz_json_escape(ecode, sizeof ecode, code) < 0)
        vz_strlcpy(ecode, "internal", sizeof ecode);
    if (vz_json_escape(emsg, sizeof emsg, message) < 0)
        emsg[0] = '\0';
    char *body = NULL;
    int len =
        asprintf(&body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"request_id\":\"%s\"}}",
                 ecode, emsg, req->request_id);
    assert(len >= 0);
    gw_render_body(req, status, GW_CTYPE_JSON, body, (size_t)len);
}

void gw_render_json(gw_req_t *req, int status, const char *json)
{
    char *body = strdup(json);
    assert(body);
    gw_render_body(req, status, GW_CTYPE_JSON, body, strlen(body));
}

const char *gw_render_code_label(const char *code)
{
    static const char *const known[] = {
        VZ_ERR_NO_WORKER,          VZ_ERR_TIMEOUT,           VZ_ERR_WORKER_LOST,
        VZ_ERR_MALFORMED,          VZ_ERR_FORBIDDEN,         VZ_ERR_UNKNOWN_METHOD,
        VZ_ERR_OVERLOADED,         VZ_ERR_UNAVAILABLE,       VZ_ERR_INVALID,
        VZ_ERR_INTERNAL,           "request_too_large",      VZ_AUTHCTX_ERR_UNAUTHORIZED,
        VZ_AUTHCTX_ERR_DENIED,     VZ_AUTHCTX_ERR_NOT_FOUND, VZ_AUTHCTX_ERR_CONFLICT,
        VZ_AUTHCTX_ERR_VALIDATION, VZ_AUTHCTX_ERR_TOO_MANY,  VZ_ERR_REPLY_DROPPED,
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(code, known[i]) == 0)
            return known[i];
    return "other";
}

//  A route marked errors = "oauth2": a 400 or 401 whose message is
//  "<error>: <description>" with an RFC 6749 §5.2 error answers
//  {"error": .., "error_description": ..}; its 401 challenges Basic, the
//  scheme of the client's credentials. True when rendered.
static bool s_render_oauth(gw_req_t *req, int status, const char *message)
{
    static const char *const names[] = {"invalid_request",        "invalid_client",
                                        "invalid_grant",          "unauthorized_client",
                                        "unsupported_grant_type", "invalid_scope"};
    size_t n = strcspn(message, ":");
    bool known = false;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !known; i++)
        known = strlen(names[i]) == n && strncmp(message, names[i], n) == 0;
    if (!known || (status != 400 && status != 401) || strncmp(message + n, ": ", 2) != 0)
        return false;
    char desc[VZ_ERRMSG_MAX * 6];
    if (vz_json_escape(desc, sizeof desc, message + n + 2) < 0)
        desc[0] = '\0';
    char *body = NULL;
    int len =
        asprintf(&body, "{\"error\":\"%.*s\",\"error_description\":\"%s\"}", (int)n, message, desc);
    assert(len >= 0);
    gw_render_body(req, status, GW_CTYPE_JSON, body, (size_t)len);
    req->www_authenticate = req->www_basic = status == 401;
    return true;
}

static void s_render_error(gw_req_t *req)
{
    const gw_upcall_t *call = &req->call;
    char labels[64];
    snprintf(labels, sizeof labels, "code=%s", gw_render_code_label(call->error_code));
    vz_series_inc(vz_metrics_counter(req->pipe->metrics, "vz_gateway_upstream_errors_total",
                                     "Upstream calls that ended in an error, by code", labels));
    //  The gateway's own codes first, then contract C's.
    int status = 0;
    const char *code = call->error_code, *message = call->error_message;
    bool retry = false;
    for (size_t i = 0; !status && i < sizeof s_error_map / sizeof s_error_map[0]; i++) {
        if (strcmp(call->error_code, s_error_map[i].code) != 0)
            continue;
        status = s_error_map[i].status;
        code = s_error_map[i].public_code ? s_error_map[i].public_code : code;
        message = s_error_map[i].message ? s_error_map[i].message : message;
        retry = s_error_map[i].retry_after;
    }
    if (!status) {
        status = vz_authctx_error_status(call->error_code);
        retry = status == 429 || status == 503;
    }
    if (status) {
        const gw_route_t *route = req->match.route;
        if (route && route->oauth_errors && s_render_oauth(req, status, message))
            return;
        gw_render_error(req, status, code, message[0] ? message : code);
        req->retry_after = retry ? 1 : 0;
        req->www_authenticate = status == 401;
        return;
    }
    //  Worker codes are free text: keep only a safe spelling. The status is
    //  the one the worker gave for its code (400..599), else 502.
    char safe[VZ_ERRCODE_MAX];
    size_t n = strspn(call->error_code, "abcdefghijklmnopqrstuvwxyz0123456789_");
    vz_strlcpy(safe, n && !call->error_code[n] ? call->error_code : "bad_gateway", sizeof safe);
    status = call->http_status >= 400 && call->http_status <= 599 ? call->http_status : 502;
    gw_render_error(req, status, safe, message[0] ? message : "upstream error");
    req->retry_after = status == 429 || status == 503 ? 1 : 0;
}

//  Services the current table routes to, for /health; a route marked
//  optional (a service not every deployment runs) does not count.
size_t gw_render_needed(gw_routes_t *table, const char **needed, size_t cap)
{
    size_t count = 0;
    for (size_t i = 0; table && i < gw_routes_count(table); i++) {
        if (gw_routes_at(table, i)->optional ||
            strcmp(gw_routes_at(table, i)->service, GW_ROUTE_SELF) == 0)
            continue;
        const char *service = gw_routes_at(table, i)->service;
        bool seen = false;
        for (size_t j = 0; !seen && j < count; j++)
            seen = strcmp(needed[j], service) == 0;
        if (!seen && count < cap)
            needed[count++] = service;
    }
    return count;
}

void gw_render_run(gw_req_t *req)
{
    gw_upcall_t *call = &req->call;
    if (call->result == GW_UPCALL_REPLY) {
        const gw_route_t *route = req->match.route;
        const char *type = route->pass_ctype && req->content_type[0] ? req->content_type
                           : call->http_ctype[0]                     ? call->http_ctype
                           : route->reply_type[0]                    ? route->reply_type
                                                                     : GW_CTYPE_JSON;
        //  The reply buffer becomes the response body (no copy).
        gw_render_body(req, call->http_status ? call->http_status : 200, type, (char *)call->reply,
                       call->reply_len);
        call->reply = NULL;
        vz_strlcpy(req->location, call->http_location, sizeof req->location);
    } else
        s_render_error(req);
    free(call->reply);
    call->reply = NULL;
}
