/*  test_harness - the test fixture itself: a mesh in one call, and that it can fail
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A broker and one vz-echo from vzt_mesh_start with the default policy;
 *  vzt_request, vzt_wait_until and vzt_metric against the broker's admin
 *  port; then the checks that make a test fail: a sanitizer report planted
 *  in a daemon's log, a daemon that exits non-zero, a kill that did not
 *  kill. Those expected complaints go to /dev/null, so the ASan pass's
 *  scan of the test output does not take them for real reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vz_client.h"
#include "vz_envelope.h"

static int s_setup(void **state)
{
    char *const env[] = {"VZ_LOG_LEVEL=info", NULL};
    vzt_mesh_t *m = vzt_mesh_start(&(vzt_mesh_opts_t){
        .tag = "harness", .daemons = "echo", .identities = "tester", .env = env});
    assert_non_null(m);
    *state = m;
    return 0;
}

static int s_destroyed = 1; //  vzt_mesh_destroy's answer in the teardown

static int s_teardown(void **state)
{
    vzt_mesh_t *m = *state;
    s_destroyed = vzt_mesh_destroy(&m);
    return 0;
}

//  Run fn(m, tag) with stderr on /dev/null; its result.
static int s_quietly(int (*fn)(vzt_mesh_t *, const char *), vzt_mesh_t *m, const char *tag)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null >= 0);
    dup2(null, STDERR_FILENO);
    close(null);
    int rc = fn(m, tag);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    return rc;
}

static int s_kill9(vzt_mesh_t *m, const char *tag)
{
    return vzt_mesh_kill(m, tag, SIGKILL);
}

//  The default policy lets an extra identity call a daemon's service.
static void test_default_policy(void **state)
{
    vzt_mesh_t *m = *state;
    vz_client_t *client = vzt_mesh_client(m, "tester");
    assert_non_null(client);
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "echo", "echo", NULL), 0);
    req.body = (const uint8_t *)"harness";
    req.body_len = 7;
    vz_response_t *resp = NULL;
    assert_int_equal(vz_client_call(client, &req, 10000, &resp), 0);
    assert_int_equal(resp->env.kind, VZ_KIND_REPLY);
    assert_int_equal(resp->env.body_len, 7);
    assert_memory_equal(resp->env.body, "harness", 7);
    vz_response_destroy(&resp);
    vz_client_destroy(&client);
    //  Files and keys where the accessors say.
    char *policy = vzt_mesh_path(m, "policy.cfg");
    assert_true(vzt_file_has(policy, "    tester\n        serve = \"tester\"\n"));
    free(policy);
}

static void test_request(void **state)
{
    vzt_mesh_t *m = *state;
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", vzt_mesh_admin_port(m, "broker"));
    const char *const headers[] = {"Accept: text/plain", "X-Test: harness", NULL};
    vzt_resp_t r;
    assert_int_equal(vzt_request("GET", url, headers, NULL, 0, 5000, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "vz_broker_workers{service=\"echo\"} 1"));
    assert_int_equal(r.body_len, strlen(r.body));
    char ctype[64];
    assert_non_null(vzt_header(r.headers, "Content-Type", ctype, sizeof ctype));
    assert_non_null(strstr(ctype, "text/plain"));
    vzt_resp_free(&r);
    //  A body and a method the admin port does not serve.
    snprintf(url, sizeof url, "http://127.0.0.1:%d/nowhere", vzt_mesh_admin_port(m, "broker"));
    assert_int_equal(vzt_request("POST", url, NULL, "a\0b", 3, 5000, &r), 0);
    assert_true(r.status >= 400 && r.status < 500);
    vzt_resp_free(&r);
    //  Nobody listening: a transport failure, still a response to free.
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", vzt_free_port());
    assert_int_equal(vzt_request("GET", url, NULL, NULL, 0, 2000, &r), -1);
    assert_int_equal(r.status, 0);
    vzt_resp_free(&r);
    double workers = 0;
    assert_int_equal(vzt_metric(vzt_mesh_admin_port(m, "broker"),
                                "vz_broker_workers{service=\"echo\"}", &workers),
                     0);
    assert_true(workers == 1);
    assert_int_equal(vzt_metric(vzt_mesh_admin_port(m, "broker"), "vz_no_such_series", &workers),
                     -ENOENT);
}

static bool s_third_time(void *arg)
{
    int *calls = arg;
    return ++*calls >= 3;
}

static bool s_never(void *arg)
{
    int *calls = arg;
    ++*calls;
    return false;
}

static void test_wait_until(void **state)
{
    (void)state;
    int calls = 0;
    assert_true(vzt_wait_until(s_third_time, &calls, 5000));
    assert_int_equal(calls, 3);
    calls = 0;
    assert_false(vzt_wait_until(s_never, &calls, 100));
    assert_true(calls >= 3); //  asked repeatedly, and once more at the deadline
}

//  Stop, restart and kill of one daemon, judged.
static void test_stop_restart_kill(void **state)
{
    vzt_mesh_t *m = *state;
    int pid = vzt_mesh_pid(m, "echo");
    assert_int_equal(vzt_mesh_stop(m, "echo"), 0);
    assert_null(vzt_mesh_proc(m, "echo"));
    assert_int_equal(vzt_mesh_restart(m, "echo"), 0);
    assert_true(vzt_mesh_pid(m, "echo") != pid);
    assert_true(vzt_wait_metric(vzt_mesh_admin_port(m, "broker"),
                                "vz_broker_workers{service=\"echo\"}", 1, 10000));
    assert_int_equal(vzt_mesh_kill(m, "echo", SIGKILL), 0);
    assert_int_equal(vzt_mesh_restart(m, "echo"), 0);
}

//  The checks fail when they should (last: the mesh stays unclean).
static void test_failures(void **state)
{
    vzt_mesh_t *m = *state;
    //  A sanitizer report in a daemon's log fails its stop, though it exited 0.
    assert_non_null(vzt_mesh_add(m, "echo", "echo-dirty", NULL, true));
    char *log = vzt_mesh_log(m, "echo-dirty");
    FILE *f = fopen(log, "a");
    assert_non_null(f);
    fputs("==4242==ERROR: AddressSanitizer: heap-use-after-free (planted by test_harness)\n", f);
    fclose(f);
    char why[256];
    assert_int_equal(vzt_log_clean(log, why, sizeof why), -1);
    assert_non_null(strstr(why, "planted by test_harness"));
    free(log);
    assert_int_equal(s_quietly(vzt_mesh_stop, m, "echo-dirty"), -1);
    //  A daemon that exits non-zero on its own fails its stop.
    char *const bad[] = {"VZ_HEARTBEAT_MS=often", NULL};
    vzt_proc_t *proc = vzt_mesh_add(m, "echo", "echo-bad", bad, false);
    assert_non_null(proc);
    assert_int_equal(vzt_proc_wait(proc, 10000), 100);
    assert_int_equal(s_quietly(vzt_mesh_stop, m, "echo-bad"), -1);
    //  A kill must kill with that signal: SIGKILL of a stopped tag is refused.
    assert_int_equal(s_quietly(s_kill9, m, "echo-bad"), -1);
    //  The clean echo is still clean.
    char *clean = vzt_mesh_log(m, "echo");
    assert_int_equal(vzt_log_clean(clean, why, sizeof why), 0);
    free(clean);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_policy), cmocka_unit_test(test_request),
        cmocka_unit_test(test_wait_until),     cmocka_unit_test(test_stop_restart_kill),
        cmocka_unit_test(test_failures),
    };
    int rc = cmocka_run_group_tests(tests, s_setup, s_teardown);
    //  test_failures made the mesh unclean on purpose: destroy must say so.
    if (rc == 0 && s_destroyed != -1) {
        fprintf(stderr, "vzt_mesh_destroy returned %d for an unclean mesh\n", s_destroyed);
        rc = 1;
    }
    return rc;
}
