/*  gateway - the public HTTP front (libmicrohttpd) of the mesh
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Entered only by libmicrohttpd's two callbacks: s_on_access (headers,
 *  body chunks, the last call, the call after a resume) and s_on_completed.
 *  It parses and checks; the stages after the checks are gw_pipeline.h's.
 */
#include "gateway.h"

#include <arpa/inet.h>
#include <assert.h>
#include <microhttpd.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "gw_pipeline.h"
#include "health.h"
#include "gw_proxy.h"
#include "gw_render.h"
#include "vz_authctx.h"
#include "vz_json.h"
#include "vz_log.h"
#include "vz_proto.h"
#include "vz_telemetry.h"

#define LOCAL_COUNT_MAX 8 //  capacity for per-local-route arrays
#define REQ_POOL_MAX 64   //  finished requests kept for reuse per gateway (~10 KB each)
#define CTYPE_YAML "application/yaml"
#define CORS_HEADERS "Authorization, Content-Type, X-API-Key, X-Request-Id, traceparent"
#define CORS_EXPOSE                                                                                \
    "X-Request-Id, traceparent, Retry-After, RateLimit, RateLimit-Policy, X-RateLimit-Limit, "     \
    "X-RateLimit-Remaining, X-RateLimit-Reset, Location, Deprecation, Sunset, Link"

typedef void(gw_local_fn)(gw_gateway_t *gw, gw_req_t *req);

//  The gateway's own routes (GET only), matched before the route table.
struct gw_local_t {
    const char *path; //  exact path
    const char *name; //  metrics label
    gw_local_fn *fn;  //  answers on the HTTP thread
};

struct gw_gateway_t {
    gw_gateway_config_t config;              //  copy
    gw_upstream_t *upstream;                 //  borrowed
    vz_metrics_t *metrics;                   //  borrowed
    gw_pipe_t *pipe;                         //  the stages' shared state
    vz_logbuf_t *access_log;                 //  access-log lines, NULL = unbuffered
    pthread_mutex_t routes_lock;             //  held only to copy or swap routes
    gw_routes_t *routes;                     //  current table (a reference)
    char *openapi;                           //  OpenAPI document, NULL = none
    size_t openapi_len;                      //  its length
    struct MHD_Daemon *mhd;                  //  HTTP server
    int port;                                //  bound port
    int quiesced_fd;                         //  listen socket returned by quiesce, -1 = none
    gw_proxy_t *proxy;                       //  the PROXY-protocol acceptor, NULL = MHD listens
    _Atomic(gw_health_cache_t *) health;     //  /health's cached verdict (main's), NULL = none yet
    atomic_bool draining;                    //  SIGTERM seen
    atomic_int inflight;                     //  live requests
    vz_series_t *inflight_gauge;             //  vz_gateway_inflight
    vz_series_t *durations[LOCAL_COUNT_MAX]; //  per local route, indexed like s_locals
    vz_series_t *unmatched;                  //  duration series for the unmatched label
    vz_series_t *reloads[2];                 //  route table reloads: [0] ok, [1] rejected
    pthread_mutex_t pool_lock;               //  guards pool and pool_count
    gw_req_t *pool;                          //  finished requests kept for reuse
    size_t pool_count;                       //  entries in pool (at most REQ_POOL_MAX)
    _Atomic(vz_telemetry_t *) telemetry;     //  the reporter (borrowed), or NULL
};

static void s_liveness(gw_gateway_t *gw, gw_req_t *req);
static void s_readiness(gw_gateway_t *gw, gw_req_t *req);
static void s_health(gw_gateway_t *gw, gw_req_t *req);
static void s_openapi(gw_gateway_t *gw, gw_req_t *req);

//  /metrics and the detailed /health are on the admin port only.
static const gw_local_t s_locals[] = {
    {"/health", "health", s_health},
    {"/liveness", "liveness", s_liveness},
    {"/readiness", "readiness", s_readiness},
    {"/v1/openapi.yaml", "openapi", s_openapi},
};
#define LOCAL_COUNT (sizeof s_locals / sizeof s_locals[0])
static_assert(LOCAL_COUNT <= LOCAL_COUNT_MAX, "raise LOCAL_COUNT_MAX");

