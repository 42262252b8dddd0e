/*  test_tl_anomaly - the seasonal detector: spikes, gaps, impossible values, level shifts,
 *  and its precision and recall on the labelled set vizmesh-traffic-anomalies-v1
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_telemetry_anomaly.h"

//  Deterministic noise in [-1, 1).
static double s_noise(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return ((*state >> 8) & 0xffff) / 32768.0 - 1.0;
}

static void test_spike_gap_impossible(void **state)
{
    vz_tl_anomaly_config_t c = {.period = 24, .non_negative = true};
    vz_tl_anomaly_t *det = vz_tl_anomaly_new(&c);
    unsigned seed = 7;
    vz_tl_anomaly_point_t p;
    int flagged = 0;
    int64_t t = 0;
    for (int i = 0; i < 24 * 6; i++, t += 3600) {
        double v = 100 + 40 * sin(2 * M_PI * i / 24) + 3 * s_noise(&seed);
        vz_tl_anomaly_step(det, t, v, &p);
        flagged += p.anomaly;
        if (i >= 48) {
            //  Warm: the forecast follows the season within the interval.
            assert_true(p.lower < v && v < p.upper);
            assert_true(fabs(p.forecast - v) < 15);
        }
    }
    assert_int_equal(flagged, 0);
    //  A spike: flagged, scored past z, and not learnt as the new normal.
    vz_tl_anomaly_step(det, t, 400, &p);
    t += 3600;
    assert_true(p.anomaly);
    assert_true(p.score > 3.5);
    vz_tl_anomaly_point_t next;
    vz_tl_anomaly_next(det, &next);
    assert_true(next.forecast < 160);
    //  Impossible values: flagged, not scored.
    vz_tl_anomaly_step(det, t, -5, &p);
    t += 3600;
    assert_true(p.flags & VZ_TL_DQ_IMPOSSIBLE);
    assert_false(p.anomaly);
    vz_tl_anomaly_step(det, t, NAN, &p);
    assert_true(p.flags & VZ_TL_DQ_IMPOSSIBLE);
    //  Three hours missing: a gap, and the season keeps its phase.
    t += 4 * 3600;
    int i = (int)(t / 3600);
    double v = 100 + 40 * sin(2 * M_PI * i / 24);
    vz_tl_anomaly_step(det, t, v, &p);
    assert_true(p.flags & VZ_TL_DQ_GAP);
    assert_false(p.anomaly);
    assert_true(vz_tl_anomaly_stale(det, t, t + 4 * 3600));
    assert_false(vz_tl_anomaly_stale(det, t, t + 3600));
    vz_tl_anomaly_destroy(&det);
}

//  A level that moves for good is flagged at first, then adopted.
static void test_level_shift(void **state)
{
    vz_tl_anomaly_config_t c = {.period = 0, .shift_run = 6};
    vz_tl_anomaly_t *det = vz_tl_anomaly_new(&c);
    unsigned seed = 3;
    vz_tl_anomaly_point_t p;
    int64_t t = 0;
    for (int i = 0; i < 60; i++, t += 60)
        vz_tl_anomaly_step(det, t, 50 + s_noise(&seed), &p);
    int flagged = 0, late = 0;
    for (int i = 0; i < 60; i++, t += 60) {
        vz_tl_anomaly_step(det, t, 80 + s_noise(&seed), &p);
        flagged += p.anomaly;
        late += i >= 10 && p.anomaly;
    }
    assert_int_equal(flagged, 5);
    assert_int_equal(late, 0);
    vz_tl_anomaly_destroy(&det);
}

static void test_period(void **state)
{
    assert_int_equal(vz_tl_anomaly_period(300, 4032), 288);
    assert_int_equal(vz_tl_anomaly_period(300, 400), 12); //  under two days: an hour
    assert_int_equal(vz_tl_anomaly_period(3600, 24 * 14), 24);
    assert_int_equal(vz_tl_anomaly_period(60, 100), 0);
    assert_int_equal(vz_tl_anomaly_period(7, 100000), 0);
    assert_int_equal(vz_tl_anomaly_period(0, 10), 0);
}

//  The replay's format, header, ISO timestamps and refusals.
static void test_replay_format(void **state)
{
    FILE *in = tmpfile(), *out = tmpfile();
    fputs("timestamp,value\n2026-11-02T00:00:00Z,1\n2026-11-02T00:01:00Z,2\n# note\n"
          "2026-11-02T00:02:00Z,x\n",
          in);
    rewind(in);
    vz_tl_anomaly_config_t c = {.period = -1};
    vz_tl_replay_stats_t st;
    const char *why = NULL;
    assert_int_equal(vz_tl_anomaly_replay(in, out, NULL, &c, &st, &why), 0);
    assert_int_equal(st.points, 3);
    assert_int_equal(st.labelled, 0);
    rewind(out);
    char line[256];
    assert_non_null(fgets(line, sizeof line, out));
    assert_string_equal(line, "timestamp,value,forecast,lower,upper,score,anomaly\n");
    assert_non_null(fgets(line, sizeof line, out));
    assert_int_equal(strncmp(line, "2026-11-02T00:00:00Z,1,", 23), 0);
    fclose(in);
    fclose(out);
    in = tmpfile();
    out = tmpfile();
    fputs("10,1\n5,1\n", in);
    rewind(in);
    assert_int_equal(vz_tl_anomaly_replay(in, out, NULL, &c, &st, &why), -1);
    assert_string_equal(why, "timestamps go back");
    fclose(in);
    fclose(out);
}

//  vizmesh-traffic-anomalies-v1 (tests/data/gen_telemetry_anomaly.py): four
//  series of 14 days at 5 minutes; docs/services/telemetry.md quotes this.
static void test_labelled_set(void **state)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    assert_non_null(slash);
    *slash = '\0';
    size_t tp = 0, fp = 0, fn = 0, points = 0;
    for (int s = 0; s < 4; s++) {
        char path[600];
        snprintf(path, sizeof path, "%s/../data/telemetry_anomaly_%d.csv", dir, s);
        FILE *in = fopen(path, "r"), *out = fopen("/dev/null", "w");
        assert_non_null(in);
        vz_tl_anomaly_config_t c = {.period = -1, .non_negative = true};
        vz_tl_replay_stats_t st;
        const char *why = NULL;
        assert_int_equal(vz_tl_anomaly_replay(in, out, NULL, &c, &st, &why), 0);
        assert_int_equal(st.period, 288);
        fclose(in);
        fclose(out);
        tp += st.tp, fp += st.fp, fn += st.fn, points += st.points;
    }
    double precision = (double)tp / (double)(tp + fp), recall = (double)tp / (double)(tp + fn);
    printf("vizmesh-traffic-anomalies-v1: %zu points, tp %zu fp %zu fn %zu, precision %.3f "
           "recall %.3f\n",
           points, tp, fp, fn, precision, recall);
    assert_true(precision >= 0.85);
    assert_true(recall >= 0.85);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spike_gap_impossible),
        cmocka_unit_test(test_level_shift),
        cmocka_unit_test(test_period),
        cmocka_unit_test(test_replay_format),
        cmocka_unit_test(test_labelled_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
