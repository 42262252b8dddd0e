/*  test_call - vz_call and vz_event through the real vz-broker
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One broker for the group. "front" is a vz_worker with a vz_call on the
 *  same loop, in a thread; "downstream" is a vz_worker whose "work" method
 *  holds its requests until the test releases them, so the test decides
 *  when the slow service answers. The tester calls with vz_client. The
 *  caller-dies test SIGKILLs a real vz-echo in the middle of its "relay".
 *  Every wait is bounded; none is a fixed sleep standing in for an event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vz_call.h"
#include "vz_client.h"
#include "vz_curve.h"
#include "vz_event.h"
#include "vz_proto.h"
#include "vz_worker.h"

#define S_HB_MS 200    //  heartbeat of the broker and of our workers
#define S_WAIT_MS 5000 //  bound on any expected event
#define S_SHORT_MS 300
#define S_TRACE                                                                                    \
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" //  "relay_short"'s own timeout

//  The group's mesh: keys/, policy.cfg, the broker, logs.
typedef vzt_mesh_t s_env_t;

static const char *s_policy = "identity\n"
                              "    tester\n"
                              "        call = \"front downstream echo broker\"\n"
                              "    front\n"
                              "        serve = \"front\"\n"
                              "        call = \"downstream nobody\"\n"
                              "    echo\n"
                              "        serve = \"echo\"\n"
                              "        call = \"downstream\"\n"
                              "    downstream\n"
                              "        serve = \"downstream\"\n";

static int s_setup(void **state)
{
    char *const settings[] = {"VZ_HEARTBEAT_MS=200", NULL};
    *state = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "call",
                                               .daemons = "",
                                               .identities = "tester,front,downstream,echo",
                                               .policy = s_policy,
                                               .env = settings,
                                               .no_redis = true});
    assert_non_null(*state);
    return 0;
}

static int s_teardown(void **state)
{
    return vzt_mesh_destroy((vzt_mesh_t **)state);
}

//  --------------------------------------------------------------------------
//  The workers: one actor for both roles, its loop shared by the worker and
//  (front) the vz_call. Pipe commands: CONNECTED, RELEASE, $TERM; the
//  downstream actor also sends "GOT <deadline> <caller> <traceparent>" when "work"
//  arrives, so the test learns it without polling.

#define S_HELD_MAX 8

typedef struct {
    zsock_t *pipe;                   //  to the test
    vz_call_t *calls;                //  front: calls to other services
    vz_deferred_t *held[S_HELD_MAX]; //  downstream: "work" requests not yet answered
    size_t nheld;                    //  entries in held
} s_app_t;

//  Calls <body>.work within the request's deadline (timeout_ms 0) or
//  within S_SHORT_MS, answering with what came back.
static int s_relay_with(s_app_t *app, const vz_envelope_t *req, vz_reply_t *reply, int timeout)
{
    char service[VZ_NAME_MAX] = "";
    snprintf(service, sizeof service, "%.*s", (int)req->body_len, (const char *)req->body);
    vz_call_req_t call = {.service = service,
                          .method = "work",
                          .body = "payload",
                          .body_len = 7,
                          .timeout_ms = timeout,
                          .idempotent = true,
                          .parent = req};
    return vz_call_start(app->calls, &call, vz_call_complete, vz_reply_defer(reply, NULL));
}

static int h_relay(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_relay_with(app, req, reply, 0);
}

static int h_relay_short(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_relay_with(app, req, reply, S_SHORT_MS);
}

static int h_ping(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return vz_reply_body(reply, "pong", 4);
}

static int h_work(void *arg, const vz_envelope_t *req, vz_reply_t *reply)
{
    s_app_t *app = arg;
    assert_true(app->nheld < S_HELD_MAX);
    app->held[app->nheld++] = vz_reply_defer(reply, NULL);
    zstr_sendf(app->pipe, "GOT %lld %s %s", (long long)req->deadline_ms, req->caller,
               req->traceparent[0] ? req->traceparent : "-");
    return 0;
}

static const vz_method_t s_front[] = {
    {"relay", h_relay, VZ_METHOD_DEFERRED, 0},
    {"relay_short", h_relay_short, VZ_METHOD_DEFERRED, 0},
    {"ping", h_ping, 0, 0},
};
static const vz_method_t s_downstream[] = {{"work", h_work, VZ_METHOD_DEFERRED, 0}};

typedef struct {
    s_env_t *env;     //  broker
    const char *name; //  service and certificate
    zcert_t *cert;    //  its certificate (the mesh's, loaded by the test thread)
} s_role_t;

typedef struct {
    s_app_t *app;        //  handlers' state
    vz_worker_t *worker; //  the worker
} s_actor_t;

static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    s_actor_t *actor = arg;
    char *cmd = zstr_recv(pipe);
    int rc = 0;
    if (!cmd || streq(cmd, "$TERM"))
        rc = -1;
    else if (streq(cmd, "CONNECTED"))
        zstr_send(pipe, vz_worker_connected(actor->worker) ? "1" : "0");
    else if (streq(cmd, "RELEASE")) {
        for (size_t i = 0; i < actor->app->nheld; i++) {
            //  A reply ctx entry, which a relay passes on (vz_call_complete).
            vz_reply_ctx_set(vz_deferred_reply(actor->app->held[i]), "http_status", "202");
            vz_worker_complete(&actor->app->held[i], "worked", 6);
        }
        actor->app->nheld = 0;
        zstr_send(pipe, "RELEASED");
    }
    free(cmd);
    return rc;
}

static void s_worker_actor(zsock_t *pipe, void *arg)
{
    const s_role_t *role = arg;
    bool front = streq(role->name, "front");
    zcert_t *cert = role->cert;
    vz_worker_config_t config = {.service = role->name,
                                 .endpoints = vzt_mesh_endpoint(role->env),
                                 .broker_key = vzt_mesh_broker_key(role->env),
                                 .cert = cert,
                                 .heartbeat_ms = S_HB_MS,
                                 .credit = 4};
    s_app_t app = {.pipe = pipe};
    vz_worker_t *worker =
        vz_worker_new(&config, front ? s_front : s_downstream, front ? 3 : 1, &app);
    zloop_t *loop = zloop_new();
    vz_call_config_t cc = {
        .broker = {vzt_mesh_endpoint(role->env), vzt_mesh_broker_key(role->env), cert}};
    app.calls = front ? vz_call_new(&cc) : NULL;
    s_actor_t actor = {&app, worker};
    zloop_reader(loop, pipe, s_on_pipe, &actor);
    bool ok = worker && vz_worker_attach(worker, loop) == 0 &&
              (!front || (app.calls && vz_call_attach(app.calls, loop) == 0));
    zsock_signal(pipe, ok ? 0 : 1);
    if (ok)
        zloop_start(loop);
    //  The order vz_daemon_serve keeps: calls end, then the worker drains.
    if (app.calls)
        vz_call_close(app.calls);
    if (worker)
        vz_worker_drain(worker, 500);
    vz_call_destroy(&app.calls);
    vz_worker_destroy(&worker);
    zloop_destroy(&loop);
}

//  The actor's worker or caller reports its broker link up.
static bool s_actor_connected(void *actor)
{
    zstr_send(actor, "CONNECTED");
    char *answer = zstr_recv(actor);
    bool up = answer && streq(answer, "1");
    free(answer);
    return up;
}

//  Start a role and wait until the broker has acknowledged it.
static zactor_t *s_start(const s_role_t *role)
{
    zactor_t *actor = zactor_new(s_worker_actor, (void *)role);
    assert_non_null(actor);
    zsock_set_rcvtimeo(actor, S_WAIT_MS);
    if (vzt_wait_until(s_actor_connected, actor, S_WAIT_MS))
        return actor;
    fail_msg("%s never connected", role->name);
    return NULL;
}

//  What downstream saw of a "work" request.
typedef struct {
    int64_t deadline;               //  envelope deadline
    char caller[VZ_NAME_MAX];       //  identity the broker vouched for
    char trace[VZ_TRACEPARENT_MAX]; //  traceparent, "-" when empty
} s_got_t;

//  Wait for downstream's "GOT" (sent when "work" arrives).
static void s_expect_got(zactor_t *downstream, s_got_t *got)
{
    char *text = zstr_recv(downstream);
    assert_non_null(text);
    long long d = 0;
    assert_int_equal(sscanf(text, "GOT %lld %63s %63s", &d, got->caller, got->trace), 3);
    got->deadline = d;
    free(text);
}

static void s_release(zactor_t *downstream)
{
    zstr_send(downstream, "RELEASE");
    char *answer = zstr_recv(downstream);
    assert_non_null(answer);
    assert_string_equal(answer, "RELEASED");
    free(answer);
}

//  What a test runs: the workers it asks for and the tester's client.
typedef struct {
    s_role_t front_role;      //  front's role (outlives its actor)
    s_role_t downstream_role; //  downstream's role (idem)
    zactor_t *front;          //  NULL unless asked for
    zactor_t *downstream;     //  idem
    vz_client_t *client;      //  the tester
} s_world_t;

//  An identity's certificate, borrowed from the mesh.
static zcert_t *s_cert(s_env_t *env, const char *name)
{
    zcert_t *cert = vzt_mesh_cert(env, name);
    assert_non_null(cert);
    return cert;
}

static void s_world_start(s_world_t *w, s_env_t *env, bool front, bool downstream)
{
    *w = (s_world_t){.front_role = {env, "front", s_cert(env, "front")},
                     .downstream_role = {env, "downstream", s_cert(env, "downstream")}};
    w->front = front ? s_start(&w->front_role) : NULL;
    w->downstream = downstream ? s_start(&w->downstream_role) : NULL;
    vz_client_config_t config = {.endpoints = vzt_mesh_endpoint(env),
                                 .broker_key = vzt_mesh_broker_key(env),
                                 .cert = s_cert(env, "tester")};
    w->client = vz_client_new(&config);
    assert_non_null(w->client);
}

static void s_world_stop(s_world_t *w)
{
    vz_client_destroy(&w->client);
    zactor_destroy(&w->downstream);
    zactor_destroy(&w->front);
}

//  Send service.method(body) with an absolute deadline; id is the caller's.
static void s_send(vz_client_t *client, const char *service, const char *method, const char *id,
                   const char *body, int64_t deadline)
{
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, service, method, id), 0);
    vz_strlcpy(req.traceparent, S_TRACE, sizeof req.traceparent);
    req.deadline_ms = deadline;
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    assert_int_equal(vz_client_send(client, &req), 0);
}

//  The next response within wait_ms; fails the test when none comes.
static vz_response_t *s_recv(vz_client_t *client, int wait_ms)
{
    zmq_pollitem_t item = {zsock_resolve(vz_client_sock(client)), 0, ZMQ_POLLIN, 0};
    int64_t until = zclock_mono() + wait_ms;
    while (zclock_mono() < until) {
        if (zmq_poll(&item, 1, (long)(until - zclock_mono())) <= 0)
            continue;
        vz_response_t *response = NULL;
        if (vz_client_recv(client, &response) == 0)
            return response;
    }
    fail_msg("no response within %d ms", wait_ms);
    return NULL;
}

static double s_metric(s_env_t *env, const char *series)
{
    double value = 0;
    int rc = vzt_metric(vzt_mesh_admin_port(env, "broker"), series, &value);
    assert_true(rc == 0 || rc == -ENOENT);
    return value;
}

//  --------------------------------------------------------------------------

//  front.relay waits on downstream for five heartbeat intervals (longer
//  than the broker's liveness window): meanwhile a second request to front
//  is answered at once and the broker never loses front, so its heartbeats
//  flowed. downstream saw the tester's deadline and trace, and front's
//  identity.
static void test_slow_callee_does_not_block(void **state)
{
    s_env_t *env = *state;
    s_world_t w;
    s_world_start(&w, env, true, true);
    double lost = s_metric(env, "vz_broker_workers_lost_total{detected=\"silence\"}");

    int64_t deadline = vz_now_ms() + 4000;
    s_send(w.client, "front", "relay", "slow-1", "downstream", deadline);
    s_got_t got;
    s_expect_got(w.downstream, &got);
    assert_true(got.deadline == deadline); //  the parent's deadline travelled unchanged
    assert_string_equal(got.caller, "front");
    assert_string_equal(got.trace, S_TRACE);

    int64_t start = zclock_mono();
    s_send(w.client, "front", "ping", "fast-1", "", vz_now_ms() + 2000);
    vz_response_t *rsp = s_recv(w.client, 2000);
    assert_string_equal(rsp->env.id, "fast-1");
    assert_int_equal(rsp->env.kind, VZ_KIND_REPLY);
    assert_true(zclock_mono() - start < 1000);
    vz_response_destroy(&rsp);

    //  Hold the slow call past the liveness window (3 intervals). Nothing
    //  may arrive meanwhile: the relay is still waiting.
    zmq_pollitem_t item = {zsock_resolve(vz_client_sock(w.client)), 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&item, 1, S_HB_MS * 5), 0);
    assert_true(s_metric(env, "vz_broker_workers{service=\"front\"}") == 1);
    s_release(w.downstream);
    rsp = s_recv(w.client, S_WAIT_MS);
    assert_string_equal(rsp->env.id, "slow-1");
    assert_int_equal(rsp->env.kind, VZ_KIND_REPLY);
    assert_int_equal(rsp->env.body_len, 6);
    assert_memory_equal(rsp->env.body, "worked", 6);
    const char *status = vz_envelope_ctx_get(&rsp->env, "http_status");
    assert_non_null(status);
    assert_string_equal(status, "202");
    vz_response_destroy(&rsp);
    assert_true(s_metric(env, "vz_broker_workers_lost_total{detected=\"silence\"}") == lost);

    s_world_stop(&w);
}

//  The child's deadline is the earlier of the parent's and its own
//  timeout: relay_short under a long parent deadline sends now + 300 ms,
//  under a shorter one the parent's own.
static void test_deadline_is_the_earlier(void **state)
{
    s_env_t *env = *state;
    s_world_t w;
    s_world_start(&w, env, true, true);

    int64_t before = vz_now_ms();
    s_send(w.client, "front", "relay_short", "short-1", "downstream", before + 10000);
    s_got_t got;
    s_expect_got(w.downstream, &got);
    assert_true(got.deadline >= before + S_SHORT_MS && got.deadline <= vz_now_ms() + S_SHORT_MS);
    //  Not released: the broker answers "timeout" at the child's deadline
    //  and front passes it on, long before the parent's.
    vz_response_t *rsp = s_recv(w.client, S_WAIT_MS);
    assert_string_equal(rsp->env.id, "short-1");
    assert_int_equal(rsp->env.kind, VZ_KIND_ERROR);
    assert_string_equal(rsp->env.error_code, VZ_ERR_TIMEOUT);
    assert_true(vz_now_ms() < before + 3000);
    vz_response_destroy(&rsp);

    //  A parent with less time than the call's timeout: its deadline, as is.
    int64_t parent = vz_now_ms() + S_SHORT_MS / 2;
    s_send(w.client, "front", "relay_short", "short-2", "downstream", parent);
    s_expect_got(w.downstream, &got);
    assert_true(got.deadline == parent);
    rsp = s_recv(w.client, S_WAIT_MS);
    assert_string_equal(rsp->env.id, "short-2");
    assert_string_equal(rsp->env.error_code, VZ_ERR_TIMEOUT);
    vz_response_destroy(&rsp);

    s_world_stop(&w);
}

//  A callee with no worker at all: no_worker from the broker at the
//  child's deadline, passed on well before the parent's. Retries are not
//  made with less than VZ_RETRY_MIN_MS left, so it is not asked again.
static void test_callee_away(void **state)
{
    s_env_t *env = *state;
    s_world_t w;
    s_world_start(&w, env, true, false);

    int64_t before = vz_now_ms();
    s_send(w.client, "front", "relay_short", "away-1", "nobody", before + 10000);
    vz_response_t *rsp = s_recv(w.client, S_WAIT_MS);
    assert_string_equal(rsp->env.id, "away-1");
    assert_int_equal(rsp->env.kind, VZ_KIND_ERROR);
    assert_string_equal(rsp->env.error_code, VZ_ERR_NO_WORKER);
    int64_t took = vz_now_ms() - before;
    assert_true(took >= S_SHORT_MS - 50 && took < 3000);
    vz_response_destroy(&rsp);

    s_world_stop(&w);
}

//  vz-echo relays to downstream and is SIGKILLed while downstream holds
//  the call. The tester learns worker_lost; downstream's late answer is
//  dropped by the broker (front's connection is gone) and downstream goes
//  on serving; the broker goes on routing.
static void test_caller_dies(void **state)
{
    s_env_t *env = *state;
    s_world_t w;
    s_world_start(&w, env, false, true);
    char *const more[] = {"VZ_HEARTBEAT_MS=200", NULL};
    vzt_proc_t *echo =
        vzt_daemon(vzt_mesh_dir(env), "echo", NULL, vzt_mesh_broker_port(env), 0, 0, more, true);
    assert_non_null(echo);
    double gone =
        s_metric(env, "vz_broker_send_failed_total{peer=\"client\",reason=\"unreachable\"}");

    s_send(w.client, "echo", "relay", "dies-1", "downstream.work hello", vz_now_ms() + 5000);
    s_got_t got;
    s_expect_got(w.downstream, &got);
    assert_string_equal(got.caller, "echo");
    kill(vzt_proc_pid(echo), SIGKILL);
    assert_int_equal(vzt_proc_wait(echo, S_WAIT_MS), 128 + SIGKILL);
    vzt_proc_destroy(&echo);

    vz_response_t *rsp = s_recv(w.client, S_WAIT_MS);
    assert_string_equal(rsp->env.id, "dies-1");
    assert_int_equal(rsp->env.kind, VZ_KIND_ERROR);
    assert_string_equal(rsp->env.error_code, VZ_ERR_WORKER_LOST);
    vz_response_destroy(&rsp);

    //  The answer for the dead caller is dropped and counted by the broker.
    s_release(w.downstream);
    vzt_wait_metric(vzt_mesh_admin_port(env, "broker"),
                    "vz_broker_send_failed_total{peer=\"client\",reason=\"unreachable\"}", gone + 1,
                    S_WAIT_MS);
    assert_true(
        s_metric(env, "vz_broker_send_failed_total{peer=\"client\",reason=\"unreachable\"}") >=
        gone + 1);
    //  downstream and the broker carry on: a direct call is served.
    s_send(w.client, "downstream", "work", "after-1", "again", vz_now_ms() + 5000);
    s_expect_got(w.downstream, &got);
    assert_string_equal(got.caller, "tester");
    s_release(w.downstream);
    rsp = s_recv(w.client, S_WAIT_MS);
    assert_string_equal(rsp->env.id, "after-1");
    assert_int_equal(rsp->env.kind, VZ_KIND_REPLY);
    vz_response_destroy(&rsp);
    assert_true(s_metric(env, "vz_broker_queue_depth{service=\"downstream\"}") == 0);

    s_world_stop(&w);
}

//  SIGTERM to vz-echo while its relay waits: the daemon closes its calls
//  before the worker drains, so the request is answered "unavailable" at
//  once (not "internal" at the end of the drain) and echo exits cleanly.
static void test_caller_stops(void **state)
{
    s_env_t *env = *state;
    s_world_t w;
    s_world_start(&w, env, false, true);
    char *const more[] = {"VZ_HEARTBEAT_MS=200", "VZ_DRAIN_TIMEOUT_MS=4000", NULL};
    vzt_proc_t *echo = vzt_daemon(vzt_mesh_dir(env), "echo", "echo-term", vzt_mesh_broker_port(env),
                                  0, 0, more, true);
    assert_non_null(echo);
    s_send(w.client, "echo", "relay", "stops-1", "downstream.work hello", vz_now_ms() + 8000);
    s_got_t got;
    s_expect_got(w.downstream, &got);
    int64_t start = zclock_mono();
    kill(vzt_proc_pid(echo), SIGTERM);
    vz_response_t *rsp = s_recv(w.client, S_WAIT_MS);
    assert_string_equal(rsp->env.id, "stops-1");
    assert_int_equal(rsp->env.kind, VZ_KIND_ERROR);
    assert_string_equal(rsp->env.error_code, VZ_ERR_UNAVAILABLE);
    vz_response_destroy(&rsp);
    assert_int_equal(vzt_proc_wait(echo, S_WAIT_MS), 0);
    assert_true(zclock_mono() - start < 2000);
    vzt_proc_destroy(&echo);
    s_release(w.downstream); //  the late answer goes nowhere
    s_world_stop(&w);
}

//  Events reach a live service as requests nobody waits for; the answers
//  are thrown away without disturbing the sender.
static void test_event_delivered(void **state)
{
    s_env_t *env = *state;
    s_world_t w;
    s_world_start(&w, env, false, true);
    vz_event_config_t config = {
        .broker = {vzt_mesh_endpoint(env), vzt_mesh_broker_key(env), s_cert(env, "tester")}};
    vz_event_t *events = vz_event_new(&config);
    assert_non_null(events);
    int64_t before = vz_now_ms();
    assert_int_equal(vz_event_send(events, "downstream", "work", "tick", 4), 0);
    s_got_t got;
    s_expect_got(w.downstream, &got);
    assert_string_equal(got.caller, "tester");
    assert_true(got.deadline >= before + 10000 - 100); //  the default ttl
    s_release(w.downstream);
    assert_int_equal(vz_event_sent(events), 1);
    assert_int_equal(vz_event_dropped(events), 0);
    vz_event_destroy(&events);
    s_world_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_callee_does_not_block),
        cmocka_unit_test(test_deadline_is_the_earlier),
        cmocka_unit_test(test_callee_away),
        cmocka_unit_test(test_caller_dies),
        cmocka_unit_test(test_caller_stops),
        cmocka_unit_test(test_event_delivered),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
