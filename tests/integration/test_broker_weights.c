/*  test_broker_weights - the broker splits a service between versions by weight
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh: the broker with a weights file (VZ_BROKER_WEIGHTS) and two
 *  echo workers announcing versions 1.0.0 and 1.1.0 (VZ_SERVICE_VERSION,
 *  the same binary). Which version served a request is read from the
 *  broker's vz_broker_version_requests_total. The test shows
 *    - traffic per version follows the weights (75/25) within a printed
 *      tolerance;
 *    - with weights sticky by ctx "sub", every request of one subject goes
 *      to one version, and a subject on the canary stays there when the
 *      canary's share grows (10 % -> 50 %);
 *    - weights rewritten and reloaded (SIGHUP) many times under pipelined
 *      load, and the canary stopped in the middle, lose no request;
 *    - a weighted version without a worker does not strand requests: they
 *      go to the workers there are;
 *    - a rewritten file is taken without a signal (the broker polls its
 *      stamp: a ConfigMap mounted into several replicas), also when the new
 *      content has the old one's size.
 *  Every wait polls through vzt_wait_until.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vz_batch.h"
#include "vz_client.h"
#include "vz_proto.h"

#define S_WAIT_MS 15000
#define S_SPLIT 400      //  requests of the weight test
#define S_TOLERANCE 0.02 //  allowed distance of a version's share from its weight
#define S_KEYS 40        //  subjects of the stickiness test
#define S_PER_KEY 5      //  requests per subject
#define S_ROUNDS 10      //  reloads under load
#define S_PER_ROUND 200  //  requests in flight at each reload

typedef struct {
    vzt_mesh_t *m;       //  the mesh
    vz_client_t *client; //  as "tester"
    int admin;           //  broker admin port
} s_env_t;

static int s_setup(void **state)
{
    static char *const env[] = {"broker:VZ_BROKER_WEIGHTS={dir}/weights.cfg", "VZ_TELEMETRY=off",
                                NULL};
    static const char *const files[] = {"weights.cfg",
                                        "echo\n    versions = \"1.0.0=75 1.1.0=25\"\n", NULL};
    s_env_t *e = calloc(1, sizeof *e);
    e->m = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "broker-weights",
                                             .daemons = "",
                                             .identities = "tester,echo",
                                             .env = env,
                                             .files = files});
    assert_non_null(e->m);
    char *const old[] = {"VZ_SERVICE_VERSION=1.0.0", NULL};
    char *const canary[] = {"VZ_SERVICE_VERSION=1.1.0", NULL};
    assert_non_null(vzt_mesh_add(e->m, "echo", "echo-old", old, true));
    assert_non_null(vzt_mesh_add(e->m, "echo", "echo-new", canary, true));
    e->admin = vzt_mesh_admin_port(e->m, "broker");
    assert_true(vzt_wait_metric(e->admin, "vz_broker_workers{service=\"echo\"}", 2, S_WAIT_MS));
    e->client = vzt_mesh_client(e->m, "tester");
    assert_non_null(e->client);
    *state = e;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *e = *state;
    vz_client_destroy(&e->client);
    int rc = vzt_mesh_destroy(&e->m);
    free(e);
    return rc;
}

//  Requests of version that ended with outcome so far.
static double s_served(s_env_t *e, const char *version, const char *outcome)
{
    char series[160];
    snprintf(series, sizeof series,
             "vz_broker_version_requests_total{service=\"echo\",version=\"%s\",outcome=\"%s\"}",
             version, outcome);
    double value = 0;
    vzt_metric(e->admin, series, &value);
    return value;
}

typedef struct {
    s_env_t *e;
    const char *version;
    double weight;
} s_weight_wait_t;

static bool s_weight_is(void *arg)
{
    s_weight_wait_t *w = arg;
    char series[128];
    snprintf(series, sizeof series, "vz_broker_version_weight{service=\"echo\",version=\"%s\"}",
             w->version);
    double value = -1;
    return vzt_metric(w->e->admin, series, &value) == 0 && value == w->weight;
}

//  Write new weights, SIGHUP the broker, wait until version shows weight.
static void s_reweigh(s_env_t *e, const char *text, const char *version, double weight)
{
    assert_int_equal(vzt_mesh_write(e->m, "weights.cfg", text), 0);
    assert_int_equal(kill(vzt_mesh_pid(e->m, "broker"), SIGHUP), 0);
    s_weight_wait_t w = {e, version, weight};
    assert_true(vzt_wait_until(s_weight_is, &w, S_WAIT_MS));
}

//  One echo call, with subject sub when not NULL; asserts a reply.
static void s_call(s_env_t *e, const char *sub)
{
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    vz_strlcpy(req.service, "echo", sizeof req.service);
    vz_strlcpy(req.method, "echo", sizeof req.method);
    req.body = (const uint8_t *)"x";
    req.body_len = 1;
    if (sub)
        assert_int_equal(vz_envelope_ctx_set(&req, "sub", sub), 0);
    vz_response_t *resp = NULL;
    assert_int_equal(vz_client_call(e->client, &req, 5000, &resp), 0);
    assert_int_equal(resp->env.kind, VZ_KIND_REPLY);
    vz_response_destroy(&resp);
}

static void test_split_follows_weights(void **state)
{
    s_env_t *e = *state;
    s_reweigh(e, "echo\n    versions = \"1.0.0=75 1.1.0=25\"\n", "1.1.0", 25);
    double old0 = s_served(e, "1.0.0", "replied"), new0 = s_served(e, "1.1.0", "replied");
    for (int i = 0; i < S_SPLIT; i++)
        s_call(e, NULL);
    double old = s_served(e, "1.0.0", "replied") - old0;
    double canary = s_served(e, "1.1.0", "replied") - new0;
    double share = canary / (old + canary);
    printf("# weights 75/25: 1.0.0 served %.0f, 1.1.0 served %.0f; canary share %.3f "
           "(want 0.250 +- %.3f)\n",
           old, canary, share, S_TOLERANCE);
    assert_true(old + canary == S_SPLIT);
    assert_true(fabs(share - 0.25) <= S_TOLERANCE);
}

//  A bundle to the weighted service: its version counts each item's answer,
//  so an item that failed inside a reply is an error for a rollout's gate.
static void test_bundle_items_counted(void **state)
{
    s_env_t *e = *state;
    s_reweigh(e, "echo\n    versions = \"1.1.0=100\"\n", "1.1.0", 100);
    double ok0 = s_served(e, "1.1.0", "replied"), bad0 = s_served(e, "1.1.0", "error");
    //  echo.slow: "0" answers ok, "x" and "y" invalid_request.
    const char *bodies[] = {"0", "x", "y"};
    vz_batch_item_t items[3];
    uint8_t *encoded[3];
    for (int i = 0; i < 3; i++) {
        vz_envelope_t item;
        vz_envelope_init(&item, VZ_KIND_REQUEST);
        vz_strlcpy(item.service, "echo", sizeof item.service);
        vz_strlcpy(item.method, "slow", sizeof item.method);
        vz_client_new_id(item.id, sizeof item.id);
        item.deadline_ms = vz_now_ms() + 5000;
        item.body = (const uint8_t *)bodies[i];
        item.body_len = 1;
        assert_int_equal(vz_envelope_encode(&item, &encoded[i], &items[i].len), 0);
        items[i].data = encoded[i];
        items[i].code = "";
    }
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    vz_strlcpy(req.service, "echo", sizeof req.service);
    vz_strlcpy(req.method, "slow", sizeof req.method);
    req.flags |= VZ_FLAG_BUNDLE;
    size_t len = 0;
    uint8_t *body = vz_batch_request_encode(items, 3, &len);
    req.body = body;
    req.body_len = len;
    vz_response_t *resp = NULL;
    assert_int_equal(vz_client_call(e->client, &req, 5000, &resp), 0);
    assert_int_equal(resp->env.kind, VZ_KIND_REPLY); //  the bundle itself replied
    vz_response_destroy(&resp);
    free(body);
    for (int i = 0; i < 3; i++)
        free(encoded[i]);
    double ok = s_served(e, "1.1.0", "replied") - ok0, bad = s_served(e, "1.1.0", "error") - bad0;
    printf("# bundle of 3 (1 ok, 2 invalid): 1.1.0 replied %.0f, error %.0f\n", ok, bad);
    assert_true(ok == 1 && bad == 2);
}

static void test_sticky_subjects(void **state)
{
    s_env_t *e = *state;
    s_reweigh(e, "echo\n    versions = \"1.0.0=90 1.1.0=10\"\n    sticky = \"sub\"\n", "1.1.0", 10);
    bool on_canary[S_KEYS];
    int canaries = 0;
    for (int step = 0; step < 2; step++) {
        int moved_back = 0, now_canary = 0;
        for (int k = 0; k < S_KEYS; k++) {
            char sub[32];
            snprintf(sub, sizeof sub, "user-%d", k);
            double old0 = s_served(e, "1.0.0", "replied"), new0 = s_served(e, "1.1.0", "replied");
            for (int i = 0; i < S_PER_KEY; i++)
                s_call(e, sub);
            double old = s_served(e, "1.0.0", "replied") - old0;
            double canary = s_served(e, "1.1.0", "replied") - new0;
            //  One subject, one version.
            assert_true((old == S_PER_KEY && canary == 0) || (old == 0 && canary == S_PER_KEY));
            if (step == 0) {
                on_canary[k] = canary > 0;
                canaries += on_canary[k];
            } else {
                moved_back += on_canary[k] && canary == 0;
                now_canary += canary > 0;
            }
        }
        if (step == 0) {
            printf("# sticky at 10 %%: %d of %d subjects on 1.1.0\n", canaries, S_KEYS);
            s_reweigh(e, "echo\n    versions = \"1.0.0=50 1.1.0=50\"\n    sticky = \"sub\"\n",
                      "1.1.0", 50);
        } else {
            printf("# sticky at 50 %%: %d of %d subjects on 1.1.0, %d moved back\n", now_canary,
                   S_KEYS, moved_back);
            //  Growing the canary's share only moves subjects onto it.
            assert_int_equal(moved_back, 0);
            assert_true(now_canary >= canaries);
            assert_true(now_canary > 0 && now_canary < S_KEYS);
        }
    }
}

//  Pipelined requests while the weights change under them and the canary
//  leaves: every request gets its reply.
static void test_reload_under_load(void **state)
{
    s_env_t *e = *state;
    static const char *const texts[] = {
        "echo\n    versions = \"1.0.0=50 1.1.0=50\"\n",
        "echo\n    versions = \"1.0.0=1 1.1.0=99\"\n    sticky = \"sub\"\n",
        "echo\n    versions = \"1.0.0=100 1.1.0=0\"\n",
    };
    static const double canary_weight[] = {50, 99, 0};
    int replied = 0, failed = 0;
    for (int round = 0; round < S_ROUNDS; round++) {
        for (int i = 0; i < S_PER_ROUND; i++) {
            vz_envelope_t req;
            vz_envelope_init(&req, VZ_KIND_REQUEST);
            vz_strlcpy(req.service, "echo", sizeof req.service);
            vz_strlcpy(req.method, "echo", sizeof req.method);
            vz_client_new_id(req.id, sizeof req.id);
            req.deadline_ms = vz_now_ms() + 10000;
            char sub[16];
            snprintf(sub, sizeof sub, "u%d", i % 17);
            vz_envelope_ctx_set(&req, "sub", sub);
            assert_int_equal(vz_client_send(e->client, &req), 0);
        }
        //  Reload while those are queued or in flight; stop the canary halfway.
        s_reweigh(e, texts[round % 3], "1.1.0", canary_weight[round % 3]);
        if (round == S_ROUNDS / 2)
            assert_int_equal(vzt_mesh_stop(e->m, "echo-new"), 0);
        for (int i = 0; i < S_PER_ROUND; i++) {
            vz_response_t *resp = NULL;
            zmq_pollitem_t item = {zsock_resolve(vz_client_sock(e->client)), 0, ZMQ_POLLIN, 0};
            int rc = -EAGAIN;
            while (rc == -EAGAIN && zmq_poll(&item, 1, 10000) > 0)
                rc = vz_client_recv(e->client, &resp);
            assert_int_equal(rc, 0);
            if (resp->env.kind == VZ_KIND_REPLY)
                replied++;
            else {
                failed++;
                fprintf(stderr, "# failed: %s %s\n", resp->env.error_code, resp->env.error_message);
            }
            vz_response_destroy(&resp);
        }
    }
    printf("# %d reloads under load, canary stopped after %d: %d replied, %d failed\n", S_ROUNDS,
           S_ROUNDS / 2 + 1, replied, failed);
    assert_int_equal(failed, 0);
    assert_int_equal(replied, S_ROUNDS * S_PER_ROUND);
}

//  Only the stopped canary is weighted: requests still find a worker.
static void test_weighted_version_without_worker(void **state)
{
    s_env_t *e = *state;
    s_reweigh(e, "echo\n    versions = \"1.0.0=0 1.1.0=100\"\n", "1.1.0", 100);
    double old0 = s_served(e, "1.0.0", "replied");
    for (int i = 0; i < 20; i++)
        s_call(e, NULL);
    assert_true(s_served(e, "1.0.0", "replied") - old0 == 20);
}

//  No SIGHUP: the broker sees the file change within WEIGHTS_POLL_MS (1 s).
static void test_reload_without_signal(void **state)
{
    s_env_t *e = *state;
    const char *texts[][2] = {{"echo\n    versions = \"1.0.0=30 1.1.0=70\"\n", "70"},
                              {"echo\n    versions = \"1.0.0=70 1.1.0=30\"\n", "30"}};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(vzt_mesh_write(e->m, "weights.cfg", texts[i][0]), 0);
        s_weight_wait_t w = {e, "1.1.0", atof(texts[i][1])};
        if (!vzt_wait_until(s_weight_is, &w, S_WAIT_MS))
            fail_msg("the broker did not take weight %s for 1.1.0 without a signal", texts[i][1]);
    }
}

//  While weights split echo, callers are told not to call its workers
//  directly (only a broker routes by version); without weights for echo
//  its workers are listed (docs/protocol.md, "Direct calls").
static void test_directory_while_weighted(void **state)
{
    s_env_t *e = *state;
    vz_broker_direct_t list[VZ_BROKER_DIRECT_MAX];
    size_t n = 0;
    char code[VZ_NAME_MAX];
    s_reweigh(e, "echo\n    versions = \"1.0.0=90 1.1.0=10\"\n", "1.1.0", 10);
    assert_int_equal(vzt_directory(e->client, "echo", list, VZ_BROKER_DIRECT_MAX, &n, code,
                                   sizeof code),
                     0);
    assert_string_equal(code, "");
    assert_int_equal(n, 0);
    //  Weights for another service only: echo is direct again.
    s_reweigh(e, "other\n    versions = \"1.0.0=100\"\n", "1.1.0", 0);
    assert_int_equal(vzt_directory(e->client, "echo", list, VZ_BROKER_DIRECT_MAX, &n, code,
                                   sizeof code),
                     1);
    //  Every registered worker (an earlier test stopped the canary).
    double workers = 0;
    assert_int_equal(vzt_metric(e->admin, "vz_broker_workers{service=\"echo\"}", &workers), 0);
    assert_true(workers >= 1);
    assert_int_equal(n, (size_t)workers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_follows_weights),
        cmocka_unit_test(test_bundle_items_counted),
        cmocka_unit_test(test_sticky_subjects),
        cmocka_unit_test(test_reload_under_load),
        cmocka_unit_test(test_weighted_version_without_worker),
        cmocka_unit_test(test_reload_without_signal),
        cmocka_unit_test(test_directory_while_weighted),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
