/*  test_bl_revenue - revenue figures against a fixture computed by hand
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The fixture (all times 12:00 UTC unless said): November 2026 is the
 *  period asked (at 2026-11-15, a Sunday).
 *    A  usd monthly 2000, active 10-05, upgraded to 5000 on 11-10
 *    B  usd annual 120000 (10000/month), active 09-01, canceled 11-20
 *    C  eur monthly 1500, trialing 11-02, active 11-16 (a trial converting)
 *    D  eur monthly 900, trialing 11-03, canceled 11-17 (a trial never paid)
 *    E  eur annual 30000 (2500/month), active 11-25
 *    F  usd monthly 1000, active 08-01, past_due 11-05 (still paying)
 *  Paid invoices: usd 2000 10-05, 5000 11-10, 120000 09-01, 1000 12-01 00:00
 *  (the next period: end is exclusive); eur 1500 11-16, 30000 11-25.
 *  Refunds (cumulative amount_refunded, given out of order): ch_1 usd 500
 *  on 10-20 then 2000 on 11-12; ch_2 eur 30000 on 11-26.
 *
 *  By hand, November: paying at start A B F = 3; new C E = 2; churned B = 1
 *  (D was never paying); rate 1/3; paying at end A C E F = 4; MRR usd
 *  5000 + 1000 = 6000, eur 1500 + 2500 = 4000; ARR x12; revenue usd 5000,
 *  eur 1500 + 30000 = 31500; refunds usd 2000 - 500 = 1500, eur 30000.
 *  October: paying at start B F = 2; new A = 1; churned 0; MRR usd 2000 +
 *  10000 + 1000 = 13000; revenue usd 2000; refunds usd 500.
 *  Week of 11-15 (Mon 11-09 .. Mon 11-16): MRR usd 5000 + 10000 + 1000 =
 *  16000 (B not yet canceled), no eur row (no eur activity, nobody paying
 *  in eur yet); revenue usd 5000; refunds usd 1500; new 0; churned 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "billing.h"
#include "bl_event.h"
#include "bl_revenue.h"

static int64_t s_at(int y, int m, int d, int h)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = h};
    return (int64_t)timegm(&tm);
}

#define NOON(m, d) s_at(2026, m, d, 12)

static bl_rev_point_t s_a[3], s_b[2], s_c[2], s_d[2], s_e[1], s_f[2];
static bl_rev_sub_t s_subs[6];
static bl_rev_payment_t s_pay[6];
static bl_rev_refund_t s_ref[3];
static bl_rev_input_t s_in;

static int s_setup(void **state)
{
    s_a[0] = (bl_rev_point_t){NOON(10, 5), "active", "usd", 2000};
    s_a[1] = (bl_rev_point_t){NOON(11, 10), "active", "usd", 5000};
    s_a[2] = (bl_rev_point_t){NOON(11, 10) + 1, "active", "usd", 5000}; //  a trailing update
    s_b[0] = (bl_rev_point_t){NOON(9, 1), "active", "usd", bl_event_monthly(120000, "year", 1)};
    s_b[1] = (bl_rev_point_t){NOON(11, 20), "canceled", "usd", 10000};
    s_c[0] = (bl_rev_point_t){NOON(11, 2), "trialing", "eur", 1500};
    s_c[1] = (bl_rev_point_t){NOON(11, 16), "active", "eur", 1500};
    s_d[0] = (bl_rev_point_t){NOON(11, 3), "trialing", "eur", 900};
    s_d[1] = (bl_rev_point_t){NOON(11, 17), "canceled", "eur", 900};
    s_e[0] = (bl_rev_point_t){NOON(11, 25), "active", "eur", bl_event_monthly(30000, "year", 1)};
    s_f[0] = (bl_rev_point_t){NOON(8, 1), "active", "usd", 1000};
    s_f[1] = (bl_rev_point_t){NOON(11, 5), "past_due", "usd", 1000};
    s_subs[0] = (bl_rev_sub_t){"sub_A", 3, s_a};
    s_subs[1] = (bl_rev_sub_t){"sub_B", 2, s_b};
    s_subs[2] = (bl_rev_sub_t){"sub_C", 2, s_c};
    s_subs[3] = (bl_rev_sub_t){"sub_D", 2, s_d};
    s_subs[4] = (bl_rev_sub_t){"sub_E", 1, s_e};
    s_subs[5] = (bl_rev_sub_t){"sub_F", 2, s_f};
    s_pay[0] = (bl_rev_payment_t){"usd", NOON(10, 5), 2000};
    s_pay[1] = (bl_rev_payment_t){"usd", NOON(11, 10), 5000};
    s_pay[2] = (bl_rev_payment_t){"usd", NOON(9, 1), 120000};
    s_pay[3] = (bl_rev_payment_t){"usd", s_at(2026, 12, 1, 0), 1000};
    s_pay[4] = (bl_rev_payment_t){"eur", NOON(11, 16), 1500};
    s_pay[5] = (bl_rev_payment_t){"eur", NOON(11, 25), 30000};
    s_ref[0] = (bl_rev_refund_t){"ch_1", "usd", NOON(11, 12), 2000};
    s_ref[1] = (bl_rev_refund_t){"ch_2", "eur", NOON(11, 26), 30000};
    s_ref[2] = (bl_rev_refund_t){"ch_1", "usd", NOON(10, 20), 500};
    s_in = (bl_rev_input_t){s_subs, 6, s_pay, 6, s_ref, 3};
    return 0;
}

static const bl_rev_money_t *s_cur(const bl_rev_period_t *p, const char *code)
{
    for (size_t i = 0; i < p->ncur; i++)
        if (strcmp(p->cur[i].currency, code) == 0)
            return &p->cur[i];
    return NULL;
}

static void s_period(bl_rev_unit_t unit, int back, bl_rev_period_t *out)
{
    int64_t start, end;
    assert_int_equal(bl_rev_bounds(unit, NOON(11, 15), back, &start, &end), 0);
    bl_rev_compute(&s_in, start, end, out);
}

static void test_bounds(void **state)
{
    int64_t start, end;
    assert_int_equal(bl_rev_bounds(BL_REV_MONTH, NOON(11, 15), 0, &start, &end), 0);
    assert_int_equal(start, s_at(2026, 11, 1, 0));
    assert_int_equal(end, s_at(2026, 12, 1, 0));
    assert_int_equal(bl_rev_bounds(BL_REV_MONTH, NOON(11, 15), 11, &start, &end), 0);
    assert_int_equal(start, s_at(2025, 12, 1, 0));
    assert_int_equal(end, s_at(2026, 1, 1, 0));
    assert_int_equal(bl_rev_bounds(BL_REV_WEEK, NOON(11, 15), 0, &start, &end), 0);
    assert_int_equal(start, s_at(2026, 11, 9, 0)); //  Monday
    assert_int_equal(end, s_at(2026, 11, 16, 0));
    assert_int_equal(bl_rev_bounds(BL_REV_WEEK, s_at(2026, 11, 9, 0), 1, &start, &end), 0);
    assert_int_equal(start, s_at(2026, 11, 2, 0));
    assert_int_equal(bl_rev_bounds(BL_REV_YEAR, NOON(11, 15), 1, &start, &end), 0);
    assert_int_equal(start, s_at(2025, 1, 1, 0));
    assert_int_equal(end, s_at(2026, 1, 1, 0));
    assert_int_equal(bl_rev_bounds(BL_REV_MONTH, 0, -1, &start, &end), -EINVAL);
    bl_rev_unit_t unit;
    assert_int_equal(bl_rev_unit("week", &unit), 0);
    assert_int_equal(unit, BL_REV_WEEK);
    assert_int_equal(bl_rev_unit("quarter", &unit), -EINVAL);
    assert_int_equal(bl_rev_unit(NULL, &unit), -EINVAL);
}

static void test_month(void **state)
{
    bl_rev_period_t p;
    s_period(BL_REV_MONTH, 0, &p);
    assert_int_equal(p.paying_start, 3);
    assert_int_equal(p.new_subs, 2);
    assert_int_equal(p.churned, 1);
    assert_true(fabs(p.churn_rate - 1.0 / 3.0) < 1e-12);
    assert_int_equal(p.paying_end, 4);
    assert_int_equal(p.ncur, 2);
    assert_string_equal(p.cur[0].currency, "eur"); //  sorted by code
    const bl_rev_money_t *usd = s_cur(&p, "usd"), *eur = s_cur(&p, "eur");
    assert_int_equal(usd->mrr, 6000);
    assert_int_equal(usd->arr, 72000);
    assert_int_equal(eur->mrr, 4000);
    assert_int_equal(eur->arr, 48000);
    assert_int_equal(usd->revenue, 5000);
    assert_int_equal(eur->revenue, 31500);
    assert_int_equal(usd->refunds, 1500);
    assert_int_equal(eur->refunds, 30000);
}

static void test_previous_month(void **state)
{
    bl_rev_period_t p;
    s_period(BL_REV_MONTH, 1, &p);
    assert_int_equal(p.paying_start, 2);
    assert_int_equal(p.new_subs, 1);
    assert_int_equal(p.churned, 0);
    assert_true(p.churn_rate == 0.0);
    assert_int_equal(p.ncur, 1);
    assert_int_equal(s_cur(&p, "usd")->mrr, 13000);
    assert_int_equal(s_cur(&p, "usd")->revenue, 2000);
    assert_int_equal(s_cur(&p, "usd")->refunds, 500);
}

static void test_week(void **state)
{
    bl_rev_period_t p;
    s_period(BL_REV_WEEK, 0, &p);
    assert_int_equal(p.new_subs, 0);
    assert_int_equal(p.churned, 0);
    assert_int_equal(p.ncur, 1);
    assert_null(s_cur(&p, "eur"));
    assert_int_equal(s_cur(&p, "usd")->mrr, 16000);
    assert_int_equal(s_cur(&p, "usd")->revenue, 5000);
    assert_int_equal(s_cur(&p, "usd")->refunds, 1500);
}

static void test_empty_and_json(void **state)
{
    bl_rev_input_t none = {0};
    bl_rev_period_t p[2];
    bl_rev_compute(&none, 0, 100, &p[0]);
    assert_int_equal(p[0].ncur, 0);
    assert_true(p[0].churn_rate == 0.0);
    s_period(BL_REV_MONTH, 0, &p[0]);
    s_period(BL_REV_MONTH, 1, &p[1]);
    vz_json_writer_t *w = vz_json_writer_new(0);
    bl_rev_write(w, "month", p, 2);
    assert_int_equal(vz_json_writer_status(w), 0);
    size_t len = 0;
    const char *text = vz_json_writer_data(w, &len);
    vz_json_t *doc = vz_json_parse(text, len, NULL, NULL);
    assert_non_null(doc);
    const vz_json_value_t *root = vz_json_root(doc);
    assert_string_equal(vz_json_get_string(root, "period", NULL), "month");
    int64_t v = 0;
    assert_int_equal(
        vz_json_int(vz_json_get(vz_json_get(vz_json_get(root, "currencies"), "eur"), "revenue"),
                    &v),
        0);
    assert_int_equal(v, 31500);
    assert_int_equal(vz_json_size(vz_json_get(root, "trend")), 1);
    assert_int_equal(
        vz_json_int(vz_json_get(vz_json_at(vz_json_get(root, "trend"), 0), "start"), &v), 0);
    assert_int_equal(v, s_at(2026, 10, 1, 0));
    vz_json_destroy(&doc);
    vz_json_writer_destroy(&w);
}

//  VZ_BILLING_GAUGE_CURRENCIES: lowercase ISO codes joined by commas.
static void test_gauge_currencies(void **state)
{
    (void)state;
    const char *const good[] = {"", "usd", "usd,eur", "usd,eur,jpy"};
    const char *const bad[] = {"USD", "us", "usd,", ",usd", "usd eur", "usd,,eur", "euro"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(bl_currencies_ok(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (bl_currencies_ok(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds),         cmocka_unit_test(test_month),
        cmocka_unit_test(test_previous_month), cmocka_unit_test(test_week),
        cmocka_unit_test(test_empty_and_json), cmocka_unit_test(test_gauge_currencies),
    };
    return cmocka_run_group_tests(tests, s_setup, NULL);
}