// --------------------------------------------------------------------------
//  Identifiers

static bool s_request_id_ok(const char *id)
{
    size_t len = id ? strlen(id) : 0;
    if (len == 0 || len >= VZ_ID_MAX)
        return false;
    return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

static bool s_lower_hex(const char *s, size_t n, bool allow_zero)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
        nonzero |= s[i] != '0';
    }
    return allow_zero || nonzero;
}

//  W3C trace context: 2 hex version (not ff) - 32 hex trace id (not all zero)
//  - 16 hex parent id (not all zero) - 2 hex flags. Only version 00's exact
//  length is accepted, since we propagate it unchanged.
static bool s_traceparent_ok(const char *tp)
{
    if (!tp || strlen(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return false;
    return s_lower_hex(tp, 2, true) && strncmp(tp, "ff", 2) != 0 &&
           s_lower_hex(tp + 3, 32, false) && s_lower_hex(tp + 36, 16, false) &&
           s_lower_hex(tp + 53, 2, true);
}

static void s_new_traceparent(char *out)
{
    char trace[33], span[17];
    vz_random_hex(trace, 32);
    vz_random_hex(span, 16);
    snprintf(out, VZ_TRACEPARENT_MAX, "00-%s-%s-01", trace, span);
}

// --------------------------------------------------------------------------
//  Responses

static void s_cors_headers(gw_req_t *req, struct MHD_Response *response)
{
    if (!req->origin[0])
        return;
    MHD_add_response_header(response, "Access-Control-Allow-Origin", req->origin);
    MHD_add_response_header(response, "Vary", "Origin");
    if (req->preflight) {
        MHD_add_response_header(response, "Access-Control-Allow-Methods", req->allow);
        MHD_add_response_header(response, "Access-Control-Allow-Headers", CORS_HEADERS);
        MHD_add_response_header(response, "Access-Control-Max-Age", "600");
    } else
        MHD_add_response_header(response, "Access-Control-Expose-Headers", CORS_EXPOSE);
}

//  IETF httpapi ratelimit-headers (draft 08 structured fields) and the
//  older X-RateLimit-* trio, from the limiter's (or the local bucket's) answer.
static void s_rate_headers(gw_req_t *req, struct MHD_Response *response)
{
    const vz_rl_decision_t *rl = &req->rl;
    char value[160];
    snprintf(value, sizeof value, "\"%s\";q=%llu;w=%llu", rl->policy, (unsigned long long)rl->limit,
             (unsigned long long)rl->window);
    MHD_add_response_header(response, "RateLimit-Policy", value);
    snprintf(value, sizeof value, "\"%s\";r=%llu;t=%llu", rl->policy,
             (unsigned long long)rl->remaining, (unsigned long long)rl->reset);
    MHD_add_response_header(response, "RateLimit", value);
    snprintf(value, sizeof value, "%llu", (unsigned long long)rl->limit);
    MHD_add_response_header(response, "X-RateLimit-Limit", value);
    snprintf(value, sizeof value, "%llu", (unsigned long long)rl->remaining);
    MHD_add_response_header(response, "X-RateLimit-Remaining", value);
    snprintf(value, sizeof value, "%llu", (unsigned long long)rl->reset);
    MHD_add_response_header(response, "X-RateLimit-Reset", value);
}

//  RFC 9745 Deprecation, RFC 8594 Sunset and their Link relations, made
//  when the route table was loaded (routes.c).
static void s_deprecation_headers(const gw_route_t *route, struct MHD_Response *response)
{
    MHD_add_response_header(response, "Deprecation", route->hdr_deprecation);
    if (route->hdr_sunset[0])
        MHD_add_response_header(response, "Sunset", route->hdr_sunset);
    if (route->hdr_link[0])
        MHD_add_response_header(response, "Link", route->hdr_link);
}

static enum MHD_Result s_queue(gw_req_t *req)
{
    gw_gateway_t *gw = req->gw;
    struct MHD_Response *response =
        MHD_create_response_from_buffer(req->resp_len, req->resp ? req->resp : (char *)"",
                                        req->resp ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!response)
        return MHD_NO;
    req->sent_len = req->resp_len;
    req->resp = NULL; //  libmicrohttpd owns it now
    MHD_add_response_header(response, "X-Request-Id", req->request_id);
    MHD_add_response_header(response, "traceparent", req->traceparent);
    if (req->status != 204)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                req->resp_type ? req->resp_type : GW_CTYPE_JSON);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (req->allow[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, req->allow);
    if (req->retry_after > 0) {
        char value[16];
        snprintf(value, sizeof value, "%d", req->retry_after);
        MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, value);
    }
    if (req->www_authenticate)
        MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                req->www_basic ? "Basic realm=\"vizmesh\""
                                               : "Bearer realm=\"vizmesh\"");
    if (req->location[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, req->location);
    if (req->rl_have)
        s_rate_headers(req, response);
    if (!req->local && req->match.route && req->match.route->deprecated_s)
        s_deprecation_headers(req->match.route, response);
    s_cors_headers(req, response);
    if (atomic_load(&gw->draining))
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)req->status, response);
    MHD_destroy_response(response);
    req->queued = rc == MHD_YES;
    return rc;
}

