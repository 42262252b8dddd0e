/*  gw_auth - the authenticate stage: who the caller is, and may it call
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  At the headers (gw_auth_credential, for the front's central checks)
 *  only whether the credential the route needs is there and well formed;
 *  after the body (gw_auth_run) the bearer JWT is verified against the
 *  cached JWKS, or the API key is looked up in the cache or sent to
 *  auth.api_key_verify, and the route's scopes are checked.
 */
#include "gw_pipeline.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_render.h"
#include "vz_authctx.h"

static const char *const s_auth_methods[GW_AUTH_METHODS] = {"jwt", "api_key", "none"};

static const char *const s_auth_results[GW_AUTH_RESULTS] = {
    "ok", "invalid", "expired", "unavailable", "forbidden", "missing", "throttled"};

static size_t s_index_of(const char *const *names, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return count;
}

static void s_auth_outcome(gw_req_t *req, const char *method, const char *result)
{
    size_t m = s_index_of(s_auth_methods, GW_AUTH_METHODS, method);
    size_t r = s_index_of(s_auth_results, GW_AUTH_RESULTS, result);
    assert(m < GW_AUTH_METHODS && r < GW_AUTH_RESULTS && "add it to s_auth_methods/results");
    //  A credential that failed costs its client address a token.
    if (r == 1 || r == 2)
        gw_buckets_charge(req->pipe->auth_fails, req->client_ip);
    vz_series_inc(gw_pipeline_counter(
        req->pipe, &req->pipe->auth_series[m][r], "vz_gateway_auth_total",
        "Authentication at the edge, by method and result", "method", method, "result", result));
}

#define S_B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

//  Refuse the request 401 with detail, counted as method and result.
static void s_refuse(gw_req_t *req, const char *method, const char *result, const char *detail)
{
    s_auth_outcome(req, method, result);
    req->reject = 401;
    req->reject_detail = detail;
}

//  Keep the presented credential value as req's cred of kind when it is 1
//  to max bytes of charset; else count method as invalid and reject 401
//  with detail.
static void s_take_credential(gw_req_t *req, gw_cred_t kind, const char *value, size_t max,
                              const char *charset, const char *method, const char *detail)
{
    size_t len = strlen(value);
    if (len == 0 || len > max || strspn(value, charset) != len) {
        s_refuse(req, method, "invalid", detail);
        return;
    }
    req->cred_kind = kind;
    req->cred = strdup(value);
    assert(req->cred);
}

//  Authentication at the edge, first part (headers only, HTTP thread):
//  is the credential the route needs there and well formed? Verifying it
//  happens once the body is in (gw_auth_run), where it may wait.
void gw_auth_credential(gw_req_t *req)
{
    const gw_route_t *route = req->match.route;
    if (route->auth == GW_AUTH_NONE)
        return;
    bool want_jwt = route->auth == GW_AUTH_JWT || route->auth == GW_AUTH_ANY;
    bool want_key = route->auth == GW_AUTH_API_KEY || route->auth == GW_AUTH_ANY;
    const char *authz =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *key = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-API-Key");
    if (want_jwt && authz && strncasecmp(authz, "Bearer ", 7) == 0) {
        const char *token = authz + 7;
        token += strspn(token, " ");
        //  base64url parts and dots only; vz_jwt checks the rest.
        s_take_credential(req, CRED_BEARER, token, VZ_JWT_TOKEN_MAX, S_B64URL ".", "jwt",
                          "malformed bearer token");
    } else if (want_key && key) {
        s_take_credential(req, CRED_APIKEY, key, GW_EDGE_APIKEY_MAX - 1,
                          S_B64URL ".~+/=", "api_key", "malformed API key");
    } else {
        s_refuse(req, "none", "missing",
                 route->auth == GW_AUTH_API_KEY ? "X-API-Key required"
                 : route->auth == GW_AUTH_JWT   ? "bearer token required"
                                                : "authentication required");
    }
}

//  JWKS fetch over: verify again (reactor thread).
static void s_on_jwks(gw_edge_waiter_t *waiter)
{
    gw_req_t *req = waiter->arg;
    req->jwks_waited = true;
    gw_pipeline_resume(req, GW_AGAIN);
}

//  auth.api_key_verify's answer (contract A) as the identity services see:
//  auth api_key, and any tier but the paid one is free. 0, or
//  VZ_EMALFORMED for a malformed reply.
static int s_apikey_decode(const gw_upcall_t *pre, bool *valid, gw_edge_identity_t *id)
{
    vz_auth_key_identity_t answer;
    memset(id, 0, sizeof *id);
    id->auth = VZ_AUTHCTX_BY_API_KEY;
    *valid = false;
    int rc = vz_auth_key_identity_decode(&answer, pre->reply, pre->reply_len, NULL);
    if (rc != 0)
        return rc;
    *valid = answer.valid;
    //  Same capacities (static asserts below): nothing is cut.
    vz_strlcpy(id->sub, answer.sub, sizeof id->sub);
    vz_strlcpy(id->scope, answer.scope, sizeof id->scope);
    vz_strlcpy(id->kid, answer.kid, sizeof id->kid);
    vz_strlcpy(id->tier,
               strcmp(answer.tier, VZ_AUTHCTX_TIER_PREMIUM) == 0 ? VZ_AUTHCTX_TIER_PREMIUM
                                                                 : VZ_AUTHCTX_TIER_FREE,
               sizeof id->tier);
    return 0;
}
_Static_assert(sizeof((gw_edge_identity_t *)0)->sub >= sizeof((vz_auth_key_identity_t *)0)->sub,
               "an API key's subject fits the identity");
