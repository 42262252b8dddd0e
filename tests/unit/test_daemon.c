/*  test_daemon - vz_daemon: start-up checks and exit codes, --help, readiness, notify fd
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vz_clock.h"
#include "vz_curve.h"
#include "vz_broker_contract.h"
#include "vz_daemon.h"
#include "vz_proto.h"
#include "vz_redis.h"

#include "ut.h"

typedef struct {
    int workers;
    char greeting[32];
} app_config_t;

static const vz_cfg_item_t s_app_items[] = {
    VZ_CFG_ITEM(app_config_t, "ECHO_WORKERS", "echo/workers", VZ_CFG_INT, "2", 1, 16, workers,
                "worker count"),
    VZ_CFG_ITEM(app_config_t, "ECHO_GREETING", "echo/greeting", VZ_CFG_STR, "hi", 0, 0, greeting,
                "greeting text"),
};

static char s_dir[64];
static char s_cert[160];
static char s_public[160];
static char s_broker_public[160];
static char s_broker_secret[160];
static app_config_t s_app;

static vz_daemon_spec_t spec(bool needs_broker, bool needs_allow_dir)
{
    vz_daemon_spec_t spec = {"echo",      0, needs_broker, needs_allow_dir,
                             s_app_items, 2, &s_app,       false};
    return spec;
}

static int setup(void **state)
{
    static const char *const vars[] = {
        "VZ_LOG_LEVEL",        "VZ_CURVE_CERT", "VZ_CURVE_ALLOW_DIR", "VZ_BROKER_KEY",
        "VZ_BROKER_ENDPOINTS", "VZ_ADMIN_ADDR", "VZ_ADMIN_PORT",      "VZ_HEARTBEAT_MS",
        "VZ_DRAIN_TIMEOUT_MS", "VZ_REDIS_URL",  "VZ_REPLICA",         "VZ_CONFIG_FILE",
        "VZ_NOTIFY_FD",        "ECHO_WORKERS",  "ECHO_GREETING",      "VZ_WORKER_CREDIT",
        "VZ_CLOCK_START",      "VZ_CLOCK_TEST", "VZ_SERVICE_VERSION", "VZ_CURVE_SECRET_FD",
    };
    vz_clock_test_reset();
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    setenv("VZ_CURVE_CERT", s_cert, 1);
    setenv("VZ_BROKER_KEY", s_broker_public, 1);
    setenv("VZ_LOG_LEVEL", "error", 1);
    memset(&s_app, 0, sizeof s_app);
    return 0;
}

//  Run vz_daemon_new with stdout and stderr captured into out/err.
static vz_daemon_t *start(vz_daemon_spec_t sp, char **argv, int *code, char *out, char *err)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    FILE *fo = tmpfile(), *fe = tmpfile();
    assert_non_null(fo);
    assert_non_null(fe);
    fflush(stdout);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    *code = -1;
    vz_daemon_t *d = vz_daemon_new(&sp, argc, argv, code);
    fflush(stdout);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    FILE *files[2] = {fo, fe};
    char *bufs[2] = {out, err};
    for (int i = 0; i < 2; i++) {
        rewind(files[i]);
        size_t len = fread(bufs[i], 1, 8191, files[i]);
        bufs[i][len] = '\0';
        fclose(files[i]);
    }
    return d;
}

static char s_out[8192], s_err[8192];

//  Expect start-up to fail with code and every fragment on stderr.
static void expect_fail(vz_daemon_spec_t sp, char **argv, int code, const char *const *frags)
{
    int got;
    vz_daemon_t *d = start(sp, argv, &got, s_out, s_err);
    if (d || got != code)
        fail_msg("expected exit %d, got %d (daemon %p); stderr: %s", code, got, (void *)d, s_err);
    for (size_t i = 0; frags && frags[i]; i++)
        if (!strstr(s_err, frags[i]))
            fail_msg("stderr lacks \"%s\": %s", frags[i], s_err);
    //  Every line on stderr is one of our JSON lines.
    assert_int_equal(s_err[0], '{');
}

static char *s_argv_plain[] = {"echo", NULL};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    strncat(arg, data, size * n < 200 ? size * n : 200);
    return size * n;
}

static long http_get(int port, const char *path, char *body)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    body[0] = '\0';
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
    long status = -1;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return status;
}

static void test_start_ready_notify(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char fdtext[16];
    snprintf(fdtext, sizeof fdtext, "%d", fds[1]);
    setenv("VZ_NOTIFY_FD", fdtext, 1);
    setenv("VZ_LOG_LEVEL", "info", 1);
    setenv("VZ_REPLICA", "3", 1);
    setenv("ECHO_WORKERS", "5", 1);
    int code;
    vz_daemon_t *d = start(spec(true, false), s_argv_plain, &code, s_out, s_err);
    if (!d)
        fail_msg("start failed (%d): %s", code, s_err);
    assert_int_equal(code, 0);
    assert_non_null(strstr(s_err, "\"msg\":\"started\""));
    assert_non_null(strstr(s_err, "\"service_name\":\"echo\""));
    assert_non_null(strstr(s_err, "\"replica\":\"3\""));
    assert_null(getenv("VZ_NOTIFY_FD"));

    const vz_daemon_config_t *cfg = vz_daemon_config(d);
    assert_string_equal(vz_daemon_service(d), "echo");
    assert_int_equal(cfg->heartbeat_ms, 1000);
    assert_int_equal(cfg->drain_ms, 5000);
    assert_int_equal(cfg->replica, 3);
    assert_string_equal(cfg->broker_endpoints, "tcp://127.0.0.1:5555");
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6380");
    assert_int_equal(s_app.workers, 5);
    assert_string_equal(s_app.greeting, "hi");
    assert_int_equal(strlen(vz_daemon_broker_key(d)), 40);
    assert_non_null(vz_daemon_cert(d));
    assert_non_null(vz_daemon_metrics(d));

    int port = vz_admin_port(vz_daemon_admin(d));
    char port_field[48];
    snprintf(port_field, sizeof port_field, "\"admin_port\":\"%d\"", port);
    assert_non_null(strstr(s_err, port_field));
    char body[256];
    assert_int_equal(http_get(port, "/healthz", body), 200);
    assert_int_equal(http_get(port, "/readyz", body), 503);
    assert_int_equal(http_get(port, "/metrics", body), 200);

    //  Nothing on the notify pipe before readiness.
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    char buf[8];
    assert_int_equal(read(fds[0], buf, sizeof buf), -1);
    //  fds[1] now belongs to the daemon (same process): it closes it.

    vz_daemon_ready(d);
    vz_daemon_ready(d);
    assert_int_equal(http_get(port, "/readyz", body), 200);
    //  Exactly one newline, then EOF: the daemon closed its end.
    fcntl(fds[0], F_SETFL, 0);
    ssize_t len = read(fds[0], buf, sizeof buf);
    assert_int_equal(len, 1);
    assert_int_equal(buf[0], '\n');
    assert_int_equal(read(fds[0], buf, sizeof buf), 0);
    close(fds[0]);

    vz_daemon_not_ready(d, "broker unreachable");
    assert_int_equal(http_get(port, "/readyz", body), 503);
    assert_non_null(strstr(body, "broker unreachable"));
    vz_daemon_destroy(&d);
    assert_null(d);
    vz_daemon_destroy(&d);
}

static void test_help(void **state)
{
    char *argv[] = {"vz-echo", "--help", NULL};
    unsetenv("VZ_CURVE_CERT"); //  --help works without any configuration
    int code;
    vz_daemon_t *d = start(spec(true, true), argv, &code, s_out, s_err);
    assert_null(d);
    assert_int_equal(code, 0);
    assert_non_null(strstr(s_out, "Usage: vz-echo [--config FILE]"));
    assert_non_null(strstr(s_out, "VZ_CURVE_CERT"));
    assert_non_null(strstr(s_out, "VZ_DRAIN_TIMEOUT_MS"));
    assert_non_null(strstr(s_out, "ECHO_WORKERS"));
    assert_non_null(strstr(s_out, "echo settings:"));
    assert_string_equal(s_err, "");
}

static void test_config_errors(void **state)
{
    //  One bad variable at a time: a permanent exit naming it.
    static const struct {
        const char *name, *value;   //  the variable set
        const char *const frags[3]; //  what stderr must say (NULL-terminated)
    } bad_env[] = {
        {"VZ_ADMIN_PORT", "80x", {"VZ_ADMIN_PORT=\\\"80x\\\"", "expected an integer"}},
        {"VZ_HEARTBEAT_MS", "fast", {"VZ_HEARTBEAT_MS", "expected a duration"}},
        {"ECHO_WORKERS", "99", {"ECHO_WORKERS=\\\"99\\\"", "1..16"}},
        {"VZ_LOG_LEVEL", "loud", {"VZ_LOG_LEVEL", "loud"}},
        {"VZ_BROKER_ENDPOINTS", "tcp://nohost", {"VZ_BROKER_ENDPOINTS"}},
        {"VZ_NOTIFY_FD", "abc", {"VZ_NOTIFY_FD"}},
        {"VZ_NOTIFY_FD", "999", {"VZ_NOTIFY_FD"}}, //  not open
    };
    for (size_t i = 0; i < sizeof bad_env / sizeof bad_env[0]; i++) {
        setenv(bad_env[i].name, bad_env[i].value, 1);
        expect_fail(spec(false, false), s_argv_plain, VZ_EXIT_PERMANENT, bad_env[i].frags);
        setup(state);
    }

    char *bad_arg[] = {"echo", "--verbose", NULL};
    static const char *const arg[] = {"unknown argument", "--verbose", NULL};
    expect_fail(spec(false, false), bad_arg, VZ_EXIT_PERMANENT, arg);
    char *no_file_arg[] = {"echo", "--config", NULL};
    expect_fail(spec(false, false), no_file_arg, VZ_EXIT_PERMANENT, NULL);

    char missing[200];
    snprintf(missing, sizeof missing, "%s/nope.cfg", s_dir);
    char *missing_arg[] = {"echo", "--config", missing, NULL};
    static const char *const miss[] = {"nope.cfg", "unable to read config file", NULL};
    expect_fail(spec(false, false), missing_arg, VZ_EXIT_PERMANENT, miss);

    char *bad = ut_write_file(s_dir, "bad.cfg", "echo\n   workers = 3\n");
    char bad_opt[200];
    snprintf(bad_opt, sizeof bad_opt, "--config=%s", bad);
    char *bad_arg2[] = {"echo", bad_opt, NULL};
    static const char *const zpl[] = {"bad.cfg", "not valid ZPL", NULL};
    expect_fail(spec(false, false), bad_arg2, VZ_EXIT_PERMANENT, zpl);
}

static void test_config_file(void **state)
{
    char *path = ut_write_file(s_dir, "good.cfg",
                               "echo\n"
                               "    workers = 7\n"
                               "    greeting = hello\n"
                               "broker\n"
                               "    heartbeat = 2s\n"
                               "drain\n"
                               "    timeout = 1m\n"
                               "unknown\n"
                               "    key = 1\n");
    setenv("ECHO_GREETING", "env wins", 1);
    setenv("VZ_CONFIG_FILE", path, 1);
    int code;
    vz_daemon_t *d = start(spec(false, false), s_argv_plain, &code, s_out, s_err);
    if (!d)
        fail_msg("start failed (%d): %s", code, s_err);
    assert_int_equal(s_app.workers, 7);
    assert_string_equal(s_app.greeting, "env wins");
    assert_int_equal(vz_daemon_config(d)->heartbeat_ms, 2000);
    assert_int_equal(vz_daemon_config(d)->drain_ms, 60000);
    assert_string_equal(vz_daemon_config(d)->config_file, path);
    vz_daemon_destroy(&d);

    //  --config overrides VZ_CONFIG_FILE.
    char *other = ut_write_file(s_dir, "other.cfg", "echo\n    workers = 9\n");
    char *argv[] = {"echo", "--config", other, NULL};
    d = start(spec(false, false), argv, &code, s_out, s_err);
    assert_non_null(d);
    assert_int_equal(s_app.workers, 9);
    vz_daemon_destroy(&d);
}

//  A pipe holding the whole of file, write end closed (the supervisor's isolation = fd).
static int s_pipe_of(const char *file)
{
    char buf[4096];
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], buf, len), (ssize_t)len);
    close(p[1]);
    return p[0];
}

//  VZ_CURVE_SECRET_FD: the certificate comes through the fd, read once and
//  closed, with no VZ_CURVE_CERT; a public certificate there is refused.
static void test_key_by_fd(void **state)
{
    char secret[200], value[16];
    snprintf(secret, sizeof secret, "%s_secret", s_cert);
    unsetenv("VZ_CURVE_CERT");
    int fd = s_pipe_of(secret);
    struct stat pipe_st, now_st;
    assert_int_equal(fstat(fd, &pipe_st), 0);
    snprintf(value, sizeof value, "%d", fd);
    setenv("VZ_CURVE_SECRET_FD", value, 1);
    int code;
    vz_daemon_t *d = start(spec(false, false), s_argv_plain, &code, s_out, s_err);
    if (!d)
        fail_msg("exit %d; stderr: %s", code, s_err);
    //  Closed: the number is free or reused by something else, never the pipe.
    assert_true(fstat(fd, &now_st) < 0 || now_st.st_ino != pipe_st.st_ino);
    vz_daemon_destroy(&d);
    setup(state);

    unsetenv("VZ_CURVE_CERT");
    snprintf(value, sizeof value, "%d", s_pipe_of(s_public));
    setenv("VZ_CURVE_SECRET_FD", value, 1);
    static const char *const pub[] = {"VZ_CURVE_SECRET_FD", "no secret key", NULL};
    expect_fail(spec(false, false), s_argv_plain, VZ_EXIT_PERMANENT, pub);
    setup(state);
}

static void test_key_errors(void **state)
{
    static const char *const unset[] = {"VZ_CURVE_CERT is required", NULL};
    unsetenv("VZ_CURVE_CERT");
    expect_fail(spec(false, false), s_argv_plain, VZ_EXIT_PERMANENT, unset);
    setup(state);

    char missing[200];
    snprintf(missing, sizeof missing, "%s/secret/ghost.key", s_dir);
    setenv("VZ_CURVE_CERT", missing, 1);
    static const char *const miss[] = {"unable to load certificate", "ghost.key", NULL};
    expect_fail(spec(false, false), s_argv_plain, VZ_EXIT_PERMANENT, miss);
    setup(state);

    //  A public certificate has no secret key: refuse, naming the file.
    setenv("VZ_CURVE_CERT", s_public, 1);
    static const char *const pub[] = {"unable to load certificate", "public/echo.key", NULL};
    expect_fail(spec(false, false), s_argv_plain, VZ_EXIT_PERMANENT, pub);
    setup(state);

    //  A certificate without a name.
    zcert_t *nameless = zcert_new();
    char nameless_path[200];
    snprintf(nameless_path, sizeof nameless_path, "%s/nameless.key", s_dir);
    assert_int_equal(zcert_save(nameless, nameless_path), 0);
    zcert_destroy(&nameless);
    setenv("VZ_CURVE_CERT", nameless_path, 1);
    static const char *const noname[] = {"nameless.key", NULL};
    expect_fail(spec(false, false), s_argv_plain, VZ_EXIT_PERMANENT, noname);
    setup(state);

    //  Another service's certificate.
    setenv("VZ_CURVE_CERT", s_broker_secret, 1);
    static const char *const other[] = {"another service", "broker", NULL};
    expect_fail(spec(false, false), s_argv_plain, VZ_EXIT_PERMANENT, other);
    setup(state);

    setenv("VZ_BROKER_KEY", "", 1);
    static const char *const nokey[] = {"VZ_BROKER_KEY is required", NULL};
    expect_fail(spec(true, false), s_argv_plain, VZ_EXIT_PERMANENT, nokey);
    setup(state);

    setenv("VZ_BROKER_KEY", "not-a-key", 1);
    static const char *const badkey[] = {"unable to read broker key", NULL};
    expect_fail(spec(false, false), s_argv_plain, VZ_EXIT_PERMANENT, badkey);
    setup(state);

    static const char *const allow[] = {"VZ_CURVE_ALLOW_DIR", NULL};
    expect_fail(spec(false, true), s_argv_plain, VZ_EXIT_PERMANENT, allow);
    char public_dir[200];
    snprintf(public_dir, sizeof public_dir, "%s/public", s_dir);
    setenv("VZ_CURVE_ALLOW_DIR", public_dir, 1);
    int code;
    vz_daemon_t *d = start(spec(true, true), s_argv_plain, &code, s_out, s_err);
    if (!d)
        fail_msg("start failed (%d): %s", code, s_err);
    //  A Z85 broker key works as well as a path.
    char z85[41];
    assert_string_equal(vz_daemon_broker_key(d), vz_daemon_broker_key(d));
    memcpy(z85, vz_daemon_broker_key(d), sizeof z85);
    vz_daemon_destroy(&d);
    setenv("VZ_BROKER_KEY", z85, 1);
    d = start(spec(true, true), s_argv_plain, &code, s_out, s_err);
    assert_non_null(d);
    assert_string_equal(vz_daemon_broker_key(d), z85);
    vz_daemon_destroy(&d);
}

static void test_admin_busy(void **state)
{
    vz_metrics_t *m = vz_metrics_new();
    vz_admin_t *holder = vz_admin_new("127.0.0.1", 0, m);
    assert_non_null(holder);
    char port[16];
    snprintf(port, sizeof port, "%d", vz_admin_port(holder));
    setenv("VZ_ADMIN_PORT", port, 1);
    const char *const busy[] = {"unable to bind admin port", port, NULL};
    expect_fail(spec(false, false), s_argv_plain, VZ_EXIT_TEMPORARY, busy);
    vz_admin_destroy(&holder);
    vz_metrics_destroy(&m);
}

static void test_sighup(void **state)
{
    int code;
    vz_daemon_t *d = start(spec(false, false), s_argv_plain, &code, s_out, s_err);
    assert_non_null(d);
    assert_false(vz_daemon_reload_requested(d));
    raise(SIGHUP);
    assert_true(vz_daemon_reload_requested(d));
    assert_false(vz_daemon_reload_requested(d));
    vz_daemon_destroy(&d);
}

//  ---------------------------------------------------------------------
//  needs_redis, the reload hook and VZ_CLOCK_START.

//  A fake broker: takes the worker's RDY and keeps its link alive with
//  heartbeats while the test polls /readyz for the answer it wants.
typedef struct {
    zcert_t *cert;    //  broker certificate
    vz_auth_t *zap;   //  allows the test's keys
    zsock_t *router;  //  what the worker connects to
    zframe_t *worker; //  the worker's routing id, once it sent RDY
} fake_broker_t;

static void s_broker_start(fake_broker_t *b)
{
    memset(b, 0, sizeof *b);
    b->cert = zcert_load(s_broker_secret);
    assert_non_null(b->cert);
    char allow[96];
    snprintf(allow, sizeof allow, "%s/public", s_dir);
    b->zap = vz_auth_new(allow);
    assert_non_null(b->zap);
    b->router = vz_curve_server(ZMQ_ROUTER, "tcp://127.0.0.1:*", b->cert);
    assert_non_null(b->router);
    zsock_set_rcvtimeo(b->router, 20);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", vz_curve_bound_port(b->router));
    setenv("VZ_BROKER_ENDPOINTS", endpoint, 1);
    setenv("VZ_HEARTBEAT_MS", "100", 1);
}

static void s_broker_stop(fake_broker_t *b)
{
    zframe_destroy(&b->worker);
    zsock_destroy(&b->router);
    vz_auth_destroy(&b->zap);
    zcert_destroy(&b->cert);
}

//  True once /readyz answers status (with fragment in the body), within 10 s.
static bool s_broker_wait_ready(fake_broker_t *b, int port, long status, const char *fragment)
{
    int64_t until = vz_clock_mono_ms() + 30000; //  generous: valgrind on a loaded machine
    char body[256];
    while (vz_clock_mono_ms() < until) {
        zmsg_t *msg = zmsg_recv(b->router);
        if (msg && !b->worker)
            b->worker = zframe_dup(zmsg_first(msg));
        zmsg_destroy(&msg);
        if (b->worker) {
            zframe_t *id = zframe_dup(b->worker);
            zframe_send(&id, b->router, ZFRAME_MORE);
            zstr_send(b->router, VZ_CMD_HEARTBEAT);
        }
        if (http_get(port, "/readyz", body) == status && (!fragment || strstr(body, fragment)))
            return true;
    }
    return false;
}

static void *s_serve_thread(void *arg);

typedef struct {
    vz_daemon_t *daemon;
    int rc;
} serve_arg_t;

//  Readiness follows Redis: down when it goes away, up when it is back,
//  with the broker link up all along.
static void test_needs_redis(void **state)
{
    int redis_port = vzt_free_port();
    vzt_proc_t *redis = vzt_redis(s_dir, redis_port, 10000);
    assert_non_null(redis);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
    setenv("VZ_REDIS_URL", url, 1);
    setenv("VZ_DRAIN_TIMEOUT_MS", "0", 1);
    fake_broker_t broker;
    s_broker_start(&broker);
    vz_daemon_spec_t sp = spec(true, false);
    sp.needs_redis = true;
    int code;
    serve_arg_t serve = {start(sp, s_argv_plain, &code, s_out, s_err), -1};
    if (!serve.daemon)
        fail_msg("start failed (%d): %s", code, s_err);
    assert_non_null(vz_daemon_redis(serve.daemon));
    int port = vz_admin_port(vz_daemon_admin(serve.daemon));
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_serve_thread, &serve), 0);

    assert_true(s_broker_wait_ready(&broker, port, 200, NULL));
    vzt_proc_destroy(&redis);
    assert_true(s_broker_wait_ready(&broker, port, 503, "redis unreachable"));
    redis = vzt_redis(s_dir, redis_port, 10000);
    assert_non_null(redis);
    assert_true(s_broker_wait_ready(&broker, port, 200, NULL));

    //  Redis starts wanting a password the daemon was not given: not ready,
    //  and the reason names the credentials, not the network.
    vz_redis_t *admin = vz_redis_new(url, 1000, 1000, 0);
    assert_non_null(admin);
    const char *lock[] = {"CONFIG", "SET", "requirepass", "s3cret"};
    redisReply *reply = vz_redis_command(admin, 4, lock, NULL);
    assert_true(reply && reply->type == REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    const char *kill_all[] = {"CLIENT", "KILL", "TYPE", "normal"};
    reply = vz_redis_command(admin, 4, kill_all, NULL);
    if (reply)
        freeReplyObject(reply);
    vz_redis_destroy(&admin);
    assert_true(s_broker_wait_ready(&broker, port, 503, "redis refused our credentials"));
    char authed[96];
    snprintf(authed, sizeof authed, "redis://:s3cret@127.0.0.1:%d", redis_port);
    admin = vz_redis_new(authed, 1000, 1000, 0);
    assert_non_null(admin);
    const char *unlock[] = {"CONFIG", "SET", "requirepass", ""};
    reply = vz_redis_command(admin, 4, unlock, NULL);
    assert_true(reply && reply->type == REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    vz_redis_destroy(&admin);
    assert_true(s_broker_wait_ready(&broker, port, 200, NULL));

    zsys_interrupted = 1;
    pthread_join(thread, NULL);
    zsys_interrupted = 0;
    assert_int_equal(serve.rc, VZ_EXIT_OK);
    vz_daemon_destroy(&serve.daemon);
    s_broker_stop(&broker);
    vzt_proc_destroy(&redis);
    //  A URL that cannot be a Redis URL stops the start-up, naming the setting.
    setup(state);
    setenv("VZ_REDIS_URL", "http://127.0.0.1:1", 1);
    static const char *const frags[] = {"VZ_REDIS_URL", "redis://host:port", NULL};
    expect_fail(sp, s_argv_plain, VZ_EXIT_PERMANENT, frags);
}

typedef struct {
    atomic_int calls; //  times the hook ran
    pthread_t thread; //  the thread it last ran on
} reload_seen_t;

static void s_on_reload(void *arg)
{
    reload_seen_t *seen = arg;
    seen->thread = pthread_self();
    atomic_fetch_add(&seen->calls, 1);
}

typedef struct {
    reload_seen_t *seen; //  the hook's record
    int calls;           //  calls awaited
} calls_goal_t;

static bool s_calls_reached(void *arg)
{
    const calls_goal_t *goal = arg;
    return atomic_load(&goal->seen->calls) >= goal->calls;
}

static bool s_wait_calls(reload_seen_t *seen, int calls)
{
    calls_goal_t goal = {seen, calls};
    vzt_wait_until(s_calls_reached, &goal, 5000);
    return atomic_load(&seen->calls) == calls;
}

//  SIGHUP runs the hook on the thread that runs vz_daemon_serve, once per
//  signal; the flag is the hook's, so polling it finds nothing.
static void test_reload_hook(void **state)
{
    setenv("VZ_BROKER_ENDPOINTS", "tcp://127.0.0.1:9", 1);
    setenv("VZ_DRAIN_TIMEOUT_MS", "0", 1);
    int code;
    serve_arg_t serve = {start(spec(true, false), s_argv_plain, &code, s_out, s_err), -1};
    if (!serve.daemon)
        fail_msg("start failed (%d): %s", code, s_err);
    reload_seen_t seen = {0};
    vz_daemon_on_reload(serve.daemon, s_on_reload, &seen);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_serve_thread, &serve), 0);
    assert_int_equal(atomic_load(&seen.calls), 0);
    raise(SIGHUP);
    assert_true(s_wait_calls(&seen, 1));
    assert_true(pthread_equal(seen.thread, thread));
    raise(SIGHUP);
    assert_true(s_wait_calls(&seen, 2));
    assert_false(vz_daemon_reload_requested(serve.daemon));
    zsys_interrupted = 1;
    pthread_join(thread, NULL);
    zsys_interrupted = 0;
    vz_daemon_destroy(&serve.daemon);
}

static int s_until_reloaded(zloop_t *loop, int timer_id, void *arg)
{
    reload_seen_t *seen = arg;
    return atomic_load(&seen->calls) > 0 ? -1 : 0;
}

//  A daemon with a loop of its own (the broker) gets the hook by attaching.
static void test_reload_attach(void **state)
{
    int code;
    vz_daemon_t *d = start(spec(false, false), s_argv_plain, &code, s_out, s_err);
    assert_non_null(d);
    reload_seen_t seen = {0};
    vz_daemon_on_reload(d, s_on_reload, &seen);
    zloop_t *loop = zloop_new();
    assert_int_equal(vz_daemon_attach(d, loop), 0);
    zloop_timer(loop, 10, 0, s_until_reloaded, &seen);
    zloop_timer(loop, 5000, 1, s_until_reloaded, &(reload_seen_t){.calls = 1}); //  a bound
    raise(SIGHUP);
    zloop_start(loop);
    assert_int_equal(atomic_load(&seen.calls), 1);
    assert_true(pthread_equal(seen.thread, pthread_self()));
    zloop_destroy(&loop);
    vz_daemon_destroy(&d);
}

//  VZ_CLOCK_START: refused without VZ_CLOCK_TEST=1, else applied and logged.
static void test_clock_start(void **state)
{
    setenv("VZ_CLOCK_START", "2026-12-07T07:59:50Z", 1);
    static const char *const frags[] = {"VZ_CLOCK_START", "VZ_CLOCK_TEST", NULL};
    expect_fail(spec(false, false), s_argv_plain, VZ_EXIT_PERMANENT, frags);
    setenv("VZ_CLOCK_TEST", "1", 1);
    setenv("VZ_LOG_LEVEL", "warn", 1);
    int code;
    vz_daemon_t *d = start(spec(false, false), s_argv_plain, &code, s_out, s_err);
    if (!d)
        fail_msg("start failed (%d): %s", code, s_err);
    assert_non_null(strstr(s_err, "clock shifted for tests"));
    assert_non_null(strstr(s_err, "2026-12-07T07:59:50Z"));
    int64_t now = vz_clock_now_ms();
    assert_true(now >= 1796630390000LL && now < 1796630390000LL + 5000);
    vz_daemon_destroy(&d);
    vz_clock_test_reset();
}

static void test_serve_interrupted(void **state)
{
    //  No broker listens here; the loop is asked to stop before it runs,
    //  so serve must drain within the budget and report a clean exit.
    setenv("VZ_BROKER_ENDPOINTS", "tcp://127.0.0.1:9", 1);
    setenv("VZ_DRAIN_TIMEOUT_MS", "0", 1);
    int code;
    vz_daemon_t *d = start(spec(true, false), s_argv_plain, &code, s_out, s_err);
    if (!d)
        fail_msg("start failed (%d): %s", code, s_err);
    zsys_interrupted = 1;
    int rc = vz_daemon_serve(d, NULL, NULL, 0, 1, NULL);
    zsys_interrupted = 0;
    assert_int_equal(rc, VZ_EXIT_OK);
    char body[256];
    assert_int_equal(http_get(vz_admin_port(vz_daemon_admin(d)), "/readyz", body), 503);
    assert_non_null(strstr(body, "draining"));
    vz_daemon_destroy(&d);
}

static void *s_serve_thread(void *arg)
{
    serve_arg_t *serve = arg;
    serve->rc = vz_daemon_serve(serve->daemon, NULL, NULL, 0, 7, NULL);
    return NULL;
}

//  Start a worker daemon against a fake broker and return the credit its
//  RDY announced ("" when none came within 5 s).
static char s_rdy_direct[VZ_ENDPOINT_MAX]; //  the direct endpoint the last RDY announced
static char s_rdy_version[64]; //  the version frame of the last RDY serve_rdy_credit saw

static void serve_rdy_credit(char *credit, size_t n)
{
    zcert_t *cert = zcert_load(s_broker_secret);
    assert_non_null(cert);
    char allow[96];
    snprintf(allow, sizeof allow, "%s/public", s_dir);
    vz_auth_t *zap = vz_auth_new(allow);
    assert_non_null(zap);
    zsock_t *router = vz_curve_server(ZMQ_ROUTER, "tcp://127.0.0.1:*", cert);
    assert_non_null(router);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", vz_curve_bound_port(router));
    setenv("VZ_BROKER_ENDPOINTS", endpoint, 1);
    setenv("VZ_DRAIN_TIMEOUT_MS", "0", 1);
    int code;
    serve_arg_t serve = {start(spec(true, false), s_argv_plain, &code, s_out, s_err), -1};
    if (!serve.daemon)
        fail_msg("start failed (%d): %s", code, s_err);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_serve_thread, &serve), 0);

    credit[0] = '\0';
    zsock_set_rcvtimeo(router, 5000);
    zmsg_t *msg = zmsg_recv(router);
    s_rdy_version[0] = '\0';
    //  RDY service credit version (the build's or VZ_SERVICE_VERSION)
    //  direct-endpoint (VZ_DIRECT=auto, the broker local: the loopback).
    s_rdy_direct[0] = '\0';
    if (msg && zmsg_size(msg) == 6) {
        zframe_destroy(&(zframe_t *){zmsg_pop(msg)}); //  routing id
        char *cmd = zmsg_popstr(msg), *service = zmsg_popstr(msg), *text = zmsg_popstr(msg);
        char *version = zmsg_popstr(msg);
        assert_string_equal(cmd, VZ_CMD_READY);
        assert_string_equal(service, "echo");
        snprintf(credit, n, "%s", text);
        snprintf(s_rdy_version, sizeof s_rdy_version, "%s", version);
        char *direct = zmsg_popstr(msg);
        snprintf(s_rdy_direct, sizeof s_rdy_direct, "%s", direct);
        zstr_free(&direct);
        zstr_free(&version);
        zstr_free(&cmd);
        zstr_free(&service);
        zstr_free(&text);
    }
    zmsg_destroy(&msg);
    zsys_interrupted = 1; //  what SIGTERM does: the loop stops, serve drains
    pthread_join(thread, NULL);
    zsys_interrupted = 0;
    assert_int_equal(serve.rc, VZ_EXIT_OK);
    vz_daemon_destroy(&serve.daemon);
    zsock_destroy(&router);
    vz_auth_destroy(&zap);
    zcert_destroy(&cert);
}

static void test_serve_credit(void **state)
{
    char credit[16];
    //  The service's own default reaches the broker...
    serve_rdy_credit(credit, sizeof credit);
    assert_string_equal(credit, "7");
    assert_true(vz_broker_endpoint_valid(s_rdy_direct));
    assert_int_equal(strncmp(s_rdy_direct, "tcp://127.0.0.1:", 16), 0);
    //  ...unless the operator overrides it.
    setup(state);
    setenv("VZ_WORKER_CREDIT", "40", 1);
    serve_rdy_credit(credit, sizeof credit);
    assert_string_equal(credit, "40");
    //  The worker announces its version: the build's, or VZ_SERVICE_VERSION.
    assert_true(s_rdy_version[0] != '\0');
    setup(state);
    setenv("VZ_SERVICE_VERSION", "1.4.0-rc.1", 1);
    serve_rdy_credit(credit, sizeof credit);
    assert_string_equal(s_rdy_version, "1.4.0-rc.1");
    //  Out of range is a configuration error naming the setting.
    setup(state);
    static const char *const range[] = {"VZ_WORKER_CREDIT", "0..1000", NULL};
    setenv("VZ_WORKER_CREDIT", "1001", 1);
    expect_fail(spec(true, false), s_argv_plain, VZ_EXIT_PERMANENT, range);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (ut_tempdir(s_dir, sizeof s_dir, "test-daemon") != 0)
        return 1;
    if (vz_curve_keygen(s_dir, "echo") < 0 || vz_curve_keygen(s_dir, "broker") < 0) {
        fprintf(stderr, "vz_curve_keygen failed in %s\n", s_dir);
        return 1;
    }
    snprintf(s_cert, sizeof s_cert, "%s/secret/echo.key", s_dir);
    snprintf(s_public, sizeof s_public, "%s/public/echo.key", s_dir);
    snprintf(s_broker_public, sizeof s_broker_public, "%s/public/broker.key", s_dir);
    snprintf(s_broker_secret, sizeof s_broker_secret, "%s/secret/broker.key", s_dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_start_ready_notify, setup),
        cmocka_unit_test_setup(test_help, setup),
        cmocka_unit_test_setup(test_config_errors, setup),
        cmocka_unit_test_setup(test_config_file, setup),
        cmocka_unit_test_setup(test_key_by_fd, setup),
        cmocka_unit_test_setup(test_key_errors, setup),
        cmocka_unit_test_setup(test_admin_busy, setup),
        cmocka_unit_test_setup(test_sighup, setup),
        cmocka_unit_test_setup(test_serve_interrupted, setup),
        cmocka_unit_test_setup(test_serve_credit, setup),
        cmocka_unit_test_setup(test_needs_redis, setup),
        cmocka_unit_test_setup(test_reload_hook, setup),
        cmocka_unit_test_setup(test_reload_attach, setup),
        cmocka_unit_test_setup(test_clock_start, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (ut_rmtree(s_dir) != 0 && rc == 0)
        rc = 1;
    curl_global_cleanup();
    return rc;
}
