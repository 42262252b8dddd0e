/*  test_notifier - the notifier against real peers: smtp-server + mailparser, HTTP fakes, Redis
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh per run: redis-server, vz-broker, vz-notifier (restarted with
 *  other settings between phases), the npm smtp-server of
 *  tests/peers/smtp_sink.mjs (STARTTLS with a certificate made here, AUTH)
 *  whose mailparser output is compared with what was sent, and four
 *  scripted HTTP servers (fake_http.h) standing in for Slack, Discord,
 *  PagerDuty and the webhook receiver, each answering 429 with Retry-After
 *  before it accepts. Calls come as "gateway" (with an admin auth context)
 *  and as "billing" (a service: its auth context is ignored).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fake_http.h"
#include "harness.h"
#include "vz_client.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_json.h"
#include "vz_notifier_contract.h"

#define READY_MS 20000
#define CALL_MS 10000
#define WAIT_MS 20000
#define SMTP_USER "mailer"
#define SMTP_PASS "s3cret-Pa55"
#define PD_KEY "R0UT1NG-KEY-TEST"
#define HOOK_SECRET "hook-secret"

enum { F_SLACK, F_DISCORD, F_PD, F_HOOK, F_COUNT };

typedef struct {
    char *dir;                  //  temp dir: keys, policy, logs, certificates, sinks
    vzt_proc_t *redis;          //  redis-server
    vzt_proc_t *broker;         //  vz-broker
    vzt_proc_t *notifier;       //  vz-notifier (current phase)
    vzt_proc_t *sink;           //  smtp_sink.mjs (current phase)
    int redis_port;             //  Redis port
    int broker_port;            //  broker port
    int smtp_port;              //  the sink's port
    int admin_port;             //  the notifier's admin HTTP port (metrics)
    int phase;                  //  restarts so far, for log names
    char sink_dir[600];         //  where the current sink writes
    char broker_key[41];        //  broker public key
    zcert_t *gw_cert;           //  identity "gateway"
    zcert_t *billing_cert;      //  identity "billing"
    vz_client_t *gw;            //  client as the gateway
    vz_client_t *billing;       //  client as a service
    fake_http_t *http[F_COUNT]; //  Slack, Discord, PagerDuty, webhook
} mesh_t;

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return data;
}

// --------------------------------------------------------------------------
//  Processes

//  The SMTP sink on smtp_port with extra arguments (NULL-terminated).
static void s_sink_stop(mesh_t *mesh);

static void s_sink_start(mesh_t *mesh, const char *tag, const char *const *extra)
{
    s_sink_stop(mesh); //  a failed test may have left one running
    snprintf(mesh->sink_dir, sizeof mesh->sink_dir, "%s/sink-%s", mesh->dir, tag);
    assert_int_equal(mkdir(mesh->sink_dir, 0755), 0);
    char *script = vzt_fmt("%s/tests/peers/smtp_sink.mjs", getenv("VZ_SOURCE_DIR"));
    char *port = vzt_fmt("%d", mesh->smtp_port);
    char *cert = vzt_fmt("%s/smtp.crt", mesh->dir), *key = vzt_fmt("%s/smtp.key", mesh->dir);
    char *argv[24] = {"/usr/bin/node", script, "--port", port, "--out",  mesh->sink_dir,
                      "--cert",        cert,   "--key",  key,  "--auth", SMTP_USER ":" SMTP_PASS};
    size_t n = 12;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    char *log = vzt_fmt("%s/sink-%s.log", mesh->dir, tag);
    mesh->sink = vzt_spawn(argv[0], argv, NULL, log, READY_MS);
    assert_non_null(mesh->sink);
    free(script), free(port), free(cert), free(key), free(log);
}

static void s_sink_stop(mesh_t *mesh)
{
    vzt_proc_destroy(&mesh->sink);
}

//  vz-notifier with the test's settings plus more (NULL-terminated).
static void s_notifier_start(mesh_t *mesh, const char *const *more)
{
    vzt_proc_destroy(&mesh->notifier); //  a failed test may have left one running
    char *env[26] = {0};
    size_t n = 0;
    env[n++] = vzt_fmt("VZ_NOTIFIER_TEMPLATES=%s/configs/templates", getenv("VZ_SOURCE_DIR"));
    env[n++] = vzt_fmt("VZ_NOTIFIER_STATE_DIR=%s/state", mesh->dir);
    env[n++] = vzt_fmt("VZ_NOTIFIER_SMTP_URL=smtp://127.0.0.1:%d", mesh->smtp_port);
    env[n++] = vzt_fmt("VZ_NOTIFIER_SMTP_CA_FILE=%s/smtp.crt", mesh->dir);
    env[n++] = vzt_fmt("VZ_NOTIFIER_SMTP_USER=" SMTP_USER);
    env[n++] = vzt_fmt("VZ_NOTIFIER_SMTP_PASSWORD=" SMTP_PASS);
    env[n++] = vzt_fmt("VZ_NOTIFIER_SLACK_URL=%s/services/T0/B0/XXXX",
                       fake_http_base(mesh->http[F_SLACK]));
    env[n++] = vzt_fmt("VZ_NOTIFIER_DISCORD_URL=%s/api/webhooks/1/tok",
                       fake_http_base(mesh->http[F_DISCORD]));
    env[n++] = vzt_fmt("VZ_NOTIFIER_PAGERDUTY_URL=%s/v2/enqueue", fake_http_base(mesh->http[F_PD]));
    env[n++] = vzt_fmt("VZ_NOTIFIER_PAGERDUTY_KEY=" PD_KEY);
    env[n++] = vzt_fmt("VZ_NOTIFIER_WEBHOOK_URL=%s/hook", fake_http_base(mesh->http[F_HOOK]));
    env[n++] = vzt_fmt("VZ_NOTIFIER_WEBHOOK_SECRET=" HOOK_SECRET);
    env[n++] = vzt_fmt("VZ_NOTIFIER_ATTACH_MAX=100000");
    env[n++] = vzt_fmt("VZ_NOTIFIER_BACKOFF_MS=200");
    env[n++] = vzt_fmt("VZ_NOTIFIER_BACKOFF_MAX_MS=600");
    env[n++] = vzt_fmt("VZ_NOTIFIER_MAX_ATTEMPTS=30");
    env[n++] = vzt_fmt("VZ_NOTIFIER_CLAIM_MS=1500");
    env[n++] = vzt_fmt("VZ_NOTIFIER_SMTP_TIMEOUT_MS=15000");
    env[n++] = vzt_fmt("VZ_NOTIFIER_WARNING_DELAY_MS=1500");
    env[n++] = vzt_fmt("VZ_LOG_LEVEL=debug");
    //  A setting of more replaces the default of the same name.
    for (size_t i = 0; more && more[i]; i++) {
        size_t name = strcspn(more[i], "=") + 1;
        for (size_t j = 0; j < n; j++)
            if (strncmp(env[j], more[i], name) == 0) {
                free(env[j]);
                env[j] = env[--n];
                break;
            }
        env[n++] = strdup(more[i]);
    }
    env[n] = NULL;
    char log[32];
    snprintf(log, sizeof log, "notifier.%d", mesh->phase++);
    mesh->admin_port = vzt_free_port();
    mesh->notifier = vzt_daemon(mesh->dir, "notifier", log, mesh->broker_port, mesh->redis_port,
                                mesh->admin_port, env, true);
    assert_non_null(mesh->notifier);
    for (size_t i = 0; i < n; i++)
        free(env[i]);
}

static vz_client_t *s_client(mesh_t *mesh, const char *name, zcert_t **cert_p)
{
    char *path = vzt_fmt("%s/keys/secret/%s.key", mesh->dir, name);
    char err[256];
    *cert_p = vz_curve_cert_load(path, err, sizeof err);
    free(path);
    assert_non_null(*cert_p);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", mesh->broker_port);
    vz_client_config_t config = {
        .endpoints = endpoint, .broker_key = mesh->broker_key, .cert = *cert_p};
    vz_client_t *client = vz_client_new(&config);
    assert_non_null(client);
    return client;
}

static int s_setup(void **state)
{
    mesh_t *mesh = calloc(1, sizeof *mesh);
    *state = mesh;
    mesh->dir = vzt_tempdir("notifier");
    char *keys = vzt_fmt("%s/keys", mesh->dir);
    const char *const names[] = {"broker", "notifier", "gateway", "billing", NULL};
    assert_int_equal(vzt_keys(keys, names), 0);
    free(keys);
    char *bkey = vzt_fmt("%s/keys/public/broker.key", mesh->dir);
    assert_int_equal(vz_curve_server_key(bkey, mesh->broker_key), 0);
    free(bkey);
    char *policy = vzt_fmt("%s/policy.cfg", mesh->dir);
    FILE *f = fopen(policy, "w");
    fputs("identity\n    gateway\n        call = \"notifier broker\"\n"
          "    billing\n        call = \"notifier\"\n"
          "    notifier\n        serve = \"notifier\"\n",
          f);
    fclose(f);
    //  The SMTP server's certificate, trusted by the notifier as its CA file.
    char *cmd = vzt_fmt("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
                        "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout %s/smtp.key "
                        "-out %s/smtp.crt 2>/dev/null",
                        mesh->dir, mesh->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    for (int i = 0; i < F_COUNT; i++) {
        mesh->http[i] = fake_http_new(false);
        assert_non_null(mesh->http[i]);
    }
    mesh->redis_port = vzt_free_port();
    mesh->broker_port = vzt_free_port();
    mesh->smtp_port = vzt_free_port();
    mesh->redis = vzt_redis(mesh->dir, mesh->redis_port, READY_MS);
    assert_non_null(mesh->redis);
    char *bind = vzt_fmt("VZ_BROKER_BIND=tcp://127.0.0.1:%d", mesh->broker_port);
    char *pol = vzt_fmt("VZ_BROKER_POLICY=%s", policy);
    char *const benv[] = {bind, pol, NULL};
    mesh->broker = vzt_daemon(mesh->dir, "broker", "broker", mesh->broker_port, mesh->redis_port, 0,
                              benv, true);
    free(bind), free(pol), free(policy);
    assert_non_null(mesh->broker);
    mesh->gw = s_client(mesh, "gateway", &mesh->gw_cert);
    mesh->billing = s_client(mesh, "billing", &mesh->billing_cert);
    return 0;
}

static int s_teardown(void **state)
{
    mesh_t *mesh = *state;
    vz_client_destroy(&mesh->gw);
    vz_client_destroy(&mesh->billing);
    zcert_destroy(&mesh->gw_cert);
    zcert_destroy(&mesh->billing_cert);
    vzt_proc_destroy(&mesh->notifier);
    s_sink_stop(mesh);
    vzt_proc_destroy(&mesh->broker);
    vzt_proc_destroy(&mesh->redis);
    for (int i = 0; i < F_COUNT; i++)
        fake_http_destroy(&mesh->http[i]);
    if (!getenv("VZ_KEEP_TMP"))
        vzt_rmrf(mesh->dir);
    free(mesh->dir);
    free(mesh);
    return 0;
}

// --------------------------------------------------------------------------
//  Calls

typedef struct {
    bool error;        //  error envelope
    char code[48];     //  its error_code
    char message[256]; //  its error_message
    char *body;        //  reply body (heap)
    vz_json_t *json;   //  parsed reply
    char status[8];    //  reply ctx http_status
} res_t;

static void s_res_free(res_t *r)
{
    free(r->body);
    vz_json_destroy(&r->json);
    memset(r, 0, sizeof *r);
}

//  admin: call as the gateway with an admin auth context, else as billing.
static res_t s_call(mesh_t *mesh, bool admin, const char *method, const char *body,
                    const char *id_param)
{
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "notifier", method, NULL), 0);
    req.body = (const uint8_t *)body;
    req.body_len = body ? strlen(body) : 0;
    if (admin) {
        assert_int_equal(vz_envelope_ctx_set(&req, "auth", "jwt"), 0);
        assert_int_equal(vz_envelope_ctx_set(&req, "sub", "u_admin"), 0);
        assert_int_equal(vz_envelope_ctx_set(&req, "scope", "user admin"), 0);
    }
    if (id_param)
        assert_int_equal(vz_envelope_ctx_set(&req, "path.id", id_param), 0);
    vz_response_t *resp = NULL;
    assert_int_equal(vz_client_call(admin ? mesh->gw : mesh->billing, &req, CALL_MS, &resp), 0);
    res_t r = {.error = resp->env.kind == VZ_KIND_ERROR};
    vz_strlcpy(r.code, resp->env.error_code, sizeof r.code);
    vz_strlcpy(r.message, resp->env.error_message, sizeof r.message);
    r.body = calloc(1, resp->env.body_len + 1);
    memcpy(r.body, resp->env.body ? (const void *)resp->env.body : "", resp->env.body_len);
    r.json = r.error ? NULL : vz_json_parse(r.body, resp->env.body_len, NULL, NULL);
    const char *status = vz_envelope_ctx_get(&resp->env, "http_status");
    vz_strlcpy(r.status, status ? status : "", sizeof r.status);
    vz_response_destroy(&resp);
    return r;
}

static void s_expect_error(mesh_t *mesh, const char *body, const char *code, const char *status)
{
    res_t r = s_call(mesh, false, "send", body, NULL);
    if (!r.error || strcmp(r.code, code) != 0)
        fail_msg("expected %s for %s, got %s %s", code, body, r.code, r.error ? r.message : r.body);
    if (status)
        assert_string_equal(r.status, status);
    s_res_free(&r);
}

//  Send as billing; returns the id (heap).
static char *s_send(mesh_t *mesh, const char *body)
{
    res_t r = s_call(mesh, false, "send", body, NULL);
    if (r.error)
        fail_msg("send refused: %s %s", r.code, r.message);
    const char *id = vz_json_get_string(vz_json_root(r.json), "id", NULL);
    assert_non_null(id);
    char *out = strdup(id);
    s_res_free(&r);
    return out;
}

//  Poll notifier.get (as billing, the owner) until status is want; the
//  last reply's fields into *r. False after WAIT_MS.
typedef struct {
    mesh_t *mesh;     //  whose notifier
    const char *body; //  the get request
    const char *want; //  status awaited
    res_t *r;         //  the last answer (kept when it matches)
} status_goal_t;

static bool s_status_is(void *arg)
{
    status_goal_t *goal = arg;
    *goal->r = s_call(goal->mesh, false, "get", goal->body, NULL);
    const char *status =
        goal->r->json ? vz_json_get_string(vz_json_root(goal->r->json), "status", NULL) : NULL;
    if (status && strcmp(status, goal->want) == 0)
        return true;
    s_res_free(goal->r);
    return false;
}

static bool s_wait_status(mesh_t *mesh, const char *id, const char *want, res_t *r)
{
    char body[96];
    snprintf(body, sizeof body, "{\"id\":\"%s\"}", id);
    status_goal_t goal = {mesh, body, want, r};
    if (vzt_wait_until(s_status_is, &goal, WAIT_MS))
        return true;
    *r = s_call(mesh, false, "get", body, NULL);
    fprintf(stderr, "status of %s: %s\n", id, r->body);
    return false;
}

static int64_t s_int(const res_t *r, const char *key)
{
    int64_t v = -1;
    vz_json_int(vz_json_get(vz_json_root(r->json), key), &v);
    return v;
}

//  The message has at least one attempt; its answer is kept in goal->r.
static bool s_attempted(void *arg)
{
    status_goal_t *goal = arg;
    s_res_free(goal->r);
    *goal->r = s_call(goal->mesh, false, "get", goal->body, NULL);
    return s_int(goal->r, "attempts") >= 1;
}

static bool s_file_exists(void *path)
{
    return access(path, F_OK) == 0;
}

//  Wait for a file to appear. False after WAIT_MS.
static bool s_wait_file(const char *path)
{
    return vzt_wait_until(s_file_exists, (void *)path, WAIT_MS);
}

typedef struct {
    const char *path;   //  file to read
    const char *needle; //  text it must hold
} text_goal_t;

static bool s_file_holds(void *arg)
{
    const text_goal_t *goal = arg;
    char *text = s_slurp(goal->path);
    bool found = text && strstr(text, goal->needle);
    free(text);
    return found;
}

//  Wait until the file holds needle. False after WAIT_MS.
static bool s_wait_text(const char *path, const char *needle)
{
    text_goal_t goal = {path, needle};
    return vzt_wait_until(s_file_holds, &goal, WAIT_MS);
}

//  Messages the current sink parsed whose text holds needle; waits up to
//  WAIT_MS for at least one. Other messages may arrive in between (a retry
//  of an earlier phase's message finds this sink too).
typedef struct {
    mesh_t *mesh;       //  whose sink
    const char *needle; //  text a message must hold
    int found;          //  messages that hold it, at the last look
} mail_goal_t;

static bool s_mail_found(void *arg)
{
    mail_goal_t *goal = arg;
    goal->found = 0;
    for (int i = 1; i <= 50; i++) {
        char *path = vzt_fmt("%s/%d.json", goal->mesh->sink_dir, i);
        char *text = s_slurp(path);
        free(path);
        if (!text)
            break;
        goal->found += strstr(text, goal->needle) != NULL;
        free(text);
    }
    return goal->found > 0;
}

static int s_wait_mail_ms(mesh_t *mesh, const char *needle, int timeout_ms)
{
    mail_goal_t goal = {mesh, needle, 0};
    vzt_wait_until(s_mail_found, &goal, timeout_ms);
    return goal.found;
}

static int s_wait_mail(mesh_t *mesh, const char *needle)
{
    return s_wait_mail_ms(mesh, needle, WAIT_MS);
}

//  Lines of the sink's events.log that start with prefix.
static int s_events(mesh_t *mesh, const char *prefix)
{
    char *path = vzt_fmt("%s/events.log", mesh->sink_dir);
    char *text = s_slurp(path);
    free(path);
    int count = 0;
    for (const char *line = text; line && *line; line = strchr(line, '\n') + 1) {
        count += strncmp(line, prefix, strlen(prefix)) == 0;
        if (!strchr(line, '\n'))
            break;
    }
    free(text);
    return count;
}

static char *s_b64(const uint8_t *data, size_t len)
{
    char *out = calloc(1, len / 3 * 4 + 8);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static void s_sha256_hex(const uint8_t *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

// --------------------------------------------------------------------------
//  Phase 1: STARTTLS + AUTH server, HTTP fakes

static void test_refusals(void **state)
{
    mesh_t *mesh = *state;
    s_sink_start(mesh, "tls", NULL);
    s_notifier_start(mesh, NULL);
    s_expect_error(mesh, "not json", "invalid_request", "400");
    s_expect_error(mesh, "{\"channel\":\"fax\",\"template\":\"test\"}", "unknown_channel", "422");
    s_expect_error(mesh, "{\"channel\":\"email\",\"template\":\"nope\",\"to\":\"a@b.c\"}",
                   "unknown_template", "422");
    s_expect_error(mesh,
                   "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"a@b.c\\r\\nBcc: "
                   "x@y.z\",\"data\":{\"message\":\"m\"}}",
                   "invalid_address", "422");
    s_expect_error(mesh,
                   "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"no-at-sign\","
                   "\"data\":{\"message\":\"m\"}}",
                   "invalid_address", NULL);
    s_expect_error(mesh,
                   "{\"channel\":\"email\",\"template\":\"test\",\"to\":[{\"name\":\"Eve\\nBcc: "
                   "x@y.z\",\"address\":\"a@b.c\"}],\"data\":{\"message\":\"m\"}}",
                   "invalid_address", NULL);
    s_expect_error(mesh, "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"a@b.c\"}",
                   "missing_variable", "422");
    s_expect_error(mesh,
                   "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"a@b.c\","
                   "\"data\":{\"message\":\"hi\\r\\nBcc: x@y.z\"}}",
                   "header_injection", "422");
    //  Over VZ_NOTIFIER_ATTACH_MAX (100000 bytes in this test).
    uint8_t *big = calloc(1, 120000);
    char *b64 = s_b64(big, 120000);
    char *body = vzt_fmt("{\"channel\":\"email\",\"template\":\"test\",\"to\":\"a@b.c\","
                         "\"data\":{\"message\":\"m\"},\"attachments\":[{\"name\":\"big.bin\","
                         "\"type\":\"application/octet-stream\",\"content\":\"%s\"}]}",
                         b64);
    s_expect_error(mesh, body, "attachment_too_large", "413");
    free(big), free(b64), free(body);
    s_expect_error(mesh,
                   "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"a@b.c\","
                   "\"data\":{\"message\":\"m\"},\"attachments\":[{\"name\":\"x\",\"type\":"
                   "\"text/plain\",\"content\":\"not base64!\"}]}",
                   "invalid_attachment", "422");
    s_expect_error(mesh,
                   "{\"channel\":\"slack\",\"template\":\"test\",\"severity\":\"loud\","
                   "\"data\":{\"message\":\"m\"}}",
                   "invalid_severity", "422");
    //  Through the gateway without scope admin: refused.
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "notifier", "send", NULL), 0);
    req.body = (const uint8_t *)"{}";
    req.body_len = 2;
    vz_envelope_ctx_set(&req, "auth", "jwt");
    vz_envelope_ctx_set(&req, "sub", "u_1");
    vz_envelope_ctx_set(&req, "scope", "user");
    vz_response_t *resp = NULL;
    assert_int_equal(vz_client_call(mesh->gw, &req, CALL_MS, &resp), 0);
    assert_string_equal(resp->env.error_code, "access_denied");
    vz_response_destroy(&resp);
}

static void test_email_round_trip(void **state)
{
    mesh_t *mesh = *state;
    //  An inline chart (cid:) and a PDF-ish attachment with every byte value.
    uint8_t png[3000], pdf[2000];
    for (size_t i = 0; i < sizeof png; i++)
        png[i] = (uint8_t)(i * 31 + 7);
    for (size_t i = 0; i < sizeof pdf; i++)
        pdf[i] = (uint8_t)i;
    char *png64 = s_b64(png, sizeof png), *pdf64 = s_b64(pdf, sizeof pdf);
    char *body = vzt_fmt(
        "{\"channel\":\"email\",\"template\":\"report\",\"idempotency_key\":\"week-49\","
        "\"to\":[{\"name\":\"Zoë Ünïcode\",\"address\":\"zoe@example.com\"}],"
        "\"data\":{\"week\":\"KW 49 — Übersicht ✓\",\"summary\":\"<b>up</b> & away\","
        "\"chart_cid\":\"chart1@vizmesh\"},"
        "\"attachments\":[{\"name\":\"chart.png\",\"type\":\"image/png\",\"content\":\"%s\","
        "\"content_id\":\"chart1@vizmesh\"},{\"name\":\"Bericht März.pdf\",\"type\":"
        "\"application/pdf\",\"content\":\"%s\"}]}",
        png64, pdf64);
    char *id = s_send(mesh, body);
    //  The same idempotency key again: the same id, nothing new.
    res_t again = s_call(mesh, false, "send", body, NULL);
    assert_false(again.error);
    assert_string_equal(vz_json_get_string(vz_json_root(again.json), "id", NULL), id);
    bool dup = false;
    vz_json_bool(vz_json_get(vz_json_root(again.json), "duplicate"), &dup);
    assert_true(dup);
    s_res_free(&again);
    free(body), free(png64), free(pdf64);

    res_t r;
    assert_true(s_wait_status(mesh, id, "delivered", &r));
    assert_int_equal(s_int(&r, "attempts"), 1);
    s_res_free(&r);
    char *path = vzt_fmt("%s/1.json", mesh->sink_dir);
    assert_true(s_wait_file(path));
    char *json = s_slurp(path);
    vz_json_t *doc = vz_json_parse(json, strlen(json), NULL, NULL);
    assert_non_null(doc);
    const vz_json_value_t *m = vz_json_root(doc);
    assert_string_equal(vz_json_get_string(m, "subject", NULL),
                        "Weekly report for KW 49 — Übersicht ✓");
    assert_string_equal(vz_json_get_string(m, "user", NULL), SMTP_USER);
    bool secure = false;
    vz_json_bool(vz_json_get(m, "secure"), &secure);
    assert_true(secure);
    const vz_json_value_t *to = vz_json_at(vz_json_get(m, "to"), 0);
    assert_string_equal(vz_json_get_string(to, "name", NULL), "Zoë Ünïcode");
    assert_string_equal(vz_json_get_string(to, "address", NULL), "zoe@example.com");
    char *mid = vzt_fmt("<%s@vizmesh.localhost>", id);
    assert_string_equal(vz_json_get_string(m, "messageId", NULL), mid);
    free(mid);
    assert_non_null(strstr(vz_json_get_string(m, "text", NULL), "<b>up</b> & away"));
    assert_non_null(
        strstr(vz_json_get_string(m, "html", NULL), "&lt;b&gt;up&lt;/b&gt; &amp; away"));
    assert_non_null(strstr(vz_json_get_string(m, "html", NULL), "cid:chart1@vizmesh"));
    const vz_json_value_t *atts = vz_json_get(m, "attachments");
    assert_int_equal(vz_json_size(atts), 2);
    char sha_png[65], sha_pdf[65];
    s_sha256_hex(png, sizeof png, sha_png);
    s_sha256_hex(pdf, sizeof pdf, sha_pdf);
    for (size_t i = 0; i < 2; i++) {
        const vz_json_value_t *a = vz_json_at(atts, i);
        const char *name = vz_json_get_string(a, "filename", NULL);
        if (strcmp(name, "chart.png") == 0) {
            assert_string_equal(vz_json_get_string(a, "sha256", NULL), sha_png);
            assert_string_equal(vz_json_get_string(a, "contentId", NULL), "<chart1@vizmesh>");
            bool related = false;
            vz_json_bool(vz_json_get(a, "related"), &related);
            assert_true(related);
        } else {
            assert_string_equal(name, "Bericht März.pdf");
            assert_string_equal(vz_json_get_string(a, "contentType", NULL), "application/pdf");
            assert_string_equal(vz_json_get_string(a, "sha256", NULL), sha_pdf);
        }
    }
    vz_json_destroy(&doc);
    free(json), free(path);
    //  Exactly one message: the repeated key sent nothing.
    char *second = vzt_fmt("%s/2.json", mesh->sink_dir);
    assert_int_equal(access(second, F_OK), -1);
    free(second);
    free(id);
}

//  The reporter's mail as the contract's encoder writes it: named
//  recipients, its own HTML (weekly_report's {{{html}}}) and text, two
//  inline PNGs by cid and a PDF given as raw bytes.
static void test_encoded_report_mail(void **state)
{
    mesh_t *mesh = *state;
    uint8_t mrr[1500], dau[900], pdf[4000];
    for (size_t i = 0; i < sizeof mrr; i++)
        mrr[i] = (uint8_t)(i * 13 + 1);
    for (size_t i = 0; i < sizeof dau; i++)
        dau[i] = (uint8_t)(255 - i);
    for (size_t i = 0; i < sizeof pdf; i++)
        pdf[i] = (uint8_t)(i * 7);
    const char *html = "<!doctype html><html><body><table style=\"border:1px solid #ccc\">"
                       "<tr><td>MRR</td><td>1&nbsp;200 &euro;</td></tr></table>"
                       "<img src=\"cid:mrr@report\" alt=\"MRR\"><img src=\"cid:dau@report\" "
                       "alt=\"DAU\"></body></html>";
    vz_nt_recipient_t to[] = {{.name = "Öps Team", .address = "ops@example.com"},
                              {.address = "cfo@example.com"}};
    vz_nt_var_t data[] = {{.name = "week", .type = VZ_NT_VAR_STR, .s = "2026-W49 ✓"},
                          {.name = "text", .type = VZ_NT_VAR_STR, .s = "MRR 1 200 EUR (text part)"},
                          {.name = "html", .type = VZ_NT_VAR_STR, .s = html}};
    vz_nt_attachment_t att[] = {{.name = "mrr.png",
                                 .type = "image/png",
                                 .content_id = "mrr@report",
                                 .bytes = mrr,
                                 .len = sizeof mrr},
                                {.name = "dau.png",
                                 .type = "image/png",
                                 .content_id = "dau@report",
                                 .bytes = dau,
                                 .len = sizeof dau},
                                {.name = "report-2026-W49.pdf",
                                 .type = "application/pdf",
                                 .bytes = pdf,
                                 .len = sizeof pdf}};
    vz_nt_send_t send = {.channel = "email",
                         .template_name = "weekly_report",
                         .idempotency_key = "report-2026-W49",
                         .recipients = to,
                         .nrecipients = 2,
                         .data = data,
                         .ndata = 3,
                         .attachments = att,
                         .nattachments = 3};
    char *body = vz_nt_send_encode(&send, NULL);
    assert_non_null(body);
    char *id = s_send(mesh, body);
    free(body);
    res_t r;
    assert_true(s_wait_status(mesh, id, "delivered", &r));
    s_res_free(&r);
    assert_int_equal(s_wait_mail(mesh, "MRR 1 200 EUR (text part)"), 1);
    //  The sink numbers messages; this one is the first holding the text.
    vz_json_t *doc = NULL;
    int n = 0;
    for (int i = 1; i <= 50 && !doc; i++) {
        char *path = vzt_fmt("%s/%d.json", mesh->sink_dir, i);
        char *json = s_slurp(path);
        free(path);
        assert_non_null(json);
        if (strstr(json, "(text part)"))
            doc = vz_json_parse(json, strlen(json), NULL, NULL), n = i;
        free(json);
    }
    assert_non_null(doc);
    //  On the wire: CRLF line ends, no line over 78 characters (the HTML is
    //  one long line; quoted-printable folds it, base64 runs 76 wide).
    char *eml_path = vzt_fmt("%s/%d.eml", mesh->sink_dir, n);
    char *eml = s_slurp(eml_path);
    assert_non_null(eml);
    for (char *line = eml, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        if (!end)
            fail_msg("the message does not end in CRLF");
        if (end == line || end[-1] != '\r')
            fail_msg("a bare LF in the message at byte %td", end - eml);
        if (end - line - 1 > 78)
            fail_msg("a line of %td characters: %.40s", end - line - 1, line);
    }
    free(eml), free(eml_path);
    const vz_json_value_t *m = vz_json_root(doc);
    assert_string_equal(vz_json_get_string(m, "subject", NULL),
                        "vizmesh weekly report: 2026-W49 ✓");
    assert_int_equal(vz_json_size(vz_json_get(vz_json_get(m, "envelope"), "to")), 2);
    assert_string_equal(vz_json_get_string(vz_json_at(vz_json_get(m, "to"), 0), "name", NULL),
                        "Öps Team");
    //  The HTML arrives as the reporter wrote it, not escaped.
    assert_non_null(
        strstr(vz_json_get_string(m, "html", NULL), "<td>1&nbsp;200 &euro;</td></tr></table>"));
    assert_non_null(strstr(vz_json_get_string(m, "html", NULL), "src=\"cid:dau@report\""));
    //  The text alternative is the reporter's text (mailparser trims its newline).
    assert_non_null(strstr(vz_json_get_string(m, "text", NULL), "MRR 1 200 EUR (text part)"));
    assert_null(strstr(vz_json_get_string(m, "text", NULL), "<table"));
    const vz_json_value_t *atts = vz_json_get(m, "attachments");
    assert_int_equal(vz_json_size(atts), 3);
    for (size_t i = 0; i < 3; i++) {
        const vz_json_value_t *a = vz_json_at(atts, i);
        const char *name = vz_json_get_string(a, "filename", NULL);
        size_t k = strcmp(name, "mrr.png") == 0 ? 0 : strcmp(name, "dau.png") == 0 ? 1 : 2;
        char sha[65];
        s_sha256_hex(att[k].bytes, att[k].len, sha);
        assert_string_equal(vz_json_get_string(a, "sha256", NULL), sha);
        bool related = false;
        vz_json_bool(vz_json_get(a, "related"), &related);
        assert_int_equal(related, k < 2);
        if (k < 2) {
            char *cid = vzt_fmt("<%s>", att[k].content_id);
            assert_string_equal(vz_json_get_string(a, "contentId", NULL), cid);
            free(cid);
        } else {
            assert_string_equal(name, "report-2026-W49.pdf");
            assert_string_equal(vz_json_get_string(a, "contentType", NULL), "application/pdf");
        }
    }
    vz_json_destroy(&doc);
    free(id);
}

//  The payload of request i of fake f, parsed.
static vz_json_t *s_payload(mesh_t *mesh, int f, size_t i)
{
    const fake_http_request_t *req = fake_http_request(mesh->http[f], i);
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    if (!doc)
        fail_msg("not JSON: %s", req->body);
    return doc;
}

static void test_chat_and_paging(void **state)
{
    mesh_t *mesh = *state;
    //  Each service paces us once (429 + Retry-After: 1), then accepts.
    static const int ok_status[F_COUNT] = {200, 204, 202, 200};
    for (int f = 0; f < F_COUNT; f++) {
        fake_http_reply_t slow = {.status = 429, .headers = "Retry-After: 1\r\n"};
        fake_http_script(mesh->http[f], &slow);
        fake_http_script_status(mesh->http[f], ok_status[f], f == F_SLACK ? "ok" : "");
    }
    char *ids[F_COUNT];
    ids[F_SLACK] = s_send(mesh, "{\"channel\":\"slack\",\"template\":\"test\",\"severity\":"
                                "\"warning\",\"data\":{\"message\":\"slack *hello*\"}}");
    ids[F_DISCORD] = s_send(mesh, "{\"channel\":\"discord\",\"template\":\"test\",\"severity\":"
                                  "\"error\",\"data\":{\"message\":\"@everyone discord\"}}");
    ids[F_PD] = s_send(mesh, "{\"channel\":\"pagerduty\",\"template\":\"test\",\"severity\":"
                             "\"critical\",\"dedup_key\":\"db1-disk\",\"source\":\"db1\","
                             "\"data\":{\"message\":\"disk full\"}}");
    ids[F_HOOK] = s_send(mesh, "{\"channel\":\"webhook\",\"template\":\"test\","
                               "\"data\":{\"message\":\"hook\",\"order\":\"o_1\"}}");
    //  While Slack waits out its Retry-After, e-mail is not held back.
    assert_true(fake_http_wait(mesh->http[F_SLACK], 1, WAIT_MS));
    int64_t first_slack = fake_http_request(mesh->http[F_SLACK], 0)->at_ms;
    char *mail = s_send(mesh, "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"ops@example."
                              "com\",\"data\":{\"message\":\"meanwhile\"}}");
    res_t r;
    assert_true(s_wait_status(mesh, mail, "delivered", &r));
    s_res_free(&r);
    free(mail);
    for (int f = 0; f < F_COUNT; f++) {
        assert_true(s_wait_status(mesh, ids[f], "delivered", &r));
        //  The 429 is pacing, not a failed attempt.
        assert_int_equal(s_int(&r, "attempts"), 1);
        s_res_free(&r);
        assert_int_equal(fake_http_count(mesh->http[f]), 2);
        const fake_http_request_t *a = fake_http_request(mesh->http[f], 0);
        const fake_http_request_t *b = fake_http_request(mesh->http[f], 1);
        assert_true(b->at_ms - a->at_ms >= 900);
        assert_string_equal(a->method, "POST");
        assert_int_equal(a->body_len, b->body_len);
        char *ct = fake_http_request_header(b, "Content-Type");
        assert_string_equal(ct, "application/json");
        free(ct);
    }
    assert_true(fake_http_request(mesh->http[F_SLACK], 1)->at_ms - first_slack >= 900);

    //  Slack: blocks with a plain_text header and a mrkdwn section.
    vz_json_t *doc = s_payload(mesh, F_SLACK, 1);
    const vz_json_value_t *blocks = vz_json_get(vz_json_root(doc), "blocks");
    assert_string_equal(vz_json_get_string(vz_json_root(doc), "text", NULL),
                        "vizmesh test message: slack *hello*");
    assert_string_equal(vz_json_get_string(vz_json_at(blocks, 0), "type", NULL), "header");
    assert_string_equal(vz_json_get_string(vz_json_at(blocks, 1), "type", NULL), "section");
    assert_string_equal(
        vz_json_get_string(vz_json_get(vz_json_at(blocks, 1), "text"), "type", NULL), "mrkdwn");
    assert_string_equal(fake_http_request(mesh->http[F_SLACK], 1)->target, "/services/T0/B0/XXXX");
    vz_json_destroy(&doc);
    //  Discord: one embed, mentions disabled.
    doc = s_payload(mesh, F_DISCORD, 1);
    const vz_json_value_t *embed = vz_json_at(vz_json_get(vz_json_root(doc), "embeds"), 0);
    assert_string_equal(vz_json_get_string(embed, "title", NULL),
                        "vizmesh test message: @everyone discord");
    assert_non_null(vz_json_get_string(embed, "timestamp", NULL));
    assert_int_equal(vz_json_type(vz_json_get(vz_json_root(doc), "allowed_mentions")),
                     VZ_JSON_OBJECT);
    vz_json_destroy(&doc);
    //  PagerDuty Events API v2: routing_key, trigger, dedup_key, payload.
    doc = s_payload(mesh, F_PD, 1);
    const vz_json_value_t *root = vz_json_root(doc);
    assert_string_equal(vz_json_get_string(root, "routing_key", NULL), PD_KEY);
    assert_string_equal(vz_json_get_string(root, "event_action", NULL), "trigger");
    assert_string_equal(vz_json_get_string(root, "dedup_key", NULL), "db1-disk");
    assert_string_equal(vz_json_get_string(vz_json_get(root, "payload"), "severity", NULL),
                        "critical");
    assert_string_equal(vz_json_get_string(vz_json_get(root, "payload"), "source", NULL), "db1");
    assert_non_null(vz_json_get_string(vz_json_get(root, "payload"), "summary", NULL));
    vz_json_destroy(&doc);
    //  Webhook: signed with HMAC-SHA256 over "<t>.<body>", and an Idempotency-Key.
    const fake_http_request_t *hook = fake_http_request(mesh->http[F_HOOK], 1);
    char *sig = fake_http_request_header(hook, "X-Vizmesh-Signature");
    assert_non_null(sig);
    long long t = 0;
    assert_int_equal(sscanf(sig, "t=%lld,", &t), 1);
    char *signed_text = vzt_fmt("%lld.%s", t, (const char *)hook->body);
    unsigned char mac[32];
    size_t mac_len = 0;
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, HOOK_SECRET, strlen(HOOK_SECRET),
                              (unsigned char *)signed_text, strlen(signed_text), mac, sizeof mac,
                              &mac_len));
    char hex[65];
    for (size_t i = 0; i < mac_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    assert_non_null(strstr(sig, hex));
    free(signed_text), free(sig);
    char *idem = fake_http_request_header(hook, "Idempotency-Key");
    assert_string_equal(idem, ids[F_HOOK]);
    free(idem);
    doc = s_payload(mesh, F_HOOK, 1);
    assert_string_equal(vz_json_get_string(vz_json_get(vz_json_root(doc), "data"), "order", NULL),
                        "o_1");
    vz_json_destroy(&doc);
    for (int f = 0; f < F_COUNT; f++)
        free(ids[f]);
}

static void test_alert_routing(void **state)
{
    mesh_t *mesh = *state;
    size_t pd0 = fake_http_count(mesh->http[F_PD]);
    size_t slack0 = fake_http_count(mesh->http[F_SLACK]);
    fake_http_script_status(mesh->http[F_PD], 202, "");
    fake_http_script_status(mesh->http[F_PD], 202, "");
    fake_http_script_status(mesh->http[F_SLACK], 200, "ok");
    //  critical: PagerDuty at once; the resolve carries the same dedup key.
    res_t r = s_call(mesh, false, "alert",
                     "{\"name\":\"DiskFull\",\"key\":\"diskfull-db1\",\"severity\":\"critical\","
                     "\"status\":\"firing\",\"summary\":\"disk 99%\",\"source\":\"db1\"}",
                     NULL);
    assert_false(r.error);
    s_res_free(&r);
    assert_true(fake_http_wait(mesh->http[F_PD], pd0 + 1, WAIT_MS));
    r = s_call(mesh, false, "alert",
               "{\"name\":\"DiskFull\",\"key\":\"diskfull-db1\",\"severity\":\"critical\","
               "\"status\":\"resolved\",\"summary\":\"disk 40%\"}",
               NULL);
    s_res_free(&r);
    assert_true(fake_http_wait(mesh->http[F_PD], pd0 + 2, WAIT_MS));
    vz_json_t *a = s_payload(mesh, F_PD, pd0), *b = s_payload(mesh, F_PD, pd0 + 1);
    assert_string_equal(vz_json_get_string(vz_json_root(a), "event_action", NULL), "trigger");
    assert_string_equal(vz_json_get_string(vz_json_root(b), "event_action", NULL), "resolve");
    assert_string_equal(vz_json_get_string(vz_json_root(b), "dedup_key", NULL), "diskfull-db1");
    vz_json_destroy(&a), vz_json_destroy(&b);
    //  acknowledge through send: the routing key and dedup key, no payload.
    fake_http_script_status(mesh->http[F_PD], 202, "");
    char *ack = s_send(mesh, "{\"channel\":\"pagerduty\",\"template\":\"test\","
                             "\"event_action\":\"acknowledge\",\"dedup_key\":\"diskfull-db1\","
                             "\"data\":{\"message\":\"on it\"}}");
    assert_true(fake_http_wait(mesh->http[F_PD], pd0 + 3, WAIT_MS));
    a = s_payload(mesh, F_PD, pd0 + 2);
    assert_string_equal(vz_json_get_string(vz_json_root(a), "event_action", NULL), "acknowledge");
    assert_string_equal(vz_json_get_string(vz_json_root(a), "dedup_key", NULL), "diskfull-db1");
    assert_string_equal(vz_json_get_string(vz_json_root(a), "routing_key", NULL), PD_KEY);
    assert_null(vz_json_get(vz_json_root(a), "payload"));
    vz_json_destroy(&a);
    free(ack);

    //  warning: Slack after the delay (1.5 s here), dropped when resolved first.
    r = s_call(mesh, false, "alert",
               "{\"name\":\"Flappy\",\"severity\":\"warning\",\"status\":\"firing\","
               "\"summary\":\"x\"}",
               NULL);
    char *dropped = strdup(vz_json_get_string(vz_json_root(r.json), "id", NULL));
    s_res_free(&r);
    r = s_call(mesh, false, "alert",
               "{\"name\":\"Flappy\",\"severity\":\"warning\",\"status\":\"resolved\"}", NULL);
    s_res_free(&r);
    r = s_call(mesh, false, "alert",
               "{\"name\":\"Sticky\",\"severity\":\"warning\",\"status\":\"firing\","
               "\"summary\":\"still bad\"}",
               NULL);
    char *sent = strdup(vz_json_get_string(vz_json_root(r.json), "id", NULL));
    s_res_free(&r);
    assert_true(s_wait_status(mesh, sent, "delivered", &r));
    s_res_free(&r);
    assert_true(s_wait_status(mesh, dropped, "dropped", &r));
    s_res_free(&r);
    assert_int_equal(fake_http_count(mesh->http[F_SLACK]), slack0 + 1);
    vz_json_t *s = s_payload(mesh, F_SLACK, slack0);
    assert_non_null(strstr(vz_json_get_string(vz_json_root(s), "text", NULL), "Sticky"));
    vz_json_destroy(&s);
    free(dropped), free(sent);
}

static void test_admin_routes(void **state)
{
    mesh_t *mesh = *state;
    //  The dead-letter routes are the admin's; a service gets access_denied.
    res_t r = s_call(mesh, false, "dead_list", NULL, NULL);
    assert_string_equal(r.code, "access_denied");
    s_res_free(&r);
    r = s_call(mesh, true, "dead_list", NULL, NULL);
    assert_false(r.error);
    s_res_free(&r);
    //  Someone else's (or an unknown) message is not found.
    r = s_call(mesh, true, "get", NULL, "n_000000000000000000000000");
    assert_string_equal(r.code, "not_found");
    s_res_free(&r);
    //  Metrics by channel: what this phase delivered and retried.
    double v = 0;
    assert_int_equal(
        vzt_metric(mesh->admin_port, "vz_notifier_delivered_total{channel=\"email\"}", &v), 0);
    assert_true(v >= 2);
    assert_int_equal(
        vzt_metric(mesh->admin_port, "vz_notifier_delivered_total{channel=\"pagerduty\"}", &v), 0);
    assert_true(v >= 3);
    assert_int_equal(
        vzt_metric(mesh->admin_port, "vz_notifier_queued_total{channel=\"slack\"}", &v), 0);
    assert_true(v >= 2);
    assert_int_equal(vzt_metric(mesh->admin_port, "vz_notifier_oldest_pending_seconds", &v), 0);
    //  No address appears unmasked in the notifier's log.
    char *log = vzt_fmt("%s/notifier.0.log", mesh->dir);
    char *text = s_slurp(log);
    assert_non_null(text);
    assert_null(strstr(text, "zoe@example.com"));
    assert_null(strstr(text, "ops@example.com"));
    assert_null(strstr(text, SMTP_PASS));
    assert_null(strstr(text, PD_KEY));
    free(text), free(log);
    vzt_proc_destroy(&mesh->notifier);
    s_sink_stop(mesh);
}

// --------------------------------------------------------------------------
//  Phase 2: a server without STARTTLS gets nothing

//  With the sink and notifier of the phase running: a message is tried, its
//  last error holds one of errors (NULL-terminated), and the server saw a
//  connection but no MAIL FROM and no AUTH. Then both stop.
static void s_nothing_sent(mesh_t *mesh, const char *const *errors)
{
    char *id = s_send(mesh, "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"a@example."
                            "com\",\"data\":{\"message\":\"secret\"}}");
    //  Wait until an attempt failed and was recorded.
    char body[96];
    snprintf(body, sizeof body, "{\"id\":\"%s\"}", id);
    res_t r = {0};
    status_goal_t goal = {mesh, body, NULL, &r};
    vzt_wait_until(s_attempted, &goal, WAIT_MS);
    assert_true(s_int(&r, "attempts") >= 1);
    const char *error = vz_json_get_string(vz_json_root(r.json), "last_error", NULL);
    bool known = false;
    for (size_t i = 0; errors[i]; i++)
        known = known || (error && strstr(error, errors[i]));
    if (!known)
        fail_msg("last_error: %s", error ? error : "(none)");
    s_res_free(&r);
    assert_true(s_events(mesh, "connect") >= 1);
    assert_int_equal(s_events(mesh, "mail "), 0);
    assert_int_equal(s_events(mesh, "auth"), 0);
    free(id);
    vzt_proc_destroy(&mesh->notifier);
    s_sink_stop(mesh);
}

static void test_no_starttls_refused(void **state)
{
    mesh_t *mesh = *state;
    const char *const extra[] = {"--no-starttls", NULL};
    s_sink_start(mesh, "plain", extra);
    s_notifier_start(mesh, NULL);
    const char *const errors[] = {"STARTTLS", NULL};
    s_nothing_sent(mesh, errors);
}

//  Certificate verification is on: the test's self-signed certificate is
//  not in the system store, so without the CA file nothing is sent.
static void test_untrusted_certificate(void **state)
{
    mesh_t *mesh = *state;
    s_sink_start(mesh, "untrusted", NULL);
    const char *const system_store[] = {"VZ_NOTIFIER_SMTP_CA_FILE=", NULL};
    s_notifier_start(mesh, system_store);
    const char *const errors[] = {"certificate", "SSL", NULL};
    s_nothing_sent(mesh, errors);
}

// --------------------------------------------------------------------------
//  Phase 3: server down, then up; a permanent 5xx; kill -9

static void test_server_down_then_up(void **state)
{
    mesh_t *mesh = *state;
    //  Nobody listens on the SMTP port yet.
    s_notifier_start(mesh, NULL);
    char *id = s_send(mesh, "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"late@example."
                            "com\",\"data\":{\"message\":\"after the outage\"}}");
    res_t r;
    assert_true(s_wait_status(mesh, id, "retrying", &r));
    s_res_free(&r);
    s_sink_start(mesh, "late", NULL);
    assert_true(s_wait_status(mesh, id, "delivered", &r));
    //  The outage was seen ("retrying" above). Its own failed attempt
    //  is not certain: a message of an earlier phase still retrying may
    //  have failed first and paused the e-mail channel, which reschedules
    //  this one without spending an attempt (nt_deliver.c, s_start).
    assert_true(s_int(&r, "attempts") >= 1);
    s_res_free(&r);
    assert_int_equal(s_wait_mail(mesh, "after the outage"), 1);
    free(id);
    s_sink_stop(mesh);
}

static void test_permanent_5xx_dead_then_requeued(void **state)
{
    mesh_t *mesh = *state;
    //  N = 3 attempts: a permanent 5xx is retried (backoff 200..600 ms
    //  here) and goes to the dead letters after the third, not the first.
    //  The SMTP password from a file this time: it wins over the environment.
    char *pass = vzt_fmt("%s/smtp.pass", mesh->dir);
    FILE *f = fopen(pass, "w");
    fputs(SMTP_PASS "\n", f);
    fclose(f);
    char *pass_env = vzt_fmt("VZ_NOTIFIER_SMTP_PASSWORD_FILE=%s", pass);
    const char *const three[] = {"VZ_NOTIFIER_MAX_ATTEMPTS=3", pass_env,
                                 "VZ_NOTIFIER_SMTP_PASSWORD=not-the-password", NULL};
    s_notifier_start(mesh, three);
    free(pass_env), free(pass);
    const char *const extra[] = {"--reject", "550", NULL};
    s_sink_start(mesh, "reject", extra);
    int64_t t0 = vz_clock_mono_ms();
    char *id = s_send(mesh, "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"gone@example."
                            "com\",\"data\":{\"message\":\"refused\"}}");
    res_t r;
    assert_true(s_wait_status(mesh, id, "dead", &r));
    assert_non_null(strstr(vz_json_get_string(vz_json_root(r.json), "last_error", NULL), "550"));
    assert_int_equal(s_int(&r, "attempts"), 3);
    s_res_free(&r);
    //  Three MAIL FROM refused, two backoffs (each at least 100 ms) between.
    assert_int_equal(s_events(mesh, "mail "), 3);
    assert_true(vz_clock_mono_ms() - t0 >= 200);
    double dead = 0;
    assert_int_equal(
        vzt_metric(mesh->admin_port, "vz_notifier_dead_total{channel=\"email\"}", &dead), 0);
    assert_true(dead >= 1);
    //  An HTTP 4xx is a refusal too: Slack answers 404 (nothing scripted)
    //  to each of the three attempts, then the message is dead.
    size_t slack0 = fake_http_count(mesh->http[F_SLACK]);
    char *gone = s_send(mesh, "{\"channel\":\"slack\",\"template\":\"test\","
                              "\"data\":{\"message\":\"revoked webhook\"}}");
    assert_true(s_wait_status(mesh, gone, "dead", &r));
    assert_int_equal(s_int(&r, "attempts"), 3);
    assert_non_null(strstr(vz_json_get_string(vz_json_root(r.json), "last_error", NULL), "404"));
    s_res_free(&r);
    assert_int_equal(fake_http_count(mesh->http[F_SLACK]) - slack0, 3);
    free(gone);
    r = s_call(mesh, true, "dead_list", NULL, NULL);
    assert_non_null(strstr(r.body, id));
    s_res_free(&r);
    //  The server is fixed; the admin requeues the dead letter.
    s_sink_stop(mesh);
    s_sink_start(mesh, "fixed", NULL);
    r = s_call(mesh, true, "dead_retry", NULL, id);
    assert_false(r.error);
    s_res_free(&r);
    assert_true(s_wait_status(mesh, id, "delivered", &r));
    s_res_free(&r);
    assert_int_equal(s_events(mesh, "auth " SMTP_USER), 1);
    r = s_call(mesh, true, "dead_list", NULL, NULL);
    assert_null(strstr(r.body, id));
    s_res_free(&r);
    //  A second retry of a delivered message: not a dead letter.
    r = s_call(mesh, true, "dead_retry", NULL, id);
    assert_string_equal(r.code, "not_found");
    s_res_free(&r);
    free(id);
    s_sink_stop(mesh);
    s_notifier_start(mesh, NULL); //  the test's own settings again
}

static void test_kill9_mid_delivery(void **state)
{
    mesh_t *mesh = *state;
    //  The server holds RCPT for 8 s: replica A has taken the message and
    //  is mid-dialogue when replica B starts and A is killed. B claims
    //  what A held once it has been idle for VZ_NOTIFIER_CLAIM_MS.
    const char *const extra[] = {"--hold-rcpt", "8000", NULL};
    s_sink_start(mesh, "hold", extra);
    char *id = s_send(mesh, "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"kill@example."
                            "com\",\"data\":{\"message\":\"survives kill -9\"}}");
    char *events = vzt_fmt("%s/events.log", mesh->sink_dir);
    assert_true(s_wait_text(events, "rcpt"));
    vzt_proc_t *a = mesh->notifier;
    mesh->notifier = NULL;
    s_notifier_start(mesh, NULL); //  replica B, beside A
    char *seen = s_slurp(events);
    assert_null(strstr(seen, "data")); //  A is still inside the dialogue
    free(seen);
    kill(vzt_proc_pid(a), SIGKILL);
    assert_true(vzt_proc_wait(a, 5000) >= 0);
    vzt_proc_destroy(&a);
    res_t r;
    assert_true(s_wait_status(mesh, id, "delivered", &r));
    s_res_free(&r);
    //  Killed before DATA: the server never had the message, so exactly one copy.
    assert_int_equal(s_wait_mail(mesh, "survives kill -9"), 1);
    //  B's log shows the claim.
    char *log = vzt_fmt("%s/notifier.%d.log", mesh->dir, mesh->phase - 1);
    assert_true(s_wait_text(log, "claimed an abandoned delivery"));
    free(log), free(events), free(id);
}

static void test_kill9_after_data_duplicates(void **state)
{
    mesh_t *mesh = *state;
    //  The server stores the message, then holds its 250 for 3 s: killed
    //  then, the notifier cannot know the message arrived. It sends it
    //  again after the restart: the documented duplicate, same Message-ID.
    const char *const extra[] = {"--hold-data", "3000", NULL};
    s_sink_start(mesh, "holddata", extra);
    char *id = s_send(mesh, "{\"channel\":\"email\",\"template\":\"test\",\"to\":\"dup@example."
                            "com\",\"data\":{\"message\":\"at least once\"}}");
    char *events = vzt_fmt("%s/events.log", mesh->sink_dir);
    assert_true(s_wait_text(events, "data 1"));
    kill(vzt_proc_pid(mesh->notifier), SIGKILL);
    assert_true(vzt_proc_wait(mesh->notifier, 5000) >= 0);
    vzt_proc_destroy(&mesh->notifier);
    s_notifier_start(mesh, NULL);
    res_t r;
    assert_true(s_wait_status(mesh, id, "delivered", &r));
    s_res_free(&r);
    assert_int_equal(s_wait_mail(mesh, "at least once"), 2);
    char *mid = vzt_fmt("\"messageId\": \"<%s@vizmesh.localhost>\"", id);
    for (int i = 1; i <= 2; i++) {
        char *path = vzt_fmt("%s/%d.json", mesh->sink_dir, i);
        char *text = s_slurp(path);
        assert_non_null(strstr(text, mid));
        free(text), free(path);
    }
    free(mid), free(events), free(id);
}

static void test_daily_digest(void **state)
{
    mesh_t *mesh = *state;
    //  A clock 13 seconds before midnight (the start and the alert must land
    //  before it on a loaded machine too): an info alert joins the day's
    //  digest, and the digest timer (every 10 s) sends yesterday's once the
    //  date has changed. The midnight is yesterday's: a clock behind the
    //  real one keeps the callers' deadlines in the future.
    s_sink_start(mesh, "digest", NULL);
    time_t yesterday = time(NULL) - 86400;
    struct tm tm;
    gmtime_r(&yesterday, &tm);
    char day[16], start[64], subject[96];
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    snprintf(start, sizeof start, "VZ_CLOCK_START=%sT23:59:47Z", day);
    snprintf(subject, sizeof subject, "vizmesh daily digest for %s (1 alerts)", day);
    const char *const clock[] = {"VZ_CLOCK_TEST=1", start, NULL};
    s_notifier_start(mesh, clock);
    res_t r = s_call(mesh, false, "alert",
                     "{\"name\":\"CertExpiresSoon\",\"severity\":\"info\",\"status\":"
                     "\"firing\",\"summary\":\"in 20 days\"}",
                     NULL);
    if (r.error)
        fail_msg("alert: %s %s", r.code, r.message);
    assert_string_equal(vz_json_get_string(vz_json_root(r.json), "action", NULL), "digest");
    s_res_free(&r);
    //  Midnight comes 13 s after the start, the digest timer up to 10 s
    //  later: wait well past both.
    assert_int_equal(s_wait_mail_ms(mesh, "CertExpiresSoon: in 20 days", 3 * WAIT_MS), 1);
    assert_int_equal(s_wait_mail_ms(mesh, subject, WAIT_MS), 1);
}

//  No log line of any phase holds an address unmasked ("z***@example.com"
//  is the masked form) or a secret.
static void test_logs_masked(void **state)
{
    mesh_t *mesh = *state;
    for (int phase = 0; phase < mesh->phase; phase++) {
        char *path = vzt_fmt("%s/notifier.%d.log", mesh->dir, phase);
        char *text = s_slurp(path);
        assert_non_null(text);
        for (const char *at = strstr(text, "@example.com"); at; at = strstr(at + 1, "@example.com"))
            if (at == text || at[-1] != '*')
                fail_msg("%s: an address unmasked: %.40s", path, at > text + 20 ? at - 20 : text);
        assert_null(strstr(text, "a@b.c"));
        assert_null(strstr(text, SMTP_PASS));
        assert_null(strstr(text, PD_KEY));
        assert_null(strstr(text, HOOK_SECRET));
        free(text), free(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_email_round_trip),
        cmocka_unit_test(test_encoded_report_mail),
        cmocka_unit_test(test_chat_and_paging),
        cmocka_unit_test(test_alert_routing),
        cmocka_unit_test(test_admin_routes),
        cmocka_unit_test(test_no_starttls_refused),
        cmocka_unit_test(test_untrusted_certificate),
        cmocka_unit_test(test_server_down_then_up),
        cmocka_unit_test(test_permanent_5xx_dead_then_requeued),
        cmocka_unit_test(test_kill9_mid_delivery),
        cmocka_unit_test(test_kill9_after_data_duplicates),
        cmocka_unit_test(test_daily_digest),
        cmocka_unit_test(test_logs_masked),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
