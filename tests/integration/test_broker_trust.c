/*  test_broker_trust - the broker's trust boundaries: names, lying workers, service bounds
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One real vz-broker (started with vzt_daemon) whose policy lets "caller"
 *  call and "anyserve" serve any service, so the broker's own checks are
 *  all that stands between a peer and its tables. Every peer is a raw CURVE
 *  DEALER speaking vz_proto.h, so a worker can lie in its reply header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "harness.h"
#include "vz_curve.h"
#include "vz_envelope.h"
#include "vz_proto.h"

#define S_HEARTBEAT_MS 200
#define S_LIMIT 3 //  VZ_BROKER_SERVICES_PER_IDENTITY of the broker under test

typedef struct {
    char *dir;           //  temp dir: keys/, policy.cfg, broker.log
    char endpoint[64];   //  broker endpoint
    char broker_key[41]; //  broker public key (Z85)
    int admin_port;      //  broker admin HTTP port
    vzt_proc_t *broker;  //  the broker process
} s_env_t;

static const char *const s_names[] = {"broker", "caller",  "anyserve", "liar",
                                      "greedy", "hoarder", NULL};

static const char *s_policy = "identity\n"
                              "    caller\n"
                              "        call = \"*\"\n"
                              "    anyserve\n"
                              "        serve = \"*\"\n"
                              "    liar\n"
                              "        serve = \"truth shared\"\n"
                              "    greedy\n"
                              "        call = \"*\"\n"
                              "    hoarder\n"
                              "        serve = \"*\"\n";

static int s_setup(void **state)
{
    s_env_t *env = (s_env_t *)calloc(1, sizeof *env);
    env->dir = vzt_tempdir("broker_trust");
    assert_non_null(env->dir);
    char path[VZ_PATH_MAX];
    snprintf(path, sizeof path, "%s/keys", env->dir);
    assert_int_equal(vzt_keys(path, s_names), 0);
    snprintf(path, sizeof path, "%s/keys/public/broker.key", env->dir);
    assert_int_equal(vz_curve_server_key(path, env->broker_key), 0);
    snprintf(path, sizeof path, "%s/policy.cfg", env->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s_policy, f);
    fclose(f);

    int port = vzt_free_port();
    env->admin_port = vzt_free_port();
    snprintf(env->endpoint, sizeof env->endpoint, "tcp://127.0.0.1:%d", port);
    char bind[96], policy[VZ_PATH_MAX + 32], limit[64];
    snprintf(bind, sizeof bind, "VZ_BROKER_BIND=%s", env->endpoint);
    snprintf(policy, sizeof policy, "VZ_BROKER_POLICY=%s", path);
    snprintf(limit, sizeof limit, "VZ_BROKER_SERVICES_PER_IDENTITY=%d", S_LIMIT);
    char *const more[] = {bind, policy, limit, "VZ_HEARTBEAT_MS=200", "VZ_LOG_LEVEL=info", NULL};
    env->broker = vzt_daemon(env->dir, "broker", NULL, port, 0, env->admin_port, more, true);
    assert_non_null(env->broker);
    *state = env;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    vzt_proc_destroy(&env->broker);
    if (getenv("VZ_KEEP_TMP"))
        printf("kept %s\n", env->dir);
    else
        vzt_rmrf(env->dir);
    free(env->dir);
    free(env);
    return 0;
}

//  --------------------------------------------------------------------------
//  Raw peers.

static zsock_t *s_connect(s_env_t *env, const char *name)
{
    char path[VZ_PATH_MAX], err[256];
    snprintf(path, sizeof path, "%s/keys/secret/%s.key", env->dir, name);
    zcert_t *cert = vz_curve_cert_load(path, err, sizeof err);
    if (!cert)
        fail_msg("cannot load %s: %s", path, err);
    zsock_t *sock = vz_curve_client(ZMQ_DEALER, env->endpoint, cert, env->broker_key);
    zcert_destroy(&cert);
    assert_non_null(sock);
    return sock;
}

//  Send [command, envelope] where the envelope is env encoded.
static void s_send_env(zsock_t *sock, const char *command, const zframe_t *tag,
                       const vz_envelope_t *env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(vz_envelope_encode(env, &buf, &len), 0);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, command);
    if (tag)
        zmsg_addmem(msg, zframe_data((zframe_t *)tag), zframe_size((zframe_t *)tag));
    zmsg_addmem(msg, buf, len);
    free(buf);
    assert_int_equal(zmsg_send(&msg, sock), 0);
}

//  REQ service.method as id, answered by the broker within timeout_ms at most.
static void s_call(zsock_t *sock, const char *service, const char *method, const char *id,
                   int timeout_ms, uint32_t flags)
{
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    vz_strlcpy(req.service, service, sizeof req.service);
    vz_strlcpy(req.method, method, sizeof req.method);
    vz_strlcpy(req.id, id, sizeof req.id);
    req.deadline_ms = vz_now_ms() + timeout_ms;
    req.flags = flags;
    s_send_env(sock, VZ_CMD_REQUEST, NULL, &req);
}

//  Next [REP, envelope] on a client, decoded into *out (body not kept).
static void s_answer(zsock_t *sock, vz_envelope_t *out)
{
    zsock_set_rcvtimeo(sock, 5000);
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg)
        fail_msg("no answer from the broker (is it still running?)");
    assert_int_equal(zmsg_size(msg), 2);
    assert_true(zframe_streq(zmsg_first(msg), VZ_CMD_REPLY));
    zframe_t *frame = zmsg_next(msg);
    assert_int_equal(vz_envelope_decode(out, zframe_data(frame), zframe_size(frame), NULL, NULL),
                     0);
    out->body = NULL;
    out->body_len = 0;
    zmsg_destroy(&msg);
}

static void s_expect_error(zsock_t *sock, const char *id, const char *code)
{
    vz_envelope_t rep;
    s_answer(sock, &rep);
    assert_string_equal(rep.id, id);
    if (rep.kind != VZ_KIND_ERROR)
        fail_msg("%s: expected error %s, got a reply", id, code);
    assert_string_equal(rep.error_code, code);
}

//  The broker sends the worker nothing for 300 ms (it was never
//  registered, so no heartbeat comes back); the socket is destroyed.
static void s_expect_silence(zsock_t **worker_p)
{
    zsock_set_rcvtimeo(*worker_p, 300);
    zmsg_t *msg = zmsg_recv(*worker_p);
    assert_null(msg);
    zsock_destroy(worker_p);
}

//  The broker still answers ping: it did not abort on what came before.
static void s_alive(s_env_t *env)
{
    zsock_t *sock = s_connect(env, "caller");
    s_call(sock, VZ_BROKER_SERVICE, "ping", "alive", 3000, 0);
    vz_envelope_t rep;
    s_answer(sock, &rep);
    assert_int_equal(rep.kind, VZ_KIND_REPLY);
    assert_string_equal(rep.id, "alive");
    zsock_destroy(&sock);
}

//  First frame of the broker's answer to RDY service: "HB" (registered) or "BYE".
static char *s_ready(zsock_t *sock, const char *service)
{
    zstr_sendx(sock, VZ_CMD_READY, service, "1", NULL);
    zsock_set_rcvtimeo(sock, 3000);
    zmsg_t *msg = zmsg_recv(sock);
    char *cmd = msg ? zmsg_popstr(msg) : NULL;
    zmsg_destroy(&msg);
    return cmd;
}

static void s_expect_ready(zsock_t *sock, const char *service, const char *answer)
{
    char *cmd = s_ready(sock, service);
    if (!cmd || strcmp(cmd, answer) != 0)
        fail_msg("RDY %s: expected %s, got %s", service, answer, cmd ? cmd : "nothing");
    free(cmd);
}

//  Next [REQ, tag, caller, envelope] on a fake worker, heartbeating meanwhile.
//  Returns the tag (caller owns it) and the decoded request in *req.
static zframe_t *s_take(zsock_t *sock, vz_envelope_t *req)
{
    int64_t until = zclock_mono() + 5000;
    while (zclock_mono() < until) {
        zsock_set_rcvtimeo(sock, S_HEARTBEAT_MS / 2);
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg) {
            zstr_send(sock, VZ_CMD_HEARTBEAT);
            continue;
        }
        if (zframe_streq(zmsg_first(msg), VZ_CMD_REQUEST) && zmsg_size(msg) == 4) {
            zframe_t *tag = zframe_dup(zmsg_next(msg));
            zmsg_next(msg);
            zframe_t *data = zmsg_next(msg);
            assert_int_equal(
                vz_envelope_decode(req, zframe_data(data), zframe_size(data), NULL, NULL), 0);
            req->body = NULL;
            req->body_len = 0;
            zmsg_destroy(&msg);
            return tag;
        }
        zmsg_destroy(&msg);
    }
    fail_msg("the worker got no request");
    return NULL;
}

//  What a lying worker changes in its reply header.
typedef enum { S_HONEST, S_LIE_ID, S_LIE_SERVICE, S_LIE_METHOD, S_LIE_KIND } s_lie_t;

//  Take the next request and answer it, lying as told.
static void s_serve(zsock_t *sock, s_lie_t lie)
{
    vz_envelope_t req, rep;
    zframe_t *tag = s_take(sock, &req);
    vz_envelope_reply_to(&rep, &req);
    rep.body = (const uint8_t *)"forged";
    rep.body_len = 6;
    if (lie == S_LIE_ID)
        vz_strlcpy(rep.id, "someone-else", sizeof rep.id);
    else if (lie == S_LIE_SERVICE)
        vz_strlcpy(rep.service, "auth", sizeof rep.service);
    else if (lie == S_LIE_METHOD)
        vz_strlcpy(rep.method, "login", sizeof rep.method);
    else if (lie == S_LIE_KIND)
        rep.kind = VZ_KIND_EVENT;
    s_send_env(sock, VZ_CMD_REPLY, tag, &rep);
    zframe_destroy(&tag);
}

static double s_metric(s_env_t *env, const char *series)
{
    double value = 0;
    if (vzt_metric(env->admin_port, series, &value) == -1)
        fail_msg("cannot read /metrics");
    return value;
}

//  --------------------------------------------------------------------------

//  A comma in a service name used to reach a metric label and abort the broker.
static void test_comma_in_request(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *client = s_connect(env, "caller");
    s_call(client, "a,b", "m", "c1", 2000, 0);
    s_expect_error(client, "c1", VZ_ERR_MALFORMED);
    zsock_destroy(&client);
    s_alive(env);
}

static void test_comma_in_ready(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *worker = s_connect(env, "anyserve");
    zstr_sendx(worker, VZ_CMD_READY, "x,y", "1", NULL);
    s_alive(env);
    //  Never registered: no HB came back for it.
    s_expect_silence(&worker);
}

//  Names outside [A-Za-z0-9_.-] are refused before any table or log sees them.
static void test_bad_names(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *client = s_connect(env, "caller");
    const char *services[] = {"sp ace", "quo\"te", "new\nline", "br{ace}", "*", "x=y"};
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        s_call(client, services[i], "m", "s", 2000, 0);
        s_expect_error(client, "s", VZ_ERR_MALFORMED);
    }
    const char *methods[] = {"a,b", "new\nline", "quo\"te", "sp ace"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        s_call(client, "echo", methods[i], "m", 2000, 0);
        s_expect_error(client, "m", VZ_ERR_MALFORMED);
    }
    zsock_destroy(&client);
    zsock_t *worker = s_connect(env, "anyserve");
    s_expect_ready(worker, "ok-name_1.v2", VZ_CMD_HEARTBEAT);
    zsock_destroy(&worker);
    worker = s_connect(env, "anyserve");
    zstr_sendx(worker, VZ_CMD_READY, "quo\"te", "1", NULL);
    zstr_sendx(worker, VZ_CMD_READY, "*", "1", NULL);
    s_alive(env);
    s_expect_silence(&worker);
    assert_true(s_metric(env, "vz_broker_malformed_total") >= 12);
}

//  A reply whose header does not match its request is never forwarded: the
//  client gets worker_lost, the worker keeps its place and serves on.
static void test_lying_worker(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *worker = s_connect(env, "liar");
    s_expect_ready(worker, "truth", VZ_CMD_HEARTBEAT);
    zsock_t *client = s_connect(env, "caller");
    const struct {
        s_lie_t lie;
        const char *reason;
    } lies[] = {{S_LIE_ID, "id"},
                {S_LIE_SERVICE, "service"},
                {S_LIE_METHOD, "method"},
                {S_LIE_KIND, "kind"}};
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        char id[16], series[96];
        snprintf(id, sizeof id, "lie%zu", i);
        s_call(client, "truth", "get", id, 3000, 0);
        s_serve(worker, lies[i].lie);
        s_expect_error(client, id, VZ_ERR_WORKER_LOST);
        snprintf(series, sizeof series, "vz_broker_replies_rejected_total{reason=\"%s\"}",
                 lies[i].reason);
        assert_true(s_metric(env, series) == 1);
    }
    //  An idempotent request is retried once (VZ_BROKER_RETRY_MAX=1), as after a loss.
    s_call(client, "truth", "get", "idem", 3000, VZ_FLAG_IDEMPOTENT);
    s_serve(worker, S_LIE_ID);
    s_serve(worker, S_HONEST);
    vz_envelope_t rep;
    s_answer(client, &rep);
    assert_int_equal(rep.kind, VZ_KIND_REPLY);
    assert_string_equal(rep.id, "idem");
    //  The worker was not dropped: an honest reply still goes through.
    s_call(client, "truth", "get", "honest", 3000, 0);
    s_serve(worker, S_HONEST);
    s_answer(client, &rep);
    assert_int_equal(rep.kind, VZ_KIND_REPLY);
    assert_string_equal(rep.id, "honest");
    assert_string_equal(rep.service, "truth");
    zsock_destroy(&client);
    zsock_destroy(&worker);
}

//  An identity creates at most S_LIMIT services, by calling or by serving;
//  services that exist already stay open to it.
static void test_service_limit(void **state)
{
    s_env_t *env = (s_env_t *)*state;
    zsock_t *greedy = s_connect(env, "greedy");
    char name[32];
    for (int i = 0; i < S_LIMIT; i++) {
        snprintf(name, sizeof name, "greedy%d", i);
        s_call(greedy, name, "m", name, 200, 0);
        s_expect_error(greedy, name, VZ_ERR_NO_WORKER);
    }
    s_call(greedy, "greedy-more", "m", "over", 200, 0);
    s_expect_error(greedy, "over", VZ_ERR_FORBIDDEN);
    s_call(greedy, "greedy0", "m", "again", 200, 0);
    s_expect_error(greedy, "again", VZ_ERR_NO_WORKER);
    //  A service another identity created costs greedy nothing.
    zsock_t *worker = s_connect(env, "liar");
    s_expect_ready(worker, "shared", VZ_CMD_HEARTBEAT);
    s_call(greedy, "shared", "m", "shared", 3000, 0);
    s_serve(worker, S_HONEST);
    vz_envelope_t rep;
    s_answer(greedy, &rep);
    assert_int_equal(rep.kind, VZ_KIND_REPLY);
    zsock_destroy(&worker);
    zsock_destroy(&greedy);
    assert_true(s_metric(env, "vz_broker_services_refused_total{reason=\"identity_limit\"}") == 1);

    //  The same bound for RDY: one socket per service, the next gets BYE.
    zsock_t *hoarded[S_LIMIT];
    for (int i = 0; i < S_LIMIT; i++) {
        hoarded[i] = s_connect(env, "hoarder");
        snprintf(name, sizeof name, "hoard%d", i);
        s_expect_ready(hoarded[i], name, VZ_CMD_HEARTBEAT);
    }
    zsock_t *extra = s_connect(env, "hoarder");
    s_expect_ready(extra, "hoard-more", VZ_CMD_BYE);
    zsock_destroy(&extra);
    extra = s_connect(env, "hoarder");
    s_expect_ready(extra, "hoard0", VZ_CMD_HEARTBEAT); //  a second worker for its own service
    zsock_destroy(&extra);
    for (int i = 0; i < S_LIMIT; i++)
        zsock_destroy(&hoarded[i]);
    assert_true(s_metric(env, "vz_broker_services_refused_total{reason=\"identity_limit\"}") == 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comma_in_request), cmocka_unit_test(test_comma_in_ready),
        cmocka_unit_test(test_bad_names),        cmocka_unit_test(test_lying_worker),
        cmocka_unit_test(test_service_limit),
    };
    //  VZT_TEST=test_name (or a glob) runs one case, e.g. to watch it fail alone.
    if (getenv("VZT_TEST"))
        cmocka_set_test_filter(getenv("VZT_TEST"));
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
