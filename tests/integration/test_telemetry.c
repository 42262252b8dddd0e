/*  test_telemetry - the sink in a live mesh: counts and percentiles that add up
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh for the group: Redis, the broker, vz-telemetry and vz-echo,
 *  every daemon reporting every 200 ms (VZ_TELEMETRY_INTERVAL_MS).
 *    - vz-echo under load from the test: the sink's request counts for
 *      echo (through the hook in vz_daemon_serve, nothing in echo's code)
 *      equal what the test sent, less what the reporter counted as lost,
 *      with errors by code; the SLO counts agree.
 *    - the test as a reporter of its own ("tester"): durations of a known,
 *      spread-out distribution through vz_telemetry and vz_event; the
 *      sink's p50/p95/p99 agree with the exact ones the test computes from
 *      the same values, within the documented relative error.
 *    - refusals: a snapshot for another service, a malformed one.
 *  Every wait is bounded and polls through vzt_wait_until.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vz_client.h"
#include "vz_event.h"
#include "vz_json.h"
#include "vz_proto.h"
#include "vz_telemetry.h"
#include "vz_worker.h"

#define S_WAIT_MS 15000
#define S_ECHO_N 3000 //  echo.echo calls
#define S_BAD_N 40    //  echo.slow calls with a refused body

static const char s_slo[] = "slo\n"
                            "    echo-availability\n"
                            "        objective = \"availability\"\n"
                            "        target = \"99.9\"\n"
                            "        service = \"echo\"\n"
                            "        match = \"*\"\n"
                            "    tester-availability\n"
                            "        objective = \"availability\"\n"
                            "        target = \"99.9\"\n"
                            "        service = \"tester\"\n"
                            "        match = \"*\"\n"
                            "alerting\n"
                            "    min_events = \"10\"\n"
                            "    pending = \"0s\"\n";

typedef struct {
    vzt_mesh_t *m;       //  the mesh
    vz_client_t *client; //  as "tester"
} s_env_t;

static int s_setup(void **state)
{
    static char *const env[] = {"VZ_TELEMETRY_INTERVAL_MS=200",
                                "echo:VZ_SERVICE_VERSION=2.0.1",
                                "telemetry:VZ_TELEMETRY_SLO={dir}/slo.cfg",
                                "telemetry:VZ_TELEMETRY_EVAL_MS=200",
                                "telemetry:VZ_TELEMETRY_READERS=tester",
                                NULL};
    static const char *const files[] = {"slo.cfg", s_slo, NULL};
    s_env_t *e = calloc(1, sizeof *e);
    e->m = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "telemetry",
                                             .daemons = "telemetry,echo",
                                             .identities = "tester,stranger,notifier",
                                             .env = env,
                                             .files = files});
    assert_non_null(e->m);
    vz_client_config_t config = {.endpoints = vzt_mesh_endpoint(e->m),
                                 .broker_key = vzt_mesh_broker_key(e->m),
                                 .cert = vzt_mesh_cert(e->m, "tester")};
    e->client = vz_client_new(&config);
    assert_non_null(e->client);
    *state = e;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *e = *state;
    vz_client_destroy(&e->client);
    vzt_mesh_destroy(&e->m);
    free(e);
    return 0;
}

//  service.method(body) as "tester"; the response (caller destroys) or fail.
static vz_response_t *s_call(s_env_t *e, const char *service, const char *method, const char *body)
{
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    snprintf(req.service, sizeof req.service, "%s", service);
    snprintf(req.method, sizeof req.method, "%s", method);
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    vz_response_t *resp = NULL;
    if (vz_client_call(e->client, &req, 5000, &resp) != 0)
        fail_msg("%s.%s: no answer", service, method);
    return resp;
}

//  telemetry.signals for service as a parsed document (caller destroys).
static vz_json_t *s_signals(s_env_t *e, const char *service)
{
    char body[128];
    snprintf(body, sizeof body, "{\"service\":\"%s\",\"window_s\":3600}", service);
    vz_response_t *resp = s_call(e, "telemetry", "signals", body);
    assert_int_equal(resp->env.kind, VZ_KIND_REPLY);
    vz_json_t *doc = vz_json_parse(resp->env.body, resp->env.body_len, NULL, NULL);
    assert_non_null(doc);
    vz_response_destroy(&resp);
    return doc;
}

//  The one service object of a signals reply, or NULL.
static const vz_json_value_t *s_service(const vz_json_t *doc)
{
    const vz_json_value_t *services = vz_json_get(vz_json_root(doc), "services");
    return vz_json_size(services) == 1 ? vz_json_at(services, 0) : NULL;
}

static int64_t s_int(const vz_json_value_t *object, const char *key)
{
    int64_t n = -1;
    vz_json_int(vz_json_get(object, key), &n);
    return n;
}

static const vz_json_value_t *s_series(const vz_json_value_t *svc, const char *name)
{
    const vz_json_value_t *series = vz_json_get(svc, "series");
    for (size_t i = 0; i < vz_json_size(series); i++)
        if (strcmp(vz_json_get_string(vz_json_at(series, i), "name", NULL), name) == 0)
            return vz_json_at(series, i);
    return NULL;
}

typedef struct {
    s_env_t *e;          //  the group's state
    const char *service; //  whose totals
    int64_t want;        //  requests sent
    int64_t seen;        //  series counts + lost, last poll
} s_total_t;

//  Everything sent is accounted for: delivered in series, or counted lost.
static bool s_accounted(void *arg)
{
    s_total_t *t = arg;
    vz_json_t *doc = s_signals(t->e, t->service);
    const vz_json_value_t *svc = s_service(doc);
    int64_t sum = 0;
    if (svc) {
        const vz_json_value_t *series = vz_json_get(svc, "series");
        for (size_t i = 0; i < vz_json_size(series); i++)
            sum += s_int(vz_json_at(series, i), "count");
        sum += s_int(vz_json_get(svc, "totals"), "lost");
    }
    vz_json_destroy(&doc);
    t->seen = sum;
    return sum >= t->want;
}

static void test_echo_counts(void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < S_ECHO_N; i++) {
        vz_response_t *resp = s_call(e, "echo", "echo", "x");
        assert_int_equal(resp->env.kind, VZ_KIND_REPLY);
        vz_response_destroy(&resp);
    }
    for (int i = 0; i < S_BAD_N; i++) {
        vz_response_t *resp = s_call(e, "echo", "slow", "not a number");
        assert_int_equal(resp->env.kind, VZ_KIND_ERROR);
        vz_response_destroy(&resp);
    }
    s_total_t t = {e, "echo", S_ECHO_N + S_BAD_N, 0};
    bool done = vzt_wait_until(s_accounted, &t, S_WAIT_MS);
    if (!done)
        fail_msg("sink accounts for %lld of %d requests", (long long)t.seen, S_ECHO_N + S_BAD_N);
    //  Exactly: nothing counted twice either.
    assert_int_equal(t.seen, S_ECHO_N + S_BAD_N);

    vz_json_t *doc = s_signals(e, "echo");
    const vz_json_value_t *svc = s_service(doc);
    const vz_json_value_t *totals = vz_json_get(svc, "totals");
    int64_t lost = s_int(totals, "lost");
    const vz_json_value_t *echo = s_series(svc, "echo");
    const vz_json_value_t *slow = s_series(svc, "slow");
    assert_non_null(echo);
    assert_non_null(slow);
    //  Our load saw no drop (the reporter counts them: they would be "lost").
    assert_int_equal(lost, 0);
    assert_int_equal(s_int(echo, "count"), S_ECHO_N);
    assert_int_equal(s_int(vz_json_get(echo, "codes"), "ok"), S_ECHO_N);
    assert_int_equal(s_int(slow, "count"), S_BAD_N);
    assert_int_equal(s_int(vz_json_get(slow, "codes"), "invalid_request"), S_BAD_N);
    double ratio = 0;
    assert_int_equal(vz_json_double(vz_json_get(slow, "error_ratio"), &ratio), 0);
    assert_true(ratio == 1.0);
    //  Saturation of the one echo replica, fresh.
    const vz_json_value_t *sat = vz_json_get(svc, "saturation");
    assert_int_equal(vz_json_size(sat), 1);
    assert_true(s_int(vz_json_at(sat, 0), "rss_bytes") > 1000000);
    assert_true(s_int(vz_json_at(sat, 0), "open_fds") > 3);
    assert_true(s_int(vz_json_at(sat, 0), "age_s") <= 5);
    //  Per version (the snapshots' service_version): every series of echo 2.0.1.
    const vz_json_value_t *versions = vz_json_get(svc, "versions");
    assert_int_equal(vz_json_size(versions), 1);
    const vz_json_value_t *v = vz_json_at(versions, 0);
    assert_string_equal(vz_json_get_string(v, "version", NULL), "2.0.1");
    assert_int_equal(s_int(v, "count"), S_ECHO_N + S_BAD_N);
    assert_int_equal(s_int(vz_json_get(v, "codes"), "invalid_request"), S_BAD_N);
    vz_json_destroy(&doc);
    //  The same on the sink's /metrics, what vzctl rollout's gates read.
    int admin = vzt_mesh_admin_port(e->m, "telemetry");
    double n = -1;
    assert_int_equal(vzt_metric(admin,
                                "vz_telemetry_version_requests_total{service=\"echo\","
                                "version=\"2.0.1\",outcome=\"ok\"}",
                                &n),
                     0);
    assert_true(n == S_ECHO_N);
    assert_int_equal(vzt_metric(admin,
                                "vz_telemetry_version_requests_total{service=\"echo\","
                                "version=\"2.0.1\",outcome=\"error\"}",
                                &n),
                     0);
    assert_true(n == S_BAD_N);
    assert_int_equal(vzt_metric(admin,
                                "vz_telemetry_version_request_duration_seconds_count{service="
                                "\"echo\",version=\"2.0.1\"}",
                                &n),
                     0);
    assert_true(n == S_ECHO_N + S_BAD_N);

    //  The SLO counted the same requests; client errors spend no budget.
    vz_response_t *resp = s_call(e, "telemetry", "slo", "");
    assert_int_equal(resp->env.kind, VZ_KIND_REPLY);
    doc = vz_json_parse(resp->env.body, resp->env.body_len, NULL, NULL);
    vz_response_destroy(&resp);
    const vz_json_value_t *slo = vz_json_at(vz_json_get(vz_json_root(doc), "slos"), 0);
    assert_string_equal(vz_json_get_string(slo, "name", NULL), "echo-availability");
    assert_int_equal(s_int(slo, "requests"), S_ECHO_N + S_BAD_N);
    assert_int_equal(s_int(slo, "bad"), 0);
    bool freeze = true;
    assert_int_equal(vz_json_bool(vz_json_get(vz_json_root(doc), "deploy_freeze"), &freeze), 0);
    assert_false(freeze);
    vz_json_destroy(&doc);
}

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    vz_event_t *event;  //  the test's own event socket, as "tester"
    vz_telemetry_t *tl; //  its reporter, sending through event
} s_tx_t;

static int s_tx_send(void *arg, const char *body, size_t len)
{
    return vz_event_send(((s_tx_t *)arg)->event, "telemetry", "ingest", body, len);
}

//  The test as the reporter of service "tester". Close it only once the
//  sink has what was sent: the event socket drops what is queued (linger 0).
static void s_tx_open(s_env_t *e, s_tx_t *tx)
{
    vz_event_config_t ec = {
        .broker = {vzt_mesh_endpoint(e->m), vzt_mesh_broker_key(e->m),
                   vzt_mesh_cert(e->m, "tester")},
    };
    tx->event = vz_event_new(&ec);
    assert_non_null(tx->event);
    vz_telemetry_config_t tc = {.service = "tester", .send = s_tx_send, .arg = tx};
    tx->tl = vz_telemetry_new(&tc);
}

static void s_tx_close(s_tx_t *tx)
{
    vz_telemetry_destroy(&tx->tl);
    vz_event_destroy(&tx->event);
}

//  The test reports durations it knows (log-normal-ish, 50 us .. ~2 s) over
//  several snapshots; the sink's quantiles are the exact ones within the
//  documented relative error.
static void test_percentiles(void **state)
{
    s_env_t *e = *state;
    s_tx_t tx;
    s_tx_open(e, &tx);
    vz_telemetry_t *tl = tx.tl;
    enum { N = 5000, SNAPSHOTS = 5 };
    int64_t *values = malloc(N * sizeof *values);
    unsigned seed = 19;
    for (int i = 0; i < N; i++) {
        double u = (double)rand_r(&seed) / RAND_MAX, v = (double)rand_r(&seed) / RAND_MAX;
        values[i] = 50 + (int64_t)(exp(4 + 6 * u * v) * (1 + u));
        vz_telemetry_record(tl, "work", NULL, values[i]);
        if ((i + 1) % (N / SNAPSHOTS) == 0)
            assert_int_equal(vz_telemetry_flush(tl, vz_now_ms()), 0);
    }
    s_total_t t = {e, "tester", N, 0};
    if (!vzt_wait_until(s_accounted, &t, S_WAIT_MS))
        fail_msg("sink has %lld of %d values", (long long)t.seen, N);
    qsort(values, N, sizeof *values, s_cmp);
    vz_json_t *doc = s_signals(e, "tester");
    const vz_json_value_t *work = s_series(s_service(doc), "work");
    assert_int_equal(s_int(work, "count"), N);
    const vz_json_value_t *latency = vz_json_get(work, "latency_ms");
    const struct {
        const char *key;
        double q;
    } qs[] = {{"p50", 0.50}, {"p95", 0.95}, {"p99", 0.99}};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        double got_ms = 0;
        assert_int_equal(vz_json_double(vz_json_get(latency, qs[k].key), &got_ms), 0);
        double exact_us = (double)values[(size_t)ceil(qs[k].q * N) - 1];
        double err = fabs(got_ms * 1000.0 - exact_us) / exact_us;
        if (err > VZ_TL_REL_ERROR)
            fail_msg("%s: sink %.3f ms, exact %.3f ms (error %.4f)", qs[k].key, got_ms,
                     exact_us / 1000.0, err);
    }
    vz_json_destroy(&doc);
    free(values);
    s_tx_close(&tx);
}

//  A daemon reports for itself only; malformed snapshots are refused.
static void test_refusals(void **state)
{
    s_env_t *e = *state;
    vz_response_t *resp = s_call(e, "telemetry", "ingest",
                                 "{\"v\":1,\"service\":\"echo\",\"replica\":0,\"pid\":1,\"t\":1,"
                                 "\"interval_ms\":1,\"seq\":0,\"lost\":0,\"dropped\":0,"
                                 "\"sat\":{\"cpu\":0,\"rss\":0,\"fds\":0},\"series\":[]}");
    assert_int_equal(resp->env.kind, VZ_KIND_ERROR);
    assert_string_equal(resp->env.error_code, VZ_ERR_FORBIDDEN);
    vz_response_destroy(&resp);
    const char *bad[] = {
        "not json",
        "{\"v\":2}",
        //  bins that do not add up to the count
        "{\"v\":1,\"service\":\"tester\",\"replica\":0,\"pid\":1,\"t\":1,\"interval_ms\":1,"
        "\"seq\":0,\"lost\":0,\"dropped\":0,\"sat\":{\"cpu\":0,\"rss\":0,\"fds\":0},"
        "\"series\":[{\"name\":\"w\",\"count\":2,\"sum_us\":2,\"codes\":{\"ok\":2},"
        "\"bins\":[[3,1]]}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resp = s_call(e, "telemetry", "ingest", bad[i]);
        assert_int_equal(resp->env.kind, VZ_KIND_ERROR);
        assert_string_equal(resp->env.error_code, VZ_ERR_INVALID);
        vz_response_destroy(&resp);
    }
    //  Any daemon may report; only the configured identities may read.
    vz_client_config_t config = {.endpoints = vzt_mesh_endpoint(e->m),
                                 .broker_key = vzt_mesh_broker_key(e->m),
                                 .cert = vzt_mesh_cert(e->m, "stranger")};
    vz_client_t *stranger = vz_client_new(&config);
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    strcpy(req.service, "telemetry");
    strcpy(req.method, "signals");
    assert_int_equal(vz_client_call(stranger, &req, 5000, &resp), 0);
    assert_int_equal(resp->env.kind, VZ_KIND_ERROR);
    assert_string_equal(resp->env.error_code, VZ_ERR_FORBIDDEN);
    vz_response_destroy(&resp);
    vz_client_destroy(&stranger);
    double refused = 0;
    assert_int_equal(vzt_metric(vzt_mesh_admin_port(e->m, "telemetry"),
                                "vz_telemetry_snapshots_total{outcome=\"refused\"}", &refused),
                     0);
    assert_true(refused >= 4);
}

//  --------------------------------------------------------------------------
//  A stand-in notifier: a vz_worker serving "notifier" in an actor, which
//  passes the body of every notifier.send up its pipe.

typedef struct {
    zsock_t *pipe; //  to the test
} s_nt_t;

static int s_nt_send(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    s_nt_t *nt = app;
    zsock_send(nt->pipe, "sb", "SEND", req->body, req->body_len);
    return vz_reply_body(reply, "", 0);
}

static const vz_method_t s_nt_methods[] = {{"send", s_nt_send, 0, 0}};

static int s_nt_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    char *cmd = zstr_recv(pipe);
    bool term = !cmd || strcmp(cmd, "$TERM") == 0;
    zstr_free(&cmd);
    return term ? -1 : 0;
}

static void s_nt_actor(zsock_t *pipe, void *arg)
{
    vzt_mesh_t *m = arg;
    s_nt_t nt = {pipe};
    vz_worker_config_t config = {.service = "notifier",
                                 .endpoints = vzt_mesh_endpoint(m),
                                 .broker_key = vzt_mesh_broker_key(m),
                                 .cert = vzt_mesh_cert(m, "notifier"),
                                 .heartbeat_ms = 200};
    vz_worker_t *worker = vz_worker_new(&config, s_nt_methods, 1, &nt);
    zloop_t *loop = zloop_new();
    zloop_reader(loop, pipe, s_nt_pipe, NULL);
    if (worker)
        vz_worker_attach(worker, loop);
    zsock_signal(pipe, worker ? 0 : 1);
    zloop_start(loop);
    zloop_destroy(&loop);
    vz_worker_destroy(&worker);
}

//  An injected failure rate on "tester" pages (pagerduty, critical) and
//  opens a ticket (slack, warning) at the notifier, with the dedup keys
//  the alert table shows; the spent budget freezes deploys.
static void test_alert_reaches_notifier(void **state)
{
    s_env_t *e = *state;
    zactor_t *nt = zactor_new(s_nt_actor, e->m);
    assert_non_null(nt);
    s_tx_t tx;
    s_tx_open(e, &tx);
    vz_telemetry_t *tl = tx.tl;
    for (int i = 0; i < 200; i++)
        vz_telemetry_record(tl, "work", VZ_ERR_INTERNAL, 1000);
    assert_int_equal(vz_telemetry_flush(tl, vz_now_ms()), 0);

    bool page = false, ticket = false;
    zpoller_t *poller = zpoller_new(zactor_sock(nt), NULL);
    int64_t until = zclock_mono() + S_WAIT_MS;
    while (!(page && ticket) && zclock_mono() < until) {
        if (!zpoller_wait(poller, (int)(until - zclock_mono())))
            break;
        char *cmd = NULL;
        zframe_t *body = NULL;
        assert_int_equal(zsock_recv(zactor_sock(nt), "sf", &cmd, &body), 0);
        vz_json_t *doc = vz_json_parse(zframe_data(body), zframe_size(body), NULL, NULL);
        assert_non_null(doc);
        const vz_json_value_t *root = vz_json_root(doc);
        const vz_json_value_t *data = vz_json_get(root, "data");
        const char *key = vz_json_get_string(data, "dedup_key", NULL);
        assert_string_equal(vz_json_get_string(data, "event_action", NULL), "trigger");
        if (strcmp(key, "slo/tester-availability/page") == 0) {
            assert_string_equal(vz_json_get_string(root, "channel", NULL), "pagerduty");
            assert_string_equal(vz_json_get_string(root, "severity", NULL), "critical");
            page = true;
        } else if (strcmp(key, "slo/tester-availability/ticket") == 0) {
            assert_string_equal(vz_json_get_string(root, "channel", NULL), "slack");
            assert_string_equal(vz_json_get_string(root, "severity", NULL), "warning");
            ticket = true;
        } else
            fail_msg("unexpected alert %s", key);
        vz_json_destroy(&doc);
        zframe_destroy(&body);
        zstr_free(&cmd);
    }
    zpoller_destroy(&poller);
    assert_true(page);
    assert_true(ticket);

    vz_response_t *resp = s_call(e, "telemetry", "alerts", "");
    assert_int_equal(resp->env.kind, VZ_KIND_REPLY);
    vz_json_t *doc = vz_json_parse(resp->env.body, resp->env.body_len, NULL, NULL);
    vz_response_destroy(&resp);
    const vz_json_value_t *alerts = vz_json_get(vz_json_root(doc), "alerts");
    int firing = 0;
    for (size_t i = 0; i < vz_json_size(alerts); i++) {
        const vz_json_value_t *a = vz_json_at(alerts, i);
        if (strcmp(vz_json_get_string(a, "slo", NULL), "tester-availability") == 0 &&
            strcmp(vz_json_get_string(a, "state", NULL), "firing") == 0)
            firing++;
        //  echo's refused bodies are client errors: nothing fires for echo.
        if (strcmp(vz_json_get_string(a, "slo", NULL), "echo-availability") == 0)
            assert_string_equal(vz_json_get_string(a, "state", NULL), "inactive");
    }
    assert_int_equal(firing, 2);
    bool freeze = false;
    assert_int_equal(vz_json_bool(vz_json_get(vz_json_root(doc), "deploy_freeze"), &freeze), 0);
    assert_true(freeze);
    vz_json_destroy(&doc);
    //  The same on the sink's /metrics.
    int admin = vzt_mesh_admin_port(e->m, "telemetry");
    assert_true(vzt_wait_metric(admin, "vz_telemetry_deploy_freeze", 1, S_WAIT_MS));
    assert_true(vzt_wait_metric(
        admin, "vz_telemetry_alert_firing{slo=\"tester-availability\",severity=\"page\"}", 1,
        S_WAIT_MS));
    double left = 1;
    assert_int_equal(
        vzt_metric(admin, "vz_telemetry_slo_budget_remaining{slo=\"tester-availability\"}", &left),
        0);
    assert_true(left < 0);
    s_tx_close(&tx);
    zactor_destroy(&nt);
}

//  The week's top errors: the 200 "internal" of the alert test first, all
//  from "tester"; echo's refused bodies among them; new this week.
static void test_errors_top(void **state)
{
    s_env_t *e = *state;
    vz_response_t *resp = s_call(e, "telemetry", "errors_top", "");
    assert_int_equal(resp->env.kind, VZ_KIND_REPLY);
    vz_json_t *doc = vz_json_parse(resp->env.body, resp->env.body_len, NULL, NULL);
    vz_response_destroy(&resp);
    const vz_json_value_t *errors = vz_json_get(vz_json_root(doc), "errors");
    assert_true(vz_json_size(errors) >= 2 && vz_json_size(errors) <= 10);
    const vz_json_value_t *top = vz_json_at(errors, 0);
    assert_string_equal(vz_json_get_string(top, "code", NULL), "internal");
    assert_int_equal(s_int(top, "count"), 200);
    assert_int_equal(s_int(top, "previous_week"), 0);
    assert_int_equal(vz_json_type(vz_json_get(top, "change")), VZ_JSON_NULL);
    assert_true(s_int(top, "first_seen") > 0 &&
                s_int(top, "first_seen") <= s_int(top, "last_seen"));
    const vz_json_value_t *services = vz_json_get(top, "services");
    assert_int_equal(vz_json_size(services), 1);
    assert_string_equal(vz_json_string(vz_json_at(services, 0), NULL), "tester");
    bool invalid = false;
    for (size_t i = 1; i < vz_json_size(errors); i++) {
        const vz_json_value_t *err = vz_json_at(errors, i);
        if (strcmp(vz_json_get_string(err, "code", NULL), VZ_ERR_INVALID) != 0)
            continue;
        invalid = true;
        assert_true(s_int(err, "count") >= S_BAD_N);
        //  Sorted by frequency.
        assert_true(s_int(err, "count") <= s_int(vz_json_at(errors, i - 1), "count"));
    }
    assert_true(invalid);
    vz_json_destroy(&doc);
}

typedef struct {
    s_env_t *e;  //  the group's state
    int64_t dau; //  last answer...
    int64_t wau; //  ...
    int64_t mau; //  ...
} s_usage_t;

static bool s_usage_seen(void *arg)
{
    s_usage_t *u = arg;
    vz_response_t *resp = s_call(u->e, "telemetry", "usage", "");
    assert_int_equal(resp->env.kind, VZ_KIND_REPLY);
    vz_json_t *doc = vz_json_parse(resp->env.body, resp->env.body_len, NULL, NULL);
    vz_response_destroy(&resp);
    u->dau = s_int(vz_json_root(doc), "dau");
    u->wau = s_int(vz_json_root(doc), "wau");
    u->mau = s_int(vz_json_root(doc), "mau");
    vz_json_destroy(&doc);
    return u->dau >= 50;
}

//  Active users through the reporter: DAU, WAU and MAU count each once.
static void test_usage(void **state)
{
    s_env_t *e = *state;
    s_tx_t tx;
    s_tx_open(e, &tx);
    vz_telemetry_t *tl = tx.tl;
    char user[32];
    //  50 users over three snapshots, most of them in more than one.
    for (int round = 0; round < 3; round++) {
        for (int i = round * 10; i < 30 + round * 10; i++) {
            snprintf(user, sizeof user, "u_%d", i);
            vz_telemetry_user(tl, user);
        }
        vz_telemetry_record(tl, "usage", NULL, 10);
        assert_int_equal(vz_telemetry_flush(tl, vz_now_ms()), 0);
    }
    //  The event socket stays open until the sink has them (linger 0).
    s_usage_t u = {e, 0, 0, 0};
    bool seen = vzt_wait_until(s_usage_seen, &u, S_WAIT_MS);
    s_tx_close(&tx);
    if (!seen)
        fail_msg("dau %lld, want 50", (long long)u.dau);
    //  Exact at this size (Redis keeps small HyperLogLogs sparse).
    assert_int_equal(u.dau, 50);
    assert_int_equal(u.wau, 50);
    assert_int_equal(u.mau, 50);
}

//  Echo's "echo" count at the sink, or -1.
static int64_t s_echo_count(s_env_t *e)
{
    vz_json_t *doc = s_signals(e, "echo");
    const vz_json_value_t *svc = s_service(doc);
    const vz_json_value_t *echo = svc ? s_series(svc, "echo") : NULL;
    int64_t n = echo ? s_int(echo, "count") : -1;
    vz_json_destroy(&doc);
    return n;
}

typedef struct {
    s_env_t *e;   //  the group's state
    int64_t want; //  count to reach
} s_resume_t;

static bool s_resumed(void *arg)
{
    s_resume_t *r = arg;
    return s_echo_count(r->e) >= r->want;
}

static void s_echo_load(s_env_t *e, int n)
{
    for (int i = 0; i < n; i++) {
        vz_response_t *resp = s_call(e, "echo", "echo", "y");
        assert_int_equal(resp->env.kind, VZ_KIND_REPLY);
        vz_response_destroy(&resp);
    }
}

//  The sink killed under load: echo keeps answering every call; after the
//  restart the sink's state (in Redis) is all there and new data resumes.
static void test_sink_killed(void **state)
{
    s_env_t *e = *state;
    int64_t before = s_echo_count(e);
    assert_true(before >= S_ECHO_N);
    assert_int_equal(vzt_mesh_kill(e->m, "telemetry", SIGKILL), 0);
    int64_t t0 = zclock_mono();
    s_echo_load(e, 500);
    //  No call waited on telemetry: 500 round trips stay well under a second
    //  each (the reporter only queues, the broker holds its events).
    assert_true(zclock_mono() - t0 < 10000);
    assert_int_equal(vzt_mesh_restart(e->m, "telemetry"), 0);
    assert_true(s_echo_count(e) >= before); //  nothing forgotten across the restart
    s_echo_load(e, 500);
    s_resume_t r = {e, before + 500};
    if (!vzt_wait_until(s_resumed, &r, S_WAIT_MS))
        fail_msg("sink did not resume: %lld of at least %lld", (long long)s_echo_count(e),
                 (long long)r.want);
    assert_true(s_echo_count(e) <= before + 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_counts), cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_refusals),    cmocka_unit_test(test_alert_reaches_notifier),
        cmocka_unit_test(test_errors_top),  cmocka_unit_test(test_usage),
        cmocka_unit_test(test_sink_killed),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
