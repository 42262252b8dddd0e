/*  test_brokers - several brokers serve one mesh, found through DNS
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The test runs in a mount namespace of its own with a hosts file bound
 *  over /etc/hosts (it needs root, as `make test` runs), so the name
 *  "vz-brokers" resolves through the C library exactly as a headless
 *  Service's name does, and the test can add an address to it. The echo
 *  worker and the caller are given only tcp://vz-brokers:PORT. It shows:
 *    - a broker started later and added to DNS gets the worker registered
 *      and a share of the calls, with no restart of either, and applies
 *      the same call policy (an identity the policy does not let call
 *      echo is refused by each broker);
 *    - a broker killed (SIGKILL) under calls costs no idempotent call: each
 *      goes to the other broker; the killed one, restarted, is used again;
 *    - a broker that stops answering without closing (SIGSTOP) is left
 *      within the heartbeat window: every idempotent call still gets its
 *      reply, and the longest wait is printed.
 *  Every wait polls through vzt_wait_until.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "harness.h"
#include "vz_client.h"
#include "vz_endpoints.h"
#include "vz_proto.h"

#define S_WAIT_MS 20000 //  DNS is read again every VZ_ENDPOINTS_RESOLVE_MS
#define S_HB_MS 200     //  the caller's heartbeat: a silent broker is left after 3 of these

typedef struct {
    vzt_mesh_t *m;       //  broker (127.0.0.1) and echo
    vz_client_t *client; //  as "tester", to tcp://vz-brokers:PORT
    char hosts[256];     //  the file bound over /etc/hosts
    int port;            //  every broker's port
} s_env_t;

//  Write the hosts file in place: the bind mount holds its inode.
static void s_hosts(s_env_t *e, bool second)
{
    FILE *f = fopen(e->hosts, "w");
    assert_non_null(f);
    fprintf(f, "127.0.0.1 localhost\n127.0.0.1 vz-brokers\n%s",
            second ? "127.0.0.2 vz-brokers\n" : "");
    fclose(f);
}

//  A client of every broker the name gives, as identity.
static vz_client_t *s_client(s_env_t *e, const char *identity)
{
    char list[64];
    snprintf(list, sizeof list, "tcp://vz-brokers:%d", e->port);
    vz_client_config_t config = {.endpoints = list,
                                 .broker_key = vzt_mesh_broker_key(e->m),
                                 .cert = vzt_mesh_cert(e->m, identity),
                                 .heartbeat_ms = S_HB_MS};
    return vz_client_new(&config);
}

static int s_setup(void **state)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_brokers needs root (a mount namespace for /etc/hosts); "
                        "make test runs as root\n");
        return -1;
    }
    s_env_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    snprintf(e->hosts, sizeof e->hosts, "/tmp/vz-brokers-hosts.%d", (int)getpid());
    s_hosts(e, false);
    //  Our own view of /etc/hosts, inherited by every daemon we start.
    assert_int_equal(unshare(CLONE_NEWNS), 0);
    assert_int_equal(mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
    assert_int_equal(mount(e->hosts, "/etc/hosts", NULL, MS_BIND, NULL), 0);

    static char *const env[] = {"VZ_TELEMETRY=off", NULL};
    static const char policy[] = "identity\n"
                                 "    tester\n"
                                 "        call = \"echo\"\n"
                                 "    outsider\n"
                                 "        call = \"broker\"\n"
                                 "    echo\n"
                                 "        serve = \"echo\"\n";
    e->m = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "brokers",
                                             .daemons = "",
                                             .identities = "tester,echo,outsider",
                                             .policy = policy,
                                             .env = env});
    assert_non_null(e->m);
    e->port = vzt_mesh_broker_port(e->m);
    char *endpoints = NULL;
    assert_true(asprintf(&endpoints, "VZ_BROKER_ENDPOINTS=tcp://vz-brokers:%d", e->port) > 0);
    char *const more[] = {endpoints, NULL};
    assert_non_null(vzt_mesh_add(e->m, "echo", "echo", more, true));
    free(endpoints);
    e->client = s_client(e, "tester");
    assert_non_null(e->client);
    *state = e;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *e = *state;
    if (!e)
        return 0;
    vz_client_destroy(&e->client);
    int rc = vzt_mesh_destroy(&e->m);
    umount("/etc/hosts");
    unlink(e->hosts);
    free(e);
    return rc;
}

//  Echo calls answered through broker tag so far.
static double s_served(s_env_t *e, const char *tag)
{
    double value = 0;
    vzt_metric(vzt_mesh_admin_port(e->m, tag),
               "vz_broker_requests_total{service=\"echo\",outcome=\"replied\"}", &value);
    return value;
}

//  One idempotent echo call; true on a reply. *ms: how long it took.
static bool s_call(s_env_t *e, int timeout_ms, int64_t *ms)
{
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "echo", "echo", NULL), 0);
    req.body = (const uint8_t *)"x";
    req.body_len = 1;
    req.flags = VZ_FLAG_IDEMPOTENT;
    int64_t start = zclock_mono();
    vz_response_t *response = NULL;
    int rc = vz_client_call(e->client, &req, timeout_ms, &response);
    if (ms)
        *ms = zclock_mono() - start;
    bool ok = rc == 0 && response->env.kind == VZ_KIND_REPLY;
    if (!ok)
        fprintf(stderr, "call: rc %d %s\n", rc, response ? response->env.error_code : "");
    vz_response_destroy(&response);
    return ok;
}

typedef struct {
    s_env_t *e;
    const char *tag;
} s_tag_t;

//  Calls until one was served through the broker tagged tag.
static bool s_tag_serves(void *arg)
{
    s_tag_t *t = arg;
    double before = s_served(t->e, t->tag);
    for (int i = 0; i < 4; i++)
        if (!s_call(t->e, 2000, NULL))
            return false;
    return s_served(t->e, t->tag) > before;
}

static void test_broker_added(void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < 20; i++)
        assert_true(s_call(e, 2000, NULL));
    assert_true(s_served(e, "broker") >= 20);

    //  A second broker on the same port of another address, then in DNS.
    char bind[64];
    snprintf(bind, sizeof bind, "VZ_BROKER_BIND=tcp://127.0.0.2:%d", e->port);
    char *const more[] = {bind, NULL};
    assert_non_null(vzt_mesh_add(e->m, "broker", "broker2", more, true));
    int admin2 = vzt_mesh_admin_port(e->m, "broker2");
    double workers = 0; //  not in DNS yet: nobody knows it (no series, or 0)
    int rc = vzt_metric(admin2, "vz_broker_workers{service=\"echo\"}", &workers);
    assert_true(rc == -ENOENT || (rc == 0 && workers == 0));
    s_hosts(e, true);
    int64_t start = zclock_mono();
    assert_true(vzt_wait_metric(admin2, "vz_broker_workers{service=\"echo\"}", 1, S_WAIT_MS));
    printf("# the worker registered with the added broker after %lld ms (DNS read again after 1, "
           "2, 4 s, then every %d ms)\n",
           (long long)(zclock_mono() - start), VZ_ENDPOINTS_RESOLVE_MS);
    s_tag_t t = {e, "broker2"};
    assert_true(vzt_wait_until(s_tag_serves, &t, S_WAIT_MS));
    //  Both take a share now, in turn.
    double one = s_served(e, "broker"), two = s_served(e, "broker2");
    for (int i = 0; i < 40; i++)
        assert_true(s_call(e, 2000, NULL));
    double d1 = s_served(e, "broker") - one, d2 = s_served(e, "broker2") - two;
    printf("# 40 calls over two brokers: %.0f and %.0f\n", d1, d2);
    assert_true(d1 >= 10 && d2 >= 10);
    assert_int_equal(vz_client_brokers(e->client), 2);

    //  The same policy at both: "outsider" may not call echo, at either.
    vz_client_t *outsider = s_client(e, "outsider");
    assert_non_null(outsider);
    double f1 = 0, f2 = 0;
    vzt_metric(vzt_mesh_admin_port(e->m, "broker"), "vz_broker_forbidden_total", &f1);
    vzt_metric(admin2, "vz_broker_forbidden_total", &f2);
    for (int i = 0; i < 6; i++) {
        vz_envelope_t req;
        assert_int_equal(vz_envelope_request(&req, "echo", "echo", NULL), 0);
        vz_response_t *response = NULL;
        assert_int_equal(vz_client_call(outsider, &req, 3000, &response), 0);
        assert_int_equal(response->env.kind, VZ_KIND_ERROR);
        assert_string_equal(response->env.error_code, VZ_ERR_FORBIDDEN);
        vz_response_destroy(&response);
    }
    vz_client_destroy(&outsider);
    double g1 = 0, g2 = 0;
    vzt_metric(vzt_mesh_admin_port(e->m, "broker"), "vz_broker_forbidden_total", &g1);
    vzt_metric(admin2, "vz_broker_forbidden_total", &g2);
    printf("# outsider refused by broker 1: %.0f, by broker 2: %.0f\n", g1 - f1, g2 - f2);
    assert_true(g1 > f1 && g2 > f2);
}

static void test_broker_killed(void **state)
{
    s_env_t *e = *state;
    assert_int_equal(vzt_mesh_kill(e->m, "broker", SIGKILL), 0);
    int64_t longest = 0;
    for (int i = 0; i < 60; i++) {
        int64_t ms = 0;
        assert_true(s_call(e, 3000, &ms));
        longest = ms > longest ? ms : longest;
    }
    printf("# 60 idempotent calls with one of two brokers killed: all answered, longest %lld ms\n",
           (long long)longest);
    //  Back, it is used again with no restart of the worker or the caller.
    assert_int_equal(vzt_mesh_restart(e->m, "broker"), 0);
    assert_true(vzt_wait_metric(vzt_mesh_admin_port(e->m, "broker"),
                                "vz_broker_workers{service=\"echo\"}", 1, S_WAIT_MS));
    s_tag_t t = {e, "broker"};
    assert_true(vzt_wait_until(s_tag_serves, &t, S_WAIT_MS));
}

static void test_broker_silent(void **state)
{
    s_env_t *e = *state;
    int pid = vzt_mesh_pid(e->m, "broker2");
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    int64_t longest = 0;
    for (int i = 0; i < 30; i++) {
        int64_t ms = 0;
        bool ok = s_call(e, 5000, &ms);
        if (!ok)
            kill(pid, SIGCONT);
        assert_true(ok);
        longest = ms > longest ? ms : longest;
    }
    assert_int_equal(kill(pid, SIGCONT), 0);
    printf("# 30 idempotent calls with one broker stopped (SIGSTOP): all answered, longest %lld "
           "ms (heartbeat window %d ms)\n",
           (long long)longest, S_HB_MS * VZ_HEARTBEAT_LIVENESS);
    assert_true(longest < 5000);
    assert_true(vz_client_brokers_up(e->client) >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_added),
        cmocka_unit_test(test_broker_killed),
        cmocka_unit_test(test_broker_silent),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
