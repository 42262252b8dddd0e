/*  test_gateway - the gateway over a real broker, echo worker and Redis
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh per run (group setup): redis-server, vz-broker, vz-echo and
 *  vz-gateway on free loopback ports with their own keys and policy in a
 *  temp dir. The tests run in order; the last ones stop echo (no_worker)
 *  and finally SIGTERM the gateway with a request in flight (drain).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_authctx.h"
#include "vz_worker.h"
#include <stdatomic.h>

#define TIMEOUT_MS 1500 //  the gateway's upstream deadline in this test
#define MAX_BODY (1024 * 1024)
#define HTTP_MS 10000

//  The test state is the mesh: Redis, broker, echo and gateway.

typedef vzt_resp_t resp_t;

static int s_http(vzt_mesh_t *mesh, const char *method, const char *path, const char *body,
                  size_t body_len, const char *const *headers, resp_t *r)
{
    char url[4096];
    snprintf(url, sizeof url, "%s%s", vzt_mesh_url(mesh), path);
    return vzt_request(method, url, headers, body, body_len, HTTP_MS, r);
}

static void s_resp_free(resp_t *r)
{
    vzt_resp_free(r);
}

//  s_http, asserting that it ran and was answered status.
static void s_http_status(vzt_mesh_t *mesh, const char *method, const char *path, const char *body,
                          size_t body_len, const char *const *headers, long status, resp_t *r)
{
    assert_int_equal(s_http(mesh, method, path, body, body_len, headers, r), 0);
    assert_int_equal(r->status, status);
}

static void s_assert_error(const resp_t *r, long status, const char *code)
{
    char needle[96];
    assert_int_equal(r->status, status);
    snprintf(needle, sizeof needle, "{\"error\":{\"code\":\"%s\"", code);
    if (!strstr(r->body, needle))
        fail_msg("expected %s in %s", needle, r->body);
    char id[80];
    assert_non_null(vzt_header(r->headers, "X-Request-Id", id, sizeof id));
    snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", id);
    assert_non_null(strstr(r->body, needle));
}

// --------------------------------------------------------------------------
//  Mesh

static char *s_path(vzt_mesh_t *mesh, const char *rel)
{
    return vzt_mesh_path(mesh, rel);
}

//  The test's route table: the echo routes plus test routes, and extra
//  (ZPL route blocks) when given; written atomically (rename) so a reload
//  never reads half a file.
static const char s_routes_base[] =
    "routes\n"
    "    echo\n        methods = \"GET POST\"\n        path = \"/v1/echo\"\n"
    "        service = \"echo\"\n        call = \"echo\"\n        retry = \"idempotent\"\n"
    "        pass_content_type = \"true\"\n        reply_type = \"application/octet-stream\"\n"
    "    echo_slow\n        methods = \"POST\"\n        path = \"/v1/echo/slow\"\n"
    "        service = \"echo\"\n        call = \"slow\"\n"
    "        reply_type = \"application/octet-stream\"\n"
    "    echo_whoami\n        methods = \"GET\"\n        path = \"/v1/echo/whoami\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        retry = \"idempotent\"\n"
    "    t_item\n        methods = \"GET DELETE\"\n        path = \"/v1/t/items/{id}/{part}\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n"
    "    t_query\n        methods = \"GET\"\n        path = \"/v1/t/query\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        query = \"period at\"\n"
    "    t_json\n        methods = \"POST\"\n        path = \"/v1/t/json\"\n"
    "        service = \"echo\"\n        call = \"echo\"\n        accept = \"application/json\"\n"
    "        json = \"true\"\n        max_body = \"64\"\n"
    "    t_private\n        methods = \"GET\"\n        path = \"/v1/t/private\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        auth = \"jwt\"\n"
    "    t_breaker\n        methods = \"POST\"\n        path = \"/v1/t/breaker\"\n"
    "        service = \"echo\"\n        call = \"slow\"\n        timeout = \"200ms\"\n"
    "    t_alone\n        methods = \"POST\"\n        path = \"/v1/t/alone\"\n"
    "        service = \"echo\"\n        call = \"echo\"\n        bundle = \"false\"\n"
    "    t_big_get\n        methods = \"GET\"\n        path = \"/v1/t/big\"\n"
    "        service = \"billing\"\n        call = \"big\"\n        retry = \"idempotent\"\n"
    "        optional = \"true\"\n        reply_type = \"application/octet-stream\"\n"
    "    t_big_post\n        methods = \"POST\"\n        path = \"/v1/t/big\"\n"
    "        service = \"billing\"\n        call = \"big\"\n        optional = \"true\"\n"
    "        reply_type = \"application/octet-stream\"\n"
    "    t_bigd_get\n        methods = \"GET\"\n        path = \"/v1/t/bigd\"\n"
    "        service = \"billing\"\n        call = \"bigd\"\n        retry = \"idempotent\"\n"
    "        optional = \"true\"\n        reply_type = \"application/octet-stream\"\n"
    "    t_bigd_post\n        methods = \"POST\"\n        path = \"/v1/t/bigd\"\n"
    "        service = \"billing\"\n        call = \"bigd\"\n        optional = \"true\"\n"
    "        reply_type = \"application/octet-stream\"\n"
    "    t_refuse\n        methods = \"GET\"\n        path = \"/v1/t/refuse\"\n"
    "        service = \"billing\"\n        call = \"refuse\"\n        optional = \"true\"\n"
    "    t_refused\n        methods = \"GET\"\n        path = \"/v1/t/refused\"\n"
    "        service = \"billing\"\n        call = \"refused\"\n        optional = \"true\"\n";

static void s_write_routes(vzt_mesh_t *mesh, const char *extra)
{
    char *text = NULL;
    assert_true(asprintf(&text, "%s%s", s_routes_base, extra ? extra : "") > 0);
    assert_int_equal(vzt_mesh_write(mesh, "routes.cfg", text), 0);
    free(text);
}

#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)

static int s_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *openapi = NULL;
    assert_true(asprintf(&openapi, "gateway:VZ_GATEWAY_OPENAPI=%s/docs/openapi.yaml",
                         getenv("VZ_SOURCE_DIR")) > 0);
    //  The default 1 s heartbeat: echo.slow blocks its worker for up to
    //  TIMEOUT_MS, which must stay below 3 heartbeats.
    char *const env[] = {openapi,
                         "gateway:VZ_GATEWAY_TIMEOUT_MS=" S_STR(TIMEOUT_MS),
                         "gateway:VZ_DRAIN_TIMEOUT_MS=5000",
                         "gateway:VZ_GATEWAY_BREAKER_FAILURES=3",
                         "gateway:VZ_GATEWAY_BREAKER_COOLDOWN_MS=1000",
                         "gateway:VZ_GATEWAY_CORS_ORIGINS=https://app.example,https://b.example",
                         "gateway:VZ_GATEWAY_MAX_URL=1024",
                         "gateway:VZ_GATEWAY_HEALTH_PROBE_MS=200",
                         NULL};
    const char *const files[] = {"routes.cfg", s_routes_base, NULL};
    vzt_mesh_t *mesh = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "gateway",
                                                         .daemons = "echo,gateway",
                                                         .identities = "billing",
                                                         .env = env,
                                                         .files = files});
    free(openapi);
    assert_non_null(mesh);
    *state = mesh;
    return 0;
}

static int s_teardown(void **state)
{
    int rc = vzt_mesh_destroy((vzt_mesh_t **)state);
    curl_global_cleanup();
    return rc;
}

// --------------------------------------------------------------------------
//  Tests

static void test_echo_round_trip(void **state)
{
    vzt_mesh_t *mesh = *state;
    //  Binary body with NUL and high bytes must come back byte for byte.
    char body[300];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)(i * 7);
    const char *const headers[] = {"Content-Type: application/x-vz-test", NULL};
    resp_t r;
    s_http_status(mesh, "POST", "/v1/echo", body, sizeof body, headers, 200, &r);
    assert_int_equal(r.body_len, sizeof body);
    assert_memory_equal(r.body, body, sizeof body);
    char value[128];
    assert_string_equal(vzt_header(r.headers, "Content-Type", value, sizeof value),
                        "application/x-vz-test");
    s_resp_free(&r);

    s_http_status(mesh, "GET", "/v1/echo", NULL, 0, NULL, 200, &r);
    assert_int_equal(r.body_len, 0);
    s_resp_free(&r);
}

static void test_request_id(void **state)
{
    vzt_mesh_t *mesh = *state;
    char value[128];
    resp_t r;
    const char *const given[] = {"X-Request-Id: req-42.A_b", NULL};
    s_http_status(mesh, "POST", "/v1/echo", "x", 1, given, 200, &r);
    assert_string_equal(vzt_header(r.headers, "X-Request-Id", value, sizeof value), "req-42.A_b");
    s_resp_free(&r);

    //  Missing or unsafe ids are replaced by 32 hex characters.
    const char *const bad[] = {"X-Request-Id: bad id;rm", NULL};
    for (int i = 0; i < 2; i++) {
        s_http_status(mesh, "GET", "/v1/echo", NULL, 0, i ? bad : NULL, 200, &r);
        assert_non_null(vzt_header(r.headers, "X-Request-Id", value, sizeof value));
        assert_int_equal(strlen(value), 32);
        assert_int_equal(strspn(value, "0123456789abcdef"), 32);
        s_resp_free(&r);
    }
    //  Errors carry it too.
    assert_int_equal(s_http(mesh, "GET", "/nope", NULL, 0, given, &r), 0);
    assert_string_equal(vzt_header(r.headers, "X-Request-Id", value, sizeof value), "req-42.A_b");
    s_resp_free(&r);
}

static void test_traceparent(void **state)
{
    vzt_mesh_t *mesh = *state;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    char header[128], value[128];
    snprintf(header, sizeof header, "traceparent: %s", tp);
    const char *const headers[] = {header, "X-Request-Id: whoami-1", NULL};
    resp_t r;
    s_http_status(mesh, "GET", "/v1/echo/whoami", NULL, 0, headers, 200, &r);
    assert_string_equal(vzt_header(r.headers, "traceparent", value, sizeof value), tp);
    //  The worker saw the same trace context and id, and the gateway's identity.
    char expect[160];
    snprintf(expect, sizeof expect, "\"traceparent\":\"%s\"", tp);
    if (!strstr(r.body, expect) || !strstr(r.body, "\"caller\":\"gateway\"") ||
        !strstr(r.body, "\"request_id\":\"whoami-1\""))
        fail_msg("whoami said %s", r.body);
    s_resp_free(&r);

    //  An invalid one is replaced by a fresh valid one.
    const char *const bad[] = {"traceparent: 00-xyz-01", NULL};
    assert_int_equal(s_http(mesh, "GET", "/v1/echo", NULL, 0, bad, &r), 0);
    assert_non_null(vzt_header(r.headers, "traceparent", value, sizeof value));
    assert_int_equal(strlen(value), 55);
    assert_memory_equal(value, "00-", 3);
    assert_string_not_equal(value, "00-xyz-01");
    s_resp_free(&r);
}

static void test_client_errors(void **state)
{
    vzt_mesh_t *mesh = *state;
    char value[64];
    resp_t r;
    assert_int_equal(s_http(mesh, "GET", "/v2/none", NULL, 0, NULL, &r), 0);
    s_assert_error(&r, 404, "not_found");
    s_resp_free(&r);

    assert_int_equal(s_http(mesh, "PUT", "/v1/echo", "x", 1, NULL, &r), 0);
    s_assert_error(&r, 405, "method_not_allowed");
    assert_string_equal(vzt_header(r.headers, "Allow", value, sizeof value), "GET, POST");
    s_resp_free(&r);

    assert_int_equal(s_http(mesh, "GET", "/v1/echo/slow", NULL, 0, NULL, &r), 0);
    s_assert_error(&r, 405, "method_not_allowed");
    assert_string_equal(vzt_header(r.headers, "Allow", value, sizeof value), "POST");
    s_resp_free(&r);

    //  Declared too large: refused before the body is read.
    char *big = calloc(1, MAX_BODY + 1);
    assert_non_null(big);
    assert_int_equal(s_http(mesh, "POST", "/v1/echo", big, MAX_BODY + 1, NULL, &r), 0);
    s_assert_error(&r, 413, "payload_too_large");
    s_resp_free(&r);
    //  Chunked (no declared length): counted while it arrives.
    const char *const chunked[] = {"Transfer-Encoding: chunked", NULL};
    assert_int_equal(s_http(mesh, "POST", "/v1/echo", big, MAX_BODY + 1, chunked, &r), 0);
    s_assert_error(&r, 413, "payload_too_large");
    s_resp_free(&r);
    //  Exactly the limit passes the gateway but not the 1 MiB envelope frame.
    assert_int_equal(s_http(mesh, "POST", "/v1/echo", big, MAX_BODY, NULL, &r), 0);
    s_assert_error(&r, 413, "payload_too_large");
    s_resp_free(&r);
    free(big);
}

static void test_timeout(void **state)
{
    vzt_mesh_t *mesh = *state;
    resp_t r;
    s_http_status(mesh, "POST", "/v1/echo/slow", "20", 2, NULL, 200, &r);
    assert_string_equal(r.body, "ok");
    s_resp_free(&r);

    assert_int_equal(s_http(mesh, "POST", "/v1/echo/slow", "5000", 4, NULL, &r), 0);
    s_assert_error(&r, 504, "timeout");
    //  Answered at the deadline, not at the worker's 5 s.
    assert_true(r.seconds >= TIMEOUT_MS / 1000.0 - 0.1);
    assert_true(r.seconds < TIMEOUT_MS / 1000.0 + 1.0);
    s_resp_free(&r);
}

//  GET path on the gateway's admin port into r.
static int s_admin(vzt_mesh_t *mesh, const char *path, resp_t *r)
{
    char *url = vzt_fmt("http://127.0.0.1:%d%s", vzt_mesh_admin_port(mesh, "gateway"), path);
    int rc = vzt_request("GET", url, NULL, NULL, 0, HTTP_MS, r);
    free(url);
    return rc;
}

typedef struct {
    vzt_mesh_t *mesh;   //  the gateway's
    long status;        //  wanted
    const char *needle; //  in the body
} health_goal_t;

//  The detailed /health (admin port) answers goal's status with its needle:
//  the cached document follows a change within a probe period.
static bool s_health_is(void *arg)
{
    health_goal_t *goal = arg;
    resp_t r;
    bool ok = s_admin(goal->mesh, "/health", &r) == 0 && r.status == goal->status &&
              strstr(r.body, goal->needle);
    s_resp_free(&r);
    return ok;
}

static void s_wait_health(vzt_mesh_t *mesh, long status, const char *needle)
{
    health_goal_t goal = {mesh, status, needle};
    if (!vzt_wait_until(s_health_is, &goal, 5000)) {
        resp_t r;
        assert_int_equal(s_admin(mesh, "/health", &r), 0);
        fail_msg("admin /health %ld, not %ld with %s: %s", r.status, status, needle, r.body);
    }
}

//  The public /health: only the verdict, from the cache; the document with
//  the broker, Redis and every service is on the admin port.
static void test_probes(void **state)
{
    vzt_mesh_t *mesh = *state;
    resp_t r;
    s_http_status(mesh, "GET", "/liveness", NULL, 0, NULL, 200, &r);
    s_resp_free(&r);
    s_http_status(mesh, "GET", "/readiness", NULL, 0, NULL, 200, &r);
    s_resp_free(&r);

    s_wait_health(mesh, 200, "\"echo\":{\"status\":\"up\",\"workers\":");
    assert_int_equal(s_admin(mesh, "/health", &r), 0);
    if (r.status != 200 || !strstr(r.body, "\"status\":\"ok\"") ||
        !strstr(r.body, "\"broker\":{\"status\":\"up\"}") ||
        !strstr(r.body, "\"redis\":{\"status\":\"up\"}"))
        fail_msg("admin health %ld: %s", r.status, r.body);
    s_resp_free(&r);
    s_http_status(mesh, "GET", "/health", NULL, 0, NULL, 200, &r);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    s_resp_free(&r);
}

static void test_metrics(void **state)
{
    vzt_mesh_t *mesh = *state;
    resp_t r;
    s_http_status(mesh, "GET", "/health", NULL, 0, NULL, 200, &r); //  counted below
    s_resp_free(&r);
    //  Not on the public port any more.
    assert_int_equal(s_http(mesh, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    s_assert_error(&r, 404, "not_found");
    s_resp_free(&r);
    assert_int_equal(s_admin(mesh, "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    const char *series[] = {
        "vz_gateway_requests_total{route=\"echo\",status=\"200\"}",
        "vz_gateway_requests_total{route=\"unmatched\",status=\"404\"}",
        "vz_gateway_requests_total{route=\"echo_slow\",status=\"504\"}",
        "vz_gateway_request_duration_seconds_bucket{route=\"echo\",le=\"+Inf\"}",
        "vz_gateway_request_duration_seconds_count{route=\"health\"}",
        "vz_gateway_inflight ",
        "vz_gateway_upstream_errors_total{code=\"timeout\"}",
    };
    for (size_t i = 0; i < sizeof series / sizeof series[0]; i++)
        if (!strstr(r.body, series[i]))
            fail_msg("missing %s in\n%s", series[i], r.body);
    s_resp_free(&r);
}

static double s_gw_metric(vzt_mesh_t *mesh, const char *series)
{
    double v = 0;
    return vzt_metric(vzt_mesh_admin_port(mesh, "gateway"), series, &v) == 0 ? v : 0;
}

//  A burst of concurrent POSTs, each with its own body and request id:
//  every answer must be its own request's, whatever envelope carried it.
#define BUNDLE_THREADS 16
#define BUNDLE_EACH 8

typedef struct {
    vzt_mesh_t *mesh; //  target
    const char *path; //  route under test
    int thread;       //  index: part of every body and id
    int ok;           //  answers that matched their request
    int wrong;        //  anything else
} bundle_load_t;

static void *s_bundle_thread(void *arg)
{
    bundle_load_t *b = arg;
    for (int i = 0; i < BUNDLE_EACH; i++) {
        char body[32], hdr[64], want_id[48], got_id[64];
        snprintf(body, sizeof body, "body-%d-%d", b->thread, i);
        snprintf(want_id, sizeof want_id, "bndl-%d-%d", b->thread, i);
        snprintf(hdr, sizeof hdr, "X-Request-Id: %s", want_id);
        const char *const headers[] = {hdr, NULL};
        resp_t r;
        if (s_http(b->mesh, "POST", b->path, body, strlen(body), headers, &r) == 0 &&
            r.status == 200 && r.body_len == strlen(body) &&
            memcmp(r.body, body, r.body_len) == 0 &&
            vzt_header(r.headers, "X-Request-Id", got_id, sizeof got_id) &&
            strcmp(got_id, want_id) == 0)
            b->ok++;
        else
            b->wrong++;
        s_resp_free(&r);
    }
    return NULL;
}

//  Bundled calls (as counted by the gateway) during one burst on path.
static double s_bundle_burst(vzt_mesh_t *mesh, const char *path)
{
    double calls0 = s_gw_metric(mesh, "vz_gateway_bundle_calls_total");
    pthread_t threads[BUNDLE_THREADS];
    bundle_load_t loads[BUNDLE_THREADS];
    for (int t = 0; t < BUNDLE_THREADS; t++) {
        loads[t] = (bundle_load_t){.mesh = mesh, .path = path, .thread = t};
        assert_int_equal(pthread_create(&threads[t], NULL, s_bundle_thread, &loads[t]), 0);
    }
    for (int t = 0; t < BUNDLE_THREADS; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(loads[t].wrong, 0);
        assert_int_equal(loads[t].ok, BUNDLE_EACH);
    }
    return s_gw_metric(mesh, "vz_gateway_bundle_calls_total") - calls0;
}

//  Forwards queued together travel as bundle envelopes (several requests
//  per envelope, each answered as its own); a route marked bundle=false
//  never does, under the same burst.
static void test_bundled_forwards(void **state)
{
    vzt_mesh_t *mesh = *state;
    double envelopes0 = s_gw_metric(mesh, "vz_gateway_bundle_envelopes_total");
    double calls = 0;
    for (int round = 0; round < 20 && calls == 0; round++)
        calls = s_bundle_burst(mesh, "/v1/echo");
    double envelopes = s_gw_metric(mesh, "vz_gateway_bundle_envelopes_total") - envelopes0;
    print_message("bundled: %.0f forwards in %.0f envelopes\n", calls, envelopes);
    assert_true(envelopes >= 1);
    assert_true(calls >= 2 * envelopes);
    assert_true(s_bundle_burst(mesh, "/v1/t/alone") == 0);
    assert_true(s_bundle_burst(mesh, "/v1/t/alone") == 0);
}

typedef struct {
    vzt_mesh_t *mesh;   //  target
    const char *method; //  request ...
    const char *path;   //  ...
    const char *body;   //  ... (NULL = none)
    long status;        //  answer to the last one
} retry_t;

static bool s_answered(void *arg)
{
    retry_t *t = arg;
    resp_t r;
    assert_int_equal(
        s_http(t->mesh, t->method, t->path, t->body, t->body ? strlen(t->body) : 0, NULL, &r), 0);
    t->status = r.status;
    s_resp_free(&r);
    return t->status != 503;
}

//  Send the request until it is answered other than 503 (5 s at most); its status.
static long s_until_not_503(vzt_mesh_t *mesh, const char *method, const char *path,
                            const char *body)
{
    retry_t t = {mesh, method, path, body, 0};
    vzt_wait_until(s_answered, &t, 5000);
    return t.status;
}

typedef struct {
    vzt_mesh_t *mesh; //  target
    const char *path; //  GET this
    long want;        //  until it answers this
} status_goal_t;

static bool s_status_is(void *arg)
{
    status_goal_t *goal = arg;
    resp_t r;
    bool ok =
        s_http(goal->mesh, "GET", goal->path, NULL, 0, NULL, &r) == 0 && r.status == goal->want;
    s_resp_free(&r);
    return ok;
}

//  GET path until it answers status, up to ms.
static bool s_wait_status(vzt_mesh_t *mesh, const char *path, long status, int ms)
{
    status_goal_t goal = {mesh, path, status};
    return vzt_wait_until(s_status_is, &goal, ms);
}

static void test_route_params(void **state)
{
    vzt_mesh_t *mesh = *state;
    resp_t r;
    char value[64];
    s_http_status(mesh, "GET", "/v1/t/items/abc-1/meta", NULL, 0, NULL, 200, &r);
    if (!strstr(r.body, "\"path.id\":\"abc-1\"") || !strstr(r.body, "\"path.part\":\"meta\"") ||
        !strstr(r.body, "\"auth\":\"none\"") || !strstr(r.body, "\"tier\":\"anonymous\"") ||
        !strstr(r.body, "\"client_ip\":\"127.0.0.1\""))
        fail_msg("whoami said %s", r.body);
    s_resp_free(&r);
    //  The query parameters the route names travel decoded as ctx
    //  "query.<name>"; the others are not forwarded.
    s_http_status(mesh, "GET", "/v1/t/query?other=1&period=a%20week&at=2026-12-01", NULL, 0, NULL,
                  200, &r);
    if (!strstr(r.body, "\"query.period\":\"a week\"") ||
        !strstr(r.body, "\"query.at\":\"2026-12-01\"") || strstr(r.body, "other"))
        fail_msg("whoami said %s", r.body);
    s_resp_free(&r);
    s_http_status(mesh, "GET", "/v1/t/query", NULL, 0, NULL, 200, &r);
    assert_null(strstr(r.body, "query."));
    s_resp_free(&r);
    //  Twice, control bytes or too long for the ctx: refused, not forwarded.
    char *longer = NULL;
    assert_true(asprintf(&longer, "/v1/t/query?at=%0*d", VZ_CTX_VAL_MAX, 7) > 0);
    const char *const refused[] = {"/v1/t/query?period=a&period=b", "/v1/t/query?at=x%0Ay", longer};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(s_http(mesh, "GET", refused[i], NULL, 0, NULL, &r), 0);
        s_assert_error(&r, 400, "invalid_request");
        assert_non_null(strstr(r.body, "query parameter"));
        s_resp_free(&r);
    }
    free(longer);
    assert_int_equal(s_http(mesh, "PUT", "/v1/t/items/a/b", "x", 1, NULL, &r), 0);
    s_assert_error(&r, 405, "method_not_allowed");
    assert_string_equal(vzt_header(r.headers, "Allow", value, sizeof value), "GET, DELETE");
    s_resp_free(&r);
    const char *missing[] = {"/v1/t/items/a", "/v1/t/items/a/b/c", "/v1/t/items//b", "/v1/echo/"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        assert_int_equal(s_http(mesh, "GET", missing[i], NULL, 0, NULL, &r), 0);
        s_assert_error(&r, 404, "not_found");
        s_resp_free(&r);
    }
}

static void test_request_checks(void **state)
{
    vzt_mesh_t *mesh = *state;
    resp_t r;
    char value[128];
    const char *const json[] = {"Content-Type: application/json; charset=utf-8", NULL};
    const char *const text[] = {"Content-Type: text/plain", NULL};
    s_http_status(mesh, "POST", "/v1/t/json", "{\"a\":1}", 7, json, 200, &r);
    assert_string_equal(r.body, "{\"a\":1}");
    s_resp_free(&r);
    assert_int_equal(s_http(mesh, "POST", "/v1/t/json", "{\"a\":1}", 7, text, &r), 0);
    s_assert_error(&r, 415, "unsupported_media_type");
    s_resp_free(&r);
    const char *bad[] = {"{\"a\":", "{\"a\":1,\"a\":2}", "[1,]", "\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s_http(mesh, "POST", "/v1/t/json", bad[i], strlen(bad[i]), json, &r), 0);
        s_assert_error(&r, 400, "invalid_json");
        s_resp_free(&r);
    }
    //  The route's own body limit (64) is below the global one.
    char body[100];
    memset(body, ' ', sizeof body);
    body[0] = '1';
    assert_int_equal(s_http(mesh, "POST", "/v1/t/json", body, sizeof body, json, &r), 0);
    s_assert_error(&r, 413, "payload_too_large");
    s_resp_free(&r);
    //  Path over VZ_GATEWAY_MAX_URL (1024).
    char path[1100] = "/v1/";
    memset(path + 4, 'a', sizeof path - 5);
    path[sizeof path - 1] = '\0';
    assert_int_equal(s_http(mesh, "GET", path, NULL, 0, NULL, &r), 0);
    s_assert_error(&r, 414, "uri_too_long");
    s_resp_free(&r);
    //  A header block over the per-connection memory: libmicrohttpd refuses it.
    char *huge = malloc(40000);
    assert_non_null(huge);
    memcpy(huge, "X-Big: ", 7);
    memset(huge + 7, 'b', 40000 - 8);
    huge[40000 - 1] = '\0';
    const char *const big[] = {huge, NULL};
    assert_int_equal(s_http(mesh, "GET", "/v1/echo", NULL, 0, big, &r), 0);
    assert_true(r.status == 431 || r.status == 413 || r.status == 400);
    s_resp_free(&r);
    free(huge);
    //  A route that needs a credential.
    assert_int_equal(s_http(mesh, "GET", "/v1/t/private", NULL, 0, NULL, &r), 0);
    s_assert_error(&r, 401, "unauthorized");
    assert_non_null(vzt_header(r.headers, "WWW-Authenticate", value, sizeof value));
    assert_memory_equal(value, "Bearer", 6);
    s_resp_free(&r);
}

static void test_cors(void **state)
{
    vzt_mesh_t *mesh = *state;
    resp_t r;
    char value[128];
    const char *const pre[] = {"Origin: https://b.example", "Access-Control-Request-Method: POST",
                               NULL};
    s_http_status(mesh, "OPTIONS", "/v1/echo", NULL, 0, pre, 204, &r);
    assert_string_equal(vzt_header(r.headers, "Access-Control-Allow-Origin", value, sizeof value),
                        "https://b.example");
    assert_string_equal(vzt_header(r.headers, "Access-Control-Allow-Methods", value, sizeof value),
                        "GET, POST");
    assert_non_null(vzt_header(r.headers, "Access-Control-Allow-Headers", value, sizeof value));
    s_resp_free(&r);
    const char *const other[] = {"Origin: https://evil.example", NULL};
    s_http_status(mesh, "GET", "/v1/echo", NULL, 0, other, 200, &r);
    assert_null(vzt_header(r.headers, "Access-Control-Allow-Origin", value, sizeof value));
    s_resp_free(&r);
    const char *const ok[] = {"Origin: https://app.example", NULL};
    assert_int_equal(s_http(mesh, "GET", "/v1/echo", NULL, 0, ok, &r), 0);
    assert_string_equal(vzt_header(r.headers, "Access-Control-Allow-Origin", value, sizeof value),
                        "https://app.example");
    assert_non_null(vzt_header(r.headers, "Access-Control-Expose-Headers", value, sizeof value));
    s_resp_free(&r);
    assert_int_equal(s_http(mesh, "OPTIONS", "/v1/nope", NULL, 0, pre, &r), 0);
    s_assert_error(&r, 404, "not_found");
    s_resp_free(&r);
}

static void test_openapi(void **state)
{
    vzt_mesh_t *mesh = *state;
    resp_t r;
    s_http_status(mesh, "GET", "/v1/openapi.yaml", NULL, 0, NULL, 200, &r);
    assert_non_null(strstr(r.body, "openapi: 3.1"));
    s_resp_free(&r);
}

//  Load for the reload test: requests back to back until told to stop.
typedef struct {
    vzt_mesh_t *mesh; //  target
    atomic_bool stop; //  set by the test
    int ok;           //  200 answers
    int failed;       //  anything else
} load_t;

static void *s_load(void *arg)
{
    load_t *load = arg;
    while (!atomic_load(&load->stop)) {
        resp_t r;
        if (s_http(load->mesh, "POST", "/v1/echo", "x", 1, NULL, &r) == 0 && r.status == 200)
            load->ok++;
        else
            load->failed++;
        s_resp_free(&r);
    }
    return NULL;
}

static const char s_routes_extra[] =
    "    t_new\n        methods = \"GET\"\n        path = \"/v1/t/new\"\n"
    "        service = \"echo\"\n        call = \"echo\"\n"
    "    webhook_stripe\n        methods = \"POST\"\n        path = \"/v1/webhooks/stripe\"\n"
    "        service = \"billing\"\n        call = \"webhook\"\n"
    "        headers = \"Stripe-Signature\"\n";

static void test_reload(void **state)
{
    vzt_mesh_t *mesh = *state;
    load_t load = {.mesh = mesh};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_load, &load), 0);
    //  A new table with two more routes: they appear, nothing fails meanwhile.
    s_write_routes(mesh, s_routes_extra);
    kill(vzt_mesh_pid(mesh, "gateway"), SIGHUP);
    assert_true(s_wait_status(mesh, "/v1/t/new", 200, 5000));
    //  An invalid table (a duplicate route) is refused and the old one kept.
    s_write_routes(mesh, "    t_new\n        methods = \"GET\"\n        path = \"/x\"\n"
                         "        service = \"echo\"\n        call = \"echo\"\n"
                         "    t_new\n        methods = \"POST\"\n        path = \"/y\"\n"
                         "        service = \"echo\"\n        call = \"echo\"\n");
    kill(vzt_mesh_pid(mesh, "gateway"), SIGHUP);
    assert_true(vzt_wait_metric(vzt_mesh_admin_port(mesh, "gateway"),
                                "vz_gateway_route_reloads_total{result=\"rejected\"}", 1, 5000));
    assert_true(s_wait_status(mesh, "/v1/t/new", 200, 1000));
    atomic_store(&load.stop, true);
    pthread_join(thread, NULL);
    assert_true(load.ok > 0);
    assert_int_equal(load.failed, 0);
    //  Leave the good table in place for the tests that follow.
    s_write_routes(mesh, s_routes_extra);
    kill(vzt_mesh_pid(mesh, "gateway"), SIGHUP);
}

//  An in-test "billing" worker: records what the webhook call carried.
typedef struct {
    vzt_mesh_t *mesh;         //  keys and broker
    atomic_bool stop;         //  ends the thread
    atomic_bool up;           //  registered
    pthread_mutex_t lock;     //  guards below
    char body[4096];          //  last body received
    size_t body_len;          //  its length
    char signature[256];      //  ctx header.stripe-signature
    char caller[64];          //  envelope caller
    atomic_int big_get;       //  "big"/"bigd" calls served, idempotent ones
    atomic_int big_post;      //  "big"/"bigd" calls served, the others
    vz_deferred_t *open[256]; //  "bigd" replies waiting for the flush (worker thread)
    size_t nopen;             //  entries in open
    vz_deferred_t *held[256]; //  "refused" replies waiting for the flush (worker thread)
    size_t nheld;             //  entries in held
} billing_t;

//  A reply far larger than its request, so a bundle of a few overflows.
#define BIG_REPLY (300 * 1024)

static uint8_t s_filler[BIG_REPLY];

//  "bigd": the same reply, deferred to the end of the worker's batch, so
//  its size shows only after the whole bundle was dispatched.
static void s_bigd_flush(void *app)
{
    billing_t *b = app;
    for (size_t i = 0; i < b->nopen; i++)
        vz_worker_complete(&b->open[i], s_filler, sizeof s_filler);
    b->nopen = 0;
}

static int s_bigd(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    billing_t *b = app;
    atomic_fetch_add(req->flags & VZ_FLAG_IDEMPOTENT ? &b->big_get : &b->big_post, 1);
    assert_true(b->nopen < sizeof b->open / sizeof b->open[0]);
    b->open[b->nopen++] = vz_reply_defer(reply, s_bigd_flush);
    return 0;
}

static int s_big(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    billing_t *b = app;
    atomic_fetch_add(req->flags & VZ_FLAG_IDEMPOTENT ? &b->big_get : &b->big_post, 1);
    return vz_reply_body(reply, s_filler, sizeof s_filler);
}

//  "refuse": an error code of the worker's own with the status it means.
static int s_refuse(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return vz_authctx_reply_error(reply, 400, "signature_invalid", "no v1 signature matches");
}

//  "refused": the same, deferred to the end of the batch; the status is
//  set on the handle's reply (vz_deferred_reply) before it completes.
static void s_refused_flush(void *app)
{
    billing_t *b = app;
    for (size_t i = 0; i < b->nheld; i++) {
        vz_reply_t *reply = vz_deferred_reply(b->held[i]);
        assert_int_equal(vz_authctx_reply_error(reply, 402, "card_declined", "declined"), 0);
        vz_worker_complete_error(&b->held[i], "card_declined", "declined");
    }
    b->nheld = 0;
}

static int s_refused(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    billing_t *b = app;
    assert_true(b->nheld < sizeof b->held / sizeof b->held[0]);
    b->held[b->nheld++] = vz_reply_defer(reply, s_refused_flush);
    return 0;
}

static int s_webhook(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    billing_t *b = app;
    pthread_mutex_lock(&b->lock);
    b->body_len = req->body_len < sizeof b->body ? req->body_len : sizeof b->body;
    memcpy(b->body, req->body, b->body_len);
    const char *sig = vz_envelope_ctx_get(req, "header.stripe-signature");
    snprintf(b->signature, sizeof b->signature, "%s", sig ? sig : "");
    snprintf(b->caller, sizeof b->caller, "%s", req->caller);
    pthread_mutex_unlock(&b->lock);
    return vz_reply_body(reply, "{\"received\":true}", 17);
}

static int s_billing_tick(zloop_t *loop, int timer_id, void *arg)
{
    billing_t *b = arg;
    return atomic_load(&b->stop) ? -1 : 0;
}

static void *s_billing(void *arg)
{
    billing_t *b = arg;
    char *certpath = s_path(b->mesh, "keys/secret/billing.key");
    char *keypath = s_path(b->mesh, "keys/public/broker.key");
    char err[256], key[41], endpoint[64];
    zcert_t *cert = vz_curve_cert_load(certpath, err, sizeof err);
    assert_non_null(cert);
    assert_int_equal(vz_curve_server_key(keypath, key), 0);
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", vzt_mesh_broker_port(b->mesh));
    static const vz_method_t methods[] = {
        {"webhook", s_webhook, 0, 0},
        {"big", s_big, 0, 0},
        {"bigd", s_bigd, VZ_METHOD_DEFERRED, 0},
        {"refuse", s_refuse, 0, 0},
        {"refused", s_refused, VZ_METHOD_DEFERRED, 0},
    };
    vz_worker_config_t wc = {
        .service = "billing", .endpoints = endpoint, .broker_key = key, .cert = cert, .credit = 32};
    vz_worker_t *worker = vz_worker_new(&wc, methods, sizeof methods / sizeof methods[0], b);
    assert_non_null(worker);
    zloop_t *loop = zloop_new();
    vz_worker_attach(worker, loop);
    zloop_timer(loop, 20, 0, s_billing_tick, b);
    atomic_store(&b->up, true);
    zloop_start(loop);
    zloop_destroy(&loop);
    vz_worker_destroy(&worker);
    zcert_destroy(&cert);
    free(certpath);
    free(keypath);
    return NULL;
}

//  Whether the broker counts no billing worker (series absent counts as 0).
static bool s_no_billing(void *arg)
{
    vzt_mesh_t *mesh = arg;
    double n = 0;
    int rc = vzt_metric(vzt_mesh_admin_port(mesh, "broker"),
                        "vz_broker_workers{service=\"billing\"}", &n);
    return rc != -1 && n == 0;
}

static void test_webhook(void **state)
{
    vzt_mesh_t *mesh = *state;
    //  Raw bytes a JSON parser would normalise: spacing, key order, escapes.
    const char payload[] = "{ \"id\" : \"evt_1\",\n\t\"data\":{\"b\":1, \"a\":\"\\u00e9\"} }  ";
    const char *const headers[] = {"Content-Type: application/json",
                                   "Stripe-Signature: t=1700000000,v1=5257a869e7ecebed", NULL};
    resp_t r;
    //  No billing worker yet: 503 no_worker at the deadline.
    assert_int_equal(
        s_http(mesh, "POST", "/v1/webhooks/stripe", payload, sizeof payload - 1, headers, &r), 0);
    s_assert_error(&r, 503, "no_worker");
    s_resp_free(&r);

    billing_t b = {.mesh = mesh};
    pthread_mutex_init(&b.lock, NULL);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_billing, &b), 0);
    int64_t until = vz_now_ms() + 5000;
    long status = 0;
    while (status != 200 && vz_now_ms() < until) {
        assert_int_equal(
            s_http(mesh, "POST", "/v1/webhooks/stripe", payload, sizeof payload - 1, headers, &r),
            0);
        status = r.status;
        s_resp_free(&r);
    }
    assert_int_equal(status, 200);
    pthread_mutex_lock(&b.lock);
    assert_int_equal(b.body_len, sizeof payload - 1);
    assert_memory_equal(b.body, payload, sizeof payload - 1);
    assert_string_equal(b.signature, "t=1700000000,v1=5257a869e7ecebed");
    assert_string_equal(b.caller, "gateway");
    pthread_mutex_unlock(&b.lock);
    atomic_store(&b.stop, true);
    pthread_join(thread, NULL);
    pthread_mutex_destroy(&b.lock);
    //  The worker's goodbye reaches the broker on its own socket: the tests
    //  after this one expect no billing worker, so wait until it is gone.
    assert_true(vzt_wait_until(s_no_billing, mesh, 5000));
}

//  Bursts on routes whose replies (300 KiB) are far larger than their
//  requests: a bundle of a few fills its reply, the items not yet served
//  are refused and sent again alone. Every request, idempotent or not, is
//  answered whole and served exactly once. With deferred replies (sizes
//  known only after dispatch) the worker drops what does not fit: POSTs get
//  502 reply_lost and are still served once, GETs are sent again.
typedef struct {
    vzt_mesh_t *mesh;   //  target
    const char *method; //  GET or POST
    const char *path;   //  /v1/t/big or /v1/t/bigd
    atomic_int ok;      //  200 with the whole reply
    atomic_int lost;    //  502 reply_lost
    atomic_int other;   //  anything else
} big_load_t;

static void *s_big_thread(void *arg)
{
    big_load_t *l = arg;
    for (int i = 0; i < 4; i++) {
        resp_t r;
        const char *body = strcmp(l->method, "POST") == 0 ? "x" : NULL;
        if (s_http(l->mesh, l->method, l->path, body, body ? 1 : 0, NULL, &r) < 0)
            atomic_fetch_add(&l->other, 1);
        else if (r.status == 200 && r.body_len == BIG_REPLY)
            atomic_fetch_add(&l->ok, 1);
        else if (r.status == 502 && strstr(r.body, "\"reply_lost\""))
            atomic_fetch_add(&l->lost, 1);
        else
            atomic_fetch_add(&l->other, 1);
        s_resp_free(&r);
    }
    return NULL;
}

static void s_big_burst(vzt_mesh_t *mesh, big_load_t *l, const char *method, const char *path)
{
    enum { THREADS = 16 };
    *l = (big_load_t){.mesh = mesh, .method = method, .path = path};
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, s_big_thread, l), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
}

//  Start the in-test billing worker; GET path answers status once it serves.
static pthread_t s_billing_start(billing_t *b, const char *path, long status)
{
    pthread_mutex_init(&b->lock, NULL);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_billing, b), 0);
    assert_true(s_wait_status(b->mesh, path, status, 5000));
    return thread;
}

static void s_billing_stop(billing_t *b, pthread_t thread)
{
    atomic_store(&b->stop, true);
    pthread_join(thread, NULL);
    pthread_mutex_destroy(&b->lock);
}

static void test_bundle_overflow(void **state)
{
    vzt_mesh_t *mesh = *state;
    billing_t b = {.mesh = mesh};
    pthread_t thread = s_billing_start(&b, "/v1/t/big", 200);
    const char *const methods[] = {"GET", "POST"};
    for (size_t m = 0; m < 2; m++) {
        atomic_int *served = m == 0 ? &b.big_get : &b.big_post;
        int served0 = atomic_load(served);
        double resent0 = s_gw_metric(mesh, "vz_gateway_bundle_resent_total");
        int requests = 0;
        double resent = 0;
        for (int round = 0; round < 10 && resent == 0; round++) {
            big_load_t l;
            s_big_burst(mesh, &l, methods[m], "/v1/t/big");
            requests += 64;
            //  Every request answered whole, none lost, none served twice.
            assert_int_equal(atomic_load(&l.other) + atomic_load(&l.lost), 0);
            assert_int_equal(atomic_load(&l.ok), 64);
            assert_int_equal(atomic_load(served) - served0, requests);
            resent = s_gw_metric(mesh, "vz_gateway_bundle_resent_total") - resent0;
        }
        print_message("%s: %d requests, %.0f sent again alone after a full bundle\n", methods[m],
                      requests, resent);
        assert_true(resent > 0);
    }
    //  Deferred replies outgrow the frame only after dispatch: the worker
    //  drops the largest (reply_dropped). A POST is then a clear 502
    //  reply_lost, never served twice; a GET is sent again.
    int served0 = atomic_load(&b.big_post), requests = 0, lost = 0;
    for (int round = 0; round < 10 && lost == 0; round++) {
        big_load_t l;
        s_big_burst(mesh, &l, "POST", "/v1/t/bigd");
        requests += 64;
        assert_int_equal(atomic_load(&l.other), 0);
        assert_int_equal(atomic_load(&l.ok) + atomic_load(&l.lost), 64);
        assert_int_equal(atomic_load(&b.big_post) - served0, requests);
        lost += atomic_load(&l.lost);
    }
    print_message("POST deferred: %d requests, %d answered 502 reply_lost\n", requests, lost);
    assert_true(lost > 0);
    served0 = atomic_load(&b.big_get);
    requests = 0;
    for (int round = 0; round < 10 && atomic_load(&b.big_get) - served0 == requests; round++) {
        big_load_t l;
        s_big_burst(mesh, &l, "GET", "/v1/t/bigd");
        requests += 64;
        assert_int_equal(atomic_load(&l.other) + atomic_load(&l.lost), 0);
        assert_int_equal(atomic_load(&l.ok), 64);
    }
    print_message("GET deferred: %d requests, %d served again\n", requests,
                  atomic_load(&b.big_get) - served0 - requests);
    assert_true(atomic_load(&b.big_get) - served0 > requests);
    s_billing_stop(&b, thread);
}

//  A worker's own error code (not one the gateway knows) with the HTTP
//  status the worker gave it in its reply ctx reaches the client as they
//  are, alone or inside a bundle, replied at once or deferred.
typedef struct {
    vzt_mesh_t *mesh; //  target
    const char *path; //  GET this
    long status;      //  expected status ...
    const char *code; //  ... and error code
    atomic_int ok;    //  answers as expected
    atomic_int other; //  anything else
} refuse_load_t;

static void *s_refuse_thread(void *arg)
{
    refuse_load_t *l = arg;
    char needle[96];
    snprintf(needle, sizeof needle, "{\"error\":{\"code\":\"%s\"", l->code);
    for (int i = 0; i < 4; i++) {
        resp_t r;
        bool ok = s_http(l->mesh, "GET", l->path, NULL, 0, NULL, &r) == 0 &&
                  r.status == l->status && strstr(r.body, needle);
        atomic_fetch_add(ok ? &l->ok : &l->other, 1);
        if (!ok)
            print_message("%s: %ld %s\n", l->path, r.status, r.body ? r.body : "");
        s_resp_free(&r);
    }
    return NULL;
}

static void test_worker_error_codes(void **state)
{
    vzt_mesh_t *mesh = *state;
    billing_t b = {.mesh = mesh};
    pthread_t thread = s_billing_start(&b, "/v1/t/refuse", 400);
    const struct {
        const char *path, *code;
        long status;
    } cases[] = {{"/v1/t/refuse", "signature_invalid", 400},
                 {"/v1/t/refused", "card_declined", 402}};
    for (size_t c = 0; c < 2; c++) {
        double bundled = 0;
        for (int round = 0; round < 10 && bundled == 0; round++) {
            enum { THREADS = 16 };
            double calls0 = s_gw_metric(mesh, "vz_gateway_bundle_calls_total");
            refuse_load_t l = {.mesh = mesh,
                               .path = cases[c].path,
                               .status = cases[c].status,
                               .code = cases[c].code};
            pthread_t threads[THREADS];
            for (int t = 0; t < THREADS; t++)
                assert_int_equal(pthread_create(&threads[t], NULL, s_refuse_thread, &l), 0);
            for (int t = 0; t < THREADS; t++)
                pthread_join(threads[t], NULL);
            assert_int_equal(atomic_load(&l.other), 0);
            assert_int_equal(atomic_load(&l.ok), THREADS * 4);
            bundled = s_gw_metric(mesh, "vz_gateway_bundle_calls_total") - calls0;
        }
        print_message("%s: %.0f answers came inside bundles\n", cases[c].path, bundled);
        assert_true(bundled > 0);
    }
    s_billing_stop(&b, thread);
    assert_true(vzt_wait_until(s_no_billing, mesh, 5000));
}

static double s_breaker_state(vzt_mesh_t *mesh)
{
    double value = -1;
    vzt_metric(vzt_mesh_admin_port(mesh, "gateway"), "vz_gateway_breaker_state{service=\"echo\"}",
               &value);
    return value;
}

static void test_breaker(void **state)
{
    vzt_mesh_t *mesh = *state;
    resp_t r;
    char value[16];
    assert_true(s_breaker_state(mesh) == 0);
    //  Three timeouts in a row (the route's deadline is 200 ms) open it.
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_http(mesh, "POST", "/v1/t/breaker", "300", 3, NULL, &r), 0);
        s_assert_error(&r, 504, "timeout");
        s_resp_free(&r);
    }
    assert_true(s_breaker_state(mesh) == 2);
    assert_int_equal(s_http(mesh, "POST", "/v1/echo/slow", "0", 1, NULL, &r), 0);
    s_assert_error(&r, 503, "circuit_open");
    assert_non_null(vzt_header(r.headers, "Retry-After", value, sizeof value));
    assert_true(atoi(value) >= 1);
    assert_true(r.seconds < 0.1); //  refused without calling
    s_resp_free(&r);
    //  After the cooldown a failing probe opens it again ...
    assert_int_equal(s_until_not_503(mesh, "GET", "/v1/echo/whoami", NULL), 200);
    //  (The probe succeeded: whoami is quick, so the breaker closed.)
    assert_true(s_breaker_state(mesh) == 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_http(mesh, "POST", "/v1/t/breaker", "300", 3, NULL, &r), 0);
        s_resp_free(&r);
    }
    assert_true(s_breaker_state(mesh) == 2);
    long status = s_until_not_503(mesh, "POST", "/v1/t/breaker", "300");
    assert_int_equal(status, 504);           //  the half-open probe failed ...
    assert_true(s_breaker_state(mesh) == 2); //  ... so it is open again
    //  ... and a good probe closes it.
    assert_int_equal(s_until_not_503(mesh, "POST", "/v1/echo/slow", "0"), 200);
    assert_true(s_breaker_state(mesh) == 0);
}

static void test_no_worker(void **state)
{
    vzt_mesh_t *mesh = *state;
    //  SIGTERM: echo says BYE, so the broker forgets it at once; it must
    //  exit cleanly (under ASan that includes no leaks).
    assert_int_equal(vzt_mesh_stop(mesh, "echo"), 0);
    resp_t r;
    assert_int_equal(s_http(mesh, "POST", "/v1/echo", "x", 1, NULL, &r), 0);
    s_assert_error(&r, 503, "no_worker");
    char value[16];
    assert_string_equal(vzt_header(r.headers, "Retry-After", value, sizeof value), "1");
    assert_true(r.seconds < TIMEOUT_MS / 1000.0 + 1.0);
    s_resp_free(&r);

    s_wait_health(mesh, 503, "\"echo\":{\"status\":\"down\",\"workers\":0");
    s_http_status(mesh, "GET", "/health", NULL, 0, NULL, 503, &r);
    assert_string_equal(r.body, "{\"status\":\"degraded\"}");
    s_resp_free(&r);
}

static void test_broker_restart(void **state)
{
    vzt_mesh_t *mesh = *state;
    assert_int_equal(vzt_mesh_stop(mesh, "broker"), 0);
    //  Readiness drops once no ping was answered for 3 heartbeats (3 s).
    assert_true(s_wait_status(mesh, "/readiness", 503, 6000));
    //  Answered from the cache at once, broker or not.
    resp_t r;
    s_wait_health(mesh, 503, "\"broker\":{\"status\":\"down\"");
    assert_int_equal(s_http(mesh, "GET", "/health", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    assert_true(r.seconds < 0.5);
    s_resp_free(&r);
    //  The same port again: ZeroMQ reconnects and readiness comes back.
    assert_int_equal(vzt_mesh_restart(mesh, "broker"), 0);
    assert_true(s_wait_status(mesh, "/readiness", 200, 6000));
}

typedef struct {
    vzt_mesh_t *mesh; //  target
    resp_t resp;      //  what came back
    int rc;           //  s_http result
} call_t;

static void *s_slow_call(void *arg)
{
    call_t *call = arg;
    //  No worker: the broker answers no_worker at the deadline, so the
    //  request is in flight for TIMEOUT_MS while the gateway drains.
    call->rc = s_http(call->mesh, "POST", "/v1/echo/slow", "100", 3, NULL, &call->resp);
    return NULL;
}

static void test_sigterm_drains(void **state)
{
    vzt_mesh_t *mesh = *state;
    call_t call = {.mesh = mesh};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_slow_call, &call), 0);
    //  Wait until the gateway counts the request in flight (its /metrics
    //  is on the admin port: the slow call is the only one).
    assert_true(
        vzt_wait_metric(vzt_mesh_admin_port(mesh, "gateway"), "vz_gateway_inflight", 1, 5000));
    kill(vzt_mesh_pid(mesh, "gateway"), SIGTERM);
    pthread_join(thread, NULL);
    assert_int_equal(call.rc, 0);
    s_assert_error(&call.resp, 503, "no_worker"); //  answered, not cut off
    s_resp_free(&call.resp);
    assert_int_equal(vzt_mesh_wait(mesh, "gateway", 8000), 0);
}

//  A ctx value that does not fit is refused, never cut (a cut scope list
//  can spell a scope that was never granted): a forwarded header of 256
//  bytes is answered 400 invalid_request and not forwarded; 255 bytes fit
//  and travel (no billing worker here: 503 no_worker at the deadline).
static void test_ctx_refused(void **state)
{
    vzt_mesh_t *mesh = *state;
    char header[64 + VZ_CTX_VAL_MAX];
    resp_t r;
    const size_t sizes[] = {VZ_CTX_VAL_MAX, VZ_CTX_VAL_MAX - 1};
    const long statuses[] = {400, 503};
    const char *const codes[] = {"invalid_request", "no_worker"};
    for (size_t i = 0; i < 2; i++) {
        int n = snprintf(header, sizeof header, "Stripe-Signature: ");
        memset(header + n, 'v', sizes[i]);
        header[n + (int)sizes[i]] = '\0';
        const char *const headers[] = {"Content-Type: application/json", header, NULL};
        assert_int_equal(s_http(mesh, "POST", "/v1/webhooks/stripe", "{}", 2, headers, &r), 0);
        s_assert_error(&r, statuses[i], codes[i]);
        if (i == 0)
            assert_non_null(strstr(r.body, "stripe-signature does not fit"));
        s_resp_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_round_trip),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_traceparent),
        cmocka_unit_test(test_client_errors),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_probes),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_bundled_forwards),
        cmocka_unit_test(test_route_params),
        cmocka_unit_test(test_request_checks),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_openapi),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_webhook),
        cmocka_unit_test(test_ctx_refused),
        cmocka_unit_test(test_bundle_overflow),
        cmocka_unit_test(test_worker_error_codes),
        cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_no_worker),
        cmocka_unit_test(test_broker_restart),
        cmocka_unit_test(test_sigterm_drains),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
