/*  test_metrics - vz_metrics: exposition text, escaping, histograms, threads, promtool
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vz_metrics.h"

#include "ut.h"

#define PROMTOOL "/usr/bin/promtool"

static void expect_line(const char *text, const char *line)
{
    //  Match whole lines only, so "x 1" does not match "x 10".
    size_t len = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[len] == '\n')
            return;
    fail_msg("line not found: %s\n--- in ---\n%s", line, text);
}

static void test_render_basic(void **state)
{
    vz_metrics_t *m = vz_metrics_new();
    vz_series_t *req =
        vz_metrics_counter(m, "vz_requests_total", "Requests handled.", "service=echo,method=ping");
    vz_series_t *again =
        vz_metrics_counter(m, "vz_requests_total", "Requests handled.", "service=echo,method=ping");
    assert_ptr_equal(req, again);
    vz_series_t *other =
        vz_metrics_counter(m, "vz_requests_total", "Requests handled.", "service=echo,method=echo");
    assert_ptr_not_equal(req, other);
    vz_series_inc(req);
    vz_series_add(req, 2.5);
    vz_series_t *drops = vz_metrics_counter(m, "vz_dropped", "Dropped telemetry.", NULL);
    assert_ptr_equal(drops, vz_metrics_counter(m, "vz_dropped_total", "Dropped telemetry.", NULL));
    vz_series_inc(drops);
    vz_series_t *depth = vz_metrics_gauge(m, "vz_queue_depth", "Queued requests.", "service=echo");
    vz_series_set(depth, 7);
    vz_series_add(depth, -2);
    vz_series_inc(depth);
    assert_true(vz_series_value(depth) == 6.0);
    vz_series_t *big = vz_metrics_gauge(m, "vz_big", "A big and a small value.", "k=big");
    vz_series_set(big, 1e20);
    vz_series_set(vz_metrics_gauge(m, "vz_big", "A big and a small value.", "k=small"), 0.1);

    char *text = vz_metrics_render(m);
    expect_line(text, "# HELP vz_requests_total Requests handled.");
    expect_line(text, "# TYPE vz_requests_total counter");
    expect_line(text, "vz_requests_total{service=\"echo\",method=\"ping\"} 3.5");
    expect_line(text, "vz_requests_total{service=\"echo\",method=\"echo\"} 0");
    expect_line(text, "# TYPE vz_dropped_total counter");
    expect_line(text, "vz_dropped_total 1");
    expect_line(text, "# TYPE vz_queue_depth gauge");
    expect_line(text, "vz_queue_depth{service=\"echo\"} 6");
    expect_line(text, "vz_big{k=\"big\"} 1e+20");
    expect_line(text, "vz_big{k=\"small\"} 0.1");
    //  HELP and TYPE once per family.
    const char *first = strstr(text, "# TYPE vz_requests_total");
    assert_null(strstr(first + 1, "# TYPE vz_requests_total"));
    first = strstr(text, "# HELP vz_big");
    assert_null(strstr(first + 1, "# HELP vz_big"));
    free(text);
    vz_metrics_destroy(&m);
    assert_null(m);
    vz_metrics_destroy(&m);
}

static void test_escaping(void **state)
{
    vz_metrics_t *m = vz_metrics_new();
    vz_series_t *s = vz_metrics_gauge(m, "vz_escape_test", "Help with \\ backslash\nand newline.",
                                      "path=C:\\dir \"q\"\nx,empty=");
    vz_series_set(s, 1);
    char *text = vz_metrics_render(m);
    expect_line(text, "# HELP vz_escape_test Help with \\\\ backslash\\nand newline.");
    expect_line(text, "vz_escape_test{path=\"C:\\\\dir \\\"q\\\"\\nx\",empty=\"\"} 1");
    free(text);
    vz_metrics_destroy(&m);
}

static void test_histogram(void **state)
{
    vz_metrics_t *m = vz_metrics_new();
    static const double bounds[] = {0.1, 0.5, 1};
    vz_series_t *h = vz_metrics_histogram(m, "vz_latency_seconds", "Request latency.",
                                          "service=echo", bounds, 3);
    double values[] = {0.05, 0.1, 0.3, 0.3, 0.7, 5};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        vz_series_observe(h, values[i]);
    assert_true(vz_series_value(h) == 6.0);
    vz_series_t *d =
        vz_metrics_histogram(m, "vz_default_seconds", "Default buckets.", NULL, NULL, 0);
    vz_series_observe(d, 0.003);
    char *text = vz_metrics_render(m);
    expect_line(text, "# TYPE vz_latency_seconds histogram");
    expect_line(text, "vz_latency_seconds_bucket{service=\"echo\",le=\"0.1\"} 2");
    expect_line(text, "vz_latency_seconds_bucket{service=\"echo\",le=\"0.5\"} 4");
    expect_line(text, "vz_latency_seconds_bucket{service=\"echo\",le=\"1\"} 5");
    expect_line(text, "vz_latency_seconds_bucket{service=\"echo\",le=\"+Inf\"} 6");
    expect_line(text, "vz_latency_seconds_sum{service=\"echo\"} 6.45");
    expect_line(text, "vz_latency_seconds_count{service=\"echo\"} 6");
    expect_line(text, "vz_default_seconds_bucket{le=\"0.0025\"} 0");
    expect_line(text, "vz_default_seconds_bucket{le=\"0.005\"} 1");
    expect_line(text, "vz_default_seconds_bucket{le=\"10\"} 1");
    expect_line(text, "vz_default_seconds_bucket{le=\"+Inf\"} 1");
    expect_line(text, "vz_default_seconds_sum 0.003");
    expect_line(text, "vz_default_seconds_count 1");
    free(text);
    vz_metrics_destroy(&m);
}

#define THREADS 4
#define ROUNDS 100000

typedef struct {
    vz_metrics_t *m;
    vz_series_t *counter;
    vz_series_t *gauge;
} work_t;

static void *hammer(void *arg)
{
    work_t *w = arg;
    //  Lookups race too: every thread must get the same histogram.
    vz_series_t *h = vz_metrics_histogram(w->m, "vz_race_seconds", "Race.", "k=v", NULL, 0);
    for (int i = 0; i < ROUNDS; i++) {
        vz_series_inc(w->counter);
        vz_series_add(w->gauge, 0.5);
        vz_series_observe(h, (i % 2) ? 0.001 : 20);
    }
    return NULL;
}

static void test_threads(void **state)
{
    vz_metrics_t *m = vz_metrics_new();
    work_t w = {m, vz_metrics_counter(m, "vz_race_total", "Race.", NULL),
                vz_metrics_gauge(m, "vz_race_gauge", "Race.", NULL)};
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, hammer, &w), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    assert_true(vz_series_value(w.counter) == (double)THREADS * ROUNDS);
    assert_true(vz_series_value(w.gauge) == (double)THREADS * ROUNDS / 2);
    vz_series_t *h = vz_metrics_histogram(m, "vz_race_seconds", "Race.", "k=v", NULL, 0);
    assert_true(vz_series_value(h) == (double)THREADS * ROUNDS);
    char *text = vz_metrics_render(m);
    expect_line(text, "vz_race_total 400000");
    expect_line(text, "vz_race_seconds_bucket{k=\"v\",le=\"0.001\"} 200000");
    expect_line(text, "vz_race_seconds_bucket{k=\"v\",le=\"10\"} 200000");
    expect_line(text, "vz_race_seconds_count{k=\"v\"} 400000");
    free(text);
    vz_metrics_destroy(&m);
}

static void test_process(void **state)
{
    vz_metrics_t *m = vz_metrics_new();
    vz_metrics_enable_process(m);
    char *text = vz_metrics_render(m);
    expect_line(text, "# TYPE process_cpu_seconds_total counter");
    expect_line(text, "# TYPE process_resident_memory_bytes gauge");
    expect_line(text, "# TYPE process_start_time_seconds gauge");
    expect_line(text, "# TYPE process_open_fds gauge");
    double rss = 0, start = 0, fds = 0;
    const char *p = strstr(text, "\nprocess_resident_memory_bytes ");
    assert_non_null(p);
    rss = strtod(p + strlen("\nprocess_resident_memory_bytes "), NULL);
    p = strstr(text, "\nprocess_start_time_seconds ");
    assert_non_null(p);
    start = strtod(p + strlen("\nprocess_start_time_seconds "), NULL);
    p = strstr(text, "\nprocess_open_fds ");
    assert_non_null(p);
    fds = strtod(p + strlen("\nprocess_open_fds "), NULL);
    assert_true(rss > 100000);
    //  Started within the last day, by the wall clock.
    assert_true(start > (double)time(NULL) - 86400 && start <= (double)time(NULL) + 1);
    assert_true(fds >= 3);
    free(text);
    vz_metrics_destroy(&m);
}

static void test_promtool(void **state)
{
    if (access(PROMTOOL, X_OK) != 0)
        fail_msg(PROMTOOL " is missing: install the prometheus package (make test-deps)");
    vz_metrics_t *m = vz_metrics_new();
    vz_metrics_enable_process(m);
    vz_series_inc(
        vz_metrics_counter(m, "vz_requests", "Requests handled.", "service=echo,method=ping"));
    vz_series_set(vz_metrics_gauge(m, "vz_workers", "Ready workers.", "service=\"odd\\"), 3);
    vz_series_observe(
        vz_metrics_histogram(m, "vz_request_duration_seconds", "Latency.", "service=echo", NULL, 0),
        0.02);
    vz_metrics_histogram(m, "vz_request_duration_seconds", "Latency.", "service=idle", NULL, 0);
    char *text = vz_metrics_render(m);
    char path[256];
    assert_int_equal(ut_temp_file(path, sizeof path, "test-metrics", text), 0);
    char cmd[320];
    snprintf(cmd, sizeof cmd, PROMTOOL " check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[4096];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = '\0';
    int status = pclose(p);
    unlink(path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || len != 0)
        fail_msg("promtool check metrics failed (status %d):\n%s\n--- input ---\n%s", status, out,
                 text);
    free(text);
    vz_metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_basic), cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_histogram),    cmocka_unit_test(test_threads),
        cmocka_unit_test(test_process),      cmocka_unit_test(test_promtool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