// --------------------------------------------------------------------------
//  Local routes

static void s_liveness(gw_gateway_t *gw, gw_req_t *req)
{
    gw_render_json(req, 200, "{\"status\":\"ok\"}");
}

static void s_readiness(gw_gateway_t *gw, gw_req_t *req)
{
    if (atomic_load(&gw->draining))
        gw_render_json(req, 503, "{\"status\":\"not_ready\",\"reason\":\"draining\"}");
    else if (!gw_upstream_link_up(gw->upstream))
        gw_render_json(req, 503, "{\"status\":\"not_ready\",\"reason\":\"broker link down\"}");
    else
        gw_render_json(req, 200, "{\"status\":\"ready\"}");
}

//  The public answer: the cached verdict only (health.h), never a wait.
static void s_health(gw_gateway_t *gw, gw_req_t *req)
{
    bool healthy = false;
    char *doc = gw->health ? gw_health_cache_get(gw->health, &healthy) : NULL;
    gw_render_json(req,
                   !doc      ? 503
                   : healthy ? 200
                             : 503,
                   !doc      ? "{\"status\":\"starting\"}"
                   : healthy ? "{\"status\":\"ok\"}"
                             : "{\"status\":\"degraded\"}");
    free(doc);
}

void gw_gateway_health_tick(gw_gateway_t *self, gw_health_cache_t *cache, int64_t now_ms)
{
    assert(self && cache);
    self->health = cache;
    pthread_mutex_lock(&self->routes_lock);
    gw_routes_t *table = gw_routes_ref(self->routes);
    pthread_mutex_unlock(&self->routes_lock);
    const char *needed[GW_ROUTES_MAX];
    size_t count = gw_render_needed(table, needed, GW_ROUTES_MAX);
    gw_health_cache_tick(cache, needed, count, now_ms);
    gw_routes_unref(&table);
}

static void s_openapi(gw_gateway_t *gw, gw_req_t *req)
{
    if (!gw->openapi) {
        gw_render_error(req, 404, VZ_AUTHCTX_ERR_NOT_FOUND, "no OpenAPI document configured");
        return;
    }
    char *copy = malloc(gw->openapi_len + 1);
    assert(copy);
    memcpy(copy, gw->openapi, gw->openapi_len + 1);
    gw_render_body(req, 200, CTYPE_YAML, copy, gw->openapi_len);
}

//  OPTIONS: the methods of the path, plus CORS preflight headers when the
//  Origin is allowed.
static void s_preflight(gw_gateway_t *gw, gw_req_t *req)
{
    gw_render_body(req, 204, NULL, NULL, 0);
}

// --------------------------------------------------------------------------
//  Central checks

//  Media type of a Content-Type value, lowercased, without parameters.
static void s_media_type(const char *ctype, char *out, size_t n)
{
    size_t len = strcspn(ctype, ";");
    while (len && ctype[len - 1] == ' ')
        len--;
    if (len >= n)
        len = n - 1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)ctype[i]);
    out[len] = '\0';
}

