/*  test_ratelimit - vz-ratelimit replicas over a real broker and Redis
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh per run: redis-server, vz-broker and two vz-ratelimit replicas
 *  on free loopback ports with their own keys, call policy and rate-limit
 *  policy in a temp dir. Clients are vz_client instances with the
 *  "gateway" identity, one per thread. Shows: exactly N allowed across two
 *  replicas under parallel clients (both algorithms), shadow mode, SIGHUP
 *  reload (an invalid file keeps the old one), Redis hung (SIGSTOP) and
 *  stopped/restarted under load (answers keep coming within the timeout,
 *  fail_open then redis again, readiness follows), fail-open per-replica
 *  limits, and a replica started without Redis (not ready, fail_closed,
 *  ready once Redis appears).
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
#include <unistd.h>

#include "harness.h"
#include "vz_batch.h"
#include "vz_client.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_envelope.h"
#include "vz_proto.h"
#include "vz_ratelimit_contract.h"

#define CALL_MS 5000
#define EXACT_LIMIT 200
#define THREADS 8
#define PER_THREAD 60

#include "rl_check.h" //  answer_t, s_check (uses CALL_MS)

typedef struct {
    vzt_mesh_t *m;          //  Redis, broker, ratelimit.0 and ratelimit.1
    const char *dir;        //  its directory (keys, policies, logs)
    int admin[2];           //  the replicas' admin ports
    const char *endpoint;   //  the broker endpoint
    const char *broker_key; //  Z85
    zcert_t *cert;          //  the "gateway" identity used by clients (borrowed)
} mesh_t;

static const char s_policies[] =
    "ratelimit\n    shadow = \"false\"\n"
    "policy\n"
    "    exact_tb\n        route = \"exact_tb\"\n        by = \"ip\"\n"
    "        algorithm = \"token_bucket\"\n        limit = 200\n        window = \"1h\"\n"
    "    exact_sw\n        route = \"exact_sw\"\n        by = \"ip\"\n"
    "        algorithm = \"sliding_window\"\n        limit = 200\n        window = \"1h\"\n"
    "    shadowed\n        route = \"shadowed\"\n        limit = 3\n        window = \"1h\"\n"
    "        shadow = \"true\"\n"
    "    small\n        route = \"small\"\n        algorithm = \"token_bucket\"\n"
    "        limit = 10\n        window = \"1h\"\n"
    "    users\n        tier = \"free premium\"\n        by = \"key sub\"\n"
    "        limit = 5\n        window = \"1h\"\n"
    "    anonymous\n        tier = \"*\"\n        by = \"ip\"\n        limit = 1000000\n"
    "        window = \"60s\"\n";

static int s_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mesh_t *mesh = calloc(1, sizeof *mesh);
    assert_non_null(mesh);
    *state = mesh;
    //  VZ_RATELIMIT_REPLICAS left at 0: each replica learns "2" from the broker.
    char *const env[] = {"ratelimit:VZ_RATELIMIT_REDIS_RETRY_MS=100", NULL};
    const char *const files[] = {"ratelimit.cfg", s_policies, NULL};
    mesh->m = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "ratelimit",
                                                .daemons = "ratelimit*2",
                                                .identities = "gateway",
                                                .env = env,
                                                .files = files});
    assert_non_null(mesh->m);
    mesh->dir = vzt_mesh_dir(mesh->m);
    mesh->admin[0] = vzt_mesh_admin_port(mesh->m, "ratelimit.0");
    mesh->admin[1] = vzt_mesh_admin_port(mesh->m, "ratelimit.1");
    mesh->endpoint = vzt_mesh_endpoint(mesh->m);
    mesh->broker_key = vzt_mesh_broker_key(mesh->m);
    mesh->cert = vzt_mesh_cert(mesh->m, "gateway");
    assert_non_null(mesh->cert);
    return 0;
}

static int s_teardown(void **state)
{
    mesh_t *mesh = *state;
    int rc = vzt_mesh_destroy(&mesh->m);
    free(mesh);
    curl_global_cleanup();
    return rc;
}

// --------------------------------------------------------------------------
//  Calls

static vz_client_t *s_client(const mesh_t *mesh, const char *endpoint)
{
    vz_client_config_t config = {.endpoints = endpoint ? endpoint : mesh->endpoint,
                                 .broker_key = mesh->broker_key,
                                 .cert = mesh->cert};
    vz_client_t *client = vz_client_new(&config);
    assert_non_null(client);
    return client;
}

static double s_metric(int port, const char *series)
{
    double v = 0;
    vzt_metric(port, series, &v);
    return v;
}

//  /readyz status and body.
static long s_readyz(int port, char **body)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", port);
    long status = 0;
    if (vzt_http("GET", url, NULL, &status, body, 2000) < 0)
        status = 0;
    return status;
}

// --------------------------------------------------------------------------
//  Tests

static void test_check_answers(void **state)
{
    mesh_t *mesh = *state;
    vz_client_t *client = s_client(mesh, NULL);
    answer_t a;
    assert_int_equal(s_check(client, "10.1.0.1", "", "anonymous", "small", &a), 0);
    assert_string_equal(a.error, "");
    assert_true(a.allowed);
    assert_string_equal(a.policy, "small");
    assert_string_equal(a.mode, "redis");
    assert_int_equal(a.limit, 10);
    assert_int_equal(a.window, 3600);
    assert_int_equal(a.remaining, 9);
    assert_int_equal(a.retry_after, 0);
    assert_false(a.shadow);
    assert_true(a.reset >= 359 && a.reset <= 361); //  one token = 360 s to refill
    for (int i = 0; i < 9; i++)
        assert_int_equal(s_check(client, "10.1.0.1", "", "anonymous", "small", &a), 0);
    assert_true(a.allowed);
    assert_int_equal(a.remaining, 0);
    assert_int_equal(s_check(client, "10.1.0.1", "", "anonymous", "small", &a), 0);
    assert_false(a.allowed);
    assert_int_equal(a.remaining, 0);
    assert_true(a.retry_after >= 359 && a.retry_after <= 361);
    //  Another IP has its own bucket.
    assert_int_equal(s_check(client, "10.1.0.2", "", "anonymous", "small", &a), 0);
    assert_true(a.allowed);

    //  Tier and descriptor alternatives: "key sub" keys users by subject.
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s_check(client, "10.1.0.3", "user-1", "free", "any", &a), 0);
        assert_true(a.allowed);
        assert_string_equal(a.policy, "users");
    }
    assert_int_equal(s_check(client, "10.1.0.4", "user-1", "premium", "any", &a), 0);
    assert_false(a.allowed); //  same user from another IP
    assert_int_equal(s_check(client, "10.1.0.3", "user-2", "free", "any", &a), 0);
    assert_true(a.allowed);
    //  No descriptor: sub and key empty for "key sub".
    assert_int_equal(s_check(client, "10.1.0.3", "", "free", "any", &a), 0);
    assert_string_equal(a.error, "invalid_request");

    //  Malformed bodies get invalid_request, never a crash.
    const struct {
        const char *bytes; //  body
        size_t len;        //  bytes
    } bad[] = {
        {"\x93\x01\x02\x03", 4}, //  not a map
        {"\x81\xa2ip\x05", 5},   //  ip not a string
        {"\x81\xa4"
         "cost"
         "\xff",
         7}, //  negative cost
        {"\x81\xa4"
         "cost"
         "\xce\x7f\xff\xff\xff",
         11}, //  cost too large
        {"\x81\xa2ip\xa3"
         "a\0b",
         8},                                  //  NUL in string
        {"\x81\xa1x\xdd\xff\xff\xff\xff", 8}, //  array count beyond the body
        {"\x82\xa2ip\xa1"
         "a",
         6},                       //  truncated map
        {"\x80\x00", 2},           //  trailing bytes
        {"\x81\xa2ip\xd9\xff", 6}, //  str8 beyond the body
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s_check_raw(client, (const uint8_t *)bad[i].bytes, bad[i].len, &a), 0);
        if (strcmp(a.error, "invalid_request") != 0)
            fail_msg("bad body %zu answered \"%s\"", i, a.error);
    }
    //  Unknown keys of any shape are skipped.
    const char skip[] = "\x83\xa1x\x92\x81\xa1y\xc0\xcb\x00\x00\x00\x00\x00\x00\x00\x00"
                        "\xa2ip\xa8"
                        "10.1.0.9\xa5route\xa5small";
    assert_int_equal(s_check_raw(client, (const uint8_t *)skip, sizeof skip - 1, &a), 0);
    assert_string_equal(a.error, "");
    assert_string_equal(a.policy, "small");

    //  "policies" lists the active set.
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "ratelimit", "policies", NULL), 0);
    vz_response_t *rsp = NULL;
    assert_int_equal(vz_client_call(client, &req, CALL_MS, &rsp), 0);
    assert_int_equal(rsp->env.kind, VZ_KIND_REPLY);
    assert_non_null(memmem(rsp->env.body, rsp->env.body_len, "exact_sw", 8));
    assert_non_null(memmem(rsp->env.body, rsp->env.body_len, "sliding_window", 14));
    vz_response_destroy(&rsp);
    vz_client_destroy(&client);
}

typedef struct {
    const mesh_t *mesh;   //  shared
    const char *route;    //  policy under test
    const char *ip;       //  descriptor shared by every thread
    atomic_int *allowed;  //  total allowed
    atomic_int *denied;   //  total denied
    atomic_int *failed;   //  calls that did not return an answer
    atomic_int *fallback; //  answers not decided in Redis (failed open)
} exact_arg_t;

static void *s_exact_thread(void *arg)
{
    exact_arg_t *x = arg;
    vz_client_config_t config = {
        .endpoints = x->mesh->endpoint, .broker_key = x->mesh->broker_key, .cert = x->mesh->cert};
    vz_client_t *client = vz_client_new(&config);
    for (int i = 0; client && i < PER_THREAD; i++) {
        answer_t a;
        if (s_check(client, x->ip, "", "anonymous", x->route, &a) < 0 || *a.error)
            atomic_fetch_add(x->failed, 1);
        else if (strcmp(a.mode, "redis") != 0)
            atomic_fetch_add(x->fallback, 1);
        else if (a.allowed)
            atomic_fetch_add(x->allowed, 1);
        else
            atomic_fetch_add(x->denied, 1);
    }
    if (!client)
        atomic_fetch_add(x->failed, PER_THREAD);
    vz_client_destroy(&client);
    return NULL;
}

//  Decisions (allowed + denied) of route over both replicas, from metrics.
static double s_decided(mesh_t *mesh, const char *route)
{
    double total = 0;
    for (int i = 0; i < 2; i++) {
        char series[160];
        snprintf(series, sizeof series,
                 "vz_ratelimit_decisions_total{policy=\"%s\",result=\"allowed\"}", route);
        double a = s_metric(mesh->admin[i], series);
        snprintf(series, sizeof series,
                 "vz_ratelimit_decisions_total{policy=\"%s\",result=\"denied\"}", route);
        double d = s_metric(mesh->admin[i], series);
        if (a + d <= 0)
            fail_msg("replica %d decided nothing for %s", i, route);
        total += a + d;
    }
    return total;
}

//  THREADS clients x PER_THREAD checks on one bucket with limit 200 over
//  two replicas: exactly 200 pass, and both replicas decided some.
//  Exactness is the claim while Redis answers within its timeout; a run in
//  which a loaded machine made some answers fail open (the documented
//  failure mode) proves nothing either way, so it is run again on a fresh
//  bucket, at most three times.
static void s_exact(mesh_t *mesh, const char *route)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        atomic_int allowed = 0, denied = 0, failed = 0, fallback = 0;
        char ip[32];
        snprintf(ip, sizeof ip, "10.2.0.%d", attempt + 1);
        exact_arg_t arg = {mesh, route, ip, &allowed, &denied, &failed, &fallback};
        pthread_t threads[THREADS];
        for (int i = 0; i < THREADS; i++)
            assert_int_equal(pthread_create(&threads[i], NULL, s_exact_thread, &arg), 0);
        for (int i = 0; i < THREADS; i++)
            pthread_join(threads[i], NULL);
        assert_int_equal(failed, 0);
        if (fallback > 0) {
            fprintf(stderr, "%s: %d answers failed open (Redis slower than its timeout), again\n",
                    route, (int)fallback);
            continue;
        }
        assert_int_equal(allowed, EXACT_LIMIT);
        assert_int_equal(denied, THREADS * PER_THREAD - EXACT_LIMIT);
        //  Every check was decided by a replica, each replica decided some
        //  (earlier runs' decisions count too).
        assert_true(s_decided(mesh, route) >= THREADS * PER_THREAD * (attempt + 1));
        return;
    }
    fail_msg("%s: every run met a Redis slower than its timeout", route);
}

static void test_exact_token_bucket(void **state)
{
    s_exact(*state, "exact_tb");
}

static void test_exact_sliding_window(void **state)
{
    s_exact(*state, "exact_sw");
}

//  One client, checks sent without waiting (both scripts interleaved), so
//  each replica takes several per batch and pipelines their scripts; the
//  script cache is flushed first, so the first batch goes through NOSCRIPT
//  and EVAL. Still exactly the limit per bucket, every answer from Redis,
//  and fewer Redis round trips than decisions.
static void test_pipelined_batches(void **state)
{
    mesh_t *mesh = *state;
    redisContext *rc = redisConnect("127.0.0.1", vzt_mesh_redis_port(mesh->m));
    assert_true(rc && !rc->err);
    redisReply *flushed = redisCommand(rc, "SCRIPT FLUSH");
    assert_true(flushed && flushed->type == REDIS_REPLY_STATUS);
    freeReplyObject(flushed);
    redisFree(rc);
    const char *batches = "vz_ratelimit_redis_duration_seconds_count";
    double trips0 = s_metric(mesh->admin[0], batches) + s_metric(mesh->admin[1], batches);

    enum { EACH = 300 };
    vz_client_t *client = s_client(mesh, NULL);
    const char *routes[2] = {"exact_tb", "exact_sw"};
    const char *ips[2] = {"10.7.0.1", "10.7.0.2"};
    for (int i = 0; i < 2 * EACH; i++) {
        size_t len;
        uint8_t *body = s_check_body(ips[i % 2], "", "anonymous", routes[i % 2], &len);
        vz_envelope_t req;
        assert_int_equal(vz_envelope_request(&req, "ratelimit", "check", NULL), 0);
        vz_client_new_id(req.id, sizeof req.id);
        req.deadline_ms = vz_now_ms() + 20000;
        req.body = body;
        req.body_len = len;
        assert_int_equal(vz_client_send(client, &req), 0);
        free(body);
    }
    int allowed[2] = {0, 0}, answers = 0, not_redis = 0;
    zpoller_t *poller = zpoller_new(vz_client_sock(client), NULL);
    int64_t end = zclock_mono() + 20000;
    while (answers < 2 * EACH && zclock_mono() < end) {
        if (!zpoller_wait(poller, 200))
            continue;
        vz_response_t *rsp = NULL;
        if (vz_client_recv(client, &rsp) < 0 || !rsp)
            continue;
        answer_t a = {0};
        assert_int_equal(rsp->env.kind, VZ_KIND_REPLY);
        assert_int_equal(s_decode(rsp->env.body, rsp->env.body_len, &a), 0);
        answers++;
        not_redis += strcmp(a.mode, "redis") != 0;
        if (a.allowed)
            allowed[strcmp(a.policy, "exact_sw") == 0]++;
        vz_response_destroy(&rsp);
    }
    zpoller_destroy(&poller);
    vz_client_destroy(&client);
    assert_int_equal(answers, 2 * EACH);
    assert_int_equal(not_redis, 0);
    assert_int_equal(allowed[0], EXACT_LIMIT);
    assert_int_equal(allowed[1], EXACT_LIMIT);
    double trips = s_metric(mesh->admin[0], batches) + s_metric(mesh->admin[1], batches) - trips0;
    print_message("pipelined: %d decisions in %.0f Redis round trips\n", 2 * EACH, trips);
    assert_true(trips >= 1 && trips < 2 * EACH);
}

//  check_batch (the batch convention of vz_batch.h): 12 batches of 41
//  items sent without waiting, spread over both replicas; each batch holds
//  20 checks per bucket plus one malformed item at a varying position.
//  Still exactly the limit per bucket, every result in its item's place,
//  the malformed items refused alone; a body that is not a batch is
//  refused whole; an item without a descriptor is refused in place.
static void test_check_batch(void **state)
{
    mesh_t *mesh = *state;
    enum { BATCHES = 12, PER = 41 };
    vz_client_t *client = s_client(mesh, NULL);
    const char *routes[2] = {"exact_tb", "exact_sw"};
    const char *ips[2] = {"10.8.0.1", "10.8.0.2"};
    char ids[BATCHES][VZ_ID_MAX];
    for (int b = 0; b < BATCHES; b++) {
        vz_batch_item_t items[PER];
        uint8_t *bodies[PER] = {NULL};
        int bad = (b * 7) % PER;
        for (int i = 0, k = 0; i < PER; i++) {
            if (i == bad)
                items[i] = (vz_batch_item_t){.data = (const uint8_t *)"\x93\x01", .len = 2};
            else {
                //  sub "" and tier "anonymous": the "exact_*" policies key on ip.
                size_t item_len;
                bodies[i] = s_check_body(ips[k % 2], "", "anonymous", routes[k % 2], &item_len);
                items[i] = (vz_batch_item_t){.data = bodies[i], .len = item_len};
                k++;
            }
        }
        size_t len;
        uint8_t *body = vz_batch_request_encode(items, PER, &len);
        vz_envelope_t req;
        assert_int_equal(vz_envelope_request(&req, "ratelimit", "check_batch", NULL), 0);
        vz_client_new_id(req.id, sizeof req.id);
        vz_strlcpy(ids[b], req.id, sizeof ids[b]);
        req.deadline_ms = vz_now_ms() + 20000;
        req.body = body;
        req.body_len = len;
        assert_int_equal(vz_client_send(client, &req), 0);
        free(body);
        for (int i = 0; i < PER; i++)
            free(bodies[i]);
    }
    int allowed[2] = {0, 0}, denied[2] = {0, 0}, replies = 0;
    zpoller_t *poller = zpoller_new(vz_client_sock(client), NULL);
    int64_t end = zclock_mono() + 20000;
    while (replies < BATCHES && zclock_mono() < end) {
        if (!zpoller_wait(poller, 200))
            continue;
        vz_response_t *rsp = NULL;
        if (vz_client_recv(client, &rsp) < 0 || !rsp)
            continue;
        int b = 0;
        while (b < BATCHES && strcmp(ids[b], rsp->env.id) != 0)
            b++;
        assert_true(b < BATCHES);
        assert_int_equal(rsp->env.kind, VZ_KIND_REPLY);
        vz_batch_item_t out[VZ_BATCH_MAX];
        size_t n = 0;
        assert_int_equal(
            vz_batch_reply_decode(rsp->env.body, rsp->env.body_len, out, VZ_BATCH_MAX, &n, NULL),
            0);
        assert_int_equal(n, PER);
        for (int i = 0, k = 0; i < PER; i++) {
            if (i == (b * 7) % PER) {
                assert_true(out[i].code_len == strlen(VZ_ERR_INVALID) &&
                            memcmp(out[i].code, VZ_ERR_INVALID, out[i].code_len) == 0);
                assert_true(out[i].len > 0); //  with a message
                continue;
            }
            assert_int_equal(out[i].code_len, 0);
            answer_t a = {0};
            assert_int_equal(s_decode(out[i].data, out[i].len, &a), 0);
            assert_string_equal(a.policy, routes[k % 2]); //  in its item's place
            assert_string_equal(a.mode, "redis");
            (a.allowed ? allowed : denied)[k % 2]++;
            k++;
        }
        replies++;
        vz_response_destroy(&rsp);
    }
    zpoller_destroy(&poller);
    assert_int_equal(replies, BATCHES);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(allowed[r], EXACT_LIMIT);
        assert_int_equal(denied[r], BATCHES * (PER - 1) / 2 - EXACT_LIMIT);
    }

    //  Not a batch at all: the whole call is refused with the reason.
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "ratelimit", "check_batch", NULL), 0);
    req.body = (const uint8_t *)"\x80";
    req.body_len = 1;
    vz_response_t *rsp = NULL;
    assert_int_equal(vz_client_call(client, &req, CALL_MS, &rsp), 0);
    assert_int_equal(rsp->env.kind, VZ_KIND_ERROR);
    assert_string_equal(rsp->env.error_code, VZ_ERR_INVALID);
    assert_non_null(strstr(rsp->env.error_message, "not an array"));
    vz_response_destroy(&rsp);

    //  Decided at once (no Redis wait): an item without a descriptor.
    //  sub "" and tier "free" give the "users" policy no descriptor to key on.
    size_t one_len;
    uint8_t *one_body = s_check_body("10.8.0.3", "", "free", "any", &one_len);
    vz_batch_item_t one = {.data = one_body, .len = one_len};
    size_t len;
    uint8_t *body = vz_batch_request_encode(&one, 1, &len);
    req.body = body;
    req.body_len = len;
    assert_int_equal(vz_client_call(client, &req, CALL_MS, &rsp), 0);
    assert_int_equal(rsp->env.kind, VZ_KIND_REPLY);
    vz_batch_item_t out[1];
    size_t n;
    assert_int_equal(vz_batch_reply_decode(rsp->env.body, rsp->env.body_len, out, 1, &n, NULL), 0);
    assert_true(out[0].code_len > 0);
    assert_non_null(memmem(out[0].data, out[0].len, "no descriptor", 13));
    vz_response_destroy(&rsp);
    free(body);
    free(one_body);
    vz_client_destroy(&client);
}

static void test_shadow(void **state)
{
    mesh_t *mesh = *state;
    vz_client_t *client = s_client(mesh, NULL);
    answer_t a;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(s_check(client, "10.3.0.1", "", "anonymous", "shadowed", &a), 0);
        assert_true(a.allowed);
        assert_true(a.shadow);
        assert_int_equal(a.retry_after, 0);
    }
    assert_int_equal(a.remaining, 0);
    double shadowed = 0;
    for (int i = 0; i < 2; i++)
        shadowed += s_metric(mesh->admin[i], "vz_ratelimit_decisions_total{policy=\"shadowed\","
                                             "result=\"shadow_denied\"}");
    assert_int_equal((int)shadowed, 3);
    vz_client_destroy(&client);
}

static void s_wait_metric(int port, const char *series, double want)
{
    if (!vzt_wait_metric(port, series, want, 5000))
        fail_msg("%s never reached %g on :%d", series, want, port);
}

//  Replace ratelimit.cfg with text, SIGHUP both replicas and wait until
//  each counts a reload with result ("ok" or "failed").
static void s_reload(mesh_t *mesh, const char *text, const char *result)
{
    assert_int_equal(vzt_mesh_write(mesh->m, "ratelimit.cfg", text), 0);
    for (int i = 0; i < 2; i++)
        kill(vzt_mesh_pid(mesh->m, i ? "ratelimit.1" : "ratelimit.0"), SIGHUP);
    char *series = vzt_fmt("vz_ratelimit_reloads_total{result=\"%s\"}", result);
    for (int i = 0; i < 2; i++)
        s_wait_metric(mesh->admin[i], series, 1);
    free(series);
}

static void test_reload(void **state)
{
    mesh_t *mesh = *state;
    //  "added" goes first, before the catch-all.
    char *text =
        vzt_fmt("ratelimit\n    shadow = \"false\"\npolicy\n    added\n"
                "        route = \"added\"\n        limit = 1\n        window = \"1h\"\n%s",
                strstr(s_policies, "    exact_tb"));
    s_reload(mesh, text, "ok");
    free(text);
    vz_client_t *client = s_client(mesh, NULL);
    answer_t a;
    assert_int_equal(s_check(client, "10.4.0.1", "", "anonymous", "added", &a), 0);
    assert_string_equal(a.policy, "added");
    assert_true(a.allowed);
    assert_int_equal(s_check(client, "10.4.0.1", "", "anonymous", "added", &a), 0);
    assert_false(a.allowed);

    //  An invalid file is refused and the current set kept.
    s_reload(mesh, "policy\n    broken\n        limit = \"lots\"\n", "failed");
    assert_int_equal(s_check(client, "10.4.0.2", "", "anonymous", "added", &a), 0);
    assert_string_equal(a.policy, "added");
    assert_int_equal(vzt_mesh_write(mesh->m, "ratelimit.cfg", s_policies), 0);
    vz_client_destroy(&client);
}

typedef struct {
    const mesh_t *mesh;   //  shared
    atomic_bool stop;     //  set by the test to end the loop
    atomic_int calls;     //  answers received
    atomic_int failures;  //  timeouts or error replies
    atomic_int fail_open; //  answers in mode fail_open
    atomic_int redis;     //  answers in mode redis
    atomic_int max_us;    //  slowest call
    atomic_int last_mode; //  0 redis, 1 fail_open, 2 other
} load_t;

static void *s_load_thread(void *arg)
{
    load_t *load = arg;
    vz_client_config_t config = {.endpoints = load->mesh->endpoint,
                                 .broker_key = load->mesh->broker_key,
                                 .cert = load->mesh->cert};
    vz_client_t *client = vz_client_new(&config);
    while (client && !atomic_load(&load->stop)) {
        answer_t a;
        int64_t t0 = zclock_usecs();
        int rc = s_check(client, "10.5.0.1", "", "anonymous", "load", &a);
        int us = (int)(zclock_usecs() - t0);
        int prev = atomic_load(&load->max_us);
        while (us > prev && !atomic_compare_exchange_weak(&load->max_us, &prev, us))
            ;
        atomic_fetch_add(&load->calls, 1);
        if (rc < 0 || *a.error || !a.allowed)
            atomic_fetch_add(&load->failures, 1);
        else if (strcmp(a.mode, "fail_open") == 0) {
            atomic_fetch_add(&load->fail_open, 1);
            atomic_store(&load->last_mode, 1);
        } else if (strcmp(a.mode, "redis") == 0) {
            atomic_fetch_add(&load->redis, 1);
            atomic_store(&load->last_mode, 0);
        } else
            atomic_store(&load->last_mode, 2);
    }
    vz_client_destroy(&client);
    return NULL;
}

typedef struct {
    load_t *load; //  the threads' tallies
    int mode;     //  wanted last_mode
    int seen;     //  consecutive looks that saw it
} mode_goal_t;

static bool s_mode_seen(void *arg)
{
    mode_goal_t *goal = arg;
    goal->seen = atomic_load(&goal->load->last_mode) == goal->mode ? goal->seen + 1 : 0;
    return goal->seen >= 20;
}

//  Wait until the load threads keep answering in mode (20 looks in a row).
static void s_wait_mode(load_t *load, int mode, const char *what)
{
    mode_goal_t goal = {load, mode, 0};
    if (!vzt_wait_until(s_mode_seen, &goal, 10000))
        fail_msg("never saw %s answers", what);
}

typedef struct {
    int port;           //  admin port
    long want;          //  /readyz status
    const char *reason; //  text the body must hold, or NULL
} ready_goal_t;

static bool s_ready_is(void *arg)
{
    ready_goal_t *goal = arg;
    char *body = NULL;
    long status = s_readyz(goal->port, &body);
    bool ok = status == goal->want && (!goal->reason || (body && strstr(body, goal->reason)));
    free(body);
    return ok;
}

static void s_wait_ready(int port, long want, const char *reason)
{
    ready_goal_t goal = {port, want, reason};
    if (!vzt_wait_until(s_ready_is, &goal, 10000))
        fail_msg("readyz on :%d never became %ld %s", port, want, reason ? reason : "");
}

//  Redis hung, then gone, then back, while two threads keep calling.
static void test_redis_outage(void **state)
{
    mesh_t *mesh = *state;
    load_t load = {.mesh = mesh};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, s_load_thread, &load), 0);
    s_wait_mode(&load, 0, "redis");
    //  The fail-open divisor each replica took from broker.services.
    for (int i = 0; i < 2; i++)
        assert_true(vzt_wait_metric(mesh->admin[i], "vz_ratelimit_replicas", 2, 10000));

    //  Hung: every call still answers, bounded by the 20 ms Redis timeout.
    kill(vzt_mesh_pid(mesh->m, "redis"), SIGSTOP);
    s_wait_mode(&load, 1, "fail_open (redis hung)");
    for (int i = 0; i < 2; i++)
        s_wait_ready(mesh->admin[i], 503, "redis unreachable");
    kill(vzt_mesh_pid(mesh->m, "redis"), SIGCONT);
    s_wait_mode(&load, 0, "redis (after SIGCONT)");

    //  Stopped: fail_open, not ready, gauge and errors; then restarted.
    assert_int_equal(vzt_mesh_stop(mesh->m, "redis"), 0);
    s_wait_mode(&load, 1, "fail_open (redis stopped)");
    for (int i = 0; i < 2; i++) {
        s_wait_ready(mesh->admin[i], 503, "redis unreachable");
        assert_int_equal((int)s_metric(mesh->admin[i], "vz_ratelimit_fallback_active"), 1);
        assert_true(s_metric(mesh->admin[i], "vz_ratelimit_redis_errors_total") > 0);
    }
    //  Fail-open buckets hold limit/replicas each: 10/2 = 5 per replica
    //  (the replica count from the broker: a constant 1 would show 10).
    vz_client_t *client = s_client(mesh, NULL);
    int allowed = 0;
    for (int i = 0; i < 30; i++) {
        answer_t a;
        assert_int_equal(s_check(client, "10.5.0.2", "", "anonymous", "small", &a), 0);
        assert_string_equal(a.mode, "fail_open");
        assert_int_equal(a.limit, 5);
        allowed += a.allowed;
    }
    assert_true(allowed >= 5 && allowed <= 10);
    vz_client_destroy(&client);

    assert_int_equal(vzt_mesh_restart(mesh->m, "redis"), 0);
    s_wait_mode(&load, 0, "redis (restarted)");
    for (int i = 0; i < 2; i++) {
        s_wait_ready(mesh->admin[i], 200, NULL);
        assert_int_equal((int)s_metric(mesh->admin[i], "vz_ratelimit_fallback_active"), 0);
    }
    atomic_store(&load.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    fprintf(stderr, "outage: %d calls, %d fail_open, %d redis, slowest %d us\n",
            atomic_load(&load.calls), atomic_load(&load.fail_open), atomic_load(&load.redis),
            atomic_load(&load.max_us));
    assert_int_equal(atomic_load(&load.failures), 0);
    assert_true(atomic_load(&load.fail_open) > 0);
    //  Nobody waited on Redis: far below the 5 s call timeout, and within
    //  a generous margin of the 20 ms Redis timeout under sanitizers.
    assert_true(atomic_load(&load.max_us) < 500000);
}

//  A replica started with no Redis is alive and not ready, answers in its
//  failure mode (here closed), and becomes ready when Redis appears.
static void test_start_without_redis(void **state)
{
    (void)state;
    //  A mesh of its own (a broker only, no Redis yet), so no other replica answers.
    const char *const files[] = {"ratelimit.cfg", s_policies, NULL};
    vzt_mesh_t *m = vzt_mesh_start(&(vzt_mesh_opts_t){
        .tag = "rl-noredis", .no_redis = true, .identities = "ratelimit,gateway", .files = files});
    assert_non_null(m);
    char *const env[] = {"VZ_RATELIMIT_FAILURE_MODE=closed", "VZ_RATELIMIT_REDIS_RETRY_MS=50",
                         NULL};
    assert_non_null(vzt_mesh_add(m, "ratelimit", "ratelimit", env, false));
    int admin = vzt_mesh_admin_port(m, "ratelimit");
    s_wait_ready(admin, 503, "redis unreachable");
    vz_client_t *client = vzt_mesh_client(m, "gateway");
    assert_non_null(client);
    answer_t a;
    assert_int_equal(s_check(client, "10.6.0.1", "", "anonymous", "small", &a), 0);
    assert_string_equal(a.error, "");
    assert_string_equal(a.mode, "fail_closed");
    assert_false(a.allowed);
    assert_true(a.retry_after >= 1);
    assert_int_equal(vzt_mesh_wait(m, "ratelimit", 0), -ETIMEDOUT); //  still running

    assert_non_null(vzt_mesh_add(m, "redis", "redis", NULL, true));
    s_wait_ready(admin, 200, NULL);
    assert_int_equal(s_check(client, "10.6.0.1", "", "anonymous", "small", &a), 0);
    assert_string_equal(a.mode, "redis");
    assert_true(a.allowed);
    vz_client_destroy(&client);
    assert_int_equal(vzt_mesh_destroy(&m), 0);
}

static void test_bad_config(void **state)
{
    mesh_t *mesh = *state;
    assert_int_equal(
        vzt_mesh_write(mesh->m, "bad.cfg",
                       "policy\n    p\n        limit = 10\n        algorithm = \"leaky\"\n"),
        0);
    char *path = vzt_mesh_path(mesh->m, "bad.cfg");
    char *pol = vzt_fmt("VZ_RATELIMIT_POLICY=%s", path);
    const char *cases[][2] = {{pol, NULL}, {"VZ_RATELIMIT_FAILURE_MODE=maybe", NULL}};
    for (size_t i = 0; i < 2; i++) {
        char *const env[] = {(char *)cases[i][0], NULL};
        char tag[32];
        snprintf(tag, sizeof tag, "ratelimit.bad%zu", i);
        assert_non_null(vzt_mesh_add(mesh->m, "ratelimit", tag, env, false));
        assert_int_equal(vzt_mesh_wait(mesh->m, tag, 10000), 100);
    }
    free(pol);
    free(path);
}

//  Every documented series is exported, and promtool (when present)
//  accepts the page.
static void test_metrics(void **state)
{
    mesh_t *mesh = *state;
    char *body = NULL;
    assert_int_equal(vzt_metrics_page(mesh->admin[0], &body), 0);
    static const char *const names[] = {
        "vz_ratelimit_decisions_total{policy=\"small\",result=\"allowed\"}",
        "vz_ratelimit_near_limit_total{policy=",
        "vz_ratelimit_redis_duration_seconds_bucket{le=",
        "vz_ratelimit_fallback_active ",
        "vz_ratelimit_redis_errors_total ",
        "vz_ratelimit_reloads_total{result=\"failed\"}",
        NULL};
    const char *missing = vzt_metrics_lack(body, names);
    if (missing)
        fail_msg("metrics lack %s", missing);
    if (access("/usr/bin/promtool", X_OK) == 0) {
        assert_int_equal(vzt_mesh_write(mesh->m, "metrics.txt", body), 0);
        char *path = vzt_mesh_path(mesh->m, "metrics.txt");
        char *cmd = vzt_fmt("/usr/bin/promtool check metrics < %s", path);
        assert_int_equal(system(cmd), 0);
        free(cmd);
        free(path);
    }
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_answers),
        cmocka_unit_test(test_exact_token_bucket),
        cmocka_unit_test(test_exact_sliding_window),
        cmocka_unit_test(test_pipelined_batches),
        cmocka_unit_test(test_check_batch),
        cmocka_unit_test(test_shadow),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_redis_outage),
        cmocka_unit_test(test_start_without_redis),
        cmocka_unit_test(test_bad_config),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
