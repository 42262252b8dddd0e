/*  gateway - the public HTTP front (libmicrohttpd) of the mesh
 *  SPDX-License-Identifier: MPL-2.0
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

#include "edge.h"
#include "health.h"
#include "vz_json.h"
#include "vz_log.h"
#include "vz_proto.h"

#define PATH_LOG_MAX 256    //  path bytes kept for the access log
#define CTYPE_MAX 128       //  longest Content-Type passed through
#define ORIGIN_MAX 256      //  longest Origin echoed in CORS headers
#define HEALTH_TIMEOUT 1000 //  ms for broker.services behind /health
#define LOCAL_COUNT_MAX 8   //  capacity for per-local-route arrays
#define REQ_POOL_MAX 64     //  finished requests kept for reuse per gateway (~10 KB each)
#define LEASES_MAX 4096     //  callers with a rate-limit lease remembered at most
#define LEASE_KEY_MAX 1024  //  ip|sub|kid|tier|route
#define AUTH_METHODS 3      //  entries of s_auth_methods
#define AUTH_RESULTS 6      //  entries of s_auth_results
#define CTYPE_JSON "application/json"
#define CTYPE_OCTETS "application/octet-stream"
#define CTYPE_PROM "text/plain; version=0.0.4; charset=utf-8"
#define CTYPE_YAML "application/yaml"
#define CORS_HEADERS "Authorization, Content-Type, X-API-Key, X-Request-Id, traceparent"
#define CORS_EXPOSE                                                                                \
    "X-Request-Id, traceparent, Retry-After, RateLimit, RateLimit-Policy, X-RateLimit-Limit, "     \
    "X-RateLimit-Remaining, X-RateLimit-Reset, Location"

typedef struct gw_req_t gw_req_t;
typedef void(gw_local_fn)(vz_gateway_t *gw, gw_req_t *req);

//  The gateway's own routes (GET only), matched before the route table.
typedef struct {
    const char *path; //  exact path
    const char *name; //  metrics label
    gw_local_fn *fn;  //  answers on the HTTP thread; NULL = the health upcall
} gw_local_t;

typedef enum { REQ_NEW, REQ_WAITING, REQ_DONE } gw_state_t;

//  Steps of an upstream request after its body arrived, run in order by
//  s_advance while the connection is suspended.
typedef enum { STEP_AUTH, STEP_RATE, STEP_FORWARD } gw_step_t;

typedef enum { CRED_NONE, CRED_BEARER, CRED_APIKEY } gw_cred_t;

//  Requests are recycled through a per-gateway free list (s_req_get), and
//  a recycled one is not cleared whole: ~10 KB of calloc per request was
//  the largest memset under load. Everything up to request_id is zeroed;
//  the buffers after it are each written before they are read, or given
//  "" in s_req_get (the two calls by vz_upcall_reset).
struct gw_req_t {
    vz_gateway_t *gw;                     //  owner
    struct MHD_Connection *conn;          //  its connection
    gw_req_t *next_free;                  //  free-list link while pooled
    vz_routes_t *table;                   //  the table this request was matched on (a reference)
    const gw_local_t *local;              //  or one of the gateway's own routes
    bool preflight;                       //  OPTIONS: answered by the gateway
    struct timespec start;                //  monotonic start
    size_t url_len;                       //  full path length, for the 414 check
    int reject;                           //  status of a failed central check, 0 = none
    const char *reject_detail;            //  its message, NULL = the default (static)
    uint8_t *body;                        //  collected body
    size_t body_len;                      //  its length
    size_t body_cap;                      //  allocated
    size_t body_max;                      //  limit for this route
    gw_state_t state;                     //  progress
    bool upstream_done;                   //  call result waits to be rendered
    vz_breaker_t *breaker;                //  the upstream's breaker when the call was let through
    int status;                           //  response status
    char *resp;                           //  response body (heap)
    size_t resp_len;                      //  its length
    const char *resp_type;                //  response Content-Type (static or route-owned)
    int retry_after;                      //  Retry-After seconds, 0 = none
    bool www_authenticate;                //  add WWW-Authenticate: Bearer
    bool queued;                          //  a response went out
    size_t sent_len;                      //  its body length, for the access log
    gw_cred_t cred_kind;                  //  credential presented for the route
    char *cred;                           //  the bearer token or API key (heap), never logged
    bool authed;                          //  id holds the verified caller
    gw_step_t step;                       //  next step of s_advance
    vz_edge_waiter_t waiter;              //  queued while the JWKS is fetched
    bool jwks_waited;                     //  waited once already: do not again
    uint8_t *pre_body;                    //  body of pre (heap)
    bool rl_have;                         //  rl holds a decision: send the headers
    //  Not cleared on reuse (see above).
    char request_id[VZ_ID_MAX];           //  accepted or generated
    char traceparent[VZ_TRACEPARENT_MAX]; //  accepted or generated
    char http_method[16];                 //  for the access log
    char path[PATH_LOG_MAX];              //  idem, truncated
    char content_type[CTYPE_MAX];         //  request's, printable ASCII only
    char origin[ORIGIN_MAX];              //  allowed CORS Origin, "" = none
    char client_ip[64];                   //  peer address
    char allow[64];                       //  Allow header, "" = none
    char location[VZ_CTX_VAL_MAX];        //  Location header, "" = none
    vz_route_match_t match;               //  route and params; route NULL = none
    vz_edge_identity_t id;                //  who the caller is (valid when authed)
    vz_edge_rate_t rl;                    //  the rate-limit decision (valid when rl_have)
    uint64_t rl_cost;                     //  tokens the pending check asks for
    char rl_key[LEASE_KEY_MAX];           //  the caller's lease key (s_lease_key), leases on
    vz_upcall_t call;                     //  the upstream call
    vz_upcall_t pre;                      //  auth.api_key_verify or ratelimit.check (no ctx)
    vz_ctx_entry_t ctx[VZ_CTX_MAX];       //  call's envelope ctx (s_build_ctx)
};

struct vz_gateway_t {
    vz_gateway_config_t config;              //  copy
    vz_upstream_t *upstream;                 //  borrowed
    vz_edge_t *edge;                         //  borrowed: JWKS, caches, local buckets
    vz_metrics_t *metrics;                   //  borrowed
    vz_breakers_t *breakers;                 //  one per upstream service
    vz_leases_t *leases;                     //  rate-limit leases, NULL when off
    vz_logbuf_t *access_log;                 //  access-log lines, NULL = unbuffered
    pthread_mutex_t routes_lock;             //  held only to copy or swap routes
    vz_routes_t *routes;                     //  current table (a reference)
    char *openapi;                           //  OpenAPI document, NULL = none
    size_t openapi_len;                      //  its length
    struct MHD_Daemon *mhd;                  //  HTTP server
    int port;                                //  bound port
    int quiesced_fd;                         //  listen socket returned by quiesce, -1 = none
    atomic_bool draining;                    //  SIGTERM seen
    atomic_int inflight;                     //  live requests
    vz_series_t *inflight_gauge;             //  vz_gateway_inflight
    vz_series_t *durations[LOCAL_COUNT_MAX]; //  per local route, indexed like s_locals
    vz_series_t *unmatched;                  //  duration series for the unmatched label
    vz_series_t *reloads[2];                 //  route table reloads: [0] ok, [1] rejected
    pthread_mutex_t pool_lock;               //  guards pool and pool_count
    gw_req_t *pool;                          //  finished requests kept for reuse
    size_t pool_count;                       //  entries in pool (at most REQ_POOL_MAX)
    //  Counters looked up once each, on first use (vz_metrics_counter
    //  renders and compares its labels on every call).
    _Atomic(vz_series_t *) auth_series[AUTH_METHODS][AUTH_RESULTS]; //  vz_gateway_auth_total
    _Atomic(vz_series_t *) rate_series[2][3]; //  ratelimit_total: [allowed][local, limiter, lease]
};

static void s_liveness(vz_gateway_t *gw, gw_req_t *req);
static void s_readiness(vz_gateway_t *gw, gw_req_t *req);
static void s_metrics(vz_gateway_t *gw, gw_req_t *req);
static void s_openapi(vz_gateway_t *gw, gw_req_t *req);

static const gw_local_t s_locals[] = {
    {"/health", "health", NULL},
    {"/liveness", "liveness", s_liveness},
    {"/readiness", "readiness", s_readiness},
    {"/metrics", "metrics", s_metrics},
    {"/v1/openapi.yaml", "openapi", s_openapi},
};
#define LOCAL_COUNT (sizeof s_locals / sizeof s_locals[0])
static_assert(LOCAL_COUNT <= LOCAL_COUNT_MAX, "raise LOCAL_COUNT_MAX");

//  How an upstream error code becomes an HTTP answer (contract C); unknown
//  codes are 502 with their own (sanitised) code.
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
    {VZ_ERR_INVALID, 400, NULL, NULL, false},
    {"unauthorized", 401, NULL, NULL, false},
    {"access_denied", 403, NULL, NULL, false},
    {"not_found", 404, NULL, NULL, false},
    {"conflict", 409, NULL, NULL, false},
    {"validation_failed", 422, NULL, NULL, false},
    {"too_many_requests", 429, NULL, NULL, true},
    {"request_too_large", 413, "payload_too_large", "request does not fit one envelope", false},
    //  Only for a call that may not be sent twice (upstream.c): it was
    //  served, but its reply did not fit the bundle's.
    {VZ_ERR_REPLY_DROPPED, 502, "reply_lost",
     "the upstream's reply was lost; the request may have taken effect", false},
};

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

static void s_set_body(gw_req_t *req, int status, const char *type, char *body, size_t len)
{
    free(req->resp);
    req->status = status;
    req->resp_type = type;
    req->resp = body;
    req->resp_len = len;
}

//  {"error":{"code":..,"message":..,"request_id":..}}
static void s_error(gw_req_t *req, int status, const char *code, const char *message)
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
    s_set_body(req, status, CTYPE_JSON, body, (size_t)len);
}

static void s_json(gw_req_t *req, int status, const char *json)
{
    char *body = strdup(json);
    assert(body);
    s_set_body(req, status, CTYPE_JSON, body, strlen(body));
}

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
    const vz_edge_rate_t *rl = &req->rl;
    char value[160];
    snprintf(value, sizeof value, "\"%s\";q=%llu;w=%llu", rl->policy,
             (unsigned long long)rl->limit, (unsigned long long)rl->window);
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

static enum MHD_Result s_queue(gw_req_t *req)
{
    vz_gateway_t *gw = req->gw;
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
                                req->resp_type ? req->resp_type : CTYPE_JSON);
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
                                "Bearer realm=\"vizmesh\"");
    if (req->location[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, req->location);
    if (req->rl_have)
        s_rate_headers(req, response);
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

static void s_liveness(vz_gateway_t *gw, gw_req_t *req)
{
    s_json(req, 200, "{\"status\":\"ok\"}");
}

static void s_readiness(vz_gateway_t *gw, gw_req_t *req)
{
    if (atomic_load(&gw->draining))
        s_json(req, 503, "{\"status\":\"not_ready\",\"reason\":\"draining\"}");
    else if (!vz_upstream_link_up(gw->upstream))
        s_json(req, 503, "{\"status\":\"not_ready\",\"reason\":\"broker link down\"}");
    else
        s_json(req, 200, "{\"status\":\"ready\"}");
}

static void s_metrics(vz_gateway_t *gw, gw_req_t *req)
{
    char *text = vz_metrics_render(gw->metrics);
    assert(text);
    s_set_body(req, 200, CTYPE_PROM, text, strlen(text));
}

static void s_openapi(vz_gateway_t *gw, gw_req_t *req)
{
    if (!gw->openapi) {
        s_error(req, 404, "not_found", "no OpenAPI document configured");
        return;
    }
    char *copy = malloc(gw->openapi_len + 1);
    assert(copy);
    memcpy(copy, gw->openapi, gw->openapi_len + 1);
    s_set_body(req, 200, CTYPE_YAML, copy, gw->openapi_len);
}

//  OPTIONS: the methods of the path, plus CORS preflight headers when the
//  Origin is allowed.
static void s_preflight(vz_gateway_t *gw, gw_req_t *req)
{
    s_set_body(req, 204, NULL, NULL, 0);
}

// --------------------------------------------------------------------------
//  Upstream routes

//  Counter label for an error code: only known codes, so a worker cannot
//  blow up the series count or inject label syntax.
static const char *s_code_label(const char *code)
{
    static const char *const known[] = {
        VZ_ERR_NO_WORKER,    VZ_ERR_TIMEOUT,        VZ_ERR_WORKER_LOST,  VZ_ERR_MALFORMED,
        VZ_ERR_FORBIDDEN,    VZ_ERR_UNKNOWN_METHOD, VZ_ERR_OVERLOADED,   VZ_ERR_UNAVAILABLE,
        VZ_ERR_INVALID,      VZ_ERR_INTERNAL,       "request_too_large", "unauthorized",
        "access_denied",     "not_found",           "conflict",          "validation_failed",
        "too_many_requests", VZ_ERR_REPLY_DROPPED,
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(code, known[i]) == 0)
            return known[i];
    return "other";
}

static void s_render_error(gw_req_t *req)
{
    const vz_upcall_t *call = &req->call;
    char labels[64];
    snprintf(labels, sizeof labels, "code=%s", s_code_label(call->error_code));
    vz_series_inc(vz_metrics_counter(req->gw->metrics, "vz_gateway_upstream_errors_total",
                                     "Upstream calls that ended in an error, by code", labels));
    for (size_t i = 0; i < sizeof s_error_map / sizeof s_error_map[0]; i++) {
        if (strcmp(call->error_code, s_error_map[i].code) != 0)
            continue;
        const char *code =
            s_error_map[i].public_code ? s_error_map[i].public_code : call->error_code;
        const char *message = s_error_map[i].message ? s_error_map[i].message : call->error_message;
        s_error(req, s_error_map[i].status, code, message[0] ? message : code);
        req->retry_after = s_error_map[i].retry_after ? 1 : 0;
        req->www_authenticate = s_error_map[i].status == 401;
        return;
    }
    //  Worker codes are free text: keep only a safe spelling.
    char code[VZ_ERRCODE_MAX];
    size_t n = strspn(call->error_code, "abcdefghijklmnopqrstuvwxyz0123456789_");
    vz_strlcpy(code, n && !call->error_code[n] ? call->error_code : "bad_gateway", sizeof code);
    s_error(req, 502, code, call->error_message[0] ? call->error_message : "upstream error");
}

//  Services the current table routes to, for /health; a route marked
//  optional (a service not every deployment runs) does not count.
static size_t s_needed(vz_routes_t *table, const char **needed, size_t cap)
{
    size_t count = 0;
    for (size_t i = 0; table && i < vz_routes_count(table); i++) {
        if (vz_routes_at(table, i)->optional)
            continue;
        const char *service = vz_routes_at(table, i)->service;
        bool seen = false;
        for (size_t j = 0; !seen && j < count; j++)
            seen = strcmp(needed[j], service) == 0;
        if (!seen && count < cap)
            needed[count++] = service;
    }
    return count;
}

static void s_render_upstream(gw_req_t *req)
{
    vz_upcall_t *call = &req->call;
    if (call->kind == VZ_UPCALL_HEALTH) {
        bool healthy = false;
        const char *needed[VZ_ROUTES_MAX];
        size_t count = s_needed(req->table, needed, VZ_ROUTES_MAX);
        char *json = vz_health_render(call, needed, count, &healthy);
        s_set_body(req, healthy ? 200 : 503, CTYPE_JSON, json, strlen(json));
    } else if (call->result == VZ_UPCALL_REPLY) {
        const vz_route_t *route = req->match.route;
        const char *type = route->pass_ctype && req->content_type[0] ? req->content_type
                           : route->reply_type[0]                    ? route->reply_type
                                                                     : CTYPE_JSON;
        //  The reply buffer becomes the response body (no copy).
        s_set_body(req, call->http_status ? call->http_status : 200, type, (char *)call->reply,
                   call->reply_len);
        call->reply = NULL;
        vz_strlcpy(req->location, call->http_location, sizeof req->location);
    } else
        s_render_error(req);
    free(call->reply);
    call->reply = NULL;
}

//  Reactor thread: the call is over. Rendering waits for the HTTP thread,
//  so the reactor only records the outcome, flips the state and resumes.
static void s_on_call_done(vz_upcall_t *call)
{
    gw_req_t *req = call->arg;
    if (req->breaker)
        vz_breaker_record(req->breaker,
                          call->result == VZ_UPCALL_ERROR &&
                              vz_breaker_is_failure(call->error_code),
                          vz_now_ms());
    req->upstream_done = true;
    req->state = REQ_DONE;
    MHD_resume_connection(req->conn);
}

static void s_ctx_add(gw_req_t *req, const char *key, const char *value)
{
    vz_upcall_t *call = &req->call;
    if (call->ctx_count == VZ_CTX_MAX)
        return; //  routes.c bounds params and headers, so this cannot be reached
    vz_ctx_entry_t *e = &req->ctx[call->ctx_count++];
    vz_strlcpy(e->key, key, sizeof e->key);
    vz_strlcpy(e->value, value, sizeof e->value);
}

//  The envelope ctx: auth context (contract B), content type, path
//  params, forwarded headers (webhook signatures).
static void s_build_ctx(gw_req_t *req)
{
    vz_upcall_t *call = &req->call;
    const vz_route_t *route = req->match.route;
    call->ctx = req->ctx;
    if (req->authed) {
        //  The verified identity only; the credential itself stays here.
        s_ctx_add(req, "auth", req->id.auth);
        s_ctx_add(req, "sub", req->id.sub);
        s_ctx_add(req, "scope", req->id.scope);
        s_ctx_add(req, "tier", req->id.tier);
        if (req->id.kid[0])
            s_ctx_add(req, "kid", req->id.kid);
    } else {
        s_ctx_add(req, "auth", "none");
        s_ctx_add(req, "tier", "anonymous");
    }
    s_ctx_add(req, "client_ip", req->client_ip);
    if (req->content_type[0])
        s_ctx_add(req, "content_type", req->content_type);
    char key[VZ_CTX_KEY_MAX * 2]; //  routes.c keeps prefix + name within VZ_CTX_KEY_MAX
    for (size_t i = 0; i < req->match.param_count; i++) {
        snprintf(key, sizeof key, "path.%s", req->match.param_name[i]);
        s_ctx_add(req, key, req->match.param_value[i]);
    }
    for (size_t i = 0; i < route->header_count; i++) {
        const char *value =
            MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, route->headers[i]);
        if (!value)
            continue;
        snprintf(key, sizeof key, "header.%s", route->headers[i]);
        s_ctx_add(req, key, value);
    }
}

//  Submit the prepared call; the connection is already suspended.
static void s_submit(vz_gateway_t *gw, gw_req_t *req)
{
    vz_upcall_t *call = &req->call;
    vz_strlcpy(call->id, req->request_id, sizeof call->id);
    vz_strlcpy(call->traceparent, req->traceparent, sizeof call->traceparent);
    call->body = req->body;
    call->body_len = req->body_len;
    call->done = s_on_call_done;
    call->arg = req;
    if (vz_upstream_submit(gw->upstream, call) < 0) {
        if (req->breaker)
            vz_breaker_record(req->breaker, false, vz_now_ms()); //  not the upstream's fault
        req->breaker = NULL;
        s_error(req, 503, VZ_ERR_UNAVAILABLE, "gateway is shutting down");
        req->retry_after = 1;
        req->state = REQ_DONE;
        MHD_resume_connection(req->conn);
    }
}

//  The gateway's own upstream call (/health). HTTP thread.
static void s_forward_local(vz_gateway_t *gw, gw_req_t *req)
{
    vz_upcall_t *call = &req->call;
    vz_upcall_reset(call);
    call->kind = VZ_UPCALL_HEALTH;
    call->timeout_ms = HEALTH_TIMEOUT;
    call->idempotent = true;
    //  Suspend before submitting: the reactor may resume at once.
    req->state = REQ_WAITING;
    MHD_suspend_connection(req->conn);
    s_submit(gw, req);
}

//  Any thread, connection suspended: answer now with what req holds.
static void s_finish(gw_req_t *req)
{
    req->upstream_done = false;
    req->state = REQ_DONE;
    MHD_resume_connection(req->conn);
}

static void s_count(vz_gateway_t *gw, const char *name, const char *help, const char *labels)
{
    vz_series_inc(vz_metrics_counter(gw->metrics, name, help, labels));
}

static const char *const s_auth_methods[AUTH_METHODS] = {"jwt", "api_key", "none"};
static const char *const s_auth_results[AUTH_RESULTS] = {"ok",          "invalid",   "expired",
                                                         "unavailable", "forbidden", "missing"};

static size_t s_index_of(const char *const *names, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return count;
}

//  A counter series labelled k1=v1,k2=v2, through a once-filled slot so
//  the labels are rendered and looked up only on first use. Two threads
//  racing on an empty slot both get the same series from vz_metrics_counter.
static vz_series_t *s_cached_counter(vz_gateway_t *gw, _Atomic(vz_series_t *) *slot,
                                     const char *name, const char *help, const char *k1,
                                     const char *v1, const char *k2, const char *v2)
{
    vz_series_t *series = atomic_load_explicit(slot, memory_order_acquire);
    if (!series) {
        char labels[96];
        snprintf(labels, sizeof labels, "%s=%s,%s=%s", k1, v1, k2, v2);
        series = vz_metrics_counter(gw->metrics, name, help, labels);
        atomic_store_explicit(slot, series, memory_order_release);
    }
    return series;
}

static void s_auth_outcome(gw_req_t *req, const char *method, const char *result)
{
    size_t m = s_index_of(s_auth_methods, AUTH_METHODS, method);
    size_t r = s_index_of(s_auth_results, AUTH_RESULTS, result);
    assert(m < AUTH_METHODS && r < AUTH_RESULTS && "add it to s_auth_methods/results");
    vz_series_inc(s_cached_counter(req->gw, &req->gw->auth_series[m][r], "vz_gateway_auth_total",
                                   "Authentication at the edge, by method and result", "method",
                                   method, "result", result));
}

static void s_advance(gw_req_t *req);

//  JWKS fetch over: verify again (reactor thread).
static void s_on_jwks(vz_edge_waiter_t *waiter)
{
    gw_req_t *req = waiter->arg;
    req->jwks_waited = true;
    s_advance(req);
}

static void s_on_apikey(vz_upcall_t *pre)
{
    gw_req_t *req = pre->arg;
    bool valid = false;
    vz_edge_identity_t id;
    if (pre->result == VZ_UPCALL_REPLY &&
        vz_edge_apikey_decode(pre->reply, pre->reply_len, &valid, &id) == 0) {
        vz_edge_apikey_store(req->gw->edge, req->cred, valid, &id);
        if (valid) {
            req->id = id;
            req->authed = true;
        }
    } else {
        s_auth_outcome(req, "api_key", "unavailable");
        s_error(req, 503, VZ_ERR_UNAVAILABLE, "authentication service unavailable");
        req->retry_after = 1;
        s_finish(req);
        return;
    }
    free(pre->reply);
    pre->reply = NULL;
    if (!req->authed) {
        s_auth_outcome(req, "api_key", "invalid");
        req->www_authenticate = true;
        s_error(req, 401, "unauthorized", "invalid API key");
        s_finish(req);
        return;
    }
    s_advance(req);
}

//  Send a side call (auth or ratelimit) for req; done continues the chain.
static bool s_pre_call(gw_req_t *req, const char *service, const char *method, size_t body_len,
                       int timeout_ms, bool idempotent, vz_upcall_done_fn *done)
{
    vz_upcall_t *pre = &req->pre;
    free(pre->reply);
    vz_upcall_reset(pre);
    pre->kind = VZ_UPCALL_FORWARD;
    vz_strlcpy(pre->service, service, sizeof pre->service);
    vz_strlcpy(pre->method, method, sizeof pre->method);
    vz_strlcpy(pre->id, req->request_id, sizeof pre->id);
    vz_strlcpy(pre->traceparent, req->traceparent, sizeof pre->traceparent);
    pre->timeout_ms = timeout_ms;
    pre->idempotent = idempotent;
    pre->body = req->pre_body;
    pre->body_len = body_len;
    pre->done = done;
    pre->arg = req;
    return vz_upstream_submit(req->gw->upstream, pre) == 0;
}

//  Every scope the route needs must be among the granted ones.
static const char *s_missing_scope(const char *needed, const char *granted, char *buf, size_t n)
{
    for (const char *p = needed; *p;) {
        p += strspn(p, " ");
        size_t len = strcspn(p, " ");
        if (!len)
            break;
        bool found = false;
        for (const char *g = granted; *g && !found;) {
            g += strspn(g, " ");
            size_t glen = strcspn(g, " ");
            found = glen == len && strncmp(g, p, len) == 0;
            g += glen;
        }
        if (!found) {
            snprintf(buf, n, "%.*s", (int)len, p);
            return buf;
        }
        p += len;
    }
    return NULL;
}

//  STEP_AUTH: 0 = authenticated (or nothing needed), 1 = waiting for a
//  call or the JWKS (someone else continues), -1 = answered.
static int s_auth_step(vz_gateway_t *gw, gw_req_t *req)
{
    const vz_route_t *route = req->match.route;
    if (route->auth == VZ_AUTH_NONE || req->cred_kind == CRED_NONE)
        return 0;
    const char *method = req->cred_kind == CRED_BEARER ? "jwt" : "api_key";
    if (!req->authed && req->cred_kind == CRED_BEARER) {
        req->waiter.fn = s_on_jwks;
        req->waiter.arg = req;
        //  One wait per request at most: after a fetch, the answer stands.
        int rc = vz_edge_jwt_verify(gw->edge, req->cred, strlen(req->cred), &req->id,
                                    req->jwks_waited ? NULL : &req->waiter);
        if (rc == VZ_EDGE_EWAIT)
            return 1; //  req may already be answered: do not touch it
        if (rc == VZ_EDGE_EUNAVAIL) {
            s_auth_outcome(req, method, "unavailable");
            s_error(req, 503, VZ_ERR_UNAVAILABLE, "authentication keys unavailable");
            req->retry_after = 1;
            return -1;
        }
        if (rc < 0) {
            s_auth_outcome(req, method, rc == VZ_JWT_EEXPIRED ? "expired" : "invalid");
            char message[96];
            snprintf(message, sizeof message, "invalid token: %s", vz_jwt_strerror(rc));
            req->www_authenticate = true;
            s_error(req, 401, "unauthorized", message);
            return -1;
        }
        req->authed = true;
    } else if (!req->authed) {
        bool valid = false;
        vz_edge_identity_t id;
        if (!vz_edge_apikey_lookup(gw->edge, req->cred, &valid, &id)) {
            size_t len = 0;
            free(req->pre_body);
            req->pre_body = vz_edge_apikey_request(req->cred, &len);
            if (!s_pre_call(req, "auth", "api_key_verify", len, gw->config.auth_timeout_ms, true,
                            s_on_apikey)) {
                s_error(req, 503, VZ_ERR_UNAVAILABLE, "gateway is shutting down");
                req->retry_after = 1;
                return -1;
            }
            return 1;
        }
        if (!valid) {
            s_auth_outcome(req, method, "invalid");
            req->www_authenticate = true;
            s_error(req, 401, "unauthorized", "invalid API key");
            return -1;
        }
        req->id = id;
        req->authed = true;
    }
    char scope[VZ_NAME_MAX], message[VZ_NAME_MAX + 32];
    if (s_missing_scope(route->scopes, req->id.scope, scope, sizeof scope)) {
        s_auth_outcome(req, method, "forbidden");
        snprintf(message, sizeof message, "missing scope: %s", scope);
        s_error(req, 403, "access_denied", message);
        return -1;
    }
    s_auth_outcome(req, method, "ok");
    return 0;
}

//  A decision from the limiter or the local bucket: count, keep the
//  headers, 429 when denied. false = answered.
static bool s_rate_decide(gw_req_t *req, const vz_edge_rate_t *rl, const char *source)
{
    req->rl = *rl;
    req->rl_have = true;
    int from = strcmp(source, "limiter") == 0 ? 1 : strcmp(source, "lease") == 0 ? 2 : 0;
    assert(from || strcmp(source, "local") == 0);
    vz_series_inc(s_cached_counter(req->gw, &req->gw->rate_series[rl->allowed][from],
                                   "vz_gateway_ratelimit_total",
                                   "Rate-limit decisions, by decision and source", "decision",
                                   rl->allowed ? "allowed" : "denied", "source", source));
    if (rl->allowed)
        return true;
    s_error(req, 429, "too_many_requests", "rate limit exceeded; retry later");
    req->retry_after = rl->retry_after > 0 ? (int)rl->retry_after : 1;
    return false;
}

//  The limiter did not answer in time (or not usefully): the configured
//  failure policy decides.
static bool s_rate_fallback(gw_req_t *req, const char *reason)
{
    vz_gateway_t *gw = req->gw;
    char labels[64];
    snprintf(labels, sizeof labels, "reason=%s,policy=%s", reason,
             gw->config.rl_fail_open ? "open" : "closed");
    s_count(gw, "vz_gateway_ratelimit_fallback_total",
            "Rate-limit checks the limiter did not answer in time, by reason and policy", labels);
    if (!gw->config.rl_fail_open) {
        s_count(gw, "vz_gateway_ratelimit_total", "Rate-limit decisions, by decision and source",
                "decision=denied,source=closed");
        s_error(req, 503, "rate_limit_unavailable", "rate limiter unavailable; try again later");
        req->retry_after = 1;
        return false;
    }
    vz_edge_rate_t rl;
    const char *caller = req->id.kid[0] ? req->id.kid : req->id.sub[0] ? req->id.sub : req->client_ip;
    vz_edge_local_take(gw->edge, caller, req->authed ? req->id.tier : "anonymous", &rl);
    return s_rate_decide(req, &rl, "local");
}

//  The caller a lease belongs to: every descriptor the check sends.
static void s_lease_key(const gw_req_t *req, char *out, size_t n)
{
    snprintf(out, n, "%s|%s|%s|%s|%s", req->client_ip, req->authed ? req->id.sub : "",
             req->authed ? req->id.kid : "", req->authed ? req->id.tier : "anonymous",
             req->match.route->name);
}

static bool s_rate_check(vz_gateway_t *gw, gw_req_t *req, uint64_t cost);

static void s_on_rate(vz_upcall_t *pre)
{
    gw_req_t *req = pre->arg;
    vz_gateway_t *gw = req->gw;
    vz_edge_rate_t rl;
    bool ok = pre->result == VZ_UPCALL_REPLY &&
              vz_edge_rate_decode(pre->reply, pre->reply_len, &rl) == 0;
    const char *reason =
        pre->result == VZ_UPCALL_REPLY ? "malformed" : s_code_label(pre->error_code);
    free(pre->reply);
    pre->reply = NULL;
    if (ok && !rl.allowed && req->rl_cost > 1) {
        //  Near the limit: the tokens left go one at a time.
        vz_leases_shrink(gw->leases, req->rl_key);
        if (s_rate_check(gw, req, 1))
            return;
        ok = false;
        reason = VZ_ERR_UNAVAILABLE;
    } else if (ok && rl.allowed && gw->leases)
        //  Even a check of one token starts the caller's record: the next
        //  request within a lease lifetime asks for more.
        vz_leases_grant(gw->leases, req->rl_key, req->rl_cost, &rl, vz_now_ms());
    else if (!ok && req->rl_cost > 1)
        vz_leases_abandon(gw->leases, req->rl_key);
    bool go = ok ? s_rate_decide(req, &rl, "limiter") : s_rate_fallback(req, reason);
    if (!go) {
        s_finish(req);
        return;
    }
    req->step = STEP_FORWARD;
    s_advance(req);
}

//  Send ratelimit.check for req asking cost tokens; false when it could
//  not be submitted.
static bool s_rate_check(vz_gateway_t *gw, gw_req_t *req, uint64_t cost)
{
    size_t len = 0;
    free(req->pre_body);
    req->rl_cost = cost;
    req->pre_body = vz_edge_rate_request(req->client_ip, req->authed ? req->id.sub : "",
                                         req->authed ? req->id.kid : "",
                                         req->authed ? req->id.tier : "anonymous",
                                         req->match.route->name, cost, &len);
    //  Not idempotent: a check consumes, so it is never retried.
    return s_pre_call(req, "ratelimit", "check", len, gw->config.rl_timeout_ms, false, s_on_rate);
}

//  STEP_RATE: 0 = go on, 1 = waiting for the limiter, -1 = answered.
static int s_rate_step(vz_gateway_t *gw, gw_req_t *req)
{
    const vz_route_t *route = req->match.route;
    if (!route->rate_class[0])
        return 0;
    uint64_t cost = 1;
    if (gw->leases) {
        //  A token leased earlier for this caller: no round trip.
        s_lease_key(req, req->rl_key, sizeof req->rl_key);
        vz_edge_rate_t rl;
        if (vz_leases_take(gw->leases, req->rl_key, vz_now_ms(), &rl, &cost))
            return s_rate_decide(req, &rl, "lease") ? 0 : -1;
    }
    if (s_rate_check(gw, req, cost))
        return 1;
    if (cost > 1)
        vz_leases_abandon(gw->leases, req->rl_key);
    return s_rate_fallback(req, VZ_ERR_UNAVAILABLE) ? 0 : -1;
}

//  STEP_FORWARD: breaker, then the call itself.
static void s_forward_step(vz_gateway_t *gw, gw_req_t *req)
{
    const vz_route_t *route = req->match.route;
    //  The JWKS route is answered from the cache while there is one.
    if (strcmp(route->service, "auth") == 0 && strcmp(route->call, "jwks") == 0) {
        size_t len = 0;
        char *doc = vz_edge_jwks_document(gw->edge, &len);
        if (doc) {
            s_set_body(req, 200, CTYPE_JSON, doc, len);
            s_finish(req);
            return;
        }
    }
    vz_breaker_t *breaker = vz_breakers_get(gw->breakers, route->service);
    int retry_after = 1;
    if (!vz_breaker_allow(breaker, vz_now_ms(), &retry_after)) {
        s_error(req, 503, "circuit_open", "upstream is failing; try again later");
        req->retry_after = retry_after;
        s_finish(req);
        return;
    }
    req->breaker = breaker;
    vz_upcall_t *call = &req->call;
    vz_upcall_reset(call);
    call->kind = VZ_UPCALL_FORWARD;
    vz_strlcpy(call->service, route->service, sizeof call->service);
    vz_strlcpy(call->method, route->call, sizeof call->method);
    call->timeout_ms = route->timeout_ms > 0 ? route->timeout_ms : gw->config.timeout_ms;
    call->idempotent = route->retry;
    call->alone = !route->bundle;
    s_build_ctx(req);
    s_submit(gw, req);
}

//  Any thread, connection suspended: run the steps that finish at once
//  (cached JWKS, cached API key, no rate class) and stop at the first that
//  waits for a call; its completion on the reactor calls this again. So no
//  HTTP thread ever waits on the network, and each step is chained in
//  the reactor (auth -> ratelimit.check -> forward).
static void s_advance(gw_req_t *req)
{
    vz_gateway_t *gw = req->gw;
    int rc = 0;
    if (req->step == STEP_AUTH) {
        rc = s_auth_step(gw, req);
        if (rc == 0)
            req->step = STEP_RATE;
    }
    if (rc == 0 && req->step == STEP_RATE) {
        rc = s_rate_step(gw, req);
        if (rc == 0)
            req->step = STEP_FORWARD;
    }
    if (rc > 0)
        return;
    if (rc < 0) {
        s_finish(req);
        return;
    }
    s_forward_step(gw, req);
}

// --------------------------------------------------------------------------
//  Request life cycle

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

//  Authentication at the edge, first part (headers only, HTTP thread):
//  is the credential the route needs there and well formed? Verifying it
//  happens once the body is in (s_auth_step), where it may wait.
static void s_authenticate(gw_req_t *req)
{
    const vz_route_t *route = req->match.route;
    if (route->auth == VZ_AUTH_NONE)
        return;
    bool want_jwt = route->auth == VZ_AUTH_JWT || route->auth == VZ_AUTH_ANY;
    bool want_key = route->auth == VZ_AUTH_API_KEY || route->auth == VZ_AUTH_ANY;
    const char *authz =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *key = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-API-Key");
    if (want_jwt && authz && strncasecmp(authz, "Bearer ", 7) == 0) {
        const char *token = authz + 7;
        token += strspn(token, " ");
        size_t len = strlen(token);
        //  base64url parts and dots only; vz_jwt checks the rest.
        if (len == 0 || len > VZ_JWT_TOKEN_MAX ||
            strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
                len) {
            s_auth_outcome(req, "jwt", "invalid");
            req->reject = 401;
            req->reject_detail = "malformed bearer token";
            return;
        }
        req->cred_kind = CRED_BEARER;
        req->cred = strdup(token);
    } else if (want_key && key) {
        size_t len = strlen(key);
        if (len == 0 || len >= VZ_EDGE_APIKEY_MAX ||
            strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/=") !=
                len) {
            s_auth_outcome(req, "api_key", "invalid");
            req->reject = 401;
            req->reject_detail = "malformed API key";
            return;
        }
        req->cred_kind = CRED_APIKEY;
        req->cred = strdup(key);
    } else {
        s_auth_outcome(req, "none", "missing");
        req->reject = 401;
        req->reject_detail = route->auth == VZ_AUTH_API_KEY ? "X-API-Key required"
                             : route->auth == VZ_AUTH_JWT   ? "bearer token required"
                                                            : "authentication required";
        return;
    }
    assert(req->cred);
}

//  Central checks that need only the headers, in order: route (404),
//  method (405), path length (414), declared size (413), media type (415),
//  credential (401/403).
static void s_check(vz_gateway_t *gw, gw_req_t *req)
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
    const vz_route_t *route = req->match.route;
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
        char media[CTYPE_MAX];
        s_media_type(req->content_type, media, sizeof media);
        if (!s_word_in(media, route->accept)) {
            req->reject = 415;
            return;
        }
    }
    s_authenticate(req);
}

static void s_reject(vz_gateway_t *gw, gw_req_t *req)
{
    const char *detail = req->reject_detail;
    switch (req->reject) {
    case 400:
        s_error(req, 400, "invalid_json", detail ? detail : "request body is not valid JSON");
        break;
    case 401:
        req->www_authenticate = true;
        s_error(req, 401, "unauthorized", detail ? detail : "authentication required");
        break;
    case 403:
        s_error(req, 403, "access_denied", detail ? detail : "missing scope");
        break;
    case 404:
        s_error(req, 404, "not_found", "no such route");
        break;
    case 405:
        vz_routes_allow_text(req->match.allow, req->allow, sizeof req->allow);
        s_error(req, 405, "method_not_allowed", "method not allowed on this route");
        break;
    case 414:
        s_error(req, 414, "uri_too_long", "request path exceeds the limit");
        break;
    case 415:
        s_error(req, 415, "unsupported_media_type",
                detail ? detail : "Content-Type not accepted on this route");
        break;
    case 503:
        s_error(req, 503, "circuit_open", "upstream is failing; try again later");
        break;
    default:
        s_error(req, 413, "payload_too_large", "request body exceeds the limit");
        break;
    }
}

static void s_printable_copy(char *dst, size_t n, const char *src)
{
    //  Only printable ASCII goes back into a header or into ctx.
    if (src && strlen(src) < n &&
        strspn(src, " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOP"
                    "QRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~") == strlen(src))
        vz_strlcpy(dst, src, n);
}

static bool s_origin_allowed(const vz_gateway_t *gw, const char *origin)
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
static gw_req_t *s_req_get(vz_gateway_t *gw)
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
    vz_upcall_reset(&req->call);
    vz_upcall_reset(&req->pre);
    return req;
}

//  Back to the free list once its heap members are freed (or to free()
//  when the list is full, so a burst does not stay allocated).
static void s_req_put(vz_gateway_t *gw, gw_req_t *req)
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

static gw_req_t *s_req_new(vz_gateway_t *gw, struct MHD_Connection *conn, const char *url,
                           const char *method)
{
    gw_req_t *req = s_req_get(gw);
    req->gw = gw;
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
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info && info->client_addr && info->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)info->client_addr)->sin_addr,
                  req->client_ip, sizeof req->client_ip);

    //  One reference to the current table for the whole request: a reload
    //  swaps the pointer but this request keeps matching and rendering on
    //  the table it started with.
    pthread_mutex_lock(&gw->routes_lock);
    req->table = vz_routes_ref(gw->routes);
    pthread_mutex_unlock(&gw->routes_lock);

    req->preflight = strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0;
    unsigned bit = req->preflight ? 0 : vz_routes_method_bit(method);
    const gw_local_t *local = NULL;
    for (size_t i = 0; !local && i < LOCAL_COUNT; i++)
        if (strcmp(s_locals[i].path, url) == 0)
            local = &s_locals[i];
    if (local) {
        req->match.allow = VZ_M_GET;
        req->local = bit == VZ_M_GET ? local : NULL;
    } else
        vz_routes_match(req->table, bit, url, &req->match);
    if (req->preflight)
        vz_routes_allow_text(req->match.allow, req->allow, sizeof req->allow);
    s_check(gw, req);
    atomic_fetch_add(&gw->inflight, 1);
    vz_series_inc(gw->inflight_gauge);
    return req;
}

static void s_body_append(vz_gateway_t *gw, gw_req_t *req, const char *data, size_t len)
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

//  Checks that need the whole body; true = go on (auth, rate limit,
//  breaker and the call follow in s_advance).
static bool s_check_body(vz_gateway_t *gw, gw_req_t *req)
{
    const vz_route_t *route = req->match.route;
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
    vz_gateway_t *gw = cls;
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
        else if (!req->reject && req->local && req->local->fn)
            req->local->fn(gw, req);
        else if (!req->reject && req->local) {
            s_forward_local(gw, req);
            return MHD_YES;
        } else if (!req->reject && s_check_body(gw, req)) {
            //  Suspend before anything can be submitted: from now on the
            //  reactor may write req, so leave it alone until libmicrohttpd
            //  calls again after the resume.
            req->state = REQ_WAITING;
            req->step = STEP_AUTH;
            MHD_suspend_connection(conn);
            s_advance(req);
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
            s_render_upstream(req);
        }
        return s_queue(req);
    }
    return MHD_NO;
}

static const char *s_requests_help = "HTTP requests answered, by route and status";

static void s_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    vz_gateway_t *gw = cls;
    gw_req_t *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t)(now.tv_sec - req->start.tv_sec) * 1000000000 +
                 (now.tv_nsec - req->start.tv_nsec);
    //  499 (nginx's convention) when the client left before an answer.
    int status = req->queued ? req->status : 499;
    const char *route = req->local         ? req->local->name
                        : req->match.route ? req->match.route->name
                                           : "unmatched";

    const vz_route_t *matched = req->local ? NULL : req->match.route;
    vz_series_t *answered = !matched       ? NULL
                            : status == 200 ? matched->answered_200
                            : status == 429 ? matched->answered_429
                                            : NULL;
    if (!answered) {
        char labels[128];
        snprintf(labels, sizeof labels, "route=%s,status=%d", route, status);
        answered = vz_metrics_counter(gw->metrics, "vz_gateway_requests_total", s_requests_help,
                                      labels);
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

    free(req->resp);
    free(req->call.reply);
    free(req->pre.reply);
    free(req->pre_body);
    free(req->cred);
    free(req->body);
    vz_routes_unref(&req->table);
    s_req_put(gw, req);
    vz_series_add(gw->inflight_gauge, -1);
    atomic_fetch_sub(&gw->inflight, 1);
}

// --------------------------------------------------------------------------
//  Object

static const char *s_duration_help = "HTTP request duration from headers to completion, by route";

void vz_gateway_set_routes(vz_gateway_t *self, vz_routes_t **routes_p)
{
    assert(self && routes_p && *routes_p);
    vz_routes_t *routes = *routes_p;
    *routes_p = NULL;
    //  Series first: once published the table is read-only.
    char labels[96];
    for (size_t i = 0; i < vz_routes_count(routes); i++) {
        vz_route_t *route = vz_routes_at(routes, i);
        snprintf(labels, sizeof labels, "route=%s", route->name);
        route->duration = vz_metrics_histogram(self->metrics, "vz_gateway_request_duration_seconds",
                                               s_duration_help, labels, NULL, 0);
        //  The two statuses of the hot paths (served, limited), looked up
        //  once here rather than per request; the rest in s_on_completed.
        snprintf(labels, sizeof labels, "route=%s,status=200", route->name);
        route->answered_200 = vz_metrics_counter(self->metrics, "vz_gateway_requests_total",
                                                 s_requests_help, labels);
        snprintf(labels, sizeof labels, "route=%s,status=429", route->name);
        route->answered_429 = vz_metrics_counter(self->metrics, "vz_gateway_requests_total",
                                                 s_requests_help, labels);
    }
    pthread_mutex_lock(&self->routes_lock);
    vz_routes_t *old = self->routes;
    self->routes = routes;
    pthread_mutex_unlock(&self->routes_lock);
    vz_routes_unref(&old); //  freed when the last request on it completes
    vz_series_set(
        vz_metrics_gauge(self->metrics, "vz_gateway_routes", "Routes in the active table", NULL),
        (double)vz_routes_count(routes));
}

//  Read the OpenAPI document once; it changes with a release, not at run time.
static void s_load_openapi(vz_gateway_t *self)
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

vz_gateway_t *vz_gateway_new(const vz_gateway_config_t *config, vz_routes_t **routes_p,
                             vz_upstream_t *upstream, vz_edge_t *edge, vz_metrics_t *metrics)
{
    assert(config && routes_p && *routes_p && upstream && edge && metrics);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)config->port)};
    if (inet_pton(AF_INET, config->addr, &sa.sin_addr) != 1) {
        errno = EINVAL;
        return NULL;
    }
    vz_gateway_t *self = calloc(1, sizeof *self);
    assert(self);
    self->config = *config;
    self->upstream = upstream;
    self->edge = edge;
    self->metrics = metrics;
    self->quiesced_fd = -1;
    pthread_mutex_init(&self->routes_lock, NULL);
    pthread_mutex_init(&self->pool_lock, NULL);
    self->breakers = vz_breakers_new(&config->breaker, metrics);
    self->leases = vz_leases_new(config->rl_lease, config->rl_lease_ms, LEASES_MAX);
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
    vz_gateway_set_routes(self, routes_p);
    s_load_openapi(self);
    //  Breakers of every routed service exist from the start, so their
    //  state is on /metrics before the first failure.
    const char *needed[VZ_ROUTES_MAX];
    size_t count = s_needed(self->routes, needed, VZ_ROUTES_MAX);
    for (size_t i = 0; i < count; i++)
        vz_breakers_get(self->breakers, needed[i]);

    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
    self->mhd = MHD_start_daemon(
        flags, (uint16_t)config->port, NULL, NULL, s_on_access, self, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)config->threads,
        MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, self, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)config->idle_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)config->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)config->max_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)config->max_header, MHD_OPTION_END);
    if (!self->mhd) {
        int saved = errno ? errno : EADDRINUSE;
        vz_gateway_destroy(&self);
        errno = saved;
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : config->port;
    return self;
}

void vz_gateway_destroy(vz_gateway_t **self_p)
{
    assert(self_p);
    vz_gateway_t *self = *self_p;
    if (!self)
        return;
    if (self->mhd)
        MHD_stop_daemon(self->mhd);
    if (self->quiesced_fd >= 0)
        close(self->quiesced_fd);
    vz_routes_unref(&self->routes);
    vz_breakers_destroy(&self->breakers);
    vz_leases_destroy(&self->leases);
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

int vz_gateway_port(const vz_gateway_t *self)
{
    assert(self);
    return self->port;
}

void vz_gateway_drain(vz_gateway_t *self)
{
    assert(self);
    if (atomic_exchange(&self->draining, true))
        return;
    MHD_socket fd = MHD_quiesce_daemon(self->mhd);
    if (fd != MHD_INVALID_SOCKET)
        self->quiesced_fd = fd;
}

void vz_gateway_flush_log(vz_gateway_t *self)
{
    assert(self);
    vz_logbuf_flush(self->access_log);
}

int vz_gateway_inflight(const vz_gateway_t *self)
{
    assert(self);
    return atomic_load(&((vz_gateway_t *)self)->inflight);
}
