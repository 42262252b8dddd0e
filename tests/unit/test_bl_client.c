/*  test_bl_client - Stripe calls over vz_http against a scripted server
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A fake Stripe (tests/integration/fake_http.h) answers scripted replies;
 *  a throwaway redis-server holds the idempotency keys. The loop runs until
 *  the call's callback ran (bounded). Checks: the retry rules (429, 500,
 *  409 and a connection reset, then 200) with one Idempotency-Key on every
 *  attempt, stored in Redis before the first; Stripe-Should-Retry: false;
 *  error mapping; the same key after a "restart"; no key, no Redis; the
 *  secret key never in the log; the request on the wire equal to the stripe
 *  SDK's for the same operation (skipped, visibly, without the SDK).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bl_client.h"
#include "fake_http.h"
#include "harness.h"
#include "test_bl_peer.h"

#define KEY "sk_test_secret_4242424242"
#define RUN_MS 15000

typedef struct {
    zloop_t *loop;
    fake_http_t *srv;
    vz_redis_t *redis;
    bl_client_t *client;
    int done;
    bl_client_result_t result; //  copied (body and key into the buffers below)
    char body[1024];
    char key[BL_STRIPE_IDEM_MAX];
} ctx_t;

static char *s_dir;
static vzt_proc_t *s_server;
static char s_url[64];

static void s_done(void *arg, const bl_client_result_t *r)
{
    ctx_t *ctx = arg;
    ctx->result = *r;
    snprintf(ctx->body, sizeof ctx->body, "%.*s", (int)r->body_len, r->body);
    snprintf(ctx->key, sizeof ctx->key, "%s", r->idempotency_key);
    ctx->result.body = ctx->body;
    ctx->result.idempotency_key = ctx->key;
    ctx->done++;
}

static int s_tick(zloop_t *loop, int timer_id, void *arg)
{
    ctx_t *ctx = arg;
    return ctx->done ? -1 : 0;
}

static bl_client_t *s_client(ctx_t *ctx, const char *key, vz_redis_t *redis)
{
    vz_http_config_t http;
    vz_http_config_init(&http);
    bl_client_config_t c = {.base_url = fake_http_base(ctx->srv),
                            .secret_key = key,
                            .max_attempts = 5,
                            .backoff_ms = 10,
                            .backoff_max_ms = 50,
                            .budget_ms = 10000};
    char err[256];
    bl_client_t *client = bl_client_new(ctx->loop, &http, &c, redis, NULL, err, sizeof err);
    if (!client)
        fail_msg("bl_client_new: %s", err);
    return client;
}

//  Call op and run the loop until its callback ran.
static int s_call(ctx_t *ctx, const char *op, const char *params, const char *logical)
{
    vz_json_t *doc = vz_json_parse(params, strlen(params), NULL, NULL);
    assert_non_null(doc);
    ctx->done = 0;
    int rc = bl_client_call(ctx->client, op, NULL, vz_json_root(doc), logical, s_done, ctx);
    vz_json_destroy(&doc);
    if (rc < 0)
        return rc;
    assert_int_equal(ctx->done, 0); //  never inside the call
    int tick = zloop_timer(ctx->loop, 5, 0, s_tick, ctx);
    int guard = zloop_timer(ctx->loop, RUN_MS, 1, s_tick, ctx);
    zloop_start(ctx->loop);
    zloop_timer_end(ctx->loop, tick);
    zloop_timer_end(ctx->loop, guard);
    assert_int_equal(ctx->done, 1);
    return 0;
}

static int s_setup_group(void **state)
{
    s_dir = vzt_tempdir("bl_client");
    int port = vzt_free_port();
    s_server = vzt_redis(s_dir, port, 10000);
    assert_non_null(s_server);
    snprintf(s_url, sizeof s_url, "redis://127.0.0.1:%d", port);
    return 0;
}

static int s_teardown_group(void **state)
{
    vzt_proc_destroy(&s_server);
    vzt_rmrf(s_dir);
    free(s_dir);
    return 0;
}

static int s_setup(void **state)
{
    ctx_t *ctx = calloc(1, sizeof *ctx);
    ctx->loop = zloop_new();
    ctx->srv = fake_http_new(false);
    ctx->redis = vz_redis_new(s_url, 500, 500, 50);
    assert_true(ctx->srv && ctx->redis);
    ctx->client = s_client(ctx, KEY, ctx->redis);
    *state = ctx;
    return 0;
}

static int s_teardown(void **state)
{
    ctx_t *ctx = *state;
    bl_client_destroy(&ctx->client);
    fake_http_destroy(&ctx->srv);
    vz_redis_destroy(&ctx->redis);
    zloop_destroy(&ctx->loop);
    free(ctx);
    return 0;
}

static char *s_header(ctx_t *ctx, size_t i, const char *name)
{
    return fake_http_request_header(fake_http_request(ctx->srv, i), name);
}

static void test_retries_keep_the_key(void **state)
{
    ctx_t *ctx = *state;
    fake_http_script_status(ctx->srv, 429, "{\"error\":{\"type\":\"rate_limit_error\"}}");
    fake_http_script_status(ctx->srv, 500, "{\"error\":{\"type\":\"api_error\"}}");
    fake_http_script_status(ctx->srv, 409, "{\"error\":{\"type\":\"invalid_request_error\"}}");
    fake_http_script(ctx->srv, &(fake_http_reply_t){.action = FAKE_HTTP_RESET});
    fake_http_script_status(ctx->srv, 200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\"}");
    assert_int_equal(
        s_call(ctx, "payment_intent_create", "{\"amount\":2000,\"currency\":\"eur\"}", "u_1/req-1"),
        0);
    assert_true(ctx->result.ok);
    assert_int_equal(ctx->result.status, 200);
    //  Five requests arrived; curl itself re-sends once a request whose
    //  reused connection died before any byte of an answer (the reset), so
    //  that one may not count as an attempt of ours. Same key either way.
    assert_true(ctx->result.attempts == 4 || ctx->result.attempts == 5);
    assert_non_null(strstr(ctx->body, "pi_1"));
    assert_int_equal(fake_http_count(ctx->srv), 5);
    for (size_t i = 0; i < 5; i++) {
        const fake_http_request_t *req = fake_http_request(ctx->srv, i);
        assert_string_equal(req->method, "POST");
        assert_string_equal(req->target, "/v1/payment_intents");
        assert_string_equal((const char *)req->body, "amount=2000&currency=eur");
        char *idem = s_header(ctx, i, "Idempotency-Key");
        char *version = s_header(ctx, i, "Stripe-Version");
        char *auth = s_header(ctx, i, "Authorization");
        assert_string_equal(idem, ctx->key);
        assert_string_equal(version, BL_STRIPE_VERSION);
        assert_string_equal(auth, "Bearer " KEY);
        free(idem);
        free(version);
        free(auth);
    }
    //  Stored before the first attempt.
    char name[128];
    snprintf(name, sizeof name, "{billing}:idem:%s", ctx->key);
    const char *argv[] = {"GET", name};
    redisReply *r = vz_redis_command(ctx->redis, 2, argv, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "payment_intent_create\nu_1/req-1");
    freeReplyObject(r);

    //  A restarted billing performing the same operation sends the same key.
    char first[BL_STRIPE_IDEM_MAX];
    snprintf(first, sizeof first, "%s", ctx->key);
    bl_client_destroy(&ctx->client);
    ctx->client = s_client(ctx, KEY, ctx->redis);
    fake_http_script_status(ctx->srv, 200, "{\"id\":\"pi_1\"}");
    assert_int_equal(
        s_call(ctx, "payment_intent_create", "{\"amount\":2000,\"currency\":\"eur\"}", "u_1/req-1"),
        0);
    assert_string_equal(ctx->key, first);
    char *idem = s_header(ctx, 5, "Idempotency-Key");
    assert_string_equal(idem, first);
    free(idem);
}

static void test_should_retry_false_and_mapping(void **state)
{
    ctx_t *ctx = *state;
    fake_http_script(ctx->srv, &(fake_http_reply_t){.status = 500,
                                                    .headers = "Stripe-Should-Retry: false\r\n",
                                                    .body = "{}",
                                                    .body_len = 2});
    assert_int_equal(s_call(ctx, "customer_create", "{\"email\":\"a@example.com\"}", "u_2"), 0);
    assert_false(ctx->result.ok);
    assert_int_equal(ctx->result.attempts, 1);
    assert_int_equal(ctx->result.error.status, 502);
    const char *card = "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\","
                       "\"message\":\"Your card was declined.\"}}";
    fake_http_script_status(ctx->srv, 402, card);
    assert_int_equal(s_call(ctx, "payment_intent_create", "{\"amount\":1}", "u_2/x"), 0);
    assert_int_equal(ctx->result.attempts, 1); //  4xx: not retried
    assert_int_equal(ctx->result.error.status, 402);
    assert_string_equal(ctx->result.error.code, "card_declined");
    //  A GET carries no key and its parameters in the query.
    fake_http_script_status(ctx->srv, 200, "{\"object\":\"list\",\"data\":[]}");
    assert_int_equal(s_call(ctx, "invoice_list", "{\"customer\":\"cus_1\",\"limit\":3}", ""), 0);
    const fake_http_request_t *req = fake_http_request(ctx->srv, 2);
    assert_string_equal(req->method, "GET");
    assert_string_equal(req->target, "/v1/invoices?customer=cus_1&limit=3");
    assert_null(fake_http_request_header(req, "Idempotency-Key"));
}

static void test_not_configured_and_no_redis(void **state)
{
    ctx_t *ctx = *state;
    bl_client_destroy(&ctx->client);
    ctx->client = s_client(ctx, "", ctx->redis);
    assert_false(bl_client_configured(ctx->client));
    assert_int_equal(s_call(ctx, "customer_create", "{}", "u_3"), -ENOKEY);
    bl_client_destroy(&ctx->client);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", vzt_free_port());
    vz_redis_t *away = vz_redis_new(url, 100, 100, 10);
    ctx->client = s_client(ctx, KEY, away);
    assert_int_equal(s_call(ctx, "customer_create", "{}", "u_3"), -EAGAIN);
    assert_int_equal(s_call(ctx, "nothing", "{}", "u_3"), -EINVAL);
    assert_int_equal(fake_http_count(ctx->srv), 0); //  nothing sent
    bl_client_destroy(&ctx->client);
    vz_redis_destroy(&away);
}

static void test_key_never_logged(void **state)
{
    ctx_t *ctx = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/stderr.log", s_dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    fake_http_script_status(ctx->srv, 401,
                            "{\"error\":{\"type\":\"authentication_error\",\"message\":"
                            "\"Invalid API Key provided: " KEY "\"}}");
    int rc = s_call(ctx, "customer_create", "{}", "u_4");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);
    assert_int_equal(ctx->result.error.status, 502);
    assert_true(vzt_file_has(path, "Stripe refused the API key"));
    assert_false(vzt_file_has(path, "sk_test_"));
    assert_null(strstr(ctx->result.error.message, "sk_test_"));
}

static void test_wire_equals_sdk(void **state)
{
    ctx_t *ctx = *state;
    if (!bl_peer_ready())
        skip();
    const char *params = "{\"customer\":\"cus_1\",\"items\":[{\"price\":\"price_1\",\"quantity\":"
                         "2}],\"trial_period_days\":14,\"metadata\":{\"vz_user\":\"u_1\"}}";
    fake_http_script_status(ctx->srv, 200, "{\"id\":\"sub_1\"}");
    assert_int_equal(s_call(ctx, "subscription_create", params, "u_1/sub/1"), 0);
    char args[1024];
    snprintf(args, sizeof args, "subscription_create '%s'", params);
    char *line = bl_peer_run("stripe_request.mjs", args);
    assert_non_null(line);
    vz_json_t *sdk = vz_json_parse(line, strlen(line), NULL, NULL);
    free(line);
    assert_non_null(sdk);
    const vz_json_value_t *r = vz_json_root(sdk);
    const fake_http_request_t *ours = fake_http_request(ctx->srv, 0);
    assert_string_equal(ours->method, vz_json_get_string(r, "method", NULL));
    assert_string_equal(ours->target, vz_json_get_string(r, "path", NULL));
    assert_string_equal((const char *)ours->body, vz_json_get_string(r, "body", NULL));
    char *version = fake_http_request_header(ours, "Stripe-Version");
    char *type = fake_http_request_header(ours, "Content-Type");
    assert_string_equal(version, vz_json_get_string(r, "stripe_version", NULL));
    assert_string_equal(type, vz_json_get_string(r, "content_type", NULL));
    free(version);
    free(type);
    vz_json_destroy(&sdk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retries_keep_the_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_should_retry_false_and_mapping, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_not_configured_and_no_redis, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_key_never_logged, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_wire_equals_sdk, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, s_setup_group, s_teardown_group);
}