_Static_assert(sizeof((gw_edge_identity_t *)0)->scope >= sizeof((vz_auth_key_identity_t *)0)->scope,
               "an API key's scopes fit the identity");
_Static_assert(sizeof((gw_edge_identity_t *)0)->kid >= sizeof((vz_auth_key_identity_t *)0)->kid,
               "an API key's id fits the identity");

static void s_on_apikey(gw_upcall_t *pre)
{
    gw_req_t *req = pre->arg;
    bool valid = false;
    gw_edge_identity_t id;
    if (pre->result == GW_UPCALL_REPLY && s_apikey_decode(pre, &valid, &id) == 0) {
        gw_edge_apikey_store(req->pipe->edge, req->cred, valid, &id);
        if (valid) {
            req->id = id;
            req->authed = true;
        }
    } else {
        s_auth_outcome(req, "api_key", "unavailable");
        gw_render_error(req, 503, VZ_ERR_UNAVAILABLE, "authentication service unavailable");
        req->retry_after = 1;
        gw_pipeline_resume(req, GW_DONE);
        return;
    }
    free(pre->reply);
    pre->reply = NULL;
    if (!req->authed) {
        s_auth_outcome(req, "api_key", "invalid");
        req->www_authenticate = true;
        gw_render_error(req, 401, VZ_AUTHCTX_ERR_UNAUTHORIZED, "invalid API key");
        gw_pipeline_resume(req, GW_DONE);
        return;
    }
    gw_pipeline_resume(req, GW_AGAIN); //  the scopes next
}

//  The stage: GW_NEXT = authenticated (or nothing needed), GW_WAIT = a
//  call or the JWKS fetch continues it, GW_DONE = answered.
gw_verdict_t gw_auth_run(gw_req_t *req)
{
    gw_pipe_t *pipe = req->pipe;
    const gw_route_t *route = req->match.route;
    if (route->auth == GW_AUTH_NONE || req->cred_kind == CRED_NONE)
        return GW_NEXT;
    const char *method = req->cred_kind == CRED_BEARER ? "jwt" : "api_key";
    //  First time here: an address that spent its allowance of failures
    //  is refused before its credential costs a verification or a call.
    int wait_s =
        req->authed || req->jwks_waited ? 0 : gw_buckets_empty(pipe->auth_fails, req->client_ip);
    if (wait_s > 0) {
        s_auth_outcome(req, method, "throttled");
        gw_render_error(req, 429, VZ_AUTHCTX_ERR_TOO_MANY,
                        "too many failed authentications from this address; retry later");
        req->retry_after = wait_s;
        return GW_DONE;
    }
    if (!req->authed && req->cred_kind == CRED_BEARER) {
        req->waiter.fn = s_on_jwks;
        req->waiter.arg = req;
        //  One wait per request at most: after a fetch, the answer stands.
        int rc = gw_edge_jwt_verify(pipe->edge, req->cred, strlen(req->cred), &req->id,
                                    req->jwks_waited ? NULL : &req->waiter);
        if (rc == GW_EDGE_EWAIT)
            return GW_WAIT; //  req may already be answered: do not touch it
        if (rc == GW_EDGE_EUNAVAIL) {
            s_auth_outcome(req, method, "unavailable");
            gw_render_error(req, 503, VZ_ERR_UNAVAILABLE, "authentication keys unavailable");
            req->retry_after = 1;
            return GW_DONE;
        }
        if (rc < 0) {
            s_auth_outcome(req, method, rc == VZ_JWT_EEXPIRED ? "expired" : "invalid");
            char message[96];
            snprintf(message, sizeof message, "invalid token: %s", vz_jwt_strerror(rc));
            req->www_authenticate = true;
            gw_render_error(req, 401, VZ_AUTHCTX_ERR_UNAUTHORIZED, message);
            return GW_DONE;
        }
        req->authed = true;
    } else if (!req->authed) {
        bool valid = false;
        gw_edge_identity_t id;
        if (!gw_edge_apikey_lookup(pipe->edge, req->cred, &valid, &id)) {
            size_t len = 0;
            vz_auth_key_verify_t verify;
            //  gw_auth_credential kept the key under GW_EDGE_APIKEY_MAX: it fits.
            vz_strlcpy(verify.key, req->cred, sizeof verify.key);
            free(req->pre_body);
            req->pre_body = vz_auth_key_verify_encode(&verify, &len);
            if (!gw_pipeline_call(req, VZ_AUTH_SERVICE, "api_key_verify", len,
                                  pipe->auth_timeout_ms, true, s_on_apikey)) {
                gw_render_error(req, 503, VZ_ERR_UNAVAILABLE, "gateway is shutting down");
                req->retry_after = 1;
                return GW_DONE;
            }
            return GW_WAIT;
        }
        if (!valid) {
            s_auth_outcome(req, method, "invalid");
            req->www_authenticate = true;
            gw_render_error(req, 401, VZ_AUTHCTX_ERR_UNAUTHORIZED, "invalid API key");
            return GW_DONE;
        }
        req->id = id;
        req->authed = true;
    }
    //  Every scope the route needs must be among the granted ones.
    size_t len = 0;
    const char *missing = vz_authctx_scope_missing(route->scopes, req->id.scope, &len);
    if (missing) {
        char message[VZ_NAME_MAX + 32];
        s_auth_outcome(req, method, "forbidden");
        snprintf(message, sizeof message, "missing scope: %.*s", (int)len, missing);
        gw_render_error(req, 403, VZ_AUTHCTX_ERR_DENIED, message);
        return GW_DONE;
    }
    s_auth_outcome(req, method, "ok");
    return GW_NEXT;
}
