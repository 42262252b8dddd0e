/*  test_auth - the auth service through a real broker, two replicas, real Redis
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh per run: redis-server, vz-broker and two vz-auth replicas on
 *  free loopback ports with their own keys and policy in a temp dir. The
 *  test calls auth as the identity "gateway" and sets the ctx entries the
 *  gateway would (contract B); a second identity "tester" shows that ctx
 *  from anyone else is ignored. Tokens are checked with vz_jwt and with the
 *  npm jose library (tests/peers/auth_jose.mjs) against the served JWKS.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "vz_auth_contract.h"
#include "vz_client.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_json.h"
#include "vz_jwt.h"

#define CALL_MS 10000
#define ISS "http://127.0.0.1:8080"
#define AUD "vizmesh"

typedef struct {
    vzt_mesh_t *m;       //  Redis, broker and two auth replicas (auth.0, auth.1)
    const char *dir;     //  its directory
    int admin[2];        //  the replicas' admin ports
    vz_client_t *gw;     //  client as the gateway
    vz_client_t *tester; //  client as someone else
    //  State carried between the ordered tests.
    char uid[64];      //  registered user
    char access[2048]; //  its access token
    char refresh[256]; //  its current refresh token
} mesh_t;

// --------------------------------------------------------------------------
//  Mesh

static int s_setup(void **state)
{
    mesh_t *mesh = calloc(1, sizeof *mesh);
    assert_non_null(mesh);
    *state = mesh;
    //  A cheap KDF keeps the test fast; the production default is 600000.
    char *const env[] = {"auth:VZ_AUTH_PBKDF2_ITERATIONS=100000",
                         "auth:VZ_AUTH_ADMIN_EMAILS=admin@example.com",
                         "auth:VZ_AUTH_LOCK_THRESHOLD=3",
                         "auth:VZ_AUTH_IP_THRESHOLD=1000",
                         "auth:VZ_AUTH_KEK_FILE={dir}/auth.kek",
                         "auth:VZ_AUTH_KEK_CREATE=true",
                         NULL};
    mesh->m = vzt_mesh_start(
        &(vzt_mesh_opts_t){.tag = "auth",
                           .daemons = "auth*2",
                           .identities = "gateway,tester",
                           .policy = "identity\n    gateway\n        call = \"auth broker\"\n"
                                     "    tester\n        call = \"auth\"\n"
                                     "    auth\n        serve = \"auth\"\n",
                           .env = env});
    assert_non_null(mesh->m);
    mesh->dir = vzt_mesh_dir(mesh->m);
    mesh->admin[0] = vzt_mesh_admin_port(mesh->m, "auth.0");
    mesh->admin[1] = vzt_mesh_admin_port(mesh->m, "auth.1");
    mesh->gw = vzt_mesh_client(mesh->m, "gateway");
    mesh->tester = vzt_mesh_client(mesh->m, "tester");
    assert_non_null(mesh->gw);
    assert_non_null(mesh->tester);
    return 0;
}

static int s_teardown(void **state)
{
    mesh_t *mesh = *state;
    vz_client_destroy(&mesh->gw);
    vz_client_destroy(&mesh->tester);
    int rc = vzt_mesh_destroy(&mesh->m);
    free(mesh);
    return rc;
}

// --------------------------------------------------------------------------
//  Calls

typedef struct {
    bool error;        //  error envelope
    char code[48];     //  its error_code
    char message[256]; //  its error_message
    char *body;        //  reply body, NUL-terminated (heap)
    size_t len;        //  its length
    vz_json_t *json;   //  parsed when the body is JSON
    int64_t ms;        //  round trip
    char status[8];    //  reply ctx "http_status", "" when absent
} res_t;

static void s_res_free(res_t *r)
{
    free(r->body);
    vz_json_destroy(&r->json);
    memset(r, 0, sizeof *r);
}

//  ctx: "key=value" strings, NULL-terminated (may be NULL).
static res_t s_call_as(vz_client_t *client, const char *method, const void *body, size_t len,
                       const char *const *ctx)
{
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "auth", method, NULL), 0);
    req.body = body;
    req.body_len = len;
    for (size_t i = 0; ctx && ctx[i]; i++) {
        char key[64];
        const char *eq = strchr(ctx[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - ctx[i]), ctx[i]);
        assert_int_equal(vz_envelope_ctx_set(&req, key, eq + 1), 0);
    }
    vz_response_t *resp = NULL;
    int64_t start = vz_now_ms();
    assert_int_equal(vz_client_call(client, &req, CALL_MS, &resp), 0);
    res_t r = {.ms = vz_now_ms() - start};
    r.error = resp->env.kind == VZ_KIND_ERROR;
    vz_strlcpy(r.code, resp->env.error_code, sizeof r.code);
    vz_strlcpy(r.message, resp->env.error_message, sizeof r.message);
    r.body = calloc(1, resp->env.body_len + 1);
    memcpy(r.body, resp->env.body ? (const void *)resp->env.body : "", resp->env.body_len);
    r.len = resp->env.body_len;
    r.json = r.error ? NULL : vz_json_parse(r.body, r.len, NULL, NULL);
    const char *status = vz_envelope_ctx_get(&resp->env, "http_status");
    vz_strlcpy(r.status, status ? status : "", sizeof r.status);
    vz_response_destroy(&resp);
    return r;
}

static res_t s_call(mesh_t *mesh, const char *method, const char *json, const char *const *ctx)
{
    return s_call_as(mesh->gw, method, json, json ? strlen(json) : 0, ctx);
}

static void s_expect_error(res_t *r, const char *code, const char *needle)
{
    if (!r->error || strcmp(r->code, code) != 0)
        fail_msg("expected %s, got %s %s %s", code, r->error ? "error" : "reply", r->code,
                 r->error ? r->message : r->body);
    if (needle && !strstr(r->message, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, r->message);
}

//  Call method and expect the error code (with needle in its message when
//  not NULL).
static void s_call_refused(mesh_t *mesh, const char *method, const char *body,
                           const char *const *ctx, const char *code, const char *needle)
{
    res_t r = s_call(mesh, method, body, ctx);
    s_expect_error(&r, code, needle);
    s_res_free(&r);
}

static const char *s_str(const res_t *r, const char *key)
{
    if (r->error || !r->json)
        fail_msg("expected a JSON reply, got %s: %s", r->code, r->message);
    const char *v = vz_json_get_string(vz_json_root(r->json), key, NULL);
    if (!v)
        fail_msg("no %s in %s", key, r->body);
    return v;
}

//  An api_key_verify body for key (caller frees).
static uint8_t *s_key_body(const char *key, size_t *len_p)
{
    vz_auth_key_verify_t in = {{0}};
    assert_int_equal(vz_strlcpy(in.key, key, sizeof in.key), 0);
    return vz_auth_key_verify_encode(&in, len_p);
}

//  The api_key_verify answer in r, through the contract's codec.
static vz_auth_key_identity_t s_identity(const res_t *r)
{
    vz_auth_key_identity_t who;
    const char *why = NULL;
    if (vz_auth_key_identity_decode(&who, (const uint8_t *)r->body, r->len, &why) < 0)
        fail_msg("api_key_verify answer: %s", why);
    return who;
}

static vz_jwt_keyset_t *s_jwks(mesh_t *mesh, char **raw_p)
{
    res_t r = s_call(mesh, "jwks", NULL, NULL);
    assert_false(r.error);
    vz_jwt_keyset_t *set = vz_jwt_keyset_from_jwks(r.body, r.len);
    assert_non_null(set);
    if (raw_p)
        *raw_p = strdup(r.body);
    s_res_free(&r);
    return set;
}

static int s_verify(mesh_t *mesh, const char *token, vz_jwt_claims_t *claims)
{
    vz_jwt_keyset_t *set = s_jwks(mesh, NULL);
    vz_jwt_verify_opts_t opts = {.issuer = ISS, .audience = AUD, .leeway_s = 5};
    int rc = vz_jwt_verify(set, token, strlen(token), &opts, claims);
    vz_jwt_keyset_destroy(&set);
    return rc;
}

//  The JWKS document (caller frees), after checking it holds `keys` keys
//  and that `calls` more calls (the broker alternates replicas, LRU) all
//  answer the same document.
static char *s_jwks_agreed(mesh_t *mesh, size_t keys, int calls)
{
    char *doc = NULL;
    vz_jwt_keyset_t *set = s_jwks(mesh, &doc);
    assert_int_equal(vz_jwt_keyset_size(set), keys);
    vz_jwt_keyset_destroy(&set);
    for (int i = 0; i < calls; i++) {
        res_t r = s_call(mesh, "jwks", NULL, NULL);
        assert_string_equal(r.body, doc);
        s_res_free(&r);
    }
    return doc;
}

static res_t s_login(mesh_t *mesh, const char *email, const char *password, const char *ip)
{
    char body[512], ipctx[80];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    snprintf(ipctx, sizeof ipctx, "client_ip=%s", ip);
    const char *ctx[] = {"auth=none", ipctx, NULL};
    return s_call(mesh, "login", body, ctx);
}

// --------------------------------------------------------------------------
//  Tests, in order

static void test_jwks_same_on_both_replicas(void **state)
{
    mesh_t *mesh = *state;
    free(s_jwks_agreed(mesh, 1, 6));
    for (int i = 0; i < 2; i++) {
        double served = 0;
        assert_int_equal(vzt_metric(mesh->admin[i],
                                    "vz_worker_requests_total{service=\"auth\",method=\"jwks\","
                                    "outcome=\"ok\"}",
                                    &served),
                         0);
        assert_true(served >= 1);
    }
}

static void test_register_validation(void **state)
{
    mesh_t *mesh = *state;
    struct {
        const char *body, *code, *needle;
    } cases[] = {
        {"not json", "invalid_request", "not valid JSON"},
        {"[]", "invalid_request", "JSON object"},
        {"{\"email\":\"a@b\",\"password\":\"long enough pw\"}", "validation_failed", "email:"},
        {"{\"email\":\"no-at.example.com\",\"password\":\"long enough pw\"}", "validation_failed",
         "email:"},
        {"{\"email\":\"a..b@example.com\",\"password\":\"long enough pw\"}", "validation_failed",
         "email:"},
        {"{\"email\":\"ada@example.com\"}", "validation_failed", "password: required"},
        {"{\"email\":\"ada@example.com\",\"password\":\"short\"}", "validation_failed",
         "password:"},
        {"{\"email\":\"ada@example.com\",\"password\":\"aaaaaaaaaaaa\"}", "validation_failed",
         "password:"},
        {"{\"email\":\"ada@example.com\",\"password\":12345678901}", "validation_failed",
         "password: must be a string"},
        {"{\"email\":\"ada@example.com\",\"password\":\"long enough pw\",\"name\":\"a\\u0001\"}",
         "validation_failed", "name:"},
        {"{\"email\":\"ada@example.com\",\"email\":\"eve@example.com\"}", "invalid_request",
         "duplicate key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        res_t r = s_call(mesh, "register", cases[i].body, NULL);
        s_expect_error(&r, cases[i].code, cases[i].needle);
        s_res_free(&r);
    }
}

static void test_register_login_profile(void **state)
{
    mesh_t *mesh = *state;
    res_t r = s_call(mesh, "register",
                     "{\"email\":\"Ada@Example.com\",\"password\":\"correct horse battery\","
                     "\"name\":\"Ada Lovelace\"}",
                     NULL);
    vz_strlcpy(mesh->uid, s_str(&r, "id"), sizeof mesh->uid);
    assert_string_equal(s_str(&r, "email"), "ada@example.com");
    assert_string_equal(s_str(&r, "tier"), "free");
    assert_null(strstr(r.body, "pbkdf2")); //  the hash never leaves the service
    assert_string_equal(r.status, "201");  //  the gateway answers 201 Created
    s_res_free(&r);
    r = s_call(mesh, "register",
               "{\"email\":\"ada@example.com\",\"password\":\"another password\"}", NULL);
    s_expect_error(&r, "conflict", "email");
    s_res_free(&r);

    r = s_login(mesh, "ADA@example.com", "correct horse battery", "10.0.0.1");
    vz_strlcpy(mesh->access, s_str(&r, "access_token"), sizeof mesh->access);
    vz_strlcpy(mesh->refresh, s_str(&r, "refresh_token"), sizeof mesh->refresh);
    assert_string_equal(s_str(&r, "token_type"), "Bearer");
    int64_t expires = 0;
    assert_int_equal(vz_json_int(vz_json_get(vz_json_root(r.json), "expires_in"), &expires), 0);
    assert_int_equal(expires, 900);
    s_res_free(&r);

    vz_jwt_claims_t c;
    assert_int_equal(s_verify(mesh, mesh->access, &c), 0);
    assert_string_equal(c.sub, mesh->uid);
    assert_string_equal(c.scope, "user");
    assert_string_equal(c.tier, "free");
    assert_int_equal(strlen(c.jti), 32);
    assert_true(c.exp - c.iat == 900);

    char sub[96];
    snprintf(sub, sizeof sub, "sub=%s", mesh->uid);
    const char *ctx[] = {"auth=jwt", sub, "scope=user", NULL};
    r = s_call(mesh, "profile_get", NULL, ctx);
    assert_string_equal(s_str(&r, "name"), "Ada Lovelace");
    s_res_free(&r);
    r = s_call(mesh, "profile_update", "{\"name\":\"Ada King\"}", ctx);
    assert_string_equal(s_str(&r, "name"), "Ada King");
    s_res_free(&r);
    s_call_refused(mesh, "profile_update", "{\"email\":\"eve@example.com\"}", ctx,
                   "validation_failed", "email:");
    s_call_refused(mesh, "profile_update", "{\"password\":\"a brand new password\"}", ctx,
                   "validation_failed", "current_password");
    //  Without ctx, or ctx from an identity that is not the gateway: unauthorized.
    s_call_refused(mesh, "profile_get", NULL, NULL, "unauthorized", NULL);
    r = s_call_as(mesh->tester, "profile_get", NULL, 0, ctx);
    s_expect_error(&r, "unauthorized", NULL);
    s_res_free(&r);
}

static void test_login_same_error_and_timing(void **state)
{
    mesh_t *mesh = *state;
    res_t wrong = s_login(mesh, "ada@example.com", "wrong password!", "10.0.0.2");
    res_t unknown = s_login(mesh, "nobody@example.com", "wrong password!", "10.0.0.2");
    s_expect_error(&wrong, "unauthorized", NULL);
    s_expect_error(&unknown, "unauthorized", NULL);
    assert_string_equal(wrong.message, unknown.message);
    //  Both paths run the KDF: neither is a fraction of the other.
    fprintf(stderr, "# wrong password %lld ms, unknown user %lld ms\n", (long long)wrong.ms,
            (long long)unknown.ms);
    assert_true(unknown.ms * 3 >= wrong.ms && wrong.ms * 3 >= unknown.ms);
    s_res_free(&wrong);
    s_res_free(&unknown);
}

static void test_refresh_rotation_and_reuse(void **state)
{
    mesh_t *mesh = *state;
    char body[512], first[256];
    vz_strlcpy(first, mesh->refresh, sizeof first);
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", first);
    res_t r = s_call(mesh, "refresh", body, NULL);
    const char *second = s_str(&r, "refresh_token");
    assert_string_not_equal(second, first);
    vz_strlcpy(mesh->refresh, second, sizeof mesh->refresh);
    assert_int_equal(s_verify(mesh, s_str(&r, "access_token"), NULL), 0);
    s_res_free(&r);

    //  The old token again: reuse, and the whole family dies with it.
    s_call_refused(mesh, "refresh", body, NULL, "unauthorized", "already used");
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", mesh->refresh);
    s_call_refused(mesh, "refresh", body, NULL, "unauthorized", NULL);

    s_call_refused(mesh, "refresh", "{\"refresh_token\":\"rt_forged\"}", NULL, "unauthorized",
                   NULL);
    s_call_refused(mesh, "refresh", "{}", NULL, "validation_failed", "refresh_token");
}

static void test_logout(void **state)
{
    mesh_t *mesh = *state;
    res_t r = s_login(mesh, "ada@example.com", "correct horse battery", "10.0.0.1");
    char refresh[256], body[512], sub[96];
    vz_strlcpy(refresh, s_str(&r, "refresh_token"), sizeof refresh);
    s_res_free(&r);
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", refresh);
    snprintf(sub, sizeof sub, "sub=%s", mesh->uid);
    const char *ctx[] = {"auth=jwt", sub, "scope=user", NULL};
    s_call_refused(mesh, "logout", body, NULL, "unauthorized", NULL);
    r = s_call(mesh, "logout", body, ctx);
    assert_false(r.error);
    assert_non_null(strstr(r.body, "\"sessions_revoked\":1"));
    s_res_free(&r);
    s_call_refused(mesh, "refresh", body, NULL, "unauthorized", NULL);
}

//  The right password logs in; until then the answer is the lockout.
static bool s_login_works(void *arg)
{
    res_t r = s_login(arg, "ada@example.com", "correct horse battery", "10.0.0.4");
    bool ok = !r.error;
    if (!ok)
        s_expect_error(&r, "too_many_requests", NULL);
    s_res_free(&r);
    return ok;
}

static void test_brute_force_lockout(void **state)
{
    mesh_t *mesh = *state;
    //  Threshold 3 in this mesh: the third failure locks the account.
    for (int i = 0; i < 3; i++) {
        res_t r = s_login(mesh, "ada@example.com", "guess number x", "10.0.0.3");
        s_expect_error(&r, "unauthorized", NULL);
        s_res_free(&r);
    }
    res_t r = s_login(mesh, "ada@example.com", "correct horse battery", "10.0.0.4");
    s_expect_error(&r, "too_many_requests", "retry in");
    s_res_free(&r);
    //  Unknown accounts lock the same way (no existence oracle).
    for (int i = 0; i < 4; i++) {
        r = s_login(mesh, "ghost@example.com", "guess number x", "10.0.0.5");
        if (i < 3)
            s_expect_error(&r, "unauthorized", NULL);
        else
            s_expect_error(&r, "too_many_requests", NULL);
        s_res_free(&r);
    }
    //  Wait out the first lockout (1 s), bounded; then the right password works.
    assert_true(vzt_wait_until(s_login_works, mesh, 5000));
}

static void test_api_keys(void **state)
{
    mesh_t *mesh = *state;
    char sub[96];
    snprintf(sub, sizeof sub, "sub=%s", mesh->uid);
    const char *ctx[] = {"auth=jwt", sub, "scope=user", NULL};
    res_t r = s_call(mesh, "api_key_create", "{\"name\":\"ci\"}", ctx);
    char key[128], id[32];
    vz_strlcpy(key, s_str(&r, "key"), sizeof key);
    vz_strlcpy(id, s_str(&r, "id"), sizeof id);
    assert_true(strncmp(key, "vzk_", 4) == 0);
    s_res_free(&r);
    s_call_refused(mesh, "api_key_create", "{\"name\":\"x\",\"scope\":\"admin\"}", ctx,
                   "validation_failed", "scope:");
    s_call_refused(mesh, "api_key_create", "{}", ctx, "validation_failed", "name:");

    r = s_call(mesh, "api_key_list", NULL, ctx);
    assert_false(r.error);
    assert_non_null(strstr(r.body, id));
    assert_null(strstr(r.body, key)); //  the secret is shown once only
    s_res_free(&r);

    size_t key_len;
    uint8_t *key_body = s_key_body(key, &key_len);
    for (int i = 0; i < 2; i++) { //  both replicas
        r = s_call_as(mesh->gw, "api_key_verify", key_body, key_len, NULL);
        assert_false(r.error);
        vz_auth_key_identity_t who = s_identity(&r);
        assert_true(who.valid);
        assert_string_equal(who.sub, mesh->uid);
        assert_string_equal(who.kid, id);
        assert_string_equal(who.tier, "free");
        s_res_free(&r);
    }
    //  A wrong secret with the right prefix, and junk: valid=false, not errors.
    char wrong[128];
    vz_strlcpy(wrong, key, sizeof wrong);
    wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == 'A' ? 'B' : 'A';
    const char *bad[] = {wrong, "vzk_junk", ""};
    for (int i = 0; i < 3; i++) {
        size_t bad_len;
        uint8_t *bad_body = s_key_body(bad[i], &bad_len);
        r = s_call_as(mesh->gw, "api_key_verify", bad_body, bad_len, NULL);
        assert_false(r.error);
        assert_false(s_identity(&r).valid);
        s_res_free(&r);
        free(bad_body);
    }
    s_call_refused(mesh, "api_key_verify", "not msgpack", NULL, "invalid_request", NULL);

    //  Revoke: someone else's delete is not_found; the owner's works.
    char path[64];
    snprintf(path, sizeof path, "path.id=%s", id);
    const char *other[] = {"auth=jwt", "sub=u_0000000000000000", "scope=user", path, NULL};
    s_call_refused(mesh, "api_key_delete", NULL, other, "not_found", NULL);
    const char *mine[] = {"auth=jwt", sub, "scope=user", path, NULL};
    r = s_call(mesh, "api_key_delete", NULL, mine);
    assert_false(r.error);
    s_res_free(&r);
    r = s_call_as(mesh->gw, "api_key_verify", key_body, key_len, NULL);
    assert_false(s_identity(&r).valid);
    s_res_free(&r);
    free(key_body);
}

static void test_oauth_client_credentials(void **state)
{
    mesh_t *mesh = *state;
    const char *user[] = {"auth=jwt", "sub=u_1", "scope=user", NULL};
    const char *admin[] = {"auth=jwt", "sub=u_2", "scope=user admin", NULL};
    const char *reg = "{\"name\":\"reporting\",\"scope\":\"reports:read metrics:read\","
                      "\"tier\":\"premium\"}";
    res_t r = s_call(mesh, "client_register", reg, user);
    s_expect_error(&r, "access_denied", "admin");
    s_res_free(&r);
    r = s_call(mesh, "client_register", reg, admin);
    char id[64], secret[128];
    vz_strlcpy(id, s_str(&r, "client_id"), sizeof id);
    vz_strlcpy(secret, s_str(&r, "client_secret"), sizeof secret);
    s_res_free(&r);

    char form[512];
    const char *fctx[] = {"auth=none", "content_type=application/x-www-form-urlencoded", NULL};
    snprintf(form, sizeof form,
             "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=reports%%3Aread",
             id, secret);
    r = s_call(mesh, "oauth_token", form, fctx);
    char token[2048];
    vz_strlcpy(token, s_str(&r, "access_token"), sizeof token);
    assert_string_equal(s_str(&r, "scope"), "reports:read");
    assert_null(vz_json_get(vz_json_root(r.json), "refresh_token"));
    s_res_free(&r);
    vz_jwt_claims_t c;
    assert_int_equal(s_verify(mesh, token, &c), 0);
    assert_string_equal(c.sub, id);
    assert_string_equal(c.client_id, id);
    assert_string_equal(c.tier, "premium");

    snprintf(form, sizeof form, "grant_type=client_credentials&client_id=%s&client_secret=x", id);
    r = s_call(mesh, "oauth_token", form, fctx);
    s_expect_error(&r, "invalid_request", "invalid_client"); //  400 unless HTTP Basic (§5.2)
    s_res_free(&r);
    snprintf(form, sizeof form, "grant_type=password&client_id=%s&client_secret=%s", id, secret);
    s_call_refused(mesh, "oauth_token", form, fctx, "invalid_request", "unsupported_grant_type");
    snprintf(form, sizeof form,
             "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=admin", id, secret);
    s_call_refused(mesh, "oauth_token", form, fctx, "invalid_request", "invalid_scope");

    //  Introspection (RFC 7662) authenticates the caller, then answers.
    char *intro = vzt_fmt("token=%s&client_id=%s&client_secret=%s", token, id, secret);
    r = s_call(mesh, "oauth_introspect", intro, fctx);
    bool active = false;
    assert_int_equal(vz_json_bool(vz_json_get(vz_json_root(r.json), "active"), &active), 0);
    assert_true(active);
    assert_string_equal(s_str(&r, "client_id"), id);
    s_res_free(&r);
    free(intro);
    intro = vzt_fmt("token=garbage&client_id=%s&client_secret=%s", id, secret);
    r = s_call(mesh, "oauth_introspect", intro, fctx);
    assert_non_null(strstr(r.body, "{\"active\":false}"));
    s_res_free(&r);
    free(intro);
    //  client_secret_basic through the forwarded Authorization header.
    char creds[256], b64[400], basic[480];
    snprintf(creds, sizeof creds, "%s:%s", id, secret);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)creds, (int)strlen(creds));
    snprintf(basic, sizeof basic, "header.authorization=Basic %s", b64);
    const char *bctx[] = {"auth=none", "content_type=application/x-www-form-urlencoded", basic,
                          NULL};
    r = s_call(mesh, "oauth_token", "grant_type=client_credentials", bctx);
    assert_string_equal(s_str(&r, "scope"), "reports:read metrics:read");
    s_res_free(&r);
    s_call_refused(mesh, "oauth_introspect", "token=abc", fctx, "unauthorized", "invalid_client");

    vz_auth_introspect_t *in = calloc(1, sizeof *in);
    assert_non_null(in);
    assert_int_equal(vz_strlcpy(in->token, token, sizeof in->token), 0);
    size_t len;
    uint8_t *body = vz_auth_introspect_encode(in, &len);
    free(in);
    r = s_call_as(mesh->gw, "token_introspect", body, len, NULL);
    free(body);
    vz_auth_token_info_t info;
    assert_int_equal(vz_auth_token_info_decode(&info, (const uint8_t *)r.body, r.len, NULL), 0);
    assert_true(info.active);
    assert_string_equal(info.client_id, id);
    s_res_free(&r);
}

//  Run the jose verifier; returns its stdout (heap).
static char *s_jose(mesh_t *mesh, const char *jwks, const char *const *tokens)
{
    char *path = vzt_fmt("%s/jwks.json", mesh->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(jwks, f);
    fclose(f);
    const char *src = getenv("VZ_SOURCE_DIR");
    assert_non_null(src);
    char *cmd = vzt_fmt("node %s/tests/peers/auth_jose.mjs %s %s %s", src, path, ISS, AUD);
    for (size_t i = 0; tokens[i]; i++) {
        char *longer = vzt_fmt("%s '%s'", cmd, tokens[i]);
        free(cmd);
        cmd = longer;
    }
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *out = calloc(1, 8192);
    size_t n = fread(out, 1, 8191, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    free(cmd);
    free(path);
    return out;
}

static void test_rotation_and_jose(void **state)
{
    mesh_t *mesh = *state;
    char *src = vzt_fmt("%s/tests/peers/node_modules/jose", getenv("VZ_SOURCE_DIR"));
    if (access(src, F_OK) != 0)
        fail_msg("tests/peers/node_modules/jose missing (run make test-deps)");
    free(src);
    res_t r = s_login(mesh, "ada@example.com", "correct horse battery", "10.0.0.6");
    char before[2048];
    vz_strlcpy(before, s_str(&r, "access_token"), sizeof before);
    s_res_free(&r);
    vz_jwt_claims_t c1, c2;
    assert_int_equal(s_verify(mesh, before, &c1), 0);

    const char *admin[] = {"auth=jwt", "sub=u_2", "scope=user admin", NULL};
    const char *user[] = {"auth=jwt", "sub=u_1", "scope=user", NULL};
    s_call_refused(mesh, "keys_rotate", NULL, user, "access_denied", NULL);
    r = s_call(mesh, "keys_rotate", NULL, admin);
    char kid[64];
    vz_strlcpy(kid, s_str(&r, "kid"), sizeof kid);
    assert_string_not_equal(kid, c1.kid);
    s_res_free(&r);

    r = s_login(mesh, "ada@example.com", "correct horse battery", "10.0.0.6");
    char after[2048];
    vz_strlcpy(after, s_str(&r, "access_token"), sizeof after);
    s_res_free(&r);
    //  Both replicas sign with the new key and publish both keys.
    char *jwks = s_jwks_agreed(mesh, 2, 4);
    assert_int_equal(s_verify(mesh, before, NULL), 0);
    assert_int_equal(s_verify(mesh, after, &c2), 0);
    assert_string_equal(c2.kid, kid);

    //  The independent verifier agrees, and refuses a tampered token.
    char tampered[2048];
    vz_strlcpy(tampered, after, sizeof tampered);
    char *dot = strchr(tampered, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    const char *tokens[] = {before, after, tampered, NULL};
    char *out = s_jose(mesh, jwks, tokens);
    char want[512];
    snprintf(want, sizeof want, "ok %s %s ES256\nok %s %s ES256\nfail ", mesh->uid, c1.kid,
             mesh->uid, kid);
    if (strncmp(out, want, strlen(want)) != 0)
        fail_msg("jose said:\n%s\nexpected:\n%s", out, want);
    free(out);
    free(jwks);
}

// --------------------------------------------------------------------------
//  Hardening (issue 21): admin bootstrap, lockout escalation, RFC 6749 §5.2

//  A command on the mesh's Redis; the caller frees the reply.
static redisReply *s_redis(mesh_t *mesh, const char *fmt, ...)
{
    redisContext *c = redisConnect("127.0.0.1", vzt_mesh_redis_port(mesh->m));
    assert_true(c && !c->err);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(r);
    return r;
}

static long long s_redis_int(mesh_t *mesh, const char *cmd, const char *key)
{
    redisReply *r = s_redis(mesh, "%s %s", cmd, key);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void s_sha256_hex(const char *text, char out[65])
{
    unsigned char md[32];
    unsigned n = 0;
    EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

//  Every "vzb_" token the auth replicas logged, copied into out (one
//  token kept: the first); returns how many lines held one.
static int s_bootstrap_logged(mesh_t *mesh, char *out, size_t n)
{
    int count = 0;
    for (int i = 0; i < 2; i++) {
        char *path = vzt_fmt("%s/auth.%d.log", mesh->dir, i);
        FILE *f = fopen(path, "r");
        free(path);
        char line[2048];
        while (f && fgets(line, sizeof line, f)) {
            const char *t = strstr(line, "\"vzb_");
            if (!t)
                continue;
            if (count++ == 0)
                snprintf(out, n, "%.*s", (int)strcspn(t + 1, "\""), t + 1);
        }
        if (f)
            fclose(f);
    }
    return count;
}

//  The signing keys are AES-256-GCM ciphertext in Redis (the KEK file the
//  first replica made, 0600), both replicas sign and publish with them,
//  and a record moved under another kid does not decrypt.
static void test_signing_keys_encrypted_at_rest(void **state)
{
    mesh_t *mesh = *state;
    vz_jwt_keyset_t *set = s_jwks(mesh, NULL);
    size_t published = vz_jwt_keyset_size(set);
    vz_jwt_keyset_destroy(&set);
    free(s_jwks_agreed(mesh, published, 4));
    redisReply *all = s_redis(mesh, "HGETALL {auth}:keys");
    assert_int_equal(all->type, REDIS_REPLY_ARRAY);
    assert_true(all->elements >= 2);
    for (size_t i = 1; i < all->elements; i += 2) {
        const char *record = all->element[i]->str;
        if (strstr(record, "PRIVATE KEY") || !strstr(record, " enc:v1:"))
            fail_msg("a signing key is not encrypted in Redis: %.60s", record);
    }
    //  Bound to its kid: the same record under a new kid is refused.
    redisReply *r = s_redis(mesh, "HSET {auth}:keys k-moved %s", all->element[1]->str);
    freeReplyObject(r);
    freeReplyObject(all);
    char *kek = vzt_fmt("%s/auth.kek", mesh->dir);
    struct stat st;
    assert_int_equal(stat(kek, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(kek);
    r = s_redis(mesh, "INCR {auth}:keys:ver"); //  replicas reload
    freeReplyObject(r);
    char *jwks = s_jwks_agreed(mesh, published, 4);
    if (strstr(jwks, "k-moved"))
        fail_msg("a record under another kid was published: %s", jwks);
    free(jwks);
    r = s_redis(mesh, "HDEL {auth}:keys k-moved");
    freeReplyObject(r);
}

static void test_admin_only_by_bootstrap_token(void **state)
{
    mesh_t *mesh = *state;
    //  admin@example.com is in this mesh's VZ_AUTH_ADMIN_EMAILS: registering
    //  it no longer grants anything.
    res_t r =
        s_call(mesh, "register",
               "{\"email\":\"admin@example.com\",\"password\":\"the admin's passphrase\"}", NULL);
    char uid[64], sub[96];
    vz_strlcpy(uid, s_str(&r, "id"), sizeof uid);
    assert_string_equal(s_str(&r, "scope"), "user");
    s_res_free(&r);

    //  One of the two replicas logged the token, once; Redis holds its hash only.
    char token[128] = "";
    assert_int_equal(s_bootstrap_logged(mesh, token, sizeof token), 1);
    char hash[65];
    s_sha256_hex(token, hash);
    redisReply *h = s_redis(mesh, "GET {auth}:bootstrap");
    assert_int_equal(h->type, REDIS_REPLY_STRING);
    assert_string_equal(h->str, hash);
    freeReplyObject(h);
    long long ttl = s_redis_int(mesh, "TTL", "{auth}:bootstrap");
    assert_true(ttl > 0 && ttl <= 86400);

    snprintf(sub, sizeof sub, "sub=%s", uid);
    const char *me[] = {"auth=jwt", sub, "scope=user", NULL};
    char body[256];
    snprintf(body, sizeof body, "{\"token\":\"%s\"}", token);
    //  No user token, a wrong token, a malformed one: refused, token kept.
    s_call_refused(mesh, "admin_bootstrap", body, NULL, "unauthorized", NULL);
    s_call_refused(mesh, "admin_bootstrap", "{\"token\":\"vzb_not-the-token\"}", me,
                   "access_denied", "bootstrap token");
    s_call_refused(mesh, "admin_bootstrap", "{\"token\":\"guess\"}", me, "validation_failed",
                   "token:");
    assert_int_equal(s_redis_int(mesh, "EXISTS", "{auth}:bootstrap"), 1);

    r = s_call(mesh, "admin_bootstrap", body, me);
    assert_string_equal(s_str(&r, "scope"), "user admin");
    s_res_free(&r);
    //  One use only; the next login carries scope admin.
    s_call_refused(mesh, "admin_bootstrap", body, me, "access_denied", NULL);
    assert_int_equal(s_redis_int(mesh, "SCARD", "{auth}:admins"), 1);
    r = s_login(mesh, "admin@example.com", "the admin's passphrase", "10.0.0.7");
    vz_jwt_claims_t c;
    assert_int_equal(s_verify(mesh, s_str(&r, "access_token"), &c), 0);
    assert_string_equal(c.scope, "user admin");
    s_res_free(&r);
}

static void test_lockout_counter_outlives_the_lock(void **state)
{
    mesh_t *mesh = *state;
    const char *email = "target@example.com";
    char ehash[65], fail_key[64], lock_key[64];
    s_sha256_hex(email, ehash);
    snprintf(fail_key, sizeof fail_key, "{auth}:fail:a:%.32s", ehash);
    snprintf(lock_key, sizeof lock_key, "{auth}:lock:a:%.32s", ehash);
    //  Three failures (threshold 3) lock for 1 s; each further one doubles.
    char ip[32];
    for (int i = 0; i < 3; i++) {
        snprintf(ip, sizeof ip, "10.1.0.%d", i);
        res_t r = s_login(mesh, email, "guess number x", ip);
        s_expect_error(&r, "unauthorized", NULL);
        s_res_free(&r);
    }
    long long last = s_redis_int(mesh, "PTTL", lock_key);
    assert_true(last > 0 && last <= 1000);
    for (int i = 0; i < 2; i++) {
        //  The lock ran out (deleted here instead of waited for); one more guess.
        s_redis_int(mesh, "DEL", lock_key);
        snprintf(ip, sizeof ip, "10.1.1.%d", i);
        res_t r = s_login(mesh, email, "guess number x", ip);
        s_expect_error(&r, "unauthorized", NULL);
        s_res_free(&r);
        long long next = s_redis_int(mesh, "PTTL", lock_key);
        assert_true(next > last && next <= 2000LL << i);
        last = next;
    }
    //  Guesses spread over hours: the counter is near its old 15-minute
    //  expiry when the lock reaches its cap (900 s here). It must outlive
    //  that lock, so the next guess after it pays the cap again.
    redisReply *x = s_redis(mesh, "SET %s 40 EX 5", fail_key);
    freeReplyObject(x);
    s_redis_int(mesh, "DEL", lock_key);
    res_t r = s_login(mesh, email, "guess number x", "10.1.2.1");
    s_expect_error(&r, "unauthorized", NULL);
    s_res_free(&r);
    long long lock_ms = s_redis_int(mesh, "PTTL", lock_key);
    long long fail_ms = s_redis_int(mesh, "PTTL", fail_key);
    assert_true(lock_ms > 890000 && lock_ms <= 900000);
    if (fail_ms <= lock_ms + 60000)
        fail_msg("failure counter expires in %lld ms, before the %lld ms lock ends", fail_ms,
                 lock_ms);
    r = s_login(mesh, email, "guess number x", "10.1.2.2");
    s_expect_error(&r, "too_many_requests", "retry in 900 s");
    s_res_free(&r);
    s_redis_int(mesh, "DEL", lock_key);
    r = s_login(mesh, email, "guess number x", "10.1.2.3");
    s_res_free(&r);
    assert_true(s_redis_int(mesh, "PTTL", lock_key) > 890000);
    //  Only a success resets it.
    r = s_login(mesh, "ada@example.com", "wrong guess again", "10.1.3.1");
    s_res_free(&r);
    char ada[65], ada_fail[64];
    s_sha256_hex("ada@example.com", ada);
    snprintf(ada_fail, sizeof ada_fail, "{auth}:fail:a:%.32s", ada);
    assert_int_equal(s_redis_int(mesh, "EXISTS", ada_fail), 1);
    r = s_login(mesh, "ada@example.com", "correct horse battery", "10.1.3.2");
    assert_false(r.error);
    s_res_free(&r);
    assert_int_equal(s_redis_int(mesh, "EXISTS", ada_fail), 0);
}

//  One token-endpoint call as the gateway makes it (Basic when basic is
//  not NULL): its error envelope split as RFC 6749 §5.2 wants it.
typedef struct {
    char code[48];  //  contract-C error code ("" = a reply)
    char status[8]; //  reply ctx http_status
    char error[48]; //  the message's "<error>: " part
    char desc[256]; //  the rest: error_description
} oauth_res_t;

static oauth_res_t s_token_call(mesh_t *mesh, const char *form, const char *basic)
{
    char header[512] = "";
    if (basic)
        snprintf(header, sizeof header, "header.authorization=%s", basic);
    const char *ctx[] = {"auth=none", "content_type=application/x-www-form-urlencoded",
                         basic ? header : NULL, NULL};
    res_t r = s_call(mesh, "oauth_token", form, ctx);
    oauth_res_t o = {0};
    if (r.error) {
        vz_strlcpy(o.code, r.code, sizeof o.code);
        size_t n = strcspn(r.message, ":");
        snprintf(o.error, sizeof o.error, "%.*s", (int)n, r.message);
        vz_strlcpy(o.desc, r.message[n] ? r.message + n + 2 : "", sizeof o.desc);
    }
    vz_strlcpy(o.status, r.status, sizeof o.status);
    s_res_free(&r);
    return o;
}

static void test_oauth_token_errors_rfc6749(void **state)
{
    mesh_t *mesh = *state;
    const char *admin[] = {"auth=jwt", "sub=u_2", "scope=user admin", NULL};
    res_t r =
        s_call(mesh, "client_register", "{\"name\":\"rfc\",\"scope\":\"reports:read\"}", admin);
    char id[64], secret[128], creds[256], b64[400], good[480], bad[480];
    vz_strlcpy(id, s_str(&r, "client_id"), sizeof id);
    vz_strlcpy(secret, s_str(&r, "client_secret"), sizeof secret);
    s_res_free(&r);
    snprintf(creds, sizeof creds, "%s:%s", id, secret);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)creds, (int)strlen(creds));
    snprintf(good, sizeof good, "Basic %s", b64);
    snprintf(creds, sizeof creds, "%s:wrong", id);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)creds, (int)strlen(creds));
    snprintf(bad, sizeof bad, "Basic %s", b64);
    char *post = vzt_fmt("client_id=%s&client_secret=%s", id, secret);
    char *cc = vzt_fmt("grant_type=client_credentials&%s", post);
    char *wrong = vzt_fmt("grant_type=client_credentials&client_id=%s&client_secret=x", id);
    char *pw = vzt_fmt("grant_type=password&%s", post);
    char *scope = vzt_fmt("%s&scope=admin", cc);
    char *twice = vzt_fmt("%s&grant_type=client_credentials", cc);
    struct {
        const char *form, *basic, *code, *status, *error;
    } cases[] = {
        {wrong, NULL, "invalid_request", "400", "invalid_client"},
        {"grant_type=client_credentials", bad, "unauthorized", "401", "invalid_client"},
        {"grant_type=client_credentials", "Basic !!!", "unauthorized", "401", "invalid_client"},
        {"grant_type=client_credentials", NULL, "invalid_request", "400", "invalid_client"},
        {post, NULL, "invalid_request", "400", "invalid_request"},
        {twice, NULL, "invalid_request", "400", "invalid_request"},
        {cc, good, "invalid_request", "400", "invalid_request"},
        {pw, NULL, "invalid_request", "400", "unsupported_grant_type"},
        {scope, NULL, "invalid_request", "400", "invalid_scope"},
        {"grant_type=client_credentials&scope=admin", good, "invalid_request", "400",
         "invalid_scope"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        oauth_res_t o = s_token_call(mesh, cases[i].form, cases[i].basic);
        if (strcmp(o.code, cases[i].code) != 0 || strcmp(o.status, cases[i].status) != 0 ||
            strcmp(o.error, cases[i].error) != 0)
            fail_msg("case %zu: got %s %s error=%s, expected %s %s %s", i, o.code, o.status,
                     o.error, cases[i].code, cases[i].status, cases[i].error);
        //  error_description: printable ASCII without '"' and '\' (§5.2).
        assert_true(o.desc[0]);
        for (const char *p = o.desc; *p; p++)
            assert_true(*p >= 0x20 && *p <= 0x7e && *p != '"' && *p != '\\');
    }
    //  Each method alone still works.
    oauth_res_t o = s_token_call(mesh, cc, NULL);
    assert_string_equal(o.code, "");
    o = s_token_call(mesh, "grant_type=client_credentials", good);
    assert_string_equal(o.code, "");
    free(post);
    free(cc);
    free(wrong);
    free(pw);
    free(scope);
    free(twice);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwks_same_on_both_replicas),
        cmocka_unit_test(test_register_validation),
        cmocka_unit_test(test_register_login_profile),
        cmocka_unit_test(test_login_same_error_and_timing),
        cmocka_unit_test(test_refresh_rotation_and_reuse),
        cmocka_unit_test(test_logout),
        cmocka_unit_test(test_brute_force_lockout),
        cmocka_unit_test(test_api_keys),
        cmocka_unit_test(test_oauth_client_credentials),
        cmocka_unit_test(test_rotation_and_jose),
        cmocka_unit_test(test_signing_keys_encrypted_at_rest),
        cmocka_unit_test(test_admin_only_by_bootstrap_token),
        cmocka_unit_test(test_lockout_counter_outlives_the_lock),
        cmocka_unit_test(test_oauth_token_errors_rfc6749),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
