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

#include "harness.h"
#include "vz_auth_contract.h"
#include "vz_client.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_jwt.h"

#define READY_MS 30000
#define WINDOW 32

static char *s_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0)
        abort();
    va_end(ap);
    return out;
}

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

typedef struct {
    char *dir;
    int redis_port, broker_port;
    vzt_proc_t *redis, *broker, *auth[2];
} mesh_t;

static vzt_proc_t *s_daemon(mesh_t *m, const char *name, const char *log, char *const *more)
{
    char *env[16] = {0};
    size_t n = 0;
    env[n++] = s_fmt("VZ_CURVE_CERT=%s/keys/secret/%s.key", m->dir, name);
    env[n++] = s_fmt("VZ_CURVE_ALLOW_DIR=%s/keys/public", m->dir);
    env[n++] = s_fmt("VZ_BROKER_KEY=%s/keys/public/broker.key", m->dir);
    env[n++] = s_fmt("VZ_BROKER_ENDPOINTS=tcp://127.0.0.1:%d", m->broker_port);
    env[n++] = s_fmt("VZ_REDIS_URL=redis://127.0.0.1:%d", m->redis_port);
    env[n++] = s_fmt("VZ_ADMIN_PORT=%d", vzt_free_port());
    env[n++] = s_fmt("VZ_LOG_LEVEL=warn");
    for (size_t i = 0; more && more[i]; i++)
        env[n++] = s_fmt("%s", more[i]);
    char *bname = s_fmt("vz-%s", name), *bin = vzt_bin(bname);
    char *logp = s_fmt("%s/%s.log", m->dir, log);
    char *const argv[] = {bin, NULL};
    vzt_proc_t *p = vzt_spawn(bin, argv, env, logp, READY_MS);
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    free(bname);
    free(bin);
    free(logp);
    return p;
}

static int s_mesh(mesh_t *m, int iterations)
{
    m->dir = vzt_tempdir("bench-auth");
    char *keys = s_fmt("%s/keys", m->dir);
    const char *const names[] = {"broker", "auth", "gateway", NULL};
    vzt_keys(keys, names);
    free(keys);
    char *policy = s_fmt("%s/policy.cfg", m->dir);
    FILE *f = fopen(policy, "w");
    fputs("identity\n    gateway\n        call = \"auth\"\n    auth\n        serve = \"auth\"\n", f);
    fclose(f);
    m->redis_port = vzt_free_port();
    m->broker_port = vzt_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", m->redis_port);
    char *const rargv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", m->dir, NULL};
    m->redis = vzt_spawn_nowait("/usr/bin/redis-server", rargv, NULL, NULL);
    for (int64_t until = vz_now_ms() + READY_MS; vz_now_ms() < until;) {
        redisContext *c = redisConnect("127.0.0.1", m->redis_port);
        bool ok = c && !c->err;
        if (c)
            redisFree(c);
        if (ok)
            break;
        vzt_proc_wait(m->redis, 50);
    }
    char *bind = s_fmt("VZ_BROKER_BIND=tcp://127.0.0.1:%d", m->broker_port);
    char *pol = s_fmt("VZ_BROKER_POLICY=%s", policy);
    char *const benv[] = {bind, pol, NULL};
    m->broker = s_daemon(m, "broker", "broker", benv);
    free(bind);
    free(pol);
    free(policy);
    char *iter = s_fmt("VZ_AUTH_PBKDF2_ITERATIONS=%d", iterations);
    char *const aenv[] = {iter, "VZ_AUTH_LOCK_THRESHOLD=1000", NULL};
    m->auth[0] = s_daemon(m, "auth", "auth.0", aenv);
    m->auth[1] = s_daemon(m, "auth", "auth.1", aenv);
    free(iter);
    return m->broker && m->auth[0] && m->auth[1] ? 0 : -1;
}