static bool s_word_in(const char *word, const char *list)
{
    size_t wlen = strlen(word);
    for (const char *p = list; *p;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, " ,");
        if (len && len == wlen && strncmp(p, word, len) == 0)
            return true;
        p += len;
    }
    return false;
}

//  Central checks that need only the headers, in order: route (404),
//  method (405), path length (414), declared size (413), media type (415),
//  credential (401/403).
static void s_check(gw_gateway_t *gw, gw_req_t *req)
{
    if (req->url_len > (size_t)gw->config.max_url) {
        req->reject = 414;
        return;
    }
    if (!req->match.route && !req->local) {
        if (!req->match.allow)
            req->reject = 404;
        else if (!req->preflight)
            req->reject = 405;
        return;
    }
    const gw_route_t *route = req->match.route;
    req->body_max = (size_t)gw->config.max_body;
    if (route && route->max_body > 0 && (size_t)route->max_body < req->body_max)
        req->body_max = (size_t)route->max_body;
    const char *length =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long declared = 0;
    if (length) {
        char *end = NULL;
        declared = strtoull(length, &end, 10);
        if (end != length && declared > req->body_max) {
            req->reject = 413;
            return;
        }
    }
    if (!route)
        return;
    const char *te =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    bool has_body = declared > 0 || te;
    if (route->accept[0] && (has_body || req->content_type[0])) {
        char media[GW_CTYPE_MAX];
        s_media_type(req->content_type, media, sizeof media);
        if (!s_word_in(media, route->accept)) {
            req->reject = 415;
            return;
        }
    }
    gw_auth_credential(req);
}

static void s_reject(gw_gateway_t *gw, gw_req_t *req)
{
    const char *detail = req->reject_detail;
    switch (req->reject) {
    case 400:
        gw_render_error(req, 400, "invalid_json",
                        detail ? detail : "request body is not valid JSON");
        break;
    case 401:
        req->www_authenticate = true;
        gw_render_error(req, 401, VZ_AUTHCTX_ERR_UNAUTHORIZED,
                        detail ? detail : "authentication required");
        break;
    case 403:
        gw_render_error(req, 403, VZ_AUTHCTX_ERR_DENIED, detail ? detail : "missing scope");
        break;
    case 404:
        gw_render_error(req, 404, VZ_AUTHCTX_ERR_NOT_FOUND, "no such route");
        break;
    case 405:
        gw_routes_allow_text(req->match.allow, req->allow, sizeof req->allow);
        gw_render_error(req, 405, "method_not_allowed", "method not allowed on this route");
        break;
    case 414:
        gw_render_error(req, 414, "uri_too_long", "request path exceeds the limit");
        break;
    case 415:
        gw_render_error(req, 415, "unsupported_media_type",
                        detail ? detail : "Content-Type not accepted on this route");
        break;
    case 503:
        gw_render_error(req, 503, "circuit_open", "upstream is failing; try again later");
        break;
    default:
        gw_render_error(req, 413, "payload_too_large", "request body exceeds the limit");
        break;
    }
}

// --------------------------------------------------------------------------
//  Request life cycle

static void s_printable_copy(char *dst, size_t n, const char *src)
{
    //  Only printable ASCII goes back into a header or into ctx.
    if (src && strlen(src) < n &&
        strspn(src, " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOP"
                    "QRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~") == strlen(src))
        vz_strlcpy(dst, src, n);
}

static bool s_origin_allowed(const gw_gateway_t *gw, const char *origin)
{
    const char *list = gw->config.cors_origins;
    if (!origin || !list[0])
        return false;
    if (strcmp(list, "*") == 0)
        return true;
    return s_word_in(origin, list);
}

