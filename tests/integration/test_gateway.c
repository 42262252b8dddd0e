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

#define READY_MS 15000
#define TIMEOUT_MS 1500 //  the gateway's upstream deadline in this test
#define MAX_BODY (1024 * 1024)
#define HTTP_MS 10000

typedef struct {
    char *dir;           //  temp dir: keys, policy, logs
    vzt_proc_t *redis;   //  redis-server
    vzt_proc_t *broker;  //  vz-broker
    vzt_proc_t *echo;    //  vz-echo
    vzt_proc_t *gateway; //  vz-gateway
    int http_port;       //  gateway public port
    char base[64];       //  http://127.0.0.1:<port>
    int broker_port;     //  to restart the broker on the same port
    int redis_port;      //  idem, for its environment
} mesh_t;

//  One HTTP exchange with headers both ways (the harness's vzt_http has no headers).
typedef struct {
    long status;     //  HTTP status
    char *body;      //  heap, NUL-terminated
    size_t body_len; //  bytes (the body may hold NULs)
    char *headers;   //  raw response header block, heap
    size_t hdr_len;  //  its length
    double seconds;  //  total time
} resp_t;

typedef struct {
    char *data; //  heap buffer, NUL-terminated
    size_t len; //  bytes used
} sink_t;

static size_t s_collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
    sink_t *sink = arg;
    size_t n = size * nmemb;
    char *grown = realloc(sink->data, sink->len + n + 1);
    assert_non_null(grown);
    memcpy(grown + sink->len, ptr, n);
    sink->len += n;
    grown[sink->len] = '\0';
    sink->data = grown;
    return n;
}

static int s_http(const mesh_t *mesh, const char *method, const char *path, const char *body,
                  size_t body_len, const char *const *headers, resp_t *r)
{
    memset(r, 0, sizeof *r);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    char url[256];
    snprintf(url, sizeof url, "%s%s", mesh->base, path);
    sink_t bsink = {calloc(1, 1), 0}, hsink = {calloc(1, 1), 0};
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)HTTP_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &bsink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &hsink);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &r->seconds);
    curl_easy_cleanup(curl);
    curl_slist_free_all(list);
    r->body = bsink.data;
    r->body_len = bsink.len;
    r->headers = hsink.data;
    r->hdr_len = hsink.len;
    return rc == CURLE_OK ? 0 : -1;
}

static void s_resp_free(resp_t *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

//  Value of a response header (case-insensitive name) copied into out, or NULL.
static const char *s_header(const resp_t *r, const char *name, char *out, size_t n)
{
    size_t nlen = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *eol = strstr(line, "\r\n");
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = len - (size_t)(v - line);
            if (vlen >= n)
                vlen = n - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return out;
        }
        line = eol ? eol + 2 : line + len;
    }
    return NULL;
}

static void s_assert_error(const resp_t *r, long status, const char *code)
{
    char needle[96];
    assert_int_equal(r->status, status);
    snprintf(needle, sizeof needle, "{\"error\":{\"code\":\"%s\"", code);
    if (!strstr(r->body, needle))
        fail_msg("expected %s in %s", needle, r->body);
    char id[80];
    assert_non_null(s_header(r, "X-Request-Id", id, sizeof id));
    snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", id);
    assert_non_null(strstr(r->body, needle));
}

// --------------------------------------------------------------------------
//  Mesh

static char *s_path(const mesh_t *mesh, const char *rel)
{
    char *path = NULL;
    assert_true(asprintf(&path, "%s/%s", mesh->dir, rel) > 0);
    return path;
}

//  Start Redis and wait until it answers PING (bounded poll, no fixed sleep).
static vzt_proc_t *s_start_redis(const mesh_t *mesh, int port)
{
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    char *log = s_path(mesh, "redis.log");
    char *const argv[] = {"redis-server", "--port", port_text, "--bind",  "127.0.0.1", "--save", "",
                          "--appendonly", "no",     "--dir",   mesh->dir, NULL};
    vzt_proc_t *proc = vzt_spawn_nowait("/usr/bin/redis-server", argv, NULL, log);
    free(log);
    if (!proc)
        return NULL;
    int64_t until = vz_now_ms() + READY_MS;
    while (vz_now_ms() < until) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        bool ok = false;
        if (c && !c->err) {
            redisReply *reply = redisCommand(c, "PING");
            ok = reply && reply->type == REDIS_REPLY_STATUS;
            if (reply)
                freeReplyObject(reply);
        }
        if (c)
            redisFree(c);
        if (ok)
            return proc;
        //  Bounded wait for the next attempt: a process exit ends it early.
        if (vzt_proc_wait(proc, 50) != -ETIMEDOUT)
            break;
    }
    vzt_proc_destroy(&proc);
    return NULL;
}

