/*  test_admin - vz_admin: routes, readiness, metrics, errors, bind failure (libcurl client)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_admin.h"

//  A bounded text buffer curl appends to; what does not fit is dropped.
typedef struct {
    char *text; //  NUL-terminated
    size_t cap; //  bytes at text
    size_t len; //  bytes used
} sink_t;

typedef struct {
    long status;
    char body[65536];
    char headers[4096];
    sink_t body_sink;   //  over body
    sink_t header_sink; //  over headers
    long connects;
} reply_t;

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    sink_t *sink = arg;
    size_t len = size * n;
    if (sink->len + len < sink->cap) {
        memcpy(sink->text + sink->len, data, len);
        sink->len += len;
        sink->text[sink->len] = '\0';
    }
    return len;
}

//  One request on curl handle (reused when given, to test keep-alive).
static void request(CURL *curl, const char *method, int port, const char *path, const char *body,
                    reply_t *r)
{
    memset(r, 0, sizeof *r);
    r->body_sink = (sink_t){r->body, sizeof r->body, 0};
    r->header_sink = (sink_t){r->headers, sizeof r->headers, 0};
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r->body_sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r->header_sink);
    bool head = strcmp(method, "HEAD") == 0;
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_NOBODY, head ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, head ? NULL : method);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &r->connects);
}

static bool has_header(const reply_t *r, const char *line)
{
    return strcasestr(r->headers, line) != NULL;
}

static void test_routes(void **state)
{
    vz_metrics_t *m = vz_metrics_new();
    vz_series_inc(vz_metrics_counter(m, "vz_admin_test_total", "Test counter.", NULL));
    vz_admin_t *admin = vz_admin_new("127.0.0.1", 0, m);
    assert_non_null(admin);
    int port = vz_admin_port(admin);
    assert_true(port > 0 && port < 65536);
    CURL *curl = curl_easy_init();
    reply_t r;

    request(curl, "GET", port, "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    assert_true(has_header(&r, "Content-Type: application/json"));
    //  Second request on the same connection: the server kept it open.
    request(curl, "GET", port, "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.connects, 0);

    assert_false(vz_admin_ready(admin));
    request(curl, "GET", port, "/readyz", NULL, &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"status\":\"not_ready\",\"reason\":\"starting\"}");
    vz_admin_set_ready(admin, false, "broker \"b1\" unreachable\n");
    request(curl, "GET", port, "/readyz", NULL, &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(
        r.body, "{\"status\":\"not_ready\",\"reason\":\"broker \\\"b1\\\" unreachable\\n\"}");
    vz_admin_set_ready(admin, true, NULL);
    assert_true(vz_admin_ready(admin));
    request(curl, "GET", port, "/readyz", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ready\"}");
    vz_admin_set_ready(admin, false, NULL);
    request(curl, "GET", port, "/readyz", NULL, &r);
    assert_int_equal(r.status, 503);

    request(curl, "GET", port, "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "\nvz_admin_test_total 1\n"));

    request(curl, "GET", port, "/nope?x=1", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"error\":\"not_found\"}");
    request(curl, "GET", port, "/healthz/", NULL, &r);
    assert_int_equal(r.status, 404);

    request(curl, "DELETE", port, "/healthz", NULL, &r);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "Allow: GET, HEAD"));
    assert_non_null(strstr(r.body, "method_not_allowed"));
    request(curl, "POST", port, "/metrics", "some=body&more=data", &r);
    assert_int_equal(r.status, 405);
    //  A POST to an unknown path is 404: the path is checked first.
    request(curl, "POST", port, "/other", "x", &r);
    assert_int_equal(r.status, 404);

    request(curl, "HEAD", port, "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_sink.len, 0);

    curl_easy_cleanup(curl);
    vz_admin_destroy(&admin);
    assert_null(admin);
    vz_admin_destroy(&admin);
    vz_metrics_destroy(&m);
}

static void test_bind_failure(void **state)
{
    vz_metrics_t *m = vz_metrics_new();
    vz_admin_t *first = vz_admin_new("127.0.0.1", 0, m);
    assert_non_null(first);
    errno = 0;
    vz_admin_t *second = vz_admin_new("127.0.0.1", vz_admin_port(first), m);
    assert_null(second);
    assert_int_not_equal(errno, 0);
    assert_null(vz_admin_new("not an address", 0, m));
    assert_int_equal(errno, EINVAL);
    assert_null(vz_admin_new("127.0.0.1", 70000, m));
    assert_int_equal(errno, EINVAL);
    vz_admin_destroy(&first);
    vz_metrics_destroy(&m);
}

static void test_parallel_clients(void **state)
{
    //  Several connections at once, one held idle: the others still answer.
    vz_metrics_t *m = vz_metrics_new();
    vz_admin_t *admin = vz_admin_new("localhost", 0, m);
    assert_non_null(admin);
    int port = vz_admin_port(admin);
    CURL *idle = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    curl_easy_setopt(idle, CURLOPT_URL, url);
    curl_easy_setopt(idle, CURLOPT_CONNECT_ONLY, 1L);
    assert_int_equal(curl_easy_perform(idle), CURLE_OK);
    for (int i = 0; i < 20; i++) {
        CURL *curl = curl_easy_init();
        reply_t r;
        request(curl, "GET", port, "/healthz", NULL, &r);
        assert_int_equal(r.status, 200);
        curl_easy_cleanup(curl);
    }
    curl_easy_cleanup(idle);
    vz_admin_destroy(&admin);
    vz_metrics_destroy(&m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_bind_failure),
        cmocka_unit_test(test_parallel_clients),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
