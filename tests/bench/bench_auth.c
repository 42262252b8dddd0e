/*  bench_auth - figures for docs/services/auth.md: KDF cost, logins/s,
 *  api_key_verify/s through the broker, ES256 sign and verify/s (vz_jwt)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Usage: bench_auth [ITERATIONS [VERIFIES]]   (needs VZ_BIN_DIR)
 *  ITERATIONS is the PBKDF2 cost given to vz-auth (default 600000).
 *  Starts its own redis-server, vz-broker and two vz-auth replicas on free
 *  loopback ports in a temp dir.
 */
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "harness.h"
#include "vz_auth_contract.h"
#include "vz_client.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_jwt.h"

#define WINDOW 32

static double s_now(void)
{
    return (double)zclock_usecs() / 1e6;
}

static void s_bench_jwt(int n)
{
    vz_jwt_key_t *key = vz_jwt_key_generate("bench");
    vz_jwt_keyset_t *set = vz_jwt_keyset_new();
    vz_jwt_key_t *pub = vz_jwt_key_public(key);
    vz_jwt_keyset_add(set, &pub);
    vz_jwt_claims_t c = {.iat = 1, .exp = 4000000000};
    strcpy(c.iss, "http://127.0.0.1:8080");
    strcpy(c.aud, "vizmesh");
    strcpy(c.sub, "u_0123456789abcdef");
    strcpy(c.scope, "user");
    strcpy(c.tier, "free");
    strcpy(c.jti, "0123456789abcdef0123456789abcdef");
    char *token = NULL;
    double t0 = s_now();
    for (int i = 0; i < n / 4; i++) {
        free(token);
        token = NULL;
        if (vz_jwt_sign(key, &c, &token) < 0)
            abort();
    }
    double sign = (n / 4) / (s_now() - t0);
    vz_jwt_verify_opts_t opts = {.issuer = c.iss, .audience = c.aud, .now = 2};
    t0 = s_now();
    for (int i = 0; i < n; i++)
        if (vz_jwt_verify(set, token, strlen(token), &opts, NULL) != 0)
            abort();
    double verify = n / (s_now() - t0);
    printf("| ES256 sign (vz_jwt_sign, 1 thread) | %.0f /s | %.1f µs |\n", sign, 1e6 / sign);
    printf("| ES256 verify (vz_jwt_verify, 1 thread) | %.0f /s | %.1f µs |\n", verify,
           1e6 / verify);
    free(token);
    vz_jwt_keyset_destroy(&set);
    vz_jwt_key_destroy(&key);
}

static void s_bench_kdf(int iterations)
{
    unsigned char out[32];
    int n = 5;
    double t0 = s_now();
    for (int i = 0; i < n; i++)
        PKCS5_PBKDF2_HMAC("correct horse battery", 21, (const unsigned char *)"0123456789abcdef",
                          16, iterations, EVP_sha256(), 32, out);
    double each = (s_now() - t0) / n;
    printf("| PBKDF2-HMAC-SHA256 x %d (in process) | %.1f /s | %.0f ms |\n", iterations, 1 / each,
           each * 1000);
    t0 = s_now();
    for (int i = 0; i < 2; i++)
        EVP_PBE_scrypt("correct horse battery", 21, (const unsigned char *)"0123456789abcdef", 16,
                       1 << 17, 8, 1, 256u << 20, out, 32);
    each = (s_now() - t0) / 2;
    printf("| scrypt N=2^17 r=8 p=1 (OWASP; for comparison) | %.1f /s | %.0f ms |\n", 1 / each,
           each * 1000);
}

//  Redis, vz-broker and two vz-auth replicas; the caller destroys it.
static vzt_mesh_t *s_mesh(int iterations)
{
    char *iter = vzt_fmt("auth:VZ_AUTH_PBKDF2_ITERATIONS=%d", iterations);
    char *const env[] = {"VZ_LOG_LEVEL=warn", iter, "auth:VZ_AUTH_LOCK_THRESHOLD=1000", NULL};
    vzt_mesh_opts_t opts = {
        .daemons = "auth*2",
        .identities = "gateway",
        .policy =
            "identity\n    gateway\n        call = \"auth\"\n    auth\n        serve = \"auth\"\n",
        .env = env,
        .tag = "bench-auth"};
    vzt_mesh_t *mesh = vzt_mesh_start(&opts);
    free(iter);
    return mesh;
}

static vz_response_t *s_call(vz_client_t *c, const char *method, const void *body, size_t len,
                             const char *sub)
{
    vz_envelope_t req;
    if (vz_envelope_request(&req, "auth", method, NULL) != 0)
        abort();
    req.body = body;
    req.body_len = len;
    if (sub) {
        vz_envelope_ctx_set(&req, "auth", "jwt");
        vz_envelope_ctx_set(&req, "sub", sub);
        vz_envelope_ctx_set(&req, "scope", "user");
    }
    vz_response_t *resp = NULL;
    if (vz_client_call(c, &req, 30000, &resp) < 0 || resp->env.kind != VZ_KIND_REPLY) {
        fprintf(stderr, "%s failed: %s %s\n", method, resp ? resp->env.error_code : "timeout",
                resp ? resp->env.error_message : "");
        exit(1);
    }
    return resp;
}

