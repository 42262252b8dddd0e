/*  test_reporter - the weekly report: once across replicas, caught up once, numbers as the APIs say
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh: redis-server, vz-broker, vz-billing, vz-telemetry, vz-notifier
 *  delivering to the npm smtp-server of tests/peers/smtp_sink.mjs (STARTTLS
 *  with a certificate made here, AUTH), and reporters added by each test
 *  with their own test clock (VZ_CLOCK_START, VZ_CLOCK_TEST=1). Billing is
 *  seeded through its webhook (events built and signed by the stripe SDK,
 *  tests/peers/stripe_webhook.mjs), telemetry through ingest snapshots.
 *
 *  Weeks: W is the ISO week holding the real "now" (the seeded data); the
 *  reporters' clocks are set around M, the Monday 08:00 UTC after W, whose
 *  run reports W. The tests run in order and build on each other:
 *    1. Sunday 23:59 of W: the schedule is checked, nothing is run;
 *    2. two replicas at Monday 07:59:58: exactly one e-mail reaches the
 *       SMTP server, one send record, one run "sent" over both replicas;
 *    3. a replica restarted after the send (Monday 08:30) sends nothing;
 *    4. every replica away at the next Monday 08:00: one started at 10:00
 *       catches W+1 up, once (restarted, it sends nothing more);
 *    5. every figure of W's JSON equals billing's and telemetry's answers
 *       for the same arguments, and the HTML shows them;
 *    6. the archived HTML in headless Chromium: no broken image, no console
 *       error, a screenshot in the test's output dir; the PDF through
 *       pdftoppm has the recorded page count;
 *    7. billing away: a run for W-1 still mails, its revenue unavailable.
 *  The output dir is $VZ_TEST_OUTPUT_DIR or build/test-output/reporter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "vz_client.h"
#include "vz_curve.h"
#include "vz_github_contract.h"
#include "vz_json.h"
#include "vz_worker.h"

#define CALL_MS 15000
#define WAIT_MS 30000
#define DAY 86400
#define SMTP_USER "mailer"
#define SMTP_PASS "s3cret-Pa55"
#define SECRET "whsec_reporter_test"
#define RCPT "exec@example.test"

typedef struct {
    vzt_mesh_t *m;       //  the mesh
    const char *dir;     //  its directory
    vzt_proc_t *sink;    //  smtp_sink.mjs
    char sink_dir[600];  //  where it writes <n>.eml and <n>.json
    char out_dir[600];   //  the test's output (screenshot, PDF pages)
    redisContext *redis; //  the mesh's Redis
    int64_t week;        //  W's start (Monday 00:00 UTC)
    int64_t monday;      //  M: W's start + 7 days + 8 h
    char week_id[32];    //  W's name
} mesh_t;

static mesh_t *s_mesh;

// --------------------------------------------------------------------------
//  Helpers

static void s_utc(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void s_week_name(int64_t start, char *out, size_t n)
{
    time_t thursday = (time_t)(start + 3 * DAY);
    struct tm tm;
    gmtime_r(&thursday, &tm);
    snprintf(out, n, "%04d-W%02d", (tm.tm_year + 1900) % 10000, (tm.tm_yday / 7 + 1) % 100);
}

//  First line a peer script prints (heap), or NULL when it failed.
static char *s_node(const char *script, const char *args)
{
    char *cmd = vzt_fmt("cd '%s/tests/peers' && node %s %s", getenv("VZ_SOURCE_DIR"), script, args);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p)
        return NULL;
    char line[8192] = "";
    char *got = fgets(line, sizeof line, p);
    int rc = pclose(p);
    if (rc != 0)
        return NULL;
    line[strcspn(line, "\n")] = '\0';
    return strdup(got ? line : "");
}

static char *s_slurp(const char *path, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *data = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    if (len_p)
        *len_p = (size_t)n;
    return data;
}

//  One call as identity who with a body and ctx pairs (NULL-terminated);
//  the error code into code ("" for a reply); the body or the message.
static char *s_call(const char *who, const char *service, const char *method, const char *body,
                    const char *const *ctx, char *code, size_t n, size_t *len_p)
{
    vz_client_t *client = vzt_mesh_client(s_mesh->m, who);
    assert_non_null(client);
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    snprintf(req.service, sizeof req.service, "%s", service);
    snprintf(req.method, sizeof req.method, "%s", method);
    req.body = (const uint8_t *)body;
    req.body_len = body ? strlen(body) : 0;
    for (size_t i = 0; ctx && ctx[i]; i += 2)
        assert_int_equal(vz_envelope_ctx_set(&req, ctx[i], ctx[i + 1]), 0);
    vz_response_t *resp = NULL;
    assert_int_equal(vz_client_call(client, &req, CALL_MS, &resp), 0);
    snprintf(code, n, "%s", resp->env.error_code);
    size_t len = code[0] ? strlen(resp->env.error_message) : resp->env.body_len;
    char *out = calloc(1, len + 1);
    if (len) //  an empty reply may have no body at all
        memcpy(out, code[0] ? (const void *)resp->env.error_message : (const void *)resp->env.body,
               len);
    if (len_p)
        *len_p = len;
    vz_response_destroy(&resp);
    vz_client_destroy(&client);
    return out;
}

//  A call that must succeed; its body.
static char *s_ok(const char *who, const char *service, const char *method, const char *body,
                  size_t *len_p)
{
    char code[64];
    char *out = s_call(who, service, method, body, NULL, code, sizeof code, len_p);
    if (code[0])
        fail_msg("%s.%s: %s: %s", service, method, code, out);
    return out;
}

static long long s_redis_int(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(s_mesh->redis, fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static char *s_redis_str(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(s_mesh->redis, fmt, arg);
    char *v = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

//  Messages the SMTP server accepted.
static int s_mails(void)
{
    DIR *d = opendir(s_mesh->sink_dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".json") != NULL; //  written after the .eml, once parsed
    closedir(d);
    return n;
}

//  At least n mails, and the n-th parsed: the sink parses them concurrently,
//  so n .json files may be there before n.json is.
static bool s_mails_reach(void *arg)
{
    int n = *(int *)arg;
    char *path = vzt_fmt("%s/%d.json", s_mesh->sink_dir, n);
    bool there = access(path, F_OK) == 0;
    free(path);
    return there && s_mails() >= n;
}

//  The parsed message n (1-based) as mailparser saw it (heap).
static char *s_mail(int n)
{
    char *path = vzt_fmt("%s/%d.json", s_mesh->sink_dir, n);
    char *text = s_slurp(path, NULL);
    free(path);
    assert_non_null(text);
    return text;
}

static bool s_key_exists(void *arg)
{
    return s_redis_int("EXISTS %s", arg) == 1;
}

//  A reporter tagged tag whose clock starts at t; waits for readiness.
static void s_reporter(const char *tag, int64_t t)
{
    char when[32];
    s_utc(t, when, sizeof when);
    char *start = vzt_fmt("VZ_CLOCK_START=%s", when);
    char *const more[] = {start, NULL};
    assert_non_null(vzt_mesh_add(s_mesh->m, "reporter", tag, more, true));
    free(start);
}

//  Value of a series on tag's admin port (0 when absent).
static double s_metric(const char *tag, const char *series)
{
    double v = 0;
    vzt_metric(vzt_mesh_admin_port(s_mesh->m, tag), series, &v);
    return v;
}

typedef struct {
    const char *tag;
    double min;
} s_checks_t;

static bool s_checked(void *arg)
{
    s_checks_t *c = arg;
    return s_metric(c->tag, "vz_reporter_schedule_checks_total") >= c->min;
}

//  Wait until tag has checked the schedule n more times.
static void s_wait_checks(const char *tag, int n)
{
    s_checks_t c = {tag, s_metric(tag, "vz_reporter_schedule_checks_total") + n};
    assert_true(vzt_wait_until(s_checked, &c, WAIT_MS));
}

// --------------------------------------------------------------------------
//  Seeding

//  One Stripe event built from the fixtures by the SDK peer, signed, and
//  handed to billing.webhook as the gateway would.
static void s_stripe_event(const char *resource, const char *type, const char *id, long created,
                           const char *patch)
{
    char *path = vzt_fmt("%s/%s.json", s_mesh->dir, id);
    char *args = vzt_fmt("event '%s/tests/integration/billing_stripe_fixtures.json' %s %s %s %ld "
                         "'%s' '%s'",
                         getenv("VZ_SOURCE_DIR"), resource, type, id, created, patch, path);
    char *out = s_node("stripe_webhook.mjs", args);
    assert_non_null(out);
    free(out);
    free(args);
    char *body = s_slurp(path, NULL);
    assert_non_null(body);
    args = vzt_fmt("sign %s %ld '%s'", SECRET, (long)time(NULL), path);
    char *header = s_node("stripe_webhook.mjs", args);
    assert_non_null(header);
    const char *ctx[] = {"header.stripe-signature", header, "content_type", "application/json",
                         NULL};
    char code[64];
    char *reply = s_call("gateway", "billing", "webhook", body, ctx, code, sizeof code, NULL);
    if (code[0])
        fail_msg("billing.webhook: %s: %s", code, reply);
    free(reply);
    char *key = vzt_fmt("{billing}:applied:%s", id);
    assert_true(vzt_wait_until(s_key_exists, key, WAIT_MS));
    free(key);
    free(header);
    free(args);
    free(body);
    free(path);
}

static void s_seed_billing(void)
{
    long t = (long)time(NULL) - 120;
    char *sub = vzt_fmt("{\"id\":\"sub_rp_1\",\"status\":\"active\",\"currency\":\"usd\","
                        "\"items\":{\"data\":[{\"quantity\":2,\"price\":{\"unit_amount\":2500,"
                        "\"currency\":\"usd\",\"recurring\":{\"interval\":\"month\","
                        "\"interval_count\":1}}}]}}");
    s_stripe_event("subscription", "customer.subscription.created", "evt_rp_1", t, sub);
    char *paid = vzt_fmt("{\"id\":\"in_rp_1\",\"status\":\"paid\",\"currency\":\"usd\","
                         "\"amount_paid\":5000,\"subscription\":\"sub_rp_1\","
                         "\"status_transitions\":{\"paid_at\":%ld}}",
                         t);
    s_stripe_event("invoice", "invoice.paid", "evt_rp_2", t + 1, paid);
    free(sub);
    free(paid);
}

//  Snapshots from "gateway": users u1..u7, and 9 internal errors, 4 timeouts.
static void s_seed_telemetry(void)
{
    char *snap = vzt_fmt(
        "{\"v\":1,\"service\":\"gateway\",\"replica\":0,\"pid\":1,\"t\":%lld,\"interval_ms\":10000,"
        "\"seq\":1,\"lost\":0,\"dropped\":0,\"sat\":{\"cpu\":0.1,\"rss\":1000,\"fds\":10},"
        "\"series\":[{\"name\":\"echo\",\"count\":40,\"sum_us\":40000,\"codes\":{\"ok\":27,"
        "\"internal\":9,\"timeout\":4},\"bins\":[[300,40]]}],"
        "\"users\":[\"u1\",\"u2\",\"u3\",\"u4\",\"u5\",\"u6\",\"u7\"],\"users_over\":0}",
        (long long)time(NULL) * 1000);
    char code[64];
    char *reply = s_call("gateway", "telemetry", "ingest", snap, NULL, code, sizeof code, NULL);
    if (code[0])
        fail_msg("telemetry.ingest: %s: %s", code, reply);
    free(reply);
    free(snap);
}

// --------------------------------------------------------------------------
//  An in-test github (issue 18's contract: roadmap, issue_state), in a thread

static const char s_roadmap[] =
    "{\"weeks\":12,\"completed\":[{\"repo\":\"acme/api\",\"number\":7,\"kind\":\"pull\","
    "\"title\":\"Faster <checkout>\",\"state\":\"closed\",\"url\":\"https://github.com/acme/"
    "api/pull/7\",\"milestone\":\"Q4\",\"updated_at\":1796000000}],\"in_progress\":[{\"repo\":"
    "\"acme/api\",\"number\":9,\"kind\":\"issue\",\"title\":\"Usage by country\",\"state\":"
    "\"open\",\"url\":\"https://github.com/acme/api/issues/9\",\"milestone\":\"Q4\","
    "\"updated_at\":1796000100}],\"blocked\":[],\"velocity\":[{\"week\":\"2026-W49\","
    "\"issues_closed\":3,\"pulls_merged\":5},{\"week\":\"2026-W48\",\"issues_closed\":4,"
    "\"pulls_merged\":2}]}";
static const char s_issue[] =
    "{\"repo\":\"acme/api\",\"number\":12,\"kind\":\"issue\",\"state\":\"closed\","
    "\"state_reason\":\"completed\",\"merged\":false,\"title\":\"Internal errors\",\"url\":"
    "\"https://github.com/acme/api/issues/12\",\"updated_at\":1796000200}";

typedef struct {
    pthread_t thread;
    volatile int stop;
    pthread_mutex_t lock;
    char roadmap_req[256]; //  the last roadmap request body
    char issue_req[256];   //  the last issue_state request body
} github_t;

static github_t s_github = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void s_gh_keep(char *slot, const vz_envelope_t *req)
{
    pthread_mutex_lock(&s_github.lock);
    snprintf(slot, 256, "%.*s", (int)req->body_len, (const char *)req->body);
    pthread_mutex_unlock(&s_github.lock);
}

static int s_gh_roadmap(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    s_gh_keep(s_github.roadmap_req, req);
    return vz_reply_body(reply, s_roadmap, strlen(s_roadmap));
}

static int s_gh_issue(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    s_gh_keep(s_github.issue_req, req);
    return vz_reply_body(reply, s_issue, strlen(s_issue));
}

static int s_gh_tick(zloop_t *loop, int timer_id, void *arg)
{
    return s_github.stop ? -1 : 0;
}

static void *s_gh_thread(void *arg)
{
    char *certpath = vzt_mesh_path(s_mesh->m, "keys/secret/github.key");
    char *keypath = vzt_mesh_path(s_mesh->m, "keys/public/broker.key");
    char err[256], key[41];
    zcert_t *cert = vz_curve_cert_load(certpath, err, sizeof err);
    assert_non_null(cert);
    assert_int_equal(vz_curve_server_key(keypath, key), 0);
    static const vz_method_t methods[] = {{"roadmap", s_gh_roadmap, VZ_METHOD_IDEMPOTENT, 0},
                                          {"issue_state", s_gh_issue, VZ_METHOD_IDEMPOTENT, 0}};
    vz_worker_config_t wc = {.service = "github",
                             .endpoints = vzt_mesh_endpoint(s_mesh->m),
                             .broker_key = key,
                             .cert = cert,
                             .credit = 8};
    vz_worker_t *worker = vz_worker_new(&wc, methods, 2, NULL);
    assert_non_null(worker);
    zloop_t *loop = zloop_new();
    vz_worker_attach(worker, loop);
    zloop_timer(loop, 20, 0, s_gh_tick, NULL);
    zloop_start(loop);
    zloop_destroy(&loop);
    vz_worker_destroy(&worker);
    zcert_destroy(&cert);
    free(certpath);
    free(keypath);
    return NULL;
}

static bool s_event_counted(void *arg)
{
    char code[64];
    char *usage = s_call("tester", "telemetry", "usage", NULL, NULL, code, sizeof code, NULL);
    bool seen = !code[0] && strstr(usage, "\"subscription.created\":1");
    free(usage);
    return seen;
}

// --------------------------------------------------------------------------
//  Mesh

static int s_setup(void **state)
{
    const char *src = getenv("VZ_SOURCE_DIR");
    assert_non_null(src);
    char *probe = vzt_fmt("%s/tests/peers/node_modules/smtp-server/package.json", src);
    if (access(probe, R_OK) != 0)
        fail_msg("the npm peers are missing: npm ci in tests/peers");
    free(probe);
    mesh_t *mesh = calloc(1, sizeof *mesh);
    s_mesh = mesh;
    *state = mesh;
    int64_t now = (int64_t)time(NULL);
    int64_t days = now / DAY;
    mesh->week = (days - (days + 3) % 7) * DAY;
    mesh->monday = mesh->week + 7 * DAY + 8 * 3600;
    s_week_name(mesh->week, mesh->week_id, sizeof mesh->week_id);
    int smtp_port = vzt_free_port();
    char *port = vzt_fmt("%d", smtp_port);
    char *smtp_url = vzt_fmt("notifier:VZ_NOTIFIER_SMTP_URL=smtp://127.0.0.1:%d", smtp_port);
    char *slo = vzt_fmt("telemetry:VZ_TELEMETRY_SLO=%s/configs/slo.cfg", src);
    char *const env[] = {
        "VZ_LOG_LEVEL=debug",
        "billing:VZ_BILLING_WEBHOOK_SECRETS=" SECRET,
        "billing:VZ_BILLING_READERS=reporter tester",
        "billing:VZ_BILLING_RECONCILE_MS=0",
        "billing:VZ_TELEMETRY_INTERVAL_MS=200", //  its business events reach the sink soon
        "telemetry:VZ_TELEMETRY_READERS=reporter tester",
        slo,
        "notifier:VZ_NOTIFIER_TEMPLATES={dir}/templates",
        "notifier:VZ_NOTIFIER_STATE_DIR={dir}/state",
        smtp_url,
        "notifier:VZ_NOTIFIER_SMTP_CA_FILE={dir}/smtp.crt",
        "notifier:VZ_NOTIFIER_SMTP_USER=" SMTP_USER,
        "notifier:VZ_NOTIFIER_SMTP_PASSWORD=" SMTP_PASS,
        "notifier:VZ_NOTIFIER_BACKOFF_MS=200",
        "notifier:VZ_NOTIFIER_SMTP_TIMEOUT_MS=15000",
        "reporter:VZ_CLOCK_TEST=1",
        "reporter:VZ_REPORTER_RECIPIENTS=" RCPT,
        "reporter:VZ_REPORTER_READERS=tester",
        "reporter:VZ_REPORTER_TICK_MS=100",
        "reporter:VZ_REPORTER_GATHER_MS=3000",
        "reporter:VZ_REPORTER_LEASE_MS=60000",
        "reporter:VZ_REPORTER_ERROR_ISSUES=internal=acme/api#12",
        NULL};
    //  Keys and the SMTP server's certificate before anything starts.
    char *dir = vzt_tempdir("reporter-pre");
    char *cmd = vzt_fmt("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
                        "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout %s/smtp.key "
                        "-out %s/smtp.crt 2>/dev/null",
                        dir, dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    char *crt_path = vzt_fmt("%s/smtp.crt", dir), *key_path = vzt_fmt("%s/smtp.key", dir);
    char *crt = s_slurp(crt_path, NULL), *key = s_slurp(key_path, NULL);
    assert_true(crt && key);
    free(crt_path), free(key_path);
    vzt_rmrf(dir);
    free(dir);
    char *tpl_dir = vzt_fmt("%s/configs/templates", src);
    const char *files[] = {"smtp.crt", crt, "smtp.key", key, NULL};
    mesh->m = vzt_mesh_start(&(vzt_mesh_opts_t){.tag = "reporter",
                                                .daemons = "",
                                                .identities = "tester,gateway,reporter,billing,"
                                                              "telemetry,notifier,github",
                                                .files = files,
                                                .env = env});
    assert_non_null(mesh->m);
    mesh->dir = vzt_mesh_dir(mesh->m);
    //  The shipped templates, where the notifier is told to look.
    cmd =
        vzt_fmt("cp -r '%s' '%s/templates' && mkdir -p '%s/state'", tpl_dir, mesh->dir, mesh->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(tpl_dir);
    //  The SMTP server, then the services.
    snprintf(mesh->sink_dir, sizeof mesh->sink_dir, "%s/sink", mesh->dir);
    assert_int_equal(mkdir(mesh->sink_dir, 0755), 0);
    char *script = vzt_fmt("%s/tests/peers/smtp_sink.mjs", src);
    char *cert = vzt_fmt("%s/smtp.crt", mesh->dir), *skey = vzt_fmt("%s/smtp.key", mesh->dir);
    char *argv[] = {"/usr/bin/node",
                    script,
                    "--port",
                    port,
                    "--out",
                    mesh->sink_dir,
                    "--cert",
                    cert,
                    "--key",
                    skey,
                    "--auth",
                    SMTP_USER ":" SMTP_PASS,
                    NULL};
    char *log = vzt_fmt("%s/sink.log", mesh->dir);
    mesh->sink = vzt_spawn(argv[0], argv, NULL, log, WAIT_MS);
    assert_non_null(mesh->sink);
    free(script), free(cert), free(skey), free(log), free(port), free(smtp_url), free(slo),
        free(crt), free(key);
    assert_non_null(vzt_mesh_add(mesh->m, "billing", "billing", NULL, true));
    assert_non_null(vzt_mesh_add(mesh->m, "telemetry", "telemetry", NULL, true));
    assert_non_null(vzt_mesh_add(mesh->m, "notifier", "notifier", NULL, true));
    mesh->redis = redisConnect("127.0.0.1", vzt_mesh_redis_port(mesh->m));
    assert_true(mesh->redis && !mesh->redis->err);
    //  Absolute: the Chromium peer runs in tests/peers.
    const char *out = getenv("VZ_TEST_OUTPUT_DIR");
    char cwd[400];
    assert_non_null(getcwd(cwd, sizeof cwd));
    if (out && out[0] == '/')
        snprintf(mesh->out_dir, sizeof mesh->out_dir, "%s", out);
    else
        snprintf(mesh->out_dir, sizeof mesh->out_dir, "%s/%s", cwd,
                 out ? out : "test-output/reporter");
    cmd = vzt_fmt("mkdir -p '%s'", mesh->out_dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    s_seed_billing();
    s_seed_telemetry();
    //  Billing reports the subscription as a business event to the sink:
    //  the figures are settled once it is there.
    assert_true(vzt_wait_until(s_event_counted, NULL, WAIT_MS));
    assert_int_equal(pthread_create(&s_github.thread, NULL, s_gh_thread, NULL), 0);
    return 0;
}

static int s_teardown(void **state)
{
    mesh_t *mesh = *state;
    s_github.stop = 1;
    pthread_join(s_github.thread, NULL);
    if (mesh->redis)
        redisFree(mesh->redis);
    vzt_proc_destroy(&mesh->sink);
    int rc = vzt_mesh_destroy(&mesh->m);
    free(mesh);
    return rc;
}

// --------------------------------------------------------------------------
//  The schedule

static void test_sunday_does_not_trigger(void **state)
{
    mesh_t *mesh = *state;
    //  Sunday 23:59:58 of W: the clock crosses midnight, 08:00 is far.
    s_reporter("sun", mesh->monday - 8 * 3600 - 2);
    assert_true(vzt_wait_until(s_key_exists, "{rp}:since", WAIT_MS));
    s_wait_checks("sun", 30); //  three seconds of reporter time at 100 ms
    assert_int_equal(s_redis_int("EXISTS {rp}:sent:%s", mesh->week_id), 0);
    assert_int_equal(s_redis_int("EXISTS {rp}:lease%s", ""), 0);
    assert_int_equal(s_metric("sun", "vz_reporter_runs_total{outcome=\"sent\"}"), 0);
    assert_int_equal(s_mails(), 0);
    assert_int_equal(vzt_mesh_stop(mesh->m, "sun"), 0);
}

static void test_two_replicas_one_mail(void **state)
{
    mesh_t *mesh = *state;
    s_reporter("r1", mesh->monday - 3);
    s_reporter("r2", mesh->monday - 3);
    int one = 1;
    assert_true(vzt_wait_until(s_mails_reach, &one, WAIT_MS));
    char *key = vzt_fmt("{rp}:sent:%s", mesh->week_id);
    assert_true(vzt_wait_until(s_key_exists, key, WAIT_MS));
    free(key);
    //  Both keep checking; neither sends again.
    s_wait_checks("r1", 20);
    s_wait_checks("r2", 20);
    assert_int_equal(s_mails(), 1);
    double sent = s_metric("r1", "vz_reporter_runs_total{outcome=\"sent\"}") +
                  s_metric("r2", "vz_reporter_runs_total{outcome=\"sent\"}");
    assert_true(sent == 1);
    char *record = s_redis_str("GET {rp}:sent:%s", mesh->week_id);
    assert_non_null(record);
    assert_non_null(strstr(record, "\"trigger\":\"schedule\""));
    free(record);
    //  The message: the week in the subject, HTML and text, four charts
    //  inline, the PDF attached.
    char *mail = s_mail(1);
    assert_non_null(strstr(mail, mesh->week_id));
    assert_non_null(strstr(mail, "image/png"));
    assert_non_null(strstr(mail, "application/pdf"));
    assert_non_null(strstr(mail, "cid:mrr-"));
    assert_non_null(strstr(mail, "Weekly executive report"));
    free(mail);
    assert_int_equal(vzt_mesh_stop(mesh->m, "r1"), 0);
    assert_int_equal(vzt_mesh_stop(mesh->m, "r2"), 0);
}

static void test_restart_does_not_resend(void **state)
{
    mesh_t *mesh = *state;
    s_reporter("r3", mesh->monday + 1800);
    s_wait_checks("r3", 20);
    assert_int_equal(s_metric("r3", "vz_reporter_runs_total{outcome=\"sent\"}"), 0);
    assert_int_equal(s_metric("r3", "vz_reporter_overdue_seconds"), 0);
    assert_int_equal(s_mails(), 1);
    assert_int_equal(vzt_mesh_stop(mesh->m, "r3"), 0);
}

static void test_missed_monday_caught_up_once(void **state)
{
    mesh_t *mesh = *state;
    //  Nobody ran at the next Monday 08:00; one replica is back at 10:00.
    int64_t next = mesh->monday + 7 * DAY;
    char next_week[32];
    s_week_name(mesh->week + 7 * DAY, next_week, sizeof next_week);
    s_reporter("late", next + 2 * 3600);
    int two = 2;
    assert_true(vzt_wait_until(s_mails_reach, &two, WAIT_MS));
    char *key = vzt_fmt("{rp}:sent:%s", next_week);
    assert_true(vzt_wait_until(s_key_exists, key, WAIT_MS));
    char *record = s_redis_str("GET %s", key);
    assert_non_null(strstr(record, "\"trigger\":\"catchup\""));
    free(record);
    free(key);
    assert_int_equal(vzt_mesh_stop(mesh->m, "late"), 0);
    //  Again later that day: caught up already.
    s_reporter("later", next + 5 * 3600);
    s_wait_checks("later", 20);
    assert_int_equal(s_metric("later", "vz_reporter_runs_total{outcome=\"sent\"}"), 0);
    assert_int_equal(s_mails(), 2);
    char *mail = s_mail(2);
    assert_non_null(strstr(mail, next_week));
    free(mail);
    assert_int_equal(vzt_mesh_stop(mesh->m, "later"), 0);
}

// --------------------------------------------------------------------------
//  The numbers

//  The value as canonical JSON (heap), for comparing two documents.
static char *s_canon(const vz_json_value_t *v)
{
    vz_json_writer_t *w = vz_json_writer_new(4 * 1024 * 1024);
    vz_json_write_value(w, v);
    char *text = vz_json_writer_take(w, NULL);
    vz_json_writer_destroy(&w);
    assert_non_null(text);
    return text;
}

//  The service's answer to body equals the value at section.key of the report.
static void s_same(const vz_json_value_t *report, const char *section, const char *key,
                   const char *service, const char *method, const char *body)
{
    char *answer = s_ok("tester", service, method, body, NULL);
    vz_json_t *doc = vz_json_parse(answer, strlen(answer), NULL, NULL);
    assert_non_null(doc);
    const vz_json_value_t *mine =
        vz_json_get(vz_json_get(vz_json_get(report, "sections"), section), key);
    assert_non_null(mine);
    char *a = s_canon(vz_json_root(doc)), *b = s_canon(mine);
    if (strcmp(a, b) != 0)
        fail_msg("%s.%s %s:\n  service: %s\n  report:  %s", service, method, body, a, b);
    free(a), free(b), free(answer);
    vz_json_destroy(&doc);
}

static void test_numbers_equal_the_apis(void **state)
{
    mesh_t *mesh = *state;
    s_reporter("read", mesh->monday + 3600);
    char *body = vzt_fmt("{\"week\":\"%s.json\"}", mesh->week_id);
    char *json = s_ok("tester", "reporter", "get", body, NULL);
    free(body);
    vz_json_t *doc = vz_json_parse(json, strlen(json), NULL, NULL);
    assert_non_null(doc);
    const vz_json_value_t *r = vz_json_root(doc);
    assert_string_equal(vz_json_get_string(r, "week", NULL), mesh->week_id);
    char monday[16], sunday[16];
    time_t t = (time_t)mesh->week;
    strftime(monday, sizeof monday, "%Y-%m-%d", gmtime(&t));
    t = (time_t)(mesh->week + 6 * DAY);
    strftime(sunday, sizeof sunday, "%Y-%m-%d", gmtime(&t));
    char *b = vzt_fmt("{\"period\":\"week\",\"at\":\"%s\"}", monday);
    s_same(r, "revenue", "week", "billing", "revenue", b);
    free(b);
    b = vzt_fmt("{\"period\":\"month\",\"at\":\"%s\"}", sunday);
    s_same(r, "revenue", "month", "billing", "revenue", b);
    free(b);
    b = vzt_fmt("{\"period\":\"year\",\"at\":\"%s\"}", sunday);
    s_same(r, "revenue", "year", "billing", "revenue", b);
    free(b);
    b = vzt_fmt("{\"at\":%lld}", (long long)(mesh->week + 7 * DAY - 1));
    s_same(r, "usage", "current", "telemetry", "usage", b);
    s_same(r, "errors", "top", "telemetry", "errors_top", b);
    free(b);
    b = vzt_fmt("{\"service\":\"gateway\",\"window_s\":604800,\"at\":%lld}",
                (long long)(mesh->week + 7 * DAY - 1));
    s_same(r, "usage", "endpoints", "telemetry", "signals", b);
    free(b);
    //  Only readers ask so: another service is refused by billing, telemetry
    //  refuses an "at" that is not a time, the reporter a caller not its reader.
    char code[64];
    char *no = s_call("notifier", "billing", "revenue", "{\"period\":\"week\"}", NULL, code,
                      sizeof code, NULL);
    assert_string_equal(code, "access_denied");
    free(no);
    no = s_call("tester", "telemetry", "usage", "{\"at\":\"monday\"}", NULL, code, sizeof code,
                NULL);
    assert_string_equal(code, "invalid_request");
    free(no);
    no = s_call("notifier", "reporter", "list", NULL, NULL, code, sizeof code, NULL);
    assert_string_equal(code, "forbidden");
    free(no);
    //  The seeded figures are there: 50.00 USD MRR, 7 users, 9 internal errors.
    const vz_json_value_t *week =
        vz_json_get(vz_json_get(vz_json_get(r, "sections"), "revenue"), "week");
    int64_t mrr = 0;
    assert_int_equal(
        vz_json_int(vz_json_get(vz_json_get(vz_json_get(week, "currencies"), "usd"), "mrr"), &mrr),
        0);
    assert_int_equal(mrr, 5000);
    //  Twelve weeks of MRR, oldest first, the last one this week's.
    const vz_json_value_t *trend =
        vz_json_get(vz_json_get(vz_json_get(r, "sections"), "revenue"), "mrr_trend");
    assert_int_equal(vz_json_size(trend), 12);
    int64_t last_start = 0;
    assert_int_equal(vz_json_int(vz_json_get(vz_json_at(trend, 11), "start"), &last_start), 0);
    assert_int_equal(last_start, mesh->week);
    int64_t wau = 0;
    assert_int_equal(
        vz_json_int(
            vz_json_get(vz_json_get(vz_json_get(vz_json_get(r, "sections"), "usage"), "current"),
                        "wau"),
            &wau),
        0);
    assert_int_equal(wau, 7);
    //  github's answers, as its contract gives them, and what the reporter asked.
    const vz_json_value_t *road = vz_json_get(vz_json_get(r, "sections"), "roadmap");
    assert_string_equal(vz_json_get_string(road, "status", NULL), "ok");
    vz_json_t *gh = vz_json_parse(s_roadmap, strlen(s_roadmap), NULL, NULL);
    char *a = s_canon(vz_json_root(gh)), *c = s_canon(vz_json_get(road, "roadmap"));
    assert_string_equal(a, c);
    free(a), free(c);
    vz_json_destroy(&gh);
    //  The requests github saw, read with its contract's decoders.
    pthread_mutex_lock(&s_github.lock);
    vz_gh_roadmap_req_t roadmap_req;
    vz_gh_issue_state_req_t issue_req;
    const char *why = NULL;
    assert_int_equal(vz_gh_roadmap_req_decode(s_github.roadmap_req, strlen(s_github.roadmap_req),
                                              &roadmap_req, &why),
                     0);
    assert_int_equal(vz_gh_issue_state_req_decode(s_github.issue_req, strlen(s_github.issue_req),
                                                  &issue_req, &why),
                     0);
    pthread_mutex_unlock(&s_github.lock);
    assert_int_equal(roadmap_req.weeks, 12);
    assert_string_equal(roadmap_req.repo, "");
    assert_string_equal(issue_req.owner, "acme");
    assert_string_equal(issue_req.repo, "api");
    assert_int_equal(issue_req.number, 12);
    //  The HTML shows the same figures.
    body = vzt_fmt("{\"week\":\"%s\"}", mesh->week_id);
    char *html = s_ok("tester", "reporter", "get", body, NULL);
    free(body);
    assert_non_null(strstr(html, "50.00 USD"));
    assert_non_null(strstr(html, ">7</td>"));
    const vz_json_value_t *top = vz_json_get(
        vz_json_get(vz_json_get(vz_json_get(r, "sections"), "errors"), "top"), "errors");
    if (vz_json_size(top) > 0) { //  telemetry's week (Unix time / 7 days) may have turned
        assert_non_null(strstr(html, "internal"));
        assert_non_null(strstr(html, "acme/api#12 closed (completed)"));
    }
    assert_non_null(strstr(html, "Faster &lt;checkout&gt;"));
    assert_non_null(strstr(html, "Completed: 1"));
    assert_non_null(strstr(html, "subscription.created</td>"));
    assert_non_null(strstr(html, "2026-W48</td>"));
    free(html);
    free(json);
    vz_json_destroy(&doc);
}

static void test_html_in_chromium_and_pdf_pages(void **state)
{
    mesh_t *mesh = *state;
    if (access("/usr/bin/chromium", X_OK) != 0)
        fail_msg("chromium is missing (.ci/install-deps --test)");
    char *body = vzt_fmt("{\"week\":\"%s\"}", mesh->week_id);
    size_t len = 0;
    char *html = s_ok("tester", "reporter", "get", body, &len);
    free(body);
    char *html_path = vzt_fmt("%s/report-%s.html", mesh->out_dir, mesh->week_id);
    FILE *f = fopen(html_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(html, 1, len, f), len);
    fclose(f);
    free(html);
    char *shot = vzt_fmt("%s/report-%s.png", mesh->out_dir, mesh->week_id);
    char *args = vzt_fmt("'%s' '%s'", html_path, shot);
    char *verdict = s_node("report_page.mjs", args);
    free(args);
    assert_non_null(verdict);
    vz_json_t *doc = vz_json_parse(verdict, strlen(verdict), NULL, NULL);
    assert_non_null(doc);
    const vz_json_value_t *v = vz_json_root(doc);
    int64_t images = 0;
    assert_int_equal(vz_json_int(vz_json_get(v, "images"), &images), 0);
    //  MRR, users, top errors (when telemetry's week has them), error rate, velocity.
    char *numbers = s_redis_str("HGET {rp}:report:%s json", mesh->week_id);
    assert_non_null(numbers);
    assert_int_equal(images, strstr(numbers, "\"errors\":[]") ? 4 : 5);
    free(numbers);
    if (vz_json_size(vz_json_get(v, "broken")) || vz_json_size(vz_json_get(v, "console")) ||
        vz_json_size(vz_json_get(v, "errors")))
        fail_msg("the page is not clean: %s", verdict);
    struct stat st;
    assert_int_equal(stat(shot, &st), 0);
    assert_true(st.st_size > 1000);
    vz_json_destroy(&doc);
    free(verdict);
    //  The PDF: the pages the send record states.
    body = vzt_fmt("{\"week\":\"%s.pdf\"}", mesh->week_id);
    char *pdf = s_ok("tester", "reporter", "get", body, &len);
    free(body);
    assert_memory_equal(pdf, "%PDF-", 5);
    char *pdf_path = vzt_fmt("%s/report-%s.pdf", mesh->out_dir, mesh->week_id);
    f = fopen(pdf_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(pdf, 1, len, f), len);
    fclose(f);
    free(pdf);
    char *cmd = vzt_fmt("rm -f '%s'/page-*.png && pdftoppm -r 50 -png '%s' '%s/page' && ls '%s' "
                        "| grep -c '^page-.*png$'",
                        mesh->out_dir, pdf_path, mesh->out_dir, mesh->out_dir);
    FILE *p = popen(cmd, "r");
    free(cmd);
    char line[32] = "";
    assert_non_null(fgets(line, sizeof line, p));
    assert_int_equal(pclose(p), 0);
    char *record = s_redis_str("GET {rp}:sent:%s", mesh->week_id);
    char *want = vzt_fmt("\"pdf_pages\":%d", atoi(line));
    if (!strstr(record, want))
        fail_msg("pdftoppm made %d pages; the record says %s", atoi(line), record);
    assert_true(atoi(line) >= 2);
    free(want), free(record), free(pdf_path), free(html_path), free(shot);
    assert_int_equal(vzt_mesh_stop(mesh->m, "read"), 0);
}

static void test_billing_away(void **state)
{
    mesh_t *mesh = *state;
    s_reporter("nobill", mesh->monday + 3600);
    assert_int_equal(vzt_mesh_stop(mesh->m, "billing"), 0);
    char prev[32];
    s_week_name(mesh->week - 7 * DAY, prev, sizeof prev);
    char *body = vzt_fmt("{\"week\":\"%s\"}", prev);
    char *reply = s_ok("tester", "reporter", "run", body, NULL);
    free(body);
    assert_non_null(strstr(reply, "\"outcome\":\"sent\""));
    assert_non_null(strstr(reply, "\"partial\":[\"revenue\""));
    free(reply);
    int three = 3;
    assert_true(vzt_wait_until(s_mails_reach, &three, WAIT_MS));
    char *mail = s_mail(3);
    assert_non_null(strstr(mail, prev));
    assert_non_null(strstr(mail, "Unavailable: billing.revenue: "));
    free(mail);
    //  Counted by the replica that ran it (an earlier test's may still be up).
    assert_true(s_metric("nobill", "vz_reporter_sections_partial_total{section=\"revenue\"}") +
                    s_metric("read", "vz_reporter_sections_partial_total{section=\"revenue\"}") >=
                1);
    //  Asked again without force: the week was sent.
    body = vzt_fmt("{\"week\":\"%s\"}", prev);
    char code[64];
    reply = s_call("tester", "reporter", "run", body, NULL, code, sizeof code, NULL);
    assert_string_equal(code, "conflict");
    free(reply);
    free(body);
    assert_int_equal(vzt_mesh_restart(mesh->m, "billing"), 0);
    assert_int_equal(vzt_mesh_stop(mesh->m, "nobill"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sunday_does_not_trigger),
        cmocka_unit_test(test_two_replicas_one_mail),
        cmocka_unit_test(test_restart_does_not_resend),
        cmocka_unit_test(test_missed_monday_caught_up_once),
        cmocka_unit_test(test_numbers_equal_the_apis),
        cmocka_unit_test(test_html_in_chromium_and_pdf_pages),
        cmocka_unit_test(test_billing_away),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
