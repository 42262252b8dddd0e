/*  test_direct - direct calls: callers reach workers without the broker hop, under the broker's
 * policy SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh: a broker, two echo workers and the gateway, all on their
 *  defaults (VZ_DIRECT=auto, VZ_GATEWAY_DIRECT=true), plus two in-test
 *  identities: "tester" may call echo, "outsider" only the
 *  broker. What must hold (docs/protocol.md, "Direct calls"):
 *  - the gateway's idempotent forwards go to the workers' direct endpoints
 *    (the broker counts none of them), spread over both workers;
 *  - a worker admits only the identities the broker's ACL lists: an
 *    outsider's handshake is refused and the directory is refused to it;
 *    a policy reload that drops a caller makes the worker itself answer
 *    "forbidden" on a connection that was admitted before;
 *  - a worker that drains (SIGTERM) or dies (SIGKILL) under load costs no
 *    request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"
#include "vz_broker_contract.h"
#include "vz_curve.h"
#include "vz_envelope.h"
#include "vz_proto.h"

//  The call policy, with what tester may call.
#define S_POLICY(TESTER_CALLS)                                                                     \
    "identity\n"                                                                                   \
    "    gateway\n"                                                                                \
    "        call = \"echo broker\"\n"                                                             \
    "    echo\n"                                                                                   \
    "        serve = \"echo\"\n"                                                                   \
    "    tester\n"                                                                                 \
    "        call = \"" TESTER_CALLS "\"\n"                                                        \
    "    outsider\n"                                                                               \
    "        call = \"broker\"\n"

static const char *s_policy = S_POLICY("echo broker");
static const char *s_policy_narrow = S_POLICY("broker"); //  tester may no longer call echo

//  /v1/echo as shipped (retry = idempotent) without a rate class: the
//  load below must meet no limit.
static const char *s_routes = "routes\n"
                              "    echo\n"
                              "        methods = \"GET POST\"\n"
                              "        path = \"/v1/echo\"\n"
                              "        service = \"echo\"\n"
                              "        call = \"echo\"\n"
                              "        retry = \"idempotent\"\n";

static int s_setup(void **state)
{
    const char *files[] = {"routes.cfg", s_routes, NULL};
    vzt_mesh_t *mesh = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "direct",
                                                         .daemons = "echo*2,gateway",
                                                         .identities = "tester,outsider",
                                                         .policy = s_policy,
                                                         .files = files});
    assert_non_null(mesh);
    *state = mesh;
    return 0;
}

static int s_teardown(void **state)
{
    vzt_mesh_t *mesh = (vzt_mesh_t *)*state;
    return vzt_mesh_destroy(&mesh);
}

static double s_series(vzt_mesh_t *m, const char *tag, const char *series)
{
    double v = 0;
    vzt_metric(vzt_mesh_admin_port(m, tag), series, &v);
    return v;
}

#define S_ADMITTED "vz_worker_direct_requests_total{outcome=\"admitted\"}"
#define S_FORBIDDEN "vz_worker_direct_requests_total{outcome=\"forbidden\"}"
#define S_BROKER_ECHO "vz_broker_requests_total{service=\"echo\",outcome=\"replied\"}"

static double s_admitted(vzt_mesh_t *m)
{
    return s_series(m, "echo.0", S_ADMITTED) + s_series(m, "echo.1", S_ADMITTED);
}

static int s_get_echo(vzt_mesh_t *m)
{
    char *url = vzt_fmt("%s/v1/echo", vzt_mesh_url(m));
    vzt_resp_t resp;
    int rc = vzt_request("GET", url, NULL, NULL, 0, 5000, &resp);
    long status = rc == 0 ? resp.status : 0;
    vzt_resp_free(&resp);
    free(url);
    return (int)status;
}

typedef struct {
    vzt_mesh_t *mesh;
} s_warm_t;

static bool s_went_direct(void *arg)
{
    s_warm_t *w = (s_warm_t *)arg;
    s_get_echo(w->mesh);
    return s_admitted(w->mesh) > 0;
}

//  The gateway's GETs of /v1/echo (retry = idempotent) reach both workers
//  directly once the directory is known: the broker routes none of them.
static void test_gateway_goes_direct(void **state)
{
    vzt_mesh_t *m = (vzt_mesh_t *)*state;
    s_warm_t w = {m};
    assert_true(vzt_wait_until(s_went_direct, &w, 10000));
    //  Both workers' links up: the directory lists both.
    for (int i = 0; i < 20; i++)
        s_get_echo(m);
    double a0 = s_admitted(m);
    double b0 = s_series(m, "broker", S_BROKER_ECHO);
    double e0 = s_series(m, "echo.0", S_ADMITTED), e1 = s_series(m, "echo.1", S_ADMITTED);
    for (int i = 0; i < 60; i++)
        assert_int_equal(s_get_echo(m), 200);
    assert_int_equal((int)(s_admitted(m) - a0), 60);
    assert_int_equal((int)(s_series(m, "broker", S_BROKER_ECHO) - b0), 0);
    //  Round robin: each worker took its share.
    assert_true(s_series(m, "echo.0", S_ADMITTED) - e0 >= 20);
    assert_true(s_series(m, "echo.1", S_ADMITTED) - e1 >= 20);
}

//  broker.directory for echo, asked as identity (vzt_directory).
static int s_directory(vzt_mesh_t *m, const char *identity, vz_broker_direct_t *list, size_t *n,
                       char *code, size_t code_n)
{
    vz_client_t *client = vzt_mesh_client(m, identity);
    assert_non_null(client);
    int rc = vzt_directory(client, "echo", list, VZ_BROKER_DIRECT_MAX, n, code, code_n);
    vz_client_destroy(&client);
    assert_true(rc >= 0);
    return rc;
}

//  One request on a raw CURVE DEALER to a worker's direct endpoint; the
//  answer's error code ("" for a reply), or -ETIMEDOUT when nothing came.
static int s_raw_call(zsock_t *dealer, char *code, size_t n, int wait_ms)
{
    vz_envelope_t req;
    vz_envelope_request(&req, "echo", "ping", NULL);
    vz_random_hex(req.id, 32);
    req.deadline_ms = vz_now_ms() + wait_ms;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(vz_envelope_encode(&req, &buf, &len), 0);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REQUEST);
    zmsg_addmem(msg, buf, len);
    free(buf);
    zmsg_send(&msg, dealer);
    zsock_set_rcvtimeo(dealer, wait_ms);
    while (true) {
        zmsg_t *in = zmsg_recv(dealer);
        if (!in)
            return -ETIMEDOUT;
        zframe_t *cmd = zmsg_first(in);
        zframe_t *data = zmsg_next(in);
        vz_envelope_t rep;
        bool mine =
            zframe_streq(cmd, VZ_CMD_REPLY) && data &&
            vz_envelope_decode(&rep, zframe_data(data), zframe_size(data), NULL, NULL) == 0 &&
            streq(rep.id, req.id);
        if (mine)
            vz_strlcpy(code, rep.kind == VZ_KIND_ERROR ? rep.error_code : "", n);
        zmsg_destroy(&in);
        if (mine)
            return 0;
    }
}

static bool s_tester_listed(void *arg)
{
    s_warm_t *w = (s_warm_t *)arg;
    vz_broker_direct_t list[VZ_BROKER_DIRECT_MAX];
    size_t n = 0;
    char code[VZ_NAME_MAX];
    return s_directory(w->mesh, "tester", list, &n, code, sizeof code) == 1 && n == 2;
}

typedef struct {
    zsock_t *dealer;
    char code[VZ_NAME_MAX];
} s_refused_t;

static bool s_refused(void *arg)
{
    s_refused_t *r = (s_refused_t *)arg;
    return s_raw_call(r->dealer, r->code, sizeof r->code, 500) == 0 &&
           streq(r->code, VZ_ERR_FORBIDDEN);
}

//  The worker enforces the policy the broker hands it: by key at the
//  handshake (outsider), and on every request (a reload that drops tester).
static void test_worker_enforces_policy(void **state)
{
    vzt_mesh_t *m = (vzt_mesh_t *)*state;
    vz_broker_direct_t list[VZ_BROKER_DIRECT_MAX];
    size_t n = 0;
    char code[VZ_NAME_MAX];
    assert_int_equal(s_directory(m, "tester", list, &n, code, sizeof code), 1);
    assert_string_equal(code, "");
    assert_int_equal(n, 2);
    //  The outsider may not even learn where echo's workers are.
    size_t n2 = 0;
    vz_broker_direct_t list2[VZ_BROKER_DIRECT_MAX];
    s_directory(m, "outsider", list2, &n2, code, sizeof code);
    assert_string_equal(code, VZ_ERR_FORBIDDEN);

    //  Tester, on a connection of its own to the first worker: served.
    zsock_t *tester =
        vz_curve_client(ZMQ_DEALER, list[0].endpoint, vzt_mesh_cert(m, "tester"), list[0].key);
    assert_non_null(tester);
    assert_int_equal(s_raw_call(tester, code, sizeof code, 3000), 0);
    assert_string_equal(code, "");

    //  The outsider, told the endpoint and key anyway: its handshake is
    //  refused, so its request never reaches the worker.
    double refused0 = s_series(m, "echo.0", S_FORBIDDEN) + s_series(m, "echo.1", S_FORBIDDEN);
    double admitted0 = s_admitted(m);
    zsock_t *outsider =
        vz_curve_client(ZMQ_DEALER, list[0].endpoint, vzt_mesh_cert(m, "outsider"), list[0].key);
    assert_non_null(outsider);
    assert_int_equal(s_raw_call(outsider, code, sizeof code, 1000), -ETIMEDOUT);
    assert_true(s_admitted(m) == admitted0);
    zsock_destroy(&outsider);

    //  Drop tester's right to call echo: the brokers send the workers a new
    //  ACL, and the worker refuses tester on the connection it admitted.
    assert_int_equal(vzt_mesh_write(m, "policy.cfg", s_policy_narrow), 0);
    assert_int_equal(kill(vzt_mesh_pid(m, "broker"), SIGHUP), 0);
    s_refused_t r = {.dealer = tester};
    assert_true(vzt_wait_until(s_refused, &r, 5000));
    double refused1 = s_series(m, "echo.0", S_FORBIDDEN) + s_series(m, "echo.1", S_FORBIDDEN);
    assert_true(refused1 > refused0);
    zsock_destroy(&tester);

    //  And back, for the tests after this one.
    assert_int_equal(vzt_mesh_write(m, "policy.cfg", s_policy), 0);
    assert_int_equal(kill(vzt_mesh_pid(m, "broker"), SIGHUP), 0);
    s_warm_t w = {m};
    assert_true(vzt_wait_until(s_tester_listed, &w, 5000));
}

typedef struct {
    vzt_mesh_t *mesh;
    atomic_bool stop;
    atomic_int sent;
    atomic_int failed;
} s_load_t;

static void *s_loader(void *arg)
{
    s_load_t *load = (s_load_t *)arg;
    while (!atomic_load(&load->stop)) {
        int status = s_get_echo(load->mesh);
        atomic_fetch_add(&load->sent, 1);
        if (status != 200) {
            atomic_fetch_add(&load->failed, 1);
            fprintf(stderr, "test_direct: GET /v1/echo answered %d\n", status);
        }
    }
    return NULL;
}

static bool s_sent_more(void *arg)
{
    s_load_t *load = (s_load_t *)arg;
    static int mark = -1;
    int now = atomic_load(&load->sent);
    if (mark < 0 || now < mark) {
        mark = now + 50;
        return false;
    }
    bool done = now >= mark;
    if (done)
        mark = -1;
    return done;
}

//  Under steady load, one worker drains (SIGTERM) and comes back, then one
//  dies (SIGKILL) and comes back: no request fails.
static void test_worker_leaves_under_load(void **state)
{
    vzt_mesh_t *m = (vzt_mesh_t *)*state;
    s_load_t load = {.mesh = m};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, s_loader, &load), 0);
    assert_true(vzt_wait_until(s_sent_more, &load, 10000));
    assert_int_equal(vzt_mesh_stop(m, "echo.1"), 0);
    assert_true(vzt_wait_until(s_sent_more, &load, 10000));
    assert_int_equal(vzt_mesh_restart(m, "echo.1"), 0);
    assert_true(vzt_wait_until(s_sent_more, &load, 10000));
    assert_int_equal(vzt_mesh_kill(m, "echo.0", SIGKILL), 0);
    assert_true(vzt_wait_until(s_sent_more, &load, 10000));
    assert_int_equal(vzt_mesh_restart(m, "echo.0"), 0);
    assert_true(vzt_wait_until(s_sent_more, &load, 10000));
    atomic_store(&load.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    fprintf(stderr, "test_direct: %d requests across a drain and a kill, %d failed\n",
            atomic_load(&load.sent), atomic_load(&load.failed));
    assert_int_equal(atomic_load(&load.failed), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gateway_goes_direct),
        cmocka_unit_test(test_worker_enforces_policy),
        cmocka_unit_test(test_worker_leaves_under_load),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
