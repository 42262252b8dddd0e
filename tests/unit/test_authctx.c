/*  test_authctx - caller trust, context keys, scope lists, worker replies
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Trust, reading, writing and scopes are pure functions over envelopes
 *  and strings. The reply helpers are checked through a real vz_worker: the
 *  test plays the broker (a CURVE ROUTER), sends REQ frames naming a caller
 *  and decodes the REP envelopes the helpers produced. Every wait is a poll
 *  bounded by WAIT_MS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_authctx.h"
#include "vz_curve.h"
#include "vz_proto.h"

#include "ut.h"

#define WAIT_MS 5000 //  bound on any expected frame

// --------------------------------------------------------------------------
//  Trust and reading

//  A request from caller with the context a gateway would attach.
static void s_request(vz_envelope_t *req, const char *caller)
{
    vz_envelope_init(req, VZ_KIND_REQUEST);
    vz_strlcpy(req->caller, caller, sizeof req->caller);
    vz_authctx_t who = {.auth = VZ_AUTHCTX_BY_JWT,
                        .sub = "u_1",
                        .scope = "user admin",
                        .tier = VZ_AUTHCTX_TIER_PREMIUM,
                        .client_ip = "192.0.2.7"};
    assert_int_equal(vz_authctx_write(req->ctx, &req->ctx_count, &who), 0);
    assert_int_equal(vz_authctx_set_param(req->ctx, &req->ctx_count, "id", "abc"), 0);
    assert_int_equal(vz_authctx_set_header(req->ctx, &req->ctx_count, "Authorization", "Basic x"),
                     0);
    assert_int_equal(vz_envelope_ctx_set(req, VZ_AUTHCTX_CONTENT_TYPE, "text/plain"), 0);
    assert_int_equal(vz_authctx_set_query(req->ctx, &req->ctx_count, "period", "week"), 0);
}

static void test_trusted_table(void **state)
{
    assert_true(vz_authctx_trusted("gateway"));
    assert_false(vz_authctx_trusted("tester"));
    assert_false(vz_authctx_trusted("Gateway"));
    assert_false(vz_authctx_trusted("gateway2"));
    assert_false(vz_authctx_trusted("gate"));
    assert_false(vz_authctx_trusted(""));
    assert_false(vz_authctx_trusted(NULL));
}

//  What vz_authctx_read made of a request, as one line to compare:
//  "<trusted> <auth>|<sub>|<scope>|<tier>|<kid>|<client_ip>".
static void s_expect_ctx(const vz_authctx_t *ctx, const char *want)
{
    char got[512];
    snprintf(got, sizeof got, "%d %s|%s|%s|%s|%s|%s", ctx->trusted, ctx->auth, ctx->sub, ctx->scope,
             ctx->tier, ctx->kid, ctx->client_ip);
    assert_string_equal(got, want);
}

static void test_read_trusted(void **state)
{
    vz_envelope_t req;
    s_request(&req, "gateway");
    vz_authctx_t ctx;
    vz_authctx_read(&req, &ctx);
    //  kid "": left out by the writer (NULL).
    s_expect_ctx(&ctx, "1 jwt|u_1|user admin|premium||192.0.2.7");
    assert_null(vz_envelope_ctx_get(&req, VZ_AUTHCTX_KID));
    assert_string_equal(vz_authctx_param(&req, "id"), "abc");
    assert_string_equal(vz_authctx_header(&req, "AUTHORIZATION"), "Basic x");
    assert_string_equal(vz_envelope_ctx_get(&req, "header.authorization"), "Basic x");
    assert_string_equal(vz_authctx_get(&req, VZ_AUTHCTX_CONTENT_TYPE), "text/plain");
    assert_string_equal(vz_authctx_query(&req, "period"), "week");
    assert_string_equal(vz_envelope_ctx_get(&req, "query.period"), "week");
    assert_null(vz_authctx_query(&req, "id"));
    assert_null(vz_authctx_param(&req, "other"));
    assert_null(vz_authctx_param(&req, ""));
    //  A name that cannot make a key is absent, not a cut key that might exist.
    char longname[VZ_CTX_KEY_MAX];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_null(vz_authctx_header(&req, longname));
}

static void test_read_untrusted(void **state)
{
    //  The same entries from anyone else count for nothing.
    const char *const callers[] = {"tester", "", "gateway "};
    for (size_t i = 0; i < sizeof callers / sizeof callers[0]; i++) {
        vz_envelope_t req;
        s_request(&req, callers[i]);
        vz_authctx_t ctx;
        vz_authctx_read(&req, &ctx);
        s_expect_ctx(&ctx, "0 none|||||");
        assert_null(vz_authctx_get(&req, VZ_AUTHCTX_SUB));
        assert_null(vz_authctx_param(&req, "id"));
        assert_null(vz_authctx_header(&req, "authorization"));
        assert_null(vz_authctx_query(&req, "period"));
    }
    //  A trusted caller that sent no context, or an empty auth: "none".
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    strcpy(req.caller, "gateway");
    assert_int_equal(vz_envelope_ctx_set(&req, VZ_AUTHCTX_AUTH, ""), 0);
    vz_authctx_t ctx;
    vz_authctx_read(&req, &ctx);
    s_expect_ctx(&ctx, "1 none|||||");
}

// --------------------------------------------------------------------------
//  Writing: what does not fit is refused, never cut

static void test_refuse_what_does_not_fit(void **state)
{
    vz_ctx_entry_t ctx[VZ_CTX_MAX];
    size_t count = 0;
    //  A scope list whose cut to 255 bytes would end in the scope "admin".
    char scope[VZ_AUTHCTX_VALUE_MAX + 6];
    memset(scope, 'a', VZ_AUTHCTX_VALUE_MAX - 6);
    memcpy(scope + VZ_AUTHCTX_VALUE_MAX - 6, " admin:read", sizeof " admin:read");
    assert_int_equal(strlen(scope), VZ_AUTHCTX_VALUE_MAX + 5);
    vz_authctx_t who = {.auth = VZ_AUTHCTX_BY_JWT, .sub = "u_1", .scope = scope};
    assert_int_equal(vz_authctx_write(ctx, &count, &who), -ENAMETOOLONG);
    assert_int_equal(count, 2); //  auth and sub; no scope entry at all
    for (size_t i = 0; i < count; i++)
        assert_string_not_equal(ctx[i].key, VZ_AUTHCTX_SCOPE);
    //  VZ_AUTHCTX_VALUE_MAX bytes fit, whole.
    memset(scope, 'c', VZ_AUTHCTX_VALUE_MAX);
    scope[VZ_AUTHCTX_VALUE_MAX] = '\0';
    assert_int_equal(vz_envelope_ctx_put(ctx, &count, VZ_AUTHCTX_SCOPE, scope), 0);
    assert_string_equal(ctx[2].value, scope);
    //  A longer value for an existing key leaves the old one as it was.
    char longer[VZ_CTX_VAL_MAX + 8];
    memset(longer, 'b', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(vz_envelope_ctx_put(ctx, &count, VZ_AUTHCTX_SCOPE, longer), -ENAMETOOLONG);
    assert_string_equal(ctx[2].value, scope);
    assert_int_equal(count, 3);

    //  Keys: a header or param name whose key would not fit, empty names.
    char name[VZ_CTX_KEY_MAX];
    memset(name, 'h', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_int_equal(vz_authctx_set_header(ctx, &count, name, "v"), -ENAMETOOLONG);
    assert_int_equal(vz_authctx_set_param(ctx, &count, name, "v"), -ENAMETOOLONG);
    assert_int_equal(vz_authctx_set_query(ctx, &count, name, "v"), -ENAMETOOLONG);
    assert_int_equal(vz_authctx_set_header(ctx, &count, "", "v"), -EINVAL);
    assert_int_equal(vz_authctx_set_param(ctx, &count, "", "v"), -EINVAL);
    name[VZ_CTX_KEY_MAX - 1 - strlen("header.")] = '\0'; //  the longest that fits
    assert_int_equal(vz_authctx_set_header(ctx, &count, name, "v"), 0);
    assert_int_equal(count, 4);

    //  Full: the seventeenth entry is refused, replacing still works.
    for (size_t i = count; i < VZ_CTX_MAX; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%zu", i);
        assert_int_equal(vz_envelope_ctx_put(ctx, &count, key, "x"), 0);
    }
    assert_int_equal(vz_authctx_set_param(ctx, &count, "one_more", "x"), -ENOSPC);
    assert_int_equal(vz_envelope_ctx_put(ctx, &count, VZ_AUTHCTX_SUB, "u_2"), 0);
    assert_int_equal(count, VZ_CTX_MAX);

    //  The envelope's setter is the same rule.
    vz_envelope_t env;
    vz_envelope_init(&env, VZ_KIND_REQUEST);
    assert_int_equal(vz_envelope_ctx_set(&env, VZ_AUTHCTX_SCOPE, longer), -ENAMETOOLONG);
    assert_int_equal(env.ctx_count, 0);
}

// --------------------------------------------------------------------------
//  Scope lists

static void test_scope_next(void **state)
{
    const char *list = "  read  write:all a,b\tc ", *p = list, *s;
    const char *const want[] = {"read", "write:all", "a,b\tc"};
    size_t n, i = 0;
    while ((s = vz_authctx_scope_next(&p, &n))) {
        assert_true(i < 3);
        assert_int_equal(n, strlen(want[i]));
        assert_memory_equal(s, want[i], n);
        i++;
    }
    assert_int_equal(i, 3);
    p = "";
    assert_null(vz_authctx_scope_next(&p, &n));
    p = "    ";
    assert_null(vz_authctx_scope_next(&p, &n));
}

static void test_scope_has_and_subset(void **state)
{
    const struct {
        const char *list;  //  granted
        const char *scope; //  asked
        bool has;          //  vz_authctx_scope_has
    } has[] = {
        {"user admin", "admin", true},
        {"  admin  ", "admin", true},
        {"admin admin", "admin", true},
        {"", "admin", false},
        {"administrator", "admin", false},
        {"admin:read", "admin", false},
        {"Admin", "admin", false},
        //  Only spaces separate: other separators are part of one odd scope.
        {"user,admin", "admin", false},
        {"user\tadmin", "admin", false},
        //  The empty scope and a "scope" with a space never match.
        {"user admin", "", false},
        {"user admin", "user admin", false},
    };
    for (size_t i = 0; i < sizeof has / sizeof has[0]; i++)
        if (vz_authctx_scope_has(has[i].list, has[i].scope) != has[i].has)
            fail_msg("has(\"%s\", \"%s\") is not %d", has[i].list, has[i].scope, has[i].has);
    const struct {
        const char *want; //  asked
        const char *have; //  granted
        bool subset;      //  vz_authctx_scope_subset
    } sub[] = {
        {"", "anything", true},  {"   ", "", true}, {"read read", "read", true},
        {"b a", "a  b c", true}, {"a", "", false},  {"a d", "a b c", false},
        {"adm", "admin", false},
    };
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
        if (vz_authctx_scope_subset(sub[i].want, sub[i].have) != sub[i].subset)
            fail_msg("subset(\"%s\", \"%s\") is not %d", sub[i].want, sub[i].have, sub[i].subset);
    //  Long scopes are compared whole (no word buffer to overflow or cut).
    char big[600], shorter[599];
    memset(big, 's', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(shorter, big, sizeof shorter - 1);
    shorter[sizeof shorter - 1] = '\0';
    assert_true(vz_authctx_scope_has(big, big));
    assert_false(vz_authctx_scope_has(big, shorter));
    assert_false(vz_authctx_scope_subset(big, shorter));
    //  missing names the first absent scope.
    size_t len = 99;
    assert_null(vz_authctx_scope_missing("a b", "b a", &len));
    assert_int_equal(len, 0);
    const char *miss = vz_authctx_scope_missing("a   reports:write b", "a b", &len);
    assert_non_null(miss);
    assert_int_equal(len, strlen("reports:write"));
    assert_memory_equal(miss, "reports:write", len);
}

static void test_scope_normalize(void **state)
{
    char out[32];
    assert_int_equal(vz_authctx_scope_normalize("  b a  b   a c ", out, sizeof out), 0);
    assert_string_equal(out, "b a c");
    assert_int_equal(vz_authctx_scope_normalize("", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(vz_authctx_scope_normalize("   ", out, sizeof out), 0);
    assert_string_equal(out, "");
    //  Bytes RFC 6749 does not allow in a scope.
    const char *const bad[] = {"a\tb", "a\"b", "a\\b", "caf\xc3\xa9", "a\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(out, "junk");
        assert_int_equal(vz_authctx_scope_normalize(bad[i], out, sizeof out), -EINVAL);
        assert_string_equal(out, "");
    }
    //  Exactly full fits; one byte more is refused whole, never cut.
    char small[6];
    assert_int_equal(vz_authctx_scope_normalize("ab cd", small, sizeof small), 0);
    assert_string_equal(small, "ab cd");
    assert_int_equal(vz_authctx_scope_normalize("ab cd e", small, sizeof small), -ENAMETOOLONG);
    assert_string_equal(small, "");
    //  Duplicates cost nothing: a long list of one scope fits.
    assert_int_equal(vz_authctx_scope_normalize("ab ab ab ab ab ab ab", small, sizeof small), 0);
    assert_string_equal(small, "ab");
}

// --------------------------------------------------------------------------
//  Replies through a real worker

static int h_json(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    const char *sub = vz_authctx_get(req, VZ_AUTHCTX_SUB);
    vz_json_write_kv_string(w, "sub", sub ? sub : "-");
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}

static int h_created(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "id", "k1");
    vz_json_write_object_end(w);
    return vz_authctx_reply_created(reply, &w, req->body_len ? "/v1/things/k1" : NULL);
}

static int h_created_long(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    char location[VZ_CTX_VAL_MAX + 1];
    memset(location, '/', sizeof location - 1);
    location[sizeof location - 1] = '\0';
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_object_end(w);
    int rc = vz_authctx_reply_created(reply, &w, location);
    if (rc != -ENAMETOOLONG || w != NULL)
        return vz_reply_error(reply, "wrong", "the location was not refused");
    return 0; //  the helper already put an error in place
}

static int h_unfinished(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w); //  never closed
    return vz_authctx_reply_created(reply, &w, "/x");
}

static int h_error(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    //  body: "<status> <code>"
    char text[64] = "", code[48] = "";
    int status = -1;
    memcpy(text, req->body, req->body_len < sizeof text ? req->body_len : sizeof text - 1);
    if (sscanf(text, "%d %47s", &status, code) != 2)
        return -1;
    return vz_authctx_reply_error(reply, status, code, "what went wrong");
}

static const vz_method_t s_methods[] = {
    {"json", h_json, 0, 0},
    {"created", h_created, 0, 0},
    {"created_long", h_created_long, 0, 0},
    {"unfinished", h_unfinished, 0, 0},
    {"error", h_error, 0, 0},
};

typedef struct {
    ut_keys_t *keys;    //  server: the test's, as the broker; peer: the worker's
    ut_broker_t broker; //  the fake broker
    zactor_t *worker;   //  vz_worker on its own loop
} rig_t;

//  Worker thread: its own loop until $TERM on the pipe.
static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    return -1;
}

static void s_worker_actor(zsock_t *pipe, void *arg)
{
    rig_t *rig = arg;
    vz_worker_config_t cfg = {.service = "svc",
                              .endpoints = rig->broker.endpoint,
                              .broker_key = zcert_public_txt(rig->keys->server),
                              .cert = rig->keys->peer};
    vz_worker_t *worker =
        vz_worker_new(&cfg, s_methods, sizeof s_methods / sizeof s_methods[0], NULL);
    zloop_t *loop = zloop_new();
    zsock_signal(pipe, worker ? 0 : 1);
    if (worker && vz_worker_attach(worker, loop) == 0) {
        zloop_reader(loop, pipe, s_on_pipe, NULL);
        zloop_start(loop);
    }
    zloop_destroy(&loop);
    vz_worker_destroy(&worker);
}

static int s_setup(void **state)
{
    rig_t *rig = calloc(1, sizeof *rig);
    if (!rig || !(rig->keys = ut_keys_new("authctx", "broker", "svc", true)) ||
        ut_broker_new(&rig->broker, rig->keys->server) != 0)
        return -1;
    rig->worker = zactor_new(s_worker_actor, rig);
    //  RDY svc 1, then our HB: the worker is registered.
    zmsg_t *rdy = rig->worker ? ut_broker_next(&rig->broker, true, WAIT_MS) : NULL;
    bool ok = rdy && zframe_streq(zmsg_first(rdy), VZ_CMD_READY);
    zmsg_destroy(&rdy);
    if (!ok || ut_broker_send_cmd(&rig->broker, VZ_CMD_HEARTBEAT) != 0)
        return -1;
    *state = rig;
    return 0;
}

static int s_teardown(void **state)
{
    rig_t *rig = *state;
    zactor_destroy(&rig->worker);
    ut_broker_destroy(&rig->broker);
    assert_int_equal(ut_keys_destroy(&rig->keys), 0);
    free(rig);
    return 0;
}

typedef ut_rep_t rep_t;

//  Call method as caller (the broker's word) with body; the answer in rep.
static void s_call(rig_t *rig, const char *caller, const char *method, const char *body, rep_t *rep)
{
    vz_envelope_t req;
    s_request(&req, "ignored"); //  the worker takes the caller from the frame
    strcpy(req.service, "svc");
    vz_strlcpy(req.method, method, sizeof req.method);
    strcpy(req.id, "r1");
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    assert_int_equal(ut_broker_send_req(&rig->broker, "tag00001", caller, &req), 0);
    assert_int_equal(ut_broker_recv_rep(&rig->broker, rep, WAIT_MS), 0);
}

static void s_expect_body(const rep_t *rep, const char *body)
{
    assert_int_equal(rep->env.kind, VZ_KIND_REPLY);
    assert_int_equal(rep->env.body_len, strlen(body));
    assert_memory_equal(rep->env.body, body, rep->env.body_len);
}

static void test_reply_json(void **state)
{
    rep_t rep;
    s_call(*state, "gateway", "json", "", &rep);
    s_expect_body(&rep, "{\"sub\":\"u_1\"}");
    assert_null(vz_envelope_ctx_get(&rep.env, VZ_AUTHCTX_HTTP_STATUS)); //  200 by default
    zframe_destroy(&rep.frame);
    //  The same context from another identity is not believed.
    s_call(*state, "tester", "json", "", &rep);
    s_expect_body(&rep, "{\"sub\":\"-\"}");
    zframe_destroy(&rep.frame);
}

static void test_reply_created(void **state)
{
    rep_t rep;
    s_call(*state, "gateway", "created", "with location", &rep);
    s_expect_body(&rep, "{\"id\":\"k1\"}");
    assert_string_equal(vz_envelope_ctx_get(&rep.env, VZ_AUTHCTX_HTTP_STATUS), "201");
    assert_string_equal(vz_envelope_ctx_get(&rep.env, VZ_AUTHCTX_HTTP_LOCATION), "/v1/things/k1");
    zframe_destroy(&rep.frame);

    s_call(*state, "gateway", "created", "", &rep);
    assert_string_equal(vz_envelope_ctx_get(&rep.env, VZ_AUTHCTX_HTTP_STATUS), "201");
    assert_null(vz_envelope_ctx_get(&rep.env, VZ_AUTHCTX_HTTP_LOCATION));
    zframe_destroy(&rep.frame);

    //  A Location that does not fit: an error, not a cut header.
    s_call(*state, "gateway", "created_long", "", &rep);
    assert_int_equal(rep.env.kind, VZ_KIND_ERROR);
    assert_string_equal(rep.env.error_code, VZ_ERR_INTERNAL);
    assert_null(vz_envelope_ctx_get(&rep.env, VZ_AUTHCTX_HTTP_LOCATION));
    zframe_destroy(&rep.frame);

    //  A broken document: "internal", and no 201 on it.
    s_call(*state, "gateway", "unfinished", "", &rep);
    assert_int_equal(rep.env.kind, VZ_KIND_ERROR);
    assert_string_equal(rep.env.error_code, VZ_ERR_INTERNAL);
    assert_null(vz_envelope_ctx_get(&rep.env, VZ_AUTHCTX_HTTP_STATUS));
    zframe_destroy(&rep.frame);
}

static void test_reply_error(void **state)
{
    const struct {
        const char *body;   //  "<status> <code>" for h_error
        const char *status; //  reply ctx http_status, NULL = none
    } cases[] = {
        {"0 validation_failed", "422"},  {"0 unauthorized", "401"}, {"0 access_denied", "403"},
        {"0 not_found", "404"},          {"0 conflict", "409"},     {"0 too_many_requests", "429"},
        {"0 invalid_request", "400"},    {"0 unavailable", "503"},  {"0 internal", NULL},
        {"402 payment_required", "402"}, {"599 odd", "599"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rep_t rep;
        s_call(*state, "gateway", "error", cases[i].body, &rep);
        assert_int_equal(rep.env.kind, VZ_KIND_ERROR);
        assert_string_equal(rep.env.error_code, strchr(cases[i].body, ' ') + 1);
        assert_string_equal(rep.env.error_message, "what went wrong");
        const char *status = vz_envelope_ctx_get(&rep.env, VZ_AUTHCTX_HTTP_STATUS);
        if (cases[i].status)
            assert_string_equal(status, cases[i].status);
        else
            assert_null(status);
        zframe_destroy(&rep.frame);
    }
    //  A status that is no error status is refused: the worker says internal.
    const char *const bad[] = {"200 ok", "399 redirect", "600 nope", "-1 neg"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rep_t rep;
        s_call(*state, "gateway", "error", bad[i], &rep);
        assert_int_equal(rep.env.kind, VZ_KIND_ERROR);
        assert_string_equal(rep.env.error_code, VZ_ERR_INTERNAL);
        zframe_destroy(&rep.frame);
    }
    assert_int_equal(vz_authctx_error_status("validation_failed"), 422);
    assert_int_equal(vz_authctx_error_status("no_such_code"), 0);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_trusted_table),   cmocka_unit_test(test_read_trusted),
        cmocka_unit_test(test_read_untrusted),  cmocka_unit_test(test_refuse_what_does_not_fit),
        cmocka_unit_test(test_scope_next),      cmocka_unit_test(test_scope_has_and_subset),
        cmocka_unit_test(test_scope_normalize),
    };
    const struct CMUnitTest replies[] = {
        cmocka_unit_test(test_reply_json),
        cmocka_unit_test(test_reply_created),
        cmocka_unit_test(test_reply_error),
    };
    int failed = cmocka_run_group_tests_name("authctx", pure, NULL, NULL);
    return failed + cmocka_run_group_tests_name("authctx_replies", replies, s_setup, s_teardown);
}
