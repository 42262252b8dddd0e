/*  test_clock - vz_clock: monotonic vs settable wall clock, test hooks, VZ_CLOCK_START
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vz_clock.h"
#include "vz_common.h"

#define MONDAY_0759_50 1796630390LL //  2026-12-07T07:59:50Z, a Monday

static int reset(void **state)
{
    vz_clock_test_reset();
    unsetenv("VZ_CLOCK_START");
    unsetenv("VZ_CLOCK_TEST");
    return 0;
}

static void test_real_clocks(void **state)
{
    //  Bracketed by the system clock, so a slow run (valgrind on a busy
    //  machine: seconds between two calls) cannot fail it.
    int64_t before = (int64_t)time(NULL) * 1000;
    int64_t wall = vz_clock_now_ms();
    int64_t after = ((int64_t)time(NULL) + 1) * 1000;
    assert_true(wall >= before && wall <= after);
    int64_t now = vz_now_ms();
    assert_true(now >= wall && now <= ((int64_t)time(NULL) + 1) * 1000);
    int64_t a = vz_clock_mono_us(), b = vz_clock_mono_us();
    assert_true(b >= a);
    assert_true(vz_clock_mono_ms() >= a / 1000);
}

static void test_set_and_advance(void **state)
{
    int64_t mono = vz_clock_mono_ms();
    vz_clock_test_set(MONDAY_0759_50 * 1000000);
    assert_int_equal(vz_clock_now_us(), MONDAY_0759_50 * 1000000);
    assert_int_equal(vz_clock_now_ms(), MONDAY_0759_50 * 1000);
    //  Frozen: a schedule check sees the same instant until the test moves it.
    assert_int_equal(vz_clock_now_ms(), MONDAY_0759_50 * 1000);
    assert_int_equal(vz_now_ms(), MONDAY_0759_50 * 1000);
    vz_clock_test_advance(10 * 1000000);
    time_t t = (time_t)(vz_clock_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    assert_int_equal(tm.tm_wday, 1);
    assert_int_equal(tm.tm_hour, 8);
    assert_int_equal(tm.tm_min, 0);
    //  The monotonic clock is never shifted.
    assert_true(vz_clock_mono_ms() - mono < 1000);
    vz_clock_test_reset();
    assert_true(vz_clock_now_ms() - (int64_t)time(NULL) * 1000 < 2000);
}

static void test_offset_runs(void **state)
{
    //  Advance without a freeze: an offset on the running clock.
    int64_t before = vz_clock_now_ms();
    vz_clock_test_advance(-3600LL * 1000000);
    int64_t after = vz_clock_now_ms();
    assert_true(before - after > 3599000 && before - after < 3601000);
}

static void test_parse_utc(void **state)
{
    int64_t us = 0;
    assert_int_equal(vz_clock_parse_utc("2026-12-07T07:59:50Z", &us), 0);
    assert_int_equal(us, MONDAY_0759_50 * 1000000);
    assert_int_equal(vz_clock_parse_utc("1970-01-01T00:00:00Z", &us), 0);
    assert_int_equal(us, 0);
    static const char *const bad[] = {
        "",
        "2026-12-07 07:59:50Z",
        "2026-12-07T07:59:50",
        "2026-12-07T07:59:50+01:00",
        "2026-02-30T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-12-07T24:00:00Z",
        "2026-12-07T07:59:5xZ",
        "1969-12-31T23:59:59Z",
        "2026-12-07T07:59:50Zjunk",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (vz_clock_parse_utc(bad[i], &us) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(vz_clock_parse_utc(NULL, &us), -EINVAL);
}

static void test_from_env(void **state)
{
    char err[256] = "";
    const char *start = NULL;
    //  Unset: the real clock, nothing to log.
    assert_int_equal(vz_clock_from_env(&start, err, sizeof err), 0);
    assert_null(start);
    //  Set alone: refused, so a forgotten test setting cannot shift production.
    setenv("VZ_CLOCK_START", "2026-12-07T07:59:50Z", 1);
    assert_int_equal(vz_clock_from_env(&start, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "VZ_CLOCK_TEST"));
    setenv("VZ_CLOCK_TEST", "yes", 1);
    assert_int_equal(vz_clock_from_env(&start, err, sizeof err), -EINVAL);
    //  Enabled: "now" starts at the instant and runs at the real rate.
    setenv("VZ_CLOCK_TEST", "1", 1);
    assert_int_equal(vz_clock_from_env(&start, err, sizeof err), 1);
    assert_string_equal(start, "2026-12-07T07:59:50Z");
    int64_t now = vz_clock_now_ms();
    assert_true(now >= MONDAY_0759_50 * 1000 && now < MONDAY_0759_50 * 1000 + 2000);
    int64_t mono0 = vz_clock_mono_us();
    while (vz_clock_mono_us() - mono0 < 20000)
        ; //  a busy 20 ms: the shifted clock must move with the real one
    assert_true(vz_clock_now_ms() - now >= 20);
    //  The wire clock (envelope deadlines, shared with unshifted processes)
    //  stays on real time: a caller's deadline is not "past" to a daemon
    //  whose clock was started in the future.
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t real_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    assert_true(vz_clock_wire_ms() >= real_ms - 1000 && vz_clock_wire_ms() <= real_ms + 1000);
    assert_true(vz_now_ms() - real_ms < 1000 && real_ms - vz_now_ms() < 1000);
    setenv("VZ_CLOCK_START", "next monday", 1);
    assert_int_equal(vz_clock_from_env(&start, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "YYYY-MM-DDTHH:MM:SSZ"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_real_clocks, reset, reset),
        cmocka_unit_test_setup_teardown(test_set_and_advance, reset, reset),
        cmocka_unit_test_setup_teardown(test_offset_runs, reset, reset),
        cmocka_unit_test_setup_teardown(test_parse_utc, reset, reset),
        cmocka_unit_test_setup_teardown(test_from_env, reset, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
