/*  test_broker - the real vz-broker on loopback: routing, policy, deadlines, worker loss
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One broker for the group (ephemeral ports, keys and policy in a temp
 *  dir). Clients and most workers are raw CURVE DEALERs speaking the frames
 *  of vz_proto.h, so a test controls exactly when a worker answers or dies;
 *  one test runs a real vz_worker in a thread and calls it with vz_client,
 *  and one SIGKILLs real vz-echo processes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vz_broker_contract.h"
#include "vz_client.h"
#include "vz_curve.h"
#include "vz_envelope.h"
#include "vz_proto.h"
#include "vz_worker.h"

#define S_HEARTBEAT_MS 200

typedef struct {
    vzt_mesh_t *m;            //  the broker (and the vz-echo processes a test adds)
    const char *dir;          //  its directory: keys, policy, logs
    const char *endpoint;     //  broker endpoint
    const char *broker_key;   //  broker public key (Z85)
    int admin_port;           //  broker admin HTTP port
    char policy[VZ_PATH_MAX]; //  policy path
} s_env_t;

static const char *s_policy_text = "identity\n"
                                   "    tester\n"
                                   "        call = \"broker echo nowork flaky idem lru slow\"\n"
                                   "    echo\n"
                                   "        serve = \"echo flaky idem lru slow\"\n";

static void s_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static zcert_t *s_cert(s_env_t *env, const char *name)
{
    char path[VZ_PATH_MAX], err[256];
    snprintf(path, sizeof path, "%s/keys/secret/%s.key", env->dir, name);
    zcert_t *cert = vz_curve_cert_load(path, err, sizeof err);
    if (!cert)
        fail_msg("cannot load %s: %s", path, err);
    return cert;
}

static int s_setup(void **state)
{
    s_env_t *env = (s_env_t *)calloc(1, sizeof *env);
    char *const settings[] = {"VZ_HEARTBEAT_MS=200", "VZ_LOG_LEVEL=info",
                              "broker:VZ_DRAIN_TIMEOUT_MS=1000", NULL};
    env->m = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "broker",
                                               .identities = "tester,echo,stranger",
                                               .policy = s_policy_text,
                                               .env = settings});
    assert_non_null(env->m);
    env->dir = vzt_mesh_dir(env->m);
    env->endpoint = vzt_mesh_endpoint(env->m);
    env->broker_key = vzt_mesh_broker_key(env->m);
    env->admin_port = vzt_mesh_admin_port(env->m, "broker");
    snprintf(env->policy, sizeof env->policy, "%s/policy.cfg", env->dir);
    //  A key pair outside the allow directory: a stranger to ZAP itself.
    char other[VZ_PATH_MAX];
    snprintf(other, sizeof other, "%s/outside", env->dir);
    const char *const intruder[] = {"intruder", NULL};
    assert_int_equal(vzt_keys(other, intruder), 0);
    *state = env;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    int rc = vzt_mesh_destroy(&env->m);
    free(env);
    return rc;
}

//  --------------------------------------------------------------------------
//  Raw peers.

static zsock_t *s_peer(s_env_t *env, const char *name)
{
    zcert_t *cert = s_cert(env, name);
    zsock_t *sock = vz_curve_client(ZMQ_DEALER, env->endpoint, cert, env->broker_key);
    zcert_destroy(&cert);
    assert_non_null(sock);
    return sock;
}

static zframe_t *s_envelope(const char *service, const char *method, const char *id,
                            int64_t deadline, uint32_t flags, const char *body)
{
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    vz_strlcpy(req.service, service, sizeof req.service);
    vz_strlcpy(req.method, method, sizeof req.method);
    vz_strlcpy(req.id, id, sizeof req.id);
    req.deadline_ms = deadline;
    req.flags = flags;
    req.body = (const uint8_t *)body;
    req.body_len = body ? strlen(body) : 0;
    uint8_t *buf;
    size_t len;
    assert_int_equal(vz_envelope_encode(&req, &buf, &len), 0);
    zframe_t *frame = zframe_new(buf, len);
    free(buf);
    return frame;
}

static void s_send_request(zsock_t *sock, const char *service, const char *method, const char *id,
                           int64_t deadline, uint32_t flags, const char *body)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REQUEST);
    zmsg_append(msg, &(zframe_t *){s_envelope(service, method, id, deadline, flags, body)});
    assert_int_equal(zmsg_send(&msg, sock), 0);
}

static zmsg_t *s_recv(zsock_t *sock, int timeout_ms)
{
    zsock_set_rcvtimeo(sock, timeout_ms);
    return zmsg_recv(sock);
}

//  Wait for [REP, envelope] and decode it; the frame stays alive in *frame_p.
static void s_recv_reply(zsock_t *sock, int timeout_ms, vz_envelope_t *env, zframe_t **frame_p)
{
    zmsg_t *msg = s_recv(sock, timeout_ms);
    assert_non_null(msg);
    assert_int_equal(zmsg_size(msg), 2);
    char *cmd = zmsg_popstr(msg);
    assert_string_equal(cmd, VZ_CMD_REPLY);
    free(cmd);
    *frame_p = zmsg_pop(msg);
    zmsg_destroy(&msg);
    assert_int_equal(
        vz_envelope_decode(env, zframe_data(*frame_p), zframe_size(*frame_p), NULL, NULL), 0);
}

static void s_expect_error(zsock_t *sock, int timeout_ms, const char *id, const char *code)
{
    vz_envelope_t env;
    zframe_t *frame = NULL;
    s_recv_reply(sock, timeout_ms, &env, &frame);
    assert_int_equal(env.kind, VZ_KIND_ERROR);
    assert_string_equal(env.error_code, code);
    if (id)
        assert_string_equal(env.id, id);
    zframe_destroy(&frame);
}

static void s_expect_silence(zsock_t *sock, int timeout_ms)
{
    zmsg_t *msg = s_recv(sock, timeout_ms);
    if (msg) {
        zmsg_destroy(&msg);
        fail_msg("expected no answer");
    }
}

//  A fake worker: RDY, then answers only when the test says so.
static zsock_t *s_worker(s_env_t *env, const char *service, int credit)
{
    zsock_t *sock = s_peer(env, "echo");
    char digits[16];
    snprintf(digits, sizeof digits, "%d", credit);
    zstr_sendx(sock, VZ_CMD_READY, service, digits, NULL);
    zmsg_t *msg = s_recv(sock, 3000);
    assert_non_null(msg);
    char *cmd = zmsg_popstr(msg);
    assert_string_equal(cmd, VZ_CMD_HEARTBEAT);
    free(cmd);
    zmsg_destroy(&msg);
    return sock;
}

//  Next REQ for a fake worker, heartbeating while it waits. NULL on timeout.
static zmsg_t *s_worker_recv(zsock_t *sock, int timeout_ms)
{
    int64_t until = zclock_mono() + timeout_ms;
    while (zclock_mono() < until) {
        int64_t left = until - zclock_mono();
        zmsg_t *msg = s_recv(sock, (int)(left < S_HEARTBEAT_MS / 2 ? left : S_HEARTBEAT_MS / 2));
        if (!msg) {
            zstr_send(sock, VZ_CMD_HEARTBEAT);
            continue;
        }
        if (zframe_streq(zmsg_first(msg), VZ_CMD_REQUEST)) {
            assert_int_equal(zmsg_size(msg), 4);
            return msg;
        }
        zmsg_destroy(&msg);
    }
    return NULL;
}

//  Answer a REQ [REQ, tag, caller, envelope] with a reply carrying body.
static void s_worker_reply(zsock_t *sock, zmsg_t **req_p, const char *body)
{
    zmsg_t *req = *req_p;
    zframe_t *frame = zmsg_last(req);
    vz_envelope_t in, out;
    assert_int_equal(vz_envelope_decode(&in, zframe_data(frame), zframe_size(frame), NULL, NULL),
                     0);
    vz_envelope_reply_to(&out, &in);
    out.body = (const uint8_t *)body;
    out.body_len = strlen(body);
    uint8_t *buf;
    size_t len;
    assert_int_equal(vz_envelope_encode(&out, &buf, &len), 0);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REPLY);
    zmsg_first(req);
    zframe_t *tag = zmsg_next(req);
    zmsg_addmem(msg, zframe_data(tag), zframe_size(tag));
    zmsg_addmem(msg, buf, len);
    free(buf);
    assert_int_equal(zmsg_send(&msg, sock), 0);
    zmsg_destroy(req_p);
}

static void s_expect_body(zsock_t *sock, int timeout_ms, const char *body)
{
    vz_envelope_t env;
    zframe_t *frame = NULL;
    s_recv_reply(sock, timeout_ms, &env, &frame);
    assert_int_equal(env.kind, VZ_KIND_REPLY);
    assert_int_equal(env.body_len, strlen(body));
    assert_memory_equal(env.body, body, env.body_len);
    zframe_destroy(&frame);
}

//  Ping the broker on sock and expect the reply to id.
static void s_ping(zsock_t *sock, const char *id)
{
    s_send_request(sock, VZ_BROKER_SERVICE, "ping", id, vz_now_ms() + 5000, 0, NULL);
    vz_envelope_t rep;
    zframe_t *frame = NULL;
    s_recv_reply(sock, 5000, &rep, &frame);
    assert_int_equal(rep.kind, VZ_KIND_REPLY);
    assert_string_equal(rep.id, id);
    zframe_destroy(&frame);
}

//  --------------------------------------------------------------------------

static void test_ping(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *client = s_peer(env, "tester");
    s_send_request(client, VZ_BROKER_SERVICE, "ping", "p1", vz_now_ms() + 5000, 0, NULL);
    vz_envelope_t rep;
    zframe_t *frame = NULL;
    s_recv_reply(client, 5000, &rep, &frame);
    assert_int_equal(rep.kind, VZ_KIND_REPLY);
    assert_string_equal(rep.id, "p1");
    zframe_destroy(&frame);
    s_send_request(client, VZ_BROKER_SERVICE, "nosuch", "p2", 0, 0, NULL);
    s_expect_error(client, 5000, "p2", VZ_ERR_UNKNOWN_METHOD);
    zsock_destroy(&client);
}

//  A real vz_worker in its own thread and reactor.
typedef struct {
    s_env_t *env; //  test environment
} s_worker_args_t;

static int s_echo(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    //  Echo the body prefixed with the caller the broker vouched for.
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s:%.*s", req->caller, (int)req->body_len,
                     (const char *)req->body);
    return vz_reply_body(reply, buf, (size_t)n);
}

static const vz_method_t s_methods[] = {{"echo", s_echo, VZ_METHOD_IDEMPOTENT, 0}};

static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    zmsg_t *msg = zmsg_recv(pipe);
    zmsg_destroy(&msg);
    return -1; //  $TERM (or anything): stop
}

static void s_worker_actor(zsock_t *pipe, void *arg)
{
    s_env_t *env = (s_env_t *)arg;
    zcert_t *cert = s_cert(env, "echo");
    vz_worker_config_t config = {.service = "echo",
                                 .endpoints = env->endpoint,
                                 .broker_key = env->broker_key,
                                 .cert = cert,
                                 .heartbeat_ms = S_HEARTBEAT_MS,
                                 .credit = 4};
    vz_worker_t *worker = vz_worker_new(&config, s_methods, 1, NULL);
    zloop_t *loop = zloop_new();
    zloop_reader(loop, pipe, s_on_pipe, NULL);
    if (worker)
        vz_worker_attach(worker, loop);
    zsock_signal(pipe, 0);
    if (worker)
        zloop_start(loop);
    //  The worker detaches from the loop while draining: the loop goes last.
    if (worker)
        vz_worker_drain(worker, 1000);
    vz_worker_destroy(&worker);
    zloop_destroy(&loop);
    zcert_destroy(&cert);
}

//  Ask the broker how many workers serve service, until it says n.
static void s_wait_workers(zsock_t *client, const char *service, size_t n)
{
    int64_t until = zclock_mono() + 5000;
    while (zclock_mono() < until) {
        s_send_request(client, VZ_BROKER_SERVICE, "services", "s", 0, 0, NULL);
        vz_envelope_t rep;
        zframe_t *frame = NULL;
        s_recv_reply(client, 2000, &rep, &frame);
        //  The services reply through its contract's codec.
        vz_broker_service_t list[64];
        size_t count = 0, seen = 0;
        if (vz_broker_services_decode(rep.body, rep.body_len, list, 64, &count, NULL, NULL) == 0)
            for (size_t i = 0; i < count; i++)
                if (strcmp(list[i].name, service) == 0)
                    seen = (size_t)list[i].workers;
        zframe_destroy(&frame);
        if (seen == n)
            return;
        zsock_set_rcvtimeo(client, 50); //  brief pause between polls, bounded by until
        zmsg_t *stray = zmsg_recv(client);
        zmsg_destroy(&stray);
    }
    fail_msg("service %s never had %zu workers", service, n);
}

static void test_real_worker(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zactor_t *actor = zactor_new(s_worker_actor, env);
    zsock_t *probe = s_peer(env, "tester");
    s_wait_workers(probe, "echo", 1);
    zsock_destroy(&probe);

    zcert_t *cert = s_cert(env, "tester");
    vz_client_config_t config = {
        .endpoints = env->endpoint, .broker_key = env->broker_key, .cert = cert};
    vz_client_t *client = vz_client_new(&config);
    assert_non_null(client);
    for (int i = 0; i < 20; i++) {
        vz_envelope_t req;
        vz_envelope_init(&req, VZ_KIND_REQUEST);
        vz_strlcpy(req.service, "echo", sizeof req.service);
        vz_strlcpy(req.method, "echo", sizeof req.method);
        req.body = (const uint8_t *)"hello";
        req.body_len = 5;
        vz_response_t *rsp = NULL;
        assert_int_equal(vz_client_call(client, &req, 5000, &rsp), 0);
        assert_int_equal(rsp->env.kind, VZ_KIND_REPLY);
        assert_int_equal(rsp->env.body_len, strlen("tester:hello"));
        assert_memory_equal(rsp->env.body, "tester:hello", rsp->env.body_len);
        vz_response_destroy(&rsp);
    }
    vz_client_destroy(&client);
    zcert_destroy(&cert);
    zactor_destroy(&actor);
}

static void test_unknown_key(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    char path[VZ_PATH_MAX], err[256];
    snprintf(path, sizeof path, "%s/outside/secret/intruder.key", env->dir);
    zcert_t *cert = vz_curve_cert_load(path, err, sizeof err);
    assert_non_null(cert);
    zsock_t *sock = vz_curve_client(ZMQ_DEALER, env->endpoint, cert, env->broker_key);
    assert_non_null(sock);
    s_send_request(sock, VZ_BROKER_SERVICE, "ping", "x", 0, 0, NULL);
    s_expect_silence(sock, 700);
    zsock_destroy(&sock);
    zcert_destroy(&cert);
}

static void test_plain_client(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *sock = zsock_new_dealer(env->endpoint);
    assert_non_null(sock);
    s_send_request(sock, VZ_BROKER_SERVICE, "ping", "x", 0, 0, NULL);
    s_expect_silence(sock, 700);
    zsock_destroy(&sock);
}

static void test_forbidden(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    //  Allowed by ZAP, absent from the policy.
    zsock_t *stranger = s_peer(env, "stranger");
    s_send_request(stranger, "echo", "echo", "f1", 0, 0, "x");
    s_expect_error(stranger, 5000, "f1", VZ_ERR_FORBIDDEN);
    zstr_sendx(stranger, VZ_CMD_READY, "echo", "1", NULL);
    zmsg_t *msg = s_recv(stranger, 5000);
    assert_non_null(msg);
    assert_true(zframe_streq(zmsg_first(msg), VZ_CMD_BYE));
    zmsg_destroy(&msg);
    zsock_destroy(&stranger);
    //  Known, but not allowed to call that service, nor to serve one it may not.
    zsock_t *tester = s_peer(env, "tester");
    s_send_request(tester, "billing", "charge", "f2", 0, 0, "x");
    s_expect_error(tester, 5000, "f2", VZ_ERR_FORBIDDEN);
    zstr_sendx(tester, VZ_CMD_READY, "echo", "1", NULL);
    msg = s_recv(tester, 5000);
    assert_non_null(msg);
    assert_true(zframe_streq(zmsg_first(msg), VZ_CMD_BYE));
    zmsg_destroy(&msg);
    zsock_destroy(&tester);
}

static void test_garbage(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *sock = s_peer(env, "tester");
    zstr_send(sock, "XYZ");                                       //  unknown command
    zstr_send(sock, VZ_CMD_REQUEST);                              //  too few frames
    zstr_sendx(sock, VZ_CMD_REQUEST, "not msgpack at all", NULL); //  undecodable, no id
    zstr_sendx(sock, VZ_CMD_REQUEST, "a", "b", NULL);             //  too many frames
    zstr_sendx(sock, VZ_CMD_REPLY, "12345678", "x", NULL);        //  reply from a non-worker
    zstr_sendx(sock, VZ_CMD_READY, "echo", "zero", NULL);         //  bad credit
    zmsg_t *empty = zmsg_new();
    zmsg_addmem(empty, "", 0);
    zmsg_send(&empty, sock); //  empty command
    //  A valid envelope that is not a request: malformed, answered by id.
    vz_envelope_t ev;
    vz_envelope_init(&ev, VZ_KIND_REPLY);
    vz_strlcpy(ev.service, "echo", sizeof ev.service);
    vz_strlcpy(ev.id, "g0", sizeof ev.id);
    uint8_t *buf;
    size_t len;
    assert_int_equal(vz_envelope_encode(&ev, &buf, &len), 0);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REQUEST);
    zmsg_addmem(msg, buf, len);
    free(buf);
    zmsg_send(&msg, sock);
    s_expect_error(sock, 5000, "g0", VZ_ERR_MALFORMED);
    s_send_request(sock, VZ_BROKER_SERVICE, "ping", "g1", 0, 0, NULL);
    vz_envelope_t rep;
    zframe_t *frame = NULL;
    s_recv_reply(sock, 5000, &rep, &frame);
    assert_int_equal(rep.kind, VZ_KIND_REPLY);
    assert_string_equal(rep.id, "g1");
    zframe_destroy(&frame);

    zsock_destroy(&sock);

    char url[64], *body = NULL;
    long status = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", env->admin_port);
    assert_int_equal(vzt_http("GET", url, NULL, &status, &body, 5000), 0);
    assert_int_equal(status, 200);
    char *line = strstr(body, "\nvz_broker_malformed_total ");
    assert_non_null(line);
    assert_true(atof(line + strlen("\nvz_broker_malformed_total ")) >= 7);
    free(body);
}

static void test_no_worker(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *client = s_peer(env, "tester");
    int64_t start = vz_now_ms();
    s_send_request(client, "nowork", "x", "n1", start + 300, 0, NULL);
    s_expect_error(client, 5000, "n1", VZ_ERR_NO_WORKER);
    assert_true(vz_now_ms() - start >= 290);
    //  A deadline already gone is answered at once.
    s_send_request(client, "nowork", "x", "n2", start - 1000, 0, NULL);
    s_expect_error(client, 5000, "n2", VZ_ERR_TIMEOUT);
    zsock_destroy(&client);
}

static void test_timeout_in_flight(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *worker = s_worker(env, "slow", 1);
    zsock_t *client = s_peer(env, "tester");
    s_send_request(client, "slow", "x", "t1", vz_now_ms() + 300, 0, NULL);
    zmsg_t *req = s_worker_recv(worker, 3000);
    assert_non_null(req);
    s_expect_error(client, 5000, "t1", VZ_ERR_TIMEOUT);
    //  The late reply is dropped; the worker got its credit back and serves the next.
    s_worker_reply(worker, &req, "late");
    s_send_request(client, "slow", "x", "t2", vz_now_ms() + 3000, 0, NULL);
    req = s_worker_recv(worker, 3000);
    assert_non_null(req);
    s_worker_reply(worker, &req, "on time");
    s_expect_body(client, 3000, "on time");
    zsock_destroy(&client);
    zsock_destroy(&worker);
}

static void test_worker_lost(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *worker = s_worker(env, "flaky", 1);
    zsock_t *client = s_peer(env, "tester");
    s_send_request(client, "flaky", "x", "w1", vz_now_ms() + 8000, 0, "data");
    zmsg_t *req = s_worker_recv(worker, 3000);
    assert_non_null(req);
    zmsg_destroy(&req);
    //  Vanish without BYE; the broker notices the silence.
    zsock_destroy(&worker);
    int64_t start = zclock_mono();
    s_expect_error(client, 5000, "w1", VZ_ERR_WORKER_LOST);
    //  Within a few heartbeats (liveness 3 x 200 ms), well inside the 5 s
    //  the receive above allows, so this bound can fail on its own.
    assert_true(zclock_mono() - start < 4 * S_HEARTBEAT_MS * VZ_HEARTBEAT_LIVENESS);
    zsock_destroy(&client);
}

static void test_idempotent_retry(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *first = s_worker(env, "idem", 1);
    zsock_t *client = s_peer(env, "tester");
    s_send_request(client, "idem", "x", "i1", vz_now_ms() + 8000, VZ_FLAG_IDEMPOTENT, "data");
    zmsg_t *req = s_worker_recv(first, 3000);
    assert_non_null(req);
    zmsg_destroy(&req);
    zsock_t *second = s_worker(env, "idem", 1);
    zsock_destroy(&first);
    req = s_worker_recv(second, 5000);
    assert_non_null(req);
    //  Same bytes as the client sent.
    vz_envelope_t in;
    zframe_t *frame = zmsg_last(req);
    assert_int_equal(vz_envelope_decode(&in, zframe_data(frame), zframe_size(frame), NULL, NULL),
                     0);
    assert_string_equal(in.id, "i1");
    assert_int_equal(in.body_len, 4);
    s_worker_reply(second, &req, "second");
    s_expect_body(client, 3000, "second");
    zsock_destroy(&client);
    zsock_destroy(&second);
}

static void test_lru(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *w1 = s_worker(env, "lru", 1);
    zsock_t *w2 = s_worker(env, "lru", 1);
    zsock_t *client = s_peer(env, "tester");
    //  Two requests, credit one each: one per worker.
    s_send_request(client, "lru", "x", "l1", vz_now_ms() + 5000, 0, NULL);
    s_send_request(client, "lru", "x", "l2", vz_now_ms() + 5000, 0, NULL);
    zmsg_t *r1 = s_worker_recv(w1, 3000);
    zmsg_t *r2 = s_worker_recv(w2, 3000);
    assert_non_null(r1);
    assert_non_null(r2);
    //  w2 finishes first, so it is the least recently used when the next comes.
    s_worker_reply(w2, &r2, "two");
    s_expect_body(client, 3000, "two");
    s_worker_reply(w1, &r1, "one");
    s_expect_body(client, 3000, "one");
    s_send_request(client, "lru", "x", "l3", vz_now_ms() + 5000, 0, NULL);
    zmsg_t *r3 = s_worker_recv(w2, 3000);
    assert_non_null(r3);
    s_worker_reply(w2, &r3, "three");
    s_expect_body(client, 3000, "three");
    //  BYE drains: w1 gets BYE back and nothing more is sent to it.
    zstr_send(w1, VZ_CMD_BYE);
    zmsg_t *bye = s_recv(w1, 3000);
    assert_non_null(bye);
    assert_true(zframe_streq(zmsg_first(bye), VZ_CMD_BYE));
    zmsg_destroy(&bye);
    zsock_destroy(&client);
    zsock_destroy(&w1);
    zsock_destroy(&w2);
}

static void test_metrics(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    char url[64], *body = NULL;
    long status = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", env->admin_port);
    assert_int_equal(vzt_http("GET", url, NULL, &status, &body, 5000), 0);
    assert_int_equal(status, 200);
    const char *series[] = {"vz_broker_workers{service=\"lru\"}",
                            "vz_broker_queue_depth{service=\"lru\"}",
                            "vz_broker_requests_total{service=\"lru\",outcome=\"replied\"}",
                            "vz_broker_requests_total{service=\"nowork\",outcome=\"no_worker\"}",
                            "vz_broker_request_duration_seconds_bucket{service=\"lru\"",
                            "vz_broker_queue_wait_seconds_bucket{service=\"lru\"",
                            "vz_broker_malformed_total",
                            "vz_broker_forbidden_total"};
    for (size_t i = 0; i < sizeof series / sizeof series[0]; i++)
        if (!strstr(body, series[i]))
            fail_msg("missing %s in /metrics", series[i]);
    //  Every dispatched request observed its wait in the queue.
    double waited = 0, replied = 0;
    assert_int_equal(
        vzt_metric(env->admin_port, "vz_broker_queue_wait_seconds_count{service=\"lru\"}", &waited),
        0);
    assert_int_equal(vzt_metric(env->admin_port,
                                "vz_broker_requests_total{service=\"lru\",outcome=\"replied\"}",
                                &replied),
                     0);
    assert_true(waited > 0 && waited >= replied);
    //  promtool, when present, is the independent judge of the format.
    if (access("/usr/bin/promtool", X_OK) == 0) {
        char path[VZ_PATH_MAX];
        snprintf(path, sizeof path, "%s/metrics.txt", env->dir);
        s_write_file(path, body);
        char cmd[VZ_PATH_MAX + 64];
        snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics < %s", path);
        assert_int_equal(system(cmd), 0);
    }
    free(body);
}

typedef struct {
    zsock_t *sock; //  the "stranger" peer
    int kind;      //  kind of the last answer to ping
} ping_goal_t;

static bool s_ping_replied(void *arg)
{
    ping_goal_t *goal = arg;
    s_send_request(goal->sock, VZ_BROKER_SERVICE, "ping", "r", 0, 0, NULL);
    vz_envelope_t rep;
    zframe_t *frame = NULL;
    s_recv_reply(goal->sock, 3000, &rep, &frame);
    goal->kind = rep.kind;
    zframe_destroy(&frame);
    return goal->kind == VZ_KIND_REPLY;
}

typedef struct {
    const char *log;    //  the broker's log
    const char *needle; //  the line that shows the refusal
} log_goal_t;

static bool s_log_has(void *arg)
{
    log_goal_t *goal = arg;
    return vzt_file_has(goal->log, goal->needle);
}

static void test_policy_reload(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *stranger = s_peer(env, "stranger");
    ping_goal_t ping = {stranger, 0};
    assert_false(s_ping_replied(&ping)); //  not in the policy yet
    char text[1024];
    snprintf(text, sizeof text, "%s    stranger\n        call = \"broker\"\n", s_policy_text);
    s_write_file(env->policy, text);
    kill(vzt_mesh_pid(env->m, "broker"), SIGHUP);
    //  The reload is asynchronous: ask until the answer changes.
    assert_true(vzt_wait_until(s_ping_replied, &ping, 5000));

    //  A file that parses but names a bad service is read and refused: the
    //  broker logs the refusal with what it read, and the previous policy
    //  (stranger may call the broker) stays in force.
    snprintf(text, sizeof text, "%s    stranger\n        call = \"broker no/such\"\n",
             s_policy_text);
    s_write_file(env->policy, text);
    char *log = vzt_mesh_log(env->m, "broker");
    log_goal_t refused = {log, "bad service \\\"no/such\\\""};
    assert_false(s_log_has(&refused));
    kill(vzt_mesh_pid(env->m, "broker"), SIGHUP);
    if (!vzt_wait_until(s_log_has, &refused, 5000))
        fail_msg("the broker never logged refusing the policy (%s)", refused.needle);
    assert_true(vzt_file_has(log, "unable to reload policy: keeping the old one"));
    free(log);
    assert_true(s_ping_replied(&ping));
    s_write_file(env->policy, s_policy_text);
    zsock_destroy(&stranger);
}

static double s_metric(s_env_t *env, const char *series)
{
    double value = 0;
    int rc = vzt_metric(env->admin_port, series, &value);
    assert_true(rc == 0 || rc == -ENOENT);
    return value;
}

//  SIGKILL and reap. Then a few pings through the broker: libzmq learns of
//  the closed connection in its I/O thread and tells the socket through a
//  short chain of commands; a request routed before that arrives is written
//  into the dying pipe and lost (the residual window docs/services/broker.md
//  describes). The round trips take a millisecond, far below the heartbeat.
//  Round trips through the broker for at least 500 ms (and at least 3): the
//  broker's I/O thread handles the closed connection between them, also on
//  a loaded machine where 3 quick pings, and then 100 ms of them (eight
//  engineers' builds on two cores), were seen to be too few. No event tells
//  a test that libzmq has torn the pipe down, so this stays a bounded wait.
static void s_settle(zsock_t *client)
{
    int64_t until = zclock_mono() + 500;
    for (int i = 0; i < 3 || zclock_mono() < until; i++)
        s_ping(client, "settle");
}

static void s_kill9(s_env_t *env, const char *tag, zsock_t *client)
{
    assert_int_equal(vzt_mesh_kill(env->m, tag, SIGKILL), 0);
    s_settle(client);
}

#define S_LOST_BY_SEND "vz_broker_workers_lost_total{detected=\"send\"}"

//  A worker killed with SIGKILL: its TCP connection closes at once, so the
//  next send to it fails (ROUTER_MANDATORY) and the broker forgets it then,
//  instead of after VZ_HEARTBEAT_LIVENESS silent intervals. A request that
//  is not idempotent may go to another worker because it never left.
static void test_kill_worker(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *client = s_peer(env, "tester");
    s_wait_workers(client, "echo", 0);
    //  First registered is first in the LRU list: the request will go to "a".
    assert_non_null(vzt_mesh_add(env->m, "echo", "echo-a", NULL, true));
    s_wait_workers(client, "echo", 1);
    assert_non_null(vzt_mesh_add(env->m, "echo", "echo-b", NULL, true));
    s_wait_workers(client, "echo", 2);
    double lost = s_metric(env, S_LOST_BY_SEND);

    s_kill9(env, "echo-a", client);
    int64_t start = zclock_mono();
    s_send_request(client, "echo", "echo", "k1", vz_now_ms() + 5000, 0, "after kill");
    s_expect_body(client, 5000, "after kill");
    //  Before: worker_lost after 3 intervals of silence (600 ms here).
    assert_true(zclock_mono() - start < S_HEARTBEAT_MS * VZ_HEARTBEAT_LIVENESS);
    assert_true(s_metric(env, S_LOST_BY_SEND) >= lost + 1);
    s_wait_workers(client, "echo", 1);

    //  No worker left: the request waits for one and gets no_worker at its deadline.
    s_kill9(env, "echo-b", client);
    start = zclock_mono();
    s_send_request(client, "echo", "echo", "k2", vz_now_ms() + 400, 0, "nobody");
    s_expect_error(client, 5000, "k2", VZ_ERR_NO_WORKER);
    assert_true(zclock_mono() - start >= 350);
    assert_true(s_metric(env, S_LOST_BY_SEND) >= lost + 2);
    s_wait_workers(client, "echo", 0);
    zsock_destroy(&client);
}

#define S_CLIENT_GONE "vz_broker_send_failed_total{peer=\"client\",reason=\"unreachable\"}"

//  Replies for a client that disconnected are dropped and counted; the
//  worker keeps being served.
static void test_client_gone(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    enum { N = 8 };
    zsock_t *worker = s_worker(env, "slow", N);
    zsock_t *client = s_peer(env, "tester");
    zmsg_t *reqs[N];
    for (int i = 0; i < N; i++) {
        char id[8];
        snprintf(id, sizeof id, "c%d", i);
        s_send_request(client, "slow", "x", id, vz_now_ms() + 8000, 0, NULL);
    }
    for (int i = 0; i < N; i++) {
        reqs[i] = s_worker_recv(worker, 3000);
        assert_non_null(reqs[i]);
    }
    double before = s_metric(env, S_CLIENT_GONE);
    zsock_destroy(&client);
    //  zmq_close is asynchronous: answer one at a time until the broker saw the client go.
    bool counted = false;
    for (int i = 0; i < N; i++) {
        s_worker_reply(worker, &reqs[i], "nobody listens");
        for (int k = 0; k < 20 && !counted; k++) {
            counted = s_metric(env, S_CLIENT_GONE) > before;
            if (!counted) {
                zmsg_t *hb = s_recv(worker, 10); //  heartbeats only; bounded pause
                zmsg_destroy(&hb);
            }
        }
    }
    assert_true(counted);
    //  The broker still serves this worker.
    client = s_peer(env, "tester");
    s_send_request(client, "slow", "x", "c9", vz_now_ms() + 3000, 0, NULL);
    zmsg_t *req = s_worker_recv(worker, 3000);
    assert_non_null(req);
    s_worker_reply(worker, &req, "here");
    s_expect_body(client, 3000, "here");
    zsock_destroy(&client);
    zsock_destroy(&worker);
}

//  A frame over the limit never reaches the broker's code: ZMQ_MAXMSGSIZE
//  (set by vz_curve_server before bind) makes libzmq drop the connection
//  before buffering it, so the malformed counter does not move; the DEALER
//  reconnects and is served again, like everyone else.
static void test_oversize(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *sock = s_peer(env, "tester");
    zsock_t *big = s_peer(env, "tester");
    s_ping(big, "o0");
    double malformed = s_metric(env, "vz_broker_malformed_total");
    size_t huge = 3u << 20;
    char *blob = (char *)malloc(huge);
    assert_non_null(blob);
    memset(blob, 'x', huge);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REQUEST);
    zmsg_addmem(msg, blob, huge);
    free(blob);
    assert_int_equal(zmsg_send(&msg, big), 0);
    s_expect_silence(big, 300);
    s_ping(sock, "o1");
    s_ping(big, "o2");
    assert_true(s_metric(env, "vz_broker_malformed_total") == malformed);
    zsock_destroy(&big);
    zsock_destroy(&sock);
}

//  A worker that replaces its socket (new routing id) leaves its old entry
//  behind. Once the old connection is closed the first send to that entry
//  fails and the request goes to the new registration, even if it is not
//  idempotent.
static void test_stale_registration(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *client = s_peer(env, "tester");
    zsock_t *old = s_worker(env, "lru", 1);
    zsock_t *fresh = s_worker(env, "lru", 1);
    s_wait_workers(client, "lru", 2);
    zsock_destroy(&old);
    s_settle(client); //  as in s_kill9: let libzmq notice the closed connection
    s_send_request(client, "lru", "x", "s1", vz_now_ms() + 5000, 0, NULL);
    zmsg_t *req = s_worker_recv(fresh, 3000);
    assert_non_null(req);
    s_worker_reply(fresh, &req, "fresh");
    s_expect_body(client, 3000, "fresh");
    s_wait_workers(client, "lru", 1);
    zsock_destroy(&fresh);
    zsock_destroy(&client);
}

//  Last: SIGTERM answers what is queued, says BYE to workers, exits 0.
static void test_sigterm(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *worker = s_worker(env, "slow", 1);
    zsock_t *client = s_peer(env, "tester");
    s_send_request(client, "slow", "x", "q1", vz_now_ms() + 8000, 0, NULL);
    zmsg_t *req = s_worker_recv(worker, 3000);
    assert_non_null(req);
    s_send_request(client, "slow", "x", "q2", vz_now_ms() + 8000, 0, NULL);
    //  Make sure q2 is queued before the signal: ping goes through the same pipe after it.
    s_send_request(client, VZ_BROKER_SERVICE, "ping", "q3", 0, 0, NULL);
    vz_envelope_t rep;
    zframe_t *frame = NULL;
    s_recv_reply(client, 3000, &rep, &frame);
    assert_string_equal(rep.id, "q3");
    zframe_destroy(&frame);
    kill(vzt_mesh_pid(env->m, "broker"), SIGTERM);
    s_expect_error(client, 3000, "q2", VZ_ERR_UNAVAILABLE);
    //  The request in flight still gets its reply during the drain.
    s_worker_reply(worker, &req, "finished");
    s_expect_body(client, 3000, "finished");
    zmsg_t *msg = NULL;
    for (int i = 0; i < 10; i++) {
        msg = s_recv(worker, 3000);
        if (!msg || zframe_streq(zmsg_first(msg), VZ_CMD_BYE))
            break;
        zmsg_destroy(&msg);
    }
    assert_non_null(msg);
    zmsg_destroy(&msg);
    assert_int_equal(vzt_mesh_wait(env->m, "broker", 5000), 0);
    zsock_destroy(&client);
    zsock_destroy(&worker);
}

int main(void)
{
    zsys_init();
    zsys_handler_set(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_real_worker),
        cmocka_unit_test(test_kill_worker),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_plain_client),
        cmocka_unit_test(test_forbidden),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_no_worker),
        cmocka_unit_test(test_timeout_in_flight),
        cmocka_unit_test(test_worker_lost),
        cmocka_unit_test(test_idempotent_retry),
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_stale_registration),
        cmocka_unit_test(test_policy_reload),
        cmocka_unit_test(test_sigterm),
    };
    return vzt_result(cmocka_run_group_tests_name("broker", tests, s_setup, s_teardown));
}
