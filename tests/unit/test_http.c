/*  test_http - vz_http against the scripted fake server (tests/integration/fake_http)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Each test drives one zloop with a 5 ms ticker that ends the run when the
 *  test's condition holds (or a generous deadline passes) and records the
 *  longest gap between ticks, so a client that blocked the loop is seen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fake_http.h"
#include "vz_http.h"

#define RESULTS_MAX 8
#define RUN_MS 15000 //  a run's deadline: far beyond any expected wait

typedef struct {
    int rc;
    long status;
    int attempts;
    double seconds;
    char error[1024];
    char url[512];
    char body[256];
    size_t body_len;
    char x_test[64];
} result_t;

typedef struct ctx_t ctx_t;
typedef bool(cond_fn)(ctx_t *ctx);

struct ctx_t {
    zloop_t *loop;
    vz_metrics_t *metrics;
    vz_http_config_t cfg;
    vz_http_t *http;
    fake_http_t *srv;
    result_t results[RESULTS_MAX];
    int done;          //  results collected
    int want;          //  results that end the run (s_until_done)
    cond_fn *cond;     //  what ends the current run
    int64_t deadline;  //  monotonic ms the run gives up at
    int64_t last_tick; //  previous tick, monotonic ms
    int64_t max_gap;   //  longest gap between ticks in this run
    int ticks;         //  ticks in this run
    int resubmit_rc;   //  what vz_http_request said from a canceled call's callback
};

static void s_on_done(const vz_http_response_t *r, void *arg)
{
    ctx_t *ctx = arg;
    assert_true(ctx->done < RESULTS_MAX);
    result_t *out = &ctx->results[ctx->done++];
    out->rc = r->rc;
    out->status = r->status;
    out->attempts = r->attempts;
    out->seconds = r->seconds;
    snprintf(out->error, sizeof out->error, "%s", r->error);
    snprintf(out->url, sizeof out->url, "%s", r->url);
    out->body_len = r->body_len;
    snprintf(out->body, sizeof out->body, "%s", (const char *)r->body);
    const char *x_test = vz_http_response_header(r, "x-test");
    snprintf(out->x_test, sizeof out->x_test, "%s", x_test ? x_test : "");
    if (r->rc == VZ_HTTP_ECANCELED) {
        //  A caller that tries again while the client goes away is refused.
        vz_http_request_t again = {.url = r->url, .done = s_on_done, .arg = ctx};
        ctx->resubmit_rc = vz_http_request(ctx->http, &again);
    }
}

static int s_tick(zloop_t *loop, int timer_id, void *arg)
{
    ctx_t *ctx = arg;
    int64_t now = zclock_mono();
    if (ctx->last_tick && now - ctx->last_tick > ctx->max_gap)
        ctx->max_gap = now - ctx->last_tick;
    ctx->last_tick = now;
    ctx->ticks++;
    return ctx->cond(ctx) || now > ctx->deadline ? -1 : 0;
}

static bool s_until_done(ctx_t *ctx)
{
    return ctx->done >= ctx->want;
}

//  Run the loop until cond holds; fail the test if it never does.
static void s_run(ctx_t *ctx, cond_fn *cond)
{
    ctx->cond = cond;
    ctx->deadline = zclock_mono() + RUN_MS;
    ctx->last_tick = 0;
    ctx->max_gap = 0;
    ctx->ticks = 0;
    int timer = zloop_timer(ctx->loop, 5, 0, s_tick, ctx);
    assert_true(timer >= 0);
    zloop_start(ctx->loop);
    //  The loop has stopped: CZMQ removes the timer at once.
    zloop_timer_end(ctx->loop, timer);
    assert_true(cond(ctx));
}

//  Submit req (done and arg filled in) and run until it completes.
static result_t *s_call(ctx_t *ctx, vz_http_request_t req)
{
    req.done = s_on_done;
    req.arg = ctx;
    assert_int_equal(vz_http_request(ctx->http, &req), 0);
    ctx->want = ctx->done + 1;
    s_run(ctx, s_until_done);
    return &ctx->results[ctx->done - 1];
}

static void s_start_client(ctx_t *ctx)
{
    char err[256];
    ctx->http = vz_http_new(ctx->loop, &ctx->cfg, ctx->metrics, err, sizeof err);
    if (!ctx->http)
        fail_msg("vz_http_new: %s", err);
}

static int s_setup_with(void **state, bool tls)
{
    ctx_t *ctx = calloc(1, sizeof *ctx);
    ctx->loop = zloop_new();
    ctx->metrics = vz_metrics_new();
    ctx->srv = fake_http_new(tls);
    if (!ctx->srv)
        return -1;
    vz_http_config_init(&ctx->cfg);
    ctx->cfg.backoff_ms = 10;
    ctx->cfg.backoff_max_ms = 20;
    if (tls)
        snprintf(ctx->cfg.ca_file, sizeof ctx->cfg.ca_file, "%s", fake_http_ca_file(ctx->srv));
    *state = ctx;
    return 0;
}

static int s_setup(void **state)
{
    return s_setup_with(state, false);
}

static int s_setup_tls(void **state)
{
    return s_setup_with(state, true);
}

static int s_teardown(void **state)
{
    ctx_t *ctx = *state;
    vz_http_destroy(&ctx->http);
    fake_http_destroy(&ctx->srv);
    vz_metrics_destroy(&ctx->metrics);
    zloop_destroy(&ctx->loop);
    free(ctx);
    return 0;
}

//  base + path, in a static buffer (one at a time is enough here).
static const char *s_url(ctx_t *ctx, const char *path)
{
    static char url[256];
    snprintf(url, sizeof url, "%s%s", fake_http_base(ctx->srv), path);
    return url;
}

//  A loopback port nobody listens on.
static int s_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

static void expect_header(const fake_http_request_t *req, const char *name, const char *value)
{
    char *got = fake_http_request_header(req, name);
    if (value)
        assert_string_equal(got ? got : "(none)", value);
    else if (got)
        fail_msg("header %s present: %s", name, got);
    free(got);
}

//  ---------------------------------------------------------------------

static void test_plain_get_and_post(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    assert_null(vz_http_warning(ctx->http));
    fake_http_reply_t hello = {
        .status = 200, .headers = "X-Test: yes\r\n", .body = "hello", .body_len = 5};
    fake_http_script(ctx->srv, &hello);
    fake_http_script_status(ctx->srv, 201, "{\"id\":1}");

    const char *const headers[] = {"Accept: text/plain", NULL};
    result_t *r =
        s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/hello?x=1"), .headers = headers});
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "hello");
    assert_string_equal(r->x_test, "yes");
    assert_int_equal(r->attempts, 1);
    assert_string_equal(r->error, "");

    const char *const json[] = {"Content-Type: application/json", NULL};
    const char body[] = "{\"amount\":42}";
    r = s_call(ctx, (vz_http_request_t){.method = "POST",
                                        .url = s_url(ctx, "/v1/things"),
                                        .headers = json,
                                        .body = body,
                                        .body_len = strlen(body)});
    assert_int_equal(r->status, 201);
    assert_string_equal(r->body, "{\"id\":1}");

    //  HEAD: the length is announced, no body comes.
    fake_http_script_status(ctx->srv, 200, "not sent");
    r = s_call(ctx, (vz_http_request_t){.method = "HEAD", .url = s_url(ctx, "/hello")});
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 0);

    assert_int_equal(fake_http_count(ctx->srv), 3);
    assert_string_equal(fake_http_request(ctx->srv, 2)->method, "HEAD");
    const fake_http_request_t *get = fake_http_request(ctx->srv, 0);
    assert_string_equal(get->method, "GET");
    assert_string_equal(get->target, "/hello?x=1");
    expect_header(get, "Accept", "text/plain");
    const fake_http_request_t *post = fake_http_request(ctx->srv, 1);
    assert_string_equal(post->method, "POST");
    assert_string_equal((const char *)post->body, body);
    expect_header(post, "Content-Type", "application/json");
    expect_header(post, "Expect", NULL);
    //  No Idempotency-Key unless asked for.
    expect_header(post, "Idempotency-Key", NULL);
}

static void test_tls_trusted_ca(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    fake_http_script_status(ctx->srv, 200, "secure");
    result_t *r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/tls")});
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "secure");
}

static void test_tls_unknown_ca(void **state)
{
    ctx_t *ctx = *state;
    //  Trust another test CA than the one that signed the server.
    fake_http_t *other = fake_http_new(true);
    assert_non_null(other);
    snprintf(ctx->cfg.ca_file, sizeof ctx->cfg.ca_file, "%s", fake_http_ca_file(other));
    s_start_client(ctx);
    result_t *r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/tls")});
    assert_int_equal(r->rc, VZ_HTTP_ETLS);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->attempts, 1); //  never retried
    assert_non_null(strstr(r->error, "certificate"));
    //  The system store does not know the test CA either.
    vz_http_destroy(&ctx->http);
    ctx->cfg.ca_file[0] = '\0';
    s_start_client(ctx);
    r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/tls")});
    assert_int_equal(r->rc, VZ_HTTP_ETLS);
    assert_int_equal(fake_http_count(ctx->srv), 0);
    //  Only the explicit setting turns verification off, and says so.
    vz_http_destroy(&ctx->http);
    ctx->cfg.insecure = true;
    s_start_client(ctx);
    assert_non_null(vz_http_warning(ctx->http));
    fake_http_script_status(ctx->srv, 200, "unverified");
    r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/tls")});
    assert_int_equal(r->status, 200);
    fake_http_destroy(&other);
}

static void test_bad_ca_file(void **state)
{
    ctx_t *ctx = *state;
    snprintf(ctx->cfg.ca_file, sizeof ctx->cfg.ca_file, "/nonexistent/ca.pem");
    char err[256];
    assert_null(vz_http_new(ctx->loop, &ctx->cfg, NULL, err, sizeof err));
    assert_non_null(strstr(err, "VZ_HTTP_CA_FILE"));
}

static void test_connect_refused(void **state)
{
    ctx_t *ctx = *state;
    ctx->cfg.max_attempts = 2;
    s_start_client(ctx);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", s_closed_port());
    result_t *r = s_call(ctx, (vz_http_request_t){.url = url});
    assert_int_equal(r->rc, VZ_HTTP_ECONNECT);
    assert_int_equal(r->attempts, 2);
    assert_non_null(strstr(r->error, "(after 2 attempts)"));
    //  A POST is not retried after a connect error either.
    r = s_call(ctx, (vz_http_request_t){.method = "POST", .url = url});
    assert_int_equal(r->rc, VZ_HTTP_ECONNECT);
    assert_int_equal(r->attempts, 1);
}

static void test_total_timeout(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    fake_http_reply_t slow = {.status = 200, .delay_ms = 3000};
    fake_http_script(ctx->srv, &slow);
    result_t *r = s_call(
        ctx, (vz_http_request_t){.url = s_url(ctx, "/slow"), .timeout_ms = 300, .max_attempts = 1});
    assert_int_equal(r->rc, VZ_HTTP_ETIMEOUT);
    assert_true(r->seconds < 2.5); //  gave up well before the server answered
    assert_non_null(strstr(r->error, "no complete response"));
}

static void test_loop_stays_responsive(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    fake_http_reply_t slow = {.status = 200, .body = "late", .body_len = 4, .delay_ms = 1000};
    fake_http_script(ctx->srv, &slow);
    result_t *r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/slow")});
    assert_int_equal(r->status, 200);
    //  The 5 ms ticker kept running while the answer was a second away: a
    //  client that blocked would leave one gap of about a second (the bound
    //  leaves room for a loaded machine).
    assert_true(ctx->ticks >= 20);
    if (ctx->max_gap > 600)
        fail_msg("the loop stalled for %lld ms", (long long)ctx->max_gap);
}

static void test_size_limit(void **state)
{
    ctx_t *ctx = *state;
    ctx->cfg.max_response = 1000;
    s_start_client(ctx);
    static char big[5000];
    memset(big, 'x', sizeof big);
    //  Declared too big, sent without a length, and exactly at the limit.
    fake_http_reply_t declared = {.status = 200, .body = big, .body_len = sizeof big};
    fake_http_reply_t streamed = {
        .status = 200, .body = big, .body_len = sizeof big, .action = FAKE_HTTP_CLOSE};
    fake_http_reply_t exact = {.status = 200, .body = big, .body_len = 1000};
    fake_http_script(ctx->srv, &declared);
    fake_http_script(ctx->srv, &streamed);
    fake_http_script(ctx->srv, &exact);
    result_t *r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/big")});
    assert_int_equal(r->rc, VZ_HTTP_ETOOBIG);
    assert_non_null(strstr(r->error, "larger than 1000 bytes"));
    assert_int_equal(r->body_len, 0);
    r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/big")});
    assert_int_equal(r->rc, VZ_HTTP_ETOOBIG);
    r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/big")});
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->body_len, 1000);
    assert_int_equal(fake_http_count(ctx->srv), 3); //  a size error is not retried
}

static void test_retry_after_seconds(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    fake_http_reply_t busy = {.status = 503, .headers = "Retry-After: 1\r\n"};
    fake_http_script(ctx->srv, &busy);
    fake_http_script_status(ctx->srv, 200, "done");
    result_t *r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/r")});
    assert_int_equal(r->status, 200);
    assert_int_equal(r->attempts, 2);
    assert_int_equal(fake_http_count(ctx->srv), 2);
    //  The backoff alone is at most 20 ms: the second second came from Retry-After.
    int64_t gap = fake_http_request(ctx->srv, 1)->at_ms - fake_http_request(ctx->srv, 0)->at_ms;
    assert_true(gap >= 950);
}

static void test_retry_after_date(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    //  An HTTP-date two seconds ahead (whole seconds: at least one second away).
    time_t when = time(NULL) + 2;
    char headers[128];
    strftime(headers, sizeof headers, "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", gmtime(&when));
    fake_http_reply_t limited = {.status = 429, .headers = headers};
    fake_http_script(ctx->srv, &limited);
    fake_http_script_status(ctx->srv, 200, "ok");
    const char key[] = "order-42";
    result_t *r = s_call(ctx, (vz_http_request_t){.method = "POST",
                                                  .url = s_url(ctx, "/charge"),
                                                  .body = "a=1",
                                                  .body_len = 3,
                                                  .idempotency_key = key});
    assert_int_equal(r->status, 200);
    assert_int_equal(r->attempts, 2);
    int64_t gap = fake_http_request(ctx->srv, 1)->at_ms - fake_http_request(ctx->srv, 0)->at_ms;
    assert_true(gap >= 900);
    //  Both attempts carry the same key, so the server can de-duplicate.
    expect_header(fake_http_request(ctx->srv, 0), "Idempotency-Key", key);
    expect_header(fake_http_request(ctx->srv, 1), "Idempotency-Key", key);
}

static void test_retry_after_beyond_budget(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    fake_http_reply_t busy = {.status = 503, .headers = "Retry-After: 120\r\n"};
    fake_http_script(ctx->srv, &busy);
    result_t *r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/r"), .budget_ms = 5000});
    //  Waiting would overrun the budget: the caller gets the 503 at once.
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->status, 503);
    assert_int_equal(r->attempts, 1);
    assert_true(r->seconds < 4.0);
}

static void test_retries_capped(void **state)
{
    ctx_t *ctx = *state;
    ctx->cfg.max_attempts = 3;
    s_start_client(ctx);
    for (int i = 0; i < 3; i++)
        fake_http_script_status(ctx->srv, 500, "boom");
    result_t *r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/r")});
    assert_int_equal(r->status, 500);
    assert_int_equal(r->attempts, 3);
    assert_int_equal(fake_http_count(ctx->srv), 3);
    //  501 means "never": not retried.
    fake_http_script_status(ctx->srv, 501, NULL);
    r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/r")});
    assert_int_equal(r->status, 501);
    assert_int_equal(r->attempts, 1);
}

static void test_post_not_retried(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    fake_http_script_status(ctx->srv, 503, "busy");
    fake_http_script_status(ctx->srv, 200, "second");
    result_t *r = s_call(
        ctx,
        (vz_http_request_t){.method = "POST", .url = s_url(ctx, "/p"), .body = "x", .body_len = 1});
    assert_int_equal(r->status, 503);
    assert_int_equal(r->attempts, 1);
    assert_int_equal(vz_http_pending(ctx->http), 0);
    assert_int_equal(fake_http_count(ctx->srv), 1);
    //  PATCH neither; a caller that vouches for it may be retried.
    r = s_call(ctx,
               (vz_http_request_t){.method = "PATCH", .url = s_url(ctx, "/p"), .idempotent = true});
    assert_int_equal(r->status, 200);
    assert_string_equal(fake_http_request(ctx->srv, 1)->method, "PATCH");
}

static void test_reset(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    fake_http_reply_t reset = {.action = FAKE_HTTP_RESET};
    fake_http_script(ctx->srv, &reset);
    result_t *r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/x"), .max_attempts = 1});
    assert_int_equal(r->rc, VZ_HTTP_ERESET);
    assert_int_equal(r->status, 0);
    //  An idempotent call gets another go on a new connection.
    fake_http_script(ctx->srv, &reset);
    fake_http_script_status(ctx->srv, 200, "again");
    r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/x")});
    assert_int_equal(r->status, 200);
    assert_int_equal(r->attempts, 2);
    assert_string_equal(r->body, "again");
}

static void test_connection_reuse(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    for (int i = 0; i < 4; i++) {
        fake_http_script_status(ctx->srv, 200, "same");
        result_t *r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/keep")});
        assert_int_equal(r->status, 200);
    }
    assert_int_equal(fake_http_connections(ctx->srv), 1);
    assert_int_equal(fake_http_request(ctx->srv, 3)->connection, 1);
    //  The server's wait: met at once, or not within its timeout.
    assert_true(fake_http_wait(ctx->srv, 4, 0));
    assert_false(fake_http_wait(ctx->srv, 5, 50));
}

static void test_tls_connection_reuse(void **state)
{
    test_connection_reuse(state);
}

static void test_redaction(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    char url[256];
    snprintf(url, sizeof url, "http://alice:s3cr3t@127.0.0.1:%d/v1/x?token=abc123&sk_live_q",
             s_closed_port());
    const char *const headers[] = {"Authorization: Bearer sk_live_42", NULL};
    result_t *r =
        s_call(ctx, (vz_http_request_t){.url = url, .headers = headers, .max_attempts = 1});
    assert_int_equal(r->rc, VZ_HTTP_ECONNECT);
    const char *secrets[] = {"alice", "s3cr3t", "abc123", "sk_live"};
    for (size_t i = 0; i < 4; i++) {
        assert_null(strstr(r->url, secrets[i]));
        assert_null(strstr(r->error, secrets[i]));
    }
    assert_non_null(strstr(r->url, "/v1/x?token=***&***"));
    assert_non_null(strstr(r->error, "GET http://127.0.0.1:"));

    //  The credentials still reach the server: userinfo as Basic auth.
    fake_http_script_status(ctx->srv, 200, NULL);
    snprintf(url, sizeof url, "http://alice:s3cr3t@127.0.0.1:%d/hook", fake_http_port(ctx->srv));
    r = s_call(ctx, (vz_http_request_t){.url = url, .secret_path = true});
    assert_int_equal(r->status, 200);
    expect_header(fake_http_request(ctx->srv, 0), "Authorization", "Basic YWxpY2U6czNjcjN0");
    assert_null(strstr(r->url, "hook"));
    assert_null(strstr(r->url, "alice"));

    char out[128];
    assert_string_equal(
        vz_http_redact_url("https://hooks.slack.com/services/T0/B0/XYZ", true, out, sizeof out),
        "https://hooks.slack.com/***");
    assert_string_equal(vz_http_redact_url("no url", false, out, sizeof out), "(invalid url)");
    assert_string_equal(vz_http_redact_header("Authorization: Bearer x", out, sizeof out),
                        "Authorization: ***");
    assert_string_equal(vz_http_redact_header("X-Api-Key: k", out, sizeof out), "X-Api-Key: ***");
    assert_string_equal(vz_http_redact_header("Stripe-Signature: t=1,v1=ab", out, sizeof out),
                        "Stripe-Signature: ***");
    assert_string_equal(vz_http_redact_header("Cookie: a=b", out, sizeof out), "Cookie: ***");
    assert_string_equal(vz_http_redact_header("Idempotency-Key: k1", out, sizeof out),
                        "Idempotency-Key: k1");
    assert_string_equal(vz_http_redact_header("Content-Type: text/plain", out, sizeof out),
                        "Content-Type: text/plain");
}

//  The rendered metrics hold this series line (formatted), whole.
static void expect_series(const char *text, const char *format, ...)
{
    char line[256];
    va_list args;
    va_start(args, format);
    vsnprintf(line + 1, sizeof line - 2, format, args);
    va_end(args);
    line[0] = '\n';
    strcat(line, "\n");
    if (!strstr(text, line))
        fail_msg("series not found:%s--- in ---\n%s", line, text);
}

static void test_metrics(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    fake_http_script_status(ctx->srv, 200, "a");
    fake_http_script_status(ctx->srv, 404, "b");
    fake_http_script_status(ctx->srv, 503, "c");
    fake_http_script_status(ctx->srv, 200, "d");
    s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/m")});
    s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/m")});
    s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/m"), .metrics_host = "stripe"});
    char url[128];
    int closed = s_closed_port();
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", closed);
    s_call(ctx, (vz_http_request_t){.url = url, .max_attempts = 1});

    char *text = vz_metrics_render(ctx->metrics);
    int port = fake_http_port(ctx->srv);
    const char *requests = "vz_http_client_requests_total{host=\"%s\",class=\"%s\"} 1";
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    expect_series(text, requests, host, "2xx");
    expect_series(text, requests, host, "4xx");
    expect_series(text, "vz_http_client_request_duration_seconds_count{host=\"%s\"} 2", host);
    //  The labelled call: a 503, one retry, then the 200.
    expect_series(text, requests, "stripe", "5xx");
    expect_series(text, requests, "stripe", "2xx");
    expect_series(text, "vz_http_client_retries_total{host=\"stripe\"} 1");
    snprintf(host, sizeof host, "127.0.0.1:%d", closed);
    expect_series(text, requests, host, "error");
    free(text);
}

static void test_proxy_env(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    //  http_proxy: the request arrives at the proxy with an absolute URI.
    fake_http_script_status(ctx->srv, 200, "via proxy");
    setenv("http_proxy", fake_http_base(ctx->srv), 1);
    result_t *r = s_call(ctx, (vz_http_request_t){.url = "http://api.example.invalid/v1/x"});
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "via proxy");
    assert_string_equal(fake_http_request(ctx->srv, 0)->target, "http://api.example.invalid/v1/x");
    //  NO_PROXY: a listed host is reached directly, the proxy is not asked.
    char dead_proxy[64];
    snprintf(dead_proxy, sizeof dead_proxy, "http://127.0.0.1:%d", s_closed_port());
    setenv("http_proxy", dead_proxy, 1);
    setenv("NO_PROXY", "localhost,127.0.0.0/8", 1);
    fake_http_script_status(ctx->srv, 200, "direct");
    r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/direct")});
    assert_int_equal(r->status, 200);
    assert_string_equal(fake_http_request(ctx->srv, 1)->target, "/direct");
    //  Without it the dead proxy is used, and fails.
    unsetenv("NO_PROXY");
    r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/direct"), .max_attempts = 1});
    assert_int_equal(r->rc, VZ_HTTP_ECONNECT);
    //  Upper-case HTTP_PROXY is not read for http URLs (curl's httpoxy guard).
    unsetenv("http_proxy");
    setenv("HTTP_PROXY", dead_proxy, 1);
    fake_http_script_status(ctx->srv, 200, "direct");
    r = s_call(ctx, (vz_http_request_t){.url = s_url(ctx, "/direct")});
    assert_int_equal(r->status, 200);
    unsetenv("HTTP_PROXY");
}

static void test_bad_requests(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    vz_http_request_t req = {.url = "ftp://127.0.0.1/x", .done = s_on_done, .arg = ctx};
    assert_int_equal(vz_http_request(ctx->http, &req), -EINVAL);
    req.url = s_url(ctx, "/x");
    req.method = "get";
    assert_int_equal(vz_http_request(ctx->http, &req), -EINVAL);
    req.method = NULL;
    const char *const injected[] = {"X-A: 1\r\nX-B: 2", NULL};
    req.headers = injected;
    assert_int_equal(vz_http_request(ctx->http, &req), -EINVAL);
    req.headers = NULL;
    req.body_len = 10;
    assert_int_equal(vz_http_request(ctx->http, &req), -EINVAL);
    req.body_len = 0;
    req.done = NULL;
    assert_int_equal(vz_http_request(ctx->http, &req), -EINVAL);
    assert_int_equal(vz_http_pending(ctx->http), 0);
    assert_int_equal(ctx->done, 0);
}

typedef struct {
    int own;               //  a setting of the daemon's own
    vz_http_config_t http; //  the client's settings inside its config
} app_config_t;

static void test_config_rows(void **state)
{
    static const vz_cfg_item_t items[] = {
        VZ_HTTP_CFG_ITEMS(app_config_t, http),
        VZ_CFG_ITEM(app_config_t, "VZ_TEST_OWN", NULL, VZ_CFG_INT, "7", 0, 9, own, "own"),
    };
    assert_int_equal(sizeof items / sizeof *items, VZ_HTTP_CFG_COUNT + 1);
    //  The rows' defaults are vz_http_config_init's; the environment wins.
    setenv("VZ_HTTP_TIMEOUT_MS", "2s", 1);
    app_config_t cfg = {0};
    char err[256];
    assert_int_equal(vz_config_load(&cfg, items, VZ_HTTP_CFG_COUNT + 1, NULL, err, sizeof err), 0);
    unsetenv("VZ_HTTP_TIMEOUT_MS");
    vz_http_config_t defaults;
    vz_http_config_init(&defaults);
    assert_int_equal(cfg.http.timeout_ms, 2000);
    cfg.http.timeout_ms = defaults.timeout_ms;
    assert_memory_equal(&cfg.http, &defaults, sizeof defaults);
    assert_int_equal(cfg.own, 7);
}

static bool s_server_has_one(ctx_t *ctx)
{
    return fake_http_count(ctx->srv) >= 1;
}

static void test_destroy_cancels(void **state)
{
    ctx_t *ctx = *state;
    s_start_client(ctx);
    fake_http_reply_t slow = {.status = 200, .delay_ms = 10000};
    fake_http_script(ctx->srv, &slow);
    vz_http_request_t req = {.url = s_url(ctx, "/slow"), .done = s_on_done, .arg = ctx};
    assert_int_equal(vz_http_request(ctx->http, &req), 0);
    assert_int_equal(ctx->done, 0); //  never completes within the call
    s_run(ctx, s_server_has_one);
    vz_http_destroy(&ctx->http);
    assert_int_equal(ctx->done, 1);
    assert_int_equal(ctx->results[0].rc, VZ_HTTP_ECANCELED);
    assert_int_equal(ctx->resubmit_rc, -ECANCELED);
}

int main(void)
{
    //  Proxy variables from the environment would redirect every test.
    const char *proxies[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                             "all_proxy",  "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof *proxies; i++)
        unsetenv(proxies[i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_get_and_post, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tls_trusted_ca, s_setup_tls, s_teardown),
        cmocka_unit_test_setup_teardown(test_tls_unknown_ca, s_setup_tls, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_ca_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_total_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_loop_stays_responsive, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_seconds, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_date, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_beyond_budget, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_retries_capped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_post_not_retried, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reset, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_connection_reuse, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tls_connection_reuse, s_setup_tls, s_teardown),
        cmocka_unit_test_setup_teardown(test_redaction, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_metrics, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_proxy_env, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_cancels, s_setup, s_teardown),
        cmocka_unit_test(test_config_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
