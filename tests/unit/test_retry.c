/*  test_retry - vz_retry: codes, attempts, time left and the budget
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vz_proto.h"
#include "vz_retry.h"

static void test_codes(void **state)
{
    assert_true(vz_retry_code(VZ_ERR_NO_WORKER));
    assert_true(vz_retry_code(VZ_ERR_WORKER_LOST));
    assert_true(vz_retry_code(VZ_ERR_UNAVAILABLE));
    assert_true(vz_retry_code(VZ_ERR_OVERLOADED));
    //  Served and failed, or refused: going again cannot help.
    assert_false(vz_retry_code(VZ_ERR_TIMEOUT));
    assert_false(vz_retry_code(VZ_ERR_FORBIDDEN));
    assert_false(vz_retry_code(VZ_ERR_INTERNAL));
    assert_false(vz_retry_code(VZ_ERR_INVALID));
    assert_false(vz_retry_code(NULL));
}

static void test_rules(void **state)
{
    assert_true(vz_retry_allowed(NULL, true, VZ_ERR_UNAVAILABLE, 1, 1000));
    assert_false(vz_retry_allowed(NULL, false, VZ_ERR_UNAVAILABLE, 1, 1000));
    assert_true(vz_retry_allowed(NULL, true, VZ_ERR_UNAVAILABLE, VZ_RETRY_MAX, 1000));
    assert_false(vz_retry_allowed(NULL, true, VZ_ERR_UNAVAILABLE, VZ_RETRY_MAX + 1, 1000));
    assert_true(vz_retry_allowed(NULL, true, VZ_ERR_UNAVAILABLE, 1, VZ_RETRY_MIN_MS));
    assert_false(vz_retry_allowed(NULL, true, VZ_ERR_UNAVAILABLE, 1, VZ_RETRY_MIN_MS - 1));
    assert_false(vz_retry_allowed(NULL, true, VZ_ERR_TIMEOUT, 1, 1000));
}

//  Start full (min tokens), earn pct/100 per call, spend one per retry:
//  over many calls retries are pct % of them plus the burst.
static void test_budget(void **state)
{
    vz_metrics_t *metrics = vz_metrics_new();
    vz_series_t *retried = vz_metrics_counter(metrics, "r", "r", NULL);
    vz_series_t *denied = vz_metrics_counter(metrics, "d", "d", NULL);
    vz_retry_budget_t b;
    vz_retry_budget_init(&b, 10, 3, retried, denied);
    int made = 0;
    for (int call = 0; call < 1000; call++) {
        vz_retry_budget_earn(&b);
        //  Every call fails once with a retry code.
        if (vz_retry_allowed(&b, true, VZ_ERR_WORKER_LOST, 1, 1000))
            made++;
    }
    assert_true(made >= 100 && made <= 103);
    assert_true(vz_series_value(retried) == made);
    assert_true(vz_series_value(denied) == 1000 - made);
    //  A refusal for other reasons spends nothing and counts nothing.
    vz_retry_budget_init(&b, 0, 1, retried, denied);
    assert_false(vz_retry_allowed(&b, false, VZ_ERR_WORKER_LOST, 1, 1000));
    assert_true(b.tokens == 1.0);
    assert_true(vz_retry_allowed(&b, true, VZ_ERR_WORKER_LOST, 1, 1000));
    assert_false(vz_retry_allowed(&b, true, VZ_ERR_WORKER_LOST, 1, 1000));
    vz_metrics_destroy(&metrics);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
