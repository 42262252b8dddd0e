/*  test_rp_cron - the reporter's cron expressions and ISO weeks, time as a parameter
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Instants are written as UTC text and read with vz_clock_parse_utc, so
 *  each expectation can be checked against a calendar: 2026-12-07 is a
 *  Monday, 2026-12-06 a Sunday; 2020 has an ISO week 53 and 2021-01-03
 *  still belongs to it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "rp_cron.h"
#include "vz_clock.h"

static int64_t s_t(const char *text)
{
    int64_t us = 0;
    assert_int_equal(vz_clock_parse_utc(text, &us), 0);
    return us / 1000000;
}

static rp_cron_t s_cron(const char *text)
{
    rp_cron_t cron;
    char err[128] = "";
    assert_int_equal(rp_cron_parse(text, &cron, err, sizeof err), 0);
    return cron;
}

static void test_monday_0800(void **state)
{
    rp_cron_t c = s_cron("0 8 * * 1");
    assert_true(rp_cron_match(&c, s_t("2026-12-07T08:00:00Z")));
    assert_true(rp_cron_match(&c, s_t("2026-12-07T08:00:59Z")));
    assert_false(rp_cron_match(&c, s_t("2026-12-07T07:59:59Z")));
    assert_false(rp_cron_match(&c, s_t("2026-12-07T08:01:00Z")));
    //  Sunday 23:59 is not a firing; the latest one is the Monday before.
    assert_false(rp_cron_match(&c, s_t("2026-12-06T23:59:00Z")));
    assert_int_equal(rp_cron_prev(&c, s_t("2026-12-06T23:59:00Z")), s_t("2026-11-30T08:00:00Z"));
    assert_int_equal(rp_cron_prev(&c, s_t("2026-12-07T08:00:00Z")), s_t("2026-12-07T08:00:00Z"));
    assert_int_equal(rp_cron_prev(&c, s_t("2026-12-07T07:59:59Z")), s_t("2026-11-30T08:00:00Z"));
    assert_int_equal(rp_cron_next(&c, s_t("2026-12-03T10:00:00Z")), s_t("2026-12-07T08:00:00Z"));
    assert_int_equal(rp_cron_next(&c, s_t("2026-12-07T08:00:00Z")), s_t("2026-12-14T08:00:00Z"));
    //  Names and weekday 7.
    rp_cron_t n = s_cron("0 8 * * MON");
    assert_memory_equal(&n, &c, sizeof c);
    rp_cron_t sun = s_cron("30 23 * * 7");
    assert_int_equal(rp_cron_next(&sun, s_t("2026-12-03T00:00:00Z")), s_t("2026-12-06T23:30:00Z"));
}

static void test_fields(void **state)
{
    rp_cron_t c = s_cron("*/15 9-17/4 * * *");
    assert_true(rp_cron_match(&c, s_t("2026-12-03T13:45:00Z")));
    assert_false(rp_cron_match(&c, s_t("2026-12-03T14:45:00Z")));
    assert_int_equal(rp_cron_next(&c, s_t("2026-12-03T17:45:00Z")), s_t("2026-12-04T09:00:00Z"));
    rp_cron_t l = s_cron("5,10 0 1 jan,jul *");
    assert_int_equal(rp_cron_next(&l, s_t("2026-12-03T00:00:00Z")), s_t("2027-01-01T00:05:00Z"));
    assert_int_equal(rp_cron_prev(&l, s_t("2026-12-03T00:00:00Z")), s_t("2026-07-01T00:10:00Z"));
    //  Both day fields restricted: either matches (the 13th, or any Friday).
    rp_cron_t either = s_cron("0 0 13 * 5");
    assert_int_equal(rp_cron_next(&either, s_t("2026-12-03T00:00:00Z")),
                     s_t("2026-12-04T00:00:00Z"));
    assert_true(rp_cron_match(&either, s_t("2026-12-13T00:00:00Z")));
    //  29 February: four years apart at most, so within the search only when near.
    rp_cron_t leap = s_cron("0 0 29 2 *");
    assert_int_equal(rp_cron_next(&leap, s_t("2027-06-01T00:00:00Z")), s_t("2028-02-29T00:00:00Z"));
    assert_int_equal(rp_cron_next(&leap, s_t("2026-01-01T00:00:00Z")), -1);
    //  Never: 31 February.
    rp_cron_t never = s_cron("0 0 31 2 *");
    assert_int_equal(rp_cron_prev(&never, s_t("2026-12-03T00:00:00Z")), -1);
}

static void test_refusals(void **state)
{
    static const char *const bad[] = {"",           "0 8 * *",     "0 8 * * 1 1", "60 8 * * 1",
                                      "0 24 * * 1", "0 8 0 * *",   "0 8 * 13 *",  "0 8 * * 8",
                                      "0 8 * * x",  "5-1 * * * *", "*/0 * * * *", "a * * * *"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rp_cron_t cron;
        char err[128] = "";
        assert_int_equal(rp_cron_parse(bad[i], &cron, err, sizeof err), -EINVAL);
        assert_true(err[0] != '\0');
    }
}

static void test_weeks(void **state)
{
    char id[RP_WEEK_ID_MAX];
    rp_week_id(s_t("2026-12-07T08:00:00Z"), id);
    assert_string_equal(id, "2026-W50");
    rp_week_id(s_t("2026-12-06T23:59:59Z"), id);
    assert_string_equal(id, "2026-W49");
    rp_week_id(s_t("2021-01-03T12:00:00Z"), id);
    assert_string_equal(id, "2020-W53");
    rp_week_id(s_t("2024-12-30T00:00:00Z"), id);
    assert_string_equal(id, "2025-W01");
    assert_int_equal(rp_week_start(s_t("2026-12-06T23:59:59Z")), s_t("2026-11-30T00:00:00Z"));
    assert_int_equal(rp_week_reported(s_t("2026-12-07T08:00:00Z")), s_t("2026-11-30T00:00:00Z"));
    int64_t start = 0;
    assert_int_equal(rp_week_parse("2026-W49", &start), 0);
    assert_int_equal(start, s_t("2026-11-30T00:00:00Z"));
    assert_int_equal(rp_week_parse("2020-W53", &start), 0);
    assert_int_equal(start, s_t("2020-12-28T00:00:00Z"));
    assert_int_equal(rp_week_parse("2025-W01", &start), 0);
    assert_int_equal(start, s_t("2024-12-30T00:00:00Z"));
    static const char *const bad[] = {"2025-W53", "2026-W00",  "2026-49", "2026-W4x",
                                      "1969-W01", "2026-W490", "../../x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rp_week_parse(bad[i], &start), -EINVAL);
    //  Every week of 1970..2100 names itself back.
    for (int64_t t = s_t("1970-01-05T00:00:00Z"); t < s_t("2100-01-01T00:00:00Z"); t += 7 * 86400) {
        rp_week_id(t, id);
        assert_int_equal(rp_week_parse(id, &start), 0);
        assert_int_equal(start, t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monday_0800),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_weeks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