static char *s_env(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    assert_true(vasprintf(&out, fmt, ap) > 0);
    va_end(ap);
    return out;
}

static vzt_proc_t *s_start(const mesh_t *mesh, const char *name, char **env)
{
    char *binname = s_env("vz-%s", name);
    char *bin = vzt_bin(binname);
    free(binname);
    char *log = NULL;
    assert_true(asprintf(&log, "%s/%s.log", mesh->dir, name) > 0);
    char *const argv[] = {bin, NULL};
    vzt_proc_t *proc = vzt_spawn(bin, argv, env, log, READY_MS);
    if (!proc) {
        //  Show why, since the log dir goes away with the test.
        char *cmd = NULL;
        assert_true(asprintf(&cmd, "tail -n 30 %s >&2", log) > 0);
        if (system(cmd) < 0)
            fprintf(stderr, "cannot show %s\n", log);
        free(cmd);
    }
    free(log);
    free(bin);
    return proc;
}

static void s_env_free(char **env)
{
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
}

static vzt_proc_t *s_start_daemon(const mesh_t *mesh, const char *name, int broker_port,
                                  int redis_port, char *const *more)
{
    char *env[16] = {0};
    size_t n = 0;
    env[n++] = s_env("VZ_CURVE_CERT=%s/keys/secret/%s.key", mesh->dir, name);
    env[n++] = s_env("VZ_CURVE_ALLOW_DIR=%s/keys/public", mesh->dir);
    env[n++] = s_env("VZ_BROKER_KEY=%s/keys/public/broker.key", mesh->dir);
    env[n++] = s_env("VZ_BROKER_ENDPOINTS=tcp://127.0.0.1:%d", broker_port);
    env[n++] = s_env("VZ_REDIS_URL=redis://127.0.0.1:%d", redis_port);
    env[n++] = s_env("VZ_ADMIN_PORT=%d", vzt_free_port());
    //  The default 1 s heartbeat: echo.slow blocks its worker for up to
    //  TIMEOUT_MS, which must stay below 3 heartbeats.
    for (size_t i = 0; more && more[i]; i++)
        env[n++] = s_env("%s", more[i]);
    vzt_proc_t *proc = s_start(mesh, name, env);
    s_env_free(env);
    return proc;
}

static vzt_proc_t *s_start_broker(const mesh_t *mesh)
{
    char *bind = s_env("VZ_BROKER_BIND=tcp://127.0.0.1:%d", mesh->broker_port);
    char *pol = s_env("VZ_BROKER_POLICY=%s/policy.cfg", mesh->dir);
    char *const env[] = {bind, pol, NULL};
    vzt_proc_t *proc = s_start_daemon(mesh, "broker", mesh->broker_port, mesh->redis_port, env);
    free(bind);
    free(pol);
    return proc;
}

static int s_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mesh_t *mesh = calloc(1, sizeof *mesh);
    assert_non_null(mesh);
    *state = mesh;
    mesh->dir = vzt_tempdir("gateway");
    char *keys = s_path(mesh, "keys");
    const char *const names[] = {"broker", "echo", "gateway", NULL};
    assert_int_equal(vzt_keys(keys, names), 0);
    free(keys);

    char *policy = s_path(mesh, "policy.cfg");
    FILE *f = fopen(policy, "w");
    assert_non_null(f);
    fputs("identity\n    gateway\n        call = \"echo broker\"\n"
          "    echo\n        serve = \"echo\"\n",
          f);
    fclose(f);

    int redis_port = vzt_free_port(), broker_port = vzt_free_port();
    mesh->redis = s_start_redis(mesh, redis_port);
    assert_non_null(mesh->redis);

    free(policy);
    mesh->broker_port = broker_port;
    mesh->redis_port = redis_port;
    mesh->broker = s_start_broker(mesh);
    assert_non_null(mesh->broker);

    mesh->echo = s_start_daemon(mesh, "echo", broker_port, redis_port, NULL);
    assert_non_null(mesh->echo);

    mesh->http_port = vzt_free_port();
    char *port = s_env("VZ_GATEWAY_PORT=%d", mesh->http_port);
    char *timeout = s_env("VZ_GATEWAY_TIMEOUT_MS=%d", TIMEOUT_MS);
    char *const gw_env[] = {port, timeout, "VZ_DRAIN_TIMEOUT_MS=5000", NULL};
    mesh->gateway = s_start_daemon(mesh, "gateway", broker_port, redis_port, gw_env);
    free(port);
    free(timeout);
    assert_non_null(mesh->gateway);
    snprintf(mesh->base, sizeof mesh->base, "http://127.0.0.1:%d", mesh->http_port);
    return 0;
}

