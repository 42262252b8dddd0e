/*  test_github_app - vz-github's App client against a server validating GitHub's OpenAPI
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  tests/peers/github_api.mjs speaks GitHub's REST wire format and checks
 *  every request vz-github sends against that operation's schema in
 *  @octokit/openapi (method, path and query parameters, required headers,
 *  JSON body) and the App JWT with jose against the App's public key. Its
 *  script covers three pages of repositories, a 403 secondary limit with
 *  retry-after, a primary limit exhausted until x-ratelimit-reset, an
 *  expired installation token, and the App's webhook deliveries (one
 *  failed) with an ETag. The validator itself is shown to reject a bad
 *  request (an issue without its required title).
 *
 *  Cases: an installation.created webhook (an @octokit/webhooks-examples
 *  payload, signed by @octokit/webhooks-methods) makes vz-github backfill
 *  the installation's repositories, issues and milestones; a
 *  reconciliation asks GitHub to redeliver the failed delivery only, and a
 *  second run is a conditional request answered 304.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gh_test.h"
#include "harness.h"
#include "vz_client.h"
#include "vz_common.h"
#include "vz_github_contract.h"
#include "vz_json.h"

#define CALL_MS 10000
#define WAIT_MS 30000
#define READY_MS 20000
#define SECRET "gh-app-test-webhook-secret"
#define APP_ID "4242"

typedef struct {
    char *dir; //  keys and the fake's log
    vzt_proc_t *api;
    vzt_mesh_t *m;
    redisContext *redis;
    char log[512];
} mesh_t;

static mesh_t *s_mesh;

static char *s_slurp(const char *path)
{
    char *text = gh_test_slurp(path, NULL);
    return text ? text : strdup("");
}

static char *s_node(const char *script, const char *args)
{
    return gh_test_node(script, args);
}

//  github.<method> as the gateway; ctx key, value, ..., NULL. Error code into code.
static char *s_call(const char *method, const char *const *ctx, const char *body, size_t len,
                    char *code, size_t n)
{
    char *out = gh_test_call(s_mesh->m, "gateway", method, ctx, body, len, code, n);
    assert_non_null(out);
    return out;
}

//  Entries of the fake's log (one JSON object per line) matching method and path prefix.
typedef struct {
    const char *method;
    const char *path;
    int min;
} want_t;

static int s_count(const char *method, const char *path, const char *status)
{
    char *text = s_slurp(s_mesh->log);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        vz_json_t *doc = vz_json_parse(line, strlen(line), NULL, NULL);
        const vz_json_value_t *e = doc ? vz_json_root(doc) : NULL;
        const char *m = vz_json_get_string(e, "method", NULL);
        const char *p = vz_json_get_string(e, "path", NULL);
        int64_t st = 0;
        (void)vz_json_int(vz_json_get(e, "status"), &st);
        char sts[16];
        snprintf(sts, sizeof sts, "%lld", (long long)st);
        if (m && p && strcmp(m, method) == 0 && strncmp(p, path, strlen(path)) == 0 &&
            (!status || strcmp(status, sts) == 0))
            n++;
        vz_json_destroy(&doc);
    }
    free(text);
    return n;
}

static bool s_logged(void *arg)
{
    const want_t *w = arg;
    return s_count(w->method, w->path, NULL) >= w->min;
}

static bool s_set_size(void *arg)
{
    const char *key = arg;
    redisReply *r = redisCommand(s_mesh->redis, "SCARD %s", key);
    bool yes = r && r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    if (r)
        freeReplyObject(r);
    return yes;
}

//  The time (ms) of the first entry with method, path and status; 0 when none.
static int64_t s_time_of(const char *method, const char *path, int64_t status, bool last)
{
    char *text = s_slurp(s_mesh->log);
    int64_t t = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        vz_json_t *doc = vz_json_parse(line, strlen(line), NULL, NULL);
        const vz_json_value_t *e = doc ? vz_json_root(doc) : NULL;
        int64_t st = 0, at = 0;
        (void)vz_json_int(vz_json_get(e, "status"), &st);
        (void)vz_json_int(vz_json_get(e, "t"), &at);
        const char *m = vz_json_get_string(e, "method", NULL);
        const char *p = vz_json_get_string(e, "path", NULL);
        if (m && p && strcmp(m, method) == 0 && strcmp(p, path) == 0 && st == status &&
            (last || !t))
            t = at;
        vz_json_destroy(&doc);
    }
    free(text);
    return t;
}

static int s_setup(void **state)
{
    const char *src = getenv("VZ_SOURCE_DIR");
    assert_non_null(src);
    char *probe = zsys_sprintf("%s/tests/peers/node_modules/@octokit/openapi/package.json", src);
    if (access(probe, R_OK) != 0)
        fail_msg("@octokit/openapi is missing: npm ci in tests/peers");
    free(probe);
    mesh_t *mesh = calloc(1, sizeof *mesh);
    s_mesh = mesh;
    *state = mesh;
    mesh->dir = vzt_tempdir("github-app");
    char *cmd = zsys_sprintf("openssl genrsa -out %s/app.pem 2048 2>/dev/null && openssl rsa -in "
                             "%s/app.pem -pubout -out %s/app.pub 2>/dev/null",
                             mesh->dir, mesh->dir, mesh->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    snprintf(mesh->log, sizeof mesh->log, "%s/api.log", mesh->dir);
    int port = vzt_free_port();
    char *script = zsys_sprintf("%s/tests/peers/github_api.mjs", src);
    char *port_s = zsys_sprintf("%d", port);
    char *pub = zsys_sprintf("%s/app.pub", mesh->dir);
    char *argv[] = {"/usr/bin/node", script, "--port",       port_s, "--log", mesh->log,
                    "--app-id",      APP_ID, "--public-key", pub,    NULL};
    char *out = zsys_sprintf("%s/api.out", mesh->dir);
    mesh->api = vzt_spawn(argv[0], argv, NULL, out, READY_MS);
    assert_non_null(mesh->api);
    free(script), free(port_s), free(pub), free(out);
    char *base = zsys_sprintf("github:VZ_GITHUB_API_BASE=http://127.0.0.1:%d", port);
    char *key = zsys_sprintf("github:VZ_GITHUB_APP_PRIVATE_KEY_FILE=%s/app.pem", mesh->dir);
    char *const env[] = {base,
                         key,
                         "github:VZ_GITHUB_APP_ID=" APP_ID,
                         "github:VZ_GITHUB_WEBHOOK_SECRETS=" SECRET,
                         "github:VZ_GITHUB_RECONCILE_MS=0",
                         "github:VZ_GITHUB_API_BUDGET_MS=20000",
                         NULL};
    mesh->m = vzt_mesh_start(&(vzt_mesh_opts_t){
        .tag = "githubapp", .daemons = "github", .identities = "gateway", .env = env});
    free(base), free(key);
    assert_non_null(mesh->m);
    mesh->redis = redisConnect("127.0.0.1", vzt_mesh_redis_port(mesh->m));
    assert_true(mesh->redis && !mesh->redis->err);
    return 0;
}

static int s_teardown(void **state)
{
    mesh_t *mesh = *state;
    if (mesh->redis)
        redisFree(mesh->redis);
    int rc = vzt_mesh_destroy(&mesh->m);
    vzt_proc_destroy(&mesh->api);
    if (!getenv("VZ_KEEP_TMP"))
        vzt_rmrf(mesh->dir);
    free(mesh->dir);
    free(mesh);
    return rc;
}

//  The schema validator is not a rubber stamp: an issue without its required title fails.
static void test_validator_rejects(void **state)
{
    char *v = s_node("github_api.mjs", "check POST /repos/octo/hello/issues '{\"body\":\"x\"}'");
    assert_non_null(v);
    if (!strstr(v, "invalid") || !strstr(v, "title"))
        fail_msg("the validator accepted an issue without title: %s", v);
    free(v);
    v = s_node("github_api.mjs", "check POST /repos/octo/hello/issues '{\"title\":\"x\"}'");
    assert_string_equal(v, "valid");
    free(v);
    v = s_node("github_api.mjs", "check GET '/repos/octo/hello/issues?state=opened' ''");
    assert_non_null(strstr(v, "invalid"));
    free(v);
}

static void test_backfill_on_installation(void **state)
{
    char *path = zsys_sprintf("%s/install.json", s_mesh->dir);
    char *args = zsys_sprintf("example installation 1 '{}' '%s' '%s'", path, SECRET);
    char *sig = s_node("github_webhook.mjs", args);
    assert_non_null(sig);
    char *body = s_slurp(path);
    const char *ctx[] = {"header.x-hub-signature-256",
                         sig,
                         "header.x-github-event",
                         "installation",
                         "header.x-github-delivery",
                         "install-guid-0001",
                         NULL};
    char code[64];
    char *reply = s_call("webhook", ctx, body, strlen(body), code, sizeof code);
    assert_string_equal(code, "");
    assert_non_null(strstr(reply, "\"received\":true"));
    free(reply), free(body), free(sig), free(args), free(path);
    //  The installation's three pages of repositories, then each one's issues and milestones.
    assert_true(vzt_wait_until(s_set_size, "{github}:items:octo-org/repo-a", WAIT_MS));
    want_t last = {"GET", "/repos/octo-org/repo-c/milestones", 1};
    assert_true(vzt_wait_until(s_logged, &last, WAIT_MS));
    assert_true(vzt_wait_until(s_set_size, "{github}:milestones:octo-org/repo-c", WAIT_MS));
    assert_int_equal(s_count("GET", "/installation/repositories", "200"), 3);
    //  Every request was valid against GitHub's OpenAPI description (and the JWT against jose).
    assert_int_equal(s_count("GET", "/", "422") + s_count("POST", "/", "422"), 0);
    //  Tokens: the first was refused as expired (401), one more was fetched and served the rest.
    assert_int_equal(s_count("POST", "/app/installations/957387/access_tokens", "201"), 2);
    assert_int_equal(s_count("GET", "/", "401"), 1);
    //  Secondary limit: the retry waited retry-after (1 s).
    int64_t t403 = s_time_of("GET", "/repos/octo-org/repo-a/issues", 403, false);
    int64_t t200 = s_time_of("GET", "/repos/octo-org/repo-a/issues", 200, false);
    assert_true(t403 > 0 && t200 >= t403 + 900);
    //  Primary limit exhausted: nothing was sent before x-ratelimit-reset (2 s ahead, whole
    //  seconds).
    t403 = s_time_of("GET", "/repos/octo-org/repo-b/milestones", 403, false);
    t200 = s_time_of("GET", "/repos/octo-org/repo-b/milestones", 200, false);
    assert_true(t403 > 0 && t200 >= t403 + 900);
    //  Backfilled items are readable through the contract.
    const char *admin[] = {"auth",       "jwt",      "sub",       "u_admin", "scope", "admin",
                           "path.owner", "octo-org", "path.repo", "repo-a",  NULL};
    char *ins = s_call("insights", admin, NULL, 0, code, sizeof code);
    assert_string_equal(code, "");
    vz_gh_insights_reply_t *r = NULL;
    assert_int_equal(vz_gh_insights_reply_decode(ins, strlen(ins), &r, NULL), 0);
    assert_true(r->issues_open + r->pulls_open >= 1); //  the spec example is a pull request
    vz_gh_insights_reply_destroy(&r);
    free(ins);
    //  Neither the key nor a token reached the log.
    char *log = vzt_mesh_log(s_mesh->m, "github");
    assert_false(vzt_file_has(log, "PRIVATE KEY"));
    assert_false(vzt_file_has(log, "ghs_"));
    free(log);
}

static void test_reconcile(void **state)
{
    const char *admin[] = {"auth", "jwt", "sub", "u_admin", "scope", "admin", NULL};
    char code[64];
    char *reply = s_call("reconcile", admin, NULL, 0, code, sizeof code);
    assert_string_equal(code, "");
    assert_non_null(strstr(reply, "\"started\":true"));
    free(reply);
    want_t asked = {"POST", "/app/hook/deliveries/12345678/attempts", 1};
    assert_true(vzt_wait_until(s_logged, &asked, WAIT_MS));
    assert_int_equal(s_count("POST", "/app/hook/deliveries/12345677/attempts", NULL), 0);
    //  The next run (lock released) asks with the ETag: 304, nothing asked again.
    redisReply *r = redisCommand(s_mesh->redis, "DEL {github}:reconcile:lock");
    freeReplyObject(r);
    reply = s_call("reconcile", admin, NULL, 0, code, sizeof code);
    free(reply);
    want_t unchanged = {"GET", "/app/hook/deliveries", 2};
    assert_true(vzt_wait_until(s_logged, &unchanged, WAIT_MS));
    assert_int_equal(s_count("GET", "/app/hook/deliveries", "304"), 1);
    assert_int_equal(s_count("POST", "/app/hook/deliveries/12345678/attempts", NULL), 1);
    assert_int_equal(s_count("GET", "/", "422") + s_count("POST", "/", "422"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator_rejects),
        cmocka_unit_test(test_backfill_on_installation),
        cmocka_unit_test(test_reconcile),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
