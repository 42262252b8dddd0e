/*  test_worker - vz_worker driven by a fake broker in the test thread
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The worker runs its own zloop in a zactor; the test is the broker: a
 *  CURVE ROUTER that reads RDY/HB/REP and writes REQ/HB/BYE frames. Every
 *  wait is a poll bounded by WAIT_MS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vz_batch.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_envelope.h"
#include "vz_metrics.h"
#include "vz_proto.h"
#include "vz_worker.h"

#include "ut.h"

#define WAIT_MS 5000 //  bound on any expected event
#define HB_MS 100    //  worker heartbeat in these tests

//  The group's keys: server is the fake broker's, peer the worker's.
typedef ut_keys_t fixture_t;

static int h_echo(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return vz_reply_body(reply, req->body, req->body_len);
}

static int h_caller(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return vz_reply_body(reply, req->caller, strlen(req->caller));
}

static int h_fail(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return -1;
}

static int h_deny(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return vz_reply_error(reply, VZ_ERR_FORBIDDEN, "no");
}

static int h_created(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    vz_reply_body(reply, "{}", 2);
    return vz_reply_ctx_set(reply, "http_status", "201");
}

//  60 kB whatever the request: replies that outgrow their bundle.
#define BIG_REPLY 60000
static int h_big(void *app, const vz_envelope_t *req, vz_reply_t *reply);
static int h_big_later(void *app, const vz_envelope_t *req, vz_reply_t *reply);

//  Deferred handlers keep their handles here until flush (worker thread).
#define APP_MAX 64
typedef struct {
    vz_deferred_t *pending[APP_MAX]; //  deferred by "later" in this batch
    char bodies[APP_MAX][32];        //  what each will answer
    size_t count;                    //  entries in pending
    size_t flushes;                  //  flush calls so far
    size_t largest;                  //  most handles completed by one flush
    size_t completed;                //  handles completed by flush
    size_t big_calls;                //  "big" and "bigl" handlers run
} app_t;

static void h_flush(void *arg)
{
    app_t *app = arg;
    app->flushes++;
    if (app->count > app->largest)
        app->largest = app->count;
    for (size_t i = 0; i < app->count; i++) {
        assert(vz_worker_complete(&app->pending[i], app->bodies[i], strlen(app->bodies[i])) == 0);
        assert(app->pending[i] == NULL);
        app->completed++;
    }
    app->count = 0;
}

//  Answers "done:<body>" from the batch's flush.
static int h_later(void *arg, const vz_envelope_t *req, vz_reply_t *reply)
{
    app_t *app = arg;
    assert(app->count < APP_MAX);
    snprintf(app->bodies[app->count], sizeof app->bodies[0], "done:%.*s", (int)req->body_len,
             (const char *)req->body);
    app->pending[app->count++] = vz_reply_defer(reply, h_flush);
    return 0;
}

//  Never completed: the worker must answer it at drain.
static int h_hold(void *arg, const vz_envelope_t *req, vz_reply_t *reply)
{
    vz_reply_defer(reply, NULL);
    return 0;
}

//  Defers, then finds its answer at once (as a call that fails at start
//  does): completed inside the handler, sent when it returns.
static int h_at_once(void *arg, const vz_envelope_t *req, vz_reply_t *reply)
{
    vz_deferred_t *handle = vz_reply_defer(reply, NULL);
    if (req->body_len)
        assert(vz_worker_complete(&handle, req->body, req->body_len) == 0);
    else
        assert(vz_worker_complete_error(&handle, VZ_ERR_UNAVAILABLE, "at once") == 0);
    assert(handle == NULL);
    return 0;
}

static const uint8_t s_zeros[5 * BIG_REPLY];

static int h_big(void *arg, const vz_envelope_t *req, vz_reply_t *reply)
{
    ((app_t *)arg)->big_calls++;
    return vz_reply_body(reply, s_zeros, BIG_REPLY);
}

//  Deferred replies of 300 kB, completed by the flush: their sizes are not
//  known while the bundle is dispatched.
static vz_deferred_t *s_big_open[APP_MAX];
static size_t s_big_count;

static void h_big_flush(void *arg)
{
    for (size_t i = 0; i < s_big_count; i++)
        assert(vz_worker_complete(&s_big_open[i], s_zeros, 5 * BIG_REPLY) == 0);
    s_big_count = 0;
}

static int h_big_later(void *arg, const vz_envelope_t *req, vz_reply_t *reply)
{
    ((app_t *)arg)->big_calls++;
    assert(s_big_count < APP_MAX);
    s_big_open[s_big_count++] = vz_reply_defer(reply, h_big_flush);
    return 0;
}

static const vz_method_t s_methods[] = {
    {"later", h_later, VZ_METHOD_DEFERRED, 0},
    {"hold", h_hold, VZ_METHOD_DEFERRED, 0},
    {"echo", h_echo, VZ_METHOD_IDEMPOTENT, 0},
    {"created", h_created, 0, 0},
    {"caller", h_caller, 0, 0},
    {"fail", h_fail, 0, 0},
    {"deny", h_deny, 0, 0},
    {"small", h_echo, 0, 4},
    {"big", h_big, 0, 0},
    {"bigl", h_big_later, VZ_METHOD_DEFERRED, 0},
    {"atonce", h_at_once, VZ_METHOD_DEFERRED, 0},
};

typedef struct {
    char endpoint[64];      //  fake broker endpoint
    const char *broker_key; //  its public key
    zcert_t *cert;          //  worker certificate
    vz_metrics_t *metrics;  //  registry the worker counts into
    int drain_ms;           //  budget for DRAIN
} actor_args_t;

//  Worker thread: its own loop; the pipe takes CONNECTED, DRAIN, $TERM.
typedef struct {
    vz_worker_t *worker; //  worker under test
    bool drain;          //  the loop stopped for DRAIN, not $TERM
    app_t app;           //  state of the deferred handlers
} actor_state_t;

static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    actor_state_t *st = (actor_state_t *)arg;
    char *cmd = zstr_recv(pipe);
    int rc = 0;
    if (!cmd || streq(cmd, "$TERM"))
        rc = -1;
    else if (streq(cmd, "CONNECTED"))
        zstr_send(pipe, vz_worker_connected(st->worker) ? "1" : "0");
    else if (streq(cmd, "STATS"))
        zstr_sendf(pipe, "%zu %zu %zu %zu %zu", st->app.flushes, st->app.largest, st->app.completed,
                   vz_worker_open(st->worker), st->app.big_calls);
    else if (streq(cmd, "DRAIN")) {
        st->drain = true;
        zstr_send(pipe, "DRAINING");
        rc = -1;
    }
    free(cmd);
    return rc;
}

static void s_worker_actor(zsock_t *pipe, void *arg)
{
    actor_args_t *args = (actor_args_t *)arg;
    vz_worker_config_t cfg = {.service = "svc",
                              .endpoints = args->endpoint,
                              .broker_key = args->broker_key,
                              .cert = args->cert,
                              .heartbeat_ms = HB_MS,
                              .credit = 3,
                              .metrics = args->metrics};
    actor_state_t st = {0};
    st.worker = vz_worker_new(&cfg, s_methods, sizeof s_methods / sizeof s_methods[0], &st.app);
    zloop_t *loop = zloop_new();
    zsock_signal(pipe, st.worker ? 0 : 1);
    if (st.worker) {
        int rc = vz_worker_attach(st.worker, loop);
        assert(rc == 0);
        zloop_reader(loop, pipe, s_on_pipe, &st);
        zloop_start(loop);
        if (st.drain) {
            vz_worker_drain(st.worker, args->drain_ms);
            zstr_send(pipe, "DRAINED");
        }
    }
    zloop_destroy(&loop);
    vz_worker_destroy(&st.worker);
}

static int s_group_setup(void **state)
{
    *state = ut_keys_new("worker", "broker", "svc", true);
    return *state ? 0 : -1;
}

static int s_group_teardown(void **state)
{
    return ut_keys_destroy((ut_keys_t **)state);
}

typedef struct {
    ut_broker_t broker;    //  the fake broker (the test thread)
    zactor_t *worker;      //  worker thread
    actor_args_t args;     //  its arguments
    vz_metrics_t *metrics; //  registry given to the worker
} rig_t;

//  Next message from the worker (HB too unless skip_hb) within wait_ms.
static zmsg_t *s_next(rig_t *rig, bool skip_hb, int wait_ms)
{
    return ut_broker_next(&rig->broker, skip_hb, wait_ms);
}

static void s_send(rig_t *rig, zmsg_t **msg_p)
{
    assert_int_equal(ut_broker_send(&rig->broker, msg_p), 0);
}

static void s_send_cmd(rig_t *rig, const char *cmd)
{
    assert_int_equal(ut_broker_send_cmd(&rig->broker, cmd), 0);
}

//  Until the worker reports a live link. Keeps answering its heartbeats and
//  follows its routing id: a slow run (valgrind) can outlast the liveness
//  window, and then the worker announces itself again on a new socket.
static bool s_await_connected(rig_t *rig, int64_t end)
{
    while (zclock_mono() < end) {
        s_send_cmd(rig, VZ_CMD_HEARTBEAT);
        zstr_send(rig->worker, "CONNECTED");
        char *answer = zstr_recv(rig->worker);
        bool connected = answer && streq(answer, "1");
        free(answer);
        if (connected)
            return true;
        zmsg_t *msg = s_next(rig, true, HB_MS);
        zmsg_destroy(&msg);
    }
    return false;
}

static void s_expect_rdy(rig_t *rig)
{
    zmsg_t *msg = s_next(rig, true, WAIT_MS);
    assert_non_null(msg);
    assert_int_equal(zmsg_size(msg), 3);
    char *cmd = zmsg_popstr(msg), *service = zmsg_popstr(msg), *credit = zmsg_popstr(msg);
    assert_string_equal(cmd, VZ_CMD_READY);
    assert_string_equal(service, "svc");
    assert_string_equal(credit, "3");
    free(cmd);
    free(service);
    free(credit);
    zmsg_destroy(&msg);
}

static void s_rig_start(rig_t *rig, fixture_t *f, int drain_ms)
{
    memset(rig, 0, sizeof *rig);
    assert_int_equal(ut_broker_new(&rig->broker, f->server), 0);
    rig->metrics = vz_metrics_new();
    strcpy(rig->args.endpoint, rig->broker.endpoint);
    rig->args.broker_key = zcert_public_txt(f->server);
    rig->args.cert = f->peer;
    rig->args.metrics = rig->metrics;
    rig->args.drain_ms = drain_ms;
    rig->worker = zactor_new(s_worker_actor, &rig->args);
    assert_non_null(rig->worker);
    s_expect_rdy(rig);
    s_send_cmd(rig, VZ_CMD_HEARTBEAT); //  the broker acknowledges RDY with HB
}

static void s_rig_stop(rig_t *rig)
{
    zactor_destroy(&rig->worker);
    ut_broker_destroy(&rig->broker);
    vz_metrics_destroy(&rig->metrics);
}

static double s_counter(rig_t *rig, const char *labels)
{
    return vz_series_value(vz_metrics_counter(rig->metrics, "vz_worker_requests_total",
                                              "Requests handled by this worker, by outcome",
                                              labels));
}

static double s_dropped(rig_t *rig)
{
    return vz_series_value(vz_metrics_counter(rig->metrics, "vz_worker_dropped_frames_total",
                                              "Broker frames dropped as malformed", "service=svc"));
}

//  Send REQ tag caller envelope.
static void s_send_req(rig_t *rig, const char *tag, const char *caller, const char *method,
                       const char *body, int64_t deadline_ms)
{
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "svc", method, NULL), 0);
    snprintf(req.id, sizeof req.id, "id-%s", tag);
    strcpy(req.caller, "mallory"); //  a lie the worker must overwrite
    strcpy(req.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    req.deadline_ms = deadline_ms;
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    assert_int_equal(ut_broker_send_req(&rig->broker, tag, caller, &req), 0);
}

typedef ut_rep_t rep_t;

//  The next REP (tag and decoded envelope); rep.frame is the caller's.
static void s_expect_rep(rig_t *rig, rep_t *rep)
{
    assert_int_equal(ut_broker_recv_rep(&rig->broker, rep, WAIT_MS), 0);
}

//  The next REP answers tag: an error with code error, or a reply when
//  error is NULL.
static void s_expect_tagged(rig_t *rig, const char *tag, const char *error)
{
    rep_t rep;
    s_expect_rep(rig, &rep);
    assert_string_equal(rep.tag, tag);
    assert_int_equal(rep.env.kind, error ? VZ_KIND_ERROR : VZ_KIND_REPLY);
    if (error)
        assert_string_equal(rep.env.error_code, error);
    zframe_destroy(&rep.frame);
}

static void test_ready_and_heartbeat(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    //  The worker keeps heartbeating.
    zmsg_t *msg = s_next(&rig, false, WAIT_MS);
    assert_non_null(msg);
    assert_true(zframe_streq(zmsg_first(msg), VZ_CMD_HEARTBEAT));
    zmsg_destroy(&msg);
    //  Our HB after RDY makes it connected.
    assert_true(s_await_connected(&rig, zclock_mono() + WAIT_MS));
    s_rig_stop(&rig);
}

static void test_dispatch(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    rep_t rep;
    s_send_req(&rig, "tag00001", "alice", "echo", "hi", vz_now_ms() + WAIT_MS);
    s_expect_rep(&rig, &rep);
    assert_string_equal(rep.tag, "tag00001");
    assert_int_equal(rep.env.kind, VZ_KIND_REPLY);
    assert_string_equal(rep.env.id, "id-tag00001");
    assert_string_equal(rep.env.traceparent,
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_int_equal(rep.env.body_len, 2);
    assert_memory_equal(rep.env.body, "hi", 2);
    zframe_destroy(&rep.frame);

    //  The caller is the broker's word, not the envelope's.
    s_send_req(&rig, "tag00002", "alice", "caller", "", 0);
    s_expect_rep(&rig, &rep);
    assert_string_equal(rep.tag, "tag00002");
    assert_int_equal(rep.env.body_len, 5);
    assert_memory_equal(rep.env.body, "alice", 5);
    zframe_destroy(&rep.frame);

    s_send_req(&rig, "tag00003", "alice", "nosuch", "", 0);
    s_expect_tagged(&rig, "tag00003", VZ_ERR_UNKNOWN_METHOD);

    s_send_req(&rig, "tag00004", "alice", "small", "12345", 0);
    s_expect_rep(&rig, &rep);
    assert_string_equal(rep.env.error_code, VZ_ERR_INVALID);
    zframe_destroy(&rep.frame);

    s_send_req(&rig, "tag00005", "alice", "fail", "", 0);
    s_expect_rep(&rig, &rep);
    assert_string_equal(rep.env.error_code, VZ_ERR_INTERNAL);
    zframe_destroy(&rep.frame);

    s_send_req(&rig, "tag00006", "alice", "deny", "", 0);
    s_expect_rep(&rig, &rep);
    assert_int_equal(rep.env.kind, VZ_KIND_ERROR);
    assert_string_equal(rep.env.error_code, VZ_ERR_FORBIDDEN);
    assert_string_equal(rep.env.id, "id-tag00006");
    zframe_destroy(&rep.frame);

    //  A reply may carry context for the gateway (HTTP status).
    s_send_req(&rig, "tag00007", "alice", "created", "", 0);
    s_expect_rep(&rig, &rep);
    assert_int_equal(rep.env.kind, VZ_KIND_REPLY);
    assert_string_equal(vz_envelope_ctx_get(&rep.env, "http_status"), "201");
    zframe_destroy(&rep.frame);

    assert_true(s_counter(&rig, "service=svc,method=echo,outcome=ok") == 1);
    assert_true(s_counter(&rig, "service=svc,method=small,outcome=invalid") == 1);
    assert_true(s_counter(&rig, "service=svc,method=fail,outcome=internal") == 1);
    assert_true(s_counter(&rig, "service=svc,method=deny,outcome=error") == 1);
    assert_true(s_counter(&rig, "service=svc,method=_unknown,outcome=unknown_method") == 1);
    char *text = vz_metrics_render(rig.metrics);
    assert_non_null(strstr(text, "vz_worker_request_duration_seconds_count{"));
    free(text);
    s_rig_stop(&rig);
}

static void test_expired_dropped(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    s_send_req(&rig, "expired1", "alice", "echo", "late", vz_now_ms() - 1);
    s_send_req(&rig, "fresh001", "alice", "echo", "now", vz_now_ms() + WAIT_MS);
    //  Requests are handled in order: the first REP must be the fresh one.
    s_expect_tagged(&rig, "fresh001", NULL);
    assert_true(s_counter(&rig, "service=svc,method=echo,outcome=expired") == 1);
    s_rig_stop(&rig);
}

static void test_malformed_ignored(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REQUEST);
    zmsg_addstr(msg, "tag00001");
    s_send(&rig, &msg); //  too few frames
    msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REQUEST);
    zmsg_addstr(msg, "abc");
    zmsg_addstr(msg, "alice");
    zmsg_addstr(msg, "x");
    s_send(&rig, &msg); //  tag of the wrong size
    s_send_cmd(&rig, "NOPE");
    msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_HEARTBEAT);
    zmsg_addstr(msg, "extra");
    s_send(&rig, &msg);
    zmsg_t *empty = zmsg_new();
    zmsg_addmem(empty, NULL, 0);
    s_send(&rig, &empty);

    //  A sane tag with an undecodable envelope gets a malformed error.
    msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REQUEST);
    zmsg_addmem(msg, "badenv01", VZ_TAG_SIZE);
    zmsg_addstr(msg, "alice");
    zmsg_addstr(msg, "\xc1\xff\x00garbage");
    s_send(&rig, &msg);
    s_expect_tagged(&rig, "badenv01", VZ_ERR_MALFORMED);

    //  Still serving.
    s_send_req(&rig, "after001", "alice", "echo", "ok", 0);
    s_expect_tagged(&rig, "after001", NULL);
    assert_true(s_dropped(&rig) == 5);
    s_rig_stop(&rig);
}

static void test_silence_reconnects(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    zframe_t *old = zframe_dup(rig.broker.rid);
    rig.broker.silent = true;
    //  Say nothing more: the worker must give up on us and announce again
    //  from a new socket (a new routing id).
    s_expect_rdy(&rig);
    assert_false(zframe_eq(old, rig.broker.rid));
    zframe_destroy(&old);
    rig.broker.silent = false;
    //  And it serves on the new link.
    s_send_req(&rig, "again001", "alice", "echo", "x", 0);
    s_expect_tagged(&rig, "again001", NULL);
    s_rig_stop(&rig);
}

static void test_bye_from_broker_reannounces(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    zframe_t *old = zframe_dup(rig.broker.rid);
    s_send_cmd(&rig, VZ_CMD_BYE);
    s_expect_rdy(&rig);
    assert_false(zframe_eq(old, rig.broker.rid));
    zframe_destroy(&old);
    s_rig_stop(&rig);
}

//  DRAIN the worker and answer its BYE, so it may finish what it holds.
static void s_drain_begin(rig_t *rig)
{
    zstr_send(rig->worker, "DRAIN");
    char *ack = zstr_recv(rig->worker);
    assert_string_equal(ack, "DRAINING");
    free(ack);
    zmsg_t *msg = s_next(rig, true, WAIT_MS);
    assert_non_null(msg);
    assert_true(zframe_streq(zmsg_first(msg), VZ_CMD_BYE));
    zmsg_destroy(&msg);
    s_send_cmd(rig, VZ_CMD_BYE);
}

//  The worker thread reports the drain finished.
static void s_drain_end(rig_t *rig)
{
    zpoller_t *poller = zpoller_new(rig->worker, NULL);
    assert_true(zpoller_wait(poller, WAIT_MS) == rig->worker);
    zpoller_destroy(&poller);
    char *done = zstr_recv(rig->worker);
    assert_string_equal(done, "DRAINED");
    free(done);
}

static void test_drain(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 60000);
    //  Let the worker see our HB first, so the link counts as alive.
    assert_true(s_await_connected(&rig, zclock_mono() + WAIT_MS));
    zstr_send(rig.worker, "DRAIN");
    char *ack = zstr_recv(rig.worker);
    assert_string_equal(ack, "DRAINING");
    free(ack);
    zmsg_t *msg = s_next(&rig, true, WAIT_MS);
    assert_non_null(msg);
    assert_true(zframe_streq(zmsg_first(msg), VZ_CMD_BYE));
    zmsg_destroy(&msg);

    //  Work already dispatched is still served while draining.
    s_send_req(&rig, "drain001", "alice", "echo", "last", 0);
    s_expect_tagged(&rig, "drain001", NULL);

    //  Our BYE ends the drain long before its 60 s budget.
    s_send_cmd(&rig, VZ_CMD_BYE);
    s_drain_end(&rig);
    s_rig_stop(&rig);
}

//  STATS from the worker thread: flushes, largest batch, completed, open,
//  big handlers run.
static void s_stats(rig_t *rig, size_t out[5])
{
    zstr_send(rig->worker, "STATS");
    char *text = zstr_recv(rig->worker);
    assert_non_null(text);
    assert_int_equal(
        sscanf(text, "%zu %zu %zu %zu %zu", &out[0], &out[1], &out[2], &out[3], &out[4]), 5);
    free(text);
}

//  Wait until the worker holds n deferred replies.
static void s_await_open(rig_t *rig, size_t n)
{
    size_t st[5] = {0};
    int64_t end = zclock_mono() + WAIT_MS;
    while (st[3] != n && zclock_mono() < end)
        s_stats(rig, st);
    assert_int_equal(st[3], n);
}

static void test_deferred_batch(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    //  Sent back to back: the worker takes what is queued in one batch and
    //  flushes once per batch, so flushes <= requests.
    enum { N = 16 };
    char tag[VZ_TAG_SIZE + 1];
    for (int i = 0; i < N; i++) {
        snprintf(tag, sizeof tag, "defer%03d", i);
        char body[8];
        snprintf(body, sizeof body, "b%d", i);
        s_send_req(&rig, tag, "alice", "later", body, vz_now_ms() + WAIT_MS);
    }
    //  A synchronous method in the same stream still answers at once.
    s_send_req(&rig, "sync0001", "alice", "echo", "now", 0);
    bool seen[N] = {false};
    bool sync_seen = false;
    for (int k = 0; k < N + 1; k++) {
        rep_t rep;
        s_expect_rep(&rig, &rep);
        if (streq(rep.tag, "sync0001")) {
            sync_seen = true;
            assert_int_equal(rep.env.kind, VZ_KIND_REPLY);
            zframe_destroy(&rep.frame);
            continue;
        }
        int i = -1;
        assert_int_equal(sscanf(rep.tag, "defer%03d", &i), 1);
        assert_true(i >= 0 && i < N && !seen[i]);
        seen[i] = true;
        //  The tag, the id and the body all belong to the same request.
        char want[32];
        snprintf(want, sizeof want, "id-%s", rep.tag);
        assert_string_equal(rep.env.id, want);
        assert_int_equal(rep.env.kind, VZ_KIND_REPLY);
        assert_string_equal(rep.env.method, "later");
        snprintf(want, sizeof want, "done:b%d", i);
        assert_int_equal(rep.env.body_len, strlen(want));
        assert_memory_equal(rep.env.body, want, strlen(want));
        zframe_destroy(&rep.frame);
    }
    assert_true(sync_seen);
    size_t st[5];
    s_stats(&rig, st);
    assert_true(st[0] >= 1 && st[0] <= N);
    assert_int_equal(st[2], N);
    assert_int_equal(st[3], 0);
    print_message("deferred: %d requests in %zu flushes, largest %zu\n", N, st[0], st[1]);
    assert_true(s_counter(&rig, "service=svc,method=later,outcome=ok") == N);
    s_rig_stop(&rig);
}

//  A handle completed inside the handler that deferred it: answered once
//  the handler returns, and nothing stays open.
static void test_deferred_completed_at_once(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    s_send_req(&rig, "atonce01", "alice", "atonce", "body", vz_now_ms() + WAIT_MS);
    s_send_req(&rig, "atonce02", "alice", "atonce", "", vz_now_ms() + WAIT_MS);
    for (int k = 0; k < 2; k++) {
        rep_t rep;
        s_expect_rep(&rig, &rep);
        assert_string_equal(rep.env.method, "atonce");
        if (streq(rep.tag, "atonce01")) {
            assert_int_equal(rep.env.kind, VZ_KIND_REPLY);
            assert_int_equal(rep.env.body_len, 4);
            assert_memory_equal(rep.env.body, "body", 4);
        } else {
            assert_string_equal(rep.tag, "atonce02");
            assert_int_equal(rep.env.kind, VZ_KIND_ERROR);
            assert_string_equal(rep.env.error_code, VZ_ERR_UNAVAILABLE);
        }
        zframe_destroy(&rep.frame);
    }
    size_t st[5];
    s_stats(&rig, st);
    assert_int_equal(st[3], 0);
    assert_true(s_counter(&rig, "service=svc,method=atonce,outcome=ok") == 1);
    assert_true(s_counter(&rig, "service=svc,method=atonce,outcome=error") == 1);
    s_rig_stop(&rig);
}

//  A deferred reply nobody completes is answered "internal" when the
//  worker drains, and its handle is freed (ASan/valgrind see no leak).
static void test_deferred_abandoned_at_drain(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 60000);
    s_send_req(&rig, "hold0001", "alice", "hold", "", 0);
    s_await_open(&rig, 1);
    assert_true(s_await_connected(&rig, zclock_mono() + WAIT_MS));
    s_drain_begin(&rig);
    rep_t rep;
    s_expect_rep(&rig, &rep);
    assert_string_equal(rep.tag, "hold0001");
    assert_string_equal(rep.env.id, "id-hold0001");
    assert_int_equal(rep.env.kind, VZ_KIND_ERROR);
    assert_string_equal(rep.env.error_code, VZ_ERR_INTERNAL);
    zframe_destroy(&rep.frame);
    s_drain_end(&rig);
    assert_true(s_counter(&rig, "service=svc,method=hold,outcome=error") == 1);
    s_rig_stop(&rig);
}

//  Destroying the worker with a handle open answers and frees it too.
static void test_deferred_abandoned_at_destroy(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    s_send_req(&rig, "hold0002", "alice", "hold", "", 0);
    s_await_open(&rig, 1);
    s_rig_stop(&rig);
}

//  One bundle item: a whole request envelope to svc.method (vz_batch.h).
static void s_item(vz_batch_item_t *item, const char *method, const char *id, const char *body,
                   int64_t deadline_ms)
{
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "svc", method, id), 0);
    strcpy(req.caller, "mallory"); //  the outer caller frame is the only word
    snprintf(req.traceparent, sizeof req.traceparent,
             "00-0af7651916cd43dd8448eb211c80319c-%016x-01", (unsigned)strlen(id) + 1);
    vz_envelope_ctx_set(&req, "item", id);
    req.deadline_ms = deadline_ms;
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    uint8_t *buf;
    size_t len;
    assert_int_equal(vz_envelope_encode(&req, &buf, &len), 0);
    *item = (vz_batch_item_t){.data = buf, .len = len};
}

//  n items to method with empty bodies and ids <prefix><i>.
static void s_items(vz_batch_item_t *items, char (*ids)[24], int n, const char *method,
                    const char *prefix)
{
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "%s%d", prefix, i);
        s_item(&items[i], method, ids[i], "", vz_now_ms() + WAIT_MS);
    }
}

//  Send REQ tag caller <bundle of n items to svc.method>; frees the items.
static void s_send_bundle(rig_t *rig, const char *tag, const char *method, vz_batch_item_t *items,
                          size_t n)
{
    vz_envelope_t outer;
    assert_int_equal(vz_envelope_request(&outer, "svc", method, NULL), 0);
    snprintf(outer.id, sizeof outer.id, "bundle-%s", tag);
    outer.flags = VZ_FLAG_BUNDLE;
    outer.deadline_ms = vz_now_ms() + WAIT_MS;
    uint8_t *body = vz_batch_request_encode(items, n, &outer.body_len);
    outer.body = body;
    assert_int_equal(ut_broker_send_req(&rig->broker, tag, "alice", &outer), 0);
    free(body);
    for (size_t i = 0; i < n; i++)
        free((void *)items[i].data);
}

//  The bundle reply for tag: n item envelopes decoded into out (pointing
//  into rep's frame, which the caller destroys).
static void s_expect_bundle(rig_t *rig, const char *tag, rep_t *rep, vz_envelope_t *out, size_t n)
{
    s_expect_rep(rig, rep);
    assert_string_equal(rep->tag, tag);
    assert_int_equal(rep->env.kind, VZ_KIND_REPLY);
    char want[32];
    snprintf(want, sizeof want, "bundle-%s", tag);
    assert_string_equal(rep->env.id, want);
    vz_batch_item_t items[VZ_BATCH_MAX];
    size_t got = 0;
    assert_int_equal(
        vz_batch_request_decode(rep->env.body, rep->env.body_len, items, VZ_BATCH_MAX, &got, NULL),
        0);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(vz_envelope_decode(&out[i], items[i].data, items[i].len, NULL, NULL), 0);
}

//  A bundle is unpacked by the worker: each item is checked and answered
//  as a request of its own, in its own slot, under the outer caller.
static void test_bundle(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    int64_t later = vz_now_ms() + WAIT_MS;
    vz_batch_item_t items[8];
    s_item(&items[0], "echo", "e0", "zero", later);
    s_item(&items[1], "echo", "e1", "one", 0);
    s_item(&items[2], "deny", "e2", "", later); //  not the bundle's method
    items[3] = (vz_batch_item_t){.data = (uint8_t *)strdup("\x93garbage"), .len = 8};
    s_item(&items[4], "echo", "e4", "late", vz_now_ms() - 1); //  deadline passed
    s_item(&items[5], "echo", "e5", "five", later);
    s_send_bundle(&rig, "bund0001", "echo", items, 6);
    rep_t rep;
    vz_envelope_t out[8];
    s_expect_bundle(&rig, "bund0001", &rep, out, 6);
    const char *ids[] = {"e0", "e1", "e2", "", "e4", "e5"};
    const char *bodies[] = {"zero", "one", NULL, NULL, NULL, "five"};
    const char *codes[] = {NULL, NULL, VZ_ERR_MALFORMED, VZ_ERR_MALFORMED, VZ_ERR_TIMEOUT, NULL};
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(out[i].id, ids[i]);
        if (bodies[i]) {
            assert_int_equal(out[i].kind, VZ_KIND_REPLY);
            assert_int_equal(out[i].body_len, strlen(bodies[i]));
            assert_memory_equal(out[i].body, bodies[i], out[i].body_len);
            //  Each reply carries its own request's trace context.
            char tp[64];
            snprintf(tp, sizeof tp, "00-0af7651916cd43dd8448eb211c80319c-%016x-01",
                     (unsigned)strlen(ids[i]) + 1);
            assert_string_equal(out[i].traceparent, tp);
        } else {
            assert_int_equal(out[i].kind, VZ_KIND_ERROR);
            assert_string_equal(out[i].error_code, codes[i]);
        }
    }
    zframe_destroy(&rep.frame);

    //  The caller of every item is the one the broker vouched for.
    s_item(&items[0], "caller", "c0", "", later);
    s_item(&items[1], "caller", "c1", "", later);
    s_send_bundle(&rig, "bund0002", "caller", items, 2);
    s_expect_bundle(&rig, "bund0002", &rep, out, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(out[i].kind, VZ_KIND_REPLY);
        assert_int_equal(out[i].body_len, 5);
        assert_memory_equal(out[i].body, "alice", 5);
    }
    zframe_destroy(&rep.frame);

    //  Per-item size limits and per-item reply ctx.
    s_item(&items[0], "small", "s0", "1234", later);
    s_item(&items[1], "small", "s1", "12345", later);
    s_send_bundle(&rig, "bund0003", "small", items, 2);
    s_expect_bundle(&rig, "bund0003", &rep, out, 2);
    assert_int_equal(out[0].kind, VZ_KIND_REPLY);
    assert_string_equal(out[1].error_code, VZ_ERR_INVALID);
    zframe_destroy(&rep.frame);
    s_item(&items[0], "created", "k0", "", later);
    s_send_bundle(&rig, "bund0004", "created", items, 1);
    s_expect_bundle(&rig, "bund0004", &rep, out, 1);
    assert_string_equal(vz_envelope_ctx_get(&out[0], "http_status"), "201");
    zframe_destroy(&rep.frame);

    //  An outer body that is no bundle: one error for the whole envelope.
    vz_envelope_t bad;
    assert_int_equal(vz_envelope_request(&bad, "svc", "echo", "bundle-bad"), 0);
    bad.flags = VZ_FLAG_BUNDLE;
    bad.body = (const uint8_t *)"\xc4\x01x"; //  a bin, not an array
    bad.body_len = 3;
    assert_int_equal(ut_broker_send_req(&rig.broker, "bund0005", "alice", &bad), 0);
    s_expect_tagged(&rig, "bund0005", VZ_ERR_MALFORMED);

    assert_true(s_counter(&rig, "service=svc,method=echo,outcome=ok") == 3);
    assert_true(s_counter(&rig, "service=svc,method=echo,outcome=expired") == 1);
    assert_true(s_counter(&rig, "service=svc,method=small,outcome=invalid") == 1);
    s_rig_stop(&rig);
}

//  Deferred items fill their slots from the flush; the bundle leaves once,
//  when the last slot is filled, with every reply in request order.
static void test_bundle_deferred(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    enum { N = 20 };
    vz_batch_item_t items[N];
    char ids[N][8], bodies[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "d%d", i);
        snprintf(bodies[i], sizeof bodies[i], "b%d", i);
        s_item(&items[i], "later", ids[i], bodies[i], vz_now_ms() + WAIT_MS);
    }
    s_send_bundle(&rig, "bund0010", "later", items, N);
    s_send_req(&rig, "sync0010", "alice", "echo", "now", 0);
    rep_t rep;
    vz_envelope_t out[N];
    bool bundle_seen = false, sync_seen = false;
    for (int k = 0; k < 2; k++) {
        s_expect_rep(&rig, &rep);
        if (streq(rep.tag, "sync0010")) {
            sync_seen = true;
            zframe_destroy(&rep.frame);
            continue;
        }
        assert_string_equal(rep.tag, "bund0010");
        bundle_seen = true;
        vz_batch_item_t got[VZ_BATCH_MAX];
        size_t n = 0;
        assert_int_equal(
            vz_batch_request_decode(rep.env.body, rep.env.body_len, got, VZ_BATCH_MAX, &n, NULL),
            0);
        assert_int_equal(n, N);
        for (int i = 0; i < N; i++) {
            assert_int_equal(vz_envelope_decode(&out[i], got[i].data, got[i].len, NULL, NULL), 0);
            assert_string_equal(out[i].id, ids[i]);
            char want[16];
            snprintf(want, sizeof want, "done:b%d", i);
            assert_int_equal(out[i].body_len, strlen(want));
            assert_memory_equal(out[i].body, want, strlen(want));
        }
        zframe_destroy(&rep.frame);
    }
    assert_true(bundle_seen && sync_seen);
    size_t st[5];
    s_stats(&rig, st);
    assert_int_equal(st[2], N);
    assert_int_equal(st[3], 0);
    s_rig_stop(&rig);
}

//  Replies that fill the bundle's reply: the items not yet dispatched once
//  half a frame is used are refused unserved (bundle_overflow), the rest
//  arrive, and the reply fits one frame.
static void test_bundle_overflow(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    enum { N = 20 }; //  20 x 60 kB > the 1 MiB frame
    vz_batch_item_t items[N];
    char ids[N][24];
    s_items(items, ids, N, "big", "g");
    s_send_bundle(&rig, "bund0020", "big", items, N);
    rep_t rep;
    vz_envelope_t out[N];
    s_expect_bundle(&rig, "bund0020", &rep, out, N);
    assert_true(zframe_size(rep.frame) <= vz_envelope_limits_default.max_frame);
    size_t whole = 0, unserved = 0;
    for (int i = 0; i < N; i++) {
        if (out[i].kind == VZ_KIND_REPLY) {
            assert_int_equal(unserved, 0); //  served ones come first, in order
            assert_string_equal(out[i].id, ids[i]);
            assert_int_equal(out[i].body_len, BIG_REPLY);
            whole++;
        } else {
            assert_string_equal(out[i].error_code, VZ_ERR_BUNDLE_OVERFLOW);
            assert_string_equal(out[i].id, ids[i]);
            unserved++;
        }
    }
    size_t st[5];
    s_stats(&rig, st);
    print_message("bundle overflow: %zu whole, %zu refused unserved, %zu handlers run\n", whole,
                  unserved, st[4]);
    assert_true(whole >= 8 && unserved >= 1); //  each item was counted once above
    assert_int_equal(st[4], whole);           //  a refused item never reached its handler
    zframe_destroy(&rep.frame);
    s_rig_stop(&rig);
}

//  Deferred replies whose sizes show only after dispatch: all are served,
//  and those that do not fit are dropped (reply_dropped), largest first.
static void test_bundle_dropped(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    enum { N = 6 }; //  6 x 300 kB: three fit one frame
    vz_batch_item_t items[N];
    char ids[N][24];
    s_items(items, ids, N, "bigl", "l");
    s_send_bundle(&rig, "bund0021", "bigl", items, N);
    rep_t rep;
    vz_envelope_t out[N];
    s_expect_bundle(&rig, "bund0021", &rep, out, N);
    assert_true(zframe_size(rep.frame) <= vz_envelope_limits_default.max_frame);
    size_t whole = 0, dropped = 0;
    for (int i = 0; i < N; i++) {
        if (out[i].kind == VZ_KIND_REPLY) {
            assert_string_equal(out[i].id, ids[i]);
            assert_int_equal(out[i].body_len, 5 * BIG_REPLY);
            whole++;
        } else {
            assert_string_equal(out[i].error_code, VZ_ERR_REPLY_DROPPED);
            dropped++;
        }
    }
    size_t st[5];
    s_stats(&rig, st);
    print_message("bundle dropped: %zu whole, %zu dropped, %zu handlers run\n", whole, dropped,
                  st[4]);
    assert_int_equal(st[4], N);
    assert_int_equal(whole, 3);
    assert_int_equal(dropped, 3);
    zframe_destroy(&rep.frame);
    s_rig_stop(&rig);
}

//  Random bundles: valid items, mutated items and garbage, mixed. Every
//  bundle gets exactly one reply with one answer per item, valid items
//  their own echo, and the worker stays up (ASan/valgrind: no errors).
static void test_bundle_random(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 0);
    srand(12345);
    enum { BUNDLES = 150, MAX_ITEMS = 40 };
    for (int b = 0; b < BUNDLES; b++) {
        size_t n = 1 + (size_t)rand() % MAX_ITEMS;
        vz_batch_item_t items[MAX_ITEMS];
        char ids[MAX_ITEMS][48], bodies[MAX_ITEMS][24];
        bool valid[MAX_ITEMS];
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "r%d-%zu", b, i);
            snprintf(bodies[i], sizeof bodies[i], "x%d", rand());
            s_item(&items[i], "echo", ids[i], bodies[i], vz_now_ms() + WAIT_MS);
            valid[i] = true;
            int kind = rand() % 4;
            uint8_t *data = (uint8_t *)items[i].data;
            if (kind == 1 && items[i].len > 1) {
                //  Flip bytes: may still decode (then it is answered as
                //  whatever it now is) or not (malformed).
                for (int f = 0; f < 3; f++)
                    data[(size_t)rand() % items[i].len] ^= (uint8_t)(1 + rand() % 255);
                valid[i] = false;
            } else if (kind == 2) {
                items[i].len = (size_t)rand() % items[i].len; //  cut short
                valid[i] = false;
            }
        }
        char tag[VZ_TAG_SIZE + 1];
        snprintf(tag, sizeof tag, "rnd%05d", b);
        s_send_bundle(&rig, tag, "echo", items, n);
        rep_t rep;
        vz_envelope_t out[MAX_ITEMS];
        s_expect_bundle(&rig, tag, &rep, out, n);
        for (size_t i = 0; i < n; i++) {
            if (!valid[i])
                continue;
            assert_int_equal(out[i].kind, VZ_KIND_REPLY);
            assert_string_equal(out[i].id, ids[i]);
            assert_int_equal(out[i].body_len, strlen(bodies[i]));
            assert_memory_equal(out[i].body, bodies[i], out[i].body_len);
        }
        zframe_destroy(&rep.frame);
    }
    //  Outer bodies that are random bytes: one error each, nothing else.
    for (int b = 0; b < 50; b++) {
        uint8_t junk[64];
        size_t len = 1 + (size_t)rand() % sizeof junk;
        for (size_t i = 0; i < len; i++)
            junk[i] = (uint8_t)rand();
        junk[0] = (uint8_t)(0x90 | (rand() % 16)); //  mostly a fixarray header
        vz_envelope_t outer;
        assert_int_equal(vz_envelope_request(&outer, "svc", "echo", NULL), 0);
        snprintf(outer.id, sizeof outer.id, "junk-%d", b);
        outer.flags = VZ_FLAG_BUNDLE;
        outer.body = junk;
        outer.body_len = len;
        uint8_t *buf;
        size_t blen;
        assert_int_equal(vz_envelope_encode(&outer, &buf, &blen), 0);
        char tag[VZ_TAG_SIZE + 1];
        snprintf(tag, sizeof tag, "jnk%05d", b);
        zmsg_t *msg = zmsg_new();
        zmsg_addstr(msg, VZ_CMD_REQUEST);
        zmsg_addmem(msg, tag, VZ_TAG_SIZE);
        zmsg_addstr(msg, "alice");
        zmsg_addmem(msg, buf, blen);
        free(buf);
        s_send(&rig, &msg);
        rep_t rep;
        s_expect_rep(&rig, &rep);
        assert_string_equal(rep.tag, tag);
        //  Bytes that happen to split into items get a bundle reply (each
        //  item refused), the rest one malformed error: decide which first.
        vz_batch_item_t split[VZ_BATCH_MAX];
        size_t n_split = 0;
        const char *why = NULL;
        bool framed = vz_batch_request_decode(junk, len, split, VZ_BATCH_MAX, &n_split, &why) == 0;
        assert_int_equal(rep.env.kind, framed ? VZ_KIND_REPLY : VZ_KIND_ERROR);
        if (!framed)
            assert_string_equal(rep.env.error_code, VZ_ERR_MALFORMED);
        zframe_destroy(&rep.frame);
    }
    //  Still serving single requests afterwards.
    rep_t rep;
    s_send_req(&rig, "after001", "alice", "echo", "ok", 0);
    s_expect_rep(&rig, &rep);
    assert_int_equal(rep.env.kind, VZ_KIND_REPLY);
    zframe_destroy(&rep.frame);
    s_rig_stop(&rig);
}

//  A held item keeps its bundle open; destroying the worker answers the
//  item, which sends the bundle (and frees it: ASan/valgrind see no leak).
static void test_bundle_abandoned(void **state)
{
    rig_t rig;
    s_rig_start(&rig, *state, 60000);
    vz_batch_item_t items[2];
    s_item(&items[0], "hold", "h0", "", vz_now_ms() + 60000);
    s_item(&items[1], "hold", "h1", "", vz_now_ms() + 60000);
    s_send_bundle(&rig, "bund0030", "hold", items, 2);
    s_await_open(&rig, 2);
    assert_true(s_await_connected(&rig, zclock_mono() + WAIT_MS));
    s_drain_begin(&rig);
    rep_t rep;
    vz_envelope_t out[2];
    s_expect_bundle(&rig, "bund0030", &rep, out, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(out[i].kind, VZ_KIND_ERROR);
        assert_string_equal(out[i].error_code, VZ_ERR_INTERNAL);
    }
    zframe_destroy(&rep.frame);
    s_drain_end(&rig);
    s_rig_stop(&rig);
}

static void test_bad_config(void **state)
{
    fixture_t *f = *state;
    vz_worker_config_t cfg = {
        .service = "svc", .endpoints = "tcp://127.0.0.1:1", .broker_key = "short", .cert = f->peer};
    assert_null(vz_worker_new(&cfg, s_methods, 1, NULL));
    cfg.broker_key = zcert_public_txt(f->server);
    cfg.credit = VZ_CREDIT_MAX + 1;
    assert_null(vz_worker_new(&cfg, s_methods, 1, NULL));
    cfg.credit = 1;
    cfg.endpoints = "";
    assert_null(vz_worker_new(&cfg, s_methods, 1, NULL));
    //  A version must be a RDY token (vz_version_valid).
    cfg.endpoints = "tcp://127.0.0.1:1";
    cfg.version = "1.0 beta";
    assert_null(vz_worker_new(&cfg, s_methods, 1, NULL));
    assert_int_equal(errno, EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_and_heartbeat),
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_expired_dropped),
        cmocka_unit_test(test_malformed_ignored),
        cmocka_unit_test(test_silence_reconnects),
        cmocka_unit_test(test_bye_from_broker_reannounces),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_deferred_batch),
        cmocka_unit_test(test_deferred_completed_at_once),
        cmocka_unit_test(test_deferred_abandoned_at_drain),
        cmocka_unit_test(test_deferred_abandoned_at_destroy),
        cmocka_unit_test(test_bundle),
        cmocka_unit_test(test_bundle_deferred),
        cmocka_unit_test(test_bundle_overflow),
        cmocka_unit_test(test_bundle_dropped),
        cmocka_unit_test(test_bundle_random),
        cmocka_unit_test(test_bundle_abandoned),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
