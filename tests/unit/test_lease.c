/*  test_lease - the gateway's rate-limit leases on a clock the test sets
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Links gateway_core and uses only lease.h. The limiter is played by the
 *  test: each "check of cost n" is answered by s_grant with what the
 *  limiter would say.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "lease.h"

#define S_TTL_MS 1000

//  The limiter's answer for a policy of limit a window with remaining left.
static vz_rl_decision_t s_answer(uint64_t limit, uint64_t remaining)
{
    vz_rl_decision_t rl;
    memset(&rl, 0, sizeof rl);
    rl.allowed = true;
    rl.limit = limit;
    rl.remaining = remaining;
    rl.window = 60;
    strcpy(rl.policy, "p");
    return rl;
}

//  A request of key: served from a lease (true), or the size of the check
//  the caller must send (*want).
static bool s_take(gw_leases_t *leases, const char *key, int64_t now, uint64_t *want)
{
    vz_rl_decision_t out;
    return gw_leases_take(leases, key, now, &out, want);
}

static void test_off_below_two(void **state)
{
    (void)state;
    assert_null(gw_leases_new(1, S_TTL_MS, 16));
    assert_null(gw_leases_new(8, 0, 16));
    assert_null(gw_leases_new(8, S_TTL_MS, 0));
}

//  A fast caller's lease doubles each time it runs out before expiring,
//  up to max_tokens; every token it spends came from a grant.
static void test_grows_to_max(void **state)
{
    (void)state;
    gw_leases_t *leases = gw_leases_new(16, S_TTL_MS, 16);
    assert_non_null(leases);
    int64_t t = 1000;
    uint64_t want = 0, granted = 0, served = 0, remaining = 100000;
    assert_false(s_take(leases, "a", t, &want));
    assert_int_equal(want, 1); //  nothing known about the caller yet
    const uint64_t sizes[] = {1, 2, 4, 8, 16, 16};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_int_equal(want, sizes[i]);
        remaining -= want;
        vz_rl_decision_t rl = s_answer(100000, remaining);
        gw_leases_grant(leases, "a", want, &rl, t);
        granted += want;
        //  The headers of the request that asked count the tokens leased here.
        assert_int_equal(rl.remaining, remaining + want - 1);
        served++; //  that request itself
        while (s_take(leases, "a", ++t, &want))
            served++;
    }
    assert_int_equal(served, granted); //  no token out of thin air
    gw_leases_destroy(&leases);
}

//  The remaining in a leased answer counts the tokens still leased.
static void test_served_answer(void **state)
{
    (void)state;
    gw_leases_t *leases = gw_leases_new(16, S_TTL_MS, 16);
    uint64_t want = 0;
    vz_rl_decision_t rl = s_answer(100000, 500);
    gw_leases_grant(leases, "a", 1, &rl, 0);
    assert_false(s_take(leases, "a", 1, &want));
    assert_int_equal(want, 2);
    rl = s_answer(100000, 498);
    gw_leases_grant(leases, "a", 2, &rl, 1);
    assert_int_equal(rl.remaining, 499);
    vz_rl_decision_t out;
    assert_true(gw_leases_take(leases, "a", 2, &out, &want));
    assert_true(out.allowed);
    assert_int_equal(out.remaining, 498);
    assert_string_equal(out.policy, "p");
    assert_false(gw_leases_take(leases, "a", 3, &out, &want));
    gw_leases_destroy(&leases);
}

//  A policy under 200 a window is never leased: every request asks for 1.
static void test_small_policy_never_leased(void **state)
{
    (void)state;
    gw_leases_t *leases = gw_leases_new(16, S_TTL_MS, 16);
    uint64_t want = 0;
    for (int i = 0; i < 20; i++) {
        assert_false(s_take(leases, "a", i, &want));
        assert_int_equal(want, 1);
        vz_rl_decision_t rl = s_answer(199, 150);
        gw_leases_grant(leases, "a", 1, &rl, i);
    }
    gw_leases_destroy(&leases);
}

//  Tokens are void once the lease expires; the next lease is only as big
//  as what the caller used since the last expiry, not the doubled size.
static void test_expiry_shrinks(void **state)
{
    (void)state;
    gw_leases_t *leases = gw_leases_new(64, S_TTL_MS, 16);
    uint64_t want = 0;
    vz_rl_decision_t rl = s_answer(100000, 1000);
    gw_leases_grant(leases, "a", 1, &rl, 0); //  used 1
    assert_false(s_take(leases, "a", 1, &want));
    assert_int_equal(want, 2);
    gw_leases_grant(leases, "a", 2, &rl, 1);    //  used 2
    assert_true(s_take(leases, "a", 2, &want)); //  used 3
    assert_false(s_take(leases, "a", 3, &want));
    assert_int_equal(want, 4);
    gw_leases_grant(leases, "a", 4, &rl, 3);    //  used 4, 3 leased
    assert_true(s_take(leases, "a", 4, &want)); //  used 5, 2 left
    //  Silence past the TTL: the 2 left are not served, the next lease is 5.
    assert_false(s_take(leases, "a", 3 + S_TTL_MS, &want));
    assert_int_equal(want, 5);
    gw_leases_destroy(&leases);
}

//  At most four lease checks in flight per caller; the others ask for 1
//  until an answer (grant, shrink, abandon) comes back.
static void test_asks_bounded(void **state)
{
    (void)state;
    gw_leases_t *leases = gw_leases_new(16, S_TTL_MS, 16);
    uint64_t want = 0;
    vz_rl_decision_t rl = s_answer(100000, 1000);
    gw_leases_grant(leases, "a", 1, &rl, 0);
    for (int i = 0; i < 4; i++) {
        assert_false(s_take(leases, "a", 1, &want));
        assert_true(want > 1);
    }
    assert_false(s_take(leases, "a", 1, &want));
    assert_int_equal(want, 1);
    gw_leases_abandon(leases, "a"); //  one came back unanswered
    assert_false(s_take(leases, "a", 1, &want));
    assert_int_equal(want, 16); //  grown to max_tokens by the asks above
    gw_leases_shrink(leases, "a");
    gw_leases_shrink(leases, "a");
    //  Denied near the limit: the lease size starts over (1, doubled on the
    //  next ask) instead of asking for 16 again.
    assert_false(s_take(leases, "a", 1, &want));
    assert_int_equal(want, 2);
    gw_leases_destroy(&leases);
}

//  Callers do not share leases.
static void test_keys_apart(void **state)
{
    (void)state;
    gw_leases_t *leases = gw_leases_new(16, S_TTL_MS, 16);
    uint64_t want = 0;
    vz_rl_decision_t rl = s_answer(100000, 1000);
    gw_leases_grant(leases, "a", 1, &rl, 0);
    assert_false(s_take(leases, "a", 1, &want));
    gw_leases_grant(leases, "a", want, &rl, 1);
    assert_true(s_take(leases, "a", 2, &want));
    assert_false(s_take(leases, "b", 2, &want));
    assert_int_equal(want, 1);
    gw_leases_destroy(&leases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_below_two),  cmocka_unit_test(test_grows_to_max),
        cmocka_unit_test(test_served_answer),  cmocka_unit_test(test_small_policy_never_leased),
        cmocka_unit_test(test_expiry_shrinks), cmocka_unit_test(test_asks_bounded),
        cmocka_unit_test(test_keys_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
