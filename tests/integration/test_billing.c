/*  test_billing - Stripe webhooks through the real gateway into vz-billing and Redis
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh: Redis, broker, auth, ratelimit, billing and the gateway with
 *  the shipped configs/routes.cfg. Every webhook is an event built from
 *  Stripe's own fixture objects (billing_stripe_fixtures.json, MIT, see
 *  billing_stripe_fixtures.LICENSE) and signed by the official stripe npm
 *  SDK (tests/peers/stripe_webhook.mjs: generateTestHeaderString), then
 *  POSTed to /v1/webhooks/stripe. The test reads billing's state straight
 *  from Redis (keys in docs/services/billing.md) and waits on it with
 *  vzt_wait_until, never on sleeps.
 *
 *  Cases: valid; two v1 during a secret rotation; tampered body; body
 *  re-serialised; stale and future timestamps; missing and unparsable
 *  header; bad JSON; five concurrent duplicates processed once; an unknown
 *  type counted; out-of-order subscription events; kill -9 of a replica
 *  that acknowledged events it had not applied (one unread, one read and
 *  pending): after a replica starts, each is applied exactly once; the
 *  revenue figures through the gateway with an admin token.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fake_http.h"
#include "harness.h"
#include "vz_client.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_worker.h"
#include "vz_json.h"

#define HTTP_MS 10000
#define APPLY_MS 15000
//  Billing knows the current and the next secret (a rotation in progress).
#define SECRET_CUR "whsec_test_current_0123456789"
#define SECRET_NEXT "whsec_test_next_0123456789"
#define SECRET_OLD "whsec_test_retired_0123456789"
#define ADMIN_EMAIL "finance@example.com"
#define STRIPE_KEY "sk_test_mesh_secret_7777777"

typedef struct {
    vzt_mesh_t *m;
    const char *dir;
    fake_http_t *stripe; //  a scripted Stripe API
    redisContext *redis;
    char webhook_url[128];
    char admin_token[2048];
} mesh_t;

static mesh_t *s_mesh; //  for the predicates

// --------------------------------------------------------------------------
//  Helpers

//  First line the peer script prints (heap), or NULL when it failed.
static char *s_node(const char *args)
{
    char *cmd = zsys_sprintf("cd '%s/tests/peers' && node stripe_webhook.mjs %s",
                             getenv("VZ_SOURCE_DIR"), args);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p)
        return NULL;
    char line[1024] = "";
    char *got = fgets(line, sizeof line, p);
    int rc = pclose(p);
    if (rc != 0)
        return NULL;
    line[strcspn(line, "\n")] = '\0';
    return strdup(got ? line : "");
}

typedef struct {
    char *path; //  payload file
    char *body; //  its bytes
    size_t len;
} event_t;

//  An event of type on the fixture resource, patched (JSON), written by node.
static event_t s_event(const char *resource, const char *type, const char *id, long created,
                       const char *patch)
{
    event_t e = {.path = zsys_sprintf("%s/%s.json", s_mesh->dir, id)};
    char *args =
        zsys_sprintf("event '%s/tests/integration/billing_stripe_fixtures.json' %s %s %s %ld "
                     "'%s' '%s'",
                     getenv("VZ_SOURCE_DIR"), resource, type, id, created, patch, e.path);
    char *out = s_node(args);
    free(args);
    assert_non_null(out);
    free(out);
    FILE *f = fopen(e.path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    e.len = (size_t)ftell(f);
    rewind(f);
    e.body = malloc(e.len + 1);
    assert_int_equal(fread(e.body, 1, e.len, f), e.len);
    e.body[e.len] = '\0';
    fclose(f);
    return e;
}

static void s_event_free(event_t *e)
{
    free(e->path);
    free(e->body);
}

//  Stripe-Signature for the file at path, by the SDK, with secrets at t.
static char *s_sign_file(const char *path, const char *secrets, long t)
{
    char *args = zsys_sprintf("sign %s %ld '%s'", secrets, t, path);
    char *header = s_node(args);
    free(args);
    assert_non_null(header);
    assert_true(strncmp(header, "t=", 2) == 0);
    return header;
}

//  POST body with header (NULL: none) to the webhook route.
static long s_post(const void *body, size_t len, const char *header, char **reply)
{
    char *h = header ? zsys_sprintf("Stripe-Signature: %s", header) : NULL;
    const char *headers[] = {"Content-Type: application/json; charset=utf-8", h, NULL};
    vzt_resp_t resp;
    int rc = vzt_request("POST", s_mesh->webhook_url, headers, body, len, HTTP_MS, &resp);
    free(h);
    long status = rc == 0 ? resp.status : 0;
    if (reply)
        *reply = resp.body ? strdup(resp.body) : strdup("");
    vzt_resp_free(&resp);
    return status;
}

//  Sign with the SDK at now + skew and post; the status.
static long s_deliver(const event_t *e, const char *secrets, long skew, char **reply)
{
    char *header = s_sign_file(e->path, secrets, (long)time(NULL) + skew);
    long status = s_post(e->body, e->len, header, reply);
    free(header);
    return status;
}

static bool s_applied(void *arg);

//  Deliver e, signed with the current secret, and wait until event id is applied.
static void s_deliver_applied(const event_t *e, const char *id)
{
    char *reply = NULL;
    assert_int_equal(s_deliver(e, SECRET_CUR, 0, &reply), 200);
    free(reply);
    assert_true(vzt_wait_until(s_applied, (void *)id, APPLY_MS));
}

//  The reply is read through reply_p after status was computed.
//  400 with the refusal's own code (the worker's http_status on an error).
static void s_expect_refusal(long status, char **reply_p, const char *code)
{
    char *reply = *reply_p;
    *reply_p = NULL;
    char *want = zsys_sprintf("\"code\":\"%s\",\"message\":\"", code);
    if (status != 400 || !strstr(reply, want))
        fail_msg("want 400 %s, got %ld %s", code, status, reply);
    free(want);
    free(reply);
}

//  HGET key field (heap), NULL when absent.
static char *s_hget(const char *key, const char *field)
{
    redisReply *r = redisCommand(s_mesh->redis, "HGET %s %s", key, field);
    assert_non_null(r);
    char *out = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return out;
}

//  GET key (heap), NULL when absent.
static char *s_hget_str(const char *key)
{
    redisReply *r = redisCommand(s_mesh->redis, "GET %s", key);
    assert_non_null(r);
    char *out = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return out;
}

static long s_hget_int(const char *key, const char *field)
{
    char *v = s_hget(key, field);
    long n = v ? strtol(v, NULL, 10) : 0;
    free(v);
    return n;
}

typedef struct {
    const char *key, *field, *want;
} hwant_t;

static bool s_hash_is(void *arg)
{
    const hwant_t *w = arg;
    char *v = s_hget(w->key, w->field);
    bool ok = v && strcmp(v, w->want) == 0;
    free(v);
    return ok;
}

//  Wait until key's field reads want.
static void s_wait_hash(const char *key, const char *field, const char *want)
{
    hwant_t w = {key, field, want};
    if (!vzt_wait_until(s_hash_is, &w, APPLY_MS)) {
        char *v = s_hget(key, field);
        fail_msg("%s %s: want %s, have %s", key, field, want, v ? v : "(nil)");
    }
}

static bool s_applied(void *arg)
{
    redisReply *r = redisCommand(s_mesh->redis, "EXISTS {billing}:applied:%s", (const char *)arg);
    bool ok = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r)
        freeReplyObject(r);
    return ok;
}

static long s_integer(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(s_mesh->redis, fmt, arg);
    assert_non_null(r);
    long n = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
    freeReplyObject(r);
    return n;
}

//  billing.<method> as the gateway would call it; ctx: key, value, ..., NULL.
//  The error code into code ("" on success), the message (or body) returned.
static char *s_billing_call(const char *method, const char *const *ctx, const char *body,
                            char *code, size_t n)
{
    vz_client_config_t config = {.endpoints = vzt_mesh_endpoint(s_mesh->m),
                                 .broker_key = vzt_mesh_broker_key(s_mesh->m),
                                 .cert = vzt_mesh_cert(s_mesh->m, "gateway")};
    vz_client_t *client = vz_client_new(&config);
    assert_non_null(client);
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    strcpy(req.service, "billing");
    snprintf(req.method, sizeof req.method, "%s", method);
    req.body = (const uint8_t *)body;
    req.body_len = body ? strlen(body) : 0;
    for (size_t i = 0; ctx[i]; i += 2)
        assert_int_equal(vz_envelope_ctx_set(&req, ctx[i], ctx[i + 1]), 0);
    vz_response_t *resp = NULL;
    assert_int_equal(vz_client_call(client, &req, HTTP_MS, &resp), 0);
    snprintf(code, n, "%s", resp->env.error_code);
    char *out = code[0] ? strdup(resp->env.error_message) : calloc(1, resp->env.body_len + 1);
    if (!code[0])
        memcpy(out, resp->env.body ? (const void *)resp->env.body : "", resp->env.body_len);
    vz_response_destroy(&resp);
    vz_client_destroy(&client);
    return out;
}

// --------------------------------------------------------------------------
//  Mesh

static char *s_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

static int s_setup(void **state)
{
    const char *src = getenv("VZ_SOURCE_DIR");
    assert_non_null(src);
    char *probe = zsys_sprintf("%s/tests/peers/node_modules/stripe/package.json", src);
    if (access(probe, R_OK) != 0)
        fail_msg("the stripe SDK is missing: npm ci in tests/peers");
    free(probe);
    mesh_t *mesh = calloc(1, sizeof *mesh);
    s_mesh = mesh;
    *state = mesh;
    //  The shipped route table and limits, so the route under test is the real one.
    char *routes_path = zsys_sprintf("%s/configs/routes.cfg", src);
    char *limits_path = zsys_sprintf("%s/configs/ratelimit.cfg", src);
    char *routes = s_read_file(routes_path);
    char *limits = s_read_file(limits_path);
    free(routes_path);
    free(limits_path);
    const char *files[] = {"routes.cfg", routes, "ratelimit.cfg", limits, NULL};
    mesh->stripe = fake_http_new(false);
    assert_non_null(mesh->stripe);
    char *base =
        zsys_sprintf("billing:VZ_BILLING_STRIPE_API_BASE=%s", fake_http_base(mesh->stripe));
    char *const env[] = {base,
                         "billing:VZ_BILLING_STRIPE_SECRET_KEY=" STRIPE_KEY,
                         "billing:VZ_HTTP_BACKOFF_MS=10",
                         "billing:VZ_BILLING_RECONCILE_MS=0", //  runs only when the test asks
                         "billing:VZ_BILLING_GAUGES_MS=200",
                         "billing:VZ_BILLING_NOTIFY_RETRY_MS=200",
                         "billing:VZ_BILLING_WEBHOOK_SECRETS=" SECRET_CUR "," SECRET_NEXT,
                         "billing:VZ_BILLING_CLAIM_IDLE_MS=500",
                         "billing:VZ_BILLING_CONSUMER=billing-main",
                         "auth:VZ_AUTH_PBKDF2_ITERATIONS=100000",
                         "auth:VZ_AUTH_ADMIN_EMAILS=" ADMIN_EMAIL,
                         "auth:VZ_AUTH_ISSUER=http://127.0.0.1:8080",
                         "gateway:VZ_GATEWAY_JWT_ISSUER=http://127.0.0.1:8080",
                         NULL};
    mesh->m = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "billing",
                                                .daemons = "auth,ratelimit,billing,gateway",
                                                .identities = "notifier",
                                                .files = files,
                                                .env = env});
    free(routes);
    free(limits);
    free(base);
    assert_non_null(mesh->m);
    mesh->dir = vzt_mesh_dir(mesh->m);
    snprintf(mesh->webhook_url, sizeof mesh->webhook_url, "%s/v1/webhooks/stripe",
             vzt_mesh_url(mesh->m));
    mesh->redis = redisConnect("127.0.0.1", vzt_mesh_redis_port(mesh->m));
    assert_true(mesh->redis && !mesh->redis->err);
    return 0;
}

static int s_teardown(void **state)
{
    mesh_t *mesh = *state;
    if (mesh->redis)
        redisFree(mesh->redis);
    int rc = vzt_mesh_destroy(&mesh->m);
    fake_http_destroy(&mesh->stripe);
    free(mesh);
    return rc;
}

// --------------------------------------------------------------------------
//  Verification

//  series on billing's admin port: its value, failing when it is absent.
static double s_billing_metric(const char *series)
{
    double v = -1;
    if (vzt_metric(vzt_mesh_admin_port(s_mesh->m, "billing"), series, &v) != 0)
        fail_msg("billing does not export %s", series);
    return v;
}

static void test_valid(void **state)
{
    //  What the dashboard and the alerts read exists from the start, at 0.
    const char *const zero[] = {
        "vz_billing_webhooks_total{type=\"unverified\",outcome=\"signature_invalid\"}",
        "vz_billing_webhooks_total{type=\"unverified\",outcome=\"billing_not_configured\"}",
        "vz_billing_events_total{type=\"invoice.payment_failed\",result=\"applied\"}",
        "vz_billing_stripe_calls_total{operation=\"payment_intent_create\",status=\"error\"}",
        "vz_billing_mrr{currency=\"eur\"}",
        "vz_billing_arr{currency=\"usd\"}",
        "vz_billing_churned_subscriptions",
        "vz_billing_queue_backlog",
        "vz_billing_events_dead_total"};
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
        assert_true(s_billing_metric(zero[i]) == 0);
    event_t e = s_event("customer", "customer.created", "evt_valid_1", (long)time(NULL),
                        "{\"id\":\"cus_valid_1\",\"email\":\"ada@example.com\"}");
    char *reply = NULL;
    long status = s_deliver(&e, SECRET_CUR, 0, &reply);
    assert_int_equal(status, 200);
    assert_non_null(strstr(reply, "\"duplicate\":false"));
    free(reply);
    s_wait_hash("{billing}:obj:customer:cus_valid_1", "v_event", "evt_valid_1");
    assert_int_equal(s_hget_int("{billing}:counts", "customer.created"), 1);
    assert_true(s_billing_metric("vz_billing_webhooks_total{type=\"customer.created\","
                                 "outcome=\"accepted\"}") == 1);
    s_event_free(&e);
}

static void test_rotation(void **state)
{
    event_t e = s_event("customer", "customer.updated", "evt_rot_1", (long)time(NULL),
                        "{\"id\":\"cus_rot_1\"}");
    char *reply = NULL;
    //  Stripe signs with the retired and the new secret while rolling.
    assert_int_equal(s_deliver(&e, SECRET_OLD "," SECRET_NEXT, 0, &reply), 200);
    free(reply);
    //  Only a secret billing no longer has: refused.
    event_t e2 = s_event("customer", "customer.updated", "evt_rot_2", (long)time(NULL),
                         "{\"id\":\"cus_rot_1\"}");
    s_expect_refusal(s_deliver(&e2, SECRET_OLD, 0, &reply), &reply, "signature_invalid");
    s_wait_hash("{billing}:obj:customer:cus_rot_1", "v_event", "evt_rot_1");
    s_event_free(&e);
    s_event_free(&e2);
}

static void test_tampered_and_reserialised(void **state)
{
    long now = (long)time(NULL);
    char *paid = zsys_sprintf("{\"id\":\"in_tamper_1\",\"status\":\"paid\",\"currency\":\"usd\","
                              "\"amount_paid\":1000,\"status_transitions\":{\"paid_at\":%ld}}",
                              now);
    event_t e = s_event("invoice", "invoice.paid", "evt_tamper_1", now, paid);
    free(paid);
    char *header = s_sign_file(e.path, SECRET_CUR, (long)time(NULL));
    //  One amount changed after signing.
    char *tampered = strdup(e.body);
    char *amount = strstr(tampered, "\"amount_paid\": 1000");
    assert_non_null(amount);
    amount[15] = '9';
    char *reply = NULL;
    s_expect_refusal(s_post(tampered, e.len, header, &reply), &reply, "signature_invalid");
    //  The same JSON re-serialised compactly: other bytes, other signature.
    char *args = zsys_sprintf("-e 'process.stdout.write(JSON.stringify(JSON.parse(require(\"fs\")"
                              ".readFileSync(\"%s\",\"utf8\"))))'",
                              e.path);
    char *cmd = zsys_sprintf("node %s", args);
    FILE *p = popen(cmd, "r");
    char *compact = calloc(1, e.len + 1);
    size_t n = fread(compact, 1, e.len, p);
    pclose(p);
    assert_true(n > 0 && n < e.len);
    s_expect_refusal(s_post(compact, n, header, &reply), &reply, "signature_invalid");
    //  The original bytes still pass: nothing was queued by the refusals.
    assert_int_equal(s_post(e.body, e.len, header, &reply), 200);
    free(reply);
    s_wait_hash("{billing}:obj:invoice:in_tamper_1", "amount", "1000");
    free(compact);
    free(cmd);
    free(args);
    free(tampered);
    free(header);
    s_event_free(&e);
}

static void test_timestamps_and_headers(void **state)
{
    event_t e = s_event("customer", "customer.updated", "evt_time_1", (long)time(NULL),
                        "{\"id\":\"cus_time_1\"}");
    char *reply = NULL;
    s_expect_refusal(s_deliver(&e, SECRET_CUR, -301 - 5, &reply), &reply,
                     "timestamp_out_of_tolerance");
    s_expect_refusal(s_deliver(&e, SECRET_CUR, 301 + 5, &reply), &reply,
                     "timestamp_out_of_tolerance");
    s_expect_refusal(s_post(e.body, e.len, NULL, &reply), &reply, "signature_missing");
    s_expect_refusal(s_post(e.body, e.len, "t=now,v1=abc", &reply), &reply, "signature_unparsable");
    //  Signed, but not an event.
    char *bad = zsys_sprintf("%s/bad.json", s_mesh->dir);
    FILE *f = fopen(bad, "w");
    fputs("{\"id\": \"evt_bad\", \"type\": \"x\"", f);
    fclose(f);
    char *header = s_sign_file(bad, SECRET_CUR, (long)time(NULL));
    s_expect_refusal(s_post("{\"id\": \"evt_bad\", \"type\": \"x\"", 29, header, &reply), &reply,
                     "invalid_json");
    //  None of them reached the queue.
    assert_int_equal(s_integer("EXISTS {billing}:seen:%s", "evt_time_1"), 0);
    free(header);
    free(bad);
    s_event_free(&e);
}

// --------------------------------------------------------------------------
//  Exactly once

typedef struct {
    const event_t *e;
    const char *header;
    long status;
    char *reply;
} post_t;

static void *s_post_thread(void *arg)
{
    post_t *p = arg;
    p->status = s_post(p->e->body, p->e->len, p->header, &p->reply);
    return NULL;
}

static void test_concurrent_duplicates(void **state)
{
    event_t e = s_event("invoice", "invoice.payment_failed", "evt_dup_1", (long)time(NULL),
                        "{\"id\":\"in_dup_1\",\"status\":\"open\"}");
    char *header = s_sign_file(e.path, SECRET_CUR, (long)time(NULL));
    post_t posts[5];
    pthread_t threads[5];
    for (int i = 0; i < 5; i++) {
        posts[i] = (post_t){.e = &e, .header = header};
        assert_int_equal(pthread_create(&threads[i], NULL, s_post_thread, &posts[i]), 0);
    }
    int fresh = 0;
    for (int i = 0; i < 5; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(posts[i].status, 200);
        fresh += strstr(posts[i].reply, "\"duplicate\":false") != NULL;
        free(posts[i].reply);
    }
    assert_int_equal(fresh, 1);
    assert_true(vzt_wait_until(s_applied, "evt_dup_1", APPLY_MS));
    //  Once in the stream, once applied, one dunning e-mail queued.
    assert_int_equal(s_hget_int("{billing}:counts", "invoice.payment_failed"), 1);
    redisReply *r = redisCommand(s_mesh->redis, "XRANGE {billing}:outbox - +");
    int dunning = 0;
    for (size_t i = 0; r && i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        for (size_t j = 0; j + 1 < f->elements; j += 2)
            dunning += strcmp(f->element[j + 1]->str, "evt_dup_1") == 0;
    }
    freeReplyObject(r);
    assert_int_equal(dunning, 1);
    //  A sixth, later delivery is still a duplicate (3-day memory).
    char *reply = NULL;
    assert_int_equal(s_post(e.body, e.len, header, &reply), 200);
    assert_non_null(strstr(reply, "\"duplicate\":true"));
    free(reply);
    free(header);
    s_event_free(&e);
}

static void test_unknown_type(void **state)
{
    event_t e = s_event("plan", "plan.created", "evt_unknown_1", (long)time(NULL), "{}");
    s_deliver_applied(&e, "evt_unknown_1");
    assert_int_equal(s_hget_int("{billing}:counts", "plan.created"), 1);
    assert_int_equal(s_integer("EXISTS {billing}:obj:unknown:%s", "none"), 0);
    s_event_free(&e);
}

//  The subscription's status and price as a patch of the fixture.
static char *s_sub_patch(const char *id, const char *status, int amount, const char *interval)
{
    return zsys_sprintf("{\"id\":\"%s\",\"status\":\"%s\",\"currency\":\"usd\",\"items\":{\"data\":"
                        "[{\"quantity\":1,\"price\":{\"unit_amount\":%d,\"currency\":\"usd\","
                        "\"recurring\":{\"interval\":\"%s\",\"interval_count\":1}}}]}}",
                        id, status, amount, interval);
}

static void test_out_of_order(void **state)
{
    long t = (long)time(NULL) - 60;
    char *p_created = s_sub_patch("sub_ooo_1", "incomplete", 1000, "month");
    char *p_updated = s_sub_patch("sub_ooo_1", "active", 1000, "month");
    char *p_upgrade = s_sub_patch("sub_ooo_1", "active", 3000, "month");
    event_t created =
        s_event("subscription", "customer.subscription.created", "evt_ooo_1", t, p_created);
    event_t updated =
        s_event("subscription", "customer.subscription.updated", "evt_ooo_2", t + 10, p_updated);
    event_t upgrade =
        s_event("subscription", "customer.subscription.updated", "evt_ooo_3", t + 20, p_upgrade);
    char *reply = NULL;
    //  Newest first, then the older two.
    assert_int_equal(s_deliver(&upgrade, SECRET_CUR, 0, &reply), 200);
    free(reply);
    assert_true(vzt_wait_until(s_applied, "evt_ooo_3", APPLY_MS));
    assert_int_equal(s_deliver(&created, SECRET_CUR, 0, &reply), 200);
    free(reply);
    assert_int_equal(s_deliver(&updated, SECRET_CUR, 0, &reply), 200);
    free(reply);
    assert_true(vzt_wait_until(s_applied, "evt_ooo_1", APPLY_MS));
    assert_true(vzt_wait_until(s_applied, "evt_ooo_2", APPLY_MS));
    //  The state is the newest event's; the history has all three.
    s_wait_hash("{billing}:obj:subscription:sub_ooo_1", "v_event", "evt_ooo_3");
    s_wait_hash("{billing}:obj:subscription:sub_ooo_1", "status", "active");
    s_wait_hash("{billing}:obj:subscription:sub_ooo_1", "mrr", "3000");
    assert_int_equal(s_integer("ZCARD {billing}:hist:subscription:%s", "sub_ooo_1"), 3);
    free(p_created);
    free(p_updated);
    free(p_upgrade);
    s_event_free(&created);
    s_event_free(&updated);
    s_event_free(&upgrade);
}

static void test_kill_between_ack_and_apply(void **state)
{
    //  A replica that acknowledges but does not get to apply: its first
    //  poll is a minute away. The main replica is stopped meanwhile.
    assert_int_equal(vzt_mesh_stop(s_mesh->m, "billing"), 0);
    char *const slow_env[] = {"VZ_BILLING_POLL_MS=60000", "VZ_BILLING_CONSUMER=billing-doomed",
                              "VZ_BILLING_STRIPE_SECRET_KEY=", NULL};
    assert_non_null(vzt_mesh_add(s_mesh->m, "billing", "billing.doomed", slow_env, true));
    event_t read = s_event("charge", "charge.refunded", "evt_kill_1", (long)time(NULL),
                           "{\"id\":\"ch_kill_1\",\"amount_refunded\":500,\"currency\":\"eur\"}");
    event_t unread = s_event("customer", "customer.created", "evt_kill_2", (long)time(NULL),
                             "{\"id\":\"cus_kill_2\"}");
    char *reply = NULL;
    //  The worker may not be known to the gateway's broker at once: the
    //  broker answers no_worker (503) until its READY; retry within a bound.
    long status = 0;
    for (int i = 0; i < 50 && status != 200; i++) {
        free(reply);
        reply = NULL;
        status = s_deliver(&read, SECRET_CUR, 0, &reply);
    }
    assert_int_equal(status, 200);
    free(reply);
    assert_int_equal(s_deliver(&unread, SECRET_CUR, 0, &reply), 200);
    free(reply);
    //  Without a Stripe key, calls to Stripe say which setting is missing.
    char code[64];
    const char *user[] = {"auth", "jwt", "sub", "u_pi", "scope", "user", NULL};
    char *msg = s_billing_call("payment_intent_create", user,
                               "{\"amount\":100,\"currency\":\"eur\"}", code, sizeof code);
    assert_string_equal(code, "billing_not_configured");
    const char *want = "VZ_BILLING_STRIPE_SECRET_KEY (or VZ_BILLING_STRIPE_SECRET_KEY_FILE) is not";
    assert_true(strncmp(msg, want, strlen(want)) == 0);
    free(msg);
    //  The doomed replica "reads" the first (as its poll would) and dies
    //  before applying: the entry is pending under its name.
    redisReply *r =
        redisCommand(s_mesh->redis, "XREADGROUP GROUP apply billing-doomed COUNT 1 STREAMS "
                                    "{billing}:events >");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    assert_int_equal(vzt_mesh_kill(s_mesh->m, "billing.doomed", SIGKILL), 0);
    assert_false(s_applied("evt_kill_1"));
    assert_false(s_applied("evt_kill_2"));
    //  A replica starts: it reads the unread one and, after the claim idle
    //  time (500 ms here), takes over the dead one's pending entry.
    assert_int_equal(vzt_mesh_restart(s_mesh->m, "billing"), 0);
    assert_true(vzt_wait_until(s_applied, "evt_kill_2", APPLY_MS));
    assert_true(vzt_wait_until(s_applied, "evt_kill_1", APPLY_MS));
    assert_int_equal(s_hget_int("{billing}:counts", "charge.refunded"), 1);
    assert_int_equal(s_hget_int("{billing}:counts", "customer.created") >= 2, 1);
    s_wait_hash("{billing}:obj:charge:ch_kill_1", "amount", "500");
    //  Nothing left pending.
    r = redisCommand(s_mesh->redis, "XPENDING {billing}:events apply");
    assert_non_null(r);
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    s_event_free(&read);
    s_event_free(&unread);
}

// --------------------------------------------------------------------------
//  Revenue

static int64_t s_num(const vz_json_value_t *v)
{
    int64_t n = -1;
    assert_int_equal(vz_json_int(v, &n), 0);
    return n;
}

//  The figures of this month from what the tests above stored: the
//  subscription upgraded to 3000 usd/month, the 1000 usd invoice paid, the
//  500 eur refund.
static void test_revenue(void **state)
{
    char code[64];
    const char *user[] = {"auth", "jwt", "sub", "u_1", "scope", "user", NULL};
    char *body = s_billing_call("revenue", user, NULL, code, sizeof code);
    assert_string_equal(code, "access_denied");
    free(body);
    const char *admin[] = {"auth",  "jwt",         "sub",   "u_admin", "scope",
                           "admin", "path.period", "month", NULL};
    body = s_billing_call("revenue", admin, NULL, code, sizeof code);
    assert_string_equal(code, "");
    vz_json_t *doc = vz_json_parse(body, strlen(body), NULL, NULL);
    assert_non_null(doc);
    const vz_json_value_t *root = vz_json_root(doc);
    const vz_json_value_t *usd = vz_json_get(vz_json_get(root, "currencies"), "usd");
    const vz_json_value_t *eur = vz_json_get(vz_json_get(root, "currencies"), "eur");
    assert_int_equal(s_num(vz_json_get(usd, "mrr")), 3000);
    assert_int_equal(s_num(vz_json_get(usd, "arr")), 36000);
    assert_int_equal(s_num(vz_json_get(usd, "revenue")), 1000);
    assert_int_equal(s_num(vz_json_get(eur, "refunds")), 500);
    assert_int_equal(s_num(vz_json_get(root, "new_subscriptions")), 1);
    assert_int_equal(vz_json_size(vz_json_get(root, "trend")), 3);
    vz_json_destroy(&doc);
    free(body);
    //  The dashboard's gauges follow the stored state.
    int admin_port = vzt_mesh_admin_port(s_mesh->m, "billing");
    assert_true(vzt_wait_metric(admin_port, "vz_billing_mrr{currency=\"usd\"}", 3000, APPLY_MS));
    assert_true(vzt_wait_metric(admin_port, "vz_billing_arr{currency=\"usd\"}", 36000, APPLY_MS));
    assert_true(vzt_wait_metric(admin_port, "vz_billing_paying_subscriptions", 1, APPLY_MS));
    //  Through the gateway: the route wants a credential with scope admin.
    char *url = zsys_sprintf("%s/v1/billing/revenue", vzt_mesh_url(s_mesh->m));
    vzt_resp_t resp;
    assert_int_equal(vzt_request("GET", url, NULL, NULL, 0, HTTP_MS, &resp), 0);
    assert_int_equal(resp.status, 401);
    vzt_resp_free(&resp);
    free(url);
}

// --------------------------------------------------------------------------
//  Calls to Stripe

static void test_payment_intent(void **state)
{
    fake_http_t *stripe = s_mesh->stripe;
    size_t before = fake_http_count(stripe);
    fake_http_script_status(stripe, 500, "{\"error\":{\"type\":\"api_error\"}}");
    fake_http_script_status(stripe, 200,
                            "{\"id\":\"pi_mesh_1\",\"object\":\"payment_intent\",\"amount\":2000,"
                            "\"currency\":\"eur\",\"status\":\"requires_payment_method\","
                            "\"client_secret\":\"pi_mesh_1_secret_x\"}");
    char code[64];
    const char *user[] = {
        "auth", "jwt", "sub", "u_pi", "scope", "user", "header.idempotency-key", "order-42", NULL};
    char *body = s_billing_call("payment_intent_create", user,
                                "{\"amount\":2000,\"currency\":\"eur\"}", code, sizeof code);
    assert_string_equal(code, "");
    assert_non_null(strstr(body, "\"client_secret\":\"pi_mesh_1_secret_x\""));
    free(body);
    //  Two attempts (500, then 200), one Idempotency-Key, the pinned version.
    assert_int_equal(fake_http_count(stripe), before + 2);
    char *k1 = fake_http_request_header(fake_http_request(stripe, before), "Idempotency-Key");
    char *k2 = fake_http_request_header(fake_http_request(stripe, before + 1), "Idempotency-Key");
    char *v = fake_http_request_header(fake_http_request(stripe, before), "Stripe-Version");
    assert_non_null(k1);
    assert_string_equal(k1, k2);
    assert_string_equal(v, "2024-11-20.acacia");
    assert_string_equal((const char *)fake_http_request(stripe, before)->body,
                        "amount=2000&currency=eur&automatic_payment_methods[enabled]=true"
                        "&metadata[vz_user]=u_pi");
    //  Stored before the first attempt.
    assert_int_equal(s_integer("EXISTS {billing}:idem:%s", k1), 1);
    free(k1);
    free(k2);
    free(v);
    //  Bad input, and no caller.
    body = s_billing_call("payment_intent_create", user, "{\"amount\":0,\"currency\":\"eur\"}",
                          code, sizeof code);
    assert_string_equal(code, "validation_failed");
    free(body);
    const char *anonymous[] = {"auth", "none", NULL};
    body = s_billing_call("payment_intent_create", anonymous, "{}", code, sizeof code);
    assert_string_equal(code, "unauthorized");
    free(body);
    //  The secret key is in no log.
    char *log = vzt_mesh_log(s_mesh->m, "billing");
    assert_false(vzt_file_has(log, STRIPE_KEY));
    free(log);
}

//  Reconciliation: Stripe lists an event a webhook delivered and one no
//  webhook did; only the second is queued, then applied.
static void test_reconcile(void **state)
{
    fake_http_t *stripe = s_mesh->stripe;
    size_t before = fake_http_count(stripe);
    event_t missed = s_event("customer", "customer.created", "evt_recon_1", (long)time(NULL),
                             "{\"id\":\"cus_recon_1\"}");
    char *page1 =
        zsys_sprintf("{\"object\":\"list\",\"has_more\":true,\"data\":[%s]}", missed.body);
    event_t known = s_event("customer", "customer.created", "evt_valid_1", (long)time(NULL),
                            "{\"id\":\"cus_valid_1\"}");
    char *page2 =
        zsys_sprintf("{\"object\":\"list\",\"has_more\":false,\"data\":[%s]}", known.body);
    fake_http_script_status(stripe, 200, page1);
    fake_http_script_status(stripe, 200, page2);
    char code[64];
    const char *admin[] = {"auth", "jwt", "sub", "u_admin", "scope", "admin", NULL};
    char *body = s_billing_call("reconcile", admin, NULL, code, sizeof code);
    assert_string_equal(code, "");
    assert_string_equal(body, "{\"queued\":1,\"duplicates\":1,\"pages\":2}");
    free(body);
    assert_true(vzt_wait_until(s_applied, "evt_recon_1", APPLY_MS));
    s_wait_hash("{billing}:obj:customer:cus_recon_1", "v_event", "evt_recon_1");
    assert_int_equal(s_hget_int("{billing}:counts", "customer.created") >= 3, 1);
    //  The pages asked: GET /v1/events over the window, then after the last id.
    const fake_http_request_t *first = fake_http_request(stripe, before);
    const fake_http_request_t *second = fake_http_request(stripe, before + 1);
    assert_string_equal(first->method, "GET");
    assert_true(strncmp(first->target, "/v1/events?limit=100&created[gte]=", 34) == 0);
    assert_non_null(strstr(second->target, "&starting_after=evt_recon_1"));
    //  Not an admin: refused.
    const char *user[] = {"auth", "jwt", "sub", "u_1", "scope", "user", NULL};
    body = s_billing_call("reconcile", user, NULL, code, sizeof code);
    assert_string_equal(code, "access_denied");
    free(body);
    free(page1);
    free(page2);
    s_event_free(&missed);
    s_event_free(&known);
}

//  Checkout: the customer is created once (keyed by the user), then a
//  session; a second checkout reuses the recorded customer.
static void test_checkout(void **state)
{
    fake_http_t *stripe = s_mesh->stripe;
    size_t before = fake_http_count(stripe);
    fake_http_script_status(stripe, 200, "{\"id\":\"cus_co_1\",\"object\":\"customer\"}");
    fake_http_script_status(stripe, 200,
                            "{\"id\":\"cs_1\",\"object\":\"checkout.session\",\"customer\":"
                            "\"cus_co_1\",\"url\":\"https://checkout.stripe.com/c/pay/cs_1\"}");
    char code[64];
    const char *user[] = {"auth", "jwt", "sub", "u_co", "scope", "user", NULL};
    const char *order = "{\"price\":\"price_pro\",\"quantity\":2,\"trial_period_days\":14,"
                        "\"success_url\":\"https://example.com/ok\",\"cancel_url\":"
                        "\"https://example.com/no\"}";
    char *body = s_billing_call("checkout", user, order, code, sizeof code);
    assert_string_equal(code, "");
    assert_non_null(strstr(body, "\"url\":\"https://checkout.stripe.com/c/pay/cs_1\""));
    free(body);
    assert_int_equal(fake_http_count(stripe), before + 2);
    const fake_http_request_t *customer = fake_http_request(stripe, before);
    const fake_http_request_t *session = fake_http_request(stripe, before + 1);
    assert_string_equal(customer->target, "/v1/customers");
    assert_string_equal((const char *)customer->body, "metadata[vz_user]=u_co");
    assert_string_equal(session->target, "/v1/checkout/sessions");
    assert_string_equal((const char *)session->body,
                        "mode=subscription&line_items[0][price]=price_pro&line_items[0][quantity]=2"
                        "&success_url=https%3A%2F%2Fexample.com%2Fok&cancel_url=https%3A%2F%2F"
                        "example.com%2Fno&client_reference_id=u_co&subscription_data[trial_period_"
                        "days]=14&metadata[vz_user]=u_co&customer=cus_co_1");
    char *recorded = s_hget_str("{billing}:customer_of:u_co");
    assert_string_equal(recorded, "cus_co_1");
    free(recorded);
    //  Again: the recorded customer, one call.
    fake_http_script_status(stripe, 200, "{\"id\":\"cs_2\",\"url\":\"https://x.example/cs_2\"}");
    body = s_billing_call("checkout", user, order, code, sizeof code);
    assert_string_equal(code, "");
    free(body);
    assert_int_equal(fake_http_count(stripe), before + 3);
    assert_non_null(
        strstr((const char *)fake_http_request(stripe, before + 2)->body, "customer=cus_co_1"));
    //  Validation.
    body = s_billing_call("checkout", user, "{\"price\":\"x\"}", code, sizeof code);
    assert_string_equal(code, "validation_failed");
    free(body);
    //  The Billing Portal for the same customer.
    fake_http_script_status(
        stripe, 200, "{\"id\":\"bps_1\",\"url\":\"https://billing.stripe.com/p/session/x\"}");
    body = s_billing_call("portal", user, "{\"return_url\":\"https://example.com/account\"}", code,
                          sizeof code);
    assert_string_equal(code, "");
    assert_string_equal(body,
                        "{\"id\":\"bps_1\",\"url\":\"https://billing.stripe.com/p/session/x\"}");
    free(body);
    assert_string_equal((const char *)fake_http_request(stripe, before + 3)->body,
                        "customer=cus_co_1&return_url=https%3A%2F%2Fexample.com%2Faccount");
    assert_string_equal(fake_http_request(stripe, before + 3)->target,
                        "/v1/billing_portal/sessions");
}

//  The caller's own subscriptions: listed from the stored state, changed
//  and cancelled through Stripe; someone else's are not found.
static void test_own_subscriptions(void **state)
{
    fake_http_t *stripe = s_mesh->stripe;
    //  u_co's customer (test_checkout) gets a subscription by webhook.
    event_t e =
        s_event("subscription", "customer.subscription.created", "evt_own_1", (long)time(NULL),
                "{\"id\":\"sub_own_1\",\"customer\":\"cus_co_1\",\"status\":\"active\","
                "\"currency\":\"usd\",\"items\":{\"data\":[{\"id\":\"si_own_1\",\"quantity\":"
                "1,\"price\":{\"unit_amount\":900,\"recurring\":{\"interval\":\"month\","
                "\"interval_count\":1}}}]}}");
    s_deliver_applied(&e, "evt_own_1");
    char code[64];
    const char *user[] = {"auth", "jwt", "sub", "u_co", "scope", "user", NULL};
    char *body = s_billing_call("subscriptions_list", user, NULL, code, sizeof code);
    assert_string_equal(code, "");
    assert_non_null(strstr(body, "\"id\":\"sub_own_1\""));
    assert_non_null(strstr(body, "\"mrr\":900"));
    assert_non_null(strstr(body, "\"has_more\":false"));
    free(body);
    //  Someone else sees nothing and cannot touch it.
    const char *other[] = {"auth", "jwt",     "sub",       "u_other", "scope",
                           "user", "path.id", "sub_own_1", NULL};
    body = s_billing_call("subscriptions_list", other, NULL, code, sizeof code);
    assert_string_equal(body, "{\"object\":\"list\",\"data\":[],\"has_more\":false}");
    free(body);
    body = s_billing_call("subscription_cancel", other, NULL, code, sizeof code);
    assert_string_equal(code, "not_found");
    free(body);
    //  A quantity change on the stored item, then a cancellation.
    size_t before = fake_http_count(stripe);
    fake_http_script_status(
        stripe, 200, "{\"id\":\"sub_own_1\",\"status\":\"active\",\"cancel_at_period_end\":false}");
    fake_http_script_status(stripe, 200, "{\"id\":\"sub_own_1\",\"status\":\"canceled\"}");
    const char *mine[] = {"auth", "jwt",     "sub",       "u_co", "scope",
                          "user", "path.id", "sub_own_1", NULL};
    body = s_billing_call("subscription_update", mine, "{\"quantity\":3}", code, sizeof code);
    assert_string_equal(code, "");
    free(body);
    const fake_http_request_t *change = fake_http_request(stripe, before);
    assert_string_equal(change->method, "POST");
    assert_string_equal(change->target, "/v1/subscriptions/sub_own_1");
    assert_string_equal((const char *)change->body, "items[0][id]=si_own_1&items[0][quantity]=3");
    body = s_billing_call("subscription_cancel", mine, NULL, code, sizeof code);
    assert_string_equal(code, "");
    assert_non_null(strstr(body, "\"status\":\"canceled\""));
    free(body);
    const fake_http_request_t *cancel = fake_http_request(stripe, before + 1);
    assert_string_equal(cancel->method, "DELETE");
    assert_string_equal(cancel->target, "/v1/subscriptions/sub_own_1");
    body = s_billing_call("subscription_update", mine, "{}", code, sizeof code);
    assert_string_equal(code, "validation_failed");
    free(body);
    //  A new one, incomplete until paid; without a customer: checkout first.
    fake_http_script_status(stripe, 200,
                            "{\"id\":\"sub_new_1\",\"status\":\"incomplete\",\"latest_invoice\":"
                            "{\"payment_intent\":{\"client_secret\":\"pi_x_secret_y\"}}}");
    body = s_billing_call("subscription_create", user, "{\"price\":\"price_pro\",\"quantity\":2}",
                          code, sizeof code);
    assert_string_equal(code, "");
    assert_string_equal(body, "{\"id\":\"sub_new_1\",\"status\":\"incomplete\",\"client_secret\":"
                              "\"pi_x_secret_y\"}");
    free(body);
    assert_string_equal((const char *)fake_http_request(stripe, before + 2)->body,
                        "customer=cus_co_1&items[0][price]=price_pro&items[0][quantity]=2"
                        "&payment_behavior=default_incomplete&metadata[vz_user]=u_co"
                        "&expand[0]=latest_invoice.payment_intent");
    body = s_billing_call("subscription_create", other, "{\"price\":\"price_pro\"}", code,
                          sizeof code);
    assert_string_equal(code, "conflict");
    free(body);
    s_event_free(&e);
}

// --------------------------------------------------------------------------
//  The routes through the gateway, with real credentials

//  method path through the gateway with a bearer token (NULL: none) and a
//  JSON body (NULL: none); the status, the body in *out (heap).
static long s_gw(const char *method, const char *path, const char *token, const char *body,
                 char **out)
{
    char *url = zsys_sprintf("%s%s", vzt_mesh_url(s_mesh->m), path);
    char *auth = token ? zsys_sprintf("Authorization: Bearer %s", token) : NULL;
    const char *headers[] = {"Content-Type: application/json", auth, NULL};
    vzt_resp_t resp;
    int rc = vzt_request(method, url, headers, body, body ? strlen(body) : 0, HTTP_MS, &resp);
    long status = rc == 0 ? resp.status : 0;
    *out = strdup(rc == 0 && resp.body ? resp.body : "");
    vzt_resp_free(&resp);
    free(auth);
    free(url);
    return status;
}

//  The string field of a JSON answer (heap), failing when absent.
static char *s_field(const char *json, const char *name)
{
    vz_json_t *doc = vz_json_parse(json, strlen(json), NULL, NULL);
    const char *v = doc ? vz_json_get_string(vz_json_root(doc), name, NULL) : NULL;
    if (!v)
        fail_msg("no %s in %s", name, json);
    char *out = strdup(v);
    vz_json_destroy(&doc);
    return out;
}

//  The credentials of email as a JSON body (heap).
static char *s_credentials(const char *email)
{
    return zsys_sprintf("{\"email\":\"%s\",\"password\":\"a passphrase of %s\"}", email, email);
}

//  Log email in through the gateway: its access token (heap).
static char *s_log_in(const char *email)
{
    char *body = s_credentials(email), *out = NULL;
    assert_int_equal(s_gw("POST", "/v1/auth/login", NULL, body, &out), 200);
    char *token = s_field(out, "access_token");
    free(out);
    free(body);
    return token;
}

//  Register email through the gateway and log in: the access token; the
//  user id into id.
static char *s_sign_up(const char *email, char *id, size_t n)
{
    char *body = s_credentials(email), *out = NULL;
    assert_int_equal(s_gw("POST", "/v1/auth/register", NULL, body, &out), 201);
    char *uid = s_field(out, "id");
    snprintf(id, n, "%s", uid);
    free(uid);
    free(out);
    free(body);
    return s_log_in(email);
}

//  The first admin: the one-time token auth logged, redeemed by a user
//  whose next login carries scope admin (docs/services/auth.md).
static char *s_admin_token(void)
{
    char id[64];
    char *user = s_sign_up(ADMIN_EMAIL, id, sizeof id);
    char *log = vzt_mesh_log(s_mesh->m, "auth");
    char *text = s_read_file(log);
    const char *t = strstr(text, "\"vzb_");
    assert_non_null(t);
    char *body = zsys_sprintf("{\"token\":\"%.*s\"}", (int)strcspn(t + 1, "\""), t + 1);
    char *out = NULL;
    assert_int_equal(s_gw("POST", "/v1/auth/bootstrap", user, body, &out), 200);
    free(out);
    free(body);
    free(text);
    free(log);
    free(user);
    return s_log_in(ADMIN_EMAIL);
}

//  A user's lists paged by ?limit=&starting_after=, Stripe's errors with
//  their own status, and revenue by ?period=&at= for an admin: the query
//  and the worker's http_status cross the real gateway.
static void test_through_gateway(void **state)
{
    //  A second subscription of u_co's customer (test_own_subscriptions).
    event_t e =
        s_event("subscription", "customer.subscription.created", "evt_gw_1", (long)time(NULL) + 1,
                "{\"id\":\"sub_gw_2\",\"customer\":\"cus_co_1\",\"status\":\"active\","
                "\"currency\":\"usd\"}");
    s_deliver_applied(&e, "evt_gw_1");
    char id[64], *out = NULL;
    char *user = s_sign_up("payer@example.com", id, sizeof id);
    redisReply *r = redisCommand(s_mesh->redis, "SET {billing}:customer_of:%s cus_co_1", id);
    freeReplyObject(r);
    //  Pages of one, newest first, then the next after the first's id.
    assert_int_equal(s_gw("GET", "/v1/billing/subscriptions?limit=1", user, NULL, &out), 200);
    if (!strstr(out, "\"id\":\"sub_gw_2\"") || !strstr(out, "\"has_more\":true") ||
        strstr(out, "sub_own_1"))
        fail_msg("first page: %s", out);
    free(out);
    assert_int_equal(
        s_gw("GET", "/v1/billing/subscriptions?limit=1&starting_after=sub_gw_2", user, NULL, &out),
        200);
    if (!strstr(out, "\"id\":\"sub_own_1\"") || !strstr(out, "\"has_more\":false"))
        fail_msg("second page: %s", out);
    free(out);
    assert_int_equal(s_gw("GET", "/v1/billing/invoices?limit=1x", user, NULL, &out), 422);
    assert_non_null(strstr(out, "\"code\":\"validation_failed\""));
    free(out);
    //  A declined card: Stripe's card_error is 402 card_declined for the client.
    fake_http_script_status(s_mesh->stripe, 402,
                            "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\","
                            "\"message\":\"Your card was declined.\"}}");
    assert_int_equal(s_gw("POST", "/v1/billing/payment-intents", user,
                          "{\"amount\":500,\"currency\":\"eur\"}", &out),
                     402);
    if (!strstr(out, "\"code\":\"card_declined\"") || !strstr(out, "Your card was declined."))
        fail_msg("declined: %s", out);
    free(out);
    //  Revenue wants scope admin; ?period=&at= choose the period.
    assert_int_equal(s_gw("GET", "/v1/billing/revenue?period=week", user, NULL, &out), 403);
    free(out);
    char *admin = s_admin_token();
    assert_int_equal(
        s_gw("GET", "/v1/billing/revenue?period=year&at=2026-03-04", admin, NULL, &out), 200);
    //  2026-01-01T00:00:00Z and 2027-01-01T00:00:00Z.
    if (!strstr(out, "\"period\":\"year\",\"start\":1767225600,\"end\":1798761600"))
        fail_msg("revenue: %s", out);
    free(out);
    assert_int_equal(s_gw("GET", "/v1/billing/revenue?period=decade", admin, NULL, &out), 422);
    free(out);
    free(admin);
    free(user);
    s_event_free(&e);
}

//  An in-test notifier: a worker thread serving send and alert, recording.
typedef struct {
    pthread_mutex_t lock;
    char sends[4][2048];
    int nsend;
    char alerts[4][1024];
    int nalert;
    volatile int stop;
} notifier_t;

static notifier_t s_notifier = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int s_record(char (*slots)[2048], int *n, const vz_envelope_t *req)
{
    pthread_mutex_lock(&s_notifier.lock);
    if (*n < 4)
        snprintf(slots[(*n)++], 1024, "%.*s", (int)req->body_len, (const char *)req->body);
    pthread_mutex_unlock(&s_notifier.lock);
    return 0;
}

static int s_nt_send(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    s_record(s_notifier.sends, &s_notifier.nsend, req);
    return vz_reply_body(reply, "{\"id\":\"n_1\",\"status\":\"queued\"}", 30);
}

static int s_nt_alert(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    pthread_mutex_lock(&s_notifier.lock);
    if (s_notifier.nalert < 4)
        snprintf(s_notifier.alerts[s_notifier.nalert++], sizeof s_notifier.alerts[0], "%.*s",
                 (int)req->body_len, (const char *)req->body);
    pthread_mutex_unlock(&s_notifier.lock);
    return vz_reply_body(reply, "{\"action\":\"queued\"}", 19);
}

static int s_nt_tick(zloop_t *loop, int timer_id, void *arg)
{
    return s_notifier.stop ? -1 : 0;
}

static void *s_nt_thread(void *arg)
{
    char *certpath = vzt_mesh_path(s_mesh->m, "keys/secret/notifier.key");
    char *keypath = vzt_mesh_path(s_mesh->m, "keys/public/broker.key");
    char err[256], key[41];
    zcert_t *cert = vz_curve_cert_load(certpath, err, sizeof err);
    assert_non_null(cert);
    assert_int_equal(vz_curve_server_key(keypath, key), 0);
    static const vz_method_t methods[] = {{"send", s_nt_send, 0, 0}, {"alert", s_nt_alert, 0, 0}};
    vz_worker_config_t wc = {.service = "notifier",
                             .endpoints = vzt_mesh_endpoint(s_mesh->m),
                             .broker_key = key,
                             .cert = cert,
                             .credit = 8};
    vz_worker_t *worker = vz_worker_new(&wc, methods, 2, NULL);
    assert_non_null(worker);
    zloop_t *loop = zloop_new();
    vz_worker_attach(worker, loop);
    zloop_timer(loop, 20, 0, s_nt_tick, NULL);
    zloop_start(loop);
    zloop_destroy(&loop);
    vz_worker_destroy(&worker);
    zcert_destroy(&cert);
    free(certpath);
    free(keypath);
    return NULL;
}

static bool s_notified(void *arg)
{
    pthread_mutex_lock(&s_notifier.lock);
    bool ok = s_notifier.nsend >= 1 && s_notifier.nalert >= 1;
    pthread_mutex_unlock(&s_notifier.lock);
    return ok;
}

static bool s_outbox_settled(void *arg)
{
    redisReply *r = redisCommand(s_mesh->redis, "XPENDING {billing}:outbox notify");
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->element[0]->integer == 0;
    if (r)
        freeReplyObject(r);
    return ok;
}

static bool s_outbox_taken(void *arg)
{
    redisReply *r = redisCommand(s_mesh->redis, "XPENDING {billing}:outbox notify");
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->element[0]->integer >= 2;
    if (r)
        freeReplyObject(r);
    return ok;
}

//  A receipt and a dispute alert wait while the notifier is away, then are
//  delivered once it comes.
static void test_notifications(void **state)
{
    long now = (long)time(NULL);
    char *paid = zsys_sprintf("{\"id\":\"in_mail_1\",\"status\":\"paid\",\"currency\":\"eur\","
                              "\"amount_paid\":1234,\"customer_email\":\"ada@example.com\","
                              "\"customer_name\":\"Ada\",\"number\":\"INV-7\","
                              "\"status_transitions\":{\"paid_at\":%ld}}",
                              now);
    event_t receipt = s_event("invoice", "invoice.paid", "evt_mail_1", now, paid);
    event_t dispute = s_event("dispute", "charge.dispute.created", "evt_dispute_1", now,
                              "{\"id\":\"dp_mail_1\",\"amount\":1234,\"currency\":\"eur\"}");
    char *reply = NULL;
    assert_int_equal(s_deliver(&receipt, SECRET_CUR, 0, &reply), 200);
    free(reply);
    assert_int_equal(s_deliver(&dispute, SECRET_CUR, 0, &reply), 200);
    free(reply);
    //  Taken from the outbox, not acknowledged: nobody serves "notifier".
    assert_true(vzt_wait_until(s_outbox_taken, NULL, APPLY_MS));
    assert_false(s_notified(NULL));
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_nt_thread, NULL), 0);
    assert_true(vzt_wait_until(s_notified, NULL, 20000));
    assert_true(vzt_wait_until(s_outbox_settled, NULL, APPLY_MS));
    s_notifier.stop = 1;
    pthread_join(thread, NULL);
    pthread_mutex_lock(&s_notifier.lock);
    assert_non_null(strstr(s_notifier.sends[0], "\"template\":\"receipt\""));
    assert_non_null(strstr(s_notifier.sends[0], "\"address\":\"ada@example.com\""));
    assert_non_null(
        strstr(s_notifier.sends[0], "\"idempotency_key\":\"billing-evt_mail_1-receipt\""));
    assert_non_null(strstr(s_notifier.sends[0], "\"amount\":\"12.34 EUR\""));
    assert_non_null(strstr(s_notifier.alerts[0], "\"name\":\"billing_dispute\""));
    assert_non_null(strstr(s_notifier.alerts[0], "dp_mail_1"));
    pthread_mutex_unlock(&s_notifier.lock);
    free(paid);
    s_event_free(&receipt);
    s_event_free(&dispute);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_tampered_and_reserialised),
        cmocka_unit_test(test_timestamps_and_headers),
        cmocka_unit_test(test_concurrent_duplicates),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_kill_between_ack_and_apply),
        cmocka_unit_test(test_revenue),
        cmocka_unit_test(test_payment_intent),
        cmocka_unit_test(test_reconcile),
        cmocka_unit_test(test_checkout),
        cmocka_unit_test(test_own_subscriptions),
        cmocka_unit_test(test_through_gateway),
        cmocka_unit_test(test_notifications),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