//  The value of "key" in a small JSON reply (test helper quality).
static void s_json_field(const vz_response_t *r, const char *key, char *out, size_t n)
{
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":\"", key);
    const char *p = memmem(r->env.body, r->env.body_len, needle, strlen(needle));
    if (!p)
        abort();
    p += strlen(needle);
    size_t len = strcspn(p, "\"");
    snprintf(out, n, "%.*s", (int)len, p);
}

//  Calls per second of n calls one at a time.
static double s_sequential(vz_client_t *c, const char *method, const void *body, size_t len, int n)
{
    double t0 = s_now();
    for (int i = 0; i < n; i++) {
        vz_response_t *r = s_call(c, method, body, len, NULL);
        vz_response_destroy(&r);
    }
    return n / (s_now() - t0);
}

//  Calls per second of n sends of req (a new id each), window in flight.
static double s_windowed(vz_client_t *c, vz_envelope_t *req, int n, int window)
{
    req->deadline_ms = vz_now_ms() + 60000;
    double t0 = s_now();
    int sent = 0, got = 0;
    for (; sent < window && sent < n; sent++) {
        vz_client_new_id(req->id, sizeof req->id);
        vz_client_send(c, req);
    }
    while (got < n) {
        vz_response_t *r;
        if (vz_client_recv(c, &r) < 0)
            continue;
        vz_response_destroy(&r);
        got++;
        if (sent < n) {
            vz_client_new_id(req->id, sizeof req->id);
            vz_client_send(c, req);
            sent++;
        }
    }
    return n / (s_now() - t0);
}

static void s_bench_mesh(int iterations)
{
    vzt_mesh_t *m = s_mesh(iterations);
    if (!m) {
        fprintf(stderr, "bench_auth: mesh did not start\n");
        exit(1);
    }
    vz_client_config_t cfg = {.endpoints = vzt_mesh_endpoint(m),
                              .broker_key = vzt_mesh_broker_key(m),
                              .cert = vzt_mesh_cert(m, "gateway")};
    vz_client_t *c = vz_client_new(&cfg);

    const char *reg = "{\"email\":\"bench@example.com\",\"password\":\"correct horse battery\"}";
    vz_response_t *r = s_call(c, "register", reg, strlen(reg), NULL);
    char uid[64];
    s_json_field(r, "id", uid, sizeof uid);
    vz_response_destroy(&r);

    //  Logins: sequential, then two in flight (one per replica).
    int n = 8;
    double seq = s_sequential(c, "login", reg, strlen(reg), n);
    printf("| login through the broker, 1 at a time | %.1f /s | %.0f ms |\n", seq, 1000 / seq);

    vz_envelope_t req;
    if (vz_envelope_request(&req, "auth", "login", NULL) != 0)
        abort();
    req.body = (const uint8_t *)reg;
    req.body_len = strlen(reg);
    double par = s_windowed(c, &req, 2 * n, 2);
    printf("| login, 2 replicas, 2 in flight | %.1f /s | |\n", par);

    const char *create = "{\"name\":\"bench\"}";
    r = s_call(c, "api_key_create", create, strlen(create), uid);
    char key[128];
    s_json_field(r, "key", key, sizeof key);
    vz_response_destroy(&r);
    vz_auth_key_verify_t verify = {{0}};
    vz_strlcpy(verify.key, key, sizeof verify.key);
    size_t verify_len;
    uint8_t *verify_body = vz_auth_key_verify_encode(&verify, &verify_len);

    seq = s_sequential(c, "api_key_verify", verify_body, verify_len, 3000);
    printf("| api_key_verify through the broker, 1 at a time | %.0f /s | %.0f µs |\n", seq,
           1e6 / seq);
    strcpy(req.method, "api_key_verify");
    req.body = verify_body;
    req.body_len = verify_len;
    req.flags = VZ_FLAG_IDEMPOTENT;
    par = s_windowed(c, &req, 10000, WINDOW);
    printf("| api_key_verify, 2 replicas, %d in flight | %.0f /s | |\n", WINDOW, par);

    free(verify_body);
    vz_client_destroy(&c);
    if (vzt_mesh_destroy(&m) != 0)
        fprintf(stderr, "bench_auth: a daemon did not stop cleanly\n");
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 600000;
    int verifies = argc > 2 ? atoi(argv[2]) : 20000;
    printf("| what | rate | each |\n| --- | --- | --- |\n");
    s_bench_jwt(verifies);
    s_bench_kdf(iterations);
    s_bench_mesh(iterations);
    return 0;
}