//  A request as new: from the free list or malloc, with the head zeroed
//  and every buffer after it that may be read before written set empty.
static gw_req_t *s_req_get(gw_gateway_t *gw)
{
    pthread_mutex_lock(&gw->pool_lock);
    gw_req_t *req = gw->pool;
    if (req) {
        gw->pool = req->next_free;
        gw->pool_count--;
    }
    pthread_mutex_unlock(&gw->pool_lock);
    if (!req) {
        req = malloc(sizeof *req);
        assert(req);
    }
    memset(req, 0, offsetof(gw_req_t, request_id));
    req->content_type[0] = '\0';
    req->origin[0] = '\0';
    req->client_ip[0] = '\0';
    req->allow[0] = '\0';
    req->location[0] = '\0';
    req->match.route = NULL;
    req->match.allow = 0;
    req->match.param_count = 0;
    req->id.auth = NULL;
    req->id.sub[0] = req->id.scope[0] = req->id.tier[0] = req->id.kid[0] = '\0';
    req->id.exp = 0;
    gw_upcall_reset(&req->call);
    gw_upcall_reset(&req->pre);
    return req;
}

//  Back to the free list once its heap members are freed (or to free()
//  when the list is full, so a burst does not stay allocated).
static void s_req_put(gw_gateway_t *gw, gw_req_t *req)
{
    pthread_mutex_lock(&gw->pool_lock);
    if (gw->pool_count < REQ_POOL_MAX) {
        req->next_free = gw->pool;
        gw->pool = req;
        gw->pool_count++;
        req = NULL;
    }
    pthread_mutex_unlock(&gw->pool_lock);
    free(req);
}

static gw_req_t *s_req_new(gw_gateway_t *gw, struct MHD_Connection *conn, const char *url,
                           const char *method)
{
    gw_req_t *req = s_req_get(gw);
    req->gw = gw;
    req->pipe = gw->pipe;
    req->conn = conn;
    clock_gettime(CLOCK_MONOTONIC, &req->start);
    vz_strlcpy(req->http_method, method, sizeof req->http_method);
    vz_strlcpy(req->path, url, sizeof req->path);
    req->url_len = strlen(url);

    const char *id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (s_request_id_ok(id))
        vz_strlcpy(req->request_id, id, sizeof req->request_id);
    else
        vz_random_hex(req->request_id, 32);
    const char *tp = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent");
    if (s_traceparent_ok(tp))
        vz_strlcpy(req->traceparent, tp, sizeof req->traceparent);
    else
        s_new_traceparent(req->traceparent);
    s_printable_copy(
        req->content_type, sizeof req->content_type,
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE));
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (s_origin_allowed(gw, origin))
        s_printable_copy(req->origin, sizeof req->origin, origin);
    gw_clientip_of(gw->config.trust, gw->config.fwd_header, conn, req->client_ip,
                   sizeof req->client_ip);

    //  One reference to the current table for the whole request: a reload
    //  swaps the pointer but this request keeps matching and rendering on
    //  the table it started with.
    pthread_mutex_lock(&gw->routes_lock);
    req->table = gw_routes_ref(gw->routes);
    pthread_mutex_unlock(&gw->routes_lock);

    req->preflight = strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0;
    unsigned bit = req->preflight ? 0 : gw_routes_method_bit(method);
    const gw_local_t *local = NULL;
    for (size_t i = 0; !local && i < LOCAL_COUNT; i++)
        if (strcmp(s_locals[i].path, url) == 0)
            local = &s_locals[i];
    if (local) {
        req->match.allow = GW_M_GET;
        req->local = bit == GW_M_GET ? local : NULL;
    } else
        gw_routes_match(req->table, bit, url, &req->match);
    if (req->preflight)
        gw_routes_allow_text(req->match.allow, req->allow, sizeof req->allow);
    s_check(gw, req);
    atomic_fetch_add(&gw->inflight, 1);
    vz_series_inc(gw->inflight_gauge);
    return req;
}

static void s_body_append(gw_gateway_t *gw, gw_req_t *req, const char *data, size_t len)
{
    if (req->reject)
        return; //  discard: the answer is already decided
    if (req->body_len + len > req->body_max) {
        req->reject = 413; //  chunked uploads have no declared length
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return;
    }
    if (req->body_len + len > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + len)
            cap *= 2;
        req->body = realloc(req->body, cap);
        assert(req->body);
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
}

