/*  gateway - the public HTTP front (libmicrohttpd) of the mesh
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gateway.h"

#include <arpa/inet.h>
#include <assert.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "health.h"
#include "vz_log.h"
#include "vz_proto.h"

#define M_GET 0x1u
#define M_POST 0x2u

#define PATH_LOG_MAX 256    //  path bytes kept for the access log
#define CTYPE_MAX 128       //  longest Content-Type passed through
#define HEALTH_TIMEOUT 1000 //  ms for broker.services behind /health
#define CTYPE_JSON "application/json"
#define CTYPE_OCTETS "application/octet-stream"
#define CTYPE_PROM "text/plain; version=0.0.4; charset=utf-8"

typedef struct gw_req_t gw_req_t;
typedef void(gw_local_fn)(vz_gateway_t *gw, gw_req_t *req);

typedef struct {
    const char *path;       //  exact path
    unsigned methods;       //  M_* allowed
    const char *name;       //  metrics label
    gw_local_fn *local;     //  answers on the HTTP thread; NULL = upstream route
    vz_upcall_kind_t kind;  //  upstream: forward or health
    const char *service;    //  upstream: target service
    const char *method;     //  upstream: target method
    bool idempotent;        //  upstream: safe to retry
    bool pass_ctype;        //  echo the request's Content-Type on the reply
    const char *reply_type; //  Content-Type of replies otherwise; NULL = octet-stream
    int timeout_ms;         //  0 = the configured default
} gw_route_t;

#define ROUTE_COUNT_MAX 32 //  capacity for per-route arrays

typedef enum { REQ_NEW, REQ_WAITING, REQ_DONE } gw_state_t;

struct gw_req_t {
    vz_gateway_t *gw;                     //  owner
    struct MHD_Connection *conn;          //  its connection
    const gw_route_t *route;              //  matched route, NULL = none
    struct timespec start;                //  monotonic start
    char http_method[16];                 //  for the access log
    char path[PATH_LOG_MAX];              //  idem, truncated
    char request_id[VZ_ID_MAX];           //  accepted or generated
    char traceparent[VZ_TRACEPARENT_MAX]; //  accepted or generated
    char content_type[CTYPE_MAX];         //  request's, when passed through
    int reject;                           //  status of a failed central check, 0 = none
    uint8_t *body;                        //  collected body
    size_t body_len;                      //  its length
    size_t body_cap;                      //  allocated
    gw_state_t state;                     //  progress
    bool upstream_done;                   //  call result waits to be rendered
    vz_upcall_t call;                     //  the upstream call
    int status;                           //  response status
    char *resp;                           //  response body (heap)
    size_t resp_len;                      //  its length
    const char *resp_type;                //  response Content-Type (static)
    const char *allow;                    //  Allow header, 405 only
    bool retry_after;                     //  add Retry-After: 1
    bool queued;                          //  a response went out
    size_t sent_len;                      //  its body length, for the access log
};

struct vz_gateway_t {
    vz_gateway_config_t config;              //  copy
    vz_upstream_t *upstream;                 //  borrowed
    vz_metrics_t *metrics;                   //  borrowed
    struct MHD_Daemon *mhd;                  //  HTTP server
    int port;                                //  bound port
    int quiesced_fd;                         //  listen socket returned by quiesce, -1 = none
    atomic_bool draining;                    //  SIGTERM seen
    atomic_int inflight;                     //  live requests
    vz_series_t *inflight_gauge;             //  vz_gateway_inflight
    vz_series_t *durations[ROUTE_COUNT_MAX]; //  per route, indexed like s_routes
    vz_series_t *unmatched;                  //  duration series for the unmatched label
    const char *needed[ROUTE_COUNT_MAX];     //  services the routes need, for /health
    size_t needed_count;                     //  entries in needed
};

static void s_liveness(vz_gateway_t *gw, gw_req_t *req);
static void s_readiness(vz_gateway_t *gw, gw_req_t *req);
static void s_metrics(vz_gateway_t *gw, gw_req_t *req);

//  The route table. Checks in s_check run before any of these.
static const gw_route_t s_routes[] = {
    {.path = "/health",
     .methods = M_GET,
     .name = "health",
     .kind = VZ_UPCALL_HEALTH,
     .idempotent = true,
     .timeout_ms = HEALTH_TIMEOUT},
    {.path = "/liveness", .methods = M_GET, .name = "liveness", .local = s_liveness},
    {.path = "/readiness", .methods = M_GET, .name = "readiness", .local = s_readiness},
    {.path = "/metrics", .methods = M_GET, .name = "metrics", .local = s_metrics},
    {.path = "/v1/echo",
     .methods = M_GET | M_POST,
     .name = "echo",
     .service = "echo",
     .method = "echo",
     .idempotent = true,
     .pass_ctype = true},
    {.path = "/v1/echo/slow",
     .methods = M_POST,
     .name = "echo_slow",
     .service = "echo",
     .method = "slow"},
    {.path = "/v1/echo/whoami",
     .methods = M_GET,
     .name = "echo_whoami",
     .service = "echo",
     .method = "whoami",
     .idempotent = true,
     .reply_type = CTYPE_JSON},
};
#define ROUTE_COUNT (sizeof s_routes / sizeof s_routes[0])
static_assert(ROUTE_COUNT <= ROUTE_COUNT_MAX, "raise ROUTE_COUNT_MAX");

//  How an upstream error code becomes an HTTP answer; unknown codes are 502
//  with their own (sanitised) code.
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
    {"request_too_large", 413, "payload_too_large", "request does not fit one envelope", false},
};

// --------------------------------------------------------------------------
//  Identifiers

static void s_random_hex(char *out, size_t hex_chars)
{
    static const char digits[] = "0123456789abcdef";
    uint8_t raw[32];
    assert(hex_chars <= 2 * sizeof raw);
    if (getrandom(raw, (hex_chars + 1) / 2, 0) < 0) {
        //  getrandom only fails before the pool is seeded; ids need not be secret.
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (uint8_t)rand();
    }
    for (size_t i = 0; i < hex_chars; i++)
        out[i] = digits[(raw[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
    out[hex_chars] = '\0';
}

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
    s_random_hex(trace, 32);
    s_random_hex(span, 16);
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

//  The Allow header for a method mask (static text: it outlives the request).
static const char *s_allow_text(unsigned methods)
{
    static const char *const texts[] = {"", "GET", "POST", "GET, POST"};
    return texts[methods & (M_GET | M_POST)];
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
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            req->resp_type ? req->resp_type : CTYPE_JSON);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (req->allow)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, req->allow);
    if (req->retry_after)
        MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, "1");
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

// --------------------------------------------------------------------------
//  Upstream routes

//  Counter label for an error code: only known codes, so a worker cannot
//  blow up the series count or inject label syntax.
static const char *s_code_label(const char *code)
{
    static const char *const known[] = {
        VZ_ERR_NO_WORKER, VZ_ERR_TIMEOUT,        VZ_ERR_WORKER_LOST,  VZ_ERR_MALFORMED,
        VZ_ERR_FORBIDDEN, VZ_ERR_UNKNOWN_METHOD, VZ_ERR_OVERLOADED,   VZ_ERR_UNAVAILABLE,
        VZ_ERR_INVALID,   VZ_ERR_INTERNAL,       "request_too_large",
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
        req->retry_after = s_error_map[i].retry_after;
        return;
    }
    //  Worker codes are free text: keep only a safe spelling.
    char code[VZ_ERRCODE_MAX];
    size_t n = strspn(call->error_code, "abcdefghijklmnopqrstuvwxyz0123456789_");
    vz_strlcpy(code, n && !call->error_code[n] ? call->error_code : "bad_gateway", sizeof code);
    s_error(req, 502, code, call->error_message[0] ? call->error_message : "upstream error");
}

static void s_render_upstream(gw_req_t *req)
{
    vz_upcall_t *call = &req->call;
    if (call->kind == VZ_UPCALL_HEALTH) {
        bool healthy = false;
        char *json = vz_health_render(call, req->gw->needed, req->gw->needed_count, &healthy);
        s_set_body(req, healthy ? 200 : 503, CTYPE_JSON, json, strlen(json));
    } else if (call->result == VZ_UPCALL_REPLY) {
        const gw_route_t *route = req->route;
        const char *type = route->pass_ctype && req->content_type[0] ? req->content_type
                           : route->reply_type                       ? route->reply_type
                                                                     : CTYPE_OCTETS;
        //  The reply buffer becomes the response body (no copy).
        s_set_body(req, 200, type, (char *)call->reply, call->reply_len);
        call->reply = NULL;
    } else
        s_render_error(req);
    free(call->reply);
    call->reply = NULL;
}

//  Reactor thread: the call is over. Rendering waits for the HTTP thread,
//  so the reactor only flips the state and resumes.
static void s_on_call_done(vz_upcall_t *call)
{
    gw_req_t *req = call->arg;
    req->upstream_done = true;
    req->state = REQ_DONE;
    MHD_resume_connection(req->conn);
}

static void s_forward(vz_gateway_t *gw, gw_req_t *req)
{
    const gw_route_t *route = req->route;
    vz_upcall_t *call = &req->call;
    memset(call, 0, sizeof *call);
    call->kind = route->kind;
    if (route->service) {
        vz_strlcpy(call->service, route->service, sizeof call->service);
        vz_strlcpy(call->method, route->method, sizeof call->method);
    }
    vz_strlcpy(call->id, req->request_id, sizeof call->id);
    vz_strlcpy(call->traceparent, req->traceparent, sizeof call->traceparent);
    call->timeout_ms = route->timeout_ms > 0 ? route->timeout_ms : gw->config.timeout_ms;
    call->idempotent = route->idempotent;
    call->body = req->body;
    call->body_len = req->body_len;
    call->done = s_on_call_done;
    call->arg = req;
    //  Suspend before submitting: the reactor may resume at once.
    req->state = REQ_WAITING;
    MHD_suspend_connection(req->conn);
    if (vz_upstream_submit(gw->upstream, call) < 0) {
        s_error(req, 503, VZ_ERR_UNAVAILABLE, "gateway is shutting down");
        req->retry_after = true;
        req->state = REQ_DONE;
        MHD_resume_connection(req->conn);
    }
}

// --------------------------------------------------------------------------
//  Request life cycle

static const gw_route_t *s_route_find(const char *path)
{
    for (size_t i = 0; i < ROUTE_COUNT; i++)
        if (strcmp(s_routes[i].path, path) == 0)
            return &s_routes[i];
    return NULL;
}

static unsigned s_method_bit(const char *method)
{
    if (strcmp(method, MHD_HTTP_METHOD_GET) == 0)
        return M_GET;
    if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
        return M_POST;
    return 0;
}

//  Central checks, in order: route, method, declared size. Later issues add
//  authentication, rate limits and breakers here, before any handler.
static void s_check(vz_gateway_t *gw, gw_req_t *req, const char *method)
{
    if (!req->route) {
        req->reject = 404;
        return;
    }
    if (!(s_method_bit(method) & req->route->methods)) {
        req->reject = 405;
        return;
    }
    const char *length =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        char *end = NULL;
        unsigned long long declared = strtoull(length, &end, 10);
        if (end != length && declared > (unsigned long long)gw->config.max_body)
            req->reject = 413;
    }
}

static void s_reject(vz_gateway_t *gw, gw_req_t *req)
{
    switch (req->reject) {
    case 404:
        s_error(req, 404, "not_found", "no such route");
        break;
    case 405:
        req->allow = s_allow_text(req->route->methods);
        s_error(req, 405, "method_not_allowed", "method not allowed on this route");
        break;
    default:
        s_error(req, 413, "payload_too_large", "request body exceeds the limit");
        break;
    }
}

static gw_req_t *s_req_new(vz_gateway_t *gw, struct MHD_Connection *conn, const char *url,
                           const char *method)
{
    gw_req_t *req = calloc(1, sizeof *req);
    assert(req);
    req->gw = gw;
    req->conn = conn;
    clock_gettime(CLOCK_MONOTONIC, &req->start);
    vz_strlcpy(req->http_method, method, sizeof req->http_method);
    vz_strlcpy(req->path, url, sizeof req->path);
    req->route = s_route_find(url);

    const char *id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (s_request_id_ok(id))
        vz_strlcpy(req->request_id, id, sizeof req->request_id);
    else
        s_random_hex(req->request_id, 32);
    const char *tp = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent");
    if (s_traceparent_ok(tp))
        vz_strlcpy(req->traceparent, tp, sizeof req->traceparent);
    else
        s_new_traceparent(req->traceparent);

    if (req->route && req->route->pass_ctype) {
        const char *ct =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        //  Only printable ASCII goes back into a header.
        if (ct && strlen(ct) < sizeof req->content_type &&
            strspn(ct, " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                       "abcdefghijklmnopqrstuvwxyz{|}~") == strlen(ct))
            vz_strlcpy(req->content_type, ct, sizeof req->content_type);
    }
    s_check(gw, req, method);
    atomic_fetch_add(&gw->inflight, 1);
    vz_series_inc(gw->inflight_gauge);
    return req;
}

static void s_body_append(vz_gateway_t *gw, gw_req_t *req, const char *data, size_t len)
{
    if (req->reject)
        return; //  discard: the answer is already decided
    if (req->body_len + len > (size_t)gw->config.max_body) {
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
        if (req->reject)
            s_reject(gw, req);
        else if (req->route->local)
            req->route->local(gw, req);
        else {
            //  Suspended now: the reactor may already be writing req, so
            //  leave it alone until libmicrohttpd calls again after resume.
            s_forward(gw, req);
            return MHD_YES;
        }
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
    double seconds =
        (double)(now.tv_sec - req->start.tv_sec) + (double)(now.tv_nsec - req->start.tv_nsec) / 1e9;
    //  499 (nginx's convention) when the client left before an answer.
    int status = req->queued ? req->status : 499;
    const char *route = req->route ? req->route->name : "unmatched";

    char labels[96], status_text[8], duration[32], bytes_in[24], bytes[24];
    snprintf(labels, sizeof labels, "route=%s,status=%d", route, status);
    vz_series_inc(vz_metrics_counter(gw->metrics, "vz_gateway_requests_total",
                                     "HTTP requests answered, by route and status", labels));
    vz_series_observe(req->route ? gw->durations[req->route - s_routes] : gw->unmatched, seconds);
    snprintf(status_text, sizeof status_text, "%d", status);
    snprintf(duration, sizeof duration, "%.3f", seconds * 1000.0);
    snprintf(bytes_in, sizeof bytes_in, "%zu", req->body_len);
    snprintf(bytes, sizeof bytes, "%zu", req->sent_len);
    vz_info(req->request_id, "access", "method", req->http_method, "path", req->path, "route",
            route, "status", status_text, "duration_ms", duration, "bytes_in", bytes_in, "bytes",
            bytes);

    free(req->resp);
    free(req->call.reply);
    free(req->body);
    free(req);
    vz_series_add(gw->inflight_gauge, -1);
    atomic_fetch_sub(&gw->inflight, 1);
}

// --------------------------------------------------------------------------
//  Object

vz_gateway_t *vz_gateway_new(const vz_gateway_config_t *config, vz_upstream_t *upstream,
                             vz_metrics_t *metrics)
{
    assert(config && upstream && metrics);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)config->port)};
    if (inet_pton(AF_INET, config->addr, &sa.sin_addr) != 1) {
        errno = EINVAL;
        return NULL;
    }
    vz_gateway_t *self = calloc(1, sizeof *self);
    assert(self);
    self->config = *config;
    self->upstream = upstream;
    self->metrics = metrics;
    self->quiesced_fd = -1;
    self->inflight_gauge =
        vz_metrics_gauge(metrics, "vz_gateway_inflight", "HTTP requests being served", NULL);
    const char *help = "HTTP request duration from headers to completion, by route";
    char labels[64];
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        snprintf(labels, sizeof labels, "route=%s", s_routes[i].name);
        self->durations[i] = vz_metrics_histogram(metrics, "vz_gateway_request_duration_seconds",
                                                  help, labels, NULL, 0);
    }
    self->unmatched = vz_metrics_histogram(metrics, "vz_gateway_request_duration_seconds", help,
                                           "route=unmatched", NULL, 0);
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        bool seen = !s_routes[i].service;
        for (size_t j = 0; !seen && j < self->needed_count; j++)
            seen = strcmp(self->needed[j], s_routes[i].service) == 0;
        if (!seen)
            self->needed[self->needed_count++] = s_routes[i].service;
    }

    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
    self->mhd =
        MHD_start_daemon(flags, (uint16_t)config->port, NULL, NULL, s_on_access, self,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned)config->threads, MHD_OPTION_NOTIFY_COMPLETED, s_on_completed,
                         self, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
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

int vz_gateway_inflight(const vz_gateway_t *self)
{
    assert(self);
    return atomic_load(&((vz_gateway_t *)self)->inflight);
}
