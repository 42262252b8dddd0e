/*  test_tl_report - vz_telemetry: histogram error bound, merge, snapshots, lost accounting
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vz_json.h"
#include "vz_telemetry.h"
#include "vz_telemetry_contract.h"

typedef struct {
    char *last;   //  the last body sent (heap)
    size_t sends; //  calls of the send function
    bool refuse;  //  answer -EAGAIN
} sink_t;

static int s_send(void *arg, const char *body, size_t len)
{
    sink_t *sink = arg;
    sink->sends++;
    if (sink->refuse)
        return -EAGAIN;
    free(sink->last);
    sink->last = strndup(body, len);
    return 0;
}

static uint64_t s_dropped(void *arg)
{
    return 42;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

//  Every quantile of a skewed sample is within VZ_TL_REL_ERROR of the exact
//  value at the same rank.
static void test_quantile_error(void **state)
{
    enum { N = 20000 };
    double *values = malloc(N * sizeof *values);
    vz_tl_hist_t *hist = calloc(1, sizeof *hist);
    unsigned seed = 7;
    for (int i = 0; i < N; i++) {
        //  Log-uniform from 50 us to 5 s, whole microseconds like real durations.
        double u = (double)rand_r(&seed) / RAND_MAX;
        values[i] = floor(50.0 * pow(1e5, u));
        vz_tl_hist_add(hist, values[i], 1);
    }
    qsort(values, N, sizeof *values, cmp_double);
    const double qs[] = {0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        size_t rank = (size_t)ceil(qs[k] * N);
        double exact = values[rank ? rank - 1 : 0];
        double est = vz_tl_hist_quantile(hist, qs[k]);
        assert_true(fabs(est - exact) <= VZ_TL_REL_ERROR * exact);
    }
    assert_int_equal(hist->count, N);
    free(values);
    free(hist);
}

static void test_bins_and_merge(void **state)
{
    assert_int_equal(vz_tl_bin(0), 0);
    assert_int_equal(vz_tl_bin(1), 0);
    assert_int_equal(vz_tl_bin(1.01), 1);
    assert_int_equal(vz_tl_bin(1e12), VZ_TL_BINS - 1);
    //  Every bin's value lies inside the bin, within the bound of its edges.
    for (int b = 1; b < VZ_TL_BINS; b++) {
        double v = vz_tl_bin_value(b);
        assert_int_equal(vz_tl_bin(v), b);
    }
    vz_tl_hist_t *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    vz_tl_hist_add(a, 100, 3);
    vz_tl_hist_add(b, 10000, 1);
    vz_tl_hist_merge(a, b);
    assert_int_equal(a->count, 4);
    assert_true(fabs(a->sum_us - 10300) < 1e-9);
    assert_true(fabs(vz_tl_hist_quantile(a, 0.5) - 100) <= 1);
    assert_true(fabs(vz_tl_hist_quantile(a, 1) - 10000) <= 100);
    vz_tl_hist_t empty = {0};
    assert_true(vz_tl_hist_quantile(&empty, 0.5) == 0);
    free(a);
    free(b);
}

static void test_snapshot(void **state)
{
    sink_t sink = {0};
    vz_telemetry_config_t config = {
        .service = "echo", .replica = 2, .send = s_send, .dropped = s_dropped, .arg = &sink};
    vz_telemetry_t *tl = vz_telemetry_new(&config);
    assert_non_null(tl);
    for (int i = 0; i < 10; i++)
        vz_telemetry_record(tl, "echo", NULL, 100 + i);
    vz_telemetry_record(tl, "echo", "invalid_request", 50);
    vz_telemetry_record(tl, "ping", "ok", 7);
    assert_int_equal(vz_telemetry_flush(tl, 1796630400000LL), 0);
    assert_int_equal(sink.sends, 1);

    vz_json_t *doc = vz_json_parse(sink.last, strlen(sink.last), NULL, NULL);
    assert_non_null(doc);
    const vz_json_value_t *root = vz_json_root(doc);
    int64_t n = 0;
    assert_string_equal(vz_json_get_string(root, "service", NULL), "echo");
    assert_int_equal(vz_json_int(vz_json_get(root, "replica"), &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(vz_json_int(vz_json_get(root, "dropped"), &n), 0);
    assert_int_equal(n, 42);
    assert_int_equal(vz_json_int(vz_json_get(root, "t"), &n), 0);
    assert_int_equal(n, 1796630400000LL);
    const vz_json_value_t *sat = vz_json_get(root, "sat");
    assert_int_equal(vz_json_int(vz_json_get(sat, "rss"), &n), 0);
    assert_true(n > 0);
    assert_int_equal(vz_json_int(vz_json_get(sat, "fds"), &n), 0);
    assert_true(n >= 3);
    const vz_json_value_t *series = vz_json_get(root, "series");
    assert_int_equal(vz_json_size(series), 2);
    const vz_json_value_t *echo = vz_json_at(series, 0);
    assert_string_equal(vz_json_get_string(echo, "name", NULL), "echo");
    assert_int_equal(vz_json_int(vz_json_get(echo, "count"), &n), 0);
    assert_int_equal(n, 11);
    const vz_json_value_t *codes = vz_json_get(echo, "codes");
    assert_int_equal(vz_json_int(vz_json_get(codes, "ok"), &n), 0);
    assert_int_equal(n, 10);
    assert_int_equal(vz_json_int(vz_json_get(codes, "invalid_request"), &n), 0);
    assert_int_equal(n, 1);
    //  The bins add up to the count.
    const vz_json_value_t *bins = vz_json_get(echo, "bins");
    int64_t total = 0;
    for (size_t i = 0; i < vz_json_size(bins); i++) {
        assert_int_equal(vz_json_int(vz_json_at(vz_json_at(bins, i), 1), &n), 0);
        total += n;
    }
    assert_int_equal(total, 11);
    vz_json_destroy(&doc);

    //  The next interval starts empty but still reports saturation.
    assert_int_equal(vz_telemetry_flush(tl, 1796630410000LL), 0);
    assert_non_null(strstr(sink.last, "\"series\":[]"));
    assert_non_null(strstr(sink.last, "\"seq\":1"));
    assert_int_equal(vz_telemetry_recorded(tl), 12);
    free(sink.last);
    vz_telemetry_destroy(&tl);
    assert_null(tl);
}

//  A snapshot that could not be sent is counted as lost and reported by the
//  next one that is, so recorded = delivered + lost holds at the sink.
static void test_lost(void **state)
{
    sink_t sink = {0};
    vz_telemetry_config_t config = {.service = "echo", .send = s_send, .arg = &sink};
    vz_telemetry_t *tl = vz_telemetry_new(&config);
    vz_telemetry_record(tl, "echo", NULL, 10);
    vz_telemetry_record(tl, "echo", NULL, 10);
    sink.refuse = true;
    assert_int_equal(vz_telemetry_flush(tl, 1000), -EAGAIN);
    vz_telemetry_record(tl, "echo", NULL, 10);
    assert_int_equal(vz_telemetry_flush(tl, 2000), -EAGAIN);
    assert_int_equal(vz_telemetry_lost(tl), 3);
    sink.refuse = false;
    vz_telemetry_record(tl, "echo", NULL, 10);
    assert_int_equal(vz_telemetry_flush(tl, 3000), 0);
    assert_non_null(strstr(sink.last, "\"lost\":3"));
    assert_non_null(strstr(sink.last, "\"count\":1"));
    assert_int_equal(vz_telemetry_flush(tl, 4000), 0);
    assert_non_null(strstr(sink.last, "\"lost\":0"));
    free(sink.last);
    vz_telemetry_destroy(&tl);
}

//  Names and codes past the table's bounds fold into "_other".
static void test_bounded(void **state)
{
    sink_t sink = {0};
    vz_telemetry_config_t config = {.service = "gateway", .send = s_send, .arg = &sink};
    vz_telemetry_t *tl = vz_telemetry_new(&config);
    char name[32];
    for (int i = 0; i < VZ_TL_SERIES + 10; i++) {
        snprintf(name, sizeof name, "route%d", i);
        vz_telemetry_record(tl, name, NULL, 10);
    }
    for (int i = 0; i < VZ_TL_CODES + 5; i++) {
        snprintf(name, sizeof name, "code%d", i);
        vz_telemetry_record(tl, "route0", name, 10);
    }
    assert_int_equal(vz_telemetry_flush(tl, 1000), 0);
    vz_json_t *doc = vz_json_parse(sink.last, strlen(sink.last), NULL, NULL);
    const vz_json_value_t *series = vz_json_get(vz_json_root(doc), "series");
    assert_int_equal(vz_json_size(series), VZ_TL_SERIES);
    const vz_json_value_t *other = vz_json_at(series, VZ_TL_SERIES - 1);
    assert_string_equal(vz_json_get_string(other, "name", NULL), "_other");
    int64_t n = 0;
    assert_int_equal(vz_json_int(vz_json_get(other, "count"), &n), 0);
    assert_int_equal(n, 11); //  route63 and the ten after it
    const vz_json_value_t *codes = vz_json_get(vz_json_at(series, 0), "codes");
    assert_int_equal(vz_json_size(codes), VZ_TL_CODES);
    assert_int_equal(vz_json_int(vz_json_get(codes, "_other"), &n), 0);
    assert_int_equal(n, 7); //  code14, whose slot became "_other", and the six after it
    vz_json_destroy(&doc);
    free(sink.last);
    vz_telemetry_destroy(&tl);
}

//  Distinct valid users once per snapshot; the bound counts the rest.
static void test_users(void **state)
{
    sink_t sink = {0};
    vz_telemetry_config_t config = {.service = "gateway", .send = s_send, .arg = &sink};
    vz_telemetry_t *tl = vz_telemetry_new(&config);
    vz_telemetry_user(tl, "u_1");
    vz_telemetry_user(tl, "u_1");
    vz_telemetry_user(tl, "u_2");
    vz_telemetry_user(tl, "bad\"user");
    vz_telemetry_user(tl, "");
    vz_telemetry_user(tl, NULL);
    assert_int_equal(vz_telemetry_flush(tl, 1000), 0);
    vz_json_t *doc = vz_json_parse(sink.last, strlen(sink.last), NULL, NULL);
    const vz_json_value_t *users = vz_json_get(vz_json_root(doc), "users");
    assert_int_equal(vz_json_size(users), 2);
    vz_json_destroy(&doc);
    char name[32];
    for (int i = 0; i < VZ_TL_USERS + 3; i++) {
        snprintf(name, sizeof name, "u_%d", i);
        vz_telemetry_user(tl, name);
    }
    assert_int_equal(vz_telemetry_flush(tl, 2000), 0);
    doc = vz_json_parse(sink.last, strlen(sink.last), NULL, NULL);
    assert_non_null(doc);
    assert_int_equal(vz_json_size(vz_json_get(vz_json_root(doc), "users")), VZ_TL_USERS);
    int64_t over = 0;
    assert_int_equal(vz_json_int(vz_json_get(vz_json_root(doc), "users_over"), &over), 0);
    assert_int_equal(over, 3);
    vz_json_destroy(&doc);
    assert_int_equal(vz_telemetry_flush(tl, 3000), 0);
    assert_non_null(strstr(sink.last, "\"users\":[],\"users_over\":0"));
    free(sink.last);
    vz_telemetry_destroy(&tl);
}

#define TP_KEEP "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
#define TP_DROP "00-0af7651916cd43dd8448eb21ffffffff-b7ad6b7169203331-01"

//  Spans: sampled by trace id, errors and slow ones always, decoded by the
//  sink's decoder; business events; the HTTP helper.
static void test_spans_events(void **state)
{
    sink_t sink = {0};
    vz_telemetry_config_t config = {.service = "gateway",
                                    .send = s_send,
                                    .arg = &sink,
                                    .sample_permille = 500,
                                    .slow_us = 100000};
    vz_telemetry_t *tl = vz_telemetry_new(&config);
    vz_telemetry_span(tl, TP_KEEP, "echo", "ok", 10);     //  low bits 0x1c80319c: sampled
    vz_telemetry_span(tl, TP_DROP, "echo", "ok", 10);     //  0xffffffff: not sampled
    vz_telemetry_span(tl, TP_DROP, "echo", "500", 10);    //  an error: kept
    vz_telemetry_span(tl, TP_DROP, "echo", "ok", 200000); //  slow: kept
    vz_telemetry_span(tl, "garbage", "echo", "500", 10);  //  no context: nothing
    vz_telemetry_count(tl, "signup", NULL);
    vz_telemetry_count(tl, "signup", NULL);
    vz_telemetry_count(tl, "bad.event", NULL);
    vz_telemetry_http(tl, "echo_me", 200, 1500, TP_KEEP, "u_7", "DE");
    vz_telemetry_http(tl, "echo_me", 200, 1500, TP_DROP, NULL, "germany");
    assert_int_equal(vz_telemetry_flush(tl, 5000), 0);
    vz_tl_snapshot_t *snap = NULL;
    const char *why = NULL;
    assert_int_equal(vz_tl_snapshot_decode(sink.last, strlen(sink.last), &snap, &why), 0);
    assert_int_equal(snap->nspans, 4);
    assert_string_equal(snap->spans[0].trace, "0af7651916cd43dd8448eb211c80319c");
    assert_string_equal(snap->spans[0].parent, "b7ad6b7169203331");
    assert_int_equal(strlen(snap->spans[0].span), 16);
    assert_string_equal(snap->spans[1].code, "500");
    assert_string_equal(snap->spans[3].name, "echo_me");
    assert_int_equal(snap->nevents, 2);
    assert_string_equal(snap->events[0].name, "signup");
    assert_int_equal(snap->events[0].count, 2);
    assert_string_equal(snap->events[1].name, "country.DE");
    assert_int_equal(snap->nusers, 1);
    vz_tl_snapshot_destroy(&snap);
    //  Past VZ_TL_SPANS they are counted.
    for (int i = 0; i < VZ_TL_SPANS + 5; i++)
        vz_telemetry_span(tl, TP_KEEP, "echo", "ok", 10);
    assert_int_equal(vz_telemetry_flush(tl, 6000), 0);
    assert_int_equal(vz_tl_snapshot_decode(sink.last, strlen(sink.last), &snap, &why), 0);
    assert_int_equal(snap->nspans, VZ_TL_SPANS);
    assert_int_equal(snap->spans_over, 5);
    vz_tl_snapshot_destroy(&snap);
    free(sink.last);
    vz_telemetry_destroy(&tl);
}

//  Auto mode: no_worker stops the sending but for a probe every
//  VZ_TL_PROBE_EVERY intervals; a reply resumes it. On mode ignores answers.
static void test_auto_mode(void **state)
{
    sink_t sink = {0};
    vz_telemetry_config_t config = {
        .service = "echo", .send = s_send, .arg = &sink, .auto_mode = true};
    vz_telemetry_t *tl = vz_telemetry_new(&config);
    assert_true(vz_telemetry_sink_seen(tl));
    assert_int_equal(vz_telemetry_flush(tl, 1000), 0);
    assert_int_equal(sink.sends, 1);
    vz_telemetry_answer(tl, "no_worker");
    assert_false(vz_telemetry_sink_seen(tl));
    for (int i = 0; i < 2 * VZ_TL_PROBE_EVERY; i++) {
        vz_telemetry_record(tl, "echo", NULL, 10);
        assert_int_equal(vz_telemetry_flush(tl, 2000 + i), 0);
    }
    assert_int_equal(sink.sends, 1 + 2);
    assert_int_equal(vz_telemetry_skipped(tl), 2 * VZ_TL_PROBE_EVERY - 2);
    assert_int_equal(vz_telemetry_lost(tl), 0);
    vz_telemetry_answer(tl, "invalid_request"); //  a sink answered
    assert_true(vz_telemetry_sink_seen(tl));
    assert_int_equal(vz_telemetry_flush(tl, 9000), 0);
    assert_int_equal(sink.sends, 4);
    free(sink.last);
    vz_telemetry_destroy(&tl);

    sink_t on = {0};
    config.arg = &on;
    config.auto_mode = false;
    tl = vz_telemetry_new(&config);
    vz_telemetry_answer(tl, "no_worker");
    for (int i = 0; i < 3; i++)
        assert_int_equal(vz_telemetry_flush(tl, 1000 + i), 0);
    assert_int_equal(on.sends, 3);
    free(on.last);
    vz_telemetry_destroy(&tl);
}

static void test_process(void **state)
{
    double cpu;
    uint64_t rss;
    int fds;
    vz_telemetry_process(&cpu, &rss, &fds);
    assert_true(cpu >= 0);
    assert_true(rss > 1024 * 1024 / 4);
    assert_true(fds >= 3);
}

typedef struct {
    vz_telemetry_t *tl; //  shared reporter
    int n;              //  records to make
} recorder_t;

static void *s_recorder(void *arg)
{
    recorder_t *r = arg;
    for (int i = 0; i < r->n; i++)
        vz_telemetry_record(r->tl, (i & 1) ? "a" : "b", (i % 7) ? NULL : "500", i % 1000);
    return NULL;
}

typedef struct {
    int64_t total; //  requests in every snapshot sent
} adder_t;

static int s_add(void *arg, const char *body, size_t len)
{
    adder_t *adder = arg;
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    assert_non_null(doc);
    const vz_json_value_t *series = vz_json_get(vz_json_root(doc), "series");
    for (size_t i = 0; i < vz_json_size(series); i++) {
        int64_t n = 0;
        assert_int_equal(vz_json_int(vz_json_get(vz_json_at(series, i), "count"), &n), 0);
        adder->total += n;
    }
    vz_json_destroy(&doc);
    return 0;
}

//  Threads record while the owner flushes: every request lands in exactly
//  one snapshot.
static void test_threads(void **state)
{
    adder_t adder = {0};
    vz_telemetry_config_t config = {.service = "gateway", .send = s_add, .arg = &adder};
    vz_telemetry_t *tl = vz_telemetry_new(&config);
    enum { THREADS = 4, EACH = 20000 };
    pthread_t threads[THREADS];
    recorder_t r = {tl, EACH};
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, s_recorder, &r), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(vz_telemetry_flush(tl, 1000 + i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(vz_telemetry_flush(tl, 2000), 0);
    assert_int_equal(adder.total, THREADS * EACH);
    assert_int_equal(vz_telemetry_recorded(tl), THREADS * EACH);
    vz_telemetry_destroy(&tl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantile_error), cmocka_unit_test(test_bins_and_merge),
        cmocka_unit_test(test_snapshot),       cmocka_unit_test(test_lost),
        cmocka_unit_test(test_bounded),        cmocka_unit_test(test_process),
        cmocka_unit_test(test_threads),        cmocka_unit_test(test_users),
        cmocka_unit_test(test_spans_events),   cmocka_unit_test(test_auto_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
