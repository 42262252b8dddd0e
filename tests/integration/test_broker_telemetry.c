/*  test_broker_telemetry - the broker reports to the telemetry sink like every daemon
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh: Redis, the broker and vz-telemetry, reporting every 200 ms,
 *  under a policy that lets identity "broker" call telemetry. The broker
 *  has no socket to itself: its reporter's snapshots go to telemetry.ingest
 *  through broker_send_self (docs/services/broker.md). The test shows
 *    - the sink's signals for service "broker" carry the broker's own
 *      saturation (cpu, RSS, open descriptors) and exactly the ping and
 *      services calls the test made, by code;
 *    - after a policy reload that takes "broker"'s call right away, new
 *      snapshots are refused (forbidden, so auto mode backs off) and no
 *      further ping reaches the sink, while the broker keeps serving.
 *  Every wait polls through vzt_wait_until.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vz_client.h"
#include "vz_json.h"
#include "vz_proto.h"

#define S_WAIT_MS 15000
#define S_PINGS 25  //  broker.ping calls
#define S_LISTS 5   //  broker.services calls
#define S_UNKNOWN 3 //  broker.nosuch calls

//  The policy with the broker's right to report, and without it.
#define S_POLICY_BASE                                                                              \
    "identity\n"                                                                                   \
    "    telemetry\n"                                                                              \
    "        serve = \"telemetry\"\n"                                                              \
    "        call = \"telemetry broker\"\n"                                                        \
    "    tester\n"                                                                                 \
    "        call = \"telemetry broker\"\n"
static const char s_policy[] = S_POLICY_BASE "    broker\n"
                                             "        call = \"telemetry\"\n";
static const char s_policy_without[] = S_POLICY_BASE;

static const char s_slo[] = "slo\n"
                            "    broker-availability\n"
                            "        objective = \"availability\"\n"
                            "        target = \"99.9\"\n"
                            "        service = \"broker\"\n"
                            "        match = \"*\"\n";

typedef struct {
    vzt_mesh_t *m;       //  the mesh
    vz_client_t *client; //  as "tester"
} s_env_t;

static int s_setup(void **state)
{
    static char *const env[] = {
        "VZ_TELEMETRY_INTERVAL_MS=200", "telemetry:VZ_TELEMETRY_EVAL_MS=200",
        "telemetry:VZ_TELEMETRY_SLO={dir}/slo.cfg", "telemetry:VZ_TELEMETRY_READERS=tester", NULL};
    static const char *const files[] = {"slo.cfg", s_slo, NULL};
    s_env_t *e = calloc(1, sizeof *e);
    e->m = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "broker-telemetry",
                                             .daemons = "telemetry",
                                             .identities = "tester",
                                             .policy = s_policy,
                                             .env = env,
                                             .files = files});
    assert_non_null(e->m);
    e->client = vzt_mesh_client(e->m, "tester");
    assert_non_null(e->client);
    *state = e;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *e = *state;
    if (!e)
        return -1;
    vz_client_destroy(&e->client);
    int rc = vzt_mesh_destroy(&e->m);
    free(e);
    return rc;
}

//  service.method(body) as "tester": the response (caller destroys), or fail.
static vz_response_t *s_call(s_env_t *e, const char *service, const char *method, const char *body)
{
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, service, method, NULL), 0);
    req.body_len = strlen(body);
    req.body = (const uint8_t *)body;
    vz_response_t *resp = NULL;
    assert_int_equal(vz_client_call(e->client, &req, 5000, &resp), 0);
    return resp;
}

//  The broker's entry of telemetry.signals (caller destroys *doc_p), or NULL.
static const vz_json_value_t *s_broker_signals(s_env_t *e, vz_json_t **doc_p)
{
    vz_response_t *resp =
        s_call(e, "telemetry", "signals", "{\"service\":\"broker\",\"window_s\":3600}");
    assert_int_equal(resp->env.kind, VZ_KIND_REPLY);
    *doc_p = vz_json_parse(resp->env.body, resp->env.body_len, NULL, NULL);
    assert_non_null(*doc_p);
    vz_response_destroy(&resp);
    const vz_json_value_t *services = vz_json_get(vz_json_root(*doc_p), "services");
    return vz_json_size(services) == 1 ? vz_json_at(services, 0) : NULL;
}

static int64_t s_int(const vz_json_value_t *object, const char *key)
{
    int64_t n = -1;
    vz_json_int(vz_json_get(object, key), &n);
    return n;
}

//  The count of the broker's series name (code NULL: all codes), -1 if none.
static int64_t s_count(s_env_t *e, const char *name, const char *code)
{
    vz_json_t *doc = NULL;
    const vz_json_value_t *svc = s_broker_signals(e, &doc);
    const vz_json_value_t *series = svc ? vz_json_get(svc, "series") : NULL;
    int64_t n = -1;
    for (size_t i = 0; i < vz_json_size(series); i++) {
        const vz_json_value_t *one = vz_json_at(series, i);
        const char *have = vz_json_get_string(one, "name", NULL);
        if (have && strcmp(have, name) == 0)
            n = code ? s_int(vz_json_get(one, "codes"), code) : s_int(one, "count");
    }
    vz_json_destroy(&doc);
    return n;
}

typedef struct {
    s_env_t *e;       //  the group's state
    const char *name; //  series
    const char *code; //  code, or NULL for the count
    int64_t want;     //  value to reach
    int64_t seen;     //  value at the last poll
} s_wait_t;

static bool s_reached(void *arg)
{
    s_wait_t *w = arg;
    w->seen = s_count(w->e, w->name, w->code);
    return w->seen >= w->want;
}

//  Wait until the count reaches want; exact: and is no more.
static void s_wait_count(s_env_t *e, const char *name, const char *code, int64_t want, bool exact)
{
    s_wait_t w = {e, name, code, want, -1};
    if (!vzt_wait_until(s_reached, &w, S_WAIT_MS))
        fail_msg("sink has %lld of %lld for broker %s/%s", (long long)w.seen, (long long)want, name,
                 code ? code : "*");
    //  Exactly: the broker's own reporter counts each call once.
    if (exact)
        assert_int_equal(w.seen, want);
}

static void s_calls(s_env_t *e, const char *method, int n, vz_kind_t kind)
{
    for (int i = 0; i < n; i++) {
        vz_response_t *resp = s_call(e, "broker", method, "");
        assert_int_equal(resp->env.kind, kind);
        vz_response_destroy(&resp);
    }
}

//  The broker's saturation and its own methods reach the sink.
static void test_broker_reports(void **state)
{
    s_env_t *e = *state;
    s_calls(e, "ping", S_PINGS, VZ_KIND_REPLY);
    s_calls(e, "services", S_LISTS, VZ_KIND_REPLY);
    s_calls(e, "nosuch", S_UNKNOWN, VZ_KIND_ERROR);
    s_wait_count(e, "ping", NULL, S_PINGS, true);
    //  vz-telemetry itself asks broker.services every tick: at least ours.
    s_wait_count(e, "services", "ok", S_LISTS, false);
    s_wait_count(e, "nosuch", VZ_ERR_UNKNOWN_METHOD, S_UNKNOWN, true);

    vz_json_t *doc = NULL;
    const vz_json_value_t *svc = s_broker_signals(e, &doc);
    assert_non_null(svc);
    const vz_json_value_t *sat = vz_json_get(svc, "saturation");
    assert_int_equal(vz_json_size(sat), 1);
    const vz_json_value_t *one = vz_json_at(sat, 0);
    assert_int_equal(s_int(one, "replica"), 0);
    assert_true(s_int(one, "rss_bytes") > 0);
    //  At least the ROUTER's listener, the ZAP and the admin sockets.
    assert_true(s_int(one, "open_fds") > 3);
    assert_true(s_int(vz_json_get(svc, "totals"), "snapshots") > 0);
    assert_int_equal(s_int(vz_json_get(svc, "totals"), "lost"), 0);
    vz_json_destroy(&doc);
}

typedef struct {
    s_env_t *e;     //  the group's state
    int64_t before; //  the broker's forbidden counter before the reload
} s_refused_t;

//  vz_broker_forbidden_total of the broker, from its metrics; -1 if absent.
static int64_t s_forbidden(s_env_t *e)
{
    double v = -1;
    if (vzt_metric(vzt_mesh_admin_port(e->m, "broker"), "vz_broker_forbidden_total", &v) < 0)
        return -1;
    return (int64_t)v;
}

static bool s_refused(void *arg)
{
    s_refused_t *r = arg;
    return s_forbidden(r->e) > r->before;
}

//  The policy decides: without "broker"'s call right the snapshots are
//  refused (and no more of the broker's calls arrive), the broker serves on.
static void test_policy_refuses(void **state)
{
    s_env_t *e = *state;
    s_refused_t r = {e, s_forbidden(e)};
    assert_true(r.before >= 0);
    assert_int_equal(vzt_mesh_write(e->m, "policy.cfg", s_policy_without), 0);
    assert_int_equal(kill(vzt_mesh_pid(e->m, "broker"), SIGHUP), 0);
    if (!vzt_wait_until(s_refused, &r, S_WAIT_MS))
        fail_msg("the broker's snapshots were never refused after the reload");
    //  Snapshots refused from here on: what the broker serves now stays unreported.
    int64_t pings = s_count(e, "ping", NULL);
    s_calls(e, "ping", 5, VZ_KIND_REPLY);
    r.before = s_forbidden(e);
    assert_true(vzt_wait_until(s_refused, &r, S_WAIT_MS)); //  a later snapshot was refused too
    assert_int_equal(s_count(e, "ping", NULL), pings);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_reports),
        cmocka_unit_test(test_policy_refuses),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