//  Checks that need the whole body; true = go on (the pipeline follows:
//  gw_pipeline.h).
static bool s_check_body(gw_gateway_t *gw, gw_req_t *req)
{
    const gw_route_t *route = req->match.route;
    if (route->json && req->body_len > 0) {
        vz_json_error_t error = {0};
        vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, &error);
        if (!doc) {
            req->reject = 400;
            req->reject_detail = error.reason ? error.reason : "request body is not valid JSON";
            return false;
        }
        vz_json_destroy(&doc);
    }
    return true;
}

//  libmicrohttpd calls this first with the headers, then once per body
//  chunk, then with no data; we answer only from that last call (an
//  answer on the first call makes it close the connection), or after a
//  resumed upstream call.
static enum MHD_Result s_on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    gw_gateway_t *gw = cls;
    gw_req_t *req = *con_cls;
    if (!req) {
        req = s_req_new(gw, conn, url, method);
        *con_cls = req;
        if (req->reject == 413) {
            //  Refuse a declared oversized body before reading it (and
            //  before "100 Continue"); closing the connection is right here.
            s_reject(gw, req);
            req->state = REQ_DONE;
            return s_queue(req);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        s_body_append(gw, req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->queued)
        return MHD_YES;
    switch (req->state) {
    case REQ_NEW:
        if (!req->reject && req->preflight)
            s_preflight(gw, req);
        else if (!req->reject && req->local)
            req->local->fn(gw, req);
        else if (!req->reject && s_check_body(gw, req)) {
            //  Suspend before anything can be submitted: from now on the
            //  reactor may write req, so leave it alone until libmicrohttpd
            //  calls again after the pipeline's exit resumed it.
            req->state = REQ_WAITING;
            MHD_suspend_connection(conn);
            gw_pipeline_start(req);
            return MHD_YES;
        }
        if (req->reject)
            s_reject(gw, req);
        req->state = REQ_DONE;
        return s_queue(req);
    case REQ_WAITING:
        return MHD_YES; //  not resumed yet
    case REQ_DONE:
        if (req->upstream_done) {
            req->upstream_done = false;
            gw_render_run(req);
        }
        return s_queue(req);
    }
    return MHD_NO;
}

static const char *s_requests_help = "HTTP requests answered, by route and status";

static void s_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    gw_gateway_t *gw = cls;
    gw_req_t *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns =
        (int64_t)(now.tv_sec - req->start.tv_sec) * 1000000000 + (now.tv_nsec - req->start.tv_nsec);
    //  499 (nginx's convention) when the client left before an answer.
    int status = req->queued ? req->status : 499;
    const char *route = req->local         ? req->local->name
                        : req->match.route ? req->match.route->name
                                           : "unmatched";

    const gw_route_t *matched = req->local ? NULL : req->match.route;
    vz_series_t *answered = !matched        ? NULL
                            : status == 200 ? matched->answered_200
                            : status == 429 ? matched->answered_429
                                            : NULL;
    if (!answered) {
        char labels[128];
        snprintf(labels, sizeof labels, "route=%s,status=%d", route, status);
        answered =
            vz_metrics_counter(gw->metrics, "vz_gateway_requests_total", s_requests_help, labels);
    }
    vz_series_inc(answered);
    vz_series_observe(req->local         ? gw->durations[req->local - s_locals]
                      : req->match.route ? req->match.route->duration
                                         : gw->unmatched,
                      (double)ns / 1e9);
    char status_text[8], duration[32], bytes_in[24], bytes[24];
    snprintf(status_text, sizeof status_text, "%d", status);
    snprintf(duration, sizeof duration, "%.3f", (double)ns / 1e6);
    snprintf(bytes_in, sizeof bytes_in, "%zu", req->body_len);
    snprintf(bytes, sizeof bytes, "%zu", req->sent_len);
    vz_info_to(gw->access_log, req->request_id, "access", "method", req->http_method, "path",
               req->path, "route", route, "status", status_text, "duration_ms", duration,
               "bytes_in", bytes_in, "bytes", bytes, "client_ip", req->client_ip);
    vz_telemetry_t *telemetry = atomic_load(&gw->telemetry);
    if (telemetry)
        vz_telemetry_http(telemetry, route, status, ns / 1000, req->traceparent,
                          req->authed ? req->id.sub : NULL,
                          MHD_lookup_connection_value(conn, MHD_HEADER_KIND, VZ_TL_COUNTRY_HEADER));

    free(req->resp);
    free(req->call.reply);
    free(req->pre.reply);
    free(req->pre_body);
    free(req->cred);
    free(req->body);
    gw_routes_unref(&req->table);
    s_req_put(gw, req);
    vz_series_add(gw->inflight_gauge, -1);
    atomic_fetch_sub(&gw->inflight, 1);
}

