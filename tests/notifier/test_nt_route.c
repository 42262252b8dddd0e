/*  test_nt_route - alert routing by severity, with a set clock
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "nt_route.h"
#include "vz_clock.h"

static nt_config_t s_config(void)
{
    nt_config_t c;
    memset(&c, 0, sizeof c);
    //  The defaults of configs/notifier.cfg.
    c.route[NT_SEV_CRITICAL] = NT_RT_PAGERDUTY;
    c.route[NT_SEV_ERROR] = NT_RT_PAGERDUTY;
    c.route[NT_SEV_WARNING] = NT_RT_SLACK;
    c.route[NT_SEV_INFO] = NT_RT_DIGEST;
    c.warning_delay_ms = 15 * 60 * 1000;
    return c;
}

static void test_critical_pages_at_once(void **state)
{
    nt_config_t c = s_config();
    int64_t now;
    assert_int_equal(vz_clock_parse_utc("2026-12-07T07:59:50Z", &now), 0);
    vz_clock_test_set(now);
    now = vz_clock_now_ms();
    nt_plan_t p = nt_route_plan(&c, NT_SEV_CRITICAL, false, now);
    assert_int_equal(p.kind, NT_PLAN_SEND);
    assert_int_equal(p.channel, NT_CH_PAGERDUTY);
    assert_int_equal(p.due_ms, 0);
    assert_string_equal(p.event_action, "trigger");
    p = nt_route_plan(&c, NT_SEV_CRITICAL, true, now);
    assert_int_equal(p.kind, NT_PLAN_SEND);
    assert_string_equal(p.event_action, "resolve");
    vz_clock_test_reset();
}

static void test_warning_waits(void **state)
{
    nt_config_t c = s_config();
    int64_t start_us;
    assert_int_equal(vz_clock_parse_utc("2026-12-07T08:00:00Z", &start_us), 0);
    vz_clock_test_set(start_us);
    nt_plan_t p = nt_route_plan(&c, NT_SEV_WARNING, false, vz_clock_now_ms());
    assert_int_equal(p.kind, NT_PLAN_SEND);
    assert_int_equal(p.channel, NT_CH_SLACK);
    assert_true(p.conditional);
    assert_int_equal(p.due_ms, start_us / 1000 + 15 * 60 * 1000);
    //  A resolve sends nothing (the pending one is dropped when due).
    vz_clock_test_advance(10 * 60 * 1000000LL);
    p = nt_route_plan(&c, NT_SEV_WARNING, true, vz_clock_now_ms());
    assert_int_equal(p.kind, NT_PLAN_SKIP);
    //  No delay configured: at once, unconditional.
    c.warning_delay_ms = 0;
    p = nt_route_plan(&c, NT_SEV_WARNING, false, vz_clock_now_ms());
    assert_int_equal(p.due_ms, 0);
    assert_false(p.conditional);
    vz_clock_test_reset();
}

static void test_info_digest_and_none(void **state)
{
    nt_config_t c = s_config();
    assert_int_equal(nt_route_plan(&c, NT_SEV_INFO, false, 0).kind, NT_PLAN_DIGEST);
    assert_int_equal(nt_route_plan(&c, NT_SEV_INFO, true, 0).kind, NT_PLAN_SKIP);
    c.route[NT_SEV_ERROR] = NT_RT_NONE;
    assert_int_equal(nt_route_plan(&c, NT_SEV_ERROR, false, 0).kind, NT_PLAN_SKIP);
    c.route[NT_SEV_ERROR] = NT_RT_EMAIL;
    nt_plan_t p = nt_route_plan(&c, NT_SEV_ERROR, false, 0);
    assert_int_equal(p.channel, NT_CH_EMAIL);
    assert_null(p.event_action);
    char day[16];
    int64_t us;
    assert_int_equal(vz_clock_parse_utc("2026-12-07T23:59:59Z", &us), 0);
    nt_route_day(us / 1000, day, sizeof day);
    assert_string_equal(day, "2026-12-07");
    nt_route_day(us / 1000 + 1000, day, sizeof day);
    assert_string_equal(day, "2026-12-08");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_critical_pages_at_once),
        cmocka_unit_test(test_warning_waits),
        cmocka_unit_test(test_info_digest_and_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
