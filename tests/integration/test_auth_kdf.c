/*  test_auth_kdf - password KDFs off vz-auth's reactor thread, at the real cost
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One vz-auth replica at the production cost (600000 PBKDF2 iterations,
 *  ~0.25 s a check) behind a real broker and Redis. Eight logins sent at
 *  once all succeed, and a jwks request sent after them is answered
 *  before the last login: the KDFs run on the pool, so the reactor keeps
 *  serving (and heartbeating) meanwhile. A second mesh with one KDF thread
 *  and no queue shows the bound: logins beyond it are answered 503
 *  "unavailable" with a retry hint. Only orderings and outcomes are
 *  asserted, never durations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vz_client.h"
#include "vz_common.h"
#include "vz_json.h"

#define CALL_MS 30000
#define LOGINS 8
#define EMAIL "kdf@example.com"
#define PASSWORD "correct horse battery"

typedef struct {
    vzt_mesh_t *m;
    vz_client_t *gw;
} mesh_t;

static int s_start(void **state, const char *threads, const char *queue)
{
    mesh_t *mesh = calloc(1, sizeof *mesh);
    assert_non_null(mesh);
    *state = mesh;
    char *const env[] = {"auth:VZ_AUTH_PBKDF2_ITERATIONS=600000", (char *)threads, (char *)queue,
                         "auth:VZ_AUTH_IP_THRESHOLD=1000", NULL};
    mesh->m = vzt_mesh_start(
        &(vzt_mesh_opts_t){.tag = "authkdf",
                           .daemons = "auth",
                           .identities = "gateway",
                           .policy = "identity\n    gateway\n        call = \"auth broker\"\n"
                                     "    auth\n        serve = \"auth\"\n",
                           .env = env});
    assert_non_null(mesh->m);
    mesh->gw = vzt_mesh_client(mesh->m, "gateway");
    assert_non_null(mesh->gw);
    return 0;
}

static int s_setup_default(void **state)
{
    return s_start(state, "auth:VZ_AUTH_KDF_THREADS=2", "auth:VZ_AUTH_KDF_QUEUE=32");
}

static int s_setup_bounded(void **state)
{
    return s_start(state, "auth:VZ_AUTH_KDF_THREADS=1", "auth:VZ_AUTH_KDF_QUEUE=0");
}

static int s_teardown(void **state)
{
    mesh_t *mesh = *state;
    vz_client_destroy(&mesh->gw);
    int rc = vzt_mesh_destroy(&mesh->m);
    free(mesh);
    return rc;
}

//  Build an auth request as the gateway would send it (auth none, an IP).
static void s_request(vz_envelope_t *req, const char *method, const char *body)
{
    assert_int_equal(vz_envelope_request(req, "auth", method, NULL), 0);
    vz_client_new_id(req->id, sizeof req->id);
    req->body = (const uint8_t *)body;
    req->body_len = body ? strlen(body) : 0;
    req->deadline_ms = vz_now_ms() + CALL_MS;
    assert_int_equal(vz_envelope_ctx_set(req, "auth", "none"), 0);
    assert_int_equal(vz_envelope_ctx_set(req, "client_ip", "192.0.2.7"), 0);
}

static void s_register(mesh_t *mesh)
{
    vz_envelope_t req;
    s_request(&req, "register", "{\"email\":\"" EMAIL "\",\"password\":\"" PASSWORD "\"}");
    vz_response_t *resp = NULL;
    assert_int_equal(vz_client_call(mesh->gw, &req, CALL_MS, &resp), 0);
    if (resp->env.kind == VZ_KIND_ERROR)
        fail_msg("register: %s %s", resp->env.error_code, resp->env.error_message);
    vz_response_destroy(&resp);
}

typedef struct {
    bool jwks; //  the answer to the jwks request (matched by id)
    bool error;
    char code[48];
    bool token; //  the reply carries an access_token
} outcome_t;

//  Send n logins then, when jwks, one jwks; receive every answer in the
//  order it came into out (n + jwks entries).
static void s_burst(mesh_t *mesh, int n, bool jwks, outcome_t *out)
{
    const char *body = "{\"email\":\"" EMAIL "\",\"password\":\"" PASSWORD "\"}";
    char jwks_id[VZ_ID_MAX] = "";
    for (int i = 0; i < n + jwks; i++) {
        vz_envelope_t req;
        s_request(&req, i < n ? "login" : "jwks", i < n ? body : NULL);
        if (i == n)
            vz_strlcpy(jwks_id, req.id, sizeof jwks_id);
        assert_int_equal(vz_client_send(mesh->gw, &req), 0);
    }
    zpoller_t *poller = zpoller_new(vz_client_sock(mesh->gw), NULL);
    for (int got = 0; got < n + jwks; got++) {
        assert_non_null(zpoller_wait(poller, CALL_MS));
        vz_response_t *resp = NULL;
        assert_int_equal(vz_client_recv(mesh->gw, &resp), 0);
        outcome_t *o = &out[got];
        o->jwks = *jwks_id && strcmp(resp->env.id, jwks_id) == 0;
        o->error = resp->env.kind == VZ_KIND_ERROR;
        vz_strlcpy(o->code, resp->env.error_code, sizeof o->code);
        if (!o->error) {
            vz_json_t *doc = vz_json_parse(resp->env.body, resp->env.body_len, NULL, NULL);
            o->token = doc && vz_json_get(vz_json_root(doc), "access_token");
            vz_json_destroy(&doc);
        }
        vz_response_destroy(&resp);
    }
    zpoller_destroy(&poller);
}

static void test_logins_leave_the_reactor_free(void **state)
{
    mesh_t *mesh = *state;
    s_register(mesh);
    outcome_t out[LOGINS + 1];
    s_burst(mesh, LOGINS, true, out);
    int jwks_at = -1, last_login = -1, tokens = 0;
    for (int i = 0; i < LOGINS + 1; i++) {
        if (out[i].jwks) {
            assert_false(out[i].error);
            jwks_at = i;
            continue;
        }
        if (out[i].error)
            fail_msg("login %d answered %s", i, out[i].code);
        tokens += out[i].token;
        last_login = i;
    }
    assert_int_equal(tokens, LOGINS);
    //  Sent after all eight logins, answered before the last of them.
    assert_true(jwks_at >= 0 && jwks_at < last_login);
}

//  Logins whose callers give up while they queue: their KDF is not run.
static void test_expired_jobs_skipped(void **state)
{
    mesh_t *mesh = *state;
    const char *body = "{\"email\":\"" EMAIL "\",\"password\":\"" PASSWORD "\"}";
    //  Two threads at ~0.25 s a check: the later ones wait past 100 ms.
    for (int i = 0; i < LOGINS; i++) {
        vz_envelope_t req;
        s_request(&req, "login", body);
        req.deadline_ms = vz_now_ms() + 100;
        assert_int_equal(vz_client_send(mesh->gw, &req), 0);
    }
    int port = vzt_mesh_admin_port(mesh->m, "auth");
    assert_true(port > 0);
    assert_true(vzt_wait_metric(port, "vz_auth_kdf_expired_total", 1, CALL_MS));
    //  Each login has its one answer (the broker's timeout, mostly).
    zpoller_t *poller = zpoller_new(vz_client_sock(mesh->gw), NULL);
    for (int i = 0; i < LOGINS; i++) {
        assert_non_null(zpoller_wait(poller, CALL_MS));
        vz_response_t *resp = NULL;
        assert_int_equal(vz_client_recv(mesh->gw, &resp), 0);
        vz_response_destroy(&resp);
    }
    zpoller_destroy(&poller);
    //  The pool is free again: a login in time is served.
    outcome_t out[1];
    s_burst(mesh, 1, false, out);
    if (out[0].error || !out[0].token)
        fail_msg("login after the expired ones answered %s", out[0].code);
}

static void test_full_pool_answers_unavailable(void **state)
{
    mesh_t *mesh = *state;
    s_register(mesh);
    outcome_t out[LOGINS];
    s_burst(mesh, LOGINS, false, out);
    int ok = 0, busy = 0;
    for (int i = 0; i < LOGINS; i++) {
        if (!out[i].error && out[i].token)
            ok++;
        else if (out[i].error && strcmp(out[i].code, "unavailable") == 0)
            busy++;
        else
            fail_msg("login %d answered %s", i, out[i].code);
    }
    //  One thread, no queue: the first login runs, those that come while it
    //  does are refused rather than queued.
    assert_true(ok >= 1);
    assert_true(busy >= 1);
}

int main(void)
{
    const struct CMUnitTest reactor[] = {
        cmocka_unit_test(test_logins_leave_the_reactor_free),
        cmocka_unit_test(test_expired_jobs_skipped),
    };
    const struct CMUnitTest bounded[] = {
        cmocka_unit_test(test_full_pool_answers_unavailable),
    };
    int rc = cmocka_run_group_tests_name("kdf pool", reactor, s_setup_default, s_teardown);
    return rc + cmocka_run_group_tests_name("kdf bound", bounded, s_setup_bounded, s_teardown);
}