// --------------------------------------------------------------------------
//  Object

static const char *s_duration_help = "HTTP request duration from headers to completion, by route";

void gw_gateway_set_routes(gw_gateway_t *self, gw_routes_t **routes_p)
{
    assert(self && routes_p && *routes_p);
    gw_routes_t *routes = *routes_p;
    *routes_p = NULL;
    //  Series first: once published the table is read-only.
    char labels[96];
    for (size_t i = 0; i < gw_routes_count(routes); i++) {
        gw_route_t *route = gw_routes_at(routes, i);
        snprintf(labels, sizeof labels, "route=%s", route->name);
        route->duration = vz_metrics_histogram(self->metrics, "vz_gateway_request_duration_seconds",
                                               s_duration_help, labels, NULL, 0);
        //  The two statuses of the hot paths (served, limited), looked up
        //  once here rather than per request; the rest in s_on_completed.
        snprintf(labels, sizeof labels, "route=%s,status=200", route->name);
        route->answered_200 =
            vz_metrics_counter(self->metrics, "vz_gateway_requests_total", s_requests_help, labels);
        snprintf(labels, sizeof labels, "route=%s,status=429", route->name);
        route->answered_429 =
            vz_metrics_counter(self->metrics, "vz_gateway_requests_total", s_requests_help, labels);
        snprintf(labels, sizeof labels, "route=%s", route->name);
        if (route->deprecated_s)
            route->deprecated_calls = vz_metrics_counter(
                self->metrics, "vz_gateway_deprecated_requests_total",
                "Calls to routes marked deprecated (and answered 410 after their sunset), by route",
                labels);
    }
    pthread_mutex_lock(&self->routes_lock);
    gw_routes_t *old = self->routes;
    self->routes = routes;
    pthread_mutex_unlock(&self->routes_lock);
    gw_routes_unref(&old); //  freed when the last request on it completes
    vz_series_set(
        vz_metrics_gauge(self->metrics, "vz_gateway_routes", "Routes in the active table", NULL),
        (double)gw_routes_count(routes));
}

//  Read the OpenAPI document once; it changes with a release, not at run time.
static void s_load_openapi(gw_gateway_t *self)
{
    if (!self->config.openapi_path[0])
        return;
    FILE *f = fopen(self->config.openapi_path, "rb");
    if (!f) {
        vz_warn(NULL, "unable to read OpenAPI document", "path", self->config.openapi_path,
                "reason", strerror(errno));
        return;
    }
    size_t cap = 4 * 1024 * 1024;
    char *text = malloc(cap + 1);
    assert(text);
    size_t len = fread(text, 1, cap + 1, f);
    fclose(f);
    if (len > cap) {
        vz_warn(NULL, "unable to read OpenAPI document", "path", self->config.openapi_path,
                "reason", "larger than 4 MiB");
        free(text);
        return;
    }
    text[len] = '\0';
    //  Kept for the gateway's life: give back the rest of the 4 MiB.
    char *fit = realloc(text, len + 1);
    self->openapi = fit ? fit : text;
    self->openapi_len = len;
}

