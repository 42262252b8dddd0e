/*  test_gateway_auth - authentication and rate limits at the gateway's edge
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh per run: redis-server, vz-broker, vz-echo, vz-ratelimit (with a
 *  small test policy) and vz-gateway on free loopback ports, plus an
 *  in-test worker registered as "auth" that serves a JWKS made with vz_jwt
 *  and answers api_key_verify, so the test does not depend on vz-auth.
 *  Tokens are signed here. Tests run in order: the later ones stop the
 *  auth worker and then the limiter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "vz_auth_contract.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_jwt.h"
#include "vz_proto.h"
#include "vz_worker.h"

#define READY_MS 15000
#define HTTP_MS 10000
#define ISSUER "https://issuer.test"
#define AUDIENCE "vizmesh-test"
#define SMALL_LIMIT 5

typedef struct mesh_t mesh_t;

//  The in-test "auth" worker.
typedef struct {
    mesh_t *mesh;          //  keys and broker
    pthread_t thread;      //  its thread
    atomic_bool stop;      //  ends the thread
    pthread_mutex_t lock;  //  guards jwks
    char *jwks;            //  JWKS document served (heap)
    atomic_int jwks_calls; //  auth.jwks served
    atomic_int key_calls;  //  auth.api_key_verify served
} authw_t;

struct mesh_t {
    vzt_mesh_t *m;       //  Redis, broker, echo, ratelimit and gateway (fail open)
    const char *dir;     //  its directory (keys, configs, logs)
    int http_port;       //  the gateway's public port
    int broker_port;     //  broker, for the in-test auth worker
    vz_jwt_key_t *k1;    //  signing key "k1" (in the JWKS from the start)
    vz_jwt_key_t *k2;    //  signing key "k2" (added later: unknown kid -> refetch)
    vz_jwt_key_t *rogue; //  another key also called "k1" (never published)
    authw_t auth;        //  the in-test auth worker
};

typedef vzt_resp_t resp_t;

static int s_http(int port, const char *path, const char *const *headers, resp_t *r)
{
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    return vzt_request("GET", url, headers, NULL, 0, HTTP_MS, r);
}

static void s_resp_free(resp_t *r)
{
    vzt_resp_free(r);
}

static void s_expect(const resp_t *r, long status, const char *needle)
{
    if (r->status != status || (needle && !strstr(r->body, needle)))
        fail_msg("expected %ld with %s, got %ld: %s", status, needle ? needle : "-", r->status,
                 r->body);
}

//  GET path with "Authorization: Bearer token" and expect status (+ needle in the body).
static void s_bearer(const mesh_t *mesh, const char *path, const char *token, long status,
                     const char *needle)
{
    char *header = NULL;
    assert_true(asprintf(&header, "Authorization: Bearer %s", token) > 0);
    const char *const headers[] = {header, NULL};
    resp_t r;
    assert_int_equal(s_http(mesh->http_port, path, headers, &r), 0);
    s_expect(&r, status, needle);
    if (status == 200 && strstr(r.body, token))
        fail_msg("the raw token reached the service: %s", r.body);
    s_resp_free(&r);
    free(header);
}

static char *s_sign(const vz_jwt_key_t *key, const char *iss, const char *aud, int64_t exp_in,
                    int64_t nbf_in, const char *scope)
{
    int64_t now = vz_now_ms() / 1000;
    vz_jwt_claims_t c = {.iat = now, .exp = now + exp_in, .nbf = nbf_in ? now + nbf_in : 0};
    snprintf(c.iss, sizeof c.iss, "%s", iss);
    snprintf(c.aud, sizeof c.aud, "%s", aud);
    snprintf(c.sub, sizeof c.sub, "alice");
    snprintf(c.scope, sizeof c.scope, "%s", scope);
    snprintf(c.tier, sizeof c.tier, "premium");
    snprintf(c.jti, sizeof c.jti, "jti-%lld", (long long)vz_now_ms());
    char *token = NULL;
    assert_int_equal(vz_jwt_sign(key, &c, &token), 0);
    return token;
}

static double s_metric(const mesh_t *mesh, const char *series)
{
    double value = 0;
    vzt_metric(vzt_mesh_admin_port(mesh->m, "gateway"), series, &value);
    return value;
}

// --------------------------------------------------------------------------
//  The in-test auth worker

static void s_set_jwks(authw_t *a, const vz_jwt_key_t *const *keys, size_t count)
{
    vz_jwt_keyset_t *set = vz_jwt_keyset_new();
    for (size_t i = 0; i < count; i++) {
        vz_jwt_key_t *pub = vz_jwt_key_public(keys[i]);
        assert_int_equal(vz_jwt_keyset_add(set, &pub), 0);
    }
    size_t len = 0;
    char *doc = vz_jwt_keyset_jwks(set, &len);
    assert_non_null(doc);
    vz_jwt_keyset_destroy(&set);
    pthread_mutex_lock(&a->lock);
    free(a->jwks);
    a->jwks = doc;
    pthread_mutex_unlock(&a->lock);
}

static int s_jwks(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    authw_t *a = app;
    atomic_fetch_add(&a->jwks_calls, 1);
    pthread_mutex_lock(&a->lock);
    int rc = vz_reply_body(reply, a->jwks, strlen(a->jwks));
    pthread_mutex_unlock(&a->lock);
    return rc;
}

//  Known keys: "vzk_good" (user-7, premium, key id k7), anything else invalid.
static int s_api_key_verify(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    authw_t *a = app;
    atomic_fetch_add(&a->key_calls, 1);
    vz_auth_key_verify_t in;
    const char *why = NULL;
    if (vz_auth_key_verify_decode(&in, req->body, req->body_len, &why) < 0)
        return vz_reply_error(reply, VZ_ERR_INVALID, why);
    vz_auth_key_identity_t out = {0};
    if (strcmp(in.key, "vzk_good") == 0)
        out = (vz_auth_key_identity_t){
            .valid = true, .sub = "user-7", .scope = "read", .tier = "premium", .kid = "k7"};
    size_t len;
    uint8_t *body = vz_auth_key_identity_encode(&out, &len);
    int rc = vz_reply_body(reply, body, len);
    free(body);
    return rc;
}

static int s_auth_tick(zloop_t *loop, int timer_id, void *arg)
{
    authw_t *a = arg;
    return atomic_load(&a->stop) ? -1 : 0;
}

static void *s_auth_run(void *arg)
{
    authw_t *a = arg;
    char certpath[512], keypath[512], err[256], key[41], endpoint[64];
    snprintf(certpath, sizeof certpath, "%s/keys/secret/auth.key", a->mesh->dir);
    snprintf(keypath, sizeof keypath, "%s/keys/public/broker.key", a->mesh->dir);
    zcert_t *cert = vz_curve_cert_load(certpath, err, sizeof err);
    assert_non_null(cert);
    assert_int_equal(vz_curve_server_key(keypath, key), 0);
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", a->mesh->broker_port);
    static const vz_method_t methods[] = {
        {"jwks", s_jwks, VZ_METHOD_IDEMPOTENT, 0},
        {"api_key_verify", s_api_key_verify, VZ_METHOD_IDEMPOTENT, 0},
    };
    vz_worker_config_t wc = {
        .service = "auth", .endpoints = endpoint, .broker_key = key, .cert = cert, .credit = 4};
    vz_worker_t *worker = vz_worker_new(&wc, methods, 2, a);
    assert_non_null(worker);
    zloop_t *loop = zloop_new();
    vz_worker_attach(worker, loop);
    zloop_timer(loop, 20, 0, s_auth_tick, a);
    zloop_start(loop);
    zloop_destroy(&loop);
    vz_worker_destroy(&worker);
    zcert_destroy(&cert);
    return NULL;
}

// --------------------------------------------------------------------------
//  Mesh

static const char s_routes[] =
    "routes\n"
    "    t_jwt\n        methods = \"GET\"\n        path = \"/v1/t/jwt\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        auth = \"jwt\"\n"
    "    t_admin\n        methods = \"GET\"\n        path = \"/v1/t/admin\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        auth = \"jwt\"\n"
    "        scopes = \"admin\"\n"
    "    t_key\n        methods = \"GET\"\n        path = \"/v1/t/key\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        auth = \"api_key\"\n"
    "    t_any\n        methods = \"GET\"\n        path = \"/v1/t/any\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        auth = \"any\"\n"
    "        rate_class = \"default\"\n"
    "    t_limited\n        methods = \"GET\"\n        path = \"/v1/t/limited\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        rate_class = \"default\"\n"
    "    t_burst\n        methods = \"GET\"\n        path = \"/v1/t/burst\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        rate_class = \"default\"\n"
    "    t_lease\n        methods = \"GET\"\n        path = \"/v1/t/lease\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        rate_class = \"default\"\n"
    "    t_lease_edge\n        methods = \"GET\"\n        path = \"/v1/t/lease_edge\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        rate_class = \"default\"\n"
    "    jwks\n        methods = \"GET\"\n        path = \"/.well-known/jwks.json\"\n"
    "        service = \"auth\"\n        call = \"jwks\"\n";

//  t_limited gets SMALL_LIMIT a minute per IP; everything else is generous.
static const char s_policies[] = "ratelimit\n    shadow = \"false\"\n"
                                 "policy\n"
                                 "    small\n        route = \"t_limited\"\n        by = \"ip\"\n"
                                 "        algorithm = \"sliding_window\"\n        limit = 5\n"
                                 "        window = \"60s\"\n"
                                 "    burst\n        route = \"t_burst\"\n        by = \"ip\"\n"
                                 "        algorithm = \"token_bucket\"\n        limit = 40\n"
                                 "        window = \"1h\"\n"
                                 "    lease_edge\n        route = \"t_lease_edge\"\n"
                                 "        by = \"ip\"\n        algorithm = \"token_bucket\"\n"
                                 "        limit = 500\n        window = \"1h\"\n"
                                 "    rest\n        by = \"key sub ip\"\n"
                                 "        algorithm = \"token_bucket\"\n        limit = 100000\n"
                                 "        window = \"60s\"\n";

static bool s_jwks_fetched(void *arg)
{
    return s_metric(arg, "vz_gateway_jwks_fetches_total{result=\"ok\"}") >= 1;
}

static int s_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mesh_t *mesh = calloc(1, sizeof *mesh);
    assert_non_null(mesh);
    *state = mesh;
    char *const env[] = {"gateway:VZ_GATEWAY_RATELIMIT_FAILURE=open",
                         "gateway:VZ_GATEWAY_JWT_ISSUER=" ISSUER,
                         "gateway:VZ_GATEWAY_JWT_AUDIENCE=" AUDIENCE,
                         "gateway:VZ_GATEWAY_JWKS_MIN_INTERVAL_MS=300",
                         "gateway:VZ_GATEWAY_JWT_LEEWAY_S=5",
                         "gateway:VZ_GATEWAY_AUTH_TIMEOUT_MS=500",
                         "gateway:VZ_GATEWAY_RATELIMIT_TIMEOUT_MS=150",
                         "gateway:VZ_GATEWAY_RATELIMIT_LOCAL_LIMIT=3",
                         "gateway:VZ_GATEWAY_TRUSTED_PROXIES=127.0.0.0/8",
                         NULL};
    const char *const files[] = {"routes.cfg", s_routes, "ratelimit.cfg", s_policies, NULL};
    //  The gateway comes last, once the in-test auth worker serves the JWKS.
    mesh->m = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "gwauth",
                                                .daemons = "echo,ratelimit",
                                                .identities = "gateway,auth",
                                                .env = env,
                                                .files = files});
    assert_non_null(mesh->m);
    mesh->dir = vzt_mesh_dir(mesh->m);
    mesh->http_port = vzt_mesh_http_port(mesh->m);
    mesh->broker_port = vzt_mesh_broker_port(mesh->m);
    mesh->k1 = vz_jwt_key_generate("k1");
    mesh->k2 = vz_jwt_key_generate("k2");
    mesh->rogue = vz_jwt_key_generate("k1");
    assert_true(mesh->k1 && mesh->k2 && mesh->rogue);

    authw_t *a = &mesh->auth;
    a->mesh = mesh;
    pthread_mutex_init(&a->lock, NULL);
    const vz_jwt_key_t *const first[] = {mesh->k1};
    s_set_jwks(a, first, 1);
    assert_int_equal(pthread_create(&a->thread, NULL, s_auth_run, a), 0);
    assert_non_null(vzt_mesh_add(mesh->m, "gateway", "gateway", NULL, true));
    vzt_wait_until(s_jwks_fetched, mesh, 5000); //  the first JWKS fetch
    return 0;
}

static void s_auth_stop(authw_t *a)
{
    if (atomic_exchange(&a->stop, true))
        return;
    pthread_join(a->thread, NULL);
}

static int s_teardown(void **state)
{
    mesh_t *mesh = *state;
    //  The gateway before the auth worker, as it would stop in a mesh.
    int rc = vzt_mesh_proc(mesh->m, "gateway") ? vzt_mesh_stop(mesh->m, "gateway") : 0;
    s_auth_stop(&mesh->auth);
    if (vzt_mesh_destroy(&mesh->m) < 0)
        rc = -1;
    free(mesh->auth.jwks);
    pthread_mutex_destroy(&mesh->auth.lock);
    vz_jwt_key_destroy(&mesh->k1);
    vz_jwt_key_destroy(&mesh->k2);
    vz_jwt_key_destroy(&mesh->rogue);
    free(mesh);
    curl_global_cleanup();
    return rc;
}

// --------------------------------------------------------------------------
//  Tests

static void test_jwt_valid(void **state)
{
    mesh_t *mesh = *state;
    assert_true(s_metric(mesh, "vz_gateway_jwks_fetches_total{result=\"ok\"}") >= 1);
    char *token = s_sign(mesh->k1, ISSUER, AUDIENCE, 300, 0, "read write");
    s_bearer(mesh, "/v1/t/jwt", token, 200, "\"auth\":\"jwt\"");
    char *header = vzt_fmt("Authorization: Bearer %s", token);
    const char *const headers[] = {header, NULL};
    resp_t r;
    assert_int_equal(s_http(mesh->http_port, "/v1/t/jwt", headers, &r), 0);
    s_expect(&r, 200, "\"sub\":\"alice\"");
    s_expect(&r, 200, "\"scope\":\"read write\"");
    s_expect(&r, 200, "\"tier\":\"premium\"");
    s_expect(&r, 200, "\"caller\":\"gateway\"");
    s_resp_free(&r);
    free(header);
    free(token);
    //  The second call of the same token came from the verified-token cache.
    assert_true(s_metric(mesh, "vz_gateway_token_cache_total{result=\"hit\"}") >= 1);
    assert_true(s_metric(mesh, "vz_gateway_auth_total{method=\"jwt\",result=\"ok\"}") >= 2);
}

//  header.payload.signature with the given header JSON and claims of k1's kind.
static char *s_forge(const char *header_json, const char *sig)
{
    int64_t now = vz_now_ms() / 1000;
    char payload[256], h64[256], p64[512];
    snprintf(payload, sizeof payload,
             "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"mallory\",\"scope\":\"admin\","
             "\"exp\":%lld}",
             ISSUER, AUDIENCE, (long long)now + 300);
    vz_jwt_b64url_encode(h64, header_json, strlen(header_json));
    vz_jwt_b64url_encode(p64, payload, strlen(payload));
    return vzt_fmt("%s.%s.%s", h64, p64, sig);
}

static void test_jwt_rejected(void **state)
{
    mesh_t *mesh = *state;
    resp_t r;
    char value[128];
    //  No credential at all.
    assert_int_equal(s_http(mesh->http_port, "/v1/t/jwt", NULL, &r), 0);
    s_expect(&r, 401, "\"code\":\"unauthorized\"");
    assert_non_null(vzt_header(r.headers, "WWW-Authenticate", value, sizeof value));
    s_resp_free(&r);
    //  alg none, and HS256 "signed" with anything: refused before any key is used.
    char *none = s_forge("{\"alg\":\"none\",\"kid\":\"k1\",\"typ\":\"JWT\"}", "");
    s_bearer(mesh, "/v1/t/jwt", none, 401, "unauthorized");
    char *hs = s_forge("{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}",
                       "c2lnbmF0dXJlLW1hZGUtd2l0aC10aGUtcHVibGljLWtleQ");
    s_bearer(mesh, "/v1/t/jwt", hs, 401, "unauthorized");
    free(none);
    free(hs);
    struct {
        const vz_jwt_key_t *key; //  signer
        const char *iss;         //  claims
        const char *aud;
        int64_t exp_in, nbf_in; //  relative to now
        const char *why;        //  expected in the message
    } cases[] = {
        {mesh->k1, ISSUER, AUDIENCE, -60, 0, "expired"},
        {mesh->k1, ISSUER, AUDIENCE, 300, 120, "invalid token"},
        {mesh->k1, ISSUER, "someone-else", 300, 0, "invalid token"},
        {mesh->k1, "https://evil.test", AUDIENCE, 300, 0, "invalid token"},
        {mesh->rogue, ISSUER, AUDIENCE, 300, 0, "invalid token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *token = s_sign(cases[i].key, cases[i].iss, cases[i].aud, cases[i].exp_in,
                             cases[i].nbf_in, "read");
        s_bearer(mesh, "/v1/t/jwt", token, 401, cases[i].why);
        free(token);
    }
    //  Tampered: one payload character changed after signing.
    char *token = s_sign(mesh->k1, ISSUER, AUDIENCE, 300, 0, "read");
    char *dot = strchr(token, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    s_bearer(mesh, "/v1/t/jwt", token, 401, "invalid token");
    free(token);
    assert_true(s_metric(mesh, "vz_gateway_auth_total{method=\"jwt\",result=\"expired\"}") >= 1);
    assert_true(s_metric(mesh, "vz_gateway_auth_total{method=\"jwt\",result=\"invalid\"}") >= 7);
}

static void test_scopes(void **state)
{
    mesh_t *mesh = *state;
    char *reader = s_sign(mesh->k1, ISSUER, AUDIENCE, 300, 0, "read");
    s_bearer(mesh, "/v1/t/admin", reader, 403, "\"code\":\"access_denied\"");
    char *admin = s_sign(mesh->k1, ISSUER, AUDIENCE, 300, 0, "read admin");
    s_bearer(mesh, "/v1/t/admin", admin, 200, "\"scope\":\"read admin\"");
    free(reader);
    free(admin);
}

static void test_unknown_kid_refetch(void **state)
{
    mesh_t *mesh = *state;
    authw_t *a = &mesh->auth;
    //  auth rotates: k2 joins the set. A k2 token makes the gateway fetch
    //  the JWKS again and then verifies.
    const vz_jwt_key_t *const both[] = {mesh->k1, mesh->k2};
    s_set_jwks(a, both, 2);
    //  Fetches are at least VZ_GATEWAY_JWKS_MIN_INTERVAL_MS (300) apart: let
    //  the start-up fetch age past that (bounded poll on the age gauge).
    vzt_wait_metric(vzt_mesh_admin_port(mesh->m, "gateway"), "vz_gateway_jwks_age_seconds", 0.4,
                    5000);
    int before = atomic_load(&a->jwks_calls);
    char *token = s_sign(mesh->k2, ISSUER, AUDIENCE, 300, 0, "read");
    s_bearer(mesh, "/v1/t/jwt", token, 200, "\"sub\":\"alice\"");
    assert_int_equal(atomic_load(&a->jwks_calls), before + 1);
    free(token);
    //  A kid nobody publishes: one more fetch at most, then 401; right
    //  after, within the minimum interval, no fetch at all.
    vz_jwt_key_t *k9 = vz_jwt_key_generate("k9");
    char *t9 = s_sign(k9, ISSUER, AUDIENCE, 300, 0, "read");
    before = atomic_load(&a->jwks_calls);
    s_bearer(mesh, "/v1/t/jwt", t9, 401, "unauthorized");
    s_bearer(mesh, "/v1/t/jwt", t9, 401, "unauthorized");
    s_bearer(mesh, "/v1/t/jwt", t9, 401, "unauthorized");
    assert_true(atomic_load(&a->jwks_calls) <= before + 1);
    free(t9);
    vz_jwt_key_destroy(&k9);
    //  The cached document is served at the well-known path.
    resp_t r;
    assert_int_equal(s_http(mesh->http_port, "/.well-known/jwks.json", NULL, &r), 0);
    s_expect(&r, 200, "\"kid\":\"k2\"");
    s_resp_free(&r);
}

static void test_api_key(void **state)
{
    mesh_t *mesh = *state;
    authw_t *a = &mesh->auth;
    resp_t r;
    const char *const good[] = {"X-API-Key: vzk_good", NULL};
    int before = atomic_load(&a->key_calls);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_http(mesh->http_port, "/v1/t/key", good, &r), 0);
        s_expect(&r, 200, "\"auth\":\"api_key\"");
        s_expect(&r, 200, "\"kid\":\"k7\"");
        s_expect(&r, 200, "\"sub\":\"user-7\"");
        if (strstr(r.body, "vzk_good"))
            fail_msg("the raw key reached the service: %s", r.body);
        s_resp_free(&r);
    }
    //  One verify, then the cache.
    assert_int_equal(atomic_load(&a->key_calls), before + 1);
    const char *const bad[] = {"X-API-Key: vzk_revoked", NULL};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s_http(mesh->http_port, "/v1/t/key", bad, &r), 0);
        s_expect(&r, 401, "invalid API key");
        s_resp_free(&r);
    }
    assert_int_equal(atomic_load(&a->key_calls), before + 2); //  negative answer cached too
    //  A JWT route refuses a key, an "any" route takes it.
    assert_int_equal(s_http(mesh->http_port, "/v1/t/jwt", good, &r), 0);
    s_expect(&r, 401, "bearer token required");
    s_resp_free(&r);
    assert_int_equal(s_http(mesh->http_port, "/v1/t/any", good, &r), 0);
    s_expect(&r, 200, "\"tier\":\"premium\"");
    s_resp_free(&r);
}

static void test_rate_limit(void **state)
{
    mesh_t *mesh = *state;
    resp_t r;
    char value[128];
    for (int i = 0; i < SMALL_LIMIT; i++) {
        assert_int_equal(s_http(mesh->http_port, "/v1/t/limited", NULL, &r), 0);
        s_expect(&r, 200, "\"tier\":\"anonymous\"");
        assert_string_equal(vzt_header(r.headers, "X-RateLimit-Limit", value, sizeof value), "5");
        assert_int_equal(atoi(vzt_header(r.headers, "X-RateLimit-Remaining", value, sizeof value)),
                         SMALL_LIMIT - 1 - i);
        assert_string_equal(vzt_header(r.headers, "RateLimit-Policy", value, sizeof value),
                            "\"small\";q=5;w=60");
        assert_non_null(vzt_header(r.headers, "RateLimit", value, sizeof value));
        assert_non_null(vzt_header(r.headers, "X-RateLimit-Reset", value, sizeof value));
        s_resp_free(&r);
    }
    assert_int_equal(s_http(mesh->http_port, "/v1/t/limited", NULL, &r), 0);
    s_expect(&r, 429, "{\"error\":{\"code\":\"too_many_requests\"");
    assert_non_null(vzt_header(r.headers, "Retry-After", value, sizeof value));
    assert_true(atoi(value) >= 1);
    assert_string_equal(vzt_header(r.headers, "X-RateLimit-Remaining", value, sizeof value), "0");
    assert_non_null(strstr(vzt_header(r.headers, "RateLimit", value, sizeof value), "r=0"));
    s_resp_free(&r);
    assert_true(
        s_metric(mesh, "vz_gateway_ratelimit_total{decision=\"denied\",source=\"limiter\"}") >= 1);
}

//  GET path with "X-Forwarded-For: xff" into r.
static void s_via_proxy(int port, const char *path, const char *xff, resp_t *r)
{
    char *header = vzt_fmt("X-Forwarded-For: %s", xff);
    const char *const headers[] = {header, NULL};
    assert_int_equal(s_http(port, path, headers, r), 0);
    free(header);
}

//  Behind a trusted proxy (loopback here) each client is its own address:
//  the right-most untrusted one of X-Forwarded-For, whatever a client
//  wrote to the left of it; a gateway that trusts no proxy ignores it.
static void test_client_ip_behind_proxy(void **state)
{
    mesh_t *mesh = *state;
    resp_t r;
    s_via_proxy(mesh->http_port, "/v1/t/jwt", "6.6.6.6", &r);
    s_expect(&r, 401, "bearer token required"); //  no route without a token ...
    s_resp_free(&r);
    //  ... the client's address as the service sees it.
    char *token = s_sign(mesh->k1, ISSUER, AUDIENCE, 300, 0, "read");
    char *authz = vzt_fmt("Authorization: Bearer %s", token);
    const char *const headers[] = {authz, "X-Forwarded-For: 6.6.6.6, 198.51.100.7, 127.0.0.9",
                                   NULL};
    assert_int_equal(s_http(mesh->http_port, "/v1/t/jwt", headers, &r), 0);
    s_expect(&r, 200, "\"client_ip\":\"198.51.100.7\"");
    s_resp_free(&r);
    //  One client's limit (5 a minute by IP on t_limited) is not another's.
    for (int i = 0; i < SMALL_LIMIT; i++) {
        s_via_proxy(mesh->http_port, "/v1/t/limited", "198.51.100.1", &r);
        s_expect(&r, 200, "\"client_ip\":\"198.51.100.1\"");
        s_resp_free(&r);
    }
    s_via_proxy(mesh->http_port, "/v1/t/limited", "198.51.100.1", &r);
    s_expect(&r, 429, "too_many_requests");
    s_resp_free(&r);
    //  A spoofed address to the left changes nothing.
    s_via_proxy(mesh->http_port, "/v1/t/limited", "198.51.100.2, 198.51.100.1", &r);
    s_expect(&r, 429, "too_many_requests");
    s_resp_free(&r);
    s_via_proxy(mesh->http_port, "/v1/t/limited", "198.51.100.2", &r);
    s_expect(&r, 200, "\"client_ip\":\"198.51.100.2\"");
    s_resp_free(&r);
    //  A gateway that trusts no proxy: the peer, whatever the header says.
    int port = vzt_free_port();
    char *gw_port = vzt_fmt("VZ_GATEWAY_PORT=%d", port);
    char *const plain[] = {gw_port, "VZ_GATEWAY_TRUSTED_PROXIES=", NULL};
    assert_non_null(vzt_mesh_add(mesh->m, "gateway", "gateway.plain", plain, true));
    free(gw_port);
    assert_int_equal(s_http(port, "/v1/t/jwt", headers, &r), 0);
    s_expect(&r, 200, "\"client_ip\":\"127.0.0.1\"");
    s_resp_free(&r);
    assert_int_equal(vzt_mesh_stop(mesh->m, "gateway.plain"), 0);
    free(authz);
    free(token);
}

//  GET /v1/t/key from client ip (behind the trusted proxy) with key.
static void s_key_from(int port, const char *ip, const char *key, resp_t *r)
{
    char *xff = vzt_fmt("X-Forwarded-For: %s", ip);
    char *header = vzt_fmt("X-API-Key: %s", key);
    const char *const headers[] = {xff, header, NULL};
    assert_int_equal(s_http(port, "/v1/t/key", headers, r), 0);
    free(header);
    free(xff);
}

//  Failed credentials are limited per client IP before authentication:
//  once an address spent its allowance (3 a minute here), its requests
//  with a credential get 429 without reaching auth, good key or not;
//  another address is not affected.
static void test_auth_failures_by_ip(void **state)
{
    mesh_t *mesh = *state;
    authw_t *a = &mesh->auth;
    int port = vzt_free_port();
    char *gw_port = vzt_fmt("VZ_GATEWAY_PORT=%d", port);
    char *const env[] = {gw_port, "VZ_GATEWAY_AUTH_FAILURES=3", NULL};
    assert_non_null(vzt_mesh_add(mesh->m, "gateway", "gateway.fails", env, true));
    free(gw_port);
    resp_t r;
    int calls0 = atomic_load(&a->key_calls);
    for (int i = 0; i < 3; i++) {
        char *key = vzt_fmt("vzk_guess%d", i);
        s_key_from(port, "192.0.2.50", key, &r);
        s_expect(&r, 401, "invalid API key");
        s_resp_free(&r);
        free(key);
    }
    assert_int_equal(atomic_load(&a->key_calls), calls0 + 3);
    char value[32];
    const char *const tries[] = {"vzk_guess9", "vzk_good"};
    for (size_t i = 0; i < 2; i++) {
        s_key_from(port, "192.0.2.50", tries[i], &r);
        s_expect(&r, 429, "too many failed authentications");
        assert_true(atoi(vzt_header(r.headers, "Retry-After", value, sizeof value)) >= 1);
        s_resp_free(&r);
    }
    assert_int_equal(atomic_load(&a->key_calls), calls0 + 3); //  auth never asked
    s_key_from(port, "192.0.2.51", "vzk_good", &r);
    s_expect(&r, 200, "\"sub\":\"user-7\"");
    s_resp_free(&r);
    //  Bearer tokens are held alike.
    const char *const bearer[] = {"X-Forwarded-For: 192.0.2.50", "Authorization: Bearer a.b.c",
                                  NULL};
    assert_int_equal(s_http(port, "/v1/t/jwt", bearer, &r), 0);
    s_expect(&r, 429, "too many failed authentications");
    s_resp_free(&r);
    double throttled = 0;
    assert_int_equal(vzt_metric(vzt_mesh_admin_port(mesh->m, "gateway.fails"),
                                "vz_gateway_auth_total{method=\"api_key\",result=\"throttled\"}",
                                &throttled),
                     0);
    assert_true(throttled == 2);
    assert_int_equal(vzt_mesh_stop(mesh->m, "gateway.fails"), 0);
}

//  Send raw (len bytes) to 127.0.0.1:port, read to the end and expect
//  status and needle in what came back (status "": nothing at all).
static void s_raw(int port, const void *raw, size_t len, const char *status, const char *needle)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = HTTP_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(send(fd, raw, len, 0), (ssize_t)len);
    char reply[8192];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof reply - 1 && (n = recv(fd, reply + got, sizeof reply - 1 - got, 0)) > 0)
        got += (size_t)n;
    reply[got] = '\0';
    close(fd);
    if (strncmp(reply, status, strlen(status)) != 0 || (!status[0] && got) ||
        (needle && !strstr(reply, needle)))
        fail_msg("expected %s with %s, got: %s", status, needle ? needle : "-", reply);
}

//  A gateway taking the PROXY protocol from trusted peers (loopback):
//  v1 and v2 headers name the client; a connection without one is served
//  as the peer's.
static void test_proxy_protocol(void **state)
{
    mesh_t *mesh = *state;
    int port = vzt_free_port();
    char *gw_port = vzt_fmt("VZ_GATEWAY_PORT=%d", port);
    char *const env[] = {gw_port, "VZ_GATEWAY_PROXY_PROTOCOL=true", NULL};
    assert_non_null(vzt_mesh_add(mesh->m, "gateway", "gateway.proxy", env, true));
    free(gw_port);
    char *token = s_sign(mesh->k1, ISSUER, AUDIENCE, 300, 0, "read");
    char *request = vzt_fmt("GET /v1/t/jwt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                            "Connection: close\r\n\r\n",
                            token);
    char *v1 = vzt_fmt("PROXY TCP4 203.0.113.5 10.0.0.1 5555 80\r\n%s", request);
    s_raw(port, v1, strlen(v1), "HTTP/1.1 200", "\"client_ip\":\"203.0.113.5\"");
    uint8_t v2[512] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                       0x54, 0x0A, 0x21, 0x11, 0x00, 12,   198,  51,   100,  9,
                       10,   0,    0,    1,    0x10, 0x92, 0x00, 80};
    assert_true(28 + strlen(request) < sizeof v2);
    memcpy(v2 + 28, request, strlen(request));
    s_raw(port, v2, 28 + strlen(request), "HTTP/1.1 200", "\"client_ip\":\"198.51.100.9\"");
    s_raw(port, request, strlen(request), "HTTP/1.1 200", "\"client_ip\":\"127.0.0.1\"");
    //  A malformed header closes the connection without an answer.
    const char junk[] = "PROXY TCP4 nonsense\r\nGET / HTTP/1.1\r\n\r\n";
    s_raw(port, junk, strlen(junk), "", NULL);
    //  The gateway's own port does not take the header: a bad request.
    s_raw(mesh->http_port, v1, strlen(v1), "HTTP/1.1 400", NULL);
    assert_int_equal(vzt_mesh_stop(mesh->m, "gateway.proxy"), 0);
    free(v1);
    free(request);
    free(token);
}

#define BURST_LIMIT 40
#define BURST_THREADS 16
#define BURST_EACH 8

typedef struct {
    int port;
    const char *path; //  NULL = /v1/t/burst
    int each;         //  requests per thread, 0 = BURST_EACH
    atomic_int ok, limited, other;
} burst_t;

static void *s_burst_thread(void *arg)
{
    burst_t *b = arg;
    for (int i = 0; i < (b->each ? b->each : BURST_EACH); i++) {
        resp_t r;
        if (s_http(b->port, b->path ? b->path : "/v1/t/burst", NULL, &r) < 0)
            atomic_fetch_add(&b->other, 1);
        else if (r.status == 200)
            atomic_fetch_add(&b->ok, 1);
        else if (r.status == 429 && strstr(r.body, "too_many_requests"))
            atomic_fetch_add(&b->limited, 1);
        else
            atomic_fetch_add(&b->other, 1);
        s_resp_free(&r);
    }
    return NULL;
}

//  Concurrent requests on one bucket: the checks queued together travel
//  as ratelimit.check_batch envelopes, and the limit still holds exactly.
static void test_rate_limit_batched(void **state)
{
    mesh_t *mesh = *state;
    double envelopes0 = s_metric(mesh, "vz_gateway_batch_envelopes_total");
    double calls0 = s_metric(mesh, "vz_gateway_batch_calls_total");
    burst_t b = {.port = mesh->http_port};
    pthread_t threads[BURST_THREADS];
    for (int i = 0; i < BURST_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, s_burst_thread, &b), 0);
    for (int i = 0; i < BURST_THREADS; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(atomic_load(&b.other), 0);
    assert_int_equal(atomic_load(&b.ok), BURST_LIMIT);
    assert_int_equal(atomic_load(&b.limited), BURST_THREADS * BURST_EACH - BURST_LIMIT);
    double envelopes = s_metric(mesh, "vz_gateway_batch_envelopes_total") - envelopes0;
    double calls = s_metric(mesh, "vz_gateway_batch_calls_total") - calls0;
    print_message("batched: %.0f checks in %.0f envelopes\n", calls, envelopes);
    assert_true(envelopes >= 1);
    assert_true(calls >= 2 * envelopes);
    assert_true(calls <= BURST_THREADS * BURST_EACH);
}

static void s_burst(burst_t *b)
{
    pthread_t threads[BURST_THREADS];
    for (int i = 0; i < BURST_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, s_burst_thread, b), 0);
    for (int i = 0; i < BURST_THREADS; i++)
        pthread_join(threads[i], NULL);
}

#define LEASED "vz_gateway_ratelimit_total{decision=\"allowed\",source=\"lease\"}"
#define CHECKED "vz_gateway_ratelimit_total{decision=\"allowed\",source=\"limiter\"}"

//  A busy caller of a generous policy (100000 a minute): most requests are
//  decided from tokens leased by earlier checks, without a round trip.
static void test_rate_limit_leased(void **state)
{
    mesh_t *mesh = *state;
    double leased0 = s_metric(mesh, LEASED), checked0 = s_metric(mesh, CHECKED);
    burst_t b = {.port = mesh->http_port, .path = "/v1/t/lease", .each = 30};
    s_burst(&b);
    assert_int_equal(atomic_load(&b.other) + atomic_load(&b.limited), 0);
    assert_int_equal(atomic_load(&b.ok), BURST_THREADS * 30);
    double leased = s_metric(mesh, LEASED) - leased0;
    double checked = s_metric(mesh, CHECKED) - checked0;
    print_message("leased: %.0f of %d requests from leases, %.0f checks\n", leased,
                  BURST_THREADS * 30, checked);
    assert_true(leased + checked == BURST_THREADS * 30);
    assert_true(leased > checked);
    //  A lease answer carries the headers too, remaining counting the lease.
    resp_t r;
    char value[64];
    assert_int_equal(s_http(mesh->http_port, "/v1/t/lease", NULL, &r), 0);
    s_expect(&r, 200, "\"tier\":\"anonymous\"");
    assert_string_equal(vzt_header(r.headers, "X-RateLimit-Limit", value, sizeof value), "100000");
    long remaining = atol(vzt_header(r.headers, "X-RateLimit-Remaining", value, sizeof value));
    assert_true(remaining > 100000 - 2 * BURST_THREADS * 30 && remaining < 100000);
    s_resp_free(&r);
}

//  Leases never let more through than the limit (every token comes from
//  the limiter), and at the limit the last tokens go one at a time.
static void test_rate_limit_lease_edge(void **state)
{
    mesh_t *mesh = *state;
    double leased0 = s_metric(mesh, LEASED);
    burst_t b = {.port = mesh->http_port, .path = "/v1/t/lease_edge", .each = 40};
    s_burst(&b);
    int ok = atomic_load(&b.ok), limited = atomic_load(&b.limited);
    print_message("lease edge: %d allowed, %d limited of %d (limit 500, leases of <= 5)\n", ok,
                  limited, BURST_THREADS * 40);
    assert_int_equal(atomic_load(&b.other), 0);
    assert_int_equal(ok + limited, BURST_THREADS * 40);
    assert_true(ok <= 500);
    assert_true(ok >= 495);
    assert_true(s_metric(mesh, LEASED) - leased0 > 0);
}

static void test_auth_away(void **state)
{
    mesh_t *mesh = *state;
    s_auth_stop(&mesh->auth);
    //  Keys stay cached: a valid token still verifies (a new one, so not
    //  from the token cache), and the cached API key still works.
    char *token = s_sign(mesh->k1, ISSUER, AUDIENCE, 300, 0, "read");
    s_bearer(mesh, "/v1/t/jwt", token, 200, "\"sub\":\"alice\"");
    free(token);
    resp_t r;
    const char *const good[] = {"X-API-Key: vzk_good", NULL};
    assert_int_equal(s_http(mesh->http_port, "/v1/t/key", good, &r), 0);
    s_expect(&r, 200, "\"kid\":\"k7\"");
    s_resp_free(&r);
    //  An API key never seen: auth cannot say, so 503.
    const char *const fresh[] = {"X-API-Key: vzk_other", NULL};
    assert_int_equal(s_http(mesh->http_port, "/v1/t/key", fresh, &r), 0);
    s_expect(&r, 503, "unavailable");
    s_resp_free(&r);
    //  A kid that would need a fetch: the fetch fails, the token is refused.
    vz_jwt_key_t *k5 = vz_jwt_key_generate("k5");
    char *t5 = s_sign(k5, ISSUER, AUDIENCE, 300, 0, "read");
    s_bearer(mesh, "/v1/t/jwt", t5, 401, "unauthorized");
    free(t5);
    vz_jwt_key_destroy(&k5);
    assert_true(s_metric(mesh, "vz_gateway_jwks_fetches_total{result=\"error\"}") >= 1);
    double age = -1;
    assert_int_equal(
        vzt_metric(vzt_mesh_admin_port(mesh->m, "gateway"), "vz_gateway_jwks_age_seconds", &age),
        0);
    assert_true(age >= 0);
}

typedef struct {
    int port;           //  admin port
    const char *series; //  counter
    double min;         //  wanted at least
} s_count_t;

static bool s_count_reached(void *arg)
{
    s_count_t *c = arg;
    double v = 0;
    return vzt_metric(c->port, c->series, &v) == 0 && v >= c->min;
}

//  A gateway that starts while auth is away has no key, so every JWT is
//  refused (503). It fetches again every VZ_GATEWAY_JWKS_RETRY_MS, not
//  every min interval (60 s here), and verifies tokens once auth is back.
static void test_jwks_retry(void **state)
{
    mesh_t *mesh = *state; //  auth stopped by test_auth_away
    int port = vzt_free_port();
    char *gw_port = vzt_fmt("VZ_GATEWAY_PORT=%d", port);
    char *const more[] = {gw_port, "VZ_GATEWAY_JWKS_MIN_INTERVAL_MS=60s",
                          "VZ_GATEWAY_JWKS_RETRY_MS=200ms", NULL};
    assert_non_null(vzt_mesh_add(mesh->m, "gateway", "gateway.fresh", more, true));
    free(gw_port);
    int admin = vzt_mesh_admin_port(mesh->m, "gateway.fresh");
    char *token = s_sign(mesh->k1, ISSUER, AUDIENCE, 300, 0, "read");
    char *header = vzt_fmt("Authorization: Bearer %s", token);
    const char *const headers[] = {header, NULL};
    resp_t r;
    assert_int_equal(s_http(port, "/v1/t/jwt", headers, &r), 0);
    s_expect(&r, 503, "unavailable");
    s_resp_free(&r);
    s_count_t failed = {admin, "vz_gateway_jwks_fetches_total{result=\"error\"}", 3};
    assert_true(vzt_wait_until(s_count_reached, &failed, 10000));

    authw_t *a = &mesh->auth;
    atomic_store(&a->stop, false);
    assert_int_equal(pthread_create(&a->thread, NULL, s_auth_run, a), 0);
    s_count_t fetched = {admin, "vz_gateway_jwks_fetches_total{result=\"ok\"}", 1};
    assert_true(vzt_wait_until(s_count_reached, &fetched, 10000));
    assert_int_equal(s_http(port, "/v1/t/jwt", headers, &r), 0);
    s_expect(&r, 200, "\"sub\":\"alice\"");
    s_resp_free(&r);
    free(header);
    free(token);
}

static void test_limiter_away(void **state)
{
    mesh_t *mesh = *state;
    //  A fail-closed gateway beside the fail-open one.
    int port = vzt_free_port();
    char *gw_port = vzt_fmt("VZ_GATEWAY_PORT=%d", port);
    char *const closed[] = {gw_port, "VZ_GATEWAY_RATELIMIT_FAILURE=closed", NULL};
    assert_non_null(vzt_mesh_add(mesh->m, "gateway", "gateway.closed", closed, true));
    free(gw_port);
    assert_int_equal(vzt_mesh_stop(mesh->m, "ratelimit"), 0);
    resp_t r;
    char value[64];
    //  Open: the local bucket (3 a minute here) decides, so requests pass ...
    assert_int_equal(s_http(mesh->http_port, "/v1/t/limited", NULL, &r), 0);
    s_expect(&r, 200, "\"tier\":\"anonymous\"");
    assert_string_equal(vzt_header(r.headers, "RateLimit-Policy", value, sizeof value),
                        "\"local\";q=3;w=60");
    s_resp_free(&r);
    //  ... until it is empty.
    long status = 200;
    for (int i = 0; i < 5 && status == 200; i++) {
        assert_int_equal(s_http(mesh->http_port, "/v1/t/limited", NULL, &r), 0);
        status = r.status;
        s_resp_free(&r);
    }
    assert_int_equal(status, 429);
    assert_true(s_metric(mesh, "vz_gateway_ratelimit_fallback_total{reason=\"no_worker\","
                               "policy=\"open\"}") >= 1);
    assert_true(
        s_metric(mesh, "vz_gateway_ratelimit_total{decision=\"allowed\",source=\"local\"}") >= 1);
    //  Closed: 503.
    assert_int_equal(s_http(port, "/v1/t/limited", NULL, &r), 0);
    s_expect(&r, 503, "\"code\":\"rate_limit_unavailable\"");
    assert_non_null(vzt_header(r.headers, "Retry-After", value, sizeof value));
    s_resp_free(&r);
    assert_int_equal(vzt_mesh_stop(mesh->m, "gateway.closed"), 0);
    //  The fail-open gateway exits cleanly too (ASan: no leaks).
    assert_int_equal(vzt_mesh_stop(mesh->m, "gateway"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_valid),
        cmocka_unit_test(test_jwt_rejected),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_unknown_kid_refetch),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_client_ip_behind_proxy),
        cmocka_unit_test(test_proxy_protocol),
        cmocka_unit_test(test_auth_failures_by_ip),
        cmocka_unit_test(test_rate_limit_batched),
        cmocka_unit_test(test_rate_limit_leased),
        cmocka_unit_test(test_rate_limit_lease_edge),
        cmocka_unit_test(test_auth_away),
        cmocka_unit_test(test_jwks_retry),
        cmocka_unit_test(test_limiter_away),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