static int s_teardown(void **state)
{
    mesh_t *mesh = *state;
    vzt_proc_destroy(&mesh->gateway);
    vzt_proc_destroy(&mesh->echo);
    vzt_proc_destroy(&mesh->broker);
    vzt_proc_destroy(&mesh->redis);
    if (getenv("VZ_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", mesh->dir);
    else
        vzt_rmrf(mesh->dir);
    free(mesh->dir);
    free(mesh);
    curl_global_cleanup();
    return 0;
}

// --------------------------------------------------------------------------
//  Tests

static void test_echo_round_trip(void **state)
{
    mesh_t *mesh = *state;
    //  Binary body with NUL and high bytes must come back byte for byte.
    char body[300];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)(i * 7);
    const char *const headers[] = {"Content-Type: application/x-vz-test", NULL};
    resp_t r;
    assert_int_equal(s_http(mesh, "POST", "/v1/echo", body, sizeof body, headers, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, sizeof body);
    assert_memory_equal(r.body, body, sizeof body);
    char value[128];
    assert_string_equal(s_header(&r, "Content-Type", value, sizeof value), "application/x-vz-test");
    s_resp_free(&r);

    assert_int_equal(s_http(mesh, "GET", "/v1/echo", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    s_resp_free(&r);
}

static void test_request_id(void **state)
{
    mesh_t *mesh = *state;
    char value[128];
    resp_t r;
    const char *const given[] = {"X-Request-Id: req-42.A_b", NULL};
    assert_int_equal(s_http(mesh, "POST", "/v1/echo", "x", 1, given, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(s_header(&r, "X-Request-Id", value, sizeof value), "req-42.A_b");
    s_resp_free(&r);

    //  Missing or unsafe ids are replaced by 32 hex characters.
    const char *const bad[] = {"X-Request-Id: bad id;rm", NULL};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s_http(mesh, "GET", "/v1/echo", NULL, 0, i ? bad : NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_non_null(s_header(&r, "X-Request-Id", value, sizeof value));
        assert_int_equal(strlen(value), 32);
        assert_int_equal(strspn(value, "0123456789abcdef"), 32);
        s_resp_free(&r);
    }
    //  Errors carry it too.
    assert_int_equal(s_http(mesh, "GET", "/nope", NULL, 0, given, &r), 0);
    assert_string_equal(s_header(&r, "X-Request-Id", value, sizeof value), "req-42.A_b");
    s_resp_free(&r);
}

static void test_traceparent(void **state)
{
    mesh_t *mesh = *state;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    char header[128], value[128];
    snprintf(header, sizeof header, "traceparent: %s", tp);
    const char *const headers[] = {header, "X-Request-Id: whoami-1", NULL};
    resp_t r;
    assert_int_equal(s_http(mesh, "GET", "/v1/echo/whoami", NULL, 0, headers, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(s_header(&r, "traceparent", value, sizeof value), tp);
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
    assert_non_null(s_header(&r, "traceparent", value, sizeof value));
    assert_int_equal(strlen(value), 55);
    assert_memory_equal(value, "00-", 3);
    assert_string_not_equal(value, "00-xyz-01");
    s_resp_free(&r);
}

static void test_client_errors(void **state)
{
    mesh_t *mesh = *state;
    char value[64];
    resp_t r;
    assert_int_equal(s_http(mesh, "GET", "/v2/none", NULL, 0, NULL, &r), 0);
    s_assert_error(&r, 404, "not_found");
    s_resp_free(&r);

    assert_int_equal(s_http(mesh, "PUT", "/v1/echo", "x", 1, NULL, &r), 0);
    s_assert_error(&r, 405, "method_not_allowed");
    assert_string_equal(s_header(&r, "Allow", value, sizeof value), "GET, POST");
    s_resp_free(&r);

    assert_int_equal(s_http(mesh, "GET", "/v1/echo/slow", NULL, 0, NULL, &r), 0);
    s_assert_error(&r, 405, "method_not_allowed");
    assert_string_equal(s_header(&r, "Allow", value, sizeof value), "POST");
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
    mesh_t *mesh = *state;
    resp_t r;
    assert_int_equal(s_http(mesh, "POST", "/v1/echo/slow", "20", 2, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    s_resp_free(&r);

    assert_int_equal(s_http(mesh, "POST", "/v1/echo/slow", "5000", 4, NULL, &r), 0);
    s_assert_error(&r, 504, "timeout");
    //  Answered at the deadline, not at the worker's 5 s.
    assert_true(r.seconds >= TIMEOUT_MS / 1000.0 - 0.1);
    assert_true(r.seconds < TIMEOUT_MS / 1000.0 + 1.0);
    s_resp_free(&r);
}

static void test_probes(void **state)
{
    mesh_t *mesh = *state;
    resp_t r;
    assert_int_equal(s_http(mesh, "GET", "/liveness", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);
    assert_int_equal(s_http(mesh, "GET", "/readiness", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);

    assert_int_equal(s_http(mesh, "GET", "/health", NULL, 0, NULL, &r), 0);
    if (r.status != 200 || !strstr(r.body, "\"status\":\"ok\"") ||
        !strstr(r.body, "\"broker\":{\"status\":\"up\"}") ||
        !strstr(r.body, "\"redis\":{\"status\":\"up\"}") ||
        !strstr(r.body, "\"echo\":{\"status\":\"up\",\"workers\":"))
        fail_msg("health %ld: %s", r.status, r.body);
    s_resp_free(&r);
}

static void test_metrics(void **state)
{
    mesh_t *mesh = *state;
    resp_t r;
    assert_int_equal(s_http(mesh, "GET", "/metrics", NULL, 0, NULL, &r), 0);
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

static void test_no_worker(void **state)
{
    mesh_t *mesh = *state;
    //  SIGTERM: echo says BYE, so the broker forgets it at once; it must
    //  exit cleanly (under ASan that includes no leaks).
    kill(vzt_proc_pid(mesh->echo), SIGTERM);
    assert_int_equal(vzt_proc_wait(mesh->echo, 8000), 0);
    vzt_proc_destroy(&mesh->echo);
    resp_t r;
    assert_int_equal(s_http(mesh, "POST", "/v1/echo", "x", 1, NULL, &r), 0);
    s_assert_error(&r, 503, "no_worker");
    char value[16];
    assert_string_equal(s_header(&r, "Retry-After", value, sizeof value), "1");
    assert_true(r.seconds < TIMEOUT_MS / 1000.0 + 1.0);
    s_resp_free(&r);

    assert_int_equal(s_http(mesh, "GET", "/health", NULL, 0, NULL, &r), 0);
    if (r.status != 503 || !strstr(r.body, "\"status\":\"degraded\"") ||
        !strstr(r.body, "\"echo\":{\"status\":\"down\",\"workers\":0"))
        fail_msg("health %ld: %s", r.status, r.body);
    s_resp_free(&r);
}

//  Poll path until it answers status, up to ms (bounded, no fixed sleep).
static bool s_wait_status(const mesh_t *mesh, const char *path, long status, int ms)
{
    int64_t until = vz_now_ms() + ms;
    while (vz_now_ms() < until) {
        resp_t r;
        bool ok = s_http(mesh, "GET", path, NULL, 0, NULL, &r) == 0 && r.status == status;
        s_resp_free(&r);
        if (ok)
            return true;
    }
    return false;
}

static void test_broker_restart(void **state)
{
    mesh_t *mesh = *state;
    vzt_proc_destroy(&mesh->broker);
    //  Readiness drops once no ping was answered for 3 heartbeats (3 s).
    assert_true(s_wait_status(mesh, "/readiness", 503, 6000));
    resp_t r;
    assert_int_equal(s_http(mesh, "GET", "/health", NULL, 0, NULL, &r), 0);
    if (r.status != 503 || !strstr(r.body, "\"broker\":{\"status\":\"down\""))
        fail_msg("health %ld: %s", r.status, r.body);
    s_resp_free(&r);
    //  The same port again: ZeroMQ reconnects and readiness comes back.
    mesh->broker = s_start_broker(mesh);
    assert_non_null(mesh->broker);
    assert_true(s_wait_status(mesh, "/readiness", 200, 6000));
}

typedef struct {
    const mesh_t *mesh; //  target
    resp_t resp;        //  what came back
    int rc;             //  s_http result
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
    mesh_t *mesh = *state;
    call_t call = {.mesh = mesh};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_slow_call, &call), 0);
    //  Wait until the gateway counts the request in flight (bounded poll).
    int64_t until = vz_now_ms() + 5000;
    bool seen = false;
    while (!seen && vz_now_ms() < until) {
        resp_t r;
        //  The /metrics request itself is one; the slow call makes two.
        const char *line = NULL;
        if (s_http(mesh, "GET", "/metrics", NULL, 0, NULL, &r) == 0)
            line = strstr(r.body, "\nvz_gateway_inflight ");
        seen = line && strtod(line + strlen("\nvz_gateway_inflight "), NULL) >= 2.0;
        s_resp_free(&r);
    }
    assert_true(seen);
    kill(vzt_proc_pid(mesh->gateway), SIGTERM);
    pthread_join(thread, NULL);
    assert_int_equal(call.rc, 0);
    s_assert_error(&call.resp, 503, "no_worker"); //  answered, not cut off
    s_resp_free(&call.resp);
    assert_int_equal(vzt_proc_wait(mesh->gateway, 8000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_round_trip), cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_traceparent),     cmocka_unit_test(test_client_errors),
        cmocka_unit_test(test_timeout),         cmocka_unit_test(test_probes),
        cmocka_unit_test(test_metrics),         cmocka_unit_test(test_no_worker),
        cmocka_unit_test(test_broker_restart),  cmocka_unit_test(test_sigterm_drains),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