gw_gateway_t *gw_gateway_new(const gw_gateway_config_t *config, gw_routes_t **routes_p,
                             gw_upstream_t *upstream, gw_edge_t *edge, vz_metrics_t *metrics)
{
    assert(config && routes_p && *routes_p && upstream && edge && metrics);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)config->port)};
    if (inet_pton(AF_INET, config->addr, &sa.sin_addr) != 1) {
        errno = EINVAL;
        return NULL;
    }
    gw_gateway_t *self = calloc(1, sizeof *self);
    assert(self);
    self->config = *config;
    self->upstream = upstream;
    self->metrics = metrics;
    self->quiesced_fd = -1;
    pthread_mutex_init(&self->routes_lock, NULL);
    pthread_mutex_init(&self->pool_lock, NULL);
    self->access_log = vz_logbuf_new((size_t)config->access_log_buffer);
    self->inflight_gauge =
        vz_metrics_gauge(metrics, "vz_gateway_inflight", "HTTP requests being served", NULL);
    char labels[64];
    for (size_t i = 0; i < LOCAL_COUNT; i++) {
        snprintf(labels, sizeof labels, "route=%s", s_locals[i].name);
        self->durations[i] = vz_metrics_histogram(metrics, "vz_gateway_request_duration_seconds",
                                                  s_duration_help, labels, NULL, 0);
    }
    self->unmatched = vz_metrics_histogram(metrics, "vz_gateway_request_duration_seconds",
                                           s_duration_help, "route=unmatched", NULL, 0);
    gw_gateway_set_routes(self, routes_p);
    s_load_openapi(self);
    self->pipe = gw_pipeline_new(config, self->routes, upstream, edge, metrics);

    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
    if (config->proxy_protocol)
        flags |= MHD_USE_NO_LISTEN_SOCKET; //  gw_proxy accepts and hands over
    self->mhd = MHD_start_daemon(
        flags, (uint16_t)config->port, NULL, NULL, s_on_access, self, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)config->threads,
        MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, self, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)config->idle_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)config->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)config->max_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)config->max_header, MHD_OPTION_END);
    if (!self->mhd) {
        int saved = errno ? errno : EADDRINUSE;
        gw_gateway_destroy(&self);
        errno = saved;
        return NULL;
    }
    if (config->proxy_protocol && !(self->proxy = gw_proxy_new(&sa, self->mhd, config->trust))) {
        int saved = errno;
        gw_gateway_destroy(&self);
        errno = saved;
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    self->port = self->proxy ? gw_proxy_port(self->proxy) : info ? info->port : config->port;
    return self;
}

void gw_gateway_destroy(gw_gateway_t **self_p)
{
    assert(self_p);
    gw_gateway_t *self = *self_p;
    if (!self)
        return;
    gw_proxy_destroy(&self->proxy); //  first: it hands connections to MHD
    if (self->mhd)
        MHD_stop_daemon(self->mhd);
    if (self->quiesced_fd >= 0)
        close(self->quiesced_fd);
    gw_routes_unref(&self->routes);
    gw_pipeline_destroy(&self->pipe);
    vz_logbuf_destroy(&self->access_log); //  after MHD: no thread writes to it now
    pthread_mutex_destroy(&self->routes_lock);
    while (self->pool) {
        gw_req_t *next = self->pool->next_free;
        free(self->pool);
        self->pool = next;
    }
    pthread_mutex_destroy(&self->pool_lock);
    free(self->openapi);
    free(self);
    *self_p = NULL;
}

int gw_gateway_port(const gw_gateway_t *self)
{
    assert(self);
    return self->port;
}

void gw_gateway_drain(gw_gateway_t *self)
{
    assert(self);
    if (atomic_exchange(&self->draining, true))
        return;
    if (self->proxy)
        gw_proxy_close(self->proxy);
    MHD_socket fd = MHD_quiesce_daemon(self->mhd);
    if (fd != MHD_INVALID_SOCKET)
        self->quiesced_fd = fd;
}

void gw_gateway_flush_log(gw_gateway_t *self)
{
    assert(self);
    vz_logbuf_flush(self->access_log);
}

void gw_gateway_set_telemetry(gw_gateway_t *self, vz_telemetry_t *telemetry)
{
    assert(self);
    atomic_store(&self->telemetry, telemetry);
}

int gw_gateway_inflight(const gw_gateway_t *self)
{
    assert(self);
    return atomic_load(&((gw_gateway_t *)self)->inflight);
}
