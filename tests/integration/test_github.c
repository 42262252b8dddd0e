/*  test_github - GitHub's own webhook payloads through the real gateway into vz-github and Redis
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh: Redis, broker, auth, ratelimit, github, notifier and the
 *  gateway with the shipped configs/routes.cfg and configs/github.cfg; the
 *  notifier mails through a real SMTP server (tests/peers/smtp_sink.mjs,
 *  STARTTLS with a certificate made here). Every delivery is an example
 *  payload of @octokit/webhooks-examples (patched where a case needs a
 *  branch, a merge or a recent date), signed by @octokit/webhooks-methods
 *  (tests/peers/github_webhook.mjs) and POSTed to /v1/webhooks/github. The
 *  test reads github's state from Redis (keys in docs/services/github.md)
 *  and waits on it with vzt_wait_until, never on sleeps.
 *
 *  Cases: every handled event type and two unhandled ones (counted);
 *  refusals (no, malformed, wrong signature, a body re-serialised after
 *  signing, a body that is not JSON, missing delivery header) and a secret
 *  rotation; the same delivery twice processed once; kill -9 of a replica
 *  between acknowledgement and processing loses nothing; partner
 *  notifications at the SMTP server for a push to main, a merged pull
 *  request and a published release, none for a push to a feature branch;
 *  insights, roadmap, repos and issue_state through the contract, as the
 *  gateway and as the reporter; github_not_configured without the App.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gh_test.h"
#include "harness.h"
#include "vz_client.h"
#include "vz_common.h"
#include "vz_github_contract.h"
#include "vz_json.h"

#define HTTP_MS 10000
#define APPLY_MS 15000
#define READY_MS 15000
#define SECRET_CUR "gh-webhook-secret-current-0123"
#define SECRET_NEXT "gh-webhook-secret-next-4567"
#define SECRET_OLD "gh-webhook-secret-retired-89ab"
#define SMTP_USER "mailer"
#define SMTP_PASS "s3cret-Pa55"
#define REPO "Codertocat/Hello-World"

typedef struct {
    vzt_mesh_t *m;
    const char *dir;
    redisContext *redis;
    vzt_proc_t *sink;
    char *smtp_dir; //  the SMTP server's certificate and mails
    char sink_dir[512];
    char webhook_url[128];
    int seq; //  delivery GUIDs made so far
} mesh_t;

static mesh_t *s_mesh; //  for the predicates

// --------------------------------------------------------------------------
//  Deliveries

//  First line github_webhook.mjs prints (heap), or NULL when it failed.
static char *s_node(const char *args)
{
    return gh_test_node("github_webhook.mjs", args);
}

typedef struct {
    char guid[64];
    char *path; //  payload file
    char *body; //  its bytes
    size_t len;
    char *signature; //  X-Hub-Signature-256 with the secret given
    const char *event;
} delivery_t;

static char *s_slurp(const char *path, size_t *len)
{
    char *text = gh_test_slurp(path, len);
    assert_non_null(text);
    return text;
}

//  Example index of event, patched, signed with secret, under a new GUID.
static delivery_t s_example(const char *event, int index, const char *patch, const char *secret)
{
    delivery_t d = {.event = event};
    snprintf(d.guid, sizeof d.guid, "72d3162e-cc78-11e3-81ab-%012d", ++s_mesh->seq);
    d.path = zsys_sprintf("%s/%s.json", s_mesh->dir, d.guid);
    char *args = zsys_sprintf("example %s %d '%s' '%s' '%s'", event, index, patch, d.path, secret);
    d.signature = s_node(args);
    free(args);
    assert_non_null(d.signature);
    d.body = s_slurp(d.path, &d.len);
    return d;
}

static void s_delivery_free(delivery_t *d)
{
    free(d->path);
    free(d->body);
    free(d->signature);
}

//  POST body with the given headers (NULL: left out); the status, *reply the body.
static long s_post_raw(const void *body, size_t len, const char *signature, const char *event,
                       const char *guid, char **reply)
{
    char *h[3] = {signature ? zsys_sprintf("X-Hub-Signature-256: %s", signature) : NULL,
                  event ? zsys_sprintf("X-GitHub-Event: %s", event) : NULL,
                  guid ? zsys_sprintf("X-GitHub-Delivery: %s", guid) : NULL};
    const char *headers[5] = {"Content-Type: application/json"};
    size_t n = 1;
    for (int i = 0; i < 3; i++)
        if (h[i])
            headers[n++] = h[i];
    headers[n] = NULL;
    vzt_resp_t resp;
    int rc = vzt_request("POST", s_mesh->webhook_url, headers, body, len, HTTP_MS, &resp);
    for (int i = 0; i < 3; i++)
        free(h[i]);
    long status = rc == 0 ? resp.status : 0;
    if (reply)
        *reply = resp.body ? strdup(resp.body) : strdup("");
    vzt_resp_free(&resp);
    return status;
}

//  Deliver d; the gateway may not know the worker yet (503 no_worker) right after a start.
static long s_deliver(const delivery_t *d, char **reply)
{
    long status = 0;
    for (int i = 0; i < 50 && (status == 0 || status == 503); i++) {
        if (reply && i) {
            free(*reply);
            *reply = NULL;
        }
        status = s_post_raw(d->body, d->len, d->signature, d->event, d->guid, reply);
    }
    return status;
}

static void s_deliver_ok(const delivery_t *d)
{
    char *reply = NULL;
    long status = s_deliver(d, &reply);
    if (status != 200 || !strstr(reply, "\"received\":true"))
        fail_msg("delivery %s (%s): %ld %s", d->guid, d->event, status, reply);
    free(reply);
}

// --------------------------------------------------------------------------
//  Redis

static bool s_applied(void *arg)
{
    redisReply *r = redisCommand(s_mesh->redis, "EXISTS {github}:applied:%s", (const char *)arg);
    bool yes = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r)
        freeReplyObject(r);
    return yes;
}

static long s_hget_int(const char *key, const char *field)
{
    redisReply *r = redisCommand(s_mesh->redis, "HGET %s %s", key, field);
    long n = r && r->type == REDIS_REPLY_STRING ? atol(r->str) : 0;
    if (r)
        freeReplyObject(r);
    return n;
}

static char *s_hget(const char *key, const char *field)
{
    redisReply *r = redisCommand(s_mesh->redis, "HGET %s %s", key, field);
    char *out = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    if (r)
        freeReplyObject(r);
    return out;
}

static long s_xlen(const char *key)
{
    redisReply *r = redisCommand(s_mesh->redis, "XLEN %s", key);
    long n = r && r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
    if (r)
        freeReplyObject(r);
    return n;
}

// --------------------------------------------------------------------------
//  Calls as the gateway (trusted ctx) or as the reporter (a mesh reader)

static char *s_call(const char *identity, const char *method, const char *const *ctx,
                    const char *body, char *code, size_t n)
{
    char *out =
        gh_test_call(s_mesh->m, identity, method, ctx, body, body ? strlen(body) : 0, code, n);
    assert_non_null(out);
    return out;
}

// --------------------------------------------------------------------------
//  SMTP sink

//  Mails the sink wrote (<n>.json files).
static int s_mails(void)
{
    DIR *d = opendir(s_mesh->sink_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".json") != NULL;
    if (d)
        closedir(d);
    return n;
}

//  Every mail's JSON concatenated (heap).
static char *s_mail_text(void)
{
    char *all = strdup("");
    for (int i = 1; i <= s_mails(); i++) {
        char *path = zsys_sprintf("%s/%d.json", s_mesh->sink_dir, i);
        size_t len = 0;
        if (access(path, R_OK) == 0) {
            char *text = s_slurp(path, &len);
            char *more = zsys_sprintf("%s\n%s", all, text);
            free(all);
            free(text);
            all = more;
        }
        free(path);
    }
    return all;
}

static bool s_mail_has(void *arg)
{
    char *text = s_mail_text();
    bool yes = strstr(text, (const char *)arg) != NULL;
    free(text);
    return yes;
}

// --------------------------------------------------------------------------
//  Mesh

static int s_setup(void **state)
{
    const char *src = getenv("VZ_SOURCE_DIR");
    assert_non_null(src);
    char *probe =
        zsys_sprintf("%s/tests/peers/node_modules/@octokit/webhooks-examples/package.json", src);
    if (access(probe, R_OK) != 0)
        fail_msg("@octokit/webhooks-examples is missing: npm ci in tests/peers");
    free(probe);
    mesh_t *mesh = calloc(1, sizeof *mesh);
    s_mesh = mesh;
    *state = mesh;
    char *dir = vzt_tempdir("github-smtp");
    int smtp_port = vzt_free_port();
    //  The SMTP server's certificate, trusted by the notifier as its CA file.
    char *cmd = zsys_sprintf("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
                             "/CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
                             "-keyout %s/smtp.key -out %s/smtp.crt 2>/dev/null",
                             dir, dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    snprintf(mesh->sink_dir, sizeof mesh->sink_dir, "%s/mail", dir);
    assert_int_equal(mkdir(mesh->sink_dir, 0755), 0);
    char *script = zsys_sprintf("%s/tests/peers/smtp_sink.mjs", src);
    char *port = zsys_sprintf("%d", smtp_port);
    char *cert = zsys_sprintf("%s/smtp.crt", dir), *key = zsys_sprintf("%s/smtp.key", dir);
    char *argv[] = {"/usr/bin/node",
                    script,
                    "--port",
                    port,
                    "--out",
                    mesh->sink_dir,
                    "--cert",
                    cert,
                    "--key",
                    key,
                    "--auth",
                    SMTP_USER ":" SMTP_PASS,
                    NULL};
    char *log = zsys_sprintf("%s/sink.log", dir);
    mesh->sink = vzt_spawn(argv[0], argv, NULL, log, READY_MS);
    assert_non_null(mesh->sink);
    free(script), free(port), free(key), free(log);

    char *routes_path = zsys_sprintf("%s/configs/routes.cfg", src);
    char *limits_path = zsys_sprintf("%s/configs/ratelimit.cfg", src);
    size_t len = 0;
    char *routes = s_slurp(routes_path, &len);
    char *limits = s_slurp(limits_path, &len);
    free(routes_path), free(limits_path);
    const char *files[] = {"routes.cfg", routes, "ratelimit.cfg", limits, NULL};
    char *rules = zsys_sprintf("github:VZ_CONFIG_FILE=%s/configs/github.cfg", src);
    char *templates = zsys_sprintf("notifier:VZ_NOTIFIER_TEMPLATES=%s/configs/templates", src);
    char *smtp = zsys_sprintf("notifier:VZ_NOTIFIER_SMTP_URL=smtp://127.0.0.1:%d", smtp_port);
    char *ca = zsys_sprintf("notifier:VZ_NOTIFIER_SMTP_CA_FILE=%s", cert);
    char *state_dir = zsys_sprintf("notifier:VZ_NOTIFIER_STATE_DIR=%s/state", dir);
    char *const env[] = {rules,
                         templates,
                         smtp,
                         ca,
                         state_dir,
                         "notifier:VZ_NOTIFIER_SMTP_USER=" SMTP_USER,
                         "notifier:VZ_NOTIFIER_SMTP_PASSWORD=" SMTP_PASS,
                         "notifier:VZ_NOTIFIER_BACKOFF_MS=200",
                         "github:VZ_GITHUB_WEBHOOK_SECRETS=" SECRET_CUR ", " SECRET_NEXT,
                         "github:VZ_GITHUB_CLAIM_IDLE_MS=500",
                         "github:VZ_GITHUB_CONSUMER=github-main",
                         "github:VZ_GITHUB_NOTIFY_RETRY_MS=200",
                         "github:VZ_GITHUB_RECONCILE_MS=0",
                         "auth:VZ_AUTH_PBKDF2_ITERATIONS=100000",
                         NULL};
    mesh->m = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "github",
                                                .daemons = "auth,ratelimit,notifier,github,gateway",
                                                .identities = "reporter",
                                                .files = files,
                                                .env = env});
    free(routes), free(limits), free(rules), free(templates), free(smtp), free(ca);
    free(state_dir), free(cert);
    mesh->smtp_dir = dir;
    assert_non_null(mesh->m);
    mesh->dir = vzt_mesh_dir(mesh->m);
    snprintf(mesh->webhook_url, sizeof mesh->webhook_url, "%s/v1/webhooks/github",
             vzt_mesh_url(mesh->m));
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
    vzt_proc_destroy(&mesh->sink);
    if (!getenv("VZ_KEEP_TMP"))
        vzt_rmrf(mesh->smtp_dir);
    free(mesh->smtp_dir);
    free(mesh);
    return rc;
}

// --------------------------------------------------------------------------
//  Verification

static void s_expect(long status, char *reply, long want_status, const char *code,
                     const char *refusal)
{
    char *want = zsys_sprintf("\"code\":\"%s\",\"message\":\"%s: ", code, refusal);
    if (status != want_status || !strstr(reply, want))
        fail_msg("want %ld %s %s, got %ld %s", want_status, code, refusal, status, reply);
    free(want);
    free(reply);
}

static void test_refusals(void **state)
{
    delivery_t d = s_example("ping", 0, "{}", SECRET_CUR);
    char *reply = NULL;
    //  Before the worker is known the gateway may answer 503: s_deliver waits it out.
    s_deliver_ok(&d);
    long st = s_post_raw(d.body, d.len, NULL, "ping", "refuse-1", &reply);
    s_expect(st, reply, 401, "unauthorized", "signature_missing");
    st = s_post_raw(d.body, d.len, "sha1=abc", "ping", "refuse-2", &reply);
    s_expect(st, reply, 401, "unauthorized", "signature_unparsable");
    //  Signed with a retired secret.
    delivery_t old = s_example("ping", 0, "{}", SECRET_OLD);
    st = s_post_raw(old.body, old.len, old.signature, "ping", old.guid, &reply);
    s_expect(st, reply, 401, "unauthorized", "signature_invalid");
    //  The same JSON value re-serialised after signing (parsed and re-encoded): refused.
    char *again = zsys_sprintf("%s.again", d.path);
    char *rargs = zsys_sprintf("reserialise '%s' '%s'", d.path, again);
    char *ok = s_node(rargs);
    assert_non_null(ok);
    size_t alen = 0;
    char *abody = s_slurp(again, &alen);
    assert_true(alen != d.len);
    st = s_post_raw(abody, alen, d.signature, "ping", "refuse-3", &reply);
    s_expect(st, reply, 401, "unauthorized", "signature_invalid");
    free(abody), free(ok), free(rargs), free(again);
    //  A tampered byte.
    d.body[d.len / 2] ^= 1;
    st = s_post_raw(d.body, d.len, d.signature, "ping", "refuse-4", &reply);
    s_expect(st, reply, 401, "unauthorized", "signature_invalid");
    //  Signed, but not JSON: 400.
    char *path = zsys_sprintf("%s/notjson.txt", s_mesh->dir);
    FILE *f = fopen(path, "w");
    fputs("not json at all", f);
    fclose(f);
    char *args = zsys_sprintf("sign '%s' '%s'", SECRET_CUR, path);
    char *sig = s_node(args);
    assert_non_null(sig);
    st = s_post_raw("not json at all", 15, sig, "ping", "refuse-5", &reply);
    s_expect(st, reply, 400, "invalid_request", "invalid_json");
    free(sig), free(args), free(path);
    //  Rotation: the next secret is accepted too.
    delivery_t next = s_example("ping", 1, "{}", SECRET_NEXT);
    s_deliver_ok(&next);
    //  A verified body without X-GitHub-Delivery: 400.
    st = s_post_raw(next.body, next.len, next.signature, "ping", NULL, &reply);
    s_expect(st, reply, 400, "invalid_request", "header_missing");
    assert_true(vzt_wait_until(s_applied, next.guid, APPLY_MS));
    assert_true(vzt_wait_until(s_applied, d.guid, APPLY_MS));
    //  Our verdicts agree with webhooks-methods' verify.
    args = zsys_sprintf("verify '%s' '%s' '%s'", SECRET_CUR, old.path, old.signature);
    char *v = s_node(args);
    assert_string_equal(v, "fail");
    free(v), free(args);
    s_delivery_free(&d);
    s_delivery_free(&old);
    s_delivery_free(&next);
}

//  Every handled event type, and two GitHub sends that the service does not handle.
static void test_every_event(void **state)
{
    static const struct {
        const char *event;
        int index;
    } cases[] = {{"ping", 2},
                 {"push", 5},
                 {"pull_request", 0},
                 {"pull_request_review", 0},
                 {"issues", 15},
                 {"issue_comment", 0},
                 {"release", 1},
                 {"deployment", 0},
                 {"deployment_status", 0},
                 {"workflow_run", 1},
                 {"check_suite", 0},
                 {"milestone", 0},
                 {"installation", 1},
                 {"installation_repositories", 0},
                 {"star", 0},
                 {"fork", 0}};
    const size_t n = sizeof cases / sizeof cases[0];
    delivery_t d[sizeof cases / sizeof cases[0]];
    redisReply *before = redisCommand(s_mesh->redis, "HGETALL {github}:counts");
    freeReplyObject(before);
    long pings = s_hget_int("{github}:counts", "ping");
    for (size_t i = 0; i < n; i++) {
        d[i] = s_example(cases[i].event, cases[i].index, "{}", SECRET_CUR);
        s_deliver_ok(&d[i]);
    }
    for (size_t i = 0; i < n; i++)
        assert_true(vzt_wait_until(s_applied, d[i].guid, APPLY_MS));
    for (size_t i = 1; i < n - 2; i++)
        if (s_hget_int("{github}:counts", cases[i].event) < 1)
            fail_msg("%s not counted", cases[i].event);
    assert_int_equal(s_hget_int("{github}:counts", "ping"), pings + 1);
    assert_true(s_hget_int("{github}:counts", "other:star") >= 1);
    assert_true(s_hget_int("{github}:counts", "other:fork") >= 1);
    //  What they became: the repository, its issue, the installation's repos.
    redisReply *r = redisCommand(s_mesh->redis, "SISMEMBER {github}:repos %s", REPO);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    char *title = s_hget("{github}:item:" REPO ":1", "title");
    assert_non_null(title);
    free(title);
    assert_true(s_hget_int("{github}:deploy:" REPO, "e|production|success") >= 1);
    assert_int_equal(s_hget_int("{github}:repo:" REPO, "installation_id"), 957387);
    //  The metric counts unhandled events under "other".
    int admin = vzt_mesh_admin_port(s_mesh->m, "github");
    assert_true(vzt_wait_metric(
        admin, "vz_github_deliveries_total{event=\"other\",outcome=\"unhandled\"}", 2, APPLY_MS));
    assert_true(vzt_wait_metric(
        admin, "vz_github_deliveries_total{event=\"push\",outcome=\"applied\"}", 1, 1));
    for (size_t i = 0; i < n; i++)
        s_delivery_free(&d[i]);
}

static void test_duplicate(void **state)
{
    delivery_t d = s_example("milestone", 1, "{}", SECRET_CUR);
    long before = s_hget_int("{github}:counts", "milestone");
    char *reply = NULL;
    assert_int_equal(s_deliver(&d, &reply), 200);
    assert_non_null(strstr(reply, "\"duplicate\":false"));
    free(reply);
    assert_int_equal(s_deliver(&d, &reply), 200);
    assert_non_null(strstr(reply, "\"duplicate\":true"));
    free(reply);
    assert_true(vzt_wait_until(s_applied, d.guid, APPLY_MS));
    //  Processed once: a later delivery is applied after it, and the count moved by one.
    delivery_t after = s_example("ping", 3, "{}", SECRET_CUR);
    s_deliver_ok(&after);
    assert_true(vzt_wait_until(s_applied, after.guid, APPLY_MS));
    assert_int_equal(s_hget_int("{github}:counts", "milestone"), before + 1);
    s_delivery_free(&d);
    s_delivery_free(&after);
}

static void test_kill_between_ack_and_apply(void **state)
{
    //  A replica that acknowledges but never gets to apply: its first poll
    //  is a minute away. The main replica is stopped meanwhile.
    assert_int_equal(vzt_mesh_stop(s_mesh->m, "github"), 0);
    char *const slow[] = {"VZ_GITHUB_POLL_MS=60000", "VZ_GITHUB_CONSUMER=github-doomed", NULL};
    assert_non_null(vzt_mesh_add(s_mesh->m, "github", "github.doomed", slow, true));
    delivery_t read = s_example("issues", 16, "{}", SECRET_CUR);
    delivery_t unread = s_example("release", 2, "{}", SECRET_CUR);
    s_deliver_ok(&read);
    s_deliver_ok(&unread);
    //  The doomed replica reads the first (as its poll would) and dies
    //  before applying: the entry is pending under its name.
    redisReply *r = redisCommand(s_mesh->redis, "XREADGROUP GROUP apply github-doomed COUNT 1 "
                                                "STREAMS {github}:deliveries >");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    assert_int_equal(vzt_mesh_kill(s_mesh->m, "github.doomed", SIGKILL), 0);
    assert_false(s_applied(read.guid));
    assert_false(s_applied(unread.guid));
    //  A replica starts: it reads the unread one and, after the claim idle
    //  time (500 ms here), takes over the dead one's pending entry.
    assert_int_equal(vzt_mesh_restart(s_mesh->m, "github"), 0);
    assert_true(vzt_wait_until(s_applied, unread.guid, APPLY_MS));
    assert_true(vzt_wait_until(s_applied, read.guid, APPLY_MS));
    r = redisCommand(s_mesh->redis, "XPENDING {github}:deliveries apply");
    assert_non_null(r);
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    s_delivery_free(&read);
    s_delivery_free(&unread);
}

//  Partner notifications: the shipped rules, the real notifier, a real SMTP server.
static void test_notifications(void **state)
{
    long outbox = s_xlen("{github}:outbox");
    int mails = s_mails();
    delivery_t feature = s_example("push", 4, "{\"ref\":\"refs/heads/feature/x\"}", SECRET_CUR);
    delivery_t main_push = s_example("push", 5, "{\"ref\":\"refs/heads/main\"}", SECRET_CUR);
    delivery_t merged = s_example(
        "pull_request", 3,
        "{\"pull_request\":{\"merged\":true,\"merged_at\":\"2026-01-02T03:04:05Z\"}}", SECRET_CUR);
    delivery_t release = s_example("release", 0, "{\"release\":{\"name\":\"v9.9.9\"}}", SECRET_CUR);
    delivery_t *all[] = {&feature, &main_push, &merged, &release};
    for (size_t i = 0; i < 4; i++)
        s_deliver_ok(all[i]);
    for (size_t i = 0; i < 4; i++)
        assert_true(vzt_wait_until(s_applied, all[i]->guid, APPLY_MS));
    //  Three messages queued, none for the feature branch.
    assert_int_equal(s_xlen("{github}:outbox"), outbox + 3);
    //  Each arrives at the SMTP server (earlier cases' mails may still be on their way).
    const char *expect[] = {"pushed 1 commit to main", "Pull request #2 merged by",
                            "Release v9.9.9 published"};
    for (size_t i = 0; i < 3; i++)
        if (!vzt_wait_until(s_mail_has, (void *)expect[i], 30000))
            fail_msg("no mail with \"%s\"", expect[i]);
    char *text = s_mail_text();
    assert_true(s_mails() >= mails + 3);
    assert_null(strstr(text, "feature/x"));
    assert_non_null(strstr(text, "partners@vizmesh.localhost"));
    free(text);
    for (size_t i = 0; i < 4; i++)
        s_delivery_free(all[i]);
}

//  The contract's methods over what the deliveries stored.
static void test_api(void **state)
{
    //  Recent activity: an issue closed now, a blocked open one, a workflow run.
    char now[32], patch[1024];
    time_t t = time(NULL);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    snprintf(patch, sizeof patch,
             "{\"issue\":{\"number\":77,\"state\":\"closed\",\"state_reason\":\"completed\","
             "\"closed_at\":\"%s\",\"updated_at\":\"%s\"}}",
             now, now);
    delivery_t closed = s_example("issues", 15, patch, SECRET_CUR);
    snprintf(patch, sizeof patch,
             "{\"issue\":{\"number\":78,\"state\":\"open\",\"updated_at\":\"%s\","
             "\"labels\":[{\"name\":\"Blocked\"}]}}",
             now);
    delivery_t blocked = s_example("issues", 15, patch, SECRET_CUR);
    snprintf(patch, sizeof patch,
             "{\"repository\":{\"full_name\":\"" REPO "\"},\"workflow_run\":{\"name\":\"CI\","
             "\"updated_at\":\"%s\"}}",
             now);
    delivery_t run = s_example("workflow_run", 1, patch, SECRET_CUR);
    delivery_t *all[] = {&closed, &blocked, &run};
    for (size_t i = 0; i < 3; i++)
        s_deliver_ok(all[i]);
    for (size_t i = 0; i < 3; i++)
        assert_true(vzt_wait_until(s_applied, all[i]->guid, APPLY_MS));

    char code[64];
    //  As the gateway: a user without the scope is refused, admin reads.
    const char *user[] = {"auth",       "jwt",        "sub",       "u_1",         "scope", "user",
                          "path.owner", "Codertocat", "path.repo", "Hello-World", NULL};
    char *body = s_call("gateway", VZ_GH_METHOD_INSIGHTS, user, NULL, code, sizeof code);
    assert_string_equal(code, "access_denied");
    free(body);
    const char *reader[] = {"auth",        "jwt",        "sub",        "u_2",       "scope",
                            "github:read", "path.owner", "Codertocat", "path.repo", "Hello-World",
                            "path.weeks",  "2",          NULL};
    body = s_call("gateway", VZ_GH_METHOD_INSIGHTS, reader, NULL, code, sizeof code);
    assert_string_equal(code, "");
    vz_gh_insights_reply_t *ins = NULL;
    const char *why = NULL;
    if (vz_gh_insights_reply_decode(body, strlen(body), &ins, &why) < 0)
        fail_msg("insights: %s: %s", why, body);
    assert_string_equal(ins->repo, REPO);
    assert_int_equal(ins->weeks, 2);
    assert_int_equal(ins->nvelocity, 2);
    assert_true(ins->velocity[0].issues_closed >= 1);
    assert_true(ins->issues_open >= 1 && ins->issues_closed >= 1);
    assert_true(ins->nci >= 1);
    bool ci = false;
    for (size_t i = 0; i < ins->nci; i++)
        ci |= strcmp(ins->ci[i].workflow, "CI") == 0 && ins->ci[i].pass_rate == 1.0;
    assert_true(ci);
    assert_true(ins->nenvironments >= 1);
    vz_gh_insights_reply_destroy(&ins);
    free(body);

    //  As the reporter (a mesh reader): a JSON body, the contract's encoders.
    vz_gh_roadmap_req_t rq = {.repo = REPO, .weeks = 1};
    char *req = vz_gh_roadmap_req_encode(&rq, NULL);
    body = s_call("reporter", VZ_GH_METHOD_ROADMAP, NULL, req, code, sizeof code);
    free(req);
    assert_string_equal(code, "");
    vz_gh_roadmap_reply_t *road = NULL;
    if (vz_gh_roadmap_reply_decode(body, strlen(body), &road, &why) < 0)
        fail_msg("roadmap: %s: %s", why, body);
    bool done = false, stuck = false;
    for (size_t i = 0; i < road->ncompleted; i++)
        done |= road->completed[i].number == 77;
    for (size_t i = 0; i < road->nblocked; i++)
        stuck |= road->blocked[i].number == 78;
    assert_true(done && stuck);
    vz_gh_roadmap_reply_destroy(&road);
    free(body);

    vz_gh_issue_state_req_t iq = {.owner = "Codertocat", .repo = "Hello-World", .number = 77};
    req = vz_gh_issue_state_req_encode(&iq, NULL);
    body = s_call("reporter", VZ_GH_METHOD_ISSUE_STATE, NULL, req, code, sizeof code);
    assert_string_equal(code, "");
    vz_gh_issue_state_reply_t is;
    assert_int_equal(vz_gh_issue_state_reply_decode(body, strlen(body), &is, &why), 0);
    assert_string_equal(is.state, "closed");
    assert_string_equal(is.state_reason, "completed");
    free(body), free(req);
    iq.number = 9999;
    req = vz_gh_issue_state_req_encode(&iq, NULL);
    body = s_call("reporter", VZ_GH_METHOD_ISSUE_STATE, NULL, req, code, sizeof code);
    assert_string_equal(code, "not_found");
    free(body), free(req);

    body = s_call("reporter", VZ_GH_METHOD_REPOS, NULL, NULL, code, sizeof code);
    assert_string_equal(code, "");
    vz_gh_repos_reply_t *repos = NULL;
    assert_int_equal(vz_gh_repos_reply_decode(body, strlen(body), &repos, &why), 0);
    assert_false(repos->configured);
    assert_true(repos->nrepos >= 1);
    vz_gh_repos_reply_destroy(&repos);
    free(body);

    //  Through the gateway without a credential: 401.
    char *url = zsys_sprintf("%s/v1/github/repos", vzt_mesh_url(s_mesh->m));
    vzt_resp_t resp;
    assert_int_equal(vzt_request("GET", url, NULL, NULL, 0, HTTP_MS, &resp), 0);
    assert_int_equal(resp.status, 401);
    vzt_resp_free(&resp);
    free(url);

    //  Without App credentials, calls to GitHub say which setting is missing.
    const char *admin[] = {"auth", "jwt", "sub", "u_admin", "scope", "admin", NULL};
    body = s_call("gateway", "reconcile", admin, NULL, code, sizeof code);
    assert_string_equal(code, "github_not_configured");
    assert_non_null(strstr(body, "set VZ_GITHUB_APP_ID"));
    free(body);
    for (size_t i = 0; i < 3; i++)
        s_delivery_free(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),      cmocka_unit_test(test_every_event),
        cmocka_unit_test(test_duplicate),     cmocka_unit_test(test_kill_between_ack_and_apply),
        cmocka_unit_test(test_notifications), cmocka_unit_test(test_api),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
