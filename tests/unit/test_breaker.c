/*  test_breaker - the gateway's circuit breaker on a clock the test sets
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Links gateway_core and uses only breaker.h: every call takes the time
 *  as a parameter, so cooldowns pass without waiting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "vz_proto.h"

typedef struct {
    vz_metrics_t *metrics; //  the registry the breakers report to
    gw_breakers_t *set;    //  breakers under test
    gw_breaker_t *b;       //  the breaker of "echo"
} fixture_t;

//  Opens after 3 failures in a row, or 50 % of the last 8; 1 s cooldown, 2 probes.
static const gw_breaker_config_t s_config = {
    .failures = 3, .ratio_pct = 50, .window = 8, .cooldown_ms = 1000, .probes = 2};

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->metrics = vz_metrics_new();
    f->set = gw_breakers_new(&s_config, f->metrics);
    f->b = gw_breakers_get(f->set, "echo");
    assert_non_null(f->b);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    gw_breakers_destroy(&f->set);
    vz_metrics_destroy(&f->metrics);
    free(f);
    return 0;
}

//  An allowed call that ends with failure (or success) at now.
static void s_call(gw_breaker_t *b, int64_t now, bool failure)
{
    int retry = 0;
    assert_true(gw_breaker_allow(b, now, &retry));
    gw_breaker_record(b, failure, now);
}

static bool s_rendered(fixture_t *f, const char *line)
{
    char *text = vz_metrics_render(f->metrics);
    bool found = text && strstr(text, line);
    free(text);
    return found;
}

static void test_consecutive_failures_open(void **state)
{
    fixture_t *f = *state;
    int64_t t = 1000000;
    s_call(f->b, t, true);
    s_call(f->b, t, true);
    assert_int_equal(gw_breaker_state(f->b, t), GW_BREAKER_CLOSED);
    s_call(f->b, t, false); //  a success resets the run
    s_call(f->b, t, true);
    s_call(f->b, t, true);
    assert_int_equal(gw_breaker_state(f->b, t), GW_BREAKER_CLOSED);
    s_call(f->b, t, true);
    assert_int_equal(gw_breaker_state(f->b, t), GW_BREAKER_OPEN);
    assert_true(s_rendered(f, "vz_gateway_breaker_state{service=\"echo\"} 2"));
    //  Open: refused, Retry-After the rest of the cooldown rounded up.
    int retry = 0;
    assert_false(gw_breaker_allow(f->b, t + 100, &retry));
    assert_int_equal(retry, 1);
    assert_false(gw_breaker_allow(f->b, t + 999, &retry));
    assert_int_equal(gw_breaker_state(f->b, t + 999), GW_BREAKER_OPEN);
}

static void test_half_open_probes(void **state)
{
    fixture_t *f = *state;
    int64_t t = 2000000;
    for (int i = 0; i < 3; i++)
        s_call(f->b, t, true);
    //  After the cooldown: half-open, two probes at once, the third refused.
    t += 1000;
    assert_int_equal(gw_breaker_state(f->b, t), GW_BREAKER_HALF_OPEN);
    int retry = 0;
    assert_true(gw_breaker_allow(f->b, t, &retry));
    assert_true(gw_breaker_allow(f->b, t, &retry));
    assert_false(gw_breaker_allow(f->b, t, &retry));
    assert_int_equal(retry, 1);
    //  A failed probe opens again for a whole cooldown.
    gw_breaker_record(f->b, true, t);
    assert_int_equal(gw_breaker_state(f->b, t + 999), GW_BREAKER_OPEN);
    assert_false(gw_breaker_allow(f->b, t + 500, &retry));
    //  Next half-open: a successful probe closes it and clears the history.
    t += 1000;
    assert_int_equal(gw_breaker_state(f->b, t), GW_BREAKER_HALF_OPEN);
    s_call(f->b, t, false);
    assert_int_equal(gw_breaker_state(f->b, t), GW_BREAKER_CLOSED);
    s_call(f->b, t, true);
    s_call(f->b, t, true);
    assert_int_equal(gw_breaker_state(f->b, t), GW_BREAKER_CLOSED);
    assert_true(s_rendered(f, "vz_gateway_breaker_transitions_total{service=\"echo\","
                              "to=\"half_open\"} 2"));
    assert_true(s_rendered(f, "vz_gateway_breaker_transitions_total{service=\"echo\","
                              "to=\"closed\"} 1"));
}

static void test_failure_ratio(void **state)
{
    fixture_t *f = *state;
    int64_t t = 3000000;
    //  Alternating outcomes never make 3 in a row; 4 of 8 reach 50 % once
    //  the window is full, not before.
    for (int i = 0; i < 7; i++) {
        s_call(f->b, t, i % 2 == 0);
        assert_int_equal(gw_breaker_state(f->b, t), GW_BREAKER_CLOSED);
    }
    s_call(f->b, t, false); //  8 seen, 4 failed
    assert_int_equal(gw_breaker_state(f->b, t), GW_BREAKER_OPEN);
}

static void test_below_ratio_stays_closed(void **state)
{
    fixture_t *f = *state;
    int64_t t = 4000000;
    //  3 failures in every 8 (37 %), never 3 in a row, for a long time.
    for (int i = 0; i < 200; i++)
        s_call(f->b, t + i, i % 8 == 0 || i % 8 == 3 || i % 8 == 6);
    assert_int_equal(gw_breaker_state(f->b, t + 200), GW_BREAKER_CLOSED);
}

static void test_services_apart(void **state)
{
    fixture_t *f = *state;
    gw_breaker_t *other = gw_breakers_get(f->set, "auth");
    assert_ptr_not_equal(other, f->b);
    assert_ptr_equal(gw_breakers_get(f->set, "auth"), other);
    for (int i = 0; i < 3; i++)
        s_call(other, 5000000, true);
    assert_int_equal(gw_breaker_state(other, 5000000), GW_BREAKER_OPEN);
    assert_int_equal(gw_breaker_state(f->b, 5000000), GW_BREAKER_CLOSED);
}

static void test_is_failure(void **state)
{
    (void)state;
    const char *const upstream[] = {VZ_ERR_TIMEOUT,    VZ_ERR_NO_WORKER,   VZ_ERR_UNAVAILABLE,
                                    VZ_ERR_OVERLOADED, VZ_ERR_WORKER_LOST, VZ_ERR_INTERNAL};
    for (size_t i = 0; i < sizeof upstream / sizeof upstream[0]; i++)
        assert_true(gw_breaker_is_failure(upstream[i]));
    //  A service telling the client it is wrong is not the upstream failing.
    assert_false(gw_breaker_is_failure(VZ_ERR_INVALID));
    assert_false(gw_breaker_is_failure(VZ_ERR_FORBIDDEN));
    assert_false(gw_breaker_is_failure(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_consecutive_failures_open, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_half_open_probes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failure_ratio, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_below_ratio_stays_closed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_services_apart, s_setup, s_teardown),
        cmocka_unit_test(test_is_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