static vz_response_t *s_call(vz_client_t *c, const char *method, const void *body, size_t len,
                             const char *sub)
{
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    strcpy(req.service, "auth");
    vz_strlcpy(req.method, method, sizeof req.method);
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

static void s_bench_mesh(int iterations)
{
    mesh_t m = {0};
    if (s_mesh(&m, iterations) < 0) {
        fprintf(stderr, "bench_auth: mesh did not start (see %s)\n", m.dir);
        exit(1);
    }
    char err[256], bkey[41];
    char *certp = s_fmt("%s/keys/secret/gateway.key", m.dir);
    char *bkp = s_fmt("%s/keys/public/broker.key", m.dir);
    zcert_t *cert = vz_curve_cert_load(certp, err, sizeof err);
    vz_curve_server_key(bkp, bkey);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", m.broker_port);
    vz_client_config_t cfg = {ep, bkey, cert};
    vz_client_t *c = vz_client_new(&cfg);

    const char *reg = "{\"email\":\"bench@example.com\",\"password\":\"correct horse battery\"}";
    vz_response_t *r = s_call(c, "register", reg, strlen(reg), NULL);
    char uid[64];
    s_json_field(r, "id", uid, sizeof uid);
    vz_response_destroy(&r);

    //  Logins: sequential, then two in flight (one per replica).
    int n = 8;
    double t0 = s_now();
    for (int i = 0; i < n; i++) {
        r = s_call(c, "login", reg, strlen(reg), NULL);
        vz_response_destroy(&r);
    }
    double seq = n / (s_now() - t0);
    printf("| login through the broker, 1 at a time | %.1f /s | %.0f ms |\n", seq, 1000 / seq);

    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    strcpy(req.service, "auth");
    strcpy(req.method, "login");
    req.body = (const uint8_t *)reg;
    req.body_len = strlen(reg);
    req.deadline_ms = vz_now_ms() + 60000;
    t0 = s_now();
    int sent = 0, got = 0;
    for (; sent < 2; sent++) {
        vz_client_new_id(req.id, sizeof req.id);
        vz_client_send(c, &req);
    }
    while (got < 2 * n) {
        if (vz_client_recv(c, &r) < 0)
            continue;
        vz_response_destroy(&r);
        got++;
        if (sent < 2 * n) {
            vz_client_new_id(req.id, sizeof req.id);
            vz_client_send(c, &req);
            sent++;
        }
    }
    double par = 2 * n / (s_now() - t0);
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

    int k = 3000;
    t0 = s_now();
    for (int i = 0; i < k; i++) {
        r = s_call(c, "api_key_verify", verify_body, verify_len, NULL);
        vz_response_destroy(&r);
    }
    seq = k / (s_now() - t0);
    printf("| api_key_verify through the broker, 1 at a time | %.0f /s | %.0f µs |\n", seq,
           1e6 / seq);
    strcpy(req.method, "api_key_verify");
    req.body = verify_body;
    req.body_len = verify_len;
    req.flags = VZ_FLAG_IDEMPOTENT;
    req.deadline_ms = vz_now_ms() + 60000;
    k = 10000;
    sent = got = 0;
    t0 = s_now();
    for (; sent < WINDOW; sent++) {
        vz_client_new_id(req.id, sizeof req.id);
        vz_client_send(c, &req);
    }
    while (got < k) {
        if (vz_client_recv(c, &r) < 0)
            continue;
        vz_response_destroy(&r);
        got++;
        if (sent < k) {
            vz_client_new_id(req.id, sizeof req.id);
            vz_client_send(c, &req);
            sent++;
        }
    }
    par = k / (s_now() - t0);
    printf("| api_key_verify, 2 replicas, %d in flight | %.0f /s | |\n", WINDOW, par);

    free(verify_body);
    vz_client_destroy(&c);
    zcert_destroy(&cert);
    free(certp);
    free(bkp);
    vzt_proc_destroy(&m.auth[0]);
    vzt_proc_destroy(&m.auth[1]);
    vzt_proc_destroy(&m.broker);
    vzt_proc_destroy(&m.redis);
    vzt_rmrf(m.dir);
    free(m.dir);
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
